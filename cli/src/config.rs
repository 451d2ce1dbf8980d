//! Reading the site and the rule pack, shared by the commands that run the engine.

use std::path::Path;

use anyhow::Context;
use vigil_rules::{RulePack, Topology};

/// The site file's text and its validated topology; errors name the file and every problem.
pub fn read_site(path: &Path) -> anyhow::Result<(String, Topology)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let topo = Topology::from_toml(&text).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
    Ok((text, topo))
}

/// The rule pack at `path` (its text, validated against `topo`), or the default pack.
pub fn read_rules(path: Option<&Path>, topo: &Topology) -> anyhow::Result<(Option<String>, RulePack)> {
    let Some(path) = path else { return Ok((None, RulePack::default_pack())) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let pack = RulePack::from_toml(&text, topo).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
    Ok((Some(text), pack))
}
