//! Forward halves of the fused neural-network operations: elementwise
//! losses and the normalisations. Each records an [`Op`]; the derivative is
//! in `backward.rs` under the same variant name, with the loops it needs in
//! the `*_backward` helpers at the end of this file.

use nw_tensor::{Tensor, TensorError};

use crate::error::{AutogradError, Result};
use crate::op::Op;
use crate::var::Var;

/// An elementwise loss `l(x, y)` between a prediction `x` and a target `y`
/// of the same shape, as [`Var::pointwise_loss`] computes it (no reduction).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PointwiseLoss {
    /// `(x - y)^2`.
    SquaredError,
    /// `|x - y|`.
    AbsoluteError,
    /// With `d = x - y`: `0.5 d^2 / beta` where `|d| < beta`, else
    /// `|d| - 0.5 beta` (torch `smooth_l1_loss`; `beta = 0` is L1).
    SmoothL1 {
        /// The threshold between the quadratic and the linear part (>= 0).
        beta: f32,
    },
    /// With `d = x - y`: `0.5 d^2` where `|d| < delta`, else
    /// `delta (|d| - 0.5 delta)` (torch `huber_loss`).
    Huber {
        /// The threshold between the quadratic and the linear part (> 0).
        delta: f32,
    },
    /// `-(y max(ln x, -100) + (1 - y) max(ln(1 - x), -100))` for
    /// probabilities `x` in `[0, 1]` (torch `binary_cross_entropy`, whose log
    /// is clamped at -100 so that `x = 0` or `1` gives a finite loss).
    BinaryCrossEntropy,
    /// The same on logits, computed stably as
    /// `max(x, 0) - x y + ln(1 + e^-|x|)` (torch
    /// `binary_cross_entropy_with_logits`).
    BinaryCrossEntropyWithLogits,
}

/// The floor torch puts under `x (1 - x)` in the derivative of binary cross-entropy.
const BCE_EPS: f64 = 1e-12;

impl PointwiseLoss {
    fn name(self) -> &'static str {
        match self {
            PointwiseLoss::SquaredError => "mse_loss",
            PointwiseLoss::AbsoluteError => "l1_loss",
            PointwiseLoss::SmoothL1 { .. } => "smooth_l1_loss",
            PointwiseLoss::Huber { .. } => "huber_loss",
            PointwiseLoss::BinaryCrossEntropy => "binary_cross_entropy",
            PointwiseLoss::BinaryCrossEntropyWithLogits => "binary_cross_entropy_with_logits",
        }
    }

    /// The loss at one element (in f64).
    pub(crate) fn value(self, x: f64, y: f64) -> f64 {
        match self {
            PointwiseLoss::SquaredError => (x - y) * (x - y),
            PointwiseLoss::AbsoluteError => (x - y).abs(),
            PointwiseLoss::SmoothL1 { beta } => {
                let (d, b) = ((x - y).abs(), beta as f64);
                if d < b { 0.5 * d * d / b } else { d - 0.5 * b }
            }
            PointwiseLoss::Huber { delta } => {
                let (d, dl) = ((x - y).abs(), delta as f64);
                if d < dl { 0.5 * d * d } else { dl * (d - 0.5 * dl) }
            }
            PointwiseLoss::BinaryCrossEntropy => {
                let (lx, l1x) = clamped_logs(x);
                -(y * lx + (1.0 - y) * l1x)
            }
            PointwiseLoss::BinaryCrossEntropyWithLogits => x.max(0.0) - x * y + (-x.abs()).exp().ln_1p(),
        }
    }

    /// `(dl/dx, dl/dy)` at one element (in f64).
    pub(crate) fn derivatives(self, x: f64, y: f64) -> (f64, f64) {
        let sign = |d: f64| {
            if d > 0.0 {
                1.0
            } else if d < 0.0 {
                -1.0
            } else {
                0.0
            }
        };
        let dx = match self {
            // d (x - y)^2 / dx = 2 (x - y)
            PointwiseLoss::SquaredError => 2.0 * (x - y),
            // d |x - y| / dx = sign(x - y) (0 at 0, as torch)
            PointwiseLoss::AbsoluteError => sign(x - y),
            // d/dx = d / beta inside the quadratic zone, sign(d) outside
            PointwiseLoss::SmoothL1 { beta } => {
                let d = x - y;
                if d.abs() < beta as f64 { d / beta as f64 } else { sign(d) }
            }
            // d/dx = d inside, delta sign(d) outside
            PointwiseLoss::Huber { delta } => {
                let d = x - y;
                if d.abs() < delta as f64 { d } else { delta as f64 * sign(d) }
            }
            // d/dx = (x - y) / max(x (1 - x), 1e-12)   (torch's formula)
            PointwiseLoss::BinaryCrossEntropy => (x - y) / (x * (1.0 - x)).max(BCE_EPS),
            // d/dx = sigmoid(x) - y
            PointwiseLoss::BinaryCrossEntropyWithLogits => sigmoid64(x) - y,
        };
        let dy = match self {
            // the distance losses depend on x - y only: dl/dy = -dl/dx
            PointwiseLoss::SquaredError
            | PointwiseLoss::AbsoluteError
            | PointwiseLoss::SmoothL1 { .. }
            | PointwiseLoss::Huber { .. } => -dx,
            // dl/dy = max(ln(1 - x), -100) - max(ln x, -100)
            PointwiseLoss::BinaryCrossEntropy => {
                let (lx, l1x) = clamped_logs(x);
                l1x - lx
            }
            // dl/dy = -x
            PointwiseLoss::BinaryCrossEntropyWithLogits => -x,
        };
        (dx, dy)
    }
}

