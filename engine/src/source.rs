//! Sources: where events enter the engine.
//!
//! A [`Source`] is one ordered feed (a file, a connection, a device gateway). Each source has its
//! own watermark `W = max ts seen − allowed lateness`; an event below its source's watermark on
//! arrival is late. Each source is owned by one worker, which decodes its batches; the engine's
//! watermark is the minimum over all open sources.
//!
//! Backpressure: a source's queue holds a bounded number of batches. [`Source::push_ndjson`]
//! blocks while it is full; [`Source::try_push_ndjson`] hands the batch back instead
//! ([`TryPushError::Full`]). Nothing is queued without bound.
//!
//! Shutdown: dropping (or [`Source::close`]-ing) a source ends it once its queued batches are
//! processed; its watermark then stops holding the engine back.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::Thread;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use vigil_rules::Event;

use crate::clock::IngestClock;
use crate::decode::Reason;

/// The largest Arrow batch queued as one unit (see [`Source::push_arrow_at`]).
pub const MAX_ARROW_ROWS: usize = 8_192;

/// A batch on its way to the owning worker.
pub(crate) enum Batch {
    /// Whole NDJSON lines; `first_line` numbers the first. Then, if `advance`, raise the
    /// source's watermark to it (in the same round as the lines, see [`Source::push_ndjson_then_advance`]).
    Ndjson { bytes: Vec<u8>, first_line: u64, ingest_ns: u64, advance: Option<u64> },
    /// Already decoded events (their `ingest_ns` set at push).
    Events(Vec<Event>),
    /// An Arrow record batch; `first_row` numbers its first row (1-based).
    #[cfg(feature = "arrow")]
    Arrow { batch: arrow_array::RecordBatch, first_row: u64, ingest_ns: u64 },
    /// A line the pusher already rejected (too long to even buffer).
    Rejected { line: u64, reason: Reason, detail: String },
    /// Raise the source's watermark to `to` (an idle tick the host drives itself).
    Advance { to: u64, ingest_ns: u64 },
}

/// What the workers know of a source.
#[derive(Debug)]
pub(crate) struct SourceShared {
    pub name: Arc<str>,
    /// Local index of the owning worker.
    pub owner: usize,
    /// `max ts − lateness`, or the registration floor before any event.
    pub watermark: AtomicU64,
    /// Ingest instant of the batch that last raised the watermark.
    pub watermark_ingest: AtomicU64,
    /// Set by the owner once the queue is disconnected and empty.
    pub drained: AtomicBool,
    /// The watermark moves only by [`Source::advance_to`], never by the events' ts (the host
    /// keeps its own watermarks, see [`crate::Engine::source_host_timed`]).
    pub host_timed: bool,
    /// Taken by the owner on first sight.
    pub rx: Mutex<Option<Receiver<Batch>>>,
}

/// The per-process table of sources, shared by the host and the workers.
#[derive(Debug)]
pub(crate) struct Registry {
    pub sources: RwLock<Vec<Arc<SourceShared>>>,
    /// Bumped on every registration, so workers refresh their snapshot.
    pub version: AtomicU64,
    /// The highest input time any worker advanced to: new sources start there.
    pub floor: AtomicU64,
    /// Set by `finish()`: no more sources will come.
    pub finishing: AtomicBool,
    /// Set when the engine is dropped without `finish()`: workers stop at once.
    pub aborting: AtomicBool,
    /// Events accepted into the dataflow so far, over all workers (live counter).
    pub processed: AtomicU64,
    /// Late events so far, over all workers (live counter).
    pub late: AtomicU64,
    next_owner: AtomicUsize,
    workers: usize,
    /// Worker threads, to unpark them when a batch arrives (set once by each worker).
    pub threads: Vec<std::sync::OnceLock<Thread>>,
    queue_batches: usize,
    clock: IngestClock,
}

impl Registry {
    pub fn new(workers: usize, queue_batches: usize, clock: IngestClock) -> Registry {
        Registry {
            sources: RwLock::new(Vec::new()),
            version: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            finishing: AtomicBool::new(false),
            aborting: AtomicBool::new(false),
            processed: AtomicU64::new(0),
            late: AtomicU64::new(0),
            next_owner: AtomicUsize::new(0),
            workers,
            threads: (0..workers).map(|_| std::sync::OnceLock::new()).collect(),
            queue_batches,
            clock,
        }
    }

