//! Packing: copies a block of A or B into contiguous micro-panels in the
//! order the micro-kernel reads them.
//!
//! A block of A (`mc x kc`) becomes `ceil(mc / MR)` panels; panel `r` holds
//! `A[r*MR + i, p]` at `p * MR + i`. A block of B (`kc x nc`) becomes
//! `ceil(nc / NR)` panels; panel `s` holds `B[p, s*NR + j]` at `p * NR + j`.
//! Rows (columns) past the edge of the block are zero, so the micro-kernel
//! always runs a full tile and edge tiles cost no special arithmetic.
//!
//! Both are the same operation on a "panel of `W` lines of depth `kc`": for A
//! the lines are rows (line stride `rsa`, depth stride `csa`), for B they are
//! columns (line stride `csb`, depth stride `rsb`).

/// Packs the `mc x kc` block of A at `a` into `ceil(mc / mr)` panels of
/// `mr x kc` in `out`.
///
/// # Safety
/// `a + i * rsa + p * csa` is readable for `i < mc`, `p < kc`; `out` holds at
/// least `ceil(mc / mr) * mr * kc` floats.
pub(crate) unsafe fn pack_a(
    mr: usize,
    kc: usize,
    mc: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    out: &mut [f32],
) {
    // SAFETY: forwarded.
    unsafe { pack(mr, kc, mc, a, rsa, csa, out) }
}

/// Packs the `kc x nc` block of B at `b` into `ceil(nc / nr)` panels of
/// `kc x nr` in `out`.
///
/// # Safety
/// `b + p * rsb + j * csb` is readable for `p < kc`, `j < nc`; `out` holds at
/// least `ceil(nc / nr) * nr * kc` floats.
pub(crate) unsafe fn pack_b(
    nr: usize,
    kc: usize,
    nc: usize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    out: &mut [f32],
) {
    // SAFETY: forwarded (lines are B's columns, depth runs down its rows).
    unsafe { pack(nr, kc, nc, b, csb, rsb, out) }
}

/// Packs `lines` lines (stride `ls`) of depth `kc` (stride `ds`) into panels
/// of width `w`, dispatching to a version specialised for the kernel widths.
///
/// # Safety
/// `src + i * ls + p * ds` readable for `i < lines`, `p < kc`; `out` holds
/// `ceil(lines / w) * w * kc` floats.
unsafe fn pack(w: usize, kc: usize, lines: usize, src: *const f32, ls: isize, ds: isize, out: &mut [f32]) {
    // SAFETY: forwarded.
    unsafe {
        match w {
            4 => pack_w::<4>(kc, lines, src, ls, ds, out),
            6 => pack_w::<6>(kc, lines, src, ls, ds, out),
            8 => pack_w::<8>(kc, lines, src, ls, ds, out),
            12 => pack_w::<12>(kc, lines, src, ls, ds, out),
            16 => pack_w::<16>(kc, lines, src, ls, ds, out),
            32 => pack_w::<32>(kc, lines, src, ls, ds, out),
            _ => unreachable!("no micro-kernel has a tile side of {w}"),
        }
    }
}

