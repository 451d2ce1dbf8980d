//! Event time and watermarks.
//!
//! Rules run on **event time**: the `ts` of the events, in milliseconds since the Unix epoch.
//! A [`Watermark`] `W` is the promise that every event with `ts < W` is known; a decision over
//! `[a, b]` is final once `W > b`.

use serde::{Deserialize, Serialize};

/// Event time: milliseconds since the Unix epoch (UTC). Never negative (decoding rejects it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct EventTime(pub u64);

impl EventTime {
    /// The time `ms` milliseconds later, saturating.
    pub const fn plus_ms(self, ms: u64) -> EventTime {
        EventTime(self.0.saturating_add(ms))
    }
    /// The time `ms` milliseconds earlier, saturating at the epoch.
    pub const fn minus_ms(self, ms: u64) -> EventTime {
        EventTime(self.0.saturating_sub(ms))
    }
    /// Milliseconds since the epoch.
    pub const fn ms(self) -> u64 {
        self.0
    }
}

/// A watermark: every event with `ts < W` is known.
///
/// This is the engine's notion of "now" on the event-time axis. Decisions whose decision point `d`
/// satisfies `d < W` are final ([`Watermark::passed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Watermark(pub u64);

impl Watermark {
    /// True when the decision point `d` is final under this watermark (`W > d`).
    pub const fn passed(self, d: EventTime) -> bool {
        self.0 > d.0
    }
}

/// How late events are treated: the allowed lateness of a source.
///
/// A source's watermark is `max ts seen − lateness`; an event below it on arrival is late, goes to
/// the late output (counted, optionally forwarded) and is not processed. Nothing is dropped silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lateness {
    /// Allowed lateness in milliseconds.
    pub ms: u64,
}

impl Default for Lateness {
    fn default() -> Self {
        Lateness { ms: 2_000 }
    }
}
