//! Learning-rate schedules with torch.optim.lr_scheduler's semantics.
//!
//! A [`Scheduler`] holds a [`Schedule`] (serialisable: the whole scheduler,
//! config and position, derives serde), [`ReduceLrOnPlateau`] reacts to a
//! metric, and [`LambdaLr`] runs a user closure. The convention is torch's:
//! [`Scheduler::lr`] is the rate in force for the coming optimizer step; call
//! [`Scheduler::step`] after each optimizer step.
//!
//! ```
//! use nw_autograd::Param;
//! use nw_optim::schedule::{Schedule, Scheduler};
//! use nw_optim::{Optimizer, Sgd};
//! use nw_tensor::Tensor;
//!
//! let w = Param::new(Tensor::zeros(&[3]));
//! let mut opt = Sgd { lr: 0.1, ..Sgd::default() }.build(vec![w]).unwrap();
//! // five steps of linear warm-up from 0.01 x, then cosine over 35 steps
//! let warm = Schedule::Linear { start_factor: 0.01, end_factor: 1.0, total_iters: 5 };
//! let cos = Schedule::CosineAnnealing { t_max: 35, eta_min: 0.0 };
//! let mut s = Scheduler::new(Schedule::Sequential { schedules: vec![warm, cos], milestones: vec![5] }, 0.1).unwrap();
//! let mut seen = Vec::new();
//! for _ in 0..40 {
//!     opt.set_lr(s.lr());
//!     seen.push(opt.lr());
//!     // ... opt.step(&grads) ...
//!     s.step().unwrap();
//! }
//! assert!((seen[0] - 0.001).abs() < 1e-12);
//! assert!((seen[5] - 0.1).abs() < 1e-12); // cosine starts at the base rate
//! // serialisable state for checkpoints
//! let json = serde_json::to_string(&s).unwrap();
//! let back: Scheduler = serde_json::from_str(&json).unwrap();
//! assert_eq!(back, s);
//! ```

mod chain;
mod lambda;
mod plateau;

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use crate::error::{OptimError, check_closed, check_min};
use crate::optim::Optimizer;

pub use lambda::LambdaLr;
pub use plateau::{PlateauConfig, PlateauMode, ReduceLrOnPlateau, ThresholdMode};

/// How a [`Schedule::Cyclic`] cycle's amplitude changes (torch's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CyclicMode {
    /// Constant amplitude.
    Triangular,
    /// Amplitude halved each cycle: × 1/2^(cycle − 1).
    Triangular2,
    /// Amplitude × γ^iteration.
    ExpRange,
}

/// The interpolation of a [`Schedule::OneCycle`] phase (torch's `anneal_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Anneal {
    /// `end + (start − end)(1 + cos(π pct))/2`.
    Cos,
    /// `start + (end − start) pct`.
    Linear,
}

/// torch's `cycle_momentum=True` of CyclicLR and OneCycleLR: the momentum
/// (SGD's and RMSprop's `momentum`, beta1 of the Adam family) moves opposite
/// to the rate between these bounds. See [`Schedule::momentum_at`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MomentumCycle {
    /// The momentum at the rate's peak (torch default 0.8 for CyclicLR, 0.85 for OneCycleLR).
    pub base_momentum: f64,
    /// The momentum at the rate's low points (torch default 0.9 for CyclicLR, 0.95 for OneCycleLR).
    pub max_momentum: f64,
}

