//! The weight monitor: how every parameter tensor moves, step by step.
//!
//! At a chosen interval of optimizer steps (and at every epoch end) the
//! monitor records, for each named parameter, one [`TensorStats`]: the weight
//! norm; the gradient norm as the optimizer saw it and before clipping; the
//! *applied* update `w_after - w_before` (its L2 norm, RMS, largest and mean
//! absolute entry, and its ratio to the weight norm: measured, not `lr x grad`,
//! so it is right for every optimizer); the fraction of weights that actually
//! changed (a frozen or underflowing layer shows 0); sparsity (exact zeros);
//! dead units after a ReLU; the L2 norm of each optimizer buffer (Adam's `m`
//! and `v`, momentum buffers) and, for Adam's family, percentiles of the
//! effective per-parameter step `lr / (sqrt(v_hat) + eps)`. With
//! [`MonitorConfig::spectral`] it also summarises each weight matrix's
//! singular values at epoch ends ([`crate::spectral`]).
//!
//! Warnings know the schedule: an update ratio is judged against the ratio
//! the same step would have at the run's peak learning rate, so a tiny update
//! while a schedule anneals to zero is not reported as "the learning rate is
//! likely too low".
//!
//! Cost: the update, weight and change statistics come from one fused pass
//! per tensor over the weights after the step and a reused buffer holding
//! them before it, 16 f32 lanes per sub-chunk promoted to f64 in a fixed
//! order, over fixed blocks combined in block order (the same bits on any
//! thread count and instruction set; see `monitor_kernel`). The buffer is
//! refilled by that same pass when the next step is recorded too, and is
//! only copied from the weights when [`Param::version`] says they were
//! written since. Gradient and buffer norms are one vectorised pass each;
//! percentiles use a reused histogram of at most
//! [`SAMPLE`] values. Steps that are not recorded
//! cost a counter. `cargo xtask bench monitor` measures it (docs/BENCHMARKS.md).
//!
//! Records serialise as JSON lines (`monitor.jsonl`); the fields of
//! [`TensorStats`] are its columns.

use std::collections::{BTreeMap, HashMap};

use nw_autograd::{Grads, NodeId, Param};
use nw_optim::Optimizer;
use nw_tensor::Tensor;
use serde::{Deserialize, Serialize};

pub use crate::monitor_kernel::SAMPLE;
use crate::monitor_kernel::{Histogram, order_stats, sum_squares, update_sums};
use crate::spectral::{SpectralStats, spectral_stats};

/// Thresholds and interval of the monitor. The ratio thresholds follow the
/// common rule of thumb that a healthy update moves a weight tensor by
/// about 1e-3 of its norm per step; they are far outside it so that they
/// only fire when something is clearly wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Record every this many optimizer steps (0: only at epoch ends). Default 50.
    pub every_steps: u64,
    /// Warn when update/weight exceeds this (learning rate far too large). Default 0.1.
    pub ratio_high: f64,
    /// Warn when update/weight, scaled to the run's peak learning rate, is
    /// below this (learning rate far too small). Default 1e-6.
    pub ratio_low: f64,
    /// Warn when a gradient norm is below this (vanishing gradients). Default 1e-7.
    pub grad_vanish: f64,
    /// Warn when a gradient norm exceeds this (exploding gradients). Default 1e3.
    pub grad_explode: f64,
    /// Summarise the singular values of every weight matrix at epoch ends
    /// (top values, stable rank, power-law alpha). Default false.
    pub spectral: bool,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            every_steps: 50,
            ratio_high: 1e-1,
            ratio_low: 1e-6,
            grad_vanish: 1e-7,
            grad_explode: 1e3,
            spectral: false,
        }
    }
}

