//! `vigil gen`: a site, events and ground-truth labels.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use vigil_replay::{Profile, generate};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Canonical NDJSON (`events.ndjson`).
    Ndjson,
    /// Arrow IPC file (`events.arrow`).
    Arrow,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Site profile: `demo` (one building and an annex) or `campus` (three sites).
    #[arg(long = "site-profile", default_value = "demo")]
    profile: String,
    /// At least this many events: whole working days are generated until it is reached.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Random seed (same seed, same bytes).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory (created).
    #[arg(long)]
    out: PathBuf,
    /// Event file format.
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    format: Format,
    /// Scale of the profile (1.0 = nominal: demo ~40 doors / 500 people, campus ~2 000 doors / 50 000).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let profile = Profile::named(&args.profile, args.scale).map_err(anyhow::Error::msg)?;
    let s = generate(&profile, args.events, args.seed);
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let path = |name: &str| args.out.join(name);
    std::fs::write(path("site.toml"), &s.site_toml).context("writing site.toml")?;
    let events_path = match args.format {
        Format::Ndjson => {
            let p = path("events.ndjson");
            let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&p).context("creating events.ndjson")?);
            for e in &s.events {
                writeln!(w, "{}", s.ndjson_line(e))?;
            }
            w.flush()?;
            p
        }
        Format::Arrow => {
            let p = path("events.arrow");
            let file = std::fs::File::create(&p).context("creating events.arrow")?;
            let mut w = vigil_engine::arrow_io::IpcFileWriter::new(file, 65_536)?;
            for e in &s.events {
                let (cols, count) = s.columns(e);
                w.push(e.ts as i64, e.kind.name(), cols, count)?;
            }
            w.finish()?;
            p
        }
    };
    let mut labels = BufWriter::new(std::fs::File::create(path("labels.ndjson")).context("creating labels.ndjson")?);
    for l in &s.labels {
        writeln!(labels, "{}", l.to_json())?;
    }
    labels.flush()?;
    let mut per_rule = std::collections::BTreeMap::<&str, usize>::new();
    for l in &s.labels {
        *per_rule.entry(l.rule).or_default() += 1;
    }
    println!(
        "{}: {} events, {} labels, {} devices, {} cards in {:.2} s",
        events_path.display(),
        s.events.len(),
        s.labels.len(),
        s.devices.len(),
        s.cards.len(),
        started.elapsed().as_secs_f64()
    );
    for (rule, n) in per_rule {
        println!("  {rule:<26}{n:>6}");
    }
    Ok(ExitCode::SUCCESS)
}
