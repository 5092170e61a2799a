//! [`Pruner`]: one 0/1 mask per parameter, applied to weights after each
//! optimizer step and to gradients before it, and sparsity reports.

use std::collections::HashMap;
use std::fmt;

use nw_autograd::{Grads, NodeId, Param};
use nw_tensor::Tensor;

use super::{Amount, split_masks, structured, to_sparsity, unstructured};
use crate::error::{RegError, Result};

/// Masks per parameter (keyed by [`Param::id`]). Every pruning call zeroes
/// the newly pruned weights at once (as torch's `prune.*` functions do);
/// afterwards call [`Pruner::mask_grads`] before the optimizer step and
/// [`Pruner::apply`] after it, so pruned weights stay exactly zero whatever
/// the optimizer does (momentum, Adam's state and decoupled weight decay can
/// all move a weight whose gradient is zero).
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_reg::prune::{Amount, Pruner};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::from_vec(vec![0.5, -0.1, 2.0, -0.3], &[2, 2]).unwrap());
/// let mut pruner = Pruner::new();
/// pruner.l1_unstructured(&w, Amount::Fraction(0.5)).unwrap();
/// assert_eq!(w.value().to_vec(), vec![0.5, 0.0, 2.0, 0.0]);
///
/// // an optimizer step that would revive the pruned weights
/// w.update(|t| t.as_slice_mut().iter_mut().for_each(|x| *x += 1.0));
/// pruner.apply(&[w.clone()]).unwrap();
/// assert_eq!(w.value().to_vec(), vec![1.5, 0.0, 3.0, 0.0]);
///
/// let mut grads = Grads::new();
/// grads.insert(&w, Tensor::ones(&[2, 2]));
/// pruner.mask_grads(&[w.clone()], &mut grads).unwrap();
/// assert_eq!(grads.get(&w).unwrap().to_vec(), vec![1.0, 0.0, 1.0, 0.0]);
/// assert_eq!(pruner.report(&[w]).overall_sparsity(), 0.5);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Pruner {
    masks: HashMap<NodeId, Tensor>,
}

impl Pruner {
    /// No masks.
    pub fn new() -> Self {
        Self::default()
    }

    /// The mask of `p`, if it has been pruned.
    pub fn mask(&self, p: &Param) -> Option<&Tensor> {
        self.masks.get(&p.id())
    }

    /// Number of parameters with a mask.
    pub fn len(&self) -> usize {
        self.masks.len()
    }

    /// Whether no parameter has a mask.
    pub fn is_empty(&self) -> bool {
        self.masks.is_empty()
    }

    /// The current mask of `p` as a flat vector (all ones when unpruned).
    fn prior(&self, p: &Param) -> Vec<f32> {
        match self.masks.get(&p.id()) {
            Some(m) => m.to_vec(),
            None => vec![1.0; p.len()],
        }
    }

    /// Stores `mask` for `p` (replacing any earlier one) and zeroes the
    /// pruned weights. The mask must have `p`'s shape and hold only 0 and 1.
    pub fn set_mask(&mut self, p: &Param, mask: Tensor) -> Result<()> {
        if mask.shape() != p.shape().as_slice() {
            return Err(RegError::ShapeMismatch {
                op: "Pruner::set_mask",
                lhs: p.shape(),
                rhs: mask.shape().to_vec(),
            });
        }
        if let Some(bad) = mask.to_vec().into_iter().find(|&m| m != 0.0 && m != 1.0) {
            return Err(RegError::BadArgument {
                op: "Pruner::set_mask",
                reason: format!("a mask holds only 0 and 1, found {bad}"),
            });
        }
        zero_pruned(p, &mask);
        self.masks.insert(p.id(), mask);
        Ok(())
    }

    /// Removes and returns `p`'s mask; the weights keep their zeros but are
    /// no longer held at zero (torch `prune.remove`).
    pub fn remove(&mut self, p: &Param) -> Option<Tensor> {
        self.masks.remove(&p.id())
    }

