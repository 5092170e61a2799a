//! Synthetic data sets for teaching and tests.
//!
//! Every generator draws from the `&mut Rng` it is given, in row order, so the
//! same generator state gives the same set bit for bit. Rows are ordered by
//! how they are generated (for the classification sets, by class); shuffle
//! with a split or the batch loader. `noise` is the standard deviation of
//! Gaussian noise added to each coordinate (features for the classification
//! sets, targets for the regression sets) and must be finite and `>= 0`.

use std::f64::consts::PI;

use nw_tensor::{Rng, Tensor};

use crate::dataset::Dataset;
use crate::error::{Result, invalid};

fn check_noise(op: &'static str, noise: f64) -> Result<()> {
    if noise.is_finite() && noise >= 0.0 {
        Ok(())
    } else {
        Err(invalid(op, format!("noise must be a finite standard deviation >= 0, got {noise}")))
    }
}

/// The XOR truth table: features `[[0,0],[0,1],[1,0],[1,1]]`, labels `[0,1,1,0]`.
pub fn xor_table() -> Dataset {
    let x = Tensor::from_vec(vec![0., 0., 0., 1., 1., 0., 1., 1.], &[4, 2]).expect("4x2");
    Dataset::classification(x, vec![0, 1, 1, 0], 2).expect("labels below 2")
}

/// `n` noisy XOR points: for each row, corners `a, b` in `{0, 1}` are drawn
/// (`rng.below(2)` twice), the features are `(a, b)` plus `noise * N(0, 1)`
/// each, and the label is `a XOR b`. Features `[n, 2]`, 2 classes.
pub fn xor(n: usize, noise: f64, rng: &mut Rng) -> Result<Dataset> {
    check_noise("xor", noise)?;
    let mut x = Vec::with_capacity(2 * n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let a = rng.below(2) as usize;
        let b = rng.below(2) as usize;
        x.push((a as f64 + noise * rng.normal()) as f32);
        x.push((b as f64 + noise * rng.normal()) as f32);
        y.push(a ^ b);
    }
    Dataset::classification(Tensor::from_vec(x, &[n, 2])?, y, 2)
}

/// Two interleaved spirals, `n_per_class` points each (features `[2n, 2]`,
/// class 0 first). Point `i` of class `c` has `t = (i + 0.5) / n`, radius
/// `t` and angle `3.5 pi t + pi c` (1.75 turns), plus `noise * N(0, 1)` per
/// coordinate.
pub fn two_spirals(n_per_class: usize, noise: f64, rng: &mut Rng) -> Result<Dataset> {
    check_noise("two_spirals", noise)?;
    let n = n_per_class;
    let mut x = Vec::with_capacity(4 * n);
    let mut y = Vec::with_capacity(2 * n);
    for c in 0..2 {
        for i in 0..n {
            let t = (i as f64 + 0.5) / n as f64;
            let angle = 3.5 * PI * t + PI * c as f64;
            x.push((t * angle.cos() + noise * rng.normal()) as f32);
            x.push((t * angle.sin() + noise * rng.normal()) as f32);
            y.push(c);
        }
    }
    Dataset::classification(Tensor::from_vec(x, &[2 * n, 2])?, y, 2)
}

/// `k` evenly spaced angles from 0 to pi inclusive (`[0]` when `k == 1`).
fn linspace_pi(k: usize) -> impl Iterator<Item = f64> {
    (0..k).map(move |i| if k > 1 { PI * i as f64 / (k - 1) as f64 } else { 0.0 })
}

/// Two interleaving half circles, `n` points (features `[n, 2]`). The first
/// `n / 2` are class 0 at `(cos t, sin t)`, the other `n - n / 2` class 1 at
/// `(1 - cos t, 0.5 - sin t)`, with `t` evenly spaced over `[0, pi]`
/// (the layout of scikit-learn's `make_moons`), plus `noise * N(0, 1)` per
/// coordinate.
pub fn moons(n: usize, noise: f64, rng: &mut Rng) -> Result<Dataset> {
    check_noise("moons", noise)?;
    let n_outer = n / 2;
    let mut x = Vec::with_capacity(2 * n);
    let mut y = Vec::with_capacity(n);
    for t in linspace_pi(n_outer) {
        x.push((t.cos() + noise * rng.normal()) as f32);
        x.push((t.sin() + noise * rng.normal()) as f32);
        y.push(0);
    }
    for t in linspace_pi(n - n_outer) {
        x.push((1.0 - t.cos() + noise * rng.normal()) as f32);
        x.push((0.5 - t.sin() + noise * rng.normal()) as f32);
        y.push(1);
    }
    Dataset::classification(Tensor::from_vec(x, &[n, 2])?, y, 2)
}

/// A linear regression problem: features `x ~ U(-1, 1)^d` (`d = weights.len()`,
/// drawn row by row), targets `[n, 1]` equal to `x . weights + bias + noise * N(0, 1)`
/// (the dot product in f64).
pub fn linear_regression(n: usize, weights: &[f32], bias: f32, noise: f64, rng: &mut Rng) -> Result<Dataset> {
    check_noise("linear_regression", noise)?;
    if weights.is_empty() {
        return Err(invalid("linear_regression", "needs at least one weight"));
    }
    let d = weights.len();
    let mut x = Vec::with_capacity(n * d);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let mut dot = f64::from(bias);
        for &w in weights {
            let v = rng.uniform(-1.0, 1.0) as f32;
            x.push(v);
            dot += f64::from(v) * f64::from(w);
        }
        y.push((dot + noise * rng.normal()) as f32);
    }
    Dataset::regression(Tensor::from_vec(x, &[n, d])?, Tensor::from_vec(y, &[n, 1])?)
}

