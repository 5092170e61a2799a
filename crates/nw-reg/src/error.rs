//! The error type of every fallible regularization operation.

use nw_autograd::AutogradError;
use nw_tensor::TensorError;
use thiserror::Error;

/// What went wrong. Bad user input (a probability outside its range, a
/// pruning amount that does not fit, mismatched shapes) is always an error,
/// never a panic.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RegError {
    /// A probability (dropout rate) outside its allowed range, or NaN.
    #[error("{op}: probability {p} is outside [0, 1]")]
    BadProbability {
        /// The operation.
        op: &'static str,
        /// The offending value.
        p: f64,
    },
    /// A pruning amount that is negative, NaN, above 1 (fractions) or above
    /// the number of prunable units (counts).
    #[error("{op}: bad amount: {reason}")]
    BadAmount {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A hyper-parameter outside its domain (a negative penalty strength, a
    /// non-positive max norm, a zero-length schedule).
    #[error("{op}: {reason}")]
    BadArgument {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// Two shapes that must agree do not.
    #[error("{op}: shape mismatch between {lhs:?} and {rhs:?}")]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// The first shape.
        lhs: Vec<usize>,
        /// The second shape.
        rhs: Vec<usize>,
    },
    /// A parameter list does not match the one a state was recorded for.
    #[error("{op}: {reason}")]
    ParamMismatch {
        /// The operation.
        op: &'static str,
        /// What was different.
        reason: String,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// Building a graph node failed.
    #[error(transparent)]
    Autograd(#[from] AutogradError),
}

/// Result alias for regularization operations.
pub type Result<T> = std::result::Result<T, RegError>;

/// Checks a probability lies in `[0, 1]` (NaN fails).
pub(crate) fn check_probability(op: &'static str, p: f64) -> Result<()> {
    if (0.0..=1.0).contains(&p) { Ok(()) } else { Err(RegError::BadProbability { op, p }) }
}

/// Checks a strength is finite and non-negative.
pub(crate) fn check_strength(op: &'static str, what: &str, v: f32) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(RegError::BadArgument { op, reason: format!("{what} must be finite and >= 0, got {v}") })
    }
}
