//! Penalties: values and gradients worked by hand, and the autograd loss
//! term agreeing with the direct gradient term.

use nw_autograd::{Grads, Param, Var};
use nw_reg::{Penalty, PenaltySet, RegError};
use nw_tensor::{Rng, Tensor};

fn param(v: &[f32], shape: &[usize]) -> Param {
    Param::new(Tensor::from_vec(v.to_vec(), shape).unwrap())
}

#[test]
fn values_and_gradients_by_hand() {
    let w = param(&[1.0, -2.0, 3.0, 0.0], &[2, 2]);
    // L2(0.1): (0.1/2) * (1 + 4 + 9) = 0.7; gradient 0.1 w
    let l2 = Penalty::l2(0.1).unwrap();
    assert!((l2.value(std::slice::from_ref(&w)) - 0.7).abs() < 1e-7);
    assert_eq!(l2.grad(&w.value()).to_vec(), vec![0.1, -0.2, 0.1 * 3.0, 0.0]);
    // L1(0.5): 0.5 * 6 = 3; gradient 0.5 sign(w), sign(0) = 0
    let l1 = Penalty::l1(0.5).unwrap();
    assert_eq!(l1.value(std::slice::from_ref(&w)), 3.0);
    assert_eq!(l1.grad(&w.value()).to_vec(), vec![0.5, -0.5, 0.5, 0.0]);
    // elastic_net(alpha 2, l1_ratio 0.25): l1 = 0.5, l2 = 1.5
    let en = Penalty::elastic_net(2.0, 0.25).unwrap();
    assert_eq!((en.l1_strength(), en.l2_strength()), (0.5, 1.5));
    // 0.5 * 6 + 0.75 * 14 = 13.5
    assert!((en.value(std::slice::from_ref(&w)) - 13.5).abs() < 1e-6);
    let loss = en.loss(std::slice::from_ref(&w)).unwrap();
    assert_eq!(loss.value().item().unwrap(), 13.5);
    assert!(Penalty::none().is_zero());
    assert_eq!(Penalty::none().loss(&[w]).unwrap().value().item().unwrap(), 0.0);
}

#[test]
fn loss_term_and_grad_term_agree() {
    let mut rng = Rng::new(11);
    let w = Param::new(Tensor::randn(&[4, 5], 0.0, 1.0, &mut rng));
    w.update(|t| t.as_slice_mut()[3] = 0.0); // sign(0) = 0 on both paths
    let b = Param::new(Tensor::randn(&[4], 0.0, 1.0, &mut rng));
    let params = [w.clone(), b.clone()];
    for pen in
        [Penalty::l1(0.03).unwrap(), Penalty::l2(0.2).unwrap(), Penalty::elastic_net(0.1, 0.4).unwrap()]
    {
        // penalty alone: d/dw [l1 sum|w| + (l2/2) sum w^2] computed both ways,
        // the same f32 operations in the same order, so bit for bit equal
        let via_autograd = pen.loss(&params).unwrap().backward().unwrap();
        let mut direct = Grads::new();
        pen.apply_to_grads(&params, &mut direct).unwrap();
        for p in &params {
            assert_eq!(via_autograd.get(p).unwrap(), direct.get(p).unwrap(), "{pen:?}");
        }

        // with a data loss: autograd sums three contributions in its own
        // order, apply_to_grads adds (l1 + l2) to the data gradient; equal up
        // to f32 rounding of a three-term sum
        let x = Var::constant(Tensor::randn(&[3, 5], 0.0, 1.0, &mut rng));
        let data = || x.linear(&Var::param(&w), Some(&Var::param(&b))).unwrap().tanh().square().mean();
        let total = data().add(&pen.loss(&params).unwrap()).unwrap().backward().unwrap();
        let mut g = data().backward().unwrap();
        pen.apply_to_grads(&params, &mut g).unwrap();
        for p in &params {
            let (a, d) = (total.get(p).unwrap().to_vec(), g.get(p).unwrap().to_vec());
            for (x, y) in a.iter().zip(&d) {
                assert!((x - y).abs() <= 1e-6 * (1.0 + x.abs()), "{pen:?}: {x} vs {y}");
            }
        }
    }
}

#[test]
fn bad_strengths_are_errors() {
    assert!(matches!(Penalty::l1(-0.1), Err(RegError::BadArgument { .. })));
    assert!(Penalty::l2(f32::NAN).is_err());
    assert!(Penalty::l2(f32::INFINITY).is_err());
    assert!(Penalty::elastic_net(0.1, 1.5).is_err());
    assert!(Penalty::elastic_net(-1.0, 0.5).is_err());
    assert!(Penalty::new(0.0, -1.0).is_err());
}

#[test]
fn grad_shape_mismatch_is_an_error_and_changes_nothing() {
    let w = param(&[1.0, 2.0], &[2]);
    let v = param(&[1.0, 2.0, 3.0], &[3]);
    let mut g = Grads::new();
    g.insert(&w, Tensor::zeros(&[2]));
    g.insert(&v, Tensor::zeros(&[2])); // wrong shape
    let err = Penalty::l2(1.0).unwrap().apply_to_grads(&[w.clone(), v], &mut g).unwrap_err();
    assert!(matches!(err, RegError::ShapeMismatch { .. }), "{err}");
    assert_eq!(g.get(&w).unwrap().to_vec(), vec![0.0, 0.0]);
}

#[test]
fn no_decay_on_biases_and_norms() {
    let w = param(&[1.0, -1.0, 2.0, 0.5], &[2, 2]);
    let bias = param(&[3.0, 4.0], &[2]);
    let norm_scale = param(&[1.0, 1.0], &[2]);
    let params = [w.clone(), bias.clone(), norm_scale.clone()];
    let decay = Penalty::l2(0.5).unwrap();
    let set = PenaltySet::weights_only(&params, decay).unwrap();
    let mut g = Grads::new();
    for p in &params {
        g.insert(p, Tensor::zeros(&p.shape()));
    }
    set.apply_to_grads(&mut g).unwrap();
    assert_eq!(g.get(&w).unwrap().to_vec(), vec![0.5, -0.5, 1.0, 0.25]);
    assert_eq!(g.get(&bias).unwrap().to_vec(), vec![0.0, 0.0]);
    assert_eq!(g.get(&norm_scale).unwrap().to_vec(), vec![0.0, 0.0]);
    // (0.5 / 2) * (1 + 1 + 4 + 0.25) = 1.5625, biases excluded
    assert_eq!(set.loss().unwrap().value().item().unwrap(), 1.5625);

    // the same by name
    let named = [("fc.weight", w.clone()), ("fc.bias", bias.clone()), ("ln.weight", norm_scale.clone())];
    let by_name = PenaltySet::by_name(&named, |name, _| {
        if name.starts_with("ln.") || name.ends_with(".bias") { Penalty::none() } else { decay }
    })
    .unwrap();
    assert_eq!(by_name.penalty_of(&w), Some(decay));
    assert_eq!(by_name.penalty_of(&bias), Some(Penalty::none()));
    assert_eq!(by_name.groups().len(), 2);
    assert_eq!(by_name.value(), set.value());

    // a parameter in two groups is refused
    let e = PenaltySet::new().group(std::slice::from_ref(&w), decay).unwrap().group(&[w], Penalty::none());
    assert!(matches!(e, Err(RegError::ParamMismatch { .. })));
}
