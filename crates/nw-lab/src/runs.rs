//! `nw report RUN_DIR...`: reads the directories `nw train` wrote
//! (`metrics.csv`, `monitor.jsonl`, `config.toml`) and writes one
//! self-contained `index.html` overlaying them: loss and accuracy per epoch,
//! the per-layer update/weight ratio over steps, and a heat map per run of
//! log10 update/weight ratio (rows: recorded steps, columns: tensors).

use std::path::{Path, PathBuf};

use nw_train::TensorStats;
use nw_train::session::files;

use crate::error::{LabError, Result, io};
use crate::html;
use crate::report::{Series, Table, plot};

/// One epoch line of `metrics.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochLine {
    /// Epoch.
    pub epoch: f64,
    /// Steps so far.
    pub step: f64,
    /// Learning rate.
    pub lr: f64,
    /// Training loss.
    pub train_loss: f64,
    /// Training accuracy (NaN when absent).
    pub train_acc: f64,
    /// Validation loss (NaN when absent).
    pub val_loss: f64,
    /// Validation accuracy (NaN when absent).
    pub val_acc: f64,
}

/// A run directory, read.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDir {
    /// The directory.
    pub dir: PathBuf,
    /// A short label (the directory's name).
    pub label: String,
    /// Per-epoch metrics.
    pub epochs: Vec<EpochLine>,
    /// The monitor's records (empty when the file is absent).
    pub monitor: Vec<TensorStats>,
    /// The configuration text, when present.
    pub config: Option<String>,
}

/// Reads a run directory; a missing or malformed `metrics.csv` is an error
/// naming the file and line.
pub fn read_run(dir: &Path) -> Result<RunDir> {
    let m = dir.join(files::METRICS);
    let text = std::fs::read_to_string(&m).map_err(io(&m))?;
    let mut epochs = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 7 {
            return Err(LabError::Config(format!(
                "{}: line {}: expected 7 fields, got {}",
                m.display(),
                i + 1,
                f.len()
            )));
        }
        let p = |s: &str| -> Result<f64> {
            if s.is_empty() {
                return Ok(f64::NAN);
            }
            s.parse().map_err(|_| {
                LabError::Config(format!("{}: line {}: {s:?} is not a number", m.display(), i + 1))
            })
        };
        epochs.push(EpochLine {
            epoch: p(f[0])?,
            step: p(f[1])?,
            lr: p(f[2])?,
            train_loss: p(f[3])?,
            train_acc: p(f[4])?,
            val_loss: p(f[5])?,
            val_acc: p(f[6])?,
        });
    }
    let mon = dir.join(files::MONITOR);
    let mut monitor = Vec::new();
    if let Ok(text) = std::fs::read_to_string(&mon) {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            monitor.push(
                serde_json::from_str(line)
                    .map_err(|e| LabError::Config(format!("{}: line {}: {e}", mon.display(), i + 1)))?,
            );
        }
    }
    let config = std::fs::read_to_string(dir.join(files::CONFIG)).ok();
    let label =
        dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok(RunDir { dir: dir.to_path_buf(), label, epochs, monitor, config })
}

fn tensors(r: &RunDir) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for s in &r.monitor {
        if !names.contains(&s.name) {
            names.push(s.name.clone());
        }
    }
    names
}

