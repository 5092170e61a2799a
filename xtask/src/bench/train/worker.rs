//! One nw run of one `bench train` task, in its own process (the hidden
//! `cargo xtask bench train-worker --task T --threads N`): it loads the data,
//! builds the model, warms up, times the task, and prints one line
//!
//! ```text
//! result value=<number> rss_kb=<peak resident KiB> [acc=<test accuracy>] kernel=<Kernel>
//! ```
//!
//! The PyTorch side (`benches/torch/train.py`) prints the same line for the
//! same work. What each task times is documented on [`Task`].

use std::time::Instant;

use anyhow::{Context, Result, bail};
use nw_autograd::{Grads, Param, Var, no_grad};
use nw_data::{BatchLoader, BatchSize, FashionMnist, ImageLayout, LoaderConfig, fashion_mnist_default};
use nw_nn::Module;
use nw_optim::{Adam, Optimizer, Sgd};
use nw_tensor::{Rng, Tensor};
use nw_train::models::{Activation, build_model};
use nw_train::{LossKind, ModelSpec, Trainer};

use super::Task;
use crate::bench::{calibrate, median, time_iters};

/// Options of the hidden `bench train-worker`.
#[derive(clap::Args)]
pub struct WorkerArgs {
    /// The task.
    #[arg(long, value_parser = super::parse_task)]
    task: Task,
    /// Rayon threads.
    #[arg(long)]
    threads: usize,
}

/// Seed of weights and shuffles (both frameworks use 0; their generators differ).
const SEED: u64 = 0;
/// Untimed steps before a timed loop (thread pool, packing buffers, page faults).
const WARMUP: usize = 5;
/// Timed steps of the CNN and LSTM tasks.
const STEPS: usize = 200;

/// The peak resident set size of this process in KiB (`VmHWM`).
pub fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mlp_spec() -> ModelSpec {
    ModelSpec::Mlp { hidden: vec![512, 256], activation: Activation::Relu, dropout: 0.0 }
}

fn cnn_spec() -> ModelSpec {
    ModelSpec::Cnn { channels: vec![32, 64], hidden: 128, dropout: 0.0 }
}

fn lstm_spec() -> ModelSpec {
    ModelSpec::Lstm { hidden: 128, layers: 1 }
}

fn trainer(spec: &ModelSpec, data: &FashionMnist) -> Result<Trainer> {
    let built = build_model(spec, data.train.feature_shape(), 10, &mut Rng::new(SEED))?;
    let opt = Adam { lr: 1e-3, ..Adam::default() }.build(built.model.parameters())?;
    let mut t = Trainer::new(built.model, Box::new(opt), LossKind::CrossEntropy { label_smoothing: 0.0 });
    t.rngs = built.rngs;
    Ok(t)
}

fn loader(data: &FashionMnist, batch: usize) -> Result<BatchLoader> {
    Ok(BatchLoader::new(data.train.clone(), LoaderConfig::new(BatchSize::Mini(batch), SEED))?)
}

/// What a task measured.
struct Outcome {
    value: f64,
    acc: Option<f64>,
}

/// One epoch of the MLP at batch 128 (samples/s), then test accuracy.
fn mlp_epoch(data: &FashionMnist) -> Result<Outcome> {
    let mut t = trainer(&mlp_spec(), data)?;
    let loader = loader(data, 128)?;
    for batch in loader.epoch(999).take(WARMUP) {
        t.train_step(&batch.x, &batch.y)?;
    }
    let rec = t.train_epoch(&loader, None, &mut |_, _, _| {})?;
    let acc = t.evaluate(&data.test, 1000)?.accuracy.context("classification metrics")?;
    Ok(Outcome { value: data.train.len() as f64 / rec.seconds, acc: Some(acc) })
}

/// `STEPS` training steps at batch 64 (samples/s), batches of a seeded
/// shuffle gathered inside the timed loop.
fn steps(spec: &ModelSpec, data: &FashionMnist) -> Result<Outcome> {
    let mut t = trainer(spec, data)?;
    let loader = loader(data, 64)?;
    for batch in loader.epoch(999).take(WARMUP) {
        t.train_step(&batch.x, &batch.y)?;
    }
    let t0 = Instant::now();
    let mut done = 0;
    for batch in loader.epoch(0).take(STEPS) {
        t.train_step(&batch.x, &batch.y)?;
        done += batch.x.shape()[0];
    }
    Ok(Outcome { value: done as f64 / t0.elapsed().as_secs_f64(), acc: None })
}

