//! `vigil serve`: the sidecar (see the vigil-sidecar crate and the README "Run as a sidecar").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use vigil_sidecar::seglog::Fsync;
use vigil_sidecar::{Config, NetConfig, ServeOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FsyncArg {
    /// fsync after every append: an acknowledged event survives power loss.
    Always,
    /// fsync at most every 100 ms: survives a crash of the process, not of the machine.
    Interval,
    /// leave it to the operating system.
    Never,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Site topology (site.toml).
    #[arg(long)]
    site: PathBuf,
    /// Rule pack (TOML); the built-in default pack when absent. A checkpoint's pack wins.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// HTTP address (port 0: any free port; the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Raw TCP NDJSON ingest address.
    #[arg(long)]
    tcp: Option<SocketAddr>,
    /// Data directory: ingest log, alarm journal, checkpoint, dead letters.
    #[arg(long, default_value = "vigil-data")]
    data_dir: PathBuf,
    /// Bearer token every endpoint but /healthz requires.
    #[arg(long, env = "VIGIL_TOKEN")]
    token: Option<String>,
    /// Allow a non-loopback address without a token.
    #[arg(long)]
    insecure: bool,
    /// CEF over syslog: udp://HOST:PORT or tcp://HOST:PORT.
    #[arg(long)]
    syslog: Option<String>,
    /// Engine worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Allowed lateness (ms).
    #[arg(long, default_value_t = 2_000)]
    lateness_ms: u64,
    /// Event time only: the watermark never advances with the wall clock (replaying recordings).
    #[arg(long)]
    no_live: bool,
    /// Live mode: idle time after which the watermark follows the wall clock (ms).
    #[arg(long, default_value_t = 1_000)]
    idle_ms: u64,
    /// fsync policy of the ingest log and the journal.
    #[arg(long, value_enum, default_value = "always")]
    fsync: FsyncArg,
    /// Seconds between checkpoints.
    #[arg(long, default_value_t = 30)]
    checkpoint_s: u64,
    /// Largest request body (bytes); larger bodies get 413.
    #[arg(long, default_value_t = 16 << 20)]
    max_body_bytes: usize,
    /// Longest event line (bytes).
    #[arg(long, default_value_t = 1 << 20)]
    max_line_bytes: usize,
    /// Batches queued in front of the engine before ingest answers 503.
    #[arg(long, default_value_t = 64)]
    queue_batches: usize,
    /// Journal and ingest-log segment size (bytes) before rotation.
    #[arg(long, default_value_t = 64 << 20)]
    segment_bytes: u64,
    /// Journal retention: at each checkpoint, delete the oldest journal segments while the journal
    /// is larger than this many bytes (never alarms the checkpoint does not cover). Default: keep
    /// every alarm.
    #[arg(long)]
    journal_keep_bytes: Option<u64>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (site_text, topo) = crate::config::read_site(&args.site)?;
    let (rules_text, _) = crate::config::read_rules(args.rules.as_deref(), &topo)?;
    let topo = Arc::new(topo);
    let fsync = match args.fsync {
        FsyncArg::Always => Fsync::Always,
        FsyncArg::Interval => Fsync::Interval(Duration::from_millis(100)),
        FsyncArg::Never => Fsync::Never,
    };
    let opts = ServeOptions {
        core: Config {
            topo,
            site_text,
            rules_text,
            data_dir: args.data_dir,
            workers: args.workers.max(1),
            lateness_ms: args.lateness_ms,
            live_idle: (!args.no_live).then(|| Duration::from_millis(args.idle_ms)),
            fsync,
            checkpoint_every: Duration::from_secs(args.checkpoint_s.max(1)),
            max_line: args.max_line_bytes,
            queue_batches: args.queue_batches.max(2),
            syslog: args.syslog,
            segment_bytes: args.segment_bytes.max(4_096),
            journal_keep_bytes: args.journal_keep_bytes,
        },
        net: NetConfig {
            token: args.token.filter(|t| !t.is_empty()),
            max_body: args.max_body_bytes,
            max_line: args.max_line_bytes,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
        },
        listen: args.listen,
        tcp: args.tcp,
        insecure: args.insecure,
    };
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    vigil_sidecar::run(opts)?;
    Ok(ExitCode::SUCCESS)
}
