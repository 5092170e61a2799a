//! Recurrent stacks: layer composition, layouts, initial states, and long
//! sequences through the iterative backward sweep.

use nw_autograd::{Var, gradcheck};
use nw_nn::{Gru, Lstm, Module, Rnn, RnnConfig, RnnNonlinearity, RnnOutput, RnnState};
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

/// The error of a module call as an autograd error, for `gradcheck`'s closure.
fn ag(e: nw_nn::NnError) -> nw_autograd::AutogradError {
    match e {
        nw_nn::NnError::Autograd(a) => a,
        other => nw_autograd::AutogradError::InvalidArgument { op: "rnn", reason: other.to_string() },
    }
}

/// Every output of a stack flattened into one vector.
fn flat(o: RnnOutput) -> nw_autograd::Result<Var> {
    let mut parts = vec![o.output.flatten_from(0)?, o.h_n.flatten_from(0)?];
    if let Some(c) = o.c_n {
        parts.push(c.flatten_from(0)?);
    }
    Var::concat(&parts, 0)
}

#[test]
fn bidirectional_names_shapes_and_state_order() {
    let cfg = RnnConfig::new(3, 4).num_layers(2).bidirectional(true).batch_first(true);
    let lstm = Lstm::new(cfg, &mut Rng::new(10)).unwrap();
    let names: Vec<String> = lstm.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names[..8],
        [
            "weight_ih_l0",
            "weight_hh_l0",
            "bias_ih_l0",
            "bias_hh_l0",
            "weight_ih_l0_reverse",
            "weight_hh_l0_reverse",
            "bias_ih_l0_reverse",
            "bias_hh_l0_reverse"
        ]
    );
    assert_eq!(names.len(), 16);
    assert_eq!(names[8], "weight_ih_l1");
    // layer 1 reads [forward, backward] of layer 0: 2 * hidden features
    assert_eq!(lstm.layers()[2].weight_ih.shape(), vec![16, 8]);
    let x = Var::constant(Tensor::randn(&[2, 5, 3], 0.0, 1.0, &mut Rng::new(11)));
    let o = lstm.forward_with_state(&x, None).unwrap();
    assert_eq!(o.output.shape(), &[2, 5, 8]);
    assert_eq!(o.h_n.shape(), &[4, 2, 4]);
    // h_n row 2 (layer 1 forward) is the output's last step, forward half;
    // row 3 (layer 1 backward) is step 0, backward half
    let out = o.output.value();
    let hn = o.h_n.value();
    for b in 0..2 {
        for j in 0..4 {
            assert_eq!(hn.get(&[2, b, j]).unwrap(), out.get(&[b, 4, j]).unwrap());
            assert_eq!(hn.get(&[3, b, j]).unwrap(), out.get(&[b, 0, 4 + j]).unwrap());
        }
    }
    // a state of the one-direction shape is refused
    let h = Var::constant(Tensor::zeros(&[2, 2, 4]));
    assert!(lstm.forward_with_state(&x, Some(&RnnState { h: h.clone(), c: Some(h) })).is_err());
}

#[test]
fn reverse_direction_is_forward_over_the_reversed_sequence() {
    let bi = Gru::new(RnnConfig::new(3, 4).bidirectional(true), &mut Rng::new(12)).unwrap();
    let uni = Gru::new(RnnConfig::new(3, 4), &mut Rng::new(13)).unwrap();
    // the one-direction stack gets the reverse direction's weights
    let bp = bi.named_parameters();
    for (i, (_, p)) in uni.named_parameters().into_iter().enumerate() {
        p.set(bp[4 + i].1.value()).unwrap();
    }
    let (t, b) = (6, 2);
    let x = Tensor::randn(&[t, b, 3], 0.0, 1.0, &mut Rng::new(14));
    let rev: Vec<Tensor> = (0..t).rev().map(|s| x.narrow(0, s, 1).unwrap()).collect();
    let xr = Tensor::concat(&rev.iter().collect::<Vec<_>>(), 0).unwrap();
    let yb = bi.forward_with_state(&Var::constant(x), None).unwrap();
    let yu = uni.forward_with_state(&Var::constant(xr), None).unwrap();
    for s in 0..t {
        for i in 0..b {
            for j in 0..4 {
                let got = yb.output.value().get(&[s, i, 4 + j]).unwrap();
                let want = yu.output.value().get(&[t - 1 - s, i, j]).unwrap();
                assert_eq!(got.to_bits(), want.to_bits(), "step {s} batch {i} unit {j}");
            }
        }
    }
    assert_eq!(yb.h_n.value().narrow(0, 1, 1).unwrap().to_vec(), yu.h_n.value().to_vec());
}

