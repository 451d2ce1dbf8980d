//! Detectors: the state machines behind rules, one per rule (or pair of rules) per keyspace.
//!
//! A detector sees the events of its keyspace through two doors:
//!
//! * [`Detector::on_arrival`] as events arrive, in any order — for confirmations, which fire the
//!   moment both halves are present, whatever the order they came in;
//! * [`Detector::on_final`] in the total event order (`ts`, type rank, device, card) once the
//!   watermark has passed them — for everything whose answer depends on order.
//!
//! [`Detector::advance`] moves the detector's watermark: every decision whose decision point `d`
//! satisfies `d < W` is final and fires or is dropped. The host calls `advance(ev.ts)` before each
//! `on_final(ev)`, and `advance(W)` after the last event below `W`, so deadlines interleave with
//! events exactly in event-time order. Calls to `advance` are monotone.
//!
//! Detectors hold no timely types: the engine hosts them in its rule operators.

mod cards;
mod count;
mod episode;
mod matcher;
mod offline;
mod sequence;
mod tailgating;

pub use cards::CardRules;
pub use count::{Count, Distinct};
pub use episode::Episode;
pub use matcher::Matcher;
pub use offline::DeviceOffline;
pub use sequence::Sequence;
pub use tailgating::Tailgating;

use std::collections::HashMap;
use std::fmt;

use crate::alarm::RawAlarm;
use crate::event::{Event, TypeSet};
use crate::keyspace::Key;
use crate::time::Watermark;

/// A rule state machine for one keyspace.
pub trait Detector: Send + fmt::Debug {
    /// The event types it consumes.
    fn types(&self) -> TypeSet;
    /// True when it needs [`Detector::on_final`] (events in total order).
    fn needs_order(&self) -> bool;
    /// An event of its types for `key` arrived (any order).
    fn on_arrival(&mut self, _key: Key, _ev: &Event, _out: &mut Vec<RawAlarm>) {}
    /// The next event of its types for `key` in the total order.
    fn on_final(&mut self, _key: Key, _ev: &Event, _out: &mut Vec<RawAlarm>) {}
    /// The watermark moved to `w`: decisions with decision point `< w` are final.
    fn advance(&mut self, w: Watermark, out: &mut Vec<RawAlarm>);
    /// Decisions not yet final (reported as pending at the end of a replay).
    fn pending(&self) -> u64;
    /// Partial matches dropped because a per-key cap was reached.
    fn dropped(&self) -> u64 {
        0
    }
    /// Its state (partial matches, deadlines, counters), for a checkpoint. Configuration (the rule,
    /// the topology) is not included: [`Detector::load`] goes into a detector built from the
    /// same rule and site.
    fn save(&self) -> Result<Vec<u8>, StateError>;
    /// Replaces its state with one [`Detector::save`] produced.
    fn load(&mut self, bytes: &[u8]) -> Result<(), StateError>;
}

/// A detector state that could not be saved or restored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Encoding or decoding failed (a corrupt or foreign checkpoint).
    #[error("detector state could not be encoded or decoded: {0}")]
    Codec(String),
    /// The state does not fit this detector (the site changed since the checkpoint).
    #[error("detector state does not fit: {0}")]
    Mismatch(String),
}

/// Encodes a state value (bincode: compact, fixed-width integers).
pub fn save_state<T: serde::Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, StateError> {
    bincode::serialize(v).map_err(|e| StateError::Codec(e.to_string()))
}

/// Decodes a state value saved by [`save_state`].
pub fn load_state<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StateError> {
    bincode::deserialize(bytes).map_err(|e| StateError::Codec(e.to_string()))
}

/// Per-key state: a dense vector for door/area/device keyspaces, a hash map for cards.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum StateMap<S> {
    /// Indexed by the key.
    Dense(Vec<S>),
    /// Keyed by the card fingerprint.
    Sparse(HashMap<Key, S>),
}

impl<S> StateMap<S> {
    /// Checks that a restored map has the shape this detector was built with (a dense map's
    /// length is the number of keys of the site).
    pub fn check_shape(&self, built: &StateMap<S>) -> Result<(), StateError> {
        match (self, built) {
            (StateMap::Dense(a), StateMap::Dense(b)) if a.len() == b.len() => Ok(()),
            (StateMap::Sparse(_), StateMap::Sparse(_)) => Ok(()),
            (StateMap::Dense(a), StateMap::Dense(b)) => {
                Err(StateError::Mismatch(format!("{} keys saved, the site has {}", a.len(), b.len())))
            }
            _ => Err(StateError::Mismatch("dense and sparse key maps".into())),
        }
    }
}

impl<S: Default> StateMap<S> {
    /// Dense when `len > 0`, else sparse.
    pub fn new(len: usize) -> StateMap<S> {
        if len > 0 {
            StateMap::Dense((0..len).map(|_| S::default()).collect())
        } else {
            StateMap::Sparse(HashMap::new())
        }
    }
    /// The state of `key`, created on first use.
    #[inline]
    pub fn get_mut(&mut self, key: Key) -> &mut S {
        match self {
            StateMap::Dense(v) => &mut v[key as usize],
            StateMap::Sparse(m) => m.entry(key).or_default(),
        }
    }
    /// The state of `key`, if it exists.
    #[inline]
    pub fn get(&self, key: Key) -> Option<&S> {
        match self {
            StateMap::Dense(v) => v.get(key as usize),
            StateMap::Sparse(m) => m.get(&key),
        }
    }
    /// Drops the state of a key (sparse maps only; dense slots are reset).
    pub fn remove(&mut self, key: Key) {
        match self {
            StateMap::Dense(v) => {
                if let Some(s) = v.get_mut(key as usize) {
                    *s = S::default()
                }
            }
            StateMap::Sparse(m) => {
                m.remove(&key);
            }
        }
    }
}
