//! The sidecar's core, without any network: ingest (validate, log, push), the alarm journal,
//! live time, checkpoints and recovery.
//!
//! **Sources.** Each input keeps its own watermark (DESIGN §4): a named HTTP source
//! (`X-Vigil-Source`, default `http`) or one TCP connection (`tcp:N`, closed with it). An event
//! below its source's watermark is late. The sidecar's watermark is the minimum over the open
//! sources (never lowered; when the last one closes, its watermark); it drives the engine's one
//! host-timed source, so the engine sees a single ordered stream.
//!
//! **Durability.** Every accepted event line is appended to the *ingest log* (and fsynced under
//! the default policy) before the client hears "accepted". Which source a batch came from, a
//! connection's end, watermark advances (live ticks, `POST /v1/advance`) and rule swaps are
//! logged the same way, as control records starting with `#` (which no valid event line can):
//! `#src NAME`, `#close NAME`, `#advance MS [NAME]`, `#swap {...}`. Replaying the log through the
//! same code therefore reproduces every decision: which events were late, which were processed,
//! under which rules.
//!
//! **Checkpoints.** Under the ingest lock: note the log offset, take an engine checkpoint, wait
//! until every alarm it covers is in the journal, write `checkpoint.bin` (atomically: temp file,
//! fsync, rename), then delete the ingest-log segments it covers.
//!
//! **Recovery.** Restore the engine from the checkpoint, replay the ingest log after its offset.
//! Alarms already journaled after the checkpoint (the crash came after they were written) are
//! recognised by identity and not journaled again; journal sequence numbers continue.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use vigil_engine::decode::{Decoder, Reason};
use vigil_engine::{Engine, Snapshot, Source};
use vigil_rules::{Alarm, Lateness, RulePack, Topology};

use crate::cef::{self, SyslogSink};
use crate::metrics::Metrics;
use crate::seglog::{Fsync, LogError, Options, SegmentLog};

/// Sidecar configuration (what `vigil serve` parses).
#[derive(Debug, Clone)]
pub struct Config {
    /// The site.
    pub topo: Arc<Topology>,
    /// The site file's text (fingerprinted into checkpoints).
    pub site_text: String,
    /// Rule pack TOML (`None`: the default pack). A checkpoint's pack wins over it on restart.
    pub rules_text: Option<String>,
    /// Data directory: ingest log, journal, checkpoint, dead letters.
    pub data_dir: PathBuf,
    /// Engine workers.
    pub workers: usize,
    /// Allowed lateness.
    pub lateness_ms: u64,
    /// Live time: advance the watermark with the wall clock after this much idleness.
    pub live_idle: Option<Duration>,
    /// fsync policy of the ingest log and the journal.
    pub fsync: Fsync,
    /// Periodic checkpoints.
    pub checkpoint_every: Duration,
    /// Longest accepted line.
    pub max_line: usize,
    /// Engine queue (batches) before ingest answers "busy".
    pub queue_batches: usize,
    /// CEF over syslog target (`udp://` or `tcp://`).
    pub syslog: Option<String>,
    /// Journal segment size before rotation.
    pub segment_bytes: u64,
    /// Journal retention: at each checkpoint, the oldest journal segments the checkpoint covers are
    /// deleted while the journal is larger than this. `None` keeps every alarm forever.
    pub journal_keep_bytes: Option<u64>,
}

/// Errors of the sidecar core.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The engine queue is full: retry later (HTTP 503).
    #[error("the engine is behind; retry later")]
    Busy,
    /// The ingest log or journal failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A file in the data dir.
    #[error("{path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The engine refused.
    #[error(transparent)]
    Engine(#[from] vigil_engine::EngineError),
    /// The checkpoint in the data dir is unusable.
    #[error("checkpoint {path}: {why}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A rule pack was refused.
    #[error("{0}")]
    Rules(String),
    /// The sidecar is stopping.
    #[error("the sidecar is shutting down")]
    Stopping,
    /// Not possible right now (e.g. a checkpoint while the journal lags); retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The request cannot be served as it is (HTTP 400).
    #[error("{0}")]
    Refused(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CoreError + '_ {
    move |source| CoreError::Io { path: path.to_path_buf(), source }
}

/// One input line: its number and bytes, or only its length when it was too long to keep.
#[derive(Debug, Clone, Copy)]
pub struct LineIn<'a> {
    /// 1-based number within the request or connection.
    pub no: u64,
    /// The line without its newline; `None` when longer than the limit.
    pub bytes: Option<&'a [u8]>,
    /// Its length in bytes.
    pub len: usize,
}

/// Splits a body into lines (a trailing `\r` is dropped), marking those over `max_line`.
pub fn split_lines(body: &[u8], max_line: usize) -> Vec<LineIn<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut no = 1;
    while start < body.len() {
        let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |i| start + i);
        let mut line = &body[start..end];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        out.push(LineIn { no, bytes: (line.len() <= max_line).then_some(line), len: line.len() });
        no += 1;
        start = end + 1;
    }
    out
}

/// A rejected line in an answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rejected {
    /// Line number.
    pub line: u64,
    /// `invalid_json`, `missing_field`, `unknown_type`, `unknown_device`, `invalid_field`,
    /// `line_too_long`.
    pub reason: &'static str,
    /// Details.
    pub detail: String,
}

/// A late line in an answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Late {
    /// Line number.
    pub line: u64,
    /// Its ts.
    pub ts: u64,
    /// The watermark it fell below.
    pub watermark: u64,
}

