//! # vigil-replay: labelled scenarios for vigil
//!
//! [`generate`] builds a site from a [`Profile`] (`demo`: one building and a small annex; `campus`:
//! three sites with travel times) and models working days: people arrive on their schedule and
//! badge through the doors of their route (grant → `door.opened` → `line.crossed` →
//! `door.closed`, leaving through out-readers), area cameras see ambient motion, devices
//! heartbeat, a few reads are denied. Into each day it injects incidents of every default-rule
//! kind, and near-misses that must not alarm.
//!
//! **Labels come from the scenario, never from running the engine.** Ordinary traffic is built so
//! that it cannot raise an alarm: a door's line camera watches only that door, every opening is
//! closed well within `held_open_s`, every crossing follows its own grant, people keep to their
//! site and to working hours and leave through out-readers (so anti-passback stays consistent),
//! denials are rate-limited below the burst thresholds, heartbeats are regular. Each incident
//! reserves the doors, cameras and devices it needs for its window, and ordinary traffic waits for
//! the reservation to end (or, for ambient motion and stray denials, is not generated). So the
//! labels are exactly the injected incidents.
//!
//! ```
//! let profile = vigil_replay::Profile::named("demo", 0.2).unwrap();
//! let s = vigil_replay::generate(&profile, 5_000, 7);
//! assert!(s.events.len() >= 5_000);
//! assert!(s.labels.iter().any(|l| l.rule == "tailgating"));
//! ```

use std::fmt::Write as _;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vigil_rules::EventType;

/// What kind of device an id is (decides the event field it appears in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `door`
    Door,
    /// `reader`
    Reader,
    /// `camera`
    Camera,
    /// `sensor`
    Sensor,
    /// `device`
    Device,
}

impl Field {
    /// The NDJSON field name.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Door => "door",
            Field::Reader => "reader",
            Field::Camera => "camera",
            Field::Sensor => "sensor",
            Field::Device => "device",
        }
    }
}

/// One generated event (compact; rendered by [`Scenario::ndjson_line`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenEvent {
    /// Event time, ms since the epoch.
    pub ts: u64,
    /// Type.
    pub kind: EventType,
    /// Index into [`Scenario::devices`].
    pub device: u32,
    /// Index into [`Scenario::cards`], if any.
    pub card: Option<u32>,
    /// Direction `out` (crossings).
    pub out: bool,
    /// People counted (crossings).
    pub count: u16,
}

/// One expected alarm: the identity (rule, ts, key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// Rule id.
    pub rule: &'static str,
    /// Trigger ts.
    pub ts: u64,
    /// The key's field (`door`, `card`, `area`, `device`).
    pub key_field: &'static str,
    /// The key.
    pub key: String,
}

impl Label {
    /// The label as an NDJSON line (`{"rule":…,"ts":…,<key field>:…}`).
    pub fn to_json(&self) -> String {
        format!(r#"{{"rule":"{}","ts":{},"{}":"{}"}}"#, self.rule, self.ts, self.key_field, self.key)
    }
}

/// A generated scenario: site, events in time order, labels.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `site.toml`.
    pub site_toml: String,
    /// Device ids with their field.
    pub devices: Vec<(String, Field)>,
    /// Card ids.
    pub cards: Vec<String>,
    /// Events, sorted by ts.
    pub events: Vec<GenEvent>,
    /// Expected alarms, sorted.
    pub labels: Vec<Label>,
}

