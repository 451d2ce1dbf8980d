//! The site topology (`site.toml`, DESIGN §3): parsed, validated and interned.
//!
//! [`Topology::from_toml`] parses the raw file, checks every reference and value, and interns every
//! id into dense integers: [`DeviceIx`] over all devices (doors, readers, cameras, sensors and
//! other devices share one namespace, because `heartbeat` may name any of them), plus [`DoorIx`],
//! [`AreaIx`] and [`SiteIx`]. All errors are collected, each naming the offending id.
//!
//! ```
//! let topo = vigil_rules::Topology::from_toml(r#"
//!     [site]
//!     id = "hq"
//!     [[area]]
//!     id = "outside"
//!     [[area]]
//!     id = "lab"
//!     [[door]]
//!     id = "d-lab"
//!     from = "outside"
//!     to = "lab"
//! "#).unwrap();
//! let d = topo.device("d-lab").unwrap();
//! assert!(topo.door_of(d).is_some());
//! ```

use std::collections::HashMap;
use std::fmt;

use rustc_hash::FxHashMap;

use serde::{Deserialize, Serialize};

use crate::schedule::Schedule;

macro_rules! dense_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        pub struct $name(pub u32);
        impl $name {
            /// The index into dense per-item vectors.
            pub const fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

dense_id!(
    /// A device (door, reader, camera, sensor or other device), interned.
    DeviceIx
);
dense_id!(
    /// A door, interned (dense per-door state is indexed by it).
    DoorIx
);
dense_id!(
    /// An area, interned.
    AreaIx
);
dense_id!(
    /// A site, interned.
    SiteIx
);

/// What a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A door (its contact and lock).
    Door,
    /// A card reader on a door.
    Reader,
    /// A camera.
    Camera,
    /// An intrusion or glass-break sensor.
    Sensor(SensorKind),
    /// Any other device that heartbeats (controller, I/O module, NVR).
    Other,
}

impl DeviceKind {
    /// The table name in `site.toml`.
    pub const fn table(self) -> &'static str {
        match self {
            DeviceKind::Door => "door",
            DeviceKind::Reader => "reader",
            DeviceKind::Camera => "camera",
            DeviceKind::Sensor(_) => "sensor",
            DeviceKind::Other => "device",
        }
    }
}

/// The kind of a sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorKind {
    /// An intrusion zone.
    Intrusion,
    /// A glass-break detector.
    GlassBreak,
}

/// A site.
#[derive(Debug, Clone)]
pub struct Site {
    /// Id from the file.
    pub id: Box<str>,
    /// Local time offset for schedules, minutes.
    pub utc_offset_min: i32,
    /// Default heartbeat interval of its devices, seconds.
    pub heartbeat_s: u32,
}

/// An area.
#[derive(Debug, Clone)]
pub struct Area {
    /// Id from the file.
    pub id: Box<str>,
    /// The site it belongs to.
    pub site: SiteIx,
    /// Optional enclosing area.
    pub parent: Option<AreaIx>,
    /// Optional opening hours.
    pub schedule: Option<Schedule>,
    /// 1..=5, default 3.
    pub criticality: u8,
    /// Doors into or out of this area enforce anti-passback.
    pub anti_passback: bool,
    /// Cameras located in this area.
    pub cameras: Vec<DeviceIx>,
}

/// A door.
#[derive(Debug, Clone)]
pub struct Door {
    /// The door as a device.
    pub device: DeviceIx,
    /// Unsecured side.
    pub from: AreaIx,
    /// Secured side.
    pub to: AreaIx,
    /// Cameras that watch it.
    pub cameras: Vec<DeviceIx>,
    /// Held-open threshold in milliseconds (default 30 s).
    pub held_open_ms: u64,
    /// The door's own criticality, else its `to` area's.
    pub criticality: u8,
}

