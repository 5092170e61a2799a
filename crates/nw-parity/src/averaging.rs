//! Runner for `averaging` fixtures (torch.optim.swa_utils.AveragedModel):
//! feed the model's `params[k]` and `buffers[k]` at each snapshot to a
//! [`WeightAverage`] (`avg` swa or ema with `decay`, `use_buffers`) and
//! compare its parameters and buffers with `expected[k]` and
//! `expected_buffers[k]` after each update.

use nw_optim::averaging::{Averaging, WeightAverage};
use nw_tensor::Tensor;
use serde_json::Value;

use crate::check::Checker;
use crate::fixture::{Case, CaseError, JsonTensor};

fn snapshots(case: &Case, key: &str) -> Result<Vec<Vec<JsonTensor>>, CaseError> {
    case.field(key)?
        .as_array()
        .ok_or_else(|| CaseError::Malformed(format!("{key} is not a list")))?
        .iter()
        .enumerate()
        .map(|(k, s)| {
            s.as_array()
                .ok_or_else(|| CaseError::Malformed(format!("{key}[{k}] is not a list")))?
                .iter()
                .enumerate()
                .map(|(i, t)| JsonTensor::from_value(t, &format!("{key}[{k}][{i}]")))
                .collect()
        })
        .collect()
}

/// Runs one `averaging` case.
pub fn run(case: &Case) -> Result<Checker, CaseError> {
    let (rtol, atol) = case.tolerances()?;
    let averaging = match case.str("avg")? {
        "swa" => Averaging::Swa,
        "ema" => Averaging::Ema { decay: case.f64("decay")? },
        a => return Err(CaseError::Unsupported(format!("avg {a:?}"))),
    };
    let use_buffers = case
        .field("use_buffers")?
        .as_bool()
        .ok_or_else(|| CaseError::Malformed("use_buffers is not a boolean".into()))?;
    let params = snapshots(case, "params")?;
    let buffers = match case.opt("buffers") {
        None | Some(Value::Null) => vec![Vec::new(); params.len()],
        Some(_) => snapshots(case, "buffers")?,
    };
    let expected = snapshots(case, "expected")?;
    let expected_buffers = match case.opt("expected_buffers") {
        None | Some(Value::Null) => vec![Vec::new(); params.len()],
        Some(_) => snapshots(case, "expected_buffers")?,
    };
    let k = params.len();
    if buffers.len() != k || expected.len() != k || expected_buffers.len() != k {
        return Err(CaseError::Malformed("params, buffers and expected differ in snapshot count".into()));
    }
    let mut avg = WeightAverage::new(averaging, use_buffers).map_err(|e| CaseError::Failed(e.to_string()))?;
    let mut ch = Checker::new(rtol, atol);
    let tensors = |ts: &[JsonTensor]| ts.iter().map(JsonTensor::to_tensor).collect::<Vec<Tensor>>();
    for s in 0..k {
        avg.update(&tensors(&params[s]), &tensors(&buffers[s]))
            .map_err(|e| CaseError::Failed(e.to_string()))?;
        let (got_p, got_b) = (avg.params(), avg.buffers());
        if got_p.len() != expected[s].len() || got_b.len() != expected_buffers[s].len() {
            return Err(CaseError::Malformed(format!(
                "snapshot {s}: expected counts differ from the model's"
            )));
        }
        for (i, (g, w)) in got_p.iter().zip(&expected[s]).enumerate() {
            ch.tensor(&format!("expected[{s}][{i}]"), g, w);
        }
        for (j, (g, w)) in got_b.iter().zip(&expected_buffers[s]).enumerate() {
            ch.tensor(&format!("expected_buffers[{s}][{j}]"), g, w);
        }
    }
    Ok(ch)
}
