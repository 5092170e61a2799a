//! `cargo xtask bench anomaly`: what `--detect-anomaly` costs. One
//! `Trainer::train_step` (forward, cross-entropy, backward, Adam) on a fixed
//! batch with anomaly detection off (the default) and on, timed alternately
//! (medians of interleaved repeats), for the default digits MLP
//! (64 -> 256 -> 10, batch 32), a Fashion-MNIST-sized MLP (784 -> 256 -> 10,
//! batch 64) and the small CNN of `nw train --model cnn` on 8x8 digits.

use anyhow::Result;
use nw_data::Targets;
use nw_nn::Module;
use nw_optim::Adam;
use nw_tensor::{Rng, Tensor};
use nw_train::models::{Activation, build_model};
use nw_train::{LossKind, ModelSpec, Trainer};

use super::{Timer, alternate, calibrate, loadavg, machine};

/// Options of `bench anomaly`.
#[derive(clap::Args)]
pub struct Args {
    /// Run only this thread count (default: 1 and 2).
    #[arg(long)]
    threads: Option<usize>,
}

fn trainer(spec: &ModelSpec, shape: &[usize]) -> Result<Trainer> {
    let built = build_model(spec, shape, 10, &mut Rng::new(0))?;
    let opt = Adam { lr: 1e-3, ..Adam::default() }.build(built.model.parameters())?;
    let mut t = Trainer::new(built.model, Box::new(opt), LossKind::CrossEntropy { label_smoothing: 0.0 });
    t.monitor =
        nw_train::WeightMonitor::new(nw_train::MonitorConfig { every_steps: 0, ..Default::default() });
    Ok(t)
}

/// Seconds per step, off and on.
fn measure(spec: &ModelSpec, shape: &[usize], batch: usize) -> Result<(f64, f64)> {
    let mut rng = Rng::new(1);
    let mut dims = vec![batch];
    dims.extend_from_slice(shape);
    let x = Tensor::rand_uniform(&dims, -1.0, 1.0, &mut rng);
    let y = Targets::classes((0..batch).map(|i| i % 10).collect(), 10)?;
    let mut off = trainer(spec, shape)?;
    let mut on = trainer(spec, shape)?;
    // `iters` steps of `t` with detection set to `on` (restored after).
    let timed = |t: &mut Trainer, on: bool, iters: u64| -> Result<f64> {
        let prev = nw_autograd::set_detect_anomaly(on);
        let t0 = std::time::Instant::now();
        let r = (0..iters).try_for_each(|_| t.train_step(&x, &y).map(drop));
        let s = t0.elapsed().as_secs_f64();
        nw_autograd::set_detect_anomaly(prev);
        r?;
        Ok(s)
    };
    let mut t_off = |iters: u64| timed(&mut off, false, iters);
    let mut t_on = |iters: u64| timed(&mut on, true, iters);
    let i_off = calibrate(&mut t_off)?;
    let i_on = calibrate(&mut t_on)?;
    let timers: &mut [&mut Timer<'_>] = &mut [&mut t_off, &mut t_on];
    let m = alternate(timers, &[i_off, i_on])?;
    Ok((m[0], m[1]))
}

/// Runs the benchmark and prints a table.
pub fn run(args: Args) -> Result<()> {
    println!("# bench anomaly: Trainer::train_step with --detect-anomaly off vs on ({})", machine());
    println!("load average before: {}", loadavg());
    println!("| model | batch | threads | off ms/step | on ms/step | cost |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let mlp = ModelSpec::Mlp { hidden: vec![256], activation: Activation::Relu, dropout: 0.0 };
    let cnn = ModelSpec::Cnn { channels: vec![8, 16], hidden: 64, dropout: 0.0 };
    let cases: [(&str, &ModelSpec, Vec<usize>, usize); 3] = [
        ("MLP digits 64-256-10", &mlp, vec![64], 32),
        ("MLP Fashion 784-256-10", &mlp, vec![784], 64),
        ("CNN 8x8 conv8-conv16-fc64", &cnn, vec![1, 8, 8], 32),
    ];
    let threads: Vec<usize> = args.threads.map_or(vec![1, 2], |t| vec![t]);
    for (name, spec, shape, batch) in &cases {
        for &t in &threads {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build()?;
            let (off, on) = pool.install(|| measure(spec, shape, *batch))?;
            println!(
                "| {name} | {batch} | {t} | {:.4} | {:.4} | {:+.1}% |",
                off * 1e3,
                on * 1e3,
                (on / off - 1.0) * 100.0
            );
        }
    }
    println!("load average after: {}", loadavg());
    Ok(())
}