/// What became of a batch of lines.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    /// Accepted (durable) events.
    pub accepted: u64,
    /// Late events (written to the dead-letter file, not processed).
    pub late: Vec<Late>,
    /// Rejected lines.
    pub rejected: Vec<Rejected>,
}

/// What `checkpoint.bin` holds besides the engine snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointHeader {
    format: u32,
    /// Ingest-log records below this are covered.
    ingest_offset: u64,
    /// Journal records up to this one are covered.
    journal_seq: u64,
    /// The sidecar watermark.
    watermark: u64,
    /// The largest ts accepted (before sources were kept apart: the one source's).
    max_ts: Option<u64>,
    /// The open sources and their watermarks.
    #[serde(default)]
    sources: Vec<SavedSource>,
    /// The rule pack in force (TOML; `None` = default).
    pack: Option<String>,
    /// Fingerprint of site.toml.
    site: u64,
    created_ms: u64,
}

const CHECKPOINT_FILE: &str = "checkpoint.bin";

/// A source in a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedSource {
    name: String,
    watermark: u64,
    max_ts: Option<u64>,
}

/// The source of HTTP posts that name none.
pub const DEFAULT_SOURCE: &str = "http";

/// At most this many sources are open at once (every one is kept, logged and ticked).
pub const MAX_SOURCES: usize = 1_024;

/// TCP connection sources are named `tcp:N` (HTTP source names cannot hold a `:`).
const CONNECTION_PREFIX: &str = "tcp:";

/// Whether `name` is a valid HTTP source name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_source_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// One open source.
#[derive(Debug)]
struct Src {
    /// `max ts − lateness`, never below where it started (the sidecar watermark then), raised
    /// by advances.
    watermark: u64,
    max_ts: Option<u64>,
    /// Live time: when it last sent something.
    last_input: Instant,
}

/// How long (event time, by alarm ts) the journaler remembers identities journaled before a
/// restart; the engine's own identity memory is as long.
const SEEN_MEMORY_MS: u64 = 86_400_000;

/// An alarm's identity as the journal can tell it: rule, ts and every key field.
type Identity = (String, u64, [Option<String>; 6]);

fn identity_of(a: &Alarm) -> Identity {
    (
        a.rule.clone(),
        a.ts,
        [a.door.clone(), a.card.clone(), a.area.clone(), a.device.clone(), a.camera.clone(), a.site.clone()],
    )
}

