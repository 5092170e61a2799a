//! Every configuration key, set out of its range (or to a value of the wrong
//! kind, or to a name that does not exist), is a typed configuration error
//! that names the key and what it allows (issue 13).
//!
//! The table must cover every key [`config_keys`] lists, for every optimizer
//! and schedule the key belongs to: a new key without a case fails
//! `the_table_covers_every_key`.

use nw_train::config::config_keys;
use nw_train::{RunConfig, TrainError, build_run};

/// One case: on top of the default configuration, select `choice` (an
/// optimizer for `optim.*` keys, a schedule for `schedule.*`; `*`: every
/// choice that has the key), apply `pre` (`key`, `value`), then set `key` to
/// `value`. The error (from setting the key, validating the configuration or
/// building the run) must contain every string of `want`.
struct Case {
    key: &'static str,
    choice: &'static str,
    pre: &'static [(&'static str, &'static str)],
    value: &'static str,
    want: &'static [&'static str],
}

const fn case(
    key: &'static str,
    choice: &'static str,
    value: &'static str,
    want: &'static [&'static str],
) -> Case {
    Case { key, choice, pre: &[], value, want }
}

const fn with(
    key: &'static str,
    choice: &'static str,
    pre: &'static [(&'static str, &'static str)],
    value: &'static str,
    want: &'static [&'static str],
) -> Case {
    Case { key, choice, pre, value, want }
}

