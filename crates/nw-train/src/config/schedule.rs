//! The learning-rate schedule of a run ([`ScheduleConfig`]): every
//! nw-optim schedule, with counts in epochs (resolved to optimizer steps from
//! the run's length) and the run-relative templates of the first version.

use nw_optim::schedule::{
    Anneal, CyclicMode, MomentumCycle, PlateauConfig, ReduceLrOnPlateau, Schedule, Scheduler,
};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::trainer::LrPolicy;

/// CyclicLR's amplitude policy as written in configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CyclicModeName {
    /// Constant amplitude.
    #[default]
    Triangular,
    /// Amplitude halved each cycle.
    Triangular2,
    /// Amplitude x gamma^step.
    ExpRange,
}

/// How a schedule's interpolation runs (OneCycleLR's `anneal_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AnnealName {
    /// Cosine.
    #[default]
    Cos,
    /// Linear.
    Linear,
}

/// The schedule, tagged by `kind`. Counts named `*_epochs` or documented in
/// epochs are converted to optimizer steps (`epochs x batches per epoch`) for
/// the per-step schedules; the per-epoch ones advance once an epoch, as
/// torch's do when `scheduler.step()` is called at each epoch end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// A constant rate.
    None,
    /// ConstantLR, per epoch: `lr x factor` for `total_iters` epochs, then `lr`.
    Constant {
        /// Multiplier while active, in [0, 1] (torch default 1/3).
        #[serde(default = "third")]
        factor: f64,
        /// Epochs it lasts (torch default 5).
        #[serde(default = "five")]
        total_iters: usize,
    },
    /// StepLR, per epoch: `lr x gamma^floor(epoch / step_size)`.
    Step {
        /// Period in epochs (default 10).
        #[serde(default = "ten")]
        step_size: usize,
        /// Decay factor (default 0.5).
        #[serde(default = "half")]
        gamma: f64,
    },
    /// MultiStepLR, per epoch: `lr x gamma^(milestones passed)`.
    Multistep {
        /// Epochs at which the rate decays (default none).
        #[serde(default)]
        milestones: Vec<usize>,
        /// Decay factor (torch default 0.1).
        #[serde(default = "tenth")]
        gamma: f64,
    },
    /// ExponentialLR, per epoch: `lr x gamma^epoch`.
    Exponential {
        /// Decay factor (default 0.5).
        #[serde(default = "half")]
        gamma: f64,
    },
    /// CosineAnnealingLR per step over the whole run, down to `min_lr`.
    Cosine {
        /// Lowest rate (default 0).
        #[serde(default)]
        min_lr: f64,
    },
    /// Linear warm-up (from 1% of the rate) for `warmup_epochs`, then cosine to `min_lr`; per step.
    WarmupCosine {
        /// Warm-up epochs (default 2).
        #[serde(default = "two")]
        warmup_epochs: usize,
        /// Lowest rate (default 0).
        #[serde(default)]
        min_lr: f64,
    },
    /// CosineAnnealingWarmRestarts (SGDR) per step: first period `t_0` epochs, growing by `t_mult`.
    WarmRestarts {
        /// First period in epochs (default 10).
        #[serde(default = "ten")]
        t_0: usize,
        /// Period growth, >= 1 (default 1).
        #[serde(default = "one")]
        t_mult: usize,
        /// Lowest rate (default 0).
        #[serde(default)]
        min_lr: f64,
    },
    /// LinearLR, per epoch: factor from `start_factor` to `end_factor` over `total_iters` epochs.
    Linear {
        /// Start factor in (0, 1] (torch default 1/3).
        #[serde(default = "third")]
        start_factor: f64,
        /// End factor in [0, 1] (default 1).
        #[serde(default = "onef")]
        end_factor: f64,
        /// Epochs (torch default 5).
        #[serde(default = "five")]
        total_iters: usize,
    },
    /// PolynomialLR, per epoch: `lr (1 - min(epoch, T)/T)^power`.
    Polynomial {
        /// Epochs T to reach 0 (default: the whole run).
        #[serde(default)]
        total_iters: Option<usize>,
        /// Exponent (default 1).
        #[serde(default = "onef")]
        power: f64,
    },
    /// CyclicLR (Smith), per step: a triangle between `base_lr` and `max_lr`.
    Cyclic {
        /// Lower bound (default: the optimizer's rate / 10).
        #[serde(default)]
        base_lr: Option<f64>,
        /// Upper bound (default: the optimizer's rate).
        #[serde(default)]
        max_lr: Option<f64>,
        /// Steps going up (default: 2 epochs of steps).
        #[serde(default)]
        step_size_up: Option<usize>,
        /// Steps going down (default: as up).
        #[serde(default)]
        step_size_down: Option<usize>,
        /// Amplitude policy (default triangular).
        #[serde(default)]
        mode: CyclicModeName,
        /// gamma of `exp_range` (default 1).
        #[serde(default = "onef")]
        gamma: f64,
        /// Cycle the optimizer's momentum (SGD/RMSprop `momentum`, Adam-family
        /// beta1) inversely to the rate, as torch's `cycle_momentum=True`
        /// (default false here; the optimizer must have momentum).
        #[serde(default)]
        cycle_momentum: bool,
        /// Momentum at the rate's peak (torch default 0.8).
        #[serde(default = "p8")]
        base_momentum: f64,
        /// Momentum at the rate's low points (torch default 0.9).
        #[serde(default = "p9")]
        max_momentum: f64,
    },
    /// OneCycleLR (Smith & Topin) per step over the whole run.
    Onecycle {
        /// Peak rate (default: the optimizer's rate).
        #[serde(default)]
        max_lr: Option<f64>,
        /// Fraction of the run spent increasing (default 0.3).
        #[serde(default = "pct")]
        pct_start: f64,
        /// Interpolation (default cos).
        #[serde(default)]
        anneal_strategy: AnnealName,
        /// Initial rate = max_lr / div_factor (default 25).
        #[serde(default = "twenty_five")]
        div_factor: f64,
        /// Final rate = initial / final_div_factor (default 1e4).
        #[serde(default = "ten_thousand")]
        final_div_factor: f64,
        /// Three phases (default false).
        #[serde(default)]
        three_phase: bool,
        /// Cycle the optimizer's momentum (SGD/RMSprop `momentum`, Adam-family
        /// beta1) inversely to the rate, as torch's `cycle_momentum=True`
        /// (default false here; the optimizer must have momentum).
        #[serde(default)]
        cycle_momentum: bool,
        /// Momentum at the rate's peak (torch default 0.85).
        #[serde(default = "p85")]
        base_momentum: f64,
        /// Momentum at the rate's low points (torch default 0.95).
        #[serde(default = "p95")]
        max_momentum: f64,
    },
    /// ReduceLROnPlateau on the validation loss, checked each epoch.
    Plateau {
        /// Factor applied on a plateau (default 0.5).
        #[serde(default = "half")]
        factor: f64,
        /// Epochs without improvement before reducing (default 3).
        #[serde(default = "three")]
        patience: usize,
        /// Lowest rate (default 0).
        #[serde(default)]
        min_lr: f64,
        /// Relative improvement that counts (torch default 1e-4).
        #[serde(default = "threshold")]
        threshold: f64,
        /// Epochs to wait after a reduction (default 0).
        #[serde(default)]
        cooldown: usize,
    },
    /// MultiplicativeLR with a constant factor, per epoch: `lr x factor^epoch`
    /// computed as torch does, one multiplication per epoch.
    Multiplicative {
        /// Factor per epoch, finite and >= 0 (default 0.95).
        #[serde(default = "p95")]
        factor: f64,
    },
    /// SWALR (torch.optim.swa_utils), per epoch: anneal from the rate to
    /// `swa_lr` over `anneal_epochs` epochs, then hold it (from the first
    /// epoch).
    Swalr {
        /// The rate annealed to (default: the optimizer's rate / 10).
        #[serde(default)]
        swa_lr: Option<f64>,
        /// Epochs of annealing (torch default 10).
        #[serde(default = "ten")]
        anneal_epochs: usize,
        /// cos or linear (torch default cos).
        #[serde(default)]
        anneal_strategy: AnnealName,
    },
    /// ChainedScheduler of nw-optim schedules written out in full (like
    /// `custom`), all stepping every step (per_step) or every epoch.
    Chained {
        /// The schedules, in order (default: a LinearLR warm-up from 0.1 x
        /// over 5 epochs chained with ExponentialLR gamma 0.95, written
        /// `[{ Linear = { start_factor = 0.1, end_factor = 1.0, total_iters = 5 } }, { Exponential = { gamma = 0.95 } }]`).
        #[serde(default = "default_chain")]
        schedules: Vec<Schedule>,
        /// Advance after every optimizer step (default false: after every epoch).
        #[serde(default)]
        per_step: bool,
    },
    /// Any nw-optim [`Schedule`] written out in full (SequentialLR, a
    /// ChainedScheduler, ...), counts in optimizer steps when `per_step`, in
    /// epochs otherwise.
    Custom {
        /// The schedule, as nw-optim serialises it (e.g. `{ Step = { step_size = 3, gamma = 0.1 } }`).
        schedule: Schedule,
        /// Advance after every optimizer step (default false: after every epoch).
        #[serde(default)]
        per_step: bool,
    },
}

