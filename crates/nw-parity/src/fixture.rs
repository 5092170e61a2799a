//! Reading fixture files and their tensors.

use std::path::{Path, PathBuf};

use nw_tensor::Tensor;
use serde::Deserialize;
use serde_json::Value;

use crate::ParityError;

/// The format tag every fixture file carries.
pub const FORMAT: &str = "nw-reference/1";

/// One fixture file: a kind and its cases (kept as JSON until a runner reads them).
#[derive(Debug, Clone, Deserialize)]
pub struct FixtureFile {
    /// Must be [`FORMAT`].
    pub format: String,
    /// The kind of every case in the file (`layer`, `optimizer`, ...).
    pub kind: String,
    /// Conventions restated by the generator.
    #[serde(default)]
    pub note: String,
    /// The cases.
    pub cases: Vec<Value>,
}

impl FixtureFile {
    /// Reads and validates one file.
    pub fn load(path: &Path) -> Result<Self, ParityError> {
        let bytes = std::fs::read(path)
            .map_err(|e| ParityError::Io { path: path.to_path_buf(), message: e.to_string() })?;
        Self::parse(&bytes, path)
    }

    /// Parses and validates the bytes of one file; `path` only names it in errors.
    ///
    /// ```
    /// use nw_parity::FixtureFile;
    /// let ok = br#"{"format": "nw-reference/1", "kind": "layer", "cases": []}"#;
    /// assert_eq!(FixtureFile::parse(ok, "f.json".as_ref()).unwrap().kind, "layer");
    /// assert!(FixtureFile::parse(b"{\"format\": 1", "f.json".as_ref()).is_err());
    /// ```
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, ParityError> {
        let parse = |message: String| ParityError::Parse { path: path.to_path_buf(), message };
        // serde_json refuses nesting deeper than 128 levels, so no input overflows the stack
        let file: FixtureFile = serde_json::from_slice(bytes).map_err(|e| parse(e.to_string()))?;
        if file.format != FORMAT {
            return Err(parse(format!("format is {:?}, expected {FORMAT:?}", file.format)));
        }
        Ok(file)
    }
}

/// Every `*.json` fixture file of a directory, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<(PathBuf, FixtureFile)>, ParityError> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| ParityError::Io { path: dir.to_path_buf(), message: e.to_string() })?;
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(ParityError::Io { path: dir.to_path_buf(), message: "no *.json fixture files".into() });
    }
    paths.into_iter().map(|p| FixtureFile::load(&p).map(|f| (p, f))).collect()
}

/// A tensor as fixtures write it: `{"shape": [...], "data": [...]}`, row-major,
/// values as f64. Deserializing checks that `data` fills `shape` exactly (with
/// an overflow-checked element count), so a hostile shape is an error.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawJsonTensor")]
pub struct JsonTensor {
    /// Dimensions (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f64>,
}

/// [`JsonTensor`] before its check.
#[derive(Deserialize)]
struct RawJsonTensor {
    shape: Vec<usize>,
    data: Vec<f64>,
}

impl TryFrom<RawJsonTensor> for JsonTensor {
    type Error = String;
    fn try_from(t: RawJsonTensor) -> Result<Self, String> {
        match nw_tensor::checked_numel(&t.shape) {
            Some(n) if n == t.data.len() => Ok(JsonTensor { shape: t.shape, data: t.data }),
            Some(n) => Err(format!("shape {:?} needs {n} values, has {}", t.shape, t.data.len())),
            None => Err(format!("shape {:?}: the number of elements overflows", t.shape)),
        }
    }
}

impl JsonTensor {
    /// Parses a JSON value, naming `what` on error.
    pub fn from_value(v: &Value, what: &str) -> Result<Self, CaseError> {
        JsonTensor::deserialize(v).map_err(|e| CaseError::Malformed(format!("{what}: {e}")))
    }

