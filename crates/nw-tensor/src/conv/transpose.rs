//! 2-D transposed convolution (PyTorch `conv_transpose2d`), built on the
//! convolution kernels: a transposed convolution is the input gradient of the
//! convolution that maps its output back to its input.
//!
//! Layouts: input `[n, c_in, h, w]`, weight `[c_in, c_out / groups, kh, kw]`
//! (PyTorch's layout for transposed convolution), bias `[c_out]`, output
//! `[n, c_out, oh, ow]` with
//! `oh = (h - 1) sh - 2 ph + dh (kh - 1) + oph + 1`, likewise `ow`.
//!
//! ```text
//! y[n, o, oy, ox] = b[o] + sum over (c, ki, kj) with oy = iy sh - ph + ki dh, ox = ix sw - pw + kj dw:
//!                   w[c, o - g cog, ki, kj] x[n, c, iy, ix]      (g = c / (c_in / groups), cog = c_out / groups)
//! ```
//!
//! Let `C` be the convolution with input `[n, c_out, oh, ow]`, weight `w`
//! read as `[c_in, c_out / groups, kh, kw]` (its output channels are our
//! input channels) and the same stride, padding, dilation and groups. `C`
//! maps `oh` rows to `h + oph / sh` rows (floor), so with `e = oph / sh` extra
//! zero rows below `x` (and likewise columns):
//!
//! - forward: `y = C^T(x)`, the input gradient of `C` at `dy = x` padded by `e`;
//! - input gradient: `dx = C(dy)` cropped to `h x w`, since `<C^T x, dy> = <x, C dy>`;
//! - weight gradient: `dw` of `C` with input `dy` and output gradient `x` (padded);
//! - bias gradient: `db[o] = sum_{n, oy, ox} dy[n, o, oy, ox]` ([`conv_backward_bias`]).
//!
//! The bits inherit the convolution kernels' invariant: they do not depend on
//! the thread count.
//!
//! ```
//! use nw_tensor::Tensor;
//! use nw_tensor::conv::{ConvTranspose2dSpec, conv_transpose2d};
//!
//! // one 1x1 input spread by a 2x2 kernel with stride 2
//! let x = Tensor::from_vec(vec![1., 2.], &[1, 1, 1, 2]).unwrap();
//! let w = Tensor::from_vec(vec![1., 10., 100., 1000.], &[1, 1, 2, 2]).unwrap();
//! let spec = ConvTranspose2dSpec { stride: (2, 2), ..Default::default() };
//! let y = conv_transpose2d(&x, &w, None, &spec).unwrap();
//! assert_eq!(y.shape(), &[1, 1, 2, 4]);
//! assert_eq!(y.to_vec(), vec![1., 10., 2., 20., 100., 1000., 200., 2000.]);
//! ```

use super::{
    Accumulation, Conv2dSpec, Geom, conv_backward_bias, conv2d, conv2d_backward_input, conv2d_backward_weight,
};
use crate::error::{Result, TensorError};
use crate::tensor::Tensor;

/// Hyper-parameters of a 2-D transposed convolution, as `(height, width)`
/// pairs (torch `nn.ConvTranspose2d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConvTranspose2dSpec {
    /// Step between input positions in the output. Default `(1, 1)`.
    pub stride: (usize, usize),
    /// Rows and columns cropped from each side of the full output
    /// (`dilation (kernel - 1) - padding` zeros of the equivalent direct
    /// convolution). Default `(0, 0)`.
    pub padding: (usize, usize),
    /// Extra rows and columns added at the bottom and right of the output;
    /// each must be smaller than the stride or the dilation. Default `(0, 0)`.
    pub output_padding: (usize, usize),
    /// Spacing between kernel taps. Default `(1, 1)`.
    pub dilation: (usize, usize),
    /// Number of channel groups; must divide `c_in` and `c_out`. Default 1.
    pub groups: usize,
    /// How sums of products are accumulated. Default [`Accumulation::F32`].
    pub accumulation: Accumulation,
}