#[test]
fn gradcheck_bidirectional_two_layer_lstm_with_state() {
    let cfg = RnnConfig::new(2, 3).num_layers(2).bidirectional(true);
    let lstm = Lstm::new(cfg, &mut Rng::new(15)).unwrap();
    let x = Tensor::randn(&[4, 2, 2], 0.0, 1.0, &mut Rng::new(16));
    let h0 = Tensor::randn(&[4, 2, 3], 0.0, 0.5, &mut Rng::new(17));
    let c0 = Tensor::randn(&[4, 2, 3], 0.0, 0.5, &mut Rng::new(18));
    let f = |v: &[Var]| {
        let st = RnnState { h: v[1].clone(), c: Some(v[2].clone()) };
        flat(lstm.forward_with_state(&v[0], Some(&st)).map_err(ag)?)
    };
    let r = gradcheck(f, &[x, h0, c0], 1e-2, 2e-3, 1e-2).unwrap();
    assert!(r.ok, "{r:?}");
}

#[test]
fn gradcheck_bidirectional_gru_and_rnn_batch_first() {
    let cfg = RnnConfig::new(2, 3).num_layers(2).bidirectional(true).batch_first(true);
    let gru = Gru::new(cfg, &mut Rng::new(19)).unwrap();
    let rnn = Rnn::new(cfg, RnnNonlinearity::Tanh, &mut Rng::new(20)).unwrap();
    let x = Tensor::randn(&[2, 4, 2], 0.0, 1.0, &mut Rng::new(21));
    let h0 = Tensor::randn(&[4, 2, 3], 0.0, 0.5, &mut Rng::new(22));
    let run_gru = |v: &[Var]| {
        let st = RnnState { h: v[1].clone(), c: None };
        flat(gru.forward_with_state(&v[0], Some(&st)).map_err(ag)?)
    };
    let r = gradcheck(run_gru, &[x.clone(), h0.clone()], 1e-2, 2e-3, 1e-2).unwrap();
    assert!(r.ok, "gru {r:?}");
    let run_rnn = |v: &[Var]| {
        let st = RnnState { h: v[1].clone(), c: None };
        flat(rnn.forward_with_state(&v[0], Some(&st)).map_err(ag)?)
    };
    let r = gradcheck(run_rnn, &[x, h0], 1e-2, 2e-3, 1e-2).unwrap();
    assert!(r.ok, "rnn {r:?}");
}

#[test]
fn gradcheck_bidirectional_weights() {
    // gradients of the reverse direction's and the upper layer's weights,
    // through a parameter set from the checked input
    let cfg = RnnConfig::new(2, 3).num_layers(2).bidirectional(true);
    let lstm = Lstm::new(cfg, &mut Rng::new(23)).unwrap();
    let x = Var::constant(Tensor::randn(&[3, 2, 2], 0.0, 1.0, &mut Rng::new(24)));
    let params = lstm.named_parameters();
    for name in ["weight_hh_l0_reverse", "bias_ih_l0_reverse", "weight_ih_l1", "weight_ih_l1_reverse"] {
        let p = params.iter().find(|(n, _)| n == name).map(|(_, p)| p.clone()).unwrap();
        let w0 = p.value();
        // loss(w) = <f(x; w), R>; analytic gradient from the stack's own backward
        let r = Tensor::rand_uniform(&[3 * 2 * 6 + 2 * 4 * 2 * 3], -1.0, 1.0, &mut Rng::new(25));
        let eval = |w: &Tensor| -> f64 {
            p.set(w.clone()).unwrap();
            let o = flat(lstm.forward_with_state(&x, None).unwrap()).unwrap();
            o.value().mul(&r).unwrap().sum_all_f64()
        };
        p.set(w0.clone()).unwrap();
        let o = flat(lstm.forward_with_state(&x, None).unwrap()).unwrap();
        let g = o.mul(&Var::constant(r.clone())).unwrap().sum().backward().unwrap();
        let analytic = g.get(&p).unwrap().to_vec();
        let base = w0.contiguous();
        let eps = 1e-2f32;
        for j in 0..base.len() {
            let mut plus = base.clone();
            plus.as_slice_mut()[j] += eps;
            let mut minus = base.clone();
            minus.as_slice_mut()[j] -= eps;
            let numeric = (eval(&plus) - eval(&minus)) / (2.0 * eps as f64);
            let a = analytic[j] as f64;
            assert!((a - numeric).abs() <= 2e-3 + 1e-2 * numeric.abs(), "{name}[{j}]: {a} vs {numeric}");
        }
        p.set(w0).unwrap();
    }
}

/// Outputs and every gradient of a bidirectional two-layer LSTM and GRU,
/// large enough that the per-step GEMMs run on several threads.
fn recurrent_bits() -> Vec<Vec<u32>> {
    let mut rng = Rng::new(30);
    let cfg = RnnConfig::new(8, 64).num_layers(2).bidirectional(true).batch_first(true);
    let lstm = Lstm::new(cfg, &mut rng).unwrap();
    let gru = Gru::new(cfg, &mut rng).unwrap();
    let x = Var::leaf(Tensor::randn(&[64, 5, 8], 0.0, 1.0, &mut rng), true);
    let a = lstm.forward_with_state(&x, None).unwrap();
    let b = gru.forward_with_state(&x, None).unwrap();
    let loss =
        a.output.square().mean().add(&b.output.tanh().sum()).unwrap().add(&a.c_n.unwrap().sum()).unwrap();
    let g = loss.backward().unwrap();
    let mut out = vec![a.output.value().to_vec(), b.h_n.value().to_vec(), g.wrt(&x).unwrap().to_vec()];
    for (_, p) in lstm.named_parameters().into_iter().chain(gru.named_parameters()) {
        out.push(g.get(&p).unwrap().to_vec());
    }
    out.into_iter().map(|v| v.into_iter().map(f32::to_bits).collect()).collect()
}

