//! `nw`: train a network, then evaluate, inspect, prune or resume it.
//!
//! The binary is thin: it parses arguments, builds a [`nw_train::RunConfig`],
//! shows progress and maps errors to exit codes. Everything else is in the
//! library crates. `nw train` with no arguments trains an MLP on the embedded
//! UCI digits and ends with `test accuracy: 0.9xx`.
//!
//! Exit codes: 0 success, 1 other failure, 2 bad arguments or configuration,
//! 3 data missing or unreadable, 4 training diverged (NaN/infinity),
//! 5 a corrupted or mismatched model/checkpoint file, 6 an I/O failure (a
//! full disk, an unwritable directory), 7 the output directory is in use by
//! another run, 130 interrupted.

mod commands;
mod lab;

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
    Eval(ModelSource),
    /// Class and probabilities (or values, or raw outputs) for rows of features (CSV, from a file or stdin).
    Predict {
        /// The model.
        #[command(flatten)]
        source: ModelSource,
        /// A CSV file of feature rows (no target column); `-` or absent reads stdin.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Print the raw outputs (logits) instead of classes and probabilities.
        #[arg(long)]
        logits: bool,
    },
    /// Architecture (as TOML), parameter counts and weight statistics of a saved model.
    Inspect(ModelSource),
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
    /// Learning-rate range test on this configuration (every `nw train` flag applies;
    /// --out defaults to runs/lr-find): prints the suggested rate, writes csv and plot.
    LrFind(Box<LrFindArgs>),
    /// Online learning: one update per labelled CSV row (or per --batch rows) of a trained run,
    /// written as a new run directory with the monitor's record of every update.
    Update {
        /// The trained run directory (or its checkpoint).
        run: PathBuf,
        /// CSV rows: the features, then the target (class index or values); a header line is skipped.
        #[arg(long)]
        input: PathBuf,
        /// Constant learning rate (default: the run's optim.lr, not its annealed end).
        #[arg(long)]
        lr: Option<f64>,
        /// Rows per update.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Output directory (default: <run>-updated).
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
        /// Resume data-parallel over MPI ranks (any count).
        #[command(flatten)]
        dist: DistArgs,
    },
    /// The laboratory: experiments that measure how weights update (nw lab all: every one, with an
    /// HTML report) and nw lab branch (what another rule would have done from a checkpoint).
    Lab(lab::LabArgs),
    /// One self-contained index.html comparing run directories (loss, accuracy, per-layer update ratio).
    Report(lab::ReportArgs),
}

/// Options of `nw lr-find`: the run's configuration (as `nw train`) and the sweep.
#[derive(Args)]
pub struct LrFindArgs {
    /// The configuration to test.
    #[command(flatten)]
    pub train: TrainArgs,
    /// First learning rate of the sweep.
    #[arg(long, default_value_t = 1e-7, help_heading = "Sweep")]
    pub start_lr: f64,
    /// Last learning rate of the sweep.
    #[arg(long, default_value_t = 10.0, help_heading = "Sweep")]
    pub end_lr: f64,
    /// Optimizer steps of the sweep.
    #[arg(long, default_value_t = 100, help_heading = "Sweep")]
    pub steps: u64,
}

/// The values a flag that names a registered choice accepts (from the registries).
mod choices {
    use clap::builder::PossibleValuesParser;

    pub fn optimizers() -> PossibleValuesParser {
        PossibleValuesParser::new(nw_optim::OPTIMIZERS.iter().map(|(n, _)| *n))
    }
    pub fn schedules() -> PossibleValuesParser {
        PossibleValuesParser::new(nw_train::config::SCHEDULES)
    }
    pub fn datasets() -> PossibleValuesParser {
        PossibleValuesParser::new(crate::commands::DATASETS)
    }
    pub fn models() -> PossibleValuesParser {
        PossibleValuesParser::new(crate::commands::MODELS)
    }
    pub fn activations() -> PossibleValuesParser {
        PossibleValuesParser::new(crate::commands::ACTIVATIONS)
    }
    pub fn inits() -> PossibleValuesParser {
        PossibleValuesParser::new(crate::commands::INITS)
    }
}

