//! `cargo xtask bench mlp`: what a fully connected network costs in nw
//! beyond its matrix products, and against PyTorch.
//!
//! - **layer**: forward and backward of `Linear(784 -> 512) + ReLU` at batch
//!   128 through nw-autograd (`x.linear(W, b).relu()`, `backward_with` a
//!   fixed upstream gradient; the input requires a gradient, so backward
//!   computes dX, dW and db), against the three GEMMs it needs alone on the
//!   same strided views into preallocated outputs (`Y = X W^T`, `dX = G W`,
//!   `dW = G^T X`) — the ratio is the autograd/elementwise overhead (target
//!   at most 1.15) — and against torch's same forward and backward.
//! - **step**: one training step of a 784-512-256-10 ReLU MLP at batch 128
//!   (forward through an nw-nn `Sequential`, mean cross-entropy, backward,
//!   optimizer step; Adam lr 1e-3 or SGD lr 0.01), the same through
//!   nw-train's `Trainer::train_step` (which adds finiteness checks and the
//!   weight monitor), and torch's step (`zero_grad(set_to_none=True)`,
//!   forward, `F.cross_entropy`, backward, `torch.optim` default CPU
//!   implementation).
//! - **memory**: after the timings, N more plain steps with the counting
//!   allocator: allocations and bytes allocated per step, and live bytes
//!   before and after the N steps.
//!
//! Each group is timed alternately with its references in one run (medians
//! of interleaved repeats), at 1 and 2 threads (a rayon pool and
//! `torch.set_num_threads` of the same size).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use nw_autograd::{Param, Var};
use nw_data::Targets;
use nw_nn::Module;
use nw_nn::loss::{Reduction, cross_entropy};
use nw_optim::{Adam, Optimizer, Sgd};
use nw_tensor::{Rng, Tensor};
use nw_train::models::{Activation, build_model};
use nw_train::{LossKind, ModelSpec, Trainer};

use super::torch::Torch;
use super::{Timer, alloc, alternate, calibrate, loadavg, machine_and_torch, time_result};

/// Options of `bench mlp`.
#[derive(clap::Args)]
pub struct Args {
    /// Run only this thread count (default: 1 and 2).
    #[arg(long)]
    threads: Option<usize>,
    /// A Python with PyTorch: also time torch's layer and step.
    #[arg(long, value_name = "PYTHON")]
    torch: Option<PathBuf>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// The optimizer of the training step: adam (lr 1e-3) or sgd (lr 0.01).
    #[arg(long, default_value = "adam", value_parser = ["adam", "sgd"])]
    optimizer: String,
    /// Steps of the memory check.
    #[arg(long, default_value_t = 200)]
    steps: usize,
}

const BATCH: usize = 128;

/// The layer benchmark's tensors: `Linear(784 -> 512)` with PyTorch's
/// default initialisation range, an input in [0, 1) and an upstream gradient.
struct Layer {
    w: Param,
    b: Param,
    x: Tensor,
    g: Tensor,
}

/// Preallocated outputs of the GEMM reference.
struct GemmOut {
    y: Tensor,
    dx: Tensor,
    dw: Tensor,
}

impl Layer {
    fn new() -> Layer {
        let mut rng = Rng::new(0);
        let bound = 1.0 / (784f32).sqrt();
        Layer {
            w: Param::new(Tensor::rand_uniform(&[512, 784], -bound, bound, &mut rng)),
            b: Param::new(Tensor::rand_uniform(&[512], -bound, bound, &mut rng)),
            x: Tensor::rand_uniform(&[BATCH, 784], 0.0, 1.0, &mut rng),
            g: Tensor::randn(&[BATCH, 512], 0.0, 1.0, &mut rng),
        }
    }

    /// `relu(x W^T + b)` and its backward through nw-autograd.
    fn autograd(&self) -> Result<()> {
        let x = Var::leaf(self.x.clone(), true);
        let y = x.linear(&Var::param(&self.w), Some(&Var::param(&self.b)))?.relu();
        let grads = y.backward_with(self.g.clone())?;
        std::hint::black_box(&grads);
        Ok(())
    }

    /// The three products alone into `out`: `Y = X W^T`, `dX = G W`, `dW = G^T X`.
    fn gemms(&self, out: &mut GemmOut) -> Result<()> {
        let w = self.w.value();
        out.y.gemm_acc(1.0, &self.x, &w.t()?, 0.0)?;
        out.dx.gemm_acc(1.0, &self.g, &w, 0.0)?;
        out.dw.gemm_acc(1.0, &self.g.t()?, &self.x, 0.0)?;
        std::hint::black_box(&*out);
        Ok(())
    }
}

