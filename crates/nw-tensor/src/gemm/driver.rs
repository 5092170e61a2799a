//! The blocked loops (jc, pc, ic, jr, ir) that run one thread's region of C
//! through a micro-kernel. See the module docs of `gemm` for the loop nest.

use std::cell::Cell;

use super::Operands;
use super::pack::{pack_a, pack_b};

/// A micro-kernel: computes one `MR x NR` tile from packed panels.
pub(crate) trait MicroKernel {
    /// Tile height (rows of C per call).
    const MR: usize;
    /// Tile width (columns of C per call).
    const NR: usize;

    /// `acc = sum_p a[p*MR + i] * b[p*NR + j]` over `p < kc`, accumulated in
    /// that order starting from zero, then for `i < rows, j < cols`:
    /// `C[i, j] <- alpha * acc[i][j] + beta * C[i, j]` (`C` not read when
    /// `beta == 0`), where `C[i, j]` is `c + i * rsc + j * csc`. Every
    /// variant rounds the final update as `mul`, `mul`, `add` (the `beta`
    /// product skipped when `beta` is 0 or 1, where it is exact), so a tile's
    /// values do not depend on which store path wrote it.
    ///
    /// # Safety
    /// `a` holds `kc * MR` and `b` `kc * NR` readable floats; `rows <= MR`,
    /// `cols <= NR`, and the `rows x cols` elements of C are valid to write
    /// (and read unless `beta == 0`). The CPU supports the kernel.
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
    );
}

/// Cache block sizes (in elements) of the loop nest.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Blocking {
    /// Rows of A packed at once (rounded down to a multiple of `MR`).
    pub mc: usize,
    /// Upper bound on the k-block; `k` is cut into equal blocks below it.
    pub kc_max: usize,
    /// Columns of B packed at once (rounded down to a multiple of `NR`).
    pub nc: usize,
}

impl Blocking {
    /// The sizes `sgemm` uses: a 12 x 32 kernel's B micro-panel (256 x 32
    /// floats, 32 KiB) stays in the 48 KiB L1d, the packed A block (384 x
    /// 256, 384 KiB) in the 1 MiB L2, and the packed B block (256 x 2048,
    /// 2 MiB) in L3.
    pub const DEFAULT: Blocking = Blocking { mc: 384, kc_max: 256, nc: 2048 };

    /// The k-block length for a product of depth `k`: `k` split into
    /// `ceil(k / kc_max)` blocks of equal length (the last may be shorter).
    /// It depends on `k` only, never on the thread count.
    pub fn kc(&self, k: usize) -> usize {
        let blocks = k.div_ceil(self.kc_max).max(1);
        k.div_ceil(blocks)
    }
}

