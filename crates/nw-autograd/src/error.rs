//! Errors of graph construction and backward.

use nw_tensor::TensorError;
use thiserror::Error;

/// What went wrong while building or differentiating a graph.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AutogradError {
    /// A tensor operation failed (shapes, indices, arguments).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// `backward()` needs a one-element value; use `backward_with` otherwise.
    #[error("backward: the value has shape {shape:?}; backward() needs a scalar (use backward_with)")]
    NonScalarBackward {
        /// Shape of the value backward was called on.
        shape: Vec<usize>,
    },
    /// `backward()` was called a second time on a graph it already consumed.
    #[error("backward: this graph was already consumed by an earlier backward()")]
    GraphConsumed,
    /// An argument of a differentiable operation is invalid.
    #[error("{op}: {reason}")]
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// Result alias for autograd operations.
pub type Result<T> = std::result::Result<T, AutogradError>;
