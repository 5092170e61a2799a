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
use crate::trainer::EpochRecord;

fn io(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Io { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) }
}

/// Writes one CSV line per epoch: `epoch,step,lr,train_loss,train_acc,val_loss,val_acc`.
/// Only results: the same seed gives the same bytes, also across a resume
/// (wall times go to [`write_timing_csv`]).
pub fn write_metrics_csv(path: &Path, history: &[EpochRecord]) -> Result<()> {
    let mut s = String::from("epoch,step,lr,train_loss,train_acc,val_loss,val_acc\n");
    let opt = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
    for r in history {
        s += &format!(
            "{},{},{},{},{},{},{}\n",
            r.epoch,
            r.step,
            r.lr,
            r.train_loss,
            opt(r.train_accuracy),
            opt(r.validation.as_ref().map(|m| m.loss)),
            opt(r.validation.as_ref().and_then(|m| m.accuracy)),
        );
    }
    Ok(crate::checkpoint::write_atomic(path, s.as_bytes())?)
}

/// Writes the wall time of each epoch: `epoch,seconds`.
pub fn write_timing_csv(path: &Path, history: &[EpochRecord]) -> Result<()> {
    let mut s = String::from("epoch,seconds\n");
    for r in history {
        s += &format!("{},{:.3}\n", r.epoch, r.seconds);
    }
    Ok(crate::checkpoint::write_atomic(path, s.as_bytes())?)
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

/// The standard plots of a run in `dir`: `loss`, `accuracy` (classification),
/// `weight_norms` and `update_norms` (per parameter tensor, from the monitor).
pub fn plot_run(dir: &Path, history: &[EpochRecord], monitor: &[TensorStats]) -> Result<()> {
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
    let mut names: Vec<&str> = Vec::new();
    for r in monitor {
        if !names.contains(&r.name.as_str()) {
            names.push(&r.name);
        }
    }
    let per = |f: &dyn Fn(&TensorStats) -> f64| -> Vec<Series> {
        names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    monitor.iter().filter(|r| r.name == *n).map(|r| (r.step as f64, f(r))).collect(),
                )
            })
            .collect()
    };
    if !names.is_empty() {
        plot(&dir.join("weight_norms"), "Weight norm per tensor", "step", &per(&|r| r.weight_norm), true)?;
        plot(&dir.join("update_norms"), "Update norm per tensor", "step", &per(&|r| r.update_norm), true)?;
    }
    Ok(())
}
