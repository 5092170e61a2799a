//! Behaviour of the optimizer engine: resume from a state dict, skipped
//! parameters, shape and hyper-parameter errors, groups, thread counts.

use nw_autograd::{Grads, Param};
use nw_optim::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, Lion, NAdam, OptimError, Optimizer, ParamGroup, RAdam, RmsProp,
    Rprop, Sgd, StateDict, WeightDecay,
};
use nw_tensor::{Rng, Tensor};

/// Fresh parameters (two groups' worth) with fixed seeded values.
fn params(seed: u64) -> Vec<Param> {
    let mut rng = Rng::new(seed);
    vec![
        Param::new(Tensor::randn(&[5, 7], 0.0, 1.0, &mut rng)),
        Param::new(Tensor::randn(&[7], 0.0, 1.0, &mut rng)),
        Param::new(Tensor::randn(&[3, 2], 0.0, 1.0, &mut rng)),
    ]
}

/// Gradients of step `k`: seeded; parameter 2 gets none at odd steps (so its
/// own step count lags, as torch's per-parameter `step`).
fn grads(ps: &[Param], k: u64) -> Grads {
    let mut rng = Rng::new(1000 + k);
    let mut g = Grads::new();
    for (i, p) in ps.iter().enumerate() {
        let t = Tensor::randn(&p.shape(), 0.0, 1.0, &mut rng);
        if i != 2 || k.is_multiple_of(2) {
            g.insert(p, t);
        }
    }
    g
}

fn groups(ps: &[Param]) -> Vec<ParamGroup> {
    vec![
        ParamGroup::new(vec![ps[0].clone(), ps[1].clone()]),
        ParamGroup::new(vec![ps[2].clone()]).lr(0.003).weight_decay(0.0),
    ]
}

type Build = fn(Vec<ParamGroup>) -> Box<dyn Optimizer>;

/// One builder per optimizer, with non-default options so every buffer exists.
fn all() -> Vec<(&'static str, Build)> {
    vec![
        ("sgd", |g| {
            Box::new(
                Sgd {
                    lr: 0.05,
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: WeightDecay::L2(0.01),
                    ..Sgd::default()
                }
                .build_groups(g)
                .unwrap(),
            )
        }),
        ("adam", |g| Box::new(Adam { lr: 0.01, amsgrad: true, ..Adam::default() }.build_groups(g).unwrap())),
        ("adamw", |g| Box::new(AdamW { lr: 0.01, ..AdamW::default() }.build_groups(g).unwrap())),
        ("adagrad", |g| {
            Box::new(
                Adagrad { lr: 0.1, lr_decay: 0.01, initial_accumulator_value: 0.1, ..Adagrad::default() }
                    .build_groups(g)
                    .unwrap(),
            )
        }),
        ("rmsprop", |g| {
            Box::new(RmsProp { momentum: 0.5, centered: true, ..RmsProp::default() }.build_groups(g).unwrap())
        }),
        ("adadelta", |g| Box::new(Adadelta::default().build_groups(g).unwrap())),
        ("adamax", |g| Box::new(Adamax::default().build_groups(g).unwrap())),
        ("nadam", |g| {
            Box::new(
                NAdam { weight_decay: WeightDecay::Decoupled(0.01), ..NAdam::default() }
                    .build_groups(g)
                    .unwrap(),
            )
        }),
        ("radam", |g| Box::new(RAdam { lr: 0.01, ..RAdam::default() }.build_groups(g).unwrap())),
        ("rprop", |g| Box::new(Rprop::default().build_groups(g).unwrap())),
        ("lion", |g| {
            Box::new(
                Lion { weight_decay: WeightDecay::Decoupled(0.1), ..Lion::default() }
                    .build_groups(g)
                    .unwrap(),
            )
        }),
    ]
}

fn bits(ps: &[Param]) -> Vec<Vec<u32>> {
    ps.iter().map(|p| p.value().to_vec().iter().map(|x| x.to_bits()).collect()).collect()
}

