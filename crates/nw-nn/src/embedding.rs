//! [`Embedding`]: a lookup table of vectors.

use nw_autograd::{Param, Var};
use nw_tensor::{Rng, Tensor};

use crate::error::{NnError, Result};
use crate::module::Module;

/// A table of `num_embeddings` vectors of size `embedding_dim`
/// (`weight: [num, dim]`, initialised `N(0, 1)` as PyTorch). The input
/// holds indices (integral values, any shape `S`); the output is
/// `S + [dim]`. The gradient of a row is the sum of the output gradients
/// of every position that looked it up.
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
        Ok(Embedding { weight: Param::new(w) })
    }

    /// A table with the given values (`[num, dim]`).
    pub fn from_tensor(weight: Tensor) -> Result<Self> {
        if weight.ndim() != 2 {
            return Err(NnError::config(
                "Embedding",
                format!("weight must be [num, dim], got {:?}", weight.shape()),
            ));
        }
        Ok(Embedding { weight: Param::new(weight) })
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
        let rows = Var::param(&self.weight).index_select(0, indices)?;
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

    fn describe(&self) -> String {
        let s = self.weight.shape();
        format!("Embedding({}, {})", s[0], s[1])
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
}
