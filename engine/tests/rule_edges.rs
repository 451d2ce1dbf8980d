//! Scripted edge cases of nine default-pack rules on the [`CAMPUS`] topology, with exact expected
//! alarm sets. Priorities are computed by hand from DESIGN §5.2:
//! `clamp(base + 10 × (criticality − 3), 1, 255)`.
//!
//! Criticalities on CAMPUS: d-main 3 (lobby), d-lab 4 (lab), d-vault 5, d-dock 1, p-gate 3 (shop);
//! areas lab 4, vault 5, shop 3. Cameras: cam-1 watches d-main and d-lab, cam-2 watches d-lab and
//! d-vault, cam-p watches p-gate. Anti-passback areas: lab (doors d-lab, d-vault) and shop
//! (p-gate); d-main and d-dock touch none.
//!
//! `T` is CAMPUS_T0 + 1 min: Monday 17:31 UTC, 18:31 at hq (lab open until 19:00 local = 18:00
//! UTC) and 17:31 at the plant (shop open until 18:00 UTC), so grants shortly after `T` are within
//! hours unless a test says otherwise. Every grant uses a fresh card unless the test is about a
//! card's history, so that anti-passback stays out of the way.

mod common;

use std::collections::BTreeSet;

use common::*;
use vigil_rules::Alarm;

const T: u64 = CAMPUS_T0 + 60_000;

fn run_campus(lines: &[String]) -> (Vec<Alarm>, vigil_engine::Stats) {
    let (got, stats) = run(CAMPUS, lines, Run::default());
    assert_eq!(stats.rejected_total(), 0, "{:?}", stats.rejection_samples);
    (got, stats)
}

fn alarms(lines: &[String]) -> BTreeSet<Ident> {
    let (got, _) = run_campus(lines);
    unique_idents(&got)
}

