//! A counting global allocator for xtask: every allocation goes to the
//! system allocator, and three relaxed atomic counters record how many
//! allocations were made, how many bytes they asked for, and how many bytes
//! are live. `bench mlp` reads them to show that a training step allocates a
//! fixed set of buffers and that memory does not grow over steps.
//!
//! The cost is three uncontended atomic adds per allocation (a few
//! nanoseconds); the timed loops of the benchmarks allocate at most a few
//! hundred times per millisecond-long iteration, so it is far below the noise.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

fn record_alloc(size: usize) {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    ALLOC_BYTES.fetch_add(size as u64, Ordering::Relaxed);
    LIVE_BYTES.fetch_add(size as isize, Ordering::Relaxed);
}

// SAFETY: every method forwards to the system allocator with the caller's
// arguments unchanged and only updates counters besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            record_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc` (zeroed pages straight from the system, as without counting).
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            record_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by this allocator (so by System) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by System with `layout`; the caller's
        // contract for `realloc` is passed on unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            ALLOC_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
            LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A reading of the counters.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    /// Allocations (and reallocations) so far, all threads.
    pub allocs: u64,
    /// Bytes asked for by those allocations.
    pub bytes: u64,
    /// Bytes allocated and not yet freed.
    pub live: isize,
}

/// The counters now.
pub fn snapshot() -> Snapshot {
    Snapshot {
        allocs: ALLOCS.load(Ordering::Relaxed),
        bytes: ALLOC_BYTES.load(Ordering::Relaxed),
        live: LIVE_BYTES.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_vector() {
        let before = snapshot();
        let v = std::hint::black_box(vec![0u8; 4096]);
        let during = snapshot();
        drop(v);
        // Other test threads may allocate concurrently: check lower bounds only.
        assert!(during.allocs > before.allocs);
        assert!(during.bytes >= before.bytes + 4096);
    }
}