impl Scenario {
    /// One event as canonical NDJSON.
    pub fn ndjson_line(&self, e: &GenEvent) -> String {
        let (id, field) = &self.devices[e.device as usize];
        let mut s = format!(r#"{{"ts":{},"type":"{}","{}":"{}""#, e.ts, e.kind.name(), field.name(), id);
        if let Some(c) = e.card {
            let _ = write!(s, r#","card":"{}""#, self.cards[c as usize]);
        }
        if e.kind == EventType::LineCrossed {
            let _ = write!(s, r#","direction":"{}","count":{}"#, if e.out { "out" } else { "in" }, e.count);
        }
        if e.kind == EventType::AccessDenied {
            s.push_str(r#","reason":"CredentialNotValid""#);
        }
        s.push('}');
        s
    }

    /// The string fields of an event, in the column order of vigil's Arrow files
    /// (door, reader, camera, sensor, device, card, direction), with count.
    pub fn columns(&self, e: &GenEvent) -> ([Option<&str>; 7], Option<u16>) {
        let (id, field) = &self.devices[e.device as usize];
        let mut cols: [Option<&str>; 7] = [None; 7];
        let slot = match field {
            Field::Door => 0,
            Field::Reader => 1,
            Field::Camera => 2,
            Field::Sensor => 3,
            Field::Device => 4,
        };
        cols[slot] = Some(id);
        cols[5] = e.card.map(|c| self.cards[c as usize].as_str());
        let crossing = e.kind == EventType::LineCrossed;
        if crossing {
            cols[6] = Some(if e.out { "out" } else { "in" });
        }
        (cols, crossing.then_some(e.count))
    }
}

/// A site profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// `demo` or `campus`.
    pub name: String,
    /// Sites (1 + annex for demo, 3 for campus).
    pub sites: usize,
    /// Office doors per site.
    pub office_doors: usize,
    /// Cardholders.
    pub people: usize,
    /// Fraction of doors without a camera (beyond the dock, which never has one).
    pub uncovered: f64,
}

impl Profile {
    /// A named profile at a scale (1.0 = the nominal size).
    pub fn named(name: &str, scale: f64) -> Result<Profile, String> {
        if !(scale > 0.0 && scale.is_finite()) {
            return Err(format!("scale {scale} must be a positive number"));
        }
        let n = |x: f64| ((x * scale).round() as usize).max(1);
        match name {
            "demo" => {
                Ok(Profile { name: name.into(), sites: 1, office_doors: n(32.0), people: n(500.0), uncovered: 0.0 })
            }
            "campus" => {
                Ok(Profile { name: name.into(), sites: 3, office_doors: n(660.0), people: n(50_000.0), uncovered: 0.1 })
            }
            other => Err(format!("unknown site profile `{other}` (demo, campus)")),
        }
    }
}

// ---- site model -------------------------------------------------------------------------------

struct Area {
    name: String,
    site: usize,
    criticality: u8,
    anti_passback: bool,
    schedule: Option<&'static str>,
    parent: Option<String>,
    /// Motion-only cameras located in the area.
    cameras: Vec<u32>,
}

struct Door {
    name: String,
    site: usize,
    device: u32,
    from: usize,
    to: usize,
    reader_in: u32,
    reader_out: u32,
    line_cam: Option<u32>,
    held_s: u64,
}

struct Site {
    name: String,
    outside: usize,
    main_doors: Vec<usize>,
    office_doors: Vec<usize>,
    lab_doors: Vec<usize>,
    server_door: usize,
    lab: usize,
    server: usize,
    gb_lab: u32,
    pir_server: u32,
    controllers: Vec<(u32, u64)>,
}

struct Model {
    devices: Vec<(String, Field)>,
    device_site: Vec<usize>,
    device_area: Vec<Option<usize>>,
    areas: Vec<Area>,
    doors: Vec<Door>,
    sites: Vec<Site>,
    /// (device, heartbeat interval s)
    heartbeats: Vec<(u32, u64)>,
    dock: usize,
    travel_s: u64,
}

impl Model {
    fn device(&mut self, name: String, field: Field, site: usize, area: Option<usize>) -> u32 {
        self.devices.push((name, field));
        self.device_site.push(site);
        self.device_area.push(area);
        (self.devices.len() - 1) as u32
    }

    fn area(&mut self, name: String, site: usize, criticality: u8) -> usize {
        self.areas.push(Area {
            name,
            site,
            criticality,
            anti_passback: false,
            schedule: None,
            parent: None,
            cameras: Vec::new(),
        });
        self.areas.len() - 1
    }

    #[allow(clippy::too_many_arguments)]
    fn door(&mut self, name: String, site: usize, from: usize, to: usize, camera: bool, held_s: u64) -> usize {
        let device = self.device(name.clone(), Field::Door, site, None);
        let reader_in = self.device(format!("r-{name}-in"), Field::Reader, site, None);
        let reader_out = self.device(format!("r-{name}-out"), Field::Reader, site, None);
        // The line camera sits on the unsecured side and watches this door only.
        let line_cam = camera.then(|| self.device(format!("cam-{name}"), Field::Camera, site, Some(from)));
        self.doors.push(Door { name, site, device, from, to, reader_in, reader_out, line_cam, held_s });
        self.doors.len() - 1
    }

    fn build(p: &Profile, rng: &mut SmallRng) -> Model {
        let mut m = Model {
            devices: Vec::new(),
            device_site: Vec::new(),
            device_area: Vec::new(),
            areas: Vec::new(),
            doors: Vec::new(),
            sites: Vec::new(),
            heartbeats: Vec::new(),
            dock: 0,
            travel_s: if p.name == "demo" { 1_800 } else { 3_600 },
        };
        // Demo: the building plus a small annex (so impossible travel has somewhere to happen).
        let site_names: Vec<String> = if p.name == "demo" {
            vec!["hq".into(), "annex".into()]
        } else {
            (0..p.sites)
                .map(|i| ["hq", "plant", "labs"].get(i).map_or(format!("site-{i}"), |s| s.to_string()))
                .collect()
        };
        for (si, sname) in site_names.iter().enumerate() {
            let small = p.name == "demo" && si == 1;
            let outside = m.area(format!("{sname}-outside"), si, 1);
            let lobby = m.area(format!("{sname}-lobby"), si, 2);
            let lab = m.area(format!("{sname}-lab"), si, 4);
            m.areas[lab].anti_passback = true;
            m.areas[lab].schedule = Some("Mon-Fri 07:00-19:00");
            let server = m.area(format!("{sname}-server"), si, 5);
            m.areas[server].schedule = Some("Mon-Fri 07:00-19:00");
            m.areas[server].parent = Some(format!("{sname}-lab"));
            let offices = if small { 2 } else { p.office_doors };
            let mut main_doors = Vec::new();
            for k in 0..if small { 1 } else { 2 } {
                main_doors.push(m.door(format!("{sname}-main-{}", k + 1), si, outside, lobby, true, 30));
            }
            let mut office_doors = Vec::new();
            for k in 0..offices {
                let area = m.area(format!("{sname}-office-{}", k + 1), si, 3);
                let camera = !rng.random_bool(p.uncovered);
                let held = [15, 20, 25, 30][k % 4];
                office_doors.push(m.door(format!("{sname}-office-{}", k + 1), si, lobby, area, camera, held));
            }
            let lab_doors = vec![
                m.door(format!("{sname}-lab-1"), si, lobby, lab, true, 20),
                m.door(format!("{sname}-lab-2"), si, lobby, lab, true, 20),
            ];
            let server_door = m.door(format!("{sname}-server"), si, lab, server, true, 15);
            for (area, cam) in [(lobby, "lobby"), (lab, "lab"), (server, "server")] {
                let c = m.device(format!("cam-area-{sname}-{cam}"), Field::Camera, si, Some(area));
                m.areas[area].cameras.push(c);
            }
            let gb_lab = m.device(format!("gb-{sname}-lab"), Field::Sensor, si, Some(lab));
            let pir_server = m.device(format!("pir-{sname}-server"), Field::Sensor, si, Some(server));
            let n_ctl = (m.doors.len() / 20).clamp(2, 200);
            let mut controllers = Vec::new();
            for k in 0..n_ctl {
                let hb = if k % 5 == 4 { 60 } else { 30 };
                let d = m.device(format!("ctl-{sname}-{}", k + 1), Field::Device, si, None);
                controllers.push((d, hb));
                m.heartbeats.push((d, hb));
            }
            m.sites.push(Site {
                name: sname.clone(),
                outside,
                main_doors,
                office_doors,
                lab_doors,
                server_door,
                lab,
                server,
                gb_lab,
                pir_server,
                controllers,
            });
        }
        // The dock: no camera at all (a forced dock door is unconfirmed at once).
        let dock_area = m.area("hq-dock".into(), 0, 2);
        let outside = m.sites[0].outside;
        m.dock = m.door("hq-dock".into(), 0, outside, dock_area, false, 45);
        m
    }

    fn toml(&self) -> String {
        let mut s = String::new();
        for site in &self.sites {
            let _ = writeln!(s, "[[site]]\nid = \"{}\"\nutc_offset_min = 60\nheartbeat_s = 30\n", site.name);
        }
        for a in 0..self.sites.len() {
            for b in a + 1..self.sites.len() {
                let _ = writeln!(
                    s,
                    "[[travel]]\nbetween = [\"{}\", \"{}\"]\nmin_s = {}\n",
                    self.sites[a].name, self.sites[b].name, self.travel_s
                );
            }
        }
        for a in &self.areas {
            let _ = writeln!(
                s,
                "[[area]]\nid = \"{}\"\nsite = \"{}\"\ncriticality = {}",
                a.name, self.sites[a.site].name, a.criticality
            );
            if let Some(p) = &a.parent {
                let _ = writeln!(s, "parent = \"{p}\"");
            }
            if a.anti_passback {
                s.push_str("anti_passback = true\n");
            }
            if let Some(sch) = a.schedule {
                let _ = writeln!(s, "schedule = \"{sch}\"");
            }
            s.push('\n');
        }
        for d in &self.doors {
            let site = &self.sites[d.site].name;
            let cams = d.line_cam.map(|c| format!("\"{}\"", self.devices[c as usize].0)).unwrap_or_default();
            let _ = writeln!(
                s,
                "[[door]]\nid = \"{}\"\nsite = \"{site}\"\nfrom = \"{}\"\nto = \"{}\"\ncameras = [{cams}]\nheld_open_s = {}\n",
                d.name, self.areas[d.from].name, self.areas[d.to].name, d.held_s
            );
            for (r, dir) in [(d.reader_in, "in"), (d.reader_out, "out")] {
                let _ = writeln!(
                    s,
                    "[[reader]]\nid = \"{}\"\nsite = \"{site}\"\ndoor = \"{}\"\ndirection = \"{dir}\"\n",
                    self.devices[r as usize].0, d.name
                );
            }
        }
        for (i, (id, field)) in self.devices.iter().enumerate() {
            let site = &self.sites[self.device_site[i]].name;
            match field {
                Field::Camera => {
                    let area = self.device_area[i].map(|a| self.areas[a].name.as_str()).unwrap_or_default();
                    let _ = writeln!(s, "[[camera]]\nid = \"{id}\"\nsite = \"{site}\"\narea = \"{area}\"\n");
                }
                Field::Sensor => {
                    let kind = if id.starts_with("gb-") { "glass_break" } else { "intrusion" };
                    let area = self.device_area[i].map(|a| self.areas[a].name.as_str()).unwrap_or_default();
                    let _ = writeln!(
                        s,
                        "[[sensor]]\nid = \"{id}\"\nsite = \"{site}\"\nkind = \"{kind}\"\narea = \"{area}\"\n"
                    );
                }
                Field::Device => {
                    let hb = self.heartbeats.iter().find(|(d, _)| *d == i as u32).map_or(30, |(_, hb)| *hb);
                    let _ = writeln!(s, "[[device]]\nid = \"{id}\"\nsite = \"{site}\"\nheartbeat_s = {hb}\n");
                }
                Field::Door | Field::Reader => {}
            }
        }
        s
    }
}

// ---- generation -------------------------------------------------------------------------------

/// Windows (ms) during which ordinary traffic keeps away from a resource.
#[derive(Default, Clone)]
struct Reservations(Vec<(u64, u64)>);

impl Reservations {
    fn add(&mut self, a: u64, b: u64) {
        self.0.push((a, b));
    }
    fn blocks(&self, a: u64, b: u64) -> Option<u64> {
        self.0.iter().filter(|(x, y)| a <= *y && *x <= b).map(|(_, y)| *y).max()
    }
}

const DAY_MS: u64 = 86_400_000;
const HOUR: u64 = 3_600_000;
const MIN: u64 = 60_000;
const SEC: u64 = 1_000;
/// Monday 2025-11-24 00:00 local (UTC+1).
const FIRST_DAY_LOCAL_MIDNIGHT_UTC: u64 = 1_763_938_800_000;

struct Gen<'a> {
    m: &'a Model,
    rng: SmallRng,
    events: Vec<GenEvent>,
    labels: Vec<Label>,
    cards: Vec<String>,
    doors: Vec<Reservations>,
    door_denials: Vec<Reservations>,
    cameras_quiet: Vec<Reservations>,
    /// Per heartbeating device, injected silences (open intervals).
    silences: Vec<Vec<(u64, u64)>>,
    /// Per door, recent ordinary denial times (rate limit below the burst thresholds).
    recent_denials: Vec<Vec<u64>>,
    /// Per card, recent ordinary denial times.
    card_denials: Vec<Vec<u64>>,
}

impl Gen<'_> {
    fn push(&mut self, ts: u64, kind: EventType, device: u32, card: Option<u32>) {
        self.events.push(GenEvent { ts, kind, device, card, out: false, count: 1 });
    }

    fn card(&mut self, name: String) -> u32 {
        self.cards.push(name);
        (self.cards.len() - 1) as u32
    }

    fn label(&mut self, rule: &'static str, ts: u64, key_field: &'static str, key: String) {
        self.labels.push(Label { rule, ts, key_field, key });
    }

    /// One passage through a door: (denial,) grant, open, cross, close. Starts at the first time
    /// at or after `t` when the door is not reserved; returns when the person is through.
    fn pass(&mut self, door: usize, out: bool, card: u32, t: u64) -> u64 {
        let mut t = t;
        while let Some(end) = self.doors[door].blocks(t.saturating_sub(SEC), t + 10 * SEC) {
            t = end + SEC + self.rng.random_range(0..5 * SEC);
        }
        let d = &self.m.doors[door];
        let (reader, dev, cam) = (if out { d.reader_out } else { d.reader_in }, d.device, d.line_cam);
        if self.rng.random_bool(0.02) {
            self.ordinary_denial(door, reader, card, t.saturating_sub(3 * SEC));
        }
        self.push(t, EventType::AccessGranted, reader, Some(card));
        let opened = t + self.rng.random_range(500..1_500);
        self.push(opened, EventType::DoorOpened, dev, None);
        if let Some(cam) = cam {
            let ts = t + self.rng.random_range(1_600..3_000);
            self.events.push(GenEvent { ts, kind: EventType::LineCrossed, device: cam, card: None, out, count: 1 });
        }
        let closed = t + self.rng.random_range(3_500..8_000);
        self.push(closed, EventType::DoorClosed, dev, None);
        t + 10 * SEC
    }

    fn ordinary_denial(&mut self, door: usize, reader: u32, card: u32, t: u64) {
        if self.door_denials[door].blocks(t, t).is_some() {
            return;
        }
        let recent = &mut self.recent_denials[door];
        recent.retain(|&x| x + 2 * MIN > t);
        let per_card = &mut self.card_denials[card as usize];
        per_card.retain(|&x| x + 2 * MIN > t);
        // Stay well below the burst thresholds (10 per door, 5 per card in 60 s).
        if recent.len() >= 5 || per_card.len() >= 2 {
            return;
        }
        recent.push(t);
        per_card.push(t);
        self.push(t, EventType::AccessDenied, reader, Some(card));
    }

    fn route(&self, person: &Person) -> Vec<usize> {
        let site = &self.m.sites[person.site];
        let mut r = vec![site.main_doors[person.main]];
        match person.kind {
            Kind::Office(k) => r.push(site.office_doors[k]),
            Kind::Lab => r.push(site.lab_doors[person.main % site.lab_doors.len()]),
            Kind::Server => {
                r.push(site.lab_doors[person.main % site.lab_doors.len()]);
                r.push(site.server_door);
            }
        }
        r
    }

    fn walk(&mut self, person: &Person, t: u64, inward: bool) -> u64 {
        let route = self.route(person);
        let mut t = t;
        if inward {
            for d in route {
                t = self.pass(d, false, person.card, t) + self.rng.random_range(5 * SEC..60 * SEC);
            }
        } else {
            for d in route.into_iter().rev() {
                t = self.pass(d, true, person.card, t) + self.rng.random_range(5 * SEC..60 * SEC);
            }
        }
        t
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Office(usize),
    Lab,
    Server,
}

#[derive(Clone, Copy)]
struct Person {
    card: u32,
    site: usize,
    main: usize,
    kind: Kind,
}

/// Generates whole working days until at least `min_events` events exist (at least one day).
pub fn generate(profile: &Profile, min_events: usize, seed: u64) -> Scenario {
    let mut rng = SmallRng::seed_from_u64(seed);
    let m = Model::build(profile, &mut rng);
    let n_dev = m.devices.len();
    let mut g = Gen {
        m: &m,
        rng,
        events: Vec::with_capacity(min_events + min_events / 8),
        labels: Vec::new(),
        cards: Vec::new(),
        doors: vec![Reservations::default(); m.doors.len()],
        door_denials: vec![Reservations::default(); m.doors.len()],
        cameras_quiet: vec![Reservations::default(); n_dev],
        silences: vec![Vec::new(); n_dev],
        recent_denials: vec![Vec::new(); m.doors.len()],
        card_denials: Vec::new(),
    };
    // People: most at the first site, a few at each other; office, lab or server staff.
    let mut people = Vec::with_capacity(profile.people);
    for i in 0..profile.people {
        let site = if m.sites.len() > 1 && i % 10 == 9 { 1 + (i / 10) % (m.sites.len() - 1) } else { 0 };
        let s = &m.sites[site];
        let card = g.card(format!("c{:06}", i + 1));
        let kind = match g.rng.random_range(0..100) {
            0..75 => Kind::Office(g.rng.random_range(0..s.office_doors.len())),
            75..95 => Kind::Lab,
            _ => Kind::Server,
        };
        people.push(Person { card, site, main: g.rng.random_range(0..s.main_doors.len()), kind });
    }
    g.card_denials = vec![Vec::new(); g.cards.len() + 100_000];

    let mut day = 0u64;
    let mut incident = 0u32;
    // Heartbeats are added at the end, around the clock: count them in while deciding how many days.
    let beats_per_day: u64 = m.heartbeats.iter().map(|(_, hb)| DAY_MS / (hb * SEC)).sum();
    let calendar_days = |d: u64| if d == 0 { 0 } else { (d - 1) / 5 * 7 + (d - 1) % 5 + 1 };
    while day == 0 || g.events.len() as u64 + calendar_days(day) * beats_per_day < min_events as u64 {
        // Working days only: Monday..Friday, then the next Monday.
        let midnight = FIRST_DAY_LOCAL_MIDNIGHT_UTC + (day / 5 * 7 + day % 5) * DAY_MS;
        incidents(&mut g, midnight, &mut incident);
        for p in &people {
            let arrive = midnight + 7 * HOUR + 15 * MIN + g.rng.random_range(0..150 * MIN);
            let mut t = g.walk(p, arrive, true);
            if g.rng.random_bool(0.4) {
                let lunch = (midnight + 12 * HOUR + g.rng.random_range(0..60 * MIN)).max(t + MIN);
                t = g.walk(p, lunch, false);
                let back = t + g.rng.random_range(20 * MIN..50 * MIN);
                t = g.walk(p, back, true);
            }
            let leave = (midnight + 16 * HOUR + g.rng.random_range(0..150 * MIN)).max(t + MIN);
            g.walk(p, leave, false);
        }
        // Ambient motion on area cameras during the day.
        for a in 0..m.areas.len() {
            for &cam in &m.areas[a].cameras {
                let mut t = midnight + 7 * HOUR;
                while t < midnight + 20 * HOUR {
                    t += g.rng.random_range(10 * SEC..120 * SEC);
                    if g.cameras_quiet[cam as usize].blocks(t, t).is_none() {
                        g.push(t, EventType::Motion, cam, None);
                    }
                }
            }
        }
        day += 1;
    }
    // Devices heartbeat around the clock, weekends included, except in injected silences.
    let last_day = day - 1;
    let end = FIRST_DAY_LOCAL_MIDNIGHT_UTC + (last_day / 5 * 7 + last_day % 5 + 1) * DAY_MS;
    heartbeats(&mut g, FIRST_DAY_LOCAL_MIDNIGHT_UTC, end);
    let mut events = g.events;
    events.sort_by_key(|e| (e.ts, e.kind, e.device));
    let mut labels = g.labels;
    labels.sort();
    Scenario { site_toml: m.toml(), devices: m.devices.clone(), cards: g.cards, events, labels }
}

fn heartbeats(g: &mut Gen<'_>, start: u64, end: u64) {
    for &(dev, hb) in &g.m.heartbeats {
        let hb_ms = hb * SEC;
        let mut t = beat_phase(start, dev, hb_ms);
        let silences = std::mem::take(&mut g.silences[dev as usize]);
        while t < end {
            match silences.iter().find(|(a, b)| *a < t && t <= *b) {
                // Inside an injected silence: one beat at its end, then back on the grid (the
                // schedule's phase never shifts, so later days' incidents know where beats fall).
                Some(&(_, b)) => {
                    if b < end {
                        g.push(b, EventType::Heartbeat, dev, None);
                    }
                    while t <= b {
                        t += hb_ms;
                    }
                }
                None => {
                    g.push(t, EventType::Heartbeat, dev, None);
                    t += hb_ms;
                }
            }
        }
    }
}

/// A device's first beat: staggered so devices do not all beat in the same millisecond. Days are
/// whole multiples of every interval, so the phase is the same every day.
fn beat_phase(start: u64, dev: u32, hb_ms: u64) -> u64 {
    start + (dev as u64 * 997) % hb_ms
}

/// Injects one incident of every kind and the near-misses into a day; incidents are 12 minutes
/// apart so their windows never meet.
fn incidents(g: &mut Gen<'_>, midnight: u64, n: &mut u32) {
    let m = g.m;
    let hq = &m.sites[0];
    let mut slot = midnight + 9 * HOUR + 30 * MIN;
    let mut next = |g: &mut Gen<'_>| {
        slot += 12 * MIN + g.rng.random_range(0..2 * MIN);
        slot
    };
    let mut fresh = |g: &mut Gen<'_>, what: &str| {
        *n += 1;
        g.card(format!("{what}-{n}"))
    };
    let door_name = |d: usize| m.doors[d].name.clone();
    let covered: Vec<usize> = hq.office_doors.iter().copied().filter(|&d| m.doors[d].line_cam.is_some()).collect();
    let pick = |g: &mut Gen<'_>| covered[g.rng.random_range(0..covered.len())];

