//! Checkpoints: the whole training state in one versioned, checksummed file,
//! written atomically.
//!
//! Layout (little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `NWCKPT\0\0` |
//! | 4 | format version ([`VERSION`]) |
//! | 8 | payload length `n` |
//! | 32 | SHA-256 of the payload |
//! | n | payload: [`Checkpoint`] encoded with bincode 2 (standard config) |
//!
//! A file with another magic, an unknown version, fewer bytes than the
//! header announces, trailing bytes, or a payload whose hash differs is
//! rejected with a [`CheckpointError`] saying which; nothing is loaded in
//! part. Writing goes to a temporary file in the same directory, which is
//! flushed to disk and then renamed over the target, so a crash leaves
//! either the old checkpoint or the new one, never a torn file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use nw_tensor::Tensor;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The file's first eight bytes.
pub const MAGIC: &[u8; 8] = b"NWCKPT\0\0";
/// The format version this build writes and reads.
pub const VERSION: u32 = 3;
const HEADER: usize = 8 + 4 + 8 + 32;

/// Why a checkpoint could not be written or read.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Not a checkpoint file.
    #[error("{path}: not an nw checkpoint (bad magic number)")]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// Written by an incompatible version.
    #[error("{path}: checkpoint format version {found}, this build reads version {VERSION}{}", if *found == 1 { " (version 1 was written by nw before typed checkpoint sections; continue that run with the nw that wrote it, or retrain)" } else { "" })]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
    },
    /// Shorter or longer than its header says.
    #[error("{path}: truncated or padded checkpoint: header announces {expected} bytes, file has {got}")]
    Length {
        /// The file.
        path: PathBuf,
        /// Bytes the header announces.
        expected: u64,
        /// Bytes present.
        got: u64,
    },
    /// The payload's hash does not match the header.
    #[error("{path}: checkpoint is corrupted (SHA-256 mismatch)")]
    Checksum {
        /// The file.
        path: PathBuf,
    },
    /// The payload could not be decoded or encoded.
    #[error("{path}: checkpoint payload: {message}")]
    Codec {
        /// The file.
        path: PathBuf,
        /// The codec's message.
        message: String,
    },
}

/// A tensor with its name, as stored in checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedTensor {
    /// Name (PyTorch state_dict path for model tensors).
    pub name: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl NamedTensor {
    /// Captures a tensor's current value.
    pub fn new(name: impl Into<String>, t: &Tensor) -> Self {
        NamedTensor { name: name.into(), shape: t.shape().to_vec(), data: t.to_vec() }
    }

    /// The value as a tensor.
    pub fn to_tensor(&self) -> Result<Tensor, nw_tensor::TensorError> {
        Tensor::from_vec(self.data.clone(), &self.shape)
    }
}

/// Where a run stands: completed epochs and steps, and inside an epoch.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Completed epochs.
    pub epoch: u64,
    /// Optimizer steps taken.
    pub step: u64,
    /// A partly done epoch (a checkpoint written at a step boundary inside it).
    pub partial: Option<PartialEpoch>,
}

/// The running sums of an epoch interrupted after `batches` batches.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// Batches of the epoch already taken.
    pub batches: usize,
    /// Sum of batch loss x batch size so far.
    pub loss_sum: f64,
    /// Examples seen so far.
    pub seen: usize,
    /// Correct predictions so far (classification).
    pub correct: usize,
    /// Whether `correct` counts anything (classification).
    pub counted: bool,
}

/// The resumable state of the weight monitor.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MonitorState {
    /// Every record so far, in order.
    pub records: Vec<crate::monitor::TensorStats>,
    /// Every warning the trainer has kept, in order.
    pub warnings: Vec<crate::monitor::Warning>,
    /// Spectral summaries so far (with `MonitorConfig::spectral`).
    pub spectra: Vec<crate::spectral::SpectralStats>,
    /// Counters carried across steps (clipping count, peak learning rate).
    pub progress: crate::monitor::MonitorProgress,
}

/// One named, typed part of a checkpoint. Each stateful component of a run
/// writes and reads its own section through [`crate::Stateful`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Section {
    /// Epoch, step and position inside an epoch.
    Progress(Progress),
    /// The run's configuration as TOML (the text of its `config.toml`).
    Config(String),
    /// Named tensors (model parameters, buffers, pruning masks).
    Tensors(Vec<NamedTensor>),
    /// The optimizer's state dict.
    Optimizer(nw_optim::StateDict),
    /// The learning-rate schedule with its position.
    Schedule(Option<crate::trainer::LrPolicy>),
    /// Early stopping's counters and best weights.
    EarlyStopping(nw_reg::EarlyStoppingState),
    /// The weight monitor's history.
    Monitor(MonitorState),
    /// States of random generators, in the order their owners list them.
    Rngs(Vec<[u64; 4]>),
    /// One record per completed epoch.
    History(Vec<crate::trainer::EpochRecord>),
    /// The weight average (EMA or SWA) and its kind.
    Average(crate::averaged::Averaged),
    /// Where the run's log files stood ([`crate::runlog::LogOffsets`]);
    /// the history and monitor records before that point are in the files,
    /// not in the checkpoint.
    Logs(crate::runlog::LogOffsets),
}

