//! The twelve default rules (DESIGN §5.2), each a brute-force pass over the sorted events.
//!
//! Every rule pushes [`Candidate`]s; the caller sorts them by identity and keeps, for each
//! identity, the one whose trigger comes first in the stream.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::event::{Event, Kind};
use crate::site::{Direction, Site};

/// The rule names of the default pack, with their base priorities.
pub(crate) const RULES: [(&str, i64); 12] = [
    ("forced_entry_confirmed", 230),
    ("forced_entry_unconfirmed", 140),
    ("door_held_open", 110),
    ("tailgating", 170),
    ("anti_passback", 150),
    ("access_denied_burst", 160),
    ("access_denied_burst_door", 150),
    ("impossible_travel", 190),
    ("duress", 250),
    ("intrusion_confirmed", 240),
    ("device_offline", 130),
    ("after_hours_access", 80),
];

const FORCED_BEFORE_MS: i64 = 5_000;
const FORCED_WITHIN_MS: i64 = 10_000;
const TAILGATE_TOKEN_MS: i64 = 7_000;
const PASSBACK_RESET_MS: i64 = 86_400_000;
const DENIED_WINDOW_MS: i64 = 60_000;
const DENIED_CARD_THRESHOLD: usize = 5;
const DENIED_DOOR_THRESHOLD: usize = 10;
const INTRUSION_BEFORE_MS: i64 = 30_000;
const INTRUSION_WITHIN_MS: i64 = 60_000;
const OFFLINE_FACTOR: i64 = 3;

/// An alarm before deduplication; `order` is the stream position of its trigger.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Candidate {
    pub rule: &'static str,
    pub ts: i64,
    pub key: String,
    pub order: usize,
    pub priority: u8,
}

/// Everything a rule sees: the topology, the sorted events and the end of input.
#[derive(Debug)]
pub(crate) struct Input<'a> {
    pub site: &'a Site,
    pub events: &'a [Event],
    /// Largest ts of the input; a decision point `d` is final iff `d <= max_ts`.
    pub max_ts: i64,
}

fn priority(rule: &str, criticality: i64) -> u8 {
    let base = RULES.iter().find(|(name, _)| *name == rule).map_or(0, |(_, p)| *p);
    // Clamped into 1..=255, so the cast is exact.
    (base + 10 * (criticality - 3)).clamp(1, 255) as u8
}

fn candidate(rule: &'static str, ts: i64, key: &str, order: usize, criticality: i64) -> Candidate {
    Candidate { rule, ts, key: key.to_string(), order, priority: priority(rule, criticality) }
}

impl Input<'_> {
    /// Whether the decision point `t + delay` is final at the end of input (`<= max_ts`).
    ///
    /// Checked, not saturating: a point past `i64::MAX` is never reached. Elsewhere, adding with
    /// saturation keeps comparisons against real timestamps exact.
    fn is_final(&self, t: i64, delay: i64) -> bool {
        t.checked_add(delay).is_some_and(|d| d <= self.max_ts)
    }

    fn door_criticality(&self, door: &str) -> i64 {
        self.site.doors[door].criticality
    }

    fn watches(&self, camera: &str, door: &str) -> bool {
        self.site.doors[door].cameras.iter().any(|c| c == camera)
    }

    fn area_of_camera(&self, camera: &str) -> Option<&str> {
        self.site.cameras[camera].area.as_deref()
    }

    /// Whether `door` has a `motion` or `line.crossed` on one of its cameras in [t−5 s, t+10 s].
    fn forced_has_video(&self, door: &str, t: i64) -> bool {
        self.events.iter().any(|v| {
            matches!(v.kind, Kind::Motion | Kind::LineCrossed)
                && v.ts >= t - FORCED_BEFORE_MS
                && v.ts <= t.saturating_add(FORCED_WITHIN_MS)
                && v.camera.as_deref().is_some_and(|c| self.watches(c, door))
        })
    }
}

