//! Weight averaging in the training loop (`train.ema`, `train.swa_start`):
//! a [`WeightAverage`] (torch's `AveragedModel` semantics) kept beside the
//! model and updated by the trainer, and the swap that evaluates or saves
//! the averaged weights.
//!
//! - EMA (`train.ema = DECAY`): updated after every optimizer step,
//!   `a ← decay · a + (1 − decay) · p` (the first update copies).
//! - SWA (`train.swa_start = E`): updated at the end of every epoch from
//!   epoch `E` on (epochs numbered from 1), the equal-weight mean of those
//!   epochs' final weights.
//!
//! Buffers are copied at each update (torch's default `use_buffers =
//! False`). Once the average holds a value, validation and test metrics and
//! the saved `model.safetensors` use the averaged weights: the trainer swaps
//! them into the model, recomputes BatchNorm statistics with
//! [`nw_nn::update_bn`] over the training set (in order, in batches of the
//! run's batch size; a model without BatchNorm runs no batch), evaluates or
//! saves, then puts the raw weights, buffers and random-stream states back
//! bit for bit, so training continues exactly as without the evaluation.

use nw_optim::averaging::{Averaging, WeightAverage};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// When the average is updated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum AverageKind {
    /// Exponential moving average after every optimizer step.
    Ema {
        /// Weight of the old average, in [0, 1).
        decay: f64,
    },
    /// Equal-weight average of the weights at the end of each epoch from
    /// this one on (numbered from 1).
    Swa {
        /// First epoch whose final weights enter the average.
        start: u64,
    },
}

/// The run's weight average: its kind and the averaged tensors (saved in
/// checkpoints as the `average` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Averaged {
    /// When it is updated.
    pub kind: AverageKind,
    /// The averaged parameters (model order) and float buffers.
    pub average: WeightAverage,
}

impl Averaged {
    /// An empty average of `kind` (a decay outside [0, 1) is an error).
    pub fn new(kind: AverageKind) -> Result<Self> {
        let averaging = match kind {
            AverageKind::Ema { decay } => Averaging::Ema { decay },
            AverageKind::Swa { .. } => Averaging::Swa,
        };
        Ok(Averaged { kind, average: WeightAverage::new(averaging, false)? })
    }

    /// Whether the average holds a value (then evaluation and saving use it).
    pub fn is_ready(&self) -> bool {
        self.average.n_averaged() > 0
    }
}

/// SWALR from the SWA start on (`train.swa_lr`): at the end of epoch
/// `train.swa_start` the trainer replaces its learning-rate policy by a
/// per-epoch [`Schedule::Swa`](nw_optim::schedule::Schedule::Swa) started
/// from the rate in effect then, and steps it at every later epoch end, as
/// torch's SWA recipe calls `swa_scheduler.step()` instead of
/// `scheduler.step()` once averaging has begun. The switched policy is the
/// checkpoint's schedule section, so a resumed run continues it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SwaLr {
    /// The rate annealed to.
    pub swa_lr: f64,
    /// Epochs of annealing.
    pub anneal_epochs: usize,
    /// The annealing shape.
    pub anneal: nw_optim::schedule::Anneal,
}

impl SwaLr {
    /// The schedule the trainer switches to.
    pub fn schedule(&self) -> nw_optim::schedule::Schedule {
        nw_optim::schedule::Schedule::Swa {
            swa_lr: self.swa_lr,
            anneal_epochs: self.anneal_epochs,
            anneal_strategy: self.anneal,
        }
    }
}
