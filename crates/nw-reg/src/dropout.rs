//! Dropout (Srivastava et al. 2014), Dropout2d (whole channels, Tompson et
//! al. 2015) and DropConnect on weights (Wan et al. 2013), as functions over
//! [`Var`] and as small structs with a `training` flag.
//!
//! All use inverted scaling, as torch.nn.functional.dropout: in training a
//! unit is kept with probability `1 - p` and multiplied by `1 / (1 - p)`, so
//! the expected output equals the input and evaluation is the identity.
//!
//! ```text
//! m_i ~ Bernoulli(1 - p),   y_i = x_i * m_i / (1 - p)
//! dL/dx_i = dL/dy_i * m_i / (1 - p)        (zero for dropped units)
//! ```
//!
//! The scale is computed as torch does: `1 / (1 - p)` in f32 with `1 - p`
//! formed in f64. `p` must lie in `[0, 1]`; `p = 1` drops everything (the
//! output is all zeros, as torch) and draws nothing. Evaluation mode and
//! `p = 0` return the input unchanged and draw nothing. Masks come from the
//! caller's [`Rng`], one `next_f64` per mask element in row-major order.

use nw_autograd::{Param, Var};
use nw_tensor::{Rng, Tensor};

use crate::error::{RegError, Result, check_probability};

/// A mask of the given shape: each element independently `1/(1-p)` with
/// probability `1 - p`, else `0` (all zeros when `p = 1`).
pub fn dropout_mask(shape: &[usize], p: f64, rng: &mut Rng) -> Result<Tensor> {
    check_probability("dropout_mask", p)?;
    if p == 1.0 {
        return Ok(Tensor::zeros(shape));
    }
    let keep = 1.0 - p;
    let scale = 1.0f32 / keep as f32;
    Ok(Tensor::from_fn(shape, || if rng.next_f64() < keep { scale } else { 0.0 }))
}

/// Elementwise dropout of `x`. Identity when `!training` or `p = 0`.
pub fn dropout(x: &Var, p: f64, training: bool, rng: &mut Rng) -> Result<Var> {
    check_probability("dropout", p)?;
    if !training || p == 0.0 {
        return Ok(x.clone());
    }
    let mask = dropout_mask(x.shape(), p, rng)?;
    Ok(x.mul(&Var::constant(mask))?)
}

/// Channel dropout of an `[N, C, H, W]` (or unbatched `[C, H, W]`) input:
/// each channel of each sample is kept whole or zeroed whole, as
/// torch.nn.Dropout2d. Identity when `!training` or `p = 0`.
pub fn dropout2d(x: &Var, p: f64, training: bool, rng: &mut Rng) -> Result<Var> {
    check_probability("dropout2d", p)?;
    let shape = x.shape();
    let mask_shape: Vec<usize> = match shape.len() {
        4 => vec![shape[0], shape[1], 1, 1],
        3 => vec![shape[0], 1, 1],
        _ => {
            return Err(RegError::BadArgument {
                op: "dropout2d",
                reason: format!("input must be [N, C, H, W] or [C, H, W], got shape {shape:?}"),
            });
        }
    };
    if !training || p == 0.0 {
        return Ok(x.clone());
    }
    let mask = dropout_mask(&mask_shape, p, rng)?;
    Ok(x.mul(&Var::constant(mask))?)
}

/// DropConnect: a masked (and inverted-scaled) copy of a weight for one
/// forward pass. The gradient reaches the parameter only at kept entries.
/// Identity (the plain parameter) when `!training` or `p = 0`.
pub fn drop_connect(w: &Param, p: f64, training: bool, rng: &mut Rng) -> Result<Var> {
    check_probability("drop_connect", p)?;
    dropout(&Var::param(w), p, training, rng)
}

macro_rules! mode_methods {
    () => {
        /// The drop probability.
        pub fn p(&self) -> f64 {
            self.p
        }
        /// Whether the layer is in training mode (masks drawn).
        pub fn is_training(&self) -> bool {
            self.training
        }
        /// Sets training (`true`) or evaluation (`false`) mode.
        pub fn set_training(&mut self, training: bool) {
            self.training = training;
        }
        /// Training mode.
        pub fn train(&mut self) {
            self.training = true;
        }
        /// Evaluation mode (identity).
        pub fn eval(&mut self) {
            self.training = false;
        }
    };
}

/// Elementwise dropout with a training flag (starts in training mode).
///
/// ```
/// use nw_autograd::Var;
/// use nw_reg::Dropout;
/// use nw_tensor::{Rng, Tensor};
///
/// let mut rng = Rng::new(0);
/// let mut d = Dropout::new(0.5).unwrap();
/// let x = Var::constant(Tensor::ones(&[4, 8]));
/// let y = d.forward(&x, &mut rng).unwrap();
/// assert!(y.value().to_vec().iter().all(|&v| v == 0.0 || v == 2.0));
/// d.eval();
/// assert_eq!(d.forward(&x, &mut rng).unwrap().value(), x.value());
/// assert!(Dropout::new(1.5).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    p: f64,
    training: bool,
}

impl Dropout {
    /// A dropout layer with drop probability `p` in `[0, 1]`.
    pub fn new(p: f64) -> Result<Self> {
        check_probability("Dropout::new", p)?;
        Ok(Dropout { p, training: true })
    }
    mode_methods!();
    /// Applies dropout (identity in evaluation mode).
    pub fn forward(&self, x: &Var, rng: &mut Rng) -> Result<Var> {
        dropout(x, self.p, self.training, rng)
    }
}

/// Channel dropout over NCHW inputs with a training flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout2d {
    p: f64,
    training: bool,
}

impl Dropout2d {
    /// A channel-dropout layer with drop probability `p` in `[0, 1]`.
    pub fn new(p: f64) -> Result<Self> {
        check_probability("Dropout2d::new", p)?;
        Ok(Dropout2d { p, training: true })
    }
    mode_methods!();
    /// Applies channel dropout (identity in evaluation mode).
    pub fn forward(&self, x: &Var, rng: &mut Rng) -> Result<Var> {
        dropout2d(x, self.p, self.training, rng)
    }
}

/// DropConnect on a weight with a training flag: [`DropConnect::weight`]
/// gives the masked weight to use in the forward pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropConnect {
    p: f64,
    training: bool,
}

impl DropConnect {
    /// DropConnect with drop probability `p` in `[0, 1]`.
    pub fn new(p: f64) -> Result<Self> {
        check_probability("DropConnect::new", p)?;
        Ok(DropConnect { p, training: true })
    }
    mode_methods!();
    /// The weight to use for this forward pass (the plain parameter in
    /// evaluation mode).
    pub fn weight(&self, w: &Param, rng: &mut Rng) -> Result<Var> {
        drop_connect(w, self.p, self.training, rng)
    }
}
