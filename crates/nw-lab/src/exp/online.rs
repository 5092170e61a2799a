//! `online`: a trained classifier keeps learning from a stream of shifted
//! examples (the digit images moved one pixel to the right), one update per
//! example; accuracy on shifted held-out data (adaptation) against accuracy
//! on the original held-out data (forgetting), at several learning rates.

use std::path::Path;

use nw_data::Dataset;
use nw_tensor::Tensor;

use super::*;
use crate::LabOptions;
use crate::measure::{Target, weights};
use crate::report::{Report, plot};
use crate::stats::{Summary, num};

/// The examples of `d` (flat 8x8 images) moved one pixel to the right, the
/// first column filled with the row's former first value.
pub fn shift_right(d: &Dataset) -> Result<Dataset> {
    let v = d.features().to_vec();
    let mut out = v.clone();
    for (img, src) in out.chunks_exact_mut(64).zip(v.chunks_exact(64)) {
        for r in 0..8 {
            for c in 1..8 {
                img[r * 8 + c] = src[r * 8 + c - 1];
            }
        }
    }
    Ok(d.with_features(Tensor::from_vec(out, d.features().shape())?)?)
}

fn acc(s: &Setup, d: &Dataset) -> Result<f64> {
    Ok(s.trainer.evaluate(d, 1024)?.accuracy.unwrap_or(f64::NAN))
}

