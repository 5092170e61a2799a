//! Killed, corrupted, locked and full: the `nw` binary's run directory under
//! failure (issue 13). Each test drives the real binary as a child process.
//!
//! `cargo test --workspace --release` (CI) runs these against the release
//! binary; in the debug profile they run the same checks on a debug build.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nw_train::Checkpoint;
use nw_train::checkpoint::is_temp_name;
use nw_train::session::files;

fn nw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nw")).args(args).output().expect("nw runs")
}

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_nw"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nw starts")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nw-rel-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The files a resumed run must reproduce byte for byte.
const REPRODUCED: [&str; 3] = ["model.safetensors", "metrics.csv", "monitor.jsonl"];

fn same_outputs(a: &Path, b: &Path, what: &str) {
    for f in REPRODUCED {
        let x = std::fs::read(a.join(f)).unwrap_or_else(|e| panic!("{what}: {}: {e}", a.join(f).display()));
        let y = std::fs::read(b.join(f)).unwrap_or_else(|e| panic!("{what}: {}: {e}", b.join(f).display()));
        assert!(x == y, "{what}: {f} differs from the uninterrupted run");
    }
}

/// Every checkpoint file in `dir` (temporary files aside) verifies; returns
/// their names and the number of temporary files present.
fn all_checkpoints_verify(dir: &Path, what: &str) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut temps = 0;
    let Ok(rd) = std::fs::read_dir(dir) else { return (names, 0) };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if is_temp_name(&name) {
            temps += 1;
        } else if files::is_checkpoint(&name) {
            if let Err(err) = Checkpoint::load(&e.path()) {
                panic!("{what}: torn or corrupted checkpoint on disk: {err}");
            }
            names.push(name);
        }
    }
    names.sort();
    (names, temps)
}

/// A small seeded generator for the kill moments (SplitMix64).
struct Moments(u64);
impl Moments {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, max).
    fn below(&mut self, max: Duration) -> Duration {
        let us = max.as_micros().max(1) as u64;
        Duration::from_micros(self.next() % us)
    }
}

/// The kill-and-resume run: the digits MLP with a checkpoint after every
/// step, so that kills land inside checkpoint writes as often as between them.
const KILL_RUN: [&str; 10] =
    ["--dataset", "digits", "--hidden", "16", "--epochs", "3", "--batch", "32", "--monitor-every", "10"];

