//! Vectorisable sigmoid and `tanh` for the fused recurrent cells, where
//! libm's scalar `tanhf` and `expf` would cost more than the GEMMs.
//!
//! Each function is branch-free arithmetic (selects, no calls), so a loop
//! over a slice vectorises; [`sigmoid_slice`] and [`tanh_slice`] run such a
//! loop compiled for AVX2 when the CPU has it, else the same code for the
//! baseline target. No fused multiply-adds are written (and Rust does not
//! contract `a * b + c`), so every variant gives the same bits.
//!
//! The work is done in f64 from the f32 argument (an `e^x` accurate to about
//! 1e-13), then rounded once to f32: the results are the correctly rounded
//! values except in rare near-ties (tested: within 1 ulp of f64 libm over
//! [-20, 20], and unbiased). A recurrent layer's gradients pass through
//! `1 - tanh^2` near saturation, which magnifies any bias in tanh; an f32
//! approximation with 1-2 ulp errors visibly moves them, this one does not.
//! NaN stays NaN; sigmoid and tanh reach their limits at ±inf.

/// `e^x` for `x` in `[-700, 700]` (the callers clamp): Cody-Waite range
/// reduction `x = n ln 2 + r`, `|r| <= ln 2 / 2`, Taylor series of `e^r` to
/// `r^11 / 11!` (remainder under 1e-13), scaled by `2^n` through the
/// exponent bits.
#[inline(always)]
fn exp_f64(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // 1.5 * 2^52: adding it rounds to an integer held in the low mantissa bits
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    // ln 2 split so that n * LN2_HI is exact for |n| < 2^11 (fdlibm's
    // constants: 6.93147180369123816490e-01 and 1.90821492927058770002e-10)
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let ni = (t.to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.0 / 39_916_800.0;
    for c in [
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    f64::from_bits((p.to_bits() as i64).wrapping_add(ni << 52) as u64)
}

/// `x` limited to `[lo, hi]`, NaN passed through (plain selects).
#[inline(always)]
fn clamp(x: f64, lo: f64, hi: f64) -> f64 {
    let x = if x < lo { lo } else { x };
    if x > hi { hi } else { x }
}

/// `1 / (1 + e^-x)`, computed in f64 and rounded once.
#[inline(always)]
pub fn sigmoid_approx(x: f32) -> f32 {
    let e = exp_f64(-clamp(x as f64, -700.0, 700.0));
    let y = (1.0 / (1.0 + e)) as f32;
    if x.is_nan() { x } else { y }
}

/// `tanh x`, computed in f64 and rounded once: the odd Taylor series to
/// `x^9` for `|x| < 1/16` (remainder under 1e-14 relative), else
/// `sign(x) (1 - 2 / (e^{2|x|} + 1))` with `|x|` capped at 20, where tanh is
/// 1 in f32.
#[inline(always)]
pub fn tanh_approx(x: f32) -> f32 {
    let xd = x as f64;
    let ax = clamp(xd.abs(), 0.0, 20.0);
    let z = xd * xd;
    // x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835
    let small = ((((62.0 / 2835.0) * z - 17.0 / 315.0) * z + 2.0 / 15.0) * z - 1.0 / 3.0) * z * xd + xd;
    let big = 1.0 - 2.0 / (exp_f64(2.0 * ax) + 1.0);
    let big = if xd < 0.0 { -big } else { big };
    let y = if ax < 0.0625 { small } else { big } as f32;
    if x.is_nan() { x } else { y }
}

macro_rules! slice_kernel {
    ($(#[$doc:meta])* $name:ident, $f:ident, $avx2:ident, $avx512:ident) => {
        $(#[$doc])*
        pub fn $name(v: &mut [f32]) {
            #[cfg(target_arch = "x86_64")]
            match simd() {
                // SAFETY: the CPU supports AVX-512F (checked at run time).
                Simd::Avx512 => return unsafe { $avx512(v) },
                // SAFETY: the CPU supports AVX2 (checked at run time).
                Simd::Avx2 => return unsafe { $avx2(v) },
                Simd::None => {}
            }
            v.iter_mut().for_each(|x| *x = $f(*x));
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $avx2(v: &mut [f32]) {
            v.iter_mut().for_each(|x| *x = $f(*x));
        }

        /// The same loop with 8 f64 lanes per vector (twice AVX2's).
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        fn $avx512(v: &mut [f32]) {
            v.iter_mut().for_each(|x| *x = $f(*x));
        }
    };
}

/// The vector width the slice loops are compiled for.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Simd {
    None,
    Avx2,
    Avx512,
}

/// AVX-512 when the CPU has it and the GEMM kernel in use is AVX-512 (so
/// `NW_ISA=avx2` measures what an AVX2-only CPU gets), else AVX2 when
/// present. Every variant computes the same bits.
#[cfg(target_arch = "x86_64")]
fn simd() -> Simd {
    static HAS: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        if crate::gemm::Kernel::detect() == crate::gemm::Kernel::Avx512 && is_x86_feature_detected!("avx512f")
        {
            Simd::Avx512
        } else if is_x86_feature_detected!("avx2") {
            Simd::Avx2
        } else {
            Simd::None
        }
    })
}

slice_kernel!(
    /// `v[i] <- sigmoid_approx(v[i])`, vectorised (AVX-512 or AVX2 when available).
    sigmoid_slice,
    sigmoid_approx,
    sigmoid_avx2,
    sigmoid_avx512
);
slice_kernel!(
    /// `v[i] <- tanh_approx(v[i])`, vectorised (AVX-512 or AVX2 when available).
    tanh_slice,
    tanh_approx,
    tanh_avx2,
    tanh_avx512
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Signed distance in units in the last place of the f32 nearest `want`.
    fn ulps(got: f32, want: f64) -> f64 {
        let w = want as f32;
        let ulp = (f32::from_bits(w.abs().to_bits() + 1) - w.abs()) as f64;
        (got as f64 - want) / ulp
    }

    fn grid() -> impl Iterator<Item = f32> {
        (-200_000..=200_000).map(|i| i as f32 * 1e-4).chain((1..2000).map(|i| 1e-3 / i as f32))
    }

    #[test]
    fn within_one_ulp_and_unbiased() {
        let (mut worst, mut bias) = ([0.0f64; 2], [0.0f64; 2]);
        let mut n = 0.0;
        for x in grid() {
            let xd = x as f64;
            let s = ulps(sigmoid_approx(x), 1.0 / (1.0 + (-xd).exp()));
            let t = ulps(tanh_approx(x), xd.tanh());
            worst = [worst[0].max(s.abs()), worst[1].max(t.abs())];
            bias = [bias[0] + s, bias[1] + t];
            n += 1.0;
        }
        assert!(worst[0] <= 1.0 && worst[1] <= 1.0, "worst ulps {worst:?}");
        // correctly rounded values err by at most 0.5 ulp, either way alike
        assert!(
            bias[0].abs() / n < 0.01 && bias[1].abs() / n < 0.01,
            "mean ulps {:?}",
            [bias[0] / n, bias[1] / n]
        );
    }

    #[test]
    fn limits_and_nan() {
        assert!(sigmoid_approx(f32::NAN).is_nan());
        assert!(tanh_approx(f32::NAN).is_nan());
        assert_eq!(sigmoid_approx(f32::INFINITY), 1.0);
        assert_eq!(sigmoid_approx(f32::NEG_INFINITY), 0.0);
        assert_eq!(sigmoid_approx(0.0), 0.5);
        assert_eq!(tanh_approx(f32::INFINITY), 1.0);
        assert_eq!(tanh_approx(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh_approx(0.0), 0.0);
        assert_eq!(tanh_approx(1e-30), 1e-30);
        // sigmoid of a large negative argument is tiny but right, not flushed
        let s = sigmoid_approx(-80.0) as f64;
        assert!((s - (-80f64).exp()).abs() <= 1e-3 * (-80f64).exp(), "{s}");
    }

    #[test]
    fn slices_match_the_scalar_functions_bit_for_bit() {
        let xs: Vec<f32> = grid().step_by(7).chain([f32::NAN, 0.0, -0.0, 1e-30, -90.0, 90.0]).collect();
        let mut s = xs.clone();
        sigmoid_slice(&mut s);
        let mut t = xs.clone();
        tanh_slice(&mut t);
        for (i, &x) in xs.iter().enumerate() {
            assert_eq!(s[i].to_bits(), sigmoid_approx(x).to_bits(), "sigmoid({x})");
            assert_eq!(t[i].to_bits(), tanh_approx(x).to_bits(), "tanh({x})");
        }
        // each compiled variant the CPU can run, not only the one in use
        #[cfg(target_arch = "x86_64")]
        {
            type Variant = unsafe fn(&mut [f32]);
            let mut variants: Vec<(&str, Variant, Variant)> = Vec::new();
            if is_x86_feature_detected!("avx2") {
                variants.push(("avx2", sigmoid_avx2, tanh_avx2));
            }
            if is_x86_feature_detected!("avx512f") {
                variants.push(("avx512", sigmoid_avx512, tanh_avx512));
            }
            for (name, sig, tanh) in variants {
                let (mut s2, mut t2) = (xs.clone(), xs.clone());
                // SAFETY: the CPU supports the variant's features (checked above).
                unsafe { (sig(&mut s2), tanh(&mut t2)) };
                assert!(s2.iter().zip(&s).all(|(a, b)| a.to_bits() == b.to_bits()), "{name} sigmoid");
                assert!(t2.iter().zip(&t).all(|(a, b)| a.to_bits() == b.to_bits()), "{name} tanh");
            }
        }
    }
}
