//! The subcommands: argument handling and display only.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use nw_autograd::Param;
use nw_nn::Module;
use nw_reg::prune::Pruner;
use nw_tensor::Tensor;
use nw_train::session::{self, Progress, checkpoint_path};
use nw_train::{Checkpoint, EpochRecord, Metrics, RunConfig, TrainError, build_run};

use crate::{Cli, Command, DistArgs, LrFindArgs, ModelSource, TrainArgs};

/// Runs the parsed command, inside a pool of `--threads` workers when given.
pub fn run(cli: Cli) -> Result<()> {
    let go = move || match cli.command {
        Command::Train(a) => train(*a),
        Command::Eval(source) => eval(&source),
        Command::Predict { source, input, logits } => predict(&source, input.as_deref(), logits),
        Command::Inspect(source) => inspect(&source),
        Command::Prune { model, sparsity, fine_tune_epochs, out } => {
            prune(&model, sparsity, fine_tune_epochs, out)
        }
        Command::Resume { checkpoint, epochs, out, dist } => resume(&checkpoint, epochs, out, &dist),
        Command::Lab(a) => crate::lab::lab(a),
        Command::Report(a) => crate::lab::report(a),
        Command::LrFind(a) => lr_find(*a),
        Command::Update { run, input, lr, batch, out } => update(&run, &input, lr, batch, out),
    };
    match cli.threads {
        Some(n) if n > 0 => rayon::ThreadPoolBuilder::new().num_threads(n).build()?.install(go),
        Some(_) => bail!(TrainError::Config("--threads must be at least 1".into())),
        None => go(),
    }
}

/// `data.dataset` names (checked against the registry by a test).
pub const DATASETS: &[&str] = &["digits", "iris", "wine", "breast-cancer", "fashion-mnist", "csv"];
/// `model.kind` names.
pub const MODELS: &[&str] = &["mlp", "cnn", "lstm", "gru", "rnn"];
/// `model.activation` names.
pub const ACTIVATIONS: &[&str] =
    &["relu", "tanh", "sigmoid", "gelu", "silu", "leaky-relu", "elu", "softplus"];
/// `model.init` names.
pub const INITS: &[&str] = &[
    "default",
    "xavier-uniform",
    "xavier-normal",
    "kaiming-uniform",
    "kaiming-normal",
    "lecun-normal",
    "orthogonal",
    "small-normal",
];

/// The exit code for an error (see the crate docs).
pub fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(t) = cause.downcast_ref::<TrainError>() {
            return t.exit_code();
        }
        if let Some(c) = cause.downcast_ref::<nw_train::CheckpointError>() {
            return if matches!(c, nw_train::CheckpointError::Io { .. }) { 6 } else { 5 };
        }
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return 6;
        }
    }
    1
}

/// The error and its causes on one line, each cause once (a cause whose
/// text the message already contains is not repeated).
pub fn message(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out += ": ";
            out += &c;
        }
    }
    out
}

