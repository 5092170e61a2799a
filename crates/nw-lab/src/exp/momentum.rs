//! `momentum`: SGD with momentum 0, 0.5, 0.9, 0.99 and Nesterov 0.9 at one
//! learning rate; the weight update at iteration 100 and convergence steps.

use std::path::Path;

use super::*;
use crate::LabOptions;
use crate::measure::Target;
use crate::report::{Report, heatmaps, layer_ratio_plot, standard_plots};
use crate::stats::num;

/// The variants: (name, momentum, nesterov).
pub const VARIANTS: &[(&str, f64, bool)] = &[
    ("momentum 0", 0.0, false),
    ("momentum 0.5", 0.5, false),
    ("momentum 0.9", 0.9, false),
    ("momentum 0.99", 0.99, false),
    ("Nesterov 0.9", 0.9, true),
];

/// Runs the experiment.
pub fn run(opts: &LabOptions, dir: &Path) -> Result<Report> {
    let b = opts.budget;
    let seeds = opts.seed_list();
    let mut limits = Limits::new(b.pick(120, 1500, 3000), Target::Loss(0.3));
    limits.histogram_every = (limits.max_steps / 30).max(1);
    let mut cfg = base(b);
    set(&mut cfg, "optim.lr", "0.01")?;
    let mut runs = Vec::new();
    for (name, m, nesterov) in VARIANTS {
        let mut c = cfg.clone();
        c.optim = nw_optim::OptimizerConfig::Sgd(nw_optim::Sgd {
            lr: 0.01,
            momentum: *m,
            nesterov: *nesterov,
            ..Default::default()
        });
        runs.push(run_config(name, &seeds, &limits, &c)?);
    }
    let mut claims = Table::new(CLAIM_COLUMNS);
    for (name, fig) in [("momentum 0.5", 0.004), ("momentum 0.9", 0.006), ("momentum 0.99", 0.008)] {
        claims.push(claim_row(
            &format!("{name}: weight update at iteration 100"),
            fig,
            &over(find(&runs, name), |t| t.update_at(100)),
            "-",
        ));
    }
    let u = |n: &str| over(find(&runs, n), |t| t.update_at(100)).mean();
    let order = u("momentum 0.5") < u("momentum 0.9") && u("momentum 0.9") < u("momentum 0.99");
    claims.push(vec![
        "order 0.5 < 0.9 < 0.99".into(),
        "0.004 < 0.006 < 0.008".into(),
        format!("{} < {} < {}", num(u("momentum 0.5")), num(u("momentum 0.9")), num(u("momentum 0.99"))),
        if order { "agrees".into() } else { "disagrees: the measured order differs".into() },
    ]);
    let conclusions = vec![
        format!(
            "At iteration 100 momentum 0.99 moves the weights {}× as far per step as momentum 0.5 (measured {} vs {}); \
             with lr 0.01 the steady-state step of momentum β is lr·g/(1-β), so 0.99 is still building up at step 100.",
            num(u("momentum 0.99") / u("momentum 0.5")),
            num(u("momentum 0.99")),
            num(u("momentum 0.5"))
        ),
        format!(
            "The article's ordering {}; its absolute figures are {}× to {}× ours, consistent with a larger learning rate or a different weight count.",
            if order { "holds" } else { "does not hold" },
            num(0.004 / u("momentum 0.5")),
            num(0.008 / u("momentum 0.99"))
        ),
    ];
    let mut plots = standard_plots(dir, &runs)?;
    plots.push(layer_ratio_plot(dir, "layer_ratio_099", "momentum 0.99", &find(&runs, "momentum 0.99")[0])?);
    Ok(Report {
        name: "momentum".into(),
        title: "momentum: how far momentum moves the weights".into(),
        question: "How large is the applied weight update at iteration 100 for each momentum, and how fast does each converge?".into(),
        setup: vec![
            describe(&cfg),
            format!("criterion: {}; budget {} steps", limits.target.describe(), limits.max_steps),
        ],
        seeds: seeds.clone(),
        claims,
        results: results_table(&runs),
        extra: vec![],
        raw: raw_table("momentum", &runs, &seeds),
        timing: timing_table(&runs, &seeds),
        plots,
        heatmaps: heatmaps(&runs),
        images: vec![],
        conclusions,
        dir: dir.to_path_buf(),
    })
}
