//! Pruning: torch.nn.utils.prune semantics (amounts, rounding, iterative
//! pruning, global and structured), masks kept through optimizer steps,
//! gradual schedules, reports. The reference fixtures are checked in
//! nw-parity's `prune_parity` test.

use nw_autograd::{Grads, Param};
use nw_reg::RegError;
use nw_reg::prune::{
    Amount, GradualPruner, GradualSchedule, Pruner, global_l1_unstructured_masks, l1_unstructured_mask,
    ln_structured_mask, slice_norms,
};
use nw_tensor::{Rng, Tensor};

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).unwrap()
}

fn pruned(m: &Tensor) -> usize {
    m.to_vec().iter().filter(|&&x| x == 0.0).count()
}

#[test]
fn fraction_rounds_half_to_even_like_python() {
    // Python: round(2.5) = 2, round(3.5) = 4, round(22.5) = 22, round(1.2) = 1
    for (frac, n, want) in [(0.5, 5, 2), (0.5, 7, 4), (0.75, 30, 22), (0.3, 4, 1), (1.0, 9, 9), (0.0, 9, 0)] {
        let w = Tensor::from_fn(&[n], || 1.0);
        assert_eq!(pruned(&l1_unstructured_mask(&w, Amount::Fraction(frac)).unwrap()), want, "{frac} of {n}");
    }
    assert_eq!(Amount::Fraction(0.5).count(5, "x").unwrap(), 2);
}

