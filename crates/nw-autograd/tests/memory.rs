//! Memory stays flat over training steps: the graph frees what backward has
//! consumed, and a step allocates the same set of buffers every time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use nw_autograd::{Param, Var, no_grad};
use nw_tensor::{Rng, Tensor};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(l.size() as isize, Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE_BYTES.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: p was allocated by System with layout l.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One SGD step of a 784-512-256-10 MLP on a batch of 128, returning the loss.
fn step(params: &[Param], x: &Tensor, y: &[usize]) -> f32 {
    let v: Vec<Var> = params.iter().map(Var::param).collect();
    let xv = Var::constant(x.clone());
    let h1 = xv.linear(&v[0], Some(&v[1])).unwrap().relu();
    let h2 = h1.linear(&v[2], Some(&v[3])).unwrap().relu();
    let logits = h2.linear(&v[4], Some(&v[5])).unwrap();
    let loss = logits.cross_entropy_rows(y, 0.0).unwrap().mean();
    let value = loss.value().item().unwrap();
    let grads = loss.backward().unwrap();
    drop((v, h1, h2, logits, loss));
    no_grad(|| {
        for p in params {
            let g = grads.get(p).unwrap();
            p.update(|w| w.axpy_(-0.01, g).unwrap());
        }
    });
    value
}

#[test]
fn mlp_step_memory_is_flat() {
    let mut rng = Rng::new(0);
    let sizes = [(512, 784), (256, 512), (10, 256)];
    let mut params = Vec::new();
    for (o, i) in sizes {
        let b = 1.0 / (i as f32).sqrt();
        params.push(Param::new(Tensor::rand_uniform(&[o, i], -b, b, &mut rng)));
        params.push(Param::new(Tensor::rand_uniform(&[o], -b, b, &mut rng)));
    }
    let x = Tensor::rand_uniform(&[128, 784], 0.0, 1.0, &mut rng);
    let y: Vec<usize> = (0..128).map(|i| i % 10).collect();
    // Warm up: rayon's workers and the GEMM's per-thread packing buffers are
    // allocated the first time each thread takes a share of the work.
    for _ in 0..5 {
        step(&params, &x, &y);
    }
    let mut live = Vec::new();
    let mut per_step = Vec::new();
    let mut losses = Vec::new();
    for _ in 0..20 {
        let a0 = ALLOCS.load(Ordering::Relaxed);
        losses.push(step(&params, &x, &y));
        per_step.push(ALLOCS.load(Ordering::Relaxed) - a0);
        live.push(LIVE_BYTES.load(Ordering::Relaxed));
    }
    eprintln!("live bytes after each step: {live:?}\nallocations per step: {per_step:?}");
    // No growth. A worker thread that takes its first share of a product
    // late (work stealing on a busy machine) allocates its packing buffer
    // then, once: one jump is allowed, a leak shows at every step. Over the
    // last ten steps nothing may grow (a leak of 6.4 KiB a step fails).
    let jumps = live.windows(2).filter(|w| w[1] - w[0] >= 64 * 1024).count();
    assert!(jumps <= 1, "live bytes grew in {jumps} steps: {live:?}");
    let growth = live[19] - live[9];
    assert!(growth.abs() < 64 * 1024, "live bytes grew by {growth} over the last 10 steps: {live:?}");
    // A fixed set of buffers per step. rayon's work queues may allocate a
    // block now and then on the worker threads, hence the slack of 2 around
    // the median; as above, one step (a late first share) may be further off.
    let mut sorted = per_step.clone();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    let off = per_step.iter().filter(|&&n| n.abs_diff(median) > 2).count();
    assert!(off <= 1, "allocations per step vary: {per_step:?}");
    assert!(losses[19] < losses[0], "training does not reduce the loss: {losses:?}");
}
