//! `batch-size`: full batch vs online vs mini-batches 16..256 at one
//! learning rate: steps, epochs and wall time to the target, and the weight
//! update at iteration 100.

use std::path::Path;

use nw_train::config::BatchMode;

use super::*;
use crate::LabOptions;
use crate::measure::Target;
use crate::report::{Report, heatmaps, standard_plots};
use crate::stats::Summary;

/// Runs the experiment.
pub fn run(opts: &LabOptions, dir: &Path) -> Result<Report> {
    let b = opts.budget;
    let seeds = opts.seed_list();
    let mut limits = Limits::new(b.pick(200, 3000, 6000), Target::Loss(0.3));
    limits.histogram_every = limits.max_steps / 30;
    let mut cfg = base(b);
    set(&mut cfg, "optim.lr", "0.05")?;
    let modes: Vec<(String, BatchMode)> =
        [("full batch".to_string(), BatchMode::Full), ("online (1)".to_string(), BatchMode::Online)]
            .into_iter()
            .chain(
                b.pick(vec![32, 64, 128], vec![16, 32, 64, 128, 256], vec![16, 32, 64, 128, 256])
                    .into_iter()
                    .map(|n| (format!("batch {n}"), BatchMode::Mini(n))),
            )
            .collect();
    let mut runs = Vec::new();
    for (name, mode) in &modes {
        let mut c = cfg.clone();
        c.train.batch = *mode;
        runs.push(run_config(name, &seeds, &limits, &c)?);
    }
    let mut claims = Table::new(CLAIM_COLUMNS);
    for (n, fig) in [(32, 0.002), (64, 0.003), (128, 0.004)] {
        claims.push(claim_row(
            &format!("batch {n}: weight update at iteration 100"),
            fig,
            &over(find(&runs, &format!("batch {n}")), |t| t.update_at(100)),
            "-",
        ));
    }
    let mut time = Table::new(&[
        "variant",
        "steps to target",
        "epochs to target",
        "wall s to target",
        "wall s per step",
    ]);
    for (name, t) in &runs {
        time.push(vec![
            name.clone(),
            conv_steps(t).show("did not converge"),
            over(t, |t| t.converged_epochs).show("-"),
            over(t, |t| t.wall_to_target_s).show("-"),
            Summary::of(t.iter().map(|t| Some(t.wall_s / t.steps.len().max(1) as f64))).show("-"),
        ]);
    }
    let u = |n: &str| over(find(&runs, n), |t| t.update_at(100)).mean();
    let grows = u("batch 32") < u("batch 64") && u("batch 64") < u("batch 128");
    let conclusions = vec![
        format!(
            "At a fixed learning rate the update at iteration 100 {} with the batch size (32: {}, 64: {}, 128: {}); the article says it grows.",
            if grows { "grows" } else { "does not grow" },
            crate::stats::num(u("batch 32")),
            crate::stats::num(u("batch 64")),
            crate::stats::num(u("batch 128"))
        ),
        "Larger batches take fewer, costlier steps; online learning takes the most steps but may need the fewest epochs: compare the steps and epochs columns. Wall times depend on the machine and its load (timing.csv); steps and epochs do not.".into(),
    ];
    Ok(Report {
        name: "batch-size".into(),
        title: "batch-size: full batch, online and mini-batches".into(),
        question: "How many steps, epochs and seconds to the target for each batch size, and how large is the update at iteration 100?".into(),
        setup: vec![
            describe(&cfg),
            "the same learning rate for every batch size (no scaling rule)".into(),
            format!("criterion: {}; budget {} steps", limits.target.describe(), limits.max_steps),
        ],
        seeds: seeds.clone(),
        claims,
        results: results_table(&runs),
        extra: vec![("Steps, epochs and wall time to the target".into(), time)],
        raw: raw_table("batch-size", &runs, &seeds),
        timing: timing_table(&runs, &seeds),
        plots: standard_plots(dir, &runs)?,
        heatmaps: heatmaps(&runs),
        images: vec![],
        conclusions,
        dir: dir.to_path_buf(),
    })
}
