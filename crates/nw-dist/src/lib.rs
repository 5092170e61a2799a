//! nw-dist: the deterministic reduction and the collective layer behind
//! data-parallel training and gradient accumulation.
//!
//! Invariant: the global batch is cut into `M` fixed-size micro-shards (the
//! size never depends on the rank count); their gradients are summed in one
//! fixed tree over micro-shard index ([`tree`]). One process evaluates that
//! tree alone; `N` ranks each evaluate the canonical subtrees covering their
//! contiguous run of micro-shards ([`tree::run_blocks`]), exchange those
//! blocks in rank order ([`Collective::all_gather`]), and finish the same
//! tree ([`tree::finish`]). Every addition is the same addition in the same
//! order, so the bits agree for any `N`, also when runs are unequal.
//!
//! Main items: [`tree`] (the summation tree), [`Collective`] (one trait,
//! implemented by [`threads::ThreadRank`] for ranks as threads of one process
//! and, with the `mpi` feature, by `mpi::MpiRank` over MPI), [`reduce::reduce`]
//! (one step's reduction), [`DistError`] (every failure names the rank).
//!
//! ```
//! use nw_dist::tree::{finish, run_blocks, split_runs, tree_sum};
//! let leaves: Vec<Vec<f32>> = (0..5).map(|i| vec![0.1 * i as f32, 1.0 / (i + 1) as f32]).collect();
//! let whole = tree_sum(&leaves);
//! let mut blocks = Vec::new();
//! for (a, b) in split_runs(leaves.len(), 3) {
//!     blocks.extend(run_blocks(leaves.len(), a, b, &leaves[a..b]));
//! }
//! assert_eq!(finish(leaves.len(), &blocks).unwrap(), whole);
//! ```
#![deny(missing_docs)]

pub mod collective;
mod error;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod reduce;
pub mod threads;
pub mod tree;

pub use collective::{Collective, Solo};
pub use error::DistError;
