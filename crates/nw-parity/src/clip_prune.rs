//! Runner for `clip_prune` fixtures: `clip_grad_norm` and `clip_grad_value`
//! (nw-optim); the `prune_*` ops are judged by [`crate::prune`] (nw-reg).

use nw_autograd::{Grads, Param};
use nw_optim::clip::{clip_grad_norm, clip_grad_value};
use nw_tensor::Tensor;
use serde_json::Value;

use crate::check::Checker;
use crate::fixture::{Case, CaseError, JsonTensor, hyper_f64, reject_unknown};

fn tensors(v: &Value, what: &str) -> Result<Vec<JsonTensor>, CaseError> {
    v.as_array()
        .ok_or_else(|| CaseError::Malformed(format!("{what} is not a list")))?
        .iter()
        .enumerate()
        .map(|(i, t)| JsonTensor::from_value(t, &format!("{what}[{i}]")))
        .collect()
}

/// `norm_type` as a number or the string `"inf"`.
fn norm_type(h: &Value) -> Result<f64, CaseError> {
    match h.get("norm_type") {
        None | Some(Value::Null) => Ok(2.0),
        Some(Value::String(s)) if s == "inf" => Ok(f64::INFINITY),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| CaseError::Malformed(format!("norm_type {v} is not a number or \"inf\""))),
    }
}

/// Runs one `clip_prune` case.
pub fn run(case: &Case) -> Result<Checker, CaseError> {
    let op = case.str("op")?;
    let h = case.field("hyper")?;
    match op {
        "clip_grad_norm" => reject_unknown(h, &["max_norm", "norm_type", "error_if_nonfinite"], op)?,
        "clip_grad_value" => reject_unknown(h, &["clip_value"], op)?,
        "prune_l1_unstructured" | "prune_global_l1_unstructured" => return crate::prune::run_prune(case, op),
        other => return Err(CaseError::Unsupported(format!("clip_prune op {other:?}"))),
    }
    let (rtol, atol) = case.tolerances()?;
    let gs = tensors(case.field("grads")?, "grads")?;
    let want = tensors(case.field("expected")?, "expected")?;
    if want.len() != gs.len() {
        return Err(CaseError::Malformed("expected needs one tensor per gradient".into()));
    }
    let params: Vec<Param> = gs.iter().map(|g| Param::new(Tensor::zeros(&g.shape))).collect();
    let mut grads = Grads::new();
    for (p, g) in params.iter().zip(&gs) {
        grads.insert(p, g.to_tensor());
    }
    let mut ch = Checker::new(rtol, atol);
    let fail = |e: nw_optim::OptimError| CaseError::Failed(e.to_string());
    if op == "clip_grad_norm" {
        let max_norm = hyper_f64(h, "max_norm", f64::NAN)?;
        let err = crate::fixture::hyper_bool(h, "error_if_nonfinite", false)?;
        let total = clip_grad_norm(&params, &mut grads, max_norm, norm_type(h)?, err).map_err(fail)?;
        ch.scalar("total_norm", total, case.f64("expected_total_norm")?);
    } else {
        clip_grad_value(&params, &mut grads, hyper_f64(h, "clip_value", f64::NAN)?).map_err(fail)?;
    }
    for (i, (p, w)) in params.iter().zip(&want).enumerate() {
        let got = grads.get(p).ok_or_else(|| CaseError::Failed(format!("gradient {i} vanished")))?;
        if op == "clip_grad_value" {
            // The fixture holds clamped values such as 0.4 in f64 with rtol = atol = 0;
            // no f32 equals 0.4, and the exact f32 answer is 0.4 rounded to f32. So
            // the comparison is exact against the f32 rounding of each expected value
            // (unclamped values are f32 already and unchanged by the rounding).
            let w32 = JsonTensor {
                shape: w.shape.clone(),
                data: w.data.iter().map(|&x| x as f32 as f64).collect(),
            };
            ch.tensor(&format!("grads[{i}]"), got, &w32);
        } else {
            ch.tensor(&format!("grads[{i}]"), got, w);
        }
    }
    Ok(ch)
}