fn grant(ts: u64, reader: &str, card: &str) -> String {
    format!(r#"{{"ts":{ts},"type":"access.granted","reader":"{reader}","card":"{card}"}}"#)
}

fn deny(ts: u64, reader: &str, card: &str) -> String {
    format!(r#"{{"ts":{ts},"type":"access.denied","reader":"{reader}","card":"{card}","reason":"InvalidCredential"}}"#)
}

fn cross(ts: u64, camera: &str, direction: &str, count: u32) -> String {
    format!(r#"{{"ts":{ts},"type":"line.crossed","camera":"{camera}","direction":"{direction}","count":{count}}}"#)
}

/// A trailing event that moves the end-of-input watermark to `ts + 1`: a `door.closed` at d-dock
/// with no opening (no rule waits on it, and d-dock never sends a heartbeat in these tests).
fn end(ts: u64) -> String {
    line(ts, "door.closed", "door", "d-dock")
}

/// Lines sorted by `ts` (stable: equal timestamps keep their order).
fn sorted(mut lines: Vec<String>) -> Vec<String> {
    let ts = |l: &String| -> u64 {
        let rest = l.strip_prefix(r#"{"ts":"#).expect("test lines start with ts");
        rest[..rest.find(',').expect("a comma after ts")].parse().expect("integer ts")
    };
    lines.sort_by_key(ts);
    lines
}

// ---------------------------------------------------------------------------------------------
// tailgating (170; p-gate 3 -> 170, d-main 3 -> 170, d-lab 4 -> 180)

fn only_alarm<'a>(got: &'a [Alarm], rule: &str) -> &'a Alarm {
    let of_rule: Vec<&Alarm> = got.iter().filter(|x| x.rule == rule).collect();
    assert_eq!(of_rule.len(), 1, "{got:?}");
    of_rule[0]
}

#[test]
fn tailgating_token_is_valid_for_seven_seconds_inclusive() {
    for (offset, alarm) in [(0u64, false), (7_000, false), (7_001, true)] {
        let c = T + offset;
        let lines = vec![grant(T, "r-gate-in", "c-1"), cross(c, "cam-p", "in", 1), end(c + 10_000)];
        let (got, _) = run_campus(&lines);
        let expected = if alarm { set(&[a("tailgating", c, "p-gate", 170)]) } else { set(&[]) };
        assert_eq!(idents(&got), expected, "crossing at g{offset:+} ms");
        if alarm {
            assert_eq!(only_alarm(&got, "tailgating").excess, Some(1), "crossing at g{offset:+} ms");
        }
    }
}

#[test]
fn tailgating_count_beyond_the_tokens_is_the_excess() {
    // One token, two people: excess 1.
    let lines = vec![grant(T, "r-gate-in", "c-1"), cross(T + 1_000, "cam-p", "in", 2), end(T + 20_000)];
    let (got, _) = run_campus(&lines);
    assert_eq!(idents(&got), set(&[a("tailgating", T + 1_000, "p-gate", 170)]));
    assert_eq!(only_alarm(&got, "tailgating").excess, Some(1));
    // One token, three people: excess 2.
    let lines = vec![grant(T, "r-gate-in", "c-1"), cross(T + 1_000, "cam-p", "in", 3), end(T + 20_000)];
    let (got, _) = run_campus(&lines);
    assert_eq!(idents(&got), set(&[a("tailgating", T + 1_000, "p-gate", 170)]));
    assert_eq!(only_alarm(&got, "tailgating").excess, Some(2));
}

#[test]
fn tailgating_an_out_grant_gives_no_token() {
    let lines = vec![grant(T, "r-gate-out", "c-1"), cross(T + 1_000, "cam-p", "in", 1), end(T + 20_000)];
    let (got, _) = run_campus(&lines);
    assert_eq!(idents(&got), set(&[a("tailgating", T + 1_000, "p-gate", 170)]));
    assert_eq!(only_alarm(&got, "tailgating").excess, Some(1));
}

#[test]
fn tailgating_an_out_crossing_consumes_nothing_and_never_alarms() {
    // The out crossing leaves the token for the in crossing.
    let lines = vec![
        grant(T, "r-gate-in", "c-1"),
        cross(T + 1_000, "cam-p", "out", 1),
        cross(T + 2_000, "cam-p", "in", 1),
        end(T + 20_000),
    ];
    assert_eq!(alarms(&lines), set(&[]));
    // Out crossings without any token are no excess either.
    let lines = vec![cross(T, "cam-p", "out", 2), end(T + 20_000)];
    assert_eq!(alarms(&lines), set(&[]));
}

#[test]
fn tailgating_grant_and_crossing_at_the_same_ts_grant_ranks_first() {
    // Whatever the arrival order: access.granted ranks before line.crossed at equal ts.
    for lines in [
        vec![cross(T, "cam-p", "in", 1), grant(T, "r-gate-in", "c-1"), end(T + 20_000)],
        vec![grant(T, "r-gate-in", "c-1"), cross(T, "cam-p", "in", 1), end(T + 20_000)],
    ] {
        assert_eq!(alarms(&lines), set(&[]), "{lines:?}");
    }
}

#[test]
fn tailgating_a_second_person_with_their_own_badge_is_no_excess_and_tokens_are_used_once() {
    let lines = vec![
        grant(T, "r-gate-in", "c-1"),
        grant(T + 500, "r-gate-in", "c-2"),
        cross(T + 1_500, "cam-p", "in", 2),
        end(T + 20_000),
    ];
    assert_eq!(alarms(&lines), set(&[]));
    // Both tokens are consumed: a third person right after is an excess.
    let lines = vec![
        grant(T, "r-gate-in", "c-1"),
        grant(T + 500, "r-gate-in", "c-2"),
        cross(T + 1_500, "cam-p", "in", 2),
        cross(T + 2_000, "cam-p", "in", 1),
        end(T + 20_000),
    ];
    let (got, _) = run_campus(&lines);
    assert_eq!(idents(&got), set(&[a("tailgating", T + 2_000, "p-gate", 170)]));
    assert_eq!(only_alarm(&got, "tailgating").excess, Some(1));
}

#[test]
fn tailgating_consumes_the_oldest_valid_token_first() {
    // Tokens [T, T+7 s] and [T+5 s, T+12 s]. The crossing at T+6 s takes the older one, so the
    // younger one is still there for the crossing at T+11 s (when the older one has expired).
    let lines = vec![
        grant(T, "r-gate-in", "c-1"),
        grant(T + 5_000, "r-gate-in", "c-2"),
        cross(T + 6_000, "cam-p", "in", 1),
        cross(T + 11_000, "cam-p", "in", 1),
        end(T + 30_000),
    ];
    assert_eq!(alarms(&lines), set(&[]));
}

#[test]
fn tailgating_a_camera_watching_two_doors_alarms_at_each_door_lacking_tokens() {
    // cam-1 watches d-main (criticality 3 -> 170) and d-lab (4 -> 180).
    let c = T + 1_000;
    let cases = [
        (vec![], set(&[a("tailgating", c, "d-main", 170), a("tailgating", c, "d-lab", 180)])),
        (vec![grant(T, "r-main-in", "c-1")], set(&[a("tailgating", c, "d-lab", 180)])),
        (vec![grant(T, "r-lab-in", "c-2")], set(&[a("tailgating", c, "d-main", 170)])),
        (vec![grant(T, "r-main-in", "c-1"), grant(T, "r-lab-in", "c-2")], set(&[])),
    ];
    for (grants, expected) in cases {
        let mut lines = grants.clone();
        lines.push(cross(c, "cam-1", "in", 1));
        lines.push(end(T + 20_000));
        let (got, _) = run_campus(&lines);
        assert_eq!(idents(&got), expected, "grants {grants:?}");
        for x in got.iter().filter(|x| x.rule == "tailgating") {
            assert_eq!(x.excess, Some(1), "{x:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// anti_passback (150; d-lab 4 -> 160, d-vault 5 -> 170, p-gate 3 -> 150)

#[test]
fn anti_passback_entering_twice_without_leaving_is_a_violation() {
    // First grant: area unknown, no violation; the card stands in lab. Second: X = lobby != lab.
    let lines = vec![grant(T, "r-lab-in", "c-1"), grant(T + 10_000, "r-lab-in", "c-1"), end(T + 20_000)];
    assert_eq!(alarms(&lines), set(&[a("anti_passback", T + 10_000, "c-1", 160)]));
}

#[test]
fn anti_passback_leaving_then_re_entering_is_fine() {
    let lines = vec![
        grant(T, "r-lab-in", "c-1"),
        grant(T + 10_000, "r-lab-out", "c-1"),
        grant(T + 20_000, "r-lab-in", "c-1"),
        grant(T + 30_000, "r-lab-out", "c-1"),
        end(T + 40_000),
    ];
    assert_eq!(alarms(&lines), set(&[]));
}

#[test]
fn anti_passback_priority_is_the_violating_doors() {
    // In the lab, into the vault (X = lab: fine), into the vault again (X = lab != vault):
    // d-vault criticality 5 -> 170.
    let lines = vec![
        grant(T, "r-lab-in", "c-1"),
        grant(T + 10_000, "r-vault-in", "c-1"),
        grant(T + 20_000, "r-vault-in", "c-1"),
        end(T + 30_000),
    ];
    assert_eq!(alarms(&lines), set(&[a("anti_passback", T + 20_000, "c-1", 170)]));
}

#[test]
fn anti_passback_a_card_re_entering_after_24_h_idle_is_unknown_again() {
    // Tuesday 18:31 local: still within the lab's hours, so no after-hours alarm either.
    let at = |gap: u64| vec![grant(T, "r-lab-in", "c-1"), grant(T + gap, "r-lab-in", "c-1")];
    assert_eq!(alarms(&at(86_400_000)), set(&[]), "exactly 24 h after its last grant");
    assert_eq!(alarms(&at(86_399_999)), set(&[a("anti_passback", T + 86_399_999, "c-1", 160)]), "1 ms short of 24 h");
}

#[test]
fn anti_passback_doors_outside_anti_passback_areas_never_alarm_but_move_the_card() {
    // d-main (outside -> lobby) touches no anti-passback area: repeated entries never alarm.
    let lines = vec![
        grant(T, "r-main-in", "c-1"),
        grant(T + 10_000, "r-main-in", "c-1"),
        grant(T + 20_000, "r-main-out", "c-1"),
        grant(T + 30_000, "r-main-out", "c-1"),
        end(T + 40_000),
    ];
    assert_eq!(alarms(&lines), set(&[]));
    // In the lab, then a grant at d-main (lab != outside, but d-main does not enforce) moves the
    // card to the lobby: entering the lab again is fine.
    let lines = vec![
        grant(T, "r-lab-in", "c-1"),
        grant(T + 10_000, "r-main-in", "c-1"),
        grant(T + 20_000, "r-lab-in", "c-1"),
        end(T + 30_000),
    ];
    assert_eq!(alarms(&lines), set(&[]));
    // ... and a grant out of d-main moves it outside: entering the lab from the lobby is then a
    // violation (current area outside != lobby).
    let lines = vec![
        grant(T, "r-lab-in", "c-1"),
        grant(T + 10_000, "r-main-out", "c-1"),
        grant(T + 20_000, "r-lab-in", "c-1"),
        end(T + 30_000),
    ];
    assert_eq!(alarms(&lines), set(&[a("anti_passback", T + 20_000, "c-1", 160)]));
}

// ---------------------------------------------------------------------------------------------
// access_denied_burst (160; d-main 3 -> 160, d-lab 4 -> 170)

fn denials(card: &str, times: &[u64]) -> Vec<String> {
    times.iter().map(|&t| deny(t, "r-main-in", card)).collect()
}

#[test]
fn access_denied_burst_four_is_not_enough_five_is() {
    let lines = [denials("c-1", &[T, T + 10_000, T + 20_000, T + 30_000]), vec![end(T + 200_000)]].concat();
    assert_eq!(alarms(&lines), set(&[]), "four denials");
    let lines = [denials("c-1", &[T, T + 10_000, T + 20_000, T + 30_000, T + 40_000]), vec![end(T + 200_000)]].concat();
    assert_eq!(alarms(&lines), set(&[a("access_denied_burst", T + 40_000, "c-1", 160)]), "five denials");
}

#[test]
fn access_denied_burst_window_is_sixty_seconds_inclusive() {
    let lines = [denials("c-1", &[T, T + 15_000, T + 30_000, T + 45_000, T + 60_001]), vec![end(T + 200_000)]].concat();
    assert_eq!(alarms(&lines), set(&[]), "spread over 60 001 ms");
    let lines = [denials("c-1", &[T, T + 15_000, T + 30_000, T + 45_000, T + 60_000]), vec![end(T + 200_000)]].concat();
    assert_eq!(alarms(&lines), set(&[a("access_denied_burst", T + 60_000, "c-1", 160)]), "spread over 60 000 ms");
}

#[test]
fn access_denied_burst_is_quiet_for_sixty_seconds_after_an_alarm() {
    let times = [T, T + 10_000, T + 20_000, T + 30_000, T + 40_000, T + 50_000, T + 90_000];
    let lines = [denials("c-1", &times), vec![end(T + 300_000)]].concat();
    assert_eq!(alarms(&lines), set(&[a("access_denied_burst", T + 40_000, "c-1", 160)]));
}

#[test]
fn access_denied_burst_counts_per_card_across_doors_and_takes_the_trigger_doors_priority() {
    // Same card at two doors: the fifth denial is at d-lab (criticality 4) -> 170.
    let mut lines = denials("c-1", &[T, T + 1_000, T + 2_000, T + 3_000]);
    lines.push(deny(T + 4_000, "r-lab-in", "c-1"));
    lines.push(end(T + 200_000));
    assert_eq!(alarms(&lines), set(&[a("access_denied_burst", T + 4_000, "c-1", 170)]));
    // Five different cards: no card burst (and far from the door threshold).
    let lines: Vec<String> =
        (0..5).map(|i| deny(T + i * 1_000, "r-main-in", &format!("c-{i}"))).chain([end(T + 200_000)]).collect();
    assert_eq!(alarms(&lines), set(&[]));
}

// ---------------------------------------------------------------------------------------------
// access_denied_burst_door (150; d-lab 4 -> 160)

/// `n` denials at d-lab from different cards, alternating its two readers, 6 s apart.
fn door_denials(n: u64) -> Vec<String> {
    (0..n).map(|i| deny(T + i * 6_000, if i % 2 == 0 { "r-lab-in" } else { "r-lab-out" }, &format!("c-{i}"))).collect()
}

#[test]
fn access_denied_burst_door_nine_is_not_enough_ten_is() {
    let lines = [door_denials(9), vec![end(T + 300_000)]].concat();
    assert_eq!(alarms(&lines), set(&[]), "nine denials");
    let lines = [door_denials(10), vec![end(T + 300_000)]].concat();
    // The tenth is at T + 54 s.
    assert_eq!(alarms(&lines), set(&[a("access_denied_burst_door", T + 54_000, "d-lab", 160)]), "ten denials");
}

#[test]
fn access_denied_burst_door_window_and_doors_are_separate() {
    // Ten denials, the tenth 60 001 ms after the first: no alarm.
    let mut lines = door_denials(9);
    lines.push(deny(T + 60_001, "r-lab-in", "c-9"));
    lines.push(end(T + 300_000));
    assert_eq!(alarms(&lines), set(&[]), "spread over 60 001 ms");
    // ... 60 000 ms after the first: alarm.
    let mut lines = door_denials(9);
    lines.push(deny(T + 60_000, "r-lab-in", "c-9"));
    lines.push(end(T + 300_000));
    assert_eq!(alarms(&lines), set(&[a("access_denied_burst_door", T + 60_000, "d-lab", 160)]), "over 60 000 ms");
    // Ten denials split over two doors: no alarm.
    let lines: Vec<String> = (0..10)
        .map(|i| deny(T + i * 1_000, if i % 2 == 0 { "r-lab-in" } else { "r-main-in" }, &format!("c-{i}")))
        .chain([end(T + 300_000)])
        .collect();
    assert_eq!(alarms(&lines), set(&[]), "two doors");
}

// ---------------------------------------------------------------------------------------------
// impossible_travel (190; p-gate 3 -> 190, d-main 3 -> 190, d-lab 4 -> 200); travel 600 s

#[test]
fn impossible_travel_hq_then_plant_within_the_travel_time() {
    // The grant at p-gate is also an anti-passback violation (the card stands in the lobby, not
    // in the yard): anti_passback 150 + 10 × (3 − 3) = 150.
    let lines = vec![grant(T, "r-main-in", "c-1"), grant(T + 599_999, "r-gate-in", "c-1"), end(T + 700_000)];
    assert_eq!(
        alarms(&lines),
        set(&[a("impossible_travel", T + 599_999, "c-1", 190), a("anti_passback", T + 599_999, "c-1", 150)])
    );
    // A grant at the other site just after the travel time: only the anti-passback violation.
    let lines = vec![grant(T, "r-main-in", "c-1"), grant(T + 600_000, "r-gate-in", "c-1"), end(T + 700_000)];
    assert_eq!(alarms(&lines), set(&[a("anti_passback", T + 600_000, "c-1", 150)]));
}

#[test]
fn impossible_travel_priority_is_the_second_presentations_door() {
    // Plant then d-main (3, no anti-passback there): 190 alone.
    let lines = vec![grant(T, "r-gate-in", "c-1"), grant(T + 599_999, "r-main-in", "c-1"), end(T + 700_000)];
    assert_eq!(alarms(&lines), set(&[a("impossible_travel", T + 599_999, "c-1", 190)]));
    // Plant then d-lab (4): 200, and anti-passback (card in shop != lobby) 160.
    let lines = vec![grant(T, "r-gate-in", "c-1"), grant(T + 599_999, "r-lab-in", "c-1"), end(T + 700_000)];
    assert_eq!(
        alarms(&lines),
        set(&[a("impossible_travel", T + 599_999, "c-1", 200), a("anti_passback", T + 599_999, "c-1", 160)])
    );
}

#[test]
fn impossible_travel_a_denial_counts_as_a_presentation() {
    // Denial first (does not move the card: no anti-passback), grant second.
    let lines = vec![deny(T, "r-main-in", "c-1"), grant(T + 300_000, "r-gate-in", "c-1"), end(T + 700_000)];
    assert_eq!(alarms(&lines), set(&[a("impossible_travel", T + 300_000, "c-1", 190)]));
    // Grant first, denial second (trigger at d-lab: 200).
    let lines = vec![grant(T, "r-gate-in", "c-2"), deny(T + 300_000, "r-lab-in", "c-2"), end(T + 700_000)];
    assert_eq!(alarms(&lines), set(&[a("impossible_travel", T + 300_000, "c-2", 200)]));
}

#[test]
fn impossible_travel_only_consecutive_presentations_count() {
    // hq, plant after exactly the travel time (fine), hq 1 ms later (plant -> hq in 1 ms).
    let lines = vec![
        deny(T, "r-main-in", "c-1"),
        deny(T + 600_000, "r-gate-in", "c-1"),
        deny(T + 600_001, "r-main-in", "c-1"),
        end(T + 700_000),
    ];
    assert_eq!(alarms(&lines), set(&[a("impossible_travel", T + 600_001, "c-1", 190)]));
    // hq, hq again later, plant: the pair is (second hq, plant), 200 s apart.
    let lines = vec![
        deny(T, "r-main-in", "c-1"),
        deny(T + 500_000, "r-main-in", "c-1"),
        deny(T + 700_000, "r-gate-in", "c-1"),
        end(T + 800_000),
    ];
    assert_eq!(alarms(&lines), set(&[a("impossible_travel", T + 700_000, "c-1", 190)]));
}

#[test]
fn impossible_travel_same_site_presentations_never_alarm() {
    let lines = vec![
        grant(T, "r-main-in", "c-1"),
        grant(T + 1, "r-lab-in", "c-1"),
        deny(T + 2, "r-vault-in", "c-1"),
        grant(T + 3, "r-lab-out", "c-1"),
        grant(T + 10, "r-gate-in", "c-2"),
        deny(T + 11, "r-gate-in", "c-2"),
        grant(T + 12, "r-gate-out", "c-2"),
        end(T + 700_000),
    ];
    assert_eq!(alarms(&lines), set(&[]));
}

// ---------------------------------------------------------------------------------------------
// duress (250)

#[test]
fn duress_every_event_alarms_keyed_by_door_with_clamped_priority() {
    let lines = vec![
        format!(r#"{{"ts":{T},"type":"duress","reader":"r-lab-in","card":"c-1"}}"#), // d-lab 4: 260 -> 255
        line(T + 1_000, "duress", "door", "d-main"),                                 // 3: 250
        line(T + 2_000, "duress", "door", "d-dock"),                                 // 1: 230
        line(T + 3_000, "duress", "door", "d-vault"),                                // 5: 270 -> 255
        line(T + 4_000, "duress", "reader", "r-gate-in"),                            // p-gate 3: 250
        line(T + 5_000, "duress", "door", "d-main"),                                 // again: another alarm
        end(T + 10_000),
    ];
    assert_eq!(
        alarms(&lines),
        set(&[
            a("duress", T, "d-lab", 255),
            a("duress", T + 1_000, "d-main", 250),
            a("duress", T + 2_000, "d-dock", 230),
            a("duress", T + 3_000, "d-vault", 255),
            a("duress", T + 4_000, "p-gate", 250),
            a("duress", T + 5_000, "d-main", 250),
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// intrusion_confirmed (240; lab 4 -> 250, vault 5 -> 255, shop 3 -> 240)

#[test]
fn intrusion_confirmed_video_window_is_minus_30_plus_60_seconds_inclusive() {
    let t = T + 60_000;
    for (offset, confirmed) in [(-30_000i64, true), (-30_001, false), (60_000, true), (60_001, false), (0, true)] {
        let v = (t as i64 + offset) as u64;
        let lines = sorted(vec![
            line(t, "glass_break", "sensor", "gb-lab"),
            line(v, "motion", "camera", "cam-2"),
            end(t + 200_000),
        ]);
        let expected = if confirmed { set(&[a("intrusion_confirmed", t, "lab", 250)]) } else { set(&[]) };
        assert_eq!(alarms(&lines), expected, "motion at t{offset:+} ms");
    }
}

#[test]
fn intrusion_confirmed_needs_motion_in_the_same_area() {
    let t = T + 60_000;
    // cam-1 is in the lobby, cam-p in the plant's shop.
    let lines = vec![
        line(t, "glass_break", "sensor", "gb-lab"),
        line(t + 1_000, "motion", "camera", "cam-1"),
        line(t + 2_000, "motion", "camera", "cam-p"),
        end(t + 200_000),
    ];
    assert_eq!(alarms(&lines), set(&[]));
}

#[test]
fn intrusion_confirmed_a_line_crossing_does_not_confirm() {
    let t = T + 60_000;
    // An `out` crossing on cam-2 (lab): not a motion, and consumes/creates no tailgating excess.
    let lines = vec![line(t, "glass_break", "sensor", "gb-lab"), cross(t + 1_000, "cam-2", "out", 1), end(t + 200_000)];
    assert_eq!(alarms(&lines), set(&[]));
}

#[test]
fn intrusion_confirmed_one_alarm_per_sensor_event_with_the_areas_priority() {
    let t = T + 60_000;
    let lines = vec![
        line(t, "glass_break", "sensor", "gb-lab"),
        line(t + 1_000, "motion", "camera", "cam-2"),
        line(t + 2_000, "motion", "camera", "cam-2"),
        line(t + 3_000, "glass_break", "sensor", "gb-lab"),
        line(t + 10_000, "intrusion", "sensor", "pir-vault"), // vault 5: 260 -> 255
        line(t + 11_000, "motion", "camera", "cam-3"),
        line(t + 20_000, "intrusion", "sensor", "pir-shop"), // shop 3: 240
        line(t + 21_000, "motion", "camera", "cam-p"),
        end(t + 200_000),
    ];
    assert_eq!(
        alarms(&lines),
        set(&[
            a("intrusion_confirmed", t, "lab", 250),
            a("intrusion_confirmed", t + 3_000, "lab", 250),
            a("intrusion_confirmed", t + 10_000, "vault", 255),
            a("intrusion_confirmed", t + 20_000, "shop", 240),
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// device_offline (130; ctl-1 heartbeat_s 30 -> 90 s; cam-3 15 -> 45 s; r-lab-in hq's 20 -> 60 s)

fn hb(ts: u64, device: &str) -> String {
    line(ts, "heartbeat", "device", device)
}

#[test]
fn device_offline_silence_of_exactly_three_intervals_is_not_offline() {
    // ctl-1 heard at L and again at exactly L + 90 s: silent for 90 s, not more. The second
    // heartbeat's own decision (L + 180 s) is past the end of input: pending, no alarm.
    let l = T;
    let lines = vec![hb(l, "ctl-1"), hb(l + 90_000, "ctl-1"), end(l + 179_999)];
    let (got, stats) = run_campus(&lines);
    assert_eq!(idents(&got), set(&[]));
    assert_eq!(stats.pending, 1, "the second heartbeat's decision is pending");
    // Heard again 1 ms later: silent for more than 90 s -> offline at L.
    let lines = vec![hb(l, "ctl-1"), hb(l + 90_001, "ctl-1"), end(l + 179_999)];
    assert_eq!(alarms(&lines), set(&[a("device_offline", l, "ctl-1", 130)]));
}

#[test]
fn device_offline_end_of_input_decides_only_when_past_the_decision_point() {
    let l = T;
    // Input ends at L + 89 999: W = L + 90 000 does not pass L + 90 s: pending.
    let lines = vec![hb(l, "ctl-1"), end(l + 89_999)];
    let (got, stats) = run_campus(&lines);
    assert_eq!(idents(&got), set(&[]));
    assert_eq!(stats.pending, 1);
    // Input ends at L + 90 001: W = L + 90 002 passes L + 90 s, and nothing named ctl-1 in
    // (L, L + 90 001]: offline, trigger its last event at L.
    let lines = vec![hb(l, "ctl-1"), end(l + 90_001)];
    let (got, stats) = run_campus(&lines);
    assert_eq!(idents(&got), set(&[a("device_offline", l, "ctl-1", 130)]));
    assert_eq!(stats.pending, 0);
}

#[test]
fn device_offline_end_of_input_at_exactly_three_intervals() {
    // Another device's event at exactly L + 90 s ends the input: W = L + 90 001 > L + 90 s, so
    // every event with ts <= L + 90 s is known and none names ctl-1: ctl-1's silence lasts more
    // than 90 s whatever comes next (an event naming it at L + 90 s would be known by now).
    // DESIGN §4/§5.2: a decision over [a, b] is final once W > b; device_offline "fires when the
    // watermark passes last + 3 × hb".
    let l = T;
    let lines = vec![hb(l, "ctl-1"), end(l + 90_000)];
    let (got, stats) = run_campus(&lines);
    assert_eq!(idents(&got), set(&[a("device_offline", l, "ctl-1", 130)]));
    assert_eq!(stats.pending, 0);
}

#[test]
fn device_offline_a_device_that_never_sent_a_heartbeat_never_alarms() {
    let l = T;
    let lines = vec![
        line(l, "motion", "camera", "cam-3"),
        line(l + 1_000, "camera.tamper", "camera", "cam-3"),
        grant(l + 2_000, "r-main-in", "c-1"),
        end(l + 1_000_000),
    ];
    assert_eq!(alarms(&lines), set(&[]));
}

#[test]
fn device_offline_fires_once_per_silence_and_again_after_being_seen() {
    let l = T;
    // Long silence with other traffic: one alarm.
    let lines = vec![hb(l, "ctl-1"), end(l + 100_000), end(l + 200_000), end(l + 300_000)];
    assert_eq!(alarms(&lines), set(&[a("device_offline", l, "ctl-1", 130)]));
    // Seen again at L + 400 s, silent again: a second alarm, triggered by that event.
    let lines = vec![hb(l, "ctl-1"), end(l + 100_000), end(l + 300_000), hb(l + 400_000, "ctl-1"), end(l + 500_000)];
    assert_eq!(
        alarms(&lines),
        set(&[a("device_offline", l, "ctl-1", 130), a("device_offline", l + 400_000, "ctl-1", 130)])
    );
}

#[test]
fn device_offline_any_event_naming_the_device_counts_and_intervals_come_from_the_topology() {
    let l = T;
    // cam-3 (heartbeat_s 15 -> 45 s): a motion at exactly L + 45 s keeps it online; then silence.
    let lines = vec![hb(l, "cam-3"), line(l + 45_000, "motion", "camera", "cam-3"), end(l + 90_001)];
    assert_eq!(alarms(&lines), set(&[a("device_offline", l + 45_000, "cam-3", 130)]));
    // r-lab-in has no own interval: hq's heartbeat_s 20 -> 60 s. A grant at exactly L + 60 s keeps
    // it online; 60 001 ms of silence after that grant is offline.
    let lines = vec![hb(l, "r-lab-in"), grant(l + 60_000, "r-lab-in", "c-1"), end(l + 120_001)];
    assert_eq!(alarms(&lines), set(&[a("device_offline", l + 60_000, "r-lab-in", 130)]));
    // A grant 60 001 ms after the heartbeat comes too late: offline at L, and again after it.
    let lines = vec![hb(l, "r-lab-in"), grant(l + 60_001, "r-lab-in", "c-1"), end(l + 130_000)];
    assert_eq!(
        alarms(&lines),
        set(&[a("device_offline", l, "r-lab-in", 130), a("device_offline", l + 60_001, "r-lab-in", 130)])
    );
}

// ---------------------------------------------------------------------------------------------
// after_hours_access (80; d-lab 4 -> 90, p-gate 3 -> 80)

/// Monday 18:00 UTC: 19:00 at hq (utc_offset_min 60), 18:00 at the plant.
const CLOSE: u64 = CAMPUS_T0 + 1_800_000;
/// Tuesday 06:00 UTC: 07:00 at hq.
const HQ_OPEN_TUE: u64 = CAMPUS_T0 + 45_000_000;
/// Saturday 2025-11-29 11:00 UTC: noon at hq, 11:00 at the plant.
const SATURDAY_NOON: u64 = CAMPUS_T0 + 408_600_000;

#[test]
fn after_hours_lab_closes_at_19_00_local() {
    let lines = vec![grant(CLOSE - 1, "r-lab-in", "c-1"), grant(CLOSE, "r-lab-in", "c-2"), end(CLOSE + 10_000)];
    assert_eq!(alarms(&lines), set(&[a("after_hours_access", CLOSE, "c-2", 90)]));
}

#[test]
fn after_hours_lab_opens_at_07_00_local() {
    let lines = vec![
        grant(HQ_OPEN_TUE - 1, "r-lab-in", "c-1"),
        grant(HQ_OPEN_TUE, "r-lab-in", "c-2"),
        end(HQ_OPEN_TUE + 10_000),
    ];
    assert_eq!(alarms(&lines), set(&[a("after_hours_access", HQ_OPEN_TUE - 1, "c-1", 90)]));
}

#[test]
fn after_hours_a_grant_out_of_the_lab_never_alarms() {
    // r-lab-out moves the card into the lobby, which has no schedule.
    let lines = vec![grant(CLOSE + 1_000, "r-lab-out", "c-1"), grant(SATURDAY_NOON, "r-lab-out", "c-2")];
    assert_eq!(alarms(&lines), set(&[]));
}

#[test]
fn after_hours_saturday_daytime_alarms_in_the_lab_but_not_in_the_daily_shop() {
    let lines = vec![
        grant(SATURDAY_NOON, "r-lab-in", "c-1"),
        grant(SATURDAY_NOON + 1_000, "r-gate-in", "c-2"),
        end(SATURDAY_NOON + 10_000),
    ];
    assert_eq!(alarms(&lines), set(&[a("after_hours_access", SATURDAY_NOON, "c-1", 90)]));
}

#[test]
fn after_hours_shop_closes_at_18_00_plant_time() {
    let lines = vec![grant(CLOSE - 1, "r-gate-in", "c-1"), grant(CLOSE, "r-gate-in", "c-2"), end(CLOSE + 10_000)];
    assert_eq!(alarms(&lines), set(&[a("after_hours_access", CLOSE, "c-2", 80)]));
}

// ---------------------------------------------------------------------------------------------
// alarm JSON

#[test]
fn alarm_json_has_excess_for_tailgating_and_card_and_door_for_card_rules() {
    let lines = vec![
        grant(T, "r-gate-in", "c-9"),
        cross(T + 1_000, "cam-p", "in", 3),
        grant(T + 2_000, "r-lab-in", "c-1"),
        grant(T + 3_000, "r-lab-in", "c-1"),
        end(T + 20_000),
    ];
    let (got, _) = run_campus(&lines);
    assert_eq!(
        idents(&got),
        set(&[a("tailgating", T + 1_000, "p-gate", 170), a("anti_passback", T + 3_000, "c-1", 160)])
    );
    let json = |rule: &str| -> serde_json::Value {
        serde_json::from_str(&only_alarm(&got, rule).to_json()).expect("valid JSON")
    };
    let t = json("tailgating");
    assert_eq!(t["rule"], "tailgating");
    assert_eq!(t["door"], "p-gate");
    assert_eq!(t["excess"], 2);
    assert_eq!(t["site"], "plant");
    let c = json("anti_passback");
    assert_eq!(c["rule"], "anti_passback");
    assert_eq!(c["card"], "c-1");
    assert_eq!(c["door"], "d-lab");
    assert_eq!(c["ts"], T + 3_000);
    assert_eq!(c["priority"], 160);
    assert!(c.get("excess").is_none(), "{c}");
}
