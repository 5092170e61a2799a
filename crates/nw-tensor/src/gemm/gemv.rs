//! Products with very few rows in dot-product form, without packing.
//!
//! A `1 x k` times `k x n` product (a linear layer's forward at batch 1)
//! through the blocked driver packs all of B and runs a 12-row micro-kernel
//! for one real row: twelve times the arithmetic plus a copy of B. Here, when
//! `m <= GEMV_MAX_M`, each row of A is contiguous (`csa == 1`) and each
//! column of B is contiguous (`rsb == 1`, as `W^T` of a row-major weight
//! `W: [n, k]` is), every element of C is one dot product read straight
//! from the operands:
//!
//! ```text
//! acc[l] = sum over p = l, l + 16, l + 32, ... < k of A[i, p] * B[p, j]   (16 lanes, p ascending)
//! dot    = ((acc[0..8] + acc[8..16]) -> 4 -> 2 -> 1)                     (fixed pairwise tree)
//! C[i, j] <- alpha * dot  (+ C[i, j] if beta == 1, + beta * C[i, j] otherwise; C unread if beta == 0)
//! ```
//!
//! The AVX2 and AVX-512 variants keep the same 16 lanes (two ymm or one zmm
//! per dot product), fuse each multiply-add, zero-fill the tail lanes alike
//! and share the scalar reduction tree, so they give the same bits; the
//! scalar variant rounds each multiply and add separately, as its GEMM
//! micro-kernel does. The summation order differs from the blocked driver's,
//! so a row computed here can differ in the last bits from the same row in a
//! product of more than `GEMV_MAX_M` rows.
//!
//! Threads: columns are cut into fixed chunks of [`CHUNK_N`] outputs; each
//! output is computed by one thread from its inputs alone, so the result
//! does not depend on the thread count. Products under
//! [`GEMV_PAR_MIN_FLOPS`] stay on the calling thread.

use rayon::prelude::*;

use super::{Kernel, Operands};

/// Products of at most this many rows take the dot-product path.
pub const GEMV_MAX_M: usize = 4;

/// Below this many floating-point operations (`2 m n k`) the dot-product
/// path stays on the calling thread: waking a second thread costs more than
/// the 0.8 MFLOP of a 784 -> 512 layer at batch 1 (a few microseconds).
pub const GEMV_PAR_MIN_FLOPS: usize = 4 << 20;

/// Outputs (columns of C) per parallel work item.
pub const CHUNK_N: usize = 64;

/// Accumulator lanes of every variant.
const LANES: usize = 16;

/// Whether `ops` takes the dot-product path.
pub(crate) fn applies(ops: &Operands) -> bool {
    ops.m <= GEMV_MAX_M && ops.csa == 1 && ops.rsb == 1
}

/// The fixed pairwise reduction of the 16 lanes shared by every variant.
#[inline(always)]
fn reduce(mut v: [f32; LANES]) -> f32 {
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            v[l] += v[l + w];
        }
    }
    v[0]
}

/// `C[i, j] <- alpha * dot (+ beta C[i, j])`, rounded as the GEMM store is.
///
/// # Safety
/// `c` is valid to write (and to read unless `beta == 0`).
#[inline(always)]
unsafe fn store(c: *mut f32, alpha: f32, beta: f32, dot: f32) {
    let t = alpha * dot;
    // SAFETY: caller.
    unsafe {
        *c = if beta == 0.0 {
            t
        } else if beta == 1.0 {
            t + *c
        } else {
            t + beta * *c
        };
    }
}

/// Runs the dot-product path for `ops` (`applies(&ops)`, `m, n, k > 0`).
///
/// # Safety
/// As for `sgemm`; `kernel` is available on this CPU.
pub(crate) unsafe fn run(kernel: Kernel, ops: &Operands) {
    let chunks = ops.n.div_ceil(CHUNK_N);
    let flops = 2usize.saturating_mul(ops.m).saturating_mul(ops.n).saturating_mul(ops.k);
    let work = |chunk: usize| {
        let j0 = chunk * CHUNK_N;
        let j1 = (j0 + CHUNK_N).min(ops.n);
        // SAFETY: columns j0..j1 are in range; different chunks write
        // disjoint columns of C.
        unsafe { columns(kernel, ops, j0, j1) };
    };
    if chunks > 1 && flops >= GEMV_PAR_MIN_FLOPS && rayon::current_num_threads() > 1 {
        (0..chunks).into_par_iter().for_each(work);
    } else {
        (0..chunks).for_each(work);
    }
}

