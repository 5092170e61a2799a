//! A whole run as one typed, serialisable value: data, model, optimizer,
//! schedule, regularization, initialisation and loop settings.
//!
//! [`RunConfig`] is what the `nw` binary reads from TOML and flags, what a
//! checkpoint stores so that `nw resume` can rebuild the run, and what
//! [`build_run`] turns into a ready [`crate::Trainer`] with its data. Every
//! choice is an enum with serde names (one table of names for TOML, flags,
//! checkpoints and fixtures): the optimizer is nw-optim's
//! [`OptimizerConfig`] (each optimizer with its own torch defaults), the
//! schedule a [`ScheduleConfig`], the data set a [`DatasetName`], and so on.
//!
//! Files written with the first version's flat keys (`[optim] name = "adam"
//! lr = ... momentum = ...`, `[schedule] kind = ... step_size = ...`) still
//! read: see [`legacy`].
//!
//! ```
//! use nw_train::RunConfig;
//!
//! let c = RunConfig::from_toml("[optim]\nname = \"lion\"\n").unwrap();
//! assert_eq!(c.optim.lr(), 1e-4); // Lion's own default, not Adam's
//! let mut c = RunConfig::default();
//! c.set("optim.betas", "[0.9, 0.99]").unwrap();
//! c.set("train.epochs", "3").unwrap();
//! assert_eq!(c.train.epochs, 3);
//! assert!(c.set("optim.momentum", "0.9").unwrap_err().to_string().contains("momentum"));
//! ```

mod build;
pub mod legacy;
mod overrides;
mod schedule;

use std::path::PathBuf;

pub use nw_optim::OptimizerConfig;
use serde::{Deserialize, Serialize};

pub use build::{
    DataShape, Run, build_optimizer, build_run, build_trainer, load_data, model_layers, model_toml,
};
pub use overrides::{KeyInfo, MAX_WIDTH, config_keys};
pub use schedule::{AnnealName, CyclicModeName, SCHEDULES, ScheduleConfig};

use crate::error::{Result, TrainError};
use crate::monitor::MonitorConfig;

/// The data sets `data.dataset` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// The UCI handwritten digits (1,797 8x8 images), embedded in the binary.
    #[default]
    Digits,
    /// Fisher's iris (embedded).
    Iris,
    /// UCI wine (embedded).
    Wine,
    /// Wisconsin breast cancer (embedded).
    #[serde(alias = "breast_cancer")]
    BreastCancer,
    /// Fashion-MNIST from Debian's `dataset-fashion-mnist` (or `NW_FASHION_MNIST`).
    FashionMnist,
    /// A CSV file (`data.csv`).
    Csv,
}

impl DatasetName {
    /// The name as written in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Digits => "digits",
            DatasetName::Iris => "iris",
            DatasetName::Wine => "wine",
            DatasetName::BreastCancer => "breast-cancer",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Csv => "csv",
        }
    }
}

impl std::fmt::Display for DatasetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which data and how to split and scale it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The data set (default: the embedded digits).
    pub dataset: DatasetName,
    /// The CSV file when `dataset = "csv"`.
    pub csv: Option<PathBuf>,
    /// The CSV's target column (default: the last).
    pub target_column: Option<usize>,
    /// Whether the CSV has a header line.
    pub header: bool,
    /// Fraction held out for validation, in [0, 1).
    pub validation: f64,
    /// Fraction held out for testing, in [0, 1) (Fashion-MNIST uses its own test set).
    pub test: f64,
    /// Standardise features with the training split's mean and std.
    pub standardize: bool,
    /// Skip the short last batch of each epoch when the batch size does not
    /// divide the training rows (torch `DataLoader(drop_last=True)`). Batch
    /// norm in training needs two values per channel, so a last batch (or
    /// micro-shard) of one row is refused at the start of a run unless it is
    /// dropped.
    pub drop_last: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: DatasetName::Digits,
            csv: None,
            target_column: None,
            header: true,
            validation: 0.15,
            test: 0.15,
            standardize: true,
            drop_last: false,
        }
    }
}

/// The model templates of `model.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Fully connected: `hidden` layers with `activation` (and `dropout`).
    #[default]
    Mlp,
    /// Convolution blocks (3x3 conv, ReLU, 2x2 max-pool) per `channels`, then `width` units.
    Cnn,
    /// An LSTM of `width` units and `layers` layers over image rows, classifying its last step.
    Lstm,
    /// As `lstm`, with a GRU.
    Gru,
    /// As `lstm`, with a plain tanh RNN.
    Rnn,
    /// The explicit layer list `model.layer` (implied when the list is given).
    Sequential,
}

