//! `init`: initialisers on a deep ReLU MLP and a deep tanh MLP. Convergence
//! steps per initialiser, and the per-layer activation and gradient scale at
//! step 0 (before any update) that explain them.

use std::path::Path;

use nw_autograd::Var;
use nw_train::config::{ActivationName, InitScheme};

use super::*;
use crate::LabOptions;
use crate::measure::{Setup, Target};
use crate::report::{Report, Table, heatmaps, layer_ratio_plot, standard_plots};
use crate::stats::num;

/// The initialisers compared: (name in the report, scheme).
pub const INITS: &[(&str, InitScheme)] = &[
    ("random N(0, 0.01²)", InitScheme::SmallNormal),
    ("Xavier (normal)", InitScheme::XavierNormal),
    ("He (kaiming normal)", InitScheme::KaimingNormal),
    ("LeCun (normal)", InitScheme::LecunNormal),
    ("orthogonal", InitScheme::Orthogonal),
];

/// Standard deviation of a tensor's values.
fn std(v: &[f32]) -> f64 {
    let n = v.len().max(1) as f64;
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    (v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n).sqrt()
}

/// Per hidden layer at step 0, on the first 256 training examples: the
/// standard deviation of the activations after each nonlinearity, and of the
/// gradient of each weight matrix.
pub fn scales_at_step0(s: &Setup) -> Result<(Vec<f64>, Vec<f64>)> {
    let data = s.loader.dataset();
    let idx: Vec<usize> = (0..data.len().min(256)).collect();
    let x = data.features().index_select(0, &idx)?;
    let y = data.targets().select(&idx)?;
    let model = &s.trainer.model;
    let mut h = Var::constant(x);
    let mut acts = Vec::new();
    for i in 0..model.len() {
        let layer = model.get(i).expect("index below len");
        h = layer.forward(&h)?;
        if layer.parameters().is_empty() && i + 1 < model.len() {
            acts.push(std(&h.value().to_vec()));
        }
    }
    let loss = s.trainer.loss.compute(&h, &y)?;
    let grads = loss.backward()?;
    let gs = crate::measure::weights(&s.trainer)
        .iter()
        .map(|(_, p)| grads.get(p).map_or(0.0, |g| std(&g.to_vec())))
        .collect();
    Ok((acts, gs))
}

fn net(budget: crate::Budget, act: ActivationName) -> nw_train::RunConfig {
    let mut c = base(budget);
    c.model.hidden = vec![budget.pick(32, 64, 128); 8];
    c.model.activation = act;
    c.optim = nw_optim::OptimizerConfig::Sgd(nw_optim::Sgd { lr: 0.05, ..Default::default() });
    c
}

