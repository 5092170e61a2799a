//! GEMM tests: every kernel this CPU supports against the f64 naive
//! reference on awkward shapes, layouts and scalars, and bit-identical results
//! across thread counts.
//!
//! Tolerance. The reference (`sgemm_naive`) accumulates in f64, so its value
//! is the exact result rounded once. The kernels compute each element with at
//! most `2k` roundings in the sums (one per FMA, or a multiply and an add in
//! the scalar kernel), plus three per k-block in the update
//! (`alpha * acc`, `beta * c`, the add). By the standard forward error bound
//! for summation, `|got - exact| <= n u (|alpha| sum_p |a_ip b_pj| + |beta c_ij|)`
//! with `u = 2^-24` and `n` the number of roundings (to first order). With at
//! most `k / 3 + 1` blocks here, `n <= 3k + 8`, which is the bound checked:
//! it scales with `k` and with the magnitudes of the actual operands, not
//! with an arbitrary constant.

use std::sync::Arc;

use super::driver::Blocking;
use super::*;
use crate::Tensor;

/// A matrix stored in its own buffer with a chosen layout.
struct Mat {
    data: Vec<f32>,
    /// Index in `data` of element (0, 0).
    off: usize,
    rs: isize,
    cs: isize,
    rows: usize,
    cols: usize,
}

#[derive(Clone, Copy, Debug)]
enum Layout {
    RowMajor,
    ColMajor,
    /// Row-major with 3 spare elements after each row.
    Padded,
    /// Row-major with the rows stored last to first (negative row stride).
    Reversed,
}

const LAYOUTS: [Layout; 4] = [Layout::RowMajor, Layout::ColMajor, Layout::Padded, Layout::Reversed];

/// xorshift64*: a fast, self-contained source of test values.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
        // Uniform in [-1, 1) with 24 random bits.
        (x as f32) / (1u64 << 23) as f32 - 1.0
    }
}

impl Mat {
    fn new(rows: usize, cols: usize, layout: Layout, g: &mut Gen) -> Mat {
        let (len, off, rs, cs) = match layout {
            Layout::RowMajor => (rows * cols, 0, cols as isize, 1),
            Layout::ColMajor => (rows * cols, 0, 1, rows as isize),
            Layout::Padded => (rows * (cols + 3), 0, (cols + 3) as isize, 1),
            Layout::Reversed => (rows * cols, (rows.max(1) - 1) * cols, -(cols as isize), 1),
        };
        let data = (0..len).map(|_| g.next()).collect();
        Mat { data, off, rs, cs, rows, cols }
    }

    fn filled(rows: usize, cols: usize, layout: Layout, v: f32) -> Mat {
        let mut m = Mat::new(rows, cols, layout, &mut Gen(1));
        m.data.fill(v);
        m
    }

    fn idx(&self, i: usize, j: usize) -> usize {
        (self.off as isize + i as isize * self.rs + j as isize * self.cs) as usize
    }

    fn ptr(&self) -> *const f32 {
        // Derived from the whole buffer so negative strides stay in bounds.
        self.data.as_ptr().wrapping_add(self.off)
    }

    fn mut_ptr(&mut self) -> *mut f32 {
        // Derived from the whole buffer so negative strides stay in bounds.
        self.data.as_mut_ptr().wrapping_add(self.off)
    }

    fn abs(&self) -> Mat {
        Mat { data: self.data.iter().map(|x| x.abs()).collect(), ..*self }
    }
}

impl Clone for Mat {
    fn clone(&self) -> Mat {
        Mat { data: self.data.clone(), ..*self }
    }
}

/// `C <- alpha A B + beta C` with `kernel` and `blocking`.
fn run_gemm(kernel: Kernel, blocking: Blocking, alpha: f32, a: &Mat, b: &Mat, beta: f32, c: &mut Mat) {
    let ops = Operands {
        m: a.rows,
        k: a.cols,
        n: b.cols,
        alpha,
        a: a.ptr(),
        rsa: a.rs,
        csa: a.cs,
        b: b.ptr(),
        rsb: b.rs,
        csb: b.cs,
        beta,
        c: c.mut_ptr(),
        rsc: c.rs,
        csc: c.cs,
        pb: None,
    };
    // SAFETY: each Mat's buffer covers its rows x cols under its strides,
    // and C is a separate buffer.
    unsafe { run_kernel(kernel, ops, blocking) };
}

