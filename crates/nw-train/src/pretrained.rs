//! Weights from elsewhere: start a run from a safetensors file (a model
//! trained in PyTorch and saved with `safetensors.torch.save_file`, or an
//! nw `model.safetensors`), matched to the model by PyTorch state_dict name.

use std::path::Path;

use nw_nn::{BufferValue, Module};
use nw_tensor::Tensor;

use crate::error::{Result, TrainError};

/// What loading a weights file did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadReport {
    /// Tensors loaded (name).
    pub loaded: Vec<String>,
    /// Tensors the model has and the file lacks.
    pub missing: Vec<String>,
    /// Tensors the file has and the model lacks.
    pub unexpected: Vec<String>,
    /// Tensors present in both with another shape or dtype: (name, file, model).
    pub mismatched: Vec<(String, String, String)>,
}

impl LoadReport {
    /// Whether every tensor matched.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }

    /// One paragraph listing what did not match.
    pub fn problems(&self) -> String {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing from the file: {}", self.missing.join(", ")));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!("not in the model: {}", self.unexpected.join(", ")));
        }
        for (n, f, m) in &self.mismatched {
            parts.push(format!("{n} is {f} in the file, {m} in the model"));
        }
        parts.join("; ")
    }
}

/// Loads the tensors of the safetensors file `path` into `model` by name
/// (parameters and float buffers). With `partial`, loads those whose names
/// and shapes match and reports the rest; without it, any difference is an
/// error listing every missing, unexpected and mismatched tensor, and
/// nothing is loaded.
pub fn load_weights(model: &dyn Module, path: &Path, partial: bool) -> Result<LoadReport> {
    let bytes = std::fs::read(path).map_err(|source| TrainError::Io { path: path.to_path_buf(), source })?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
        TrainError::Mismatch(format!("{}: not a valid safetensors file: {e}", path.display()))
    })?;
    let mut report = LoadReport::default();
    let mut file_names: Vec<String> = st.names().into_iter().map(String::from).collect();
    file_names.sort();
    let mut model_names = Vec::new();
    // (value to set, where): checked all before any is set.
    enum Slot {
        Param(nw_autograd::Param, Tensor),
        Buffer(nw_nn::Buffer, BufferValue),
    }
    let mut ready: Vec<(String, Slot)> = Vec::new();
    let read_f32 = |v: &safetensors::tensor::TensorView<'_>| -> Vec<f32> {
        v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    };
    for (name, p) in model.named_parameters() {
        model_names.push(name.clone());
        let shape = p.shape();
        match st.tensor(&name) {
            Err(_) => report.missing.push(name),
            Ok(v) if v.dtype() != safetensors::Dtype::F32 || v.shape() != shape.as_slice() => report
                .mismatched
                .push((name, format!("{:?} {:?}", v.dtype(), v.shape()), format!("F32 {shape:?}"))),
            Ok(v) => {
                let t = Tensor::from_vec(read_f32(&v), &shape)
                    .map_err(|e| TrainError::Mismatch(format!("{}: {name}: {e}", path.display())))?;
                ready.push((name, Slot::Param(p, t)));
            }
        }
    }
    for (name, b) in model.named_buffers() {
        model_names.push(name.clone());
        let (dtype, shape) = (b.dtype(), b.shape());
        let want = match dtype {
            nw_nn::Dtype::F32 => safetensors::Dtype::F32,
            nw_nn::Dtype::I64 => safetensors::Dtype::I64,
        };
        match st.tensor(&name) {
            Err(_) => report.missing.push(name),
            Ok(v) if v.dtype() != want || v.shape() != shape.as_slice() => report.mismatched.push((
                name,
                format!("{:?} {:?}", v.dtype(), v.shape()),
                format!("{want:?} {shape:?}"),
            )),
            Ok(v) => {
                let value = match dtype {
                    nw_nn::Dtype::F32 => BufferValue::F32(
                        Tensor::from_vec(read_f32(&v), &shape)
                            .map_err(|e| TrainError::Mismatch(format!("{}: {name}: {e}", path.display())))?,
                    ),
                    nw_nn::Dtype::I64 => BufferValue::I64 {
                        shape: shape.clone(),
                        data: v
                            .data()
                            .chunks_exact(8)
                            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                            .collect(),
                    },
                };
                ready.push((name, Slot::Buffer(b, value)));
            }
        }
    }
    for f in &file_names {
        if !model_names.contains(f) {
            report.unexpected.push(f.clone());
        }
    }
    if !partial && !report.is_complete() {
        return Err(TrainError::Mismatch(format!(
            "{} does not fit the model ({}); pass --init-from-partial to load the tensors that match",
            path.display(),
            report.problems()
        )));
    }
    for (name, slot) in ready {
        match slot {
            Slot::Param(p, t) => p.set(t)?,
            Slot::Buffer(b, v) => b.set(v).map_err(|e| TrainError::Mismatch(format!("{name}: {e}")))?,
        }
        report.loaded.push(name);
    }
    Ok(report)
}
