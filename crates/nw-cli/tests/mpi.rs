//! `mpirun -n N nw train --distributed` end to end (feature `mpi`; needs
//! `mpirun` on PATH, e.g. Debian's openmpi-bin). Runs 1, 2 and 3 ranks on
//! one machine (`--oversubscribe`) and as root when CI is root.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nw-mpi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn mpirun(n: usize, args: &[&str]) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["-n", &n.to_string(), "--oversubscribe"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        // One thread per rank: the ranks share this machine's cores.
        .arg(env!("CARGO_BIN_EXE_nw"))
        .args(["--threads", "1"])
        .args(args);
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

const RUN: &[&str] = &[
    "train",
    "--distributed",
    "--accumulate",
    "6",
    "--batch",
    "96",
    "--hidden",
    "32",
    "--dropout",
    "0.2",
    "--epochs",
    "2",
    "--checkpoint-every",
    "1",
    "--seed",
    "5",
];

fn train(n: usize, out: &Path) -> Vec<u8> {
    let mut args = RUN.to_vec();
    args.extend(["--out", out.to_str().unwrap()]);
    let o = mpirun(n, &args).output().expect("mpirun runs (install openmpi-bin)");
    assert!(o.status.success(), "{n} ranks: {}", text(&o));
    std::fs::read(out.join("model.safetensors")).unwrap()
}

