//! The engine: builder, worker loop, embedding API.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Concatenate, Input, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};
use timely::worker::Worker;
use timely::{CommunicationConfig, WorkerConfig};
use vigil_rules::{Alarm, Event, Keyspace, Lateness, RuleDef, RuleId, RulePack, Topology};

use crate::checkpoint::{self, CheckpointError, Quiesce, Snapshot, SnapshotData};
use crate::clock::IngestClock;
use crate::decode::{DEFAULT_MAX_LINE, Decoder, Reason, Rejection};
use crate::operators::{self, CardName, RuleOpState, RuleReport, SinkLive, SinkReport, Tick};
use crate::source::{Batch, Registry, Source, SourceShared};
use crate::stats::{LatencySummary, SourceRejection, Stats};
use crate::swap::{Hosted, SwapBoard, SwapReport};

/// Errors of the engine's life cycle.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration is not usable.
    #[error("invalid engine configuration: {0}")]
    Config(String),
    /// timely could not start (networking in cluster mode, ...).
    #[error("could not start the dataflow: {0}")]
    Start(String),
    /// A worker failed.
    #[error("a worker failed: {0}")]
    Worker(String),
    /// A rule-pack swap was refused.
    #[error("rule swap refused: {0}")]
    Swap(String),
    /// A checkpoint could not be taken or restored.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// A late event, as forwarded to the optional late output.
#[derive(Debug, Clone)]
pub struct LateEvent {
    /// The source it came from.
    pub source: Arc<str>,
    /// The event.
    pub event: Event,
    /// The source's watermark when it arrived.
    pub watermark: u64,
}

/// Multi-process (cluster) placement of this process.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// This process's index.
    pub process: usize,
    /// `host:port` of every process, in process order.
    pub addresses: Vec<String>,
}

/// Builds an [`Engine`]: validates everything up front, then starts the workers.
///
/// ```
/// use std::sync::Arc;
/// use vigil_engine::Engine;
/// use vigil_rules::{RulePack, Topology};
/// let site = Arc::new(Topology::from_toml("[site]\nid = \"hq\"\n[[area]]\nid = \"a\"\n[[area]]\nid = \"b\"\n\
///     [[door]]\nid = \"d\"\nfrom = \"a\"\nto = \"b\"\n").unwrap());
/// let engine = Engine::builder(site, RulePack::default_pack()).workers(1).build().unwrap();
/// let mut source = engine.source("doors");
/// source.push_ndjson(b"{\"ts\":1000,\"type\":\"door.forced\",\"door\":\"d\"}\n".to_vec()).unwrap();
/// drop(source);
/// let stats = engine.finish().unwrap();
/// assert_eq!(stats.alarms["forced_entry_unconfirmed"], 1); // a door without cameras fires at once
/// ```
#[derive(Debug, Clone)]
pub struct EngineBuilder {
    topo: Arc<Topology>,
    pack: RulePack,
    workers: usize,
    lateness: Lateness,
    queue_batches: usize,
    max_line: usize,
    cluster: Option<Cluster>,
    late_tx: Option<Sender<LateEvent>>,
    rejection_tx: Option<Sender<SourceRejection>>,
    rejection_samples: usize,
    max_epochs_in_flight: usize,
    live_idle: Option<Duration>,
    restore: Option<Snapshot>,
}

impl EngineBuilder {
    /// Starts from a checkpoint ([`Engine::checkpoint`]) instead of empty: same site, same rules
    /// and same worker count, checked at [`EngineBuilder::build`]. Sources start at the
    /// checkpoint's watermark.
    pub fn restore(mut self, snapshot: Snapshot) -> Self {
        self.restore = Some(snapshot);
        self
    }

    /// Live mode (DESIGN §4): a source that delivers nothing for `idle` advances its watermark
    /// with the wall clock (`now − lateness`), so absence alarms fire on a quiet site. Event time
    /// must then be wall-clock time. Off by default (replays run on event time alone).
    pub fn live(mut self, idle: Duration) -> Self {
        self.live_idle = Some(idle);
        self
    }