/// Every `schedule.kind`, in the order of [`ScheduleConfig`].
pub const SCHEDULES: &[&str] = &[
    "none",
    "constant",
    "step",
    "multistep",
    "exponential",
    "cosine",
    "warmup-cosine",
    "warm-restarts",
    "linear",
    "polynomial",
    "cyclic",
    "onecycle",
    "plateau",
    "custom",
    "multiplicative",
    "swalr",
    "chained",
];

fn third() -> f64 {
    1.0 / 3.0
}
fn five() -> usize {
    5
}
fn ten() -> usize {
    10
}
fn two() -> usize {
    2
}
fn one() -> usize {
    1
}
fn three() -> usize {
    3
}
fn onef() -> f64 {
    1.0
}
fn half() -> f64 {
    0.5
}
fn tenth() -> f64 {
    0.1
}
fn pct() -> f64 {
    0.3
}
fn twenty_five() -> f64 {
    25.0
}
fn ten_thousand() -> f64 {
    1e4
}
fn threshold() -> f64 {
    1e-4
}
fn p8() -> f64 {
    0.8
}
fn p85() -> f64 {
    0.85
}
fn p9() -> f64 {
    0.9
}
fn p95() -> f64 {
    0.95
}

fn default_chain() -> Vec<Schedule> {
    vec![
        Schedule::Linear { start_factor: 0.1, end_factor: 1.0, total_iters: 5 },
        Schedule::Exponential { gamma: 0.95 },
    ]
}

