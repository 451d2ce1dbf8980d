//! Embedding vigil in a PSIM, VMS or access-control server.
//!
//! Run it: `cargo run -p vigil-engine --example embed`
//!
//! The host owns the threads that talk to devices; each feeds a `Source`. Alarms arrive on a
//! crossbeam channel as soon as they are final; `finish()` drains and returns statistics.

use std::sync::Arc;
use std::thread;

use vigil_engine::{Engine, PushError};
use vigil_rules::{Lateness, RulePack, Topology};

// --- 1. The site: normally read from the site.toml your integrators maintain. ----------------
const SITE: &str = r#"
[site]
id = "hq"
[[area]]
id = "lobby"
[[area]]
id = "lab"
criticality = 4
[[door]]
id = "d-lab"
from = "lobby"
to = "lab"
cameras = ["cam-7"]
held_open_s = 20
[[camera]]
id = "cam-7"
area = "lobby"
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let site = Arc::new(Topology::from_toml(SITE)?);

    // --- 2. Start the engine: one worker per core you give it, 2 s allowed lateness. --------
    let engine = Engine::builder(site, RulePack::default_pack()).workers(1).lateness(Lateness { ms: 2_000 }).build()?;

    // --- 3. Consume alarms on your own thread (here: print them as JSON). --------------------
    let alarms = engine.alarms().clone();
    let console = thread::spawn(move || {
        for alarm in alarms.iter() {
            println!("ALARM {}", alarm.to_json());
        }
    });

    // --- 4. Feed events: one Source per ordered feed (a panel, a VMS connection). -----------
    // Pushes block while the engine is behind (bounded queue); `try_push_ndjson` returns the
    // bytes instead if your thread must not block.
    let mut panel = engine.source("door-panel");
    let mut vms = engine.source("vms");
    let t = 1_763_798_400_000u64;
    let panel_feed = thread::spawn(move || -> Result<(), PushError> {
        panel.push_ndjson(format!(r#"{{"ts":{t},"type":"door.forced","door":"d-lab"}}"#).into_bytes())?;
        panel.push_ndjson(format!(r#"{{"ts":{},"type":"door.opened","door":"d-lab"}}"#, t + 100).into_bytes())?;
        panel.push_ndjson(format!(r#"{{"ts":{},"type":"door.closed","door":"d-lab"}}"#, t + 45_000).into_bytes())?;
        Ok(())
    });
    vms.push_ndjson(format!(r#"{{"ts":{},"type":"motion","camera":"cam-7"}}"#, t + 1_880).into_bytes())?;
    vms.push_ndjson(format!(r#"{{"ts":{},"type":"motion","camera":"cam-7"}}"#, t + 60_000).into_bytes())?;
    drop(vms); // a source ends when dropped; its queued events are still processed
    panel_feed.join().map_err(|_| "panel thread panicked")??;

    // --- 5. Shut down: the watermark moves to the last ts + 1 ms, pending windows are counted. -
    let stats = engine.finish()?;
    console.join().map_err(|_| "console thread panicked")?;
    println!(
        "{} events, {} rejected, {} late, {} pending, alarms: {:?}, latency {}",
        stats.events,
        stats.rejected_total(),
        stats.late,
        stats.pending,
        stats.alarms,
        stats.latency_all
    );
    Ok(())
}