/// Runs the experiment.
pub fn run(opts: &LabOptions, dir: &Path) -> Result<Report> {
    let b = opts.budget;
    let seeds = opts.seed_list();
    let threshold = 0.3;
    let mut limits = Limits::new(b.pick(300, 2000, 4000), Target::Loss(threshold));
    limits.histogram_every = limits.max_steps / 30;
    let mut nets = Vec::new();
    let mut scale_tables = Vec::new();
    for (label, act) in [("deep ReLU MLP", ActivationName::Relu), ("deep tanh MLP", ActivationName::Tanh)] {
        let cfg = net(b, act);
        let mut runs = Vec::new();
        let mut acts = Table::new(&["initialiser"]);
        let mut grads = Table::new(&["initialiser"]);
        for (name, scheme) in INITS {
            let mut c = cfg.clone();
            c.model.init = *scheme;
            runs.push(run_config(name, &seeds, &limits, &c)?);
            c.train.seed = seeds[0];
            let (a, g) = scales_at_step0(&Setup::from_config(&c)?)?;
            if acts.header.len() == 1 {
                acts.header.extend((1..=a.len()).map(|i| format!("layer {i}")));
                grads.header.extend((1..=g.len()).map(|i| format!("W{i}")));
            }
            acts.push(std::iter::once(name.to_string()).chain(a.iter().map(|v| num(*v))).collect());
            grads.push(std::iter::once(name.to_string()).chain(g.iter().map(|v| num(*v))).collect());
        }
        scale_tables.push((
            format!("{label}: activation std after each hidden layer at step 0 (seed {})", seeds[0]),
            acts,
        ));
        scale_tables
            .push((format!("{label}: weight-gradient std per layer at step 0 (seed {})", seeds[0]), grads));
        nets.push((label, cfg, runs));
    }
    let relu = &nets[0].2;
    let mut claims = Table::new(CLAIM_COLUMNS);
    for (row, name, fig) in
        [("random", INITS[0].0, 250.0), ("Xavier", INITS[1].0, 150.0), ("He", INITS[2].0, 100.0)]
    {
        claims.push(claim_row(
            &format!("{row}: convergence steps (deep ReLU MLP)"),
            fig,
            &conv_steps(find(relu, name)),
            &format!("did not converge in {}", limits.max_steps),
        ));
    }
    let steps_or_budget = |t: &[Trace]| {
        let s = conv_steps(t);
        if s.complete() { s.mean() } else { f64::INFINITY }
    };
    let he_beats = final_loss(find(relu, INITS[2].0)) < final_loss(find(relu, INITS[0].0));
    let order = order_holds(relu, &[INITS[2].0, INITS[1].0, INITS[0].0], &steps_or_budget);
    claims.push(vec![
        "order He < Xavier < random (deep ReLU MLP)".into(),
        "He < Xavier < random".into(),
        format!(
            "He {}, Xavier {}, random {}",
            conv_steps(find(relu, INITS[2].0)).show("-"),
            conv_steps(find(relu, INITS[1].0)).show("-"),
            conv_steps(find(relu, INITS[0].0)).show("did not converge")
        ),
        if order { "agrees".into() } else { "disagrees: the measured order differs".into() },
    ]);
    let mut runs_all: Vec<Runs> = Vec::new();
    let mut extra = Vec::new();
    for (label, _, runs) in &nets {
        extra.push((format!("{label}: all initialisers"), results_table(runs)));
        for (n, t) in runs {
            runs_all.push((format!("{label}: {n}"), t.clone()));
        }
    }
    extra.extend(scale_tables);
    let mut plots = standard_plots(dir, &nets[0].2)?;
    for p in &mut plots {
        p.title = format!("deep ReLU MLP: {}", p.title);
    }
    let tanh_dir = dir.join("tanh");
    for mut p in standard_plots(&tanh_dir, &nets[1].2)? {
        p.title = format!("deep tanh MLP: {}", p.title);
        p.stem = format!("tanh/{}", p.stem);
        plots.push(p);
    }
    plots.push(layer_ratio_plot(dir, "layer_ratio_he", "ReLU net, He", &find(relu, INITS[2].0)[0])?);
    let small = find(relu, INITS[0].0);
    let conclusions = vec![
        format!(
            "On the 8-layer ReLU MLP, He reaches a lower final loss than the small-normal start: {} (smoothed loss {} vs {}).",
            if he_beats { "yes" } else { "no" },
            num(final_loss(find(relu, INITS[2].0))),
            num(final_loss(small))
        ),
        format!(
            "The small-normal start {}: its activations shrink layer by layer at step 0 (table below), so the gradients of the first layers are tiny.",
            outcome(small)
        ),
        format!(
            "The article's order He < Xavier < random {} on this net; its absolute step counts come with no setup, so only the order is comparable.",
            if order { "holds" } else { "does not hold" }
        ),
    ];
    Ok(Report {
        name: "init".into(),
        title: "init: weight initialisation and convergence".into(),
        question: "How many optimizer steps does each initialiser need on a deep network, and why?".into(),
        setup: vec![
            describe(&nets[0].1),
            format!("the same with tanh: {}", describe(&nets[1].1)),
            format!("criterion: {}; budget {} steps", limits.target.describe(), limits.max_steps),
            "\"random\" in the article is read as a small random normal N(0, 0.01²); biases keep PyTorch's default".into(),
        ],
        seeds: seeds.clone(),
        claims,
        results: results_table(relu),
        extra,
        raw: raw_table("init", &runs_all, &seeds),
        timing: timing_table(&runs_all, &seeds),
        heatmaps: heatmaps(relu),
        plots,
        images: vec![],
        conclusions,
        dir: dir.to_path_buf(),
    })
}

/// Mean final smoothed loss (infinite for a diverged seed).
pub fn final_loss(t: &[Trace]) -> f64 {
    let v: Vec<f64> =
        t.iter().map(|t| if t.final_loss().is_finite() { t.final_loss() } else { f64::INFINITY }).collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}
