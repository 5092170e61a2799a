//! The learning-rate range test (Smith 2017, "Cyclical Learning Rates";
//! popularised as fastai's `lr_find`) on a run's own configuration.
//!
//! Starting from the run's initial weights, the learning rate grows
//! exponentially from [`LrFindConfig::start_lr`] to [`LrFindConfig::end_lr`]
//! over [`LrFindConfig::steps`] optimizer steps on the run's own batches (the
//! schedule is switched off). The batch loss is smoothed by an exponential
//! moving average with bias correction,
//! `avg_t = beta avg_{t-1} + (1 - beta) loss_t`, `smoothed_t = avg_t / (1 - beta^t)`.
//! The test stops when the smoothed loss exceeds [`LrFindConfig::diverge`]
//! times its minimum so far, or a loss, gradient or weight is not finite.
//!
//! Suggested rate (the documented rule): the rate at the steepest descent of
//! the smoothed loss against `log10(lr)`, i.e. the most negative central
//! difference `(s_{i+1} - s_{i-1}) / (log10 lr_{i+1} - log10 lr_{i-1})`,
//! among the points before the smoothed minimum and after the first 5% of
//! the sweep (where the average has not settled). `None` when the loss never
//! falls.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Run;
use crate::error::{Result, TrainError};
use crate::report;

/// Settings of the range test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LrFindConfig {
    /// First learning rate (default 1e-7).
    pub start_lr: f64,
    /// Last learning rate (default 10).
    pub end_lr: f64,
    /// Optimizer steps of the sweep (default 100).
    pub steps: u64,
    /// Smoothing factor beta of the loss average, in [0, 1) (default 0.98, fastai's).
    pub beta: f64,
    /// Stop when the smoothed loss exceeds this multiple of its minimum (default 4).
    pub diverge: f64,
}

impl Default for LrFindConfig {
    fn default() -> Self {
        LrFindConfig { start_lr: 1e-7, end_lr: 10.0, steps: 100, beta: 0.98, diverge: 4.0 }
    }
}

impl LrFindConfig {
    /// Checks the ranges, naming the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Config(m));
        if !(self.start_lr > 0.0 && self.start_lr.is_finite()) {
            return bad(format!("start lr {} must be positive and finite", self.start_lr));
        }
        if !(self.end_lr > self.start_lr && self.end_lr.is_finite()) {
            return bad(format!(
                "end lr {} must be finite and above the start lr {}",
                self.end_lr, self.start_lr
            ));
        }
        if self.steps < 3 {
            return bad(format!("steps {} must be at least 3", self.steps));
        }
        if !(0.0..1.0).contains(&self.beta) {
            return bad(format!("beta {} must be in [0, 1)", self.beta));
        }
        if self.diverge.is_nan() || self.diverge <= 1.0 {
            return bad(format!("divergence factor {} must be above 1", self.diverge));
        }
        Ok(())
    }

    /// The rate of step `i` (from 0).
    pub fn lr_at(&self, i: u64) -> f64 {
        let t = i as f64 / (self.steps - 1) as f64;
        self.start_lr * (self.end_lr / self.start_lr).powf(t)
    }
}

/// One step of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrFindPoint {
    /// Step, from 0.
    pub step: u64,
    /// The learning rate of the step.
    pub lr: f64,
    /// The batch loss (before the update).
    pub loss: f64,
    /// The bias-corrected moving average of the loss.
    pub smoothed: f64,
}

/// The outcome of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrFindResult {
    /// Every step taken.
    pub points: Vec<LrFindPoint>,
    /// The suggested rate (see the module docs), if the loss fell.
    pub suggestion: Option<f64>,
    /// Why the sweep ended before its last step, if it did.
    pub stopped: Option<String>,
}

/// Runs the range test on `run` (from its current state: build it fresh).
pub fn lr_find(run: &mut Run, cfg: &LrFindConfig) -> Result<LrFindResult> {
    cfg.validate()?;
    run.trainer.lr_policy = None;
    // The sweep drives the rate far too high on purpose: no monitor warnings.
    run.trainer.monitor =
        crate::WeightMonitor::new(crate::MonitorConfig { every_steps: 0, ..Default::default() });
    let mut points = Vec::new();
    let (mut avg, mut best) = (0.0f64, f64::INFINITY);
    let mut stopped = None;
    let mut epoch = 0u64;
    'sweep: loop {
        for batch in run.loader.epoch(epoch) {
            let i = points.len() as u64;
            if i >= cfg.steps {
                break 'sweep;
            }
            let lr = cfg.lr_at(i);
            run.trainer.optimizer.set_lr(lr);
            let loss = match run.trainer.train_step(&batch.x, &batch.y) {
                Ok((l, _)) => l as f64,
                Err(TrainError::NonFinite(e)) => {
                    stopped = Some(format!("diverged at lr {lr:.3e}: {e}"));
                    break 'sweep;
                }
                Err(e) => return Err(e),
            };
            avg = cfg.beta * avg + (1.0 - cfg.beta) * loss;
            let smoothed = avg / (1.0 - cfg.beta.powi(i as i32 + 1));
            points.push(LrFindPoint { step: i, lr, loss, smoothed });
            if !smoothed.is_finite() || (i > 0 && smoothed > cfg.diverge * best) {
                stopped = Some(format!(
                    "diverged at lr {lr:.3e}: smoothed loss {smoothed:.4} > {} x its minimum {best:.4}",
                    cfg.diverge
                ));
                break 'sweep;
            }
            best = best.min(smoothed);
        }
        epoch += 1;
    }
    let suggestion = suggest(&points);
    Ok(LrFindResult { points, suggestion, stopped })
}

