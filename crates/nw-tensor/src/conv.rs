//! 2-D and 1-D convolution (PyTorch layouts and semantics) by im2col + GEMM,
//! with the three backward kernels beside the forward, and the 2-D
//! transposed convolution built on them ([`conv_transpose2d`]).
//!
//! Layouts: input NCHW `[n, c_in, h, w]`, weight `[c_out, c_in / groups, kh, kw]`,
//! bias `[c_out]`, output `[n, c_out, oh, ow]` with
//! `oh = (h + 2 ph - dh (kh - 1) - 1) / sh + 1` (floor), likewise `ow`.
//! 1-D forms use `[n, c, l]` and weight `[c_out, c_in / groups, k]` and run as
//! 2-D with height 1.
//!
//! ```text
//! y[n, o, oy, ox] = b[o] + sum_{c, ki, kj} w[o, c, ki, kj] * x[n, g*cig + c, oy*sh - ph + ki*dh, ox*sw - pw + kj*dw]
//! ```
//! where `g = o / (c_out / groups)`, `cig = c_in / groups`, and positions
//! outside the input read 0.
//!
//! ## Kernels (`passes.rs`; the loops in `kernels.rs`)
//! - forward: per image (in parallel over images) im2col into `cols`
//!   `[c_in kh kw, oh ow]`, then per group one GEMM `y_g = W_g cols_g`
//!   (`[c_out/g, cig kh kw] x [cig kh kw, oh ow]`), then `+ b`;
//! - input gradient: per image `dcols_g = W_g^T dy_g`, then col2im adds each
//!   column element back where im2col read it (overlaps accumulate); or, with
//!   stride 1 and fewer output than input channels, the same gradient as the
//!   forward convolution of `dy` with the flipped, channel-swapped kernel;
//! - weight gradient: `dW_g = sum_n dy_{n,g} cols_{n,g}^T`;
//! - bias gradient: `db[o] = sum_{n, oy, ox} dy[n, o, oy, ox]` (in f64, fixed order).
//!
//! A 1x1 kernel with stride 1 and no padding skips im2col: the image is its
//! own column matrix.
//!
//! ## Precision
//! [`Conv2dSpec::accumulation`] picks the arithmetic: [`Accumulation::F32`]
//! (default; f32 GEMM, like PyTorch's CPU kernels) or [`Accumulation::F64`]
//! (operands widened, products and sums in f64, one rounding to f32 at the
//! end; for parity against f64 references, 2-3 times slower).
//!
//! ## Determinism
//! Every output element of the forward and the input gradient is computed by
//! one task. The weight gradient is summed over a fixed partition of the batch
//! into at most [`WGRAD_SLOTS`] contiguous image ranges (depending on the batch
//! size only): each range accumulates its images in order into its own buffer,
//! and the buffers are added in range order. The bits therefore do not depend
//! on the number of threads.
//!
//! Each worker thread keeps its largest im2col buffer for reuse across calls.
//!
//! ```
//! use nw_tensor::{Rng, Tensor};
//! use nw_tensor::conv::{conv2d, conv2d_backward, Conv2dSpec};
//!
//! let mut rng = Rng::new(0);
//! let x = Tensor::randn(&[2, 4, 9, 9], 0.0, 1.0, &mut rng);
//! let w = Tensor::randn(&[8, 2, 3, 3], 0.0, 0.1, &mut rng);
//! let b = Tensor::zeros(&[8]);
//! let spec = Conv2dSpec { stride: (2, 2), padding: (1, 1), groups: 2, ..Default::default() };
//! let y = conv2d(&x, &w, Some(&b), &spec).unwrap();
//! assert_eq!(y.shape(), &[2, 8, 5, 5]);
//! // gradients of sum(y * dy)
//! let dy = Tensor::ones(y.shape());
//! let g = conv2d_backward(&dy, &x, &w, true, &spec).unwrap();
//! assert_eq!(g.input.shape(), x.shape());
//! assert_eq!(g.weight.shape(), w.shape());
//! assert_eq!(g.bias.unwrap().to_vec(), vec![50.0; 8]); // 2 images x 5 x 5 ones
//! // bad specs and shapes are errors naming the op and the shapes
//! let e = conv2d(&x, &Tensor::zeros(&[8, 3, 3, 3]), None, &spec).unwrap_err();
//! assert!(e.to_string().starts_with("conv2d: shape mismatch between [2, 4, 9, 9] and [8, 3, 3, 3]"));
//! ```