/// `(max(ln x, -100), max(ln(1 - x), -100))`.
fn clamped_logs(x: f64) -> (f64, f64) {
    (x.ln().max(-100.0), (-x).ln_1p().max(-100.0))
}

/// `softplus(-x) = ln(1 + e^-x) = ln(1 + e^-|x|) + max(-x, 0)`, stably.
fn softplus_neg(x: f64) -> f64 {
    (-x.abs()).exp().ln_1p() + (-x).max(0.0)
}

fn sigmoid64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Batch statistics of one training-mode [`Var::batch_norm_train`] call, per
/// channel: what a BatchNorm layer folds into its running estimates.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchStats {
    /// Per-channel mean over the batch and spatial positions.
    pub mean: Vec<f64>,
    /// Per-channel biased variance (divided by `count`).
    pub var: Vec<f64>,
    /// Number of values per channel (`N * spatial`).
    pub count: usize,
}

impl BatchStats {
    /// The unbiased variance (divided by `count - 1`; the biased one when
    /// `count == 1`), as torch uses for `running_var`.
    pub fn unbiased_var(&self) -> Vec<f64> {
        let n = self.count as f64;
        let f = if self.count > 1 { n / (n - 1.0) } else { 1.0 };
        self.var.iter().map(|v| v * f).collect()
    }
}

fn mismatch(op: &'static str, lhs: &[usize], rhs: &[usize]) -> AutogradError {
    TensorError::ShapeMismatch { op, lhs: lhs.to_vec(), rhs: rhs.to_vec() }.into()
}

fn invalid(op: &'static str, reason: String) -> AutogradError {
    AutogradError::InvalidArgument { op, reason }
}

/// Checks an optional per-feature affine parameter against the expected shape.
fn check_affine(op: &'static str, p: Option<&Var>, want: &[usize]) -> Result<()> {
    match p {
        Some(p) if p.shape() != want => Err(mismatch(op, want, p.shape())),
        _ => Ok(()),
    }
}