/// A learning-rate schedule as a function of the step count `t` (torch's
/// `last_epoch`, 0 for the first step) and the base rate `η0`. Field names
/// and defaults (in each variant's doc) follow torch.optim.lr_scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// ConstantLR: `η0 · factor` for `t < total_iters`, then `η0` (torch defaults 1/3, 5).
    Constant {
        /// Multiplier while active, in [0, 1].
        factor: f64,
        /// Steps it lasts.
        total_iters: usize,
    },
    /// StepLR: `η0 · γ^⌊t / step_size⌋` (torch default γ = 0.1).
    Step {
        /// Period of decay, ≥ 1.
        step_size: usize,
        /// Decay factor γ.
        gamma: f64,
    },
    /// MultiStepLR: `η0 · γ^(number of milestones ≤ t)` (torch default γ = 0.1).
    MultiStep {
        /// Steps at which the rate decays (a milestone listed twice decays twice).
        milestones: Vec<usize>,
        /// Decay factor γ.
        gamma: f64,
    },
    /// ExponentialLR: `η0 · γ^t`.
    Exponential {
        /// Decay factor γ.
        gamma: f64,
    },
    /// CosineAnnealingLR: `η_min + (η0 − η_min)(1 + cos(π t / T_max))/2` (and on
    /// past `T_max`, rising again, as torch; default η_min = 0).
    CosineAnnealing {
        /// Half period T_max, ≥ 1.
        t_max: usize,
        /// Lowest rate.
        eta_min: f64,
    },
    /// CosineAnnealingWarmRestarts (SGDR): cosine from η0 to η_min over T_i
    /// steps, then restart with `T_{i+1} = T_i · T_mult` (defaults T_mult = 1, η_min = 0).
    CosineWarmRestarts {
        /// First period T_0, ≥ 1.
        t_0: usize,
        /// Period growth T_mult, ≥ 1.
        t_mult: usize,
        /// Lowest rate.
        eta_min: f64,
    },
    /// LinearLR: `η0 (s + (e − s) min(t, T)/T)` (torch defaults s = 1/3, e = 1, T = 5): a warm-up.
    Linear {
        /// Start factor s in (0, 1].
        start_factor: f64,
        /// End factor e in [0, 1].
        end_factor: f64,
        /// Steps T to go from s to e, ≥ 1.
        total_iters: usize,
    },
    /// PolynomialLR: `η0 (1 − min(t, T)/T)^power` (torch defaults T = 5, power = 1).
    Polynomial {
        /// Steps T to reach 0, ≥ 1.
        total_iters: usize,
        /// Exponent.
        power: f64,
    },
    /// CyclicLR (Smith): a triangle between `base_lr` and `max_lr` (ignores η0,
    /// as torch overrides the optimizer's rate). With `cycle_momentum` the
    /// momentum cycles too, inversely (torch's `cycle_momentum=True`).
    Cyclic {
        /// Lower bound.
        base_lr: f64,
        /// Upper bound (the amplitude's peak).
        max_lr: f64,
        /// Steps going up, ≥ 1 (torch default 2000).
        step_size_up: usize,
        /// Steps going down (`None`: as up).
        step_size_down: Option<usize>,
        /// Amplitude policy (torch default triangular).
        mode: CyclicMode,
        /// γ of `ExpRange` (torch default 1.0).
        gamma: f64,
        /// Cycle the optimizer's momentum too (`None`: torch's `cycle_momentum=False`).
        #[serde(default)]
        cycle_momentum: Option<MomentumCycle>,
    },
    /// OneCycleLR (Smith & Topin): up from `max_lr/div_factor` to `max_lr`
    /// over `pct_start` of the steps, then down to
    /// `max_lr/(div_factor·final_div_factor)` (ignores η0). Stepping past
    /// `total_steps` is an error, as in torch.
    OneCycle {
        /// Peak rate.
        max_lr: f64,
        /// Length of the cycle, ≥ 1.
        total_steps: usize,
        /// Fraction spent increasing (torch default 0.3).
        pct_start: f64,
        /// Interpolation (torch default cos).
        anneal_strategy: Anneal,
        /// `initial = max_lr / div_factor` (torch default 25).
        div_factor: f64,
        /// `min = initial / final_div_factor` (torch default 1e4).
        final_div_factor: f64,
        /// Go back down to `initial` symmetrically before annealing to `min` (torch default false).
        three_phase: bool,
        /// Cycle the optimizer's momentum too (`None`: torch's `cycle_momentum=False`).
        #[serde(default)]
        cycle_momentum: Option<MomentumCycle>,
    },
    /// SequentialLR: `schedules[i]` runs from `milestones[i − 1]` (restarting
    /// its own count at 0 there) until `milestones[i]`.
    Sequential {
        /// The schedules, one more than the milestones.
        schedules: Vec<Schedule>,
        /// Ascending switch points.
        milestones: Vec<usize>,
    },
    /// ChainedScheduler: every schedule steps at every step, in order, each
    /// changing the rate the previous one left (torch's chainable forms:
    /// ConstantLR divides and multiplies, ExponentialLR multiplies by γ, ...;
    /// CyclicLR, OneCycleLR and SGDR overwrite it). Nests like `Sequential`:
    /// the inner schedules share the base rate.
    Chained {
        /// The schedules, applied in this order at each step (at least one).
        schedules: Vec<Schedule>,
    },
    /// MultiplicativeLR with a constant `lr_lambda`: `η_t = η_(t−1) · factor`.
    Multiplicative {
        /// The factor applied at each step, finite and ≥ 0.
        factor: f64,
    },
    /// SWALR (torch.optim.swa_utils): from η0, anneal to `swa_lr` over
    /// `anneal_epochs` steps (`α = anneal(min(1, t / max(1, anneal_epochs)))`,
    /// `η = swa_lr · α + η0 (1 − α)`), then hold it. 0 anneal epochs start at `swa_lr`.
    Swa {
        /// The rate annealed to, finite and ≥ 0.
        swa_lr: f64,
        /// Steps of annealing (torch default 10).
        anneal_epochs: usize,
        /// `Cos`: α = (1 − cos(π t))/2; `Linear`: α = t (torch default cos).
        anneal_strategy: Anneal,
    },
}

