//! `cargo xtask bench distributed`: data-parallel training throughput of the
//! MLP 784-512-256-10 and the CNN at 1 and 2 ranks x 1 thread, with the
//! bytes each rank sends per step, beside PyTorch DDP (gloo) on the same work.
//!
//! nw's ranks are threads of this process connected by the threads
//! collective (`nw_dist::threads`), each in its own one-thread pool: the same
//! micro-shard step and message bytes as MPI ranks on one machine, without
//! the MPI transport. Inputs are Fashion-MNIST-shaped random tensors (the
//! throughput does not depend on the pixel values). The global batch is
//! `2 x --shard` (two micro-shards): one rank computes both, two ranks one each.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use nw_data::Targets;
use nw_dist::threads;
use nw_nn::Module;
use nw_tensor::{Rng, Tensor};
use nw_train::models::{Activation, build_model};
use nw_train::{LossKind, ModelSpec, Trainer};

/// Options of `bench distributed`.
#[derive(Parser)]
pub struct Args {
    /// Rows per micro-shard (the global batch is twice this).
    #[arg(long, default_value_t = 128)]
    shard: usize,
    /// Timed steps per run (after 3 warm-up steps).
    #[arg(long, default_value_t = 40)]
    steps: usize,
    /// Python with torch for the DDP (gloo) comparison (default /tmp/torch/bin/python when present).
    #[arg(long)]
    torch: Option<PathBuf>,
}

fn spec(model: &str) -> ModelSpec {
    match model {
        "mlp" => ModelSpec::Mlp { hidden: vec![512, 256], activation: Activation::Relu, dropout: 0.0 },
        _ => ModelSpec::Cnn { channels: vec![32, 64], hidden: 128, dropout: 0.0 },
    }
}

/// (samples/s, bytes rank 0 sent per step, parameters) of `ranks` nw ranks.
fn nw_run(model: &str, ranks: usize, shard: usize, steps: usize) -> Result<(f64, f64, usize)> {
    let group = threads::group(ranks, Duration::from_secs(600))?;
    let model = model.to_string();
    let hs: Vec<_> = group
        .into_iter()
        .map(|c| {
            let model = model.clone();
            std::thread::spawn(move || -> Result<(f64, u64, usize)> {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
                pool.install(|| {
                    let mut rng = Rng::new(1);
                    let built = build_model(&spec(&model), &[784], 10, &mut rng)?;
                    let n_params = built.model.num_parameters();
                    let opt =
                        nw_optim::Adam { lr: 1e-3, ..Default::default() }.build(built.model.parameters())?;
                    let mut t = Trainer::new(
                        built.model,
                        Box::new(opt),
                        LossKind::CrossEntropy { label_smoothing: 0.0 },
                    );
                    t.sharding.accumulate = 2;
                    t.sharding.per_shard = true;
                    t.sharding.collective = Some(Box::new(c));
                    let b = 2 * shard;
                    let x = Tensor::rand_uniform(&[b, 784], 0.0, 1.0, &mut rng);
                    let labels = (0..b).map(|i| (i * 7) % 10).collect();
                    let y = Targets::Classes { labels, n_classes: 10 };
                    for _ in 0..3 {
                        t.train_step(&x, &y)?;
                    }
                    let sent0 = t.sharding.collective.as_ref().map_or(0, |c| c.bytes_sent());
                    let t0 = Instant::now();
                    for _ in 0..steps {
                        t.train_step(&x, &y)?;
                    }
                    let secs = t0.elapsed().as_secs_f64();
                    let sent = t.sharding.collective.as_ref().map_or(0, |c| c.bytes_sent()) - sent0;
                    Ok((secs, sent, n_params))
                })
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in hs {
        out.push(h.join().map_err(|_| anyhow::anyhow!("a rank panicked"))??);
    }
    let secs = out.iter().map(|o| o.0).fold(0.0, f64::max);
    Ok(((steps * 2 * shard) as f64 / secs, out[0].1 as f64 / steps as f64, out[0].2))
}

/// samples/s of torch DDP (gloo) with `ranks` processes on the same work.
fn torch_run(python: &PathBuf, model: &str, ranks: usize, shard: usize, steps: usize) -> Result<f64> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/torch/ddp.py");
    let o = std::process::Command::new(python)
        .arg(&script)
        .args(["--model", model, "--ranks", &ranks.to_string(), "--shard", &shard.to_string()])
        .args(["--steps", &steps.to_string()])
        .output()
        .with_context(|| format!("running {} {}", python.display(), script.display()))?;
    if !o.status.success() {
        bail!("torch DDP {model} x{ranks}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let s = String::from_utf8_lossy(&o.stdout);
    s.trim().parse().with_context(|| format!("torch DDP printed {s:?}"))
}

/// Runs the benchmark and prints the table.
pub fn run(a: Args) -> Result<()> {
    let torch = a.torch.clone().or_else(|| {
        let p = PathBuf::from("/tmp/torch/bin/python");
        p.exists().then_some(p)
    });
    println!(
        "# bench distributed: {} | shard {} rows, global batch {}, {} steps",
        super::machine(),
        a.shard,
        2 * a.shard,
        a.steps
    );
    println!(
        "# nw ranks = threads (threads collective), 1 compute thread each; torch = DDP gloo, 1 thread per process"
    );
    println!(
        "| model | params | ranks | nw samples/s | nw efficiency | bytes/step (rank 0 sends) | torch DDP samples/s | nw/torch |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for model in ["mlp", "cnn"] {
        let mut one = None;
        for ranks in [1, 2] {
            let (sps, bytes, params) = nw_run(model, ranks, a.shard, a.steps)?;
            let base = *one.get_or_insert(sps);
            let eff = sps / (base * ranks as f64);
            let t = match &torch {
                Some(p) => Some(torch_run(p, model, ranks, a.shard, a.steps)?),
                None => None,
            };
            println!(
                "| {model} | {params} | {ranks} | {sps:.0} | {:.0}% | {bytes:.0} | {} | {} |",
                eff * 100.0,
                t.map_or("not run".into(), |v| format!("{v:.0}")),
                t.map_or("".into(), |v| format!("{:.2}", sps / v)),
            );
        }
    }
    println!("# load average at the end: {}", super::loadavg());
    Ok(())
}
