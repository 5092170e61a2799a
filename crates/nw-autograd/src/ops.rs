//! Forward halves of the differentiable operations, as methods on [`Var`].
//! Each records an [`Op`]; its derivative is in `backward.rs` under the same
//! variant name.

use nw_tensor::ops::erf;
pub(crate) use nw_tensor::ops::sigmoid;
use nw_tensor::{Tensor, TensorError};

use crate::error::{AutogradError, Result};
use crate::op::Op;
use crate::var::Var;

/// sqrt(2 / pi), used by the tanh approximation of GELU.
pub(crate) const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// The cubic coefficient of the tanh approximation of GELU.
pub(crate) const GELU_C: f64 = 0.044_715;

/// Standard normal CDF `Phi(x) = (1 + erf(x / sqrt 2)) / 2`, in f64.
pub(crate) fn normal_cdf(x: f32) -> f32 {
    (0.5 * (1.0 + erf(x as f64 / std::f64::consts::SQRT_2))) as f32
}

impl Var {
    // ----- binary, broadcasting -------------------------------------------

    /// `self + other` (broadcasting).
    pub fn add(&self, other: &Var) -> Result<Var> {
        let v = self.value().add(other.value())?;
        Ok(Var::from_op(v, Op::Add(self.clone(), other.clone())))
    }

    /// `self - other` (broadcasting).
    pub fn sub(&self, other: &Var) -> Result<Var> {
        let v = self.value().sub(other.value())?;
        Ok(Var::from_op(v, Op::Sub(self.clone(), other.clone())))
    }

    /// `self * other` (broadcasting).
    pub fn mul(&self, other: &Var) -> Result<Var> {
        let v = self.value().mul(other.value())?;
        Ok(Var::from_op(v, Op::Mul(self.clone(), other.clone())))
    }

    /// `self / other` (broadcasting).
    pub fn div(&self, other: &Var) -> Result<Var> {
        let v = self.value().div(other.value())?;
        Ok(Var::from_op(v, Op::Div(self.clone(), other.clone())))
    }

    /// Elementwise maximum (broadcasting); on ties the gradient goes to `self`.
    pub fn maximum(&self, other: &Var) -> Result<Var> {
        let v = self.value().maximum(other.value())?;
        Ok(Var::from_op(v, Op::Maximum(self.clone(), other.clone())))
    }

    // ----- unary ----------------------------------------------------------

    fn unary(&self, v: Tensor, op: Op) -> Var {
        Var::from_op(v, op)
    }

