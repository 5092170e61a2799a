//! # nw-tensor
//!
//! f32 N-dimensional tensors and the CPU kernels every other nw crate is built
//! on: GEMM, convolution, pooling and upsampling ([`conv`], [`pool`],
//! [`upsample`], each with its backward kernels), elementwise math,
//! reductions, softmax, indexing, and the seeded random generator.
//!
//! Main types: [`Tensor`] (reference-counted, copy-on-write, strided views),
//! [`Rng`] (xoshiro256++, explicit and serialisable), [`TensorError`],
//! [`Conv2dSpec`] / [`Conv1dSpec`] / [`ConvTranspose2dSpec`] (convolution
//! hyper-parameters).
//!
//! ```
//! use nw_tensor::{Rng, Tensor};
//!
//! let mut rng = Rng::new(0);
//! let x = Tensor::randn(&[4, 3], 0.0, 1.0, &mut rng);
//! let w = Tensor::rand_uniform(&[3, 2], -0.5, 0.5, &mut rng);
//! let b = Tensor::from_vec(vec![0.1, -0.1], &[2]).unwrap();
//! let y = x.matmul(&w).unwrap().add(&b).unwrap().relu();
//! assert_eq!(y.shape(), &[4, 2]);
//! let p = y.softmax(1).unwrap();
//! assert!((p.sum_axis(1, false).unwrap().to_vec()[0] - 1.0).abs() < 1e-6);
//! // shape errors name the op and both shapes
//! let e = x.matmul(&x).unwrap_err();
//! assert_eq!(e.to_string(), "matmul: shape mismatch between [4, 3] and [4, 3]");
//! ```
//!
//! ## Invariants
//! - This crate knows nothing of gradients, layers or optimizers.
//! - Every random draw comes from an [`Rng`] passed in by the caller.
//! - Results are bit-identical for any thread count: parallel kernels split
//!   work over output elements or fixed-size chunks combined in a fixed
//!   order; GEMM splits M and N, never K.
//! - Shapes are checked at run time; a mismatch is a [`TensorError`] naming
//!   the operation and the shapes.
#![deny(missing_docs)]

pub mod conv;
mod error;
pub mod gemm;
pub mod malloc;
mod matmul;
pub mod ops;
pub mod pool;
mod rng;
mod tensor;
pub mod upsample;

pub use conv::{Accumulation, Conv1dSpec, Conv2dSpec, ConvGrads, ConvTranspose2dSpec};
pub use error::{Result, TensorError};
pub use rng::Rng;
pub use tensor::{MAX_ELEMENTS, Tensor, checked_numel};
