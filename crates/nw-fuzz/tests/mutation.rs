//! The seeded mutation test of every reader (issue 13): at least 100,000
//! inputs each in release builds, made from the checked-in corpus
//! (`fuzz/corpus/<target>/`) by truncation at every length, length, count
//! and dimension fields set to 0, 1, 2^31-1, 2^32-1 and 2^64-1, duplicated,
//! deleted and swapped sections, then random stacks of bit flips, byte
//! writes, inserted and deleted ranges and splices.
//!
//! Every input must give `Ok` or a typed error: a panic (caught with
//! `catch_unwind`), an input slower than 2 s, or a peak allocation above
//! `64 x input (or decompressed) size + 1 MiB` fails the test, naming the
//! input; its bytes are written to `target/mutation-failures/`.
//!
//! Debug and release builds alike run 100,000 inputs per reader (the
//! seeds are small, so each test takes a few seconds even in the debug
//! test profile).

use nw_fuzz::Target;
use nw_fuzz::alloc::CountingAlloc;
use nw_fuzz::harness::{corpus_dir, load_corpus, run_mutations};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const INPUTS: usize = 100_000;

fn check(target: Target, seed: u64) {
    let corpus = load_corpus(&corpus_dir(target)).expect("the corpus is checked in");
    assert!(!corpus.is_empty(), "{}: empty corpus", target.name());
    let r = run_mutations(target, &corpus, INPUTS, seed);
    println!("{}", r.line(target));
    assert_eq!(r.inputs, INPUTS);
    if !r.failures.is_empty() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/mutation-failures");
        let _ = std::fs::create_dir_all(&dir);
        let mut msg = format!("{}\n", r.line(target));
        for f in r.failures.iter().take(10) {
            let file = dir.join(format!("{}-{}.bin", target.name(), f.index));
            let _ = std::fs::write(&file, &f.input);
            msg += &format!("  #{} {}: {} (input in {})\n", f.index, f.desc, f.what, file.display());
        }
        panic!("{msg}");
    }
    // the mutations reach past the first checks: some inputs still parse, most are refused
    assert!(r.errors > 0, "{}: no input was refused", target.name());
}

#[test]
fn idx_raw() {
    check(Target::IdxRaw, 0x1d);
}

#[test]
fn idx_gzip() {
    check(Target::IdxGzip, 0x9a);
}

#[test]
fn csv() {
    check(Target::Csv, 0xc5);
}

#[test]
fn safetensors() {
    check(Target::Safetensors, 0x5a);
}

#[test]
fn bincode() {
    check(Target::Bincode, 0xb1);
}

#[test]
fn fixture() {
    check(Target::Fixture, 0xf1);
}

#[test]
fn checkpoint() {
    check(Target::Checkpoint, 0xc4);
}

#[test]
fn config() {
    check(Target::Config, 0xcf);
}
