//! Reductions along axes, softmax and log-softmax.
//!
//! Axis reductions compute each output element from its own lane, in index
//! order, accumulating in f64; whole-tensor sums add fixed chunks of
//! [`super::CHUNK`] elements in order. Neither depends on the thread count.

use rayon::prelude::*;

use crate::error::{Result, TensorError};
use crate::tensor::{Tensor, check_axis, outer_inner};

impl Tensor {
    /// Reduces each lane along `axis` with `f` (which sees the lane as a
    /// strided iterator collected into a buffer) producing one value per lane.
    fn reduce_lanes(
        &self,
        op: &'static str,
        axis: usize,
        keepdim: bool,
        f: impl Fn(&[f32]) -> f32 + Sync,
    ) -> Result<Tensor> {
        let ax = check_axis(op, axis, self.ndim())?;
        let shape = self.shape().to_vec();
        let n = shape[ax];
        let (outer, inner) = outer_inner(&shape, ax);
        let src = self.contiguous();
        let s = src.as_slice().expect("contiguous");
        let mut out = vec![0.0f32; outer * inner];
        let work = |o: usize, row: &mut [f32]| {
            let mut lane = vec![0.0f32; n];
            for i in 0..inner {
                for (k, l) in lane.iter_mut().enumerate() {
                    *l = s[(o * n + k) * inner + i];
                }
                row[i] = f(&lane);
            }
        };
        if s.len() >= super::PAR_THRESHOLD && inner > 0 {
            out.par_chunks_mut(inner).enumerate().for_each(|(o, row)| work(o, row));
        } else if inner > 0 {
            out.chunks_mut(inner).enumerate().for_each(|(o, row)| work(o, row));
        }
        let mut oshape = shape.clone();
        if keepdim {
            oshape[ax] = 1;
        } else {
            oshape.remove(ax);
        }
        Tensor::from_vec(out, &oshape)
    }

    /// Sum along `axis`.
    pub fn sum_axis(&self, axis: usize, keepdim: bool) -> Result<Tensor> {
        self.reduce_lanes("sum", axis, keepdim, |l| l.iter().map(|&x| x as f64).sum::<f64>() as f32)
    }

    /// Mean along `axis`.
    pub fn mean_axis(&self, axis: usize, keepdim: bool) -> Result<Tensor> {
        self.reduce_lanes("mean", axis, keepdim, |l| {
            (l.iter().map(|&x| x as f64).sum::<f64>() / l.len() as f64) as f32
        })
    }

    /// Maximum along `axis` (NaN propagates).
    pub fn max_axis(&self, axis: usize, keepdim: bool) -> Result<Tensor> {
        self.nonempty_axis("max", axis)?;
        self.reduce_lanes("max", axis, keepdim, |l| {
            l.iter().copied().fold(f32::NEG_INFINITY, |m, x| if x.is_nan() || x > m { x } else { m })
        })
    }

    /// Minimum along `axis` (NaN propagates).
    pub fn min_axis(&self, axis: usize, keepdim: bool) -> Result<Tensor> {
        self.nonempty_axis("min", axis)?;
        self.reduce_lanes("min", axis, keepdim, |l| {
            l.iter().copied().fold(f32::INFINITY, |m, x| if x.is_nan() || x < m { x } else { m })
        })
    }

    /// Variance along `axis`; `unbiased` divides by `n - 1` (torch's default) instead of `n`.
    pub fn var_axis(&self, axis: usize, unbiased: bool, keepdim: bool) -> Result<Tensor> {
        self.reduce_lanes("var", axis, keepdim, |l| {
            let n = l.len() as f64;
            let mean = l.iter().map(|&x| x as f64).sum::<f64>() / n;
            let ss: f64 = l.iter().map(|&x| (x as f64 - mean).powi(2)).sum();
            let d = if unbiased { n - 1.0 } else { n };
            (ss / d) as f32
        })
    }