fn resolve_config(a: &TrainArgs) -> Result<RunConfig> {
    let mut c = match &a.config {
        Some(p) => RunConfig::from_file(p)?,
        None => RunConfig::default(),
    };
    // Choices first (each brings its own defaults), then their keys, then --set.
    let mut sets: Vec<(&str, String)> = Vec::new();
    let mut put = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            sets.push((k, v));
        }
    };
    let list = |v: &Option<Vec<usize>>| v.as_ref().map(|v| format!("{v:?}"));
    put("optim.name", a.optimizer.clone());
    put("schedule.kind", a.schedule.clone());
    put("data.dataset", a.dataset.clone().or_else(|| a.csv.as_ref().map(|_| "csv".into())));
    put("data.csv", a.csv.as_ref().map(|p| toml_string(&p.to_string_lossy())));
    put("data.target_column", a.target_column.map(|v| v.to_string()));
    put("data.header", flag(a.header, a.no_header));
    put("data.standardize", flag(a.standardize, a.no_standardize));
    put("data.drop_last", flag(a.drop_last, a.no_drop_last));
    put("model.kind", a.model.clone());
    put("model.hidden", list(&a.hidden));
    put("model.activation", a.activation.clone());
    put("model.dropout", a.dropout.map(|v| format!("{v:?}")));
    put("model.channels", list(&a.channels));
    put("model.width", a.width.map(|v| v.to_string()));
    put("model.layers", a.layers.map(|v| v.to_string()));
    put("model.init", a.init.clone());
    put("model.init_from", a.init_from.as_ref().map(|p| toml_string(&p.to_string_lossy())));
    put("model.init_from_partial", a.init_from_partial.then(|| "true".into()));
    put("optim.lr", a.lr.map(|v| format!("{v:?}")));
    put("optim.momentum", a.momentum.map(|v| format!("{v:?}")));
    put("optim.nesterov", flag(a.nesterov, a.no_nesterov));
    put("optim.weight_decay", a.weight_decay.map(|v| format!("{v:?}")));
    put("optim.betas", a.betas.as_ref().map(|v| format!("{v:?}")));
    put("optim.eps", a.eps.map(|v| format!("{v:?}")));
    put("schedule.step_size", a.step_size.map(|v| v.to_string()));
    put("schedule.gamma", a.gamma.map(|v| format!("{v:?}")));
    put("schedule.milestones", list(&a.milestones));
    put("schedule.warmup_epochs", a.warmup_epochs.map(|v| v.to_string()));
    put("schedule.min_lr", a.min_lr.map(|v| format!("{v:?}")));
    put("schedule.max_lr", a.max_lr.map(|v| format!("{v:?}")));
    put("schedule.patience", a.patience.map(|v| v.to_string()));
    put("reg.l1", a.l1.map(|v| format!("{v:?}")));
    put("reg.l2", a.l2.map(|v| format!("{v:?}")));
    put("reg.max_norm", a.max_norm.map(|v| format!("{v:?}")));
    put("reg.clip_grad_norm", a.clip_grad_norm.map(|v| format!("{v:?}")));
    put("reg.early_stopping", a.early_stopping.map(|v| v.to_string()));
    put("train.epochs", a.epochs.map(|v| v.to_string()));
    put("train.batch", a.batch.as_ref().map(|v| toml_string(v)));
    put("train.seed", a.seed.map(|v| v.to_string()));
    put("train.monitor_every", a.monitor_every.map(|v| v.to_string()));
    put("train.checkpoint_every", a.checkpoint_every.map(|v| v.to_string()));
    put("train.checkpoint_every_steps", a.checkpoint_every_steps.map(|v| v.to_string()));
    put("train.keep_checkpoints", a.keep_checkpoints.map(|v| v.to_string()));
    put("train.detect_anomaly", flag(a.detect_anomaly, false));
    put("train.label_smoothing", a.label_smoothing.map(|v| format!("{v:?}")));
    put("train.accumulate", a.accumulate.map(|v| v.to_string()));
    put("train.distributed", a.dist.distributed.then(|| "true".into()));
    put("train.sync_bn", a.dist.sync_bn.then(|| "true".into()));
    if !a.freeze.is_empty() {
        let pats: Vec<String> = a.freeze.iter().map(|p| toml_string(p)).collect();
        put("train.freeze", Some(format!("[{}]", pats.join(", "))));
    }
    put("train.ema", a.ema.map(|v| format!("{v:?}")));
    put("train.swa_start", a.swa_start.map(|v| v.to_string()));
    put("train.swa_lr", a.swa_lr.map(|v| format!("{v:?}")));
    put("train.swa_anneal_epochs", a.swa_anneal_epochs.map(|v| v.to_string()));
    put("train.swa_anneal_strategy", a.swa_anneal_strategy.as_deref().map(toml_string));
    for (k, v) in sets {
        c.set(k, &v).with_context(|| format!("--{}", flag_name(k)))?;
    }
    for kv in &a.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| TrainError::Config(format!("--set {kv:?}: expected KEY=VALUE")))?;
        c.set(k.trim(), v.trim())?;
    }
    c.validate()?;
    Ok(c)
}

/// The flag that sets `key` (for error messages).
fn flag_name(key: &str) -> String {
    match key {
        "optim.name" => "optimizer".into(),
        "schedule.kind" => "schedule".into(),
        "model.kind" => "model".into(),
        k => k.rsplit('.').next().unwrap_or(k).replace('_', "-"),
    }
}

