//! Feature scaling fitted on training data and applied to every split.
//!
//! Statistics are per feature value (every position of the feature shape),
//! computed over the examples (axis 0) in f64 with a sequential sum in row
//! order, so they are the same on every run. Fit on the training split only,
//! then apply to training, validation and test alike.

use nw_tensor::Tensor;

use crate::dataset::Dataset;
use crate::error::{DataError, Result, invalid};

/// Checks `x` is `[n, ...]` with `width` values per example; returns `n`.
fn rows(op: &'static str, x: &Tensor, width: usize) -> Result<usize> {
    if x.ndim() == 0 {
        return Err(invalid(op, "needs a leading example dimension"));
    }
    let n = x.shape()[0];
    let w: usize = x.shape()[1..].iter().product();
    if w != width {
        return Err(DataError::DimensionMismatch {
            what: format!("{op}: values per example of {:?}", x.shape()),
            expected: width.to_string(),
            got: w.to_string(),
        });
    }
    Ok(n)
}

/// Applies `f(value, feature)` to every value of `x` (row-major).
fn map_features(x: &Tensor, width: usize, f: impl Fn(f32, usize) -> f32) -> Result<Tensor> {
    let v: Vec<f32> = x.to_vec().iter().enumerate().map(|(i, &a)| f(a, i % width)).collect();
    Ok(Tensor::from_vec(v, x.shape())?)
}

/// Per-feature minimum and maximum (f32 values, no rounding involved).
fn min_max(x: &Tensor) -> Result<(Vec<f32>, Vec<f32>)> {
    let (n, width) = fit_shape("MinMaxScaler::fit", x)?;
    let data = x.to_vec();
    let mut lo = data[..width].to_vec();
    let mut hi = lo.clone();
    for r in 1..n {
        for (j, &v) in data[r * width..(r + 1) * width].iter().enumerate() {
            lo[j] = lo[j].min(v);
            hi[j] = hi[j].max(v);
        }
    }
    Ok((lo, hi))
}

fn fit_shape(op: &'static str, x: &Tensor) -> Result<(usize, usize)> {
    if x.ndim() == 0 || x.shape()[0] == 0 {
        return Err(invalid(op, format!("needs at least one example, got shape {:?}", x.shape())));
    }
    Ok((x.shape()[0], x.shape()[1..].iter().product()))
}

/// Standardisation: `(x - mean) / std` per feature, with the population
/// standard deviation (divisor `n`, as scikit-learn's `StandardScaler`).
///
/// A feature with standard deviation 0 (constant on the training data) is
/// divided by 1 instead, so it becomes `x - mean` (0 on the training data)
/// rather than NaN.
///
/// ```
/// use nw_data::Standardizer;
/// use nw_tensor::Tensor;
/// // column 0: 1, 3 -> mean 2, std 1; column 1: constant 5 -> std treated as 1
/// let train = Tensor::from_vec(vec![1.0, 5.0, 3.0, 5.0], &[2, 2]).unwrap();
/// let s = Standardizer::fit(&train).unwrap();
/// assert_eq!(s.transform(&train).unwrap().to_vec(), vec![-1.0, 0.0, 1.0, 0.0]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Standardizer {
    /// Fits means and standard deviations on `x` `[n, ...]` (`n >= 1`).
    pub fn fit(x: &Tensor) -> Result<Self> {
        let (n, width) = fit_shape("Standardizer::fit", x)?;
        let data = x.to_vec();
        let mut sum = vec![0f64; width];
        for row in data.chunks_exact(width) {
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += f64::from(v);
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
        // Two-pass variance: sum of squared deviations from the mean.
        let mut ss = vec![0f64; width];
        for row in data.chunks_exact(width) {
            for ((s, &v), m) in ss.iter_mut().zip(row).zip(&mean) {
                *s += (f64::from(v) - m).powi(2);
            }
        }
        let std =
            ss.iter().map(|s| (s / n as f64).sqrt() as f32).map(|s| if s > 0.0 { s } else { 1.0 }).collect();
        Ok(Standardizer { mean: mean.iter().map(|&m| m as f32).collect(), std })
    }

    /// Fits on a data set's features.
    pub fn fit_dataset(d: &Dataset) -> Result<Self> {
        Self::fit(d.features())
    }

    /// The per-feature means.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The per-feature divisors: the standard deviation, or 1 where it was 0.
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// `(x - mean) / std` for `x` `[m, ...]` with the fitted number of values per example.
    pub fn transform(&self, x: &Tensor) -> Result<Tensor> {
        rows("Standardizer::transform", x, self.mean.len())?;
        map_features(x, self.mean.len(), |v, j| (v - self.mean[j]) / self.std[j])
    }

    /// `x * std + mean`, the inverse of [`Standardizer::transform`] up to rounding.
    pub fn inverse_transform(&self, x: &Tensor) -> Result<Tensor> {
        rows("Standardizer::inverse_transform", x, self.mean.len())?;
        map_features(x, self.mean.len(), |v, j| v * self.std[j] + self.mean[j])
    }

    /// A data set with standardised features (targets unchanged).
    pub fn apply(&self, d: &Dataset) -> Result<Dataset> {
        d.with_features(self.transform(d.features())?)
    }
}

