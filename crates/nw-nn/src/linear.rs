//! [`Linear`]: `y = x W^T + b`.

use nw_autograd::{Param, Var, is_grad_enabled};
use nw_tensor::{Rng, Tensor};

use crate::error::{NnError, Result};
use crate::init;
use crate::module::Module;

/// A fully connected layer `y = x W^T + b` with PyTorch's layout
/// (`weight: [out_features, in_features]`, `bias: [out_features]`) and
/// default initialisation (both `U(-1/sqrt(in), 1/sqrt(in))`, weight drawn
/// first). The input is `[..., in_features]`; leading dimensions are kept.
///
/// ```
/// use nw_autograd::Var;
/// use nw_nn::{Linear, Module};
/// use nw_tensor::{Rng, Tensor};
/// let lin = Linear::new(784, 512, &mut Rng::new(0));
/// assert_eq!(lin.num_parameters(), 784 * 512 + 512);
/// let y = lin.forward(&Var::constant(Tensor::zeros(&[128, 784]))).unwrap();
/// assert_eq!(y.shape(), &[128, 512]);
/// ```
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out_features, in_features]`.
    pub weight: Param,
    /// `[out_features]`, if the layer has a bias.
    pub bias: Option<Param>,
}

impl Linear {
    /// A layer with a bias, initialised as PyTorch does.
    ///
    /// # Panics
    /// When the weight would exceed [`nw_tensor::MAX_ELEMENTS`] elements;
    /// sizes from files or configurations go through [`Linear::try_new`].
    pub fn new(in_features: usize, out_features: usize, rng: &mut Rng) -> Self {
        Self::with_bias(in_features, out_features, true, rng)
    }

    /// A layer with or without a bias, initialised as PyTorch does.
    ///
    /// # Panics
    /// As [`Linear::new`]; see [`Linear::try_with_bias`].
    pub fn with_bias(in_features: usize, out_features: usize, bias: bool, rng: &mut Rng) -> Self {
        Self::try_with_bias(in_features, out_features, bias, rng).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Linear::new`] for sizes from files or configurations: a weight of
    /// more than [`nw_tensor::MAX_ELEMENTS`] elements, an overflowing size or
    /// a refused allocation is an [`NnError::Config`], checked before
    /// anything is allocated.
    ///
    /// ```
    /// use nw_nn::Linear;
    /// use nw_tensor::Rng;
    /// assert!(Linear::try_new(784, 512, &mut Rng::new(0)).is_ok());
    /// // 10^12 parameters are refused, not allocated
    /// let e = Linear::try_new(1_000_000, 1_000_000, &mut Rng::new(0)).unwrap_err();
    /// assert!(e.to_string().contains("too large"), "{e}");
    /// ```
    pub fn try_new(in_features: usize, out_features: usize, rng: &mut Rng) -> Result<Self> {
        Self::try_with_bias(in_features, out_features, true, rng)
    }

    /// [`Linear::with_bias`] for sizes from files or configurations (see [`Linear::try_new`]).
    pub fn try_with_bias(in_features: usize, out_features: usize, bias: bool, rng: &mut Rng) -> Result<Self> {
        let shape = [out_features, in_features];
        let fail = |e: init::InitError| NnError::config("Linear", e.to_string());
        // kaiming_uniform(a = sqrt 5) on a 2-D shape fails only on an empty
        // fan (in_features = 0: an empty weight, nothing to draw) or a size limit
        let w = match init::default_weight(&shape, rng) {
            Ok(w) => w,
            Err(init::InitError::ZeroFan { .. }) => Tensor::try_zeros(&shape)?,
            Err(e) => return Err(fail(e)),
        };
        let b = match bias {
            true => Some(Param::new(init::default_bias(out_features, in_features, rng).map_err(fail)?)),
            false => None,
        };
        Ok(Linear { weight: Param::new(w), bias: b })
    }

    /// A layer with the given values (checked: weight 2-D, bias `[out]`).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        if weight.ndim() != 2 {
            return Err(NnError::config(
                "Linear",
                format!("weight must be [out, in], got {:?}", weight.shape()),
            ));
        }
        if let Some(b) = &bias
            && b.shape() != [weight.shape()[0]]
        {
            return Err(NnError::config(
                "Linear",
                format!("bias {:?} does not match weight {:?}", b.shape(), weight.shape()),
            ));
        }
        Ok(Linear { weight: Param::new(weight), bias: bias.map(Param::new) })
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl Linear {
    /// `x W^T + b` for a 2-D `x`. Without a graph ([`nw_autograd::no_grad`],
    /// inference) the product reads `W^T` from its cached GEMM pack
    /// ([`Param::packed_transpose`]) instead of packing it on every call;
    /// the bits are those of [`Var::linear`] either way.
    fn linear_2d(&self, x: &Var, w: &Var, b: Option<&Var>) -> Result<Var> {
        let rows = x.shape()[0];
        if is_grad_enabled() || rows <= nw_tensor::gemm::GEMV_MAX_M {
            return Ok(x.linear(w, b)?);
        }
        let packed = self.weight.packed_transpose()?;
        let out = self.out_features();
        // As `Var::linear`: C starts as the broadcast bias (beta 1) or is
        // written without being read (beta 0).
        let (mut y, beta) = match b {
            Some(b) => (b.value().broadcast_to(&[rows, out])?, 1.0),
            None => (nw_tensor::Tensor::zeros(&[rows, out]), 0.0),
        };
        y.gemm_acc_packed(1.0, x.value(), &packed, beta)?;
        Ok(Var::constant(y))
    }
}

