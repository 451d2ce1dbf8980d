//! Live mode: time advances without events (DESIGN §4), so absence alarms fire on a quiet site.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vigil_engine::Engine;
use vigil_rules::{Lateness, RulePack, Topology};

const SITE: &str = r#"
[site]
id = "hq"
[[area]]
id = "a"
[[area]]
id = "b"
[[door]]
id = "d"
from = "a"
to = "b"
held_open_s = 1
"#;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[test]
fn a_door_left_open_alarms_on_a_quiet_site_while_the_source_stays_open() {
    let topo = Arc::new(Topology::from_toml(SITE).expect("valid"));
    // Lateness well above any scheduling stall between reading the clock and the push below.
    let engine = Engine::builder(topo, RulePack::default_pack())
        .lateness(Lateness { ms: 2_000 })
        .live(Duration::from_millis(100))
        .build()
        .expect("starts");
    let alarms = engine.alarms().clone();
    let mut src = engine.source("panel");
    let opened = now_ms();
    src.push_ndjson(format!(r#"{{"ts":{opened},"type":"door.opened","door":"d"}}"#).into_bytes()).expect("ok");
    // No further event: the idle source's watermark follows the wall clock past opened + 1 s.
    let alarm = alarms.recv_timeout(Duration::from_secs(60)).expect("door_held_open fires without further events");
    assert_eq!((alarm.rule.as_str(), alarm.ts, alarm.door.as_deref()), ("door_held_open", opened, Some("d")));
    assert!(now_ms() >= opened + 1_000, "not before the door was open for held_open_s");
    // Events behind the wall-clock watermark are now late, and counted as such.
    src.push_ndjson(format!(r#"{{"ts":{opened},"type":"door.closed","door":"d"}}"#).into_bytes()).expect("ok");
    drop(src);
    let stats = engine.finish().expect("finishes");
    assert_eq!((stats.events, stats.late), (1, 1));
}

#[test]
fn replays_do_not_advance_with_the_wall_clock() {
    let topo = Arc::new(Topology::from_toml(SITE).expect("valid"));
    let engine =
        Engine::builder(topo, RulePack::default_pack()).lateness(Lateness { ms: 200 }).build().expect("starts");
    let alarms = engine.alarms().clone();
    let mut src = engine.source("panel");
    let opened = now_ms();
    src.push_ndjson(format!(r#"{{"ts":{opened},"type":"door.opened","door":"d"}}"#).into_bytes()).expect("ok");
    assert!(alarms.recv_timeout(Duration::from_millis(1_500)).is_err(), "no wall clock in replay mode");
    drop(src);
    let stats = engine.finish().expect("finishes");
    assert_eq!(stats.pending, 1, "the opening is undecided at the end of the input");
}