/// Milliseconds per optimizer step over 10M parameters (4000x1000,
/// 4000x1000, 2000x1000), median of calibrated repeats.
fn optim_step(adam: bool) -> Result<Outcome> {
    let mut rng = Rng::new(SEED);
    let shapes: [&[usize]; 3] = [&[4000, 1000], &[4000, 1000], &[2000, 1000]];
    let ps: Vec<Param> = shapes.iter().map(|s| Param::new(Tensor::randn(s, 0.0, 1.0, &mut rng))).collect();
    let mut g = Grads::new();
    for p in &ps {
        g.insert(p, Tensor::randn(&p.shape(), 0.0, 0.01, &mut rng));
    }
    let mut opt: Box<dyn Optimizer> = if adam {
        Box::new(Adam { lr: 1e-3, ..Adam::default() }.build(ps)?)
    } else {
        Box::new(Sgd { lr: 1e-3, momentum: 0.9, ..Sgd::default() }.build(ps)?)
    };
    let secs = timed(&mut || opt.step(&g).map_err(Into::into))?;
    Ok(Outcome { value: secs * 1e3, acc: None })
}

/// Median seconds per call of `f` over 9 calibrated repeats of >= 50 ms.
fn timed(f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
    let mut failed = None;
    let mut timer = |iters: u64| -> Result<f64> {
        let t = time_iters(iters, || {
            if failed.is_none()
                && let Err(e) = f()
            {
                failed = Some(e);
            }
        });
        match failed.take() {
            Some(e) => Err(e),
            None => Ok(t),
        }
    };
    let iters = calibrate(&mut timer)?;
    let mut samples = Vec::new();
    for _ in 0..crate::bench::REPEATS {
        samples.push(timer(iters)? / iters as f64);
    }
    Ok(median(&mut samples))
}

/// Inference (eval mode, no graph) on the first `batch` test images:
/// microseconds per call at batch 1, samples/s otherwise.
fn infer(spec: &ModelSpec, data: &FashionMnist, batch: usize) -> Result<Outcome> {
    let built = build_model(spec, data.test.feature_shape(), 10, &mut Rng::new(SEED))?;
    let model = built.model;
    model.eval();
    let x = Var::constant(data.test.features().narrow(0, 0, batch)?.contiguous());
    let secs = no_grad(|| {
        timed(&mut || {
            std::hint::black_box(model.forward(&x)?);
            Ok(())
        })
    })?;
    let value = if batch == 1 { secs * 1e6 } else { batch as f64 / secs };
    Ok(Outcome { value, acc: None })
}

fn data(task: Task) -> Result<FashionMnist> {
    let layout = match task {
        Task::MlpEpoch | Task::MlpInfer1 | Task::MlpInfer256 => ImageLayout::Flat,
        _ => ImageLayout::Nchw,
    };
    fashion_mnist_default(layout).context(
        "Fashion-MNIST not found (apt-get install dataset-fashion-mnist, or cargo xtask datasets fetch fashion-mnist)",
    )
}

/// Runs the task in a pool of `threads` threads and prints the result line.
pub fn run(args: WorkerArgs) -> Result<()> {
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.threads).build()?;
    let task = args.task;
    let out = pool.install(|| -> Result<Outcome> {
        match task {
            Task::Adam => optim_step(true),
            Task::SgdMomentum => optim_step(false),
            _ => {
                let d = data(task)?;
                match task {
                    Task::MlpEpoch => mlp_epoch(&d),
                    Task::Cnn => steps(&cnn_spec(), &d),
                    Task::Lstm => steps(&lstm_spec(), &d),
                    Task::MlpInfer1 => infer(&mlp_spec(), &d, 1),
                    Task::MlpInfer256 => infer(&mlp_spec(), &d, 256),
                    Task::CnnInfer1 => infer(&cnn_spec(), &d, 1),
                    Task::CnnInfer256 => infer(&cnn_spec(), &d, 256),
                    Task::Adam | Task::SgdMomentum => unreachable!("handled above"),
                }
            }
        }
    })?;
    let acc = out.acc.map_or(String::new(), |a| format!(" acc={a}"));
    println!(
        "result value={} rss_kb={}{acc} kernel={:?}",
        out.value,
        peak_rss_kb(),
        nw_tensor::gemm::Kernel::detect()
    );
    Ok(())
}
