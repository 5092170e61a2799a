//! Pooling kernels against direct f64 references written from the formulas.

use super::*;
use crate::rng::Rng;

/// In-range input positions `(iy, ix)` of window `(oy, ox)`, row-major, and the
/// number of window taps inside the padded input (in range or padding).
fn taps(
    (h, w): (usize, usize),
    (oy, ox): (usize, usize),
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
) -> (Vec<(usize, usize)>, usize) {
    let mut v = Vec::new();
    let mut area = 0;
    for ky in 0..k.0 {
        for kx in 0..k.1 {
            let iy = (oy * s.0 + ky) as isize - p.0 as isize;
            let ix = (ox * s.1 + kx) as isize - p.1 as isize;
            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                v.push((iy as usize, ix as usize));
            }
            if iy < (h + p.0) as isize && ix < (w + p.1) as isize {
                area += 1;
            }
        }
    }
    (v, area)
}

/// The number of windows along an axis, counted one start `i s` (in padded
/// coordinates) at a time: floor mode takes every window that fits in the
/// padded input (`i s + k <= size + 2p`); ceil mode every window that would
/// fit with `s - 1` more padding (`i s + k < size + 2p + s`) and starts inside
/// the input or its left padding (`i s < size + p`).
fn out_size(size: usize, k: usize, s: usize, p: usize, ceil: bool) -> usize {
    (0..)
        .take_while(|&i| {
            let start = i * s;
            if ceil { start + k < size + 2 * p + s && start < size + p } else { start + k <= size + 2 * p }
        })
        .count()
}

/// Small integers so that windows hold ties, negative so that padding as 0
/// (instead of -inf) would be visible.
fn tie_input(shape: &[usize], rng: &mut Rng) -> Tensor {
    Tensor::from_fn(shape, || -(rng.uniform(1.0, 5.0).floor() as f32))
}

#[test]
fn ceil_mode_output_sizes() {
    // torch: 7 -> 4 with k 2, s 2; 5 with k 2, s 2, p 1 -> ceil(5/2) + 1 = 4,
    // less the window that would start at 6 = size + pad: 3
    let x = Tensor::zeros(&[1, 1, 7, 5]);
    assert_eq!(max_pool2d(&x, (2, 2), (2, 2), (0, 0), true).unwrap().0.shape(), &[1, 1, 4, 3]);
    assert_eq!(max_pool2d(&x, (2, 2), (2, 2), (0, 0), false).unwrap().0.shape(), &[1, 1, 3, 2]);
    assert_eq!(avg_pool2d(&x, (2, 2), (2, 2), (1, 1), true, true).unwrap().shape(), &[1, 1, 4, 3]);
    assert_eq!(out_size(5, 2, 2, 1, true), 3);
    // width 6, k 3, s 2, p 1: ceil(5 / 2) + 1 = 4 windows; the last covers
    // padded columns 6..9, of which column 6 (input column 5) and column 7
    // (right padding) lie in the padded input: divisor 2, not 3
    let ones = Tensor::ones(&[1, 1, 1, 6]);
    let y = avg_pool2d(&ones, (1, 3), (1, 2), (0, 1), true, true).unwrap().to_vec();
    assert_eq!(y, vec![2.0 / 3.0, 1.0, 1.0, 0.5]);
    let y = avg_pool2d(&ones, (1, 3), (1, 2), (0, 1), false, true).unwrap().to_vec();
    assert_eq!(y, vec![1.0; 4]);
}

