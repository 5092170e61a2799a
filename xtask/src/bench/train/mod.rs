//! `cargo xtask bench train [--torch PY] [--kernel auto,avx2] [--threads 1,2]
//! [--reps N] [--only TASK,..] [--json FILE]`: whole training and inference
//! tasks, nw against PyTorch on identical work, every run in its own process.
//!
//! Tasks ([`Task`]; Fashion-MNIST, pixels / 255, Adam lr 1e-3, betas (0.9,
//! 0.999), eps 1e-8, seed 0, 5 untimed warm-up steps):
//! - `mlp_epoch`: 784-512-256-10 ReLU MLP, one epoch at batch 128 (seeded
//!   shuffle, batches gathered in the timed loop), samples/s; then the test
//!   accuracy.
//! - `cnn`: conv3x3(32)-ReLU-pool2, conv3x3(64)-ReLU-pool2, fc128-ReLU, fc10;
//!   200 steps at batch 64, samples/s.
//! - `lstm`: LSTM 28 -> 128 over the 28 image rows, last hidden state to
//!   fc10; 200 steps at batch 64, samples/s.
//! - `adam`, `sgd_momentum`: one optimizer step over 10M parameters (three
//!   tensors 4000x1000, 4000x1000, 2000x1000; SGD lr 1e-3 momentum 0.9), ms.
//! - `mlp_infer_1`, `mlp_infer_256`, `cnn_infer_1`, `cnn_infer_256`: eval-mode
//!   forward without a graph on the first test images; µs per call at batch
//!   1, samples/s at 256.
//!
//! nw runs as `cargo xtask bench train-worker` (worker.rs), PyTorch as
//! `benches/torch/train.py`, each task and thread count one fresh process
//! that reports its peak RSS (`VmHWM`). Per repeat the runs alternate: nw
//! with each `--kernel` (`NW_ISA` set in the child; `auto` leaves it
//! unset), then PyTorch, so a change in machine load hits all alike. The
//! table gives medians over the repeats and `nw / torch` as a speed ratio
//! (above 1: nw faster, whether the unit is a rate or a time); `--json FILE`
//! also writes one JSON object per (task, threads, kernel) with every run.

mod worker;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use nw_tensor::gemm::{Kernel, isa};

pub use worker::{WorkerArgs, run as run_worker};

use super::{loadavg, machine, median, peak};

/// A benchmark task (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// MLP epoch, batch 128.
    MlpEpoch,
    /// CNN, 200 steps at batch 64.
    Cnn,
    /// LSTM over rows, 200 steps at batch 64.
    Lstm,
    /// Adam step over 10M parameters.
    Adam,
    /// SGD-momentum step over 10M parameters.
    SgdMomentum,
    /// MLP inference, batch 1.
    MlpInfer1,
    /// MLP inference, batch 256.
    MlpInfer256,
    /// CNN inference, batch 1.
    CnnInfer1,
    /// CNN inference, batch 256.
    CnnInfer256,
}

impl Task {
    /// Every task, in table order.
    pub const ALL: [Task; 9] = [
        Task::MlpEpoch,
        Task::Cnn,
        Task::Lstm,
        Task::Adam,
        Task::SgdMomentum,
        Task::MlpInfer1,
        Task::MlpInfer256,
        Task::CnnInfer1,
        Task::CnnInfer256,
    ];

    /// The name on the command line, in the table and in `train.py`.
    pub fn name(self) -> &'static str {
        match self {
            Task::MlpEpoch => "mlp_epoch",
            Task::Cnn => "cnn",
            Task::Lstm => "lstm",
            Task::Adam => "adam",
            Task::SgdMomentum => "sgd_momentum",
            Task::MlpInfer1 => "mlp_infer_1",
            Task::MlpInfer256 => "mlp_infer_256",
            Task::CnnInfer1 => "cnn_infer_1",
            Task::CnnInfer256 => "cnn_infer_256",
        }
    }

    /// The unit of the measured value.
    pub fn unit(self) -> &'static str {
        match self {
            Task::Adam | Task::SgdMomentum => "ms",
            Task::MlpInfer1 | Task::CnnInfer1 => "us",
            _ => "samples/s",
        }
    }

    /// Whether a larger value is better (a rate) rather than worse (a time).
    pub fn higher_is_better(self) -> bool {
        self.unit() == "samples/s"
    }
}

