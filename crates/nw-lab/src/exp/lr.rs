//! `lr`: plain SGD at learning rates on a log grid; convergence steps.

use std::path::Path;

use super::*;
use crate::LabOptions;
use crate::measure::Target;
use crate::report::{Report, heatmaps, standard_plots};

/// Runs the experiment.
pub fn run(opts: &LabOptions, dir: &Path) -> Result<Report> {
    let b = opts.budget;
    let seeds = opts.seed_list();
    let grid: &[f64] = b.pick(
        &[0.01, 0.1, 1.0],
        &[0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
        &[0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
    );
    let mut limits = Limits::new(b.pick(400, 3000, 6000), Target::Loss(0.3));
    limits.histogram_every = limits.max_steps / 30;
    let cfg = base(b);
    let mut runs = Vec::new();
    for &lr in grid {
        let mut c = cfg.clone();
        set(&mut c, "optim.lr", &lr.to_string())?;
        runs.push(run_config(&format!("lr {lr}"), &seeds, &limits, &c)?);
    }
    let mut claims = Table::new(CLAIM_COLUMNS);
    for (lr, fig) in [(0.01, 500.0), (0.1, 250.0), (1.0, 150.0)] {
        claims.push(claim_row(
            &format!("lr {lr}: convergence steps"),
            fig,
            &conv_steps(find(&runs, &format!("lr {lr}"))),
            &format!("did not converge in {}", limits.max_steps),
        ));
    }
    let best = runs
        .iter()
        .filter(|(_, t)| conv_steps(t).complete())
        .min_by(|a, b| conv_steps(&a.1).mean().total_cmp(&conv_steps(&b.1).mean()));
    let diverged: Vec<&str> = runs
        .iter()
        .filter(|(_, t)| t.iter().any(|t| t.status == Status::Diverged))
        .map(|(n, _)| n.as_str())
        .collect();
    let mut conclusions = vec![match best {
        Some((n, t)) => format!("Fastest to the target: {n} ({} steps).", conv_steps(t).show("-")),
        None => "No rate converged on every seed within the budget.".into(),
    }];
    conclusions.push(if diverged.is_empty() {
        "No rate on the grid diverged.".into()
    } else {
        format!("Diverged (NaN guard) on at least one seed: {}.", diverged.join(", "))
    });
    conclusions.push(format!(
        "The article's steps fall with the rate (500, 250, 150); measured: {}.",
        [0.01, 0.1, 1.0]
            .iter()
            .map(|lr| format!(
                "lr {lr}: {}",
                conv_steps(find(&runs, &format!("lr {lr}"))).show("not converged")
            ))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    Ok(Report {
        name: "lr".into(),
        title: "lr: learning rate and convergence".into(),
        question: "How many SGD steps to the target at each learning rate?".into(),
        setup: vec![
            describe(&cfg),
            format!(
                "grid: {grid:?}; criterion: {}; budget {} steps",
                limits.target.describe(),
                limits.max_steps
            ),
        ],
        seeds: seeds.clone(),
        claims,
        results: results_table(&runs),
        extra: vec![],
        raw: raw_table("lr", &runs, &seeds),
        timing: timing_table(&runs, &seeds),
        plots: standard_plots(dir, &runs)?,
        heatmaps: heatmaps(&runs),
        images: vec![],
        conclusions,
        dir: dir.to_path_buf(),
    })
}
