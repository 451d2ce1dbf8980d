//! Per-card built-ins: `anti_passback` and `impossible_travel`. Both run in total order over a
//! card's presentations and keep a few bytes per known card in an Fx hash map; a card idle longer
//! than its longest window is evicted as the watermark passes (its state could not matter again).

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::alarm::{Finality, RawAlarm};
use crate::detect::Detector;
use crate::event::{Event, EventType, TypeSet};
use crate::filter::Filter;
use crate::keyspace::Key;
use crate::pack::RuleId;
use crate::time::Watermark;
use crate::topology::{SiteIx, Topology};

/// How often (event time) idle cards are swept out.
const SWEEP_EVERY_MS: u64 = 60_000;

const UNKNOWN_AREA: u32 = u32::MAX;

/// `anti_passback`, see DESIGN §5.2.
#[derive(Debug)]
pub struct AntiPassback {
    rule: RuleId,
    filter: Filter,
    forget_ms: u64,
    topo: Arc<Topology>,
    /// card → (last grant ts, current area or UNKNOWN_AREA).
    cards: FxHashMap<Key, (u64, u32)>,
    next_sweep: u64,
}

impl AntiPassback {
    /// The detector for `rule`.
    pub fn new(topo: &Arc<Topology>, rule: RuleId, filter: Filter, forget_ms: u64) -> AntiPassback {
        AntiPassback { rule, filter, forget_ms, topo: topo.clone(), cards: FxHashMap::default(), next_sweep: 0 }
    }

    /// Cards currently held in memory.
    pub fn known_cards(&self) -> usize {
        self.cards.len()
    }
}

impl Detector for AntiPassback {
    fn types(&self) -> TypeSet {
        TypeSet::of(&[EventType::AccessGranted])
    }

    fn needs_order(&self) -> bool {
        true
    }

    fn on_final(&mut self, key: Key, ev: &Event, out: &mut Vec<RawAlarm>) {
        if !self.filter.matches(ev) {
            return;
        }
        let Some(door) = self.topo.door_of(ev.device) else { return };
        let door = self.topo.door_info(door);
        let (x, y) = if ev.is_out() { (door.to, door.from) } else { (door.from, door.to) };
        let enforced = self.topo.area_info(door.from).anti_passback || self.topo.area_info(door.to).anti_passback;
        let t = ev.ts.0;
        let entry = self.cards.entry(key).or_insert((t, UNKNOWN_AREA));
        if t.saturating_sub(entry.0) >= self.forget_ms {
            entry.1 = UNKNOWN_AREA;
        }
        if enforced && entry.1 != UNKNOWN_AREA && entry.1 != x.0 {
            let finality = Finality::Watermark { point: ev.ts, at_least_ns: ev.ingest_ns };
            out.push(RawAlarm { rule: self.rule, ts: ev.ts, key, trigger: *ev, other: None, excess: 0, finality });
        }
        *entry = (t, y.0);
    }

    fn advance(&mut self, w: Watermark, _out: &mut Vec<RawAlarm>) {
        if w.0 >= self.next_sweep {
            let forget = self.forget_ms;
            // Idle ≥ forget: the card is unknown anyway, so the entry carries nothing.
            self.cards.retain(|_, (last, _)| w.0 < last.saturating_add(forget));
            self.next_sweep = w.0 + SWEEP_EVERY_MS;
        }
    }

    fn pending(&self) -> u64 {
        0
    }
}

/// `impossible_travel`, see DESIGN §5.2.
#[derive(Debug)]
pub struct ImpossibleTravel {
    rule: RuleId,
    filter: Filter,
    topo: Arc<Topology>,
    /// The longest travel time of the topology: cards idle longer are evicted.
    longest_ms: u64,
    /// card → (last presentation ts, its site).
    cards: FxHashMap<Key, (u64, SiteIx)>,
    next_sweep: u64,
}

impl ImpossibleTravel {
    /// The detector for `rule`.
    pub fn new(topo: &Arc<Topology>, rule: RuleId, filter: Filter) -> ImpossibleTravel {
        let n = topo.site_count() as u32;
        let mut longest_ms = 0;
        for a in 0..n {
            for b in 0..n {
                longest_ms = longest_ms.max(topo.travel_ms(SiteIx(a), SiteIx(b)).unwrap_or(0));
            }
        }
        ImpossibleTravel { rule, filter, topo: topo.clone(), longest_ms, cards: FxHashMap::default(), next_sweep: 0 }
    }

    /// Cards currently held in memory.
    pub fn known_cards(&self) -> usize {
        self.cards.len()
    }

    fn site_of(&self, ev: &Event) -> SiteIx {
        let topo = &*self.topo;
        topo.door_of(ev.device)
            .map_or(topo.device_info(ev.device).site, |d| topo.device_info(topo.door_info(d).device).site)
    }
}

impl Detector for ImpossibleTravel {
    fn types(&self) -> TypeSet {
        TypeSet::of(&[EventType::AccessGranted, EventType::AccessDenied])
    }

    fn needs_order(&self) -> bool {
        true
    }

    fn on_final(&mut self, key: Key, ev: &Event, out: &mut Vec<RawAlarm>) {
        // No travel entries: no alarm is possible, keep no state.
        if self.longest_ms == 0 || !ev.card.is_some() || !self.filter.matches(ev) {
            return;
        }
        let site = self.site_of(ev);
        let t = ev.ts.0;
        if let Some(&(prev_t, prev_site)) = self.cards.get(&key) {
            if prev_site != site {
                if let Some(min) = self.topo.travel_ms(prev_site, site) {
                    if t - prev_t < min {
                        let finality = Finality::Watermark { point: ev.ts, at_least_ns: ev.ingest_ns };
                        out.push(RawAlarm {
                            rule: self.rule,
                            ts: ev.ts,
                            key,
                            trigger: *ev,
                            other: None,
                            excess: 0,
                            finality,
                        });
                    }
                }
            }
        }
        self.cards.insert(key, (t, site));
    }

    fn advance(&mut self, w: Watermark, _out: &mut Vec<RawAlarm>) {
        if w.0 >= self.next_sweep {
            let longest = self.longest_ms;
            self.cards.retain(|_, (last, _)| w.0 < last.saturating_add(longest));
            self.next_sweep = w.0 + SWEEP_EVERY_MS;
        }
    }

    fn pending(&self) -> u64 {
        0
    }
}