fn parse_task(s: &str) -> Result<Task, String> {
    Task::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| {
        let names: Vec<&str> = Task::ALL.iter().map(|t| t.name()).collect();
        format!("unknown task `{s}` (one of {})", names.join(", "))
    })
}

/// A `--kernel` entry: `auto` (whatever nw picks) or a forced kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KernelChoice {
    Auto,
    Forced(Kernel),
}

fn parse_kernel(s: &str) -> Result<KernelChoice, String> {
    if s == "auto" {
        return Ok(KernelChoice::Auto);
    }
    match isa::resolve(Some(s), &|k| k.is_available()) {
        Ok(k) => Ok(KernelChoice::Forced(k)),
        Err(e) => Err(e.to_string()),
    }
}

impl KernelChoice {
    /// The `NW_ISA` value for the child (None: unset).
    fn env(self) -> Option<&'static str> {
        match self {
            KernelChoice::Auto => None,
            KernelChoice::Forced(Kernel::Avx512) => Some("avx512"),
            KernelChoice::Forced(Kernel::Avx2) => Some("avx2"),
            KernelChoice::Forced(Kernel::Scalar) => Some("scalar"),
        }
    }

    fn label(self) -> String {
        match self {
            KernelChoice::Auto => {
                format!("auto ({:?})", isa::resolve(None, &|k| k.is_available()).unwrap_or(Kernel::Scalar))
            }
            KernelChoice::Forced(k) => format!("{k:?} (NW_ISA)"),
        }
    }
}

/// Options of `bench train`.
#[derive(clap::Args)]
pub struct Args {
    /// A Python with PyTorch: also run every task in PyTorch (`benches/torch/train.py`).
    #[arg(long, value_name = "PYTHON")]
    torch: Option<PathBuf>,
    /// nw's kernels, comma-separated: auto (the best this CPU has), avx512, avx2, scalar.
    #[arg(long, value_delimiter = ',', default_value = "auto", value_parser = parse_kernel)]
    kernel: Vec<KernelChoice>,
    /// Thread counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Repeats of every run (the table shows medians).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Only these tasks, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_parser = parse_task)]
    only: Vec<Task>,
    /// Also write one JSON object per (task, threads, kernel) to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// What one process reported.
#[derive(Clone, Debug)]
struct Run {
    value: f64,
    rss_kb: u64,
    acc: Option<f64>,
    kernel: String,
}

fn parse_result(out: &str) -> Result<Run> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with("result "))
        .with_context(|| format!("no `result` line in:\n{out}"))?;
    let field = |key: &str| line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='));
    let value: f64 = field("value").context("no value")?.parse().context("bad value")?;
    let rss_kb = field("rss_kb").context("no rss_kb")?.parse().context("bad rss_kb")?;
    let acc = field("acc").map(str::parse).transpose().context("bad acc")?;
    let kernel = field("kernel").unwrap_or("-").to_string();
    Ok(Run { value, rss_kb, acc, kernel })
}

fn run_child(mut cmd: Command, what: &str) -> Result<Run> {
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("{what} failed ({}):\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    parse_result(&stdout).with_context(|| what.to_string())
}

fn nw_run(task: Task, threads: usize, kernel: KernelChoice) -> Result<Run> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["bench", "train-worker", "--task", task.name(), "--threads", &threads.to_string()]);
    match kernel.env() {
        Some(v) => cmd.env(isa::ENV_VAR, v),
        None => cmd.env_remove(isa::ENV_VAR),
    };
    cmd.env("RAYON_NUM_THREADS", threads.to_string());
    run_child(cmd, &format!("nw {} at {threads} thread(s), kernel {kernel:?}", task.name()))
}

