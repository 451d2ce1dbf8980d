//! The alarm set does not depend on worker count, batch size or arrival order within the
//! lateness, and equals the independent naive reference's.

mod common;

use common::*;

/// The twelve rules of DESIGN §5.2, as the reference names them.
const ALL: [&str; 12] = vigil_reference::DEFAULT_RULES;

#[test]
fn engine_matches_reference_on_a_single_site_for_any_workers_batches_and_order() {
    for seed in 0..6u64 {
        let events = random_traffic(seed, 1_500);
        let ordered = in_order(&events);
        let expected = reference(SITE, &ordered, &[]);
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
fn all_twelve_rules_match_the_reference_on_a_campus_for_any_workers_batches_and_order() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..8u64 {
        let events = campus_traffic(seed, 2_000);
        let ordered = in_order(&events);
        let expected = reference(CAMPUS, &ordered, &[]);
        seen.extend(expected.iter().map(|e| e.0.clone()));
        for (workers, batch) in [(1, 1), (1, 128), (2, 50), (4, 333)] {
            let lines =
                if seed % 2 == 0 { shuffle_within(&events, 2_000, seed * 7 + batch as u64) } else { ordered.clone() };
            let (alarms, stats) = run(CAMPUS, &lines, Run { workers, batch, lateness_ms: 2_000 });
            assert_eq!(stats.late, 0, "seed {seed}");
            assert_eq!(stats.rejected_total(), 0, "seed {seed}: {:?}", stats.rejection_samples);
            assert_same_alarms!(expected, idents(&alarms), "seed {seed}, {workers} workers, batch {batch}");
            assert_eq!(alarms.len(), expected.len(), "seed {seed}: one alarm per identity");
        }
    }
    let missing: Vec<&str> = ALL.iter().copied().filter(|r| !seen.contains(*r)).collect();
    assert!(missing.is_empty(), "the random campus traffic never raised {missing:?}");
}
