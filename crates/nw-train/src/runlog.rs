//! The log files a run appends to as it goes: `metrics.csv` and
//! `timing.csv` (one line per epoch), `monitor.jsonl` (one line per weight
//! monitor record) and, with `train.monitor_spectral`, `spectral.jsonl`.
//!
//! A long run does not keep its history in memory or in its checkpoints:
//! [`RunLog::flush`] moves the trainer's finished epoch records and monitor
//! records into the files, and the trainer keeps only where the files stood
//! ([`LogOffsets`], a small checkpoint section). A checkpoint is therefore the
//! same size at step 100,000 as at step 1,000, and so is the process.
//!
//! Resuming truncates each file to the length the checkpoint recorded (a
//! killed run may have appended lines after its last checkpoint), so that a
//! resumed run writes the same bytes as one that was never stopped. Before a
//! checkpoint is written the files are flushed and fsynced, so the offsets a
//! durable checkpoint holds always point at durable bytes.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use nw_train::runlog::{LogOffsets, RunLog};
//! let dir = std::env::temp_dir().join(format!("nw-runlog-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! // A fresh run: the files start with their headers.
//! let log = RunLog::open(&dir, None, None, false)?;
//! assert_eq!(log.offsets().epochs, 0);
//! assert_eq!(std::fs::read_to_string(dir.join("metrics.csv"))?, RunLog::METRICS_HEADER);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::monitor::TensorStats;
use crate::spectral::SpectralStats;
use crate::trainer::{EpochRecord, Trainer};

/// Where a run's log files stood at its last flush: their lengths in bytes
/// and how many entries each holds. Stored in checkpoints (section `logs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LogOffsets {
    /// Bytes of `metrics.csv` (header included).
    pub metrics: u64,
    /// Bytes of `timing.csv` (header included).
    pub timing: u64,
    /// Bytes of `monitor.jsonl`.
    pub monitor: u64,
    /// Bytes of `spectral.jsonl` (0 without spectral summaries).
    pub spectral: u64,
    /// Epoch lines in `metrics.csv` and `timing.csv`.
    pub epochs: u64,
    /// Records in `monitor.jsonl`.
    pub records: u64,
}

/// Which log file, for messages and paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Metrics,
    Timing,
    Monitor,
    Spectral,
}

impl Kind {
    fn file(self) -> &'static str {
        match self {
            Kind::Metrics => crate::session::files::METRICS,
            Kind::Timing => crate::session::files::TIMING,
            Kind::Monitor => crate::session::files::MONITOR,
            Kind::Spectral => crate::session::files::SPECTRAL,
        }
    }

    fn header(self) -> &'static str {
        match self {
            Kind::Metrics => RunLog::METRICS_HEADER,
            Kind::Timing => RunLog::TIMING_HEADER,
            Kind::Monitor | Kind::Spectral => "",
        }
    }

    fn offset(self, o: &LogOffsets) -> u64 {
        match self {
            Kind::Metrics => o.metrics,
            Kind::Timing => o.timing,
            Kind::Monitor => o.monitor,
            Kind::Spectral => o.spectral,
        }
    }

    fn offset_mut(self, o: &mut LogOffsets) -> &mut u64 {
        match self {
            Kind::Metrics => &mut o.metrics,
            Kind::Timing => &mut o.timing,
            Kind::Monitor => &mut o.monitor,
            Kind::Spectral => &mut o.spectral,
        }
    }
}

/// One open log file.
#[derive(Debug)]
struct LogFile {
    kind: Kind,
    path: PathBuf,
    file: File,
}

/// The open log files of a run directory (see the module docs).
#[derive(Debug)]
pub struct RunLog {
    files: Vec<LogFile>,
    offsets: LogOffsets,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { path: path.to_path_buf(), source }
}

/// Copies the first `len` bytes of `from` into `to` (created or truncated).
fn copy_prefix(from: &Path, to: &Path, len: u64) -> Result<File> {
    let mut src = File::open(from).map_err(io(from))?;
    let mut dst =
        OpenOptions::new().read(true).write(true).create(true).truncate(true).open(to).map_err(io(to))?;
    let copied = std::io::copy(&mut (&mut src).take(len), &mut dst).map_err(io(to))?;
    if copied != len {
        return Err(TrainError::Io {
            path: from.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "shorter than the checkpoint records",
            ),
        });
    }
    Ok(dst)
}

impl RunLog {
    /// The first line of `metrics.csv`.
    pub const METRICS_HEADER: &'static str = "epoch,step,lr,train_loss,train_acc,val_loss,val_acc\n";
    /// The first line of `timing.csv`.
    pub const TIMING_HEADER: &'static str = "epoch,seconds\n";

