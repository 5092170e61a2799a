//! The body shared by every fuzz binary: run the reader with the counting
//! allocator capped at the input's bound, and abort (a finding for AFL) on
//! a panic, an allocation past the bound, or a refused one.
#![deny(missing_docs)]

use nw_fuzz::Target;
use nw_fuzz::alloc::measure;
use nw_fuzz::harness::alloc_bound;

/// Runs `target` on `data`; returns normally only on `Ok` or a typed error.
pub fn check(target: Target, data: &[u8]) {
    let bound = alloc_bound(data);
    let (_result, stats) = measure(bound, || target.run(data));
    if stats.refused > 0 || stats.peak > bound {
        eprintln!("{}: allocation past the bound {bound} B: {stats:?}", target.name());
        std::process::abort();
    }
}