const CASES: &[Case] = &[
    // [data]
    with("data.csv", "", &[("data.dataset", "\"csv\"")], "\"/nonexistent/nw.csv\"", &["/nonexistent/nw.csv"]),
    case("data.dataset", "", "\"mnist\"", &["data.dataset", "unknown variant", "digits", "fashion-mnist"]),
    case("data.drop_last", "", "1", &["data.drop_last", "expected a boolean"]),
    case("data.header", "", "\"yes\"", &["data.header", "expected a boolean"]),
    case("data.standardize", "", "2", &["data.standardize", "expected a boolean"]),
    case("data.target_column", "", "-1", &["data.target_column", "expected usize"]),
    case("data.test", "", "-0.1", &["data.test", "[0, 1)"]),
    case("data.test", "", "1.0", &["data.test", "[0, 1)"]),
    case("data.validation", "", "1.0", &["data.validation", "[0, 1)"]),
    with("data.validation", "", &[("data.test", "0.5")], "0.5", &["data.validation + data.test", "below 1"]),
    // [model]
    case("model.activation", "", "\"swish\"", &["model.activation", "unknown variant", "relu"]),
    case("model.channels", "", "[0]", &["model.channels[0]", "1..=16777216"]),
    with(
        "model.channels",
        "",
        &[("model.kind", "\"cnn\"")],
        "[16, 16, 16, 16]",
        &["model.channels", "pooling"],
    ),
    case("model.dropout", "", "1.0", &["model.dropout", "[0, 1)"]),
    case("model.dropout", "", "-0.1", &["model.dropout", "[0, 1)"]),
    case("model.hidden", "", "[0]", &["model.hidden[0]", "1..=16777216"]),
    case("model.hidden", "", "[4000000000]", &["model.hidden[0]", "1..=16777216"]),
    case("model.init", "", "\"zeros\"", &["model.init", "unknown variant", "kaiming-uniform"]),
    case("model.init_from", "", "\"/nonexistent/w.safetensors\"", &["/nonexistent/w.safetensors"]),
    case("model.init_from_partial", "", "1", &["model.init_from_partial", "expected a boolean"]),
    case("model.kind", "", "\"transformer\"", &["model.kind", "unknown variant", "mlp"]),
    with("model.kind", "", &[("data.dataset", "\"wine\"")], "\"cnn\"", &["model.kind = cnn", "image"]),
    case("model.layers", "", "0", &["model.layers", "1..=64"]),
    case("model.width", "", "0", &["model.width", "1..=16777216"]),
    // [reg]
    case("reg.clip_grad_norm", "", "-1.0", &["reg.clip_grad_norm", "> 0"]),
    case("reg.early_stopping", "", "0", &["reg.early_stopping", ">= 1"]),
    case("reg.l1", "", "-1.0", &["reg.l1", ">= 0"]),
    case("reg.l2", "", "-0.5", &["reg.l2", ">= 0"]),
    case("reg.l2", "", "inf", &["reg.l2", "finite"]),
    case("reg.max_norm", "", "0.0", &["reg.max_norm", "> 0"]),
    // [train]
    case("train.accumulate", "", "0", &["train.accumulate", "[1, 65536]"]),
    case("train.freeze", "", "[\"nope.*\"]", &["train.freeze", "\"nope.*\"", "matches no parameter"]),
    case("train.freeze", "", "[\"*\"]", &["train.freeze", "every parameter"]),
    case("train.freeze", "", "\"0.*\"", &["train.freeze"]),
    case("train.ema", "", "1.0", &["train.ema", "[0, 1)"]),
    case("train.ema", "", "-0.5", &["train.ema", "[0, 1)"]),
    with("train.ema", "", &[("train.swa_start", "1")], "0.9", &["train.ema", "train.swa_start", "keep one"]),
    case("train.swa_start", "", "0", &["train.swa_start", "1..=train.epochs"]),
    case("train.swa_start", "", "4", &["train.swa_start", "1..=train.epochs (3)"]),
    case("train.swa_lr", "", "0.01", &["train.swa_lr", "needs train.swa_start"]),
    with("train.swa_lr", "", &[("train.swa_start", "1")], "-0.5", &["train.swa_lr", "finite and >= 0"]),
    with(
        "train.swa_lr",
        "",
        &[("train.swa_start", "1"), ("schedule.kind", "\"swalr\"")],
        "0.1",
        &["train.swa_lr", "swalr", "keep one"],
    ),
    case("train.swa_anneal_epochs", "", "-1", &["train.swa_anneal_epochs"]),
    case("train.swa_anneal_strategy", "", "\"sine\"", &["train.swa_anneal_strategy", "unknown variant"]),
    with("train.accumulate", "", &[("optim.name", "\"lbfgs\"")], "2", &["lbfgs", "train.accumulate = 1"]),
    case("train.distributed", "", "\"yes\"", &["train.distributed", "expected a boolean"]),
    case("train.sync_bn", "", "\"yes\"", &["train.sync_bn", "expected a boolean"]),
    case("train.batch", "", "0", &["train.batch", "positive mini-batch size"]),
    case("train.batch", "", "\"many\"", &["train.batch", "full", "online"]),
    case("train.checkpoint_every", "", "-1", &["train.checkpoint_every", "expected u64"]),
    case("train.checkpoint_every_steps", "", "-1", &["train.checkpoint_every_steps", "expected u64"]),
    case("train.detect_anomaly", "", "\"on\"", &["train.detect_anomaly", "expected a boolean"]),
    case("train.epochs", "", "0", &["train.epochs", ">= 1"]),
    case("train.keep_checkpoints", "", "-3", &["train.keep_checkpoints", "expected u64"]),
    case("train.label_smoothing", "", "1.0", &["train.label_smoothing", "[0, 1)"]),
    case("train.monitor_every", "", "-1", &["train.monitor_every", "expected u64"]),
    case("train.seed", "", "-1", &["train.seed", "expected u64"]),
    // [optim], every optimizer that has the key
    case("optim.name", "*", "\"adamm\"", &["optim.name", "unknown optimizer", "adam", "lion"]),
    case("optim.lr", "*", "-0.1", &["lr", "-0.1", ">= 0"]),
    case("optim.weight_decay", "*", "-1.0", &["weight_decay", ">= 0"]),
    case("optim.maximize", "*", "\"no\"", &["optim.maximize", "expected a boolean"]),
    case("optim.eps", "*", "-1.0", &["eps", ">= 0"]),
    case("optim.betas", "*", "[0.9, 1.5]", &["beta", "1.5"]),
    case("optim.betas", "adam", "[1.0, 0.999]", &["betas[0]", "[0, 1)"]),
    // SparseAdam: torch's `0.0 < lr` and `0.0 < eps` (zero refused too)
    case("optim.lr", "sparse_adam", "0.0", &["SparseAdam", "lr", "> 0"]),
    case("optim.eps", "sparse_adam", "0.0", &["SparseAdam", "eps", "> 0"]),
    case("optim.amsgrad", "*", "0", &["optim.amsgrad", "expected a boolean"]),
    case(
        "optim.decoupled_weight_decay",
        "*",
        "\"x\"",
        &["optim.decoupled_weight_decay", "expected a boolean"],
    ),
    case("optim.momentum", "*", "-0.5", &["momentum", ">= 0"]),
    case("optim.dampening", "sgd", "-1.0", &["dampening"]),
    with("optim.nesterov", "sgd", &[("optim.momentum", "0.0")], "true", &["nesterov", "momentum"]),
    case("optim.initial_accumulator_value", "adagrad", "-1.0", &["initial_accumulator_value", ">= 0"]),
    case("optim.lr_decay", "adagrad", "-1.0", &["lr_decay", ">= 0"]),
    case("optim.alpha", "rmsprop", "-0.1", &["alpha", "[0, 1]"]),
    case("optim.centered", "rmsprop", "3", &["optim.centered", "expected a boolean"]),
    case("optim.rho", "adadelta", "1.5", &["rho", "[0, 1]"]),
    case("optim.momentum_decay", "nadam", "-1.0", &["momentum_decay", ">= 0"]),
    case("optim.etas", "rprop", "[1.5, 1.2]", &["etas"]),
    case("optim.step_sizes", "rprop", "[50.0, 1e-6]", &["step_sizes"]),
    case("optim.lambd", "asgd", "-1.0", &["lambd", ">= 0"]),
    case("optim.alpha", "asgd", "-1.0", &["alpha", ">= 0"]),
    // any finite t0 is torch's (a negative one averages from the first step)
    case("optim.t0", "asgd", "nan", &["t0", "finite"]),
    case("optim.eps", "adafactor", "[1e-30, -1.0]", &["eps[1]", ">= 0"]),
    case("optim.beta2_decay", "adafactor", "0.5", &["beta2_decay"]),
    case("optim.d", "adafactor", "0.5", &["d", ">= 1"]),
    case("optim.nesterov", "muon", "\"yes\"", &["optim.nesterov", "expected a boolean"]),
    case("optim.non_matrix", "muon", "\"ignore\"", &["optim.non_matrix", "unknown variant"]),
    case("optim.ns_coefficients", "muon", "[3.4, -4.7]", &["optim.ns_coefficients"]),
    case("optim.ns_steps", "muon", "100", &["ns_steps", "less than 100"]),
    case("optim.use_addmm", "muon", "1", &["optim.use_addmm", "expected a boolean"]),
    case("optim.ns_dtype", "muon", "\"float16\"", &["optim.ns_dtype", "unknown variant"]),
    case("optim.history_size", "lbfgs", "0", &["history_size"]),
    case("optim.max_iter", "lbfgs", "0", &["max_iter"]),
    case("optim.tolerance_change", "lbfgs", "-1.0", &["tolerance_change"]),
    case("optim.tolerance_grad", "lbfgs", "-1.0", &["tolerance_grad"]),
    with("train.accumulate", "", &[("optim.name", "\"ga\"")], "2", &["ga", "train.accumulate = 1"]),
    case("optim.population", "ga", "1", &["population", ">= 2"]),
    case("optim.population", "ga", "1000000", &["population", "<= 100000"]),
    case("optim.tournament", "ga", "0", &["tournament", ">= 1"]),
    case("optim.crossover", "ga", "\"two_point\"", &["optim.crossover", "unknown variant"]),
    case("optim.crossover_rate", "ga", "1.5", &["crossover_rate", "[0, 1]"]),
    case("optim.mutation_rate", "ga", "-0.1", &["mutation_rate", "[0, 1]"]),
    case("optim.elitism", "ga", "0", &["elitism", ">= 1"]),
    case("optim.elitism", "ga", "20", &["elitism", "below the population"]),
    case("optim.init_sigma", "*", "-1.0", &["init_sigma", ">= 0"]),
    case("optim.seed", "*", "-1", &["optim.seed"]),
    case("optim.particles", "pso", "1", &["particles", ">= 2"]),
    case("optim.inertia", "pso", "inf", &["inertia", "finite"]),
    case("optim.cognitive", "pso", "-1.0", &["cognitive", ">= 0"]),
    case("optim.social", "pso", "-1.0", &["social", ">= 0"]),
    case("optim.velocity_clamp", "pso", "0.0", &["velocity_clamp", "> 0"]),
    // [model] layer lists: the shape checks are in tests/layers.rs
    case(
        "model.layer",
        "",
        "[{ type = \"linear\", out = 0 }]",
        &["model.layer[0]", "out = 0", "1..=16777216"],
    ),
    case("train.monitor_spectral", "", "\"on\"", &["train.monitor_spectral", "expected a boolean"]),
    case("optim.foreach", "adafactor", "\"x\"", &["optim.foreach"]),
    case("optim.adjust_lr_fn", "muon", "\"sometimes\"", &["optim.adjust_lr_fn", "unknown variant"]),
    case("optim.line_search_fn", "lbfgs", "\"armijo\"", &["optim.line_search_fn"]),
    case("optim.max_eval", "lbfgs", "-1", &["optim.max_eval"]),
    case("schedule.base_momentum", "*", "\"x\"", &["schedule.base_momentum"]),
    case("schedule.cycle_momentum", "*", "\"x\"", &["schedule.cycle_momentum", "expected a boolean"]),
    case("schedule.max_momentum", "*", "\"x\"", &["schedule.max_momentum"]),
    case("schedule.factor", "multiplicative", "\"x\"", &["schedule.factor"]),
    case("schedule.anneal_epochs", "swalr", "-1", &["schedule.anneal_epochs"]),
    case("schedule.anneal_strategy", "swalr", "\"sine\"", &["schedule.anneal_strategy", "unknown variant"]),
    case("schedule.swa_lr", "swalr", "\"x\"", &["schedule.swa_lr"]),
    case("schedule.per_step", "chained", "\"x\"", &["schedule.per_step"]),
    case("schedule.schedules", "chained", "\"x\"", &["schedule.schedules"]),
    // [schedule], every schedule that has the key
    case("schedule.kind", "*", "\"sawtooth\"", &["schedule.kind", "unknown schedule", "cosine"]),
    case("schedule.factor", "constant", "1.5", &["factor"]),
    case("schedule.total_iters", "constant", "-1", &["schedule.total_iters", "expected usize"]),
    case("schedule.gamma", "step", "-0.5", &["gamma"]),
    case("schedule.step_size", "step", "0", &["step_size"]),
    with(
        "schedule.gamma",
        "multistep",
        &[("schedule", "{ kind = \"multistep\", milestones = [2] }")],
        "-1.0",
        &["gamma"],
    ),
    with(
        "schedule.milestones",
        "multistep",
        &[("schedule", "{ kind = \"multistep\", milestones = [2] }")],
        "[-1]",
        &["schedule.milestones", "expected usize"],
    ),
    case("schedule.gamma", "exponential", "-0.5", &["gamma"]),
    case("schedule.min_lr", "cosine", "-1.0", &["schedule.min_lr", ">= 0"]),
    case("schedule.min_lr", "warmup-cosine", "-1.0", &["schedule.min_lr", ">= 0"]),
    // (A warm-up longer than the run is shortened to fit it, by design.)
    case("schedule.warmup_epochs", "warmup-cosine", "-1", &["schedule.warmup_epochs", "expected usize"]),
    case("schedule.min_lr", "warm-restarts", "-1.0", &["schedule.min_lr", ">= 0"]),
    case("schedule.t_0", "warm-restarts", "0", &["schedule.t_0", ">= 1"]),
    case("schedule.t_mult", "warm-restarts", "0", &["schedule.t_mult", ">= 1"]),
    case("schedule.start_factor", "linear", "0.0", &["start_factor"]),
    case("schedule.end_factor", "linear", "1.5", &["end_factor"]),
    case("schedule.total_iters", "linear", "-2", &["schedule.total_iters", "expected usize"]),
    case("schedule.power", "polynomial", "-1.0", &["power"]),
    case("schedule.total_iters", "polynomial", "0", &["total_iters"]),
    case("schedule.base_lr", "cyclic", "-1.0", &["base_lr"]),
    case("schedule.gamma", "cyclic", "-1.0", &["gamma"]),
    case("schedule.max_lr", "cyclic", "-1.0", &["max_lr"]),
    case("schedule.mode", "cyclic", "\"square\"", &["schedule.mode", "unknown variant", "triangular"]),
    case("schedule.step_size_down", "cyclic", "-1", &["schedule.step_size_down", "expected usize"]),
    case("schedule.step_size_up", "cyclic", "0", &["step_size_up"]),
    case(
        "schedule.anneal_strategy",
        "onecycle",
        "\"sine\"",
        &["schedule.anneal_strategy", "unknown variant", "cos"],
    ),
    case("schedule.div_factor", "onecycle", "0.0", &["div_factor"]),
    case("schedule.final_div_factor", "onecycle", "-1.0", &["final_div_factor"]),
    case("schedule.max_lr", "onecycle", "-1.0", &["max_lr"]),
    case("schedule.pct_start", "onecycle", "1.5", &["pct_start"]),
    case("schedule.three_phase", "onecycle", "\"x\"", &["schedule.three_phase", "expected a boolean"]),
    case("schedule.cooldown", "plateau", "-1", &["schedule.cooldown", "expected usize"]),
    case("schedule.factor", "plateau", "1.0", &["factor"]),
    case("schedule.min_lr", "plateau", "-1.0", &["min_lr"]),
    case("schedule.patience", "plateau", "-1", &["schedule.patience", "expected usize"]),
    case("schedule.threshold", "plateau", "-1.0", &["threshold"]),
    with(
        "schedule.per_step",
        "custom",
        &[("schedule", "{ kind = \"custom\", schedule = { Exponential = { gamma = 0.5 } } }")],
        "\"x\"",
        &["schedule.per_step", "expected a boolean"],
    ),
    with(
        "schedule.schedule",
        "custom",
        &[("schedule", "{ kind = \"custom\", schedule = { Exponential = { gamma = 0.5 } } }")],
        "{ Sawtooth = {} }",
        &["schedule.schedule", "unknown variant"],
    ),
];

