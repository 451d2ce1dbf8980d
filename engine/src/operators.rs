//! The dataflow's operators: routing by keyspace, the rule operator that hosts detectors, and the
//! alarm sink that renders alarms on worker 0.
//!
//! Time: the timely timestamp is a watermark epoch in event-time milliseconds. Every record sent at
//! epoch `t` has `ts ≥ t` (the worker loop guarantees it where the input is created), so an
//! operator whose input frontier is `F` knows every event with `ts < F`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::Sender;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::operator::Operator;
use timely::progress::frontier::MutableAntichain;
use vigil_rules::keyspace::for_each_key;
use vigil_rules::{
    Alarm, CardKey, Event, Finality, Key, Keyspace, RawAlarm, Renderer, RuleId, Topology, TypeSet, Watermark,
};

use crate::checkpoint::{HostedState, OperatorState, Quiesce, SinkState};
use crate::clock::IngestClock;
use crate::swap::{self, Hosted, SwapBoard};

/// An event routed to one key of a keyspace (a camera event fans out to every door it watches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Keyed {
    pub key: Key,
    pub ev: Event,
}

/// A worker's watermark advance, broadcast to every rule operator: which input moved the
/// watermark (for latency), and, when `last`, the worker's end of input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Tick {
    pub worker: u32,
    /// The worker's new input time (its watermark).
    pub to: u64,
    /// Ingest instant of the batch that raised it.
    pub ingest_ns: u64,
    /// End of input: `to` is the worker's largest ts + 1 ms.
    pub last: bool,
}

/// The id string behind a card fingerprint, sent once per decoding worker per card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CardName {
    pub key: u64,
    pub name: String,
}

/// What a rule operator reports when its dataflow completes.
#[derive(Debug, Default)]
pub(crate) struct RuleReport {
    pub pending: u64,
    pub dropped: u64,
}

/// What the alarm sink reports: alarms and latency per rule.
#[derive(Debug, Default)]
pub(crate) struct SinkReport {
    pub per_rule: HashMap<RuleId, (u64, Histogram<u64>)>,
}

/// An event waiting for the watermark, with its total-order key (computed once).
type Pending = ((u128, u64, Key), Keyed);

/// Events waiting for the watermark, bucketed by time: a ring of `2^BUCKET_SHIFT` ms buckets
/// starting at the watermark, plus an overflow map for events far ahead. Pushing is O(1); an
/// advance takes the buckets it completes, sorts each (small) bucket, and splits only the
/// boundary bucket. (A binary heap of these 72-byte entries cost 35 % of all instructions in
/// callgrind; scanning everything pending on each advance is O(pending) per advance in live mode.)
#[derive(Default)]
pub(crate) struct PendingQueue {
    /// Bucket index of `ring[0]`.
    base: u64,
    ring: VecDeque<Vec<Pending>>,
    overflow: std::collections::BTreeMap<u64, Vec<Pending>>,
    scratch: Vec<Pending>,
    /// Emptied buckets, kept with their capacity (growing fresh vectors was 20 % of instructions).
    spare: Vec<Vec<Pending>>,
}

const BUCKET_SHIFT: u32 = 4;
const RING_BUCKETS: u64 = 1 << 14; // 16 384 × 16 ms ≈ 4.4 minutes ahead of the watermark

impl PendingQueue {
    fn push(&mut self, p: Pending) {
        let b = p.1.ev.ts.0 >> BUCKET_SHIFT;
        // ts ≥ the watermark the queue was drained to, so b ≥ base. (No re-basing above the
        // watermark: an earlier event could still come and must not be held back behind `base`.
        // Before the first drain everything is far ahead of base 0 and goes to the overflow map,
        // which the drain visits bucket by bucket.)
        debug_assert!(b >= self.base, "an event below the drained watermark reached the queue");
        let offset = b.saturating_sub(self.base);
        if offset >= RING_BUCKETS {
            self.overflow.entry(b).or_default().push(p);
            return;
        }
        let offset = offset as usize;
        while offset >= self.ring.len() {
            let bucket = self.spare.pop().unwrap_or_default();
            self.ring.push_back(bucket);
        }
        self.ring[offset].push(p);
    }