    /// Registers a source owned by `owner` (round-robin when `None`).
    pub fn register(self: &Arc<Self>, name: &str, owner: Option<usize>, host_timed: bool) -> Source {
        let owner = owner.unwrap_or_else(|| self.next_owner.fetch_add(1, Ordering::Relaxed)) % self.workers;
        let (tx, rx) = crossbeam_channel::bounded(self.queue_batches);
        // Under the write lock: workers compute the minimum (and raise `floor`) under the read
        // lock, so this source starts at or above any watermark a worker has advanced to.
        let mut list = self.sources.write().unwrap_or_else(|e| e.into_inner());
        let shared = Arc::new(SourceShared {
            name: name.into(),
            owner,
            watermark: AtomicU64::new(self.floor.load(Ordering::SeqCst)),
            watermark_ingest: AtomicU64::new(self.clock.now_ns()),
            drained: AtomicBool::new(false),
            host_timed,
            rx: Mutex::new(Some(rx)),
        });
        list.push(shared.clone());
        drop(list);
        self.version.fetch_add(1, Ordering::SeqCst);
        self.wake(owner);
        Source { shared, tx: Some(tx), registry: self.clone(), next_line: 1 }
    }

    pub fn wake(&self, worker: usize) {
        if let Some(t) = self.threads.get(worker).and_then(|t| t.get()) {
            t.unpark();
        }
    }

    pub fn wake_all(&self) {
        self.threads.iter().filter_map(|t| t.get()).for_each(Thread::unpark);
    }
}

/// Errors of a blocking push.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The engine has stopped (finished or failed).
    #[error("the engine has stopped; the batch was not accepted")]
    Closed,
}

/// Errors of a non-blocking push; both hand the payload back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TryPushError<T> {
    /// The source's queue is full: the engine is behind. Retry later.
    #[error("the source queue is full")]
    Full(T),
    /// The engine has stopped.
    #[error("the engine has stopped")]
    Closed(T),
}

/// A feed of events into a running engine. See the module docs.
pub struct Source {
    shared: Arc<SourceShared>,
    tx: Option<Sender<Batch>>,
    registry: Arc<Registry>,
    next_line: u64,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source").field("name", &self.shared.name).field("owner", &self.shared.owner).finish()
    }
}

impl Source {
    /// The source's name (used in rejection reports).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The source's current watermark (ms).
    pub fn watermark(&self) -> u64 {
        self.shared.watermark.load(Ordering::Relaxed)
    }

    fn send(&self, batch: Batch) -> Result<(), PushError> {
        let tx = self.tx.as_ref().ok_or(PushError::Closed)?;
        let r = tx.send(batch).map_err(|_| PushError::Closed);
        self.registry.wake(self.shared.owner);
        r
    }

    fn try_send(&self, batch: Batch) -> Result<(), TrySendError<Batch>> {
        let Some(tx) = self.tx.as_ref() else {
            return Err(TrySendError::Disconnected(batch));
        };
        let r = tx.try_send(batch);
        if r.is_ok() {
            self.registry.wake(self.shared.owner);
        }
        r
    }

    /// Pushes whole NDJSON lines (a trailing partial line is treated as a line). Lines are numbered
    /// on from the previous push. Blocks while the queue is full.
    pub fn push_ndjson(&mut self, bytes: Vec<u8>) -> Result<(), PushError> {
        let first_line = self.next_line;
        self.next_line += line_count(&bytes);
        self.push_ndjson_at(bytes, first_line)
    }

    /// Like [`Source::push_ndjson`], numbering the first line `first_line` (for readers that split
    /// one file over several sources).
    pub fn push_ndjson_at(&mut self, bytes: Vec<u8>, first_line: u64) -> Result<(), PushError> {
        let ingest_ns = self.registry.clock.now_ns();
        self.send(Batch::Ndjson { bytes, first_line, ingest_ns, advance: None })
    }

    /// [`Source::push_ndjson`], then [`Source::advance_to`] `to` (when `Some`) as one batch: the
    /// lines are judged against the watermark before the advance, and the advance takes effect
    /// with them rather than a round later (a host-timed source advancing after every batch).
    pub fn push_ndjson_then_advance(&mut self, bytes: Vec<u8>, to: Option<u64>) -> Result<(), PushError> {
        let first_line = self.next_line;
        self.next_line += line_count(&bytes);
        let ingest_ns = self.registry.clock.now_ns();
        self.send(Batch::Ndjson { bytes, first_line, ingest_ns, advance: to })
    }

