//! `rnn`: a plain tanh RNN, an LSTM and a GRU on two sequence tasks, each
//! with and without gradient-norm clipping: the digit images read row by row
//! (8 steps of 8 pixels), and the adding problem (a long-range synthetic
//! task: the sum of the two values marked in a sequence of random values).

use std::path::Path;

use nw_data::{BatchLoader, BatchSize, Dataset, LoaderConfig};
use nw_tensor::{Rng, Tensor};
use nw_train::config::ModelKind;
use nw_train::models::{ModelSpec, build_model};
use nw_train::{LossKind, Trainer};

use super::*;
use crate::LabOptions;
use crate::measure::Target;
use crate::report::{Report, heatmaps, standard_plots};
use crate::stats::num;

/// The adding problem: `n` sequences of `t` steps with two channels (a value
/// drawn uniformly from [0, 1), and a marker that is 1 at two positions, one
/// in each half); the target is the sum of the two marked values.
pub fn adding_problem(n: usize, t: usize, rng: &mut Rng) -> Result<Dataset> {
    let mut x = vec![0.0f32; n * t * 2];
    let mut y = vec![0.0f32; n];
    let half = (t / 2).max(1);
    for i in 0..n {
        for s in 0..t {
            x[(i * t + s) * 2] = rng.next_f32();
        }
        let a = (rng.next_u64() % half as u64) as usize;
        let b = (half + (rng.next_u64() % (t - half).max(1) as u64) as usize).min(t - 1);
        for p in [a, b] {
            x[(i * t + p) * 2 + 1] = 1.0;
            y[i] += x[(i * t + p) * 2];
        }
    }
    Ok(Dataset::regression(Tensor::from_vec(x, &[n, 1, t, 2])?, Tensor::from_vec(y, &[n, 1])?)?)
}

fn adam() -> nw_optim::OptimizerConfig {
    nw_optim::OptimizerConfig::Adam(nw_optim::Adam { lr: 5e-3, ..Default::default() })
}

