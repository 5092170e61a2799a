//! `unsupervised`: a classifier, an autoencoder and a GAN on the digits; the
//! weight update at iteration 100 of each, and the GAN's samples as an image
//! grid (`gan_samples.png`).

use std::path::Path;

use nw_autograd::Var;
use nw_data::{BatchLoader, BatchSize, Dataset, LoaderConfig};
use nw_nn::loss::{Reduction, binary_cross_entropy_with_logits};
use nw_nn::{LeakyRelu, Linear, Module, Relu, Sequential, Tanh};
use nw_tensor::{Rng, Tensor};
use nw_train::{LossKind, Trainer};
use plotters::prelude::*;

use super::*;
use crate::LabOptions;
use crate::measure::Target;
use crate::report::{Report, plot, standard_plots};
use crate::stats::{Summary, num};

const LATENT: usize = 16;

fn mlp(sizes: &[usize], last: Option<Box<dyn Module>>, leaky: bool, rng: &mut Rng) -> Result<Sequential> {
    let mut m = Sequential::new();
    for w in sizes.windows(2).enumerate() {
        let (i, w) = w;
        m.push(Box::new(Linear::try_new(w[0], w[1], rng)?));
        if i + 2 < sizes.len() {
            if leaky {
                m.push(Box::new(LeakyRelu { negative_slope: 0.2 }));
            } else {
                m.push(Box::new(Relu));
            }
        }
    }
    if let Some(l) = last {
        m.push(l);
    }
    Ok(m)
}

fn flat_weights(ps: &[nw_autograd::Param]) -> Vec<f32> {
    ps.iter().filter(|p| p.shape().len() >= 2).flat_map(|p| p.value().to_vec()).collect()
}

fn mean_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).sum::<f64>() / a.len().max(1) as f64
}

/// What one GAN run measured.
struct GanRun {
    d_loss: Vec<(f64, f64)>,
    g_loss: Vec<(f64, f64)>,
    update100: Option<f64>,
    update100_g: Option<f64>,
    update100_d: Option<f64>,
    samples: Tensor,
}

/// Trains a GAN (generator 16-64-64 tanh, discriminator 64-64-1 leaky ReLU,
/// Adam 2e-4 betas (0.5, 0.999), non-saturating loss) on digits scaled to [-1, 1].
fn gan(data: &Dataset, steps: u64, seed: u64) -> Result<GanRun> {
    let mut rng = Rng::new(seed ^ 0x6A4);
    let g = mlp(&[LATENT, 64, 64], Some(Box::new(Tanh)), false, &mut rng)?;
    let d = mlp(&[64, 64, 1], None, true, &mut rng)?;
    let adam = nw_optim::Adam { lr: 2e-3, betas: (0.5, 0.999), ..Default::default() };
    let mut og = nw_optim::OptimizerConfig::Adam(adam.clone()).build(g.parameters())?;
    let mut od = nw_optim::OptimizerConfig::Adam(adam).build(d.parameters())?;
    let loader = BatchLoader::new(
        data.clone(),
        LoaderConfig { batch_size: BatchSize::Mini(32), seed, ..Default::default() },
    )?;
    let (mut d_loss, mut g_loss) = (Vec::new(), Vec::new());
    let (mut u, mut ug, mut ud) = (None, None, None);
    let mut step = 0u64;
    let every = (steps / 200).max(1);
    'outer: for epoch in 0.. {
        for batch in loader.epoch(epoch) {
            step += 1;
            let n = batch.x.shape()[0];
            let (g0, d0) = (flat_weights(&g.parameters()), flat_weights(&d.parameters()));
            // discriminator: real -> 1, generated (detached) -> 0
            let z = Tensor::randn(&[n, LATENT], 0.0, 1.0, &mut rng);
            let fake = Var::constant(g.forward(&Var::constant(z))?.value().clone());
            let ones = Var::constant(Tensor::ones(&[n, 1]));
            let zeros = Var::constant(Tensor::zeros(&[n, 1]));
            let lr_ = binary_cross_entropy_with_logits(
                &d.forward(&Var::constant(batch.x.clone()))?,
                &ones,
                Reduction::Mean,
            )?;
            let lf = binary_cross_entropy_with_logits(&d.forward(&fake)?, &zeros, Reduction::Mean)?;
            let ld = lr_.add(&lf)?;
            let dl = ld.value().item()? as f64;
            od.step(&ld.backward()?)?;
            // generator: make the discriminator say 1
            let z = Tensor::randn(&[n, LATENT], 0.0, 1.0, &mut rng);
            let lg = binary_cross_entropy_with_logits(
                &d.forward(&g.forward(&Var::constant(z))?)?,
                &ones,
                Reduction::Mean,
            )?;
            let gl = lg.value().item()? as f64;
            og.step(&lg.backward()?)?;
            if !(dl.is_finite() && gl.is_finite()) {
                break 'outer;
            }
            if step.is_multiple_of(every) {
                d_loss.push((step as f64, dl));
                g_loss.push((step as f64, gl));
            }
            if step == 100 {
                let (g1, d1) = (flat_weights(&g.parameters()), flat_weights(&d.parameters()));
                ug = Some(mean_abs_diff(&g0, &g1));
                ud = Some(mean_abs_diff(&d0, &d1));
                let all0: Vec<f32> = g0.iter().chain(&d0).copied().collect();
                let all1: Vec<f32> = g1.iter().chain(&d1).copied().collect();
                u = Some(mean_abs_diff(&all0, &all1));
            }
            if step >= steps {
                break 'outer;
            }
        }
    }
    let z = Tensor::randn(&[64, LATENT], 0.0, 1.0, &mut Rng::new(0x5A3));
    let samples = g.forward(&Var::constant(z))?.value().clone();
    Ok(GanRun { d_loss, g_loss, update100: u, update100_g: ug, update100_d: ud, samples })
}