/// Where a model comes from: an nw run (`--model`), or a safetensors file
/// with PyTorch state_dict names plus a TOML configuration describing its
/// architecture and data (`--weights FILE --config MODEL.toml`).
#[derive(Args, Clone)]
pub struct ModelSource {
    /// A run directory (or its checkpoint file).
    #[arg(long, default_value = "runs/latest", conflicts_with = "weights")]
    pub model: PathBuf,
    /// A safetensors weights file (e.g. saved from PyTorch); needs --config.
    #[arg(long, requires = "config")]
    pub weights: Option<PathBuf>,
    /// The TOML configuration (architecture, data, input scaling) that --weights belongs to.
    #[arg(long, requires = "weights")]
    pub config: Option<PathBuf>,
}

/// Options of `nw train`. Each flag sets one key of the run's configuration
/// (after `--config`, before `--set`); `--set KEY=VALUE` reaches every key,
/// including those without a flag (`nw train --set optim.betas=[0.9,0.99]`).
#[derive(Args, Default)]
pub struct TrainArgs {
    /// A TOML file with any of the sections [data], [model], [optim], [schedule], [reg], [train].
    #[arg(long, help_heading = "Run")]
    pub config: Option<PathBuf>,
    /// Output directory for the model, checkpoint, metrics, monitor log and plots.
    #[arg(long, default_value = "runs/latest", help_heading = "Run")]
    pub out: PathBuf,
    /// Set any configuration key, e.g. `--set optim.betas=[0.9,0.99]` or
    /// `--set schedule.kind=multistep --set schedule.milestones=[10,20]` (repeatable; applied last, in order).
    #[arg(long = "set", value_name = "KEY=VALUE", help_heading = "Run")]
    pub set: Vec<String>,
    /// Print the resolved configuration as TOML and exit without training.
    #[arg(long, help_heading = "Run")]
    pub print_config: bool,

    /// Data set (data.dataset).
    #[arg(long, value_parser = choices::datasets(), help_heading = "Data")]
    pub dataset: Option<String>,
    /// CSV file for --dataset csv (data.csv; implies --dataset csv).
    #[arg(long, help_heading = "Data")]
    pub csv: Option<PathBuf>,
    /// The CSV's target column, counted from 0 (data.target_column).
    #[arg(long, help_heading = "Data")]
    pub target_column: Option<usize>,
    /// Whether the CSV has a header line (data.header; --no-header to unset).
    #[arg(long, overrides_with = "no_header", help_heading = "Data")]
    pub header: bool,
    /// The CSV has no header line.
    #[arg(long, help_heading = "Data")]
    pub no_header: bool,
    /// Standardise features on the training split (data.standardize; --no-standardize to unset).
    #[arg(long, overrides_with = "no_standardize", help_heading = "Data")]
    pub standardize: bool,
    /// Do not standardise features.
    #[arg(long, help_heading = "Data")]
    pub no_standardize: bool,
    /// Skip the short last batch of each epoch (data.drop_last; --no-drop-last to unset).
    #[arg(long, overrides_with = "no_drop_last", help_heading = "Data")]
    pub drop_last: bool,
    /// Keep the short last batch of each epoch.
    #[arg(long, help_heading = "Data")]
    pub no_drop_last: bool,

    /// Architecture template (model.kind).
    #[arg(long, value_parser = choices::models(), help_heading = "Model")]
    pub model: Option<String>,
    /// MLP hidden sizes, e.g. 256,128 (model.hidden).
    #[arg(long, value_delimiter = ',', help_heading = "Model")]
    pub hidden: Option<Vec<usize>>,
    /// MLP activation (model.activation).
    #[arg(long, value_parser = choices::activations(), help_heading = "Model")]
    pub activation: Option<String>,
    /// Dropout probability (model.dropout).
    #[arg(long, help_heading = "Model")]
    pub dropout: Option<f64>,
    /// CNN channels per convolution block, e.g. 32,64 (model.channels).
    #[arg(long, value_delimiter = ',', help_heading = "Model")]
    pub channels: Option<Vec<usize>>,
    /// CNN fully connected width, or recurrent hidden size (model.width).
    #[arg(long, help_heading = "Model")]
    pub width: Option<usize>,
    /// Recurrent layers (model.layers).
    #[arg(long, help_heading = "Model")]
    pub layers: Option<usize>,
    /// Weight initialiser (model.init).
    #[arg(long, value_parser = choices::inits(), help_heading = "Model")]
    pub init: Option<String>,
    /// Start from these weights: a safetensors file with PyTorch state_dict names (model.init_from).
    #[arg(long, help_heading = "Model")]
    pub init_from: Option<PathBuf>,
    /// With --init-from: load the tensors that match and report the rest (model.init_from_partial).
    #[arg(long, help_heading = "Model")]
    pub init_from_partial: bool,

