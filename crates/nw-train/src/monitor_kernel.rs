//! The weight monitor's reductions: one fused pass over a tensor's weights
//! after and before a step, sums of squares, and order statistics from a
//! reused histogram.
//!
//! Order of summation (fixed, so the bits do not depend on the thread count
//! or on the instruction set):
//! - a tensor is cut into blocks of [`BLOCK`] elements; each block gives one
//!   partial result, and the partials are added in block order (blocks run
//!   on rayon's threads for tensors of at least [`PAR_MIN`] elements, but
//!   are always combined in that order);
//! - inside a block, element `i` goes to lane `i % LANES`; each sub-chunk of
//!   [`SUB`] elements sums its lanes in f32 (so the loop vectorises as 16 f32
//!   lanes), then adds each lane's sum to that lane's f64 accumulator;
//! - a lane whose f32 sum left f32's safe range (not finite, or below
//!   [`TINY`] although a term is non-zero, where underflow could have lost
//!   it) is summed again for that sub-chunk in f64, so a diverged or a tiny
//!   update reads the same as with f64 throughout;
//! - at the end of a block the 16 f64 lane sums are added in lane order.
//!
//! Every variant (baseline, AVX2, AVX-512F, chosen by
//! [`nw_optim::kernel::isa`], which follows `NW_ISA`) runs the same IEEE
//! operations in the same order, so all give the same bits.

use rayon::prelude::*;

/// Fixed lane count of the reductions.
pub(crate) const LANES: usize = 16;
/// Elements per sub-chunk whose lane sums stay in f32 (64 terms per lane:
/// a relative rounding error below 4e-6 before the f64 accumulation).
pub(crate) const SUB: usize = 1024;
/// Elements per block (one partial result each, combined in block order).
pub(crate) const BLOCK: usize = 1 << 14;
/// Tensors with fewer elements are reduced on the calling thread.
pub(crate) const PAR_MIN: usize = 1 << 16;
/// 2^-100: a lane sum below this with a non-zero term is redone in f64.
pub(crate) const TINY: f32 = f32::from_bits((127 - 100) << 23);

/// Largest number of values the order statistics look at: larger tensors
/// are sampled at this many fixed positions (see `order_stats`).
pub const SAMPLE: usize = 4096;

/// Bits of an f32 dropped by the histogram: 4 mantissa bits stay (16 bins per octave).
const HIST_SHIFT: u32 = 19;
/// Bins of the histogram (every non-negative f32 bit pattern, NaN included, shifted).
const BINS: usize = (0x7FFF_FFFF >> HIST_SHIFT) as usize + 1;
/// Interleaved copies of the histogram (value `i` counts in copy `i % WAYS`),
/// so that runs of equal values do not wait on one counter.
const WAYS: usize = 4;

/// The reused buffers of [`order_stats`].
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    /// `WAYS` histograms of `BINS` counts, all zero between calls.
    counts: Vec<u16>,
    /// The bins of the values counted.
    bins: Vec<u16>,
}

/// A value's bin: negative values (not expected) and -0 count as 0, NaN as the largest.
#[inline(always)]
fn bin_of(x: f32) -> u16 {
    let bits = if x > 0.0 || x.is_nan() { x.to_bits() & 0x7FFF_FFFF } else { 0 };
    (bits >> HIST_SHIFT) as u16
}

/// Sums over a tensor's weights after a step (`w`) and the applied update
/// `d = w - w_before` (f32 difference).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct UpdateSums {
    /// `sum w^2`.
    pub w2: f64,
    /// `sum d^2`.
    pub d2: f64,
    /// `sum |d|`.
    pub dabs: f64,
    /// `max |w|` (NaN ignored).
    pub wmax: f64,
    /// `max |d|` (NaN ignored).
    pub dmax: f64,
    /// Elements with `w == 0`.
    pub zeros: u64,
    /// Elements with `w != w_before`.
    pub changed: u64,
}

impl UpdateSums {
    fn merge(&mut self, o: &UpdateSums) {
        self.w2 += o.w2;
        self.d2 += o.d2;
        self.dabs += o.dabs;
        self.wmax = self.wmax.max(o.wmax);
        self.dmax = self.dmax.max(o.dmax);
        self.zeros += o.zeros;
        self.changed += o.changed;
    }
}

