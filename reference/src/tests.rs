//! Edge cases of every rule, through the public [`evaluate`].

use super::*;

/// One site, `utc_offset_min = 60`, devices heartbeat every 10 s unless they say otherwise.
///
/// Criticality: d-lobby 3, d-lab 5 (from the `lab` area), d-store 1 (its own), d-yard 3.
/// `cam-1` watches both d-lobby and d-lab; `cam-x` watches nothing.
const SITE: &str = r#"
    [site]
    id = "hq"
    utc_offset_min = 60
    heartbeat_s = 10

    [[area]]
    id = "out"
    [[area]]
    id = "yard"
    [[area]]
    id = "lobby"
    anti_passback = true
    [[area]]
    id = "lab"
    parent = "lobby"
    criticality = 5
    schedule = "Mon-Fri 07:00-19:00"
    [[area]]
    id = "store"
    parent = "lobby"

    [[door]]
    id = "d-lobby"
    from = "out"
    to = "lobby"
    cameras = ["cam-1"]
    [[door]]
    id = "d-lab"
    from = "lobby"
    to = "lab"
    cameras = ["cam-7", "cam-1"]
    [[door]]
    id = "d-store"
    from = "lobby"
    to = "store"
    held_open_s = 5
    criticality = 1
    [[door]]
    id = "d-yard"
    from = "out"
    to = "yard"

    [[reader]]
    id = "r-lobby-in"
    door = "d-lobby"
    direction = "in"
    [[reader]]
    id = "r-lobby-out"
    door = "d-lobby"
    direction = "out"
    [[reader]]
    id = "r-lab-in"
    door = "d-lab"
    [[reader]]
    id = "r-lab-out"
    door = "d-lab"
    direction = "out"
    [[reader]]
    id = "r-yard-in"
    door = "d-yard"
    [[reader]]
    id = "r-store-in"
    door = "d-store"

    [[camera]]
    id = "cam-1"
    area = "lobby"
    [[camera]]
    id = "cam-7"
    area = "lab"
    [[camera]]
    id = "cam-x"
    area = "lab"

    [[sensor]]
    id = "gb-lab"
    kind = "glass_break"
    area = "lab"
    [[sensor]]
    id = "pir-store"
    kind = "intrusion"
    area = "store"

    [[device]]
    id = "ctl-1"
    heartbeat_s = 30
"#;

/// Two sites one hour apart, and a third with no travel entry.
const TRAVEL_SITE: &str = r#"
    [[site]]
    id = "hq"
    [[site]]
    id = "plant"
    [[site]]
    id = "lab2"

    [[area]]
    id = "out"
    site = "hq"
    [[area]]
    id = "in"
    site = "hq"

    [[door]]
    id = "d-hq"
    from = "out"
    to = "in"
    site = "hq"
    [[door]]
    id = "d-hq2"
    from = "out"
    to = "in"
    site = "hq"
    [[door]]
    id = "d-plant"
    from = "out"
    to = "in"
    site = "plant"
    criticality = 4
    [[door]]
    id = "d-lab2"
    from = "out"
    to = "in"
    site = "lab2"

    [[travel]]
    between = ["plant", "hq"]
    min_s = 3600
"#;

/// A JSON event line from `ts`, `type` and extra `"field":"value"` pairs.
fn ev(ts: i64, ty: &str, fields: &[(&str, &str)]) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("ts".into(), ts.into());
    obj.insert("type".into(), ty.into());
    for (k, v) in fields {
        obj.insert((*k).into(), (*v).into());
    }
    serde_json::Value::Object(obj).to_string()
}

/// A `line.crossed` with an explicit count.
fn crossed(ts: i64, camera: &str, direction: &str, count: u64) -> String {
    serde_json::json!({"ts": ts, "type": "line.crossed", "camera": camera,
                       "direction": direction, "count": count})
    .to_string()
}

/// An event that only moves the end of input (names a device no rule cares about).
fn end_at(ts: i64) -> String {
    ev(ts, "camera.tamper", &[("camera", "cam-x")])
}