#[test]
fn resume_from_state_dict_is_bit_identical_for_every_optimizer() {
    for (name, build) in all() {
        // uninterrupted: 12 steps
        let a = params(7);
        let mut opt = build(groups(&a));
        for k in 0..12 {
            opt.step(&grads(&a, k)).unwrap();
        }
        // interrupted after 7 steps: save, go through serde, load into a fresh optimizer
        let b = params(7);
        let mut first = build(groups(&b));
        for k in 0..7 {
            first.step(&grads(&b, k)).unwrap();
        }
        let json = serde_json::to_string(&first.state_dict()).unwrap();
        drop(first);
        let sd: StateDict = serde_json::from_str(&json).unwrap();
        let mut second = build(groups(&b));
        second.load_state_dict(&sd).unwrap();
        assert_eq!(second.state_dict(), sd, "{name}: state dict round trip");
        for k in 7..12 {
            second.step(&grads(&b, k)).unwrap();
        }
        assert_eq!(bits(&a), bits(&b), "{name}: resumed run differs from the uninterrupted one");
    }
}

#[test]
fn state_is_named_tensors_keyed_by_group_and_position() {
    let ps = params(1);
    let mut opt = Adam { amsgrad: true, ..Adam::default() }.build_groups(groups(&ps)).unwrap();
    for k in 0..3 {
        opt.step(&grads(&ps, k)).unwrap();
    }
    let sd = opt.state_dict();
    let keys: Vec<&str> = sd.tensors.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "state.0.0.exp_avg",
            "state.0.0.exp_avg_sq",
            "state.0.0.max_exp_avg_sq",
            "state.0.0.step",
            "state.0.1.exp_avg",
            "state.0.1.exp_avg_sq",
            "state.0.1.max_exp_avg_sq",
            "state.0.1.step",
            "state.1.0.exp_avg",
            "state.1.0.exp_avg_sq",
            "state.1.0.max_exp_avg_sq",
            "state.1.0.step",
        ]
    );
    // parameter (1, 0) had gradients at steps 0 and 2 only
    assert_eq!(sd.tensor("state.0.0.step").unwrap().to_vec(), [3.0]);
    assert_eq!(sd.tensor("state.1.0.step").unwrap().to_vec(), [2.0]);
    assert_eq!(sd.tensor("state.0.0.exp_avg").unwrap().shape(), &[5, 7]);
    assert_eq!(sd.scalar("param_groups.1.lr"), Some(0.003));
    assert_eq!(sd.scalar("param_groups.1.weight_decay"), Some(0.0));
}

#[test]
fn parameters_without_a_gradient_are_skipped() {
    let ps = params(2);
    let before = ps[2].value();
    let mut opt = Adam::default().build(ps.clone()).unwrap();
    opt.step(&grads(&ps, 1)).unwrap(); // odd step: no gradient for ps[2]
    assert_eq!(ps[2].value(), before);
    let sd = opt.state_dict();
    assert!(sd.tensor("state.0.2.step").is_none());
    assert!(sd.tensor("state.0.0.step").is_some());
}

#[test]
fn a_gradient_of_the_wrong_shape_is_an_error_and_nothing_moves() {
    let ps = params(3);
    let before = bits(&ps);
    let mut opt = Sgd { lr: 0.1, ..Sgd::default() }.build(ps.clone()).unwrap();
    let mut g = grads(&ps, 0);
    g.insert(&ps[1], Tensor::zeros(&[8]));
    let e = opt.step(&g).unwrap_err();
    assert_eq!(
        e,
        OptimError::GradShape { optimizer: "SGD", group: 0, index: 1, param: vec![7], grad: vec![8] }
    );
    assert_eq!(
        e.to_string(),
        "SGD: gradient shape [8] does not match parameter shape [7] (group 0, position 1)"
    );
    // parameter 0 comes first but must not have moved either
    assert_eq!(bits(&ps), before);
}

