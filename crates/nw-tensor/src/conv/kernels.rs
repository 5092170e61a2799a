//! The loops under [`super`]: im2col / col2im, a bounds-checked GEMM wrapper
//! over [`crate::gemm::sgemm`] (and matrixmultiply's dgemm for the f64
//! path), and the per-thread scratch buffers. Generic over the element type
//! [`Elem`] the convolution computes in.
//!
//! Layouts (all row-major, one image, no batch axis):
//! - image `x`: `[c_in, h, w]`;
//! - columns `cols`: `[c_in * kh * kw, oh * ow]`, row `(c * kh + ki) * kw + kj`,
//!   column `oy * ow + ox`, holding `x[c, oy*sh - ph + ki*dh, ox*sw - pw + kj*dw]`
//!   or 0 where that position falls in the padding.
//!
//! The rows of group `g` are the contiguous block `g * k_g .. (g + 1) * k_g`
//! with `k_g = c_in / groups * kh * kw`, so a group's columns are a plain
//! sub-matrix and each group is one GEMM.

use std::borrow::Cow;
use std::cell::Cell;
use std::thread::LocalKey;

use super::Geom;

/// The element type a convolution computes in: `f32` (the fast path) or
/// `f64` (operands widened, products and sums in f64, results rounded once).
pub(super) trait Elem: Copy + Default + Send + Sync + std::ops::AddAssign + 'static {
    /// The operand in this type (a borrow for f32, a widened copy for f64).
    fn widen(s: &[f32]) -> Cow<'_, [Self]>;
    /// The results rounded to f32 (a move for f32).
    fn narrow(v: Vec<Self>) -> Vec<f32>;
    /// `C <- A B` (or `C <- A B + C` when `acc`) through the GEMM of this
    /// type; strides as in [`crate::gemm::sgemm`], every index checked
    /// against the slices first by [`gemm`].
    ///
    /// # Safety
    /// Every `ptr + i*rs + j*cs` for in-range `i, j` must lie inside the
    /// slice it indexes.
    unsafe fn gemm_unchecked(
        m: usize,
        k: usize,
        n: usize,
        a: Op<Self>,
        b: Op<Self>,
        acc: bool,
        c: OpMut<Self>,
    );
    /// The thread-local scratch slot of this type.
    fn slot() -> &'static LocalKey<Cell<Vec<Self>>>;
}

/// A read-only GEMM operand: a slice and its (row, column) strides.
pub(super) type Op<'a, E> = (&'a [E], (usize, usize));
/// The written GEMM operand.
pub(super) type OpMut<'a, E> = (&'a mut [E], (usize, usize));

thread_local! {
    /// One reusable f32 buffer per thread for im2col columns (and their gradient).
    static SCRATCH_F32: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    /// The same for the f64 path.
    static SCRATCH_F64: Cell<Vec<f64>> = const { Cell::new(Vec::new()) };
}

impl Elem for f32 {
    fn widen(s: &[f32]) -> Cow<'_, [f32]> {
        Cow::Borrowed(s)
    }
    fn narrow(v: Vec<f32>) -> Vec<f32> {
        v
    }
    unsafe fn gemm_unchecked(m: usize, k: usize, n: usize, a: Op<f32>, b: Op<f32>, acc: bool, c: OpMut<f32>) {
        let beta = if acc { 1.0 } else { 0.0 };
        // SAFETY: forwarded contract; `c` is an exclusive borrow, so it does
        // not alias `a` or `b`.
        unsafe {
            crate::gemm::sgemm(
                m,
                k,
                n,
                1.0,
                a.0.as_ptr(),
                a.1.0 as isize,
                a.1.1 as isize,
                b.0.as_ptr(),
                b.1.0 as isize,
                b.1.1 as isize,
                beta,
                c.0.as_mut_ptr(),
                c.1.0 as isize,
                c.1.1 as isize,
            )
        }
    }
    fn slot() -> &'static LocalKey<Cell<Vec<f32>>> {
        &SCRATCH_F32
    }
}

impl Elem for f64 {
    fn widen(s: &[f32]) -> Cow<'_, [f64]> {
        Cow::Owned(s.iter().map(|&v| v as f64).collect())
    }
    fn narrow(v: Vec<f64>) -> Vec<f32> {
        v.into_iter().map(|v| v as f32).collect()
    }
    unsafe fn gemm_unchecked(m: usize, k: usize, n: usize, a: Op<f64>, b: Op<f64>, acc: bool, c: OpMut<f64>) {
        let beta = if acc { 1.0 } else { 0.0 };
        // SAFETY: forwarded contract (matrixmultiply's dgemm has the same
        // stride contract as sgemm); `c` does not alias `a` or `b`.
        unsafe {
            matrixmultiply::dgemm(
                m,
                k,
                n,
                1.0,
                a.0.as_ptr(),
                a.1.0 as isize,
                a.1.1 as isize,
                b.0.as_ptr(),
                b.1.0 as isize,
                b.1.1 as isize,
                beta,
                c.0.as_mut_ptr(),
                c.1.0 as isize,
                c.1.1 as isize,
            )
        }
    }
    fn slot() -> &'static LocalKey<Cell<Vec<f64>>> {
        &SCRATCH_F64
    }
}

