//! Gradients as a value: what `backward()` returns.

use std::collections::HashMap;

use nw_tensor::{Tensor, TensorError};

use crate::error::{AutogradError, Result};
use crate::param::{NodeId, Param};
use crate::var::Var;

/// The gradients of one backward sweep, keyed by the id of each leaf
/// (parameter or input variable) that required a gradient.
///
/// # Row-sparse gradients
/// A gradient is stored as a dense tensor of its leaf's shape. A leaf that
/// only sparse lookups read (an [`Var::sparse_embedding_rows`] table: nw-nn's
/// `Embedding` built with `sparse = true`) also has its *touched rows*
/// ([`Grads::rows`]): the axis-0 indices the sweep looked up, sorted, each
/// once, without the lookup's `padding_idx`. They are torch's
/// `weight.grad.coalesce().indices()` of `nn.Embedding(sparse=True)`: every
/// looked-up row is listed, also one whose gradient values came out zero,
/// and the dense tensor is zero outside them. Row-sparse optimizers
/// (SparseAdam) update exactly those rows. Every other gradient has no rows
/// (`rows` is `None`), and nothing about it changes.
///
/// A gradient stays row-sparse only while every contribution to it is: a
/// dense contribution (the same table also read by a dense op, a penalty
/// added with [`Grads::accumulate`], a value set with [`Grads::insert`])
/// makes it dense, as adding a dense tensor to a sparse one does in torch.
/// [`Grads::merge`] of two row-sparse gradients unites their rows.
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_tensor::Tensor;
/// let w = Param::new(Tensor::zeros(&[4, 2]));
/// let mut g = Grads::new();
/// g.insert_sparse(&w, Tensor::ones(&[4, 2]), vec![3, 1, 3]).unwrap();
/// assert_eq!(g.rows(&w), Some(&[1, 3][..]));
/// g.accumulate(w.id(), Tensor::ones(&[4, 2])); // a dense term: dense from now on
/// assert_eq!(g.rows(&w), None);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Grads {
    map: HashMap<NodeId, Tensor>,
    /// Touched rows (sorted, unique) of the row-sparse gradients only.
    rows: HashMap<NodeId, Vec<usize>>,
}

impl Grads {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The gradient of a parameter, if it took part in the graph.
    pub fn get(&self, p: &Param) -> Option<&Tensor> {
        self.map.get(&p.id())
    }

    /// The gradient of a leaf variable (an input made with [`Var::leaf`]).
    pub fn wrt(&self, v: &Var) -> Option<&Tensor> {
        self.map.get(&v.id())
    }

    /// The gradient stored under `id`.
    pub fn get_id(&self, id: NodeId) -> Option<&Tensor> {
        self.map.get(&id)
    }

    /// The touched rows of a row-sparse gradient (sorted, unique axis-0
    /// indices; the gradient is zero outside them), `None` for a dense
    /// gradient or none at all. See [the type's docs](Grads#row-sparse-gradients).
    pub fn rows(&self, p: &Param) -> Option<&[usize]> {
        self.rows.get(&p.id()).map(Vec::as_slice)
    }

    /// Sets the gradient of a parameter (tests, custom gradient sources,
    /// gradient-free methods that estimate gradients). The gradient is dense.
    pub fn insert(&mut self, p: &Param, g: Tensor) {
        self.rows.remove(&p.id());
        self.map.insert(p.id(), g);
    }

    /// Sets a row-sparse gradient of a parameter: `g` (dense, of the
    /// parameter's shape) and the axis-0 `rows` it touches, in any order and
    /// with repeats (they are sorted and deduplicated, as torch coalesces).
    /// The values of `g` outside `rows` are the caller's to keep zero.
    ///
    /// # Errors
    /// When `g` is a scalar or a row is not below `g.shape()[0]`; then
    /// nothing changes.
    pub fn insert_sparse(&mut self, p: &Param, g: Tensor, mut rows: Vec<usize>) -> Result<()> {
        let n = match g.shape().first() {
            Some(&n) => n,
            None => {
                return Err(AutogradError::InvalidArgument {
                    op: "Grads::insert_sparse",
                    reason: "a row-sparse gradient needs at least one dimension".into(),
                });
            }
        };
        if let Some(&r) = rows.iter().find(|&&r| r >= n) {
            return Err(TensorError::IndexOutOfRange {
                op: "Grads::insert_sparse",
                index: r as i64,
                size: n,
            }
            .into());
        }
        rows.sort_unstable();
        rows.dedup();
        self.map.insert(p.id(), g);
        self.rows.insert(p.id(), rows);
        Ok(())
    }

