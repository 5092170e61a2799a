//! `nw lab branch`, `nw lr-find` and `nw update` end to end, on small fast runs,
//! and the default `nw train` printing no spurious monitor warnings.

use std::path::PathBuf;
use std::process::{Command, Output};

fn nw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nw")).args(args).output().expect("nw runs")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nw-lab-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn a_default_length_run_prints_no_monitor_warnings() {
    // The default schedule anneals to 0 at the last epoch: tiny updates there are expected.
    let out = tmp("quiet");
    let o = nw(&["train", "--hidden", "16", "--batch", "128", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let s = text(&o);
    assert!(!s.contains("WARN") && !s.contains("warning"), "{s}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn branch_lr_find_and_update() {
    let dir = tmp("run");
    let d = dir.to_str().unwrap();
    let o = nw(&[
        "train",
        "--dataset",
        "iris",
        "--hidden",
        "8",
        "--epochs",
        "2",
        "--batch",
        "16",
        "--checkpoint-every",
        "1",
        "--out",
        d,
    ]);
    assert!(o.status.success(), "{}", text(&o));

    let ck = dir.join("checkpoint-epoch1.nwck");
    let out = dir.join("br");
    let o = nw(&[
        "lab",
        "branch",
        ck.to_str().unwrap(),
        "--steps",
        "5",
        "--optimizers",
        "original,sgd,lion",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("adam (original)") && md.contains("| Lion |"), "{md}");
    assert!(out.join("loss.png").is_file() && out.join("update_ratio.svg").is_file());
    let o = nw(&["lab", "branch", ck.to_str().unwrap(), "--optimizers", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    let lf = dir.join("lf");
    let o = nw(&[
        "lr-find",
        "--dataset",
        "iris",
        "--hidden",
        "8",
        "--steps",
        "40",
        "--out",
        lf.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("suggested learning rate"), "{}", text(&o));
    let csv = std::fs::read_to_string(lf.join("lr_find.csv")).unwrap();
    assert!(csv.starts_with("step,lr,loss,smoothed\n") && csv.lines().count() > 10, "{csv}");
    assert!(lf.join("lr_find.svg").is_file());

    let rows = dir.join("rows.csv");
    std::fs::write(&rows, "a,b,c,d,label\n5.1,3.5,1.4,0.2,0\n6.7,3.0,5.2,2.3,2\n5.9,3.0,4.2,1.5,1\n")
        .unwrap();
    let up = dir.join("up");
    let o =
        nw(&["update", d, "--input", rows.to_str().unwrap(), "--lr", "0.01", "--out", up.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let u = std::fs::read_to_string(up.join("updates.csv")).unwrap();
    assert_eq!(u.lines().count(), 4, "{u}"); // header + one update per row
    let moved: f64 = u.lines().nth(1).unwrap().split(',').nth(3).unwrap().parse().unwrap();
    assert!(moved > 0.0 && moved.is_finite(), "{u}");
    assert!(std::fs::read_to_string(up.join("monitor.jsonl")).unwrap().contains("\"effective_step\""));
    // The updated run is a run: it evaluates.
    let o = nw(&["eval", "--model", up.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    // A row with a class outside the model's is a data error naming the line.
    std::fs::write(&rows, "5.1,3.5,1.4,0.2,7\n").unwrap();
    let o = nw(&["update", d, "--input", rows.to_str().unwrap(), "--out", up.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("line 1"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