fn flag(on: bool, off: bool) -> Option<String> {
    if off {
        Some("false".into())
    } else if on {
        Some("true".into())
    } else {
        None
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A flag that SIGINT (Ctrl-C) or SIGTERM sets: training stops at the next
/// step boundary, writes a checkpoint and exits with 130. A second signal
/// while the first is handled ends the process at once.
fn interrupt_flag() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static FLAG: std::sync::OnceLock<std::sync::Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = std::sync::Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let installed = ctrlc::set_handler(move || {
            if f.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("interrupted: writing a checkpoint at the next step boundary");
        });
        if let Err(e) = installed {
            tracing::warn!("no interrupt handler: {e}");
        }
        flag
    })
    .clone()
}

/// Progress display: a bar per epoch on a terminal, one line per epoch always.
struct Display {
    epochs: u64,
    bar: Option<ProgressBar>,
    interactive: bool,
}

impl Display {
    fn new(epochs: u64) -> Self {
        Display { epochs, bar: None, interactive: std::io::stderr().is_terminal() }
    }
}

impl Progress for Display {
    fn epoch_start(&mut self, epoch: u64, batches: usize) {
        if self.interactive {
            let bar = ProgressBar::new(batches as u64);
            bar.set_style(
                ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} batches {elapsed}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(format!("{epoch}/{}", self.epochs));
            self.bar = Some(bar);
        }
    }

    fn batch(&mut self, _index: usize, _loss: f32) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    fn epoch_end(&mut self, r: &EpochRecord) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        let mut line = format!("epoch {:>3}/{}  train loss {:.4}", r.epoch, self.epochs, r.train_loss);
        if let Some(a) = r.train_accuracy {
            line += &format!("  train acc {a:.4}");
        }
        if let Some(v) = &r.validation {
            line += &format!("  val loss {:.4}", v.loss);
            if let Some(a) = v.accuracy {
                line += &format!("  val acc {a:.4}");
            }
        }
        line += &format!("  lr {:.2e}  {:.2}s", r.lr, r.seconds);
        println!("{line}");
    }
}

fn print_test(m: &Metrics) {
    println!("test loss: {:.4}", m.loss);
    if let Some(a) = m.accuracy {
        println!("test accuracy: {a:.3}");
    }
}

/// `adam (lr 0.002, betas [0.9,0.999], eps 1e-8)`: the optimizer with every value it runs with.
fn describe_optimizer(o: &nw_train::config::OptimizerConfig) -> String {
    let v = serde_json::to_value(o).expect("serialises");
    let keys: Vec<String> = v
        .as_object()
        .map(|m| m.iter().filter(|(k, _)| *k != "name").map(|(k, v)| format!("{k} {v}")).collect())
        .unwrap_or_default();
    format!("{} ({})", o.name(), keys.join(", "))
}

fn train(a: TrainArgs) -> Result<()> {
    let cfg = resolve_config(&a)?;
    if a.print_config {
        print!("{}", cfg.to_toml());
        return Ok(());
    }
    let started = std::time::Instant::now();
    if a.dist.distributed {
        let d = nw_train::distributed::Distributed::new(&cfg, collective(&a.dist)?)?;
        return fit_distributed(d, &cfg, &a.out, started);
    }
    let mut run = build_run(&cfg)?;
    println!(
        "nw train: {} ({} train / {} validation / {} test examples), model {}, {} parameters, {} for {} epochs",
        cfg.data.dataset,
        run.loader.dataset().len(),
        run.validation.len(),
        run.test.len(),
        cfg.model.kind.as_str(),
        run.trainer.model.num_parameters(),
        describe_optimizer(&cfg.optim),
        cfg.train.epochs
    );
    run.trainer.stop = Some(interrupt_flag());
    let m = session::fit(&mut run, &cfg, Some(&a.out), &mut Display::new(cfg.train.epochs))?;
    if !run.trainer.warnings.is_empty() {
        let n = run.trainer.warnings.len();
        eprintln!("weight monitor: {n} kind(s) of warning raised during training (each shown once above)");
    }
    println!("wrote {} ({:.1}s)", a.out.display(), started.elapsed().as_secs_f64());
    print_test(&m);
    Ok(())
}

/// The run a model source describes: an nw checkpoint restored, or a run
/// built from a configuration with the weights file loaded into it.
fn load_source(src: &ModelSource) -> Result<(RunConfig, nw_train::Run, Option<nw_train::Checkpoint>)> {
    match (&src.weights, &src.config) {
        (Some(w), Some(c)) => {
            let cfg = RunConfig::from_file(c)?;
            let run = build_run(&cfg)?;
            nw_train::pretrained::load_weights(&run.trainer.model, w, false)?;
            Ok((cfg, run, None))
        }
        _ => {
            let path = checkpoint_path(&src.model);
            let ck = Checkpoint::load(&path)?;
            let (cfg, run) = session::resume_run(&path)?;
            Ok((cfg, run, Some(ck)))
        }
    }
}

