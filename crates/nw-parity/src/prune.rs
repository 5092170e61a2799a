//! Runner for the pruning cases of `clip_prune.json`:
//! `prune_l1_unstructured` (torch `prune.l1_unstructured` on one tensor) and
//! `prune_global_l1_unstructured` (torch `prune.global_unstructured` with
//! `L1Unstructured` over all the case's tensors). Each case gives `weights`
//! and `hyper.amount` (a JSON float is a fraction, a JSON integer a count,
//! as in torch) and the expected 0/1 `expected_masks`, compared exactly
//! unless the case carries its own `rtol`/`atol`.

use nw_reg::prune::{Amount, global_l1_unstructured_masks, l1_unstructured_mask};
use serde_json::Value;

use crate::check::Checker;
use crate::fixture::{Case, CaseError, JsonTensor, reject_unknown};

/// Runs one prune case; `op` is the case's `op` field.
pub fn run_prune(case: &Case, op: &str) -> Result<Checker, CaseError> {
    let hyper = case.field("hyper")?;
    reject_unknown(hyper, &["amount"], op)?;
    let amount =
        amount_of(hyper.get("amount").ok_or_else(|| CaseError::Malformed("hyper has no amount".into()))?)?;
    let weights = tensors(case, "weights")?;
    let expected = tensors(case, "expected_masks")?;
    if weights.len() != expected.len() {
        return Err(CaseError::Malformed(format!(
            "{} weights but {} expected masks",
            weights.len(),
            expected.len()
        )));
    }
    let ws: Vec<nw_tensor::Tensor> = weights.iter().map(JsonTensor::to_tensor).collect();
    let masks = match op {
        "prune_l1_unstructured" => {
            if ws.len() != 1 {
                return Err(CaseError::Malformed(format!(
                    "{op} takes one tensor, the case has {}",
                    ws.len()
                )));
            }
            vec![l1_unstructured_mask(&ws[0], amount).map_err(|e| CaseError::Failed(e.to_string()))?]
        }
        "prune_global_l1_unstructured" => {
            let refs: Vec<&nw_tensor::Tensor> = ws.iter().collect();
            global_l1_unstructured_masks(&refs, amount).map_err(|e| CaseError::Failed(e.to_string()))?
        }
        other => return Err(CaseError::Unsupported(format!("prune op {other:?}"))),
    };
    let (rtol, atol) = match (case.opt("rtol"), case.opt("atol")) {
        (None, None) => (0.0, 0.0),
        _ => case.tolerances()?,
    };
    let mut checker = Checker::new(rtol, atol);
    for (i, (m, want)) in masks.iter().zip(&expected).enumerate() {
        checker.tensor(&format!("expected_masks[{i}]"), m, want);
    }
    Ok(checker)
}

/// A JSON integer is a count of weights, a JSON float a fraction (torch
/// distinguishes `amount=3` from `amount=0.3` by type the same way).
fn amount_of(v: &Value) -> Result<Amount, CaseError> {
    if let Some(c) = v.as_u64() {
        return Ok(Amount::Count(c as usize));
    }
    v.as_f64()
        .map(Amount::Fraction)
        .ok_or_else(|| CaseError::Malformed(format!("amount {v} is not a number")))
}

fn tensors(case: &Case, key: &str) -> Result<Vec<JsonTensor>, CaseError> {
    let arr =
        case.field(key)?.as_array().ok_or_else(|| CaseError::Malformed(format!("{key:?} is not a list")))?;
    arr.iter().enumerate().map(|(i, v)| JsonTensor::from_value(v, &format!("{key}[{i}]"))).collect()
}
