//! A whole run as one serialisable value: data, model, optimizer, schedule,
//! regularization, initialisation and loop settings. [`RunConfig`] is what
//! the `nw` binary reads from TOML and flags, what a checkpoint stores so
//! that `nw resume` can rebuild the run, and what [`build_run`] turns into a
//! ready [`Trainer`] with its data.

use std::path::PathBuf;

use nw_data::{BatchLoader, BatchSize, CsvOptions, Dataset, ImageLayout, LoaderConfig, Standardizer};
use nw_nn::{Module, init};
use nw_optim::schedule::{Anneal, PlateauConfig, ReduceLrOnPlateau, Schedule, Scheduler};
use nw_optim::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, Lion, NAdam, Optimizer, RAdam, RmsProp, Rprop, Sgd, WeightDecay,
};
use nw_reg::{EarlyStopping, MaxNorm, Mode, Penalty, PenaltySet};
use nw_tensor::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::models::{Activation, ModelSpec, build_model};
use crate::monitor::MonitorConfig;
use crate::trainer::{LossKind, LrPolicy, Trainer};

/// Which data and how to split and scale it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `digits` (embedded), `iris`, `wine`, `breast-cancer`, `fashion-mnist`, or `csv`.
    pub dataset: String,
    /// The CSV file when `dataset = "csv"`.
    pub csv: Option<PathBuf>,
    /// The CSV's target column (default: the last).
    pub target_column: Option<usize>,
    /// Whether the CSV has a header line.
    pub header: bool,
    /// Fraction held out for validation.
    pub validation: f64,
    /// Fraction held out for testing (Fashion-MNIST uses its own test set).
    pub test: f64,
    /// Standardise features with the training split's mean and std.
    pub standardize: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: "digits".into(),
            csv: None,
            target_column: None,
            header: true,
            validation: 0.15,
            test: 0.15,
            standardize: true,
        }
    }
}

/// The architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// `mlp`, `cnn` or `lstm`.
    pub kind: String,
    /// MLP hidden sizes.
    pub hidden: Vec<usize>,
    /// MLP activation (`relu`, `tanh`, `sigmoid`, `gelu`, `silu`).
    pub activation: String,
    /// Dropout probability (MLP: after each hidden layer; CNN: before the last layer).
    pub dropout: f64,
    /// CNN convolution channels.
    pub channels: Vec<usize>,
    /// CNN fully connected width, or LSTM hidden size.
    pub width: usize,
    /// LSTM layers.
    pub layers: usize,
    /// Re-initialise weights of rank >= 2 with this scheme (`default` keeps
    /// PyTorch's per-layer default): `xavier-uniform`, `xavier-normal`,
    /// `kaiming-uniform`, `kaiming-normal`, `lecun-normal`, `orthogonal`.
    pub init: String,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: "mlp".into(),
            hidden: vec![256],
            activation: "relu".into(),
            dropout: 0.0,
            channels: vec![32, 64],
            width: 128,
            layers: 1,
            init: "default".into(),
        }
    }
}

/// The optimizer (torch.optim names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// `sgd`, `adam`, `adamw`, `adagrad`, `rmsprop`, `adadelta`, `adamax`, `nadam`, `radam`, `rprop`, `lion`.
    pub name: String,
    /// Learning rate.
    pub lr: f64,
    /// SGD / RMSprop momentum.
    pub momentum: f64,
    /// SGD Nesterov momentum.
    pub nesterov: bool,
    /// Weight decay (L2 for all but AdamW and Lion, which decouple it).
    pub weight_decay: f64,
    /// Adam-family betas.
    pub betas: (f64, f64),
    /// Adam-family epsilon.
    pub eps: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            name: "adam".into(),
            lr: 2e-3,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            betas: (0.9, 0.999),
            eps: 1e-8,
        }
    }
}