mod kernels;
mod passes;
#[cfg(test)]
mod tests;
mod transpose;

use crate::error::{Result, TensorError};
use crate::tensor::Tensor;
use passes::{backward, bias_grad, forward};
pub use transpose::{
    ConvTranspose2dSpec, conv_transpose2d, conv_transpose2d_backward_bias, conv_transpose2d_backward_input,
    conv_transpose2d_backward_weight, conv_transpose2d_output_shape,
};

/// Upper bound on the number of image ranges the weight gradient is split
/// into (see the module docs on determinism). A constant, never the thread count.
pub const WGRAD_SLOTS: usize = 16;

/// Hyper-parameters of a 2-D convolution, as `(height, width)` pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conv2dSpec {
    /// Step between output positions. Default `(1, 1)`.
    pub stride: (usize, usize),
    /// Zeros added on each side of the input. Default `(0, 0)`.
    pub padding: (usize, usize),
    /// Spacing between kernel taps. Default `(1, 1)`.
    pub dilation: (usize, usize),
    /// Number of channel groups; must divide `c_in` and `c_out`
    /// (`groups == c_in` is a depthwise convolution). Default 1.
    pub groups: usize,
    /// How sums of products are accumulated. Default [`Accumulation::F32`].
    pub accumulation: Accumulation,
}

impl Default for Conv2dSpec {
    fn default() -> Self {
        Conv2dSpec {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            accumulation: Accumulation::F32,
        }
    }
}

/// The arithmetic a convolution's sums of products use (forward and all
/// backward kernels; the bias gradient always sums in f64).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Accumulation {
    /// Products and sums in f32 through the packed GEMM: the fast path, and
    /// the arithmetic of PyTorch's own CPU kernels. Each result carries the
    /// rounding error of an f32 sum (at most about `terms * eps * sum|products|`),
    /// which on badly cancelling sums can exceed a `1e-5` relative tolerance
    /// against an f64 reference (PyTorch's f32 kernels miss it too).
    #[default]
    F32,
    /// Operands widened to f64, products and sums in f64 (matrixmultiply's
    /// dgemm), each result rounded to f32 once: within one f32 rounding of
    /// the exact value. About 2-3 times slower than `F32`; use it for parity
    /// checks against f64 references.
    F64,
}

/// Hyper-parameters of a 1-D convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conv1dSpec {
    /// Step between output positions. Default 1.
    pub stride: usize,
    /// Zeros added on each side. Default 0.
    pub padding: usize,
    /// Spacing between kernel taps. Default 1.
    pub dilation: usize,
    /// Number of channel groups. Default 1.
    pub groups: usize,
    /// How sums of products are accumulated. Default [`Accumulation::F32`].
    pub accumulation: Accumulation,
}

impl Default for Conv1dSpec {
    fn default() -> Self {
        Conv1dSpec { stride: 1, padding: 0, dilation: 1, groups: 1, accumulation: Accumulation::F32 }
    }
}

impl Conv1dSpec {
    /// The equivalent 2-D spec over an input of height 1.
    pub fn to_2d(&self) -> Conv2dSpec {
        Conv2dSpec {
            stride: (1, self.stride),
            padding: (0, self.padding),
            dilation: (1, self.dilation),
            groups: self.groups,
            accumulation: self.accumulation,
        }
    }
}

/// Gradients of `sum(conv(x, w, b) * grad_out)` with respect to each operand.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvGrads {
    /// Gradient with respect to the input, shaped like it.
    pub input: Tensor,
    /// Gradient with respect to the weight, shaped like it.
    pub weight: Tensor,
    /// Gradient with respect to the bias `[c_out]`, if one was asked for.
    pub bias: Option<Tensor>,
}

/// The checked geometry of one convolution.
#[derive(Clone, Copy, Debug)]
struct Geom {
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    groups: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    dh: usize,
    dw: usize,
}

