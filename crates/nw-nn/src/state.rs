//! Saving and loading a model's parameters and buffers under PyTorch's
//! `state_dict` names, as safetensors (readable and writable by PyTorch's
//! `safetensors` package) or as a checksummed bincode file.
//!
//! Loading is all-or-nothing: every name, shape and dtype is checked first,
//! and any difference ([`StateMismatch`]: missing keys, unexpected keys,
//! shape mismatches with both shapes, dtype mismatches) is an error that
//! leaves the model untouched. A truncated or corrupted file is an error
//! ([`StateError::Corrupt`]), never a panic or a partial load. No length,
//! count or shape in a file is trusted: each is checked (overflow-checked
//! products, counts against the bytes that remain) before anything is
//! allocated, so a file of `n` bytes never makes the reader hold much more
//! than `n` bytes (the mutation tests in `crates/nw-fuzz` measure it).
//!
//! ```
//! use nw_nn::{state, Linear, Module, Sequential, Relu};
//! use nw_tensor::Rng;
//! let a = Sequential::new().with(Linear::new(3, 4, &mut Rng::new(0))).with(Relu).with(Linear::new(4, 2, &mut Rng::new(1)));
//! let b = Sequential::new().with(Linear::new(3, 4, &mut Rng::new(5))).with(Relu).with(Linear::new(4, 2, &mut Rng::new(6)));
//! let bytes = state::to_safetensors(&a).unwrap();
//! state::load_safetensors_bytes(&b, &bytes).unwrap();
//! assert_eq!(a.parameters()[0].value(), b.parameters()[0].value());
//! // a model of another shape is refused, naming what differs
//! let c = Sequential::new().with(Linear::new(3, 5, &mut Rng::new(0)));
//! let e = state::load_safetensors_bytes(&c, &bytes).unwrap_err().to_string();
//! assert!(e.contains("0.weight: shape [5, 3] in the model, [4, 3] in the file"), "{e}");
//! assert!(e.contains("unexpected keys: 2.bias, 2.weight"), "{e}");
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use nw_tensor::Tensor;
use serde::Serialize;
use thiserror::Error;

use crate::error::NnError;
use crate::module::{Buffer, BufferValue, Dtype, Module};

/// What went wrong saving or loading state.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StateError {
    /// The file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's message.
        message: String,
    },
    /// The bytes are not a valid file of the format (truncated, corrupted, wrong magic).
    #[error("{format}: corrupt or truncated state: {reason}")]
    Corrupt {
        /// `safetensors` or `bincode`.
        format: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The file does not fit the model.
    #[error("state does not match the model: {0}")]
    Mismatch(StateMismatch),
}

/// Every difference between a model and a state file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateMismatch {
    /// Names the model has and the file lacks (sorted).
    pub missing: Vec<String>,
    /// Names the file has and the model lacks (sorted).
    pub unexpected: Vec<String>,
    /// `(name, shape in the model, shape in the file)`.
    pub shapes: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// `(name, dtype in the model, dtype in the file)` (the file's as written there).
    pub dtypes: Vec<(String, Dtype, String)>,
}

impl StateMismatch {
    fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.shapes.is_empty()
            && self.dtypes.is_empty()
    }
}

impl std::fmt::Display for StateMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing keys: {}", self.missing.join(", ")));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!("unexpected keys: {}", self.unexpected.join(", ")));
        }
        for (n, m, fl) in &self.shapes {
            parts.push(format!("{n}: shape {m:?} in the model, {fl:?} in the file"));
        }
        for (n, m, fl) in &self.dtypes {
            parts.push(format!("{n}: dtype {m} in the model, {fl} in the file"));
        }
        f.write_str(&parts.join("; "))
    }
}

/// One entry of a model's state: a parameter (f32) or a buffer.
enum Slot {
    Param(nw_autograd::Param),
    Buffer(Buffer),
}

impl Slot {
    fn dtype(&self) -> Dtype {
        match self {
            Slot::Param(_) => Dtype::F32,
            Slot::Buffer(b) => b.dtype(),
        }
    }
    fn shape(&self) -> Vec<usize> {
        match self {
            Slot::Param(p) => p.shape(),
            Slot::Buffer(b) => b.shape(),
        }
    }
}

fn slots(m: &dyn Module) -> BTreeMap<String, Slot> {
    let mut out = BTreeMap::new();
    for (n, p) in m.named_parameters() {
        out.insert(n, Slot::Param(p));
    }
    for (n, b) in m.named_buffers() {
        out.insert(n, Slot::Buffer(b));
    }
    out
}

