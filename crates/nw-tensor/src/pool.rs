//! Max, average and adaptive-average pooling over NCHW (and NCL) tensors with
//! PyTorch's semantics (no dilation), each backward beside its forward.
//!
//! Output size along an axis: `o = (size + 2 pad - kernel) / stride + 1`
//! (floor), or with `ceil_mode` `o = ceil((size + 2 pad - kernel) / stride) + 1`,
//! less one when the last window would start past the input and its left
//! padding (`(o - 1) stride >= size + pad`): a window must start inside the
//! input or its left padding. Windows are clipped to the padded input. As in
//! PyTorch, `pad <= kernel / 2`, so every window holds at least one input
//! element.
//!
//! - **max**: padding acts as `-inf`; the first maximum in row-major window
//!   order wins, and a NaN wins over any number (the last NaN, as in PyTorch's
//!   CPU kernel). The indices returned index the input plane: `iy * w + ix`.
//! - **avg**: the window sum over in-range elements divided by the window
//!   area including padding (`count_include_pad = true`, PyTorch's default) or
//!   by the number of in-range elements.
//! - **adaptive avg**: output `i` of `o` averages input rows
//!   `floor(i h / o) .. ceil((i + 1) h / o)`, likewise columns.
//!
//! Work is split over `(n, c)` planes; each output and each input-gradient
//! element is computed by one task in index order, so the bits do not depend
//! on the thread count. Sums are accumulated in f64.
//!
//! ```
//! use nw_tensor::Tensor;
//! use nw_tensor::pool::{avg_pool2d, max_pool2d, max_pool2d_backward};
//!
//! let x = Tensor::from_vec((0..16).map(|v| v as f32).collect(), &[1, 1, 4, 4]).unwrap();
//! let (y, idx) = max_pool2d(&x, (2, 2), (2, 2), (0, 0), false).unwrap();
//! assert_eq!(y.to_vec(), vec![5., 7., 13., 15.]);
//! assert_eq!(idx, vec![5, 7, 13, 15]);
//! let dx = max_pool2d_backward(&Tensor::ones(&[1, 1, 2, 2]), &idx, x.shape()).unwrap();
//! assert_eq!(dx.to_vec()[5], 1.0);
//! let a = avg_pool2d(&x, (2, 2), (2, 2), (0, 0), true, false).unwrap();
//! assert_eq!(a.to_vec(), vec![2.5, 4.5, 10.5, 12.5]);
//! // ceil_mode: a 3x3 window with stride 2 over 4 columns gives 2 outputs, the last clipped
//! let (c, _) = max_pool2d(&x, (3, 3), (2, 2), (0, 0), true).unwrap();
//! assert_eq!(c.to_vec(), vec![10., 11., 14., 15.]);
//! ```

#[cfg(test)]
mod tests;

use rayon::prelude::*;

use crate::error::{Result, TensorError};
use crate::tensor::Tensor;

/// Window geometry of one pooling call over `planes` planes of `h x w`.
#[derive(Clone, Copy, Debug)]
struct Geom {
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
}

impl Geom {
    /// Checks a 4-D shape and window parameters; `shown` is the shape the
    /// caller passed (3-D for the 1-D forms), used in messages.
    fn new(
        op: &'static str,
        shape: &[usize],
        shown: &[usize],
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        ceil_mode: bool,
    ) -> Result<Geom> {
        let (oh, ow) = (
            out_len(op, shown, shape[2], kernel.0, stride.0, padding.0, ceil_mode)?,
            out_len(op, shown, shape[3], kernel.1, stride.1, padding.1, ceil_mode)?,
        );
        // a padding from a file must not make the output pass the tensor limit
        crate::tensor::numel_within(op, &[shape[0], shape[1], oh, ow], crate::MAX_ELEMENTS)?;
        Ok(Geom {
            planes: shape[0] * shape[1],
            h: shape[2],
            w: shape[3],
            oh,
            ow,
            kh: kernel.0,
            kw: kernel.1,
            sh: stride.0,
            sw: stride.1,
            ph: padding.0,
            pw: padding.1,
        })
    }

