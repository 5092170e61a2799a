//! Gradual magnitude pruning (Zhu and Gupta 2017, "To prune, or not to
//! prune"): sparsity rises from `s_i` to `s_f` over `n` pruning steps spaced
//! `dt` training steps apart, starting at step `t0`, on a cubic curve:
//!
//! ```text
//! s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3,   t in {t0, t0 + dt, ..., t0 + n dt}
//! ```

use nw_autograd::Param;

use super::Pruner;
use crate::error::{RegError, Result};

/// The cubic sparsity schedule.
///
/// ```
/// use nw_reg::prune::GradualSchedule;
///
/// // 0 -> 0.8 over 4 pruning steps, every 10 steps from step 100
/// let s = GradualSchedule::new(0.0, 0.8, 100, 4, 10).unwrap();
/// assert_eq!(s.sparsity_at(99), 0.0); // before t0: nothing pruned
/// assert_eq!(s.sparsity_at(100), 0.0); // s_i
/// // t = 110: 0.8 + (0 - 0.8) (1 - 1/4)^3 = 0.8 - 0.8 * 0.421875 = 0.4625
/// assert!((s.sparsity_at(110) - 0.4625).abs() < 1e-12);
/// assert_eq!(s.sparsity_at(115), s.sparsity_at(110)); // in force until the next pruning step
/// assert_eq!(s.sparsity_at(140), 0.8);
/// assert!(s.is_pruning_step(130) && !s.is_pruning_step(131) && !s.is_pruning_step(150));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradualSchedule {
    initial: f64,
    target: f64,
    start: usize,
    steps: usize,
    every: usize,
}

impl GradualSchedule {
    /// `s_i = initial`, `s_f = target` (both in `[0, 1]`, `s_i <= s_f`),
    /// `t0 = start`, `n = steps >= 1` pruning steps, `dt = every >= 1`.
    pub fn new(initial: f64, target: f64, start: usize, steps: usize, every: usize) -> Result<Self> {
        let op = "GradualSchedule::new";
        for (name, v) in [("initial", initial), ("target", target)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(RegError::BadAmount {
                    op,
                    reason: format!("{name} sparsity {v} is outside [0, 1]"),
                });
            }
        }
        if initial > target {
            return Err(RegError::BadArgument {
                op,
                reason: format!("initial sparsity {initial} exceeds the target {target}"),
            });
        }
        if steps == 0 || every == 0 {
            return Err(RegError::BadArgument { op, reason: "steps and every must be >= 1".into() });
        }
        Ok(GradualSchedule { initial, target, start, steps, every })
    }

    /// Whether step `t` is one of `t0, t0 + dt, ..., t0 + n dt`.
    pub fn is_pruning_step(&self, t: usize) -> bool {
        t >= self.start
            && (t - self.start).is_multiple_of(self.every)
            && (t - self.start) / self.every <= self.steps
    }

    /// The sparsity in force at step `t`: 0 before `t0`, then the cubic
    /// value at the latest pruning step `<= t`, and `s_f` from `t0 + n dt` on.
    pub fn sparsity_at(&self, t: usize) -> f64 {
        if t < self.start {
            return 0.0;
        }
        let k = ((t - self.start) / self.every).min(self.steps);
        let frac = 1.0 - k as f64 / self.steps as f64;
        self.target + (self.initial - self.target) * frac * frac * frac
    }
}

/// A [`Pruner`] driven by a [`GradualSchedule`]: call [`GradualPruner::step`]
/// once per training step (after the optimizer), then the pruner's
/// `apply`/`mask_grads` as usual.
#[derive(Debug, Clone)]
pub struct GradualPruner {
    schedule: GradualSchedule,
    global: bool,
    pruner: Pruner,
}

impl GradualPruner {
    /// Prunes each parameter to the schedule's sparsity on its own
    /// (`global = false`) or all of them ranked together (`global = true`).
    pub fn new(schedule: GradualSchedule, global: bool) -> Self {
        GradualPruner { schedule, global, pruner: Pruner::new() }
    }

    /// The schedule.
    pub fn schedule(&self) -> &GradualSchedule {
        &self.schedule
    }

    /// The masks.
    pub fn pruner(&self) -> &Pruner {
        &self.pruner
    }

    /// At a pruning step, prunes `params` by magnitude up to the scheduled
    /// sparsity and returns it; at other steps only re-applies the masks and
    /// returns `None`.
    pub fn step(&mut self, t: usize, params: &[Param]) -> Result<Option<f64>> {
        if !self.schedule.is_pruning_step(t) {
            self.pruner.apply(params)?;
            return Ok(None);
        }
        let s = self.schedule.sparsity_at(t);
        if self.global {
            self.pruner.global_l1_to_sparsity(params, s)?;
        } else {
            for p in params {
                self.pruner.l1_to_sparsity(p, s)?;
            }
        }
        Ok(Some(s))
    }
}
