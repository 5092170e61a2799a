//! Optimizer-step benchmark: one Adam step and one SGD-momentum step over a
//! 10-million-parameter model (tensors 4000x1000, 4000x1000, 2000x1000),
//! nw against torch.optim (fused=True and foreach=True) at 1 and 2 threads,
//! measured alternately in one run (rounds of nw, torch fused, torch foreach),
//! medians over all samples. Also the machine's copy bandwidth (memcpy of a
//! 256 MiB buffer) and nw's effective bandwidth: Adam moves 28 bytes per
//! parameter (reads θ, g, m, v; writes θ, m, v), SGD with momentum 20 (reads θ,
//! g, b; writes θ, b); copy counts its read and its write, and is sampled once
//! per round, between the optimizer samples, so it sees the same machine load.
//! memcpy's destination writes cost a hidden read-for-ownership that the
//! optimizers' in-place updates do not, so an in-place scale of the same
//! buffer (read + write of the same lines) is reported as a second reference.
//!
//! ```text
//! cargo run --release -p nw-optim --example bench_optim -- [--torch PYTHON] [--json] [--params N] [--rounds R] [--reps K]
//! ```
//! `--torch` defaults to /tmp/torch/bin/python when it exists; `--no-torch`
//! measures nw alone. The torch side is `benches/torch/optim.py`.
//! (A stand-in for `cargo xtask bench optim` until the xtask crate lands.)

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use nw_autograd::{Grads, Param};
use nw_optim::{Adam, Optimizer, Sgd};
use nw_tensor::{Rng, Tensor};

struct Args {
    torch: Option<String>,
    json: bool,
    params: usize,
    rounds: usize,
    reps: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        torch: std::path::Path::new("/tmp/torch/bin/python")
            .exists()
            .then(|| "/tmp/torch/bin/python".to_string()),
        json: false,
        params: 10_000_000,
        rounds: 7,
        reps: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--torch" => a.torch = Some(value("--torch")?),
            "--no-torch" => a.torch = None,
            "--json" => a.json = true,
            "--params" => a.params = value("--params")?.parse().map_err(|e| format!("--params: {e}"))?,
            "--rounds" => a.rounds = value("--rounds")?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--reps" => a.reps = value("--reps")?.parse().map_err(|e| format!("--reps: {e}"))?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

/// The PyTorch side, a subprocess answering one command per line.
struct Torch {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Torch {
    fn start(python: &str, params: usize) -> Result<(Torch, String), String> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../benches/torch/optim.py");
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {python}: {e}"))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut t = Torch { child, stdin, stdout };
        let version = t.ask("version")?;
        let ok = t.ask(&format!("setup {params}"))?;
        if ok != "ok" {
            return Err(format!("torch setup answered {ok:?}"));
        }
        Ok((t, version))
    }

    fn ask(&mut self, line: &str) -> Result<String, String> {
        writeln!(self.stdin, "{line}").map_err(|e| e.to_string())?;
        self.stdin.flush().map_err(|e| e.to_string())?;
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).map_err(|e| e.to_string())?;
        if answer.is_empty() {
            return Err("torch process ended".into());
        }
        Ok(answer.trim().to_string())
    }

    fn run(&mut self, variant: &str, threads: usize, reps: usize) -> Result<Vec<f64>, String> {
        let a = self.ask(&format!("run {variant} {threads} {reps}"))?;
        serde_json::from_str(&a).map_err(|e| format!("torch answered {a:?}: {e}"))
    }
}

impl Drop for Torch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn shapes(n: usize) -> Vec<Vec<usize>> {
    if n == 10_000_000 {
        vec![vec![4000, 1000], vec![4000, 1000], vec![2000, 1000]]
    } else {
        let a = n * 2 / 5;
        vec![vec![a], vec![a], vec![n - 2 * a]]
    }
}

