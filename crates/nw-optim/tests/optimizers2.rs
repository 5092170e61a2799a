//! ASGD, Adafactor, Muon and LBFGS beyond the parity fixtures: state that
//! saves and loads bit for bit, thread-count invariance of the matrix rules,
//! typed errors for shapes and closures.

use nw_autograd::{Grads, Param, Var};
use nw_optim::{Adafactor, Asgd, Lbfgs, LineSearch, Muon, OptimError, Optimizer, OptimizerConfig, StateDict};
use nw_tensor::{Rng, Tensor};

fn params(shapes: &[&[usize]], seed: u64) -> Vec<Param> {
    let mut rng = Rng::new(seed);
    shapes.iter().map(|s| Param::new(Tensor::randn(s, 0.0, 1.0, &mut rng))).collect()
}

fn grads_for(ps: &[Param], seed: u64) -> Grads {
    let mut rng = Rng::new(seed);
    let mut g = Grads::new();
    for p in ps {
        g.insert(p, Tensor::randn(&p.shape(), 0.0, 1.0, &mut rng));
    }
    g
}

fn bits(ps: &[Param]) -> Vec<Vec<u32>> {
    ps.iter().map(|p| p.value().to_vec().iter().map(|x| x.to_bits()).collect()).collect()
}

/// Runs 3 steps, saves, then 3 more; a fresh optimizer over copies of the
/// weights at step 3 loads the state (through serde) and runs the same 3
/// steps: the weights and the state agree bit for bit.
fn round_trip(config: &OptimizerConfig, shapes: &[&[usize]]) {
    let ps = params(shapes, 1);
    let mut opt = config.build(ps.clone()).unwrap();
    for k in 0..3 {
        opt.step(&grads_for(&ps, 10 + k)).unwrap();
    }
    let sd = opt.state_dict();
    let json = serde_json::to_string(&sd).unwrap();
    let copies: Vec<Param> = ps.iter().map(|p| Param::new(p.value())).collect();
    for k in 3..6 {
        opt.step(&grads_for(&ps, 10 + k)).unwrap();
    }
    let mut fresh = config.build(copies.clone()).unwrap();
    let back: StateDict = serde_json::from_str(&json).unwrap();
    fresh.load_state_dict(&back).unwrap();
    assert_eq!(fresh.state_dict(), sd, "{}", config.name());
    for k in 3..6 {
        // the gradient draw only depends on shapes and the seed
        fresh.step(&grads_for(&copies, 10 + k)).unwrap();
    }
    assert_eq!(bits(&ps), bits(&copies), "{}", config.name());
    assert_eq!(fresh.state_dict(), opt.state_dict(), "{}", config.name());
}

#[test]
fn asgd_adafactor_muon_state_round_trips_bit_for_bit() {
    let asgd = OptimizerConfig::Asgd(Asgd { t0: 1.0, lambd: 0.01, ..Asgd::default() });
    round_trip(&asgd, &[&[3, 4], &[4]]);
    round_trip(&OptimizerConfig::Adafactor(Adafactor::default()), &[&[3, 5], &[5], &[2, 4, 3]]);
    round_trip(&OptimizerConfig::Muon(Muon { lr: 0.02, ..Muon::default() }), &[&[3, 5], &[6, 2]]);
    // Muon over a bias pairs it with AdamW; that state round-trips too
    round_trip(&OptimizerConfig::Muon(Muon::default()), &[&[3, 5], &[3]]);
}