impl Var {
    /// The elementwise loss `kind` between `self` (the prediction) and
    /// `target` (same shape), with no reduction: reduce with [`Var::mean`]
    /// or [`Var::sum`]. The target may itself require a gradient.
    ///
    /// ```
    /// use nw_autograd::{PointwiseLoss, Var};
    /// use nw_tensor::Tensor;
    /// let x = Var::leaf(Tensor::from_vec(vec![1.0, 3.0], &[2]).unwrap(), true);
    /// let y = Var::constant(Tensor::from_vec(vec![0.0, 0.0], &[2]).unwrap());
    /// // Huber with delta 2: 0.5 * 1^2 = 0.5 and 2 (3 - 1) = 4
    /// let l = x.pointwise_loss(&y, PointwiseLoss::Huber { delta: 2.0 }).unwrap();
    /// assert_eq!(l.value().to_vec(), vec![0.5, 4.0]);
    /// ```
    pub fn pointwise_loss(&self, target: &Var, kind: PointwiseLoss) -> Result<Var> {
        let op = kind.name();
        if self.shape() != target.shape() {
            return Err(mismatch(op, self.shape(), target.shape()));
        }
        match kind {
            PointwiseLoss::SmoothL1 { beta } if beta.is_nan() || beta < 0.0 => {
                return Err(invalid(op, format!("beta must be >= 0, got {beta}")));
            }
            PointwiseLoss::Huber { delta } if delta.is_nan() || delta <= 0.0 => {
                return Err(invalid(op, format!("delta must be > 0, got {delta}")));
            }
            _ => {}
        }
        if kind == PointwiseLoss::BinaryCrossEntropy
            && let Some(bad) = self.value().to_vec().into_iter().find(|x| !(0.0..=1.0).contains(x))
        {
            return Err(invalid(op, format!("input values must lie in [0, 1], found {bad}")));
        }
        // smooth L1 with beta = 0 is exactly L1 (torch does the same switch)
        let kind = match kind {
            PointwiseLoss::SmoothL1 { beta: 0.0 } => PointwiseLoss::AbsoluteError,
            k => k,
        };
        let v =
            self.value().zip_with(target.value(), op, move |x, y| kind.value(x as f64, y as f64) as f32)?;
        Ok(Var::from_op(v, Op::PointwiseLoss(self.clone(), target.clone(), kind)))
    }

    /// Layer normalisation over the trailing dimensions `normalized_shape`:
    /// each slice is shifted to mean 0 and scaled to (biased) variance 1
    /// with `eps` added to the variance, then `* weight + bias` (both of
    /// shape `normalized_shape`, each optional).
    pub fn layer_norm(
        &self,
        normalized_shape: &[usize],
        weight: Option<&Var>,
        bias: Option<&Var>,
        eps: f32,
    ) -> Result<Var> {
        let shape = self.shape();
        let k = normalized_shape.len();
        if k == 0 || k > shape.len() || shape[shape.len() - k..] != *normalized_shape {
            return Err(mismatch("layer_norm", shape, normalized_shape));
        }
        check_affine("layer_norm (weight)", weight, normalized_shape)?;
        check_affine("layer_norm (bias)", bias, normalized_shape)?;
        let d: usize = normalized_shape.iter().product();
        let x = self.value().contiguous();
        let xs = x.as_slice().expect("contiguous");
        let rows = xs.len().checked_div(d).unwrap_or(0);
        let mut xhat = vec![0.0f32; xs.len()];
        let mut inv_std = vec![0.0f32; rows];
        for r in 0..rows {
            let row = &xs[r * d..(r + 1) * d];
            let (mean, var) = mean_var(row.iter().copied());
            let is = 1.0 / (var + eps as f64).sqrt();
            inv_std[r] = is as f32;
            for (o, &v) in xhat[r * d..(r + 1) * d].iter_mut().zip(row) {
                *o = ((v as f64 - mean) * is) as f32;
            }
        }
        let xhat = Tensor::from_vec(xhat, shape)?;
        let y = affine(&xhat, weight, bias, |i| i % d.max(1))?;
        Ok(Var::from_op(
            y,
            Op::LayerNorm { x: self.clone(), weight: weight.cloned(), bias: bias.cloned(), xhat, inv_std },
        ))
    }

