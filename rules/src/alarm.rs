//! Alarms: the compact form detectors emit ([`RawAlarm`]) and the rendered form hosts receive
//! ([`Alarm`], with JSON per DESIGN §6).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::event::{CardKey, Event, EventType};
use crate::keyspace::{Key, Keyspace};
use crate::pack::{RuleDef, RuleId};
use crate::time::EventTime;
use crate::topology::{AreaIx, DeviceIx, DoorIx, Topology};

/// When an alarm's answer became final, for latency: `latency_us` is measured from the ingest
/// instant of the input that made the answer final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Finality {
    /// Final on arrival of an event (a confirmation): its ingest instant.
    Arrival {
        /// Ingest instant of the completing event.
        ingest_ns: u64,
    },
    /// Final when the watermark passed `point`. The engine resolves which input advanced the
    /// watermark past it; the result is never earlier than `at_least_ns`.
    Watermark {
        /// The decision point `d` (final once `W > d`).
        point: EventTime,
        /// Lower bound for the final instant (the trigger's own ingest instant).
        at_least_ns: u64,
    },
}

/// An alarm as a detector emits it: compact, `Copy`, no strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawAlarm {
    /// Which rule of the pack.
    pub rule: RuleId,
    /// Trigger time (the alarm's `ts`).
    pub ts: EventTime,
    /// The rule's key in its keyspace.
    pub key: Key,
    /// The trigger event.
    pub trigger: Event,
    /// A second evidence event (the confirming video, the closing event, ...), if any.
    pub other: Option<Event>,
    /// Tailgating: people without a token.
    pub excess: u16,
    /// When the answer became final.
    pub finality: Finality,
}

impl RawAlarm {
    /// The alarm's identity: (rule, trigger ts, key).
    pub fn identity(&self) -> (RuleId, EventTime, Key) {
        (self.rule, self.ts, self.key)
    }
}

/// Priority bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Band {
    /// priority < 100
    Low,
    /// priority ≥ 100
    Medium,
    /// priority ≥ 150
    High,
    /// priority ≥ 200
    Critical,
}

impl Band {
    /// The band of a priority.
    pub const fn of(priority: u8) -> Band {
        match priority {
            200.. => Band::Critical,
            150.. => Band::High,
            100.. => Band::Medium,
            _ => Band::Low,
        }
    }
    /// Lowercase name.
    pub const fn name(self) -> &'static str {
        match self {
            Band::Low => "low",
            Band::Medium => "medium",
            Band::High => "high",
            Band::Critical => "critical",
        }
    }
}

/// `clamp(rule priority + 10 × (criticality − 3), 1, 255)`.
pub fn priority(rule_priority: u8, criticality: u8) -> u8 {
    (rule_priority as i32 + 10 * (criticality as i32 - 3)).clamp(1, 255) as u8
}

/// One evidence event, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// Event time.
    pub ts: u64,
    /// Event type.
    pub kind: EventType,
    /// `(field, device id)`: the device fields of the event.
    pub devices: Vec<(&'static str, String)>,
    /// The card id, if any.
    pub card: Option<String>,
    /// `line.crossed` count, when not 1.
    pub count: Option<u16>,
    /// Direction for access and crossing events.
    pub direction: Option<&'static str>,
}

/// A rendered alarm, as hosts receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    /// Sequence number assigned by the emitting engine (1, 2, ...).
    pub id: u64,
    /// Rule id.
    pub rule: String,
    /// The identity key: the door, card, area, device, camera, sensor or site id, by the rule's
    /// `group_by` (not serialized: it is one of the fields below).
    pub key: String,
    /// Trigger time.
    pub ts: u64,
    /// 1..=255, higher is more urgent.
    pub priority: u8,
    /// Band of the priority.
    pub band: Band,
    /// Keys that apply.
    pub site: Option<String>,
    /// Door key.
    pub door: Option<String>,
    /// Area key.
    pub area: Option<String>,
    /// Card key.
    pub card: Option<String>,
    /// Device key.
    pub device: Option<String>,
    /// Camera key (camera rules).
    pub camera: Option<String>,
    /// Cameras a console should pop up.
    pub cameras: Vec<String>,
    /// Tailgating excess.
    pub excess: Option<u16>,
    /// Evidence events.
    pub evidence: Vec<Evidence>,
    /// Alarm emission − ingest of the input that made it final.
    pub latency_us: u64,
}

/// Every rule an engine has run, by [`RuleId`]: append-only, so ids stay valid across hot swaps
/// (an alarm of a rule that was swapped out still renders).
#[derive(Debug, Clone, Default)]
pub struct RuleBook {
    rules: Vec<RuleDef>,
}