/// The steepest-descent rule of the module docs.
pub fn suggest(points: &[LrFindPoint]) -> Option<f64> {
    let min_at = points.iter().enumerate().min_by(|a, b| a.1.smoothed.total_cmp(&b.1.smoothed))?.0;
    let skip = (points.len() / 20).max(1);
    let mut best: Option<(f64, f64)> = None; // (slope, lr)
    for i in skip..min_at.min(points.len().saturating_sub(1)) {
        let (a, b) = (&points[i - 1], &points[i + 1]);
        let slope = (b.smoothed - a.smoothed) / (b.lr.log10() - a.lr.log10());
        if slope < 0.0 && best.is_none_or(|(s, _)| slope < s) {
            best = Some((slope, points[i].lr));
        }
    }
    best.map(|(_, lr)| lr)
}

/// Writes `lr_find.csv` (`step,lr,loss,smoothed`), `lr_find.json` (the
/// result) and the plot `lr_find.svg/png` (smoothed loss against log10 lr).
pub fn write_lr_find(dir: &Path, r: &LrFindResult) -> Result<()> {
    let io = |p: &Path, source| TrainError::Io { path: p.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut csv = String::from("step,lr,loss,smoothed\n");
    for p in &r.points {
        csv += &format!("{},{},{},{}\n", p.step, p.lr, p.loss, p.smoothed);
    }
    let path = dir.join("lr_find.csv");
    std::fs::write(&path, csv).map_err(|e| io(&path, e))?;
    let path = dir.join("lr_find.json");
    let json = serde_json::to_string_pretty(r).expect("serialises");
    std::fs::write(&path, json).map_err(|e| io(&path, e))?;
    let line = |f: &dyn Fn(&LrFindPoint) -> f64| r.points.iter().map(|p| (p.lr.log10(), f(p))).collect();
    let mut series =
        vec![("batch loss".to_string(), line(&|p| p.loss)), ("smoothed".to_string(), line(&|p| p.smoothed))];
    if let Some(s) = r.suggestion {
        let lo = r.points.iter().map(|p| p.smoothed).fold(f64::INFINITY, f64::min);
        let hi = r.points.iter().map(|p| p.smoothed).fold(f64::NEG_INFINITY, f64::max);
        series.push((format!("suggested {s:.2e}"), vec![(s.log10(), lo), (s.log10(), hi)]));
    }
    report::plot(&dir.join("lr_find"), "learning-rate range test", "log10 learning rate", &series, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_is_exponential() {
        let c = LrFindConfig { start_lr: 1e-4, end_lr: 1.0, steps: 5, ..Default::default() };
        let lrs: Vec<f64> = (0..5).map(|i| c.lr_at(i)).collect();
        for (got, want) in lrs.iter().zip([1e-4, 1e-3, 1e-2, 1e-1, 1.0]) {
            assert!((got / want - 1.0).abs() < 1e-12, "{lrs:?}");
        }
        assert!(LrFindConfig { steps: 2, ..Default::default() }.validate().is_err());
        assert!(LrFindConfig { end_lr: 1e-9, ..Default::default() }.validate().is_err());
    }

    #[test]
    fn suggestion_is_the_steepest_descent_before_the_minimum() {
        // Smoothed loss over lr = 10^(i-10): flat, then falls fastest between
        // i = 5 and 7 (centred at i = 6), minimum at i = 8, then rises.
        let s = [5.0, 5.0, 5.0, 5.0, 4.9, 4.5, 3.0, 2.0, 1.8, 3.0, 9.0];
        let pts: Vec<LrFindPoint> = s
            .iter()
            .enumerate()
            .map(|(i, &v)| LrFindPoint {
                step: i as u64,
                lr: 10f64.powi(i as i32 - 10),
                loss: v,
                smoothed: v,
            })
            .collect();
        let lr = suggest(&pts).unwrap();
        assert!((lr.log10() + 4.0).abs() < 1e-9, "{lr}"); // i = 6: slope (2.0 - 4.5) / 2
        let flat: Vec<LrFindPoint> = pts.iter().map(|p| LrFindPoint { smoothed: 1.0, ..*p }).collect();
        assert!(suggest(&flat).is_none());
    }
}
