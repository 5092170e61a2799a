//! `cargo xtask bench optim`: one Adam step and one SGD-momentum step of
//! nw-optim over a 10-million-parameter model (tensors 4000x1000, 4000x1000,
//! 2000x1000) at 1 and 2 threads, and with `--torch PYTHON` torch.optim's
//! fused and foreach implementations on the same model, all timed
//! alternately in one run (medians of interleaved repeats).
//!
//! Also two bandwidth references, timed in the same rotation: memcpy of a
//! 256 MiB buffer (counted as read + write), and an in-place scale of it
//! (read and write of the same cache lines, as an optimizer's θ, m, v; a
//! memcpy's destination writes also cost a read-for-ownership, so it is the
//! lower of the two). nw's effective GB/s counts 28 bytes per parameter for
//! Adam (reads θ, g, m, v; writes θ, m, v) and 20 for SGD with momentum
//! (reads θ, g, b; writes θ, b).
//!
//! Then the matrix rules (`optim_matrix.rs`): Adafactor and Muon over ten
//! 1024x1024 matrices. `--rules elementwise|matrix` runs one part only.
//! Without `--torch`, `/tmp/torch/bin/python` is used when it exists; the
//! header says when no PyTorch is there to compare with.

use std::cell::RefCell;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use nw_autograd::{Grads, Param};
use nw_optim::{Adam, Optimizer, Sgd};
use nw_tensor::{Rng, Tensor};
use rayon::prelude::*;

use super::torch::Torch;
use super::{Timer, alternate, calibrate, machine_and_torch, time_iters};

/// Options of `bench optim`.
#[derive(clap::Args)]
pub struct Args {
    /// Run only this thread count (default: 1 and 2).
    #[arg(long)]
    threads: Option<usize>,
    /// A Python with PyTorch: also time torch.optim (fused=True and foreach=True).
    #[arg(long, value_name = "PYTHON")]
    torch: Option<PathBuf>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Number of parameters (default 10 million).
    #[arg(long, default_value_t = 10_000_000)]
    params: usize,
    /// Which rows: `all` (default), `elementwise` (Adam, SGD) or `matrix` (Adafactor, Muon).
    #[arg(long, value_enum, default_value_t = Rules::All)]
    rules: Rules,
    /// Matrices of the Adafactor and Muon rows (default 10).
    #[arg(long, default_value_t = 10)]
    matrices: usize,
    /// Side of those square matrices (default 1024).
    #[arg(long, default_value_t = 1024)]
    size: usize,
}

/// The parts of `bench optim`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Rules {
    /// Both parts.
    All,
    /// Adam and SGD over the 10M-parameter model.
    Elementwise,
    /// Adafactor and Muon over square matrices.
    Matrix,
}

/// The PyTorch to compare with: `--torch`, else `/tmp/torch/bin/python` when present.
fn torch_python(given: Option<PathBuf>) -> Option<PathBuf> {
    given.or_else(|| {
        let default = PathBuf::from("/tmp/torch/bin/python");
        default.exists().then_some(default)
    })
}

/// The model's tensor shapes: 40%, 40%, 20% of the parameters.
fn shapes(n: usize) -> Vec<Vec<usize>> {
    if n == 10_000_000 {
        vec![vec![4000, 1000], vec![4000, 1000], vec![2000, 1000]]
    } else {
        let a = n * 2 / 5;
        vec![vec![a], vec![a], vec![n - 2 * a]]
    }
}

/// Seeded parameters and gradients (std 0.01) of the benchmark model.
fn model(n: usize, seed: u64) -> (Vec<Param>, Grads) {
    let mut rng = Rng::new(seed);
    let ps: Vec<Param> = shapes(n).iter().map(|s| Param::new(Tensor::randn(s, 0.0, 1.0, &mut rng))).collect();
    let mut g = Grads::new();
    for p in &ps {
        g.insert(p, Tensor::randn(&p.shape(), 0.0, 0.01, &mut rng));
    }
    (ps, g)
}

/// A 256 MiB source and destination for the bandwidth references.
struct Buffers {
    src: Vec<f32>,
    dst: Vec<f32>,
}

impl Buffers {
    const LEN: usize = 64 << 20;

