//! x86-64 micro-kernels: AVX-512F (12 x 32) and AVX2+FMA (6 x 16).
//!
//! Both keep the whole C tile in registers, load one packed row of the B
//! micro-panel per depth step (`NR / lanes` vector loads), broadcast each of
//! the `MR` packed A values of that step and issue `MR * NR / lanes` fused
//! multiply-adds. The accumulation order over depth is the same in both, so
//! for equal `kc` they produce the same bits. Stores: contiguous rows
//! (`csc == 1`) use vector loads and stores (AVX-512: masked for a partial
//! tile); any other C layout goes through the scalar `store_tile`, which
//! rounds identically.

use std::arch::x86_64::*;

use super::driver::{MicroKernel, store_tile};

/// AVX-512F micro-kernel, 12 x 32 tiles: 24 zmm accumulators, 2 zmm for the
/// B row, and the A values as broadcast memory operands of the FMAs.
pub(crate) struct Avx512;

/// AVX2+FMA micro-kernel, 6 x 16 tiles: 12 ymm accumulators, 2 for the B
/// row, 1 for the broadcast A value (15 of the 16 ymm registers).
pub(crate) struct Avx2;

const MR512: usize = 12;
const NR512: usize = 32;
const MR256: usize = 6;
const NR256: usize = 16;

impl MicroKernel for Avx512 {
    const MR: usize = MR512;
    const NR: usize = NR512;

    #[inline]
    unsafe fn tile(
        kc: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
        rows: usize,
        cols: usize,
    ) {
        // SAFETY: forwarded tile contract; the caller checked avx512f.
        unsafe { tile_avx512(kc, alpha, a, b, beta, c, rsc, csc, rows, cols) }
    }
}

impl MicroKernel for Avx2 {
    const MR: usize = MR256;
    const NR: usize = NR256;

    #[inline]
    unsafe fn tile(
        kc: usize,
        alpha: f32,
        a: *const f32,
        b: *const f32,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
        rows: usize,
        cols: usize,
    ) {
        // SAFETY: forwarded tile contract; the caller checked avx2 and fma.
        unsafe { tile_avx2(kc, alpha, a, b, beta, c, rsc, csc, rows, cols) }
    }
}

/// Lane mask selecting the first `n` (saturating at 16) of 16 lanes.
#[inline(always)]
fn lane_mask(n: usize) -> __mmask16 {
    if n >= 16 { 0xffff } else { ((1u32 << n) - 1) as __mmask16 }
}

