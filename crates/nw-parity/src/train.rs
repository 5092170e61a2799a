//! Runner for `train` fixtures: build the `nn.Sequential` the case describes,
//! load `init_params`, run `steps` full-batch steps (zero grads, forward,
//! mean loss, backward, optimizer step) and compare the loss before every
//! update and the parameters after the last one.
//!
//! Every step goes through [`nw_optim::Optimizer::step_closure`] with a
//! closure that runs forward and backward on the whole batch, as torch's
//! `optimizer.step(closure)`: optimizers other than LBFGS call it once, LBFGS
//! as often as its iterations and line search need (checked against
//! `expected_evals` when the case has it). With `accumulate: k` the closure
//! splits the batch into `k` equal micro-batches along dim 0 and adds up the
//! gradients of `loss / k` on each. `frozen` parameters are not given to the
//! optimizer (they get no update and no state; gradients still flow through
//! them).

use std::collections::BTreeMap;

use nw_autograd::Var;
use nw_nn::{Conv2d, Flatten, Linear, MaxPool2d, Module, Relu, Sequential, Sigmoid, Tanh, loss};
use nw_tensor::conv::Conv2dSpec;
use nw_tensor::{Rng, Tensor};
use serde_json::Value;

use crate::check::Checker;
use crate::fixture::{Case, CaseError, JsonTensor};

fn usize_of(h: &Value, key: &str, what: &str) -> Result<usize, CaseError> {
    h.get(key)
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .ok_or_else(|| CaseError::Malformed(format!("{what}: {key:?} is missing or not a count")))
}

fn no_options(h: &Value, what: &str) -> Result<(), CaseError> {
    match h.as_object() {
        Some(o) if !o.is_empty() => Err(CaseError::Unsupported(format!("{what} with options {h}"))),
        _ => Ok(()),
    }
}

/// Builds one layer of a model spec (`{"linear": {"in": 4, "out": 8}}`).
fn layer(spec: &Value, rng: &mut Rng) -> Result<Box<dyn Module>, CaseError> {
    let obj = spec
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| CaseError::Malformed(format!("model layer {spec} is not an object with one key")))?;
    let (kind, h) = obj.iter().next().expect("one entry");
    Ok(match kind.as_str() {
        "linear" => {
            crate::fixture::reject_unknown(h, &["in", "out", "bias"], "linear")?;
            let bias = h.get("bias").and_then(Value::as_bool).unwrap_or(true);
            Box::new(Linear::with_bias(usize_of(h, "in", kind)?, usize_of(h, "out", kind)?, bias, rng))
        }
        "conv2d" => {
            crate::fixture::reject_unknown(
                h,
                &["in", "out", "kernel", "stride", "padding", "bias"],
                "conv2d",
            )?;
            let k = usize_of(h, "kernel", kind)?;
            let opt = |key: &str, d: usize| h.get(key).and_then(Value::as_u64).map_or(d, |v| v as usize);
            let spec = Conv2dSpec {
                stride: (opt("stride", 1), opt("stride", 1)),
                padding: (opt("padding", 0), opt("padding", 0)),
                ..Default::default()
            };
            let bias = h.get("bias").and_then(Value::as_bool).unwrap_or(true);
            let c = Conv2d::new(usize_of(h, "in", kind)?, usize_of(h, "out", kind)?, (k, k), spec, bias, rng)
                .map_err(|e| CaseError::Failed(e.to_string()))?;
            Box::new(c)
        }
        "max_pool2d" => {
            crate::fixture::reject_unknown(h, &["kernel", "stride"], "max_pool2d")?;
            let mut m = MaxPool2d::new(usize_of(h, "kernel", kind)?);
            if let Some(s) = h.get("stride").and_then(Value::as_u64) {
                m.stride = (s as usize, s as usize);
            }
            Box::new(m)
        }
        "relu" => no_options(h, kind).map(|_| Box::new(Relu) as Box<dyn Module>)?,
        "tanh" => no_options(h, kind).map(|_| Box::new(Tanh) as Box<dyn Module>)?,
        "sigmoid" => no_options(h, kind).map(|_| Box::new(Sigmoid) as Box<dyn Module>)?,
        "flatten" => no_options(h, kind).map(|_| Box::new(Flatten::default()) as Box<dyn Module>)?,
        other => return Err(CaseError::Unsupported(format!("train model layer {other:?}"))),
    })
}

