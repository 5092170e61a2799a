//! The op list: every differentiable operation, with the inputs and saved
//! values its backward needs. Backward of all of them is in `backward.rs`.

use nw_tensor::Tensor;
use nw_tensor::conv::{Conv2dSpec, ConvTranspose2dSpec};
use nw_tensor::upsample::Upsample2dSpec;

use crate::ops_nn::PointwiseLoss;
use crate::ops_rnn::{PooledBuf, RecurrentCell};
use crate::var::Var;

/// One recorded operation. Each variant holds its input [`Var`]s (which keep
/// the inputs' values alive until backward consumes the op) and whatever
/// else its derivative needs.
pub(crate) enum Op {
    // ----- elementwise binary (broadcasting) -----
    Add(Var, Var),
    Sub(Var, Var),
    Mul(Var, Var),
    Div(Var, Var),
    Maximum(Var, Var),
    // ----- elementwise unary -----
    Neg(Var),
    AddScalar(Var),
    MulScalar(Var, f32),
    PowScalar(Var, f32),
    Exp(Var),
    Ln(Var),
    Sqrt(Var),
    Abs(Var),
    Clamp(Var, f32, f32),
    Tanh(Var),
    Sigmoid(Var),
    Relu(Var),
    LeakyRelu(Var, f32),
    Elu(Var, f32),
    GeluErf(Var),
    GeluTanh(Var),
    Softplus(Var, f32, f32),
    Silu(Var),
    // ----- linear algebra -----
    MatMul(Var, Var),
    /// `y = x W^T + b` with `x: [n, in]`, `W: [out, in]`, `b: [out]`.
    Linear(Var, Var, Option<Var>),
    // ----- reductions -----
    SumAll(Var),
    MeanAll(Var),
    SumAxis(Var, usize, bool),
    MeanAxis(Var, usize, bool),
    // ----- layout -----
    Reshape(Var),
    Permute(Var, Vec<usize>),
    Narrow(Var, usize, usize),
    Concat(Vec<Var>, usize),
    IndexSelect(Var, usize, Vec<usize>),
    /// Rows `indices` of a `[num, dim]` table; the row `padding_idx` gets no
    /// gradient. `sparse`: the table's gradient also reports the touched rows.
    EmbeddingRows {
        weight: Var,
        indices: Vec<usize>,
        padding_idx: Option<usize>,
        sparse: bool,
    },
    Gather(Var, usize, Vec<usize>),
    // ----- normalisers -----
    Softmax(Var, usize),
    LogSoftmax(Var, usize),
    // ----- fused losses -----
    /// Per-row cross-entropy over class indices (`[n, c]` logits -> `[n]`),
    /// with the saved softmax and the label smoothing.
    CrossEntropy {
        logits: Var,
        probs: Tensor,
        targets: Vec<usize>,
        smoothing: f32,
    },
    /// Elementwise loss between a prediction and a target (no reduction).
    PointwiseLoss(Var, Var, PointwiseLoss),
    /// Binary cross-entropy on logits with a positive-class weight per
    /// element (`pos_weight` broadcast to the input's shape; a constant).
    BceWithLogitsPosWeight {
        x: Var,
        target: Var,
        pos_weight: Tensor,
    },
    // ----- normalisations -----
    /// Layer norm over trailing dims; saves the normalised input and the
    /// per-row `1 / sqrt(var + eps)`.
    LayerNorm {
        x: Var,
        weight: Option<Var>,
        bias: Option<Var>,
        xhat: Tensor,
        inv_std: Vec<f32>,
    },
    /// Batch norm over `[N, C, ...]`; saves the normalised input and the
    /// per-channel `1 / sqrt(var + eps)`. `batch_stats`: the statistics came
    /// from this input (training) rather than running estimates (eval).
    BatchNorm {
        x: Var,
        weight: Option<Var>,
        bias: Option<Var>,
        xhat: Tensor,
        inv_std: Vec<f32>,
        batch_stats: bool,
    },
    /// Group norm over `[N, C, ...]` with `groups` groups of channels; saves
    /// the normalised input and the per-(sample, group) `1 / sqrt(var + eps)`.
    GroupNorm {
        x: Var,
        weight: Option<Var>,
        bias: Option<Var>,
        xhat: Tensor,
        inv_std: Vec<f32>,
        groups: usize,
    },
    // ----- convolution and pooling -----
    /// 2-D convolution with its hyper-parameters.
    Conv2d {
        x: Var,
        weight: Var,
        bias: Option<Var>,
        spec: Conv2dSpec,
    },
    /// 2-D transposed convolution with its hyper-parameters.
    ConvTranspose2d {
        x: Var,
        weight: Var,
        bias: Option<Var>,
        spec: ConvTranspose2dSpec,
    },
    /// 2-D max pooling; saves the in-plane index of each chosen element.
    MaxPool2d {
        x: Var,
        indices: Vec<usize>,
    },
    /// 2-D average pooling with its window.
    AvgPool2d {
        x: Var,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        count_include_pad: bool,
        ceil_mode: bool,
    },
    /// Adaptive average pooling (the output size is the gradient's).
    AdaptiveAvgPool2d(Var),
    /// Nearest or bilinear upsampling.
    Upsample2d {
        x: Var,
        spec: Upsample2dSpec,
    },
    // ----- recurrent -----
    /// One direction of a recurrent layer over a whole sequence
    /// (`ops_rnn.rs`); `saved` holds each step's activated gates.
    Recurrent {
        cell: RecurrentCell,
        xp: Var,
        w_hh: Var,
        b_hh: Option<Var>,
        h0: Var,
        c0: Option<Var>,
        reverse: bool,
        saved: PooledBuf,
    },
}

