//! `schedules`: constant, step, cosine, warm-up + cosine, cyclical and
//! one-cycle learning rates over the same epochs; validation accuracy.

use std::path::Path;

use super::*;
use crate::LabOptions;
use crate::measure::Target;
use crate::report::{Report, heatmaps, standard_plots};
use crate::stats::{Summary, num};

/// Runs the experiment.
pub fn run(opts: &LabOptions, dir: &Path) -> Result<Report> {
    let b = opts.budget;
    let seeds = opts.seed_list();
    let epochs: u64 = b.pick(4, 30, 60);
    let mut cfg = base(b);
    set(&mut cfg, "optim.lr", "0.05")?;
    cfg.train.epochs = epochs;
    let per_epoch = Setup::from_config(&cfg)?.loader.batches_per_epoch() as u64;
    let mut limits = Limits::new(epochs * per_epoch, Target::Loss(0.1));
    limits.stop_at_target = false;
    limits.histogram_every = limits.max_steps / 30;
    let kinds: &[(&str, &[(&str, &str)])] = &[
        ("constant", &[("schedule.kind", "none")]),
        ("step", &[("schedule.kind", "step"), ("schedule.step_size", "10"), ("schedule.gamma", "0.5")]),
        ("cosine", &[("schedule.kind", "cosine")]),
        ("warm-up + cosine", &[("schedule.kind", "warmup-cosine")]),
        ("cyclical", &[("schedule.kind", "cyclic"), ("schedule.max_lr", "0.2")]),
        ("one-cycle", &[("schedule.kind", "onecycle"), ("schedule.max_lr", "0.2")]),
    ];
    let mut runs = Vec::new();
    for (name, keys) in kinds {
        let mut c = cfg.clone();
        for (k, v) in *keys {
            set(&mut c, k, v)?;
        }
        if b == crate::Budget::Quick && *name == "step" {
            set(&mut c, "schedule.step_size", "2")?;
        }
        runs.push(run_config(name, &seeds, &limits, &c)?);
    }
    let acc = |n: &str| over(find(&runs, n), |t| t.final_val_accuracy);
    let diff = Summary::of(
        find(&runs, "cyclical")
            .iter()
            .zip(find(&runs, "constant"))
            .map(|(a, b)| Some(100.0 * (a.final_val_accuracy? - b.final_val_accuracy?))),
    );
    let d = diff.mean();
    let mut claims = Table::new(CLAIM_COLUMNS);
    claims.push(vec![
        "cyclical vs constant: validation accuracy (points)".into(),
        "+2 to +4".into(),
        diff.show("-"),
        if (2.0..=4.0).contains(&d) { "agrees".into() } else { format!("disagrees: {} points", num(d)) },
    ]);
    let mut acc_table = Table::new(&["schedule", "final val accuracy", "best epoch-end val accuracy"]);
    for (n, t) in &runs {
        acc_table.push(vec![
            n.clone(),
            acc(n).show("-"),
            over(t, |t| t.epochs.iter().filter_map(|e| e.val_accuracy).reduce(f64::max)).show("-"),
        ]);
    }
    let conclusions = vec![
        format!(
            "Cyclical minus constant validation accuracy: {} points (per-seed paired difference); the claim is +2 to +4.",
            diff.show("-")
        ),
        format!(
            "Final validation accuracy: {}.",
            runs.iter().map(|(n, _)| format!("{n} {}", acc(n).show("-"))).collect::<Vec<_>>().join(", ")
        ),
        "On the digits the validation split has 270 examples: one example is 0.37 points, so differences under about one point are within noise (see the spread).".into(),
    ];
    Ok(Report {
        name: "schedules".into(),
        title: "schedules: learning-rate schedules and validation accuracy".into(),
        question: "Do schedules, and the cyclical one in particular, improve validation accuracy over a constant rate?".into(),
        setup: vec![
            describe(&cfg),
            format!("{epochs} epochs ({} steps) for every schedule; cyclical and one-cycle peak at 0.2, cyclical bottom lr/10, 2-epoch half cycles", limits.max_steps),
        ],
        seeds: seeds.clone(),
        claims,
        results: results_table(&runs),
        extra: vec![("Validation accuracy".into(), acc_table)],
        raw: raw_table("schedules", &runs, &seeds),
        timing: timing_table(&runs, &seeds),
        plots: standard_plots(dir, &runs)?,
        heatmaps: heatmaps(&runs),
        images: vec![],
        conclusions,
        dir: dir.to_path_buf(),
    })
}