    /// Group normalisation (torch `group_norm`): input `[N, C, ...]`, the
    /// `C` channels split into `groups` consecutive groups; each sample's
    /// group (its `C / groups` channels at every position) is shifted to mean
    /// 0 and scaled to biased variance 1 with `eps` added, then
    /// `* weight[c] + bias[c]` (both `[C]`, each optional). `groups = C` is
    /// instance normalisation, `groups = 1` a layer norm over `[C, ...]`
    /// with per-channel affine parameters.
    ///
    /// ```
    /// use nw_autograd::Var;
    /// use nw_tensor::Tensor;
    /// // one sample, 2 channels of 2 values, one group: mean 2.5, var 1.25
    /// let x = Var::constant(Tensor::from_vec(vec![1., 2., 3., 4.], &[1, 2, 2]).unwrap());
    /// let y = x.group_norm(1, None, None, 0.0).unwrap().value().to_vec();
    /// assert!((y[0] + 1.5 / 1.25f32.sqrt()).abs() < 1e-6);
    /// ```
    pub fn group_norm(
        &self,
        groups: usize,
        weight: Option<&Var>,
        bias: Option<&Var>,
        eps: f32,
    ) -> Result<Var> {
        let shape = self.shape();
        if shape.len() < 2 {
            return Err(TensorError::InvalidShape {
                op: "group_norm",
                shape: shape.to_vec(),
                reason: "needs an input [N, C, ...]".into(),
            }
            .into());
        }
        let (c, s) = (shape[1], shape[2..].iter().product::<usize>());
        if groups == 0 || !c.is_multiple_of(groups) {
            return Err(invalid(
                "group_norm",
                format!("num_groups {groups} must divide the {c} channels of input {shape:?}"),
            ));
        }
        check_affine("group_norm (weight)", weight, &[c])?;
        check_affine("group_norm (bias)", bias, &[c])?;
        // each (sample, group) is a contiguous run of d = C / G * S values
        let d = c / groups * s;
        let x = self.value().contiguous();
        let xs = x.as_slice().expect("contiguous");
        let rows = xs.len().checked_div(d).unwrap_or(0);
        let mut xhat = vec![0.0f32; xs.len()];
        let mut inv_std = vec![0.0f32; rows];
        for r in 0..rows {
            let row = &xs[r * d..(r + 1) * d];
            let (mean, var) = mean_var(row.iter().copied());
            let is = 1.0 / (var + eps as f64).sqrt();
            inv_std[r] = is as f32;
            for (o, &v) in xhat[r * d..(r + 1) * d].iter_mut().zip(row) {
                *o = ((v as f64 - mean) * is) as f32;
            }
        }
        let xhat = Tensor::from_vec(xhat, shape)?;
        let y = affine(&xhat, weight, bias, |i| (i / s.max(1)) % c)?;
        Ok(Var::from_op(
            y,
            Op::GroupNorm {
                x: self.clone(),
                weight: weight.cloned(),
                bias: bias.cloned(),
                xhat,
                inv_std,
                groups,
            },
        ))
    }

