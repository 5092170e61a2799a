//! Branching from a checkpoint: the branch with the original settings
//! reproduces the uninterrupted run bit for bit; other rules differ and are
//! themselves reproducible.

use std::path::PathBuf;

use nw_train::branch::{Alternative, Branch, parse_branches, run_branch, write_branches};
use nw_train::session::{Quiet, fit};
use nw_train::{RunConfig, build_run};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nw-branch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn small_config() -> RunConfig {
    let mut c = RunConfig::default();
    c.set("model.hidden", "[16]").unwrap();
    c.set("train.epochs", "2").unwrap();
    c.set("train.batch", "128").unwrap();
    c.set("train.checkpoint_every", "1").unwrap();
    c.set("reg.clip_grad_norm", "1.0").unwrap();
    c
}

fn bits(params: &[(String, nw_tensor::Tensor)]) -> Vec<(String, Vec<u32>)> {
    params.iter().map(|(n, t)| (n.clone(), t.to_vec().iter().map(|v| v.to_bits()).collect())).collect()
}

#[test]
fn the_original_branch_reproduces_the_run_and_others_differ() {
    let cfg = small_config();
    let dir = tmp("orig");
    let mut run = build_run(&cfg).unwrap();
    let per_epoch = run.loader.batches_per_epoch() as u64;
    fit(&mut run, &cfg, Some(&dir), &mut Quiet).unwrap();
    let full: Vec<(String, nw_tensor::Tensor)> =
        run.trainer.named_parameters().iter().map(|(n, p)| (n.clone(), p.value())).collect();
    let ck = dir.join("checkpoint-epoch1.nwck");

    let original = Branch { label: "adam (original)".into(), alternative: Alternative::Original };
    let b = run_branch(&ck, &original, per_epoch).unwrap();
    assert_eq!(b.start_step, per_epoch);
    assert_eq!(b.points.len() as u64, per_epoch);
    assert_eq!(bits(&b.params), bits(&full), "the original branch must equal the uninterrupted run");
    // The monitor recorded every step of the branch, with the applied update.
    assert!(b.points.iter().all(|p| p.update_ratio > 0.0 && p.update_ratio.is_finite() && p.lr >= 0.0));

    let sgd = &parse_branches(&["sgd".into()], Some(0.1), &cfg.optim).unwrap()[0];
    let s1 = run_branch(&ck, sgd, per_epoch).unwrap();
    let s2 = run_branch(&ck, sgd, per_epoch).unwrap();
    assert_eq!(bits(&s1.params), bits(&s2.params), "a branch is reproducible");
    assert_ne!(bits(&s1.params), bits(&full), "another rule moves the weights differently");
    // Same batches: the first step's loss (before any update) is the same in every branch.
    assert_eq!(s1.points[0].loss.to_bits(), b.points[0].loss.to_bits());

    let out = tmp("report");
    write_branches(&out, &ck, &[b, s1]).unwrap();
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("adam (original)") && md.contains("sgd (lr 1e-1)"), "{md}");
    for f in
        ["loss.svg", "loss.png", "update_ratio.svg", "adam_original/curve.csv", "sgd_lr_1e-1/monitor.jsonl"]
    {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn branch_names_are_checked() {
    let c = RunConfig::default();
    let b = parse_branches(&["adam".into(), "momentum".into(), "lion".into()], None, &c.optim).unwrap();
    assert_eq!(b[0].alternative, Alternative::Original);
    assert!(
        matches!(&b[1].alternative, Alternative::Optimizer(nw_optim::OptimizerConfig::Sgd(s)) if s.momentum == 0.9)
    );
    let e = parse_branches(&["adamm".into()], None, &c.optim).unwrap_err().to_string();
    assert!(e.contains("adamm"), "{e}");
    assert!(parse_branches(&[], None, &c.optim).is_err());
    assert!(parse_branches(&["sgd".into(), "sgd".into()], None, &c.optim).is_err());
}
