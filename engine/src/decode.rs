//! Decoding: canonical NDJSON (and, with the `arrow` feature, Arrow IPC) into compact [`Event`]s.
//!
//! One [`Decoder`] per worker. Lines are parsed with simd-json into a flat struct of borrowed
//! scalars (no `serde_json::Value`, no per-event `String`), ids are interned against the
//! [`Topology`], the card becomes its [`CardKey`] fingerprint. Every rejected line gets a
//! [`Reason`] and its line number; rejections never stop the batch.
//!
//! The first time a decoder sees a card it returns its id string once ([`Decoded::new_card`]), so
//! the engine can tell the alarm renderer the name behind the fingerprint.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use vigil_rules::event::{FLAG_NAMES_DOOR, FLAG_OUT};
use vigil_rules::{CardKey, DeviceIx, DeviceKind, Event, EventTime, EventType, Topology};

/// Why a line was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Not valid JSON (or not an object).
    InvalidJson,
    /// `ts`, `type` or the device/card field the type needs is missing.
    MissingField,
    /// `type` is not a known event type.
    UnknownType,
    /// A device field names no device of the topology (or a device of the wrong kind).
    UnknownDevice,
    /// A field has a value of the wrong form (`ts` not a time, `count` not a number, ...).
    InvalidField,
    /// The line is longer than the configured limit.
    LineTooLong,
}

impl Reason {
    /// Every reason, in report order.
    pub const ALL: [Reason; 6] = [
        Reason::InvalidJson,
        Reason::MissingField,
        Reason::UnknownType,
        Reason::UnknownDevice,
        Reason::InvalidField,
        Reason::LineTooLong,
    ];

    /// Snake-case name (report and metrics label).
    pub const fn name(self) -> &'static str {
        match self {
            Reason::InvalidJson => "invalid_json",
            Reason::MissingField => "missing_field",
            Reason::UnknownType => "unknown_type",
            Reason::UnknownDevice => "unknown_device",
            Reason::InvalidField => "invalid_field",
            Reason::LineTooLong => "line_too_long",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rejected input line: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 1-based line number within its source (row number for Arrow).
    pub line: u64,
    /// Why.
    pub reason: Reason,
    /// Details (`missing field `ts``, `reader `r-9` is not in the topology`, ...).
    pub detail: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.reason, self.detail)
    }
}

/// A successfully decoded line.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The event.
    pub event: Event,
    /// The card's id string, the first time this decoder sees the card (one allocation per new
    /// card, never per event).
    pub new_card: Option<String>,
}

/// A scalar JSON value, borrowed where possible. Anything else (objects, arrays) is `Other`.
#[derive(Debug)]
enum Scalar<'a> {
    Int(i128),
    Float,
    Str(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Int(v as i128))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Int(v as i128))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Float)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E>(self) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Other)
            }
            fn visit_none<E>(self) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Other)
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'a>, E> {
                // Rare: a string the parser could not hand out borrowed.
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Scalar<'a>, A::Error> {
                while m.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<Scalar<'a>, A::Error> {
                while s.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl Scalar<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }
    fn describe(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Float => "a fractional number".into(),
            Scalar::Str(s) => format!("\"{}\"", truncate(s, 64)),
            Scalar::Other => "a non-scalar value".into(),
        }
    }
}

/// The fields of a canonical event line; unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    ts: Option<Scalar<'a>>,
    #[serde(rename = "type", borrow)]
    kind: Option<Scalar<'a>>,
    #[serde(borrow)]
    door: Option<Scalar<'a>>,
    #[serde(borrow)]
    reader: Option<Scalar<'a>>,
    #[serde(borrow)]
    camera: Option<Scalar<'a>>,
    #[serde(borrow)]
    sensor: Option<Scalar<'a>>,
    #[serde(borrow)]
    device: Option<Scalar<'a>>,
    #[serde(borrow)]
    card: Option<Scalar<'a>>,
    #[serde(borrow)]
    direction: Option<Scalar<'a>>,
    #[serde(borrow)]
    count: Option<Scalar<'a>>,
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A device field's value, looked up in the topology (once per line for NDJSON, once per
/// dictionary entry for Arrow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRef<'a> {
    /// A device of the topology.
    Known(DeviceIx),
    /// An id the topology does not have.
    Unknown(&'a str),
}

