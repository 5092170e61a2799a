//! Runner for `lr_schedule` fixtures: build the named torch.optim.lr_scheduler
//! from `schedule`, read the rate before each step (feeding `metrics[i]` to
//! ReduceLROnPlateau), compare with `expected_lr`.

use nw_optim::schedule::{
    Anneal, CyclicMode, PlateauConfig, PlateauMode, ReduceLrOnPlateau, Schedule, Scheduler, ThresholdMode,
};
use serde_json::Value;

use crate::check::Checker;
use crate::fixture::{Case, CaseError, hyper_bool, hyper_f64, reject_unknown};

fn usize_of(h: &Value, key: &str, default: Option<usize>) -> Result<usize, CaseError> {
    match h.get(key) {
        None | Some(Value::Null) => default.ok_or_else(|| CaseError::Malformed(format!("missing {key:?}"))),
        Some(v) => v
            .as_u64()
            .map(|x| x as usize)
            .ok_or_else(|| CaseError::Malformed(format!("{key:?} is not a non-negative integer"))),
    }
}

fn usizes(h: &Value, key: &str) -> Result<Vec<usize>, CaseError> {
    h.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| CaseError::Malformed(format!("{key:?} is not a list")))?
        .iter()
        .map(|v| v.as_u64().map(|x| x as usize).ok_or_else(|| CaseError::Malformed(format!("{key:?}: {v}"))))
        .collect()
}

fn string<'a>(h: &'a Value, key: &str, default: &'a str) -> Result<&'a str, CaseError> {
    match h.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_str().ok_or_else(|| CaseError::Malformed(format!("{key:?} is not a string"))),
    }
}

/// Parses a schedule object (anything but ReduceLROnPlateau) with torch's defaults.
pub fn parse(h: &Value) -> Result<Schedule, CaseError> {
    let name = h
        .get("scheduler")
        .and_then(Value::as_str)
        .ok_or_else(|| CaseError::Malformed("no scheduler".into()))?;
    let what = format!("scheduler {name}");
    let known = |keys: &[&str]| {
        let mut all = vec!["scheduler"];
        all.extend_from_slice(keys);
        reject_unknown(h, &all, &what)
    };
    Ok(match name {
        "ConstantLR" => {
            known(&["factor", "total_iters"])?;
            Schedule::Constant {
                factor: hyper_f64(h, "factor", 1.0 / 3.0)?,
                total_iters: usize_of(h, "total_iters", Some(5))?,
            }
        }
        "StepLR" => {
            known(&["step_size", "gamma"])?;
            Schedule::Step { step_size: usize_of(h, "step_size", None)?, gamma: hyper_f64(h, "gamma", 0.1)? }
        }
        "MultiStepLR" => {
            known(&["milestones", "gamma"])?;
            Schedule::MultiStep { milestones: usizes(h, "milestones")?, gamma: hyper_f64(h, "gamma", 0.1)? }
        }
        "ExponentialLR" => {
            known(&["gamma"])?;
            Schedule::Exponential { gamma: hyper_f64(h, "gamma", f64::NAN)? }
        }
        "CosineAnnealingLR" => {
            known(&["T_max", "eta_min"])?;
            Schedule::CosineAnnealing {
                t_max: usize_of(h, "T_max", None)?,
                eta_min: hyper_f64(h, "eta_min", 0.0)?,
            }
        }
        "CosineAnnealingWarmRestarts" => {
            known(&["T_0", "T_mult", "eta_min"])?;
            Schedule::CosineWarmRestarts {
                t_0: usize_of(h, "T_0", None)?,
                t_mult: usize_of(h, "T_mult", Some(1))?,
                eta_min: hyper_f64(h, "eta_min", 0.0)?,
            }
        }
        "LinearLR" => {
            known(&["start_factor", "end_factor", "total_iters"])?;
            Schedule::Linear {
                start_factor: hyper_f64(h, "start_factor", 1.0 / 3.0)?,
                end_factor: hyper_f64(h, "end_factor", 1.0)?,
                total_iters: usize_of(h, "total_iters", Some(5))?,
            }
        }
        "PolynomialLR" => {
            known(&["total_iters", "power"])?;
            Schedule::Polynomial {
                total_iters: usize_of(h, "total_iters", Some(5))?,
                power: hyper_f64(h, "power", 1.0)?,
            }
        }
        "CyclicLR" => {
            known(&[
                "base_lr",
                "max_lr",
                "step_size_up",
                "step_size_down",
                "mode",
                "gamma",
                "cycle_momentum",
            ])?;
            if hyper_bool(h, "cycle_momentum", true)? {
                return Err(CaseError::Unsupported(
                    "CyclicLR cycle_momentum=True (nw cycles only the rate)".into(),
                ));
            }
            let mode = match string(h, "mode", "triangular")? {
                "triangular" => CyclicMode::Triangular,
                "triangular2" => CyclicMode::Triangular2,
                "exp_range" => CyclicMode::ExpRange,
                m => return Err(CaseError::Unsupported(format!("CyclicLR mode {m:?}"))),
            };
            Schedule::Cyclic {
                base_lr: hyper_f64(h, "base_lr", f64::NAN)?,
                max_lr: hyper_f64(h, "max_lr", f64::NAN)?,
                step_size_up: usize_of(h, "step_size_up", Some(2000))?,
                step_size_down: match h.get("step_size_down") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(usize_of(h, "step_size_down", None)?),
                },
                mode,
                gamma: hyper_f64(h, "gamma", 1.0)?,
            }
        }
        "OneCycleLR" => {
            known(&[
                "max_lr",
                "total_steps",
                "pct_start",
                "anneal_strategy",
                "div_factor",
                "final_div_factor",
                "three_phase",
                "cycle_momentum",
            ])?;
            if hyper_bool(h, "cycle_momentum", true)? {
                return Err(CaseError::Unsupported(
                    "OneCycleLR cycle_momentum=True (nw cycles only the rate)".into(),
                ));
            }
            let anneal_strategy = match string(h, "anneal_strategy", "cos")? {
                "cos" => Anneal::Cos,
                "linear" => Anneal::Linear,
                a => return Err(CaseError::Unsupported(format!("OneCycleLR anneal_strategy {a:?}"))),
            };
            Schedule::OneCycle {
                max_lr: hyper_f64(h, "max_lr", f64::NAN)?,
                total_steps: usize_of(h, "total_steps", None)?,
                pct_start: hyper_f64(h, "pct_start", 0.3)?,
                anneal_strategy,
                div_factor: hyper_f64(h, "div_factor", 25.0)?,
                final_div_factor: hyper_f64(h, "final_div_factor", 1e4)?,
                three_phase: hyper_bool(h, "three_phase", false)?,
            }
        }
        "SequentialLR" => {
            known(&["schedulers", "milestones"])?;
            let subs = h
                .get("schedulers")
                .and_then(Value::as_array)
                .ok_or_else(|| CaseError::Malformed("SequentialLR: schedulers is not a list".into()))?;
            Schedule::Sequential {
                schedules: subs.iter().map(parse).collect::<Result<_, _>>()?,
                milestones: usizes(h, "milestones")?,
            }
        }
        other => return Err(CaseError::Unsupported(format!("scheduler {other:?}"))),
    })
}

