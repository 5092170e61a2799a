//! Criterion benchmarks of nw's GEMM on every case of `nw_benches::gemm`,
//! at 1 and 2 threads (one rayon pool per thread count). Throughput is in
//! floating-point operations ("elements" in criterion's report = FLOP).
//!
//! `cargo bench -p nw-benches --bench gemm [-- FILTER]`. For the side-by-side
//! comparison with PyTorch use `cargo xtask bench gemm --torch PYTHON`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nw_benches::gemm::{GemmBuffers, cases};

fn gemm(c: &mut Criterion) {
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        let mut group = c.benchmark_group(format!("gemm/{threads}t"));
        for case in cases() {
            let mut bufs = GemmBuffers::new(&case);
            group.throughput(Throughput::Elements(case.flops() as u64));
            let id = format!("{} {}x{}x{} {}", case.name, case.m, case.k, case.n, case.layout());
            group.bench_function(id, |bench| pool.install(|| bench.iter(|| bufs.run())));
        }
        group.finish();
    }
}

criterion_group!(benches, gemm);
criterion_main!(benches);
