//! The `sequence` / `absence` pair: a `first` event confirmed (or not) by a `then` event for the
//! same key with `then.ts − first.ts` in `[−before, +within]`.
//!
//! Confirmation is a property of the set of events, not of their order, so it is evaluated on
//! arrival and fires the moment both halves are present. Absence fires when the watermark passes
//! `first.ts + within` (at once when no device can ever send a `then` for the key).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::alarm::{Finality, RawAlarm};
use crate::detect::{Detector, StateError, StateMap, load_state, save_state};
use std::sync::Arc;

use crate::event::{Event, EventType, TypeSet};
use crate::filter::Filter;
use crate::keyspace::{Key, Keyspace, can_emit, dense_len, device_keys};
use crate::pack::RuleId;
use crate::time::{EventTime, Watermark};
use crate::topology::Topology;

/// Per-key cap on remembered `then` events and pending `first` events; beyond it the oldest is
/// dropped and counted.
pub const MAX_PER_KEY: usize = 4_096;

/// See the module docs.
#[derive(Debug)]
pub struct Sequence {
    first: Filter,
    then: TypeSet,
    before_ms: u64,
    within_ms: u64,
    confirmed: Option<RuleId>,
    unconfirmed: Option<RuleId>,
    /// Bucket length for remembered thens. A first at t asks whether *any* then lies in
    /// `[t − before, t + within]`; when a bucket is no longer than that window, the earliest and
    /// latest then of each bucket answer it exactly (the window either covers a bucket's start,
    /// so its earliest qualifies, or starts inside it and covers its end, so its latest does).
    /// Memory then grows with time, not with traffic.
    bucket_ms: u64,
    /// Keys no device can send a `then` event to (dense keyspaces only).
    no_then_source: Vec<bool>,
    state: StateMap<KeyState>,
    /// (decision point, key) of pending firsts.
    deadlines: BinaryHeap<Reverse<(EventTime, Key)>>,
    watermark: Watermark,
    pending: u64,
    dropped: u64,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct KeyState {
    /// `then` events that may still confirm a first, at most two per time bucket — its earliest
    /// and latest (see [`Sequence::bucket_ms`]); nearly in ts order (arrival order).
    thens: VecDeque<Event>,
    /// Firsts until the watermark passes their window (unordered), decided or not: a second first
    /// with the same ts has the same alarm identity and must not alarm again.
    firsts: Vec<Pending>,
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Pending {
    ev: Event,
    /// An alarm (confirmed, or unconfirmed for a key without sources) was emitted for it.
    decided: bool,
}

impl Sequence {
    /// A detector for `confirmed` (sequence) and/or `unconfirmed` (absence) over `space`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topo: &Arc<Topology>,
        space: Keyspace,
        first: Filter,
        then: TypeSet,
        before_ms: u64,
        within_ms: u64,
        confirmed: Option<RuleId>,
        unconfirmed: Option<RuleId>,
    ) -> Sequence {
        let len = dense_len(topo, space);
        let mut has_source = vec![false; len];
        for (ix, dev) in topo.devices() {
            if EventType::ALL.iter().any(|&t| then.contains(t) && can_emit(dev.kind, t)) {
                device_keys(topo, space, ix, |k| has_source[k as usize] = true);
            }
        }
        Sequence {
            first,
            then,
            before_ms,
            within_ms,
            bucket_ms: ((before_ms + within_ms) / 4).max(1),
            confirmed,
            unconfirmed,
            no_then_source: has_source.into_iter().map(|s| !s).collect(),
            state: StateMap::new(len),
            deadlines: BinaryHeap::new(),
            watermark: Watermark(0),
            pending: 0,
            dropped: 0,
        }
    }

    fn alarm(rule: RuleId, key: Key, first: &Event, other: Option<Event>, finality: Finality) -> RawAlarm {
        RawAlarm { rule, ts: first.ts, key, trigger: *first, other, excess: 0, finality }
    }

    fn on_first(&mut self, key: Key, ev: &Event, out: &mut Vec<RawAlarm>) {
        let no_source = self.no_then_source.get(key as usize).copied().unwrap_or(false);
        let (lo, hi) = (ev.ts.minus_ms(self.before_ms), ev.ts.plus_ms(self.within_ms));
        let st = self.state.get_mut(key);
        if st.firsts.iter().any(|p| p.ev.ts == ev.ts) {
            return; // same identity as a first already here
        }
        let arrival = Finality::Arrival { ingest_ns: ev.ingest_ns };
        let decided = if no_source {
            if let Some(rule) = self.unconfirmed {
                out.push(Self::alarm(rule, key, ev, None, arrival));
            }
            true
        } else {
            let video = st.thens.iter().filter(|t| lo <= t.ts && t.ts <= hi).min_by_key(|t| t.ts).copied();
            if let (Some(then), Some(rule)) = (video, self.confirmed) {
                out.push(Self::alarm(rule, key, ev, Some(then), arrival));
            }
            video.is_some()
        };
        if st.firsts.len() >= MAX_PER_KEY {
            // Bounded: beyond the cap the oldest pending first is dropped (and counted).
            let old = st.firsts.remove(0);
            self.dropped += 1;
            self.pending -= u64::from(!old.decided);
        }
        st.firsts.push(Pending { ev: *ev, decided });
        self.pending += u64::from(!decided);
        self.deadlines.push(Reverse((hi, key)));
    }

    fn on_then(&mut self, key: Key, ev: &Event, out: &mut Vec<RawAlarm>) {
        // A then at v confirms firsts at t with v − t ∈ [−before, +within], i.e. t ∈ [v − within, v + before].
        let (lo, hi) = (ev.ts.minus_ms(self.within_ms), ev.ts.plus_ms(self.before_ms));
        let st = self.state.get_mut(key);
        for p in st.firsts.iter_mut().filter(|p| !p.decided && lo <= p.ev.ts && p.ev.ts <= hi) {
            p.decided = true;
            self.pending -= 1;
            if let Some(rule) = self.confirmed {
                out.push(Self::alarm(rule, key, &p.ev, Some(*ev), Finality::Arrival { ingest_ns: ev.ingest_ns }));
            }
        }
        // Remember it for firsts still to come: they have ts ≥ W, so it matters while v + before ≥ W.
        let w = EventTime(self.watermark.0);
        let before = self.before_ms;
        if ev.ts.plus_ms(before) >= w {
            // Forget thens no first can reach any more (arrival is nearly in ts order).
            while st.thens.front().is_some_and(|t| t.ts.plus_ms(before) < w) {
                st.thens.pop_front();
            }
            let bucket_of = |e: &Event| e.ts.0 / self.bucket_ms;
            let b = bucket_of(ev);
            let n = st.thens.len();
            if n >= 2 && bucket_of(&st.thens[n - 1]) == b && bucket_of(&st.thens[n - 2]) == b {
                // The bucket already has its earliest (n − 2) and latest (n − 1): widen them.
                if ev.ts < st.thens[n - 2].ts {
                    st.thens[n - 2] = *ev;
                } else if ev.ts > st.thens[n - 1].ts {
                    st.thens[n - 1] = *ev;
                }
            } else {
                if st.thens.len() >= MAX_PER_KEY {
                    st.thens.retain(|t| t.ts.plus_ms(before) >= w);
                }
                if st.thens.len() >= MAX_PER_KEY {
                    st.thens.pop_front();
                    self.dropped += 1;
                }
                st.thens.push_back(*ev);
                // Keep a bucket's pair as (earliest, latest).
                let n = st.thens.len();
                if n >= 2 && bucket_of(&st.thens[n - 2]) == b && st.thens[n - 2].ts > st.thens[n - 1].ts {
                    st.thens.swap(n - 2, n - 1);
                }
            }
        }
    }
}

impl Detector for Sequence {
    fn save(&self) -> Result<Vec<u8>, StateError> {
        save_state(&(&self.state, &self.deadlines, self.watermark, self.pending, self.dropped))
    }
    fn load(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let (state, deadlines, watermark, pending, dropped): (StateMap<KeyState>, _, _, _, _) = load_state(bytes)?;
        state.check_shape(&self.state)?;
        (self.state, self.deadlines, self.watermark, self.pending, self.dropped) =
            (state, deadlines, watermark, pending, dropped);
        Ok(())
    }