    /// Optimizer, with its own torch defaults (optim.name).
    #[arg(long, value_parser = choices::optimizers(), help_heading = "Optimizer")]
    pub optimizer: Option<String>,
    /// Learning rate (optim.lr).
    #[arg(long, help_heading = "Optimizer")]
    pub lr: Option<f64>,
    /// Momentum (optim.momentum: SGD, RMSprop).
    #[arg(long, help_heading = "Optimizer")]
    pub momentum: Option<f64>,
    /// Nesterov momentum (optim.nesterov: SGD; --no-nesterov to unset).
    #[arg(long, overrides_with = "no_nesterov", help_heading = "Optimizer")]
    pub nesterov: bool,
    /// No Nesterov momentum.
    #[arg(long, help_heading = "Optimizer")]
    pub no_nesterov: bool,
    /// Weight decay (optim.weight_decay: decoupled for AdamW and Lion, L2 otherwise).
    #[arg(long, help_heading = "Optimizer")]
    pub weight_decay: Option<f64>,
    /// Betas, e.g. 0.9,0.99 (optim.betas: Adam family, Lion).
    #[arg(long, value_delimiter = ',', help_heading = "Optimizer")]
    pub betas: Option<Vec<f64>>,
    /// Epsilon (optim.eps: every optimizer that has one).
    #[arg(long, help_heading = "Optimizer")]
    pub eps: Option<f64>,

    /// Learning-rate schedule, with its own defaults (schedule.kind).
    #[arg(long, value_parser = choices::schedules(), help_heading = "Schedule")]
    pub schedule: Option<String>,
    /// StepLR period in epochs (schedule.step_size).
    #[arg(long, help_heading = "Schedule")]
    pub step_size: Option<usize>,
    /// Decay factor (schedule.gamma: step, multistep, exponential, cyclic).
    #[arg(long, help_heading = "Schedule")]
    pub gamma: Option<f64>,
    /// MultiStepLR milestones in epochs, e.g. 10,20 (schedule.milestones).
    #[arg(long, value_delimiter = ',', help_heading = "Schedule")]
    pub milestones: Option<Vec<usize>>,
    /// Warm-up epochs (schedule.warmup_epochs: warmup-cosine).
    #[arg(long, help_heading = "Schedule")]
    pub warmup_epochs: Option<usize>,
    /// Lowest rate (schedule.min_lr: cosine, warmup-cosine, warm-restarts, plateau).
    #[arg(long, help_heading = "Schedule")]
    pub min_lr: Option<f64>,
    /// Peak rate (schedule.max_lr: cyclic, onecycle).
    #[arg(long, help_heading = "Schedule")]
    pub max_lr: Option<f64>,
    /// Plateau patience in epochs (schedule.patience).
    #[arg(long, help_heading = "Schedule")]
    pub patience: Option<usize>,

    /// L1 penalty on weights (reg.l1).
    #[arg(long, help_heading = "Regularization")]
    pub l1: Option<f32>,
    /// L2 penalty on weights, as a loss term (reg.l2).
    #[arg(long, help_heading = "Regularization")]
    pub l2: Option<f32>,
    /// Max-norm constraint on weight rows (reg.max_norm).
    #[arg(long, help_heading = "Regularization")]
    pub max_norm: Option<f32>,
    /// Clip the global gradient norm (reg.clip_grad_norm).
    #[arg(long, help_heading = "Regularization")]
    pub clip_grad_norm: Option<f64>,
    /// Stop when the validation loss has not improved for this many epochs (reg.early_stopping).
    #[arg(long, help_heading = "Regularization")]
    pub early_stopping: Option<usize>,

