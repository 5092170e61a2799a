//! Allocator settings for training processes: [`tune_for_training`].
//!
//! A training step allocates the same large buffers every time (activations,
//! gradients, the saved gates of a recurrent layer: a few MiB each) and frees
//! them before the next step. glibc's `malloc` serves blocks above its mmap
//! threshold (128 KiB at start, raised on the fly up to 32 MiB) with a fresh
//! `mmap` and gives them back with `munmap`, and returns free memory at the
//! top of a heap to the kernel (`madvise`/`brk`) once it exceeds the trim
//! threshold. Either way the next step touches fresh pages: one page fault
//! and a kernel-side zeroing per 4 KiB, which measured 20-25% of an LSTM
//! training step (docs/BENCHMARKS.md, "LSTM training step").
//!
//! A third way back to the kernel bypasses both thresholds: a thread other
//! than the main one (every rayon worker, and training runs inside a rayon
//! pool) allocates from its own arena, made of 64 MiB heaps that glibc grows
//! with `mprotect` and unmaps as soon as one is entirely free. A training
//! step that frees everything it allocated empties its heap, so the next
//! step starts on fresh pages again: 816,807 page faults in 200 CNN steps
//! at one thread, 738,392 at two, where the read-then-write of a zero page
//! (max-pool's scatter into a fresh gradient) also costs a TLB shootdown
//! of the other CPU; about 37% of the step at two threads (perf,
//! docs/BENCHMARKS.md "Page faults in rayon threads").
//!
//! [`tune_for_training`] fixes the thresholds and the arena count once at
//! start-up, as the environment variables `MALLOC_MMAP_THRESHOLD_=33554432`,
//! `MALLOC_TRIM_THRESHOLD_=1073741824` and `MALLOC_ARENA_MAX=1` would: blocks
//! under 32 MiB come from the one main heap, whichever thread asks, and
//! freed memory stays mapped for the next step (small blocks still come
//! from each thread's own cache without a lock). The price is that the
//! resident set stays at its high-water mark (which the peak RSS already
//! counts). It changes no result, only where memory comes from.
//! The `nw` binary and `cargo xtask` call it first thing; a library user
//! may call it too (it is process-wide, so a library never does on its own).

/// Blocks under this many bytes are served from the heap (glibc's maximum
/// for the dynamic threshold on 64-bit targets).
pub const MMAP_THRESHOLD: usize = 32 << 20;

/// Free memory at the top of a heap is kept up to this many bytes.
pub const TRIM_THRESHOLD: usize = 1 << 30;

/// Arenas glibc may create: one, so that no thread's allocations live in a
/// secondary heap that is unmapped whenever it empties.
pub const ARENA_MAX: i32 = 1;

/// What [`tune_for_training`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MallocTuning {
    /// Both thresholds were set.
    Applied,
    /// `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_` or `MALLOC_ARENA_MAX` is set in the
    /// environment: the user's choice is left alone.
    LeftToEnvironment,
    /// Not glibc (or `mallopt` refused): nothing changed.
    Unsupported,
}

/// Sets glibc's mmap and trim thresholds for a training process (see the
/// [module docs](self)); call it once at start-up, before other threads
/// allocate. A no-op on other allocators and platforms.
///
/// ```
/// use nw_tensor::malloc::{MallocTuning, tune_for_training};
/// let t = tune_for_training();
/// assert!(matches!(t, MallocTuning::Applied | MallocTuning::LeftToEnvironment | MallocTuning::Unsupported));
/// ```
pub fn tune_for_training() -> MallocTuning {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
        || std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_some()
        || std::env::var_os("MALLOC_ARENA_MAX").is_some()
    {
        return MallocTuning::LeftToEnvironment;
    }
    apply()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> MallocTuning {
    let mmap = libc::c_int::try_from(MMAP_THRESHOLD).expect("fits in c_int");
    let trim = libc::c_int::try_from(TRIM_THRESHOLD).expect("fits in c_int");
    // SAFETY: mallopt only changes allocator parameters (under the
    // allocator's own lock); both values are in glibc's accepted ranges.
    let ok = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, mmap) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, trim) == 1
            && libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX) == 1
    };
    if ok { MallocTuning::Applied } else { MallocTuning::Unsupported }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> MallocTuning {
    MallocTuning::Unsupported
}

/// Hands memory that is free but kept by the allocator back to the operating
/// system (glibc's `malloc_trim(0)`): the counterpart of
/// [`tune_for_training`]'s high trim threshold, for the end of a phase whose
/// buffers will not be needed again (a run's final evaluation and plots).
/// Changes no result; whether anything was released. A no-op elsewhere.
///
/// ```
/// let _released: bool = nw_tensor::malloc::release_free_memory();
/// ```
pub fn release_free_memory() -> bool {
    trim()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() -> bool {
    // SAFETY: malloc_trim only returns free pages to the system, under the
    // allocator's own lock.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}
