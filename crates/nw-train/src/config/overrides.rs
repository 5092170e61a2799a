//! Setting any key by its dotted path, listing every key, and range checks.

use serde_json::Value;

use super::{RunConfig, SCHEDULES, ScheduleConfig};
use crate::error::{Result, TrainError};
use nw_optim::{OPTIMIZERS, OptimizerConfig};

fn cfg_err(m: impl Into<String>) -> TrainError {
    TrainError::Config(m.into())
}

/// A TOML value as JSON; a bare word that is not TOML is a string.
fn parse_value(text: &str) -> Value {
    match toml::from_str::<toml::Table>(&format!("v = {text}")) {
        Ok(mut t) => {
            let v = t.remove("v").expect("the key just written");
            serde_json::to_value(v).unwrap_or(Value::String(text.into()))
        }
        Err(_) => Value::String(text.into()),
    }
}

fn keys_of(v: &Value) -> String {
    match v {
        Value::Object(m) => m.keys().cloned().collect::<Vec<_>>().join(", "),
        _ => String::new(),
    }
}

/// Whether a TOML value holds a NaN or an infinity (which JSON, the form
/// `set` edits the configuration in, cannot hold).
fn has_non_finite(text: &str) -> bool {
    fn walk(v: &toml::Value) -> bool {
        match v {
            toml::Value::Float(f) => !f.is_finite(),
            toml::Value::Array(a) => a.iter().any(walk),
            toml::Value::Table(t) => t.values().any(walk),
            _ => false,
        }
    }
    toml::from_str::<toml::Table>(&format!("v = {text}")).is_ok_and(|t| t.values().any(walk))
}

pub(super) fn set(cfg: &mut RunConfig, path: &str, text: &str) -> Result<()> {
    if has_non_finite(text) {
        return Err(cfg_err(format!("{path} = {text}: must be a finite number")));
    }
    let value = parse_value(text);
    let mut root = serde_json::to_value(&*cfg).expect("the configuration serialises");
    let parts: Vec<&str> = path.split('.').collect();
    let [section, rest @ ..] = parts.as_slice() else { return Err(cfg_err("an empty key")) };
    let Some(sec) = root.get_mut(*section) else {
        return Err(cfg_err(format!(
            "unknown section `{section}` in `{path}` (data, model, optim, schedule, reg, train)"
        )));
    };
    match (*section, rest) {
        ("optim", ["name"]) => {
            let name = value.as_str().unwrap_or_default();
            let c = OptimizerConfig::default_for(name).ok_or_else(|| {
                let names: Vec<&str> = OPTIMIZERS.iter().map(|(n, _)| *n).collect();
                cfg_err(format!("optim.name = {value}: unknown optimizer (one of {})", names.join(", ")))
            })?;
            *sec = serde_json::to_value(c).expect("serialises");
        }
        ("schedule", ["kind"]) => {
            let kind = value.as_str().unwrap_or_default();
            let c = ScheduleConfig::default_for(kind).ok_or_else(|| {
                if SCHEDULES.contains(&kind) {
                    cfg_err(format!("schedule.kind = {kind:?} needs its keys: give it in a config file or set them with --set after switching"))
                } else {
                    cfg_err(format!("schedule.kind = {value}: unknown schedule (one of {})", SCHEDULES.join(", ")))
                }
            })?;
            *sec = serde_json::to_value(c).expect("serialises");
        }
        (_, [key, sub @ ..]) => {
            let fields = keys_of(sec);
            let Some(slot) = sec.get_mut(*key) else {
                let what = match *section {
                    "optim" => format!("optimizer {}", cfg.optim.name()),
                    "schedule" => format!("schedule {}", cfg.schedule.kind()),
                    s => format!("section [{s}]"),
                };
                return Err(cfg_err(format!("unknown key `{path}`: {what} has {fields}")));
            };
            let mut slot = slot;
            for s in sub {
                slot = slot.get_mut(*s).ok_or_else(|| cfg_err(format!("unknown key `{path}` (no `{s}`)")))?;
            }
            *slot = value;
        }
        (_, []) if value.is_object() => *sec = value,
        (_, []) => {
            return Err(cfg_err(format!(
                "`{path}` is a section: set it to a table ({{ ... }}) or name one of its keys: {}",
                keys_of(sec)
            )));
        }
    }
    let new: RunConfig =
        serde_json::from_value(root).map_err(|e| cfg_err(format!("{path} = {text}: {e}")))?;
    *cfg = new.normalized();
    Ok(())
}

