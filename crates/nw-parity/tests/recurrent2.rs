//! The recurrent cases (`lstm`, `gru`, `rnn_tanh`, `rnn_relu`) of
//! `fixtures/reference-2/layers2.json`, each as its own test
//! (`layers2::lstm_bidir_h0`, ...): stacked, bidirectional, batch-first and
//! time-major layers from differentiated initial states. Run them with
//! `cargo test -p nw-parity --test recurrent2`.

use std::path::PathBuf;

use libtest_mimic::{Arguments, Failed, Trial};

const RECURRENT: [&str; 4] = ["lstm", "gru", "rnn_tanh", "rnn_relu"];

fn main() {
    let args = Arguments::from_args();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/reference-2");
    let files = nw_parity::load_dir(&dir).expect("fixture directory is readable");
    let mut trials = Vec::new();
    for (path, file) in files {
        let fname = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if fname != "layers2.json" {
            continue;
        }
        for case in file.cases {
            let op = case.get("op").and_then(|v| v.as_str()).unwrap_or_default();
            if !RECURRENT.contains(&op) {
                continue;
            }
            let (kind, fname) = (file.kind.clone(), fname.clone());
            let name = nw_parity::Case::new(&case).name();
            trials.push(Trial::test(format!("layers2::{name}"), move || {
                let r = nw_parity::report_case(&fname, &kind, &case);
                if r.passed() { Ok(()) } else { Err(Failed::from(r.line())) }
            }));
        }
    }
    assert!(trials.len() >= 7, "layers2.json lost its recurrent cases ({} found)", trials.len());
    libtest_mimic::run(&args, trials).exit();
}