fn hyper_err(r: Result<impl std::fmt::Debug, OptimError>) -> (&'static str, &'static str, f64) {
    match r.unwrap_err() {
        OptimError::InvalidHyper { owner, name, value, .. } => (owner, name, value),
        e => panic!("unexpected error {e}"),
    }
}

#[test]
fn out_of_range_hyper_parameters_are_typed_errors_naming_them() {
    let p = || vec![Param::new(Tensor::zeros(&[2]))];
    assert_eq!(hyper_err(Sgd { lr: -0.1, ..Sgd::default() }.build(p())), ("SGD", "lr", -0.1));
    assert_eq!(hyper_err(Sgd { nesterov: true, ..Sgd::default() }.build(p())), ("SGD", "momentum", 0.0));
    assert_eq!(
        hyper_err(Sgd { nesterov: true, momentum: 0.9, dampening: 0.1, ..Sgd::default() }.build(p())),
        ("SGD", "dampening", 0.1)
    );
    assert_eq!(
        hyper_err(Adam { betas: (0.9, 1.0), ..Adam::default() }.build(p())),
        ("Adam", "betas[1]", 1.0)
    );
    assert_eq!(
        hyper_err(Adam { betas: (-0.1, 0.9), ..Adam::default() }.build(p())),
        ("Adam", "betas[0]", -0.1)
    );
    assert_eq!(hyper_err(AdamW { eps: -1e-8, ..AdamW::default() }.build(p())), ("AdamW", "eps", -1e-8));
    assert_eq!(
        hyper_err(AdamW { weight_decay: WeightDecay::Decoupled(-0.01), ..AdamW::default() }.build(p())),
        ("AdamW", "weight_decay", -0.01)
    );
    assert_eq!(
        hyper_err(Adagrad { lr_decay: -1.0, ..Adagrad::default() }.build(p())),
        ("Adagrad", "lr_decay", -1.0)
    );
    assert_eq!(hyper_err(RmsProp { alpha: 1.5, ..RmsProp::default() }.build(p())), ("RMSprop", "alpha", 1.5));
    assert_eq!(
        hyper_err(Adadelta { rho: -0.5, ..Adadelta::default() }.build(p())),
        ("Adadelta", "rho", -0.5)
    );
    assert_eq!(
        hyper_err(NAdam { momentum_decay: -1.0, ..NAdam::default() }.build(p())),
        ("NAdam", "momentum_decay", -1.0)
    );
    assert_eq!(
        hyper_err(Rprop { etas: (1.5, 1.2), ..Rprop::default() }.build(p())),
        ("Rprop", "etas[0]", 1.5)
    );
    assert_eq!(
        hyper_err(Rprop { etas: (0.5, 0.9), ..Rprop::default() }.build(p())),
        ("Rprop", "etas[1]", 0.9)
    );
    assert_eq!(
        hyper_err(Lion { betas: (0.9, 2.0), ..Lion::default() }.build(p())),
        ("Lion", "betas[1]", 2.0)
    );
    // NaN is out of every range
    let (o, n, v) = hyper_err(RAdam { lr: f64::NAN, ..RAdam::default() }.build(p()));
    assert!((o, n) == ("RAdam", "lr") && v.is_nan());
    // group overrides are checked too
    assert_eq!(
        hyper_err(Adamax::default().build_groups(vec![ParamGroup::new(p()).lr(-1.0)])),
        ("Adamax", "lr", -1.0)
    );
    let e = Sgd { lr: -0.1, ..Sgd::default() }.build(p()).unwrap_err();
    assert_eq!(e.to_string(), "SGD: invalid lr = -0.1: must be finite and >= 0");
}

#[test]
fn a_parameter_given_twice_is_an_error() {
    let w = Param::new(Tensor::zeros(&[2]));
    let e = Adam::default().build_groups(vec![ParamGroup::new(vec![w.clone()]), ParamGroup::new(vec![w])]);
    assert!(matches!(e, Err(OptimError::DuplicateParam { group: 1, index: 0, .. })));
}