fn cycle(on: bool, base_momentum: f64, max_momentum: f64) -> Option<MomentumCycle> {
    on.then_some(MomentumCycle { base_momentum, max_momentum })
}

fn anneal_of(a: AnnealName) -> Anneal {
    match a {
        AnnealName::Cos => Anneal::Cos,
        AnnealName::Linear => Anneal::Linear,
    }
}

impl Default for ScheduleConfig {
    /// Cosine annealing over the whole run, per step.
    fn default() -> Self {
        ScheduleConfig::Cosine { min_lr: 0.0 }
    }
}

impl ScheduleConfig {
    /// The `kind` name.
    pub fn kind(&self) -> &'static str {
        let i = match self {
            ScheduleConfig::None => 0,
            ScheduleConfig::Constant { .. } => 1,
            ScheduleConfig::Step { .. } => 2,
            ScheduleConfig::Multistep { .. } => 3,
            ScheduleConfig::Exponential { .. } => 4,
            ScheduleConfig::Cosine { .. } => 5,
            ScheduleConfig::WarmupCosine { .. } => 6,
            ScheduleConfig::WarmRestarts { .. } => 7,
            ScheduleConfig::Linear { .. } => 8,
            ScheduleConfig::Polynomial { .. } => 9,
            ScheduleConfig::Cyclic { .. } => 10,
            ScheduleConfig::Onecycle { .. } => 11,
            ScheduleConfig::Plateau { .. } => 12,
            ScheduleConfig::Custom { .. } => 13,
            ScheduleConfig::Multiplicative { .. } => 14,
            ScheduleConfig::Swalr { .. } => 15,
            ScheduleConfig::Chained { .. } => 16,
        };
        SCHEDULES[i]
    }

    /// The schedule `kind` with its defaults (`None` for an unknown kind or
    /// one with a required key: `multistep`, `custom`).
    pub fn default_for(kind: &str) -> Option<Self> {
        serde_json::from_value(serde_json::json!({ "kind": kind })).ok()
    }

    /// The policy this schedule gives a run of `epochs` epochs of
    /// `steps_per_epoch` optimizer steps at base rate `lr`.
    pub fn policy(&self, lr: f64, epochs: u64, steps_per_epoch: usize) -> Result<Option<LrPolicy>> {
        let spe = steps_per_epoch.max(1);
        let epochs_us = usize::try_from(epochs).unwrap_or(usize::MAX);
        let total = epochs_us.saturating_mul(spe).max(1);
        let steps = |e: usize| e.saturating_mul(spe).max(1);
        let per_step = |s: Schedule| -> Result<Option<LrPolicy>> {
            Ok(Some(LrPolicy::PerStep(Scheduler::new(s, lr).map_err(bad)?)))
        };
        let per_epoch = |s: Schedule| -> Result<Option<LrPolicy>> {
            Ok(Some(LrPolicy::PerEpoch(Scheduler::new(s, lr).map_err(bad)?)))
        };
        match self {
            ScheduleConfig::None => Ok(None),
            ScheduleConfig::Constant { factor, total_iters } => {
                per_epoch(Schedule::Constant { factor: *factor, total_iters: *total_iters })
            }
            ScheduleConfig::Step { step_size, gamma } => {
                per_epoch(Schedule::Step { step_size: *step_size, gamma: *gamma })
            }
            ScheduleConfig::Multistep { milestones, gamma } => {
                per_epoch(Schedule::MultiStep { milestones: milestones.clone(), gamma: *gamma })
            }
            ScheduleConfig::Exponential { gamma } => per_epoch(Schedule::Exponential { gamma: *gamma }),
            ScheduleConfig::Cosine { min_lr } => {
                per_step(Schedule::CosineAnnealing { t_max: total, eta_min: *min_lr })
            }
            ScheduleConfig::WarmupCosine { warmup_epochs, min_lr } => {
                let warm = steps(*warmup_epochs).clamp(1, total.saturating_sub(1).max(1));
                per_step(Schedule::Sequential {
                    schedules: vec![
                        Schedule::Linear { start_factor: 0.01, end_factor: 1.0, total_iters: warm },
                        Schedule::CosineAnnealing { t_max: (total - warm).max(1), eta_min: *min_lr },
                    ],
                    milestones: vec![warm],
                })
            }
            ScheduleConfig::WarmRestarts { t_0, t_mult, min_lr } => {
                per_step(Schedule::CosineWarmRestarts { t_0: steps(*t_0), t_mult: *t_mult, eta_min: *min_lr })
            }
            ScheduleConfig::Linear { start_factor, end_factor, total_iters } => per_epoch(Schedule::Linear {
                start_factor: *start_factor,
                end_factor: *end_factor,
                total_iters: *total_iters,
            }),
            ScheduleConfig::Polynomial { total_iters, power } => per_epoch(Schedule::Polynomial {
                total_iters: total_iters.unwrap_or(epochs_us.max(1)),
                power: *power,
            }),
            ScheduleConfig::Cyclic {
                base_lr,
                max_lr,
                step_size_up,
                step_size_down,
                mode,
                gamma,
                cycle_momentum,
                base_momentum,
                max_momentum,
            } => per_step(Schedule::Cyclic {
                base_lr: base_lr.unwrap_or(lr / 10.0),
                max_lr: max_lr.unwrap_or(lr),
                step_size_up: step_size_up.unwrap_or_else(|| steps(2)),
                step_size_down: *step_size_down,
                mode: match mode {
                    CyclicModeName::Triangular => CyclicMode::Triangular,
                    CyclicModeName::Triangular2 => CyclicMode::Triangular2,
                    CyclicModeName::ExpRange => CyclicMode::ExpRange,
                },
                gamma: *gamma,
                cycle_momentum: cycle(*cycle_momentum, *base_momentum, *max_momentum),
            }),
            ScheduleConfig::Onecycle {
                max_lr,
                pct_start,
                anneal_strategy,
                div_factor,
                final_div_factor,
                three_phase,
                cycle_momentum,
                base_momentum,
                max_momentum,
            } => per_step(Schedule::OneCycle {
                max_lr: max_lr.unwrap_or(lr),
                // torch counts the steps it may take; the run takes `total`.
                total_steps: total + 1,
                pct_start: *pct_start,
                anneal_strategy: anneal_of(*anneal_strategy),
                div_factor: *div_factor,
                final_div_factor: *final_div_factor,
                three_phase: *three_phase,
                cycle_momentum: cycle(*cycle_momentum, *base_momentum, *max_momentum),
            }),
            ScheduleConfig::Plateau { factor, patience, min_lr, threshold, cooldown } => {
                let cfg = PlateauConfig {
                    factor: *factor,
                    patience: *patience,
                    min_lr: *min_lr,
                    threshold: *threshold,
                    cooldown: *cooldown,
                    ..Default::default()
                };
                Ok(Some(LrPolicy::Plateau(ReduceLrOnPlateau::new(cfg, lr).map_err(bad)?)))
            }
            ScheduleConfig::Multiplicative { factor } => {
                per_epoch(Schedule::Multiplicative { factor: *factor })
            }
            ScheduleConfig::Swalr { swa_lr, anneal_epochs, anneal_strategy } => per_epoch(Schedule::Swa {
                swa_lr: swa_lr.unwrap_or(lr / 10.0),
                anneal_epochs: *anneal_epochs,
                anneal_strategy: anneal_of(*anneal_strategy),
            }),
            ScheduleConfig::Chained { schedules, per_step: true } => {
                per_step(Schedule::Chained { schedules: schedules.clone() })
            }
            ScheduleConfig::Chained { schedules, per_step: false } => {
                per_epoch(Schedule::Chained { schedules: schedules.clone() })
            }
            ScheduleConfig::Custom { schedule, per_step: true } => per_step(schedule.clone()),
            ScheduleConfig::Custom { schedule, per_step: false } => per_epoch(schedule.clone()),
        }
    }
}

