//! SparseAdam beyond the PyTorch fixtures (`fixtures/optim-extra/sparse_adam.json`):
//! rows a step does not touch keep their bits, dense gradients and bad
//! hyper-parameters are typed errors (torch's checks), the state saves and
//! loads bit for bit, and 1 and 2 threads give the same bits.

use nw_autograd::{Grads, Param, Var};
use nw_optim::{Adam, OptimError, Optimizer, OptimizerConfig, ParamGroup, SparseAdam, StateDict};
use nw_tensor::{Rng, Tensor};

fn table(rows: usize, dim: usize, seed: u64) -> Param {
    Param::new(Tensor::randn(&[rows, dim], 0.0, 1.0, &mut Rng::new(seed)))
}

/// The gradient of `sum(lookup(indices) * G)` for a random `G`, through the
/// sparse embedding lookup (rows = the indices without `padding_idx`).
fn lookup_grads(w: &Param, indices: &[usize], padding_idx: Option<usize>, seed: u64) -> Grads {
    let dim = w.shape()[1];
    let y = Var::param(w).sparse_embedding_rows(indices, padding_idx).unwrap();
    let go = Tensor::randn(&[indices.len(), dim], 0.0, 1.0, &mut Rng::new(seed));
    y.backward_with(go).unwrap()
}

fn bits(t: &[f32]) -> Vec<u32> {
    t.iter().map(|x| x.to_bits()).collect()
}

fn row(t: &[f32], r: usize, dim: usize) -> Vec<u32> {
    bits(&t[r * dim..(r + 1) * dim])
}

/// torch.optim._functional.sparse_adam for one parameter, in f64: the
/// formula of the rustdoc, over the coalesced rows only.
struct Reference {
    p: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
    step: u64,
}

impl Reference {
    fn step(&mut self, c: &SparseAdam, g: &[f32], rows: &[usize], dim: usize) {
        self.step += 1;
        let t = self.step as f64;
        let (b1, b2) = c.betas;
        let step_size = c.lr * (1.0 - b2.powf(t)).sqrt() / (1.0 - b1.powf(t));
        for &r in rows {
            for j in r * dim..(r + 1) * dim {
                let g = if c.maximize { -(g[j] as f64) } else { g[j] as f64 };
                self.m[j] += (g - self.m[j]) * (1.0 - b1);
                self.v[j] += (g * g - self.v[j]) * (1.0 - b2);
                self.p[j] -= step_size * self.m[j] / (self.v[j].sqrt() + c.eps);
            }
        }
    }
}

#[test]
fn follows_torchs_formula_and_leaves_untouched_rows_alone() {
    let (rows, dim) = (6, 3);
    let w = table(rows, dim, 1);
    let c = SparseAdam { lr: 0.05, betas: (0.8, 0.95), eps: 1e-6, maximize: true };
    let mut opt = c.clone().build(vec![w.clone()]).unwrap();
    let to64 = |t: Tensor| t.to_vec().iter().map(|&x| x as f64).collect::<Vec<_>>();
    let mut r = Reference { p: to64(w.value()), m: vec![0.0; rows * dim], v: vec![0.0; rows * dim], step: 0 };
    // duplicates (2 twice), padding row 4 looked up but left out, row 5 only at step 3
    let batches: [&[usize]; 4] = [&[2, 0, 2, 4], &[1, 4], &[0, 2, 2, 2], &[5]];
    for (k, idx) in batches.iter().enumerate() {
        let before_p = w.value().to_vec();
        let before = opt.state_dict();
        let g = lookup_grads(&w, idx, Some(4), 10 + k as u64);
        let touched = g.rows(&w).unwrap().to_vec();
        assert!(!touched.contains(&4));
        opt.step(&g).unwrap();
        r.step(&c, &g.get(&w).unwrap().to_vec(), &touched, dim);
        let after_p = w.value().to_vec();
        let after = opt.state_dict();
        for i in 0..rows {
            if touched.contains(&i) {
                continue;
            }
            assert_eq!(row(&after_p, i, dim), row(&before_p, i, dim), "step {k} row {i}");
            for b in ["exp_avg", "exp_avg_sq"] {
                let key = format!("state.0.0.{b}");
                let now = after.tensor(&key).unwrap().to_vec();
                match before.tensor(&key) {
                    Some(t) => {
                        assert_eq!(row(&now, i, dim), row(&t.to_vec(), i, dim), "step {k} {b} row {i}")
                    }
                    None => assert_eq!(row(&now, i, dim), vec![0; dim], "step {k} {b} row {i}"),
                }
            }
        }
        for (j, (&got, &want)) in after_p.iter().zip(&r.p).enumerate() {
            assert!((got as f64 - want).abs() <= 1e-6 + 1e-4 * want.abs(), "step {k} [{j}]: {got} vs {want}");
        }
        assert_eq!(after.tensor("state.0.0.step").unwrap().to_vec(), vec![(k + 1) as f32]);
    }
    // the padding row never moved
    assert_eq!(
        row(&w.value().to_vec(), 4, dim),
        row(&r.p.iter().map(|&x| x as f32).collect::<Vec<_>>(), 4, dim)
    );
}

