//! Rule packs: rules as data (DESIGN §5.1).
//!
//! A pack is a TOML file of `[[rule]]` tables (see `rules/packs/default.toml`, compiled in as
//! [`RulePack::default_pack`]). Every rule has an `id`, a `name`, a `priority`, a `kind` and a
//! `group_by` keyspace. Generic kinds:
//!
//! | kind | parameters | fires when |
//! |---|---|---|
//! | `match` | `match` types | an event matches |
//! | `sequence` | `first`, `then`, `before_s`, `within_s` | a first is joined by a then with `then.ts − first.ts ∈ [−before, +within]` |
//! | `absence` | same, plus `episode`, `early` | a first has no then in `[first.ts − before, first.ts + within]` |
//! | `count` | `match`, `threshold`, `within_s` | `threshold` events in `[t − within, t]`; then quiet until `t + within` |
//! | `distinct` | `match`, `field`, `threshold`, `within_s` | as count, over distinct values of `field` |
//!
//! Built-in kinds: `tailgating` (`token_s`), `anti_passback` (`forget_s`), `impossible_travel`,
//! `device_offline` (`missed`). Any rule may narrow its trigger events with
//! `where = { doors = [..], areas = [..], sites = [..], min_criticality = N, direction = "in",
//! outside_schedule = true }`.
//!
//! [`RulePack::from_toml`] validates everything against the topology and reports every error with
//! the rule id and field.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::detect::{CardRules, Count, Detector, DeviceOffline, Distinct, Episode, Matcher, Sequence, Tailgating};
use crate::event::{EventType, TypeSet};
use crate::filter::{Filter, Where};
use crate::keyspace::Keyspace;
use crate::topology::Topology;

/// A rule's id in the engine's rule book: stable for the life of an engine, across hot swaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RuleId(pub u16);

/// A window length: fixed, or the door's `held_open_s` from the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Milliseconds.
    Fixed(u64),
    /// The key door's `held_open_s` (group_by door only).
    HeldOpen,
}

/// The field a `distinct` rule counts values of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistinctField {
    /// The door.
    Door,
    /// The card.
    Card,
    /// The device.
    Device,
    /// The area (see [`crate::filter::event_area`]).
    Area,
    /// The site.
    Site,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    /// Every trigger event.
    Match,
    /// A first joined by a then, fired as soon as both are present.
    Sequence {
        /// Confirming types.
        then: TypeSet,
        /// Window before the first, ms.
        before_ms: u64,
        /// Window after the first, ms.
        within_ms: u64,
    },
    /// A first with no then in its window.
    Absence {
        /// Types whose presence cancels.
        then: TypeSet,
        /// Window before, ms (plain absences only).
        before_ms: u64,
        /// Window after.
        within: Window,
        /// A first while an earlier one is still open (no then since) is the same episode.
        episode: bool,
        /// Types that fire the open episode at once (or, with none open, are their own trigger).
        early: TypeSet,
    },
    /// `threshold` trigger events in `[t − within, t]`.
    Count {
        /// How many.
        threshold: u32,
        /// Window, ms.
        within_ms: u64,
    },
    /// `threshold` distinct values of `field` in `[t − within, t]`.
    Distinct {
        /// The field.
        field: DistinctField,
        /// How many distinct values.
        threshold: u32,
        /// Window, ms.
        within_ms: u64,
    },
    /// Grants give tokens valid `token_ms`; crossings consume them.
    Tailgating {
        /// Token validity, ms.
        token_ms: u64,
    },
    /// Cards must re-enter from the area they left.
    AntiPassback {
        /// A card with no grant this long becomes unknown, ms.
        forget_ms: u64,
    },
    /// Consecutive presentations at different sites faster than the travel time.
    ImpossibleTravel,
    /// A device that heartbeats is silent for more than `missed` intervals.
    DeviceOffline {
        /// Intervals.
        missed: u32,
    },
}

/// One validated rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDef {
    /// Stable id (`forced_entry_confirmed`); alarms carry it as `rule`.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Base priority 1..=255.
    pub priority: u8,
    /// What the rule's key is.
    pub keyspace: Keyspace,
    /// Trigger types (`first` or `match`; fixed for built-in kinds).
    pub trigger: TypeSet,
    /// Attribute conditions on trigger events.
    pub filter: Where,
    /// What it does.
    pub kind: RuleKind,
}

