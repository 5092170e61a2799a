//! The trainer's closure path (optimizers that re-evaluate the loss, LBFGS):
//! a step evaluates the batch as often as the optimizer asks, the first
//! evaluation is the one the step reports, training converges on digits, and
//! the bits do not depend on the thread count. The gradient-free GA and PSO
//! step through the same hook.

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

/// GA and PSO through the same hook: the loss on a fixed batch never rises
/// (the fittest is kept and re-evaluated on the same batch), falls clearly
/// over the steps, and the bits do not depend on the thread count.
#[test]
fn ga_and_pso_train_digits_through_the_closure_hook_on_any_thread_count() {
    for name in ["ga", "pso"] {
        let config = OptimizerConfig::default_for(name).unwrap();
        let go = |threads| {
            let config = config.clone();
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(move || run(&config, 40))
        };
        let (losses, bits) = go(1);
        for w in losses.windows(2) {
            assert!(w[1] <= w[0], "{name}: the loss rose: {losses:?}");
        }
        assert!(losses[39] < 0.95 * losses[0], "{name}: {losses:?}");
        assert_eq!(go(2), (losses, bits), "{name}");
    }
}

/// `nw train --optimizer ga|pso` end to end: a run resumed from a checkpoint
/// ends with the same model bytes as one that never stopped (the population,
/// swarm and random stream are checkpoint state).
#[test]
fn ga_and_pso_runs_resume_byte_identically() {
    use nw_train::session::{self, Quiet, files};
    for name in ["ga", "pso"] {
        let mut c =
            nw_train::RunConfig { optim: OptimizerConfig::default_for(name).unwrap(), ..Default::default() };
        c.model.hidden = vec![8];
        c.train.epochs = 3;
        c.train.batch = nw_train::config::BatchMode::Mini(256);
        c.train.checkpoint_every = 1;
        let dir = |s: &str| {
            let d = std::env::temp_dir().join(format!("nw-gf-{name}-{s}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            d
        };
        let (a, b) = (dir("a"), dir("b"));
        let mut run = nw_train::build_run(&c).unwrap();
        session::fit(&mut run, &c, Some(&a), &mut Quiet).unwrap();
        let history = nw_train::report::read_metrics_csv(&a.join(files::METRICS)).unwrap();
        let first = history[0].train_loss;
        let last = history[2].train_loss;
        assert!(last < first, "{name}: epoch losses {first} -> {last}");
        std::fs::create_dir_all(&b).unwrap();
        std::fs::copy(a.join("checkpoint-epoch1.nwck"), b.join(files::CHECKPOINT)).unwrap();
        let (cfg, mut resumed) = session::resume_run(&b).unwrap();
        session::fit(&mut resumed, &cfg, Some(&b), &mut Quiet).unwrap();
        assert_eq!(
            std::fs::read(a.join(files::MODEL)).unwrap(),
            std::fs::read(b.join(files::MODEL)).unwrap(),
            "{name}"
        );
        let _ = (std::fs::remove_dir_all(&a), std::fs::remove_dir_all(&b));
    }
}