    /// Output shape with the batch and channel axes of `shape`.
    fn out_shape(&self, shape: &[usize]) -> [usize; 4] {
        [shape[0], shape[1], self.oh, self.ow]
    }

    /// Window of output `(oy, ox)` before clipping to the input, as signed
    /// `(row start, row end, col start, col end)`; ends exclusive and at most
    /// `size + pad`.
    fn window(&self, oy: usize, ox: usize) -> (isize, isize, isize, isize) {
        let y0 = (oy * self.sh) as isize - self.ph as isize;
        let x0 = (ox * self.sw) as isize - self.pw as isize;
        let y1 = (y0 + self.kh as isize).min((self.h + self.ph) as isize);
        let x1 = (x0 + self.kw as isize).min((self.w + self.pw) as isize);
        (y0, y1, x0, x1)
    }

    /// Whether every window lies inside the unpadded input (no padding, and
    /// with `ceil_mode` no last window running past the edge).
    fn inside(&self) -> bool {
        self.ph == 0
            && self.pw == 0
            && (self.oh - 1) * self.sh + self.kh <= self.h
            && (self.ow - 1) * self.sw + self.kw <= self.w
    }

    /// The window clipped to the input: `(y0, y1, x0, x1)` as indices.
    fn clipped(&self, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
        let (y0, y1, x0, x1) = self.window(oy, ox);
        let c = |v: isize, hi: usize| v.clamp(0, hi as isize) as usize;
        (c(y0, self.h), c(y1, self.h), c(x0, self.w), c(x1, self.w))
    }
}

/// Output length along one axis, checking the window parameters:
/// `(size + 2p - k) / s + 1`, rounded down, or up with `ceil` (then less one
/// if that last window would start at or past `size + p`).
fn out_len(
    op: &'static str,
    shown: &[usize],
    size: usize,
    k: usize,
    s: usize,
    p: usize,
    ceil: bool,
) -> Result<usize> {
    if k == 0 || s == 0 {
        return Err(TensorError::InvalidArgument {
            op,
            reason: format!("kernel {k} and stride {s} must be positive (input {shown:?})"),
        });
    }
    if p > k / 2 {
        return Err(TensorError::InvalidArgument {
            op,
            reason: format!("padding {p} must be at most half the kernel {k} (input {shown:?})"),
        });
    }
    // p <= k / 2, so 2 p cannot overflow; size + 2 p can only for absurd k.
    let padded = size.checked_add(2 * p).ok_or_else(|| TensorError::InvalidArgument {
        op,
        reason: format!("padding {p} overflows for input {shown:?}"),
    })?;
    if padded < k {
        return Err(TensorError::InvalidArgument {
            op,
            reason: format!("kernel {k} is larger than the input {shown:?} padded by {p}"),
        });
    }
    if !ceil {
        return Ok((padded - k) / s + 1);
    }
    let o = (padded - k).div_ceil(s) + 1;
    // the last window must start inside the input or its left padding
    Ok(if (o - 1) * s >= size + p { o - 1 } else { o })
}

fn check_rank(op: &'static str, shape: &[usize], rank: usize) -> Result<()> {
    if shape.len() != rank {
        let what = if rank == 4 { "4-D [n, c, h, w]" } else { "3-D [n, c, l]" };
        return Err(TensorError::InvalidShape { op, shape: shape.to_vec(), reason: format!("needs {what}") });
    }
    Ok(())
}

/// Checks that `grad_out` is `[n, c, oh, ow]` for an input of `input_shape`.
fn check_grad(op: &'static str, grad_out: &[usize], want: &[usize]) -> Result<()> {
    if grad_out != want {
        return Err(TensorError::ShapeMismatch { op, lhs: want.to_vec(), rhs: grad_out.to_vec() });
    }
    Ok(())
}

/// Calls `f(plane index, output plane)` for every plane, in parallel.
fn per_plane(out: &mut [f32], plane: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if plane > 0 {
        out.par_chunks_mut(plane).enumerate().for_each(|(p, o)| f(p, o));
    }
}

