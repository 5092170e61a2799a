//! Runner for `optimizer` fixtures: build the named torch.optim optimizer
//! from `hyper`, feed `grads[k]`, compare the parameters with `expected[k]`
//! after every step.

use nw_autograd::{Grads, Param};
use nw_optim::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, NAdam, Optimizer, RAdam, RmsProp, Rprop, Sgd, WeightDecay,
};
use serde_json::Value;

use crate::check::Checker;
use crate::fixture::{Case, CaseError, JsonTensor, hyper_bool, hyper_f64, reject_unknown};

fn pair(h: &Value, key: &str, default: (f64, f64)) -> Result<(f64, f64), CaseError> {
    match h.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => {
            let a =
                v.as_array().filter(|a| a.len() == 2).and_then(|a| Some((a[0].as_f64()?, a[1].as_f64()?)));
            a.ok_or_else(|| CaseError::Malformed(format!("hyper {key:?} is not a pair of numbers")))
        }
    }
}

/// torch's `weight_decay` + `decoupled_weight_decay` as nw's enum.
fn decay(h: &Value, default: f64, decoupled_default: bool) -> Result<WeightDecay, CaseError> {
    let c = hyper_f64(h, "weight_decay", default)?;
    Ok(if hyper_bool(h, "decoupled_weight_decay", decoupled_default)? {
        WeightDecay::Decoupled(c)
    } else {
        WeightDecay::L2(c)
    })
}

fn fail(e: nw_optim::OptimError) -> CaseError {
    CaseError::Failed(e.to_string())
}

/// Builds the optimizer a case names, with torch's defaults for unlisted keywords.
pub fn build(name: &str, h: &Value, params: Vec<Param>) -> Result<Box<dyn Optimizer>, CaseError> {
    let what = format!("optimizer {name}");
    let o: Box<dyn Optimizer> = match name {
        "SGD" => {
            reject_unknown(
                h,
                &["lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"],
                &what,
            )?;
            let d = Sgd::default();
            Box::new(
                Sgd {
                    lr: hyper_f64(h, "lr", d.lr)?,
                    momentum: hyper_f64(h, "momentum", d.momentum)?,
                    dampening: hyper_f64(h, "dampening", d.dampening)?,
                    weight_decay: WeightDecay::L2(hyper_f64(h, "weight_decay", 0.0)?),
                    nesterov: hyper_bool(h, "nesterov", d.nesterov)?,
                    maximize: hyper_bool(h, "maximize", d.maximize)?,
                }
                .build(params)
                .map_err(fail)?,
            )
        }
        "Adam" | "AdamW" => {
            let known =
                ["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay"];
            reject_unknown(h, if name == "Adam" { &known } else { &known[..6] }, &what)?;
            let adamw = name == "AdamW";
            let d = Adam::default();
            let a = Adam {
                lr: hyper_f64(h, "lr", d.lr)?,
                betas: pair(h, "betas", d.betas)?,
                eps: hyper_f64(h, "eps", d.eps)?,
                weight_decay: decay(h, if adamw { 0.01 } else { 0.0 }, adamw)?,
                amsgrad: hyper_bool(h, "amsgrad", d.amsgrad)?,
                maximize: hyper_bool(h, "maximize", d.maximize)?,
            };
            if adamw {
                let w = AdamW {
                    lr: a.lr,
                    betas: a.betas,
                    eps: a.eps,
                    weight_decay: a.weight_decay,
                    amsgrad: a.amsgrad,
                    maximize: a.maximize,
                };
                Box::new(w.build(params).map_err(fail)?)
            } else {
                Box::new(a.build(params).map_err(fail)?)
            }
        }
        "Adagrad" => {
            reject_unknown(
                h,
                &["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize"],
                &what,
            )?;
            let d = Adagrad::default();
            Box::new(
                Adagrad {
                    lr: hyper_f64(h, "lr", d.lr)?,
                    lr_decay: hyper_f64(h, "lr_decay", d.lr_decay)?,
                    weight_decay: WeightDecay::L2(hyper_f64(h, "weight_decay", 0.0)?),
                    initial_accumulator_value: hyper_f64(h, "initial_accumulator_value", 0.0)?,
                    eps: hyper_f64(h, "eps", d.eps)?,
                    maximize: hyper_bool(h, "maximize", false)?,
                }
                .build(params)
                .map_err(fail)?,
            )
        }
        "RMSprop" => {
            reject_unknown(
                h,
                &["lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize"],
                &what,
            )?;
            let d = RmsProp::default();
            Box::new(
                RmsProp {
                    lr: hyper_f64(h, "lr", d.lr)?,
                    alpha: hyper_f64(h, "alpha", d.alpha)?,
                    eps: hyper_f64(h, "eps", d.eps)?,
                    weight_decay: WeightDecay::L2(hyper_f64(h, "weight_decay", 0.0)?),
                    momentum: hyper_f64(h, "momentum", d.momentum)?,
                    centered: hyper_bool(h, "centered", d.centered)?,
                    maximize: hyper_bool(h, "maximize", false)?,
                }
                .build(params)
                .map_err(fail)?,
            )
        }
        "Adadelta" => {
            reject_unknown(h, &["lr", "rho", "eps", "weight_decay", "maximize"], &what)?;
            let d = Adadelta::default();
            Box::new(
                Adadelta {
                    lr: hyper_f64(h, "lr", d.lr)?,
                    rho: hyper_f64(h, "rho", d.rho)?,
                    eps: hyper_f64(h, "eps", d.eps)?,
                    weight_decay: WeightDecay::L2(hyper_f64(h, "weight_decay", 0.0)?),
                    maximize: hyper_bool(h, "maximize", false)?,
                }
                .build(params)
                .map_err(fail)?,
            )
        }
        "Adamax" => {
            reject_unknown(h, &["lr", "betas", "eps", "weight_decay", "maximize"], &what)?;
            let d = Adamax::default();
            Box::new(
                Adamax {
                    lr: hyper_f64(h, "lr", d.lr)?,
                    betas: pair(h, "betas", d.betas)?,
                    eps: hyper_f64(h, "eps", d.eps)?,
                    weight_decay: WeightDecay::L2(hyper_f64(h, "weight_decay", 0.0)?),
                    maximize: hyper_bool(h, "maximize", false)?,
                }
                .build(params)
                .map_err(fail)?,
            )
        }
        "NAdam" => {
            reject_unknown(
                h,
                &[
                    "lr",
                    "betas",
                    "eps",
                    "weight_decay",
                    "momentum_decay",
                    "decoupled_weight_decay",
                    "maximize",
                ],
                &what,
            )?;
            let d = NAdam::default();
            Box::new(
                NAdam {
                    lr: hyper_f64(h, "lr", d.lr)?,
                    betas: pair(h, "betas", d.betas)?,
                    eps: hyper_f64(h, "eps", d.eps)?,
                    weight_decay: decay(h, 0.0, false)?,
                    momentum_decay: hyper_f64(h, "momentum_decay", d.momentum_decay)?,
                    maximize: hyper_bool(h, "maximize", false)?,
                }
                .build(params)
                .map_err(fail)?,
            )
        }
        "RAdam" => {
            reject_unknown(
                h,
                &["lr", "betas", "eps", "weight_decay", "decoupled_weight_decay", "maximize"],
                &what,
            )?;
            let d = RAdam::default();
            Box::new(
                RAdam {
                    lr: hyper_f64(h, "lr", d.lr)?,
                    betas: pair(h, "betas", d.betas)?,
                    eps: hyper_f64(h, "eps", d.eps)?,
                    weight_decay: decay(h, 0.0, false)?,
                    maximize: hyper_bool(h, "maximize", false)?,
                }
                .build(params)
                .map_err(fail)?,
            )
        }
        "Rprop" => {
            reject_unknown(h, &["lr", "etas", "step_sizes", "maximize"], &what)?;
            let d = Rprop::default();
            Box::new(
                Rprop {
                    lr: hyper_f64(h, "lr", d.lr)?,
                    etas: pair(h, "etas", d.etas)?,
                    step_sizes: pair(h, "step_sizes", d.step_sizes)?,
                    weight_decay: WeightDecay::L2(0.0),
                    maximize: hyper_bool(h, "maximize", false)?,
                }
                .build(params)
                .map_err(fail)?,
            )
        }
        other => return Err(CaseError::Unsupported(format!("optimizer {other:?}"))),
    };
    Ok(o)
}

