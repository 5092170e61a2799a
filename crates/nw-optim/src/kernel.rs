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

/// Instruction sets the chunk loops can be compiled for, chosen at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// The build's baseline (SSE2 on x86-64).
    Baseline,
    /// AVX2 (x86-64).
    Avx2,
    /// AVX-512F (x86-64).
    Avx512,
}

static FORCE_BASELINE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Forces the baseline loops (tests compare every variant with it). The
/// arithmetic is the same IEEE operations in every variant, so the results
/// are bit-identical; only the speed differs.
pub fn force_baseline(on: bool) {
    FORCE_BASELINE.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The instruction set the loops run with on this machine.
pub fn isa() -> Isa {
    if FORCE_BASELINE.load(std::sync::atomic::Ordering::Relaxed) {
        return Isa::Baseline;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Isa::Avx2;
        }
    }
    Isa::Baseline
}

/// Runs `f` compiled for the best instruction set: `f` is inlined into a
/// function with that target feature, so its loop is vectorised for it. No
/// FMA is enabled, and Rust never contracts `a * b + c` on its own, so each
/// variant performs exactly the baseline's roundings.
#[inline(always)]
fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        match isa() {
            // SAFETY: the feature was detected on this CPU by `isa()`.
            Isa::Avx512 => return unsafe { avx512(f) },
            // SAFETY: as above.
            Isa::Avx2 => return unsafe { avx2(f) },
            Isa::Baseline => {}
        }
    }
    f()
}

/// `f(p, g)` over aligned chunks.
pub(crate) fn run1<F>(p: &mut [f32], g: &[f32], f: F)
where
    F: Fn(&mut [f32], &[f32]) + Sync + Send,
{
    debug_assert_eq!(p.len(), g.len());
    if serial(p.len()) {
        dispatch(|| f(p, g))
    } else {
        p.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).for_each(|(p, g)| dispatch(|| f(p, g)))
    }
}

/// `f(p, g, a)` over aligned chunks.
pub(crate) fn run2<F>(p: &mut [f32], g: &[f32], a: &mut [f32], f: F)
where
    F: Fn(&mut [f32], &[f32], &mut [f32]) + Sync + Send,
{
    debug_assert!(p.len() == g.len() && p.len() == a.len());
    if serial(p.len()) {
        dispatch(|| f(p, g, a))
    } else {
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(a.par_chunks_mut(CHUNK))
            .for_each(|((p, g), a)| dispatch(|| f(p, g, a)))
    }
}

/// `f(p, g, a, b)` over aligned chunks.
pub(crate) fn run3<F>(p: &mut [f32], g: &[f32], a: &mut [f32], b: &mut [f32], f: F)
where
    F: Fn(&mut [f32], &[f32], &mut [f32], &mut [f32]) + Sync + Send,
{
    debug_assert!(p.len() == g.len() && p.len() == a.len() && p.len() == b.len());
    if serial(p.len()) {
        dispatch(|| f(p, g, a, b))
    } else {
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(a.par_chunks_mut(CHUNK))
            .zip(b.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), a), b)| dispatch(|| f(p, g, a, b)))
    }
}

/// `f(p, g, a, b, c)` over aligned chunks.
pub(crate) fn run4<F>(p: &mut [f32], g: &[f32], a: &mut [f32], b: &mut [f32], c: &mut [f32], f: F)
where
    F: Fn(&mut [f32], &[f32], &mut [f32], &mut [f32], &mut [f32]) + Sync + Send,
{
    debug_assert!(p.len() == g.len() && p.len() == a.len() && p.len() == b.len() && p.len() == c.len());
    if serial(p.len()) {
        dispatch(|| f(p, g, a, b, c))
    } else {
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(a.par_chunks_mut(CHUNK))
            .zip(b.par_chunks_mut(CHUNK))
            .zip(c.par_chunks_mut(CHUNK))
            .for_each(|((((p, g), a), b), c)| dispatch(|| f(p, g, a, b, c)))
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
    /// Written as selects with an unconditional store, so the loops around
    /// it vectorise (a conditional store would keep them scalar).
    #[inline(always)]
    pub(crate) fn apply(&self, p: &mut f32, g: f32) -> f32 {
        let p0 = *p;
        // maximize: torch negates the gradient first
        let g = if self.neg { -g } else { g };
        // L2: grad.add(param, alpha=λ) = g + λ θ (skipped when λ = 0, as torch)
        let g = if self.l2_on { g + self.l2 * p0 } else { g };
        // decoupled: param.mul_(1 − lr λ)
        *p = if self.decay_on { p0 * self.decay } else { p0 };
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
    // both sides computed, then selected: keeps the caller's loop vectorisable
    let small = start + w * (end - start);
    let large = end - (end - start) * (1.0 - w);
    if w.abs() < 0.5 { small } else { large }
}
