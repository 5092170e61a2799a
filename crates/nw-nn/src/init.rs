//! Weight initialisers with `torch.nn.init` semantics. Each draws a new
//! tensor of the given shape from an explicit [`Rng`] (values in row-major
//! order), so the same seed gives the same weights.
//!
//! Fans follow torch: for a shape `[out, in, k...]` the receptive field is
//! the product of the dimensions after the first two, `fan_in = in *
//! receptive`, `fan_out = out * receptive`; a tensor of fewer than two
//! dimensions has no fans ([`InitError::TooFewDims`]).
//!
//! ```
//! use nw_nn::init::{self, FanMode, Nonlinearity};
//! use nw_tensor::Rng;
//! let mut rng = Rng::new(0);
//! let w = init::kaiming_uniform(&[64, 32, 3, 3], 0.0, FanMode::FanIn, Nonlinearity::Relu, &mut rng).unwrap();
//! // bound = sqrt(2) * sqrt(3 / fan_in), fan_in = 32 * 9
//! let bound = (2.0f32).sqrt() * (3.0f32 / 288.0).sqrt();
//! assert!(w.to_vec().iter().all(|v| v.abs() <= bound));
//! assert!(init::calculate_fan_in_and_fan_out(&[10]).is_err());
//! ```

use nw_tensor::{Rng, Tensor};
use thiserror::Error;

use crate::error::NnError;

/// Why an initialiser cannot run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum InitError {
    /// Fans are undefined for a tensor of fewer than two dimensions.
    #[error(
        "{scheme}: fan in and fan out cannot be computed for a tensor of shape {shape:?} (fewer than 2 dimensions)"
    )]
    TooFewDims {
        /// The initialiser.
        scheme: &'static str,
        /// The shape given.
        shape: Vec<usize>,
    },
    /// A fan (or the tensor) is empty, so the scale is undefined.
    #[error("{scheme}: a fan of shape {shape:?} is zero")]
    ZeroFan {
        /// The initialiser.
        scheme: &'static str,
        /// The shape given.
        shape: Vec<usize>,
    },
    /// The shape holds more than [`nw_tensor::MAX_ELEMENTS`] elements, its
    /// element count overflows, or the memory cannot be had.
    #[error("{scheme}: shape {shape:?} is too large: {reason}")]
    TooLarge {
        /// The initialiser.
        scheme: &'static str,
        /// The shape given.
        shape: Vec<usize>,
        /// What the check or the allocator said.
        reason: String,
    },
    /// An argument is out of its domain (negative std, empty interval, ...).
    #[error("{scheme}: {reason}")]
    InvalidArgument {
        /// The initialiser.
        scheme: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl From<InitError> for NnError {
    fn from(e: InitError) -> Self {
        NnError::Config { what: "init", reason: e.to_string() }
    }
}

type Result<T> = std::result::Result<T, InitError>;

/// Which fan scales a Kaiming initialisation (torch's `mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FanMode {
    /// Preserve the variance of the forward pass. The default.
    #[default]
    FanIn,
    /// Preserve the variance of the backward pass.
    FanOut,
}

impl FanMode {
    /// Parses `"fan_in"` / `"fan_out"`.
    pub fn parse(s: &str) -> std::result::Result<Self, NnError> {
        match s {
            "fan_in" => Ok(FanMode::FanIn),
            "fan_out" => Ok(FanMode::FanOut),
            o => Err(NnError::config("init", format!("mode {o:?} is not fan_in or fan_out"))),
        }
    }
}

/// A nonlinearity, for [`calculate_gain`] (torch's names in the docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nonlinearity {
    /// `linear` and every `conv*` / `conv_transpose*`: gain 1.
    Linear,
    /// `sigmoid`: gain 1.
    Sigmoid,
    /// `tanh`: gain 5/3.
    Tanh,
    /// `relu`: gain sqrt(2).
    Relu,
    /// `leaky_relu` with slope `param` (default 0.01): gain sqrt(2 / (1 + slope^2)).
    LeakyRelu,
    /// `selu`: gain 3/4.
    Selu,
}