/// Runs the experiment.
pub fn run(opts: &LabOptions, dir: &Path) -> Result<Report> {
    let b = opts.budget;
    let seeds = opts.seed_list();
    let epochs: u64 = b.pick(3, 20, 40);
    let stream_len: usize = b.pick(150, 1000, 1200);
    let every = (stream_len / 20).max(1);
    let rates: &[f64] =
        b.pick(&[0.01, 0.1], &[0.003, 0.01, 0.03, 0.1], &[0.001, 0.003, 0.01, 0.03, 0.1, 0.3]);
    let cfg = base(b);
    // per rate, per seed: (updates, shifted accuracy, original accuracy) points and the mean update
    type Stream = (Vec<(f64, f64, f64)>, f64);
    let mut rows: Vec<Vec<Stream>> = vec![Vec::new(); rates.len()];
    let mut before = Vec::new();
    for &seed in &seeds {
        let mut c = cfg.clone();
        c.train.seed = seed;
        let s0 = Setup::from_config(&c)?;
        let per_epoch = s0.loader.batches_per_epoch() as u64;
        let mut limits = Limits::new(epochs * per_epoch, Target::Loss(0.05));
        limits.stop_at_target = false;
        let (_, mut s) = crate::measure::train(s0, &limits)?;
        let val = s.validation.clone();
        let val_shift = shift_right(&val)?;
        let stream = shift_right(s.loader.dataset())?;
        let snapshot: Vec<Tensor> = s.trainer.named_parameters().iter().map(|(_, p)| p.value()).collect();
        before.push((acc(&s, &val)?, acc(&s, &val_shift)?));
        let order = s.loader.epoch_order(1_000_000);
        for (j, &lr) in rates.iter().enumerate() {
            for ((_, p), t) in s.trainer.named_parameters().iter().zip(&snapshot) {
                p.set(t.clone())?;
            }
            let sgd = nw_optim::OptimizerConfig::Sgd(nw_optim::Sgd { lr, ..Default::default() });
            s.trainer.optimizer = sgd.build(nw_nn::Module::parameters(&s.trainer.model))?;
            let w = weights(&s.trainer);
            let mut curve = vec![(0.0, before.last().expect("pushed").1, before.last().expect("pushed").0)];
            let mut moved = 0.0f64;
            for k in 0..stream_len {
                let i = order[k % order.len()];
                let x = stream.features().index_select(0, &[i])?;
                let y = stream.targets().select(&[i])?;
                let w0: Vec<Vec<f32>> = w.iter().map(|(_, p)| p.value().to_vec()).collect();
                s.trainer.train_step(&x, &y)?;
                let (mut sum, mut n) = (0.0f64, 0usize);
                for ((_, p), b0) in w.iter().zip(&w0) {
                    for (a, b) in p.value().to_vec().iter().zip(b0) {
                        sum += (a - b).abs() as f64;
                        n += 1;
                    }
                }
                moved += sum / n.max(1) as f64;
                if (k + 1) % every == 0 {
                    curve.push(((k + 1) as f64, acc(&s, &val_shift)?, acc(&s, &val)?));
                }
            }
            rows[j].push((curve, moved / stream_len as f64));
        }
    }
    let b_orig = Summary::of(before.iter().map(|b| Some(b.0)));
    let b_shift = Summary::of(before.iter().map(|b| Some(b.1)));
    let mut results = Table::new(&[
        "stream lr",
        "shifted val accuracy after",
        "original val accuracy after",
        "adaptation (points)",
        "forgetting (points)",
        "mean weight update per example",
    ]);
    let mut raw = Table::new(&[
        "experiment",
        "lr",
        "seed",
        "shifted_before",
        "shifted_after",
        "original_before",
        "original_after",
        "mean_update",
    ]);
    let mut series_a = Vec::new();
    let mut series_f = Vec::new();
    for (j, &lr) in rates.iter().enumerate() {
        let last = |k: usize| {
            Summary::of(rows[j].iter().map(|(c, _)| c.last().map(|p| if k == 1 { p.1 } else { p.2 })))
        };
        let adapt =
            Summary::of(rows[j].iter().zip(&before).map(|((c, _), b)| Some(100.0 * (c.last()?.1 - b.1))));
        let forget =
            Summary::of(rows[j].iter().zip(&before).map(|((c, _), b)| Some(100.0 * (b.0 - c.last()?.2))));
        results.push(vec![
            lr.to_string(),
            last(1).show("-"),
            last(2).show("-"),
            adapt.show("-"),
            forget.show("-"),
            Summary::of(rows[j].iter().map(|(_, m)| Some(*m))).show("-"),
        ]);
        for (((c, m), bf), seed) in rows[j].iter().zip(&before).zip(&seeds) {
            let l = c.last().expect("curve");
            raw.push(vec![
                "online".into(),
                lr.to_string(),
                seed.to_string(),
                format!("{}", bf.1),
                format!("{}", l.1),
                format!("{}", bf.0),
                format!("{}", l.2),
                format!("{m}"),
            ]);
        }
        let mean_at = |k: usize, f: &dyn Fn(&(f64, f64, f64)) -> f64| {
            rows[j].iter().map(|(c, _)| f(&c[k])).sum::<f64>() / rows[j].len() as f64
        };
        let n = rows[j][0].0.len();
        series_a.push((
            format!("lr {lr}: shifted"),
            (0..n).map(|k| (rows[j][0].0[k].0, mean_at(k, &|p| p.1))).collect(),
        ));
        series_f.push((
            format!("lr {lr}: original"),
            (0..n).map(|k| (rows[j][0].0[k].0, mean_at(k, &|p| p.2))).collect(),
        ));
    }
    let mut both: Vec<crate::report::Series> = series_a;
    both.extend(series_f);
    let plots = vec![plot(
        dir,
        "adaptation_forgetting",
        "Validation accuracy during the shifted stream (shifted and original data)",
        "online updates",
        &both,
        false,
    )?];
    let mut claims = Table::new(CLAIM_COLUMNS);
    claims.push(vec![
        "accuracy on shifted data before the stream".into(),
        "none given".into(),
        b_shift.show("-"),
        "no article figure to compare".into(),
    ]);
    claims.push(vec![
        "accuracy on original data before the stream".into(),
        "none given".into(),
        b_orig.show("-"),
        "no article figure to compare".into(),
    ]);
    let conclusions = vec![
        format!(
            "Shifting the images one pixel costs the trained model {} points of accuracy before any online update.",
            num(100.0 * (b_orig.mean() - b_shift.mean()))
        ),
        "A larger online learning rate adapts faster to the shifted stream and forgets more of the original data: compare the adaptation and forgetting columns.".into(),
    ];
    let mut timing = Table::new(&["note"]);
    timing.push(vec!["online: wall times not recorded".into()]);
    Ok(Report {
        name: "online".into(),
        title: "online: adaptation to a shifted stream against forgetting".into(),
        question: "When a trained model keeps learning online from shifted data, how much does it adapt and how much of the original task does it forget?".into(),
        setup: vec![
            describe(&cfg),
            format!("trained {epochs} epochs, then {stream_len} online SGD updates (one example each, no momentum) on training examples shifted one pixel right, in a seeded order"),
            format!("evaluated every {every} updates on the validation split, shifted and original; stream learning rates {rates:?}"),
        ],
        seeds: seeds.clone(),
        claims,
        results,
        extra: vec![],
        raw,
        timing,
        plots,
        heatmaps: vec![],
        images: vec![],
        conclusions,
        dir: dir.to_path_buf(),
    })
}
