//! `vigil check`: validate configuration, exit 1 with every error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use vigil_rules::{RulePack, Topology};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Site topology (site.toml).
    #[arg(long)]
    site: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.site).with_context(|| format!("reading {}", args.site.display()))?;
    match Topology::from_toml(&text) {
        Ok(topo) => {
            println!("{}: ok: {topo}", args.site.display());
            for rule in RulePack::default_pack().rules() {
                println!("rule {}: priority {}, key {}", rule.id, rule.priority, rule.keyspace.name());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{}: {e}", args.site.display());
            }
            eprintln!("{}: {} error(s)", args.site.display(), errors.0.len());
            Ok(ExitCode::from(1))
        }
    }
}