/// One problem in a rule pack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    /// Not TOML, or not the shape of a pack.
    #[error("rule pack: {0}")]
    Parse(String),
    /// A rule's field is wrong.
    #[error("rule `{rule}`: {field}: {reason}")]
    Field {
        /// The rule id (or `#N` for a rule without one).
        rule: String,
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// All the problems of a pack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct PackErrors(pub Vec<PackError>);

/// An ordered list of validated rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulePack {
    rules: Vec<RuleDef>,
}

/// The default pack's text.
pub const DEFAULT_PACK: &str = include_str!("../packs/default.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPack {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawWindow {
    Seconds(f64),
    Param(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Option<String>,
    name: Option<String>,
    priority: Option<i64>,
    kind: Option<String>,
    group_by: Option<String>,
    first: Option<Vec<String>>,
    then: Option<Vec<String>>,
    early: Option<Vec<String>>,
    #[serde(rename = "match")]
    matches: Option<Vec<String>>,
    before_s: Option<f64>,
    within_s: Option<RawWindow>,
    threshold: Option<i64>,
    field: Option<String>,
    episode: Option<bool>,
    token_s: Option<f64>,
    forget_s: Option<f64>,
    missed: Option<i64>,
    #[serde(rename = "where")]
    filter: Option<RawWhere>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhere {
    #[serde(default)]
    doors: Vec<String>,
    #[serde(default)]
    areas: Vec<String>,
    #[serde(default)]
    sites: Vec<String>,
    min_criticality: Option<i64>,
    #[serde(default)]
    outside_schedule: bool,
    direction: Option<String>,
}

struct Check<'a> {
    rule: String,
    errors: &'a mut Vec<PackError>,
}

impl Check<'_> {
    fn err(&mut self, field: &'static str, reason: impl Into<String>) {
        self.errors.push(PackError::Field { rule: self.rule.clone(), field, reason: reason.into() });
    }

    fn types(&mut self, field: &'static str, names: &Option<Vec<String>>, required: bool) -> TypeSet {
        match names {
            None if required => {
                self.err(field, "is required for this kind");
                TypeSet::EMPTY
            }
            None => TypeSet::EMPTY,
            Some(list) if list.is_empty() && required => {
                self.err(field, "needs at least one event type");
                TypeSet::EMPTY
            }
            Some(list) => {
                let mut set = TypeSet::EMPTY;
                for name in list {
                    match EventType::from_name(name) {
                        Some(t) => set = set.union(TypeSet::of(&[t])),
                        None => self.err(field, format!("unknown event type `{name}`")),
                    }
                }
                set
            }
        }
    }

    fn seconds(&mut self, field: &'static str, v: Option<f64>, default: Option<f64>) -> u64 {
        match v.or(default) {
            None => {
                self.err(field, "is required for this kind");
                0
            }
            Some(s) if !s.is_finite() || s < 0.0 => {
                self.err(field, format!("{s} is not a non-negative number of seconds"));
                0
            }
            Some(s) => (s * 1000.0).round() as u64,
        }
    }

    fn forbid(&mut self, field: &'static str, present: bool, kind: &str) {
        if present {
            self.err(field, format!("does not apply to kind `{kind}`"));
        }
    }
}

impl RulePack {
    /// A pack of already validated rules.
    pub fn new(rules: Vec<RuleDef>) -> RulePack {
        RulePack { rules }
    }

    /// The default pack: `rules/packs/default.toml`, compiled in. Valid for every topology.
    pub fn default_pack() -> RulePack {
        // The default pack names no topology ids, so it validates against any site.
        let empty = Topology::from_toml("[site]\nid = \"-\"\n").unwrap_or_else(|e| unreachable!("{e}"));
        RulePack::from_toml(DEFAULT_PACK, &empty).unwrap_or_else(|e| unreachable!("default pack is invalid: {e}"))
    }