impl ModelKind {
    /// The name as written in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::Cnn => "cnn",
            ModelKind::Lstm => "lstm",
            ModelKind::Gru => "gru",
            ModelKind::Rnn => "rnn",
            ModelKind::Sequential => "sequential",
        }
    }
}

/// Activation functions (`model.activation` and activation layers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationName {
    /// max(0, x).
    #[default]
    Relu,
    /// tanh.
    Tanh,
    /// The logistic sigmoid.
    Sigmoid,
    /// GELU (exact, erf form).
    Gelu,
    /// SiLU / swish: x sigmoid(x).
    Silu,
    /// Leaky ReLU with torch's slope 0.01.
    LeakyRelu,
    /// ELU with alpha 1.
    Elu,
    /// Softplus with beta 1.
    Softplus,
}

/// Weight initialisers of `model.init` (weights of rank >= 2; biases keep
/// PyTorch's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum InitScheme {
    /// PyTorch's own per-layer default (kaiming-uniform with a = sqrt(5) for Linear and Conv).
    #[default]
    Default,
    /// `xavier_uniform_` (Glorot), gain 1.
    XavierUniform,
    /// `xavier_normal_`, gain 1.
    XavierNormal,
    /// `kaiming_uniform_` (He), fan-in, ReLU gain.
    KaimingUniform,
    /// `kaiming_normal_`, fan-in, ReLU gain.
    KaimingNormal,
    /// LeCun normal: N(0, 1/fan_in).
    LecunNormal,
    /// `orthogonal_`, gain 1.
    Orthogonal,
    /// Small random normal N(0, 0.01^2): the textbook "random" baseline.
    SmallNormal,
}

/// The architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The template, or `sequential` for the explicit list `layer`.
    pub kind: ModelKind,
    /// MLP hidden sizes.
    pub hidden: Vec<usize>,
    /// MLP activation.
    pub activation: ActivationName,
    /// Dropout probability in [0, 1) (MLP: after each hidden layer; CNN: before the last layer).
    pub dropout: f64,
    /// CNN convolution channels.
    pub channels: Vec<usize>,
    /// CNN fully connected width, or the recurrent hidden size.
    pub width: usize,
    /// Recurrent layers.
    pub layers: usize,
    /// Re-initialise weights of rank >= 2 with this scheme.
    pub init: InitScheme,
    /// Start from these weights (a safetensors file with PyTorch state_dict names).
    pub init_from: Option<PathBuf>,
    /// With `init_from`: load the tensors whose names and shapes match and report the rest.
    pub init_from_partial: bool,
    /// An explicit layer list (`[[model.layer]]` tables, see [`crate::layers`]);
    /// when given, it is the model and `kind` is `sequential`.
    pub layer: Vec<crate::layers::LayerSpec>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: ModelKind::Mlp,
            hidden: vec![256],
            activation: ActivationName::Relu,
            dropout: 0.0,
            channels: vec![32, 64],
            width: 128,
            layers: 1,
            init: InitScheme::Default,
            init_from: None,
            init_from_partial: false,
            layer: Vec::new(),
        }
    }
}

/// Regularization.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegConfig {
    /// L1 penalty strength on weights (rank >= 2; biases and norms exempt), >= 0.
    pub l1: f32,
    /// L2 penalty strength on weights, as a loss term `l2/2 sum w^2`, >= 0.
    pub l2: f32,
    /// Max-norm constraint on each weight row, applied after every step (> 0).
    pub max_norm: Option<f32>,
    /// Clip the global L2 gradient norm (> 0).
    pub clip_grad_norm: Option<f64>,
    /// Early-stopping patience in epochs (on the validation loss), >= 1.
    pub early_stopping: Option<usize>,
}

/// How many examples one optimizer step sees (`train.batch`): `"full"`,
/// `"online"`, or a positive mini-batch size (a number, or a string of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchMode {
    /// The whole training set per step (gradient descent).
    Full,
    /// One example per step.
    Online,
    /// Mini-batches of this many examples.
    Mini(usize),
}

impl Serialize for BatchMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            BatchMode::Full => s.serialize_str("full"),
            BatchMode::Online => s.serialize_str("online"),
            BatchMode::Mini(n) => s.serialize_u64(*n as u64),
        }
    }
}

