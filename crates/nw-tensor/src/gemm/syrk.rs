//! The symmetric rank-k update `C <- alpha X X^T + beta C` at half the work.
//!
//! `X X^T` is symmetric, so only the tiles on and above the diagonal need
//! computing: C is cut into strips of [`STRIP`] rows, strip `s` (rows
//! `i0..i1`) runs the blocked loops on columns `i0..m` only, and the strictly
//! lower triangle is then copied from the upper one. `X^T` is packed once
//! ([`PackedB`]) and every strip reads its columns from that pack, so the
//! strips cost no more packing than one full product. For `m = 1024` this
//! computes 56% of the tiles.
//!
//! # Same bits as the full product
//! Each computed element sees the operations the full product
//! `gemm_slices(alpha, X, X^T, beta, C)` gives it (same kernel, k-blocks
//! and order; a pre-packed B and a sub-problem change neither). The
//! mirrored ones are equal too: element `(j, i)` of the full product sums
//! `x_jp * x_ip` where `(i, j)` sums `x_ip * x_jp`, in the same order, and
//! a product (or a fused multiply-add) does not depend on the order of its
//! factors. So for a symmetric C the result is bit-identical to the full
//! product on any thread count, and it is exactly symmetric. For a
//! bitwise-symmetric X (a Gram matrix), `X X^T` is also `X X`, which is
//! how Muon's Newton-Schulz iteration uses it.

use rayon::prelude::*;

use super::driver::Blocking;
use super::prepacked::PackedB;
use super::slices::MatRef;
use super::{Kernel, Operands, PackedRef, run_kernel};
use crate::error::{Result, TensorError};

/// Rows of C per strip (a multiple of every kernel's `NR`, so each strip's
/// first column starts a packed panel).
pub const STRIP: usize = 128;

/// Side of the square blocks the lower triangle is copied in.
const MIRROR_BLOCK: usize = 64;

/// `C <- alpha X X^T + beta C` with `X: m x k` and `C` the row-major
/// `m x m` matrix in `c` (exactly that many elements). Only the upper
/// triangle of C (`j >= i`) is read (with `beta != 0`); all of C is
/// written, exactly symmetric. Same kernels, threads and
/// bit-reproducibility as [`gemm_slices`](super::gemm_slices), and the same bits as
/// [`gemm_slices`](super::gemm_slices)`(alpha, x, x^T, beta, c)` for a symmetric C (see the
/// [module docs](self)), at a little more than half its work for large `m`.
///
/// ```
/// use nw_tensor::gemm::{MatRef, syrk_slices};
/// let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // [[1, 2, 3], [4, 5, 6]]
/// let mut c = [0.0; 4];
/// syrk_slices(1.0, MatRef::row_major(&x, 2, 3), 0.0, &mut c).unwrap();
/// assert_eq!(c, [14.0, 32.0, 32.0, 77.0]);
/// ```
///
/// # Errors
/// A `c` of the wrong length, or an `x` that does not fit its slice.
pub fn syrk_slices(alpha: f32, x: MatRef<'_>, beta: f32, c: &mut [f32]) -> Result<()> {
    syrk_with(Kernel::detect(), alpha, x, beta, c)
}

