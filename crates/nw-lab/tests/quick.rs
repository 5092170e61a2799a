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
            assert!(
                std::fs::metadata(&f).map(|m| m.len() > 500).unwrap_or(false),
                "{}: {}",
                e.name(),
                f.display()
            );
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
    c[2].split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{}: {row}: {:?} is not a number", r.name, c[2]))
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

/// A results-table cell's mean (the number before " ±").
fn cell(t: &nw_lab::report::Table, row: &str, col: usize) -> f64 {
    let r = t.rows.iter().find(|r| r[0] == row).unwrap_or_else(|| panic!("no row {row:?} in {:?}", t.rows));
    r[col].split(' ').next().unwrap().parse().unwrap_or(f64::NAN)
}

/// The "final smoothed loss" column of the standard results table.
const FINAL_LOSS: usize = 4;

#[test]
fn init() {
    let r = run(Experiment::Init);
    has_rows(&r, &["random", "Xavier", "He", "order"]);
    all_finite(&r, "final_smoothed_loss");
    let he = cell(&r.results, "He (kaiming normal)", FINAL_LOSS);
    let small = cell(&r.results, "random N(0, 0.01²)", FINAL_LOSS);
    assert!(he < small, "He does not beat small-normal on the deep ReLU net: {he} vs {small}");
    assert!(r.extra.iter().any(|(t, tb)| t.contains("activation std") && tb.rows.len() == 5));
}

#[test]
fn lr() {
    let r = run(Experiment::Lr);
    has_rows(&r, &["lr 0.01", "lr 0.1", "lr 1"]);
    let (slow, fast) = (cell(&r.results, "lr 0.01", FINAL_LOSS), cell(&r.results, "lr 0.1", FINAL_LOSS));
    assert!(fast < slow, "lr 0.1 ends higher than lr 0.01 after the same steps: {fast} vs {slow}");
}

#[test]
fn batch_size() {
    let r = run(Experiment::BatchSize);
    has_rows(&r, &["batch 32", "batch 64", "batch 128"]);
    all_finite(&r, "update_at_100");
    let (mini, full) = (cell(&r.results, "batch 32", FINAL_LOSS), cell(&r.results, "full batch", FINAL_LOSS));
    assert!(mini < full, "200 mini-batch steps end higher than 200 full-batch steps: {mini} vs {full}");
    assert!(r.results.rows.iter().any(|row| row[0] == "online (1)"));
}

#[test]
fn optimizers() {
    let r = run(Experiment::Optimizers);
    has_rows(&r, &["Adam vs SGD at its torch default", "Adam vs SGD at lr 0.1"]);
    let gradient_based = nw_optim::OPTIMIZERS
        .iter()
        .filter(|(n, _)| {
            let c = nw_optim::OptimizerConfig::default_for(n).unwrap();
            !c.is_gradient_free() && !c.needs_sparse_gradients()
        })
        .count();
    assert_eq!(r.results.rows.len(), gradient_based + 1);
    let adam = cell(&r.results, "adam (lr 0.001)", FINAL_LOSS);
    let sgd = cell(&r.results, "sgd (lr 0.001)", FINAL_LOSS);
    assert!(adam < sgd, "Adam does not beat SGD at the same default lr 0.001: {adam} vs {sgd}");
}

#[test]
fn schedules() {
    let r = run(Experiment::Schedules);
    has_rows(&r, &["cyclical vs constant"]);
    assert_eq!(r.results.rows.len(), 6);
    all_finite(&r, "val_accuracy");
}

#[test]
fn regularization() {
    let r = run(Experiment::Regularization);
    has_rows(&r, &["L1", "L2: weight", "dropout", "L2 reduces overfitting"]);
    assert_eq!(r.results.rows.len(), 7);
    all_finite(&r, "update_at_100");
    all_finite(&r, "train_accuracy");
}

#[test]
fn pruning() {
    let r = run(Experiment::Pruning);
    has_rows(&r, &["90% pruning, one-shot, no", "90% pruning, one-shot +", "90% pruning, gradual"]);
    let no_ft = cell(&r.results, "90.0%", 1);
    let ft = cell(&r.results, "90.0%", 2);
    assert!(no_ft.is_finite() && ft.is_finite());
    assert!(ft >= no_ft - 0.02, "fine-tuning lost accuracy at 90%: {ft} vs {no_ft}");
    let dense = cell(&r.results, "0%", 1);
    assert!(dense > no_ft, "90% one-shot pruning costs nothing: {dense} vs {no_ft}");
}

#[test]
fn activation() {
    let r = run(Experiment::Activation);
    has_rows(&r, &["ReLU", "sigmoid", "tanh"]);
    all_finite(&r, "update_at_100");
}

#[test]
fn rnn() {
    let r = run(Experiment::Rnn);
    has_rows(&r, &["LSTM", "GRU"]);
    all_finite(&r, "update_at_100");
    assert_eq!(r.results.rows.len(), 6);
}

#[test]
fn algorithms() {
    let r = run(Experiment::Algorithms);
    has_rows(&r, &["backprop", "genetic algorithm", "particle swarm"]);
    let bp = &r.results.rows[0];
    assert_eq!(bp[1], "2/2", "backprop did not reach the target on every seed: {bp:?}");
}

#[test]
fn unsupervised() {
    let r = run(Experiment::Unsupervised);
    has_rows(&r, &["supervised", "unsupervised (GAN"]);
    let png = r.dir.join("gan_samples.png");
    assert!(std::fs::metadata(&png).unwrap().len() > 1000, "{}", png.display());
    assert!(r.html().unwrap().contains("data:image/png;base64,"));
}

#[test]
fn online() {
    let r = run(Experiment::Online);
    assert_eq!(r.results.rows.len(), 2);
    let j = r.raw.header.iter().position(|h| h == "shifted_after").unwrap();
    for row in &r.raw.rows {
        let (before, after): (f64, f64) = (row[j - 1].parse().unwrap(), row[j].parse().unwrap());
        assert!(before.is_finite() && after.is_finite());
        if row[1] == "0.1" {
            assert!(
                after >= before,
                "150 updates at lr 0.1 on the shifted stream did not help: {before} -> {after}"
            );
        }
    }
}

#[test]
fn same_bits_on_one_and_two_threads() {
    let go = |threads: usize| {
        let dir = std::env::temp_dir().join(format!("nw-lab-bits-{threads}-{}", std::process::id()));
        let opts = LabOptions { budget: Budget::Quick, seeds: Some(1), out: dir.clone() };
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
            Experiment::Momentum.run(&opts).unwrap();
        });
        std::fs::read(dir.join("momentum/results.csv")).unwrap()
    };
    assert_eq!(go(1), go(2));
}
