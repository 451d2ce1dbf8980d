//! The replay driver's feeding: NDJSON files in blocks of whole lines, Arrow files in slices,
//! spread round-robin over the sources of this process (and, in a cluster, over processes).
//! Lines longer than the limit are never buffered whole: they are skipped and reported to the
//! engine as rejected.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use vigil_engine::Source;
use vigil_engine::decode::Reason;

/// Why feeding stopped.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The Arrow file could not be read.
    #[error("{path}: {reason}")]
    Arrow {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The engine stopped accepting batches.
    #[error("the engine stopped while {path} was being fed")]
    EngineStopped {
        /// The file.
        path: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FeedError + '_ {
    move |source| FeedError::Io { path: path.display().to_string(), source }
}

fn stopped(path: &Path) -> impl FnOnce(vigil_engine::PushError) -> FeedError + '_ {
    move |_| FeedError::EngineStopped { path: path.display().to_string() }
}

/// Which blocks of a file this process takes, and where it sends them.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// Number of processes.
    pub processes: usize,
    /// This process's index.
    pub process: usize,
}

impl Spread {
    fn mine(&self, block: u64) -> Option<usize> {
        let p = self.processes as u64;
        (block % p == self.process as u64).then_some((block / p) as usize)
    }
}

/// Target block size: big enough to amortize the channel, small enough to spread over workers.
const BLOCK_BYTES: usize = 256 * 1024;

/// True when the file starts with the Arrow IPC file magic.
pub fn is_arrow(path: &Path) -> io::Result<bool> {
    let mut magic = [0u8; 6];
    let mut f = File::open(path)?;
    let n = f.read(&mut magic)?;
    Ok(n == 6 && &magic == b"ARROW1")
}

/// What an NDJSON file yields: blocks of whole lines, or a line too long to buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// Whole lines; the first is line `first_line`.
    Lines {
        /// The lines.
        bytes: Vec<u8>,
        /// Number of the first.
        first_line: u64,
    },
    /// Line `line` is longer than the limit (at least `len` bytes); it was skipped unread.
    TooLong {
        /// Its number.
        line: u64,
        /// Bytes seen.
        len: u64,
    },
}

/// Splits a byte stream into [`Piece`]s of about `block` bytes, never buffering a line longer
/// than `max_line`.
#[derive(Debug)]
pub struct Pieces<R> {
    input: R,
    buf: Vec<u8>,
    chunk: Vec<u8>,
    next_line: u64,
    block: usize,
    max_line: usize,
    eof: bool,
    /// Bytes read so far.
    pub bytes_read: u64,
}

impl<R: Read> Pieces<R> {
    /// Pieces of `input`.
    pub fn new(input: R, block: usize, max_line: usize) -> Pieces<R> {
        Pieces {
            input,
            buf: Vec::with_capacity(block * 2),
            chunk: vec![0; block],
            next_line: 1,
            block,
            max_line,
            eof: false,
            bytes_read: 0,
        }
    }

    fn lines(&mut self, bytes: Vec<u8>) -> Piece {
        let first_line = self.next_line;
        self.next_line += count_lines(&bytes);
        Piece::Lines { bytes, first_line }
    }

    /// Skips the rest of an oversized line whose first `len` bytes were already dropped.
    fn skip_line(&mut self, mut len: u64) -> io::Result<Piece> {
        let line = self.next_line;
        loop {
            let n = self.input.read(&mut self.chunk)?;
            self.bytes_read += n as u64;
            if n == 0 {
                self.eof = true;
                break;
            }
            if let Some(i) = memchr::memchr(b'\n', &self.chunk[..n]) {
                len += i as u64;
                self.buf.extend_from_slice(&self.chunk[i + 1..n]);
                break;
            }
            len += n as u64;
        }
        self.next_line += 1;
        Ok(Piece::TooLong { line, len })
    }

    /// The next piece, or `None` at the end.
    pub fn next_piece(&mut self) -> io::Result<Option<Piece>> {
        loop {
            // A complete block of lines is ready?
            if self.buf.len() >= self.block || (self.eof && !self.buf.is_empty()) {
                match memchr::memrchr(b'\n', &self.buf) {
                    Some(i) => {
                        let rest = self.buf.split_off(i + 1);
                        let full = std::mem::replace(&mut self.buf, rest);
                        return Ok(Some(self.lines(full)));
                    }
                    None if self.eof => {
                        let last = std::mem::take(&mut self.buf);
                        if last.len() > self.max_line {
                            let line = self.next_line;
                            self.next_line += 1;
                            return Ok(Some(Piece::TooLong { line, len: last.len() as u64 }));
                        }
                        return Ok(Some(self.lines(last)));
                    }
                    None => {}
                }
            }
            // A partial line already over the limit: drop it without buffering the rest.
            if self.buf.len() > self.max_line && memchr::memchr(b'\n', &self.buf).is_none() {
                let len = self.buf.len() as u64;
                self.buf.clear();
                return self.skip_line(len).map(Some);
            }
            if self.eof {
                return Ok(None);
            }
            let n = self.input.read(&mut self.chunk)?;
            self.bytes_read += n as u64;
            if n == 0 {
                self.eof = true;
            } else {
                self.buf.extend_from_slice(&self.chunk[..n]);
            }
        }
    }
}

