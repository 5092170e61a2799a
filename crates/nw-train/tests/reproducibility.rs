//! The determinism promises of DESIGN.md, end to end: the same seed gives the
//! same bits on 1 and 2 threads, and a run resumed from a checkpoint ends
//! with exactly the weights of the run that never stopped.

use nw_data::{BatchLoader, BatchSize, Dataset, LoaderConfig};
use nw_nn::Module;
use nw_optim::schedule::{Schedule, Scheduler};
use nw_optim::{Adam, Sgd};
use nw_tensor::Rng;
use nw_train::models::{Activation, build_model};
use nw_train::{Checkpoint, LossKind, LrPolicy, ModelSpec, Trainer};

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
