//! A model's parameters as one flat vector and back: the search space of
//! the gradient-free methods.

use nw_autograd::Param;
use nw_tensor::Tensor;

use crate::error::{EvolveError, Result};

/// Total number of elements of `params`.
pub fn num_params(params: &[Param]) -> usize {
    params.iter().map(|p| p.len()).sum()
}

/// The values of `params`, each flattened row-major, concatenated in order.
pub fn flatten(params: &[Param]) -> Vec<f32> {
    let mut out = Vec::with_capacity(num_params(params));
    for p in params {
        out.extend(p.value().to_vec());
    }
    out
}

/// Writes `flat` back into `params` (the inverse of [`flatten`]). The
/// length must equal [`num_params`]; on a mismatch nothing is written.
pub fn unflatten(params: &[Param], flat: &[f32]) -> Result<()> {
    let expected = num_params(params);
    if flat.len() != expected {
        return Err(EvolveError::LengthMismatch { op: "unflatten", expected, got: flat.len() });
    }
    let mut at = 0;
    for p in params {
        let shape = p.shape();
        let n = p.len();
        p.set(Tensor::from_vec(flat[at..at + n].to_vec(), &shape)?)?;
        at += n;
    }
    Ok(())
}
