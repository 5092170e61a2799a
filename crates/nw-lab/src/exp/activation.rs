//! `activation`: the same small CNN on the 8x8 digit images with ReLU,
//! sigmoid or tanh after every convolution and hidden layer; the weight
//! update at iteration 100 and convergence.

use std::path::Path;

use nw_nn::{Conv2d, Flatten, Linear, MaxPool2d, Module, Relu, Sequential, Sigmoid, Tanh};
use nw_tensor::Rng;
use nw_tensor::conv::Conv2dSpec;
use nw_train::Trainer;
use nw_train::models::Reshape;

use super::*;
use crate::LabOptions;
use crate::measure::Target;
use crate::report::{Report, heatmaps, layer_ratio_plot, standard_plots};
use crate::stats::num;

/// The nonlinearities compared.
pub const ACTIVATIONS: &[&str] = &["ReLU", "sigmoid", "tanh"];

fn act(name: &str) -> Box<dyn Module> {
    match name {
        "ReLU" => Box::new(Relu),
        "sigmoid" => Box::new(Sigmoid),
        _ => Box::new(Tanh),
    }
}

/// conv(1->c1, 3x3, pad 1) act pool2, conv(c1->c2) act pool2, flatten,
/// linear(c2*2*2 -> h) act, linear(h -> 10).
fn cnn(name: &str, c: (usize, usize, usize), rng: &mut Rng) -> Result<Sequential> {
    let spec = Conv2dSpec { padding: (1, 1), ..Default::default() };
    let mut m = Sequential::new();
    m.push(Box::new(Reshape { shape: vec![1, 8, 8] }));
    m.push(Box::new(Conv2d::new(1, c.0, (3, 3), spec, true, rng)?));
    m.push(act(name));
    m.push(Box::new(MaxPool2d::new(2)));
    m.push(Box::new(Conv2d::new(c.0, c.1, (3, 3), spec, true, rng)?));
    m.push(act(name));
    m.push(Box::new(MaxPool2d::new(2)));
    m.push(Box::new(Flatten::default()));
    m.push(Box::new(Linear::try_new(c.1 * 4, c.2, rng)?));
    m.push(act(name));
    m.push(Box::new(Linear::try_new(c.2, 10, rng)?));
    Ok(m)
}

/// Runs the experiment.
pub fn run(opts: &LabOptions, dir: &Path) -> Result<Report> {
    let b = opts.budget;
    let seeds = opts.seed_list();
    let widths = b.pick((4, 8, 16), (16, 32, 64), (32, 64, 128));
    let mut limits = Limits::new(b.pick(120, 2000, 4000), Target::Loss(0.3));
    limits.histogram_every = limits.max_steps / 30;
    let mut cfg = base(b);
    let sgd = nw_optim::Sgd { lr: 0.05, momentum: 0.9, ..Default::default() };
    cfg.optim = nw_optim::OptimizerConfig::Sgd(sgd.clone());
    let mut runs = Vec::new();
    for name in ACTIVATIONS {
        runs.push(run_variant(name, &seeds, &limits, &|seed| {
            let mut c = cfg.clone();
            c.train.seed = seed;
            let mut s = Setup::from_config(&c)?;
            let model = cnn(name, widths, &mut Rng::new(seed ^ 0xC11))?;
            let opt = nw_optim::OptimizerConfig::Sgd(sgd.clone()).build(model.parameters())?;
            s.trainer = Trainer::new(model, opt, s.trainer.loss);
            s.quiet();
            Ok(s)
        })?);
    }
    let mut claims = Table::new(CLAIM_COLUMNS);
    for (name, fig) in [("ReLU", 0.003), ("sigmoid", 0.003), ("tanh", 0.004)] {
        claims.push(claim_row(
            &format!("{name}: weight update at iteration 100"),
            fig,
            &over(find(&runs, name), |t| t.update_at(100)),
            "-",
        ));
    }
    let u = |n: &str| over(find(&runs, n), |t| t.update_at(100)).mean();
    let conclusions = vec![
        format!(
            "Update at iteration 100: ReLU {}, sigmoid {}, tanh {} (the article: 0.003, 0.003, 0.004).",
            num(u("ReLU")),
            num(u("sigmoid")),
            num(u("tanh"))
        ),
        format!(
            "Convergence: ReLU {}, sigmoid {}, tanh {}; sigmoid's small derivative (at most 1/4) slows the early layers.",
            conv_steps(find(&runs, "ReLU")).show("did not converge"),
            conv_steps(find(&runs, "sigmoid")).show("did not converge"),
            conv_steps(find(&runs, "tanh")).show("did not converge")
        ),
    ];
    let mut plots = standard_plots(dir, &runs)?;
    plots.push(layer_ratio_plot(dir, "layer_ratio_sigmoid", "sigmoid CNN", &find(&runs, "sigmoid")[0])?);
    Ok(Report {
        name: "activation".into(),
        title: "activation: ReLU, sigmoid and tanh in a CNN".into(),
        question:
            "How does the nonlinearity change the weight update and the speed of a small CNN on images?"
                .into(),
        setup: vec![
            format!(
                "data: the digits as 1x8x8 images (standardised); model: conv3x3({}) act pool2, conv3x3({}) act pool2, linear({}) act, linear(10); PyTorch default initialisation",
                widths.0, widths.1, widths.2
            ),
            "optimizer: SGD lr 0.05 momentum 0.9; batch 32".into(),
            format!("criterion: {}; budget {} steps", limits.target.describe(), limits.max_steps),
        ],
        seeds: seeds.clone(),
        claims,
        results: results_table(&runs),
        extra: vec![],
        raw: raw_table("activation", &runs, &seeds),
        timing: timing_table(&runs, &seeds),
        plots,
        heatmaps: heatmaps(&runs),
        images: vec![],
        conclusions,
        dir: dir.to_path_buf(),
    })
}
