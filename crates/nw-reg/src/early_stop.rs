//! Early stopping: stop when a monitored metric has not improved by more
//! than `min_delta` for `patience` consecutive epochs, keeping a copy of the
//! parameters at the best epoch to restore (Keras' `EarlyStopping` with
//! `restore_best_weights=True`).
//!
//! ```text
//! improved  <=>  metric < best - min_delta   (Mode::Min)
//!                metric > best + min_delta   (Mode::Max)
//! ```
//!
//! The first finite metric is always an improvement; NaN never is. The copy
//! is cheap: tensors are copy-on-write, so a snapshot shares storage until
//! the optimizer next writes the weights.

use nw_autograd::{NodeId, Param};
use nw_tensor::Tensor;

use crate::error::{RegError, Result};

/// Whether smaller or larger metric values are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Lower is better (losses).
    Min,
    /// Higher is better (accuracies).
    Max,
}

/// What [`EarlyStopping::step`] decided for one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// A new best; the parameters were snapshotted.
    Improved,
    /// No improvement; `wait` epochs in a row without one so far.
    Wait {
        /// Consecutive epochs without improvement.
        wait: usize,
    },
    /// Patience ran out. If restoring was asked for, the best parameters
    /// have been written back.
    Stop,
}

/// Early-stopping state.
///
/// ```
/// use nw_autograd::Param;
/// use nw_reg::{Decision, EarlyStopping, Mode};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::scalar(0.0));
/// let mut es = EarlyStopping::new(2, 0.0, Mode::Min).unwrap();
/// let losses = [1.0, 0.5, 0.6, 0.7];
/// let mut decisions = Vec::new();
/// for (epoch, &loss) in losses.iter().enumerate() {
///     w.set(Tensor::scalar(epoch as f32)).unwrap(); // "training"
///     decisions.push(es.step(loss, &[w.clone()]).unwrap());
/// }
/// assert_eq!(decisions[3], Decision::Stop);
/// assert_eq!(es.best_epoch(), Some(1));
/// assert_eq!(w.value().item().unwrap(), 1.0); // the weights of epoch 1
/// ```
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    patience: usize,
    min_delta: f64,
    mode: Mode,
    restore_best: bool,
    best: Option<f64>,
    best_epoch: Option<usize>,
    epoch: usize,
    wait: usize,
    stopped: bool,
    snapshot: Vec<(NodeId, Tensor)>,
}

impl EarlyStopping {
    /// Stop after `patience` epochs without an improvement larger than
    /// `min_delta` (finite, `>= 0`); restores the best weights on stop.
    pub fn new(patience: usize, min_delta: f64, mode: Mode) -> Result<Self> {
        if !(min_delta.is_finite() && min_delta >= 0.0) {
            return Err(RegError::BadArgument {
                op: "EarlyStopping::new",
                reason: format!("min_delta must be finite and >= 0, got {min_delta}"),
            });
        }
        Ok(EarlyStopping {
            patience,
            min_delta,
            mode,
            restore_best: true,
            best: None,
            best_epoch: None,
            epoch: 0,
            wait: 0,
            stopped: false,
            snapshot: Vec::new(),
        })
    }

    /// Whether to write the best weights back when stopping (default true).
    /// Without it no snapshot is kept.
    pub fn restore_best_weights(mut self, restore: bool) -> Self {
        self.restore_best = restore;
        self
    }

    /// Records the metric of the epoch just finished. `params` must be the
    /// same list (same parameters, same order) at every call.
    pub fn step(&mut self, metric: f64, params: &[Param]) -> Result<Decision> {
        if self.restore_best && !self.snapshot.is_empty() {
            self.check_params(params, "EarlyStopping::step")?;
        }
        let epoch = self.epoch;
        self.epoch += 1;
        if self.improves(metric) {
            self.best = Some(metric);
            self.best_epoch = Some(epoch);
            self.wait = 0;
            if self.restore_best {
                self.snapshot = params.iter().map(|p| (p.id(), p.value())).collect();
            }
            return Ok(Decision::Improved);
        }
        self.wait += 1;
        if self.wait >= self.patience {
            self.stopped = true;
            if self.restore_best {
                self.restore(params)?;
            }
            return Ok(Decision::Stop);
        }
        Ok(Decision::Wait { wait: self.wait })
    }