impl Geom {
    /// Checks an input shape, a weight shape and a spec against each other.
    fn new(op: &'static str, x: &[usize], wt: &[usize], spec: &Conv2dSpec) -> Result<Geom> {
        if x.len() != 4 {
            return Err(TensorError::InvalidShape {
                op,
                shape: x.to_vec(),
                reason: "input must be 4-D [n, c_in, h, w]".into(),
            });
        }
        if wt.len() != 4 {
            return Err(TensorError::InvalidShape {
                op,
                shape: wt.to_vec(),
                reason: "weight must be 4-D [c_out, c_in / groups, kh, kw]".into(),
            });
        }
        let Conv2dSpec { stride: (sh, sw), padding: (ph, pw), dilation: (dh, dw), groups, .. } = *spec;
        if sh == 0 || sw == 0 || dh == 0 || dw == 0 || groups == 0 {
            return Err(TensorError::InvalidArgument {
                op,
                reason: format!(
                    "stride {:?}, dilation {:?} and groups {groups} must be positive",
                    spec.stride, spec.dilation
                ),
            });
        }
        let (n, c_in, h, w) = (x[0], x[1], x[2], x[3]);
        let (c_out, cig, kh, kw) = (wt[0], wt[1], wt[2], wt[3]);
        if c_in % groups != 0 || c_out % groups != 0 {
            return Err(TensorError::InvalidArgument {
                op,
                reason: format!(
                    "groups {groups} must divide the input channels and output channels \
                     (input {x:?}, weight {wt:?})"
                ),
            });
        }
        if cig * groups != c_in {
            return Err(TensorError::ShapeMismatch { op, lhs: x.to_vec(), rhs: wt.to_vec() });
        }
        if kh == 0 || kw == 0 {
            return Err(TensorError::InvalidShape {
                op,
                shape: wt.to_vec(),
                reason: "kernel height and width must be positive".into(),
            });
        }
        // Spans and padded sizes; absurd values that overflow are rejected.
        let span = |d: usize, k: usize| d.checked_mul(k - 1).and_then(|v| v.checked_add(1));
        let padded = |s: usize, p: usize| p.checked_mul(2).and_then(|v| v.checked_add(s));
        let (Some(ekh), Some(ekw), Some(hp), Some(wp)) =
            (span(dh, kh), span(dw, kw), padded(h, ph), padded(w, pw))
        else {
            return Err(TensorError::InvalidArgument {
                op,
                reason: format!(
                    "padding {:?} or dilation {:?} overflows for input {x:?} and weight {wt:?}",
                    spec.padding, spec.dilation
                ),
            });
        };
        if ekh > hp || ekw > wp {
            return Err(TensorError::InvalidArgument {
                op,
                reason: format!(
                    "kernel of weight {wt:?} spans {ekh}x{ekw} with dilation {:?}, larger than the \
                     input {x:?} padded to {hp}x{wp}",
                    spec.dilation
                ),
            });
        }
        let (oh, ow) = ((hp - ekh) / sh + 1, (wp - ekw) / sw + 1);
        // The output and an image's column matrix are allocated from these
        // sizes: a padding from a file that makes them pass the tensor limit
        // is an error here, before anything is allocated.
        crate::tensor::numel_within(op, &[n, c_out, oh, ow], crate::MAX_ELEMENTS)?;
        crate::tensor::numel_within(op, &[c_in, kh, kw, oh, ow], crate::MAX_ELEMENTS)?;
        Ok(Geom { n, c_in, h, w, c_out, kh, kw, oh, ow, groups, sh, sw, ph, pw, dh, dw })
    }

