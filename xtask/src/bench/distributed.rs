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
//!
//! Built with `--features mpi` (`cargo run --release -p xtask --features mpi
//! -- bench distributed`), it also runs the same step loop as MPI processes:
//! this binary under `mpirun -n R --oversubscribe`, in a hidden `--worker`
//! mode, each rank printing its times. The comm share is rank 0's time inside
//! collectives (sending, and waiting for the slowest rank) over its step time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use nw_data::Targets;
use nw_dist::{Collective, threads};
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
    /// Internal: run one MPI rank of MODEL (`mlp` or `cnn`) and print its times (used under mpirun).
    #[arg(long, value_name = "MODEL", hide = true)]
    worker: Option<String>,
}

fn spec(model: &str) -> ModelSpec {
    match model {
        "mlp" => ModelSpec::Mlp { hidden: vec![512, 256], activation: Activation::Relu, dropout: 0.0 },
        _ => ModelSpec::Cnn { channels: vec![32, 64], hidden: 128, dropout: 0.0 },
    }
}

/// What one rank measured over the timed steps.
struct RankTimes {
    secs: f64,
    sent: u64,
    comm: f64,
    params: usize,
}

/// One rank's step loop (in a one-thread pool) over collective `c`.
/// The collective comes back so that the caller drops it (MPI finalises on
/// the thread that initialised it).
fn rank_loop(
    c: Box<dyn Collective>,
    model: &str,
    shard: usize,
    steps: usize,
) -> Result<(RankTimes, Option<Box<dyn Collective>>)> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    pool.install(|| {
        let mut rng = Rng::new(1);
        let built = build_model(&spec(model), &[784], 10, &mut rng)?;
        let params = built.model.num_parameters();
        let opt = nw_optim::Adam { lr: 1e-3, ..Default::default() }.build(built.model.parameters())?;
        let mut t = Trainer::new(built.model, Box::new(opt), LossKind::CrossEntropy { label_smoothing: 0.0 });
        t.sharding.accumulate = 2;
        t.sharding.per_shard = true;
        t.sharding.collective = Some(c);
        let b = 2 * shard;
        let x = Tensor::rand_uniform(&[b, 784], 0.0, 1.0, &mut rng);
        let labels = (0..b).map(|i| (i * 7) % 10).collect();
        let y = Targets::Classes { labels, n_classes: 10 };
        for _ in 0..3 {
            t.train_step(&x, &y)?;
        }
        let coll = |t: &Trainer| {
            t.sharding.collective.as_ref().map_or((0, 0.0), |c| (c.bytes_sent(), c.comm_seconds()))
        };
        let (sent0, comm0) = coll(&t);
        let t0 = Instant::now();
        for _ in 0..steps {
            t.train_step(&x, &y)?;
        }
        let secs = t0.elapsed().as_secs_f64();
        let (sent, comm) = coll(&t);
        Ok((RankTimes { secs, sent: sent - sent0, comm: comm - comm0, params }, t.sharding.collective.take()))
    })
}

/// (samples/s, bytes rank 0 sent per step, comm share of rank 0's time, parameters).
type Row = (f64, f64, f64, usize);

fn summarise(all: &[RankTimes], steps: usize, shard: usize) -> Row {
    let secs = all.iter().map(|o| o.secs).fold(0.0, f64::max);
    let r0 = &all[0];
    ((steps * 2 * shard) as f64 / secs, r0.sent as f64 / steps as f64, r0.comm / r0.secs, r0.params)
}

/// `ranks` nw ranks as threads of this process (threads collective).
fn nw_threads(model: &str, ranks: usize, shard: usize, steps: usize) -> Result<Row> {
    let group = threads::group(ranks, Duration::from_secs(600))?;
    let hs: Vec<_> = group
        .into_iter()
        .map(|c| {
            let model = model.to_string();
            std::thread::spawn(move || rank_loop(Box::new(c), &model, shard, steps).map(|r| r.0))
        })
        .collect();
    let mut out = Vec::new();
    for h in hs {
        out.push(h.join().map_err(|_| anyhow::anyhow!("a rank panicked"))??);
    }
    Ok(summarise(&out, steps, shard))
}

