//! 2-D upsampling of NCHW tensors (PyTorch `nn.Upsample` / `F.interpolate`
//! with `mode` `nearest` or `bilinear`), each backward beside its forward.
//!
//! Along each axis with input size `in` and output size `out`, the scale is
//! `1 / scale_factor` when a scale factor was given, else `in / out`; with
//! bilinear `align_corners` it is `(in - 1) / (out - 1)` (0 when `out = 1`).
//! Scales, source coordinates and weights are computed in f64:
//!
//! - **nearest** (torch's `nearest`, not `nearest-exact`): output `dst`
//!   reads `src = min(floor(dst * scale), in - 1)`, where the product is
//!   rounded to f32 before the floor, as PyTorch's kernel does (`floorf`), so
//!   that a product a rounding error below an integer (`3 * (2 / 3)`) takes
//!   that integer;
//! - **bilinear**: source `s = max((dst + 0.5) scale - 0.5, 0)`
//!   (`s = dst scale` with `align_corners`), `i0 = min(floor(s), in - 1)`,
//!   `i1 = min(i0 + 1, in - 1)`, `l1 = clamp(s - i0, 0, 1)`, `l0 = 1 - l1`;
//!   `y = lh0 (lw0 x[i0, j0] + lw1 x[i0, j1]) + lh1 (lw0 x[i1, j0] + lw1 x[i1, j1])`.
//!   An axis whose output size equals its input size is copied (`l1 = 0`).
//!
//! Backward: every output gradient is added to the input elements it read,
//! times their weights (for nearest, weight 1). Work is split over `(n, c)`
//! planes and each plane is accumulated in f64 in output order, so the bits
//! do not depend on the thread count.
//!
//! ```
//! use nw_tensor::Tensor;
//! use nw_tensor::upsample::{Upsample2dSpec, UpsampleMode, upsample2d};
//!
//! let x = Tensor::from_vec(vec![1., 2., 3., 4.], &[1, 1, 2, 2]).unwrap();
//! let spec = Upsample2dSpec::from_scale_factor(x.shape(), (2.0, 2.0), UpsampleMode::Nearest).unwrap();
//! let y = upsample2d(&x, &spec).unwrap();
//! assert_eq!(y.shape(), &[1, 1, 4, 4]);
//! assert_eq!(&y.to_vec()[..4], &[1., 1., 2., 2.]);
//! let b = Upsample2dSpec::from_size((1, 4), UpsampleMode::Bilinear { align_corners: false });
//! // columns: s = (dst + 0.5) / 2 - 0.5 -> 0 (clamped), 0.25, 0.75, 1.25 -> 1
//! assert_eq!(upsample2d(&x, &b).unwrap().to_vec(), vec![2.0, 2.25, 2.75, 3.0]);
//! ```

use rayon::prelude::*;

use crate::error::{Result, TensorError};
use crate::tensor::Tensor;

/// How output elements are read from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum UpsampleMode {
    /// The nearest input element below the source coordinate (torch `nearest`).
    Nearest,
    /// Linear interpolation along each axis between the two input elements
    /// around the source coordinate.
    Bilinear {
        /// Align the corner pixels' centres of input and output (torch's
        /// `align_corners`, default false).
        align_corners: bool,
    },
}

/// The output size and how to map it onto the input.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Upsample2dSpec {
    /// Output `(height, width)`.
    pub size: (usize, usize),
    /// The scale factor the size came from, if any: it then sets the scale
    /// (`1 / scale_factor`) instead of `in / out`, as in PyTorch.
    pub scale_factor: Option<(f64, f64)>,
    /// Nearest or bilinear.
    pub mode: UpsampleMode,
}

/// Refuses output sizes beyond this many elements per plane before allocating.
pub const MAX_PLANE: usize = 1 << 30;

impl Upsample2dSpec {
    /// A fixed output size.
    pub fn from_size(size: (usize, usize), mode: UpsampleMode) -> Self {
        Upsample2dSpec { size, scale_factor: None, mode }
    }

    /// The size `floor(in * scale_factor)` for an input of `input_shape`
    /// `[n, c, h, w]`. Errors when a factor is not finite and positive or the
    /// size would be empty or too large.
    pub fn from_scale_factor(
        input_shape: &[usize],
        scale_factor: (f64, f64),
        mode: UpsampleMode,
    ) -> Result<Self> {
        let op = "upsample2d";
        check_rank(op, input_shape)?;
        let size = |n: usize, f: f64| -> Result<usize> {
            let o = (n as f64 * f).floor();
            if !f.is_finite() || f <= 0.0 || !(1.0..=MAX_PLANE as f64).contains(&o) {
                return Err(TensorError::InvalidArgument {
                    op,
                    reason: format!(
                        "scale factor {scale_factor:?} gives no valid output size for input {input_shape:?}"
                    ),
                });
            }
            Ok(o as usize)
        };
        Ok(Upsample2dSpec {
            size: (size(input_shape[2], scale_factor.0)?, size(input_shape[3], scale_factor.1)?),
            scale_factor: Some(scale_factor),
            mode,
        })
    }
}

