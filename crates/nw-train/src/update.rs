//! Online learning on a trained model: one optimizer update per labelled row
//! (or per mini-batch of rows) of new data, with the weight monitor
//! recording how far each update moved every tensor.
//!
//! [`online_update`] continues a restored run: its optimizer keeps its state
//! (Adam's moments carry on), the schedule is switched off and the rate is
//! constant ([`UpdateConfig::lr`], by default the run's base rate
//! `optim.lr`, not the annealed end of its schedule). Rows are fed in file
//! order. Input rows are scaled with the run's fitted standardiser.

use std::path::Path;

use nw_data::Targets;
use nw_tensor::Tensor;

use crate::config::{Run, RunConfig, ScheduleConfig};
use crate::error::{Result, TrainError};
use crate::monitor::{MonitorConfig, TensorStats, WeightMonitor};
use crate::report;
use crate::session::files;

/// Settings of an online update.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateConfig {
    /// Constant learning rate (None: the run's `optim.lr`).
    pub lr: Option<f64>,
    /// Rows per update (default 1: one update per row).
    pub batch: usize,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig { lr: None, batch: 1 }
    }
}

/// One update.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateRecord {
    /// Update number, from 1.
    pub update: u64,
    /// Rows in it.
    pub rows: usize,
    /// Loss of its rows before the update.
    pub loss: f32,
    /// `||applied update||_2` over all parameters.
    pub update_norm: f64,
    /// `update_norm / ||w||_2`.
    pub update_ratio: f64,
    /// `||w - w_start||_2` after this update: how far the model has moved from the trained one.
    pub drift: f64,
}

/// Labelled rows: features (one row per example, the run's feature count)
/// and targets (class indices, or values).
pub struct Rows {
    /// `[n, features]`.
    pub x: Tensor,
    /// Targets of the `n` rows.
    pub y: Targets,
}

/// Parses CSV rows `features..., target` (the target last: a class index for
/// a classifier, else the value columns after the run's feature count); a
/// first line that is not numeric is a header and skipped.
pub fn parse_rows(text: &str, path: &Path, run: &Run) -> Result<Rows> {
    let nf = run.test.n_features();
    let classes = run.test.n_classes();
    let perr = |line: usize, message: String| {
        TrainError::Data(nw_data::DataError::Parse { path: path.to_path_buf(), line, message })
    };
    let (mut xs, mut labels, mut values) = (Vec::new(), Vec::new(), Vec::new());
    let mut n = 0usize;
    let mut width = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: std::result::Result<Vec<f32>, _> =
            line.split(',').map(|v| v.trim().parse::<f32>()).collect();
        let row = match parsed {
            Ok(r) => r,
            Err(_) if i == 0 => continue, // a header
            Err(e) => return Err(perr(i + 1, e.to_string())),
        };
        if row.len() <= nf {
            return Err(perr(i + 1, format!("{} values: expected {nf} features and a target", row.len())));
        }
        if *width.get_or_insert(row.len()) != row.len() {
            return Err(perr(
                i + 1,
                format!("{} values, the first row had {}", row.len(), width.unwrap_or(0)),
            ));
        }
        xs.extend_from_slice(&row[..nf]);
        match classes {
            Some(k) => {
                if row.len() != nf + 1 {
                    return Err(perr(
                        i + 1,
                        format!("{} values: expected {nf} features and a class", row.len()),
                    ));
                }
                let c = row[nf];
                if !(c >= 0.0 && c.fract() == 0.0 && (c as usize) < k) {
                    return Err(perr(i + 1, format!("class {c} is not one of 0..{k}")));
                }
                labels.push(c as usize);
            }
            None => values.extend_from_slice(&row[nf..]),
        }
        n += 1;
    }
    if n == 0 {
        return Err(perr(0, "no labelled rows".into()));
    }
    let x = Tensor::from_vec(xs, &[n, nf])?;
    let x = match &run.scaler {
        Some(s) => s.transform(&x)?,
        None => x,
    };
    let shape: Vec<usize> = std::iter::once(n).chain(run.test.feature_shape().iter().copied()).collect();
    let x = x.reshape(&shape)?;
    let y = match classes {
        Some(k) => Targets::classes(labels, k)?,
        None => {
            let w = values.len() / n;
            Targets::Values(Tensor::from_vec(values, &[n, w])?)
        }
    };
    Ok(Rows { x, y })
}

