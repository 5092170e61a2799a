//! The `init` runner: samples an initialiser for the case's `shape` and
//! compares the fans with `fan_in`/`fan_out` (exactly), the sample standard
//! deviation with `expected_std`, and, for uniform schemes, every value
//! with `expected_bound`.
//!
//! Tolerance for the standard deviation: the shape is drawn repeatedly
//! until at least [`MIN_SAMPLES`] values are collected. The relative
//! standard error of a sample standard deviation is about
//! `sqrt((kurtosis - 1) / (4 n))`: `1 / sqrt(2n)` = 0.14% for a normal
//! (kurtosis 3) and less for a uniform (kurtosis 1.8), so the 1% tolerance
//! used here is about seven standard errors: a correct scheme passes for
//! any seed, while a wrong gain or fan (sqrt(2), sqrt(3), or fan_in vs
//! fan_out: off by 10% or more) fails.

use nw_nn::init::{self, FanMode, Nonlinearity};
use nw_tensor::{Rng, Tensor};
use serde_json::Value;

use crate::check::Checker;
use crate::fixture::{Case, CaseError, hyper_f64, reject_unknown};

/// Values sampled per case (the shape is drawn repeatedly to reach it).
pub const MIN_SAMPLES: usize = 1 << 18;

/// Relative tolerance on the sample standard deviation (see the module docs).
pub const STD_RTOL: f64 = 0.01;

fn hyper_str<'a>(h: &'a Value, key: &str, default: &'a str) -> Result<&'a str, CaseError> {
    match h.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_str().ok_or_else(|| CaseError::Malformed(format!("hyper {key:?} is not a string"))),
    }
}

fn bad(e: impl std::fmt::Display) -> CaseError {
    CaseError::Failed(e.to_string())
}

/// One draw of the scheme, and whether it is a uniform one.
fn draw(scheme: &str, h: &Value, shape: &[usize], rng: &mut Rng) -> Result<(Tensor, bool), CaseError> {
    let kaiming = |h: &Value| -> Result<(f64, FanMode, Nonlinearity), CaseError> {
        reject_unknown(h, &["a", "mode", "nonlinearity"], scheme)?;
        let a = hyper_f64(h, "a", 0.0)?;
        let mode = FanMode::parse(hyper_str(h, "mode", "fan_in")?)
            .map_err(|e| CaseError::Unsupported(e.to_string()))?;
        let nl = Nonlinearity::parse(hyper_str(h, "nonlinearity", "leaky_relu")?)
            .map_err(|e| CaseError::Unsupported(e.to_string()))?;
        Ok((a, mode, nl))
    };
    Ok(match scheme {
        "xavier_uniform" | "xavier_normal" => {
            reject_unknown(h, &["gain"], scheme)?;
            let gain = hyper_f64(h, "gain", 1.0)?;
            if scheme == "xavier_uniform" {
                (init::xavier_uniform(shape, gain, rng).map_err(bad)?, true)
            } else {
                (init::xavier_normal(shape, gain, rng).map_err(bad)?, false)
            }
        }
        "kaiming_uniform" => {
            let (a, m, nl) = kaiming(h)?;
            (init::kaiming_uniform(shape, a, m, nl, rng).map_err(bad)?, true)
        }
        "kaiming_normal" => {
            let (a, m, nl) = kaiming(h)?;
            (init::kaiming_normal(shape, a, m, nl, rng).map_err(bad)?, false)
        }
        "lecun_normal" => {
            reject_unknown(h, &[], scheme)?;
            (init::lecun_normal(shape, rng).map_err(bad)?, false)
        }
        _ => return Err(CaseError::Unsupported(format!("init scheme {scheme:?}"))),
    })
}

/// Runs one `init` case.
pub fn run(case: &Case) -> Result<Checker, CaseError> {
    let scheme = case.str("scheme")?;
    let h = case.field("hyper")?;
    let shape: Vec<usize> = serde_json::from_value(case.field("shape")?.clone())
        .map_err(|e| CaseError::Malformed(format!("shape: {e}")))?;
    let mut ch = Checker::new(STD_RTOL, 0.0);
    let (fi, fo) = init::calculate_fan_in_and_fan_out(&shape).map_err(bad)?;
    ch.scalar("fan_in", fi as f64, case.f64("fan_in")?);
    ch.scalar("fan_out", fo as f64, case.f64("fan_out")?);

    let mut rng = Rng::new(0x1417);
    let per_draw: usize = shape.iter().product::<usize>().max(1);
    let draws = MIN_SAMPLES.div_ceil(per_draw);
    let (mut s, mut s2, mut n, mut max_abs) = (0.0f64, 0.0f64, 0usize, 0.0f64);
    let mut uniform = false;
    for _ in 0..draws {
        let (t, u) = draw(scheme, h, &shape, &mut rng)?;
        uniform = u;
        for v in t.to_vec() {
            let v = v as f64;
            s += v;
            s2 += v * v;
            n += 1;
            max_abs = max_abs.max(v.abs());
        }
    }
    let mean = s / n as f64;
    let std = ((s2 - n as f64 * mean * mean) / (n as f64 - 1.0)).sqrt();
    ch.scalar("std", std, case.f64("expected_std")?);
    match case.opt("expected_bound").and_then(Value::as_f64) {
        Some(bound) => {
            // a uniform sample must stay inside the bound, and come near it
            // (within 1% of it: the chance a draw of 2^18 misses the top 1%
            // band is below e^-2600)
            if max_abs > bound * (1.0 + 1e-6) {
                ch.problems.push(format!("max |value| {max_abs:.9} exceeds expected_bound {bound:.9}"));
            }
            ch.scalar("max_abs (vs bound)", max_abs, bound);
        }
        None if uniform => {
            return Err(CaseError::Malformed(format!("{scheme} case without expected_bound")));
        }
        None => {}
    }
    Ok(ch)
}