fn check_rank(op: &'static str, shape: &[usize]) -> Result<()> {
    if shape.len() != 4 {
        return Err(TensorError::InvalidShape {
            op,
            shape: shape.to_vec(),
            reason: "needs 4-D [n, c, h, w]".into(),
        });
    }
    Ok(())
}

/// One output position along an axis: the two input positions it reads and
/// their weights (nearest: `i0 == i1`, weights `1, 0`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Tap {
    i0: usize,
    i1: usize,
    l0: f64,
    l1: f64,
}

/// The taps of one axis, `input -> output`, with the factor that was given.
fn axis_taps(input: usize, output: usize, factor: Option<f64>, mode: UpsampleMode) -> Vec<Tap> {
    // torch compute_scales_value: 1 / factor when given and > 0, else in / out
    let scale = match factor {
        Some(f) if f > 0.0 => 1.0 / f,
        _ => input as f64 / output as f64,
    };
    (0..output)
        .map(|dst| match mode {
            UpsampleMode::Nearest => {
                // src = min(floor(dst * scale), in - 1), the product rounded to f32 first
                let src = (((dst as f64 * scale) as f32).floor() as usize).min(input - 1);
                Tap { i0: src, i1: src, l0: 1.0, l1: 0.0 }
            }
            UpsampleMode::Bilinear { .. } if input == output => Tap { i0: dst, i1: dst, l0: 1.0, l1: 0.0 },
            UpsampleMode::Bilinear { align_corners } => {
                let s = if align_corners {
                    // s = dst (in - 1) / (out - 1)
                    let scale = if output > 1 { (input - 1) as f64 / (output - 1) as f64 } else { 0.0 };
                    scale * dst as f64
                } else {
                    // s = max((dst + 0.5) scale - 0.5, 0)
                    (scale * (dst as f64 + 0.5) - 0.5).max(0.0)
                };
                let i0 = (s.floor() as usize).min(input - 1);
                let l1 = (s - i0 as f64).clamp(0.0, 1.0);
                let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
                Tap { i0, i1, l0: 1.0 - l1, l1 }
            }
        })
        .collect()
}

/// Checked geometry and both axes' taps.
struct Plan {
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    rows: Vec<Tap>,
    cols: Vec<Tap>,
}

