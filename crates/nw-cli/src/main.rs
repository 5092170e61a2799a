//! `nw`: train a network, then evaluate, inspect, prune or resume it.
//!
//! The binary is thin: it parses arguments, builds a [`nw_train::RunConfig`],
//! shows progress and maps errors to exit codes. Everything else is in the
//! library crates. `nw train` with no arguments trains an MLP on the embedded
//! UCI digits and ends with `test accuracy: 0.9xx`.
//!
//! Exit codes: 0 success, 1 other failure, 2 bad arguments or configuration,
//! 3 data missing or unreadable, 4 training diverged (NaN/infinity),
//! 5 a corrupted or mismatched model/checkpoint file.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Train neural networks with exact, visible weight updates.
#[derive(Parser)]
#[command(name = "nw", version, about, long_about = None)]
pub struct Cli {
    /// More log output (-v: info, -vv: debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Worker threads for the kernels (default: all cores). Results do not depend on it.
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    #[command(subcommand)]
    /// What to do.
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Train a model (defaults: an MLP on the embedded digits).
    Train(Box<TrainArgs>),
    /// Loss and accuracy of a trained model on its run's test split.
    Eval {
        /// A run directory (or its checkpoint file).
        #[arg(long, default_value = "runs/latest")]
        model: PathBuf,
    },
    /// Class and probabilities for rows of features (CSV, from a file or stdin).
    Predict {
        /// A run directory (or its checkpoint file).
        #[arg(long, default_value = "runs/latest")]
        model: PathBuf,
        /// A CSV file of feature rows (no target column); `-` or absent reads stdin.
        #[arg(long)]
        input: Option<PathBuf>,
    },
    /// Architecture, parameter counts and weight statistics of a saved model.
    Inspect {
        /// A run directory (or its checkpoint file).
        #[arg(long, default_value = "runs/latest")]
        model: PathBuf,
    },
    /// Prune a trained model by global weight magnitude, fine-tune, report accuracy before and after.
    Prune {
        /// A run directory (or its checkpoint file).
        #[arg(long, default_value = "runs/latest")]
        model: PathBuf,
        /// Fraction of weights (rank >= 2) to remove, in [0, 1).
        #[arg(long, default_value_t = 0.5)]
        sparsity: f64,
        /// Epochs of fine-tuning with the masks kept.
        #[arg(long, default_value_t = 3)]
        fine_tune_epochs: u64,
        /// Where to write the pruned run (default: <model>-pruned).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Continue the run that wrote a checkpoint, to the same result it would have reached.
    Resume {
        /// The checkpoint file (or its run directory).
        checkpoint: PathBuf,
        /// Train to this many epochs in total (default: the run's own).
        #[arg(long)]
        epochs: Option<u64>,
        /// Output directory (default: the checkpoint's directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Options of `nw train`; each overrides the same key of `--config`.
#[derive(Args, Default)]
pub struct TrainArgs {
    /// A TOML file with any of the sections [data], [model], [optim], [schedule], [reg], [train].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output directory for the model, checkpoint, metrics, monitor log and plots.
    #[arg(long, default_value = "runs/latest")]
    pub out: PathBuf,
    /// Data set: digits (embedded), iris, wine, breast-cancer, fashion-mnist, or csv.
    #[arg(long)]
    pub dataset: Option<String>,
    /// CSV file for --dataset csv (header line expected, target in the last column).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// The CSV's target column, counted from 0.
    #[arg(long)]
    pub target_column: Option<usize>,
    /// Architecture: mlp, cnn (conv3x3-relu-pool blocks) or lstm (over image rows).
    #[arg(long)]
    pub model: Option<String>,
    /// MLP hidden sizes, e.g. 256,128.
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// MLP activation: relu, tanh, sigmoid, gelu, silu.
    #[arg(long)]
    pub activation: Option<String>,
    /// Dropout probability.
    #[arg(long)]
    pub dropout: Option<f64>,
    /// CNN channels per convolution block, e.g. 32,64.
    #[arg(long, value_delimiter = ',')]
    pub channels: Option<Vec<usize>>,
    /// CNN fully connected width, or LSTM hidden size.
    #[arg(long)]
    pub width: Option<usize>,
    /// LSTM layers.
    #[arg(long)]
    pub layers: Option<usize>,
    /// Weight initialiser: default, xavier-uniform, xavier-normal, kaiming-uniform, kaiming-normal, lecun-normal, orthogonal.
    #[arg(long)]
    pub init: Option<String>,
    /// Optimizer: sgd, adam, adamw, adagrad, rmsprop, adadelta, adamax, nadam, radam, rprop, lion.
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Momentum (SGD, RMSprop).
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Nesterov momentum (SGD).
    #[arg(long)]
    pub nesterov: bool,
    /// Weight decay (decoupled for AdamW and Lion, L2 otherwise).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Schedule: none, step, exponential, cosine, warmup-cosine, onecycle, plateau.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Epochs.
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Batch: full (gradient descent), online (one example), or a mini-batch size.
    #[arg(long)]
    pub batch: Option<String>,
    /// Seed of everything random.
    #[arg(long)]
    pub seed: Option<u64>,
    /// L1 penalty on weights.
    #[arg(long)]
    pub l1: Option<f32>,
    /// L2 penalty on weights (as a loss term).
    #[arg(long)]
    pub l2: Option<f32>,
    /// Max-norm constraint on weight rows.
    #[arg(long)]
    pub max_norm: Option<f32>,
    /// Clip the global gradient norm.
    #[arg(long)]
    pub clip_grad_norm: Option<f64>,
    /// Stop when the validation loss has not improved for this many epochs.
    #[arg(long)]
    pub early_stopping: Option<usize>,
    /// Record the weight monitor every N steps (0: epoch ends only).
    #[arg(long)]
    pub monitor_every: Option<u64>,
    /// Write a checkpoint every N epochs (0: only at the end).
    #[arg(long)]
    pub checkpoint_every: Option<u64>,
    /// Label smoothing of the cross-entropy.
    #[arg(long)]
    pub label_smoothing: Option<f32>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    // A bad NW_ISA (unknown, or a set this CPU lacks) stops here rather than
    // running with another kernel than the one asked for.
    if let Err(e) = nw_tensor::gemm::isa::from_env() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(commands::exit_code(&e))
        }
    }
}
