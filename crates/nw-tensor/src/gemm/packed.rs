//! A product with a pre-packed B on the calling thread: [`gemm_packed_serial`].
//!
//! A recurrent layer multiplies by the same `W_hh` at every time step, in
//! forward and in backward, and splits its batch rows over threads itself
//! (each thread keeps a fixed block of rows for the whole sequence). It packs
//! `W_hh^T` once as a [`PackedB`] and calls [`gemm_packed_serial`] per step:
//! that packs only `A` and runs **on the calling thread** (no rayon, so no
//! nested fork-join inside the caller's parallel loop).
//!
//! # Loops and bits
//! Per k-block of the pack (the blocking an unpacked call uses): `ic` over
//! `MC`-row blocks of `A` (packed), then `jr` over the B panels and `ir` over
//! the A panels, one `MR x NR` micro-kernel tile each; the first k-block
//! applies `beta`, later ones add. Every element of `C` therefore sees the
//! operations of the blocked path of [`sgemm_with`](super::sgemm_with) with
//! the same kernel, in the same order: the result is bit-identical to it
//! (and to [`gemm_packed`](super::gemm_packed)) except for products an
//! unpacked call sends to its dot-product path (`m <= GEMV_MAX_M`), and does
//! not depend on how the caller splits the rows of `C`. There is no `NC`
//! blocking: the whole pack is one block, so it is meant for a `B` that fits
//! in the L2 cache (a 128 x 512 one is 256 KiB).

use std::cell::Cell;

use super::driver::MicroKernel;
use super::pack::pack_a;
use super::{Kernel, MatRef, PackedB, kernel_scalar};
use crate::error::{Result, TensorError};

