//! Canonical NDJSON events (DESIGN §2.1): decoding one line, and the total order of §4.

use serde_json::{Map, Value};

use crate::site::{DeviceKind, Direction, Site};
use crate::time::parse_rfc3339;

/// Event types, declared in the tie-break rank order of DESIGN §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    AccessGranted,
    AccessDenied,
    Duress,
    Rex,
    DoorForced,
    DoorOpened,
    LineCrossed,
    Motion,
    Intrusion,
    GlassBreak,
    CameraTamper,
    DoorHeld,
    DoorClosed,
    Heartbeat,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "access.granted" => Kind::AccessGranted,
            "access.denied" => Kind::AccessDenied,
            "duress" => Kind::Duress,
            "rex" => Kind::Rex,
            "door.forced" => Kind::DoorForced,
            "door.opened" => Kind::DoorOpened,
            "line.crossed" => Kind::LineCrossed,
            "motion" => Kind::Motion,
            "intrusion" => Kind::Intrusion,
            "glass_break" => Kind::GlassBreak,
            "camera.tamper" => Kind::CameraTamper,
            "door.held" => Kind::DoorHeld,
            "door.closed" => Kind::DoorClosed,
            "heartbeat" => Kind::Heartbeat,
            _ => return None,
        })
    }

    fn is_access(self) -> bool {
        matches!(self, Kind::AccessGranted | Kind::AccessDenied | Kind::Duress)
    }
}

/// One accepted event, with the topology already applied (an access event's door and direction
/// come from its reader).
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub ts: i64,
    pub kind: Kind,
    /// The door: as written, or the reader's door for access events.
    pub door: Option<String>,
    pub camera: Option<String>,
    pub sensor: Option<String>,
    pub device: Option<String>,
    pub card: Option<String>,
    /// For access events and `line.crossed`; `In` elsewhere.
    pub direction: Direction,
    /// People counted by a `line.crossed` (1 elsewhere).
    pub count: u64,
    /// Device ids written in the line's `door`, `reader`, `camera`, `sensor`, `device` fields.
    pub named: Vec<String>,
    /// Tie-break id: the `reader`, else `door`, `camera`, `sensor`, `device` field as written.
    pub sort_id: String,
}

/// Why a line was rejected.
pub(crate) type Reject = &'static str;

fn ts_of(v: &Value) -> Result<i64, Reject> {
    let ts = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => parse_rfc3339(s),
        _ => None,
    };
    match ts {
        Some(t) if t >= 0 => Ok(t),
        _ => Err("bad ts"),
    }
}

/// A string field; `null` counts as absent, any other non-string value rejects the line.
fn opt_str(obj: &Map<String, Value>, field: &str) -> Result<Option<String>, Reject> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err("field is not a string"),
    }
}

fn opt_direction(obj: &Map<String, Value>) -> Result<Direction, Reject> {
    match opt_str(obj, "direction")? {
        None => Ok(Direction::In),
        Some(s) => Direction::parse(&s).ok_or("bad direction"),
    }
}

