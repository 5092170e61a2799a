//! `cargo xtask bench <target>`: benchmarks that print a table, optionally
//! side by side with PyTorch.
//!
//! Each target is a module with an `Args` struct (clap) and a `run`. The
//! shared pieces live here (timing: calibrated repeats, medians) and in
//! [`torch`] (a persistent Python worker, `benches/torch/worker.py`).
//! To add a target (conv, optim, mlp ...): add a module, a [`Target`]
//! variant, and, for a PyTorch comparison, an op in the worker's `OPS`.

mod accuracy;
pub mod alloc;
mod anomaly;
mod conv;
mod distributed;
mod gemm;
mod lstm;
mod mlp;
mod monitor;
mod optim;
mod optim_matrix;
mod peak;
mod soak;
pub mod torch;
mod train;

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Subcommand;

/// A benchmark target.
#[derive(Subcommand)]
pub enum Target {
    /// GEMM GFLOP/s on square and MLP training shapes, 1 and 2 threads.
    Gemm(gemm::Args),
    /// Adam and SGD-momentum steps over 10M parameters vs torch.optim, 1 and 2 threads.
    Optim(optim::Args),
    /// Linear(784->512)+ReLU fwd+bwd vs its GEMMs, and an MLP training step (with allocation counts) vs torch.
    Mlp(mlp::Args),
    /// conv2d 64x32x28x28 -> 64 channels 3x3 pad 1, forward and forward+backward vs torch.
    Conv(conv::Args),
    /// An LSTM(28->128) classifier's Adam step over 28-row images, batch 64, vs torch.
    Lstm(lstm::Args),
    /// Fashion-MNIST test accuracy and wall time of an MLP and a CNN, nw-train vs PyTorch (minutes).
    Accuracy(accuracy::Args),
    /// Whole training and inference tasks (MLP, CNN, LSTM, optimizers, inference) vs PyTorch, one process per run.
    Train(train::Args),
    /// Data-parallel MLP and CNN training at 1 and 2 ranks x 1 thread (samples/s, bytes per step) vs torch DDP gloo.
    Distributed(distributed::Args),
    /// The weight monitor's cost: MLP training steps with the monitor off vs every step.
    Monitor(monitor::Args),
    /// What `--detect-anomaly` costs: training steps with anomaly detection off vs on.
    Anomaly(anomaly::Args),
    /// The measured single-core FMA peak (AVX-512 and AVX2).
    Peak(peak::Args),
    /// 100,000 digits-MLP steps with a checkpoint every 1,000: memory, file handles and temporary files must not accumulate.
    Soak(soak::Args),
    /// One nw run of one `bench train` task (started by `bench train`).
    #[command(hide = true)]
    TrainWorker(train::WorkerArgs),
}

/// Runs one benchmark target.
pub fn run(target: Target) -> Result<()> {
    match target {
        Target::Gemm(args) => gemm::run(args),
        Target::Optim(args) => optim::run(args),
        Target::Mlp(args) => mlp::run(args),
        Target::Conv(args) => conv::run(args),
        Target::Lstm(args) => lstm::run(args),
        Target::Accuracy(args) => accuracy::run(args),
        Target::Train(args) => train::run(args),
        Target::Monitor(args) => monitor::run(args),
        Target::Anomaly(args) => anomaly::run(args),
        Target::Peak(args) => peak::run(args),
        Target::Soak(args) => soak::run(args),
        Target::Distributed(args) => distributed::run(args),
        Target::TrainWorker(args) => train::run_worker(args),
    }
}

/// Each repeat times at least this long (enough iterations to get there).
pub const MIN_REPEAT: Duration = Duration::from_millis(50);

/// Repeats per measurement; the median is reported.
pub const REPEATS: usize = 9;

/// Something to time: runs `iters` iterations and returns the seconds taken.
pub type Timer<'a> = dyn FnMut(u64) -> Result<f64> + 'a;

/// The number of iterations for which one repeat of `timer` takes at least
/// [`MIN_REPEAT`] (after one warm-up iteration).
pub fn calibrate(timer: &mut Timer<'_>) -> Result<u64> {
    timer(1)?;
    let target = MIN_REPEAT.as_secs_f64();
    let mut iters = 1u64;
    loop {
        let t = timer(iters)?;
        if t >= target {
            return Ok(iters);
        }
        // Aim 20% past the target, growing at least 2x per round.
        let guess = (iters as f64 * target * 1.2 / t.max(1e-9)).ceil() as u64;
        iters = guess.max(iters * 2).min(iters * 1000);
    }
}

/// Median seconds per iteration of each timer over [`REPEATS`] repeats, the
/// timers' repeats interleaved (A B A B ...) so that a change in machine load
/// hits them alike. `iters[i]` is timer `i`'s iteration count.
pub fn alternate(timers: &mut [&mut Timer<'_>], iters: &[u64]) -> Result<Vec<f64>> {
    let mut samples = vec![Vec::with_capacity(REPEATS); timers.len()];
    for _ in 0..REPEATS {
        for (i, timer) in timers.iter_mut().enumerate() {
            samples[i].push(timer(iters[i])? / iters[i] as f64);
        }
    }
    Ok(samples.into_iter().map(|mut s| median(&mut s)).collect())
}

/// The median of `v` (mean of the middle two for even lengths).
pub fn median(v: &mut [f64]) -> f64 {
    assert!(!v.is_empty(), "median of nothing");
    v.sort_by(f64::total_cmp);
    let h = v.len() / 2;
    if v.len() % 2 == 1 { v[h] } else { (v[h - 1] + v[h]) / 2.0 }
}

/// Times `iters` calls of `f` on the calling thread.
pub fn time_iters(iters: u64, mut f: impl FnMut()) -> f64 {
    let t0 = Instant::now();
    for _ in 0..iters {
        f();
    }
    t0.elapsed().as_secs_f64()
}

/// Times `iters` calls of a fallible `f` on the calling thread, stopping at
/// the first error.
pub fn time_result(iters: u64, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let t0 = Instant::now();
    for _ in 0..iters {
        f()?;
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// The 1-, 5- and 15-minute load averages, as `/proc/loadavg` gives them.
pub fn loadavg() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// [`machine`], then ` | ` and the PyTorch worker's description when one runs.
pub fn machine_and_torch(torch: Option<&mut torch::Torch>) -> Result<String> {
    Ok(match torch {
        Some(t) => format!("{} | {}", machine(), t.info()?),
        None => machine(),
    })
}

/// A one-line description of this machine: CPU model, logical CPUs, load.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_string();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{model}, {cpus} logical CPUs, load average {}", load.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn calibrate_reaches_the_minimum_repeat() {
        // A fake timer: each iteration "takes" 1 ms.
        let mut fake = |iters: u64| -> Result<f64> { Ok(iters as f64 * 1e-3) };
        let iters = calibrate(&mut fake).unwrap();
        assert!(iters as f64 * 1e-3 >= MIN_REPEAT.as_secs_f64());
        assert!(iters <= 2 * 60, "overshoots: {iters}");
    }
}