impl<'a> DeviceRef<'a> {
    /// Looks `id` up.
    #[inline]
    pub fn resolve(topo: &Topology, id: &'a str) -> DeviceRef<'a> {
        topo.device(id).map_or(DeviceRef::Unknown(id), DeviceRef::Known)
    }
}

/// The fields of an event with ids resolved, shared by the NDJSON and Arrow paths.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// Event time, ms.
    pub ts: u64,
    /// Event type.
    pub kind: EventType,
    /// `door`
    pub door: Option<DeviceRef<'a>>,
    /// `reader`
    pub reader: Option<DeviceRef<'a>>,
    /// `camera`
    pub camera: Option<DeviceRef<'a>>,
    /// `sensor`
    pub sensor: Option<DeviceRef<'a>>,
    /// `device`
    pub device: Option<DeviceRef<'a>>,
    /// The card's fingerprint ([`CardKey::NONE`] when absent).
    pub card: CardKey,
    /// `direction` is `out`.
    pub out: Option<bool>,
    /// `count`
    pub count: Option<u16>,
}

/// Decodes lines into events for one topology. Holds reusable parser buffers; one per worker.
pub struct Decoder {
    topo: std::sync::Arc<Topology>,
    scratch: Vec<u8>,
    buffers: simd_json::Buffers,
    seen_cards: HashSet<u64, BuildNoHash>,
    max_line: usize,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder").field("max_line", &self.max_line).finish_non_exhaustive()
    }
}

/// Card keys are already xxh3 hashes: hashing them again is wasted work.
#[derive(Debug, Default, Clone, Copy)]
pub struct BuildNoHash;

impl std::hash::BuildHasher for BuildNoHash {
    type Hasher = NoHash;
    fn build_hasher(&self) -> NoHash {
        NoHash(0)
    }
}

/// See [`BuildNoHash`].
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHash(u64);

impl std::hash::Hasher for NoHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Default limit on the length of one NDJSON line.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

impl Decoder {
    /// A decoder for `topo` that rejects lines longer than `max_line` bytes.
    pub fn new(topo: std::sync::Arc<Topology>, max_line: usize) -> Decoder {
        Decoder {
            topo,
            scratch: Vec::with_capacity(1024),
            buffers: simd_json::Buffers::new(1024),
            seen_cards: HashSet::with_hasher(BuildNoHash),
            max_line,
        }
    }

