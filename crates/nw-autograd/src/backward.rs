//! Backward of every operation in one place: given an op, its output value
//! `y` and the gradient `g` of the loss with respect to `y`, return the
//! gradient with respect to each input. Formulas are in the comments; `*`
//! is elementwise and gradients of broadcast inputs are summed back to the
//! input's shape.

use nw_tensor::Tensor;
use nw_tensor::conv::{
    conv_backward_bias, conv_transpose2d_backward_input, conv_transpose2d_backward_weight, conv2d_backward,
    conv2d_backward_input, conv2d_backward_weight,
};
use nw_tensor::pool::{adaptive_avg_pool2d_backward, avg_pool2d_backward, max_pool2d_backward};
use nw_tensor::upsample::upsample2d_backward;

use crate::error::Result;
use crate::op::Op;
use crate::ops::{GELU_C, SQRT_2_OVER_PI, normal_cdf, sigmoid};
use crate::ops_nn::{bce_pos_weight_backward, norm_backward, pointwise_loss_backward};
use crate::ops_rnn::{RecurrentSaved, recurrent_backward};
use crate::var::Var;

/// `g * f(x)` elementwise, where `f` is the local derivative at each input element.
fn chain(g: &Tensor, x: &Tensor, f: impl Fn(f32) -> f32 + Sync) -> Result<Tensor> {
    Ok(g.zip_with(x, "backward", move |g, x| g * f(x))?)
}

/// `g * f(y)` elementwise, for derivatives best written through the output.
fn chain_out(g: &Tensor, y: &Tensor, f: impl Fn(f32) -> f32 + Sync) -> Result<Tensor> {
    Ok(g.zip_with(y, "backward", move |g, y| g * f(y))?)
}

/// The gradient of one input: a whole tensor of the input's shape, or a
/// slice of it (what `narrow` gives back), which the sweep adds in place
/// into the input's gradient instead of materialising zeros around it.
pub(crate) enum InputGrad {
    /// A gradient of the input's full shape.
    Full(Tensor),
    /// `grad` belongs at `start..start + len` along `axis`; zero elsewhere.
    Slice { axis: usize, start: usize, grad: Tensor },
    /// A gradient of the input's full shape that is zero outside the axis-0
    /// `rows` (sorted, unique): a sparse embedding lookup's, reported in
    /// [`crate::Grads::rows`] when the input is a leaf.
    Rows { grad: Tensor, rows: Vec<usize> },
}

/// Gradients of the inputs of `op`.
pub(crate) fn backward_op(op: &Op, y: &Tensor, g: &Tensor) -> Result<Vec<(Var, InputGrad)>> {
    match op {
        // narrow: g placed at start..start+len along the axis, zeros elsewhere.
        // Returned as a slice so that T narrows of one input (the time steps of
        // a recurrent layer) cost O(slice) each rather than O(input).
        Op::Narrow(a, axis, start) => {
            Ok(vec![(a.clone(), InputGrad::Slice { axis: *axis, start: *start, grad: g.clone() })])
        }
        // sparse embedding: the dense dW of `embedding_backward` plus the rows
        // it touches, torch's coalesced sparse indices: every looked-up row
        // once, sorted, without padding_idx (also rows whose dW came out zero)
        Op::EmbeddingRows { weight, indices, padding_idx, sparse: true } => {
            let grad = embedding_backward(weight, indices, *padding_idx, g)?;
            let mut rows: Vec<usize> = indices.iter().copied().filter(|&r| Some(r) != *padding_idx).collect();
            rows.sort_unstable();
            rows.dedup();
            Ok(vec![(weight.clone(), InputGrad::Rows { grad, rows })])
        }
        _ => Ok(dense(op, y, g)?.into_iter().map(|(v, t)| (v, InputGrad::Full(t))).collect()),
    }
}

