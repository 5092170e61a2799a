//! Matrix products on tensors: 2-D, batched, and the accumulating form that
//! gradient kernels use. All of them read transposed or strided operands in
//! place: GEMM takes row and column strides for every operand.

use crate::error::{Result, TensorError};
use crate::gemm::{self, PackedMatrix};
use crate::tensor::Tensor;

impl Tensor {
    /// The matrix product of two 2-D tensors, or of two 3-D tensors batch by
    /// batch (`[b, m, k] x [b, k, n] -> [b, m, n]`; a batch of 1 broadcasts).
    ///
    /// ```
    /// # use nw_tensor::Tensor;
    /// let a = Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]).unwrap();
    /// let b = Tensor::from_vec(vec![1., 0., 0., 1., 1., 1.], &[3, 2]).unwrap();
    /// assert_eq!(a.matmul(&b).unwrap().to_vec(), vec![4., 5., 10., 11.]);
    /// // a transposed view is read in place, without a copy
    /// assert_eq!(a.t().unwrap().matmul(&a).unwrap().shape(), &[3, 3]);
    /// ```
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        match (self.ndim(), other.ndim()) {
            (2, 2) => {
                let (m, k) = (self.shape()[0], self.shape()[1]);
                let (k2, n) = (other.shape()[0], other.shape()[1]);
                if k != k2 {
                    return Err(mismatch("matmul", self, other));
                }
                let out = written(m * n, |c| {
                    // SAFETY: `c` has room for the m * n floats written.
                    unsafe { gemm_raw(m, n, k, 1.0, self, 0, other, 0, 0.0, c) }
                });
                Tensor::from_vec(out, &[m, n])
            }
            (3, 3) => {
                let (ba, m, k) = (self.shape()[0], self.shape()[1], self.shape()[2]);
                let (bb, k2, n) = (other.shape()[0], other.shape()[1], other.shape()[2]);
                if k != k2 || !(ba == bb || ba == 1 || bb == 1) {
                    return Err(mismatch("matmul", self, other));
                }
                let b = ba.max(bb);
                let out = written(b * m * n, |c| {
                    for i in 0..b {
                        let ia = if ba == 1 { 0 } else { i };
                        let ib = if bb == 1 { 0 } else { i };
                        // SAFETY: block i of the b * m * n floats.
                        unsafe { gemm_raw(m, n, k, 1.0, self, ia, other, ib, 0.0, c.add(i * m * n)) };
                    }
                });
                Tensor::from_vec(out, &[b, m, n])
            }
            _ => Err(mismatch("matmul", self, other)),
        }
    }

    /// `self <- alpha * a b + beta * self` for 2-D tensors: the accumulating
    /// product that backward passes use to add into an existing gradient.
    /// `self` must have shape `[m, n]`; with `beta == 0` its old contents are
    /// ignored (even NaN).
    pub fn gemm_acc(&mut self, alpha: f32, a: &Tensor, b: &Tensor, beta: f32) -> Result<()> {
        if a.ndim() != 2 || b.ndim() != 2 || a.shape()[1] != b.shape()[0] {
            return Err(mismatch("gemm", a, b));
        }
        let (m, k, n) = (a.shape()[0], a.shape()[1], b.shape()[1]);
        if self.shape() != [m, n] {
            return Err(TensorError::ShapeMismatch {
                op: "gemm",
                lhs: vec![m, n],
                rhs: self.shape().to_vec(),
            });
        }
        let c = self.as_slice_mut();
        debug_assert_eq!(c.len(), m * n);
        // SAFETY: `c` is this tensor's own m * n floats, exclusively borrowed.
        unsafe { gemm_raw(m, n, k, alpha, a, 0, b, 0, beta, c.as_mut_ptr()) };
        Ok(())
    }
}

