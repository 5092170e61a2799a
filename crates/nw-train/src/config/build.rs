//! Building a run from its configuration: data, model, optimizer, schedule,
//! regularizers, monitor and loader.

use nw_data::{BatchLoader, CsvOptions, Dataset, ImageLayout, LoaderConfig, Standardizer};
use nw_nn::{Module, init};
use nw_optim::Optimizer;
use nw_reg::{EarlyStopping, MaxNorm, Mode, Penalty, PenaltySet};
use nw_tensor::Rng;

use super::{DataConfig, DatasetName, InitScheme, ModelConfig, ModelKind, RunConfig};
use crate::error::{Result, TrainError};
use crate::models::{Activation, ModelSpec};
use crate::trainer::{LossKind, Trainer};

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
pub fn load_data(cfg: &DataConfig, model_kind: ModelKind) -> Result<(Dataset, Option<Dataset>)> {
    Ok(match cfg.dataset {
        DatasetName::Digits | DatasetName::Iris | DatasetName::Wine | DatasetName::BreastCancer => {
            (nw_data::embedded(&cfg.dataset.as_str().replace('-', "_"))?, None)
        }
        DatasetName::FashionMnist => {
            // an explicit layer list sees flat rows, as the embedded data sets give them (its first layer reshapes)
            let layout = if matches!(model_kind, ModelKind::Mlp | ModelKind::Sequential) {
                ImageLayout::Flat
            } else {
                ImageLayout::Nchw
            };
            let f = nw_data::fashion_mnist_default(layout)?;
            (f.train, Some(f.test))
        }
        DatasetName::Csv => {
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
    })
}

/// The model a configuration describes as an explicit layer list, for
/// examples of shape `input` (a template expands to the layers it builds).
pub fn model_layers(m: &ModelConfig, input: &[usize]) -> Result<Vec<crate::layers::LayerSpec>> {
    model_spec(m)?.layers(input)
}

/// The `[model]` section as TOML. A layer list is written one inline table
/// per layer, without the template-only keys; a template as its keys.
pub fn model_toml(m: &ModelConfig) -> String {
    let mut t = match toml::Value::try_from(m) {
        Ok(toml::Value::Table(t)) => t,
        _ => return String::new(),
    };
    t.remove("layer");
    if !m.layer.is_empty() {
        for k in ["hidden", "activation", "dropout", "channels", "width", "layers"] {
            t.remove(k);
        }
    }
    let body = toml::to_string(&t).unwrap_or_default();
    let list = if m.layer.is_empty() { String::new() } else { crate::layers::layers_toml(&m.layer) };
    format!("[model]\n{body}{list}")
}

fn model_spec(m: &ModelConfig) -> Result<ModelSpec> {
    use crate::config::ActivationName as A;
    let activation = match m.activation {
        A::Relu => Activation::Relu,
        A::Tanh => Activation::Tanh,
        A::Sigmoid => Activation::Sigmoid,
        A::Gelu => Activation::Gelu,
        A::Silu => Activation::Silu,
        A::LeakyRelu => Activation::LeakyRelu,
        A::Elu => Activation::Elu,
        A::Softplus => Activation::Softplus,
    };
    if !m.layer.is_empty() {
        return Ok(ModelSpec::Sequential { layers: m.layer.clone() });
    }
    Ok(match m.kind {
        ModelKind::Sequential => {
            return Err(TrainError::Config(
                "model.kind = \"sequential\" needs a layer list (model.layer)".into(),
            ));
        }
        ModelKind::Mlp => ModelSpec::Mlp { hidden: m.hidden.clone(), activation, dropout: m.dropout },
        ModelKind::Cnn => {
            ModelSpec::Cnn { channels: m.channels.clone(), hidden: m.width, dropout: m.dropout }
        }
        ModelKind::Lstm => ModelSpec::Lstm { hidden: m.width, layers: m.layers },
        ModelKind::Gru => ModelSpec::Gru { hidden: m.width, layers: m.layers },
        ModelKind::Rnn => ModelSpec::Rnn { hidden: m.width, layers: m.layers },
    })
}

/// Builds the optimizer a configuration names over `params`.
pub fn build_optimizer(
    o: &nw_optim::OptimizerConfig,
    params: Vec<nw_autograd::Param>,
) -> Result<Box<dyn Optimizer>> {
    Ok(o.build(params)?)
}

/// A row-sparse optimizer (`sparse_adam`, torch's SparseAdam) needs every
/// trainable parameter to be a sparse embedding's table: torch raises on the
/// first dense gradient; nw refuses the configuration up front, naming the
/// first dense parameter.
fn sparse_only(model: &dyn Module, frozen: &std::collections::BTreeSet<String>, optim: &str) -> Result<()> {
    let sparse = model.sparse_parameters();
    let dense: Vec<String> = model
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| !frozen.contains(n) && !sparse.contains(n))
        .collect();
    let Some(first) = dense.first() else { return Ok(()) };
    let more = match dense.len() {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    Err(TrainError::Config(format!(
        "optim.name = \"{optim}\" takes row-sparse gradients only (model.layer embeddings with sparse = true), \
         but parameter `{first}`{more} has a dense gradient. torch pairs SparseAdam for the embeddings with \
         another optimizer for the rest; an nw run has one optimizer, so freeze the dense parameters \
         (train.freeze) or choose another optimizer (adam)"
    )))
}

fn reinit(model: &dyn Module, scheme: InitScheme, rng: &mut Rng) -> Result<()> {
    if scheme == InitScheme::Default {
        return Ok(());
    }
    for (name, p) in model.named_parameters() {
        let shape = p.shape();
        if shape.len() < 2 || !name.contains("weight") {
            continue;
        }
        let nl = init::Nonlinearity::Relu;
        let t = match scheme {
            InitScheme::Default => unreachable!("returned above"),
            InitScheme::XavierUniform => init::xavier_uniform(&shape, 1.0, rng),
            InitScheme::XavierNormal => init::xavier_normal(&shape, 1.0, rng),
            InitScheme::KaimingUniform => init::kaiming_uniform(&shape, 0.0, init::FanMode::FanIn, nl, rng),
            InitScheme::KaimingNormal => init::kaiming_normal(&shape, 0.0, init::FanMode::FanIn, nl, rng),
            InitScheme::LecunNormal => init::lecun_normal(&shape, rng),
            InitScheme::Orthogonal => init::orthogonal(&shape, 1.0, rng),
            InitScheme::SmallNormal => init::normal(&shape, 0.0, 0.01, rng),
        }
        .map_err(|e| TrainError::Config(format!("model.init {scheme:?} of {name}: {e}")))?;
        p.set(t)?;
    }
    Ok(())
}

/// What building a run needs to know of its data: one example's shape, the
/// outputs, the kind of task and the size of the training split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataShape {
    /// One example's feature shape (the batch axis left out).
    pub features: Vec<usize>,
    /// Classes (classification) or target values per example (regression).
    pub outputs: usize,
    /// Whether the targets are class labels.
    pub classes: bool,
    /// Examples in the training split.
    pub train_examples: usize,
}

