//! Architecture as data: a model as an explicit list of layers, in the
//! spirit of PyTorch's `nn.Sequential`.
//!
//! A [`LayerSpec`] names one layer and its options with torch's keywords;
//! input sizes (a `Linear`'s `in_features`, a convolution's input channels,
//! a norm's feature count, a recurrent layer's input size) are inferred from
//! the shape that reaches the layer, so a list reads like the `nn.Sequential`
//! it builds. [`build_layers`] walks the list once: it builds each layer for
//! the shape arriving at it, runs it on one zero example to learn the shape it
//! passes on, and names the layer index and both shapes when they do not
//! connect, before any training starts. State-dict names are PyTorch's by
//! position (`0.weight`, `3.bias`, `5.weight_ih_l0`), so a PyTorch
//! `nn.Sequential` of the same layers loads unchanged.
//!
//! In a run's TOML, the list is `[[model.layer]]` tables:
//!
//! ```
//! use nw_train::RunConfig;
//!
//! let c = RunConfig::from_toml(r#"
//! [model]
//! layer = [
//!   { type = "reshape", shape = [1, 8, 8] },
//!   { type = "conv2d", out = 8, kernel = 3, padding = 1 },
//!   { type = "batch_norm" },
//!   { type = "relu" },
//!   { type = "max_pool2d", kernel = 2 },
//!   { type = "flatten" },
//!   { type = "linear", out = 32 },
//!   { type = "relu" },
//!   { type = "dropout", p = 0.1 },
//!   { type = "linear" },  # out defaults to the task's outputs
//! ]
//! "#).unwrap();
//! assert_eq!(c.model.layer.len(), 10);
//! let run = nw_train::build_run(&c).unwrap();
//! let names: Vec<String> = run.trainer.named_parameters().iter().map(|(n, _)| n.clone()).collect();
//! assert_eq!(names[..2], ["1.weight".to_string(), "1.bias".to_string()]);
//! ```

use std::sync::{Arc, Mutex};

use nw_autograd::Var;
use nw_nn::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv1d, Conv2d, ConvTranspose2d, Elu, Embedding,
    Flatten, Gelu, GeluApprox, GroupNorm, Gru, InstanceNorm2d, LayerNorm, LeakyRelu, Linear, LogSoftmax,
    Lstm, MaxPool2d, Module, Relu, Rnn, RnnConfig, RnnNonlinearity, Sequential, Sigmoid, Silu, Softmax,
    Softplus, Tanh, Upsample, UpsampleSize,
};
use nw_tensor::conv::{Conv1dSpec, Conv2dSpec};
use nw_tensor::{Rng, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::models::{BuiltModel, Dropout, LastStep, Reshape};

/// A size given as one number (both axes) or a pair `[h, w]`, as torch
/// accepts for kernels, strides and paddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size2 {
    /// The same size on both axes.
    One(usize),
    /// `[height, width]`.
    Two([usize; 2]),
}

impl Size2 {
    /// As `(h, w)`.
    pub fn pair(self) -> (usize, usize) {
        match self {
            Size2::One(k) => (k, k),
            Size2::Two([h, w]) => (h, w),
        }
    }
}

impl From<usize> for Size2 {
    fn from(k: usize) -> Self {
        Size2::One(k)
    }
}

/// Upsampling interpolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpsampleModeName {
    /// torch `nearest`.
    #[default]
    Nearest,
    /// torch `bilinear` with `align_corners = false`.
    Bilinear,
}

/// A plain RNN's nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RnnNonlinearityName {
    /// `tanh` (torch's default).
    #[default]
    Tanh,
    /// `relu`.
    Relu,
}

/// GELU's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeluApproximate {
    /// The exact erf form (`approximate = "none"`).
    #[default]
    None,
    /// The tanh approximation.
    Tanh,
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn one2() -> Size2 {
    Size2::One(1)
}
fn zero2() -> Size2 {
    Size2::One(0)
}
fn eps() -> f64 {
    1e-5
}
fn bn_momentum() -> Option<f64> {
    Some(0.1)
}
fn slope() -> f64 {
    0.01
}
fn alpha() -> f64 {
    1.0
}
fn beta() -> f64 {
    1.0
}
fn threshold() -> f64 {
    20.0
}
fn last_dim() -> isize {
    -1
}

