//! Fused update loops: one pass over a parameter, its gradient and its state
//! buffers, split into fixed chunks for rayon.
//!
//! Contract: `p`, `g` and every buffer have the same length; the closure is
//! applied to aligned sub-slices (`p[r]`, `g[r]`, `a[r]`, ... for chunk ranges
//! `r` of [`CHUNK`] elements). Every optimizer update is elementwise, so the
//! result does not depend on the chunking or on the thread count; chunks only
//! decide how work is shared. Tensors shorter than [`PAR_MIN`] run in the
//! calling thread (no rayon overhead for biases).

use rayon::prelude::*;

use crate::group::WeightDecay;

/// Elements per parallel chunk (64 KiB of f32 per stream).
pub const CHUNK: usize = 1 << 14;
/// Tensors with fewer elements are updated on the calling thread.
pub const PAR_MIN: usize = 1 << 16;

fn serial(n: usize) -> bool {
    n < PAR_MIN || rayon::current_num_threads() == 1
}

/// `f(p, g)` over aligned chunks.
pub(crate) fn run1<F>(p: &mut [f32], g: &[f32], f: F)
where
    F: Fn(&mut [f32], &[f32]) + Sync + Send,
{
    debug_assert_eq!(p.len(), g.len());
    if serial(p.len()) {
        f(p, g)
    } else {
        p.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).for_each(|(p, g)| f(p, g))
    }
}

/// `f(p, g, a)` over aligned chunks.
pub(crate) fn run2<F>(p: &mut [f32], g: &[f32], a: &mut [f32], f: F)
where
    F: Fn(&mut [f32], &[f32], &mut [f32]) + Sync + Send,
{
    debug_assert!(p.len() == g.len() && p.len() == a.len());
    if serial(p.len()) {
        f(p, g, a)
    } else {
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(a.par_chunks_mut(CHUNK))
            .for_each(|((p, g), a)| f(p, g, a))
    }
}

/// `f(p, g, a, b)` over aligned chunks.
pub(crate) fn run3<F>(p: &mut [f32], g: &[f32], a: &mut [f32], b: &mut [f32], f: F)
where
    F: Fn(&mut [f32], &[f32], &mut [f32], &mut [f32]) + Sync + Send,
{
    debug_assert!(p.len() == g.len() && p.len() == a.len() && p.len() == b.len());
    if serial(p.len()) {
        f(p, g, a, b)
    } else {
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(a.par_chunks_mut(CHUNK))
            .zip(b.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), a), b)| f(p, g, a, b))
    }
}

/// `f(p, g, a, b, c)` over aligned chunks.
pub(crate) fn run4<F>(p: &mut [f32], g: &[f32], a: &mut [f32], b: &mut [f32], c: &mut [f32], f: F)
where
    F: Fn(&mut [f32], &[f32], &mut [f32], &mut [f32], &mut [f32]) + Sync + Send,
{
    debug_assert!(p.len() == g.len() && p.len() == a.len() && p.len() == b.len() && p.len() == c.len());
    if serial(p.len()) {
        f(p, g, a, b, c)
    } else {
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(a.par_chunks_mut(CHUNK))
            .zip(b.par_chunks_mut(CHUNK))
            .zip(c.par_chunks_mut(CHUNK))
            .for_each(|((((p, g), a), b), c)| f(p, g, a, b, c))
    }
}

/// What every rule does to the gradient and parameter before its own
/// arithmetic: negate for `maximize`, add `λ θ` for L2 decay, or shrink
/// `θ ← θ (1 − lr λ)` for decoupled decay. All in f32, as torch's kernels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pre {
    neg: bool,
    l2_on: bool,
    l2: f32,
    decay_on: bool,
    decay: f32,
}

impl Pre {
    pub(crate) fn new(maximize: bool, wd: WeightDecay, lr: f64) -> Pre {
        let (l2, decay) = match wd {
            WeightDecay::L2(c) => (c, 0.0),
            WeightDecay::Decoupled(c) => (0.0, c),
        };
        Pre {
            neg: maximize,
            l2_on: l2 != 0.0,
            l2: l2 as f32,
            decay_on: decay != 0.0,
            decay: (1.0 - lr * decay) as f32,
        }
    }

    /// Returns the gradient to use and shrinks `*p` when decay is decoupled.
    #[inline(always)]
    pub(crate) fn apply(&self, p: &mut f32, g: f32) -> f32 {
        // maximize: torch negates the gradient first
        let mut g = if self.neg { -g } else { g };
        // L2: grad.add(param, alpha=λ) = g + λ θ
        if self.l2_on {
            g += self.l2 * *p;
        }
        // decoupled: param.mul_(1 − lr λ)
        if self.decay_on {
            *p *= self.decay;
        }
        g
    }
}

/// torch.maximum: NaN in either operand propagates.
#[inline(always)]
pub(crate) fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a > b {
        a
    } else {
        b
    }
}

/// torch.sign: -1, 0 or 1 (0 for ±0), NaN stays NaN.
#[inline(always)]
pub(crate) fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else if x.is_nan() {
        x
    } else {
        0.0
    }
}

/// torch's CPU `lerp(self, end, w)`: `self + w (end − self)` for |w| < 0.5,
/// else `end − (end − self)(1 − w)`.
#[inline(always)]
pub(crate) fn lerp(start: f32, end: f32, w: f32) -> f32 {
    if w.abs() < 0.5 { start + w * (end - start) } else { end - (end - start) * (1.0 - w) }
}
