//! A whole run on disk: train (or continue) to the configured number of
//! epochs, writing checkpoints, the model, metrics, the monitor log and plots
//! into an output directory. Used by `nw train` and `nw resume`.

use std::path::{Path, PathBuf};

use nw_nn::state::to_safetensors;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::checkpoint::{Checkpoint, CheckpointError, write_atomic};
use crate::config::{Run, RunConfig, build_run};
use crate::error::{Result, TrainError};
use crate::metrics::Metrics;
use crate::report;
use crate::runlog::RunLog;
use crate::trainer::EpochRecord;

/// File names inside a run's output directory.
pub mod files {
    /// Model weights (PyTorch state_dict names); the averaged weights when
    /// the run averages them (`train.ema`, `train.swa_start`).
    pub const MODEL: &str = "model.safetensors";
    /// The trained (not averaged) weights, written only by runs that
    /// average weights.
    pub const MODEL_RAW: &str = "model-raw.safetensors";
    /// The newest whole training state (periodic checkpoints are also kept as
    /// `checkpoint-epoch<N>.nwck` and `checkpoint-step<N>.nwck`, the last
    /// `train.keep_checkpoints` of them).
    pub const CHECKPOINT: &str = "checkpoint.nwck";
    /// One line per epoch (results only: reproducible bytes).
    pub const METRICS: &str = "metrics.csv";
    /// Wall time per epoch.
    pub const TIMING: &str = "timing.csv";
    /// The weight monitor's records.
    pub const MONITOR: &str = "monitor.jsonl";
    /// Spectral summaries of the weight matrices at epoch ends
    /// (`train.monitor_spectral`).
    pub const SPECTRAL: &str = "spectral.jsonl";
    /// The resolved configuration.
    pub const CONFIG: &str = "config.toml";
    /// The lock file a run holds (flock) while it writes into the directory.
    pub const LOCK: &str = "nw.lock";

    /// Whether `name` is a checkpoint file of a run directory
    /// (`checkpoint.nwck` or a periodic `checkpoint-*.nwck`).
    pub fn is_checkpoint(name: &str) -> bool {
        name == CHECKPOINT || (name.starts_with("checkpoint-") && name.ends_with(".nwck"))
    }
}

/// Exclusive use of an output directory: an advisory lock (`flock(2)`, through
/// [`std::fs::File::try_lock`]) on its [`files::LOCK`] file, held while this
/// value lives. The operating system releases it when the process ends, however
/// it ends, so a killed run never leaves a stale lock; the file keeps the
/// holder's process id for the message a second run prints.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    /// Takes the lock of `dir` (creating the directory), or fails with
    /// [`TrainError::Locked`] when another run holds it. Temporary files that
    /// a killed writer left in `dir` are removed once the lock is held.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        use std::io::{Read, Seek, Write};
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TrainError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(files::LOCK);
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(&path))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = f.read_to_string(&mut text);
                return Err(TrainError::Locked { dir: dir.to_path_buf(), holder: text.trim().parse().ok() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        f.set_len(0).map_err(io(&path))?;
        f.rewind().map_err(io(&path))?;
        write!(f, "{}", std::process::id()).map_err(io(&path))?;
        for entry in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
            if entry.file_name().to_str().is_some_and(crate::checkpoint::is_temp_name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(DirLock { _file: f })
    }
}

/// The checkpoint files of a run directory, with the newest valid one.
#[derive(Debug)]
pub struct Found {
    /// The newest checkpoint that verifies (by step, then epoch).
    pub path: PathBuf,
    /// Its content.
    pub checkpoint: Checkpoint,
    /// Files that did not verify, with why (each also logged as a warning).
    pub skipped: Vec<(PathBuf, CheckpointError)>,
}

/// The checkpoint files in `dir`, by name.
fn checkpoint_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|source| TrainError::Io { path: dir.to_path_buf(), source })?;
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(files::is_checkpoint))
        .map(|e| e.path())
        .collect();
    v.sort();
    Ok(v)
}

