//! Per-rule detector throughput, one core, no dataflow: decoded events routed to the rule's
//! keys, fed in total order (as the rule operator does once the watermark passes them).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vigil_benches::{campus_toml, decoded, ndjson};
use vigil_rules::keyspace::for_each_key;
use vigil_rules::{RawAlarm, RuleId, RulePack, Topology, Watermark};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const N: usize = 500_000;

fn detectors(c: &mut Criterion) {
    let topo = Arc::new(Topology::from_toml(&campus_toml(true)).expect("valid"));
    let mut events = decoded(&topo, &ndjson(N));
    let order: Vec<u32> = topo.device_order().to_vec();
    events.sort_by_key(|e| e.order_key(&order));
    let pack = RulePack::default_pack();
    let mut group = c.benchmark_group("detector");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    for rule in pack.rules() {
        group.bench_function(BenchmarkId::from_parameter(&rule.id), |b| {
            b.iter(|| {
                let rules = vec![(RuleId(0), rule.clone())];
                let mut dets = RulePack::detectors(&topo, &rules);
                let (space, _, det) = &mut dets[0];
                let types = det.types();
                let ordered = det.needs_order();
                let mut out: Vec<RawAlarm> = Vec::new();
                for ev in &events {
                    if !types.contains(ev.kind) {
                        continue;
                    }
                    det.advance(Watermark(ev.ts.0), &mut out);
                    for_each_key(&topo, *space, ev, |k| {
                        if ordered { det.on_final(k, ev, &mut out) } else { det.on_arrival(k, ev, &mut out) }
                    });
                }
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, detectors);
criterion_main!(benches);
