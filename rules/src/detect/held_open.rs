//! `door_held_open`: a `door.opened` at D not followed by `door.closed` at D within the door's
//! `held_open_s` (inclusive). Order matters (a repeated opening is the same opening; a panel's
//! `door.held` fires early only while the door is open), so this runs on events in total order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::alarm::{Finality, RawAlarm};
use crate::detect::Detector;
use crate::event::{Event, EventType, TypeSet};
use crate::keyspace::Key;
use crate::pack::RuleId;
use crate::time::{EventTime, Watermark};
use crate::topology::{DoorIx, Topology};

/// See the module docs.
#[derive(Debug)]
pub struct HeldOpen {
    rule: RuleId,
    held_ms: Vec<u64>,
    /// Per door: the current opening, if open.
    open: Vec<Option<Opening>>,
    /// Per door: ts of the last `door.held` with no known opening (same ts = same identity).
    lone_held: Vec<Option<EventTime>>,
    deadlines: BinaryHeap<Reverse<(EventTime, Key)>>,
}

#[derive(Debug, Clone, Copy)]
struct Opening {
    ev: Event,
    alarmed: bool,
}

impl HeldOpen {
    /// The detector for `rule` over every door of `topo`.
    pub fn new(topo: &Topology, rule: RuleId) -> HeldOpen {
        let held_ms = (0..topo.door_count()).map(|d| topo.door_info(DoorIx(d as u32)).held_open_ms).collect();
        HeldOpen {
            rule,
            held_ms,
            open: vec![None; topo.door_count()],
            lone_held: vec![None; topo.door_count()],
            deadlines: BinaryHeap::new(),
        }
    }

    fn deadline(&self, key: Key, opening: &Event) -> EventTime {
        opening.ts.plus_ms(self.held_ms[key as usize])
    }
}

impl Detector for HeldOpen {
    fn types(&self) -> TypeSet {
        TypeSet::of(&[EventType::DoorOpened, EventType::DoorClosed, EventType::DoorHeld])
    }

    fn needs_order(&self) -> bool {
        true
    }

    fn on_final(&mut self, key: Key, ev: &Event, out: &mut Vec<RawAlarm>) {
        let slot = &mut self.open[key as usize];
        match (ev.kind, slot.as_mut()) {
            (EventType::DoorOpened, None) => {
                *slot = Some(Opening { ev: *ev, alarmed: false });
                let d = self.deadline(key, ev);
                self.deadlines.push(Reverse((d, key)));
            }
            (EventType::DoorClosed, Some(_)) => *slot = None,
            (EventType::DoorHeld, Some(o)) if !o.alarmed => {
                o.alarmed = true;
                let finality = Finality::Watermark { point: ev.ts, at_least_ns: ev.ingest_ns };
                out.push(RawAlarm {
                    rule: self.rule,
                    ts: o.ev.ts,
                    key,
                    trigger: o.ev,
                    other: Some(*ev),
                    excess: 0,
                    finality,
                });
            }
            (EventType::DoorHeld, None) if self.lone_held[key as usize] != Some(ev.ts) => {
                self.lone_held[key as usize] = Some(ev.ts);
                let finality = Finality::Watermark { point: ev.ts, at_least_ns: ev.ingest_ns };
                out.push(RawAlarm { rule: self.rule, ts: ev.ts, key, trigger: *ev, other: None, excess: 0, finality });
            }
            // A repeated opening while open, a close while closed, a held after the alarm: nothing.
            _ => {}
        }
    }

    fn advance(&mut self, w: Watermark, out: &mut Vec<RawAlarm>) {
        while let Some(&Reverse((deadline, key))) = self.deadlines.peek() {
            if !w.passed(deadline) {
                break;
            }
            self.deadlines.pop();
            let held = self.held_ms[key as usize];
            if let Some(o) = self.open[key as usize].as_mut() {
                // The deadline belongs to this opening only if the door has stayed open since.
                if !o.alarmed && o.ev.ts.plus_ms(held) == deadline {
                    o.alarmed = true;
                    let finality = Finality::Watermark { point: deadline, at_least_ns: o.ev.ingest_ns };
                    out.push(RawAlarm {
                        rule: self.rule,
                        ts: o.ev.ts,
                        key,
                        trigger: o.ev,
                        other: None,
                        excess: 0,
                        finality,
                    });
                }
            }
        }
    }

    fn pending(&self) -> u64 {
        self.open.iter().flatten().filter(|o| !o.alarmed).count() as u64
    }
}
