//! Activation functions as modules (no parameters), and [`Flatten`].
//! Each forwards to the differentiable operation of the same name on
//! [`Var`], whose derivative is in nw-autograd's `backward.rs`.

use nw_autograd::Var;

use crate::error::{NnError, Result};
use crate::module::Module;

/// Resolves a possibly negative dimension (`-1` is the last) against a rank.
pub(crate) fn resolve_dim(what: &'static str, dim: isize, ndim: usize) -> Result<usize> {
    let d = if dim < 0 { dim + ndim as isize } else { dim };
    if d < 0 || d as usize >= ndim {
        return Err(NnError::input(what, format!("dimension {dim} is out of range for rank {ndim}")));
    }
    Ok(d as usize)
}

macro_rules! simple_activation {
    ($(#[$doc:meta])* $name:ident, $label:literal, |$x:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq)]
        pub struct $name;

        impl Module for $name {
            fn forward(&self, $x: &Var) -> Result<Var> {
                Ok($body)
            }
            fn describe(&self) -> String {
                $label.to_string()
            }
        }
    };
}

simple_activation!(
    /// `max(x, 0)` (torch `nn.ReLU`).
    Relu, "ReLU()", |x| x.relu()
);
simple_activation!(
    /// `1 / (1 + e^-x)` (torch `nn.Sigmoid`).
    Sigmoid, "Sigmoid()", |x| x.sigmoid()
);
simple_activation!(
    /// Hyperbolic tangent (torch `nn.Tanh`).
    Tanh, "Tanh()", |x| x.tanh()
);
simple_activation!(
    /// `x sigmoid(x)` (torch `nn.SiLU`).
    Silu, "SiLU()", |x| x.silu()
);

/// `x` for `x > 0`, `negative_slope * x` otherwise (torch `nn.LeakyReLU`, default slope 0.01).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeakyRelu {
    /// Slope for negative inputs.
    pub negative_slope: f32,
}

impl Default for LeakyRelu {
    fn default() -> Self {
        LeakyRelu { negative_slope: 0.01 }
    }
}

impl Module for LeakyRelu {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.leaky_relu(self.negative_slope))
    }
    fn describe(&self) -> String {
        format!("LeakyReLU(negative_slope={})", self.negative_slope)
    }
}

/// `x` for `x > 0`, `alpha (e^x - 1)` otherwise (torch `nn.ELU`, default alpha 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Elu {
    /// Scale of the negative part.
    pub alpha: f32,
}

impl Default for Elu {
    fn default() -> Self {
        Elu { alpha: 1.0 }
    }
}

impl Module for Elu {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.elu(self.alpha))
    }
    fn describe(&self) -> String {
        format!("ELU(alpha={})", self.alpha)
    }
}

/// Which form of GELU to compute (torch's `approximate` argument).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GeluApprox {
    /// Exact: `x Phi(x)` with the normal CDF through erf (`approximate="none"`).
    #[default]
    None,
    /// `x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` (`approximate="tanh"`).
    Tanh,
}

/// Gaussian error linear unit (torch `nn.GELU`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Gelu {
    /// Exact or tanh approximation.
    pub approximate: GeluApprox,
}

impl Module for Gelu {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(match self.approximate {
            GeluApprox::None => x.gelu(),
            GeluApprox::Tanh => x.gelu_tanh(),
        })
    }
    fn describe(&self) -> String {
        match self.approximate {
            GeluApprox::None => "GELU(approximate='none')".into(),
            GeluApprox::Tanh => "GELU(approximate='tanh')".into(),
        }
    }
}

/// `ln(1 + e^(beta x)) / beta`, linear where `beta x > threshold` (torch
/// `nn.Softplus`, defaults beta 1, threshold 20).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Softplus {
    /// Sharpness.
    pub beta: f32,
    /// Above `beta x > threshold` the function is the identity.
    pub threshold: f32,
}

impl Default for Softplus {
    fn default() -> Self {
        Softplus { beta: 1.0, threshold: 20.0 }
    }
}

