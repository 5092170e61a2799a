//! The fused neural-network operations (elementwise losses, layer and batch
//! normalisation) checked against central differences, with respect to every
//! input: prediction and target, input and affine parameters.

use nw_autograd::{PointwiseLoss, Result, Var, gradcheck};
use nw_tensor::{Rng, Tensor};

/// Random values in [-2, 2].
fn input(shape: &[usize], seed: u64) -> Tensor {
    let mut r = Rng::new(seed);
    Tensor::rand_uniform(shape, -2.0, 2.0, &mut r)
}

fn check(name: &str, f: impl Fn(&[Var]) -> Result<Var>, inputs: &[Tensor]) {
    let r = gradcheck(f, inputs, 1e-2, 2e-3, 1e-2).unwrap();
    assert!(r.ok, "{name}: {r:?}");
    assert!(r.checked > 0);
}

/// A prediction/target pair whose differences stay at least 0.1 away from
/// 0 and from `kink` (where the loss switches formula), so central
/// differences with eps 1e-2 never straddle a kink.
fn pair(shape: &[usize], seed: u64, kink: f32) -> (Tensor, Tensor) {
    let x = input(shape, seed);
    let y = input(shape, seed + 100);
    let d: Vec<f32> = x
        .to_vec()
        .iter()
        .zip(y.to_vec())
        .map(|(&a, b)| {
            let mut d = a - b;
            for k in [0.0, kink] {
                if (d.abs() - k).abs() < 0.1 {
                    d += 0.25_f32.copysign(d);
                }
            }
            b + d
        })
        .collect();
    (Tensor::from_vec(d, shape).unwrap(), y)
}

fn loss(kind: PointwiseLoss) -> impl Fn(&[Var]) -> Result<Var> {
    move |v: &[Var]| v[0].pointwise_loss(&v[1], kind)
}

#[test]
fn distance_losses() {
    let (x, y) = pair(&[4, 3], 1, 0.0);
    check("mse", loss(PointwiseLoss::SquaredError), &[x.clone(), y.clone()]);
    check("l1", loss(PointwiseLoss::AbsoluteError), &[x, y]);
    let (x, y) = pair(&[4, 3], 2, 0.7);
    check("smooth_l1", loss(PointwiseLoss::SmoothL1 { beta: 0.7 }), &[x.clone(), y.clone()]);
    check("huber", loss(PointwiseLoss::Huber { delta: 0.7 }), &[x, y]);
    let (x, y) = pair(&[5], 3, 0.0);
    check("smooth_l1_beta0", loss(PointwiseLoss::SmoothL1 { beta: 0.0 }), &[x, y]);
}

#[test]
fn binary_cross_entropies() {
    let mut r = Rng::new(4);
    let p = Tensor::rand_uniform(&[3, 4], 0.1, 0.9, &mut r);
    let t = Tensor::rand_uniform(&[3, 4], 0.0, 1.0, &mut r);
    check("bce", loss(PointwiseLoss::BinaryCrossEntropy), &[p, t.clone()]);
    check("bce_with_logits", loss(PointwiseLoss::BinaryCrossEntropyWithLogits), &[input(&[3, 4], 5), t]);
}

#[test]
fn loss_values_by_hand() {
    let x = Var::constant(Tensor::from_vec(vec![0.0, 1.0, 0.5, 100.0, -100.0], &[5]).unwrap());
    let y = Var::constant(Tensor::from_vec(vec![1.0, 0.0, 1.0, 1.0, 0.0], &[5]).unwrap());
    // BCE: ln 0 clamped to -100 -> 100 (twice); -ln 0.5 = 0.693147
    let l = x.clamp(0.0, 1.0).pointwise_loss(&y, PointwiseLoss::BinaryCrossEntropy).unwrap().value().to_vec();
    assert_eq!(&l[..2], &[100.0, 100.0]);
    assert!((l[2] - std::f32::consts::LN_2).abs() < 1e-7);
    // with logits: x = 100, y = 1 -> 0 + ln(1 + e^-100) ~ 3.7e-44 (no overflow);
    // x = -100, y = 0 -> same; x = 0 -> ln 2
    let l = x.pointwise_loss(&y, PointwiseLoss::BinaryCrossEntropyWithLogits).unwrap().value().to_vec();
    assert!(l[3] < 1e-30 && l[4] < 1e-30, "{l:?}");
    assert!((l[0] - std::f32::consts::LN_2).abs() < 1e-7);
    // smooth L1 (beta 0.5) at d = -1: |d| - beta/2 = 0.75; at d = 0.5 (not < beta): 0.25
    let l = x.pointwise_loss(&y, PointwiseLoss::SmoothL1 { beta: 0.5 }).unwrap().value().to_vec();
    assert_eq!(&l[..3], &[0.75, 0.75, 0.25]);
    // inputs outside [0, 1] are an error for BCE, shapes must match
    assert!(x.pointwise_loss(&y, PointwiseLoss::BinaryCrossEntropy).is_err());
    assert!(x.pointwise_loss(&Var::constant(Tensor::zeros(&[4])), PointwiseLoss::SquaredError).is_err());
    assert!(x.pointwise_loss(&y, PointwiseLoss::Huber { delta: 0.0 }).is_err());
}