/// The reference result and its error bound for every element of C.
struct Expected {
    value: Mat,
    bound: Mat,
}

fn expected(alpha: f32, a: &Mat, b: &Mat, beta: f32, c: &Mat) -> Expected {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let mut value = c.clone();
    let mut bound = c.abs();
    let (aa, ab) = (a.abs(), b.abs());
    // SAFETY: as in `run_gemm`.
    unsafe {
        sgemm_naive(
            m,
            k,
            n,
            alpha,
            a.ptr(),
            a.rs,
            a.cs,
            b.ptr(),
            b.rs,
            b.cs,
            beta,
            value.mut_ptr(),
            c.rs,
            c.cs,
        );
        let (abs_alpha, abs_beta) = (alpha.abs(), beta.abs());
        sgemm_naive(
            m,
            k,
            n,
            abs_alpha,
            aa.ptr(),
            aa.rs,
            aa.cs,
            ab.ptr(),
            ab.rs,
            ab.cs,
            abs_beta,
            bound.mut_ptr(),
            c.rs,
            c.cs,
        );
    }
    // Round-off: (3k + 8) roundings of u = 2^-24 each (see the module docs),
    // with 1% for the second-order term and a floor for subnormal scales.
    let scale = (3 * k + 8) as f32 * (f32::EPSILON / 2.0) * 1.01;
    for x in bound.data.iter_mut() {
        *x = *x * scale + f32::MIN_POSITIVE;
    }
    Expected { value, bound }
}

fn check(got: &Mat, want: &Expected, what: &dyn Fn() -> String) {
    for i in 0..got.rows {
        for j in 0..got.cols {
            let (g, w) = (got.data[got.idx(i, j)], want.value.data[want.value.idx(i, j)]);
            let tol = want.bound.data[want.bound.idx(i, j)];
            assert!((g - w).abs() <= tol, "{}: C[{i}, {j}] = {g}, want {w} +- {tol}", what());
        }
    }
}

/// (alpha, beta) pairs: the plain product, accumulation, a general update.
const SCALARS: [(f32, f32); 3] = [(1.0, 0.0), (1.0, 1.0), (-0.75, 1.5)];

