//! Every case of `optimizers.json` and `lr_schedules.json`, and the clip
//! cases of `clip_prune.json`, run against nw-optim and judged within the
//! case's own tolerances (the pruning cases belong to nw-reg and its tests).

use std::path::PathBuf;

use nw_parity::{FixtureFile, report_case};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/reference")
}

fn run_file(file: &str, keep: impl Fn(&serde_json::Value) -> bool) -> usize {
    let f = FixtureFile::load(&dir().join(file)).unwrap();
    let mut failures = Vec::new();
    let mut n = 0;
    for case in f.cases.iter().filter(|c| keep(c)) {
        n += 1;
        let r = report_case(file, &f.kind, case);
        println!("{}", r.line());
        if !r.passed() {
            failures.push(r.line());
        }
    }
    assert!(failures.is_empty(), "{} of {n} cases failed:\n{}", failures.len(), failures.join("\n"));
    n
}

#[test]
fn optimizers_match_pytorch() {
    // 19 cases: SGD (4), Adam (3), AdamW (2), Adagrad (2), RMSprop (2), Adadelta,
    // Adamax, NAdam (2), RAdam, Rprop
    assert_eq!(run_file("optimizers.json", |_| true), 19);
}

#[test]
fn lr_schedules_match_pytorch() {
    assert_eq!(run_file("lr_schedules.json", |_| true), 15);
}

#[test]
fn clip_cases_match_pytorch() {
    let is_clip = |c: &serde_json::Value| c["op"].as_str().is_some_and(|o| o.starts_with("clip_"));
    assert_eq!(run_file("clip_prune.json", is_clip), 5);
}

#[test]
fn extra_option_cases_match_pytorch() {
    // fixtures/optim-extra: options the shared set leaves out (maximize, three-phase
    // one-cycle, plateau max/abs, p = 3 clipping, ...), made by its generate.py
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/optim-extra");
    let reports = nw_parity::run_dir(&dir).unwrap();
    for r in &reports {
        println!("{}", r.line());
    }
    let failed: Vec<String> = reports.iter().filter(|r| !r.passed()).map(|r| r.line()).collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    assert_eq!(reports.len(), 12 + 9 + 2);
}