/// Columns `j0..j1` of every row of C.
///
/// # Safety
/// As for [`run`], with `j0 < j1 <= n`.
unsafe fn columns(kernel: Kernel, ops: &Operands, j0: usize, j1: usize) {
    for i in 0..ops.m {
        // SAFETY: row i of A and columns j0..j1 of B and C are in range.
        unsafe {
            let a = ops.a.offset(i as isize * ops.rsa);
            let b = ops.b.offset(j0 as isize * ops.csb);
            let c = ops.c.offset(i as isize * ops.rsc + j0 as isize * ops.csc);
            match kernel {
                Kernel::Scalar => row_scalar(ops, a, b, c, j1 - j0),
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx2 => x86::row_avx2(ops, a, b, c, j1 - j0),
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx512 => x86::row_avx512(ops, a, b, c, j1 - j0),
                #[cfg(not(target_arch = "x86_64"))]
                Kernel::Avx2 | Kernel::Avx512 => unreachable!("not available off x86-64"),
            }
        }
    }
}

/// One row of A against `cols` columns of B (column stride `ops.csb`) into
/// `cols` elements of C (stride `ops.csc`): separate multiply and add.
///
/// # Safety
/// `a` holds `k` floats, each column of B `k` floats; the C elements are valid.
unsafe fn row_scalar(ops: &Operands, a: *const f32, b: *const f32, c: *mut f32, cols: usize) {
    let k = ops.k;
    // SAFETY: row and columns hold k floats (caller).
    let a = unsafe { std::slice::from_raw_parts(a, k) };
    for j in 0..cols {
        // SAFETY: as above.
        let bj = unsafe { std::slice::from_raw_parts(b.offset(j as isize * ops.csb), k) };
        let mut acc = [0.0f32; LANES];
        let mut pa = a.chunks_exact(LANES);
        let mut pb = bj.chunks_exact(LANES);
        for (x, y) in (&mut pa).zip(&mut pb) {
            for l in 0..LANES {
                acc[l] += x[l] * y[l];
            }
        }
        for (l, (x, y)) in pa.remainder().iter().zip(pb.remainder()).enumerate() {
            acc[l] += x * y;
        }
        // SAFETY: element j of the C row is valid (caller).
        unsafe { store(c.offset(j as isize * ops.csc), ops.alpha, ops.beta, reduce(acc)) };
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{LANES, Operands, reduce, store};

    /// Floats ahead of the current position that each column stream
    /// prefetches (a layer's weights often live in L3, not L2: on the
    /// Xeon of docs/BENCHMARKS.md 64 beat none by ~18% and 256 or 1024 by
    /// less, at batch 1 through a 784-512-256-10 MLP).
    const PREFETCH: usize = 64;

    /// Dot products computed together by the AVX-512 variant (8 independent
    /// FMA chains hide the FMA latency).
    const COLS512: usize = 8;
    /// Dot products computed together by the AVX2 variant (4 x 2 ymm chains).
    const COLS256: usize = 4;

    /// See [`super::row_scalar`]; fused multiply-adds in 16 zmm lanes.
    ///
    /// # Safety
    /// As for `row_scalar`; the CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn row_avx512(ops: &Operands, a: *const f32, b: *const f32, c: *mut f32, cols: usize) {
        let k = ops.k;
        let full = k / LANES * LANES;
        let rest = k - full;
        let mask: __mmask16 = ((1u32 << rest) - 1) as __mmask16;
        let mut j = 0;
        // N dot products from column j on.
        macro_rules! dots {
            ($n:expr) => {{
                const N: usize = $n;
                let mut acc = [_mm512_setzero_ps(); N];
                let bs: [*const f32; N] =
                    std::array::from_fn(|q| b.wrapping_offset((j + q) as isize * ops.csb));
                let mut p = 0;
                // SAFETY: p + 16 <= k: in range of the row and the columns.
                unsafe {
                    while p < full {
                        let av = _mm512_loadu_ps(a.add(p));
                        for q in 0..N {
                            // A hint only: never faults, whatever the address.
                            _mm_prefetch::<_MM_HINT_T0>(bs[q].wrapping_add(p + PREFETCH) as *const i8);
                            acc[q] = _mm512_fmadd_ps(av, _mm512_loadu_ps(bs[q].add(p)), acc[q]);
                        }
                        p += LANES;
                    }
                    if rest > 0 {
                        // Masked-off lanes load as zero and add 0 * 0.
                        let av = _mm512_maskz_loadu_ps(mask, a.add(p));
                        for q in 0..N {
                            acc[q] = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(mask, bs[q].add(p)), acc[q]);
                        }
                    }
                }
                for q in 0..N {
                    let mut lanes = [0.0f32; LANES];
                    // SAFETY: `lanes` holds 16 floats.
                    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), acc[q]) };
                    // SAFETY: column j + q < cols of C (loop bounds).
                    unsafe {
                        store(c.offset((j + q) as isize * ops.csc), ops.alpha, ops.beta, reduce(lanes))
                    };
                }
                j += N;
            }};
        }
        while j + COLS512 <= cols {
            dots!(COLS512);
        }
        while j < cols {
            dots!(1);
        }
    }

    /// See [`super::row_scalar`]; fused multiply-adds in two ymm per dot
    /// product (lanes 0-7 and 8-15), the same lanes as the AVX-512 variant.
    ///
    /// # Safety
    /// As for `row_scalar`; the CPU supports AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn row_avx2(ops: &Operands, a: *const f32, b: *const f32, c: *mut f32, cols: usize) {
        let k = ops.k;
        let full = k / LANES * LANES;
        let rest = k - full;
        // Tail masks for lanes 0-7 and 8-15: -1 where the lane is < rest.
        let lane_mask = |first: usize| {
            let m: [i32; 8] = std::array::from_fn(|l| if first + l < rest { -1 } else { 0 });
            // SAFETY: `m` holds 8 i32.
            unsafe { _mm256_loadu_si256(m.as_ptr() as *const __m256i) }
        };
        let (m0, m1) = (lane_mask(0), lane_mask(8));
        let mut j = 0;
        macro_rules! dots {
            ($n:expr) => {{
                const N: usize = $n;
                let mut lo = [_mm256_setzero_ps(); N];
                let mut hi = [_mm256_setzero_ps(); N];
                let bs: [*const f32; N] =
                    std::array::from_fn(|q| b.wrapping_offset((j + q) as isize * ops.csb));
                let mut p = 0;
                // SAFETY: p + 16 <= k in the loop; the tail's masked loads
                // read only lanes < rest (masked-off lanes do not fault).
                unsafe {
                    while p < full {
                        let a0 = _mm256_loadu_ps(a.add(p));
                        let a1 = _mm256_loadu_ps(a.add(p + 8));
                        for q in 0..N {
                            // A hint only: never faults, whatever the address.
                            _mm_prefetch::<_MM_HINT_T0>(bs[q].wrapping_add(p + PREFETCH) as *const i8);
                            lo[q] = _mm256_fmadd_ps(a0, _mm256_loadu_ps(bs[q].add(p)), lo[q]);
                            hi[q] = _mm256_fmadd_ps(a1, _mm256_loadu_ps(bs[q].add(p + 8)), hi[q]);
                        }
                        p += LANES;
                    }
                    if rest > 0 {
                        let a0 = _mm256_maskload_ps(a.add(p), m0);
                        let a1 = _mm256_maskload_ps(a.wrapping_add(p + 8), m1);
                        for q in 0..N {
                            lo[q] = _mm256_fmadd_ps(a0, _mm256_maskload_ps(bs[q].add(p), m0), lo[q]);
                            hi[q] =
                                _mm256_fmadd_ps(a1, _mm256_maskload_ps(bs[q].wrapping_add(p + 8), m1), hi[q]);
                        }
                    }
                }
                for q in 0..N {
                    let mut lanes = [0.0f32; LANES];
                    // SAFETY: `lanes` holds 16 floats.
                    unsafe {
                        _mm256_storeu_ps(lanes.as_mut_ptr(), lo[q]);
                        _mm256_storeu_ps(lanes.as_mut_ptr().add(8), hi[q]);
                    }
                    // SAFETY: column j + q < cols of C (loop bounds).
                    unsafe {
                        store(c.offset((j + q) as isize * ops.csc), ops.alpha, ops.beta, reduce(lanes))
                    };
                }
                j += N;
            }};
        }
        while j + COLS256 <= cols {
            dots!(COLS256);
        }
        while j < cols {
            dots!(1);
        }
    }
}
