//! The readers under test, one [`Target`] each: how to run one on bytes,
//! the valid seed files of its corpus, and their structure for the
//! mutation engine.

use std::io::{Read, Write};
use std::path::Path;

use nw_data::{CsvOptions, ImageLayout, Task};
use nw_nn::{BatchNorm1d, Linear, Sequential};
use nw_tensor::Rng;
use serde_json::Value;

use crate::mutate::{Enc, Field, Seed, digit_fields, json_container, json_members, line_sections};

/// A reader that takes hostile bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `nw_data::parse_idx` / `parse_idx_images` / `parse_idx_labels` on raw IDX.
    IdxRaw,
    /// `parse_idx` and `parse_idx_images` on gzip-compressed IDX.
    IdxGzip,
    /// `nw_data::parse_uci_csv_bytes` and `parse_csv_bytes` (four option sets).
    Csv,
    /// `nw_nn::state::load_safetensors_bytes` into a small model.
    Safetensors,
    /// `nw_nn::state::load_bincode_bytes` into the same model.
    Bincode,
    /// `nw_parity::FixtureFile::parse`, then every tensor and case field read.
    Fixture,
    /// `nw_train::Checkpoint::from_bytes`, then what `nw resume` does with it
    /// (without the data): the stored configuration parsed, the trainer built
    /// from it ([`nw_train::build_trainer`] on the data set's nominal shape),
    /// the model, optimizer, schedule and trainer state restored, and one
    /// evaluation forward pass (through the weight average when there is one).
    Checkpoint,
    /// `nw_train::RunConfig::from_toml`, then the run built from it (model,
    /// optimizer, schedule, regularizers on the data set's nominal shape)
    /// without reading data files or training. The parse has the TOML
    /// parser's allowance ([`crate::harness::toml_allowance`]) on top of
    /// the bound; the build has the bound alone.
    Config,
}

/// The path named in the readers' errors.
const INPUT: &str = "fuzz-input";

impl Target {
    /// Every target.
    pub const ALL: [Target; 8] = [
        Target::IdxRaw,
        Target::IdxGzip,
        Target::Csv,
        Target::Safetensors,
        Target::Bincode,
        Target::Fixture,
        Target::Checkpoint,
        Target::Config,
    ];