    fn new() -> Self {
        Buffers { src: vec![1.0; Self::LEN], dst: vec![0.0; Self::LEN] }
    }

    /// memcpy, split over the current rayon pool.
    fn copy(&mut self) {
        let chunk = Self::LEN.div_ceil(rayon::current_num_threads());
        self.dst
            .par_chunks_mut(chunk)
            .zip(self.src.par_chunks(chunk))
            .for_each(|(d, s)| d.copy_from_slice(s));
    }

    /// `x ← 1.0000001 x` in place, split over the current rayon pool.
    fn scale(&mut self) {
        let chunk = Self::LEN.div_ceil(rayon::current_num_threads());
        self.dst.par_chunks_mut(chunk).for_each(|d| d.iter_mut().for_each(|x| *x *= 1.000_000_1));
    }

    /// GB/s of one pass taking `secs`, counting the read and the write.
    fn gbps(secs: f64) -> f64 {
        (2 * Self::LEN * 4) as f64 / secs / 1e9
    }
}

/// Medians (seconds per iteration) of nw, torch fused, torch foreach and a
/// bandwidth reference, timed alternately.
struct Medians {
    nw: f64,
    torch: Option<(f64, f64)>,
    reference: f64,
}

/// Calibrates and alternates `[nw, torch fused, torch foreach, reference]`
/// (the torch pair only with a worker). The worker keeps one current op, so
/// each torch timer first selects its variant (tensors cached by the worker;
/// selecting runs one untimed step), then times it.
fn measure(
    kind: &str,
    n: usize,
    nw: &mut Timer<'_>,
    reference: &mut Timer<'_>,
    torch: Option<&mut Torch>,
) -> Result<Medians> {
    match torch {
        None => {
            let iters = [calibrate(nw)?, calibrate(reference)?];
            let per = alternate(&mut [nw, reference], &iters)?;
            Ok(Medians { nw: per[0], torch: None, reference: per[1] })
        }
        Some(torch) => {
            let cell = RefCell::new(torch);
            let variant = |name: &'static str| {
                let cell = &cell;
                move |iters: u64| -> Result<f64> {
                    let mut t = cell.borrow_mut();
                    t.request(&format!("optim {kind}_{name} {n}"))?;
                    t.time(iters)
                }
            };
            let (mut fused, mut foreach) = (variant("fused"), variant("foreach"));
            let iters =
                [calibrate(nw)?, calibrate(&mut fused)?, calibrate(&mut foreach)?, calibrate(reference)?];
            let per = alternate(&mut [nw, &mut fused, &mut foreach, reference], &iters)?;
            Ok(Medians { nw: per[0], torch: Some((per[1], per[2])), reference: per[3] })
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let threads = match args.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(t) => vec![t],
        None => vec![1, 2],
    };
    let n = args.params;
    if n < 5 {
        bail!("--params must be at least 5");
    }
    let python = torch_python(args.torch.clone());
    let mut torch = python.as_deref().map(Torch::start).transpose()?;
    let absent = if torch.is_none() {
        " | PyTorch absent (no --torch, no /tmp/torch/bin/python): nw only"
    } else {
        ""
    };
    let header = format!(
        "# nw-optim step, {}, loops for {:?}, GEMM kernel {:?} | {}{absent}",
        if args.rules == Rules::Matrix { "matrix rules only".to_string() } else { format!("{n} parameters") },
        nw_optim::kernel::isa(),
        nw_tensor::gemm::isa::active(),
        machine_and_torch(torch.as_mut())?
    );
    if args.rules == Rules::Matrix {
        if args.json {
            eprintln!("{header}")
        } else {
            println!("{header}")
        }
        return super::optim_matrix::run(&threads, args.matrices, args.size, torch.as_mut(), args.json);
    }
    if args.json {
        eprintln!("{header}");
    } else {
        println!("{header}");
        println!(
            "{:<18} {:>3} {:>8} {:>8} {:>7} {:>9} {:>14} {:>11} {:>6} {:>9}",
            "task",
            "thr",
            "nw ms",
            "nw GB/s",
            "% copy",
            "% in-pl.",
            "torch fused ms",
            "foreach ms",
            "ratio",
            "r.foreach"
        );
    }

    let (adam_ps, adam_g) = model(n, 1);
    let (sgd_ps, sgd_g) = model(n, 2);
    let mut adam = Adam { lr: 1e-3, ..Adam::default() }.build(adam_ps)?;
    let mut sgd = Sgd { lr: 1e-3, momentum: 0.9, ..Sgd::default() }.build(sgd_ps)?;
    let mut bufs = Buffers::new();

    for &t in &threads {
        let pool =
            rayon::ThreadPoolBuilder::new().num_threads(t).build().context("building the rayon pool")?;
        if let Some(torch) = torch.as_mut() {
            torch.set_threads(t)?;
        }
        let step_timer = |opt: &mut dyn Optimizer, grads: &Grads, iters: u64| -> Result<f64> {
            pool.install(|| {
                let mut result = Ok(());
                let secs = time_iters(iters, || {
                    if result.is_ok() {
                        result = opt.step(grads);
                    }
                });
                result.map(|()| secs).map_err(anyhow::Error::from)
            })
        };
        // Adam alternates with the memcpy reference, SGD with the in-place one.
        let a = measure(
            "adam",
            n,
            &mut |iters| step_timer(&mut adam, &adam_g, iters),
            &mut |iters| Ok(pool.install(|| time_iters(iters, || bufs.copy()))),
            torch.as_mut(),
        )?;
        let s = measure(
            "sgd",
            n,
            &mut |iters| step_timer(&mut sgd, &sgd_g, iters),
            &mut |iters| Ok(pool.install(|| time_iters(iters, || bufs.scale()))),
            torch.as_mut(),
        )?;
        let (copy_gbps, inplace_gbps) = (Buffers::gbps(a.reference), Buffers::gbps(s.reference));
        for (task, bytes_per_param, m) in [("adam_step", 28, &a), ("sgd_momentum_step", 20, &s)] {
            let nw_ms = m.nw * 1e3;
            let gbps = (n * bytes_per_param) as f64 / m.nw / 1e9;
            let torch_ms = m.torch.map(|(f, e)| (f * 1e3, e * 1e3));
            if args.json {
                let num = |x: Option<f64>| x.map_or("null".to_string(), |x| format!("{x:.3}"));
                println!(
                    "{{\"task\":\"{task}\",\"params\":{n},\"threads\":{t},\"nw_ms\":{nw_ms:.3},\"torch_ms\":{},\"torch_foreach_ms\":{},\"ratio\":{},\"ratio_foreach\":{},\"nw_gbps\":{gbps:.2},\"bytes_per_param\":{bytes_per_param},\"copy_gbps\":{copy_gbps:.2},\"pct_of_copy\":{:.1},\"inplace_gbps\":{inplace_gbps:.2},\"pct_of_inplace\":{:.1},\"isa\":\"{:?}\"}}",
                    num(torch_ms.map(|x| x.0)),
                    num(torch_ms.map(|x| x.1)),
                    num(torch_ms.map(|x| x.0 / nw_ms)),
                    num(torch_ms.map(|x| x.1 / nw_ms)),
                    100.0 * gbps / copy_gbps,
                    100.0 * gbps / inplace_gbps,
                    nw_optim::kernel::isa(),
                );
            } else {
                let dash = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}"));
                println!(
                    "{task:<18} {t:>3} {nw_ms:>8.2} {gbps:>8.1} {:>6.0}% {:>8.0}% {:>14} {:>11} {:>6} {:>9}",
                    100.0 * gbps / copy_gbps,
                    100.0 * gbps / inplace_gbps,
                    dash(torch_ms.map(|x| x.0)),
                    dash(torch_ms.map(|x| x.1)),
                    dash(torch_ms.map(|x| x.0 / nw_ms)),
                    dash(torch_ms.map(|x| x.1 / nw_ms)),
                );
            }
        }
        if !args.json {
            println!(
                "{:<18} {t:>3} copy {copy_gbps:.1} GB/s, in-place {inplace_gbps:.1} GB/s (read + write)",
                "bandwidth"
            );
        }
    }
    if args.rules == Rules::All {
        super::optim_matrix::run(&threads, args.matrices, args.size, torch.as_mut(), args.json)?;
    }
    Ok(())
}