impl Default for ConvTranspose2dSpec {
    fn default() -> Self {
        ConvTranspose2dSpec {
            stride: (1, 1),
            padding: (0, 0),
            output_padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            accumulation: Accumulation::F32,
        }
    }
}

impl ConvTranspose2dSpec {
    /// The spec of the direct convolution this one transposes.
    pub fn conv_spec(&self) -> Conv2dSpec {
        Conv2dSpec {
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
            accumulation: self.accumulation,
        }
    }
}

/// The checked geometry: output size and the zero rows/columns `extra`
/// to add below and right of the input so that the direct convolution of the
/// output has the input's (extended) size.
struct TGeom {
    out: [usize; 4],
    /// The input shape extended by `extra`.
    ext: [usize; 4],
    extra: (usize, usize),
}

fn invalid(op: &'static str, reason: String) -> TensorError {
    TensorError::InvalidArgument { op, reason }
}

impl TGeom {
    fn new(op: &'static str, x: &[usize], wt: &[usize], spec: &ConvTranspose2dSpec) -> Result<TGeom> {
        if x.len() != 4 {
            return Err(TensorError::InvalidShape {
                op,
                shape: x.to_vec(),
                reason: "input must be 4-D [n, c_in, h, w]".into(),
            });
        }
        if wt.len() != 4 {
            return Err(TensorError::InvalidShape {
                op,
                shape: wt.to_vec(),
                reason: "weight must be 4-D [c_in, c_out / groups, kh, kw]".into(),
            });
        }
        let ConvTranspose2dSpec { stride, padding, output_padding, dilation, groups, .. } = *spec;
        if stride.0 == 0 || stride.1 == 0 || dilation.0 == 0 || dilation.1 == 0 || groups == 0 {
            return Err(invalid(
                op,
                format!("stride {stride:?}, dilation {dilation:?} and groups {groups} must be positive"),
            ));
        }
        if wt[0] != x[1] {
            return Err(TensorError::ShapeMismatch { op, lhs: x.to_vec(), rhs: wt.to_vec() });
        }
        if !x[1].is_multiple_of(groups) {
            return Err(invalid(op, format!("groups {groups} must divide the input channels (input {x:?})")));
        }
        if wt[2] == 0 || wt[3] == 0 {
            return Err(TensorError::InvalidShape {
                op,
                shape: wt.to_vec(),
                reason: "kernel height and width must be positive".into(),
            });
        }
        let c_out = wt[1]
            .checked_mul(groups)
            .ok_or_else(|| invalid(op, format!("weight {wt:?} with groups {groups} overflows")))?;
        // torch: output_padding < stride or < dilation, per axis
        for (op_, s, d) in
            [(output_padding.0, stride.0, dilation.0), (output_padding.1, stride.1, dilation.1)]
        {
            if op_ >= s && op_ >= d {
                return Err(invalid(
                    op,
                    format!(
                        "output_padding {output_padding:?} must be smaller than the stride {stride:?} \
                         or the dilation {dilation:?}"
                    ),
                ));
            }
        }
        // o = (size - 1) s - 2 p + d (k - 1) + op + 1, in checked arithmetic
        let len = |size: usize, k: usize, s: usize, p: usize, d: usize, op_: usize| -> Option<usize> {
            let full = size.checked_sub(1)?.checked_mul(s)?.checked_add(d.checked_mul(k - 1)?)?;
            full.checked_add(op_)?.checked_add(1)?.checked_sub(p.checked_mul(2)?)
        };
        let (Some(oh), Some(ow)) = (
            len(x[2], wt[2], stride.0, padding.0, dilation.0, output_padding.0),
            len(x[3], wt[3], stride.1, padding.1, dilation.1, output_padding.1),
        ) else {
            return Err(invalid(
                op,
                format!(
                    "input {x:?} with weight {wt:?}, stride {stride:?}, padding {padding:?}, dilation \
                     {dilation:?} and output_padding {output_padding:?} gives no output"
                ),
            ));
        };
        if oh == 0 || ow == 0 {
            return Err(invalid(op, format!("input {x:?} with padding {padding:?} gives an empty output")));
        }
        crate::tensor::numel_within(op, &[x[0], c_out, oh, ow], crate::MAX_ELEMENTS)?;
        let extra = (output_padding.0 / stride.0, output_padding.1 / stride.1);
        Ok(TGeom { out: [x[0], c_out, oh, ow], ext: [x[0], x[1], x[2] + extra.0, x[3] + extra.1], extra })
    }

