//! [`Embedding`]: a lookup table of vectors.

use nw_autograd::{Param, Var};
use nw_tensor::{Rng, Tensor};

use crate::error::{NnError, Result};
use crate::module::Module;

/// A table of `num_embeddings` vectors of size `embedding_dim`
/// (`weight: [num, dim]`, initialised `N(0, 1)` as PyTorch). The input
/// holds indices (integral values, any shape `S`); the output is
/// `S + [dim]`. The gradient of a row is the sum of the output gradients
/// of every position that looked it up, except for the row `padding_idx`
/// (torch's `padding_idx`): it is read as stored and its gradient is zero.
///
/// Built with [`Embedding::with_sparse`] (torch's `sparse=True`), the
/// gradient is row-sparse: the same dense tensor, plus the rows the batch
/// looked up ([`nw_autograd::Grads::rows`]: sorted, each once, without
/// `padding_idx`, as torch's coalesced sparse gradient), which row-sparse
/// optimizers (SparseAdam) update alone. Other optimizers read the dense
/// tensor as without it (where torch's Adam would refuse a sparse gradient).
///
/// ```
/// use nw_nn::{Embedding, Module};
/// use nw_tensor::Rng;
/// let e = Embedding::new(10, 4, &mut Rng::new(0));
/// let y = e.lookup(&[1, 7, 7], &[3]).unwrap();
/// assert_eq!(y.shape(), &[3, 4]);
/// ```
#[derive(Debug, Clone)]
pub struct Embedding {
    /// `[num_embeddings, embedding_dim]`.
    pub weight: Param,
    /// The row that gets no gradient, if any (set with [`Embedding::with_padding`]).
    padding_idx: Option<usize>,
    /// Whether the gradient reports its touched rows ([`Embedding::with_sparse`]).
    sparse: bool,
}

