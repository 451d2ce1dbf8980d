//! Checkpoints: the engine's whole state at a quiescent instant, and its restoration.
//!
//! **What is saved.** Every rule operator's detectors (through [`vigil_rules::Detector::save`]),
//! the events waiting for the watermark, the operator's watermark and the alarm identities it
//! already emitted; the sink's card-name directory; the engine's watermark and the largest ts sent.
//! Per-source `max ts` is not needed: a restored source starts at the saved watermark, which is
//! what `max ts − lateness` gave (the sidecar runs one source).
//!
//! **Quiescence.** [`crate::Engine::checkpoint`] requires that the host pushes nothing while it
//! runs. Workers then (1) drain their queues and flush their inputs, then *freeze* (no ingest, no
//! watermark advance, no live tick); (2) wait until their probe passes the frozen input times, so
//! every rule operator has done the work the frontier asked of it; (3) wait until nothing is in
//! flight: a process-wide counter goes up for every record sent (events, routed events, alarms,
//! card names) and down when its operator consumed it. Once every worker is frozen, caught up and
//! the counter is zero, no operator can act again before the workers thaw, so each worker
//! captures its own operators, and they thaw together when the last has captured.
//!
//! **Alarms past the cut.** The checkpoint covers alarms `1..=`[`Snapshot::alarms_sent`], all
//! sent when it returns. Thawed workers go on at once (a worker that froze below another's
//! watermark catches up with it even without new input), so a host may receive later alarms
//! before it dies; the restored engine raises those again, numbered from `alarms_sent + 1` but
//! not necessarily in the same order. A host that must show each alarm once dedupes those by
//! identity (rule, ts, key), as the sidecar's journal does.
//!
//! **Restoring** needs the same worker count, site and rules (checked; rule ids are matched by
//! name and definition, so a restored engine may number its rules differently). Not available in
//! cluster mode, like hot swap.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use vigil_rules::{Key, Keyspace, RawAlarm, RuleBook, RuleDef, RuleId};

use crate::operators::Keyed;

/// Format version of [`Snapshot::to_bytes`].
const FORMAT: u32 = 1;
const MAGIC: &[u8; 8] = b"VIGILCK\x01";

/// Errors of taking or restoring a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Not possible now (cluster mode, a swap still settling, the engine stopping); retry later.
    #[error("checkpoint not possible now: {0}")]
    Unavailable(String),
    /// The bytes are not a checkpoint of this format.
    #[error("not a vigil checkpoint (or a corrupt one): {0}")]
    Corrupt(String),
    /// The checkpoint does not fit this engine (workers, site or rules differ).
    #[error("checkpoint does not fit this engine: {0}")]
    Mismatch(String),
}

/// One hosted detector's saved state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HostedState {
    pub rules: Vec<u16>,
    pub from: u64,
    pub det: Vec<u8>,
}

/// One rule operator's saved state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OperatorState {
    pub worker: usize,
    pub space: Keyspace,
    pub hosted: Vec<HostedState>,
    pub pending: Vec<Keyed>,
    pub watermark: u64,
    pub emitted: Vec<(u16, u64, Key)>,
    pub next_prune: u64,
}

/// The alarm sink's saved state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SinkState {
    pub directory: Vec<(u64, String)>,
    pub waiting: Vec<(u64, RawAlarm)>,
    pub next_id: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SnapshotData {
    pub format: u32,
    pub workers: usize,
    /// The engine watermark (every source restarts here).
    pub watermark: u64,
    pub max_sent: Option<u64>,
    /// Per rule id of the saved engine: (rule id string, definition fingerprint).
    pub rules: Vec<(String, u64)>,
    pub operators: Vec<OperatorState>,
    pub sink: SinkState,
}

/// A checkpoint of a running engine: opaque, serializable with [`Snapshot::to_bytes`].
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub(crate) data: SnapshotData,
}

impl Snapshot {
    /// The engine watermark at the checkpoint (event-time ms).
    pub fn watermark(&self) -> u64 {
        self.data.watermark
    }

    /// The number of alarms the engine had sent when the checkpoint was taken.
    pub fn alarms_sent(&self) -> u64 {
        self.data.sink.next_id.saturating_sub(1)
    }