    /// torch `prune.l1_unstructured(module, name, amount)`: prunes `amount`
    /// of `p`'s still-unpruned entries, smallest `|w|` first.
    pub fn l1_unstructured(&mut self, p: &Param, amount: Amount) -> Result<()> {
        let mask = unstructured(&p.value().to_vec(), &self.prior(p), amount, "l1_unstructured")?;
        self.set_mask(p, Tensor::from_vec(mask, &p.shape())?)
    }

    /// torch `prune.global_unstructured(params, L1Unstructured, amount)`:
    /// ranks the still-unpruned entries of all `params` together.
    pub fn global_l1_unstructured(&mut self, params: &[Param], amount: Amount) -> Result<()> {
        let (scores, prior) = self.concat(params)?;
        let mask = unstructured(&scores, &prior, amount, "global_l1_unstructured")?;
        self.set_split(params, &mask)
    }

    /// torch `prune.ln_structured(module, name, amount, n, dim)`: zeroes the
    /// `amount` still-unpruned slices along `dim` of smallest Ln norm.
    pub fn ln_structured(&mut self, p: &Param, amount: Amount, n: f64, dim: usize) -> Result<()> {
        let mask = structured(&p.value(), &self.prior(p), amount, n, dim)?;
        self.set_mask(p, Tensor::from_vec(mask, &p.shape())?)
    }

    /// Prunes more of `p` by magnitude until `round(sparsity * n)` entries
    /// are pruned (a no-op if that many already are); never unprunes.
    pub fn l1_to_sparsity(&mut self, p: &Param, sparsity: f64) -> Result<()> {
        let mask = to_sparsity(&p.value().to_vec(), &self.prior(p), sparsity, "l1_to_sparsity")?;
        self.set_mask(p, Tensor::from_vec(mask, &p.shape())?)
    }

    /// [`Pruner::l1_to_sparsity`] over all `params` ranked together.
    pub fn global_l1_to_sparsity(&mut self, params: &[Param], sparsity: f64) -> Result<()> {
        let (scores, prior) = self.concat(params)?;
        let mask = to_sparsity(&scores, &prior, sparsity, "global_l1_to_sparsity")?;
        self.set_split(params, &mask)
    }

    fn concat(&self, params: &[Param]) -> Result<(Vec<f32>, Vec<f32>)> {
        for (i, p) in params.iter().enumerate() {
            if params[..i].iter().any(|q| q.id() == p.id()) {
                return Err(RegError::ParamMismatch {
                    op: "global pruning",
                    reason: format!("{p:?} is listed twice"),
                });
            }
        }
        let scores = params.iter().flat_map(|p| p.value().to_vec()).collect();
        let prior = params.iter().flat_map(|p| self.prior(p)).collect();
        Ok((scores, prior))
    }

    fn set_split(&mut self, params: &[Param], mask: &[f32]) -> Result<()> {
        let shapes: Vec<Vec<usize>> = params.iter().map(|p| p.shape()).collect();
        let masks = split_masks(mask, shapes.iter().map(|s| s.as_slice()))?;
        for (p, m) in params.iter().zip(masks) {
            self.set_mask(p, m)?;
        }
        Ok(())
    }

    /// Re-applies the masks: every pruned weight of `params` is set to 0.
    /// Parameters without a mask are left alone. Call after each step.
    pub fn apply(&self, params: &[Param]) -> Result<()> {
        for p in params {
            if let Some(m) = self.masks.get(&p.id()) {
                check_shape("Pruner::apply", p, m)?;
            }
        }
        for p in params {
            if let Some(m) = self.masks.get(&p.id()) {
                zero_pruned(p, m);
            }
        }
        Ok(())
    }

