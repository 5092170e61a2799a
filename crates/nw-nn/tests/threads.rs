//! The same model and batch give bit-identical outputs and gradients with 1,
//! 2 and 3 worker threads (the determinism invariant, through every layer kind).

use nw_autograd::Var;
use nw_nn::{
    BatchNorm2d, Conv2d, CrossEntropyLoss, Flatten, Gru, LayerNorm, Linear, Loss, MaxPool2d, Module, Relu,
    RnnConfig, Sequential, Target,
};
use nw_tensor::conv::Conv2dSpec;
use nw_tensor::{Rng, Tensor};

/// Outputs and every gradient of one forward/backward, as raw values.
fn run() -> Vec<Vec<f32>> {
    let mut rng = Rng::new(0);
    let spec = Conv2dSpec { padding: (1, 1), ..Default::default() };
    let cnn = Sequential::new()
        .with(Conv2d::new(3, 8, (3, 3), spec, true, &mut rng).unwrap())
        .with(BatchNorm2d::new(8))
        .with(Relu)
        .with(MaxPool2d::new(2))
        .with(Flatten::default())
        .with(Linear::new(8 * 8 * 8, 10, &mut rng));
    let gru = Gru::new(RnnConfig::new(6, 16).batch_first(true), &mut rng).unwrap();
    let ln = LayerNorm::new(&[16]);
    let x = Var::constant(Tensor::randn(&[32, 3, 16, 16], 0.0, 1.0, &mut rng));
    let s = Var::constant(Tensor::randn(&[32, 20, 6], 0.0, 1.0, &mut rng));
    let targets: Vec<usize> = (0..32).map(|i| i % 10).collect();
    let logits = cnn.forward(&x).unwrap();
    let l1 = CrossEntropyLoss::default().loss(&logits, &Target::Classes(targets)).unwrap();
    let l2 = ln.forward(&gru.forward(&s).unwrap()).unwrap().square().mean();
    let loss = l1.add(&l2).unwrap();
    let g = loss.backward().unwrap();
    let mut out = vec![logits.value().to_vec(), loss.value().to_vec()];
    for (_, p) in
        cnn.named_parameters().into_iter().chain(gru.named_parameters()).chain(ln.named_parameters())
    {
        out.push(g.get(&p).unwrap().to_vec());
    }
    for (_, b) in cnn.named_buffers() {
        out.push(b.tensor().to_vec());
    }
    out
}

#[test]
fn bits_do_not_depend_on_the_thread_count() {
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    let one = pool(1).install(run);
    for n in [2, 3] {
        let many = pool(n).install(run);
        assert_eq!(one.len(), many.len());
        for (i, (a, b)) in one.iter().zip(&many).enumerate() {
            let same = a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "tensor {i} differs between 1 and {n} threads");
        }
    }
}
