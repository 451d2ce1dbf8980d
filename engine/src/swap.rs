//! Hot swap of the rule pack without a restart and without losing events.
//!
//! **Boundary.** A swap takes effect at an event time `T`: the old pack evaluates the events with
//! `ts < T`, the new pack those with `ts ≥ T`. Rules whose id and definition are unchanged keep
//! their state and see every event; changed and new rules start empty at `T`; removed rules drop
//! their state once the watermark passes `T` (decisions with a decision point below `T` still
//! fire). A detector that hosts several rules (the forced-entry pair) is kept only if all of them
//! are unchanged.
//!
//! **Why `T` is exact.** Workers send each decoded batch while holding the board's lock and record
//! the largest ts sent. A swap takes the same lock, sets `T = largest ts sent + 1` and publishes
//! itself. So every event sent before the swap has `ts < T`, and every event sent after it was
//! sent after the publication; rule operators read the board *after* draining their input, so they
//! know of every swap that could concern an event they hold.
//!
//! Per process: a cluster run (several processes) cannot swap (each process would pick its own `T`).

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use vigil_rules::{Detector, Keyspace, RuleBook, RuleDef, RuleId, RulePack, Topology, TypeSet};

/// One published swap.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    /// Effective from this event time.
    pub at: u64,
    /// The active rules after the swap, with their ids.
    pub rules: Vec<(RuleId, RuleDef)>,
}

#[derive(Debug, Default)]
pub(crate) struct BoardState {
    /// Largest ts any worker has sent into the dataflow.
    pub max_sent: Option<u64>,
    pub swaps: Vec<Published>,
}

/// The per-process swap board. See the module docs.
#[derive(Debug)]
pub(crate) struct SwapBoard {
    pub state: Mutex<BoardState>,
    /// Number of published swaps (a cheap check before taking the lock).
    pub version: AtomicU64,
    /// Per keyspace, the event types some detector (old or new) wants routed to it.
    pub routed: [AtomicU16; Keyspace::ALL.len()],
    /// Every rule ever active, by id.
    pub book: RwLock<RuleBook>,
}

/// What a swap did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapReport {
    /// Event time from which the new pack applies.
    pub at_ms: u64,
    /// Rules kept with their state.
    pub kept: Vec<String>,
    /// Rules new or changed (they start empty at `at_ms`).
    pub started: Vec<String>,
    /// Rules removed.
    pub removed: Vec<String>,
}

pub(crate) fn space_index(space: Keyspace) -> usize {
    Keyspace::ALL.iter().position(|s| *s == space).unwrap_or(0)
}

impl SwapBoard {
    /// A board for the initial pack; returns it with the initial rules and their ids.
    pub fn new(topo: &Arc<Topology>, pack: &RulePack) -> (SwapBoard, Vec<(RuleId, RuleDef)>) {
        let mut book = RuleBook::new();
        let rules: Vec<(RuleId, RuleDef)> = pack.rules().iter().map(|r| (book.add(r.clone()), r.clone())).collect();
        let board = SwapBoard {
            state: Mutex::new(BoardState::default()),
            version: AtomicU64::new(0),
            routed: Default::default(),
            book: RwLock::new(book),
        };
        board.add_routes(topo, &rules);
        (board, rules)
    }

    fn add_routes(&self, topo: &Arc<Topology>, rules: &[(RuleId, RuleDef)]) {
        for (space, _, det) in RulePack::detectors(topo, rules) {
            self.routed[space_index(space)].fetch_or(det.types().0, Ordering::SeqCst);
        }
    }