#[test]
fn sigkill_at_twenty_moments_then_resume_is_bit_identical_and_nothing_is_torn() {
    // The uninterrupted reference, without step checkpoints: pausing to write
    // them must not change a bit either.
    let reference = tmp("kill-ref");
    let mut args = vec!["train", "--out", reference.to_str().unwrap()];
    args.extend_from_slice(&KILL_RUN);
    let o = nw(&args);
    assert!(o.status.success(), "{}", text(&o));

    // One uninterrupted run with step checkpoints, to time the kills.
    let timed = tmp("kill-timed");
    let mut args = vec!["train", "--out", timed.to_str().unwrap(), "--checkpoint-every-steps", "1"];
    args.extend_from_slice(&KILL_RUN);
    let started = Instant::now();
    let o = nw(&args);
    let whole = started.elapsed();
    assert!(o.status.success(), "{}", text(&o));
    same_outputs(&reference, &timed, "a run with a checkpoint after every step");
    let (kept, temps) = all_checkpoints_verify(&timed, "uninterrupted");
    assert_eq!(temps, 0, "temporary files left by a finished run");
    // checkpoint.nwck and the last 3 step checkpoints.
    assert_eq!(kept.len(), 4, "{kept:?}");

    let cut = tmp("kill-cut");
    let cut_s = cut.to_str().unwrap().to_string();
    let mut rng = Moments(13);
    let (mut kills, mut torn_writes, mut progressed, mut last_step) = (0, 0, 0, 0u64);
    let mut finished_early = 0;
    while kills < 20 {
        let fresh = !cut.join(files::CHECKPOINT).is_file();
        let mut args: Vec<&str> = if fresh {
            let mut a = vec!["train", "--out", &cut_s, "--checkpoint-every-steps", "1"];
            a.extend_from_slice(&KILL_RUN);
            a
        } else {
            vec!["resume", &cut_s]
        };
        args.push("--threads");
        args.push("1");
        let mut child = spawn(&args);
        // A moment in the first quarter of a whole run (start-up included).
        let at = rng.below(whole / 4);
        std::thread::sleep(at);
        if let Some(status) = child.try_wait().unwrap() {
            // It finished first: the run is complete; start it over.
            assert!(status.success(), "exited with {status} before the kill");
            finished_early += 1;
            assert!(finished_early < 20, "the runs keep finishing before the kill");
            std::fs::remove_dir_all(&cut).unwrap();
            continue;
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            // It exited on its own between `try_wait` and the signal (a
            // signal to an exited, unreaped child is not delivered): the
            // run is complete, as in the branch above.
            finished_early += 1;
            assert!(finished_early < 20, "the runs keep finishing before the kill");
            std::fs::remove_dir_all(&cut).unwrap();
            continue;
        }
        kills += 1;
        let (_, temps) = all_checkpoints_verify(&cut, &format!("after kill {kills} at {at:?}"));
        torn_writes += temps;
        if cut.join(files::CHECKPOINT).is_file() {
            let step = Checkpoint::load(&cut.join(files::CHECKPOINT)).unwrap().progress().step;
            if step > last_step {
                progressed += 1;
            }
            last_step = step;
        }
    }
    // The last resume runs to the end.
    let o = if cut.join(files::CHECKPOINT).is_file() {
        nw(&["resume", &cut_s])
    } else {
        let mut a = vec!["train", "--out", &cut_s, "--checkpoint-every-steps", "1"];
        a.extend_from_slice(&KILL_RUN);
        nw(&a)
    };
    assert!(o.status.success(), "{}", text(&o));
    let (_, temps) = all_checkpoints_verify(&cut, "after the final resume");
    assert_eq!(temps, 0, "temporary files left after a resume");
    same_outputs(&reference, &cut, "20 kills and resumes");
    eprintln!(
        "20 kills: {progressed} after progress, {torn_writes} interrupted writes seen, {finished_early} runs finished first; run {whole:?}"
    );
    assert!(progressed >= 3, "too few kills landed after progress ({progressed})");
    for d in [reference, timed, cut] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn a_corrupted_newest_checkpoint_is_reported_and_the_previous_one_used() {
    let a = tmp("corrupt");
    let a_s = a.to_str().unwrap();
    let run =
        ["--dataset", "iris", "--batch", "16", "--epochs", "5", "--hidden", "8", "--checkpoint-every", "1"];
    let mut args = vec!["train", "--out", a_s];
    args.extend_from_slice(&run);
    let o = nw(&args);
    assert!(o.status.success(), "{}", text(&o));
    // keep_checkpoints defaults to 3: epochs 3, 4, 5 and checkpoint.nwck.
    let (kept, _) = all_checkpoints_verify(&a, "finished run");
    assert_eq!(
        kept,
        ["checkpoint-epoch3.nwck", "checkpoint-epoch4.nwck", "checkpoint-epoch5.nwck", "checkpoint.nwck"],
    );
    let reference = tmp("corrupt-ref");
    std::fs::create_dir_all(&reference).unwrap();
    for f in REPRODUCED {
        std::fs::copy(a.join(f), reference.join(f)).unwrap();
    }
    // Damage the newest state: epoch 5's file and checkpoint.nwck (its copy),
    // one byte in the middle of each.
    for f in ["checkpoint-epoch5.nwck", "checkpoint.nwck"] {
        let p = a.join(f);
        let mut b = std::fs::read(&p).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x40;
        std::fs::write(&p, b).unwrap();
    }
    let r = nw(&["resume", a_s]);
    let s = text(&r);
    assert!(r.status.success(), "{s}");
    assert!(s.contains("skipping checkpoint") && s.contains("checkpoint-epoch5.nwck"), "{s}");
    assert!(s.contains("SHA-256"), "{s}");
    assert!(s.contains("checkpoint-epoch4.nwck at epoch 4"), "{s}");
    same_outputs(&reference, &a, "resume from the previous checkpoint");
    // The rewritten files verify again.
    all_checkpoints_verify(&a, "after the resume");
    // A single damaged file named directly is still an error (exit 5).
    let p = a.join("checkpoint-epoch4.nwck");
    let mut b = std::fs::read(&p).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 1;
    std::fs::write(&p, b).unwrap();
    let r = nw(&["resume", p.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(5), "{}", text(&r));
    for d in [a, reference] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn a_second_run_on_the_same_directory_is_refused_and_a_killed_run_leaves_no_stale_lock() {
    let d = tmp("lock");
    let d_s = d.to_str().unwrap();
    let long = ["--dataset", "iris", "--batch", "online", "--epochs", "100000", "--hidden", "4"];
    let mut args = vec!["train", "--out", d_s];
    args.extend_from_slice(&long);
    let mut first = spawn(&args);
    let started = Instant::now();
    while !d.join(files::CONFIG).is_file() {
        assert!(started.elapsed() < Duration::from_secs(60), "the first run did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = nw(&["train", "--out", d_s, "--dataset", "iris", "--epochs", "1"]);
    let s = text(&second);
    assert_eq!(second.status.code(), Some(7), "{s}");
    assert!(s.contains("in use by another run") && s.contains(&format!("process {}", first.id())), "{s}");
    // resume is refused too
    let third = nw(&["resume", d_s]);
    if d.join(files::CHECKPOINT).is_file() {
        assert_eq!(third.status.code(), Some(7), "{}", text(&third));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // The lock file stays, but the lock died with its holder.
    assert!(d.join(files::LOCK).is_file());
    let after = nw(&["train", "--out", d_s, "--dataset", "iris", "--epochs", "1"]);
    assert!(after.status.success(), "{}", text(&after));
    let _ = std::fs::remove_dir_all(&d);
}

/// Runs `nw` with a file-size limit (RLIMIT_FSIZE) of `limit` bytes and
/// SIGXFSZ ignored, so that a write past the limit fails with EFBIG, as a
/// full disk does. Works as root, where a read-only mode bit would not.
fn nw_with_file_limit(args: &[&str], limit: u64) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nw"));
    cmd.args(args);
    // SAFETY: only async-signal-safe calls (signal, setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit { rlim_cur: limit as libc::rlim_t, rlim_max: limit as libc::rlim_t };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().expect("nw runs")
}

#[test]
fn a_full_disk_stops_with_exit_6_and_the_last_checkpoint_stays_loadable() {
    // The monitor at every step: monitor.jsonl grows past the (constant)
    // checkpoint size, and the disk fills while it is appended to.
    let run = [
        "--dataset",
        "iris",
        "--batch",
        "16",
        "--epochs",
        "6",
        "--hidden",
        "8",
        "--checkpoint-every",
        "1",
        "--monitor-every",
        "1",
    ];
    let free = tmp("full-free");
    let mut args = vec!["train", "--out", free.to_str().unwrap(), "--keep-checkpoints", "0"];
    args.extend_from_slice(&run);
    let o = nw(&args);
    assert!(o.status.success(), "{}", text(&o));
    // Checkpoints stay the same size: the history is in the log files.
    let size = |e: u64| std::fs::metadata(free.join(format!("checkpoint-epoch{e}.nwck"))).unwrap().len();
    let ck_max = (1..=6).map(size).max().unwrap();
    assert!(size(6) <= size(1) + 64, "checkpoints grow: {} -> {}", size(1), size(6));
    // monitor.jsonl's length at the end of epochs 2 and 3, from its lines.
    let metrics = nw_train::report::read_metrics_csv(&free.join(files::METRICS)).unwrap();
    let monitor = std::fs::read_to_string(free.join(files::MONITOR)).unwrap();
    let upto = |step: u64| -> u64 {
        monitor
            .lines()
            .filter(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["step"].as_u64().unwrap() <= step
            })
            .map(|l| l.len() as u64 + 1)
            .sum()
    };
    let (m2, m3) = (upto(metrics[1].step), upto(metrics[2].step));
    // A limit that lets everything through up to epoch 2 and stops the
    // monitor log's append at the end of epoch 3.
    let limit = (m2 + m3) / 2;
    assert!(
        limit > ck_max && m2 > ck_max,
        "the test needs the log to outgrow the checkpoint: {m2} vs {ck_max}"
    );
    let full = tmp("full");
    let mut args = vec!["train", "--out", full.to_str().unwrap(), "--keep-checkpoints", "0"];
    args.extend_from_slice(&run);
    let o = nw_with_file_limit(&args, limit);
    let s = text(&o);
    assert_eq!(o.status.code(), Some(6), "{s}");
    assert!(s.contains("File too large") && s.contains(files::MONITOR), "{s}");
    // The last good checkpoint is intact: epoch 2's, loadable, and equal to
    // the unlimited run's; no temporary file is left.
    let (kept, temps) = all_checkpoints_verify(&full, "after the failed write");
    assert_eq!(temps, 0, "temporary files left after a failed write");
    assert!(kept.contains(&"checkpoint.nwck".to_string()), "{kept:?}");
    let ck = Checkpoint::load(&full.join(files::CHECKPOINT)).unwrap();
    assert_eq!(ck.progress().epoch, 2);
    let good = Checkpoint::load(&free.join("checkpoint-epoch2.nwck")).unwrap();
    assert_eq!(ck.model(), good.model());
    // The log holds a torn line past the checkpoint's offset.
    assert!(std::fs::metadata(full.join(files::MONITOR)).unwrap().len() > m2);
    // With room again, resuming cuts the logs back and finishes the run as
    // if nothing happened.
    let r = nw(&["resume", full.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r));
    same_outputs(&free, &full, "resume after a full disk");
    for d in [free, full] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn a_diverged_run_exits_4_and_detect_anomaly_names_the_op() {
    let d = tmp("anomaly");
    let args = [
        "train",
        "--out",
        d.to_str().unwrap(),
        "--optimizer",
        "sgd",
        "--lr",
        "1e6",
        "--hidden",
        "16",
        "--epochs",
        "3",
    ];
    let o = nw(&args);
    let s = text(&o);
    assert_eq!(o.status.code(), Some(4), "{s}");
    assert!(s.contains("training diverged at step") && !s.contains("anomaly detection:"), "{s}");
    let mut with = args.to_vec();
    with.push("--detect-anomaly");
    let o = nw(&with);
    let s = text(&o);
    assert_eq!(o.status.code(), Some(4), "{s}");
    assert!(s.contains("anomaly detection: the ") && s.contains(" pass of `"), "{s}");
    let _ = std::fs::remove_dir_all(&d);
}
