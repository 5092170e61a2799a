//! im2col + GEMM against a direct f64 convolution, over many awkward configs.

use super::kernels::Elem;
use super::passes::{input_grad_via, sum_f64};
use super::*;
use crate::rng::Rng;

/// Operand shapes and the spec of one test convolution.
#[derive(Clone, Copy, Debug)]
struct Cfg {
    x: [usize; 4],
    w: [usize; 4],
    spec: Conv2dSpec,
}

/// Signed input coordinate of output position `o`, kernel tap `k`.
fn coord(o: usize, k: usize, s: usize, p: usize, d: usize) -> isize {
    (o * s + k * d) as isize - p as isize
}

/// Output size along one axis by the PyTorch formula, or None if the kernel
/// does not fit.
fn out_len(size: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    let span = d * (k - 1) + 1;
    (size + 2 * p >= span).then(|| (size + 2 * p - span) / s + 1)
}

/// Visits every (output index, input index, weight index) triple of the
/// direct convolution, in f64-free index arithmetic.
fn for_each_tap(c: &Cfg, mut f: impl FnMut(usize, usize, usize)) -> [usize; 4] {
    let [n, c_in, h, w] = c.x;
    let [c_out, cig, kh, kw] = c.w;
    let Conv2dSpec { stride: (sh, sw), padding: (ph, pw), dilation: (dh, dw), groups, .. } = c.spec;
    let oh = out_len(h, kh, sh, ph, dh).unwrap();
    let ow = out_len(w, kw, sw, pw, dw).unwrap();
    let cog = c_out / groups;
    for i in 0..n {
        for o in 0..c_out {
            let grp = o / cog;
            for oy in 0..oh {
                for ox in 0..ow {
                    let yi = ((i * c_out + o) * oh + oy) * ow + ox;
                    for ci in 0..cig {
                        let cin = grp * cig + ci;
                        for ki in 0..kh {
                            let iy = coord(oy, ki, sh, ph, dh);
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for kj in 0..kw {
                                let ix = coord(ox, kj, sw, pw, dw);
                                if ix < 0 || ix >= w as isize {
                                    continue;
                                }
                                let xi = ((i * c_in + cin) * h + iy as usize) * w + ix as usize;
                                let wi = ((o * cig + ci) * kh + ki) * kw + kj;
                                f(yi, xi, wi);
                            }
                        }
                    }
                }
            }
        }
    }
    [n, c_out, oh, ow]
}

/// Direct convolution in f64: `y = conv(x, w) + b`.
fn naive_forward(c: &Cfg, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let shape = for_each_tap(c, |_, _, _| {});
    let mut y = vec![0.0; shape.iter().product()];
    for_each_tap(c, |yi, xi, wi| y[yi] += w[wi] * x[xi]);
    let plane = shape[2] * shape[3];
    for (j, v) in y.iter_mut().enumerate() {
        *v += b[(j / plane) % shape[1]];
    }
    y
}

/// Direct backward in f64: the transposes of the same tap list.
fn naive_backward(c: &Cfg, dy: &[f64], x: &[f64], w: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    let shape = for_each_tap(c, |yi, xi, wi| {
        dx[xi] += w[wi] * dy[yi];
        dw[wi] += x[xi] * dy[yi];
    });
    let plane = shape[2] * shape[3];
    let mut db = vec![0.0; shape[1]];
    for (j, v) in dy.iter().enumerate() {
        db[(j / plane) % shape[1]] += v;
    }
    (dx, dw, db)
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_vec().into_iter().map(f64::from).collect()
}

fn abs(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| x.abs()).collect()
}

/// Checks a result against the exact (f64) value with the standard error
/// bound of a floating-point sum of `terms` products,
/// `(terms + 1) * eps * sum|products|`, where the sum of absolute products
/// `scale` comes from the same naive kernel run on |inputs|:
/// - [`Accumulation::F32`]: `|got - want| <= (terms + 1) * eps_f32 * scale`;
/// - [`Accumulation::F64`]: the f64 sum's bound plus the final rounding to
///   f32, `|got - want| <= eps_f32 / 2 * |want| + (terms + 1) * eps_f64 * scale`.
fn check(what: &str, c: &Cfg, got: &Tensor, want: &[f64], scale: &[f64], terms: usize) {
    let got = got.to_vec();
    assert_eq!(got.len(), want.len(), "{what} {c:?}");
    for (j, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        let tol = match c.spec.accumulation {
            Accumulation::F32 => (terms as f64 + 1.0) * f32::EPSILON as f64 * s,
            Accumulation::F64 => {
                f32::EPSILON as f64 / 2.0 * w.abs() + (terms as f64 + 1.0) * f64::EPSILON * s
            }
        };
        assert!((g as f64 - w).abs() <= tol, "{what} [{j}] {g} vs {w} (tol {tol}) in {c:?}");
    }
}

