//! Per-card built-ins: `anti_passback` and `impossible_travel`, sharing one record per known card.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::alarm::{Finality, RawAlarm};
use crate::detect::{Detector, StateError, load_state, save_state};
use crate::event::{Event, EventType, TypeSet};
use crate::filter::Filter;
use crate::keyspace::Key;
use crate::pack::RuleId;
use crate::time::Watermark;
use crate::topology::{SiteIx, Topology};

/// How often (event time) idle cards are swept out.
const SWEEP_EVERY_MS: u64 = 60_000;

/// A timestamp and a 16-bit index packed in one word: 48 bits of ms reach the year 10889, and a
/// topology has far fewer than 65 535 areas or sites. 0 means "nothing".
#[inline]
fn pack(ts: u64, index: u32) -> u64 {
    (ts.min((1 << 48) - 1) << 16) | (index as u64 + 1).min(0xffff)
}

#[inline]
fn unpack(word: u64) -> Option<(u64, u32)> {
    (word != 0).then(|| (word >> 16, (word & 0xffff) as u32 - 1))
}

/// Both per-card built-ins over one map, so a known card costs one entry: key + two words
/// (about 52 B per card at 1 M cards with the hash table's load factor; two maps were 105 B).
///
/// * `anti_passback` (DESIGN §5.2): per card, its current area; a grant at a door touching an
///   anti-passback area is a violation when the current area is known and is not the area the
///   grant leaves. A card with no grant for `forget` becomes unknown.
/// * `impossible_travel`: two consecutive presentations (grant or denial) at doors of different
///   sites less than the `travel` time apart.
///
/// Runs in total order. Cards idle longer than both windows are swept out as the watermark passes.
#[derive(Debug)]
pub struct CardRules {
    topo: Arc<Topology>,
    passback: Option<(RuleId, Filter, u64)>,
    travel: Option<(RuleId, Filter)>,
    /// The longest travel time of the topology (0: none, so travel keeps no state).
    longest_travel_ms: u64,
    /// card → [last grant ts | current area, last presentation ts | its site].
    cards: FxHashMap<Key, [u64; 2]>,
    next_sweep: u64,
}

impl CardRules {
    /// The detector for either or both rules.
    pub fn new(
        topo: &Arc<Topology>,
        passback: Option<(RuleId, Filter, u64)>,
        travel: Option<(RuleId, Filter)>,
    ) -> CardRules {
        let n = topo.site_count() as u32;
        let mut longest_travel_ms = 0;
        for a in 0..n {
            for b in 0..n {
                longest_travel_ms = longest_travel_ms.max(topo.travel_ms(SiteIx(a), SiteIx(b)).unwrap_or(0));
            }
        }
        CardRules {
            topo: topo.clone(),
            passback,
            travel,
            longest_travel_ms,
            cards: FxHashMap::default(),
            next_sweep: 0,
        }
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

    fn alarm(rule: RuleId, key: Key, ev: &Event) -> RawAlarm {
        let finality = Finality::Watermark { point: ev.ts, at_least_ns: ev.ingest_ns };
        RawAlarm { rule, ts: ev.ts, key, trigger: *ev, other: None, excess: 0, finality }
    }
}

impl Detector for CardRules {
    fn save(&self) -> Result<Vec<u8>, StateError> {
        save_state(&(&self.cards, self.next_sweep))
    }
    fn load(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        (self.cards, self.next_sweep) = load_state(bytes)?;
        Ok(())
    }

    fn types(&self) -> TypeSet {
        let mut t = TypeSet::EMPTY;
        if self.passback.is_some() {
            t = t.union(TypeSet::of(&[EventType::AccessGranted]));
        }
        if self.travel.is_some() {
            t = t.union(TypeSet::of(&[EventType::AccessGranted, EventType::AccessDenied]));
        }
        t
    }

    fn needs_order(&self) -> bool {
        true
    }

    fn on_final(&mut self, key: Key, ev: &Event, out: &mut Vec<RawAlarm>) {
        let t = ev.ts.0;
        if let Some((rule, filter, forget)) = &self.passback {
            if ev.kind == EventType::AccessGranted && filter.matches(ev) {
                if let Some(door) = self.topo.door_of(ev.device) {
                    let door = self.topo.door_info(door);
                    let (x, y) = if ev.is_out() { (door.to, door.from) } else { (door.from, door.to) };
                    let enforced =
                        self.topo.area_info(door.from).anti_passback || self.topo.area_info(door.to).anti_passback;
                    let entry = self.cards.entry(key).or_insert([0, 0]);
                    let current =
                        unpack(entry[0]).filter(|(last, _)| t.saturating_sub(*last) < *forget).map(|(_, a)| a);
                    if enforced && current.is_some_and(|a| a != x.0) {
                        out.push(Self::alarm(*rule, key, ev));
                    }
                    entry[0] = pack(t, y.0);
                }
            }
        }
        if let Some((rule, filter)) = &self.travel {
            // No travel entries: no alarm is possible, keep no state.
            if self.longest_travel_ms > 0 && ev.card.is_some() && filter.matches(ev) {
                let site = self.site_of(ev);
                let entry = self.cards.entry(key).or_insert([0, 0]);
                if let Some((prev_t, prev_site)) = unpack(entry[1]) {
                    if prev_site != site.0 {
                        if let Some(min) = self.topo.travel_ms(SiteIx(prev_site), site) {
                            if t.saturating_sub(prev_t) < min {
                                out.push(Self::alarm(*rule, key, ev));
                            }
                        }
                    }
                }
                entry[1] = pack(t, site.0);
            }
        }
    }

    fn advance(&mut self, w: Watermark, _out: &mut Vec<RawAlarm>) {
        if w.0 >= self.next_sweep {
            let forget = self.passback.as_ref().map_or(0, |p| p.2);
            let travel = self.longest_travel_ms;
            // A card whose grant is older than `forget` is unknown anyway, and a presentation older
            // than the longest travel time cannot make an alarm: such entries carry nothing.
            self.cards.retain(|_, [grant, seen]| {
                unpack(*grant).is_some_and(|(t, _)| w.0 < t.saturating_add(forget))
                    || unpack(*seen).is_some_and(|(t, _)| w.0 < t.saturating_add(travel))
            });
            self.next_sweep = w.0 + SWEEP_EVERY_MS;
        }
    }

    fn pending(&self) -> u64 {
        0
    }
}