/// The model's state: every parameter and buffer by name (sorted by name).
pub fn state_dict(m: &dyn Module) -> BTreeMap<String, BufferValue> {
    slots(m)
        .into_iter()
        .map(|(n, s)| {
            let v = match s {
                Slot::Param(p) => BufferValue::F32(p.value()),
                Slot::Buffer(b) => b.value(),
            };
            (n, v)
        })
        .collect()
}

/// Writes `state` into the model after checking that names, shapes and
/// dtypes match exactly; on any difference nothing is written.
pub fn load_state_dict(m: &dyn Module, state: &BTreeMap<String, BufferValue>) -> Result<(), NnError> {
    load_state_dict_check(m, state, &[])?;
    let slots = slots(m);
    for (name, slot) in &slots {
        let v = state[name].clone();
        match (slot, v) {
            (Slot::Param(p), BufferValue::F32(t)) => p.set(t)?,
            (Slot::Buffer(b), v) => b.set(v)?,
            (Slot::Param(_), BufferValue::I64 { .. }) => unreachable!("dtypes checked above"),
        }
    }
    Ok(())
}

// ----- safetensors -----------------------------------------------------------

fn corrupt(format: &'static str, reason: impl std::fmt::Display) -> NnError {
    StateError::Corrupt { format, reason: reason.to_string() }.into()
}

/// The model's state as safetensors bytes (F32 parameters and running
/// statistics, I64 counters), under PyTorch's names.
pub fn to_safetensors(m: &dyn Module) -> Result<Vec<u8>, NnError> {
    let state = state_dict(m);
    let mut raw: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (n, v) in &state {
        match v {
            BufferValue::F32(t) => {
                let bytes: Vec<u8> = t.to_vec().iter().flat_map(|x| x.to_le_bytes()).collect();
                raw.push((n.clone(), safetensors::Dtype::F32, t.shape().to_vec(), bytes));
            }
            BufferValue::I64 { shape, data } => {
                let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
                raw.push((n.clone(), safetensors::Dtype::I64, shape.clone(), bytes));
            }
        }
    }
    let views = raw
        .iter()
        .map(|(n, d, s, b)| Ok((n.as_str(), safetensors::tensor::TensorView::new(*d, s.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| corrupt("safetensors", e))?;
    safetensors::serialize(views, None).map_err(|e| corrupt("safetensors", e))
}

/// Tensors by name.
type StateMap = BTreeMap<String, BufferValue>;

/// Reads safetensors bytes into a state map (F32 and I64 tensors; any other
/// dtype is kept as a mismatch to report).
fn parse_safetensors(bytes: &[u8]) -> Result<(StateMap, Vec<(String, String)>), NnError> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| corrupt("safetensors", e))?;
    let mut out = BTreeMap::new();
    let mut other = Vec::new();
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let data = view.data();
        match view.dtype() {
            safetensors::Dtype::F32 => {
                let v: Vec<f32> = data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect();
                let t = Tensor::from_vec(v, &shape).map_err(|e| corrupt("safetensors", e))?;
                out.insert(name, BufferValue::F32(t));
            }
            safetensors::Dtype::I64 => {
                let v: Vec<i64> = data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect();
                if nw_tensor::checked_numel(&shape) != Some(v.len()) {
                    return Err(corrupt("safetensors", format!("{name}: data does not fill {shape:?}")));
                }
                out.insert(name, BufferValue::I64 { shape, data: v });
            }
            d => other.push((name, format!("{d:?}"))),
        }
    }
    Ok((out, other))
}

/// Loads safetensors bytes into the model (all-or-nothing; see the module docs).
pub fn load_safetensors_bytes(m: &dyn Module, bytes: &[u8]) -> Result<(), NnError> {
    let (state, other) = parse_safetensors(bytes)?;
    if !other.is_empty() {
        // report every problem at once: run the normal check on what parsed,
        // then add the unsupported dtypes to it
        let slots = slots(m);
        let mut mm = match load_state_dict_check(m, &state, &other) {
            Err(NnError::State(StateError::Mismatch(mm))) => mm,
            _ => StateMismatch::default(),
        };
        for (n, d) in other {
            match slots.get(&n) {
                Some(s) => mm.dtypes.push((n, s.dtype(), d)),
                None => mm.unexpected.push(n),
            }
        }
        mm.unexpected.sort();
        mm.dtypes.sort_by(|a, b| a.0.cmp(&b.0));
        return Err(StateError::Mismatch(mm).into());
    }
    load_state_dict(m, &state)
}