    /// Opens the log files of run directory `dir`.
    ///
    /// `at` is where the files stood at the checkpoint a run resumes from
    /// (`None`: a new run, or a checkpoint written before the logs were
    /// streamed, whose history is still in the trainer: the files start
    /// anew with their headers). Each file in `dir` is cut back to that
    /// length; when `dir` lacks it (a run resumed into another directory),
    /// its first bytes are copied from `source`, the directory of the
    /// checkpoint. A file that neither holds restarts empty (with its
    /// header) and a warning says which lines are lost: the run goes on.
    /// `spectral` opens `spectral.jsonl` too.
    pub fn open(dir: &Path, at: Option<LogOffsets>, source: Option<&Path>, spectral: bool) -> Result<RunLog> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut kinds = vec![Kind::Metrics, Kind::Timing, Kind::Monitor];
        if spectral || at.is_some_and(|o| o.spectral > 0) {
            kinds.push(Kind::Spectral);
        }
        let mut offsets = at.unwrap_or_default();
        let mut files = Vec::with_capacity(kinds.len());
        for kind in kinds {
            let path = dir.join(kind.file());
            let want = at.map_or(0, |o| kind.offset(&o));
            let file = match Self::reopen(&path, want, source.map(|s| s.join(kind.file())))? {
                Some(f) => f,
                None => {
                    if want > 0 {
                        tracing::warn!(
                            "{}: missing or shorter than the checkpoint records ({want} bytes); \
                             its lines before this point are lost and it starts again here",
                            path.display()
                        );
                    }
                    let mut f = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(&path)
                        .map_err(io(&path))?;
                    f.write_all(kind.header().as_bytes()).map_err(io(&path))?;
                    *kind.offset_mut(&mut offsets) = kind.header().len() as u64;
                    f
                }
            };
            files.push(LogFile { kind, path, file });
        }
        let mut log = RunLog { files, offsets };
        for f in &mut log.files {
            f.file.seek(SeekFrom::End(0)).map_err(io(&f.path))?;
        }
        log.sync()?;
        Ok(log)
    }

    /// `path` cut back to `want` bytes, or `want` bytes of `source` copied
    /// into it; `None` when neither holds that many (or `want` is 0).
    fn reopen(path: &Path, want: u64, source: Option<PathBuf>) -> Result<Option<File>> {
        if want == 0 {
            return Ok(None);
        }
        if let Ok(meta) = std::fs::metadata(path)
            && meta.len() >= want
        {
            let f = OpenOptions::new().read(true).write(true).open(path).map_err(io(path))?;
            f.set_len(want).map_err(io(path))?;
            return Ok(Some(f));
        }
        if let Some(src) = source
            && !same_file(&src, path)
            && std::fs::metadata(&src).is_ok_and(|m| m.len() >= want)
        {
            return copy_prefix(&src, path, want).map(Some);
        }
        Ok(None)
    }

    /// Where the files stand.
    pub fn offsets(&self) -> LogOffsets {
        self.offsets
    }

    /// Appends `text` to the file of `kind` (when open).
    fn append(&mut self, kind: Kind, text: &str) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let Some(f) = self.files.iter_mut().find(|f| f.kind == kind) else { return Ok(()) };
        f.file.write_all(text.as_bytes()).map_err(io(&f.path))?;
        *kind.offset_mut(&mut self.offsets) += text.len() as u64;
        Ok(())
    }

    /// Moves the trainer's finished epoch records, monitor records and
    /// spectral summaries into the files, and records the new offsets in
    /// `trainer.logs` (what its next checkpoint stores). With `sync` the
    /// files are also fsynced (before a checkpoint that will point at them).
    pub fn flush(&mut self, trainer: &mut Trainer, sync: bool) -> Result<()> {
        let history = std::mem::take(&mut trainer.history);
        let records = trainer.monitor.take_records();
        let spectra = trainer.monitor.take_spectra();
        let (mut metrics, mut timing) = (String::new(), String::new());
        for r in &history {
            metrics += &metrics_line(r);
            timing += &timing_line(r);
        }
        let monitor = json_lines(&records, &self.path_of(Kind::Monitor))?;
        self.append(Kind::Metrics, &metrics)?;
        self.append(Kind::Timing, &timing)?;
        self.offsets.epochs += history.len() as u64;
        self.append(Kind::Monitor, &monitor)?;
        self.offsets.records += records.len() as u64;
        let spectral = json_lines(&spectra, &self.path_of(Kind::Spectral))?;
        self.append(Kind::Spectral, &spectral)?;
        if sync {
            self.sync()?;
        }
        trainer.logs = Some(self.offsets);
        Ok(())
    }

    fn path_of(&self, kind: Kind) -> PathBuf {
        self.files.iter().find(|f| f.kind == kind).map(|f| f.path.clone()).unwrap_or_default()
    }

    /// Fsyncs every file.
    pub fn sync(&mut self) -> Result<()> {
        for f in &mut self.files {
            f.file.sync_data().map_err(io(&f.path))?;
        }
        Ok(())
    }
}