    // forced_entry_confirmed: forced, video on the door's camera 2–8 s later.
    let (t, d) = (next(g), pick(g));
    g.doors[d].add(t - 15 * SEC, t + 15 * SEC);
    g.push(t, EventType::DoorForced, m.doors[d].device, None);
    g.push(t + 300, EventType::DoorOpened, m.doors[d].device, None);
    if let Some(c) = m.doors[d].line_cam {
        let seen = t + g.rng.random_range(2 * SEC..8 * SEC);
        g.push(seen, EventType::Motion, c, None);
    }
    g.push(t + 6 * SEC, EventType::DoorClosed, m.doors[d].device, None);
    g.label("forced_entry_confirmed", t, "door", door_name(d));

    // forced_entry_unconfirmed, near miss: motion 11 s after (outside the 10 s window).
    let (t, d) = (next(g), pick(g));
    g.doors[d].add(t - 15 * SEC, t + 20 * SEC);
    g.push(t, EventType::DoorForced, m.doors[d].device, None);
    if let Some(c) = m.doors[d].line_cam {
        g.push(t + 11 * SEC, EventType::Motion, c, None);
    }
    g.label("forced_entry_unconfirmed", t, "door", door_name(d));

    // forced_entry_unconfirmed at a door with no camera: at once.
    let t = next(g);
    g.doors[m.dock].add(t - 15 * SEC, t + 15 * SEC);
    g.push(t, EventType::DoorForced, m.doors[m.dock].device, None);
    g.label("forced_entry_unconfirmed", t, "door", door_name(m.dock));

