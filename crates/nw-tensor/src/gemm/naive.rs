//! The naive reference GEMM: three loops, f64 accumulation. Slow and simple
//! enough to check by eye; the tests compare every kernel against it.

/// `C <- alpha A B + beta C` by the textbook triple loop, accumulating
/// `sum_p A[i, p] B[p, j]` in f64 and rounding once to f32 at the end
/// (`alpha`, `beta` and the final update also in f64). Same arguments and
/// `beta == 0` rule (C not read) as [`sgemm`](super::sgemm); unlike it, A and
/// B are read even when `alpha == 0`.
///
/// # Safety
/// As for [`sgemm`](super::sgemm).
pub unsafe fn sgemm_naive(
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
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                // SAFETY: (i, p) and (p, j) are in range of A and B.
                let (x, y) = unsafe {
                    (
                        *a.offset(i as isize * rsa + p as isize * csa),
                        *b.offset(p as isize * rsb + j as isize * csb),
                    )
                };
                s += x as f64 * y as f64;
            }
            // SAFETY: (i, j) is in range of C.
            unsafe {
                let q = c.offset(i as isize * rsc + j as isize * csc);
                let old = if beta == 0.0 { 0.0 } else { beta as f64 * *q as f64 };
                *q = (alpha as f64 * s + old) as f32;
            }
        }
    }
}