/// Runs the rule `name` over the input.
pub(crate) fn run(name: &str, input: &Input<'_>, out: &mut Vec<Candidate>) {
    match name {
        "forced_entry_confirmed" => forced_entry(input, out, true),
        "forced_entry_unconfirmed" => forced_entry(input, out, false),
        "door_held_open" => door_held_open(input, out),
        "tailgating" => tailgating(input, out),
        "anti_passback" => anti_passback(input, out),
        "access_denied_burst" => access_denied_burst(input, out, false),
        "access_denied_burst_door" => access_denied_burst(input, out, true),
        "impossible_travel" => impossible_travel(input, out),
        "duress" => duress(input, out),
        "intrusion_confirmed" => intrusion_confirmed(input, out),
        "device_offline" => device_offline(input, out),
        "after_hours_access" => after_hours_access(input, out),
        other => panic!("vigil-reference: unknown rule {other:?}"),
    }
}

fn forced_entry(input: &Input<'_>, out: &mut Vec<Candidate>, confirmed: bool) {
    for (i, f) in input.events.iter().enumerate() {
        if f.kind != Kind::DoorForced {
            continue;
        }
        let Some(door) = f.door.as_deref() else {
            continue;
        };
        let has_video = input.forced_has_video(door, f.ts);
        let crit = input.door_criticality(door);
        if confirmed && has_video {
            out.push(candidate("forced_entry_confirmed", f.ts, door, i, crit));
        }
        if !confirmed && !has_video {
            let no_cameras = input.site.doors[door].cameras.is_empty();
            let decided = input.is_final(f.ts, FORCED_WITHIN_MS);
            if no_cameras || decided {
                out.push(candidate("forced_entry_unconfirmed", f.ts, door, i, crit));
            }
        }
    }
}

/// An opening of a door: when it opened, the trigger's position, and whether it has alarmed.
#[derive(Debug, Clone, Copy)]
struct Opening {
    ts: i64,
    order: usize,
    deadline: i64,
    fired: bool,
}

fn door_held_open(input: &Input<'_>, out: &mut Vec<Candidate>) {
    const RULE: &str = "door_held_open";
    for (door_id, door) in &input.site.doors {
        let crit = door.criticality;
        let mut open: Option<Opening> = None;
        for (i, e) in input.events.iter().enumerate() {
            let door_state = matches!(e.kind, Kind::DoorOpened | Kind::DoorClosed | Kind::DoorHeld);
            if !door_state || e.door.as_deref() != Some(door_id.as_str()) {
                continue;
            }
            // Any state event of this door after the deadline proves that the opening was not
            // closed in time (a close at exactly the deadline is in time).
            if let Some(o) = open.as_mut() {
                if !o.fired && e.ts > o.deadline {
                    o.fired = true;
                    out.push(candidate(RULE, o.ts, door_id, o.order, crit));
                }
            }
            match (e.kind, open.as_mut()) {
                (Kind::DoorOpened, None) => {
                    open = Some(Opening {
                        ts: e.ts,
                        order: i,
                        deadline: e.ts.saturating_add(door.held_open_ms),
                        fired: false,
                    });
                }
                // A repeated `door.opened` while open is the same opening: nothing to do.
                (Kind::DoorClosed, Some(_)) => open = None,
                // The panel says it is held: fire early, once per opening.
                (Kind::DoorHeld, Some(o)) if !o.fired => {
                    o.fired = true;
                    out.push(candidate(RULE, o.ts, door_id, o.order, crit));
                }
                // No known opening: the `door.held` is its own trigger.
                (Kind::DoorHeld, None) => {
                    out.push(candidate(RULE, e.ts, door_id, i, crit));
                }
                _ => {}
            }
        }
        if let Some(o) = open {
            if !o.fired && input.is_final(o.ts, door.held_open_ms) {
                out.push(candidate(RULE, o.ts, door_id, o.order, crit));
            }
        }
    }
}

