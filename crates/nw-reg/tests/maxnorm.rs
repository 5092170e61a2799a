//! Max-norm constraint: rows above the bound end on it, rows below are untouched.

use nw_autograd::Param;
use nw_reg::{MaxNorm, RegError, max_norm_};
use nw_tensor::{Rng, Tensor};

fn row_norms(v: &[f32], rows: usize) -> Vec<f64> {
    v.chunks(v.len() / rows).map(|r| r.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt()).collect()
}

#[test]
fn rows_above_the_bound_are_scaled_onto_it() {
    let mut rng = Rng::new(1);
    let w0 = Tensor::randn(&[6, 10], 0.0, 1.0, &mut rng);
    let before = row_norms(&w0.to_vec(), 6);
    let c = 3.0f32;
    assert!(before.iter().any(|&n| n > 3.0) && before.iter().any(|&n| n <= 3.0), "{before:?}");
    let p = Param::new(w0.clone());
    MaxNorm::new(c).unwrap().apply(std::slice::from_ref(&p)).unwrap();
    let after = p.value().to_vec();
    for (r, (&nb, &na)) in before.iter().zip(&row_norms(&after, 6)).enumerate() {
        if nb > c as f64 {
            // scaled by c / (n + 1e-7): the new norm is c up to f32 rounding
            assert!((na - c as f64).abs() < 1e-5, "row {r}: {na}");
        } else {
            assert_eq!(&after[r * 10..(r + 1) * 10], &w0.to_vec()[r * 10..(r + 1) * 10]);
        }
    }
}

#[test]
fn other_dims_and_conv_filters() {
    // dim 1 of [2, 2]: columns (3, 4) with norm 5 and (0, 0.1)
    let mut t = Tensor::from_vec(vec![3.0, 0.0, 4.0, 0.1], &[2, 2]).unwrap();
    let norms = max_norm_(&mut t, 1.0, 1).unwrap();
    assert_eq!(norms.len(), 2);
    assert!((norms[0] - 5.0).abs() < 1e-12);
    let v = t.to_vec();
    // column 0 scaled by 1 / (5 + 1e-7)
    assert!((v[0] - 0.6).abs() < 1e-6 && (v[2] - 0.8).abs() < 1e-6);
    assert_eq!((v[1], v[3]), (0.0, 0.1));

    // conv weight [out 2, in 1, 2, 2]: filter norms 4 (all 2s) and 0.4
    let mut k = Tensor::from_vec(vec![2.0, 2.0, 2.0, 2.0, 0.2, 0.2, 0.2, 0.2], &[2, 1, 2, 2]).unwrap();
    max_norm_(&mut k, 2.0, 0).unwrap();
    let kv = k.to_vec();
    assert!(kv[..4].iter().all(|&x| (x - 1.0).abs() < 1e-6));
    assert_eq!(&kv[4..], &[0.2; 4]);
}

#[test]
fn bad_bounds_and_dims_are_errors() {
    assert!(matches!(MaxNorm::new(0.0), Err(RegError::BadArgument { .. })));
    assert!(MaxNorm::new(-1.0).is_err() && MaxNorm::new(f32::NAN).is_err());
    let p = Param::new(Tensor::ones(&[2, 2]));
    let q = Param::new(Tensor::ones(&[3]));
    let before = p.value();
    // q has no dim 1; nothing is changed, not even p
    assert!(MaxNorm::new(0.5).unwrap().with_dim(1).apply(&[p.clone(), q]).is_err());
    assert_eq!(p.value(), before);
}
