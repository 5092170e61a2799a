//! Deterministic reductions for the matrix-level rules (Adafactor, Muon):
//! sums of squares in f64 over fixed chunks whose partial sums are added in
//! chunk order, so the result does not depend on the thread count.

use rayon::prelude::*;

use crate::kernel::CHUNK;

/// `Σ xᵢ²` in f64: partial sums over fixed [`CHUNK`]-element chunks (in
/// parallel when long), combined in chunk order.
pub(crate) fn sum_sq(x: &[f32]) -> f64 {
    let part = |c: &[f32]| c.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
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
