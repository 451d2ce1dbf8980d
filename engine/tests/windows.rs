//! Scripted cases at the window edges of the three rules, with exact expected alarm sets.

mod common;

use std::collections::BTreeSet;

use common::*;

fn alarms(lines: &[String]) -> BTreeSet<Ident> {
    let (got, stats) = run(SITE, lines, Run::default());
    assert_eq!(stats.rejected_total(), 0, "{:?}", stats.rejection_samples);
    unique_idents(&got)
}

const T: u64 = T0 + 60_000;

/// A trailing heartbeat moves the end-of-input watermark far enough to decide everything.
fn end() -> String {
    line(T + 600_000, "heartbeat", "device", "ctl-1")
}

#[test]
fn forced_entry_video_window_is_inclusive_at_both_ends() {
    // d-main (criticality 3, cam-1): 230 confirmed / 140 unconfirmed.
    for (offset, confirmed) in [(-5_000i64, true), (-5_001, false), (10_000, true), (10_001, false), (0, true)] {
        let v = (T as i64 + offset) as u64;
        let lines = vec![line(T, "door.forced", "door", "d-main"), line(v, "motion", "camera", "cam-1"), end()];
        let mut lines = lines;
        lines.sort_by_key(|l| l.split(',').next().map(str::to_owned));
        let expected = if confirmed {
            a("forced_entry_confirmed", T, "d-main", 230)
        } else {
            a("forced_entry_unconfirmed", T, "d-main", 140)
        };
        assert_eq!(alarms(&lines), set(&[expected]), "motion at t{offset:+} ms");
    }
}