thread_local! {
    /// Per-thread packing buffer, grown on demand and reused across calls
    /// (taken out while in use, so a nested call simply allocates its own).
    static PACK_BUF: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Floats per 64-byte cache line, the alignment of packed panels.
pub(crate) const ALIGN: usize = 16;

/// Runs the whole loop nest for `ops` on the calling thread.
///
/// # Safety
/// As for `sgemm`, with `ops.m, ops.n, ops.k > 0`; the CPU supports `K`.
pub(crate) unsafe fn gemm_region<K: MicroKernel>(ops: &Operands, blocking: Blocking) {
    let (m, n, k) = (ops.m, ops.n, ops.k);
    let mc_max = (blocking.mc / K::MR).max(1) * K::MR;
    let nc_max = (blocking.nc / K::NR).max(1) * K::NR;
    let kc_len = blocking.kc(k);
    // Packed sizes for this region (panels padded to whole tiles); a
    // pre-packed B needs no room here.
    let a_len = m.min(mc_max).div_ceil(K::MR) * K::MR * kc_len;
    let b_len = match ops.pb {
        Some(_) => 0,
        None => n.min(nc_max).div_ceil(K::NR) * K::NR * kc_len,
    };
    let a_cap = a_len.div_ceil(ALIGN) * ALIGN;

    let mut buf = PACK_BUF.take();
    let need = a_cap + b_len + ALIGN;
    if buf.len() < need {
        buf = vec![0.0; need];
    }
    let off = buf.as_ptr().align_offset(64).min(ALIGN - 1);
    let (abuf, bbuf) = buf[off..off + a_cap + b_len].split_at_mut(a_cap);

    for jc in (0..n).step_by(nc_max) {
        let nc = nc_max.min(n - jc);
        for (block, pc) in (0..k).step_by(kc_len).enumerate() {
            let kc = kc_len.min(k - pc);
            // Later k-blocks add onto what the first one wrote.
            let beta = if block == 0 { ops.beta } else { 1.0 };
            let bp: *const f32 = match ops.pb {
                // SAFETY: the pre-packed B holds every k-block of `kc_len`
                // (the last shorter) of `npad` columns, block `pc / kc_len`
                // at `pc * npad`, its NR-wide panels of `kc` rows in column
                // order; this region's columns col0 + jc.. are in range and
                // col0, jc are multiples of NR.
                Some(p) => unsafe {
                    debug_assert_eq!(p.kc, kc_len, "pre-packed with another k-block");
                    p.data.add(pc * p.npad + (p.col0 + jc) * kc)
                },
                None => {
                    // SAFETY: rows pc..pc+kc and columns jc..jc+nc of B are in range.
                    unsafe {
                        let b = ops.b.offset(pc as isize * ops.rsb + jc as isize * ops.csb);
                        pack_b(K::NR, kc, nc, b, ops.rsb, ops.csb, bbuf);
                    }
                    bbuf.as_ptr()
                }
            };
            for ic in (0..m).step_by(mc_max) {
                let mc = mc_max.min(m - ic);
                // SAFETY: rows ic..ic+mc and columns pc..pc+kc of A are in range.
                unsafe {
                    let a = ops.a.offset(ic as isize * ops.rsa + pc as isize * ops.csa);
                    pack_a(K::MR, kc, mc, a, ops.rsa, ops.csa, abuf);
                }
                // SAFETY: forwarded; the panels were packed just above (or
                // before the call, for a pre-packed B).
                unsafe { macro_kernel::<K>(ops, kc, ops.alpha, beta, ic, mc, jc, nc, abuf, bp) };
            }
        }
    }
    PACK_BUF.set(buf);
}

/// The jr and ir loops over one packed A block and one packed B block.
///
/// # Safety
/// `abuf` holds `ceil(mc / MR)` packed A micro-panels of `kc`, `bp` points
/// at `ceil(nc / NR)` consecutive packed B micro-panels of `kc`; the C block
/// at `(ic, jc)` of size `mc x nc` is in range.
unsafe fn macro_kernel<K: MicroKernel>(
    ops: &Operands,
    kc: usize,
    alpha: f32,
    beta: f32,
    ic: usize,
    mc: usize,
    jc: usize,
    nc: usize,
    abuf: &[f32],
    bp0: *const f32,
) {
    for jr in (0..nc).step_by(K::NR) {
        let cols = K::NR.min(nc - jr);
        // SAFETY: panel jr / NR of the ceil(nc / NR) panels at bp0 (caller).
        let bp = unsafe { bp0.add((jr / K::NR) * K::NR * kc) };
        for ir in (0..mc).step_by(K::MR) {
            let rows = K::MR.min(mc - ir);
            let ap = abuf[(ir / K::MR) * K::MR * kc..].as_ptr();
            let (i, j) = ((ic + ir) as isize, (jc + jr) as isize);
            // SAFETY: the panels hold kc * MR and kc * NR floats (slice
            // and caller); the rows x cols tile at (i, j) is inside C.
            unsafe {
                let c = ops.c.offset(i * ops.rsc + j * ops.csc);
                K::tile(kc, alpha, ap, bp, beta, c, ops.rsc, ops.csc, rows, cols);
            }
        }
    }
}

/// The scalar tile update every kernel falls back to for strided or partial
/// tiles: `C[i, j] <- alpha * acc[i * ld + j] + beta * C[i, j]` for
/// `i < rows, j < cols`, rounded exactly as the vector store paths round it
/// (`beta * C` skipped when `beta` is 0, so C is not read, or 1, where the
/// product is exact).
///
/// # Safety
/// `acc` holds `rows * ld` values; the `rows x cols` elements of C at `c`
/// with strides `rsc, csc` are valid to write (and read unless `beta == 0`).
#[inline]
pub(crate) unsafe fn store_tile(
    acc: &[f32],
    ld: usize,
    alpha: f32,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
    rows: usize,
    cols: usize,
) {
    for i in 0..rows {
        for j in 0..cols {
            let t = alpha * acc[i * ld + j];
            // SAFETY: (i, j) is inside the tile (caller).
            unsafe {
                let p = c.offset(i as isize * rsc + j as isize * csc);
                *p = if beta == 0.0 {
                    t
                } else if beta == 1.0 {
                    t + *p
                } else {
                    t + beta * *p
                };
            }
        }
    }
}