    fn improves(&self, metric: f64) -> bool {
        if metric.is_nan() {
            return false;
        }
        match (self.best, self.mode) {
            (None, _) => true,
            (Some(b), Mode::Min) => metric < b - self.min_delta,
            (Some(b), Mode::Max) => metric > b + self.min_delta,
        }
    }

    fn check_params(&self, params: &[Param], op: &'static str) -> Result<()> {
        if params.len() != self.snapshot.len() {
            return Err(RegError::ParamMismatch {
                op,
                reason: format!("{} parameters given, {} recorded", params.len(), self.snapshot.len()),
            });
        }
        for (i, (p, (id, t))) in params.iter().zip(&self.snapshot).enumerate() {
            if p.id() != *id || p.shape().as_slice() != t.shape() {
                return Err(RegError::ParamMismatch {
                    op,
                    reason: format!("parameter {i} ({p:?}) is not the one recorded"),
                });
            }
        }
        Ok(())
    }

    /// Writes the best epoch's values back into `params`; `Ok(false)` if no
    /// snapshot exists (no finite metric yet, or restoring disabled). Call
    /// it at the end of training when the epoch limit came first.
    pub fn restore(&self, params: &[Param]) -> Result<bool> {
        if self.snapshot.is_empty() {
            return Ok(false);
        }
        self.check_params(params, "EarlyStopping::restore")?;
        for (p, (_, t)) in params.iter().zip(&self.snapshot) {
            p.set(t.clone())?;
        }
        Ok(true)
    }

    /// Whether patience has run out.
    pub fn should_stop(&self) -> bool {
        self.stopped
    }

    /// The best metric so far.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// The epoch (0-based count of `step` calls) of the best metric.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best_epoch
    }

    /// Consecutive epochs without improvement.
    pub fn wait(&self) -> usize {
        self.wait
    }

    /// The counters and the best epoch's snapshot, for a checkpoint
    /// (snapshot tensors in the order of the `params` given to `step`).
    pub fn state(&self) -> EarlyStoppingState {
        EarlyStoppingState {
            best: self.best,
            best_epoch: self.best_epoch,
            epoch: self.epoch,
            wait: self.wait,
            stopped: self.stopped,
            snapshot: self.snapshot.iter().map(|(_, t)| (t.shape().to_vec(), t.to_vec())).collect(),
        }
    }

    /// Restores a [`EarlyStopping::state`]; `params` are the parameters the
    /// snapshot belongs to, in the same order (checked: count and shapes).
    /// On error nothing changes.
    pub fn load_state(&mut self, s: &EarlyStoppingState, params: &[Param]) -> Result<()> {
        let bad = |reason: String| RegError::ParamMismatch { op: "EarlyStopping::load_state", reason };
        if !s.snapshot.is_empty() && s.snapshot.len() != params.len() {
            return Err(bad(format!(
                "{} snapshot tensors for {} parameters",
                s.snapshot.len(),
                params.len()
            )));
        }
        let mut snapshot = Vec::with_capacity(s.snapshot.len());
        for (i, ((shape, data), p)) in s.snapshot.iter().zip(params).enumerate() {
            if p.shape() != *shape {
                return Err(bad(format!("snapshot {i} has shape {shape:?}, the parameter {:?}", p.shape())));
            }
            let t = Tensor::from_vec(data.clone(), shape).map_err(|e| bad(format!("snapshot {i}: {e}")))?;
            snapshot.push((p.id(), t));
        }
        self.best = s.best;
        self.best_epoch = s.best_epoch;
        self.epoch = s.epoch;
        self.wait = s.wait;
        self.stopped = s.stopped;
        self.snapshot = snapshot;
        Ok(())
    }
}

/// The resumable state of an [`EarlyStopping`] (its settings come from the
/// configuration that rebuilds it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EarlyStoppingState {
    /// Best metric so far.
    pub best: Option<f64>,
    /// Its epoch.
    pub best_epoch: Option<usize>,
    /// `step` calls so far.
    pub epoch: usize,
    /// Epochs without improvement.
    pub wait: usize,
    /// Whether patience ran out.
    pub stopped: bool,
    /// The best epoch's parameter values as (shape, data), in parameter order.
    pub snapshot: Vec<(Vec<usize>, Vec<f32>)>,
}
