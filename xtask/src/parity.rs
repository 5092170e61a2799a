//! `cargo xtask parity DIR`: runs every case of every fixture file in DIR,
//! one line per case, then `N passed, N failed`; exits non-zero on any failure.

use std::path::Path;

use anyhow::{Result, bail};

/// Runs the fixtures of `dir`; with `filter`, only cases whose `file::name` contains it.
pub fn run(dir: &Path, filter: Option<&str>) -> Result<()> {
    let reports = nw_parity::run_dir(dir)?;
    let reports: Vec<_> = reports
        .into_iter()
        .filter(|r| filter.is_none_or(|f| format!("{}::{}", r.file, r.name).contains(f)))
        .collect();
    for r in &reports {
        println!("{}", r.line());
    }
    let s = nw_parity::Summary::of(&reports);
    println!("{}", s.line());
    if s.failed > 0 {
        bail!("{} of {} parity cases failed", s.failed, reports.len());
    }
    Ok(())
}
