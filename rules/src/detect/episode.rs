//! An `absence` with episodes — `door_held_open`: a `first` (door.opened) not followed by a `then`
//! (door.closed) within the window (inclusive). Order matters, so it runs on events in total
//! order: a repeated first while the episode is open is the same episode; an `early` event
//! (door.held) fires the open episode at once, or with none open is its own trigger. One alarm per
//! episode.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use crate::alarm::{Finality, RawAlarm};
use crate::detect::{Detector, StateError, StateMap, load_state, save_state};
use crate::event::{Event, TypeSet};
use crate::filter::Filter;
use crate::keyspace::{Key, Keyspace, dense_len};
use crate::pack::{RuleId, Window};
use crate::time::{EventTime, Watermark};
use crate::topology::{DoorIx, Topology};

/// See the module docs.
#[derive(Debug)]
pub struct Episode {
    rule: RuleId,
    first: Filter,
    then: TypeSet,
    early: TypeSet,
    window: Window,
    topo: Arc<Topology>,
    state: StateMap<KeyState>,
    deadlines: BinaryHeap<Reverse<(EventTime, Key)>>,
    pending: u64,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct KeyState {
    open: Option<Opening>,
    /// ts of the last early event with no episode open (same ts = same identity).
    lone_early: Option<EventTime>,
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Opening {
    ev: Event,
    alarmed: bool,
}

impl Episode {
    /// The detector for `rule`.
    pub fn new(
        topo: &Arc<Topology>,
        space: Keyspace,
        rule: RuleId,
        first: Filter,
        then: TypeSet,
        early: TypeSet,
        window: Window,
    ) -> Episode {
        Episode {
            rule,
            first,
            then,
            early,
            window,
            topo: topo.clone(),
            state: StateMap::new(dense_len(topo, space)),
            deadlines: BinaryHeap::new(),
            pending: 0,
        }
    }

    fn window_ms(&self, key: Key) -> u64 {
        match self.window {
            Window::Fixed(ms) => ms,
            Window::HeldOpen => self.topo.door_info(DoorIx(key as u32)).held_open_ms,
        }
    }

    fn alarm(&self, key: Key, trigger: Event, other: Option<Event>, finality: Finality) -> RawAlarm {
        RawAlarm { rule: self.rule, ts: trigger.ts, key, trigger, other, excess: 0, finality }
    }
}

impl Detector for Episode {
    fn save(&self) -> Result<Vec<u8>, StateError> {
        save_state(&(&self.state, &self.deadlines, self.pending))
    }
    fn load(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let (state, deadlines, pending): (StateMap<KeyState>, _, _) = load_state(bytes)?;
        state.check_shape(&self.state)?;
        (self.state, self.deadlines, self.pending) = (state, deadlines, pending);
        Ok(())
    }

    fn types(&self) -> TypeSet {
        self.first.types.union(self.then).union(self.early)
    }

    fn needs_order(&self) -> bool {
        true
    }

    fn on_final(&mut self, key: Key, ev: &Event, out: &mut Vec<RawAlarm>) {
        let at_ev = Finality::Watermark { point: ev.ts, at_least_ns: ev.ingest_ns };
        // A type may be several of first/then/early; check in the order an episode reads them.
        if self.early.contains(ev.kind) {
            let st = *self.state.get_mut(key);
            match st.open {
                Some(o) if !o.alarmed => {
                    self.state.get_mut(key).open = Some(Opening { alarmed: true, ..o });
                    self.pending -= 1;
                    out.push(self.alarm(key, o.ev, Some(*ev), at_ev));
                }
                Some(_) => {}
                None if st.lone_early != Some(ev.ts) => {
                    self.state.get_mut(key).lone_early = Some(ev.ts);
                    out.push(self.alarm(key, *ev, None, at_ev));
                }
                None => {}
            }
            return;
        }
        if self.then.contains(ev.kind) {
            let st = self.state.get_mut(key);
            if let Some(o) = st.open.take() {
                if !o.alarmed {
                    self.pending -= 1;
                }
            }
            return;
        }
        if self.first.matches(ev) && self.state.get_mut(key).open.is_none() {
            self.state.get_mut(key).open = Some(Opening { ev: *ev, alarmed: false });
            self.pending += 1;
            let d = ev.ts.plus_ms(self.window_ms(key));
            self.deadlines.push(Reverse((d, key)));
        }
    }

    fn advance(&mut self, w: Watermark, out: &mut Vec<RawAlarm>) {
        while let Some(&Reverse((deadline, key))) = self.deadlines.peek() {
            if !w.passed(deadline) {
                break;
            }
            self.deadlines.pop();
            let window = self.window_ms(key);
            let st = self.state.get_mut(key);
            if let Some(o) = st.open.as_mut() {
                // The deadline belongs to this episode only if it has stayed open since.
                if !o.alarmed && o.ev.ts.plus_ms(window) == deadline {
                    o.alarmed = true;
                    let ev = o.ev;
                    self.pending -= 1;
                    let finality = Finality::Watermark { point: deadline, at_least_ns: ev.ingest_ns };
                    out.push(self.alarm(key, ev, None, finality));
                }
            }
        }
    }

    fn pending(&self) -> u64 {
        self.pending
    }
}