    /// The rules active now, with their ids.
    pub fn current_rules(&self) -> Vec<(RuleId, RuleDef)> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.swaps.last() {
            Some(p) => p.rules.clone(),
            None => {
                let book = self.book.read().unwrap_or_else(|e| e.into_inner());
                book.iter().map(|(id, r)| (id, r.clone())).collect()
            }
        }
    }

    /// The types routed to a keyspace.
    pub fn routed(&self, space: Keyspace) -> TypeSet {
        TypeSet(self.routed[space_index(space)].load(Ordering::Acquire))
    }

    /// Publishes a swap to `pack` from event time `at` (default: the largest ts sent + 1, at
    /// least `floor`, the engine's watermark, read under the board's lock: workers advance their
    /// input under it too, so no decision at or after the boundary can have been taken yet).
    /// Refused with the largest ts sent when events at or after `at` were already sent to the
    /// old pack.
    pub fn swap(
        &self,
        topo: &Arc<Topology>,
        pack: &RulePack,
        floor: &std::sync::atomic::AtomicU64,
        at: Option<u64>,
    ) -> Result<SwapReport, u64> {
        let mut book = self.book.write().unwrap_or_else(|e| e.into_inner());
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let floor = floor.load(Ordering::SeqCst);
        let earliest = state.max_sent.map_or(floor, |m| (m + 1).max(floor));
        let at = match at {
            Some(t) if t < earliest => return Err(earliest.saturating_sub(1)),
            Some(t) => t,
            None => earliest,
        };
        if let Some(prev) = state.swaps.last() {
            if at < prev.at {
                return Err(prev.at);
            }
        }
        let current: Vec<(RuleId, RuleDef)> = match state.swaps.last() {
            Some(p) => p.rules.clone(),
            None => book.iter().map(|(id, r)| (id, r.clone())).collect::<Vec<_>>(),
        };
        let mut report = SwapReport { at_ms: 0, kept: Vec::new(), started: Vec::new(), removed: Vec::new() };
        let mut rules = Vec::new();
        for def in pack.rules() {
            match current.iter().find(|(_, r)| r == def) {
                Some((id, _)) => {
                    report.kept.push(def.id.clone());
                    rules.push((*id, def.clone()));
                }
                None => {
                    report.started.push(def.id.clone());
                    rules.push((book.add(def.clone()), def.clone()));
                }
            }
        }
        for (_, r) in &current {
            if !pack.rules().iter().any(|d| d.id == r.id) {
                report.removed.push(r.id.clone());
            }
        }
        report.at_ms = at;
        self.add_routes(topo, &rules);
        state.swaps.push(Published { at, rules });
        self.version.fetch_add(1, Ordering::SeqCst);
        Ok(report)
    }
}

/// A detector as a rule operator hosts it: which rules, and the event times it is responsible for.
pub(crate) struct Hosted {
    pub rules: Vec<RuleId>,
    pub det: Box<dyn Detector>,
    /// Sees events with `from ≤ ts < until`.
    pub from: u64,
    pub until: u64,
    pub types: TypeSet,
    pub ordered: bool,
}

impl Hosted {
    pub fn new(rules: Vec<RuleId>, det: Box<dyn Detector>, from: u64) -> Hosted {
        let types = det.types();
        let ordered = det.needs_order();
        Hosted { rules, det, from, until: u64::MAX, types, ordered }
    }

    #[inline]
    pub fn sees(&self, ts: u64) -> bool {
        self.from <= ts && ts < self.until
    }
}

/// Applies a published swap to one keyspace's hosted detectors.
pub(crate) fn apply(topo: &Arc<Topology>, space: Keyspace, hosted: &mut Vec<Hosted>, swap: &Published) {
    let active: Vec<usize> = (0..hosted.len()).filter(|&i| hosted[i].until == u64::MAX).collect();
    let mut covered: Vec<RuleId> = Vec::new();
    for i in active {
        let keep = hosted[i].rules.iter().all(|id| swap.rules.iter().any(|(nid, _)| nid == id));
        if keep {
            covered.extend(hosted[i].rules.iter().copied());
        } else {
            hosted[i].until = swap.at;
        }
    }
    let fresh: Vec<(RuleId, RuleDef)> =
        swap.rules.iter().filter(|(id, r)| r.keyspace == space && !covered.contains(id)).cloned().collect();
    for (s, ids, det) in RulePack::detectors(topo, &fresh) {
        if s == space {
            hosted.push(Hosted::new(ids, det, swap.at));
        }
    }
}
