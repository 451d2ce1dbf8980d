//! `vigil gen` → `vigil replay --labels` end to end, NDJSON and Arrow, and generator determinism.

use std::path::Path;
use std::process::Command;

fn vigil(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil")).args(args).output().expect("run vigil");
    assert!(out.status.success(), "vigil {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vigil-gen-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn generated_days_replay_with_precision_and_recall_one_in_both_formats() {
    let (a, b) = (dir("ndjson"), dir("arrow"));
    vigil(&["gen", "--site-profile", "demo", "--scale", "0.3", "--events", "30000", "--seed", "9", "--out", s(&a)]);
    vigil(&[
        "gen",
        "--site-profile",
        "demo",
        "--scale",
        "0.3",
        "--events",
        "30000",
        "--seed",
        "9",
        "--out",
        s(&b),
        "--format",
        "arrow",
    ]);
    let labels = a.join("labels.ndjson");
    assert_eq!(std::fs::read(&labels).expect("labels"), std::fs::read(b.join("labels.ndjson")).expect("labels"));
    let mut alarms = Vec::new();
    for (d, file, workers) in [(&a, "events.ndjson", "1"), (&b, "events.arrow", "2")] {
        let out_file = d.join("alarms.ndjson");
        let summary = vigil(&[
            "replay",
            "--site",
            s(&d.join("site.toml")),
            "--workers",
            workers,
            "--labels",
            s(&labels),
            "--alarms",
            s(&out_file),
            s(&d.join(file)),
        ]);
        let score: Vec<&str> = summary.lines().skip_while(|l| !l.starts_with("score")).skip(1).collect();
        assert_eq!(score.len(), 12, "a score line per rule:\n{summary}");
        for line in score {
            let cols: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(&cols[4..], ["1.000", "1.000"], "{line}");
        }
        let mut ids: Vec<(String, u64, String)> = std::fs::read_to_string(&out_file)
            .expect("alarms")
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("alarm JSON");
                let key =
                    ["door", "card", "area", "device"].iter().find_map(|k| v[*k].as_str()).unwrap_or("").to_string();
                (v["rule"].as_str().unwrap_or("").to_string(), v["ts"].as_u64().unwrap_or(0), key)
            })
            .collect();
        ids.sort();
        alarms.push(ids);
    }
    assert_eq!(alarms[0], alarms[1], "NDJSON and Arrow replays of the same data give the same alarms");
    for d in [a, b] {
        std::fs::remove_dir_all(d).ok();
    }
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let (a, b) = (dir("same-a"), dir("same-b"));
    for d in [&a, &b] {
        vigil(&["gen", "--site-profile", "campus", "--scale", "0.01", "--events", "1", "--seed", "3", "--out", s(d)]);
    }
    for f in ["site.toml", "events.ndjson", "labels.ndjson"] {
        assert_eq!(std::fs::read(a.join(f)).expect("a"), std::fs::read(b.join(f)).expect("b"), "{f} differs");
    }
    for d in [a, b] {
        std::fs::remove_dir_all(d).ok();
    }
}

#[test]
fn open_loop_replay_writes_a_report_with_the_design_fields() {
    let d = dir("report");
    vigil(&["gen", "--site-profile", "demo", "--scale", "0.2", "--events", "10000", "--seed", "4", "--out", s(&d)]);
    let report_dir = d.join("report");
    let summary = vigil(&[
        "replay",
        "--site",
        s(&d.join("site.toml")),
        "--rate",
        "50000",
        "--labels",
        s(&d.join("labels.ndjson")),
        "--report",
        s(&report_dir),
        s(&d.join("events.ndjson")),
    ]);
    assert!(summary.contains("open loop  offered 50000 events/s"), "{summary}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report_dir.join("report.json")).expect("report")).expect("JSON");
    for field in [
        "events",
        "rejected",
        "late",
        "alarms",
        "workers",
        "wall_s",
        "events_per_s",
        "offered_rate",
        "latency_us",
        "rules",
    ] {
        assert!(!r[field].is_null(), "report.json lacks {field}: {r}");
    }
    assert_eq!(r["offered_rate"], 50000.0);
    for q in ["p50", "p99", "p999", "max"] {
        assert!(r["latency_us"][q].is_u64(), "{q}");
    }
    let tailgating = &r["rules"]["tailgating"];
    assert_eq!(
        (tailgating["precision"].as_f64(), tailgating["recall"].as_f64()),
        (Some(1.0), Some(1.0)),
        "{tailgating}"
    );
    for chart in ["latency.svg", "throughput.svg"] {
        let svg = std::fs::read_to_string(report_dir.join(chart)).expect("chart");
        assert!(svg.starts_with("<svg") && svg.contains("<polyline"), "{chart} has no series");
    }
    std::fs::remove_dir_all(d).ok();
}
