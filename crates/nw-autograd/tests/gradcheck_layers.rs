//! The second set of layer operations checked against central differences:
//! transposed convolution, ceil-mode pooling, upsampling, group norm,
//! binary cross-entropy with a positive weight, and embedding rows with a
//! padding index. Each is checked with respect to every differentiable input.

use nw_autograd::{Result, Var, gradcheck};
use nw_tensor::conv::ConvTranspose2dSpec;
use nw_tensor::upsample::{Upsample2dSpec, UpsampleMode};
use nw_tensor::{Accumulation, Rng, Tensor};

fn input(shape: &[usize], seed: u64) -> Tensor {
    let mut r = Rng::new(seed);
    Tensor::rand_uniform(shape, -1.0, 1.0, &mut r)
}

/// Distinct values 0.1 apart in random order (no max-pool tie can flip).
fn distinct(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let p = Rng::new(seed).permutation(n);
    Tensor::from_vec(p.into_iter().map(|i| i as f32 * 0.1 - n as f32 * 0.05).collect(), shape).unwrap()
}

fn check(name: &str, f: impl Fn(&[Var]) -> Result<Var>, inputs: &[Tensor]) {
    let r = gradcheck(f, inputs, 1e-2, 2e-3, 1e-2).unwrap();
    assert!(r.ok, "{name}: {r:?}");
    assert!(r.checked > 0);
}

#[test]
fn conv_transpose2d_all_operands() {
    // (input, weight, stride, padding, output_padding, dilation, groups), as the reference cases
    let cases = [
        ([2, 3, 4, 5], [3, 2, 3, 3], (2, 2), (1, 1), (1, 1), (1, 1), 1),
        ([2, 4, 3, 4], [4, 3, 2, 2], (2, 2), (0, 0), (0, 0), (1, 1), 2),
        ([1, 2, 4, 5], [2, 3, 3, 3], (1, 1), (2, 2), (0, 0), (2, 2), 1),
        ([1, 2, 3, 4], [2, 2, 3, 3], (3, 3), (1, 1), (2, 2), (1, 1), 2),
        // output_padding not below the stride (but below the dilation): extra zero rows
        ([1, 2, 3, 3], [2, 2, 2, 3], (1, 2), (0, 1), (1, 1), (2, 2), 1),
    ];
    for (i, (xs, ws, stride, padding, output_padding, dilation, groups)) in cases.into_iter().enumerate() {
        for accumulation in [Accumulation::F32, Accumulation::F64] {
            let spec =
                ConvTranspose2dSpec { stride, padding, output_padding, dilation, groups, accumulation };
            let seed = 10 * i as u64;
            check(
                &format!("conv_transpose2d_{i}"),
                |v| v[0].conv_transpose2d(&v[1], Some(&v[2]), &spec),
                &[input(&xs, seed), input(&ws, seed + 1), input(&[ws[1] * groups], seed + 2)],
            );
        }
    }
    // one operand at a time: the single-gradient paths
    let spec = ConvTranspose2dSpec { stride: (2, 1), padding: (1, 0), ..Default::default() };
    let (x, w) = (input(&[2, 2, 3, 3], 50), input(&[2, 3, 3, 2], 51));
    let (xc, wc) = (x.clone(), w.clone());
    check(
        "conv_transpose2d_weight_only",
        move |v| Var::constant(xc.clone()).conv_transpose2d(&v[0], None, &spec),
        &[w],
    );
    check(
        "conv_transpose2d_input_only",
        move |v| v[0].conv_transpose2d(&Var::constant(wc.clone()), None, &spec),
        &[x],
    );
}

#[test]
fn ceil_mode_pooling() {
    // 7 and 5 with k 2, s 2: the last window holds one row / column
    let x = distinct(&[2, 2, 7, 5], 11);
    check("max_pool2d_ceil", |v| v[0].max_pool2d((2, 2), (2, 2), (0, 0), true), std::slice::from_ref(&x));
    check(
        "avg_pool2d_ceil",
        |v| v[0].avg_pool2d((2, 2), (2, 2), (0, 0), true, true),
        std::slice::from_ref(&x),
    );
    // k 3, s 2, p 1: the last window runs past the right padding
    let y = distinct(&[1, 2, 6, 8], 12);
    check("max_pool2d_ceil_pad", |v| v[0].max_pool2d((3, 3), (2, 2), (1, 1), true), std::slice::from_ref(&y));
    for cip in [true, false] {
        check(
            &format!("avg_pool2d_ceil_pad_{cip}"),
            |v| v[0].avg_pool2d((3, 3), (2, 2), (1, 1), cip, true),
            std::slice::from_ref(&y),
        );
    }
    // k 2, s 2, p 1 over 5: a fourth window would start in the right padding and is dropped
    let z = distinct(&[1, 1, 5, 7], 13);
    let out = Var::constant(z.clone()).avg_pool2d((2, 2), (2, 2), (1, 1), false, true).unwrap();
    assert_eq!(out.shape(), &[1, 1, 3, 4]);
    check("avg_pool2d_ceil_rule", |v| v[0].avg_pool2d((2, 2), (2, 2), (1, 1), false, true), &[z]);
}