impl Schedule {
    /// OneCycleLR with torch's defaults for everything but the peak and length.
    pub fn one_cycle(max_lr: f64, total_steps: usize) -> Schedule {
        Schedule::OneCycle {
            max_lr,
            total_steps,
            pct_start: 0.3,
            anneal_strategy: Anneal::Cos,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
            cycle_momentum: None,
        }
    }

    /// torch's class name of this schedule.
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Constant { .. } => "ConstantLR",
            Schedule::Step { .. } => "StepLR",
            Schedule::MultiStep { .. } => "MultiStepLR",
            Schedule::Exponential { .. } => "ExponentialLR",
            Schedule::CosineAnnealing { .. } => "CosineAnnealingLR",
            Schedule::CosineWarmRestarts { .. } => "CosineAnnealingWarmRestarts",
            Schedule::Linear { .. } => "LinearLR",
            Schedule::Polynomial { .. } => "PolynomialLR",
            Schedule::Cyclic { .. } => "CyclicLR",
            Schedule::OneCycle { .. } => "OneCycleLR",
            Schedule::Sequential { .. } => "SequentialLR",
            Schedule::Chained { .. } => "ChainedScheduler",
            Schedule::Multiplicative { .. } => "MultiplicativeLR",
            Schedule::Swa { .. } => "SWALR",
        }
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), OptimError> {
        let o = self.name();
        let at_least_one = |name: &'static str, v: usize| -> Result<(), OptimError> {
            if v >= 1 {
                Ok(())
            } else {
                Err(OptimError::InvalidHyper { owner: o, name, value: v as f64, reason: "must be >= 1" })
            }
        };
        let nonneg = |name, v| check_min(o, name, v, 0.0, "must be finite and >= 0");
        match self {
            Schedule::Constant { factor, .. } => {
                check_closed(o, "factor", *factor, 0.0, 1.0, "must lie in [0, 1]")
            }
            Schedule::Step { step_size, gamma } => {
                at_least_one("step_size", *step_size)?;
                nonneg("gamma", *gamma)
            }
            Schedule::MultiStep { gamma, .. } | Schedule::Exponential { gamma } => nonneg("gamma", *gamma),
            Schedule::CosineAnnealing { t_max, eta_min } => {
                at_least_one("T_max", *t_max)?;
                nonneg("eta_min", *eta_min)
            }
            Schedule::CosineWarmRestarts { t_0, t_mult, eta_min } => {
                at_least_one("T_0", *t_0)?;
                at_least_one("T_mult", *t_mult)?;
                nonneg("eta_min", *eta_min)
            }
            Schedule::Linear { start_factor, end_factor, total_iters } => {
                if !(*start_factor > 0.0 && *start_factor <= 1.0) {
                    return Err(OptimError::InvalidHyper {
                        owner: o,
                        name: "start_factor",
                        value: *start_factor,
                        reason: "must lie in (0, 1]",
                    });
                }
                check_closed(o, "end_factor", *end_factor, 0.0, 1.0, "must lie in [0, 1]")?;
                at_least_one("total_iters", *total_iters)
            }
            Schedule::Polynomial { total_iters, power } => {
                at_least_one("total_iters", *total_iters)?;
                nonneg("power", *power)
            }
            Schedule::Cyclic { base_lr, max_lr, step_size_up, gamma, cycle_momentum, .. } => {
                nonneg("base_lr", *base_lr)?;
                nonneg("max_lr", *max_lr)?;
                at_least_one("step_size_up", *step_size_up)?;
                check_cycle(o, cycle_momentum)?;
                check_min(o, "gamma", *gamma, 0.0, "must be finite and >= 0")
            }
            Schedule::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
                cycle_momentum,
                ..
            } => {
                check_cycle(o, cycle_momentum)?;
                nonneg("max_lr", *max_lr)?;
                at_least_one("total_steps", *total_steps)?;
                check_closed(o, "pct_start", *pct_start, 0.0, 1.0, "must lie in [0, 1]")?;
                if !(*div_factor > 0.0 && div_factor.is_finite()) {
                    return Err(OptimError::InvalidHyper {
                        owner: o,
                        name: "div_factor",
                        value: *div_factor,
                        reason: "must be finite and > 0",
                    });
                }
                if !(*final_div_factor > 0.0 && final_div_factor.is_finite()) {
                    return Err(OptimError::InvalidHyper {
                        owner: o,
                        name: "final_div_factor",
                        value: *final_div_factor,
                        reason: "must be finite and > 0",
                    });
                }
                Ok(())
            }
            Schedule::Sequential { schedules, milestones } => {
                if schedules.is_empty() || milestones.len() + 1 != schedules.len() {
                    return Err(OptimError::InvalidHyper {
                        owner: o,
                        name: "milestones",
                        value: milestones.len() as f64,
                        reason: "needs exactly one milestone fewer than schedules (and at least one schedule)",
                    });
                }
                if milestones.windows(2).any(|w| w[0] > w[1]) {
                    return Err(OptimError::InvalidHyper {
                        owner: o,
                        name: "milestones",
                        value: milestones.len() as f64,
                        reason: "must be in ascending order",
                    });
                }
                schedules.iter().try_for_each(Schedule::validate)
            }
            Schedule::Chained { schedules } => {
                if schedules.is_empty() {
                    return Err(OptimError::InvalidHyper {
                        owner: o,
                        name: "schedulers",
                        value: 0.0,
                        reason: "needs at least one schedule",
                    });
                }
                schedules.iter().try_for_each(Schedule::validate)
            }
            Schedule::Multiplicative { factor } => nonneg("factor", *factor),
            Schedule::Swa { swa_lr, .. } => nonneg("swa_lr", *swa_lr),
        }
    }

    /// Whether this schedule (or one inside it) cycles the optimizer's momentum.
    pub fn cycles_momentum(&self) -> bool {
        match self {
            Schedule::Cyclic { cycle_momentum, .. } | Schedule::OneCycle { cycle_momentum, .. } => {
                cycle_momentum.is_some()
            }
            Schedule::Sequential { schedules, .. } | Schedule::Chained { schedules } => {
                schedules.iter().any(Schedule::cycles_momentum)
            }
            _ => false,
        }
    }

    /// The momentum in force at step `t` when the schedule cycles it
    /// (`None` otherwise): CyclicLR's `max_m − (max_m − base_m) · scale ·
    /// amplitude`, OneCycleLR's phases from `max_m` to `base_m` and back
    /// (three phases: `max_m`, `base_m`, `max_m`, `max_m`). A chain gives the
    /// last inner schedule that cycles momentum, as torch's last write wins;
    /// a sequence gives the active one's.
    pub fn momentum_at(&self, t: usize) -> Option<f64> {
        match self {
            Schedule::Cyclic { step_size_up, step_size_down, mode, gamma, cycle_momentum, .. } => {
                let m = (*cycle_momentum)?;
                let (scale, amp) = cyclic_shape(t, *step_size_up, *step_size_down, *mode, *gamma);
                Some(m.max_momentum - (m.max_momentum - m.base_momentum) * scale * amp)
            }
            Schedule::OneCycle {
                total_steps,
                pct_start,
                anneal_strategy,
                three_phase,
                cycle_momentum,
                ..
            } => {
                let m = (*cycle_momentum)?;
                let (hi, lo) = (m.max_momentum, m.base_momentum);
                let ends = one_cycle_ends(*total_steps, *pct_start, *three_phase);
                let values: &[(f64, f64)] =
                    if *three_phase { &[(hi, lo), (lo, hi), (hi, hi)] } else { &[(hi, lo), (lo, hi)] };
                let (i, pct) = one_cycle_phase(&ends, t as f64);
                Some(anneal(*anneal_strategy, values[i].0, values[i].1, pct))
            }
            Schedule::Sequential { schedules, milestones } => {
                let idx = milestones.iter().filter(|&&m| m <= t).count();
                let offset = if idx == 0 { 0 } else { milestones[idx - 1] };
                schedules[idx].momentum_at(t - offset)
            }
            Schedule::Chained { schedules } => schedules.iter().rev().find_map(|s| s.momentum_at(t)),
            _ => None,
        }
    }

    /// The rate in force at step `t` for base rate `base_lr`.
    pub fn lr_at(&self, base_lr: f64, t: usize) -> Result<f64, OptimError> {
        let tf = t as f64;
        Ok(match self {
            Schedule::Constant { factor, total_iters } => {
                if t < *total_iters {
                    base_lr * factor
                } else {
                    base_lr
                }
            }
            Schedule::Step { step_size, gamma } => base_lr * gamma.powf((t / step_size) as f64),
            Schedule::MultiStep { milestones, gamma } => {
                base_lr * gamma.powf(milestones.iter().filter(|&&m| m <= t).count() as f64)
            }
            Schedule::Exponential { gamma } => base_lr * gamma.powf(tf),
            Schedule::CosineAnnealing { t_max, eta_min } => {
                eta_min + (base_lr - eta_min) * (1.0 + (PI * tf / *t_max as f64).cos()) / 2.0
            }
            Schedule::CosineWarmRestarts { t_0, t_mult, eta_min } => {
                // torch: T_cur += 1; if T_cur >= T_i { T_cur -= T_i; T_i *= T_mult }
                let (mut cur, mut ti) = (t, *t_0);
                if *t_mult == 1 {
                    cur %= ti;
                } else {
                    while cur >= ti {
                        cur -= ti;
                        ti = ti.saturating_mul(*t_mult);
                    }
                }
                eta_min + (base_lr - eta_min) * (1.0 + (PI * cur as f64 / ti as f64).cos()) / 2.0
            }
            Schedule::Linear { start_factor, end_factor, total_iters } => {
                let done = t.min(*total_iters) as f64 / *total_iters as f64;
                base_lr * (start_factor + (end_factor - start_factor) * done)
            }
            Schedule::Polynomial { total_iters, power } => {
                base_lr * (1.0 - t.min(*total_iters) as f64 / *total_iters as f64).powf(*power)
            }
            Schedule::Cyclic { base_lr: lo, max_lr, step_size_up, step_size_down, mode, gamma, .. } => {
                let (scale, amp) = cyclic_shape(t, *step_size_up, *step_size_down, *mode, *gamma);
                lo + (max_lr - lo) * scale * amp
            }
            Schedule::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                anneal_strategy,
                div_factor,
                final_div_factor,
                three_phase,
                ..
            } => {
                if t > *total_steps {
                    return Err(OptimError::ScheduleFinished {
                        schedule: "OneCycleLR",
                        step: t,
                        total_steps: *total_steps,
                    });
                }
                let initial = max_lr / div_factor;
                let min = initial / final_div_factor;
                let ends = one_cycle_ends(*total_steps, *pct_start, *three_phase);
                let values: &[(f64, f64)] = if *three_phase {
                    &[(initial, *max_lr), (*max_lr, initial), (initial, min)]
                } else {
                    &[(initial, *max_lr), (*max_lr, min)]
                };
                let (i, pct) = one_cycle_phase(&ends, tf);
                anneal(*anneal_strategy, values[i].0, values[i].1, pct)
            }
            Schedule::Sequential { schedules, milestones } => {
                // bisect_right: the schedule whose span holds t, counted from its milestone
                let idx = milestones.iter().filter(|&&m| m <= t).count();
                let offset = if idx == 0 { 0 } else { milestones[idx - 1] };
                schedules[idx].lr_at(base_lr, t - offset)?
            }
            Schedule::Chained { .. } => {
                let mut lr = self.chain_lr(base_lr, base_lr, 0)?;
                for k in 1..=t {
                    lr = self.chain_lr(base_lr, lr, k)?;
                }
                lr
            }
            Schedule::Multiplicative { factor } => base_lr * factor.powf(tf),
            Schedule::Swa { swa_lr, anneal_epochs, anneal_strategy } => {
                let a = chain::swa_alpha(*anneal_strategy, *anneal_epochs, t);
                swa_lr * a + base_lr * (1.0 - a)
            }
        })
    }

    /// The rate at step `t ≥ 1` given the rate `prev` in force at step
    /// `t − 1`: what [`Scheduler::step`] uses. The closed form
    /// ([`Schedule::lr_at`]) for every schedule except the recursive ones
    /// torch defines by the previous rate: MultiplicativeLR, SWALR and
    /// ChainedScheduler (and a sequence's active member of those kinds).
    pub fn next_lr(&self, base_lr: f64, prev: f64, t: usize) -> Result<f64, OptimError> {
        match self {
            Schedule::Chained { .. } | Schedule::Multiplicative { .. } | Schedule::Swa { .. } => {
                self.chain_lr(base_lr, prev, t)
            }
            Schedule::Sequential { schedules, milestones } => {
                let idx = milestones.iter().filter(|&&m| m <= t).count();
                let offset = if idx == 0 { 0 } else { milestones[idx - 1] };
                if idx > 0 && t == offset {
                    schedules[idx].lr_at(base_lr, 0)
                } else {
                    schedules[idx].next_lr(base_lr, prev, t - offset)
                }
            }
            _ => self.lr_at(base_lr, t),
        }
    }
}