/// One layer of an explicit layer list (`[[model.layer]]`, tagged by
/// `type`). Shapes below are per example (the batch axis is implicit); input
/// sizes are inferred from the shape that reaches the layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// `nn.Linear` on a flat `[features]` input.
    Linear {
        /// `in_features`, checked against the arriving shape when given.
        #[serde(rename = "in", default, skip_serializing_if = "Option::is_none")]
        in_features: Option<usize>,
        /// `out_features`; defaults to the task's number of outputs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        out: Option<usize>,
        /// Whether it has a bias (default true).
        #[serde(default = "yes")]
        bias: bool,
    },
    /// `nn.Conv1d` on `[C, L]`.
    Conv1d {
        /// Output channels.
        out: usize,
        /// Kernel size.
        kernel: usize,
        /// Stride (default 1).
        #[serde(default = "one")]
        stride: usize,
        /// Zero padding (default 0).
        #[serde(default)]
        padding: usize,
        /// Dilation (default 1).
        #[serde(default = "one")]
        dilation: usize,
        /// Groups (default 1).
        #[serde(default = "one")]
        groups: usize,
        /// Bias (default true).
        #[serde(default = "yes")]
        bias: bool,
    },
    /// `nn.Conv2d` on `[C, H, W]`.
    Conv2d {
        /// Output channels.
        out: usize,
        /// Kernel size.
        kernel: Size2,
        /// Stride (default 1).
        #[serde(default = "one2")]
        stride: Size2,
        /// Zero padding (default 0).
        #[serde(default = "zero2")]
        padding: Size2,
        /// Dilation (default 1).
        #[serde(default = "one2")]
        dilation: Size2,
        /// Groups (default 1).
        #[serde(default = "one")]
        groups: usize,
        /// Bias (default true).
        #[serde(default = "yes")]
        bias: bool,
    },
    /// `nn.ConvTranspose2d` on `[C, H, W]`.
    ConvTranspose2d {
        /// Output channels.
        out: usize,
        /// Kernel size.
        kernel: Size2,
        /// Stride (default 1).
        #[serde(default = "one2")]
        stride: Size2,
        /// Padding (default 0).
        #[serde(default = "zero2")]
        padding: Size2,
        /// Extra size on one side of the output (default 0).
        #[serde(default = "zero2")]
        output_padding: Size2,
        /// Dilation (default 1).
        #[serde(default = "one2")]
        dilation: Size2,
        /// Groups (default 1).
        #[serde(default = "one")]
        groups: usize,
        /// Bias (default true).
        #[serde(default = "yes")]
        bias: bool,
    },
    /// `nn.MaxPool2d` on `[C, H, W]`.
    MaxPool2d {
        /// Window.
        kernel: Size2,
        /// Step (default: the window).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<Size2>,
        /// Implicit -inf padding (default 0).
        #[serde(default = "zero2")]
        padding: Size2,
        /// Round the output size up (default false).
        #[serde(default)]
        ceil_mode: bool,
    },
    /// `nn.AvgPool2d` on `[C, H, W]`.
    AvgPool2d {
        /// Window.
        kernel: Size2,
        /// Step (default: the window).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<Size2>,
        /// Zero padding (default 0).
        #[serde(default = "zero2")]
        padding: Size2,
        /// Round the output size up (default false).
        #[serde(default)]
        ceil_mode: bool,
        /// Count padded positions in the divisor (default true).
        #[serde(default = "yes")]
        count_include_pad: bool,
    },
    /// `nn.AdaptiveAvgPool2d` on `[C, H, W]`.
    AdaptiveAvgPool2d {
        /// Output size.
        output: Size2,
    },
    /// `nn.Upsample` on `[C, H, W]`: exactly one of `scale_factor` and `size`.
    Upsample {
        /// Scale on both axes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scale_factor: Option<f64>,
        /// Output size.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<Size2>,
        /// Interpolation (default nearest).
        #[serde(default)]
        mode: UpsampleModeName,
    },
    /// `nn.BatchNorm1d` on `[C]` or `[C, L]`, `nn.BatchNorm2d` on `[C, H, W]`.
    BatchNorm {
        /// Added to the variance (default 1e-5).
        #[serde(default = "eps")]
        eps: f64,
        /// Running-statistics momentum (default 0.1; absent = cumulative average).
        #[serde(default = "bn_momentum")]
        momentum: Option<f64>,
        /// Learnable scale and shift (default true).
        #[serde(default = "yes")]
        affine: bool,
    },
    /// `nn.LayerNorm` over the last axis.
    LayerNorm {
        /// Added to the variance (default 1e-5).
        #[serde(default = "eps")]
        eps: f64,
        /// Learnable scale and shift (default true).
        #[serde(default = "yes")]
        affine: bool,
    },
    /// `nn.GroupNorm` on `[C, *]`.
    GroupNorm {
        /// Number of groups (divides C).
        groups: usize,
        /// Added to the variance (default 1e-5).
        #[serde(default = "eps")]
        eps: f64,
        /// Learnable scale and shift (default true).
        #[serde(default = "yes")]
        affine: bool,
    },
    /// `nn.InstanceNorm2d` on `[C, H, W]` (no running statistics).
    InstanceNorm {
        /// Added to the variance (default 1e-5).
        #[serde(default = "eps")]
        eps: f64,
        /// Learnable scale and shift (default false, as torch).
        #[serde(default)]
        affine: bool,
    },
    /// Inverted dropout with probability `p` in [0, 1).
    Dropout {
        /// Drop probability.
        p: f64,
    },
    /// `nn.Embedding` on `[T]` integer indices (stored as numbers) -> `[T, dim]`.
    Embedding {
        /// Rows (`num_embeddings`).
        num: usize,
        /// Columns (`embedding_dim`).
        dim: usize,
        /// The row that reads as zeros at start and gets no gradient.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        padding_idx: Option<usize>,
        /// Row-sparse gradient (torch's `sparse=True`, default false): the
        /// gradient also lists the rows each batch looked up, which
        /// `optim.name = "sparse_adam"` needs and updates alone; other
        /// optimizers read the same dense gradient as without it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sparse: bool,
    },
    /// `nn.RNN` (batch first) on `[T, F]` -> `[T, hidden x directions]`
    /// (follow it with `last_step` to classify from the last step).
    Rnn {
        /// Hidden size.
        hidden: usize,
        /// Stacked layers (default 1).
        #[serde(default = "one")]
        layers: usize,
        /// Both directions (default false).
        #[serde(default)]
        bidirectional: bool,
        /// tanh or relu (default tanh).
        #[serde(default)]
        nonlinearity: RnnNonlinearityName,
    },
    /// `nn.LSTM` (batch first) on `[T, F]` -> `[T, hidden x directions]`.
    Lstm {
        /// Hidden size.
        hidden: usize,
        /// Stacked layers (default 1).
        #[serde(default = "one")]
        layers: usize,
        /// Both directions (default false).
        #[serde(default)]
        bidirectional: bool,
    },
    /// `nn.GRU` (batch first) on `[T, F]` -> `[T, hidden x directions]`.
    Gru {
        /// Hidden size.
        hidden: usize,
        /// Stacked layers (default 1).
        #[serde(default = "one")]
        layers: usize,
        /// Both directions (default false).
        #[serde(default)]
        bidirectional: bool,
    },
    /// The last time step of a sequence, `[T, H] -> [H]` (torch: `output[:, -1]`).
    LastStep,
    /// `nn.Flatten`: every axis of an example into one.
    Flatten,
    /// Views each example as `shape` (same number of elements).
    Reshape {
        /// The per-example shape.
        shape: Vec<usize>,
    },
    /// `nn.ReLU`.
    Relu,
    /// `nn.Tanh`.
    Tanh,
    /// `nn.Sigmoid`.
    Sigmoid,
    /// `nn.GELU`.
    Gelu {
        /// Exact or tanh form (default exact).
        #[serde(default)]
        approximate: GeluApproximate,
    },
    /// `nn.SiLU`.
    Silu,
    /// `nn.LeakyReLU`.
    LeakyRelu {
        /// Slope for negative inputs (default 0.01).
        #[serde(default = "slope")]
        negative_slope: f64,
    },
    /// `nn.ELU`.
    Elu {
        /// Saturation value (default 1).
        #[serde(default = "alpha")]
        alpha: f64,
    },
    /// `nn.Softplus`.
    Softplus {
        /// Sharpness (default 1).
        #[serde(default = "beta")]
        beta: f64,
        /// Linear above this (default 20).
        #[serde(default = "threshold")]
        threshold: f64,
    },
    /// `nn.Softmax` over an example axis (default the last).
    Softmax {
        /// The axis of the example (negative counts from the end).
        #[serde(default = "last_dim")]
        dim: isize,
    },
    /// `nn.LogSoftmax` over an example axis (default the last).
    LogSoftmax {
        /// The axis of the example (negative counts from the end).
        #[serde(default = "last_dim")]
        dim: isize,
    },
}