/// Draws 64 images of 8x8 values in [-1, 1] as an 8x8 grid PNG.
fn sample_grid(path: &Path, samples: &Tensor) -> Result<()> {
    let v = samples.to_vec();
    let (cell, gap) = (4u32, 3u32);
    let side = 8 * (8 * cell + gap) + gap;
    let root = BitMapBackend::new(path, (side, side)).into_drawing_area();
    let err = |e: String| crate::LabError::Io { path: path.to_path_buf(), source: std::io::Error::other(e) };
    root.fill(&RGBColor(90, 90, 90)).map_err(|e| err(e.to_string()))?;
    for k in 0..64.min(v.len() / 64) {
        let (gx, gy) = ((k % 8) as u32, (k / 8) as u32);
        for p in 0..64 {
            let val = ((v[k * 64 + p] + 1.0) / 2.0).clamp(0.0, 1.0);
            // the digits are dark ink (1) on white (0)
            let c = (255.0 * (1.0 - val)).round() as u8;
            let x0 = (gap + gx * (8 * cell + gap) + (p % 8) as u32 * cell) as i32;
            let y0 = (gap + gy * (8 * cell + gap) + (p / 8) as u32 * cell) as i32;
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + cell as i32, y0 + cell as i32)],
                RGBColor(c, c, c).filled(),
            ))
            .map_err(|e| err(e.to_string()))?;
        }
    }
    root.present().map_err(|e| err(e.to_string()))
}