/// The check of [`load_state_dict`] without writing, treating names in
/// `other` as present (their dtype is reported separately).
fn load_state_dict_check(
    m: &dyn Module,
    state: &BTreeMap<String, BufferValue>,
    other: &[(String, String)],
) -> Result<(), NnError> {
    let slots = slots(m);
    let mut mm = StateMismatch::default();
    for (name, slot) in &slots {
        match state.get(name) {
            None if other.iter().any(|(n, _)| n == name) => {}
            None => mm.missing.push(name.clone()),
            Some(v) if v.dtype() != slot.dtype() => {
                mm.dtypes.push((name.clone(), slot.dtype(), v.dtype().to_string()))
            }
            Some(v) if v.shape() != slot.shape() => mm.shapes.push((name.clone(), slot.shape(), v.shape())),
            Some(_) => {}
        }
    }
    mm.unexpected = state.keys().filter(|k| !slots.contains_key(*k)).cloned().collect();
    if mm.is_empty() { Ok(()) } else { Err(StateError::Mismatch(mm).into()) }
}

/// Writes the model's state as a safetensors file (atomically: a temporary
/// file in the same directory, fsync, rename).
pub fn save_safetensors(m: &dyn Module, path: &Path) -> Result<(), NnError> {
    write_atomic(path, &to_safetensors(m)?)
}

/// Loads a safetensors file into the model (all-or-nothing).
pub fn load_safetensors(m: &dyn Module, path: &Path) -> Result<(), NnError> {
    load_safetensors_bytes(m, &read(path)?)
}

// ----- bincode -----------------------------------------------------------------

const MAGIC: &[u8; 8] = b"nwstate\0";
const VERSION: u32 = 1;

#[derive(Serialize)]
struct Entry {
    name: String,
    shape: Vec<u64>,
    value: EntryData,
}

