//! Life cycle: the dataflow completes after inputs close; pushes after the end fail cleanly;
//! sources may come and go while the engine runs.

mod common;

use std::sync::Arc;

use common::*;
use vigil_engine::{Engine, TryPushError};
use vigil_rules::{RulePack, Topology};

fn engine(workers: usize) -> Engine {
    let topo = Arc::new(Topology::from_toml(SITE).expect("valid"));
    Engine::builder(topo, RulePack::default_pack()).workers(workers).queue_batches(2).build().expect("starts")
}

#[test]
fn finish_completes_with_sources_still_open_elsewhere_dropped() {
    for workers in [1, 2] {
        let e = engine(workers);
        let mut a = e.source("a");
        let mut b = e.source("b");
        a.push_ndjson(line(T0, "door.forced", "door", "d-dock").into_bytes()).expect("ok");
        b.push_ndjson(line(T0 + 5, "door.forced", "door", "d-dock").into_bytes()).expect("ok");
        drop(a);
        drop(b);
        let stats = e.finish().expect("finishes");
        assert_eq!(stats.alarms["forced_entry_unconfirmed"], 2);
    }
}

#[test]
fn a_source_added_mid_run_starts_at_the_current_watermark() {
    let e = engine(2);
    let alarms = e.alarms().clone();
    let mut a = e.source("a");
    a.push_ndjson(line(T0 + 60_000, "heartbeat", "device", "ctl-1").into_bytes()).expect("ok");
    // Wait until the workers have advanced the watermark to T0 + 58 s (a new source starts there).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while e.watermark() < T0 + 58_000 {
        assert!(std::time::Instant::now() < deadline, "the watermark never reached T0 + 58 s: {}", e.watermark());
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let mut b = e.source("b");
    b.push_ndjson(line(T0, "door.forced", "door", "d-dock").into_bytes()).expect("ok");
    b.push_ndjson(line(T0 + 59_000, "door.forced", "door", "d-dock").into_bytes()).expect("ok");
    drop((a, b));
    let stats = e.finish().expect("finishes");
    assert_eq!(stats.late, 1, "the event below the watermark the new source joined at is late");
    let got: Vec<u64> = alarms.try_iter().map(|a| a.ts).collect();
    assert_eq!(got, vec![T0 + 59_000]);
}

#[test]
fn a_host_timed_source_moves_only_when_the_host_advances_it() {
    let e = engine(2);
    let alarms = e.alarms().clone();
    let mut s = e.source_host_timed("host");
    s.push_ndjson(line(T0, "door.forced", "door", "d-dock").into_bytes()).expect("ok");
    s.push_ndjson(line(T0 + 60_000, "heartbeat", "device", "ctl-1").into_bytes()).expect("ok");
    // A normal source would now be at T0 + 58 s and call this late; the host has not moved it.
    s.push_ndjson(line(T0 + 1_000, "door.forced", "door", "d-dock").into_bytes()).expect("ok");
    s.advance_to(T0 + 30_000).expect("ok");
    // Below what the host advanced to: late.
    s.push_ndjson(line(T0 + 2_000, "door.forced", "door", "d-dock").into_bytes()).expect("ok");
    drop(s);
    let stats = e.finish().expect("finishes");
    assert_eq!(stats.late, 1, "only the event below the host's advance is late");
    let mut got: Vec<u64> = alarms.try_iter().filter(|a| a.rule == "forced_entry_unconfirmed").map(|a| a.ts).collect();
    got.sort_unstable();
    assert_eq!(got, vec![T0, T0 + 1_000]);
}

#[test]
fn try_push_hands_the_batch_back_when_full_and_after_the_end() {
    let e = engine(1);
    let mut s = e.source("s");
    let mut full = 0;
    for i in 0..10_000u64 {
        match s.try_push_ndjson(line(T0 + i, "heartbeat", "device", "ctl-1").into_bytes()) {
            Ok(()) => {}
            Err(TryPushError::Full(bytes)) => {
                assert!(!bytes.is_empty());
                full += 1;
            }
            Err(TryPushError::Closed(_)) => panic!("engine is running"),
        }
    }
    drop(s);
    let stats = e.finish().expect("finishes");
    assert!(stats.events + full == 10_000, "every batch is either accepted or handed back");
}

#[test]
fn dropping_an_engine_without_finish_does_not_hang() {
    let e = engine(2);
    let mut s = e.source("s");
    s.push_ndjson(line(T0, "door.forced", "door", "d-dock").into_bytes()).expect("ok");
    drop(s);
    drop(e);
}