    /// Parses and validates a pack against a topology (filters may name its ids).
    pub fn from_toml(text: &str, topo: &Topology) -> Result<RulePack, PackErrors> {
        let raw: RawPack = toml::from_str(text)
            .map_err(|e| PackErrors(vec![PackError::Parse(e.to_string().trim_end().to_string())]))?;
        let mut errors = Vec::new();
        let mut rules: Vec<RuleDef> = Vec::new();
        for (i, r) in raw.rule.into_iter().enumerate() {
            let label = r.id.clone().unwrap_or_else(|| format!("#{}", i + 1));
            let mut c = Check { rule: label.clone(), errors: &mut errors };
            if let Some(def) = validate(&mut c, r, topo) {
                if rules.iter().any(|x| x.id == def.id) {
                    c.err("id", "is used by an earlier rule");
                } else {
                    rules.push(def);
                }
            }
        }
        if errors.is_empty() { Ok(RulePack { rules }) } else { Err(PackErrors(errors)) }
    }

    /// The rules.
    pub fn rules(&self) -> &[RuleDef] {
        &self.rules
    }

    /// Looks a rule up by its string id.
    pub fn find(&self, id: &str) -> Option<&RuleDef> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Only the rules whose id is in `keep` (all when `keep` is empty).
    pub fn only(&self, keep: &[&str]) -> RulePack {
        if keep.is_empty() {
            return self.clone();
        }
        RulePack::new(self.rules.iter().filter(|r| keep.contains(&r.id.as_str())).cloned().collect())
    }

    /// The detectors that evaluate `rules` (with their engine-wide ids). A `sequence` and a plain
    /// `absence` with the same key, types, filter and window share one detector: the forced-entry
    /// pair is one state machine. Returns each detector with the ids of the rules it hosts.
    pub fn detectors(
        topo: &Arc<Topology>,
        rules: &[(RuleId, RuleDef)],
    ) -> Vec<(Keyspace, Vec<RuleId>, Box<dyn Detector>)> {
        let mut out: Vec<(Keyspace, Vec<RuleId>, Box<dyn Detector>)> = Vec::new();
        let mut used = vec![false; rules.len()];
        for (i, (id, rule)) in rules.iter().enumerate() {
            if used[i] {
                continue;
            }
            used[i] = true;
            let id = *id;
            let space = rule.keyspace;
            let filter = Filter::new(topo, rule.trigger, &rule.filter);
            let det: (Vec<RuleId>, Box<dyn Detector>) = match &rule.kind {
                RuleKind::Match => (vec![id], Box::new(Matcher::new(id, filter, space))),
                RuleKind::Sequence { then, before_ms, within_ms }
                | RuleKind::Absence { then, before_ms, within: Window::Fixed(within_ms), episode: false, .. } => {
                    let is_seq = matches!(rule.kind, RuleKind::Sequence { .. });
                    let twin = rules.iter().enumerate().skip(i + 1).find(|(j, (_, r))| {
                        !used[*j]
                            && r.keyspace == space
                            && r.trigger == rule.trigger
                            && r.filter == rule.filter
                            && match &r.kind {
                                RuleKind::Sequence { then: t, before_ms: b, within_ms: w } if !is_seq => {
                                    (t, b, w) == (then, before_ms, within_ms)
                                }
                                RuleKind::Absence {
                                    then: t,
                                    before_ms: b,
                                    within: Window::Fixed(w),
                                    episode: false,
                                    ..
                                } if is_seq => (t, b, w) == (then, before_ms, within_ms),
                                _ => false,
                            }
                    });
                    let twin = twin.map(|(j, (tid, _))| {
                        used[j] = true;
                        *tid
                    });
                    let (confirmed, unconfirmed) = if is_seq { (Some(id), twin) } else { (twin, Some(id)) };
                    let hosted = [confirmed, unconfirmed].into_iter().flatten().collect();
                    let seq = Sequence::new(topo, space, filter, *then, *before_ms, *within_ms, confirmed, unconfirmed);
                    (hosted, Box::new(seq))
                }
                RuleKind::Absence { then, within, early, .. } => {
                    (vec![id], Box::new(Episode::new(topo, space, id, filter, *then, *early, *within)))
                }
                RuleKind::Count { threshold, within_ms } => {
                    (vec![id], Box::new(Count::new(topo, space, id, filter, *threshold, *within_ms)))
                }
                RuleKind::Distinct { field, threshold, within_ms } => {
                    (vec![id], Box::new(Distinct::new(topo, space, id, filter, *field, *threshold, *within_ms)))
                }
                RuleKind::Tailgating { token_ms } => (vec![id], Box::new(Tailgating::new(topo, id, filter, *token_ms))),
                RuleKind::AntiPassback { .. } | RuleKind::ImpossibleTravel => {
                    // The two per-card built-ins share one record per card (see `CardRules`).
                    let twin = rules.iter().enumerate().skip(i + 1).find(|(j, (_, r))| {
                        !used[*j]
                            && match rule.kind {
                                RuleKind::AntiPassback { .. } => r.kind == RuleKind::ImpossibleTravel,
                                _ => matches!(r.kind, RuleKind::AntiPassback { .. }),
                            }
                    });
                    let twin = twin.map(|(j, (tid, r))| {
                        used[j] = true;
                        (*tid, r)
                    });
                    let mut passback = None;
                    let mut travel = None;
                    for (rid, r) in std::iter::once((id, rule)).chain(twin) {
                        let f = Filter::new(topo, r.trigger, &r.filter);
                        match r.kind {
                            RuleKind::AntiPassback { forget_ms } => passback = Some((rid, f, forget_ms)),
                            _ => travel = Some((rid, f)),
                        }
                    }
                    let hosted =
                        [passback.as_ref().map(|p| p.0), travel.as_ref().map(|t| t.0)].into_iter().flatten().collect();
                    (hosted, Box::new(CardRules::new(topo, passback, travel)))
                }
                RuleKind::DeviceOffline { missed } => {
                    (vec![id], Box::new(DeviceOffline::new(topo, id, filter, *missed)))
                }
            };
            out.push((space, det.0, det.1));
        }
        out
    }
}

