//! The error of a training run.

use thiserror::Error;

use crate::checkpoint::CheckpointError;
use crate::guard::NonFinite;

/// Why a run stopped or could not start.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A model operation failed.
    #[error(transparent)]
    Nn(#[from] nw_nn::NnError),
    /// A graph operation failed.
    #[error(transparent)]
    Autograd(#[from] nw_autograd::AutogradError),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] nw_tensor::TensorError),
    /// The optimizer, a schedule or clipping failed.
    #[error(transparent)]
    Optim(#[from] nw_optim::OptimError),
    /// A regularizer failed.
    #[error(transparent)]
    Reg(#[from] nw_reg::RegError),
    /// Reading or preparing data failed.
    #[error(transparent)]
    Data(#[from] nw_data::DataError),
    /// A loss, gradient or weight became NaN or infinite.
    #[error(transparent)]
    NonFinite(#[from] NonFinite),
    /// Writing or reading a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The run's configuration is invalid or does not fit the data.
    #[error("configuration: {0}")]
    Config(String),
}

/// Result alias for training.
pub type Result<T> = std::result::Result<T, TrainError>;