    /// The topology ids are interned against.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Decodes one NDJSON line (without its newline). `Ok(None)` for a blank line.
    pub fn decode_line(&mut self, line: &[u8], line_no: u64, ingest_ns: u64) -> Result<Option<Decoded>, Rejection> {
        let line = trim_ascii(line);
        if line.is_empty() {
            return Ok(None);
        }
        let reject = |reason, detail: String| Rejection { line: line_no, reason, detail };
        if line.len() > self.max_line {
            return Err(reject(Reason::LineTooLong, format!("{} bytes, the limit is {}", line.len(), self.max_line)));
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(line);
        let parsed: Line<'_> = simd_json::serde::from_slice_with_buffers(&mut self.scratch, &mut self.buffers)
            .map_err(|e| reject(Reason::InvalidJson, e.to_string()))?;

        let ts = match &parsed.ts {
            None => return Err(reject(Reason::MissingField, "missing field `ts`".into())),
            Some(Scalar::Int(v)) if *v >= 0 && *v <= i64::MAX as i128 => *v as u64,
            Some(Scalar::Str(s)) => parse_rfc3339(s).ok_or_else(|| {
                reject(Reason::InvalidField, format!("`ts` {} is not RFC 3339", Scalar::Str(s.clone()).describe()))
            })?,
            Some(other) => {
                return Err(reject(
                    Reason::InvalidField,
                    format!("`ts` {} is not a non-negative integer of ms or an RFC 3339 string", other.describe()),
                ));
            }
        };
        let kind = match &parsed.kind {
            None => return Err(reject(Reason::MissingField, "missing field `type`".into())),
            Some(Scalar::Str(s)) => EventType::from_name(s)
                .ok_or_else(|| reject(Reason::UnknownType, format!("unknown type \"{}\"", truncate(s, 64))))?,
            Some(other) => {
                return Err(reject(Reason::InvalidField, format!("`type` {} is not a string", other.describe())));
            }
        };
        // Id fields must be strings when present (null counts as absent).
        let str_field = |name: &'static str, v: &Option<Scalar<'_>>| -> Result<(), Rejection> {
            match v {
                None | Some(Scalar::Other) => Ok(()),
                Some(s) => match s.as_str() {
                    Some(_) => Ok(()),
                    None => Err(Rejection {
                        line: line_no,
                        reason: Reason::InvalidField,
                        detail: format!("`{name}` {} is not a string", s.describe()),
                    }),
                },
            }
        };
        for (name, v) in [
            ("door", &parsed.door),
            ("reader", &parsed.reader),
            ("camera", &parsed.camera),
            ("sensor", &parsed.sensor),
            ("device", &parsed.device),
            ("card", &parsed.card),
        ] {
            str_field(name, v)?;
        }
        let out = match parsed.direction.as_ref() {
            None => None,
            Some(s) => match s.as_str() {
                Some("in") => Some(false),
                Some("out") => Some(true),
                _ => {
                    return Err(reject(
                        Reason::InvalidField,
                        format!("`direction` {} is not \"in\" or \"out\"", s.describe()),
                    ));
                }
            },
        };
        let count = match &parsed.count {
            None => None,
            Some(Scalar::Int(v)) if (0..=u16::MAX as i128).contains(v) => Some(*v as u16),
            Some(other) => {
                return Err(reject(
                    Reason::InvalidField,
                    format!("`count` {} is not an integer in 0..=65535", other.describe()),
                ));
            }
        };
        // Borrow the strings straight out of the parsed line (no allocation on the common path).
        let topo = &*self.topo;
        fn dev<'s>(topo: &Topology, v: &'s Option<Scalar<'_>>) -> Option<DeviceRef<'s>> {
            v.as_ref().and_then(Scalar::as_str).map(|id| DeviceRef::resolve(topo, id))
        }
        let card_str = parsed.card.as_ref().and_then(Scalar::as_str);
        let fields = Fields {
            ts,
            kind,
            door: dev(topo, &parsed.door),
            reader: dev(topo, &parsed.reader),
            camera: dev(topo, &parsed.camera),
            sensor: dev(topo, &parsed.sensor),
            device: dev(topo, &parsed.device),
            card: card_str.map_or(CardKey::NONE, CardKey::of),
            out,
            count,
        };
        let event = intern(topo, &fields, ingest_ns).map_err(|(reason, detail)| reject(reason, detail))?;
        let new_card = match card_str {
            Some(c) if event.card.is_some() && self.seen_cards.insert(event.card.0) => Some(c.to_owned()),
            _ => None,
        };
        drop(parsed);
        Ok(Some(Decoded { event, new_card }))
    }

    /// Marks a card as announced (Arrow path, tests).
    pub fn note_card(&mut self, key: CardKey) -> bool {
        self.seen_cards.insert(key.0)
    }
}

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Checks what the event's type needs and builds the compact [`Event`].
pub fn intern(topo: &Topology, f: &Fields<'_>, ingest_ns: u64) -> Result<Event, (Reason, String)> {
    let kind = f.kind;
    let lookup =
        |field: &'static str, r: DeviceRef<'_>, want: fn(DeviceKind) -> bool| -> Result<DeviceIx, (Reason, String)> {
            match r {
                DeviceRef::Unknown(id) => {
                    Err((Reason::UnknownDevice, format!("{field} \"{}\" is not in the topology", truncate(id, 64))))
                }
                DeviceRef::Known(ix) => {
                    let info = topo.device_info(ix);
                    if want(info.kind) {
                        Ok(ix)
                    } else {
                        Err((
                            Reason::UnknownDevice,
                            format!("{field} \"{}\" is a {}, not a {field}", info.id, info.kind.table()),
                        ))
                    }
                }
            }
        };
    let missing = |field: &str| (Reason::MissingField, format!("{} needs `{field}`", kind.name()));
    let is_door = |k| k == DeviceKind::Door;
    let mut flags = 0u8;
    let device = match kind {
        EventType::AccessGranted | EventType::AccessDenied | EventType::Duress => {
            let door = f.door.map(|d| lookup("door", d, is_door)).transpose()?;
            match f.reader {
                Some(r) => {
                    let reader = lookup("reader", r, |k| k == DeviceKind::Reader)?;
                    let info = topo.device_info(reader);
                    if let Some(door) = door {
                        if info.door != topo.door_of(door) {
                            return Err((
                                Reason::InvalidField,
                                format!("reader \"{}\" is not on door \"{}\"", info.id, topo.device_info(door).id),
                            ));
                        }
                        flags |= FLAG_NAMES_DOOR;
                    }
                    if info.out {
                        flags |= FLAG_OUT;
                    }
                    reader
                }
                None => {
                    let door = door.ok_or_else(|| missing("reader` or `door"))?;
                    if f.out == Some(true) {
                        flags |= FLAG_OUT;
                    }
                    door
                }
            }
        }
        EventType::Rex
        | EventType::DoorForced
        | EventType::DoorOpened
        | EventType::DoorHeld
        | EventType::DoorClosed => lookup("door", f.door.ok_or_else(|| missing("door"))?, is_door)?,
        EventType::Motion | EventType::LineCrossed | EventType::CameraTamper => {
            if kind == EventType::LineCrossed && f.out == Some(true) {
                flags |= FLAG_OUT;
            }
            lookup("camera", f.camera.ok_or_else(|| missing("camera"))?, |k| k == DeviceKind::Camera)?
        }
        EventType::Intrusion | EventType::GlassBreak => {
            lookup("sensor", f.sensor.ok_or_else(|| missing("sensor"))?, |k| matches!(k, DeviceKind::Sensor(_)))?
        }
        EventType::Heartbeat => lookup("device", f.device.ok_or_else(|| missing("device"))?, |_| true)?,
    };
    // Any other device field present must still name a device of the topology.
    for (field, r) in
        [("door", f.door), ("reader", f.reader), ("camera", f.camera), ("sensor", f.sensor), ("device", f.device)]
    {
        if let Some(DeviceRef::Unknown(id)) = r {
            return Err((Reason::UnknownDevice, format!("{field} \"{}\" is not in the topology", truncate(id, 64))));
        }
    }
    let card = if kind.is_access() { f.card } else { CardKey::NONE };
    if kind == EventType::AccessGranted && !card.is_some() {
        return Err(missing("card"));
    }
    Ok(Event { ts: EventTime(f.ts), card, ingest_ns, device, kind, flags, count: f.count.unwrap_or(1) })
}

/// Parses an RFC 3339 timestamp (`2025-11-22T08:00:00.123Z`, `...+01:00`) into ms since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(part.iter().fold(0i64, |acc, d| acc * 10 + (d - b'0') as i64))
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        // Milliseconds: first three digits, padded.
        for k in 0..3 {
            ms = ms * 10 + b.get(start + k).filter(|_| start + k < i).map(|d| (d - b'0') as i64).unwrap_or(0);
        }
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if *sign == b'+' { m } else { -m }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + min * 60 + sec.min(59) - offset_min * 60;
    let total = secs.checked_mul(1000)?.checked_add(ms)?;
    u64::try_from(total).ok()
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2025-11-22T08:00:00.123Z"), Some(1_763_798_400_123));
        assert_eq!(parse_rfc3339("2025-11-22T09:00:00.123+01:00"), Some(1_763_798_400_123));
        assert_eq!(parse_rfc3339("2025-11-22T08:00:00.1Z"), Some(1_763_798_400_100));
        assert_eq!(parse_rfc3339("2025-11-22T08:00:00.123456Z"), Some(1_763_798_400_123));
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        assert_eq!(parse_rfc3339("2025-02-29T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2025-11-22 08:00:00"), None);
        assert_eq!(parse_rfc3339("2025-11-22T08:00:00+0100"), None);
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None, "before the epoch");
    }
}