/// Applies one update per `cfg.batch` rows to `run` (restored from its
/// checkpoint); `cfg` of the run is changed to describe the result (constant
/// rate, no schedule). Returns one record per update; the monitor (at every
/// step) holds the per-tensor statistics.
pub fn online_update(
    run: &mut Run,
    run_cfg: &mut RunConfig,
    rows: &Rows,
    cfg: &UpdateConfig,
) -> Result<Vec<UpdateRecord>> {
    if cfg.batch == 0 {
        return Err(TrainError::Config("--batch must be at least 1".into()));
    }
    let lr = cfg.lr.unwrap_or_else(|| run_cfg.optim.lr());
    if !(lr >= 0.0 && lr.is_finite()) {
        return Err(TrainError::Config(format!("--lr {lr} must be finite and >= 0")));
    }
    run.trainer.lr_policy = None;
    run.trainer.optimizer.set_lr(lr);
    run_cfg.optim.set_lr(lr);
    run_cfg.schedule = ScheduleConfig::None;
    run_cfg.train.monitor_every = 1;
    let mc = MonitorConfig { every_steps: 1, ..run.trainer.monitor.config().clone() };
    let progress = run.trainer.monitor.progress().clone();
    run.trainer.monitor = WeightMonitor::new(mc);
    run.trainer.monitor.set_progress(progress);
    let start: Vec<Vec<f32>> =
        run.trainer.named_parameters().iter().map(|(_, p)| p.value().to_vec()).collect();
    let n = rows.y.len();
    let mut out = Vec::new();
    let mut begin = 0;
    while begin < n {
        let idx: Vec<usize> = (begin..(begin + cfg.batch).min(n)).collect();
        let x = rows.x.index_select(0, &idx)?;
        let y = rows.y.select(&idx)?;
        let (loss, _) = run.trainer.train_step(&x, &y)?;
        let step = run.trainer.step;
        let recs: Vec<&TensorStats> =
            run.trainer.monitor.records().iter().filter(|r| r.step == step).collect();
        let u2: f64 = recs.iter().map(|r| r.update_norm.powi(2)).sum();
        let w2: f64 = recs.iter().map(|r| r.weight_norm.powi(2)).sum();
        let mut d2 = 0.0f64;
        for ((_, p), s) in run.trainer.named_parameters().iter().zip(&start) {
            for (a, b) in p.value().to_vec().iter().zip(s) {
                d2 += (*a as f64 - *b as f64).powi(2);
            }
        }
        out.push(UpdateRecord {
            update: out.len() as u64 + 1,
            rows: idx.len(),
            loss,
            update_norm: u2.sqrt(),
            update_ratio: if w2 > 0.0 { u2.sqrt() / w2.sqrt() } else { 0.0 },
            drift: d2.sqrt(),
        });
        begin += cfg.batch;
    }
    Ok(out)
}

/// Writes the updated run into `dir`: `config.toml`, `checkpoint.nwck`,
/// `model.safetensors`, `monitor.jsonl` (every update, per tensor) and
/// `updates.csv` (`update,rows,loss,update_norm,update_ratio,drift`).
pub fn write_update(dir: &Path, run: &Run, cfg: &RunConfig, records: &[UpdateRecord]) -> Result<()> {
    let io = |p: &Path, source| TrainError::Io { path: p.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let p = dir.join(files::CONFIG);
    std::fs::write(&p, cfg.to_toml()).map_err(|e| io(&p, e))?;
    run.trainer.checkpoint(&cfg.to_toml())?.save(&dir.join(files::CHECKPOINT))?;
    nw_nn::state::save_safetensors(&run.trainer.model, &dir.join(files::MODEL))?;
    report::write_monitor_jsonl(&dir.join(files::MONITOR), run.trainer.monitor.records())?;
    let mut csv = String::from("update,rows,loss,update_norm,update_ratio,drift\n");
    for r in records {
        csv +=
            &format!("{},{},{},{},{},{}\n", r.update, r.rows, r.loss, r.update_norm, r.update_ratio, r.drift);
    }
    let p = dir.join("updates.csv");
    std::fs::write(&p, csv).map_err(|e| io(&p, e))
}