/// Runs one `train` case.
pub fn run(case: &Case) -> Result<Checker, CaseError> {
    let (rtol, atol) = case.tolerances()?;
    let mut rng = Rng::new(0);
    let specs =
        case.field("model")?.as_array().ok_or_else(|| CaseError::Malformed("model is not a list".into()))?;
    let mut model = Sequential::new();
    for s in specs {
        model.push(layer(s, &mut rng)?);
    }
    // Load init_params by state_dict name; every parameter must be given.
    let init =
        case.field("init_params")?.as_object().ok_or_else(|| CaseError::Malformed("init_params".into()))?;
    let named = model.named_parameters();
    if named.len() != init.len() {
        let ours: Vec<_> = named.iter().map(|(n, _)| n.clone()).collect();
        let theirs: Vec<_> = init.keys().cloned().collect();
        return Err(CaseError::Failed(format!("parameter names differ: nw {ours:?}, fixture {theirs:?}")));
    }
    for (name, p) in &named {
        let t = init.get(name).ok_or_else(|| CaseError::Failed(format!("fixture has no init for {name}")))?;
        p.set(JsonTensor::from_value(t, name)?.to_tensor())
            .map_err(|e| CaseError::Failed(format!("{name}: {e}")))?;
    }
    let inputs = case.tensor("inputs")?.to_tensor();
    let targets = case.tensor("targets")?;
    let loss_name = case.str("loss")?;
    if !matches!(loss_name, "cross_entropy" | "mse") {
        return Err(CaseError::Unsupported(format!("train loss {loss_name:?}")));
    }
    let n = inputs.shape().first().copied().unwrap_or(0);
    let accumulate =
        match case.opt("accumulate") {
            None => 1,
            Some(v) => v.as_u64().filter(|&k| k >= 1 && n % k as usize == 0).ok_or_else(|| {
                CaseError::Malformed(format!("accumulate {v} does not split a batch of {n}"))
            })? as usize,
        };
    let micro = n / accumulate;
    let class_targets =
        if loss_name == "cross_entropy" { Some(targets.to_indices("targets")?) } else { None };
    let target_tensor = targets.to_tensor();
    // (input, loss) of micro-batch i
    let micro_loss = |i: usize| -> Result<Var, CaseError> {
        let fail = |e: &dyn std::fmt::Display| CaseError::Failed(e.to_string());
        let x = if accumulate == 1 {
            inputs.clone()
        } else {
            inputs.narrow(0, i * micro, micro).map_err(|e| fail(&e))?
        };
        let out = model.forward(&Var::constant(x)).map_err(|e| fail(&e))?;
        let r = match &class_targets {
            Some(t) => loss::cross_entropy(&out, &t[i * micro..(i + 1) * micro], 0.0, loss::Reduction::Mean),
            None => {
                let t = if accumulate == 1 {
                    target_tensor.clone()
                } else {
                    target_tensor.narrow(0, i * micro, micro).map_err(|e| fail(&e))?
                };
                loss::mse_loss(&out, &Var::constant(t), loss::Reduction::Mean)
            }
        };
        let l = r.map_err(|e| fail(&e))?;
        Ok(if accumulate == 1 { l } else { l.mul_scalar(1.0 / accumulate as f32) })
    };
    let frozen: Vec<String> = match case.opt("frozen") {
        None => Vec::new(),
        Some(v) => v
            .as_array()
            .and_then(|a| a.iter().map(|s| s.as_str().map(String::from)).collect::<Option<Vec<_>>>())
            .ok_or_else(|| CaseError::Malformed("frozen is not a list of names".into()))?,
    };
    for f in &frozen {
        if !named.iter().any(|(n, _)| n == f) {
            return Err(CaseError::Failed(format!("frozen parameter {f} is not in the model")));
        }
    }
    let params = named.iter().filter(|(n, _)| !frozen.contains(n)).map(|(_, p)| p.clone()).collect();
    let mut opt = crate::optimizer::build(case.str("optimizer")?, case.field("hyper")?, params)?;
    let steps = case.f64("steps")? as usize;
    let want_losses = case
        .field("expected_losses")?
        .as_array()
        .ok_or_else(|| CaseError::Malformed("expected_losses".into()))?;
    if want_losses.len() != steps {
        return Err(CaseError::Malformed(format!("{} expected losses for {steps} steps", want_losses.len())));
    }
    let want_evals = match case.opt("expected_evals") {
        None => None,
        Some(v) => Some(
            v.as_array()
                .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<_>>>())
                .filter(|a| a.len() == steps)
                .ok_or_else(|| CaseError::Malformed("expected_evals needs one count per step".into()))?,
        ),
    };
    let mut ch = Checker::new(rtol, atol);
    for (k, want) in want_losses.iter().enumerate() {
        let want = want.as_f64().ok_or_else(|| CaseError::Malformed(format!("expected_losses[{k}]")))?;
        let mut evals = 0u64;
        let mut closure = || -> Result<(f64, nw_autograd::Grads), nw_optim::OptimError> {
            evals += 1;
            let closure_err = |e: CaseError| nw_optim::OptimError::Closure(e.to_string());
            let mut total = 0f64;
            let mut grads = nw_autograd::Grads::new();
            for i in 0..accumulate {
                let l = micro_loss(i).map_err(closure_err)?;
                total += l.value().item().map_err(|e| nw_optim::OptimError::Closure(e.to_string()))? as f64;
                let g = l.backward().map_err(|e| nw_optim::OptimError::Closure(e.to_string()))?;
                grads.merge(g);
            }
            Ok((total, grads))
        };
        let got = opt.step_closure(&mut closure).map_err(|e| CaseError::Failed(e.to_string()))?;
        ch.scalar(&format!("loss[{k}]"), got, want);
        if let Some(we) = &want_evals
            && evals != we[k]
        {
            ch.problems.push(format!("step {k}: the closure ran {evals} times, torch {}", we[k]));
        }
    }
    let want_params = case
        .field("expected_params")?
        .as_object()
        .ok_or_else(|| CaseError::Malformed("expected_params".into()))?;
    let got: BTreeMap<String, Tensor> =
        model.named_parameters().into_iter().map(|(n, p)| (n, p.value())).collect();
    for (name, w) in want_params {
        let w = JsonTensor::from_value(w, name)?;
        match got.get(name) {
            Some(t) => ch.tensor(name, t, &w),
            None => ch.problems.push(format!("nw has no parameter {name}")),
        }
    }
    Ok(ch)
}
