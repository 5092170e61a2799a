//! `algorithms`: backpropagation (Adam, full batch) against nw-evolve's
//! genetic algorithm and particle swarm on the same small network and the
//! same training subset: fitness evaluations and wall time to a target
//! accuracy, and the weight update of each.
//!
//! The network is a 64-16-10 tanh MLP. Its forward pass for the gradient-free
//! methods is computed directly from the flat parameter vector (the same
//! layout as [`nw_evolve::flatten`] of the model's parameters), so that every
//! individual is evaluated independently and in parallel.

use std::path::Path;
use std::time::Instant;

use nw_evolve::{GaConfig, PsoConfig, flatten};
use nw_nn::Module;
use nw_tensor::Rng;
use nw_train::models::{Activation, ModelSpec, build_model};

use super::*;
use crate::LabOptions;
use crate::report::{Report, plot};
use crate::stats::{Summary, num};

const HIDDEN: usize = 16;

/// Loss (mean cross-entropy) and accuracy of the 64-16-10 tanh MLP whose
/// parameters are `v` (W1 [16, 64], b1, W2 [10, 16], b2, as flattened) on
/// the rows of `x` (`n` x 64) with labels `y`.
pub fn mlp_eval(v: &[f32], x: &[f32], y: &[usize], inputs: usize, classes: usize) -> (f64, f64) {
    let (w1, rest) = v.split_at(HIDDEN * inputs);
    let (b1, rest) = rest.split_at(HIDDEN);
    let (w2, b2) = rest.split_at(classes * HIDDEN);
    let mut loss = 0.0f64;
    let mut correct = 0usize;
    let mut h = [0.0f32; HIDDEN];
    let mut z = vec![0.0f32; classes];
    for (row, &label) in x.chunks_exact(inputs).zip(y) {
        for j in 0..HIDDEN {
            let w = &w1[j * inputs..(j + 1) * inputs];
            h[j] = (b1[j] + w.iter().zip(row).map(|(a, b)| a * b).sum::<f32>()).tanh();
        }
        for k in 0..classes {
            let w = &w2[k * HIDDEN..(k + 1) * HIDDEN];
            z[k] = b2[k] + w.iter().zip(&h).map(|(a, b)| a * b).sum::<f32>();
        }
        let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = m as f64 + z.iter().map(|&v| ((v - m) as f64).exp()).sum::<f64>().ln();
        loss += lse - z[label] as f64;
        let arg = (0..classes).fold(0, |a, k| if z[k] > z[a] { k } else { a });
        correct += (arg == label) as usize;
    }
    let n = y.len().max(1) as f64;
    (loss / n, correct as f64 / n)
}

/// One method's run on one seed.
struct MethodRun {
    /// (fitness evaluations, best training accuracy so far) over the run.
    curve: Vec<(f64, f64)>,
    /// Evaluations until the target accuracy.
    evals_to_target: Option<f64>,
    /// Seconds until the target (wall time x the fraction of the run done).
    wall_to_target: Option<f64>,
    /// Final training-subset and validation accuracy.
    train_acc: f64,
    val_acc: f64,
    /// Mean |change| of the method's current weights at the article's iteration.
    update: Option<f64>,
    wall: f64,
}