impl Section {
    /// The variant's name (for error messages).
    pub fn kind(&self) -> &'static str {
        match self {
            Section::Progress(_) => "progress",
            Section::Config(_) => "config",
            Section::Tensors(_) => "tensors",
            Section::Optimizer(_) => "optimizer",
            Section::Schedule(_) => "schedule",
            Section::EarlyStopping(_) => "early stopping",
            Section::Monitor(_) => "monitor",
            Section::Rngs(_) => "random generators",
            Section::History(_) => "history",
            Section::Average(_) => "weight average",
            Section::Logs(_) => "log offsets",
        }
    }
}

/// Everything needed to continue a run exactly where it stopped: a map of
/// named, typed [`Section`]s (`progress`, `config`, `model`, `buffers`,
/// `optimizer`, `schedule`, `rngs`, `history`, `monitor`, and
/// `early_stopping` / `masks` / `average` / `logs` when the run has them).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The sections by name.
    pub sections: BTreeMap<String, Section>,
}

impl Checkpoint {
    /// The section `name`, if present.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.get(name)
    }

    /// Adds or replaces a section.
    pub fn insert(&mut self, name: impl Into<String>, s: Section) {
        self.sections.insert(name.into(), s);
    }

    /// Epoch and step (zeros when the progress section is missing).
    pub fn progress(&self) -> Progress {
        match self.section("progress") {
            Some(Section::Progress(p)) => p.clone(),
            _ => Progress::default(),
        }
    }

    /// The model tensors (parameters), by name.
    pub fn model(&self) -> &[NamedTensor] {
        match self.section("model") {
            Some(Section::Tensors(t)) => t,
            _ => &[],
        }
    }

    /// The configuration text, when stored.
    pub fn config_toml(&self) -> Option<&str> {
        match self.section("config") {
            Some(Section::Config(c)) => Some(c),
            _ => None,
        }
    }

    /// Encodes the checkpoint into the file format described in the module docs.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        let payload = bincode::serde::encode_to_vec(self, bincode::config::standard())
            .map_err(|e| CheckpointError::Codec { path: PathBuf::new(), message: e.to_string() })?;
        let mut out = Vec::with_capacity(HEADER + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&Sha256::digest(&payload));
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Decodes and verifies a checkpoint; `path` only names the source in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, CheckpointError> {
        let path = path.to_path_buf();
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(CheckpointError::BadMagic { path });
        }
        if bytes.len() < HEADER {
            return Err(CheckpointError::Length { path, expected: HEADER as u64, got: bytes.len() as u64 });
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(CheckpointError::UnsupportedVersion { path, found: version });
        }
        let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        let expected = (HEADER as u64).saturating_add(len);
        if bytes.len() as u64 != expected {
            return Err(CheckpointError::Length { path, expected, got: bytes.len() as u64 });
        }
        let payload = &bytes[HEADER..];
        if Sha256::digest(payload).as_slice() != &bytes[20..52] {
            return Err(CheckpointError::Checksum { path });
        }
        // A valid checksum proves nothing about intent: every length inside
        // is checked against the bytes that remain before it is reserved.
        let (ck, used): (Checkpoint, usize) = crate::untrusted::decode(payload)
            .map_err(|e| CheckpointError::Codec { path: path.clone(), message: e.to_string() })?;
        if used != payload.len() {
            return Err(CheckpointError::Codec { path, message: "trailing bytes after the payload".into() });
        }
        Ok(ck)
    }

    /// Writes the checkpoint atomically: temporary file, fsync, rename, fsync of the directory.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes)
    }

    /// Reads and verifies a checkpoint file.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let bytes =
            std::fs::read(path).map_err(|source| CheckpointError::Io { path: path.to_path_buf(), source })?;
        Self::from_bytes(&bytes, path)
    }
}

/// The temporary sibling [`write_atomic`] writes `path` through:
/// `.NAME.tmp-PID` in the same directory (so the rename never crosses file
/// systems).
fn temp_path(dir: &Path, path: &Path) -> PathBuf {
    let name =
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "checkpoint".into());
    dir.join(format!(".{name}{TEMP_MARK}{}", std::process::id()))
}