/// Decodes one NDJSON line against the topology.
pub(crate) fn decode(line: &str, site: &Site) -> Result<Event, Reject> {
    let value: Value = serde_json::from_str(line).map_err(|_| "invalid json")?;
    let Value::Object(obj) = value else {
        return Err("invalid json");
    };
    let ts = ts_of(obj.get("ts").ok_or("missing ts")?)?;
    let kind = match obj.get("type") {
        None | Some(Value::Null) => return Err("missing type"),
        Some(Value::String(s)) => Kind::parse(s).ok_or("unknown type")?,
        Some(_) => return Err("unknown type"),
    };

    // Every device field, whatever the type, must name a known device of its kind.
    let mut fields: [(&str, Option<String>); 5] =
        [("reader", None), ("door", None), ("camera", None), ("sensor", None), ("device", None)];
    for (name, slot) in &mut fields {
        let Some(id) = opt_str(&obj, name)? else {
            continue;
        };
        let Some(info) = site.devices.get(&id) else {
            return Err("unknown device");
        };
        let want = match *name {
            "reader" => Some(DeviceKind::Reader),
            "door" => Some(DeviceKind::Door),
            "camera" => Some(DeviceKind::Camera),
            "sensor" => Some(DeviceKind::Sensor),
            _ => None,
        };
        if want.is_some_and(|k| k != info.kind) {
            return Err("device of the wrong kind");
        }
        *slot = Some(id);
    }
    let [(_, reader), (_, door), (_, camera), (_, sensor), (_, device)] = fields;
    let card = opt_str(&obj, "card")?;

    let mut named: Vec<String> = [&reader, &door, &camera, &sensor, &device].into_iter().flatten().cloned().collect();
    named.sort();
    named.dedup();
    let sort_id = [&reader, &door, &camera, &sensor, &device].into_iter().flatten().next().cloned().unwrap_or_default();

    let mut event = Event {
        ts,
        kind,
        door: door.clone(),
        camera: camera.clone(),
        sensor: sensor.clone(),
        device: device.clone(),
        card,
        direction: Direction::In,
        count: 1,
        named,
        sort_id,
    };

    match kind {
        k if k.is_access() => {
            match (&reader, &door) {
                (Some(r), written) => {
                    let rd = &site.readers[r];
                    if written.as_ref().is_some_and(|d| *d != rd.door) {
                        return Err("reader and door disagree");
                    }
                    event.door = Some(rd.door.clone());
                    event.direction = rd.direction;
                }
                (None, Some(_)) => event.direction = opt_direction(&obj)?,
                (None, None) => return Err("missing reader or door"),
            }
            if k == Kind::AccessGranted && event.card.is_none() {
                return Err("missing card");
            }
        }
        Kind::Rex | Kind::DoorForced | Kind::DoorOpened | Kind::DoorClosed | Kind::DoorHeld => {
            if door.is_none() {
                return Err("missing door");
            }
        }
        Kind::Motion | Kind::LineCrossed | Kind::CameraTamper => {
            if camera.is_none() {
                return Err("missing camera");
            }
            if kind == Kind::LineCrossed {
                event.direction = opt_direction(&obj)?;
                event.count = match obj.get("count") {
                    None | Some(Value::Null) => 1,
                    Some(v) => v.as_u64().ok_or("bad count")?,
                };
            }
        }
        Kind::Intrusion | Kind::GlassBreak => {
            if sensor.is_none() {
                return Err("missing sensor");
            }
        }
        _ => {
            // Heartbeat (the access kinds were handled above).
            if device.is_none() {
                return Err("missing device");
            }
        }
    }
    Ok(event)
}

