//! Every prune case of `fixtures/reference/clip_prune.json` through
//! `run_prune`: masks must equal PyTorch's exactly.

use std::path::Path;

use nw_parity::fixture::{Case, FixtureFile};
use nw_parity::prune::run_prune;

#[test]
fn every_prune_case_of_clip_prune_passes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/reference/clip_prune.json");
    let file = FixtureFile::load(&path).unwrap();
    let mut ran = Vec::new();
    for json in &file.cases {
        let case = Case::new(json);
        let op = case.str("op").unwrap();
        if !op.starts_with("prune_") {
            continue;
        }
        let checker = run_prune(&case, op).unwrap_or_else(|e| panic!("{}: {e}", case.name()));
        assert!(checker.passed(), "{}: {checker:?}", case.name());
        assert!(checker.compared > 0);
        ran.push(case.name());
    }
    // the file holds two per-tensor and two global cases (amounts 0.3 and 0.75)
    assert_eq!(ran.len(), 4, "{ran:?}");
}

#[test]
fn a_wrong_mask_fails_and_unknown_options_are_unsupported() {
    let json: serde_json::Value = serde_json::json!({
        "name": "t", "op": "prune_l1_unstructured", "hyper": {"amount": 1},
        "weights": [{"shape": [3], "data": [0.5, -0.1, 2.0]}],
        "expected_masks": [{"shape": [3], "data": [0.0, 1.0, 1.0]}]
    });
    // amount 1 (a count) prunes -0.1, not 0.5
    let c = run_prune(&Case::new(&json), "prune_l1_unstructured").unwrap();
    assert!(!c.passed());
    let mut bad = json.clone();
    bad["hyper"]["importance_scores"] = serde_json::json!(1);
    assert!(matches!(
        run_prune(&Case::new(&bad), "prune_l1_unstructured"),
        Err(nw_parity::CaseError::Unsupported(_))
    ));
    assert!(run_prune(&Case::new(&json), "prune_random_unstructured").is_err());
}