fn run_on(site: &str, rule: &str, lines: &[String]) -> Vec<(i64, String, u8)> {
    evaluate(site, &lines.join("\n"), &[rule])
        .expect("valid site")
        .into_iter()
        .map(|a| {
            assert_eq!(a.rule, rule);
            (a.ts, a.key, a.priority)
        })
        .collect()
}

fn run(rule: &str, lines: &[String]) -> Vec<(i64, String, u8)> {
    run_on(SITE, rule, lines)
}

fn a(ts: i64, key: &str, priority: u8) -> (i64, String, u8) {
    (ts, key.to_string(), priority)
}

const T: i64 = 1_000_000;

// ---- forced entry ----------------------------------------------------------------------------

fn forced_with_video(video: String) -> Vec<String> {
    vec![ev(T, "door.forced", &[("door", "d-lobby")]), video, end_at(T + 20_000)]
}

#[test]
fn forced_entry_confirmed_window_edges() {
    let motion = |ts| ev(ts, "motion", &[("camera", "cam-1")]);
    for (ts, confirmed) in [(T - 5_000, true), (T - 5_001, false), (T + 10_000, true), (T + 10_001, false), (T, true)] {
        let lines = forced_with_video(motion(ts));
        let want = if confirmed { vec![a(T, "d-lobby", 230)] } else { vec![] };
        assert_eq!(run("forced_entry_confirmed", &lines), want, "motion at {ts}");
        let want = if confirmed { vec![] } else { vec![a(T, "d-lobby", 140)] };
        assert_eq!(run("forced_entry_unconfirmed", &lines), want, "motion at {ts}");
    }
}

#[test]
fn forced_entry_confirmed_by_any_crossing_on_a_camera_of_the_door() {
    let lines = forced_with_video(crossed(T + 1, "cam-1", "out", 0));
    assert_eq!(run("forced_entry_confirmed", &lines), vec![a(T, "d-lobby", 230)]);
    // cam-7 watches d-lab only; cam-x watches nothing.
    for cam in ["cam-7", "cam-x"] {
        let lines = forced_with_video(ev(T + 1, "motion", &[("camera", cam)]));
        assert_eq!(run("forced_entry_confirmed", &lines), vec![]);
        assert_eq!(run("forced_entry_unconfirmed", &lines), vec![a(T, "d-lobby", 140)]);
    }
    // d-lab has criticality 5.
    let lines = vec![
        ev(T, "door.forced", &[("door", "d-lab")]),
        ev(T + 1, "motion", &[("camera", "cam-7")]),
        ev(T + 1, "door.forced", &[("door", "d-lab")]),
    ];
    assert_eq!(run("forced_entry_confirmed", &lines), vec![a(T, "d-lab", 250), a(T + 1, "d-lab", 250)]);
}

#[test]
fn forced_entry_unconfirmed_waits_for_its_decision_point() {
    let forced = ev(T, "door.forced", &[("door", "d-lobby")]);
    assert_eq!(run("forced_entry_unconfirmed", &[forced.clone(), end_at(T + 9_999)]), vec![]);
    assert_eq!(run("forced_entry_unconfirmed", &[forced.clone(), end_at(T + 10_000)]), vec![a(T, "d-lobby", 140)]);
    // Same-ts duplicates are one identity.
    assert_eq!(
        run("forced_entry_unconfirmed", &[forced.clone(), forced, end_at(T + 10_000)]),
        vec![a(T, "d-lobby", 140)]
    );
    // A door without cameras fires at once, even as the last event.
    assert_eq!(
        run("forced_entry_unconfirmed", &[ev(T, "door.forced", &[("door", "d-store")])]),
        vec![a(T, "d-store", 120)]
    );
}

// ---- door held open --------------------------------------------------------------------------

fn opened(ts: i64, door: &str) -> String {
    ev(ts, "door.opened", &[("door", door)])
}

fn closed(ts: i64, door: &str) -> String {
    ev(ts, "door.closed", &[("door", door)])
}

fn held(ts: i64, door: &str) -> String {
    ev(ts, "door.held", &[("door", door)])
}