    /// Index of the maximum along `axis` (the first one on ties), one per lane
    /// in row-major order of the remaining axes.
    pub fn argmax_axis(&self, axis: usize) -> Result<Vec<usize>> {
        self.nonempty_axis("argmax", axis)?;
        let t = self.reduce_lanes("argmax", axis, false, |l| {
            let mut best = 0;
            for (i, &x) in l.iter().enumerate() {
                if x > l[best] || (x.is_nan() && !l[best].is_nan()) {
                    best = i;
                }
            }
            best as f32
        })?;
        Ok(t.to_vec().into_iter().map(|x| x as usize).collect())
    }

    /// Sum over several axes (kept as size 1 when `keepdim`).
    pub fn sum_axes(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        let mut sorted = axes.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut t = self.clone();
        for &a in sorted.iter().rev() {
            t = t.sum_axis(a, keepdim)?;
        }
        Ok(t)
    }

    /// Sums this tensor down to `shape`, undoing a broadcast: the gradient
    /// of a broadcast operand is the output gradient summed this way.
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let bad = || TensorError::ShapeMismatch {
            op: "sum_to_shape",
            lhs: self.shape().to_vec(),
            rhs: shape.to_vec(),
        };
        if shape.len() > self.ndim() {
            return Err(bad());
        }
        let lead = self.ndim() - shape.len();
        let mut axes: Vec<usize> = (0..lead).collect();
        for (i, &d) in shape.iter().enumerate() {
            let s = self.shape()[lead + i];
            if d == 1 && s != 1 {
                axes.push(lead + i);
            } else if d != s {
                return Err(bad());
            }
        }
        let t = self.sum_axes(&axes, true)?;
        t.reshape(shape)
    }

    /// Sum of all elements: fixed chunks summed in f64, then added in order.
    pub fn sum_all(&self) -> f32 {
        self.sum_all_f64() as f32
    }

    /// Sum of all elements in f64 (see [`Tensor::sum_all`]).
    pub fn sum_all_f64(&self) -> f64 {
        let c = self.contiguous();
        let s = c.as_slice().expect("contiguous");
        let partial: Vec<f64> = if s.len() >= super::PAR_THRESHOLD {
            s.par_chunks(super::CHUNK).map(|c| c.iter().map(|&x| x as f64).sum()).collect()
        } else {
            s.chunks(super::CHUNK).map(|c| c.iter().map(|&x| x as f64).sum()).collect()
        };
        partial.iter().sum()
    }

    /// Mean of all elements (NaN for an empty tensor).
    pub fn mean_all(&self) -> f32 {
        (self.sum_all_f64() / self.len() as f64) as f32
    }

    /// Largest element (NaN propagates; -inf for an empty tensor).
    pub fn max_all(&self) -> f32 {
        self.data.iter().copied().fold(f32::NEG_INFINITY, |m, x| if x.is_nan() || x > m { x } else { m })
    }

    /// Smallest element (NaN propagates; +inf for an empty tensor).
    pub fn min_all(&self) -> f32 {
        self.data.iter().copied().fold(f32::INFINITY, |m, x| if x.is_nan() || x < m { x } else { m })
    }

    /// Softmax along `axis`: `exp(x - max) / sum(exp(x - max))`.
    pub fn softmax(&self, axis: usize) -> Result<Tensor> {
        self.softmax_impl("softmax", axis, false)
    }

    /// Log-softmax along `axis`: `x - max - ln(sum(exp(x - max)))`.
    pub fn log_softmax(&self, axis: usize) -> Result<Tensor> {
        self.softmax_impl("log_softmax", axis, true)
    }

    fn softmax_impl(&self, op: &'static str, axis: usize, log: bool) -> Result<Tensor> {
        let ax = check_axis(op, axis, self.ndim())?;
        let shape = self.shape().to_vec();
        let n = shape[ax];
        let (_, inner) = outer_inner(&shape, ax);
        let src = self.contiguous();
        let s = src.as_slice().expect("contiguous");
        let mut out = vec![0.0f32; s.len()];
        let block = n * inner;
        let work = |o: usize, dst: &mut [f32]| {
            let base = o * block;
            for i in 0..inner {
                let mut m = f32::NEG_INFINITY;
                for k in 0..n {
                    m = m.max(s[base + k * inner + i]);
                }
                if m == f32::NEG_INFINITY {
                    m = 0.0;
                }
                let mut z = 0.0f64;
                for k in 0..n {
                    z += ((s[base + k * inner + i] - m) as f64).exp();
                }
                if log {
                    let lz = z.ln();
                    for k in 0..n {
                        dst[k * inner + i] = ((s[base + k * inner + i] - m) as f64 - lz) as f32;
                    }
                } else {
                    for k in 0..n {
                        dst[k * inner + i] = (((s[base + k * inner + i] - m) as f64).exp() / z) as f32;
                    }
                }
            }
        };
        if block > 0 {
            if s.len() >= super::PAR_THRESHOLD {
                out.par_chunks_mut(block).enumerate().for_each(|(o, d)| work(o, d));
            } else {
                out.chunks_mut(block).enumerate().for_each(|(o, d)| work(o, d));
            }
        }
        Tensor::from_vec(out, &shape)
    }

    fn nonempty_axis(&self, op: &'static str, axis: usize) -> Result<()> {
        let ax = check_axis(op, axis, self.ndim())?;
        if self.shape()[ax] == 0 {
            return Err(TensorError::InvalidShape {
                op,
                shape: self.shape().to_vec(),
                reason: format!("axis {ax} is empty"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], s: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), s).unwrap()
    }

    #[test]
    fn axis_reductions() {
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        assert_eq!(a.sum_axis(0, false).unwrap().to_vec(), vec![5., 7., 9.]);
        assert_eq!(a.sum_axis(1, true).unwrap().shape(), &[2, 1]);
        assert_eq!(a.sum_axis(1, false).unwrap().to_vec(), vec![6., 15.]);
        assert_eq!(a.mean_axis(1, false).unwrap().to_vec(), vec![2., 5.]);
        assert_eq!(a.max_axis(0, false).unwrap().to_vec(), vec![4., 5., 6.]);
        assert_eq!(a.min_axis(1, false).unwrap().to_vec(), vec![1., 4.]);
        assert_eq!(a.argmax_axis(1).unwrap(), vec![2, 2]);
        assert_eq!(a.var_axis(1, true, false).unwrap().to_vec(), vec![1., 1.]);
        assert_eq!(a.var_axis(1, false, false).unwrap().to_vec(), vec![2. / 3., 2. / 3.]);
        assert_eq!(a.sum_all(), 21.0);
        assert_eq!(a.mean_all(), 3.5);
        assert_eq!(a.max_all(), 6.0);
        assert!(a.sum_axis(2, false).is_err());
        // transposed input
        assert_eq!(a.t().unwrap().sum_axis(0, false).unwrap().to_vec(), vec![6., 15.]);
    }

    #[test]
    fn argmax_first_on_ties() {
        let a = t(&[3., 1., 3.], &[3]);
        assert_eq!(a.argmax_axis(0).unwrap(), vec![0]);
    }

    #[test]
    fn sum_to_shape_undoes_broadcast() {
        let g = Tensor::ones(&[4, 2, 3]);
        assert_eq!(g.sum_to_shape(&[3]).unwrap().to_vec(), vec![8., 8., 8.]);
        assert_eq!(g.sum_to_shape(&[2, 1]).unwrap().to_vec(), vec![12., 12.]);
        assert_eq!(g.sum_to_shape(&[]).unwrap().to_vec(), vec![24.]);
        assert!(g.sum_to_shape(&[4]).is_err());
    }

    #[test]
    fn softmax_stable_and_normalised() {
        let a = t(&[1000., 1001., 1002., -1., 0., 1.], &[2, 3]);
        let s = a.softmax(1).unwrap();
        let v = s.to_vec();
        assert!((v[0] + v[1] + v[2] - 1.0).abs() < 1e-6);
        assert!((v[0] - v[3]).abs() < 1e-6, "shift invariance");
        let l = a.log_softmax(1).unwrap().to_vec();
        for i in 0..6 {
            assert!((l[i].exp() - v[i]).abs() < 1e-6);
        }
        // along axis 0
        let s0 = a.softmax(0).unwrap().to_vec();
        assert!((s0[0] + s0[3] - 1.0).abs() < 1e-6);
    }
}