#[test]
fn layer_norm() {
    let x = input(&[3, 2, 5], 6);
    check(
        "layer_norm",
        |v| v[0].layer_norm(&[5], Some(&v[1]), Some(&v[2]), 1e-5),
        &[x.clone(), input(&[5], 7), input(&[5], 8)],
    );
    check(
        "layer_norm_2d_shape",
        |v| v[0].layer_norm(&[2, 5], Some(&v[1]), None, 1e-5),
        &[x.clone(), input(&[2, 5], 9)],
    );
    check("layer_norm_plain", |v| v[0].layer_norm(&[5], None, None, 1e-5), std::slice::from_ref(&x));
    assert!(Var::constant(x.clone()).layer_norm(&[4], None, None, 1e-5).is_err());
    assert!(Var::constant(x).layer_norm(&[5], Some(&Var::constant(Tensor::ones(&[4]))), None, 1e-5).is_err());
}

#[test]
fn batch_norm() {
    let x = input(&[4, 3, 2, 2], 10);
    let (w, b) = (input(&[3], 11), input(&[3], 12));
    check(
        "batch_norm_train",
        |v| Ok(v[0].batch_norm_train(Some(&v[1]), Some(&v[2]), 1e-5)?.0),
        &[x.clone(), w.clone(), b.clone()],
    );
    check(
        "batch_norm_train_1d",
        |v| Ok(v[0].batch_norm_train(Some(&v[1]), None, 1e-5)?.0),
        &[input(&[5, 3], 13), w.clone()],
    );
    let rm = input(&[3], 14);
    let rv = input(&[3], 15).abs().add_scalar(0.5);
    check("batch_norm_eval", |v| v[0].batch_norm_eval(&rm, &rv, Some(&v[1]), Some(&v[2]), 1e-5), &[x, w, b]);
}

#[test]
fn batch_stats_by_hand() {
    // one channel holding 1, 2, 3, 4 (N = 2, spatial 2): mean 2.5,
    // biased var 1.25, unbiased 5/3
    let x = Var::constant(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 1, 2]).unwrap());
    let (y, st) = x.batch_norm_train(None, None, 0.0).unwrap();
    assert_eq!(st.mean, vec![2.5]);
    assert_eq!(st.var, vec![1.25]);
    assert!((st.unbiased_var()[0] - 5.0 / 3.0).abs() < 1e-12);
    // (1 - 2.5) / sqrt(1.25) = -1.3416408
    assert!((y.value().to_vec()[0] + 1.341_640_8).abs() < 1e-6);
    assert!(Var::constant(Tensor::ones(&[1, 3])).batch_norm_train(None, None, 1e-5).is_err());
}

#[test]
fn many_narrows_of_one_input_accumulate() {
    // every time step of a [2, 5, 3] input narrowed out and used twice:
    // the slice gradients are added in place into one buffer
    let x = input(&[2, 5, 3], 20);
    check(
        "narrow_steps",
        |v| {
            let mut parts = Vec::new();
            for t in 0..5 {
                let s = v[0].narrow(1, t, 1)?;
                parts.push(s.mul(&s)?.add(&v[0].narrow(1, 4 - t, 1)?)?);
            }
            Var::concat(&parts, 1)
        },
        &[x],
    );
    // d/dx of sum(narrow(x, 0, 1, 2)) + sum(x): 2 on the narrowed columns, 1 elsewhere
    let x = Var::leaf(Tensor::zeros(&[2, 3]), true);
    let l = x.narrow(1, 1, 2).unwrap().sum().add(&x.sum()).unwrap();
    let g = l.backward().unwrap();
    assert_eq!(g.wrt(&x).unwrap().to_vec(), vec![1.0, 2.0, 2.0, 1.0, 2.0, 2.0]);
}
