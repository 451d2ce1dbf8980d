//! Shared test support: run the engine on NDJSON, random sites and traffic, arrival shuffles.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vigil_engine::{Engine, Stats};
use vigil_rules::{Alarm, Lateness, RulePack, Topology};

/// An alarm's identity plus priority: what engine and reference must agree on.
pub type Ident = (String, u64, String, u8);

pub fn ident(a: &Alarm) -> Ident {
    (a.rule.clone(), a.ts, a.key().to_string(), a.priority)
}

/// How to run the engine.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub workers: usize,
    /// Lines per pushed batch.
    pub batch: usize,
    pub lateness_ms: u64,
}

impl Default for Run {
    fn default() -> Self {
        Run { workers: 1, batch: 64, lateness_ms: 2_000 }
    }
}

/// Runs the default pack over `lines`, spread round-robin in batches over one source per worker.
pub fn run(site: &str, lines: &[String], cfg: Run) -> (Vec<Alarm>, Stats) {
    let topo = Arc::new(Topology::from_toml(site).expect("test site is valid"));
    let engine = Engine::builder(topo, RulePack::default_pack())
        .workers(cfg.workers)
        .lateness(Lateness { ms: cfg.lateness_ms })
        .build()
        .expect("engine starts");
    let alarms = engine.alarms().clone();
    let mut sources: Vec<_> = (0..cfg.workers).map(|w| engine.source_on(&format!("test#{w}"), w)).collect();
    for (i, chunk) in lines.chunks(cfg.batch.max(1)).enumerate() {
        let mut bytes = Vec::new();
        for l in chunk {
            bytes.extend_from_slice(l.as_bytes());
            bytes.push(b'\n');
        }
        let first = (i * cfg.batch.max(1)) as u64 + 1;
        let n = sources.len();
        sources[i % n].push_ndjson_at(bytes, first).expect("engine accepts");
    }
    drop(sources);
    let stats = engine.finish().expect("engine finishes");
    let got: Vec<Alarm> = alarms.try_iter().collect();
    (got, stats)
}

pub fn idents(alarms: &[Alarm]) -> BTreeSet<Ident> {
    alarms.iter().map(ident).collect()
}

/// The identities of `alarms`, asserting none was emitted twice.
pub fn unique_idents(alarms: &[Alarm]) -> BTreeSet<Ident> {
    let set = idents(alarms);
    assert_eq!(set.len(), alarms.len(), "an identity was emitted twice: {alarms:?}");
    set
}

/// An expected alarm.
pub fn a(rule: &str, ts: u64, key: &str, priority: u8) -> Ident {
    (rule.to_string(), ts, key.to_string(), priority)
}

/// A set of expected alarms.
pub fn set(items: &[Ident]) -> BTreeSet<Ident> {
    items.iter().cloned().collect()
}

/// Identities from the independent reference.
pub fn reference(site: &str, lines: &[String], rules: &[&str]) -> BTreeSet<Ident> {
    let text = lines.join("\n");
    vigil_reference::evaluate(site, &text, rules)
        .expect("reference accepts the site")
        .into_iter()
        .map(|a| (a.rule, a.ts as u64, a.key, a.priority))
        .collect()
}

/// Readable diff of two alarm sets.
pub fn diff(expected: &BTreeSet<Ident>, got: &BTreeSet<Ident>) -> String {
    let mut s = String::new();
    for e in expected.difference(got) {
        s.push_str(&format!("  missing   {e:?}\n"));
    }
    for g in got.difference(expected) {
        s.push_str(&format!("  unexpected {g:?}\n"));
    }
    s
}

#[macro_export]
macro_rules! assert_same_alarms {
    ($expected:expr, $got:expr, $($ctx:tt)*) => {{
        let (e, g) = (&$expected, &$got);
        if e != g {
            panic!("alarm sets differ ({}):\n{}", format!($($ctx)*), $crate::common::diff(e, g));
        }
    }};
}

/// A small test site: one site, doors with 0, 1 or 2 cameras, cameras shared between doors.
pub const SITE: &str = r#"
[site]
id = "hq"
[[area]]
id = "outside"
[[area]]
id = "lobby"
[[area]]
id = "lab"
criticality = 4
[[area]]
id = "vault"
criticality = 5
[[door]]
id = "d-main"
from = "outside"
to = "lobby"
cameras = ["cam-1"]
[[door]]
id = "d-lab"
from = "lobby"
to = "lab"
cameras = ["cam-1", "cam-2"]
held_open_s = 20
[[door]]
id = "d-vault"
from = "lab"
to = "vault"
cameras = ["cam-2"]
held_open_s = 10
criticality = 5
[[door]]
id = "d-dock"
from = "outside"
to = "lobby"
held_open_s = 45
criticality = 1
[[reader]]
id = "r-main"
door = "d-main"
[[reader]]
id = "r-lab"
door = "d-lab"
[[camera]]
id = "cam-1"
area = "lobby"
[[camera]]
id = "cam-2"
area = "lab"
[[camera]]
id = "cam-3"
area = "vault"
[[device]]
id = "ctl-1"
"#;

