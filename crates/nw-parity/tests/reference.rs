//! Every case of every fixture file in `fixtures/reference/` as its own test
//! (`layers::conv2d_0`, `optimizers::adam`, ...). A case nw cannot run
//! (an unsupported kind, op or option) fails with the reason; nothing is
//! skipped. Run one with `cargo test -p nw-parity --test reference -- adam`.

use std::path::PathBuf;

use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/reference");
    let files = nw_parity::load_dir(&dir).expect("fixtures/reference is readable");
    let mut trials = Vec::new();
    for (path, file) in files {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let fname = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        for case in file.cases {
            let kind = file.kind.clone();
            let fname = fname.clone();
            let name = nw_parity::Case::new(&case).name();
            trials.push(Trial::test(format!("{stem}::{name}"), move || {
                let r = nw_parity::report_case(&fname, &kind, &case);
                if r.passed() { Ok(()) } else { Err(Failed::from(r.line())) }
            }));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