// ----- max ------------------------------------------------------------------

/// 2-D max pooling of `x [n, c, h, w]` -> `(y [n, c, oh, ow], indices)`.
///
/// `indices[j]` is the position `iy * w + ix` within its input plane of the
/// element chosen for output `j` (row-major over `y`), as PyTorch's
/// `return_indices`; pass it to [`max_pool2d_backward`]. `ceil_mode` rounds
/// the output size up (see the [module docs](self)).
pub fn max_pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    ceil_mode: bool,
) -> Result<(Tensor, Vec<usize>)> {
    check_rank("max_pool2d", x.shape(), 4)?;
    let g = Geom::new("max_pool2d", x.shape(), x.shape(), kernel, stride, padding, ceil_mode)?;
    let (y, idx) = max_pool_kernel(&g, x);
    Ok((Tensor::from_vec(y, &g.out_shape(x.shape()))?, idx))
}

/// `y = max over the window` (padding is -inf), with the argmax positions.
///
/// Windows are scanned row by row, left to right, and an element is taken
/// when it is larger than the best so far or NaN (as torch), so the first
/// maximum wins. When every window lies inside the input (no padding, no
/// ceil-mode overhang) the plane is walked with fixed strides ([`max_window`]
/// on whole rows); otherwise each window is clipped first.
fn max_pool_kernel(g: &Geom, x: &Tensor) -> (Vec<f32>, Vec<usize>) {
    let x = x.contiguous();
    let xs = x.as_slice().expect("contiguous");
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let mut y = vec![0.0f32; g.planes * ohw];
    let mut idx = vec![0usize; g.planes * ohw];
    let inside = g.inside();
    let fast2x2 = inside && (g.kh, g.kw, g.sh, g.sw) == (2, 2, 2, 2);
    y.par_chunks_mut(ohw).zip(idx.par_chunks_mut(ohw)).enumerate().for_each(|(p, (yp, ip))| {
        let xp = &xs[p * hw..(p + 1) * hw];
        if fast2x2 {
            // the common 2x2 window with stride 2 (inside the plane)
            pool2x2_plane(xp, g.w, g.ow, yp, ip);
            return;
        }
        for oy in 0..g.oh {
            let (yrow, irow) = (&mut yp[oy * g.ow..(oy + 1) * g.ow], &mut ip[oy * g.ow..(oy + 1) * g.ow]);
            if inside {
                // (oh - 1) sh + kh <= h and (ow - 1) sw + kw <= w (Geom::inside)
                let y0 = oy * g.sh;
                for (ox, (yv, iv)) in yrow.iter_mut().zip(irow.iter_mut()).enumerate() {
                    (*yv, *iv) = max_window(xp, g.w, y0, y0 + g.kh, ox * g.sw, ox * g.sw + g.kw);
                }
            } else {
                for (ox, (yv, iv)) in yrow.iter_mut().zip(irow.iter_mut()).enumerate() {
                    let (y0, y1, x0, x1) = g.clipped(oy, ox);
                    (*yv, *iv) = max_window(xp, g.w, y0, y1, x0, x1);
                }
            }
        }
    });
    (y, idx)
}

/// The unpadded 2x2, stride-2 max pool of one plane `w` wide into `ow`
/// columns of `y` and `idx` (every window inside the plane), by
/// [`pool2x2_row`] in the build for the CPU's vector unit.
fn pool2x2_plane(xp: &[f32], w: usize, ow: usize, y: &mut [f32], idx: &mut [usize]) {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::gemm::Kernel;
        match Kernel::detect() {
            // SAFETY: the kernel in use is available on this CPU (checked by detect).
            Kernel::Avx512 => return unsafe { pool2x2_plane_avx512(xp, w, ow, y, idx) },
            // SAFETY: as above.
            Kernel::Avx2 => return unsafe { pool2x2_plane_avx2(xp, w, ow, y, idx) },
            Kernel::Scalar => {}
        }
    }
    pool2x2_plane_generic(xp, w, ow, y, idx)
}

