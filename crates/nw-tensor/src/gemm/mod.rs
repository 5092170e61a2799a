//! Single-precision GEMM: `C <- alpha A B + beta C` over strided operands.
//!
//! # Contract
//! `A` is `m x k`, `B` is `k x n`, `C` is `m x n`; each is a pointer plus a
//! row stride and a column stride counted in elements (`isize`, so a
//! transposed operand is the same buffer with its strides swapped, and
//! negative strides are allowed). Element `(i, j)` of `A` lives at
//! `a + i * rsa + j * csa`. `C` must not overlap `A` or `B`. `C`'s own elements
//! must not overlap each other (no zero stride on a dimension longer than 1).
//!
//! * `beta == 0`: `C` is written without being read, so NaN or garbage in `C`
//!   never leaks into the result.
//! * `alpha == 0` (or `k == 0`): `A` and `B` are not read; `C <- beta C`.
//! * Otherwise each element is `alpha * acc + beta * c` with `acc` the
//!   product sum of one `KC` block, and later `K` blocks add `alpha * acc`.
//!
//! # Algorithm (BLIS-style, see `driver.rs`)
//! Loops, outermost first, inside one thread's region of `C`:
//!
//! ```text
//! jc: columns of C in blocks of NC        (B block kc x nc, packed: pack.rs)
//!  pc: the k dimension in blocks of kc    (kc <= KC_MAX, same for every block of one call)
//!   ic: rows of C in blocks of MC         (A block mc x kc, packed)
//!    jr: NR-wide micro-panels of the packed B block   (one lives in L1)
//!     ir: MR-tall micro-panels of the packed A block  (streamed from L2)
//!      micro-kernel: MR x NR tile of C in registers, kc rank-1 updates
//! ```
//!
//! Products of at most [`GEMV_MAX_M`] rows whose A rows and B columns are
//! contiguous (a linear layer's forward at batch 1: `x W^T`) skip all of this
//! and run as dot products straight from the operands (`gemv.rs`; a
//! different summation order from the blocked loops, the same across threads
//! and across the AVX2 and AVX-512 kernels).
//!
//! Block sizes: `KC_MAX` = 256 (`kc` is `k` split into equal blocks no larger
//! than that, so a k = 784 product runs 4 blocks of 196, not 3 of 256 and a
//! tail of 16), `MC` = 384 rows, `NC` = 2048 columns. The micro-kernels:
//!
//! | [`Kernel`]          | MR x NR | registers                        |
//! |---------------------|---------|----------------------------------|
//! | `Avx512`            | 12 x 32 | 24 zmm accumulators              |
//! | `Avx2`              |  6 x 16 | 12 ymm accumulators              |
//! | `Scalar` (portable) |  4 x 8  | plain `f32`, for any target      |
//!
//! A kernel is chosen at run time ([`Kernel::detect`]; `NW_ISA=avx2|avx512|scalar`
//! forces one, see [`isa`]); the binary is built without `target-cpu=native`.
//!
//! # Threads and reproducibility
//! The tiles of `C` form a fixed grid of `MR x NR` tiles from `C[0, 0]`. With
//! `T = rayon::current_num_threads()` threads and enough work, the grid is
//! cut into `tm x tn <= T` rectangles of whole tiles, chosen by a cost model
//! (tiles of the slowest rectangle plus its packing; see [`partition`]). Each
//! rectangle runs the loops above on its own, in one parallel region with no
//! barrier inside, packing only the A rows and B columns it needs. So with a
//! split over N alone every column of B is packed exactly once, by the thread
//! that uses it, and each thread packs all of A; a split over M packs B once
//! per row of rectangles. A short, wide training product such as
//! `128 x 784 x 512` (11 x 16 tiles of 12 x 32) is split over N, giving each
//! of two threads 11 x 8 full-height tiles rather than half of 128 rows.
//! `K` is never split and `kc` does not depend on `T`, so every
//! element of `C` sees the same operations in the same order whatever `T`
//! is: results are bit-identical for any thread count. (They do depend on the
//! kernel: the scalar one rounds each multiply and add separately, while the
//! AVX2 and AVX-512 ones fuse them, in the same order, and agree with each
//! other.) Products under [`PAR_MIN_FLOPS`] run on the calling thread.
//!
//! # Memory
//! Each thread that has run a GEMM keeps one packing buffer for reuse, at
//! most `(MC + NC) x KC` floats (about 2.4 MiB) and only as large as the
//! products it has seen need; nothing is allocated per call after that.