#[test]
fn groups_override_lr_and_decay_and_set_lr_keeps_their_ratio() {
    // plain SGD, g = 1 everywhere, so each step moves θ by exactly lr (+ decay)
    let a = Param::new(Tensor::from_vec(vec![1.0], &[1]).unwrap());
    let b = Param::new(Tensor::from_vec(vec![1.0], &[1]).unwrap());
    let mut opt = Sgd { lr: 0.1, weight_decay: WeightDecay::L2(0.5), ..Sgd::default() }
        .build_groups(vec![
            ParamGroup::new(vec![a.clone()]),
            ParamGroup::new(vec![b.clone()]).lr(0.01).weight_decay(0.0),
        ])
        .unwrap();
    let mut g = Grads::new();
    g.insert(&a, Tensor::from_vec(vec![1.0], &[1]).unwrap());
    g.insert(&b, Tensor::from_vec(vec![1.0], &[1]).unwrap());
    opt.step(&g).unwrap();
    // a: g + 0.5 θ = 1.5, θ = 1 − 0.1 · 1.5 = 0.85; b: θ = 1 − 0.01 · 1 = 0.99
    assert_eq!(a.value().to_vec(), [1.0f32 - 0.1f32 * 1.5f32]);
    assert_eq!(b.value().to_vec(), [1.0f32 - 0.01f32]);
    // a schedule halves the rate: group b keeps a tenth of it
    opt.set_lr(0.05);
    assert_eq!(opt.lr(), 0.05);
    let lrs: Vec<f64> = opt.param_groups().iter().map(|g| g.lr.unwrap()).collect();
    assert_eq!(lrs, [0.05, 0.05 * (0.01 / 0.1)]);
    // a negative rate from a broken schedule is reported by step, not a panic
    opt.set_lr(-1.0);
    assert!(matches!(opt.step(&g), Err(OptimError::InvalidHyper { name: "lr", .. })));
}

#[test]
fn maximize_equals_minimizing_the_negated_gradient() {
    // torch negates the gradient first; negation is exact, so the two runs agree bit for bit
    let check =
        |name: &str, mut max: Box<dyn Optimizer>, mut min: Box<dyn Optimizer>, a: &[Param], b: &[Param]| {
            for k in 0..4 {
                let ga = grads(a, k);
                let mut gb = Grads::new();
                for (pa, pb) in a.iter().zip(b) {
                    if let Some(t) = ga.get(pa) {
                        gb.insert(pb, t.neg());
                    }
                }
                max.step(&ga).unwrap();
                min.step(&gb).unwrap();
            }
            assert_eq!(bits(a), bits(b), "{name}");
        };
    macro_rules! pair {
        ($name:expr, $t:ident { $($f:ident: $v:expr),* }) => {{
            let (a, b) = (params(11), params(11));
            let max = Box::new($t { maximize: true, $($f: $v,)* ..$t::default() }.build_groups(groups(&a)).unwrap());
            let min = Box::new($t { maximize: false, $($f: $v,)* ..$t::default() }.build_groups(groups(&b)).unwrap());
            check($name, max, min, &a, &b);
        }};
    }
    pair!("sgd", Sgd { momentum: 0.9, weight_decay: WeightDecay::L2(0.01) });
    pair!("adam", Adam { amsgrad: true, weight_decay: WeightDecay::L2(0.01) });
    pair!("adamw", AdamW { lr: 0.01 });
    pair!("adagrad", Adagrad { lr_decay: 0.1 });
    pair!("rmsprop", RmsProp { centered: true, momentum: 0.3 });
    pair!("adadelta", Adadelta { rho: 0.8 });
    pair!("adamax", Adamax { lr: 0.01 });
    pair!("nadam", NAdam { lr: 0.01 });
    pair!("radam", RAdam { lr: 0.01 });
    pair!("rprop", Rprop { lr: 0.01 });
    pair!("lion", Lion { lr: 0.01 });
}

