//! # nw-reg
//!
//! Regularization for nw models, built only on [`nw_autograd::Param`],
//! [`nw_autograd::Grads`], [`nw_autograd::Var`] and [`nw_tensor::Tensor`]:
//!
//! - [`Penalty`] (L1, L2, elastic net) as a loss term through autograd
//!   ([`Penalty::loss`]) or added straight into gradients
//!   ([`Penalty::apply_to_grads`]); [`PenaltySet`] picks a penalty per
//!   parameter group ("no decay on biases and norms").
//! - [`dropout`], [`dropout2d`], [`drop_connect`] and the [`Dropout`],
//!   [`Dropout2d`], [`DropConnect`] structs with a training flag.
//! - [`MaxNorm`]: per-neuron norm clipping after each step (torch.renorm).
//! - [`prune`]: magnitude, global and structured pruning with
//!   torch.nn.utils.prune semantics, a [`prune::Pruner`] holding masks,
//!   gradual pruning on a cubic schedule, sparsity reports.
//! - [`EarlyStopping`] with patience, `min_delta`, min/max mode and
//!   restoring the best weights.
//!
//! ```
//! use nw_autograd::{Param, Var};
//! use nw_reg::{Dropout, EarlyStopping, MaxNorm, Mode, Penalty, PenaltySet};
//! use nw_reg::prune::{Amount, Pruner};
//! use nw_tensor::{Rng, Tensor};
//!
//! let mut rng = Rng::new(0);
//! let w = Param::new(Tensor::randn(&[3, 4], 0.0, 1.0, &mut rng));
//! let b = Param::new(Tensor::zeros(&[3]));
//! let params = [w.clone(), b.clone()];
//! let decay = PenaltySet::weights_only(&params, Penalty::l2(1e-2).unwrap()).unwrap();
//! let drop = Dropout::new(0.2).unwrap();
//! let mut pruner = Pruner::new();
//! pruner.l1_unstructured(&w, Amount::Fraction(0.25)).unwrap();
//! let mut stop = EarlyStopping::new(3, 1e-4, Mode::Min).unwrap();
//!
//! let x = Var::constant(Tensor::randn(&[8, 4], 0.0, 1.0, &mut rng));
//! for _epoch in 0..5 {
//!     let h = drop.forward(&x, &mut rng).unwrap();
//!     let y = h.linear(&Var::param(&w), Some(&Var::param(&b))).unwrap();
//!     let loss = y.square().mean().add(&decay.loss().unwrap()).unwrap();
//!     let mut grads = loss.backward().unwrap();
//!     pruner.mask_grads(&params, &mut grads).unwrap();
//!     for p in &params {
//!         let g = grads.get(p).unwrap().clone();
//!         p.update(|t| t.axpy_(-0.1, &g)).unwrap(); // plain SGD
//!     }
//!     pruner.apply(&params).unwrap();
//!     MaxNorm::new(3.0).unwrap().apply(&[w.clone()]).unwrap();
//!     if stop.step(loss.value().item().unwrap() as f64, &params).unwrap() == nw_reg::Decision::Stop {
//!         break;
//!     }
//! }
//! assert_eq!(pruner.report(&[w]).params[0].zeros, 3); // round(0.25 * 12) stay pruned
//! ```
//!
//! ## Invariants
//! - Sees parameters, gradients and graph values, never layers: a layer
//!   crate uses these functions, not the other way round.
//! - Every random draw (dropout masks) comes from an [`nw_tensor::Rng`]
//!   passed by the caller; evaluation mode draws nothing. Same seed, same
//!   masks, bit for bit.
//! - Bad input (a probability outside `[0, 1]`, a pruning amount that does
//!   not fit, mismatched shapes, a negative strength) is a [`RegError`],
//!   never a panic; a failed call changes nothing.
//! - Pruning follows torch.nn.utils.prune, with ties broken by index (see
//!   [`prune`]); pruned weights stay exactly zero once masks are applied
//!   after every step.
#![deny(missing_docs)]

mod dropout;
mod early_stop;
mod error;
mod maxnorm;
mod penalty;
pub mod prune;

pub use dropout::{DropConnect, Dropout, Dropout2d, drop_connect, dropout, dropout_mask, dropout2d};
pub use early_stop::{Decision, EarlyStopping, EarlyStoppingState, Mode};
pub use error::{RegError, Result};
pub use maxnorm::{MaxNorm, max_norm_};
pub use penalty::{Penalty, PenaltySet};
