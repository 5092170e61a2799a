//! The peak allocation of each stage of the `config` target, per input:
//! `cargo run --release -p nw-fuzz --example config_stages -- [FILE...]`
//! (with no files: the config corpus, `fuzz/regressions/config-afl/` and
//! `fuzz/regressions/config-toml/`). Prints one row per file, then the
//! minimum, median and maximum of each stage over the files, in bytes and
//! in bytes per input byte.
//!
//! Stages, each measured on its own with the counting allocator (outside
//! [`nw_fuzz::alloc::allowing`], so these are what the code holds):
//! - `lex`: toml_parser's token vector (`Source::lex().into_vec()`);
//! - `events`: the tokens and toml_parser's event vector, as `toml` builds
//!   them before it builds the document (see [`events`]);
//! - `typed`: `toml::from_str::<RunConfig>`: the whole parse, the document
//!   tree, and serde deserialisation into the typed configuration (for an
//!   input that is not valid TOML, the error built but not formatted);
//! - `format`: the `toml` error's `to_string` (0 when it parsed);
//! - `from_toml`: `RunConfig::from_toml`, all of the above;
//! - `validate`, `build`: `RunConfig::validate` and
//!   `nw_fuzz::train::build` (the trainer on the nominal shape), 0 when
//!   the configuration did not get that far;
//! - `target`: the whole `config` target, net of the TOML parser's
//!   allowance ([`nw_fuzz::harness::toml_allowance`]), as the harness
//!   compares it with `bound` ([`nw_fuzz::harness::alloc_bound`]).

use std::path::{Path, PathBuf};

use nw_fuzz::Target;
use nw_fuzz::alloc::{CountingAlloc, measure};
use nw_fuzz::harness::{alloc_bound, corpus_dir};
use nw_train::RunConfig;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The stage names, in the order of [`Row::peaks`].
const STAGES: [&str; 9] =
    ["lex", "events", "typed", "format", "from_toml", "validate", "build", "target", "bound"];

/// One input's figures.
struct Row {
    name: String,
    bytes: usize,
    tokens: usize,
    events: usize,
    peaks: [usize; 9],
}

fn files() -> Vec<PathBuf> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if !args.is_empty() {
        return args;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut out = Vec::new();
    for dir in [corpus_dir(Target::Config), root.join("config-afl"), root.join("config-toml")] {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            v.sort();
            out.extend(v);
        }
    }
    out
}

/// What `toml` (1.2) does before it builds the document tree: the token
/// vector, then toml_parser's event vector (reserved at the token count,
/// as `toml::de::parser::parse_document` does), with the same whitespace
/// check and recursion limit (80). Returns the event count.
fn events(text: &str) -> usize {
    use toml_parser::parser::{RecursionGuard, ValidateWhitespace};
    let source = toml_parser::Source::new(text);
    let tokens = source.lex().into_vec();
    let mut events = Vec::with_capacity(tokens.len());
    let mut ws = ValidateWhitespace::new(&mut events, source);
    let mut guard = RecursionGuard::new(&mut ws, 80);
    let mut first: Option<toml_parser::ParseError> = None;
    toml_parser::parser::parse_document(&tokens, &mut guard, &mut first);
    events.len()
}

fn measure_one(name: String, bytes: &[u8]) -> Option<Row> {
    let n = bytes.len();
    let text = std::str::from_utf8(bytes).ok()?;
    let peak = |f: &mut dyn FnMut()| measure(usize::MAX, f).1.peak;
    let lex = peak(&mut || drop(toml_parser::Source::new(text).lex().into_vec()));
    let (n_events, ev) = measure(usize::MAX, || events(text));
    let (typed_r, typed) = measure(usize::MAX, || toml::from_str::<RunConfig>(text));
    let format = match &typed_r {
        Err(e) => peak(&mut || drop(e.to_string())),
        Ok(_) => 0,
    };
    drop(typed_r);
    let (cfg, from_toml) = measure(usize::MAX, || RunConfig::from_toml(text));
    let (validate, build) = match cfg {
        Ok(mut cfg) => {
            cfg.model.init_from = None;
            let (valid, validate) = measure(usize::MAX, || cfg.validate().is_ok());
            let build = if valid { peak(&mut || drop(nw_fuzz::train::build(cfg.clone(), n))) } else { 0 };
            (validate.peak, build)
        }
        Err(_) => (0, 0),
    };
    let target = peak(&mut || drop(Target::Config.run(bytes)));
    Some(Row {
        name,
        bytes: n,
        tokens: toml_parser::Source::new(text).lex().count(),
        events: n_events,
        peaks: [
            lex,
            ev.peak,
            typed.peak,
            format,
            from_toml.peak,
            validate,
            build,
            target,
            alloc_bound(bytes),
        ],
    })
}

fn main() {
    let mut rows = Vec::new();
    print!("{:<30} {:>6} {:>6} {:>6}", "file", "bytes", "tokens", "events");
    STAGES.iter().for_each(|s| print!(" {s:>9}"));
    println!();
    for path in files() {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let Some(row) = measure_one(name.clone(), &bytes) else {
            println!("{name:<30} {:>6} not UTF-8", bytes.len());
            continue;
        };
        print!("{:<30} {:>6} {:>6} {:>6}", row.name, row.bytes, row.tokens, row.events);
        row.peaks.iter().for_each(|p| print!(" {p:>9}"));
        println!();
        rows.push(row);
    }
    if rows.is_empty() {
        return;
    }
    println!("\nover {} files: min / median / max, in bytes and in bytes per input byte", rows.len());
    for (i, stage) in STAGES.iter().enumerate() {
        let mut abs: Vec<usize> = rows.iter().map(|r| r.peaks[i]).collect();
        let mut rel: Vec<f64> = rows.iter().map(|r| r.peaks[i] as f64 / r.bytes.max(1) as f64).collect();
        abs.sort_unstable();
        rel.sort_by(f64::total_cmp);
        let mid = rows.len() / 2;
        println!(
            "{stage:>9}: {:>9} {:>9} {:>9}   {:>7.1}x {:>7.1}x {:>7.1}x",
            abs[0],
            abs[mid],
            abs[rows.len() - 1],
            rel[0],
            rel[mid],
            rel[rows.len() - 1]
        );
    }
}