/// Whether two paths name the same file (both exist and have the same
/// device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// One `metrics.csv` line. Floats print in Rust's shortest round-trip form,
/// so the same run gives the same bytes.
pub fn metrics_line(r: &EpochRecord) -> String {
    let opt = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
    format!(
        "{},{},{},{},{},{},{}\n",
        r.epoch,
        r.step,
        r.lr,
        r.train_loss,
        opt(r.train_accuracy),
        opt(r.validation.as_ref().map(|m| m.loss)),
        opt(r.validation.as_ref().and_then(|m| m.accuracy)),
    )
}

/// One `timing.csv` line.
pub fn timing_line(r: &EpochRecord) -> String {
    format!("{},{:.3}\n", r.epoch, r.seconds)
}

/// Values as JSON lines.
fn json_lines<T: Serialize>(values: &[T], path: &Path) -> Result<String> {
    let mut s = String::new();
    for v in values {
        s += &serde_json::to_string(v).map_err(|e| TrainError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
        s.push('\n');
    }
    Ok(s)
}

/// The records of `monitor.jsonl` or `spectral.jsonl` as their types, for
/// callers that want them back (tests, reports of small runs).
pub fn read_json_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| TrainError::Mismatch(format!("{}: line {}: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// [`read_json_lines`] for the monitor's records.
pub fn read_monitor(path: &Path) -> Result<Vec<TensorStats>> {
    read_json_lines(path)
}

/// [`read_json_lines`] for spectral summaries.
pub fn read_spectral(path: &Path) -> Result<Vec<SpectralStats>> {
    read_json_lines(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nw-runlog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn record(epoch: u64) -> EpochRecord {
        EpochRecord {
            epoch,
            step: epoch * 10,
            lr: 0.1,
            train_loss: 1.0 / epoch as f64,
            train_accuracy: Some(0.5),
            validation: None,
            seconds: 0.25,
        }
    }

    fn trainer() -> Trainer {
        let model = nw_nn::Sequential::new();
        let opt = Box::new(nw_optim::Sgd::default().build(vec![]).unwrap());
        Trainer::new(model, opt, crate::LossKind::CrossEntropy { label_smoothing: 0.0 })
    }

    #[test]
    fn lines_after_the_recorded_offsets_are_cut_on_reopening() {
        let dir = tmp("cut");
        let mut t = trainer();
        let mut log = RunLog::open(&dir, None, None, false).unwrap();
        t.history.push(record(1));
        log.flush(&mut t, true).unwrap();
        assert!(t.history.is_empty());
        let at = t.logs.unwrap();
        assert_eq!(at.epochs, 1);
        // a killed run appended epoch 2 after its last checkpoint
        t.history.push(record(2));
        log.flush(&mut t, false).unwrap();
        drop(log);
        let full = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        assert_eq!(full.lines().count(), 3);
        let log = RunLog::open(&dir, Some(at), None, false).unwrap();
        assert_eq!(log.offsets(), at);
        let cut = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        assert_eq!(cut, format!("{}{}", RunLog::METRICS_HEADER, metrics_line(&record(1))));
        assert_eq!(std::fs::metadata(dir.join("timing.csv")).unwrap().len(), at.timing);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_run_resumed_into_another_directory_takes_the_source_prefix() {
        let (src, dst) = (tmp("src"), tmp("dst"));
        let mut t = trainer();
        let mut log = RunLog::open(&src, None, None, false).unwrap();
        t.history.push(record(1));
        log.flush(&mut t, true).unwrap();
        let at = t.logs.unwrap();
        t.history.push(record(2));
        log.flush(&mut t, true).unwrap();
        let mut log = RunLog::open(&dst, Some(at), Some(&src), false).unwrap();
        t.history.push(record(7));
        log.flush(&mut t, true).unwrap();
        let text = std::fs::read_to_string(dst.join("metrics.csv")).unwrap();
        let want =
            format!("{}{}{}", RunLog::METRICS_HEADER, metrics_line(&record(1)), metrics_line(&record(7)));
        assert_eq!(text, want);
        // the source is untouched
        assert_eq!(std::fs::read_to_string(src.join("metrics.csv")).unwrap().lines().count(), 3);
        for d in [src, dst] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }

    #[test]
    fn a_missing_file_restarts_with_its_header_and_the_run_goes_on() {
        let dir = tmp("missing");
        let at = LogOffsets { metrics: 500, timing: 40, monitor: 9000, spectral: 0, epochs: 3, records: 12 };
        let log = RunLog::open(&dir, Some(at), None, false).unwrap();
        let o = log.offsets();
        assert_eq!(o.metrics, RunLog::METRICS_HEADER.len() as u64);
        assert_eq!(o.timing, RunLog::TIMING_HEADER.len() as u64);
        assert_eq!(o.monitor, 0);
        assert_eq!(std::fs::read_to_string(dir.join("metrics.csv")).unwrap(), RunLog::METRICS_HEADER);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