pub mod bf16;
mod driver;
mod gemv;
pub mod isa;
mod kernel_scalar;
#[cfg(target_arch = "x86_64")]
mod kernel_x86;
mod naive;
mod pack;
mod packed;
mod prepacked;
mod slices;
mod syrk;
#[cfg(test)]
mod tests;

pub use bf16::{BOperand, Bf16, Shape, gemm_bf16};
pub use gemv::{CHUNK_N as GEMV_CHUNK_N, GEMV_MAX_M, GEMV_PAR_MIN_FLOPS};
pub use naive::sgemm_naive;
pub use packed::gemm_packed_serial;
pub use prepacked::{PackCache, PackedB, PackedMatrix, gemm_packed};
pub use slices::{MatRef, gemm_slices};
pub use syrk::{STRIP as SYRK_STRIP, syrk_slices, syrk_with};

use rayon::prelude::*;

use driver::{Blocking, MicroKernel};

/// Products with fewer floating-point operations (`2 m n k`, here a
/// 64 x 64 x 64 product, about 3 us of one core's work) than this run
/// single-threaded. Above it the split pays even for small products: the
/// regions are handed to rayon as one parallel loop, and a region that no
/// idle thread picks up is run by the calling thread itself, so a busy or
/// sleeping pool costs little more than the single-threaded call.
pub const PAR_MIN_FLOPS: usize = 2 * 64 * 64 * 64;

/// A micro-kernel instruction set. [`Kernel::detect`] picks the best one the
/// CPU supports; tests and benchmarks force others through [`sgemm_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Portable Rust, no intrinsics; used on CPUs without AVX2+FMA and on
    /// every non-x86 target.
    Scalar,
    /// x86-64 AVX2 + FMA, 6 x 16 tiles.
    Avx2,
    /// x86-64 AVX-512F, 12 x 32 tiles.
    Avx512,
}

impl Kernel {
    /// Every variant, best first.
    pub const ALL: [Kernel; 3] = [Kernel::Avx512, Kernel::Avx2, Kernel::Scalar];

    /// Whether this CPU can run the variant.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2 | Kernel::Avx512 => false,
        }
    }

    /// The variant in use: the best one this CPU supports, unless the
    /// environment variable `NW_ISA` forces another ([`isa`]; read once,
    /// then cached).
    pub fn detect() -> Kernel {
        isa::active()
    }

    /// The variants this CPU supports, best first.
    pub fn available() -> Vec<Kernel> {
        Kernel::ALL.into_iter().filter(|k| k.is_available()).collect()
    }

    /// Tile height and width `(MR, NR)` of the micro-kernel.
    pub fn tile(self) -> (usize, usize) {
        match self {
            Kernel::Scalar => (kernel_scalar::Scalar::MR, kernel_scalar::Scalar::NR),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => (kernel_x86::Avx2::MR, kernel_x86::Avx2::NR),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => (kernel_x86::Avx512::MR, kernel_x86::Avx512::NR),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2 | Kernel::Avx512 => (kernel_scalar::Scalar::MR, kernel_scalar::Scalar::NR),
        }
    }
}

