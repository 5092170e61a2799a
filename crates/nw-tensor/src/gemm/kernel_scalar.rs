//! The portable micro-kernel: plain Rust on `f32`, 4 x 8 tiles. Used on CPUs
//! without AVX2+FMA and on every non-x86 target; tested everywhere.

use super::driver::{MicroKernel, store_tile};

/// Portable 4 x 8 micro-kernel (separate multiply and add, no FMA, so it
/// is fast on targets where `f32::mul_add` would be a library call).
pub(crate) struct Scalar;

const MR: usize = 4;
const NR: usize = 8;

impl MicroKernel for Scalar {
    const MR: usize = MR;
    const NR: usize = NR;

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
        // SAFETY: the packed panels hold kc * MR and kc * NR floats (caller).
        let (a, b) =
            unsafe { (std::slice::from_raw_parts(a, kc * MR), std::slice::from_raw_parts(b, kc * NR)) };
        let mut acc = [0.0f32; MR * NR];
        for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
            for i in 0..MR {
                for j in 0..NR {
                    acc[i * NR + j] += ap[i] * bp[j];
                }
            }
        }
        // SAFETY: forwarded tile contract.
        unsafe { store_tile(&acc, NR, alpha, beta, c, rsc, csc, rows, cols) };
    }
}
