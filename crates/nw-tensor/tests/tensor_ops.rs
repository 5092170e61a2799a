//! Construction, layout and indexing of `Tensor`; expected values worked by hand.

use nw_tensor::{Rng, Tensor, TensorError};

fn t(v: &[f32], s: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), s).unwrap()
}

#[test]
fn constructors() {
    assert_eq!(Tensor::zeros(&[2, 3]).to_vec(), vec![0.0; 6]);
    assert_eq!(Tensor::ones(&[2]).to_vec(), vec![1.0; 2]);
    assert_eq!(Tensor::full(&[1, 2], 7.0).to_vec(), vec![7.0; 2]);
    assert_eq!(Tensor::scalar(3.0).shape(), &[] as &[usize]);
    assert_eq!(Tensor::scalar(3.0).item().unwrap(), 3.0);
    assert_eq!(Tensor::arange(0.0, 1.0, 0.25).unwrap().to_vec(), vec![0.0, 0.25, 0.5, 0.75]);
    assert!(Tensor::arange(0.0, 1.0, 0.0).is_err());
    assert_eq!(Tensor::eye(2).to_vec(), vec![1.0, 0.0, 0.0, 1.0]);
    let e = Tensor::from_vec(vec![1.0; 5], &[2, 3]).unwrap_err();
    assert!(matches!(e, TensorError::InvalidShape { op: "from_vec", .. }));
    assert!(Tensor::ones(&[2]).item().is_err());
}

#[test]
fn random_fills_are_seeded() {
    let a = Tensor::randn(&[100], 0.0, 1.0, &mut Rng::new(5));
    let b = Tensor::randn(&[100], 0.0, 1.0, &mut Rng::new(5));
    assert_eq!(a, b);
    let u = Tensor::rand_uniform(&[1000], -0.5, 0.5, &mut Rng::new(1));
    assert!(u.max_all() < 0.5 && u.min_all() >= -0.5);
    let tn = Tensor::trunc_normal(&[1000], 0.0, 1.0, -0.5, 0.5, &mut Rng::new(2)).unwrap();
    assert!(tn.max_all() <= 0.5 && tn.min_all() >= -0.5);
    assert!(Tensor::trunc_normal(&[1], 0.0, 1.0, 1.0, -1.0, &mut Rng::new(2)).is_err());
    let m = Tensor::bernoulli(&[10_000], 0.3, &mut Rng::new(3)).unwrap();
    assert!((m.mean_all() - 0.3).abs() < 0.02);
    assert!(Tensor::bernoulli(&[1], 1.5, &mut Rng::new(3)).is_err());
}

#[test]
fn reshape_permute_transpose_narrow() {
    let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    assert_eq!(a.reshape(&[3, 2]).unwrap().shape(), &[3, 2]);
    assert!(a.reshape(&[4]).is_err());
    let at = a.t().unwrap();
    assert!(!at.is_contiguous());
    assert!(at.shares_storage(&a));
    assert_eq!(at.to_vec(), vec![1., 4., 2., 5., 3., 6.]);
    assert_eq!(at.reshape(&[6]).unwrap().to_vec(), vec![1., 4., 2., 5., 3., 6.]);
    let p = Tensor::arange(0.0, 24.0, 1.0).unwrap().reshape(&[2, 3, 4]).unwrap();
    let q = p.permute(&[2, 0, 1]).unwrap();
    assert_eq!(q.shape(), &[4, 2, 3]);
    assert_eq!(q.get(&[3, 1, 2]).unwrap(), p.get(&[1, 2, 3]).unwrap());
    assert!(p.permute(&[0, 0, 1]).is_err());
    assert!(p.transpose(0, 3).is_err());
    let n = a.narrow(1, 1, 2).unwrap();
    assert_eq!(n.to_vec(), vec![2., 3., 5., 6.]);
    assert!(a.narrow(1, 2, 2).is_err());
    assert_eq!(a.unsqueeze(0).unwrap().shape(), &[1, 2, 3]);
    assert_eq!(a.unsqueeze(0).unwrap().squeeze(0).unwrap().shape(), &[2, 3]);
    assert!(a.squeeze(0).is_err());
    assert_eq!(p.flatten_from(1).unwrap().shape(), &[2, 12]);
    assert_eq!(t(&[1., 2.], &[2]).broadcast_to(&[2, 2]).unwrap().to_vec(), vec![1., 2., 1., 2.]);
    assert!(t(&[1., 2.], &[2]).broadcast_to(&[3]).is_err());
    assert!(a.get(&[2, 0]).is_err());
}