    /// Worker threads (in this process). Default 1. Size it to the cores the engine owns: timely
    /// workers wait for each other, and one that loses its core stalls the rest.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }
    /// Allowed lateness per source. Default 2 s.
    pub fn lateness(mut self, lateness: Lateness) -> Self {
        self.lateness = lateness;
        self
    }
    /// Batches each source may queue before pushes block. Default 64.
    pub fn queue_batches(mut self, n: usize) -> Self {
        self.queue_batches = n;
        self
    }
    /// Longest accepted NDJSON line in bytes. Default 1 MiB.
    pub fn max_line_bytes(mut self, n: usize) -> Self {
        self.max_line = n;
        self
    }
    /// Run as one process of a cluster.
    pub fn cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = Some(cluster);
        self
    }
    /// Forward late events here (best effort: when the channel is full the event is only counted).
    pub fn late_events(mut self, tx: Sender<LateEvent>) -> Self {
        self.late_tx = Some(tx);
        self
    }
    /// Forward every rejection here (best effort, like late events).
    pub fn rejections(mut self, tx: Sender<SourceRejection>) -> Self {
        self.rejection_tx = Some(tx);
        self
    }
    /// How many rejections [`Stats::rejection_samples`] keeps. Default 100.
    pub fn rejection_samples(mut self, n: usize) -> Self {
        self.rejection_samples = n;
        self
    }

    /// Validates the configuration and starts the workers.
    pub fn build(self) -> Result<Engine, EngineError> {
        if self.workers == 0 {
            return Err(EngineError::Config("workers must be at least 1".into()));
        }
        if self.queue_batches == 0 {
            return Err(EngineError::Config("queue_batches must be at least 1".into()));
        }
        if let Some(c) = &self.cluster {
            if c.process >= c.addresses.len() {
                return Err(EngineError::Config(format!(
                    "process index {} is out of range for {} addresses",
                    c.process,
                    c.addresses.len()
                )));
            }
        }
        let clock = IngestClock::new();
        let registry = Arc::new(Registry::new(self.workers, self.queue_batches, clock));
        let (alarm_tx, alarm_rx) = crossbeam_channel::unbounded();
        let (board, initial) = SwapBoard::new(&self.topo, &self.pack);
        let restore = match self.restore {
            None => None,
            Some(snap) => {
                if self.cluster.is_some() {
                    return Err(EngineError::Checkpoint(CheckpointError::Unavailable(
                        "restoring is not supported across processes".into(),
                    )));
                }
                if snap.data.workers != self.workers {
                    return Err(EngineError::Checkpoint(CheckpointError::Mismatch(format!(
                        "taken with {} workers, this engine has {}",
                        snap.data.workers, self.workers
                    ))));
                }
                let book = board.book.read().unwrap_or_else(|e| e.into_inner()).clone();
                let map = checkpoint::rule_map(&snap.data.rules, &book).map_err(EngineError::Checkpoint)?;
                registry.floor.store(snap.data.watermark, Ordering::SeqCst);
                board.state.lock().unwrap_or_else(|e| e.into_inner()).max_sent = snap.data.max_sent;
                Some(Arc::new((snap.data, map)))
            }
        };
        let board = Arc::new(board);
        let quiesce = Arc::new(Quiesce::new(self.workers));
        let communication = match &self.cluster {
            None if self.workers == 1 => CommunicationConfig::Thread,
            None => CommunicationConfig::Process(self.workers),
            Some(c) => CommunicationConfig::Cluster {
                threads: self.workers,
                process: c.process,
                addresses: c.addresses.clone(),
                report: false,
                zerocopy: false,
            },
        };
        let config = timely::Config { communication, worker: WorkerConfig::default() };
        let ctx = Arc::new(WorkerContext {
            topo: self.topo.clone(),
            board: board.clone(),
            initial,
            registry: registry.clone(),
            alarm_tx,
            lateness: self.lateness,
            max_line: self.max_line,
            late_tx: self.late_tx.clone(),
            rejection_tx: self.rejection_tx.clone(),
            rejection_samples: self.rejection_samples,
            max_epochs_in_flight: self.max_epochs_in_flight,
            clock,
            local_workers: self.workers,
            live_idle: self.live_idle,
            quiesce: quiesce.clone(),
            restore: restore.clone(),
            restored: Mutex::new((0, None)),
        });
        let started = Instant::now();
        let ctx_probe = ctx.clone();
        let guards = timely::execute(config, move |worker| run_worker(worker, &ctx)).map_err(EngineError::Start)?;
        if restore.is_some() {
            // Every worker restores its operators before its first step; wait for the verdict.
            loop {
                let (done, error) = ctx_probe.restored.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if let Some(e) = error {
                    registry.aborting.store(true, Ordering::SeqCst);
                    registry.wake_all();
                    let _ = guards.join();
                    return Err(EngineError::Checkpoint(CheckpointError::Mismatch(e)));
                }
                if done == self.workers {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(Engine {
            registry,
            alarms: alarm_rx,
            guards: Some(guards),
            board,
            topo: self.topo,
            clustered: self.cluster.is_some(),
            workers: self.workers,
            clock,
            started,
            quiesce,
        })
    }
}

/// A running engine. See the crate docs for the life cycle.
pub struct Engine {
    registry: Arc<Registry>,
    alarms: Receiver<Alarm>,
    guards: Option<timely::communication::WorkerGuards<WorkerReport>>,
    board: Arc<SwapBoard>,
    topo: Arc<Topology>,
    clustered: bool,
    workers: usize,
    clock: IngestClock,
    started: Instant,
    quiesce: Arc<Quiesce>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine").field("workers", &self.workers).finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder for `topo` and `pack`.
    pub fn builder(topo: Arc<Topology>, pack: RulePack) -> EngineBuilder {
        EngineBuilder {
            topo,
            pack,
            workers: 1,
            lateness: Lateness::default(),
            queue_batches: 64,
            max_line: DEFAULT_MAX_LINE,
            cluster: None,
            late_tx: None,
            rejection_tx: None,
            rejection_samples: 100,
            max_epochs_in_flight: 64,
            live_idle: None,
            restore: None,
        }
    }

    /// The engine's watermark now (event-time ms): every event below it is known.
    pub fn watermark(&self) -> u64 {
        self.registry.floor.load(Ordering::SeqCst)
    }

    /// Events accepted into the dataflow so far (all workers of this process; live counter).
    pub fn processed(&self) -> u64 {
        self.registry.processed.load(Ordering::Relaxed)
    }

    /// Late events so far (all workers of this process; live counter).
    pub fn late(&self) -> u64 {
        self.registry.late.load(Ordering::Relaxed)
    }

    /// Takes a checkpoint of the whole engine state (see the `checkpoint` module docs). The host
    /// must not push into any source while this runs (the sidecar holds its ingest lock); every
    /// batch pushed before is included. Typically a few milliseconds plus encoding time. Alarms
    /// the checkpoint covers have all been sent on [`Engine::alarms`] when it returns
    /// ([`Snapshot::alarms_sent`] of them in all). Not available in cluster mode.
    pub fn checkpoint(&self) -> Result<Snapshot, EngineError> {
        if self.clustered {
            return Err(EngineError::Checkpoint(CheckpointError::Unavailable(
                "checkpoints are not supported across processes".into(),
            )));
        }
        let registry = self.registry.clone();
        let (operators, sink) =
            self.quiesce.run(Duration::from_secs(30), move || registry.wake_all()).map_err(EngineError::Checkpoint)?;
        let book = self.board.book.read().unwrap_or_else(|e| e.into_inner());
        let max_sent = self.board.state.lock().unwrap_or_else(|e| e.into_inner()).max_sent;
        let watermark = operators.iter().map(|o| o.watermark).max().unwrap_or(0).max(self.watermark());
        Ok(Snapshot {
            data: SnapshotData {
                format: 1,
                workers: self.workers,
                watermark,
                max_sent,
                rules: checkpoint::book_rules(&book),
                operators,
                sink,
            },
        })
    }

    /// A new source, owned by the next worker in turn.
    pub fn source(&self, name: &str) -> Source {
        self.registry.register(name, None, false)
    }

    /// A new source owned by local worker `worker` (modulo the worker count).
    pub fn source_on(&self, name: &str, worker: usize) -> Source {
        self.registry.register(name, Some(worker), false)
    }

    /// A new source whose watermark the host drives alone, with [`Source::advance_to`]: the ts
    /// of its events never move it, and an event below it is late. For a host that merges
    /// several inputs with their own watermarks into one ordered stream (the sidecar).
    pub fn source_host_timed(&self, name: &str) -> Source {
        self.registry.register(name, None, true)
    }

    /// The alarm stream. Alarms arrive as soon as they are final; the channel is unbounded
    /// (alarms are rare next to events), so a host that does not read it only costs memory.
    pub fn alarms(&self) -> &Receiver<Alarm> {
        &self.alarms
    }

    /// Worker threads in this process.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The engine's ingest clock (what `latency_us` is measured on).
    pub fn clock(&self) -> IngestClock {
        self.clock
    }

    /// Replaces the rule pack without a restart and without losing events. The new pack applies to
    /// events with `ts ≥` the returned [`SwapReport::at_ms`] (the largest ts already accepted + 1
    /// ms, at least the current watermark); unchanged rules keep their state, changed and new
    /// rules start empty there, removed rules drop their state. Validate packs with
    /// [`RulePack::from_toml`] first: a pack that does not parse never reaches the engine.
    /// Not available in cluster mode.
    pub fn swap_rules(&self, pack: &RulePack) -> Result<SwapReport, EngineError> {
        self.swap(pack, None)
    }

    /// Like [`Engine::swap_rules`], from an event time the caller chooses: events with
    /// `ts < at_ms` are the old pack's, the others the new pack's. Refused when events at or after
    /// `at_ms` were already evaluated by the old pack.
    pub fn swap_rules_at(&self, pack: &RulePack, at_ms: u64) -> Result<SwapReport, EngineError> {
        self.swap(pack, Some(at_ms))
    }

    fn swap(&self, pack: &RulePack, at: Option<u64>) -> Result<SwapReport, EngineError> {
        if self.clustered {
            return Err(EngineError::Swap("hot swap is not supported across processes".into()));
        }
        self.board.swap(&self.topo, pack, &self.registry.floor, at).map_err(|latest| {
            EngineError::Swap(format!("events up to ts {latest} were already evaluated by the current pack"))
        })
    }

    /// Ends the run: waits until every source is dropped and drained, sets the watermark to the
    /// largest ts + 1 ms, lets the dataflow complete and returns the statistics. Alarms not yet
    /// received stay readable on [`Engine::alarms`] (clone the receiver before calling this).
    pub fn finish(mut self) -> Result<Stats, EngineError> {
        self.registry.finishing.store(true, Ordering::SeqCst);
        self.registry.wake_all();
        let guards = self.guards.take().ok_or_else(|| EngineError::Worker("already finished".into()))?;
        let mut stats = Stats { workers: self.workers, ..Stats::default() };
        let mut per_rule: std::collections::HashMap<RuleId, (u64, hdrhistogram::Histogram<u64>)> = Default::default();
        for r in guards.join() {
            let r = r.map_err(EngineError::Worker)?;
            stats.events += r.events;
            stats.late += r.late;
            for (reason, n) in r.rejected {
                *stats.rejected.entry(reason).or_default() += n;
            }
            stats.rejection_samples.extend(r.samples);
            stats.pending += r.rules.pending;
            stats.dropped += r.rules.dropped;
            for (rule, (n, h)) in r.sink.per_rule {
                let entry = per_rule.entry(rule).or_insert_with(|| (0, operators::new_histogram()));
                entry.0 += n;
                let _ = entry.1.add(&h);
            }
        }
        stats.rejection_samples.sort_by(|a, b| (&a.source, a.rejection.line).cmp(&(&b.source, b.rejection.line)));
        // Per rule id string: every rule of the current pack (zero included), plus rules swapped
        // out that alarmed before.
        let book = self.board.book.read().unwrap_or_else(|e| e.into_inner());
        let current = self.board.current_rules();
        for (_, def) in &current {
            stats.alarms.insert(def.id.clone(), 0);
        }
        let mut all = operators::new_histogram();
        let mut by_name: std::collections::BTreeMap<String, hdrhistogram::Histogram<u64>> = Default::default();
        for (rule, (n, h)) in per_rule {
            let name = book.get(rule).id.clone();
            *stats.alarms.entry(name.clone()).or_default() += n;
            let _ = all.add(&h);
            let _ = by_name.entry(name).or_insert_with(operators::new_histogram).add(&h);
        }
        for (name, h) in by_name {
            stats.latency.insert(name.clone(), LatencySummary::of(&h));
            stats.histograms.insert(name, h);
        }
        stats.latency_all = LatencySummary::of(&all);
        stats.wall = self.started.elapsed();
        Ok(stats)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.guards.is_some() {
            // Dropped without finish(): stop at once, even with sources still open (their later
            // pushes fail with `PushError::Closed`).
            self.registry.aborting.store(true, Ordering::SeqCst);
        }
        self.registry.finishing.store(true, Ordering::SeqCst);
        self.registry.wake_all();
    }
}

/// Everything a worker needs, shared by all workers of the process.
struct WorkerContext {
    topo: Arc<Topology>,
    board: Arc<SwapBoard>,
    initial: Vec<(RuleId, RuleDef)>,
    registry: Arc<Registry>,
    alarm_tx: Sender<Alarm>,
    lateness: Lateness,
    max_line: usize,
    late_tx: Option<Sender<LateEvent>>,
    rejection_tx: Option<Sender<SourceRejection>>,
    rejection_samples: usize,
    max_epochs_in_flight: usize,
    clock: IngestClock,
    local_workers: usize,
    live_idle: Option<Duration>,
    quiesce: Arc<Quiesce>,
    /// The checkpoint to start from, with its rule-id map.
    restore: Option<Arc<(SnapshotData, Vec<Option<RuleId>>)>>,
    /// Workers done restoring, and the first error.
    restored: Mutex<(usize, Option<String>)>,
}

/// What one worker returns.
#[derive(Debug, Default)]
struct WorkerReport {
    events: u64,
    late: u64,
    rejected: Vec<(Reason, u64)>,
    samples: Vec<SourceRejection>,
    rules: RuleReport,
    sink: SinkReport,
}

/// A source as its owning worker sees it.
struct OwnedSource {
    shared: Arc<SourceShared>,
    rx: Receiver<Batch>,
    /// The watermark the source was registered at (raised by idle ticks in live mode).
    start: u64,
    /// See [`crate::source`]'s `SourceShared::host_timed`.
    host_timed: bool,
    max_ts: Option<u64>,
    /// When the source last delivered a batch (live mode).
    last_batch: Instant,
}

impl OwnedSource {
    /// The source's watermark now: `max ts seen − lateness`, never below where it started.
    #[inline]
    fn watermark(&self, lateness: u64) -> u64 {
        if self.host_timed {
            return self.start;
        }
        self.max_ts.map_or(self.start, |m| m.saturating_sub(lateness).max(self.start))
    }
}

/// Per-worker ingest state: decode, late check, send.
struct Ingest<'a> {
    ctx: &'a WorkerContext,
    decoder: Decoder,
    events: u64,
    late: u64,
    rejected: [u64; Reason::ALL.len()],
    samples: Vec<SourceRejection>,
    /// Largest ts this worker accepted.
    max_ts: Option<u64>,
    /// Accepted events of the current batch, sent by [`Ingest::flush`].
    out: Vec<Event>,
    #[cfg(feature = "arrow")]
    arrow: crate::arrow_io::ArrowDecoder,
}

impl Ingest<'_> {
    fn reject(&mut self, source: &Arc<str>, r: Rejection) {
        let i = Reason::ALL.iter().position(|x| *x == r.reason).unwrap_or(0);
        self.rejected[i] += 1;
        let sample = || SourceRejection { source: source.to_string(), rejection: r.clone() };
        if let Some(tx) = &self.ctx.rejection_tx {
            let _ = tx.try_send(sample());
        }
        if self.samples.len() < self.ctx.rejection_samples {
            self.samples.push(sample());
        }
    }

    /// Accepts or sends to the late output one decoded event.
    #[inline]
    fn accept(&mut self, src: &mut OwnedSource, ev: Event, input_time: u64) {
        // Event by event, so the verdict does not depend on how lines were batched.
        let floor = src.watermark(self.ctx.lateness.ms).max(input_time);
        if ev.ts.0 < floor {
            self.late += 1;
            if let Some(tx) = &self.ctx.late_tx {
                let _ = tx.try_send(LateEvent { source: src.shared.name.clone(), event: ev, watermark: floor });
            }
            return;
        }
        self.events += 1;
        src.max_ts = Some(src.max_ts.map_or(ev.ts.0, |m| m.max(ev.ts.0)));
        self.out.push(ev);
    }

    /// Sends the batch's accepted events into the dataflow under the swap board's lock, recording
    /// the largest ts sent (what makes a hot swap's boundary exact, see `swap.rs`).
    fn flush(&mut self, input: &mut InputHandle<u64, timely::container::CapacityContainerBuilder<Vec<Event>>>) {
        if self.out.is_empty() {
            return;
        }
        let max = self.out.iter().map(|e| e.ts.0).max();
        let mut board = self.ctx.board.state.lock().unwrap_or_else(|e| e.into_inner());
        board.max_sent = board.max_sent.max(max);
        // Each event is consumed by every keyspace's router and by the drain.
        self.ctx.quiesce.sent(self.out.len() * EVENT_CONSUMERS);
        for ev in self.out.drain(..) {
            input.send(ev);
        }
    }
}