/// [`pool2x2_plane`] compiled for AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F, BW and VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn pool2x2_plane_avx512(xp: &[f32], w: usize, ow: usize, y: &mut [f32], idx: &mut [usize]) {
    pool2x2_plane_generic(xp, w, ow, y, idx)
}

/// [`pool2x2_plane`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pool2x2_plane_avx2(xp: &[f32], w: usize, ow: usize, y: &mut [f32], idx: &mut [usize]) {
    pool2x2_plane_generic(xp, w, ow, y, idx)
}

/// The portable body of [`pool2x2_plane`]: each output row by
/// [`pool2x2_row`], and a row with a NaN again by [`max_window`].
#[inline(always)]
fn pool2x2_plane_generic(xp: &[f32], w: usize, ow: usize, y: &mut [f32], idx: &mut [usize]) {
    if ow == 0 {
        return;
    }
    for (oy, (yrow, irow)) in y.chunks_exact_mut(ow).zip(idx.chunks_exact_mut(ow)).enumerate() {
        let (b0, b1) = (2 * oy * w, (2 * oy + 1) * w);
        if pool2x2_row(&xp[b0..b0 + w], &xp[b1..b1 + w], b0, b1, yrow, irow) {
            // a NaN in the row: redo its windows by the scan (NaN wins)
            for (ox, (yv, iv)) in yrow.iter_mut().zip(irow.iter_mut()).enumerate() {
                (*yv, *iv) = max_window(xp, w, 2 * oy, 2 * oy + 2, 2 * ox, 2 * ox + 2);
            }
        }
    }
}

/// One output row of the unpadded 2x2, stride-2 max pool: output `ox` takes
/// the window `r0[2ox..2ox+2]`, `r1[2ox..2ox+2]` (rows starting at plane
/// offsets `b0`, `b1`), writing its maximum and in-plane index. Returns
/// whether any input of the row is NaN, in which case the row's outputs are
/// not valid and the caller redoes them by [`max_window`].
///
/// Without NaN this gives the scan's element: the maximum by `max` (no
/// data-dependent branch: a compare-and-take per element mispredicts about
/// once per window on real activations, ~10x slower), then the first element
/// equal to it, found by integer selects from the last, its bits taken from
/// that element (so with ties, -0.0 against 0.0 included, the first one wins).
/// Written without branches or bounds checks in the loop, so it vectorizes;
/// [`pool2x2_plane`] picks the AVX2 or AVX-512 build of the same code at run
/// time ([`crate::gemm::Kernel::detect`]), and all give the same bits
/// (selects and comparisons only, no arithmetic).
#[inline(always)]
fn pool2x2_row(r0: &[f32], r1: &[f32], b0: usize, b1: usize, y: &mut [f32], idx: &mut [usize]) -> bool {
    let ow = y.len().min(idx.len());
    let (r0, r1) = (&r0[..2 * ow], &r1[..2 * ow]);
    let mut nan = false;
    let pairs = r0.chunks_exact(2).zip(r1.chunks_exact(2));
    for (ox, ((p, q), (yv, iv))) in pairs.zip(y.iter_mut().zip(idx.iter_mut())).enumerate() {
        let (a, b, c, d) = (p[0], p[1], q[0], q[1]);
        nan |= a.is_nan() | b.is_nan() | c.is_nan() | d.is_nan();
        let m = a.max(b).max(c.max(d));
        let j = 2 * ox;
        let (mut v, mut at) = (d.to_bits(), b1 + j + 1);
        if c == m {
            (v, at) = (c.to_bits(), b1 + j);
        }
        if b == m {
            (v, at) = (b.to_bits(), b0 + j + 1);
        }
        if a == m {
            (v, at) = (a.to_bits(), b0 + j);
        }
        (*yv, *iv) = (f32::from_bits(v), at);
    }
    nan
}