impl DataShape {
    /// The shape of a (training) data set.
    pub fn of(train: &Dataset) -> DataShape {
        let (outputs, classes) = match train.n_classes() {
            Some(k) => (k, true),
            None => (train.targets().as_values().map_or(1, |v| v.len() / v.shape()[0].max(1)), false),
        };
        DataShape { features: train.feature_shape().to_vec(), outputs, classes, train_examples: train.len() }
    }

    /// The shape `cfg`'s data set has, known without loading it: the
    /// embedded sets and Fashion-MNIST (whose layout follows the model
    /// kind, as in [`load_data`]); `None` for a CSV file. The training size
    /// is nominal (`n` less the rounded validation and test fractions; the
    /// real split rounds per class), for checks that do not train.
    pub fn nominal(cfg: &RunConfig) -> Option<DataShape> {
        let (features, outputs, n, own_test) = match cfg.data.dataset {
            DatasetName::Digits => (vec![64], 10, 1797usize, false),
            DatasetName::Iris => (vec![4], 3, 150, false),
            DatasetName::Wine => (vec![13], 3, 178, false),
            DatasetName::BreastCancer => (vec![30], 2, 569, false),
            DatasetName::FashionMnist => {
                let flat = matches!(cfg.model.kind, ModelKind::Mlp | ModelKind::Sequential);
                (if flat { vec![784] } else { vec![1, 28, 28] }, 10, 60_000, true)
            }
            DatasetName::Csv => return None,
        };
        let part = |f: f64| (n as f64 * f).round() as usize;
        let held = part(cfg.data.validation) + if own_test { 0 } else { part(cfg.data.test) };
        Some(DataShape { features, outputs, classes: true, train_examples: n.saturating_sub(held) })
    }