    /// Sets the gradient of every pruned weight of `params` to 0 (so the
    /// optimizer's statistics never see it). Missing gradients are skipped.
    pub fn mask_grads(&self, params: &[Param], grads: &mut Grads) -> Result<()> {
        for p in params {
            if let (Some(m), Some(g)) = (self.masks.get(&p.id()), grads.get(p))
                && g.shape() != m.shape()
            {
                return Err(RegError::ShapeMismatch {
                    op: "Pruner::mask_grads",
                    lhs: m.shape().to_vec(),
                    rhs: g.shape().to_vec(),
                });
            }
        }
        for p in params {
            if let (Some(m), Some(g)) = (self.masks.get(&p.id()), grads.get_mut(p)) {
                zero_where(g, m);
            }
        }
        Ok(())
    }

    /// Sparsity of each parameter (in the order given) and overall: actual
    /// zeros in the values and entries held at zero by a mask.
    pub fn report(&self, params: &[Param]) -> SparsityReport {
        let params = params
            .iter()
            .enumerate()
            .map(|(index, p)| {
                let v = p.value().to_vec();
                let zeros = v.iter().filter(|&&x| x == 0.0).count();
                let masked =
                    self.masks.get(&p.id()).map_or(0, |m| m.to_vec().iter().filter(|&&x| x == 0.0).count());
                ParamSparsity { index, shape: p.shape(), len: v.len(), zeros, masked }
            })
            .collect();
        SparsityReport { params }
    }
}

fn check_shape(op: &'static str, p: &Param, m: &Tensor) -> Result<()> {
    if m.shape() == p.shape().as_slice() {
        Ok(())
    } else {
        Err(RegError::ShapeMismatch { op, lhs: m.shape().to_vec(), rhs: p.shape() })
    }
}

/// `t[i] = 0` wherever `mask[i] == 0` (exact zeros, even for NaN or -x).
fn zero_where(t: &mut Tensor, mask: &Tensor) {
    let m = mask.to_vec();
    t.as_slice_mut().iter_mut().zip(m).for_each(|(x, m)| {
        if m == 0.0 {
            *x = 0.0;
        }
    });
}

fn zero_pruned(p: &Param, mask: &Tensor) {
    p.update(|w| zero_where(w, mask));
}

/// Sparsity of one parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSparsity {
    /// Position in the list given to [`Pruner::report`].
    pub index: usize,
    /// The parameter's shape.
    pub shape: Vec<usize>,
    /// Number of entries.
    pub len: usize,
    /// Entries whose value is exactly 0.
    pub zeros: usize,
    /// Entries a mask holds at 0 (0 for an unpruned parameter).
    pub masked: usize,
}

impl ParamSparsity {
    /// `zeros / len` (0 for an empty parameter).
    pub fn sparsity(&self) -> f64 {
        if self.len == 0 { 0.0 } else { self.zeros as f64 / self.len as f64 }
    }
}

/// Sparsity per parameter and overall. `Display` prints one line per
/// parameter and a total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparsityReport {
    /// One entry per parameter, in the order given.
    pub params: Vec<ParamSparsity>,
}

impl SparsityReport {
    /// Total entries.
    pub fn len(&self) -> usize {
        self.params.iter().map(|p| p.len).sum()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total zero entries.
    pub fn zeros(&self) -> usize {
        self.params.iter().map(|p| p.zeros).sum()
    }

    /// Total masked entries.
    pub fn masked(&self) -> usize {
        self.params.iter().map(|p| p.masked).sum()
    }

    /// Zero entries over all entries (0 when empty).
    pub fn overall_sparsity(&self) -> f64 {
        if self.is_empty() { 0.0 } else { self.zeros() as f64 / self.len() as f64 }
    }
}

impl fmt::Display for SparsityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.params {
            writeln!(
                f,
                "param {:>3} {:<16} {:>8} zero of {:>8} ({:>6.2}%), {} masked",
                p.index,
                format!("{:?}", p.shape),
                p.zeros,
                p.len,
                100.0 * p.sparsity(),
                p.masked
            )?;
        }
        write!(f, "overall {} zero of {} ({:.2}%)", self.zeros(), self.len(), 100.0 * self.overall_sparsity())
    }
}