/// Runs the experiment.
pub fn run(opts: &LabOptions, dir: &Path) -> Result<Report> {
    let b = opts.budget;
    let seeds = opts.seed_list();
    let width = b.pick(16, 32, 64);
    let mut rows_limits = Limits::new(b.pick(120, 2000, 4000), Target::Loss(0.3));
    rows_limits.histogram_every = rows_limits.max_steps / 30;
    let mut add_limits = Limits::new(b.pick(120, 2000, 4000), Target::Loss(0.02));
    add_limits.histogram_every = add_limits.max_steps / 30;
    let (n_add, t_add) = b.pick((256, 10), (2048, 30), (4096, 50));
    let cells = [("RNN", ModelKind::Rnn), ("LSTM", ModelKind::Lstm), ("GRU", ModelKind::Gru)];
    let mut rows = Vec::new();
    let mut adding = Vec::new();
    for clip in [None, Some(1.0)] {
        let suffix = if clip.is_some() { ", clip 1" } else { "" };
        for (name, kind) in cells {
            let mut c = base(b);
            c.model.kind = kind;
            c.model.width = width;
            c.optim = adam();
            c.reg.clip_grad_norm = clip;
            rows.push(run_config(&format!("{name}{suffix}"), &seeds, &rows_limits, &c)?);
            adding.push(run_variant(&format!("{name}{suffix}"), &seeds, &add_limits, &|seed| {
                let mut rng = Rng::new(seed ^ 0xADD);
                let data = adding_problem(n_add, t_add, &mut rng)?;
                let split = data.split(0.2, 0.0, &mut rng)?;
                let spec = match kind {
                    ModelKind::Lstm => ModelSpec::Lstm { hidden: width, layers: 1 },
                    ModelKind::Gru => ModelSpec::Gru { hidden: width, layers: 1 },
                    _ => ModelSpec::Rnn { hidden: width, layers: 1 },
                };
                let built = build_model(&spec, &[1, t_add, 2], 1, &mut Rng::new(seed))?;
                let opt = adam().build(nw_nn::Module::parameters(&built.model))?;
                let mut trainer = Trainer::new(built.model, opt, LossKind::Mse);
                trainer.reg.clip_grad_norm = clip;
                let loader = BatchLoader::new(
                    split.train,
                    LoaderConfig {
                        batch_size: BatchSize::Mini(32),
                        seed: seed ^ 0x5EED,
                        ..Default::default()
                    },
                )?;
                let mut s = Setup { trainer, loader, validation: split.validation };
                s.quiet();
                Ok(s)
            })?);
        }
    }
    let mut claims = Table::new(CLAIM_COLUMNS);
    for (name, fig) in [("LSTM", 0.002), ("GRU", 0.005)] {
        claims.push(claim_row(
            &format!("{name}: weight update at iteration 100 (image rows, no clipping)"),
            fig,
            &over(find(&rows, name), |t| t.update_at(100)),
            "-",
        ));
    }
    let u = |n: &str| over(find(&rows, n), |t| t.update_at(100)).mean();
    let mut add_table = results_table(&adding);
    add_table.header[4] = "final smoothed MSE".into();
    let conclusions = vec![
        format!(
            "Image rows, update at iteration 100: RNN {}, LSTM {}, GRU {} (Adam: the step is about lr per weight whatever the gradient, so the cells differ little).",
            num(u("RNN")),
            num(u("LSTM")),
            num(u("GRU"))
        ),
        format!(
            "Adding problem (T = {t_add}), steps to MSE < 0.02: RNN {}, LSTM {}, GRU {}; with clipping: RNN {}, LSTM {}, GRU {}.",
            conv_steps(find(&adding, "RNN")).show("did not converge"),
            conv_steps(find(&adding, "LSTM")).show("did not converge"),
            conv_steps(find(&adding, "GRU")).show("did not converge"),
            conv_steps(find(&adding, "RNN, clip 1")).show("did not converge"),
            conv_steps(find(&adding, "LSTM, clip 1")).show("did not converge"),
            conv_steps(find(&adding, "GRU, clip 1")).show("did not converge")
        ),
        "Predicting the mean (1.0) scores MSE 1/6 ≈ 0.167 on the adding problem: a run below 0.02 has learned to find the marked values.".into(),
    ];
    let mut plots = standard_plots(dir, &rows)?;
    for p in &mut plots {
        p.title = format!("image rows: {}", p.title);
    }
    for mut p in standard_plots(&dir.join("adding"), &adding)? {
        p.title = format!("adding problem: {}", p.title);
        p.stem = format!("adding/{}", p.stem);
        plots.push(p);
    }
    let mut all: Vec<Runs> = rows.iter().map(|(n, t)| (format!("rows: {n}"), t.clone())).collect();
    all.extend(adding.iter().map(|(n, t)| (format!("adding: {n}"), t.clone())));
    Ok(Report {
        name: "rnn".into(),
        title: "rnn: RNN, LSTM and GRU, with and without clipping".into(),
        question:
            "How do the recurrent cells differ in weight update and in learning a long-range dependency?"
                .into(),
        setup: vec![
            format!(
                "image rows: the digits as 8 steps of 8 pixels (standardised), one layer of {width} units, the last step classified"
            ),
            format!(
                "adding problem: {n_add} sequences of {t_add} steps (80% train, 20% validation), MSE loss, one layer of {width} units"
            ),
            "optimizer: Adam lr 5e-3 (torch betas); batch 32; clipping: global gradient norm 1".into(),
            format!(
                "criteria: image rows {}; adding {}; budget {} steps",
                rows_limits.target.describe(),
                add_limits.target.describe(),
                rows_limits.max_steps
            ),
        ],
        seeds: seeds.clone(),
        claims,
        results: results_table(&rows),
        extra: vec![("Adding problem".into(), add_table)],
        raw: raw_table("rnn", &all, &seeds),
        timing: timing_table(&all, &seeds),
        plots,
        heatmaps: heatmaps(&rows),
        images: vec![],
        conclusions,
        dir: dir.to_path_buf(),
    })
}
