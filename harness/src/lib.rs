//! # vigil-harness: measuring vigil honestly
//!
//! * [`feed`]: the replay driver's feeding of NDJSON and Arrow files into an engine's sources;
//! * [`pace`]: open-loop pacing at a fixed offered rate, each batch stamped with its *scheduled*
//!   send time so a stalled engine cannot hide its delay;
//! * [`score`]: precision and recall per rule against ground-truth labels (an alarm matches a
//!   label on rule, ts and key);
//! * [`report`]: `report.json` (DESIGN §10) with SVG charts of latency by percentile per rule and
//!   throughput over time.
#![deny(missing_docs)]

pub mod feed;
pub mod pace;
pub mod report;
pub mod score;
