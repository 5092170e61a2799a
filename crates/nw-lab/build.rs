//! Tells the browser tests whether Debian's chromium is installed, so that
//! they are ignored with a reason (never passed silently) where it is not.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(chromium_available)");
    println!("cargo::rerun-if-env-changed=NW_CHROMIUM");
    println!("cargo::rerun-if-changed=/usr/bin/chromium");
    let bin = std::env::var_os("NW_CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into());
    if std::path::Path::new(&bin).is_file() {
        println!("cargo::rustc-cfg=chromium_available");
    }
}
