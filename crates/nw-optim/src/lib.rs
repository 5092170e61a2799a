//! # nw-optim
//!
//! Optimizers that compute exactly what `torch.optim` computes, parameter
//! groups, state that saves and loads, learning-rate schedules
//! ([`schedule`]) and gradient clipping ([`clip`]).
//!
//! Main types: the [`Optimizer`] trait; the config structs [`Sgd`], [`Adam`],
//! [`AdamW`], [`Adagrad`], [`RmsProp`], [`Adadelta`], [`Adamax`], [`NAdam`],
//! [`RAdam`], [`Rprop`], [`Lion`], [`Asgd`], [`Adafactor`], [`Muon`], [`SparseAdam`] (row-sparse gradients only) (each with torch's hyper-parameter names and
//! defaults in `Default`, and `build(params)` / `build_groups(groups)`
//! returning an [`Optim`]); [`Lbfgs`] (closure-driven, returning an
//! [`LbfgsOptim`]: [`Optimizer::step_closure`]); the gradient-free [`Ga`] and [`Pso`] (closure-driven too, returning a [`GradientFree`]); [`ParamGroup`]; [`WeightDecay`] (coupled L2 or
//! decoupled); [`StateDict`]; [`OptimError`]; [`schedule::Scheduler`],
//! [`schedule::ReduceLrOnPlateau`]; [`clip::clip_grad_norm`]; [`averaging::WeightAverage`]
//! (SWA and EMA of the weights, torch's `AveragedModel`).
//!
//! ```
//! use nw_autograd::{Param, Var};
//! use nw_optim::schedule::{Schedule, Scheduler};
//! use nw_optim::{AdamW, Optimizer, ParamGroup};
//! use nw_tensor::Tensor;
//!
//! // fit y = 2x with a weight and a bias; no weight decay on the bias
//! let w = Param::new(Tensor::from_vec(vec![0.0], &[1, 1]).unwrap());
//! let b = Param::new(Tensor::zeros(&[1]));
//! let mut opt = AdamW { lr: 0.1, ..AdamW::default() }
//!     .build_groups(vec![ParamGroup::new(vec![w.clone()]), ParamGroup::new(vec![b.clone()]).weight_decay(0.0)])
//!     .unwrap();
//! let mut sched = Scheduler::new(Schedule::CosineAnnealing { t_max: 500, eta_min: 0.0 }, 0.1).unwrap();
//! let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3, 1]).unwrap();
//! let y = Tensor::from_vec(vec![2.0, 4.0, 6.0], &[3, 1]).unwrap();
//! for _ in 0..500 {
//!     opt.set_lr(sched.lr());
//!     let pred = Var::constant(x.clone()).linear(&Var::param(&w), Some(&Var::param(&b))).unwrap();
//!     let loss = pred.sub(&Var::constant(y.clone())).unwrap().square().mean();
//!     let mut grads = loss.backward().unwrap();
//!     drop(loss); // free the graph, so the update writes the weights in place
//!     nw_optim::clip::clip_grad_norm(&[w.clone(), b.clone()], &mut grads, 10.0, 2.0, false).unwrap();
//!     opt.step(&grads).unwrap();
//!     sched.step();
//! }
//! assert!((w.value().to_vec()[0] - 2.0).abs() < 0.1);
//! // the state is named tensors: state.{group}.{position}.{buffer}
//! let sd = opt.state_dict();
//! assert!(sd.tensor("state.0.0.exp_avg").is_some());
//! assert_eq!(sd.tensor("state.1.0.step").unwrap().to_vec(), vec![500.0]);
//! ```
//!
//! ## Invariants
//! - nw-optim sees parameters and gradients, never layers: it takes
//!   [`nw_autograd::Param`]s and a [`nw_autograd::Grads`] store, nothing else.
//! - Each optimizer's arithmetic is torch's single-tensor (CPU for-loop)
//!   algorithm: f32 elementwise, bias corrections and other per-step scalars in
//!   f64, same order of operations; a parity test checks every optimizer
//!   against PyTorch fixtures.
//! - One fused pass per parameter per step over θ, g and the state buffers;
//!   buffers are allocated once. Work is split over fixed chunks, and the
//!   update is elementwise, so 1, 2 or 64 threads give the same bits.
//! - Bad hyper-parameters, mismatched gradient shapes and unfit state dicts
//!   are [`OptimError`]s, never panics.
#![deny(missing_docs)]

mod adadelta;
mod adafactor;
mod adagrad;
mod adam;
mod adamax;
mod asgd;
pub mod averaging;
pub mod clip;
mod error;
mod gradient_free;
/// Gradient-free weight updates over a model's flat parameter vector: a
/// genetic algorithm and particle swarm optimisation (re-exported from the
/// `nw-evolve` crate, which has no dependency on the optimizers).
pub use nw_evolve as evolve;
mod group;
pub mod kernel;
mod lbfgs;
mod lion;
mod muon;
mod muon_aux;
mod nadam;
mod optim;
mod radam;
mod reduce;
mod registry;
mod rmsprop;
mod rprop;
pub mod schedule;
mod sgd;
mod sparse_adam;
mod state;

pub use adadelta::Adadelta;
pub use adafactor::Adafactor;
pub use adagrad::Adagrad;
pub use adam::{Adam, AdamW};
pub use adamax::Adamax;
pub use asgd::Asgd;
pub use error::OptimError;
pub use gradient_free::{CrossoverName, Ga, GradientFree, Pso, Search};
pub use group::{ParamGroup, WeightDecay};
pub use lbfgs::{Lbfgs, LbfgsOptim, LineSearch};
pub use lion::Lion;
pub use muon::{AdjustLr, Muon, NsDtype, newton_schulz, newton_schulz_bf16};
pub use muon_aux::{MuonWithAdamW, NonMatrix};
pub use nadam::NAdam;
pub use optim::{AdaptiveStep, GroupHyper, Optim, Optimizer, ParamView, Rule, all_params};
pub use radam::RAdam;
pub use registry::{AdamRepr, NAdamRepr, OPTIMIZERS, OptimizerConfig, RAdamRepr};
pub use rmsprop::RmsProp;
pub use rprop::Rprop;
pub use sgd::Sgd;
pub use sparse_adam::SparseAdam;
pub use state::{ParamState, StateDict};
