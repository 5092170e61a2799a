//! bfloat16 products with f32 accumulation: `C <- bf16(alpha A B + beta C0)`
//! with `A`, `B`, `C0` and `C` in bfloat16, the precision torch's Muon runs
//! its Newton-Schulz iteration in.
//!
//! # Arithmetic (one rule on every CPU)
//! `k` is taken in pairs `(2p, 2p + 1)` (an odd `k` ends with the pair
//! `(k - 1, zero)`). Each element's f32 accumulator starts at `+0` and, pair
//! by pair in increasing `p`, becomes
//!
//! ```text
//! acc <- ftz(ftz(acc + a[2p+1] b[2p+1]) + a[2p] b[2p])
//! ```
//!
//! with every bfloat16 input whose f32 value is subnormal read as zero, each
//! product exact in f32 (8-bit significands) or flushed to zero when it
//! falls below f32's normal range, each addition rounded to nearest even, and
//! `ftz` flushing a subnormal sum to a zero of its sign. That is what the
//! AVX512-BF16 instruction `vdpbf16ps` computes (Intel's definition; checked
//! against the hardware on AMD Zen 5 by this module's tests), so the kernel
//! that uses it and the portable emulation (every other CPU, and
//! `NW_ISA=avx2|scalar`) give the same bits. The result is then
//! `bf16(alpha * acc + beta * c0)` (two products and a sum, each rounded in
//! f32; `c0` not read when `beta == 0`), rounded to bfloat16 to nearest even
//! as torch's `float -> bfloat16` conversion does (a NaN becomes `0x7FC0`).
//!
//! # Layout and threads
//! `A` is row-major `m x k` (row stride `lda`), `B` either row-major `k x n`
//! or given as its transpose (`n x k`, row stride `ld`: [`BOperand`]),
//! `C0` and `C` row-major `m x n`. `B` is packed once into 32-column panels
//! of bf16 pairs; the 12 x 32 tiles of `C` are shared out over rayon in
//! blocks of rows. `k` is never split and each element is computed by one
//! tile in the fixed order above, so the result is bit-identical for any
//! thread count. With [`Shape::Symmetric`] only the tiles on or above the
//! diagonal are computed and the strictly lower triangle is copied from the
//! upper one (for `A Aᵀ`, or `A A` with a symmetric `A`).
//!
//! Speed: with AVX512-BF16 (AMD Zen 4 and 5, Intel Cooper Lake and Sapphire
//! Rapids and later) a pair costs one instruction per 16 outputs, twice the
//! f32 FMA rate. Elsewhere the emulation runs: when every input is zero or at
//! least 2^-50 in magnitude (checked once per call) nothing can be flushed and
//! a pair is two f32 FMAs (the products are exact), about 1.5x the f32
//! GEMM's time with its packing; otherwise every operation is followed by its
//! flush, several times slower. So bfloat16 pays only on CPUs with the
//! instruction.

use rayon::prelude::*;

use crate::error::{Result, TensorError};

/// A bfloat16 number, by its bits (the upper half of an f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
#[repr(transparent)]
pub struct Bf16(pub u16);

impl Bf16 {
    /// `+0`.
    pub const ZERO: Bf16 = Bf16(0);

    /// `x` rounded to nearest even (torch's `c10::BFloat16` conversion); a
    /// NaN becomes the quiet NaN `0x7FC0`, an f32 above the largest
    /// bfloat16 rounds to infinity.
    ///
    /// ```
    /// use nw_tensor::gemm::Bf16;
    /// assert_eq!(Bf16::from_f32(1.0).0, 0x3F80);
    /// assert_eq!(Bf16::from_f32(1.0 + 1.0 / 256.0).to_f32(), 1.0); // a tie, to even
    /// assert_eq!(Bf16::from_f32(f32::NAN).0, 0x7FC0);
    /// ```
    #[inline(always)]
    pub fn from_f32(x: f32) -> Bf16 {
        let b = x.to_bits();
        let r = (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16;
        Bf16(if x.is_nan() { 0x7FC0 } else { r })
    }

    /// The exact f32 value.
    #[inline(always)]
    pub fn to_f32(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }
}

/// How `B` (`k x n`) is given.
#[derive(Clone, Copy, Debug)]
pub enum BOperand<'a> {
    /// Row-major `k x n`: `B[kk][j] = b[kk * ld + j]`.
    RowMajor {
        /// The elements.
        b: &'a [Bf16],
        /// Row stride (>= n).
        ld: usize,
    },
    /// As its transpose, row-major `n x k`: `B[kk][j] = q[j * ld + kk]`
    /// (`A Bᵀ` products such as `X Xᵀ`).
    Transposed {
        /// The elements.
        q: &'a [Bf16],
        /// Row stride (>= k).
        ld: usize,
    },
}