/// Runs one case on every available kernel; with `beta == 0`, C starts as NaN
/// (which must not leak).
fn case(
    m: usize,
    k: usize,
    n: usize,
    la: Layout,
    lb: Layout,
    lc: Layout,
    s: (f32, f32),
    seed: u64,
    blockings: &[Blocking],
) {
    let mut g = Gen(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let a = Mat::new(m, k, la, &mut g);
    let b = Mat::new(k, n, lb, &mut g);
    let (alpha, beta) = s;
    let c0 = if beta == 0.0 { Mat::filled(m, n, lc, f32::NAN) } else { Mat::new(m, n, lc, &mut g) };
    let want = expected(alpha, &a, &b, beta, &c0);
    for kernel in Kernel::available() {
        for &blocking in blockings {
            let mut c = c0.clone();
            run_gemm(kernel, blocking, alpha, &a, &b, beta, &mut c);
            check(&c, &want, &|| {
                format!(
                    "{kernel:?} {blocking:?} m={m} k={k} n={n} A {la:?} B {lb:?} C {lc:?} alpha={alpha} beta={beta}"
                )
            });
        }
    }
}

#[test]
fn every_size_from_1_to_33() {
    // The full cube of m, n, k in 1..=33: every tile remainder of every
    // kernel (MR 4, 6, 12; NR 8, 16, 32), with rotating scalars.
    let mut seed = 0;
    for m in 1..=33 {
        for n in 1..=33 {
            for k in 1..=33 {
                seed += 1;
                let s = SCALARS[seed as usize % SCALARS.len()];
                let (la, lb) = (LAYOUTS[seed as usize % 2], LAYOUTS[(seed as usize / 2) % 2]);
                case(m, k, n, la, lb, Layout::RowMajor, s, seed, &[Blocking::DEFAULT]);
            }
        }
    }
}

#[test]
fn large_primes() {
    let shapes = [(127, 257, 509), (509, 127, 257), (257, 509, 127), (127, 509, 131), (509, 31, 257)];
    for (i, &(m, k, n)) in shapes.iter().enumerate() {
        case(
            m,
            k,
            n,
            Layout::RowMajor,
            Layout::RowMajor,
            Layout::RowMajor,
            SCALARS[i % 3],
            i as u64,
            &[Blocking::DEFAULT],
        );
    }
    // A k long enough for several k-blocks, transposed B as in x W^T.
    case(
        37,
        1031,
        53,
        Layout::RowMajor,
        Layout::ColMajor,
        Layout::RowMajor,
        (1.0, 0.0),
        99,
        &[Blocking::DEFAULT],
    );
}

#[test]
fn every_layout_and_scalar() {
    let mut seed = 1000;
    for la in LAYOUTS {
        for lb in LAYOUTS {
            for lc in LAYOUTS {
                for s in SCALARS {
                    seed += 1;
                    case(29, 37, 45, la, lb, lc, s, seed, &[Blocking::DEFAULT]);
                }
            }
        }
    }
}

#[test]
fn small_blocks_exercise_every_loop() {
    // Block sizes far below the defaults, so jc, pc and ic each run several
    // times with partial last blocks: mc and nc are rounded to 1 or 2 tiles
    // of each kernel, kc_max = 7 cuts k into several blocks.
    let tiny = Blocking { mc: 13, kc_max: 7, nc: 33 };
    let mut seed = 5000;
    for (m, k, n) in [(50, 23, 70), (13, 40, 99), (31, 8, 17), (1, 29, 65)] {
        for (la, lb, lc) in [
            (Layout::RowMajor, Layout::RowMajor, Layout::RowMajor),
            (Layout::ColMajor, Layout::Padded, Layout::ColMajor),
            (Layout::Reversed, Layout::ColMajor, Layout::Padded),
        ] {
            for s in SCALARS {
                seed += 1;
                case(m, k, n, la, lb, lc, s, seed, &[tiny, Blocking::DEFAULT]);
            }
        }
    }
    assert_eq!(tiny.kc(23), 6, "23 splits into 4 blocks of at most 6");
    assert_eq!(Blocking::DEFAULT.kc(784), 196);
    assert_eq!(Blocking::DEFAULT.kc(256), 256);
    assert_eq!(Blocking::DEFAULT.kc(257), 129);
}

#[test]
fn alpha_zero_and_empty_k_read_only_c() {
    // BLAS rule: with alpha == 0 (or k == 0) A and B are not read, so NaN
    // there does not reach C; C <- beta C, and beta == 0 gives zeros even
    // over NaN.
    let a = Mat::filled(5, 3, Layout::RowMajor, f32::NAN);
    let b = Mat::filled(3, 4, Layout::RowMajor, f32::NAN);
    for kernel in Kernel::available() {
        let mut c = Mat::filled(5, 4, Layout::Padded, 2.0);
        run_gemm(kernel, Blocking::DEFAULT, 0.0, &a, &b, 0.5, &mut c);
        assert!((0..5).all(|i| (0..4).all(|j| c.data[c.idx(i, j)] == 1.0)), "{kernel:?}");
        let mut c = Mat::filled(5, 4, Layout::ColMajor, f32::NAN);
        run_gemm(kernel, Blocking::DEFAULT, 0.0, &a, &b, 0.0, &mut c);
        assert!(c.data.iter().all(|&x| x == 0.0), "{kernel:?}");
        let (a0, b0) = (Mat::filled(5, 0, Layout::RowMajor, 0.0), Mat::filled(0, 4, Layout::RowMajor, 0.0));
        let mut c = Mat::filled(5, 4, Layout::RowMajor, 3.0);
        run_gemm(kernel, Blocking::DEFAULT, 1.0, &a0, &b0, 2.0, &mut c);
        assert!(c.data.iter().all(|&x| x == 6.0), "{kernel:?}");
    }
}

#[test]
fn partition_splits_skinny_products_over_n() {
    // 128 x 784 x 512 (x W^T of a 784 -> 512 layer) with 12 x 32 tiles:
    // 11 x 16 tiles; two threads take 8 column tiles each.
    assert_eq!(partition(11, 16, 784, 2, 12, 32), (1, 2));
    // dW = dY^T X, 512 x 128 x 784: 43 x 25 tiles; an odd 25 columns makes
    // the N split uneven (13 + 12), and the M split (22 + 21) wins narrowly.
    assert_eq!(partition(43, 25, 128, 2, 12, 32), (2, 1));
    // A tall product with a single column of tiles splits over M.
    assert_eq!(partition(100, 1, 64, 2, 12, 32), (2, 1));
    // Four threads on a square 384 x 384 product: 2 x 2 packs least.
    assert_eq!(partition(32, 12, 384, 4, 12, 32), (2, 2));
    for t in 1..=8 {
        let (tm, tn) = partition(3, 5, 100, t, 12, 32);
        assert!(tm * tn <= t && tm <= 3 && tn <= 5, "t={t}: {tm} x {tn}");
    }
    // split() covers 0..total exactly, in order.
    for (total, parts) in [(16, 2), (11, 3), (5, 5), (7, 4)] {
        let mut next = 0;
        for p in 0..parts {
            let (s, e) = split(total, parts, p);
            assert_eq!(s, next);
            assert!(e > s && e - s >= total / parts);
            next = e;
        }
        assert_eq!(next, total);
    }
}

/// Runs `C <- alpha A B + beta C` in a pool of `threads` threads.
fn run_in_pool(threads: usize, kernel: Kernel, a: &Mat, b: &Mat, c0: &Mat, beta: f32) -> Vec<u32> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    let mut c = c0.clone();
    pool.install(|| run_gemm(kernel, Blocking::DEFAULT, 0.5, a, b, beta, &mut c));
    c.data.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn bit_identical_for_1_2_3_4_threads() {
    // The MLP shapes (forward x W^T, backward dY^T X and dY W) and an odd one,
    // on the detected kernel; a smaller product on every kernel.
    let best = Kernel::detect();
    let cases = [
        (best, 128, 784, 512, Layout::RowMajor, Layout::ColMajor),
        (best, 512, 128, 784, Layout::ColMajor, Layout::RowMajor),
        (best, 128, 512, 784, Layout::RowMajor, Layout::RowMajor),
        (best, 131, 301, 203, Layout::Padded, Layout::Reversed),
    ];
    let small =
        Kernel::available().into_iter().map(|k| (k, 121, 160, 250, Layout::RowMajor, Layout::RowMajor));
    for (i, (kernel, m, k, n, la, lb)) in cases.into_iter().chain(small).enumerate() {
        assert!(2 * m * n * k >= PAR_MIN_FLOPS, "case {i} would not be threaded");
        let (mr, nr) = kernel.tile();
        assert_ne!(partition(m.div_ceil(mr), n.div_ceil(nr), k, 2, mr, nr), (1, 1));
        let mut g = Gen(77 + i as u64);
        let a = Mat::new(m, k, la, &mut g);
        let b = Mat::new(k, n, lb, &mut g);
        let c0 = Mat::new(m, n, Layout::RowMajor, &mut g);
        for beta in [0.0, 1.0] {
            let one = run_in_pool(1, kernel, &a, &b, &c0, beta);
            for t in 2..=4 {
                assert!(one == run_in_pool(t, kernel, &a, &b, &c0, beta), "{kernel:?} {m}x{k}x{n} t={t}");
            }
        }
    }
}

#[test]
fn agrees_with_matrixmultiply() {
    // A second, independent implementation as a check on the naive
    // reference itself: both must fall inside the same bound.
    let mut g = Gen(4242);
    let (m, k, n) = (67, 300, 45);
    let a = Mat::new(m, k, Layout::ColMajor, &mut g);
    let b = Mat::new(k, n, Layout::Padded, &mut g);
    let c0 = Mat::new(m, n, Layout::RowMajor, &mut g);
    let want = expected(0.5, &a, &b, -1.0, &c0);
    let mut other = c0.clone();
    // SAFETY: as in `run_gemm`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            0.5,
            a.ptr(),
            a.rs,
            a.cs,
            b.ptr(),
            b.rs,
            b.cs,
            -1.0,
            other.mut_ptr(),
            other.rs,
            other.cs,
        );
    }
    check(&other, &want, &|| "matrixmultiply".into());
    let mut ours = c0.clone();
    run_gemm(Kernel::detect(), Blocking::DEFAULT, 0.5, &a, &b, -1.0, &mut ours);
    check(&ours, &want, &|| "detected kernel".into());
}

