//! Measured training: one run of a [`Setup`] under [`Limits`], recording per
//! optimizer step the loss, its smoothed value and the applied weight update
//! (measured from the weights before and after each step, not from lr x grad),
//! and per epoch the training and validation metrics.
//!
//! Definitions (stated in every report, see [`DEFINITIONS`]):
//! - *weights* are the parameter tensors of rank >= 2 (matrices and kernels;
//!   biases and norm scales are left out);
//! - *weight update at step t* is the mean of `|w_after - w_before|` over all
//!   weights at step t, and per layer over that layer's weights;
//! - *update/weight ratio* is `||w_after - w_before||_2 / ||w_before||_2` over
//!   all weights (and per layer);
//! - *smoothed training loss* at step t is the mean of the last
//!   [`Limits::smooth`] batch losses (fewer at the start);
//! - *convergence step* is the first optimizer step at which the criterion of
//!   [`Target`] holds; a run that never meets it within the budget "did not
//!   converge"; one the NaN guard stops "diverged".

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use nw_autograd::Param;
use nw_data::{BatchLoader, Dataset};
use nw_train::{MonitorConfig, TrainError, Trainer, WeightMonitor};
use serde::Serialize;

use crate::error::Result;

/// The definitions every report states.
pub const DEFINITIONS: &str = "\
- **weights**: the parameter tensors of rank >= 2 (weight matrices and convolution kernels; biases excluded).\n\
- **weight update at step t**: mean of |w_after - w_before| over all weights, measured from the weights \
before and after optimizer step t (the update the optimizer actually applied, whatever its rule), and per layer.\n\
- **update/weight ratio**: ||w_after - w_before||_2 / ||w_before||_2 over all weights (and per layer).\n\
- **smoothed training loss**: mean of the last 20 mini-batch losses (fewer before step 20).\n\
- **convergence steps**: optimizer steps until the stated criterion first holds (smoothed training loss \
below a threshold, or validation accuracy at an epoch end at or above a target). \"did not converge\": \
not within the step budget. \"diverged\": the NaN guard stopped the run at a non-finite loss, gradient or weight.\n\
- **spread**: the sample standard deviation over seeds (± in the tables); a mean over converged seeds only, \
with the count of converged seeds stated.\n";

/// What a run has to train on: a trainer, its batches and held-out data.
pub struct Setup {
    /// The model, optimizer, schedule and regularizers.
    pub trainer: Trainer,
    /// Training batches.
    pub loader: BatchLoader,
    /// Validation split (evaluated at every epoch end).
    pub validation: Dataset,
}

impl Setup {
    /// Builds a setup from a run configuration (nw-train's `build_run`), with
    /// the weight monitor's warnings silenced (the lab measures for itself).
    pub fn from_config(cfg: &nw_train::RunConfig) -> Result<Setup> {
        let run = nw_train::build_run(cfg)?;
        let mut s = Setup { trainer: run.trainer, loader: run.loader, validation: run.validation };
        s.quiet();
        Ok(s)
    }

    /// Turns the weight monitor's warnings off (epoch-end records only).
    pub fn quiet(&mut self) {
        self.trainer.monitor = WeightMonitor::new(MonitorConfig {
            every_steps: 0,
            ratio_high: f64::INFINITY,
            ratio_low: 0.0,
            grad_vanish: 0.0,
            grad_explode: f64::INFINITY,
            spectral: false,
        });
    }
}

/// When a run counts as converged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Target {
    /// The smoothed training loss falls below this.
    Loss(f64),
    /// The validation accuracy at an epoch end reaches this.
    ValAccuracy(f64),
}

impl Target {
    /// The criterion in words.
    pub fn describe(&self) -> String {
        match self {
            Target::Loss(l) => format!("smoothed training loss < {l}"),
            Target::ValAccuracy(a) => format!("validation accuracy >= {a} at an epoch end"),
        }
    }
}

/// The budget and stopping rule of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    /// Optimizer steps at most.
    pub max_steps: u64,
    /// The convergence criterion.
    pub target: Target,
    /// Stop once converged, but not before `min_steps`.
    pub stop_at_target: bool,
    /// Steps a run always takes (when it does not diverge), e.g. to measure step 100.
    pub min_steps: u64,
    /// Window of the smoothed loss.
    pub smooth: usize,
    /// Record a histogram of log10 |update| every this many steps (0: never).
    pub histogram_every: u64,
}

impl Limits {
    /// `max_steps` steps to `target`, stopping at the target after 100 steps.
    pub fn new(max_steps: u64, target: Target) -> Limits {
        Limits { max_steps, target, stop_at_target: true, min_steps: 100, smooth: 20, histogram_every: 0 }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    /// Met the target.
    Converged,
    /// Did not meet it within the budget.
    NotConverged,
    /// Stopped by the NaN guard.
    Diverged,
}

impl Status {
    /// The word used in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Converged => "converged",
            Status::NotConverged => "did not converge",
            Status::Diverged => "diverged",
        }
    }
}