fn validate(c: &mut Check<'_>, r: RawRule, topo: &Topology) -> Option<RuleDef> {
    let id = match &r.id {
        Some(id) if !id.is_empty() && id.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-') => {
            id.clone()
        }
        Some(id) => {
            c.err("id", format!("`{id}` must be non-empty letters, digits, `_` or `-`"));
            id.clone()
        }
        None => {
            c.err("id", "is required");
            String::new()
        }
    };
    let priority = match r.priority {
        Some(p @ 1..=255) => p as u8,
        Some(p) => {
            c.err("priority", format!("{p} is not in 1..=255"));
            1
        }
        None => {
            c.err("priority", "is required");
            1
        }
    };
    let kind_name = r.kind.clone().unwrap_or_default();
    let default_space = match kind_name.as_str() {
        "tailgating" => Some(Keyspace::Door),
        "anti_passback" | "impossible_travel" => Some(Keyspace::Card),
        "device_offline" => Some(Keyspace::Device),
        _ => None,
    };
    let keyspace = match (r.group_by.as_deref(), default_space) {
        (Some(g), _) => Keyspace::from_name(g).or_else(|| {
            c.err("group_by", format!("`{g}` is not one of door, card, area, camera, sensor, device, site"));
            None
        }),
        (None, Some(d)) => Some(d),
        (None, None) => {
            c.err("group_by", "is required for this kind");
            None
        }
    };
    if let (Some(d), Some(k)) = (default_space, keyspace) {
        if d != k {
            c.err("group_by", format!("kind `{kind_name}` is keyed by {}", d.name()));
        }
    }
    let filter = r.filter.as_ref().map(|w| compile_where(c, w, topo)).unwrap_or_default();

    use EventType as T;
    let forbid_all = |c: &mut Check<'_>, r: &RawRule, allowed: &[&str], kind: &str| {
        let fields: [(&'static str, bool); 11] = [
            ("first", r.first.is_some()),
            ("then", r.then.is_some()),
            ("early", r.early.is_some()),
            ("match", r.matches.is_some()),
            ("before_s", r.before_s.is_some()),
            ("within_s", r.within_s.is_some()),
            ("threshold", r.threshold.is_some()),
            ("field", r.field.is_some()),
            ("episode", r.episode.is_some()),
            ("token_s", r.token_s.is_some()),
            ("forget_s", r.forget_s.is_some()),
        ];
        for (f, present) in fields {
            if !allowed.contains(&f) {
                c.forbid(f, present, kind);
            }
        }
        if !allowed.contains(&"missed") {
            c.forbid("missed", r.missed.is_some(), kind);
        }
    };
    let fixed_window = |c: &mut Check<'_>, w: &Option<RawWindow>| -> u64 {
        match w {
            None => {
                c.err("within_s", "is required for this kind");
                0
            }
            Some(RawWindow::Seconds(s)) => c.seconds("within_s", Some(*s), None),
            Some(RawWindow::Param(p)) => {
                c.err("within_s", format!("`{p}` is not a number of seconds"));
                0
            }
        }
    };
    let threshold = |c: &mut Check<'_>, t: Option<i64>| -> u32 {
        match t {
            Some(n @ 1..=100_000) => n as u32,
            Some(n) => {
                c.err("threshold", format!("{n} is not in 1..=100000"));
                1
            }
            None => {
                c.err("threshold", "is required for this kind");
                1
            }
        }
    };
    let (trigger, kind) = match kind_name.as_str() {
        "match" => {
            forbid_all(c, &r, &["match"], "match");
            (c.types("match", &r.matches, true), RuleKind::Match)
        }
        "sequence" => {
            forbid_all(c, &r, &["first", "then", "before_s", "within_s"], "sequence");
            let first = c.types("first", &r.first, true);
            let then = c.types("then", &r.then, true);
            let before_ms = c.seconds("before_s", r.before_s, Some(0.0));
            let within_ms = fixed_window(c, &r.within_s);
            (first, RuleKind::Sequence { then, before_ms, within_ms })
        }
        "absence" => {
            forbid_all(c, &r, &["first", "then", "before_s", "within_s", "episode", "early"], "absence");
            let first = c.types("first", &r.first, true);
            let then = c.types("then", &r.then, true);
            let episode = r.episode.unwrap_or(false);
            let early = c.types("early", &r.early, false);
            if !episode && r.early.is_some() {
                c.err("early", "needs `episode = true`");
            }
            if episode && r.before_s.is_some() {
                c.err("before_s", "does not apply to episodes (a then before the first cannot close it)");
            }
            let before_ms = c.seconds("before_s", r.before_s, Some(0.0));
            let within = match &r.within_s {
                Some(RawWindow::Param(p)) if p == "held_open_s" => {
                    if keyspace != Some(Keyspace::Door) {
                        c.err("within_s", "`held_open_s` is a door parameter: needs group_by = \"door\"");
                    }
                    if !episode {
                        c.err("within_s", "`held_open_s` needs `episode = true`");
                    }
                    Window::HeldOpen
                }
                other => Window::Fixed(fixed_window(c, other)),
            };
            (first, RuleKind::Absence { then, before_ms, within, episode, early })
        }
        "count" => {
            forbid_all(c, &r, &["match", "threshold", "within_s"], "count");
            let types = c.types("match", &r.matches, true);
            let threshold = threshold(c, r.threshold);
            (types, RuleKind::Count { threshold, within_ms: fixed_window(c, &r.within_s) })
        }
        "distinct" => {
            forbid_all(c, &r, &["match", "threshold", "within_s", "field"], "distinct");
            let types = c.types("match", &r.matches, true);
            let threshold = threshold(c, r.threshold);
            let field = match r.field.as_deref() {
                Some("door") => DistinctField::Door,
                Some("card") => DistinctField::Card,
                Some("device") => DistinctField::Device,
                Some("area") => DistinctField::Area,
                Some("site") => DistinctField::Site,
                Some(other) => {
                    c.err("field", format!("`{other}` is not one of door, card, device, area, site"));
                    DistinctField::Door
                }
                None => {
                    c.err("field", "is required for this kind");
                    DistinctField::Door
                }
            };
            (types, RuleKind::Distinct { field, threshold, within_ms: fixed_window(c, &r.within_s) })
        }
        "tailgating" => {
            forbid_all(c, &r, &["token_s"], "tailgating");
            let token_ms = c.seconds("token_s", r.token_s, Some(7.0));
            (TypeSet::of(&[T::AccessGranted, T::LineCrossed]), RuleKind::Tailgating { token_ms })
        }
        "anti_passback" => {
            forbid_all(c, &r, &["forget_s"], "anti_passback");
            let forget_ms = c.seconds("forget_s", r.forget_s, Some(86_400.0));
            (TypeSet::of(&[T::AccessGranted]), RuleKind::AntiPassback { forget_ms })
        }
        "impossible_travel" => {
            forbid_all(c, &r, &[], "impossible_travel");
            (TypeSet::of(&[T::AccessGranted, T::AccessDenied]), RuleKind::ImpossibleTravel)
        }
        "device_offline" => {
            forbid_all(c, &r, &["missed"], "device_offline");
            let missed = match r.missed {
                None => 3,
                Some(n @ 1..=1_000) => n as u32,
                Some(n) => {
                    c.err("missed", format!("{n} is not in 1..=1000"));
                    3
                }
            };
            (crate::filter::ALL_TYPES, RuleKind::DeviceOffline { missed })
        }
        "" => {
            c.err("kind", "is required");
            return None;
        }
        other => {
            c.err(
                "kind",
                format!(
                    "unknown kind `{other}` (match, sequence, absence, count, distinct, tailgating, anti_passback, \
                     impossible_travel, device_offline)"
                ),
            );
            return None;
        }
    };
    let keyspace = keyspace?;
    // Every trigger and confirming type must be able to reach a key of the keyspace.
    let mut check_keyable = |field: &'static str, set: TypeSet| {
        for t in EventType::ALL {
            if set.contains(t) && !keyspace.can_key(t) {
                c.err(field, format!("`{}` events have no {} to group by", t.name(), keyspace.name()));
            }
        }
    };
    match &kind {
        RuleKind::Sequence { then, .. } | RuleKind::Absence { then, .. } => {
            check_keyable("first", trigger);
            check_keyable("then", *then);
        }
        RuleKind::DeviceOffline { .. } | RuleKind::Tailgating { .. } => {}
        _ => check_keyable("match", trigger),
    }
    if let RuleKind::Absence { early, .. } = &kind {
        check_keyable("early", *early);
    }
    Some(RuleDef { name: r.name.unwrap_or_else(|| id.clone()), id, priority, keyspace, trigger, filter, kind })
}