fn tailgating(input: &Input<'_>, out: &mut Vec<Candidate>) {
    for (door_id, door) in &input.site.doors {
        // Grant times, oldest first; each is one token.
        let mut tokens: VecDeque<i64> = VecDeque::new();
        for (i, e) in input.events.iter().enumerate() {
            match e.kind {
                Kind::AccessGranted if e.door.as_deref() == Some(door_id.as_str()) && e.direction == Direction::In => {
                    tokens.push_back(e.ts);
                }
                Kind::LineCrossed
                    if e.direction == Direction::In
                        && e.camera.as_deref().is_some_and(|c| input.watches(c, door_id)) =>
                {
                    while tokens.front().is_some_and(|g| g.saturating_add(TAILGATE_TOKEN_MS) < e.ts) {
                        tokens.pop_front();
                    }
                    let served = tokens.len().min(usize::try_from(e.count).unwrap_or(usize::MAX));
                    tokens.drain(..served);
                    let excess = e.count - served as u64;
                    if excess >= 1 {
                        out.push(candidate("tailgating", e.ts, door_id, i, door.criticality));
                    }
                }
                _ => {}
            }
        }
    }
}

fn anti_passback(input: &Input<'_>, out: &mut Vec<Candidate>) {
    // card -> (current area, ts of its last grant)
    let mut cards: BTreeMap<&str, (Option<&str>, i64)> = BTreeMap::new();
    for (i, e) in input.events.iter().enumerate() {
        if e.kind != Kind::AccessGranted {
            continue;
        }
        let (Some(card), Some(door_id)) = (e.card.as_deref(), e.door.as_deref()) else {
            continue;
        };
        let door = &input.site.doors[door_id];
        let (x, y) = match e.direction {
            Direction::In => (door.from.as_str(), door.to.as_str()),
            Direction::Out => (door.to.as_str(), door.from.as_str()),
        };
        let mut current = match cards.get(card) {
            Some(&(area, last)) if e.ts - last < PASSBACK_RESET_MS => area,
            _ => None,
        };
        let enforced = input.site.areas[&door.from].anti_passback || input.site.areas[&door.to].anti_passback;
        if enforced && current.is_some_and(|a| a != x) {
            out.push(candidate("anti_passback", e.ts, card, i, door.criticality));
        }
        current = Some(y);
        cards.insert(card, (current, e.ts));
    }
}

fn access_denied_burst(input: &Input<'_>, out: &mut Vec<Candidate>, by_door: bool) {
    let (rule, threshold) = if by_door {
        ("access_denied_burst_door", DENIED_DOOR_THRESHOLD)
    } else {
        ("access_denied_burst", DENIED_CARD_THRESHOLD)
    };
    // key -> stream positions of its denials, in stream order
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in input.events.iter().enumerate() {
        if e.kind != Kind::AccessDenied {
            continue;
        }
        let key = if by_door { e.door.as_deref() } else { e.card.as_deref() };
        if let Some(k) = key {
            by_key.entry(k).or_default().push(i);
        }
    }
    for (key, positions) in by_key {
        let mut quiet_until: Option<i64> = None;
        for (n, &i) in positions.iter().enumerate() {
            let t = input.events[i].ts;
            let count = positions[..=n].iter().filter(|&&j| input.events[j].ts >= t - DENIED_WINDOW_MS).count();
            let quiet = quiet_until.is_some_and(|q| t <= q);
            if count >= threshold && !quiet {
                let door = input.events[i].door.as_deref().unwrap_or_default();
                out.push(candidate(rule, t, key, i, input.door_criticality(door)));
                quiet_until = Some(t.saturating_add(DENIED_WINDOW_MS));
            }
        }
    }
}