/// The newest checkpoint in run directory `dir` that verifies: every
/// checkpoint file is read and checked; the one with the highest step (then
/// epoch; `checkpoint.nwck` on a tie) wins. A file that does not verify (a
/// corrupted newest checkpoint, say) is reported with a warning naming it,
/// and an older one is used.
pub fn newest_checkpoint(dir: &Path) -> Result<Found> {
    let mut best: Option<(u64, u64, bool, PathBuf, Checkpoint)> = None;
    let mut skipped = Vec::new();
    for path in checkpoint_files(dir)? {
        match Checkpoint::load(&path) {
            Ok(ck) => {
                let p = ck.progress();
                let main = path.file_name().is_some_and(|n| n == files::CHECKPOINT);
                let key = (p.step, p.epoch, main);
                if best.as_ref().is_none_or(|b| key > (b.0, b.1, b.2)) {
                    best = Some((p.step, p.epoch, main, path, ck));
                }
            }
            Err(e) => {
                tracing::warn!("skipping checkpoint {}: {e}", path.display());
                skipped.push((path, e));
            }
        }
    }
    match best {
        Some((_, _, _, path, checkpoint)) => Ok(Found { path, checkpoint, skipped }),
        None => Err(match skipped.pop() {
            Some((_, e)) => e.into(),
            None => CheckpointError::Io {
                path: dir.join(files::CHECKPOINT),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no checkpoint in this directory"),
            }
            .into(),
        }),
    }
}

/// Writes a run's checkpoints: each one atomically to `checkpoint.nwck`, the
/// periodic ones also under their own names, keeping the newest
/// `keep` periodic files (0: all).
struct Store {
    dir: PathBuf,
    keep: usize,
    /// Periodic files with the step they hold (`None`: does not verify), oldest first.
    periodic: Vec<(Option<(u64, u64)>, PathBuf)>,
}

impl Store {
    fn open(dir: &Path, keep: u64) -> Result<Store> {
        let mut periodic = Vec::new();
        for path in checkpoint_files(dir)? {
            if path.file_name().is_some_and(|n| n != files::CHECKPOINT) {
                let at = Checkpoint::load(&path).ok().map(|c| {
                    let p = c.progress();
                    (p.step, p.epoch)
                });
                periodic.push((at, path));
            }
        }
        periodic.sort();
        Ok(Store { dir: dir.to_path_buf(), keep: usize::try_from(keep).unwrap_or(usize::MAX), periodic })
    }

