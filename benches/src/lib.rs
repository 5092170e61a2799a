//! # nw-benches
//!
//! The benchmark cases that both the criterion benches (`cargo bench -p
//! nw-benches`) and the side-by-side comparison with PyTorch (`cargo xtask
//! bench ...`) run, so the two always measure the same products.
//!
//! Main items: [`gemm::GemmCase`] (one product: shape and operand layout),
//! [`gemm::cases`] (the list), [`gemm::GemmBuffers`] (operands ready to run).
//!
//! ```
//! use nw_benches::gemm::{GemmBuffers, cases};
//!
//! let case = cases().into_iter().find(|c| c.name == "64").unwrap();
//! let mut bufs = GemmBuffers::new(&case);
//! bufs.run();
//! assert_eq!(case.flops(), 2.0 * 64.0 * 64.0 * 64.0);
//! ```
#![deny(missing_docs)]

pub mod gemm;
