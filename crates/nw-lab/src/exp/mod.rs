//! The experiments, one module each, and what they share: the base run, the
//! variant loop over seeds, the standard tables.

pub mod activation;
pub mod algorithms;
pub mod batch_size;
pub mod init;
pub mod lr;
pub mod momentum;
pub mod online;
pub mod optimizers;
pub mod pruning;
pub mod regularization;
pub mod rnn;
pub mod schedules;
pub mod unsupervised;

use nw_train::RunConfig;

use crate::error::Result;
use crate::measure::{Limits, Setup, Status, Trace, train};
use crate::report::Table;
use crate::stats::{Summary, num, verdict};
use crate::{Budget, LabError};

/// Measured runs of one variant, one per seed.
pub type Runs = (String, Vec<Trace>);

/// The base run every MLP experiment changes one thing of: the embedded
/// digits (70/15/15 split, standardised), an MLP, plain SGD, mini-batches of
/// 32, no label smoothing, the monitor quiet.
pub fn base(budget: Budget) -> RunConfig {
    let mut c = RunConfig::default();
    c.model.hidden = budget.pick(vec![32], vec![128], vec![256]);
    c.optim = nw_optim::OptimizerConfig::Sgd(nw_optim::Sgd { lr: 0.1, ..Default::default() });
    c.train.label_smoothing = 0.0;
    c.train.monitor_every = 0;
    c.train.epochs = 1000;
    c
}

/// Sets a key of `c`, as `nw train --set` would.
pub fn set(c: &mut RunConfig, key: &str, value: &str) -> Result<()> {
    c.set(key, value).map_err(|e| LabError::Config(format!("{key} = {value}: {e}")))
}

/// The base setup as a one-line description.
pub fn describe(c: &RunConfig) -> String {
    format!(
        "data: {} ({:.0}% validation, {:.0}% test, standardised); model: {} hidden {:?} {:?}; optimizer: {} lr {}; batch {:?}",
        c.data.dataset,
        c.data.validation * 100.0,
        c.data.test * 100.0,
        c.model.kind.as_str(),
        c.model.hidden,
        c.model.activation,
        c.optim.name(),
        c.optim.lr(),
        c.train.batch
    )
}

/// Runs one variant over `seeds`: `build(seed)` makes the setup.
pub fn run_variant(
    name: &str,
    seeds: &[u64],
    limits: &Limits,
    build: &dyn Fn(u64) -> Result<Setup>,
) -> Result<Runs> {
    let mut traces = Vec::new();
    for &s in seeds {
        traces.push(train(build(s)?, limits)?.0);
    }
    Ok((name.to_string(), traces))
}

/// Runs a configuration variant over `seeds` (the seed goes to `train.seed`).
pub fn run_config(name: &str, seeds: &[u64], limits: &Limits, cfg: &RunConfig) -> Result<Runs> {
    run_variant(name, seeds, limits, &|s| {
        let mut c = cfg.clone();
        c.train.seed = s;
        Setup::from_config(&c)
    })
}

/// Convergence steps over seeds (converged seeds only).
pub fn conv_steps(t: &[Trace]) -> Summary {
    Summary::of(t.iter().map(|t| t.converged_at.map(|s| s as f64)))
}

/// A summary of `f` over seeds.
pub fn over(t: &[Trace], f: impl Fn(&Trace) -> Option<f64>) -> Summary {
    Summary::of(t.iter().map(f))
}

/// What the seeds' runs ended as: `converged 3/3`, `diverged 1/3, ...`.
pub fn outcome(t: &[Trace]) -> String {
    let n = t.len();
    let count = |s: Status| t.iter().filter(|t| t.status == s).count();
    let mut parts = Vec::new();
    for s in [Status::Converged, Status::NotConverged, Status::Diverged] {
        let k = count(s);
        if k > 0 {
            parts.push(format!("{} {k}/{n}", s.as_str()));
        }
    }
    parts.join(", ")
}

/// The columns of [`results_table`].
pub const RESULT_COLUMNS: &[&str] = &[
    "variant",
    "outcome",
    "convergence steps",
    "epochs to converge",
    "final smoothed loss",
    "val accuracy",
    "train-val gap",
    "weight update @100",
    "update/weight @100",
];

/// The standard results table of several variants.
pub fn results_table(runs: &[Runs]) -> Table {
    let mut t = Table::new(RESULT_COLUMNS);
    for (name, tr) in runs {
        t.push(vec![
            name.clone(),
            outcome(tr),
            conv_steps(tr).show("did not converge"),
            over(tr, |t| t.converged_epochs).show("-"),
            over(tr, |t| Some(t.final_loss())).show("-"),
            over(tr, |t| t.final_val_accuracy).show("-"),
            over(tr, |t| t.overfit_gap()).show("-"),
            over(tr, |t| t.update_at(100)).show("-"),
            over(tr, |t| t.at(100).map(|s| s.update_ratio)).show("-"),
        ]);
    }
    t
}

/// One row per (variant, seed) with the raw numbers.
pub fn raw_table(experiment: &str, runs: &[Runs], seeds: &[u64]) -> Table {
    let mut t = Table::new(&[
        "experiment",
        "variant",
        "seed",
        "status",
        "steps",
        "converged_at",
        "final_smoothed_loss",
        "train_accuracy",
        "val_accuracy",
        "update_at_100",
        "ratio_at_100",
    ]);
    let o = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
    for (name, tr) in runs {
        for (tr, seed) in tr.iter().zip(seeds) {
            t.push(vec![
                experiment.into(),
                name.clone(),
                seed.to_string(),
                tr.status.as_str().into(),
                tr.steps.len().to_string(),
                o(tr.converged_at.map(|s| s as f64)),
                format!("{}", tr.final_loss()),
                o(tr.final_train_accuracy),
                o(tr.final_val_accuracy),
                o(tr.update_at(100)),
                o(tr.at(100).map(|s| s.update_ratio)),
            ]);
        }
    }
    t
}

/// Wall times per (variant, seed).
pub fn timing_table(runs: &[Runs], seeds: &[u64]) -> Table {
    let mut t = Table::new(&["variant", "seed", "wall_s", "wall_to_target_s"]);
    for (name, tr) in runs {
        for (tr, seed) in tr.iter().zip(seeds) {
            t.push(vec![
                name.clone(),
                seed.to_string(),
                format!("{:.3}", tr.wall_s),
                tr.wall_to_target_s.map(|w| format!("{w:.3}")).unwrap_or_default(),
            ]);
        }
    }
    t
}

/// The claims table's columns.
pub const CLAIM_COLUMNS: &[&str] = &["row", "the article's figure", "measured (mean ± spread)", "verdict"];

/// A claims row comparing a measured summary with an article's number.
pub fn claim_row(row: &str, article: f64, measured: &Summary, missing: &str) -> Vec<String> {
    vec![row.into(), num(article), measured.show(missing), verdict(measured, article)]
}

/// The runs of the variant called `name`.
pub fn find<'a>(runs: &'a [Runs], name: &str) -> &'a [Trace] {
    runs.iter().find(|(n, _)| n == name).map(|(_, t)| t.as_slice()).unwrap_or(&[])
}

/// Whether the article's order (`names` ascending in `f`) holds for the measured means.
pub fn order_holds(runs: &[Runs], names: &[&str], f: &dyn Fn(&[Trace]) -> f64) -> bool {
    let v: Vec<f64> = names.iter().map(|n| f(find(runs, n))).collect();
    v.windows(2).all(|w| w[0] < w[1])
}
