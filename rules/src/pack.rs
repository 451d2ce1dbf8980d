//! Rule packs: which rules run, with their parameters.
//!
//! This issue ships the rules that prove the path end to end — `forced_entry_confirmed`,
//! `forced_entry_unconfirmed` (one `sequence`/`absence` pair over doors) and `door_held_open` —
//! expressed in the kinds the TOML rule-pack format will use, so the remaining rules slot in.

use serde::{Deserialize, Serialize};

use crate::detect::{Detector, HeldOpen, Sequence};
use crate::event::{EventType, TypeSet};
use crate::keyspace::Keyspace;
use crate::topology::Topology;

/// A rule's index in its pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RuleId(pub u16);

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    /// A `first` event joined by a `then` event for the same key with `then.ts − first.ts` in
    /// `[−before_ms, +within_ms]`. Fires as soon as both are present.
    Sequence {
        /// Trigger types.
        first: TypeSet,
        /// Confirming types.
        then: TypeSet,
        /// How long before the first a `then` may be, ms.
        before_ms: u64,
        /// How long after the first a `then` may be, ms.
        within_ms: u64,
    },
    /// A `first` event with no `then` event in `[first.ts − before_ms, first.ts + within_ms]`.
    /// Fires when the watermark passes `first.ts + within_ms`, at once when no device can send a
    /// `then` event for the key.
    Absence {
        /// Trigger types.
        first: TypeSet,
        /// Types whose presence cancels the alarm.
        then: TypeSet,
        /// Window before, ms.
        before_ms: u64,
        /// Window after, ms.
        within_ms: u64,
    },
    /// `door.opened` not followed by `door.closed` within the door's `held_open_s`.
    HeldOpen,
}

/// One rule of a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDef {
    /// Stable id (`forced_entry_confirmed`); alarms carry it as `rule`.
    pub id: String,
    /// Base priority 1..=255.
    pub priority: u8,
    /// What the rule's key is.
    pub keyspace: Keyspace,
    /// What it does.
    pub kind: RuleKind,
}

/// An ordered list of rules. A rule's [`RuleId`] is its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePack {
    rules: Vec<RuleDef>,
}

const VIDEO: TypeSet = TypeSet::of(&[EventType::Motion, EventType::LineCrossed]);
const FORCED: TypeSet = TypeSet::of(&[EventType::DoorForced]);

impl RulePack {
    /// A pack of the given rules.
    pub fn new(rules: Vec<RuleDef>) -> RulePack {
        RulePack { rules }
    }

    /// The default pack (the rules implemented so far of DESIGN §5.2).
    pub fn default_pack() -> RulePack {
        RulePack::new(vec![
            RuleDef {
                id: "forced_entry_confirmed".into(),
                priority: 230,
                keyspace: Keyspace::Door,
                kind: RuleKind::Sequence { first: FORCED, then: VIDEO, before_ms: 5_000, within_ms: 10_000 },
            },
            RuleDef {
                id: "forced_entry_unconfirmed".into(),
                priority: 140,
                keyspace: Keyspace::Door,
                kind: RuleKind::Absence { first: FORCED, then: VIDEO, before_ms: 5_000, within_ms: 10_000 },
            },
            RuleDef { id: "door_held_open".into(), priority: 110, keyspace: Keyspace::Door, kind: RuleKind::HeldOpen },
        ])
    }

    /// The rules.
    pub fn rules(&self) -> &[RuleDef] {
        &self.rules
    }

    /// A rule by id.
    pub fn rule(&self, id: RuleId) -> &RuleDef {
        &self.rules[id.0 as usize]
    }

    /// Looks a rule up by its string id.
    pub fn find(&self, id: &str) -> Option<RuleId> {
        self.rules.iter().position(|r| r.id == id).map(|i| RuleId(i as u16))
    }

    /// Only the rules whose id is in `keep` (all when `keep` is empty).
    pub fn only(&self, keep: &[&str]) -> RulePack {
        if keep.is_empty() {
            return self.clone();
        }
        RulePack::new(self.rules.iter().filter(|r| keep.contains(&r.id.as_str())).cloned().collect())
    }

    /// The detectors that evaluate this pack, by keyspace. A `Sequence` and an `Absence` with the
    /// same key, types and window share one detector (the forced-entry pair is one state machine).
    pub fn detectors(&self, topo: &Topology) -> Vec<(Keyspace, Box<dyn Detector>)> {
        let mut out: Vec<(Keyspace, Box<dyn Detector>)> = Vec::new();
        let mut used = vec![false; self.rules.len()];
        for (i, rule) in self.rules.iter().enumerate() {
            if used[i] {
                continue;
            }
            used[i] = true;
            let id = RuleId(i as u16);
            match &rule.kind {
                RuleKind::Sequence { first, then, before_ms, within_ms }
                | RuleKind::Absence { first, then, before_ms, within_ms } => {
                    let is_seq = matches!(rule.kind, RuleKind::Sequence { .. });
                    // Find the twin with the same parameters, if any.
                    let twin = self.rules.iter().enumerate().skip(i + 1).find(|(j, r)| {
                        !used[*j]
                            && r.keyspace == rule.keyspace
                            && match &r.kind {
                                RuleKind::Sequence { first: f, then: t, before_ms: b, within_ms: w } if !is_seq => {
                                    (f, t, b, w) == (first, then, before_ms, within_ms)
                                }
                                RuleKind::Absence { first: f, then: t, before_ms: b, within_ms: w } if is_seq => {
                                    (f, t, b, w) == (first, then, before_ms, within_ms)
                                }
                                _ => false,
                            }
                    });
                    let twin = twin.map(|(j, _)| {
                        used[j] = true;
                        RuleId(j as u16)
                    });
                    let (confirmed, unconfirmed) = if is_seq { (Some(id), twin) } else { (twin, Some(id)) };
                    out.push((
                        rule.keyspace,
                        Box::new(Sequence::new(
                            topo,
                            rule.keyspace,
                            *first,
                            *then,
                            *before_ms,
                            *within_ms,
                            confirmed,
                            unconfirmed,
                        )),
                    ));
                }
                RuleKind::HeldOpen => out.push((rule.keyspace, Box::new(HeldOpen::new(topo, id)))),
            }
        }
        out
    }
}