    /// Binary cross-entropy on logits with a weight on the positive term
    /// (torch `binary_cross_entropy_with_logits(pos_weight=)`), no reduction:
    ///
    /// ```text
    /// l = -(p y ln sigmoid(x) + (1 - y) ln(1 - sigmoid(x)))
    ///   = (1 - y) x + (1 + (p - 1) y) softplus(-x),   softplus(-x) = ln(1 + e^-|x|) + max(-x, 0)
    /// ```
    ///
    /// `pos_weight` (typically `[C]`, one per class along the last axis) is
    /// broadcast to the input's shape and is not differentiated; the target
    /// may be soft (any value) and may require a gradient.
    pub fn bce_with_logits_pos_weight(&self, target: &Var, pos_weight: &Tensor) -> Result<Var> {
        let op = "binary_cross_entropy_with_logits";
        if self.shape() != target.shape() {
            return Err(mismatch(op, self.shape(), target.shape()));
        }
        let pw = pos_weight
            .broadcast_to(self.shape())
            .map_err(|_| mismatch(op, self.shape(), pos_weight.shape()))?;
        let pw = pw.contiguous();
        let (x, y) = (self.value().contiguous(), target.value().contiguous());
        let (xs, ys, ps) = (
            x.as_slice().expect("contiguous"),
            y.as_slice().expect("contiguous"),
            pw.as_slice().expect("contiguous"),
        );
        let v: Vec<f32> = (0..xs.len())
            .map(|i| {
                let (x, y, p) = (xs[i] as f64, ys[i] as f64, ps[i] as f64);
                ((1.0 - y) * x + (1.0 + (p - 1.0) * y) * softplus_neg(x)) as f32
            })
            .collect();
        Ok(Var::from_op(
            Tensor::from_vec(v, self.shape())?,
            Op::BceWithLogitsPosWeight { x: self.clone(), target: target.clone(), pos_weight: pw },
        ))
    }

    /// Batch normalisation with the statistics of this batch (training
    /// mode): input `[N, C, ...]`, normalised per channel `C` over the batch
    /// and every position, with the biased variance and `eps`, then
    /// `* weight[c] + bias[c]`. Also returns the batch statistics, from which
    /// the caller updates its running estimates.
    pub fn batch_norm_train(
        &self,
        weight: Option<&Var>,
        bias: Option<&Var>,
        eps: f32,
    ) -> Result<(Var, BatchStats)> {
        let (n, c, s) = bn_dims(self.shape())?;
        check_affine("batch_norm (weight)", weight, &[c])?;
        check_affine("batch_norm (bias)", bias, &[c])?;
        if n * s < 2 {
            return Err(invalid(
                "batch_norm",
                format!("training needs more than one value per channel, input {:?}", self.shape()),
            ));
        }
        let x = self.value().contiguous();
        let xs = x.as_slice().expect("contiguous");
        let mut mean = vec![0.0f64; c];
        let mut var = vec![0.0f64; c];
        for ch in 0..c {
            let vals = (0..n).flat_map(|i| xs[(i * c + ch) * s..(i * c + ch + 1) * s].iter().copied());
            let (m, v) = mean_var(vals);
            mean[ch] = m;
            var[ch] = v;
        }
        let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps as f64).sqrt()).collect();
        let y = self.batch_norm_apply(&x, &mean, &inv_std, weight, bias, true)?;
        Ok((y, BatchStats { mean, var, count: n * s }))
    }

    /// Batch normalisation with fixed statistics (evaluation mode):
    /// `(x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c]` over input
    /// `[N, C, ...]`; `mean` and `var` are constants (the running estimates).
    pub fn batch_norm_eval(
        &self,
        mean: &Tensor,
        var: &Tensor,
        weight: Option<&Var>,
        bias: Option<&Var>,
        eps: f32,
    ) -> Result<Var> {
        let (_, c, _) = bn_dims(self.shape())?;
        for (what, t) in [("batch_norm (running_mean)", mean), ("batch_norm (running_var)", var)] {
            if t.shape() != [c] {
                return Err(mismatch(what, &[c], t.shape()));
            }
        }
        check_affine("batch_norm (weight)", weight, &[c])?;
        check_affine("batch_norm (bias)", bias, &[c])?;
        let mean: Vec<f64> = mean.to_vec().into_iter().map(f64::from).collect();
        let inv_std: Vec<f64> =
            var.to_vec().into_iter().map(|v| 1.0 / (v as f64 + eps as f64).sqrt()).collect();
        let x = self.value().contiguous();
        self.batch_norm_apply(&x, &mean, &inv_std, weight, bias, false)
    }

    fn batch_norm_apply(
        &self,
        x: &Tensor,
        mean: &[f64],
        inv_std: &[f64],
        weight: Option<&Var>,
        bias: Option<&Var>,
        batch_stats: bool,
    ) -> Result<Var> {
        let (_, c, s) = bn_dims(self.shape())?;
        let xs = x.as_slice().expect("contiguous");
        let xhat: Vec<f32> = xs
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let ch = (i / s) % c;
                ((v as f64 - mean[ch]) * inv_std[ch]) as f32
            })
            .collect();
        let xhat = Tensor::from_vec(xhat, self.shape())?;
        let y = affine(&xhat, weight, bias, |i| (i / s) % c)?;
        Ok(Var::from_op(
            y,
            Op::BatchNorm {
                x: self.clone(),
                weight: weight.cloned(),
                bias: bias.cloned(),
                xhat,
                inv_std: inv_std.iter().map(|&v| v as f32).collect(),
                batch_stats,
            },
        ))
    }
}