impl<'de> Deserialize<'de> for BatchMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = BatchMode;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"full\", \"online\" or a positive mini-batch size")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<BatchMode, E> {
                match usize::try_from(v) {
                    Ok(n) if n > 0 => Ok(BatchMode::Mini(n)),
                    _ => Err(E::custom(format!("batch size {v}: expected a positive mini-batch size"))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<BatchMode, E> {
                if v > 0 {
                    self.visit_u64(v as u64)
                } else {
                    Err(E::custom(format!("batch size {v}: expected a positive mini-batch size")))
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<BatchMode, E> {
                match v {
                    "full" => Ok(BatchMode::Full),
                    "online" => Ok(BatchMode::Online),
                    n => match n.parse::<u64>() {
                        Ok(b) => self.visit_u64(b),
                        Err(_) => Err(E::custom(format!(
                            "batch {n:?}: expected \"full\", \"online\" or a positive mini-batch size"
                        ))),
                    },
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl std::str::FromStr for BatchMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "full" => Ok(BatchMode::Full),
            "online" => Ok(BatchMode::Online),
            n => match n.parse::<usize>() {
                Ok(b) if b > 0 => Ok(BatchMode::Mini(b)),
                _ => Err(format!("{n:?}: expected full, online or a positive mini-batch size")),
            },
        }
    }
}

/// The loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopConfig {
    /// Epochs (>= 1).
    pub epochs: u64,
    /// `full`, `online`, or a mini-batch size.
    pub batch: BatchMode,
    /// Seed of everything random (split, initial weights, shuffles, dropout).
    pub seed: u64,
    /// Record the weight monitor every this many steps (0: epoch ends only).
    pub monitor_every: u64,
    /// Write a checkpoint every this many epochs (0: only at the end).
    pub checkpoint_every: u64,
    /// Also write a checkpoint every this many optimizer steps, at a step
    /// boundary inside an epoch (0: none).
    pub checkpoint_every_steps: u64,
    /// Periodic checkpoint files (`checkpoint-epochN.nwck`,
    /// `checkpoint-stepN.nwck`) kept in the output directory, newest first;
    /// older ones are deleted (0: keep every one). `checkpoint.nwck` is
    /// always kept besides them.
    pub keep_checkpoints: u64,
    /// Anomaly detection: when the guard stops a diverged run, also name the
    /// first operation of the forward or backward pass that produced a NaN
    /// or infinity (slower; see docs/BENCHMARKS.md). Off by default.
    pub detect_anomaly: bool,
    /// Label smoothing of the cross-entropy loss, in [0, 1).
    pub label_smoothing: f32,
    /// Micro-shards per batch (gradient accumulation), in [1, 65536]
    /// (default 1). A batch of `B` rows is cut into `min(k, B)` shards of
    /// `B / k` rows (sizes differ by at most one; see `nw_train::shard`),
    /// whose gradients are summed in a fixed tree: the same bits in one
    /// process, on any thread count and on any number of ranks. It is also
    /// the unit of data parallelism: a distributed run with `N` ranks wants
    /// `accumulate >= N`.
    pub accumulate: usize,
    /// Run every step through the micro-shard path (per-shard dropout
    /// streams, tree-summed gradients) even at `accumulate = 1` (default
    /// false; `nw train --distributed` sets it). Such a run continues
    /// bit-identically under any number of ranks, one process included.
    pub distributed: bool,
    /// Synchronised batch norm (default false; `--sync-bn`): every
    /// batch-norm layer normalises with the statistics of the whole batch,
    /// summed over all micro-shards in the fixed tree, and its backward uses
    /// the whole batch's gradient sums (torch `SyncBatchNorm`); the same bits
    /// on any rank count. Off: each micro-shard uses its own statistics (as
    /// torch DDP does per process). See docs/DISTRIBUTED.md.
    pub sync_bn: bool,
    /// Summarise each weight matrix's singular values at epoch ends
    /// (`spectral.jsonl`: top values, stable rank, power-law alpha). Default false.
    pub monitor_spectral: bool,
    /// Parameters to freeze, by PyTorch state_dict name or simple glob
    /// (`*`, `?`; see `nw_train::freeze`), e.g. `["0.*"]` (default none).
    /// Frozen parameters get no update and no optimizer state; gradients
    /// still flow through them. A pattern matching nothing, or freezing
    /// every parameter, is a configuration error.
    pub freeze: Vec<String>,
    /// Keep an exponential moving average of the weights with this decay,
    /// in [0, 1), updated after every optimizer step (default none). See
    /// `nw_train::averaged`: validation and test metrics and
    /// `model.safetensors` then use the averaged weights
    /// (`model-raw.safetensors` holds the trained ones).
    pub ema: Option<f64>,
    /// Stochastic weight averaging: the equal-weight average of the
    /// weights at the end of every epoch from this one on, in
    /// 1..=`train.epochs` (default none; not together with `train.ema`).
    /// Used for metrics and `model.safetensors` as `train.ema` is.
    pub swa_start: Option<u64>,
    /// With `train.swa_start`: from that epoch on, the learning rate follows
    /// SWALR (torch.optim.swa_utils) instead of `[schedule]`: from the rate
    /// in effect at the end of epoch `swa_start`, annealed to this rate
    /// (finite, >= 0) over `train.swa_anneal_epochs` epochs, then held, as
    /// torch's SWA recipe steps `SWALR` in place of the regular scheduler
    /// (default none: the schedule keeps running).
    pub swa_lr: Option<f64>,
    /// Epochs of SWALR's annealing (torch default 10; 0 jumps to
    /// `train.swa_lr` at once).
    pub swa_anneal_epochs: usize,
    /// SWALR's annealing shape, `cos` or `linear` (torch default cos).
    pub swa_anneal_strategy: schedule::AnnealName,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            epochs: 40,
            batch: BatchMode::Mini(32),
            seed: 0,
            monitor_every: 50,
            checkpoint_every: 0,
            checkpoint_every_steps: 0,
            keep_checkpoints: 3,
            detect_anomaly: false,
            // Measured on the default digits run: seeds 0-9 all >= 0.978 with
            // smoothing 0.1, against a minimum of 0.967 without.
            label_smoothing: 0.1,
            accumulate: 1,
            distributed: false,
            sync_bn: false,
            monitor_spectral: false,
            freeze: Vec::new(),
            ema: None,
            swa_start: None,
            swa_lr: None,
            swa_anneal_epochs: 10,
            swa_anneal_strategy: schedule::AnnealName::Cos,
        }
    }
}

impl LoopConfig {
    /// The monitor settings this loop asks for.
    pub fn monitor(&self) -> MonitorConfig {
        MonitorConfig {
            every_steps: self.monitor_every,
            spectral: self.monitor_spectral,
            ..Default::default()
        }
    }
}

/// The default optimizer of `nw train`: Adam at 2e-3 (torch's betas and eps),
/// the rate measured best on the default digits run.
pub fn default_optimizer() -> OptimizerConfig {
    OptimizerConfig::Adam(nw_optim::Adam { lr: 2e-3, ..Default::default() })
}

/// Everything that defines a run. `Default` is the zero-set-up run: an MLP
/// on the embedded digits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Data.
    pub data: DataConfig,
    /// Model.
    pub model: ModelConfig,
    /// Optimizer: `name` and that optimizer's torch keywords.
    #[serde(deserialize_with = "legacy::optimizer")]
    pub optim: OptimizerConfig,
    /// Learning-rate schedule: `kind` and its keys.
    #[serde(deserialize_with = "legacy::schedule")]
    pub schedule: ScheduleConfig,
    /// Regularization.
    pub reg: RegConfig,
    /// Loop.
    pub train: LoopConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            data: DataConfig::default(),
            model: ModelConfig::default(),
            optim: default_optimizer(),
            schedule: ScheduleConfig::default(),
            reg: RegConfig::default(),
            train: LoopConfig::default(),
        }
    }
}

