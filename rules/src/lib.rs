//! # vigil-rules: the domain of vigil
//!
//! What a physical-security event means, with no runtime in it:
//!
//! * [`Event`]: the compact 32-byte `Copy` event the hot path moves, with interned ids
//!   ([`DeviceIx`], [`CardKey`]) and its [`EventType`] (declared in type-rank order);
//! * [`Topology`]: the validated site (`site.toml`): sites, areas, doors, readers, cameras, sensors,
//!   devices and travel times, interned into dense indices, with topology-aware routing
//!   ([`keyspace::for_each_key`]);
//! * [`RulePack`] and [`Detector`]: rules as data, evaluated by plain state machines that the
//!   engine hosts per [`Keyspace`]; they emit [`RawAlarm`]s, rendered into [`Alarm`]s.
//!
//! Time is event time ([`EventTime`], milliseconds since the Unix epoch); a [`Watermark`] `W`
//! promises every event with `ts < W` is known, and a decision over `[a, b]` is final once `W > b`.
//!
//! ```
//! use vigil_rules::{RulePack, Topology};
//! let topo = Topology::from_toml("[site]\nid = \"hq\"\n[[area]]\nid = \"a\"\n[[area]]\nid = \"b\"\n\
//!     [[door]]\nid = \"d\"\nfrom = \"a\"\nto = \"b\"\n").unwrap();
//! let pack = RulePack::default_pack();
//! assert_eq!(pack.rules().len(), 12);
//! let rules: Vec<_> = pack.rules().iter().enumerate().map(|(i, r)| (vigil_rules::RuleId(i as u16), r.clone())).collect();
//! let detectors = RulePack::detectors(&std::sync::Arc::new(topo), &rules);
//! assert_eq!(detectors.len(), 10); // the forced-entry pair and the per-card built-ins share detectors
//! ```
#![deny(missing_docs)]

pub mod alarm;
pub mod detect;
pub mod event;
pub mod filter;
pub mod keyspace;
pub mod pack;
pub mod schedule;
pub mod time;
pub mod topology;

pub use alarm::{Alarm, Band, Finality, RawAlarm, Renderer, RuleBook};
pub use detect::Detector;
pub use event::{CardKey, Event, EventType, TypeSet};
pub use keyspace::{Key, Keyspace};
pub use pack::{DEFAULT_PACK, PackError, PackErrors, RuleDef, RuleId, RuleKind, RulePack, Window};
pub use schedule::Schedule;
pub use time::{EventTime, Lateness, Watermark};
pub use topology::{AreaIx, DeviceIx, DeviceKind, DoorIx, SiteIx, Topology, TopologyError, TopologyErrors};