/// p50, p90 and p99 of a per-parameter quantity. Computed from a histogram
/// of the f32 bit patterns with 16 bins per octave, so each value is exact
/// to within 1/32 of itself (relative) for the values counted: every value
/// of a tensor of at most [`SAMPLE`] elements, and otherwise [`SAMPLE`] of
/// them at fixed, evenly spread positions (a golden-ratio stride; the same
/// positions on every run), which adds a sampling error of about
/// `sqrt(q (1 - q) / 4096)` in rank (±0.16% at p99).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// What the monitor measured for one parameter tensor at one step: one line
/// of `monitor.jsonl`. Fields added after the first version read as their
/// default (0, none, empty) from older files, so `nw report` reads old runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorStats {
    /// Parameter name (state_dict path).
    pub name: String,
    /// Optimizer steps taken when recorded (the step just taken, from 1).
    pub step: u64,
    /// Epoch during which it was recorded (from 0).
    pub epoch: u64,
    /// The optimizer's learning rate for this step.
    #[serde(default)]
    pub lr: f64,
    /// `||w||_2` after the step.
    pub weight_norm: f64,
    /// `||g||_2` of the gradient the optimizer used, after clipping (None if the parameter had none).
    pub grad_norm: Option<f64>,
    /// `||g||_2` before gradient clipping (equal to `grad_norm` when clipping did not fire).
    #[serde(default)]
    pub grad_norm_unclipped: Option<f64>,
    /// `||w_after - w_before||_2`: the applied update, whatever the optimizer.
    pub update_norm: f64,
    /// Root mean square of the applied update.
    #[serde(default)]
    pub update_rms: f64,
    /// Largest `|w_after - w_before|`.
    #[serde(default)]
    pub max_abs_update: f64,
    /// Mean of `|w_after - w_before|`.
    pub mean_abs_update: f64,
    /// `update_norm / weight_norm` (0 when the weight norm is 0).
    pub update_ratio: f64,
    /// Fraction of weights whose value changed in this step (0: frozen or underflowing).
    #[serde(default)]
    pub changed_fraction: f64,
    /// Largest `|w|`.
    pub max_abs_weight: f64,
    /// Fraction of weights exactly zero (sparsity: pruned or dead).
    pub zero_fraction: f64,
    /// Fraction of this layer's units that are dead after its ReLU (zero for
    /// every example of the batch), when the layer is followed by one.
    pub dead_fraction: Option<f64>,
    /// `||buffer||_2` of each optimizer buffer by torch's state key
    /// (`exp_avg`, `exp_avg_sq`, `momentum_buffer`, ...); empty for stateless rules.
    #[serde(default)]
    pub moment_norms: BTreeMap<String, f64>,
    /// Adam's family: percentiles of the effective per-parameter step
    /// `lr / (sqrt(v_hat) + eps)`, `v_hat = v / (1 - beta2^t)`.
    #[serde(default)]
    pub effective_step: Option<Percentiles>,
    /// Global gradient norm before clipping at this step (None: no clipping configured).
    #[serde(default)]
    pub clip_total_norm: Option<f64>,
    /// Steps so far (this one included) at which clipping fired.
    #[serde(default)]
    pub clipped_steps: u64,
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
    /// Updates are a negligible fraction of the weights, even allowing for
    /// the schedule (the ratio scaled to the peak learning rate is tiny).
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
    /// No weight changed although the gradient was non-zero and the learning
    /// rate is at least a tenth of its peak (updates underflow f32).
    Frozen {
        /// Parameter.
        name: String,
        /// The learning rate.
        lr: f64,
    },
}

impl Warning {
    /// The parameter tensor the warning is about.
    pub fn tensor(&self) -> &str {
        match self {
            Warning::UpdateTooLarge { name, .. }
            | Warning::UpdateTooSmall { name, .. }
            | Warning::VanishingGradient { name, .. }
            | Warning::ExplodingGradient { name, .. }
            | Warning::Frozen { name, .. } => name,
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
            Warning::Frozen { name, lr } => {
                write!(
                    f,
                    "{name}: no weight changed at learning rate {lr:.2e} although the gradient is non-zero (updates underflow)"
                )
            }
        }
    }
}