impl Tensor {
    /// [`Tensor::gemm_acc`] with a pre-packed right-hand operand:
    /// `self <- alpha * a b + beta * self` where `b` is
    /// [`b.source()`](PackedMatrix::source), with the same bits as
    /// `gemm_acc(alpha, a, b.source(), beta)` (products of at most
    /// [`GEMV_MAX_M`](gemm::GEMV_MAX_M) rows run exactly that call; larger
    /// ones run the blocked loops on the packed panels, which is the same
    /// arithmetic without packing B again).
    ///
    /// ```
    /// # use nw_tensor::Tensor;
    /// use nw_tensor::gemm::PackedMatrix;
    /// let w = Tensor::from_vec((0..12).map(|i| i as f32).collect(), &[4, 3]).unwrap();
    /// let wt = PackedMatrix::new(&w.t().unwrap()).unwrap(); // W^T, 3 x 4
    /// let x = Tensor::ones(&[8, 3]);
    /// let mut y = Tensor::zeros(&[8, 4]);
    /// y.gemm_acc_packed(1.0, &x, &wt, 0.0).unwrap();
    /// let mut z = Tensor::zeros(&[8, 4]);
    /// z.gemm_acc(1.0, &x, &w.t().unwrap(), 0.0).unwrap();
    /// assert_eq!(y, z);
    /// ```
    pub fn gemm_acc_packed(&mut self, alpha: f32, a: &Tensor, b: &PackedMatrix, beta: f32) -> Result<()> {
        let p = b.packed();
        if a.ndim() != 2 || a.shape()[1] != p.k() {
            return Err(mismatch("gemm (packed)", a, b.source()));
        }
        let (m, n) = (a.shape()[0], p.n());
        if self.shape() != [m, n] {
            return Err(TensorError::ShapeMismatch {
                op: "gemm (packed)",
                lhs: vec![m, n],
                rhs: self.shape().to_vec(),
            });
        }
        if m <= gemm::GEMV_MAX_M || p.kernel() != gemm::Kernel::detect() {
            // The call an unpacked product makes (the dot-product path for
            // a few rows), so the bits never depend on the pack.
            return self.gemm_acc(alpha, a, b.source(), beta);
        }
        let (rsa, csa) = (a.strides()[0], a.strides()[1]);
        let c = self.as_slice_mut();
        // SAFETY: `a`'s pointer, shape and strides are its own and its
        // columns match the pack's k; `c` is this tensor's own m * n floats,
        // exclusively borrowed, so it overlaps neither operand.
        unsafe { p.run(m, alpha, a.data.as_ptr(), rsa, csa, beta, c.as_mut_ptr(), n as isize, 1) };
        Ok(())
    }
}

fn mismatch(op: &'static str, a: &Tensor, b: &Tensor) -> TensorError {
    TensorError::ShapeMismatch { op, lhs: a.shape().to_vec(), rhs: b.shape().to_vec() }
}

/// A vector of `len` floats that `fill` writes completely through the
/// pointer it is given (every product with `beta == 0` writes all of C
/// without reading it), so the output is never zeroed first: zeroing cost
/// about 4% of an MLP training step (a memset of every product's output).
fn written(len: usize, fill: impl FnOnce(*mut f32)) -> Vec<f32> {
    let mut v = Vec::<f32>::with_capacity(len);
    fill(v.as_mut_ptr());
    // SAFETY: `fill` initialised all `len` elements (the callers' products
    // with beta == 0 write every element of C, including the k == 0 case).
    unsafe { v.set_len(len) };
    v
}