    /// Checks the direct convolution's geometry (the same conditions, seen
    /// from the other side; kept so that an inner kernel can never fail on
    /// what passed here).
    fn check_direct(&self, op: &'static str, wt: &[usize], spec: &ConvTranspose2dSpec) -> Result<()> {
        let g = Geom::new(op, &self.out, wt, &spec.conv_spec())?;
        debug_assert_eq!((g.oh, g.ow), (self.ext[2], self.ext[3]));
        Ok(())
    }
}

/// `x [n, c, h, w]` with `extra` zero rows below and columns to the right.
fn pad_end(x: &Tensor, ext: &[usize; 4], extra: (usize, usize)) -> Result<Tensor> {
    if extra == (0, 0) {
        return Ok(x.contiguous());
    }
    let s = x.shape();
    let (h, w, eh, ew) = (s[2], s[3], ext[2], ext[3]);
    let xc = x.contiguous();
    let xs = xc.as_slice().expect("contiguous");
    let mut out = vec![0.0f32; ext.iter().product()];
    for (p, plane) in xs.chunks_exact((h * w).max(1)).enumerate().take(s[0] * s[1]) {
        for r in 0..h {
            out[(p * eh + r) * ew..(p * eh + r) * ew + w].copy_from_slice(&plane[r * w..(r + 1) * w]);
        }
    }
    Tensor::from_vec(out, ext)
}

/// `t [n, c, eh, ew]` cropped to its top-left `h x w`.
fn crop(t: Tensor, h: usize, w: usize) -> Result<Tensor> {
    if t.shape()[2] == h && t.shape()[3] == w {
        return Ok(t);
    }
    Ok(t.narrow(2, 0, h)?.narrow(3, 0, w)?.contiguous())
}

/// Output shape `[n, c_out, oh, ow]` of [`conv_transpose2d`], or its error.
pub fn conv_transpose2d_output_shape(
    input: &[usize],
    weight: &[usize],
    spec: &ConvTranspose2dSpec,
) -> Result<Vec<usize>> {
    Ok(TGeom::new("conv_transpose2d", input, weight, spec)?.out.to_vec())
}

/// 2-D transposed convolution: `x [n, c_in, h, w]`, `weight
/// [c_in, c_out / groups, kh, kw]`, optional `bias [c_out]` ->
/// `[n, c_out, oh, ow]` (see the [module docs](self) for the formula).
///
/// Errors (naming `conv_transpose2d` and the shapes) on operands of the
/// wrong rank, channels that do not match the weight or `groups`, a zero
/// stride, dilation or group count, an `output_padding` not below the stride
/// or the dilation, an empty output, or a bias not `[c_out]`.
pub fn conv_transpose2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    spec: &ConvTranspose2dSpec,
) -> Result<Tensor> {
    let op = "conv_transpose2d";
    let g = TGeom::new(op, x.shape(), weight.shape(), spec)?;
    if let Some(b) = bias
        && b.shape() != [g.out[1]]
    {
        return Err(TensorError::ShapeMismatch { op, lhs: vec![g.out[1]], rhs: b.shape().to_vec() });
    }
    g.check_direct(op, weight.shape(), spec)?;
    // y = C^T(x): the input gradient of the direct convolution at dy = x
    let y = conv2d_backward_input(&pad_end(x, &g.ext, g.extra)?, weight, &g.out, &spec.conv_spec())?;
    match bias {
        None => Ok(y),
        Some(b) => {
            // y[n, o, :, :] += b[o]
            let mut y = y;
            let plane = g.out[2] * g.out[3];
            let bv = b.to_vec();
            for (j, chunk) in y.as_slice_mut().chunks_exact_mut(plane).enumerate() {
                let bo = bv[j % g.out[1]];
                chunk.iter_mut().for_each(|v| *v += bo);
            }
            Ok(y)
        }
    }
}

