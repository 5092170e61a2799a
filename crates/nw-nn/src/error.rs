//! The error type of layers, losses, initialisers and state files.

use nw_autograd::AutogradError;
use nw_tensor::TensorError;
use thiserror::Error;

use crate::state::StateError;

/// What went wrong in a layer, a loss, an initialiser or a state file.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NnError {
    /// A differentiable operation failed (shapes, arguments).
    #[error(transparent)]
    Autograd(#[from] AutogradError),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A layer, loss or initialiser was configured with invalid values.
    #[error("{what}: invalid configuration: {reason}")]
    Config {
        /// The layer or function.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// An input does not fit the layer (rank, feature count, index range).
    #[error("{what}: invalid input: {reason}")]
    Input {
        /// The layer or function.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// Saving or loading a model's state failed.
    #[error(transparent)]
    State(#[from] StateError),
}

impl NnError {
    pub(crate) fn config(what: &'static str, reason: impl Into<String>) -> Self {
        NnError::Config { what, reason: reason.into() }
    }

    pub(crate) fn input(what: &'static str, reason: impl Into<String>) -> Self {
        NnError::Input { what, reason: reason.into() }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, NnError>;