/// Runs the experiment.
pub fn run(opts: &LabOptions, dir: &Path) -> Result<Report> {
    let b = opts.budget;
    let seeds = opts.seed_list();
    let n_sub = b.pick(150, 500, 1000);
    let target = b.pick(0.6, 0.85, 0.9);
    let bp_steps: usize = b.pick(150, 1000, 2000);
    let ga_gens: usize = b.pick(60, 400, 1000);
    let pso_iters: usize = b.pick(60, 400, 1000);
    let (pop, particles) = b.pick((20, 20), (50, 40), (100, 60));
    let fitness_of = |l: f64, a: f64| a - 1e-3 * l;
    let mut by_method: Vec<(String, Vec<MethodRun>)> = vec![
        ("backprop (Adam)".into(), vec![]),
        ("genetic algorithm".into(), vec![]),
        ("particle swarm".into(), vec![]),
    ];
    for &seed in &seeds {
        let mut c = base(b);
        c.train.seed = seed;
        let run = nw_train::build_run(&c)?;
        let train = run.loader.dataset();
        let idx: Vec<usize> = (0..n_sub.min(train.len())).collect();
        let sub = train.subset(&idx)?;
        let x = sub.features().to_vec();
        let y = sub.labels().expect("classification").to_vec();
        let (vx, vy) =
            (run.validation.features().to_vec(), run.validation.labels().expect("labels").to_vec());
        let (inputs, classes) = (sub.n_features(), sub.n_classes().expect("classes"));
        let spec = ModelSpec::Mlp { hidden: vec![HIDDEN], activation: Activation::Tanh, dropout: 0.0 };
        let built = build_model(&spec, &[inputs], classes, &mut Rng::new(seed))?;
        let params = built.model.parameters();
        let start = flatten(&params);
        let fit = |v: &[f32]| {
            let (l, a) = mlp_eval(v, &x, &y, inputs, classes);
            fitness_of(l, a)
        };
        // backprop: full batch Adam on the subset; one evaluation = one forward + backward
        let opt = nw_optim::OptimizerConfig::Adam(nw_optim::Adam { lr: 0.01, ..Default::default() })
            .build(params.clone())?;
        let mut tr = nw_train::Trainer::new(
            built.model,
            opt,
            nw_train::LossKind::CrossEntropy { label_smoothing: 0.0 },
        );
        let t0 = Instant::now();
        let mut curve = Vec::new();
        let (mut hit, mut hit_wall, mut update) = (None, None, None);
        let mut best = 0.0f64;
        for step in 1..=bp_steps {
            let before = flatten(&params);
            let (_, correct) = tr.train_step(sub.features(), sub.targets())?;
            let acc = correct.unwrap_or(0) as f64 / y.len() as f64;
            best = best.max(acc);
            curve.push((step as f64, best));
            if step == 100 {
                let after = flatten(&params);
                update = Some(
                    before.iter().zip(&after).map(|(a, b)| (a - b).abs() as f64).sum::<f64>()
                        / after.len() as f64,
                );
            }
            if hit.is_none() && acc >= target {
                hit = Some(step as f64);
                hit_wall = Some(t0.elapsed().as_secs_f64());
            }
        }
        let v = flatten(&params);
        by_method[0].1.push(MethodRun {
            curve,
            evals_to_target: hit,
            wall_to_target: hit_wall,
            train_acc: mlp_eval(&v, &x, &y, inputs, classes).1,
            val_acc: mlp_eval(&v, &vx, &vy, inputs, classes).1,
            update,
            wall: t0.elapsed().as_secs_f64(),
        });
        // the genetic algorithm and the swarm, from the same start
        for (m, gens, per_gen, first) in
            [(1usize, ga_gens, pop - 2, pop), (2, pso_iters, particles, particles)]
        {
            let go = |g: usize| -> Result<nw_evolve::Outcome> {
                let mut rng = Rng::new(seed ^ 0xE70);
                Ok(match m {
                    1 => GaConfig { population: pop, generations: g, ..Default::default() }
                        .run(&start, fit, &mut rng)?,
                    _ => PsoConfig { particles, iterations: g, ..Default::default() }
                        .run(&start, fit, &mut rng)?,
                })
            };
            let t0 = Instant::now();
            let out = go(gens)?;
            let wall = t0.elapsed().as_secs_f64();
            let evals = |g: usize| (first + g * per_gen) as f64;
            let curve: Vec<(f64, f64)> =
                out.history.iter().map(|h| (evals(h.index), h.best_so_far)).collect();
            let hit_gen =
                out.history.iter().find(|h| h.best_so_far >= fitness_of(0.0, target)).map(|h| h.index);
            // the article's iteration: GA 50, PSO 200 (or the budget's end)
            let at = if m == 1 { 50 } else { 200 }.min(gens);
            let a = go(at)?.best;
            let bprev = go(at - 1)?.best;
            let update =
                Some(a.iter().zip(&bprev).map(|(x, y)| (x - y).abs() as f64).sum::<f64>() / a.len() as f64);
            by_method[m].1.push(MethodRun {
                curve,
                evals_to_target: hit_gen.map(evals),
                wall_to_target: hit_gen.map(|g| wall * (g + 1) as f64 / (gens + 1) as f64),
                train_acc: mlp_eval(&out.best, &x, &y, inputs, classes).1,
                val_acc: mlp_eval(&out.best, &vx, &vy, inputs, classes).1,
                update,
                wall,
            });
        }
    }
    let s = |m: usize, f: &dyn Fn(&MethodRun) -> Option<f64>| Summary::of(by_method[m].1.iter().map(f));
    let ga_at = 50.min(ga_gens);
    let pso_at = 200.min(pso_iters);
    let mut claims = Table::new(CLAIM_COLUMNS);
    for (m, row, fig) in [
        (0, "backprop: weight update at iteration 100".to_string(), 0.003),
        (1, format!("genetic algorithm: weight update at generation {ga_at}"), 0.001),
        (2, format!("particle swarm: weight update at iteration {pso_at}"), 0.005),
    ] {
        claims.push(crate::exp::claim_row(&row, fig, &s(m, &|r| r.update), "-"));
    }
    let mut results = Table::new(&[
        "method",
        "reached target",
        "fitness evaluations to target",
        "wall s to target",
        "final train-subset accuracy",
        "final val accuracy",
        "weight update (row above)",
    ]);
    for (m, (name, rs)) in by_method.iter().enumerate() {
        results.push(vec![
            name.clone(),
            format!("{}/{}", rs.iter().filter(|r| r.evals_to_target.is_some()).count(), rs.len()),
            s(m, &|r| r.evals_to_target).show("did not reach it"),
            s(m, &|r| r.wall_to_target).show("-"),
            s(m, &|r| Some(r.train_acc)).show("-"),
            s(m, &|r| Some(r.val_acc)).show("-"),
            s(m, &|r| r.update).show("-"),
        ]);
    }
    let series: Vec<crate::report::Series> = by_method
        .iter()
        .map(|(n, rs)| {
            let len = rs.iter().map(|r| r.curve.len()).min().unwrap_or(0);
            let pts = (0..len)
                .map(|i| (rs[0].curve[i].0, rs.iter().map(|r| r.curve[i].1).sum::<f64>() / rs.len() as f64))
                .collect();
            (n.clone(), pts)
        })
        .collect();
    let plots = vec![plot(
        dir,
        "accuracy_vs_evaluations",
        "Best training-subset fitness (≈ accuracy) against fitness evaluations",
        "fitness evaluations",
        &series,
        false,
    )?];
    let mut raw = Table::new(&[
        "experiment",
        "method",
        "seed",
        "evaluations_to_target",
        "train_accuracy",
        "val_accuracy",
        "update",
    ]);
    let mut timing = Table::new(&["method", "seed", "wall_s", "wall_to_target_s"]);
    let o = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
    for (name, rs) in &by_method {
        for (r, seed) in rs.iter().zip(&seeds) {
            raw.push(vec![
                "algorithms".into(),
                name.clone(),
                seed.to_string(),
                o(r.evals_to_target),
                format!("{}", r.train_acc),
                format!("{}", r.val_acc),
                o(r.update),
            ]);
            timing.push(vec![
                name.clone(),
                seed.to_string(),
                format!("{:.3}", r.wall),
                r.wall_to_target.map(|w| format!("{w:.3}")).unwrap_or_default(),
            ]);
        }
    }
    let ratio = s(1, &|r| r.evals_to_target).mean() / s(0, &|r| r.evals_to_target).mean();
    let conclusions = vec![
        format!(
            "Fitness evaluations to {} training accuracy: backprop {}, GA {}, PSO {}.",
            target,
            s(0, &|r| r.evals_to_target).show("did not reach it"),
            s(1, &|r| r.evals_to_target).show("did not reach it"),
            s(2, &|r| r.evals_to_target).show("did not reach it")
        ),
        if ratio.is_finite() {
            format!("The genetic algorithm needs {}× the evaluations of backprop (one backprop evaluation costs about three forward passes).", num(ratio))
        } else {
            "A gradient-free method did not reach the target within its budget, which backprop reached.".into()
        },
        "GA and PSO updates are measured on the best individual (GA) and the swarm's best position (PSO): it moves only when the best improves, so its size is not comparable with a gradient step.".into(),
    ];
    Ok(Report {
        name: "algorithms".into(),
        title: "algorithms: backprop vs genetic algorithm vs particle swarm".into(),
        question: "How many fitness evaluations and how much time does each method need to reach the same accuracy on the same network?".into(),
        setup: vec![
            format!("network: 64-{HIDDEN}-10 tanh MLP ({} parameters), PyTorch default initialisation; every method starts from the same weights", HIDDEN * 64 + HIDDEN + 10 * HIDDEN + 10),
            format!("data: the first {n_sub} examples of the digits training split (standardised); target: training-subset accuracy >= {target}"),
            format!("backprop: Adam lr 0.01, full batch on the subset, {bp_steps} steps; one evaluation = one forward + backward pass"),
            format!("GA: population {pop}, {ga_gens} generations, nw-evolve defaults (tournament 3, uniform crossover 0.9, mutation 0.1 x N(0, 0.1²), elitism 2); PSO: {particles} particles, {pso_iters} iterations, Clerc's constants"),
            "GA/PSO fitness = accuracy - 0.001 x cross-entropy (maximised); wall time to target for GA/PSO = run time x the fraction of generations done".into(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use nw_autograd::Var;

    #[test]
    fn flat_forward_matches_the_model() {
        let spec = ModelSpec::Mlp { hidden: vec![HIDDEN], activation: Activation::Tanh, dropout: 0.0 };
        let built = build_model(&spec, &[64], 10, &mut Rng::new(3)).unwrap();
        let x = nw_tensor::Tensor::randn(&[5, 64], 0.0, 1.0, &mut Rng::new(4));
        let out = built.model.forward(&Var::constant(x.clone())).unwrap().value().to_vec();
        let y: Vec<usize> = (0..5)
            .map(|i| {
                let r = &out[i * 10..(i + 1) * 10];
                (0..10).fold(0, |a, k| if r[k] > r[a] { k } else { a })
            })
            .collect();
        let (_, acc) = mlp_eval(&flatten(&built.model.parameters()), &x.to_vec(), &y, 64, 10);
        assert_eq!(acc, 1.0, "the flat forward pass predicts the model's own classes");
    }
}