    fn out_shape(&self) -> [usize; 4] {
        [self.n, self.c_out, self.oh, self.ow]
    }
    fn cog(&self) -> usize {
        self.c_out / self.groups
    }
    /// Rows of one group's column matrix: `c_in / groups * kh * kw`.
    fn kg(&self) -> usize {
        self.c_in / self.groups * self.kh * self.kw
    }
    fn ohw(&self) -> usize {
        self.oh * self.ow
    }
    fn in_img(&self) -> usize {
        self.c_in * self.h * self.w
    }
    fn out_img(&self) -> usize {
        self.c_out * self.ohw()
    }
    fn cols_len(&self) -> usize {
        self.c_in * self.kh * self.kw * self.ohw()
    }
    /// 1x1 kernel, stride 1, no padding: the image is its own column matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.ph == 0 && self.pw == 0
    }

    /// The convolution whose forward pass is this one's input gradient, when
    /// there is one (stride 1, `p <= d (k - 1)` on both axes): input `dy`
    /// (`c_out` channels, `oh x ow`), output `dx` (`c_in` channels, `h x w`),
    /// padding `d (k - 1) - p`, same kernel size, dilation and groups. Its
    /// weight is the flipped, channel-swapped `W` (see `passes::flip_transpose`).
    fn adjoint(&self) -> Option<Geom> {
        let (span_h, span_w) = (self.dh * (self.kh - 1), self.dw * (self.kw - 1));
        if self.sh != 1 || self.sw != 1 || self.ph > span_h || self.pw > span_w {
            return None;
        }
        Some(Geom {
            c_in: self.c_out,
            h: self.oh,
            w: self.ow,
            c_out: self.c_in,
            oh: self.h,
            ow: self.w,
            ph: span_h - self.ph,
            pw: span_w - self.pw,
            ..*self
        })
    }
}

/// Output shape `[n, c_out, oh, ow]` of [`conv2d`] for these operand shapes,
/// or the error [`conv2d`] would give.
pub fn conv2d_output_shape(input: &[usize], weight: &[usize], spec: &Conv2dSpec) -> Result<Vec<usize>> {
    Ok(Geom::new("conv2d", input, weight, spec)?.out_shape().to_vec())
}

fn check_bias(op: &'static str, bias: &Tensor, c_out: usize) -> Result<()> {
    if bias.shape() != [c_out] {
        return Err(TensorError::ShapeMismatch { op, lhs: vec![c_out], rhs: bias.shape().to_vec() });
    }
    Ok(())
}

fn check_grad_out(op: &'static str, g: &Geom, grad_out: &Tensor) -> Result<()> {
    if grad_out.shape() != g.out_shape() {
        return Err(TensorError::ShapeMismatch {
            op,
            lhs: g.out_shape().to_vec(),
            rhs: grad_out.shape().to_vec(),
        });
    }
    Ok(())
}

/// 2-D convolution (cross-correlation, as in PyTorch): `x [n, c_in, h, w]`,
/// `weight [c_out, c_in/groups, kh, kw]`, optional `bias [c_out]` ->
/// `[n, c_out, oh, ow]`. See the [module docs](self) for the formula.
///
/// Errors (naming `conv2d` and the shapes) on operands of the wrong rank,
/// channels that do not match `groups`, a zero stride, dilation or group
/// count, a kernel larger than the padded input, or a bias not `[c_out]`.
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, spec: &Conv2dSpec) -> Result<Tensor> {
    let g = Geom::new("conv2d", x.shape(), weight.shape(), spec)?;
    if let Some(b) = bias {
        check_bias("conv2d", b, g.c_out)?;
    }
    let (x, weight) = (x.contiguous(), weight.contiguous());
    let bias = bias.map(Tensor::contiguous);
    let (xs, ws) = (x.as_slice().expect("contiguous"), weight.as_slice().expect("contiguous"));
    let bs = bias.as_ref().map(|b| b.as_slice().expect("contiguous"));
    let out = match spec.accumulation {
        Accumulation::F32 => forward::<f32>(&g, xs, ws, bs),
        Accumulation::F64 => forward::<f64>(&g, xs, ws, bs),
    };
    Tensor::from_vec(out, &g.out_shape())
}