/// The input gradient of `sum(conv_transpose2d(x, weight) * grad_out)`:
/// `dx = C(grad_out)` (the direct convolution), cropped to `input_shape`.
pub fn conv_transpose2d_backward_input(
    grad_out: &Tensor,
    weight: &Tensor,
    input_shape: &[usize],
    spec: &ConvTranspose2dSpec,
) -> Result<Tensor> {
    let op = "conv_transpose2d_backward_input";
    let g = TGeom::new(op, input_shape, weight.shape(), spec)?;
    check_grad(op, &g, grad_out)?;
    g.check_direct(op, weight.shape(), spec)?;
    let dx = conv2d(grad_out, weight, None, &spec.conv_spec())?;
    crop(dx, input_shape[2], input_shape[3])
}

/// The weight gradient of `sum(conv_transpose2d(x, weight) * grad_out)`:
/// the direct convolution's weight gradient with input `grad_out` and output
/// gradient `x` (extended by the extra zero rows).
pub fn conv_transpose2d_backward_weight(
    grad_out: &Tensor,
    x: &Tensor,
    weight_shape: &[usize],
    spec: &ConvTranspose2dSpec,
) -> Result<Tensor> {
    let op = "conv_transpose2d_backward_weight";
    let g = TGeom::new(op, x.shape(), weight_shape, spec)?;
    check_grad(op, &g, grad_out)?;
    g.check_direct(op, weight_shape, spec)?;
    conv2d_backward_weight(&pad_end(x, &g.ext, g.extra)?, grad_out, weight_shape, &spec.conv_spec())
}

/// The bias gradient: `grad_out` summed over every axis but the channels
/// (the same as a convolution's, [`conv_backward_bias`]).
pub fn conv_transpose2d_backward_bias(grad_out: &Tensor) -> Result<Tensor> {
    conv_backward_bias(grad_out)
}

