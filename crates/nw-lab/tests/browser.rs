//! Renders the lab's index.html and nw report's page in Debian's chromium
//! (headless) and checks that every image loaded and nothing is blank.
//!
//! Needs `/usr/bin/chromium` (Debian package `chromium`); without it these
//! tests are ignored by name (`cargo test -- --ignored` then fails, saying
//! why), never passed silently. `NW_CHROMIUM` names another binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use nw_lab::{Budget, Experiment, LabOptions};

fn chromium() -> PathBuf {
    std::env::var_os("NW_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn chromium_base(profile: &Path) -> Command {
    let bin = chromium();
    assert!(
        bin.is_file(),
        "{} is not installed (apt-get install chromium, or set NW_CHROMIUM)",
        bin.display()
    );
    let mut c = Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--hide-scrollbars",
        "--virtual-time-budget=10000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// A checker appended to a copy of the page: after load, every <img> must
/// have decoded (natural size > 0) and every inline <svg> must be laid out
/// with a non-zero size and drawn content; the verdict goes into the DOM.
const CHECK: &str = r#"<script>
window.addEventListener('load', function () {
  var bad = [];
  var imgs = document.images, svgs = document.querySelectorAll('svg');
  for (var i = 0; i < imgs.length; i++) {
    if (!imgs[i].complete || imgs[i].naturalWidth === 0) bad.push('img ' + i);
  }
  for (var j = 0; j < svgs.length; j++) {
    var r = svgs[j].getBoundingClientRect();
    var drawn = svgs[j].querySelectorAll('path, polyline, rect, line, circle, text').length;
    if (r.width < 50 || r.height < 50 || drawn < 5) bad.push('svg ' + j + ' ' + r.width + 'x' + r.height + ' ' + drawn);
  }
  var p = document.createElement('pre');
  p.id = 'nw-check';
  p.textContent = 'CHECK imgs=' + imgs.length + ' svgs=' + svgs.length + ' bad=[' + bad.join('; ') + '] END';
  document.body.appendChild(p);
});
</script>"#;

/// Renders `page` and returns (images, svgs, problems); also writes a screenshot.
fn render(page: &Path, shot: &Path) -> (usize, usize, String) {
    let html = std::fs::read_to_string(page).unwrap();
    assert!(!html.contains("http://") || html.matches("http://").all(|_| true));
    assert!(!html.contains("<script"), "the page itself must not need scripts");
    let checked = page.with_file_name("checked.html");
    std::fs::write(&checked, html.replace("</body>", &format!("{CHECK}</body>"))).unwrap();
    let profile =
        tempdir(&format!("profile-{}", page.parent().unwrap().file_name().unwrap().to_string_lossy()));
    let out = chromium_base(&profile)
        .arg("--dump-dom")
        .arg(format!("file://{}", checked.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom.find("id=\"nw-check\">CHECK ").map(|i| i + 14).unwrap_or_else(|| {
        panic!("no check result; chromium said: {}", String::from_utf8_lossy(&out.stderr))
    });
    let line = &dom[start..dom[start..].find(" END").map(|e| start + e).unwrap()];
    let num = |k: &str| -> usize {
        let s = &line[line.find(k).unwrap() + k.len()..];
        s[..s.find(' ').unwrap()].parse().unwrap_or_else(|_| panic!("{k} in {line:?}"))
    };
    let bad = line[line.find("bad=[").unwrap() + 5..].trim_end_matches(']').to_string();
    let shot_out = chromium_base(&profile)
        .arg("--window-size=1400,4000")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(shot.is_file(), "no screenshot: {}", String::from_utf8_lossy(&shot_out.stderr));
    (num("imgs="), num("svgs="), bad)
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nw-lab-browser-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
#[cfg_attr(
    not(chromium_available),
    ignore = "needs /usr/bin/chromium (Debian package chromium); run with --ignored where it is installed"
)]
fn lab_page_renders_every_image() {
    let out = tempdir("lab");
    let opts = LabOptions { budget: Budget::Quick, seeds: Some(1), out: out.clone() };
    let page =
        nw_lab::run_all(&opts, &[Experiment::Momentum, Experiment::Unsupervised], &mut |_| {}).unwrap();
    let shot = out.join("screenshot.png");
    let (imgs, svgs, bad) = render(&page, &shot);
    assert!(imgs >= 1, "the GAN sample grid is missing");
    assert!(svgs >= 8, "only {svgs} inline plots");
    assert!(bad.is_empty(), "not drawn: {bad}");
    // a blank 1400x4000 page compresses to a few kilobytes; plots and tables do not
    let size = std::fs::metadata(&shot).unwrap().len();
    assert!(size > 60_000, "the screenshot looks blank ({size} bytes)");
}

#[test]
#[cfg_attr(
    not(chromium_available),
    ignore = "needs /usr/bin/chromium (Debian package chromium); run with --ignored where it is installed"
)]
fn run_report_renders_every_image() {
    // two run directories in the layout nw train writes
    let root = tempdir("runs");
    let mut dirs = Vec::new();
    for (k, name) in ["adam", "sgd"].iter().enumerate() {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let mut m = String::from("epoch,step,lr,train_loss,train_acc,val_loss,val_acc\n");
        let mut j = String::new();
        for e in 1..=6u64 {
            let l = 2.0 / (e as f64 + k as f64);
            m += &format!("{e},{},{},{l},{},{},{}\n", e * 40, 0.01, 1.0 - l / 3.0, l * 1.1, 1.0 - l / 2.5);
            for t in ["0.weight", "2.weight"] {
                j += &format!(
                    "{{\"name\":\"{t}\",\"step\":{},\"epoch\":{e},\"weight_norm\":3.0,\"grad_norm\":0.5,\"update_norm\":{},\"update_ratio\":{},\"mean_abs_update\":1e-4,\"max_abs_weight\":0.5,\"zero_fraction\":0.0,\"dead_fraction\":null}}\n",
                    e * 40,
                    0.01 / e as f64,
                    0.003 / e as f64
                );
            }
        }
        std::fs::write(d.join("metrics.csv"), m).unwrap();
        std::fs::write(d.join("monitor.jsonl"), j).unwrap();
        dirs.push(d);
    }
    let out = root.join("report");
    let page = nw_lab::runs::report(&dirs, &out).unwrap();
    let (_, svgs, bad) = render(&page, &out.join("screenshot.png"));
    assert!(svgs >= 5, "only {svgs} plots");
    assert!(bad.is_empty(), "not drawn: {bad}");
}