    /// The target's name (its fuzz binary and corpus directory).
    pub fn name(self) -> &'static str {
        match self {
            Target::IdxRaw => "idx_raw",
            Target::IdxGzip => "idx_gzip",
            Target::Csv => "csv",
            Target::Safetensors => "safetensors",
            Target::Bincode => "bincode",
            Target::Fixture => "fixture",
            Target::Checkpoint => "checkpoint",
            Target::Config => "config",
        }
    }

    /// The target of a name.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Runs the reader on `data`: `Ok` or the reader's typed error as text.
    /// Whatever the bytes, this must return (no panic, no abort).
    pub fn run(self, data: &[u8]) -> Result<(), String> {
        let path = Path::new(INPUT);
        match self {
            Target::IdxRaw => {
                let a = nw_data::parse_idx(data.to_vec(), None, path).map(|_| ());
                let b = nw_data::parse_idx_images(data.to_vec(), ImageLayout::Nchw, path).map(|_| ());
                let c = nw_data::parse_idx_images(data.to_vec(), ImageLayout::Flat, path).map(|_| ());
                let d = nw_data::parse_idx_labels(data.to_vec(), path).map(|_| ());
                any_ok([a, b, c, d])
            }
            Target::IdxGzip => {
                // the gzip path with and without an expected magic; the conversions
                // after it are the raw target's
                let a = nw_data::parse_idx(data.to_vec(), None, path).map(|_| ());
                let b = nw_data::parse_idx_images(data.to_vec(), ImageLayout::Flat, path).map(|_| ());
                any_ok([a, b])
            }
            Target::Csv => {
                let opts = [
                    CsvOptions::default(),
                    CsvOptions::default().header(true),
                    CsvOptions::default().header(true).task(Task::Regression),
                    CsvOptions::default().header(true).target_column(0),
                ];
                // every reader runs on every input; the input counts as accepted
                // when one of them accepts it (a seed fits one layout)
                let mut results = vec![nw_data::parse_uci_csv_bytes(data.to_vec(), path).map(|_| ())];
                results.extend(
                    opts.iter().map(|o| nw_data::parse_csv_bytes(data.to_vec(), o, path).map(|_| ())),
                );
                match results.iter().any(Result::is_ok) {
                    true => Ok(()),
                    false => Err(results
                        .into_iter()
                        .find_map(Result::err)
                        .map(|e| e.to_string())
                        .unwrap_or_default()),
                }
            }
            Target::Safetensors => {
                nw_nn::state::load_safetensors_bytes(&state_model(), data).map_err(|e| e.to_string())
            }
            Target::Bincode => {
                nw_nn::state::load_bincode_bytes(&state_model(), data).map_err(|e| e.to_string())
            }
            Target::Fixture => {
                let f = nw_parity::FixtureFile::parse(data, path).map_err(|e| e.to_string())?;
                for case in &f.cases {
                    let c = nw_parity::Case::new(case);
                    let _ = (c.name(), c.tolerances());
                    read_tensors(case, 0);
                }
                Ok(())
            }
            Target::Checkpoint => {
                let ck = nw_train::Checkpoint::from_bytes(data, path).map_err(|e| e.to_string())?;
                crate::train::resume(&ck, data.len())
            }
            Target::Config => {
                let text = std::str::from_utf8(data).map_err(|e| format!("{INPUT}: not UTF-8: {e}"))?;
                let cfg = crate::train::parse_config(text)?;
                crate::train::build(cfg, data.len()).map(|_| ())
            }
        }
    }

    /// The valid seed files of this target's corpus, by file name. The
    /// fixture seeds are cut from `fixtures_dir` (the repository's
    /// `fixtures/reference`).
    pub fn generate_seeds(self, fixtures_dir: &Path) -> Vec<(String, Vec<u8>)> {
        match self {
            Target::IdxRaw => idx_seeds(),
            Target::IdxGzip => idx_seeds().into_iter().map(|(n, b)| (format!("{n}.gz"), gzip(&b))).collect(),
            Target::Csv => {
                let mut v: Vec<(String, Vec<u8>)> = [
                    ("uci.csv", "4,2,setosa,versicolor\n5.1,3.5,0\n4.9,3.0,0\n7.0,3.2,1\n6.4,3.2,1\n"),
                    ("plain.csv", "0.5,1,0\n-1,2e-1,1\n3,4,2\n"),
                    ("header_regression.csv", "x1,x2,y\n0.5,1,3.0\n-1,2e-1,4.5\n"),
                    ("names.csv", "a,b,label\n1,2,cat\n3,4,dog\n\"5\", 6 ,cat\n"),
                ]
                .into_iter()
                .map(|(n, t)| (n.to_string(), t.as_bytes().to_vec()))
                .collect();
                v.push(("plain.csv.gz".into(), gzip(b"1,2,0\n3,4,1\n")));
                v
            }
            Target::Safetensors => (0..2)
                .map(|s| {
                    let m = state_model_seeded(s);
                    (format!("model{s}.safetensors"), nw_nn::state::to_safetensors(&m).expect("serialises"))
                })
                .collect(),
            Target::Bincode => (0..2)
                .map(|s| {
                    let m = state_model_seeded(s);
                    (format!("model{s}.nwstate"), nw_nn::state::to_bincode(&m).expect("serialises"))
                })
                .collect(),
            Target::Fixture => fixture_seeds(fixtures_dir),
            Target::Checkpoint => crate::train::checkpoint_seeds(),
            Target::Config => crate::train::config_seeds(),
        }
    }

    /// The mutation engine's view of a corpus file: its fields and sections.
    /// For `idx_gzip` the structure is that of the decompressed file (see
    /// [`Target::finish`], which compresses the mutated bytes again).
    pub fn structure(self, name: &str, bytes: &[u8]) -> Vec<Seed> {
        let mut seed = Seed { name: name.to_string(), bytes: bytes.to_vec(), ..Seed::default() };
        match self {
            Target::IdxRaw => idx_structure(&mut seed),
            Target::IdxGzip => {
                // the raw file, structured (mutated then compressed), and the gzip
                // stream itself as an unstructured seed
                let mut raw = Vec::new();
                let _ = flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut raw);
                let mut r = Seed { name: format!("{name} (decompressed)"), bytes: raw, ..Seed::default() };
                idx_structure(&mut r);
                return vec![r, seed];
            }
            Target::Csv => {
                seed.fields = digit_fields(bytes, 0..bytes.len());
                seed.fields.truncate(48);
                seed.sections = line_sections(bytes);
            }
            Target::Safetensors => safetensors_structure(&mut seed),
            Target::Bincode => bincode_structure(&mut seed),
            Target::Fixture => {
                seed.fields = digit_fields(bytes, 0..bytes.len());
                seed.fields.truncate(64);
                seed.sections = json_members(bytes, 0);
                if let Some(at) =
                    find(bytes, b"\"cases\"").and_then(|c| find(&bytes[c..], b"[").map(|o| c + o))
                {
                    seed.sections.extend(json_members(bytes, at));
                }
            }
            Target::Checkpoint => crate::train::checkpoint_structure(&mut seed),
            Target::Config => {
                seed.fields = digit_fields(bytes, 0..bytes.len());
                seed.fields.truncate(64);
                seed.sections = line_sections(bytes);
            }
        }
        vec![seed]
    }

    /// Prepares a mutated input for the reader: `idx_gzip` compresses one
    /// that is not a gzip stream; `bincode` recomputes the payload checksum,
    /// `checkpoint` the payload length and SHA-256, and `safetensors` the
    /// header length for three inputs in four (so the
    /// mutation reaches past those checks, as an attacker's would), leaving
    /// the fourth as mutated.
    pub fn finish(self, mut bytes: Vec<u8>, index: usize) -> Vec<u8> {
        match self {
            Target::IdxGzip if !(bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) => {
                // a real compressor for one input in eight; stored blocks (no
                // compressor state to set up, so 8x faster) for the rest
                if index.is_multiple_of(8) { gzip(&bytes) } else { gzip_stored(&bytes) }
            }
            Target::Bincode if !index.is_multiple_of(4) && bytes.len() >= 20 => {
                let sum = fnv1a(&bytes[20..]);
                bytes[12..20].copy_from_slice(&sum.to_le_bytes());
                bytes
            }
            Target::Checkpoint if !index.is_multiple_of(4) => crate::train::reseal(bytes),
            Target::Safetensors if !index.is_multiple_of(4) && bytes.len() > 8 => {
                if let Some((_, end)) = json_container(&bytes, 8) {
                    let n = (end - 8) as u64;
                    bytes[..8].copy_from_slice(&n.to_le_bytes());
                }
                bytes
            }
            _ => bytes,
        }
    }
}