fn parallel(n: usize) -> bool {
    n >= PAR_MIN && rayon::current_num_threads() > 1
}

/// Whether an f32 lane sum must be redone in f64: not finite, or so small
/// that underflow may have lost terms although the largest term `m` is non-zero.
#[inline(always)]
fn out_of_range(s: f32, m: f32) -> bool {
    !s.is_finite() || (s < TINY && m > 0.0)
}

/// `max` that ignores NaN in `x` (as `vmaxps` does, so it vectorises).
#[inline(always)]
fn max_keep(m: f32, x: f32) -> f32 {
    if x > m { x } else { m }
}

/// Compiles `body` for the baseline, AVX2 and AVX-512F and calls the
/// variant [`nw_optim::kernel::isa`] chose.
macro_rules! dispatch {
    (fn $name:ident($($arg:ident : $ty:ty),*) -> $ret:ty = $body:ident) => {
        fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                match nw_optim::kernel::isa() {
                    // SAFETY: `isa()` detected the feature on this CPU.
                    nw_optim::kernel::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    nw_optim::kernel::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    nw_optim::kernel::Isa::Baseline => {}
                }
            }
            $body($($arg),*)
        }
    };
}

/// [`UpdateSums`] of `after` against `before` (same length); when
/// `write_back`, `before` then holds `after` (the next step's "before").
pub(crate) fn update_sums(after: &[f32], before: &mut [f32], write_back: bool) -> UpdateSums {
    assert_eq!(after.len(), before.len(), "update_sums: lengths differ");
    let mut total = UpdateSums::default();
    if parallel(after.len()) {
        let parts: Vec<UpdateSums> = after
            .par_chunks(BLOCK)
            .zip(before.par_chunks_mut(BLOCK))
            .map(|(a, b)| update_block(a, b, write_back))
            .collect();
        parts.iter().for_each(|p| total.merge(p));
    } else {
        for (a, b) in after.chunks(BLOCK).zip(before.chunks_mut(BLOCK)) {
            total.merge(&update_block(a, b, write_back));
        }
    }
    total
}

dispatch!(fn update_block(a: &[f32], b: &mut [f32], write_back: bool) -> UpdateSums = update_block_body);

/// The f32 lane sums of one sub-chunk.
#[derive(Default)]
struct SubSums {
    w2: [f32; LANES],
    d2: [f32; LANES],
    da: [f32; LANES],
    wm: [f32; LANES],
    dm: [f32; LANES],
    zeros: [u32; LANES],
    changed: [u32; LANES],
}

/// Sixteen elements, one per lane (a fixed-size array, so it vectorises).
#[inline(always)]
fn update_lanes(s: &mut SubSums, a: &[f32; LANES], b: &[f32; LANES]) {
    for l in 0..LANES {
        let (x, y) = (a[l], b[l]);
        let d = x - y;
        s.w2[l] += x * x;
        s.d2[l] += d * d;
        s.da[l] += d.abs();
        s.wm[l] = max_keep(s.wm[l], x.abs());
        s.dm[l] = max_keep(s.dm[l], d.abs());
        s.zeros[l] += u32::from(x == 0.0);
        s.changed[l] += u32::from(x != y);
    }
}

