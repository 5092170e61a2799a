//! A right-hand operand packed once and reused by many products.
//!
//! Every [`sgemm`](super::sgemm) call copies the B block it works on into the
//! micro-kernel's panel order (`pack.rs`). When one B meets many left-hand
//! sides (the weight of a linear layer at inference, `y = x W^T`, or a
//! recurrent weight used at every time step), that copy can be made once:
//! [`PackedB`] holds all of B in panel order for one micro-kernel, and
//! [`gemm_packed`] runs the blocked loops on it without packing B again.
//!
//! # Layout
//! `k` is cut into the same k-blocks as an unpacked call
//! (`Blocking::kc(k)`: equal blocks of at most `KC_MAX`); block `b`
//! (rows `pc = b * kc ..` of B, `kcb` rows) starts at `pc * npad`, where
//! `npad` is `n` rounded up to whole `NR` panels, and holds the
//! `npad / NR` panels of `kcb x NR` floats, panel `s` at `s * NR * kcb`
//! (columns past `n` are zero). That is exactly what `pack_b` writes for one
//! block, so a region starting at column `j0` (a multiple of `NR`) of block
//! `b` begins at `pc * npad + j0 * kcb`.
//!
//! # Same bits as the unpacked call
//! The blocked loops, the k-blocks and the micro-kernel are those of an
//! unpacked call with the same kernel, so each element of C sees the same
//! operations in the same order: [`gemm_packed`] gives the bits
//! [`sgemm_with`](super::sgemm_with) gives on the same operands, on any
//! thread count. It always runs the blocked loops, even for products of at
//! most [`GEMV_MAX_M`](super::GEMV_MAX_M) rows that an unpacked call would
//! send to the dot-product path; [`PackedMatrix`] (the tensor-level form)
//! sends those to the unpacked call so that its results never depend on
//! whether a pack was used.
//!
//! # Threads
//! The regions of C are chosen as for an unpacked call, except that the
//! cost model counts nothing for B's packing ([`super::partition_with`]),
//! so two threads on `256 x 784 x 512` split M and each packs only its own
//! rows of A.
//!
//! # Staleness
//! A [`PackedB`] is a copy: it does not see later writes to the buffer it
//! was packed from. [`PackedMatrix`] ties a pack to the [`Tensor`] it came
//! from by holding a clone of it (a reference to the same copy-on-write
//! storage): while the pack lives, that storage has two owners, so any write
//! through a `Tensor` first copies it elsewhere, and
//! [`PackedMatrix::is_packing_of`] (same storage, shape and strides) is false
//! for the written tensor. A stale pack can therefore not be used through
//! [`PackCache`]. (The storage it holds cannot be freed and its address
//! reused either.)

use std::sync::{Arc, Mutex};

use super::driver::{ALIGN, Blocking};
use super::pack::pack_b;
use super::slices::MatRef;
use super::{Kernel, Operands, PackedRef, run_kernel};
use crate::error::{Result, TensorError};
use crate::tensor::Tensor;

/// All of a `k x n` matrix B in one micro-kernel's panel order (see the
/// [module docs](self)), ready for any number of [`gemm_packed`] calls.
///
/// ```
/// use nw_tensor::gemm::{MatRef, PackedB, gemm_packed};
/// // W: [3 outputs, 2 inputs], row-major; B = W^T (2 x 3), read in place
/// let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let packed = PackedB::new(MatRef::transposed(&w, 2, 3)).unwrap();
/// let x = [1.0, 1.0, 0.0, 1.0]; // 2 samples of 2 inputs
/// let mut y = [0.0; 6];
/// gemm_packed(1.0, MatRef::row_major(&x, 2, 2), &packed, 0.0, &mut y).unwrap();
/// assert_eq!(y, [3.0, 7.0, 11.0, 2.0, 4.0, 6.0]);
/// ```
#[derive(Clone)]
pub struct PackedB {
    pub(super) kernel: Kernel,
    pub(super) blocking: Blocking,
    pub(super) k: usize,
    pub(super) n: usize,
    pub(super) npad: usize,
    buf: Vec<f32>,
    /// Index in `buf` of the first packed float (64-byte aligned).
    off: usize,
}

impl std::fmt::Debug for PackedB {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedB({} x {}, {:?})", self.k, self.n, self.kernel)
    }
}

impl PackedB {
    /// Packs `b` for the kernel in use ([`Kernel::detect`]).
    ///
    /// # Errors
    /// When `b` does not fit its slice ([`MatRef`] strides out of range) or
    /// the packed copy cannot be allocated.
    pub fn new(b: MatRef<'_>) -> Result<PackedB> {
        Self::with_kernel(Kernel::detect(), b)
    }

