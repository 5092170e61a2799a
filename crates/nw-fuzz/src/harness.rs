//! Runs a [`Target`] over its mutated corpus and reports every input that
//! panicked, took too long, or allocated more than its size justifies.

use std::cell::RefCell;
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::alloc::{AllocStats, measure};
use crate::mutate::{Mutations, Seed};
use crate::targets::Target;

/// Requests past this many bytes held are refused outright while a reader
/// runs (the process would die on them anyway; refusing turns a fallible
/// allocation into an error and an infallible one into an abort that names
/// the size).
pub const HARD_CAP: usize = 1 << 30;

/// The longest one input may take before it counts as a hang.
pub const SLOW: Duration = Duration::from_secs(2);

/// The most bytes a reader may hold at once for `input`: 64 times the larger
/// of its length and, for a gzip stream, its decompressed length (what the
/// decoder produces before it ends or fails: a stream corrupt past a long
/// valid prefix still decodes that prefix, which a reader may hold before it
/// sees the error), plus 1 MiB. A reader may keep the decoded file and a few copies and
/// conversions of it (f32 from bytes is 4x, a `Vec<i64>` from varints up to
/// 8x, strings and tensors beside them), never what a length field claims.
/// The TOML parser of the `config` and `checkpoint` targets has its own
/// measured allowance on top ([`TOML_BYTES_PER_BYTE`]).
pub fn alloc_bound(input: &[u8]) -> usize {
    let mut n = input.len();
    if input.len() >= 2 && input[0] == 0x1f && input[1] == 0x8b {
        let mut dec = flate2::read::MultiGzDecoder::new(input).take(HARD_CAP as u64);
        let mut buf = vec![0u8; 1 << 16];
        let mut out = 0usize;
        // count every byte decoded, up to the end or the first error
        while let Ok(k @ 1..) = dec.read(&mut buf) {
            out += k;
        }
        n = n.max(out);
    }
    n.saturating_mul(64).saturating_add(1 << 20)
}

/// The bytes the `toml` crate's parser may hold per byte of TOML text, on
/// top of [`alloc_bound`]: the `config` target parses its input, and the
/// `checkpoint` target its stored configuration, inside
/// [`crate::alloc::allowing`]`(`[`toml_allowance`]`(len))`, and everything
/// else they do (serde's typed configuration aside, which is inside too;
/// validation; the build of the model, optimizer and schedule) is held to
/// [`alloc_bound`] alone.
///
/// Why a separate factor: toml 1.2 (`toml::from_str`, `toml_parser` 1.1)
/// keeps, while it parses, a token vector (24 bytes a token, reserved at
/// 2/7 of the length and doubled: 41 bytes per byte at its peak for text
/// that is all one-byte tokens), an event vector (24 bytes an event,
/// reserved at the token count and doubled when error recovery emits two
/// or three events a token), and the document tree, where every table
/// (header, inline table, dotted-key segment, even an empty key's) is a
/// B-tree leaf of eleven slots, about 1.1 KB. No nw code runs in between,
/// and nw cannot make it smaller; `nw_train::config::MAX_CONFIG_BYTES`
/// (64 KiB) caps the text.
///
/// Measured (`cargo run --release -p nw-fuzz --example config_stages`,
/// peak of `RunConfig::from_toml` over the text's length): the 35 AFL++
/// findings of `fuzz/regressions/config-toml/` (6 to 34 KB, all invalid
/// TOML, refused before serde sees them) 98 / 146 / 272 bytes per byte
/// (min / median / max), of which the tokens are 41 and tokens plus events
/// 91 / 99 / 170; the config corpus 38 to 71. A random search of repeated
/// token patterns (4 KB texts, 420,000 patterns) and hand-built ones found
/// at most 1184 for invalid TOML (`a=[` then `{` + 79 dots + `}` repeated:
/// a table for every byte, 79 being the deepest dotted key toml builds)
/// and 540 for valid TOML (`[[y]]` tables with 40-segment dotted keys, a
/// table for every two bytes), linear in the length (the same at 2, 16 and
/// 32 KB). The error message (`to_string`, within the allowance) adds at
/// most 3 bytes per byte: it quotes the offending line.
///
/// A table opens at a token of its own, so one table per byte is the most
/// there can be: about 1.2 KB per byte with its tokens and events, as the
/// worst pattern shows. 2048 covers that with room, so that the fuzzers
/// look past the parser for what nw allocates.
pub const TOML_BYTES_PER_BYTE: usize = 2048;

/// The allowance for parsing `len` bytes of TOML: [`TOML_BYTES_PER_BYTE`]
/// per byte (at most 128 MiB, for a text of `nw_train::config::MAX_CONFIG_BYTES`).
pub fn toml_allowance(len: usize) -> usize {
    len.saturating_mul(TOML_BYTES_PER_BYTE)
}

/// An input a reader mishandled.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The input's position in the sequence.
    pub index: usize,
    /// Its seed and mutations.
    pub desc: String,
    /// What went wrong (the panic message, the allocation, the time).
    pub what: String,
    /// The bytes.
    pub input: Vec<u8>,
}

