//! `cargo xtask bench accuracy`: Fashion-MNIST (60k train / 10k test,
//! pixels / 255, no augmentation) trained with nw-train, and with `--torch
//! PYTHON` the same model, data, batch size, epochs, optimizer (Adam),
//! learning rate, dropout and schedule in PyTorch
//! (`benches/torch/accuracy.py`, run after nw's run, not beside it). Reports
//! the test accuracy after the last epoch, the training wall time (epochs
//! only; the per-epoch test evaluation is timed apart) and each epoch's time.
//!
//! Models and default settings (both Adam, lr 1e-3, 10 epochs, the
//! learning rate annealed by a cosine over the epochs):
//! - `mlp`: 784-256-128-10 with ReLU, no dropout, batch 64;
//! - `cnn`: `ModelSpec::Cnn { channels: [32, 64], hidden: 128, dropout: 0.25 }`
//!   (conv3x3-ReLU-maxpool2 twice, fc128-ReLU-dropout, fc10), batch 128.
//!
//! A benchmark, not a test: each model takes minutes.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use nw_data::{BatchLoader, BatchSize, ImageLayout, LoaderConfig, fashion_mnist_default};
use nw_nn::Module;
use nw_optim::Adam;
use nw_optim::schedule::{Schedule, Scheduler};
use nw_tensor::Rng;
use nw_train::models::{Activation, build_model};
use nw_train::{LossKind, LrPolicy, ModelSpec, Trainer};

use super::{loadavg, machine};