/// The maximum of rows `y0..y1`, columns `x0..x1` of a plane `w` wide, and
/// its position (`-inf` at the window's first position when empty).
#[inline(always)]
fn max_window(xp: &[f32], w: usize, y0: usize, y1: usize, x0: usize, x1: usize) -> (f32, usize) {
    let (mut best, mut at) = (f32::NEG_INFINITY, y0 * w + x0);
    for iy in y0..y1 {
        let row = iy * w;
        for (ix, &v) in xp[row + x0..row + x1].iter().enumerate() {
            if v > best || v.is_nan() {
                (best, at) = (v, row + x0 + ix);
            }
        }
    }
    (best, at)
}

/// Gradient of [`max_pool2d`]: `dx[n, c, idx] += dy[n, c, oy, ox]` with
/// `idx = indices[n, c, oy, ox]` (the derivative of a max is 1 at the chosen
/// element, 0 elsewhere; overlapping windows that chose the same element add).
///
/// `grad_out` must be `[n, c, oh, ow]` with `n, c` of `input_shape`, and
/// `indices` must hold one in-plane position per element of `grad_out`.
pub fn max_pool2d_backward(grad_out: &Tensor, indices: &[usize], input_shape: &[usize]) -> Result<Tensor> {
    let op = "max_pool2d_backward";
    check_rank(op, input_shape, 4)?;
    check_rank(op, grad_out.shape(), 4)?;
    if grad_out.shape()[..2] != input_shape[..2] {
        return Err(TensorError::ShapeMismatch {
            op,
            lhs: input_shape.to_vec(),
            rhs: grad_out.shape().to_vec(),
        });
    }
    let dx = scatter_max(op, grad_out, indices, input_shape[2] * input_shape[3])?;
    Tensor::from_vec(dx, input_shape)
}

/// The planes of `grad_out` scattered through `indices` into planes of `hw`.
fn scatter_max(op: &'static str, grad_out: &Tensor, indices: &[usize], hw: usize) -> Result<Vec<f32>> {
    if indices.len() != grad_out.len() {
        return Err(TensorError::InvalidArgument {
            op,
            reason: format!("{} indices for a gradient of shape {:?}", indices.len(), grad_out.shape()),
        });
    }
    if let Some(&bad) = indices.iter().find(|&&i| i >= hw) {
        return Err(TensorError::IndexOutOfRange { op, index: bad as i64, size: hw });
    }
    let s = grad_out.shape();
    let ohw: usize = s[2..].iter().product();
    let dy = grad_out.contiguous();
    let dys = dy.as_slice().expect("contiguous");
    let mut dx = vec![0.0f32; s[0] * s[1] * hw];
    per_plane(&mut dx, hw, |p, dxp| {
        let range = p * ohw..(p + 1) * ohw;
        for (&g, &i) in dys[range.clone()].iter().zip(&indices[range]) {
            dxp[i] += g;
        }
    });
    Ok(dx)
}

// ----- average --------------------------------------------------------------

/// 2-D average pooling of `x [n, c, h, w]` -> `[n, c, oh, ow]`.
///
/// `y = sum(window ∩ input) / divisor`, where `divisor` is the window area
/// clipped to the padded input when `count_include_pad` (PyTorch's default;
/// a ceil-mode window's part past the padding does not count), else the
/// number of input elements in the window.
pub fn avg_pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    count_include_pad: bool,
    ceil_mode: bool,
) -> Result<Tensor> {
    check_rank("avg_pool2d", x.shape(), 4)?;
    let g = Geom::new("avg_pool2d", x.shape(), x.shape(), kernel, stride, padding, ceil_mode)?;
    Tensor::from_vec(avg_pool_kernel(&g, x, count_include_pad), &g.out_shape(x.shape()))
}

/// The divisor of output `(oy, ox)`.
fn avg_divisor(g: &Geom, oy: usize, ox: usize, count_include_pad: bool) -> f64 {
    if count_include_pad {
        let (y0, y1, x0, x1) = g.window(oy, ox);
        ((y1 - y0) * (x1 - x0)) as f64
    } else {
        let (y0, y1, x0, x1) = g.clipped(oy, ox);
        ((y1 - y0) * (x1 - x0)) as f64
    }
}