/// `C <- A B`, or `C <- A B + C` when `acc`, with `A: m x k`, `B: k x n`,
/// `C: m x n` given as slices plus row and column strides (in elements).
/// Checks that every element the product touches lies inside its slice, then
/// calls the GEMM of `E` ([`crate::gemm::sgemm`] for f32). With `k == 0`,
/// `C` is zeroed unless `acc`.
pub(super) fn gemm<E: Elem>(m: usize, k: usize, n: usize, a: Op<E>, b: Op<E>, acc: bool, c: OpMut<E>) {
    if m == 0 || n == 0 {
        return;
    }
    // Largest offset an operand of r x cc elements with strides (rs, cs) touches.
    let last = |r: usize, cc: usize, (rs, cs): (usize, usize)| (r - 1) * rs + (cc - 1) * cs;
    assert!(last(m, n, c.1) < c.0.len(), "gemm: C out of bounds");
    if k == 0 {
        if !acc {
            for i in 0..m {
                for j in 0..n {
                    c.0[i * c.1.0 + j * c.1.1] = E::default();
                }
            }
        }
        return;
    }
    assert!(last(m, k, a.1) < a.0.len(), "gemm: A out of bounds");
    assert!(last(k, n, b.1) < b.0.len(), "gemm: B out of bounds");
    // SAFETY: the asserts above show that every `ptr + i*rs + j*cs` for
    // in-range i, j lies inside the corresponding slice.
    unsafe { E::gemm_unchecked(m, k, n, a, b, acc, c) }
}

/// Whether the product `C [m x n] = A B` runs on fewer padded micro-kernel
/// tiles as `C^T = B^T A^T` (an `n x m` product) with the GEMM's tile
/// (`MR x NR`, [`crate::gemm::Kernel::tile`]). Either way each element of `C`
/// is the same sum in the same order (the depth loop and its `kc` blocks do
/// not depend on the orientation), so the choice changes speed, not bits.
/// Example: a 64-channel output of a 14x14 image is `64 x 196`; with 12 x 32
/// tiles that is 6 x 7 tiles (78% used), its transpose 17 x 2 (96%).
pub(super) fn transpose_better(m: usize, n: usize) -> bool {
    let (mr, nr) = crate::gemm::Kernel::detect().tile();
    let area = |m: usize, n: usize| m.div_ceil(mr) * mr * n.div_ceil(nr) * nr;
    area(n, m) < area(m, n)
}

/// `dst [cols, rows] <- src [rows, cols]^T` (both row-major), plus
/// `add[c]` on every element of row `c` of `dst` when given. Walks `src` in
/// blocks of 8 columns so that each read touches one cache line and the 8
/// destination rows are written sequentially.
pub(super) fn transpose_add<E: Elem>(src: &[E], rows: usize, cols: usize, add: Option<&[E]>, dst: &mut [E]) {
    debug_assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    const B: usize = 8;
    let mut c0 = 0;
    while c0 < cols {
        let cb = B.min(cols - c0);
        let mut bias = [E::default(); B];
        if let Some(a) = add {
            bias[..cb].copy_from_slice(&a[c0..c0 + cb]);
        }
        for r in 0..rows {
            let s = &src[r * cols + c0..r * cols + c0 + cb];
            for (q, &v) in s.iter().enumerate() {
                let mut v = v;
                if add.is_some() {
                    v += bias[q];
                }
                dst[(c0 + q) * rows + r] = v;
            }
        }
        c0 += cb;
    }
}

/// Runs `f` on a scratch slice of `len` elements with unspecified contents.
///
/// The buffer is taken out of the thread-local slot while `f` runs, so a
/// nested call on the same thread (rayon may run another task here while this
/// one waits inside a parallel GEMM) gets a fresh buffer instead of a shared
/// one. Each thread keeps the largest buffer it has needed.
pub(super) fn with_scratch<E: Elem, R>(len: usize, f: impl FnOnce(&mut [E]) -> R) -> R {
    let mut v = E::slot().with(Cell::take);
    if v.len() < len {
        v.resize(len, E::default());
    }
    let r = f(&mut v[..len]);
    E::slot().with(|s| {
        let other = s.take();
        s.set(if other.len() > v.len() { other } else { v });
    });
    r
}