    /// Calls `f` with every event held, in no particular order (for checkpoints).
    fn for_each(&self, mut f: impl FnMut(&Keyed)) {
        self.ring.iter().chain(self.overflow.values()).flatten().for_each(|p| f(&p.1));
    }

    /// Calls `f` with every event below `w`, in total order, and removes them.
    fn drain_below(&mut self, w: u64, mut f: impl FnMut(&Keyed)) {
        let last = w >> BUCKET_SHIFT; // the bucket holding ts = w (only partly below w)
        while self.base <= last {
            let mut bucket = self.ring.pop_front().unwrap_or_default();
            if let Some(mut far) = self.overflow.remove(&self.base) {
                bucket.append(&mut far);
            }
            if self.base == last {
                // Boundary bucket: keep what is at or above w.
                self.scratch.clear();
                bucket.retain(|p| {
                    let below = p.1.ev.ts.0 < w;
                    if below {
                        self.scratch.push(*p);
                    }
                    !below
                });
                self.ring.push_front(bucket);
                self.scratch.sort_unstable_by_key(|p| p.0);
                self.scratch.iter().for_each(|p| f(&p.1));
                self.scratch.clear();
                break;
            }
            bucket.sort_unstable_by_key(|p| p.0);
            bucket.iter().for_each(|p| f(&p.1));
            bucket.clear();
            if self.spare.len() < 64 {
                self.spare.push(bucket);
            }
            self.base += 1;
            // Jump over empty stretches instead of walking them bucket by bucket.
            if self.ring.is_empty() {
                let next_far = self.overflow.keys().next().copied().unwrap_or(u64::MAX);
                self.base = self.base.max(next_far.min(last));
            }
        }
    }
}

/// How long (event time) a rule operator remembers emitted identities.
const IDENTITY_MEMORY_MS: u64 = 86_400_000;

/// Spreads keys over workers: timely routes by the low bits, so mix them first.
#[inline]
fn mix(k: u64) -> u64 {
    k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32
}

fn frontier_min(f: &MutableAntichain<u64>) -> Option<u64> {
    f.frontier().iter().min().copied()
}

/// Routes events to the keys of `space`, for the event types some detector of that keyspace
/// wants (read from the swap board once per invocation: a swap may add types).
pub(crate) fn route<'s>(
    events: StreamVec<'s, u64, Event>,
    topo: Arc<Topology>,
    space: Keyspace,
    board: Arc<SwapBoard>,
    quiesce: Arc<Quiesce>,
) -> StreamVec<'s, u64, Keyed> {
    events.unary(Pipeline, "Route", move |_, _| {
        let mut keyed: Vec<Keyed> = Vec::new();
        move |input, output| {
            let types = board.routed(space);
            let mut consumed = 0;
            input.for_each_stamp(|cap, data| {
                for batch in data {
                    consumed += batch.len();
                    for ev in batch.drain(..) {
                        if types.contains(ev.kind) {
                            for_each_key(&topo, space, &ev, |key| keyed.push(Keyed { key, ev }));
                        }
                    }
                }
                // Counted before they can reach a consumer (checkpoint quiescence, see checkpoint.rs).
                quiesce.sent(keyed.len());
                output.session(&cap).give_iterator(keyed.drain(..));
            });
            quiesce.consumed(consumed);
        }
    })
}

/// Per upstream worker, its recent watermark advances: which input moved the watermark past a
/// decision point.
struct TickLog {
    per_worker: Vec<VecDeque<(u64, u64)>>,
    end: Vec<Option<u64>>,
}

impl TickLog {
    fn new(peers: usize) -> TickLog {
        TickLog { per_worker: vec![VecDeque::new(); peers], end: vec![None; peers] }
    }

    fn record(&mut self, t: &Tick) {
        let w = t.worker as usize;
        if w >= self.per_worker.len() {
            return;
        }
        // A worker's last tick passes every decision point: its input is closed for good.
        self.per_worker[w].push_back((if t.last { u64::MAX } else { t.to }, t.ingest_ns));
        if t.last {
            self.end[w] = Some(t.to);
        }
    }