#[test]
fn a_line_crossing_confirms_too_and_cameras_route_to_every_door_they_watch() {
    // cam-1 watches d-main and d-lab; both forced: one crossing confirms both.
    let lines = vec![
        line(T, "door.forced", "door", "d-main"),
        line(T + 1, "door.forced", "door", "d-lab"),
        format!(r#"{{"ts":{},"type":"line.crossed","camera":"cam-1","direction":"out"}}"#, T + 2_000),
        end(),
    ];
    // d-lab: criticality 4 (its `to` area) -> 240.
    assert_eq!(
        alarms(&lines),
        set(&[a("forced_entry_confirmed", T, "d-main", 230), a("forced_entry_confirmed", T + 1, "d-lab", 240)])
    );
}

#[test]
fn a_door_without_cameras_is_unconfirmed_at_once_even_at_the_end_of_input() {
    // d-dock: no cameras, criticality 1 -> 140 - 20 = 120. No later event: still fires.
    let (got, stats) = run(SITE, &[line(T, "door.forced", "door", "d-dock")], Run::default());
    assert_eq!(idents(&got), set(&[a("forced_entry_unconfirmed", T, "d-dock", 120)]));
    assert_eq!(stats.pending, 0);
}

#[test]
fn unconfirmed_decisions_past_the_end_of_input_stay_pending() {
    // The input ends at T + 9_999: the window [T-5s, T+10s] is not final.
    // (A door.closed with no opening: no rule waits on it.)
    let lines = vec![line(T, "door.forced", "door", "d-main"), line(T + 9_999, "door.closed", "door", "d-dock")];
    let (got, stats) = run(SITE, &lines, Run::default());
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(stats.pending, 1);
    // Ending at T + 10_000 makes it final (W = max ts + 1 > T + 10 s).
    let lines = vec![line(T, "door.forced", "door", "d-main"), line(T + 10_000, "door.closed", "door", "d-dock")];
    let (got, stats) = run(SITE, &lines, Run::default());
    assert_eq!(idents(&got), set(&[a("forced_entry_unconfirmed", T, "d-main", 140)]));
    assert_eq!(stats.pending, 0);
}

#[test]
fn held_open_threshold_is_inclusive() {
    // d-lab: held_open_s = 20, criticality 4 -> 120.
    let at = |close: u64| {
        vec![line(T, "door.opened", "door", "d-lab"), line(T + close, "door.closed", "door", "d-lab"), end()]
    };
    assert_eq!(alarms(&at(20_000)), set(&[]), "closed at exactly held_open_s");
    assert_eq!(alarms(&at(20_001)), set(&[a("door_held_open", T, "d-lab", 120)]), "1 ms later");
}

#[test]
fn held_open_default_threshold_and_a_repeated_opening_is_the_same_opening() {
    // d-main: default 30 s. Opened again at +10 s while open: same opening, deadline stays T+30 s.
    let lines = vec![
        line(T, "door.opened", "door", "d-main"),
        line(T + 10_000, "door.opened", "door", "d-main"),
        line(T + 35_000, "door.closed", "door", "d-main"),
        end(),
    ];
    assert_eq!(alarms(&lines), set(&[a("door_held_open", T, "d-main", 110)]));
}

#[test]
fn door_held_with_and_without_an_opening() {
    // With an opening: fires early for that opening (ts = the opening), once.
    let lines = vec![
        line(T, "door.opened", "door", "d-main"),
        line(T + 5_000, "door.held", "door", "d-main"),
        line(T + 6_000, "door.held", "door", "d-main"),
        line(T + 7_000, "door.closed", "door", "d-main"),
        end(),
    ];
    assert_eq!(alarms(&lines), set(&[a("door_held_open", T, "d-main", 110)]));
    // Without a known opening: the door.held is its own trigger.
    let lines = vec![line(T + 5_000, "door.held", "door", "d-main"), end()];
    assert_eq!(alarms(&lines), set(&[a("door_held_open", T + 5_000, "d-main", 110)]));
}

#[test]
fn ties_at_equal_ts_are_ordered_by_type_rank() {
    // door.held (rank 11) sorts before door.closed (rank 12): the door is still open -> alarm.
    let lines = vec![
        line(T, "door.opened", "door", "d-main"),
        line(T + 5_000, "door.closed", "door", "d-main"),
        line(T + 5_000, "door.held", "door", "d-main"),
        end(),
    ];
    assert_eq!(alarms(&lines), set(&[a("door_held_open", T, "d-main", 110)]));
    // door.opened (rank 5) sorts before door.closed (rank 12) at the same ts: open then closed,
    // whatever the arrival order.
    let lines = vec![line(T, "door.closed", "door", "d-vault"), line(T, "door.opened", "door", "d-vault"), end()];
    assert_eq!(alarms(&lines), set(&[]));
}

#[test]
fn two_forced_events_at_the_same_ts_are_one_identity() {
    let lines = vec![
        line(T, "door.forced", "door", "d-main"),
        line(T, "door.forced", "door", "d-main"),
        line(T + 100, "motion", "camera", "cam-1"),
        end(),
    ];
    assert_eq!(alarms(&lines), set(&[a("forced_entry_confirmed", T, "d-main", 230)]));
}

#[test]
fn alarm_json_has_the_design_fields() {
    let lines = vec![line(T, "door.forced", "door", "d-vault"), line(T + 1_880, "motion", "camera", "cam-2")];
    let (got, _) = run(SITE, &lines, Run::default());
    assert_eq!(got.len(), 1);
    let json: serde_json::Value = serde_json::from_str(&got[0].to_json()).expect("valid JSON");
    assert_eq!(json["rule"], "forced_entry_confirmed");
    assert_eq!(json["ts"], T);
    assert_eq!(json["priority"], 250); // 230 + 10 × (5 − 3)
    assert_eq!(json["band"], "critical");
    assert_eq!(json["site"], "hq");
    assert_eq!(json["door"], "d-vault");
    assert_eq!(json["area"], "vault");
    assert_eq!(json["cameras"], serde_json::json!(["cam-2"]));
    assert_eq!(
        json["evidence"],
        serde_json::json!([
            {"ts": T, "type": "door.forced", "door": "d-vault"},
            {"ts": T + 1_880, "type": "motion", "camera": "cam-2"}
        ])
    );
    assert!(json["latency_us"].as_u64().is_some());
    assert_eq!(json["id"], 1);
}

#[test]
fn a_busy_camera_without_forced_doors_keeps_its_buffer_bounded() {
    // 20 000 motions (about 33 min at 10 Hz) on a camera of two doors, no forced door: the video
    // events a future forced door could still use are few, so no per-key cap is ever hit.
    let lines: Vec<String> = (0..20_000).map(|i| line(T + i * 100, "motion", "camera", "cam-1")).collect();
    let (got, stats) = run(SITE, &lines, Run::default());
    assert!(got.is_empty());
    assert_eq!(stats.dropped, 0);
}