impl Plan {
    fn new(op: &'static str, shape: &[usize], spec: &Upsample2dSpec) -> Result<Plan> {
        check_rank(op, shape)?;
        let (oh, ow) = spec.size;
        let (h, w) = (shape[2], shape[3]);
        if h == 0 || w == 0 || oh == 0 || ow == 0 {
            return Err(TensorError::InvalidArgument {
                op,
                reason: format!("input {shape:?} and output size {:?} must be non-empty", spec.size),
            });
        }
        if oh.checked_mul(ow).is_none_or(|p| p > MAX_PLANE) {
            return Err(TensorError::InvalidArgument {
                op,
                reason: format!("output size {:?} exceeds {MAX_PLANE} elements per plane", spec.size),
            });
        }
        crate::tensor::numel_within(op, &[shape[0], shape[1], oh, ow], crate::MAX_ELEMENTS)?;
        let (fh, fw) = match spec.scale_factor {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        Ok(Plan {
            planes: shape[0] * shape[1],
            h,
            w,
            oh,
            ow,
            rows: axis_taps(h, oh, fh, spec.mode),
            cols: axis_taps(w, ow, fw, spec.mode),
        })
    }
}

/// Upsamples `x [n, c, h, w]` to `[n, c, oh, ow]` (see the [module docs](self)).
///
/// Errors (naming `upsample2d`) on an input that is not 4-D, or an empty or
/// oversized input or output.
pub fn upsample2d(x: &Tensor, spec: &Upsample2dSpec) -> Result<Tensor> {
    let p = Plan::new("upsample2d", x.shape(), spec)?;
    let xc = x.contiguous();
    let xs = xc.as_slice().expect("contiguous");
    let (hw, ohw) = (p.h * p.w, p.oh * p.ow);
    let mut y = vec![0.0f32; p.planes * ohw];
    if ohw > 0 {
        y.par_chunks_mut(ohw).enumerate().for_each(|(pl, yp)| {
            let xp = &xs[pl * hw..(pl + 1) * hw];
            for (oy, r) in p.rows.iter().enumerate() {
                let (r0, r1) = (&xp[r.i0 * p.w..(r.i0 + 1) * p.w], &xp[r.i1 * p.w..(r.i1 + 1) * p.w]);
                for (ox, c) in p.cols.iter().enumerate() {
                    // lh0 (lw0 x00 + lw1 x01) + lh1 (lw0 x10 + lw1 x11), in f64
                    let top = c.l0 * r0[c.i0] as f64 + c.l1 * r0[c.i1] as f64;
                    let bot = c.l0 * r1[c.i0] as f64 + c.l1 * r1[c.i1] as f64;
                    yp[oy * p.ow + ox] = (r.l0 * top + r.l1 * bot) as f32;
                }
            }
        });
    }
    Tensor::from_vec(y, &[x.shape()[0], x.shape()[1], p.oh, p.ow])
}

/// Gradient of [`upsample2d`] for an input of `input_shape`: each output
/// gradient `g` adds `g lh lw` to each of the (up to four) input elements its
/// output read (nearest: `g` to the one element).
pub fn upsample2d_backward(
    grad_out: &Tensor,
    input_shape: &[usize],
    spec: &Upsample2dSpec,
) -> Result<Tensor> {
    let op = "upsample2d_backward";
    let p = Plan::new(op, input_shape, spec)?;
    let want = [input_shape[0], input_shape[1], p.oh, p.ow];
    if grad_out.shape() != want {
        return Err(TensorError::ShapeMismatch { op, lhs: want.to_vec(), rhs: grad_out.shape().to_vec() });
    }
    let gc = grad_out.contiguous();
    let gs = gc.as_slice().expect("contiguous");
    let (hw, ohw) = (p.h * p.w, p.oh * p.ow);
    let mut dx = vec![0.0f32; p.planes * hw];
    dx.par_chunks_mut(hw).enumerate().for_each(|(pl, dxp)| {
        let gp = &gs[pl * ohw..(pl + 1) * ohw];
        let mut acc = vec![0.0f64; hw];
        for (oy, r) in p.rows.iter().enumerate() {
            for (ox, c) in p.cols.iter().enumerate() {
                let g = gp[oy * p.ow + ox] as f64;
                let (gt, gb) = (g * r.l0, g * r.l1);
                acc[r.i0 * p.w + c.i0] += gt * c.l0;
                acc[r.i0 * p.w + c.i1] += gt * c.l1;
                acc[r.i1 * p.w + c.i0] += gb * c.l0;
                acc[r.i1 * p.w + c.i1] += gb * c.l1;
            }
        }
        dxp.iter_mut().zip(&acc).for_each(|(o, &a)| *o = a as f32);
    });
    Tensor::from_vec(dx, input_shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    const BILINEAR: UpsampleMode = UpsampleMode::Bilinear { align_corners: false };

    #[test]
    fn nearest_by_hand() {
        // 3 -> 5 rows with scale 3/5: floor(0, 0.6, 1.2, 1.8, 2.4) = 0 0 1 1 2
        let t = axis_taps(3, 5, None, UpsampleMode::Nearest);
        assert_eq!(t.iter().map(|t| t.i0).collect::<Vec<_>>(), vec![0, 0, 1, 1, 2]);
        // factor 2.5 on 3 -> 7: scale 0.4, not 3/7: floor(0 .4 .8 1.2 1.6 2 2.4) = 0 0 0 1 1 2 2
        let t = axis_taps(3, 7, Some(2.5), UpsampleMode::Nearest);
        assert_eq!(t.iter().map(|t| t.i0).collect::<Vec<_>>(), vec![0, 0, 0, 1, 1, 2, 2]);
        // downsampling 5 -> 2: scale 2.5: 0, 2
        let t = axis_taps(5, 2, None, UpsampleMode::Nearest);
        assert_eq!(t.iter().map(|t| t.i0).collect::<Vec<_>>(), vec![0, 2]);
        // products a rounding error below an integer take the integer:
        // 4 -> 6 (scale 2/3): floor(0, .67, 1.33, 2, 2.67, 3.33); in general floor(dst in / out)
        let t = axis_taps(4, 6, None, UpsampleMode::Nearest);
        assert_eq!(t.iter().map(|t| t.i0).collect::<Vec<_>>(), vec![0, 0, 1, 2, 2, 3]);
        for (i, o) in [(3, 9), (6, 9), (7, 21), (10, 30), (49, 98), (12, 18), (20, 50)] {
            let t = axis_taps(i, o, None, UpsampleMode::Nearest);
            for (dst, tap) in t.iter().enumerate() {
                assert_eq!(tap.i0, dst * i / o, "{i} -> {o} at {dst}");
            }
        }
        // with a factor: floor(dst / factor)
        let t = axis_taps(10, 30, Some(3.0), UpsampleMode::Nearest);
        assert!(t.iter().enumerate().all(|(dst, tap)| tap.i0 == dst / 3));
    }

    #[test]
    fn bilinear_by_hand() {
        // 2 -> 4, scale 0.5: s = 0 (clamped), 0.25, 0.75, 1.25 -> i0 = 1 (last), l1 = 0.25 on i1 = 1
        let t = axis_taps(2, 4, Some(2.0), BILINEAR);
        let want = [(0, 1, 1.0, 0.0), (0, 1, 0.75, 0.25), (0, 1, 0.25, 0.75), (1, 1, 0.75, 0.25)];
        for (t, w) in t.iter().zip(want) {
            assert_eq!((t.i0, t.i1, t.l0, t.l1), w);
        }
        // align_corners 3 -> 5: s = dst * 0.5
        let t = axis_taps(3, 5, None, UpsampleMode::Bilinear { align_corners: true });
        assert_eq!(t[3], Tap { i0: 1, i1: 2, l0: 0.5, l1: 0.5 });
        assert_eq!(t[4], Tap { i0: 2, i1: 2, l0: 1.0, l1: 0.0 });
        // same size: a copy
        assert!(axis_taps(4, 4, None, BILINEAR).iter().enumerate().all(|(i, t)| t.i0 == i && t.l1 == 0.0));
    }

    /// Backward is the adjoint of forward: <up(x), g> = <x, up^T(g)>.
    #[test]
    fn backward_is_the_adjoint() {
        let mut rng = Rng::new(3);
        for mode in [UpsampleMode::Nearest, BILINEAR, UpsampleMode::Bilinear { align_corners: true }] {
            for (shape, size, factor) in [
                ([2, 3, 3, 4], (5, 7), None),
                ([1, 2, 4, 3], (8, 6), Some((2.0, 2.0))),
                ([1, 1, 5, 6], (2, 3), None),
                ([2, 1, 3, 3], (7, 4), Some((2.5, 1.5))),
            ] {
                let spec = Upsample2dSpec { size, scale_factor: factor, mode };
                let x = Tensor::randn(&shape, 0.0, 1.0, &mut rng);
                let y = upsample2d(&x, &spec).unwrap();
                assert_eq!(y.shape(), &[shape[0], shape[1], size.0, size.1]);
                let g = Tensor::randn(y.shape(), 0.0, 1.0, &mut rng);
                let dx = upsample2d_backward(&g, &shape, &spec).unwrap();
                let dot = |a: &Tensor, b: &Tensor| -> f64 {
                    a.to_vec().iter().zip(b.to_vec()).map(|(&p, q)| p as f64 * q as f64).sum()
                };
                let (l, r) = (dot(&y, &g), dot(&x, &dx));
                assert!((l - r).abs() <= 1e-5 * (1.0 + l.abs()), "{mode:?} {shape:?}: {l} vs {r}");
            }
        }
    }

    #[test]
    fn errors_and_sizes() {
        let x = Tensor::zeros(&[1, 1, 3, 4]);
        let s = Upsample2dSpec::from_scale_factor(x.shape(), (1.5, 2.0), BILINEAR).unwrap();
        assert_eq!(s.size, (4, 8));
        assert!(Upsample2dSpec::from_scale_factor(x.shape(), (0.0, 2.0), BILINEAR).is_err());
        assert!(Upsample2dSpec::from_scale_factor(x.shape(), (f64::NAN, 2.0), BILINEAR).is_err());
        assert!(Upsample2dSpec::from_scale_factor(x.shape(), (1e300, 2.0), BILINEAR).is_err());
        assert!(Upsample2dSpec::from_scale_factor(&[3, 4], (2.0, 2.0), BILINEAR).is_err());
        let e = upsample2d(&Tensor::zeros(&[3, 4]), &s).unwrap_err().to_string();
        assert!(e.starts_with("upsample2d: invalid shape [3, 4]"), "{e}");
        let big = Upsample2dSpec::from_size((1 << 20, 1 << 20), BILINEAR);
        assert!(upsample2d(&x, &big).unwrap_err().to_string().contains("exceeds"));
        let e = upsample2d_backward(&Tensor::zeros(&[1, 1, 4, 7]), x.shape(), &s).unwrap_err().to_string();
        assert!(e.contains("shape mismatch"), "{e}");
    }

    #[test]
    fn bits_do_not_depend_on_thread_count() {
        let mut rng = Rng::new(4);
        let x = Tensor::randn(&[4, 5, 9, 7], 0.0, 1.0, &mut rng);
        let spec = Upsample2dSpec::from_size((17, 12), BILINEAR);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let y = upsample2d(&x, &spec).unwrap();
                let dx = upsample2d_backward(&y, x.shape(), &spec).unwrap();
                (y, dx)
            })
        };
        let one = run(1);
        assert_eq!(run(2), one);
        assert_eq!(run(3), one);
    }
}