impl Embedding {
    /// A table drawn from `N(0, 1)`.
    ///
    /// # Panics
    /// When the table would exceed [`nw_tensor::MAX_ELEMENTS`] elements;
    /// sizes from files or configurations go through [`Embedding::try_new`].
    pub fn new(num_embeddings: usize, embedding_dim: usize, rng: &mut Rng) -> Self {
        Self::try_new(num_embeddings, embedding_dim, rng).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Embedding::new`] for sizes from files or configurations: a table of
    /// more than [`nw_tensor::MAX_ELEMENTS`] elements, an overflowing size or
    /// a refused allocation is an [`NnError::Config`], before anything is allocated.
    ///
    /// ```
    /// use nw_nn::Embedding;
    /// use nw_tensor::Rng;
    /// assert!(Embedding::try_new(10, 3, &mut Rng::new(0)).is_ok());
    /// assert!(Embedding::try_new(1 << 40, 1 << 30, &mut Rng::new(0)).is_err());
    /// ```
    pub fn try_new(num_embeddings: usize, embedding_dim: usize, rng: &mut Rng) -> Result<Self> {
        // the same draws and arithmetic as Tensor::randn(shape, 0, 1): mean + std * normal, row-major
        let (mean, std) = (0.0f64, 1.0f64);
        let w = Tensor::try_from_fn(&[num_embeddings, embedding_dim], || (mean + std * rng.normal()) as f32)
            .map_err(|e| NnError::config("Embedding", e.to_string()))?;
        Ok(Embedding { weight: Param::new(w), padding_idx: None, sparse: false })
    }

    /// A table drawn from `N(0, 1)` whose row `padding_idx` is then set to
    /// zeros and gets no gradient (torch `nn.Embedding(padding_idx=)`).
    /// Errors when `padding_idx` is not a row.
    pub fn with_padding_idx(
        num_embeddings: usize,
        embedding_dim: usize,
        padding_idx: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        if padding_idx >= num_embeddings {
            return Err(NnError::config(
                "Embedding",
                format!("padding_idx {padding_idx} is not below num_embeddings {num_embeddings}"),
            ));
        }
        // torch: normal_(0, 1) over the whole table, then the padding row zeroed
        let mut w = Self::try_new(num_embeddings, embedding_dim, rng)?.weight.value().to_vec();
        w[padding_idx * embedding_dim..(padding_idx + 1) * embedding_dim].fill(0.0);
        let weight = Tensor::from_vec(w, &[num_embeddings, embedding_dim])?;
        Embedding::from_tensor(weight)?.with_padding(padding_idx)
    }

    /// The same table with row `padding_idx` excluded from the gradient
    /// (its values are kept as they are). Errors when it is not a row.
    pub fn with_padding(mut self, padding_idx: usize) -> Result<Self> {
        let rows = self.weight.shape()[0];
        if padding_idx >= rows {
            return Err(NnError::config(
                "Embedding",
                format!("padding_idx {padding_idx} is not below num_embeddings {rows}"),
            ));
        }
        self.padding_idx = Some(padding_idx);
        Ok(self)
    }

    /// The row that gets no gradient, if any.
    pub fn padding_idx(&self) -> Option<usize> {
        self.padding_idx
    }

    /// The same table with a row-sparse gradient when `sparse` (torch's
    /// `nn.Embedding(sparse=True)`): the values and the dense gradient are
    /// unchanged, and the gradient also lists the rows looked up
    /// ([`nw_autograd::Grads::rows`]).
    ///
    /// ```
    /// use nw_nn::{Embedding, Module};
    /// use nw_tensor::Rng;
    /// let e = Embedding::new(10, 4, &mut Rng::new(0)).with_sparse(true);
    /// let g = e.lookup(&[7, 1, 7], &[3]).unwrap().sum().backward().unwrap();
    /// assert_eq!(g.rows(&e.weight), Some(&[1, 7][..]));
    /// assert_eq!(e.sparse_parameters(), ["weight"]);
    /// ```
    pub fn with_sparse(mut self, sparse: bool) -> Self {
        self.sparse = sparse;
        self
    }

    /// Whether the gradient is row-sparse ([`Embedding::with_sparse`]).
    pub fn is_sparse(&self) -> bool {
        self.sparse
    }

    /// A table with the given values (`[num, dim]`).
    pub fn from_tensor(weight: Tensor) -> Result<Self> {
        if weight.ndim() != 2 {
            return Err(NnError::config(
                "Embedding",
                format!("weight must be [num, dim], got {:?}", weight.shape()),
            ));
        }
        Ok(Embedding { weight: Param::new(weight), padding_idx: None, sparse: false })
    }

    /// Looks up `indices` (row-major, of shape `shape`).
    pub fn lookup(&self, indices: &[usize], shape: &[usize]) -> Result<Var> {
        if indices.len() != shape.iter().product::<usize>() {
            return Err(NnError::input(
                "Embedding",
                format!("{} indices do not fill shape {shape:?}", indices.len()),
            ));
        }
        let wshape = self.weight.shape();
        let table = Var::param(&self.weight);
        let rows = match self.sparse {
            true => table.sparse_embedding_rows(indices, self.padding_idx)?,
            false => table.embedding_rows(indices, self.padding_idx)?,
        };
        let mut out = shape.to_vec();
        out.push(wshape[1]);
        Ok(rows.reshape(&out)?)
    }
}

/// Converts index values held in a tensor to `usize`, rejecting negative or
/// fractional values.
pub(crate) fn tensor_indices(what: &'static str, t: &Tensor) -> Result<Vec<usize>> {
    t.to_vec()
        .into_iter()
        .map(|v| {
            if v >= 0.0 && v.fract() == 0.0 && v < 16_777_216.0 {
                Ok(v as usize)
            } else {
                Err(NnError::input(what, format!("{v} is not a valid index")))
            }
        })
        .collect()
}

impl Module for Embedding {
    /// `x` holds the indices as values (they are not differentiated).
    fn forward(&self, x: &Var) -> Result<Var> {
        let idx = tensor_indices("Embedding", x.value())?;
        self.lookup(&idx, x.shape())
    }

    fn named_parameters(&self) -> Vec<(String, Param)> {
        vec![("weight".into(), self.weight.clone())]
    }

    fn sparse_parameters(&self) -> Vec<String> {
        if self.sparse { vec!["weight".into()] } else { Vec::new() }
    }