/// Runs forward and all backward kernels on random data, with both
/// accumulations, and checks them against the naive reference.
fn check_config(c: &Cfg, rng: &mut Rng) {
    for accumulation in [Accumulation::F32, Accumulation::F64] {
        let spec = Conv2dSpec { accumulation, ..c.spec };
        check_one(&Cfg { spec, ..*c }, rng);
    }
}

fn check_one(c: &Cfg, rng: &mut Rng) {
    let x = Tensor::randn(&c.x, 0.0, 1.0, rng);
    let w = Tensor::randn(&c.w, 0.0, 1.0, rng);
    let b = Tensor::randn(&[c.w[0]], 0.0, 1.0, rng);
    let y = conv2d(&x, &w, Some(&b), &c.spec).unwrap();
    let (xs, ws, bs) = (f64s(&x), f64s(&w), f64s(&b));
    let want = naive_forward(c, &xs, &ws, &bs);
    let scale = naive_forward(c, &abs(&xs), &abs(&ws), &abs(&bs));
    let [c_out, cig, kh, kw] = c.w;
    check("forward", c, &y, &want, &scale, cig * kh * kw + 1);
    assert_eq!(conv2d_output_shape(&c.x, &c.w, &c.spec).unwrap(), y.shape());

    let dy = Tensor::randn(y.shape(), 0.0, 1.0, rng);
    let dys = f64s(&dy);
    let (dx, dw, db) = naive_backward(c, &dys, &xs, &ws);
    let (sx, sw, sb) = naive_backward(c, &abs(&dys), &abs(&xs), &abs(&ws));
    let g = conv2d_backward(&dy, &x, &w, true, &c.spec).unwrap();
    let cog = c_out / c.spec.groups;
    let spatial_terms = y.shape()[0] * y.shape()[2] * y.shape()[3];
    check("grad input", c, &g.input, &dx, &sx, cog * kh * kw);
    // Both forms of the input gradient, whichever one conv2d_backward chose.
    let geom = Geom::new("test", &c.x, &c.w, &c.spec).unwrap();
    let forms = match geom.adjoint() {
        Some(a) => vec![Some(a), None],
        None => vec![None],
    };
    for adjoint in forms.iter().map(Option::as_ref) {
        let (dyv, wv) = (dy.to_vec(), w.to_vec());
        let v = match c.spec.accumulation {
            Accumulation::F32 => input_grad_via::<f32>(&geom, &dyv, &wv, adjoint),
            Accumulation::F64 => {
                let (dy64, w64) = (f64::widen(&dyv), f64::widen(&wv));
                f64::narrow(input_grad_via::<f64>(&geom, &dy64, &w64, adjoint))
            }
        };
        let what = if adjoint.is_some() { "grad input (adjoint conv)" } else { "grad input (col2im)" };
        check(what, c, &Tensor::from_vec(v, &c.x).unwrap(), &dx, &sx, cog * kh * kw);
    }
    check("grad weight", c, &g.weight, &dw, &sw, spatial_terms);
    check("grad bias", c, g.bias.as_ref().unwrap(), &db, &sb, spatial_terms);
    // The single-gradient entry points give the same bits as the fused pass.
    assert_eq!(conv2d_backward_input(&dy, &w, &c.x, &c.spec).unwrap(), g.input, "{c:?}");
    assert_eq!(conv2d_backward_weight(&dy, &x, &c.w, &c.spec).unwrap(), g.weight, "{c:?}");
    assert_eq!(&conv_backward_bias(&dy).unwrap(), g.bias.as_ref().unwrap(), "{c:?}");
}

#[test]
fn naive_reference_is_self_adjoint() {
    // <conv(x, w), g> = <x, dx(g, w)> = <w, dw(g, x)> for the bias-free
    // convolution, which is linear in x and in w separately.
    let mut rng = Rng::new(7);
    let c = Cfg {
        x: [2, 4, 7, 6],
        w: [6, 2, 3, 2],
        spec: Conv2dSpec {
            stride: (2, 1),
            padding: (1, 2),
            dilation: (1, 2),
            groups: 2,
            ..Default::default()
        },
    };
    let x: Vec<f64> = (0..c.x.iter().product()).map(|_| rng.normal()).collect();
    let w: Vec<f64> = (0..c.w.iter().product()).map(|_| rng.normal()).collect();
    let y = naive_forward(&c, &x, &w, &[0.0; 6]);
    let g: Vec<f64> = (0..y.len()).map(|_| rng.normal()).collect();
    let (dx, dw, _) = naive_backward(&c, &g, &x, &w);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
    let (lhs, rx, rw) = (dot(&y, &g), dot(&x, &dx), dot(&w, &dw));
    assert!((lhs - rx).abs() <= 1e-12 * lhs.abs().max(1.0), "{lhs} vs {rx}");
    assert!((lhs - rw).abs() <= 1e-12 * lhs.abs().max(1.0), "{lhs} vs {rw}");
}

