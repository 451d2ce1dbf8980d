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
    (a.rule.clone(), a.ts, a.key().unwrap_or_default().to_string(), a.priority)
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
