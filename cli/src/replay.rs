//! `vigil replay`: replay NDJSON or Arrow files at max rate and report.

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use vigil_engine::{Cluster, Engine, Stats};
use vigil_rules::{Lateness, RulePack, Topology};

use crate::feed::{self, Spread};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Event files (NDJSON, or Arrow IPC recognized by its magic bytes).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Site topology; default: `site.toml` beside the first file.
    #[arg(long)]
    site: Option<PathBuf>,
    /// Rule pack (TOML); default: the built-in default pack.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Worker threads in this process.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Allowed lateness per source, ms.
    #[arg(long, default_value_t = 2_000)]
    lateness_ms: u64,
    /// Write alarms as NDJSON to this file (`-` for stdout).
    #[arg(long)]
    alarms: Option<PathBuf>,
    /// Ground-truth labels (NDJSON): report precision and recall per rule.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Longest accepted line, bytes.
    #[arg(long, default_value_t = vigil_engine::decode::DEFAULT_MAX_LINE)]
    max_line_bytes: usize,
    /// Number of processes in a cluster run.
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// This process's index in a cluster run.
    #[arg(long, default_value_t = 0)]
    process: usize,
    /// Cluster host file: one `host:port` per line, in process order (default 127.0.0.1:2101+i).
    #[arg(long)]
    hosts: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let site_path = match &args.site {
        Some(p) => p.clone(),
        None => {
            let dir = args.files[0].parent().unwrap_or(Path::new("."));
            let guess = dir.join("site.toml");
            if !guess.exists() {
                bail!("no --site given and no site.toml beside {}", args.files[0].display());
            }
            guess
        }
    };
    let text = std::fs::read_to_string(&site_path).with_context(|| format!("reading {}", site_path.display()))?;
    let topo = Topology::from_toml(&text).map_err(|e| anyhow::anyhow!("{}:\n{e}", site_path.display()))?;
    let pack = match &args.rules {
        None => RulePack::default_pack(),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            RulePack::from_toml(&text, &topo).map_err(|e| anyhow::anyhow!("{}:\n{e}", p.display()))?
        }
    };
    let topo = Arc::new(topo);
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }

    // Blocks go round-robin to one source per worker, so one source can run ahead of another by
    // at most its queue. Small queues keep that skew to a few blocks of event time; with the
    // default 64 the frontier could lag minutes behind busy doors and overflow per-key caps.
    let mut builder = Engine::builder(topo, pack)
        .queue_batches(4)
        .workers(args.workers)
        .lateness(Lateness { ms: args.lateness_ms })
        .max_line_bytes(args.max_line_bytes);
    if args.processes > 1 {
        if args.process >= args.processes {
            bail!("--process {} is out of range for --processes {}", args.process, args.processes);
        }
        let addresses = match &args.hosts {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                let hosts: Vec<String> =
                    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
                if hosts.len() != args.processes {
                    bail!("{} lists {} hosts, --processes is {}", p.display(), hosts.len(), args.processes);
                }
                hosts
            }
            None => (0..args.processes).map(|i| format!("127.0.0.1:{}", 2101 + i)).collect(),
        };
        builder = builder.cluster(Cluster { process: args.process, addresses });
    }
    let engine = builder.build().context("starting the engine")?;

    // Alarms stream out while the replay runs.
    let alarms = engine.alarms().clone();
    let to_stdout = args.alarms.as_deref() == Some(Path::new("-"));
    let out: Option<Box<dyn Write + Send>> = match &args.alarms {
        None => None,
        Some(p) if p == Path::new("-") => Some(Box::new(std::io::stdout())),
        Some(p) => Some(Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?)),
    };
    let labels = args.labels.as_deref().map(crate::score::read_labels).transpose()?;
    let writer = std::thread::spawn(move || -> std::io::Result<(u64, BTreeSet<crate::score::Identity>)> {
        let mut n = 0;
        let mut seen = BTreeSet::new();
        let mut out = out.map(|w| BufWriter::with_capacity(1 << 16, w));
        for alarm in alarms.iter() {
            n += 1;
            if let Some(w) = out.as_mut() {
                writeln!(w, "{}", alarm.to_json())?;
            }
            seen.insert((alarm.rule.clone(), alarm.ts, alarm.key.clone()));
        }
        if let Some(w) = out.as_mut() {
            w.flush()?;
        }
        Ok((n, seen))
    });

    let spread = Spread { processes: args.processes.max(1), process: args.process };
    let mut input_bytes = 0u64;
    for file in &args.files {
        let mut sources: Vec<_> =
            (0..args.workers).map(|w| engine.source_on(&format!("{}#{w}", file.display()), w)).collect();
        if feed::is_arrow(file).with_context(|| format!("opening {}", file.display()))? {
            feed::arrow(file, &mut sources, &spread)?;
        } else {
            input_bytes += feed::ndjson(file, &mut sources, &spread, args.max_line_bytes)?;
        }
    }
    let stats = engine.finish().context("finishing the replay")?;
    let (written, seen) =
        writer.join().map_err(|_| anyhow::anyhow!("alarm writer panicked"))?.context("writing alarms")?;
    let mut report = summary(&stats, written, input_bytes, args.processes, args.process);
    if let Some(labels) = &labels {
        if args.process == 0 {
            report.push_str(&crate::score::table(&crate::score::score(&seen, labels)));
        }
    }
    if to_stdout {
        eprint!("{report}");
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}

use std::fs::File;

pub fn summary(stats: &Stats, written: u64, bytes: u64, processes: usize, process: usize) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let wall = stats.wall.as_secs_f64();
    if processes > 1 {
        let _ = writeln!(s, "process {process} of {processes} (alarms are emitted by process 0)");
    }
    let _ = writeln!(
        s,
        "events     {:>12}   ({:.0} events/s over {:.3} s, {} worker(s){})",
        stats.events,
        stats.events_per_s(),
        wall,
        stats.workers,
        if bytes > 0 { format!(", {:.1} MB/s", bytes as f64 / wall.max(1e-9) / 1e6) } else { String::new() }
    );
    let _ = writeln!(s, "rejected   {:>12}", stats.rejected_total());
    for (reason, n) in &stats.rejected {
        let _ = writeln!(s, "  {:<24}{n:>12}", reason.name());
    }
    for r in stats.rejection_samples.iter().take(10) {
        let _ = writeln!(s, "    {r}");
    }
    if stats.rejection_samples.len() > 10 {
        let _ = writeln!(s, "    … {} more", stats.rejected_total() - 10);
    }
    let _ = writeln!(s, "late       {:>12}", stats.late);
    let _ = writeln!(s, "pending    {:>12}   (decisions past the end of the input)", stats.pending);
    if stats.dropped > 0 {
        let _ = writeln!(s, "dropped    {:>12}   (partial matches over per-key caps)", stats.dropped);
    }
    let _ = writeln!(s, "alarms     {:>12}", written.max(stats.alarms_total()));
    for (rule, n) in &stats.alarms {
        let lat = stats.latency.get(rule).map(|l| format!("   latency {l}")).unwrap_or_default();
        let _ = writeln!(s, "  {rule:<24}{n:>12}{lat}");
    }
    let l = &stats.latency_all;
    let _ = writeln!(s, "latency    p50 {} µs   p99 {} µs   p99.9 {} µs   max {} µs", l.p50, l.p99, l.p999, l.max);
    s
}
