//! # nw-train
//!
//! The training loop and what makes a run observable and resumable:
//! [`Trainer`] (epochs of optimizer steps with schedules, regularizers,
//! evaluation, early stopping and online updates), [`checkpoint`] (the whole
//! training state in one versioned, checksummed, atomically written file),
//! [`monitor`] (per-tensor weight, gradient and update statistics with
//! warnings), [`guard`] (stop at the first non-finite value, naming the
//! parameter) and [`models`] (ready-made architectures from a spec).
//!
//! Main types: [`Trainer`], [`LossKind`], [`LrPolicy`], [`EpochRecord`],
//! [`Metrics`], [`Checkpoint`], [`WeightMonitor`], [`ModelSpec`].
//!
//! ```
//! use nw_data::{BatchLoader, BatchSize, LoaderConfig};
//! use nw_nn::Module;
//! use nw_optim::Adam;
//! use nw_tensor::Rng;
//! use nw_train::{LossKind, ModelSpec, Trainer, models::{Activation, build_model}};
//!
//! let mut rng = Rng::new(0);
//! let data = nw_data::iris();
//! let spec = ModelSpec::Mlp { hidden: vec![16], activation: Activation::Tanh, dropout: 0.0 };
//! let built = build_model(&spec, data.feature_shape(), 3, &mut rng).unwrap();
//! let opt = Adam { lr: 0.05, ..Default::default() }.build(built.model.parameters()).unwrap();
//! let mut trainer = Trainer::new(built.model, Box::new(opt), LossKind::CrossEntropy { label_smoothing: 0.0 });
//! let loader = BatchLoader::new(data.clone(), LoaderConfig { batch_size: BatchSize::Mini(16), ..Default::default() }).unwrap();
//! for _ in 0..30 {
//!     trainer.train_epoch(&loader, None, &mut |_, _, _| {}).unwrap();
//! }
//! let m = trainer.evaluate(&data, 256).unwrap();
//! assert!(m.accuracy.unwrap() > 0.9, "{m:?}");
//! ```
//!
//! ## Invariants
//! - A checkpoint holds everything a run needs to continue bit-identically:
//!   weights, buffers, optimizer and schedule state, random streams, position.
//! - A damaged file is an error naming what is wrong, never a partial load.
//! - The first non-finite loss, gradient or weight stops the run with an
//!   error naming the parameter; nothing after it is written.
#![deny(missing_docs)]

pub mod averaged;
pub mod branch;
pub mod checkpoint;
pub mod config;
pub mod distributed;
mod error;
pub mod freeze;
pub mod guard;
pub mod layers;
pub mod lrfind;
pub mod metrics;
pub mod models;
pub mod monitor;
mod monitor_kernel;
pub mod pretrained;
pub mod report;
pub mod runlog;
pub mod session;
pub mod shard;
pub mod spectral;
pub mod state;
mod sync_bn;
mod trainer;
mod untrusted;
pub mod update;

pub use checkpoint::{Checkpoint, CheckpointError, NamedTensor, Section};
pub use config::{Run, RunConfig, build_run, build_trainer};
pub use error::{Result, TrainError};
pub use guard::{NonFinite, check_finite};
pub use metrics::Metrics;
pub use models::ModelSpec;
pub use monitor::{ClipInfo, MonitorConfig, StepContext, TensorStats, Warning, WeightMonitor};
pub use shard::Sharding;
pub use state::{StateContext, Stateful};
pub use trainer::{EpochRecord, LossKind, LrPolicy, Regularization, StepGrads, Trainer};