impl Nonlinearity {
    /// Parses torch's names (`linear`, `conv1d`, `conv2d`, `conv3d`,
    /// `conv_transpose1d/2d/3d`, `sigmoid`, `tanh`, `relu`, `leaky_relu`, `selu`).
    pub fn parse(s: &str) -> std::result::Result<Self, NnError> {
        Ok(match s {
            "linear" | "conv1d" | "conv2d" | "conv3d" | "conv_transpose1d" | "conv_transpose2d"
            | "conv_transpose3d" => Nonlinearity::Linear,
            "sigmoid" => Nonlinearity::Sigmoid,
            "tanh" => Nonlinearity::Tanh,
            "relu" => Nonlinearity::Relu,
            "leaky_relu" => Nonlinearity::LeakyRelu,
            "selu" => Nonlinearity::Selu,
            o => return Err(NnError::config("init", format!("unsupported nonlinearity {o:?}"))),
        })
    }
}

/// The recommended gain for a nonlinearity (torch `calculate_gain`);
/// `param` is the leaky-ReLU slope (default 0.01) and is ignored otherwise.
pub fn calculate_gain(nl: Nonlinearity, param: Option<f64>) -> f64 {
    match nl {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f64.sqrt(),
        Nonlinearity::LeakyRelu => {
            let a = param.unwrap_or(0.01);
            (2.0 / (1.0 + a * a)).sqrt()
        }
        Nonlinearity::Selu => 0.75,
    }
}

/// `(fan_in, fan_out)` of a weight shape (see the module docs).
pub fn calculate_fan_in_and_fan_out(shape: &[usize]) -> Result<(usize, usize)> {
    fans("calculate_fan_in_and_fan_out", shape)
}

fn fans(scheme: &'static str, shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        return Err(InitError::TooFewDims { scheme, shape: shape.to_vec() });
    }
    checked_size(scheme, shape)?;
    // every product below divides numel (or is 0), which was checked not to overflow
    let rf: usize = shape[2..].iter().product();
    Ok((shape[1] * rf, shape[0] * rf))
}

/// The element count of `shape`, refused when it overflows or exceeds
/// [`nw_tensor::MAX_ELEMENTS`] (checked before anything is drawn or allocated).
fn checked_size(scheme: &'static str, shape: &[usize]) -> Result<usize> {
    match nw_tensor::checked_numel(shape) {
        Some(n) if n <= nw_tensor::MAX_ELEMENTS => Ok(n),
        Some(n) => Err(InitError::TooLarge {
            scheme,
            shape: shape.to_vec(),
            reason: format!("{n} elements exceed the limit of {}", nw_tensor::MAX_ELEMENTS),
        }),
        None => Err(InitError::TooLarge {
            scheme,
            shape: shape.to_vec(),
            reason: "the number of elements overflows".into(),
        }),
    }
}

/// `Tensor::try_from_fn` with its error as an [`InitError::TooLarge`].
fn draw(scheme: &'static str, shape: &[usize], f: impl FnMut() -> f32) -> Result<Tensor> {
    checked_size(scheme, shape)?;
    Tensor::try_from_fn(shape, f).map_err(|e| InitError::TooLarge {
        scheme,
        shape: shape.to_vec(),
        reason: e.to_string(),
    })
}

fn nonzero(scheme: &'static str, shape: &[usize], fan: usize) -> Result<f64> {
    if fan == 0 {
        return Err(InitError::ZeroFan { scheme, shape: shape.to_vec() });
    }
    Ok(fan as f64)
}

/// Values drawn from `U(low, high)`.
pub fn uniform(shape: &[usize], low: f64, high: f64, rng: &mut Rng) -> Result<Tensor> {
    if low.is_nan() || high.is_nan() || low > high {
        return Err(InitError::InvalidArgument {
            scheme: "uniform",
            reason: format!("low {low} > high {high}"),
        });
    }
    draw("uniform", shape, || rng.uniform(low, high) as f32)
}

/// Values drawn from `N(mean, std^2)`.
pub fn normal(shape: &[usize], mean: f64, std: f64, rng: &mut Rng) -> Result<Tensor> {
    if std.is_nan() || std < 0.0 {
        return Err(InitError::InvalidArgument {
            scheme: "normal",
            reason: format!("std {std} is negative"),
        });
    }
    draw("normal", shape, || (mean + std * rng.normal()) as f32)
}

/// `N(mean, std^2)` truncated to `[a, b]` (absolute bounds, torch
/// `trunc_normal_`; defaults there are `a = -2`, `b = 2`).
pub fn trunc_normal(shape: &[usize], mean: f64, std: f64, a: f64, b: f64, rng: &mut Rng) -> Result<Tensor> {
    if a.is_nan() || b.is_nan() || a >= b || std.is_nan() || std <= 0.0 {
        return Err(InitError::InvalidArgument {
            scheme: "trunc_normal",
            reason: format!("needs a < b and std > 0, got [{a}, {b}], std {std}"),
        });
    }
    draw("trunc_normal", shape, || rng.truncated_normal(mean, std, a, b) as f32)
}