/// Gradient clipping at one step: the global norm before clipping and the limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipInfo {
    /// Global L2 norm of the gradients before clipping.
    pub total_norm: f64,
    /// The configured maximum.
    pub max_norm: f64,
}

impl ClipInfo {
    /// Whether clipping scaled the gradients (torch scales when the norm exceeds the maximum).
    pub fn fired(&self) -> bool {
        self.total_norm > self.max_norm
    }

    /// The factor the gradients were multiplied by (torch's `max / (norm + 1e-6)`, at most 1).
    pub fn coefficient(&self) -> f64 {
        (self.max_norm / (self.total_norm + 1e-6)).min(1.0)
    }
}

/// What the training loop tells the monitor about the step just taken.
#[derive(Clone, Copy)]
pub struct StepContext<'a> {
    /// The learning rate the optimizer used.
    pub lr: f64,
    /// Gradient clipping, when configured.
    pub clip: Option<ClipInfo>,
    /// The optimizer (for its buffers), when available.
    pub optimizer: Option<&'a dyn Optimizer>,
}

impl<'a> StepContext<'a> {
    /// A context with only the learning rate known.
    pub fn lr(lr: f64) -> Self {
        StepContext { lr, clip: None, optimizer: None }
    }
}

/// The resumable part of a monitor (saved in checkpoints).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MonitorProgress {
    /// Steps at which clipping fired.
    pub clipped_steps: u64,
    /// The largest learning rate seen.
    pub peak_lr: f64,
}

/// One parameter's weights before the step being recorded, kept across steps.
#[derive(Debug, Default)]
struct Before {
    /// The parameter the values belong to (None: not filled yet).
    id: Option<NodeId>,
    /// Its [`Param::version`] when the values were taken.
    version: u64,
    /// The values, row-major.
    values: Vec<f32>,
}

/// Records [`TensorStats`] around optimizer steps.
///
/// Call [`WeightMonitor::before_step`] before the optimizer step and
/// [`WeightMonitor::after_step`] after it (after every step: it also counts
/// clipping and tracks the peak learning rate). The weights before a
/// recorded step are kept in one reused buffer per parameter (memory: one
/// copy of the parameters, kept once the first step is recorded); steps that
/// are not recorded cost a counter.
#[derive(Debug, Default)]
pub struct WeightMonitor {
    config: MonitorConfig,
    /// Per parameter, in the order of `params`.
    before: Vec<Before>,
    /// Whether the step between `before_step` and `after_step` is recorded.
    armed: bool,
    /// The percentiles' reused histogram.
    hist: Histogram,
    epoch_end: bool,
    records: Vec<TensorStats>,
    spectra: Vec<SpectralStats>,
    progress: MonitorProgress,
    warnings: Vec<Warning>,
    /// Biases a following batch norm cancels: no vanishing-gradient warning.
    cancelled: Vec<String>,
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

    /// Names the parameters whose gradient is zero by construction (a bias
    /// that the batch norm after its layer cancels,
    /// [`crate::models::BuiltModel::cancelled_biases`]): they are never
    /// reported as vanishing gradients.
    pub fn set_cancelled(&mut self, names: Vec<String>) {
        self.cancelled = names;
    }

    /// Replaces the record history (restoring a checkpoint).
    pub fn set_records(&mut self, records: Vec<TensorStats>) {
        self.records = records;
    }

    /// Replaces the spectral history (restoring a checkpoint).
    pub fn set_spectra(&mut self, spectra: Vec<SpectralStats>) {
        self.spectra = spectra;
    }

    /// The counters that carry across steps.
    pub fn progress(&self) -> &MonitorProgress {
        &self.progress
    }

    /// Restores the counters (from a checkpoint).
    pub fn set_progress(&mut self, p: MonitorProgress) {
        self.progress = p;
    }

