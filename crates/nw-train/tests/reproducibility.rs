//! The determinism promises of DESIGN.md, end to end: the same seed gives the
//! same bits on 1 and 2 threads, and a run resumed from a checkpoint ends
//! with exactly the weights of the run that never stopped.

use nw_data::{BatchLoader, BatchSize, Dataset, LoaderConfig};
use nw_nn::Module;
use nw_optim::schedule::{Schedule, Scheduler};
use nw_optim::{Adam, Sgd};
use nw_tensor::Rng;
use nw_train::models::{Activation, build_model};
use nw_train::{Checkpoint, LossKind, LrPolicy, ModelSpec, MonitorConfig, Trainer, WeightMonitor};

fn digits() -> Dataset {
    nw_data::digits()
}

fn trainer(spec: &ModelSpec, data: &Dataset, seed: u64, adam: bool) -> Trainer {
    let mut rng = Rng::new(seed);
    let built = build_model(spec, data.feature_shape(), 10, &mut rng).unwrap();
    let params = built.model.parameters();
    let opt: Box<dyn nw_optim::Optimizer> = if adam {
        Box::new(Adam { lr: 2e-3, ..Default::default() }.build(params).unwrap())
    } else {
        Box::new(Sgd { lr: 0.05, momentum: 0.9, ..Default::default() }.build(params).unwrap())
    };
    let mut t = Trainer::new(built.model, opt, LossKind::CrossEntropy { label_smoothing: 0.0 });
    t.rngs = built.rngs;
    t
}

fn bits(t: &Trainer) -> Vec<(String, Vec<u32>)> {
    t.named_parameters()
        .iter()
        .map(|(n, p)| (n.clone(), p.value().to_vec().iter().map(|x| x.to_bits()).collect()))
        .collect()
}

fn loader(data: &Dataset, batch: usize, seed: u64) -> BatchLoader {
    let cfg = LoaderConfig { batch_size: BatchSize::Mini(batch), seed, ..Default::default() };
    BatchLoader::new(data.clone(), cfg).unwrap()
}