/// Options of `bench accuracy`.
#[derive(clap::Args)]
pub struct Args {
    /// A Python with PyTorch: also train the same model in PyTorch.
    #[arg(long, value_name = "PYTHON")]
    torch: Option<PathBuf>,
    /// Only this model (default: both).
    #[arg(long, value_parser = ["mlp", "cnn"])]
    only: Option<String>,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Threads of both frameworks (default: all logical CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// Batch size (default: 64 for the MLP, 128 for the CNN).
    #[arg(long)]
    batch: Option<usize>,
    /// Adam's learning rate (default: 1e-3).
    #[arg(long)]
    lr: Option<f64>,
    /// Dropout (default: none for the MLP, 0.25 for the CNN).
    #[arg(long)]
    dropout: Option<f64>,
    /// Learning-rate schedule per epoch: none, or cosine (CosineAnnealingLR,
    /// T_max = epochs, stepped after each epoch). Default: cosine.
    #[arg(long, value_parser = ["none", "cosine"])]
    schedule: Option<String>,
    /// Seed of the initial weights, shuffles and dropout masks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// One model's settings, shared by both frameworks.
#[derive(Clone, Debug)]
struct Config {
    model: &'static str,
    epochs: usize,
    batch: usize,
    lr: f64,
    dropout: f64,
    schedule: String,
    seed: u64,
    threads: usize,
}

impl Config {
    fn new(model: &'static str, args: &Args, threads: usize) -> Config {
        let cnn = model == "cnn";
        Config {
            model,
            epochs: args.epochs,
            batch: args.batch.unwrap_or(if cnn { 128 } else { 64 }),
            lr: args.lr.unwrap_or(1e-3),
            dropout: args.dropout.unwrap_or(if cnn { 0.25 } else { 0.0 }),
            schedule: args.schedule.clone().unwrap_or_else(|| "cosine".into()),
            seed: args.seed,
            threads,
        }
    }

    fn spec(&self) -> ModelSpec {
        match self.model {
            "mlp" => {
                ModelSpec::Mlp { hidden: vec![256, 128], activation: Activation::Relu, dropout: self.dropout }
            }
            _ => ModelSpec::Cnn { channels: vec![32, 64], hidden: 128, dropout: self.dropout },
        }
    }

    fn describe(&self) -> String {
        format!(
            "{}: batch {}, Adam lr {}, dropout {}, schedule {}, {} epochs, seed {}, {} thread(s)",
            self.model,
            self.batch,
            self.lr,
            self.dropout,
            self.schedule,
            self.epochs,
            self.seed,
            self.threads
        )
    }
}

/// What one framework's run gave.
struct Outcome {
    test_accuracy: f64,
    train_seconds: f64,
    epoch_seconds: Vec<f64>,
}

fn train_nw(cfg: &Config) -> Result<Outcome> {
    let layout = if cfg.model == "mlp" { ImageLayout::Flat } else { ImageLayout::Nchw };
    let t0 = Instant::now();
    let data = fashion_mnist_default(layout)?;
    eprintln!("nw {}: loaded Fashion-MNIST in {:.1} s", cfg.model, t0.elapsed().as_secs_f64());
    let mut rng = Rng::new(cfg.seed);
    let built = build_model(&cfg.spec(), data.train.feature_shape(), 10, &mut rng)?;
    let opt = Adam { lr: cfg.lr, ..Adam::default() }.build(built.model.parameters())?;
    let mut trainer =
        Trainer::new(built.model, Box::new(opt), LossKind::CrossEntropy { label_smoothing: 0.0 });
    trainer.rngs = built.rngs;
    if cfg.schedule == "cosine" {
        let s = Scheduler::new(Schedule::CosineAnnealing { t_max: cfg.epochs, eta_min: 0.0 }, cfg.lr)?;
        trainer.lr_policy = Some(LrPolicy::PerEpoch(s));
    }
    let loader = BatchLoader::new(data.train, LoaderConfig::new(BatchSize::Mini(cfg.batch), cfg.seed))?;
    let mut out = Outcome { test_accuracy: f64::NAN, train_seconds: 0.0, epoch_seconds: Vec::new() };
    for _ in 0..cfg.epochs {
        let rec = trainer.train_epoch(&loader, None, &mut |_, _, _| {})?;
        let t1 = Instant::now();
        let m = trainer.evaluate(&data.test, 1000)?;
        let acc = m.accuracy.context("classification metrics")?;
        eprintln!(
            "nw {} epoch {} train_loss {:.6} seconds {:.3} test_loss {:.6} test_acc {acc:.6} eval_seconds {:.3} (load {})",
            cfg.model,
            rec.epoch,
            rec.train_loss,
            rec.seconds,
            m.loss,
            t1.elapsed().as_secs_f64(),
            loadavg()
        );
        out.epoch_seconds.push(rec.seconds);
        out.train_seconds += rec.seconds;
        out.test_accuracy = acc;
    }
    Ok(out)
}

fn train_torch(python: &std::path::Path, cfg: &Config) -> Result<Outcome> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/torch/accuracy.py");
    let mut child = Command::new(python)
        .arg(&script)
        .args(["--model", cfg.model])
        .args(["--epochs", &cfg.epochs.to_string()])
        .args(["--batch", &cfg.batch.to_string()])
        .args(["--lr", &cfg.lr.to_string()])
        .args(["--dropout", &cfg.dropout.to_string()])
        .args(["--schedule", &cfg.schedule])
        .args(["--threads", &cfg.threads.to_string()])
        .args(["--seed", &cfg.seed.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
    let stdout = BufReader::new(child.stdout.take().context("accuracy.py stdout")?);
    let mut out = Outcome { test_accuracy: f64::NAN, train_seconds: f64::NAN, epoch_seconds: Vec::new() };
    for line in stdout.lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let field = |key: &str| -> Result<f64> {
            let i = words.iter().position(|w| *w == key).with_context(|| format!("no {key} in `{line}`"))?;
            let v = words.get(i + 1).with_context(|| format!("no value after {key} in `{line}`"))?;
            v.parse().with_context(|| format!("bad {key} in `{line}`"))
        };
        match words.first() {
            Some(&"epoch") => {
                eprintln!("torch {} {line} (load {})", cfg.model, loadavg());
                out.epoch_seconds.push(field("seconds")?);
            }
            Some(&"final") => {
                out.test_accuracy = field("test_acc")?;
                out.train_seconds = field("train_seconds")?;
            }
            _ => eprintln!("torch: {line}"),
        }
    }
    let status = child.wait()?;
    if !status.success() || out.test_accuracy.is_nan() {
        bail!("accuracy.py failed ({status})");
    }
    Ok(out)
}

fn report(framework: &str, cfg: &Config, o: &Outcome) {
    let epochs: Vec<String> = o.epoch_seconds.iter().map(|s| format!("{s:.1}")).collect();
    println!(
        "{:<6} {:<5} {:>8.2}% {:>10.1} {:>9.2}  [{}]",
        cfg.model,
        framework,
        100.0 * o.test_accuracy,
        o.train_seconds,
        o.train_seconds / o.epoch_seconds.len().max(1) as f64,
        epochs.join(", ")
    );
}

pub fn run(args: Args) -> Result<()> {
    if args.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    let threads = match args.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(t) => t,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let models: Vec<&'static str> = match args.only.as_deref() {
        Some("mlp") => vec!["mlp"],
        Some("cnn") => vec!["cnn"],
        _ => vec!["mlp", "cnn"],
    };
    println!("# Fashion-MNIST accuracy | {}", machine());
    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().context("building the rayon pool")?;
    let mut rows = Vec::new();
    for model in models {
        let cfg = Config::new(model, &args, threads);
        println!("# {}", cfg.describe());
        let nw = pool.install(|| train_nw(&cfg))?;
        rows.push(("nw", cfg.clone(), nw));
        if let Some(python) = &args.torch {
            let t = train_torch(python, &cfg)?;
            rows.push(("torch", cfg, t));
        }
    }
    println!("# load average at the end: {}", loadavg());
    println!(
        "{:<6} {:<5} {:>9} {:>10} {:>9}  epoch seconds",
        "model", "fw", "test acc", "train s", "s/epoch"
    );
    for (fw, cfg, o) in &rows {
        report(fw, cfg, o);
    }
    Ok(())
}
