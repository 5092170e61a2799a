//! Frozen parameters and weight averaging through a whole run
//! (`train.freeze`, `train.ema`, `train.swa_start`): frozen tensors keep
//! their initial bits and have no optimizer state; averaged runs save the
//! averaged weights; a run resumed after its first epoch ends with the same
//! bytes as one that never stopped.

use std::path::PathBuf;

use nw_nn::Module;
use nw_train::session::{self, Quiet, files};
use nw_train::{RunConfig, build_run};

fn cfg(epochs: u64) -> RunConfig {
    let mut c = RunConfig::default();
    c.train.epochs = epochs;
    c.model.hidden = vec![16];
    c.train.batch = nw_train::config::BatchMode::Mini(128);
    c
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nw-avg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn bits(run: &nw_train::Run) -> Vec<(String, Vec<u32>)> {
    run.trainer
        .named_parameters()
        .iter()
        .map(|(n, p)| (n.clone(), p.value().to_vec().iter().map(|x| x.to_bits()).collect()))
        .collect()
}

/// Trains `c` uninterrupted (with a checkpoint after every epoch), then
/// resumes the epoch-1 checkpoint in another directory; returns both
/// `model.safetensors` files.
fn straight_and_resumed(c: &RunConfig, name: &str) -> (Vec<u8>, Vec<u8>) {
    let mut c = c.clone();
    c.train.checkpoint_every = 1;
    let a = tmp(&format!("{name}-a"));
    let mut run = build_run(&c).unwrap();
    session::fit(&mut run, &c, Some(&a), &mut Quiet).unwrap();
    let straight = std::fs::read(a.join(files::MODEL)).unwrap();
    let b = tmp(&format!("{name}-b"));
    std::fs::create_dir_all(&b).unwrap();
    std::fs::copy(a.join("checkpoint-epoch1.nwck"), b.join(files::CHECKPOINT)).unwrap();
    let (cfg, mut run) = session::resume_run(&b).unwrap();
    assert_eq!(run.trainer.epoch, 1);
    session::fit(&mut run, &cfg, Some(&b), &mut Quiet).unwrap();
    let resumed = std::fs::read(b.join(files::MODEL)).unwrap();
    let _ = (std::fs::remove_dir_all(&a), std::fs::remove_dir_all(&b));
    (straight, resumed)
}

#[test]
fn frozen_tensors_keep_their_bits_and_have_no_optimizer_state() {
    let mut c = cfg(2);
    c.train.freeze = vec!["0.*".into()];
    let mut run = build_run(&c).unwrap();
    let before = bits(&run);
    assert_eq!(
        run.trainer.frozen.iter().cloned().collect::<Vec<_>>(),
        ["0.bias".to_string(), "0.weight".to_string()]
    );
    session::fit(&mut run, &c, None, &mut Quiet).unwrap();
    let after = bits(&run);
    for ((n, b), (_, a)) in before.iter().zip(&after) {
        if n.starts_with("0.") {
            assert_eq!(a, b, "frozen {n} changed");
        } else {
            assert_ne!(a, b, "trained {n} did not change");
        }
    }
    // Adam's moments exist for the trainable tensors (the last layer's,
    // [10, 16] and [10]) only: nothing of the frozen shapes [16, 64], [16].
    let sd = run.trainer.optimizer.state_dict();
    let shapes: Vec<Vec<usize>> = sd.tensors.values().map(|t| t.shape().to_vec()).collect();
    for want in [vec![10, 16], vec![10]] {
        assert!(shapes.contains(&want), "no optimizer state of shape {want:?}: {shapes:?}");
    }
    for frozen in [vec![16, 64], vec![16]] {
        assert!(!shapes.contains(&frozen), "optimizer state of frozen shape {frozen:?}: {shapes:?}");
    }
    assert_eq!(sd.scalars.get("param_groups.0.params").copied().unwrap_or(2.0), 2.0);
    // A frozen run resumes bit-identically.
    let (a, b) = straight_and_resumed(&c, "freeze");
    assert_eq!(a, b);
}

#[test]
fn ema_runs_save_the_average_and_resume_byte_identically() {
    let mut c = cfg(2);
    c.train.ema = Some(0.9);
    let dir = tmp("ema");
    let mut run = build_run(&c).unwrap();
    session::fit(&mut run, &c, Some(&dir), &mut Quiet).unwrap();
    let avg = std::fs::read(dir.join(files::MODEL)).unwrap();
    let raw = std::fs::read(dir.join(files::MODEL_RAW)).unwrap();
    assert_ne!(avg, raw, "the averaged weights equal the trained ones");
    // The raw file holds the model's own (trained) weights.
    assert_eq!(raw, nw_nn::state::to_safetensors(&run.trainer.model).unwrap());
    let a = run.trainer.average.as_ref().unwrap();
    assert_eq!(a.average.n_averaged(), run.trainer.step);
    let _ = std::fs::remove_dir_all(&dir);
    let (a, b) = straight_and_resumed(&c, "ema");
    assert_eq!(a, b);
}

#[test]
fn swa_averages_epoch_ends_from_its_start_and_resumes_byte_identically() {
    let mut c = cfg(3);
    c.train.swa_start = Some(2);
    let mut run = build_run(&c).unwrap();
    session::fit(&mut run, &c, None, &mut Quiet).unwrap();
    assert_eq!(run.trainer.average.as_ref().unwrap().average.n_averaged(), 2);
    let (a, b) = straight_and_resumed(&c, "swa");
    assert_eq!(a, b);
}

#[test]
fn swa_lr_replaces_the_schedule_from_the_swa_start_and_resumes_byte_identically() {
    let mut c = cfg(4);
    c.schedule = nw_train::config::ScheduleConfig::Step { step_size: 1, gamma: 0.5 };
    c.train.swa_start = Some(2);
    c.train.swa_lr = Some(0.01);
    c.train.swa_anneal_epochs = 2;
    c.train.checkpoint_every = 1;
    c.train.keep_checkpoints = 4;
    let lr0 = c.optim.lr();
    // torch's recipe: scheduler.step() after epoch 1; from epoch 2 on
    // swa_scheduler.step(), SWALR started from the rate then in effect
    // (lr0 / 2): alpha(t) = (1 - cos(pi t)) / 2, t = min(1, k / 2).
    let from = lr0 * 0.5;
    let swalr = |k: f64| {
        let a = (1.0 - (std::f64::consts::PI * (k / 2.0f64).min(1.0)).cos()) / 2.0;
        0.01 * a + from * (1.0 - a)
    };
    let want = [from, swalr(1.0), swalr(2.0), swalr(3.0)];
    let a = tmp("swalr-a");
    let mut run = build_run(&c).unwrap();
    session::fit(&mut run, &c, Some(&a), &mut Quiet).unwrap();
    // the history went to metrics.csv as the run went
    assert!(run.trainer.history.is_empty());
    let history = nw_train::report::read_metrics_csv(&a.join("metrics.csv")).unwrap();
    let got: Vec<f64> = history.iter().map(|r| r.lr).collect();
    assert_eq!(got.len(), 4);
    for (e, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-12 * w.abs(), "epoch {}: lr {g}, want {w} (all: {got:?})", e + 1);
    }
    assert_eq!(got[3], 0.01, "held at swa_lr after the annealing");
    assert_eq!(run.trainer.optimizer.lr(), 0.01);
    // Resumed after the switch (epoch 3's checkpoint): the same bytes.
    let straight = std::fs::read(a.join(files::MODEL)).unwrap();
    let b = tmp("swalr-b");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::copy(a.join("checkpoint-epoch3.nwck"), b.join(files::CHECKPOINT)).unwrap();
    let (cfg3, mut resumed) = session::resume_run(&b).unwrap();
    assert_eq!(resumed.trainer.epoch, 3);
    session::fit(&mut resumed, &cfg3, Some(&b), &mut Quiet).unwrap();
    assert_eq!(std::fs::read(b.join(files::MODEL)).unwrap(), straight);
    let _ = (std::fs::remove_dir_all(&a), std::fs::remove_dir_all(&b));
    // And from before the switch (epoch 1).
    let (x, y) = straight_and_resumed(&c, "swalr");
    assert_eq!(x, y);
}

