//! The extra optimizer, schedule and clipping fixtures of `fixtures/optim-extra`
//! (made by its `generate.py` with PyTorch: maximize, three-phase one-cycle,
//! plateau max/abs, p = 3 clipping, ...), each judged within its own tolerances.
//! The shared reference set is covered case by case by `tests/reference.rs`.

use std::path::PathBuf;

#[test]
fn extra_optimizer_schedule_and_clip_cases_match_pytorch() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/optim-extra");
    let reports = nw_parity::run_dir(&dir).unwrap();
    for r in &reports {
        println!("{}", r.line());
    }
    let failed: Vec<String> = reports.iter().filter(|r| !r.passed()).map(|r| r.line()).collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    // optimizers.json 12, lr_schedules.json 9, clip.json 2
    assert_eq!(reports.len(), 12 + 9 + 2);
}
