//! The event model: canonical event types and the compact `Copy` event the hot path moves.

use serde::{Deserialize, Serialize};

use crate::time::EventTime;
use crate::topology::DeviceIx;

/// The canonical event types, declared in **type rank** order (DESIGN §4): at equal timestamps
/// events are ordered by this rank, so the discriminant is the rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum EventType {
    /// `access.granted`
    AccessGranted = 0,
    /// `access.denied`
    AccessDenied = 1,
    /// `duress`
    Duress = 2,
    /// `rex` (request to exit)
    Rex = 3,
    /// `door.forced`
    DoorForced = 4,
    /// `door.opened`
    DoorOpened = 5,
    /// `line.crossed`
    LineCrossed = 6,
    /// `motion`
    Motion = 7,
    /// `intrusion`
    Intrusion = 8,
    /// `glass_break`
    GlassBreak = 9,
    /// `camera.tamper`
    CameraTamper = 10,
    /// `door.held`
    DoorHeld = 11,
    /// `door.closed`
    DoorClosed = 12,
    /// `heartbeat`
    Heartbeat = 13,
}

impl EventType {
    /// Every type, in rank order.
    pub const ALL: [EventType; 14] = [
        EventType::AccessGranted,
        EventType::AccessDenied,
        EventType::Duress,
        EventType::Rex,
        EventType::DoorForced,
        EventType::DoorOpened,
        EventType::LineCrossed,
        EventType::Motion,
        EventType::Intrusion,
        EventType::GlassBreak,
        EventType::CameraTamper,
        EventType::DoorHeld,
        EventType::DoorClosed,
        EventType::Heartbeat,
    ];

    /// The canonical name, as written in NDJSON.
    pub const fn name(self) -> &'static str {
        match self {
            EventType::AccessGranted => "access.granted",
            EventType::AccessDenied => "access.denied",
            EventType::Duress => "duress",
            EventType::Rex => "rex",
            EventType::DoorForced => "door.forced",
            EventType::DoorOpened => "door.opened",
            EventType::LineCrossed => "line.crossed",
            EventType::Motion => "motion",
            EventType::Intrusion => "intrusion",
            EventType::GlassBreak => "glass_break",
            EventType::CameraTamper => "camera.tamper",
            EventType::DoorHeld => "door.held",
            EventType::DoorClosed => "door.closed",
            EventType::Heartbeat => "heartbeat",
        }
    }

    /// Parses a canonical name.
    pub fn from_name(name: &str) -> Option<EventType> {
        Some(match name {
            "access.granted" => EventType::AccessGranted,
            "access.denied" => EventType::AccessDenied,
            "duress" => EventType::Duress,
            "rex" => EventType::Rex,
            "door.forced" => EventType::DoorForced,
            "door.opened" => EventType::DoorOpened,
            "line.crossed" => EventType::LineCrossed,
            "motion" => EventType::Motion,
            "intrusion" => EventType::Intrusion,
            "glass_break" => EventType::GlassBreak,
            "camera.tamper" => EventType::CameraTamper,
            "door.held" => EventType::DoorHeld,
            "door.closed" => EventType::DoorClosed,
            "heartbeat" => EventType::Heartbeat,
            _ => return None,
        })
    }

    /// The type rank (ties at equal `ts` are ordered by it).
    pub const fn rank(self) -> u8 {
        self as u8
    }

    /// True for the access-control events that are presented at a reader or door.
    pub const fn is_access(self) -> bool {
        matches!(self, EventType::AccessGranted | EventType::AccessDenied | EventType::Duress)
    }
}

/// A set of event types, as a bit set indexed by rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
pub struct TypeSet(pub u16);

impl TypeSet {
    /// The empty set.
    pub const EMPTY: TypeSet = TypeSet(0);

    /// A set of the given types.
    pub const fn of(types: &[EventType]) -> TypeSet {
        let mut bits = 0u16;
        let mut i = 0;
        while i < types.len() {
            bits |= 1 << types[i] as u8;
            i += 1;
        }
        TypeSet(bits)
    }
    /// Membership.
    pub const fn contains(self, t: EventType) -> bool {
        self.0 & (1 << t as u8) != 0
    }
    /// Union.
    pub const fn union(self, other: TypeSet) -> TypeSet {
        TypeSet(self.0 | other.0)
    }
    /// True when no type is in the set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// A card (credential) as it travels the hot path: a 64-bit fingerprint of its id string.
///
/// Cards are not in the topology, and the same card must land on the same worker in every process,
/// so its key is derived from its content (xxh3-64), not from an arrival-order interner. The
/// engine keeps a directory from key back to the id string for alarms. `CardKey::NONE` (0) means
/// "no card". With a 64-bit hash the chance of any collision among one million cards is about
/// 3 × 10⁻⁸.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct CardKey(pub u64);

impl CardKey {
    /// No card.
    pub const NONE: CardKey = CardKey(0);

    /// The key of a card id string.
    pub fn of(card: &str) -> CardKey {
        let h = xxhash_rust::xxh3::xxh3_64(card.as_bytes());
        CardKey(if h == 0 { 1 } else { h })
    }
    /// True when the event carries a card.
    pub const fn is_some(self) -> bool {
        self.0 != 0
    }
}

/// Event flag: the direction is `out` (access events: from the reader; `line.crossed`: from the event).
pub const FLAG_OUT: u8 = 1;
/// Event flag: the line also named the reader's door in its `door` field (so the event names the door too).
pub const FLAG_NAMES_DOOR: u8 = 2;

/// The compact event the hot path moves: 32 bytes, `Copy`, no strings.
///
/// Every id is interned at decode: `device` is the primary device the event came from (the reader
/// for access events that name one, else the door, camera, sensor or device), `card` the card's
/// fingerprint. `ingest_ns` is the instant the event entered the engine, on the engine's ingest
/// clock, for latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(C)]
pub struct Event {
    /// Event time.
    pub ts: EventTime,
    /// Card fingerprint, [`CardKey::NONE`] when absent.
    pub card: CardKey,
    /// Ingest instant (ns on the engine's ingest clock).
    pub ingest_ns: u64,
    /// The primary device.
    pub device: DeviceIx,
    /// The event type.
    pub kind: EventType,
    /// [`FLAG_OUT`], [`FLAG_NAMES_DOOR`].
    pub flags: u8,
    /// People counted by a `line.crossed` (1 otherwise).
    pub count: u16,
}

const _: () = assert!(std::mem::size_of::<Event>() == 32);

impl Event {
    /// True when the direction is `out`.
    pub const fn is_out(&self) -> bool {
        self.flags & FLAG_OUT != 0
    }

    /// The total order rules see: `ts`, then type rank, then device sort rank (see
    /// [`crate::Topology::device_order`]), then card, count and flags. Two events equal under this
    /// order are interchangeable for every rule. Packed into integers once per event so sorting
    /// compares two words (recomputing a tuple per comparison was 30 % of a replay's instructions).
    pub fn order_key(&self, device_order: &[u32]) -> (u128, u64) {
        let device = device_order.get(self.device.0 as usize).copied().unwrap_or(u32::MAX);
        let hi = ((self.ts.0 as u128) << 64) | ((self.kind.rank() as u128) << 56) | ((device as u128) << 24);
        let lo = self.card.0;
        (hi | ((self.count as u128) << 8) | self.flags as u128, lo)
    }
}
