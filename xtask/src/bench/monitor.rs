//! `cargo xtask bench monitor`: what the weight monitor costs. One
//! `Trainer::train_step` (forward, cross-entropy, backward, Adam, monitor
//! hooks) of an MLP on a fixed batch, with the monitor off (nothing
//! recorded) and recording every step (every statistic: applied update,
//! gradient norms, Adam's buffer norms and effective-step percentiles, dead
//! units), timed alternately (medians of interleaved repeats). Shapes: the
//! default digits run (64 -> 256 -> 10, batch 32) and a Fashion-MNIST-sized
//! MLP (784 -> 256 -> 10, batch 64). The budget is <= 5% slower at every step,
//! and <= 3% at the default interval (third column, issue 15).

use anyhow::Result;
use nw_data::Targets;
use nw_nn::Module;
use nw_optim::Adam;
use nw_tensor::{Rng, Tensor};
use nw_train::models::{Activation, build_model};
use nw_train::{LossKind, ModelSpec, MonitorConfig, Trainer, WeightMonitor};

use super::{Timer, alternate, calibrate, loadavg, machine};

/// Options of `bench monitor`.
#[derive(clap::Args)]
pub struct Args {
    /// Run only this thread count (default: 1 and 2).
    #[arg(long)]
    threads: Option<usize>,
    /// Run only the MLPs whose name contains this (`digits`, `Fashion`).
    #[arg(long)]
    only: Option<String>,
}

fn trainer(inputs: usize, every: u64) -> Result<Trainer> {
    let spec = ModelSpec::Mlp { hidden: vec![256], activation: Activation::Relu, dropout: 0.0 };
    let built = build_model(&spec, &[inputs], 10, &mut Rng::new(0))?;
    let opt = Adam { lr: 1e-3, ..Adam::default() }.build(built.model.parameters())?;
    let mut t = Trainer::new(built.model, Box::new(opt), LossKind::CrossEntropy { label_smoothing: 0.0 });
    t.monitor = WeightMonitor::new(MonitorConfig { every_steps: every, ..Default::default() });
    Ok(t)
}

fn measure(inputs: usize, batch: usize) -> Result<(f64, f64, f64)> {
    let mut rng = Rng::new(1);
    let x = Tensor::rand_uniform(&[batch, inputs], -1.0, 1.0, &mut rng);
    let y = Targets::classes((0..batch).map(|i| i % 10).collect(), 10)?;
    let mut off = trainer(inputs, 0)?;
    let mut on = trainer(inputs, 1)?;
    let mut default = trainer(inputs, nw_train::MonitorConfig::default().every_steps)?;
    let mut t_off = |iters: u64| -> Result<f64> {
        let t0 = std::time::Instant::now();
        for _ in 0..iters {
            off.train_step(&x, &y)?;
        }
        Ok(t0.elapsed().as_secs_f64())
    };
    let mut t_on = |iters: u64| -> Result<f64> {
        let t0 = std::time::Instant::now();
        for _ in 0..iters {
            on.train_step(&x, &y)?;
        }
        Ok(t0.elapsed().as_secs_f64())
    };
    let mut t_default = |iters: u64| -> Result<f64> {
        let t0 = std::time::Instant::now();
        for _ in 0..iters {
            default.train_step(&x, &y)?;
        }
        Ok(t0.elapsed().as_secs_f64())
    };
    let i_off = calibrate(&mut t_off)?;
    let i_on = calibrate(&mut t_on)?;
    let i_default = calibrate(&mut t_default)?;
    let timers: &mut [&mut Timer<'_>] = &mut [&mut t_off, &mut t_on, &mut t_default];
    let m = alternate(timers, &[i_off, i_on, i_default])?;
    Ok((m[0], m[1], m[2]))
}

/// Runs the benchmark and prints a table.
pub fn run(args: Args) -> Result<()> {
    println!("# bench monitor: Trainer::train_step with the monitor off vs every step ({})", machine());
    println!(
        "| MLP | batch | threads | off ms/step | every step ms/step | slowdown | default (every 50) ms/step | slowdown |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let threads: Vec<usize> = args.threads.map_or(vec![1, 2], |t| vec![t]);
    for (name, inputs, batch) in [("digits 64-256-10", 64usize, 32usize), ("Fashion 784-256-10", 784, 64)] {
        if args.only.as_ref().is_some_and(|o| !name.to_lowercase().contains(&o.to_lowercase())) {
            continue;
        }
        for &t in &threads {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build()?;
            let (off, on, default) = pool.install(|| measure(inputs, batch))?;
            println!(
                "| {name} | {batch} | {t} | {:.4} | {:.4} | {:+.1}% | {:.4} | {:+.1}% |",
                off * 1e3,
                on * 1e3,
                (on / off - 1.0) * 100.0,
                default * 1e3,
                (default / off - 1.0) * 100.0
            );
        }
    }
    println!("load average after: {}", loadavg());
    Ok(())
}