    /// Whether step number `step` (counted from 1) is recorded.
    pub fn wants(&self, step: u64, epoch_end: bool) -> bool {
        epoch_end || (self.config.every_steps > 0 && step.is_multiple_of(self.config.every_steps))
    }

    /// Makes sure the parameters' values before step `step` are at hand if
    /// that step is recorded: the buffer kept from the last recorded step
    /// when the parameter has not been written since (its
    /// [`Param::version`] is unchanged), a copy of the weights otherwise.
    pub fn before_step(&mut self, step: u64, epoch_end: bool, params: &[(String, Param)]) {
        self.epoch_end = epoch_end;
        self.armed = self.wants(step, epoch_end) && !params.is_empty();
        if !self.armed {
            return;
        }
        self.before.resize_with(params.len(), Before::default);
        for ((_, p), b) in params.iter().zip(&mut self.before) {
            // The version is read before the value: a write in between
            // makes the next comparison fail, never pass wrongly.
            let version = p.version();
            if b.id == Some(p.id()) && b.version == version {
                continue;
            }
            let w = p.value();
            b.values.clear();
            match w.as_slice() {
                Some(s) => b.values.extend_from_slice(s),
                None => b.values.extend(w.to_vec()),
            }
            (b.id, b.version) = (Some(p.id()), version);
        }
    }

    /// Accounts for the step just taken and, if it was snapshotted, records
    /// its statistics, returning the new records. `activations` gives, per
    /// parameter name, the post-ReLU output of its layer for dead-unit
    /// counting; `grads` are the gradients the optimizer used (after clipping).
    pub fn after_step(
        &mut self,
        step: u64,
        epoch: u64,
        params: &[(String, Param)],
        grads: &Grads,
        activations: &HashMap<String, Tensor>,
        ctx: &StepContext<'_>,
    ) -> Vec<TensorStats> {
        if ctx.lr.is_finite() && ctx.lr > self.progress.peak_lr {
            self.progress.peak_lr = ctx.lr;
        }
        if ctx.clip.is_some_and(|c| c.fired()) {
            self.progress.clipped_steps += 1;
        }
        if !std::mem::take(&mut self.armed) {
            return Vec::new();
        }
        // When the next step is recorded too, the pass leaves the weights
        // after this step in the buffer: they are the next step's "before".
        let write_back = self.wants(step + 1, false);
        let mut new = Vec::with_capacity(params.len());
        let mut kept = std::mem::take(&mut self.before);
        for ((name, p), b) in params.iter().zip(&mut kept) {
            if b.id != Some(p.id()) {
                continue;
            }
            let version = p.version();
            let w = p.value().contiguous();
            let w = w.as_slice().expect("contiguous");
            if w.len() != b.values.len() {
                b.id = None;
                continue;
            }
            let sums = update_sums(w, &mut b.values, write_back);
            if write_back {
                b.version = version;
            }
            let mut stats =
                stats_from_sums(name, step, epoch, &sums, w.len(), grads.get(p), activations.get(name));
            stats.lr = ctx.lr;
            if let Some(c) = ctx.clip {
                stats.clip_total_norm = Some(c.total_norm);
                if c.fired() {
                    stats.grad_norm_unclipped = stats.grad_norm.map(|g| g / c.coefficient());
                }
            }
            stats.clipped_steps = self.progress.clipped_steps;
            if let Some(view) = ctx.optimizer.and_then(|o| o.inspect_param(p)) {
                add_optimizer_stats(&mut stats, &view, &mut self.hist);
            }
            self.check(&stats);
            new.push(stats);
        }
        self.before = kept;
        if self.epoch_end && self.config.spectral {
            for (name, p) in params {
                if p.shape().len() >= 2 {
                    self.spectra.push(spectral_stats(name, step, epoch, &p.value()));
                }
            }
        }
        self.records.extend(new.iter().cloned());
        new
    }