fn model(n: usize, seed: u64) -> (Vec<Param>, Grads) {
    let mut rng = Rng::new(seed);
    let ps: Vec<Param> = shapes(n).iter().map(|s| Param::new(Tensor::randn(s, 0.0, 1.0, &mut rng))).collect();
    let mut g = Grads::new();
    for p in &ps {
        g.insert(p, Tensor::randn(&p.shape(), 0.0, 0.01, &mut rng));
    }
    (ps, g)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn time_ms(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e3
}

/// A 256 MiB source and destination for the copy-bandwidth reference.
struct CopyBufs {
    src: Vec<f32>,
    dst: Vec<f32>,
}

impl CopyBufs {
    fn new() -> Self {
        let n = 64 << 20; // f32s
        CopyBufs { src: vec![1.0f32; n], dst: vec![0.0f32; n] }
    }

    /// One memcpy of the whole buffer split over the pool's threads, in ms.
    fn time(&mut self, pool: &rayon::ThreadPool) -> f64 {
        use rayon::prelude::*;
        let chunk = self.src.len().div_ceil(pool.current_num_threads());
        let (src, dst) = (&self.src, &mut self.dst);
        let ms = time_ms(|| {
            pool.install(|| {
                dst.par_chunks_mut(chunk).zip(src.par_chunks(chunk)).for_each(|(d, s)| d.copy_from_slice(s))
            })
        });
        std::hint::black_box(&self.dst);
        ms
    }

    /// One in-place scale `x ← 1.0000001 x` of the destination buffer (read and
    /// write of the same lines, as an optimizer's θ, m, v), in ms.
    fn time_rmw(&mut self, pool: &rayon::ThreadPool) -> f64 {
        use rayon::prelude::*;
        let chunk = self.dst.len().div_ceil(pool.current_num_threads());
        let dst = &mut self.dst;
        let ms = time_ms(|| {
            pool.install(|| {
                dst.par_chunks_mut(chunk).for_each(|d| d.iter_mut().for_each(|x| *x *= 1.000_000_1))
            })
        });
        std::hint::black_box(&self.dst);
        ms
    }

    /// GB/s counting the read and the write.
    fn gbps(&self, ms: f64) -> f64 {
        (2 * self.src.len() * 4) as f64 / (ms * 1e-3) / 1e9
    }
}

struct Row {
    task: &'static str,
    threads: usize,
    nw_ms: f64,
    torch_ms: Option<f64>,
    torch_foreach_ms: Option<f64>,
    bytes_per_param: usize,
    copy_gbps: f64,
    rmw_gbps: f64,
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench_optim: {e}");
            std::process::exit(2);
        }
    };
    let mut torch = match &args.torch {
        Some(py) => match Torch::start(py, args.params) {
            Ok((t, v)) => {
                if !args.json {
                    println!("torch {v} ({py})");
                }
                Some(t)
            }
            Err(e) => {
                eprintln!("bench_optim: {e}");
                std::process::exit(1);
            }
        },
        None => None,
    };
    let n = args.params;
    let (adam_ps, adam_g) = model(n, 1);
    let (sgd_ps, sgd_g) = model(n, 2);
    let mut adam = Adam { lr: 1e-3, ..Adam::default() }.build(adam_ps).expect("valid config");
    let mut sgd = Sgd { lr: 1e-3, momentum: 0.9, ..Sgd::default() }.build(sgd_ps).expect("valid config");
    adam.step(&adam_g).expect("shapes match"); // allocate the state
    sgd.step(&sgd_g).expect("shapes match");

    let mut copy = CopyBufs::new();
    let mut rows = Vec::new();
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        let (mut copy_ms, mut rmw_ms) = (Vec::new(), Vec::new());
        copy.time(&pool); // warm-up: touch the pages
        let mut s: [Vec<f64>; 6] = Default::default();
        for _ in 0..args.rounds {
            copy_ms.push(copy.time(&pool));
            rmw_ms.push(copy.time_rmw(&pool));
            for _ in 0..args.reps {
                s[0].push(time_ms(|| pool.install(|| adam.step(&adam_g).expect("step"))));
            }
            if let Some(t) = torch.as_mut() {
                s[1].extend(t.run("adam_fused", threads, args.reps).expect("torch"));
                s[2].extend(t.run("adam_foreach", threads, args.reps).expect("torch"));
            }
            for _ in 0..args.reps {
                s[3].push(time_ms(|| pool.install(|| sgd.step(&sgd_g).expect("step"))));
            }
            if let Some(t) = torch.as_mut() {
                s[4].extend(t.run("sgd_fused", threads, args.reps).expect("torch"));
                s[5].extend(t.run("sgd_foreach", threads, args.reps).expect("torch"));
            }
        }
        let copy_gbps = copy.gbps(median(&mut copy_ms));
        let rmw_gbps = copy.gbps(median(&mut rmw_ms));
        let med = |v: &mut Vec<f64>| if v.is_empty() { None } else { Some(median(v)) };
        let [a, b, c, d, e, f] = &mut s;
        rows.push(Row {
            task: "adam_step",
            threads,
            nw_ms: med(a).expect("measured"),
            torch_ms: med(b),
            torch_foreach_ms: med(c),
            bytes_per_param: 28,
            copy_gbps,
            rmw_gbps,
        });
        rows.push(Row {
            task: "sgd_momentum_step",
            threads,
            nw_ms: med(d).expect("measured"),
            torch_ms: med(e),
            torch_foreach_ms: med(f),
            bytes_per_param: 20,
            copy_gbps,
            rmw_gbps,
        });
    }

    for r in &rows {
        let gbps = (n * r.bytes_per_param) as f64 / (r.nw_ms * 1e-3) / 1e9;
        if args.json {
            let mut o = serde_json::json!({
                "task": r.task, "params": n, "threads": r.threads, "nw_ms": r.nw_ms,
                "nw_gbps": gbps, "copy_gbps": r.copy_gbps, "pct_of_copy": 100.0 * gbps / r.copy_gbps,
                "bytes_per_param": r.bytes_per_param, "rmw_gbps": r.rmw_gbps, "pct_of_rmw": 100.0 * gbps / r.rmw_gbps,
            });
            if let (Some(t), Some(f)) = (r.torch_ms, r.torch_foreach_ms) {
                o["torch_ms"] = t.into();
                o["torch_foreach_ms"] = f.into();
                o["ratio"] = (t / r.nw_ms).into();
                o["ratio_foreach"] = (f / r.nw_ms).into();
            }
            println!("{o}");
        } else {
            let torch = match (r.torch_ms, r.torch_foreach_ms) {
                (Some(t), Some(f)) => format!(
                    "  torch fused {t:7.2} ms ({:.2}x)  foreach {f:7.2} ms ({:.2}x)",
                    t / r.nw_ms,
                    f / r.nw_ms
                ),
                _ => String::new(),
            };
            println!(
                "{:<18} {}M params, {} thread(s): nw {:7.2} ms = {:5.1} GB/s ({:.0}% of copy {:.1}, {:.0}% of in-place {:.1} GB/s){torch}",
                r.task,
                n as f64 / 1e6,
                r.threads,
                r.nw_ms,
                gbps,
                100.0 * gbps / r.copy_gbps,
                r.copy_gbps,
                100.0 * gbps / r.rmw_gbps,
                r.rmw_gbps
            );
        }
    }
}