fn avg_pool_kernel(g: &Geom, x: &Tensor, count_include_pad: bool) -> Vec<f32> {
    let x = x.contiguous();
    let xs = x.as_slice().expect("contiguous");
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let mut y = vec![0.0f32; g.planes * ohw];
    per_plane(&mut y, ohw, |p, yp| {
        let xp = &xs[p * hw..(p + 1) * hw];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (y0, y1, x0, x1) = g.clipped(oy, ox);
                let mut s = 0.0f64;
                for iy in y0..y1 {
                    s += xp[iy * g.w + x0..iy * g.w + x1].iter().map(|&v| v as f64).sum::<f64>();
                }
                yp[oy * g.ow + ox] = (s / avg_divisor(g, oy, ox, count_include_pad)) as f32;
            }
        }
    });
    y
}

/// Gradient of [`avg_pool2d`] with the same window parameters: every input
/// element of a window receives `dy / divisor` (`d(sum/div)/dx_i = 1/div`);
/// overlapping windows add.
pub fn avg_pool2d_backward(
    grad_out: &Tensor,
    input_shape: &[usize],
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    count_include_pad: bool,
    ceil_mode: bool,
) -> Result<Tensor> {
    let op = "avg_pool2d_backward";
    check_rank(op, input_shape, 4)?;
    let g = Geom::new(op, input_shape, input_shape, kernel, stride, padding, ceil_mode)?;
    check_grad(op, grad_out.shape(), &g.out_shape(input_shape))?;
    let dx = window_backward(&g, grad_out, |oy, ox| {
        let (y0, y1, x0, x1) = g.clipped(oy, ox);
        (y0, y1, x0, x1, avg_divisor(&g, oy, ox, count_include_pad))
    });
    Tensor::from_vec(dx, input_shape)
}

/// Shared backward of the averaging pools: for every output `(oy, ox)` with
/// window and divisor `win(oy, ox)`, adds `dy / divisor` to each input in the
/// window. Accumulates in f64 per plane, outputs in row-major order.
fn window_backward(
    g: &Geom,
    grad_out: &Tensor,
    win: impl Fn(usize, usize) -> (usize, usize, usize, usize, f64) + Sync + Send,
) -> Vec<f32> {
    let dy = grad_out.contiguous();
    let dys = dy.as_slice().expect("contiguous");
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let mut dx = vec![0.0f32; g.planes * hw];
    per_plane(&mut dx, hw, |p, dxp| {
        let mut acc = vec![0.0f64; hw];
        let dyp = &dys[p * ohw..(p + 1) * ohw];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (y0, y1, x0, x1, div) = win(oy, ox);
                let d = dyp[oy * g.ow + ox] as f64 / div;
                for iy in y0..y1 {
                    acc[iy * g.w + x0..iy * g.w + x1].iter_mut().for_each(|a| *a += d);
                }
            }
        }
        dxp.iter_mut().zip(&acc).for_each(|(o, &a)| *o = a as f32);
    });
    dx
}

// ----- adaptive average -----------------------------------------------------

/// Bin `i` of `out` over `size`: `floor(i size / out) .. ceil((i+1) size / out)`.
fn adaptive_bin(i: usize, size: usize, out: usize) -> (usize, usize) {
    (i * size / out, ((i + 1) * size).div_ceil(out))
}

/// Geometry of an adaptive pool (kernel fields unused).
fn adaptive_geom(op: &'static str, shape: &[usize], shown: &[usize], out: (usize, usize)) -> Result<Geom> {
    if out.0 == 0 || out.1 == 0 || shape[2] == 0 || shape[3] == 0 {
        return Err(TensorError::InvalidArgument {
            op,
            reason: format!("output size {out:?} and the spatial size of input {shown:?} must be positive"),
        });
    }
    Ok(Geom {
        planes: shape[0] * shape[1],
        h: shape[2],
        w: shape[3],
        oh: out.0,
        ow: out.1,
        kh: 0,
        kw: 0,
        sh: 0,
        sw: 0,
        ph: 0,
        pw: 0,
    })
}