pub const T0: u64 = 1_763_971_200_000;

pub fn line(ts: u64, kind: &str, field: &str, id: &str) -> String {
    format!(r#"{{"ts":{ts},"type":"{kind}","{field}":"{id}"}}"#)
}

/// Seeded random traffic over [`SITE`] that exercises the forced-entry pair and held-open doors,
/// with deliberate timestamp ties (a coarse grid) and events near every window edge.
pub fn random_traffic(seed: u64, n: usize) -> Vec<(u64, String)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let doors = ["d-main", "d-lab", "d-vault", "d-dock"];
    let cams = ["cam-1", "cam-2", "cam-3"];
    let mut out = Vec::with_capacity(n);
    let mut t = T0;
    while out.len() < n {
        // Coarse steps make ties common; fine ones make edges.
        t += if rng.random_bool(0.3) { 0 } else { rng.random_range(1..4_000) };
        let ts = if rng.random_bool(0.5) { t - t % 500 } else { t };
        let door = doors[rng.random_range(0..doors.len())];
        let cam = cams[rng.random_range(0..cams.len())];
        let l = match rng.random_range(0..100) {
            0..=9 => line(ts, "door.forced", "door", door),
            10..=29 => line(ts, "motion", "camera", cam),
            30..=37 => {
                let dir = if rng.random_bool(0.8) { "in" } else { "out" };
                format!(
                    r#"{{"ts":{ts},"type":"line.crossed","camera":"{cam}","direction":"{dir}","count":{}}}"#,
                    rng.random_range(0..3)
                )
            }
            38..=57 => line(ts, "door.opened", "door", door),
            58..=79 => line(ts, "door.closed", "door", door),
            80..=84 => line(ts, "door.held", "door", door),
            85..=92 => format!(
                r#"{{"ts":{ts},"type":"access.granted","reader":"r-main","card":"c-{}"}}"#,
                rng.random_range(0..20)
            ),
            _ => line(ts, "heartbeat", "device", "ctl-1"),
        };
        out.push((ts, l));
    }
    out
}

/// Arrival order shuffled within the allowed lateness: each event is delayed by a random amount
/// below `lateness_ms`, so on arrival no event is below `max ts seen − lateness`.
pub fn shuffle_within(events: &[(u64, String)], lateness_ms: u64, seed: u64) -> Vec<String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut keyed: Vec<(u64, usize, &String)> =
        events.iter().enumerate().map(|(i, (ts, l))| (ts + rng.random_range(0..=lateness_ms), i, l)).collect();
    keyed.sort();
    keyed.into_iter().map(|(_, _, l)| l.clone()).collect()
}

/// Events in time order (the order the reference and a single in-order source see).
pub fn in_order(events: &[(u64, String)]) -> Vec<String> {
    let mut v: Vec<&(u64, String)> = events.iter().collect();
    v.sort_by_key(|(ts, _)| *ts);
    v.into_iter().map(|(_, l)| l.clone()).collect()
}

/// A two-site campus exercising all twelve rules: anti-passback areas, schedules, sensors,
/// heartbeating devices, travel time between sites.
pub const CAMPUS: &str = r#"
[[site]]
id = "hq"
utc_offset_min = 60
heartbeat_s = 20
[[site]]
id = "plant"
[[travel]]
between = ["hq", "plant"]
min_s = 600
[[area]]
id = "outside"
site = "hq"
[[area]]
id = "lobby"
site = "hq"
[[area]]
id = "lab"
site = "hq"
criticality = 4
anti_passback = true
schedule = "Mon-Fri 07:00-19:00"
[[area]]
id = "vault"
site = "hq"
parent = "lab"
criticality = 5
[[area]]
id = "yard"
site = "plant"
criticality = 2
[[area]]
id = "shop"
site = "plant"
anti_passback = true
schedule = "Daily 06:00-18:00"
[[door]]
id = "d-main"
site = "hq"
from = "outside"
to = "lobby"
cameras = ["cam-1"]
[[door]]
id = "d-lab"
site = "hq"
from = "lobby"
to = "lab"
cameras = ["cam-1", "cam-2"]
held_open_s = 20
[[door]]
id = "d-vault"
site = "hq"
from = "lab"
to = "vault"
cameras = ["cam-2"]
held_open_s = 10
criticality = 5
[[door]]
id = "d-dock"
site = "hq"
from = "outside"
to = "lobby"
held_open_s = 45
criticality = 1
[[door]]
id = "p-gate"
site = "plant"
from = "yard"
to = "shop"
cameras = ["cam-p"]
[[reader]]
id = "r-main-in"
site = "hq"
door = "d-main"
[[reader]]
id = "r-main-out"
site = "hq"
door = "d-main"
direction = "out"
[[reader]]
id = "r-lab-in"
site = "hq"
door = "d-lab"
[[reader]]
id = "r-lab-out"
site = "hq"
door = "d-lab"
direction = "out"
[[reader]]
id = "r-vault-in"
site = "hq"
door = "d-vault"
[[reader]]
id = "r-gate-in"
site = "plant"
door = "p-gate"
[[reader]]
id = "r-gate-out"
site = "plant"
door = "p-gate"
direction = "out"
[[camera]]
id = "cam-1"
site = "hq"
area = "lobby"
[[camera]]
id = "cam-2"
site = "hq"
area = "lab"
[[camera]]
id = "cam-3"
site = "hq"
area = "vault"
heartbeat_s = 15
[[camera]]
id = "cam-p"
site = "plant"
area = "shop"
[[sensor]]
id = "gb-lab"
site = "hq"
kind = "glass_break"
area = "lab"
[[sensor]]
id = "pir-vault"
site = "hq"
kind = "intrusion"
area = "vault"
[[sensor]]
id = "pir-shop"
site = "plant"
kind = "intrusion"
area = "shop"
[[device]]
id = "ctl-1"
site = "hq"
heartbeat_s = 30
[[device]]
id = "ctl-p"
site = "plant"
"#;

