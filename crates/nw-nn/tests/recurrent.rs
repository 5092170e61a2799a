//! Recurrent stacks: layer composition, layouts, initial states, and long
//! sequences through the iterative backward sweep.

use nw_autograd::{Var, gradcheck};
use nw_nn::{Gru, Lstm, Module, RnnConfig, RnnState};
use nw_tensor::{Rng, Tensor};

#[test]
fn two_layer_stack_is_layer_one_on_layer_zero() {
    let mut rng = Rng::new(1);
    let deep = Lstm::new(RnnConfig::new(3, 4).num_layers(2), &mut rng).unwrap();
    // the same weights as two one-layer stacks
    let l0 = Lstm::new(RnnConfig::new(3, 4), &mut rng).unwrap();
    let l1 = Lstm::new(RnnConfig::new(4, 4), &mut rng).unwrap();
    let params = deep.named_parameters();
    for (i, (_, p)) in l0.named_parameters().into_iter().enumerate() {
        p.set(params[i].1.value()).unwrap();
    }
    for (i, (_, p)) in l1.named_parameters().into_iter().enumerate() {
        p.set(params[4 + i].1.value()).unwrap();
    }
    let x = Var::constant(Tensor::randn(&[6, 2, 3], 0.0, 1.0, &mut rng));
    let d = deep.forward_with_state(&x, None).unwrap();
    let a = l0.forward_with_state(&x, None).unwrap();
    let b = l1.forward_with_state(&a.output, None).unwrap();
    assert_eq!(d.output.value(), b.output.value());
    let hn = d.h_n.value().to_vec();
    assert_eq!(&hn[..8], a.h_n.value().to_vec().as_slice());
    assert_eq!(&hn[8..], b.h_n.value().to_vec().as_slice());
}

#[test]
fn batch_first_is_a_transpose_of_time_major() {
    let mut r1 = Rng::new(2);
    let mut r2 = Rng::new(2);
    let tm = Gru::new(RnnConfig::new(3, 5), &mut r1).unwrap();
    let bf = Gru::new(RnnConfig::new(3, 5).batch_first(true), &mut r2).unwrap();
    let x = Tensor::randn(&[4, 2, 3], 0.0, 1.0, &mut Rng::new(3));
    let y_tm = tm.forward(&Var::constant(x.clone())).unwrap();
    let y_bf = bf.forward(&Var::constant(x.transpose(0, 1).unwrap().contiguous())).unwrap();
    assert_eq!(y_tm.value().transpose(0, 1).unwrap().to_vec(), y_bf.value().to_vec());
}

#[test]
fn gradients_reach_the_initial_state() {
    let lstm = Lstm::new(RnnConfig::new(2, 3).num_layers(2).batch_first(true), &mut Rng::new(4)).unwrap();
    let x = Tensor::randn(&[2, 3, 2], 0.0, 1.0, &mut Rng::new(5));
    let h0 = Tensor::randn(&[2, 2, 3], 0.0, 0.5, &mut Rng::new(6));
    let c0 = Tensor::randn(&[2, 2, 3], 0.0, 0.5, &mut Rng::new(7));
    let f = |v: &[Var]| {
        let st = RnnState { h: v[1].clone(), c: Some(v[2].clone()) };
        let o = lstm.forward_with_state(&v[0], Some(&st)).map_err(|e| match e {
            nw_nn::NnError::Autograd(a) => a,
            other => nw_autograd::AutogradError::InvalidArgument { op: "lstm", reason: other.to_string() },
        })?;
        Var::concat(&[o.output.flatten_from(0)?, o.h_n.flatten_from(0)?, o.c_n.unwrap().flatten_from(0)?], 0)
    };
    let r = gradcheck(f, &[x, h0, c0], 1e-2, 2e-3, 1e-2).unwrap();
    assert!(r.ok, "{r:?}");
}

#[test]
fn long_sequence_backward() {
    // 3000 steps: the sweep is iterative (no recursion) and the per-step slices
    // of the input projection are differentiated in place
    let gru = Gru::new(RnnConfig::new(4, 8).batch_first(true), &mut Rng::new(8)).unwrap();
    let x = Var::leaf(Tensor::randn(&[2, 3000, 4], 0.0, 1.0, &mut Rng::new(9)), true);
    let loss = gru.forward(&x).unwrap().square().mean();
    let g = loss.backward().unwrap();
    assert_eq!(g.wrt(&x).unwrap().shape(), &[2, 3000, 4]);
    for (n, p) in gru.named_parameters() {
        assert!(g.get(&p).unwrap().to_vec().iter().all(|v| v.is_finite()), "{n}");
    }
}