    /// Encodes the checkpoint (magic, format version, bincode body).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        let mut out = MAGIC.to_vec();
        bincode::serialize_into(&mut out, &self.data).map_err(|e| CheckpointError::Corrupt(e.to_string()))?;
        Ok(out)
    }

    /// Decodes [`Snapshot::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot, CheckpointError> {
        let body = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| CheckpointError::Corrupt("bad magic".into()))?;
        let data: SnapshotData = bincode::deserialize(body).map_err(|e| CheckpointError::Corrupt(e.to_string()))?;
        if data.format != FORMAT {
            return Err(CheckpointError::Corrupt(format!("format {} (this build reads {FORMAT})", data.format)));
        }
        Ok(Snapshot { data })
    }
}

/// A stable fingerprint of a rule definition (same build, same definition → same number).
pub(crate) fn fingerprint(def: &RuleDef) -> u64 {
    let mut h = DefaultHasher::new();
    format!("{def:?}").hash(&mut h);
    h.finish()
}

/// The rules of a book, as a snapshot records them.
pub(crate) fn book_rules(book: &RuleBook) -> Vec<(String, u64)> {
    book.iter().map(|(_, def)| (def.id.clone(), fingerprint(def))).collect()
}

/// Maps the saved engine's rule ids to this engine's: by id string, with the same definition.
/// `None` for saved rules this engine does not run.
pub(crate) fn rule_map(saved: &[(String, u64)], book: &RuleBook) -> Result<Vec<Option<RuleId>>, CheckpointError> {
    saved
        .iter()
        .map(|(name, fp)| match book.iter().find(|(_, d)| &d.id == name) {
            Some((id, def)) if fingerprint(def) == *fp => Ok(Some(id)),
            Some(_) => Err(CheckpointError::Mismatch(format!("rule {name} changed since the checkpoint"))),
            None => Ok(None),
        })
        .collect()
}

/// Where a checkpoint in progress stands.
#[derive(Debug, Default)]
pub(crate) struct Round {
    /// Generation being taken (0: none yet).
    pub generation: u64,
    /// Per local worker: its input time once frozen.
    pub frozen: Vec<Option<u64>>,
    pub caught_up: Vec<bool>,
    pub captured: usize,
    pub operators: Vec<OperatorState>,
    pub sink: Option<SinkState>,
    pub error: Option<String>,
    pub complete: bool,
}

/// The process's checkpoint coordination (see the module docs).
#[derive(Debug)]
pub(crate) struct Quiesce {
    /// The generation the host asked for.
    pub request: AtomicU64,
    /// Records sent and not yet consumed, process-wide.
    pub in_flight: AtomicI64,
    pub round: Mutex<Round>,
    pub done: Condvar,
}

impl Quiesce {
    pub fn new(workers: usize) -> Quiesce {
        Quiesce {
            request: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            round: Mutex::new(Round {
                frozen: vec![None; workers],
                caught_up: vec![false; workers],
                ..Round::default()
            }),
            done: Condvar::new(),
        }
    }

    #[inline]
    pub fn sent(&self, n: usize) {
        if n > 0 {
            self.in_flight.fetch_add(n as i64, Ordering::SeqCst);
        }
    }

    #[inline]
    pub fn consumed(&self, n: usize) {
        if n > 0 {
            self.in_flight.fetch_sub(n as i64, Ordering::SeqCst);
        }
    }

    /// Starts a new round and waits for it; returns the captured parts.
    pub fn run(&self, timeout: Duration, wake: impl Fn()) -> Result<(Vec<OperatorState>, SinkState), CheckpointError> {
        let mut round = self.round.lock().unwrap_or_else(|e| e.into_inner());
        let generation = round.generation + 1;
        let workers = round.frozen.len();
        *round = Round { generation, frozen: vec![None; workers], caught_up: vec![false; workers], ..Round::default() };
        self.request.store(generation, Ordering::SeqCst);
        wake();
        let deadline = Instant::now() + timeout;
        while !round.complete {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // Abandon the round: workers thaw on seeing `complete`.
                round.complete = true;
                round.error = Some(format!("the engine did not quiesce within {timeout:?}"));
                break;
            }
            round =
                self.done.wait_timeout(round, left.min(Duration::from_millis(50))).unwrap_or_else(|e| e.into_inner()).0;
            wake();
        }
        if let Some(e) = round.error.take() {
            return Err(CheckpointError::Unavailable(e));
        }
        let operators = std::mem::take(&mut round.operators);
        let sink = round.sink.take().unwrap_or_default();
        Ok((operators, sink))
    }
}