    /// Mutable access to a parameter's gradient (clipping, penalties).
    /// A row-sparse gradient keeps its rows: change values in place only in
    /// ways that keep zeros zero (scaling, masking); add a dense term with
    /// [`Grads::accumulate`], which makes the gradient dense.
    pub fn get_mut(&mut self, p: &Param) -> Option<&mut Tensor> {
        self.map.get_mut(&p.id())
    }

    /// Adds the dense `g` into the gradient stored under `id` (accumulation
    /// when a value is used more than once, or over micro-batches). A
    /// row-sparse gradient becomes dense.
    pub fn accumulate(&mut self, id: NodeId, g: Tensor) {
        self.rows.remove(&id);
        self.add(id, g);
    }

    /// Adds the row-sparse `g` touching `rows` (sorted, unique) into the
    /// gradient stored under `id`: the rows are united when the stored
    /// gradient is row-sparse or absent; a dense stored gradient stays dense.
    pub(crate) fn accumulate_rows(&mut self, id: NodeId, g: Tensor, rows: Vec<usize>) {
        if !self.map.contains_key(&id) {
            self.rows.insert(id, rows);
        } else if let Some(have) = self.rows.get_mut(&id) {
            have.extend(rows);
            have.sort_unstable();
            have.dedup();
        }
        self.add(id, g);
    }

    fn add(&mut self, id: NodeId, g: Tensor) {
        match self.map.get_mut(&id) {
            Some(acc) => acc.add_assign(&g).expect("gradients of one leaf share its shape"),
            None => {
                self.map.insert(id, g);
            }
        }
    }

    /// Adds every gradient of `other` into this store (row-sparse
    /// gradients stay row-sparse when both sides are, with their rows united).
    pub fn merge(&mut self, mut other: Grads) {
        for (id, g) in other.map {
            match other.rows.remove(&id) {
                Some(rows) => self.accumulate_rows(id, g, rows),
                None => self.accumulate(id, g),
            }
        }
    }

    /// Number of stored gradients.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no gradient is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All `(id, gradient)` pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &Tensor)> {
        self.map.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Param {
        Param::new(Tensor::zeros(&[5, 2]))
    }

    #[test]
    fn dense_gradients_have_no_rows() {
        let w = p();
        let mut g = Grads::new();
        g.insert(&w, Tensor::ones(&[5, 2]));
        assert_eq!(g.rows(&w), None);
        g.accumulate(w.id(), Tensor::ones(&[5, 2]));
        assert_eq!(g.rows(&w), None);
        assert_eq!(g.get(&w).unwrap().to_vec(), vec![2.0; 10]);
    }

    #[test]
    fn insert_sparse_coalesces_and_checks_rows() {
        let w = p();
        let mut g = Grads::new();
        g.insert_sparse(&w, Tensor::zeros(&[5, 2]), vec![4, 0, 4, 2]).unwrap();
        assert_eq!(g.rows(&w), Some(&[0, 2, 4][..]));
        // out of range, or no axis 0: an error, nothing changed
        assert!(g.insert_sparse(&w, Tensor::zeros(&[5, 2]), vec![5]).is_err());
        assert!(g.insert_sparse(&w, Tensor::scalar(1.0), vec![0]).is_err());
        assert_eq!(g.rows(&w), Some(&[0, 2, 4][..]));
        // a dense insert replaces it
        g.insert(&w, Tensor::zeros(&[5, 2]));
        assert_eq!(g.rows(&w), None);
    }

    #[test]
    fn merge_unites_rows_only_when_both_sides_are_sparse() {
        let w = p();
        let sparse = |rows: Vec<usize>| {
            let mut g = Grads::new();
            g.insert_sparse(&w, Tensor::ones(&[5, 2]), rows).unwrap();
            g
        };
        let mut a = sparse(vec![3, 1]);
        a.merge(sparse(vec![1, 0]));
        assert_eq!(a.rows(&w), Some(&[0, 1, 3][..]));
        assert_eq!(a.get(&w).unwrap().to_vec(), vec![2.0; 10]);
        // absent on one side: the other side's rows
        let mut e = Grads::new();
        e.merge(sparse(vec![2]));
        assert_eq!(e.rows(&w), Some(&[2][..]));
        // dense on either side: dense
        let mut d = Grads::new();
        d.insert(&w, Tensor::ones(&[5, 2]));
        let mut s = sparse(vec![2]);
        s.merge(d.clone());
        assert_eq!(s.rows(&w), None);
        d.merge(sparse(vec![2]));
        assert_eq!(d.rows(&w), None);
    }
}