#[test]
fn one_two_three_ranks_write_the_same_model_and_resume_across_counts() {
    let outs: Vec<PathBuf> = (1..=3).map(|n| tmp(&format!("ranks{n}"))).collect();
    let models: Vec<Vec<u8>> = outs.iter().enumerate().map(|(i, o)| train(i + 1, o)).collect();
    assert!(models[0] == models[1], "1 vs 2 ranks");
    assert!(models[0] == models[2], "1 vs 3 ranks");
    // The 2-rank run's epoch-1 checkpoint, resumed on 3 ranks.
    let resumed = tmp("resumed");
    let ck = outs[1].join("checkpoint-epoch1.nwck");
    let o = mpirun(3, &["resume", ck.to_str().unwrap(), "--distributed", "--out", resumed.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::read(resumed.join("model.safetensors")).unwrap() == models[0], "resumed on 3 ranks");
    // Only rank 0 writes: one metrics file with one header and two epochs.
    let metrics = std::fs::read_to_string(outs[2].join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    for d in outs.iter().chain([&resumed]) {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A CNN with two batch-norm layers on the digits (8x8), 2 epochs. The
/// 1,259 training rows leave a short last batch of 59 rows (micro-shards of
/// 9 and 10 rows); at `--batch 96` its 11 rows would make micro-shards of
/// one row, which batch norm refuses at the start (see cli.rs).
const CNN: &[&str] = &[
    "train",
    "--distributed",
    "--accumulate",
    "6",
    "--batch",
    "100",
    "--epochs",
    "2",
    "--seed",
    "3",
    "--set",
    "model.layer=[{type=\"reshape\", shape=[1, 8, 8]}, {type=\"conv2d\", out=6, kernel=3, padding=1}, \
     {type=\"batch_norm\"}, {type=\"relu\"}, {type=\"max_pool2d\", kernel=2}, {type=\"flatten\"}, \
     {type=\"linear\", out=24}, {type=\"dropout\", p=0.2}, {type=\"batch_norm\"}, {type=\"relu\"}, {type=\"linear\"}]",
];

fn train_cnn(n: usize, sync_bn: bool, name: &str) -> Vec<u8> {
    let out = tmp(name);
    let mut args = CNN.to_vec();
    if sync_bn {
        args.push("--sync-bn");
    }
    args.extend(["--out", out.to_str().unwrap()]);
    let o = mpirun(n, &args).output().expect("mpirun runs (install openmpi-bin)");
    assert!(o.status.success(), "{n} ranks: {}", text(&o));
    let model = std::fs::read(out.join("model.safetensors")).unwrap();
    let _ = std::fs::remove_dir_all(&out);
    model
}

#[test]
fn cnn_with_batch_norm_per_rank_and_sync_bn() {
    // Per-shard statistics (the default): two 2-rank runs agree byte for byte.
    let a = train_cnn(2, false, "bn-a");
    assert!(a == train_cnn(2, false, "bn-b"), "2 vs 2 ranks, per-shard statistics");
    // --sync-bn: the whole batch's statistics, the same bytes on 1, 2, 3 ranks.
    let s: Vec<Vec<u8>> = (1..=3).map(|n| train_cnn(n, true, &format!("sync{n}"))).collect();
    assert!(s[0] == s[1], "--sync-bn: 1 vs 2 ranks");
    assert!(s[0] == s[2], "--sync-bn: 1 vs 3 ranks");
    assert!(s[1] != a, "--sync-bn changed the model");
}

/// Starts a long 3-rank run, waits until its rank processes exist, and
/// signals one of them; the job must end with an error within the timeout.
fn signal_a_rank(signal: &str, name: &str) -> (Output, Duration) {
    let out = tmp(name);
    // RUN without its `--epochs 2`, running long enough to be interrupted.
    let at = RUN.iter().position(|a| *a == "--epochs").unwrap();
    let mut args: Vec<&str> = RUN[..at].iter().chain(&RUN[at + 2..]).copied().collect();
    args.extend(["--epochs", "1000", "--dist-timeout", "5", "--out", out.to_str().unwrap()]);
    let child = mpirun(3, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    // The ranks are this mpirun's child processes (OpenMPI starts local
    // ranks itself): never another test's job running at the same time.
    let parent = child.id().to_string();
    let mut victim = None;
    while victim.is_none() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(500));
        let ps = Command::new("pgrep").args(["-n", "-P", &parent, "nw"]).output().unwrap();
        victim = String::from_utf8_lossy(&ps.stdout).lines().next().map(str::to_string);
    }
    let victim = victim.expect("the ranks started");
    // Let the run reach its steps.
    std::thread::sleep(Duration::from_secs(2));
    let k = Command::new("kill").args([signal, &victim]).status().unwrap();
    assert!(k.success());
    let t = Instant::now();
    let o = child.wait_with_output().unwrap();
    if signal == "-STOP" {
        let _ = Command::new("kill").args(["-KILL", &victim]).status();
    }
    let _ = std::fs::remove_dir_all(&out);
    (o, t.elapsed())
}

#[test]
fn a_killed_rank_ends_the_job_with_an_error() {
    let (o, took) = signal_a_rank("-KILL", "killed");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let s = text(&o);
    assert!(s.contains("rank"), "the error names a rank: {s}");
}

#[test]
fn a_stalled_rank_ends_the_job_naming_it_within_the_timeout() {
    let (o, took) = signal_a_rank("-STOP", "stalled");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let s = text(&o);
    assert!(s.contains("did not answer"), "{s}");
}

/// An error on one rank only (rank 0 cannot write its output directory)
/// ends the whole job at once with that error's exit code, instead of the
/// other ranks waiting in their next collective until the timeout.
#[test]
fn an_error_on_one_rank_ends_the_job_with_its_exit_code() {
    let dir = tmp("not-a-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("file");
    std::fs::write(&file, b"").unwrap();
    let out = file.join("run");
    let t = Instant::now();
    let o =
        mpirun(2, &["train", "--distributed", "--accumulate", "2", "--epochs", "2", "--dist-timeout", "120"])
            .args(["--out", out.to_str().unwrap()])
            .output()
            .unwrap();
    assert_eq!(o.status.code(), Some(6), "an I/O error's exit code: {}", text(&o));
    assert!(t.elapsed() < Duration::from_secs(60), "took {:?}", t.elapsed());
    assert!(text(&o).contains("rank 0") && text(&o).contains("Not a directory"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
