//! Rust side of the conv2d benchmark (the PyTorch side is
//! `benches/torch/conv.py`): input 64x32x28x28, 64 output channels, 3x3
//! kernel, padding 1, with bias. Prints the median milliseconds of the forward
//! pass and of forward + backward (input, weight and bias gradients) at 1 and
//! 2 threads, for each accumulation.
//!
//! Run: `cargo run --release -p nw-tensor --example conv_bench [-- REPEATS [f32|f64]]`
//! (both accumulations unless one is named).

use std::time::Instant;

use nw_tensor::conv::{
    Accumulation, Conv2dSpec, conv_backward_bias, conv2d, conv2d_backward, conv2d_backward_input,
    conv2d_backward_weight,
};
use nw_tensor::{Rng, Tensor};

fn median_ms(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut t: Vec<f64> = (0..repeats)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let repeats: usize = std::env::args().nth(1).map_or(20, |a| a.parse().expect("REPEATS is a number"));
    let mut rng = Rng::new(0);
    let x = Tensor::randn(&[64, 32, 28, 28], 0.0, 1.0, &mut rng);
    let w = Tensor::randn(&[64, 32, 3, 3], 0.0, 0.1, &mut rng);
    let b = Tensor::zeros(&[64]);
    let dy = Tensor::randn(&[64, 64, 28, 28], 0.0, 1.0, &mut rng);
    let which = std::env::args().nth(2).unwrap_or_default();
    let modes = match which.as_str() {
        "f32" => vec![Accumulation::F32],
        "f64" => vec![Accumulation::F64],
        _ => vec![Accumulation::F32, Accumulation::F64],
    };
    for accumulation in modes {
        let spec = Conv2dSpec { padding: (1, 1), accumulation, ..Default::default() };
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
            let (f, fb) = pool.install(|| {
                let f = median_ms(repeats, || {
                    std::hint::black_box(conv2d(&x, &w, Some(&b), &spec).unwrap());
                });
                let fb = median_ms(repeats, || {
                    let y = conv2d(&x, &w, Some(&b), &spec).unwrap();
                    std::hint::black_box(&y);
                    std::hint::black_box(conv2d_backward(&dy, &x, &w, true, &spec).unwrap());
                });
                (f, fb)
            });
            println!(
                "conv2d 64x32x28x28 -> 64 3x3 pad 1, {accumulation:?}, {threads} thread(s): \
                 fwd {f:.2} ms, fwd+bwd {fb:.2} ms"
            );
            if threads == 1 {
                let parts = pool.install(|| {
                    [
                        median_ms(repeats, || {
                            std::hint::black_box(conv2d_backward_input(&dy, &w, x.shape(), &spec).unwrap());
                        }),
                        median_ms(repeats, || {
                            std::hint::black_box(conv2d_backward_weight(&dy, &x, w.shape(), &spec).unwrap());
                        }),
                        median_ms(repeats, || {
                            std::hint::black_box(conv_backward_bias(&dy).unwrap());
                        }),
                    ]
                });
                println!(
                    "    (1 thread, each alone: input grad {:.2} ms, weight grad {:.2} ms, bias grad {:.2} ms)",
                    parts[0], parts[1], parts[2]
                );
            }
        }
    }
}