/// `ranks` nw ranks as MPI processes: this xtask binary under `mpirun`, in worker mode.
#[cfg(feature = "mpi")]
fn nw_mpi(model: &str, ranks: usize, shard: usize, steps: usize) -> Result<Option<Row>> {
    let exe = std::env::current_exe()?;
    let o = std::process::Command::new("mpirun")
        .args(["-n", &ranks.to_string(), "--oversubscribe"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .arg(&exe)
        .args(["bench", "distributed", "--worker", model])
        .args(["--shard", &shard.to_string(), "--steps", &steps.to_string()])
        .output()
        .context("running mpirun (apt-get install openmpi-bin)")?;
    if !o.status.success() {
        bail!("mpirun -n {ranks} {model}: {}", String::from_utf8_lossy(&o.stderr));
    }
    // One line per rank: rank, size, seconds, bytes sent, comm seconds, parameters.
    let s = String::from_utf8_lossy(&o.stdout);
    let mut all: Vec<(usize, RankTimes)> = Vec::new();
    for line in s.lines().filter(|l| !l.trim().is_empty()) {
        let v: Vec<f64> = line.split_whitespace().map(str::parse).collect::<Result<_, _>>()?;
        let [r, _, secs, sent, comm, params] = v[..] else { bail!("MPI worker printed {line:?}") };
        all.push((r as usize, RankTimes { secs, sent: sent as u64, comm, params: params as usize }));
    }
    all.sort_by_key(|a| a.0);
    if all.len() != ranks {
        bail!("{} of {ranks} MPI ranks reported: {s:?}", all.len());
    }
    let all: Vec<RankTimes> = all.into_iter().map(|a| a.1).collect();
    Ok(Some(summarise(&all, steps, shard)))
}

#[cfg(not(feature = "mpi"))]
fn nw_mpi(_: &str, _: usize, _: usize, _: usize) -> Result<Option<Row>> {
    Ok(None)
}

/// Worker mode under `mpirun`: one rank; rank 0 prints its row's four numbers.
#[cfg(feature = "mpi")]
fn worker(model: &str, shard: usize, steps: usize) -> Result<()> {
    let c = nw_dist::mpi::MpiRank::init(Duration::from_secs(600))?;
    let (rank, size) = (c.rank(), c.size());
    let (mine, c) = rank_loop(Box::new(c), model, shard, steps)?;
    // Every rank prints its line; mpirun forwards them to the parent, which
    // takes the slowest rank's time.
    println!("{rank} {size} {} {} {} {}", mine.secs, mine.sent, mine.comm, mine.params);
    drop(c);
    Ok(())
}

#[cfg(not(feature = "mpi"))]
fn worker(_: &str, _: usize, _: usize) -> Result<()> {
    bail!("--worker runs under mpirun in an xtask built with --features mpi")
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

/// Runs the benchmark and prints the table (or, with `--worker`, one MPI rank).
pub fn run(a: Args) -> Result<()> {
    if let Some(model) = &a.worker {
        return worker(model, a.shard, a.steps);
    }
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
        "# nw ranks: threads of one process (threads collective) and MPI processes (mpirun, when built with --features mpi); 1 compute thread each; torch = DDP gloo, 1 thread per process"
    );
    println!(
        "# comm share: rank 0's seconds inside collectives (sending, waiting for the slowest rank) / its step time"
    );
    println!(
        "| model | params | ranks | collective | nw samples/s | efficiency | comm share | bytes/step (rank 0 sends) | torch DDP samples/s | nw/torch |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for model in ["mlp", "cnn"] {
        let mut base: [Option<f64>; 2] = [None, None];
        for ranks in [1, 2] {
            let t = match &torch {
                Some(p) => Some(torch_run(p, model, ranks, a.shard, a.steps)?),
                None => None,
            };
            let rows = [
                ("threads", Some(nw_threads(model, ranks, a.shard, a.steps)?)),
                ("MPI", nw_mpi(model, ranks, a.shard, a.steps)?),
            ];
            for (i, (kind, row)) in rows.into_iter().enumerate() {
                let Some((sps, bytes, comm, params)) = row else {
                    println!(
                        "| {model} | | {ranks} | {kind} | not run (cargo run --release -p xtask --features mpi -- bench distributed) | | | | | |"
                    );
                    continue;
                };
                let b = *base[i].get_or_insert(sps);
                println!(
                    "| {model} | {params} | {ranks} | {kind} | {sps:.0} | {:.0}% | {:.1}% | {bytes:.0} | {} | {} |",
                    100.0 * sps / (b * ranks as f64),
                    100.0 * comm,
                    t.map_or("not run".into(), |v| format!("{v:.0}")),
                    t.map_or("".into(), |v| format!("{:.2}", sps / v)),
                );
            }
        }
    }
    println!("# load average at the end: {}", super::loadavg());
    Ok(())
}