fn eval(src: &ModelSource) -> Result<()> {
    let (_, mut run, _) = load_source(src)?;
    // A run that averages weights is evaluated with the averaged ones, as
    // its training reported and saved them.
    let nw_train::Run { trainer, loader, test, .. } = &mut run;
    let m = trainer.with_averaged(Some(loader), |t| t.evaluate(test, 1024))?;
    print_test(&m);
    if let Some(per) = &m.per_class_accuracy {
        let names = run.class_names.clone().unwrap_or_default();
        for (i, a) in per.iter().enumerate() {
            println!("  class {:<12} {a:.3}", names.get(i).cloned().unwrap_or_else(|| i.to_string()));
        }
    }
    Ok(())
}

fn parse_err(input: Option<&Path>, line: usize, message: String) -> TrainError {
    let path = input.unwrap_or(Path::new("<stdin>")).to_path_buf();
    TrainError::Data(nw_data::DataError::Parse { path, line, message })
}

fn predict(src: &ModelSource, input: Option<&Path>, logits: bool) -> Result<()> {
    let (_, mut run, _) = load_source(src)?;
    let n_features = run.test.n_features();
    let reader: Box<dyn BufRead> = match input {
        Some(p) if p != Path::new("-") => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).map_err(|source| TrainError::Io { path: p.to_path_buf(), source })?,
        )),
        _ => Box::new(std::io::stdin().lock()),
    };
    let mut rows = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line =
            line.map_err(|source| TrainError::Io { path: input.unwrap_or(Path::new("-")).into(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| parse_err(input, i + 1, e.to_string()))?;
        if row.len() != n_features {
            bail!(parse_err(input, i + 1, format!("{} values, the model takes {n_features}", row.len())));
        }
        rows.extend(row);
    }
    if rows.is_empty() {
        bail!(parse_err(input, 0, "no input rows".into()));
    }
    let n = rows.len() / n_features;
    let mut x = Tensor::from_vec(rows, &[n, n_features])?;
    if let Some(s) = &run.scaler {
        x = s.transform(&x).map_err(TrainError::from)?;
    }
    let shape: Vec<usize> = std::iter::once(n).chain(run.test.feature_shape().iter().copied()).collect();
    let x = x.reshape(&shape)?;
    // A run that averages weights predicts with the averaged ones, the
    // weights its metrics and model.safetensors hold (as `nw eval` does).
    let nw_train::Run { trainer, loader, .. } = &mut run;
    let out = trainer.with_averaged(Some(loader), |t| t.predict(&x))?;
    let width = out.len() / n.max(1);
    if run.test.n_classes().is_some() && !logits {
        let p = out.softmax(1)?;
        let classes = p.argmax_axis(1)?;
        let names = run.class_names.clone().unwrap_or_default();
        let pv = p.to_vec();
        for (i, &c) in classes.iter().enumerate() {
            let probs: Vec<String> =
                pv[i * width..(i + 1) * width].iter().map(|v| format!("{v:.4}")).collect();
            let name = names.get(c).cloned().unwrap_or_else(|| c.to_string());
            println!("{name}\t{}", probs.join(","));
        }
    } else {
        // Regression values, or raw outputs with --logits (full precision).
        for row in out.to_vec().chunks(width.max(1)) {
            let v: Vec<String> = row.iter().map(|v| format!("{v:e}")).collect();
            println!("{}", v.join(","));
        }
    }
    Ok(())
}

