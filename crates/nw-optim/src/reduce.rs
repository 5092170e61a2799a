//! Deterministic reductions for the matrix-level rules (Adafactor, Muon):
//! sums of squares in f64 over fixed chunks whose partial sums are added in
//! chunk order, so the result does not depend on the thread count.

use rayon::prelude::*;

use crate::kernel::{CHUNK, simd_fn};

/// Lanes of the f64 accumulators in [`lanes_sum`]: enough independent
/// add chains to hide the add latency at any vector width (two 512-bit
/// registers, four 256-bit ones, eight 128-bit ones).
pub(crate) const LANES: usize = 16;

/// `Σ f(aᵢ, bᵢ)` in f64 over [`LANES`] accumulators: element `i` of the
/// whole `LANES`-blocks goes to lane `i mod LANES`, the tail to a separate
/// sum, and the lanes are combined in one fixed tree
/// (`((l0 + l1) + (l2 + l3)) + ...`, then `+ tail`). The order depends only
/// on the length, so the result is the same for any thread count and any
/// instruction set. `#[inline(always)]`: it is meant to be inlined into a
/// [`simd_fn`] body, where the lanes become vector registers.
#[inline(always)]
pub(crate) fn lanes_sum<F: Fn(f32, f32) -> f64>(a: &[f32], b: &[f32], f: F) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f64; LANES];
    let (ab, bb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (ab.remainder(), bb.remainder());
    for (x, y) in ab.zip(bb) {
        for k in 0..LANES {
            acc[k] += f(x[k], y[k]);
        }
    }
    let mut tail = 0f64;
    for (&x, &y) in ar.iter().zip(br) {
        tail += f(x, y);
    }
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for k in 0..w {
            acc[k] = acc[2 * k] + acc[2 * k + 1];
        }
    }
    acc[0] + tail
}

simd_fn! {
    /// `Σ xᵢ²` of one chunk in f64 ([`lanes_sum`]).
    fn chunk_sum_sq(x: &[f32]) -> f64 {
        lanes_sum(x, x, |v, _| (v as f64) * (v as f64))
    }
}

/// `Σ xᵢ²` in f64: partial sums over fixed [`CHUNK`]-element chunks (in
/// parallel when long), each over [`LANES`] accumulators, combined in chunk
/// order.
pub(crate) fn sum_sq(x: &[f32]) -> f64 {
    let part = chunk_sum_sq;
    if x.len() <= CHUNK {
        return part(x);
    }
    let parts: Vec<f64> = x.par_chunks(CHUNK).map(part).collect();
    parts.iter().sum()
}

/// `√(Σ xᵢ²)`, the 2-norm, via [`sum_sq`].
pub(crate) fn norm2(x: &[f32]) -> f64 {
    sum_sq(x).sqrt()
}

/// `Σ aᵢ bᵢ` in f64, over fixed chunks combined in chunk order (as [`sum_sq`]).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let part = |(x, y): (&[f32], &[f32])| x.iter().zip(y).map(|(&u, &v)| u as f64 * v as f64).sum::<f64>();
    if a.len() <= CHUNK {
        return part((a, b));
    }
    let parts: Vec<f64> = a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)).map(part).collect();
    parts.iter().sum()
}