#[test]
fn concat_stack_split() {
    let a = t(&[1., 2.], &[1, 2]);
    let b = t(&[3., 4., 5., 6.], &[2, 2]);
    assert_eq!(Tensor::concat(&[&a, &b], 0).unwrap().to_vec(), vec![1., 2., 3., 4., 5., 6.]);
    assert!(Tensor::concat(&[&a, &b], 1).is_err());
    assert!(Tensor::concat(&[], 0).is_err());
    let s = Tensor::stack(&[&a, &a], 0).unwrap();
    assert_eq!(s.shape(), &[2, 1, 2]);
    assert!(Tensor::stack(&[&a, &b], 0).is_err());
    let parts = b.split(0, &[1, 1]).unwrap();
    assert_eq!(parts[1].to_vec(), vec![5., 6.]);
    assert!(b.split(0, &[1, 2]).is_err());
}

#[test]
fn index_select_and_add_are_adjoint() {
    let w = t(&[0., 1., 10., 11., 20., 21.], &[3, 2]);
    let rows = w.index_select(0, &[2, 0, 2]).unwrap();
    assert_eq!(rows.to_vec(), vec![20., 21., 0., 1., 20., 21.]);
    let cols = w.index_select(1, &[1]).unwrap();
    assert_eq!(cols.to_vec(), vec![1., 11., 21.]);
    assert!(w.index_select(0, &[3]).is_err());
    let mut acc = Tensor::zeros(&[3, 2]);
    acc.index_add_(0, &[2, 0, 2], &Tensor::ones(&[3, 2])).unwrap();
    assert_eq!(acc.to_vec(), vec![1., 1., 0., 0., 2., 2.]);
    assert!(acc.index_add_(0, &[0], &Tensor::ones(&[2, 2])).is_err());
}

#[test]
fn gather_and_scatter_add() {
    // cross-entropy's pick: x[i, t_i]
    let x = t(&[0.1, 0.2, 0.7, 0.5, 0.4, 0.1], &[2, 3]);
    let g = x.gather(1, &[2, 0], &[2, 1]).unwrap();
    assert_eq!(g.to_vec(), vec![0.7, 0.5]);
    assert!(x.gather(1, &[3, 0], &[2, 1]).is_err());
    assert!(x.gather(1, &[0, 0, 0], &[3, 1]).is_err());
    let mut z = Tensor::zeros(&[2, 3]);
    z.scatter_add_(1, &[2, 0], &t(&[1., 2.], &[2, 1])).unwrap();
    assert_eq!(z.to_vec(), vec![0., 0., 1., 2., 0., 0.]);
    // along axis 0
    let c = x.gather(0, &[1, 0, 1], &[1, 3]).unwrap();
    assert_eq!(c.to_vec(), vec![0.5, 0.2, 0.1]);
}

#[test]
fn where_and_masked_fill() {
    let c = t(&[1., 0., 1.], &[3]);
    let a = t(&[1., 2., 3.], &[3]);
    let b = t(&[-1.], &[1]);
    assert_eq!(Tensor::where_cond(&c, &a, &b).unwrap().to_vec(), vec![1., -1., 3.]);
    assert_eq!(a.masked_fill(&c, 0.0).unwrap().to_vec(), vec![0., 2., 0.]);
    assert!(a.masked_fill(&t(&[1., 0.], &[2]), 0.0).is_err());
}

#[test]
fn copy_on_write_keeps_clones_independent() {
    let a = t(&[1., 2.], &[2]);
    let mut b = a.clone();
    assert!(b.shares_storage(&a));
    b.as_slice_mut()[0] = 9.0;
    assert_eq!(a.to_vec(), vec![1., 2.]);
    assert_eq!(b.to_vec(), vec![9., 2.]);
}