/// `Ok` when one reader accepted the input (each expects its own layout),
/// else the first error.
fn any_ok<const N: usize>(results: [nw_data::Result<()>; N]) -> Result<(), String> {
    match results.iter().any(Result::is_ok) {
        true => Ok(()),
        false => Err(results.into_iter().find_map(Result::err).map(|e| e.to_string()).unwrap_or_default()),
    }
}

/// The model the state targets load into: parameters and an i64 buffer.
fn state_model() -> Sequential {
    state_model_seeded(7)
}

fn state_model_seeded(seed: u64) -> Sequential {
    let mut rng = Rng::new(seed);
    Sequential::new()
        .with(Linear::new(3, 4, &mut rng))
        .with(BatchNorm1d::new(4))
        .with(Linear::new(4, 2, &mut rng))
}

/// Reads every `{"shape", "data"}` object of a case as a tensor (and its
/// values as indices), at most 64 levels deep.
fn read_tensors(v: &Value, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        Value::Object(m) => {
            if m.contains_key("shape")
                && m.contains_key("data")
                && let Ok(t) = nw_parity::JsonTensor::from_value(v, "tensor")
            {
                let _ = t.to_tensor();
                let _ = t.to_indices("tensor");
            }
            m.values().for_each(|x| read_tensors(x, depth + 1));
        }
        Value::Array(a) => a.iter().for_each(|x| read_tensors(x, depth + 1)),
        _ => {}
    }
}

/// The payload checksum of nw's bincode state (64-bit FNV-1a, as `nw_nn::state`).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Gzip-compresses `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("in memory");
    e.finish().expect("in memory")
}

/// A gzip stream of `bytes` in stored (uncompressed) deflate blocks:
/// the 10-byte header, blocks of at most 65,535 bytes (`BFINAL/BTYPE=00`,
/// `LEN`, `NLEN`, data), then the CRC-32 and the length mod 2^32 (RFC 1952, 1951).
pub fn gzip_stored(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = bytes.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(c) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let n = c.len() as u16;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(!n).to_le_bytes());
        out.extend_from_slice(c);
    }
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn idx(magic: u32, dims: &[u32], fill: impl Fn(usize) -> u8) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    let n: u32 = dims.iter().product();
    v.extend((0..n as usize).map(fill));
    v
}

fn idx_seeds() -> Vec<(String, Vec<u8>)> {
    vec![
        ("images-2x3x4.idx3".into(), idx(0x0803, &[2, 3, 4], |i| (i * 37 % 256) as u8)),
        ("labels-5.idx1".into(), idx(0x0801, &[5], |i| (i % 10) as u8)),
        ("matrix-2x2.idx2".into(), idx(0x0802, &[2, 2], |i| i as u8)),
    ]
}

fn idx_structure(seed: &mut Seed) {
    let b = &seed.bytes;
    if b.len() < 4 {
        return;
    }
    let ndim = b[3] as usize;
    seed.fields.push(Field { at: 3, len: 1, enc: Enc::U8 });
    for d in 0..ndim {
        if 8 + 4 * d <= b.len() {
            seed.fields.push(Field { at: 4 + 4 * d, len: 4, enc: Enc::U32Be });
            seed.sections.push(4 + 4 * d..8 + 4 * d);
        }
    }
    let h = (4 + 4 * ndim).min(b.len());
    if h < b.len() {
        seed.sections.push(h..b.len());
        seed.sections.push(h..h + (b.len() - h) / 2);
    }
}

