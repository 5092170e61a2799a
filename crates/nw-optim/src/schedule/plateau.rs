//! ReduceLROnPlateau: lower the rate when a metric stops improving.

use serde::{Deserialize, Serialize};

use crate::error::{OptimError, check_half_open, check_min};

/// Whether a lower or a higher metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlateauMode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// How `threshold` defines a significant improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThresholdMode {
    /// Relative: better than `best (1 ∓ threshold)`.
    Rel,
    /// Absolute: better than `best ∓ threshold`.
    Abs,
}

/// The settings of [`ReduceLrOnPlateau`], with torch's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateauConfig {
    /// Lower or higher is better (default `Min`).
    pub mode: PlateauMode,
    /// Multiplier on reduction, in [0, 1) (default 0.1).
    pub factor: f64,
    /// Epochs without improvement tolerated (default 10).
    pub patience: usize,
    /// Significance threshold (default 1e-4).
    pub threshold: f64,
    /// Relative or absolute threshold (default `Rel`).
    pub threshold_mode: ThresholdMode,
    /// Epochs to wait after a reduction (default 0).
    pub cooldown: usize,
    /// Lower bound on the rate (default 0).
    pub min_lr: f64,
    /// Smallest reduction applied (default 1e-8).
    pub eps: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

/// ReduceLROnPlateau, exactly as torch's: after each metric,
///
/// ```text
/// if better(metric, best): best ← metric, bad ← 0   else bad ← bad + 1
/// if cooldown > 0:         cooldown ← cooldown − 1, bad ← 0
/// if bad > patience:       lr ← max(lr · factor, min_lr) (only if that lowers it by more than eps),
///                          cooldown ← cooldown_steps, bad ← 0
/// ```
/// with `better(a, best)` = `a < best (1 − threshold)` (min, rel), `a < best −
/// threshold` (min, abs), `a > best (1 + threshold)` (max, rel), `a > best +
/// threshold` (max, abs). Serialisable (config and counters).
///
/// ```
/// use nw_optim::schedule::{PlateauConfig, ReduceLrOnPlateau};
///
/// let mut s = ReduceLrOnPlateau::new(PlateauConfig { patience: 1, factor: 0.5, ..PlateauConfig::default() }, 0.1).unwrap();
/// for loss in [1.0, 0.9, 0.9, 0.9] {
///     s.step(loss);
/// }
/// // two epochs without improvement exceed patience 1: 0.1 → 0.05
/// assert_eq!(s.lr(), 0.05);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReduceLrOnPlateau {
    config: PlateauConfig,
    lr: f64,
    best: Option<f64>,
    num_bad_epochs: usize,
    cooldown_counter: usize,
    last_epoch: usize,
}

impl ReduceLrOnPlateau {
    /// Starts at rate `lr` (the optimizer's); checks every setting's range.
    pub fn new(config: PlateauConfig, lr: f64) -> Result<Self, OptimError> {
        const O: &str = "ReduceLROnPlateau";
        check_half_open(O, "factor", config.factor, 0.0, 1.0, "must lie in [0, 1)")?;
        check_min(O, "threshold", config.threshold, 0.0, "must be finite and >= 0")?;
        check_min(O, "min_lr", config.min_lr, 0.0, "must be finite and >= 0")?;
        check_min(O, "eps", config.eps, 0.0, "must be finite and >= 0")?;
        check_min(O, "lr", lr, 0.0, "must be finite and >= 0")?;
        Ok(ReduceLrOnPlateau {
            config,
            lr,
            best: None,
            num_bad_epochs: 0,
            cooldown_counter: 0,
            last_epoch: 0,
        })
    }

    /// The settings.
    pub fn config(&self) -> &PlateauConfig {
        &self.config
    }

    /// The rate in force.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// The best metric so far (`None` before the first that counts).
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// Epochs seen.
    pub fn epoch(&self) -> usize {
        self.last_epoch
    }

    fn is_better(&self, a: f64) -> bool {
        let worse = match self.config.mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        };
        let best = self.best.unwrap_or(worse);
        let th = self.config.threshold;
        match (self.config.mode, self.config.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - th),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - th,
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (th + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + th,
        }
    }

    /// Feeds one epoch's metric; returns the rate in force afterwards.
    pub fn step(&mut self, metric: f64) -> f64 {
        self.last_epoch += 1;
        if self.is_better(metric) {
            self.best = Some(metric);
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        let c = &self.config;
        if self.num_bad_epochs > c.patience {
            let new = (self.lr * c.factor).max(c.min_lr);
            if self.lr - new > c.eps {
                self.lr = new;
            }
            self.cooldown_counter = c.cooldown;
            self.num_bad_epochs = 0;
        }
        self.lr
    }
}
