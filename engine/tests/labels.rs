//! The engine against the generator's ground truth: precision and recall 1.0 for every rule, on a
//! demo day and a campus slice. (Labels come from the scenario, never from running the engine.)

use std::collections::BTreeSet;
use std::sync::Arc;

use vigil_engine::Engine;
use vigil_replay::{Profile, generate};
use vigil_rules::{RulePack, Topology};

fn engine_alarms(s: &vigil_replay::Scenario, workers: usize) -> BTreeSet<(String, u64, String)> {
    let topo = Arc::new(Topology::from_toml(&s.site_toml).expect("generated site is valid"));
    let engine = Engine::builder(topo, RulePack::default_pack()).workers(workers).build().expect("starts");
    let alarms = engine.alarms().clone();
    let mut sources: Vec<_> = (0..workers).map(|w| engine.source_on("gen", w)).collect();
    for (i, chunk) in s.events.chunks(2_000).enumerate() {
        let mut bytes = Vec::new();
        for e in chunk {
            bytes.extend_from_slice(s.ndjson_line(e).as_bytes());
            bytes.push(b'\n');
        }
        sources[i % workers].push_ndjson(bytes).expect("accepted");
    }
    drop(sources);
    let stats = engine.finish().expect("finishes");
    assert_eq!(stats.rejected_total(), 0, "{:?}", stats.rejection_samples);
    assert_eq!(stats.late, 0);
    assert_eq!(stats.dropped, 0);
    alarms.try_iter().map(|a| (a.rule.clone(), a.ts, a.key.clone())).collect()
}

fn check(s: &vigil_replay::Scenario, workers: usize) {
    let expected: BTreeSet<(String, u64, String)> =
        s.labels.iter().map(|l| (l.rule.to_string(), l.ts, l.key.clone())).collect();
    let got = engine_alarms(s, workers);
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{workers} workers: missing {missing:#?}\nunexpected {extra:#?}");
    let rules: BTreeSet<&str> = s.labels.iter().map(|l| l.rule).collect();
    assert_eq!(rules.len(), 12, "every default rule is injected: {rules:?}");
}

#[test]
fn a_generated_demo_day_scores_precision_and_recall_one() {
    let s = generate(&Profile::named("demo", 1.0).expect("profile"), 1, 42);
    for workers in [1, 2] {
        check(&s, workers);
    }
}

#[test]
fn a_generated_campus_slice_scores_precision_and_recall_one() {
    // Three sites; 2 % of the nominal campus keeps the test quick.
    let s = generate(&Profile::named("campus", 0.02).expect("profile"), 1, 7);
    check(&s, 2);
}