/// Runs GEMM on matrix `ia` of `a` (the last two axes) and matrix `ib` of `b`,
/// writing a row-major `m x n` block at `c`.
///
/// # Safety
/// `c` is valid to write `m * n` floats (and to read them unless
/// `beta == 0`) and overlaps neither operand.
unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &Tensor,
    ia: usize,
    b: &Tensor,
    ib: usize,
    beta: f32,
    c: *mut f32,
) {
    let nd_a = a.ndim();
    let nd_b = b.ndim();
    let (rsa, csa) = (a.strides()[nd_a - 2], a.strides()[nd_a - 1]);
    let (rsb, csb) = (b.strides()[nd_b - 2], b.strides()[nd_b - 1]);
    let off_a = if nd_a == 3 { a.strides()[0] * ia as isize } else { 0 };
    let off_b = if nd_b == 3 { b.strides()[0] * ib as isize } else { 0 };
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // C <- beta C (alpha A B is empty).
        for i in 0..m * n {
            // SAFETY: i < m * n (caller); read only when beta != 0.
            unsafe {
                let x = c.add(i);
                *x = if beta == 0.0 { 0.0 } else { beta * *x };
            }
        }
        return;
    }
    // SAFETY: the pointers come from live tensors whose shapes were checked
    // against m, n, k by the callers; offsets and strides are the tensors' own,
    // so every index the kernel forms lies inside its buffer. `c` is a
    // distinct buffer of m * n elements (caller).
    unsafe {
        gemm::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr().offset(off_a),
            rsa,
            csa,
            b.data.as_ptr().offset(off_b),
            rsb,
            csb,
            beta,
            c,
            n as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn naive(a: &Tensor, b: &Tensor) -> Vec<f32> {
        let (m, k, n) = (a.shape()[0], a.shape()[1], b.shape()[1]);
        let mut out = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    s += a.get(&[i, p]).unwrap() as f64 * b.get(&[p, j]).unwrap() as f64;
                }
                out[i * n + j] = s as f32;
            }
        }
        out
    }

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn matmul_plain_and_transposed() {
        let mut r = Rng::new(1);
        let a = Tensor::randn(&[7, 5], 0.0, 1.0, &mut r);
        let b = Tensor::randn(&[5, 3], 0.0, 1.0, &mut r);
        close(&a.matmul(&b).unwrap().to_vec(), &naive(&a, &b), 1e-5);
        let at = Tensor::randn(&[5, 7], 0.0, 1.0, &mut r);
        close(&at.t().unwrap().matmul(&b).unwrap().to_vec(), &naive(&at.t().unwrap(), &b), 1e-5);
        let bt = Tensor::randn(&[3, 5], 0.0, 1.0, &mut r);
        close(&a.matmul(&bt.t().unwrap()).unwrap().to_vec(), &naive(&a, &bt.t().unwrap()), 1e-5);
        assert!(a.matmul(&a).is_err());
        let e = a.matmul(&a).unwrap_err().to_string();
        assert!(e.contains("matmul") && e.contains("[7, 5]"), "{e}");
    }

    #[test]
    fn batched_with_broadcast() {
        let mut r = Rng::new(2);
        let a = Tensor::randn(&[3, 4, 5], 0.0, 1.0, &mut r);
        let b = Tensor::randn(&[1, 5, 2], 0.0, 1.0, &mut r);
        let c = a.matmul(&b).unwrap();
        assert_eq!(c.shape(), &[3, 4, 2]);
        for i in 0..3 {
            let ai = a.narrow(0, i, 1).unwrap().reshape(&[4, 5]).unwrap();
            let bi = b.reshape(&[5, 2]).unwrap();
            close(&c.narrow(0, i, 1).unwrap().to_vec(), &naive(&ai, &bi), 1e-5);
        }
    }

    #[test]
    fn gemm_accumulates() {
        let a = Tensor::from_vec(vec![1., 2., 3., 4.], &[2, 2]).unwrap();
        let mut c = Tensor::ones(&[2, 2]);
        c.gemm_acc(2.0, &a, &Tensor::eye(2), 3.0).unwrap();
        assert_eq!(c.to_vec(), vec![5., 7., 9., 11.]);
        let mut nan = Tensor::full(&[2, 2], f32::NAN);
        nan.gemm_acc(1.0, &a, &Tensor::eye(2), 0.0).unwrap();
        assert_eq!(nan.to_vec(), vec![1., 2., 3., 4.]);
        assert!(c.gemm_acc(1.0, &a, &Tensor::ones(&[3, 2]), 0.0).is_err());
    }
}
