//! `cargo xtask fuzz TARGET [--seconds N]`: coverage-guided fuzzing of one
//! reader (or `all`) with AFL++ through `cargo afl`, which works on the
//! stable toolchain; `cargo xtask fuzz corpus` rewrites the seed corpus.
//!
//! The fuzz binaries live in `fuzz/` (a crate outside the workspace, so the
//! normal build never needs the tool) and call `nw_fuzz::Target::run` with
//! the counting allocator capped at `nw_fuzz::harness::alloc_bound` of the
//! input: a panic, an allocation past the bound, or an input slower than
//! 2 s is a finding. Inputs start from `fuzz/corpus/TARGET/`; AFL's state
//! goes to `fuzz/out/TARGET/` (kept between runs, resumed, git-ignored).
//! Install the tool once with `cargo install cargo-afl` (it builds AFL++).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use nw_fuzz::Target;

/// Runs `target` (a name from `nw_fuzz::Target`, `all`, or `corpus`).
pub fn run(root: &Path, target: &str, seconds: u64) -> anyhow::Result<()> {
    if target == "corpus" {
        return write_corpus(root);
    }
    let targets: Vec<Target> = if target == "all" {
        Target::ALL.to_vec()
    } else {
        vec![Target::from_name(target).with_context(|| {
            let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
            format!("unknown fuzz target {target:?}; known: {}, all, corpus", names.join(", "))
        })?]
    };
    let ok = Command::new("cargo").args(["afl", "--version"]).output().map(|o| o.status.success());
    if ok.ok() != Some(true) {
        bail!(
            "`cargo afl` is not installed: run `cargo install cargo-afl` once (it builds AFL++; \
             needs a C compiler and make), then `cargo xtask fuzz {target}` again"
        );
    }
    let fuzz = root.join("fuzz");
    let mut findings = 0;
    for t in targets {
        let name = t.name();
        let status = Command::new("cargo")
            .args(["afl", "build", "--release", "--bin", name])
            .current_dir(&fuzz)
            .status()
            .context("running cargo afl build")?;
        if !status.success() {
            bail!("cargo afl build --bin {name} failed");
        }
        let out = fuzz.join("out").join(name);
        std::fs::create_dir_all(&out)?;
        println!("fuzzing {name} for {seconds} s (AFL++ output in {})", out.display());
        let status = Command::new("cargo")
            .args(["afl", "fuzz", "-i"])
            .arg(fuzz.join("corpus").join(name))
            .arg("-o")
            .arg(&out)
            .args(["-V", &seconds.to_string(), "-t", "2000", "--"])
            .arg(fuzz.join("target/release").join(name))
            .current_dir(&fuzz)
            .env("AFL_NO_UI", "1")
            .env("AFL_AUTORESUME", "1")
            .env("AFL_SKIP_CPUFREQ", "1")
            .env("AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES", "1")
            .env("AFL_QUIET", "1")
            .env("AFL_NO_AFFINITY", "1")
            .stdout(std::process::Stdio::null())
            .status()
            .context("running cargo afl fuzz")?;
        if !status.success() {
            bail!("cargo afl fuzz {name} exited with {status}");
        }
        findings += report(name, &out.join("default"))?;
    }
    if findings > 0 {
        bail!(
            "{findings} crashing or hanging inputs: each becomes a regression test (crates/nw-fuzz/tests/regressions.rs)"
        );
    }
    Ok(())
}

/// Prints AFL's counts for one target; returns crashes + hangs.
fn report(name: &str, dir: &Path) -> anyhow::Result<usize> {
    let stats = std::fs::read_to_string(dir.join("fuzzer_stats")).context("reading fuzzer_stats")?;
    let get = |k: &str| {
        stats
            .lines()
            .find_map(|l| l.split_once(':').filter(|(a, _)| a.trim() == k).map(|(_, v)| v.trim().to_string()))
            .unwrap_or_else(|| "?".into())
    };
    let files = |sub: &str| -> Vec<String> {
        std::fs::read_dir(dir.join(sub))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.file_name().is_some_and(|n| n != "README.txt"))
                    .map(|p| p.display().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (crashes, hangs) = (files("crashes"), files("hangs"));
    println!(
        "{name}: {} executions in {} s ({} per s), corpus {} inputs, edge coverage {}, {} crashes, {} hangs",
        get("execs_done"),
        get("run_time"),
        get("execs_per_sec"),
        get("corpus_count"),
        get("bitmap_cvg"),
        crashes.len(),
        hangs.len()
    );
    for f in crashes.iter().chain(&hangs) {
        println!("  finding: {f}");
    }
    Ok(crashes.len() + hangs.len())
}

/// Rewrites `fuzz/corpus/<target>/` from `nw_fuzz::Target::generate_seeds`.
fn write_corpus(root: &Path) -> anyhow::Result<()> {
    let fixtures = root.join("fixtures/reference");
    for t in Target::ALL {
        let dir = root.join("fuzz/corpus").join(t.name());
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in t.generate_seeds(&fixtures) {
            if let Err(e) = t.run(&bytes) {
                bail!("{}: the seed {name} is not accepted: {e}", t.name());
            }
            std::fs::write(dir.join(&name), &bytes)?;
            println!("{}/{name}: {} bytes", t.name(), bytes.len());
        }
    }
    Ok(())
}