#[test]
fn door_held_open_close_at_the_deadline_is_in_time() {
    let r = |lines: &[String]| run("door_held_open", lines);
    assert_eq!(r(&[opened(T, "d-lobby"), closed(T + 30_000, "d-lobby")]), vec![]);
    assert_eq!(r(&[opened(T, "d-lobby"), closed(T + 30_001, "d-lobby")]), vec![a(T, "d-lobby", 110)]);
    // held_open_s = 5 and criticality 1 on d-store.
    assert_eq!(r(&[opened(T, "d-store"), closed(T + 5_000, "d-store")]), vec![]);
    assert_eq!(r(&[opened(T, "d-store"), closed(T + 5_001, "d-store")]), vec![a(T, "d-store", 90)]);
    // Opened and closed at the same ts: opened ranks first.
    assert_eq!(r(&[closed(T, "d-lobby"), opened(T, "d-lobby")]), vec![]);
}

#[test]
fn door_held_open_deadline_is_final_only_when_reached() {
    let r = |lines: &[String]| run("door_held_open", lines);
    assert_eq!(r(&[opened(T, "d-lobby"), end_at(T + 29_999)]), vec![]);
    assert_eq!(r(&[opened(T, "d-lobby"), end_at(T + 30_000)]), vec![a(T, "d-lobby", 110)]);
    // A close on another door does not close this one.
    assert_eq!(r(&[opened(T, "d-lobby"), closed(T + 1, "d-lab"), end_at(T + 30_000)]), vec![a(T, "d-lobby", 110)]);
}

#[test]
fn door_held_open_one_alarm_per_opening() {
    let r = |lines: &[String]| run("door_held_open", lines);
    // A second opened while open is the same opening.
    assert_eq!(
        r(&[opened(T, "d-lobby"), opened(T + 20_000, "d-lobby"), closed(T + 40_000, "d-lobby"),]),
        vec![a(T, "d-lobby", 110)]
    );
    // door.held while open fires early, once, for the opening; the late close adds nothing.
    assert_eq!(
        r(&[
            opened(T, "d-lobby"),
            held(T + 1_000, "d-lobby"),
            held(T + 2_000, "d-lobby"),
            closed(T + 40_000, "d-lobby"),
        ]),
        vec![a(T, "d-lobby", 110)]
    );
    assert_eq!(r(&[opened(T, "d-lobby"), held(T + 1_000, "d-lobby")]), vec![a(T, "d-lobby", 110)]);
    // door.held with no known opening is its own trigger, every time.
    assert_eq!(r(&[held(T, "d-lab"), held(T + 5, "d-lab")]), vec![a(T, "d-lab", 130), a(T + 5, "d-lab", 130)]);
    assert_eq!(r(&[opened(T, "d-lab"), closed(T + 1, "d-lab"), held(T + 2, "d-lab"),]), vec![a(T + 2, "d-lab", 130)]);
    // Two openings, each held too long.
    assert_eq!(
        r(&[opened(T, "d-lobby"), closed(T + 31_000, "d-lobby"), opened(T + 32_000, "d-lobby"), end_at(T + 62_000),]),
        vec![a(T, "d-lobby", 110), a(T + 32_000, "d-lobby", 110)]
    );
}

// ---- tailgating ------------------------------------------------------------------------------

fn grant(ts: i64, reader: &str, card: &str) -> String {
    ev(ts, "access.granted", &[("reader", reader), ("card", card)])
}

fn denied(ts: i64, reader: &str, card: Option<&str>) -> String {
    match card {
        Some(c) => ev(ts, "access.denied", &[("reader", reader), ("card", c)]),
        None => ev(ts, "access.denied", &[("reader", reader)]),
    }
}