/// All three gradients of `sum(conv2d(x, weight, bias) * grad_out)`: input,
/// weight, and (when `with_bias`) bias.
///
/// ```text
/// dx    = col2im(W^T dy)            per image and group (or the equivalent
///                                   convolution of dy with the flipped kernel)
/// dW    = sum_n dy_n cols(x_n)^T    over a fixed partition of the batch
/// db[o] = sum_{n, oy, ox} dy[n, o, oy, ox]
/// ```
pub fn conv2d_backward(
    grad_out: &Tensor,
    x: &Tensor,
    weight: &Tensor,
    with_bias: bool,
    spec: &Conv2dSpec,
) -> Result<ConvGrads> {
    let op = "conv2d_backward";
    let g = Geom::new(op, x.shape(), weight.shape(), spec)?;
    check_grad_out(op, &g, grad_out)?;
    let (dy, x, w) = (grad_out.contiguous(), x.contiguous(), weight.contiguous());
    let dys = dy.as_slice().expect("contiguous");
    let (xs, ws) = (Some(x.as_slice().expect("contiguous")), Some(w.as_slice().expect("contiguous")));
    let (dx, dw) = match spec.accumulation {
        Accumulation::F32 => backward::<f32>(&g, dys, xs, ws),
        Accumulation::F64 => backward::<f64>(&g, dys, xs, ws),
    };
    Ok(ConvGrads {
        input: Tensor::from_vec(dx.expect("input gradient requested"), x.shape())?,
        weight: Tensor::from_vec(dw.expect("weight gradient requested"), w.shape())?,
        bias: if with_bias { Some(bias_grad(g.n, g.c_out, g.ohw(), dys)) } else { None },
    })
}

/// The input gradient alone: `dx = col2im(W^T grad_out)` for an input of
/// `input_shape` (see [`conv2d_backward`]).
pub fn conv2d_backward_input(
    grad_out: &Tensor,
    weight: &Tensor,
    input_shape: &[usize],
    spec: &Conv2dSpec,
) -> Result<Tensor> {
    let op = "conv2d_backward_input";
    let g = Geom::new(op, input_shape, weight.shape(), spec)?;
    check_grad_out(op, &g, grad_out)?;
    let (dy, w) = (grad_out.contiguous(), weight.contiguous());
    let (dys, ws) = (dy.as_slice().expect("contiguous"), Some(w.as_slice().expect("contiguous")));
    let (dx, _) = match spec.accumulation {
        Accumulation::F32 => backward::<f32>(&g, dys, None, ws),
        Accumulation::F64 => backward::<f64>(&g, dys, None, ws),
    };
    Tensor::from_vec(dx.expect("input gradient requested"), input_shape)
}

/// The weight gradient alone: `dW = sum_n grad_out_n cols(x_n)^T` for a
/// weight of `weight_shape` (see [`conv2d_backward`]).
pub fn conv2d_backward_weight(
    grad_out: &Tensor,
    x: &Tensor,
    weight_shape: &[usize],
    spec: &Conv2dSpec,
) -> Result<Tensor> {
    let op = "conv2d_backward_weight";
    let g = Geom::new(op, x.shape(), weight_shape, spec)?;
    check_grad_out(op, &g, grad_out)?;
    let (dy, x) = (grad_out.contiguous(), x.contiguous());
    let (dys, xs) = (dy.as_slice().expect("contiguous"), Some(x.as_slice().expect("contiguous")));
    let (_, dw) = match spec.accumulation {
        Accumulation::F32 => backward::<f32>(&g, dys, xs, None),
        Accumulation::F64 => backward::<f64>(&g, dys, xs, None),
    };
    Tensor::from_vec(dw.expect("weight gradient requested"), weight_shape)
}

/// The bias gradient of a 1-D or 2-D convolution: `grad_out` summed over every
/// axis but 1 (the channels), accumulated in f64 in a fixed order.
pub fn conv_backward_bias(grad_out: &Tensor) -> Result<Tensor> {
    if grad_out.ndim() < 2 {
        return Err(TensorError::InvalidShape {
            op: "conv_backward_bias",
            shape: grad_out.shape().to_vec(),
            reason: "needs [n, c_out, ...]".into(),
        });
    }
    let s = grad_out.shape();
    let dy = grad_out.contiguous();
    Ok(bias_grad(s[0], s[1], s[2..].iter().product(), dy.as_slice().expect("contiguous")))
}

// ----- 1-D ------------------------------------------------------------------