#[test]
fn a_step_of_only_padding_counts_but_moves_nothing_and_no_gradient_skips() {
    let w = table(3, 2, 2);
    let mut opt = SparseAdam::default().build(vec![w.clone()]).unwrap();
    opt.step(&lookup_grads(&w, &[0], None, 1)).unwrap();
    let (p1, sd1) = (w.value().to_vec(), opt.state_dict());
    // torch: a sparse grad with no values still increments state["step"], skips the update
    let g = lookup_grads(&w, &[1, 1], Some(1), 2);
    assert_eq!(g.rows(&w), Some(&[][..]));
    opt.step(&g).unwrap();
    assert_eq!(bits(&w.value().to_vec()), bits(&p1));
    let sd2 = opt.state_dict();
    assert_eq!(sd2.tensor("state.0.0.step").unwrap().to_vec(), vec![2.0]);
    assert_eq!(sd2.tensor("state.0.0.exp_avg"), sd1.tensor("state.0.0.exp_avg"));
    // no gradient at all (grad is None): not even the step counts
    opt.step(&Grads::new()).unwrap();
    assert_eq!(opt.state_dict(), sd2);
}

#[test]
fn dense_gradients_are_refused_naming_the_parameter_and_nothing_moves() {
    let (e, d) = (table(4, 2, 3), table(4, 2, 4));
    let mut opt = SparseAdam::default().build(vec![e.clone(), d.clone()]).unwrap();
    let mut g = lookup_grads(&e, &[1, 3], None, 5);
    g.insert(&d, Tensor::ones(&[4, 2]));
    let (pe, pd) = (e.value().to_vec(), d.value().to_vec());
    let err = opt.step(&g).unwrap_err();
    match &err {
        OptimError::DenseGrad { optimizer: "SparseAdam", param, group: 0, index: 1 } => {
            assert_eq!(*param, format!("{d:?}"))
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("does not support dense gradients"), "{err}");
    assert_eq!(bits(&e.value().to_vec()), bits(&pe));
    assert_eq!(bits(&d.value().to_vec()), bits(&pd));
    assert!(opt.state_dict().tensors.is_empty());
    // a sparse gradient made dense by a dense term (a penalty) is refused too
    let mut g = lookup_grads(&e, &[1], None, 6);
    g.accumulate(e.id(), Tensor::ones(&[4, 2]));
    assert!(matches!(opt.step(&g), Err(OptimError::DenseGrad { index: 0, .. })));
}

#[test]
fn bad_hyper_parameters_are_torchs_errors() {
    // torch: `0.0 < lr`, `0.0 < eps`, `0.0 <= beta < 1.0`
    let bad = [
        (SparseAdam { lr: -1e-3, ..SparseAdam::default() }, "lr"),
        (SparseAdam { lr: 0.0, ..SparseAdam::default() }, "lr"),
        (SparseAdam { lr: f64::NAN, ..SparseAdam::default() }, "lr"),
        (SparseAdam { eps: 0.0, ..SparseAdam::default() }, "eps"),
        (SparseAdam { eps: -1e-8, ..SparseAdam::default() }, "eps"),
        (SparseAdam { betas: (1.0, 0.999), ..SparseAdam::default() }, "betas[0]"),
        (SparseAdam { betas: (-0.1, 0.999), ..SparseAdam::default() }, "betas[0]"),
        (SparseAdam { betas: (0.9, 1.0), ..SparseAdam::default() }, "betas[1]"),
        (SparseAdam { betas: (0.9, f64::NAN), ..SparseAdam::default() }, "betas[1]"),
    ];
    for (c, key) in bad {
        match c.clone().build(vec![table(2, 2, 0)]) {
            Err(OptimError::InvalidHyper { owner: "SparseAdam", name, .. }) => assert_eq!(name, key, "{c:?}"),
            other => panic!("{c:?}: {other:?}"),
        }
    }
    assert!(SparseAdam { betas: (0.0, 0.0), ..SparseAdam::default() }.build(vec![table(2, 2, 0)]).is_ok());
    // no weight decay, not even per group
    let g = ParamGroup::new(vec![table(2, 2, 0)]).weight_decay(0.1);
    assert!(matches!(
        SparseAdam::default().build_groups(vec![g]),
        Err(OptimError::InvalidHyper { name: "weight_decay", .. })
    ));
    // set_momentum (a cycling schedule) checks betas[0] too
    let mut opt = SparseAdam::default().build(vec![table(2, 2, 0)]).unwrap();
    assert_eq!(opt.momentum(), Some(0.9));
    assert!(opt.set_momentum(1.0).is_err());
    assert_eq!(opt.momentum(), Some(0.9));
}

#[test]
fn state_round_trips_bit_for_bit() {
    let config = OptimizerConfig::SparseAdam(SparseAdam { lr: 0.01, ..SparseAdam::default() });
    let ps = vec![table(7, 3, 8), table(5, 2, 9)];
    let idx = |k: u64| -> Vec<usize> { vec![(k % 5) as usize, 1, (k * 3 % 5) as usize, 1] };
    let grads = |ps: &[Param], k: u64| {
        let mut g = lookup_grads(&ps[0], &idx(k), Some(0), 100 + k);
        g.merge(lookup_grads(&ps[1], &idx(k + 1), None, 200 + k));
        g
    };
    let mut opt = config.build(ps.clone()).unwrap();
    for k in 0..3 {
        opt.step(&grads(&ps, k)).unwrap();
    }
    let sd = opt.state_dict();
    let json = serde_json::to_string(&sd).unwrap();
    let copies: Vec<Param> = ps.iter().map(|p| Param::new(p.value())).collect();
    for k in 3..6 {
        opt.step(&grads(&ps, k)).unwrap();
    }
    let mut fresh = config.build(copies.clone()).unwrap();
    let back: StateDict = serde_json::from_str(&json).unwrap();
    fresh.load_state_dict(&back).unwrap();
    assert_eq!(fresh.state_dict(), sd);
    for k in 3..6 {
        fresh.step(&grads(&copies, k)).unwrap();
    }
    for (a, b) in ps.iter().zip(&copies) {
        assert_eq!(bits(&a.value().to_vec()), bits(&b.value().to_vec()));
    }
    assert_eq!(fresh.state_dict(), opt.state_dict());
    // another optimizer's state does not load
    let adam = Adam::default().build(copies.clone()).unwrap().state_dict();
    assert!(fresh.load_state_dict(&adam).is_err());
}

#[test]
fn one_and_two_threads_give_the_same_bits() {
    // 599 touched rows of 512 (600 distinct indices, padding row 3 out): the gathered
    // update (306,688 elements) takes the parallel path
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let w = table(1000, 512, 11);
            let mut opt = SparseAdam { lr: 0.01, ..SparseAdam::default() }.build(vec![w.clone()]).unwrap();
            for k in 0..3u64 {
                let idx: Vec<usize> = (0..600).map(|i| (i * 7 + k as usize * 13) % 800).collect();
                opt.step(&lookup_grads(&w, &idx, Some(3), 30 + k)).unwrap();
            }
            (bits(&w.value().to_vec()), opt.state_dict())
        })
    };
    let (a, sa) = run(1);
    let (b, sb) = run(2);
    assert!(a == b, "weights differ between 1 and 2 threads");
    assert!(sa == sb, "state differs between 1 and 2 threads");
}

#[test]
fn dense_optimizers_read_a_sparse_gradient_as_its_dense_tensor() {
    // the touched rows are extra information: Adam steps the dense tensor as ever
    let (a, b) = (table(4, 2, 12), table(4, 2, 12));
    let g = lookup_grads(&a, &[1, 1, 3], None, 13);
    let mut dense = Grads::new();
    dense.insert(&b, g.get(&a).unwrap().clone());
    let mut oa = Adam::default().build(vec![a.clone()]).unwrap();
    let mut ob = Adam::default().build(vec![b.clone()]).unwrap();
    oa.step(&g).unwrap();
    ob.step(&dense).unwrap();
    assert_eq!(bits(&a.value().to_vec()), bits(&b.value().to_vec()));
}