    /// As an f32 tensor.
    pub fn to_tensor(&self) -> Tensor {
        Tensor::from_vec(self.data.iter().map(|&x| x as f32).collect(), &self.shape)
            .expect("length checked in from_value")
    }

    /// The values as indices (class targets, embedding ids).
    pub fn to_indices(&self, what: &str) -> Result<Vec<usize>, CaseError> {
        self.data
            .iter()
            .map(|&x| {
                if x >= 0.0 && x.fract() == 0.0 {
                    Ok(x as usize)
                } else {
                    Err(CaseError::Malformed(format!("{what}: {x} is not a non-negative integer")))
                }
            })
            .collect()
    }
}

/// Why a case could not be judged on its numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseError {
    /// nw does not implement this case's kind, op or option yet (a failure).
    Unsupported(String),
    /// The case is missing a field or has a value of the wrong type.
    Malformed(String),
    /// nw returned an error while running the case.
    Failed(String),
}

impl std::fmt::Display for CaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaseError::Unsupported(m) => write!(f, "unsupported: {m}"),
            CaseError::Malformed(m) => write!(f, "malformed case: {m}"),
            CaseError::Failed(m) => write!(f, "error: {m}"),
        }
    }
}

/// Typed access to a case's fields.
pub struct Case<'a> {
    /// The case's JSON object.
    pub json: &'a Value,
}

impl<'a> Case<'a> {
    /// Wraps a case object.
    pub fn new(json: &'a Value) -> Self {
        Case { json }
    }

    /// The case's `name` (or `"?"`).
    pub fn name(&self) -> String {
        self.json.get("name").and_then(Value::as_str).unwrap_or("?").to_string()
    }

    /// A required field.
    pub fn field(&self, key: &str) -> Result<&'a Value, CaseError> {
        self.json.get(key).ok_or_else(|| CaseError::Malformed(format!("missing field {key:?}")))
    }

    /// An optional field (absent or null give `None`).
    pub fn opt(&self, key: &str) -> Option<&'a Value> {
        self.json.get(key).filter(|v| !v.is_null())
    }

    /// A required string field.
    pub fn str(&self, key: &str) -> Result<&'a str, CaseError> {
        self.field(key)?.as_str().ok_or_else(|| CaseError::Malformed(format!("{key:?} is not a string")))
    }

    /// A required number field.
    pub fn f64(&self, key: &str) -> Result<f64, CaseError> {
        self.field(key)?.as_f64().ok_or_else(|| CaseError::Malformed(format!("{key:?} is not a number")))
    }

    /// A required tensor field.
    pub fn tensor(&self, key: &str) -> Result<JsonTensor, CaseError> {
        JsonTensor::from_value(self.field(key)?, key)
    }

    /// The case's tolerances `(rtol, atol)`.
    pub fn tolerances(&self) -> Result<(f64, f64), CaseError> {
        Ok((self.f64("rtol")?, self.f64("atol")?))
    }
}

/// Reads a number from a JSON object of hyper-parameters, with a default.
pub fn hyper_f64(h: &Value, key: &str, default: f64) -> Result<f64, CaseError> {
    match h.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_f64().ok_or_else(|| CaseError::Malformed(format!("hyper {key:?} is not a number"))),
    }
}

/// Reads a boolean from a JSON object of hyper-parameters, with a default.
pub fn hyper_bool(h: &Value, key: &str, default: bool) -> Result<bool, CaseError> {
    match h.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_bool().ok_or_else(|| CaseError::Malformed(format!("hyper {key:?} is not a boolean"))),
    }
}

/// Fails with [`CaseError::Unsupported`] when `h` has a key outside `known`:
/// an option nw would silently ignore must not pass as supported.
pub fn reject_unknown(h: &Value, known: &[&str], what: &str) -> Result<(), CaseError> {
    if let Some(obj) = h.as_object() {
        for k in obj.keys() {
            if !known.contains(&k.as_str()) {
                return Err(CaseError::Unsupported(format!("{what}: option {k:?}")));
            }
        }
    }
    Ok(())
}
