//! Every differentiable operation checked against central differences.

use nw_autograd::{Result, Var, gradcheck};
use nw_tensor::{Rng, Tensor};

/// Random values in [-2, 2] kept at least 0.05 away from 0, so that kinks
/// (relu, abs, leaky_relu) are never straddled by the differences.
fn input(shape: &[usize], seed: u64) -> Tensor {
    let mut r = Rng::new(seed);
    Tensor::rand_uniform(shape, -2.0, 2.0, &mut r)
        .map(|x| if x.abs() < 0.05 { x + 0.1_f32.copysign(x) } else { x })
}

fn positive(shape: &[usize], seed: u64) -> Tensor {
    input(shape, seed).abs().add_scalar(0.2)
}

fn check(name: &str, f: impl Fn(&[Var]) -> Result<Var>, inputs: &[Tensor]) {
    let r = gradcheck(f, inputs, 1e-2, 2e-3, 1e-2).unwrap();
    assert!(r.ok, "{name}: {r:?}");
    assert!(r.checked > 0);
}

#[test]
fn binary_ops_with_broadcast() {
    let a = input(&[3, 4], 1);
    let b = input(&[4], 2);
    check("add", |v| v[0].add(&v[1]), &[a.clone(), b.clone()]);
    check("sub", |v| v[0].sub(&v[1]), &[a.clone(), b.clone()]);
    check("mul", |v| v[0].mul(&v[1]), &[a.clone(), b.clone()]);
    check("div", |v| v[0].div(&v[1]), &[a.clone(), positive(&[3, 1], 3)]);
    check("maximum", |v| v[0].maximum(&v[1]), &[a, input(&[3, 4], 9)]);
}

#[test]
fn unary_math() {
    let x = input(&[2, 5], 4);
    let p = positive(&[2, 5], 5);
    check("neg", |v| Ok(v[0].neg()), std::slice::from_ref(&x));
    check("add_scalar", |v| Ok(v[0].add_scalar(3.0)), std::slice::from_ref(&x));
    check("mul_scalar", |v| Ok(v[0].mul_scalar(-1.5)), std::slice::from_ref(&x));
    check("square", |v| Ok(v[0].square()), std::slice::from_ref(&x));
    check("powf", |v| Ok(v[0].powf(1.7)), std::slice::from_ref(&p));
    check("exp", |v| Ok(v[0].exp()), std::slice::from_ref(&x));
    check("ln", |v| Ok(v[0].ln()), std::slice::from_ref(&p));
    check("sqrt", |v| Ok(v[0].sqrt()), std::slice::from_ref(&p));
    check("abs", |v| Ok(v[0].abs()), std::slice::from_ref(&x));
    check(
        "clamp",
        |v| Ok(v[0].clamp(-1.0, 1.0)),
        &[x.map(|x| if (x.abs() - 1.0).abs() < 0.05 { x * 0.9 } else { x })],
    );
}

#[test]
fn activations() {
    let x = input(&[3, 4], 6);
    check("tanh", |v| Ok(v[0].tanh()), std::slice::from_ref(&x));
    check("sigmoid", |v| Ok(v[0].sigmoid()), std::slice::from_ref(&x));
    check("relu", |v| Ok(v[0].relu()), std::slice::from_ref(&x));
    check("leaky_relu", |v| Ok(v[0].leaky_relu(0.1)), std::slice::from_ref(&x));
    check("elu", |v| Ok(v[0].elu(1.3)), std::slice::from_ref(&x));
    check("gelu", |v| Ok(v[0].gelu()), std::slice::from_ref(&x));
    check("gelu_tanh", |v| Ok(v[0].gelu_tanh()), std::slice::from_ref(&x));
    check("softplus", |v| Ok(v[0].softplus(1.0, 20.0)), std::slice::from_ref(&x));
    check("softplus_beta", |v| Ok(v[0].softplus(2.0, 3.0)), std::slice::from_ref(&x));
    check("silu", |v| Ok(v[0].silu()), std::slice::from_ref(&x));
}

#[test]
fn linear_algebra() {
    check("matmul", |v| v[0].matmul(&v[1]), &[input(&[3, 4], 7), input(&[4, 2], 8)]);
    check("matmul_batched", |v| v[0].matmul(&v[1]), &[input(&[2, 3, 4], 9), input(&[1, 4, 2], 10)]);
    check(
        "linear",
        |v| v[0].linear(&v[1], Some(&v[2])),
        &[input(&[5, 3], 11), input(&[4, 3], 12), input(&[4], 13)],
    );
    check("linear_nobias", |v| v[0].linear(&v[1], None), &[input(&[5, 3], 14), input(&[4, 3], 15)]);
}

#[test]
fn reductions_and_layout() {
    let x = input(&[2, 3, 4], 16);
    check("sum", |v| Ok(v[0].sum()), std::slice::from_ref(&x));
    check("mean", |v| Ok(v[0].mean()), std::slice::from_ref(&x));
    check("sum_axis", |v| v[0].sum_axis(1, false), std::slice::from_ref(&x));
    check("mean_axis_keep", |v| v[0].mean_axis(2, true), std::slice::from_ref(&x));
    check("reshape", |v| v[0].reshape(&[6, 4]), std::slice::from_ref(&x));
    check("permute", |v| v[0].permute(&[2, 0, 1]), std::slice::from_ref(&x));
    check("transpose", |v| v[0].transpose(0, 2), std::slice::from_ref(&x));
    check("narrow", |v| v[0].narrow(2, 1, 2), std::slice::from_ref(&x));
    check("flatten", |v| v[0].flatten_from(1), std::slice::from_ref(&x));
    check("concat", |v| Var::concat(&[v[0].clone(), v[1].clone()], 1), &[x.clone(), input(&[2, 2, 4], 17)]);
    check("index_select_repeat", |v| v[0].index_select(0, &[1, 0, 1]), &[input(&[2, 3], 18)]);
    check("gather", |v| v[0].gather(1, &[2, 0, 1, 1], &[2, 2]), &[input(&[2, 3], 19)]);
}

#[test]
fn softmax_family_and_cross_entropy() {
    let x = input(&[3, 5], 20);
    check("softmax", |v| v[0].softmax(1), std::slice::from_ref(&x));
    check("softmax_axis0", |v| v[0].softmax(0), std::slice::from_ref(&x));
    check("log_softmax", |v| v[0].log_softmax(1), std::slice::from_ref(&x));
    check(
        "cross_entropy",
        |v| Ok(v[0].cross_entropy_rows(&[4, 0, 2], 0.0)?.mean()),
        std::slice::from_ref(&x),
    );
    check("cross_entropy_smooth", |v| v[0].cross_entropy_rows(&[1, 1, 3], 0.2), std::slice::from_ref(&x));
}
