//! `vigil check`: validate configuration, exit 1 with every error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use vigil_rules::{RuleDef, RuleKind, RulePack, Topology, Window};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Site topology (site.toml).
    #[arg(long)]
    site: PathBuf,
    /// Rule pack (TOML); default: the built-in default pack.
    #[arg(long)]
    rules: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.site).with_context(|| format!("reading {}", args.site.display()))?;
    let topo = match Topology::from_toml(&text) {
        Ok(topo) => {
            println!("{}: ok: {topo}", args.site.display());
            topo
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{}: {e}", args.site.display());
            }
            eprintln!("{}: {} error(s)", args.site.display(), errors.0.len());
            return Ok(ExitCode::from(1));
        }
    };
    let (label, pack) = match &args.rules {
        None => ("default pack".to_string(), Ok(RulePack::default_pack())),
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            (p.display().to_string(), RulePack::from_toml(&text, &topo))
        }
    };
    match pack {
        Ok(pack) => {
            println!("{label}: ok: {} rules", pack.rules().len());
            for rule in pack.rules() {
                println!("  {}", describe(rule));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{label}: {e}");
            }
            eprintln!("{label}: {} error(s)", errors.0.len());
            Ok(ExitCode::from(1))
        }
    }
}

/// One line per rule: id, kind, key, priority, windows.
fn describe(r: &RuleDef) -> String {
    let s = |ms: u64| format!("{}s", ms as f64 / 1000.0);
    let kind = match &r.kind {
        RuleKind::Match => "match".to_string(),
        RuleKind::Sequence { before_ms, within_ms, .. } => format!("sequence [-{}, +{}]", s(*before_ms), s(*within_ms)),
        RuleKind::Absence { before_ms, within, episode, .. } => {
            let w = match within {
                Window::Fixed(ms) => format!("+{}", s(*ms)),
                Window::HeldOpen => "+held_open_s".into(),
            };
            format!("absence [-{}, {w}]{}", s(*before_ms), if *episode { " episodes" } else { "" })
        }
        RuleKind::Count { threshold, within_ms } => format!("count {threshold} in {}", s(*within_ms)),
        RuleKind::Distinct { field, threshold, within_ms } => {
            format!("distinct {threshold} {field:?} in {}", s(*within_ms)).to_lowercase()
        }
        RuleKind::Tailgating { token_ms } => format!("tailgating (token {})", s(*token_ms)),
        RuleKind::AntiPassback { forget_ms } => format!("anti_passback (forget after {})", s(*forget_ms)),
        RuleKind::ImpossibleTravel => "impossible_travel".into(),
        RuleKind::DeviceOffline { missed } => format!("device_offline ({missed} missed heartbeats)"),
    };
    format!("{:<26} {kind}, group_by {}, priority {}", r.id, r.keyspace.name(), r.priority)
}
