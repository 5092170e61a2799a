//! `pruning`: accuracy against sparsity (global magnitude pruning of the
//! weight matrices) for one-shot pruning without fine-tuning, one-shot with
//! fine-tuning, and gradual pruning (sparsity raised in equal increments with
//! an epoch of training after each, masks kept).

use std::path::Path;

use nw_data::Dataset;
use nw_reg::prune::Pruner;
use nw_tensor::Tensor;

use super::*;
use crate::LabOptions;
use crate::measure::{Setup, Target, weights};
use crate::report::{Report, plot, standard_plots};
use crate::stats::{Summary, num};

fn val_acc(s: &Setup, v: &Dataset) -> Result<f64> {
    Ok(s.trainer.evaluate(v, 1024)?.accuracy.unwrap_or(f64::NAN))
}

fn restore(s: &Setup, snapshot: &[Tensor]) -> Result<()> {
    for ((_, p), t) in s.trainer.named_parameters().iter().zip(snapshot) {
        p.set(t.clone())?;
    }
    Ok(())
}

fn fine_tune(s: &mut Setup, cfg: &nw_train::RunConfig, epochs: u64, pruner: Pruner) -> Result<Pruner> {
    s.trainer.optimizer =
        nw_train::config::build_optimizer(&cfg.optim, nw_nn::Module::parameters(&s.trainer.model))?;
    s.trainer.reg.pruner = Some(pruner);
    for _ in 0..epochs {
        s.trainer.train_epoch(&s.loader, None, &mut |_, _, _| {})?;
    }
    Ok(s.trainer.reg.pruner.take().expect("set above"))
}