/// Every layer `type` name, in documentation order.
pub const LAYER_TYPES: &[&str] = &[
    "linear",
    "conv1d",
    "conv2d",
    "conv_transpose2d",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "upsample",
    "batch_norm",
    "layer_norm",
    "group_norm",
    "instance_norm",
    "dropout",
    "embedding",
    "rnn",
    "lstm",
    "gru",
    "last_step",
    "flatten",
    "reshape",
    "relu",
    "tanh",
    "sigmoid",
    "gelu",
    "silu",
    "leaky_relu",
    "elu",
    "softplus",
    "softmax",
    "log_softmax",
];

impl LayerSpec {
    /// The `type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            LayerSpec::Linear { .. } => "linear",
            LayerSpec::Conv1d { .. } => "conv1d",
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::ConvTranspose2d { .. } => "conv_transpose2d",
            LayerSpec::MaxPool2d { .. } => "max_pool2d",
            LayerSpec::AvgPool2d { .. } => "avg_pool2d",
            LayerSpec::AdaptiveAvgPool2d { .. } => "adaptive_avg_pool2d",
            LayerSpec::Upsample { .. } => "upsample",
            LayerSpec::BatchNorm { .. } => "batch_norm",
            LayerSpec::LayerNorm { .. } => "layer_norm",
            LayerSpec::GroupNorm { .. } => "group_norm",
            LayerSpec::InstanceNorm { .. } => "instance_norm",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::Embedding { .. } => "embedding",
            LayerSpec::Rnn { .. } => "rnn",
            LayerSpec::Lstm { .. } => "lstm",
            LayerSpec::Gru { .. } => "gru",
            LayerSpec::LastStep => "last_step",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Reshape { .. } => "reshape",
            LayerSpec::Relu => "relu",
            LayerSpec::Tanh => "tanh",
            LayerSpec::Sigmoid => "sigmoid",
            LayerSpec::Gelu { .. } => "gelu",
            LayerSpec::Silu => "silu",
            LayerSpec::LeakyRelu { .. } => "leaky_relu",
            LayerSpec::Elu { .. } => "elu",
            LayerSpec::Softplus { .. } => "softplus",
            LayerSpec::Softmax { .. } => "softmax",
            LayerSpec::LogSoftmax { .. } => "log_softmax",
        }
    }
}

/// The error for layer `i` receiving `shape`.
fn layer_err(i: usize, l: &LayerSpec, shape: &[usize], why: impl std::fmt::Display) -> TrainError {
    TrainError::Config(format!(
        "model.layer[{i}] ({}) receives per-example shape {shape:?}: {why}",
        l.type_name()
    ))
}

fn size_ok(i: usize, l: &LayerSpec, shape: &[usize], key: &str, v: usize) -> Result<(), TrainError> {
    if (1..=crate::config::MAX_WIDTH).contains(&v) {
        Ok(())
    } else {
        Err(layer_err(i, l, shape, format!("{key} = {v} must be in 1..={}", crate::config::MAX_WIDTH)))
    }
}

