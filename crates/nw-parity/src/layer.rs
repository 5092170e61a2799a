//! The `layer` runner: builds one nw layer, activation or loss from a
//! case's `op` and `hyper`, sets its `params`, feeds `inputs`, and compares
//! the `outputs` and the gradients of `sum_k <outputs[k], grad_outputs[k]>`
//! with respect to every input and parameter the case lists in `grads`
//! (batch_norm training cases also compare the running statistics in
//! `state_after`).

use std::collections::BTreeMap;

mod layers2;

use nw_autograd::{Param, Var};
use nw_nn::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, BceLoss, BceWithLogitsLoss, BufferValue, Conv1d,
    Conv2d, CrossEntropyLoss, Elu, Embedding, Gelu, GeluApprox, HuberLoss, L1Loss, LayerNorm, LeakyRelu,
    Linear, LogSoftmax, Loss, MaxPool2d, Module, MseLoss, NllLoss, Reduction, Relu, Sigmoid, Silu,
    SmoothL1Loss, Softmax, Softplus, Tanh, Target,
};
use nw_tensor::conv::{Accumulation, Conv1dSpec, Conv2dSpec};

use nw_tensor::Tensor;
use serde_json::Value;

/// Convolutions in the fixtures are judged with nw's exact-accumulation mode (f64 sums,
/// one rounding): the fixtures are float64 and `conv2d_2` has sums that cancel to
/// 1e-3 of their terms, beyond what any f32 summation order reaches (PyTorch's f32
/// CPU kernels miss it too). Training uses the fast f32 default.
const CONV_ACCUMULATION: Accumulation = Accumulation::F64;

use crate::check::Checker;
use crate::fixture::{Case, CaseError, JsonTensor, hyper_bool, hyper_f64, reject_unknown};

/// Named tensors of a case section (`inputs`, `params`, ...).
pub(crate) fn section(case: &Case, key: &str) -> Result<BTreeMap<String, JsonTensor>, CaseError> {
    let obj = case
        .field(key)?
        .as_object()
        .ok_or_else(|| CaseError::Malformed(format!("{key:?} is not an object")))?;
    obj.iter().map(|(k, v)| Ok((k.clone(), JsonTensor::from_value(v, &format!("{key}.{k}"))?))).collect()
}

pub(crate) fn need<'a>(
    m: &'a BTreeMap<String, JsonTensor>,
    key: &str,
    what: &str,
) -> Result<&'a JsonTensor, CaseError> {
    m.get(key).ok_or_else(|| CaseError::Malformed(format!("{what} has no {key:?}")))
}

pub(crate) fn failed(e: impl std::fmt::Display) -> CaseError {
    CaseError::Failed(e.to_string())
}

/// What a built case produced: output values, and the differentiable
/// inputs and parameters whose gradients can be compared, by fixture name.
#[derive(Default)]
pub(crate) struct Run {
    pub(crate) outputs: Vec<(String, Var)>,
    pub(crate) inputs: Vec<(String, Var)>,
    pub(crate) params: Vec<(String, Param)>,
    /// Extra comparisons done after the forward (running statistics).
    pub(crate) after: Vec<(String, Tensor, JsonTensor)>,
}

/// A leaf input that wants a gradient.
pub(crate) fn leaf(t: &JsonTensor) -> Var {
    Var::leaf(t.to_tensor(), true)
}

/// Sets a module's parameter `name` to the fixture's value.
pub(crate) fn set_param(m: &dyn Module, name: &str, want: &JsonTensor) -> Result<Param, CaseError> {
    let p = m
        .named_parameters()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p)
        .ok_or_else(|| CaseError::Malformed(format!("the layer has no parameter {name:?}")))?;
    p.set(want.to_tensor()).map_err(failed)?;
    Ok(p)
}

/// Runs a module whose case lists its parameters by their nw names.
fn module_case(m: &dyn Module, x: Var, params: &BTreeMap<String, JsonTensor>) -> Result<Run, CaseError> {
    let mut run = Run::default();
    for (name, t) in params {
        run.params.push((name.clone(), set_param(m, name, t)?));
    }
    let y = m.forward(&x).map_err(failed)?;
    run.inputs.push(("x".into(), x));
    run.outputs.push(("output".into(), y));
    Ok(run)
}