fn inspect(src: &ModelSource) -> Result<()> {
    let (cfg, run, ck) = load_source(src)?;
    println!("# architecture, as configured (nw train --config accepts this)");
    println!("{}", nw_train::config::model_toml(&cfg.model));
    if cfg.model.layer.is_empty()
        && let Ok(layers) = nw_train::config::model_layers(&cfg.model, run.test.feature_shape())
    {
        println!("# the same model as an explicit layer list (same layers, names and initial weights)");
        let mut m = cfg.model.clone();
        m.kind = nw_train::config::ModelKind::Sequential;
        m.layer = layers;
        println!("{}", nw_train::config::model_toml(&m));
    }
    println!("{}", run.trainer.model.describe());
    match &ck {
        Some(ck) => {
            let p = ck.progress();
            println!("epoch {}, step {}, {} parameters", p.epoch, p.step, run.trainer.model.num_parameters());
        }
        None => println!("{} parameters", run.trainer.model.num_parameters()),
    }
    println!(
        "{:<22} {:>14} {:>9} {:>11} {:>11} {:>11} {:>11} {:>8}  status",
        "tensor", "shape", "count", "mean", "std", "min", "max", "zeros"
    );
    for (name, p) in run.trainer.named_parameters() {
        let data = p.value().to_vec();
        let n = data.len().max(1) as f64;
        let mean = data.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = data.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let min = data.iter().copied().fold(f32::INFINITY, f32::min);
        let max = data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let zeros = data.iter().filter(|&&v| v == 0.0).count() as f64 / n;
        let status = if run.trainer.frozen.contains(name) { "frozen" } else { "trained" };
        println!(
            "{:<22} {:>14} {:>9} {:>11.4e} {:>11.4e} {:>11.4e} {:>11.4e} {:>7.1}%  {}",
            name,
            format!("{:?}", p.shape()),
            data.len(),
            mean,
            var.sqrt(),
            min,
            max,
            zeros * 100.0,
            status
        );
    }
    Ok(())
}

fn prune(model: &Path, sparsity: f64, fine_tune: u64, out: Option<PathBuf>) -> Result<()> {
    if !(0.0..1.0).contains(&sparsity) {
        bail!(TrainError::Config(format!("--sparsity {sparsity} is outside [0, 1)")));
    }
    let (mut cfg, mut run) = session::resume_run(&checkpoint_path(model))?;
    let before = run.trainer.evaluate(&run.test, 1024)?;
    let weights: Vec<Param> = run
        .trainer
        .named_parameters()
        .iter()
        .filter(|(_, p)| p.shape().len() >= 2)
        .map(|(_, p)| p.clone())
        .collect();
    let mut pruner = Pruner::new();
    pruner.global_l1_to_sparsity(&weights, sparsity).map_err(TrainError::from)?;
    pruner.apply(&weights).map_err(TrainError::from)?;
    let pruned = run.trainer.evaluate(&run.test, 1024)?;
    run.trainer.reg.pruner = Some(pruner);
    // Fine-tune at a tenth of the run's rate, without its (finished) schedule.
    run.trainer.lr_policy = None;
    let lr = cfg.optim.lr() * 0.1;
    run.trainer.optimizer.set_lr(lr);
    cfg.optim.set_lr(lr);
    cfg.schedule = nw_train::config::ScheduleConfig::None;
    // Fine-tuning is a new phase: the original run's early stopping (which
    // may already have fired) does not carry over.
    run.trainer.early_stopping = None;
    cfg.reg.early_stopping = None;
    cfg.train.epochs = run.trainer.epoch + fine_tune;
    let out = out.unwrap_or_else(|| {
        let base = if model.is_dir() {
            model.to_path_buf()
        } else {
            model.parent().unwrap_or(Path::new(".")).to_path_buf()
        };
        PathBuf::from(format!("{}-pruned", base.display()))
    });
    let after = session::fit(&mut run, &cfg, Some(&out), &mut Display::new(cfg.train.epochs))?;
    let names: Vec<String> = run
        .trainer
        .named_parameters()
        .iter()
        .filter(|(_, p)| p.shape().len() >= 2)
        .map(|(n, _)| n.clone())
        .collect();
    let report = run.trainer.reg.pruner.as_ref().map(|p| p.report(&weights));
    let acc = |m: &Metrics| m.accuracy.map_or_else(|| format!("loss {:.4}", m.loss), |a| format!("{a:.3}"));
    println!("test accuracy before pruning: {}", acc(&before));
    println!("after pruning to {:.0}% sparsity: {}", sparsity * 100.0, acc(&pruned));
    println!("after {fine_tune} epochs of fine-tuning: {}", acc(&after));
    if let Some(r) = report {
        for (name, line) in names.iter().zip(r.to_string().lines()) {
            println!("{name:<12} {line}");
        }
        if let Some(last) = r.to_string().lines().last() {
            println!("{last}");
        }
    }
    println!("wrote {}", out.display());
    Ok(())
}

