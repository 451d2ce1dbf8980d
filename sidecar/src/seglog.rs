//! A durable append-only log of lines, split into segment files: the sidecar's ingest log (accepted
//! event lines, on disk before the HTTP 2xx) and its alarm journal (one alarm JSON per line).
//!
//! # Layout
//!
//! A log is a directory and a prefix. Its segments are the files `{prefix}-{first_seq:020}.log`;
//! other files in the directory (another log's segments, anything else) are ignored, so several logs
//! may share a directory. A record is one line of bytes terminated by `\n`, with no header: sequence
//! numbers are implicit. The first line of `ingest-00000000000000000042.log` has seq 42, the next 43,
//! and the next segment's name is the seq after its last line. A new log starts at seq 1.
//!
//! ```text
//! ingest-00000000000000000001.log   seqs 1..=180 (≥ segment_bytes, sealed)
//! ingest-00000000000000000181.log   seqs 181..   (current: appends go here)
//! ```
//!
//! # Writing
//!
//! [`SegmentLog::append`] writes a batch as one `write_all` of one reused buffer straight to the
//! file (no user-space buffering), then syncs per [`Fsync`]. A batch never spans segments: the log
//! rotates *before* a batch when the current segment already holds at least
//! [`Options::segment_bytes`], and syncs the directory after creating the new file.
//!
//! # Crash safety
//!
//! The log survives `kill -9` at any instant: the only damage a crash can leave is a partial last
//! line in the last segment (a torn write), which [`SegmentLog::open`] truncates and reports in
//! [`SegmentLog::recovered_torn_bytes`]. A record is durable against power loss once it is synced:
//! when `append` returns with [`Fsync::Always`], else after the next interval sync or
//! [`SegmentLog::sync`]. `open` refuses a log whose segment chain is broken (a missing or damaged
//! middle segment) rather than renumbering records.
//!
//! A failed write is undone by truncating the segment back; if that fails too, or if a sync fails
//! (after which the kernel may have dropped the dirty pages while later syncs report success), the
//! log refuses further appends with [`LogError::Poisoned`]: the owner reports failure upstream and
//! reopens the log, which recovers from what is actually on disk.
//!
//! # Reading
//!
//! [`SegmentLog::read_from`] opens the segment files separately, so it sees every record appended
//! so far without disturbing the writer. One log has one writer: nothing stops a second process from
//! appending to the same directory and prefix, and that would corrupt the chain.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes per read when scanning or reading segments.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Capacity of the append buffer kept between batches. A rare huge batch would otherwise pin its
/// buffer for the life of the log; typical batches are far smaller and keep theirs.
const RETAINED_BUF_BYTES: usize = 4 * 1024 * 1024;

/// When appended records are synced to disk (`sync_data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every [`SegmentLog::append`]: a record is durable when `append` returns.
    Always,
    /// At most once per interval, checked at append time; the owner also calls
    /// [`SegmentLog::sync`] from a timer so a quiet log is not left unsynced.
    Interval(Duration),
    /// Only when sealing a segment at rotation: otherwise the OS writes back when it likes.
    /// [`SegmentLog::sync`] still syncs.
    Never,
}

/// How a [`SegmentLog`] is written.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rotate to a new segment before a batch once the current one holds at least this many bytes.
    /// A segment holds whole batches, so it may exceed this by up to one batch; 0 gives one segment
    /// per batch.
    pub segment_bytes: u64,
    /// When appends are synced to disk.
    pub fsync: Fsync,
}

impl Default for Options {
    /// 64 MiB segments, [`Fsync::Always`].
    fn default() -> Options {
        Options { segment_bytes: 64 * 1024 * 1024, fsync: Fsync::Always }
    }
}