/// See [`MicroKernel::tile`].
///
/// # Safety
/// As for [`MicroKernel::tile`]; the CPU supports AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512(
    kc: usize,
    alpha: f32,
    a: *const f32,
    b: *const f32,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
    rows: usize,
    cols: usize,
) {
    if csc == 1 && beta != 0.0 {
        // Start fetching the C tile now; it is read after the kc loop.
        for i in 0..rows {
            let p = c.wrapping_offset(i as isize * rsc);
            // A prefetch is only a hint: it never faults, whatever address.
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(cols - 1) as *const i8);
        }
    }
    let mut acc = [[_mm512_setzero_ps(); 2]; MR512];
    let (mut ap, mut bp) = (a, b);
    for _ in 0..kc {
        // SAFETY: each depth step reads MR512 floats of the A panel and
        // NR512 of the B panel, kc steps in all (caller).
        unsafe {
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*ap.add(i));
                row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
            }
            ap = ap.add(MR512);
            bp = bp.add(NR512);
        }
    }
    if csc == 1 {
        let va = _mm512_set1_ps(alpha);
        let vb = _mm512_set1_ps(beta);
        let (m0, m1) = (lane_mask(cols), lane_mask(cols.saturating_sub(16)));
        // One row of the tile: 16 columns at `p` under `mask`.
        macro_rules! store_half {
            ($v:expr, $p:expr, $mask:expr) => {{
                let (p, mask) = ($p, $mask);
                let mut v = _mm512_mul_ps(va, $v);
                // SAFETY: the lanes selected by `mask` are columns < cols of a
                // row < rows of the tile; masked-off lanes are neither read
                // nor written (AVX-512 masked accesses suppress their faults).
                unsafe {
                    if mask == 0xffff {
                        if beta == 1.0 {
                            v = _mm512_add_ps(v, _mm512_loadu_ps(p));
                        } else if beta != 0.0 {
                            v = _mm512_add_ps(v, _mm512_mul_ps(vb, _mm512_loadu_ps(p)));
                        }
                        _mm512_storeu_ps(p, v);
                    } else if mask != 0 {
                        if beta == 1.0 {
                            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, p));
                        } else if beta != 0.0 {
                            v = _mm512_add_ps(v, _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(mask, p)));
                        }
                        _mm512_mask_storeu_ps(p, mask, v);
                    }
                }
            }};
        }
        // Rows unrolled with constant indices so `acc` stays in registers.
        macro_rules! store_rows {
            ($($i:literal)*) => {$(
                if $i < rows {
                    let p = c.wrapping_offset($i * rsc);
                    store_half!(acc[$i][0], p, m0);
                    store_half!(acc[$i][1], p.wrapping_add(16), m1);
                }
            )*};
        }
        store_rows!(0 1 2 3 4 5 6 7 8 9 10 11);
    } else {
        let mut tmp = [0.0f32; MR512 * NR512];
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: tmp has NR512 floats per row.
            unsafe {
                _mm512_storeu_ps(tmp.as_mut_ptr().add(i * NR512), row[0]);
                _mm512_storeu_ps(tmp.as_mut_ptr().add(i * NR512 + 16), row[1]);
            }
        }
        // SAFETY: forwarded tile contract.
        unsafe { store_tile(&tmp, NR512, alpha, beta, c, rsc, csc, rows, cols) };
    }
}

/// See [`MicroKernel::tile`].
///
/// # Safety
/// As for [`MicroKernel::tile`]; the CPU supports AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(
    kc: usize,
    alpha: f32,
    a: *const f32,
    b: *const f32,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
    rows: usize,
    cols: usize,
) {
    let mut acc = [[_mm256_setzero_ps(); 2]; MR256];
    let (mut ap, mut bp) = (a, b);
    for _ in 0..kc {
        // SAFETY: each depth step reads MR256 floats of the A panel and
        // NR256 of the B panel, kc steps in all (caller).
        unsafe {
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*ap.add(i));
                row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
            }
            ap = ap.add(MR256);
            bp = bp.add(NR256);
        }
    }
    if csc == 1 && cols == NR256 {
        let va = _mm256_set1_ps(alpha);
        let vb = _mm256_set1_ps(beta);
        macro_rules! store_half {
            ($v:expr, $p:expr) => {{
                let p = $p;
                let mut v = _mm256_mul_ps(va, $v);
                // SAFETY: a row < rows of the tile, all NR256 columns in range.
                unsafe {
                    if beta == 1.0 {
                        v = _mm256_add_ps(v, _mm256_loadu_ps(p));
                    } else if beta != 0.0 {
                        v = _mm256_add_ps(v, _mm256_mul_ps(vb, _mm256_loadu_ps(p)));
                    }
                    _mm256_storeu_ps(p, v);
                }
            }};
        }
        // Rows unrolled with constant indices so `acc` stays in registers.
        macro_rules! store_rows {
            ($($i:literal)*) => {$(
                if $i < rows {
                    let p = c.wrapping_offset($i * rsc);
                    store_half!(acc[$i][0], p);
                    store_half!(acc[$i][1], p.wrapping_add(8));
                }
            )*};
        }
        store_rows!(0 1 2 3 4 5);
    } else {
        let mut tmp = [0.0f32; MR256 * NR256];
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: tmp has NR256 floats per row.
            unsafe {
                _mm256_storeu_ps(tmp.as_mut_ptr().add(i * NR256), row[0]);
                _mm256_storeu_ps(tmp.as_mut_ptr().add(i * NR256 + 8), row[1]);
            }
        }
        // SAFETY: forwarded tile contract.
        unsafe { store_tile(&tmp, NR256, alpha, beta, c, rsc, csc, rows, cols) };
    }
}