/// A schedule's refusal, naming the configuration key (`schedule.min_lr`)
/// besides torch's name for it (`eta_min`).
fn bad(e: nw_optim::OptimError) -> TrainError {
    if let nw_optim::OptimError::InvalidHyper { owner, name, value, reason } = &e {
        let key = match *name {
            "eta_min" => "min_lr",
            "T_0" => "t_0",
            "T_mult" => "t_mult",
            n => n,
        };
        return TrainError::Config(format!("schedule.{key} = {value}: {reason} ({owner} {name})"));
    }
    TrainError::Config(format!("schedule: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_builds_a_policy() {
        for kind in SCHEDULES {
            let c = match *kind {
                "multistep" => ScheduleConfig::Multistep { milestones: vec![2, 4], gamma: 0.1 },
                "custom" => ScheduleConfig::Custom {
                    schedule: Schedule::Step { step_size: 3, gamma: 0.1 },
                    per_step: false,
                },
                k => ScheduleConfig::default_for(k).unwrap_or_else(|| panic!("{k} has defaults")),
            };
            assert_eq!(c.kind(), *kind);
            let p = c.policy(0.1, 10, 7).unwrap();
            assert_eq!(p.is_none(), *kind == "none", "{kind}");
            let json = serde_json::to_value(&c).unwrap();
            assert_eq!(json["kind"], *kind);
            assert_eq!(serde_json::from_value::<ScheduleConfig>(json).unwrap(), c);
        }
    }

    #[test]
    fn bad_values_name_the_schedule() {
        let e = ScheduleConfig::Step { step_size: 0, gamma: 0.5 }.policy(0.1, 10, 7).unwrap_err();
        assert!(e.to_string().contains("step_size"), "{e}");
    }
}