    /// The ingest instant of the input that moved the global watermark past `point`: for each
    /// upstream worker the first advance beyond `point`, latest over workers. (A worker with no
    /// advance beyond it yet counts with its latest advance; never later than known inputs, so
    /// latency is measured from a real ingest instant.)
    fn final_instant(&self, point: u64) -> u64 {
        let mut latest = 0;
        for log in &self.per_worker {
            if let Some((_, ns)) = log.iter().find(|(to, _)| *to > point).or(log.back()) {
                latest = latest.max(*ns);
            }
        }
        latest
    }

    /// Forget advances that cannot be the first beyond any future decision point `≥ w`. Keeps the
    /// newest so a worker that has not moved since still answers.
    fn prune(&mut self, w: u64) {
        for log in &mut self.per_worker {
            while log.len() > 1 && log.get(1).is_some_and(|(to, _)| *to <= w) {
                log.pop_front();
            }
        }
    }

    /// The end-of-input watermark: the largest ts of the input + 1 ms, over all workers.
    fn end_watermark(&self) -> u64 {
        self.end.iter().flatten().copied().max().unwrap_or(0)
    }
}

/// The mutable state of one rule operator, shared with its worker (which captures it for a
/// checkpoint between steps, see `checkpoint.rs`).
pub(crate) struct RuleOpState {
    pub hosted: Vec<Hosted>,
    pub seen_swaps: usize,
    /// Events for order-driven detectors, bucketed by time.
    pub pending: PendingQueue,
    pub watermark: u64,
    /// Identities already emitted: two triggers with one identity (two same-millisecond grants
    /// of one card at two doors) are one alarm, the first in total order. Kept for a day of
    /// event time (alarms are rare, so this stays small).
    pub emitted: HashSet<(RuleId, u64, Key)>,
    pub next_prune: u64,
}

impl RuleOpState {
    pub fn new(hosted: Vec<Hosted>) -> RuleOpState {
        RuleOpState {
            hosted,
            seen_swaps: 0,
            pending: PendingQueue::default(),
            watermark: 0,
            emitted: HashSet::new(),
            next_prune: 0,
        }
    }

    /// Saves the operator's state (detectors, pending events, watermark, emitted identities).
    pub fn capture(&self, worker: usize, space: Keyspace) -> Result<OperatorState, String> {
        let mut hosted = Vec::with_capacity(self.hosted.len());
        for h in &self.hosted {
            if h.until != u64::MAX {
                return Err(format!("a rule swap is still settling (until the watermark passes {})", h.until));
            }
            let det = h.det.save().map_err(|e| e.to_string())?;
            hosted.push(HostedState { rules: h.rules.iter().map(|r| r.0).collect(), from: h.from, det });
        }
        let mut pending = Vec::new();
        self.pending.for_each(|k| pending.push(*k));
        Ok(OperatorState {
            worker,
            space,
            hosted,
            pending,
            watermark: self.watermark,
            emitted: self.emitted.iter().map(|(r, ts, k)| (r.0, *ts, *k)).collect(),
            next_prune: self.next_prune,
        })
    }

    /// Loads a saved state into an operator built with the same rules; `map` takes saved rule
    /// ids to this engine's.
    pub fn restore(
        &mut self,
        saved: &OperatorState,
        map: &[Option<RuleId>],
        device_order: &[u32],
        seen_swaps: usize,
    ) -> Result<(), String> {
        let remap = |r: u16| map.get(r as usize).copied().flatten();
        for hs in &saved.hosted {
            let rules: Vec<RuleId> = hs.rules.iter().filter_map(|r| remap(*r)).collect();
            let h = self
                .hosted
                .iter_mut()
                .find(|h| h.rules == rules)
                .ok_or_else(|| format!("no detector here runs rules {rules:?} of the checkpoint"))?;
            h.det.load(&hs.det).map_err(|e| e.to_string())?;
            h.from = hs.from;
        }
        for k in &saved.pending {
            let (hi, lo) = k.ev.order_key(device_order);
            self.pending.push(((hi, lo, k.key), *k));
        }
        self.watermark = saved.watermark;
        self.emitted = saved.emitted.iter().filter_map(|(r, ts, k)| remap(*r).map(|id| (id, *ts, *k))).collect();
        self.next_prune = saved.next_prune;
        self.seen_swaps = seen_swaps;
        Ok(())
    }
}