#[test]
fn shaped_state_has_torchs_keys_and_shapes() {
    let ps = params(&[&[2, 3, 4], &[4]], 2);
    let mut opt = Adafactor::default().build(ps.clone()).unwrap();
    opt.step(&grads_for(&ps, 3)).unwrap();
    let sd = opt.state_dict();
    assert_eq!(sd.tensor("state.0.0.row_var").unwrap().shape(), &[2, 3, 1]);
    assert_eq!(sd.tensor("state.0.0.col_var").unwrap().shape(), &[2, 1, 4]);
    assert_eq!(sd.tensor("state.0.1.variance").unwrap().shape(), &[4]);
    assert!(sd.tensor("state.0.0.variance").is_none());

    let ps = params(&[&[2]], 4);
    let mut asgd = Asgd { lr: 0.5, ..Asgd::default() }.build(ps.clone()).unwrap();
    asgd.step(&grads_for(&ps, 5)).unwrap();
    let sd = asgd.state_dict();
    // eta after step 1: γ / (1 + λ γ)^α
    let eta = (0.5 / (1.0 + 1e-4 * 0.5f64).powf(0.75)) as f32;
    assert_eq!(sd.tensor("state.0.0.eta").unwrap().to_vec(), vec![eta]);
    assert_eq!(sd.tensor("state.0.0.mu").unwrap().to_vec(), vec![1.0]);
    assert_eq!(sd.tensor("state.0.0.ax").unwrap().to_vec(), ps[0].value().to_vec());
}

#[test]
fn a_state_dict_of_the_wrong_layout_is_refused() {
    let ps = params(&[&[3, 5]], 6);
    let mut opt = Adafactor::default().build(ps.clone()).unwrap();
    opt.step(&grads_for(&ps, 7)).unwrap();
    let sd = opt.state_dict();
    let other = params(&[&[5, 3]], 6);
    let mut fresh = Adafactor::default().build(other).unwrap();
    let e = fresh.load_state_dict(&sd).unwrap_err().to_string();
    assert!(e.contains("row_var has shape [3, 1], the parameter [5, 3] (expected [5, 1])"), "{e}");
}

#[test]
fn muon_refuses_non_matrices_with_a_typed_error() {
    let b = params(&[&[4]], 1);
    let e = Muon::default().build(b.clone()).unwrap_err();
    assert!(matches!(e, OptimError::ParamShape { optimizer: "Muon", ref shape, .. } if shape == &vec![4]));
    let strict: OptimizerConfig = serde_json::from_str(r#"{"name":"muon","non_matrix":"error"}"#).unwrap();
    assert!(matches!(strict.build(b.clone()), Err(OptimError::ParamShape { .. })));
    // the default registry entry hands the bias to AdamW
    let opt = OptimizerConfig::default_for("muon").unwrap().build(b).unwrap();
    assert_eq!(opt.name(), "Muon");
}

#[test]
fn matrix_rules_give_the_same_bits_on_1_and_2_threads() {
    // large enough for the parallel paths (rows, column blocks, GEMM splits)
    let run = |threads: usize, config: OptimizerConfig| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let ps = params(&[&[300, 400], &[512]], 8);
            let mut opt = config.build(ps.clone()).unwrap();
            for k in 0..2 {
                opt.step(&grads_for(&ps, 20 + k)).unwrap();
            }
            bits(&ps)
        })
    };
    let ada = OptimizerConfig::Adafactor(Adafactor {
        weight_decay: nw_optim::WeightDecay::Decoupled(0.1),
        ..Adafactor::default()
    });
    assert_eq!(run(1, ada.clone()), run(2, ada));
    let muon = OptimizerConfig::Muon(Muon { lr: 0.02, ..Muon::default() });
    assert_eq!(run(1, muon.clone()), run(2, muon));
}

#[test]
fn newton_schulz_orthogonalises() {
    // with the convergent cubic-like coefficients (1.875, −1.25, 0.375) and
    // enough steps, X Xᵀ → I for a well-conditioned wide matrix
    let mut rng = Rng::new(3);
    let g = Tensor::randn(&[4, 9], 0.0, 1.0, &mut rng).to_vec();
    let o = nw_optim::newton_schulz(&g, 4, 9, (1.875, -1.25, 0.375), 30, 1e-7);
    for i in 0..4 {
        for j in 0..4 {
            let d: f32 = (0..9).map(|k| o[i * 9 + k] * o[j * 9 + k]).sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((d - want).abs() < 1e-3, "({i},{j}) = {d}");
        }
    }
    // a tall matrix gives the transpose of its wide twin
    let mut gt = vec![0f32; 36];
    for i in 0..4 {
        for j in 0..9 {
            gt[j * 4 + i] = g[i * 9 + j];
        }
    }
    let ot = nw_optim::newton_schulz(&gt, 9, 4, (1.875, -1.25, 0.375), 30, 1e-7);
    for i in 0..4 {
        for j in 0..9 {
            assert_eq!(ot[j * 4 + i], o[i * 9 + j]);
        }
    }
}

