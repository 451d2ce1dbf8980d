//! Bad input is a clear, counted rejection with its line number; the good lines around it still
//! produce their alarms.

mod common;

use std::sync::Arc;

use common::*;
use vigil_engine::Engine;
use vigil_engine::decode::Reason;
use vigil_rules::{RulePack, Topology};

#[test]
fn each_bad_line_is_rejected_with_reason_and_line_number_and_good_lines_still_alarm() {
    let t = T0 + 1_000;
    let lines = vec![
        line(t, "door.forced", "door", "d-dock"),                      // 1 ok -> alarm
        r#"{"ts":1,"type":"door.forced","door":"d-dock""#.to_string(), // 2 invalid JSON
        r#"{"type":"door.forced","door":"d-dock"}"#.to_string(),       // 3 missing ts
        format!(r#"{{"ts":{t},"type":"door.exploded","door":"d-dock"}}"#), // 4 unknown type
        line(t, "door.forced", "door", "d-nowhere"),                   // 5 unknown device
        line(t, "motion", "camera", "d-main"),                         // 6 wrong kind of device
        format!(r#"{{"ts":"yesterday","type":"motion","camera":"cam-1"}}"#), // 7 bad ts
        format!(r#"{{"ts":{t},"type":"door.forced"}}"#),               // 8 missing door
        format!(r#"{{"ts":{t},"type":"access.granted","reader":"r-main"}}"#), // 9 grant without card
        format!(r#"{{"ts":{t},"type":"line.crossed","camera":"cam-1","count":-1}}"#), // 10 bad count
        "[1,2,3]".to_string(),                                         // 11 not an object
        String::new(),                                                 // 12 blank: skipped
        format!(r#"{{"ts":{},"type":"door.forced","door":"d-dock","extra":{{"a":[1]}}}}"#, t + 5), // 13 ok
        format!(r#"{{"ts":"2025-11-24T08:00:01.010Z","type":"door.forced","door":"d-dock"}}"#), // 14 ok (RFC 3339)
    ];
    let (got, stats) = run(SITE, &lines, Run { batch: 4, ..Run::default() });
    let by_line: Vec<(u64, Reason)> =
        stats.rejection_samples.iter().map(|r| (r.rejection.line, r.rejection.reason)).collect();
    assert_eq!(
        by_line,
        vec![
            (2, Reason::InvalidJson),
            (3, Reason::MissingField),
            (4, Reason::UnknownType),
            (5, Reason::UnknownDevice),
            (6, Reason::UnknownDevice),
            (7, Reason::InvalidField),
            (8, Reason::MissingField),
            (9, Reason::MissingField),
            (10, Reason::InvalidField),
            (11, Reason::InvalidJson),
        ]
    );
    for r in &stats.rejection_samples {
        assert!(!r.rejection.detail.is_empty(), "{r}");
    }
    assert_eq!(stats.rejected_total(), 10);
    assert_eq!(stats.events, 3);
    let ts: Vec<u64> = got.iter().map(|a| a.ts).collect();
    assert_eq!(ts.len(), 3, "{got:?}");
    assert!(ts.contains(&t) && ts.contains(&(t + 5)) && ts.contains(&1_763_971_201_010));
}

#[test]
fn a_ten_megabyte_line_is_rejected_without_disturbing_its_neighbours() {
    let t = T0 + 1_000;
    let huge = format!(r#"{{"ts":{t},"type":"door.forced","door":"d-dock","pad":"{}"}}"#, "x".repeat(10 << 20));
    let lines = vec![line(t, "door.forced", "door", "d-dock"), huge, line(t + 1, "door.forced", "door", "d-dock")];
    let (got, stats) = run(SITE, &lines, Run { batch: 1, ..Run::default() });
    assert_eq!(stats.rejected.get(&Reason::LineTooLong), Some(&1));
    assert_eq!(stats.rejection_samples[0].rejection.line, 2);
    assert!(stats.rejection_samples[0].to_string().contains("line_too_long"), "{}", stats.rejection_samples[0]);
    assert_eq!(got.len(), 2);
}

#[test]
fn an_empty_input_finishes_cleanly() {
    let (got, stats) = run(SITE, &[], Run::default());
    assert!(got.is_empty());
    assert_eq!((stats.events, stats.rejected_total(), stats.late, stats.pending), (0, 0, 0, 0));
    // Also with no source at all, and with several workers.
    let topo = Arc::new(Topology::from_toml(SITE).expect("valid"));
    let engine = Engine::builder(topo, RulePack::default_pack()).workers(2).build().expect("starts");
    let stats = engine.finish().expect("finishes");
    assert_eq!(stats.events, 0);
}

#[test]
fn a_topology_with_a_dangling_reference_is_a_clear_error() {
    let bad = SITE.replace(r#"cameras = ["cam-2"]"#, r#"cameras = ["cam-9"]"#);
    let err = Topology::from_toml(&bad).expect_err("dangling camera");
    assert_eq!(err.to_string(), "door `d-vault`: cameras `cam-9` is not a known camera");
}

#[test]
fn non_utf8_and_binary_garbage_is_rejected_not_fatal() {
    let t = T0;
    let mut bytes = b"\xff\xfe\x00garbage\n".to_vec();
    bytes.extend_from_slice(line(t, "door.forced", "door", "d-dock").as_bytes());
    let topo = Arc::new(Topology::from_toml(SITE).expect("valid"));
    let engine = Engine::builder(topo, RulePack::default_pack()).build().expect("starts");
    let mut src = engine.source("s");
    src.push_ndjson(bytes).expect("accepted");
    drop(src);
    let stats = engine.finish().expect("finishes");
    assert_eq!((stats.rejected_total(), stats.events, stats.alarms_total()), (1, 1, 1));
}
