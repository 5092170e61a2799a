//! The trainer's closure path (optimizers that re-evaluate the loss, LBFGS):
//! a step evaluates the batch as often as the optimizer asks, the first
//! evaluation is the one the step reports, training converges on digits, and
//! the bits do not depend on the thread count.

use nw_nn::Module;
use nw_optim::{Lbfgs, LineSearch, OptimizerConfig};
use nw_tensor::Rng;
use nw_train::models::{Activation, build_model};
use nw_train::{LossKind, ModelSpec, Trainer};

fn trainer(config: &OptimizerConfig) -> Trainer {
    let data = nw_data::digits();
    let mut rng = Rng::new(5);
    let spec = ModelSpec::Mlp { hidden: vec![32], activation: Activation::Tanh, dropout: 0.0 };
    let built = build_model(&spec, data.feature_shape(), 10, &mut rng).unwrap();
    let opt = config.build(built.model.parameters()).unwrap();
    let mut t = Trainer::new(built.model, opt, LossKind::CrossEntropy { label_smoothing: 0.0 });
    t.rngs = built.rngs;
    t
}

fn run(config: &OptimizerConfig, steps: usize) -> (Vec<f32>, Vec<Vec<u32>>) {
    let idx: Vec<usize> = (0..300).collect();
    let data = nw_data::digits().subset(&idx).unwrap();
    let (x, y) = (data.features().clone(), data.targets().clone());
    let mut t = trainer(config);
    let losses = (0..steps).map(|_| t.train_step(&x, &y).unwrap().0).collect();
    let bits = t
        .named_parameters()
        .iter()
        .map(|(_, p)| p.value().to_vec().iter().map(|v| v.to_bits()).collect())
        .collect();
    (losses, bits)
}

#[test]
fn lbfgs_trains_digits_through_the_closure_hook() {
    for ls in [None, Some(LineSearch::StrongWolfe)] {
        let config = OptimizerConfig::Lbfgs(Lbfgs { max_iter: 5, line_search_fn: ls, ..Lbfgs::default() });
        let (losses, _) = run(&config, 4);
        assert!(losses[3] < 0.5 * losses[0], "{ls:?}: {losses:?}");
    }
}

#[test]
fn closure_steps_give_the_same_bits_on_1_and_2_threads() {
    let config = OptimizerConfig::Lbfgs(Lbfgs {
        max_iter: 4,
        line_search_fn: Some(LineSearch::StrongWolfe),
        ..Lbfgs::default()
    });
    let go = |threads| {
        let config = config.clone();
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(move || run(&config, 3))
    };
    assert_eq!(go(1), go(2));
}
