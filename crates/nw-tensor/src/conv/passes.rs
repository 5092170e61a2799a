//! The batch-level passes of [`super`]: forward, input gradient, weight
//! gradient and bias gradient, side by side, generic over the element type
//! ([`Elem`]) the sums run in. Shapes were checked by the callers ([`Geom`]).

use rayon::prelude::*;

use super::kernels::{Elem, col2im, gemm, im2col, transpose_add, transpose_better, with_scratch};
use super::{Geom, WGRAD_SLOTS};
use crate::tensor::Tensor;

/// [`forward_kernel`] in the element type `E`, results rounded to f32.
pub(super) fn forward<E: Elem>(g: &Geom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (x, w, bias) = (E::widen(x), E::widen(w), bias.map(E::widen));
    let mut out = vec![E::default(); g.n * g.out_img()];
    forward_kernel(g, &x, &w, bias.as_deref(), &mut out);
    E::narrow(out)
}

/// `y = conv(x, w) + b` for all images, in parallel over images:
/// `y_g [cog, ohw] = W_g [cog, kg] x cols_g [kg, ohw]` per image and group.
///
/// When the GEMM's tiles fit the transposed product better
/// ([`transpose_better`], e.g. 64 channels of a 14x14 image), each image
/// computes `T [ohw, cog] = cols_g^T W_g^T` into scratch (with `W_g^T`
/// laid out once per call, so both operands pack by contiguous copies)
/// and writes `y_g = T^T + b` in one pass; the sums are the same.
fn forward_kernel<E: Elem>(g: &Geom, x: &[E], w: &[E], bias: Option<&[E]>, out: &mut [E]) {
    let (in_img, out_img, ohw, kg, cog) = (g.in_img(), g.out_img(), g.ohw(), g.kg(), g.cog());
    if out_img == 0 {
        return;
    }
    let cols_len = if g.pointwise() { 0 } else { g.cols_len() };
    let trans = kg >= 32 && transpose_better(cog, ohw);
    // W_g^T [kg, cog] per group, contiguous.
    let wt: Vec<E> = if trans { transpose_groups(w, g.groups, cog, kg) } else { Vec::new() };
    let t_len = if trans { ohw * cog } else { 0 };
    out.par_chunks_mut(out_img).enumerate().for_each(|(i, y)| {
        let xi = &x[i * in_img..(i + 1) * in_img];
        with_scratch(cols_len + t_len, |buf| {
            let (colbuf, tbuf) = buf.split_at_mut(cols_len);
            let cols: &[E] = if g.pointwise() {
                xi
            } else {
                im2col(g, xi, colbuf);
                colbuf
            };
            for grp in 0..g.groups {
                let yg = &mut y[grp * cog * ohw..(grp + 1) * cog * ohw];
                if trans {
                    gemm(
                        ohw,
                        kg,
                        cog,
                        (&cols[grp * kg * ohw..], (1, ohw)),
                        (&wt[grp * kg * cog..], (cog, 1)),
                        false,
                        (&mut *tbuf, (cog, 1)),
                    );
                    transpose_add(tbuf, ohw, cog, bias.map(|b| &b[grp * cog..(grp + 1) * cog]), yg);
                } else {
                    gemm(
                        cog,
                        kg,
                        ohw,
                        (&w[grp * cog * kg..], (kg, 1)),
                        (&cols[grp * kg * ohw..], (ohw, 1)),
                        false,
                        (yg, (ohw, 1)),
                    );
                }
            }
        });
        if let Some(b) = bias.filter(|_| !trans || kg == 0) {
            for (row, &bo) in y.chunks_mut(ohw).zip(b) {
                row.iter_mut().for_each(|v| *v += bo);
            }
        }
    });
}

/// The per-group transposes of `groups` row-major `rows x cols` blocks
/// laid end to end: block `g` of the result is block `g` of `a` transposed.
fn transpose_groups<E: Elem>(a: &[E], groups: usize, rows: usize, cols: usize) -> Vec<E> {
    let mut t = vec![E::default(); groups * rows * cols];
    let blk = rows * cols;
    for grp in 0..groups {
        transpose_add(&a[grp * blk..(grp + 1) * blk], rows, cols, None, &mut t[grp * blk..(grp + 1) * blk]);
    }
    t
}

