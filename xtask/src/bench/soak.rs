//! `cargo xtask bench soak`: a long run of the digits MLP through
//! `nw_train::session::fit` (the code `nw train` runs), with a step
//! checkpoint every 1,000 steps into a temporary output directory, checking
//! that nothing accumulates: resident memory at the last step and after
//! `fit` returns (final evaluation, model and plots included) against that at
//! step 1,000, open file descriptors (`/proc/self/fd`) before and after, and
//! stray temporary files left in the output directory. Linux only (it reads
//! `/proc`). Not a test: it takes minutes.

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use nw_train::session::{self, Progress};
use nw_train::{EpochRecord, RunConfig, build_run};

/// Options of `bench soak`.
#[derive(clap::Args)]
pub struct Args {
    /// Optimizer steps to take (at least; whole epochs are run).
    #[arg(long, default_value_t = 100_000)]
    steps: u64,
    /// A step checkpoint every this many steps.
    #[arg(long, default_value_t = 1_000)]
    checkpoint_every: u64,
    /// Mini-batch size.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Allowed growth of resident memory from step `checkpoint_every` to the last step, in percent.
    #[arg(long, default_value_t = 5.0)]
    max_growth: f64,
}

/// Resident set size in bytes (`/proc/self/statm`, field 2, in pages).
fn rss() -> Result<u64> {
    let s = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = s.split_whitespace().nth(1).unwrap_or("0").parse()?;
    Ok(pages * 4096)
}

/// Open file descriptors of this process.
fn open_fds() -> Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

/// Counts steps and samples resident memory.
struct Watch {
    steps: u64,
    at: u64,
    rss_at: Option<u64>,
    last: u64,
    rss_last: Option<u64>,
    started: Instant,
    epochs: u64,
}

impl Progress for Watch {
    fn batch(&mut self, _index: usize, _loss: f32) {
        self.steps += 1;
        if self.steps == self.at {
            self.rss_at = rss().ok();
        }
        if self.steps == self.last {
            self.rss_last = rss().ok();
        }
        if self.steps.is_multiple_of(10_000) {
            eprintln!(
                "step {:>7}  rss {:>6.1} MiB  {:.0}s",
                self.steps,
                rss().unwrap_or(0) as f64 / 1048576.0,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
    fn epoch_end(&mut self, _r: &EpochRecord) {
        self.epochs += 1;
    }
}

/// Runs the soak and prints its figures; fails when a limit is passed.
pub fn run(args: Args) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("nw-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = RunConfig::default();
    cfg.set("train.batch", &args.batch.to_string())?;
    cfg.set("train.checkpoint_every_steps", &args.checkpoint_every.to_string())?;
    let mut run = build_run(&cfg)?;
    let per_epoch = run.loader.batches_per_epoch() as u64;
    cfg.train.epochs = args.steps.div_ceil(per_epoch.max(1));
    cfg.validate()?;
    // Rebuild with the final epoch count (schedules depend on it).
    run = build_run(&cfg)?;
    let fds_before = open_fds()?;
    let mut watch = Watch {
        steps: 0,
        at: args.checkpoint_every,
        rss_at: None,
        last: per_epoch * cfg.train.epochs,
        rss_last: None,
        started: Instant::now(),
        epochs: 0,
    };
    let m = session::fit(&mut run, &cfg, Some(&dir), &mut watch)?;
    let seconds = watch.started.elapsed().as_secs_f64();
    let rss_end = rss()?;
    let fds_after = open_fds()?;
    let stray = stray_files(&dir)?;
    let checkpoints = std::fs::read_dir(&dir)?
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(session::files::is_checkpoint))
        .count();
    let ck_size = std::fs::metadata(dir.join(session::files::CHECKPOINT))?.len();
    let rss_at = watch.rss_at.unwrap_or(0);
    let rss_last = watch.rss_last.unwrap_or(0);
    let pct = |v: u64| (v as f64 / rss_at.max(1) as f64 - 1.0) * 100.0;
    let (growth_last, growth) = (pct(rss_last), pct(rss_end));
    let len = |f: &str| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len());
    println!("soak: digits MLP (nw train defaults), batch {}, {} epochs", args.batch, cfg.train.epochs);
    println!("| figure | value |");
    println!("| --- | --- |");
    println!("| steps | {} |", watch.steps);
    println!(
        "| step checkpoints written | {} (every {}) |",
        watch.steps / args.checkpoint_every,
        args.checkpoint_every
    );
    println!("| checkpoint files left (kept 3 + checkpoint.nwck) | {checkpoints} |");
    println!("| final checkpoint size | {ck_size} bytes |");
    println!("| wall time | {seconds:.1} s ({:.1} us/step) |", seconds * 1e6 / watch.steps.max(1) as f64);
    println!("| RSS at step {} | {:.2} MiB |", args.checkpoint_every, rss_at as f64 / 1048576.0);
    println!(
        "| RSS at the last step ({}) | {:.2} MiB ({growth_last:+.2}%) |",
        watch.last,
        rss_last as f64 / 1048576.0
    );
    println!(
        "| RSS after `fit` returns (evaluation, model, plots) | {:.2} MiB ({growth:+.2}%) |",
        rss_end as f64 / 1048576.0
    );
    println!("| limit (last step) | {}% |", args.max_growth);
    println!(
        "| metrics.csv / monitor.jsonl at the end | {} / {} bytes |",
        len(session::files::METRICS),
        len(session::files::MONITOR)
    );
    println!("| open file descriptors before / after | {fds_before} / {fds_after} |");
    println!("| stray temporary files | {} |", stray.len());
    println!("| test accuracy | {:.3} |", m.accuracy.unwrap_or(f64::NAN));
    let _ = std::fs::remove_dir_all(&dir);
    // The limit is on the training loop (step 1,000 to the last step). What
    // `fit` does once at the end (the test evaluation, the model file, the
    // plots with their font, about 0.6 MiB on the digits) is printed beside
    // it: it does not depend on the run's length.
    if growth_last > args.max_growth {
        bail!("resident memory grew {growth_last:.2}% by the last step (limit {}%)", args.max_growth);
    }
    if fds_after > fds_before {
        bail!("{} file descriptors left open", fds_after - fds_before);
    }
    if !stray.is_empty() {
        bail!("stray temporary files: {stray:?}");
    }
    Ok(())
}

/// Temporary files of atomic writes left in `dir`.
fn stray_files(dir: &Path) -> Result<Vec<String>> {
    Ok(std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter(|n| nw_train::checkpoint::is_temp_name(n))
        .collect())
}
