//! `vigil`: the one binary. `vigil <demo|replay|serve|gen|check|convert>`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check;
mod config;
mod demo;
mod generate;
mod replay;
mod serve;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// vigil: a streaming correlation engine for physical-security events.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay the built-in sample building and show its alarms (no arguments, no files).
    Demo,
    /// Replay NDJSON or Arrow files through the rules and report throughput, latency and alarms.
    Replay(replay::Args),
    /// Run as a sidecar: events over HTTP/TCP in, alarms over SSE, HTTP and syslog out, journaled.
    Serve(Box<serve::Args>),
    /// Validate a site topology and a rule pack.
    Check(check::Args),
    /// Generate a labelled scenario: site.toml, events (NDJSON or Arrow), labels.ndjson.
    Gen(generate::Args),
    /// Convert NDJSON events to an Arrow IPC replay file.
    Convert(ConvertArgs),
}

#[derive(Debug, clap::Args)]
struct ConvertArgs {
    /// NDJSON input.
    input: std::path::PathBuf,
    /// Arrow IPC output.
    output: std::path::PathBuf,
    /// Rows per record batch.
    #[arg(long, default_value_t = 65_536)]
    batch_rows: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo => demo::run(),
        Command::Replay(args) => replay::run(args),
        Command::Serve(args) => serve::run(*args),
        Command::Check(args) => check::run(args),
        Command::Gen(args) => generate::run(args),
        Command::Convert(args) => convert(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn convert(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let input = std::fs::File::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?;
    let output = std::fs::File::create(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    let done = vigil_engine::arrow_io::ndjson_to_arrow(std::io::BufReader::new(input), output, args.batch_rows.max(1))
        .with_context(|| format!("converting {}", args.input.display()))?;
    eprintln!("wrote {} rows to {}", done.rows, args.output.display());
    if !done.skipped.is_empty() {
        let first: Vec<String> = done.skipped.iter().take(10).map(u64::to_string).collect();
        eprintln!(
            "skipped {} lines without a JSON object with ts and type (lines {}…)",
            done.skipped.len(),
            first.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