#[test]
fn tailgating_token_lasts_seven_seconds() {
    let r = |lines: &[String]| run("tailgating", lines);
    // cam-7 watches only d-lab (criticality 5).
    for (dt, alarm) in [(7_000, false), (7_001, true), (0, false)] {
        let lines = [grant(T, "r-lab-in", "k"), crossed(T + dt, "cam-7", "in", 1)];
        let want = if alarm { vec![a(T + dt, "d-lab", 190)] } else { vec![] };
        assert_eq!(r(&lines), want, "crossing after {dt} ms");
    }
    // A crossing just before the grant has no token.
    assert_eq!(r(&[grant(T, "r-lab-in", "k"), crossed(T - 1, "cam-7", "in", 1)]), vec![a(T - 1, "d-lab", 190)]);
}

#[test]
fn tailgating_counts_people_and_directions() {
    let r = |lines: &[String]| run("tailgating", lines);
    assert_eq!(r(&[grant(T, "r-lab-in", "k"), crossed(T + 1, "cam-7", "in", 2)]), vec![a(T + 1, "d-lab", 190)]);
    assert_eq!(r(&[grant(T, "r-lab-in", "k"), grant(T, "r-lab-in", "j"), crossed(T + 1, "cam-7", "in", 2),]), vec![]);
    // An out grant gives no token; an out crossing consumes none and is never an excess.
    assert_eq!(r(&[grant(T, "r-lab-out", "k"), crossed(T + 1, "cam-7", "in", 1)]), vec![a(T + 1, "d-lab", 190)]);
    assert_eq!(r(&[crossed(T + 1, "cam-7", "out", 3)]), vec![]);
    // Default direction is in, default count 1; zero people is no excess.
    assert_eq!(r(&[ev(T, "line.crossed", &[("camera", "cam-7")])]), vec![a(T, "d-lab", 190)]);
    assert_eq!(r(&[crossed(T, "cam-7", "in", 0)]), vec![]);
    // A token is used once.
    assert_eq!(
        r(&[grant(T, "r-lab-in", "k"), crossed(T + 1, "cam-7", "in", 1), crossed(T + 2, "cam-7", "in", 1),]),
        vec![a(T + 2, "d-lab", 190)]
    );
    // A door-only grant is `in` by default.
    assert_eq!(
        r(&[ev(T, "access.granted", &[("door", "d-lab"), ("card", "k")]), crossed(T + 1, "cam-7", "in", 1),]),
        vec![]
    );
}

#[test]
fn tailgating_uses_oldest_valid_token_first() {
    let r = |lines: &[String]| run("tailgating", lines);
    // Tokens at T and T+5000. The crossing at T+6000 takes T's; T+7500 takes T+5000's.
    assert_eq!(
        r(&[
            grant(T, "r-lab-in", "k"),
            grant(T + 5_000, "r-lab-in", "j"),
            crossed(T + 6_000, "cam-7", "in", 1),
            crossed(T + 7_500, "cam-7", "in", 1),
        ]),
        vec![]
    );
    // At T+7001 the first token has expired, the second serves one of two people.
    assert_eq!(
        r(&[grant(T, "r-lab-in", "k"), grant(T + 5_000, "r-lab-in", "j"), crossed(T + 7_001, "cam-7", "in", 2),]),
        vec![a(T + 7_001, "d-lab", 190)]
    );
}

#[test]
fn tailgating_camera_of_two_doors_counts_at_each() {
    let r = |lines: &[String]| run("tailgating", lines);
    assert_eq!(r(&[crossed(T, "cam-1", "in", 1)]), vec![a(T, "d-lab", 190), a(T, "d-lobby", 170)]);
    assert_eq!(r(&[grant(T, "r-lobby-in", "k"), crossed(T, "cam-1", "in", 1)]), vec![a(T, "d-lab", 190)]);
}

// ---- anti-passback ---------------------------------------------------------------------------