/// Decodes every line, skipping blank and rejected ones, and sorts by (ts, rank, device id)
/// with input order as the last tie-break.
pub(crate) fn decode_all(ndjson: &str, site: &Site) -> Vec<Event> {
    let mut events: Vec<Event> =
        ndjson.lines().filter(|l| !l.trim().is_empty()).filter_map(|l| decode(l, site).ok()).collect();
    // `sort_by` is stable, which keeps input order for full ties.
    events.sort_by(|a, b| (a.ts, a.kind, &a.sort_id).cmp(&(b.ts, b.kind, &b.sort_id)));
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = r#"
        [site]
        id = "hq"
        [[area]]
        id = "out"
        [[area]]
        id = "lab"
        [[door]]
        id = "d1"
        from = "out"
        to = "lab"
        cameras = ["c1"]
        [[reader]]
        id = "r1"
        door = "d1"
        direction = "out"
        [[camera]]
        id = "c1"
        area = "lab"
        [[sensor]]
        id = "s1"
        area = "lab"
        [[device]]
        id = "x1"
    "#;

    fn site() -> Site {
        Site::parse(SITE).expect("valid site")
    }

    #[test]
    fn rejects_what_the_spec_rejects() {
        let s = site();
        for (line, reason) in [
            ("not json", "invalid json"),
            ("[1]", "invalid json"),
            (r#"{"type":"motion","camera":"c1"}"#, "missing ts"),
            (r#"{"ts":1,"camera":"c1"}"#, "missing type"),
            (r#"{"ts":-1,"type":"motion","camera":"c1"}"#, "bad ts"),
            (r#"{"ts":1.5,"type":"motion","camera":"c1"}"#, "bad ts"),
            (r#"{"ts":"yesterday","type":"motion","camera":"c1"}"#, "bad ts"),
            (r#"{"ts":1,"type":"wave","camera":"c1"}"#, "unknown type"),
            (r#"{"ts":1,"type":"motion","camera":"c9"}"#, "unknown device"),
            (r#"{"ts":1,"type":"motion","camera":"d1"}"#, "device of the wrong kind"),
            (r#"{"ts":1,"type":"motion"}"#, "missing camera"),
            (r#"{"ts":1,"type":"motion","camera":"c1","door":"zz"}"#, "unknown device"),
            (r#"{"ts":1,"type":"access.granted","reader":"r1"}"#, "missing card"),
            (r#"{"ts":1,"type":"access.denied"}"#, "missing reader or door"),
            (r#"{"ts":1,"type":"door.opened","reader":"r1"}"#, "missing door"),
            (r#"{"ts":1,"type":"glass_break","camera":"c1"}"#, "missing sensor"),
            (r#"{"ts":1,"type":"heartbeat"}"#, "missing device"),
            (r#"{"ts":1,"type":"line.crossed","camera":"c1","count":-1}"#, "bad count"),
            (r#"{"ts":1,"type":"line.crossed","camera":"c1","direction":"up"}"#, "bad direction"),
        ] {
            assert_eq!(decode(line, &s).map(|_| ()), Err(reason), "{line}");
        }
    }

    #[test]
    fn access_events_take_door_and_direction_from_the_reader() {
        let s = site();
        let e = decode(r#"{"ts":"1970-01-01T00:00:01Z","type":"duress","reader":"r1"}"#, &s).expect("accepted");
        assert_eq!(e.ts, 1000);
        assert_eq!(e.door.as_deref(), Some("d1"));
        assert_eq!(e.direction, Direction::Out);
        assert_eq!(e.named, vec!["r1".to_string()]);
        let e = decode(r#"{"ts":1,"type":"access.denied","door":"d1"}"#, &s).expect("accepted");
        assert_eq!(e.direction, Direction::In);
        let e = decode(r#"{"ts":1,"type":"access.denied","door":"d1","direction":"out","card":"k"}"#, &s)
            .expect("accepted");
        assert_eq!(e.direction, Direction::Out);
        let e = decode(r#"{"ts":1,"type":"heartbeat","device":"r1"}"#, &s).expect("accepted");
        assert_eq!(e.named, vec!["r1".to_string()]);
    }

    #[test]
    fn sorts_by_ts_then_rank_then_device_then_input_order() {
        let s = site();
        let input = [
            r#"{"ts":5,"type":"heartbeat","device":"x1","id":"a"}"#,
            r#"{"ts":5,"type":"door.closed","door":"d1"}"#,
            r#"{"ts":5,"type":"access.granted","reader":"r1","card":"k"}"#,
            r#"{"ts":4,"type":"heartbeat","device":"x1"}"#,
            r#"{"ts":5,"type":"heartbeat","device":"c1"}"#,
        ]
        .join("\n");
        let order: Vec<(i64, Kind, String)> =
            decode_all(&input, &s).into_iter().map(|e| (e.ts, e.kind, e.sort_id)).collect();
        assert_eq!(
            order,
            vec![
                (4, Kind::Heartbeat, "x1".to_string()),
                (5, Kind::AccessGranted, "r1".to_string()),
                (5, Kind::DoorClosed, "d1".to_string()),
                (5, Kind::Heartbeat, "c1".to_string()),
                (5, Kind::Heartbeat, "x1".to_string()),
            ]
        );
    }
}
