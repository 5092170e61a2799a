//! The optimizer and train cases of the second reference set
//! (`fixtures/reference-2/optimizers2.json`, `train2.json`: ASGD, Adafactor,
//! Muon, LBFGS closure steps, gradient accumulation, frozen parameters):
//! every case must pass; none is skipped.

use std::path::PathBuf;

#[test]
fn every_optimizers2_and_train2_case_passes() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/reference-2");
    let files = nw_parity::load_dir(&dir).expect("fixture directory is readable");
    let mut ran = 0;
    let mut failed = Vec::new();
    for (path, file) in files {
        let fname = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if fname != "optimizers2.json" && fname != "train2.json" {
            continue;
        }
        for case in &file.cases {
            let r = nw_parity::report_case(&fname, &file.kind, case);
            ran += 1;
            if !r.passed() {
                failed.push(r.line());
            }
        }
    }
    assert_eq!(ran, 18, "optimizers2.json has 11 cases and train2.json 7");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
