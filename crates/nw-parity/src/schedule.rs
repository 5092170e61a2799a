//! Runner for `lr_schedule` fixtures: build the named torch.optim.lr_scheduler
//! from `schedule`, read the rate before each step (feeding `metrics[i]` to
//! ReduceLROnPlateau), compare with `expected_lr`. A case with
//! `cycle_momentum` builds its `optimizer` from `hyper`, applies the schedule
//! to it before each step and compares the optimizer's momentum with
//! `expected_momentum[i]` (SGD) or beta1 with `expected_betas[i][0]` (Adam;
//! beta2 is not cycled, and nw's optimizers expose only the cycled value).

use nw_autograd::Param;
use nw_optim::schedule::{
    Anneal, CyclicMode, LrSchedule, MomentumCycle, PlateauConfig, PlateauMode, ReduceLrOnPlateau, Schedule,
    Scheduler, ThresholdMode,
};
use nw_tensor::Tensor;
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

/// torch's `cycle_momentum` (default true) with `base_momentum` and
/// `max_momentum` (defaults `base`, `max`).
fn momentum_cycle(h: &Value, base: f64, max: f64) -> Result<Option<MomentumCycle>, CaseError> {
    if !hyper_bool(h, "cycle_momentum", true)? {
        return Ok(None);
    }
    Ok(Some(MomentumCycle {
        base_momentum: hyper_f64(h, "base_momentum", base)?,
        max_momentum: hyper_f64(h, "max_momentum", max)?,
    }))
}

fn anneal_of(h: &Value, what: &str) -> Result<Anneal, CaseError> {
    match string(h, "anneal_strategy", "cos")? {
        "cos" => Ok(Anneal::Cos),
        "linear" => Ok(Anneal::Linear),
        a => Err(CaseError::Unsupported(format!("{what} anneal_strategy {a:?}"))),
    }
}

fn sub_schedules(h: &Value, what: &str) -> Result<Vec<Schedule>, CaseError> {
    h.get("schedulers")
        .and_then(Value::as_array)
        .ok_or_else(|| CaseError::Malformed(format!("{what}: schedulers is not a list")))?
        .iter()
        .map(parse)
        .collect()
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
                "base_momentum",
                "max_momentum",
            ])?;
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
                cycle_momentum: momentum_cycle(h, 0.8, 0.9)?,
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
                "base_momentum",
                "max_momentum",
            ])?;
            let anneal_strategy = anneal_of(h, "OneCycleLR")?;
            Schedule::OneCycle {
                max_lr: hyper_f64(h, "max_lr", f64::NAN)?,
                total_steps: usize_of(h, "total_steps", None)?,
                pct_start: hyper_f64(h, "pct_start", 0.3)?,
                anneal_strategy,
                div_factor: hyper_f64(h, "div_factor", 25.0)?,
                final_div_factor: hyper_f64(h, "final_div_factor", 1e4)?,
                three_phase: hyper_bool(h, "three_phase", false)?,
                cycle_momentum: momentum_cycle(h, 0.85, 0.95)?,
            }
        }
        "SequentialLR" => {
            known(&["schedulers", "milestones"])?;
            Schedule::Sequential {
                schedules: sub_schedules(h, "SequentialLR")?,
                milestones: usizes(h, "milestones")?,
            }
        }
        "ChainedScheduler" => {
            known(&["schedulers"])?;
            Schedule::Chained { schedules: sub_schedules(h, "ChainedScheduler")? }
        }
        "MultiplicativeLR" => {
            known(&["factor"])?;
            Schedule::Multiplicative { factor: hyper_f64(h, "factor", f64::NAN)? }
        }
        "SWALR" => {
            known(&["swa_lr", "anneal_epochs", "anneal_strategy"])?;
            Schedule::Swa {
                swa_lr: hyper_f64(h, "swa_lr", f64::NAN)?,
                anneal_epochs: usize_of(h, "anneal_epochs", Some(10))?,
                anneal_strategy: anneal_of(h, "SWALR")?,
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
        let momenta = expected_momenta(case, steps)?;
        let mut opt = match (&momenta, case.opt("optimizer")) {
            (Some(_), Some(name)) => {
                let name =
                    name.as_str().ok_or_else(|| CaseError::Malformed("optimizer is not a string".into()))?;
                let mut hyper = case.opt("hyper").cloned().unwrap_or(Value::Null);
                if let Value::Object(m) = &mut hyper {
                    m.insert("lr".into(), Value::from(base_lr));
                }
                let w = Param::new(Tensor::zeros(&[1]));
                Some(crate::optimizer::build(name, &hyper, vec![w])?)
            }
            (Some(_), None) => {
                return Err(CaseError::Malformed("expected momenta without an optimizer".into()));
            }
            (None, _) => None,
        };
        if s.schedule().cycles_momentum() && opt.is_none() {
            return Err(CaseError::Malformed("cycle_momentum without expected momenta".into()));
        }
        for (i, &w) in want.iter().enumerate() {
            ch.scalar(&format!("lr[{i}]"), s.lr(), w);
            if let (Some(opt), Some(m)) = (opt.as_mut(), &momenta) {
                s.apply(opt.as_mut()).map_err(fail)?;
                let got = opt
                    .momentum()
                    .ok_or_else(|| CaseError::Failed(format!("{} has no momentum", opt.name())))?;
                ch.scalar(&format!("momentum[{i}]"), got, m[i]);
                ch.scalar(&format!("optimizer lr[{i}]"), opt.lr(), w);
            }
            if i + 1 < steps {
                s.step().map_err(fail)?;
            }
        }
    }
    Ok(ch)
}

/// `expected_momentum[i]` (SGD's momentum) or `expected_betas[i][0]` (beta1),
/// one per step, when the case has either.
fn expected_momenta(case: &Case, steps: usize) -> Result<Option<Vec<f64>>, CaseError> {
    let list = |key: &str| -> Result<Option<&Vec<Value>>, CaseError> {
        match case.opt(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                v.as_array().map(Some).ok_or_else(|| CaseError::Malformed(format!("{key} is not a list")))
            }
        }
    };
    let num =
        |v: &Value, key: &str| v.as_f64().ok_or_else(|| CaseError::Malformed(format!("{key} holds {v}")));
    let out: Vec<f64> = match (list("expected_momentum")?, list("expected_betas")?) {
        (Some(_), Some(_)) => {
            return Err(CaseError::Malformed("both expected_momentum and expected_betas".into()));
        }
        (Some(m), None) => m.iter().map(|v| num(v, "expected_momentum")).collect::<Result<_, _>>()?,
        (None, Some(b)) => b
            .iter()
            .map(|v| {
                let pair = v.as_array().filter(|p| p.len() == 2);
                pair.ok_or_else(|| CaseError::Malformed(format!("expected_betas holds {v}")))
                    .and_then(|p| num(&p[0], "expected_betas"))
            })
            .collect::<Result<_, _>>()?,
        (None, None) => return Ok(None),
    };
    if out.len() != steps {
        return Err(CaseError::Malformed(format!("steps = {steps} but {} expected momenta", out.len())));
    }
    Ok(Some(out))
}
