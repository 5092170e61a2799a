//! The weight monitor: how every parameter tensor moves, step by step.
//!
//! At a chosen interval of optimizer steps (and at every epoch end) the
//! monitor records, for each named parameter: the weight norm, the gradient
//! norm, the update norm `||w_after - w_before||`, the update-to-weight ratio,
//! the mean `|delta w|`, the largest `|w|`, the fraction of exact zeros, and
//! for layers followed by a ReLU the fraction of dead units (units whose
//! activation is zero for every example of the batch). It warns when a ratio
//! or a gradient norm says the learning rate is far off or gradients vanish
//! or explode. Records serialise as JSON lines.

use std::collections::HashMap;

use nw_autograd::{Grads, Param};
use nw_tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Thresholds and interval of the monitor. The ratio thresholds follow the
/// common rule of thumb that a healthy update moves a weight tensor by
/// about 1e-3 of its norm per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorConfig {
    /// Record every this many optimizer steps (0: only at epoch ends).
    pub every_steps: u64,
    /// Warn when update/weight exceeds this (learning rate far too large).
    pub ratio_high: f64,
    /// Warn when update/weight is below this (learning rate far too small).
    pub ratio_low: f64,
    /// Warn when a gradient norm is below this (vanishing gradients).
    pub grad_vanish: f64,
    /// Warn when a gradient norm exceeds this (exploding gradients).
    pub grad_explode: f64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            every_steps: 50,
            ratio_high: 1e-1,
            ratio_low: 1e-6,
            grad_vanish: 1e-7,
            grad_explode: 1e3,
        }
    }
}

/// What the monitor measured for one parameter tensor at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorStats {
    /// Parameter name (state_dict path).
    pub name: String,
    /// Optimizer steps taken when recorded.
    pub step: u64,
    /// Epoch during which it was recorded.
    pub epoch: u64,
    /// `||w||_2` after the step.
    pub weight_norm: f64,
    /// `||g||_2` of the gradient used by the step (None if the parameter had none).
    pub grad_norm: Option<f64>,
    /// `||w_after - w_before||_2`.
    pub update_norm: f64,
    /// `update_norm / weight_norm` (0 when the weight norm is 0).
    pub update_ratio: f64,
    /// Mean of `|w_after - w_before|`.
    pub mean_abs_update: f64,
    /// Largest `|w|`.
    pub max_abs_weight: f64,
    /// Fraction of weights exactly zero (pruned or dead).
    pub zero_fraction: f64,
    /// Fraction of this layer's units that are dead after its ReLU, when known.
    pub dead_fraction: Option<f64>,
}

/// A diagnosis raised from the statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Warning {
    /// Updates are a large fraction of the weights.
    UpdateTooLarge {
        /// Parameter.
        name: String,
        /// The ratio.
        ratio: f64,
    },
    /// Updates are a negligible fraction of the weights.
    UpdateTooSmall {
        /// Parameter.
        name: String,
        /// The ratio.
        ratio: f64,
    },
    /// The gradient norm is vanishingly small.
    VanishingGradient {
        /// Parameter.
        name: String,
        /// The norm.
        norm: f64,
    },
    /// The gradient norm is huge.
    ExplodingGradient {
        /// Parameter.
        name: String,
        /// The norm.
        norm: f64,
    },
}

impl Warning {
    /// The parameter tensor the warning is about.
    pub fn tensor(&self) -> &str {
        match self {
            Warning::UpdateTooLarge { name, .. }
            | Warning::UpdateTooSmall { name, .. }
            | Warning::VanishingGradient { name, .. }
            | Warning::ExplodingGradient { name, .. } => name,
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::UpdateTooLarge { name, ratio } => {
                write!(
                    f,
                    "{name}: update/weight ratio {ratio:.2e} is very large: the learning rate is likely too high"
                )
            }
            Warning::UpdateTooSmall { name, ratio } => {
                write!(
                    f,
                    "{name}: update/weight ratio {ratio:.2e} is tiny: the learning rate is likely too low"
                )
            }
            Warning::VanishingGradient { name, norm } => {
                write!(f, "{name}: gradient norm {norm:.2e}: vanishing gradients")
            }
            Warning::ExplodingGradient { name, norm } => {
                write!(f, "{name}: gradient norm {norm:.2e}: exploding gradients")
            }
        }
    }
}