fn torch_run(python: &std::path::Path, task: Task, threads: usize) -> Result<Run> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/torch/train.py");
    let mut cmd = Command::new(python);
    cmd.arg(script).args(["--task", task.name(), "--threads", &threads.to_string()]);
    cmd.env("OMP_NUM_THREADS", threads.to_string());
    run_child(cmd, &format!("torch {} at {threads} thread(s)", task.name()))
}

/// Medians of one (task, threads, kernel) cell.
struct Cell {
    task: Task,
    threads: usize,
    kernel: KernelChoice,
    nw: Vec<Run>,
    torch: Vec<Run>,
}

fn med(runs: &[Run], f: impl Fn(&Run) -> f64) -> Option<f64> {
    if runs.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    Some(median(&mut v))
}

impl Cell {
    fn nw_value(&self) -> Option<f64> {
        med(&self.nw, |r| r.value)
    }

    fn torch_value(&self) -> Option<f64> {
        med(&self.torch, |r| r.value)
    }

    /// nw's speed relative to torch's (above 1: nw faster).
    fn ratio(&self) -> Option<f64> {
        let (n, t) = (self.nw_value()?, self.torch_value()?);
        Some(if self.task.higher_is_better() { n / t } else { t / n })
    }
}

fn fmt(x: Option<f64>, task: Task) -> String {
    match x {
        None => "-".into(),
        Some(v) if task.unit() == "ms" || task.unit() == "us" => format!("{v:.1}"),
        Some(v) => format!("{v:.0}"),
    }
}

fn opt_json(x: Option<f64>) -> String {
    x.map_or("null".into(), |v| format!("{v}"))
}

fn json_line(c: &Cell, cpu: &str) -> String {
    let runs = |rs: &[Run]| {
        let items: Vec<String> = rs
            .iter()
            .map(|r| format!("{{\"value\":{},\"rss_kb\":{},\"acc\":{}}}", r.value, r.rss_kb, opt_json(r.acc)))
            .collect();
        format!("[{}]", items.join(","))
    };
    format!(
        "{{\"task\":\"{}\",\"unit\":\"{}\",\"threads\":{},\"kernel\":\"{}\",\"nw_kernel\":\"{}\",\"nw\":{},\"torch\":{},\"ratio\":{},\"nw_rss_mb\":{},\"torch_rss_mb\":{},\"nw_acc\":{},\"torch_acc\":{},\"nw_runs\":{},\"torch_runs\":{},\"cpu\":\"{}\"}}",
        c.task.name(),
        c.task.unit(),
        c.threads,
        c.kernel.env().unwrap_or("auto"),
        c.nw.first().map_or("-", |r| r.kernel.as_str()),
        opt_json(c.nw_value()),
        opt_json(c.torch_value()),
        opt_json(c.ratio()),
        opt_json(med(&c.nw, |r| r.rss_kb as f64 / 1024.0)),
        opt_json(med(&c.torch, |r| r.rss_kb as f64 / 1024.0)),
        opt_json(c.nw.iter().find_map(|r| r.acc)),
        opt_json(c.torch.iter().find_map(|r| r.acc)),
        runs(&c.nw),
        runs(&c.torch),
        cpu.replace('"', "'"),
    )
}