/// `(N, C, spatial)` of a batch-norm input `[N, C, ...]`.
fn bn_dims(shape: &[usize]) -> Result<(usize, usize, usize)> {
    if shape.len() < 2 {
        return Err(TensorError::InvalidShape {
            op: "batch_norm",
            shape: shape.to_vec(),
            reason: "needs an input [N, C, ...]".into(),
        }
        .into());
    }
    Ok((shape[0], shape[1], shape[2..].iter().product()))
}

/// Mean and biased variance, two passes in f64.
fn mean_var(vals: impl Iterator<Item = f32> + Clone) -> (f64, f64) {
    let (mut s, mut n) = (0.0f64, 0usize);
    for v in vals.clone() {
        s += v as f64;
        n += 1;
    }
    let mean = s / n as f64;
    let ss: f64 = vals.map(|v| (v as f64 - mean) * (v as f64 - mean)).sum();
    (mean, ss / n as f64)
}

/// `xhat[i] * w[idx(i)] + b[idx(i)]` with optional `w` and `b`.
fn affine(xhat: &Tensor, w: Option<&Var>, b: Option<&Var>, idx: impl Fn(usize) -> usize) -> Result<Tensor> {
    if w.is_none() && b.is_none() {
        return Ok(xhat.clone());
    }
    let wv = w.map(|w| w.value().to_vec());
    let bv = b.map(|b| b.value().to_vec());
    let xs = xhat.as_slice().expect("contiguous");
    let y: Vec<f32> = xs
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let j = idx(i);
            let v = match &wv {
                Some(w) => v * w[j],
                None => v,
            };
            match &bv {
                Some(b) => v + b[j],
                None => v,
            }
        })
        .collect();
    Ok(Tensor::from_vec(y, xhat.shape())?)
}

// ----- backward helpers (formulas in backward.rs) ------------------------------

/// Elementwise-loss gradients `(g dl/dx, g dl/dy)`.
pub(crate) fn pointwise_loss_backward(
    kind: PointwiseLoss,
    x: &Tensor,
    y: &Tensor,
    g: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (x, y, g) = (x.contiguous(), y.contiguous(), g.contiguous());
    let (xs, ys, gs) = (
        x.as_slice().expect("contiguous"),
        y.as_slice().expect("contiguous"),
        g.as_slice().expect("contiguous"),
    );
    let mut dx = vec![0.0f32; xs.len()];
    let mut dy = vec![0.0f32; xs.len()];
    for i in 0..xs.len() {
        let (a, b) = kind.derivatives(xs[i] as f64, ys[i] as f64);
        let gi = gs[i] as f64;
        dx[i] = (gi * a) as f32;
        dy[i] = (gi * b) as f32;
    }
    Ok((Tensor::from_vec(dx, x.shape())?, Tensor::from_vec(dy, x.shape())?))
}