/// One configuration key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyInfo {
    /// Dotted path (`optim.lr`); for optimizer and schedule keys, the choice
    /// they belong to is in `choice`.
    pub path: String,
    /// `optim.name` or `schedule.kind` value the key belongs to (empty for the others).
    pub choice: String,
    /// The default value as TOML-ish text.
    pub default: String,
}

fn flatten(prefix: &str, choice: &str, v: &Value, out: &mut Vec<KeyInfo>) {
    if let Value::Object(m) = v {
        for (k, v) in m {
            out.push(KeyInfo {
                path: format!("{prefix}.{k}"),
                choice: choice.into(),
                default: v.to_string(),
            });
        }
    }
}

/// Every key a configuration has: the sections' keys, every optimizer's keys
/// (by `optim.name`) and every schedule's keys (by `schedule.kind`).
pub fn config_keys() -> Vec<KeyInfo> {
    let d = serde_json::to_value(RunConfig::default()).expect("serialises");
    let mut out = Vec::new();
    for s in ["data", "model", "reg", "train"] {
        flatten(s, "", &d[s], &mut out);
    }
    for (n, _) in OPTIMIZERS {
        let c = OptimizerConfig::default_for(n).expect("registered");
        flatten("optim", n, &serde_json::to_value(c).expect("serialises"), &mut out);
    }
    for k in SCHEDULES {
        let c = match *k {
            "multistep" => ScheduleConfig::Multistep { milestones: vec![], gamma: 0.1 },
            "custom" => ScheduleConfig::Custom {
                schedule: nw_optim::schedule::Schedule::Exponential { gamma: 1.0 },
                per_step: false,
            },
            k => ScheduleConfig::default_for(k).expect("has defaults"),
        };
        flatten("schedule", k, &serde_json::to_value(c).expect("serialises"), &mut out);
    }
    out
}

fn range(ok: bool, key: &str, value: impl std::fmt::Display, allowed: &str) -> Result<()> {
    if ok { Ok(()) } else { Err(cfg_err(format!("{key} = {value}: must be {allowed}"))) }
}

/// The largest layer width or channel count accepted (2^24).
pub const MAX_WIDTH: usize = 1 << 24;

