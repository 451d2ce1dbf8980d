//! Statistics returned by [`crate::Engine::finish`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::decode::{Reason, Rejection};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Number of alarms measured.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
}

impl LatencySummary {
    /// Summarizes a histogram (µs).
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

impl fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs", self.p50, self.p99, self.p999, self.max)
    }
}

/// A rejected line with the source it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRejection {
    /// The source's name.
    pub source: String,
    /// The line and why.
    pub rejection: Rejection,
}

impl fmt::Display for SourceRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.rejection)
    }
}

/// What an engine run did. Counts cover this process (in multi-process runs, alarms and their
/// latencies are all counted by process 0, which hosts the alarm sink).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Events accepted and processed.
    pub events: u64,
    /// Rejected lines by reason.
    pub rejected: BTreeMap<Reason, u64>,
    /// The first rejections, with line numbers (at most [`crate::EngineBuilder::rejection_samples`]).
    pub rejection_samples: Vec<SourceRejection>,
    /// Events that arrived below their source's watermark (not processed).
    pub late: u64,
    /// Decisions that reached past the end of the input (counted, not alarmed).
    pub pending: u64,
    /// Partial matches dropped by per-key caps.
    pub dropped: u64,
    /// Alarms per rule id (every rule of the pack, zero included).
    pub alarms: BTreeMap<String, u64>,
    /// Latency per rule id (rules with alarms).
    pub latency: BTreeMap<String, LatencySummary>,
    /// Latency over all alarms.
    pub latency_all: LatencySummary,
    /// Raw latency histograms per rule (µs), for reports.
    pub histograms: BTreeMap<String, Histogram<u64>>,
    /// Worker threads in this process.
    pub workers: usize,
    /// From build to finish.
    pub wall: Duration,
}

impl Stats {
    /// Total rejected lines.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
    /// Total alarms.
    pub fn alarms_total(&self) -> u64 {
        self.alarms.values().sum()
    }
    /// Events per second of wall time.
    pub fn events_per_s(&self) -> f64 {
        let s = self.wall.as_secs_f64();
        if s > 0.0 { self.events as f64 / s } else { 0.0 }
    }
}
