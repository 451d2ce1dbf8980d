//! Counters behind `GET /metrics` (Prometheus text format 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use vigil_engine::decode::Reason;
use vigil_rules::Alarm;

use crate::core::IngestReport;

/// The sidecar's counters.
#[derive(Debug)]
pub struct Metrics {
    /// Events accepted (durable, sent to the engine).
    pub accepted: AtomicU64,
    /// Late events (dead-lettered).
    pub late: AtomicU64,
    /// Rejected lines by reason, in [`Reason::ALL`] order.
    pub rejected: [AtomicU64; Reason::ALL.len()],
    /// Ingest requests answered "busy".
    pub busy: AtomicU64,
    /// Checkpoints taken.
    pub checkpoints: AtomicU64,
    /// Failed syslog sends.
    pub syslog_errors: AtomicU64,
    /// Last journal seq.
    pub journal_seq: AtomicU64,
    /// Oldest seq retained in the journal.
    pub journal_first_seq: AtomicU64,
    alarms: Mutex<BTreeMap<(String, &'static str), u64>>,
    latency: Mutex<BTreeMap<String, Histogram<u64>>>,
}

/// Engine-side readings taken when rendering.
#[derive(Debug, Clone)]
pub struct EngineReading {
    /// Engine watermark (event-time ms).
    pub watermark: u64,
    /// Events processed by the engine since this process started.
    pub processed: u64,
    /// Batches queued in front of the engine.
    pub queue_depth: usize,
    /// Wall clock now (ms).
    pub now_ms: u64,
    /// The open sources and their watermarks.
    pub sources: Vec<(String, u64)>,
}

impl Metrics {
    /// Zeroed counters; `journal_seq` and `journal_first_seq` from the journal.
    pub fn new(journal_seq: u64, journal_first_seq: u64) -> Metrics {
        Metrics {
            accepted: AtomicU64::new(0),
            late: AtomicU64::new(0),
            rejected: Default::default(),
            busy: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            syslog_errors: AtomicU64::new(0),
            journal_seq: AtomicU64::new(journal_seq),
            journal_first_seq: AtomicU64::new(journal_first_seq),
            alarms: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts an ingest answer.
    pub fn count_ingest(&self, r: &IngestReport) {
        self.accepted.fetch_add(r.accepted, Ordering::Relaxed);
        self.late.fetch_add(r.late.len() as u64, Ordering::Relaxed);
        for x in &r.rejected {
            if let Some(i) = Reason::ALL.iter().position(|reason| reason.name() == x.reason) {
                self.rejected[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts a journaled alarm.
    pub fn count_alarm(&self, a: &Alarm, seq: u64) {
        self.journal_seq.store(seq, Ordering::Relaxed);
        *self.alarms.lock().unwrap_or_else(|e| e.into_inner()).entry((a.rule.clone(), a.band.name())).or_default() += 1;
        let mut lat = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = lat.entry(a.rule.clone()).or_insert_with(|| {
            Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| unreachable!("static bounds are valid"))
        });
        h.saturating_record(a.latency_us.max(1));
    }

    /// The Prometheus text.
    pub fn render(&self, e: EngineReading) -> String {
        let mut s = String::with_capacity(4_096);
        let _ = writeln!(s, "# HELP vigil_events_accepted_total Events accepted (durable in the ingest log).");
        let _ = writeln!(s, "# TYPE vigil_events_accepted_total counter");
        let _ = writeln!(s, "vigil_events_accepted_total {}", self.accepted.load(Ordering::Relaxed));
        let _ = writeln!(s, "# HELP vigil_events_rejected_total Lines rejected, by reason.");
        let _ = writeln!(s, "# TYPE vigil_events_rejected_total counter");
        for (i, r) in Reason::ALL.iter().enumerate() {
            let _ = writeln!(
                s,
                "vigil_events_rejected_total{{reason=\"{}\"}} {}",
                r.name(),
                self.rejected[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(s, "# HELP vigil_events_late_total Events below the watermark (dead-lettered).");
        let _ = writeln!(s, "# TYPE vigil_events_late_total counter");
        let _ = writeln!(s, "vigil_events_late_total {}", self.late.load(Ordering::Relaxed));
        let _ = writeln!(s, "# HELP vigil_events_processed_total Events the engine processed since start.");
        let _ = writeln!(s, "# TYPE vigil_events_processed_total counter");
        let _ = writeln!(s, "vigil_events_processed_total {}", e.processed);
        let _ = writeln!(s, "# HELP vigil_ingest_busy_total Ingest requests refused because the engine was behind.");
        let _ = writeln!(s, "# TYPE vigil_ingest_busy_total counter");
        let _ = writeln!(s, "vigil_ingest_busy_total {}", self.busy.load(Ordering::Relaxed));
        let _ = writeln!(s, "# HELP vigil_alarms_total Alarms journaled, by rule and band.");
        let _ = writeln!(s, "# TYPE vigil_alarms_total counter");
        for ((rule, band), n) in self.alarms.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(s, "vigil_alarms_total{{rule=\"{rule}\",band=\"{band}\"}} {n}");
        }
        let _ = writeln!(s, "# HELP vigil_alarm_latency_us Alarm latency (emission - ingest of the final input).");
        let _ = writeln!(s, "# TYPE vigil_alarm_latency_us summary");
        for (rule, h) in self.latency.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            for q in [0.5, 0.99, 0.999] {
                let _ = writeln!(
                    s,
                    "vigil_alarm_latency_us{{rule=\"{rule}\",quantile=\"{q}\"}} {}",
                    h.value_at_quantile(q)
                );
            }
            let _ = writeln!(s, "vigil_alarm_latency_us_count{{rule=\"{rule}\"}} {}", h.len());
        }
        let _ = writeln!(s, "# HELP vigil_queue_depth Batches queued in front of the engine.");
        let _ = writeln!(s, "# TYPE vigil_queue_depth gauge");
        let _ = writeln!(s, "vigil_queue_depth {}", e.queue_depth);
        let _ = writeln!(s, "# HELP vigil_watermark_ms The engine watermark (event time, ms).");
        let _ = writeln!(s, "# TYPE vigil_watermark_ms gauge");
        let _ = writeln!(s, "vigil_watermark_ms {}", e.watermark);
        let _ = writeln!(
            s,
            "# HELP vigil_source_watermark_ms Each open source's watermark (the lowest holds the engine's)."
        );
        let _ = writeln!(s, "# TYPE vigil_source_watermark_ms gauge");
        for (name, w) in &e.sources {
            let _ = writeln!(s, "vigil_source_watermark_ms{{source=\"{name}\"}} {w}");
        }
        let _ = writeln!(s, "# HELP vigil_watermark_lag_ms Wall clock minus the engine watermark.");
        let _ = writeln!(s, "# TYPE vigil_watermark_lag_ms gauge");
        let _ = writeln!(s, "vigil_watermark_lag_ms {}", e.now_ms.saturating_sub(e.watermark));
        let _ = writeln!(s, "# HELP vigil_journal_seq Sequence number of the last journaled alarm.");
        let _ = writeln!(s, "# TYPE vigil_journal_seq gauge");
        let _ = writeln!(s, "vigil_journal_seq {}", self.journal_seq.load(Ordering::Relaxed));
        let _ = writeln!(s, "# HELP vigil_journal_first_seq Oldest alarm seq retained in the journal.");
        let _ = writeln!(s, "# TYPE vigil_journal_first_seq gauge");
        let _ = writeln!(s, "vigil_journal_first_seq {}", self.journal_first_seq.load(Ordering::Relaxed));
        let _ = writeln!(s, "# HELP vigil_checkpoints_total Checkpoints taken since start.");
        let _ = writeln!(s, "# TYPE vigil_checkpoints_total counter");
        let _ = writeln!(s, "vigil_checkpoints_total {}", self.checkpoints.load(Ordering::Relaxed));
        let _ = writeln!(
            s,
            "# HELP vigil_syslog_errors_total CEF/syslog messages not sent (send failed, or the 65 536-message queue was full)."
        );
        let _ = writeln!(s, "# TYPE vigil_syslog_errors_total counter");
        let _ = writeln!(s, "vigil_syslog_errors_total {}", self.syslog_errors.load(Ordering::Relaxed));
        s
    }
}