/// Min-max scaling to `[0, 1]`: `(x - min) / (max - min)` per feature, with
/// `min` and `max` from the fitted data. Data outside the fitted range maps
/// outside `[0, 1]`. A constant feature (`max == min`) becomes `x - min`.
#[derive(Debug, Clone, PartialEq)]
pub struct MinMaxScaler {
    min: Vec<f32>,
    range: Vec<f32>,
}

impl MinMaxScaler {
    /// Fits per-feature minima and maxima on `x` `[n, ...]` (`n >= 1`).
    pub fn fit(x: &Tensor) -> Result<Self> {
        let (lo, hi) = min_max(x)?;
        let range = lo.iter().zip(&hi).map(|(l, h)| if h > l { h - l } else { 1.0 }).collect();
        Ok(MinMaxScaler { min: lo, range })
    }

    /// Fits on a data set's features.
    pub fn fit_dataset(d: &Dataset) -> Result<Self> {
        Self::fit(d.features())
    }

    /// The per-feature minima.
    pub fn min(&self) -> &[f32] {
        &self.min
    }

    /// The per-feature divisors: `max - min`, or 1 where that is 0.
    pub fn range(&self) -> &[f32] {
        &self.range
    }

    /// `(x - min) / (max - min)`.
    pub fn transform(&self, x: &Tensor) -> Result<Tensor> {
        rows("MinMaxScaler::transform", x, self.min.len())?;
        map_features(x, self.min.len(), |v, j| (v - self.min[j]) / self.range[j])
    }

    /// A data set with scaled features (targets unchanged).
    pub fn apply(&self, d: &Dataset) -> Result<Dataset> {
        d.with_features(self.transform(d.features())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nw_tensor::Rng;

    #[test]
    fn standardizer_by_hand() {
        // column 0: 1, 2, 3, 6 -> mean 3, population variance (4+1+0+9)/4 = 3.5
        // column 1: constant 7 -> std 0, divisor 1
        let x = Tensor::from_vec(vec![1., 7., 2., 7., 3., 7., 6., 7.], &[4, 2]).unwrap();
        let s = Standardizer::fit(&x).unwrap();
        assert_eq!(s.mean(), &[3.0, 7.0]);
        assert_eq!(s.std(), &[3.5f64.sqrt() as f32, 1.0]);
        let t = s.transform(&x).unwrap().to_vec();
        assert!(t.iter().all(|v| v.is_finite()));
        assert_eq!(t[1], 0.0);
        let sd = 3.5f32.sqrt();
        assert!((t[0] - (-2.0 / sd)).abs() < 1e-6 && (t[6] - 3.0 / sd).abs() < 1e-6);
        let back = s.inverse_transform(&s.transform(&x).unwrap()).unwrap().to_vec();
        assert!(back.iter().zip(x.to_vec()).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn fit_on_train_apply_to_test() {
        let d = crate::wine();
        let s = d.split(0.0, 0.3, &mut Rng::new(2)).unwrap();
        let st = Standardizer::fit_dataset(&s.train).unwrap();
        let train = st.apply(&s.train).unwrap();
        // On the data it was fitted on, every feature has mean ~0 and std ~1.
        let fitted = Standardizer::fit_dataset(&train).unwrap();
        assert!(fitted.mean().iter().all(|m| m.abs() < 1e-5));
        assert!(fitted.std().iter().all(|s| (s - 1.0).abs() < 1e-5));
        let test = st.apply(&s.test).unwrap();
        assert_eq!(test.features().shape(), s.test.features().shape());
        assert_eq!(test.labels(), s.test.labels());
        assert!(st.transform(&Tensor::zeros(&[2, 5])).is_err());
        assert!(Standardizer::fit(&Tensor::zeros(&[0, 3])).is_err());
    }

    #[test]
    fn min_max_by_hand() {
        // column 0: 2..6 -> (x - 2) / 4; column 1: constant 1 -> x - 1
        let x = Tensor::from_vec(vec![2., 1., 4., 1., 6., 1.], &[3, 2]).unwrap();
        let m = MinMaxScaler::fit(&x).unwrap();
        assert_eq!(m.transform(&x).unwrap().to_vec(), vec![0.0, 0.0, 0.5, 0.0, 1.0, 0.0]);
        let y = Tensor::from_vec(vec![10., 3.], &[1, 2]).unwrap();
        assert_eq!(m.transform(&y).unwrap().to_vec(), vec![2.0, 2.0]);
        let d = crate::iris();
        let scaled = MinMaxScaler::fit_dataset(&d).unwrap().apply(&d).unwrap();
        assert!(scaled.features().to_vec().iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
