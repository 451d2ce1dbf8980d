//! NDJSON and Arrow IPC inputs of the same events decode to the same events and alarms.

mod common;

use std::sync::Arc;

use common::*;
use vigil_engine::Engine;
use vigil_engine::arrow_io::{ndjson_to_arrow, read_ipc_file};
use vigil_rules::{Lateness, RulePack, Topology};

#[test]
fn arrow_and_ndjson_replays_give_the_same_alarms() {
    let events = random_traffic(7, 3_000);
    let mut lines = shuffle_within(&events, 1_000, 3);
    // Include RFC 3339 timestamps and a rejected line in both.
    lines.insert(10, r#"{"ts":"2025-11-24T08:00:00.500Z","type":"door.forced","door":"d-dock"}"#.to_string());
    lines.insert(20, r#"{"ts":1763971200000,"type":"door.forced","door":"d-nowhere"}"#.to_string());
    let (ndjson_alarms, ndjson_stats) = run(SITE, &lines, Run { workers: 2, batch: 256, lateness_ms: 2_000 });

    let dir = std::env::temp_dir().join(format!("vigil-arrow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("events.arrow");
    let text = lines.join("\n");
    let converted =
        ndjson_to_arrow(text.as_bytes(), std::fs::File::create(&path).expect("create"), 500).expect("convert");
    assert_eq!(converted.rows, lines.len() as u64);

    let topo = Arc::new(Topology::from_toml(SITE).expect("valid"));
    let engine = Engine::builder(topo, RulePack::default_pack())
        .workers(2)
        .lateness(Lateness { ms: 2_000 })
        .build()
        .expect("starts");
    let alarms = engine.alarms().clone();
    let mut sources = [engine.source_on("a#0", 0), engine.source_on("a#1", 1)];
    let mut row = 1;
    for (i, batch) in read_ipc_file(&path).expect("open").enumerate() {
        let batch = batch.expect("batch");
        let n = batch.num_rows() as u64;
        sources[i % 2].push_arrow_at(batch, row).expect("accepted");
        row += n;
    }
    drop(sources);
    let stats = engine.finish().expect("finishes");
    let arrow_alarms: Vec<_> = alarms.try_iter().collect();
    std::fs::remove_dir_all(&dir).ok();

    assert_eq!(stats.events, ndjson_stats.events);
    assert_eq!(stats.rejected_total(), 1);
    assert_eq!(stats.rejection_samples[0].rejection.line, 21);
    assert_same_alarms!(idents(&ndjson_alarms), idents(&arrow_alarms), "arrow vs ndjson");
    assert!(!arrow_alarms.is_empty());
}