#[test]
fn fma_kernels_agree_bit_for_bit() {
    // AVX2 and AVX-512 accumulate each element with FMAs in the same depth
    // order from zero and round the update the same way, so with equal
    // k-blocks they give the same bits (the module docs promise it). On a
    // CPU with fewer than two FMA kernels there is no pair to compare.
    let fma: Vec<Kernel> = Kernel::available().into_iter().filter(|&k| k != Kernel::Scalar).collect();
    for pair in fma.windows(2) {
        for (i, (m, k, n)) in [(37, 300, 45), (128, 784, 96), (5, 3, 70)].into_iter().enumerate() {
            let mut g = Gen(900 + i as u64);
            let a = Mat::new(m, k, Layout::RowMajor, &mut g);
            let b = Mat::new(k, n, Layout::ColMajor, &mut g);
            let c0 = Mat::new(m, n, Layout::Padded, &mut g);
            let mut c1 = c0.clone();
            let mut c2 = c0.clone();
            run_gemm(pair[0], Blocking::DEFAULT, 0.7, &a, &b, 1.3, &mut c1);
            run_gemm(pair[1], Blocking::DEFAULT, 0.7, &a, &b, 1.3, &mut c2);
            let bits = |c: &Mat| c.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(bits(&c1) == bits(&c2), "{pair:?} differ on {m}x{k}x{n}");
        }
    }
}