impl GemmOut {
    fn new() -> GemmOut {
        GemmOut {
            y: Tensor::zeros(&[BATCH, 512]),
            dx: Tensor::zeros(&[BATCH, 784]),
            dw: Tensor::zeros(&[512, 784]),
        }
    }
}

/// A 784-512-256-10 ReLU MLP with its optimizer, on a fixed batch.
struct Step {
    model: nw_nn::Sequential,
    opt: Box<dyn Optimizer>,
    x: Tensor,
    labels: Vec<usize>,
}

fn mlp_spec() -> ModelSpec {
    ModelSpec::Mlp { hidden: vec![512, 256], activation: Activation::Relu, dropout: 0.0 }
}

fn optimizer(name: &str, params: Vec<Param>) -> Result<Box<dyn Optimizer>> {
    Ok(match name {
        "adam" => Box::new(Adam { lr: 1e-3, ..Adam::default() }.build(params)?),
        "sgd" => Box::new(Sgd { lr: 0.01, ..Sgd::default() }.build(params)?),
        other => bail!("unknown optimizer {other}"),
    })
}

fn batch() -> (Tensor, Vec<usize>) {
    let mut rng = Rng::new(1);
    (Tensor::rand_uniform(&[BATCH, 784], 0.0, 1.0, &mut rng), (0..BATCH).map(|i| i % 10).collect())
}

