//! The alarm set does not depend on worker count, batch size or arrival order within the
//! lateness, and equals the independent naive reference's.

mod common;

use common::*;

const RULES: [&str; 3] = ["forced_entry_confirmed", "forced_entry_unconfirmed", "door_held_open"];

#[test]
fn engine_matches_reference_for_any_workers_batches_and_order() {
    for seed in 0..6u64 {
        let events = random_traffic(seed, 1_500);
        let ordered = in_order(&events);
        let expected = reference(SITE, &ordered, &RULES);
        assert!(!expected.is_empty(), "seed {seed}: traffic should raise alarms");
        for (workers, batch) in [(1, 1), (1, 97), (2, 16), (2, 500), (4, 33)] {
            let lines =
                if seed % 2 == 0 { shuffle_within(&events, 2_000, seed * 31 + batch as u64) } else { ordered.clone() };
            let (alarms, stats) = run(SITE, &lines, Run { workers, batch, lateness_ms: 2_000 });
            assert_eq!(stats.late, 0, "seed {seed}: a shuffle within the lateness has no late events");
            assert_eq!(stats.events, events.len() as u64);
            assert_same_alarms!(expected, idents(&alarms), "seed {seed}, {workers} workers, batch {batch}");
            assert_eq!(alarms.len(), expected.len(), "seed {seed}: one alarm per identity");
        }
    }
}

#[test]
fn every_rule_is_exercised_by_the_random_traffic() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..6u64 {
        for (rule, ..) in reference(SITE, &in_order(&random_traffic(seed, 1_500)), &RULES) {
            seen.insert(rule);
        }
    }
    assert_eq!(seen.len(), RULES.len(), "{seen:?}");
}