/// Records [`TensorStats`] around optimizer steps.
///
/// Call [`WeightMonitor::before_step`] before the optimizer step and
/// [`WeightMonitor::after_step`] after it. The snapshot is taken only when the
/// coming step will be recorded, so unmonitored steps cost nothing.
#[derive(Debug, Default)]
pub struct WeightMonitor {
    config: MonitorConfig,
    before: HashMap<String, Tensor>,
    records: Vec<TensorStats>,
    warnings: Vec<Warning>,
}

impl WeightMonitor {
    /// A monitor with the given configuration.
    pub fn new(config: MonitorConfig) -> Self {
        WeightMonitor { config, ..Default::default() }
    }

    /// The configuration.
    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// Replaces the record history (restoring a checkpoint).
    pub fn set_records(&mut self, records: Vec<TensorStats>) {
        self.records = records;
    }

    /// Whether step number `step` (counted from 1) is recorded.
    pub fn wants(&self, step: u64, epoch_end: bool) -> bool {
        epoch_end || (self.config.every_steps > 0 && step.is_multiple_of(self.config.every_steps))
    }

    /// Snapshots the parameters before step `step` if that step is recorded.
    pub fn before_step(&mut self, step: u64, epoch_end: bool, params: &[(String, Param)]) {
        self.before.clear();
        if self.wants(step, epoch_end) {
            for (name, p) in params {
                self.before.insert(name.clone(), p.value());
            }
        }
    }

    /// Records the statistics of the step just taken (if it was snapshotted),
    /// returning the new records. `activations` gives, per parameter name,
    /// the post-ReLU output of its layer for dead-unit counting.
    pub fn after_step(
        &mut self,
        step: u64,
        epoch: u64,
        params: &[(String, Param)],
        grads: &Grads,
        activations: &HashMap<String, Tensor>,
    ) -> Vec<TensorStats> {
        if self.before.is_empty() {
            return Vec::new();
        }
        let mut new = Vec::new();
        for (name, p) in params {
            let Some(before) = self.before.get(name) else { continue };
            let w = p.value();
            let stats = tensor_stats(name, step, epoch, before, &w, grads.get(p), activations.get(name));
            self.check(&stats);
            new.push(stats);
        }
        self.before.clear();
        self.records.extend(new.iter().cloned());
        new
    }

    fn check(&mut self, s: &TensorStats) {
        let c = &self.config;
        let name = s.name.clone();
        if s.weight_norm > 0.0 && s.update_ratio > c.ratio_high {
            self.warnings.push(Warning::UpdateTooLarge { name: name.clone(), ratio: s.update_ratio });
        } else if s.weight_norm > 0.0 && s.update_norm > 0.0 && s.update_ratio < c.ratio_low {
            self.warnings.push(Warning::UpdateTooSmall { name: name.clone(), ratio: s.update_ratio });
        }
        if let Some(g) = s.grad_norm {
            if g < c.grad_vanish {
                self.warnings.push(Warning::VanishingGradient { name, norm: g });
            } else if g > c.grad_explode {
                self.warnings.push(Warning::ExplodingGradient { name, norm: g });
            }
        }
    }

    /// Every record so far, in order.
    pub fn records(&self) -> &[TensorStats] {
        &self.records
    }

    /// Every warning so far, in order.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Removes and returns the warnings raised since the last call.
    pub fn take_warnings(&mut self) -> Vec<Warning> {
        std::mem::take(&mut self.warnings)
    }

    /// The records as JSON lines.
    pub fn to_json_lines(&self) -> String {
        let mut s = String::new();
        for r in &self.records {
            s += &serde_json::to_string(r).expect("stats serialise");
            s.push('\n');
        }
        s
    }
}

