//! What a run leaves on disk besides the model: `metrics.csv`, the weight
//! monitor's `monitor.jsonl`, and plots (loss and accuracy curves, per-layer
//! weight and update norms) as SVG and PNG.
//!
//! Plots label their axes with a system sans-serif font when one is found
//! (DejaVu Sans, Liberation Sans, Noto Sans under `/usr/share/fonts`); without
//! one they are drawn without text rather than not at all.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::error::{Result, TrainError};
use crate::monitor::TensorStats;
use crate::runlog::{self, RunLog};
use crate::trainer::EpochRecord;

fn io(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Io { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) }
}

/// Writes one CSV line per epoch: `epoch,step,lr,train_loss,train_acc,val_loss,val_acc`.
/// Only results: the same seed gives the same bytes, also across a resume
/// (wall times go to [`write_timing_csv`]). A run streams the same lines
/// ([`crate::runlog`]).
pub fn write_metrics_csv(path: &Path, history: &[EpochRecord]) -> Result<()> {
    let mut s = String::from(RunLog::METRICS_HEADER);
    for r in history {
        s += &runlog::metrics_line(r);
    }
    Ok(crate::checkpoint::write_atomic(path, s.as_bytes())?)
}

/// Writes the wall time of each epoch: `epoch,seconds`.
pub fn write_timing_csv(path: &Path, history: &[EpochRecord]) -> Result<()> {
    let mut s = String::from(RunLog::TIMING_HEADER);
    for r in history {
        s += &runlog::timing_line(r);
    }
    Ok(crate::checkpoint::write_atomic(path, s.as_bytes())?)
}

/// Reads a `metrics.csv` back as epoch records (validation metrics hold
/// only the loss and accuracy; wall times are 0).
pub fn read_metrics_csv(path: &Path) -> Result<Vec<EpochRecord>> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| TrainError::Io { path: path.to_path_buf(), source })?;
    let bad =
        |line: usize, what: &str| TrainError::Mismatch(format!("{}: line {line}: {what}", path.display()));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 7 {
            return Err(bad(i + 1, &format!("{} fields, expected 7", f.len())));
        }
        let num = |k: usize| -> Result<Option<f64>> {
            if f[k].is_empty() {
                Ok(None)
            } else {
                f[k].parse().map(Some).map_err(|_| bad(i + 1, &format!("field {} is not a number", k + 1)))
            }
        };
        let int = |k: usize| -> Result<u64> {
            f[k].parse().map_err(|_| bad(i + 1, &format!("field {} is not an integer", k + 1)))
        };
        let val_loss = num(5)?;
        out.push(EpochRecord {
            epoch: int(0)?,
            step: int(1)?,
            lr: num(2)?.unwrap_or(f64::NAN),
            train_loss: num(3)?.unwrap_or(f64::NAN),
            train_accuracy: num(4)?,
            validation: val_loss
                .map(|loss| -> Result<crate::metrics::Metrics> {
                    Ok(crate::metrics::Metrics {
                        loss,
                        accuracy: num(6)?,
                        per_class_accuracy: None,
                        confusion: None,
                        examples: 0,
                    })
                })
                .transpose()?,
            seconds: 0.0,
        });
    }
    Ok(out)
}

/// Writes the monitor's records as JSON lines.
pub fn write_monitor_jsonl(path: &Path, records: &[TensorStats]) -> Result<()> {
    let mut s = String::new();
    for r in records {
        s += &serde_json::to_string(r).map_err(|e| io(path, e))?;
        s.push('\n');
    }
    Ok(crate::checkpoint::write_atomic(path, s.as_bytes())?)
}

/// Registers a system font for plot text once; whether one was found.
fn font_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        const CANDIDATES: [&str; 4] = [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
        ];
        for c in CANDIDATES {
            if let Ok(bytes) = std::fs::read(c) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// One named line of `(x, y)` points.
pub type Series = (String, Vec<(f64, f64)>);

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    series: &[Series],
    log_y: bool,
    text: bool,
) -> std::result::Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let pts =
        series.iter().flat_map(|(_, p)| p.iter()).filter(|(_, y)| y.is_finite() && (!log_y || *y > 0.0));
    let (mut x0, mut x1, mut y0, mut y1) =
        (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        return Ok(());
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + y0.abs().max(1e-12);
    }
    let mut builder = ChartBuilder::on(&root);
    builder.margin(12);
    if text {
        builder.caption(title, ("sans-serif", 20)).x_label_area_size(36).y_label_area_size(60);
    }
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            if text {
                chart
                    .configure_mesh()
                    .x_desc(x_label)
                    .y_label_formatter(&|v: &f64| axis_number(*v))
                    .draw()
                    .map_err(|e| e.to_string())?;
            } else {
                chart.configure_mesh().disable_x_mesh().disable_y_mesh().draw().map_err(|e| e.to_string())?;
            }
            for (i, (name, p)) in series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let ok: Vec<(f64, f64)> =
                    p.iter().copied().filter(|(_, y)| y.is_finite() && (!log_y || *y > 0.0)).collect();
                let s = chart
                    .draw_series(LineSeries::new(ok, color.stroke_width(2)))
                    .map_err(|e| e.to_string())?;
                if text {
                    s.label(name.as_str())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
                }
            }
            if text {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| e.to_string())?;
            }
        }};
    }
    if log_y {
        finish!(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale()).map_err(|e| e.to_string())?);
    } else {
        let pad = (y1 - y0) * 0.05;
        finish!(builder.build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad)).map_err(|e| e.to_string())?);
    }
    root.present().map_err(|e| e.to_string())
}

