//! Binary elementwise operations with numpy broadcasting, and scalar forms.

use ndarray::{IxDyn, Zip};

use super::zip_collect;
use crate::error::{Result, TensorError};
use crate::tensor::Tensor;

/// The broadcast shape of two shapes (numpy rules: align from the right; each
/// pair of dimensions must be equal or one of them 1).
pub fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(TensorError::ShapeMismatch { op, lhs: a.to_vec(), rhs: b.to_vec() });
        };
    }
    Ok(out)
}

impl Tensor {
    /// Applies `f` pairwise with broadcasting. Contiguous operands of equal
    /// shape take a slice fast path; a trailing-dimension operand (a bias
    /// row) is repeated without materialising it.
    pub fn zip_with(
        &self,
        other: &Tensor,
        op: &'static str,
        f: impl Fn(f32, f32) -> f32 + Sync,
    ) -> Result<Tensor> {
        let shape = broadcast_shape(op, self.shape(), other.shape())?;
        if let (Some(a), Some(b)) = (self.as_slice(), other.as_slice()) {
            if self.shape() == other.shape() {
                return Tensor::from_vec(zip_collect(a, b, f), &shape);
            }
            // b repeats over leading dims of a: out[r, j] = f(a[r, j], b[j]).
            if self.shape() == shape.as_slice() && is_suffix(other.shape(), &shape) && !b.is_empty() {
                let mut out = vec![0.0f32; a.len()];
                for (orow, arow) in out.chunks_mut(b.len()).zip(a.chunks(b.len())) {
                    for j in 0..b.len() {
                        orow[j] = f(arow[j], b[j]);
                    }
                }
                return Tensor::from_vec(out, &shape);
            }
            if other.shape() == shape.as_slice() && is_suffix(self.shape(), &shape) && !a.is_empty() {
                let mut out = vec![0.0f32; b.len()];
                for (orow, brow) in out.chunks_mut(a.len()).zip(b.chunks(a.len())) {
                    for j in 0..a.len() {
                        orow[j] = f(a[j], brow[j]);
                    }
                }
                return Tensor::from_vec(out, &shape);
            }
        }
        let av = self.data.broadcast(IxDyn(&shape)).expect("broadcast shape computed");
        let bv = other.data.broadcast(IxDyn(&shape)).expect("broadcast shape computed");
        let out = Zip::from(&av).and(&bv).map_collect(|&x, &y| f(x, y));
        Ok(Tensor::from_array(out))
    }

    /// Elementwise `self + other` with broadcasting.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "add", |a, b| a + b)
    }

    /// Elementwise `self - other` with broadcasting.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "sub", |a, b| a - b)
    }

    /// Elementwise `self * other` with broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "mul", |a, b| a * b)
    }

    /// Elementwise `self / other` with broadcasting.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "div", |a, b| a / b)
    }

    /// Elementwise maximum with broadcasting (NaN propagates, as in torch.maximum).
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "maximum", |a, b| if a.is_nan() || a > b { a } else { b })
    }

    /// Elementwise minimum with broadcasting (NaN propagates).
    pub fn minimum(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "minimum", |a, b| if a.is_nan() || a < b { a } else { b })
    }

    /// Elementwise `self ^ other` with broadcasting.
    pub fn pow(&self, other: &Tensor) -> Result<Tensor> {
        self.zip_with(other, "pow", f32::powf)
    }

    /// In place `self += other`, `other` broadcast to this shape.
    pub fn add_assign(&mut self, other: &Tensor) -> Result<()> {
        self.axpy_(1.0, other)
    }

    /// In place `self += alpha * other`, `other` broadcast to this shape.
    pub fn axpy_(&mut self, alpha: f32, other: &Tensor) -> Result<()> {
        if self.shape() == other.shape()
            && let Some(b) = other.as_slice()
        {
            let a = self.as_slice_mut();
            use rayon::prelude::*;
            if a.len() >= super::PAR_THRESHOLD {
                a.par_chunks_mut(super::CHUNK)
                    .zip(b.par_chunks(super::CHUNK))
                    .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, &b)| *a += alpha * b));
            } else {
                a.iter_mut().zip(b).for_each(|(a, &b)| *a += alpha * b);
            }
            return Ok(());
        }
        let shape = self.shape().to_vec();
        let bv = other.data.broadcast(IxDyn(&shape)).ok_or_else(|| TensorError::ShapeMismatch {
            op: "axpy",
            lhs: shape.clone(),
            rhs: other.shape().to_vec(),
        })?;
        Zip::from(&mut self.data.view_mut()).and(&bv).for_each(|a, &b| *a += alpha * b);
        Ok(())
    }

    /// `self + s` for every element.
    pub fn add_scalar(&self, s: f32) -> Tensor {
        self.map(|x| x + s)
    }

    /// `self * s` for every element.
    pub fn mul_scalar(&self, s: f32) -> Tensor {
        self.map(|x| x * s)
    }

    /// Multiplies every element by `s` in place.
    pub fn scale_(&mut self, s: f32) {
        self.map_(|x| x * s)
    }
}