/// A 1-D sine regression problem: `x ~ U(-pi, pi)` (features `[n, 1]`),
/// targets `[n, 1]` equal to `sin(x) + noise * N(0, 1)`.
pub fn sine_regression(n: usize, noise: f64, rng: &mut Rng) -> Result<Dataset> {
    check_noise("sine_regression", noise)?;
    let mut x = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let v = rng.uniform(-PI, PI) as f32;
        x.push(v);
        y.push((f64::from(v).sin() + noise * rng.normal()) as f32);
    }
    Dataset::regression(Tensor::from_vec(x, &[n, 1])?, Tensor::from_vec(y, &[n, 1])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_balance() {
        let mut r = Rng::new(0);
        let d = xor(100, 0.1, &mut r).unwrap();
        assert_eq!(d.features().shape(), &[100, 2]);
        assert_eq!(d.n_classes(), Some(2));
        let s = two_spirals(50, 0.0, &mut r).unwrap();
        assert_eq!(s.features().shape(), &[100, 2]);
        assert_eq!(s.class_counts().unwrap(), vec![50, 50]);
        let m = moons(101, 0.05, &mut r).unwrap();
        assert_eq!(m.features().shape(), &[101, 2]);
        assert_eq!(m.class_counts().unwrap(), vec![50, 51]);
        let l = linear_regression(30, &[1.0, -2.0, 0.5], 0.3, 0.0, &mut r).unwrap();
        assert_eq!(l.features().shape(), &[30, 3]);
        assert_eq!(l.targets().as_values().unwrap().shape(), &[30, 1]);
        let q = sine_regression(20, 0.1, &mut r).unwrap();
        assert_eq!(q.features().shape(), &[20, 1]);
        assert_eq!(xor_table().labels().unwrap(), &[0, 1, 1, 0]);
    }

    #[test]
    fn same_seed_same_set_different_seed_different_set() {
        let gen_all = |seed| {
            let mut r = Rng::new(seed);
            (
                xor(64, 0.2, &mut r).unwrap(),
                two_spirals(32, 0.1, &mut r).unwrap(),
                moons(64, 0.1, &mut r).unwrap(),
                linear_regression(64, &[0.5, 1.5], -1.0, 0.1, &mut r).unwrap(),
                sine_regression(64, 0.1, &mut r).unwrap(),
            )
        };
        assert_eq!(gen_all(7), gen_all(7));
        let (a, b) = (gen_all(7), gen_all(8));
        assert_ne!(a.0, b.0);
        assert_ne!(a.4, b.4);
    }

    #[test]
    fn noiseless_sets_follow_their_formulas() {
        let mut r = Rng::new(1);
        // XOR without noise: features are exactly the corners, label = a ^ b.
        let d = xor(40, 0.0, &mut r).unwrap();
        let x = d.features().to_vec();
        for (i, &l) in d.labels().unwrap().iter().enumerate() {
            assert_eq!(l, (x[2 * i] as usize) ^ (x[2 * i + 1] as usize));
        }
        // Moons without noise: the outer moon lies on the unit circle around the origin,
        // the inner one on the unit circle around (1, 0.5).
        let m = moons(20, 0.0, &mut r).unwrap();
        let x = m.features().to_vec();
        for (i, &l) in m.labels().unwrap().iter().enumerate() {
            let (cx, cy) = if l == 0 { (0.0, 0.0) } else { (1.0, 0.5) };
            let rr = (x[2 * i] - cx).powi(2) + (x[2 * i + 1] - cy).powi(2);
            assert!((rr - 1.0).abs() < 1e-6);
        }
        // Linear, noiseless: y = x . w + b up to f32 rounding.
        let w = [2.0f32, -1.0];
        let l = linear_regression(10, &w, 0.5, 0.0, &mut r).unwrap();
        let (x, y) = (l.features().to_vec(), l.targets().as_values().unwrap().to_vec());
        for i in 0..10 {
            assert!((y[i] - (x[2 * i] * 2.0 - x[2 * i + 1] + 0.5)).abs() < 1e-6);
        }
        // Sine, noiseless.
        let s = sine_regression(10, 0.0, &mut r).unwrap();
        let (x, y) = (s.features().to_vec(), s.targets().as_values().unwrap().to_vec());
        assert!(x.iter().zip(&y).all(|(a, b)| (a.sin() - b).abs() < 1e-6));
        assert!(x.iter().all(|v| (-PI as f32..=PI as f32).contains(v)));
    }

    #[test]
    fn bad_arguments_are_errors() {
        let mut r = Rng::new(0);
        assert!(xor(4, -1.0, &mut r).is_err());
        assert!(moons(4, f64::NAN, &mut r).is_err());
        assert!(linear_regression(4, &[], 0.0, 0.0, &mut r).is_err());
    }
}