/// The textbook iteration with three general products from the normalised
/// `x0`, for comparison.
fn newton_schulz_three_gemms(
    x0: &[f32],
    m: usize,
    n: usize,
    (a, b, c): (f32, f32, f32),
    steps: usize,
) -> Vec<f32> {
    use nw_tensor::gemm::{MatRef, gemm_slices};
    let mut x = x0.to_vec();
    let (mut gram, mut upd, mut next) = (vec![0f32; m * m], vec![0f32; m * m], vec![0f32; m * n]);
    for _ in 0..steps {
        gemm_slices(1.0, MatRef::row_major(&x, m, n), MatRef::transposed(&x, n, m), 0.0, &mut gram).unwrap();
        upd.copy_from_slice(&gram);
        gemm_slices(c, MatRef::row_major(&gram, m, m), MatRef::row_major(&gram, m, m), b, &mut upd).unwrap();
        next.copy_from_slice(&x);
        gemm_slices(1.0, MatRef::row_major(&upd, m, m), MatRef::row_major(&x, m, n), a, &mut next).unwrap();
        std::mem::swap(&mut x, &mut next);
    }
    x
}

#[test]
fn newton_schulz_has_the_bits_of_three_general_products() {
    // The symmetric products (X Xᵀ and A A on the upper triangle only) must
    // not change a bit, on one strip and across several.
    let abc = (3.4445, -4.775, 2.0315);
    for &(m, n) in &[(6, 11), (130, 200), (300, 301)] {
        let mut rng = Rng::new(m as u64);
        let g = Tensor::randn(&[m, n], 0.0, 1.0, &mut rng).to_vec();
        let got = nw_optim::newton_schulz(&g, m, n, abc, 5, 1e-7);
        // zero steps: just the normalised X both iterations start from
        let x0 = nw_optim::newton_schulz(&g, m, n, abc, 0, 1e-7);
        let want = newton_schulz_three_gemms(&x0, m, n, (abc.0 as f32, abc.1 as f32, abc.2 as f32), 5);
        let same = got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{m} x {n}");
    }
}

#[test]
fn newton_schulz_in_bfloat16_tracks_the_f32_iteration() {
    // torch's precision: every value a bfloat16, every product accumulated
    // in f32. With the convergent coefficients it orthogonalises to within
    // bfloat16's resolution; with torch's quintic ones it stays within a few
    // bfloat16 ulps (2^-8 relative) of the f32 iteration, wide and tall, and
    // gives the same bits on 1 and 2 threads.
    let mut rng = Rng::new(5);
    let g = Tensor::randn(&[20, 45], 0.0, 1.0, &mut rng).to_vec();
    let o = nw_optim::newton_schulz_bf16(&g, 20, 45, (1.875, -1.25, 0.375), 30, 1e-7);
    for v in &o {
        assert_eq!(v.to_bits() & 0xFFFF, 0, "{v} is not a bfloat16");
    }
    for i in 0..20 {
        for j in 0..20 {
            let d: f32 = (0..45).map(|k| o[i * 45 + k] * o[j * 45 + k]).sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((d - want).abs() < 0.05, "({i},{j}) = {d}");
        }
    }
    let abc = (3.4445, -4.775, 2.0315);
    for &(m, n) in &[(37, 70), (90, 33), (130, 130)] {
        let g = Tensor::randn(&[m, n], 0.0, 1.0, &mut rng).to_vec();
        let f = nw_optim::newton_schulz(&g, m, n, abc, 5, 1e-7);
        let run = |t: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            pool.install(|| nw_optim::newton_schulz_bf16(&g, m, n, abc, 5, 1e-7))
        };
        let b = run(1);
        assert_eq!(
            b.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            run(2).iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        let scale = f.iter().fold(0f32, |a, x| a.max(x.abs()));
        let worst = f.iter().zip(&b).fold(0f32, |a, (x, y)| a.max((x - y).abs()));
        // bfloat16 keeps 8 significant bits; five steps of rounding every
        // product stay within ~10 ulps of the largest entry
        assert!(worst < scale * 0.04, "{m} x {n}: {worst} vs scale {scale}");
        assert!(worst > 0.0, "{m} x {n}: bfloat16 cannot equal f32 exactly");
    }
}

