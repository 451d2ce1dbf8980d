//! `vigil demo`: no arguments, no files. Replays the built-in sample building (compiled into the
//! binary) through the default pack, prints each alarm as a readable line, then the summary.
//! (The generated day with injected incidents and precision/recall arrives with `vigil gen`.)

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use vigil_engine::Engine;
use vigil_rules::{Alarm, Band, RulePack, Topology};

const SITE: &str = include_str!("../../replay-data/samples/site.toml");
const EVENTS: &str = include_str!("../../replay-data/samples/events.ndjson");

pub fn run() -> anyhow::Result<ExitCode> {
    let topo = Arc::new(Topology::from_toml(SITE).map_err(|e| anyhow::anyhow!("built-in site: {e}"))?);
    println!("vigil demo: the sample building ({topo})");
    println!("replaying {} lines through the default rules…\n", EVENTS.lines().count());
    let engine = Engine::builder(topo, RulePack::default_pack()).build().context("starting the engine")?;
    let alarms = engine.alarms().clone();
    let mut source = engine.source("built-in sample");
    source.push_ndjson(EVENTS.as_bytes().to_vec()).context("pushing events")?;
    drop(source);
    let stats = engine.finish().context("finishing")?;
    let colour = std::io::stdout().is_terminal();
    for alarm in alarms.try_iter() {
        println!("{}", line(&alarm, colour));
    }
    println!();
    print!("{}", crate::replay::summary(&stats, stats.alarms_total(), 0, 1, 0));
    Ok(ExitCode::SUCCESS)
}

fn line(a: &Alarm, colour: bool) -> String {
    let secs = a.ts / 1000;
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
    let cams = if a.cameras.is_empty() { String::new() } else { format!("  cameras {}", a.cameras.join(",")) };
    format!(
        "{h:02}:{m:02}:{s:02}.{:03} UTC  {band} {:>3}  {:<26} {}{cams}  ({} µs)",
        a.ts % 1000,
        a.priority,
        a.rule,
        where_.join("  "),
        a.latency_us
    )
}