#[test]
fn dot_path_on_every_kernel_against_the_reference() {
    // m <= GEMV_MAX_M with contiguous A rows and B columns (x W^T at batch
    // 1..4): every 16-lane tail, 8- and 4-column groups and their remainders,
    // and each C layout.
    let mut seed = 5000;
    for m in 1..=GEMV_MAX_M {
        for k in [1, 7, 15, 16, 17, 31, 33, 100, 784] {
            for n in [1, 3, 4, 5, 8, 9, 63, 64, 65, 130] {
                seed += 1;
                let s = SCALARS[seed as usize % SCALARS.len()];
                let lc = LAYOUTS[seed as usize % LAYOUTS.len()];
                let mut g = Gen(seed);
                let (a, b) =
                    (Mat::new(m, k, Layout::RowMajor, &mut g), Mat::new(k, n, Layout::ColMajor, &mut g));
                let ops = Operands {
                    m,
                    k,
                    n,
                    alpha: 1.0,
                    a: a.ptr(),
                    rsa: a.rs,
                    csa: a.cs,
                    b: b.ptr(),
                    rsb: b.rs,
                    csb: b.cs,
                    beta: 0.0,
                    c: std::ptr::null_mut(),
                    rsc: 0,
                    csc: 0,
                    pb: None,
                };
                assert!(gemv::applies(&ops), "m={m} k={k} n={n} does not take the dot path");
                case(m, k, n, Layout::RowMajor, Layout::ColMajor, lc, s, seed, &[Blocking::DEFAULT]);
            }
        }
    }
}

#[test]
fn dot_path_is_bit_identical_across_threads_and_fma_kernels() {
    // Large enough to run in parallel (>= GEMV_PAR_MIN_FLOPS), odd column counts.
    let fma: Vec<Kernel> = Kernel::available().into_iter().filter(|&k| k != Kernel::Scalar).collect();
    for (i, (m, k, n)) in [(1, 784, 4099), (3, 301, 2999)].into_iter().enumerate() {
        assert!(2 * m * n * k >= GEMV_PAR_MIN_FLOPS && n > GEMV_CHUNK_N, "case {i} would not be threaded");
        let mut g = Gen(3100 + i as u64);
        let a = Mat::new(m, k, Layout::RowMajor, &mut g);
        let b = Mat::new(k, n, Layout::ColMajor, &mut g);
        let c0 = Mat::new(m, n, Layout::RowMajor, &mut g);
        for kernel in Kernel::available() {
            for beta in [0.0, 1.0] {
                let one = run_in_pool(1, kernel, &a, &b, &c0, beta);
                for t in 2..=4 {
                    assert!(one == run_in_pool(t, kernel, &a, &b, &c0, beta), "{kernel:?} {m}x{k}x{n} t={t}");
                }
            }
        }
        for pair in fma.windows(2) {
            let (x, y) =
                (run_in_pool(2, pair[0], &a, &b, &c0, 1.0), run_in_pool(2, pair[1], &a, &b, &c0, 1.0));
            assert!(x == y, "{pair:?} differ on {m}x{k}x{n}");
        }
    }
}