#[test]
fn lion_follows_the_published_rule_worked_by_hand() {
    // Chen et al. 2023, Algorithm 2, with lr = 0.1, β1 = 0.9, β2 = 0.99, λ = 0.5:
    //   c = β1 m + (1 − β1) g;  θ ← θ − lr (sign(c) + λ θ);  m ← β2 m + (1 − β2) g
    let w = Param::new(Tensor::from_vec(vec![1.0, -2.0, 0.5], &[3]).unwrap());
    let mut opt =
        Lion { lr: 0.1, betas: (0.9, 0.99), weight_decay: WeightDecay::Decoupled(0.5), maximize: false }
            .build(vec![w.clone()])
            .unwrap();
    let feed = |opt: &mut dyn Optimizer, g: [f32; 3]| {
        let mut grads = Grads::new();
        grads.insert(&w, Tensor::from_vec(g.to_vec(), &[3]).unwrap());
        opt.step(&grads).unwrap();
    };
    // step 1, g = (2, -1, 0), m = 0: c = (0.2, -0.1, 0), sign = (1, -1, 0)
    //   θ = θ (1 − 0.05) − 0.1 sign = (0.95 − 0.1, −1.9 + 0.1, 0.475) = (0.85, −1.8, 0.475)
    //   m = 0.01 g = (0.02, −0.01, 0)
    feed(&mut opt, [2.0, -1.0, 0.0]);
    let got = w.value().to_vec();
    for (g, want) in got.iter().zip([0.85f32, -1.8, 0.475]) {
        assert!((g - want).abs() < 1e-6, "{got:?}");
    }
    // step 2, g = (−0.1, −0.05, 1): c = 0.9 m + 0.1 g = (0.018 − 0.01, −0.009 − 0.005, 0.1)
    //   = (0.008, −0.014, 0.1): sign (1, −1, 1) — the momentum outvotes the
    //   small opposite gradient in the first element
    //   θ = θ · 0.95 − 0.1 sign = (0.8075 − 0.1, −1.71 + 0.1, 0.45125 − 0.1)
    feed(&mut opt, [-0.1, -0.05, 1.0]);
    let got = w.value().to_vec();
    for (g, want) in got.iter().zip([0.7075f32, -1.61, 0.35125]) {
        assert!((g - want).abs() < 1e-6, "{got:?}");
    }
    // m = 0.99 m + 0.01 g = (0.0198 − 0.001, −0.0099 − 0.0005, 0.01)
    let m = opt.state_dict().tensor("state.0.0.exp_avg").unwrap().to_vec();
    for (g, want) in m.iter().zip([0.0188f32, -0.0104, 0.01]) {
        assert!((g - want).abs() < 1e-7, "{m:?}");
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    // a tensor large enough (3 × 2^17) to be split into parallel chunks
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut rng = Rng::new(5);
            let w = Param::new(Tensor::randn(&[3, 1 << 17], 0.0, 1.0, &mut rng));
            let mut opt = Adam { lr: 0.01, amsgrad: true, ..Adam::default() }.build(vec![w.clone()]).unwrap();
            for k in 0..3 {
                let mut g = Grads::new();
                g.insert(&w, Tensor::randn(&[3, 1 << 17], 0.0, 1.0, &mut Rng::new(k)));
                opt.step(&g).unwrap();
            }
            bits(&[w])
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}

#[test]
fn unfit_state_dicts_are_errors_and_change_nothing() {
    let ps = params(4);
    let mut adam = Adam::default().build_groups(groups(&ps)).unwrap();
    adam.step(&grads(&ps, 0)).unwrap();
    let sd = adam.state_dict();

    // another optimizer kind
    let mut sgd = Sgd::default().build_groups(groups(&ps)).unwrap();
    assert!(matches!(sgd.load_state_dict(&sd), Err(OptimError::State { owner: "SGD", .. })));

    // other shapes
    let other = vec![
        Param::new(Tensor::zeros(&[5, 6])),
        Param::new(Tensor::zeros(&[7])),
        Param::new(Tensor::zeros(&[3, 2])),
    ];
    let mut fresh = Adam::default().build_groups(groups(&other)).unwrap();
    let e = fresh.load_state_dict(&sd).unwrap_err().to_string();
    assert!(e.contains("state.0.0.exp_avg has shape [5, 7], the parameter [5, 6]"), "{e}");
    assert_eq!(fresh.state_dict().tensors.len(), 0);

    // amsgrad needs a buffer the state dict lacks
    let mut ams = Adam { amsgrad: true, ..Adam::default() }.build_groups(groups(&ps)).unwrap();
    let e = ams.load_state_dict(&sd).unwrap_err().to_string();
    assert!(e.contains("missing tensor \"state.0.0.max_exp_avg_sq\""), "{e}");

    // an unknown key
    let mut extra = sd.clone();
    extra.tensors.insert("state.0.0.bogus".into(), Tensor::zeros(&[1]));
    let mut fresh = Adam::default().build_groups(groups(&ps)).unwrap();
    let e = fresh.load_state_dict(&extra).unwrap_err().to_string();
    assert!(e.contains("unexpected tensors [\"state.0.0.bogus\"]"), "{e}");

    // a different grouping
    let mut one_group = Adam::default().build(ps.clone()).unwrap();
    assert!(one_group.load_state_dict(&sd).is_err());
}

#[test]
fn updates_are_in_place_when_nothing_else_holds_the_parameter() {
    let w = Param::new(Tensor::zeros(&[1 << 10]));
    let ptr = |w: &Param| w.update(|t| t.as_slice_mut().as_ptr() as usize);
    let before = ptr(&w);
    let mut opt = Adam::default().build(vec![w.clone()]).unwrap();
    let mut g = Grads::new();
    g.insert(&w, Tensor::ones(&[1 << 10]));
    for _ in 0..3 {
        opt.step(&g).unwrap();
    }
    assert_eq!(ptr(&w), before);
    // a value still held elsewhere (as a live graph holds it) is copied once, and keeps its old numbers
    let held = w.value();
    let numbers = held.to_vec();
    opt.step(&g).unwrap();
    assert_eq!(held.to_vec(), numbers);
    assert_ne!(w.value().to_vec(), numbers);
    assert_ne!(ptr(&w), held.as_slice().unwrap().as_ptr() as usize);
}

#[test]
fn simd_variants_match_the_baseline_loops_bit_for_bit() {
    // the loops run AVX-512 or AVX2 code when the CPU has it; the same IEEE
    // operations in the same order must give the baseline's bits exactly
    let run = |baseline: bool| {
        nw_optim::kernel::force_baseline(baseline);
        let mut out = Vec::new();
        for (name, build) in all() {
            // 4107 + 7 + 6 elements: many full vectors, a peeled head and a tail
            let mut rng = Rng::new(21);
            let ps = vec![
                Param::new(Tensor::randn(&[37, 111], 0.0, 1.0, &mut rng)),
                Param::new(Tensor::randn(&[7], 0.0, 1.0, &mut rng)),
                Param::new(Tensor::randn(&[3, 2], 0.0, 1.0, &mut rng)),
            ];
            let mut opt = build(groups(&ps));
            for k in 0..5 {
                opt.step(&grads(&ps, k)).unwrap();
            }
            out.push((name, bits(&ps)));
        }
        nw_optim::kernel::force_baseline(false);
        out
    };
    println!("dispatched ISA on this machine: {:?}", nw_optim::kernel::isa());
    let fast = run(false);
    let base = run(true);
    for ((name, a), (_, b)) in fast.iter().zip(&base) {
        assert_eq!(a, b, "{name}");
    }
}