/// Writes `<out>/index.html` (and its plots' SVG/PNG files) comparing `dirs`.
pub fn report(dirs: &[PathBuf], out: &Path) -> Result<PathBuf> {
    if dirs.is_empty() {
        return Err(LabError::Config("nw report needs at least one run directory".into()));
    }
    let runs: Vec<RunDir> = dirs.iter().map(|d| read_run(d)).collect::<Result<_>>()?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let per_epoch = |f: &dyn Fn(&EpochLine) -> f64| -> Vec<Series> {
        runs.iter()
            .map(|r| {
                (
                    r.label.clone(),
                    r.epochs.iter().map(|e| (e.epoch, f(e))).filter(|p| p.1.is_finite()).collect(),
                )
            })
            .filter(|(_, p): &Series| !p.is_empty())
            .collect()
    };
    let mut plots = Vec::new();
    for (stem, title, f, log) in [
        ("train_loss", "Training loss", (&|e: &EpochLine| e.train_loss) as &dyn Fn(&EpochLine) -> f64, true),
        ("val_loss", "Validation loss", &|e: &EpochLine| e.val_loss, true),
        ("train_accuracy", "Training accuracy", &|e: &EpochLine| e.train_acc, false),
        ("val_accuracy", "Validation accuracy", &|e: &EpochLine| e.val_acc, false),
        ("lr", "Learning rate", &|e: &EpochLine| e.lr, true),
    ] {
        let s = per_epoch(f);
        if !s.is_empty() {
            plots.push(plot(out, stem, title, "epoch", &s, log)?);
        }
    }
    let mut ratio: Vec<Series> = Vec::new();
    let mut heat = Vec::new();
    for r in &runs {
        let names = tensors(r);
        for n in &names {
            let pts: Vec<(f64, f64)> =
                r.monitor.iter().filter(|s| &s.name == n).map(|s| (s.step as f64, s.update_ratio)).collect();
            ratio.push((format!("{}: {n}", r.label), pts));
        }
        let mut steps: Vec<u64> = r.monitor.iter().map(|s| s.step).collect();
        steps.dedup();
        if !names.is_empty() {
            heat.push(ratio_heatmap(r, &names, &steps));
        }
    }
    if !ratio.is_empty() {
        plots.push(plot(
            out,
            "update_ratio",
            "Per-layer update/weight ratio (monitor)",
            "step",
            &ratio,
            true,
        )?);
    }
    let mut summary = Table::new(&[
        "run",
        "epochs",
        "steps",
        "final train loss",
        "final val loss",
        "final val accuracy",
        "monitor records",
    ]);
    for r in &runs {
        let last = r.epochs.last();
        let f =
            |v: Option<f64>| v.filter(|v| v.is_finite()).map(crate::stats::num).unwrap_or_else(|| "-".into());
        summary.push(vec![
            r.label.clone(),
            r.epochs.len().to_string(),
            f(last.map(|e| e.step)),
            f(last.map(|e| e.train_loss)),
            f(last.map(|e| e.val_loss)),
            f(last.map(|e| e.val_acc)),
            r.monitor.len().to_string(),
        ]);
    }
    let mut body = String::from("<section id=\"runs\"><h2>Runs</h2>");
    body += &html::table(&summary);
    body += "<div class=\"plots\">";
    for p in &plots {
        body += &html::inline_svg(&out.join(format!("{}.svg", p.stem)))?;
    }
    body += &heat.join("");
    body += "</div>";
    for r in &runs {
        if let Some(c) = &r.config {
            body += &format!("<h3>{}: config.toml</h3><pre>{}</pre>", html::esc(&r.label), html::esc(c));
        }
    }
    body += "</section>";
    let intro = vec![format!(
        "{} run(s): {}.",
        runs.len(),
        runs.iter().map(|r| format!("`{}`", r.dir.display())).collect::<Vec<_>>().join(", ")
    )];
    let page = html::page("nw report", &intro, &[("runs".into(), "runs".into(), body)]);
    let path = out.join("index.html");
    std::fs::write(&path, page).map_err(io(&path))?;
    Ok(path)
}

/// A heat map of log10 update/weight ratio: rows = recorded steps, columns = tensors.
fn ratio_heatmap(r: &RunDir, names: &[String], steps: &[u64]) -> String {
    let (lo, hi) = (-7.0f64, 0.0f64);
    let cw = (420.0 / names.len().max(1) as f64).clamp(12.0, 60.0);
    let ch = (300.0 / steps.len().max(1) as f64).clamp(2.0, 14.0);
    let (left, top) = (70.0, 30.0);
    let w = left + cw * names.len() as f64 + 20.0;
    let h = top + ch * steps.len() as f64 + 50.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\"><rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
<text x=\"{left}\" y=\"18\" font-family=\"sans-serif\" font-size=\"13\">{}: log10 update/weight per tensor ({lo} white .. {hi} dark)</text>",
        html::esc(&r.label)
    );
    for (i, st) in steps.iter().enumerate() {
        let y = top + ch * i as f64;
        if i % (steps.len() / 8).max(1) == 0 {
            s += &format!(
                "<text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"10\" text-anchor=\"end\">{st}</text>",
                left - 4.0,
                y + ch
            );
        }
        for (j, n) in names.iter().enumerate() {
            let v =
                r.monitor.iter().find(|x| x.step == *st && &x.name == n).map_or(f64::NAN, |x| x.update_ratio);
            let t = if v > 0.0 { ((v.log10() - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.0 };
            let c = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
            s += &format!(
                "<rect x=\"{}\" y=\"{y}\" width=\"{cw}\" height=\"{ch}\" fill=\"rgb({},{},{})\"/>",
                left + cw * j as f64,
                c(255.0, 103.0),
                c(255.0, 0.0),
                c(255.0, 13.0)
            );
        }
    }
    let yb = top + ch * steps.len() as f64 + 12.0;
    for (j, n) in names.iter().enumerate() {
        s += &format!(
            "<text x=\"{}\" y=\"{yb}\" font-family=\"sans-serif\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
            left + cw * (j as f64 + 0.5),
            html::esc(n)
        );
    }
    s += "</svg>";
    format!("<figure class=\"plot heat\">{s}</figure>")
}
