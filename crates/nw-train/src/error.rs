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
    /// A model, weights file or checkpoint does not fit the model it is loaded into.
    #[error("{0}")]
    Mismatch(String),
    /// Reading or writing a file failed (a full disk, a read-only or missing directory).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Another run holds the output directory's lock file.
    #[error("{}: the output directory is in use by another run{} (its lock file {} is held); wait for it to finish or choose another --out", dir.display(), holder.map(|p| format!(" (process {p})")).unwrap_or_default(), crate::session::files::LOCK)]
    Locked {
        /// The output directory.
        dir: std::path::PathBuf,
        /// The process id the lock file names, when it could be read.
        holder: Option<u32>,
    },
    /// A collective of a distributed run failed (a rank stalled, died or is out of step).
    #[error("distributed: {0}")]
    Distributed(#[from] nw_dist::DistError),
    /// The run was interrupted (SIGINT or SIGTERM) after writing a checkpoint.
    #[error("interrupted at step {step}; checkpoint written to {}", checkpoint.display())]
    Interrupted {
        /// Steps completed.
        step: u64,
        /// The checkpoint to resume from.
        checkpoint: std::path::PathBuf,
    },
}

impl TrainError {
    /// The process exit code this error maps to: 2 configuration, 3 data,
    /// 4 diverged, 5 corrupted or mismatched model/checkpoint, 6 I/O,
    /// 7 output directory in use by another run, 8 a failed collective
    /// (distributed runs), 130 interrupted, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            TrainError::Config(_) | TrainError::Optim(_) | TrainError::Reg(_) => 2,
            TrainError::Data(_) => 3,
            TrainError::NonFinite(_) => 4,
            TrainError::Checkpoint(CheckpointError::Io { .. }) => 6,
            TrainError::Checkpoint(_)
            | TrainError::Mismatch(_)
            | TrainError::Nn(nw_nn::NnError::State(_)) => 5,
            TrainError::Io { .. } => 6,
            TrainError::Locked { .. } => 7,
            TrainError::Interrupted { .. } => 130,
            TrainError::Distributed(_) => 8,
            _ => 1,
        }
    }
}

/// Result alias for training.
pub type Result<T> = std::result::Result<T, TrainError>;