/// The 1-based line of the key an error names inside a section: toml points
/// a whole-section error (an optimizer's unknown key, found while reading
/// the typed section) at the section header, the message names the key.
fn key_line(text: &str, e: &toml::de::Error) -> Option<usize> {
    let span = e.span()?;
    let msg = e.message();
    let key = msg.split('`').nth(1)?;
    let from = text.get(..span.start)?.matches('\n').count();
    // the section: from the span to the next header
    text.lines()
        .enumerate()
        .skip(from)
        .take_while(|(i, l)| *i == from || !l.trim_start().starts_with('['))
        .find(|(_, l)| l.trim_start().strip_prefix(key).is_some_and(|r| r.trim_start().starts_with('=')))
        .map(|(i, _)| i + 1)
}

/// The longest configuration text [`RunConfig::from_toml`] and
/// [`RunConfig::from_file`] read, in bytes (64 KiB); a longer one is an
/// error before it is parsed (and `from_file` reads no more than one byte
/// past it). The default run with every key stated is under 1 KB, and what
/// `nw` writes (`config.toml`, a checkpoint's configuration) is that plus a
/// few dozen bytes per layer of a layer list.
///
/// The limit is there because the `toml` crate's parser (1.2) holds far
/// more than the text while it parses: 24 bytes per token and per parser
/// event (up to three events a token where it recovers from errors) and
/// about 1.1 KB per table (a B-tree leaf of eleven slots, one for every
/// header, inline table and dotted-key segment). Measured over the inputs
/// of `fuzz/regressions/config-toml/` and a search of token patterns, that
/// is up to 272 bytes per byte of text for the mangled files AFL++ found,
/// 540 for the worst valid TOML found and 1184 for the worst invalid TOML
/// (a table for every byte), so a 64 KiB text is parsed in at most about
/// 80 MB (`nw_fuzz::harness::TOML_BYTES_PER_BYTE`, `docs/RELIABILITY.md`).
pub const MAX_CONFIG_BYTES: usize = 64 << 10;