#[test]
fn upsampling() {
    let x = input(&[2, 2, 3, 4], 20);
    let modes = [
        UpsampleMode::Nearest,
        UpsampleMode::Bilinear { align_corners: false },
        UpsampleMode::Bilinear { align_corners: true },
    ];
    for mode in modes {
        let by_size = Upsample2dSpec::from_size((5, 7), mode);
        check(&format!("upsample_size_{mode:?}"), |v| v[0].upsample2d(&by_size), std::slice::from_ref(&x));
        let by_factor = Upsample2dSpec::from_scale_factor(x.shape(), (2.0, 1.5), mode).unwrap();
        check(
            &format!("upsample_factor_{mode:?}"),
            |v| v[0].upsample2d(&by_factor),
            std::slice::from_ref(&x),
        );
        let down = Upsample2dSpec::from_size((2, 3), mode);
        check(&format!("downsample_{mode:?}"), |v| v[0].upsample2d(&down), std::slice::from_ref(&x));
    }
}

#[test]
fn group_norm() {
    let x = input(&[2, 6, 3, 2], 30);
    for groups in [1, 2, 3, 6] {
        check(
            &format!("group_norm_{groups}"),
            |v| v[0].group_norm(groups, Some(&v[1]), Some(&v[2]), 1e-5),
            &[x.clone(), input(&[6], 31), input(&[6], 32)],
        );
    }
    check("group_norm_plain", |v| v[0].group_norm(3, None, None, 1e-3), &[input(&[3, 6, 5], 33)]);
    check(
        "group_norm_2d",
        |v| v[0].group_norm(2, Some(&v[1]), None, 1e-5),
        // [N, C] without positions: groups of 4 channels (2 would leave two
        // values per group, whose normalised outputs are nearly +-1 and too
        // curved for central differences)
        &[input(&[4, 8], 34), input(&[8], 35)],
    );
    let c = Var::constant(x);
    assert!(c.group_norm(4, None, None, 1e-5).is_err(), "4 groups do not divide 6 channels");
    assert!(c.group_norm(0, None, None, 1e-5).is_err());
    assert!(c.group_norm(2, Some(&Var::constant(Tensor::ones(&[3]))), None, 1e-5).is_err());
    assert!(Var::constant(Tensor::zeros(&[6])).group_norm(1, None, None, 1e-5).is_err());
}

#[test]
fn bce_with_logits_pos_weight() {
    let x = input(&[4, 3], 40).mul_scalar(3.0);
    let soft = Tensor::rand_uniform(&[4, 3], 0.0, 1.0, &mut Rng::new(41));
    let pw = Tensor::from_vec(vec![0.5, 2.0, 3.5], &[3]).unwrap();
    let p = pw.clone();
    check("bce_pos_weight", move |v| v[0].bce_with_logits_pos_weight(&v[1], &p), &[x.clone(), soft.clone()]);
    // pos_weight 1 is the plain loss: same values
    let ones = Tensor::ones(&[3]);
    let (xv, tv) = (Var::constant(x.clone()), Var::constant(soft.clone()));
    let a = xv.bce_with_logits_pos_weight(&tv, &ones).unwrap().value().to_vec();
    let b = xv.pointwise_loss(&tv, nw_autograd::PointwiseLoss::BinaryCrossEntropyWithLogits).unwrap();
    for (a, b) in a.iter().zip(b.value().to_vec()) {
        assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
    }
    // by hand: x = 0, y = 1, p = 2: -p ln sigmoid(0) = 2 ln 2
    let one = |v: f32| Var::constant(Tensor::from_vec(vec![v], &[1]).unwrap());
    let l =
        one(0.0).bce_with_logits_pos_weight(&one(1.0), &Tensor::from_vec(vec![2.0], &[1]).unwrap()).unwrap();
    assert!((l.value().to_vec()[0] - 2.0 * 2f32.ln()).abs() < 1e-6);
    assert!(
        xv.bce_with_logits_pos_weight(&tv, &Tensor::ones(&[4])).is_err(),
        "[4] does not broadcast to [4, 3]"
    );
    assert!(xv.bce_with_logits_pos_weight(&one(0.0), &pw).is_err());
}

#[test]
fn embedding_rows_padding_idx() {
    let w = input(&[5, 3], 60);
    let idx = [2, 0, 2, 4, 1, 2];
    check("embedding_rows", |v| v[0].embedding_rows(&idx, None), std::slice::from_ref(&w));
    // with a padding index the gradient of that row is zero and its value is read as stored
    let p = Var::leaf(w.clone(), true);
    let y = p.embedding_rows(&idx, Some(2)).unwrap();
    assert_eq!(&y.value().to_vec()[..3], &w.to_vec()[6..9]);
    let g = y.sum().backward().unwrap();
    let gw = g.wrt(&p).unwrap().to_vec();
    assert_eq!(gw, vec![1., 1., 1., 1., 1., 1., 0., 0., 0., 0., 0., 0., 1., 1., 1.]);
    assert!(p.embedding_rows(&idx, Some(5)).is_err());
    assert!(p.embedding_rows(&[5], None).is_err());
    assert!(Var::constant(Tensor::zeros(&[5])).embedding_rows(&[0], None).is_err());
}