/// A short axis label: plain for moderate magnitudes, scientific otherwise.
fn axis_number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || (1e-2..1e4).contains(&a) {
        format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.0e}")
    }
}

/// Draws `series` into `<stem>.svg` and `<stem>.png`.
pub fn plot(stem: &Path, title: &str, x_label: &str, series: &[Series], log_y: bool) -> Result<()> {
    let text = font_available();
    let svg = stem.with_extension("svg");
    let png = stem.with_extension("png");
    // Each file is drawn into a temporary sibling and renamed into place.
    crate::checkpoint::replace_atomic(&svg, |tmp| {
        draw(SVGBackend::new(tmp, (800, 500)).into_drawing_area(), title, x_label, series, log_y, text)
            .map_err(|e| e.to_string())
    })?;
    crate::checkpoint::replace_atomic(&png, |tmp| {
        draw(BitMapBackend::new(tmp, (800, 500)).into_drawing_area(), title, x_label, series, log_y, text)
            .map_err(|e| e.to_string())
    })?;
    Ok(())
}

/// Norm curves of one tensor: (step, weight norm) and (step, update norm).
type TensorCurves = (String, Vec<(f64, f64)>, Vec<(f64, f64)>);

/// The standard plots of a run in `dir`: `loss`, `accuracy` (classification),
/// `weight_norms` and `update_norms` (per parameter tensor, from the monitor).
pub fn plot_run(dir: &Path, history: &[EpochRecord], monitor: &[TensorStats]) -> Result<()> {
    let mut curves: Vec<TensorCurves> = Vec::new();
    for r in monitor {
        add_point(&mut curves, &r.name, r.step, r.weight_norm, r.update_norm);
    }
    plot_history(dir, history)?;
    plot_tensors(dir, &curves)
}

/// [`plot_run`] from the files a run wrote into `dir` (`metrics.csv`,
/// `monitor.jsonl`), read line by line: the records are not held in memory.
pub fn plot_run_files(dir: &Path) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Point {
        name: String,
        step: u64,
        weight_norm: f64,
        update_norm: f64,
    }
    let history = read_metrics_csv(&dir.join(crate::session::files::METRICS))?;
    plot_history(dir, &history)?;
    drop(history);
    let path = dir.join(crate::session::files::MONITOR);
    let mut curves: Vec<TensorCurves> = Vec::new();
    match std::fs::File::open(&path) {
        Ok(f) => {
            use std::io::BufRead;
            for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
                let line = line.map_err(|source| TrainError::Io { path: path.clone(), source })?;
                if line.trim().is_empty() {
                    continue;
                }
                let p: Point = serde_json::from_str(&line)
                    .map_err(|e| TrainError::Mismatch(format!("{}: line {}: {e}", path.display(), i + 1)))?;
                add_point(&mut curves, &p.name, p.step, p.weight_norm, p.update_norm);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(TrainError::Io { path, source }),
    }
    plot_tensors(dir, &curves)
}

fn add_point(curves: &mut Vec<TensorCurves>, name: &str, step: u64, weight: f64, update: f64) {
    let i = match curves.iter().position(|c| c.0 == name) {
        Some(i) => i,
        None => {
            curves.push((name.to_string(), Vec::new(), Vec::new()));
            curves.len() - 1
        }
    };
    curves[i].1.push((step as f64, weight));
    curves[i].2.push((step as f64, update));
}

fn plot_history(dir: &Path, history: &[EpochRecord]) -> Result<()> {
    let ep = |f: &dyn Fn(&EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        history.iter().filter_map(|r| f(r).map(|v| (r.epoch as f64, v))).collect()
    };
    let mut loss = vec![("train loss".to_string(), ep(&|r| Some(r.train_loss)))];
    let val_loss = ep(&|r| r.validation.as_ref().map(|m| m.loss));
    if !val_loss.is_empty() {
        loss.push(("validation loss".into(), val_loss));
    }
    plot(&dir.join("loss"), "Loss", "epoch", &loss, true)?;
    let acc = [
        ("train accuracy".to_string(), ep(&|r| r.train_accuracy)),
        ("validation accuracy".to_string(), ep(&|r| r.validation.as_ref().and_then(|m| m.accuracy))),
    ];
    let acc: Vec<Series> = acc.into_iter().filter(|(_, p)| !p.is_empty()).collect();
    if !acc.is_empty() {
        plot(&dir.join("accuracy"), "Accuracy", "epoch", &acc, false)?;
    }
    Ok(())
}

fn plot_tensors(dir: &Path, curves: &[TensorCurves]) -> Result<()> {
    if curves.is_empty() {
        return Ok(());
    }
    let weights: Vec<Series> = curves.iter().map(|c| (c.0.clone(), c.1.clone())).collect();
    plot(&dir.join("weight_norms"), "Weight norm per tensor", "step", &weights, true)?;
    drop(weights);
    let updates: Vec<Series> = curves.iter().map(|c| (c.0.clone(), c.2.clone())).collect();
    plot(&dir.join("update_norms"), "Update norm per tensor", "step", &updates, true)
}