/// All zeros.
pub fn zeros(shape: &[usize]) -> Tensor {
    Tensor::zeros(shape)
}

/// All ones.
pub fn ones(shape: &[usize]) -> Tensor {
    Tensor::ones(shape)
}

/// Every element `v`.
pub fn constant(shape: &[usize], v: f32) -> Tensor {
    Tensor::full(shape, v)
}

/// Glorot uniform: `U(-b, b)`, `b = gain sqrt(6 / (fan_in + fan_out))`.
pub fn xavier_uniform(shape: &[usize], gain: f64, rng: &mut Rng) -> Result<Tensor> {
    let (fi, fo) = fans("xavier_uniform", shape)?;
    let std = gain * (2.0 / nonzero("xavier_uniform", shape, fi + fo)?).sqrt();
    let b = 3f64.sqrt() * std;
    uniform(shape, -b, b, rng)
}

/// Glorot normal: `N(0, std^2)`, `std = gain sqrt(2 / (fan_in + fan_out))`.
pub fn xavier_normal(shape: &[usize], gain: f64, rng: &mut Rng) -> Result<Tensor> {
    let (fi, fo) = fans("xavier_normal", shape)?;
    let std = gain * (2.0 / nonzero("xavier_normal", shape, fi + fo)?).sqrt();
    normal(shape, 0.0, std, rng)
}

fn kaiming_std(
    scheme: &'static str,
    shape: &[usize],
    a: f64,
    mode: FanMode,
    nl: Nonlinearity,
) -> Result<f64> {
    let (fi, fo) = fans(scheme, shape)?;
    let fan = match mode {
        FanMode::FanIn => fi,
        FanMode::FanOut => fo,
    };
    Ok(calculate_gain(nl, Some(a)) / nonzero(scheme, shape, fan)?.sqrt())
}

/// He uniform: `U(-b, b)`, `b = gain sqrt(3 / fan)` with `gain =
/// calculate_gain(nonlinearity, a)` (`a` is the leaky-ReLU slope).
pub fn kaiming_uniform(
    shape: &[usize],
    a: f64,
    mode: FanMode,
    nl: Nonlinearity,
    rng: &mut Rng,
) -> Result<Tensor> {
    let b = 3f64.sqrt() * kaiming_std("kaiming_uniform", shape, a, mode, nl)?;
    uniform(shape, -b, b, rng)
}

/// He normal: `N(0, std^2)`, `std = gain / sqrt(fan)`.
pub fn kaiming_normal(
    shape: &[usize],
    a: f64,
    mode: FanMode,
    nl: Nonlinearity,
    rng: &mut Rng,
) -> Result<Tensor> {
    let std = kaiming_std("kaiming_normal", shape, a, mode, nl)?;
    normal(shape, 0.0, std, rng)
}

/// LeCun normal: `N(0, 1 / fan_in)`.
pub fn lecun_normal(shape: &[usize], rng: &mut Rng) -> Result<Tensor> {
    let (fi, _) = fans("lecun_normal", shape)?;
    normal(shape, 0.0, 1.0 / nonzero("lecun_normal", shape, fi)?.sqrt(), rng)
}

/// PyTorch's default for Linear and Conv weights: `kaiming_uniform` with
/// `a = sqrt(5)`, i.e. `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
pub fn default_weight(shape: &[usize], rng: &mut Rng) -> Result<Tensor> {
    kaiming_uniform(shape, 5f64.sqrt(), FanMode::FanIn, Nonlinearity::LeakyRelu, rng)
}

/// PyTorch's default for Linear and Conv biases: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`
/// with `fan_in` of the weight.
pub fn default_bias(len: usize, fan_in: usize, rng: &mut Rng) -> Result<Tensor> {
    let b = if fan_in > 0 { 1.0 / (fan_in as f64).sqrt() } else { 0.0 };
    uniform(&[len], -b, b, rng)
}