/// The rule operator of one keyspace: hosts its detectors, feeds arrival-driven detectors at once
/// and order-driven ones in total order as the frontier passes, applies hot swaps at their
/// boundary, and resolves each alarm's finality instant for latency.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rules<'s>(
    keyed: StreamVec<'s, u64, Keyed>,
    ticks: StreamVec<'s, u64, Tick>,
    topo: Arc<Topology>,
    space: Keyspace,
    state: Rc<RefCell<RuleOpState>>,
    board: Arc<SwapBoard>,
    quiesce: Arc<Quiesce>,
    report: Rc<RefCell<RuleReport>>,
) -> StreamVec<'s, u64, RawAlarm> {
    let peers = keyed.scope().peers();
    keyed.binary_frontier(ticks, Exchange::new(|k: &Keyed| mix(k.key)), Pipeline, "Rules", move |cap, _info| {
        let mut cap: Option<Capability<u64>> = Some(cap);
        let ordered_types = |h: &[Hosted]| h.iter().filter(|h| h.ordered).fold(TypeSet::EMPTY, |s, h| s.union(h.types));
        let mut ordered = ordered_types(&state.borrow().hosted);
        let mut arrived: Vec<Keyed> = Vec::new();
        let mut ticks_log = TickLog::new(peers);
        let mut fired: Vec<RawAlarm> = Vec::new();
        let device_order: Vec<u32> = topo.device_order().to_vec();

        move |(events, events_frontier), (tick_input, ticks_frontier), output| {
            let mut guard = state.borrow_mut();
            let RuleOpState { hosted, seen_swaps, pending, watermark, emitted, next_prune } = &mut *guard;
            tick_input.for_each(|_, data| data.iter().for_each(|t| ticks_log.record(t)));
            events.for_each(|_, data| arrived.append(data));
            let consumed = arrived.len();

            // Swaps published before any event we now hold was sent (see swap.rs).
            let version = board.version.load(Ordering::Acquire) as usize;
            if version != *seen_swaps {
                let state = board.state.lock().unwrap_or_else(|e| e.into_inner());
                for published in &state.swaps[(*seen_swaps).min(state.swaps.len())..] {
                    swap::apply(&topo, space, hosted, published);
                }
                *seen_swaps = state.swaps.len();
                ordered = ordered_types(hosted);
            }

            for k in arrived.drain(..) {
                let ts = k.ev.ts.0;
                for h in hosted.iter_mut() {
                    if !h.ordered && h.types.contains(k.ev.kind) && h.sees(ts) {
                        h.det.on_arrival(k.key, &k.ev, &mut fired);
                    }
                }
                if ordered.contains(k.ev.kind) {
                    let (hi, lo) = k.ev.order_key(&device_order);
                    pending.push(((hi, lo, k.key), k));
                }
            }

            let closed = events_frontier.is_empty() && ticks_frontier.is_empty();
            let target = if closed {
                Some(ticks_log.end_watermark())
            } else {
                match (frontier_min(events_frontier), frontier_min(ticks_frontier)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            };
            if let Some(w) = target.filter(|&w| w > *watermark) {
                // Everything below `w` is known: evaluate it in total order.
                pending.drain_below(w, |k| {
                    let ts = k.ev.ts.0;
                    for h in hosted.iter_mut() {
                        // A retired detector decides nothing at or after its boundary.
                        h.det.advance(Watermark(ts.min(h.until)), &mut fired);
                        if h.ordered && h.types.contains(k.ev.kind) && h.sees(ts) {
                            h.det.on_final(k.key, &k.ev, &mut fired);
                        }
                    }
                });
                for h in hosted.iter_mut() {
                    h.det.advance(Watermark(w.min(h.until)), &mut fired);
                }
                // Retired detectors whose boundary the watermark has passed drop their state.
                hosted.retain(|h| h.until > w);
                *watermark = w;
            }
            fired.retain(|a| emitted.insert((a.rule, a.ts.0, a.key)));
            if *watermark >= *next_prune {
                let w = *watermark;
                emitted.retain(|(_, ts, _)| ts.saturating_add(IDENTITY_MEMORY_MS) >= w);
                *next_prune = w.saturating_add(3_600_000);
            }
            // Resolve when each alarm became final (for latency).
            for a in fired.iter_mut() {
                if let Finality::Watermark { point, at_least_ns } = a.finality {
                    let ns = ticks_log.final_instant(point.0).max(at_least_ns);
                    a.finality = Finality::Arrival { ingest_ns: ns };
                }
            }
            if !fired.is_empty() {
                if let Some(c) = cap.as_ref() {
                    quiesce.sent(fired.len());
                    output.session(c).give_iterator(fired.drain(..));
                }
            }
            quiesce.consumed(consumed);
            ticks_log.prune(*watermark);
            if closed {
                if cap.take().is_some() {
                    let mut r = report.borrow_mut();
                    r.pending += hosted.iter().map(|h| h.det.pending()).sum::<u64>();
                    r.dropped += hosted.iter().map(|h| h.det.dropped()).sum::<u64>();
                }
            } else if let (Some(c), Some(f)) = (cap.as_mut(), target) {
                if f > *c.time() {
                    c.downgrade(&f);
                }
            }
        }
    })
}