fn f32_in(
    i: usize,
    l: &LayerSpec,
    shape: &[usize],
    key: &str,
    v: f64,
    ok: bool,
    allowed: &str,
) -> Result<f32, TrainError> {
    if ok && v.is_finite() {
        Ok(v as f32)
    } else {
        Err(layer_err(i, l, shape, format!("{key} = {v} must be {allowed}")))
    }
}

/// Needs the arriving example to have `rank` axes (`what` describes them).
fn need_rank(i: usize, l: &LayerSpec, shape: &[usize], rank: &[usize], what: &str) -> Result<(), TrainError> {
    if rank.contains(&shape.len()) {
        Ok(())
    } else {
        let hint = if shape.len() == 1 && what.contains("[C, H, W]") {
            let n = shape[0];
            let s = (n as f64).sqrt().round() as usize;
            if s * s == n {
                format!(" (add {{ type = \"reshape\", shape = [1, {s}, {s}] }} before it)")
            } else {
                String::new()
            }
        } else if what == "[features]" {
            " (add { type = \"flatten\" } before it)".to_string()
        } else {
            String::new()
        };
        Err(layer_err(i, l, shape, format!("expects {what}{hint}")))
    }
}

/// The module for layer `i` of `spec` on examples of `shape`.
fn build_one(
    i: usize,
    l: &LayerSpec,
    shape: &[usize],
    outputs: usize,
    rng: &mut Rng,
    rngs: &mut Vec<Arc<Mutex<Rng>>>,
) -> Result<Box<dyn Module>, TrainError> {
    let nn = |e: nw_nn::NnError| layer_err(i, l, shape, e);
    let groups_ok = |g: usize| size_ok(i, l, shape, "groups", g);
    Ok(match l {
        LayerSpec::Linear { in_features, out, bias } => {
            need_rank(i, l, shape, &[1], "[features]")?;
            if let Some(n) = in_features
                && *n != shape[0]
            {
                return Err(layer_err(
                    i,
                    l,
                    shape,
                    format!("in = {n} does not match the {} arriving features", shape[0]),
                ));
            }
            let out = out.unwrap_or(outputs);
            size_ok(i, l, shape, "out", out)?;
            Box::new(Linear::try_with_bias(shape[0], out, *bias, rng).map_err(nn)?)
        }
        LayerSpec::Conv1d { out, kernel, stride, padding, dilation, groups, bias } => {
            need_rank(i, l, shape, &[2], "[C, L]")?;
            size_ok(i, l, shape, "out", *out)?;
            size_ok(i, l, shape, "kernel", *kernel)?;
            size_ok(i, l, shape, "stride", *stride)?;
            size_ok(i, l, shape, "dilation", *dilation)?;
            groups_ok(*groups)?;
            let spec = Conv1dSpec {
                stride: *stride,
                padding: *padding,
                dilation: *dilation,
                groups: *groups,
                ..Default::default()
            };
            Box::new(Conv1d::new(shape[0], *out, *kernel, spec, *bias, rng).map_err(nn)?)
        }
        LayerSpec::Conv2d { out, kernel, stride, padding, dilation, groups, bias } => {
            need_rank(i, l, shape, &[3], "[C, H, W]")?;
            size_ok(i, l, shape, "out", *out)?;
            groups_ok(*groups)?;
            let spec = Conv2dSpec {
                stride: stride.pair(),
                padding: padding.pair(),
                dilation: dilation.pair(),
                groups: *groups,
                ..Default::default()
            };
            Box::new(Conv2d::new(shape[0], *out, kernel.pair(), spec, *bias, rng).map_err(nn)?)
        }
        LayerSpec::ConvTranspose2d {
            out,
            kernel,
            stride,
            padding,
            output_padding,
            dilation,
            groups,
            bias,
        } => {
            need_rank(i, l, shape, &[3], "[C, H, W]")?;
            size_ok(i, l, shape, "out", *out)?;
            groups_ok(*groups)?;
            let spec = nw_tensor::conv::ConvTranspose2dSpec {
                stride: stride.pair(),
                padding: padding.pair(),
                output_padding: output_padding.pair(),
                dilation: dilation.pair(),
                groups: *groups,
                ..Default::default()
            };
            Box::new(ConvTranspose2d::new(shape[0], *out, kernel.pair(), spec, *bias, rng).map_err(nn)?)
        }
        LayerSpec::MaxPool2d { kernel, stride, padding, ceil_mode } => {
            need_rank(i, l, shape, &[3], "[C, H, W]")?;
            let k = kernel.pair();
            Box::new(MaxPool2d {
                kernel: k,
                stride: stride.map_or(k, Size2::pair),
                padding: padding.pair(),
                ceil_mode: *ceil_mode,
            })
        }
        LayerSpec::AvgPool2d { kernel, stride, padding, ceil_mode, count_include_pad } => {
            need_rank(i, l, shape, &[3], "[C, H, W]")?;
            let k = kernel.pair();
            Box::new(AvgPool2d {
                kernel: k,
                stride: stride.map_or(k, Size2::pair),
                padding: padding.pair(),
                ceil_mode: *ceil_mode,
                count_include_pad: *count_include_pad,
            })
        }
        LayerSpec::AdaptiveAvgPool2d { output } => {
            need_rank(i, l, shape, &[3], "[C, H, W]")?;
            Box::new(AdaptiveAvgPool2d { output_size: output.pair() })
        }
        LayerSpec::Upsample { scale_factor, size, mode } => {
            need_rank(i, l, shape, &[3], "[C, H, W]")?;
            let size = match (scale_factor, size) {
                (Some(f), None) if f.is_finite() && *f > 0.0 && *f <= 1024.0 => {
                    UpsampleSize::ScaleFactor(*f, *f)
                }
                (Some(f), None) => {
                    return Err(layer_err(i, l, shape, format!("scale_factor = {f} must be in (0, 1024]")));
                }
                (None, Some(s)) => {
                    let (h, w) = s.pair();
                    size_ok(i, l, shape, "size", h)?;
                    size_ok(i, l, shape, "size", w)?;
                    UpsampleSize::Size(h, w)
                }
                _ => return Err(layer_err(i, l, shape, "give exactly one of scale_factor and size")),
            };
            let mode = match mode {
                UpsampleModeName::Nearest => nw_tensor::upsample::UpsampleMode::Nearest,
                UpsampleModeName::Bilinear => {
                    nw_tensor::upsample::UpsampleMode::Bilinear { align_corners: false }
                }
            };
            Box::new(Upsample { size, mode })
        }
        LayerSpec::BatchNorm { eps, momentum, affine } => {
            need_rank(i, l, shape, &[1, 2, 3], "[C], [C, L] or [C, H, W]")?;
            let e = f32_in(i, l, shape, "eps", *eps, *eps > 0.0, "> 0")?;
            let m = match momentum {
                Some(m) => Some(f32_in(i, l, shape, "momentum", *m, (0.0..=1.0).contains(m), "in [0, 1]")?),
                None => None,
            };
            if shape.len() == 3 {
                Box::new(BatchNorm2d::try_with_options(shape[0], e, m, *affine, true).map_err(nn)?)
            } else {
                Box::new(BatchNorm1d::try_with_options(shape[0], e, m, *affine, true).map_err(nn)?)
            }
        }
        LayerSpec::LayerNorm { eps, affine } => {
            need_rank(i, l, shape, &[1, 2, 3], "an example with 1 to 3 axes")?;
            let e = f32_in(i, l, shape, "eps", *eps, *eps > 0.0, "> 0")?;
            let last = *shape.last().expect("rank checked");
            size_ok(i, l, shape, "features", last)?;
            Box::new(LayerNorm::with_options(&[last], e, *affine))
        }
        LayerSpec::GroupNorm { groups, eps, affine } => {
            need_rank(i, l, shape, &[1, 2, 3], "[C], [C, L] or [C, H, W]")?;
            groups_ok(*groups)?;
            let e = f32_in(i, l, shape, "eps", *eps, *eps > 0.0, "> 0")?;
            size_ok(i, l, shape, "channels", shape[0])?;
            Box::new(GroupNorm::with_options(*groups, shape[0], e, *affine).map_err(nn)?)
        }
        LayerSpec::InstanceNorm { eps, affine } => {
            need_rank(i, l, shape, &[3], "[C, H, W]")?;
            let e = f32_in(i, l, shape, "eps", *eps, *eps > 0.0, "> 0")?;
            size_ok(i, l, shape, "channels", shape[0])?;
            Box::new(InstanceNorm2d::with_options(shape[0], e, *affine))
        }
        LayerSpec::Dropout { p } => {
            if !(0.0..1.0).contains(p) {
                return Err(layer_err(i, l, shape, format!("p = {p} must be in [0, 1)")));
            }
            let r = Arc::new(Mutex::new(rng.fork()));
            rngs.push(r.clone());
            Box::new(Dropout::new(*p, r))
        }
        LayerSpec::Embedding { num, dim, padding_idx, sparse } => {
            need_rank(i, l, shape, &[1], "[T] indices")?;
            size_ok(i, l, shape, "num", *num)?;
            size_ok(i, l, shape, "dim", *dim)?;
            let e = match padding_idx {
                Some(p) => Embedding::with_padding_idx(*num, *dim, *p, rng).map_err(nn)?,
                None => Embedding::try_new(*num, *dim, rng).map_err(nn)?,
            };
            Box::new(e.with_sparse(*sparse))
        }
        LayerSpec::Rnn { hidden, layers, bidirectional, .. }
        | LayerSpec::Lstm { hidden, layers, bidirectional, .. }
        | LayerSpec::Gru { hidden, layers, bidirectional, .. } => {
            need_rank(i, l, shape, &[2], "[T, F] (time steps, features)")?;
            size_ok(i, l, shape, "hidden", *hidden)?;
            if !(1..=64).contains(layers) {
                return Err(layer_err(i, l, shape, format!("layers = {layers} must be in 1..=64")));
            }
            let cfg = RnnConfig::new(shape[1], *hidden)
                .num_layers(*layers)
                .batch_first(true)
                .bidirectional(*bidirectional);
            match l {
                LayerSpec::Lstm { .. } => Box::new(Lstm::new(cfg, rng).map_err(nn)?),
                LayerSpec::Gru { .. } => Box::new(Gru::new(cfg, rng).map_err(nn)?),
                LayerSpec::Rnn { nonlinearity, .. } => {
                    let nl = match nonlinearity {
                        RnnNonlinearityName::Tanh => RnnNonlinearity::Tanh,
                        RnnNonlinearityName::Relu => RnnNonlinearity::Relu,
                    };
                    Box::new(Rnn::new(cfg, nl, rng).map_err(nn)?)
                }
                _ => unreachable!("matched above"),
            }
        }
        LayerSpec::LastStep => {
            need_rank(i, l, shape, &[2], "[T, H] (a sequence)")?;
            Box::new(LastStep)
        }
        LayerSpec::Flatten => Box::new(Flatten::default()),
        LayerSpec::Reshape { shape: to } => {
            let want: Option<usize> = to.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            let have: usize = shape.iter().product();
            if to.is_empty() || want != Some(have) {
                return Err(layer_err(i, l, shape, format!("cannot view {have} elements as {to:?}")));
            }
            Box::new(Reshape { shape: to.clone() })
        }
        LayerSpec::Relu => Box::new(Relu),
        LayerSpec::Tanh => Box::new(Tanh),
        LayerSpec::Sigmoid => Box::new(Sigmoid),
        LayerSpec::Gelu { approximate } => Box::new(Gelu {
            approximate: match approximate {
                GeluApproximate::None => GeluApprox::None,
                GeluApproximate::Tanh => GeluApprox::Tanh,
            },
        }),
        LayerSpec::Silu => Box::new(Silu),
        LayerSpec::LeakyRelu { negative_slope } => Box::new(LeakyRelu {
            negative_slope: f32_in(i, l, shape, "negative_slope", *negative_slope, true, "finite")?,
        }),
        LayerSpec::Elu { alpha } => {
            Box::new(Elu { alpha: f32_in(i, l, shape, "alpha", *alpha, true, "finite")? })
        }
        LayerSpec::Softplus { beta, threshold } => Box::new(Softplus {
            beta: f32_in(i, l, shape, "beta", *beta, *beta != 0.0, "finite and non-zero")?,
            threshold: f32_in(i, l, shape, "threshold", *threshold, true, "finite")?,
        }),
        LayerSpec::Softmax { dim } | LayerSpec::LogSoftmax { dim } => {
            let r = shape.len() as isize;
            if !(-r..r).contains(dim) {
                return Err(layer_err(i, l, shape, format!("dim = {dim} is not an axis of the example")));
            }
            // the example's axis d is the batch tensor's axis d + 1
            let d = if *dim < 0 { *dim } else { dim + 1 };
            match l {
                LayerSpec::Softmax { .. } => Box::new(Softmax { dim: d }),
                _ => Box::new(LogSoftmax { dim: d }),
            }
        }
    })
}

