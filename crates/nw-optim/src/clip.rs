//! Gradient clipping over all parameters together, as
//! `torch.nn.utils.clip_grad_norm_` and `clip_grad_value_`.
//!
//! ```
//! use nw_autograd::{Grads, Param};
//! use nw_optim::clip::{clip_grad_norm, clip_grad_value};
//! use nw_tensor::Tensor;
//!
//! let a = Param::new(Tensor::zeros(&[2]));
//! let b = Param::new(Tensor::zeros(&[1]));
//! let mut grads = Grads::new();
//! grads.insert(&a, Tensor::from_vec(vec![3.0, 0.0], &[2]).unwrap());
//! grads.insert(&b, Tensor::from_vec(vec![4.0], &[1]).unwrap());
//! // the L2 norm of (3, 0, 4) is 5; scale = 1 / (5 + 1e-6)
//! let total = clip_grad_norm(&[a.clone(), b.clone()], &mut grads, 1.0, 2.0, false).unwrap();
//! assert_eq!(total, 5.0);
//! assert!((grads.get(&b).unwrap().to_vec()[0] - 0.8).abs() < 1e-6);
//! clip_grad_value(&[a.clone(), b.clone()], &mut grads, 0.7).unwrap();
//! assert_eq!(grads.get(&b).unwrap().to_vec(), vec![0.7]);
//! ```

use nw_autograd::{Grads, Param};
use rayon::prelude::*;

use crate::error::OptimError;
use crate::kernel::{CHUNK, PAR_MIN};

/// `Σ |x|^p` (or `max |x|` for p = ∞) of one slice in f64, over fixed chunks
/// combined in order: the same bits for any thread count.
fn power_sum(s: &[f32], p: f64) -> f64 {
    let chunk = |c: &[f32]| -> f64 {
        if p == f64::INFINITY {
            c.iter().fold(0.0f64, |m, &x| {
                let a = (x as f64).abs();
                if a.is_nan() || m.is_nan() { f64::NAN } else { m.max(a) }
            })
        } else if p == 1.0 {
            c.iter().map(|&x| (x as f64).abs()).sum()
        } else if p == 2.0 {
            c.iter().map(|&x| (x as f64) * (x as f64)).sum()
        } else {
            c.iter().map(|&x| (x as f64).abs().powf(p)).sum()
        }
    };
    let parts: Vec<f64> = if s.len() >= PAR_MIN {
        s.par_chunks(CHUNK).map(chunk).collect()
    } else {
        s.chunks(CHUNK).map(chunk).collect()
    };
    combine(parts.into_iter(), p)
}

fn combine(parts: impl Iterator<Item = f64>, p: f64) -> f64 {
    if p == f64::INFINITY {
        parts.fold(0.0, |m, x| if x.is_nan() || m.is_nan() { f64::NAN } else { m.max(x) })
    } else {
        parts.sum()
    }
}

fn check_norm_type(norm_type: f64) -> Result<(), OptimError> {
    if norm_type > 0.0 {
        Ok(())
    } else {
        Err(OptimError::InvalidHyper {
            owner: "clip_grad_norm",
            name: "norm_type",
            value: norm_type,
            reason: "must be > 0 (f64::INFINITY for the max norm)",
        })
    }
}

/// The `norm_type`-norm of all gradients of `params` taken as one vector
/// (parameters without a gradient are left out): `(Σ_i |g_i|^p)^(1/p)`, or
/// `max_i |g_i|` for `norm_type = f64::INFINITY`. Accumulated in f64.
pub fn grad_norm(params: &[Param], grads: &Grads, norm_type: f64) -> Result<f64, OptimError> {
    check_norm_type(norm_type)?;
    let parts = params.iter().filter_map(|p| grads.get(p)).map(|g| match g.as_slice() {
        Some(s) => power_sum(s, norm_type),
        None => power_sum(&g.to_vec(), norm_type),
    });
    let total = combine(parts, norm_type);
    Ok(if norm_type == f64::INFINITY || norm_type == 1.0 {
        total
    } else if norm_type == 2.0 {
        total.sqrt()
    } else {
        total.powf(1.0 / norm_type)
    })
}

/// Rescales the gradients of `params` so that their total norm is at most
/// `max_norm`, exactly as `torch.nn.utils.clip_grad_norm_`: with `total` the
/// [`grad_norm`] before clipping, every gradient is multiplied by
/// `max_norm / (total + 1e-6)` when that is below 1, and left alone otherwise.
/// Returns `total`.
///
/// A NaN or infinite total is an [`OptimError::NonFiniteNorm`] when
/// `error_if_nonfinite` (and then nothing changes); otherwise the gradients
/// are scaled as torch scales them (to NaN or 0).
pub fn clip_grad_norm(
    params: &[Param],
    grads: &mut Grads,
    max_norm: f64,
    norm_type: f64,
    error_if_nonfinite: bool,
) -> Result<f64, OptimError> {
    if max_norm.is_nan() || max_norm < 0.0 {
        return Err(OptimError::InvalidHyper {
            owner: "clip_grad_norm",
            name: "max_norm",
            value: max_norm,
            reason: "must be >= 0",
        });
    }
    let total = grad_norm(params, grads, norm_type)?;
    if !total.is_finite() && error_if_nonfinite {
        return Err(OptimError::NonFiniteNorm { norm_type, norm: total });
    }
    let coef = max_norm / (total + 1e-6);
    // torch multiplies by clamp(coef, max=1); a factor of 1 changes nothing,
    // so only a coefficient below 1 (or NaN) touches the gradients
    if coef < 1.0 || coef.is_nan() {
        let c = coef as f32;
        for p in params {
            if let Some(g) = grads.get_mut(p) {
                g.as_slice_mut().iter_mut().for_each(|x| *x *= c);
            }
        }
    }
    Ok(total)
}

/// Clamps every gradient element of `params` to `[-clip_value, clip_value]`,
/// as `torch.nn.utils.clip_grad_value_` (NaN stays NaN).
pub fn clip_grad_value(params: &[Param], grads: &mut Grads, clip_value: f64) -> Result<(), OptimError> {
    if clip_value.is_nan() || clip_value < 0.0 {
        return Err(OptimError::InvalidHyper {
            owner: "clip_grad_value",
            name: "clip_value",
            value: clip_value,
            reason: "must be >= 0",
        });
    }
    let v = clip_value as f32;
    for p in params {
        if let Some(g) = grads.get_mut(p) {
            g.as_slice_mut().iter_mut().for_each(|x| {
                if !x.is_nan() {
                    *x = x.clamp(-v, v)
                }
            });
        }
    }
    Ok(())
}