/// The statistics of one tensor across one update.
pub fn tensor_stats(
    name: &str,
    step: u64,
    epoch: u64,
    before: &Tensor,
    after: &Tensor,
    grad: Option<&Tensor>,
    activation: Option<&Tensor>,
) -> TensorStats {
    let a = after.contiguous();
    let b = before.contiguous();
    let (a, b) = (a.as_slice().expect("contiguous"), b.as_slice().expect("contiguous"));
    let n = a.len().max(1) as f64;
    let (mut w2, mut d2, mut dabs, mut wmax, mut zeros) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        let (x, d) = (x as f64, x as f64 - y as f64);
        w2 += x * x;
        d2 += d * d;
        dabs += d.abs();
        wmax = wmax.max(x.abs());
        zeros += usize::from(x == 0.0);
    }
    let weight_norm = w2.sqrt();
    let update_norm = d2.sqrt();
    let grad_norm = grad.map(|g| {
        g.contiguous().as_slice().expect("contiguous").iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()
    });
    TensorStats {
        name: name.to_string(),
        step,
        epoch,
        weight_norm,
        grad_norm,
        update_norm,
        update_ratio: if weight_norm > 0.0 { update_norm / weight_norm } else { 0.0 },
        mean_abs_update: dabs / n,
        max_abs_weight: wmax,
        zero_fraction: zeros as f64 / n,
        dead_fraction: activation.map(dead_fraction),
    }
}

/// Fraction of units (all positions after the batch axis) whose activation
/// is `<= 0` for every example of the batch.
pub fn dead_fraction(act: &Tensor) -> f64 {
    if act.ndim() == 0 || act.is_empty() {
        return 0.0;
    }
    let n = act.shape()[0];
    let a = act.contiguous();
    let v = a.as_slice().expect("contiguous");
    let units = v.len() / n.max(1);
    if units == 0 {
        return 0.0;
    }
    let dead = (0..units).filter(|&u| (0..n).all(|i| v[i * units + u] <= 0.0)).count();
    dead as f64 / units as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_worked_by_hand() {
        let before = Tensor::from_vec(vec![3.0, 0.0], &[2]).unwrap();
        let after = Tensor::from_vec(vec![3.0, 4.0], &[2]).unwrap();
        let g = Tensor::from_vec(vec![0.0, -2.0], &[2]).unwrap();
        let s = tensor_stats("w", 7, 1, &before, &after, Some(&g), None);
        assert_eq!(s.weight_norm, 5.0); // sqrt(9 + 16)
        assert_eq!(s.update_norm, 4.0);
        assert_eq!(s.update_ratio, 0.8);
        assert_eq!(s.mean_abs_update, 2.0);
        assert_eq!(s.max_abs_weight, 4.0);
        assert_eq!(s.zero_fraction, 0.0);
        assert_eq!(s.grad_norm, Some(2.0));
    }

    #[test]
    fn dead_units_are_zero_for_every_example() {
        // 3 examples x 4 units: unit 1 and 3 never fire
        let a = Tensor::from_vec(vec![1., 0., 0., 0., 0., 0., 2., 0., 0., 0., 0., 0.], &[3, 4]).unwrap();
        assert_eq!(dead_fraction(&a), 0.5);
    }

    #[test]
    fn monitor_records_on_interval_and_warns() {
        let p = Param::new(Tensor::from_vec(vec![1.0, 1.0], &[2]).unwrap());
        let params = vec![("0.weight".to_string(), p.clone())];
        let mut m = WeightMonitor::new(MonitorConfig { every_steps: 2, ..Default::default() });
        let mut grads = Grads::new();
        grads.insert(&p, Tensor::from_vec(vec![1e4, 0.0], &[2]).unwrap());
        // step 1: not recorded
        m.before_step(1, false, &params);
        p.update(|t| t.as_slice_mut()[0] = 2.0);
        assert!(m.after_step(1, 0, &params, &grads, &HashMap::new()).is_empty());
        // step 2: recorded; the update is huge relative to the weight
        m.before_step(2, false, &params);
        p.update(|t| t.as_slice_mut()[0] = 10.0);
        let r = m.after_step(2, 0, &params, &grads, &HashMap::new());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].update_norm, 8.0);
        let w = m.take_warnings();
        assert!(w.iter().any(|w| matches!(w, Warning::UpdateTooLarge { .. })), "{w:?}");
        assert!(w.iter().any(|w| matches!(w, Warning::ExplodingGradient { .. })), "{w:?}");
        assert!(m.to_json_lines().contains("\"update_norm\":8.0"));
    }
}