    /// Packs `b` for a chosen kernel.
    ///
    /// # Errors
    /// As [`PackedB::new`], and when `kernel` is not available on this CPU.
    pub fn with_kernel(kernel: Kernel, b: MatRef<'_>) -> Result<PackedB> {
        if !kernel.is_available() {
            return Err(TensorError::InvalidArgument {
                op: "PackedB",
                reason: format!("kernel {kernel:?} is not supported by this CPU"),
            });
        }
        if !b.fits() {
            return Err(TensorError::ShapeMismatch {
                op: "PackedB",
                lhs: vec![b.rows, b.cols],
                rhs: vec![b.data.len()],
            });
        }
        // SAFETY: `fits` checked every in-range element of B against its
        // slice; the strides fit in isize.
        unsafe {
            Self::pack(
                kernel,
                Blocking::DEFAULT,
                b.rows,
                b.cols,
                b.data.as_ptr(),
                b.row_stride as isize,
                b.col_stride as isize,
            )
        }
    }

    /// Packs the `k x n` matrix at `b` (strides `rsb`, `csb`).
    ///
    /// # Safety
    /// `b + p * rsb + j * csb` is readable for `p < k`, `j < n`; `kernel` is
    /// available.
    pub(crate) unsafe fn pack(
        kernel: Kernel,
        blocking: Blocking,
        k: usize,
        n: usize,
        b: *const f32,
        rsb: isize,
        csb: isize,
    ) -> Result<PackedB> {
        let nr = kernel.tile().1;
        let npad = n.div_ceil(nr) * nr;
        let too_big = || TensorError::InvalidShape {
            op: "PackedB",
            shape: vec![k, n],
            reason: "the packed copy cannot be allocated".into(),
        };
        let len = npad.checked_mul(k).and_then(|l| l.checked_add(ALIGN)).ok_or_else(too_big)?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(len).map_err(|_| too_big())?;
        buf.resize(len, 0.0);
        let off = buf.as_ptr().align_offset(64).min(ALIGN - 1);
        if k > 0 && n > 0 {
            let kc_len = blocking.kc(k);
            for pc in (0..k).step_by(kc_len) {
                let kc = kc_len.min(k - pc);
                let out = &mut buf[off + pc * npad..off + (pc + kc) * npad];
                // SAFETY: rows pc..pc+kc of B are in range (caller); `out`
                // holds the npad / nr panels of kc x nr of this block.
                unsafe { pack_b(nr, kc, n, b.offset(pc as isize * rsb), rsb, csb, out) };
            }
        }
        Ok(PackedB { kernel, blocking, k, n, npad, buf, off })
    }

    /// Rows of B (the depth of a product).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of B.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The micro-kernel the panels are laid out for (and that every product
    /// with them runs).
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The packed floats, from the first k-block's first panel (`k * npad`
    /// of them).
    pub(super) fn panels(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.k * self.npad]
    }

    /// Columns of B rounded up to whole `NR` panels (the panel row length).
    pub(super) fn npad(&self) -> usize {
        self.npad
    }

    /// Bytes held by the packed copy.
    pub fn bytes(&self) -> usize {
        self.buf.len() * std::mem::size_of::<f32>()
    }

    /// `C <- alpha A B + beta C` with this B, `A: m x k` at `a` (strides
    /// `rsa`, `csa`), `C: m x n` at `c` (strides `rsc`, `csc`); the contract
    /// of [`sgemm`](super::sgemm) otherwise.
    ///
    /// # Safety
    /// As for [`sgemm`](super::sgemm) for A and C.
    pub(crate) unsafe fn run(
        &self,
        m: usize,
        alpha: f32,
        a: *const f32,
        rsa: isize,
        csa: isize,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
    ) {
        let data = self.buf[self.off..].as_ptr();
        let pb = PackedRef { data, npad: self.npad, kc: self.blocking.kc(self.k), col0: 0 };
        // `b` is never read with `pb` set; it points at the panels only to
        // be a valid, non-null address.
        let ops = Operands {
            m,
            k: self.k,
            n: self.n,
            alpha,
            a,
            rsa,
            csa,
            b: data,
            rsb: 0,
            csb: 0,
            beta,
            c,
            rsc,
            csc,
            pb: Some(pb),
        };
        // SAFETY: forwarded contract for A and C; `pb` describes this
        // pack's panels, packed with the blocking used here, for
        // `self.kernel` (available: checked when packing).
        unsafe { run_kernel(self.kernel, ops, self.blocking) };
    }
}

