//! Open-loop pacing: events leave at a fixed offered rate, whatever the engine does.
//!
//! Event `i` is scheduled at `start + i / rate`. Batches are small (about 100 µs of events) and
//! each is stamped with the scheduled send time of its first event, so measured latency includes
//! any time a batch waited to be accepted: when the engine falls behind, pushes block, the pacer
//! runs late, and latency grows — the replay reports growing latency at the offered rate, never a
//! quietly lower rate (no coordinated omission).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Where paced batches go.
pub trait PacedSink {
    /// Pushes whole lines; `scheduled_ns` is the batch's scheduled send time on the sink's clock.
    fn push(&mut self, bytes: Vec<u8>, first_line: u64, scheduled_ns: u64) -> Result<(), String>;
    /// Now, on the sink's clock (ns).
    fn now_ns(&self) -> u64;
}

/// What a paced run did.
#[derive(Debug, Clone)]
pub struct PaceReport {
    /// Events sent.
    pub events: u64,
    /// Offered rate, events/s.
    pub offered_rate: f64,
    /// Events / wall time of the run.
    pub achieved_rate: f64,
    /// How late batches were pushed relative to their schedule, µs.
    pub behind_us: Histogram<u64>,
    /// (seconds since start, events sent so far), sampled every 100 ms.
    pub progress: Vec<(f64, u64)>,
}

/// Lines to send: returns up to `n` whole lines as bytes, their first line number and count.
pub trait LineSource {
    /// The next at most `n` lines; `None` at the end.
    fn next_lines(&mut self, n: usize) -> Option<(Vec<u8>, u64, usize)>;
}

/// Sends everything from `lines` to `sink` at `rate` events per second.
pub fn open_loop(rate: f64, lines: &mut dyn LineSource, sink: &mut dyn PacedSink) -> Result<PaceReport, String> {
    if !(rate > 0.0 && rate.is_finite()) {
        return Err(format!("rate {rate} must be a positive number of events per second"));
    }
    let per_batch = ((rate * 100e-6).round() as usize).max(1);
    let ns_per_event = 1e9 / rate;
    let start = Instant::now();
    let start_ns = sink.now_ns();
    let mut behind_us = Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| e.to_string())?;
    let mut sent = 0u64;
    let mut progress = vec![(0.0, 0)];
    let mut next_sample = Duration::from_millis(100);
    while let Some((bytes, first_line, count)) = lines.next_lines(per_batch) {
        let scheduled = start_ns + (sent as f64 * ns_per_event) as u64;
        // Wait for the schedule: sleep when far, spin when close.
        loop {
            let now = sink.now_ns();
            if now >= scheduled {
                break;
            }
            let wait = scheduled - now;
            if wait > 200_000 {
                std::thread::sleep(Duration::from_nanos(wait - 100_000));
            } else {
                std::hint::spin_loop();
            }
        }
        let late = sink.now_ns().saturating_sub(scheduled);
        behind_us.saturating_record((late / 1_000).max(1));
        sink.push(bytes, first_line, scheduled)?;
        sent += count as u64;
        if start.elapsed() >= next_sample {
            progress.push((start.elapsed().as_secs_f64(), sent));
            next_sample += Duration::from_millis(100);
        }
    }
    let wall = start.elapsed().as_secs_f64();
    progress.push((wall, sent));
    Ok(PaceReport {
        events: sent,
        offered_rate: rate,
        achieved_rate: if wall > 0.0 { sent as f64 / wall } else { 0.0 },
        behind_us,
        progress,
    })
}

/// Lines from an in-memory buffer of NDJSON.
#[derive(Debug)]
pub struct BufferLines<'a> {
    buf: &'a [u8],
    pos: usize,
    line: u64,
}

impl<'a> BufferLines<'a> {
    /// Lines of `buf`, numbered from 1.
    pub fn new(buf: &'a [u8]) -> BufferLines<'a> {
        BufferLines { buf, pos: 0, line: 1 }
    }
}

impl LineSource for BufferLines<'_> {
    fn next_lines(&mut self, n: usize) -> Option<(Vec<u8>, u64, usize)> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        let mut count = 0;
        while count < n && self.pos < self.buf.len() {
            self.pos =
                self.buf[self.pos..].iter().position(|&b| b == b'\n').map_or(self.buf.len(), |i| self.pos + i + 1);
            count += 1;
        }
        let first = self.line;
        self.line += count as u64;
        Some((self.buf[start..self.pos].to_vec(), first, count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder {
        start: Instant,
        pushes: Vec<(u64, u64)>,
        delay: Duration,
    }

    impl PacedSink for Recorder {
        fn push(&mut self, _bytes: Vec<u8>, _first: u64, scheduled_ns: u64) -> Result<(), String> {
            std::thread::sleep(self.delay);
            self.pushes.push((scheduled_ns, self.now_ns()));
            Ok(())
        }
        fn now_ns(&self) -> u64 {
            self.start.elapsed().as_nanos() as u64
        }
    }

    fn lines(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| format!("{{\"ts\":{i}}}\n").into_bytes()).collect()
    }

    #[test]
    fn a_sink_that_keeps_up_gets_the_offered_rate() {
        let buf = lines(20_000);
        let mut sink = Recorder { start: Instant::now(), pushes: Vec::new(), delay: Duration::ZERO };
        let r = open_loop(40_000.0, &mut BufferLines::new(&buf), &mut sink).expect("paced");
        assert_eq!(r.events, 20_000);
        // Never faster than offered (a loaded machine may make it slower, so no lower bound here).
        assert!(r.achieved_rate <= 40_000.0 * 1.05, "achieved {}", r.achieved_rate);
        // The schedule is the offered rate: the last batch is due ~0.5 s after the first.
        let (first, last) = (sink.pushes[0].0, sink.pushes[sink.pushes.len() - 1].0);
        let span_ms = (last - first) / 1_000_000;
        assert!((490..=500).contains(&span_ms), "scheduled over {span_ms} ms");
        // No batch goes out before its time.
        assert!(sink.pushes.iter().all(|(scheduled, at)| at >= scheduled), "a push before its schedule");
    }

    #[test]
    fn a_slow_sink_shows_growing_delay_not_a_lower_offered_rate() {
        let buf = lines(2_000);
        // 2 ms per push of 1 event at 2 000 ev/s offered: the sink takes 4x longer than scheduled.
        let mut sink = Recorder { start: Instant::now(), pushes: Vec::new(), delay: Duration::from_millis(2) };
        let r = open_loop(2_000.0, &mut BufferLines::new(&buf[..buf.len() / 10]), &mut sink).expect("paced");
        assert_eq!(r.offered_rate, 2_000.0);
        let lateness: Vec<u64> = sink.pushes.iter().map(|(s, a)| a.saturating_sub(*s)).collect();
        let (first, last) =
            (lateness[..10].iter().sum::<u64>() / 10, lateness[lateness.len() - 10..].iter().sum::<u64>() / 10);
        assert!(last > first + 50_000_000, "delay must grow: first {first} ns, last {last} ns");
        assert!(r.behind_us.max() > 50_000, "the pacer reports how far behind it ran");
    }

    #[test]
    fn buffer_lines_keep_line_numbers() {
        let buf = b"a\nb\nc\nd".to_vec();
        let mut l = BufferLines::new(&buf);
        assert_eq!(l.next_lines(3), Some((b"a\nb\nc\n".to_vec(), 1, 3)));
        assert_eq!(l.next_lines(3), Some((b"d".to_vec(), 4, 1)));
        assert_eq!(l.next_lines(3), None);
    }
}