#[test]
fn max_pool_matches_reference() {
    let mut rng = Rng::new(1);
    let (n, c, h, w) = (2, 3, 7, 6);
    for kh in 1..=3 {
        for kw in 1..=3 {
            for s in [(1, 1), (2, 2), (3, 1), (2, 3)] {
                for (p, ceil) in
                    [(0, 0), (kh / 2, kw / 2), (0, kw / 2)].into_iter().flat_map(|p| [(p, false), (p, true)])
                {
                    let x = tie_input(&[n, c, h, w], &mut rng);
                    let (y, idx) = max_pool2d(&x, (kh, kw), s, p, ceil).unwrap();
                    let (oh, ow) = (out_size(h, kh, s.0, p.0, ceil), out_size(w, kw, s.1, p.1, ceil));
                    assert_eq!(y.shape(), &[n, c, oh, ow]);
                    let xs = x.to_vec();
                    let ys = y.to_vec();
                    let mut dx_want = vec![0.0f32; xs.len()];
                    let dy = Tensor::randn(y.shape(), 0.0, 1.0, &mut rng);
                    let dys = dy.to_vec();
                    for pl in 0..n * c {
                        for oy in 0..oh {
                            for ox in 0..ow {
                                let (t, _) = taps((h, w), (oy, ox), (kh, kw), s, p);
                                let vals: Vec<f32> =
                                    t.iter().map(|&(iy, ix)| xs[pl * h * w + iy * w + ix]).collect();
                                let m = vals.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                                let first = t[vals.iter().position(|&v| v == m).unwrap()];
                                let j = (pl * oh + oy) * ow + ox;
                                assert_eq!(ys[j], m);
                                assert_eq!(idx[j], first.0 * w + first.1, "first maximum wins");
                                dx_want[pl * h * w + first.0 * w + first.1] += dys[j];
                            }
                        }
                    }
                    let dx = max_pool2d_backward(&dy, &idx, x.shape()).unwrap();
                    assert_eq!(dx.to_vec(), dx_want);
                }
            }
        }
    }
}

#[test]
fn max_pool_nan_and_padding() {
    // Padding is -inf: an all-negative input stays negative at the border.
    let x = Tensor::full(&[1, 1, 2, 2], -3.0);
    let (y, idx) = max_pool2d(&x, (3, 3), (1, 1), (1, 1), false).unwrap();
    assert_eq!(y.to_vec(), vec![-3.0; 4]);
    assert_eq!(idx, vec![0, 0, 0, 0]);
    // A NaN wins over numbers (PyTorch propagates NaN through max pooling).
    let x = Tensor::from_vec(vec![1.0, f32::NAN, 5.0, 2.0], &[1, 1, 2, 2]).unwrap();
    let (y, idx) = max_pool2d(&x, (2, 2), (2, 2), (0, 0), false).unwrap();
    assert!(y.to_vec()[0].is_nan());
    assert_eq!(idx, vec![1]);
}

/// The 2x2 stride-2 fast path against the scan it replaces (row by row,
/// take when larger or NaN), bit for bit, on values chosen to tie: zeros of
/// both signs, -inf, NaNs (one or several per window), repeated integers.
#[test]
fn max_pool_2x2_fast_path_matches_the_scan_bit_for_bit() {
    let mut rng = Rng::new(7);
    let palette = [0.0, -0.0, 1.0, -1.0, 2.0, f32::NEG_INFINITY, f32::INFINITY, f32::NAN, -f32::NAN];
    // odd width: the last column is in no window; 41 columns give 20 outputs
    // a row, enough for the vector body of the fast path (16 lanes) and a tail
    for (round, (n, c, h, w)) in (0..20).flat_map(|r| [(r, (3, 4, 10, 9)), (r, (2, 3, 6, 41))]) {
        let x = Tensor::from_fn(&[n, c, h, w], || {
            let r = rng.uniform(0.0, 1.0);
            if round % 2 == 0 {
                palette[(r * palette.len() as f64) as usize % palette.len()]
            } else {
                ((r * 4.0).floor() - 2.0) as f32
            }
        });
        let (y, idx) = max_pool2d(&x, (2, 2), (2, 2), (0, 0), false).unwrap();
        let (xs, ys) = (x.to_vec(), y.to_vec());
        let (oh, ow) = (h / 2, w / 2);
        for pl in 0..n * c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (mut best, mut at) = (f32::NEG_INFINITY, 2 * oy * w + 2 * ox);
                    for iy in 2 * oy..2 * oy + 2 {
                        for ix in 2 * ox..2 * ox + 2 {
                            let v = xs[pl * h * w + iy * w + ix];
                            if v > best || v.is_nan() {
                                (best, at) = (v, iy * w + ix);
                            }
                        }
                    }
                    let j = (pl * oh + oy) * ow + ox;
                    assert_eq!(ys[j].to_bits(), best.to_bits(), "value at {j}, round {round}");
                    assert_eq!(idx[j], at, "index at {j}, round {round}");
                }
            }
        }
    }
}