    /// Batches per epoch of the training split in batches of `batch` (as
    /// [`BatchLoader::batches_per_epoch`] counts them).
    pub fn batches_per_epoch(&self, batch: nw_data::BatchSize) -> usize {
        let b = match batch {
            nw_data::BatchSize::Full => self.train_examples.max(1),
            nw_data::BatchSize::Online => 1,
            nw_data::BatchSize::Mini(b) => b.max(1),
        };
        self.train_examples.div_ceil(b)
    }
}

/// Builds everything a configuration describes: data (split with the run's
/// seed, scaled on the training split), model, optimizer, schedule,
/// regularizers, monitor and loader.
pub fn build_run(cfg: &RunConfig) -> Result<Run> {
    cfg.validate()?;
    let seed = cfg.train.seed;
    let (data, given_test) = load_data(&cfg.data, cfg.model.kind)?;
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
    let shape = DataShape::of(&train);
    let loader = BatchLoader::new(
        train,
        LoaderConfig {
            batch_size: cfg.batch_size(),
            seed: seed ^ 0x5EED_0002,
            drop_last: cfg.data.drop_last,
            ..Default::default()
        },
    )?;
    let limit = memory_element_limit(cfg, &shape)?;
    let trainer = build_trainer(cfg, &shape, loader.batches_per_epoch(), limit)?;
    check_batch_rows(cfg, &trainer, &loader)?;
    Ok(Run { trainer, loader, validation, test, scaler, class_names })
}

/// Bytes every parameter or buffer of a training run needs at the least:
/// its value and its gradient (`f32`), before any optimizer state.
pub const MIN_TRAINING_BYTES_PER_ELEMENT: u64 = 8;

/// This machine's available memory in bytes (`MemAvailable` in
/// `/proc/meminfo`); `None` where it cannot be read.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The most parameters and buffers a real run may build: what the
/// available memory holds at [`MIN_TRAINING_BYTES_PER_ELEMENT`] each. A
/// model that is over it as far as its shapes can be worked out from the
/// configuration ([`crate::layers::planned_elements`]) is refused here,
/// before any layer is allocated, with the memory it would need; the limit
/// is also handed to the build, which checks it before each later layer.
/// `None` (no limit beyond the per-tensor one) where the memory is unknown.
fn memory_element_limit(cfg: &RunConfig, shape: &DataShape) -> Result<Option<usize>> {
    let Some(avail) = available_memory() else { return Ok(None) };
    let max = usize::try_from(avail / MIN_TRAINING_BYTES_PER_ELEMENT).unwrap_or(usize::MAX);
    let layers = model_spec(&cfg.model)?.layers(&shape.features)?;
    let plan = crate::layers::planned_elements(&layers, &shape.features, shape.outputs);
    if let Some((i, total, at)) = plan.into_iter().find(|p| p.1 > max) {
        let gib = |b: f64| b / f64::from(1u32 << 30);
        let need = if total == usize::MAX {
            "more than this machine can address".to_string()
        } else {
            format!("{:.1} GiB", gib(total as f64 * MIN_TRAINING_BYTES_PER_ELEMENT as f64))
        };
        return Err(TrainError::Config(format!(
            "model.layer[{i}] ({}) receives per-example shape {at:?}: the model would hold more than {max} parameters and buffers; their values and gradients alone take {need} ({MIN_TRAINING_BYTES_PER_ELEMENT} bytes each, before optimizer state), more than the {:.1} GiB this machine has available",
            layers[i].type_name(),
            gib(avail as f64)
        )));
    }
    Ok(Some(max))
}

