//! The error type of every fallible tensor operation.

use thiserror::Error;

/// What went wrong in a tensor operation. Every variant names the operation.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TensorError {
    /// Two operands have shapes the operation cannot combine.
    #[error("{op}: shape mismatch between {lhs:?} and {rhs:?}")]
    ShapeMismatch {
        /// The operation that failed.
        op: &'static str,
        /// Shape of the first operand.
        lhs: Vec<usize>,
        /// Shape of the second operand.
        rhs: Vec<usize>,
    },
    /// A shape does not fit the number of elements or the operation's requirements.
    #[error("{op}: invalid shape {shape:?}: {reason}")]
    InvalidShape {
        /// The operation that failed.
        op: &'static str,
        /// The offending shape.
        shape: Vec<usize>,
        /// Why it is invalid.
        reason: String,
    },
    /// An axis is outside `0..ndim`.
    #[error("{op}: axis {axis} out of range for a tensor of rank {ndim}")]
    AxisOutOfRange {
        /// The operation that failed.
        op: &'static str,
        /// The requested axis (negative axes count from the end).
        axis: isize,
        /// Rank of the tensor.
        ndim: usize,
    },
    /// An index is outside the dimension it indexes.
    #[error("{op}: index {index} out of range for a dimension of size {size}")]
    IndexOutOfRange {
        /// The operation that failed.
        op: &'static str,
        /// The offending index.
        index: i64,
        /// Size of the indexed dimension.
        size: usize,
    },
    /// An argument (a hyper-parameter of the kernel, a count) is invalid.
    #[error("{op}: {reason}")]
    InvalidArgument {
        /// The operation that failed.
        op: &'static str,
        /// What was wrong.
        reason: String,
    },
}

/// Result alias for tensor operations.
pub type Result<T> = std::result::Result<T, TensorError>;