impl Step {
    fn new(opt: &str) -> Result<Step> {
        let built = build_model(&mlp_spec(), &[784], 10, &mut Rng::new(0))?;
        let opt = optimizer(opt, built.model.parameters())?;
        let (x, labels) = batch();
        Ok(Step { model: built.model, opt, x, labels })
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

/// The same step through nw-train's `Trainer`.
struct TrainerStep {
    trainer: Trainer,
    x: Tensor,
    y: Targets,
}

impl TrainerStep {
    fn new(opt: &str) -> Result<TrainerStep> {
        let built = build_model(&mlp_spec(), &[784], 10, &mut Rng::new(0))?;
        let opt = optimizer(opt, built.model.parameters())?;
        let trainer = Trainer::new(built.model, opt, LossKind::CrossEntropy { label_smoothing: 0.0 });
        let (x, labels) = batch();
        Ok(TrainerStep { trainer, x, y: Targets::classes(labels, 10)? })
    }

    fn run(&mut self) -> Result<()> {
        std::hint::black_box(self.trainer.train_step(&self.x, &self.y)?);
        Ok(())
    }
}

/// Calibrates every timer, then times them alternately; seconds per iteration.
fn measure(timers: &mut [&mut Timer<'_>]) -> Result<Vec<f64>> {
    let iters = timers.iter_mut().map(|t| calibrate(*t)).collect::<Result<Vec<_>>>()?;
    alternate(timers, &iters)
}

/// Allocation figures of `steps` steps after a warm-up.
struct Memory {
    allocs_min: u64,
    allocs_max: u64,
    bytes_per_step: u64,
    live_before: isize,
    live_after: isize,
}

fn memory(step: &mut Step, steps: usize) -> Result<Memory> {
    // Warm-up: rayon's workers and the GEMM's per-thread packing buffers are
    // allocated the first time each thread takes a share of the work.
    for _ in 0..5 {
        step.run()?;
    }
    let start = alloc::snapshot();
    let (mut lo, mut hi) = (u64::MAX, 0);
    let mut prev = start;
    for _ in 0..steps {
        step.run()?;
        let now = alloc::snapshot();
        lo = lo.min(now.allocs - prev.allocs);
        hi = hi.max(now.allocs - prev.allocs);
        prev = now;
    }
    let end = alloc::snapshot();
    Ok(Memory {
        allocs_min: lo,
        allocs_max: hi,
        bytes_per_step: (end.bytes - start.bytes) / steps.max(1) as u64,
        live_before: start.live,
        live_after: end.live,
    })
}

fn num(x: Option<f64>, digits: usize) -> String {
    x.map_or("null".into(), |x| format!("{x:.digits$}"))
}

fn dash(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".into(), |x| format!("{x:.digits$}"))
}

pub fn run(args: Args) -> Result<()> {
    let threads = match args.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(t) => vec![t],
        None => vec![1, 2],
    };
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let mut torch = args.torch.as_deref().map(Torch::start).transpose()?;
    let header = format!(
        "# nw MLP: Linear(784->512)+ReLU fwd+bwd and a 784-512-256-10 {} step, batch {BATCH} | {}",
        args.optimizer,
        machine_and_torch(torch.as_mut())?
    );
    if args.json {
        eprintln!("{header}");
    } else {
        println!("{header}");
        println!(
            "{:<34} {:>3} {:>9} {:>12} {:>7} {:>9} {:>9}",
            "task", "thr", "nw ms", "ref ms", "nw/ref", "torch ms", "nw/torch"
        );
    }
    let layer = Layer::new();
    let mut out = GemmOut::new();
    let mut step = Step::new(&args.optimizer)?;
    let mut trainer = TrainerStep::new(&args.optimizer)?;
    for &t in &threads {
        let pool =
            rayon::ThreadPoolBuilder::new().num_threads(t).build().context("building the rayon pool")?;
        if let Some(torch) = torch.as_mut() {
            torch.set_threads(t)?;
        }

        // (a) the layer, its three GEMMs alone, torch's layer
        let mut nw = |iters: u64| pool.install(|| time_result(iters, || layer.autograd()));
        let mut gemm = |iters: u64| pool.install(|| time_result(iters, || layer.gemms(&mut out)));
        let per = match torch.as_mut() {
            None => measure(&mut [&mut nw, &mut gemm])?,
            Some(torch) => {
                torch.request("mlp_layer")?;
                let mut tt = |iters: u64| torch.time(iters);
                measure(&mut [&mut nw, &mut gemm, &mut tt])?
            }
        };
        let (layer_ms, gemm_ms, torch_layer_ms) = (per[0] * 1e3, per[1] * 1e3, per.get(2).map(|s| s * 1e3));

        // (b) the training step, through Trainer, torch's step
        let mut nw = |iters: u64| pool.install(|| time_result(iters, || step.run()));
        let mut tr = |iters: u64| pool.install(|| time_result(iters, || trainer.run()));
        let per = match torch.as_mut() {
            None => measure(&mut [&mut nw, &mut tr])?,
            Some(torch) => {
                torch.request(&format!("mlp_step {}", args.optimizer))?;
                let mut tt = |iters: u64| torch.time(iters);
                measure(&mut [&mut nw, &mut tr, &mut tt])?
            }
        };
        let (step_ms, trainer_ms, torch_step_ms) = (per[0] * 1e3, per[1] * 1e3, per.get(2).map(|s| s * 1e3));

        // memory over plain steps
        let mem = pool.install(|| memory(&mut step, args.steps))?;
        let load = loadavg();

        if args.json {
            println!(
                "{{\"task\":\"linear_relu_fwd_bwd\",\"shape\":\"{BATCH}x784->512\",\"threads\":{t},\"nw_ms\":{layer_ms:.4},\"gemms_ms\":{gemm_ms:.4},\"ratio_to_gemms\":{:.3},\"torch_ms\":{},\"ratio_to_torch\":{},\"load\":\"{load}\"}}",
                layer_ms / gemm_ms,
                num(torch_layer_ms, 4),
                num(torch_layer_ms.map(|tm| layer_ms / tm), 3),
            );
            println!(
                "{{\"task\":\"mlp_step\",\"optimizer\":\"{}\",\"shape\":\"{BATCH}x784-512-256-10\",\"threads\":{t},\"nw_ms\":{step_ms:.4},\"trainer_ms\":{trainer_ms:.4},\"torch_ms\":{},\"ratio_to_torch\":{},\"allocs_per_step_min\":{},\"allocs_per_step_max\":{},\"bytes_allocated_per_step\":{},\"memory_steps\":{},\"live_bytes_before\":{},\"live_bytes_after\":{},\"load\":\"{load}\"}}",
                args.optimizer,
                num(torch_step_ms, 4),
                num(torch_step_ms.map(|tm| step_ms / tm), 3),
                mem.allocs_min,
                mem.allocs_max,
                mem.bytes_per_step,
                args.steps,
                mem.live_before,
                mem.live_after,
            );
        } else {
            println!(
                "{:<34} {t:>3} {layer_ms:>9.3} {:>12} {:>7.3} {:>9} {:>9}",
                "Linear+ReLU fwd+bwd (ref: 3 GEMMs)",
                format!("{gemm_ms:.3}"),
                layer_ms / gemm_ms,
                dash(torch_layer_ms, 3),
                dash(torch_layer_ms.map(|tm| layer_ms / tm), 3),
            );
            println!(
                "{:<34} {t:>3} {step_ms:>9.3} {:>12} {:>7.3} {:>9} {:>9}",
                format!("MLP {} step (ref: Trainer)", args.optimizer),
                format!("{trainer_ms:.3}"),
                step_ms / trainer_ms,
                dash(torch_step_ms, 3),
                dash(torch_step_ms.map(|tm| step_ms / tm), 3),
            );
            println!(
                "{:<34} {t:>3} {} steps: {}..{} allocations/step, {:.2} MB allocated/step, live bytes {} before, {} after ({:+}); load {load}",
                "  memory",
                args.steps,
                mem.allocs_min,
                mem.allocs_max,
                mem.bytes_per_step as f64 / 1e6,
                mem.live_before,
                mem.live_after,
                mem.live_after - mem.live_before,
            );
        }
    }
    Ok(())
}