#[derive(Serialize)]
enum EntryData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// 64-bit FNV-1a, the payload checksum of the bincode format.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The model's state in nw's bincode format: the magic `nwstate\0`, a u32
/// version, a u64 FNV-1a checksum of the payload, then the payload (bincode
/// 2, standard configuration: a list of `(name, shape, F32 | I64 values)`).
pub fn to_bincode(m: &dyn Module) -> Result<Vec<u8>, NnError> {
    let entries: Vec<Entry> = state_dict(m)
        .into_iter()
        .map(|(name, v)| {
            let shape = v.shape().iter().map(|&d| d as u64).collect();
            let value = match v {
                BufferValue::F32(t) => EntryData::F32(t.to_vec()),
                BufferValue::I64 { data, .. } => EntryData::I64(data),
            };
            Entry { name, shape, value }
        })
        .collect();
    let payload = bincode::serde::encode_to_vec(&entries, bincode::config::standard())
        .map_err(|e| corrupt("bincode", e))?;
    let mut out = Vec::with_capacity(payload.len() + 20);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&fnv1a(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Loads bytes written by [`to_bincode`] into the model (all-or-nothing).
pub fn load_bincode_bytes(m: &dyn Module, bytes: &[u8]) -> Result<(), NnError> {
    if bytes.len() < 20 || &bytes[..8] != MAGIC {
        return Err(corrupt("bincode", "not an nw state file (bad magic or shorter than its header)"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(corrupt("bincode", format!("version {version}, this build reads {VERSION}")));
    }
    let sum = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let payload = &bytes[20..];
    if fnv1a(payload) != sum {
        return Err(corrupt("bincode", "checksum mismatch (truncated or modified)"));
    }
    let entries = decode_entries(payload)?;
    let mut state = BTreeMap::new();
    for e in entries {
        let shape: Vec<usize> = e.shape.iter().map(|&d| usize::try_from(d).unwrap_or(usize::MAX)).collect();
        let fills = |len: usize| nw_tensor::checked_numel(&shape) == Some(len);
        let v = match e.value {
            EntryData::F32(v) if fills(v.len()) => {
                BufferValue::F32(Tensor::from_vec(v, &shape).map_err(|err| corrupt("bincode", err))?)
            }
            EntryData::I64(v) if fills(v.len()) => BufferValue::I64 { shape, data: v },
            _ => return Err(corrupt("bincode", format!("{}: data does not fill {:?}", e.name, e.shape))),
        };
        if state.insert(e.name.clone(), v).is_some() {
            return Err(corrupt("bincode", format!("{} appears twice", e.name)));
        }
    }
    load_state_dict(m, &state)
}

/// Writes the model's state as an nw bincode file (atomically).
pub fn save_bincode(m: &dyn Module, path: &Path) -> Result<(), NnError> {
    write_atomic(path, &to_bincode(m)?)
}

/// Loads an nw bincode file into the model (all-or-nothing).
pub fn load_bincode(m: &dyn Module, path: &Path) -> Result<(), NnError> {
    load_bincode_bytes(m, &read(path)?)
}

/// Decodes the payload written by [`to_bincode`] (bincode 2, standard
/// configuration: little-endian, variable-length integers) without trusting
/// any length in it: every count is checked against the bytes that remain
/// before anything is allocated, so a payload of `n` bytes never allocates
/// more than about `n` bytes in all, whatever its lengths claim.
///
/// The layout, in bincode's terms: `Vec<Entry>` is a varint count then the
/// entries; `Entry` is `name: String` (varint byte count, UTF-8 bytes),
/// `shape: Vec<u64>` (varint count, varint values), `value` (varint variant
/// index, 0 = `F32`: varint count, 4-byte LE floats; 1 = `I64`: varint
/// count, zigzag varints).
fn decode_entries(payload: &[u8]) -> Result<Vec<Entry>, NnError> {
    let mut r = Wire { bytes: payload, pos: 0 };
    // every entry takes at least 4 bytes (name length, shape count, variant, data count)
    let n = r.count(4, "entry count")?;
    let mut entries = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let len = r.count(1, "name length")?;
        let name = std::str::from_utf8(r.take(len)?)
            .map_err(|_| corrupt("bincode", "an entry name is not UTF-8"))?
            .to_string();
        let dims = r.count(1, "shape length")?;
        let shape = (0..dims).map(|_| r.varint()).collect::<Result<Vec<u64>, _>>()?;
        let value = match r.varint()? {
            0 => {
                let len = r.count(4, "f32 count")?;
                let raw = r.take(len * 4)?;
                EntryData::F32(
                    raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
                )
            }
            1 => {
                let len = r.count(1, "i64 count")?;
                let v = (0..len)
                    .map(|_| {
                        // zigzag: 2n for n >= 0, -2n - 1 for n < 0
                        r.varint().map(|z| ((z >> 1) as i64) ^ -((z & 1) as i64))
                    })
                    .collect::<Result<Vec<i64>, _>>()?;
                EntryData::I64(v)
            }
            k => return Err(corrupt("bincode", format!("{name}: unknown value kind {k}"))),
        };
        entries.push(Entry { name, shape, value });
    }
    if r.pos != payload.len() {
        return Err(corrupt("bincode", format!("{} trailing bytes", payload.len() - r.pos)));
    }
    Ok(entries)
}

/// A cursor over a bincode payload.
struct Wire<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Wire<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next `n` bytes, or a truncation error.
    fn take(&mut self, n: usize) -> Result<&'a [u8], NnError> {
        if n > self.remaining() {
            return Err(corrupt("bincode", format!("truncated: {n} bytes needed at offset {}", self.pos)));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// A bincode varint u64: one byte `< 251`, or 251 / 252 / 253 followed by
    /// a little-endian u16 / u32 / u64.
    fn varint(&mut self) -> Result<u64, NnError> {
        let tag = self.take(1)?[0];
        Ok(match tag {
            0..=250 => u64::from(tag),
            251 => u64::from(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes"))),
            252 => u64::from(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"))),
            253 => u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")),
            t => {
                return Err(corrupt(
                    "bincode",
                    format!("invalid integer tag {t} at offset {}", self.pos - 1),
                ));
            }
        })
    }

    /// A count of items each at least `min_bytes` long, refused when the
    /// remaining bytes cannot hold that many (so it is safe to allocate).
    fn count(&mut self, min_bytes: usize, what: &str) -> Result<usize, NnError> {
        let at = self.pos;
        let n = self.varint()?;
        match usize::try_from(n).ok().and_then(|n| n.checked_mul(min_bytes).map(|b| (n, b))) {
            Some((n, b)) if b <= self.remaining() => Ok(n),
            _ => Err(corrupt(
                "bincode",
                format!("{what} {n} at offset {at} exceeds the {} bytes that remain", self.remaining()),
            )),
        }
    }
}

// ----- files -------------------------------------------------------------------

fn io(path: &Path, e: std::io::Error) -> NnError {
    StateError::Io { path: path.to_path_buf(), message: e.to_string() }.into()
}

fn read(path: &Path) -> Result<Vec<u8>, NnError> {
    std::fs::read(path).map_err(|e| io(path, e))
}

/// Temporary file next to `path`, fsync, rename over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NnError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(path, e));
    }
    Ok(())
}