/// Gradients `(g dl/dx, g dl/dy)` of [`Var::bce_with_logits_pos_weight`]
/// (`pos_weight` already broadcast to the input's shape):
/// `dl/dx = lw sigmoid(x) - p y`, `dl/dy = (p - 1) softplus(-x) - x`, `lw = 1 + (p - 1) y`.
pub(crate) fn bce_pos_weight_backward(
    x: &Tensor,
    y: &Tensor,
    pos_weight: &Tensor,
    g: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (x, y, g) = (x.contiguous(), y.contiguous(), g.contiguous());
    let (xs, ys, ps, gs) = (
        x.as_slice().expect("contiguous"),
        y.as_slice().expect("contiguous"),
        pos_weight.as_slice().expect("contiguous"),
        g.as_slice().expect("contiguous"),
    );
    let mut dx = vec![0.0f32; xs.len()];
    let mut dy = vec![0.0f32; xs.len()];
    for i in 0..xs.len() {
        let (xv, yv, p, gi) = (xs[i] as f64, ys[i] as f64, ps[i] as f64, gs[i] as f64);
        let lw = 1.0 + (p - 1.0) * yv;
        dx[i] = (gi * (lw * sigmoid64(xv) - p * yv)) as f32;
        dy[i] = (gi * ((p - 1.0) * softplus_neg(xv) - xv)) as f32;
    }
    Ok((Tensor::from_vec(dx, x.shape())?, Tensor::from_vec(dy, x.shape())?))
}

/// Gradients of a normalisation `y = xhat * w + b` whose groups (rows of
/// layer norm, channels of batch norm) are listed by `group(i)`; `feat(i)`
/// indexes `w`. Returns `(dx, dw, db)`; `dx` uses
/// `dx = inv_std (gw - mean(gw) - xhat mean(gw xhat))` when the statistics
/// came from the input (`through_stats`), else `dx = gw inv_std`.
pub(crate) fn norm_backward(
    xhat: &Tensor,
    inv_std: &[f32],
    w: Option<&Tensor>,
    g: &Tensor,
    group: impl Fn(usize) -> usize,
    feat: impl Fn(usize) -> usize,
    n_feat: usize,
    through_stats: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let g = g.contiguous();
    let gs = g.as_slice().expect("contiguous");
    let xs = xhat.as_slice().expect("contiguous");
    let wv = w.map(|w| w.to_vec());
    let groups = inv_std.len();
    // per-group sums of gw and gw * xhat, and counts
    let mut s1 = vec![0.0f64; groups];
    let mut s2 = vec![0.0f64; groups];
    let mut cnt = vec![0usize; groups];
    let mut dw = vec![0.0f64; n_feat];
    let mut db = vec![0.0f64; n_feat];
    let gw = |i: usize| -> f64 {
        match &wv {
            Some(w) => gs[i] as f64 * w[feat(i)] as f64,
            None => gs[i] as f64,
        }
    };
    for i in 0..gs.len() {
        let (k, f) = (group(i), feat(i));
        let gwi = gw(i);
        s1[k] += gwi;
        s2[k] += gwi * xs[i] as f64;
        cnt[k] += 1;
        dw[f] += gs[i] as f64 * xs[i] as f64;
        db[f] += gs[i] as f64;
    }
    let dx: Vec<f32> = (0..gs.len())
        .map(|i| {
            let k = group(i);
            let is = inv_std[k] as f64;
            let gwi = gw(i);
            if through_stats {
                let m = cnt[k] as f64;
                (is * (gwi - s1[k] / m - xs[i] as f64 * s2[k] / m)) as f32
            } else {
                (is * gwi) as f32
            }
        })
        .collect();
    let to = |v: Vec<f64>| Tensor::from_vec(v.into_iter().map(|x| x as f32).collect(), &[n_feat]);
    Ok((Tensor::from_vec(dx, xhat.shape())?, to(dw)?, to(db)?))
}
