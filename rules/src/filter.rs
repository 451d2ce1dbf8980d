//! Event filters: type and topology attributes (`where = { ... }` in a rule pack).

use std::sync::Arc;

use crate::event::{Event, EventType, TypeSet};
use crate::topology::{AreaIx, DeviceKind, DoorIx, SiteIx, Topology};

/// The area an event concerns: a sensor's or camera's area; for access events the area the
/// card moves into (`in`: the door's `to`, `out`: its `from`); for other door events the door's
/// `to` area.
pub fn event_area(topo: &Topology, ev: &Event) -> Option<AreaIx> {
    let dev = topo.device_info(ev.device);
    match dev.kind {
        DeviceKind::Door | DeviceKind::Reader => dev.door.map(|d| {
            let door = topo.door_info(d);
            if ev.kind.is_access() && ev.is_out() { door.from } else { door.to }
        }),
        DeviceKind::Camera | DeviceKind::Sensor(_) => dev.area,
        DeviceKind::Other => None,
    }
}

/// The criticality an event carries: its door's, else its area's, else 3.
pub fn event_criticality(topo: &Topology, ev: &Event) -> u8 {
    if let Some(d) = topo.door_of(ev.device) {
        return topo.door_info(d).criticality;
    }
    event_area(topo, ev).map_or(3, |a| topo.area_info(a).criticality)
}

/// A compiled filter. All conditions must hold.
#[derive(Debug, Clone)]
pub struct Filter {
    topo: Arc<Topology>,
    /// Event types.
    pub types: TypeSet,
    doors: Option<Vec<bool>>,
    areas: Option<Vec<bool>>,
    sites: Option<Vec<bool>>,
    min_criticality: u8,
    outside_schedule: bool,
    direction_out: Option<bool>,
}

/// The attribute part of a filter, as written in a pack (validated ids).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Where {
    /// Only events at these doors.
    pub doors: Vec<DoorIx>,
    /// Only events in these areas (see [`event_area`]).
    pub areas: Vec<AreaIx>,
    /// Only events at devices of these sites.
    pub sites: Vec<SiteIx>,
    /// Only events whose criticality is at least this.
    pub min_criticality: u8,
    /// Only access events into an area with a schedule, at a local time outside it.
    pub outside_schedule: bool,
    /// Only events with this direction (`true` = out).
    pub direction_out: Option<bool>,
}

impl Filter {
    /// Compiles a filter over `types` and `w`.
    pub fn new(topo: &Arc<Topology>, types: TypeSet, w: &Where) -> Filter {
        let mask = |n: usize, items: &[u32]| -> Option<Vec<bool>> {
            (!items.is_empty()).then(|| {
                let mut v = vec![false; n];
                for &i in items {
                    if let Some(x) = v.get_mut(i as usize) {
                        *x = true;
                    }
                }
                v
            })
        };
        Filter {
            topo: topo.clone(),
            types,
            doors: mask(topo.door_count(), &w.doors.iter().map(|d| d.0).collect::<Vec<_>>()),
            areas: mask(topo.area_count(), &w.areas.iter().map(|a| a.0).collect::<Vec<_>>()),
            sites: mask(topo.site_count(), &w.sites.iter().map(|s| s.0).collect::<Vec<_>>()),
            min_criticality: w.min_criticality,
            outside_schedule: w.outside_schedule,
            direction_out: w.direction_out,
        }
    }

    /// A filter on types only.
    pub fn types(topo: &Arc<Topology>, types: TypeSet) -> Filter {
        Filter::new(topo, types, &Where::default())
    }

    /// Whether `ev` passes.
    #[inline]
    pub fn matches(&self, ev: &Event) -> bool {
        if !self.types.contains(ev.kind) {
            return false;
        }
        let topo = &*self.topo;
        if let Some(doors) = &self.doors {
            match topo.door_of(ev.device) {
                Some(d) if doors[d.index()] => {}
                _ => return false,
            }
        }
        if let Some(areas) = &self.areas {
            match event_area(topo, ev) {
                Some(a) if areas[a.index()] => {}
                _ => return false,
            }
        }
        if let Some(sites) = &self.sites {
            if !sites[topo.device_info(ev.device).site.index()] {
                return false;
            }
        }
        if self.min_criticality > 0 && event_criticality(topo, ev) < self.min_criticality {
            return false;
        }
        if let Some(out) = self.direction_out {
            if ev.is_out() != out {
                return false;
            }
        }
        if self.outside_schedule && !is_outside_schedule(topo, ev) {
            return false;
        }
        true
    }
}

/// An access event into an area with a schedule, at a local time outside it.
pub fn is_outside_schedule(topo: &Topology, ev: &Event) -> bool {
    if !ev.kind.is_access() {
        return false;
    }
    let Some(area) = event_area(topo, ev) else { return false };
    let Some(schedule) = &topo.area_info(area).schedule else { return false };
    // Local time of the door's site (a reader normally shares its door's site).
    let site_ix = topo
        .door_of(ev.device)
        .map_or(topo.device_info(ev.device).site, |d| topo.device_info(topo.door_info(d).device).site);
    let site = topo.site_info(site_ix);
    let local = ev.ts.0 as i64 + site.utc_offset_min as i64 * 60_000;
    !schedule.contains(local)
}

/// Every event type.
pub const ALL_TYPES: TypeSet = TypeSet::of(&EventType::ALL);