/// Why a log operation failed. `log` is the log's prefix (`ingest`, `alarms`), `path` the file or
/// directory concerned.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log directory could not be created.
    #[error("cannot create {log} log directory {path}: {source}")]
    CreateDir {
        /// The log's prefix.
        log: String,
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The log directory could not be listed.
    #[error("cannot list {log} log directory {path}: {source}")]
    ListDir {
        /// The log's prefix.
        log: String,
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The directory could not be synced after creating or deleting a segment.
    #[error("cannot sync {log} log directory {path}: {source}")]
    SyncDir {
        /// The log's prefix.
        log: String,
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A segment could not be opened or created.
    #[error("cannot open {log} log segment {path}: {source}")]
    Open {
        /// The log's prefix.
        log: String,
        /// The segment.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A segment could not be read.
    #[error("cannot read {log} log segment {path}: {source}")]
    Read {
        /// The log's prefix.
        log: String,
        /// The segment.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A batch could not be written, or a torn tail could not be truncated.
    #[error("cannot write {log} log segment {path}: {source}")]
    Write {
        /// The log's prefix.
        log: String,
        /// The segment.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A segment could not be synced to disk.
    #[error("cannot sync {log} log segment {path}: {source}")]
    Sync {
        /// The log's prefix.
        log: String,
        /// The segment.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A segment could not be deleted.
    #[error("cannot delete {log} log segment {path}: {source}")]
    Delete {
        /// The log's prefix.
        log: String,
        /// The segment.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A segment's name does not follow from the previous segment's first seq and line count: a
    /// segment is missing, or one was cut short or extended.
    #[error("{log} log segment {path} starts at seq {found}, expected {expected} from the segments before it")]
    Chain {
        /// The log's prefix.
        log: String,
        /// The segment whose name does not fit.
        path: PathBuf,
        /// The first seq the segments before it imply.
        expected: u64,
        /// The first seq in its name.
        found: u64,
    },
    /// A segment other than the last is damaged in a way a crash cannot cause.
    #[error("{log} log segment {path} is damaged: {reason}")]
    Damaged {
        /// The log's prefix.
        log: String,
        /// The segment.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// A line of a batch contains `\n`; nothing of the batch was written.
    #[error("line {index} of the batch contains a newline")]
    Newline {
        /// Index of the first offending line in the batch.
        index: usize,
    },
    /// An earlier write could not be undone, or a sync failed: what is on disk is unknown, so the log
    /// takes no more appends. Reopen it.
    #[error("{log} log segment {path} is in an unknown state after a failed write or sync; reopen the log")]
    Poisoned {
        /// The log's prefix.
        log: String,
        /// The segment.
        path: PathBuf,
    },
}

/// An open append-only log: the writer of one directory + prefix, and a reader of it.
///
/// Invariants: `segments` is non-empty and ascending, its last entry is the segment `file` writes;
/// `next_seq` is that segment's first seq plus its complete lines, and `current_len` its length.
#[derive(Debug)]
pub struct SegmentLog {
    dir: PathBuf,
    prefix: String,
    opts: Options,
    /// First seq of every retained segment, oldest first; the last is the current segment.
    segments: Vec<u64>,
    /// The current segment, opened for appending.
    file: File,
    /// Bytes in the current segment.
    current_len: u64,
    next_seq: u64,
    /// The batch being appended, reused across appends.
    buf: Vec<u8>,
    /// Whether appends since the last sync may not be on disk.
    dirty: bool,
    last_sync: Instant,
    recovered_torn_bytes: u64,
    /// Set when the current segment's content is unknown; appends are refused.
    poisoned: bool,
}

impl SegmentLog {
    /// Opens the log `prefix` in `dir`, creating the directory and a first segment (seq 1) if needed.
    ///
    /// Checks that each segment's first seq is the previous one's first seq plus its line count, and
    /// recovers the last segment: a partial last line (a torn write from a crash) is truncated, synced
    /// and counted in [`SegmentLog::recovered_torn_bytes`]. Reads every segment once to count lines.
    pub fn open(dir: &Path, prefix: &str, opts: Options) -> Result<SegmentLog, LogError> {
        fs::create_dir_all(dir).map_err(|source| LogError::CreateDir {
            log: prefix.to_string(),
            path: dir.into(),
            source,
        })?;
        let mut segments = list_segments(dir, prefix)?;
        let current = match segments.split_last() {
            Some((&last, sealed)) => recover(dir, prefix, sealed, last)?,
            None => {
                let path = segment_path(dir, prefix, 1);
                let file =
                    create_segment(&path).map_err(|source| LogError::Open { log: prefix.to_string(), path, source })?;
                sync_dir(dir, prefix)?;
                segments.push(1);
                Current { file, len: 0, next_seq: 1, torn: 0 }
            }
        };
        Ok(SegmentLog {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            opts,
            segments,
            file: current.file,
            current_len: current.len,
            next_seq: current.next_seq,
            buf: Vec::new(),
            dirty: false,
            last_sync: Instant::now(),
            recovered_torn_bytes: current.torn,
            poisoned: false,
        })
    }

    /// Bytes of a partial last line that [`SegmentLog::open`] truncated (0 after a clean shutdown).
    pub fn recovered_torn_bytes(&self) -> u64 {
        self.recovered_torn_bytes
    }

    /// The seq the next appended record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The seq of the oldest retained record (equal to [`SegmentLog::next_seq`] when none is).
    pub fn first_seq(&self) -> u64 {
        self.segments.first().copied().unwrap_or(self.next_seq)
    }

    /// Appends `lines` as consecutive records and returns the seq of the first ([`SegmentLog::next_seq`]
    /// for an empty batch).
    ///
    /// The batch is written with one `write_all`, all into one segment: if the current segment already
    /// holds at least [`Options::segment_bytes`], a new segment is started first. Then the segment is
    /// synced per [`Options::fsync`]. If any line contains `\n`, fails with [`LogError::Newline`]
    /// before writing anything. If the write fails it is undone; if a sync fails the records may or
    /// may not be on disk and the log is poisoned (see the module docs).
    pub fn append(&mut self, lines: &[&[u8]]) -> Result<u64, LogError> {
        let first = self.next_seq;
        if lines.is_empty() {
            return Ok(first);
        }
        if self.poisoned {
            return Err(LogError::Poisoned { log: self.prefix.clone(), path: self.current_path() });
        }
        if let Some(index) = lines.iter().position(|line| line.contains(&b'\n')) {
            return Err(LogError::Newline { index });
        }
        if self.current_len > 0 && self.current_len >= self.opts.segment_bytes {
            self.rotate()?;
        }

        self.buf.clear();
        for line in lines {
            self.buf.extend_from_slice(line);
            self.buf.push(b'\n');
        }
        if let Err(source) = self.file.write_all(&self.buf) {
            // Cut off whatever part of the batch reached the file, so the next batch starts on a
            // line boundary and seqs stay implicit.
            if self.file.set_len(self.current_len).is_err() {
                self.poisoned = true;
            }
            return Err(LogError::Write { log: self.prefix.clone(), path: self.current_path(), source });
        }
        self.current_len += self.buf.len() as u64;
        self.next_seq += lines.len() as u64;
        self.dirty = true;
        self.buf.clear();
        self.buf.shrink_to(RETAINED_BUF_BYTES);

        let due = match self.opts.fsync {
            Fsync::Always => true,
            Fsync::Interval(every) => self.last_sync.elapsed() >= every,
            Fsync::Never => false,
        };
        if due {
            self.sync()?;
        }
        Ok(first)
    }

    /// Syncs the current segment to disk if anything was appended since the last sync, whatever the
    /// [`Fsync`] policy. Older segments were synced when the log rotated away from them, so afterwards
    /// every record appended so far is durable.
    pub fn sync(&mut self) -> Result<(), LogError> {
        if !self.dirty {
            return Ok(());
        }
        if let Err(source) = self.file.sync_data() {
            self.poisoned = true;
            return Err(LogError::Sync { log: self.prefix.clone(), path: self.current_path(), source });
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Calls `f(seq, line)` for the records with seq ≥ `from`, at most `max` of them, in seq order;
    /// returns how many. Records before [`SegmentLog::first_seq`] are gone, so reading starts at the
    /// oldest retained one; `from` ≥ [`SegmentLog::next_seq`] reads nothing.
    ///
    /// Opens the segment files itself, so it may be called between appends of the same log.
    pub fn read_from(&self, from: u64, max: usize, mut f: impl FnMut(u64, &[u8])) -> Result<u64, LogError> {
        let from = from.max(self.first_seq());
        if from >= self.next_seq || max == 0 {
            return Ok(0);
        }
        // The segment holding `from`: the last one starting at or before it (there is one, as
        // `from` ≥ the first segment's first seq).
        let start = self.segments.partition_point(|&first| first <= from).saturating_sub(1);

        let mut remaining = max as u64;
        // A line split across reads, reused across lines.
        let mut pending = Vec::new();
        let mut delivered = 0;
        for (i, &first) in self.segments.iter().enumerate().skip(start) {
            let end = self.segments.get(i + 1).copied().unwrap_or(self.next_seq);
            let path = segment_path(&self.dir, &self.prefix, first);
            let read_err = |source| LogError::Read { log: self.prefix.clone(), path: path.clone(), source };
            let file = File::open(&path).map_err(|source| LogError::Open {
                log: self.prefix.clone(),
                path: path.clone(),
                source,
            })?;
            let mut reader = BufReader::with_capacity(READ_CHUNK_BYTES, file);
            let seg_from = from.max(first);
            let skipped = skip_lines(&mut reader, seg_from - first).map_err(read_err)?;
            let mut seq = first + skipped;
            // Stop at the seq after this segment's last record: never deliver bytes this writer did
            // not account for.
            let want = end.saturating_sub(seq).min(remaining);
            let n = read_lines(&mut reader, want, &mut pending, |line| {
                f(seq, line);
                seq += 1;
            })
            .map_err(read_err)?;
            delivered += n;
            remaining -= n;
            if remaining == 0 {
                break;
            }
        }
        Ok(delivered)
    }

    /// Deletes the segments all of whose records have seq < `seq`, oldest first, never the current
    /// (last) segment; returns how many files were deleted. [`SegmentLog::first_seq`] moves to the
    /// first retained segment; seqs of retained records do not change.
    pub fn truncate_before(&mut self, seq: u64) -> Result<usize, LogError> {
        // Segment i's records are all < seq when segment i + 1 starts at or before seq.
        let doomed = self.segments.windows(2).take_while(|pair| pair[1] <= seq).count();
        for i in 0..doomed {
            let path = segment_path(&self.dir, &self.prefix, self.segments[i]);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    // Deleting oldest first keeps the remaining files a consistent chain.
                    self.segments.drain(..i);
                    return Err(LogError::Delete { log: self.prefix.clone(), path, source });
                }
            }
        }
        if doomed > 0 {
            self.segments.drain(..doomed);
            sync_dir(&self.dir, &self.prefix)?;
        }
        Ok(doomed)
    }

    /// Bytes on disk of every retained segment (the sealed ones are measured with `stat`).
    pub fn retained_bytes(&self) -> Result<u64, LogError> {
        let mut total = self.current_len;
        for &first in &self.segments[..self.segments.len() - 1] {
            total += self.sealed_len(first)?;
        }
        Ok(total)
    }

    /// Retention: deletes the oldest segments while the log holds more than `max_bytes`, but only
    /// segments all of whose records have seq < `before` (what a checkpoint no longer needs), and
    /// never the current one. Returns how many files were deleted.
    pub fn prune_to(&mut self, max_bytes: u64, before: u64) -> Result<usize, LogError> {
        let mut total = self.retained_bytes()?;
        let mut cut = 0;
        for pair in self.segments.windows(2) {
            if total <= max_bytes || pair[1] > before {
                break;
            }
            total -= self.sealed_len(pair[0])?;
            cut = pair[1];
        }
        if cut == 0 { Ok(0) } else { self.truncate_before(cut) }
    }

    fn sealed_len(&self, first: u64) -> Result<u64, LogError> {
        let path = segment_path(&self.dir, &self.prefix, first);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(source) => Err(LogError::Read { log: self.prefix.clone(), path, source }),
        }
    }

    /// Seals the current segment (synced if dirty, so [`SegmentLog::sync`] keeps covering every
    /// record) and starts a new one at `next_seq`.
    fn rotate(&mut self) -> Result<(), LogError> {
        self.sync()?;
        let path = segment_path(&self.dir, &self.prefix, self.next_seq);
        let file = create_segment(&path).map_err(|source| LogError::Open { log: self.prefix.clone(), path, source })?;
        // The new file exists from here on, so it is the current segment even if the directory sync
        // fails; that failure poisons the log like a failed data sync, as records acknowledged in
        // the new segment could vanish with its directory entry.
        self.segments.push(self.next_seq);
        self.file = file;
        self.current_len = 0;
        sync_dir(&self.dir, &self.prefix).inspect_err(|_| self.poisoned = true)
    }

    fn current_path(&self) -> PathBuf {
        segment_path(&self.dir, &self.prefix, self.segments.last().copied().unwrap_or(self.next_seq))
    }
}

/// The current segment as found by [`recover`].
#[derive(Debug)]
struct Current {
    /// The last segment, opened for reading and appending.
    file: File,
    /// Its length after dropping a torn tail.
    len: u64,
    /// The seq after its last complete line.
    next_seq: u64,
    /// Bytes of the torn tail dropped.
    torn: u64,
}

/// Checks the chain `sealed` then `last` (first seqs, ascending) and recovers the last segment.
fn recover(dir: &Path, prefix: &str, sealed: &[u64], last: u64) -> Result<Current, LogError> {
    let log = || prefix.to_string();
    let path_of = |first: u64| segment_path(dir, prefix, first);
    if sealed.first().copied().unwrap_or(last) == 0 {
        return Err(LogError::Chain { log: log(), path: path_of(0), expected: 1, found: 0 });
    }
    let successors = sealed.iter().skip(1).chain(std::iter::once(&last));
    for (&first, &next) in sealed.iter().zip(successors) {
        let path = path_of(first);
        let file = File::open(&path).map_err(|source| LogError::Open { log: log(), path: path.clone(), source })?;
        let scan = scan_lines(&file).map_err(|source| LogError::Read { log: log(), path: path.clone(), source })?;
        if scan.complete_len != scan.len {
            let reason = "ends in a partial line but is not the last segment";
            return Err(LogError::Damaged { log: log(), path, reason });
        }
        let expected = first.saturating_add(scan.lines);
        if next != expected {
            return Err(LogError::Chain { log: log(), path: path_of(next), expected, found: next });
        }
    }

    let path = path_of(last);
    let open = OpenOptions::new().read(true).append(true).open(&path);
    let file = open.map_err(|source| LogError::Open { log: log(), path: path.clone(), source })?;
    let scan = scan_lines(&file).map_err(|source| LogError::Read { log: log(), path: path.clone(), source })?;
    let torn = scan.len - scan.complete_len;
    if torn > 0 {
        // Dropping the torn tail before the next append keeps it from merging with the next line.
        let truncate = file.set_len(scan.complete_len).and_then(|()| file.sync_data());
        truncate.map_err(|source| LogError::Write { log: log(), path, source })?;
    }
    Ok(Current { file, len: scan.complete_len, next_seq: last.saturating_add(scan.lines), torn })
}

fn segment_path(dir: &Path, prefix: &str, first_seq: u64) -> PathBuf {
    dir.join(format!("{prefix}-{first_seq:020}.log"))
}

/// The first seq named by `file_name` if it is a segment of `prefix`.
fn parse_segment_name(file_name: &str, prefix: &str) -> Option<u64> {
    let digits = file_name.strip_prefix(prefix)?.strip_prefix('-')?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// First seqs of the segments of `prefix` in `dir`, ascending.
fn list_segments(dir: &Path, prefix: &str) -> Result<Vec<u64>, LogError> {
    let list_err = |source| LogError::ListDir { log: prefix.to_string(), path: dir.into(), source };
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        if let Some(first) = entry.file_name().to_str().and_then(|name| parse_segment_name(name, prefix)) {
            segments.push(first);
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

/// Creates a new, empty segment for appending. Fails if the file exists: only the one writer
/// creates segments, and it never reuses a name.
fn create_segment(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).append(true).create_new(true).open(path)
}

/// Makes a file creation or deletion in `dir` durable.
fn sync_dir(dir: &Path, prefix: &str) -> Result<(), LogError> {
    #[cfg(unix)]
    {
        match File::open(dir).and_then(|d| d.sync_all()) {
            Ok(()) => Ok(()),
            // Some file systems cannot sync a directory; there is nothing more to do on them.
            Err(e) if matches!(e.kind(), io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported) => Ok(()),
            Err(source) => Err(LogError::SyncDir { log: prefix.to_string(), path: dir.into(), source }),
        }
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened or synced as files here (Windows); there, creating or
        // deleting a file is made durable with the file's own metadata.
        let _ = (dir, prefix);
        Ok(())
    }
}

/// Line count of a segment file and where its last complete line ends.
#[derive(Debug)]
struct LineScan {
    /// Complete (`\n`-terminated) lines.
    lines: u64,
    /// Bytes up to and including the last `\n`.
    complete_len: u64,
    /// Bytes in the file.
    len: u64,
}

fn scan_lines(mut file: &File) -> io::Result<LineScan> {
    let mut chunk = vec![0; READ_CHUNK_BYTES];
    let mut scan = LineScan { lines: 0, complete_len: 0, len: 0 };
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => return Ok(scan),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let bytes = &chunk[..n];
        scan.lines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        if let Some(last) = bytes.iter().rposition(|&b| b == b'\n') {
            scan.complete_len = scan.len + last as u64 + 1;
        }
        scan.len += n as u64;
    }
}

/// Skips up to `count` complete lines; returns how many were skipped (fewer only at end of file).
fn skip_lines(reader: &mut impl BufRead, count: u64) -> io::Result<u64> {
    let mut skipped = 0;
    while skipped < count {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let mut consumed = chunk.len();
        for (i, &b) in chunk.iter().enumerate() {
            if b == b'\n' {
                skipped += 1;
                if skipped == count {
                    consumed = i + 1;
                    break;
                }
            }
        }
        reader.consume(consumed);
    }
    Ok(skipped)
}

/// Calls `f` with up to `max` complete lines, without their `\n`; returns how many. A line within
/// one buffered chunk is passed in place; one split across chunks is gathered in `pending`. An
/// unterminated tail (a batch being written) is not passed.
fn read_lines(reader: &mut impl BufRead, max: u64, pending: &mut Vec<u8>, mut f: impl FnMut(&[u8])) -> io::Result<u64> {
    pending.clear();
    let mut n = 0;
    while n < max {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(end) => {
                if pending.is_empty() {
                    f(&chunk[..end]);
                } else {
                    pending.extend_from_slice(&chunk[..end]);
                    f(pending);
                    pending.clear();
                }
                reader.consume(end + 1);
                n += 1;
            }
            None => {
                let len = chunk.len();
                pending.extend_from_slice(chunk);
                reader.consume(len);
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("seglog-{name}-{}-{n}-{nanos}", std::process::id()));
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn small(segment_bytes: u64) -> Options {
        Options { segment_bytes, fsync: Fsync::Always }
    }

    fn line(seq: u64) -> Vec<u8> {
        format!("{{\"event\":{seq}}}").into_bytes()
    }

    /// Appends records `line(next_seq)..` in batches of `batch` until `count` records are written.
    fn fill(log: &mut SegmentLog, count: u64, batch: usize) {
        let mut left = count;
        while left > 0 {
            let take = left.min(batch as u64);
            let first = log.next_seq();
            let owned: Vec<Vec<u8>> = (first..first + take).map(line).collect();
            let lines: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            assert_eq!(log.append(&lines).unwrap(), first);
            left -= take;
        }
    }

    fn read_all(log: &SegmentLog, from: u64, max: usize) -> Vec<(u64, Vec<u8>)> {
        let mut got = Vec::new();
        let n = log.read_from(from, max, |seq, line| got.push((seq, line.to_vec()))).unwrap();
        assert_eq!(n, got.len() as u64);
        got
    }

    fn expected(seqs: std::ops::Range<u64>) -> Vec<(u64, Vec<u8>)> {
        seqs.map(|seq| (seq, line(seq))).collect()
    }

    fn segment_files(dir: &Path, prefix: &str) -> Vec<u64> {
        list_segments(dir, prefix).unwrap()
    }

    #[test]
    fn new_log_starts_at_one() {
        let tmp = TempDir::new("new");
        let dir = tmp.0.join("nested").join("ingest");
        let log = SegmentLog::open(&dir, "ingest", Options::default()).unwrap();
        assert_eq!((log.first_seq(), log.next_seq(), log.recovered_torn_bytes()), (1, 1, 0));
        assert_eq!(segment_files(&dir, "ingest"), vec![1]);
        assert!(dir.join("ingest-00000000000000000001.log").is_file());
        assert_eq!(read_all(&log, 1, 10), vec![]);
    }

    #[test]
    fn round_trip_across_rotations() {
        let tmp = TempDir::new("roundtrip");
        let mut log = SegmentLog::open(&tmp.0, "ingest", small(100)).unwrap();
        fill(&mut log, 200, 3);
        assert_eq!(log.next_seq(), 201);
        let segments = segment_files(&tmp.0, "ingest");
        assert!(segments.len() > 5, "expected several rotations, got {segments:?}");
        assert_eq!(segments, log.segments);
        // Batches of 3 starting at seq 1 never span segments: each segment starts a batch.
        for first in &segments {
            assert_eq!((first - 1) % 3, 0, "segment {first} starts mid-batch");
        }
        assert_eq!(read_all(&log, 1, usize::MAX), expected(1..201));
        assert_eq!(read_all(&log, 0, 7), expected(1..8));
        assert_eq!(read_all(&log, 195, 100), expected(195..201));
        assert_eq!(read_all(&log, 201, 100), vec![]);
        assert_eq!(read_all(&log, 5, 0), vec![]);
    }

    #[test]
    fn empty_batch_and_empty_lines() {
        let tmp = TempDir::new("emptylines");
        let mut log = SegmentLog::open(&tmp.0, "alarms", small(8)).unwrap();
        assert_eq!(log.append(&[]).unwrap(), 1);
        assert_eq!(log.append(&[b"", b"a", b""]).unwrap(), 1);
        assert_eq!(log.append(&[b""]).unwrap(), 4);
        assert_eq!(log.next_seq(), 5);
        let got = read_all(&log, 1, 10);
        assert_eq!(got, vec![(1, vec![]), (2, b"a".to_vec()), (3, vec![]), (4, vec![])]);
    }

    #[test]
    fn seqs_continue_after_reopen() {
        let tmp = TempDir::new("reopen");
        {
            let mut log = SegmentLog::open(&tmp.0, "ingest", small(64)).unwrap();
            fill(&mut log, 50, 4);
        }
        let mut log = SegmentLog::open(&tmp.0, "ingest", small(64)).unwrap();
        assert_eq!((log.first_seq(), log.next_seq(), log.recovered_torn_bytes()), (1, 51, 0));
        fill(&mut log, 30, 7);
        drop(log);
        let log = SegmentLog::open(&tmp.0, "ingest", small(64)).unwrap();
        assert_eq!(log.next_seq(), 81);
        assert_eq!(read_all(&log, 1, usize::MAX), expected(1..81));
    }

    #[test]
    fn reads_from_the_middle_of_a_segment() {
        let tmp = TempDir::new("middle");
        let mut log = SegmentLog::open(&tmp.0, "ingest", small(200)).unwrap();
        fill(&mut log, 100, 5);
        let segments = log.segments.clone();
        assert!(segments.len() >= 3, "{segments:?}");
        let mid = segments[1] + 2;
        assert!(mid < segments[2]);
        assert_eq!(read_all(&log, mid, 4), expected(mid..mid + 4));
        // Across the boundary into the next segment.
        let span = usize::try_from(segments[2] + 3 - mid).unwrap();
        assert_eq!(read_all(&log, mid, span), expected(mid..segments[2] + 3));
        // Exactly at a segment's first record, and the last record of the log.
        assert_eq!(read_all(&log, segments[2], 1), expected(segments[2]..segments[2] + 1));
        assert_eq!(read_all(&log, 100, 10), expected(100..101));
    }

    #[test]
    fn long_lines_split_across_read_chunks() {
        let tmp = TempDir::new("long");
        let mut log = SegmentLog::open(&tmp.0, "ingest", small(1 << 20)).unwrap();
        let long: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'a' + i; READ_CHUNK_BYTES * 2 + 17]).collect();
        let lines: Vec<&[u8]> = long.iter().map(Vec::as_slice).collect();
        assert_eq!(log.append(&lines).unwrap(), 1);
        let got = read_all(&log, 2, 3);
        assert_eq!(got, vec![(2, long[1].clone()), (3, long[2].clone()), (4, long[3].clone())]);
    }

    #[test]
    fn interleaves_reads_and_appends() {
        let tmp = TempDir::new("interleave");
        let mut log = SegmentLog::open(&tmp.0, "ingest", small(50)).unwrap();
        let mut cursor = 1;
        for round in 1..=20u64 {
            fill(&mut log, round % 4 + 1, 2);
            let got = read_all(&log, cursor, usize::MAX);
            assert_eq!(got, expected(cursor..log.next_seq()));
            cursor = log.next_seq();
        }
    }

    #[test]
    fn reading_a_deleted_range_starts_at_first_retained() {
        let tmp = TempDir::new("deleted");
        let mut log = SegmentLog::open(&tmp.0, "ingest", small(100)).unwrap();
        fill(&mut log, 120, 4);
        let deleted = log.truncate_before(60).unwrap();
        assert!(deleted > 0);
        let first = log.first_seq();
        assert!(first > 1 && first <= 60, "first retained {first}");
        assert_eq!(read_all(&log, 1, 5), expected(first..first + 5));
        assert_eq!(read_all(&log, 60, 3), expected(60..63));
    }

    #[test]
    fn torn_tail_is_dropped_on_reopen() {
        let tmp = TempDir::new("torn");
        {
            let mut log = SegmentLog::open(&tmp.0, "ingest", small(100)).unwrap();
            fill(&mut log, 40, 4);
        }
        let last = *segment_files(&tmp.0, "ingest").last().unwrap();
        let path = segment_path(&tmp.0, "ingest", last);
        let clean_len = fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"event\":41}\n{\"event\":42}\n{\"ev").unwrap();
        drop(f);

        let mut log = SegmentLog::open(&tmp.0, "ingest", small(100)).unwrap();
        assert_eq!(log.recovered_torn_bytes(), 4);
        assert_eq!(log.next_seq(), 43);
        assert_eq!(fs::metadata(&path).unwrap().len(), clean_len + 26);
        fill(&mut log, 5, 5);
        assert_eq!(read_all(&log, 1, usize::MAX), expected(1..48));

        // A segment holding nothing but a partial line.
        drop(log);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"partial").unwrap();
        drop(f);
        let log = SegmentLog::open(&tmp.0, "ingest", small(1 << 20)).unwrap();
        assert_eq!((log.recovered_torn_bytes(), log.next_seq()), (7, 48));
        let log = SegmentLog::open(&tmp.0, "ingest", small(1 << 20)).unwrap();
        assert_eq!(log.recovered_torn_bytes(), 0, "the tail was truncated on disk");
    }

    #[test]
    fn torn_only_line_of_a_fresh_segment() {
        let tmp = TempDir::new("tornfresh");
        let path = segment_path(&tmp.0, "ingest", 1);
        fs::write(&path, b"{\"half").unwrap();
        let mut log = SegmentLog::open(&tmp.0, "ingest", small(100)).unwrap();
        assert_eq!((log.recovered_torn_bytes(), log.next_seq()), (6, 1));
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
        fill(&mut log, 3, 3);
        assert_eq!(read_all(&log, 1, 10), expected(1..4));
    }

    #[test]
    fn reader_ignores_an_unterminated_tail() {
        let tmp = TempDir::new("tail");
        let mut log = SegmentLog::open(&tmp.0, "ingest", small(1 << 20)).unwrap();
        fill(&mut log, 3, 3);
        // Stand-in for a batch whose write is in progress.
        let mut f = OpenOptions::new().append(true).open(segment_path(&tmp.0, "ingest", 1)).unwrap();
        f.write_all(b"{\"event\":4}\n{\"ev").unwrap();
        assert_eq!(read_all(&log, 1, 10), expected(1..4));
    }

    #[test]
    fn truncate_before_keeps_last_segment_and_seqs() {
        let tmp = TempDir::new("truncate");
        let mut log = SegmentLog::open(&tmp.0, "ingest", small(100)).unwrap();
        fill(&mut log, 100, 5);
        let before = log.segments.clone();
        assert!(before.len() >= 4, "{before:?}");

        // Nothing is wholly below the first segment's end.
        assert_eq!(log.truncate_before(before[1] - 1).unwrap(), 0);
        assert_eq!(log.first_seq(), 1);
        // Exactly the first two segments.
        assert_eq!(log.truncate_before(before[2]).unwrap(), 2);
        assert_eq!(log.first_seq(), before[2]);
        assert_eq!(segment_files(&tmp.0, "ingest"), before[2..].to_vec());
        // Everything: only the current segment survives.
        let deleted = log.truncate_before(u64::MAX).unwrap();
        assert_eq!(deleted, before.len() - 3);
        let last = *before.last().unwrap();
        assert_eq!(segment_files(&tmp.0, "ingest"), vec![last]);
        assert_eq!(log.first_seq(), last);
        assert_eq!(log.truncate_before(u64::MAX).unwrap(), 0);
        assert_eq!(log.append(&[b"x"]).unwrap(), 101);
        drop(log);

        let mut log = SegmentLog::open(&tmp.0, "ingest", small(100)).unwrap();
        assert_eq!((log.first_seq(), log.next_seq()), (last, 102));
        assert_eq!(log.append(&[b"y"]).unwrap(), 102);
        let got = read_all(&log, 1, usize::MAX);
        assert_eq!(got.first().map(|(seq, _)| *seq), Some(last));
        assert_eq!(got[got.len() - 2..], [(101, b"x".to_vec()), (102, b"y".to_vec())]);
        assert_eq!(got.len() as u64, 102 - last + 1);
    }

    #[test]
    fn prune_keeps_the_newest_bytes_and_what_is_still_needed() {
        let tmp = TempDir::new("prune");
        let mut log = SegmentLog::open(&tmp.0, "journal", small(100)).unwrap();
        fill(&mut log, 100, 5);
        let before = log.segments.clone();
        assert!(before.len() >= 5, "{before:?}");
        let total = log.retained_bytes().unwrap();
        let on_disk: u64 =
            before.iter().map(|s| fs::metadata(segment_path(&tmp.0, "journal", *s)).unwrap().len()).sum();
        assert_eq!(total, on_disk);

        // Under the limit: nothing goes.
        assert_eq!(log.prune_to(total, u64::MAX).unwrap(), 0);
        // Over it, but no segment is wholly below `before`: nothing goes.
        assert_eq!(log.prune_to(0, before[1] - 1).unwrap(), 0);
        // Over it: oldest first, only down to `before`.
        assert_eq!(log.prune_to(0, before[2]).unwrap(), 2);
        assert_eq!(log.first_seq(), before[2]);
        // A limit that one more segment satisfies deletes exactly that one.
        let left = log.retained_bytes().unwrap();
        assert_eq!(log.prune_to(left - 1, u64::MAX).unwrap(), 1);
        assert_eq!(segment_files(&tmp.0, "journal"), before[3..].to_vec());
        assert_eq!(read_all(&log, 1, usize::MAX), expected(before[3]..101));
        // Never the current segment.
        log.prune_to(0, u64::MAX).unwrap();
        assert_eq!(segment_files(&tmp.0, "journal"), vec![*before.last().unwrap()]);
    }

    #[test]
    fn newline_rejection_writes_nothing() {
        let tmp = TempDir::new("newline");
        let mut log = SegmentLog::open(&tmp.0, "ingest", small(1 << 20)).unwrap();
        fill(&mut log, 2, 2);
        let path = segment_path(&tmp.0, "ingest", 1);
        let len = fs::metadata(&path).unwrap().len();
        let err = log.append(&[b"ok", b"also ok", b"bad\nline", b"bad\n"]).unwrap_err();
        assert!(matches!(err, LogError::Newline { index: 2 }), "{err}");
        assert_eq!(err.to_string(), "line 2 of the batch contains a newline");
        assert_eq!(fs::metadata(&path).unwrap().len(), len);
        assert_eq!(log.next_seq(), 3);
        assert_eq!(log.append(&[b"next"]).unwrap(), 3);
        assert_eq!(read_all(&log, 3, 10), vec![(3, b"next".to_vec())]);
    }

    #[test]
    fn inconsistent_chain_names_the_file() {
        let tmp = TempDir::new("chain");
        {
            let mut log = SegmentLog::open(&tmp.0, "ingest", small(60)).unwrap();
            fill(&mut log, 40, 4);
        }
        let segments = segment_files(&tmp.0, "ingest");
        assert!(segments.len() >= 3, "{segments:?}");
        // Losing a middle segment leaves a gap in the chain.
        fs::remove_file(segment_path(&tmp.0, "ingest", segments[1])).unwrap();
        let err = SegmentLog::open(&tmp.0, "ingest", small(60)).unwrap_err();
        let named = segment_path(&tmp.0, "ingest", segments[2]);
        assert!(
            matches!(&err, LogError::Chain { path, expected, found, .. }
                if *path == named && *expected == segments[1] && *found == segments[2]),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&named.display().to_string()), "{msg}");
        assert!(msg.starts_with("ingest log segment "), "{msg}");
    }

    #[test]
    fn partial_line_in_a_sealed_segment_is_damage() {
        let tmp = TempDir::new("damaged");
        {
            let mut log = SegmentLog::open(&tmp.0, "ingest", small(60)).unwrap();
            fill(&mut log, 20, 4);
        }
        let segments = segment_files(&tmp.0, "ingest");
        let path = segment_path(&tmp.0, "ingest", segments[0]);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"junk").unwrap();
        drop(f);
        let err = SegmentLog::open(&tmp.0, "ingest", small(60)).unwrap_err();
        assert!(matches!(&err, LogError::Damaged { path: p, .. } if *p == path), "{err}");
    }

    #[test]
    fn empty_segment_files_are_handled() {
        let tmp = TempDir::new("emptyseg");
        // A log whose only segment was created and never written.
        drop(SegmentLog::open(&tmp.0, "ingest", small(50)).unwrap());
        let log = SegmentLog::open(&tmp.0, "ingest", small(50)).unwrap();
        assert_eq!((log.first_seq(), log.next_seq()), (1, 1));
        drop(log);

        // A crash right after rotation: a full segment, then an empty one.
        {
            let mut log = SegmentLog::open(&tmp.0, "ingest", small(50)).unwrap();
            fill(&mut log, 10, 10);
        }
        File::create(segment_path(&tmp.0, "ingest", 11)).unwrap();
        let mut log = SegmentLog::open(&tmp.0, "ingest", small(50)).unwrap();
        assert_eq!((log.first_seq(), log.next_seq(), log.recovered_torn_bytes()), (1, 11, 0));
        assert_eq!(read_all(&log, 11, 10), vec![]);
        // The empty segment takes the next batch rather than being rotated past.
        fill(&mut log, 3, 3);
        assert_eq!(segment_files(&tmp.0, "ingest"), vec![1, 11]);
        assert_eq!(read_all(&log, 1, usize::MAX), expected(1..14));

        // An empty segment in the middle of the chain is a gap.
        drop(log);
        File::create(segment_path(&tmp.0, "ingest", 14)).unwrap();
        File::create(segment_path(&tmp.0, "ingest", 15)).unwrap();
        let err = SegmentLog::open(&tmp.0, "ingest", small(50)).unwrap_err();
        assert!(matches!(err, LogError::Chain { expected: 14, found: 15, .. }), "{err}");
    }

    #[test]
    fn zero_segment_bytes_rotates_per_batch() {
        let tmp = TempDir::new("zero");
        let mut log = SegmentLog::open(&tmp.0, "ingest", small(0)).unwrap();
        fill(&mut log, 9, 3);
        assert_eq!(segment_files(&tmp.0, "ingest"), vec![1, 4, 7]);
        assert_eq!(read_all(&log, 2, usize::MAX), expected(2..10));
    }

    #[test]
    fn logs_sharing_a_directory_ignore_each_other() {
        let tmp = TempDir::new("shared");
        fs::write(tmp.0.join("README"), b"not a segment\n").unwrap();
        fs::write(tmp.0.join("ingest-1.log"), b"not a segment either\n").unwrap();
        fs::write(tmp.0.join("ingest-00000000000000000001.log.bak"), b"nor this\n").unwrap();
        let mut ingest = SegmentLog::open(&tmp.0, "ingest", small(40)).unwrap();
        let mut alarms = SegmentLog::open(&tmp.0, "alarms", small(40)).unwrap();
        fill(&mut ingest, 20, 2);
        fill(&mut alarms, 5, 1);
        drop((ingest, alarms));
        let ingest = SegmentLog::open(&tmp.0, "ingest", small(40)).unwrap();
        let alarms = SegmentLog::open(&tmp.0, "alarms", small(40)).unwrap();
        assert_eq!((ingest.next_seq(), alarms.next_seq()), (21, 6));
        assert_eq!(read_all(&alarms, 1, usize::MAX), expected(1..6));
        assert_eq!(read_all(&ingest, 1, usize::MAX), expected(1..21));
    }

    #[test]
    fn fsync_policies_sync_when_due() {
        let tmp = TempDir::new("fsync");
        let interval = Options { segment_bytes: 1 << 20, fsync: Fsync::Interval(Duration::from_secs(3600)) };
        let mut log = SegmentLog::open(&tmp.0, "interval", interval).unwrap();
        fill(&mut log, 3, 1);
        assert!(log.dirty, "an hour has not passed");
        log.sync().unwrap();
        assert!(!log.dirty);

        let due = Options { segment_bytes: 1 << 20, fsync: Fsync::Interval(Duration::ZERO) };
        let mut log = SegmentLog::open(&tmp.0, "due", due).unwrap();
        fill(&mut log, 1, 1);
        assert!(!log.dirty);

        let mut log = SegmentLog::open(&tmp.0, "never", Options { segment_bytes: 30, fsync: Fsync::Never }).unwrap();
        fill(&mut log, 10, 2);
        assert!(log.dirty);
        log.sync().unwrap();
        assert!(!log.dirty);
        assert_eq!(read_all(&log, 1, usize::MAX), expected(1..11));

        let mut log = SegmentLog::open(&tmp.0, "always", small(1 << 20)).unwrap();
        fill(&mut log, 2, 1);
        assert!(!log.dirty);
    }

    #[test]
    fn error_messages_name_the_log_and_path() {
        let tmp = TempDir::new("errors");
        let file = tmp.0.join("plain-file");
        fs::write(&file, b"").unwrap();
        // A directory that cannot be created because a file is in the way.
        let err = SegmentLog::open(&file.join("sub"), "ingest", Options::default()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("cannot create ingest log directory "), "{msg}");
        assert!(msg.contains("plain-file"), "{msg}");

        // A segment name taken by a directory cannot be opened.
        fs::create_dir(segment_path(&tmp.0, "ingest", 1)).unwrap();
        let err = SegmentLog::open(&tmp.0, "ingest", Options::default()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ingest log segment "), "{msg}");
        assert!(msg.contains("ingest-00000000000000000001.log"), "{msg}");
    }

    #[test]
    fn parses_only_well_formed_segment_names() {
        assert_eq!(parse_segment_name("ingest-00000000000000000042.log", "ingest"), Some(42));
        assert_eq!(parse_segment_name("ingest-0000000000000000042.log", "ingest"), None);
        assert_eq!(parse_segment_name("ingest-0000000000000000004x.log", "ingest"), None);
        assert_eq!(parse_segment_name("ingest-00000000000000000042.tmp", "ingest"), None);
        assert_eq!(parse_segment_name("alarms-00000000000000000042.log", "ingest"), None);
        assert_eq!(parse_segment_name("ingest-x-00000000000000000042.log", "ingest"), None);
        assert_eq!(parse_segment_name("ingest-99999999999999999999.log", "ingest"), None);
    }
}
