//! Magnitude pruning with torch.nn.utils.prune semantics: per tensor
//! ([`l1_unstructured_mask`]), over several tensors together
//! ([`global_l1_unstructured_masks`]), whole slices by their Ln norm
//! ([`ln_structured_mask`]); a [`Pruner`] keeping one mask per parameter
//! and re-applying it after each step; gradual pruning on Zhu and Gupta's
//! cubic schedule ([`GradualSchedule`], [`GradualPruner`]).
//!
//! Masks are f32 tensors of the parameter's shape: 1 keeps, 0 prunes.
//!
//! ## Semantics (as torch.nn.utils.prune)
//! - `amount` is a fraction in `[0, 1]` or a count ([`Amount`]). A fraction
//!   prunes `round(amount * n)` units with Python's `round` (half to even:
//!   `0.75 * 30 = 22.5` prunes 22, as fixture `prune_l1_unstructured_0.75`
//!   shows).
//! - The pruned units are those with the smallest `|w|` (or smallest norm,
//!   for structured pruning).
//! - Pruning a parameter that already has a mask prunes `amount` of the
//!   units still unpruned (torch's `PruningContainer`), and the new mask is
//!   the product of the old one and the new selection.
//! - Ties. torch ranks with `topk`, whose order among equal values on CPU
//!   is whatever its partial sort leaves, i.e. unspecified. nw fixes it: of
//!   equal magnitudes the one with the lower (row-major, or concatenated for
//!   global pruning) index is pruned first. NaN counts as the largest
//!   magnitude (torch's topk comparator puts NaN above every number), so it
//!   is pruned last. The reference fixtures contain no ties (every |w|
//!   differs), so they pin down everything else.
//! - Structured pruning ranks slices by a norm computed in f64 from the
//!   current values, where torch computes it in f32 from `weight_orig`; for
//!   slices not yet pruned the values are the same.

mod gradual;
mod pruner;

pub use gradual::{GradualPruner, GradualSchedule};
pub use pruner::{ParamSparsity, Pruner, SparsityReport};

use nw_tensor::Tensor;

use crate::error::{RegError, Result};

/// How much to prune.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// A fraction in `[0, 1]` of the prunable units: `round(f * n)` of them
    /// (half to even).
    Fraction(f64),
    /// An exact number of units (at most the number prunable).
    Count(usize),
}

impl From<f64> for Amount {
    fn from(f: f64) -> Self {
        Amount::Fraction(f)
    }
}

impl From<usize> for Amount {
    fn from(c: usize) -> Self {
        Amount::Count(c)
    }
}

impl Amount {
    /// How many of `n` units to prune; an error if the amount does not fit.
    pub fn count(self, n: usize, op: &'static str) -> Result<usize> {
        match self {
            Amount::Fraction(f) => {
                if !(0.0..=1.0).contains(&f) {
                    return Err(RegError::BadAmount {
                        op,
                        reason: format!("fraction {f} is outside [0, 1]"),
                    });
                }
                // Python's round(): half to even.
                Ok(((f * n as f64).round_ties_even() as usize).min(n))
            }
            Amount::Count(c) if c > n => {
                Err(RegError::BadAmount { op, reason: format!("cannot prune {c} units out of {n} prunable") })
            }
            Amount::Count(c) => Ok(c),
        }
    }
}

/// Positions of `candidates` sorted by increasing `|score|`, ties by
/// position (stable sort), NaN last.
fn by_magnitude(scores: &[f32], mut candidates: Vec<usize>) -> Vec<usize> {
    candidates.sort_by(|&a, &b| scores[a].abs().total_cmp(&scores[b].abs()));
    candidates
}

/// Unstructured selection over one flat score vector with a prior 0/1 mask:
/// prunes `amount` of the still-unpruned entries, smallest `|score|` first.
pub(crate) fn unstructured(
    scores: &[f32],
    prior: &[f32],
    amount: Amount,
    op: &'static str,
) -> Result<Vec<f32>> {
    let remaining: Vec<usize> = (0..scores.len()).filter(|&i| prior[i] != 0.0).collect();
    let k = amount.count(remaining.len(), op)?;
    let mut mask: Vec<f32> = prior.iter().map(|&m| if m != 0.0 { 1.0 } else { 0.0 }).collect();
    for i in by_magnitude(scores, remaining).into_iter().take(k) {
        mask[i] = 0.0;
    }
    Ok(mask)
}

/// Prunes more entries (smallest `|score|` among those unpruned) until
/// `round(sparsity * n)` entries are pruned in all; never unprunes.
pub(crate) fn to_sparsity(
    scores: &[f32],
    prior: &[f32],
    sparsity: f64,
    op: &'static str,
) -> Result<Vec<f32>> {
    let target = Amount::Fraction(sparsity).count(scores.len(), op)?;
    let already = prior.iter().filter(|&&m| m == 0.0).count();
    let more = target.saturating_sub(already);
    unstructured(scores, prior, Amount::Count(more), op)
}

/// The mask of torch `prune.l1_unstructured(w, amount)`: the `amount`
/// entries of smallest `|w|` get 0, the rest 1.
///
/// ```
/// use nw_reg::prune::{Amount, l1_unstructured_mask};
/// use nw_tensor::Tensor;
///
/// let w = Tensor::from_vec(vec![0.5, -0.1, 2.0, -0.3], &[2, 2]).unwrap();
/// let m = l1_unstructured_mask(&w, Amount::Fraction(0.5)).unwrap();
/// assert_eq!(m.to_vec(), vec![1.0, 0.0, 1.0, 0.0]);
/// assert!(l1_unstructured_mask(&w, Amount::Fraction(1.5)).is_err());
/// ```
pub fn l1_unstructured_mask(w: &Tensor, amount: Amount) -> Result<Tensor> {
    let scores = w.to_vec();
    let prior = vec![1.0; scores.len()];
    let mask = unstructured(&scores, &prior, amount, "l1_unstructured")?;
    Ok(Tensor::from_vec(mask, w.shape())?)
}

