//! Runner for `optimizer` fixtures: build the named torch.optim optimizer
//! from `hyper`, feed `grads[k]`, compare the parameters with `expected[k]`
//! after every step (and, where a case has `expected_ax`, ASGD's averaged
//! parameters, read from the optimizer's state dict as `state.0.{i}.ax`).

use nw_autograd::{Grads, Param};
use nw_optim::{Optimizer, OptimizerConfig};
use serde_json::Value;

use crate::check::Checker;
use crate::fixture::{Case, CaseError, JsonTensor};

/// The registry's config for torch class `name` with the fixture's `hyper`
/// keywords (torch's names; a keyword nw does not know is an error naming it,
/// a missing one takes that optimizer's own default).
pub fn config(name: &str, h: &Value) -> Result<OptimizerConfig, CaseError> {
    let key = OptimizerConfig::canonical_name(name)
        .ok_or_else(|| CaseError::Unsupported(format!("optimizer {name:?}")))?;
    let mut obj = match h {
        Value::Object(m) => m.clone(),
        Value::Null => Default::default(),
        _ => return Err(CaseError::Malformed("hyper is not an object".into())),
    };
    obj.insert("name".into(), Value::String(key.into()));
    serde_json::from_value(Value::Object(obj))
        .map_err(|e| CaseError::Unsupported(format!("optimizer {name} with hyper {h}: {e}")))
}

/// Builds the optimizer a case names, with torch's defaults for unlisted keywords.
pub fn build(name: &str, h: &Value, params: Vec<Param>) -> Result<Box<dyn Optimizer>, CaseError> {
    config(name, h)?.build(params).map_err(|e| CaseError::Failed(e.to_string()))
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
    let expected_ax = match case.opt("expected_ax") {
        Some(v) => Some(steps(v, "expected_ax")?),
        None => None,
    };
    if expected_ax.as_ref().is_some_and(|a| a.len() != grads.len()) {
        return Err(CaseError::Malformed("expected_ax needs one entry per step".into()));
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
        if let Some(ax) = &expected_ax {
            let sd = opt.state_dict();
            for (i, w) in ax[k].iter().enumerate() {
                match sd.tensor(&format!("state.0.{i}.ax")) {
                    Some(t) => ch.tensor(&format!("step{k}.ax{i}"), t, w),
                    None => ch.problems.push(format!("step {k}: {name} has no state ax for parameter {i}")),
                }
            }
        }
    }
    Ok(ch)
}