fn run_in_pool(
    threads: usize,
    f: impl FnOnce() -> Vec<(String, Vec<u32>)> + Send,
) -> Vec<(String, Vec<u32>)> {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

#[test]
fn one_and_two_threads_give_the_same_bits() {
    let data = digits();
    // Wide enough that GEMM, elementwise kernels and the conv weight gradient
    // all take their parallel paths.
    let mlp = ModelSpec::Mlp { hidden: vec![256, 256], activation: Activation::Relu, dropout: 0.1 };
    let cnn = ModelSpec::Cnn { channels: vec![16, 32], hidden: 64, dropout: 0.0 };
    for (spec, batch) in [(mlp, 128), (cnn, 64)] {
        let go = |threads| {
            let data = data.clone();
            let spec = spec.clone();
            run_in_pool(threads, move || {
                let mut t = trainer(&spec, &data, 7, true);
                let l = loader(&data, batch, 3);
                for (i, b) in l.epoch(0).enumerate().take(6) {
                    t.train_step(&b.x, &b.y).unwrap();
                    assert!(i < 6);
                }
                bits(&t)
            })
        };
        let one = go(1);
        let two = go(2);
        assert_eq!(one, two, "{spec:?}: weights differ between 1 and 2 threads");
    }
}

#[test]
fn the_monitor_changes_no_bit_of_the_run() {
    // The monitor only reads: weights, losses and correct counts are the same
    // bits with it off, at every step, and every 3 steps, on 1 and 2 threads
    // (the 256x256 middle layer takes the monitor's parallel blocks).
    let data = digits();
    let spec = ModelSpec::Mlp { hidden: vec![256, 256], activation: Activation::Relu, dropout: 0.1 };
    let go = |threads: usize, every: u64| {
        let (data, spec) = (data.clone(), spec.clone());
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(move || {
            let mut t = trainer(&spec, &data, 11, true);
            t.monitor = WeightMonitor::new(MonitorConfig { every_steps: every, ..Default::default() });
            let mut losses = Vec::new();
            for b in loader(&data, 64, 5).epoch(0).take(7) {
                let (l, c) = t.train_step(&b.x, &b.y).unwrap();
                losses.push((l.to_bits(), c));
            }
            (bits(&t), losses, t.monitor.records().to_vec())
        })
    };
    let (off, off_losses, none) = go(1, 0);
    assert!(none.is_empty());
    let (w1, l1, every1) = go(1, 1);
    let (w3, l3, every3) = go(1, 3);
    let (w1b, l1b, every1b) = go(2, 1);
    assert_eq!((&w1, &l1), (&off, &off_losses), "monitor at every step changed the run");
    assert_eq!((&w3, &l3), (&off, &off_losses), "monitor every 3 steps changed the run");
    assert_eq!((&w1b, &l1b), (&off, &off_losses), "monitor at 2 threads changed the run");
    // The records do not depend on the thread count, nor on whether the
    // previous weights came from the kept buffer (every step) or a fresh
    // copy (every 3 steps).
    assert_eq!(every1b, every1);
    assert_eq!(every1.len(), 7 * 6);
    let at =
        |r: &[nw_train::TensorStats], step| r.iter().filter(|s| s.step == step).cloned().collect::<Vec<_>>();
    for step in [3, 6] {
        assert_eq!(at(&every3, step), at(&every1, step), "step {step}");
    }
}

#[test]
fn the_monitor_sees_writes_between_steps() {
    // A weight changed outside the optimizer between two recorded steps is
    // not counted as part of the next step's update.
    let data = digits();
    let spec = ModelSpec::Mlp { hidden: vec![16], activation: Activation::Relu, dropout: 0.0 };
    let mut t = trainer(&spec, &data, 2, false);
    t.monitor = WeightMonitor::new(MonitorConfig { every_steps: 1, ..Default::default() });
    let mut batches = loader(&data, 32, 1).epoch(0);
    let b = batches.next().unwrap();
    t.train_step(&b.x, &b.y).unwrap();
    let p = t.named_parameters()[0].1.clone();
    p.update(|w| w.as_slice_mut().iter_mut().for_each(|x| *x += 100.0));
    let before = p.value().to_vec();
    let b = batches.next().unwrap();
    t.train_step(&b.x, &b.y).unwrap();
    let after = p.value().to_vec();
    let d2: f64 = after.iter().zip(&before).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
    let r = &t.monitor.records()[t.named_parameters().len()];
    assert_eq!(r.step, 2);
    assert!((r.update_norm - d2.sqrt()).abs() <= 1e-5 * d2.sqrt(), "{} vs {}", r.update_norm, d2.sqrt());
    assert!(r.update_norm < 10.0, "the +100 shift leaked into the update: {}", r.update_norm);
}

#[test]
fn resume_from_checkpoint_is_bit_identical() {
    let data = digits().subset(&(0..600).collect::<Vec<_>>()).unwrap();
    let spec = ModelSpec::Mlp { hidden: vec![32], activation: Activation::Tanh, dropout: 0.2 };
    let l = loader(&data, 32, 11);
    let setup = |t: &mut Trainer| {
        let s = Scheduler::new(Schedule::CosineAnnealing { t_max: 80, eta_min: 1e-4 }, 2e-3).unwrap();
        t.lr_policy = Some(LrPolicy::PerStep(s));
    };

    let mut straight = trainer(&spec, &data, 5, true);
    setup(&mut straight);
    for _ in 0..4 {
        straight.train_epoch(&l, None, &mut |_, _, _| {}).unwrap();
    }

    let mut first = trainer(&spec, &data, 5, true);
    setup(&mut first);
    for _ in 0..2 {
        first.train_epoch(&l, None, &mut |_, _, _| {}).unwrap();
    }
    let bytes = first.checkpoint("{}").unwrap().to_bytes().unwrap();
    drop(first);

    // A fresh process would rebuild from the config with a different seed's
    // weights; restore must overwrite all of it.
    let mut resumed = trainer(&spec, &data, 999, true);
    let ck = Checkpoint::from_bytes(&bytes, "mem".as_ref()).unwrap();
    resumed.restore(&ck).unwrap();
    assert_eq!(resumed.epoch, 2);
    for _ in 0..2 {
        resumed.train_epoch(&l, None, &mut |_, _, _| {}).unwrap();
    }
    assert_eq!(resumed.step, straight.step);
    assert_eq!(bits(&resumed), bits(&straight), "resumed run diverged from the uninterrupted one");
    assert_eq!(resumed.history.len(), 4);
}

#[test]
fn restore_rejects_a_checkpoint_of_another_model() {
    let data = digits();
    let a = trainer(
        &ModelSpec::Mlp { hidden: vec![8], activation: Activation::Relu, dropout: 0.0 },
        &data,
        1,
        false,
    );
    let mut b = trainer(
        &ModelSpec::Mlp { hidden: vec![9], activation: Activation::Relu, dropout: 0.0 },
        &data,
        1,
        false,
    );
    let ck = a.checkpoint("{}").unwrap();
    let e = b.restore(&ck).unwrap_err().to_string();
    assert!(e.contains("0.weight"), "{e}");
}