fn compile_where(c: &mut Check<'_>, w: &RawWhere, topo: &Topology) -> Where {
    let mut out = Where::default();
    for d in &w.doors {
        match topo.device(d).and_then(|ix| topo.door_of(ix).filter(|_| topo.device_info(ix).door.is_some())) {
            Some(door) if topo.door_info(door).device == topo.device(d).unwrap_or_default() => out.doors.push(door),
            _ => c.err("where.doors", format!("`{d}` is not a door of the site")),
        }
    }
    for a in &w.areas {
        match topo.area(a) {
            Some(ix) => out.areas.push(ix),
            None => c.err("where.areas", format!("`{a}` is not an area of the site")),
        }
    }
    for s in &w.sites {
        match topo.site(s) {
            Some(ix) => out.sites.push(ix),
            None => c.err("where.sites", format!("`{s}` is not a site")),
        }
    }
    out.min_criticality = match w.min_criticality {
        None => 0,
        Some(n @ 1..=5) => n as u8,
        Some(n) => {
            c.err("where.min_criticality", format!("{n} is not in 1..=5"));
            0
        }
    };
    out.outside_schedule = w.outside_schedule;
    out.direction_out = match w.direction.as_deref() {
        None => None,
        Some("in") => Some(false),
        Some("out") => Some(true),
        Some(other) => {
            c.err("where.direction", format!("`{other}` is neither `in` nor `out`"));
            None
        }
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Topology {
        Topology::from_toml(
            "[site]\nid = \"hq\"\n[[area]]\nid = \"a\"\n[[area]]\nid = \"b\"\n[[door]]\nid = \"d\"\nfrom = \"a\"\nto = \"b\"\n",
        )
        .expect("valid")
    }

    fn errors(text: &str) -> Vec<String> {
        RulePack::from_toml(text, &site()).expect_err("must be invalid").0.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_default_pack_has_the_twelve_rules_of_the_design() {
        let pack = RulePack::default_pack();
        let ids: Vec<&str> = pack.rules().iter().map(|r| r.id.as_str()).collect();
        // The twelve rules of DESIGN §5.2, in its order (the independent reference's list).
        assert_eq!(ids, vigil_reference::DEFAULT_RULES);
        let prio: Vec<u8> = pack.rules().iter().map(|r| r.priority).collect();
        assert_eq!(prio, [230, 140, 110, 170, 150, 160, 150, 190, 250, 240, 130, 80]);
        let held = pack.find("door_held_open").expect("rule");
        assert!(matches!(held.kind, RuleKind::Absence { within: Window::HeldOpen, episode: true, .. }));
        let fc = pack.find("forced_entry_confirmed").expect("rule");
        assert_eq!(
            fc.kind,
            RuleKind::Sequence {
                then: TypeSet::of(&[EventType::Motion, EventType::LineCrossed]),
                before_ms: 5_000,
                within_ms: 10_000
            }
        );
    }

    #[test]
    fn every_error_names_the_rule_and_field() {
        let text = r#"
            [[rule]]
            id = "a"
            priority = 300
            kind = "sequence"
            group_by = "door"
            first = ["door.forced", "door.exploded"]
            then = ["motion"]
            within_s = -1
            [[rule]]
            id = "b"
            priority = 10
            kind = "teleport"
            group_by = "door"
            [[rule]]
            id = "c"
            priority = 10
            kind = "count"
            group_by = "card"
            match = ["motion"]
            threshold = 0
            within_s = 60
            [[rule]]
            id = "d"
            priority = 10
            kind = "match"
            group_by = "galaxy"
            match = ["duress"]
            where = { doors = ["nope"], min_criticality = 9 }
            [[rule]]
            id = "a"
            priority = 10
            kind = "match"
            group_by = "door"
            match = ["duress"]
            within_s = 5
        "#;
        assert_eq!(
            errors(text),
            [
                "rule `a`: priority: 300 is not in 1..=255",
                "rule `a`: first: unknown event type `door.exploded`",
                "rule `a`: within_s: -1 is not a non-negative number of seconds",
                "rule `b`: kind: unknown kind `teleport` (match, sequence, absence, count, distinct, tailgating, anti_passback, impossible_travel, device_offline)",
                "rule `c`: threshold: 0 is not in 1..=100000",
                "rule `c`: match: `motion` events have no card to group by",
                "rule `d`: group_by: `galaxy` is not one of door, card, area, camera, sensor, device, site",
                "rule `d`: where.doors: `nope` is not a door of the site",
                "rule `d`: where.min_criticality: 9 is not in 1..=5",
                "rule `a`: within_s: does not apply to kind `match`",
                "rule `a`: id: is used by an earlier rule",
            ]
        );
    }

    #[test]
    fn duplicate_ids_unknown_keys_and_episode_parameters() {
        let dup = "[[rule]]\nid = \"x\"\npriority = 1\nkind = \"match\"\ngroup_by = \"door\"\nmatch = [\"duress\"]\n";
        assert_eq!(errors(&format!("{dup}{dup}")), ["rule `x`: id: is used by an earlier rule"]);
        assert!(errors("[[rule]]\nid = \"x\"\nbogus = 1\n")[0].contains("bogus"));
        let held = r#"
            [[rule]]
            id = "h"
            priority = 110
            kind = "absence"
            group_by = "area"
            first = ["door.opened"]
            then = ["door.closed"]
            within_s = "held_open_s"
            early = ["door.held"]
        "#;
        assert_eq!(
            errors(held),
            [
                "rule `h`: early: needs `episode = true`",
                "rule `h`: within_s: `held_open_s` is a door parameter: needs group_by = \"door\"",
                "rule `h`: within_s: `held_open_s` needs `episode = true`",
            ]
        );
    }

    #[test]
    fn a_custom_distinct_rule_parses() {
        let text = r#"
            [[rule]]
            id = "card_roaming"
            name = "One card at 3 doors in a minute"
            priority = 120
            kind = "distinct"
            group_by = "card"
            match = ["access.granted", "access.denied"]
            field = "door"
            threshold = 3
            within_s = 60
        "#;
        let pack = RulePack::from_toml(text, &site()).expect("valid");
        assert_eq!(
            pack.rules()[0].kind,
            RuleKind::Distinct { field: DistinctField::Door, threshold: 3, within_ms: 60_000 }
        );
    }
}
