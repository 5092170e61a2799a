//! # nw-parity
//!
//! Runs PyTorch-generated reference fixtures (format `nw-reference/1`, see
//! `fixtures/reference/README.md`) against nw: every case of every `*.json`
//! file in a directory, each judged element by element with the case's own
//! `rtol`/`atol` (`|got - want| <= atol + rtol |want|`). A case whose kind,
//! op or option nw does not support is reported as `unsupported`, which
//! counts as a failure: nothing is skipped in silence.
//!
//! Main items: [`run_dir`], [`run_case`], [`CaseReport`], [`Summary`].
//!
//! ```
//! let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/reference"));
//! let reports = nw_parity::run_dir(dir).unwrap();
//! assert!(!reports.is_empty());
//! let summary = nw_parity::Summary::of(&reports);
//! println!("{}", summary.line()); // "N passed, N failed"
//! ```
#![deny(missing_docs)]

pub mod averaging;
pub mod check;
pub mod clip_prune;
pub mod fixture;
pub mod init;
pub mod layer;
mod layer_rnn;
pub mod optimizer;
pub mod prune;
pub mod schedule;
pub mod sparse_optimizer;
pub mod train;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use check::{Checker, Worst};
pub use fixture::{Case, CaseError, FixtureFile, JsonTensor, load_dir};

/// Errors reading a fixture directory (individual cases never error: they fail).
#[derive(Debug, thiserror::Error)]
pub enum ParityError {
    /// A file or directory could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file is not a valid fixture file.
    #[error("{path}: not a valid nw-reference/1 fixture file: {message}")]
    Parse {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// How one case ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every compared value within tolerance.
    Pass,
    /// Some value out of tolerance, or a shape mismatch.
    Fail,
    /// The case could not be run (unsupported, malformed or an nw error).
    Error(CaseError),
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// File name the case came from.
    pub file: String,
    /// The case's name.
    pub name: String,
    /// The file's kind.
    pub kind: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The comparisons (empty when the case could not run).
    pub checker: Option<Checker>,
}

impl CaseReport {
    /// Whether the case passed.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }

    /// One line: status, file::name, largest error against its tolerance.
    pub fn line(&self) -> String {
        let id = format!("{}::{}", self.file, self.name);
        match (&self.outcome, &self.checker) {
            (Outcome::Error(e), _) => format!("FAIL {id}  {e}"),
            (o, Some(c)) => {
                let status = if *o == Outcome::Pass { "pass" } else { "FAIL" };
                let mut s = format!("{status} {id}");
                if let Some(w) = &c.worst {
                    s += &format!(
                        "  max err/tol {:.3} at {} (got {:.9e}, want {:.9e}) over {} values",
                        w.ratio, w.label, w.got, w.want, c.compared
                    );
                }
                for p in &c.problems {
                    s += &format!("  [{p}]");
                }
                s
            }
            (_, None) => format!("FAIL {id}  no comparison made"),
        }
    }
}

/// Counts of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed (including unsupported ones).
    pub failed: usize,
}

impl Summary {
    /// Counts the reports.
    pub fn of(reports: &[CaseReport]) -> Self {
        let passed = reports.iter().filter(|r| r.passed()).count();
        Summary { passed, failed: reports.len() - passed }
    }

    /// `"N passed, N failed"`.
    pub fn line(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }
}

/// A runner for one fixture kind: reads the case, runs nw, fills a checker.
pub type Runner = fn(&Case) -> Result<Checker, CaseError>;

/// The kinds nw can run, each with its runner. A kind not listed here is
/// reported as unsupported.
pub const RUNNERS: &[(&str, Runner)] = &[
    ("layer", layer::run),
    ("init", init::run),
    ("optimizer", optimizer::run),
    ("lr_schedule", schedule::run),
    ("clip_prune", clip_prune::run),
    ("train", train::run),
    ("averaging", averaging::run),
    ("sparse_optimizer", sparse_optimizer::run),
];

/// Runs one case of the given kind, returning the filled checker.
pub fn run_case(kind: &str, case: &Value) -> Result<Checker, CaseError> {
    let c = Case::new(case);
    match RUNNERS.iter().find(|(k, _)| *k == kind) {
        Some((_, run)) => run(&c),
        None => Err(CaseError::Unsupported(format!("fixture kind {kind:?}"))),
    }
}

/// Runs one case and wraps the outcome in a report.
pub fn report_case(file: &str, kind: &str, case: &Value) -> CaseReport {
    let name = Case::new(case).name();
    let (outcome, checker) = match run_case(kind, case) {
        Ok(ch) => (if ch.passed() { Outcome::Pass } else { Outcome::Fail }, Some(ch)),
        Err(e) => (Outcome::Error(e), None),
    };
    CaseReport { file: file.to_string(), name, kind: kind.to_string(), outcome, checker }
}

/// Runs every case of every fixture file in `dir`.
pub fn run_dir(dir: &Path) -> Result<Vec<CaseReport>, ParityError> {
    let files = load_dir(dir)?;
    let mut out = Vec::new();
    for (path, file) in &files {
        let fname = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        for case in &file.cases {
            out.push(report_case(&fname, &file.kind, case));
        }
    }
    Ok(out)
}