    /// Writes `ck` to `checkpoint.nwck`, and to `name` when given (then
    /// deletes the oldest periodic files beyond `keep`).
    fn write(&mut self, ck: &Checkpoint, name: Option<String>) -> Result<()> {
        let bytes = ck.to_bytes()?;
        if let Some(name) = name {
            let path = self.dir.join(name);
            write_atomic(&path, &bytes)?;
            let p = ck.progress();
            self.periodic.retain(|(_, q)| *q != path);
            self.periodic.push((Some((p.step, p.epoch)), path));
            self.periodic.sort();
            if self.keep > 0 && self.periodic.len() > self.keep {
                let old: Vec<_> = self.periodic.drain(..self.periodic.len() - self.keep).collect();
                for (_, path) in old {
                    std::fs::remove_file(&path).map_err(|source| TrainError::Io { path, source })?;
                }
            }
        }
        write_atomic(&self.dir.join(files::CHECKPOINT), &bytes)?;
        Ok(())
    }
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
/// `path` is a checkpoint file, or a run directory: then its newest valid
/// checkpoint ([`newest_checkpoint`]).
pub fn resume_run(path: &Path) -> Result<(RunConfig, Run)> {
    resume_run_at(path).map(|(cfg, run, _)| (cfg, run))
}

/// [`resume_run`], also returning the checkpoint file used.
pub fn resume_run_at(path: &Path) -> Result<(RunConfig, Run, PathBuf)> {
    let (path, ck) = if path.is_dir() {
        let found = newest_checkpoint(path)?;
        (found.path, found.checkpoint)
    } else {
        (path.to_path_buf(), Checkpoint::load(path)?)
    };
    let text = ck.config_toml().ok_or_else(|| {
        TrainError::Mismatch(format!("{}: the checkpoint has no configuration", path.display()))
    })?;
    let cfg = RunConfig::from_toml(text)
        .map_err(|e| TrainError::Mismatch(format!("{}: the checkpoint's {e}", path.display())))?;
    let mut run = build_run(&cfg)?;
    run.trainer.restore(&ck)?;
    run.trainer.logs_dir = path
        .parent()
        .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
        .map(Path::to_path_buf);
    Ok((cfg, run, path))
}

/// Trains `run` from its current epoch to `cfg.train.epochs` (or until early
/// stopping), writing into `out` when given; returns the test metrics.
///
/// With `out`, the run holds `out`'s lock ([`DirLock`]) throughout; the
/// model, configuration, checkpoints and plots are written atomically
/// (temporary file, fsync, rename, directory fsync): a crash at any moment
/// leaves each either as it was or complete. The epoch records and monitor
/// records are appended to `metrics.csv`, `timing.csv` and `monitor.jsonl`
/// as the run goes ([`crate::runlog`]) and leave memory: after `fit`,
/// `run.trainer.history` and the monitor's records are empty; each
/// checkpoint holds where those files stood, and a resumed run cuts them
/// back to it. Checkpoints go to `checkpoint.nwck` at the end, at
/// an interruption, and every `train.checkpoint_every` epochs and
/// `train.checkpoint_every_steps` steps, those also as
/// `checkpoint-epoch<N>.nwck` / `checkpoint-step<N>.nwck` (the newest
/// `train.keep_checkpoints` kept).
///
/// With `train.detect_anomaly`, anomaly detection is on for the run (on the
/// calling thread) and a divergence names the first operation that produced
/// a non-finite value.
///
/// Step checkpoints use the trainer's stop flag: `fit` installs its own
/// flag for the run, raises it when a checkpoint is due (or when the flag the
/// caller set in `run.trainer.stop` is raised), and continues the epoch after
/// writing; the caller's flag is put back on return.
pub fn fit(
    run: &mut Run,
    cfg: &RunConfig,
    out: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<Metrics> {
    let _lock = out.map(DirLock::acquire).transpose()?;
    let user = run.trainer.stop.take();
    let pause = Arc::new(AtomicBool::new(false));
    run.trainer.stop = Some(pause.clone());
    let anomaly = nw_autograd::set_detect_anomaly(cfg.train.detect_anomaly);
    let result = fit_locked(run, cfg, out, progress, user.as_deref(), &pause);
    nw_autograd::set_detect_anomaly(anomaly);
    run.trainer.stop = user;
    result
}

fn fit_locked(
    run: &mut Run,
    cfg: &RunConfig,
    out: Option<&Path>,
    progress: &mut dyn Progress,
    user: Option<&AtomicBool>,
    pause: &AtomicBool,
) -> Result<Metrics> {
    let config_toml = cfg.to_toml();
    let (mut store, mut log) = match out {
        Some(dir) => {
            write_atomic(&dir.join(files::CONFIG), config_toml.as_bytes())?;
            let store = Store::open(dir, cfg.train.keep_checkpoints)?;
            let t = &run.trainer;
            let log = RunLog::open(dir, t.logs, t.logs_dir.as_deref(), cfg.train.monitor_spectral)?;
            (Some(store), Some(log))
        }
        None => (None, None),
    };
    // The logs first (fsynced), then the checkpoint that points at them.
    let mut write_checkpoint =
        |run: &mut Run, log: &mut Option<RunLog>, name: Option<String>| -> Result<()> {
            if let Some(log) = log {
                log.flush(&mut run.trainer, true)?;
            }
            if let Some(store) = &mut store {
                store.write(&run.trainer.checkpoint(&config_toml)?, name)?;
            }
            Ok(())
        };
    let interrupted = || user.is_some_and(|f| f.load(Ordering::SeqCst));
    let every_steps = if out.is_some() { cfg.train.checkpoint_every_steps } else { 0 };
    let mut epoch_started = false;
    while run.trainer.epoch < cfg.train.epochs {
        // A run resumed from the checkpoint of the epoch that triggered early
        // stopping ends there, as the original run did.
        if run.trainer.early_stopping.as_ref().is_some_and(|e| e.should_stop()) {
            break;
        }
        if !epoch_started {
            progress.epoch_start(run.trainer.epoch + 1, run.loader.batches_per_epoch());
            epoch_started = true;
        }
        if interrupted() {
            pause.store(true, Ordering::SeqCst);
        }
        let step0 = run.trainer.step;
        let record = {
            let Run { trainer, loader, validation, .. } = &mut *run;
            let mut done = 0u64;
            trainer.train_epoch(loader, Some(validation), &mut |i, _, l| {
                progress.batch(i, l);
                done += 1;
                let due = every_steps > 0 && (step0 + done).is_multiple_of(every_steps);
                if due || interrupted() {
                    pause.store(true, Ordering::SeqCst);
                }
            })
        };
        let record = match record {
            Err(TrainError::Interrupted { step, .. }) => {
                pause.store(false, Ordering::SeqCst);
                if interrupted() {
                    // Stopped at a step boundary: save everything, including
                    // the position inside the epoch, and say where.
                    write_checkpoint(run, &mut log, None)?;
                    let checkpoint = out.map(|d| d.join(files::CHECKPOINT)).unwrap_or_default();
                    return Err(TrainError::Interrupted { step, checkpoint });
                }
                // A step checkpoint is due: write it and continue the epoch.
                write_checkpoint(run, &mut log, Some(format!("checkpoint-step{step}.nwck")))?;
                continue;
            }
            Err(e) => {
                // What the run recorded up to the failure (a divergence,
                // say) stays readable in the logs.
                if let Some(log) = &mut log {
                    let _ = log.flush(&mut run.trainer, true);
                }
                return Err(e);
            }
            Ok(r) => r,
        };
        epoch_started = false;
        progress.epoch_end(&record);
        // Decide on early stopping before the checkpoint, so that the
        // checkpoint holds the decision (and the restored best weights).
        let stop = run.trainer.should_stop()?;
        if let Some(log) = &mut log {
            log.flush(&mut run.trainer, false)?;
        } else if run.trainer.discard_logs {
            run.trainer.history.clear();
            drop((run.trainer.monitor.take_records(), run.trainer.monitor.take_spectra()));
        }
        let every = cfg.train.checkpoint_every;
        let step_due = pause.load(Ordering::SeqCst) && !interrupted();
        if every > 0 && run.trainer.epoch.is_multiple_of(every) {
            write_checkpoint(run, &mut log, Some(format!("checkpoint-epoch{}.nwck", run.trainer.epoch)))?;
        } else if step_due {
            // The epoch's last step was a step checkpoint's.
            write_checkpoint(run, &mut log, Some(format!("checkpoint-step{}.nwck", run.trainer.step)))?;
        }
        if step_due {
            pause.store(false, Ordering::SeqCst);
        }
        if stop {
            tracing::info!("early stopping after epoch {}", run.trainer.epoch);
            break;
        }
    }
    let Run { trainer, loader, test, .. } = &mut *run;
    let (test, averaged) = trainer.with_averaged(Some(loader), |t| {
        let m = t.evaluate(test, 1024)?;
        let bytes = if out.is_some() { Some(to_safetensors(&t.model)?) } else { None };
        Ok((m, bytes))
    })?;
    if let Some(dir) = out {
        write_checkpoint(run, &mut log, None)?;
        let raw = to_safetensors(&run.trainer.model)?;
        if run.trainer.average.is_some() {
            write_atomic(&dir.join(files::MODEL_RAW), &raw)?;
        }
        write_atomic(&dir.join(files::MODEL), averaged.as_deref().unwrap_or(&raw))?;
        drop(log);
        report::plot_run_files(dir)?;
        // The plots' bitmaps and the final evaluation's buffers are not
        // needed again: give the pages back (training keeps freed memory
        // resident on purpose, nw_tensor::malloc).
        nw_tensor::malloc::release_free_memory();
    }
    Ok(test)
}

/// The checkpoint path for a `--model` argument: a run directory or the file itself.
pub fn checkpoint_path(model: &Path) -> PathBuf {
    if model.is_dir() { model.join(files::CHECKPOINT) } else { model.to_path_buf() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_refuses_a_second_holder_until_dropped() {
        let dir = std::env::temp_dir().join(format!("nw-lock-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A temporary file a killed writer left behind is removed on locking.
        let stray = dir.join(".checkpoint.nwck.tmp-999999");
        std::fs::write(&stray, b"torn").unwrap();
        let first = DirLock::acquire(&dir).unwrap();
        assert!(!stray.exists());
        let e = DirLock::acquire(&dir).unwrap_err();
        assert!(matches!(e, TrainError::Locked { holder: Some(p), .. } if p == std::process::id()), "{e}");
        assert_eq!(e.exit_code(), 7);
        assert!(e.to_string().contains("in use by another run"), "{e}");
        drop(first);
        DirLock::acquire(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_newest_valid_checkpoint_wins_and_damaged_ones_are_skipped() {
        let dir = std::env::temp_dir().join(format!("nw-newest-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let at = |step| {
            let mut ck = Checkpoint::default();
            ck.insert(
                "progress",
                crate::Section::Progress(crate::checkpoint::Progress { epoch: 0, step, partial: None }),
            );
            ck
        };
        let mut store = Store::open(&dir, 2).unwrap();
        for s in 1..=4 {
            store.write(&at(s), Some(format!("checkpoint-step{s}.nwck"))).unwrap();
        }
        // keep 2: steps 3 and 4, and checkpoint.nwck
        let names: Vec<_> = checkpoint_files(&dir).unwrap();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(newest_checkpoint(&dir).unwrap().checkpoint.progress().step, 4);
        for f in ["checkpoint-step4.nwck", files::CHECKPOINT] {
            std::fs::write(dir.join(f), b"damaged").unwrap();
        }
        let found = newest_checkpoint(&dir).unwrap();
        assert_eq!(found.path, dir.join("checkpoint-step3.nwck"));
        assert_eq!(found.skipped.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
