//! An experiment's report as data: setup, definitions, the article's rows
//! beside the measured values, the full results, plots and heat maps. The
//! same value writes `report.md`, `results.csv` (results only: the same seed
//! gives the same bytes), `timing.csv` (wall times) and an HTML section.

use std::path::{Path, PathBuf};

use crate::error::{Result, io};
use crate::html;
use crate::measure::{DEFINITIONS, Trace};

/// A table of strings with a header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Column names.
    pub header: Vec<String>,
    /// Rows, each as long as the header.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }

    /// Appends a row.
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table as GitHub markdown.
    pub fn markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|");
        let mut s = format!("| {} |\n", self.header.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | "));
        s += &format!("|{}\n", " --- |".repeat(self.header.len()));
        for r in &self.rows {
            s += &format!("| {} |\n", r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | "));
        }
        s
    }

    /// The table as CSV (cells with commas or quotes quoted).
    pub fn csv(&self) -> String {
        let cell = |c: &str| {
            if c.contains([',', '"', '\n']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.to_string()
            }
        };
        let line = |r: &[String]| r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(",") + "\n";
        let mut s = line(&self.header);
        for r in &self.rows {
            s += &line(r);
        }
        s
    }
}

/// A plot written as `<stem>.svg` and `<stem>.png` in the report's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    /// File stem inside the experiment directory.
    pub stem: String,
    /// Caption.
    pub title: String,
}

/// A heat map: rows are time (steps), columns bins of log10 |update|.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    /// Caption.
    pub title: String,
    /// (step, fractions per bin).
    pub rows: Vec<(u64, Vec<f64>)>,
}

/// One experiment's report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The experiment's name (`init`, `lr`, ...).
    pub name: String,
    /// Title.
    pub title: String,
    /// The question asked, in one sentence.
    pub question: String,
    /// Setup, one bullet each (model, data, optimizer, budget, criterion).
    pub setup: Vec<String>,
    /// Seeds run.
    pub seeds: Vec<u64>,
    /// The article's rows beside the measured values.
    pub claims: Table,
    /// All variants with all measured quantities (mean ± spread).
    pub results: Table,
    /// Further tables (title, table).
    pub extra: Vec<(String, Table)>,
    /// One row per (variant, seed): the raw results.
    pub raw: Table,
    /// Wall times per (variant, seed).
    pub timing: Table,
    /// Plots.
    pub plots: Vec<Plot>,
    /// Heat maps of update magnitudes over time.
    pub heatmaps: Vec<Heatmap>,
    /// Extra images (PNG files in the directory, e.g. GAN samples), with captions.
    pub images: Vec<(String, String)>,
    /// What the measurements say, in sentences.
    pub conclusions: Vec<String>,
    /// The directory the files were written to.
    pub dir: PathBuf,
}

impl Report {
    /// `report.md`.
    pub fn markdown(&self) -> String {
        let mut s = format!("# {}\n\n{}\n\n## Setup\n\n", self.title, self.question);
        for b in &self.setup {
            s += &format!("- {b}\n");
        }
        s += &format!(
            "- seeds: {}\n\n## Definitions\n\n{DEFINITIONS}\n",
            self.seeds.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        );
        s += "## The article's figures beside the measurements\n\n";
        s += &self.claims.markdown();
        s += "\n## All results (mean ± spread over seeds)\n\n";
        s += &self.results.markdown();
        for (t, table) in &self.extra {
            s += &format!("\n## {t}\n\n{}", table.markdown());
        }
        s += "\n## What we conclude\n\n";
        for c in &self.conclusions {
            s += &format!("- {c}\n");
        }
        if !self.plots.is_empty() || !self.images.is_empty() {
            s += "\n## Plots\n\n";
            for p in &self.plots {
                s += &format!("![{}]({}.svg)\n\n", p.title, p.stem);
            }
            for (file, caption) in &self.images {
                s += &format!("![{caption}]({file})\n\n");
            }
        }
        s += "\nRaw per-seed results: `results.csv`; wall times: `timing.csv`.\n";
        s
    }

    /// Writes `report.md`, `results.csv` and `timing.csv` into `self.dir`
    /// (plots are drawn by the experiment before).
    pub fn write(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let w = |name: &str, text: String| -> Result<()> {
            let p = self.dir.join(name);
            std::fs::write(&p, text).map_err(io(&p))
        };
        w("report.md", self.markdown())?;
        w("results.csv", self.raw.csv())?;
        w("timing.csv", self.timing.csv())?;
        Ok(())
    }

