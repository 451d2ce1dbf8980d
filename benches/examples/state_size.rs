//! Bytes of rule state per known card and per door, measured with a counting allocator.
//!
//! `cargo run --release -p vigil-benches --example state_size [CARDS]`
//!
//! Drives the default pack's detectors directly (no dataflow) with one grant per card at a door
//! of the benchmark campus, then with ordinary door traffic, and reports heap bytes per card and
//! per door. Also reports the engine's per-card bookkeeping outside the rules (the card-name
//! directory of the alarm sink and each decoder's set of announced cards).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use vigil_rules::event::FLAG_OUT;
use vigil_rules::{
    CardKey, Detector, DeviceIx, Event, EventTime, EventType, Keyspace, RawAlarm, RuleId, RulePack, Topology, Watermark,
};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts bytes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn main() {
    let cards: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let text = vigil_benches::campus_toml(true);
    let topo = Arc::new(Topology::from_toml(&text).expect("valid site"));
    let pack = RulePack::default_pack();
    let rules: Vec<_> = pack.rules().iter().enumerate().map(|(i, r)| (RuleId(i as u16), r.clone())).collect();
    let all = RulePack::detectors(&topo, &rules);

    // Card keyspace.
    let mut card_dets: Vec<_> = all.into_iter().filter(|(s, ..)| *s == Keyspace::Card).map(|(_, _, d)| d).collect();
    let reader = topo.device("r7i").expect("reader");
    let mut out: Vec<RawAlarm> = Vec::new();
    let t0 = 1_763_971_200_000u64;
    let before = live();
    for c in 0..cards {
        let ev = Event {
            ts: EventTime(t0 + c),
            card: CardKey::of(&format!("card-{c}")),
            ingest_ns: 0,
            device: reader,
            kind: EventType::AccessGranted,
            flags: 0,
            count: 1,
        };
        for d in card_dets.iter_mut() {
            d.advance(Watermark(ev.ts.0), &mut out);
            if d.types().contains(ev.kind) {
                d.on_final(ev.card.0, &ev, &mut out);
            }
        }
    }
    let per_card = (live() - before) as f64 / cards as f64;

    // Door keyspace: all door detectors over 400 doors with a day-like mix per door.
    let rules: Vec<_> = pack.rules().iter().enumerate().map(|(i, r)| (RuleId(i as u16), r.clone())).collect();
    let before_doors = live();
    let all = RulePack::detectors(&topo, &rules);
    let mut door_dets: Vec<_> = all.into_iter().filter(|(s, ..)| *s == Keyspace::Door).collect();
    let built = live() - before_doors;
    let doors = topo.door_count() as u64;
    door_traffic(&topo, &mut door_dets, &mut out);
    let per_door = (live() - before_doors) as f64 / doors as f64;
    drop(door_dets);

    // The same traffic, one door rule at a time.
    let mut breakdown = Vec::new();
    for (id, rule) in pack.rules().iter().enumerate().filter(|(_, r)| r.keyspace == Keyspace::Door) {
        let before_rule = live();
        let mut dets = RulePack::detectors(&topo, &[(RuleId(id as u16), rule.clone())]);
        door_traffic(&topo, &mut dets, &mut out);
        breakdown.push(format!("{} {:.0} B", rule.id, (live() - before_rule) as f64 / doors as f64));
        drop(dets);
    }

    // Engine bookkeeping per card outside the rules (same shapes as the engine's).
    let before_names = live();
    let mut directory: HashMap<u64, Box<str>> = HashMap::new();
    let mut announced: HashSet<u64, vigil_engine::decode::BuildNoHash> =
        HashSet::with_hasher(vigil_engine::decode::BuildNoHash);
    for c in 0..cards {
        let name = format!("card-{c}");
        announced.insert(CardKey::of(&name).0);
        directory.insert(CardKey::of(&name).0, name.into_boxed_str());
    }
    let per_card_names = (live() - before_names) as f64 / cards as f64;

    println!("cards: {cards}, doors: {doors} ({} alarms raised while feeding)", out.len());
    println!("rule state per known card: {per_card:.1} B (anti_passback + impossible_travel, one grant per card)");
    println!(
        "rule state per door:       {per_door:.1} B ({:.1} B allocated up front; after 200 rounds of 6 events per door every 10 s)",
        built as f64 / doors as f64
    );
    println!("  by rule, each alone: {}", breakdown.join(", "));
    println!(
        "engine bookkeeping per card outside the rules: {per_card_names:.1} B (card-name directory at the sink + one decoder's announced set; 11-byte ids)"
    );
    std::hint::black_box((card_dets, directory, announced, DeviceIx(0)));
}

/// Feeds `detectors` 200 rounds of door traffic: each door sees a grant, an opening, a crossing,
/// a motion, a closing and a denial every 10 s (400 doors: one door every 25 ms).
fn door_traffic(
    topo: &Topology,
    detectors: &mut [(Keyspace, Vec<RuleId>, Box<dyn Detector>)],
    out: &mut Vec<RawAlarm>,
) {
    let mut t = 1_763_971_200_000u64;
    for round in 0..200u64 {
        for d in 0..topo.door_count() as u64 {
            t += 25;
            let door = topo.door_info(vigil_rules::DoorIx(d as u32)).device;
            let cam = topo.door_info(vigil_rules::DoorIx(d as u32)).cameras.first().copied().unwrap_or(door);
            for (kind, device, flags) in [
                (EventType::AccessGranted, topo.device(&format!("r{d}i")).unwrap_or(door), 0u8),
                (EventType::DoorOpened, door, 0),
                (EventType::LineCrossed, cam, 0),
                (EventType::Motion, cam, 0),
                (EventType::DoorClosed, door, 0),
                (EventType::AccessDenied, topo.device(&format!("r{d}o")).unwrap_or(door), FLAG_OUT),
            ] {
                let card = CardKey::of(&format!("c{}", round % 50));
                let ev = Event { ts: EventTime(t), card, ingest_ns: 0, device, kind, flags, count: 1 };
                for (_, _, det) in detectors.iter_mut() {
                    det.advance(Watermark(t), out);
                    if det.types().contains(kind) {
                        det.on_arrival(d, &ev, out);
                        det.on_final(d, &ev, out);
                    }
                }
            }
        }
    }
}
