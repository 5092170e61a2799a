//! # nw-evolve
//!
//! Gradient-free training over a model's flat parameter vector: a genetic
//! algorithm ([`GaConfig`]) and particle swarm optimisation ([`PsoConfig`]),
//! each maximising a user fitness function `Fn(&[f32]) -> f64`, plus
//! [`flatten`] / [`unflatten`] to move between a list of
//! [`nw_autograd::Param`]s and one vector. (Meant to fold into nw-optim.)
//!
//! Main types: [`GaConfig`], [`Crossover`], [`PsoConfig`], [`Outcome`]
//! (best vector, best fitness, per-generation [`Generation`] history),
//! [`EvolveError`].
//!
//! ```
//! use nw_autograd::Param;
//! use nw_evolve::{GaConfig, flatten, unflatten};
//! use nw_tensor::{Rng, Tensor};
//!
//! // fit y = 2x - 1 with a "model" of two parameters
//! let w = Param::new(Tensor::zeros(&[1]));
//! let b = Param::new(Tensor::zeros(&[1]));
//! let params = [w.clone(), b.clone()];
//! let xs = [-1.0f32, 0.0, 1.0, 2.0];
//! let fitness = |v: &[f32]| -xs.iter().map(|&x| ((v[0] * x + v[1]) - (2.0 * x - 1.0)).powi(2) as f64).sum::<f64>();
//! let out = GaConfig::default().run(&flatten(&params), fitness, &mut Rng::new(7)).unwrap();
//! unflatten(&params, &out.best).unwrap();
//! assert!((w.value().item().unwrap() - 2.0).abs() < 0.1);
//! assert!((b.value().item().unwrap() + 1.0).abs() < 0.1);
//! ```
//!
//! ## Invariants
//! - Sees a flat vector and a fitness function, never layers or gradients.
//! - Every random draw comes from the caller's [`nw_tensor::Rng`], on the
//!   calling thread, in a fixed order; fitness is evaluated in parallel
//!   (rayon), each individual independently, collected in index order;
//!   selection and reductions run sequentially in index order. Same seed,
//!   same result, bit for bit, for any number of threads.
//! - Fitness is maximised; a NaN fitness counts as `-inf`.
//! - Bad settings are an [`EvolveError`], never a panic.
#![deny(missing_docs)]

mod error;
mod flat;
mod ga;
mod history;
mod pso;

pub use error::{EvolveError, Result};
pub use flat::{flatten, num_params, unflatten};
pub use ga::{Crossover, GaConfig};
pub use history::{Generation, Outcome, argmax};
pub use pso::PsoConfig;
