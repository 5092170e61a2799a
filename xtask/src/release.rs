//! `cargo xtask release`: checks, builds the release binary, packages every
//! publishable crate in dependency order (`cargo package` dry run) and writes
//! SHA-256 checksums of what it built to `dist/SHA256SUMS`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// Publishable crates, each after the crates it depends on.
pub const CRATES: [&str; 9] =
    ["nw-tensor", "nw-autograd", "nw-nn", "nw-evolve", "nw-optim", "nw-reg", "nw-data", "nw-train", "nw-cli"];

fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    println!("$ cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(root)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

/// Runs the release steps from the workspace root.
pub fn run(root: &Path) -> Result<()> {
    cargo(root, &["fmt", "--all", "--", "--check"])?;
    cargo(root, &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    cargo(root, &["test", "--workspace", "--release"])?;
    cargo(root, &["build", "--release", "-p", "nw-cli"])?;
    // One `cargo package` for all crates: cargo packages them in dependency
    // order and resolves the unpublished workspace dependencies locally.
    // `--no-verify`: nw-data embeds files from the workspace's `datasets/`,
    // which a stand-alone build of its package cannot see.
    let mut args: Vec<&str> = vec!["package", "--allow-dirty", "--no-verify"];
    for c in CRATES {
        if root.join("crates").join(c).exists() {
            args.extend(["-p", c]);
        }
    }
    cargo(root, &args)?;
    let dist = root.join("dist");
    std::fs::create_dir_all(&dist)?;
    let mut sums = String::new();
    let mut artifacts = vec![root.join("target/release/nw")];
    if let Ok(rd) = std::fs::read_dir(root.join("target/package")) {
        let mut pkgs: Vec<_> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "crate"))
            .collect();
        pkgs.sort();
        artifacts.extend(pkgs);
    }
    for a in artifacts {
        let bytes = std::fs::read(&a).with_context(|| format!("reading {}", a.display()))?;
        let hex: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        sums += &format!("{hex}  {}\n", a.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
    }
    std::fs::write(dist.join("SHA256SUMS"), &sums)?;
    print!("{sums}");
    println!("checksums written to {}", dist.join("SHA256SUMS").display());
    Ok(())
}
