//! End to end through the engine: input → decode → rules → alarms, 1 and 2 workers.
//!
//! Each iteration starts an engine, pushes every event through one source per worker, and waits
//! for `finish()` (all alarms emitted). Inputs are prepared outside the measurement.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vigil_benches::{arrow, decoded, ndjson, site};
use vigil_engine::Engine;
use vigil_rules::{RulePack, Topology};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const N: usize = 1_000_000;

fn engine(topo: &Arc<Topology>, workers: usize) -> Engine {
    Engine::builder(topo.clone(), RulePack::default_pack()).workers(workers).build().expect("engine")
}

fn pipeline(c: &mut Criterion) {
    let topo = site();
    let input = ndjson(N);
    // NDJSON chunks of ~64 KiB of whole lines, as `vigil replay` pushes them.
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut start = 0;
    while start < input.len() {
        let end = (start + 65_536).min(input.len());
        let end = input[end..].iter().position(|&b| b == b'\n').map_or(input.len(), |i| end + i + 1);
        chunks.push(input[start..end].to_vec());
        start = end;
    }
    let events = decoded(&topo, &input);
    let event_chunks: Vec<Vec<_>> = events.chunks(4_096).map(<[_]>::to_vec).collect();
    let batches = arrow(&input, 16_384);

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    for workers in [1, 2] {
        group.bench_with_input(BenchmarkId::new("ndjson_to_alarms", workers), &workers, |b, &w| {
            b.iter(|| {
                let e = engine(&topo, w);
                let mut sources: Vec<_> = (0..w).map(|i| e.source_on("bench", i)).collect();
                for (i, c) in chunks.iter().enumerate() {
                    sources[i % w].push_ndjson(c.clone()).expect("push");
                }
                drop(sources);
                black_box(e.finish().expect("finish").alarms_total())
            })
        });
        group.bench_with_input(BenchmarkId::new("decoded_to_alarms", workers), &workers, |b, &w| {
            b.iter(|| {
                let e = engine(&topo, w);
                let mut sources: Vec<_> = (0..w).map(|i| e.source_on("bench", i)).collect();
                for (i, c) in event_chunks.iter().enumerate() {
                    sources[i % w].push_events(c.clone()).expect("push");
                }
                drop(sources);
                black_box(e.finish().expect("finish").alarms_total())
            })
        });
        group.bench_with_input(BenchmarkId::new("arrow_to_alarms", workers), &workers, |b, &w| {
            b.iter(|| {
                let e = engine(&topo, w);
                let mut sources: Vec<_> = (0..w).map(|i| e.source_on("bench", i)).collect();
                for (i, batch) in batches.iter().enumerate() {
                    sources[i % w].push_arrow(batch.clone()).expect("push");
                }
                drop(sources);
                black_box(e.finish().expect("finish").alarms_total())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