/// Each build of the 2x2 fast path (portable, AVX2, AVX-512: whichever this
/// CPU runs) gives the same bits and indices as the portable one, with NaNs
/// mixed in (rows with a NaN are redone by the scan in every build).
#[test]
fn max_pool_2x2_builds_agree() {
    let mut rng = Rng::new(11);
    let palette = [0.0, -0.0, 1.0, -1.0, 3.0, f32::NEG_INFINITY, f32::NAN];
    for (w, oh) in [(2, 1), (15, 3), (32, 2), (64, 5), (70, 4)] {
        let ow = w / 2;
        let xp: Vec<f32> = (0..2 * oh * w)
            .map(|i| {
                let r = rng.uniform(0.0, 1.0);
                if i % 7 == 0 { palette[(r * 7.0) as usize % 7] } else { (r * 8.0).floor() as f32 - 4.0 }
            })
            .collect();
        let run = |f: &dyn Fn(&mut [f32], &mut [usize])| {
            let (mut y, mut idx) = (vec![0.0f32; oh * ow], vec![0usize; oh * ow]);
            f(&mut y, &mut idx);
            (y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), idx)
        };
        let want = run(&|y, i| super::pool2x2_plane_generic(&xp, w, ow, y, i));
        assert_eq!(run(&|y, i| super::pool2x2_plane(&xp, w, ow, y, i)), want, "dispatched, w {w}");
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: AVX2 and FMA were just detected.
                let got = run(&|y, i| unsafe { super::pool2x2_plane_avx2(&xp, w, ow, y, i) });
                assert_eq!(got, want, "avx2, w {w}");
            }
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
            {
                // SAFETY: AVX-512 F, BW and VL were just detected.
                let got = run(&|y, i| unsafe { super::pool2x2_plane_avx512(&xp, w, ow, y, i) });
                assert_eq!(got, want, "avx512, w {w}");
            }
        }
    }
}