    fn check(&mut self, s: &TensorStats) {
        let c = &self.config;
        let name = s.name.clone();
        // How far the schedule has taken the rate below its peak: a ratio
        // is judged as if the step had been taken at the peak rate.
        let scale = if self.progress.peak_lr > 0.0 { s.lr / self.progress.peak_lr } else { 1.0 };
        if s.weight_norm > 0.0 && s.update_ratio > c.ratio_high {
            self.warnings.push(Warning::UpdateTooLarge { name: name.clone(), ratio: s.update_ratio });
        } else if s.weight_norm > 0.0
            && s.update_norm > 0.0
            && scale > 0.0
            && s.update_ratio / scale < c.ratio_low
        {
            self.warnings.push(Warning::UpdateTooSmall { name: name.clone(), ratio: s.update_ratio });
        }
        if s.changed_fraction == 0.0 && s.lr > 0.0 && scale >= 0.1 && s.grad_norm.is_some_and(|g| g > 0.0) {
            self.warnings.push(Warning::Frozen { name: name.clone(), lr: s.lr });
        }
        if let Some(g) = s.grad_norm {
            if g < c.grad_vanish && !self.cancelled.contains(&name) {
                self.warnings.push(Warning::VanishingGradient { name, norm: g });
            } else if g > c.grad_explode {
                self.warnings.push(Warning::ExplodingGradient { name, norm: g });
            }
        }
    }

    /// Every record so far, in order (since the last [`WeightMonitor::take_records`]).
    pub fn records(&self) -> &[TensorStats] {
        &self.records
    }

    /// Removes and returns the records kept so far (a run that streams them
    /// to `monitor.jsonl` keeps none in memory).
    pub fn take_records(&mut self) -> Vec<TensorStats> {
        std::mem::take(&mut self.records)
    }

    /// Removes and returns the spectral summaries kept so far.
    pub fn take_spectra(&mut self) -> Vec<SpectralStats> {
        std::mem::take(&mut self.spectra)
    }

