//! `cargo xtask bench conv`: nw's conv2d on input 64x32x28x28, 64 output
//! channels, 3x3 kernel, padding 1, with bias, with the default f32
//! accumulation: the forward pass (`conv2d`) and forward + backward
//! (`conv2d` then `conv2d_backward`: input, weight and bias gradients from a
//! fixed upstream gradient), and with `--torch PYTHON` `F.conv2d` and its
//! backward on the same shapes (oneDNN when torch has it), each pair timed
//! alternately in one run (medians of interleaved repeats), at 1 and 2
//! threads. GFLOP/s counts `2 N C_out H W C_in 9` per convolution and three
//! convolutions' worth for forward + backward.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use nw_tensor::conv::{Conv2dSpec, conv2d, conv2d_backward};
use nw_tensor::{Rng, Tensor};

use super::torch::Torch;
use super::{Timer, alternate, calibrate, loadavg, machine_and_torch, time_result};

/// Options of `bench conv`.
#[derive(clap::Args)]
pub struct Args {
    /// Run only this thread count (default: 1 and 2).
    #[arg(long)]
    threads: Option<usize>,
    /// A Python with PyTorch: also time F.conv2d and its backward.
    #[arg(long, value_name = "PYTHON")]
    torch: Option<PathBuf>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

const N: usize = 64;
const C_IN: usize = 32;
const C_OUT: usize = 64;
const HW: usize = 28;

/// Floating-point operations of one forward convolution.
fn forward_flops() -> f64 {
    2.0 * (N * C_OUT * HW * HW * C_IN * 9) as f64
}

struct Conv {
    x: Tensor,
    w: Tensor,
    b: Tensor,
    dy: Tensor,
    spec: Conv2dSpec,
}

impl Conv {
    fn new() -> Conv {
        let mut rng = Rng::new(0);
        Conv {
            x: Tensor::randn(&[N, C_IN, HW, HW], 0.0, 1.0, &mut rng),
            w: Tensor::randn(&[C_OUT, C_IN, 3, 3], 0.0, 0.1, &mut rng),
            b: Tensor::randn(&[C_OUT], 0.0, 0.1, &mut rng),
            dy: Tensor::randn(&[N, C_OUT, HW, HW], 0.0, 1.0, &mut rng),
            spec: Conv2dSpec { padding: (1, 1), ..Default::default() },
        }
    }

    fn forward(&self) -> Result<Tensor> {
        Ok(conv2d(&self.x, &self.w, Some(&self.b), &self.spec)?)
    }

    fn forward_backward(&self) -> Result<()> {
        let y = self.forward()?;
        std::hint::black_box(&y);
        let grads = conv2d_backward(&self.dy, &self.x, &self.w, true, &self.spec)?;
        std::hint::black_box(&grads);
        Ok(())
    }
}

pub fn run(args: Args) -> Result<()> {
    let threads = match args.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(t) => vec![t],
        None => vec![1, 2],
    };
    let mut torch = args.torch.as_deref().map(Torch::start).transpose()?;
    let conv = Conv::new();
    let header = format!(
        "# nw conv2d {N}x{C_IN}x{HW}x{HW} -> {C_OUT} 3x3 pad 1, {:?} accumulation | {}",
        conv.spec.accumulation,
        machine_and_torch(torch.as_mut())?
    );
    if args.json {
        eprintln!("{header}");
    } else {
        println!("{header}");
        println!(
            "{:<8} {:>3} {:>9} {:>10} {:>9} {:>13} {:>9}  load",
            "pass", "thr", "nw ms", "nw GFLOP/s", "torch ms", "torch GFLOP/s", "nw/torch"
        );
    }
    for &t in &threads {
        let pool =
            rayon::ThreadPoolBuilder::new().num_threads(t).build().context("building the rayon pool")?;
        if let Some(torch) = torch.as_mut() {
            torch.set_threads(t)?;
        }
        for (pass, op, flops) in
            [("fwd", "conv_fwd", forward_flops()), ("fwd+bwd", "conv_fwd_bwd", 3.0 * forward_flops())]
        {
            let mut nw = |iters: u64| {
                pool.install(|| {
                    time_result(iters, || {
                        if pass == "fwd" {
                            std::hint::black_box(conv.forward()?);
                            Ok(())
                        } else {
                            conv.forward_backward()
                        }
                    })
                })
            };
            let per = match torch.as_mut() {
                None => {
                    let n = calibrate(&mut nw)?;
                    alternate(&mut [&mut nw as &mut Timer<'_>], &[n])?
                }
                Some(torch) => {
                    torch.request(op)?;
                    let mut tt = |iters: u64| torch.time(iters);
                    let iters = [calibrate(&mut nw)?, calibrate(&mut tt)?];
                    alternate(&mut [&mut nw, &mut tt], &iters)?
                }
            };
            let nw_ms = per[0] * 1e3;
            let torch_ms = per.get(1).map(|s| s * 1e3);
            let gf = |ms: f64| flops / ms / 1e6;
            let load = loadavg();
            if args.json {
                let num = |x: Option<f64>, d: usize| x.map_or("null".into(), |x| format!("{x:.d$}"));
                println!(
                    "{{\"pass\":\"{pass}\",\"shape\":\"{N}x{C_IN}x{HW}x{HW}->{C_OUT} 3x3 pad 1\",\"accumulation\":\"{:?}\",\"threads\":{t},\"nw_ms\":{nw_ms:.3},\"nw_gflops\":{:.2},\"torch_ms\":{},\"torch_gflops\":{},\"ratio\":{},\"load\":\"{load}\"}}",
                    conv.spec.accumulation,
                    gf(nw_ms),
                    num(torch_ms, 3),
                    num(torch_ms.map(gf), 2),
                    num(torch_ms.map(|tm| nw_ms / tm), 3),
                );
            } else {
                let dash = |x: Option<f64>, d: usize| x.map_or("-".into(), |x| format!("{x:.d$}"));
                println!(
                    "{pass:<8} {t:>3} {nw_ms:>9.2} {:>10.1} {:>9} {:>13} {:>9}  {load}",
                    gf(nw_ms),
                    dash(torch_ms, 2),
                    dash(torch_ms.map(gf), 1),
                    dash(torch_ms.map(|tm| nw_ms / tm), 3),
                );
            }
        }
    }
    Ok(())
}
