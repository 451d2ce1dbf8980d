//! `count` and `distinct`: `threshold` matching events (or distinct values of a field) for one key
//! with ts in `[t − within, t]`; after an alarm the key is quiet through `t + within`. Counted in
//! total order, so the trigger is the event that reaches the threshold.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::alarm::{Finality, RawAlarm};
use crate::detect::{Detector, StateError, StateMap, load_state, save_state};
use crate::event::{Event, TypeSet};
use crate::filter::{Filter, event_area};
use crate::keyspace::{Key, Keyspace, dense_len};
use crate::pack::{DistinctField, RuleId};
use crate::time::Watermark;
use crate::topology::Topology;

/// Per-key cap on remembered events of a `distinct` window.
pub const MAX_DISTINCT_WINDOW: usize = 4_096;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct CountState {
    /// The last `threshold` times (enough to know whether `threshold` fall in the window).
    times: VecDeque<u64>,
    /// Quiet through this ts (inclusive) after an alarm.
    quiet_through: Option<u64>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Count {
    rule: RuleId,
    filter: Filter,
    threshold: usize,
    within_ms: u64,
    state: StateMap<CountState>,
    sparse: bool,
    next_sweep: u64,
}

impl Count {
    /// The detector for `rule`.
    pub fn new(
        topo: &Arc<Topology>,
        space: Keyspace,
        rule: RuleId,
        filter: Filter,
        threshold: u32,
        within_ms: u64,
    ) -> Count {
        Count {
            rule,
            filter,
            threshold: threshold.max(1) as usize,
            within_ms,
            state: StateMap::new(dense_len(topo, space)),
            sparse: !space.is_dense(),
            next_sweep: 0,
        }
    }
}

impl Detector for Count {
    fn save(&self) -> Result<Vec<u8>, StateError> {
        save_state(&(&self.state, self.next_sweep))
    }
    fn load(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let (state, next_sweep): (StateMap<CountState>, u64) = load_state(bytes)?;
        state.check_shape(&self.state)?;
        (self.state, self.next_sweep) = (state, next_sweep);
        Ok(())
    }

    fn types(&self) -> TypeSet {
        self.filter.types
    }

    fn needs_order(&self) -> bool {
        true
    }

    fn on_final(&mut self, key: Key, ev: &Event, out: &mut Vec<RawAlarm>) {
        if !self.filter.matches(ev) {
            return;
        }
        let t = ev.ts.0;
        let st = self.state.get_mut(key);
        st.times.push_back(t);
        if st.times.len() > self.threshold {
            st.times.pop_front();
        }
        let full = st.times.len() == self.threshold
            && st.times.front().is_some_and(|&f| f >= t.saturating_sub(self.within_ms));
        if full && st.quiet_through.is_none_or(|q| t > q) {
            st.quiet_through = Some(t + self.within_ms);
            let finality = Finality::Watermark { point: ev.ts, at_least_ns: ev.ingest_ns };
            out.push(RawAlarm { rule: self.rule, ts: ev.ts, key, trigger: *ev, other: None, excess: 0, finality });
        }
    }

    fn advance(&mut self, w: Watermark, _out: &mut Vec<RawAlarm>) {
        // Sparse keys (cards) idle past their window and quiet period carry no information.
        if self.sparse && w.0 >= self.next_sweep {
            let within = self.within_ms;
            if let super::StateMap::Sparse(m) = &mut self.state {
                m.retain(|_, s| {
                    s.times.back().is_some_and(|&t| t + within >= w.0) || s.quiet_through.is_some_and(|q| q >= w.0)
                });
            }
            self.next_sweep = w.0 + within.max(1_000);
        }
    }

    fn pending(&self) -> u64 {
        0
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct DistinctState {
    window: VecDeque<(u64, u64)>,
    quiet_through: Option<u64>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Distinct {
    rule: RuleId,
    filter: Filter,
    field: DistinctField,
    threshold: usize,
    within_ms: u64,
    topo: Arc<Topology>,
    state: StateMap<DistinctState>,
    dropped: u64,
    scratch: Vec<u64>,
}

impl Distinct {
    /// The detector for `rule`.
    pub fn new(
        topo: &Arc<Topology>,
        space: Keyspace,
        rule: RuleId,
        filter: Filter,
        field: DistinctField,
        threshold: u32,
        within_ms: u64,
    ) -> Distinct {
        Distinct {
            rule,
            filter,
            field,
            threshold: threshold.max(1) as usize,
            within_ms,
            topo: topo.clone(),
            state: StateMap::new(dense_len(topo, space)),
            dropped: 0,
            scratch: Vec::new(),
        }
    }

    fn value(&self, ev: &Event) -> Option<u64> {
        let topo = &*self.topo;
        match self.field {
            DistinctField::Door => topo.door_of(ev.device).map(|d| d.0 as u64),
            DistinctField::Card => ev.card.is_some().then_some(ev.card.0),
            DistinctField::Device => Some(ev.device.0 as u64),
            DistinctField::Area => event_area(topo, ev).map(|a| a.0 as u64),
            DistinctField::Site => Some(topo.device_info(ev.device).site.0 as u64),
        }
    }
}

impl Detector for Distinct {
    fn save(&self) -> Result<Vec<u8>, StateError> {
        save_state(&(&self.state, self.dropped))
    }
    fn load(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let (state, dropped): (StateMap<DistinctState>, u64) = load_state(bytes)?;
        state.check_shape(&self.state)?;
        (self.state, self.dropped) = (state, dropped);
        Ok(())
    }

    fn types(&self) -> TypeSet {
        self.filter.types
    }

    fn needs_order(&self) -> bool {
        true
    }

    fn on_final(&mut self, key: Key, ev: &Event, out: &mut Vec<RawAlarm>) {
        if !self.filter.matches(ev) {
            return;
        }
        let Some(value) = self.value(ev) else { return };
        let t = ev.ts.0;
        let lo = t.saturating_sub(self.within_ms);
        let st = self.state.get_mut(key);
        while st.window.front().is_some_and(|&(ts, _)| ts < lo) {
            st.window.pop_front();
        }
        if st.window.len() >= MAX_DISTINCT_WINDOW {
            st.window.pop_front();
            self.dropped += 1;
        }
        st.window.push_back((t, value));
        self.scratch.clear();
        self.scratch.extend(st.window.iter().map(|&(_, v)| v));
        self.scratch.sort_unstable();
        self.scratch.dedup();
        if self.scratch.len() >= self.threshold && st.quiet_through.is_none_or(|q| t > q) {
            st.quiet_through = Some(t + self.within_ms);
            let finality = Finality::Watermark { point: ev.ts, at_least_ns: ev.ingest_ns };
            out.push(RawAlarm { rule: self.rule, ts: ev.ts, key, trigger: *ev, other: None, excess: 0, finality });
        }
    }

    fn advance(&mut self, _w: Watermark, _out: &mut Vec<RawAlarm>) {}

    fn pending(&self) -> u64 {
        0
    }

    fn dropped(&self) -> u64 {
        self.dropped
    }
}