/// Which tiles of `C` are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// All of them.
    General,
    /// `m == n` and the product is known to be symmetric (`A Aᵀ`, or `A A`
    /// with a bitwise-symmetric `A`), as is `C0`: the tiles on or above the
    /// diagonal, then the lower triangle copied from the upper one.
    Symmetric,
}

/// Rows of a tile.
pub const MR: usize = 12;
/// Columns of a tile (one panel of packed `B`).
pub const NR: usize = 32;
/// Row tiles per parallel task.
const ROW_TILES_PER_TASK: usize = 8;

/// Whether this process runs the AVX512-BF16 kernel: the CPU has
/// `avx512bf16` and `NW_ISA` selects the AVX-512 kernel (`NW_ISA=avx2`
/// measures what a CPU without it gets: the emulation).
pub fn hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HW: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HW.get_or_init(|| {
            super::isa::active() == super::Kernel::Avx512 && is_x86_feature_detected!("avx512bf16")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The bf16 pair `(lo, hi)` as one u32 (`lo` in the low half), the layout
/// `vdpbf16ps` reads.
#[inline(always)]
fn pair(lo: Bf16, hi: Bf16) -> u32 {
    lo.0 as u32 | ((hi.0 as u32) << 16)
}

/// `C <- bf16(alpha A B + beta C0)`, see the [module docs](self) for the
/// arithmetic. `c0` (row-major `m x n`, row stride `ldc0`) is read only
/// when `beta != 0`; `c` is row-major `m x n` with row stride `ldc`. Runs
/// the AVX512-BF16 kernel when [`hardware`] says so, the emulation
/// otherwise; same bits either way and on any thread count.
///
/// ```
/// use nw_tensor::gemm::{BOperand, Bf16, Shape, gemm_bf16};
/// let bf = |v: &[f32]| v.iter().map(|&x| Bf16::from_f32(x)).collect::<Vec<_>>();
/// let a = bf(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]); // 2 x 3
/// let mut c = vec![Bf16::ZERO; 4];
/// gemm_bf16(1.0, &a, 3, 2, 3, BOperand::Transposed { q: &a, ld: 3 }, 2, 0.0, None, &mut c, 2, Shape::Symmetric)
///     .unwrap();
/// let got: Vec<f32> = c.iter().map(|x| x.to_f32()).collect();
/// assert_eq!(got, [14.0, 32.0, 32.0, 77.0]);
/// ```
///
/// # Errors
/// A slice too short for its shape and stride, a stride below its row
/// length, or [`Shape::Symmetric`] with `m != n`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_bf16(
    alpha: f32,
    a: &[Bf16],
    lda: usize,
    m: usize,
    k: usize,
    b: BOperand<'_>,
    n: usize,
    beta: f32,
    c0: Option<(&[Bf16], usize)>,
    c: &mut [Bf16],
    ldc: usize,
    shape: Shape,
) -> Result<()> {
    gemm_bf16_with(hardware(), alpha, a, lda, m, k, b, n, beta, c0, c, ldc, shape)
}

fn fits(len: usize, rows: usize, cols: usize, ld: usize) -> bool {
    rows == 0
        || cols == 0
        || (ld >= cols
            && (rows - 1).checked_mul(ld).and_then(|x| x.checked_add(cols)).is_some_and(|x| x <= len))
}

/// [`gemm_bf16`] with the kernel chosen by the caller (`hardware = true`
/// needs a CPU with `avx512bf16`; without one it falls back to the
/// emulation). Tests compare the two.
///
/// # Errors
/// As [`gemm_bf16`].
#[allow(clippy::too_many_arguments)]
pub fn gemm_bf16_with(
    hardware: bool,
    alpha: f32,
    a: &[Bf16],
    lda: usize,
    m: usize,
    k: usize,
    b: BOperand<'_>,
    n: usize,
    beta: f32,
    c0: Option<(&[Bf16], usize)>,
    c: &mut [Bf16],
    ldc: usize,
    shape: Shape,
) -> Result<()> {
    let bad = |what: &str| Err(TensorError::InvalidArgument { op: "gemm_bf16", reason: what.to_string() });
    if !fits(a.len(), m, k, lda) {
        return bad("A does not fit its slice");
    }
    let b_ok = match b {
        BOperand::RowMajor { b, ld } => fits(b.len(), k, n, ld),
        BOperand::Transposed { q, ld } => fits(q.len(), n, k, ld),
    };
    if !b_ok {
        return bad("B does not fit its slice");
    }
    if !fits(c.len(), m, n, ldc) {
        return bad("C does not fit its slice");
    }
    if beta != 0.0 {
        match c0 {
            Some((c0, ld)) if fits(c0.len(), m, n, ld) => {}
            Some(_) => return bad("C0 does not fit its slice"),
            None => return bad("beta != 0 needs C0"),
        }
    }
    if shape == Shape::Symmetric && m != n {
        return bad("a symmetric product must be square");
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let hardware = hardware && cfg!(target_arch = "x86_64") && hw_available();
    let kp = k.div_ceil(2);
    let panels = n.div_ceil(NR);
    // B packed: panel q holds pairs (kk = 2p, 2p + 1) of columns q*NR .. q*NR + NR
    let mut packed = vec![0u32; panels * kp * NR];
    packed.par_chunks_mut((kp * NR).max(1)).enumerate().for_each(|(q, panel)| pack_panel(b, k, n, q, panel));
    // the emulation's fast path: no input can be flushed (see `no_flush`)
    let plain = !hardware && {
        let b_ok = packed
            .par_iter()
            .with_min_len(1 << 14)
            .all(|&w| no_flush(w as u16) && no_flush((w >> 16) as u16));
        b_ok && (0..m).into_par_iter().all(|i| a[i * lda..i * lda + k].iter().all(|x| no_flush(x.0)))
    };
    let packed = &packed;
    let rows_per_task = MR * ROW_TILES_PER_TASK;
    c.par_chunks_mut(rows_per_task * ldc).enumerate().for_each(|(task, cblock)| {
        let i0 = task * rows_per_task;
        let i1 = (i0 + rows_per_task).min(m);
        if i0 >= i1 {
            return;
        }
        // panel outermost: one packed panel serves every row tile of the task
        let first = if shape == Shape::Symmetric { i0 / NR } else { 0 };
        for q in first..panels {
            let j0 = q * NR;
            let cols = (n - j0).min(NR);
            let panel = &packed[q * kp * NR..(q + 1) * kp * NR];
            for ti in (i0..i1).step_by(MR) {
                if shape == Shape::Symmetric && j0 + NR <= ti {
                    continue; // wholly below the diagonal
                }
                let rows = (i1 - ti).min(MR);
                let mut tile = [0f32; MR * NR];
                // rows past the task's end repeat row ti (their results are dropped)
                let arows: [&[Bf16]; MR] = std::array::from_fn(|r| {
                    let i = ti + if r < rows { r } else { 0 };
                    &a[i * lda..i * lda + k]
                });
                run_tile(hardware, plain, &arows, k, panel, &mut tile);
                for r in 0..rows {
                    let i = ti + r;
                    let out = &mut cblock[(i - i0) * ldc + j0..(i - i0) * ldc + j0 + cols];
                    let acc = &tile[r * NR..r * NR + cols];
                    let c0r = match c0 {
                        Some((c0, ld)) if beta != 0.0 => Some(&c0[i * ld + j0..i * ld + j0 + cols]),
                        _ => None,
                    };
                    store(out, acc, c0r, alpha, beta);
                }
            }
        }
    });
    if shape == Shape::Symmetric {
        mirror(c, m, ldc);
    }
    Ok(())
}

/// `out = bf16(alpha acc + beta c0)` (or `bf16(alpha acc)`), vectorised
/// for the widest instruction set the CPU has (the same IEEE operations on
/// each).
fn store(out: &mut [Bf16], acc: &[f32], c0: Option<&[Bf16]>, alpha: f32, beta: f32) {
    #[inline(always)]
    fn body(out: &mut [Bf16], acc: &[f32], c0: Option<&[Bf16]>, alpha: f32, beta: f32) {
        match c0 {
            Some(c0) => {
                for ((o, &s), &z) in out.iter_mut().zip(acc).zip(c0) {
                    *o = Bf16::from_f32(alpha * s + beta * z.to_f32());
                }
            }
            None => {
                for (o, &s) in out.iter_mut().zip(acc) {
                    *o = Bf16::from_f32(alpha * s);
                }
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn wide(out: &mut [Bf16], acc: &[f32], c0: Option<&[Bf16]>, alpha: f32, beta: f32) {
            body(out, acc, c0, alpha, beta)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(out: &mut [Bf16], acc: &[f32], c0: Option<&[Bf16]>, alpha: f32, beta: f32) {
            body(out, acc, c0, alpha, beta)
        }
        match emul_isa() {
            // SAFETY: the features were detected on this CPU.
            2 => return unsafe { wide(out, acc, c0, alpha, beta) },
            // SAFETY: as above.
            1 => return unsafe { avx2(out, acc, c0, alpha, beta) },
            _ => {}
        }
    }
    body(out, acc, c0, alpha, beta)
}

/// A pointer that may cross threads (each task writes a disjoint block).
#[derive(Clone, Copy)]
struct SharedMut(*mut Bf16);
// SAFETY: used only by `mirror`, whose tasks touch disjoint elements.
unsafe impl Send for SharedMut {}
// SAFETY: as above.
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The element at `offset` (a method, so closures capture the whole
    /// wrapper rather than its raw pointer).
    fn at(self, offset: usize) -> *mut Bf16 {
        self.0.wrapping_add(offset)
    }
}

/// Copies the strictly upper triangle of the `m x m` matrix onto the lower
/// one, in square blocks (the column-strided reads stay in cache).
fn mirror(c: &mut [Bf16], m: usize, ldc: usize) {
    const B: usize = 64;
    assert!(m == 0 || (m - 1) * ldc + m <= c.len(), "mirror: the matrix fits its slice");
    let base = SharedMut(c.as_mut_ptr());
    (0..m.div_ceil(B)).into_par_iter().for_each(|bi| {
        let (i0, i1) = (bi * B, ((bi + 1) * B).min(m));
        for bj in (0..i1).step_by(B) {
            for i in i0..i1 {
                for j in bj..(bj + B).min(i) {
                    // SAFETY: in bounds (checked above); the task for block
                    // row bi writes only elements (i, j) with j < i of its own
                    // rows and reads only (j, i), j < i, which no task writes.
                    unsafe { *base.at(i * ldc + j) = *base.at(j * ldc + i) };
                }
            }
        }
    });
}

fn hw_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512bf16") && is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Packs panel `q` (columns `q*NR ..`) of `B` as `[pair p][column jj]`
/// u32 pairs, zero past `n` and past `k`.
fn pack_panel(b: BOperand<'_>, k: usize, n: usize, q: usize, panel: &mut [u32]) {
    let j0 = q * NR;
    let cols = (n - j0).min(NR);
    match b {
        BOperand::RowMajor { b, ld } => {
            for (p, dst) in panel.chunks_exact_mut(NR).enumerate() {
                let (k0, k1) = (2 * p, 2 * p + 1);
                let r0 = &b[k0 * ld + j0..k0 * ld + j0 + cols];
                if k1 < k {
                    let r1 = &b[k1 * ld + j0..k1 * ld + j0 + cols];
                    for ((d, &lo), &hi) in dst.iter_mut().zip(r0).zip(r1) {
                        *d = pair(lo, hi);
                    }
                } else {
                    for (d, &lo) in dst.iter_mut().zip(r0) {
                        *d = pair(lo, Bf16::ZERO);
                    }
                }
            }
        }
        BOperand::Transposed { q, ld } => {
            // row j of the transpose is column j of B. Blocks of 16 pairs:
            // the 16 panel rows being written stay in L1 while the 32
            // source rows are read 64 bytes at a time.
            const PB: usize = 16;
            let full = k / 2;
            for p0 in (0..full).step_by(PB) {
                let p1 = (p0 + PB).min(full);
                let block = &mut panel[p0 * NR..p1 * NR];
                for jj in 0..cols {
                    let row = &q[(j0 + jj) * ld + 2 * p0..(j0 + jj) * ld + 2 * p1];
                    for (dst, two) in block.chunks_exact_mut(NR).zip(row.chunks_exact(2)) {
                        dst[jj] = pair(two[0], two[1]);
                    }
                }
            }
            if k % 2 == 1 {
                let dst = &mut panel[full * NR..(full + 1) * NR];
                for (jj, d) in dst.iter_mut().enumerate().take(cols) {
                    *d = pair(q[(j0 + jj) * ld + k - 1], Bf16::ZERO);
                }
            }
        }
    }
}

/// One `MR x NR` tile: `tile[r*NR + jj] = Σ A[r] B[:, jj]` in the module's
/// pair order.
fn run_tile(
    hardware: bool,
    plain: bool,
    arows: &[&[Bf16]; MR],
    k: usize,
    panel: &[u32],
    tile: &mut [f32; MR * NR],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if hardware {
            // SAFETY: `hardware` is only true when the CPU has avx512f and
            // avx512bf16 (checked by `hw_available`); every row holds `k`
            // elements and the panel `ceil(k/2) * NR` pairs.
            unsafe { x86::tile(arows, k, panel, tile) };
            return;
        }
        match (plain, emul_isa()) {
            // SAFETY (each arm): the features were detected on this CPU.
            (true, 2) => return unsafe { plain_avx512(arows, k, panel, tile) },
            (true, 1) => return unsafe { plain_avx2(arows, k, panel, tile) },
            (false, 1 | 2) => return unsafe { emulated_avx2(arows, k, panel, tile) },
            _ => {}
        }
    }
    let _ = hardware;
    if plain { plain_tile::<false>(arows, k, panel, tile) } else { emulated(arows, k, panel, tile) }
}

/// 2: AVX-512F with FMA, 1: AVX2 with FMA, 0: neither.
#[cfg(target_arch = "x86_64")]
fn emul_isa() -> u8 {
    static ISA: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        let fma = is_x86_feature_detected!("fma");
        let cap = super::isa::active();
        if fma && cap == super::Kernel::Avx512 && is_x86_feature_detected!("avx512f") {
            2
        } else if fma && cap != super::Kernel::Scalar && is_x86_feature_detected!("avx2") {
            1
        } else {
            0
        }
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn emulated_avx2(arows: &[&[Bf16]; MR], k: usize, panel: &[u32], tile: &mut [f32; MR * NR]) {
    emulated(arows, k, panel, tile)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn plain_avx2(arows: &[&[Bf16]; MR], k: usize, panel: &[u32], tile: &mut [f32; MR * NR]) {
    plain_tile::<true>(arows, k, panel, tile)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn plain_avx512(arows: &[&[Bf16]; MR], k: usize, panel: &[u32], tile: &mut [f32; MR * NR]) {
    plain_tile::<true>(arows, k, panel, tile)
}

/// Whether no input can make the instruction flush anything: every value is
/// a zero, or finite-or-not with magnitude at least 2^-50 (exponent field >=
/// 77). Then every product is exact and normal (a multiple of 2^-114 of
/// magnitude >= 2^-100), and every partial sum, a rounded sum of such
/// multiples, is again a multiple of 2^-114, so zero or normal: `ftz` and
/// `daz` change nothing and the tile is plain f32 arithmetic.
fn no_flush(x: u16) -> bool {
    x & 0x7FFF == 0 || (x >> 7) & 0xFF >= 77
}

/// The tile when [`no_flush`] holds for all its inputs: `acc + a b` with an
/// exact product is `fma(a, b, acc)`, so `FMA` (the CPU has it) gives the
/// same bits as the separate multiply and add. Computed in 6 x 16 blocks, so
/// the accumulators fit the vector registers of AVX2.
#[inline(always)]
fn plain_tile<const FMA: bool>(arows: &[&[Bf16]; MR], k: usize, panel: &[u32], tile: &mut [f32; MR * NR]) {
    const BR: usize = 6;
    const BC: usize = 16;
    let kp = k.div_ceil(2);
    let step = |acc: f32, a: f32, b: f32| if FMA { a.mul_add(b, acc) } else { acc + a * b };
    for r0 in (0..MR).step_by(BR) {
        for c0 in (0..NR).step_by(BC) {
            let mut acc = [[0f32; BC]; BR];
            for p in 0..kp {
                let bp: &[u32; BC] =
                    panel[p * NR + c0..p * NR + c0 + BC].try_into().expect("a whole block row");
                let mut blo = [0f32; BC];
                let mut bhi = [0f32; BC];
                for jj in 0..BC {
                    blo[jj] = f32::from_bits(bp[jj] << 16);
                    bhi[jj] = f32::from_bits(bp[jj] & 0xFFFF_0000);
                }
                for r in 0..BR {
                    let row = arows[r0 + r];
                    let lo = row[2 * p].to_f32();
                    let hi = if 2 * p + 1 < k { row[2 * p + 1].to_f32() } else { 0.0 };
                    for jj in 0..BC {
                        acc[r][jj] = step(step(acc[r][jj], hi, bhi[jj]), lo, blo[jj]);
                    }
                }
            }
            for r in 0..BR {
                tile[(r0 + r) * NR + c0..(r0 + r) * NR + c0 + BC].copy_from_slice(&acc[r]);
            }
        }
    }
}

/// Read a bf16 as f32, subnormals as zero.
#[inline(always)]
fn daz(bits: u32) -> f32 {
    let x = f32::from_bits(bits << 16);
    if bits & 0x7F80 == 0 { f32::from_bits((bits << 16) & 0x8000_0000) } else { x }
}

/// A subnormal f32 flushed to the zero of its sign.
#[inline(always)]
fn ftz(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE { f32::from_bits(x.to_bits() & 0x8000_0000) } else { x }
}

/// The portable tile: `vdpbf16ps`'s arithmetic in plain f32 operations.
#[inline(always)]
fn emulated(arows: &[&[Bf16]; MR], k: usize, panel: &[u32], tile: &mut [f32; MR * NR]) {
    let mut acc = [[0f32; NR]; MR];
    for p in 0..k.div_ceil(2) {
        let bp: &[u32; NR] = panel[p * NR..(p + 1) * NR].try_into().expect("a whole panel row");
        let (mut blo, mut bhi) = ([0f32; NR], [0f32; NR]);
        for jj in 0..NR {
            blo[jj] = daz(bp[jj] & 0xFFFF);
            bhi[jj] = daz(bp[jj] >> 16);
        }
        for r in 0..MR {
            let lo = daz(arows[r][2 * p].0 as u32);
            let hi = if 2 * p + 1 < k { daz(arows[r][2 * p + 1].0 as u32) } else { 0.0 };
            let row = &mut acc[r];
            for jj in 0..NR {
                let t = ftz(row[jj] + ftz(hi * bhi[jj]));
                row[jj] = ftz(t + ftz(lo * blo[jj]));
            }
        }
    }
    for r in 0..MR {
        tile[r * NR..(r + 1) * NR].copy_from_slice(&acc[r]);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Bf16, MR, NR};

    /// The AVX512-BF16 tile: 24 zmm accumulators, `vdpbf16ps` per pair.
    ///
    /// # Safety
    /// The CPU must have avx512f and avx512bf16; every row of `arows` holds
    /// at least `k` elements and `panel` at least `ceil(k/2) * NR` pairs.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn tile(arows: &[&[Bf16]; MR], k: usize, panel: &[u32], tile: &mut [f32; MR * NR]) {
        debug_assert!(panel.len() >= k.div_ceil(2) * NR);
        let ptrs: [*const u16; MR] = std::array::from_fn(|r| arows[r].as_ptr() as *const u16);
        let bp = panel.as_ptr();
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let full = k / 2;
        for p in 0..full {
            // SAFETY: p < ceil(k/2), so the panel row is in bounds; 2p + 1 < k.
            unsafe {
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_ps(bp.add(p * NR) as *const f32));
                let b1: __m512bh = std::mem::transmute(_mm512_loadu_ps(bp.add(p * NR + 16) as *const f32));
                for r in 0..MR {
                    let av = (ptrs[r].add(2 * p) as *const u32).read_unaligned();
                    let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(av as i32));
                    acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
                    acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
                }
            }
        }
        if k % 2 == 1 {
            let p = full;
            // SAFETY: as above; the odd tail reads element k - 1 alone.
            unsafe {
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_ps(bp.add(p * NR) as *const f32));
                let b1: __m512bh = std::mem::transmute(_mm512_loadu_ps(bp.add(p * NR + 16) as *const f32));
                for r in 0..MR {
                    let av = *ptrs[r].add(2 * p) as u32;
                    let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(av as i32));
                    acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
                    acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
                }
            }
        }
        for r in 0..MR {
            // SAFETY: tile holds MR * NR floats.
            unsafe {
                _mm512_storeu_ps(tile.as_mut_ptr().add(r * NR), acc[r][0]);
                _mm512_storeu_ps(tile.as_mut_ptr().add(r * NR + 16), acc[r][1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    fn mat(len: usize, seed: u64) -> Vec<Bf16> {
        let mut r = rng(seed);
        (0..len).map(|_| Bf16::from_f32(r())).collect()
    }

    /// The module's rule, one element at a time (no packing, no tiles).
    fn reference(
        a: &[Bf16],
        lda: usize,
        m: usize,
        k: usize,
        b: &dyn Fn(usize, usize) -> Bf16,
        n: usize,
    ) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0f32;
                for p in 0..k.div_ceil(2) {
                    let (alo, blo) = (daz(a[i * lda + 2 * p].0 as u32), daz(b(2 * p, j).0 as u32));
                    let (ahi, bhi) = if 2 * p + 1 < k {
                        (daz(a[i * lda + 2 * p + 1].0 as u32), daz(b(2 * p + 1, j).0 as u32))
                    } else {
                        (0.0, 0.0)
                    };
                    acc = ftz(ftz(acc + ftz(ahi * bhi)) + ftz(alo * blo));
                }
                out[i * n + j] = acc;
            }
        }
        out
    }

    #[test]
    fn rounding_is_torchs() {
        assert_eq!(Bf16::from_f32(1.0).0, 0x3F80);
        // ties to even, both ways
        assert_eq!(Bf16::from_f32(f32::from_bits(0x3F80_8000)).0, 0x3F80);
        assert_eq!(Bf16::from_f32(f32::from_bits(0x3F81_8000)).0, 0x3F82);
        assert_eq!(Bf16::from_f32(f32::from_bits(0x3F80_8001)).0, 0x3F81);
        assert_eq!(Bf16::from_f32(f32::MAX).0, 0x7F80);
        assert_eq!(Bf16::from_f32(-0.0).0, 0x8000);
        assert_eq!(Bf16::from_f32(f32::NAN).0, 0x7FC0);
    }

    #[test]
    fn every_shape_and_layout_matches_the_element_rule() {
        for &(m, n, k) in &[(1, 1, 1), (5, 7, 3), (12, 32, 8), (13, 33, 17), (30, 70, 64), (25, 40, 1)] {
            let lda = k + 1;
            let a = mat(m * lda, 1);
            let bt = mat(n * (k + 2), 2); // transposed, ld = k + 2
            let brm = mat(k * (n + 3), 3); // row-major, ld = n + 3
            let c0 = mat(m * n, 4);
            for hw in [false, true] {
                let mut c = vec![Bf16::ZERO; m * n];
                gemm_bf16_with(
                    hw,
                    0.5,
                    &a,
                    lda,
                    m,
                    k,
                    BOperand::Transposed { q: &bt, ld: k + 2 },
                    n,
                    -2.0,
                    Some((&c0, n)),
                    &mut c,
                    n,
                    Shape::General,
                )
                .unwrap();
                let want = reference(&a, lda, m, k, &|kk, j| bt[j * (k + 2) + kk], n);
                for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                    let w = Bf16::from_f32(0.5 * w + -2.0 * c0[i].to_f32());
                    assert_eq!(got, w, "transposed {m}x{n}x{k} hw={hw} at {i}");
                }
                gemm_bf16_with(
                    hw,
                    1.0,
                    &a,
                    lda,
                    m,
                    k,
                    BOperand::RowMajor { b: &brm, ld: n + 3 },
                    n,
                    0.0,
                    None,
                    &mut c,
                    n,
                    Shape::General,
                )
                .unwrap();
                let want = reference(&a, lda, m, k, &|kk, j| brm[kk * (n + 3) + j], n);
                for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                    assert_eq!(got, Bf16::from_f32(w), "row-major {m}x{n}x{k} hw={hw} at {i}");
                }
            }
        }
    }

    #[test]
    fn symmetric_product_equals_the_general_one() {
        for &(m, k) in &[(1, 3), (13, 9), (45, 100), (64, 31)] {
            let x = mat(m * k, 7);
            let mut full = vec![Bf16::ZERO; m * m];
            let mut sym = vec![Bf16(0xFFFF); m * m];
            let bt = BOperand::Transposed { q: &x, ld: k };
            gemm_bf16(1.0, &x, k, m, k, bt, m, 0.0, None, &mut full, m, Shape::General).unwrap();
            gemm_bf16(1.0, &x, k, m, k, bt, m, 0.0, None, &mut sym, m, Shape::Symmetric).unwrap();
            assert_eq!(full, sym, "{m}x{k}");
        }
    }

    #[test]
    fn bits_do_not_depend_on_the_thread_count() {
        let (m, n, k) = (100, 90, 70);
        let a = mat(m * k, 8);
        let b = mat(k * n, 9);
        let run = |t: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            pool.install(|| {
                let mut c = vec![Bf16::ZERO; m * n];
                gemm_bf16(
                    1.0,
                    &a,
                    k,
                    m,
                    k,
                    BOperand::RowMajor { b: &b, ld: n },
                    n,
                    0.0,
                    None,
                    &mut c,
                    n,
                    Shape::General,
                )
                .unwrap();
                c
            })
        };
        assert_eq!(run(1), run(2));
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn the_emulation_has_the_instructions_bits_at_the_edges() {
        // subnormal inputs, products below the normal range, cancellation to
        // a subnormal sum, signed zeros; hardware vs emulation (on a CPU
        // without avx512bf16 both run the emulation and this checks the rule
        // against itself only)
        let vals = [
            0.0f32,
            -0.0,
            1.0,
            -1.0,
            f32::from_bits(0x0010_0000),
            f32::from_bits(0x8030_0000),
            1e-19,
            -2e-19,
            1e-20,
            3.0e38,
            1.5,
            -0.75,
        ];
        let a: Vec<Bf16> = vals.iter().map(|&v| Bf16::from_f32(v)).collect();
        let k = a.len();
        let bt: Vec<Bf16> = (0..k).flat_map(|s| (0..k).map(move |i| (i + s) % k)).map(|i| a[i]).collect();
        let mut hw = vec![Bf16::ZERO; k];
        let mut em = vec![Bf16::ZERO; k];
        for (i, out) in [&mut hw, &mut em].into_iter().enumerate() {
            gemm_bf16_with(
                i == 0,
                1.0,
                &a,
                k,
                1,
                k,
                BOperand::Transposed { q: &bt, ld: k },
                k,
                0.0,
                None,
                out,
                k,
                Shape::General,
            )
            .unwrap();
        }
        assert_eq!(hw, em);
        println!("avx512bf16 on this CPU: {}", hw_available());
    }

    #[test]
    fn the_fast_emulation_equals_the_flushing_one_where_nothing_can_flush() {
        // magnitudes from 2^-50 (the fast path's floor) to 2^10, random
        // signs, a few zeros: products down to 2^-100 and sums that cancel
        let mut r = rng(11);
        let mut val = || {
            let u = r();
            if u.abs() < 0.05 {
                return Bf16::ZERO;
            }
            let e = 77 + ((u.abs() * 1e4) as u32 % 60);
            let man = ((r().abs() * 127.0) as u16) & 0x7F;
            Bf16(((u < 0.0) as u16) << 15 | (e as u16) << 7 | man)
        };
        for k in [1usize, 2, 7, 64] {
            let a: Vec<Bf16> = (0..MR * k).map(|_| val()).collect();
            let panel: Vec<u32> = (0..k.div_ceil(2) * NR).map(|_| pair(val(), val())).collect();
            let panel: Vec<u32> = if k % 2 == 1 {
                // the odd tail pair has a zero high half
                panel.iter().enumerate().map(|(i, &w)| if i / NR == k / 2 { w & 0xFFFF } else { w }).collect()
            } else {
                panel
            };
            assert!(a.iter().all(|x| no_flush(x.0)));
            let arows: [&[Bf16]; MR] = std::array::from_fn(|i| &a[i * k..(i + 1) * k]);
            let (mut exact, mut plain, mut fused) = ([0f32; MR * NR], [0f32; MR * NR], [0f32; MR * NR]);
            emulated(&arows, k, &panel, &mut exact);
            plain_tile::<false>(&arows, k, &panel, &mut plain);
            plain_tile::<true>(&arows, k, &panel, &mut fused);
            let bits = |t: &[f32; MR * NR]| t.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&exact), bits(&plain), "k = {k}");
            assert_eq!(bits(&exact), bits(&fused), "k = {k}");
            if hw_available() {
                let mut hw = [0f32; MR * NR];
                run_tile(true, false, &arows, k, &panel, &mut hw);
                assert_eq!(bits(&exact), bits(&hw), "k = {k}: the instruction");
            }
        }
        assert!(!no_flush(Bf16::from_f32(1e-16).0) && !no_flush(0x0001) && no_flush(0x8000));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let a = vec![Bf16::ZERO; 6];
        let mut c = vec![Bf16::ZERO; 4];
        let bt = BOperand::Transposed { q: &a, ld: 3 };
        assert!(gemm_bf16(1.0, &a, 3, 3, 3, bt, 2, 0.0, None, &mut c, 2, Shape::General).is_err());
        assert!(gemm_bf16(1.0, &a, 3, 2, 3, bt, 2, 1.0, None, &mut c, 2, Shape::General).is_err());
        assert!(gemm_bf16(1.0, &a, 2, 2, 3, bt, 2, 0.0, None, &mut c, 2, Shape::General).is_err());
        assert!(gemm_bf16(1.0, &a, 3, 1, 3, bt, 2, 0.0, None, &mut c, 2, Shape::Symmetric).is_err());
    }
}