/// What every temporary file name of [`write_atomic`] holds (after a leading dot).
const TEMP_MARK: &str = ".tmp-";

/// Whether `name` is a temporary file of [`write_atomic`] (one a killed
/// process can leave behind).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARK)
}

/// Writes `bytes` to `path` so that readers see either the old file or the
/// complete new one, also across a crash or power loss: a temporary sibling
/// is written and fsynced, renamed over `path`, and the directory is fsynced
/// so the rename itself is durable. On any error the temporary file is
/// removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io { path: path.to_path_buf(), source };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = temp_path(&dir, path);
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    sync_dir(&dir).map_err(io)
}

/// Atomically replaces `path` with a file that `write` creates at the path
/// it is given (for writers that want a path, such as plot back ends): the
/// temporary file it wrote is fsynced, renamed over `path`, and the
/// directory fsynced. On any error the temporary file is removed.
pub fn replace_atomic(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), String>,
) -> Result<(), CheckpointError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // The temporary name ends in the target's extension (back ends choose
    // the format by it).
    let mut tmp = temp_path(&dir, path).into_os_string();
    if let Some(ext) = path.extension() {
        tmp.push(".");
        tmp.push(ext);
    }
    let tmp = PathBuf::from(tmp);
    let done = write(&tmp).map_err(std::io::Error::other).and_then(|()| {
        File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if let Err(source) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(CheckpointError::Io { path: path.to_path_buf(), source });
    }
    sync_dir(&dir).map_err(|source| CheckpointError::Io { path: path.to_path_buf(), source })
}

/// fsyncs a directory (persists renames and deletions in it). A file system
/// that cannot sync directories (`EINVAL`) is not an error.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match File::open(dir)?.sync_all() {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let mut ck = Checkpoint::default();
        ck.insert("progress", Section::Progress(Progress { epoch: 3, step: 120, partial: None }));
        ck.insert(
            "model",
            Section::Tensors(vec![NamedTensor::new(
                "0.weight",
                &Tensor::from_vec(vec![1.5, -2.0], &[1, 2]).unwrap(),
            )]),
        );
        ck.insert("rngs", Section::Rngs(vec![[1, 2, 3, 4]]));
        ck.insert("config", Section::Config("[train]\nepochs = 3\n".into()));
        ck
    }

    #[test]
    fn round_trip_through_a_file() {
        let dir = std::env::temp_dir().join(format!("nw-ckpt-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("run.ckpt");
        let ck = sample();
        ck.save(&p).unwrap();
        assert_eq!(Checkpoint::load(&p).unwrap(), ck);
        // overwrite atomically
        let mut ck2 = ck.clone();
        ck2.insert("progress", Section::Progress(Progress { epoch: 3, step: 121, partial: None }));
        ck2.save(&p).unwrap();
        assert_eq!(Checkpoint::load(&p).unwrap().progress().step, 121);
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = std::env::temp_dir().join(format!("nw-ckpt-fail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("run.ckpt");
        sample().save(&p).unwrap();
        let before = std::fs::read(&p).unwrap();
        // A directory where the temporary file would go makes its creation fail.
        let tmp = temp_path(&dir, &p);
        std::fs::create_dir(&tmp).unwrap();
        assert!(is_temp_name(tmp.file_name().unwrap().to_str().unwrap()));
        let e = write_atomic(&p, b"new bytes").unwrap_err();
        assert!(matches!(e, CheckpointError::Io { .. }), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), before);
        std::fs::remove_dir(&tmp).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_kind_of_damage_is_an_error() {
        let p = Path::new("x.ckpt");
        let bytes = sample().to_bytes().unwrap();
        // truncation at every length is rejected, never a partial load
        for cut in 0..bytes.len() {
            assert!(Checkpoint::from_bytes(&bytes[..cut], p).is_err(), "accepted a file cut at {cut}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(matches!(Checkpoint::from_bytes(&padded, p), Err(CheckpointError::Length { .. })));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(Checkpoint::from_bytes(&flipped, p), Err(CheckpointError::Checksum { .. })));
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert!(matches!(Checkpoint::from_bytes(&magic, p), Err(CheckpointError::BadMagic { .. })));
        let mut version = bytes.clone();
        version[8] = 9;
        let e = Checkpoint::from_bytes(&version, p).unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");
        version[8] = 1;
        let e = Checkpoint::from_bytes(&version, p).unwrap_err();
        assert!(e.to_string().contains("version 1") && e.to_string().contains("typed"), "{e}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = Checkpoint::load(Path::new("/nonexistent/dir/run.ckpt")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/dir/run.ckpt"), "{e}");
    }
}