/// `C <- alpha A B + beta C` with a pre-packed B and `C` the row-major
/// `a.rows x b.n()` matrix in `c` (exactly that many elements): the safe
/// front end of [`PackedB`], with the bits of the same product through
/// [`sgemm_with`](super::sgemm_with) on `b.kernel()` (for more than
/// [`GEMV_MAX_M`](super::GEMV_MAX_M) rows; fewer run the blocked loops here,
/// not the dot-product path). With `beta == 0`, `C` is written without being
/// read.
///
/// # Errors
/// A shape mismatch (`a.cols != b.k()`, a wrong `c` length) or an `a` that
/// does not fit its slice.
pub fn gemm_packed(alpha: f32, a: MatRef<'_>, b: &PackedB, beta: f32, c: &mut [f32]) -> Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.n);
    let mismatch =
        |lhs: Vec<usize>, rhs: Vec<usize>| TensorError::ShapeMismatch { op: "gemm_packed", lhs, rhs };
    if k != b.k {
        return Err(mismatch(vec![m, k], vec![b.k, n]));
    }
    if !a.fits() {
        return Err(mismatch(vec![m, k], vec![a.data.len()]));
    }
    if m.checked_mul(n) != Some(c.len()) {
        return Err(mismatch(vec![m, n], vec![c.len()]));
    }
    // SAFETY: `fits` checked A against its slice (strides fit in isize); C
    // is the exclusively borrowed row-major m x n slice, disjoint from A.
    unsafe {
        b.run(
            m,
            alpha,
            a.data.as_ptr(),
            a.row_stride as isize,
            a.col_stride as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    };
    Ok(())
}

/// A 2-D tensor together with its [`PackedB`]: the right-hand operand of
/// [`Tensor::gemm_acc_packed`]. It holds a clone of the tensor (shared
/// copy-on-write storage), which is what makes a stale pack detectable (see
/// the [module docs](self)).
#[derive(Debug)]
pub struct PackedMatrix {
    source: Tensor,
    packed: PackedB,
}

impl PackedMatrix {
    /// Packs `b` (2-D, any strides: a transposed view `W.t()` is read in
    /// place) for the kernel in use.
    ///
    /// # Errors
    /// When `b` is not 2-D or the pack cannot be allocated.
    pub fn new(b: &Tensor) -> Result<PackedMatrix> {
        if b.ndim() != 2 {
            return Err(TensorError::InvalidShape {
                op: "PackedMatrix",
                shape: b.shape().to_vec(),
                reason: "expected a 2-D tensor".into(),
            });
        }
        let (k, n) = (b.shape()[0], b.shape()[1]);
        let (rsb, csb) = (b.strides()[0], b.strides()[1]);
        // SAFETY: the pointer, shape and strides are the live tensor's own,
        // so every in-range element lies in its buffer; the detected kernel
        // is available.
        let packed =
            unsafe { PackedB::pack(Kernel::detect(), Blocking::DEFAULT, k, n, b.data.as_ptr(), rsb, csb)? };
        Ok(PackedMatrix { source: b.clone(), packed })
    }

    /// Whether this is a packing of `b` as it is now: the same storage (so
    /// not written since: a write would have copied it), shape and strides,
    /// and the pack is for the kernel in use.
    pub fn is_packing_of(&self, b: &Tensor) -> bool {
        self.source.shares_storage(b)
            && self.source.shape() == b.shape()
            && self.source.strides() == b.strides()
            && self.packed.kernel == Kernel::detect()
    }

    /// The tensor that was packed.
    pub fn source(&self) -> &Tensor {
        &self.source
    }

    /// The packed panels.
    pub fn packed(&self) -> &PackedB {
        &self.packed
    }
}

/// A one-entry cache of the [`PackedMatrix`] of one operand (a layer's
/// `W^T`): [`PackCache::get`] returns the cached pack while it is a packing
/// of the tensor asked for and repacks otherwise, so a changed weight is
/// never multiplied through an old pack. `Send + Sync`; clones of an
/// `Arc<PackCache>` share the entry.
#[derive(Debug, Default)]
pub struct PackCache {
    slot: Mutex<Option<Arc<PackedMatrix>>>,
}

impl PackCache {
    /// An empty cache.
    pub fn new() -> PackCache {
        PackCache::default()
    }

    /// The pack of `b`: the cached one if [`PackedMatrix::is_packing_of`]
    /// `b`, else a new one (which replaces it).
    ///
    /// # Errors
    /// As [`PackedMatrix::new`].
    pub fn get(&self, b: &Tensor) -> Result<Arc<PackedMatrix>> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = slot.as_ref()
            && p.is_packing_of(b)
        {
            return Ok(Arc::clone(p));
        }
        // Drop the old pack (and its hold on the old storage) first.
        *slot = None;
        let p = Arc::new(PackedMatrix::new(b)?);
        *slot = Some(Arc::clone(&p));
        Ok(p)
    }

    /// Forgets the cached pack (releasing its hold on the packed tensor's
    /// storage, so that a write to that tensor need not copy it).
    pub fn clear(&self) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Whether a pack is cached.
    pub fn is_filled(&self) -> bool {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}