    // door_held_open: propped for held + 40 s; another door closed at exactly held (near miss).
    let (t, d) = (next(g), pick(g));
    let held = m.doors[d].held_s * SEC;
    g.doors[d].add(t - 15 * SEC, t + held + 50 * SEC);
    g.push(t, EventType::DoorOpened, m.doors[d].device, None);
    g.push(t + held + 40 * SEC, EventType::DoorClosed, m.doors[d].device, None);
    g.label("door_held_open", t, "door", door_name(d));
    let (t, d) = (next(g), pick(g));
    let held = m.doors[d].held_s * SEC;
    g.doors[d].add(t - 15 * SEC, t + held + 15 * SEC);
    g.push(t, EventType::DoorOpened, m.doors[d].device, None);
    g.push(t + held, EventType::DoorClosed, m.doors[d].device, None);
    // The panel's door.held fires the episode early (same alarm, one identity).
    let (t, d) = (next(g), pick(g));
    let held = m.doors[d].held_s * SEC;
    g.doors[d].add(t - 15 * SEC, t + held + 80 * SEC);
    g.push(t, EventType::DoorOpened, m.doors[d].device, None);
    g.push(t + held + SEC, EventType::DoorHeld, m.doors[d].device, None);
    g.push(t + held + 70 * SEC, EventType::DoorClosed, m.doors[d].device, None);
    g.label("door_held_open", t, "door", door_name(d));