/// `C <- alpha A B + beta C` through a [`PackedB`] packed with `blocking`.
fn run_packed(kernel: Kernel, blocking: Blocking, alpha: f32, a: &Mat, b: &Mat, beta: f32, c: &mut Mat) {
    // SAFETY: each Mat's buffer covers its rows x cols under its strides,
    // and C is a separate buffer.
    unsafe {
        let p = PackedB::pack(kernel, blocking, b.rows, b.cols, b.ptr(), b.rs, b.cs).expect("pack");
        p.run(a.rows, alpha, a.ptr(), a.rs, a.cs, beta, c.mut_ptr(), c.rs, c.cs);
    }
}

#[test]
fn packed_b_gives_the_bits_of_the_unpacked_call() {
    // Every kernel, blockings that run every loop several times, odd shapes,
    // B layouts (transposed W^T views included) and scalars; above
    // GEMV_MAX_M rows, where both run the blocked loops.
    let tiny = Blocking { mc: 13, kc_max: 7, nc: 33 };
    let mut seed = 7000;
    for (m, k, n) in [(5, 1, 1), (13, 40, 99), (50, 23, 70), (31, 8, 17), (128, 300, 65), (37, 784, 45)] {
        for (lb, lc) in [
            (Layout::ColMajor, Layout::RowMajor),
            (Layout::RowMajor, Layout::Padded),
            (Layout::Reversed, Layout::ColMajor),
        ] {
            for s in SCALARS {
                seed += 1;
                let mut g = Gen(seed);
                let a = Mat::new(m, k, LAYOUTS[seed as usize % 4], &mut g);
                let b = Mat::new(k, n, lb, &mut g);
                let c0 = Mat::new(m, n, lc, &mut g);
                for kernel in Kernel::available() {
                    for blocking in [tiny, Blocking::DEFAULT] {
                        let (mut x, mut y) = (c0.clone(), c0.clone());
                        run_gemm(kernel, blocking, s.0, &a, &b, s.1, &mut x);
                        run_packed(kernel, blocking, s.0, &a, &b, s.1, &mut y);
                        let bits = |c: &Mat| c.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                        assert!(bits(&x) == bits(&y), "{kernel:?} {blocking:?} {m}x{k}x{n} {lb:?} {s:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn packed_b_is_bit_identical_across_threads() {
    // The inference shapes of a 784-512-256-10 MLP at batch 256 (x W^T) on
    // every kernel, 1 to 4 threads, checked against the unpacked call.
    for kernel in Kernel::available() {
        for (i, (m, k, n)) in [(256, 784, 512), (256, 512, 256), (131, 301, 203)].into_iter().enumerate() {
            let mut g = Gen(8100 + i as u64);
            let a = Mat::new(m, k, Layout::RowMajor, &mut g);
            let b = Mat::new(k, n, Layout::ColMajor, &mut g);
            let c0 = Mat::new(m, n, Layout::RowMajor, &mut g);
            let (mr, nr) = kernel.tile();
            assert_ne!(partition_with(m.div_ceil(mr), n.div_ceil(nr), k, 2, mr, nr, false), (1, 1));
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
                let mut c = c0.clone();
                pool.install(|| run_packed(kernel, Blocking::DEFAULT, 1.0, &a, &b, 1.0, &mut c));
                c.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            };
            let want = run_in_pool(1, kernel, &a, &b, &c0, 1.0);
            // run_in_pool uses alpha 0.5; redo the unpacked call with alpha 1.
            let mut u = c0.clone();
            run_gemm(kernel, Blocking::DEFAULT, 1.0, &a, &b, 1.0, &mut u);
            let unpacked: Vec<u32> = u.data.iter().map(|x| x.to_bits()).collect();
            assert_ne!(want, unpacked, "alpha must matter");
            for t in 1..=4 {
                assert!(run(t) == unpacked, "{kernel:?} {m}x{k}x{n} t={t}");
            }
        }
    }
}

#[test]
fn a_pre_packed_split_goes_over_m() {
    // 256 x 784 x 512 with 12 x 32 tiles (22 x 16): with B to pack, two
    // threads split N; with B pre-packed, M (each packs half of A).
    assert_eq!(partition_with(22, 16, 784, 2, 12, 32, true), (1, 2));
    assert_eq!(partition_with(22, 16, 784, 2, 12, 32, false), (2, 1));
}

#[test]
fn pack_cache_never_serves_a_stale_pack() {
    let mut g = Gen(99);
    let vals: Vec<f32> = (0..40 * 24).map(|_| g.next()).collect();
    let mut w = Tensor::from_vec(vals, &[24, 40]).unwrap(); // [out, in]
    let x = Tensor::from_vec((0..16 * 40).map(|_| g.next()).collect(), &[16, 40]).unwrap();
    let cache = PackCache::new();
    let product = |w: &Tensor, cache: &PackCache| {
        let wt = w.t().unwrap();
        let p = cache.get(&wt).unwrap();
        let mut y = Tensor::zeros(&[16, 24]);
        y.gemm_acc_packed(1.0, &x, &p, 0.0).unwrap();
        let mut z = Tensor::zeros(&[16, 24]);
        z.gemm_acc(1.0, &x, &wt, 0.0).unwrap();
        assert_eq!(y, z, "packed and unpacked differ");
        (y, p)
    };
    let (y0, p0) = product(&w, &cache);
    let (y1, p1) = product(&w, &cache);
    assert!(Arc::ptr_eq(&p0, &p1), "an unchanged weight is packed once");
    assert_eq!(y0, y1);
    drop((p0, p1));
    // Write in place (as an optimizer does): the cache holds the old
    // storage, so the write copies and the next product repacks.
    w.as_slice_mut()[5] += 1.0;
    let (y2, _) = product(&w, &cache);
    assert_ne!(y0, y2, "the new weight must be used");
    // Clearing first lets the write happen in place; still no stale pack.
    cache.clear();
    assert!(!cache.is_filled());
    w.as_slice_mut()[7] -= 3.0;
    let (y3, _) = product(&w, &cache);
    assert_ne!(y2, y3);
    // A different view of the same storage (W itself, not W^T) is not a packing of it.
    let p = cache.get(&w.t().unwrap()).unwrap();
    assert!(!p.is_packing_of(&w.reshape(&[40, 24]).unwrap()));
    // Shape errors, not panics.
    let mut bad = Tensor::zeros(&[16, 23]);
    assert!(bad.gemm_acc_packed(1.0, &x, &p, 0.0).is_err());
    assert!(Tensor::zeros(&[3, 24]).gemm_acc_packed(1.0, &Tensor::zeros(&[3, 39]), &p, 0.0).is_err());
    assert!(PackedMatrix::new(&Tensor::zeros(&[2, 2, 2])).is_err());
}

#[test]
fn gemm_packed_slices_front_end() {
    let mut g = Gen(123);
    let (m, k, n) = (9, 33, 70);
    let a: Vec<f32> = (0..m * k).map(|_| g.next()).collect();
    let w: Vec<f32> = (0..n * k).map(|_| g.next()).collect();
    let b = MatRef::transposed(&w, k, n);
    for kernel in Kernel::available() {
        let p = PackedB::with_kernel(kernel, b).unwrap();
        assert_eq!((p.k(), p.n(), p.kernel()), (k, n, kernel));
        let mut c1 = vec![0.25; m * n];
        let mut c2 = c1.clone();
        gemm_packed(0.5, MatRef::row_major(&a, m, k), &p, 2.0, &mut c1).unwrap();
        // SAFETY: the slices cover the operands; C is separate.
        unsafe {
            sgemm_with(
                kernel,
                m,
                k,
                n,
                0.5,
                a.as_ptr(),
                k as isize,
                1,
                w.as_ptr(),
                1,
                k as isize,
                2.0,
                c2.as_mut_ptr(),
                n as isize,
                1,
            )
        };
        assert_eq!(
            c1.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            c2.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert!(gemm_packed(1.0, MatRef::row_major(&a, m, k - 1), &p, 0.0, &mut c1).is_err());
        assert!(gemm_packed(1.0, MatRef::row_major(&a, m, k), &p, 0.0, &mut c1[1..]).is_err());
    }
    assert!(PackedB::new(MatRef { data: &w[1..], rows: k, cols: n, row_stride: 1, col_stride: k }).is_err());
}