/// The output positions `lo..hi` (of `out` along one axis) whose input
/// coordinate `o * stride + koff - pad` lies in `0..size`.
fn valid_range(koff: usize, pad: usize, stride: usize, size: usize, out: usize) -> (usize, usize) {
    let lo = if koff >= pad { 0 } else { (pad - koff).div_ceil(stride) };
    let hi = if size + pad > koff { (size + pad - koff).div_ceil(stride) } else { 0 };
    let hi = hi.min(out);
    (lo.min(hi), hi)
}

/// Fills `cols` (`[c_in*kh*kw, oh*ow]`) from one image `x` (`[c_in, h, w]`).
/// Every element of `cols` is written.
pub(super) fn im2col<E: Elem>(g: &Geom, x: &[E], cols: &mut [E]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    debug_assert!(x.len() >= g.c_in * hw && cols.len() >= g.c_in * g.kh * g.kw * ohw);
    let mut r = 0;
    for c in 0..g.c_in {
        let xc = &x[c * hw..(c + 1) * hw];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &mut cols[r * ohw..(r + 1) * ohw];
                let (lo, hi) = valid_range(kj * g.dw, g.pw, g.sw, g.w, g.ow);
                for oy in 0..g.oh {
                    let dst = &mut row[oy * g.ow..(oy + 1) * g.ow];
                    let iy = (oy * g.sh + ki * g.dh).wrapping_sub(g.ph);
                    if iy >= g.h {
                        // Covers iy < 0 too: the subtraction wrapped to a huge value.
                        dst.fill(E::default());
                        continue;
                    }
                    let src = &xc[iy * g.w..(iy + 1) * g.w];
                    dst[..lo].fill(E::default());
                    dst[hi..].fill(E::default());
                    if lo == hi {
                        continue;
                    }
                    // Input column of output column ox: ox*sw + kj*dw - pw (in range for lo..hi).
                    let ix0 = (lo * g.sw + kj * g.dw).wrapping_sub(g.pw);
                    if g.sw == 1 {
                        dst[lo..hi].copy_from_slice(&src[ix0..ix0 + (hi - lo)]);
                    } else {
                        for (j, d) in dst[lo..hi].iter_mut().enumerate() {
                            *d = src[ix0 + j * g.sw];
                        }
                    }
                }
                r += 1;
            }
        }
    }
}

/// The adjoint of [`im2col`]: `dx[c, iy, ix] += dcols[row, col]` for every
/// column element that [`im2col`] read from `x[c, iy, ix]`; elements that came
/// from padding are dropped. Rows and columns are visited in index order, so
/// overlapping windows accumulate in a fixed order.
pub(super) fn col2im<E: Elem>(g: &Geom, dcols: &[E], dx: &mut [E]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    debug_assert!(dx.len() >= g.c_in * hw && dcols.len() >= g.c_in * g.kh * g.kw * ohw);
    let mut r = 0;
    for c in 0..g.c_in {
        let dxc = &mut dx[c * hw..(c + 1) * hw];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let row = &dcols[r * ohw..(r + 1) * ohw];
                let (lo, hi) = valid_range(kj * g.dw, g.pw, g.sw, g.w, g.ow);
                for oy in 0..g.oh {
                    let iy = (oy * g.sh + ki * g.dh).wrapping_sub(g.ph);
                    if iy >= g.h || lo == hi {
                        continue;
                    }
                    let src = &row[oy * g.ow + lo..oy * g.ow + hi];
                    let dst = &mut dxc[iy * g.w..(iy + 1) * g.w];
                    let ix0 = (lo * g.sw + kj * g.dw).wrapping_sub(g.pw);
                    if g.sw == 1 {
                        for (d, s) in dst[ix0..ix0 + (hi - lo)].iter_mut().zip(src) {
                            *d += *s;
                        }
                    } else {
                        for (j, s) in src.iter().enumerate() {
                            dst[ix0 + j * g.sw] += *s;
                        }
                    }
                }
                r += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_range_matches_brute_force() {
        for koff in 0..5 {
            for pad in 0..3 {
                for stride in 1..4 {
                    for size in 1..7 {
                        let out = 6;
                        let want: Vec<usize> = (0..out)
                            .filter(|&o| {
                                let i = (o * stride + koff) as isize - pad as isize;
                                i >= 0 && (i as usize) < size
                            })
                            .collect();
                        let (lo, hi) = valid_range(koff, pad, stride, size, out);
                        assert_eq!((lo..hi).collect::<Vec<_>>(), want, "{koff} {pad} {stride} {size}");
                    }
                }
            }
        }
    }

    #[test]
    fn scratch_nests_without_sharing() {
        let outer = with_scratch(4, |a: &mut [f32]| {
            a.fill(1.0);
            let inner = with_scratch(4, |b: &mut [f32]| {
                b.fill(2.0);
                b.iter().sum::<f32>()
            });
            (a.iter().sum::<f32>(), inner)
        });
        assert_eq!(outer, (4.0, 8.0));
    }
}
