//! # nw-nn
//!
//! Neural-network building blocks over [`nw_autograd`]: the [`Module`]
//! trait, layers, activations, losses, initialisers, and model state files.
//! Every layer uses PyTorch's parameter layout, default initialisation and
//! `state_dict` names, so weights move between nw and PyTorch unchanged.
//!
//! Main items:
//! - [`Module`] (forward, named parameters and buffers, train/eval mode),
//!   [`Sequential`], [`prefixed`] for hand-written containers;
//! - layers [`Linear`], [`Conv1d`], [`Conv2d`], [`ConvTranspose2d`],
//!   [`MaxPool2d`], [`AvgPool2d`], [`AdaptiveAvgPool2d`], [`Upsample`],
//!   [`Embedding`], [`LayerNorm`], [`BatchNorm1d`], [`BatchNorm2d`],
//!   [`GroupNorm`], [`InstanceNorm2d`], recurrent [`Rnn`], [`Lstm`], [`Gru`];
//! - activations [`Relu`], [`LeakyRelu`], [`Elu`], [`Gelu`], [`Sigmoid`],
//!   [`Tanh`], [`Softplus`], [`Silu`], [`Softmax`], [`LogSoftmax`], [`Flatten`];
//! - losses in [`loss`] ([`MseLoss`], [`L1Loss`], [`SmoothL1Loss`],
//!   [`HuberLoss`], [`BceLoss`], [`BceWithLogitsLoss`], [`CrossEntropyLoss`]
//!   and [`NllLoss`] with class weights, `ignore_index` and label smoothing,
//!   reductions mean/sum/none, and the functional forms);
//! - initialisers in [`init`] (`torch.nn.init` semantics);
//! - state in [`state`] (safetensors and bincode, all-or-nothing loading);
//! - errors: [`NnError`].
//!
//! ```
//! use nw_autograd::Var;
//! use nw_nn::{loss, Linear, Module, Relu, Sequential};
//! use nw_tensor::{Rng, Tensor};
//!
//! let mut rng = Rng::new(42);
//! let model = Sequential::new()
//!     .with(Linear::new(4, 16, &mut rng))
//!     .with(Relu)
//!     .with(Linear::new(16, 3, &mut rng));
//! let x = Var::constant(Tensor::randn(&[8, 4], 0.0, 1.0, &mut rng));
//! let targets = [0, 1, 2, 0, 1, 2, 0, 1];
//! let logits = model.forward(&x).unwrap();
//! let l = loss::cross_entropy(&logits, &targets, 0.0, loss::Reduction::Mean).unwrap();
//! let grads = l.backward().unwrap();
//! for (name, p) in model.named_parameters() {
//!     assert_eq!(grads.get(&p).unwrap().shape(), p.shape().as_slice(), "{name}");
//! }
//! ```
//!
//! ## Invariants
//! - Knows nothing of optimizers or training loops: a module exposes its
//!   parameters ([`nw_autograd::Param`], shared handles) and an optimizer
//!   updates them.
//! - Every random draw comes from an [`nw_tensor::Rng`] passed to the
//!   constructor: the same seed gives the same weights, bit for bit.
//! - Names, layouts and default initialisations are PyTorch's.
//! - Shapes are checked at run time; bad input or a bad state file is an
//!   [`NnError`], never a panic; a failed load changes nothing.
#![deny(missing_docs)]

mod activation;
mod conv;
mod embedding;
mod error;
mod group_norm;
pub mod init;
mod linear;
pub mod loss;
mod module;
mod norm;
mod resample;
mod rnn;
pub mod state;
mod update_bn;

pub use activation::{
    Elu, Flatten, Gelu, GeluApprox, LeakyRelu, LogSoftmax, Relu, Sigmoid, Silu, Softmax, Softplus, Tanh,
};
pub use conv::{AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, MaxPool2d};
pub use embedding::Embedding;
pub use error::{NnError, Result};
pub use group_norm::{GroupNorm, InstanceNorm2d};
pub use linear::Linear;
pub use loss::{
    BceLoss, BceWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, Loss, MseLoss, NllLoss, Reduction,
    SmoothL1Loss, Target,
};
pub use module::{Buffer, BufferValue, Dtype, ModeFlag, Module, Sequential, prefixed};
pub use norm::{
    BatchNorm, BatchNorm1d, BatchNorm2d, GradSums, LayerNorm, SyncStats, channel_sums, grad_sums,
};
pub use resample::{ConvTranspose2d, Upsample, UpsampleSize};
pub use rnn::{Gru, Lstm, RecurrentLayer, Rnn, RnnConfig, RnnNonlinearity, RnnOutput, RnnState};
pub use state::{StateError, StateMismatch};
pub use update_bn::update_bn;