fn check_grad(op: &'static str, g: &TGeom, grad_out: &Tensor) -> Result<()> {
    if grad_out.shape() != g.out {
        return Err(TensorError::ShapeMismatch { op, lhs: g.out.to_vec(), rhs: grad_out.shape().to_vec() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Direct transposed convolution in f64 from the formula: every input
    /// element scatters `x * w` to `oy = iy s - p + ki d`.
    fn naive(
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        spec: &ConvTranspose2dSpec,
    ) -> (Vec<usize>, Vec<f64>) {
        let (xs, ws) = (x.shape(), w.shape());
        let out = conv_transpose2d_output_shape(xs, ws, spec).unwrap();
        let (n, ci, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
        let (cog, kh, kw) = (ws[1], ws[2], ws[3]);
        let (co, oh, ow) = (out[1], out[2], out[3]);
        let cig = ci / spec.groups;
        let (xv, wv) = (x.to_vec(), w.to_vec());
        let mut y = vec![0.0f64; out.iter().product()];
        for i in 0..n {
            for c in 0..ci {
                let grp = c / cig;
                for iy in 0..h {
                    for ix in 0..wd {
                        let xval = xv[((i * ci + c) * h + iy) * wd + ix] as f64;
                        for oc in 0..cog {
                            let o = grp * cog + oc;
                            for ki in 0..kh {
                                let oy = (iy * spec.stride.0 + ki * spec.dilation.0) as isize
                                    - spec.padding.0 as isize;
                                if oy < 0 || oy >= oh as isize {
                                    continue;
                                }
                                for kj in 0..kw {
                                    let ox = (ix * spec.stride.1 + kj * spec.dilation.1) as isize
                                        - spec.padding.1 as isize;
                                    if ox < 0 || ox >= ow as isize {
                                        continue;
                                    }
                                    let wval = wv[((c * cog + oc) * kh + ki) * kw + kj] as f64;
                                    y[((i * co + o) * oh + oy as usize) * ow + ox as usize] += xval * wval;
                                }
                            }
                        }
                    }
                }
            }
        }
        if let Some(b) = b {
            let bv = b.to_vec();
            for (j, v) in y.iter_mut().enumerate() {
                *v += bv[(j / (oh * ow)) % co] as f64;
            }
        }
        (out, y)
    }

    fn close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!((g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()), "{what}[{i}]: {g} vs {w}");
        }
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
    }

    #[test]
    fn matches_the_direct_formula_and_its_adjoints() {
        let mut rng = Rng::new(11);
        // (x, weight, stride, padding, output_padding, dilation, groups)
        type Case =
            ([usize; 4], [usize; 4], (usize, usize), (usize, usize), (usize, usize), (usize, usize), usize);
        let cases: [Case; 7] = [
            ([2, 3, 4, 5], [3, 2, 3, 3], (2, 2), (1, 1), (1, 1), (1, 1), 1),
            ([2, 4, 4, 5], [4, 3, 2, 2], (2, 2), (0, 0), (0, 0), (1, 1), 2),
            ([2, 2, 4, 5], [2, 3, 3, 3], (1, 1), (2, 2), (0, 0), (2, 2), 1),
            ([2, 2, 4, 5], [2, 2, 3, 3], (3, 3), (1, 1), (2, 2), (1, 1), 2),
            // output_padding >= stride, allowed because it is below the dilation
            ([1, 2, 3, 4], [2, 2, 3, 2], (1, 2), (0, 1), (1, 1), (2, 2), 1),
            ([1, 3, 3, 3], [3, 1, 1, 1], (1, 1), (0, 0), (0, 0), (1, 1), 3),
            ([3, 2, 1, 2], [2, 4, 2, 3], (2, 3), (1, 0), (1, 2), (1, 1), 1),
        ];
        for (xs, ws, stride, padding, output_padding, dilation, groups) in cases {
            for acc in [Accumulation::F32, Accumulation::F64] {
                let spec = ConvTranspose2dSpec {
                    stride,
                    padding,
                    output_padding,
                    dilation,
                    groups,
                    accumulation: acc,
                };
                let x = Tensor::randn(&xs, 0.0, 1.0, &mut rng);
                let w = Tensor::randn(&ws, 0.0, 1.0, &mut rng);
                let b = Tensor::randn(&[ws[1] * groups], 0.0, 1.0, &mut rng);
                let (shape, want) = naive(&x, &w, Some(&b), &spec);
                let y = conv_transpose2d(&x, &w, Some(&b), &spec).unwrap();
                assert_eq!(y.shape(), shape.as_slice());
                close(&y.to_vec(), &want, "forward");
                // adjoints: <T(x), dy> = <x, dx(dy)>; d<T(x), dy>/dw by the naive map
                let dy = Tensor::randn(&shape, 0.0, 1.0, &mut rng);
                let dx = conv_transpose2d_backward_input(&dy, &w, &xs, &spec).unwrap();
                assert_eq!(dx.shape(), &xs);
                let y0 = conv_transpose2d(&x, &w, None, &spec).unwrap();
                let lhs = dot(&y0.to_vec(), &dy.to_vec());
                assert!((lhs - dot(&x.to_vec(), &dx.to_vec())).abs() <= 1e-4 * (1.0 + lhs.abs()));
                let dw = conv_transpose2d_backward_weight(&dy, &x, &ws, &spec).unwrap();
                // y is linear in w: sum_j dw_j w_j = <T_w(x), dy>
                assert!((lhs - dot(&w.to_vec(), &dw.to_vec())).abs() <= 1e-4 * (1.0 + lhs.abs()));
                // each weight element: the naive transposed conv with a one-hot weight
                let wlen = w.len();
                for j in [0, wlen / 2, wlen - 1] {
                    let mut e = vec![0.0f32; wlen];
                    e[j] = 1.0;
                    let (_, yj) = naive(&x, &Tensor::from_vec(e, &ws).unwrap(), None, &spec);
                    let want: f64 = yj.iter().zip(dy.to_vec()).map(|(a, b)| a * b as f64).sum();
                    let got = dw.to_vec()[j] as f64;
                    assert!((got - want).abs() <= 1e-4 * (1.0 + want.abs()), "dw[{j}] {got} vs {want}");
                }
                let db = conv_transpose2d_backward_bias(&dy).unwrap();
                assert_eq!(db.shape(), &[ws[1] * groups]);
            }
        }
    }

    #[test]
    fn bad_shapes_and_specs_are_errors() {
        let x = Tensor::zeros(&[1, 2, 3, 3]);
        let w = Tensor::zeros(&[2, 3, 2, 2]);
        let msg = |r: Result<Tensor>| r.unwrap_err().to_string();
        let s = ConvTranspose2dSpec::default();
        assert!(
            msg(conv_transpose2d(&x, &Tensor::zeros(&[3, 3, 2, 2]), None, &s)).contains("shape mismatch")
        );
        let e = msg(conv_transpose2d(&x, &w, None, &ConvTranspose2dSpec { output_padding: (1, 0), ..s }));
        assert!(e.contains("output_padding (1, 0) must be smaller"), "{e}");
        let e = msg(conv_transpose2d(&x, &w, None, &ConvTranspose2dSpec { groups: 4, ..s }));
        assert!(e.contains("groups 4 must divide"), "{e}");
        let e = msg(conv_transpose2d(&x, &w, None, &ConvTranspose2dSpec { padding: (3, 0), ..s }));
        assert!(e.contains("gives no output") || e.contains("empty output"), "{e}");
        assert!(msg(conv_transpose2d(&x, &w, Some(&Tensor::zeros(&[2])), &s)).contains("[3] and [2]"));
        assert!(msg(conv_transpose2d(&Tensor::zeros(&[2, 3, 3]), &w, None, &s)).contains("4-D"));
        let e = msg(conv_transpose2d(&x, &w, None, &ConvTranspose2dSpec { stride: (0, 1), ..s }));
        assert!(e.contains("must be positive"), "{e}");
        let dy = Tensor::zeros(&[1, 3, 3, 3]);
        assert!(msg(conv_transpose2d_backward_input(&dy, &w, x.shape(), &s)).contains("shape mismatch"));
    }

    #[test]
    fn bits_do_not_depend_on_thread_count() {
        let mut rng = Rng::new(5);
        let x = Tensor::randn(&[6, 4, 7, 6], 0.0, 1.0, &mut rng);
        let w = Tensor::randn(&[4, 3, 3, 3], 0.0, 1.0, &mut rng);
        let spec = ConvTranspose2dSpec {
            stride: (2, 2),
            padding: (1, 1),
            output_padding: (1, 0),
            groups: 2,
            ..Default::default()
        };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let y = conv_transpose2d(&x, &w, None, &spec).unwrap();
                let dx = conv_transpose2d_backward_input(&y, &w, x.shape(), &spec).unwrap();
                let dw = conv_transpose2d_backward_weight(&y, &x, w.shape(), &spec).unwrap();
                (y, dx, dw)
            })
        };
        let one = run(1);
        assert_eq!(run(2), one);
        assert_eq!(run(3), one);
    }
}
