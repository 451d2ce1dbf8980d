//! # vigil-engine: the runtime of vigil
//!
//! Moves millions of physical-security events per second through the rules of a
//! [`vigil_rules::RulePack`] and emits prioritized alarms with measured latency.
//!
//! Three types matter:
//!
//! * [`EngineBuilder`] (from [`Engine::builder`]) takes a validated [`vigil_rules::Topology`] and a
//!   rule pack, checks the configuration and starts N timely worker threads (or one process of a
//!   cluster);
//! * [`Source`] is one ordered feed of events — NDJSON lines, decoded events or Arrow batches —
//!   with its own watermark and a bounded queue (pushes block, or hand the batch back, when full);
//! * [`Engine`] hands out sources, streams [`vigil_rules::Alarm`]s on a crossbeam channel as soon as
//!   they are final, and [`Engine::finish`] returns [`Stats`].
//!
//! ## Time, ordering and late data
//!
//! Rules run on event time. Each source's watermark is `max ts seen − allowed lateness`
//! ([`vigil_rules::Lateness`], default 2 s); an event below it on arrival is **late**: counted,
//! forwarded to the optional late output, not processed. The engine's watermark is the minimum
//! over open sources, carried by timely's frontier. Confirmations fire the moment both events are
//! present; decisions that depend on absence or order fire when the watermark passes their
//! decision point. The alarm set is therefore the same for any worker count, batch size or arrival
//! order within the lateness. At [`Engine::finish`] the watermark becomes the largest `ts` + 1 ms:
//! decisions reaching past the end stay pending and are counted, not alarmed.
//!
//! ## Dataflow
//!
//! sources → decode and intern (on the owning worker) → route to keys per keyspace (a camera's
//! events reach every door it watches) → exchange by key → rule operator per keyspace → alarm sink
//! on worker 0 (renders, measures latency, sends). No state is shared between workers outside the
//! dataflow, so the same program runs as N threads or P processes ([`Cluster`]).
//!
//! ## Example
//!
//! ```
//! use std::sync::Arc;
//! use vigil_engine::Engine;
//! use vigil_rules::{RulePack, Topology};
//!
//! let site = Arc::new(Topology::from_toml(r#"
//!     [site]
//!     id = "hq"
//!     [[area]]
//!     id = "lobby"
//!     [[area]]
//!     id = "lab"
//!     [[door]]
//!     id = "d-lab"
//!     from = "lobby"
//!     to = "lab"
//!     cameras = ["cam-7"]
//!     [[camera]]
//!     id = "cam-7"
//! "#).unwrap());
//! let engine = Engine::builder(site, RulePack::default_pack()).workers(1).build().unwrap();
//! let alarms = engine.alarms().clone();
//! let mut source = engine.source("panel-1");
//! source.push_ndjson(br#"{"ts":1000,"type":"door.forced","door":"d-lab"}
//! {"ts":2500,"type":"motion","camera":"cam-7"}
//! "#.to_vec()).unwrap();
//! drop(source);
//! let stats = engine.finish().unwrap();
//! let alarm = alarms.recv().unwrap();
//! assert_eq!(alarm.rule, "forced_entry_confirmed");
//! assert_eq!(stats.alarms["forced_entry_confirmed"], 1);
//! ```
#![deny(missing_docs)]

#[cfg(feature = "arrow")]
pub mod arrow_io;
pub mod checkpoint;
pub mod clock;
pub mod decode;
mod engine;
mod operators;
pub mod source;
pub mod stats;
mod swap;

pub use checkpoint::{CheckpointError, Snapshot};
pub use clock::IngestClock;
pub use engine::{Cluster, Engine, EngineBuilder, EngineError, LateEvent};
pub use source::{PushError, Source, TryPushError};
pub use stats::{LatencySummary, SourceRejection, Stats};
pub use swap::SwapReport;

/// Re-exported so hosts can build Arrow batches without naming the version.
#[cfg(feature = "arrow")]
pub use arrow_array;
