//! `match`: every trigger event that passes the filter is an alarm.
//!
//! Final on arrival when every trigger of one identity (rule, ts, key) has the same priority —
//! door, area, device keys. Card-keyed matches (`after_hours_access`) take their priority from the
//! trigger's door, and two same-millisecond grants of one card at doors of different criticality
//! share an identity: the alarm is the first in the total order, so they run in order.

use std::collections::HashSet;

use crate::alarm::{Finality, RawAlarm};
use crate::detect::{Detector, StateError, load_state, save_state};
use crate::event::{Event, TypeSet};
use crate::filter::Filter;
use crate::keyspace::{Key, Keyspace};
use crate::pack::RuleId;
use crate::time::Watermark;

/// See the module docs.
#[derive(Debug)]
pub struct Matcher {
    rule: RuleId,
    filter: Filter,
    ordered: bool,
    /// Identities emitted with ts at or above the watermark: a second trigger with the same
    /// (ts, key) may still arrive, and must not alarm again.
    recent: HashSet<(u64, Key)>,
}

impl Matcher {
    /// The detector for `rule` over `space`.
    pub fn new(rule: RuleId, filter: Filter, space: Keyspace) -> Matcher {
        Matcher { rule, filter, ordered: space == Keyspace::Card, recent: HashSet::new() }
    }

    fn check(&mut self, key: Key, ev: &Event, out: &mut Vec<RawAlarm>) {
        if self.filter.matches(ev) && self.recent.insert((ev.ts.0, key)) {
            let finality = if self.ordered {
                Finality::Watermark { point: ev.ts, at_least_ns: ev.ingest_ns }
            } else {
                Finality::Arrival { ingest_ns: ev.ingest_ns }
            };
            out.push(RawAlarm { rule: self.rule, ts: ev.ts, key, trigger: *ev, other: None, excess: 0, finality });
        }
    }
}

impl Detector for Matcher {
    fn save(&self) -> Result<Vec<u8>, StateError> {
        save_state(&self.recent)
    }
    fn load(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        self.recent = load_state(bytes)?;
        Ok(())
    }

    fn types(&self) -> TypeSet {
        self.filter.types
    }

    fn needs_order(&self) -> bool {
        self.ordered
    }

    fn on_arrival(&mut self, key: Key, ev: &Event, out: &mut Vec<RawAlarm>) {
        self.check(key, ev, out);
    }

    fn on_final(&mut self, key: Key, ev: &Event, out: &mut Vec<RawAlarm>) {
        self.check(key, ev, out);
    }

    fn advance(&mut self, w: Watermark, _out: &mut Vec<RawAlarm>) {
        if !self.recent.is_empty() {
            self.recent.retain(|(ts, _)| *ts >= w.0);
        }
    }

    fn pending(&self) -> u64 {
        0
    }
}