/// The MPI collective of this process (`--distributed`).
#[cfg(feature = "mpi")]
fn collective(d: &DistArgs) -> Result<Box<dyn nw_dist::Collective>> {
    let t = d.dist_timeout;
    if !(t.is_finite() && t > 0.0) {
        bail!(TrainError::Config(format!("--dist-timeout {t}: must be a positive number of seconds")));
    }
    let rank =
        nw_dist::mpi::MpiRank::init(std::time::Duration::from_secs_f64(t)).map_err(TrainError::from)?;
    Ok(Box::new(rank))
}

/// Without the `mpi` feature `--distributed` is a configuration error.
#[cfg(not(feature = "mpi"))]
fn collective(_: &DistArgs) -> Result<Box<dyn nw_dist::Collective>> {
    bail!(TrainError::Config(
        "--distributed needs an nw built with MPI: cargo build --release -p nw-cli --features mpi (OpenMPI: apt-get install openmpi-bin libopenmpi-dev libclang-dev)".into()
    ))
}

/// Trains a distributed run; rank 0 reports and writes `out`, the others stay quiet.
fn fit_distributed(
    mut d: nw_train::distributed::Distributed,
    cfg: &RunConfig,
    out: &Path,
    started: std::time::Instant,
) -> Result<()> {
    // No SIGINT flag: ranks would stop at different step boundaries. mpirun
    // ends the job on Ctrl-C; resume from the last periodic checkpoint.
    let lead = d.rank() == 0;
    if lead {
        println!(
            "nw train --distributed: {} ranks, {} micro-shards per batch, {} parameters, {} for {} epochs",
            d.size(),
            cfg.train.accumulate,
            d.run.trainer.model.num_parameters(),
            describe_optimizer(&cfg.optim),
            cfg.train.epochs
        );
    }
    let fitted = if lead {
        d.fit(cfg, Some(out), &mut Display::new(cfg.train.epochs))
    } else {
        d.fit(cfg, None, &mut session::Quiet)
    };
    let m = match fitted {
        Ok(m) => m,
        Err(e) => {
            // The other ranks cannot see this error: they would wait in their
            // next collective until --dist-timeout. Say it here and end the job
            // with the error's exit code (one rank: return it as usual).
            let e = anyhow::Error::from(e);
            if let Some(c) = d.run.trainer.sharding.collective.as_deref().filter(|c| c.size() > 1) {
                eprintln!("error: rank {}: {}; ending the MPI job", c.rank(), message(&e));
                c.abort(i32::from(exit_code(&e)));
            }
            return Err(e);
        }
    };
    if lead {
        let sent = d.run.trainer.sharding.collective.as_ref().map_or(0, |c| c.bytes_sent());
        println!(
            "wrote {} ({:.1}s, rank 0 sent {} bytes over {} steps)",
            out.display(),
            started.elapsed().as_secs_f64(),
            sent,
            d.run.trainer.step
        );
        print_test(&m);
    }
    Ok(())
}

/// A resumed run keeps the batch-norm statistics it was trained with:
/// `--sync-bn` on a run trained without it would change its arithmetic.
fn check_resume_sync_bn(path: &Path, cfg: &RunConfig, dist: &DistArgs) -> Result<()> {
    if dist.sync_bn && !cfg.train.sync_bn {
        bail!(TrainError::Config(format!(
            "{}: this run was trained without train.sync_bn; resuming it with --sync-bn would change its arithmetic (resume without the flag, or train a new run with it)",
            path.display()
        )));
    }
    Ok(())
}