/// Refuses, before the first step, a run whose batches (or micro-shards)
/// would be too small for the model in training: batch norm on `[C]` needs
/// two rows, and a short last batch of one row, or a batch cut into
/// micro-shards of one row, would otherwise fail in the middle of the first
/// epoch (on one rank of a distributed run, which the others then wait on).
fn check_batch_rows(cfg: &RunConfig, trainer: &Trainer, loader: &BatchLoader) -> Result<()> {
    let (need, layer) = trainer.min_rows;
    let n = loader.dataset().len();
    if need <= 1 || n == 0 {
        return Ok(());
    }
    let b = loader.batch_size().clamp(1, n);
    let short = n % b;
    let sizes = [(b, false), (short, true)];
    for (rows, last) in sizes.into_iter().filter(|&(r, last)| r > 0 && !(last && cfg.data.drop_last)) {
        // sync_bn normalises over the whole batch; otherwise each micro-shard is a batch
        let shards = if trainer.sharding.is_sharded() && !cfg.train.sync_bn {
            trainer.sharding.shards(rows)
        } else {
            1
        };
        let fewest = rows / shards;
        if fewest >= need {
            continue;
        }
        let what = if last {
            format!("the last batch of each epoch has {} ({n} training rows, batch {b})", rows_text(rows))
        } else {
            format!("a batch has {}", rows_text(rows))
        };
        let cut = if shards > 1 {
            format!(", cut into {shards} micro-shards (train.accumulate) of as few as {}", rows_text(fewest))
        } else {
            String::new()
        };
        let at = layer.map_or_else(String::new, |i| format!(" (model.layer[{i}])"));
        let fix = if last {
            "set data.drop_last = true (--drop-last) to skip it, or choose a batch size that leaves a longer last batch"
        } else {
            "use a larger batch or a smaller train.accumulate"
        };
        return Err(TrainError::Config(format!(
            "{what}{cut}; batch norm{at} needs at least {need} rows per batch in training (two values per channel): {fix}"
        )));
    }
    Ok(())
}

fn rows_text(n: usize) -> String {
    if n == 1 { "1 row".into() } else { format!("{n} rows") }
}