fn activation(op: &str, h: &Value) -> Result<Box<dyn Module>, CaseError> {
    let m: Box<dyn Module> = match op {
        "relu" => {
            reject_unknown(h, &[], op)?;
            Box::new(Relu)
        }
        "sigmoid" => {
            reject_unknown(h, &[], op)?;
            Box::new(Sigmoid)
        }
        "tanh" => {
            reject_unknown(h, &[], op)?;
            Box::new(Tanh)
        }
        "silu" => {
            reject_unknown(h, &[], op)?;
            Box::new(Silu)
        }
        "leaky_relu" => {
            reject_unknown(h, &["negative_slope"], op)?;
            Box::new(LeakyRelu { negative_slope: hyper_f64(h, "negative_slope", 0.01)? as f32 })
        }
        "elu" => {
            reject_unknown(h, &["alpha"], op)?;
            Box::new(Elu { alpha: hyper_f64(h, "alpha", 1.0)? as f32 })
        }
        "gelu_erf" | "gelu_tanh" => {
            reject_unknown(h, &["approximate"], op)?;
            let approx = match h.get("approximate").and_then(Value::as_str).unwrap_or("none") {
                "none" => GeluApprox::None,
                "tanh" => GeluApprox::Tanh,
                o => return Err(CaseError::Unsupported(format!("gelu approximate={o:?}"))),
            };
            let want = if op == "gelu_erf" { GeluApprox::None } else { GeluApprox::Tanh };
            if approx != want {
                return Err(CaseError::Malformed(format!("{op} with approximate {approx:?}")));
            }
            Box::new(Gelu { approximate: approx })
        }
        "softplus" => {
            reject_unknown(h, &["beta", "threshold"], op)?;
            Box::new(Softplus {
                beta: hyper_f64(h, "beta", 1.0)? as f32,
                threshold: hyper_f64(h, "threshold", 20.0)? as f32,
            })
        }
        "softmax" | "log_softmax" => {
            reject_unknown(h, &["dim"], op)?;
            let dim = h
                .get("dim")
                .and_then(Value::as_i64)
                .ok_or_else(|| CaseError::Malformed(format!("{op} needs an integer dim")))?
                as isize;
            if op == "softmax" { Box::new(Softmax { dim }) } else { Box::new(LogSoftmax { dim }) }
        }
        _ => return Err(CaseError::Unsupported(format!("layer op {op:?}"))),
    };
    Ok(m)
}

/// A non-negative integer hyper-parameter, with a default.
pub(crate) fn int(h: &Value, key: &str, default: usize) -> Result<usize, CaseError> {
    match h.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .map(|x| x as usize)
            .ok_or_else(|| CaseError::Malformed(format!("hyper {key:?} is not a non-negative integer"))),
    }
}

/// An optional non-negative integer hyper-parameter.
fn opt_int(h: &Value, key: &str) -> Result<Option<usize>, CaseError> {
    match h.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => int(h, key, 0).map(Some),
    }
}

/// A `(height, width)` hyper-parameter given as one integer or a pair.
fn pair(h: &Value, key: &str, default: usize) -> Result<(usize, usize), CaseError> {
    match h.get(key) {
        Some(Value::Array(a)) if a.len() == 2 => {
            let get = |v: &Value| {
                v.as_u64()
                    .map(|x| x as usize)
                    .ok_or_else(|| CaseError::Malformed(format!("hyper {key:?}: {v}")))
            };
            Ok((get(&a[0])?, get(&a[1])?))
        }
        _ => {
            let v = int(h, key, default)?;
            Ok((v, v))
        }
    }
}

fn reduction(h: &Value) -> Result<Reduction, CaseError> {
    match h.get("reduction") {
        None | Some(Value::Null) => Ok(Reduction::Mean),
        Some(Value::String(s)) => Reduction::parse(s).map_err(|e| CaseError::Unsupported(e.to_string())),
        Some(_) => Err(CaseError::Malformed("reduction is not a string".into())),
    }
}