    /// `-self`.
    pub fn neg(&self) -> Var {
        self.unary(self.value().neg(), Op::Neg(self.clone()))
    }
    /// `self + s`.
    pub fn add_scalar(&self, s: f32) -> Var {
        self.unary(self.value().add_scalar(s), Op::AddScalar(self.clone()))
    }
    /// `self * s`.
    pub fn mul_scalar(&self, s: f32) -> Var {
        self.unary(self.value().mul_scalar(s), Op::MulScalar(self.clone(), s))
    }
    /// `self ^ p`.
    pub fn powf(&self, p: f32) -> Var {
        self.unary(self.value().powf(p), Op::PowScalar(self.clone(), p))
    }
    /// `self * self`.
    pub fn square(&self) -> Var {
        self.unary(self.value().square(), Op::PowScalar(self.clone(), 2.0))
    }
    /// `e^self`.
    pub fn exp(&self) -> Var {
        self.unary(self.value().exp(), Op::Exp(self.clone()))
    }
    /// Natural logarithm.
    pub fn ln(&self) -> Var {
        self.unary(self.value().ln(), Op::Ln(self.clone()))
    }
    /// Square root.
    pub fn sqrt(&self) -> Var {
        self.unary(self.value().sqrt(), Op::Sqrt(self.clone()))
    }
    /// `|self|` (subgradient 0 at 0, as torch).
    pub fn abs(&self) -> Var {
        self.unary(self.value().abs(), Op::Abs(self.clone()))
    }
    /// Clamp into `[min, max]`; the gradient passes where `min <= x <= max`.
    pub fn clamp(&self, min: f32, max: f32) -> Var {
        self.unary(self.value().clamp(min, max), Op::Clamp(self.clone(), min, max))
    }
    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Var {
        self.unary(self.value().tanh(), Op::Tanh(self.clone()))
    }
    /// Logistic sigmoid.
    pub fn sigmoid(&self) -> Var {
        self.unary(self.value().sigmoid(), Op::Sigmoid(self.clone()))
    }
    /// `max(x, 0)`.
    pub fn relu(&self) -> Var {
        self.unary(self.value().relu(), Op::Relu(self.clone()))
    }
    /// `x` for `x > 0`, `slope * x` otherwise.
    pub fn leaky_relu(&self, slope: f32) -> Var {
        let v = self.value().map(|x| if x > 0.0 { x } else { slope * x });
        self.unary(v, Op::LeakyRelu(self.clone(), slope))
    }
    /// `x` for `x > 0`, `alpha (e^x - 1)` otherwise.
    pub fn elu(&self, alpha: f32) -> Var {
        let v = self.value().map(|x| if x > 0.0 { x } else { alpha * x.exp_m1() });
        self.unary(v, Op::Elu(self.clone(), alpha))
    }
    /// GELU with the exact normal CDF: `x Phi(x)`.
    pub fn gelu(&self) -> Var {
        let v = self.value().map(|x| x * normal_cdf(x));
        self.unary(v, Op::GeluErf(self.clone()))
    }
    /// GELU, tanh approximation: `x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
    pub fn gelu_tanh(&self) -> Var {
        // in f64, so that the result is the correctly rounded f32 of the formula
        let v = self.value().map(|x| {
            let x = x as f64;
            (0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + GELU_C * x * x * x)).tanh())) as f32
        });
        self.unary(v, Op::GeluTanh(self.clone()))
    }
    /// `ln(1 + e^(beta x)) / beta`, linear above `threshold` (torch defaults 1, 20).
    pub fn softplus(&self, beta: f32, threshold: f32) -> Var {
        let v = self.value().map(|x| {
            let bx = beta * x;
            if bx > threshold { x } else { bx.exp().ln_1p() / beta }
        });
        self.unary(v, Op::Softplus(self.clone(), beta, threshold))
    }
    /// SiLU (swish): `x sigmoid(x)`.
    pub fn silu(&self) -> Var {
        let v = self.value().map(|x| x * sigmoid(x));
        self.unary(v, Op::Silu(self.clone()))
    }

    // ----- linear algebra -------------------------------------------------

    /// Matrix product (2-D or batched 3-D, as [`Tensor::matmul`]).
    pub fn matmul(&self, other: &Var) -> Result<Var> {
        let v = self.value().matmul(other.value())?;
        Ok(Var::from_op(v, Op::MatMul(self.clone(), other.clone())))
    }

    /// The affine map of a linear layer, fused: `y = x W^T + b` with
    /// `x: [n, in]`, `W: [out, in]` (PyTorch layout), `b: [out]`.
    pub fn linear(&self, weight: &Var, bias: Option<&Var>) -> Result<Var> {
        let (x, w) = (self.value(), weight.value());
        if x.ndim() != 2 || w.ndim() != 2 || x.shape()[1] != w.shape()[1] {
            return Err(nw_tensor::TensorError::ShapeMismatch {
                op: "linear",
                lhs: x.shape().to_vec(),
                rhs: w.shape().to_vec(),
            }
            .into());
        }
        let (n, out) = (x.shape()[0], w.shape()[0]);
        let mut y = match bias {
            Some(b) => {
                if b.shape() != [out] {
                    return Err(nw_tensor::TensorError::ShapeMismatch {
                        op: "linear (bias)",
                        lhs: vec![out],
                        rhs: b.shape().to_vec(),
                    }
                    .into());
                }
                b.value().broadcast_to(&[n, out])?
            }
            None => Tensor::zeros(&[n, out]),
        };
        let beta = if bias.is_some() { 1.0 } else { 0.0 };
        y.gemm_acc(1.0, x, &w.t()?, beta)?;
        Ok(Var::from_op(y, Op::Linear(self.clone(), weight.clone(), bias.cloned())))
    }

    // ----- reductions -----------------------------------------------------

    /// Sum of all elements (a scalar of shape `[]`).
    pub fn sum(&self) -> Var {
        let v = Tensor::scalar(self.value().sum_all());
        Var::from_op(v, Op::SumAll(self.clone()))
    }

    /// Mean of all elements (a scalar of shape `[]`).
    pub fn mean(&self) -> Var {
        let v = Tensor::scalar(self.value().mean_all());
        Var::from_op(v, Op::MeanAll(self.clone()))
    }

    /// Sum along `axis`.
    pub fn sum_axis(&self, axis: usize, keepdim: bool) -> Result<Var> {
        let v = self.value().sum_axis(axis, keepdim)?;
        Ok(Var::from_op(v, Op::SumAxis(self.clone(), axis, keepdim)))
    }

    /// Mean along `axis`.
    pub fn mean_axis(&self, axis: usize, keepdim: bool) -> Result<Var> {
        let v = self.value().mean_axis(axis, keepdim)?;
        Ok(Var::from_op(v, Op::MeanAxis(self.clone(), axis, keepdim)))
    }

    // ----- layout ---------------------------------------------------------

    /// The same elements with a new shape.
    pub fn reshape(&self, shape: &[usize]) -> Result<Var> {
        let v = self.value().reshape(shape)?;
        Ok(Var::from_op(v, Op::Reshape(self.clone())))
    }

    /// Collapses dimensions `start..` into one.
    pub fn flatten_from(&self, start: usize) -> Result<Var> {
        let v = self.value().flatten_from(start)?;
        Ok(Var::from_op(v, Op::Reshape(self.clone())))
    }

    /// Reorders axes: output axis `i` is input axis `axes[i]`.
    pub fn permute(&self, axes: &[usize]) -> Result<Var> {
        let v = self.value().permute(axes)?;
        Ok(Var::from_op(v, Op::Permute(self.clone(), axes.to_vec())))
    }

    /// Swaps two axes.
    pub fn transpose(&self, a: usize, b: usize) -> Result<Var> {
        let mut axes: Vec<usize> = (0..self.value().ndim()).collect();
        if a >= axes.len() || b >= axes.len() {
            return Err(nw_tensor::TensorError::AxisOutOfRange {
                op: "transpose",
                axis: a.max(b) as isize,
                ndim: axes.len(),
            }
            .into());
        }
        axes.swap(a, b);
        self.permute(&axes)
    }

    /// Elements `start..start + len` along `axis`.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Var> {
        let v = self.value().narrow(axis, start, len)?;
        Ok(Var::from_op(v, Op::Narrow(self.clone(), axis, start)))
    }

    /// Joins values along an existing axis.
    pub fn concat(vars: &[Var], axis: usize) -> Result<Var> {
        let ts: Vec<&Tensor> = vars.iter().map(|v| v.value()).collect();
        let v = Tensor::concat(&ts, axis)?;
        Ok(Var::from_op(v, Op::Concat(vars.to_vec(), axis)))
    }

    /// Selects entries `indices` along `axis` (an embedding lookup on axis 0).
    pub fn index_select(&self, axis: usize, indices: &[usize]) -> Result<Var> {
        let v = self.value().index_select(axis, indices)?;
        Ok(Var::from_op(v, Op::IndexSelect(self.clone(), axis, indices.to_vec())))
    }

    /// Rows `indices` of a `[num, dim]` table -> `[indices.len(), dim]`: an
    /// embedding lookup. The gradient of a row is the sum of the output
    /// gradients that read it, except for row `padding_idx`, which is read as
    /// stored and gets a zero gradient (torch's `padding_idx`).
    pub fn embedding_rows(&self, indices: &[usize], padding_idx: Option<usize>) -> Result<Var> {
        self.embedding_lookup(indices, padding_idx, false)
    }

    /// [`Var::embedding_rows`] with a row-sparse gradient (torch's
    /// `nn.Embedding(sparse=True)`): the same values and the same dense
    /// gradient tensor, and when `self` is a leaf, [`crate::Grads::rows`]
    /// lists the rows looked up (sorted, each once, without `padding_idx`),
    /// for row-sparse optimizers such as SparseAdam.
    ///
    /// ```
    /// use nw_autograd::{Param, Var};
    /// use nw_tensor::Tensor;
    /// let w = Param::new(Tensor::ones(&[5, 2]));
    /// let y = Var::param(&w).sparse_embedding_rows(&[3, 0, 3, 1], Some(1)).unwrap();
    /// let g = y.sum().backward().unwrap();
    /// assert_eq!(g.rows(&w), Some(&[0, 3][..]));
    /// assert_eq!(g.get(&w).unwrap().to_vec(), vec![1., 1., 0., 0., 0., 0., 2., 2., 0., 0.]);
    /// ```
    pub fn sparse_embedding_rows(&self, indices: &[usize], padding_idx: Option<usize>) -> Result<Var> {
        self.embedding_lookup(indices, padding_idx, true)
    }

    fn embedding_lookup(&self, indices: &[usize], padding_idx: Option<usize>, sparse: bool) -> Result<Var> {
        if self.shape().len() != 2 {
            return Err(TensorError::InvalidShape {
                op: "embedding",
                shape: self.shape().to_vec(),
                reason: "the table must be [num_embeddings, embedding_dim]".into(),
            }
            .into());
        }
        if let Some(p) = padding_idx.filter(|&p| p >= self.shape()[0]) {
            return Err(TensorError::IndexOutOfRange {
                op: "embedding",
                index: p as i64,
                size: self.shape()[0],
            }
            .into());
        }
        let v = self.value().index_select(0, indices)?;
        Ok(Var::from_op(
            v,
            Op::EmbeddingRows { weight: self.clone(), indices: indices.to_vec(), padding_idx, sparse },
        ))
    }

    /// `out[i][j] = self[i][index[i][j]]` along `axis` (see [`Tensor::gather`]).
    pub fn gather(&self, axis: usize, index: &[usize], index_shape: &[usize]) -> Result<Var> {
        let v = self.value().gather(axis, index, index_shape)?;
        Ok(Var::from_op(v, Op::Gather(self.clone(), axis, index.to_vec())))
    }

    // ----- normalisers ------------------------------------------------------

    /// Softmax along `axis`.
    pub fn softmax(&self, axis: usize) -> Result<Var> {
        let v = self.value().softmax(axis)?;
        Ok(Var::from_op(v, Op::Softmax(self.clone(), axis)))
    }

    /// Log-softmax along `axis`.
    pub fn log_softmax(&self, axis: usize) -> Result<Var> {
        let v = self.value().log_softmax(axis)?;
        Ok(Var::from_op(v, Op::LogSoftmax(self.clone(), axis)))
    }

    // ----- fused losses -------------------------------------------------------

    /// Per-row cross-entropy of `[n, c]` logits against class indices, with
    /// label smoothing `eps` (torch semantics: the target distribution is
    /// `(1 - eps) onehot + eps / c`). Returns the `[n]` losses; reduce with
    /// [`Var::mean`] or [`Var::sum`].
    pub fn cross_entropy_rows(&self, targets: &[usize], smoothing: f32) -> Result<Var> {
        let x = self.value();
        if x.ndim() != 2 || x.shape()[0] != targets.len() {
            return Err(AutogradError::InvalidArgument {
                op: "cross_entropy",
                reason: format!(
                    "logits {:?} need shape [n, classes] with n = {} targets",
                    x.shape(),
                    targets.len()
                ),
            });
        }
        let c = x.shape()[1];
        if let Some(&bad) = targets.iter().find(|&&t| t >= c) {
            return Err(nw_tensor::TensorError::IndexOutOfRange {
                op: "cross_entropy",
                index: bad as i64,
                size: c,
            }
            .into());
        }
        if !(0.0..=1.0).contains(&smoothing) {
            return Err(AutogradError::InvalidArgument {
                op: "cross_entropy",
                reason: format!("label smoothing {smoothing} is outside [0, 1]"),
            });
        }
        let logp = x.log_softmax(1)?;
        let lp = logp.as_slice().expect("log_softmax output is contiguous");
        let losses: Vec<f32> = (0..targets.len())
            .map(|i| {
                let row = &lp[i * c..(i + 1) * c];
                let nll = -(row[targets[i]] as f64);
                let smooth = if smoothing > 0.0 {
                    -row.iter().map(|&v| v as f64).sum::<f64>() / c as f64
                } else {
                    0.0
                };
                ((1.0 - smoothing as f64) * nll + smoothing as f64 * smooth) as f32
            })
            .collect();
        let probs = logp.exp();
        let v = Tensor::from_vec(losses, &[targets.len()])?;
        Ok(Var::from_op(
            v,
            Op::CrossEntropy { logits: self.clone(), probs, targets: targets.to_vec(), smoothing },
        ))
    }
}
