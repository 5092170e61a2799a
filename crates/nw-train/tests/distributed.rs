//! Data-parallel training over the threads collective: 1, 2, 3 and 4 ranks
//! give byte-identical weights (and batch-norm buffers), a run resumes under
//! another rank count bit-identically, and a dead or stalled rank ends the
//! others with an error naming it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nw_data::{BatchLoader, BatchSize, Dataset, LoaderConfig};
use nw_dist::{DistError, threads};
use nw_nn::{BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, Module, Relu, Sequential};
use nw_optim::Sgd;
use nw_tensor::{Conv2dSpec, Rng};
use nw_train::distributed::Distributed;
use nw_train::session::Quiet;
use nw_train::{LossKind, RunConfig, TrainError, Trainer};

/// Every parameter's and buffer's bits, by name.
fn state_bits(m: &dyn Module) -> Vec<(String, Vec<u32>)> {
    nw_nn::state::state_dict(m)
        .into_iter()
        .map(|(n, v)| {
            let bits = match v {
                nw_nn::BufferValue::F32(t) => t.to_vec().iter().map(|x| x.to_bits()).collect(),
                nw_nn::BufferValue::I64 { data, .. } => data.iter().map(|&x| x as u32).collect(),
            };
            (n, bits)
        })
        .collect()
}

/// Runs `f(rank collective)` on `n` threads and returns every rank's result.
fn on_ranks<T: Send + 'static>(
    n: usize,
    timeout: Duration,
    f: impl Fn(threads::ThreadRank) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let hs: Vec<_> = threads::group(n, timeout)
        .unwrap()
        .into_iter()
        .map(|c| {
            let f = f.clone();
            std::thread::spawn(move || f(c))
        })
        .collect();
    hs.into_iter().map(|h| h.join().unwrap()).collect()
}