/// A (semi-)orthogonal matrix scaled by `gain` (torch `orthogonal_`): the
/// shape is viewed as `[rows, numel / rows]`, a standard normal matrix of
/// that shape (transposed when it is wide) is factored `A = Q R` in f64,
/// and the columns of `Q` take the signs of `diag(R)` so that the result
/// is Haar-distributed; wide shapes get `Q^T`. Rows (or columns) are
/// orthonormal.
pub fn orthogonal(shape: &[usize], gain: f64, rng: &mut Rng) -> Result<Tensor> {
    if shape.len() < 2 {
        return Err(InitError::TooFewDims { scheme: "orthogonal", shape: shape.to_vec() });
    }
    let rows = shape[0];
    let numel = checked_size("orthogonal", shape)?;
    if numel == 0 {
        return Ok(Tensor::zeros(shape));
    }
    let cols = numel / rows;
    // draw row-major [rows, cols] as torch does, then work on the tall form [m, n]
    let flat: Vec<f64> = (0..numel).map(|_| rng.normal()).collect();
    let wide = rows < cols;
    let (m, n) = if wide { (cols, rows) } else { (rows, cols) };
    // a[i][j] of the tall matrix, stored column-major for Householder
    let mut a = vec![0.0f64; m * n];
    for i in 0..rows {
        for j in 0..cols {
            let (ti, tj) = if wide { (j, i) } else { (i, j) };
            a[tj * m + ti] = flat[i * cols + j];
        }
    }
    let q = householder_q(&mut a, m, n);
    let mut out = vec![0.0f32; numel];
    for i in 0..rows {
        for j in 0..cols {
            let (ti, tj) = if wide { (j, i) } else { (i, j) };
            out[i * cols + j] = (gain * q[tj * m + ti]) as f32;
        }
    }
    Tensor::from_vec(out, shape)
        .map_err(|e| InitError::InvalidArgument { scheme: "orthogonal", reason: e.to_string() })
}

