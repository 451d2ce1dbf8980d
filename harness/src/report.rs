//! `report.json` (the fields of DESIGN §10, and a few more) and SVG charts.

use std::collections::BTreeMap;
use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde_json::{Value, json};
use vigil_engine::Stats;

use crate::pace::PaceReport;
use crate::score::RuleScore;

fn latency(h: Option<&Histogram<u64>>) -> Value {
    match h {
        Some(h) if !h.is_empty() => json!({
            "p50": h.value_at_quantile(0.50), "p99": h.value_at_quantile(0.99),
            "p999": h.value_at_quantile(0.999), "max": h.max()
        }),
        _ => json!({"p50": 0, "p99": 0, "p999": 0, "max": 0}),
    }
}

/// One run's results.
#[derive(Debug)]
pub struct Run<'a> {
    /// Engine statistics.
    pub stats: &'a Stats,
    /// Scores per rule, when labels were given.
    pub scores: Option<&'a BTreeMap<String, RuleScore>>,
    /// The pacer's report, for open-loop runs.
    pub pace: Option<&'a PaceReport>,
    /// (seconds, events sent so far) during the run.
    pub progress: &'a [(f64, u64)],
}

/// The report as JSON. `repeats` holds the events/s and p99 of every run when `--repeat` > 1.
pub fn to_json(run: &Run<'_>, repeats: &[(f64, u64)]) -> Value {
    let s = run.stats;
    let mut all = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| unreachable!());
    for h in s.histograms.values() {
        let _ = all.add(h);
    }
    let mut rules = serde_json::Map::new();
    let mut names: Vec<&String> = s.alarms.keys().collect();
    if let Some(sc) = run.scores {
        names.extend(sc.keys());
    }
    names.sort();
    names.dedup();
    for name in names {
        let sc = run.scores.and_then(|m| m.get(name));
        let mut r = json!({
            "alarms": s.alarms.get(name).copied().unwrap_or(0),
            "latency_us": latency(s.histograms.get(name)),
        });
        if let Some(sc) = sc {
            r["expected"] = json!(sc.expected);
            r["true_positives"] = json!(sc.true_positives);
            r["precision"] = json!(sc.precision());
            r["recall"] = json!(sc.recall());
        }
        rules.insert(name.clone(), r);
    }
    let mut out = json!({
        "events": s.events,
        "rejected": s.rejected_total(),
        "rejected_by_reason": s.rejected.iter().map(|(r, n)| (r.name().to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "late": s.late,
        "pending": s.pending,
        "dropped": s.dropped,
        "alarms": s.alarms_total(),
        "workers": s.workers,
        "wall_s": s.wall.as_secs_f64(),
        "events_per_s": s.events_per_s(),
        "offered_rate": run.pace.map(|p| p.offered_rate),
        "latency_us": latency(Some(&all)),
        "rules": rules,
    });
    if let Some(p) = run.pace {
        out["achieved_rate"] = json!(p.achieved_rate);
        out["pacer_behind_us"] = latency(Some(&p.behind_us));
    }
    if repeats.len() > 1 {
        let mut rates: Vec<f64> = repeats.iter().map(|r| r.0).collect();
        rates.sort_by(f64::total_cmp);
        let mut p99: Vec<u64> = repeats.iter().map(|r| r.1).collect();
        p99.sort_unstable();
        out["repeat"] = json!({
            "runs": repeats.len(),
            "events_per_s": {"min": rates[0], "median": rates[rates.len() / 2], "max": rates[rates.len() - 1]},
            "latency_p99_us": {"min": p99[0], "median": p99[p99.len() / 2], "max": p99[p99.len() - 1]},
        });
    }
    out
}

/// Writes `report.json`, `latency.svg` and `throughput.svg` into `dir`.
pub fn write(dir: &Path, run: &Run<'_>, repeats: &[(f64, u64)]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(&to_json(run, repeats)).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("report.json"), json + "\n").map_err(|e| format!("report.json: {e}"))?;
    latency_chart(&dir.join("latency.svg"), run.stats).map_err(|e| format!("latency.svg: {e}"))?;
    throughput_chart(&dir.join("throughput.svg"), run.progress).map_err(|e| format!("throughput.svg: {e}"))?;
    Ok(())
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Latency by percentile, one line per rule with alarms (x: percentile, y: µs).
fn latency_chart(path: &Path, stats: &Stats) -> DrawResult {
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let ymax = stats.histograms.values().map(|h| h.max()).max().unwrap_or(1).max(1) as f64 * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption("alarm latency by percentile (µs)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..100f64, 0f64..ymax)?;
    chart.configure_mesh().x_desc("percentile").y_desc("latency µs").draw()?;
    for (i, (rule, h)) in stats.histograms.iter().enumerate() {
        let colour = Palette99::pick(i).mix(0.9);
        let points: Vec<(f64, f64)> =
            (0..=1000).map(|k| k as f64 / 10.0).map(|p| (p, h.value_at_quantile(p / 100.0) as f64)).collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(rule.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
    root.present()?;
    Ok(())
}

/// Events per second over the run, from the progress samples.
fn throughput_chart(path: &Path, progress: &[(f64, u64)]) -> DrawResult {
    let root = SVGBackend::new(path, (960, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let rates: Vec<(f64, f64)> = progress
        .windows(2)
        .filter(|w| w[1].0 > w[0].0)
        .map(|w| (w[1].0, (w[1].1 - w[0].1) as f64 / (w[1].0 - w[0].0)))
        .collect();
    let xmax = progress.last().map_or(1.0, |p| p.0).max(1e-3);
    let ymax = rates.iter().map(|r| r.1).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption("events per second", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax)?;
    chart.configure_mesh().x_desc("seconds").y_desc("events/s").draw()?;
    chart.draw_series(LineSeries::new(rates, BLUE.stroke_width(2)))?;
    root.present()?;
    Ok(())
}
