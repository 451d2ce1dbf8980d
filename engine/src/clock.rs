//! The ingest clock: when an event entered the engine, for latency.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A monotonic clock in nanoseconds, anchored to wall-clock time at creation so that stamps from
/// processes on one host are comparable (multi-process replay). Read once per pushed batch, never
/// per event.
#[derive(Debug, Clone, Copy)]
pub struct IngestClock {
    anchor: Instant,
    anchor_wall_ns: u64,
}

impl IngestClock {
    /// A clock anchored now.
    pub fn new() -> IngestClock {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        IngestClock { anchor: Instant::now(), anchor_wall_ns: wall }
    }

    /// Nanoseconds on this clock.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.anchor_wall_ns + self.anchor.elapsed().as_nanos() as u64
    }
}

impl Default for IngestClock {
    fn default() -> Self {
        IngestClock::new()
    }
}
