//! `optimizers`: every gradient optimizer nw has (GA and PSO are in `algorithms`; SparseAdam,
//! which takes sparse embeddings only, has no place on the lab's dense model), each at its own (torch) default,
//! plus SGD at the lab's base rate; steps to the target.

use std::path::Path;

use super::*;
use crate::LabOptions;
use crate::measure::Target;
use crate::report::{Report, heatmaps, standard_plots};
use crate::stats::num;

/// Runs the experiment.
pub fn run(opts: &LabOptions, dir: &Path) -> Result<Report> {
    let b = opts.budget;
    let seeds = opts.seed_list();
    let mut limits = Limits::new(b.pick(200, 3000, 6000), Target::Loss(0.3));
    limits.histogram_every = limits.max_steps / 30;
    let cfg = base(b);
    let mut runs = Vec::new();
    for (name, _) in nw_optim::OPTIMIZERS {
        let mut c = cfg.clone();
        set(&mut c, "optim.name", name)?;
        if c.optim.is_gradient_free() || c.optim.needs_sparse_gradients() {
            // GA and PSO are compared with backprop in the `algorithms` experiment;
            // SparseAdam refuses the dense parameters of the lab's model.
            continue;
        }
        let label = format!("{name} (lr {})", c.optim.lr());
        runs.push(run_config(&label, &seeds, &limits, &c)?);
    }
    runs.push(run_config("sgd (lr 0.1, the lab's base)", &seeds, &limits, &cfg)?);
    let adam = conv_steps(&runs[1].1);
    let sgd_default = conv_steps(&runs[0].1);
    let sgd_base = conv_steps(&runs.last().expect("pushed").1);
    let faster = |sgd: &crate::stats::Summary| -> String {
        if adam.values.is_empty() {
            "Adam did not converge".into()
        } else if sgd.values.is_empty() {
            format!("SGD did not converge in {}; Adam took {}", limits.max_steps, adam.show("-"))
        } else {
            format!("{}% fewer steps", num(100.0 * (1.0 - adam.mean() / sgd.mean())))
        }
    };
    let pct = |sgd: &crate::stats::Summary| {
        if adam.values.is_empty() || sgd.values.is_empty() {
            None
        } else {
            Some(100.0 * (1.0 - adam.mean() / sgd.mean()))
        }
    };
    let judge = |p: Option<f64>| match p {
        Some(p) if (20.0..=40.0).contains(&p) => "agrees (within 20-40%)".to_string(),
        Some(p) => format!("disagrees: {}% instead of 30%", num(p)),
        None => "disagrees: not measurable (a run did not converge)".into(),
    };
    let mut claims = Table::new(CLAIM_COLUMNS);
    claims.push(vec![
        "Adam vs SGD at its torch default (lr 0.001): steps to the target".into(),
        "Adam 30% faster".into(),
        faster(&sgd_default),
        judge(pct(&sgd_default)),
    ]);
    claims.push(vec![
        "Adam vs SGD at lr 0.1: steps to the target".into(),
        "Adam 30% faster".into(),
        faster(&sgd_base),
        judge(pct(&sgd_base)),
    ]);
    let mut ranked: Vec<&Runs> = runs.iter().filter(|(_, t)| conv_steps(t).complete()).collect();
    ranked.sort_by(|a, b| conv_steps(&a.1).mean().total_cmp(&conv_steps(&b.1).mean()));
    let conclusions = vec![
        format!(
            "Ranking by steps to the target (every seed converged): {}.",
            ranked.iter().map(|(n, t)| format!("{n} {}", num(conv_steps(t).mean()))).collect::<Vec<_>>().join(", ")
        ),
        "\"30% faster\" depends entirely on the learning rates compared: against SGD at torch's default 0.001 Adam is far faster; against a tuned SGD the gap shrinks or reverses.".into(),
    ];
    Ok(Report {
        name: "optimizers".into(),
        title: "optimizers: every optimizer at its default".into(),
        question: "How many steps does each optimizer, at its own default settings, need to the target?"
            .into(),
        setup: vec![
            describe(&cfg),
            "each optimizer with torch's default hyper-parameters (Lion: the paper's), plus SGD at lr 0.1"
                .into(),
            format!("criterion: {}; budget {} steps", limits.target.describe(), limits.max_steps),
        ],
        seeds: seeds.clone(),
        claims,
        results: results_table(&runs),
        extra: vec![],
        raw: raw_table("optimizers", &runs, &seeds),
        timing: timing_table(&runs, &seeds),
        plots: standard_plots(dir, &runs)?,
        heatmaps: heatmaps(&runs),
        images: vec![],
        conclusions,
        dir: dir.to_path_buf(),
    })
}
