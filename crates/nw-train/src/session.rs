//! A whole run on disk: train (or continue) to the configured number of
//! epochs, writing checkpoints, the model, metrics, the monitor log and plots
//! into an output directory. Used by `nw train` and `nw resume`.

use std::path::{Path, PathBuf};

use nw_nn::state::save_safetensors;

use crate::checkpoint::Checkpoint;
use crate::config::{Run, RunConfig, build_run};
use crate::error::{Result, TrainError};
use crate::metrics::Metrics;
use crate::report;
use crate::trainer::EpochRecord;

/// File names inside a run's output directory.
pub mod files {
    /// Model weights (PyTorch state_dict names).
    pub const MODEL: &str = "model.safetensors";
    /// The whole training state at the end of the run (periodic checkpoints
    /// are also kept as `checkpoint-epoch<N>.nwck`).
    pub const CHECKPOINT: &str = "checkpoint.nwck";
    /// One line per epoch (results only: reproducible bytes).
    pub const METRICS: &str = "metrics.csv";
    /// Wall time per epoch.
    pub const TIMING: &str = "timing.csv";
    /// The weight monitor's records.
    pub const MONITOR: &str = "monitor.jsonl";
    /// The resolved configuration.
    pub const CONFIG: &str = "config.toml";
}

/// Callbacks a front end hooks into a run (progress display, logging).
pub trait Progress {
    /// A new epoch starts with `batches` batches.
    fn epoch_start(&mut self, _epoch: u64, _batches: usize) {}
    /// A batch finished with this loss.
    fn batch(&mut self, _index: usize, _loss: f32) {}
    /// An epoch finished.
    fn epoch_end(&mut self, _record: &EpochRecord) {}
}

/// No display.
pub struct Quiet;
impl Progress for Quiet {}

/// Rebuilds the run a checkpoint was written by and restores its state.
pub fn resume_run(path: &Path) -> Result<(RunConfig, Run)> {
    let ck = Checkpoint::load(path)?;
    let text = ck.config_toml().ok_or_else(|| {
        TrainError::Mismatch(format!("{}: the checkpoint has no configuration", path.display()))
    })?;
    let cfg = RunConfig::from_toml(text)
        .map_err(|e| TrainError::Mismatch(format!("{}: the checkpoint's {e}", path.display())))?;
    let mut run = build_run(&cfg)?;
    run.trainer.restore(&ck)?;
    Ok((cfg, run))
}

/// Trains `run` from its current epoch to `cfg.train.epochs` (or until early
/// stopping), writing into `out` when given; returns the test metrics.
pub fn fit(
    run: &mut Run,
    cfg: &RunConfig,
    out: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<Metrics> {
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(|source| TrainError::Io { path: dir.to_path_buf(), source })?;
        let p = dir.join(files::CONFIG);
        std::fs::write(&p, cfg.to_toml()).map_err(|source| TrainError::Io { path: p, source })?;
    }
    let config_toml = cfg.to_toml();
    let write_checkpoint = |run: &Run| -> Result<()> {
        if let Some(dir) = out {
            run.trainer.checkpoint(&config_toml)?.save(&dir.join(files::CHECKPOINT))?;
        }
        Ok(())
    };
    while run.trainer.epoch < cfg.train.epochs {
        // A run resumed from the checkpoint of the epoch that triggered early
        // stopping ends there, as the original run did.
        if run.trainer.early_stopping.as_ref().is_some_and(|e| e.should_stop()) {
            break;
        }
        progress.epoch_start(run.trainer.epoch + 1, run.loader.batches_per_epoch());
        let record = {
            let Run { trainer, loader, validation, .. } = &mut *run;
            trainer.train_epoch(loader, Some(validation), &mut |i, _, l| progress.batch(i, l))
        };
        let record = match record {
            Err(TrainError::Interrupted { step, .. }) => {
                // Stopped at a step boundary: save everything, including the
                // position inside the epoch, and say where.
                write_checkpoint(run)?;
                let checkpoint = out.map(|d| d.join(files::CHECKPOINT)).unwrap_or_default();
                return Err(TrainError::Interrupted { step, checkpoint });
            }
            r => r?,
        };
        progress.epoch_end(&record);
        // Decide on early stopping before the checkpoint, so that the
        // checkpoint holds the decision (and the restored best weights).
        let stop = run.trainer.should_stop()?;
        let every = cfg.train.checkpoint_every;
        if every > 0 && run.trainer.epoch.is_multiple_of(every) {
            write_checkpoint(run)?;
            if let Some(dir) = out {
                let keep = dir.join(format!("checkpoint-epoch{}.nwck", run.trainer.epoch));
                std::fs::copy(dir.join(files::CHECKPOINT), &keep)
                    .map_err(|source| TrainError::Io { path: keep.clone(), source })?;
            }
        }
        if stop {
            tracing::info!("early stopping after epoch {}", run.trainer.epoch);
            break;
        }
    }
    let test = run.trainer.evaluate(&run.test, 1024)?;
    if let Some(dir) = out {
        write_checkpoint(run)?;
        save_safetensors(&run.trainer.model, &dir.join(files::MODEL))?;
        report::write_metrics_csv(&dir.join(files::METRICS), &run.trainer.history)?;
        report::write_timing_csv(&dir.join(files::TIMING), &run.trainer.history)?;
        report::write_monitor_jsonl(&dir.join(files::MONITOR), run.trainer.monitor.records())?;
        report::plot_run(dir, &run.trainer.history, run.trainer.monitor.records())?;
    }
    Ok(test)
}

/// The checkpoint path for a `--model` argument: a run directory or the file itself.
pub fn checkpoint_path(model: &Path) -> PathBuf {
    if model.is_dir() { model.join(files::CHECKPOINT) } else { model.to_path_buf() }
}
