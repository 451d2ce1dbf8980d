//! The site topology (`site.toml`, DESIGN §3), parsed and validated into plain maps.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::RefError;
use crate::time::Schedule;

/// `in` or `out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    In,
    Out,
}

impl Direction {
    pub(crate) fn parse(s: &str) -> Option<Direction> {
        match s {
            "in" => Some(Direction::In),
            "out" => Some(Direction::Out),
            _ => None,
        }
    }
}

/// Which table of `site.toml` a device id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceKind {
    Door,
    Reader,
    Camera,
    Sensor,
    Device,
}

#[derive(Debug, Clone)]
pub(crate) struct SiteInfo {
    pub utc_offset_min: i64,
    pub heartbeat_s: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Area {
    pub schedule: Option<Schedule>,
    pub criticality: i64,
    pub anti_passback: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Door {
    pub from: String,
    pub to: String,
    pub cameras: Vec<String>,
    pub held_open_ms: i64,
    /// Resolved: the door's own, else its `to` area's, else 3.
    pub criticality: i64,
    pub site: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Reader {
    pub door: String,
    pub direction: Direction,
}

#[derive(Debug, Clone)]
pub(crate) struct Camera {
    pub area: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Sensor {
    pub area: Option<String>,
}

/// Anything that may send a heartbeat: its kind, site and own `heartbeat_s`.
#[derive(Debug, Clone)]
pub(crate) struct DeviceInfo {
    pub kind: DeviceKind,
    pub site: String,
    pub heartbeat_s: Option<i64>,
}

/// The validated topology.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub sites: BTreeMap<String, SiteInfo>,
    pub areas: BTreeMap<String, Area>,
    pub doors: BTreeMap<String, Door>,
    pub readers: BTreeMap<String, Reader>,
    pub cameras: BTreeMap<String, Camera>,
    pub sensors: BTreeMap<String, Sensor>,
    /// Every device id (doors, readers, cameras, sensors and `[[device]]`s).
    pub devices: BTreeMap<String, DeviceInfo>,
    /// `(site a, site b, min travel ms)`, symmetric.
    pub travel: Vec<(String, String, i64)>,
}

// ---- raw TOML shapes ------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(RawSite),
    Many(Vec<RawSite>),
}

#[derive(Deserialize)]
struct RawSite {
    id: String,
    utc_offset_min: Option<i64>,
    heartbeat_s: Option<i64>,
}

#[derive(Deserialize)]
struct RawArea {
    id: String,
    parent: Option<String>,
    schedule: Option<String>,
    criticality: Option<i64>,
    anti_passback: Option<bool>,
    site: Option<String>,
}

#[derive(Deserialize)]
struct RawDoor {
    id: String,
    from: String,
    to: String,
    #[serde(default)]
    cameras: Vec<String>,
    held_open_s: Option<i64>,
    criticality: Option<i64>,
    site: Option<String>,
    heartbeat_s: Option<i64>,
}

#[derive(Deserialize)]
struct RawReader {
    id: String,
    door: String,
    direction: Option<String>,
    site: Option<String>,
    heartbeat_s: Option<i64>,
}

#[derive(Deserialize)]
struct RawCamera {
    id: String,
    area: Option<String>,
    site: Option<String>,
    heartbeat_s: Option<i64>,
}

#[derive(Deserialize)]
struct RawSensor {
    id: String,
    kind: Option<String>,
    area: Option<String>,
    site: Option<String>,
    heartbeat_s: Option<i64>,
}

#[derive(Deserialize)]
struct RawDevice {
    id: String,
    site: Option<String>,
    heartbeat_s: Option<i64>,
}

#[derive(Deserialize)]
struct RawTravel {
    between: Vec<String>,
    min_s: i64,
}

#[derive(Deserialize)]
struct RawFile {
    site: Option<OneOrMany>,
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

fn err(msg: String) -> RefError {
    RefError::Site(msg)
}

fn check_criticality(what: &str, id: &str, c: Option<i64>) -> Result<Option<i64>, RefError> {
    match c {
        Some(c) if !(1..=5).contains(&c) => Err(err(format!("{what} {id}: criticality {c} is outside 1..=5"))),
        _ => Ok(c),
    }
}

fn check_heartbeat(what: &str, id: &str, hb: Option<i64>) -> Result<Option<i64>, RefError> {
    match hb {
        Some(h) if h <= 0 => Err(err(format!("{what} {id}: heartbeat_s {h} must be positive"))),
        _ => Ok(hb),
    }
}

impl Site {
    /// Parses and validates `site.toml`.
    pub(crate) fn parse(text: &str) -> Result<Site, RefError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| err(format!("toml: {e}")))?;

        let raw_sites = match raw.site {
            None => Vec::new(),
            Some(OneOrMany::One(s)) => vec![s],
            Some(OneOrMany::Many(v)) => v,
        };
        if raw_sites.is_empty() {
            return Err(err("no [site] table".to_string()));
        }
        let mut sites = BTreeMap::new();
        for s in raw_sites {
            let hb = check_heartbeat("site", &s.id, s.heartbeat_s)?;
            let info = SiteInfo { utc_offset_min: s.utc_offset_min.unwrap_or(0), heartbeat_s: hb.unwrap_or(60) };
            if sites.insert(s.id.clone(), info).is_some() {
                return Err(err(format!("duplicate site {}", s.id)));
            }
        }
        let only_site = if sites.len() == 1 { sites.keys().next().cloned() } else { None };
        let site_of = |what: &str, id: &str, site: Option<String>| -> Result<String, RefError> {
            match site {
                Some(s) if sites.contains_key(&s) => Ok(s),
                Some(s) => Err(err(format!("{what} {id}: unknown site {s}"))),
                None => {
                    only_site.clone().ok_or_else(|| err(format!("{what} {id}: no site given and there are several")))
                }
            }
        };

        // Areas, their parents and criticalities.
        let mut areas = BTreeMap::new();
        let mut parents = BTreeMap::new();
        for a in raw.area {
            site_of("area", &a.id, a.site)?;
            let criticality = check_criticality("area", &a.id, a.criticality)?.unwrap_or(3);
            let schedule = match &a.schedule {
                Some(s) => Some(Schedule::parse(s).map_err(|e| err(format!("area {}: {e}", a.id)))?),
                None => None,
            };
            let area = Area { schedule, criticality, anti_passback: a.anti_passback.unwrap_or(false) };
            if areas.insert(a.id.clone(), area).is_some() {
                return Err(err(format!("duplicate area {}", a.id)));
            }
            if let Some(p) = a.parent {
                parents.insert(a.id, p);
            }
        }
        for (child, parent) in &parents {
            if !areas.contains_key(parent) {
                return Err(err(format!("area {child}: unknown parent {parent}")));
            }
            // Walk up; more steps than areas means a cycle.
            let mut cur = child;
            for _ in 0..=areas.len() {
                match parents.get(cur) {
                    Some(p) => cur = p,
                    None => break,
                }
            }
            if parents.contains_key(cur) {
                return Err(err(format!("area {child}: cycle in parent")));
            }
        }
        let area_exists = |what: &str, id: &str, area: &str| -> Result<(), RefError> {
            if areas.contains_key(area) { Ok(()) } else { Err(err(format!("{what} {id}: unknown area {area}"))) }
        };

        let mut devices: BTreeMap<String, DeviceInfo> = BTreeMap::new();
        let mut add_device = |id: &str, kind, site: String, hb: Option<i64>| {
            let info = DeviceInfo { kind, site, heartbeat_s: hb };
            if devices.insert(id.to_string(), info).is_some() {
                Err(err(format!("duplicate device id {id}")))
            } else {
                Ok(())
            }
        };

        let mut cameras = BTreeMap::new();
        for c in raw.camera {
            let site = site_of("camera", &c.id, c.site)?;
            let hb = check_heartbeat("camera", &c.id, c.heartbeat_s)?;
            if let Some(a) = &c.area {
                area_exists("camera", &c.id, a)?;
            }
            add_device(&c.id, DeviceKind::Camera, site, hb)?;
            cameras.insert(c.id, Camera { area: c.area });
        }

        let mut doors = BTreeMap::new();
        for d in raw.door {
            let site = site_of("door", &d.id, d.site)?;
            let hb = check_heartbeat("door", &d.id, d.heartbeat_s)?;
            area_exists("door", &d.id, &d.from)?;
            area_exists("door", &d.id, &d.to)?;
            for c in &d.cameras {
                if !cameras.contains_key(c) {
                    return Err(err(format!("door {}: unknown camera {c}", d.id)));
                }
            }
            let own = check_criticality("door", &d.id, d.criticality)?;
            let criticality = own.unwrap_or_else(|| areas.get(&d.to).map_or(3, |a| a.criticality));
            let held_open_s = d.held_open_s.unwrap_or(30);
            if held_open_s < 0 {
                return Err(err(format!("door {}: negative held_open_s", d.id)));
            }
            let mut cams = d.cameras;
            cams.sort();
            cams.dedup();
            add_device(&d.id, DeviceKind::Door, site.clone(), hb)?;
            doors.insert(
                d.id,
                Door {
                    from: d.from,
                    to: d.to,
                    cameras: cams,
                    held_open_ms: held_open_s.saturating_mul(1000),
                    criticality,
                    site,
                },
            );
        }

        let mut readers = BTreeMap::new();
        for r in raw.reader {
            let site = site_of("reader", &r.id, r.site)?;
            let hb = check_heartbeat("reader", &r.id, r.heartbeat_s)?;
            if !doors.contains_key(&r.door) {
                return Err(err(format!("reader {}: unknown door {}", r.id, r.door)));
            }
            let direction = match r.direction.as_deref() {
                None => Direction::In,
                Some(s) => Direction::parse(s).ok_or_else(|| err(format!("reader {}: bad direction {s:?}", r.id)))?,
            };
            add_device(&r.id, DeviceKind::Reader, site, hb)?;
            readers.insert(r.id, Reader { door: r.door, direction });
        }

        let mut sensors = BTreeMap::new();
        for s in raw.sensor {
            let site = site_of("sensor", &s.id, s.site)?;
            let hb = check_heartbeat("sensor", &s.id, s.heartbeat_s)?;
            if let Some(a) = &s.area {
                area_exists("sensor", &s.id, a)?;
            }
            if let Some(k) = &s.kind {
                if k != "glass_break" && k != "intrusion" {
                    return Err(err(format!("sensor {}: bad kind {k:?}", s.id)));
                }
            }
            add_device(&s.id, DeviceKind::Sensor, site, hb)?;
            sensors.insert(s.id, Sensor { area: s.area });
        }

        for d in raw.device {
            let site = site_of("device", &d.id, d.site)?;
            let hb = check_heartbeat("device", &d.id, d.heartbeat_s)?;
            add_device(&d.id, DeviceKind::Device, site, hb)?;
        }

        let mut travel = Vec::new();
        for t in raw.travel {
            let [a, b] = <[String; 2]>::try_from(t.between)
                .map_err(|_| err("travel: `between` needs exactly two sites".to_string()))?;
            for s in [&a, &b] {
                if !sites.contains_key(s) {
                    return Err(err(format!("travel: unknown site {s}")));
                }
            }
            if t.min_s < 0 {
                return Err(err(format!("travel {a}-{b}: negative min_s")));
            }
            travel.push((a, b, t.min_s.saturating_mul(1000)));
        }

        Ok(Site { sites, areas, doors, readers, cameras, sensors, devices, travel })
    }

    /// Heartbeat interval of a device in ms: its own `heartbeat_s`, else its site's.
    pub(crate) fn heartbeat_ms(&self, device: &str) -> i64 {
        let info = &self.devices[device];
        let s = info.heartbeat_s.unwrap_or_else(|| self.sites.get(&info.site).map_or(60, |s| s.heartbeat_s));
        s.saturating_mul(1000)
    }

    /// The largest `min_s` (in ms) of the `[[travel]]` entries between two distinct sites.
    pub(crate) fn min_travel_ms(&self, s1: &str, s2: &str) -> Option<i64> {
        self.travel.iter().filter(|(a, b, _)| (a == s1 && b == s2) || (a == s2 && b == s1)).map(|(_, _, ms)| *ms).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_sites_need_explicit_site_fields() {
        let text = r#"
            [[site]]
            id = "a"
            [[site]]
            id = "b"
            [[area]]
            id = "x"
        "#;
        let e = Site::parse(text).expect_err("area without site");
        assert!(e.to_string().contains("area x"), "{e}");
    }

    #[test]
    fn unknown_references_are_reported_with_the_id() {
        let base = "[site]\nid = \"hq\"\n[[area]]\nid = \"out\"\n";
        for (extra, needle) in [
            ("[[door]]\nid = \"d\"\nfrom = \"out\"\nto = \"nowhere\"\n", "door d"),
            ("[[reader]]\nid = \"r\"\ndoor = \"nodoor\"\n", "reader r"),
            ("[[door]]\nid = \"d\"\nfrom = \"out\"\nto = \"out\"\ncameras = [\"c\"]\n", "unknown camera c"),
            ("[[area]]\nid = \"p\"\nparent = \"q\"\n", "area p"),
            ("[[area]]\nid = \"p\"\nparent = \"q\"\n[[area]]\nid = \"q\"\nparent = \"p\"\n", "cycle"),
            ("[[travel]]\nbetween = [\"hq\", \"zz\"]\nmin_s = 1\n", "zz"),
            ("[[device]]\nid = \"out2\"\n[[camera]]\nid = \"out2\"\n", "duplicate"),
        ] {
            let e = Site::parse(&format!("{base}{extra}")).expect_err(extra);
            assert!(e.to_string().contains(needle), "{e} lacks {needle}");
        }
    }

    #[test]
    fn door_criticality_falls_back_to_the_to_area() {
        let text = r#"
            [site]
            id = "hq"
            [[area]]
            id = "out"
            [[area]]
            id = "lab"
            criticality = 5
            [[door]]
            id = "d1"
            from = "out"
            to = "lab"
            [[door]]
            id = "d2"
            from = "lab"
            to = "out"
            [[door]]
            id = "d3"
            from = "out"
            to = "lab"
            criticality = 1
        "#;
        let s = Site::parse(text).expect("valid");
        assert_eq!(s.doors["d1"].criticality, 5);
        assert_eq!(s.doors["d2"].criticality, 3);
        assert_eq!(s.doors["d3"].criticality, 1);
    }
}
