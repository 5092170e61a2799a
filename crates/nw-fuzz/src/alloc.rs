//! [`CountingAlloc`]: a global allocator that measures, per thread, the
//! bytes a piece of code holds at its peak and its largest single request.
//!
//! A test binary installs it with
//! `#[global_allocator] static A: CountingAlloc = CountingAlloc;`, then
//! wraps the code to measure in [`measure`]. Counting is per thread (so
//! tests running in parallel do not see each other's allocations) and only
//! while [`measure`] runs; memory freed there that was allocated before is
//! ignored (the count never goes below zero). Inside [`allowing`], the
//! bytes held are counted net of an allowance (for a third-party parser
//! whose working memory is measured and granted separately).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting while [`measure`] runs on this thread.
pub struct CountingAlloc;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static CURRENT: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// Requests above this many bytes are refused (null) while measuring.
    static REFUSE_ABOVE: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Whether a request exceeded `REFUSE_ABOVE` or the peak exceeded it.
    static OVER: Cell<usize> = const { Cell::new(0) };
    /// Bytes not counted towards `PEAK` and `REFUSE_ABOVE` (see [`allowing`]).
    static ALLOWANCE: Cell<usize> = const { Cell::new(0) };
}

fn on() -> bool {
    ON.try_with(Cell::get).unwrap_or(false)
}

/// Counts a new block of `size` bytes; false when it must be refused.
fn grow(size: usize) -> bool {
    let cur = CURRENT.with(Cell::get).saturating_add(size);
    let net = cur.saturating_sub(ALLOWANCE.with(Cell::get));
    LARGEST.with(|l| l.set(l.get().max(size)));
    PEAK.with(|p| p.set(p.get().max(net)));
    let limit = REFUSE_ABOVE.with(Cell::get);
    if net > limit {
        OVER.with(|o| o.set(o.get().max(net)));
        return false;
    }
    CURRENT.with(|c| c.set(cur));
    true
}

fn shrink(size: usize) {
    CURRENT.with(|c| c.set(c.get().saturating_sub(size)));
}

// SAFETY: every call is forwarded to `System` with the same layout; the
// counters are const-initialised thread-locals without destructors, so
// touching them allocates nothing and cannot recurse.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if on() && !grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if on() && !grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if on() {
            shrink(layout.size());
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if on() {
            // old and new blocks may both exist during the copy
            if !grow(new_size) {
                return std::ptr::null_mut();
            }
            shrink(layout.size());
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// What [`measure`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllocStats {
    /// The most bytes held at once (counting only blocks allocated inside;
    /// inside [`allowing`], less its allowance).
    pub peak: usize,
    /// The largest single request.
    pub largest: usize,
    /// When a request would have taken the held bytes past `refuse_above`:
    /// the total it would have reached (0 when none did). Such a request
    /// was answered with null: a fallible allocation sees an error, an
    /// infallible one aborts the process (as it would in a real run).
    pub refused: usize,
}

/// Runs `f` on this thread with counting on. Requests that would take the
/// bytes held past `refuse_above` are refused (see [`AllocStats::refused`]);
/// pass `usize::MAX` to refuse nothing. Counts are exact only when
/// [`CountingAlloc`] is the global allocator; otherwise they read zero.
pub fn measure<R>(refuse_above: usize, f: impl FnOnce() -> R) -> (R, AllocStats) {
    CURRENT.with(|c| c.set(0));
    PEAK.with(|c| c.set(0));
    LARGEST.with(|c| c.set(0));
    OVER.with(|c| c.set(0));
    ALLOWANCE.with(|c| c.set(0));
    REFUSE_ABOVE.with(|c| c.set(refuse_above));
    /// Turns counting off again, even if `f` unwinds.
    struct Off;
    impl Drop for Off {
        fn drop(&mut self) {
            ON.with(|c| c.set(false));
        }
    }
    ON.with(|c| c.set(true));
    let off = Off;
    let r = f();
    drop(off);
    let stats = AllocStats {
        peak: PEAK.with(Cell::get),
        largest: LARGEST.with(Cell::get),
        refused: OVER.with(Cell::get),
    };
    (r, stats)
}

/// Runs `f` with `extra` more bytes allowed: while it runs, the bytes held
/// count towards [`AllocStats::peak`] and the refusal limit of [`measure`]
/// less `extra` (allowances nest and add up). Once `f` returns (or
/// unwinds), what it still holds counts in full again. Outside [`measure`]
/// this only runs `f`.
///
/// For a step whose working memory is a measured property of a library
/// rather than of nw, granted on top of the bound everything else is held
/// to: `nw_fuzz::harness::toml_allowance` for the `toml` crate's parser.
pub fn allowing<R>(extra: usize, f: impl FnOnce() -> R) -> R {
    /// Takes the allowance back, even if `f` unwinds, and counts what `f`
    /// left held in full from then on (in the peak at once: the next
    /// allocation may be a while).
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            ALLOWANCE.with(|a| a.set(self.0));
            if on() {
                let net = CURRENT.with(Cell::get).saturating_sub(self.0);
                PEAK.with(|p| p.set(p.get().max(net)));
            }
        }
    }
    let before = ALLOWANCE.with(Cell::get);
    let _restore = Restore(before);
    ALLOWANCE.with(|a| a.set(before.saturating_add(extra)));
    f()
}
