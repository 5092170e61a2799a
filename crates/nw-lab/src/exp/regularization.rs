//! `regularization`: none, L1, L2, elastic net, dropout, max-norm and early
//! stopping on an MLP trained long enough on a small training split to
//! overfit; the train-validation accuracy gap and the weight update.

use std::path::Path;

use super::*;
use crate::LabOptions;
use crate::measure::Target;
use crate::report::{Report, heatmaps, standard_plots};
use crate::stats::{Summary, num};

/// The variants: (name, keys set).
pub const VARIANTS: &[(&str, &[(&str, &str)])] = &[
    ("none", &[]),
    ("L1 1e-4", &[("reg.l1", "0.0001")]),
    ("L2 1e-3", &[("reg.l2", "0.001")]),
    ("elastic (L1 5e-5 + L2 5e-4)", &[("reg.l1", "0.00005"), ("reg.l2", "0.0005")]),
    ("dropout 0.5", &[("model.dropout", "0.5")]),
    ("max-norm 2", &[("reg.max_norm", "2.0")]),
    ("early stopping (patience 5)", &[("reg.early_stopping", "5")]),
];

/// Runs the experiment.
pub fn run(opts: &LabOptions, dir: &Path) -> Result<Report> {
    let b = opts.budget;
    let seeds = opts.seed_list();
    let epochs: u64 = b.pick(8, 60, 120);
    let mut cfg = base(b);
    // a small training split (35% of the digits) so that the net overfits
    cfg.data.validation = 0.5;
    cfg.model.hidden = b.pick(vec![64], vec![256], vec![512]);
    cfg.train.epochs = epochs;
    let per_epoch = Setup::from_config(&cfg)?.loader.batches_per_epoch() as u64;
    let mut limits = Limits::new(epochs * per_epoch, Target::Loss(0.05));
    limits.stop_at_target = false;
    limits.histogram_every = limits.max_steps / 30;
    let mut runs = Vec::new();
    for (name, keys) in VARIANTS {
        let mut c = cfg.clone();
        for (k, v) in *keys {
            set(&mut c, k, v)?;
        }
        runs.push(run_config(name, &seeds, &limits, &c)?);
    }
    let gap = |n: &str| over(find(&runs, n), |t| t.overfit_gap());
    let none_gap = gap("none");
    let reduction = Summary::of(find(&runs, "L2 1e-3").iter().zip(find(&runs, "none")).map(|(l2, n)| {
        let g0 = n.overfit_gap()?;
        let g = l2.overfit_gap()?;
        (g0 > 0.0).then(|| 100.0 * (1.0 - g / g0))
    }));
    let mut claims = Table::new(CLAIM_COLUMNS);
    for (name, row, fig) in
        [("L1 1e-4", "L1", 0.003), ("L2 1e-3", "L2", 0.002), ("dropout 0.5", "dropout", 0.001)]
    {
        claims.push(claim_row(
            &format!("{row}: weight update at iteration 100"),
            fig,
            &over(find(&runs, name), |t| t.update_at(100)),
            "-",
        ));
    }
    let r = reduction.mean();
    claims.push(vec![
        "L2 reduces overfitting (train-val accuracy gap), %".into(),
        "40-60%".into(),
        reduction.show("-"),
        if (40.0..=60.0).contains(&r) { "agrees".into() } else { format!("disagrees: {}%", num(r)) },
    ]);
    let mut gaps = Table::new(&[
        "regularizer",
        "train accuracy",
        "val accuracy",
        "gap (train - val)",
        "gap change vs none",
    ]);
    for (n, t) in &runs {
        let g = gap(n);
        gaps.push(vec![
            n.clone(),
            over(t, |t| t.final_train_accuracy).show("-"),
            over(t, |t| t.final_val_accuracy).show("-"),
            g.show("-"),
            if none_gap.mean() > 0.0 {
                format!("{}%", num(100.0 * (g.mean() / none_gap.mean() - 1.0)))
            } else {
                "-".into()
            },
        ]);
    }
    let conclusions = vec![
        format!("Without regularization the train-validation gap is {} (accuracy).", none_gap.show("-")),
        format!("L2 (1e-3 as a loss term) changes the gap by {}% (the claim: -40 to -60%).", num(-r)),
        format!(
            "Smallest gap: {}.",
            runs.iter()
                .min_by(|a, b| gap(&a.0).mean().total_cmp(&gap(&b.0).mean()))
                .map(|(n, _)| format!("{n} ({})", gap(n).show("-")))
                .unwrap_or_default()
        ),
        "A gap of a few points on 630 training examples is a handful of validation examples; read the spread.".into(),
    ];
    Ok(Report {
        name: "regularization".into(),
        title: "regularization: overfitting and weight updates".into(),
        question: "How much does each regularizer shrink the train-validation accuracy gap, and how does it change the weight update?".into(),
        setup: vec![
            describe(&cfg),
            format!("{epochs} epochs ({} steps); overfitting = final train accuracy - final validation accuracy (both in evaluation mode)", limits.max_steps),
        ],
        seeds: seeds.clone(),
        claims,
        results: results_table(&runs),
        extra: vec![("Overfitting gap".into(), gaps)],
        raw: raw_table("regularization", &runs, &seeds),
        timing: timing_table(&runs, &seeds),
        plots: standard_plots(dir, &runs)?,
        heatmaps: heatmaps(&runs),
        images: vec![],
        conclusions,
        dir: dir.to_path_buf(),
    })
}