/// The alarm sink's state, shared with worker 0 for checkpoints.
#[derive(Debug)]
pub(crate) struct SinkLive {
    pub directory: HashMap<u64, Box<str>>,
    pub waiting: Vec<(u64, RawAlarm)>,
    pub next_id: u64,
}

impl Default for SinkLive {
    fn default() -> Self {
        SinkLive { directory: HashMap::new(), waiting: Vec::new(), next_id: 1 }
    }
}

impl SinkLive {
    pub fn capture(&self) -> SinkState {
        SinkState {
            directory: self.directory.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            waiting: self.waiting.clone(),
            next_id: self.next_id,
        }
    }

    pub fn restore(&mut self, saved: &SinkState, map: &[Option<RuleId>]) {
        self.directory = saved.directory.iter().map(|(k, v)| (*k, v.clone().into_boxed_str())).collect();
        self.waiting = saved
            .waiting
            .iter()
            .filter_map(|(t, a)| {
                map.get(a.rule.0 as usize).copied().flatten().map(|rule| (*t, RawAlarm { rule, ..*a }))
            })
            .collect();
        self.next_id = saved.next_id;
    }
}

/// The alarm sink, on worker 0: learns card names, renders alarms, records latency per rule and
/// sends them to the host. An alarm that names a card not yet known waits until the names stream
/// passes its time (names are sent no later than the events that carry the card).
#[allow(clippy::too_many_arguments)]
pub(crate) fn sink<'s>(
    alarms: StreamVec<'s, u64, RawAlarm>,
    names: StreamVec<'s, u64, CardName>,
    topo: Arc<Topology>,
    board: Arc<SwapBoard>,
    tx: Sender<Alarm>,
    state: Rc<RefCell<SinkLive>>,
    quiesce: Arc<Quiesce>,
    report: Rc<RefCell<SinkReport>>,
    clock: IngestClock,
) -> StreamVec<'s, u64, ()> {
    alarms.binary_frontier::<_, timely::container::CapacityContainerBuilder<Vec<()>>, _, _, _, _>(
        names,
        Exchange::new(|_: &RawAlarm| 0),
        Exchange::new(|_: &CardName| 0),
        "AlarmSink",
        move |_cap, _info| {
            move |(alarm_input, _alarm_frontier), (name_input, name_frontier), _output| {
                let mut guard = state.borrow_mut();
                let SinkLive { directory, waiting, next_id } = &mut *guard;
                let mut consumed = 0;
                name_input.for_each(|_, data| {
                    consumed += data.len();
                    for n in data.drain(..) {
                        directory.entry(n.key).or_insert_with(|| n.name.into_boxed_str());
                    }
                });
                // A card-keyed alarm's key is a card its trigger carries; the evidence cards are the
                // trigger's and the other event's.
                let known = |dir: &HashMap<u64, Box<str>>, a: &RawAlarm| {
                    let cards = [a.trigger.card, a.other.map(|o| o.card).unwrap_or(CardKey::NONE)];
                    cards.iter().all(|c| !c.is_some() || dir.contains_key(&c.0))
                };
                let mut ready: Vec<RawAlarm> = Vec::new();
                alarm_input.for_each(|_, data| {
                    consumed += data.len();
                    for a in data.drain(..) {
                        if known(directory, &a) {
                            ready.push(a);
                        } else {
                            // A card's name is sent at an input time no later than the ts of the
                            // events carrying it: wait until the names stream passes them.
                            let t = a.other.map_or(a.trigger.ts.0, |o| o.ts.0.max(a.trigger.ts.0));
                            waiting.push((t, a));
                        }
                    }
                });
                waiting.retain(|(t, a)| {
                    if known(directory, a) || !name_frontier.less_equal(t) {
                        ready.push(*a);
                        false
                    } else {
                        true
                    }
                });
                if !ready.is_empty() {
                    let book = board.book.read().unwrap_or_else(|e| e.into_inner());
                    let renderer = Renderer { topo: &topo, book: &book };
                    let name = |c: CardKey| directory.get(&c.0).map(|s| s.to_string());
                    let mut r = report.borrow_mut();
                    for raw in ready {
                        let now = clock.now_ns();
                        let final_ns = match raw.finality {
                            Finality::Arrival { ingest_ns } => ingest_ns,
                            Finality::Watermark { at_least_ns, .. } => at_least_ns,
                        };
                        let latency_us = now.saturating_sub(final_ns) / 1_000;
                        let alarm = renderer.render(&raw, *next_id, latency_us, &name);
                        *next_id += 1;
                        let (count, h) = r.per_rule.entry(raw.rule).or_insert_with(|| (0, new_histogram()));
                        *count += 1;
                        h.saturating_record(latency_us.max(1));
                        // The host may have stopped listening; alarms are still counted.
                        let _ = tx.send(alarm);
                    }
                }
                quiesce.consumed(consumed);
            }
        },
    )
}