/// [`pack`] for a compile-time panel width `W`.
///
/// # Safety
/// As for [`pack`].
unsafe fn pack_w<const W: usize>(
    kc: usize,
    lines: usize,
    src: *const f32,
    ls: isize,
    ds: isize,
    out: &mut [f32],
) {
    let panels = lines.div_ceil(W);
    assert!(out.len() >= panels * W * kc, "packing buffer too small");
    for panel in 0..panels {
        let l0 = panel * W;
        let width = W.min(lines - l0);
        let dst = &mut out[panel * W * kc..(panel + 1) * W * kc];
        // SAFETY: line l0 is in range (l0 < lines).
        let s = unsafe { src.offset(l0 as isize * ls) };
        if width == W && ls == 1 {
            // Lines adjacent in memory: each depth step is one contiguous copy.
            for (p, d) in dst.chunks_exact_mut(W).enumerate() {
                // SAFETY: elements p*ds .. p*ds + W of this panel are in range.
                let row = unsafe { std::slice::from_raw_parts(s.offset(p as isize * ds), W) };
                d.copy_from_slice(row);
            }
        } else if cfg!(target_arch = "x86_64") && width == W && ds == 1 && W >= 4 {
            // Each line contiguous in depth (row-major A, transposed B): SSE
            // 4 x 4 transposes of the first W / 4 * 4 lines (all of them
            // but 2 of the AVX2 kernel's 6), those last lines 4 depths at a
            // time, then the last kc % 4 depths one by one.
            let full = kc / 4 * 4;
            let w4 = W / 4 * 4;
            #[cfg(target_arch = "x86_64")]
            for p0 in (0..full).step_by(4) {
                for i0 in (0..w4).step_by(4) {
                    // SAFETY: lines i0..i0+4 <= w4 <= W = width and depths
                    // p0..p0+4 <= kc are in range; the destination rows
                    // p0..p0+4 of this panel hold W floats each.
                    unsafe {
                        transpose4x4(s.offset(i0 as isize * ls + p0 as isize), ls, &mut dst[p0 * W + i0..], W)
                    };
                }
                for i in w4..W {
                    // SAFETY: line i < width, depths p0..p0+4 <= kc are in range.
                    let line =
                        unsafe { std::slice::from_raw_parts(s.offset(i as isize * ls + p0 as isize), 4) };
                    for (q, &v) in line.iter().enumerate() {
                        dst[(p0 + q) * W + i] = v;
                    }
                }
            }
            for p in full..kc {
                for i in 0..W {
                    // SAFETY: line i, depth p is in range.
                    dst[p * W + i] = unsafe { *s.offset(i as isize * ls + p as isize) };
                }
            }
        } else if width == W && ds == 1 {
            // Each line contiguous in depth: transpose in 8-deep chunks so the
            // reads stay sequential and the writes fill whole panel rows.
            let full = kc / 8 * 8;
            for p0 in (0..full).step_by(8) {
                let d = &mut dst[p0 * W..(p0 + 8) * W];
                for i in 0..W {
                    // SAFETY: line i, depths p0..p0+8 are in range.
                    let line =
                        unsafe { std::slice::from_raw_parts(s.offset(i as isize * ls + p0 as isize), 8) };
                    for q in 0..8 {
                        d[q * W + i] = line[q];
                    }
                }
            }
            for p in full..kc {
                for i in 0..W {
                    // SAFETY: line i, depth p is in range.
                    dst[p * W + i] = unsafe { *s.offset(i as isize * ls + p as isize) };
                }
            }
        } else {
            for p in 0..kc {
                let d = &mut dst[p * W..(p + 1) * W];
                for i in 0..width {
                    // SAFETY: line l0 + i < lines and depth p < kc are in range.
                    d[i] = unsafe { *s.offset(i as isize * ls + p as isize * ds) };
                }
                d[width..].fill(0.0);
            }
        }
    }
}

/// Transposes the 4 x 4 block of 4 lines (stride `ls`) by 4 contiguous
/// depths at `src` into `dst[q * w + i]` (depth `q`, line `i`).
///
/// # Safety
/// `src + i * ls + q` is readable for `i, q < 4`; `dst` holds `3 * w + 4`
/// floats.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn transpose4x4(src: *const f32, ls: isize, dst: &mut [f32], w: usize) {
    use std::arch::x86_64::*;
    assert!(dst.len() >= 3 * w + 4);
    // SAFETY: four 4-float loads inside the block and four 4-float stores
    // inside `dst` (length checked above); SSE is part of x86-64.
    unsafe {
        let r0 = _mm_loadu_ps(src);
        let r1 = _mm_loadu_ps(src.offset(ls));
        let r2 = _mm_loadu_ps(src.offset(2 * ls));
        let r3 = _mm_loadu_ps(src.offset(3 * ls));
        let t0 = _mm_unpacklo_ps(r0, r1); // r0[0] r1[0] r0[1] r1[1]
        let t1 = _mm_unpacklo_ps(r2, r3); // r2[0] r3[0] r2[1] r3[1]
        let t2 = _mm_unpackhi_ps(r0, r1); // r0[2] r1[2] r0[3] r1[3]
        let t3 = _mm_unpackhi_ps(r2, r3); // r2[2] r3[2] r2[3] r3[3]
        let d = dst.as_mut_ptr();
        _mm_storeu_ps(d, _mm_movelh_ps(t0, t1));
        _mm_storeu_ps(d.add(w), _mm_movehl_ps(t1, t0));
        _mm_storeu_ps(d.add(2 * w), _mm_movelh_ps(t2, t3));
        _mm_storeu_ps(d.add(3 * w), _mm_movehl_ps(t3, t2));
    }
}
