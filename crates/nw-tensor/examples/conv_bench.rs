//! Rust side of the conv2d benchmark (the PyTorch side is
//! `benches/torch/conv.py`): input 64x32x28x28, 64 output channels, 3x3
//! kernel, padding 1, with bias. Prints the median (and minimum) milliseconds
//! of the forward pass and of forward + backward (input, weight and bias
//! gradients) at 1 and 2 threads, for each accumulation, and the median CPU
//! time the process spent per call (all threads, from
//! `/proc/self/task/*/schedstat`; Linux only). On a shared, loaded machine
//! the CPU time at 1 thread is the steadiest figure; at 2 threads it is the
//! total work of both.
//!
//! Run: `cargo run --release -p nw-tensor --example conv_bench [-- REPEATS [f32|f64]]`
//! (both accumulations unless one is named).

use std::time::Instant;

use nw_tensor::conv::{
    Accumulation, Conv2dSpec, conv_backward_bias, conv2d, conv2d_backward, conv2d_backward_input,
    conv2d_backward_weight,
};
use nw_tensor::{Rng, Tensor};

/// Nanoseconds on CPU of all threads of this process so far, if the kernel
/// exposes them.
fn cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median and minimum wall time and median CPU time of `f` in milliseconds,
/// after two warm-up calls.
fn median_ms(repeats: usize, mut f: impl FnMut()) -> Ms {
    f();
    f();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        let (t0, c0) = (Instant::now(), cpu_ns());
        f();
        wall.push(t0.elapsed().as_secs_f64() * 1e3);
        if let (Some(c0), Some(c1)) = (c0, cpu_ns()) {
            cpu.push((c1 - c0) as f64 / 1e6);
        }
    }
    let min = wall.iter().copied().fold(f64::INFINITY, f64::min);
    Ms(median(wall), min, (!cpu.is_empty()).then(|| median(cpu)))
}

/// (median, minimum, median CPU) milliseconds.
#[derive(Clone, Copy)]
struct Ms(f64, f64, Option<f64>);

impl std::fmt::Display for Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} ms (min {:.2}", self.0, self.1)?;
        match self.2 {
            Some(c) => write!(f, ", cpu {c:.2})"),
            None => write!(f, ")"),
        }
    }
}

fn main() {
    let repeats: usize =
        std::env::args().nth(1).map_or(20, |a| a.parse().expect("REPEATS is a number")).max(1);
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
                 fwd {f}, fwd+bwd {fb}"
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
                    "    (1 thread, each alone: input grad {}, weight grad {}, bias grad {})",
                    parts[0], parts[1], parts[2]
                );
            }
        }
    }
}