fn mlp_config(epochs: u64) -> RunConfig {
    let mut c = RunConfig::default();
    c.train.epochs = epochs;
    c.train.batch = nw_train::config::BatchMode::Mini(100);
    c.train.accumulate = 6;
    c.train.seed = 11;
    c.model.hidden = vec![48, 24];
    c.model.dropout = 0.25;
    c
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nw-dist-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn mlp_with_dropout_same_bits_on_1_2_3_4_ranks() {
    let cfg = mlp_config(2);
    let one = {
        // One process, no collective: the same arithmetic.
        let mut c = cfg.clone();
        c.train.distributed = true;
        let mut run = nw_train::build_run(&c).unwrap();
        nw_train::session::fit(&mut run, &c, None, &mut Quiet).unwrap();
        state_bits(&run.trainer.model)
    };
    for n in 1..=4 {
        let cfg = cfg.clone();
        let all = on_ranks(n, Duration::from_secs(120), move |c| {
            let mut d = Distributed::new(&cfg, Box::new(c)).unwrap();
            d.fit(&cfg, None, &mut Quiet).unwrap();
            state_bits(&d.run.trainer.model)
        });
        for (r, bits) in all.iter().enumerate() {
            assert!(*bits == one, "{n} ranks: rank {r} differs from one process");
        }
    }
}

/// Conv -> BatchNorm2d -> ReLU -> pool -> Linear on 8x8 digits.
fn cnn_trainer(seed: u64) -> Trainer {
    let mut rng = Rng::new(seed);
    let spec = Conv2dSpec { padding: (1, 1), ..Default::default() };
    let model = Sequential::new()
        .with(nw_train::models::Reshape { shape: vec![1, 8, 8] })
        .with(Conv2d::new(1, 6, (3, 3), spec, true, &mut rng).unwrap())
        .with(BatchNorm2d::new(6))
        .with(Relu)
        .with(MaxPool2d::new(2))
        .with(Flatten::default())
        .with(Linear::new(6 * 16, 10, &mut rng));
    let opt = Sgd { lr: 0.05, momentum: 0.9, ..Default::default() }.build(model.parameters()).unwrap();
    let mut t = Trainer::new(model, Box::new(opt), LossKind::CrossEntropy { label_smoothing: 0.0 });
    t.sharding.accumulate = 5;
    t.sharding.per_shard = true;
    t.sharding.seed = seed;
    t
}

fn small_digits() -> Dataset {
    let d = nw_data::digits();
    let idx: Vec<usize> = (0..397).collect();
    d.subset(&idx).unwrap()
}

#[test]
fn cnn_with_batch_norm_same_bits_on_1_2_3_ranks() {
    let data = small_digits();
    let loader = |d: &Dataset| {
        BatchLoader::new(
            d.clone(),
            LoaderConfig { batch_size: BatchSize::Mini(64), seed: 2, ..Default::default() },
        )
        .unwrap()
    };
    let one = {
        let mut t = cnn_trainer(4);
        let l = loader(&data);
        for _ in 0..2 {
            t.train_epoch(&l, None, &mut |_, _, _| {}).unwrap();
        }
        state_bits(&t.model)
    };
    assert!(one.iter().any(|(n, _)| n.ends_with("running_mean")));
    for n in 1..=3 {
        let data = data.clone();
        let all = on_ranks(n, Duration::from_secs(120), move |c| {
            let mut t = cnn_trainer(4);
            t.sharding.collective = Some(Box::new(c));
            let l = loader(&data);
            for _ in 0..2 {
                t.train_epoch(&l, None, &mut |_, _, _| {}).unwrap();
            }
            state_bits(&t.model)
        });
        for (r, bits) in all.iter().enumerate() {
            // Weights and running statistics alike.
            assert!(*bits == one, "{n} ranks: rank {r} differs from one process");
        }
    }
}

#[test]
fn resume_under_another_rank_count_is_bit_identical() {
    let mut cfg = mlp_config(2);
    cfg.train.checkpoint_every = 1;
    // Uninterrupted: 2 epochs on 3 ranks.
    let straight = {
        let cfg = cfg.clone();
        on_ranks(3, Duration::from_secs(120), move |c| {
            let mut d = Distributed::new(&cfg, Box::new(c)).unwrap();
            d.fit(&cfg, None, &mut Quiet).unwrap();
            state_bits(&d.run.trainer.model)
        })
        .swap_remove(0)
    };
    // The same on 2 ranks, rank 0 writing the run directory (with the epoch-1 checkpoint).
    let dir = tmp("resume");
    {
        let (cfg, dir) = (cfg.clone(), dir.clone());
        on_ranks(2, Duration::from_secs(120), move |c| {
            let mut d = Distributed::new(&cfg, Box::new(c)).unwrap();
            d.fit(&cfg, Some(&dir), &mut Quiet).unwrap();
        });
    }
    let ck = dir.join("checkpoint-epoch1.nwck");
    assert!(ck.exists(), "rank 0 wrote the epoch-1 checkpoint");
    let written = std::fs::read(dir.join(nw_train::session::files::MODEL)).unwrap();
    let (_, run) = nw_train::session::resume_run(&dir.join(nw_train::session::files::CHECKPOINT)).unwrap();
    assert!(state_bits(&run.trainer.model) == straight, "2 ranks end where 3 ranks end");
    // From epoch 1: in one process (the plain `nw resume` path) and on 4 ranks.
    let (c, mut run) = nw_train::session::resume_run(&ck).unwrap();
    assert_eq!(run.trainer.epoch, 1);
    let out1 = tmp("resume-one");
    nw_train::session::fit(&mut run, &c, Some(&out1), &mut Quiet).unwrap();
    assert!(state_bits(&run.trainer.model) == straight, "resumed in one process");
    assert_eq!(std::fs::read(out1.join(nw_train::session::files::MODEL)).unwrap(), written);
    let ck2 = ck.clone();
    let all = on_ranks(4, Duration::from_secs(120), move |c| {
        let (cfg, mut d) = Distributed::resume(&ck2, Box::new(c)).unwrap();
        d.fit(&cfg, None, &mut Quiet).unwrap();
        state_bits(&d.run.trainer.model)
    });
    for (r, bits) in all.iter().enumerate() {
        assert!(*bits == straight, "resumed on 4 ranks: rank {r} differs");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&out1);
}

#[test]
fn a_dead_rank_ends_the_others_with_an_error_naming_it() {
    let cfg = mlp_config(1);
    let started = Instant::now();
    let results = on_ranks(3, Duration::from_secs(30), move |c| {
        let mut d = Distributed::new(&cfg, Box::new(c)).unwrap();
        if d.rank() == 2 {
            // Rank 2 dies after set-up: its channels close.
            return None;
        }
        Some(d.fit(&cfg, None, &mut Quiet).map(|_| ()).unwrap_err())
    });
    for e in results.into_iter().flatten() {
        assert!(matches!(e, TrainError::Distributed(DistError::Disconnected { rank: 2, .. })), "{e}");
        assert!(e.to_string().contains("rank 2"), "{e}");
        assert_eq!(e.exit_code(), 8);
    }
    assert!(started.elapsed() < Duration::from_secs(30), "ended on the closed channel, not the timeout");
}

#[test]
fn a_stalled_rank_ends_the_others_within_the_timeout() {
    let cfg = mlp_config(1);
    let timeout = Duration::from_millis(1500);
    let results = on_ranks(3, timeout, move |c| {
        let mut d = Distributed::new(&cfg, Box::new(c)).unwrap();
        if d.rank() == 1 {
            // Rank 1 stalls (alive, holding its channels) well past the timeout.
            std::thread::sleep(timeout * 4);
            return None;
        }
        let t = Instant::now();
        let e = d.fit(&cfg, None, &mut Quiet).map(|_| ()).unwrap_err();
        Some((e, t.elapsed()))
    });
    for (e, took) in results.into_iter().flatten() {
        assert!(matches!(e, TrainError::Distributed(DistError::Timeout { rank: 1, .. })), "{e}");
        assert!(took < Duration::from_secs(10), "took {took:?}");
    }
}

/// [`cnn_trainer`] with a second batch norm (BatchNorm1d on the hidden
/// features, after a dropout) so that a stage runs between two synchronised
/// layers; `sync` switches `train.sync_bn`.
fn cnn2_trainer(seed: u64, accumulate: usize, sync: bool) -> Trainer {
    let mut rng = Rng::new(seed);
    let spec = Conv2dSpec { padding: (1, 1), ..Default::default() };
    let drop_rng = std::sync::Arc::new(std::sync::Mutex::new(Rng::new(seed ^ 1)));
    let model = Sequential::new()
        .with(nw_train::models::Reshape { shape: vec![1, 8, 8] })
        .with(Conv2d::new(1, 6, (3, 3), spec, true, &mut rng).unwrap())
        .with(BatchNorm2d::new(6))
        .with(Relu)
        .with(MaxPool2d::new(2))
        .with(Flatten::default())
        .with(Linear::new(6 * 16, 24, &mut rng))
        .with(nw_train::models::Dropout::new(0.2, drop_rng.clone()))
        .with(nw_nn::BatchNorm1d::new(24))
        .with(Relu)
        .with(Linear::new(24, 10, &mut rng));
    let opt = Sgd { lr: 0.05, momentum: 0.9, ..Default::default() }.build(model.parameters()).unwrap();
    let mut t = Trainer::new(model, Box::new(opt), LossKind::CrossEntropy { label_smoothing: 0.0 });
    t.rngs = vec![drop_rng];
    t.sharding.accumulate = accumulate;
    t.sharding.per_shard = true;
    t.sharding.seed = seed;
    t.sharding.sync_bn = sync;
    t
}

fn digits_loader(d: &Dataset) -> BatchLoader {
    BatchLoader::new(
        d.clone(),
        LoaderConfig { batch_size: BatchSize::Mini(64), seed: 2, ..Default::default() },
    )
    .unwrap()
}

#[test]
fn sync_bn_same_bits_on_1_2_3_ranks() {
    let data = small_digits();
    let train = |t: &mut Trainer, d: &Dataset| {
        let l = digits_loader(d);
        for _ in 0..2 {
            t.train_epoch(&l, None, &mut |_, _, _| {}).unwrap();
        }
    };
    let one = {
        let mut t = cnn2_trainer(4, 5, true);
        train(&mut t, &data);
        state_bits(&t.model)
    };
    // Per-shard statistics give other bits: the synchronisation is in effect.
    let per_shard = {
        let mut t = cnn2_trainer(4, 5, false);
        train(&mut t, &data);
        state_bits(&t.model)
    };
    assert!(one != per_shard, "sync_bn changed nothing");
    for n in 1..=3 {
        let data = data.clone();
        let all = on_ranks(n, Duration::from_secs(120), move |c| {
            let mut t = cnn2_trainer(4, 5, true);
            t.sharding.collective = Some(Box::new(c));
            train(&mut t, &data);
            state_bits(&t.model)
        });
        for (r, bits) in all.iter().enumerate() {
            // Weights, running statistics and batch counters alike.
            assert!(*bits == one, "sync_bn, {n} ranks: rank {r} differs from one process");
        }
    }
}

#[test]
fn sync_bn_over_k_shards_is_batch_norm_over_the_whole_batch() {
    // The one-BN CNN (no dropout): 5 synchronised shards take the steps of
    // plain batch norm on the whole batch, up to rounding (fixture tolerance).
    let data = small_digits();
    let l = digits_loader(&data);
    let batches: Vec<_> = l.epoch(0).take(3).collect();
    let mut whole = cnn_trainer(4);
    whole.sharding.accumulate = 1;
    whole.sharding.per_shard = false;
    let mut sync = cnn_trainer(4);
    sync.sharding.sync_bn = true;
    let mut per_shard = cnn_trainer(4);
    for b in &batches {
        let (l1, _) = whole.train_step(&b.x, &b.y).unwrap();
        let (ls, _) = sync.train_step(&b.x, &b.y).unwrap();
        per_shard.train_step(&b.x, &b.y).unwrap();
        assert!((l1 - ls).abs() <= 1e-5 * l1.abs(), "loss {l1} vs {ls}");
    }
    let vals = |t: &Trainer| -> Vec<(String, Vec<f32>)> {
        nw_nn::state::state_dict(&t.model)
            .into_iter()
            .filter_map(|(n, v)| match v {
                nw_nn::BufferValue::F32(t) => Some((n, t.to_vec())),
                _ => None,
            })
            .collect()
    };
    let (w, s, p) = (vals(&whole), vals(&sync), vals(&per_shard));
    for ((n, a), (_, b)) in w.iter().zip(&s) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-6 + 1e-4 * x.abs(), "{n}: whole batch {x} vs sync_bn {y}");
        }
    }
    // Per-shard statistics are another computation: the running mean is
    // shard 0's, not the batch's.
    let rm =
        |v: &[(String, Vec<f32>)]| v.iter().find(|(n, _)| n.ends_with("running_mean")).unwrap().1.clone();
    let far = rm(&w).iter().zip(rm(&p)).any(|(x, y)| (x - y).abs() > 1e-6 + 1e-4 * x.abs());
    assert!(far, "per-shard running mean equals the whole batch's");
}

#[test]
fn sync_bn_inside_another_layer_is_an_error() {
    let mut rng = Rng::new(1);
    let inner = Sequential::new().with(Linear::new(64, 8, &mut rng)).with(nw_nn::BatchNorm1d::new(8));
    let model = Sequential::new().with(inner).with(Linear::new(8, 10, &mut rng));
    let opt = Sgd { lr: 0.05, ..Default::default() }.build(model.parameters()).unwrap();
    let mut t = Trainer::new(model, Box::new(opt), LossKind::CrossEntropy { label_smoothing: 0.0 });
    t.sharding.accumulate = 2;
    t.sharding.sync_bn = true;
    let d = small_digits();
    let b = digits_loader(&d).epoch(0).next().unwrap();
    let e = t.train_step(&b.x, &b.y).unwrap_err();
    assert!(e.to_string().contains("top level"), "{e}");
}
