//! The `nw` binary end to end, on small fast runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn nw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nw")).args(args).output().expect("nw runs")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nw-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn quick_train(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["train", "--dataset", "iris", "--batch", "16", "--out", out.to_str().unwrap()];
    if !extra.contains(&"--epochs") {
        args.extend_from_slice(&["--epochs", "6"]);
    }
    args.extend_from_slice(extra);
    nw(&args)
}

#[test]
fn train_writes_every_output_and_reports_accuracy() {
    let out = tmp("train");
    let o = quick_train(&out, &["--hidden", "16", "--lr", "0.02"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = text(&o);
    let line = s.lines().find(|l| l.starts_with("test accuracy: ")).expect("an accuracy line");
    let acc: f64 = line["test accuracy: ".len()..].trim().parse().unwrap();
    assert!(acc > 0.8, "iris after 6 epochs: {acc}");
    for f in [
        "model.safetensors",
        "checkpoint.nwck",
        "metrics.csv",
        "monitor.jsonl",
        "config.toml",
        "loss.svg",
        "loss.png",
        "accuracy.png",
        "weight_norms.svg",
        "update_norms.png",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 7, "header + one line per epoch:\n{csv}");
    let first = std::fs::read_to_string(out.join("monitor.jsonl")).unwrap();
    assert!(first.lines().next().unwrap().contains("\"update_ratio\""));
    // eval, inspect and predict on the saved run
    let e = nw(&["eval", "--model", out.to_str().unwrap()]);
    assert!(e.status.success() && text(&e).contains(line), "{}", text(&e));
    let i = nw(&["inspect", "--model", out.to_str().unwrap()]);
    assert!(i.status.success() && text(&i).contains("0.weight"), "{}", text(&i));
    let mut p = Command::new(env!("CARGO_BIN_EXE_nw"))
        .args(["predict", "--model", out.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    p.stdin.take().unwrap().write_all(b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n").unwrap();
    let po = p.wait_with_output().unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&po.stdout).lines().map(String::from).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("setosa"), "{lines:?}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn resume_from_a_periodic_checkpoint_is_bit_identical() {
    let a = tmp("resume-a");
    let o = quick_train(&a, &["--checkpoint-every", "3", "--dropout", "0.1"]);
    assert!(o.status.success(), "{}", text(&o));
    let c = tmp("resume-c");
    let ck = a.join("checkpoint-epoch3.nwck");
    // --sync-bn on a run trained without it would change its arithmetic: a config error
    let bad = nw(&["resume", ck.to_str().unwrap(), "--sync-bn", "--out", c.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("without train.sync_bn"), "{}", text(&bad));
    let r = nw(&["resume", ck.to_str().unwrap(), "--out", c.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r));
    let wa = std::fs::read(a.join("model.safetensors")).unwrap();
    let wc = std::fs::read(c.join("model.safetensors")).unwrap();
    assert!(wa == wc, "resumed weights differ from the uninterrupted run");
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&c);
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

#[test]
fn resume_after_any_epoch_continues_everything() {
    // Early stopping, dropout, a plateau schedule and the monitor at every
    // step: resuming after each epoch gives the uninterrupted run's bytes.
    let a = tmp("resume-all-a");
    let flags = [
        "--epochs",
        "8",
        "--checkpoint-every",
        "1",
        "--keep-checkpoints",
        "0",
        "--dropout",
        "0.2",
        "--schedule",
        "plateau",
        "--patience",
        "1",
        "--early-stopping",
        "3",
        "--monitor-every",
        "1",
        "--hidden",
        "12",
    ];
    let o = quick_train(&a, &flags);
    assert!(o.status.success(), "{}", text(&o));
    let epochs = std::fs::read_to_string(a.join("metrics.csv")).unwrap().lines().count() - 1;
    for k in 1..epochs {
        let c = tmp(&format!("resume-all-c{k}"));
        let ck = a.join(format!("checkpoint-epoch{k}.nwck"));
        let r = nw(&["resume", ck.to_str().unwrap(), "--out", c.to_str().unwrap()]);
        assert!(r.status.success(), "{}", text(&r));
        same_outputs(&a, &c, &format!("resume after epoch {k}"));
        let _ = std::fs::remove_dir_all(&c);
    }
    // A pruned run keeps its masks through a resume.
    let p = tmp("resume-pruned");
    let o = nw(&[
        "prune",
        "--model",
        a.to_str().unwrap(),
        "--sparsity",
        "0.6",
        "--fine-tune-epochs",
        "3",
        "--out",
        p.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let first = (1..=20)
        .find(|e| p.join(format!("checkpoint-epoch{e}.nwck")).is_file())
        .expect("a periodic checkpoint");
    let c = tmp("resume-pruned-c");
    let ck = p.join(format!("checkpoint-epoch{first}.nwck"));
    let r = nw(&["resume", ck.to_str().unwrap(), "--out", c.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r));
    same_outputs(&p, &c, "resume of a pruned run");
    for d in [a, p, c] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn per_optimizer_defaults_and_every_schedule_from_the_cli() {
    let show = |args: &[&str]| -> String {
        let mut v = vec!["train", "--print-config"];
        v.extend_from_slice(args);
        let o = nw(&v);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // Lion: the paper's lr 1e-4 and betas (0.9, 0.99); Adadelta: torch's lr 1.0.
    let lion = show(&["--optimizer", "lion"]);
    assert!(lion.contains("lr = 0.0001") && lion.contains("0.99,"), "{lion}");
    let adadelta = show(&["--optimizer", "adadelta"]);
    assert!(adadelta.contains("lr = 1.0"), "{adadelta}");
    // eps reaches every optimizer that has one.
    for o in ["adam", "adamw", "adagrad", "rmsprop", "adadelta", "adamax", "nadam", "radam"] {
        let c = show(&["--optimizer", o, "--eps", "0.125"]);
        assert!(c.contains("eps = 0.125"), "{o}: {c}");
    }
    // --no-nesterov undoes a true from a file.
    let dir = tmp("nesterov");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("run.toml");
    std::fs::write(&f, "[optim]\nname = \"sgd\"\nmomentum = 0.9\nnesterov = true\n").unwrap();
    let c = show(&["--config", f.to_str().unwrap(), "--no-nesterov"]);
    assert!(c.contains("nesterov = false"), "{c}");
    let c = show(&["--config", f.to_str().unwrap()]);
    assert!(c.contains("nesterov = true"), "{c}");
    // Every schedule trains from the CLI.
    for s in [
        "none",
        "constant",
        "step",
        "exponential",
        "cosine",
        "warmup-cosine",
        "warm-restarts",
        "linear",
        "polynomial",
        "cyclic",
        "onecycle",
        "plateau",
    ] {
        let out = dir.join(s);
        // 3 epochs: warmup-cosine's default 2 warm-up epochs must leave some to anneal
        let o = quick_train(&out, &["--epochs", "3", "--schedule", s]);
        assert!(o.status.success(), "--schedule {s}: {}", text(&o));
    }
    let out = dir.join("multistep");
    let o = quick_train(&out, &["--epochs", "3", "--schedule", "multistep", "--milestones", "1,2"]);
    assert!(o.status.success(), "multistep: {}", text(&o));
    let out = dir.join("custom");
    let o = quick_train(
        &out,
        &[
            "--epochs",
            "2",
            "--set",
            "schedule={kind = \"custom\", per_step = true, schedule = { Step = { step_size = 3, gamma = 0.5 } }}",
        ],
    );
    assert!(o.status.success(), "custom: {}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Batch norm on `[C]` needs two rows per batch (or micro-shard) in
/// training: a run whose batches would give it one is refused before its
/// first step, naming the layer and the fix; `--drop-last` skips the short
/// last batch; spatial batch norm (`H W >= 2` values per row) is not refused.
#[test]
fn a_batch_of_one_row_for_batch_norm_is_refused_up_front() {
    let out = tmp("bn-rows");
    let o = out.to_str().unwrap();
    let bn1d =
        "model.layer=[{type=\"linear\", out=16}, {type=\"batch_norm\"}, {type=\"relu\"}, {type=\"linear\"}]";
    let conv = "model.layer=[{type=\"reshape\", shape=[1, 8, 8]}, {type=\"conv2d\", out=4, kernel=3}, \
                {type=\"batch_norm\"}, {type=\"relu\"}, {type=\"flatten\"}, {type=\"linear\"}]";
    // The digits' 1,259 training rows: batch 1258 leaves a last batch of 1 row.
    let r = nw(&["train", "--batch", "1258", "--epochs", "1", "--set", bn1d, "--out", o]);
    assert_eq!(r.status.code(), Some(2), "{}", text(&r));
    let t = text(&r);
    assert!(t.contains("last batch of each epoch has 1 row") && t.contains("model.layer[1]"), "{t}");
    assert!(t.contains("--drop-last"), "{t}");
    assert!(!out.join("metrics.csv").exists(), "refused before the first step");
    // Batch 96 cut into 6 micro-shards: the last batch's 11 rows give shards of 1.
    let r = nw(&["train", "--batch", "96", "--accumulate", "6", "--epochs", "1", "--set", bn1d, "--out", o]);
    assert_eq!(r.status.code(), Some(2), "{}", text(&r));
    assert!(text(&r).contains("6 micro-shards (train.accumulate) of as few as 1 row"), "{}", text(&r));
    // Every batch too small: 8 rows in 8 micro-shards.
    let r = nw(&["train", "--batch", "8", "--accumulate", "8", "--epochs", "1", "--set", bn1d, "--out", o]);
    assert_eq!(r.status.code(), Some(2), "{}", text(&r));
    assert!(text(&r).contains("a batch has 8 rows"), "{}", text(&r));
    // --drop-last: one batch an epoch, trains.
    let r = nw(&["train", "--batch", "1258", "--epochs", "2", "--drop-last", "--set", bn1d, "--out", o]);
    assert!(r.status.success(), "{}", text(&r));
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    // Spatial batch norm sees 36 values per channel in a 1-row batch: allowed.
    let r = nw(&["train", "--batch", "1258", "--epochs", "1", "--set", conv, "--out", o]);
    assert!(r.status.success(), "{}", text(&r));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_huge_layer_is_a_configuration_error_not_an_abort() {
    let out = tmp("huge");
    // Refused from the configuration before any layer is built: the second
    // case used to build (and initialise) its 1G-parameter first layer, 4 GiB
    // and 14 s, before the second layer was refused.
    let cases = [
        ("4000000000", &["model.hidden[0]", "1..=16777216"][..]),
        ("16777216,16777216", &["model.layer[2]", "GiB", "available"][..]),
    ];
    for (hidden, want) in cases {
        let t = std::time::Instant::now();
        let o = nw(&["train", "--hidden", hidden, "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "--hidden {hidden}: {}", text(&o));
        let t2 = text(&o);
        assert!(want.iter().all(|w| t2.contains(w)), "{t2}");
        assert!(t.elapsed() < std::time::Duration::from_secs(10), "--hidden {hidden}: {:?}", t.elapsed());
    }
}

#[test]
fn help_and_readme_list_exactly_the_registry() {
    let o = nw(&["train", "--help"]);
    let help = text(&o);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let listed = |text: &str, marker: &str| -> Vec<String> {
        let line =
            text.lines().find(|l| l.contains(marker)).unwrap_or_else(|| panic!("no line with {marker}"));
        let inner = line.split(marker).nth(1).unwrap();
        let inner = inner.split(']').next().unwrap();
        inner.split(',').map(|s| s.trim().trim_matches('`').to_string()).filter(|s| !s.is_empty()).collect()
    };
    let optimizers: Vec<String> = nw_optim::OPTIMIZERS.iter().map(|(n, _)| n.to_string()).collect();
    let schedules: Vec<String> = nw_train::config::SCHEDULES.iter().map(|s| s.to_string()).collect();
    let help_opt = help.lines().find(|l| l.contains("--optimizer <")).unwrap();
    assert_eq!(listed(help_opt, "[possible values: "), optimizers);
    let help_sch = help.lines().find(|l| l.contains("--schedule <")).unwrap();
    assert_eq!(listed(help_sch, "[possible values: "), schedules);
    assert_eq!(listed(&readme, "Optimizers (`optim.name`): ["), optimizers);
    assert_eq!(listed(&readme, "Schedules (`schedule.kind`): ["), schedules);
}

#[test]
fn sparse_adam_on_a_dense_model_is_a_configuration_error_naming_the_parameter() {
    // torch's SparseAdam raises on the first dense gradient; nw refuses the run up front
    let dir = tmp("sparse-adam");
    let o = quick_train(&dir.join("o"), &["--optimizer", "sparse_adam"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("sparse_adam") && t.contains("`0.weight`") && t.contains("dense gradient"), "{t}");
    // torch's own hyper-parameter check: lr must be > 0
    let o = quick_train(&dir.join("o"), &["--optimizer", "sparse_adam", "--lr", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("lr"), "{}", text(&o));
}

#[test]
fn errors_have_distinct_exit_codes_and_clear_messages() {
    // bad config key -> 2, naming the key
    let dir = tmp("bad-config");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("run.toml");
    std::fs::write(&cfg, "[optim]\nlearnig_rate = 0.1\n").unwrap();
    let o = nw(&["train", "--config", cfg.to_str().unwrap(), "--out", dir.join("o").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("learnig_rate"), "{}", text(&o));
    // unknown optimizer -> 2
    let o = nw(&["train", "--optimizer", "adamm", "--out", dir.join("o").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // missing data set -> 3, saying how to get it
    let o = nw(&[
        "train",
        "--dataset",
        "csv",
        "--csv",
        "/nonexistent/data.csv",
        "--out",
        dir.join("o").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    // divergence -> 4, saying where and what to do
    let o = nw(&[
        "train",
        "--dataset",
        "iris",
        "--optimizer",
        "sgd",
        "--lr",
        "1e30",
        "--epochs",
        "2",
        "--out",
        dir.join("o").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("diverged at step"), "{}", text(&o));
    // corrupted checkpoint -> 5
    let run = tmp("corrupt");
    let t = quick_train(&run, &["--epochs", "1"]);
    assert!(t.status.success(), "{}", text(&t));
    let ck = run.join("checkpoint.nwck");
    let mut bytes = std::fs::read(&ck).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0xFF;
    std::fs::write(&ck, &bytes).unwrap();
    let o = nw(&["eval", "--model", run.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(text(&o).contains("corrupted"), "{}", text(&o));
    std::fs::write(&ck, &bytes[..n / 2]).unwrap();
    let o = nw(&["resume", ck.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&run);
}

#[test]
fn help_explains_the_options() {
    let o = nw(&["train", "--help"]);
    let s = text(&o);
    for opt in ["--optimizer", "--schedule", "--batch", "--dropout", "--init", "--out", "--early-stopping"] {
        assert!(s.contains(opt), "--help lacks {opt}");
    }
}

#[test]
fn default_train_reaches_97_percent_on_digits() {
    // The README's first command: `nw train` with no options (MLP on the
    // embedded UCI digits, seed 0). Its result is bit-reproducible, so this
    // is an exact check of the default run, not a statistical one.
    let out = tmp("default");
    let o = nw(&["train", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let s = text(&o);
    let line = s.lines().find(|l| l.starts_with("test accuracy: ")).expect("an accuracy line");
    let acc: f64 = line["test accuracy: ".len()..].trim().parse().unwrap();
    assert!(acc >= 0.97, "default run: {acc}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn sigint_writes_a_checkpoint_and_resuming_is_bit_identical() {
    let flags = ["--batch", "online", "--epochs", "600", "--hidden", "8", "--monitor-every", "0"];
    let full = tmp("sigint-full");
    let mut args = vec!["train", "--dataset", "iris", "--out", full.to_str().unwrap()];
    args.extend_from_slice(&flags);
    let o = nw(&args);
    assert!(o.status.success(), "{}", text(&o));
    let cut = tmp("sigint-cut");
    let mut args = vec!["train", "--dataset", "iris", "--out", cut.to_str().unwrap()];
    args.extend_from_slice(&flags);
    let child = Command::new(env!("CARGO_BIN_EXE_nw"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training is under way (the output directory exists), then interrupt.
    let started = std::time::Instant::now();
    while !cut.join("config.toml").is_file() && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted at step"), "{err}");
    let r = nw(&["resume", cut.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r));
    same_outputs(&full, &cut, "resume after SIGINT");
    let _ = std::fs::remove_dir_all(&full);
    let _ = std::fs::remove_dir_all(&cut);
}

/// `nw inspect` prints a template as an explicit layer list; training from
/// that list (with the run's other settings) gives the same weights, byte
/// for byte: the list is the model, not a description of it.
#[test]
fn the_layer_list_inspect_prints_trains_the_same_model() {
    let a = tmp("list-template");
    let o = nw(&[
        "train",
        "--model",
        "cnn",
        "--channels",
        "4",
        "--width",
        "8",
        "--epochs",
        "1",
        "--batch",
        "64",
        "--out",
        a.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let i = nw(&["inspect", "--model", a.to_str().unwrap()]);
    assert!(i.status.success(), "{}", text(&i));
    let s = String::from_utf8_lossy(&i.stdout).to_string();
    let start = s.find("# the same model as an explicit layer list").expect("a layer list is printed");
    let block = &s[start..];
    let end = block.find("\n\n").expect("the block ends");
    let model = &block[block.find("[model]").unwrap()..end];
    assert!(model.contains("type = \"conv2d\""), "{model}");
    // the run's own config with [model] replaced by the printed list
    let cfg = std::fs::read_to_string(a.join("config.toml")).unwrap();
    let mut table: toml::Table = toml::from_str(&cfg).unwrap();
    let m: toml::Table = toml::from_str(model).unwrap();
    table.insert("model".into(), m["model"].clone());
    let b = tmp("list-explicit");
    std::fs::create_dir_all(&b).unwrap();
    let cfg_b = b.join("run.toml");
    std::fs::write(&cfg_b, toml::to_string(&table).unwrap()).unwrap();
    let out_b = b.join("run");
    let o = nw(&["train", "--config", cfg_b.to_str().unwrap(), "--out", out_b.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(out_b.join("model.safetensors")).unwrap()
    );
    // a list that does not connect stops before training, naming the layer
    let bad = b.join("bad.toml");
    std::fs::write(
        &bad,
        "[model]\nlayer = [{ type = \"conv2d\", out = 2, kernel = 3 }, { type = \"linear\" }]\n",
    )
    .unwrap();
    let o = nw(&["train", "--config", bad.to_str().unwrap(), "--out", b.join("bad").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("model.layer[0] (conv2d)"), "{}", text(&o));
    assert!(!b.join("bad").join("model.safetensors").exists());
}

#[test]
fn swa_lr_switches_the_rate_at_the_swa_start() {
    let out = tmp("swa-lr");
    let o = quick_train(
        &out,
        &[
            "--epochs",
            "4",
            "--lr",
            "0.02",
            "--schedule",
            "none",
            "--swa-start",
            "2",
            "--swa-lr",
            "0.005",
            "--swa-anneal-epochs",
            "0",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "lr").unwrap_or_else(|| panic!("no lr column: {csv}"));
    let lrs: Vec<f64> = lines.map(|l| l.split(',').nth(col).unwrap().parse().unwrap()).collect();
    // no schedule: 0.02 after epoch 1; SWALR with 0 anneal epochs: 0.005 from epoch 2 on
    let want = [0.02, 0.005, 0.005, 0.005];
    assert_eq!(lrs.len(), want.len(), "{csv}");
    assert!(lrs.iter().zip(want).all(|(g, w)| (g - w).abs() <= 1e-9 * w), "{csv}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn freeze_and_ema_flags_train_inspect_and_refuse_bad_values() {
    let out = tmp("freeze-ema");
    let o = quick_train(&out, &["--epochs", "2", "--freeze", "0.*", "--ema", "0.9"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.join("model-raw.safetensors").is_file());
    let i = nw(&["inspect", "--model", out.to_str().unwrap()]);
    let t = text(&i);
    let row =
        |name: &str| t.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}: {t}"));
    assert!(row("0.weight").ends_with("frozen") && row("0.bias").ends_with("frozen"), "{t}");
    assert!(row("2.weight").ends_with("trained"), "{t}");
    let e = nw(&["eval", "--model", out.to_str().unwrap()]);
    assert!(e.status.success(), "{}", text(&e));
    // predict from the run uses the averaged weights (model.safetensors), not the raw ones
    let rows = out.join("rows.csv");
    std::fs::write(&rows, "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n").unwrap();
    let cfg = out.join("config.toml");
    let predict = |source: &[&str]| {
        let mut args = vec!["predict", "--logits", "--input", rows.to_str().unwrap()];
        args.extend_from_slice(source);
        let o = nw(&args);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let from_run = predict(&["--model", out.to_str().unwrap()]);
    let avg_file = out.join("model.safetensors");
    let raw_file = out.join("model-raw.safetensors");
    let from_avg = predict(&["--weights", avg_file.to_str().unwrap(), "--config", cfg.to_str().unwrap()]);
    let from_raw = predict(&["--weights", raw_file.to_str().unwrap(), "--config", cfg.to_str().unwrap()]);
    assert_eq!(from_run, from_avg);
    assert_ne!(from_run, from_raw);
    for (flag, value, want) in [
        ("--freeze", "9.*", "matches no parameter"),
        ("--ema", "1.5", "train.ema"),
        ("--swa-start", "0", "train.swa_start"),
        ("--swa-lr", "0.01", "needs train.swa_start"),
        ("--swa-anneal-strategy", "sine", "train.swa_anneal_strategy"),
    ] {
        let o = quick_train(&tmp("freeze-bad"), &[flag, value]);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {}", text(&o));
        assert!(text(&o).contains(want), "{flag} {value}: {}", text(&o));
    }
    let _ = std::fs::remove_dir_all(&out);
}
