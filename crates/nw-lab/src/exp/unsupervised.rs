//! `unsupervised` (being written).
use std::path::Path;
use crate::{LabOptions, Result, LabError, report::Report};
/// Runs the experiment.
pub fn run(_o: &LabOptions, _d: &Path) -> Result<Report> { Err(LabError::Config("unsupervised: not yet".into())) }