fn tensors(v: &Value, what: &str) -> Result<Vec<JsonTensor>, CaseError> {
    v.as_array()
        .ok_or_else(|| CaseError::Malformed(format!("{what} is not a list")))?
        .iter()
        .enumerate()
        .map(|(i, t)| JsonTensor::from_value(t, &format!("{what}[{i}]")))
        .collect()
}

fn steps(v: &Value, what: &str) -> Result<Vec<Vec<JsonTensor>>, CaseError> {
    v.as_array()
        .ok_or_else(|| CaseError::Malformed(format!("{what} is not a list")))?
        .iter()
        .enumerate()
        .map(|(k, s)| tensors(s, &format!("{what}[{k}]")))
        .collect()
}

/// Runs one `optimizer` case.
pub fn run(case: &Case) -> Result<Checker, CaseError> {
    let (rtol, atol) = case.tolerances()?;
    let name = case.str("optimizer")?;
    let hyper = case.field("hyper")?;
    let params: Vec<Param> =
        tensors(case.field("params")?, "params")?.iter().map(|t| Param::new(t.to_tensor())).collect();
    let grads = steps(case.field("grads")?, "grads")?;
    let expected = steps(case.field("expected")?, "expected")?;
    if grads.len() != expected.len() {
        return Err(CaseError::Malformed(format!(
            "{} grad steps, {} expected steps",
            grads.len(),
            expected.len()
        )));
    }
    let mut opt = build(name, hyper, params.clone())?;
    let mut ch = Checker::new(rtol, atol);
    for (k, (gs, want)) in grads.iter().zip(&expected).enumerate() {
        if gs.len() != params.len() || want.len() != params.len() {
            return Err(CaseError::Malformed(format!("step {k}: needs one tensor per parameter")));
        }
        let mut g = Grads::new();
        for (p, t) in params.iter().zip(gs) {
            g.insert(p, t.to_tensor());
        }
        opt.step(&g).map_err(|e| CaseError::Failed(e.to_string()))?;
        for (i, (p, w)) in params.iter().zip(want).enumerate() {
            ch.tensor(&format!("step{k}.param{i}"), &p.value(), w);
        }
    }
    Ok(ch)
}