/// One optimizer step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepStat {
    /// Step number, from 1.
    pub step: u64,
    /// The batch loss before the update.
    pub loss: f64,
    /// The smoothed training loss.
    pub smoothed: f64,
    /// Mean |applied update| over all weights.
    pub mean_abs_update: f64,
    /// ||update|| / ||weights before|| over all weights.
    pub update_ratio: f64,
    /// Mean |applied update| per weight tensor (order of [`Trace::layers`]).
    pub layer_mean_abs: Vec<f64>,
    /// Update/weight ratio per weight tensor.
    pub layer_ratio: Vec<f64>,
}

/// One epoch end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochStat {
    /// Epoch, from 1.
    pub epoch: u64,
    /// Steps so far.
    pub step: u64,
    /// Mean training loss of the epoch.
    pub train_loss: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy (classification).
    pub val_accuracy: Option<f64>,
}

/// Fixed bins of log10 |update| for the heat maps.
pub const HIST_BINS: usize = 32;
/// Lowest log10 |update| bin edge (smaller updates, zeros included, fall in the first bin).
pub const HIST_LO: f64 = -9.0;
/// Highest log10 |update| bin edge.
pub const HIST_HI: f64 = 0.0;

/// Everything one run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    /// Names of the weight tensors.
    pub layers: Vec<String>,
    /// Per step.
    pub steps: Vec<StepStat>,
    /// Per epoch end.
    pub epochs: Vec<EpochStat>,
    /// How it ended.
    pub status: Status,
    /// Convergence step.
    pub converged_at: Option<u64>,
    /// Epochs (fractional) at convergence.
    pub converged_epochs: Option<f64>,
    /// Accuracy on the whole training split at the end (evaluation mode).
    pub final_train_accuracy: Option<f64>,
    /// Validation accuracy at the end.
    pub final_val_accuracy: Option<f64>,
    /// Validation loss at the end.
    pub final_val_loss: f64,
    /// (step, fraction of weights per log10 |update| bin) every `histogram_every` steps.
    pub histograms: Vec<(u64, Vec<f64>)>,
    /// Wall time of the run in seconds (not a result: varies run to run).
    #[serde(skip)]
    pub wall_s: f64,
    /// Wall time to convergence in seconds.
    #[serde(skip)]
    pub wall_to_target_s: Option<f64>,
}

impl Trace {
    /// The step record of step `t` (from 1), if the run got there.
    pub fn at(&self, t: u64) -> Option<&StepStat> {
        self.steps.get((t as usize).checked_sub(1)?)
    }

    /// The weight update at step `t`.
    pub fn update_at(&self, t: u64) -> Option<f64> {
        self.at(t).map(|s| s.mean_abs_update)
    }

    /// The final smoothed training loss.
    pub fn final_loss(&self) -> f64 {
        self.steps.last().map_or(f64::NAN, |s| s.smoothed)
    }

    /// Train minus validation accuracy at the end.
    pub fn overfit_gap(&self) -> Option<f64> {
        Some(self.final_train_accuracy? - self.final_val_accuracy?)
    }
}

/// The rank >= 2 parameters of a trainer, with their names.
pub fn weights(trainer: &Trainer) -> Vec<(String, Param)> {
    trainer.named_parameters().iter().filter(|(_, p)| p.shape().len() >= 2).cloned().collect()
}

/// Per-tensor sums of the update between `before` and the current values.
struct Delta {
    abs_sum: f64,
    sq_sum: f64,
    w_sq: f64,
    n: usize,
}

fn delta(before: &[f32], after: &[f32]) -> Delta {
    let (mut abs_sum, mut sq_sum, mut w_sq) = (0.0f64, 0.0f64, 0.0f64);
    for (&b, &a) in before.iter().zip(after) {
        let d = (a - b) as f64;
        abs_sum += d.abs();
        sq_sum += d * d;
        w_sq += (b as f64) * (b as f64);
    }
    Delta { abs_sum, sq_sum, w_sq, n: before.len() }
}

fn ratio(num_sq: f64, den_sq: f64) -> f64 {
    if den_sq > 0.0 { (num_sq / den_sq).sqrt() } else { 0.0 }
}

fn histogram(before: &[Vec<f32>], after: &[Vec<f32>]) -> Vec<f64> {
    let mut bins = vec![0.0f64; HIST_BINS];
    let mut n = 0usize;
    let width = (HIST_HI - HIST_LO) / HIST_BINS as f64;
    for (b, a) in before.iter().zip(after) {
        for (&x, &y) in b.iter().zip(a) {
            let d = ((y - x) as f64).abs();
            let l = if d > 0.0 { d.log10() } else { HIST_LO };
            let i = (((l - HIST_LO) / width).floor().max(0.0) as usize).min(HIST_BINS - 1);
            bins[i] += 1.0;
            n += 1;
        }
    }
    if n > 0 {
        bins.iter_mut().for_each(|v| *v /= n as f64);
    }
    bins
}

