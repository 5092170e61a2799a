//! Branching: what would another update rule have done from here?
//!
//! [`run_branch`] restores the exact state a checkpoint holds (weights,
//! buffers, optimizer and schedule state, random streams, data order and the
//! position inside the epoch) and continues it for a number of optimizer
//! steps through the ordinary training loop, so every branch sees the same
//! batches in the same order. [`Alternative::Original`] keeps the run's own
//! optimizer and its state: it reproduces the original run bit for bit.
//! [`Alternative::Optimizer`] replaces the optimizer with a fresh one of
//! another rule (or other hyper-parameters); the run's schedule keeps its
//! shape and position, rescaled to the new rule's base rate (a plateau
//! schedule becomes a constant rate at the same fraction of the base). Every
//! difference between branches is therefore caused by the rule alone.
//!
//! The weight monitor records every step of a branch; [`write_branches`]
//! writes each branch's curve (`curve.csv`) and statistics (`monitor.jsonl`)
//! and one comparison (`report.md`, `loss.svg/png`, `update_ratio.svg/png`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nw_optim::OptimizerConfig;
use nw_optim::schedule::Scheduler;
use nw_tensor::Tensor;

use crate::config::{Run, RunConfig, build_optimizer};
use crate::error::{Result, TrainError};
use crate::monitor::{MonitorConfig, TensorStats, WeightMonitor};
use crate::report::{self, Series};
use crate::session::resume_run;
use crate::trainer::LrPolicy;

/// What a branch continues with.
#[derive(Debug, Clone, PartialEq)]
pub enum Alternative {
    /// The run's own optimizer with its state: the original run, continued.
    Original,
    /// A fresh optimizer of this configuration.
    Optimizer(OptimizerConfig),
}

/// One branch to run: a label and its rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    /// Name in reports and the branch's directory name.
    pub label: String,
    /// The rule.
    pub alternative: Alternative,
}

