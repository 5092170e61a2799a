//! `cargo xtask bench lstm`: training steps of an LSTM classifier over image
//! rows, as `nw train --model lstm` builds it: each 28x28 image is a sequence
//! of 28 rows of 28 features, `LSTM(28 -> 128)` (batch-first, one layer), the
//! last step's hidden state, `Linear(128 -> 10)`; mean cross-entropy, Adam
//! (lr 1e-3), batch 64. With `--torch PYTHON`, torch's `nn.LSTM` + `nn.Linear`
//! step (`benches/torch/lstm.py`) is timed alternately in the same run
//! (medians of interleaved repeats), at 1 and 2 threads. Reports milliseconds
//! per step and samples per second.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use nw_autograd::Var;
use nw_nn::Module;
use nw_nn::loss::{Reduction, cross_entropy};
use nw_optim::{Adam, Optimizer};
use nw_tensor::{Rng, Tensor};
use nw_train::ModelSpec;
use nw_train::models::build_model;

use super::torch::Torch;
use super::{Timer, alternate, calibrate, loadavg, machine_and_torch, time_result};

/// Options of `bench lstm`.
#[derive(clap::Args)]
pub struct Args {
    /// Run only this thread count (default: 1 and 2).
    #[arg(long)]
    threads: Option<usize>,
    /// A Python with PyTorch: also time torch's step.
    #[arg(long, value_name = "PYTHON")]
    torch: Option<PathBuf>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Only run this many steps, untimed, on the first thread count (for
    /// `perf record` or `valgrind --tool=callgrind`: a fixed amount of work).
    #[arg(long, value_name = "N")]
    profile_steps: Option<u64>,
}

const BATCH: usize = 64;
const ROWS: usize = 28;
const HIDDEN: usize = 128;

/// The model, its optimizer and a fixed batch.
struct Step {
    model: nw_nn::Sequential,
    opt: Box<dyn Optimizer>,
    x: Tensor,
    labels: Vec<usize>,
}

impl Step {
    fn new() -> Result<Step> {
        let spec = ModelSpec::Lstm { hidden: HIDDEN, layers: 1 };
        let built = build_model(&spec, &[1, ROWS, ROWS], 10, &mut Rng::new(0))?;
        let opt = Box::new(Adam { lr: 1e-3, ..Adam::default() }.build(built.model.parameters())?);
        let mut rng = Rng::new(1);
        let x = Tensor::rand_uniform(&[BATCH, 1, ROWS, ROWS], 0.0, 1.0, &mut rng);
        Ok(Step { model: built.model, opt, x, labels: (0..BATCH).map(|i| i % 10).collect() })
    }

    /// Forward, mean cross-entropy, backward, optimizer step.
    fn run(&mut self) -> Result<()> {
        let out = self.model.forward(&Var::constant(self.x.clone()))?;
        let loss = cross_entropy(&out, &self.labels, 0.0, Reduction::Mean)?;
        let grads = loss.backward()?;
        drop((loss, out));
        self.opt.step(&grads)?;
        Ok(())
    }
}

pub fn run(args: Args) -> Result<()> {
    let threads = match args.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(t) => vec![t],
        None => vec![1, 2],
    };
    if let Some(n) = args.profile_steps {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads[0])
            .build()
            .context("building the rayon pool")?;
        let mut step = Step::new()?;
        return pool.install(|| (0..n).try_for_each(|_| step.run()));
    }
    let mut torch = args.torch.as_deref().map(Torch::start).transpose()?;
    let header = format!(
        "# nw LSTM({ROWS}->{HIDDEN}) over {ROWS} rows + Linear({HIDDEN}->10), Adam step, batch {BATCH} | {}",
        machine_and_torch(torch.as_mut())?
    );
    if args.json {
        eprintln!("{header}");
    } else {
        println!("{header}");
        println!(
            "{:>3} {:>9} {:>11} {:>9} {:>14} {:>9}  load",
            "thr", "nw ms", "nw samp/s", "torch ms", "torch samp/s", "nw/torch"
        );
    }
    let mut step = Step::new()?;
    for &t in &threads {
        let pool =
            rayon::ThreadPoolBuilder::new().num_threads(t).build().context("building the rayon pool")?;
        if let Some(torch) = torch.as_mut() {
            torch.set_threads(t)?;
        }
        let mut nw = |iters: u64| pool.install(|| time_result(iters, || step.run()));
        let per = match torch.as_mut() {
            None => {
                let n = calibrate(&mut nw)?;
                alternate(&mut [&mut nw as &mut Timer<'_>], &[n])?
            }
            Some(torch) => {
                torch.request("lstm_step")?;
                let mut tt = |iters: u64| torch.time(iters);
                let iters = [calibrate(&mut nw)?, calibrate(&mut tt)?];
                alternate(&mut [&mut nw, &mut tt], &iters)?
            }
        };
        let nw_ms = per[0] * 1e3;
        let torch_ms = per.get(1).map(|s| s * 1e3);
        let rate = |ms: f64| BATCH as f64 / ms * 1e3;
        let load = loadavg();
        if args.json {
            let num = |x: Option<f64>, d: usize| x.map_or("null".into(), |x| format!("{x:.d$}"));
            println!(
                "{{\"task\":\"lstm_step\",\"shape\":\"{BATCH}x{ROWS}x{ROWS} LSTM {HIDDEN}\",\"threads\":{t},\"nw_ms\":{nw_ms:.3},\"nw_samples_per_s\":{:.0},\"torch_ms\":{},\"torch_samples_per_s\":{},\"ratio\":{},\"load\":\"{load}\"}}",
                rate(nw_ms),
                num(torch_ms, 3),
                num(torch_ms.map(rate), 0),
                num(torch_ms.map(|tm| nw_ms / tm), 3),
            );
        } else {
            let dash = |x: Option<f64>, d: usize| x.map_or("-".into(), |x| format!("{x:.d$}"));
            println!(
                "{t:>3} {nw_ms:>9.2} {:>11.0} {:>9} {:>14} {:>9}  {load}",
                rate(nw_ms),
                dash(torch_ms, 2),
                dash(torch_ms.map(rate), 0),
                dash(torch_ms.map(|tm| nw_ms / tm), 3),
            );
        }
    }
    Ok(())
}