/// The learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// `none`, `step`, `exponential`, `cosine` (per step over the whole run),
    /// `warmup-cosine`, `onecycle`, `plateau` (on the validation loss).
    pub kind: String,
    /// StepLR period in epochs.
    pub step_size: usize,
    /// Decay factor (step, exponential, plateau).
    pub gamma: f64,
    /// Warm-up epochs for `warmup-cosine`.
    pub warmup_epochs: usize,
    /// Plateau patience in epochs.
    pub patience: usize,
    /// Lowest rate for cosine schedules and plateau.
    pub min_lr: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            kind: "cosine".into(),
            step_size: 10,
            gamma: 0.5,
            warmup_epochs: 2,
            patience: 3,
            min_lr: 0.0,
        }
    }
}

/// Regularization.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegConfig {
    /// L1 penalty strength on weights (rank >= 2; biases and norms exempt).
    pub l1: f32,
    /// L2 penalty strength on weights, as a loss term `l2/2 sum w^2`.
    pub l2: f32,
    /// Max-norm constraint on each weight row, applied after every step.
    pub max_norm: Option<f32>,
    /// Clip the global L2 gradient norm.
    pub clip_grad_norm: Option<f64>,
    /// Early-stopping patience in epochs (on the validation loss).
    pub early_stopping: Option<usize>,
}

/// The loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopConfig {
    /// Epochs.
    pub epochs: u64,
    /// `full`, `online`, or a mini-batch size.
    pub batch: String,
    /// Seed of everything random (split, initial weights, shuffles, dropout).
    pub seed: u64,
    /// Record the weight monitor every this many steps (0: epoch ends only).
    pub monitor_every: u64,
    /// Write a checkpoint every this many epochs (0: only at the end).
    pub checkpoint_every: u64,
    /// Label smoothing of the cross-entropy loss.
    pub label_smoothing: f32,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            epochs: 40,
            batch: "32".into(),
            seed: 0,
            monitor_every: 50,
            checkpoint_every: 0,
            // Measured on the default digits run: seeds 0-9 all >= 0.978 with
            // smoothing 0.1, against a minimum of 0.967 without.
            label_smoothing: 0.1,
        }
    }
}

/// Everything that defines a run. `Default` is the zero-set-up run: an MLP
/// on the embedded digits.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Data.
    pub data: DataConfig,
    /// Model.
    pub model: ModelConfig,
    /// Optimizer.
    pub optim: OptimConfig,
    /// Schedule.
    pub schedule: ScheduleConfig,
    /// Regularization.
    pub reg: RegConfig,
    /// Loop.
    #[serde(rename = "train")]
    pub train: LoopConfig,
}

impl RunConfig {
    /// Parses TOML; an unknown key is an error naming it.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| TrainError::Config(e.to_string()))
    }

    /// Parses the JSON form stored in checkpoints.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| TrainError::Config(format!("run configuration: {e}")))
    }

    /// The configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the configuration serialises")
    }

    /// The batch mode of `train.batch`.
    pub fn batch_size(&self) -> Result<BatchSize> {
        Ok(match self.train.batch.as_str() {
            "full" => BatchSize::Full,
            "online" => BatchSize::Online,
            n => match n.parse::<usize>() {
                Ok(b) if b > 0 => BatchSize::Mini(b),
                _ => {
                    return Err(TrainError::Config(format!(
                        "train.batch = {n:?}: expected `full`, `online` or a positive number"
                    )));
                }
            },
        })
    }
}

/// A run ready to train.
pub struct Run {
    /// The trainer (model, optimizer, schedule, regularizers).
    pub trainer: Trainer,
    /// The training batches.
    pub loader: BatchLoader,
    /// Validation split.
    pub validation: Dataset,
    /// Test split.
    pub test: Dataset,
    /// Feature scaling fitted on the training split (apply it to new inputs).
    pub scaler: Option<Standardizer>,
    /// Class names, when the data set has them.
    pub class_names: Option<Vec<String>>,
}