    /// Every spectral summary so far (with [`MonitorConfig::spectral`]), in order.
    pub fn spectra(&self) -> &[SpectralStats] {
        &self.spectra
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

/// The statistics of one tensor across one update (without the optimizer's
/// and the loop's fields, which [`WeightMonitor::after_step`] fills in).
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
    let a = a.as_slice().expect("contiguous");
    let mut b = before.to_vec();
    let sums = update_sums(a, &mut b, false);
    stats_from_sums(name, step, epoch, &sums, a.len(), grad, activation)
}

/// [`TensorStats`] from the fused pass's sums over `len` elements.
fn stats_from_sums(
    name: &str,
    step: u64,
    epoch: u64,
    s: &crate::monitor_kernel::UpdateSums,
    len: usize,
    grad: Option<&Tensor>,
    activation: Option<&Tensor>,
) -> TensorStats {
    let n = len.max(1) as f64;
    let weight_norm = s.w2.sqrt();
    let update_norm = s.d2.sqrt();
    let grad_norm = grad.map(|g| match g.as_slice() {
        Some(v) => sum_squares(v).sqrt(),
        None => sum_squares(&g.to_vec()).sqrt(),
    });
    TensorStats {
        name: name.to_string(),
        step,
        epoch,
        lr: 0.0,
        weight_norm,
        grad_norm,
        grad_norm_unclipped: grad_norm,
        update_norm,
        update_rms: (s.d2 / n).sqrt(),
        max_abs_update: s.dmax,
        mean_abs_update: s.dabs / n,
        update_ratio: if weight_norm > 0.0 { update_norm / weight_norm } else { 0.0 },
        changed_fraction: s.changed as f64 / n,
        max_abs_weight: s.wmax,
        zero_fraction: s.zeros as f64 / n,
        dead_fraction: activation.map(dead_fraction),
        moment_norms: BTreeMap::new(),
        effective_step: None,
        clip_total_norm: None,
        clipped_steps: 0,
    }
}

/// Fills the optimizer's buffer norms and Adam's effective step percentiles.
fn add_optimizer_stats(stats: &mut TensorStats, view: &nw_optim::ParamView<'_>, hist: &mut Histogram) {
    for (name, buf) in &view.buffers {
        stats.moment_norms.insert((*name).to_string(), sum_squares(buf).sqrt());
    }
    let Some(ad) = view.adaptive else { return };
    let Some((_, v)) = view.buffers.iter().find(|(n, _)| *n == ad.buffer) else { return };
    // The step lr / (sqrt(v) / sqrt(1 - beta2^t) + eps) falls as v grows, so
    // its p-th percentile is the step at v's (1 - p)-th percentile.
    let bc2_sqrt = (1.0 - ad.beta2.powf(view.step as f64)).sqrt();
    let step_at = |v: f64| view.lr / (v.max(0.0).sqrt() / bc2_sqrt + ad.eps);
    // Rank r = ceil(q n) in ascending steps is rank n - r + 1 in ascending v
    // (n: the values counted, a sample for large tensors).
    let ranks = |n: u64| {
        let rank = |q: f64| n + 1 - ((q * n as f64).ceil() as u64).clamp(1, n.max(1));
        [rank(0.5), rank(0.9), rank(0.99)]
    };
    if let Some([v50, v90, v99]) = order_stats(v, ranks, hist) {
        stats.effective_step = Some(Percentiles { p50: step_at(v50), p90: step_at(v90), p99: step_at(v99) });
    }
}

/// The `qs`-quantiles of non-negative values (order statistics of rank
/// `ceil(q n)`), each the centre of its histogram bin: within 1/32 of the
/// exact value for at most [`SAMPLE`] values, of a fixed sample of them
/// beyond (see [`Percentiles`]). `None` for an empty slice.
pub fn percentiles_of<const K: usize>(v: &[f32], qs: [f64; K]) -> Option<[f64; K]> {
    order_stats(v, |n| qs.map(|q| ((q * n as f64).ceil() as u64).max(1)), &mut Histogram::default())
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
    // Row by row (memory order): a unit is alive once any example fires it.
    let mut alive = vec![false; units];
    for row in v.chunks_exact(units) {
        for (a, &x) in alive.iter_mut().zip(row) {
            *a |= x > 0.0;
        }
    }
    alive.iter().filter(|&&a| !a).count() as f64 / units as f64
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
        assert_eq!(s.update_rms, 8f64.sqrt()); // sqrt((0 + 16) / 2)
        assert_eq!(s.max_abs_update, 4.0);
        assert_eq!(s.update_ratio, 0.8);
        assert_eq!(s.mean_abs_update, 2.0);
        assert_eq!(s.changed_fraction, 0.5); // one of two moved
        assert_eq!(s.max_abs_weight, 4.0);
        assert_eq!(s.zero_fraction, 0.0);
        assert_eq!(s.grad_norm, Some(2.0));
    }

    #[test]
    fn lanes_and_tail_agree_with_a_plain_sum() {
        // 19 elements: two full lanes of 8 and a tail of 3.
        let b: Vec<f32> = (0..19).map(|i| i as f32 * 0.25 - 2.0).collect();
        let a: Vec<f32> = b.iter().enumerate().map(|(i, &x)| if i % 3 == 0 { x } else { x + 0.5 }).collect();
        let s = tensor_stats(
            "w",
            1,
            0,
            &Tensor::from_vec(b.clone(), &[19]).unwrap(),
            &Tensor::from_vec(a.clone(), &[19]).unwrap(),
            None,
            None,
        );
        let w2: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum();
        assert!((s.weight_norm - w2.sqrt()).abs() < 1e-12);
        assert_eq!(s.changed_fraction, 12.0 / 19.0); // i % 3 != 0 for 12 of 0..19
        assert_eq!(s.zero_fraction, 0.0); // b[8] = 0 moved to 0.5; a[6] = b[6] = -0.5 stayed
    }