/// Losses: `inputs.input` (differentiated) against `inputs.target`.
fn loss_case(op: &str, h: &Value, inputs: &BTreeMap<String, JsonTensor>) -> Result<Option<Run>, CaseError> {
    let (loss, classes): (Box<dyn Loss>, bool) = match op {
        "mse" => {
            reject_unknown(h, &["reduction"], op)?;
            (Box::new(MseLoss { reduction: reduction(h)? }), false)
        }
        "l1" => {
            reject_unknown(h, &["reduction"], op)?;
            (Box::new(L1Loss { reduction: reduction(h)? }), false)
        }
        "smooth_l1" => {
            reject_unknown(h, &["reduction", "beta"], op)?;
            (
                Box::new(SmoothL1Loss { reduction: reduction(h)?, beta: hyper_f64(h, "beta", 1.0)? as f32 }),
                false,
            )
        }
        "huber" => {
            reject_unknown(h, &["reduction", "delta"], op)?;
            (
                Box::new(HuberLoss { reduction: reduction(h)?, delta: hyper_f64(h, "delta", 1.0)? as f32 }),
                false,
            )
        }
        "bce" => {
            reject_unknown(h, &["reduction"], op)?;
            (Box::new(BceLoss { reduction: reduction(h)? }), false)
        }
        "bce_with_logits" => {
            reject_unknown(h, &["reduction"], op)?;
            if let Some(k) = inputs.keys().find(|k| !["input", "target", "pos_weight"].contains(&k.as_str()))
            {
                return Err(CaseError::Unsupported(format!("{op} input {k:?}")));
            }
            // inputs.pos_weight [C]: a constant weight of each class's positive term
            let pos_weight = inputs.get("pos_weight").map(JsonTensor::to_tensor);
            (Box::new(BceWithLogitsLoss { reduction: reduction(h)?, pos_weight }), false)
        }
        "cross_entropy" | "cross_entropy_label_smoothing" | "cross_entropy_sum" => {
            reject_unknown(h, &["reduction", "label_smoothing", "ignore_index"], op)?;
            let l = CrossEntropyLoss {
                reduction: reduction(h)?,
                label_smoothing: hyper_f64(h, "label_smoothing", 0.0)? as f32,
                weight: inputs.get("weight").map(JsonTensor::to_tensor),
                ignore_index: opt_int(h, "ignore_index")?,
            };
            (Box::new(l), true)
        }
        "nll" => {
            reject_unknown(h, &["reduction", "ignore_index"], op)?;
            let l = NllLoss {
                reduction: reduction(h)?,
                weight: inputs.get("weight").map(JsonTensor::to_tensor),
                ignore_index: opt_int(h, "ignore_index")?,
            };
            (Box::new(l), true)
        }
        _ => return Ok(None),
    };
    let x = leaf(need(inputs, "input", "inputs")?);
    let t = need(inputs, "target", "inputs")?;
    let target = if classes {
        Target::Classes(t.to_indices("inputs.target")?)
    } else {
        Target::Values(Var::constant(t.to_tensor()))
    };
    let y = loss.loss(&x, &target).map_err(failed)?;
    Ok(Some(Run { outputs: vec![("output".into(), y)], inputs: vec![("input".into(), x)], ..Run::default() }))
}

fn batch_norm_case(
    case: &Case,
    h: &Value,
    inputs: &BTreeMap<String, JsonTensor>,
    params: &BTreeMap<String, JsonTensor>,
) -> Result<Run, CaseError> {
    reject_unknown(h, &["training", "momentum", "eps", "num_batches_tracked"], "batch_norm")?;
    let training = hyper_bool(h, "training", true)?;
    let eps = hyper_f64(h, "eps", 1e-5)? as f32;
    // absent: torch's default 0.1; null: None, the cumulative average
    let momentum = match h.get("momentum") {
        None => Some(0.1),
        Some(Value::Null) => None,
        Some(_) => Some(hyper_f64(h, "momentum", 0.1)? as f32),
    };
    let xj = need(inputs, "x", "inputs")?;
    if xj.shape.len() < 2 {
        return Err(CaseError::Malformed(format!("batch_norm input {:?}", xj.shape)));
    }
    let c = xj.shape[1];
    let module: Box<dyn Module> = if xj.shape.len() == 4 {
        Box::new(BatchNorm2d::with_options(c, eps, momentum, true, true))
    } else {
        Box::new(BatchNorm1d::with_options(c, eps, momentum, true, true))
    };
    let buffers = module.named_buffers();
    let buf = |name: &str| {
        buffers.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone()).expect("BatchNorm buffer")
    };
    // running statistics to start from: state_before (training) or the inputs (eval)
    let start = if training { section(case, "state_before")? } else { inputs.clone() };
    for name in ["running_mean", "running_var"] {
        let t = need(&start, name, if training { "state_before" } else { "inputs" })?;
        buf(name).set(BufferValue::F32(t.to_tensor())).map_err(failed)?;
    }
    let seen = int(h, "num_batches_tracked", 0)? as i64;
    buf("num_batches_tracked").set(BufferValue::I64 { shape: vec![], data: vec![seen] }).map_err(failed)?;
    module.set_training(training);
    let mut run = module_case(module.as_ref(), leaf(xj), params)?;
    if training {
        let after = section(case, "state_after")?;
        for name in ["running_mean", "running_var"] {
            run.after.push((
                format!("state_after.{name}"),
                buf(name).tensor(),
                need(&after, name, "state_after")?.clone(),
            ));
        }
    }
    Ok(run)
}

