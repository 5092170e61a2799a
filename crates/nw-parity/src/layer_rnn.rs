//! Recurrent cases of the `layer` runner (`lstm`, `gru`, `rnn_tanh`,
//! `rnn_relu`): builds the stack from `hyper` (`input_size`, `hidden_size`,
//! `num_layers`, `bias`, `batch_first`, `bidirectional`), sets every
//! parameter, runs it from the optional differentiated initial states
//! `h0`/`c0` and returns `output`, `h_n` and (LSTM) `c_n`.

use std::collections::BTreeMap;

use nw_autograd::Param;
use nw_nn::{Gru, Lstm, Module, Rnn, RnnConfig, RnnNonlinearity, RnnOutput, RnnState};
use nw_tensor::Rng;
use serde_json::Value;

use crate::fixture::{CaseError, JsonTensor, hyper_bool, reject_unknown};
use crate::layer::{Run, failed, int, leaf, need, set_param};

/// Builds and runs one recurrent case.
pub(crate) fn recurrent_case(
    op: &str,
    h: &Value,
    inputs: &BTreeMap<String, JsonTensor>,
    params: &BTreeMap<String, JsonTensor>,
) -> Result<Run, CaseError> {
    reject_unknown(
        h,
        &["input_size", "hidden_size", "batch_first", "num_layers", "bias", "bidirectional"],
        op,
    )?;
    let cfg = RnnConfig::new(int(h, "input_size", 0)?, int(h, "hidden_size", 0)?)
        .batch_first(hyper_bool(h, "batch_first", false)?)
        .num_layers(int(h, "num_layers", 1)?)
        .bias(hyper_bool(h, "bias", true)?)
        .bidirectional(hyper_bool(h, "bidirectional", false)?);
    // the weights are all overwritten below; the generator only fills them first
    let mut rng = Rng::new(0);
    let x = leaf(need(inputs, "x", "inputs")?);
    // optional initial states, differentiated like the input
    let h0 = inputs.get("h0").map(leaf);
    let c0 = inputs.get("c0").map(leaf);
    if h0.is_none() && c0.is_some() {
        return Err(CaseError::Malformed(format!("{op}: c0 without h0")));
    }
    let state = h0.clone().map(|h| RnnState { h, c: c0.clone() });
    let run = |m: &dyn Module, fwd: &dyn Fn() -> nw_nn::Result<RnnOutput>| {
        let set = set_all(m, params)?;
        // every parameter of the layer must have been given by the case
        if set.len() != m.named_parameters().len() {
            return Err(CaseError::Malformed(format!(
                "{op}: params {:?} do not cover the layer's {:?}",
                params.keys().collect::<Vec<_>>(),
                m.named_parameters().into_iter().map(|(n, _)| n).collect::<Vec<_>>()
            )));
        }
        Ok((set, fwd().map_err(failed)?))
    };
    let (set, out) = match op {
        "lstm" => {
            let m = Lstm::new(cfg, &mut rng).map_err(failed)?;
            run(&m, &|| m.forward_with_state(&x, state.as_ref()))?
        }
        "gru" => {
            let m = Gru::new(cfg, &mut rng).map_err(failed)?;
            run(&m, &|| m.forward_with_state(&x, state.as_ref()))?
        }
        "rnn_tanh" | "rnn_relu" => {
            let nl = if op == "rnn_relu" { RnnNonlinearity::Relu } else { RnnNonlinearity::Tanh };
            let m = Rnn::new(cfg, nl, &mut rng).map_err(failed)?;
            run(&m, &|| m.forward_with_state(&x, state.as_ref()))?
        }
        _ => return Err(CaseError::Unsupported(format!("recurrent op {op:?}"))),
    };
    let mut outputs = vec![("output".to_string(), out.output), ("h_n".to_string(), out.h_n)];
    if let Some(c) = out.c_n {
        outputs.push(("c_n".to_string(), c));
    }
    let mut ins = vec![("x".to_string(), x)];
    ins.extend(h0.map(|h| ("h0".to_string(), h)));
    ins.extend(c0.map(|c| ("c0".to_string(), c)));
    Ok(Run { outputs, inputs: ins, params: set, ..Run::default() })
}

/// Whether `name` already carries PyTorch's layer suffix: `_l<k>` or
/// `_l<k>_reverse` at its end.
fn has_layer_suffix(name: &str) -> bool {
    let base = name.strip_suffix("_reverse").unwrap_or(name);
    base.rsplit_once("_l").is_some_and(|(_, k)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
}

/// Sets each fixture parameter into the module: torch's full names
/// (`weight_ih_l1`, `bias_hh_l0_reverse`) as they are, the first reference
/// set's short ones (`weight_ih`) as layer 0's forward direction.
fn set_all(m: &dyn Module, params: &BTreeMap<String, JsonTensor>) -> Result<Vec<(String, Param)>, CaseError> {
    params
        .iter()
        .map(|(name, t)| {
            let full = if has_layer_suffix(name) { name.clone() } else { format!("{name}_l0") };
            Ok((name.clone(), set_param(m, &full, t)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::has_layer_suffix;

    #[test]
    fn layer_suffixes() {
        assert!(has_layer_suffix("weight_ih_l0"));
        assert!(has_layer_suffix("bias_hh_l12_reverse"));
        assert!(!has_layer_suffix("weight_ih"));
        assert!(!has_layer_suffix("weight_ih_reverse"));
        assert!(!has_layer_suffix("weight_ih_l"));
        assert!(!has_layer_suffix("weight_ih_lx"));
    }
}