/// The per-example shape `module` passes on for examples of `shape`: one zero
/// example run through it in evaluation mode (no statistics updated, no
/// random draws).
fn probe(i: usize, l: &LayerSpec, m: &dyn Module, shape: &[usize]) -> Result<Vec<usize>, TrainError> {
    let mut s = vec![1];
    s.extend_from_slice(shape);
    let x = Tensor::try_zeros(&s).map_err(|e| layer_err(i, l, shape, e))?;
    m.set_training(false);
    let y = m.forward(&Var::constant(x)).map_err(|e| layer_err(i, l, shape, e));
    m.set_training(true);
    let y = y?;
    Ok(y.shape()[1..].to_vec())
}

/// Builds an explicit layer list for examples of shape `input` and a task of
/// `outputs` outputs, drawing initial weights (PyTorch's defaults) from `rng`
/// in layer order. Errors name the layer index and the shapes that do not
/// connect; the list must end in `[outputs]` per example.
pub fn build_layers(
    layers: &[LayerSpec],
    input: &[usize],
    outputs: usize,
    rng: &mut Rng,
) -> Result<BuiltModel, TrainError> {
    build_layers_limited(layers, input, outputs, rng, None)
}

/// The elements (parameters and buffers) layer `l` holds on examples of
/// `shape`, counted from the spec without building it (PyTorch's shapes);
/// `None` when the count overflows `usize`.
pub fn layer_elements(l: &LayerSpec, shape: &[usize], outputs: usize) -> Option<usize> {
    let c = shape.first().copied().unwrap_or(0);
    let mul = |a: usize, b: usize| a.checked_mul(b);
    Some(match l {
        LayerSpec::Linear { out, .. } => {
            let out = out.unwrap_or(outputs);
            mul(c, out)?.checked_add(out)?
        }
        LayerSpec::Conv1d { out, kernel, groups, .. } => {
            mul(mul(*out, c / (*groups).max(1))?, *kernel)?.checked_add(*out)?
        }
        LayerSpec::Conv2d { out, kernel, groups, .. } => {
            let (kh, kw) = kernel.pair();
            mul(mul(mul(*out, c / (*groups).max(1))?, kh)?, kw)?.checked_add(*out)?
        }
        LayerSpec::ConvTranspose2d { out, kernel, groups, .. } => {
            let (kh, kw) = kernel.pair();
            mul(mul(mul(c, *out / (*groups).max(1))?, kh)?, kw)?.checked_add(*out)?
        }
        // weight, bias, running mean and variance
        LayerSpec::BatchNorm { .. } | LayerSpec::GroupNorm { .. } | LayerSpec::InstanceNorm { .. } => {
            mul(c, 4)?
        }
        LayerSpec::LayerNorm { .. } => mul(shape.last().copied().unwrap_or(0), 2)?,
        LayerSpec::Embedding { num, dim, .. } => mul(*num, *dim)?,
        LayerSpec::Rnn { hidden, layers, bidirectional, .. }
        | LayerSpec::Lstm { hidden, layers, bidirectional, .. }
        | LayerSpec::Gru { hidden, layers, bidirectional, .. } => {
            let gates = match l {
                LayerSpec::Lstm { .. } => 4,
                LayerSpec::Gru { .. } => 3,
                _ => 1,
            };
            let dirs = if *bidirectional { 2 } else { 1 };
            let features = shape.get(1).copied().unwrap_or(0);
            let mut total = 0usize;
            for k in 0..*layers {
                let input = if k == 0 { features } else { mul(*hidden, dirs)? };
                // W_ih, W_hh, b_ih, b_hh per direction
                let per = mul(mul(gates, *hidden)?, input.checked_add(*hidden)?.checked_add(2)?)?;
                total = total.checked_add(mul(per, dirs)?)?;
            }
            total
        }
        _ => 0,
    })
}

