//! The error type of gradient-free training.

use nw_tensor::TensorError;
use thiserror::Error;

/// What went wrong: a configuration value outside its domain, or a vector
/// whose length does not match the parameters.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EvolveError {
    /// A configuration value is invalid.
    #[error("{op}: {reason}")]
    BadConfig {
        /// The algorithm or helper.
        op: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A flat vector's length differs from the parameters' total size.
    #[error("{op}: vector of length {got}, the parameters hold {expected} values")]
    LengthMismatch {
        /// The helper.
        op: &'static str,
        /// The parameters' total number of elements.
        expected: usize,
        /// The vector's length.
        got: usize,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, EvolveError>;

pub(crate) fn bad(op: &'static str, reason: impl Into<String>) -> EvolveError {
    EvolveError::BadConfig { op, reason: reason.into() }
}