    /// Like [`Source::push_ndjson_at`], with the batch's ingest instant given by the caller on the
    /// engine's clock ([`crate::Engine::clock`]). An open-loop load generator stamps each batch
    /// with its *scheduled* send time, so latency includes any time the batch waited to be
    /// accepted: a stalled engine cannot hide its delay (no coordinated omission).
    pub fn push_ndjson_stamped(&mut self, bytes: Vec<u8>, first_line: u64, ingest_ns: u64) -> Result<(), PushError> {
        self.send(Batch::Ndjson { bytes, first_line, ingest_ns, advance: None })
    }

    /// Non-blocking [`Source::push_ndjson`]: hands the bytes back when the queue is full.
    pub fn try_push_ndjson(&mut self, bytes: Vec<u8>) -> Result<(), TryPushError<Vec<u8>>> {
        let first_line = self.next_line;
        let lines = line_count(&bytes);
        let ingest_ns = self.registry.clock.now_ns();
        match self.try_send(Batch::Ndjson { bytes, first_line, ingest_ns, advance: None }) {
            Ok(()) => {
                self.next_line += lines;
                Ok(())
            }
            Err(TrySendError::Full(Batch::Ndjson { bytes, .. })) => Err(TryPushError::Full(bytes)),
            Err(TrySendError::Disconnected(Batch::Ndjson { bytes, .. })) => Err(TryPushError::Closed(bytes)),
            Err(_) => Err(TryPushError::Closed(Vec::new())),
        }
    }

    /// Pushes decoded events (ids interned against the engine's topology). Their `ingest_ns` is
    /// set to now. Blocks while the queue is full.
    pub fn push_events(&mut self, mut events: Vec<Event>) -> Result<(), PushError> {
        let now = self.registry.clock.now_ns();
        for e in &mut events {
            e.ingest_ns = now;
        }
        self.send(Batch::Events(events))
    }

    /// Pushes an Arrow record batch with the columns of DESIGN §2.3; rows are numbered on from
    /// the previous push. Blocks while the queue is full.
    #[cfg(feature = "arrow")]
    pub fn push_arrow(&mut self, batch: arrow_array::RecordBatch) -> Result<(), PushError> {
        let first_row = self.next_line;
        self.next_line += batch.num_rows() as u64;
        self.push_arrow_at(batch, first_row)
    }

    /// Like [`Source::push_arrow`], numbering the first row `first_row`.
    ///
    /// Batches larger than [`MAX_ARROW_ROWS`] are queued as zero-copy slices: the watermark
    /// advances once per queued batch, and detectors hold everything above it, so a 64 Ki-row
    /// batch at a busy door would otherwise overflow per-key caps.
    #[cfg(feature = "arrow")]
    pub fn push_arrow_at(&mut self, batch: arrow_array::RecordBatch, first_row: u64) -> Result<(), PushError> {
        let rows = batch.num_rows();
        let mut offset = 0;
        while offset < rows || rows == 0 {
            let len = (rows - offset).min(MAX_ARROW_ROWS);
            let piece = if offset == 0 && len == rows { batch.clone() } else { batch.slice(offset, len) };
            let ingest_ns = self.registry.clock.now_ns();
            self.send(Batch::Arrow { batch: piece, first_row: first_row + offset as u64, ingest_ns })?;
            offset += len;
            if rows == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Records a line the caller rejected before pushing it (a line too long to buffer), so it is
    /// counted with the engine's other rejections.
    pub fn reject_line(&mut self, line: u64, reason: Reason, detail: String) -> Result<(), PushError> {
        self.send(Batch::Rejected { line, reason, detail })
    }

    /// Raises the source's watermark to `to` (event-time ms) as if time had passed without events:
    /// events below it become late, and decisions before it final. A host that drives time
    /// itself (the sidecar logs these ticks so a restart replays them) uses this instead of
    /// [`crate::EngineBuilder::live`]. Blocks while the queue is full; never lowers the watermark.
    pub fn advance_to(&mut self, to: u64) -> Result<(), PushError> {
        let ingest_ns = self.registry.clock.now_ns();
        self.send(Batch::Advance { to, ingest_ns })
    }

    /// Batches queued and not yet taken by the owning worker.
    pub fn queued(&self) -> usize {
        self.tx.as_ref().map_or(0, |t| t.len())
    }

    /// Ends the source: its queued batches are still processed.
    pub fn close(self) {}
}

impl Drop for Source {
    fn drop(&mut self) {
        self.tx = None;
        self.registry.wake(self.shared.owner);
    }
}

/// Number of lines in a chunk (a final line without newline counts).
pub(crate) fn line_count(bytes: &[u8]) -> u64 {
    let n = memchr::memchr_iter(b'\n', bytes).count() as u64;
    n + u64::from(!bytes.is_empty() && bytes.last() != Some(&b'\n'))
}