pub fn run(args: Args) -> Result<()> {
    if args.threads.is_empty() || args.threads.contains(&0) {
        bail!("--threads must list counts of at least 1");
    }
    if args.reps == 0 {
        bail!("--reps must be at least 1");
    }
    let tasks: Vec<Task> = if args.only.is_empty() { Task::ALL.to_vec() } else { args.only.clone() };
    let cpu = machine();
    println!("# bench train | {cpu}");
    println!("# FMA peak (measured): {}", peak::summary());
    let kernels: Vec<String> = args.kernel.iter().map(|k| k.label()).collect();
    println!("# nw kernel(s): {}", kernels.join(", "));
    let mut cells = Vec::new();
    for &task in &tasks {
        for &threads in &args.threads {
            let mut row: Vec<Cell> = args
                .kernel
                .iter()
                .map(|&kernel| Cell { task, threads, kernel, nw: Vec::new(), torch: Vec::new() })
                .collect();
            let mut torch = Vec::new();
            for rep in 0..args.reps {
                for cell in row.iter_mut() {
                    let r = nw_run(task, threads, cell.kernel)?;
                    eprintln!(
                        "  {} t={threads} rep {rep} nw[{}] {:.3} {} rss {} MB (load {})",
                        task.name(),
                        r.kernel,
                        r.value,
                        task.unit(),
                        r.rss_kb / 1024,
                        loadavg()
                    );
                    cell.nw.push(r);
                }
                if let Some(py) = &args.torch {
                    let r = torch_run(py, task, threads)?;
                    eprintln!(
                        "  {} t={threads} rep {rep} torch {:.3} {} rss {} MB (load {})",
                        task.name(),
                        r.value,
                        task.unit(),
                        r.rss_kb / 1024,
                        loadavg()
                    );
                    torch.push(r);
                }
            }
            for cell in row.iter_mut() {
                cell.torch = torch.clone();
            }
            cells.extend(row);
        }
    }
    println!("# load average at the end: {}", loadavg());
    println!();
    println!(
        "| task | unit | thr | kernel | nw | torch | nw/torch | nw RSS MB | torch RSS MB | test acc nw / torch |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for c in &cells {
        let acc = match (c.nw.iter().find_map(|r| r.acc), c.torch.iter().find_map(|r| r.acc)) {
            (None, None) => String::new(),
            (a, b) => format!(
                "{} / {}",
                a.map_or("-".into(), |a| format!("{:.2}%", 100.0 * a)),
                b.map_or("-".into(), |b| format!("{:.2}%", 100.0 * b))
            ),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.task.name(),
            c.task.unit(),
            c.threads,
            c.nw.first().map_or("-", |r| r.kernel.as_str()),
            fmt(c.nw_value(), c.task),
            fmt(c.torch_value(), c.task),
            c.ratio().map_or("-".into(), |r| format!("{r:.2}")),
            med(&c.nw, |r| r.rss_kb as f64 / 1024.0).map_or("-".into(), |v| format!("{v:.0}")),
            med(&c.torch, |r| r.rss_kb as f64 / 1024.0).map_or("-".into(), |v| format!("{v:.0}")),
            acc
        );
    }
    let lines: Vec<String> = cells.iter().map(|c| json_line(c, &cpu)).collect();
    println!();
    for l in &lines {
        println!("{l}");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, lines.join("\n") + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_result_line() {
        let r = parse_result("noise\nresult value=12.5 rss_kb=2048 acc=0.875 kernel=Avx2\n").unwrap();
        assert_eq!((r.value, r.rss_kb, r.acc, r.kernel.as_str()), (12.5, 2048, Some(0.875), "Avx2"));
        let r = parse_result("result value=3 rss_kb=1").unwrap();
        assert_eq!((r.acc, r.kernel.as_str()), (None, "-"));
        assert!(parse_result("value=3").is_err());
        assert!(parse_result("result rss_kb=1").is_err());
    }

    #[test]
    fn task_names_round_trip_and_ratios_point_the_same_way() {
        for t in Task::ALL {
            assert_eq!(parse_task(t.name()), Ok(t));
        }
        assert!(parse_task("gpt").is_err());
        let run = |v| Run { value: v, rss_kb: 0, acc: None, kernel: "-".into() };
        let cell = |task, nw, torch| Cell {
            task,
            threads: 1,
            kernel: KernelChoice::Auto,
            nw: vec![run(nw)],
            torch: vec![run(torch)],
        };
        // A rate twice torch's and a time half torch's are both "2x faster".
        assert_eq!(cell(Task::Cnn, 200.0, 100.0).ratio(), Some(2.0));
        assert_eq!(cell(Task::MlpInfer1, 50.0, 100.0).ratio(), Some(2.0));
    }
}