/// Loads the data a configuration names, unsplit (Fashion-MNIST: `(train, Some(test))`).
pub fn load_data(cfg: &DataConfig, model_kind: &str) -> Result<(Dataset, Option<Dataset>)> {
    Ok(match cfg.dataset.as_str() {
        "digits" | "iris" | "wine" | "breast-cancer" | "breast_cancer" => {
            (nw_data::embedded(&cfg.dataset.replace('-', "_"))?, None)
        }
        "fashion-mnist" => {
            let layout = if model_kind == "mlp" { ImageLayout::Flat } else { ImageLayout::Nchw };
            let f = nw_data::fashion_mnist_default(layout)?;
            (f.train, Some(f.test))
        }
        "csv" => {
            let path = cfg
                .csv
                .as_ref()
                .ok_or_else(|| TrainError::Config("data.dataset = \"csv\" needs data.csv".into()))?;
            let mut o = CsvOptions::default().header(cfg.header);
            if let Some(c) = cfg.target_column {
                o = o.target_column(c);
            }
            (nw_data::read_csv(path, &o)?, None)
        }
        other => {
            return Err(TrainError::Config(format!(
                "unknown data set {other:?} (digits, iris, wine, breast-cancer, fashion-mnist, csv)"
            )));
        }
    })
}

fn model_spec(m: &ModelConfig) -> Result<ModelSpec> {
    Ok(match m.kind.as_str() {
        "mlp" => ModelSpec::Mlp {
            hidden: m.hidden.clone(),
            activation: Activation::parse(&m.activation)?,
            dropout: m.dropout,
        },
        "cnn" => ModelSpec::Cnn { channels: m.channels.clone(), hidden: m.width, dropout: m.dropout },
        "lstm" => ModelSpec::Lstm { hidden: m.width, layers: m.layers },
        other => return Err(TrainError::Config(format!("unknown model kind {other:?} (mlp, cnn, lstm)"))),
    })
}

/// Builds the optimizer a configuration names over `params`.
pub fn build_optimizer(o: &OptimConfig, params: Vec<nw_autograd::Param>) -> Result<Box<dyn Optimizer>> {
    let l2 = WeightDecay::L2(o.weight_decay);
    let dec = WeightDecay::Decoupled(o.weight_decay);
    Ok(match o.name.as_str() {
        "sgd" => Box::new(
            Sgd {
                lr: o.lr,
                momentum: o.momentum,
                nesterov: o.nesterov,
                weight_decay: l2,
                ..Default::default()
            }
            .build(params)?,
        ),
        "adam" => Box::new(
            Adam { lr: o.lr, betas: o.betas, eps: o.eps, weight_decay: l2, ..Default::default() }
                .build(params)?,
        ),
        "adamw" => Box::new(
            AdamW { lr: o.lr, betas: o.betas, eps: o.eps, weight_decay: dec, ..Default::default() }
                .build(params)?,
        ),
        "adagrad" => Box::new(Adagrad { lr: o.lr, weight_decay: l2, ..Default::default() }.build(params)?),
        "rmsprop" => Box::new(
            RmsProp { lr: o.lr, momentum: o.momentum, weight_decay: l2, ..Default::default() }
                .build(params)?,
        ),
        "adadelta" => Box::new(Adadelta { lr: o.lr, weight_decay: l2, ..Default::default() }.build(params)?),
        "adamax" => Box::new(
            Adamax { lr: o.lr, betas: o.betas, weight_decay: l2, ..Default::default() }.build(params)?,
        ),
        "nadam" => Box::new(
            NAdam { lr: o.lr, betas: o.betas, weight_decay: l2, ..Default::default() }.build(params)?,
        ),
        "radam" => Box::new(
            RAdam { lr: o.lr, betas: o.betas, weight_decay: l2, ..Default::default() }.build(params)?,
        ),
        "rprop" => Box::new(Rprop { lr: o.lr, weight_decay: l2, ..Default::default() }.build(params)?),
        "lion" => Box::new(
            Lion { lr: o.lr, betas: o.betas, weight_decay: dec, ..Default::default() }.build(params)?,
        ),
        other => {
            return Err(TrainError::Config(format!(
                "unknown optimizer {other:?} (sgd, adam, adamw, adagrad, rmsprop, adadelta, adamax, nadam, radam, rprop, lion)"
            )));
        }
    })
}