/// A latency histogram in µs: 1 µs to 1 hour, 3 significant figures.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_rules::{CardKey, DeviceIx, EventTime, EventType};

    fn pending(ts: u64) -> Pending {
        let ev = Event {
            ts: EventTime(ts),
            card: CardKey::NONE,
            ingest_ns: 0,
            device: DeviceIx(0),
            kind: EventType::DoorOpened,
            flags: 0,
            count: 1,
        };
        let (hi, lo) = ev.order_key(&[0]);
        ((hi, lo, 0), Keyed { key: 0, ev })
    }

    fn drain(q: &mut PendingQueue, w: u64) -> Vec<u64> {
        let mut out = Vec::new();
        q.drain_below(w, |k| out.push(k.ev.ts.0));
        out
    }

    #[test]
    fn events_come_out_in_time_order_and_none_is_held_back() {
        // Regression: the first push used to re-base the ring above a later, earlier event,
        // which then waited behind the ring while the watermark passed it.
        let mut q = PendingQueue::default();
        q.push(pending(100_000));
        q.push(pending(60_000));
        q.push(pending(80_000));
        assert_eq!(drain(&mut q, 62_000), [60_000]);
        assert_eq!(drain(&mut q, 90_000), [80_000]);
        q.push(pending(95_000));
        q.push(pending(90_000));
        assert_eq!(drain(&mut q, 100_000), [90_000, 95_000]);
        assert_eq!(drain(&mut q, 100_001), [100_000]);
        // Far ahead (beyond the ring) and back again.
        q.push(pending(100_001 + (RING_BUCKETS << BUCKET_SHIFT) * 3));
        q.push(pending(100_005));
        assert_eq!(drain(&mut q, u64::MAX >> 1), [100_005, 100_001 + (RING_BUCKETS << BUCKET_SHIFT) * 3]);
    }
}
