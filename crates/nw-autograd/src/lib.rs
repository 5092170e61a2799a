//! # nw-autograd
//!
//! Reverse-mode automatic differentiation over [`nw_tensor`]. A [`Var`] is a
//! tensor that records the operation that made it; [`Var::backward`] sweeps
//! the graph once, in iterative reverse topological order, and returns the
//! gradients as a value: a [`Grads`] store keyed by leaf and [`Param`] ids.
//!
//! Main types: [`Var`], [`Param`] (a shared trainable tensor), [`Grads`]
//! (dense gradients, plus the touched rows of row-sparse ones: [`Grads::rows`]),
//! [`no_grad`] scopes, [`gradcheck`] (central differences). Besides the
//! elementwise, linear-algebra, reduction and layout operations, `Var` has
//! the fused network operations that nw-nn's layers use: elementwise losses
//! ([`Var::pointwise_loss`], [`PointwiseLoss`]), cross-entropy, layer,
//! batch and group normalisation ([`BatchStats`]), convolution and
//! transposed convolution, pooling, upsampling and embedding lookups.
//!
//! ```
//! use nw_autograd::{Param, Var};
//! use nw_tensor::Tensor;
//!
//! // one neuron: y = tanh(x W^T + b), loss = mean(y^2)
//! let w = Param::new(Tensor::from_vec(vec![0.5, -0.25], &[1, 2]).unwrap());
//! let b = Param::new(Tensor::zeros(&[1]));
//! let x = Var::constant(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]).unwrap());
//! let y = x.linear(&Var::param(&w), Some(&Var::param(&b))).unwrap().tanh();
//! let loss = y.square().mean();
//! let grads = loss.backward().unwrap();
//! assert_eq!(grads.get(&w).unwrap().shape(), &[1, 2]);
//! assert!(grads.get(&b).unwrap().to_vec()[0] > 0.0);
//! ```
//!
//! ## Invariants
//! - Knows nothing of layers, optimizers or data: only values, operations
//!   and their derivatives.
//! - Gradients are returned by `backward()`, never stored in hidden global
//!   state. The only thread-locals are the [`no_grad`] switch and the
//!   [`anomaly`] detector (off by default; finds the first operation that
//!   produced a NaN or infinity).
//! - One backward sweep; no recursion (deep graphs such as long recurrent
//!   unrolls cannot overflow the stack); each node's saved tensors are freed
//!   as soon as its backward has run.
//! - Shapes are checked when an operation is built; a mismatch is an error
//!   naming the operation and both shapes.
#![deny(missing_docs)]

pub mod anomaly;
mod backward;
mod error;
mod gradcheck;
mod grads;
mod op;
mod ops;
mod ops_conv;
mod ops_nn;
mod ops_rnn;
mod param;
mod var;

pub use anomaly::{Anomaly, set_detect_anomaly, take_anomaly};
pub use error::{AutogradError, Result};
pub use gradcheck::{GradcheckReport, gradcheck};
pub use grads::Grads;
pub use ops_nn::{BatchStats, PointwiseLoss};
pub use ops_rnn::RecurrentCell;
pub use param::{NodeId, Param};
pub use var::{NoGradGuard, Var, is_grad_enabled, no_grad};
