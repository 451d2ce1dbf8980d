//! `vigil demo`: no arguments, no files. Builds the demo site in memory, generates a working day
//! with injected incidents, runs the default pack, streams alarms to the terminal as readable
//! lines, then the summary with precision and recall against the scenario's labels.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use vigil_engine::Engine;
use vigil_replay::{Profile, generate};
use vigil_rules::{Alarm, Band, RulePack, Topology};

pub fn run() -> anyhow::Result<ExitCode> {
    let profile = Profile::named("demo", 1.0).map_err(anyhow::Error::msg)?;
    let scenario = generate(&profile, 1, 2026);
    let topo = Arc::new(Topology::from_toml(&scenario.site_toml).map_err(|e| anyhow::anyhow!("demo site: {e}"))?);
    println!("vigil demo: {topo}");
    println!(
        "replaying a working day: {} events, {} injected incidents (and near misses that must not alarm)\n",
        scenario.events.len(),
        scenario.labels.len()
    );
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 2);
    let engine =
        Engine::builder(topo, RulePack::default_pack()).workers(workers).build().context("starting the engine")?;
    let alarms = engine.alarms().clone();
    let colour = std::io::stdout().is_terminal();
    let printer = std::thread::spawn(move || {
        let mut seen = BTreeSet::new();
        for alarm in alarms.iter() {
            println!("{}", line(&alarm, colour));
            seen.insert((alarm.rule.clone(), alarm.ts, alarm.key.clone()));
        }
        seen
    });
    let mut sources: Vec<_> = (0..workers).map(|w| engine.source_on("demo day", w)).collect();
    for (i, chunk) in scenario.events.chunks(4_096).enumerate() {
        let mut bytes = Vec::with_capacity(chunk.len() * 80);
        for e in chunk {
            bytes.extend_from_slice(scenario.ndjson_line(e).as_bytes());
            bytes.push(b'\n');
        }
        sources[i % workers].push_ndjson(bytes).context("pushing events")?;
    }
    drop(sources);
    let stats = engine.finish().context("finishing")?;
    let seen = printer.join().map_err(|_| anyhow::anyhow!("alarm printer panicked"))?;
    let labels: BTreeSet<_> = scenario.labels.iter().map(|l| (l.rule.to_string(), l.ts, l.key.clone())).collect();
    println!();
    print!("{}", crate::replay::summary(&stats, stats.alarms_total(), 0, 1, 0));
    print!("{}", vigil_harness::score::table(&vigil_harness::score::score(&seen, &labels)));
    Ok(ExitCode::SUCCESS)
}

fn line(a: &Alarm, colour: bool) -> String {
    // Local time of the demo site (UTC+1).
    let secs = a.ts / 1000 + 3600;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let band = format!("{:<8}", a.band.name().to_uppercase());
    let band = if colour {
        let code = match a.band {
            Band::Critical => "1;31",
            Band::High => "31",
            Band::Medium => "33",
            Band::Low => "36",
        };
        format!("\x1b[{code}m{band}\x1b[0m")
    } else {
        band
    };
    let mut where_ = Vec::new();
    for (k, v) in [("door", &a.door), ("card", &a.card), ("area", &a.area), ("device", &a.device)] {
        if let Some(v) = v {
            where_.push(format!("{k} {v}"));
        }
    }
    if let Some(x) = a.excess {
        where_.push(format!("excess {x}"));
    }
    let cams = if a.cameras.is_empty() { String::new() } else { format!("  cameras {}", a.cameras.join(",")) };
    format!(
        "{h:02}:{m:02}:{s:02}  {band} {:>3}  {:<26} {}{cams}  ({} µs)",
        a.priority,
        a.rule,
        where_.join("  "),
        a.latency_us
    )
}