fn plateau(h: &Value, lr: f64) -> Result<ReduceLrOnPlateau, CaseError> {
    reject_unknown(
        h,
        &[
            "scheduler",
            "mode",
            "factor",
            "patience",
            "threshold",
            "threshold_mode",
            "cooldown",
            "min_lr",
            "eps",
        ],
        "scheduler ReduceLROnPlateau",
    )?;
    let d = PlateauConfig::default();
    let config = PlateauConfig {
        mode: match string(h, "mode", "min")? {
            "min" => PlateauMode::Min,
            "max" => PlateauMode::Max,
            m => return Err(CaseError::Malformed(format!("ReduceLROnPlateau mode {m:?}"))),
        },
        factor: hyper_f64(h, "factor", d.factor)?,
        patience: usize_of(h, "patience", Some(d.patience))?,
        threshold: hyper_f64(h, "threshold", d.threshold)?,
        threshold_mode: match string(h, "threshold_mode", "rel")? {
            "rel" => ThresholdMode::Rel,
            "abs" => ThresholdMode::Abs,
            m => return Err(CaseError::Malformed(format!("ReduceLROnPlateau threshold_mode {m:?}"))),
        },
        cooldown: usize_of(h, "cooldown", Some(d.cooldown))?,
        min_lr: hyper_f64(h, "min_lr", d.min_lr)?,
        eps: hyper_f64(h, "eps", d.eps)?,
    };
    ReduceLrOnPlateau::new(config, lr).map_err(|e| CaseError::Failed(e.to_string()))
}

/// Runs one `lr_schedule` case.
pub fn run(case: &Case) -> Result<Checker, CaseError> {
    let (rtol, atol) = case.tolerances()?;
    let base_lr = case.f64("base_lr")?;
    let h = case.field("schedule")?;
    let want: Vec<f64> = case
        .field("expected_lr")?
        .as_array()
        .ok_or_else(|| CaseError::Malformed("expected_lr is not a list".into()))?
        .iter()
        .map(|v| v.as_f64().ok_or_else(|| CaseError::Malformed("expected_lr holds a non-number".into())))
        .collect::<Result<_, _>>()?;
    let steps = case.f64("steps")? as usize;
    if steps != want.len() {
        return Err(CaseError::Malformed(format!("steps = {steps} but {} expected rates", want.len())));
    }
    let fail = |e: nw_optim::OptimError| CaseError::Failed(e.to_string());
    let mut ch = Checker::new(rtol, atol);
    if h.get("scheduler").and_then(Value::as_str) == Some("ReduceLROnPlateau") {
        let metrics: Vec<f64> = case
            .field("metrics")?
            .as_array()
            .ok_or_else(|| CaseError::Malformed("metrics is not a list".into()))?
            .iter()
            .map(|v| v.as_f64().ok_or_else(|| CaseError::Malformed("metrics holds a non-number".into())))
            .collect::<Result<_, _>>()?;
        if metrics.len() != steps {
            return Err(CaseError::Malformed("needs one metric per step".into()));
        }
        let mut s = plateau(h, base_lr)?;
        for (i, (&w, &m)) in want.iter().zip(&metrics).enumerate() {
            ch.scalar(&format!("lr[{i}]"), s.lr(), w);
            s.step(m);
        }
    } else {
        let mut s = Scheduler::new(parse(h)?, base_lr).map_err(fail)?;
        for (i, &w) in want.iter().enumerate() {
            ch.scalar(&format!("lr[{i}]"), s.lr(), w);
            if i + 1 < steps {
                s.step().map_err(fail)?;
            }
        }
    }
    Ok(ch)
}