#[test]
fn anti_passback_violation_and_reset() {
    let r = |lines: &[String]| run("anti_passback", lines);
    // First grant: area unknown. Second `in` at the lobby door: the card is in the lobby, not out.
    assert_eq!(r(&[grant(T, "r-lobby-in", "k"), grant(T + 1_000, "r-lobby-in", "k")]), vec![a(T + 1_000, "k", 150)]);
    assert_eq!(r(&[grant(T, "r-lobby-in", "k"), grant(T + 1_000, "r-lobby-out", "k")]), vec![]);
    // After a violation the card stands in Y: the next in/out pair is clean.
    assert_eq!(
        r(&[grant(T, "r-lobby-out", "k"), grant(T + 1, "r-lobby-out", "k"), grant(T + 2, "r-lobby-in", "k"),]),
        vec![a(T + 1, "k", 150)]
    );
    // 24 h without a grant: unknown again.
    let day = 86_400_000;
    assert_eq!(r(&[grant(T, "r-lobby-in", "k"), grant(T + day, "r-lobby-in", "k")]), vec![]);
    assert_eq!(
        r(&[grant(T, "r-lobby-in", "k"), grant(T + day - 1, "r-lobby-in", "k")]),
        vec![a(T + day - 1, "k", 150)]
    );
    // Cards are independent.
    assert_eq!(r(&[grant(T, "r-lobby-in", "k"), grant(T + 1, "r-lobby-in", "j")]), vec![]);
}

#[test]
fn anti_passback_only_at_doors_touching_an_enforcing_area() {
    let r = |lines: &[String]| run("anti_passback", lines);
    // d-yard (out -> yard) enforces nothing: entering twice is fine.
    assert_eq!(r(&[grant(T, "r-yard-in", "k"), grant(T + 1, "r-yard-in", "k")]), vec![]);
    // But grants there still move the card: in the yard, entering the lobby from `out` violates.
    assert_eq!(r(&[grant(T, "r-yard-in", "k"), grant(T + 1, "r-lobby-in", "k")]), vec![a(T + 1, "k", 150)]);
    // d-lab touches the lobby (from): the door's criticality (5) sets the priority.
    assert_eq!(r(&[grant(T, "r-yard-in", "k"), grant(T + 1, "r-lab-in", "k")]), vec![a(T + 1, "k", 170)]);
    // Denials do not move the card.
    assert_eq!(
        r(&[grant(T, "r-lobby-in", "k"), denied(T + 1, "r-lobby-out", Some("k")), grant(T + 2, "r-lobby-out", "k"),]),
        vec![]
    );
}

// ---- access denied bursts --------------------------------------------------------------------

#[test]
fn access_denied_burst_threshold_and_window() {
    let r = |lines: &[String]| run("access_denied_burst", lines);
    let denials =
        |times: &[i64]| -> Vec<String> { times.iter().map(|&t| denied(T + t, "r-lobby-in", Some("k"))).collect() };
    assert_eq!(r(&denials(&[0, 1, 2, 3])), vec![]);
    assert_eq!(r(&denials(&[0, 1, 2, 3, 4])), vec![a(T + 4, "k", 160)]);
    assert_eq!(r(&denials(&[0, 15_000, 30_000, 45_000, 60_000])), vec![a(T + 60_000, "k", 160)]);
    assert_eq!(r(&denials(&[0, 15_000, 30_000, 45_000, 60_001])), vec![]);
    // Denials without a card, or of another card, do not count.
    let mut lines = denials(&[0, 1, 2, 3]);
    lines.push(denied(T + 4, "r-lobby-in", None));
    lines.push(denied(T + 4, "r-lobby-in", Some("j")));
    assert_eq!(r(&lines), vec![]);
    // Criticality is the trigger's door: d-lab is 5.
    let mut lines = denials(&[0, 1, 2, 3]);
    lines.push(denied(T + 4, "r-lab-in", Some("k")));
    assert_eq!(r(&lines), vec![a(T + 4, "k", 180)]);
}

#[test]
fn access_denied_burst_is_quiet_for_a_window_after_an_alarm() {
    let r = |lines: &[String]| run("access_denied_burst", lines);
    // One denial a second from T to T+70 s: alarm at T+4 s, quiet through T+64 s.
    let lines: Vec<String> = (0..=70).map(|s| denied(T + s * 1_000, "r-lobby-in", Some("k"))).collect();
    assert_eq!(r(&lines), vec![a(T + 4_000, "k", 160), a(T + 65_000, "k", 160)]);
    // Five same-ts denials: the count at each includes only those before it in the stream.
    let lines: Vec<String> = (0..5).map(|_| denied(T, "r-lobby-in", Some("k"))).collect();
    assert_eq!(r(&lines), vec![a(T, "k", 160)]);
}

