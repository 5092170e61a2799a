//! Criterion benchmarks of the non-GEMM kernels training spends time in:
//! conv2d forward and backward on the reference layer
//! (64x32x28x28 -> 64 channels, 3x3, padding 1), and the main elementwise
//! and row-wise ops on a 128x512 activation (a hidden layer at batch 128)
//! and a 4M-element tensor (where the kernels go parallel), at 1 and 2 threads.
//!
//! `cargo bench -p nw-benches --bench kernels [-- FILTER]`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nw_tensor::conv::{Conv2dSpec, conv2d, conv2d_backward};
use nw_tensor::{Rng, Tensor};

fn conv(c: &mut Criterion) {
    let mut rng = Rng::new(0);
    let x = Tensor::randn(&[64, 32, 28, 28], 0.0, 1.0, &mut rng);
    let w = Tensor::randn(&[64, 32, 3, 3], 0.0, 0.05, &mut rng);
    let b = Tensor::zeros(&[64]);
    let spec = Conv2dSpec { padding: (1, 1), ..Default::default() };
    let y = conv2d(&x, &w, Some(&b), &spec).expect("conv2d");
    let g = Tensor::randn(y.shape(), 0.0, 1.0, &mut rng);
    // 2 * N * Cout * OH * OW * Cin * KH * KW
    let flops = 2.0 * 64.0 * 64.0 * 28.0 * 28.0 * 32.0 * 9.0;
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        let mut group = c.benchmark_group(format!("conv2d/{threads}t"));
        group.sample_size(10);
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function("forward", |bench| {
            pool.install(|| bench.iter(|| conv2d(&x, &w, Some(&b), &spec)))
        });
        group.throughput(Throughput::Elements(3 * flops as u64));
        group.bench_function("forward+backward", |bench| {
            pool.install(|| {
                bench.iter(|| {
                    let y = conv2d(&x, &w, Some(&b), &spec).expect("conv2d");
                    let gr = conv2d_backward(&g, &x, &w, true, &spec).expect("backward");
                    (y, gr)
                })
            })
        });
        group.finish();
    }
}

fn elementwise(c: &mut Criterion) {
    let mut rng = Rng::new(1);
    for (label, shape) in [("128x512", [128usize, 512]), ("2048x2048", [2048, 2048])] {
        let a = Tensor::randn(&shape, 0.0, 1.0, &mut rng);
        let b = Tensor::randn(&shape, 0.0, 1.0, &mut rng);
        let row = Tensor::randn(&[shape[1]], 0.0, 1.0, &mut rng);
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
            let mut group = c.benchmark_group(format!("elementwise/{label}/{threads}t"));
            group.throughput(Throughput::Elements(a.len() as u64));
            group.bench_function("add", |bench| pool.install(|| bench.iter(|| a.add(&b))));
            group.bench_function("add_bias_row", |bench| pool.install(|| bench.iter(|| a.add(&row))));
            group.bench_function("mul", |bench| pool.install(|| bench.iter(|| a.mul(&b))));
            group.bench_function("relu", |bench| pool.install(|| bench.iter(|| a.relu())));
            group.bench_function("exp", |bench| pool.install(|| bench.iter(|| a.exp())));
            group.bench_function("tanh", |bench| pool.install(|| bench.iter(|| a.tanh())));
            group.bench_function("softmax_rows", |bench| pool.install(|| bench.iter(|| a.softmax(1))));
            group.bench_function("sum_axis0", |bench| pool.install(|| bench.iter(|| a.sum_axis(0, false))));
            group.finish();
        }
    }
}

criterion_group!(benches, conv, elementwise);
criterion_main!(benches);
