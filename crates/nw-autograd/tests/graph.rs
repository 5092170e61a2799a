//! Graph mechanics: accumulation, no_grad, detach, consumption, depth, memory.

use nw_autograd::{AutogradError, NoGradGuard, Param, Var, is_grad_enabled, no_grad};
use nw_tensor::Tensor;

fn t(v: &[f32]) -> Tensor {
    Tensor::from_vec(v.to_vec(), &[v.len()]).unwrap()
}

#[test]
fn reused_value_accumulates() {
    // y = x * x + x  => dy/dx = 2x + 1 = [3, 5] at x = [1, 2]
    let x = Var::leaf(t(&[1.0, 2.0]), true);
    let y = x.mul(&x).unwrap().add(&x).unwrap().sum();
    let g = y.backward().unwrap();
    assert_eq!(g.wrt(&x).unwrap().to_vec(), vec![3.0, 5.0]);
}

#[test]
fn param_used_twice_gets_one_summed_gradient() {
    let p = Param::new(t(&[3.0]));
    // loss = p * p computed from two separate leaves of the same parameter: d = 2p = 6
    let loss = Var::param(&p).mul(&Var::param(&p)).unwrap().sum();
    let g = loss.backward().unwrap();
    assert_eq!(g.get(&p).unwrap().to_vec(), vec![6.0]);
    assert_eq!(g.len(), 1);
}

#[test]
fn no_grad_and_detach_stop_gradients() {
    let x = Var::leaf(t(&[1.0, 2.0]), true);
    let y = no_grad(|| x.exp());
    assert!(!y.requires_grad());
    assert!(is_grad_enabled());
    {
        let _g = NoGradGuard::new();
        let _inner = NoGradGuard::new();
        assert!(!is_grad_enabled());
    }
    assert!(is_grad_enabled());
    // d/dx (x * detach(x)) = detach(x)
    let z = x.mul(&x.detach()).unwrap().sum();
    assert_eq!(z.backward().unwrap().wrt(&x).unwrap().to_vec(), vec![1.0, 2.0]);
    // params read under no_grad are constants
    let p = Param::new(t(&[1.0]));
    assert!(!no_grad(|| Var::param(&p)).requires_grad());
}

#[test]
fn backward_needs_scalar_and_runs_once() {
    let x = Var::leaf(t(&[1.0, 2.0]), true);
    let y = x.exp();
    assert!(matches!(y.backward(), Err(AutogradError::NonScalarBackward { .. })));
    let g = y.backward_with(t(&[1.0, 0.0])).unwrap();
    assert_eq!(g.wrt(&x).unwrap().to_vec(), vec![1.0f32.exp(), 0.0]);
    let s = x.exp().sum();
    s.backward().unwrap();
    assert!(matches!(s.backward(), Err(AutogradError::GraphConsumed)));
}

#[test]
fn deep_graph_has_no_recursion_limit() {
    // 200k chained ops would overflow a recursive sweep's stack.
    let x = Var::leaf(t(&[1.0]), true);
    let mut y = x.clone();
    for _ in 0..200_000 {
        y = y.add_scalar(0.0);
    }
    let g = y.sum().backward().unwrap();
    assert_eq!(g.wrt(&x).unwrap().to_vec(), vec![1.0]);
    drop(y);
    // Dropping a long chain that backward never consumed must not overflow either.
    let mut z = x.clone();
    for _ in 0..200_000 {
        z = z.mul_scalar(1.0);
    }
    drop(z);
}

#[test]
fn backward_frees_saved_tensors() {
    // The intermediate `h` is only referenced by the graph; after backward the
    // graph's ops are consumed, so the only handle left to h's storage is ours.
    let w = Param::new(Tensor::ones(&[64, 64]));
    let x = Var::constant(Tensor::ones(&[8, 64]));
    let h = x.linear(&Var::param(&w), None).unwrap().tanh();
    let h_value = h.value().clone();
    let loss = h.square().sum();
    drop(h);
    // before backward: the square op holds h (storage shared 3 ways: h_value, h node)
    loss.backward().unwrap();
    // after backward the node that held h is freed: h_value is the sole owner,
    // so an in-place write does not need to copy.
    let mut hv = h_value;
    let before = hv.as_slice().unwrap().as_ptr();
    hv.as_slice_mut()[0] = 0.0;
    assert_eq!(before, hv.as_slice().unwrap().as_ptr(), "storage was still shared after backward");
}

#[test]
fn shape_errors_name_op_and_shapes() {
    let a = Var::leaf(Tensor::zeros(&[2, 3]), true);
    let b = Var::leaf(Tensor::zeros(&[4]), true);
    let e = a.add(&b).unwrap_err().to_string();
    assert_eq!(e, "add: shape mismatch between [2, 3] and [4]");
    let e = a.linear(&Var::constant(Tensor::zeros(&[5, 4])), None).unwrap_err().to_string();
    assert!(e.contains("linear") && e.contains("[2, 3]") && e.contains("[5, 4]"), "{e}");
    assert!(a.cross_entropy_rows(&[0, 9], 0.0).is_err());
}

#[test]
fn param_update_does_not_disturb_recorded_graph() {
    let p = Param::new(t(&[2.0]));
    let x = Var::param(&p);
    let y = x.square().sum();
    // an optimizer step between forward and backward must not change the gradient
    p.update(|v| v.as_slice_mut()[0] = 100.0);
    let g = y.backward().unwrap();
    assert_eq!(g.get(&p).unwrap().to_vec(), vec![4.0]);
    assert_eq!(p.value().to_vec(), vec![100.0]);
    assert!(p.set(Tensor::zeros(&[2])).is_err());
}