fn impossible_travel(input: &Input<'_>, out: &mut Vec<Candidate>) {
    // card -> (site, ts) of its previous presentation
    let mut last: BTreeMap<&str, (&str, i64)> = BTreeMap::new();
    for (i, e) in input.events.iter().enumerate() {
        if !matches!(e.kind, Kind::AccessGranted | Kind::AccessDenied) {
            continue;
        }
        let (Some(card), Some(door_id)) = (e.card.as_deref(), e.door.as_deref()) else {
            continue;
        };
        let door = &input.site.doors[door_id];
        let site = door.site.as_str();
        if let Some(&(prev_site, prev_ts)) = last.get(card) {
            if prev_site != site {
                if let Some(min_ms) = input.site.min_travel_ms(prev_site, site) {
                    if e.ts - prev_ts < min_ms {
                        out.push(candidate("impossible_travel", e.ts, card, i, door.criticality));
                    }
                }
            }
        }
        last.insert(card, (site, e.ts));
    }
}

fn duress(input: &Input<'_>, out: &mut Vec<Candidate>) {
    for (i, e) in input.events.iter().enumerate() {
        if e.kind == Kind::Duress {
            if let Some(door) = e.door.as_deref() {
                out.push(candidate("duress", e.ts, door, i, input.door_criticality(door)));
            }
        }
    }
}

fn intrusion_confirmed(input: &Input<'_>, out: &mut Vec<Candidate>) {
    for (i, s) in input.events.iter().enumerate() {
        if !matches!(s.kind, Kind::Intrusion | Kind::GlassBreak) {
            continue;
        }
        let Some(area) = s.sensor.as_deref().and_then(|id| input.site.sensors[id].area.as_deref()) else {
            continue;
        };
        let confirmed = input.events.iter().any(|m| {
            m.kind == Kind::Motion
                && m.ts >= s.ts - INTRUSION_BEFORE_MS
                && m.ts <= s.ts.saturating_add(INTRUSION_WITHIN_MS)
                && m.camera.as_deref().is_some_and(|c| input.area_of_camera(c) == Some(area))
        });
        if confirmed {
            let crit = input.site.areas[area].criticality;
            out.push(candidate("intrusion_confirmed", s.ts, area, i, crit));
        }
    }
}

fn device_offline(input: &Input<'_>, out: &mut Vec<Candidate>) {
    let named: BTreeSet<&str> = input.events.iter().flat_map(|e| e.named.iter().map(String::as_str)).collect();
    for device in named {
        let window = OFFLINE_FACTOR.saturating_mul(input.site.heartbeat_ms(device));
        let positions: Vec<usize> =
            (0..input.events.len()).filter(|&i| input.events[i].named.iter().any(|n| n == device)).collect();
        let mut heard_heartbeat = false;
        for (n, &i) in positions.iter().enumerate() {
            let e = &input.events[i];
            if e.kind == Kind::Heartbeat && e.device.as_deref() == Some(device) {
                heard_heartbeat = true;
            }
            if !heard_heartbeat {
                continue;
            }
            let silent = match positions.get(n + 1) {
                Some(&j) => input.events[j].ts > e.ts.saturating_add(window),
                None => input.is_final(e.ts, window),
            };
            if silent {
                out.push(candidate("device_offline", e.ts, device, i, 3));
            }
        }
    }
}

fn after_hours_access(input: &Input<'_>, out: &mut Vec<Candidate>) {
    for (i, e) in input.events.iter().enumerate() {
        if e.kind != Kind::AccessGranted {
            continue;
        }
        let (Some(card), Some(door_id)) = (e.card.as_deref(), e.door.as_deref()) else {
            continue;
        };
        let door = &input.site.doors[door_id];
        let into = match e.direction {
            Direction::In => &door.to,
            Direction::Out => &door.from,
        };
        let Some(schedule) = &input.site.areas[into].schedule else {
            continue;
        };
        let offset_min = input.site.sites[&door.site].utc_offset_min;
        if !schedule.contains(e.ts.saturating_add(offset_min.saturating_mul(60_000))) {
            out.push(candidate("after_hours_access", e.ts, card, i, door.criticality));
        }
    }
}