/// The choices a key belongs to (empty for section keys).
fn choices_of(key: &str) -> Vec<String> {
    config_keys().into_iter().filter(|k| k.path == key).map(|k| k.choice).collect()
}

/// Runs one case for one choice; the error text, or why it is not the expected error.
fn run_case(c: &Case, choice: &str) -> Result<String, String> {
    let mut cfg = RunConfig::default();
    // Three epochs keep schedules that depend on the run's length in range.
    cfg.train.epochs = 3;
    if !choice.is_empty() && c.key != "optim.name" && c.key != "schedule.kind" {
        let sel = if c.key.starts_with("optim.") { "optim.name" } else { "schedule.kind" };
        if c.pre.iter().all(|(k, _)| *k != "schedule") {
            cfg.set(sel, &format!("\"{choice}\"")).map_err(|e| format!("selecting {choice}: {e}"))?;
        }
    }
    for (k, v) in c.pre {
        cfg.set(k, v).map_err(|e| format!("{k} = {v}: {e}"))?;
    }
    let err = match cfg.set(c.key, c.value) {
        Err(e) => e,
        Ok(()) => match cfg.validate() {
            Err(e) => e,
            Ok(()) => match build_run(&cfg) {
                Err(e) => e,
                Ok(_) => return Err("accepted".into()),
            },
        },
    };
    let text = err.to_string();
    if !matches!(err, TrainError::Config(_) | TrainError::Data(_) | TrainError::Io { .. } | TrainError::Nn(_))
    {
        return Err(format!("not a configuration error: {err:?}"));
    }
    let missing: Vec<&&str> = c.want.iter().filter(|w| !text.contains(**w)).collect();
    if missing.is_empty() { Ok(text) } else { Err(format!("{text:?} lacks {missing:?}")) }
}

#[test]
fn every_key_out_of_range_is_a_typed_error_naming_it() {
    let mut failures = Vec::new();
    for c in CASES {
        // "*": every choice with the key, except those with a case of their own
        let own = |ch: &str| CASES.iter().any(|o| o.key == c.key && o.choice == ch);
        let choices = if c.choice == "*" {
            choices_of(c.key).into_iter().filter(|ch| !own(ch)).collect()
        } else {
            vec![c.choice.to_string()]
        };
        assert!(!choices.is_empty(), "{}: not a configuration key", c.key);
        for choice in choices {
            if let Err(why) = run_case(c, &choice) {
                failures.push(format!("{} = {} ({choice}): {why}", c.key, c.value));
            }
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn the_table_covers_every_key() {
    let covered = |path: &str, choice: &str| {
        CASES.iter().any(|c| c.key == path && (c.choice == "*" || c.choice == choice))
    };
    let missing: Vec<String> = config_keys()
        .into_iter()
        .filter(|k| !covered(&k.path, &k.choice))
        .map(|k| if k.choice.is_empty() { k.path } else { format!("{} ({})", k.path, k.choice) })
        .collect();
    assert!(missing.is_empty(), "keys without an out-of-range case: {missing:?}");
}
