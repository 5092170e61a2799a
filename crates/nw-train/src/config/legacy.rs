//! Reading the first version's flat `[optim]` and `[schedule]` sections.
//!
//! Version 1 wrote every optimizer key into one table (`name`, `lr`,
//! `momentum`, `nesterov`, `weight_decay`, `betas`, `eps`) and every schedule
//! key into another (`kind`, `step_size`, `gamma`, `warmup_epochs`,
//! `patience`, `min_lr`), whether the chosen optimizer or schedule had them
//! or not. Such a table still reads: when it is not a valid typed section,
//! each key is given to the chosen optimizer (schedule) if it has it; a key
//! it lacks is dropped when it holds version 1's default (so every
//! `config.toml` version 1 wrote reads back to the run it described), and is
//! an error otherwise.

use serde::Deserialize;
use serde::de::Error as _;
use serde_json::{Map, Value};

use super::ScheduleConfig;
use nw_optim::OptimizerConfig;

/// A version-1 key and its version-1 default.
type V1Key = (&'static str, fn() -> Value);

/// Version 1's `[optim]` keys and their defaults.
const OPTIM_V1: &[V1Key] = &[
    ("lr", || Value::from(2e-3)),
    ("momentum", || Value::from(0.0)),
    ("nesterov", || Value::from(false)),
    ("weight_decay", || Value::from(0.0)),
    ("betas", || Value::from(vec![0.9, 0.999])),
    ("eps", || Value::from(1e-8)),
];

/// Version 1's `[schedule]` keys and their defaults.
const SCHEDULE_V1: &[V1Key] = &[
    ("step_size", || Value::from(10)),
    ("gamma", || Value::from(0.5)),
    ("warmup_epochs", || Value::from(2)),
    ("patience", || Value::from(3)),
    ("min_lr", || Value::from(0.0)),
];

fn same_number(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_number(a, b))
        }
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

/// Re-keys a version-1 table for the typed section `target` (the chosen
/// choice's defaults as JSON): keys the target has are kept, keys it lacks
/// must hold version 1's default. `None` when the table has keys version 1
/// never wrote (then it is not a version-1 table).
fn convert(
    table: &Map<String, Value>,
    tag: &str,
    keys: &[V1Key],
    target: &Value,
) -> Option<Result<Map<String, Value>, String>> {
    if table.keys().any(|k| k != tag && !keys.iter().any(|(n, _)| n == k)) {
        return None;
    }
    let mut out = Map::new();
    out.insert(tag.into(), table.get(tag)?.clone());
    for (k, v) in table {
        if k == tag {
            continue;
        }
        if target.get(k).is_some() {
            out.insert(k.clone(), v.clone());
        } else {
            let default = keys.iter().find(|(n, _)| n == k).map(|(_, d)| d())?;
            if !same_number(v, &default) {
                let section = if tag == "name" { "optim" } else { "schedule" };
                let choice = table[tag].as_str().unwrap_or_default();
                let has: Vec<&str> = match target {
                    Value::Object(t) => t.keys().filter(|n| *n != tag).map(String::as_str).collect(),
                    _ => Vec::new(),
                };
                return Some(Err(format!(
                    "{section}.{k} = {v}: {section}.{tag} = \"{choice}\" has no key `{k}` (its keys: {})",
                    has.join(", ")
                )));
            }
        }
    }
    Some(Ok(out))
}

/// serde `deserialize_with` for `RunConfig::optim`: the typed section, or a version-1 table.
pub fn optimizer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<OptimizerConfig, D::Error> {
    let mut v = Value::deserialize(d)?;
    // Without a name, the keys refine nw's default optimizer (Adam at 2e-3).
    if let Value::Object(t) = &v
        && !t.contains_key("name")
    {
        let mut base = serde_json::to_value(super::default_optimizer()).map_err(D::Error::custom)?;
        if let Value::Object(b) = &mut base {
            b.extend(t.clone());
        }
        v = base;
    }
    let typed = serde_json::from_value::<OptimizerConfig>(v.clone());
    let e = match typed {
        Ok(c) => return Ok(c),
        Err(e) => e,
    };
    let Value::Object(table) = &v else { return Err(D::Error::custom(e)) };
    let name = match table.get("name") {
        Some(Value::String(n)) => n.clone(),
        // Version 1 defaulted the name to adam.
        None => "adam".into(),
        Some(other) => return Err(D::Error::custom(format!("optim.name = {other}: expected a name"))),
    };
    let Some(default) = OptimizerConfig::default_for(&name) else {
        let names: Vec<&str> = nw_optim::OPTIMIZERS.iter().map(|(n, _)| *n).collect();
        return Err(D::Error::custom(format!("unknown optimizer {name:?} ({})", names.join(", "))));
    };
    let mut table = table.clone();
    table.insert("name".into(), Value::String(default.name().into()));
    let target = serde_json::to_value(&default).map_err(D::Error::custom)?;
    match convert(&table, "name", OPTIM_V1, &target) {
        None => Err(D::Error::custom(e)),
        Some(Err(m)) => Err(D::Error::custom(m)),
        Some(Ok(t)) => serde_json::from_value(Value::Object(t)).map_err(D::Error::custom),
    }
}

