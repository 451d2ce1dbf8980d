//! `tailgating`: at door D every `access.granted` on an `in` reader gives one token valid for
//! crossings with ts in `[g, g + token]`; every `line.crossed` `in` on a camera of D consumes
//! `count` tokens, oldest valid first; each person without a token is an excess. Runs in total
//! order (a grant and a crossing at the same ts: the grant ranks first).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::alarm::{Finality, RawAlarm};
use crate::detect::{Detector, StateError, load_state, save_state};
use crate::event::{Event, EventType, TypeSet};
use crate::filter::Filter;
use crate::keyspace::Key;
use crate::pack::RuleId;
use crate::time::Watermark;
use crate::topology::Topology;

/// Per-door cap on outstanding tokens (beyond it the oldest is dropped and counted).
pub const MAX_TOKENS: usize = 1_024;

/// See the module docs.
#[derive(Debug)]
pub struct Tailgating {
    rule: RuleId,
    filter: Filter,
    token_ms: u64,
    tokens: Vec<VecDeque<u64>>,
    dropped: u64,
}

impl Tailgating {
    /// The detector for `rule` over every door.
    pub fn new(topo: &Arc<Topology>, rule: RuleId, filter: Filter, token_ms: u64) -> Tailgating {
        Tailgating { rule, filter, token_ms, tokens: vec![VecDeque::new(); topo.door_count()], dropped: 0 }
    }
}

impl Detector for Tailgating {
    fn save(&self) -> Result<Vec<u8>, StateError> {
        save_state(&(&self.tokens, self.dropped))
    }
    fn load(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let (tokens, dropped): (Vec<VecDeque<u64>>, u64) = load_state(bytes)?;
        if tokens.len() != self.tokens.len() {
            return Err(StateError::Mismatch(format!(
                "{} doors saved, the site has {}",
                tokens.len(),
                self.tokens.len()
            )));
        }
        (self.tokens, self.dropped) = (tokens, dropped);
        Ok(())
    }

    fn types(&self) -> TypeSet {
        TypeSet::of(&[EventType::AccessGranted, EventType::LineCrossed])
    }

    fn needs_order(&self) -> bool {
        true
    }

    fn on_final(&mut self, key: Key, ev: &Event, out: &mut Vec<RawAlarm>) {
        if ev.is_out() || !self.filter.matches(ev) {
            return;
        }
        let tokens = &mut self.tokens[key as usize];
        match ev.kind {
            EventType::AccessGranted => {
                // Expired tokens go now: a door without crossings would otherwise keep them all.
                let g = ev.ts.0;
                while tokens.front().is_some_and(|&t| t + self.token_ms < g) {
                    tokens.pop_front();
                }
                if tokens.len() >= MAX_TOKENS {
                    tokens.pop_front();
                    self.dropped += 1;
                }
                tokens.push_back(ev.ts.0);
            }
            EventType::LineCrossed => {
                let c = ev.ts.0;
                while tokens.front().is_some_and(|&g| g + self.token_ms < c) {
                    tokens.pop_front();
                }
                let mut excess = 0u16;
                for _ in 0..ev.count {
                    if tokens.pop_front().is_none() {
                        excess += 1;
                    }
                }
                if excess > 0 {
                    let finality = Finality::Watermark { point: ev.ts, at_least_ns: ev.ingest_ns };
                    out.push(RawAlarm { rule: self.rule, ts: ev.ts, key, trigger: *ev, other: None, excess, finality });
                }
            }
            _ => {}
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
