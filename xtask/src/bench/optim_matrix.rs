//! The matrix-rule rows of `cargo xtask bench optim`: one Adafactor step and
//! one Muon step of nw-optim over `--matrices` square `--size` matrices
//! (default ten 1024x1024), at each thread count, beside torch.optim's
//! (Adafactor single-tensor and foreach, Muon) when a PyTorch worker runs,
//! timed alternately (medians of interleaved repeats).
//!
//! torch 2.15's Muon runs its Newton-Schulz products in bfloat16. nw's
//! default runs them in f32 (`muon_step`: more work per product, closer to
//! the exact iteration); `muon_bf16_step` is nw with `ns_dtype = bfloat16`,
//! torch's precision (AVX512-BF16 when the CPU has it and `NW_ISA` allows
//! AVX-512, the exact emulation otherwise), timed against the same torch step.

use std::cell::RefCell;

use anyhow::{Context, Result};
use nw_autograd::{Grads, Param};
use nw_optim::{Adafactor, Muon, NsDtype, Optimizer};
use nw_tensor::{Rng, Tensor};

use super::torch::Torch;
use super::{Timer, alternate, calibrate, time_iters};

/// Seeded square matrices and gradients (std 0.01).
fn matrices(count: usize, size: usize, seed: u64) -> (Vec<Param>, Grads) {
    let mut rng = Rng::new(seed);
    let ps: Vec<Param> =
        (0..count).map(|_| Param::new(Tensor::randn(&[size, size], 0.0, 1.0, &mut rng))).collect();
    let mut g = Grads::new();
    for p in &ps {
        g.insert(p, Tensor::randn(&[size, size], 0.0, 0.01, &mut rng));
    }
    (ps, g)
}

/// Prints the Adafactor and Muon rows for each thread count in `threads`.
pub fn run(
    threads: &[usize],
    count: usize,
    size: usize,
    mut torch: Option<&mut Torch>,
    json: bool,
) -> Result<()> {
    if !json {
        println!(
            "# matrix rules: {count} matrices of {size}x{size}; torch's Muon Newton-Schulz is bfloat16, nw's f32 (muon_step) or bfloat16 (muon_bf16_step, AVX512-BF16: {})",
            nw_tensor::gemm::bf16::hardware()
        );
        println!(
            "{:<18} {:>3} {:>9} {:>10} {:>12} {:>7} {:>9}",
            "task", "thr", "nw ms", "torch ms", "foreach ms", "ratio", "r.foreach"
        );
    }
    let (ada_ps, ada_g) = matrices(count, size, 3);
    let (muon_ps, muon_g) = matrices(count, size, 4);
    let mut ada = Adafactor::default().build(ada_ps)?;
    let mut muon = Muon { lr: 0.02, ..Muon::default() }.build(muon_ps.clone())?;
    // the same parameters (shared): torch's precision, on the bfloat16 GEMM
    let mut muon_bf16 = Muon { lr: 0.02, ns_dtype: NsDtype::Bf16, ..Muon::default() }.build(muon_ps)?;
    for &t in threads {
        let pool =
            rayon::ThreadPoolBuilder::new().num_threads(t).build().context("building the rayon pool")?;
        if let Some(torch) = torch.as_deref_mut() {
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
        let rows: [(&str, &[&str]); 3] = [
            ("adafactor_step", &["adafactor", "adafactor_foreach"]),
            ("muon_step", &["muon"]),
            ("muon_bf16_step", &["muon"]),
        ];
        for (task, variants) in rows {
            let mut nw_timer = |iters: u64| {
                if task == "muon_step" {
                    step_timer(&mut muon, &muon_g, iters)
                } else if task == "muon_bf16_step" {
                    step_timer(&mut muon_bf16, &muon_g, iters)
                } else {
                    step_timer(&mut ada, &ada_g, iters)
                }
            };
            let per: Vec<f64> = match torch.as_deref_mut() {
                None => {
                    let iters = [calibrate(&mut nw_timer)?];
                    alternate(&mut [&mut nw_timer], &iters)?
                }
                Some(torch) => {
                    let cell = RefCell::new(torch);
                    let variant = |name: &'static str| {
                        let cell = &cell;
                        move |iters: u64| -> Result<f64> {
                            let mut w = cell.borrow_mut();
                            w.request(&format!("optim_matrix {name} {count} {size}"))?;
                            w.time(iters)
                        }
                    };
                    let mut torch_timers: Vec<Box<Timer<'_>>> =
                        variants.iter().map(|&v| Box::new(variant(v)) as Box<Timer<'_>>).collect();
                    let mut timers: Vec<&mut Timer<'_>> = vec![&mut nw_timer];
                    for tt in torch_timers.iter_mut() {
                        timers.push(tt.as_mut());
                    }
                    let mut iters = Vec::with_capacity(timers.len());
                    for tm in timers.iter_mut() {
                        iters.push(calibrate(*tm)?);
                    }
                    alternate(&mut timers, &iters)?
                }
            };
            let nw_ms = per[0] * 1e3;
            let torch_ms = per.get(1).map(|x| x * 1e3);
            let foreach_ms = if variants.len() > 1 { per.get(2).map(|x| x * 1e3) } else { None };
            if json {
                let num = |x: Option<f64>| x.map_or("null".to_string(), |x| format!("{x:.3}"));
                println!(
                    "{{\"task\":\"{task}\",\"matrices\":{count},\"size\":{size},\"threads\":{t},\"nw_ms\":{nw_ms:.3},\"torch_ms\":{},\"torch_foreach_ms\":{},\"ratio\":{},\"ratio_foreach\":{}}}",
                    num(torch_ms),
                    num(foreach_ms),
                    num(torch_ms.map(|x| x / nw_ms)),
                    num(foreach_ms.map(|x| x / nw_ms)),
                );
            } else {
                let dash = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}"));
                println!(
                    "{task:<18} {t:>3} {nw_ms:>9.2} {:>10} {:>12} {:>7} {:>9}",
                    dash(torch_ms),
                    dash(foreach_ms),
                    dash(torch_ms.map(|x| x / nw_ms)),
                    dash(foreach_ms.map(|x| x / nw_ms)),
                );
            }
        }
    }
    Ok(())
}