    // tailgating: one grant, two people cross. Near miss: two grants, two people.
    for tailgate in [true, false] {
        let (t, d) = (next(g), pick(g));
        g.doors[d].add(t - 15 * SEC, t + 15 * SEC);
        let door = &m.doors[d];
        let c1 = fresh(g, "visitor");
        g.push(t, EventType::AccessGranted, door.reader_in, Some(c1));
        if !tailgate {
            let c2 = fresh(g, "visitor");
            g.push(t + SEC, EventType::AccessGranted, door.reader_in, Some(c2));
        }
        g.push(t + 1_500, EventType::DoorOpened, door.device, None);
        if let Some(cam) = door.line_cam {
            let ts = t + 3 * SEC;
            g.events.push(GenEvent { ts, kind: EventType::LineCrossed, device: cam, card: None, out: false, count: 2 });
            if tailgate {
                g.label("tailgating", ts, "door", door.name.clone());
            }
        }
        g.push(t + 7 * SEC, EventType::DoorClosed, door.device, None);
    }

    // anti_passback: a card enters the lab twice without leaving.
    let t = next(g);
    let c = fresh(g, "passback");
    let (l1, l2) = (hq.lab_doors[0], hq.lab_doors[1]);
    g.push(t, EventType::AccessGranted, m.doors[l1].reader_in, Some(c));
    g.push(t + 90 * SEC, EventType::AccessGranted, m.doors[l2].reader_in, Some(c));
    g.label("anti_passback", t + 90 * SEC, "card", g.cards[c as usize].clone());