#[inline(always)]
fn update_block_body(after: &[f32], before: &mut [f32], write_back: bool) -> UpdateSums {
    let mut w2 = [0.0f64; LANES];
    let mut d2 = [0.0f64; LANES];
    let mut dabs = [0.0f64; LANES];
    let mut dmax = [0.0f64; LANES];
    let mut wmax = [0.0f32; LANES];
    let mut zeros = [0u32; LANES];
    let mut changed = [0u32; LANES];
    for (sa, sb) in after.chunks(SUB).zip(before.chunks_mut(SUB)) {
        let mut s = SubSums::default();
        let (fa, ta) = sa.as_chunks::<LANES>();
        let (fb, tb) = sb.as_chunks::<LANES>();
        for (a, b) in fa.iter().zip(fb) {
            update_lanes(&mut s, a, b);
        }
        if !ta.is_empty() {
            // The tail padded with zeros: adds +0 to every sum; only the
            // padding's zero count is taken back.
            let (mut a, mut b) = ([0.0f32; LANES], [0.0f32; LANES]);
            a[..ta.len()].copy_from_slice(ta);
            b[..tb.len()].copy_from_slice(tb);
            update_lanes(&mut s, &a, &b);
            s.zeros[ta.len()..].iter_mut().for_each(|z| *z -= 1);
        }
        let mut redo = false;
        for l in 0..LANES {
            redo |= out_of_range(s.w2[l], s.wm[l]) | out_of_range(s.d2[l], s.dm[l]) | !s.da[l].is_finite();
        }
        for l in 0..LANES {
            wmax[l] = max_keep(wmax[l], s.wm[l]);
            zeros[l] += s.zeros[l];
            changed[l] += s.changed[l];
        }
        if redo {
            for l in 0..LANES {
                if out_of_range(s.w2[l], s.wm[l]) || out_of_range(s.d2[l], s.dm[l]) || !s.da[l].is_finite() {
                    // This lane of this sub-chunk again, in f64 (d exact in f64).
                    let (mut a2, mut b2, mut c1, mut m) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
                    for (&x, &y) in sa.iter().zip(sb.iter()).skip(l).step_by(LANES) {
                        let d = x as f64 - y as f64;
                        a2 += x as f64 * x as f64;
                        b2 += d * d;
                        c1 += d.abs();
                        m = m.max(d.abs());
                    }
                    (s.w2[l], s.d2[l], s.da[l], s.dm[l]) = (0.0, 0.0, 0.0, 0.0);
                    w2[l] += a2;
                    d2[l] += b2;
                    dabs[l] += c1;
                    dmax[l] = dmax[l].max(m);
                }
            }
        }
        // (A redone lane adds +0 here.)
        for l in 0..LANES {
            w2[l] += s.w2[l] as f64;
            d2[l] += s.d2[l] as f64;
            dabs[l] += s.da[l] as f64;
            dmax[l] = dmax[l].max(s.dm[l] as f64);
        }
        if write_back {
            sb.copy_from_slice(sa);
        }
    }
    UpdateSums {
        w2: w2.iter().sum(),
        d2: d2.iter().sum(),
        dabs: dabs.iter().sum(),
        wmax: wmax.iter().fold(0.0f64, |m, &x| m.max(x as f64)),
        dmax: dmax.iter().copied().fold(0.0f64, f64::max),
        zeros: zeros.iter().map(|&z| z as u64).sum(),
        changed: changed.iter().map(|&c| c as u64).sum(),
    }
}

/// `sum x^2`, in the order described in the module docs.
pub(crate) fn sum_squares(v: &[f32]) -> f64 {
    if parallel(v.len()) {
        let parts: Vec<f64> = v.par_chunks(BLOCK).map(squares_block).collect();
        parts.iter().fold(0.0, |s, p| s + p)
    } else {
        v.chunks(BLOCK).fold(0.0, |s, b| s + squares_block(b))
    }
}

dispatch!(fn squares_block(v: &[f32]) -> f64 = squares_block_body);

/// Sixteen squares, one per lane.
#[inline(always)]
fn square_lanes(s2: &mut [f32; LANES], sm: &mut [f32; LANES], c: &[f32; LANES]) {
    for l in 0..LANES {
        s2[l] += c[l] * c[l];
        sm[l] = max_keep(sm[l], c[l].abs());
    }
}