fn build(case: &Case) -> Result<Run, CaseError> {
    let op = case.str("op")?;
    let h = case.field("hyper")?;
    let inputs = section(case, "inputs")?;
    let params = section(case, "params")?;
    if let Some(run) = loss_case(op, h, &inputs)? {
        return Ok(run);
    }
    if let Some(run) = layers2::build(op, h, &inputs, &params)? {
        return Ok(run);
    }
    match op {
        "linear" => {
            reject_unknown(h, &[], op)?;
            let w = need(&params, "weight", "params")?;
            let b = params.get("bias").map(JsonTensor::to_tensor);
            let m = Linear::from_tensors(w.to_tensor(), b).map_err(failed)?;
            module_case(&m, leaf(need(&inputs, "x", "inputs")?), &params)
        }
        "layer_norm" => {
            reject_unknown(h, &["normalized_shape", "eps"], op)?;
            let shape: Vec<usize> = h
                .get("normalized_shape")
                .and_then(Value::as_array)
                .ok_or_else(|| CaseError::Malformed("layer_norm needs normalized_shape".into()))?
                .iter()
                .map(|v| v.as_u64().map(|d| d as usize))
                .collect::<Option<_>>()
                .ok_or_else(|| CaseError::Malformed("normalized_shape holds non-integers".into()))?;
            let m = LayerNorm::with_options(&shape, hyper_f64(h, "eps", 1e-5)? as f32, true);
            module_case(&m, leaf(need(&inputs, "x", "inputs")?), &params)
        }
        "batch_norm" => batch_norm_case(case, h, &inputs, &params),
        "embedding" => {
            reject_unknown(h, &["padding_idx"], op)?;
            let mut m =
                Embedding::from_tensor(need(&params, "weight", "params")?.to_tensor()).map_err(failed)?;
            // padding_idx: that row is read as stored and gets no gradient
            if let Some(p) = opt_int(h, "padding_idx")? {
                m = m.with_padding(p).map_err(failed)?;
            }
            let idx = need(&inputs, "indices", "inputs")?;
            let y = m.lookup(&idx.to_indices("inputs.indices")?, &idx.shape).map_err(failed)?;
            Ok(Run {
                outputs: vec![("output".into(), y)],
                params: vec![("weight".into(), m.weight.clone())],
                ..Run::default()
            })
        }
        "conv2d" => {
            reject_unknown(h, &["stride", "padding", "dilation", "groups"], op)?;
            let spec = Conv2dSpec {
                stride: pair(h, "stride", 1)?,
                padding: pair(h, "padding", 0)?,
                dilation: pair(h, "dilation", 1)?,
                groups: int(h, "groups", 1)?,
                accumulation: CONV_ACCUMULATION,
            };
            let w = need(&params, "weight", "params")?.to_tensor();
            let m = Conv2d::from_tensors(w, params.get("bias").map(JsonTensor::to_tensor), spec)
                .map_err(failed)?;
            module_case(&m, leaf(need(&inputs, "x", "inputs")?), &params)
        }
        "conv1d" => {
            reject_unknown(h, &["stride", "padding", "dilation", "groups"], op)?;
            let spec = Conv1dSpec {
                stride: int(h, "stride", 1)?,
                padding: int(h, "padding", 0)?,
                dilation: int(h, "dilation", 1)?,
                groups: int(h, "groups", 1)?,
                accumulation: CONV_ACCUMULATION,
            };
            let w = need(&params, "weight", "params")?.to_tensor();
            let m = Conv1d::from_tensors(w, params.get("bias").map(JsonTensor::to_tensor), spec)
                .map_err(failed)?;
            module_case(&m, leaf(need(&inputs, "x", "inputs")?), &params)
        }
        "max_pool2d" | "avg_pool2d" => {
            let known: &[&str] = if op == "max_pool2d" {
                &["kernel_size", "stride", "padding", "ceil_mode"]
            } else {
                &["kernel_size", "stride", "padding", "count_include_pad", "ceil_mode"]
            };
            reject_unknown(h, known, op)?;
            let kernel = pair(h, "kernel_size", 0)?;
            if kernel.0 == 0 || kernel.1 == 0 {
                return Err(CaseError::Malformed(format!("{op} needs a kernel_size")));
            }
            // torch: stride defaults to the kernel size
            let stride =
                if h.get("stride").is_none_or(Value::is_null) { kernel } else { pair(h, "stride", 1)? };
            let padding = pair(h, "padding", 0)?;
            let ceil_mode = hyper_bool(h, "ceil_mode", false)?;
            let m: Box<dyn Module> = if op == "max_pool2d" {
                Box::new(MaxPool2d { kernel, stride, padding, ceil_mode })
            } else {
                let count_include_pad = hyper_bool(h, "count_include_pad", true)?;
                Box::new(AvgPool2d { kernel, stride, padding, count_include_pad, ceil_mode })
            };
            module_case(m.as_ref(), leaf(need(&inputs, "x", "inputs")?), &params)
        }
        "adaptive_avg_pool2d" => {
            reject_unknown(h, &["output_size"], op)?;
            let m = AdaptiveAvgPool2d { output_size: pair(h, "output_size", 0)? };
            module_case(&m, leaf(need(&inputs, "x", "inputs")?), &params)
        }
        "lstm" | "gru" | "rnn_tanh" | "rnn_relu" => crate::layer_rnn::recurrent_case(op, h, &inputs, &params),
        _ => {
            let m = activation(op, h)?;
            module_case(m.as_ref(), leaf(need(&inputs, "x", "inputs")?), &params)
        }
    }
}