/// The error for a configuration text of `len` bytes, if it is too long.
fn too_long(len: usize) -> Option<TrainError> {
    (len > MAX_CONFIG_BYTES).then(|| {
        TrainError::Config(format!(
            "the configuration is {len} bytes; a configuration is at most {MAX_CONFIG_BYTES} bytes"
        ))
    })
}

impl RunConfig {
    /// Parses TOML; an unknown key, a bad value or a bad name is an error
    /// naming the key, its line and column. A text longer than
    /// [`MAX_CONFIG_BYTES`] is an error before it is parsed.
    pub fn from_toml(text: &str) -> Result<Self> {
        if let Some(e) = too_long(text.len()) {
            return Err(e);
        }
        toml::from_str(text).map(Self::normalized).map_err(|e| TrainError::Config(e.to_string()))
    }

    /// A layer list given under the default template means `kind = "sequential"`.
    pub(crate) fn normalized(mut self) -> Self {
        if !self.model.layer.is_empty() && self.model.kind == ModelKind::Mlp {
            self.model.kind = ModelKind::Sequential;
        }
        self
    }

    /// [`RunConfig::from_toml`] of a file; errors name the file. At most
    /// [`MAX_CONFIG_BYTES`] plus one bytes are read: a longer file is an
    /// error, whatever its length.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        use std::io::Read;
        let io = |source| TrainError::Io { path: path.to_path_buf(), source };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_CONFIG_BYTES as u64 + 1).read_to_end(&mut bytes))
            .map_err(io)?;
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(TrainError::Config(format!(
                "{}: longer than {MAX_CONFIG_BYTES} bytes, the most a configuration may be",
                path.display()
            )));
        }
        let text = String::from_utf8(bytes)
            .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        toml::from_str(&text).map(Self::normalized).map_err(|e| {
            TrainError::Config(match key_line(&text, &e) {
                Some(line) => format!("{}:{line}: {}", path.display(), e.message()),
                None => format!("{}: {e}", path.display()),
            })
        })
    }

    /// Parses the JSON form (older checkpoints stored it).
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| TrainError::Config(format!("run configuration: {e}")))
    }

    /// The configuration as TOML, every resolved value stated.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the configuration serialises")
    }

    /// The batch mode of `train.batch` (the nw-data type).
    pub fn batch_size(&self) -> nw_data::BatchSize {
        match self.train.batch {
            BatchMode::Full => nw_data::BatchSize::Full,
            BatchMode::Online => nw_data::BatchSize::Online,
            BatchMode::Mini(n) => nw_data::BatchSize::Mini(n),
        }
    }

    /// Sets one key by its dotted path (`optim.lr`, `schedule.kind`,
    /// `model.hidden`) to a TOML value (`0.1`, `"cosine"`, `[256, 128]`; a bare
    /// word is taken as a string). Changing `optim.name` or `schedule.kind`
    /// switches to that choice with its own defaults, keeping the keys the new
    /// choice also has only for `lr`. A key that does not exist, or a value
    /// out of its type, is an error naming the key.
    pub fn set(&mut self, path: &str, value: &str) -> Result<()> {
        overrides::set(self, path, value)
    }

    /// Checks every value's range, naming the key and the allowed range.
    pub fn validate(&self) -> Result<()> {
        overrides::validate(self)
    }
}