/// Runs the experiment.
pub fn run(opts: &LabOptions, dir: &Path) -> Result<Report> {
    let b = opts.budget;
    let seeds = opts.seed_list();
    let epochs: u64 = b.pick(3, 30, 60);
    let ft: u64 = b.pick(1, 5, 10);
    let grid: &[f64] = b.pick(
        &[0.0, 0.5, 0.9],
        &[0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95],
        &[0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95],
    );
    let mut cfg = base(b);
    cfg.train.epochs = epochs;
    let per_epoch = Setup::from_config(&cfg)?.loader.batches_per_epoch() as u64;
    let mut limits = Limits::new(epochs * per_epoch, Target::Loss(0.05));
    limits.stop_at_target = false;
    let methods = ["one-shot, no fine-tuning", "one-shot + fine-tuning", "gradual"];
    // acc[method][sparsity] over seeds
    let mut acc = vec![vec![Vec::new(); grid.len()]; 3];
    let mut dense_runs = Vec::new();
    let mut raw =
        Table::new(&["experiment", "method", "sparsity", "seed", "measured_sparsity", "val_accuracy"]);
    for &seed in &seeds {
        let mut c = cfg.clone();
        c.train.seed = seed;
        let (trace, mut s) = crate::measure::train(Setup::from_config(&c)?, &limits)?;
        dense_runs.push(trace);
        let snapshot: Vec<Tensor> = s.trainer.named_parameters().iter().map(|(_, p)| p.value()).collect();
        let w: Vec<nw_autograd::Param> = weights(&s.trainer).into_iter().map(|(_, p)| p).collect();
        for (j, &sp) in grid.iter().enumerate() {
            restore(&s, &snapshot)?;
            let mut pr = Pruner::new();
            pr.global_l1_to_sparsity(&w, sp)?;
            pr.apply(&w)?;
            let measured = pr.report(&w).overall_sparsity();
            let mut push = |m: usize, a: f64, measured: f64| {
                acc[m][j].push(Some(a));
                raw.push(vec![
                    "pruning".into(),
                    methods[m].into(),
                    sp.to_string(),
                    seed.to_string(),
                    format!("{measured}"),
                    format!("{a}"),
                ]);
            };
            push(0, val_acc(&s, &s.validation)?, measured);
            let pr = fine_tune(&mut s, &c, ft, pr)?;
            push(1, val_acc(&s, &s.validation)?, pr.report(&w).overall_sparsity());
            // gradual: `ft` increments of sparsity, one fine-tuning epoch after each
            restore(&s, &snapshot)?;
            let mut pr = Pruner::new();
            for k in 1..=ft {
                pr.global_l1_to_sparsity(&w, sp * k as f64 / ft as f64)?;
                pr.apply(&w)?;
                pr = fine_tune(&mut s, &c, 1, pr)?;
            }
            push(2, val_acc(&s, &s.validation)?, pr.report(&w).overall_sparsity());
        }
    }
    let sum = |m: usize, j: usize| Summary::of(acc[m][j].iter().copied());
    let mut results = Table::new(&["sparsity", methods[0], methods[1], methods[2]]);
    for (j, sp) in grid.iter().enumerate() {
        results.push(vec![
            format!("{}%", num(sp * 100.0)),
            sum(0, j).show("-"),
            sum(1, j).show("-"),
            sum(2, j).show("-"),
        ]);
    }
    let series: Vec<crate::report::Series> = (0..3)
        .map(|m| {
            (
                methods[m].to_string(),
                grid.iter().enumerate().map(|(j, sp)| (sp * 100.0, sum(m, j).mean())).collect(),
            )
        })
        .collect();
    let mut plots = vec![plot(
        dir,
        "accuracy_vs_sparsity",
        "Validation accuracy against sparsity",
        "sparsity %",
        &series,
        false,
    )?];
    let dense: Vec<Runs> = vec![("dense training".into(), dense_runs)];
    plots.extend(standard_plots(dir, &dense)?);
    let mut claims = Table::new(CLAIM_COLUMNS);
    let j90 = grid.iter().position(|&s| (s - 0.9).abs() < 1e-9);
    for m in 0..3 {
        let drop = j90.map(|j| {
            Summary::of(
                acc[m][0].iter().zip(&acc[m][j]).map(|(a, b)| Some(100.0 * (a.as_ref()? - b.as_ref()?))),
            )
        });
        let (shown, verdict) = match &drop {
            Some(d) if !d.values.is_empty() => (
                d.show("-"),
                if d.mean() < 2.0 {
                    "agrees".to_string()
                } else {
                    format!("disagrees: {} points lost", num(d.mean()))
                },
            ),
            _ => ("-".into(), "disagrees: not measured".into()),
        };
        claims.push(vec![
            format!("90% pruning, {}: accuracy lost (points)", methods[m]),
            "< 2".into(),
            shown,
            verdict,
        ]);
    }
    let conclusions = vec![
        format!("Dense validation accuracy: {}.", sum(0, 0).show("-")),
        format!(
            "At 90% sparsity: one-shot without fine-tuning {}, with {ft} epochs of fine-tuning {}, gradual {}.",
            j90.map_or("-".into(), |j| sum(0, j).show("-")),
            j90.map_or("-".into(), |j| sum(1, j).show("-")),
            j90.map_or("-".into(), |j| sum(2, j).show("-"))
        ),
        "Whether \"90% costs under 2%\" holds depends on fine-tuning: the masks alone remove most of the signal the small MLP carries.".into(),
    ];
    let mut timing = Table::new(&["variant", "seed", "wall_s"]);
    for (t, seed) in dense[0].1.iter().zip(&seeds) {
        timing.push(vec!["dense training".into(), seed.to_string(), format!("{:.3}", t.wall_s)]);
    }
    Ok(Report {
        name: "pruning".into(),
        title: "pruning: accuracy against sparsity".into(),
        question: "How much validation accuracy does magnitude pruning cost at each sparsity, and what do fine-tuning and gradual pruning recover?".into(),
        setup: vec![
            describe(&cfg),
            format!("dense training {epochs} epochs; global L1 (magnitude) pruning of all weight matrices together; fine-tuning {ft} epochs of SGD with the masks kept; gradual: {ft} equal sparsity increments, one epoch after each"),
        ],
        seeds: seeds.clone(),
        claims,
        results,
        extra: vec![("Dense training".into(), results_table(&dense))],
        raw,
        timing,
        plots,
        heatmaps: vec![],
        images: vec![],
        conclusions,
        dir: dir.to_path_buf(),
    })
}