impl Op {
    /// The operation's name (for anomaly reports): `matmul`, `ln`, `cross_entropy`, ...
    pub(crate) fn name(&self) -> &'static str {
        use Op::*;
        match self {
            Add { .. } => "add",
            Sub { .. } => "sub",
            Mul { .. } => "mul",
            Div { .. } => "div",
            Maximum { .. } => "maximum",
            Neg { .. } => "neg",
            AddScalar { .. } => "add_scalar",
            MulScalar { .. } => "mul_scalar",
            PowScalar { .. } => "pow_scalar",
            Exp { .. } => "exp",
            Ln { .. } => "ln",
            Sqrt { .. } => "sqrt",
            Abs { .. } => "abs",
            Clamp { .. } => "clamp",
            Tanh { .. } => "tanh",
            Sigmoid { .. } => "sigmoid",
            Relu { .. } => "relu",
            LeakyRelu { .. } => "leaky_relu",
            Elu { .. } => "elu",
            GeluErf { .. } => "gelu_erf",
            GeluTanh { .. } => "gelu_tanh",
            Softplus { .. } => "softplus",
            Silu { .. } => "silu",
            MatMul { .. } => "matmul",
            Linear { .. } => "linear",
            SumAll { .. } => "sum_all",
            MeanAll { .. } => "mean_all",
            SumAxis { .. } => "sum_axis",
            MeanAxis { .. } => "mean_axis",
            Reshape { .. } => "reshape",
            Permute { .. } => "permute",
            Narrow { .. } => "narrow",
            Concat { .. } => "concat",
            IndexSelect { .. } => "index_select",
            EmbeddingRows { .. } => "embedding_rows",
            Gather { .. } => "gather",
            Softmax { .. } => "softmax",
            LogSoftmax { .. } => "log_softmax",
            CrossEntropy { .. } => "cross_entropy",
            PointwiseLoss { .. } => "pointwise_loss",
            BceWithLogitsPosWeight { .. } => "bce_with_logits_pos_weight",
            LayerNorm { .. } => "layer_norm",
            BatchNorm { .. } => "batch_norm",
            GroupNorm { .. } => "group_norm",
            Conv2d { .. } => "conv2d",
            ConvTranspose2d { .. } => "conv_transpose2d",
            MaxPool2d { .. } => "max_pool2d",
            AvgPool2d { .. } => "avg_pool2d",
            AdaptiveAvgPool2d { .. } => "adaptive_avg_pool2d",
            Upsample2d { .. } => "upsample2d",
            Recurrent { .. } => "recurrent",
        }
    }

    /// The inputs of this operation.
    pub(crate) fn parents(&self) -> Vec<&Var> {
        use Op::*;
        match self {
            Add(a, b) | Sub(a, b) | Mul(a, b) | Div(a, b) | Maximum(a, b) | MatMul(a, b) => vec![a, b],
            Neg(a)
            | AddScalar(a)
            | MulScalar(a, _)
            | PowScalar(a, _)
            | Exp(a)
            | Ln(a)
            | Sqrt(a)
            | Abs(a)
            | Clamp(a, ..)
            | Tanh(a)
            | Sigmoid(a)
            | Relu(a)
            | LeakyRelu(a, _)
            | Elu(a, _)
            | GeluErf(a)
            | GeluTanh(a)
            | Softplus(a, ..)
            | Silu(a)
            | SumAll(a)
            | MeanAll(a)
            | SumAxis(a, ..)
            | MeanAxis(a, ..)
            | Reshape(a)
            | Permute(a, _)
            | Narrow(a, ..)
            | IndexSelect(a, ..)
            | Gather(a, ..)
            | Softmax(a, _)
            | LogSoftmax(a, _)
            | MaxPool2d { x: a, .. }
            | AvgPool2d { x: a, .. }
            | AdaptiveAvgPool2d(a)
            | Upsample2d { x: a, .. }
            | EmbeddingRows { weight: a, .. } => vec![a],
            Linear(x, w, b)
            | Conv2d { x, weight: w, bias: b, .. }
            | ConvTranspose2d { x, weight: w, bias: b, .. } => {
                let mut v = vec![x, w];
                if let Some(b) = b {
                    v.push(b);
                }
                v
            }
            Concat(vs, _) => vs.iter().collect(),
            PointwiseLoss(a, b, _) | BceWithLogitsPosWeight { x: a, target: b, .. } => vec![a, b],
            LayerNorm { x, weight, bias, .. }
            | BatchNorm { x, weight, bias, .. }
            | GroupNorm { x, weight, bias, .. } => {
                let mut v = vec![x];
                v.extend(weight.iter());
                v.extend(bias.iter());
                v
            }
            CrossEntropy { logits, .. } => vec![logits],
            Recurrent { xp, w_hh, b_hh, h0, c0, .. } => {
                let mut v = vec![xp, w_hh];
                v.extend(b_hh.iter());
                v.push(h0);
                v.extend(c0.iter());
                v
            }
        }
    }
}