    fn types(&self) -> TypeSet {
        self.first.types.union(self.then)
    }

    fn needs_order(&self) -> bool {
        false
    }

    fn on_arrival(&mut self, key: Key, ev: &Event, out: &mut Vec<RawAlarm>) {
        // An event can be both (if a pack says so): treat it as a then first, so it does not confirm itself.
        if self.then.contains(ev.kind) {
            self.on_then(key, ev, out);
        }
        if self.first.matches(ev) {
            self.on_first(key, ev, out);
        }
    }

    fn advance(&mut self, w: Watermark, out: &mut Vec<RawAlarm>) {
        if w <= self.watermark {
            return;
        }
        self.watermark = w;
        while let Some(&Reverse((deadline, key))) = self.deadlines.peek() {
            if !w.passed(deadline) {
                break;
            }
            self.deadlines.pop();
            let within = self.within_ms;
            let before = self.before_ms;
            let st = self.state.get_mut(key);
            let mut fired = Vec::new();
            st.firsts.retain(|p| {
                if w.passed(p.ev.ts.plus_ms(within)) {
                    if !p.decided {
                        fired.push(p.ev);
                    }
                    false
                } else {
                    true
                }
            });
            // Thens too old to confirm any first still to come.
            st.thens.retain(|t| t.ts.plus_ms(before) >= EventTime(w.0));
            self.pending -= fired.len() as u64;
            if let Some(rule) = self.unconfirmed {
                for ev in fired {
                    let point = ev.ts.plus_ms(within);
                    out.push(Self::alarm(
                        rule,
                        key,
                        &ev,
                        None,
                        Finality::Watermark { point, at_least_ns: ev.ingest_ns },
                    ));
                }
            }
        }
    }

    fn pending(&self) -> u64 {
        self.pending
    }

    fn dropped(&self) -> u64 {
        self.dropped
    }
}
