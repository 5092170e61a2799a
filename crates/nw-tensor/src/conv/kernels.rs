//! The loops under [`super`]: im2col / col2im, a bounds-checked GEMM wrapper
//! over [`crate::gemm::sgemm`], and the per-thread scratch buffer.
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

use std::cell::Cell;

use super::Geom;

/// `C <- alpha A B + beta C` with `A: m x k`, `B: k x n`, `C: m x n` given as
/// slices plus row and column strides (in elements, non-negative). Checks that
/// every element the product touches lies inside its slice, then calls
/// [`crate::gemm::sgemm`]. With `k == 0` it scales `C` by `beta` (writing 0
/// when `beta == 0`, like the kernel: `C` is not read then).
pub(super) fn gemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
    (rsc, csc): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    // Largest offset an operand of r x c with strides (rs, cs) touches.
    let last = |r: usize, cc: usize, rs: usize, cs: usize| (r - 1) * rs + (cc - 1) * cs;
    assert!(last(m, n, rsc, csc) < c.len(), "gemm: C out of bounds");
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                let x = &mut c[i * rsc + j * csc];
                *x = if beta == 0.0 { 0.0 } else { beta * *x };
            }
        }
        return;
    }
    assert!(last(m, k, rsa, csa) < a.len(), "gemm: A out of bounds");
    assert!(last(k, n, rsb, csb) < b.len(), "gemm: B out of bounds");
    // SAFETY: the asserts above show that every `ptr + i*rs + j*cs` for
    // in-range i, j lies inside the corresponding slice; `c` is an exclusive
    // borrow, so it cannot alias the shared borrows `a` and `b`.
    unsafe {
        crate::gemm::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            csc as isize,
        );
    }
}

thread_local! {
    /// One reusable buffer per thread for im2col columns (and their gradient).
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` on a scratch slice of `len` elements with unspecified contents.
///
/// The buffer is taken out of the thread-local slot while `f` runs, so a
/// nested call on the same thread (rayon may run another task here while this
/// one waits inside a parallel GEMM) gets a fresh buffer instead of a shared
/// one. Each thread keeps the largest buffer it has needed.
pub(super) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut v = SCRATCH.with(Cell::take);
    if v.len() < len {
        v.resize(len, 0.0);
    }
    let r = f(&mut v[..len]);
    SCRATCH.with(|s| {
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
pub(super) fn im2col(g: &Geom, x: &[f32], cols: &mut [f32]) {
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
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &xc[iy * g.w..(iy + 1) * g.w];
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
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
pub(super) fn col2im(g: &Geom, dcols: &[f32], dx: &mut [f32]) {
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
                            *d += s;
                        }
                    } else {
                        for (j, s) in src.iter().enumerate() {
                            dst[ix0 + j * g.sw] += s;
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
        let outer = with_scratch(4, |a| {
            a.fill(1.0);
            let inner = with_scratch(4, |b| {
                b.fill(2.0);
                b.iter().sum::<f32>()
            });
            (a.iter().sum::<f32>(), inner)
        });
        assert_eq!(outer, (4.0, 8.0));
    }
}