/// Runs the experiment.
pub fn run(opts: &LabOptions, dir: &Path) -> Result<Report> {
    let b = opts.budget;
    let seeds = opts.seed_list();
    let steps: u64 = b.pick(120, 3000, 8000);
    std::fs::create_dir_all(dir).map_err(crate::error::io(dir))?;
    let cfg = base(b);
    let mut limits = Limits::new(steps, Target::Loss(0.3));
    limits.stop_at_target = false;
    let classifier = run_config("classifier", &seeds, &limits, &cfg)?;
    let mut ae_limits = limits.clone();
    ae_limits.target = Target::Loss(0.5);
    let autoencoder = run_variant("autoencoder", &seeds, &ae_limits, &|seed| {
        let mut c = cfg.clone();
        c.train.seed = seed;
        let run = nw_train::build_run(&c)?;
        let ae = |d: &Dataset| Dataset::regression(d.features().clone(), d.features().clone());
        let train = ae(run.loader.dataset())?;
        let validation = ae(&run.validation)?;
        let h = b.pick(16, 32, 64);
        let model = mlp(&[64, h, 8, h, 64], None, false, &mut Rng::new(seed))?;
        let opt = nw_optim::OptimizerConfig::Adam(nw_optim::Adam { lr: 2e-3, ..Default::default() })
            .build(model.parameters())?;
        let loader = BatchLoader::new(
            train,
            LoaderConfig { batch_size: BatchSize::Mini(32), seed: seed ^ 0x5EED, ..Default::default() },
        )?;
        let mut s = Setup { trainer: Trainer::new(model, opt, LossKind::Mse), loader, validation };
        s.quiet();
        Ok(s)
    })?;
    let digits = nw_data::embedded("digits")?;
    let scaled = digits.with_features(digits.features().map(|v| v * 2.0 - 1.0))?;
    let mut gans = Vec::new();
    for &seed in &seeds {
        gans.push(gan(&scaled, steps, seed)?);
    }
    sample_grid(&dir.join("gan_samples.png"), &gans[0].samples)?;
    let gs = |f: &dyn Fn(&GanRun) -> Option<f64>| Summary::of(gans.iter().map(f));
    let mut claims = Table::new(CLAIM_COLUMNS);
    claims.push(claim_row(
        "supervised (classifier): weight update at iteration 100",
        0.003,
        &over(&classifier.1, |t| t.update_at(100)),
        "-",
    ));
    claims.push(claim_row(
        "unsupervised (GAN, both nets): weight update at iteration 100",
        0.006,
        &gs(&|g| g.update100),
        "-",
    ));
    let mut results = Table::new(&["model", "weight update @100", "final loss", "notes"]);
    results.push(vec![
        "classifier (SGD lr 0.1)".into(),
        over(&classifier.1, |t| t.update_at(100)).show("-"),
        over(&classifier.1, |t| Some(t.final_loss())).show("-"),
        format!("val accuracy {}", over(&classifier.1, |t| t.final_val_accuracy).show("-")),
    ]);
    results.push(vec![
        "autoencoder 64-h-8-h-64 (Adam 2e-3)".into(),
        over(&autoencoder.1, |t| t.update_at(100)).show("-"),
        over(&autoencoder.1, |t| Some(t.final_loss())).show("-"),
        format!("validation MSE {}", over(&autoencoder.1, |t| Some(t.final_val_loss)).show("-")),
    ]);
    results.push(vec![
        "GAN generator".into(),
        gs(&|g| g.update100_g).show("-"),
        gs(&|g| g.g_loss.last().map(|p| p.1)).show("-"),
        "generator loss -log D(G(z))".into(),
    ]);
    results.push(vec![
        "GAN discriminator".into(),
        gs(&|g| g.update100_d).show("-"),
        gs(&|g| g.d_loss.last().map(|p| p.1)).show("-"),
        "discriminator loss (real + fake BCE)".into(),
    ]);
    let runs = vec![classifier.clone(), autoencoder.clone()];
    let mut plots = standard_plots(dir, &runs)?;
    plots.push(plot(
        dir,
        "gan_loss",
        "GAN losses (seed 0)",
        "step",
        &[("discriminator".into(), gans[0].d_loss.clone()), ("generator".into(), gans[0].g_loss.clone())],
        false,
    )?);
    let mut raw = raw_table("unsupervised", &runs, &seeds);
    for (g, seed) in gans.iter().zip(&seeds) {
        let o = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
        raw.push(vec![
            "unsupervised".into(),
            "GAN".into(),
            seed.to_string(),
            "trained".into(),
            steps.to_string(),
            String::new(),
            o(g.g_loss.last().map(|p| p.1)),
            String::new(),
            String::new(),
            o(g.update100),
            String::new(),
        ]);
    }
    let conclusions = vec![
        format!(
            "At iteration 100 the GAN's weights move {} per step against the classifier's {}: Adam's steps are about lr per weight (2e-3), plain SGD's are lr x gradient.",
            num(gs(&|g| g.update100).mean()),
            num(over(&classifier.1, |t| t.update_at(100)).mean())
        ),
        "The comparison says more about the optimizers than about supervision; the article's 2x ratio has no setup to check against.".into(),
    ];
    Ok(Report {
        name: "unsupervised".into(),
        title: "unsupervised: classifier, autoencoder and GAN".into(),
        question:
            "How large are the weight updates of supervised and unsupervised training on the same digits?"
                .into(),
        setup: vec![
            describe(&cfg),
            "autoencoder: 64-h-8-h-64 ReLU MLP, MSE on standardised features, Adam 2e-3, batch 32".into(),
            format!(
                "GAN: generator {LATENT}-64-64 (ReLU, tanh out), discriminator 64-64-1 (leaky ReLU 0.2), Adam 2e-3 betas (0.5, 0.999), non-saturating loss, digits scaled to [-1, 1], batch 32"
            ),
            format!(
                "{steps} steps each; the weight update of the GAN at iteration 100 is over both networks' weights (one discriminator and one generator step)"
            ),
        ],
        seeds: seeds.clone(),
        claims,
        results,
        extra: vec![("Classifier and autoencoder".into(), results_table(&runs))],
        raw,
        timing: timing_table(&runs, &seeds),
        plots,
        heatmaps: vec![],
        images: vec![("gan_samples.png".into(), "64 GAN samples (seed 0, fixed latent draws)".into())],
        conclusions,
        dir: dir.to_path_buf(),
    })
}