/// What a run saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Inputs run.
    pub inputs: usize,
    /// Of which enumerated (truncations, fields, sections) rather than random.
    pub enumerated: usize,
    /// Inputs the reader accepted.
    pub ok: usize,
    /// Inputs it refused with a typed error.
    pub errors: usize,
    /// Inputs it mishandled.
    pub failures: Vec<Failure>,
    /// The largest peak allocation seen, with the bound of its input.
    pub worst_peak: (usize, usize),
    /// The slowest input.
    pub slowest: Duration,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Report {
    /// One line: counts, worst allocation against its bound, slowest input.
    pub fn line(&self, target: Target) -> String {
        format!(
            "{}: {} inputs ({} enumerated) in {:.2?}: {} ok, {} typed errors, {} failures; \
             largest peak {} B (bound {} B); slowest input {:.2?}",
            target.name(),
            self.inputs,
            self.enumerated,
            self.elapsed,
            self.ok,
            self.errors,
            self.failures.len(),
            self.worst_peak.0,
            self.worst_peak.1,
            self.slowest
        )
    }
}

thread_local! {
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that keeps the message and location for
/// [`run_one`] instead of printing it, on threads that are running a reader.
fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let capturing = PANIC.with(|p| p.borrow().is_some());
            if capturing {
                let loc =
                    info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                PANIC.with(|p| *p.borrow_mut() = Some(format!("panic: {msg}{loc}")));
            } else {
                default(info);
            }
        }));
    });
}

/// The outcome of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The reader accepted it.
    Ok,
    /// The reader refused it with a typed error (its message).
    Refused(String),
    /// The reader mishandled it.
    Failed(String),
}

/// Runs `target` on one input, catching a panic and measuring allocation.
pub fn run_one(target: Target, input: &[u8]) -> (Outcome, AllocStats, Duration) {
    quiet_panics();
    PANIC.with(|p| *p.borrow_mut() = Some(String::new()));
    let t0 = Instant::now();
    let (r, stats) = measure(HARD_CAP, || catch_unwind(AssertUnwindSafe(|| target.run(input))));
    let took = t0.elapsed();
    let panic = PANIC.with(|p| p.borrow_mut().take()).filter(|m| !m.is_empty());
    // the bound without decompressing first (it can only grow with the decompressed size)
    let raw_bound = input.len().saturating_mul(64).saturating_add(1 << 20);
    let bound = if stats.peak <= raw_bound { raw_bound } else { alloc_bound(input) };
    let outcome = match r {
        Err(_) => Outcome::Failed(panic.unwrap_or_else(|| "panic".into())),
        Ok(_) if stats.refused > 0 => {
            Outcome::Failed(format!("asked for {} B held at once (hard cap {HARD_CAP} B)", stats.refused))
        }
        Ok(_) if stats.peak > bound => {
            Outcome::Failed(format!("peak allocation {} B exceeds the bound {bound} B", stats.peak))
        }
        Ok(_) if took > SLOW => Outcome::Failed(format!("took {took:.2?} (a hang: over {SLOW:?})")),
        Ok(Ok(())) => Outcome::Ok,
        Ok(Err(e)) => Outcome::Refused(e),
    };
    (outcome, stats, took)
}

/// The checked-in corpus of `target`: `fuzz/corpus/<name>/` of the repository.
pub fn corpus_dir(target: Target) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target.name())
}

/// The files of a corpus directory, sorted by name.
pub fn load_corpus(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_file() {
            let name = p.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            out.push((name, std::fs::read(&p)?));
        }
    }
    out.sort();
    Ok(out)
}

/// Runs `target` on `total` mutations of `corpus` (random phase from `seed`).
/// With the environment variable `NW_MUTATION_TRACE` set, each input's
/// description is printed before it runs (to find one that aborts).
pub fn run_mutations(target: Target, corpus: &[(String, Vec<u8>)], total: usize, seed: u64) -> Report {
    let seeds: Vec<Seed> = corpus.iter().flat_map(|(n, b)| target.structure(n, b)).collect();
    let trace = std::env::var_os("NW_MUTATION_TRACE").is_some();
    let muts = Mutations::new(&seeds, total, seed);
    let mut report = Report { enumerated: muts.enumerated(), ..Report::default() };
    let t0 = Instant::now();
    for m in muts {
        let bytes = target.finish(m.bytes, m.index);
        if trace {
            eprintln!("{} #{}: {}", target.name(), m.index, m.desc);
        }
        let (outcome, stats, took) = run_one(target, &bytes);
        report.inputs += 1;
        report.slowest = report.slowest.max(took);
        if stats.peak > report.worst_peak.0 {
            report.worst_peak = (stats.peak, alloc_bound(&bytes));
        }
        match outcome {
            Outcome::Ok => report.ok += 1,
            Outcome::Refused(_) => report.errors += 1,
            Outcome::Failed(what) => {
                report.failures.push(Failure { index: m.index, desc: m.desc, what, input: bytes })
            }
        }
    }
    report.elapsed = t0.elapsed();
    report
}