impl Module for Linear {
    fn forward(&self, x: &Var) -> Result<Var> {
        let w = Var::param(&self.weight);
        let b = self.bias.as_ref().map(Var::param);
        let shape = x.shape().to_vec();
        let inf = self.in_features();
        if shape.last() != Some(&inf) {
            return Err(NnError::input(
                "Linear",
                format!("input {shape:?} must end in in_features = {inf} (weight {:?})", self.weight.shape()),
            ));
        }
        if shape.len() == 2 {
            return self.linear_2d(x, &w, b.as_ref());
        }
        // [..., in] -> [rows, in] -> [rows, out] -> [..., out]
        let rows: usize = shape[..shape.len() - 1].iter().product();
        let y = self.linear_2d(&x.reshape(&[rows, inf])?, &w, b.as_ref())?;
        let mut out = shape;
        *out.last_mut().expect("non-empty") = self.out_features();
        Ok(y.reshape(&out)?)
    }

    fn named_parameters(&self) -> Vec<(String, Param)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }

    fn describe(&self) -> String {
        format!(
            "Linear(in_features={}, out_features={}, bias={})",
            self.in_features(),
            self.out_features(),
            self.bias.is_some()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_reuses_the_weight_pack_and_never_a_stale_one() {
        // no_grad forward (packed W^T) gives the bits of the graph forward,
        // packs once while the weight is unchanged, and follows updates.
        let mut rng = Rng::new(3);
        for bias in [true, false] {
            let l = Linear::with_bias(70, 45, bias, &mut rng);
            let x = Var::constant(Tensor::randn(&[33, 70], 0.0, 1.0, &mut rng));
            let graph = |l: &Linear| l.forward(&x).unwrap().value().clone();
            let infer = || nw_autograd::no_grad(|| l.forward(&x).unwrap().value().clone());
            assert_eq!(infer(), graph(&l));
            let p0 = l.weight.packed_transpose().unwrap();
            assert_eq!(infer(), graph(&l));
            assert!(std::sync::Arc::ptr_eq(&p0, &l.weight.packed_transpose().unwrap()), "packed once");
            drop(p0);
            let before = infer();
            l.weight.update(|w| w.as_slice_mut()[0] += 1.0);
            let after = infer();
            assert_ne!(before, after, "the updated weight must be used");
            assert_eq!(after, graph(&l));
            l.weight.set(Tensor::zeros(&[45, 70])).unwrap();
            let zero = infer();
            assert_eq!(zero, graph(&l));
            assert!(
                zero.to_vec()
                    .iter()
                    .zip(l.bias.as_ref().map_or(vec![0.0; 45], |b| b.value().to_vec()).iter().cycle())
                    .all(|(y, b)| y == b)
            );
            // a few rows take the dot-product path, as with a graph
            let x1 = Var::constant(Tensor::randn(&[2, 70], 0.0, 1.0, &mut rng));
            let y1 = nw_autograd::no_grad(|| l.forward(&x1).unwrap().value().clone());
            assert_eq!(y1, l.forward(&x1).unwrap().value().clone());
        }
    }

    #[test]
    fn shapes_and_errors() {
        let mut rng = Rng::new(0);
        let l = Linear::new(3, 2, &mut rng);
        let y = l.forward(&Var::constant(Tensor::zeros(&[4, 5, 3]))).unwrap();
        assert_eq!(y.shape(), &[4, 5, 2]);
        assert_eq!(l.forward(&Var::constant(Tensor::zeros(&[3]))).unwrap().shape(), &[2]);
        let e = l.forward(&Var::constant(Tensor::zeros(&[4, 2]))).unwrap_err().to_string();
        assert!(e.contains("in_features = 3"), "{e}");
        assert!(Linear::from_tensors(Tensor::zeros(&[2, 3]), Some(Tensor::zeros(&[3]))).is_err());
        assert!(Linear::from_tensors(Tensor::zeros(&[2]), None).is_err());
    }

    #[test]
    fn default_init_bounds() {
        // U(-1/sqrt(in), 1/sqrt(in)) = U(-0.25, 0.25) for in = 16
        let l = Linear::new(16, 64, &mut Rng::new(1));
        assert!(l.weight.value().to_vec().iter().all(|v| v.abs() <= 0.25));
        assert!(l.bias.as_ref().unwrap().value().to_vec().iter().all(|v| v.abs() <= 0.25));
        // same seed, same weights
        let l2 = Linear::new(16, 64, &mut Rng::new(1));
        assert_eq!(l.weight.value(), l2.weight.value());
        assert!(Linear::with_bias(4, 4, false, &mut Rng::new(0)).bias.is_none());
    }
}