#[inline(always)]
fn squares_block_body(v: &[f32]) -> f64 {
    let mut acc = [0.0f64; LANES];
    for s in v.chunks(SUB) {
        let mut s2 = [0.0f32; LANES];
        let mut sm = [0.0f32; LANES];
        let (full, tail) = s.as_chunks::<LANES>();
        for c in full {
            square_lanes(&mut s2, &mut sm, c);
        }
        if !tail.is_empty() {
            let mut t = [0.0f32; LANES]; // zero padding adds +0
            t[..tail.len()].copy_from_slice(tail);
            square_lanes(&mut s2, &mut sm, &t);
        }
        let mut redo = false;
        for l in 0..LANES {
            redo |= out_of_range(s2[l], sm[l]);
        }
        if redo {
            for l in 0..LANES {
                if out_of_range(s2[l], sm[l]) {
                    acc[l] += s.iter().skip(l).step_by(LANES).map(|&x| x as f64 * x as f64).sum::<f64>();
                    s2[l] = 0.0;
                }
            }
        }
        for l in 0..LANES {
            acc[l] += s2[l] as f64;
        }
    }
    acc.iter().sum()
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The order statistics of non-negative values from a histogram of their
/// bit patterns (for non-negative floats the bit order is the value order),
/// each answered as the centre of its bin (16 bins per octave: within 1/32
/// of the exact order statistic of the values counted). `ranks` maps the
/// number of values counted to the wanted ranks (from 1, ascending). With at
/// most [`SAMPLE`] values all are counted; a longer slice is sampled at
/// [`SAMPLE`] distinct fixed positions `i * s mod n` with `s` the first
/// integer from `0.618 n` (the golden-ratio stride, which does not alias
/// with row lengths) coprime to `n`, so the answer is the same on every run
/// and thread count. `hist` holds reused buffers.
/// `None` for an empty slice.
pub(crate) fn order_stats<const K: usize>(
    v: &[f32],
    ranks: impl FnOnce(u64) -> [u64; K],
    hist: &mut Histogram,
) -> Option<[f64; K]> {
    if v.is_empty() {
        return None;
    }
    let n = v.len();
    let bins = &mut hist.bins;
    bins.clear();
    if n <= SAMPLE {
        bins.extend(v.iter().map(|&x| bin_of(x)));
    } else {
        let mut stride = (n as f64 * 0.618_033_988_749_894_9).round() as usize;
        while gcd(stride, n) != 1 {
            stride += 1;
        }
        let mut i = 0usize;
        bins.extend((0..SAMPLE).map(|_| {
            let b = bin_of(v[i]);
            i += stride;
            if i >= n {
                i -= n;
            }
            b
        }));
    }
    // The range of the non-zero bins (zeros, common in Adam's v, sit in bin
    // 0, far below the rest: the scan skips the empty bins in between).
    let (lo, hi) =
        bins.iter().fold((u16::MAX, 0u16), |(lo, hi), &b| (if b > 0 { lo.min(b) } else { lo }, hi.max(b)));
    let (lo, hi) = (lo as usize, hi as usize);
    let counts = &mut hist.counts;
    counts.resize(WAYS * BINS, 0);
    let (ways, tail) = bins.as_chunks::<WAYS>();
    for w in ways {
        for k in 0..WAYS {
            counts[k * BINS + w[k] as usize] += 1;
        }
    }
    for &b in tail {
        counts[b as usize] += 1;
    }
    let ranks = ranks(bins.len() as u64);
    let mut order: [usize; K] = std::array::from_fn(|k| k);
    order.sort_by_key(|&k| ranks[k]);
    let mut out = [0.0f64; K];
    let (mut seen, mut next) = (0u64, 0usize);
    for bin in std::iter::once(0).chain(lo.max(1)..=hi) {
        for k in 0..WAYS {
            seen += u64::from(std::mem::take(&mut counts[k * BINS + bin]));
        }
        while next < K && seen >= ranks[order[next]] {
            let lo = f32::from_bits((bin as u32) << HIST_SHIFT) as f64;
            let hi = f32::from_bits(((bin as u32 + 1) << HIST_SHIFT).min(0x7F80_0000)) as f64;
            out[order[next]] = if bin == 0 { 0.0 } else { 0.5 * (lo + hi) };
            next += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The old f64 lane loop, as the reference.
    fn reference(a: &[f32], b: &[f32]) -> UpdateSums {
        let mut s = UpdateSums::default();
        for (&x, &y) in a.iter().zip(b) {
            let d = x as f64 - y as f64;
            s.w2 += x as f64 * x as f64;
            s.d2 += d * d;
            s.dabs += d.abs();
            s.wmax = s.wmax.max((x as f64).abs());
            s.dmax = s.dmax.max(d.abs());
            s.zeros += u64::from(x == 0.0);
            s.changed += u64::from(x != y);
        }
        s
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        a == b || (a - b).abs() <= rel * a.abs().max(b.abs())
    }

    fn data(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let mut rng = nw_tensor::Rng::new(seed);
        let b = nw_tensor::Tensor::rand_uniform(&[n], -1.0, 1.0, &mut rng).to_vec();
        let mut a = b.clone();
        for (i, x) in a.iter_mut().enumerate() {
            match i % 5 {
                0 => {}
                1 => *x = 0.0,
                _ => *x += 1e-3 * (i % 7) as f32,
            }
        }
        (a, b)
    }

    #[test]
    fn fused_pass_matches_the_f64_reference_and_writes_back() {
        for n in [0, 1, 15, 16, 17, 255, 256, 257, BLOCK + 3, PAR_MIN + 1000] {
            let (a, b) = data(n, n as u64);
            let want = reference(&a, &b);
            let mut bb = b.clone();
            let got = update_sums(&a, &mut bb, false);
            assert_eq!(bb, b, "n {n}: not written back");
            assert_eq!((got.zeros, got.changed), (want.zeros, want.changed), "n {n}");
            assert_eq!(got.wmax, want.wmax, "n {n}");
            assert!(close(got.dmax, want.dmax, 1e-7), "n {n}");
            for (g, w) in [(got.w2, want.w2), (got.d2, want.d2), (got.dabs, want.dabs)] {
                assert!(close(g, w, 4e-6), "n {n}: {g} vs {w}");
            }
            assert_eq!(update_sums(&a, &mut bb, true), got, "n {n}");
            assert_eq!(bb, a, "n {n}: written back");
        }
    }

    #[test]
    fn huge_and_tiny_values_are_summed_in_f64() {
        // f32 would overflow (w^2 and d = w - w_before) or flush to zero (d^2).
        let a = vec![3e30f32, 1.0, -3e38, 1e-30];
        let b = vec![3e30f32, 1.0, 3e38, 0.0];
        let s = update_sums(&a, &mut b.clone(), false);
        let r = reference(&a, &b);
        assert!(s.w2.is_finite() && close(s.w2, r.w2, 1e-12), "{s:?}");
        assert!(s.d2.is_finite() && close(s.d2, r.d2, 1e-12), "{s:?}");
        assert_eq!(s.dmax, r.dmax); // the exact f64 difference 6e38, not f32's inf
        let tiny = [1e-25f32; 40];
        let want = 40.0 * (1e-25f32 as f64).powi(2);
        assert!(close(sum_squares(&tiny), want, 1e-12), "{} vs {want}", sum_squares(&tiny));
        assert!(close(sum_squares(&[2e20, 3e20]), 13e40, 1e-6));
    }

    #[test]
    fn every_thread_count_and_isa_gives_the_same_bits() {
        let (a, b) = data(3 * PAR_MIN + 77, 5);
        let go = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| (update_sums(&a, &mut b.clone(), false), sum_squares(&a).to_bits()))
        };
        let one = go(1);
        for t in [2, 3, 4] {
            assert_eq!(go(t), one, "{t} threads");
        }
        nw_optim::kernel::force_baseline(true);
        let base = go(1);
        nw_optim::kernel::force_baseline(false);
        assert_eq!(base, one, "baseline vs detected ISA");
    }

    #[test]
    fn sampled_order_stats_are_fixed_and_close() {
        // 0.5, 1.0, ..., 50000 shuffled by a fixed stride: the sample's
        // quantiles land near the exact ones.
        let n = 100_000usize;
        let v: Vec<f32> = (0..n).map(|i| ((i * 7919) % n + 1) as f32 * 0.5).collect();
        let mut hist = Histogram::default();
        let ranks = |m: u64| [m / 2, (m * 9).div_ceil(10), (m * 99).div_ceil(100)];
        let got = order_stats(&v, ranks, &mut hist).unwrap();
        assert!(hist.counts.iter().all(|&c| c == 0), "histogram left dirty");
        for (g, want) in got.iter().zip([25_000.0, 45_000.0, 49_500.0]) {
            assert!((g - want).abs() <= want * 0.05, "{g} vs {want}"); // a bin (1/32) plus sampling error
        }
        assert_eq!(order_stats(&v, ranks, &mut hist).unwrap(), got);
        assert!(order_stats(&[], ranks, &mut hist).is_none());
    }
}
