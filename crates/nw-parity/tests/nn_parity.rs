//! Every case of `fixtures/reference/layers.json` and `init.json` must pass.
//!
//! Cases whose op nw cannot run yet are listed in `PENDING` with the reason;
//! they must still fail as `unsupported` (never be skipped in silence), and
//! the test fails as soon as one of them starts passing, so that the list
//! is shrunk when the support lands.

use std::path::Path;

use nw_parity::{CaseReport, FixtureFile, Outcome, report_case};

/// Cases pending on the conv/pool kernels (branch `conv`) being merged, and
/// on the recurrent layers.
const PENDING: &[&str] = &[
    "conv2d_0",
    "conv2d_1",
    "conv2d_2",
    "conv2d_3",
    "conv1d",
    "maxpool2d",
    "maxpool2d_3s2p1",
    "avgpool2d",
    "adaptive_avgpool2d_1",
    "lstm",
    "gru",
    "rnn_tanh",
];

fn run_file(name: &str) -> Vec<CaseReport> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/reference").join(name);
    let file = FixtureFile::load(&path).unwrap();
    file.cases.iter().map(|c| report_case(name, &file.kind, c)).collect()
}

fn assert_all_pass(name: &str, expected_cases: usize) {
    let reports = run_file(name);
    assert_eq!(reports.len(), expected_cases, "{name}: case count changed");
    let mut bad = Vec::new();
    for r in &reports {
        println!("{}", r.line());
        let pending = PENDING.contains(&r.name.as_str());
        match (&r.outcome, pending) {
            (Outcome::Pass, false) => {}
            (Outcome::Error(nw_parity::CaseError::Unsupported(_)), true) => {}
            (Outcome::Pass, true) => bad.push(format!("{} passes now: remove it from PENDING", r.name)),
            _ => bad.push(r.line()),
        }
    }
    assert!(bad.is_empty(), "{name}:\n{}", bad.join("\n"));
}

#[test]
fn layers_json() {
    // layers.json holds 39 cases (linear, conv, pool, norms, embedding, rnn, activations, losses)
    assert_all_pass("layers.json", 39);
}

#[test]
fn init_json() {
    // init.json holds 21 cases (xavier, kaiming, lecun over three shapes)
    assert_all_pass("init.json", 21);
}