/// The biases of `layers` that a batch norm right after their layer
/// cancels, as parameter names (`"{index}.bias"`), each with one warning:
/// in training, batch norm subtracts each channel's batch mean, so a
/// per-channel bias added just before it has no effect and a zero gradient.
fn cancelled_biases(layers: &[LayerSpec]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, pair) in layers.windows(2).enumerate() {
        let biased = matches!(
            pair[0],
            LayerSpec::Linear { bias: true, .. }
                | LayerSpec::Conv1d { bias: true, .. }
                | LayerSpec::Conv2d { bias: true, .. }
                | LayerSpec::ConvTranspose2d { bias: true, .. }
        );
        if biased && matches!(pair[1], LayerSpec::BatchNorm { .. }) {
            tracing::warn!(
                "model.layer[{i}] ({}): its bias is cancelled by the batch norm after it (model.layer[{}]) and gets no gradient; set bias = false",
                pair[0].type_name(),
                i + 1
            );
            out.push(format!("{i}.bias"));
        }
    }
    out
}

/// The per-example output shape of `l` on examples of `shape`, worked out
/// from the spec alone for the layers whose rule is plain arithmetic
/// (linear on a vector, flatten, reshape, and the layers that keep their
/// input's shape); `None` for the others, whose shape comes from building
/// them. Used to count a model's elements before anything is allocated.
pub fn planned_output_shape(l: &LayerSpec, shape: &[usize], outputs: usize) -> Option<Vec<usize>> {
    match l {
        LayerSpec::Linear { out, .. } if shape.len() == 1 => Some(vec![out.unwrap_or(outputs)]),
        LayerSpec::Flatten => Some(vec![shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?]),
        LayerSpec::Reshape { shape: to } => Some(to.clone()),
        LayerSpec::Dropout { .. }
        | LayerSpec::BatchNorm { .. }
        | LayerSpec::LayerNorm { .. }
        | LayerSpec::GroupNorm { .. }
        | LayerSpec::InstanceNorm { .. }
        | LayerSpec::Relu
        | LayerSpec::Tanh
        | LayerSpec::Sigmoid
        | LayerSpec::Gelu { .. }
        | LayerSpec::Silu
        | LayerSpec::LeakyRelu { .. }
        | LayerSpec::Elu { .. }
        | LayerSpec::Softplus { .. }
        | LayerSpec::Softmax { .. }
        | LayerSpec::LogSoftmax { .. } => Some(shape.to_vec()),
        _ => None,
    }
}