    /// Epochs (train.epochs).
    #[arg(long, help_heading = "Loop")]
    pub epochs: Option<u64>,
    /// Batch: full (gradient descent), online (one example), or a mini-batch size (train.batch).
    #[arg(long, help_heading = "Loop")]
    pub batch: Option<String>,
    /// Seed of everything random (train.seed).
    #[arg(long, help_heading = "Loop")]
    pub seed: Option<u64>,
    /// Record the weight monitor every N steps, 0: epoch ends only (train.monitor_every).
    #[arg(long, help_heading = "Loop")]
    pub monitor_every: Option<u64>,
    /// Write a checkpoint every N epochs, 0: only at the end (train.checkpoint_every).
    #[arg(long, help_heading = "Loop")]
    pub checkpoint_every: Option<u64>,
    /// Also write a checkpoint every N optimizer steps, 0: none (train.checkpoint_every_steps).
    #[arg(long, help_heading = "Loop")]
    pub checkpoint_every_steps: Option<u64>,
    /// Periodic checkpoints kept, newest first, 0: all (train.keep_checkpoints).
    #[arg(long, help_heading = "Loop")]
    pub keep_checkpoints: Option<u64>,
    /// On divergence, name the first forward or backward operation that made a NaN/inf (train.detect_anomaly).
    #[arg(long, help_heading = "Loop")]
    pub detect_anomaly: bool,
    /// Label smoothing of the cross-entropy (train.label_smoothing).
    #[arg(long, help_heading = "Loop")]
    pub label_smoothing: Option<f32>,
    /// Cut each batch into K micro-shards whose gradients are summed in a
    /// fixed tree: gradient accumulation, and the unit of data parallelism
    /// (train.accumulate, 1..=65536).
    #[arg(long, value_name = "K", help_heading = "Loop")]
    pub accumulate: Option<usize>,
    /// Freeze the parameters whose PyTorch state_dict name matches (`*`, `?`
    /// globs; repeatable): no update, no optimizer state (train.freeze).
    #[arg(long, value_name = "NAME_OR_GLOB", help_heading = "Loop")]
    pub freeze: Vec<String>,
    /// Evaluate and save an exponential moving average of the weights with
    /// this decay in [0, 1), updated every step (train.ema).
    #[arg(long, value_name = "DECAY", help_heading = "Loop")]
    pub ema: Option<f64>,
    /// Evaluate and save the equal-weight average of the weights at the end
    /// of every epoch from EPOCH on (train.swa_start).
    #[arg(long, value_name = "EPOCH", help_heading = "Loop")]
    pub swa_start: Option<u64>,
    /// With --swa-start: from that epoch on, anneal the learning rate to LR
    /// with SWALR instead of following the schedule (train.swa_lr).
    #[arg(long, value_name = "LR", help_heading = "Loop")]
    pub swa_lr: Option<f64>,
    /// Epochs of SWALR's annealing to --swa-lr (train.swa_anneal_epochs,
    /// default 10).
    #[arg(long, value_name = "EPOCHS", help_heading = "Loop")]
    pub swa_anneal_epochs: Option<usize>,
    /// SWALR's annealing shape: cos or linear (train.swa_anneal_strategy).
    #[arg(long, value_name = "cos|linear", help_heading = "Loop")]
    pub swa_anneal_strategy: Option<String>,

    /// Data-parallel options.
    #[command(flatten)]
    pub dist: DistArgs,
}

/// Data-parallel training over MPI (`mpirun -n N nw train --distributed ...`).
#[derive(Args, Default, Clone)]
pub struct DistArgs {
    /// Train data-parallel over the ranks of `mpirun` (sets train.distributed;
    /// needs an nw built with `--features mpi`). The result is the same bits
    /// for any rank count, one process included.
    #[arg(long, help_heading = "Distributed")]
    pub distributed: bool,
    /// Synchronised batch norm: normalise with the whole batch's statistics,
    /// summed over every micro-shard and rank in the fixed tree (train.sync_bn;
    /// default: each micro-shard's own statistics).
    #[arg(long, help_heading = "Distributed")]
    pub sync_bn: bool,
    /// Seconds a rank waits for a silent peer before the job ends with an error naming it.
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0, help_heading = "Distributed")]
    pub dist_timeout: f64,
}

fn main() -> ExitCode {
    // large step-lived buffers from the heap, not fresh mmaps (nw_tensor::malloc)
    nw_tensor::malloc::tune_for_training();
    let cli = Cli::parse();
    // Under mpirun every rank builds and trains the same model and would print
    // the same warnings: ranks other than 0 print errors only (unless -v).
    let other_rank = ["OMPI_COMM_WORLD_RANK", "PMI_RANK"]
        .iter()
        .find_map(|k| std::env::var(k).ok())
        .is_some_and(|r| r.trim() != "0");
    let filter = match cli.verbose {
        0 if other_rank => "error",
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
            eprintln!("error: {}", commands::message(&e));
            ExitCode::from(commands::exit_code(&e))
        }
    }
}
