//! Synthetic inputs for vigil's benchmarks: a campus-like site and a deterministic event mix.
//!
//! The mix (per 1 000 events): 300 grants, 150 openings, 150 closings, 200 motions, 100 line
//! crossings, 5 forced doors, 95 heartbeats, over 400 doors, 800 readers, 300 cameras and
//! 50 000 cards, 0–3 ms apart.

use std::fmt::Write as _;
use std::sync::Arc;

use vigil_engine::decode::{DEFAULT_MAX_LINE, Decoder};
use vigil_rules::{Event, Topology};

/// The benchmark site as TOML.
pub fn site_toml() -> String {
    campus_toml(false)
}

/// The benchmark campus; with `far_site`, a second site one hour of travel away (so
/// `impossible_travel` has state to keep) and every element naming its site.
pub fn campus_toml(far_site: bool) -> String {
    let mut s = if far_site {
        String::from(
            "[[site]]\nid = \"campus\"\n[[site]]\nid = \"far\"\n[[travel]]\nbetween = [\"campus\", \"far\"]\nmin_s = 3600\n",
        )
    } else {
        String::from("[site]\nid = \"campus\"\n")
    };
    let site = if far_site { "site = \"campus\"\n" } else { "" };
    let _ = write!(s, "[[area]]\nid = \"outside\"\n{site}");
    for a in 0..40 {
        let _ = write!(s, "[[area]]\nid = \"a{a}\"\n{site}criticality = {}\n", 1 + a % 5);
    }
    for d in 0..400 {
        let mut cams = Vec::new();
        if d % 5 != 0 {
            cams.push(format!("\"cam{}\"", (d * 3) % 300));
        }
        if d % 7 == 0 {
            cams.push(format!("\"cam{}\"", (d * 3 + 1) % 300));
        }
        let _ = write!(
            s,
            "[[door]]\nid = \"d{d}\"\n{site}from = \"outside\"\nto = \"a{}\"\ncameras = [{}]\n",
            d % 40,
            cams.join(",")
        );
        let _ = write!(
            s,
            "[[reader]]\nid = \"r{d}i\"\n{site}door = \"d{d}\"\n[[reader]]\nid = \"r{d}o\"\n{site}door = \"d{d}\"\ndirection = \"out\"\n"
        );
    }
    for c in 0..300 {
        let _ = write!(s, "[[camera]]\nid = \"cam{c}\"\n{site}area = \"a{}\"\n", c % 40);
    }
    for k in 0..50 {
        let _ = write!(s, "[[device]]\nid = \"ctl{k}\"\n{site}");
    }
    if far_site {
        s.push_str("[[area]]\nid = \"far-yard\"\nsite = \"far\"\n[[area]]\nid = \"far-hall\"\nsite = \"far\"\n");
        s.push_str("[[door]]\nid = \"far-door\"\nsite = \"far\"\nfrom = \"far-yard\"\nto = \"far-hall\"\n");
        s.push_str("[[reader]]\nid = \"far-in\"\nsite = \"far\"\ndoor = \"far-door\"\n");
    }
    s
}

/// The site, parsed.
pub fn site() -> Arc<Topology> {
    Arc::new(Topology::from_toml(&site_toml()).expect("benchmark site is valid"))
}

/// `n` events as NDJSON lines (with newlines), in time order.
pub fn ndjson(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut t = 1_763_971_200_000u64;
    let mut out = String::with_capacity(n * 70);
    for _ in 0..n {
        let r = next();
        t += r % 4;
        let d = (r >> 8) % 400;
        let _ = match (r >> 20) % 1000 {
            0..300 => writeln!(
                out,
                r#"{{"ts":{t},"type":"access.granted","reader":"r{d}i","card":"card-{}"}}"#,
                (r >> 32) % 50_000
            ),
            300..450 => writeln!(out, r#"{{"ts":{t},"type":"door.opened","door":"d{d}"}}"#),
            450..600 => writeln!(out, r#"{{"ts":{t},"type":"door.closed","door":"d{d}"}}"#),
            600..800 => writeln!(out, r#"{{"ts":{t},"type":"motion","camera":"cam{}"}}"#, (r >> 32) % 300),
            800..900 => writeln!(
                out,
                r#"{{"ts":{t},"type":"line.crossed","camera":"cam{}","direction":"in","count":1}}"#,
                (r >> 32) % 300
            ),
            900..905 => writeln!(out, r#"{{"ts":{t},"type":"door.forced","door":"d{d}"}}"#),
            _ => writeln!(out, r#"{{"ts":{t},"type":"heartbeat","device":"ctl{}"}}"#, (r >> 32) % 50),
        };
    }
    out.into_bytes()
}

/// The same events decoded (what an embedding host with its own parser would push).
pub fn decoded(topo: &Arc<Topology>, ndjson: &[u8]) -> Vec<Event> {
    let mut dec = Decoder::new(topo.clone(), DEFAULT_MAX_LINE);
    ndjson
        .split(|&b| b == b'\n')
        .enumerate()
        .filter_map(|(i, l)| dec.decode_line(l, i as u64 + 1, 0).ok().flatten().map(|d| d.event))
        .collect()
}

/// The same events as Arrow record batches of `rows` rows.
pub fn arrow(ndjson: &[u8], rows: usize) -> Vec<vigil_engine::arrow_array::RecordBatch> {
    let mut file = Vec::new();
    vigil_engine::arrow_io::ndjson_to_arrow(ndjson, &mut file, rows).expect("convert");
    let reader = arrow_ipc_reader(file);
    reader.collect::<Result<Vec<_>, _>>().expect("read back")
}

fn arrow_ipc_reader(file: Vec<u8>) -> impl Iterator<Item = Result<vigil_engine::arrow_array::RecordBatch, String>> {
    let path = std::env::temp_dir().join(format!("vigil-bench-{}.arrow", std::process::id()));
    std::fs::write(&path, file).expect("write temp arrow file");
    let reader = vigil_engine::arrow_io::read_ipc_file(&path).expect("open temp arrow file");
    let batches: Vec<_> = reader.map(|b| b.map_err(|e| e.to_string())).collect();
    std::fs::remove_file(&path).ok();
    batches.into_iter()
}