/// [`syrk_slices`] on a chosen micro-kernel.
///
/// # Errors
/// As [`syrk_slices`], and when `kernel` is not available on this CPU.
pub fn syrk_with(kernel: Kernel, alpha: f32, x: MatRef<'_>, beta: f32, c: &mut [f32]) -> Result<()> {
    let (m, k) = (x.rows, x.cols);
    let mismatch =
        |lhs: Vec<usize>, rhs: Vec<usize>| TensorError::ShapeMismatch { op: "syrk_slices", lhs, rhs };
    if !x.fits() {
        return Err(mismatch(vec![m, k], vec![x.data.len()]));
    }
    if m.checked_mul(m) != Some(c.len()) {
        return Err(mismatch(vec![m, m], vec![c.len()]));
    }
    if !kernel.is_available() {
        return Err(TensorError::InvalidArgument {
            op: "syrk_slices",
            reason: format!("kernel {kernel:?} is not supported by this CPU"),
        });
    }
    if m == 0 {
        return Ok(());
    }
    // X^T, read in place: B[p][j] = X[j][p].
    let xt = MatRef { data: x.data, rows: k, cols: m, row_stride: x.col_stride, col_stride: x.row_stride };
    if m <= STRIP || k == 0 || alpha == 0.0 {
        // One strip or a degenerate product: the full product on the
        // symmetrised C.
        if beta != 0.0 {
            mirror(c, m);
        }
        full_with(kernel, alpha, x, xt, beta, c);
        return Ok(());
    }
    let packed = PackedB::with_kernel(kernel, xt)?;
    let data = packed.panels().as_ptr();
    let pb = PackedRef { data, npad: packed.npad(), kc: Blocking::DEFAULT.kc(k), col0: 0 };
    for i0 in (0..m).step_by(STRIP) {
        let rows = STRIP.min(m - i0);
        let ops = Operands {
            m: rows,
            k,
            n: m - i0,
            alpha,
            // SAFETY: row i0 < m of X is in range (`fits`).
            a: unsafe { x.data.as_ptr().add(i0 * x.row_stride) },
            rsa: x.row_stride as isize,
            csa: x.col_stride as isize,
            // never read with `pb` set; a valid address
            b: data,
            rsb: 0,
            csb: 0,
            beta,
            // SAFETY: element (i0, i0) of the m x m row-major C.
            c: unsafe { c.as_mut_ptr().add(i0 * m + i0) },
            rsc: m as isize,
            csc: 1,
            pb: Some(PackedRef { col0: i0, ..pb }),
        };
        // SAFETY: A rows i0..i0+rows of X are in range (`fits`); the C block
        // rows i0.., columns i0..m lies inside the exclusive row-major `c`;
        // the panels were packed from X^T for `kernel` with the default
        // blocking, and col0 = i0 is a multiple of NR (STRIP is).
        unsafe { run_kernel(kernel, ops, Blocking::DEFAULT) };
    }
    mirror(c, m);
    Ok(())
}

/// The full product `C <- alpha A B + beta C` on `kernel`, for operands
/// that fit their slices and the exclusive row-major `m x n` C.
fn full_with(kernel: Kernel, alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: &mut [f32]) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    // SAFETY: both operands fit their slices (checked by the caller: B is
    // A's transpose in place); C is the exclusive row-major m x n slice.
    unsafe {
        super::sgemm_with(
            kernel,
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
        )
    };
}

/// Copies the strictly upper triangle of the row-major `m x m` matrix `c`
/// onto the strictly lower one (`c[i][j] <- c[j][i]` for `i > j`), in
/// square blocks, block rows in parallel.
fn mirror(c: &mut [f32], m: usize) {
    const B: usize = MIRROR_BLOCK;
    // Block row `bi` writes rows bi*B.. below the diagonal and reads columns
    // bi*B.. above it: rows 0..(bi+1)*B of those columns, which no block row
    // writes (they are on or above the diagonal).
    let ptr = SendPtr(c.as_mut_ptr());
    (0..m.div_ceil(B)).into_par_iter().for_each(|bi| {
        let p = ptr;
        let (r0, r1) = (bi * B, ((bi + 1) * B).min(m));
        for bj in 0..=bi {
            let (c0, c1) = (bj * B, ((bj + 1) * B).min(m));
            for i in r0..r1 {
                for j in c0..c1.min(i) {
                    // SAFETY: i, j < m; (i, j) with i > j is written only by
                    // this block row, (j, i) with j < i is never written.
                    unsafe { *p.0.add(i * m + j) = *p.0.add(j * m + i) };
                }
            }
        }
    });
}

