//! `device_offline`: a device that has sent a `heartbeat` is named by no event for more than
//! `missed` × its `heartbeat_s`. Trigger: its last event; fires when the watermark passes
//! `last + missed × hb`, and again only after the device is seen again. Runs in total order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use crate::alarm::{Finality, RawAlarm};
use crate::detect::{Detector, StateError, load_state, save_state};
use crate::event::{Event, EventType, TypeSet};
use crate::filter::{ALL_TYPES, Filter};
use crate::keyspace::Key;
use crate::pack::RuleId;
use crate::time::{EventTime, Watermark};
use crate::topology::{DeviceIx, Topology};

/// See the module docs.
#[derive(Debug)]
pub struct DeviceOffline {
    rule: RuleId,
    filter: Filter,
    silence_ms: Vec<u64>,
    /// Per device: has it ever sent a heartbeat; its last event.
    devices: Vec<(bool, Option<Event>)>,
    deadlines: BinaryHeap<Reverse<(EventTime, Key)>>,
}

impl DeviceOffline {
    /// The detector for `rule` over every device.
    pub fn new(topo: &Arc<Topology>, rule: RuleId, filter: Filter, missed: u32) -> DeviceOffline {
        let silence_ms = topo.devices().map(|(_, d)| d.heartbeat_s as u64 * 1000 * missed as u64).collect::<Vec<_>>();
        DeviceOffline {
            rule,
            filter,
            silence_ms,
            devices: vec![(false, None); topo.device_count()],
            deadlines: BinaryHeap::new(),
        }
    }
}

impl Detector for DeviceOffline {
    fn save(&self) -> Result<Vec<u8>, StateError> {
        save_state(&(&self.devices, &self.deadlines))
    }
    fn load(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let (devices, deadlines): (Vec<(bool, Option<Event>)>, _) = load_state(bytes)?;
        if devices.len() != self.devices.len() {
            return Err(StateError::Mismatch(format!(
                "{} devices saved, the site has {}",
                devices.len(),
                self.devices.len()
            )));
        }
        (self.devices, self.deadlines) = (devices, deadlines);
        Ok(())
    }

    fn types(&self) -> TypeSet {
        ALL_TYPES
    }

    fn needs_order(&self) -> bool {
        true
    }

    fn on_final(&mut self, key: Key, ev: &Event, _out: &mut Vec<RawAlarm>) {
        if !self.filter.matches(ev) {
            return;
        }
        let slot = &mut self.devices[key as usize];
        if ev.kind == EventType::Heartbeat && ev.device == DeviceIx(key as u32) {
            slot.0 = true;
        }
        slot.1 = Some(*ev);
        if slot.0 {
            self.deadlines.push(Reverse((ev.ts.plus_ms(self.silence_ms[key as usize]), key)));
        }
    }

    fn advance(&mut self, w: Watermark, out: &mut Vec<RawAlarm>) {
        while let Some(&Reverse((deadline, key))) = self.deadlines.peek() {
            if !w.passed(deadline) {
                break;
            }
            self.deadlines.pop();
            let silence = self.silence_ms[key as usize];
            if let (true, Some(last)) = self.devices[key as usize] {
                // Only the deadline of the device's latest event counts.
                if last.ts.plus_ms(silence) == deadline {
                    let finality = Finality::Watermark { point: deadline, at_least_ns: last.ingest_ns };
                    out.push(RawAlarm {
                        rule: self.rule,
                        ts: last.ts,
                        key,
                        trigger: last,
                        other: None,
                        excess: 0,
                        finality,
                    });
                }
            }
        }
    }

    fn pending(&self) -> u64 {
        // Devices whose latest deadline is still ahead.
        self.deadlines
            .iter()
            .filter(|Reverse((d, k))| match self.devices[*k as usize] {
                (true, Some(last)) => last.ts.plus_ms(self.silence_ms[*k as usize]) == *d,
                _ => false,
            })
            .count() as u64
    }
}
