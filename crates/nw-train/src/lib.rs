//! # nw-train
//!
//! The pieces of a training run that make it observable and resumable:
//! [`checkpoint`] (the whole training state in one versioned, checksummed,
//! atomically written file), [`monitor`] (per-tensor weight, gradient and
//! update statistics with warnings) and [`guard`] (stop at the first
//! non-finite value, naming the parameter).
//!
//! Main types: [`Checkpoint`], [`WeightMonitor`], [`TensorStats`], [`NonFinite`].
//!
//! ```
//! use nw_autograd::{Grads, Param};
//! use nw_tensor::Tensor;
//! use nw_train::{Checkpoint, NamedTensor, check_finite};
//!
//! let w = Param::new(Tensor::ones(&[2, 2]));
//! let params = vec![("0.weight".to_string(), w.clone())];
//! check_finite(1, 0.5, &params, &Grads::new()).unwrap();
//! let ck = Checkpoint { step: 1, model: vec![NamedTensor::new("0.weight", &w.value())], ..Default::default() };
//! let bytes = ck.to_bytes().unwrap();
//! assert_eq!(Checkpoint::from_bytes(&bytes, "mem".as_ref()).unwrap(), ck);
//! ```
//!
//! ## Invariants
//! - A checkpoint holds everything a run needs to continue bit-identically:
//!   weights, optimizer and schedule state, RNG state and position.
//! - A damaged file is an error naming what is wrong, never a partial load.
#![deny(missing_docs)]

pub mod checkpoint;
pub mod guard;
pub mod monitor;

pub use checkpoint::{Checkpoint, CheckpointError, NamedTensor};
pub use guard::{NonFinite, check_finite};
pub use monitor::{MonitorConfig, TensorStats, Warning, WeightMonitor};
