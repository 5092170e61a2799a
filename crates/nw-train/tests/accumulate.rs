//! Gradient accumulation (`train.accumulate`): k micro-shards per batch,
//! summed in nw-dist's fixed tree, equal one step on the whole batch for a
//! mean-reduced loss (up to rounding), and the same bits on any thread count.

use nw_data::{BatchLoader, BatchSize, Dataset, LoaderConfig};
use nw_nn::Module;
use nw_optim::Sgd;
use nw_tensor::Rng;
use nw_train::models::{Activation, build_model};
use nw_train::{LossKind, ModelSpec, RunConfig, Trainer};

fn trainer(spec: &ModelSpec, data: &Dataset, seed: u64, accumulate: usize) -> Trainer {
    let mut rng = Rng::new(seed);
    let built = build_model(spec, data.feature_shape(), 10, &mut rng).unwrap();
    let opt = Sgd { lr: 0.05, momentum: 0.9, ..Default::default() }.build(built.model.parameters()).unwrap();
    let mut t = Trainer::new(built.model, Box::new(opt), LossKind::CrossEntropy { label_smoothing: 0.0 });
    t.rngs = built.rngs;
    t.sharding.accumulate = accumulate;
    t.sharding.seed = seed;
    t
}

fn loader(data: &Dataset, batch: usize) -> BatchLoader {
    let cfg = LoaderConfig { batch_size: BatchSize::Mini(batch), seed: 3, ..Default::default() };
    BatchLoader::new(data.clone(), cfg).unwrap()
}

fn weights(t: &Trainer) -> Vec<(String, Vec<f32>)> {
    t.named_parameters().iter().map(|(n, p)| (n.clone(), p.value().to_vec())).collect()
}

#[test]
fn accumulating_k_shards_equals_one_step_on_the_whole_batch() {
    let data = nw_data::digits();
    let spec = ModelSpec::Mlp { hidden: vec![32], activation: Activation::Tanh, dropout: 0.0 };
    let batches = loader(&data, 64);
    let batch: Vec<_> = batches.epoch(0).take(3).collect();
    for k in [2, 3, 4, 64] {
        let mut whole = trainer(&spec, &data, 1, 1);
        let mut acc = trainer(&spec, &data, 1, k);
        for b in &batch {
            let (l1, c1) = whole.train_step(&b.x, &b.y).unwrap();
            let (lk, ck) = acc.train_step(&b.x, &b.y).unwrap();
            // The batch loss is the tree sum of the shards' n_s/B-scaled mean losses.
            assert!((l1 - lk).abs() <= 1e-5 * l1.abs(), "k={k}: loss {l1} vs {lk}");
            assert_eq!(c1, ck, "k={k}: correct counts are exact sums");
        }
        // Tolerance of the train fixtures: |got - want| <= 1e-6 + 1e-4 |want|.
        for ((n, a), (_, b)) in weights(&whole).iter().zip(&weights(&acc)) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-6 + 1e-4 * x.abs(), "k={k} {n}: {x} vs {y}");
            }
        }
        assert_ne!(
            weights(&whole).concat_bits(),
            weights(&trainer(&spec, &data, 1, k)).concat_bits(),
            "the steps moved the weights"
        );
    }
}

trait Bits {
    fn concat_bits(&self) -> Vec<u32>;
}
impl Bits for Vec<(String, Vec<f32>)> {
    fn concat_bits(&self) -> Vec<u32> {
        self.iter().flat_map(|(_, v)| v.iter().map(|x| x.to_bits())).collect()
    }
}

#[test]
fn accumulation_gives_the_same_bits_on_one_and_two_threads() {
    let data = nw_data::digits();
    let spec = ModelSpec::Mlp { hidden: vec![256, 128], activation: Activation::Relu, dropout: 0.2 };
    let go = |threads: usize| {
        let (data, spec) = (data.clone(), spec.clone());
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(move || {
            let mut t = trainer(&spec, &data, 7, 3);
            // 1797 = 14 * 128 + 5: the short last batch is cut into 3 shards of 1, 2, 2 rows.
            t.train_epoch(&loader(&data, 128), None, &mut |_, _, _| {}).unwrap();
            weights(&t).concat_bits()
        })
    };
    assert_eq!(go(1), go(2));
}

#[test]
fn accumulate_one_keeps_the_single_batch_step() {
    // accumulate = 1 without `distributed` takes the original path: the
    // dropout stream continues from the model's generator, so the result
    // equals a trainer that never heard of sharding.
    let data = nw_data::digits();
    let spec = ModelSpec::Mlp { hidden: vec![32], activation: Activation::Relu, dropout: 0.3 };
    let mut a = trainer(&spec, &data, 5, 1);
    let mut b = trainer(&spec, &data, 5, 1);
    b.sharding = Default::default();
    let l = loader(&data, 100);
    a.train_epoch(&l, None, &mut |_, _, _| {}).unwrap();
    b.train_epoch(&l, None, &mut |_, _, _| {}).unwrap();
    assert_eq!(weights(&a).concat_bits(), weights(&b).concat_bits());
    // The per-shard path reseeds dropout, so with one shard it differs
    // from the original stream (it must, to agree across rank counts).
    let mut c = trainer(&spec, &data, 5, 1);
    c.sharding.per_shard = true;
    c.train_epoch(&l, None, &mut |_, _, _| {}).unwrap();
    assert_ne!(weights(&a).concat_bits(), weights(&c).concat_bits());
}

#[test]
fn the_accumulate_key_is_validated_and_reaches_the_trainer() {
    let mut c = RunConfig::default();
    c.set("train.accumulate", "4").unwrap();
    let run = nw_train::build_run(&c).unwrap();
    assert_eq!(run.trainer.sharding.accumulate, 4);
    assert!(run.trainer.sharding.is_sharded());
    c.set("train.accumulate", "0").unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("train.accumulate"), "{e}");
    let e = RunConfig::from_toml("[train]\naccumulate = -1\n").unwrap_err().to_string();
    assert!(e.contains("accumulate"), "{e}");
}