impl RuleBook {
    /// An empty book.
    pub fn new() -> RuleBook {
        RuleBook::default()
    }
    /// Adds a rule, returning its id.
    pub fn add(&mut self, def: RuleDef) -> RuleId {
        self.rules.push(def);
        RuleId((self.rules.len() - 1) as u16)
    }
    /// A rule by id.
    pub fn get(&self, id: RuleId) -> &RuleDef {
        &self.rules[id.0 as usize]
    }
    /// Number of rules ever added.
    pub fn len(&self) -> usize {
        self.rules.len()
    }
    /// True when no rule was added.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
    /// All rules with their ids.
    pub fn iter(&self) -> impl Iterator<Item = (RuleId, &RuleDef)> {
        self.rules.iter().enumerate().map(|(i, r)| (RuleId(i as u16), r))
    }
}

/// Renders raw alarms: knows the topology, the rules and where card names come from.
#[derive(Debug)]
pub struct Renderer<'a> {
    /// The topology.
    pub topo: &'a Topology,
    /// The rules the alarm's rule id indexes.
    pub book: &'a RuleBook,
}

impl Renderer<'_> {
    fn device_id(&self, ix: DeviceIx) -> String {
        self.topo.device_info(ix).id.to_string()
    }

    fn door_id(&self, d: DoorIx) -> String {
        self.device_id(self.topo.door_info(d).device)
    }

    /// The identity key string of an alarm (door, card, area, device, camera, sensor or site id).
    pub fn key_name(&self, raw: &RawAlarm, card_name: &dyn Fn(CardKey) -> Option<String>) -> String {
        let topo = self.topo;
        match self.book.get(raw.rule).keyspace {
            Keyspace::Door => self.door_id(DoorIx(raw.key as u32)),
            Keyspace::Area => topo.area_info(AreaIx(raw.key as u32)).id.to_string(),
            Keyspace::Device | Keyspace::Camera | Keyspace::Sensor => self.device_id(DeviceIx(raw.key as u32)),
            Keyspace::Site => topo.site_info(crate::topology::SiteIx(raw.key as u32)).id.to_string(),
            Keyspace::Card => card_name(CardKey(raw.key)).unwrap_or_else(|| format!("#{:016x}", raw.key)),
        }
    }

    /// Renders one alarm: every key that applies, the cameras to pop up, the evidence.
    pub fn render(
        &self,
        raw: &RawAlarm,
        id: u64,
        latency_us: u64,
        card_name: &dyn Fn(CardKey) -> Option<String>,
    ) -> Alarm {
        let topo = self.topo;
        let rule = self.book.get(raw.rule);
        let space = rule.keyspace;
        let key_dev = DeviceIx(raw.key as u32);
        let trigger_dev = topo.device_info(raw.trigger.device);
        // The door: the key for door rules, else the trigger's door (a card rule names its door).
        let door = match space {
            Keyspace::Door => Some(DoorIx(raw.key as u32)),
            Keyspace::Device => topo.door_of(key_dev),
            _ => topo.door_of(raw.trigger.device),
        };
        let area = match space {
            Keyspace::Area => Some(AreaIx(raw.key as u32)),
            Keyspace::Device | Keyspace::Camera | Keyspace::Sensor => {
                door.map(|d| topo.door_info(d).to).or(topo.device_info(key_dev).area)
            }
            _ => crate::filter::event_area(topo, &raw.trigger).or(door.map(|d| topo.door_info(d).to)),
        };
        let criticality = match space {
            Keyspace::Area => topo.area_info(AreaIx(raw.key as u32)).criticality,
            Keyspace::Door | Keyspace::Card => door.map_or(3, |d| topo.door_info(d).criticality),
            _ => 3,
        };
        let priority = priority(rule.priority, criticality);
        let camera = match space {
            Keyspace::Camera => Some(key_dev),
            _ if trigger_dev.kind == crate::topology::DeviceKind::Camera => Some(raw.trigger.device),
            _ => None,
        };
        let cameras: Vec<DeviceIx> = match (space, door, camera) {
            (Keyspace::Area, _, _) => area.map(|a| topo.area_info(a).cameras.clone()).unwrap_or_default(),
            (_, Some(d), _) => topo.door_info(d).cameras.clone(),
            (_, None, Some(c)) => vec![c],
            (_, None, None) => area.map(|a| topo.area_info(a).cameras.clone()).unwrap_or_default(),
        };
        let site = match space {
            Keyspace::Site => crate::topology::SiteIx(raw.key as u32),
            Keyspace::Device | Keyspace::Camera | Keyspace::Sensor => topo.device_info(key_dev).site,
            _ => door.map_or(trigger_dev.site, |d| topo.device_info(topo.door_info(d).device).site),
        };
        let card = match space {
            Keyspace::Card => Some(self.key_name(raw, card_name)),
            _ => raw.trigger.card.is_some().then(|| card_name(raw.trigger.card)).flatten(),
        };
        let mut evidence = vec![self.evidence(&raw.trigger, card_name)];
        if let Some(other) = &raw.other {
            evidence.push(self.evidence(other, card_name));
        }
        Alarm {
            id,
            rule: rule.id.clone(),
            key: self.key_name(raw, card_name),
            ts: raw.ts.0,
            priority,
            band: Band::of(priority),
            site: Some(topo.site_info(site).id.to_string()),
            door: door.map(|d| self.door_id(d)),
            area: area.map(|a| topo.area_info(a).id.to_string()),
            card,
            device: matches!(space, Keyspace::Device | Keyspace::Sensor).then(|| self.device_id(key_dev)),
            camera: camera.map(|c| self.device_id(c)),
            cameras: cameras.into_iter().map(|c| self.device_id(c)).collect(),
            excess: (raw.excess > 0).then_some(raw.excess),
            evidence,
            latency_us,
        }
    }

    fn evidence(&self, ev: &Event, card_name: &dyn Fn(CardKey) -> Option<String>) -> Evidence {
        use crate::topology::DeviceKind;
        let dev = self.topo.device_info(ev.device);
        let field = match dev.kind {
            DeviceKind::Door => "door",
            DeviceKind::Reader => "reader",
            DeviceKind::Camera => "camera",
            DeviceKind::Sensor(_) => "sensor",
            DeviceKind::Other => "device",
        };
        let field = if ev.kind == EventType::Heartbeat { "device" } else { field };
        let mut devices = vec![(field, dev.id.to_string())];
        if dev.kind == DeviceKind::Reader {
            if let Some(d) = dev.door {
                devices.push(("door", self.topo.device_info(self.topo.door_info(d).device).id.to_string()));
            }
        }
        let direction = match ev.kind {
            EventType::LineCrossed | EventType::AccessGranted | EventType::AccessDenied | EventType::Duress => {
                Some(if ev.is_out() { "out" } else { "in" })
            }
            _ => None,
        };
        Evidence {
            ts: ev.ts.0,
            kind: ev.kind,
            devices,
            card: ev.card.is_some().then(|| card_name(ev.card)).flatten(),
            count: (ev.kind == EventType::LineCrossed && ev.count != 1).then_some(ev.count),
            direction,
        }
    }
}