/// The branches named by `names` (registry names, plus `momentum` for SGD
/// with momentum 0.9 and `original` for the run's own settings). A name equal
/// to the original optimizer's, without `lr`, is the original run continued;
/// otherwise the rule starts fresh at `lr` (default: its own torch default).
pub fn parse_branches(names: &[String], lr: Option<f64>, original: &OptimizerConfig) -> Result<Vec<Branch>> {
    let mut out = Vec::new();
    for raw in names {
        let name = raw.trim();
        if name.is_empty() {
            continue;
        }
        if name == "original" || (name == original.name() && lr.is_none()) {
            out.push(Branch {
                label: format!("{} (original)", original.name()),
                alternative: Alternative::Original,
            });
            continue;
        }
        let mut c = if name == "momentum" {
            OptimizerConfig::Sgd(nw_optim::Sgd { momentum: 0.9, ..Default::default() })
        } else {
            OptimizerConfig::default_for(name).ok_or_else(|| {
                let names: Vec<&str> = nw_optim::OPTIMIZERS.iter().map(|(n, _)| *n).collect();
                TrainError::Config(format!(
                    "unknown optimizer {name:?} (one of original, momentum, {})",
                    names.join(", ")
                ))
            })?
        };
        if let Some(lr) = lr {
            c.set_lr(lr);
        }
        let label = format!("{name} (lr {:e})", c.lr());
        out.push(Branch { label, alternative: Alternative::Optimizer(c) });
    }
    if out.is_empty() {
        return Err(TrainError::Config("no branches: name at least one optimizer".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for b in &out {
        if !seen.insert(b.label.clone()) {
            return Err(TrainError::Config(format!("branch {:?} is named twice", b.label)));
        }
    }
    Ok(out)
}

/// One step of a branch.
#[derive(Debug, Clone, PartialEq)]
pub struct StepPoint {
    /// Optimizer steps of the run after this step.
    pub step: u64,
    /// The batch loss (before the update).
    pub loss: f32,
    /// The learning rate the step used.
    pub lr: f64,
    /// `||applied update||_2` over all parameters.
    pub update_norm: f64,
    /// `update_norm / ||w||_2` over all parameters.
    pub update_ratio: f64,
    /// Mean `|applied update|` over all weights.
    pub mean_abs_update: f64,
}

/// What one branch did.
#[derive(Debug, Clone)]
pub struct BranchRun {
    /// The branch.
    pub label: String,
    /// The optimizer's name.
    pub optimizer: String,
    /// Step of the run at the branch point.
    pub start_step: u64,
    /// One point per step.
    pub points: Vec<StepPoint>,
    /// The monitor's per-tensor record of every step.
    pub records: Vec<TensorStats>,
    /// The parameters at the end, by name.
    pub params: Vec<(String, Tensor)>,
    /// `||w_end - w_start||_2` over all parameters.
    pub distance: f64,
}

/// Restores the run `checkpoint` holds, gives it the alternative's rule and
/// continues it `steps` optimizer steps (fewer if early stopping ends it).
pub fn run_branch(checkpoint: &Path, branch: &Branch, steps: u64) -> Result<BranchRun> {
    let (cfg, mut run) = resume_run(checkpoint)?;
    if let Alternative::Optimizer(alt) = &branch.alternative {
        swap_optimizer(&mut run, &cfg, alt)?;
    }
    let start: Vec<Tensor> = run.trainer.named_parameters().iter().map(|(_, p)| p.value()).collect();
    let start_step = run.trainer.step;
    // Record every step; the monitor only reads, so the run is unchanged.
    let progress = run.trainer.monitor.progress().clone();
    let mc = MonitorConfig { every_steps: 1, ..run.trainer.monitor.config().clone() };
    run.trainer.monitor = WeightMonitor::new(mc);
    run.trainer.monitor.set_progress(progress);
    let stop = Arc::new(AtomicBool::new(false));
    run.trainer.stop = Some(stop.clone());
    let mut losses: Vec<f32> = Vec::new();
    while (losses.len() as u64) < steps {
        // As `session::fit`: a run whose early stopping has fired ends here.
        if run.trainer.early_stopping.as_ref().is_some_and(|e| e.should_stop()) {
            break;
        }
        let remaining = steps - losses.len() as u64;
        let mut taken = 0u64;
        let result = {
            let Run { trainer, loader, validation, .. } = &mut run;
            trainer.train_epoch(loader, Some(validation), &mut |_, _, l| {
                losses.push(l);
                taken += 1;
                if taken >= remaining {
                    stop.store(true, Ordering::SeqCst);
                }
            })
        };
        match result {
            Ok(_) => {
                if run.trainer.should_stop()? {
                    break;
                }
            }
            Err(TrainError::Interrupted { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    let records = run.trainer.monitor.records().to_vec();
    let sizes: std::collections::HashMap<&str, usize> = run
        .trainer
        .named_parameters()
        .iter()
        .map(|(n, p)| (n.as_str(), p.shape().iter().product()))
        .collect();
    let points = losses
        .iter()
        .enumerate()
        .map(|(i, &loss)| {
            let step = start_step + i as u64 + 1;
            step_point(step, loss, records.iter().filter(|r| r.step == step), &sizes)
        })
        .collect();
    let params: Vec<(String, Tensor)> =
        run.trainer.named_parameters().iter().map(|(n, p)| (n.clone(), p.value())).collect();
    let mut d2 = 0.0f64;
    for ((_, end), begin) in params.iter().zip(&start) {
        for (a, b) in end.to_vec().iter().zip(begin.to_vec()) {
            d2 += (*a as f64 - b as f64).powi(2);
        }
    }
    Ok(BranchRun {
        label: branch.label.clone(),
        optimizer: run.trainer.optimizer.name().to_string(),
        start_step,
        points,
        records,
        params,
        distance: d2.sqrt(),
    })
}

fn step_point<'a>(
    step: u64,
    loss: f32,
    recs: impl Iterator<Item = &'a TensorStats>,
    sizes: &std::collections::HashMap<&str, usize>,
) -> StepPoint {
    let (mut u2, mut w2, mut abs, mut n, mut lr) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, f64::NAN);
    for r in recs {
        u2 += r.update_norm.powi(2);
        w2 += r.weight_norm.powi(2);
        let count = sizes.get(r.name.as_str()).copied().unwrap_or(0) as f64;
        abs += r.mean_abs_update * count;
        n += count;
        lr = r.lr;
    }
    StepPoint {
        step,
        loss,
        lr,
        update_norm: u2.sqrt(),
        update_ratio: if w2 > 0.0 { u2.sqrt() / w2.sqrt() } else { 0.0 },
        mean_abs_update: if n > 0.0 { abs / n } else { 0.0 },
    }
}

/// Replaces the run's optimizer with a fresh `alt`, keeping the schedule's
/// shape and position at `alt`'s base rate.
fn swap_optimizer(run: &mut Run, cfg: &RunConfig, alt: &OptimizerConfig) -> Result<()> {
    let params: Vec<nw_autograd::Param> =
        run.trainer.named_parameters().iter().map(|(_, p)| p.clone()).collect();
    let mut opt = build_optimizer(alt, params)?;
    let base = alt.lr();
    let rebuilt = |s: &Scheduler| -> Result<Scheduler> {
        let mut n = Scheduler::new(s.schedule().clone(), base)?;
        for _ in 0..s.epoch() {
            n.step()?;
        }
        Ok(n)
    };
    run.trainer.lr_policy = match run.trainer.lr_policy.take() {
        Some(LrPolicy::PerStep(s)) => {
            let n = rebuilt(&s)?;
            opt.set_lr(n.lr());
            Some(LrPolicy::PerStep(n))
        }
        Some(LrPolicy::PerEpoch(s)) => {
            let n = rebuilt(&s)?;
            opt.set_lr(n.lr());
            Some(LrPolicy::PerEpoch(n))
        }
        Some(LrPolicy::Plateau(p)) => {
            let orig = cfg.optim.lr();
            opt.set_lr(if orig > 0.0 { base * p.lr() / orig } else { base });
            None
        }
        None => None,
    };
    run.trainer.optimizer = opt;
    Ok(())
}

fn io_err(path: &Path, source: std::io::Error) -> TrainError {
    TrainError::Io { path: path.to_path_buf(), source }
}

/// A directory name for a branch label.
fn slug(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect();
    s.split('_').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("_")
}

/// Writes every branch into `out`: `<branch>/curve.csv`
/// (`step,loss,lr,update_norm,update_ratio,mean_abs_update`),
/// `<branch>/monitor.jsonl` (the monitor's per-tensor records of every step),
/// and the comparison `report.md` with the
/// plots `loss` and `update_ratio` (SVG and PNG).
pub fn write_branches(out: &Path, checkpoint: &Path, runs: &[BranchRun]) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    for r in runs {
        let dir = out.join(slug(&r.label));
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let mut csv = String::from("step,loss,lr,update_norm,update_ratio,mean_abs_update\n");
        for p in &r.points {
            csv += &format!(
                "{},{},{},{},{},{}\n",
                p.step, p.loss, p.lr, p.update_norm, p.update_ratio, p.mean_abs_update
            );
        }
        let path = dir.join("curve.csv");
        std::fs::write(&path, csv).map_err(|e| io_err(&path, e))?;
        report::write_monitor_jsonl(&dir.join("monitor.jsonl"), &r.records)?;
    }
    let series = |f: &dyn Fn(&StepPoint) -> f64| -> Vec<Series> {
        runs.iter()
            .map(|r| (r.label.clone(), r.points.iter().map(|p| (p.step as f64, f(p))).collect()))
            .collect()
    };
    report::plot(&out.join("loss"), "batch loss per branch", "step", &series(&|p| p.loss as f64), false)?;
    report::plot(
        &out.join("update_ratio"),
        "applied update / weight norm per branch",
        "step",
        &series(&|p| p.update_ratio),
        true,
    )?;
    let start = runs.first().map_or(0, |r| r.start_step);
    let steps = runs.iter().map(|r| r.points.len()).max().unwrap_or(0);
    let mut md = format!(
        "# Branches from `{}`\n\nEach branch restores the run at step {start} (weights, optimizer and schedule \
         state, random streams, data order, position in the epoch) and continues it {steps} optimizer steps \
         on the same batches; only the update rule differs. A branch marked (original) keeps the run's own \
         optimizer and state and reproduces the original run bit for bit. Other rules start with fresh \
         state; the run's schedule keeps its shape and position, scaled to the rule's base rate.\n\n\
         Definitions: loss = mean batch loss before the update; update ratio = ||w_after - w_before||_2 / \
         ||w_after||_2 over all parameters, from the applied update; distance = ||w_end - w_start||_2.\n\n\
         | branch | optimizer | steps | first loss | last loss | mean loss, last 10% | mean update ratio | distance |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        checkpoint.display()
    );
    for r in runs {
        let n = r.points.len();
        let tail = &r.points[n - (n / 10).max(1).min(n)..];
        let mean = |v: &[f64]| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
        let tail_loss = mean(&tail.iter().map(|p| p.loss as f64).collect::<Vec<_>>());
        let ratio = mean(&r.points.iter().map(|p| p.update_ratio).collect::<Vec<_>>());
        let first = r.points.first().map_or(f64::NAN, |p| p.loss as f64);
        let last = r.points.last().map_or(f64::NAN, |p| p.loss as f64);
        md += &format!(
            "| {} | {} | {n} | {first:.4} | {last:.4} | {tail_loss:.4} | {ratio:.3e} | {:.4} |\n",
            r.label, r.optimizer, r.distance
        );
    }
    md += "\n![loss](loss.svg)\n\n![update ratio](update_ratio.svg)\n\nPer branch: `curve.csv` \
           (step,loss,lr,update_norm,update_ratio,mean_abs_update) and `monitor.jsonl` (per tensor, every step).\n";
    let path = out.join("report.md");
    std::fs::write(&path, md).map_err(|e| io_err(&path, e))
}
