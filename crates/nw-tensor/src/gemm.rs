//! Single-precision GEMM: `C <- alpha A B + beta C` over strided operands.
//!
//! This is the seam the packed SIMD kernels plug into; the current body
//! delegates to `matrixmultiply`, which is also kept as the test reference.

/// `C <- alpha A B + beta C` with `A: m x k`, `B: k x n`, `C: m x n`, each
/// given by a pointer and its row and column strides in elements (so a
/// transposed operand is just swapped strides). With `beta == 0`, `C` is
/// written without being read.
///
/// # Safety
/// Every `ptr + i * rs + j * cs` for in-range `i, j` must be valid to read
/// (A, B) or write (C), and C must not alias A or B.
pub unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    // SAFETY: forwarded contract, identical to matrixmultiply::sgemm's.
    unsafe { matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
}