/// Operators that consume every event sent into the dataflow (the routers and the drain).
const EVENT_CONSUMERS: usize = Keyspace::ALL.len() + 1;

/// Where a worker stands in a checkpoint round (see `checkpoint.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Frozen,
    CaughtUp,
    Captured,
}

fn run_worker(worker: &mut Worker, ctx: &WorkerContext) -> WorkerReport {
    let index = worker.index();
    let local = index % ctx.local_workers;
    let _ = ctx.registry.threads[local].set(std::thread::current());

    let mut events_in: InputHandle<u64, _> = InputHandle::new();
    let mut ticks_in: InputHandle<u64, _> = InputHandle::new();
    let mut names_in: InputHandle<u64, _> = InputHandle::new();
    let probe = ProbeHandle::new();
    let rule_report = Rc::new(RefCell::new(RuleReport::default()));
    let sink_report = Rc::new(RefCell::new(SinkReport::default()));

    // Detectors by keyspace. Every keyspace gets its operators, so a swap can start using one.
    let mut by_space: Vec<(Keyspace, Vec<Hosted>)> = Keyspace::ALL.iter().map(|s| (*s, Vec::new())).collect();
    for (space, rules, det) in RulePack::detectors(&ctx.topo, &ctx.initial) {
        if let Some((_, v)) = by_space.iter_mut().find(|(s, _)| *s == space) {
            v.push(Hosted::new(rules, det, 0));
        }
    }

    let states: Vec<(Keyspace, Rc<RefCell<RuleOpState>>)> =
        by_space.into_iter().map(|(space, hosted)| (space, Rc::new(RefCell::new(RuleOpState::new(hosted))))).collect();
    let sink_state = Rc::new(RefCell::new(SinkLive::default()));
    if let Some(restore) = &ctx.restore {
        let (snap, map) = &**restore;
        let mut result = Ok(());
        for (space, state) in &states {
            if let Some(saved) = snap.operators.iter().find(|o| o.worker == index && o.space == *space) {
                result = result.and_then(|()| {
                    state
                        .borrow_mut()
                        .restore(saved, map, ctx.topo.device_order(), 0)
                        .map_err(|e| format!("worker {index}, {} keyspace: {e}", space.name()))
                });
            }
        }
        if index == 0 {
            sink_state.borrow_mut().restore(&snap.sink, map);
        }
        let mut restored = ctx.restored.lock().unwrap_or_else(|e| e.into_inner());
        restored.0 += 1;
        if let Err(e) = result {
            restored.1.get_or_insert(e);
        }
    }

    worker.dataflow::<u64, _, _>(|scope| {
        let events = scope.input_from(&mut events_in);
        let ticks = scope.input_from(&mut ticks_in).broadcast();
        // Through a local operator before the exchange to the sink: an input handle's `flush`
        // leaves exchanged records buffered until its epoch closes, an operator's output does not
        // (a checkpoint freezes the epoch and needs every name delivered).
        let names: timely::dataflow::StreamVec<'_, u64, CardName> =
            scope.input_from(&mut names_in).unary(timely::dataflow::channels::pact::Pipeline, "Names", |_, _| {
                |input, output| {
                    input.for_each_stamp(|cap, data| {
                        let mut session = output.session(&cap);
                        for batch in data {
                            let batch: &mut Vec<CardName> = batch;
                            session.give_iterator(batch.drain(..));
                        }
                    })
                }
            });
        let mut alarm_streams = Vec::new();
        for (space, state) in &states {
            let keyed =
                operators::route(events.clone(), ctx.topo.clone(), *space, ctx.board.clone(), ctx.quiesce.clone());
            alarm_streams.push(operators::rules(
                keyed,
                ticks.clone(),
                ctx.topo.clone(),
                *space,
                state.clone(),
                ctx.board.clone(),
                ctx.quiesce.clone(),
                rule_report.clone(),
            ));
        }
        // Keep the inputs consumed even with an empty pack.
        let quiesce = ctx.quiesce.clone();
        events.sink(timely::dataflow::channels::pact::Pipeline, "Drain", move |(input, _)| {
            input.for_each(|_, data| quiesce.consumed(data.len()))
        });
        let alarms = scope.concatenate(alarm_streams);
        operators::sink(
            alarms,
            names,
            ctx.topo.clone(),
            ctx.board.clone(),
            ctx.alarm_tx.clone(),
            sink_state.clone(),
            ctx.quiesce.clone(),
            sink_report.clone(),
            ctx.clock,
        )
        .probe_with(&probe);
    });
    if let Some(restore) = &ctx.restore {
        let w = restore.0.watermark;
        events_in.advance_to(w);
        ticks_in.advance_to(w);
        names_in.advance_to(w);
    }
    let mut phase = Phase::Running;
    // Checkpoint rounds this worker has done (the host may ask before the worker first runs).
    let mut handled = 0u64;
    let (mut reported_events, mut reported_late) = (0u64, 0u64);

    let mut ingest = Ingest {
        ctx,
        decoder: Decoder::new(ctx.topo.clone(), ctx.max_line),
        events: 0,
        late: 0,
        rejected: [0; Reason::ALL.len()],
        samples: Vec::new(),
        max_ts: None,
        out: Vec::with_capacity(4_096),
        #[cfg(feature = "arrow")]
        arrow: crate::arrow_io::ArrowDecoder::new(),
    };
    // A restored engine ends (finish) at the largest ts it ever saw + 1 ms, like the original would.
    ingest.max_ts = ctx.restore.as_ref().and_then(|r| r.0.max_sent);
    let mut owned: Vec<OwnedSource> = Vec::new();

    let mut seen_version = u64::MAX;
    let mut in_flight: VecDeque<u64> = VecDeque::new();
    let lateness = ctx.lateness.ms;
    // Per source per round, batches until about this many events: every round ends by advancing
    // the watermark, and detectors buffer what lies above it (8 batches of 64 Ki Arrow rows per
    // round let the frontier lag ~500 k events and overflowed per-key caps), while one tiny batch
    // per round (open loop at 1 M events/s sends ~100 events per batch) drowns in per-round cost.
    const EVENTS_PER_ROUND: u64 = 4_096;

    loop {
        if ctx.registry.aborting.load(Ordering::SeqCst) {
            owned.clear();
            break;
        }
        // A checkpoint round: drain, freeze, catch up, capture, thaw (see checkpoint.rs).
        let request = ctx.quiesce.request.load(Ordering::SeqCst);
        if phase != Phase::Running {
            checkpoint_step(ctx, &mut phase, &mut handled, local, index, &probe, &states, &sink_state);
            worker.step_or_park(Some(Duration::from_millis(1)));
            continue;
        }

        // New sources?
        let version = ctx.registry.version.load(Ordering::SeqCst);
        if version != seen_version {
            seen_version = version;
            let list = ctx.registry.sources.read().unwrap_or_else(|e| e.into_inner()).clone();
            for s in &list {
                if s.owner == local && !owned.iter().any(|o| Arc::ptr_eq(&o.shared, s)) {
                    let rx = s.rx.lock().ok().and_then(|mut g| g.take());
                    if let Some(rx) = rx {
                        let start = s.watermark.load(Ordering::SeqCst);
                        owned.push(OwnedSource {
                            shared: s.clone(),
                            rx,
                            start,
                            host_timed: s.host_timed,
                            max_ts: None,
                            last_batch: Instant::now(),
                        });
                    }
                }
            }
        }

        // Ingest a bounded amount from each owned source.
        let mut worked = false;
        let input_time = *events_in.time();
        for src in owned.iter_mut() {
            let round_start = ingest.events + ingest.late;
            while ingest.events + ingest.late - round_start < EVENTS_PER_ROUND {
                match src.rx.try_recv() {
                    Ok(batch) => {
                        worked = true;
                        src.last_batch = Instant::now();
                        let ingest_ns = ingest_batch(&mut ingest, src, batch, input_time, &mut names_in);
                        ingest.flush(&mut events_in);
                        let w = src.watermark(lateness);
                        if w > src.shared.watermark.load(Ordering::Relaxed) {
                            src.shared.watermark_ingest.store(ingest_ns, Ordering::Relaxed);
                            src.shared.watermark.fetch_max(w, Ordering::SeqCst);
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        src.shared.drained.store(true, Ordering::SeqCst);
                        break;
                    }
                }
            }
        }
        // Live mode: a source idle for `idle` advances its watermark with the wall clock, so
        // absence decisions (held-open doors, silent devices) become final on a quiet site. The
        // idle tick is the input that made them final, for latency.
        if let Some(idle) = ctx.live_idle {
            let wall_ms =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            let w = wall_ms.saturating_sub(lateness);
            for src in owned.iter_mut() {
                // A host-timed source's host keeps the time (see `Engine::source_host_timed`).
                if !src.host_timed && src.last_batch.elapsed() >= idle && w > src.watermark(lateness) {
                    src.start = w;
                    src.shared.watermark_ingest.store(ctx.clock.now_ns(), Ordering::Relaxed);
                    src.shared.watermark.fetch_max(w, Ordering::SeqCst);
                }
            }
        }
        for src in &owned {
            if let Some(m) = src.max_ts {
                ingest.max_ts = Some(ingest.max_ts.map_or(m, |x| x.max(m)));
            }
        }
        if owned.iter().any(|s| s.shared.drained.load(Ordering::SeqCst)) {
            // Forget drained sources everywhere (a sidecar opens one per connection).
            let mut list = ctx.registry.sources.write().unwrap_or_else(|e| e.into_inner());
            list.retain(|x| {
                !owned.iter().any(|o| Arc::ptr_eq(&o.shared, x) && o.shared.drained.load(Ordering::SeqCst))
            });
            drop(list);
            ctx.registry.version.fetch_add(1, Ordering::SeqCst);
            owned.retain(|s| !s.shared.drained.load(Ordering::SeqCst));
        }

        // The engine's watermark: the minimum over the open sources of this process. Computed
        // under the registry's read lock, so a source registered meanwhile is either in this
        // minimum or starts at a floor at least this high (registration holds the write lock).
        let (binding, open) = {
            let list = ctx.registry.sources.read().unwrap_or_else(|e| e.into_inner());
            let mut best: Option<(u64, u64)> = None;
            let mut open = 0usize;
            for s in list.iter().filter(|s| !s.drained.load(Ordering::SeqCst)) {
                open += 1;
                // One read of each watermark: re-reading the minimum's could see it raised.
                let w = s.watermark.load(Ordering::SeqCst);
                if best.is_none_or(|(b, _)| w < b) {
                    best = Some((w, s.watermark_ingest.load(Ordering::SeqCst)));
                }
            }
            if let Some((w, _)) = best {
                ctx.registry.floor.fetch_max(w, Ordering::SeqCst);
            }
            (best, open)
        };
        if let Some((w, ingest_ns)) = binding {
            if w > *events_in.time() {
                // Under the swap board's lock, like `flush`: a swap reads the watermark under it,
                // so its boundary is never below a watermark the operators may already have seen.
                let _board = ctx.board.state.lock().unwrap_or_else(|e| e.into_inner());
                ctx.registry.floor.fetch_max(w, Ordering::SeqCst);
                ticks_in.send(Tick { worker: index as u32, to: w, ingest_ns, last: false });
                events_in.advance_to(w);
                ticks_in.advance_to(w);
                names_in.advance_to(w);
                in_flight.push_back(w);
            }
        }
        ctx.registry.processed.fetch_add(ingest.events - reported_events, Ordering::Relaxed);
        ctx.registry.late.fetch_add(ingest.late - reported_late, Ordering::Relaxed);
        (reported_events, reported_late) = (ingest.events, ingest.late);
        // `finish()` consumed the engine, so no source can be registered after this.
        if open == 0 && ctx.registry.finishing.load(Ordering::SeqCst) {
            break;
        }
        // Asked for a checkpoint and nothing left queued: flush what the inputs buffer and freeze.
        if request > handled && owned.iter().all(|s| s.rx.is_empty()) {
            events_in.flush();
            names_in.flush();
            ticks_in.flush();
            let mut round = ctx.quiesce.round.lock().unwrap_or_else(|e| e.into_inner());
            if round.generation == request && !round.complete {
                round.frozen[local] = Some(*events_in.time());
                phase = Phase::Frozen;
            } else {
                handled = request;
            }
        }

        // Bound the epochs in flight, so one fast worker cannot run arbitrarily far ahead.
        while in_flight.len() > ctx.max_epochs_in_flight {
            if let Some(&t) = in_flight.front() {
                if probe.less_than(&t) {
                    worker.step();
                    continue;
                }
            }
            in_flight.pop_front();
        }
        if worked {
            worker.step();
        } else {
            worker.step_or_park(Some(Duration::from_millis(1)));
        }
    }

    // End of input: this worker's largest ts + 1 ms is its final watermark.
    let end = ingest.max_ts.map_or(*events_in.time(), |m| m + 1).max(*events_in.time());
    ticks_in.send(Tick { worker: index as u32, to: end, ingest_ns: ctx.clock.now_ns(), last: true });
    drop(events_in);
    drop(ticks_in);
    drop(names_in);
    while !probe.done() {
        worker.step();
    }

    let rules = std::mem::take(&mut *rule_report.borrow_mut());
    let sink = std::mem::take(&mut *sink_report.borrow_mut());
    WorkerReport {
        events: ingest.events,
        late: ingest.late,
        rejected: Reason::ALL.iter().copied().zip(ingest.rejected).filter(|(_, n)| *n > 0).collect(),
        samples: ingest.samples,
        rules,
        sink,
    }
}

/// Decodes one batch into the inputs; returns its ingest instant.
fn ingest_batch(
    ingest: &mut Ingest<'_>,
    src: &mut OwnedSource,
    batch: Batch,
    input_time: u64,
    names_in: &mut InputHandle<u64, timely::container::CapacityContainerBuilder<Vec<CardName>>>,
) -> u64 {
    let name = src.shared.name.clone();
    match batch {
        Batch::Ndjson { bytes, first_line, ingest_ns, advance } => {
            let mut line_no = first_line;
            let mut start = 0;
            while start < bytes.len() {
                let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
                match ingest.decoder.decode_line(&bytes[start..end], line_no, ingest_ns) {
                    Ok(Some(d)) => {
                        if let Some(card) = d.new_card {
                            ingest.ctx.quiesce.sent(1);
                            names_in.send(CardName { key: d.event.card.0, name: card });
                        }
                        ingest.accept(src, d.event, input_time);
                    }
                    Ok(None) => {}
                    Err(r) => ingest.reject(&name, r),
                }
                start = end + 1;
                line_no += 1;
            }
            if let Some(to) = advance {
                src.start = src.start.max(to);
            }
            ingest_ns
        }
        Batch::Events(events) => {
            let ns = events.first().map_or(0, |e| e.ingest_ns);
            let devices = ingest.ctx.topo.device_count();
            for (i, ev) in events.into_iter().enumerate() {
                // Events built by the host: check what decoding would have guaranteed.
                if ev.device.index() >= devices || ev.ts.0 > i64::MAX as u64 {
                    let detail = format!(
                        "event {i} of a pushed batch has device index {} or ts {} out of range",
                        ev.device.0, ev.ts.0
                    );
                    ingest.reject(&name, Rejection { line: i as u64 + 1, reason: Reason::InvalidField, detail });
                    continue;
                }
                ingest.accept(src, ev, input_time);
            }
            ns
        }
        #[cfg(feature = "arrow")]
        Batch::Arrow { batch, first_row, ingest_ns } => {
            let topo = ingest.ctx.topo.clone();
            let mut decoded = Vec::with_capacity(batch.num_rows());
            let mut names = Vec::new();
            let decoder = &mut ingest.decoder;
            let result = ingest.arrow.decode(&topo, &batch, first_row, ingest_ns, &mut decoded, &mut |key, card| {
                if decoder.note_card(key) {
                    names.push(CardName { key: key.0, name: card.to_owned() });
                }
            });
            ingest.ctx.quiesce.sent(names.len());
            for n in names {
                names_in.send(n);
            }
            for r in result {
                ingest.reject(&name, r);
            }
            for ev in decoded {
                ingest.accept(src, ev, input_time);
            }
            ingest_ns
        }
        Batch::Rejected { line, reason, detail } => {
            ingest.reject(&name, Rejection { line, reason, detail });
            0
        }
        Batch::Advance { to, ingest_ns } => {
            src.start = src.start.max(to);
            ingest_ns
        }
    }
}

/// One step of a checkpoint round for a worker that has frozen (see `checkpoint.rs`).
#[allow(clippy::too_many_arguments)]
fn checkpoint_step(
    ctx: &WorkerContext,
    phase: &mut Phase,
    handled: &mut u64,
    local: usize,
    index: usize,
    probe: &ProbeHandle<u64>,
    states: &[(Keyspace, Rc<RefCell<RuleOpState>>)],
    sink: &Rc<RefCell<SinkLive>>,
) {
    let mut round = ctx.quiesce.round.lock().unwrap_or_else(|e| e.into_inner());
    if round.complete {
        // Done, or abandoned by the host: thaw.
        *handled = round.generation;
        *phase = Phase::Running;
        return;
    }
    if round.frozen[local].is_none() {
        // The host abandoned our round and started another: join it from the start.
        *phase = Phase::Running;
        return;
    }
    match *phase {
        Phase::Running => {}
        Phase::Frozen => {
            if round.frozen.iter().all(Option::is_some) {
                let min = round.frozen.iter().flatten().copied().min().unwrap_or(0);
                if !probe.less_than(&min) {
                    round.caught_up[local] = true;
                    *phase = Phase::CaughtUp;
                }
            }
        }
        Phase::CaughtUp => {
            if round.caught_up.iter().all(|c| *c) && ctx.quiesce.in_flight.load(Ordering::SeqCst) == 0 {
                for (space, state) in states {
                    match state.borrow().capture(index, *space) {
                        Ok(part) => round.operators.push(part),
                        Err(e) => {
                            round.error.get_or_insert(e);
                        }
                    }
                }
                if index == 0 {
                    round.sink = Some(sink.borrow().capture());
                }
                round.captured += 1;
                if round.captured == round.frozen.len() {
                    round.complete = true;
                    ctx.quiesce.done.notify_all();
                }
                *phase = Phase::Captured;
            }
        }
        Phase::Captured => {}
    }
}