/// The masks of torch `prune.global_unstructured(..., L1Unstructured,
/// amount)`: the entries of all tensors are ranked together (concatenated
/// in order, each flattened row-major) and the `amount` smallest `|w|` are
/// pruned wherever they are.
pub fn global_l1_unstructured_masks(ws: &[&Tensor], amount: Amount) -> Result<Vec<Tensor>> {
    let scores: Vec<f32> = ws.iter().flat_map(|w| w.to_vec()).collect();
    let prior = vec![1.0; scores.len()];
    let mask = unstructured(&scores, &prior, amount, "global_l1_unstructured")?;
    split_masks(&mask, ws.iter().map(|w| w.shape()))
}

/// Splits one concatenated flat mask into tensors of the given shapes.
pub(crate) fn split_masks<'a>(
    mask: &[f32],
    shapes: impl Iterator<Item = &'a [usize]>,
) -> Result<Vec<Tensor>> {
    let mut out = Vec::new();
    let mut at = 0;
    for shape in shapes {
        let n: usize = shape.iter().product();
        out.push(Tensor::from_vec(mask[at..at + n].to_vec(), shape)?);
        at += n;
    }
    Ok(out)
}

/// The Ln norm of each slice of `w` along `dim` (f64). `n` may be any
/// positive order, `f64::INFINITY` (max |x|), `f64::NEG_INFINITY` (min |x|)
/// or 0 (number of nonzeros), as torch.norm.
pub fn slice_norms(w: &Tensor, n: f64, dim: usize) -> Result<Vec<f64>> {
    let shape = w.shape();
    if dim >= shape.len() {
        return Err(RegError::BadArgument {
            op: "ln_structured",
            reason: format!("dim {dim} out of range for a tensor of shape {shape:?}"),
        });
    }
    if n.is_nan() || n < 0.0 {
        return Err(RegError::BadArgument {
            op: "ln_structured",
            reason: format!("norm order {n} must be >= 0"),
        });
    }
    let v = w.to_vec();
    let size = shape[dim];
    let inner: usize = shape[dim + 1..].iter().product();
    let outer: usize = shape[..dim].iter().product();
    let mut out = Vec::with_capacity(size);
    for j in 0..size {
        let elems = (0..outer).flat_map(|o| {
            let s = (o * size + j) * inner;
            v[s..s + inner].iter().map(|&x| (x as f64).abs())
        });
        let norm = if n == f64::INFINITY {
            elems.fold(0.0, f64::max)
        } else if n == f64::NEG_INFINITY {
            elems.fold(f64::INFINITY, f64::min)
        } else if n == 0.0 {
            elems.filter(|&x| x != 0.0).count() as f64
        } else {
            elems.map(|x| x.powf(n)).sum::<f64>().powf(1.0 / n)
        };
        out.push(norm);
    }
    Ok(out)
}

/// Structured pruning with a prior mask (see [`ln_structured_mask`]).
pub(crate) fn structured(w: &Tensor, prior: &[f32], amount: Amount, n: f64, dim: usize) -> Result<Vec<f32>> {
    let norms = slice_norms(w, n, dim)?;
    let shape = w.shape();
    let size = shape[dim];
    let inner: usize = shape[dim + 1..].iter().product();
    let outer: usize = shape[..dim].iter().product();
    let idx = |o: usize, j: usize, i: usize| (o * size + j) * inner + i;
    // slices with any unpruned entry are still prunable
    let alive: Vec<usize> =
        (0..size).filter(|&j| (0..outer).any(|o| (0..inner).any(|i| prior[idx(o, j, i)] != 0.0))).collect();
    let k = amount.count(alive.len(), "ln_structured")?;
    let mut order = alive;
    order.sort_by(|&a, &b| norms[a].total_cmp(&norms[b]));
    let mut mask: Vec<f32> = prior.iter().map(|&m| if m != 0.0 { 1.0 } else { 0.0 }).collect();
    for &j in order.iter().take(k) {
        for o in 0..outer {
            for i in 0..inner {
                mask[idx(o, j, i)] = 0.0;
            }
        }
    }
    Ok(mask)
}

/// The mask of torch `prune.ln_structured(w, amount, n, dim)`: the
/// `amount` slices along `dim` (rows of a linear weight for `dim = 0`,
/// i.e. whole output neurons; filters of a conv weight) with the smallest
/// Ln norm are zeroed whole.
///
/// ```
/// use nw_reg::prune::{Amount, ln_structured_mask};
/// use nw_tensor::Tensor;
///
/// // row L2 norms: 5, 0.5, 13
/// let w = Tensor::from_vec(vec![3.0, 4.0, 0.3, 0.4, 5.0, 12.0], &[3, 2]).unwrap();
/// let m = ln_structured_mask(&w, Amount::Count(1), 2.0, 0).unwrap();
/// assert_eq!(m.to_vec(), vec![1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
/// ```
pub fn ln_structured_mask(w: &Tensor, amount: Amount, n: f64, dim: usize) -> Result<Tensor> {
    let prior = vec![1.0; w.len()];
    Ok(Tensor::from_vec(structured(w, &prior, amount, n, dim)?, w.shape())?)
}
