//! Every experiment in quick mode: the table has the article's rows, the
//! numbers are finite, and the robust expectations hold.

use nw_lab::report::Report;
use nw_lab::{Budget, Experiment, LabOptions};

fn run(e: Experiment) -> Report {
    let dir = std::env::temp_dir().join(format!("nw-lab-test-{}-{}", e.name(), std::process::id()));
    let opts = LabOptions { budget: Budget::Quick, seeds: None, out: dir.clone() };
    let r = e.run(&opts).unwrap_or_else(|err| panic!("{}: {err}", e.name()));
    for f in ["report.md", "results.csv", "timing.csv"] {
        assert!(dir.join(e.name()).join(f).is_file(), "{} wrote no {f}", e.name());
    }
    for p in &r.plots {
        for ext in ["svg", "png"] {
            let f = dir.join(e.name()).join(format!("{}.{ext}", p.stem));
            assert!(std::fs::metadata(&f).map(|m| m.len() > 500).unwrap_or(false), "{}: {}", e.name(), f.display());
        }
    }
    assert!(r.html().unwrap().contains("<svg"), "{}: no inline plot", e.name());
    r
}

/// The claims table has these rows (by prefix), each with a measured value and a verdict.
fn has_rows(r: &Report, rows: &[&str]) {
    for row in rows {
        let found = r.claims.rows.iter().find(|c| c[0].starts_with(row));
        let c = found.unwrap_or_else(|| panic!("{}: no claims row {row:?} in {:?}", r.name, r.claims.rows));
        assert_eq!(c.len(), 4);
        assert!(c[3].starts_with("agrees") || c[3].starts_with("disagrees"), "{c:?}");
    }
}

/// The measured column of a claims row as a number (its mean).
fn measured(r: &Report, row: &str) -> f64 {
    let c = r.claims.rows.iter().find(|c| c[0].starts_with(row)).expect("row");
    c[2].split(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("{}: {row}: {:?} is not a number", r.name, c[2]))
}

fn raw_column(r: &Report, col: &str) -> Vec<String> {
    let j = r.raw.header.iter().position(|h| h == col).expect("column");
    r.raw.rows.iter().map(|row| row[j].clone()).collect()
}

fn all_finite(r: &Report, col: &str) {
    for v in raw_column(r, col) {
        let x: f64 = v.parse().unwrap_or_else(|_| panic!("{}: {col} {v:?}", r.name));
        assert!(x.is_finite(), "{}: {col} = {v}", r.name);
    }
}

#[test]
fn momentum() {
    let r = run(Experiment::Momentum);
    has_rows(&r, &["momentum 0.5", "momentum 0.9", "momentum 0.99", "order"]);
    all_finite(&r, "update_at_100");
    let (m05, m099) = (measured(&r, "momentum 0.5"), measured(&r, "momentum 0.99"));
    assert!(m099 > m05, "momentum 0.99 moves weights less than 0.5 at iteration 100: {m099} vs {m05}");
}