#[test]
fn avg_pool_matches_reference() {
    let mut rng = Rng::new(2);
    let (n, c, h, w) = (2, 2, 7, 8);
    for kh in 1..=3 {
        for kw in 1..=4 {
            for s in [(1, 1), (2, 2), (3, 2)] {
                for p in [(0, 0), (kh / 2, kw / 2)] {
                    for (cip, ceil) in [(true, false), (false, false), (true, true), (false, true)] {
                        let x = Tensor::randn(&[n, c, h, w], 0.0, 1.0, &mut rng);
                        let y = avg_pool2d(&x, (kh, kw), s, p, cip, ceil).unwrap();
                        let (oh, ow) = (out_size(h, kh, s.0, p.0, ceil), out_size(w, kw, s.1, p.1, ceil));
                        assert_eq!(y.shape(), &[n, c, oh, ow]);
                        let dy = Tensor::randn(y.shape(), 0.0, 1.0, &mut rng);
                        let (xs, ys, dys) = (x.to_vec(), y.to_vec(), dy.to_vec());
                        let mut dx_want = vec![0.0f64; xs.len()];
                        for pl in 0..n * c {
                            for oy in 0..oh {
                                for ox in 0..ow {
                                    let (t, area) = taps((h, w), (oy, ox), (kh, kw), s, p);
                                    // the padded-window area: kh * kw unless a ceil-mode
                                    // window runs past the padding
                                    let div = if cip { area } else { t.len() } as f64;
                                    let sum: f64 =
                                        t.iter().map(|&(iy, ix)| xs[pl * h * w + iy * w + ix] as f64).sum();
                                    let j = (pl * oh + oy) * ow + ox;
                                    let want = sum / div;
                                    assert!(
                                        (ys[j] as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()),
                                        "{} vs {want}",
                                        ys[j]
                                    );
                                    for &(iy, ix) in &t {
                                        dx_want[pl * h * w + iy * w + ix] += dys[j] as f64 / div;
                                    }
                                }
                            }
                        }
                        let dx = avg_pool2d_backward(&dy, x.shape(), (kh, kw), s, p, cip, ceil).unwrap();
                        for (g, w) in dx.to_vec().iter().zip(&dx_want) {
                            assert!((*g as f64 - w).abs() <= 1e-6 * (1.0 + w.abs()), "{g} vs {w}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn adaptive_avg_pool_matches_reference() {
    let mut rng = Rng::new(3);
    for &((h, w), (oh, ow)) in &[
        ((6, 6), (1, 1)),
        ((7, 5), (3, 2)),
        ((5, 7), (5, 7)),
        ((4, 4), (6, 6)),
        ((10, 9), (4, 4)),
        ((3, 8), (2, 3)),
    ] {
        let x = Tensor::randn(&[2, 3, h, w], 0.0, 1.0, &mut rng);
        let y = adaptive_avg_pool2d(&x, (oh, ow)).unwrap();
        assert_eq!(y.shape(), &[2, 3, oh, ow]);
        let dy = Tensor::randn(y.shape(), 0.0, 1.0, &mut rng);
        let (xs, ys, dys) = (x.to_vec(), y.to_vec(), dy.to_vec());
        let mut dx_want = vec![0.0f64; xs.len()];
        // bins from PyTorch's formula, evaluated in floating point
        let bin = |i: usize, size: usize, o: usize| {
            (
                (i as f64 * size as f64 / o as f64).floor() as usize,
                ((i + 1) as f64 * size as f64 / o as f64).ceil() as usize,
            )
        };
        for pl in 0..6 {
            for i in 0..oh {
                for j in 0..ow {
                    let ((y0, y1), (x0, x1)) = (bin(i, h, oh), bin(j, w, ow));
                    let cnt = ((y1 - y0) * (x1 - x0)) as f64;
                    let mut s = 0.0f64;
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            s += xs[pl * h * w + iy * w + ix] as f64;
                        }
                    }
                    let k = (pl * oh + i) * ow + j;
                    assert!((ys[k] as f64 - s / cnt).abs() <= 1e-6 * (1.0 + (s / cnt).abs()));
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            dx_want[pl * h * w + iy * w + ix] += dys[k] as f64 / cnt;
                        }
                    }
                }
            }
        }
        let dx = adaptive_avg_pool2d_backward(&dy, x.shape()).unwrap();
        for (g, w) in dx.to_vec().iter().zip(&dx_want) {
            assert!((*g as f64 - w).abs() <= 1e-6 * (1.0 + w.abs()), "{g} vs {w}");
        }
    }
}

#[test]
fn one_d_forms_match_height_one() {
    let mut rng = Rng::new(4);
    let x = Tensor::randn(&[2, 3, 11], 0.0, 1.0, &mut rng);
    let x4 = x.reshape(&[2, 3, 1, 11]).unwrap();
    let (y, idx) = max_pool1d(&x, 3, 2, 1).unwrap();
    let (y4, idx4) = max_pool2d(&x4, (1, 3), (1, 2), (0, 1), false).unwrap();
    assert_eq!(y.shape(), &[2, 3, 6]);
    assert_eq!((y.to_vec(), &idx), (y4.to_vec(), &idx4));
    let dy = Tensor::randn(y.shape(), 0.0, 1.0, &mut rng);
    let dy4 = dy.reshape(y4.shape()).unwrap();
    assert_eq!(
        max_pool1d_backward(&dy, &idx, x.shape()).unwrap().to_vec(),
        max_pool2d_backward(&dy4, &idx4, x4.shape()).unwrap().to_vec()
    );
    let a = avg_pool1d(&x, 3, 2, 1, false).unwrap();
    assert_eq!(a.to_vec(), avg_pool2d(&x4, (1, 3), (1, 2), (0, 1), false, false).unwrap().to_vec());
    assert_eq!(
        avg_pool1d_backward(&dy, x.shape(), 3, 2, 1, false).unwrap().to_vec(),
        avg_pool2d_backward(&dy4, x4.shape(), (1, 3), (1, 2), (0, 1), false, false).unwrap().to_vec()
    );
    let ad = adaptive_avg_pool1d(&x, 4).unwrap();
    assert_eq!(ad.shape(), &[2, 3, 4]);
    assert_eq!(ad.to_vec(), adaptive_avg_pool2d(&x4, (1, 4)).unwrap().to_vec());
    let g = Tensor::randn(&[2, 3, 4], 0.0, 1.0, &mut rng);
    assert_eq!(
        adaptive_avg_pool1d_backward(&g, x.shape()).unwrap().to_vec(),
        adaptive_avg_pool2d_backward(&g.reshape(&[2, 3, 1, 4]).unwrap(), x4.shape()).unwrap().to_vec()
    );
}

#[test]
fn bad_arguments_are_errors() {
    let x = Tensor::zeros(&[1, 2, 5, 5]);
    let msg = |r: Result<Tensor>| r.unwrap_err().to_string();
    assert!(msg(max_pool2d(&x, (0, 2), (1, 1), (0, 0), false).map(|r| r.0)).contains("must be positive"));
    assert!(msg(max_pool2d(&x, (2, 2), (1, 0), (0, 0), false).map(|r| r.0)).contains("must be positive"));
    let e = msg(max_pool2d(&x, (3, 3), (1, 1), (2, 1), false).map(|r| r.0));
    assert_eq!(e, "max_pool2d: padding 2 must be at most half the kernel 3 (input [1, 2, 5, 5])");
    let e = msg(avg_pool2d(&x, (6, 2), (1, 1), (0, 0), true, false));
    assert_eq!(e, "avg_pool2d: kernel 6 is larger than the input [1, 2, 5, 5] padded by 0");
    assert!(
        msg(avg_pool2d(&Tensor::zeros(&[2, 5, 5]), (2, 2), (2, 2), (0, 0), true, false))
            .starts_with("avg_pool2d: invalid shape [2, 5, 5]")
    );
    assert!(msg(adaptive_avg_pool2d(&x, (0, 1))).starts_with("adaptive_avg_pool2d: output size (0, 1)"));
    let dy = Tensor::zeros(&[1, 2, 2, 2]);
    let e = msg(avg_pool2d_backward(&dy, x.shape(), (2, 2), (1, 1), (0, 0), true, false));
    assert_eq!(e, "avg_pool2d_backward: shape mismatch between [1, 2, 4, 4] and [1, 2, 2, 2]");
    let e = msg(max_pool2d_backward(&dy, &[0; 7], x.shape()));
    assert!(e.starts_with("max_pool2d_backward: 7 indices"), "{e}");
    let e = msg(max_pool2d_backward(&dy, &[25; 8], x.shape()));
    assert_eq!(e, "max_pool2d_backward: index 25 out of range for a dimension of size 25");
    let e = msg(max_pool2d_backward(&dy, &[0; 8], &[1, 3, 5, 5]));
    assert!(e.starts_with("max_pool2d_backward: shape mismatch"), "{e}");
    let e = msg(max_pool1d(&Tensor::zeros(&[1, 2, 3]), 4, 1, 0).map(|r| r.0));
    assert_eq!(e, "max_pool1d: kernel 4 is larger than the input [1, 2, 3] padded by 0");
    assert!(msg(adaptive_avg_pool2d_backward(&dy, &[1, 2, 5])).contains("invalid shape"));
    let e = msg(avg_pool2d(&x, (usize::MAX, 1), (1, 1), (usize::MAX / 2, 0), true, false));
    assert!(e.contains("overflows"), "{e}");
}

#[test]
fn bits_do_not_depend_on_thread_count() {
    let mut rng = Rng::new(6);
    let x = Tensor::randn(&[5, 7, 13, 12], 0.0, 1.0, &mut rng);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let (m, idx) = max_pool2d(&x, (3, 3), (2, 2), (1, 1), true).unwrap();
            let dm = max_pool2d_backward(&m, &idx, x.shape()).unwrap();
            let a = avg_pool2d(&x, (3, 2), (2, 1), (1, 1), false, true).unwrap();
            let da = avg_pool2d_backward(&a, x.shape(), (3, 2), (2, 1), (1, 1), false, true).unwrap();
            let ad = adaptive_avg_pool2d(&x, (5, 4)).unwrap();
            let dad = adaptive_avg_pool2d_backward(&ad, x.shape()).unwrap();
            (m, idx, dm, a, da, ad, dad)
        })
    };
    let one = run(1);
    assert_eq!(run(2), one);
    assert_eq!(run(3), one);
}
