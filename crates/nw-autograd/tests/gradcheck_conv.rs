//! Convolution and pooling operations checked against central differences.

use nw_autograd::{Result, Var, gradcheck};
use nw_tensor::conv::{Conv1dSpec, Conv2dSpec};
use nw_tensor::{Rng, Tensor};

fn input(shape: &[usize], seed: u64) -> Tensor {
    let mut r = Rng::new(seed);
    Tensor::rand_uniform(shape, -1.0, 1.0, &mut r)
}

/// Distinct values 0.1 apart in random order, so that no max-pool window
/// holds two values within the difference step (no tie can flip).
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
fn conv2d_all_operands() {
    let x = input(&[2, 4, 5, 6], 1);
    let spec =
        Conv2dSpec { stride: (2, 1), padding: (1, 2), dilation: (1, 2), groups: 2, ..Default::default() };
    check(
        "conv2d",
        |v| v[0].conv2d(&v[1], Some(&v[2]), &spec),
        &[x.clone(), input(&[6, 2, 3, 2], 2), input(&[6], 3)],
    );
    check(
        "conv2d_nobias",
        |v| v[0].conv2d(&v[1], None, &Conv2dSpec::default()),
        &[input(&[1, 2, 4, 4], 4), input(&[3, 2, 2, 2], 5)],
    );
}

#[test]
fn conv2d_one_operand_paths() {
    // only the weight, or only the input, wants a gradient: the single-gradient kernels
    let x = input(&[2, 2, 5, 5], 6);
    let w = input(&[3, 2, 3, 3], 7);
    let spec = Conv2dSpec { padding: (1, 1), ..Default::default() };
    let (xc, wc) = (x.clone(), w.clone());
    check("conv2d_weight_only", move |v| Var::constant(xc.clone()).conv2d(&v[0], None, &spec), &[w]);
    check("conv2d_input_only", move |v| v[0].conv2d(&Var::constant(wc.clone()), None, &spec), &[x]);
}

#[test]
fn conv1d_all_operands() {
    let spec = Conv1dSpec { stride: 2, padding: 1, dilation: 1, groups: 1, ..Default::default() };
    check(
        "conv1d",
        |v| v[0].conv1d(&v[1], Some(&v[2]), &spec),
        &[input(&[2, 3, 9], 8), input(&[2, 3, 3], 9), input(&[2], 10)],
    );
    assert!(
        Var::constant(input(&[2, 3], 1)).conv1d(&Var::constant(input(&[2, 3, 3], 1)), None, &spec).is_err()
    );
}

#[test]
fn pooling() {
    let x = distinct(&[2, 2, 6, 5], 11);
    check("max_pool2d", |v| v[0].max_pool2d((2, 2), (2, 2), (0, 0), false), std::slice::from_ref(&x));
    check(
        "max_pool2d_overlap_pad",
        |v| v[0].max_pool2d((3, 3), (2, 2), (1, 1), false),
        std::slice::from_ref(&x),
    );
    check("avg_pool2d", |v| v[0].avg_pool2d((3, 2), (2, 1), (1, 1), true, false), std::slice::from_ref(&x));
    check(
        "avg_pool2d_exclude_pad",
        |v| v[0].avg_pool2d((3, 3), (2, 2), (1, 1), false, false),
        std::slice::from_ref(&x),
    );
    check("adaptive_avg_pool2d", |v| v[0].adaptive_avg_pool2d((4, 3)), std::slice::from_ref(&x));
    check("adaptive_avg_pool2d_1", |v| v[0].adaptive_avg_pool2d((1, 1)), &[x]);
}