/// The embedding lookup's table gradient: `dW[r] = sum of g[k] over the
/// positions k that read row r` (in position order, from zero), zero for
/// `r = padding_idx`.
fn embedding_backward(
    weight: &Var,
    indices: &[usize],
    padding_idx: Option<usize>,
    g: &Tensor,
) -> Result<Tensor> {
    let dim = weight.shape()[1];
    let gc = g.contiguous();
    let gs = gc.as_slice().expect("contiguous");
    let mut dw = vec![0.0f32; weight.value().len()];
    for (k, &r) in indices.iter().enumerate() {
        if Some(r) != padding_idx {
            let row = &mut dw[r * dim..(r + 1) * dim];
            row.iter_mut().zip(&gs[k * dim..(k + 1) * dim]).for_each(|(d, &v)| *d += v);
        }
    }
    Ok(Tensor::from_vec(dw, weight.shape())?)
}

/// Gradients of the inputs of every op whose gradients are whole tensors.
fn dense(op: &Op, y: &Tensor, g: &Tensor) -> Result<Vec<(Var, Tensor)>> {
    use Op::*;
    let one = |v: &Var, t: Tensor| Ok(vec![(v.clone(), t)]);
    match op {
        // d(a + b) = g, g (summed over broadcast axes)
        Add(a, b) => {
            Ok(vec![(a.clone(), g.sum_to_shape(a.shape())?), (b.clone(), g.sum_to_shape(b.shape())?)])
        }
        // d(a - b) = g, -g
        Sub(a, b) => {
            Ok(vec![(a.clone(), g.sum_to_shape(a.shape())?), (b.clone(), g.neg().sum_to_shape(b.shape())?)])
        }
        // d(a b) = g b, g a
        Mul(a, b) => Ok(vec![
            (a.clone(), g.mul(b.value())?.sum_to_shape(a.shape())?),
            (b.clone(), g.mul(a.value())?.sum_to_shape(b.shape())?),
        ]),
        // d(a / b) = g / b, -g a / b^2 = -g y / b
        Div(a, b) => Ok(vec![
            (a.clone(), g.div(b.value())?.sum_to_shape(a.shape())?),
            (b.clone(), g.mul(y)?.div(b.value())?.neg().sum_to_shape(b.shape())?),
        ]),
        // d max(a, b) = g [a >= b], g [a < b]
        Maximum(a, b) => {
            let mask_a = a
                .value()
                .zip_with(b.value(), "maximum", |x, y| if x >= y || x.is_nan() { 1.0 } else { 0.0 })?;
            let ga = g.mul(&mask_a)?;
            let gb = g.sub(&ga)?;
            Ok(vec![(a.clone(), ga.sum_to_shape(a.shape())?), (b.clone(), gb.sum_to_shape(b.shape())?)])
        }
        // d(-x) = -g
        Neg(a) => one(a, g.neg()),
        // d(x + s) = g
        AddScalar(a) => one(a, g.clone()),
        // d(s x) = s g
        MulScalar(a, s) => one(a, g.mul_scalar(*s)),
        // d(x^p) = p x^(p-1) g
        PowScalar(a, p) => {
            let p = *p;
            one(a, chain(g, a.value(), move |x| if p == 2.0 { 2.0 * x } else { p * x.powf(p - 1.0) })?)
        }
        // d(e^x) = e^x g = y g
        Exp(a) => one(a, g.mul(y)?),
        // d(ln x) = g / x
        Ln(a) => one(a, g.div(a.value())?),
        // d(sqrt x) = g / (2 sqrt x) = g / (2 y)
        Sqrt(a) => one(a, chain_out(g, y, |y| 0.5 / y)?),
        // d|x| = sign(x) g (0 at 0)
        Abs(a) => one(
            a,
            chain(g, a.value(), |x| {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            })?,
        ),
        // d clamp(x, lo, hi) = g where lo <= x <= hi, else 0
        Clamp(a, lo, hi) => {
            let (lo, hi) = (*lo, *hi);
            one(a, chain(g, a.value(), move |x| if x >= lo && x <= hi { 1.0 } else { 0.0 })?)
        }
        // d tanh x = (1 - y^2) g
        Tanh(a) => one(a, chain_out(g, y, |y| 1.0 - y * y)?),
        // d sigmoid x = y (1 - y) g
        Sigmoid(a) => one(a, chain_out(g, y, |y| y * (1.0 - y))?),
        // d relu x = [x > 0] g
        Relu(a) => one(a, chain(g, a.value(), |x| if x > 0.0 { 1.0 } else { 0.0 })?),
        // d leaky_relu x = (x > 0 ? 1 : slope) g
        LeakyRelu(a, s) => {
            let s = *s;
            one(a, chain(g, a.value(), move |x| if x > 0.0 { 1.0 } else { s })?)
        }
        // d elu x = (x > 0 ? 1 : alpha e^x) g
        Elu(a, alpha) => {
            let al = *alpha;
            one(a, chain(g, a.value(), move |x| if x > 0.0 { 1.0 } else { al * x.exp() })?)
        }
        // d (x Phi(x)) = Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi)
        GeluErf(a) => one(
            a,
            chain(g, a.value(), |x| {
                let pdf = (-0.5 * x * x).exp() * 0.398_942_3;
                normal_cdf(x) + x * pdf
            })?,
        ),
        // u = sqrt(2/pi)(x + c x^3), t = tanh u:
        // d = (1 + t)/2 + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 c x^2)
        // (in f64: the two terms cancel near x = -0.75, where f32 loses digits)
        GeluTanh(a) => one(
            a,
            chain(g, a.value(), |x| {
                let (x, k, c) = (x as f64, SQRT_2_OVER_PI, GELU_C);
                let t = (k * (x + c * x * x * x)).tanh();
                (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * c * x * x)) as f32
            })?,
        ),
        // d softplus x = sigmoid(beta x) (1 above the threshold)
        Softplus(a, beta, th) => {
            let (b, t) = (*beta, *th);
            one(a, chain(g, a.value(), move |x| if b * x > t { 1.0 } else { sigmoid(b * x) })?)
        }
        // d (x s(x)) = s (1 + x (1 - s)), s = sigmoid(x)
        Silu(a) => one(
            a,
            chain(g, a.value(), |x| {
                let s = sigmoid(x);
                s * (1.0 + x * (1.0 - s))
            })?,
        ),
        // C = A B: dA = G B^T, dB = A^T G (batched: per matrix; a broadcast batch sums)
        MatMul(a, b) => {
            let (av, bv) = (a.value(), b.value());
            if av.ndim() == 2 {
                Ok(vec![(a.clone(), g.matmul(&bv.t()?)?), (b.clone(), av.t()?.matmul(g)?)])
            } else {
                let ga = g.matmul(&bv.transpose(1, 2)?)?.sum_to_shape(av.shape())?;
                let gb = av.transpose(1, 2)?.matmul(g)?.sum_to_shape(bv.shape())?;
                Ok(vec![(a.clone(), ga), (b.clone(), gb)])
            }
        }
        // y = x W^T + b: dx = G W, dW = G^T x, db = sum_rows G
        // (each computed only when that input wants a gradient: the input
        // of a first layer is data, and its GEMM would be wasted)
        Linear(x, w, b) => {
            let mut out = Vec::with_capacity(3);
            if x.requires_grad() {
                out.push((x.clone(), g.matmul(w.value())?));
            }
            if w.requires_grad() {
                out.push((w.clone(), g.t()?.matmul(x.value())?));
            }
            if let Some(b) = b.as_ref().filter(|b| b.requires_grad()) {
                out.push((b.clone(), sum_rows(g)?));
            }
            Ok(out)
        }
        // d sum = g broadcast to the input
        SumAll(a) => one(a, Tensor::full(a.shape(), g.item()?)),
        // d mean = g / n broadcast
        MeanAll(a) => one(a, Tensor::full(a.shape(), g.item()? / a.value().len() as f32)),
        // d sum_axis = g repeated along the axis
        SumAxis(a, axis, keepdim) => one(a, expand_along(g, a.shape(), *axis, *keepdim)?),
        // d mean_axis = g / n repeated along the axis
        MeanAxis(a, axis, keepdim) => {
            let n = a.shape()[*axis] as f32;
            one(a, expand_along(g, a.shape(), *axis, *keepdim)?.mul_scalar(1.0 / n))
        }
        // reshape back
        Reshape(a) => one(a, g.reshape(a.shape())?),
        // permute by the inverse permutation
        Permute(a, axes) => {
            let mut inv = vec![0; axes.len()];
            for (i, &ax) in axes.iter().enumerate() {
                inv[ax] = i;
            }
            one(a, g.permute(&inv)?.contiguous())
        }
        // narrow: g placed into zeros at start..start+len
        // narrow: see backward_op (a slice gradient, added in place)
        Narrow(..) => unreachable!("narrow is differentiated by backward_op"),
        // concat: split g back into the pieces
        Concat(vs, axis) => {
            let sizes: Vec<usize> = vs.iter().map(|v| v.shape()[*axis]).collect();
            let parts = g.split(*axis, &sizes)?;
            Ok(vs.iter().cloned().zip(parts.into_iter().map(|p| p.contiguous())).collect())
        }
        // index_select: scatter-add g rows back to the selected indices
        IndexSelect(a, axis, idx) => {
            let mut z = Tensor::zeros(a.shape());
            z.index_add_(*axis, idx, g)?;
            one(a, z)
        }
        // embedding: dW[r] += g[k] for every position k that read row r,
        // except r = padding_idx, whose gradient is zero (its value is read
        // as stored, as torch's padding_idx)
        // (sparse lookups: see backward_op, which adds the touched rows)
        EmbeddingRows { weight, indices, padding_idx, .. } => {
            one(weight, embedding_backward(weight, indices, *padding_idx, g)?)
        }
        // gather: scatter-add g back to the gathered positions
        Gather(a, axis, idx) => {
            let mut z = Tensor::zeros(a.shape());
            z.scatter_add_(*axis, idx, g)?;
            one(a, z)
        }
        // softmax: dx = y * (g - sum(g * y, axis))
        Softmax(a, axis) => {
            let gy = g.mul(y)?;
            let s = gy.sum_axis(*axis, true)?;
            one(a, y.mul(&g.sub(&s)?)?)
        }
        // log_softmax: dx = g - softmax(x) * sum(g, axis), softmax(x) = e^y
        LogSoftmax(a, axis) => {
            let s = g.sum_axis(*axis, true)?;
            one(a, g.sub(&y.exp().mul(&s)?)?)
        }
        // loss_i = -sum_c q_ic log p_ic with q = (1 - eps) onehot + eps / C:
        // d loss_i / d x_ic = g_i (p_ic - q_ic)
        CrossEntropy { logits, probs, targets, smoothing } => {
            let c = logits.shape()[1];
            let gv = g.contiguous();
            let gs = gv.as_slice().expect("contiguous");
            let mut d = probs.to_vec();
            let off = smoothing / c as f32;
            for (i, &t) in targets.iter().enumerate() {
                let row = &mut d[i * c..(i + 1) * c];
                for v in row.iter_mut() {
                    *v -= off;
                }
                row[t] -= 1.0 - smoothing;
                for v in row.iter_mut() {
                    *v *= gs[i];
                }
            }
            one(logits, Tensor::from_vec(d, logits.shape())?)
        }
        // y = conv(x, W) + b (cross-correlation):
        //   dx = col2im(W^T G) (the transposed convolution of G),
        //   dW = sum_n G_n cols(x_n)^T,  db[o] = sum_{n, p} G[n, o, p];
        // one fused pass when both x and W need gradients
        Conv2d { x, weight, bias, spec } => {
            let mut out = Vec::with_capacity(3);
            match (x.requires_grad(), weight.requires_grad()) {
                (true, true) => {
                    let gr = conv2d_backward(g, x.value(), weight.value(), false, spec)?;
                    out.push((x.clone(), gr.input));
                    out.push((weight.clone(), gr.weight));
                }
                (true, false) => {
                    out.push((x.clone(), conv2d_backward_input(g, weight.value(), x.shape(), spec)?));
                }
                (false, true) => {
                    out.push((weight.clone(), conv2d_backward_weight(g, x.value(), weight.shape(), spec)?));
                }
                (false, false) => {}
            }
            if let Some(b) = bias.as_ref().filter(|b| b.requires_grad()) {
                out.push((b.clone(), conv_backward_bias(g)?));
            }
            Ok(out)
        }
        // y = conv_transpose(x, W) + b = C^T(x) + b for the direct convolution C:
        //   dx = C(G) (cropped to x),  dW = the weight gradient of C with input G
        //   and output gradient x,  db[o] = sum_{n, p} G[n, o, p]
        ConvTranspose2d { x, weight, bias, spec } => {
            let mut out = Vec::with_capacity(3);
            if x.requires_grad() {
                out.push((x.clone(), conv_transpose2d_backward_input(g, weight.value(), x.shape(), spec)?));
            }
            if weight.requires_grad() {
                out.push((
                    weight.clone(),
                    conv_transpose2d_backward_weight(g, x.value(), weight.shape(), spec)?,
                ));
            }
            if let Some(b) = bias.as_ref().filter(|b| b.requires_grad()) {
                out.push((b.clone(), conv_backward_bias(g)?));
            }
            Ok(out)
        }
        // max pool: dx[idx] += G at the element each window chose, 0 elsewhere
        MaxPool2d { x, indices } => one(x, max_pool2d_backward(g, indices, x.shape())?),
        // avg pool: each element of a window receives G / divisor
        AvgPool2d { x, kernel, stride, padding, count_include_pad, ceil_mode } => one(
            x,
            avg_pool2d_backward(g, x.shape(), *kernel, *stride, *padding, *count_include_pad, *ceil_mode)?,
        ),
        // adaptive avg pool: each element of a cell's window receives G / cell size
        AdaptiveAvgPool2d(x) => one(x, adaptive_avg_pool2d_backward(g, x.shape())?),
        // upsample: each input element receives the output gradients that read
        // it, times their interpolation weights (1 for nearest)
        Upsample2d { x, spec } => one(x, upsample2d_backward(g, x.shape(), spec)?),
        // l = l(x, y) elementwise: dx = g dl/dx, dy = g dl/dy, with the
        // per-loss derivatives in ops_nn.rs (PointwiseLoss::derivatives):
        //   squared 2d, -2d; absolute sign d, -sign d; smooth L1 d/beta or sign d;
        //   Huber d or delta sign d; BCE (x - y)/max(x(1-x), 1e-12),
        //   ln'(1-x) - ln' x clamped; BCE-with-logits sigmoid(x) - y, -x
        PointwiseLoss(x, t, kind) => {
            let (dx, dy) = pointwise_loss_backward(*kind, x.value(), t.value(), g)?;
            Ok(vec![(x.clone(), dx), (t.clone(), dy)])
        }
        // l = (1 - y) x + lw softplus(-x), lw = 1 + (p - 1) y:
        //   dl/dx = lw sigmoid(x) - p y,  dl/dy = (p - 1) softplus(-x) - x  (times g)
        BceWithLogitsPosWeight { x, target, pos_weight } => {
            let (dx, dy) = bce_pos_weight_backward(x.value(), target.value(), pos_weight, g)?;
            Ok(vec![(x.clone(), dx), (target.clone(), dy)])
        }
        // y = xhat w + b per row of D elements, xhat = (x - mean) inv_std:
        // dxhat = g w;  dx = inv_std (dxhat - mean(dxhat) - xhat mean(dxhat xhat));
        // dw = sum_rows g xhat;  db = sum_rows g
        LayerNorm { x, weight, bias, xhat, inv_std } => {
            let d = xhat.len() / inv_std.len().max(1);
            let wv = weight.as_ref().map(|w| w.value());
            let (dx, dw, db) =
                norm_backward(xhat, inv_std, wv, g, |i| i / d.max(1), |i| i % d.max(1), d, true)?;
            let mut out = vec![(x.clone(), dx)];
            if let Some(w) = weight {
                out.push((w.clone(), dw.reshape(w.shape())?));
            }
            if let Some(b) = bias {
                out.push((b.clone(), db.reshape(b.shape())?));
            }
            Ok(out)
        }
        // the same per channel c over its M = N * spatial values; in training the
        // statistics depend on x:  dx = inv_std (g w - mean(g w) - xhat mean(g w xhat)),
        // in eval they are constants:  dx = g w inv_std.  dw = sum g xhat, db = sum g
        BatchNorm { x, weight, bias, xhat, inv_std, batch_stats } => {
            let c = inv_std.len();
            let s = if xhat.shape().len() > 2 { xhat.shape()[2..].iter().product() } else { 1 };
            let ch = move |i: usize| (i / s.max(1)) % c.max(1);
            let wv = weight.as_ref().map(|w| w.value());
            let (dx, dw, db) = norm_backward(xhat, inv_std, wv, g, ch, ch, c, *batch_stats)?;
            let mut out = vec![(x.clone(), dx)];
            if let Some(w) = weight {
                out.push((w.clone(), dw));
            }
            if let Some(b) = bias {
                out.push((b.clone(), db));
            }
            Ok(out)
        }
        // group norm: the layer-norm gradient per (sample, group) of D = C/G * S
        // values, with w and b per channel:
        //   dx = inv_std (g w - mean(g w) - xhat mean(g w xhat)),  dw[c] = sum g xhat, db[c] = sum g
        GroupNorm { x, weight, bias, xhat, inv_std, groups } => {
            let c = x.shape()[1];
            let s: usize = x.shape()[2..].iter().product();
            let d = (c / (*groups).max(1) * s).max(1);
            let wv = weight.as_ref().map(|w| w.value());
            let (dx, dw, db) =
                norm_backward(xhat, inv_std, wv, g, |i| i / d, |i| (i / s.max(1)) % c.max(1), c, true)?;
            let mut out = vec![(x.clone(), dx)];
            if let Some(w) = weight {
                out.push((w.clone(), dw));
            }
            if let Some(b) = bias {
                out.push((b.clone(), db));
            }
            Ok(out)
        }
        // One recurrent sequence, back through time (loops in ops_rnn.rs). With
        // dh, dc the gradients reaching h_t, c_t (upstream plus what step t+1
        // sends back), a the pre-activations (xp_t + h_{t-1} W_hh^T + b_hh), per step:
        //   tanh: da = dh (1 - h_t^2);   relu: da = dh [h_t > 0]
        //   LSTM: dc += dh o (1 - tanh^2 c_t);  da_i = dc g i (1 - i);
        //         da_f = dc c_{t-1} f (1 - f);  da_g = dc i (1 - g^2);
        //         da_o = dh tanh(c_t) o (1 - o);  dc_{t-1} = dc f
        //   GRU:  da_n = dh (1 - z)(1 - n^2);  da_r = da_n a_n r (1 - r);
        //         da_z = dh (h_{t-1} - n) z (1 - z);  on the W_hh side the n
        //         block is da_n r (a_n = h W_hn^T + b_hn sits inside r *)
        //   dxp_t = da;  dh_{t-1} = da_hh W_hh  (+ dh z for a GRU)
        // and over every step and row: dW_hh = sum da_hh^T h_{t-1},
        // db_hh = sum da_hh, dh0 = dh_{-1}, dc0 = dc_{-1}.
        Recurrent { cell, xp, w_hh, b_hh, h0, c0, reverse, saved } => {
            let s = RecurrentSaved {
                cell: *cell,
                xp: xp.value(),
                w_hh: w_hh.value(),
                h0: h0.value(),
                c0: c0.as_ref().map(Var::value),
                reverse: *reverse,
                saved,
                y,
                initial_grads: h0.requires_grad() || c0.as_ref().is_some_and(Var::requires_grad),
            };
            let r = recurrent_backward(&s, g)?;
            let mut out = vec![(xp.clone(), r.xp), (w_hh.clone(), r.w_hh)];
            if let Some(b) = b_hh {
                out.push((b.clone(), r.b_hh));
            }
            out.push((h0.clone(), r.h0));
            if let (Some(c), Some(dc)) = (c0, r.c0) {
                out.push((c.clone(), dc));
            }
            Ok(out)
        }
    }
}

/// Column sums of a matrix `[n, m] -> [m]`, accumulated in f64 row by row
/// (in row order, so the bits do not depend on threads): the bias gradient
/// of a linear layer. Reading whole rows keeps it at memory speed, where a
/// strided per-column reduction is several times slower.
fn sum_rows(g: &Tensor) -> Result<Tensor> {
    let m = g.shape()[1];
    let gc = g.contiguous();
    let gs = gc.as_slice().expect("contiguous");
    let mut acc = vec![0.0f64; m];
    for row in gs.chunks_exact(m.max(1)) {
        acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
    }
    Ok(Tensor::from_vec(acc.into_iter().map(|v| v as f32).collect(), &[m])?)
}

/// Repeats `g` along `axis` to the input shape of a reduction.
fn expand_along(g: &Tensor, shape: &[usize], axis: usize, keepdim: bool) -> Result<Tensor> {
    let g = if keepdim { g.clone() } else { g.unsqueeze(axis)? };
    Ok(g.broadcast_to(shape)?)
}