/// Window and element count of adaptive output `(oy, ox)`.
fn adaptive_window(g: &Geom, oy: usize, ox: usize) -> (usize, usize, usize, usize, f64) {
    let (y0, y1) = adaptive_bin(oy, g.h, g.oh);
    let (x0, x1) = adaptive_bin(ox, g.w, g.ow);
    (y0, y1, x0, x1, ((y1 - y0) * (x1 - x0)) as f64)
}

/// Adaptive average pooling of `x [n, c, h, w]` to `[n, c, oh, ow]`: output
/// `(i, j)` is the mean of rows `floor(i h/oh)..ceil((i+1) h/oh)` and columns
/// `floor(j w/ow)..ceil((j+1) w/ow)` (PyTorch's bins; they may overlap).
pub fn adaptive_avg_pool2d(x: &Tensor, output_size: (usize, usize)) -> Result<Tensor> {
    check_rank("adaptive_avg_pool2d", x.shape(), 4)?;
    let g = adaptive_geom("adaptive_avg_pool2d", x.shape(), x.shape(), output_size)?;
    Tensor::from_vec(adaptive_kernel(&g, x), &g.out_shape(x.shape()))
}

fn adaptive_kernel(g: &Geom, x: &Tensor) -> Vec<f32> {
    let x = x.contiguous();
    let xs = x.as_slice().expect("contiguous");
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let mut y = vec![0.0f32; g.planes * ohw];
    per_plane(&mut y, ohw, |p, yp| {
        let xp = &xs[p * hw..(p + 1) * hw];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let (y0, y1, x0, x1, count) = adaptive_window(g, oy, ox);
                let mut s = 0.0f64;
                for iy in y0..y1 {
                    s += xp[iy * g.w + x0..iy * g.w + x1].iter().map(|&v| v as f64).sum::<f64>();
                }
                yp[oy * g.ow + ox] = (s / count) as f32;
            }
        }
    });
    y
}

/// Gradient of [`adaptive_avg_pool2d`]: each input element of bin `(i, j)`
/// receives `dy[i, j] / |bin|`; overlapping bins add. The output size is
/// read from `grad_out [n, c, oh, ow]`.
pub fn adaptive_avg_pool2d_backward(grad_out: &Tensor, input_shape: &[usize]) -> Result<Tensor> {
    let op = "adaptive_avg_pool2d_backward";
    check_rank(op, input_shape, 4)?;
    check_rank(op, grad_out.shape(), 4)?;
    let s = grad_out.shape();
    let g = adaptive_geom(op, input_shape, input_shape, (s[2], s[3]))?;
    check_grad(op, s, &g.out_shape(input_shape))?;
    Tensor::from_vec(window_backward(&g, grad_out, |oy, ox| adaptive_window(&g, oy, ox)), input_shape)
}

// ----- 1-D forms (height 1) -------------------------------------------------

fn as_4d(t: &Tensor) -> Result<Tensor> {
    let s = t.shape();
    t.reshape(&[s[0], s[1], 1, s[2]])
}

fn shape_4d(s: &[usize]) -> [usize; 4] {
    [s[0], s[1], 1, s[2]]
}

/// Drops the height axis of a 2-D result.
fn as_3d(t: Tensor) -> Result<Tensor> {
    let s = t.shape().to_vec();
    t.reshape(&[s[0], s[1], s[3]])
}

/// 1-D max pooling of `x [n, c, l]` -> `(y [n, c, ol], indices)`;
/// `indices` are positions within `0..l`. See [`max_pool2d`].
pub fn max_pool1d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<(Tensor, Vec<usize>)> {
    check_rank("max_pool1d", x.shape(), 3)?;
    let g = Geom::new(
        "max_pool1d",
        &shape_4d(x.shape()),
        x.shape(),
        (1, kernel),
        (1, stride),
        (0, padding),
        false,
    )?;
    let (y, idx) = max_pool_kernel(&g, &as_4d(x)?);
    Ok((Tensor::from_vec(y, &[x.shape()[0], x.shape()[1], g.ow])?, idx))
}

