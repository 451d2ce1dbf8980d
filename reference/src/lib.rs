//! A naive, brute-force reference of vigil's twelve default rules, for differential tests.
//!
//! [`evaluate`] reads a site topology (`site.toml`) and canonical NDJSON events, sorts every
//! accepted event by the total order of DESIGN §4 (ts, then type rank, then the id of the
//! event's primary device field, then input order) and runs each rule as a plain pass over that
//! vector, often a nested loop. It favours being obviously right over being fast: inputs of a
//! few tens of thousands of events are what it is for. It shares no code with `vigil-engine`
//! or `vigil-rules` on purpose; it is written from `DESIGN.md` alone.
//!
//! The input is a finished replay: the watermark ends at the largest ts plus 1 ms, so a
//! decision whose decision point `d` satisfies `d <= max ts` is final and every later one stays
//! pending and raises no alarm. Confirmations fire whenever both events exist.
//!
//! ```
//! let site = r#"
//!     [site]
//!     id = "hq"
//!     [[area]]
//!     id = "out"
//!     [[area]]
//!     id = "lab"
//!     [[door]]
//!     id = "d-lab"
//!     from = "out"
//!     to = "lab"
//! "#;
//! let events = r#"{"ts":1000,"type":"duress","door":"d-lab"}"#;
//! let alarms = vigil_reference::evaluate(site, events, &[]).expect("valid site");
//! let duress = vigil_reference::RefAlarm {
//!     rule: "duress".to_string(),
//!     ts: 1000,
//!     key: "d-lab".to_string(),
//!     priority: 250,
//! };
//! assert_eq!(alarms, vec![duress]);
//! ```

mod event;
mod rules;
mod site;
mod time;

use std::fmt;

/// One alarm, as identity plus priority.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RefAlarm {
    /// Rule name from the default pack, e.g. `"tailgating"`.
    pub rule: String,
    /// The trigger event's ts (ms since the Unix epoch).
    pub ts: i64,
    /// The rule's key: a door, card, area or device id.
    pub key: String,
    /// `clamp(rule priority + 10 × (criticality − 3), 1, 255)`.
    pub priority: u8,
}

/// Why [`evaluate`] could not run.
#[derive(Debug)]
pub enum RefError {
    /// The site topology is invalid; the message names the offending id.
    Site(String),
}

impl fmt::Display for RefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefError::Site(msg) => write!(f, "invalid site: {msg}"),
        }
    }
}

impl std::error::Error for RefError {}

/// The names of the twelve default rules.
pub const DEFAULT_RULES: [&str; 12] = [
    "forced_entry_confirmed",
    "forced_entry_unconfirmed",
    "door_held_open",
    "tailgating",
    "anti_passback",
    "access_denied_burst",
    "access_denied_burst_door",
    "impossible_travel",
    "duress",
    "intrusion_confirmed",
    "device_offline",
    "after_hours_access",
];

/// Evaluate the default rules named in `rules` (all twelve if `rules` is empty) over the events
/// of `ndjson` (one JSON object per line) against the site topology `site_toml`.
///
/// Lines that the spec says are rejected (invalid JSON, missing ts/type, unknown type, unknown
/// device, missing required field) are skipped, as are blank lines. Returns alarms sorted
/// (rule, ts, key), no duplicates of identity (rule, ts, key): when two triggers share an
/// identity, the one first in the stream gives the priority.
///
/// # Errors
///
/// [`RefError::Site`] when `site_toml` is not a valid topology.
///
/// # Panics
///
/// If `rules` names a rule that is not one of [`DEFAULT_RULES`].
pub fn evaluate(site_toml: &str, ndjson: &str, rules: &[&str]) -> Result<Vec<RefAlarm>, RefError> {
    let site = site::Site::parse(site_toml)?;
    let events = event::decode_all(ndjson, &site);
    let max_ts = events.iter().map(|e| e.ts).max().unwrap_or(i64::MIN);
    let input = rules::Input { site: &site, events: &events, max_ts };
    let selected: Vec<&str> = if rules.is_empty() { DEFAULT_RULES.to_vec() } else { rules.to_vec() };
    let mut candidates = Vec::new();
    for name in selected {
        assert!(DEFAULT_RULES.contains(&name), "vigil-reference: unknown rule {name:?}");
        rules::run(name, &input, &mut candidates);
    }
    // Sorted by (rule, ts, key, stream order): the first of each identity is the earliest trigger.
    candidates.sort();
    candidates.dedup_by(|later, first| later.rule == first.rule && later.ts == first.ts && later.key == first.key);
    Ok(candidates
        .into_iter()
        .map(|c| RefAlarm { rule: c.rule.to_string(), ts: c.ts, key: c.key, priority: c.priority })
        .collect())
}

#[cfg(test)]
mod tests;
