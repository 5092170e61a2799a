//! Gradient clipping: hand-worked norms, the non-finite report, thread counts.
//! (The torch cases are in nw-parity's `optim_parity` test.)

use nw_autograd::{Grads, Param};
use nw_optim::OptimError;
use nw_optim::clip::{clip_grad_norm, clip_grad_value, grad_norm};
use nw_tensor::{Rng, Tensor};

fn setup(values: &[&[f32]]) -> (Vec<Param>, Grads) {
    let ps: Vec<Param> = values.iter().map(|v| Param::new(Tensor::zeros(&[v.len()]))).collect();
    let mut g = Grads::new();
    for (p, v) in ps.iter().zip(values) {
        g.insert(p, Tensor::from_vec(v.to_vec(), &[v.len()]).unwrap());
    }
    (ps, g)
}

#[test]
fn norms_worked_by_hand() {
    let (ps, g) = setup(&[&[1.0, -2.0], &[2.0]]);
    assert_eq!(grad_norm(&ps, &g, 1.0).unwrap(), 5.0); // |1| + |−2| + |2|
    assert_eq!(grad_norm(&ps, &g, 2.0).unwrap(), 3.0); // √(1 + 4 + 4)
    assert_eq!(grad_norm(&ps, &g, f64::INFINITY).unwrap(), 2.0);
    // p = 3: (1 + 8 + 8)^(1/3)
    assert!((grad_norm(&ps, &g, 3.0).unwrap() - 17f64.powf(1.0 / 3.0)).abs() < 1e-15);
    assert!(matches!(grad_norm(&ps, &g, 0.0), Err(OptimError::InvalidHyper { name: "norm_type", .. })));
}

#[test]
fn clipping_scales_by_max_over_total_plus_1e_6_and_skips_missing_grads() {
    let (mut ps, mut g) = setup(&[&[3.0], &[4.0]]);
    ps.push(Param::new(Tensor::zeros(&[2]))); // no gradient: left out, as torch's grad None
    let total = clip_grad_norm(&ps, &mut g, 2.5, 2.0, false).unwrap();
    assert_eq!(total, 5.0);
    let c = (2.5 / (5.0 + 1e-6)) as f32;
    assert_eq!(g.get(&ps[0]).unwrap().to_vec(), [3.0 * c]);
    assert_eq!(g.get(&ps[1]).unwrap().to_vec(), [4.0 * c]);
    // below the limit: untouched bits
    let before = g.get(&ps[0]).unwrap().clone();
    clip_grad_norm(&ps, &mut g, 10.0, 2.0, false).unwrap();
    assert_eq!(g.get(&ps[0]).unwrap(), &before);
}

#[test]
fn a_non_finite_norm_is_reported_when_asked() {
    let (ps, mut g) = setup(&[&[1.0, f32::INFINITY]]);
    let e = clip_grad_norm(&ps, &mut g, 1.0, 2.0, true).unwrap_err();
    assert_eq!(e, OptimError::NonFiniteNorm { norm_type: 2.0, norm: f64::INFINITY });
    assert_eq!(g.get(&ps[0]).unwrap().to_vec(), [1.0, f32::INFINITY]); // unchanged
    // without the error option it behaves as torch: coefficient 1/(inf) = 0
    let total = clip_grad_norm(&ps, &mut g, 1.0, 2.0, false).unwrap();
    assert!(total.is_infinite());
    assert_eq!(g.get(&ps[0]).unwrap().to_vec()[0], 0.0);
    let (ps, mut g) = setup(&[&[f32::NAN]]);
    assert!(
        clip_grad_norm(&ps, &mut g, 1.0, 1.0, true).unwrap_err().to_string().contains("non-finite (NaN)")
    );
}

#[test]
fn value_clipping_clamps_and_rejects_a_negative_limit() {
    let (ps, mut g) = setup(&[&[-3.0, 0.25, 9.0, f32::NAN]]);
    clip_grad_value(&ps, &mut g, 0.5).unwrap();
    let v = g.get(&ps[0]).unwrap().to_vec();
    assert_eq!(&v[..3], &[-0.5, 0.25, 0.5]);
    assert!(v[3].is_nan());
    assert!(matches!(
        clip_grad_value(&ps, &mut g, -1.0),
        Err(OptimError::InvalidHyper { name: "clip_value", .. })
    ));
}

#[test]
fn the_total_norm_does_not_depend_on_the_thread_count() {
    let mut rng = Rng::new(3);
    let t = Tensor::randn(&[1 << 19], 0.0, 1.0, &mut rng);
    let big = Param::new(Tensor::zeros(&[1 << 19]));
    let mut g = Grads::new();
    g.insert(&big, t);
    let norm = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| grad_norm(std::slice::from_ref(&big), &g, 2.0).unwrap().to_bits())
    };
    assert_eq!(norm(1), norm(2));
    assert_eq!(norm(1), norm(5));
}