/// The input gradient (with `w`) and the weight gradient (with `x`) in the
/// element type `E`, rounded to f32.
pub(super) fn backward<E: Elem>(
    g: &Geom,
    dy: &[f32],
    x: Option<&[f32]>,
    w: Option<&[f32]>,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let dy = E::widen(dy);
    let dx = w.map(|w| E::narrow(input_grad(g, &dy, &E::widen(w))));
    let dw = x.map(|x| E::narrow(weight_grad(g, &dy, &E::widen(x))));
    (dx, dw)
}

/// `dx = d sum(y * dy) / dx`. Since `y_g = W_g cols_g(x)` is linear in `x`,
/// `dx = col2im(W_g^T dy_g)`: the adjoint of im2col applied to the column
/// gradient.
///
/// With stride 1 and `p <= d (k - 1)` on both axes that is itself a
/// convolution: `dx[c, iy, ix] = sum_{o, ki, kj} W[o, c, ki, kj] dy[o, iy + p - ki d, ix + p - kj d]`
/// is the convolution of `dy` with the kernel flipped in space and with input
/// and output channels swapped, padding `d (k - 1) - p`, stride 1, same
/// dilation and groups ([`Geom::adjoint`]). That form does one deep GEMM per
/// image (`k = c_out/g * kh * kw`) and no col2im; it is used where measured
/// faster (see [`prefer_adjoint`]).
fn input_grad<E: Elem>(g: &Geom, dy: &[E], w: &[E]) -> Vec<E> {
    input_grad_via(g, dy, w, g.adjoint().filter(|_| prefer_adjoint(g)).as_ref())
}

/// [`input_grad`] by the adjoint convolution `adjoint` (from
/// [`Geom::adjoint`]) or, without one, by col2im.
pub(super) fn input_grad_via<E: Elem>(g: &Geom, dy: &[E], w: &[E], adjoint: Option<&Geom>) -> Vec<E> {
    let mut dx = vec![E::default(); g.n * g.in_img()];
    match adjoint {
        Some(ga) => forward_kernel(ga, dy, &flip_transpose(g, w), None, &mut dx),
        None => input_grad_col2im(g, dy, w, &mut dx),
    }
    dx
}

/// Whether [`input_grad`] takes the adjoint-convolution form (when it
/// applies). Its columns have `c_out kh kw` rows against the col2im form's
/// `c_in kh kw`, and its GEMM has `m = c_in/g` rows. Measured at batch 64 on
/// 28x28, 3x3 pad 1, one thread (CPU ms, adjoint vs col2im): 64->32 channels
/// 12.5 vs 14.6, 64->64 24.4 vs 22.8, 32->64 12.6 vs 11.8, 32->32 7.5 vs 7.2;
/// so: fewer output than input channels, and enough rows per group.
fn prefer_adjoint(g: &Geom) -> bool {
    let cig = g.c_in / g.groups;
    cig >= 16 && g.c_out < g.c_in
}

/// `W' [c_in, c_out/g, kh, kw]` with `W'[g cig + c, o, ki, kj] = W[g cog + o, c, kh-1-ki, kw-1-kj]`:
/// the weight of the adjoint convolution.
fn flip_transpose<E: Elem>(g: &Geom, w: &[E]) -> Vec<E> {
    let (cig, cog, khw) = (g.c_in / g.groups, g.cog(), g.kh * g.kw);
    let mut wt = vec![E::default(); w.len()];
    for grp in 0..g.groups {
        for c in 0..cig {
            for o in 0..cog {
                let src = ((grp * cog + o) * cig + c) * khw;
                let dst = ((grp * cig + c) * cog + o) * khw;
                for t in 0..khw {
                    // tap (ki, kj) = t maps to (kh-1-ki, kw-1-kj) = khw-1-t
                    wt[dst + t] = w[src + khw - 1 - t];
                }
            }
        }
    }
    wt
}

/// The general input gradient, in parallel over images:
/// `dcols_g [kg, ohw] = W_g^T [kg, cog] x dy_g [cog, ohw]`, then
/// `dx_i = col2im(dcols)` (overlaps accumulate in index order). With a
/// pointwise kernel `dcols` is `dx_i` itself.
fn input_grad_col2im<E: Elem>(g: &Geom, dy: &[E], w: &[E], dx: &mut [E]) {
    let (in_img, out_img, ohw, kg, cog) = (g.in_img(), g.out_img(), g.ohw(), g.kg(), g.cog());
    if in_img == 0 {
        return;
    }
    let pointwise = g.pointwise();
    let cols_len = if pointwise { 0 } else { g.cols_len() };
    dx.par_chunks_mut(in_img).enumerate().for_each(|(i, dxi)| {
        let dyi = &dy[i * out_img..(i + 1) * out_img];
        with_scratch(cols_len, |dcols| {
            let target: &mut [E] = if pointwise { &mut *dxi } else { &mut *dcols };
            for grp in 0..g.groups {
                gemm(
                    kg,
                    cog,
                    ohw,
                    (&w[grp * cog * kg..], (1, kg)),
                    (&dyi[grp * cog * ohw..], (ohw, 1)),
                    false,
                    (&mut target[grp * kg * ohw..], (ohw, 1)),
                );
            }
            if !pointwise {
                col2im(g, dcols, dxi);
            }
        });
    });
}

