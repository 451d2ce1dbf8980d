//! Decoding alone, one core: NDJSON lines and Arrow batches into compact events.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_benches::{arrow, ndjson, site};
use vigil_engine::decode::{DEFAULT_MAX_LINE, Decoder};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const N: usize = 200_000;

fn decode(c: &mut Criterion) {
    let topo = site();
    let input = ndjson(N);
    let lines: Vec<&[u8]> = input.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.sample_size(20);
    group.bench_function("ndjson_simd_json", |b| {
        let mut dec = Decoder::new(topo.clone(), DEFAULT_MAX_LINE);
        b.iter(|| {
            let mut n = 0u64;
            for (i, l) in lines.iter().enumerate() {
                if let Ok(Some(d)) = dec.decode_line(l, i as u64, 0) {
                    n += d.event.ts.0 & 1;
                }
            }
            black_box(n)
        })
    });
    let batches = arrow(&input, 65_536);
    group.bench_function("arrow_batches", |b| {
        let mut out = Vec::with_capacity(N);
        b.iter(|| {
            out.clear();
            for batch in &batches {
                vigil_engine::arrow_io::decode_batch(&topo, batch, 1, 0, &mut out, &mut |_, _| {});
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