/// A raw pointer the mirror's block rows share (each writes disjoint rows).
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the block rows of `mirror` write disjoint elements and read only
// elements no one writes.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1) with a spread of exponents.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// A symmetric m x m matrix.
    fn symmetric(m: usize, seed: u64) -> Vec<f32> {
        let v = values(m * m, seed);
        let mut c = vec![0.0; m * m];
        for i in 0..m {
            for j in 0..m {
                c[i * m + j] = if j >= i { v[i * m + j] } else { v[j * m + i] };
            }
        }
        c
    }

    fn full(kernel: Kernel, alpha: f32, x: MatRef<'_>, beta: f32, c: &mut [f32]) {
        let xt = MatRef {
            data: x.data,
            rows: x.cols,
            cols: x.rows,
            row_stride: x.col_stride,
            col_stride: x.row_stride,
        };
        full_with(kernel, alpha, x, xt, beta, c);
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn same_bits_as_the_full_product_on_every_kernel() {
        for kernel in Kernel::available() {
            for &m in &[1, 3, 5, 127, 128, 129, 300, 517] {
                for &k in &[1, 7, 300] {
                    let xs = values(m * k, (m * 31 + k) as u64);
                    for transposed in [false, true] {
                        // The same logical X, stored row-major or as the transpose of a k x m matrix.
                        let x = if transposed {
                            MatRef::transposed(&xs, m, k)
                        } else {
                            MatRef::row_major(&xs, m, k)
                        };
                        for &(alpha, beta) in &[(1.0, 0.0), (-0.75, 1.0), (2.5, -0.5), (0.0, 0.5)] {
                            let c0 = symmetric(m, (m + k) as u64);
                            let mut want = c0.clone();
                            full(kernel, alpha, x, beta, &mut want);
                            let mut got = c0.clone();
                            syrk_with(kernel, alpha, x, beta, &mut got).unwrap();
                            assert_eq!(
                                bits(&got),
                                bits(&want),
                                "{kernel:?} m={m} k={k} transposed={transposed} alpha={alpha} beta={beta}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_strict_lower_triangle_is_never_read() {
        for kernel in Kernel::available() {
            for &m in &[5, 200] {
                let k = 9;
                let xs = values(m * k, 7);
                let x = MatRef::row_major(&xs, m, k);
                let c0 = symmetric(m, 3);
                let mut want = c0.clone();
                full(kernel, 1.5, x, 0.5, &mut want);
                let mut got = c0.clone();
                for i in 0..m {
                    for j in 0..i {
                        got[i * m + j] = f32::NAN;
                    }
                }
                syrk_with(kernel, 1.5, x, 0.5, &mut got).unwrap();
                assert_eq!(bits(&got), bits(&want), "{kernel:?} m={m}");
            }
        }
    }

    #[test]
    fn exactly_symmetric_and_bit_identical_across_threads() {
        let (m, k) = (333, 257);
        let xs = values(m * k, 11);
        let x = MatRef::row_major(&xs, m, k);
        for kernel in Kernel::available() {
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
                let mut c = vec![0.0; m * m];
                pool.install(|| syrk_with(kernel, 1.0, x, 0.0, &mut c)).unwrap();
                c
            };
            let one = run(1);
            for i in 0..m {
                for j in 0..m {
                    assert_eq!(one[i * m + j].to_bits(), one[j * m + i].to_bits());
                }
            }
            for threads in [2, 3] {
                assert_eq!(bits(&run(threads)), bits(&one), "{kernel:?} threads={threads}");
            }
        }
    }

    #[test]
    fn a_gram_matrix_squared_is_its_product_with_itself() {
        // For a bitwise-symmetric A, A A^T is A A: Muon's use.
        let (m, k) = (260, 50);
        let xs = values(m * k, 5);
        let mut a = vec![0.0; m * m];
        syrk_slices(1.0, MatRef::row_major(&xs, m, k), 0.0, &mut a).unwrap();
        let mut want = vec![0.0; m * m];
        crate::gemm::gemm_slices(
            1.0,
            MatRef::row_major(&a, m, m),
            MatRef::row_major(&a, m, m),
            0.0,
            &mut want,
        )
        .unwrap();
        let mut got = vec![0.0; m * m];
        syrk_slices(1.0, MatRef::row_major(&a, m, m), 0.0, &mut got).unwrap();
        assert_eq!(bits(&got), bits(&want));
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let xs = [1.0; 6];
        let mut c = [0.0; 5];
        assert!(syrk_slices(1.0, MatRef::row_major(&xs, 2, 3), 0.0, &mut c).is_err());
        let mut c = [0.0; 4];
        assert!(syrk_slices(1.0, MatRef::row_major(&xs, 2, 4), 0.0, &mut c).is_err());
        let mut empty: [f32; 0] = [];
        syrk_slices(1.0, MatRef::row_major(&[], 0, 3), 0.0, &mut empty).unwrap();
    }
}