/// 2025-11-24 (a Monday) 17:30 UTC: 18:30 at hq, so a run crosses the end of the lab's hours.
pub const CAMPUS_T0: u64 = 1_764_005_400_000;

/// Seeded random traffic over [`CAMPUS`] that exercises all twelve rules, with ties and edges.
pub fn campus_traffic(seed: u64, n: usize) -> Vec<(u64, String)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let doors = ["d-main", "d-lab", "d-vault", "d-dock", "p-gate"];
    let readers = ["r-main-in", "r-main-out", "r-lab-in", "r-lab-out", "r-vault-in", "r-gate-in", "r-gate-out"];
    let cams = ["cam-1", "cam-2", "cam-3", "cam-p"];
    let sensors = ["gb-lab", "pir-vault", "pir-shop"];
    let devices = ["ctl-1", "ctl-p", "cam-3", "r-lab-in", "d-dock"];
    let mut out: Vec<(u64, String)> = Vec::with_capacity(n + 16);
    let mut t = CAMPUS_T0;
    while out.len() < n {
        t += if rng.random_bool(0.25) { 0 } else { rng.random_range(1..5_000) };
        let ts = if rng.random_bool(0.4) { t - t % 1_000 } else { t };
        let card = format!("c-{}", rng.random_range(0..12));
        let reader = readers[rng.random_range(0..readers.len())];
        let door = doors[rng.random_range(0..doors.len())];
        let cam = cams[rng.random_range(0..cams.len())];
        match rng.random_range(0..100) {
            0..=17 => {
                out.push((ts, format!(r#"{{"ts":{ts},"type":"access.granted","reader":"{reader}","card":"{card}"}}"#)))
            }
            18..=21 => out.push((
                ts,
                format!(r#"{{"ts":{ts},"type":"access.denied","reader":"{reader}","card":"{card}","reason":"x"}}"#),
            )),
            22 => {
                // A burst of denials: for one card, or at one door.
                let k = rng.random_range(3..12);
                let per_door = rng.random_bool(0.5);
                let mut bt = ts;
                for _ in 0..k {
                    bt += rng.random_range(0..12_000);
                    let c = if per_door { format!("c-{}", rng.random_range(0..12)) } else { card.clone() };
                    out.push((bt, format!(r#"{{"ts":{bt},"type":"access.denied","reader":"{reader}","card":"{c}"}}"#)));
                }
            }
            23 => out.push((ts, format!(r#"{{"ts":{ts},"type":"duress","reader":"{reader}","card":"{card}"}}"#))),
            24..=27 => out.push((ts, line(ts, "door.forced", "door", door))),
            28..=41 => out.push((ts, line(ts, "motion", "camera", cam))),
            42..=51 => {
                let dir = if rng.random_bool(0.85) { "in" } else { "out" };
                let count = rng.random_range(0..3);
                out.push((
                    ts,
                    format!(
                        r#"{{"ts":{ts},"type":"line.crossed","camera":"{cam}","direction":"{dir}","count":{count}}}"#
                    ),
                ));
            }
            52..=63 => out.push((ts, line(ts, "door.opened", "door", door))),
            64..=76 => out.push((ts, line(ts, "door.closed", "door", door))),
            77..=78 => out.push((ts, line(ts, "door.held", "door", door))),
            79..=80 => {
                let kind = if rng.random_bool(0.5) { "intrusion" } else { "glass_break" };
                out.push((ts, line(ts, kind, "sensor", sensors[rng.random_range(0..sensors.len())])));
            }
            81 => out.push((ts, line(ts, "camera.tamper", "camera", cam))),
            82 => out.push((ts, line(ts, "rex", "door", door))),
            _ => out.push((ts, line(ts, "heartbeat", "device", devices[rng.random_range(0..devices.len())]))),
        }
    }
    out
}