/// Checks a [`MomentumCycle`]'s bounds.
fn check_cycle(owner: &'static str, c: &Option<MomentumCycle>) -> Result<(), OptimError> {
    if let Some(m) = c {
        check_min(owner, "base_momentum", m.base_momentum, 0.0, "must be finite and >= 0")?;
        check_min(owner, "max_momentum", m.max_momentum, 0.0, "must be finite and >= 0")?;
    }
    Ok(())
}

/// CyclicLR's `(scale_factor, amplitude)` at step `t`: the rate is
/// `base + (max − base) · scale · amplitude`, the momentum
/// `max_m − (max_m − base_m) · scale · amplitude`.
fn cyclic_shape(t: usize, up: usize, down: Option<usize>, mode: CyclicMode, gamma: f64) -> (f64, f64) {
    let tf = t as f64;
    let up = up as f64;
    let total = up + down.map_or(up, |d| d as f64);
    let ratio = up / total;
    let cycle = (1.0 + tf / total).floor();
    let x = 1.0 + tf / total - cycle;
    let scale = if x <= ratio { x / ratio } else { (x - 1.0) / (ratio - 1.0) };
    let amp = match mode {
        CyclicMode::Triangular => 1.0,
        CyclicMode::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
        CyclicMode::ExpRange => gamma.powf(tf),
    };
    (scale, amp)
}

