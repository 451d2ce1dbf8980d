//! The scenario's labels are exactly the alarms the rules define, checked against the independent
//! reference implementation (the engine is checked against the same labels in engine/tests).

use std::collections::BTreeSet;

use vigil_replay::{Profile, generate};

fn reference_alarms(s: &vigil_replay::Scenario) -> BTreeSet<(String, u64, String)> {
    let text: Vec<String> = s.events.iter().map(|e| s.ndjson_line(e)).collect();
    vigil_reference::evaluate(&s.site_toml, &text.join("\n"), &[])
        .expect("generated site is valid")
        .into_iter()
        .map(|a| (a.rule, a.ts as u64, a.key))
        .collect()
}

fn labels(s: &vigil_replay::Scenario) -> BTreeSet<(String, u64, String)> {
    s.labels.iter().map(|l| (l.rule.to_string(), l.ts, l.key.clone())).collect()
}

#[test]
fn a_demo_day_labels_every_rule_and_match_the_reference() {
    let s = generate(&Profile::named("demo", 0.3).expect("profile"), 1, 11);
    let expected = labels(&s);
    let got = reference_alarms(&s);
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:#?}\nunexpected {extra:#?}");
    let rules: BTreeSet<&str> = s.labels.iter().map(|l| l.rule).collect();
    assert_eq!(rules.len(), 12, "{rules:?}");
}

#[test]
fn generation_is_deterministic_for_a_seed() {
    let p = Profile::named("demo", 0.2).expect("profile");
    let (a, b) = (generate(&p, 1, 5), generate(&p, 1, 5));
    assert_eq!(a.site_toml, b.site_toml);
    assert_eq!(a.events, b.events);
    assert_eq!(a.labels, b.labels);
    assert_ne!(generate(&p, 1, 6).events, a.events);
}