fn safetensors_structure(seed: &mut Seed) {
    let b = &seed.bytes;
    if b.len() < 8 {
        return;
    }
    let n = u64::from_le_bytes(b[..8].try_into().expect("8 bytes")) as usize;
    let end = n.saturating_add(8).min(b.len());
    seed.fields.push(Field { at: 0, len: 8, enc: Enc::U64Le });
    seed.fields.extend(digit_fields(b, 8..end));
    seed.sections = json_members(b, 8);
    // each tensor's data, from the header's data_offsets
    if let Ok(Value::Object(h)) = serde_json::from_slice::<Value>(&b[8..end]) {
        for v in h.values() {
            let offsets = v.get("data_offsets").and_then(Value::as_array);
            let bounds = offsets.and_then(|a| Some((a.first()?.as_u64()?, a.get(1)?.as_u64()?)));
            if let Some((s, e)) = bounds
                && s <= e
                && end.saturating_add(e as usize) <= b.len()
            {
                seed.sections.push(end + s as usize..end + e as usize);
            }
        }
    }
}

/// Walks nw's bincode state (see `nw_nn::state`) to find its varint fields
/// and entry sections.
fn bincode_structure(seed: &mut Seed) {
    let b = seed.bytes.clone();
    let mut pos = 20;
    let varint = |pos: &mut usize, fields: &mut Vec<Field>| -> Option<u64> {
        let tag = *b.get(*pos)?;
        let (v, len) = match tag {
            0..=250 => (u64::from(tag), 1),
            251 => (u64::from(u16::from_le_bytes(b.get(*pos + 1..*pos + 3)?.try_into().ok()?)), 3),
            252 => (u64::from(u32::from_le_bytes(b.get(*pos + 1..*pos + 5)?.try_into().ok()?)), 5),
            253 => (u64::from_le_bytes(b.get(*pos + 1..*pos + 9)?.try_into().ok()?), 9),
            _ => return None,
        };
        fields.push(Field { at: *pos, len, enc: Enc::Varint });
        *pos += len;
        Some(v)
    };
    let mut fields = Vec::new();
    let mut sections = Vec::new();
    let walk = (|| -> Option<()> {
        let n = varint(&mut pos, &mut fields)?;
        for _ in 0..n {
            let start = pos;
            let name_len = varint(&mut pos, &mut fields)? as usize;
            pos += name_len;
            let dims = varint(&mut pos, &mut fields)?;
            for _ in 0..dims {
                varint(&mut pos, &mut fields)?;
            }
            let kind = varint(&mut pos, &mut fields)?;
            let count = varint(&mut pos, &mut fields)? as usize;
            if kind == 0 {
                pos += 4 * count;
            } else {
                let mut junk = Vec::new();
                for _ in 0..count {
                    varint(&mut pos, &mut junk)?;
                }
            }
            sections.push(start..pos);
        }
        Some(())
    })();
    let _ = walk;
    seed.fields = fields;
    seed.sections = sections;
}

/// A case with every tensor cut to at most 4 values (shape `[n]`) and every
/// other array to at most 8 items, so seeds stay small and valid.
fn shrink(v: Value) -> Value {
    match v {
        Value::Object(mut m) => {
            if let (Some(Value::Array(d)), Some(Value::Array(_))) = (m.get("data"), m.get("shape"))
                && d.len() > 4
            {
                let d: Vec<Value> = d[..4].to_vec();
                m.insert("shape".into(), serde_json::json!([4]));
                m.insert("data".into(), Value::Array(d));
            }
            Value::Object(m.into_iter().map(|(k, v)| (k, shrink(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().take(8).map(shrink).collect()),
        o => o,
    }
}

/// Small fixture files: the smallest case of each reference file, one file
/// each (two for layers), with tensors cut short by [`shrink`].
fn fixture_seeds(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    names.sort();
    for p in names.iter().filter(|p| p.extension().is_some_and(|x| x == "json")) {
        let Ok(f) = nw_parity::FixtureFile::load(p) else { continue };
        let mut cases: Vec<&Value> = f.cases.iter().collect();
        cases.sort_by_key(|c| c.to_string().len());
        let take = if f.kind == "layer" { 2 } else { 1 };
        let file = serde_json::json!({
            "format": f.format,
            "kind": f.kind,
            "note": "seed for the fixture reader's fuzz target (cut from fixtures/reference)",
            "cases": cases.into_iter().take(take).map(|c| shrink(c.clone())).collect::<Vec<_>>(),
        });
        let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let text = serde_json::to_string(&file).expect("serialises");
        out.push((format!("{stem}.json"), text.into_bytes()));
    }
    out
}