#[test]
fn recurrent_bits_do_not_depend_on_the_thread_count() {
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    let one = pool(1).install(recurrent_bits);
    for n in [2, 3] {
        assert!(one == pool(n).install(recurrent_bits), "1 and {n} threads differ");
    }
}

/// One LSTM layer written out step by step with autograd primitives (the
/// formulas of torch.nn.LSTM), for comparison with the fused op.
fn lstm_by_hand(lstm: &Lstm, x: &Var) -> Var {
    let p = &lstm.layers()[0];
    let (t, b, hs) = (x.shape()[0], x.shape()[1], lstm.config().hidden_size);
    let (wi, wh) = (Var::param(&p.weight_ih), Var::param(&p.weight_hh));
    let (bi, bh) = (Var::param(p.bias_ih.as_ref().unwrap()), Var::param(p.bias_hh.as_ref().unwrap()));
    let mut h = Var::constant(Tensor::zeros(&[b, hs]));
    let mut c = h.clone();
    let mut outs = Vec::new();
    for s in 0..t {
        let xs = x.narrow(0, s, 1).unwrap().reshape(&[b, x.shape()[2]]).unwrap();
        let a = xs.linear(&wi, Some(&bi)).unwrap().add(&h.linear(&wh, Some(&bh)).unwrap()).unwrap();
        let gate = |k: usize| a.narrow(1, k * hs, hs).unwrap();
        let (i, f, g, o) = (gate(0).sigmoid(), gate(1).sigmoid(), gate(2).tanh(), gate(3).sigmoid());
        c = f.mul(&c).unwrap().add(&i.mul(&g).unwrap()).unwrap();
        h = o.mul(&c.tanh()).unwrap();
        outs.push(h.reshape(&[1, b, hs]).unwrap());
    }
    Var::concat(&outs, 0).unwrap()
}

#[test]
fn fused_lstm_matches_the_step_by_step_graph() {
    let lstm = Lstm::new(RnnConfig::new(5, 7), &mut Rng::new(31)).unwrap();
    let x = Var::leaf(Tensor::randn(&[6, 3, 5], 0.0, 1.0, &mut Rng::new(32)), true);
    let r = Tensor::randn(&[6, 3, 7], 0.0, 1.0, &mut Rng::new(33));
    let fused = lstm.forward(&x).unwrap();
    let manual = lstm_by_hand(&lstm, &x);
    let close = |a: &[f32], b: &[f32], what: &str| {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-6 + 1e-5 * y.abs(), "{what}[{i}]: {x} vs {y}");
        }
    };
    close(&fused.value().to_vec(), &manual.value().to_vec(), "output");
    let gf = fused.mul(&Var::constant(r.clone())).unwrap().sum().backward().unwrap();
    let gm = manual.mul(&Var::constant(r)).unwrap().sum().backward().unwrap();
    close(&gf.wrt(&x).unwrap().to_vec(), &gm.wrt(&x).unwrap().to_vec(), "dx");
    for (n, p) in lstm.named_parameters() {
        close(&gf.get(&p).unwrap().to_vec(), &gm.get(&p).unwrap().to_vec(), &n);
    }
}

#[test]
fn gradcheck_without_biases_and_relu() {
    // no b_ih / b_hh (the fused op's bias-free path), and the relu cell
    let cfg = RnnConfig::new(2, 3).bias(false).bidirectional(true);
    let lstm = Lstm::new(cfg, &mut Rng::new(40)).unwrap();
    let gru = Gru::new(cfg, &mut Rng::new(41)).unwrap();
    let relu =
        Rnn::new(RnnConfig::new(2, 3).num_layers(2), RnnNonlinearity::Relu, &mut Rng::new(42)).unwrap();
    let x = Tensor::randn(&[4, 2, 2], 0.0, 1.0, &mut Rng::new(43));
    let r = gradcheck(
        |v: &[Var]| flat(lstm.forward_with_state(&v[0], None).map_err(ag)?),
        std::slice::from_ref(&x),
        1e-2,
        2e-3,
        1e-2,
    )
    .unwrap();
    assert!(r.ok, "lstm {r:?}");
    let r = gradcheck(
        |v: &[Var]| flat(gru.forward_with_state(&v[0], None).map_err(ag)?),
        std::slice::from_ref(&x),
        1e-2,
        2e-3,
        1e-2,
    )
    .unwrap();
    assert!(r.ok, "gru {r:?}");
    // relu has kinks at 0: a small step keeps the differences on one side
    let r = gradcheck(
        |v: &[Var]| flat(relu.forward_with_state(&v[0], None).map_err(ag)?),
        &[x],
        1e-3,
        2e-3,
        1e-2,
    )
    .unwrap();
    assert!(r.ok, "relu {r:?}");
}