fn resume(checkpoint: &Path, epochs: Option<u64>, out: Option<PathBuf>, dist: &DistArgs) -> Result<()> {
    if dist.distributed {
        // A run directory resumes from its newest checkpoint that verifies.
        let path = if checkpoint.is_dir() {
            session::newest_checkpoint(checkpoint)?.path
        } else {
            checkpoint.to_path_buf()
        };
        let started = std::time::Instant::now();
        let (mut cfg, d) = nw_train::distributed::Distributed::resume(&path, collective(dist)?)?;
        check_resume_sync_bn(&path, &cfg, dist)?;
        if let Some(e) = epochs {
            cfg.train.epochs = e;
        }
        let out = out.unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")).to_path_buf());
        if d.rank() == 0 {
            println!(
                "resuming at epoch {} (step {}) to epoch {} on {} ranks",
                d.run.trainer.epoch,
                d.run.trainer.step,
                cfg.train.epochs,
                d.size()
            );
        }
        return fit_distributed(d, &cfg, &out, started);
    }
    // A run directory resumes from its newest checkpoint that verifies.
    let (mut cfg, mut run, path) = session::resume_run_at(checkpoint)?;
    check_resume_sync_bn(&path, &cfg, dist)?;
    if let Some(e) = epochs {
        cfg.train.epochs = e;
    }
    let out = out.unwrap_or_else(|| path.parent().unwrap_or(Path::new(".")).to_path_buf());
    println!(
        "resuming {} at epoch {} (step {}) to epoch {}",
        path.display(),
        run.trainer.epoch,
        run.trainer.step,
        cfg.train.epochs
    );
    run.trainer.stop = Some(interrupt_flag());
    let m = session::fit(&mut run, &cfg, Some(&out), &mut Display::new(cfg.train.epochs))?;
    print_test(&m);
    Ok(())
}

fn lr_find(a: LrFindArgs) -> Result<()> {
    let cfg = resolve_config(&a.train)?;
    // `--out` is shared with `nw train`; its default there is the training run's directory.
    let out = if a.train.out == Path::new("runs/latest") {
        PathBuf::from("runs/lr-find")
    } else {
        a.train.out.clone()
    };
    let sweep = nw_train::lrfind::LrFindConfig {
        start_lr: a.start_lr,
        end_lr: a.end_lr,
        steps: a.steps,
        ..Default::default()
    };
    sweep.validate()?;
    let mut run = build_run(&cfg)?;
    println!(
        "nw lr-find: {} for {} steps, lr {:e} to {:e}",
        describe_optimizer(&cfg.optim),
        sweep.steps,
        sweep.start_lr,
        sweep.end_lr
    );
    let r = nw_train::lrfind::lr_find(&mut run, &sweep)?;
    nw_train::lrfind::write_lr_find(&out, &r)?;
    if let Some(why) = &r.stopped {
        println!("stopped after {} steps: {why}", r.points.len());
    }
    match r.suggestion {
        Some(lr) => println!("suggested learning rate: {lr:.3e} (steepest descent of the smoothed loss)"),
        None => println!("no suggestion: the smoothed loss did not fall over the sweep"),
    }
    println!("wrote {}", out.join("lr_find.csv").display());
    Ok(())
}

fn update(run_dir: &Path, input: &Path, lr: Option<f64>, batch: usize, out: Option<PathBuf>) -> Result<()> {
    let path = checkpoint_path(run_dir);
    let (mut cfg, mut run) = session::resume_run(&path)?;
    let text = std::fs::read_to_string(input)
        .map_err(|source| TrainError::Io { path: input.to_path_buf(), source })?;
    let rows = nw_train::update::parse_rows(&text, input, &run)?;
    let before = run.trainer.evaluate(&run.test, 1024)?;
    let uc = nw_train::update::UpdateConfig { lr, batch };
    let records = nw_train::update::online_update(&mut run, &mut cfg, &rows, &uc)?;
    let after = run.trainer.evaluate(&run.test, 1024)?;
    let out = out.unwrap_or_else(|| {
        let base = if run_dir.is_dir() {
            run_dir.to_path_buf()
        } else {
            run_dir.parent().unwrap_or(Path::new(".")).to_path_buf()
        };
        PathBuf::from(format!("{}-updated", base.display()))
    });
    nw_train::update::write_update(&out, &run, &cfg, &records)?;
    let last = records.last();
    println!(
        "{} update(s) at lr {:e}: last update moved the weights by {:.3e} (ratio {:.3e}); {:.3e} from the trained model in all",
        records.len(),
        cfg.optim.lr(),
        last.map_or(0.0, |r| r.update_norm),
        last.map_or(0.0, |r| r.update_ratio),
        last.map_or(0.0, |r| r.drift)
    );
    let acc = |m: &Metrics| m.accuracy.map_or_else(|| format!("loss {:.4}", m.loss), |a| format!("{a:.3}"));
    println!("test accuracy before: {}, after: {}", acc(&before), acc(&after));
    println!("wrote {}", out.display());
    Ok(())
}
