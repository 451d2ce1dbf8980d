//! Late events (below their source's watermark on arrival) are counted and forwarded, never
//! processed and never silently dropped.

mod common;

use std::sync::Arc;

use common::*;
use vigil_engine::Engine;
use vigil_rules::{Lateness, RulePack, Topology};

#[test]
fn events_beyond_the_lateness_are_counted_forwarded_and_not_processed() {
    let t = T0 + 100_000;
    let lines = [
        line(t, "door.opened", "door", "d-main"),
        line(t + 10_000, "heartbeat", "device", "ctl-1"),
        // 2 s lateness: W = t + 8 s now. A forced door at t + 7.999 s is late...
        line(t + 7_999, "door.forced", "door", "d-dock"),
        // ...one at exactly W is not.
        line(t + 8_000, "door.forced", "door", "d-dock"),
        line(t + 100_000, "heartbeat", "device", "ctl-1"),
    ];
    let topo = Arc::new(Topology::from_toml(SITE).expect("valid"));
    let (late_tx, late_rx) = crossbeam_channel::unbounded();
    let engine = Engine::builder(topo, RulePack::default_pack())
        .lateness(Lateness { ms: 2_000 })
        .late_events(late_tx)
        .build()
        .expect("starts");
    let alarms = engine.alarms().clone();
    let mut src = engine.source("s");
    src.push_ndjson(lines.join("\n").into_bytes()).expect("accepted");
    drop(src);
    let stats = engine.finish().expect("finishes");
    assert_eq!(stats.late, 1);
    assert_eq!(stats.events, 4);
    let late: Vec<_> = late_rx.try_iter().collect();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].event.ts.0, t + 7_999);
    assert_eq!(late[0].watermark, t + 8_000);
    let got: Vec<Ident> = alarms.try_iter().map(|a| ident(&a)).collect();
    // d-dock has no camera: the on-time forced door alarms at once; the late one does not.
    assert!(got.contains(&("forced_entry_unconfirmed".into(), t + 8_000, "d-dock".into(), 120)), "{got:?}");
    assert!(!got.iter().any(|g| g.1 == t + 7_999), "{got:?}");
    // d-main held open (opened at t, never closed, end of input far later).
    assert!(got.contains(&("door_held_open".into(), t, "d-main".into(), 110)), "{got:?}");
}

#[test]
fn zero_lateness_makes_any_disorder_late() {
    let lines = vec![line(T0 + 2, "heartbeat", "device", "ctl-1"), line(T0 + 1, "heartbeat", "device", "ctl-1")];
    let (_, stats) = run(SITE, &lines, Run { lateness_ms: 0, ..Run::default() });
    assert_eq!((stats.events, stats.late), (1, 1));
}
