//! `cargo xtask <command>`: the nw workspace's developer tasks, one binary
//! with clap subcommands (see `cargo xtask --help`).
//!
//! Commands:
//! - `bench gemm [--threads N] [--torch PYTHON] [--json] [--only NAME]
//!   [--kernel avx512|avx2|scalar]`: GEMM throughput, side by side with
//!   `torch.matmul` (timed alternately in the same run) when a Python with
//!   PyTorch is given. Results: `docs/BENCHMARKS.md`.
//!
//! Add a command by adding a variant to [`Command`] and a module; add a
//! benchmark target under `bench/` (see `bench/mod.rs`).

mod bench;

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
}

fn run() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Bench { target } => bench::run(target),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
