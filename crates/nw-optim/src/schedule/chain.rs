//! torch's chainable (recursive) schedule forms: the rate at step `t` from
//! the rate in force at step `t − 1`, as `scheduler.get_lr()` computes it
//! from `group["lr"]`. ChainedScheduler, MultiplicativeLR and SWALR step by
//! these; the other schedules use their closed forms
//! ([`Schedule::lr_at`]) when alone.

use std::f64::consts::PI;

use super::{Anneal, Schedule};
use crate::error::OptimError;

/// SWALR's α at step `t`: `anneal(min(1, t / max(1, anneal_epochs)))`,
/// where 0 anneal epochs count every step (the first too) as done.
pub(super) fn swa_alpha(strategy: Anneal, anneal_epochs: usize, t: usize) -> f64 {
    let step = if anneal_epochs == 0 { t.max(1) } else { t };
    swa_alpha_f(strategy, anneal_epochs, step as f64)
}

fn swa_alpha_f(strategy: Anneal, anneal_epochs: usize, step: f64) -> f64 {
    let x = (step / anneal_epochs.max(1) as f64).clamp(0.0, 1.0);
    match strategy {
        Anneal::Cos => (1.0 - (PI * x).cos()) / 2.0,
        Anneal::Linear => x,
    }
}

impl Schedule {
    /// torch's `get_lr()` of this schedule at `last_epoch = t` when the
    /// group's rate is `lr` (the previous step's rate, or the rate the
    /// previous member of a chain left) and its base rate `base_lr`. At
    /// `t = 0` this is the change the scheduler makes when it is built
    /// (ConstantLR and LinearLR scale the rate; most leave it).
    pub(super) fn chain_lr(&self, base_lr: f64, lr: f64, t: usize) -> Result<f64, OptimError> {
        let tf = t as f64;
        Ok(match self {
            Schedule::Constant { factor, total_iters } => {
                if t == 0 {
                    lr * factor
                } else if t == *total_iters {
                    lr * (1.0 / factor)
                } else {
                    lr
                }
            }
            Schedule::Step { step_size, gamma } => {
                if t == 0 || !t.is_multiple_of(*step_size) {
                    lr
                } else {
                    lr * gamma
                }
            }
            Schedule::MultiStep { milestones, gamma } => {
                let hits = milestones.iter().filter(|&&m| m == t).count();
                if hits == 0 { lr } else { lr * gamma.powf(hits as f64) }
            }
            Schedule::Exponential { gamma } => {
                if t == 0 {
                    lr
                } else {
                    lr * gamma
                }
            }
            Schedule::CosineAnnealing { t_max, eta_min } => {
                let tm = *t_max as f64;
                if t == 0 {
                    lr
                } else if (t - 1 + t_max).is_multiple_of(2 * t_max) {
                    // (t − 1 − T_max) mod 2 T_max == 0: the bottom of a period
                    lr + (base_lr - eta_min) * (1.0 - (PI / tm).cos()) / 2.0
                } else {
                    (1.0 + (PI * tf / tm).cos()) / (1.0 + (PI * (tf - 1.0) / tm).cos()) * (lr - eta_min)
                        + eta_min
                }
            }
            Schedule::Linear { start_factor, end_factor, total_iters } => {
                if t == 0 {
                    lr * start_factor
                } else if t > *total_iters {
                    lr
                } else {
                    let d = end_factor - start_factor;
                    lr * (1.0 + d / (*total_iters as f64 * start_factor + (tf - 1.0) * d))
                }
            }
            Schedule::Polynomial { total_iters, power } => {
                if t == 0 || t > *total_iters {
                    lr
                } else {
                    let n = *total_iters as f64;
                    lr * ((1.0 - tf / n) / (1.0 - (tf - 1.0) / n)).powf(*power)
                }
            }
            Schedule::Multiplicative { factor } => {
                if t > 0 {
                    lr * factor
                } else {
                    lr
                }
            }
            Schedule::Swa { swa_lr, anneal_epochs, anneal_strategy } => {
                // torch recovers the pre-annealing rate from the current one
                let step = if *anneal_epochs == 0 { t.max(1) } else { t } as f64;
                let prev_alpha = swa_alpha_f(*anneal_strategy, *anneal_epochs, step - 1.0);
                let prev =
                    if prev_alpha == 1.0 { *swa_lr } else { (lr - prev_alpha * swa_lr) / (1.0 - prev_alpha) };
                let alpha = swa_alpha_f(*anneal_strategy, *anneal_epochs, step);
                swa_lr * alpha + prev * (1.0 - alpha)
            }
            Schedule::Chained { schedules } => {
                let mut lr = lr;
                for s in schedules {
                    lr = s.chain_lr(base_lr, lr, t)?;
                }
                lr
            }
            Schedule::Sequential { schedules, milestones } => {
                // SequentialLR steps its active member; at a milestone torch
                // restarts the new one at its step 0 (closed form).
                let idx = milestones.iter().filter(|&&m| m <= t).count();
                let offset = if idx == 0 { 0 } else { milestones[idx - 1] };
                if idx > 0 && t == offset {
                    schedules[idx].lr_at(base_lr, 0)?
                } else {
                    schedules[idx].chain_lr(base_lr, lr, t - offset)?
                }
            }
            // these overwrite the rate from their own bounds or base rate
            Schedule::CosineWarmRestarts { .. } | Schedule::Cyclic { .. } | Schedule::OneCycle { .. } => {
                self.lr_at(base_lr, t)?
            }
        })
    }
}
