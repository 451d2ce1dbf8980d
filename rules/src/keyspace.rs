//! Keyspaces and topology-aware routing: which keys an event concerns.

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventType, FLAG_NAMES_DOOR};
use crate::topology::{DeviceIx, DeviceKind, Topology};

/// The keyspaces rule state is partitioned by. Each has one exchange and one rule operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Keyspace {
    /// Keys are [`crate::DoorIx`].
    Door,
    /// Keys are [`crate::CardKey`] fingerprints.
    Card,
    /// Keys are [`crate::AreaIx`].
    Area,
    /// Keys are [`DeviceIx`]: every device an event names.
    Device,
    /// Keys are [`DeviceIx`] of cameras.
    Camera,
    /// Keys are [`DeviceIx`] of sensors.
    Sensor,
    /// Keys are [`crate::SiteIx`].
    Site,
}

impl Keyspace {
    /// Every keyspace.
    pub const ALL: [Keyspace; 7] = [
        Keyspace::Door,
        Keyspace::Card,
        Keyspace::Area,
        Keyspace::Device,
        Keyspace::Camera,
        Keyspace::Sensor,
        Keyspace::Site,
    ];

    /// Parses a `group_by` name.
    pub fn from_name(name: &str) -> Option<Keyspace> {
        Keyspace::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether events of type `t` can map to a key of this keyspace.
    pub fn can_key(self, t: EventType) -> bool {
        use EventType::*;
        match self {
            Keyspace::Door => !matches!(t, Intrusion | GlassBreak | Heartbeat),
            Keyspace::Card => t.is_access(),
            Keyspace::Area => t != Heartbeat,
            Keyspace::Device | Keyspace::Site => true,
            Keyspace::Camera => matches!(t, Motion | LineCrossed | CameraTamper | Heartbeat),
            Keyspace::Sensor => matches!(t, Intrusion | GlassBreak | Heartbeat),
        }
    }

    /// The `group_by` name.
    pub const fn name(self) -> &'static str {
        match self {
            Keyspace::Door => "door",
            Keyspace::Card => "card",
            Keyspace::Area => "area",
            Keyspace::Device => "device",
            Keyspace::Camera => "camera",
            Keyspace::Sensor => "sensor",
            Keyspace::Site => "site",
        }
    }

    /// Dense keyspaces index state by vector; the card keyspace is sparse (hash map).
    pub const fn is_dense(self) -> bool {
        !matches!(self, Keyspace::Card)
    }
}

/// A rule key: a door, area or device index, or a card fingerprint, by keyspace.
pub type Key = u64;

/// Calls `f` with every key of `space` that `ev` concerns.
///
/// Door: a door event's door, a reader's door, every door a camera watches. Card: the card.
/// Area: a sensor's or camera's area. Device: the primary device, and the door when the line named it.
#[inline]
pub fn for_each_key(topo: &Topology, space: Keyspace, ev: &Event, mut f: impl FnMut(Key)) {
    match space {
        Keyspace::Door => {
            for d in topo.doors_of(ev.device) {
                f(d.0 as Key)
            }
        }
        Keyspace::Card => {
            if ev.card.is_some() {
                f(ev.card.0)
            }
        }
        Keyspace::Area => {
            if let Some(a) = crate::filter::event_area(topo, ev) {
                f(a.0 as Key)
            }
        }
        Keyspace::Device => {
            f(ev.device.0 as Key);
            if ev.flags & FLAG_NAMES_DOOR != 0 {
                if let Some(d) = topo.door_of(ev.device) {
                    f(topo.door_info(d).device.0 as Key)
                }
            }
        }
        Keyspace::Camera => {
            if topo.device_info(ev.device).kind == DeviceKind::Camera {
                f(ev.device.0 as Key)
            }
        }
        Keyspace::Sensor => {
            if matches!(topo.device_info(ev.device).kind, DeviceKind::Sensor(_)) {
                f(ev.device.0 as Key)
            }
        }
        Keyspace::Site => f(topo.device_info(ev.device).site.0 as Key),
    }
}

/// Whether a device of this kind can be the source of events of type `t`.
pub fn can_emit(kind: DeviceKind, t: EventType) -> bool {
    use EventType::*;
    match kind {
        _ if t == Heartbeat => true,
        DeviceKind::Door => {
            matches!(t, AccessGranted | AccessDenied | Duress | Rex | DoorForced | DoorOpened | DoorHeld | DoorClosed)
        }
        DeviceKind::Reader => matches!(t, AccessGranted | AccessDenied | Duress),
        DeviceKind::Camera => matches!(t, Motion | LineCrossed | CameraTamper),
        DeviceKind::Sensor(_) => matches!(t, Intrusion | GlassBreak),
        DeviceKind::Other => false,
    }
}

/// Calls `f` with every key of `space` that events of device `dev` can reach (static routing,
/// used to know whether a key can ever receive some event type).
pub fn device_keys(topo: &Topology, space: Keyspace, dev: DeviceIx, mut f: impl FnMut(Key)) {
    match space {
        Keyspace::Door => topo.doors_of(dev).iter().for_each(|d| f(d.0 as Key)),
        Keyspace::Card => {}
        Keyspace::Area => {
            let info = topo.device_info(dev);
            match info.door {
                Some(d) => {
                    let door = topo.door_info(d);
                    f(door.to.0 as Key);
                    f(door.from.0 as Key);
                }
                None => {
                    if let Some(a) = info.area {
                        f(a.0 as Key)
                    }
                }
            }
        }
        Keyspace::Device | Keyspace::Camera | Keyspace::Sensor => f(dev.0 as Key),
        Keyspace::Site => f(topo.device_info(dev).site.0 as Key),
    }
}

/// Number of dense keys of a keyspace (0 for the sparse card keyspace).
pub fn dense_len(topo: &Topology, space: Keyspace) -> usize {
    match space {
        Keyspace::Door => topo.door_count(),
        Keyspace::Card => 0,
        Keyspace::Area => topo.area_count(),
        Keyspace::Device | Keyspace::Camera | Keyspace::Sensor => topo.device_count(),
        Keyspace::Site => topo.site_count(),
    }
}