impl Alarm {
    /// The alarm as one line of JSON (DESIGN §6), without a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(256);
        write!(s, "{{\"id\":{},\"rule\":", self.id).ok();
        json_str(&mut s, &self.rule);
        write!(s, ",\"ts\":{},\"priority\":{},\"band\":\"{}\"", self.ts, self.priority, self.band.name()).ok();
        for (name, value) in [
            ("site", &self.site),
            ("door", &self.door),
            ("area", &self.area),
            ("card", &self.card),
            ("device", &self.device),
            ("camera", &self.camera),
        ] {
            if let Some(v) = value {
                write!(s, ",\"{name}\":").ok();
                json_str(&mut s, v);
            }
        }
        s.push_str(",\"cameras\":[");
        for (i, c) in self.cameras.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            json_str(&mut s, c);
        }
        s.push(']');
        if let Some(x) = self.excess {
            write!(s, ",\"excess\":{x}").ok();
        }
        s.push_str(",\"evidence\":[");
        for (i, e) in self.evidence.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            write!(s, "{{\"ts\":{},\"type\":\"{}\"", e.ts, e.kind.name()).ok();
            for (field, id) in &e.devices {
                write!(s, ",\"{field}\":").ok();
                json_str(&mut s, id);
            }
            if let Some(c) = &e.card {
                s.push_str(",\"card\":");
                json_str(&mut s, c);
            }
            if let Some(d) = e.direction {
                write!(s, ",\"direction\":\"{d}\"").ok();
            }
            if let Some(n) = e.count {
                write!(s, ",\"count\":{n}").ok();
            }
            s.push('}');
        }
        write!(s, "],\"latency_us\":{}}}", self.latency_us).ok();
        s
    }

    /// The identity key string.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Appends `v` as a JSON string literal.
pub fn json_str(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                write!(out, "\\u{:04x}", c as u32).ok();
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_and_bands() {
        assert_eq!(priority(230, 5), 250);
        assert_eq!(priority(250, 5), 255, "clamped");
        assert_eq!(priority(80, 1), 60);
        assert_eq!(priority(5, 1), 1, "clamped at 1");
        assert_eq!(Band::of(200), Band::Critical);
        assert_eq!(Band::of(199), Band::High);
        assert_eq!(Band::of(150), Band::High);
        assert_eq!(Band::of(100), Band::Medium);
        assert_eq!(Band::of(99), Band::Low);
    }

    #[test]
    fn json_escaping() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\nd\u{1}");
        assert_eq!(s, r#""a\"b\\c\nd\u0001""#);
    }
}