fn check_rank3(op: &'static str, shape: &[usize], what: &str) -> Result<()> {
    if shape.len() != 3 {
        return Err(TensorError::InvalidShape {
            op,
            shape: shape.to_vec(),
            reason: format!("{what} must be 3-D"),
        });
    }
    Ok(())
}

/// `[a, b, l]` -> `[a, b, 1, l]`.
fn to_4d(shape: &[usize]) -> [usize; 4] {
    [shape[0], shape[1], 1, shape[2]]
}

/// 1-D convolution: `x [n, c_in, l]`, `weight [c_out, c_in/groups, k]`,
/// optional `bias [c_out]` -> `[n, c_out, ol]` with
/// `ol = (l + 2p - d(k-1) - 1)/s + 1`. Runs as [`conv2d`] over height 1.
///
/// ```
/// # use nw_tensor::Tensor;
/// # use nw_tensor::conv::{conv1d, Conv1dSpec};
/// let x = Tensor::from_vec(vec![1., 2., 3., 4.], &[1, 1, 4]).unwrap();
/// let w = Tensor::from_vec(vec![1., -1.], &[1, 1, 2]).unwrap();
/// let y = conv1d(&x, &w, None, &Conv1dSpec::default()).unwrap();
/// assert_eq!(y.to_vec(), vec![-1., -1., -1.]); // x[i] - x[i+1]
/// ```
pub fn conv1d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, spec: &Conv1dSpec) -> Result<Tensor> {
    check_rank3("conv1d", x.shape(), "input [n, c_in, l]")?;
    check_rank3("conv1d", weight.shape(), "weight [c_out, c_in / groups, k]")?;
    let y =
        conv2d(&x.reshape(&to_4d(x.shape()))?, &weight.reshape(&to_4d(weight.shape()))?, bias, &spec.to_2d())
            .map_err(|e| rename(e, "conv1d", x.shape(), weight.shape()))?;
    let s = y.shape().to_vec();
    y.reshape(&[s[0], s[1], s[3]])
}

/// All gradients of `sum(conv1d(x, weight, bias) * grad_out)`; see
/// [`conv2d_backward`].
pub fn conv1d_backward(
    grad_out: &Tensor,
    x: &Tensor,
    weight: &Tensor,
    with_bias: bool,
    spec: &Conv1dSpec,
) -> Result<ConvGrads> {
    let op = "conv1d_backward";
    check_rank3(op, x.shape(), "input [n, c_in, l]")?;
    check_rank3(op, weight.shape(), "weight [c_out, c_in / groups, k]")?;
    check_rank3(op, grad_out.shape(), "grad_out [n, c_out, l_out]")?;
    let g = conv2d_backward(
        &grad_out.reshape(&to_4d(grad_out.shape()))?,
        &x.reshape(&to_4d(x.shape()))?,
        &weight.reshape(&to_4d(weight.shape()))?,
        with_bias,
        &spec.to_2d(),
    )
    .map_err(|e| rename(e, op, x.shape(), weight.shape()))?;
    Ok(ConvGrads {
        input: g.input.reshape(x.shape())?,
        weight: g.weight.reshape(weight.shape())?,
        bias: g.bias,
    })
}

/// Restates an error of the 2-D kernel under the 1-D op's name and shapes.
fn rename(e: TensorError, op: &'static str, x: &[usize], w: &[usize]) -> TensorError {
    match e {
        TensorError::ShapeMismatch { lhs, rhs, .. } if lhs.len() == 4 && rhs.len() == 4 && lhs[2] == 1 => {
            let drop_h = |v: Vec<usize>| vec![v[0], v[1], v[3]];
            TensorError::ShapeMismatch { op, lhs: drop_h(lhs), rhs: drop_h(rhs) }
        }
        TensorError::ShapeMismatch { lhs, rhs, .. } => TensorError::ShapeMismatch { op, lhs, rhs },
        TensorError::InvalidShape { shape, reason, .. } => TensorError::InvalidShape { op, shape, reason },
        TensorError::InvalidArgument { reason, .. } => TensorError::InvalidArgument {
            op,
            reason: format!("{reason} (1-D input {x:?}, weight {w:?}, run as height 1)"),
        },
        other => other,
    }
}