#[test]
fn access_denied_burst_door_counts_ten_at_one_door() {
    let r = |lines: &[String]| run("access_denied_burst_door", lines);
    let denials = |n: i64| -> Vec<String> {
        (0..n)
            .map(|i| {
                // Cards are optional and need not match; both readers of d-lab count.
                let reader = if i % 2 == 0 { "r-lab-in" } else { "r-lab-out" };
                let card = if i % 3 == 0 { None } else { Some("k") };
                denied(T + i * 6_000, reader, card)
            })
            .collect()
    };
    assert_eq!(r(&denials(9)), vec![]);
    assert_eq!(r(&denials(10)), vec![a(T + 54_000, "d-lab", 170)]);
    // 11 denials 6 s apart: [t−60 s, t] holds 11 at the 11th, but the key is quiet.
    assert_eq!(r(&denials(11)), vec![a(T + 54_000, "d-lab", 170)]);
}

// ---- impossible travel -----------------------------------------------------------------------

fn at_door(ts: i64, ty: &str, door: &str, card: &str) -> String {
    ev(ts, ty, &[("door", door), ("card", card)])
}

#[test]
fn impossible_travel_faster_than_min_s() {
    let r = |lines: &[String]| run_on(TRAVEL_SITE, "impossible_travel", lines);
    let g = "access.granted";
    assert_eq!(
        r(&[at_door(T, g, "d-hq", "k"), at_door(T + 3_599_999, g, "d-plant", "k")]),
        vec![a(T + 3_599_999, "k", 200)]
    );
    assert_eq!(r(&[at_door(T, g, "d-hq", "k"), at_door(T + 3_600_000, g, "d-plant", "k")]), vec![]);
    // Symmetric; a denial is a presentation too; priority from the trigger's door (d-hq: 3).
    assert_eq!(
        r(&[at_door(T, "access.denied", "d-plant", "k"), at_door(T + 1, g, "d-hq", "k"),]),
        vec![a(T + 1, "k", 190)]
    );
    // Only consecutive presentations: hq, hq (1 h later), plant (1 ms after that).
    assert_eq!(
        r(&[
            at_door(T, g, "d-hq", "k"),
            at_door(T + 3_600_000, g, "d-hq2", "k"),
            at_door(T + 3_600_001, g, "d-plant", "k"),
        ]),
        vec![a(T + 3_600_001, "k", 200)]
    );
    assert_eq!(
        r(&[at_door(T, g, "d-plant", "k"), at_door(T + 1, g, "d-hq", "j"), at_door(T + 3_600_000, g, "d-hq", "k"),]),
        vec![]
    );
    // No travel entry between hq and lab2; duress is not a presentation.
    assert_eq!(r(&[at_door(T, g, "d-hq", "k"), at_door(T + 1, g, "d-lab2", "k")]), vec![]);
    assert_eq!(r(&[at_door(T, "duress", "d-hq", "k"), at_door(T + 1, g, "d-plant", "k"),]), vec![]);
}

// ---- duress ----------------------------------------------------------------------------------

#[test]
fn duress_every_event_keyed_by_door() {
    let lines = [
        ev(T, "duress", &[("reader", "r-lab-in")]),
        ev(T, "duress", &[("door", "d-lab"), ("card", "k")]),
        ev(T + 1, "duress", &[("door", "d-store")]),
        ev(T + 2, "duress", &[("reader", "r-lab-in"), ("door", "d-lobby")]),
    ];
    assert_eq!(run("duress", &lines), vec![a(T, "d-lab", 255), a(T + 1, "d-store", 230)]);
}

// ---- intrusion confirmed ---------------------------------------------------------------------

