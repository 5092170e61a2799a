//! `nw lab`: the laboratory subcommands (argument handling and display only).
//!
//! Each experiment is one variant of [`LabCommand`] with its own argument
//! struct and handler; add new ones next to `Branch`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use nw_train::branch::{parse_branches, run_branch, write_branches};
use nw_train::session::checkpoint_path;

/// The `nw lab` subcommands.
#[derive(Subcommand)]
pub enum LabCommand {
    /// Continue a checkpointed run N steps once per optimizer on the same batches, and compare.
    Branch(BranchArgs),
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

/// Runs a `nw lab` subcommand.
pub fn run(cmd: LabCommand) -> Result<()> {
    match cmd {
        LabCommand::Branch(a) => branch(a),
    }
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
