//! `nw lab`: the laboratory subcommands: the experiments and `nw report
//! RUN_DIR...` (the experiments and reports live in nw-lab), and `nw lab
//! branch` (nw-train's branching). Argument handling and display only.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use nw_train::branch::{parse_branches, run_branch, write_branches};
use nw_train::session::checkpoint_path;

use nw_lab::{Budget, Experiment, LabError, LabOptions};

/// `nw lab`: the subcommand group.
#[derive(Args)]
pub struct LabArgs {
    /// Which experiment.
    #[command(subcommand)]
    pub command: LabCommand,
}

/// The lab's subcommands (one variant per line).
#[derive(Subcommand)]
pub enum LabCommand {
    /// Initialisers on deep ReLU and tanh MLPs: convergence steps, per-layer scales at step 0.
    Init(ExpArgs),
    /// Learning rates on a log grid: convergence steps.
    Lr(ExpArgs),
    /// SGD momentum 0 / 0.5 / 0.9 / 0.99 / Nesterov: weight update at iteration 100.
    Momentum(ExpArgs),
    /// Full batch vs online vs mini-batches: steps, epochs, wall time to target.
    BatchSize(ExpArgs),
    /// Every optimizer at its default: steps to target.
    Optimizers(ExpArgs),
    /// Learning-rate schedules: validation accuracy.
    Schedules(ExpArgs),
    /// Regularizers: train-validation gap and weight update.
    Regularization(ExpArgs),
    /// Accuracy against sparsity: one-shot vs gradual, with/without fine-tuning.
    Pruning(ExpArgs),
    /// ReLU vs sigmoid vs tanh in a CNN on images.
    Activation(ExpArgs),
    /// RNN vs LSTM vs GRU on image rows and the adding problem, with/without clipping.
    Rnn(ExpArgs),
    /// Backprop vs genetic algorithm vs particle swarm: evaluations and time to target.
    Algorithms(ExpArgs),
    /// Classifier vs autoencoder vs GAN (samples as an image grid).
    Unsupervised(ExpArgs),
    /// Online updates on a shifted stream: adaptation against forgetting.
    Online(ExpArgs),
    /// Every experiment, and one index.html with all of them.
    All(ExpArgs),
    /// Continue a checkpointed run N steps once per optimizer on the same batches, and compare.
    Branch(BranchArgs),
}

/// Options of every lab experiment.
#[derive(Args, Clone)]
pub struct ExpArgs {
    /// Seconds per experiment (what the tests run).
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// The larger settings.
    #[arg(long)]
    pub full: bool,
    /// Seeds 0..N (default: 2 quick, 3 default, 5 full).
    #[arg(long)]
    pub seeds: Option<usize>,
    /// Output directory (each experiment writes <out>/<name>/, and <out>/index.html).
    #[arg(long, default_value = "lab")]
    pub out: PathBuf,
}

/// `nw report`'s options.
#[derive(Args)]
pub struct ReportArgs {
    /// Run directories written by `nw train` (each with metrics.csv, monitor.jsonl).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output directory for index.html and its plots.
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
}

/// A lab error as the binary reports it: configuration errors exit 2, as elsewhere.
fn lift(e: LabError) -> anyhow::Error {
    match e {
        LabError::Train(t) => t.into(),
        LabError::Config(s) => nw_train::TrainError::Config(s).into(),
        other => other.into(),
    }
}

/// Runs `nw lab ...`.
pub fn lab(a: LabArgs) -> Result<()> {
    let (which, args) = match a.command {
        LabCommand::Init(x) => (Some(Experiment::Init), x),
        LabCommand::Lr(x) => (Some(Experiment::Lr), x),
        LabCommand::Momentum(x) => (Some(Experiment::Momentum), x),
        LabCommand::BatchSize(x) => (Some(Experiment::BatchSize), x),
        LabCommand::Optimizers(x) => (Some(Experiment::Optimizers), x),
        LabCommand::Schedules(x) => (Some(Experiment::Schedules), x),
        LabCommand::Regularization(x) => (Some(Experiment::Regularization), x),
        LabCommand::Pruning(x) => (Some(Experiment::Pruning), x),
        LabCommand::Activation(x) => (Some(Experiment::Activation), x),
        LabCommand::Rnn(x) => (Some(Experiment::Rnn), x),
        LabCommand::Algorithms(x) => (Some(Experiment::Algorithms), x),
        LabCommand::Unsupervised(x) => (Some(Experiment::Unsupervised), x),
        LabCommand::Online(x) => (Some(Experiment::Online), x),
        LabCommand::All(x) => (None, x),
        LabCommand::Branch(a) => return branch(a),
    };
    let budget = if args.quick {
        Budget::Quick
    } else if args.full {
        Budget::Full
    } else {
        Budget::Default
    };
    if args.seeds == Some(0) {
        return Err(lift(LabError::Config("--seeds must be at least 1".into())));
    }
    let opts = LabOptions { budget, seeds: args.seeds, out: args.out };
    let list: Vec<Experiment> = which.into_iter().collect();
    let started = std::time::Instant::now();
    let page = nw_lab::run_all(&opts, &list, &mut |r| {
        println!("## {}\n\n{}", r.title, r.claims.markdown());
        for c in &r.conclusions {
            println!("- {c}");
        }
        println!("\n({} written to {})\n", r.name, r.dir.display());
        eprintln!("{}: done at {:.0} s", r.name, started.elapsed().as_secs_f64());
    })
    .map_err(lift)?;
    println!("report: {}", page.display());
    Ok(())
}

/// Runs `nw report RUN_DIR...`.
pub fn report(a: ReportArgs) -> Result<()> {
    let page = nw_lab::runs::report(&a.runs, &a.out).map_err(lift)?;
    println!("report: {}", page.display());
    Ok(())
}

/// Options of `nw lab branch`.
#[derive(Args)]
pub struct BranchArgs {
    /// The checkpoint to branch from (or its run directory).
    pub checkpoint: PathBuf,
    /// Optimizer steps per branch.
    #[arg(long, default_value_t = 100)]
    pub steps: u64,
    /// The rules, e.g. sgd,momentum,adam,lion (`original`, or the run's own
    /// optimizer's name without --lr, continues the run itself).
    #[arg(long, value_delimiter = ',', default_value = "original,sgd,momentum,adam,lion")]
    pub optimizers: Vec<String>,
    /// Base learning rate of every non-original branch (default: each rule's own default).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Output directory (default: <checkpoint's directory>/branches).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn branch(a: BranchArgs) -> Result<()> {
    let path = checkpoint_path(&a.checkpoint);
    let (cfg, _) = nw_train::session::resume_run(&path)?;
    let branches = parse_branches(&a.optimizers, a.lr, &cfg.optim)?;
    let out = a.out.unwrap_or_else(|| path.parent().unwrap_or(std::path::Path::new(".")).join("branches"));
    let mut runs = Vec::new();
    for b in &branches {
        let r = run_branch(&path, b, a.steps)?;
        let last = r.points.last().map_or(f32::NAN, |p| p.loss);
        println!(
            "{:<28} {} steps from step {}: last batch loss {last:.4}, moved {:.4}",
            r.label,
            r.points.len(),
            r.start_step,
            r.distance
        );
        runs.push(r);
    }
    write_branches(&out, &path, &runs)?;
    println!("wrote {}", out.join("report.md").display());
    Ok(())
}
