//! The same replay as 2 timely processes on 127.0.0.1 gives the same alarm set as 1 process.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SITE: &str = "../replay-data/samples/site.toml";

/// Deterministic traffic over the sample site, in time order, large enough to span many blocks.
fn traffic(n: usize) -> String {
    let doors = ["d-main", "d-lab", "d-server", "d-dock"];
    let cams = ["cam-lobby", "cam-lab-door", "cam-server"];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut t = 1_763_971_200_000u64;
    let mut out = String::new();
    for _ in 0..n {
        t += next() % 3_000;
        let r = next();
        let door = doors[(r % 4) as usize];
        let cam = cams[((r >> 8) % 3) as usize];
        let _ = match (r >> 16) % 10 {
            0 => writeln!(out, r#"{{"ts":{t},"type":"door.forced","door":"{door}"}}"#),
            1..=3 => writeln!(out, r#"{{"ts":{t},"type":"motion","camera":"{cam}"}}"#),
            4..=5 => writeln!(out, r#"{{"ts":{t},"type":"door.opened","door":"{door}"}}"#),
            6..=7 => writeln!(out, r#"{{"ts":{t},"type":"door.closed","door":"{door}"}}"#),
            8 => writeln!(out, r#"{{"ts":{t},"type":"access.granted","reader":"r-main-in","card":"c-{}"}}"#, r % 97),
            _ => writeln!(out, r#"{{"ts":{t},"type":"heartbeat","device":"ctl-1"}}"#),
        };
    }
    out
}

/// Two distinct free ports (both bound at once, then released for the children).
fn free_ports() -> (u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("an ephemeral port");
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| l.local_addr().expect("bound").port();
    (port(&a), port(&b))
}

fn identities(path: &Path) -> BTreeSet<(String, u64, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("alarm JSON");
            let key = v["door"].as_str().or(v["card"].as_str()).unwrap_or_default().to_string();
            (v["rule"].as_str().unwrap_or_default().to_string(), v["ts"].as_u64().unwrap_or(0), key)
        })
        .collect()
}

#[test]
fn two_processes_give_the_same_alarms_as_one() {
    let dir = std::env::temp_dir().join(format!("vigil-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let events = dir.join("events.ndjson");
    std::fs::write(&events, traffic(60_000)).expect("write events");
    let vigil = env!("CARGO_BIN_EXE_vigil");

    let single = dir.join("single.ndjson");
    let status = Command::new(vigil)
        .args(["replay", "--site", SITE, "--alarms"])
        .arg(&single)
        .arg(&events)
        .status()
        .expect("run vigil");
    assert!(status.success());
    let expected = identities(&single);
    assert!(expected.len() > 100, "the traffic should raise many alarms, got {}", expected.len());

    let hosts = dir.join("hosts");
    let (p0, p1) = free_ports();
    std::fs::write(&hosts, format!("127.0.0.1:{p0}\n127.0.0.1:{p1}\n")).expect("hosts");
    let mut children: Vec<_> = (0..2)
        .map(|i| {
            Command::new(vigil)
                .args(["replay", "--site", SITE, "--processes", "2", "--process", &i.to_string(), "--hosts"])
                .arg(&hosts)
                .arg("--alarms")
                .arg(dir.join(format!("p{i}.ndjson")))
                .arg(&events)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn vigil")
        })
        .collect();
    // A cluster that cannot form (a port taken meanwhile) must fail the test, not hang it.
    let deadline = Instant::now() + Duration::from_secs(600);
    while children.iter_mut().any(|c| c.try_wait().expect("poll a child").is_none()) {
        if Instant::now() >= deadline {
            for c in &mut children {
                let _ = c.kill();
            }
            panic!("the 2-process replay did not finish within 600 s (ports {p0}, {p1})");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut events_seen = 0u64;
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        let text = String::from_utf8_lossy(&out.stdout);
        let events_line = text.lines().find(|l| l.starts_with("events")).expect("summary");
        events_seen += events_line.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()).expect("count");
    }
    assert_eq!(events_seen, 60_000, "each event is processed by exactly one process");
    let mut got = identities(&dir.join("p0.ndjson"));
    got.extend(identities(&dir.join("p1.ndjson")));
    assert!(identities(&dir.join("p1.ndjson")).is_empty(), "alarms are emitted by process 0");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(expected, got);
}