/// A device of any kind.
#[derive(Debug, Clone)]
pub struct Device {
    /// Id from the file.
    pub id: Box<str>,
    /// What it is.
    pub kind: DeviceKind,
    /// Its site.
    pub site: SiteIx,
    /// The door it is (doors) or is mounted on (readers).
    pub door: Option<DoorIx>,
    /// The area it is located in (cameras, sensors).
    pub area: Option<AreaIx>,
    /// Readers: true when it admits `out` (from `to` to `from`).
    pub out: bool,
    /// Heartbeat interval, seconds (its own, else its site's).
    pub heartbeat_s: u32,
}

/// One problem found in a topology file, naming the offending id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// The file is not valid TOML or does not have the expected shape.
    #[error("site file: {0}")]
    Parse(String),
    /// No `[site]` table.
    #[error("no [site] table: a topology needs at least one site")]
    NoSite,
    /// Two items of one namespace share an id.
    #[error("duplicate id `{id}` ({first} and {second})")]
    Duplicate {
        /// The id.
        id: String,
        /// Table of the first.
        first: &'static str,
        /// Table of the second.
        second: &'static str,
    },
    /// A reference to something that does not exist.
    #[error("{table} `{id}`: {field} `{target}` is not a known {expected}")]
    UnknownRef {
        /// Table of the item.
        table: &'static str,
        /// The item.
        id: String,
        /// Its field.
        field: &'static str,
        /// The missing target.
        target: String,
        /// What the target should be.
        expected: &'static str,
    },
    /// An item without `site` in a topology with several sites.
    #[error("{table} `{id}`: needs `site = ...` because the topology has several sites")]
    SiteAmbiguous {
        /// Table of the item.
        table: &'static str,
        /// The item.
        id: String,
    },
    /// Area parents form a cycle.
    #[error("area `{id}`: parent chain forms a cycle")]
    ParentCycle {
        /// An area on the cycle.
        id: String,
    },
    /// A field with a bad value.
    #[error("{table} `{id}`: {field}: {reason}")]
    BadValue {
        /// Table of the item.
        table: &'static str,
        /// The item.
        id: String,
        /// Its field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// All the problems of a topology file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_list(.0))]
pub struct TopologyErrors(pub Vec<TopologyError>);

fn display_list(errors: &[TopologyError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// The validated, interned site topology. Immutable once built; share it behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Topology {
    sites: Vec<Site>,
    areas: Vec<Area>,
    doors: Vec<Door>,
    devices: Vec<Device>,
    /// Fx hashing: ids are short and trusted (from the site file), and this lookup runs per event
    /// on the NDJSON path (SipHash was 14 % of instructions in callgrind).
    device_by_id: FxHashMap<Box<str>, DeviceIx>,
    area_by_id: HashMap<Box<str>, AreaIx>,
    site_by_id: HashMap<Box<str>, SiteIx>,
    /// For each device, the doors its events concern (door: itself; reader: its door; camera: the
    /// doors that list it), as ranges into `route_doors`.
    route_offsets: Vec<(u32, u32)>,
    route_doors: Vec<DoorIx>,
    /// For each device, its rank in the lexicographic order of device ids (tie-break of the total
    /// event order; independent of declaration order).
    device_order: Vec<u32>,
    /// Minimum travel time between two sites, milliseconds, keyed by (min, max) site index.
    travel: HashMap<(SiteIx, SiteIx), u64>,
}

// ---- raw file shape -------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    /// `[site]` or `[[site]]`: read as a value first, so errors inside name the bad key.
    site: Option<toml::Value>,
    #[serde(default)]
    area: Vec<RawArea>,
    #[serde(default)]
    door: Vec<RawDoor>,
    #[serde(default)]
    reader: Vec<RawReader>,
    #[serde(default)]
    camera: Vec<RawCamera>,
    #[serde(default)]
    sensor: Vec<RawSensor>,
    #[serde(default)]
    device: Vec<RawDevice>,
    #[serde(default)]
    travel: Vec<RawTravel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    id: String,
    #[serde(default)]
    utc_offset_min: i32,
    heartbeat_s: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArea {
    id: String,
    site: Option<String>,
    parent: Option<String>,
    schedule: Option<String>,
    criticality: Option<i64>,
    #[serde(default)]
    anti_passback: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoor {
    id: String,
    site: Option<String>,
    from: String,
    to: String,
    #[serde(default)]
    cameras: Vec<String>,
    held_open_s: Option<i64>,
    criticality: Option<i64>,
    heartbeat_s: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReader {
    id: String,
    site: Option<String>,
    door: String,
    #[serde(default = "default_direction")]
    direction: String,
    heartbeat_s: Option<i64>,
}

fn default_direction() -> String {
    "in".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCamera {
    id: String,
    site: Option<String>,
    area: Option<String>,
    heartbeat_s: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSensor {
    id: String,
    site: Option<String>,
    kind: String,
    area: String,
    heartbeat_s: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    id: String,
    site: Option<String>,
    heartbeat_s: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTravel {
    between: Vec<String>,
    min_s: i64,
}

const DEFAULT_HEARTBEAT_S: u32 = 60;
const DEFAULT_HELD_OPEN_S: u64 = 30;
const DEFAULT_CRITICALITY: u8 = 3;

/// Collects errors while building.
struct Builder {
    errors: Vec<TopologyError>,
}

impl Builder {
    fn bad(&mut self, table: &'static str, id: &str, field: &'static str, reason: impl Into<String>) {
        self.errors.push(TopologyError::BadValue { table, id: id.into(), field, reason: reason.into() });
    }

    fn unknown(&mut self, table: &'static str, id: &str, field: &'static str, target: &str, expected: &'static str) {
        self.errors.push(TopologyError::UnknownRef { table, id: id.into(), field, target: target.into(), expected });
    }

    fn criticality(&mut self, table: &'static str, id: &str, value: Option<i64>) -> Option<u8> {
        match value {
            None => None,
            Some(c @ 1..=5) => Some(c as u8),
            Some(c) => {
                self.bad(table, id, "criticality", format!("{c} is not in 1..=5"));
                None
            }
        }
    }

    fn heartbeat(&mut self, table: &'static str, id: &str, value: Option<i64>) -> Option<u32> {
        match value {
            None => None,
            Some(s) if s > 0 && s <= u32::MAX as i64 => Some(s as u32),
            Some(s) => {
                self.bad(table, id, "heartbeat_s", format!("{s} is not a positive number of seconds"));
                None
            }
        }
    }
}

impl Topology {
    /// Parses and validates a `site.toml` text.
    pub fn from_toml(text: &str) -> Result<Topology, TopologyErrors> {
        let raw: RawFile = toml::from_str(text)
            .map_err(|e| TopologyErrors(vec![TopologyError::Parse(e.to_string().trim_end().to_string())]))?;
        Topology::from_raw(raw)
    }

    fn from_raw(raw: RawFile) -> Result<Topology, TopologyErrors> {
        let mut b = Builder { errors: Vec::new() };

        // Sites.
        let parse_err = |e: toml::de::Error| {
            TopologyErrors(vec![TopologyError::Parse(format!("[site]: {}", e.to_string().trim_end()))])
        };
        let raw_sites: Vec<RawSite> = match raw.site {
            None => Vec::new(),
            Some(v @ toml::Value::Array(_)) => v.try_into().map_err(parse_err)?,
            Some(v) => vec![v.try_into().map_err(parse_err)?],
        };
        if raw_sites.is_empty() {
            return Err(TopologyErrors(vec![TopologyError::NoSite]));
        }
        let mut sites = Vec::new();
        let mut site_by_id: HashMap<Box<str>, SiteIx> = HashMap::new();
        for s in &raw_sites {
            let heartbeat_s = b.heartbeat("site", &s.id, s.heartbeat_s).unwrap_or(DEFAULT_HEARTBEAT_S);
            if site_by_id.insert(s.id.as_str().into(), SiteIx(sites.len() as u32)).is_some() {
                b.errors.push(TopologyError::Duplicate { id: s.id.clone(), first: "site", second: "site" });
            }
            sites.push(Site { id: s.id.as_str().into(), utc_offset_min: s.utc_offset_min, heartbeat_s });
        }
        let only_site = (sites.len() == 1).then_some(SiteIx(0));
        let site_of = |b: &mut Builder, table: &'static str, id: &str, site: &Option<String>| -> SiteIx {
            match site {
                Some(s) => site_by_id.get(s.as_str()).copied().unwrap_or_else(|| {
                    b.unknown(table, id, "site", s, "site");
                    SiteIx(0)
                }),
                None => only_site.unwrap_or_else(|| {
                    b.errors.push(TopologyError::SiteAmbiguous { table, id: id.into() });
                    SiteIx(0)
                }),
            }
        };

        // Areas (two passes: ids first, then parents).
        let mut areas = Vec::new();
        let mut area_by_id: HashMap<Box<str>, AreaIx> = HashMap::new();
        for a in &raw.area {
            let site = site_of(&mut b, "area", &a.id, &a.site);
            let criticality = b.criticality("area", &a.id, a.criticality).unwrap_or(DEFAULT_CRITICALITY);
            let schedule = a.schedule.as_deref().and_then(|s| match Schedule::parse(s) {
                Ok(s) => Some(s),
                Err(reason) => {
                    b.bad("area", &a.id, "schedule", reason);
                    None
                }
            });
            if area_by_id.insert(a.id.as_str().into(), AreaIx(areas.len() as u32)).is_some() {
                b.errors.push(TopologyError::Duplicate { id: a.id.clone(), first: "area", second: "area" });
            }
            areas.push(Area {
                id: a.id.as_str().into(),
                site,
                parent: None,
                schedule,
                criticality,
                anti_passback: a.anti_passback,
                cameras: Vec::new(),
            });
        }
        let area_ref = |b: &mut Builder, table: &'static str, id: &str, field: &'static str, target: &str| {
            let found = area_by_id.get(target).copied();
            if found.is_none() {
                b.unknown(table, id, field, target, "area");
            }
            found
        };
        for (i, a) in raw.area.iter().enumerate() {
            if let Some(p) = &a.parent {
                areas[i].parent = area_ref(&mut b, "area", &a.id, "parent", p);
            }
        }
        for (i, a) in areas.iter().enumerate() {
            // Walk up at most `areas.len()` steps: more means a cycle through this area or above it.
            let mut cur = a.parent;
            let mut steps = 0;
            while let Some(p) = cur {
                if p.index() == i || steps > areas.len() {
                    b.errors.push(TopologyError::ParentCycle { id: a.id.to_string() });
                    break;
                }
                cur = areas[p.index()].parent;
                steps += 1;
            }
        }

        // Devices: one namespace across doors, readers, cameras, sensors and devices.
        let mut devices: Vec<Device> = Vec::new();
        let mut device_by_id: FxHashMap<Box<str>, DeviceIx> = FxHashMap::default();
        let mut add_device = |b: &mut Builder, devices: &mut Vec<Device>, d: Device| -> DeviceIx {
            let ix = DeviceIx(devices.len() as u32);
            if let Some(prev) = device_by_id.insert(d.id.clone(), ix) {
                b.errors.push(TopologyError::Duplicate {
                    id: d.id.to_string(),
                    first: devices[prev.index()].kind.table(),
                    second: d.kind.table(),
                });
            }
            devices.push(d);
            ix
        };

        let mut doors = Vec::new();
        for d in &raw.door {
            let site = site_of(&mut b, "door", &d.id, &d.site);
            let from = area_ref(&mut b, "door", &d.id, "from", &d.from);
            let to = area_ref(&mut b, "door", &d.id, "to", &d.to);
            let held_open_ms = match d.held_open_s {
                None => DEFAULT_HELD_OPEN_S * 1000,
                Some(s) if s > 0 => s as u64 * 1000,
                Some(s) => {
                    b.bad("door", &d.id, "held_open_s", format!("{s} is not a positive number of seconds"));
                    DEFAULT_HELD_OPEN_S * 1000
                }
            };
            let own_crit = b.criticality("door", &d.id, d.criticality);
            let criticality =
                own_crit.unwrap_or_else(|| to.map(|t| areas[t.index()].criticality).unwrap_or(DEFAULT_CRITICALITY));
            let heartbeat_s = b.heartbeat("door", &d.id, d.heartbeat_s).unwrap_or(sites[site.index()].heartbeat_s);
            let door_ix = DoorIx(doors.len() as u32);
            let device = add_device(
                &mut b,
                &mut devices,
                Device {
                    id: d.id.as_str().into(),
                    kind: DeviceKind::Door,
                    site,
                    door: Some(door_ix),
                    area: None,
                    out: false,
                    heartbeat_s,
                },
            );
            doors.push(Door {
                device,
                from: from.unwrap_or_default(),
                to: to.unwrap_or_default(),
                cameras: Vec::new(),
                held_open_ms,
                criticality,
            });
        }
        let door_by_id: HashMap<&str, DoorIx> =
            raw.door.iter().enumerate().map(|(i, d)| (d.id.as_str(), DoorIx(i as u32))).collect();

        for r in &raw.reader {
            let site = site_of(&mut b, "reader", &r.id, &r.site);
            let door = door_by_id.get(r.door.as_str()).copied();
            if door.is_none() {
                b.unknown("reader", &r.id, "door", &r.door, "door");
            }
            let out = match r.direction.as_str() {
                "in" => false,
                "out" => true,
                other => {
                    b.bad("reader", &r.id, "direction", format!("`{other}` is neither `in` nor `out`"));
                    false
                }
            };
            let heartbeat_s = b.heartbeat("reader", &r.id, r.heartbeat_s).unwrap_or(sites[site.index()].heartbeat_s);
            add_device(
                &mut b,
                &mut devices,
                Device { id: r.id.as_str().into(), kind: DeviceKind::Reader, site, door, area: None, out, heartbeat_s },
            );
        }
        for c in &raw.camera {
            let site = site_of(&mut b, "camera", &c.id, &c.site);
            let area = c.area.as_deref().and_then(|a| area_ref(&mut b, "camera", &c.id, "area", a));
            let heartbeat_s = b.heartbeat("camera", &c.id, c.heartbeat_s).unwrap_or(sites[site.index()].heartbeat_s);
            let ix = add_device(
                &mut b,
                &mut devices,
                Device {
                    id: c.id.as_str().into(),
                    kind: DeviceKind::Camera,
                    site,
                    door: None,
                    area,
                    out: false,
                    heartbeat_s,
                },
            );
            if let Some(a) = area {
                areas[a.index()].cameras.push(ix);
            }
        }
        for s in &raw.sensor {
            let site = site_of(&mut b, "sensor", &s.id, &s.site);
            let area = area_ref(&mut b, "sensor", &s.id, "area", &s.area);
            let kind = match s.kind.as_str() {
                "intrusion" => SensorKind::Intrusion,
                "glass_break" => SensorKind::GlassBreak,
                other => {
                    b.bad("sensor", &s.id, "kind", format!("`{other}` is neither `intrusion` nor `glass_break`"));
                    SensorKind::Intrusion
                }
            };
            let heartbeat_s = b.heartbeat("sensor", &s.id, s.heartbeat_s).unwrap_or(sites[site.index()].heartbeat_s);
            add_device(
                &mut b,
                &mut devices,
                Device {
                    id: s.id.as_str().into(),
                    kind: DeviceKind::Sensor(kind),
                    site,
                    door: None,
                    area,
                    out: false,
                    heartbeat_s,
                },
            );
        }
        for d in &raw.device {
            let site = site_of(&mut b, "device", &d.id, &d.site);
            let heartbeat_s = b.heartbeat("device", &d.id, d.heartbeat_s).unwrap_or(sites[site.index()].heartbeat_s);
            add_device(
                &mut b,
                &mut devices,
                Device {
                    id: d.id.as_str().into(),
                    kind: DeviceKind::Other,
                    site,
                    door: None,
                    area: None,
                    out: false,
                    heartbeat_s,
                },
            );
        }

        // Door cameras must name cameras.
        for (i, d) in raw.door.iter().enumerate() {
            for cam in &d.cameras {
                match device_by_id.get(cam.as_str()) {
                    Some(&ix) if devices[ix.index()].kind == DeviceKind::Camera => {
                        if !doors[i].cameras.contains(&ix) {
                            doors[i].cameras.push(ix)
                        }
                    }
                    _ => b.unknown("door", &d.id, "cameras", cam, "camera"),
                }
            }
        }

        // Travel.
        let mut travel = HashMap::new();
        for t in &raw.travel {
            let name = t.between.join(",");
            if t.between.len() != 2 {
                b.bad("travel", &name, "between", "needs exactly two site ids");
                continue;
            }
            if t.min_s <= 0 {
                b.bad("travel", &name, "min_s", format!("{} is not a positive number of seconds", t.min_s));
                continue;
            }
            let ends: Vec<Option<SiteIx>> = t
                .between
                .iter()
                .map(|s| {
                    let found = site_by_id.get(s.as_str()).copied();
                    if found.is_none() {
                        b.unknown("travel", &name, "between", s, "site");
                    }
                    found
                })
                .collect();
            if let [Some(a), Some(c)] = ends[..] {
                if a == c {
                    b.bad("travel", &name, "between", "names the same site twice");
                } else {
                    travel.insert((a.min(c), a.max(c)), t.min_s as u64 * 1000);
                }
            }
        }

        if !b.errors.is_empty() {
            return Err(TopologyErrors(b.errors));
        }

        // Routing tables: device -> doors.
        let mut per_device: Vec<Vec<DoorIx>> = vec![Vec::new(); devices.len()];
        for (i, door) in doors.iter().enumerate() {
            per_device[door.device.index()].push(DoorIx(i as u32));
            for cam in &door.cameras {
                per_device[cam.index()].push(DoorIx(i as u32));
            }
        }
        for (i, dev) in devices.iter().enumerate() {
            if dev.kind == DeviceKind::Reader {
                if let Some(door) = dev.door {
                    per_device[i].push(door);
                }
            }
        }
        let mut route_offsets = Vec::with_capacity(devices.len());
        let mut route_doors = Vec::new();
        for list in per_device {
            let start = route_doors.len() as u32;
            route_doors.extend(list);
            route_offsets.push((start, route_doors.len() as u32));
        }
        let mut by_name: Vec<u32> = (0..devices.len() as u32).collect();
        by_name.sort_by(|&a, &b| devices[a as usize].id.cmp(&devices[b as usize].id));
        let mut device_order = vec![0u32; devices.len()];
        for (rank, &ix) in by_name.iter().enumerate() {
            device_order[ix as usize] = rank as u32;
        }

        Ok(Topology {
            sites,
            areas,
            doors,
            devices,
            device_by_id,
            area_by_id,
            site_by_id,
            route_offsets,
            route_doors,
            device_order,
            travel,
        })
    }

    /// Looks a device id up.
    pub fn device(&self, id: &str) -> Option<DeviceIx> {
        self.device_by_id.get(id).copied()
    }
    /// Looks an area id up.
    pub fn area(&self, id: &str) -> Option<AreaIx> {
        self.area_by_id.get(id).copied()
    }
    /// Looks a site id up.
    pub fn site(&self, id: &str) -> Option<SiteIx> {
        self.site_by_id.get(id).copied()
    }
    /// A device's record.
    pub fn device_info(&self, ix: DeviceIx) -> &Device {
        &self.devices[ix.index()]
    }
    /// A door's record.
    pub fn door_info(&self, ix: DoorIx) -> &Door {
        &self.doors[ix.index()]
    }
    /// An area's record.
    pub fn area_info(&self, ix: AreaIx) -> &Area {
        &self.areas[ix.index()]
    }
    /// A site's record.
    pub fn site_info(&self, ix: SiteIx) -> &Site {
        &self.sites[ix.index()]
    }
    /// The door a door or reader device is (or is mounted on).
    pub fn door_of(&self, ix: DeviceIx) -> Option<DoorIx> {
        self.devices[ix.index()].door
    }
    /// The doors an event of this device concerns (door: itself; reader: its door; camera: every
    /// door that lists it; others: none).
    pub fn doors_of(&self, ix: DeviceIx) -> &[DoorIx] {
        let (a, b) = self.route_offsets[ix.index()];
        &self.route_doors[a as usize..b as usize]
    }
    /// Number of devices (the length of dense per-device vectors).
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }
    /// Number of doors.
    pub fn door_count(&self) -> usize {
        self.doors.len()
    }
    /// Number of areas.
    pub fn area_count(&self) -> usize {
        self.areas.len()
    }
    /// Number of sites.
    pub fn site_count(&self) -> usize {
        self.sites.len()
    }
    /// All devices, in index order.
    pub fn devices(&self) -> impl Iterator<Item = (DeviceIx, &Device)> {
        self.devices.iter().enumerate().map(|(i, d)| (DeviceIx(i as u32), d))
    }
    /// The rank of each device id in lexicographic order: the last tie-break of the event order.
    pub fn device_order(&self) -> &[u32] {
        &self.device_order
    }
    /// The minimum travel time between two sites, if the topology names one.
    pub fn travel_ms(&self, a: SiteIx, b: SiteIx) -> Option<u64> {
        self.travel.get(&(a.min(b), a.max(b))).copied()
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |k: fn(&DeviceKind) -> bool| self.devices.iter().filter(|d| k(&d.kind)).count();
        write!(
            f,
            "{} site(s), {} areas, {} doors, {} readers, {} cameras, {} sensors, {} other devices, {} travel entries",
            self.sites.len(),
            self.areas.len(),
            self.doors.len(),
            count(|k| *k == DeviceKind::Reader),
            count(|k| *k == DeviceKind::Camera),
            count(|k| matches!(k, DeviceKind::Sensor(_))),
            count(|k| *k == DeviceKind::Other),
            self.travel.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [site]
        id = "hq"
        heartbeat_s = 60
        [[area]]
        id = "outside"
        [[area]]
        id = "lobby"
        [[area]]
        id = "lab"
        parent = "lobby"
        criticality = 4
        schedule = "Mon-Fri 07:00-19:00"
        [[door]]
        id = "d-lab"
        from = "lobby"
        to = "lab"
        cameras = ["cam-7", "cam-8"]
        [[reader]]
        id = "r-lab-in"
        door = "d-lab"
        [[reader]]
        id = "r-lab-out"
        door = "d-lab"
        direction = "out"
        [[camera]]
        id = "cam-7"
        area = "lobby"
        [[camera]]
        id = "cam-8"
        area = "lab"
        [[sensor]]
        id = "gb-lab"
        kind = "glass_break"
        area = "lab"
        [[device]]
        id = "ctl-1"
        heartbeat_s = 30
    "#;

    fn errors(text: &str) -> Vec<TopologyError> {
        Topology::from_toml(text).expect_err("must be invalid").0
    }

    #[test]
    fn builds_routes_and_defaults() {
        let t = Topology::from_toml(GOOD).expect("valid");
        let door = t.device("d-lab").expect("door");
        let d = t.door_of(door).expect("door ix");
        assert_eq!(t.door_info(d).criticality, 4, "criticality defaults to the `to` area's");
        assert_eq!(t.door_info(d).held_open_ms, 30_000);
        let cam = t.device("cam-8").expect("camera");
        assert_eq!(t.doors_of(cam), &[d]);
        let reader = t.device("r-lab-out").expect("reader");
        assert!(t.device_info(reader).out);
        assert_eq!(t.doors_of(reader), &[d]);
        assert_eq!(t.device_info(t.device("ctl-1").expect("dev")).heartbeat_s, 30);
        assert_eq!(t.device_info(cam).heartbeat_s, 60);
        let lab = t.area("lab").expect("area");
        assert_eq!(t.area_info(lab).cameras, vec![cam]);
        assert!(t.doors_of(t.device("gb-lab").expect("sensor")).is_empty());
    }

    #[test]
    fn dangling_references_name_the_offender() {
        let bad = GOOD.replace("to = \"lab\"", "to = \"labb\"");
        let errs = errors(&bad);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].to_string(), "door `d-lab`: to `labb` is not a known area");

        let bad = GOOD.replace("cameras = [\"cam-7\", \"cam-8\"]", "cameras = [\"cam-9\", \"gb-lab\"]");
        let msgs: Vec<String> = errors(&bad).iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "door `d-lab`: cameras `cam-9` is not a known camera",
                "door `d-lab`: cameras `gb-lab` is not a known camera"
            ]
        );
    }

    #[test]
    fn duplicates_cycles_and_bad_values() {
        let text = format!("{GOOD}\n[[camera]]\nid = \"ctl-1\"\n");
        assert_eq!(errors(&text)[0].to_string(), "duplicate id `ctl-1` (camera and device)");

        let text = GOOD.replace("id = \"lobby\"", "id = \"lobby\"\nparent = \"lab\"");
        let msgs: Vec<String> = errors(&text).iter().map(ToString::to_string).collect();
        assert!(msgs.contains(&"area `lab`: parent chain forms a cycle".to_string()), "{msgs:?}");

        let text = GOOD.replace("criticality = 4", "criticality = 9").replace("07:00-19:00", "19:00-07:00");
        let msgs: Vec<String> = errors(&text).iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs[0].starts_with("area `lab`: criticality"));
        assert!(msgs[1].starts_with("area `lab`: schedule"));
    }

    #[test]
    fn several_sites_need_explicit_site_and_travel_is_symmetric() {
        let text = r#"
            [[site]]
            id = "hq"
            [[site]]
            id = "plant"
            [[area]]
            id = "a"
            site = "hq"
            [[area]]
            id = "b"
            [[travel]]
            between = ["plant", "hq"]
            min_s = 3600
        "#;
        assert_eq!(errors(text)[0].to_string(), "area `b`: needs `site = ...` because the topology has several sites");
        let ok = Topology::from_toml(&text.replace("id = \"b\"", "id = \"b\"\nsite = \"plant\"")).expect("valid");
        let (hq, plant) = (ok.site("hq").expect("hq"), ok.site("plant").expect("plant"));
        assert_eq!(ok.travel_ms(hq, plant), Some(3_600_000));
        assert_eq!(ok.travel_ms(plant, hq), Some(3_600_000));
    }

    #[test]
    fn unknown_keys_and_syntax_errors_are_parse_errors() {
        assert!(
            matches!(&errors("[site]\nid = \"x\"\nbogus = 1\n")[0], TopologyError::Parse(m) if m.contains("bogus"))
        );
        assert!(matches!(&errors("[site\n")[0], TopologyError::Parse(_)));
        assert_eq!(errors("")[0], TopologyError::NoSite);
    }
}