/// `C <- alpha A B + beta C` with `A: m x k`, `B: k x n`, `C: m x n`, each
/// given by a pointer and its row and column strides in elements (so a
/// transposed operand is just swapped strides). With `beta == 0`, `C` is
/// written without being read. Runs the best micro-kernel for this CPU on the
/// threads of the current rayon pool; see the [module docs](self) for the
/// loops, block sizes and the thread partition.
///
/// # Safety
/// Every `ptr + i * rs + j * cs` for in-range `i, j` must be valid to read
/// (A, B) or write (C); C must not alias A or B, and distinct in-range
/// `(i, j)` must address distinct elements of C.
pub unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    // SAFETY: forwarded contract; the detected kernel is available.
    unsafe { sgemm_with(Kernel::detect(), m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
}

/// [`sgemm`] with a chosen micro-kernel instead of the detected one.
///
/// # Panics
/// If `kernel` is not available on this CPU ([`Kernel::is_available`]).
///
/// # Safety
/// As for [`sgemm`].
pub unsafe fn sgemm_with(
    kernel: Kernel,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    let ops = Operands { m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, pb: None };
    // SAFETY: forwarded contract.
    unsafe { run_kernel(kernel, ops, Blocking::DEFAULT) }
}

/// The arguments of one GEMM call, bundled so they can cross to worker
/// threads.
#[derive(Clone, Copy)]
pub(crate) struct Operands {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub alpha: f32,
    pub a: *const f32,
    pub rsa: isize,
    pub csa: isize,
    pub b: *const f32,
    pub rsb: isize,
    pub csb: isize,
    pub beta: f32,
    pub c: *mut f32,
    pub rsc: isize,
    pub csc: isize,
    /// A pre-packed B ([`PackedB`]) to read instead of packing `b` (which
    /// is then not read).
    pub pb: Option<PackedRef>,
}

/// Where one call's pre-packed B lives: the panels of a [`PackedB`] and the
/// first column of B that this (sub-)problem's column 0 is.
#[derive(Clone, Copy)]
pub(crate) struct PackedRef {
    /// The packed panels (see `prepacked.rs` for the layout).
    pub data: *const f32,
    /// Columns of B rounded up to whole `NR` panels.
    pub npad: usize,
    /// The k-block length the panels were packed with.
    pub kc: usize,
    /// Column of the whole B where this problem starts (a multiple of `NR`).
    pub col0: usize,
}

// SAFETY: `Operands` is only shared between the threads of one `sgemm` call,
// which read A and B and write disjoint rectangles of C, and it does not
// outlive that call (rayon's `for_each` returns after every region is done).
unsafe impl Send for Operands {}
// SAFETY: as above.
unsafe impl Sync for Operands {}

impl Operands {
    /// The sub-problem `C[i0..i0+m, j0..j0+n] <- alpha A[i0.., :] B[:, j0..] + beta C[..]`.
    ///
    /// # Safety
    /// `i0 + m` and `j0 + n` must not exceed this problem's `m` and `n`.
    unsafe fn sub(&self, i0: usize, m: usize, j0: usize, n: usize) -> Operands {
        // SAFETY: the offsets address in-range rows and columns (caller), so
        // they stay inside the operands' allocations.
        unsafe {
            Operands {
                m,
                n,
                a: self.a.offset(i0 as isize * self.rsa),
                b: self.b.offset(j0 as isize * self.csb),
                c: self.c.offset(i0 as isize * self.rsc + j0 as isize * self.csc),
                pb: self.pb.map(|p| PackedRef { col0: p.col0 + j0, ..p }),
                ..*self
            }
        }
    }
}

/// Dispatches to the micro-kernel's driver.
///
/// # Safety
/// As for [`sgemm`].
pub(crate) unsafe fn run_kernel(kernel: Kernel, ops: Operands, blocking: Blocking) {
    assert!(kernel.is_available(), "GEMM kernel {kernel:?} is not supported by this CPU");
    if ops.m > 0 && ops.n > 0 && ops.k > 0 && ops.alpha != 0.0 && ops.pb.is_none() && gemv::applies(&ops) {
        // SAFETY: forwarded contract; the kernel's CPU features were just checked.
        unsafe { gemv::run(kernel, &ops) };
        return;
    }
    // SAFETY: forwarded contract; the kernel's CPU features were just checked.
    unsafe {
        match kernel {
            Kernel::Scalar => run::<kernel_scalar::Scalar>(ops, blocking),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => run::<kernel_x86::Avx2>(ops, blocking),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => run::<kernel_x86::Avx512>(ops, blocking),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2 | Kernel::Avx512 => unreachable!("checked by is_available"),
        }
    }
}

/// Handles the degenerate cases, partitions C over the pool's threads and
/// runs the blocked driver on each region.
///
/// # Safety
/// As for [`sgemm`], and `K`'s CPU features must be present.
unsafe fn run<K: MicroKernel>(ops: Operands, blocking: Blocking) {
    if ops.m == 0 || ops.n == 0 {
        return;
    }
    if ops.k == 0 || ops.alpha == 0.0 {
        // SAFETY: forwarded contract.
        unsafe { scale_c(&ops) };
        return;
    }
    let threads = rayon::current_num_threads();
    let flops = 2usize.saturating_mul(ops.m).saturating_mul(ops.n).saturating_mul(ops.k);
    let threads = if flops < PAR_MIN_FLOPS { 1 } else { threads };
    let tiles_m = ops.m.div_ceil(K::MR);
    let tiles_n = ops.n.div_ceil(K::NR);
    let (tm, tn) = partition_with(tiles_m, tiles_n, ops.k, threads, K::MR, K::NR, ops.pb.is_none());
    if tm * tn == 1 {
        // SAFETY: forwarded contract.
        unsafe { driver::gemm_region::<K>(&ops, blocking) };
        return;
    }
    (0..tm * tn).into_par_iter().for_each(|r| {
        let (ri, rj) = (r / tn, r % tn);
        let (t0, t1) = split(tiles_m, tm, ri);
        let (u0, u1) = split(tiles_n, tn, rj);
        let (i0, i1) = (t0 * K::MR, (t1 * K::MR).min(ops.m));
        let (j0, j1) = (u0 * K::NR, (u1 * K::NR).min(ops.n));
        // SAFETY: the ranges lie inside m x n, and different `r` get disjoint
        // rectangles of C, so the regions never write the same element.
        unsafe {
            let sub = ops.sub(i0, i1 - i0, j0, j1 - j0);
            driver::gemm_region::<K>(&sub, blocking);
        }
    });
}

/// `C <- beta C` (or zeros when `beta == 0`, without reading C).
///
/// # Safety
/// C as in the [`sgemm`] contract.
unsafe fn scale_c(ops: &Operands) {
    for i in 0..ops.m {
        for j in 0..ops.n {
            // SAFETY: (i, j) is in range, so the element is valid to write.
            unsafe {
                let p = ops.c.offset(i as isize * ops.rsc + j as isize * ops.csc);
                *p = if ops.beta == 0.0 { 0.0 } else { ops.beta * *p };
            }
        }
    }
}

/// The `part`-th of `parts` contiguous, nearly equal ranges of `0..total`
/// (the first `total % parts` ranges are one longer).
fn split(total: usize, parts: usize, part: usize) -> (usize, usize) {
    let base = total / parts;
    let extra = total % parts;
    let start = part * base + part.min(extra);
    (start, start + base + usize::from(part < extra))
}

/// Cost weight of packing one element relative to one multiply-add lane.
const PACK_COST: usize = 8;

/// Chooses the `tm x tn` grid of thread regions over a `tiles_m x tiles_n`
/// grid of `mr x nr` tiles, for a product of depth `k` on `threads` threads:
/// among all grids with `tm * tn <= threads` (and no more regions than tiles
/// along either side), the one with the least estimated time of its slowest
/// region (that region's multiply-adds plus its packing), preferring splits
/// over N on ties. Depends only on the shape and the thread count, never on
/// timing, and never splits K.
pub fn partition(
    tiles_m: usize,
    tiles_n: usize,
    k: usize,
    threads: usize,
    mr: usize,
    nr: usize,
) -> (usize, usize) {
    partition_with(tiles_m, tiles_n, k, threads, mr, nr, true)
}

/// [`partition`], where `pack_b` says whether each region packs its own
/// columns of B (false for a pre-packed B, whose columns cost nothing to
/// share, so a split over M then packs least: each thread packs only its
/// own rows of A).
pub fn partition_with(
    tiles_m: usize,
    tiles_n: usize,
    k: usize,
    threads: usize,
    mr: usize,
    nr: usize,
    pack_b: bool,
) -> (usize, usize) {
    let b_cost = usize::from(pack_b);
    let mut best = (1, 1);
    let mut best_cost = usize::MAX;
    for tm in 1..=threads.min(tiles_m) {
        for tn in (1..=(threads / tm).min(tiles_n)).rev() {
            let rm = tiles_m.div_ceil(tm);
            let rn = tiles_n.div_ceil(tn);
            let cost = rm * rn * mr * nr * k + PACK_COST * (rm * mr + b_cost * rn * nr) * k;
            if cost < best_cost {
                best_cost = cost;
                best = (tm, tn);
            }
        }
    }
    best
}
