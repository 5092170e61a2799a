//! The error type of every fallible data operation.

use std::path::PathBuf;

use nw_tensor::TensorError;
use thiserror::Error;

/// What went wrong while reading, building or transforming a data set.
///
/// Errors about files carry the path (embedded sets use a path such as
/// `embedded:iris.csv`), and parse errors carry the 1-based line number.
#[derive(Debug, Error)]
pub enum DataError {
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A gzip stream is corrupt or ends early.
    #[error("{path}: corrupt gzip data: {source}")]
    Decompress {
        /// The gzip file.
        path: PathBuf,
        /// What the decoder reported.
        #[source]
        source: std::io::Error,
    },
    /// A text file has a line that cannot be parsed.
    #[error("{path}, line {line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// A file is well formed but holds a value the reader cannot accept
    /// (a label beyond the class count, an inconsistent header).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A binary file starts with the wrong magic number.
    #[error("{path}: bad magic number 0x{found:08x}, expected 0x{expected:08x} ({what})")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number the reader needs.
        expected: u32,
        /// The magic number found.
        found: u32,
        /// What kind of file the reader expected.
        what: &'static str,
    },
    /// A file is shorter than its header says.
    #[error("{path}: truncated: expected {expected} bytes, got {got}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises (after decompression).
        expected: u64,
        /// Bytes actually present.
        got: u64,
    },
    /// A file is longer than its header says.
    #[error("{path}: {got} bytes but the header describes {expected}: trailing data")]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Bytes the header describes.
        expected: u64,
        /// Bytes actually present.
        got: u64,
    },
    /// Sizes that must agree do not (image and label counts, row widths, image dims).
    #[error("{what}: expected {expected}, got {got}")]
    DimensionMismatch {
        /// Which quantity disagrees.
        what: String,
        /// The value required.
        expected: String,
        /// The value found.
        got: String,
    },
    /// A data set name that is not known.
    #[error("unknown data set `{name}`; known: {}", known.join(", "))]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: Vec<&'static str>,
    },
    /// A data set that must be downloaded or installed first.
    #[error("data set {name} not found: {message}")]
    MissingDataset {
        /// The data set.
        name: &'static str,
        /// Where it was looked for and how to get it.
        message: String,
    },
    /// An argument (a fraction, a batch size, a noise level) is invalid.
    #[error("{op}: {reason}")]
    InvalidArgument {
        /// The function that rejected it.
        op: &'static str,
        /// Why.
        reason: String,
    },
    /// A tensor operation failed (a shape the caller passed does not fit).
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// Result alias for data operations.
pub type Result<T> = std::result::Result<T, DataError>;

pub(crate) fn invalid(op: &'static str, reason: impl Into<String>) -> DataError {
    DataError::InvalidArgument { op, reason: reason.into() }
}