/// Runs one `layer` case.
pub fn run(case: &Case) -> Result<Checker, CaseError> {
    let (rtol, atol) = case.tolerances()?;
    let outputs = section(case, "outputs")?;
    let grad_outputs = section(case, "grad_outputs")?;
    let grads = section(case, "grads")?;
    let run = build(case)?;
    let mut ch = Checker::new(rtol, atol);
    // forward values, and the scalar sum_k <outputs[k], grad_outputs[k]>
    let mut total: Option<Var> = None;
    for (name, want) in &outputs {
        let Some((_, got)) = run.outputs.iter().find(|(n, _)| n == name) else {
            ch.problems.push(format!("output {name:?} was not produced"));
            continue;
        };
        ch.tensor(&format!("outputs.{name}"), got.value(), want);
        let go = need(&grad_outputs, name, "grad_outputs")?;
        let go = go
            .to_tensor()
            .reshape(got.shape())
            .map_err(|e| CaseError::Malformed(format!("grad_outputs.{name}: {e}")))?;
        let term = got.mul(&Var::constant(go)).map_err(failed)?.sum();
        total = Some(match total {
            None => term,
            Some(t) => t.add(&term).map_err(failed)?,
        });
    }
    for (label, got, want) in &run.after {
        ch.tensor(label, got, want);
    }
    let total = total.ok_or_else(|| CaseError::Malformed("no outputs".into()))?;
    let g = total.backward().map_err(failed)?;
    for (name, want) in &grads {
        let got = if let Some((_, v)) = run.inputs.iter().find(|(n, _)| n == name) {
            g.wrt(v).cloned().unwrap_or_else(|| Tensor::zeros(v.shape()))
        } else if let Some((_, p)) = run.params.iter().find(|(n, _)| n == name) {
            g.get(p).cloned().unwrap_or_else(|| Tensor::zeros(&p.shape()))
        } else {
            ch.problems.push(format!("no input or parameter {name:?} to take a gradient of"));
            continue;
        };
        ch.tensor(&format!("grads.{name}"), &got, want);
    }
    Ok(ch)
}
