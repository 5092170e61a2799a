//! `cargo xtask datasets fetch fashion-mnist`: puts the four Fashion-MNIST IDX
//! files under `datasets/fashion-mnist/`, from Debian's package when it is
//! installed, else from the canonical download, verifying each file.
//!
//! The check is the SHA-256 of the *decompressed* IDX bytes: Debian
//! recompresses the archives (so the `.gz` hashes differ from upstream's) but
//! the data inside is the same, and that is what must be right.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// Debian's `dataset-fashion-mnist` install location.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Where the canonical files are published (zalandoresearch/fashion-mnist).
pub const CANONICAL_BASE: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com";

/// File name, SHA-256 of the decompressed bytes, decompressed length.
pub const FILES: [(&str, &str, u64); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        47_040_016,
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        60_008,
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        7_840_016,
    ),
    ("t10k-labels-idx1-ubyte.gz", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10_008),
];

/// Fetches a named data set into `datasets/<name>` under `root`.
pub fn fetch(root: &Path, name: &str) -> Result<()> {
    match name {
        "fashion-mnist" => fetch_fashion_mnist(&root.join("datasets/fashion-mnist")),
        other => bail!(
            "unknown data set {other:?}; known: fashion-mnist (the UCI sets are embedded, no fetch needed)"
        ),
    }
}

fn fetch_fashion_mnist(dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    for (name, sha, len) in FILES {
        let target = dest.join(name);
        if target.exists() && verify(&target, sha, len).is_ok() {
            println!("ok       {} (already present, verified)", target.display());
            continue;
        }
        let debian = Path::new(DEBIAN_DIR).join(name);
        if debian.exists() {
            std::fs::copy(&debian, &target)
                .with_context(|| format!("copying {} to {}", debian.display(), target.display()))?;
            println!("copied   {} from {DEBIAN_DIR}", target.display());
        } else {
            download(&format!("{CANONICAL_BASE}/{name}"), &target)?;
            println!("fetched  {}", target.display());
        }
        verify(&target, sha, len).inspect_err(|_| {
            let _ = std::fs::remove_file(&target);
        })?;
        println!("verified {} (SHA-256 of the IDX data)", target.display());
    }
    println!("Fashion-MNIST is ready in {}", dest.display());
    Ok(())
}

fn download(url: &str, target: &Path) -> Result<()> {
    let tmp: PathBuf = target.with_extension("part");
    let status = Command::new("curl").args(["-fsSL", "--retry", "2", "-o"]).arg(&tmp).arg(url).status();
    match status {
        Ok(s) if s.success() => {
            std::fs::rename(&tmp, target)?;
            Ok(())
        }
        Ok(_) | Err(_) => {
            let _ = std::fs::remove_file(&tmp);
            bail!(
                "could not download {url} (offline, or curl missing).\n\
                 Install Debian's package instead: apt-get install -y dataset-fashion-mnist\n\
                 (it puts the files in {DEBIAN_DIR}, which nw reads directly), or copy the four\n\
                 IDX .gz files into datasets/fashion-mnist/ by hand and run this command again to verify them."
            )
        }
    }
}

/// Checks the SHA-256 and length of a gzip file's decompressed content.
pub fn verify(path: &Path, sha_hex: &str, len: u64) -> Result<()> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut dec = flate2::read::GzDecoder::new(std::io::BufReader::new(f));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = dec.read(&mut buf).with_context(|| format!("decompressing {}", path.display()))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    let got: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if total != len || got != sha_hex {
        bail!(
            "{}: content check failed (length {total}, SHA-256 {got}; expected {len}, {sha_hex})",
            path.display()
        );
    }
    Ok(())
}