#[test]
fn ties_lower_index_first_and_nan_last() {
    let m = l1_unstructured_mask(&t(&[1.0, -1.0, 1.0, 1.0], &[4]), Amount::Count(2)).unwrap();
    assert_eq!(m.to_vec(), vec![0.0, 0.0, 1.0, 1.0]);
    // |-0.5| ties 0.5; NaN is the largest magnitude
    let m = l1_unstructured_mask(&t(&[f32::NAN, 0.5, 3.0, -0.5], &[4]), Amount::Count(3)).unwrap();
    assert_eq!(m.to_vec(), vec![1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn bad_amounts_are_errors() {
    let w = t(&[1.0, 2.0, 3.0], &[3]);
    for a in [Amount::Fraction(-0.1), Amount::Fraction(1.01), Amount::Fraction(f64::NAN), Amount::Count(4)] {
        assert!(matches!(l1_unstructured_mask(&w, a), Err(RegError::BadAmount { .. })), "{a:?}");
    }
    assert!(ln_structured_mask(&t(&[1.0; 4], &[2, 2]), Amount::Count(3), 2.0, 0).is_err());
    assert!(ln_structured_mask(&t(&[1.0; 4], &[2, 2]), Amount::Count(1), 2.0, 2).is_err());
    assert!(ln_structured_mask(&t(&[1.0; 4], &[2, 2]), Amount::Count(1), -1.0, 0).is_err());
    let p = Param::new(t(&[1.0, 2.0], &[2]));
    let mut pr = Pruner::new();
    assert!(pr.set_mask(&p, t(&[1.0, 0.5], &[2])).is_err());
    assert!(pr.set_mask(&p, t(&[1.0, 0.0, 1.0], &[3])).is_err());
    assert!(pr.global_l1_unstructured(&[p.clone(), p.clone()], Amount::Count(1)).is_err());
    assert!(pr.is_empty());
    assert_eq!(p.value().to_vec(), vec![1.0, 2.0]);
}

#[test]
fn global_ranks_all_tensors_together() {
    let a = t(&[0.1, -0.2, 0.3, 0.05], &[2, 2]);
    let b = t(&[5.0, -4.0, 0.15], &[3]);
    // the 3 smallest of all seven: 0.05, 0.1, 0.15
    let m = global_l1_unstructured_masks(&[&a, &b], Amount::Count(3)).unwrap();
    assert_eq!(m[0].to_vec(), vec![0.0, 1.0, 1.0, 0.0]);
    assert_eq!(m[0].shape(), &[2, 2]);
    assert_eq!(m[1].to_vec(), vec![1.0, 1.0, 0.0]);
    // 0.5 of 7 = 3.5 -> 4 (half to even)
    let m = global_l1_unstructured_masks(&[&a, &b], Amount::Fraction(0.5)).unwrap();
    assert_eq!(m.iter().map(pruned).sum::<usize>(), 4);
}

#[test]
fn iterative_pruning_takes_amount_of_what_remains() {
    let p = Param::new(t(&[8.0, 1.0, 7.0, 2.0, 6.0, 3.0, 5.0, 4.0], &[8]));
    let mut pr = Pruner::new();
    pr.l1_unstructured(&p, Amount::Fraction(0.5)).unwrap(); // 4 of 8: 1, 2, 3, 4
    assert_eq!(p.value().to_vec(), vec![8.0, 0.0, 7.0, 0.0, 6.0, 0.0, 5.0, 0.0]);
    pr.l1_unstructured(&p, Amount::Fraction(0.5)).unwrap(); // 2 of the 4 left: 5, 6
    assert_eq!(pr.mask(&p).unwrap().to_vec(), vec![1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    // a count larger than what remains is refused
    assert!(pr.l1_unstructured(&p, Amount::Count(3)).is_err());
}

#[test]
fn structured_prunes_whole_rows_and_columns() {
    // rows: L1 norms 3, 2.5, 9; L2 norms sqrt 5 = 2.24, sqrt 6.25 = 2.5, sqrt 41 = 6.4
    let w = t(&[1.0, 2.0, 2.5, 0.0, 4.0, 5.0], &[3, 2]);
    assert_eq!(
        ln_structured_mask(&w, Amount::Count(1), 1.0, 0).unwrap().to_vec(),
        vec![1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    );
    assert_eq!(
        ln_structured_mask(&w, Amount::Count(1), 2.0, 0).unwrap().to_vec(),
        vec![0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    );
    // columns: L2 norms sqrt(1 + 6.25 + 16) = 4.8, sqrt(4 + 0 + 25) = 5.4
    assert_eq!(
        ln_structured_mask(&w, Amount::Count(1), 2.0, 1).unwrap().to_vec(),
        vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    );
    // inf norm (max |x|): rows 2, 2.5, 5
    let n = slice_norms(&w, f64::INFINITY, 0).unwrap();
    assert_eq!(n, vec![2.0, 2.5, 5.0]);
    // conv filters [out 3, in 1, 1, 2] along dim 0, 2/3 of 3 = 2
    let k = w.reshape(&[3, 1, 1, 2]).unwrap();
    assert_eq!(pruned(&ln_structured_mask(&k, Amount::Fraction(2.0 / 3.0), 2.0, 0).unwrap()), 4);

    // iteratively on a Pruner: the second call ranks only the rows still alive
    let p = Param::new(w);
    let mut pr = Pruner::new();
    pr.ln_structured(&p, Amount::Count(1), 2.0, 0).unwrap();
    pr.ln_structured(&p, Amount::Fraction(0.5), 2.0, 0).unwrap(); // 0.5 of 2 rows = 1: row 1
    assert_eq!(p.value().to_vec(), vec![0.0, 0.0, 0.0, 0.0, 4.0, 5.0]);
}

#[test]
fn pruned_weights_stay_zero_through_training() {
    let mut rng = Rng::new(7);
    let w = Param::new(Tensor::randn(&[6, 5], 0.0, 1.0, &mut rng));
    let b = Param::new(Tensor::randn(&[6], 0.0, 1.0, &mut rng));
    let params = [w.clone(), b.clone()];
    let mut pr = Pruner::new();
    pr.l1_unstructured(&w, Amount::Fraction(0.4)).unwrap(); // 12 of 30
    let mask = pr.mask(&w).unwrap().clone();
    let mut velocity = [Tensor::zeros(&[6, 5]), Tensor::zeros(&[6])];
    for _ in 0..5 {
        let mut grads = Grads::new();
        for p in &params {
            grads.insert(p, Tensor::randn(&p.shape(), 0.0, 1.0, &mut rng));
        }
        pr.mask_grads(&params, &mut grads).unwrap();
        for (g, m) in grads.get(&w).unwrap().to_vec().iter().zip(mask.to_vec()) {
            assert!(m == 1.0 || *g == 0.0);
        }
        // SGD with momentum and decoupled weight decay: moves weights whose
        // gradient is zero unless the mask is re-applied
        for (p, v) in params.iter().zip(velocity.iter_mut()) {
            v.scale_(0.9);
            v.add_assign(grads.get(p).unwrap()).unwrap();
            p.update(|t| {
                t.scale_(0.99);
                t.axpy_(-0.1, v)
            })
            .unwrap();
        }
        pr.apply(&params).unwrap();
        let wv = w.value().to_vec();
        for (x, m) in wv.iter().zip(mask.to_vec()) {
            assert_eq!(m == 0.0, *x == 0.0);
        }
    }
    let r = pr.report(&params);
    assert_eq!((r.params[0].zeros, r.params[0].masked, r.params[1].masked), (12, 12, 0));
    assert_eq!((r.zeros(), r.len()), (12, 36));
    assert!((r.overall_sparsity() - 12.0 / 36.0).abs() < 1e-12);
    assert!(r.to_string().contains("overall 12 zero of 36 (33.33%)"), "{r}");
}

#[test]
fn gradual_pruning_follows_the_cubic_schedule() {
    let mut rng = Rng::new(8);
    let a = Param::new(Tensor::randn(&[20, 10], 0.0, 1.0, &mut rng));
    let b = Param::new(Tensor::randn(&[100], 0.0, 1.0, &mut rng));
    let params = [a.clone(), b.clone()];
    // s_i = 0.1, s_f = 0.9, t0 = 5, n = 4, dt = 5: pruning at 5, 10, 15, 20, 25
    let sched = GradualSchedule::new(0.1, 0.9, 5, 4, 5).unwrap();
    // s_t = 0.9 + (0.1 - 0.9) (1 - k/4)^3: k=0 0.1, k=1 0.5625, k=2 0.8, k=3 0.8875, k=4 0.9
    let want = [0.1, 0.5625, 0.8, 0.8875, 0.9];
    for (k, w) in want.iter().enumerate() {
        assert!((sched.sparsity_at(5 + 5 * k) - w).abs() < 1e-12);
    }
    for global in [false, true] {
        let params: Vec<Param> = params.iter().map(|p| Param::new(p.value())).collect();
        let mut gp = GradualPruner::new(sched, global);
        let mut seen = Vec::new();
        let mut last = 0.0;
        for step in 0..30 {
            if let Some(s) = gp.step(step, &params).unwrap() {
                seen.push(s);
            }
            let r = gp.pruner().report(&params);
            assert!(r.overall_sparsity() >= last, "sparsity never decreases");
            last = r.overall_sparsity();
            if global {
                // round(s * 300) pruned over both tensors together
                let s = sched.sparsity_at(step);
                assert_eq!(r.masked(), (s * 300.0).round_ties_even() as usize, "step {step}");
            } else {
                for (p, n) in r.params.iter().zip([200.0, 100.0]) {
                    assert_eq!(p.masked, (sched.sparsity_at(step) * n).round_ties_even() as usize);
                }
            }
        }
        assert_eq!(seen.len(), 5);
        assert_eq!(gp.pruner().report(&params).masked(), 270); // 0.9 of 300
    }
    assert!(GradualSchedule::new(0.5, 0.2, 0, 4, 1).is_err());
    assert!(GradualSchedule::new(0.0, 1.2, 0, 4, 1).is_err());
    assert!(GradualSchedule::new(0.0, 0.5, 0, 0, 1).is_err());
}