fn identity_of_json(line: &[u8]) -> Option<Identity> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    Some((s("rule")?, v.get("ts")?.as_u64()?, [s("door"), s("card"), s("area"), s("device"), s("camera"), s("site")]))
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn fingerprint(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// State behind the ingest lock: one sequencing point for events, ticks and swaps.
struct Ingest {
    /// The engine's one source; its watermark is ours (host-timed).
    source: Source,
    log: SegmentLog,
    decoder: Decoder,
    /// The open sources, by name.
    sources: BTreeMap<String, Src>,
    /// The sidecar's watermark: the minimum over the open sources, never lowered.
    watermark: u64,
    /// The source of the last logged batch (a batch from another is preceded by `#src`); while
    /// replaying, the source of the lines being replayed.
    logged_source: Option<String>,
    /// Live time with no source open: when the last input came or the last source closed.
    last_input: Instant,
    pack: Option<String>,
    dead: Option<File>,
}

impl Ingest {
    /// Raises the sidecar watermark to the minimum over the open sources (or `floor`, when it is
    /// higher) and passes a raise on to the engine.
    fn raise(&mut self, floor: u64) -> Result<(), CoreError> {
        if let Some(w) = self.next_watermark(floor) {
            self.watermark = w;
            self.source.advance_to(w).map_err(|_| CoreError::Stopping)?;
        }
        Ok(())
    }

    /// The sidecar watermark the open sources (and `floor`) allow, when above the current one.
    fn next_watermark(&self, floor: u64) -> Option<u64> {
        let min = self.sources.values().map(|s| s.watermark).min().unwrap_or(floor).max(floor);
        (min > self.watermark).then_some(min)
    }
}

/// A page of the journal.
#[derive(Debug, Clone)]
pub struct Page {
    /// The oldest seq the journal holds.
    pub first: u64,
    /// (seq, alarm JSON), ascending.
    pub alarms: Vec<(u64, Arc<str>)>,
}

/// The journal and its live tail.
struct Journal {
    log: SegmentLog,
    /// The most recent alarms, for SSE and paging without touching the disk.
    recent: VecDeque<(u64, Arc<str>)>,
}

const RECENT: usize = 4_096;
/// CEF messages waiting for the syslog thread.
const SYSLOG_QUEUE: usize = 65_536;

/// Journaler progress: alarms received from the engine (cumulative across restarts, like the
/// engine's count) and, for recent counts, the last journal seq at that count.
#[derive(Debug, Default)]
struct Progress {
    received: u64,
    history: VecDeque<(u64, u64)>,
}

/// The sidecar core. See the module docs.
pub struct Core {
    cfg: Config,
    engine: Mutex<Option<Engine>>,
    ingest: Mutex<Ingest>,
    journal: Mutex<Journal>,
    progress: Mutex<Progress>,
    progress_cv: Condvar,
    /// Wakes SSE streams when an alarm is journaled (the payload is its seq).
    pub live: tokio::sync::broadcast::Sender<u64>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    stopping: AtomicBool,
    /// Set once the ingest log or the journal failed: the sidecar exits (see [`Core::fail`]).
    failed: tokio::sync::watch::Sender<Option<String>>,
    last_checkpoint: Mutex<Instant>,
    processed: AtomicU64,
    /// TCP connections accepted (names their sources).
    connections: AtomicU64,
    journaler: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("data_dir", &self.cfg.data_dir).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Core {
    /// Opens the data dir, restores the last checkpoint, replays the ingest log after it and
    /// starts the journaler. Returns with the engine caught up and ready for live input.
    pub fn open(cfg: Config) -> Result<Arc<Core>, CoreError> {
        fs::create_dir_all(&cfg.data_dir).map_err(io_err(&cfg.data_dir))?;
        let opts = || Options { segment_bytes: cfg.segment_bytes, fsync: cfg.fsync };
        let ingest_log = SegmentLog::open(&cfg.data_dir, "ingest", opts())?;
        let journal_log = SegmentLog::open(&cfg.data_dir, "journal", opts())?;

        // The checkpoint, if any.
        let ck_path = cfg.data_dir.join(CHECKPOINT_FILE);
        let checkpoint = match fs::read(&ck_path) {
            Ok(bytes) => Some(read_checkpoint(&ck_path, &bytes)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&ck_path)(e)),
        };
        if let Some((h, _)) = &checkpoint {
            if h.site != fingerprint(&cfg.site_text) {
                return Err(CoreError::Checkpoint {
                    path: ck_path,
                    why: "the site file changed since this checkpoint was taken; start with the old site, \
                          or move the data dir away to start empty"
                        .into(),
                });
            }
        }
        let pack_text = match &checkpoint {
            Some((h, _)) => h.pack.clone(),
            None => cfg.rules_text.clone(),
        };
        let pack = match &pack_text {
            Some(t) => RulePack::from_toml(t, &cfg.topo).map_err(|e| CoreError::Rules(e.to_string()))?,
            None => RulePack::default_pack(),
        };
        let mut builder = Engine::builder(cfg.topo.clone(), pack)
            .workers(cfg.workers)
            .lateness(Lateness { ms: cfg.lateness_ms })
            .queue_batches(cfg.queue_batches)
            .max_line_bytes(cfg.max_line);
        // Where the checkpoint leaves off: alarms received, journal seq, ingest-log offset,
        // watermark, largest ts. Without one: from the start of the logs.
        let restoring = checkpoint.is_some();
        let (received, journal_seq, ingest_from, watermark, saved) = match checkpoint {
            Some((h, snap)) => {
                let mut saved = h.sources;
                if saved.is_empty() && h.max_ts.is_some() {
                    // A checkpoint from before sources were kept apart: its one source.
                    saved.push(SavedSource { name: DEFAULT_SOURCE.into(), watermark: h.watermark, max_ts: h.max_ts });
                }
                let at = (snap.alarms_sent(), h.journal_seq, h.ingest_offset, h.watermark, saved);
                builder = builder.restore(snap);
                at
            }
            None => (0, 0, ingest_log.first_seq(), 0, Vec::new()),
        };
        let engine = builder.build().map_err(|e| match e {
            vigil_engine::EngineError::Checkpoint(why) if restoring => CoreError::Checkpoint {
                path: ck_path.clone(),
                why: format!(
                    "{why}; start with the settings it was taken with (--workers, --site), or move the data dir \
                     away to start empty"
                ),
            },
            other => other.into(),
        })?;
        let mut source = engine.source_host_timed("sidecar");
        if watermark > 0 {
            source.advance_to(watermark).map_err(|_| CoreError::Stopping)?;
        }
        let now = Instant::now();
        let sources = saved
            .into_iter()
            .map(|s| (s.name, Src { watermark: s.watermark, max_ts: s.max_ts, last_input: now }))
            .collect();
        let alarms = engine.alarms().clone();

        // Alarms journaled after the checkpoint: a replay raises them again; journal them once.
        let mut seen: HashMap<Identity, u64> = HashMap::new();
        journal_log.read_from(journal_seq + 1, usize::MAX, |seq, line| {
            if let Some(id) = identity_of_json(line) {
                seen.insert(id, seq);
            }
        })?;
        let mut recent = VecDeque::new();
        let tail = journal_log.next_seq().saturating_sub(RECENT as u64).max(1);
        journal_log.read_from(tail, RECENT, |seq, line| {
            recent.push_back((seq, Arc::from(String::from_utf8_lossy(line).as_ref())));
        })?;

        let dead_path = cfg.data_dir.join("late.ndjson");
        let dead = OpenOptions::new().create(true).append(true).open(&dead_path).map_err(io_err(&dead_path))?;
        let (live, _) = tokio::sync::broadcast::channel(1_024);
        let metrics = Metrics::new(journal_log.next_seq().saturating_sub(1), journal_log.first_seq());
        let core = Arc::new(Core {
            ingest: Mutex::new(Ingest {
                source,
                log: ingest_log,
                decoder: Decoder::new(cfg.topo.clone(), cfg.max_line),
                sources,
                watermark,
                logged_source: None,
                last_input: Instant::now(),
                pack: pack_text,
                dead: Some(dead),
            }),
            journal: Mutex::new(Journal { log: journal_log, recent }),
            // What the restored checkpoint covers is journaled up to its journal seq.
            progress: Mutex::new(Progress { received, history: VecDeque::from([(received, journal_seq)]) }),
            progress_cv: Condvar::new(),
            live,
            metrics,
            stopping: AtomicBool::new(false),
            failed: tokio::sync::watch::channel(None).0,
            last_checkpoint: Mutex::new(Instant::now()),
            processed: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            engine: Mutex::new(Some(engine)),
            journaler: Mutex::new(None),
            cfg,
        });

        // CEF goes out on its own thread behind a bounded queue: a stalled SIEM must never stall
        // the journal (and through it checkpoints and ingest). When the queue is full the alarm
        // is counted as a syslog error; the journal and SSE still have it.
        let syslog = match &core.cfg.syslog {
            Some(url) => {
                let mut sink = SyslogSink::connect(url).map_err(|e| CoreError::Rules(e.to_string()))?;
                let (tx, rx) = crossbeam_channel::bounded::<String>(SYSLOG_QUEUE);
                let c = core.clone();
                std::thread::Builder::new()
                    .name("vigil-syslog".into())
                    .spawn(move || {
                        for msg in rx.iter() {
                            if let Err(e) = sink.send(&msg) {
                                c.metrics.syslog_errors.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(error = %e, "syslog send failed");
                            }
                        }
                    })
                    .map_err(io_err(&core.cfg.data_dir))?;
                Some(tx)
            }
            None => None,
        };
        let c = core.clone();
        let handle = std::thread::Builder::new()
            .name("vigil-journal".into())
            .spawn(move || c.journal_loop(alarms, seen, syslog))
            .map_err(io_err(&core.cfg.data_dir))?;
        *lock(&core.journaler) = Some(handle);

        core.replay(ingest_from)?;
        Ok(core)
    }

    /// Replays the ingest log from `from` through the same path as live input.
    fn replay(&self, from: u64) -> Result<(), CoreError> {
        let mut g = lock(&self.ingest);
        let log_end = g.log.next_seq();
        let mut at = from.max(g.log.first_seq());
        let mut replayed = 0u64;
        while at < log_end {
            let mut records: Vec<Vec<u8>> = Vec::new();
            g.log.read_from(at, 4_096, |_, line| records.push(line.to_vec()))?;
            if records.is_empty() {
                break;
            }
            at += records.len() as u64;
            let mut events: Vec<LineIn<'_>> = Vec::new();
            for (i, r) in records.iter().enumerate() {
                if let Some(rest) = r.strip_prefix(b"#") {
                    self.ingest_locked(&mut g, None, &events)?;
                    events.clear();
                    self.control_locked(&mut g, rest)?;
                } else {
                    events.push(LineIn { no: i as u64 + 1, bytes: Some(r), len: r.len() });
                }
            }
            self.ingest_locked(&mut g, None, &events)?;
            replayed += records.len() as u64;
        }
        g.logged_source = None;
        if replayed > 0 {
            tracing::info!(records = replayed, "replayed the ingest log after the checkpoint");
        }
        // The connections behind `tcp:N` sources died with the last process: end them (logged, so
        // the next replay ends them at the same point).
        let dead: Vec<String> = g.sources.keys().filter(|n| n.starts_with(CONNECTION_PREFIX)).cloned().collect();
        for name in dead {
            self.close_locked(&mut g, &name, false)?;
        }
        Ok(())
    }

    /// Applies a logged control record (without the `#`).
    fn control_locked(&self, g: &mut Ingest, rec: &[u8]) -> Result<(), CoreError> {
        let text = String::from_utf8_lossy(rec);
        let bad = || CoreError::Rules(format!("bad ingest-log record #{text}"));
        if let Some(args) = text.strip_prefix("advance ") {
            let mut parts = args.split_whitespace();
            let to: u64 = parts.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
            let names: Vec<String> = parts.map(str::to_owned).collect();
            self.advance_locked(g, to, (!names.is_empty()).then_some(&names[..]), true)?;
        } else if let Some(name) = text.strip_prefix("src ") {
            g.logged_source = Some(name.trim().to_owned());
        } else if let Some(name) = text.strip_prefix("close ") {
            self.close_locked(g, name.trim(), true)?;
        } else if let Some(json) = text.strip_prefix("swap ") {
            let v: serde_json::Value =
                serde_json::from_str(json).map_err(|e| CoreError::Rules(format!("bad ingest-log swap record: {e}")))?;
            let at = v.get("at").and_then(|x| x.as_u64()).unwrap_or(0);
            let toml = v.get("pack").and_then(|x| x.as_str()).unwrap_or_default().to_owned();
            self.swap_locked(g, &toml, Some(at), true)?;
        } else {
            return Err(CoreError::Rules(format!("unknown ingest-log record #{text}")));
        }
        Ok(())
    }

    /// Validates, logs and pushes a batch of lines from `source` (see the module docs). Answers
    /// with what became of each.
    pub fn ingest(&self, source: &str, lines: &[LineIn<'_>]) -> Result<IngestReport, CoreError> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(CoreError::Stopping);
        }
        let mut g = lock(&self.ingest);
        // Again under the lock: a stop may have begun while this request waited for it.
        if self.stopping.load(Ordering::SeqCst) {
            return Err(CoreError::Stopping);
        }
        if g.source.queued() + 1 >= self.cfg.queue_batches {
            self.metrics.busy.fetch_add(1, Ordering::Relaxed);
            return Err(CoreError::Busy);
        }
        self.ingest_locked(&mut g, Some(source), lines)
    }

    /// Ingests `lines` from `source`; `None` replays them, from the source the log last named.
    fn ingest_locked(
        &self,
        g: &mut Ingest,
        source: Option<&str>,
        lines: &[LineIn<'_>],
    ) -> Result<IngestReport, CoreError> {
        let mut report = IngestReport::default();
        if lines.is_empty() {
            return Ok(report);
        }
        let replay = source.is_none();
        let name = match source {
            Some(n) => n.to_owned(),
            None => g.logged_source.clone().unwrap_or_else(|| DEFAULT_SOURCE.to_owned()),
        };
        if !replay && !g.sources.contains_key(&name) && g.sources.len() >= MAX_SOURCES {
            return Err(CoreError::Refused(format!(
                "{MAX_SOURCES} sources are open, the limit: send as one of them (a named HTTP source stays open for good)"
            )));
        }
        let lateness = self.cfg.lateness_ms;
        // A new source starts at the sidecar watermark. Committed to `g` only once the accepted
        // lines are logged.
        let (mut watermark, mut max_ts) = g.sources.get(&name).map_or((g.watermark, None), |s| (s.watermark, s.max_ts));
        let mut accepted: Vec<&[u8]> = Vec::with_capacity(lines.len());
        let mut late_lines: Vec<&[u8]> = Vec::new();
        for l in lines {
            let Some(bytes) = l.bytes else {
                report.rejected.push(Rejected {
                    line: l.no,
                    reason: Reason::LineTooLong.name(),
                    detail: format!("{} bytes, the limit is {}", l.len, self.cfg.max_line),
                });
                continue;
            };
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match g.decoder.decode_line(bytes, l.no, 0) {
                Ok(None) => {}
                Ok(Some(d)) => {
                    let ts = d.event.ts.0;
                    if ts < watermark {
                        report.late.push(Late { line: l.no, ts, watermark });
                        late_lines.push(bytes);
                    } else {
                        max_ts = Some(max_ts.map_or(ts, |m| m.max(ts)));
                        watermark = watermark.max(ts.saturating_sub(lateness));
                        accepted.push(bytes);
                    }
                }
                Err(r) => report.rejected.push(Rejected { line: l.no, reason: r.reason.name(), detail: r.detail }),
            }
        }
        if !accepted.is_empty() {
            if !replay {
                if g.logged_source.as_deref() == Some(name.as_str()) {
                    self.log_append(g, &accepted)?;
                } else {
                    let tag = format!("#src {name}");
                    let mut records: Vec<&[u8]> = Vec::with_capacity(accepted.len() + 1);
                    records.push(tag.as_bytes());
                    records.extend_from_slice(&accepted);
                    self.log_append(g, &records)?;
                    g.logged_source = Some(name.clone());
                }
            }
            let src = g.sources.entry(name).or_insert(Src { watermark, max_ts, last_input: Instant::now() });
            (src.watermark, src.max_ts, src.last_input) = (watermark, max_ts, Instant::now());
            g.last_input = Instant::now();
            // One buffer per batch: the engine takes ownership of it.
            let mut bytes = Vec::with_capacity(accepted.iter().map(|a| a.len() + 1).sum());
            for a in &accepted {
                bytes.extend_from_slice(a);
                bytes.push(b'\n');
            }
            // The watermark these lines allow travels with them (one batch, one engine round).
            let next = g.next_watermark(0);
            g.source.push_ndjson_then_advance(bytes, next).map_err(|_| CoreError::Stopping)?;
            if let Some(w) = next {
                g.watermark = w;
            }
        }
        if !late_lines.is_empty() {
            if let Some(f) = g.dead.as_mut() {
                let mut out = Vec::new();
                for l in &late_lines {
                    out.extend_from_slice(l);
                    out.push(b'\n');
                }
                if let Err(e) = f.write_all(&out) {
                    tracing::warn!(error = %e, "could not write late events to the dead-letter file");
                }
            }
        }
        report.accepted = accepted.len() as u64;
        if !replay {
            self.metrics.count_ingest(&report);
        }
        Ok(report)
    }

    /// Appends to the ingest log; a failure is fatal (see [`Core::fail`]).
    fn log_append(&self, g: &mut Ingest, lines: &[&[u8]]) -> Result<(), CoreError> {
        g.log.append(lines).map(|_| ()).map_err(|e| {
            self.fail(format!("cannot append to the ingest log: {e}"));
            CoreError::Log(e)
        })
    }

    /// The ingest log or the journal failed (disk full, I/O error, a failed fsync): what the
    /// sidecar holds in memory may now be ahead of its files, so it must not go on. It refuses all
    /// input and the host process exits non-zero ([`crate::run`] watches [`Core::failure`]); a
    /// restart recovers from the files (the last checkpoint plus the ingest log after it).
    pub fn fail(&self, why: String) {
        tracing::error!(reason = %why, "fatal: stopping without a checkpoint");
        self.stopping.store(true, Ordering::SeqCst);
        self.failed.send_if_modified(|f| {
            let first = f.is_none();
            if first {
                *f = Some(why);
            }
            first
        });
        // A checkpoint waiting for the journal gives up (taking the lock first, so a checkpoint
        // between its check and its wait cannot miss this).
        drop(lock(&self.progress));
        self.progress_cv.notify_all();
    }

    /// Why the sidecar failed, if it did; watch it to learn when.
    pub fn failure(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.failed.subscribe()
    }

    /// Raises every open source, and the sidecar watermark, to `to` (logged, so a restart
    /// replays it).
    pub fn advance(&self, to: u64) -> Result<u64, CoreError> {
        let mut g = lock(&self.ingest);
        if self.stopping.load(Ordering::SeqCst) {
            return Err(CoreError::Stopping);
        }
        self.advance_locked(&mut g, to, None, false)?;
        Ok(g.watermark)
    }

    /// Raises the sources `only` (all open sources and the floor when `None`) to `to`.
    fn advance_locked(&self, g: &mut Ingest, to: u64, only: Option<&[String]>, replay: bool) -> Result<(), CoreError> {
        let moves = match only {
            Some(names) => names.iter().any(|n| g.sources.get(n).is_some_and(|s| s.watermark < to)),
            // Every open source is at or above the sidecar watermark.
            None => to > g.watermark,
        };
        if !moves {
            return Ok(());
        }
        if !replay {
            let rec = match only {
                Some(names) => format!("#advance {to} {}", names.join(" ")),
                None => format!("#advance {to}"),
            };
            self.log_append(g, &[rec.as_bytes()])?;
        }
        for (name, src) in g.sources.iter_mut() {
            if only.is_none_or(|o| o.contains(name)) {
                src.watermark = src.watermark.max(to);
            }
        }
        g.raise(if only.is_none() { to } else { 0 })
    }

    fn close_locked(&self, g: &mut Ingest, name: &str, replay: bool) -> Result<(), CoreError> {
        let Some(src) = g.sources.get(name) else { return Ok(()) };
        let last = src.watermark;
        if !replay {
            self.log_append(g, &[format!("#close {name}").as_bytes()])?;
        }
        g.sources.remove(name);
        g.last_input = Instant::now();
        if g.logged_source.as_deref() == Some(name) {
            g.logged_source = None;
        }
        // The last source to close leaves its watermark behind.
        g.raise(if g.sources.is_empty() { last } else { 0 })
    }

    /// Ends an open source (a connection's, or a named one on request): its watermark no longer
    /// holds the sidecar's back. Logged; returns whether it was open. Refused once stopping (a
    /// restart ends the connections' sources itself).
    pub fn end_source(&self, name: &str) -> Result<bool, CoreError> {
        let mut g = lock(&self.ingest);
        if self.stopping.load(Ordering::SeqCst) {
            return Err(CoreError::Stopping);
        }
        if !g.sources.contains_key(name) {
            return Ok(false);
        }
        self.close_locked(&mut g, name, false)?;
        Ok(true)
    }

    /// A name for a new TCP connection's source.
    pub fn connection_source(&self) -> String {
        format!("{CONNECTION_PREFIX}{}", self.connections.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Hot-swaps the rule pack (validated first; a bad pack changes nothing).
    pub fn swap_rules(&self, toml: &str) -> Result<vigil_engine::SwapReport, CoreError> {
        let mut g = lock(&self.ingest);
        if self.stopping.load(Ordering::SeqCst) {
            return Err(CoreError::Stopping);
        }
        self.swap_locked(&mut g, toml, None, false)
    }

    fn swap_locked(
        &self,
        g: &mut Ingest,
        toml: &str,
        at: Option<u64>,
        replay: bool,
    ) -> Result<vigil_engine::SwapReport, CoreError> {
        let pack = RulePack::from_toml(toml, &self.cfg.topo).map_err(|e| CoreError::Rules(e.to_string()))?;
        let engine = lock(&self.engine);
        let engine = engine.as_ref().ok_or(CoreError::Stopping)?;
        let report = match at {
            Some(at) => engine.swap_rules_at(&pack, at)?,
            None => engine.swap_rules(&pack)?,
        };
        if !replay {
            let rec = serde_json::json!({"at": report.at_ms, "pack": toml}).to_string();
            self.log_append(g, &[format!("#swap {rec}").as_bytes()])?;
        }
        g.pack = Some(toml.to_owned());
        Ok(report)
    }

    /// Live time: when no input came for `idle`, advance the watermark to `now − lateness`.
    pub fn tick(&self) -> Result<(), CoreError> {
        let Some(idle) = self.cfg.live_idle else { return Ok(()) };
        let mut g = lock(&self.ingest);
        let w = wall_ms().saturating_sub(self.cfg.lateness_ms);
        if g.sources.is_empty() {
            // No source open (none yet, or the last connection ended): time still passes.
            if g.last_input.elapsed() >= idle && w > g.watermark {
                self.advance_locked(&mut g, w, None, false)?;
            }
            return Ok(());
        }
        let idle: Vec<String> = g
            .sources
            .iter()
            .filter(|(_, s)| s.last_input.elapsed() >= idle && w > s.watermark)
            .map(|(n, _)| n.clone())
            .collect();
        if !idle.is_empty() {
            // One record for all of them.
            self.advance_locked(&mut g, w, Some(&idle), false)?;
        }
        Ok(())
    }

    /// Takes a checkpoint when the last one is older than the configured interval.
    pub fn maybe_checkpoint(&self) -> Result<(), CoreError> {
        if lock(&self.last_checkpoint).elapsed() >= self.cfg.checkpoint_every {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Takes a checkpoint now (see the module docs). Returns (ingest offset, journal seq).
    pub fn checkpoint(&self) -> Result<(u64, u64), CoreError> {
        let started = Instant::now();
        let mut g = lock(&self.ingest);
        if self.failed.borrow().is_some() {
            // Memory may be ahead of the files: never persist it.
            return Err(CoreError::Stopping);
        }
        let offset = g.log.next_seq();
        // Replay may start here: the next logged batch names its source (a needless `#src` is
        // harmless, a missing one is not, so this comes before anything that can fail).
        g.logged_source = None;
        let snap = {
            let engine = lock(&self.engine);
            engine.as_ref().ok_or(CoreError::Stopping)?.checkpoint()?
        };
        // Every alarm the checkpoint covers must be in the journal first.
        let want = snap.alarms_sent();
        let journal_seq = {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut p = lock(&self.progress);
            while p.received < want {
                if self.failed.borrow().is_some() {
                    return Err(CoreError::Stopping);
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(CoreError::Unavailable("the journal did not catch up with the checkpoint".into()));
                }
                p = self.progress_cv.wait_timeout(p, left).unwrap_or_else(|e| e.into_inner()).0;
            }
            // The journal seq when the journaler had received exactly the covered alarms. If that
            // fell out of the history, 0 is safe: recovery then re-reads the whole journal.
            p.history.iter().rev().find(|(n, _)| *n <= want).map_or(0, |h| h.1)
        };
        let journal_seq = if want == 0 { 0 } else { journal_seq };
        lock(&self.journal).log.sync()?;
        g.log.sync()?;
        let header = CheckpointHeader {
            format: 2,
            ingest_offset: offset,
            journal_seq,
            watermark: g.watermark,
            max_ts: g.sources.values().filter_map(|s| s.max_ts).max(),
            sources: g
                .sources
                .iter()
                .map(|(name, s)| SavedSource { name: name.clone(), watermark: s.watermark, max_ts: s.max_ts })
                .collect(),
            pack: g.pack.clone(),
            site: fingerprint(&self.cfg.site_text),
            created_ms: wall_ms(),
        };
        let body = snap.to_bytes().map_err(vigil_engine::EngineError::from)?;
        write_checkpoint(&self.cfg.data_dir, &header, &body)?;
        // The checkpoint is taken; deleting what it covers may fail and is retried next time.
        *lock(&self.last_checkpoint) = Instant::now();
        let deleted = g.log.truncate_before(offset).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not delete ingest-log segments the checkpoint covers");
            0
        });
        drop(g);
        if let Some(keep) = self.cfg.journal_keep_bytes {
            // Recovery reads the journal after `journal_seq`; older alarms only serve consoles.
            let mut j = lock(&self.journal);
            match j.log.prune_to(keep, journal_seq + 1) {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(segments = pruned, first_seq = j.log.first_seq(), "journal retention"),
                Err(e) => tracing::warn!(error = %e, "journal retention could not delete a segment"),
            }
            self.metrics.journal_first_seq.store(j.log.first_seq(), Ordering::Relaxed);
        }
        self.metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            ingest_offset = offset,
            journal_seq,
            bytes = body.len(),
            segments_deleted = deleted,
            ms = started.elapsed().as_millis() as u64,
            "checkpoint"
        );
        Ok((offset, journal_seq))
    }

    fn journal_loop(
        self: Arc<Self>,
        alarms: crossbeam_channel::Receiver<Alarm>,
        mut seen: HashMap<Identity, u64>,
        syslog: Option<crossbeam_channel::Sender<String>>,
    ) {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "vigil".into());
        let version = env!("CARGO_PKG_VERSION");
        let mut last_seq = lock(&self.journal).log.next_seq().saturating_sub(1);
        // Journal seqs of `seen`: alarms journaled before the restart, not yet raised again. A
        // checkpoint's journal seq must stay below them (recovery re-reads the journal after it),
        // even when the engine raises them again in another order than the first time.
        let mut unmatched: BTreeSet<u64> = seen.values().copied().collect();
        let covered_to = |last: u64, unmatched: &BTreeSet<u64>| unmatched.first().map_or(last, |s| last.min(s - 1));
        let mut max_alarm_ts = 0u64;
        let mut since_forget = 0u32;
        for mut alarm in alarms.iter() {
            let id = identity_of(&alarm);
            max_alarm_ts = max_alarm_ts.max(alarm.ts);
            // The engine emits an identity once per run; `seen` covers the run before a restart.
            let fresh = match seen.remove(&id) {
                Some(seq) => {
                    unmatched.remove(&seq);
                    false
                }
                None => true,
            };
            if fresh {
                let mut j = lock(&self.journal);
                let seq = j.log.next_seq();
                alarm.id = seq;
                let line = alarm.to_json();
                match j.log.append(&[line.as_bytes()]) {
                    Ok(_) => {
                        last_seq = seq;
                        j.recent.push_back((seq, Arc::from(line.as_str())));
                        if j.recent.len() > RECENT {
                            j.recent.pop_front();
                        }
                    }
                    Err(e) => {
                        // Never stream past a journal failure: exit, so a restart replays.
                        self.fail(format!("cannot append to the alarm journal: {e}"));
                        return;
                    }
                }
                drop(j);
                self.metrics.count_alarm(&alarm, seq);
                let _ = self.live.send(seq);
                if let Some(tx) = syslog.as_ref() {
                    let msg = cef::syslog_5424(&cef::cef(&alarm, version), alarm.ts, &host, alarm.priority);
                    if tx.try_send(msg).is_err() {
                        self.metrics.syslog_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            since_forget += 1;
            if !seen.is_empty() && since_forget >= 1_024 {
                since_forget = 0;
                // Like the engine, forget identities a day (event time) old: they cannot come
                // again, and must not hold checkpoints' journal seq back for ever.
                seen.retain(|id, seq| {
                    let keep = id.1.saturating_add(SEEN_MEMORY_MS) >= max_alarm_ts;
                    if !keep {
                        unmatched.remove(seq);
                    }
                    keep
                });
            }
            let mut p = lock(&self.progress);
            p.received += 1;
            let n = p.received;
            p.history.push_back((n, covered_to(last_seq, &unmatched)));
            if p.history.len() > 65_536 {
                p.history.pop_front();
            }
            drop(p);
            self.progress_cv.notify_all();
        }
    }

    /// Journaled alarms with seq > `after`, at most `limit`, in order, and the oldest seq the
    /// journal still holds (when it is above `after + 1`, retention deleted the ones between).
    pub fn alarms_after(&self, after: u64, limit: usize) -> Result<Page, CoreError> {
        let j = lock(&self.journal);
        let first = j.log.first_seq();
        if let Some(&(oldest_recent, _)) = j.recent.front() {
            if after + 1 >= oldest_recent {
                let alarms = j.recent.iter().filter(|(s, _)| *s > after && *s >= first).take(limit).cloned().collect();
                return Ok(Page { first, alarms });
            }
        }
        let mut alarms = Vec::new();
        j.log.read_from(after + 1, limit, |seq, line| {
            alarms.push((seq, Arc::from(String::from_utf8_lossy(line).as_ref())))
        })?;
        Ok(Page { first, alarms })
    }

    /// The oldest seq still in the journal (retention deletes older ones, see
    /// [`Config::journal_keep_bytes`]); `journal_seq() + 1` when it is empty.
    pub fn journal_first_seq(&self) -> u64 {
        lock(&self.journal).log.first_seq()
    }

    /// The last journaled seq.
    pub fn journal_seq(&self) -> u64 {
        lock(&self.journal).log.next_seq().saturating_sub(1)
    }

    /// (engine watermark, events processed, late in the engine, queue depth).
    pub fn engine_state(&self) -> (u64, u64, u64, usize) {
        let queued = lock(&self.ingest).source.queued();
        let engine = lock(&self.engine);
        match engine.as_ref() {
            Some(e) => {
                let p = e.processed();
                self.processed.store(p, Ordering::Relaxed);
                (e.watermark(), p, e.late(), queued)
            }
            None => (0, self.processed.load(Ordering::Relaxed), 0, queued),
        }
    }

    /// The open sources and their watermarks.
    pub fn sources(&self) -> Vec<(String, u64)> {
        lock(&self.ingest).sources.iter().map(|(n, s)| (n.clone(), s.watermark)).collect()
    }

    /// The sidecar watermark.
    pub fn watermark(&self) -> u64 {
        lock(&self.ingest).watermark
    }

    /// From now on every ingest, advance and swap is refused with [`CoreError::Stopping`].
    pub fn refuse_input(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// True once shutdown began.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Graceful stop: refuse new input, take a final checkpoint, stop the engine and the journaler.
    pub fn shutdown(&self) -> Result<(), CoreError> {
        let result = self.checkpoint();
        self.stop();
        result.map(|_| ())
    }

    /// Refuses new input, stops the engine without a checkpoint and lets the journaler write what
    /// the engine already sent (after [`Core::fail`], the files are the state to recover from).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let engine = lock(&self.engine).take();
        {
            // Close the source so the engine can finish.
            let mut g = lock(&self.ingest);
            let placeholder = match engine.as_ref() {
                Some(e) => e.source("closing"),
                None => return,
            };
            drop(std::mem::replace(&mut g.source, placeholder));
            g.dead = None;
        }
        // Drop (not finish) the engine: finishing would make end-of-input decisions that a
        // restart must still be able to make differently. The checkpoint holds the state.
        drop(engine);
        if let Some(h) = lock(&self.journaler).take() {
            let _ = h.join();
        }
    }
}

fn read_checkpoint(path: &Path, bytes: &[u8]) -> Result<(CheckpointHeader, Snapshot), CoreError> {
    let bad = |why: String| CoreError::Checkpoint { path: path.to_path_buf(), why };
    let nl = memchr::memchr(b'\n', bytes).ok_or_else(|| bad("no header line".into()))?;
    let header: CheckpointHeader = serde_json::from_slice(&bytes[..nl]).map_err(|e| bad(format!("bad header: {e}")))?;
    // 2 added sources (`#src`, `#close` in the ingest log): an older build must refuse it.
    if !(1..=2).contains(&header.format) {
        return Err(bad(format!("format {} (this build reads 1 and 2)", header.format)));
    }
    let snap = Snapshot::from_bytes(&bytes[nl + 1..]).map_err(|e| bad(e.to_string()))?;
    Ok((header, snap))
}

fn write_checkpoint(dir: &Path, header: &CheckpointHeader, body: &[u8]) -> Result<(), CoreError> {
    let tmp = dir.join("checkpoint.tmp");
    let path = dir.join(CHECKPOINT_FILE);
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut out = serde_json::to_vec(header).map_err(|e| CoreError::Rules(e.to_string()))?;
    out.push(b'\n');
    out.extend_from_slice(body);
    f.write_all(&out).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