/// `dW = d sum(y * dy) / dW = sum_i dy_i cols(x_i)^T`, per group
/// `dW_g [cog, kg] += dy_g [cog, ohw] x cols_g^T [ohw, kg]`.
///
/// The batch is cut into at most [`WGRAD_SLOTS`] contiguous image ranges, a
/// function of the batch size only; each range (one task) sums its images in
/// order into its own buffer, and the buffers are added in range order, so
/// the bits do not depend on the thread count.
fn weight_grad<E: Elem>(g: &Geom, dy: &[E], x: &[E]) -> Vec<E> {
    let (in_img, out_img, ohw, kg, cog) = (g.in_img(), g.out_img(), g.ohw(), g.kg(), g.cog());
    let (n, dw_len) = (g.n, g.c_out * kg);
    let slots = n.min(WGRAD_SLOTS);
    // Image range of slot s: s*n/slots .. (s+1)*n/slots.
    let bounds: Vec<usize> = (0..=slots).map(|s| s * n / slots.max(1)).collect();
    let pointwise = g.pointwise();
    let cols_len = if pointwise { 0 } else { g.cols_len() };
    // Accumulate dW_g^T [kg, cog] instead when its tiles fit better (the
    // same sums; transposed back once at the end).
    let trans = transpose_better(cog, kg);
    let partials: Vec<Vec<E>> = (0..slots)
        .into_par_iter()
        .map(|s| {
            let mut pdw = vec![E::default(); dw_len];
            with_scratch(cols_len, |buf| {
                for i in bounds[s]..bounds[s + 1] {
                    let xi = &x[i * in_img..(i + 1) * in_img];
                    let dyi = &dy[i * out_img..(i + 1) * out_img];
                    let cols: &[E] = if pointwise {
                        xi
                    } else {
                        im2col(g, xi, buf);
                        buf
                    };
                    for grp in 0..g.groups {
                        let (cg, dg) = (&cols[grp * kg * ohw..], &dyi[grp * cog * ohw..]);
                        let pg = &mut pdw[grp * cog * kg..];
                        if trans {
                            gemm(kg, ohw, cog, (cg, (ohw, 1)), (dg, (1, ohw)), true, (pg, (cog, 1)));
                        } else {
                            gemm(cog, ohw, kg, (dg, (ohw, 1)), (cg, (1, ohw)), true, (pg, (kg, 1)));
                        }
                    }
                }
            });
            pdw
        })
        .collect();
    let mut it = partials.into_iter();
    let mut dw = it.next().unwrap_or_else(|| vec![E::default(); dw_len]);
    for p in it {
        dw.iter_mut().zip(&p).for_each(|(a, &b)| *a += b);
    }
    if trans { transpose_groups(&dw, g.groups, kg, cog) } else { dw }
}

/// `db[o] = d sum(y * dy) / db[o] = sum_{i, p} dy[i, o, p]` over `n` images
/// of `c_out` planes of `plane` elements, in f64 (see [`sum_f64`]; images in
/// order), in parallel over `o`.
pub(super) fn bias_grad(n: usize, c_out: usize, plane: usize, dy: &[f32]) -> Tensor {
    let db: Vec<f32> = (0..c_out)
        .into_par_iter()
        .map(|o| {
            let mut s = 0.0f64;
            for i in 0..n {
                let start = (i * c_out + o) * plane;
                s += sum_f64(&dy[start..start + plane]);
            }
            s as f32
        })
        .collect();
    Tensor::from_vec(db, &[c_out]).expect("c_out elements")
}

/// The sum of `v` in f64 with eight interleaved accumulators (lane `j` adds
/// elements `j, j + 8, ...`; the lanes are then added in order, then the
/// tail): a fixed order that does not depend on threads, and eight
/// independent add chains instead of one.
pub(super) fn sum_f64(v: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += x as f64;
        }
    }
    lanes.iter().sum::<f64>() + tail.iter().map(|&x| x as f64).sum::<f64>()
}
