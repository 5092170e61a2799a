//! Per-kernel times of the `cargo xtask bench train` CNN step (batch 64,
//! conv3x3(1->32)-ReLU-pool2, conv3x3(32->64)-ReLU-pool2 on 28x28): each
//! convolution and pooling kernel the step runs, forward and backward, timed
//! alone (minimum and median CPU milliseconds of all threads (wall with `WALL=1`) of REPEATS calls after two
//! warm-up calls) on the current rayon pool (`RAYON_NUM_THREADS`).
//!
//! Run: `cargo run --release -p nw-tensor --example cnn_layers [-- REPEATS [NAME-SUBSTRING]]`

use std::time::Instant;

use nw_tensor::conv::{
    Conv2dSpec, conv_backward_bias, conv2d, conv2d_backward_input, conv2d_backward_weight,
};
use nw_tensor::pool::{max_pool2d, max_pool2d_backward};
use nw_tensor::{Rng, Tensor};

/// Nanoseconds on CPU of all threads of this process so far (Linux).
fn cpu_ns() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += stat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    total
}

fn time(name: &str, repeats: usize, gflop: f64, mut f: impl FnMut()) -> f64 {
    if std::env::args().nth(2).is_some_and(|only| !name.contains(&only)) {
        return 0.0;
    }
    f();
    f();
    let mut v: Vec<f64> = (0..repeats)
        .map(|_| {
            let (t, c) = (Instant::now(), cpu_ns());
            f();
            let wall = t.elapsed().as_secs_f64() * 1e3;
            if std::env::var_os("WALL").is_some() { wall } else { (cpu_ns() - c) as f64 / 1e6 }
        })
        .collect();
    v.sort_by(f64::total_cmp);
    let (min, med) = (v[0], v[v.len() / 2]);
    let rate = if gflop > 0.0 { format!("{:8.1}", gflop / min * 1e3) } else { "       -".into() };
    println!("{name:<22} {min:8.3} {med:8.3} {rate}");
    min
}

fn main() {
    let repeats: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(15);
    let mut rng = Rng::new(0);
    let spec = Conv2dSpec { padding: (1, 1), ..Default::default() };
    println!("# threads {} | kernel {:?}", rayon::current_num_threads(), nw_tensor::gemm::Kernel::detect());
    println!("{:<22} {:>8} {:>8} {:>8}", "kernel", "min ms", "med ms", "GFLOP/s");
    let mut total = 0.0;
    for (c_in, c_out, hw) in [(1usize, 32usize, 28usize), (32, 64, 14)] {
        let x = Tensor::randn(&[64, c_in, hw, hw], 0.0, 1.0, &mut rng);
        let w = Tensor::randn(&[c_out, c_in, 3, 3], 0.0, 0.1, &mut rng);
        let b = Tensor::randn(&[c_out], 0.0, 0.1, &mut rng);
        let y = conv2d(&x, &w, Some(&b), &spec).unwrap();
        let dy = Tensor::randn(y.shape(), 0.0, 1.0, &mut rng);
        let gf = 2.0 * (64 * c_out * hw * hw * c_in * 9) as f64 / 1e9;
        let tag = format!("conv{c_in}->{c_out}");
        total += time(&format!("{tag} fwd"), repeats, gf, || {
            std::hint::black_box(conv2d(&x, &w, Some(&b), &spec).unwrap());
        });
        if c_in > 1 {
            total += time(&format!("{tag} dx"), repeats, gf, || {
                std::hint::black_box(conv2d_backward_input(&dy, &w, x.shape(), &spec).unwrap());
            });
        }
        total += time(&format!("{tag} dw"), repeats, gf, || {
            std::hint::black_box(conv2d_backward_weight(&dy, &x, w.shape(), &spec).unwrap());
        });
        total += time(&format!("{tag} db"), repeats, 0.0, || {
            std::hint::black_box(conv_backward_bias(&dy).unwrap());
        });
        let (p, idx) = max_pool2d(&y, (2, 2), (2, 2), (0, 0), false).unwrap();
        total += time(&format!("pool {c_out}x{hw} fwd"), repeats, 0.0, || {
            std::hint::black_box(max_pool2d(&y, (2, 2), (2, 2), (0, 0), false).unwrap());
        });
        let dp = Tensor::randn(p.shape(), 0.0, 1.0, &mut rng);
        total += time(&format!("pool {c_out}x{hw} bwd"), repeats, 0.0, || {
            std::hint::black_box(max_pool2d_backward(&dp, &idx, y.shape()).unwrap());
        });
    }
    println!("{:<22} {total:8.3}", "sum of minima");
}