pub(super) fn validate(c: &RunConfig) -> Result<()> {
    let d = &c.data;
    range((0.0..1.0).contains(&d.validation), "data.validation", d.validation, "in [0, 1)")?;
    range((0.0..1.0).contains(&d.test), "data.test", d.test, "in [0, 1)")?;
    range(d.validation + d.test < 1.0, "data.validation + data.test", d.validation + d.test, "below 1")?;
    let m = &c.model;
    for (i, &h) in m.hidden.iter().enumerate() {
        range((1..=MAX_WIDTH).contains(&h), &format!("model.hidden[{i}]"), h, "in 1..=16777216")?;
    }
    for (i, &h) in m.channels.iter().enumerate() {
        range((1..=MAX_WIDTH).contains(&h), &format!("model.channels[{i}]"), h, "in 1..=16777216")?;
    }
    range((1..=MAX_WIDTH).contains(&m.width), "model.width", m.width, "in 1..=16777216")?;
    range((1..=64).contains(&m.layers), "model.layers", m.layers, "in 1..=64")?;
    range((0.0..1.0).contains(&m.dropout), "model.dropout", m.dropout, "in [0, 1)")?;
    match (m.kind, m.layer.is_empty()) {
        (super::ModelKind::Sequential, true) => {
            return Err(cfg_err("model.kind = \"sequential\" needs a layer list (model.layer)".to_string()));
        }
        (k, false) if !matches!(k, super::ModelKind::Sequential | super::ModelKind::Mlp) => {
            return Err(cfg_err(format!(
                "model.kind = \"{}\" is a template, but model.layer also gives a layer list: keep one",
                k.as_str()
            )));
        }
        _ => {}
    }
    let r = &c.reg;
    range(r.l1.is_finite() && r.l1 >= 0.0, "reg.l1", r.l1, "finite and >= 0")?;
    range(r.l2.is_finite() && r.l2 >= 0.0, "reg.l2", r.l2, "finite and >= 0")?;
    if let Some(v) = r.max_norm {
        range(v.is_finite() && v > 0.0, "reg.max_norm", v, "finite and > 0")?;
    }
    if let Some(v) = r.clip_grad_norm {
        range(v.is_finite() && v > 0.0, "reg.clip_grad_norm", v, "finite and > 0")?;
    }
    if let Some(v) = r.early_stopping {
        range(v >= 1, "reg.early_stopping", v, ">= 1")?;
    }
    let t = &c.train;
    range(t.epochs >= 1, "train.epochs", t.epochs, ">= 1")?;
    if let ScheduleConfig::WarmRestarts { t_0, t_mult, .. } = &c.schedule {
        range(*t_0 >= 1, "schedule.t_0", t_0, ">= 1")?;
        range(*t_mult >= 1, "schedule.t_mult", t_mult, ">= 1")?;
    }
    range((0.0..1.0).contains(&t.label_smoothing), "train.label_smoothing", t.label_smoothing, "in [0, 1)")?;
    range((1..=65536).contains(&t.accumulate), "train.accumulate", t.accumulate, "in [1, 65536]")?;
    if let Some(d) = t.ema {
        range((0.0..1.0).contains(&d), "train.ema", d, "in [0, 1)")?;
    }
    if let Some(e) = t.swa_start {
        range(
            (1..=t.epochs).contains(&e),
            "train.swa_start",
            e,
            &format!("in 1..=train.epochs ({})", t.epochs),
        )?;
    }
    if let Some(lr) = t.swa_lr {
        range(lr.is_finite() && lr >= 0.0, "train.swa_lr", lr, "finite and >= 0")?;
        if t.swa_start.is_none() {
            return Err(cfg_err(
                "train.swa_lr needs train.swa_start (SWALR replaces the schedule from that epoch on)"
                    .to_string(),
            ));
        }
        if matches!(c.schedule, ScheduleConfig::Swalr { .. }) {
            return Err(cfg_err(
                "train.swa_lr with schedule.kind = \"swalr\": keep one (train.swa_lr switches to SWALR at train.swa_start)"
                    .to_string(),
            ));
        }
    }
    range(t.swa_anneal_epochs <= 1_000_000, "train.swa_anneal_epochs", t.swa_anneal_epochs, "<= 1000000")?;
    if t.ema.is_some() && t.swa_start.is_some() {
        return Err(cfg_err("train.ema and train.swa_start both set: keep one weight average".to_string()));
    }
    if c.optim.steps_through_closure() && (t.accumulate > 1 || t.distributed) {
        return Err(cfg_err(format!(
            "optim.name = \"{}\" re-evaluates the whole batch inside each step: it needs train.accumulate = 1 and no train.distributed",
            c.optim.name()
        )));
    }
    if c.optim.needs_sparse_gradients() && (c.reg.l1 != 0.0 || c.reg.l2 != 0.0) {
        return Err(cfg_err(format!(
            "optim.name = \"{}\" with reg.l1 or reg.l2: a penalty gives every row of the embedding a gradient (torch: SparseAdam then refuses the dense gradient); set them to 0",
            c.optim.name()
        )));
    }
    // The optimizer checks its own hyper-parameters (names the key and range).
    c.optim.build(Vec::new()).map_err(|e| cfg_err(format!("optim: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_can_be_set_by_its_path() {
        // Each key set to its own default goes through `set` (so `--set`
        // reaches every key), for every optimizer and schedule.
        for k in config_keys() {
            let mut c = RunConfig::default();
            if k.choice.is_empty() {
            } else if k.path.starts_with("optim.") {
                c.set("optim.name", &k.choice).unwrap();
            } else if k.choice == "multistep"
                || k.choice == "custom"
                || (k.choice == "chained" && k.path == "schedule.schedules")
            {
                // values printed as JSON objects (nw-optim schedules), not TOML
                continue;
            } else {
                c.set("schedule.kind", &k.choice).unwrap();
            }
            if k.path == "optim.name" || k.path == "schedule.kind" {
                continue;
            }
            let v = if k.default == "null" { continue } else { k.default.clone() };
            let before = c.clone();
            c.set(&k.path, &v).unwrap_or_else(|e| panic!("{} = {v}: {e}", k.path));
            assert_eq!(c, before, "{} = {v} changed the configuration", k.path);
        }
    }

    #[test]
    fn set_switches_choices_with_their_defaults() {
        let mut c = RunConfig::default();
        c.set("optim.name", "lion").unwrap();
        assert_eq!(c.optim, OptimizerConfig::default_for("lion").unwrap());
        assert_eq!(c.optim.lr(), 1e-4);
        c.set("optim.betas", "[0.95, 0.98]").unwrap();
        assert_eq!(serde_json::to_value(&c.optim).unwrap()["betas"], serde_json::json!([0.95, 0.98]));
        c.set("optim.name", "sgd").unwrap();
        c.set("optim.nesterov", "true").unwrap();
        c.set("optim.momentum", "0.9").unwrap();
        c.set("optim.nesterov", "false").unwrap();
        assert_eq!(serde_json::to_value(&c.optim).unwrap()["nesterov"], false);
        c.set("schedule.kind", "warm-restarts").unwrap();
        c.set("schedule.t_0", "4").unwrap();
        assert_eq!(c.schedule, ScheduleConfig::WarmRestarts { t_0: 4, t_mult: 1, min_lr: 0.0 });
        c.set("train.batch", "full").unwrap();
        c.set("train.batch", "64").unwrap();
        assert_eq!(c.train.batch, crate::config::BatchMode::Mini(64));
        c.set("model.hidden", "[64, 32]").unwrap();
        assert_eq!(c.model.hidden, vec![64, 32]);
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let mut c = RunConfig::default();
        let e = c.set("optim.momentum", "0.9").unwrap_err().to_string();
        assert!(e.contains("optim.momentum") && e.contains("adam"), "{e}");
        let e = c.set("optim.name", "adamm").unwrap_err().to_string();
        assert!(e.contains("adamm"), "{e}");
        let e = c.set("train.epochs", "-3").unwrap_err().to_string();
        assert!(e.contains("train.epochs"), "{e}");
        let e = c.set("nothing.here", "1").unwrap_err().to_string();
        assert!(e.contains("nothing"), "{e}");
        let e = c.set("train.batch", "0").unwrap_err().to_string();
        assert!(e.contains("batch"), "{e}");
    }

    #[test]
    fn validation_names_key_and_range() {
        let cases: &[(&str, &str, &str)] = &[
            ("data.validation", "1.0", "[0, 1)"),
            ("data.test", "-0.1", "[0, 1)"),
            ("model.hidden", "[0]", "model.hidden[0]"),
            ("model.hidden", "[4000000000]", "model.hidden[0]"),
            ("model.dropout", "1.0", "model.dropout"),
            ("model.width", "0", "model.width"),
            ("model.layers", "0", "model.layers"),
            ("reg.l1", "-1.0", "reg.l1"),
            ("reg.max_norm", "0.0", "reg.max_norm"),
            ("reg.clip_grad_norm", "-1.0", "reg.clip_grad_norm"),
            ("reg.early_stopping", "0", "reg.early_stopping"),
            ("train.epochs", "0", "train.epochs"),
            ("train.label_smoothing", "1.0", "train.label_smoothing"),
            ("train.accumulate", "0", "train.accumulate"),
            ("train.ema", "1.0", "train.ema"),
            ("train.swa_start", "0", "train.swa_start"),
            ("optim.lr", "-0.1", "lr"),
            ("optim.betas", "[0.9, 1.0]", "beta"),
            ("optim.eps", "-1.0", "eps"),
        ];
        for (k, v, want) in cases {
            let mut c = RunConfig::default();
            c.set(k, v).unwrap();
            let e = c.validate().expect_err(&format!("{k} = {v} accepted")).to_string();
            assert!(e.contains(want), "{k} = {v}: {e}");
        }
        RunConfig::default().validate().unwrap();
    }
}