/// Gradient of [`max_pool1d`]; see [`max_pool2d_backward`].
pub fn max_pool1d_backward(grad_out: &Tensor, indices: &[usize], input_shape: &[usize]) -> Result<Tensor> {
    let op = "max_pool1d_backward";
    check_rank(op, input_shape, 3)?;
    check_rank(op, grad_out.shape(), 3)?;
    if grad_out.shape()[..2] != input_shape[..2] {
        return Err(TensorError::ShapeMismatch {
            op,
            lhs: input_shape.to_vec(),
            rhs: grad_out.shape().to_vec(),
        });
    }
    Tensor::from_vec(scatter_max(op, grad_out, indices, input_shape[2])?, input_shape)
}

/// 1-D average pooling of `x [n, c, l]`; see [`avg_pool2d`].
pub fn avg_pool1d(
    x: &Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
    count_include_pad: bool,
) -> Result<Tensor> {
    check_rank("avg_pool1d", x.shape(), 3)?;
    let g = Geom::new(
        "avg_pool1d",
        &shape_4d(x.shape()),
        x.shape(),
        (1, kernel),
        (1, stride),
        (0, padding),
        false,
    )?;
    Tensor::from_vec(avg_pool_kernel(&g, &as_4d(x)?, count_include_pad), &[x.shape()[0], x.shape()[1], g.ow])
}

/// Gradient of [`avg_pool1d`]; see [`avg_pool2d_backward`].
pub fn avg_pool1d_backward(
    grad_out: &Tensor,
    input_shape: &[usize],
    kernel: usize,
    stride: usize,
    padding: usize,
    count_include_pad: bool,
) -> Result<Tensor> {
    let op = "avg_pool1d_backward";
    check_rank(op, input_shape, 3)?;
    check_rank(op, grad_out.shape(), 3)?;
    let g =
        Geom::new(op, &shape_4d(input_shape), input_shape, (1, kernel), (1, stride), (0, padding), false)?;
    check_grad(op, grad_out.shape(), &[input_shape[0], input_shape[1], g.ow])?;
    let dx = window_backward(&g, grad_out, |oy, ox| {
        let (y0, y1, x0, x1) = g.clipped(oy, ox);
        (y0, y1, x0, x1, avg_divisor(&g, oy, ox, count_include_pad))
    });
    Tensor::from_vec(dx, input_shape)
}

/// 1-D adaptive average pooling of `x [n, c, l]` to `[n, c, output_size]`;
/// see [`adaptive_avg_pool2d`].
pub fn adaptive_avg_pool1d(x: &Tensor, output_size: usize) -> Result<Tensor> {
    check_rank("adaptive_avg_pool1d", x.shape(), 3)?;
    let g = adaptive_geom("adaptive_avg_pool1d", &shape_4d(x.shape()), x.shape(), (1, output_size))?;
    as_3d(Tensor::from_vec(adaptive_kernel(&g, &as_4d(x)?), &g.out_shape(&shape_4d(x.shape())))?)
}

/// Gradient of [`adaptive_avg_pool1d`]; see [`adaptive_avg_pool2d_backward`].
pub fn adaptive_avg_pool1d_backward(grad_out: &Tensor, input_shape: &[usize]) -> Result<Tensor> {
    let op = "adaptive_avg_pool1d_backward";
    check_rank(op, input_shape, 3)?;
    check_rank(op, grad_out.shape(), 3)?;
    let g = adaptive_geom(op, &shape_4d(input_shape), input_shape, (1, grad_out.shape()[2]))?;
    check_grad(op, grad_out.shape(), &[input_shape[0], input_shape[1], g.ow])?;
    Tensor::from_vec(window_backward(&g, grad_out, |oy, ox| adaptive_window(&g, oy, ox)), input_shape)
}