/// Trains `setup` under `limits`, measuring every step. A non-finite value
/// ends the run as [`Status::Diverged`] (not an error); other failures are errors.
pub fn train(mut setup: Setup, limits: &Limits) -> Result<(Trace, Setup)> {
    let named = weights(&setup.trainer);
    let layers: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
    let mut prev: Vec<Vec<f32>> = named.iter().map(|(_, p)| p.value().to_vec()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    setup.trainer.stop = Some(stop.clone());
    let per_epoch = setup.loader.batches_per_epoch().max(1) as f64;
    let started = Instant::now();
    let mut steps: Vec<StepStat> = Vec::new();
    let mut epochs = Vec::new();
    let mut histograms = Vec::new();
    let mut window: std::collections::VecDeque<f64> = Default::default();
    let mut converged_at: Option<u64> = None;
    let mut wall_to_target = None;
    let mut status = Status::NotConverged;
    loop {
        let result = {
            let mut on_batch = |_i: usize, _n: usize, loss: f32| {
                let step = steps.len() as u64 + 1;
                let now: Vec<Vec<f32>> = named.iter().map(|(_, p)| p.value().to_vec()).collect();
                let ds: Vec<Delta> = prev.iter().zip(&now).map(|(b, a)| delta(b, a)).collect();
                let (abs, sq, wsq, n) = ds.iter().fold((0.0, 0.0, 0.0, 0usize), |acc, d| {
                    (acc.0 + d.abs_sum, acc.1 + d.sq_sum, acc.2 + d.w_sq, acc.3 + d.n)
                });
                if limits.histogram_every > 0 && step.is_multiple_of(limits.histogram_every) {
                    histograms.push((step, histogram(&prev, &now)));
                }
                window.push_back(loss as f64);
                if window.len() > limits.smooth.max(1) {
                    window.pop_front();
                }
                let smoothed = window.iter().sum::<f64>() / window.len() as f64;
                steps.push(StepStat {
                    step,
                    loss: loss as f64,
                    smoothed,
                    mean_abs_update: abs / n.max(1) as f64,
                    update_ratio: ratio(sq, wsq),
                    layer_mean_abs: ds.iter().map(|d| d.abs_sum / d.n.max(1) as f64).collect(),
                    layer_ratio: ds.iter().map(|d| ratio(d.sq_sum, d.w_sq)).collect(),
                });
                prev = now;
                if converged_at.is_none()
                    && let Target::Loss(th) = limits.target
                    && smoothed < th
                {
                    converged_at = Some(step);
                    wall_to_target = Some(started.elapsed().as_secs_f64());
                }
                if step >= limits.max_steps
                    || (limits.stop_at_target && converged_at.is_some() && step >= limits.min_steps)
                {
                    stop.store(true, Ordering::SeqCst);
                }
            };
            setup.trainer.train_epoch(&setup.loader, Some(&setup.validation), &mut on_batch)
        };
        match result {
            Ok(rec) => {
                let val = rec.validation.as_ref();
                let val_accuracy = val.and_then(|m| m.accuracy);
                epochs.push(EpochStat {
                    epoch: rec.epoch,
                    step: rec.step,
                    train_loss: rec.train_loss,
                    val_loss: val.map_or(f64::NAN, |m| m.loss),
                    val_accuracy,
                });
                if converged_at.is_none()
                    && let Target::ValAccuracy(a) = limits.target
                    && val_accuracy.is_some_and(|v| v >= a)
                {
                    converged_at = Some(rec.step);
                    wall_to_target = Some(started.elapsed().as_secs_f64());
                }
                let done = rec.step >= limits.max_steps
                    || (limits.stop_at_target && converged_at.is_some() && rec.step >= limits.min_steps);
                if done || setup.trainer.should_stop()? || stop.load(Ordering::SeqCst) {
                    break;
                }
            }
            Err(TrainError::Interrupted { .. }) => {
                setup.trainer.partial = None;
                break;
            }
            Err(TrainError::NonFinite(_)) => {
                status = Status::Diverged;
                break;
            }
            Err(e) => return Err(e.into()),
        }
    }
    setup.trainer.stop = None;
    stop.store(false, Ordering::SeqCst);
    if status != Status::Diverged && converged_at.is_some() {
        status = Status::Converged;
    }
    let wall_s = started.elapsed().as_secs_f64();
    let (final_train_accuracy, final_val_accuracy, final_val_loss) = if status == Status::Diverged {
        (None, None, f64::NAN)
    } else {
        let t = setup.trainer.evaluate(setup.loader.dataset(), 1024)?;
        let v = setup.trainer.evaluate(&setup.validation, 1024)?;
        (t.accuracy, v.accuracy, v.loss)
    };
    let trace = Trace {
        layers,
        converged_epochs: converged_at.map(|s| s as f64 / per_epoch),
        steps,
        epochs,
        status,
        converged_at,
        final_train_accuracy,
        final_val_accuracy,
        final_val_loss,
        histograms,
        wall_s,
        wall_to_target_s: wall_to_target,
    };
    Ok((trace, setup))
}
