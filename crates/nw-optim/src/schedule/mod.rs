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
    /// as torch overrides the optimizer's rate). Only the rate cycles
    /// (torch's `cycle_momentum=False`).
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
    },
    /// SequentialLR: `schedules[i]` runs from `milestones[i − 1]` (restarting
    /// its own count at 0 there) until `milestones[i]`.
    Sequential {
        /// The schedules, one more than the milestones.
        schedules: Vec<Schedule>,
        /// Ascending switch points.
        milestones: Vec<usize>,
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
            Schedule::Cyclic { base_lr, max_lr, step_size_up, gamma, .. } => {
                nonneg("base_lr", *base_lr)?;
                nonneg("max_lr", *max_lr)?;
                at_least_one("step_size_up", *step_size_up)?;
                check_min(o, "gamma", *gamma, 0.0, "must be finite and >= 0")
            }
            Schedule::OneCycle { max_lr, total_steps, pct_start, div_factor, final_div_factor, .. } => {
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
            Schedule::Cyclic { base_lr: lo, max_lr, step_size_up, step_size_down, mode, gamma } => {
                let up = *step_size_up as f64;
                let total = up + step_size_down.unwrap_or(*step_size_up) as f64;
                let ratio = up / total;
                let cycle = (1.0 + tf / total).floor();
                let x = 1.0 + tf / total - cycle;
                let scale = if x <= ratio { x / ratio } else { (x - 1.0) / (ratio - 1.0) };
                let height = (max_lr - lo) * scale;
                let amp = match mode {
                    CyclicMode::Triangular => 1.0,
                    CyclicMode::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
                    CyclicMode::ExpRange => gamma.powf(tf),
                };
                lo + height * amp
            }
            Schedule::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                anneal_strategy,
                div_factor,
                final_div_factor,
                three_phase,
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
                let n = *total_steps as f64;
                let up_end = pct_start * n - 1.0;
                let phases: &[(f64, f64, f64)] = if *three_phase {
                    &[
                        (up_end, initial, *max_lr),
                        (2.0 * pct_start * n - 2.0, *max_lr, initial),
                        (n - 1.0, initial, min),
                    ]
                } else {
                    &[(up_end, initial, *max_lr), (n - 1.0, *max_lr, min)]
                };
                let mut start_step = 0.0;
                let mut lr = f64::NAN;
                for (i, &(end_step, start, end)) in phases.iter().enumerate() {
                    if tf <= end_step || i == phases.len() - 1 {
                        let pct = (tf - start_step) / (end_step - start_step);
                        lr = match anneal_strategy {
                            Anneal::Cos => end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0),
                            Anneal::Linear => (end - start) * pct + start,
                        };
                        break;
                    }
                    start_step = end_step;
                }
                lr
            }
            Schedule::Sequential { schedules, milestones } => {
                // bisect_right: the schedule whose span holds t, counted from its milestone
                let idx = milestones.iter().filter(|&&m| m <= t).count();
                let offset = if idx == 0 { 0 } else { milestones[idx - 1] };
                schedules[idx].lr_at(base_lr, t - offset)?
            }
        })
    }
}

/// Something that gives a learning rate per step: [`Scheduler`] and [`LambdaLr`].
pub trait LrSchedule {
    /// The rate in force for the coming optimizer step.
    fn lr(&self) -> f64;
    /// Moves to the next step and returns its rate.
    fn step(&mut self) -> Result<f64, OptimError>;
    /// Sets the optimizer's rate to [`LrSchedule::lr`] (each group keeps its
    /// ratio to the optimizer's base rate, see [`Optimizer::set_lr`]).
    fn apply(&self, opt: &mut dyn Optimizer) {
        opt.set_lr(self.lr());
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

    /// Advances one step and returns the new rate (an error past a OneCycle's end).
    pub fn step(&mut self) -> Result<f64, OptimError> {
        let lr = self.schedule.lr_at(self.base_lr, self.epoch + 1)?;
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
}