/// The parameters and buffers of `layers` counted before anything is
/// built, as far as [`planned_output_shape`] reaches: for each layer whose
/// input shape is known, the running total ([`layer_elements`]) after it,
/// with the layer's index and input shape. The first layer whose output
/// shape is not plain arithmetic is the last one counted; `usize::MAX`
/// stands for an overflow.
pub fn planned_elements(
    layers: &[LayerSpec],
    input: &[usize],
    outputs: usize,
) -> Vec<(usize, usize, Vec<usize>)> {
    let mut out = Vec::new();
    let mut shape = input.to_vec();
    let mut total = 0usize;
    for (i, l) in layers.iter().enumerate() {
        total = layer_elements(l, &shape, outputs).and_then(|n| total.checked_add(n)).unwrap_or(usize::MAX);
        out.push((i, total, shape.clone()));
        match planned_output_shape(l, &shape, outputs) {
            Some(next) => shape = next,
            None => break,
        }
    }
    out
}

/// An upper bound of the elements of one example's output of `l` on
/// examples of `shape`, and for convolutions of their column buffer too
/// (im2col: input channels x kernel area per output position; the
/// transposed convolution's col2im: output channels x kernel area per input
/// position), for the layers whose output or working memory can grow past
/// their input: convolutions with padding, transposed convolutions, pooling
/// with padding, upsampling; `None` when it overflows. Other layers: the
/// input's.
pub fn output_elements_bound(l: &LayerSpec, shape: &[usize]) -> Option<usize> {
    let input = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    let dim = |i: usize| shape.get(i).copied().unwrap_or(0);
    let padded = |d: usize, p: usize| p.checked_mul(2)?.checked_add(d);
    let plane = |oh: usize, ow: usize, c: usize| oh.checked_mul(ow)?.checked_mul(c);
    match l {
        LayerSpec::Conv1d { out, kernel, padding, .. } => {
            let positions = padded(dim(1), *padding)?;
            let columns = positions.checked_mul(dim(0))?.checked_mul(*kernel)?;
            Some(positions.checked_mul(*out)?.max(columns))
        }
        LayerSpec::Conv2d { out, kernel, padding, .. } => {
            let ((ph, pw), (kh, kw)) = (padding.pair(), kernel.pair());
            let positions = plane(padded(dim(1), ph)?, padded(dim(2), pw)?, 1)?;
            let columns = positions.checked_mul(dim(0))?.checked_mul(kh)?.checked_mul(kw)?;
            Some(positions.checked_mul(*out)?.max(columns))
        }
        LayerSpec::ConvTranspose2d { out, kernel, stride, output_padding, dilation, .. } => {
            let len = |d: usize, k: usize, s: usize, op: usize, dl: usize| {
                d.checked_mul(s)?.checked_add(dl.checked_mul(k)?)?.checked_add(op)
            };
            let ((kh, kw), (sh, sw), (oh, ow), (dh, dw)) =
                (kernel.pair(), stride.pair(), output_padding.pair(), dilation.pair());
            let output = plane(len(dim(1), kh, sh, oh, dh)?, len(dim(2), kw, sw, ow, dw)?, *out)?;
            let columns = plane(dim(1), dim(2), *out)?.checked_mul(kh)?.checked_mul(kw)?;
            Some(output.max(columns))
        }
        LayerSpec::MaxPool2d { padding, .. } | LayerSpec::AvgPool2d { padding, .. } => {
            let (ph, pw) = padding.pair();
            plane(padded(dim(1), ph)?.checked_add(1)?, padded(dim(2), pw)?.checked_add(1)?, dim(0))
        }
        LayerSpec::AdaptiveAvgPool2d { output } => {
            let (oh, ow) = output.pair();
            plane(oh, ow, dim(0))
        }
        LayerSpec::Upsample { scale_factor, size, .. } => match (scale_factor, size) {
            (_, Some(sz)) => {
                let (h, w) = (*sz).pair();
                plane(h, w, dim(0))
            }
            (Some(f), None) if f.is_finite() && *f >= 0.0 => {
                let f = f.ceil().min(1025.0) as usize;
                plane(dim(1).checked_mul(f)?, dim(2).checked_mul(f)?, dim(0))
            }
            _ => Some(input),
        },
        _ => Some(input),
    }
}