/// serde `deserialize_with` for `RunConfig::schedule`: the typed section, or a version-1 table.
pub fn schedule<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ScheduleConfig, D::Error> {
    let mut v = Value::deserialize(d)?;
    if let Value::Object(t) = &mut v
        && !t.contains_key("kind")
    {
        t.insert("kind".into(), Value::String(ScheduleConfig::default().kind().into()));
    }
    let e = match serde_json::from_value::<ScheduleConfig>(v.clone()) {
        Ok(c) => return Ok(c),
        Err(e) => e,
    };
    let Value::Object(table) = &v else { return Err(D::Error::custom(e)) };
    let mut table = table.clone();
    let kind = match table.get("kind") {
        Some(Value::String(k)) => k.clone(),
        None => "cosine".into(),
        Some(other) => return Err(D::Error::custom(format!("schedule.kind = {other}: expected a name"))),
    };
    table.insert("kind".into(), Value::String(kind.clone()));
    let Ok(default) = serde_json::from_value::<ScheduleConfig>(serde_json::json!({ "kind": kind })) else {
        return Err(D::Error::custom(e));
    };
    let mut target = serde_json::to_value(&default).map_err(D::Error::custom)?;
    // Version 1's plateau called its factor `gamma`.
    if matches!(default, ScheduleConfig::Plateau { .. })
        && let Some(g) = table.remove("gamma")
    {
        table.insert("factor".into(), g);
        if let Value::Object(t) = &mut target {
            t.insert("factor".into(), Value::Null);
        }
    }
    let mut keys: Vec<V1Key> = SCHEDULE_V1.to_vec();
    keys.push(("factor", || Value::from(0.5)));
    match convert(&table, "kind", &keys, &target) {
        None => Err(D::Error::custom(e)),
        Some(Err(m)) => Err(D::Error::custom(m)),
        Some(Ok(t)) => serde_json::from_value(Value::Object(t)).map_err(D::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use crate::RunConfig;

    /// The `config.toml` the first version wrote for its default run.
    const V1_DEFAULT: &str = r#"
[data]
dataset = "digits"
header = true
validation = 0.15
test = 0.15
standardize = true

[model]
kind = "mlp"
hidden = [256]
activation = "relu"
dropout = 0.0
channels = [32, 64]
width = 128
layers = 1
init = "default"

[optim]
name = "adam"
lr = 0.002
momentum = 0.0
nesterov = false
weight_decay = 0.0
betas = [0.9, 0.999]
eps = 1e-8

[schedule]
kind = "cosine"
step_size = 10
gamma = 0.5
warmup_epochs = 2
patience = 3
min_lr = 0.0

[reg]
l1 = 0.0
l2 = 0.0

[train]
epochs = 40
batch = "32"
seed = 0
monitor_every = 50
checkpoint_every = 0
label_smoothing = 0.10000000149011612
"#;

    #[test]
    fn version_one_files_read_back_to_the_same_run() {
        let c = RunConfig::from_toml(V1_DEFAULT).unwrap();
        let mut want = RunConfig::default();
        want.train.label_smoothing = 0.1;
        assert_eq!(c, want);
    }

    #[test]
    fn version_one_keys_that_do_not_apply_must_be_defaults() {
        let sgd = V1_DEFAULT
            .replace("name = \"adam\"", "name = \"sgd\"")
            .replace("momentum = 0.0", "momentum = 0.9");
        let c = RunConfig::from_toml(&sgd).unwrap();
        let v = serde_json::to_value(&c.optim).unwrap();
        assert_eq!(v["momentum"], 0.9);
        assert_eq!(v["lr"], 0.002);
        let bad = V1_DEFAULT.replace("momentum = 0.0", "momentum = 0.9");
        let e = RunConfig::from_toml(&bad).unwrap_err().to_string();
        assert!(e.contains("momentum"), "{e}");
        let plateau = V1_DEFAULT.replace("kind = \"cosine\"", "kind = \"plateau\"");
        let c = RunConfig::from_toml(&plateau).unwrap();
        assert_eq!(serde_json::to_value(&c.schedule).unwrap()["factor"], 0.5);
    }
}