impl Module for Softplus {
    fn forward(&self, x: &Var) -> Result<Var> {
        if self.beta == 0.0 || self.beta.is_nan() {
            return Err(NnError::config("Softplus", format!("beta must be non-zero, got {}", self.beta)));
        }
        Ok(x.softplus(self.beta, self.threshold))
    }
    fn describe(&self) -> String {
        format!("Softplus(beta={}, threshold={})", self.beta, self.threshold)
    }
}

/// Softmax along `dim` (negative counts from the end; torch `nn.Softmax`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Softmax {
    /// The dimension that sums to one.
    pub dim: isize,
}

impl Module for Softmax {
    fn forward(&self, x: &Var) -> Result<Var> {
        let d = resolve_dim("Softmax", self.dim, x.shape().len())?;
        Ok(x.softmax(d)?)
    }
    fn describe(&self) -> String {
        format!("Softmax(dim={})", self.dim)
    }
}

/// Log-softmax along `dim` (torch `nn.LogSoftmax`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSoftmax {
    /// The dimension normalised over.
    pub dim: isize,
}

impl Module for LogSoftmax {
    fn forward(&self, x: &Var) -> Result<Var> {
        let d = resolve_dim("LogSoftmax", self.dim, x.shape().len())?;
        Ok(x.log_softmax(d)?)
    }
    fn describe(&self) -> String {
        format!("LogSoftmax(dim={})", self.dim)
    }
}

/// Collapses dimensions `start_dim..=end_dim` into one (torch `nn.Flatten`,
/// defaults 1 and -1: `[N, C, H, W] -> [N, C*H*W]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flatten {
    /// First dimension flattened.
    pub start_dim: isize,
    /// Last dimension flattened (inclusive).
    pub end_dim: isize,
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten { start_dim: 1, end_dim: -1 }
    }
}

impl Module for Flatten {
    fn forward(&self, x: &Var) -> Result<Var> {
        let shape = x.shape().to_vec();
        let s = resolve_dim("Flatten", self.start_dim, shape.len())?;
        let e = resolve_dim("Flatten", self.end_dim, shape.len())?;
        if s > e {
            return Err(NnError::config("Flatten", format!("start_dim {s} is after end_dim {e}")));
        }
        let mut out = shape[..s].to_vec();
        out.push(shape[s..=e].iter().product());
        out.extend_from_slice(&shape[e + 1..]);
        Ok(x.reshape(&out)?)
    }
    fn describe(&self) -> String {
        format!("Flatten(start_dim={}, end_dim={})", self.start_dim, self.end_dim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nw_tensor::Tensor;

    #[test]
    fn flatten_and_dims() {
        let x = Var::constant(Tensor::zeros(&[2, 3, 4, 5]));
        assert_eq!(Flatten::default().forward(&x).unwrap().shape(), &[2, 60]);
        assert_eq!(Flatten { start_dim: 1, end_dim: 2 }.forward(&x).unwrap().shape(), &[2, 12, 5]);
        assert!(Flatten { start_dim: 3, end_dim: 1 }.forward(&x).is_err());
        assert_eq!(resolve_dim("t", -1, 4).unwrap(), 3);
        assert!(resolve_dim("t", 4, 4).is_err());
        assert!(resolve_dim("t", -5, 4).is_err());
    }

    #[test]
    fn activation_values_by_hand() {
        let x = Var::constant(Tensor::from_vec(vec![-1.0, 2.0], &[2]).unwrap());
        assert_eq!(LeakyRelu { negative_slope: 0.1 }.forward(&x).unwrap().value().to_vec(), vec![-0.1, 2.0]);
        assert_eq!(Relu.forward(&x).unwrap().value().to_vec(), vec![0.0, 2.0]);
        // ELU(-1) = e^-1 - 1 = -0.63212055
        let e = Elu::default().forward(&x).unwrap().value().to_vec();
        assert!((e[0] + 0.632_120_56).abs() < 1e-7);
        let s = Softmax { dim: -1 }.forward(&x).unwrap().value().to_vec();
        assert!((s[0] + s[1] - 1.0).abs() < 1e-7);
    }
}