/// [`build_layers`], refusing (before building the layer that would pass
/// it) a model of more than `max_elements` parameters and buffers, counted
/// by [`layer_elements`]: a typed [`TrainError::Config`] naming the layer,
/// with nothing of that layer allocated. `None`: no limit but the
/// per-tensor one of `nw_tensor::MAX_ELEMENTS`.
pub fn build_layers_limited(
    layers: &[LayerSpec],
    input: &[usize],
    outputs: usize,
    rng: &mut Rng,
    max_elements: Option<usize>,
) -> Result<BuiltModel, TrainError> {
    if layers.is_empty() {
        return Err(TrainError::Config("model.layer is empty: a layer list needs at least one layer".into()));
    }
    let mut model = Sequential::new();
    let mut rngs = Vec::new();
    let mut shape = input.to_vec();
    let mut total = 0usize;
    let mut min_rows = (1usize, None);
    if let Some(max) = max_elements {
        // Refuse before building anything when the layers whose shapes are
        // plain arithmetic already pass the limit (`--hidden 16777216,16777216`
        // would otherwise build its 1G-parameter first layer before the
        // second is refused).
        if let Some((i, _, at)) = planned_elements(layers, input, outputs).into_iter().find(|p| p.1 > max) {
            return Err(layer_err(
                i,
                &layers[i],
                &at,
                format!(
                    "the model would hold more than {max} parameters and buffers (the build's limit; `nw train` sets it from the memory available)"
                ),
            ));
        }
    }
    for (i, l) in layers.iter().enumerate() {
        if let LayerSpec::BatchNorm { .. } = l {
            // values per channel per row: 1 for [C], L for [C, L], H W for [C, H, W]
            let per_row: usize = shape.iter().skip(1).product();
            let need = if per_row >= 2 { 1 } else { 2 };
            if need > min_rows.0 {
                min_rows = (need, Some(i));
            }
        }
        if let Some(max) = max_elements {
            total =
                layer_elements(l, &shape, outputs).and_then(|n| total.checked_add(n)).unwrap_or(usize::MAX);
            if total > max {
                return Err(layer_err(
                    i,
                    l,
                    &shape,
                    format!(
                        "the model would hold more than {max} parameters and buffers (the build's limit; `nw train` sets it from the memory available)"
                    ),
                ));
            }
            // the shape probe below runs one example through the layer
            if output_elements_bound(l, &shape).is_none_or(|n| n > max) {
                return Err(layer_err(
                    i,
                    l,
                    &shape,
                    format!(
                        "one example's output would pass {max} elements (the build's limit; `nw train` sets it from the memory available)"
                    ),
                ));
            }
        }
        let m = build_one(i, l, &shape, outputs, rng, &mut rngs)?;
        shape = probe(i, l, m.as_ref(), &shape)?;
        model.push(m);
    }
    if shape != [outputs] {
        return Err(TrainError::Config(format!(
            "model.layer[{}] ({}) gives per-example shape {shape:?}, but the task needs [{outputs}] (the data set's outputs)",
            layers.len() - 1,
            layers[layers.len() - 1].type_name()
        )));
    }
    let cancelled_biases = cancelled_biases(layers);
    Ok(BuiltModel { model, rngs, min_rows, cancelled_biases })
}

/// A list as TOML `[[model.layer]]`-style inline tables, one per line (what
/// `nw inspect` prints).
pub fn layers_toml(layers: &[LayerSpec]) -> String {
    let mut out = String::from("layer = [\n");
    for l in layers {
        out.push_str("  { type = \"");
        out.push_str(l.type_name());
        out.push('"');
        if let Ok(toml::Value::Table(t)) = toml::Value::try_from(l) {
            for (k, v) in t.iter().filter(|(k, _)| *k != "type") {
                out.push_str(&format!(", {k} = {v}"));
            }
        }
        out.push_str(" },\n");
    }
    out.push_str("]\n");
    out
}
