//! `cargo xtask bench peak`: the measured single-precision FMA peak of one
//! core for each vector width the CPU has (AVX-512: 16 lanes, AVX2: 8), the
//! ceiling GEMM efficiency is quoted against.
//!
//! The loop keeps 12 independent accumulator chains (enough to cover the FMA
//! latency of 4 cycles on 2 ports, or 3 on 2) of `acc = acc * x + y`, all in
//! registers, and counts 2 FLOPs per lane per FMA. Median of 9 repeats of
//! about 50 ms each, on the calling thread.

use anyhow::Result;

use super::{machine, median};

/// Options of `bench peak`.
#[derive(clap::Args)]
pub struct Args {}

/// FMA chains kept in flight.
const CHAINS: usize = 12;

/// A vector width to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// 512-bit zmm FMAs (AVX-512F).
    Avx512,
    /// 256-bit ymm FMAs (AVX2 + FMA).
    Avx2,
}

impl Width {
    /// Whether this CPU has the instructions.
    pub fn is_available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Width::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Width::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = self;
            false
        }
    }

    fn lanes(self) -> usize {
        match self {
            Width::Avx512 => 16,
            Width::Avx2 => 8,
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod fma {
    use std::arch::x86_64::*;

    use super::CHAINS;

    /// `iters` rounds of CHAINS zmm FMAs; returns a value that depends on all.
    ///
    /// # Safety
    /// The CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn zmm(iters: u64) -> f32 {
        let x = _mm512_set1_ps(0.999_999);
        let y = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm512_fmadd_ps(*a, x, y);
            }
        }
        let mut s = _mm512_setzero_ps();
        for a in acc {
            s = _mm512_add_ps(s, a);
        }
        _mm512_reduce_add_ps(s)
    }

    /// `iters` rounds of CHAINS ymm FMAs; returns a value that depends on all.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn ymm(iters: u64) -> f32 {
        let x = _mm256_set1_ps(0.999_999);
        let y = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = _mm256_fmadd_ps(*a, x, y);
            }
        }
        let mut s = _mm256_setzero_ps();
        for a in acc {
            s = _mm256_add_ps(s, a);
        }
        let mut out = [0.0f32; 8];
        // SAFETY: `out` holds 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }
}

/// Seconds for `iters` rounds at `width` (which must be available), by the
/// wall clock or, with `cpu`, by the calling thread's CPU time.
fn time(width: Width, iters: u64, cpu: bool) -> f64 {
    let t0 = std::time::Instant::now();
    let c0 = if cpu { thread_cpu_seconds() } else { 0.0 };
    #[cfg(target_arch = "x86_64")]
    {
        assert!(width.is_available());
        // SAFETY: the feature was just checked.
        let v = unsafe {
            match width {
                Width::Avx512 => fma::zmm(iters),
                Width::Avx2 => fma::ymm(iters),
            }
        };
        std::hint::black_box(v);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (width, iters);
    if cpu { thread_cpu_seconds() - c0 } else { t0.elapsed().as_secs_f64() }
}

/// The measured single-core FMA peak at `width` in GFLOP/s, or `None` when
/// the CPU lacks the instructions.
pub fn peak_gflops(width: Width) -> Option<f64> {
    peak_with(width, false)
}

/// [`peak_gflops`] timed by the calling thread's CPU time (what
/// `bench gemm --cpu-time` compares against): on a loaded machine, the rate
/// of the core while this thread holds it.
pub fn peak_gflops_cpu(width: Width) -> Option<f64> {
    peak_with(width, true)
}

fn peak_with(width: Width, cpu: bool) -> Option<f64> {
    if !width.is_available() {
        return None;
    }
    let mut iters = 1u64 << 16;
    while time(width, iters, cpu) < 0.05 {
        iters *= 2;
    }
    let mut samples: Vec<f64> = (0..9).map(|_| time(width, iters, cpu)).collect();
    let secs = median(&mut samples);
    Some((iters * CHAINS as u64 * width.lanes() as u64 * 2) as f64 / secs / 1e9)
}

/// Seconds of CPU time the calling thread has used
/// (`CLOCK_THREAD_CPUTIME_ID`), or wall-clock seconds off Linux.
pub fn thread_cpu_seconds() -> f64 {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct Timespec {
            sec: i64,
            nsec: i64,
        }
        unsafe extern "C" {
            fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
        }
        const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
        let mut ts = Timespec { sec: 0, nsec: 0 };
        // SAFETY: `ts` is a valid timespec to write; the clock id is Linux's.
        let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        ts.sec as f64 + ts.nsec as f64 * 1e-9
    }
    #[cfg(not(target_os = "linux"))]
    {
        use std::sync::OnceLock;
        static T0: OnceLock<std::time::Instant> = OnceLock::new();
        T0.get_or_init(std::time::Instant::now).elapsed().as_secs_f64()
    }
}

/// One line naming each measured peak, e.g. `AVX-512 130.2, AVX2 65.3 GFLOP/s per core`.
pub fn summary() -> String {
    let parts: Vec<String> = [(Width::Avx512, "AVX-512"), (Width::Avx2, "AVX2")]
        .into_iter()
        .filter_map(|(w, name)| peak_gflops(w).map(|g| format!("{name} {g:.1}")))
        .collect();
    if parts.is_empty() {
        "no AVX2/AVX-512 FMA".into()
    } else {
        format!("{} GFLOP/s per core", parts.join(", "))
    }
}

/// Median microseconds to read a hot `bytes`-byte buffer once on the
/// calling thread (16 independent sums, so the loads, not the adds, limit
/// it): the floor of any kernel that must stream that many bytes per call,
/// such as the weights of a layer at batch 1.
pub fn stream_us(bytes: usize) -> f64 {
    let buf = vec![1.0f32; bytes / 4];
    let pass = || {
        let mut acc = [0.0f32; 16];
        for c in buf.chunks_exact(16) {
            for l in 0..16 {
                acc[l] += c[l];
            }
        }
        std::hint::black_box(acc);
    };
    pass();
    let mut samples: Vec<f64> = (0..51)
        .map(|_| {
            let t0 = std::time::Instant::now();
            pass();
            t0.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    median(&mut samples)
}

pub fn run(_args: Args) -> Result<()> {
    println!("# FMA peak | {}", machine());
    println!("{}", summary());
    let cpu: Vec<String> = [(Width::Avx512, "AVX-512"), (Width::Avx2, "AVX2")]
        .into_iter()
        .filter_map(|(w, name)| peak_gflops_cpu(w).map(|g| format!("{name} {g:.1}")))
        .collect();
    println!("by thread CPU time (the core's rate while this thread holds it): {} GFLOP/s", cpu.join(", "));
    for (bytes, what) in
        [(256 << 10, "256 KiB"), (1 << 20, "1 MiB"), (2_140_000, "2.14 MB (784-512-256-10 MLP weights)")]
    {
        let us = stream_us(bytes);
        println!("read {what} once (hot): {us:.1} us, {:.1} GB/s", bytes as f64 / us / 1e3);
    }
    Ok(())
}