/// Thin QR of the column-major `m x n` matrix `a` (`m >= n`) by Householder
/// reflections; returns the `m x n` factor `Q` (column-major) with each
/// column multiplied by the sign of `R`'s diagonal entry, so `R`'s diagonal
/// is non-negative (the unique such factorisation).
fn householder_q(a: &mut [f64], m: usize, n: usize) -> Vec<f64> {
    let mut vs: Vec<Vec<f64>> = Vec::with_capacity(n);
    let mut rdiag = vec![0.0f64; n];
    for k in 0..n {
        // v = x + sign(x0) |x| e0 over rows k..m of column k
        let col = &a[k * m + k..(k + 1) * m];
        let norm = col.iter().map(|x| x * x).sum::<f64>().sqrt();
        let alpha = if col[0] >= 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = col.to_vec();
        v[0] -= alpha;
        let vn = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if vn > 0.0 {
            v.iter_mut().for_each(|x| *x /= vn);
        }
        rdiag[k] = alpha;
        // apply H = I - 2 v v^T to the remaining columns
        for j in k..n {
            let c = &mut a[j * m + k..(j + 1) * m];
            let d: f64 = 2.0 * v.iter().zip(c.iter()).map(|(x, y)| x * y).sum::<f64>();
            c.iter_mut().zip(&v).for_each(|(c, v)| *c -= d * v);
        }
        vs.push(v);
    }
    // Q = H_0 H_1 ... H_{n-1} applied to the first n columns of I
    let mut q = vec![0.0f64; m * n];
    for j in 0..n {
        q[j * m + j] = 1.0;
    }
    for k in (0..n).rev() {
        let v = &vs[k];
        for j in 0..n {
            let c = &mut q[j * m + k..(j + 1) * m];
            let d: f64 = 2.0 * v.iter().zip(c.iter()).map(|(x, y)| x * y).sum::<f64>();
            c.iter_mut().zip(v).for_each(|(c, v)| *c -= d * v);
        }
    }
    for j in 0..n {
        if rdiag[j] < 0.0 {
            q[j * m..(j + 1) * m].iter_mut().for_each(|x| *x = -*x);
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fans_follow_torch() {
        // conv weight [64, 32, 3, 3]: receptive field 9 (init.json's
        // xavier_uniform_64x32x3x3 lists fan_in 288, fan_out 576)
        assert_eq!(calculate_fan_in_and_fan_out(&[64, 32, 3, 3]).unwrap(), (288, 576));
        assert_eq!(calculate_fan_in_and_fan_out(&[256, 784]).unwrap(), (784, 256));
        let e = calculate_fan_in_and_fan_out(&[5]).unwrap_err();
        assert_eq!(e, InitError::TooFewDims { scheme: "calculate_fan_in_and_fan_out", shape: vec![5] });
        let mut rng = Rng::new(0);
        assert!(matches!(xavier_uniform(&[0, 0], 1.0, &mut rng), Err(InitError::ZeroFan { .. })));
        let k = kaiming_uniform(&[3, 0], 0.0, FanMode::FanIn, Nonlinearity::Relu, &mut rng);
        assert!(matches!(k, Err(InitError::ZeroFan { .. })));
    }

    #[test]
    fn gains_by_hand() {
        assert_eq!(calculate_gain(Nonlinearity::Linear, None), 1.0);
        assert_eq!(calculate_gain(Nonlinearity::Tanh, None), 5.0 / 3.0);
        assert_eq!(calculate_gain(Nonlinearity::Relu, None), 2f64.sqrt());
        assert_eq!(calculate_gain(Nonlinearity::Selu, None), 0.75);
        // leaky_relu default slope 0.01: sqrt(2 / 1.0001)
        assert_eq!(calculate_gain(Nonlinearity::LeakyRelu, None), (2.0 / 1.0001f64).sqrt());
        // a = sqrt(5): sqrt(2 / 6) = sqrt(1/3); so the default bound is 1/sqrt(fan_in)
        assert!(
            (calculate_gain(Nonlinearity::LeakyRelu, Some(5f64.sqrt())) - (1.0f64 / 3.0).sqrt()).abs()
                < 1e-15
        );
        assert_eq!(Nonlinearity::parse("conv2d").unwrap(), Nonlinearity::Linear);
        assert!(Nonlinearity::parse("swish").is_err());
    }

    #[test]
    fn default_weight_bound_is_one_over_sqrt_fan_in() {
        let w = default_weight(&[50, 100], &mut Rng::new(1)).unwrap();
        let m = w.to_vec().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(m <= 0.1 && m > 0.099, "max |w| = {m}");
    }

    fn check_orthonormal(t: &Tensor) {
        let (r, c) = (t.shape()[0], t.len() / t.shape()[0]);
        let m = t.reshape(&[r, c]).unwrap();
        let g = if r <= c { m.matmul(&m.t().unwrap()).unwrap() } else { m.t().unwrap().matmul(&m).unwrap() };
        let k = r.min(c);
        let gv = g.to_vec();
        for i in 0..k {
            for j in 0..k {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((gv[i * k + j] - want).abs() < 1e-5, "gram[{i},{j}] = {}", gv[i * k + j]);
            }
        }
    }

    #[test]
    fn orthogonal_rows_or_columns_are_orthonormal() {
        let mut rng = Rng::new(2);
        check_orthonormal(&orthogonal(&[6, 6], 1.0, &mut rng).unwrap());
        check_orthonormal(&orthogonal(&[8, 3], 1.0, &mut rng).unwrap());
        check_orthonormal(&orthogonal(&[3, 2, 2, 2], 1.0, &mut rng).unwrap());
        let g = orthogonal(&[4, 4], 2.0, &mut rng).unwrap();
        // rows of gain * Q have norm gain
        let r0: f32 = g.to_vec()[..4].iter().map(|x| x * x).sum();
        assert!((r0 - 4.0).abs() < 1e-5);
        assert!(orthogonal(&[4], 1.0, &mut rng).is_err());
    }

    #[test]
    fn orthogonal_r_diagonal_is_positive() {
        // Q^T A = R must have a positive diagonal: draw A the way orthogonal does
        let mut r1 = Rng::new(3);
        let q = orthogonal(&[5, 3], 1.0, &mut r1).unwrap();
        let mut r2 = Rng::new(3);
        let a = Tensor::from_fn(&[5, 3], || r2.normal() as f32);
        let r = q.t().unwrap().matmul(&a).unwrap().to_vec();
        for i in 0..3 {
            assert!(r[i * 3 + i] > 0.0, "R[{i},{i}] = {}", r[i * 3 + i]);
        }
    }

    #[test]
    fn argument_errors() {
        let mut rng = Rng::new(0);
        assert!(normal(&[2], 0.0, -1.0, &mut rng).is_err());
        assert!(uniform(&[2], 1.0, 0.0, &mut rng).is_err());
        assert!(trunc_normal(&[2], 0.0, 1.0, 2.0, -2.0, &mut rng).is_err());
        let t = trunc_normal(&[1000], 0.0, 1.0, -0.5, 0.5, &mut rng).unwrap();
        assert!(t.to_vec().iter().all(|v| v.abs() <= 0.5));
        assert_eq!(constant(&[2], 3.0).to_vec(), vec![3.0, 3.0]);
    }
}