/// OneCycleLR's phase end steps (torch's `end_step` of each phase).
fn one_cycle_ends(total_steps: usize, pct_start: f64, three_phase: bool) -> Vec<f64> {
    let n = total_steps as f64;
    if three_phase {
        vec![pct_start * n - 1.0, 2.0 * pct_start * n - 2.0, n - 1.0]
    } else {
        vec![pct_start * n - 1.0, n - 1.0]
    }
}

/// The phase holding step `tf` and how far into it (torch's `pct`).
fn one_cycle_phase(ends: &[f64], tf: f64) -> (usize, f64) {
    let mut start_step = 0.0;
    for (i, &end_step) in ends.iter().enumerate() {
        if tf <= end_step || i == ends.len() - 1 {
            return (i, (tf - start_step) / (end_step - start_step));
        }
        start_step = end_step;
    }
    (ends.len() - 1, f64::NAN)
}

/// torch's `_annealing_cos` / `_annealing_linear` from `start` to `end` at `pct`.
fn anneal(strategy: Anneal, start: f64, end: f64, pct: f64) -> f64 {
    match strategy {
        Anneal::Cos => end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0),
        Anneal::Linear => (end - start) * pct + start,
    }
}

/// Something that gives a learning rate per step: [`Scheduler`] and [`LambdaLr`].
pub trait LrSchedule {
    /// The rate in force for the coming optimizer step.
    fn lr(&self) -> f64;
    /// Moves to the next step and returns its rate.
    fn step(&mut self) -> Result<f64, OptimError>;
    /// The momentum in force for the coming step, when the schedule cycles
    /// it (`None`, the default, otherwise).
    fn momentum(&self) -> Option<f64> {
        None
    }
    /// Sets the optimizer's rate to [`LrSchedule::lr`] (each group keeps its
    /// ratio to the optimizer's base rate, see [`Optimizer::set_lr`]) and,
    /// when the schedule cycles momentum, its momentum
    /// ([`Optimizer::set_momentum`]; an optimizer without one is an error).
    fn apply(&self, opt: &mut dyn Optimizer) -> Result<(), OptimError> {
        opt.set_lr(self.lr());
        match self.momentum() {
            Some(m) => opt.set_momentum(m),
            None => Ok(()),
        }
    }
}