/// The trainer `cfg` describes for data of `shape` with `batches_per_epoch`
/// batches an epoch: model (initialised from the run's seed, re-initialised
/// and loaded from `model.init_from` when configured), frozen parameters,
/// optimizer, weight average, sharding, schedule, monitor and regularizers;
/// no data is read. `max_elements` limits the model's parameters and
/// buffers, checked before each layer is built (`None`: only the per-tensor
/// limit). [`build_run`] is this with the loaded data's shape.
pub fn build_trainer(
    cfg: &RunConfig,
    shape: &DataShape,
    batches_per_epoch: usize,
    max_elements: Option<usize>,
) -> Result<Trainer> {
    cfg.validate()?;
    let seed = cfg.train.seed;
    let loss = if shape.classes {
        LossKind::CrossEntropy { label_smoothing: cfg.train.label_smoothing }
    } else {
        LossKind::Mse
    };
    let mut rng = Rng::new(seed);
    let built = crate::models::build_model_limited(
        &model_spec(&cfg.model)?,
        &shape.features,
        shape.outputs,
        &mut rng,
        max_elements,
    )?;
    reinit(&built.model, cfg.model.init, &mut rng)?;
    if let Some(path) = &cfg.model.init_from {
        let r = crate::pretrained::load_weights(&built.model, path, cfg.model.init_from_partial)?;
        if !r.is_complete() {
            tracing::warn!("{}: loaded {} tensors; {}", path.display(), r.loaded.len(), r.problems());
        }
    }
    let names: Vec<String> = built.model.named_parameters().into_iter().map(|(n, _)| n).collect();
    let frozen = crate::freeze::frozen_names(&names, &cfg.train.freeze)?;
    let trainable = built
        .model
        .named_parameters()
        .into_iter()
        .filter(|(n, _)| !frozen.contains(n))
        .map(|(_, p)| p)
        .collect();
    if cfg.optim.needs_sparse_gradients() {
        sparse_only(&built.model, &frozen, cfg.optim.name())?;
    }
    let optimizer = build_optimizer(&cfg.optim, trainable)?;
    let mut trainer = Trainer::new(built.model, optimizer, loss);
    trainer.rngs = built.rngs;
    trainer.min_rows = built.min_rows;
    let cancelled = built.cancelled_biases;
    trainer.frozen = frozen;
    let kind = match (cfg.train.ema, cfg.train.swa_start) {
        (Some(decay), _) => Some(crate::averaged::AverageKind::Ema { decay }),
        (None, Some(start)) => Some(crate::averaged::AverageKind::Swa { start }),
        (None, None) => None,
    };
    trainer.average = kind.map(crate::averaged::Averaged::new).transpose()?;
    trainer.swa_lr = cfg.train.swa_lr.map(|swa_lr| crate::averaged::SwaLr {
        swa_lr,
        anneal_epochs: cfg.train.swa_anneal_epochs,
        anneal: match cfg.train.swa_anneal_strategy {
            super::AnnealName::Cos => nw_optim::schedule::Anneal::Cos,
            super::AnnealName::Linear => nw_optim::schedule::Anneal::Linear,
        },
    });
    trainer.sharding = crate::shard::Sharding {
        accumulate: cfg.train.accumulate,
        per_shard: cfg.train.distributed,
        seed,
        collective: None,
        sync_bn: cfg.train.sync_bn,
    };
    trainer.lr_policy = cfg.schedule.policy(cfg.optim.lr(), cfg.train.epochs, batches_per_epoch)?;
    trainer.sync_momentum()?;
    trainer.monitor = crate::WeightMonitor::new(cfg.train.monitor());
    trainer.monitor.set_cancelled(cancelled);
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
    Ok(trainer)
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
        assert_eq!(partial.optim, crate::config::default_optimizer());
    }

    #[test]
    fn toml_errors_name_line_and_key() {
        let e = RunConfig::from_toml("[train]\nepochs = 3\n\n[optim]\nname = \"adam\"\nmomentum = 0.9\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("momentum") && e.contains("line 4"), "{e}");
        let e = RunConfig::from_toml("[model]\nactivation = \"relu6\"\n").unwrap_err().to_string();
        assert!(e.contains("relu6") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn bad_names_are_config_errors() {
        let e = RunConfig::from_toml("[optim]\nname = \"adamm\"\n").unwrap_err().to_string();
        assert!(e.contains("adamm"), "{e}");
        let e = RunConfig::from_toml("[train]\nbatch = 0\n").unwrap_err().to_string();
        assert!(e.contains("batch"), "{e}");
        let e = RunConfig::from_toml("[data]\ndataset = \"mnist\"\n").unwrap_err().to_string();
        assert!(e.contains("mnist"), "{e}");
    }

    #[test]
    fn nominal_shapes_are_the_loaded_ones() {
        for name in ["digits", "iris", "wine", "breast-cancer"] {
            let mut cfg = RunConfig::default();
            cfg.set("data.dataset", name).unwrap();
            let nominal = DataShape::nominal(&cfg).unwrap();
            let run = build_run(&cfg).unwrap();
            let real = DataShape::of(run.loader.dataset());
            assert_eq!(
                (&nominal.features, nominal.outputs, nominal.classes),
                (&real.features, real.outputs, real.classes),
                "{name}"
            );
            assert!(
                nominal.train_examples.abs_diff(real.train_examples) <= 10,
                "{name}: {nominal:?} {real:?}"
            );
        }
        let mut cfg = RunConfig::default();
        cfg.set("data.dataset", "csv").unwrap();
        assert_eq!(DataShape::nominal(&cfg), None);
    }

    #[test]
    fn the_build_limit_is_checked_before_the_layer_is_built() {
        let mut cfg = RunConfig::default();
        cfg.set("model.hidden", "[16777216]").unwrap();
        let shape = DataShape::nominal(&cfg).unwrap();
        let e = build_trainer(&cfg, &shape, 10, Some(1 << 20)).err().unwrap().to_string();
        assert!(e.contains("model.layer[0]") && e.contains("more than 1048576 parameters"), "{e}");
        cfg.set("model.hidden", "[16]").unwrap();
        let t = build_trainer(&cfg, &shape, 10, Some(64 * 16 + 16 + 16 * 10 + 10)).unwrap();
        assert_eq!(t.named_parameters().len(), 4);
    }

    #[test]
    fn a_model_over_the_limit_is_refused_before_its_first_layer_is_built() {
        let mut cfg = RunConfig::default();
        // 64 x 16777216 (first layer, 1G parameters) fits 2^31 elements; the
        // second, 16777216^2, does not: refused from the plan, so the test
        // finishes at once instead of allocating 4 GiB for the first layer.
        cfg.set("model.hidden", "[16777216, 16777216]").unwrap();
        let shape = DataShape::nominal(&cfg).unwrap();
        let t = std::time::Instant::now();
        let e = build_trainer(&cfg, &shape, 10, Some(1 << 31)).err().unwrap().to_string();
        assert!(e.contains("model.layer[2]") && e.contains("more than 2147483648"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_secs(2), "{:?}", t.elapsed());
        // The plan counts what it can work out from the configuration: the
        // digits' 64 inputs, linear 64->16, relu, linear 16->10.
        let layers = model_spec(&cfg.model).unwrap().layers(&shape.features).unwrap();
        let plan = crate::layers::planned_elements(&layers, &shape.features, shape.outputs);
        assert_eq!(plan[0], (0, 64 * 16_777_216 + 16_777_216, vec![64]));
        assert_eq!(plan[2].2, vec![16_777_216]);
        cfg.set("model.hidden", "[16]").unwrap();
        let layers = model_spec(&cfg.model).unwrap().layers(&shape.features).unwrap();
        let plan = crate::layers::planned_elements(&layers, &shape.features, shape.outputs);
        assert_eq!(plan.last().unwrap().1, 64 * 16 + 16 + 16 * 10 + 10);
        // A convolution's output shape is not planned: the plan stops there,
        // and the build checks the later layers one by one.
        cfg.set("model.kind", "\"cnn\"").unwrap();
        let layers = model_spec(&cfg.model).unwrap().layers(&shape.features).unwrap();
        let plan = crate::layers::planned_elements(&layers, &shape.features, shape.outputs);
        assert!(plan.len() < layers.len(), "{plan:?}");
    }

    #[test]
    fn a_bias_before_batch_norm_is_not_reported_as_vanishing() {
        let mut cfg = RunConfig::default();
        cfg.set(
            "model.layer",
            "[{type=\"reshape\", shape=[1, 8, 8]}, {type=\"conv2d\", out=4, kernel=3}, {type=\"batch_norm\"}, \
             {type=\"relu\"}, {type=\"flatten\"}, {type=\"linear\", out=8}, {type=\"relu\"}, {type=\"linear\"}]",
        )
        .unwrap();
        cfg.set("train.monitor_every", "1").unwrap();
        let mut run = build_run(&cfg).unwrap();
        let batch = run.loader.epoch(0).next().unwrap();
        for _ in 0..3 {
            run.trainer.train_step(&batch.x, &batch.y).unwrap();
        }
        let grads = run.trainer.compute_grads(&batch.x, &batch.y, 4, false).unwrap().grads;
        let named = run.trainer.named_parameters();
        let bias = &named.iter().find(|(n, _)| n == "1.bias").unwrap().1;
        // the bias's gradient is zero up to rounding...
        let g = grads.get(bias).unwrap().to_vec();
        assert!(g.iter().all(|v| v.abs() < 1e-5), "{g:?}");
        // ...and is not called vanishing; the other layers' biases are monitored as before
        let w = &run.trainer.warnings;
        assert!(
            !w.iter().any(
                |w| matches!(w, crate::monitor::Warning::VanishingGradient { name, .. } if name == "1.bias")
            ),
            "{w:?}"
        );
        let layers = model_spec(&cfg.model).unwrap().layers(&[64]).unwrap();
        let built = crate::layers::build_layers(&layers, &[64], 10, &mut Rng::new(1)).unwrap();
        assert_eq!(built.cancelled_biases, vec!["1.bias".to_string()]);
    }

    #[test]
    fn the_default_run_builds() {
        let run = build_run(&RunConfig::default()).unwrap();
        assert_eq!(run.trainer.optimizer.name(), "Adam");
        assert_eq!(run.trainer.optimizer.lr(), 2e-3);
    }
}
