//! Scoring alarms against ground-truth labels: an alarm matches a label on (rule, ts, key).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// An alarm or label identity.
pub type Identity = (String, u64, String);

/// Per-rule score.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleScore {
    /// Alarms raised.
    pub alarms: u64,
    /// Labels.
    pub expected: u64,
    /// Alarms that match a label.
    pub true_positives: u64,
}

impl RuleScore {
    /// Share of alarms that were expected (1.0 with no alarms).
    pub fn precision(&self) -> f64 {
        if self.alarms == 0 { 1.0 } else { self.true_positives as f64 / self.alarms as f64 }
    }
    /// Share of expected alarms that were raised (1.0 with nothing expected).
    pub fn recall(&self) -> f64 {
        if self.expected == 0 { 1.0 } else { self.true_positives as f64 / self.expected as f64 }
    }
}

const KEY_FIELDS: [&str; 7] = ["door", "card", "area", "device", "camera", "sensor", "site"];

/// A labels file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a label.
    #[error("{path}: line {line}: {reason}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// Why.
        reason: String,
    },
}

/// Reads labels NDJSON: `{"rule":…, "ts":…, <key field>:…}` per line.
pub fn read_labels(path: &Path) -> Result<BTreeSet<Identity>, LabelError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LabelError::Io { path: p.clone(), source })?;
    let mut out = BTreeSet::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| LabelError::Line {
            path: p.clone(),
            line: i + 1,
            reason: format!("not JSON: {e}"),
        })?;
        let rule = v["rule"].as_str();
        let ts = v["ts"].as_u64();
        let key = KEY_FIELDS.iter().find_map(|k| v[*k].as_str());
        match (rule, ts, key) {
            (Some(r), Some(t), Some(k)) => {
                out.insert((r.to_string(), t, k.to_string()));
            }
            _ => {
                return Err(LabelError::Line {
                    path: p.clone(),
                    line: i + 1,
                    reason: format!("a label needs rule, ts and a key field ({})", KEY_FIELDS.join(", ")),
                });
            }
        }
    }
    Ok(out)
}

/// Scores `alarms` against `labels`, per rule (every rule of either side).
pub fn score(alarms: &BTreeSet<Identity>, labels: &BTreeSet<Identity>) -> BTreeMap<String, RuleScore> {
    let mut out: BTreeMap<String, RuleScore> = BTreeMap::new();
    for a in alarms {
        let s = out.entry(a.0.clone()).or_default();
        s.alarms += 1;
        if labels.contains(a) {
            s.true_positives += 1;
        }
    }
    for l in labels {
        out.entry(l.0.clone()).or_default().expected += 1;
    }
    out
}

/// A printable table.
pub fn table(scores: &BTreeMap<String, RuleScore>) -> String {
    use std::fmt::Write as _;
    let mut s = String::from("score      rule                       alarms  expected  true+  precision  recall\n");
    for (rule, r) in scores {
        let _ = writeln!(
            s,
            "           {rule:<26}{:>6}{:>10}{:>7}{:>11.3}{:>8.3}",
            r.alarms,
            r.expected,
            r.true_positives,
            r.precision(),
            r.recall()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_and_recall_per_rule() {
        let id = |r: &str, t: u64, k: &str| (r.to_string(), t, k.to_string());
        let labels = BTreeSet::from([id("duress", 1, "d"), id("duress", 2, "d"), id("tailgating", 5, "x")]);
        let alarms = BTreeSet::from([id("duress", 1, "d"), id("duress", 3, "d"), id("device_offline", 9, "c")]);
        let s = score(&alarms, &labels);
        assert_eq!(s["duress"], RuleScore { alarms: 2, expected: 2, true_positives: 1 });
        assert_eq!((s["duress"].precision(), s["duress"].recall()), (0.5, 0.5));
        assert_eq!((s["tailgating"].precision(), s["tailgating"].recall()), (1.0, 0.0));
        assert_eq!((s["device_offline"].precision(), s["device_offline"].recall()), (0.0, 1.0));
    }
}
