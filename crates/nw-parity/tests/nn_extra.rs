//! Every case of `fixtures/nn-extra/` (class weights and ignore_index,
//! stacked recurrent layers with initial states, cumulative BatchNorm; made
//! by benches/torch/nn_extra_fixtures.py) passes.

use std::path::Path;

#[test]
fn nn_extra_fixtures_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/nn-extra");
    let reports = nw_parity::run_dir(&dir).unwrap();
    // layers_extra.json holds 13 cases
    assert_eq!(reports.len(), 13);
    let failed: Vec<String> = reports.iter().filter(|r| !r.passed()).map(|r| r.line()).collect();
    for r in &reports {
        println!("{}", r.line());
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
