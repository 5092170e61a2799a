//! Layer ops of the second reference set (`layers2.json`) that have no arm
//! in the first runner: transposed convolution, group and instance
//! normalisation, upsampling. The first runner's arms for pooling, embedding
//! and `bce_with_logits` read the new keys (`ceil_mode`, `padding_idx`,
//! `pos_weight`) themselves.

use nw_nn::{ConvTranspose2d, GroupNorm, InstanceNorm2d, Upsample, UpsampleSize};
use nw_tensor::conv::ConvTranspose2dSpec;
use nw_tensor::upsample::UpsampleMode;

use super::{CONV_ACCUMULATION, Run, failed, int, leaf, module_case, need, pair};
use crate::fixture::{CaseError, JsonTensor, hyper_bool, hyper_f64, reject_unknown};
use serde_json::Value;
use std::collections::BTreeMap;

/// Builds a case of one of this module's ops, or `None` for any other op.
pub(super) fn build(
    op: &str,
    h: &Value,
    inputs: &BTreeMap<String, JsonTensor>,
    params: &BTreeMap<String, JsonTensor>,
) -> Result<Option<Run>, CaseError> {
    let x = || need(inputs, "x", "inputs");
    let run = match op {
        "conv_transpose2d" => {
            reject_unknown(h, &["stride", "padding", "output_padding", "groups", "dilation"], op)?;
            let spec = ConvTranspose2dSpec {
                stride: pair(h, "stride", 1)?,
                padding: pair(h, "padding", 0)?,
                output_padding: pair(h, "output_padding", 0)?,
                dilation: pair(h, "dilation", 1)?,
                groups: int(h, "groups", 1)?,
                accumulation: CONV_ACCUMULATION,
            };
            let w = need(params, "weight", "params")?.to_tensor();
            let m = ConvTranspose2d::from_tensors(w, params.get("bias").map(JsonTensor::to_tensor), spec)
                .map_err(failed)?;
            module_case(&m, leaf(x()?), params)?
        }
        "group_norm" => {
            reject_unknown(h, &["num_groups", "eps", "affine"], op)?;
            let xj = x()?;
            let c = channels(op, xj)?;
            let groups = int(h, "num_groups", 0)?;
            let m = GroupNorm::with_options(
                groups,
                c,
                hyper_f64(h, "eps", 1e-5)? as f32,
                hyper_bool(h, "affine", true)?,
            )
            .map_err(failed)?;
            module_case(&m, leaf(xj), params)?
        }
        "instance_norm" => {
            reject_unknown(h, &["eps", "affine"], op)?;
            let xj = x()?;
            // InstanceNorm2d: [N, C, H, W], or unbatched [C, H, W]
            let c = match xj.shape.len() {
                3 => xj.shape[0],
                _ => channels(op, xj)?,
            };
            let m = InstanceNorm2d::with_options(
                c,
                hyper_f64(h, "eps", 1e-5)? as f32,
                hyper_bool(h, "affine", false)?,
            );
            module_case(&m, leaf(xj), params)?
        }
        "upsample" => {
            reject_unknown(h, &["mode", "scale_factor", "size", "align_corners"], op)?;
            let mode = match h.get("mode").and_then(Value::as_str) {
                Some("nearest") => {
                    if h.get("align_corners").is_some_and(|v| !v.is_null()) {
                        return Err(CaseError::Malformed("nearest upsampling takes no align_corners".into()));
                    }
                    UpsampleMode::Nearest
                }
                Some("bilinear") => {
                    UpsampleMode::Bilinear { align_corners: hyper_bool(h, "align_corners", false)? }
                }
                other => return Err(CaseError::Unsupported(format!("upsample mode {other:?}"))),
            };
            let size = match (
                h.get("size").filter(|v| !v.is_null()),
                h.get("scale_factor").filter(|v| !v.is_null()),
            ) {
                (Some(_), None) => {
                    let (a, b) = pair(h, "size", 0)?;
                    UpsampleSize::Size(a, b)
                }
                (None, Some(f)) => {
                    let (a, b) = factor_pair(f)?;
                    UpsampleSize::ScaleFactor(a, b)
                }
                _ => {
                    return Err(CaseError::Malformed(
                        "upsample needs exactly one of size and scale_factor".into(),
                    ));
                }
            };
            module_case(&Upsample { size, mode }, leaf(x()?), params)?
        }
        _ => return Ok(None),
    };
    Ok(Some(run))
}

/// The channel count `C` of an input `[N, C, ...]`.
fn channels(op: &str, x: &JsonTensor) -> Result<usize, CaseError> {
    x.shape
        .get(1)
        .copied()
        .ok_or_else(|| CaseError::Malformed(format!("{op} input {:?} has no channels", x.shape)))
}

/// A scale factor given as one number or a pair.
fn factor_pair(v: &Value) -> Result<(f64, f64), CaseError> {
    let num = |v: &Value| v.as_f64().ok_or_else(|| CaseError::Malformed(format!("scale_factor {v}")));
    match v {
        Value::Array(a) if a.len() == 2 => Ok((num(&a[0])?, num(&a[1])?)),
        v => {
            let f = num(v)?;
            Ok((f, f))
        }
    }
}