fn lr_policy(s: &ScheduleConfig, lr: f64, epochs: u64, steps_per_epoch: usize) -> Result<Option<LrPolicy>> {
    let total = (epochs as usize * steps_per_epoch).max(1);
    let per_step =
        |sch: Schedule| -> Result<Option<LrPolicy>> { Ok(Some(LrPolicy::PerStep(Scheduler::new(sch, lr)?))) };
    match s.kind.as_str() {
        "none" | "constant" => Ok(None),
        "step" => Ok(Some(LrPolicy::PerEpoch(Scheduler::new(
            Schedule::Step { step_size: s.step_size.max(1), gamma: s.gamma },
            lr,
        )?))),
        "exponential" => {
            Ok(Some(LrPolicy::PerEpoch(Scheduler::new(Schedule::Exponential { gamma: s.gamma }, lr)?)))
        }
        "cosine" => per_step(Schedule::CosineAnnealing { t_max: total, eta_min: s.min_lr }),
        "warmup-cosine" => {
            let warm = (s.warmup_epochs * steps_per_epoch).clamp(1, total.saturating_sub(1).max(1));
            per_step(Schedule::Sequential {
                schedules: vec![
                    Schedule::Linear { start_factor: 0.01, end_factor: 1.0, total_iters: warm },
                    Schedule::CosineAnnealing { t_max: (total - warm).max(1), eta_min: s.min_lr },
                ],
                milestones: vec![warm],
            })
        }
        "onecycle" => per_step(Schedule::OneCycle {
            max_lr: lr,
            total_steps: total + 1,
            pct_start: 0.3,
            anneal_strategy: Anneal::Cos,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
        }),
        "plateau" => {
            let cfg = PlateauConfig {
                factor: s.gamma,
                patience: s.patience,
                min_lr: s.min_lr,
                ..Default::default()
            };
            Ok(Some(LrPolicy::Plateau(ReduceLrOnPlateau::new(cfg, lr)?)))
        }
        other => Err(TrainError::Config(format!(
            "unknown schedule {other:?} (none, step, exponential, cosine, warmup-cosine, onecycle, plateau)"
        ))),
    }
}

fn reinit(model: &dyn Module, scheme: &str, rng: &mut Rng) -> Result<()> {
    if scheme == "default" {
        return Ok(());
    }
    for (name, p) in model.named_parameters() {
        let shape = p.shape();
        if shape.len() < 2 || !name.contains("weight") {
            continue;
        }
        let nl = init::Nonlinearity::Relu;
        let t = match scheme {
            "xavier-uniform" => init::xavier_uniform(&shape, 1.0, rng),
            "xavier-normal" => init::xavier_normal(&shape, 1.0, rng),
            "kaiming-uniform" => init::kaiming_uniform(&shape, 0.0, init::FanMode::FanIn, nl, rng),
            "kaiming-normal" => init::kaiming_normal(&shape, 0.0, init::FanMode::FanIn, nl, rng),
            "lecun-normal" => init::lecun_normal(&shape, rng),
            "orthogonal" => init::orthogonal(&shape, 1.0, rng),
            other => {
                return Err(TrainError::Config(format!(
                    "unknown initialiser {other:?} (default, xavier-uniform, xavier-normal, kaiming-uniform, kaiming-normal, lecun-normal, orthogonal)"
                )));
            }
        }
        .map_err(|e| TrainError::Config(format!("init {scheme} of {name}: {e}")))?;
        p.set(t)?;
    }
    Ok(())
}

