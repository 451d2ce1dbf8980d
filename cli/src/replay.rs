//! `vigil replay`: replay NDJSON or Arrow files at max rate or open loop, score and report.

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use vigil_engine::{Cluster, Engine, Stats};
use vigil_rules::{Lateness, RulePack, Topology};

use vigil_harness::feed::{self, Spread};

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
    /// `max`, or an offered rate in events/s (open loop: latency from each batch's scheduled send
    /// time; NDJSON input).
    #[arg(long, default_value = "max")]
    rate: String,
    /// Write report.json, latency.svg and throughput.svg here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Run K times and report the spread (the last run writes the alarms and the report).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
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
    let (_, topo) = crate::config::read_site(&site_path)?;
    let (_, pack) = crate::config::read_rules(args.rules.as_deref(), &topo)?;
    let topo = Arc::new(topo);
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    let rate = match args.rate.as_str() {
        "max" => None,
        r => match r.parse::<f64>() {
            Ok(v) if v > 0.0 && v.is_finite() => Some(v),
            _ => bail!("--rate must be `max` or a positive number of events per second, not `{r}`"),
        },
    };
    if rate.is_some() && args.processes > 1 {
        bail!("--rate (open loop) runs in one process");
    }
    let labels = args.labels.as_deref().map(vigil_harness::score::read_labels).transpose()?;
    let repeat = args.repeat.max(1);
    let mut spread_of_runs = Vec::new();
    let mut last = None;
    for r in 0..repeat {
        // Only the last run writes alarms (a repeat measures; the output is the same each time).
        let res = run_once(&args, &topo, &pack, rate, r + 1 == repeat)?;
        spread_of_runs.push((res.stats.events_per_s(), res.stats.latency_all.p99));
        last = Some(res);
    }
    let Some(res) = last else { bail!("no run") };
    let scores = labels.as_ref().filter(|_| args.process == 0).map(|l| vigil_harness::score::score(&res.seen, l));
    let mut report = summary(&res.stats, res.written, res.input_bytes, args.processes, args.process);
    if let Some(p) = &res.pace {
        let b = &p.behind_us;
        report.push_str(&format!(
            "open loop  offered {:.0} events/s, achieved {:.0} events/s; pacer behind schedule p50 {} µs, p99 {} µs, max {} µs\n",
            p.offered_rate,
            p.achieved_rate,
            b.value_at_quantile(0.5),
            b.value_at_quantile(0.99),
            b.max()
        ));
    }
    if let Some(sc) = &scores {
        report.push_str(&vigil_harness::score::table(sc));
    }
    if repeat > 1 {
        let mut rates: Vec<f64> = spread_of_runs.iter().map(|r| r.0).collect();
        rates.sort_by(f64::total_cmp);
        let mut p99: Vec<u64> = spread_of_runs.iter().map(|r| r.1).collect();
        p99.sort_unstable();
        report.push_str(&format!(
            "repeat     {repeat} runs: events/s min {:.0} median {:.0} max {:.0}; latency p99 min {} median {} max {} µs\n",
            rates[0],
            rates[rates.len() / 2],
            rates[rates.len() - 1],
            p99[0],
            p99[p99.len() / 2],
            p99[p99.len() - 1]
        ));
    }
    if let Some(dir) = &args.report {
        let progress = res.pace.as_ref().map_or(res.progress.as_slice(), |p| p.progress.as_slice());
        let run = vigil_harness::report::Run {
            stats: &res.stats,
            scores: scores.as_ref(),
            pace: res.pace.as_ref(),
            progress,
        };
        vigil_harness::report::write(dir, &run, &spread_of_runs).map_err(anyhow::Error::msg)?;
        report.push_str(&format!("report     {}/report.json, latency.svg, throughput.svg\n", dir.display()));
    }
    if args.alarms.as_deref() == Some(Path::new("-")) {
        eprint!("{report}");
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}

struct RunResult {
    stats: Stats,
    seen: BTreeSet<vigil_harness::score::Identity>,
    written: u64,
    input_bytes: u64,
    pace: Option<vigil_harness::pace::PaceReport>,
    progress: Vec<(f64, u64)>,
}

/// Sends paced batches round-robin to one source per worker, stamped with their schedule.
struct EngineSink {
    sources: Vec<vigil_engine::Source>,
    clock: vigil_engine::IngestClock,
    next: usize,
}

impl vigil_harness::pace::PacedSink for EngineSink {
    fn push(&mut self, bytes: Vec<u8>, first_line: u64, scheduled_ns: u64) -> Result<(), String> {
        let n = self.sources.len();
        self.next = (self.next + 1) % n;
        self.sources[self.next].push_ndjson_stamped(bytes, first_line, scheduled_ns).map_err(|e| e.to_string())
    }
    fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }
}

fn run_once(
    args: &Args,
    topo: &Arc<Topology>,
    pack: &RulePack,
    rate: Option<f64>,
    write_alarms: bool,
) -> anyhow::Result<RunResult> {
    // Blocks go round-robin to one source per worker, so one source can run ahead of another by
    // at most its queue. Small queues keep that skew to a few blocks of event time; with the
    // default 64 the frontier could lag minutes behind busy doors and overflow per-key caps.
    let mut builder = Engine::builder(topo.clone(), pack.clone())
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
    let out: Option<Box<dyn Write + Send>> = match &args.alarms {
        _ if !write_alarms => None,
        None => None,
        Some(p) if p == Path::new("-") => Some(Box::new(std::io::stdout())),
        Some(p) => Some(Box::new(File::create(p).with_context(|| format!("creating {}", p.display()))?)),
    };
    let writer = std::thread::spawn(move || -> std::io::Result<(u64, BTreeSet<vigil_harness::score::Identity>)> {
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
    let mut progress = feed::Progress::new();
    let mut pace = None;
    for file in &args.files {
        let mut sources: Vec<_> =
            (0..args.workers).map(|w| engine.source_on(&format!("{}#{w}", file.display()), w)).collect();
        let arrow = feed::is_arrow(file).with_context(|| format!("opening {}", file.display()))?;
        match (rate, arrow) {
            (Some(_), true) => bail!("--rate (open loop) replays NDJSON; {} is Arrow", file.display()),
            (Some(r), false) => {
                // Open loop: the file is read into memory first, so reading never paces the run.
                let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
                input_bytes += bytes.len() as u64;
                let mut sink = EngineSink { sources, clock: engine.clock(), next: 0 };
                let report =
                    vigil_harness::pace::open_loop(r, &mut vigil_harness::pace::BufferLines::new(&bytes), &mut sink)
                        .map_err(anyhow::Error::msg)?;
                pace = Some(report);
            }
            (None, true) => {
                feed::arrow(file, &mut sources, &spread, &mut progress)?;
            }
            (None, false) => {
                input_bytes += feed::ndjson(file, &mut sources, &spread, args.max_line_bytes, &mut progress)?;
            }
        }
    }
    progress.finish();
    let stats = engine.finish().context("finishing the replay")?;
    let (written, seen) =
        writer.join().map_err(|_| anyhow::anyhow!("alarm writer panicked"))?.context("writing alarms")?;
    Ok(RunResult { stats, seen, written, input_bytes, pace, progress: progress.samples })
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