thread_local! {
    /// Per-thread buffer for packed blocks of A, reused across calls (taken
    /// out while in use, so a nested call allocates its own).
    static A_BUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// `C <- alpha A B + beta C` with `B` packed once ([`PackedB`]), `C` the
/// row-major `a.rows x b.n()` matrix in `c`, on the calling thread (see
/// the [module docs](self) for the loops and why the bits equal `sgemm`'s).
///
/// # Errors
/// A shape mismatch (`a.cols != b.k()`, a wrong `c` length) or an `a` that
/// does not fit its slice.
///
/// ```
/// use nw_tensor::gemm::{MatRef, PackedB, gemm_packed_serial};
/// let w = [1.0, 2.0, 3.0, 4.0]; // [[1, 2], [3, 4]]
/// let packed = PackedB::new(MatRef::transposed(&w, 2, 2)).unwrap(); // B = W^T
/// let mut c = [0.0; 2];
/// // c <- [1, 1] W^T
/// gemm_packed_serial(1.0, MatRef::row_major(&[1.0, 1.0], 1, 2), &packed, 0.0, &mut c).unwrap();
/// assert_eq!(c, [3.0, 7.0]);
/// ```
pub fn gemm_packed_serial(alpha: f32, a: MatRef<'_>, b: &PackedB, beta: f32, c: &mut [f32]) -> Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.n);
    let mismatch =
        |lhs: Vec<usize>, rhs: Vec<usize>| TensorError::ShapeMismatch { op: "gemm_packed_serial", lhs, rhs };
    if b.k != k {
        return Err(mismatch(vec![m, k], vec![b.k, n]));
    }
    if !a.fits() {
        return Err(mismatch(vec![m, k], vec![a.data.len()]));
    }
    if m.checked_mul(n) != Some(c.len()) {
        return Err(mismatch(vec![m, n], vec![c.len()]));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 || alpha == 0.0 {
        // C <- beta C (alpha A B is zero or empty)
        for x in c.iter_mut() {
            *x = if beta == 0.0 { 0.0 } else { beta * *x };
        }
        return Ok(());
    }
    // SAFETY: `fits` checked A, `b` is a consistent k x n packing for
    // `b.kernel` (available: checked when packed), and C is the exclusively
    // borrowed row-major m x n slice.
    unsafe {
        match b.kernel {
            Kernel::Scalar => run::<kernel_scalar::Scalar>(alpha, a, b, beta, c),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => run::<super::kernel_x86::Avx2>(alpha, a, b, beta, c),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => run::<super::kernel_x86::Avx512>(alpha, a, b, beta, c),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2 | Kernel::Avx512 => unreachable!("checked by is_available"),
        }
    }
    Ok(())
}

/// The loops of [`gemm_packed_serial`] for kernel `K`.
///
/// # Safety
/// As checked by [`gemm_packed_serial`]: `m, n, k > 0`, A fits its slice, `b` was
/// packed for `K` (whose CPU features are present), `c` holds `m * n` floats.
unsafe fn run<K: MicroKernel>(alpha: f32, a: MatRef<'_>, b: &PackedB, beta: f32, c: &mut [f32]) {
    debug_assert_eq!(b.npad % K::NR, 0);
    let (m, k, n) = (a.rows, a.cols, b.n);
    let kc_len = b.blocking.kc(k);
    let panels = b.panels();
    let mc_max = (b.blocking.mc / K::MR).max(1) * K::MR;
    let panels_n = n.div_ceil(K::NR);
    let a_len = m.min(mc_max).div_ceil(K::MR) * K::MR * kc_len;
    let mut abuf = A_BUF.take();
    if abuf.len() < a_len {
        abuf = vec![0.0; a_len];
    }
    let (rsa, csa) = (a.row_stride as isize, a.col_stride as isize);
    for (block, pc) in (0..k).step_by(kc_len).enumerate() {
        let kc = kc_len.min(k - pc);
        let beta = if block == 0 { beta } else { 1.0 };
        let bblock = &panels[pc * panels_n * K::NR..(pc + kc) * panels_n * K::NR];
        for ic in (0..m).step_by(mc_max) {
            let mc = mc_max.min(m - ic);
            // SAFETY: rows ic..ic+mc and columns pc..pc+kc of A are in range
            // (A fits its slice); `abuf` holds ceil(mc / MR) * MR * kc floats.
            unsafe {
                let ap = a.data.as_ptr().offset(ic as isize * rsa + pc as isize * csa);
                pack_a(K::MR, kc, mc, ap, rsa, csa, &mut abuf);
            }
            for jr in (0..n).step_by(K::NR) {
                let cols = K::NR.min(n - jr);
                let bp = bblock[(jr / K::NR) * K::NR * kc..].as_ptr();
                for ir in (0..mc).step_by(K::MR) {
                    let rows = K::MR.min(mc - ir);
                    let ap = abuf[(ir / K::MR) * K::MR * kc..].as_ptr();
                    // SAFETY: the panels hold kc * MR and kc * NR floats; the
                    // rows x cols tile at (ic + ir, jr) lies inside the m x n C.
                    unsafe {
                        let cp = c.as_mut_ptr().add((ic + ir) * n + jr);
                        K::tile(kc, alpha, ap, bp, beta, cp, n as isize, 1, rows, cols);
                    }
                }
            }
        }
    }
    A_BUF.set(abuf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::sgemm_with;

    fn data(n: usize, s: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32 * s).sin() * 1.7) + 0.1).collect()
    }

    /// Bit-identical to `sgemm_with` on every kernel, for shapes with
    /// several k-blocks, edge tiles and both B layouts, with any split of
    /// the rows of C among callers.
    #[test]
    fn same_bits_as_sgemm_and_any_row_split() {
        for kernel in Kernel::available() {
            for &(m, k, n) in &[(64, 128, 512), (64, 512, 128), (13, 300, 37), (7, 1, 5), (33, 257, 70)] {
                let a = data(m * k, 0.37);
                let w = data(n * k, 0.11);
                let c0 = data(m * n, 0.05);
                for transposed in [false, true] {
                    let bm =
                        if transposed { MatRef::transposed(&w, k, n) } else { MatRef::row_major(&w, k, n) };
                    let packed = PackedB::with_kernel(kernel, bm).unwrap();
                    for beta in [0.0, 1.0, 0.5] {
                        let mut want = c0.clone();
                        // SAFETY: A m x k, B k x n and C m x n are in range of their vectors.
                        unsafe {
                            sgemm_with(
                                kernel,
                                m,
                                k,
                                n,
                                1.5,
                                a.as_ptr(),
                                k as isize,
                                1,
                                w.as_ptr(),
                                bm.row_stride as isize,
                                bm.col_stride as isize,
                                beta,
                                want.as_mut_ptr(),
                                n as isize,
                                1,
                            )
                        };
                        let mut got = c0.clone();
                        gemm_packed_serial(1.5, MatRef::row_major(&a, m, k), &packed, beta, &mut got)
                            .unwrap();
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        if m > crate::gemm::GEMV_MAX_M {
                            assert_eq!(bits(&got), bits(&want), "{kernel:?} {m}x{k}x{n} beta {beta}");
                        }
                        // rows of C in two uneven blocks: the same bits
                        let cut = m / 3;
                        let mut split = c0.clone();
                        let (top, bottom) = split.split_at_mut(cut * n);
                        gemm_packed_serial(1.5, MatRef::row_major(&a[..cut * k], cut, k), &packed, beta, top)
                            .unwrap();
                        gemm_packed_serial(
                            1.5,
                            MatRef::row_major(&a[cut * k..], m - cut, k),
                            &packed,
                            beta,
                            bottom,
                        )
                        .unwrap();
                        assert_eq!(bits(&split), bits(&got), "{kernel:?} {m}x{k}x{n} split");
                    }
                }
            }
        }
    }

    #[test]
    fn shape_errors_not_panics() {
        let w = data(12, 0.3);
        let p = PackedB::new(MatRef::row_major(&w, 3, 4)).unwrap();
        assert_eq!((p.k(), p.n()), (3, 4));
        let a = data(6, 0.2);
        let mut c = vec![0.0; 8];
        assert!(gemm_packed_serial(1.0, MatRef::row_major(&a, 2, 3), &p, 0.0, &mut c).is_ok());
        // K mismatch, short A, wrong C, B outside its slice
        assert!(gemm_packed_serial(1.0, MatRef::row_major(&a, 3, 2), &p, 0.0, &mut c[..6]).is_err());
        assert!(gemm_packed_serial(1.0, MatRef::row_major(&a[1..], 2, 3), &p, 0.0, &mut c).is_err());
        assert!(gemm_packed_serial(1.0, MatRef::row_major(&a, 2, 3), &p, 0.0, &mut c[1..]).is_err());
        assert!(PackedB::new(MatRef::row_major(&w, 4, 4)).is_err());
        // k = 0: C <- beta C
        let e = PackedB::new(MatRef::row_major(&[], 0, 4)).unwrap();
        let mut c = vec![2.0; 8];
        gemm_packed_serial(1.0, MatRef::row_major(&[], 2, 0), &e, 0.5, &mut c).unwrap();
        assert!(c.iter().all(|&v| v == 1.0));
    }
}