fn is_suffix(short: &[usize], long: &[usize]) -> bool {
    short.len() <= long.len() && long[long.len() - short.len()..] == *short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], s: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), s).unwrap()
    }

    #[test]
    fn broadcast_rules() {
        assert_eq!(broadcast_shape("x", &[2, 3], &[3]).unwrap(), vec![2, 3]);
        assert_eq!(broadcast_shape("x", &[2, 1], &[1, 4]).unwrap(), vec![2, 4]);
        assert_eq!(broadcast_shape("x", &[], &[5]).unwrap(), vec![5]);
        let e = broadcast_shape("add", &[2, 3], &[2]).unwrap_err();
        assert_eq!(e.to_string(), "add: shape mismatch between [2, 3] and [2]");
    }

    #[test]
    fn add_paths_agree() {
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let b = t(&[10., 20., 30.], &[3]);
        let want = vec![11., 22., 33., 14., 25., 36.];
        assert_eq!(a.add(&b).unwrap().to_vec(), want);
        assert_eq!(b.add(&a).unwrap().to_vec(), want);
        // column broadcast goes through the general path
        let c = t(&[1., 2.], &[2, 1]);
        assert_eq!(a.mul(&c).unwrap().to_vec(), vec![1., 2., 3., 8., 10., 12.]);
        // transposed (non-contiguous) operand
        let at = a.t().unwrap();
        let d = t(&[1., 1., 1., 1., 1., 1.], &[3, 2]);
        assert_eq!(at.sub(&d).unwrap().to_vec(), vec![0., 3., 1., 4., 2., 5.]);
        assert!(a.add(&t(&[1., 2.], &[2])).is_err());
    }

    #[test]
    fn div_pow_max_min() {
        let a = t(&[1., 4., -2.], &[3]);
        let b = t(&[2., 2., 2.], &[3]);
        assert_eq!(a.div(&b).unwrap().to_vec(), vec![0.5, 2., -1.]);
        assert_eq!(a.pow(&b).unwrap().to_vec(), vec![1., 16., 4.]);
        assert_eq!(a.maximum(&b).unwrap().to_vec(), vec![2., 4., 2.]);
        assert_eq!(a.minimum(&b).unwrap().to_vec(), vec![1., 2., -2.]);
        let n = t(&[f32::NAN], &[1]);
        assert!(n.maximum(&t(&[1.], &[1])).unwrap().to_vec()[0].is_nan());
    }

    #[test]
    fn axpy_and_scalars() {
        let mut a = t(&[1., 2., 3., 4.], &[2, 2]);
        a.axpy_(2.0, &t(&[1., 1., 1., 1.], &[2, 2])).unwrap();
        assert_eq!(a.to_vec(), vec![3., 4., 5., 6.]);
        a.add_assign(&t(&[1., -1.], &[2])).unwrap();
        assert_eq!(a.to_vec(), vec![4., 3., 6., 5.]);
        assert!(a.add_assign(&t(&[1., 2., 3.], &[3])).is_err());
        assert_eq!(a.add_scalar(1.).to_vec(), vec![5., 4., 7., 6.]);
        assert_eq!(a.mul_scalar(2.).to_vec(), vec![8., 6., 12., 10.]);
    }

    #[test]
    fn large_parallel_matches_serial() {
        let n = 200_003;
        let a = Tensor::from_vec((0..n).map(|i| i as f32 * 0.5).collect(), &[n]).unwrap();
        let b = Tensor::from_vec((0..n).map(|i| (i % 7) as f32).collect(), &[n]).unwrap();
        let c = a.mul(&b).unwrap().to_vec();
        for i in (0..n).step_by(997) {
            assert_eq!(c[i], (i as f32 * 0.5) * (i % 7) as f32);
        }
    }
}
