//! Checkpoints: an engine stopped after a checkpoint and restored from it, fed the rest of the
//! input, raises exactly the alarms of an uninterrupted run — none lost, none twice.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use vigil_engine::{Engine, EngineError, Snapshot};
use vigil_rules::{Alarm, Lateness, RulePack, Topology};

fn engine(site: &str, workers: usize, restore: Option<Snapshot>) -> Result<Engine, EngineError> {
    let topo = Arc::new(Topology::from_toml(site).expect("test site is valid"));
    let mut b = Engine::builder(topo, RulePack::default_pack()).workers(workers).lateness(Lateness { ms: 2_000 });
    if let Some(s) = restore {
        b = b.restore(s);
    }
    b.build()
}

fn push(source: &mut vigil_engine::Source, lines: &[String], batch: usize) {
    for chunk in lines.chunks(batch) {
        let mut bytes = Vec::new();
        for l in chunk {
            bytes.extend_from_slice(l.as_bytes());
            bytes.push(b'\n');
        }
        source.push_ndjson(bytes).expect("engine accepts");
    }
}

/// Feeds `lines`, checkpointing (and, when `crash`, killing and restoring the engine) before each
/// cut. Returns every alarm received, in order.
fn run_with_cuts(site: &str, lines: &[String], workers: usize, cuts: &[usize], crash: bool) -> Vec<Alarm> {
    let mut got = Vec::new();
    let mut eng = engine(site, workers, None).expect("engine starts");
    let mut source = eng.source("sidecar");
    let mut at = 0;
    for &cut in cuts {
        push(&mut source, &lines[at..cut], 37);
        at = cut;
        let snap = eng.checkpoint().expect("checkpoint");
        // Everything the checkpoint covers has been sent when it returns: ids up to alarms_sent.
        let covered = snap.alarms_sent();
        // Let the thawed engine run on, so alarms beyond the checkpoint arrive too (see below).
        std::thread::sleep(std::time::Duration::from_millis(5));
        got.extend(eng.alarms().try_iter());
        if crash {
            // The engine thaws as soon as the checkpoint is taken and may already raise alarms
            // beyond it (another worker's watermark was higher); a crash loses those, and the
            // restored engine raises them again. A host that must not show them twice keeps only
            // what the checkpoint covers (the sidecar dedupes its journal by identity instead).
            got.retain(|a| a.id <= covered);
            // Ids continue across restores, so what the host holds is exactly alarms 1..=covered.
            assert!(got.iter().map(|a| a.id).eq(1..=covered), "alarms 1..={covered} all sent at the checkpoint");
            let bytes = snap.to_bytes().expect("encodes");
            drop(source);
            drop(eng); // no finish(): the process died
            let snap = Snapshot::from_bytes(&bytes).expect("decodes");
            eng = engine(site, workers, Some(snap)).expect("restores");
            source = eng.source("sidecar");
        }
    }
    push(&mut source, &lines[at..], 37);
    drop(source);
    let alarms = eng.alarms().clone();
    eng.finish().expect("finishes");
    got.extend(alarms.try_iter());
    got
}

fn assert_exactly_once(expected: &BTreeSet<Ident>, got: &[Alarm], ctx: &str) {
    let mut seen = BTreeSet::new();
    for a in got {
        assert!(seen.insert(ident(a)), "{ctx}: {:?} emitted twice", ident(a));
    }
    assert_same_alarms!(*expected, seen, "{ctx}");
}

#[test]
fn restored_engine_raises_exactly_the_alarms_of_an_uninterrupted_run() {
    for seed in 0..4u64 {
        let events = campus_traffic(seed, 2_000);
        let lines = if seed % 2 == 0 { shuffle_within(&events, 2_000, seed) } else { in_order(&events) };
        let (alarms, _) = run(CAMPUS, &lines, Run::default());
        let expected = unique_idents(&alarms);
        assert!(expected.len() > 10, "seed {seed}: traffic should alarm");
        let n = lines.len();
        for workers in [1, 2] {
            for cuts in [vec![n / 2], vec![1, n / 3, n / 3 + 1, 2 * n / 3], vec![n]] {
                let got = run_with_cuts(CAMPUS, &lines, workers, &cuts, true);
                assert_exactly_once(&expected, &got, &format!("seed {seed}, {workers} workers, cuts {cuts:?}"));
            }
        }
    }
}

#[test]
fn a_checkpoint_does_not_disturb_the_running_engine() {
    let events = campus_traffic(11, 3_000);
    let lines = shuffle_within(&events, 2_000, 5);
    let expected = unique_idents(&run(CAMPUS, &lines, Run::default()).0);
    let n = lines.len();
    let got = run_with_cuts(CAMPUS, &lines, 2, &[n / 4, n / 2, 3 * n / 4], false);
    assert_exactly_once(&expected, &got, "checkpoints without restart");
}

#[test]
fn a_checkpoint_of_an_idle_engine_restores_empty() {
    let eng = engine(SITE, 2, None).unwrap();
    let snap = eng.checkpoint().expect("checkpoint of an idle engine");
    assert_eq!(snap.alarms_sent(), 0);
    drop(eng);
    let eng = engine(SITE, 2, Some(snap)).expect("restores");
    assert_eq!(eng.finish().unwrap().events, 0);
}

#[test]
fn a_checkpoint_that_does_not_fit_is_refused_with_the_reason() {
    let eng = engine(SITE, 2, None).unwrap();
    let mut s = eng.source("x");
    push(&mut s, &in_order(&random_traffic(1, 300)), 50);
    let snap = eng.checkpoint().unwrap();
    let bytes = snap.to_bytes().unwrap();
    drop(s);
    drop(eng);

    let err = engine(SITE, 1, Some(snap)).unwrap_err().to_string();
    assert!(err.contains("2 workers"), "{err}");

    let err = Snapshot::from_bytes(&bytes[..bytes.len() / 2]).unwrap_err().to_string();
    assert!(err.contains("not a vigil checkpoint"), "{err}");
    let err = Snapshot::from_bytes(b"hello").unwrap_err().to_string();
    assert!(err.contains("bad magic"), "{err}");

    // Another site: the dense per-door state does not fit.
    let snap = Snapshot::from_bytes(&bytes).unwrap();
    let err = engine(CAMPUS, 2, Some(snap)).unwrap_err().to_string();
    assert!(err.contains("does not fit"), "{err}");
}
