//! Fused update loops: one pass over a parameter, its gradient and its state
//! buffers, split into fixed chunks for rayon.
//!
//! Contract: `p`, `g` and every buffer have the same length; the closure is
//! applied to aligned sub-slices (`p[r]`, `g[r]`, `a[r]`, ...): first a head
//! of up to 15 elements that brings `p` to a 64-byte boundary, then ranges `r`
//! of [`CHUNK`] elements. Every optimizer update is elementwise, so the
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

/// The instruction set the loops run with on this machine: the one nw-tensor's
/// GEMM uses ([`nw_tensor::gemm::isa::active`]: the best the CPU has, or what
/// the environment variable `NW_ISA` forces), further capped by the older
/// `NW_OPTIM_ISA` (`baseline`, `avx2` or `avx512`), both read once.
pub fn isa() -> Isa {
    static DETECTED: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    if FORCE_BASELINE.load(std::sync::atomic::Ordering::Relaxed) {
        return Isa::Baseline;
    }
    *DETECTED.get_or_init(|| {
        use nw_tensor::gemm::Kernel;
        let tensor = match nw_tensor::gemm::isa::active() {
            Kernel::Avx512 => Isa::Avx512,
            Kernel::Avx2 => Isa::Avx2,
            Kernel::Scalar => Isa::Baseline,
        };
        let cap = match std::env::var("NW_OPTIM_ISA").as_deref() {
            Ok("baseline") => Isa::Baseline,
            Ok("avx2") => Isa::Avx2,
            _ => Isa::Avx512,
        };
        cap_isa(tensor, cap)
    })
}

/// The lower of two instruction sets (`Baseline < Avx2 < Avx512`).
fn cap_isa(a: Isa, b: Isa) -> Isa {
    let rank = |i: Isa| match i {
        Isa::Baseline => 0,
        Isa::Avx2 => 1,
        Isa::Avx512 => 2,
    };
    if rank(a) <= rank(b) { a } else { b }
}

/// Defines a chunk loop compiled three times (baseline, AVX2, AVX-512F) and
/// dispatched on [`isa`] at each call (a reduction returns its value). The body is an `#[inline(always)]`
/// function taking everything by value (coefficients in a `Copy` struct,
/// slices), so each variant gets the whole loop inlined and vectorised, and
/// no coefficient is re-read from memory inside the loop. No FMA is enabled,
/// and Rust never contracts `a * b + c` on its own, so every variant performs
/// exactly the baseline's IEEE roundings.
macro_rules! simd_fn {
    ($(#[$m:meta])* fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                match $crate::kernel::isa() {
                    // SAFETY: `isa()` detected the feature on this CPU.
                    $crate::kernel::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::kernel::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::kernel::Isa::Baseline => {}
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

/// Elements before `p` reaches a 64-byte boundary. Large allocations from the
/// system allocator start 16 bytes past a page, so without this peel every
/// 64-byte vector load would straddle two cache lines; parameters, gradients
/// and state buffers usually share that offset, so aligning `p` aligns all.
fn head(p: &[f32]) -> usize {
    let off = p.as_ptr() as usize % 64;
    if !off.is_multiple_of(4) { 0 } else { ((64 - off) % 64 / 4).min(p.len()) }
}

/// `f(p, g)` over aligned chunks.
pub(crate) fn run1<F>(p: &mut [f32], g: &[f32], f: F)
where
    F: Fn(&mut [f32], &[f32]) + Sync + Send,
{
    debug_assert_eq!(p.len(), g.len());
    let h = head(p);
    let ((p0, p), (g0, g)) = (p.split_at_mut(h), g.split_at(h));
    f(p0, g0);
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
    let h = head(p);
    let ((p0, p), (g0, g), (a0, a)) = (p.split_at_mut(h), g.split_at(h), a.split_at_mut(h));
    f(p0, g0, a0);
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
    let h = head(p);
    let ((p0, p), (g0, g)) = (p.split_at_mut(h), g.split_at(h));
    let ((a0, a), (b0, b)) = (a.split_at_mut(h), b.split_at_mut(h));
    f(p0, g0, a0, b0);
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
    let h = head(p);
    let ((p0, p), (g0, g)) = (p.split_at_mut(h), g.split_at(h));
    let ((a0, a), (b0, b), (c0, c)) = (a.split_at_mut(h), b.split_at_mut(h), c.split_at_mut(h));
    f(p0, g0, a0, b0, c0);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_takes_the_lower_set() {
        assert_eq!(cap_isa(Isa::Avx512, Isa::Avx2), Isa::Avx2);
        assert_eq!(cap_isa(Isa::Avx2, Isa::Avx512), Isa::Avx2);
        assert_eq!(cap_isa(Isa::Baseline, Isa::Avx512), Isa::Baseline);
        assert_eq!(cap_isa(Isa::Avx512, Isa::Avx512), Isa::Avx512);
    }
}
