//! The error type of optimizers, schedules and clipping.

use thiserror::Error;

/// What went wrong building or stepping an optimizer, a schedule or a clip.
/// Every variant names what it is about; none of these is ever a panic.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum OptimError {
    /// A hyper-parameter is outside its valid range.
    #[error("{owner}: invalid {name} = {value}: {reason}")]
    InvalidHyper {
        /// The optimizer, schedule or function (`"Adam"`, `"StepLR"`, `"clip_grad_norm"`).
        owner: &'static str,
        /// The hyper-parameter's name, as torch spells it (`"betas[0]"`, `"lr"`).
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// What the valid range is.
        reason: &'static str,
    },
    /// A gradient's shape differs from its parameter's.
    #[error(
        "{optimizer}: gradient shape {grad:?} does not match parameter shape {param:?} (group {group}, position {index})"
    )]
    GradShape {
        /// The optimizer.
        optimizer: &'static str,
        /// Group index of the parameter.
        group: usize,
        /// Position of the parameter in its group.
        index: usize,
        /// The parameter's shape.
        param: Vec<usize>,
        /// The gradient's shape.
        grad: Vec<usize>,
    },
    /// The same parameter was given twice (in one group or in two).
    #[error("{optimizer}: parameter {param} appears more than once (group {group}, position {index})")]
    DuplicateParam {
        /// The optimizer.
        optimizer: &'static str,
        /// The parameter, as `Param#id[shape]`.
        param: String,
        /// Group of the second occurrence.
        group: usize,
        /// Position of the second occurrence.
        index: usize,
    },
    /// A state dict does not fit this optimizer or schedule.
    #[error("{owner}: cannot load state: {reason}")]
    State {
        /// The optimizer or schedule.
        owner: &'static str,
        /// What did not fit.
        reason: String,
    },
    /// The total gradient norm is NaN or infinite (`clip_grad_norm` with `error_if_nonfinite`).
    #[error("clip_grad_norm: the total {norm_type}-norm of the gradients is non-finite ({norm})")]
    NonFiniteNorm {
        /// The norm type.
        norm_type: f64,
        /// The total norm found.
        norm: f64,
    },
    /// A row-sparse optimizer (SparseAdam) was given a dense gradient: one
    /// without touched rows ([`nw_autograd::Grads::rows`]), as torch raises
    /// for a dense `grad`. Nothing was updated.
    #[error(
        "{optimizer} does not support dense gradients: parameter {param} (group {group}, position {index}) has one; only row-sparse gradients (an Embedding built with sparse = true) can be stepped, use Adam for dense parameters"
    )]
    DenseGrad {
        /// The optimizer.
        optimizer: &'static str,
        /// The parameter, as `Param#id[shape]`.
        param: String,
        /// Group index of the parameter.
        group: usize,
        /// Position of the parameter in its group.
        index: usize,
    },
    /// A parameter's shape is one the optimizer cannot take (Muon: not 2-D).
    #[error("{optimizer}: cannot optimize a parameter of shape {shape:?}: {reason}")]
    ParamShape {
        /// The optimizer.
        optimizer: &'static str,
        /// The parameter's shape.
        shape: Vec<usize>,
        /// What shapes the optimizer takes.
        reason: &'static str,
    },
    /// `step(&grads)` was called on an optimizer that must re-evaluate the
    /// loss (LBFGS): it needs [`crate::Optimizer::step_closure`].
    #[error(
        "{optimizer}: needs a closure that re-evaluates the loss (step_closure), not one set of gradients"
    )]
    ClosureRequired {
        /// The optimizer.
        optimizer: &'static str,
    },
    /// The closure given to [`crate::Optimizer::step_closure`] failed.
    #[error("the loss closure failed: {0}")]
    Closure(String),
    /// A schedule was stepped past its last step (OneCycleLR, as torch raises).
    #[error("{schedule}: stepped {step} times, but total_steps is {total_steps}")]
    ScheduleFinished {
        /// The schedule.
        schedule: &'static str,
        /// The step asked for.
        step: usize,
        /// The schedule's length.
        total_steps: usize,
    },
    /// A schedule cycles momentum (`cycle_momentum`) but the optimizer has
    /// no momentum or betas, or cannot change it (SGD built without momentum).
    #[error("{optimizer}: has no momentum to set ({reason})")]
    NoMomentum {
        /// The optimizer.
        optimizer: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// Checks `lo <= value` (rejects NaN).
pub(crate) fn check_min(
    owner: &'static str,
    name: &'static str,
    value: f64,
    lo: f64,
    reason: &'static str,
) -> Result<(), OptimError> {
    if value >= lo && value.is_finite() {
        Ok(())
    } else {
        Err(OptimError::InvalidHyper { owner, name, value, reason })
    }
}

/// Checks `lo <= value < hi` (rejects NaN).
pub(crate) fn check_half_open(
    owner: &'static str,
    name: &'static str,
    value: f64,
    lo: f64,
    hi: f64,
    reason: &'static str,
) -> Result<(), OptimError> {
    if value >= lo && value < hi {
        Ok(())
    } else {
        Err(OptimError::InvalidHyper { owner, name, value, reason })
    }
}

/// Checks `lo <= value <= hi` (rejects NaN).
pub(crate) fn check_closed(
    owner: &'static str,
    name: &'static str,
    value: f64,
    lo: f64,
    hi: f64,
    reason: &'static str,
) -> Result<(), OptimError> {
    if value >= lo && value <= hi {
        Ok(())
    } else {
        Err(OptimError::InvalidHyper { owner, name, value, reason })
    }
}

/// Checks `0 < value` and finite (torch's `if not 0.0 < lr` of SparseAdam).
pub(crate) fn check_positive(owner: &'static str, name: &'static str, value: f64) -> Result<(), OptimError> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(OptimError::InvalidHyper { owner, name, value, reason: "must be finite and > 0" })
    }
}

/// The checks every optimizer shares: `lr >= 0`, `eps >= 0`.
pub(crate) fn check_lr(owner: &'static str, lr: f64) -> Result<(), OptimError> {
    check_min(owner, "lr", lr, 0.0, "must be finite and >= 0")
}

pub(crate) fn check_eps(owner: &'static str, eps: f64) -> Result<(), OptimError> {
    check_min(owner, "eps", eps, 0.0, "must be finite and >= 0")
}

pub(crate) fn check_betas(owner: &'static str, betas: (f64, f64)) -> Result<(), OptimError> {
    check_half_open(owner, "betas[0]", betas.0, 0.0, 1.0, "must lie in [0, 1)")?;
    check_half_open(owner, "betas[1]", betas.1, 0.0, 1.0, "must lie in [0, 1)")
}