/// Builds everything a configuration describes: data (split with the run's
/// seed, scaled on the training split), model, optimizer, schedule,
/// regularizers, monitor and loader.
pub fn build_run(cfg: &RunConfig) -> Result<Run> {
    let seed = cfg.train.seed;
    let (data, given_test) = load_data(&cfg.data, &cfg.model.kind)?;
    let mut split_rng = Rng::new(seed ^ 0x5EED_0001);
    let (mut train, mut validation, mut test) = match given_test {
        Some(test) => {
            let s = if data.labels().is_some() {
                data.split_stratified(cfg.data.validation, 0.0, &mut split_rng)?
            } else {
                data.split(cfg.data.validation, 0.0, &mut split_rng)?
            };
            (s.train, s.validation, test)
        }
        None => {
            let s = if data.labels().is_some() {
                data.split_stratified(cfg.data.validation, cfg.data.test, &mut split_rng)?
            } else {
                data.split(cfg.data.validation, cfg.data.test, &mut split_rng)?
            };
            (s.train, s.validation, s.test)
        }
    };
    let scaler = if cfg.data.standardize {
        let s = Standardizer::fit_dataset(&train)?;
        train = s.apply(&train)?;
        validation = s.apply(&validation)?;
        test = s.apply(&test)?;
        Some(s)
    } else {
        None
    };
    let class_names = data.class_names().map(<[String]>::to_vec);
    let (outputs, loss) = match data.n_classes() {
        Some(k) => (k, LossKind::CrossEntropy { label_smoothing: cfg.train.label_smoothing }),
        None => (data.targets().as_values().map_or(1, |v| v.len() / v.shape()[0].max(1)), LossKind::Mse),
    };
    let mut rng = Rng::new(seed);
    let built = build_model(&model_spec(&cfg.model)?, train.feature_shape(), outputs, &mut rng)?;
    reinit(&built.model, &cfg.model.init, &mut rng)?;
    let optimizer = build_optimizer(&cfg.optim, built.model.parameters())?;
    let batch = cfg.batch_size()?;
    let loader = BatchLoader::new(
        train.clone(),
        LoaderConfig { batch_size: batch, seed: seed ^ 0x5EED_0002, ..Default::default() },
    )?;
    let mut trainer = Trainer::new(built.model, optimizer, loss);
    trainer.rngs = built.rngs;
    trainer.lr_policy = lr_policy(&cfg.schedule, cfg.optim.lr, cfg.train.epochs, loader.batches_per_epoch())?;
    trainer.monitor = crate::WeightMonitor::new(MonitorConfig {
        every_steps: cfg.train.monitor_every,
        ..Default::default()
    });
    let r = &cfg.reg;
    if r.l1 != 0.0 || r.l2 != 0.0 {
        let params: Vec<nw_autograd::Param> =
            trainer.named_parameters().iter().map(|(_, p)| p.clone()).collect();
        trainer.reg.penalties = Some(PenaltySet::weights_only(&params, Penalty::new(r.l1, r.l2)?)?);
    }
    trainer.reg.max_norm = r.max_norm.map(MaxNorm::new).transpose()?;
    trainer.reg.clip_grad_norm = r.clip_grad_norm;
    if let Some(p) = r.early_stopping {
        trainer.early_stopping = Some(EarlyStopping::new(p, 0.0, Mode::Min)?.restore_best_weights(true));
    }
    Ok(Run { trainer, loader, validation, test, scaler, class_names })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let c = RunConfig::default();
        assert_eq!(RunConfig::from_toml(&c.to_toml()).unwrap(), c);
        let e = RunConfig::from_toml("[optim]\nlearning_rate = 0.1\n").unwrap_err().to_string();
        assert!(e.contains("learning_rate"), "{e}");
        let partial = RunConfig::from_toml("[train]\nepochs = 3\n").unwrap();
        assert_eq!(partial.train.epochs, 3);
        assert_eq!(partial.optim, OptimConfig::default());
    }

    #[test]
    fn bad_names_are_config_errors() {
        let mut c = RunConfig::default();
        c.optim.name = "adamm".into();
        assert!(matches!(build_run(&c), Err(TrainError::Config(_))));
        let mut c = RunConfig::default();
        c.train.batch = "0".into();
        assert!(build_run(&c).is_err());
        let mut c = RunConfig::default();
        c.data.dataset = "mnist".into();
        let e = build_run(&c).err().expect("an unknown data set is an error");
        assert!(e.to_string().contains("mnist"), "{e}");
    }
}
