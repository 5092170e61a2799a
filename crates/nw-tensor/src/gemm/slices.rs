//! A safe front end of [`sgemm`](super::sgemm) over borrowed slices, for
//! kernels that keep their matrices in plain buffers (the fused recurrent
//! ops run one small product per time step into reused scratch buffers,
//! where building a [`Tensor`](crate::Tensor) per step would allocate).

use crate::error::{Result, TensorError};

/// A read-only strided matrix over a slice: element `(i, j)` is
/// `data[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Elements between consecutive rows.
    pub row_stride: usize,
    /// Elements between consecutive columns.
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` matrix (the first `rows * cols` elements).
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose of the row-major `cols x rows` matrix in `data`, read
    /// in place: a `rows x cols` view.
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef { data, rows, cols, row_stride: 1, col_stride: rows }
    }

    /// Whether every in-range element lies inside `data`.
    pub(crate) fn fits(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1)
            .checked_mul(self.row_stride)
            .and_then(|r| (self.cols - 1).checked_mul(self.col_stride).and_then(|c| r.checked_add(c)));
        last.is_some_and(|l| l < self.data.len())
            && isize::try_from(self.row_stride).is_ok()
            && isize::try_from(self.col_stride).is_ok()
    }
}

/// `C <- alpha A B + beta C` with `C` the row-major `a.rows x b.cols`
/// matrix in `c` (exactly that many elements). With `beta == 0`, `C` is
/// written without being read. Same kernels, threads and bit-reproducibility
/// as [`sgemm`](super::sgemm): the split is over rows and columns of `C`,
/// never over `K`.
///
/// ```
/// use nw_tensor::gemm::{MatRef, gemm_slices};
/// let a = [1.0, 2.0, 3.0, 4.0]; // [[1, 2], [3, 4]]
/// let mut c = [1.0; 4];
/// // C <- A^T A + C
/// gemm_slices(1.0, MatRef::transposed(&a, 2, 2), MatRef::row_major(&a, 2, 2), 1.0, &mut c).unwrap();
/// assert_eq!(c, [11.0, 15.0, 15.0, 21.0]);
/// ```
pub fn gemm_slices(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &mut [f32]) -> Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let mismatch =
        |lhs: Vec<usize>, rhs: Vec<usize>| TensorError::ShapeMismatch { op: "gemm_slices", lhs, rhs };
    if b.rows != k {
        return Err(mismatch(vec![m, k], vec![b.rows, n]));
    }
    if !a.fits() {
        return Err(mismatch(vec![m, k], vec![a.data.len()]));
    }
    if !b.fits() {
        return Err(mismatch(vec![k, n], vec![b.data.len()]));
    }
    if m.checked_mul(n) != Some(c.len()) {
        return Err(mismatch(vec![m, n], vec![c.len()]));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        // C <- beta C (alpha A B is empty)
        for x in c.iter_mut() {
            *x = if beta == 0.0 { 0.0 } else { beta * *x };
        }
        return Ok(());
    }
    // SAFETY: `fits` checked that every in-range element of A and B lies in
    // its slice (strides fit in isize); C is the exclusively borrowed
    // row-major m x n slice, disjoint from the shared A and B.
    unsafe {
        super::sgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.row_stride as isize,
            a.col_stride as isize,
            b.data.as_ptr(),
            b.row_stride as isize,
            b.col_stride as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn against_naive_and_bounds() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        // C = A B^T with B stored [n, k]
        let mut c = vec![0.5; m * n];
        gemm_slices(2.0, MatRef::row_major(&a, m, k), MatRef::transposed(&b, k, n), 1.0, &mut c).unwrap();
        for i in 0..m {
            for j in 0..n {
                let s: f32 = (0..k).map(|p| a[i * k + p] * b[j * k + p]).sum();
                assert!((c[i * n + j] - (2.0 * s + 0.5)).abs() < 1e-5);
            }
        }
        // too short an operand, a K mismatch, a wrong C: errors, not panics
        assert!(
            gemm_slices(1.0, MatRef::row_major(&a[1..], m, k), MatRef::transposed(&b, k, n), 0.0, &mut c)
                .is_err()
        );
        assert!(
            gemm_slices(1.0, MatRef::row_major(&a, m, k), MatRef::row_major(&b, n, k), 0.0, &mut c).is_err()
        );
        assert!(
            gemm_slices(1.0, MatRef::row_major(&a, m, k), MatRef::transposed(&b, k, n), 0.0, &mut c[1..])
                .is_err()
        );
        // beta = 0 ignores NaN in C
        let mut nan = vec![f32::NAN; m * n];
        gemm_slices(1.0, MatRef::row_major(&a, m, k), MatRef::transposed(&b, k, n), 0.0, &mut nan).unwrap();
        assert!(nan.iter().all(|v| v.is_finite()));
    }
}