#[test]
fn im2col_matches_naive_over_many_configs() {
    let mut rng = Rng::new(42);
    let (mut run, mut rejected) = (0, 0);
    for &(n, h, w) in &[(1, 5, 8), (3, 7, 9)] {
        for &groups in &[1, 2, 4] {
            for &(kh, kw) in &[(1, 1), (3, 3), (2, 3), (3, 1)] {
                for &stride in &[(1, 1), (2, 2), (3, 3), (1, 2), (3, 1)] {
                    for &padding in &[(0, 0), (1, 1), (2, 2), (0, 2)] {
                        for &dilation in &[(1, 1), (2, 2), (1, 2)] {
                            let c = Cfg {
                                x: [n, 4, h, w],
                                w: [8, 4 / groups, kh, kw],
                                spec: Conv2dSpec { stride, padding, dilation, groups, ..Default::default() },
                            };
                            let fits = out_len(h, kh, stride.0, padding.0, dilation.0).is_some()
                                && out_len(w, kw, stride.1, padding.1, dilation.1).is_some();
                            if fits {
                                check_config(&c, &mut rng);
                                run += 1;
                            } else {
                                let x = Tensor::zeros(&c.x);
                                let e = conv2d(&x, &Tensor::zeros(&c.w), None, &c.spec).unwrap_err();
                                assert!(e.to_string().starts_with("conv2d: kernel of weight"), "{e}");
                                rejected += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    // 2 sizes x 3 groups x 4 kernels x 5 strides x 4 paddings x 3 dilations.
    assert_eq!(run + rejected, 1440);
    assert!(run > 1200, "{run} configs ran");
}

#[test]
fn depthwise_and_pointwise() {
    let mut rng = Rng::new(3);
    for &stride in &[(1, 1), (2, 2), (2, 1)] {
        for &padding in &[(0, 0), (1, 1), (2, 0)] {
            // depthwise: groups == c_in == c_out
            let spec = Conv2dSpec { stride, padding, groups: 5, ..Default::default() };
            check_config(&Cfg { x: [3, 5, 6, 7], w: [5, 1, 3, 3], spec }, &mut rng);
            // 1x1 (the pointwise path when stride 1 and no padding)
            let spec = Conv2dSpec { stride, padding, ..Default::default() };
            check_config(&Cfg { x: [2, 6, 5, 4], w: [3, 6, 1, 1], spec }, &mut rng);
            let spec = Conv2dSpec { stride, padding, groups: 3, ..Default::default() };
            check_config(&Cfg { x: [2, 6, 5, 4], w: [9, 2, 1, 1], spec }, &mut rng);
        }
    }
    // kernel as large as the padded input: a 1x1 output
    let spec = Conv2dSpec { padding: (1, 0), ..Default::default() };
    check_config(&Cfg { x: [2, 3, 3, 4], w: [2, 3, 5, 4], spec }, &mut rng);
    // enough channels per group for conv2d_backward to pick the adjoint
    // convolution for the input gradient (see passes::prefer_adjoint)
    for &(padding, dilation, groups) in &[((1, 1), (1, 1), 1), ((0, 2), (1, 2), 2), ((2, 1), (2, 1), 1)] {
        let spec = Conv2dSpec { padding, dilation, groups, ..Default::default() };
        check_config(&Cfg { x: [2, 32, 6, 5], w: [24, 32 / groups, 3, 2], spec }, &mut rng);
    }
    // batch larger than WGRAD_SLOTS with uneven ranges
    let spec = Conv2dSpec { padding: (1, 1), ..Default::default() };
    check_config(&Cfg { x: [19, 2, 4, 5], w: [3, 2, 3, 3], spec }, &mut rng);
}

#[test]
fn strided_views_and_no_bias() {
    let mut rng = Rng::new(5);
    let spec = Conv2dSpec { padding: (1, 1), ..Default::default() };
    let x = Tensor::randn(&[2, 3, 6, 5], 0.0, 1.0, &mut rng);
    let w = Tensor::randn(&[4, 3, 3, 3], 0.0, 1.0, &mut rng);
    // the same tensors as non-contiguous views
    let xv = x.permute(&[0, 1, 3, 2]).unwrap().contiguous().permute(&[0, 1, 3, 2]).unwrap();
    let wv = w.permute(&[1, 0, 2, 3]).unwrap().contiguous().permute(&[1, 0, 2, 3]).unwrap();
    assert!(!xv.is_contiguous() && !wv.is_contiguous());
    let y = conv2d(&x, &w, None, &spec).unwrap();
    assert_eq!(conv2d(&xv, &wv, None, &spec).unwrap(), y);
    let dy = Tensor::randn(y.shape(), 0.0, 1.0, &mut rng);
    let dyv = dy.permute(&[3, 1, 2, 0]).unwrap().contiguous().permute(&[3, 1, 2, 0]).unwrap();
    let g = conv2d_backward(&dy, &x, &w, false, &spec).unwrap();
    assert!(g.bias.is_none());
    assert_eq!(conv2d_backward(&dyv, &xv, &wv, false, &spec).unwrap(), g);
}

#[test]
fn bits_do_not_depend_on_thread_count() {
    let mut rng = Rng::new(11);
    let spec = Conv2dSpec { stride: (1, 2), padding: (1, 1), groups: 2, ..Default::default() };
    let x = Tensor::randn(&[37, 6, 12, 11], 0.0, 1.0, &mut rng);
    let w = Tensor::randn(&[8, 3, 3, 3], 0.0, 1.0, &mut rng);
    let b = Tensor::randn(&[8], 0.0, 1.0, &mut rng);
    let dy = Tensor::randn(&conv2d_output_shape(x.shape(), w.shape(), &spec).unwrap(), 0.0, 1.0, &mut rng);
    let spec64 = Conv2dSpec { accumulation: Accumulation::F64, ..spec };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            [spec, spec64].map(|spec| {
                let y = conv2d(&x, &w, Some(&b), &spec).unwrap();
                let g = conv2d_backward(&dy, &x, &w, true, &spec).unwrap();
                let gw = conv2d_backward_weight(&dy, &x, w.shape(), &spec).unwrap();
                (y, g, gw)
            })
        })
    };
    let one = run(1);
    assert_eq!(run(2), one);
    assert_eq!(run(3), one);
}

#[test]
fn conv1d_matches_2d_with_height_one() {
    let mut rng = Rng::new(9);
    let spec = Conv1dSpec { stride: 2, padding: 2, dilation: 2, groups: 2, ..Default::default() };
    let x = Tensor::randn(&[3, 4, 11], 0.0, 1.0, &mut rng);
    let w = Tensor::randn(&[6, 2, 3], 0.0, 1.0, &mut rng);
    let b = Tensor::randn(&[6], 0.0, 1.0, &mut rng);
    let c = Cfg { x: [3, 4, 1, 11], w: [6, 2, 1, 3], spec: spec.to_2d() };
    let y = conv1d(&x, &w, Some(&b), &spec).unwrap();
    // ol = (11 + 4 - 2*2 - 1)/2 + 1 = 6
    assert_eq!(y.shape(), &[3, 6, 6]);
    let (xs, ws, bs) = (f64s(&x), f64s(&w), f64s(&b));
    let want = naive_forward(&c, &xs, &ws, &bs);
    let scale = naive_forward(&c, &abs(&xs), &abs(&ws), &abs(&bs));
    check("conv1d", &c, &y, &want, &scale, 2 * 3 + 1);
    let dy = Tensor::randn(y.shape(), 0.0, 1.0, &mut rng);
    let g = conv1d_backward(&dy, &x, &w, true, &spec).unwrap();
    let g2 = conv2d_backward(
        &dy.reshape(&[3, 6, 1, 6]).unwrap(),
        &x.reshape(&c.x).unwrap(),
        &w.reshape(&c.w).unwrap(),
        true,
        &c.spec,
    )
    .unwrap();
    assert_eq!(g.input.shape(), x.shape());
    assert_eq!(g.weight.shape(), w.shape());
    assert_eq!(g.input.to_vec(), g2.input.to_vec());
    assert_eq!(g.weight.to_vec(), g2.weight.to_vec());
    assert_eq!(g.bias, g2.bias);
}

#[test]
fn bad_shapes_and_specs_are_errors() {
    let x = Tensor::zeros(&[2, 4, 5, 5]);
    let w = Tensor::zeros(&[6, 2, 3, 3]);
    let ok = Conv2dSpec { groups: 2, ..Default::default() };
    let err = |x: &Tensor, w: &Tensor, b: Option<&Tensor>, s: Conv2dSpec| {
        conv2d(x, w, b, &s).unwrap_err().to_string()
    };
    assert_eq!(
        err(&x, &w, None, Conv2dSpec::default()),
        "conv2d: shape mismatch between [2, 4, 5, 5] and [6, 2, 3, 3]"
    );
    assert!(err(&x, &w, None, Conv2dSpec { stride: (0, 1), ..ok }).contains("must be positive"));
    assert!(err(&x, &w, None, Conv2dSpec { dilation: (1, 0), ..ok }).contains("must be positive"));
    assert!(err(&x, &w, None, Conv2dSpec { groups: 0, ..ok }).contains("must be positive"));
    let e = err(&x, &w, None, Conv2dSpec { groups: 3, ..ok });
    assert!(e.starts_with("conv2d: groups 3 must divide") && e.contains("[2, 4, 5, 5]"), "{e}");
    let e = err(&x, &Tensor::zeros(&[5, 2, 3, 3]), None, ok);
    assert!(e.starts_with("conv2d: groups 2 must divide") && e.contains("[5, 2, 3, 3]"), "{e}");
    let e = err(&x, &Tensor::zeros(&[6, 2, 7, 3]), None, ok);
    assert!(e.starts_with("conv2d: kernel of weight [6, 2, 7, 3] spans 7x3") && e.contains("5x5"), "{e}");
    let e = err(&x, &w, None, Conv2dSpec { dilation: (3, 1), ..ok });
    assert!(e.contains("spans 7x3"), "{e}");
    assert!(conv2d(&x, &w, None, &Conv2dSpec { dilation: (3, 1), padding: (1, 0), ..ok }).is_ok());
    assert_eq!(err(&x, &w, Some(&Tensor::zeros(&[5])), ok), "conv2d: shape mismatch between [6] and [5]");
    assert!(err(&Tensor::zeros(&[4, 5, 5]), &w, None, ok).starts_with("conv2d: invalid shape [4, 5, 5]"));
    assert!(err(&x, &Tensor::zeros(&[6, 2, 3]), None, ok).starts_with("conv2d: invalid shape [6, 2, 3]"));
    assert!(err(&x, &Tensor::zeros(&[6, 2, 0, 3]), None, ok).contains("kernel height and width"));
    let e = err(&x, &w, None, Conv2dSpec { padding: (usize::MAX / 2, 0), ..ok });
    assert!(e.starts_with("conv2d: padding") && e.contains("overflows"), "{e}");
    assert!(err(&x, &w, None, Conv2dSpec { dilation: (usize::MAX, 1), ..ok }).contains("overflows"));
    let dy = Tensor::zeros(&[2, 6, 3, 4]);
    assert_eq!(
        conv2d_backward(&dy, &x, &w, true, &ok).unwrap_err().to_string(),
        "conv2d_backward: shape mismatch between [2, 6, 3, 3] and [2, 6, 3, 4]"
    );
    assert!(conv2d_backward_input(&dy, &w, &[2, 4, 5, 5], &ok).is_err());
    assert!(conv2d_backward_weight(&dy, &x, &[6, 2, 3, 3], &ok).is_err());
    assert!(conv_backward_bias(&Tensor::zeros(&[3])).is_err());
    let e = conv1d(&Tensor::zeros(&[2, 3, 4]), &Tensor::zeros(&[2, 2, 3]), None, &Conv1dSpec::default())
        .unwrap_err()
        .to_string();
    assert_eq!(e, "conv1d: shape mismatch between [2, 3, 4] and [2, 2, 3]");
}

#[test]
fn empty_batch() {
    let spec = Conv2dSpec::default();
    let x = Tensor::zeros(&[0, 2, 4, 4]);
    let w = Tensor::ones(&[3, 2, 3, 3]);
    let y = conv2d(&x, &w, Some(&Tensor::ones(&[3])), &spec).unwrap();
    assert_eq!(y.shape(), &[0, 3, 2, 2]);
    let g = conv2d_backward(&y, &x, &w, true, &spec).unwrap();
    assert_eq!(g.input.shape(), &[0, 2, 4, 4]);
    assert_eq!(g.weight.to_vec(), vec![0.0; 54]);
    assert_eq!(g.bias.unwrap().to_vec(), vec![0.0; 3]);
}

#[test]
fn lane_sum_is_exact_on_integers() {
    // Small integers sum exactly in f64 in any order, so every length
    // (full chunks of 8 and tails) must give the closed form n (n - 1) / 2.
    for n in 0..40usize {
        let v: Vec<f32> = (0..n).map(|i| i as f32).collect();
        assert_eq!(sum_f64(&v), (n * n.saturating_sub(1) / 2) as f64, "n = {n}");
    }
}