    #[test]
    fn dead_units_are_zero_for_every_example() {
        // 3 examples x 4 units: unit 1 and 3 never fire
        let a = Tensor::from_vec(vec![1., 0., 0., 0., 0., 0., 2., 0., 0., 0., 0., 0.], &[3, 4]).unwrap();
        assert_eq!(dead_fraction(&a), 0.5);
    }

    #[test]
    fn percentiles_are_within_a_bin() {
        // 1..=1000: p50 = 500, p90 = 900, p99 = 990 (order statistics of rank ceil(q n)).
        let v: Vec<f32> = (1..=1000).map(|i| i as f32).collect();
        let [p50, p90, p99] = percentiles_of(&v, [0.5, 0.9, 0.99]).unwrap();
        for (got, want) in [(p50, 500.0), (p90, 900.0), (p99, 990.0)] {
            assert!((got - want).abs() <= want / 32.0, "{got} vs {want}");
        }
        assert_eq!(percentiles_of(&[0.0f32; 4], [0.5]).unwrap(), [0.0]);
        assert!(percentiles_of(&[], [0.5]).is_none());
    }

    #[test]
    fn adam_effective_step_and_moment_norms() {
        // After one Adam step with g = [3, 4]: m = 0.1 g, v = 0.001 g^2,
        // v_hat = g^2, step = lr / (|g| + eps).
        let p = Param::new(Tensor::from_vec(vec![1.0, 1.0], &[2]).unwrap());
        let params = vec![("w".to_string(), p.clone())];
        let mut opt = nw_optim::Adam { lr: 0.1, ..Default::default() }.build(vec![p.clone()]).unwrap();
        let mut grads = Grads::new();
        grads.insert(&p, Tensor::from_vec(vec![3.0, 4.0], &[2]).unwrap());
        let mut m = WeightMonitor::new(MonitorConfig { every_steps: 1, ..Default::default() });
        m.before_step(1, false, &params);
        nw_optim::Optimizer::step(&mut opt, &grads).unwrap();
        let ctx = StepContext { lr: 0.1, clip: None, optimizer: Some(&opt) };
        let r = m.after_step(1, 0, &params, &grads, &HashMap::new(), &ctx);
        let s = &r[0];
        assert!((s.moment_norms["exp_avg"] - 0.5).abs() < 1e-6, "{:?}", s.moment_norms); // 0.1 * 5
        assert!((s.moment_norms["exp_avg_sq"] - 0.001 * 337f64.sqrt()).abs() < 1e-7); // 0.001 * ||[9, 16]||
        let e = s.effective_step.unwrap();
        // Steps ascending: [0.1/4, 0.1/3]; p50 has rank ceil(0.5 * 2) = 1, p90 and p99 rank 2.
        assert!((e.p50 - 0.1 / 4.0).abs() <= 0.1 / 4.0 / 32.0, "{e:?}");
        assert!((e.p90 - 0.1 / 3.0).abs() <= 0.1 / 3.0 / 32.0, "{e:?}");
        assert!((e.p99 - 0.1 / 3.0).abs() <= 0.1 / 3.0 / 32.0, "{e:?}");
    }

    #[test]
    fn clipping_is_counted_and_unclipped_norm_recovered() {
        let p = Param::new(Tensor::from_vec(vec![1.0, 1.0], &[2]).unwrap());
        let params = vec![("w".to_string(), p.clone())];
        let mut grads = Grads::new();
        grads.insert(&p, Tensor::from_vec(vec![0.6, 0.8], &[2]).unwrap()); // norm 1 after clipping
        let mut m = WeightMonitor::new(MonitorConfig { every_steps: 2, ..Default::default() });
        let clip = Some(ClipInfo { total_norm: 10.0, max_norm: 1.0 });
        for step in 1..=2 {
            m.before_step(step, false, &params);
            p.update(|t| t.as_slice_mut()[0] += 1e-3);
            let ctx = StepContext { lr: 0.1, clip, optimizer: None };
            m.after_step(step, 0, &params, &grads, &HashMap::new(), &ctx);
        }
        let s = &m.records()[0];
        assert_eq!(s.clipped_steps, 2);
        assert_eq!(s.clip_total_norm, Some(10.0));
        assert!((s.grad_norm_unclipped.unwrap() - 10.0).abs() < 1e-5);
    }