#[test]
fn batchnorm_models_get_their_statistics_recomputed_for_the_average() {
    // A BatchNorm model: the averaged model's running statistics come from
    // update_bn, and the raw model's buffers are left as training left them.
    let mut c = RunConfig::from_toml(
        "[model]\nkind = \"sequential\"\nlayer = [{ type = \"linear\", out = 16 }, { type = \"batch_norm\" }, \
         { type = \"relu\" }, { type = \"linear\" }]\n",
    )
    .unwrap();
    c.train.epochs = 2;
    c.train.batch = nw_train::config::BatchMode::Mini(128);
    c.train.ema = Some(0.5);
    let mut run = build_run(&c).unwrap();
    session::fit(&mut run, &c, None, &mut Quiet).unwrap();
    let buffers_before: Vec<Vec<u32>> = run
        .trainer
        .model
        .named_buffers()
        .iter()
        .map(|(_, b)| b.tensor().to_vec().iter().map(|x| x.to_bits()).collect())
        .collect();
    let nw_train::Run { trainer, loader, test, .. } = &mut run;
    let m1 = trainer.with_averaged(Some(loader), |t| t.evaluate(test, 1024)).unwrap();
    let m2 = trainer.with_averaged(Some(loader), |t| t.evaluate(test, 1024)).unwrap();
    assert_eq!(m1, m2);
    let buffers_after: Vec<Vec<u32>> = run
        .trainer
        .model
        .named_buffers()
        .iter()
        .map(|(_, b)| b.tensor().to_vec().iter().map(|x| x.to_bits()).collect())
        .collect();
    assert_eq!(buffers_before, buffers_after);
}
