//! Forward + backward of `Linear(784 -> 512) + ReLU` at batch 128 against
//! the three GEMMs it needs alone (`y = x W^T`, `dW = G^T x`, `dx = G W`).
//!
//! `cargo run --release -p nw-nn --example linear_overhead [iterations]`
//! prints the median and the minimum time of each and their ratios (target:
//! at most 1.15). The two are timed interleaved, so both see the same
//! machine load; on a loaded machine the minimum is the steadier figure.

use std::time::Instant;

use nw_autograd::Var;
use nw_nn::{Linear, Module, Relu};
use nw_tensor::{Rng, Tensor};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let iters: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    let (n, din, dout) = (128, 784, 512);
    let mut rng = Rng::new(0);
    let lin = Linear::new(din, dout, &mut rng);
    let x = Tensor::randn(&[n, din], 0.0, 1.0, &mut rng);
    let g = Tensor::randn(&[n, dout], 0.0, 1.0, &mut rng);
    let w = lin.weight.value();

    let gemms = || {
        let mut y = Tensor::zeros(&[n, dout]);
        y.gemm_acc(1.0, &x, &w.t().unwrap(), 0.0).unwrap();
        let dw = g.t().unwrap().matmul(&x).unwrap();
        let dx = g.matmul(&w).unwrap();
        std::hint::black_box((y, dw, dx));
    };
    let layer = || {
        let xv = Var::leaf(x.clone(), true);
        let y = Relu.forward(&lin.forward(&xv).unwrap()).unwrap();
        let grads = y.backward_with(g.clone()).unwrap();
        std::hint::black_box(grads);
    };
    for _ in 0..20 {
        gemms();
        layer();
    }
    let (mut tg, mut tl) = (Vec::new(), Vec::new());
    for _ in 0..iters {
        // interleaved, so both see the same machine load
        let t = Instant::now();
        gemms();
        tg.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        layer();
        tl.push(t.elapsed().as_secs_f64());
    }
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let (ng, nl) = (min(&tg), min(&tl));
    let (mg, ml) = (median(tg), median(tl));
    println!(
        "threads {}: median: three GEMMs {:.3} ms, Linear+ReLU fwd+bwd {:.3} ms, ratio {:.3}; \
         min: {:.3} ms, {:.3} ms, ratio {:.3}",
        rayon::current_num_threads(),
        mg * 1e3,
        ml * 1e3,
        ml / mg,
        ng * 1e3,
        nl * 1e3,
        nl / ng
    );
}