    // access_denied_burst: 5 denials of one card in 40 s; near miss: 4 denials of another.
    for (k, alarm) in [(5u64, true), (4, false)] {
        let (t, d) = (next(g), pick(g));
        g.door_denials[d].add(t - 2 * MIN, t + 3 * MIN);
        let c = fresh(g, "denied");
        for i in 0..k {
            g.push(t + i * 10 * SEC, EventType::AccessDenied, m.doors[d].reader_in, Some(c));
        }
        if alarm {
            g.label("access_denied_burst", t + (k - 1) * 10 * SEC, "card", g.cards[c as usize].clone());
        }
    }
    // access_denied_burst_door: 10 cards denied at one door in 45 s; near miss: 9.
    for (k, alarm) in [(10u64, true), (9, false)] {
        let (t, d) = (next(g), pick(g));
        g.door_denials[d].add(t - 2 * MIN, t + 3 * MIN);
        for i in 0..k {
            let c = fresh(g, "stranger");
            g.push(t + i * 5 * SEC, EventType::AccessDenied, m.doors[d].reader_in, Some(c));
        }
        if alarm {
            g.label("access_denied_burst_door", t + (k - 1) * 5 * SEC, "door", door_name(d));
        }
    }

    // impossible_travel: a card at the first site, then at another 5 minutes later; near miss:
    // another card exactly the travel time apart.
    if m.sites.len() > 1 {
        let other = &m.sites[1];
        for (gap, alarm) in [(5 * MIN, true), (m.travel_s * SEC, false)] {
            let t = next(g);
            let c = fresh(g, "clone");
            g.push(t, EventType::AccessGranted, m.doors[hq.main_doors[0]].reader_in, Some(c));
            g.push(t + gap, EventType::AccessGranted, m.doors[other.main_doors[0]].reader_in, Some(c));
            if alarm {
                g.label("impossible_travel", t + gap, "card", g.cards[c as usize].clone());
            }
        }
    }