/// A [`Schedule`] with its position: the whole value (config, base rate,
/// step count, current rate) derives serde, so it goes into a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scheduler {
    schedule: Schedule,
    base_lr: f64,
    epoch: usize,
    lr: f64,
}

impl Scheduler {
    /// A scheduler at step 0 for base rate `base_lr` (the optimizer's `lr`).
    pub fn new(schedule: Schedule, base_lr: f64) -> Result<Self, OptimError> {
        schedule.validate()?;
        check_min(schedule.name(), "base_lr", base_lr, 0.0, "must be finite and >= 0")?;
        let lr = schedule.lr_at(base_lr, 0)?;
        Ok(Scheduler { schedule, base_lr, epoch: 0, lr })
    }

    /// The rate in force for the coming optimizer step.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Steps taken (torch's `last_epoch`).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The base rate.
    pub fn base_lr(&self) -> f64 {
        self.base_lr
    }

    /// The momentum in force for the coming step when the schedule cycles it
    /// (`cycle_momentum`), else `None`. Set it with [`Optimizer::set_momentum`]
    /// together with the rate ([`LrSchedule::apply`] does both).
    pub fn momentum(&self) -> Option<f64> {
        self.schedule.momentum_at(self.epoch)
    }

    /// Advances one step and returns the new rate (an error past a OneCycle's end).
    pub fn step(&mut self) -> Result<f64, OptimError> {
        let lr = self.schedule.next_lr(self.base_lr, self.lr, self.epoch + 1)?;
        self.epoch += 1;
        self.lr = lr;
        Ok(lr)
    }
}

impl LrSchedule for Scheduler {
    fn lr(&self) -> f64 {
        self.lr
    }

    fn step(&mut self) -> Result<f64, OptimError> {
        Scheduler::step(self)
    }

    fn momentum(&self) -> Option<f64> {
        Scheduler::momentum(self)
    }
}