/// Progress of a max-rate feed: samples for the throughput chart, and a status line on terminals.
#[derive(Debug)]
pub struct Progress {
    start: std::time::Instant,
    lines: u64,
    /// (seconds since start, lines fed), every 100 ms.
    pub samples: Vec<(f64, u64)>,
    next: f64,
    tty: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// Starts the clock.
    pub fn new() -> Progress {
        use std::io::IsTerminal;
        Progress {
            start: std::time::Instant::now(),
            lines: 0,
            samples: vec![(0.0, 0)],
            next: 0.1,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Counts fed lines.
    pub fn add(&mut self, lines: u64) {
        self.lines += lines;
        let t = self.start.elapsed().as_secs_f64();
        if t >= self.next {
            self.samples.push((t, self.lines));
            if self.tty && (self.next * 10.0).round() as u64 % 5 == 0 {
                eprint!("\r  {} events fed, {:.0} events/s   ", self.lines, self.lines as f64 / t);
            }
            self.next += 0.1;
        }
    }

    /// Takes the last sample and clears the status line.
    pub fn finish(&mut self) {
        self.samples.push((self.start.elapsed().as_secs_f64(), self.lines));
        if self.tty {
            eprint!("\r{:60}\r", "");
        }
    }
}

/// Streams an NDJSON file to `sources` in blocks of whole lines; lines longer than `max_line` are
/// never buffered whole: they are skipped and reported as rejected. Returns bytes read.
pub fn ndjson(
    path: &Path,
    sources: &mut [Source],
    spread: &Spread,
    max_line: usize,
    progress: &mut Progress,
) -> Result<u64, FeedError> {
    let file = File::open(path).map_err(io_err(path))?;
    let mut pieces = Pieces::new(file, BLOCK_BYTES, max_line);
    let mut block = 0u64;
    while let Some(piece) = pieces.next_piece().map_err(io_err(path))? {
        match piece {
            Piece::Lines { bytes, first_line } => {
                progress.add(count_lines(&bytes));
                if let Some(i) = spread.mine(block) {
                    let n = sources.len();
                    sources[i % n].push_ndjson_at(bytes, first_line).map_err(stopped(path))?;
                }
                block += 1;
            }
            Piece::TooLong { line, len } => {
                if spread.process == 0 {
                    let detail = format!("at least {len} bytes, the limit is {max_line}");
                    sources[0].reject_line(line, Reason::LineTooLong, detail).map_err(stopped(path))?;
                }
            }
        }
    }
    Ok(pieces.bytes_read)
}

fn count_lines(b: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', b).count() as u64 + u64::from(!b.is_empty() && b.last() != Some(&b'\n'))
}

/// Streams an Arrow IPC file batch by batch.
pub fn arrow(path: &Path, sources: &mut [Source], spread: &Spread, progress: &mut Progress) -> Result<u64, FeedError> {
    let arrow_err = |e: vigil_engine::arrow_io::ArrowError| FeedError::Arrow {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let reader = vigil_engine::arrow_io::read_ipc_file(path).map_err(arrow_err)?;
    let mut rows = 0u64;
    let mut block = 0u64;
    for batch in reader {
        let batch = batch.map_err(arrow_err)?;
        // Spread slices, not whole batches, so sources stay within a slice of each other in
        // event time (a whole 64 Ki-row batch ahead lets the frontier lag at busy doors).
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = (batch.num_rows() - offset).min(vigil_engine::source::MAX_ARROW_ROWS);
            progress.add(len as u64);
            if let Some(i) = spread.mine(block) {
                let n = sources.len();
                sources[i % n]
                    .push_arrow_at(batch.slice(offset, len), rows + offset as u64 + 1)
                    .map_err(stopped(path))?;
            }
            block += 1;
            offset += len;
        }
        rows += batch.num_rows() as u64;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], block: usize, max_line: usize) -> Vec<Piece> {
        let mut p = Pieces::new(input, block, max_line);
        let mut out = Vec::new();
        while let Some(x) = p.next_piece().expect("in-memory read") {
            out.push(x);
        }
        out
    }

    fn lines(pieces: &[Piece]) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for p in pieces {
            match p {
                Piece::Lines { bytes, first_line } => {
                    // Lines over the limit inside a block are the decoder's to reject.
                    for (i, l) in String::from_utf8_lossy(bytes).lines().enumerate() {
                        let l = if l.len() > 100 { "<too long>".to_string() } else { l.to_string() };
                        out.push((first_line + i as u64, l));
                    }
                }
                Piece::TooLong { line, .. } => out.push((*line, "<too long>".into())),
            }
        }
        out
    }

    #[test]
    fn blocks_keep_line_numbers_and_skip_huge_lines() {
        let huge = "x".repeat(10_000);
        let input = format!("a\nb\n{huge}\nc\nd");
        for block in [1, 3, 7, 64, 1 << 16] {
            let got = lines(&all(input.as_bytes(), block, 100));
            let want: Vec<(u64, String)> =
                vec![(1, "a".into()), (2, "b".into()), (3, "<too long>".into()), (4, "c".into()), (5, "d".into())];
            assert_eq!(got, want, "block {block}");
        }
    }

    #[test]
    fn empty_input_and_trailing_huge_line() {
        assert!(all(b"", 16, 100).is_empty());
        let input = format!("a\n{}", "y".repeat(500));
        assert_eq!(lines(&all(input.as_bytes(), 8, 100)), vec![(1, "a".into()), (2, "<too long>".into())]);
    }
}