#[test]
fn muon_bf16_reads_its_dtype_and_steps() {
    let toml_cfg: OptimizerConfig =
        serde_json::from_str(r#"{"name":"muon","ns_dtype":"bfloat16","lr":0.02}"#).unwrap();
    let OptimizerConfig::Muon(m) = &toml_cfg else { panic!("{toml_cfg:?}") };
    assert_eq!(m.ns_dtype, nw_optim::NsDtype::Bf16);
    let short: OptimizerConfig = serde_json::from_str(r#"{"name":"muon","ns_dtype":"bf16"}"#).unwrap();
    assert_eq!(short, OptimizerConfig::Muon(Muon { ns_dtype: nw_optim::NsDtype::Bf16, ..Muon::default() }));
    assert!(serde_json::from_str::<OptimizerConfig>(r#"{"name":"muon","ns_dtype":"float16"}"#).is_err());
    // a step moves the weights close to the f32 rule's step
    let run = |dtype| {
        let ps = params(&[&[24, 40]], 12);
        let mut opt = Muon { lr: 0.02, ns_dtype: dtype, ..Muon::default() }.build(ps.clone()).unwrap();
        opt.step(&grads_for(&ps, 13)).unwrap();
        ps[0].value().to_vec()
    };
    let (f, b) = (run(nw_optim::NsDtype::F32), run(nw_optim::NsDtype::Bf16));
    let before = params(&[&[24, 40]], 12)[0].value().to_vec();
    let step_f: f32 = f.iter().zip(&before).map(|(x, y)| (x - y).abs()).sum();
    let diff: f32 = f.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum();
    assert!(step_f > 0.0 && diff < 0.05 * step_f, "step {step_f}, bf16 vs f32 {diff}");
}

/// A least-squares problem as an LBFGS closure, counting evaluations.
fn least_squares(w: &Param, evals: &mut u64) -> Result<(f64, Grads), OptimError> {
    *evals += 1;
    let a = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.5], &[4, 2]).unwrap();
    let y = Tensor::from_vec(vec![1.0, -1.0, 2.0, 0.5], &[4, 1]).unwrap();
    let pred = Var::constant(a).matmul(&Var::param(w)).map_err(|e| OptimError::Closure(e.to_string()))?;
    let l = pred.sub(&Var::constant(y)).map_err(|e| OptimError::Closure(e.to_string()))?.square().mean();
    let v = l.value().item().map_err(|e| OptimError::Closure(e.to_string()))? as f64;
    Ok((v, l.backward().map_err(|e| OptimError::Closure(e.to_string()))?))
}

#[test]
fn lbfgs_needs_a_closure_and_respects_max_eval() {
    let w = Param::new(Tensor::zeros(&[2, 1]));
    let mut opt =
        Lbfgs { max_iter: 10, max_eval: Some(3), ..Lbfgs::default() }.build(vec![w.clone()]).unwrap();
    assert!(opt.wants_closure());
    assert!(matches!(opt.step(&Grads::new()), Err(OptimError::ClosureRequired { .. })));
    let mut evals = 0;
    opt.step_closure(&mut || least_squares(&w, &mut evals)).unwrap();
    assert_eq!(evals, 3);
    assert_eq!(opt.func_evals(), 3);
    // two groups are refused, as torch
    let groups = vec![nw_optim::ParamGroup::new(vec![w.clone()]), nw_optim::ParamGroup::new(vec![])];
    assert!(Lbfgs::default().build_groups(groups).is_err());
    // a closure error comes back as it is
    let mut failing = || Err(OptimError::Closure("no data".into()));
    assert_eq!(opt.step_closure(&mut failing), Err(OptimError::Closure("no data".into())));
}

#[test]
fn lbfgs_state_round_trips_bit_for_bit() {
    for ls in [None, Some(LineSearch::StrongWolfe)] {
        let config = Lbfgs { lr: 0.5, max_iter: 3, history_size: 2, line_search_fn: ls, ..Lbfgs::default() };
        let w = Param::new(Tensor::zeros(&[2, 1]));
        let mut opt = config.clone().build(vec![w.clone()]).unwrap();
        let mut n = 0;
        for _ in 0..3 {
            opt.step_closure(&mut || least_squares(&w, &mut n)).unwrap();
        }
        let sd: StateDict = serde_json::from_str(&serde_json::to_string(&opt.state_dict()).unwrap()).unwrap();
        let w2 = Param::new(w.value());
        let mut fresh = config.build(vec![w2.clone()]).unwrap();
        fresh.load_state_dict(&sd).unwrap();
        let (mut a, mut b) = (0, 0);
        for _ in 0..2 {
            opt.step_closure(&mut || least_squares(&w, &mut a)).unwrap();
            fresh.step_closure(&mut || least_squares(&w2, &mut b)).unwrap();
        }
        assert_eq!(a, b);
        assert_eq!(bits(&[w]), bits(&[w2]));
        assert_eq!(opt.state_dict(), fresh.state_dict());
    }
}

#[test]
fn adafactor_eps_reads_null_and_writes_toml_friendly() {
    let c: OptimizerConfig = serde_json::from_str(r#"{"name":"adafactor","eps":[null,0.01]}"#).unwrap();
    let OptimizerConfig::Adafactor(a) = &c else { panic!("adafactor") };
    assert_eq!(a.eps, (None, 0.01));
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["eps"], serde_json::json!(["machine", 0.01]));
    let back: OptimizerConfig = serde_json::from_value(v).unwrap();
    assert_eq!(back, c);
    let c2: OptimizerConfig = serde_json::from_str(r#"{"name":"adafactor","eps":[1e-6,0.01]}"#).unwrap();
    assert_eq!(serde_json::to_value(&c2).unwrap()["eps"], serde_json::json!([1e-6, 0.01]));
}

#[test]
fn adafactor_simd_variants_match_the_baseline_bit_for_bit() {
    // the row norms of U, the row and column sums and the update loop run
    // AVX-512 or AVX2 code when the CPU has it; 16-lane f64 sums in a fixed
    // order and the same f32 operations must give the baseline's bits. Shapes:
    // a tail after the 16-lane blocks (111 columns), a batched 3-D tensor, a
    // parameter longer than one reduction chunk, a vector.
    let run = |baseline: bool| {
        nw_optim::kernel::force_baseline(baseline);
        let ps = params(&[&[37, 111], &[2, 3, 50], &[130, 170], &[7]], 31);
        let mut opt = Adafactor { lr: 0.05, d: 1.0, ..Adafactor::default() }.build(ps.clone()).unwrap();
        for k in 0..3 {
            opt.step(&grads_for(&ps, 40 + k)).unwrap();
        }
        nw_optim::kernel::force_baseline(false);
        bits(&ps)
    };
    println!("dispatched ISA on this machine: {:?}", nw_optim::kernel::isa());
    let fast = run(false);
    let base = run(true);
    assert_eq!(fast, base);
    // and the steps moved every parameter
    let start = bits(&params(&[&[37, 111], &[2, 3, 50], &[130, 170], &[7]], 31));
    for (a, b) in fast.iter().zip(&start) {
        assert!(a.iter().zip(b).filter(|(x, y)| x != y).count() > a.len() / 2);
    }
}