    /// The report as an HTML section with every plot inlined.
    pub fn html(&self) -> Result<String> {
        html::section(self)
    }
}

/// A line of points.
pub type Series = (String, Vec<(f64, f64)>);

/// The mean over seeds of `f(trace, step)` at each step, for steps every seed reached.
pub fn mean_curve(
    traces: &[Trace],
    f: &dyn Fn(&crate::measure::StepStat) -> f64,
    every: usize,
) -> Vec<(f64, f64)> {
    let n = traces.iter().map(|t| t.steps.len()).min().unwrap_or(0);
    let every = every.max(1);
    (0..n)
        .filter(|i| (i + 1) % every == 0 || *i == 0)
        .map(|i| {
            let v: f64 = traces.iter().map(|t| f(&t.steps[i])).sum::<f64>() / traces.len() as f64;
            ((i + 1) as f64, v)
        })
        .collect()
}

/// Draws `series` as `<dir>/<stem>.svg|png` and returns the plot entry.
pub fn plot(dir: &Path, stem: &str, title: &str, x: &str, series: &[Series], log_y: bool) -> Result<Plot> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    nw_train::report::plot(&dir.join(stem), title, x, series, log_y)?;
    Ok(Plot { stem: stem.into(), title: title.into() })
}

/// The standard overlays of several variants: smoothed loss, weight update and
/// update/weight ratio over steps, validation accuracy over epochs.
pub fn standard_plots(dir: &Path, runs: &[(String, Vec<Trace>)]) -> Result<Vec<Plot>> {
    let longest = runs.iter().flat_map(|(_, t)| t.iter().map(|t| t.steps.len())).max().unwrap_or(1);
    let every = (longest / 300).max(1);
    let curves = |f: &dyn Fn(&crate::measure::StepStat) -> f64| -> Vec<Series> {
        runs.iter().map(|(n, t)| (n.clone(), mean_curve(t, f, every))).collect()
    };
    let mut plots = vec![
        plot(
            dir,
            "loss",
            "Smoothed training loss (mean over seeds)",
            "step",
            &curves(&|s| s.smoothed),
            true,
        )?,
        plot(
            dir,
            "update",
            "Weight update: mean |applied update|",
            "step",
            &curves(&|s| s.mean_abs_update),
            true,
        )?,
        plot(dir, "update_ratio", "Update/weight norm ratio", "step", &curves(&|s| s.update_ratio), true)?,
    ];
    let acc: Vec<Series> = runs
        .iter()
        .map(|(n, t)| {
            let first = &t[0];
            let pts = first
                .epochs
                .iter()
                .enumerate()
                .filter_map(|(i, e)| {
                    let vals: Vec<f64> = t.iter().filter_map(|t| t.epochs.get(i)?.val_accuracy).collect();
                    (vals.len() == t.len() && !vals.is_empty())
                        .then(|| (e.epoch as f64, vals.iter().sum::<f64>() / vals.len() as f64))
                })
                .collect();
            (n.clone(), pts)
        })
        .filter(|(_, p): &Series| !p.is_empty())
        .collect();
    if !acc.is_empty() {
        plots.push(plot(dir, "val_accuracy", "Validation accuracy (mean over seeds)", "epoch", &acc, false)?);
    }
    Ok(plots)
}

/// Per-layer update/weight ratio of the first seed of one variant over steps.
pub fn layer_ratio_plot(dir: &Path, stem: &str, variant: &str, t: &Trace) -> Result<Plot> {
    let every = (t.steps.len() / 300).max(1);
    let series: Vec<Series> = t
        .layers
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let pts = t
                .steps
                .iter()
                .enumerate()
                .filter(|(i, _)| (i + 1) % every == 0)
                .map(|(_, s)| (s.step as f64, s.layer_ratio[j]))
                .collect();
            (name.clone(), pts)
        })
        .collect();
    plot(dir, stem, &format!("Per-layer update/weight ratio: {variant} (seed 0)"), "step", &series, true)
}

/// Heat maps of the first seed of every variant that recorded histograms.
pub fn heatmaps(runs: &[(String, Vec<Trace>)]) -> Vec<Heatmap> {
    runs.iter()
        .filter(|(_, t)| !t[0].histograms.is_empty())
        .map(|(n, t)| Heatmap {
            title: format!("{n}: log10 |update| over steps (seed {})", 0),
            rows: t[0].histograms.clone(),
        })
        .collect()
}
