//! `cargo xtask <command>`: the nw workspace's developer tasks, one binary
//! with clap subcommands (see `cargo xtask --help`).
//!
//! Commands:
//! - `bench gemm [--threads N] [--torch PYTHON] [--json] [--only NAME]
//!   [--kernel avx512|avx2|scalar]`: GEMM throughput, side by side with
//!   `torch.matmul` (timed alternately in the same run) when a Python with
//!   PyTorch is given. Results: `docs/BENCHMARKS.md`.
//! - `bench optim [--threads N] [--torch PYTHON] [--json] [--params N]
//!   [--rules all|elementwise|matrix] [--matrices N] [--size N]`: an
//!   Adam and an SGD-momentum step over 10M parameters against torch.optim
//!   (fused and foreach), with memcpy and in-place bandwidth references; then
//!   an Adafactor and a Muon step over ten 1024x1024 matrices against
//!   torch.optim's (PyTorch from `--torch` or `/tmp/torch/bin/python`).
//! - `bench mlp [--threads N] [--torch PYTHON] [--json] [--optimizer adam|sgd]
//!   [--steps N]`: Linear(784->512)+ReLU forward+backward against its three
//!   GEMMs alone and torch; a 784-512-256-10 MLP training step against
//!   `Trainer::train_step` and torch, with allocations per step and live
//!   bytes over N steps (xtask counts allocations: `bench/alloc.rs`).
//! - `bench conv [--threads N] [--torch PYTHON] [--json]`: conv2d
//!   64x32x28x28 -> 64 3x3 pad 1, forward and forward+backward, vs torch.
//! - `bench lstm [--threads N] [--torch PYTHON] [--json]`: an Adam step of
//!   LSTM(28->128) over the rows of 64 28x28 images + Linear(128->10), vs
//!   torch's `nn.LSTM` step (`benches/torch/lstm.py`).
//! - `bench accuracy [--torch PYTHON] [--only mlp|cnn] [--threads N]
//!   [--epochs N] [--batch N] [--lr X] [--dropout P] [--schedule none|cosine]
//!   [--seed S]`: Fashion-MNIST test accuracy and training time, nw-train
//!   then PyTorch (`benches/torch/accuracy.py`) with the same settings.
//! - `bench train [--torch PYTHON] [--kernel auto,avx2] [--threads 1,2]
//!   [--reps N] [--only TASK,..] [--json FILE]`: MLP epoch, CNN and LSTM
//!   steps, Adam / SGD-momentum over 10M parameters, MLP and CNN inference
//!   at batch 1 and 256, each run in its own process with peak RSS, PyTorch
//!   (`benches/torch/train.py`) alternating on the same work.
//! - `bench peak`: the measured single-core FMA peak (AVX-512, AVX2).
//! - `parity DIR [--filter TEXT]`: every case of every reference fixture file
//!   in DIR, one line each, then `N passed, N failed` (exit 1 on any failure).
//! - `datasets fetch fashion-mnist`: Fashion-MNIST into `datasets/`, verified.
//! - `fuzz TARGET [--seconds N]`: coverage-guided fuzzing (AFL++ via `cargo
//!   afl`, stable toolchain) of a reader: `idx_raw`, `idx_gzip`, `csv`,
//!   `safetensors`, `bincode`, `fixture` or `all`; `fuzz corpus` rewrites
//!   the seed corpus `fuzz/corpus/`. See `docs/RELIABILITY.md`.
//! - `release`: checks, release build, `cargo package` of every crate, checksums.
//!
//! Add a command by adding a variant to [`Command`] and a module; add a
//! benchmark target under `bench/` (see `bench/mod.rs`).

mod bench;
mod datasets;
mod fuzz;
mod parity;
mod release;

use std::path::{Path, PathBuf};

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Developer tasks for the nw workspace.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a benchmark and print its table (or JSON lines).
    Bench {
        #[command(subcommand)]
        target: bench::Target,
    },
    /// Run every case of every PyTorch reference fixture file in DIR.
    Parity {
        /// A directory of `nw-reference/1` JSON files (e.g. fixtures/reference).
        dir: PathBuf,
        /// Only cases whose `file::name` contains this text.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Download or copy data sets into `datasets/`.
    Datasets {
        #[command(subcommand)]
        action: DatasetsAction,
    },
    /// Coverage-guided fuzzing of a reader with AFL++ (`cargo afl`, stable).
    Fuzz {
        /// idx_raw, idx_gzip, csv, safetensors, bincode, fixture, `all`, or
        /// `corpus` (rewrite the seed corpus in fuzz/corpus).
        target: String,
        /// How long to fuzz each target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Check, build the release binary, package every crate, write checksums.
    Release,
}

#[derive(Subcommand)]
enum DatasetsAction {
    /// Fetch a data set (`fashion-mnist`), verifying its SHA-256.
    Fetch {
        /// The data set's name.
        name: String,
    },
}

/// The workspace root (xtask's manifest directory is `<root>/xtask`).
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace root")
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A bad NW_ISA stops here rather than running with another kernel.
    nw_tensor::gemm::isa::from_env()?;
    match cli.command {
        Command::Bench { target } => bench::run(target),
        Command::Parity { dir, filter } => parity::run(&dir, filter.as_deref()),
        Command::Datasets { action: DatasetsAction::Fetch { name } } => datasets::fetch(root(), &name),
        Command::Fuzz { target, seconds } => fuzz::run(root(), &target, seconds),
        Command::Release => release::run(root()),
    }
}

fn main() -> ExitCode {
    // large step-lived buffers from the heap, not fresh mmaps (nw_tensor::malloc);
    // the bench workers are this binary too
    nw_tensor::malloc::tune_for_training();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
