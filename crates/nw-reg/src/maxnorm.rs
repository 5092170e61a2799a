//! Max-norm constraint (Srebro and Shraibman 2005; used with dropout by
//! Srivastava et al. 2014): after each optimizer step, every slice of a
//! weight along `dim` (by default each output row / neuron of a linear
//! weight `[out, in]`, or each output filter of a conv weight
//! `[out, in, kh, kw]`) whose L2 norm exceeds `c` is scaled back to norm `c`.
//!
//! Same rule as torch.renorm(w, p=2, dim, maxnorm=c) and Keras' `max_norm`:
//!
//! ```text
//! n_j = || w[.., j, ..] ||_2          (over every axis but dim, in f64)
//! w[.., j, ..] *= c / (n_j + 1e-7)    if n_j > c, else unchanged
//! ```

use nw_autograd::Param;
use nw_tensor::Tensor;

use crate::error::{RegError, Result};

/// Clips, in place, the L2 norm of each slice of `w` along `dim` to at most
/// `max_norm`; returns the norms before clipping (one per slice).
pub fn max_norm_(w: &mut Tensor, max_norm: f32, dim: usize) -> Result<Vec<f64>> {
    check_max_norm(max_norm)?;
    let shape = w.shape().to_vec();
    if dim >= shape.len() {
        return Err(RegError::BadArgument {
            op: "max_norm",
            reason: format!("dim {dim} out of range for a tensor of shape {shape:?}"),
        });
    }
    let size = shape[dim];
    let inner: usize = shape[dim + 1..].iter().product();
    let outer: usize = shape[..dim].iter().product();
    let data = w.as_slice_mut();
    let mut sq = vec![0.0f64; size];
    for o in 0..outer {
        for j in 0..size {
            let start = (o * size + j) * inner;
            sq[j] += data[start..start + inner].iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>();
        }
    }
    let norms: Vec<f64> = sq.iter().map(|s| s.sqrt()).collect();
    let c = max_norm as f64;
    let factors: Vec<Option<f32>> =
        norms.iter().map(|&n| if n > c { Some((c / (n + 1e-7)) as f32) } else { None }).collect();
    for o in 0..outer {
        for j in 0..size {
            if let Some(f) = factors[j] {
                let start = (o * size + j) * inner;
                data[start..start + inner].iter_mut().for_each(|x| *x *= f);
            }
        }
    }
    Ok(norms)
}

fn check_max_norm(c: f32) -> Result<()> {
    if c.is_finite() && c > 0.0 {
        Ok(())
    } else {
        Err(RegError::BadArgument {
            op: "max_norm",
            reason: format!("max norm must be finite and > 0, got {c}"),
        })
    }
}

/// A max-norm constraint to apply to weights after each optimizer step.
///
/// ```
/// use nw_autograd::Param;
/// use nw_reg::MaxNorm;
/// use nw_tensor::Tensor;
///
/// // rows with norms 5 and 0.5
/// let w = Param::new(Tensor::from_vec(vec![3.0, 4.0, 0.3, 0.4], &[2, 2]).unwrap());
/// MaxNorm::new(1.0).unwrap().apply(&[w.clone()]).unwrap();
/// let v = w.value().to_vec();
/// // first row scaled by 1 / (5 + 1e-7), second untouched
/// assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
/// assert_eq!(&v[2..], &[0.3, 0.4]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaxNorm {
    max_norm: f32,
    dim: usize,
}

impl MaxNorm {
    /// Norm bound `c > 0` per slice along dim 0 (each output neuron/filter).
    pub fn new(max_norm: f32) -> Result<Self> {
        check_max_norm(max_norm)?;
        Ok(MaxNorm { max_norm, dim: 0 })
    }

    /// The same bound over slices along `dim` instead.
    pub fn with_dim(self, dim: usize) -> Self {
        MaxNorm { dim, ..self }
    }

    /// The bound.
    pub fn max_norm(&self) -> f32 {
        self.max_norm
    }

    /// The axis whose slices are constrained.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Applies the constraint to every parameter given (pass the weights,
    /// not the biases). Each parameter's rank is checked before any changes.
    pub fn apply(&self, params: &[Param]) -> Result<()> {
        for p in params {
            if self.dim >= p.shape().len() {
                return Err(RegError::BadArgument {
                    op: "MaxNorm::apply",
                    reason: format!("dim {} out of range for a parameter of shape {:?}", self.dim, p.shape()),
                });
            }
        }
        for p in params {
            p.update(|w| max_norm_(w, self.max_norm, self.dim))?;
        }
        Ok(())
    }
}
