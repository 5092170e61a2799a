//! The lab's error type: what went wrong, naming the experiment or file.

use std::path::PathBuf;

/// Everything an experiment or a report can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Training (configuration, data, a non-finite value outside a measured run).
    #[error(transparent)]
    Train(#[from] nw_train::TrainError),
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] nw_tensor::TensorError),
    /// A layer could not be built or run.
    #[error(transparent)]
    Nn(#[from] nw_nn::NnError),
    /// Autograd failed.
    #[error(transparent)]
    Autograd(#[from] nw_autograd::AutogradError),
    /// An optimizer could not be built.
    #[error(transparent)]
    Optim(#[from] nw_optim::OptimError),
    /// Pruning or another regularizer failed.
    #[error(transparent)]
    Reg(#[from] nw_reg::RegError),
    /// The genetic algorithm or the swarm failed.
    #[error(transparent)]
    Evolve(#[from] nw_evolve::EvolveError),
    /// Data could not be built.
    #[error(transparent)]
    Data(#[from] nw_data::DataError),
    /// A bad name or setting.
    #[error("{0}")]
    Config(String),
    /// Reading or writing a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// The lab's result type.
pub type Result<T> = std::result::Result<T, LabError>;

/// An I/O error naming `path`.
pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::Io { path: path.to_path_buf(), source }
}
