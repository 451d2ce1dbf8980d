//! Rule packs end to end: a custom pack, and hot swap mid-stream.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use vigil_engine::Engine;
use vigil_rules::{Lateness, RulePack, Topology};

fn run_pack(site: &str, pack: &RulePack, lines: &[String]) -> BTreeSet<Ident> {
    let topo = Arc::new(Topology::from_toml(site).expect("valid"));
    let engine = Engine::builder(topo, pack.clone()).lateness(Lateness { ms: 2_000 }).build().expect("starts");
    let alarms = engine.alarms().clone();
    let mut src = engine.source("s");
    for chunk in lines.chunks(100) {
        src.push_ndjson(chunk.join("\n").into_bytes()).expect("accepted");
    }
    drop(src);
    engine.finish().expect("finishes");
    idents(&alarms.try_iter().collect::<Vec<_>>())
}

const ROAMING: &str = r#"
[[rule]]
id = "card_roaming"
name = "One card at 3 different doors in 60 s"
priority = 120
kind = "distinct"
group_by = "card"
match = ["access.granted", "access.denied"]
field = "door"
threshold = 3
within_s = 60
"#;

#[test]
fn a_custom_distinct_pack_end_to_end() {
    let topo = Topology::from_toml(CAMPUS).expect("valid");
    let pack = RulePack::from_toml(ROAMING, &topo).expect("valid pack");
    let g = |ts: u64, reader: &str, card: &str| {
        format!(r#"{{"ts":{ts},"type":"access.granted","reader":"{reader}","card":"{card}"}}"#)
    };
    let t = CAMPUS_T0;
    let lines = vec![
        g(t, "r-main-in", "c-1"),
        g(t + 10_000, "r-lab-in", "c-1"),
        g(t + 20_000, "r-lab-out", "c-1"),  // same door as before: still 2 distinct
        g(t + 60_000, "r-vault-in", "c-1"), // third door at exactly +60 s: alarm
        g(t + 100_000, "r-main-in", "c-2"),
        g(t + 130_000, "r-lab-in", "c-2"),
        g(t + 160_001, "r-vault-in", "c-2"), // 60.001 s after the first: only 2 in the window
    ];
    let got = run_pack(CAMPUS, &pack, &lines);
    // Card rule: criticality of the trigger's door (d-vault, 5): 120 + 20.
    assert_eq!(got, BTreeSet::from([("card_roaming".to_string(), t + 60_000, "c-1".to_string(), 140)]));
}

/// The new pack: `duress` removed, `access_denied_burst` changed (threshold 3), `card_roaming` added.
fn new_pack(topo: &Topology) -> RulePack {
    let text = vigil_rules::DEFAULT_PACK.replace("threshold = 5", "threshold = 3");
    let mut rules: Vec<_> = RulePack::from_toml(&format!("{text}\n{ROAMING}"), topo).expect("valid").rules().to_vec();
    rules.retain(|r| r.id != "duress");
    RulePack::new(rules)
}

#[test]
fn hot_swap_mid_stream_gives_old_pack_before_and_new_pack_after() {
    let topo = Topology::from_toml(CAMPUS).expect("valid");
    let old = RulePack::default_pack();
    let new = new_pack(&topo);
    let unchanged = old.only(&[
        "forced_entry_confirmed",
        "forced_entry_unconfirmed",
        "door_held_open",
        "tailgating",
        "anti_passback",
        "access_denied_burst_door",
        "impossible_travel",
        "intrusion_confirmed",
        "device_offline",
        "after_hours_access",
    ]);
    let old_only = old.only(&["duress", "access_denied_burst"]);
    let new_only = new.only(&["access_denied_burst", "card_roaming"]);
    let mut checked = 0;
    for seed in [3u64, 11, 19] {
        let events = campus_traffic(seed, 3_000);
        let mut ordered = in_order(&events);
        let swap_at = events[events.len() / 2].0 + 1;
        // The last event before the boundary sits at T − 1, so the old pack's decisions below T are
        // final in every run (a door.closed with no opening: no rule waits on it).
        let boundary = line(swap_at - 1, "door.closed", "door", "d-main");
        let split = ordered.iter().position(|l| ts_of(l) >= swap_at).expect("events after the boundary");
        ordered.insert(split, boundary);
        let (a, b) = ordered.split_at(split + 1);

        let mut expected = run_pack(CAMPUS, &unchanged, &ordered);
        expected.extend(run_pack(CAMPUS, &old_only, a));
        expected.extend(run_pack(CAMPUS, &new_only, b));

        for workers in [1, 2] {
            let engine = Engine::builder(Arc::new(topo.clone()), old.clone())
                .workers(workers)
                .lateness(Lateness { ms: 2_000 })
                .build()
                .expect("starts");
            let alarms = engine.alarms().clone();
            let mut sources: Vec<_> = (0..workers).map(|w| engine.source_on("s", w)).collect();
            for (i, chunk) in a.chunks(100).enumerate() {
                sources[i % workers].push_ndjson(chunk.join("\n").into_bytes()).expect("accepted");
            }
            let report = engine.swap_rules_at(&new, swap_at).expect("swap accepted");
            assert_eq!(report.removed, ["duress"]);
            assert_eq!(report.started, ["access_denied_burst", "card_roaming"]);
            assert_eq!(report.kept.len(), 10);
            for (i, chunk) in b.chunks(100).enumerate() {
                sources[i % workers].push_ndjson(chunk.join("\n").into_bytes()).expect("accepted");
            }
            drop(sources);
            let stats = engine.finish().expect("finishes");
            assert_eq!(stats.late, 0);
            let got = idents(&alarms.try_iter().collect::<Vec<_>>());
            assert_same_alarms!(expected, got, "seed {seed}, {workers} workers");
            checked += expected.len();
        }
        assert!(expected.iter().any(|e| e.0 == "card_roaming" || e.0 == "access_denied_burst"));
    }
    assert!(checked > 100, "the comparison should cover many alarms, got {checked}");
}

#[test]
fn a_swap_behind_events_already_evaluated_is_refused_and_the_old_pack_keeps_running() {
    let topo = Arc::new(Topology::from_toml(CAMPUS).expect("valid"));
    let engine = Engine::builder(topo.clone(), RulePack::default_pack()).build().expect("starts");
    let mut src = engine.source("s");
    src.push_ndjson(line(CAMPUS_T0 + 5_000, "door.forced", "door", "d-dock").into_bytes()).expect("ok");
    // Wait until the event has been ingested.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while engine.alarms().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the forced door never alarmed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let err = engine.swap_rules_at(&RulePack::default_pack(), CAMPUS_T0).expect_err("behind");
    assert!(err.to_string().contains("already evaluated"), "{err}");
    let ok = engine.swap_rules(&RulePack::default_pack()).expect("now is fine");
    assert_eq!(ok.at_ms, CAMPUS_T0 + 5_001);
    assert_eq!(ok.kept.len(), 12);
    drop(src);
    assert_eq!(engine.finish().expect("finishes").alarms["forced_entry_unconfirmed"], 1);
}

fn ts_of(l: &str) -> u64 {
    l[6..].split(|c: char| !c.is_ascii_digit()).next().and_then(|d| d.parse().ok()).expect("ts first")
}