#[test]
fn intrusion_confirmed_window_edges() {
    let gb = ev(T, "glass_break", &[("sensor", "gb-lab")]);
    for (dt, cam, confirmed) in [
        (-30_000, "cam-7", true),
        (-30_001, "cam-7", false),
        (60_000, "cam-x", true),
        (60_001, "cam-7", false),
        (0, "cam-1", false),
    ] {
        let lines = [gb.clone(), ev(T + dt, "motion", &[("camera", cam)])];
        let want = if confirmed { vec![a(T, "lab", 255)] } else { vec![] };
        assert_eq!(run("intrusion_confirmed", &lines), want, "{cam} at {dt}");
    }
    // Only motion confirms; an intrusion sensor works like glass break.
    assert_eq!(run("intrusion_confirmed", &[gb, crossed(T, "cam-7", "in", 1)]), vec![]);
    assert_eq!(
        run(
            "intrusion_confirmed",
            &[ev(T, "intrusion", &[("sensor", "pir-store")]), ev(T, "motion", &[("camera", "cam-7")]),]
        ),
        vec![]
    );
}

// ---- device offline --------------------------------------------------------------------------

fn hb(ts: i64, device: &str) -> String {
    ev(ts, "heartbeat", &[("device", device)])
}

#[test]
fn device_offline_gap_of_exactly_three_intervals_is_fine() {
    let r = |lines: &[String]| run("device_offline", lines);
    // ctl-1: heartbeat_s = 30, so 90 s.
    assert_eq!(r(&[hb(T, "ctl-1"), hb(T + 90_000, "ctl-1")]), vec![]);
    assert_eq!(r(&[hb(T, "ctl-1"), hb(T + 90_001, "ctl-1")]), vec![a(T, "ctl-1", 130)]);
    // End of input: final once max ts reaches last + 3 hb.
    assert_eq!(r(&[hb(T, "ctl-1"), end_at(T + 89_999)]), vec![]);
    assert_eq!(r(&[hb(T, "ctl-1"), end_at(T + 90_000)]), vec![a(T, "ctl-1", 130)]);
    // cam-1 inherits the site's 10 s; any event naming it resets the silence.
    assert_eq!(
        r(&[
            hb(T, "cam-1"),
            ev(T + 30_000, "motion", &[("camera", "cam-1")]),
            ev(T + 60_001, "motion", &[("camera", "cam-1")]),
        ]),
        vec![a(T + 30_000, "cam-1", 130)]
    );
}

#[test]
fn device_offline_only_for_devices_that_sent_a_heartbeat() {
    let r = |lines: &[String]| run("device_offline", lines);
    assert_eq!(
        r(&[ev(T, "motion", &[("camera", "cam-7")]), ev(T + 100_000, "motion", &[("camera", "cam-7")]),]),
        vec![]
    );
    // Silence before the first heartbeat does not count.
    assert_eq!(
        r(&[ev(T, "motion", &[("camera", "cam-7")]), hb(T + 100_000, "cam-7"), hb(T + 100_001, "cam-7"),]),
        vec![]
    );
    // A reader-only access event names the reader, not its door.
    assert_eq!(
        r(&[hb(T, "d-lab"), grant(T + 20_000, "r-lab-in", "k"), hb(T + 40_000, "d-lab"),]),
        vec![a(T, "d-lab", 130)]
    );
    assert_eq!(
        r(&[hb(T, "d-lab"), ev(T + 20_000, "door.opened", &[("door", "d-lab")]), hb(T + 40_000, "d-lab"),]),
        vec![]
    );
    // Once silent, one alarm until it is seen again.
    assert_eq!(r(&[hb(T, "ctl-1"), end_at(T + 1_000_000)]), vec![a(T, "ctl-1", 130)]);
}

// ---- after hours -----------------------------------------------------------------------------

/// 1970-01-05 00:00 UTC, a Monday.
const MONDAY: i64 = 4 * 86_400_000;
const HOUR: i64 = 3_600_000;

