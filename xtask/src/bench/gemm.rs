//! `cargo xtask bench gemm`: nw's GEMM in GFLOP/s on the cases of
//! `nw_benches::gemm` (square 64..2048, the MLP forward and backward
//! products with transposed operands as strides), at 1 and 2 threads, and
//! with `--torch PYTHON` `torch.matmul` on the same shapes and views, timed
//! alternately in the same run.

use std::path::PathBuf;

use anyhow::{Context, Result};
use nw_benches::gemm::{GemmBuffers, cases};
use nw_tensor::gemm::Kernel;

use super::peak::{self, Width, thread_cpu_seconds};
use super::torch::Torch;
use super::{Timer, alternate, calibrate, machine_and_torch, time_iters};

/// Options of `bench gemm`.
#[derive(clap::Args)]
pub struct Args {
    /// Run only this thread count (default: 1 and 2).
    #[arg(long)]
    threads: Option<usize>,
    /// A Python with PyTorch: also time torch.matmul and print nw/torch.
    #[arg(long, value_name = "PYTHON")]
    torch: Option<PathBuf>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Only cases whose name contains this (e.g. `fc1`, `512`).
    #[arg(long)]
    only: Option<String>,
    /// Force nw's micro-kernel: avx512, avx2 or scalar (default: the best
    /// this CPU supports).
    #[arg(long, value_parser = parse_kernel)]
    kernel: Option<Kernel>,
    /// Time nw alone by the CPU time of its thread, not wall time (steadier
    /// on a loaded machine: time the thread spends descheduled does not
    /// count, though other processes' cache traffic still does). Needs
    /// `--threads 1`; no torch.
    #[arg(long, conflicts_with = "torch")]
    cpu_time: bool,
}

fn parse_kernel(s: &str) -> Result<Kernel, String> {
    let k = match s.to_ascii_lowercase().as_str() {
        "avx512" => Kernel::Avx512,
        "avx2" => Kernel::Avx2,
        "scalar" => Kernel::Scalar,
        _ => return Err(format!("unknown kernel `{s}` (avx512, avx2, scalar)")),
    };
    if !k.is_available() {
        return Err(format!("this CPU cannot run the {k:?} kernel"));
    }
    Ok(k)
}

/// One measured row.
struct Row {
    nw: f64,
    torch: Option<f64>,
}

pub fn run(args: Args) -> Result<()> {
    let threads = match args.threads {
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(t) => vec![t],
        None => vec![1, 2],
    };
    if args.cpu_time && threads != [1] {
        anyhow::bail!("--cpu-time measures one thread: add --threads 1");
    }
    let kernel = args.kernel.unwrap_or_else(Kernel::detect);
    let mut torch = args.torch.as_deref().map(Torch::start).transpose()?;
    let header = format!("# nw GEMM ({:?} kernel) | {}", kernel, machine_and_torch(torch.as_mut())?);
    // The measured FMA peak of one core at the kernel's vector width: the
    // "% peak" column is nw's rate over `threads x` that.
    let width = match kernel {
        Kernel::Avx512 => Some(Width::Avx512),
        Kernel::Avx2 => Some(Width::Avx2),
        Kernel::Scalar => None,
    };
    let peak =
        width.and_then(|w| if args.cpu_time { peak::peak_gflops_cpu(w) } else { peak::peak_gflops(w) });
    let peak_line = format!(
        "# FMA peak: {} | this kernel: {}",
        peak::summary(),
        peak.map_or("-".into(), |p| format!(
            "{p:.1} GFLOP/s per core{}",
            if args.cpu_time { " (by thread CPU time, as the nw column)" } else { "" }
        ))
    );
    if args.json {
        eprintln!("{header}");
        eprintln!("{peak_line}");
    } else {
        println!("{header}");
        println!("{peak_line}");
        println!(
            "{:<8} {:<12} {:>16} {:>6} {:>3} {:>11} {:>7} {:>13} {:>9}",
            "case",
            "product",
            "m x k x n",
            "layout",
            "thr",
            "nw GFLOP/s",
            "% peak",
            "torch GFLOP/s",
            "nw/torch"
        );
    }
    for &t in &threads {
        let pool =
            rayon::ThreadPoolBuilder::new().num_threads(t).build().context("building the rayon pool")?;
        if let Some(torch) = torch.as_mut() {
            torch.set_threads(t)?;
        }
        for case in cases() {
            if args.only.as_ref().is_some_and(|f| !case.name.contains(f.as_str())) {
                continue;
            }
            let mut bufs = GemmBuffers::new(&case);
            let cpu_time = args.cpu_time;
            let mut nw_timer = |iters: u64| -> Result<f64> {
                Ok(pool.install(|| {
                    if cpu_time {
                        let t0 = thread_cpu_seconds();
                        for _ in 0..iters {
                            bufs.run_with(kernel);
                        }
                        thread_cpu_seconds() - t0
                    } else {
                        time_iters(iters, || bufs.run_with(kernel))
                    }
                }))
            };
            let row = match torch.as_mut() {
                None => {
                    let n = calibrate(&mut nw_timer)?;
                    let per = alternate(&mut [&mut nw_timer as &mut Timer<'_>], &[n])?;
                    Row { nw: case.flops() / per[0] / 1e9, torch: None }
                }
                Some(torch) => {
                    torch.request(&format!(
                        "gemm {} {} {} {} {}",
                        case.m,
                        case.k,
                        case.n,
                        u8::from(case.ta),
                        u8::from(case.tb)
                    ))?;
                    let mut torch_timer = |iters: u64| torch.time(iters);
                    let n_nw = calibrate(&mut nw_timer)?;
                    let n_torch = calibrate(&mut torch_timer)?;
                    let per = alternate(
                        &mut [&mut nw_timer as &mut Timer<'_>, &mut torch_timer],
                        &[n_nw, n_torch],
                    )?;
                    Row { nw: case.flops() / per[0] / 1e9, torch: Some(case.flops() / per[1] / 1e9) }
                }
            };
            let ratio = row.torch.map(|tg| row.nw / tg);
            let of_peak = peak.map(|p| 100.0 * row.nw / (p * t as f64));
            if args.json {
                println!(
                    "{{\"case\":\"{}\",\"kernel\":\"{kernel:?}\",\"layout\":\"{}\",\"m\":{},\"n\":{},\"k\":{},\"threads\":{},\"nw_gflops\":{:.2},\"peak_pct\":{},\"torch_gflops\":{},\"ratio\":{}}}",
                    case.name,
                    case.layout(),
                    case.m,
                    case.n,
                    case.k,
                    t,
                    row.nw,
                    of_peak.map_or("null".into(), |x| format!("{x:.1}")),
                    row.torch.map_or("null".into(), |x| format!("{x:.2}")),
                    ratio.map_or("null".into(), |x| format!("{x:.3}")),
                );
            } else {
                println!(
                    "{:<8} {:<12} {:>16} {:>6} {:>3} {:>11.1} {:>7} {:>13} {:>9}",
                    case.name,
                    case.what,
                    format!("{}x{}x{}", case.m, case.k, case.n),
                    case.layout(),
                    t,
                    row.nw,
                    of_peak.map_or("-".into(), |x| format!("{x:.0}%")),
                    row.torch.map_or("-".into(), |x| format!("{x:.1}")),
                    ratio.map_or("-".into(), |x| format!("{x:.2}")),
                );
            }
        }
    }
    Ok(())
}