    fn describe(&self) -> String {
        let s = self.weight.shape();
        let pad = self.padding_idx.map(|p| format!(", padding_idx={p}")).unwrap_or_default();
        let sparse = if self.sparse { ", sparse=True" } else { "" };
        format!("Embedding({}, {}{pad}{sparse})", s[0], s[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_indices_are_errors() {
        let e = Embedding::new(3, 2, &mut Rng::new(0));
        assert!(e.lookup(&[3], &[1]).is_err());
        assert!(e.lookup(&[0, 1], &[3]).is_err());
        let x = Var::constant(Tensor::from_vec(vec![0.5], &[1]).unwrap());
        assert!(e.forward(&x).is_err());
        let x = Var::constant(Tensor::from_vec(vec![-1.0], &[1]).unwrap());
        assert!(e.forward(&x).is_err());
    }

    #[test]
    fn repeated_rows_accumulate_gradient() {
        let e = Embedding::from_tensor(Tensor::zeros(&[3, 2])).unwrap();
        let y = e.lookup(&[2, 2, 0], &[3]).unwrap().sum();
        let g = y.backward().unwrap();
        // row 2 used twice, row 0 once, row 1 never
        assert_eq!(g.get(&e.weight).unwrap().to_vec(), vec![1.0, 1.0, 0.0, 0.0, 2.0, 2.0]);
    }

    #[test]
    fn padding_row_is_zeroed_at_init_and_gets_no_gradient() {
        let e = Embedding::with_padding_idx(4, 3, 1, &mut Rng::new(0)).unwrap();
        let w = e.weight.value().to_vec();
        assert_eq!(&w[3..6], &[0.0; 3]);
        // the other rows are the plain draws, in the same order as torch (draw, then zero the row)
        let plain = Embedding::new(4, 3, &mut Rng::new(0)).weight.value().to_vec();
        assert_eq!(&w[..3], &plain[..3]);
        assert_eq!(&w[6..], &plain[6..]);
        // read as stored (here set to ones), gradient zero
        let e = Embedding::from_tensor(Tensor::ones(&[3, 2])).unwrap().with_padding(2).unwrap();
        let y = e.lookup(&[2, 0, 2], &[3]).unwrap();
        assert_eq!(y.value().to_vec(), vec![1.0; 6]);
        let g = y.sum().backward().unwrap();
        assert_eq!(g.get(&e.weight).unwrap().to_vec(), vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        assert!(e.describe().contains("padding_idx=2"));
        assert!(Embedding::with_padding_idx(4, 3, 4, &mut Rng::new(0)).is_err());
        assert!(Embedding::from_tensor(Tensor::ones(&[3, 2])).unwrap().with_padding(3).is_err());
    }

    #[test]
    fn sparse_gradient_is_the_dense_one_plus_the_looked_up_rows() {
        // torch 2.15, nn.Embedding(5, 2, sparse=True, padding_idx=1) on
        // [[3, 1, 3], [0, 1, 4]] with the output gradient of position (1, 2)
        // zero: coalesce().indices() = [0, 3, 4] (row 4 listed with zero
        // values, padding row 1 left out); without padding_idx: [0, 1, 3, 4]
        let t = Tensor::from_vec((0..10).map(|v| v as f32).collect(), &[5, 2]).unwrap();
        let idx = [3, 1, 3, 0, 1, 4];
        let mut go = vec![1.0f32; 12];
        go[10..].fill(0.0);
        let go = Tensor::from_vec(go, &[2, 3, 2]).unwrap();
        for (pad, want_rows) in [(Some(1), vec![0, 3, 4]), (None, vec![0, 1, 3, 4])] {
            let mut dense = Embedding::from_tensor(t.clone()).unwrap();
            if let Some(p) = pad {
                dense = dense.with_padding(p).unwrap();
            }
            let sparse = dense.clone().with_sparse(true);
            assert!(sparse.is_sparse() && !dense.is_sparse());
            let gd = dense.lookup(&idx, &[2, 3]).unwrap().backward_with(go.clone()).unwrap();
            let gs = sparse.lookup(&idx, &[2, 3]).unwrap().backward_with(go.clone()).unwrap();
            assert_eq!(gd.rows(&dense.weight), None);
            assert_eq!(gs.rows(&sparse.weight), Some(want_rows.as_slice()));
            let bits = |g: &nw_autograd::Grads| g.get(&sparse.weight).unwrap().to_vec();
            assert_eq!(bits(&gd), bits(&gs));
        }
        let e = Embedding::from_tensor(t).unwrap().with_padding(1).unwrap().with_sparse(true);
        assert_eq!(e.describe(), "Embedding(5, 2, padding_idx=1, sparse=True)");
        assert_eq!(e.sparse_parameters(), ["weight"]);
        assert!(e.clone().with_sparse(false).sparse_parameters().is_empty());
    }

    #[test]
    fn a_dense_use_of_the_same_table_makes_the_gradient_dense() {
        // weight tying: the sparse lookup's rows no longer cover the gradient
        let e = Embedding::from_tensor(Tensor::ones(&[3, 2])).unwrap().with_sparse(true);
        let looked = e.lookup(&[2], &[1]).unwrap().sum();
        let g = looked.add(&Var::param(&e.weight).sum()).unwrap().backward().unwrap();
        assert_eq!(g.rows(&e.weight), None);
        assert_eq!(g.get(&e.weight).unwrap().to_vec(), vec![1.0, 1.0, 1.0, 1.0, 2.0, 2.0]);
        // dense first, then sparse (the other order in the sweep)
        let g = Var::param(&e.weight)
            .sum()
            .add(&e.lookup(&[2], &[1]).unwrap().sum())
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(g.rows(&e.weight), None);
        // two sparse lookups: rows united
        let a = e.lookup(&[2], &[1]).unwrap().sum();
        let b = e.lookup(&[0, 2], &[2]).unwrap().sum();
        let g = a.add(&b).unwrap().backward().unwrap();
        assert_eq!(g.rows(&e.weight), Some(&[0, 2][..]));
    }
}