#[test]
fn after_hours_access_uses_local_time_and_exclusive_end() {
    let r = |lines: &[String]| run("after_hours_access", lines);
    // The site is UTC+1: local 07:00 is 06:00 UTC.
    for (ts, alarm) in [
        (MONDAY + 6 * HOUR, false),
        (MONDAY + 6 * HOUR - 1, true),
        (MONDAY + 18 * HOUR - 1, false),
        (MONDAY + 18 * HOUR, true),
        (MONDAY + 5 * 24 * HOUR + 10 * HOUR, true),
        (MONDAY + 4 * 24 * HOUR + 10 * HOUR, false),
        // Sunday 23:30 UTC is Monday 00:30 local.
        (MONDAY - HOUR / 2, true),
    ] {
        let want = if alarm { vec![a(ts, "k", 100)] } else { vec![] };
        assert_eq!(r(&[grant(ts, "r-lab-in", "k")]), want, "grant at {ts}");
    }
    // Leaving the lab goes into the lobby, which has no schedule; a denial is not an access.
    assert_eq!(r(&[grant(MONDAY, "r-lab-out", "k")]), vec![]);
    assert_eq!(r(&[denied(MONDAY, "r-lab-in", Some("k"))]), vec![]);
}

// ---- the whole pack --------------------------------------------------------------------------

#[test]
fn all_rules_when_none_named_and_output_sorted() {
    let lines = [
        ev(T, "duress", &[("door", "d-lobby")]),
        ev(T, "door.forced", &[("door", "d-store")]),
        grant(T + 1, "r-lobby-in", "k"),
        grant(T + 2, "r-lobby-in", "k"),
        "not json".to_string(),
        ev(T + 3, "motion", &[("camera", "nope")]),
        String::new(),
    ]
    .join("\n");
    let got = evaluate(SITE, &lines, &[]).expect("valid site");
    let ids: Vec<(&str, i64, &str)> = got.iter().map(|a| (a.rule.as_str(), a.ts, a.key.as_str())).collect();
    assert_eq!(
        ids,
        vec![("anti_passback", T + 2, "k"), ("duress", T, "d-lobby"), ("forced_entry_unconfirmed", T, "d-store"),]
    );
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(got, sorted);
}

#[test]
fn same_identity_keeps_the_first_trigger_in_the_stream() {
    // Card k stands in the yard. Two grants at the same ts both violate; r-lab-in (d-lab,
    // criticality 5) sorts before r-lobby-in (criticality 3) and gives the priority.
    let lines = [grant(T, "r-yard-in", "k"), grant(T + 1, "r-lobby-in", "k"), grant(T + 1, "r-lab-in", "k")];
    assert_eq!(run("anti_passback", &lines), vec![a(T + 1, "k", 170)]);
}

#[test]
fn rule_tables_agree() {
    let names: Vec<&str> = rules::RULES.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, DEFAULT_RULES.to_vec());
}

#[test]
#[should_panic(expected = "unknown rule")]
fn unknown_rule_name_panics() {
    let _ = evaluate(SITE, "", &["tailgate"]);
}

#[test]
fn invalid_site_is_an_error() {
    let e = evaluate("[site]\nid = \"hq\"\n[[reader]]\nid = \"r\"\ndoor = \"x\"\n", "", &[]).expect_err("unknown door");
    assert_eq!(e.to_string(), "invalid site: reader r: unknown door x");
}

#[test]
fn extreme_values_neither_overflow_nor_hang() {
    let lines = [
        grant(T, "r-lab-in", "k"),
        crossed(T, "cam-7", "in", u64::MAX),
        ev(i64::MAX, "door.opened", &[("door", "d-lab")]),
        ev(i64::MAX, "door.forced", &[("door", "d-store")]),
        hb(i64::MAX, "ctl-1"),
    ];
    let got = evaluate(SITE, &lines.join("\n"), &[]).expect("valid site");
    let rules: Vec<&str> = got.iter().map(|a| a.rule.as_str()).collect();
    // The grant at T (a Thursday, 01:16 local) is also after hours in the lab.
    assert_eq!(rules, vec!["after_hours_access", "forced_entry_unconfirmed", "tailgating"]);
}