    #[test]
    fn a_tiny_update_while_the_schedule_anneals_is_not_a_warning() {
        let p = Param::new(Tensor::from_vec(vec![1.0; 4], &[4]).unwrap());
        let params = vec![("w".to_string(), p.clone())];
        let mut grads = Grads::new();
        grads.insert(&p, Tensor::from_vec(vec![1.0; 4], &[4]).unwrap());
        let mut m = WeightMonitor::new(MonitorConfig { every_steps: 1, ..Default::default() });
        // Step 1 at the peak rate 1e-2 moves weights by 1e-2 (ratio 1e-2).
        m.before_step(1, false, &params);
        p.update(|t| t.as_slice_mut().iter_mut().for_each(|w| *w -= 1e-2));
        m.after_step(1, 0, &params, &grads, &HashMap::new(), &StepContext::lr(1e-2));
        // Step 2: the schedule is at 1e-9 of its peak, the ratio ~5e-7: expected.
        m.before_step(2, false, &params);
        p.update(|t| t.as_slice_mut()[0] -= 1e-6);
        m.after_step(2, 0, &params, &grads, &HashMap::new(), &StepContext::lr(1e-11));
        assert!(m.take_warnings().is_empty());
        // The same ratio at the peak rate is a learning rate far too low.
        m.before_step(3, false, &params);
        p.update(|t| t.as_slice_mut()[0] -= 1e-6);
        m.after_step(3, 0, &params, &grads, &HashMap::new(), &StepContext::lr(1e-2));
        let w = m.take_warnings();
        assert!(w.iter().any(|w| matches!(w, Warning::UpdateTooSmall { .. })), "{w:?}");
        // Nothing moved at the peak rate with a non-zero gradient: frozen.
        m.before_step(4, false, &params);
        m.after_step(4, 0, &params, &grads, &HashMap::new(), &StepContext::lr(1e-2));
        let w = m.take_warnings();
        assert!(w.iter().any(|w| matches!(w, Warning::Frozen { .. })), "{w:?}");
    }

    #[test]
    fn monitor_records_on_interval_and_warns() {
        let p = Param::new(Tensor::from_vec(vec![1.0, 1.0], &[2]).unwrap());
        let params = vec![("0.weight".to_string(), p.clone())];
        let mut m = WeightMonitor::new(MonitorConfig { every_steps: 2, ..Default::default() });
        let mut grads = Grads::new();
        grads.insert(&p, Tensor::from_vec(vec![1e4, 0.0], &[2]).unwrap());
        let ctx = StepContext::lr(0.1);
        // step 1: not recorded
        m.before_step(1, false, &params);
        p.update(|t| t.as_slice_mut()[0] = 2.0);
        assert!(m.after_step(1, 0, &params, &grads, &HashMap::new(), &ctx).is_empty());
        // step 2: recorded; the update is huge relative to the weight
        m.before_step(2, false, &params);
        p.update(|t| t.as_slice_mut()[0] = 10.0);
        let r = m.after_step(2, 0, &params, &grads, &HashMap::new(), &ctx);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].update_norm, 8.0);
        let w = m.take_warnings();
        assert!(w.iter().any(|w| matches!(w, Warning::UpdateTooLarge { .. })), "{w:?}");
        assert!(w.iter().any(|w| matches!(w, Warning::ExplodingGradient { .. })), "{w:?}");
        assert!(m.to_json_lines().contains("\"update_norm\":8.0"));
    }
}