    // duress at a lab door.
    let t = next(g);
    let c = fresh(g, "duress");
    g.push(t, EventType::Duress, m.doors[hq.lab_doors[0]].reader_in, Some(c));
    g.label("duress", t, "door", door_name(hq.lab_doors[0]));

    // intrusion_confirmed: glass break in the lab, lab camera sees motion 3 s later. Near miss:
    // intrusion in the server room, motion 61 s later, the room otherwise quiet.
    let t = next(g);
    g.push(t, EventType::GlassBreak, hq.gb_lab, None);
    g.push(t + 3 * SEC, EventType::Motion, m.areas[hq.lab].cameras[0], None);
    g.label("intrusion_confirmed", t, "area", m.areas[hq.lab].name.clone());
    let t = next(g);
    for &cam in &m.areas[hq.server].cameras {
        g.cameras_quiet[cam as usize].add(t - 40 * SEC, t + 70 * SEC);
    }
    g.push(t, EventType::Intrusion, hq.pir_server, None);
    g.push(t + 61 * SEC, EventType::Motion, m.areas[hq.server].cameras[0], None);

    // device_offline: a controller silent for 3 intervals + 20 s; near miss: exactly 3 intervals.
    for (i, alarm) in [(0usize, true), (1, false)] {
        let (dev, hb) = hq.controllers[i];
        let hb_ms = hb * SEC;
        let t = next(g);
        // The last beat before the gap is the first scheduled beat at or after `t`.
        let phase = beat_phase(midnight, dev, hb_ms);
        let last = phase + (t.saturating_sub(phase)).div_ceil(hb_ms) * hb_ms;
        let resume = if alarm { last + 3 * hb_ms + 20 * SEC } else { last + 3 * hb_ms };
        // Heartbeats skip (last, resume) and go on at `resume`.
        g.silences[dev as usize].push((last, resume));
        if alarm {
            g.label("device_offline", last, "device", m.devices[dev as usize].0.clone());
        }
    }

    // after_hours_access: into the lab at 21:30 local; near miss: at 18:59:30.
    for (at, alarm) in [(21 * HOUR + 30 * MIN, true), (18 * HOUR + 59 * MIN + 30 * SEC, false)] {
        let t = midnight + at;
        let c = fresh(g, "late");
        let (main, lab) = (hq.main_doors[0], hq.lab_doors[1]);
        g.doors[main].add(t - 75 * SEC, t - 45 * SEC);
        g.doors[lab].add(t - 15 * SEC, t + 15 * SEC);
        g.push(t - 60 * SEC, EventType::AccessGranted, m.doors[main].reader_in, Some(c));
        g.push(t, EventType::AccessGranted, m.doors[lab].reader_in, Some(c));
        if alarm {
            g.label("after_hours_access", t, "card", g.cards[c as usize].clone());
        }
    }
}
