//! Optimizer state: per-parameter buffers and the exported state dict.

use std::collections::BTreeMap;

use nw_tensor::Tensor;
use serde::{Deserialize, Serialize};

/// The state of one parameter: its own step count and the rule's buffers
/// (row-major, each as long as its shape in [`crate::Rule::buffer_layout`]:
/// usually the parameter's shape, but Adafactor's row and column moments
/// and ASGD's scalar `eta` and `mu` are smaller), allocated once at the
/// first step that sees a gradient for it and then updated in place.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamState {
    /// Steps taken with a gradient for this parameter (torch's `state["step"]`).
    pub step: u64,
    /// The rule's buffers, in the order of [`crate::Rule::buffer_names`].
    pub buffers: Vec<Vec<f32>>,
    /// A value the rule derives from `step` alone and caches (NAdam's running
    /// product of momentum coefficients); not exported, recomputed on load.
    pub cache: f64,
}

/// An optimizer's state as named tensors plus the group hyper-parameters
/// (f64, so a resumed run uses the exact same rates).
///
/// Tensor keys: `state.{group}.{position}.{buffer}` (e.g. `state.0.1.exp_avg`,
/// with the buffer's own shape)
/// and `state.{group}.{position}.step` (a 1-element tensor; f32 like torch's
/// step tensor, exact up to 2^24 steps). Scalar keys: `lr` (the rate last set
/// with `set_lr`), `param_groups.{g}.lr`, `param_groups.{g}.initial_lr`,
/// `param_groups.{g}.weight_decay`, `param_groups.{g}.params` (count).
///
/// Serialisable with serde (tensors as shape + data), e.g. into a bincode
/// checkpoint.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateDict {
    /// The optimizer's name (`"Adam"`); loading into another kind is an error.
    pub optimizer: String,
    /// Per-parameter state tensors.
    pub tensors: BTreeMap<String, Tensor>,
    /// Hyper-parameters in force.
    pub scalars: BTreeMap<String, f64>,
}

#[derive(Serialize, Deserialize)]
struct TensorRepr {
    shape: Vec<usize>,
    data: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
struct StateDictRepr {
    optimizer: String,
    tensors: BTreeMap<String, TensorRepr>,
    scalars: BTreeMap<String, f64>,
}

impl Serialize for StateDict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let repr = StateDictRepr {
            optimizer: self.optimizer.clone(),
            tensors: self
                .tensors
                .iter()
                .map(|(k, t)| (k.clone(), TensorRepr { shape: t.shape().to_vec(), data: t.to_vec() }))
                .collect(),
            scalars: self.scalars.clone(),
        };
        repr.serialize(s)
    }
}

impl<'de> Deserialize<'de> for StateDict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let repr = StateDictRepr::deserialize(d)?;
        let mut tensors = BTreeMap::new();
        for (k, t) in repr.tensors {
            let tensor = Tensor::from_vec(t.data, &t.shape).map_err(serde::de::Error::custom)?;
            tensors.insert(k, tensor);
        }
        Ok(StateDict { optimizer: repr.optimizer, tensors, scalars: repr.scalars })
    }
}

impl StateDict {
    /// The tensor stored under `key`.
    pub fn tensor(&self, key: &str) -> Option<&Tensor> {
        self.tensors.get(key)
    }

    /// The scalar stored under `key`.
    pub fn scalar(&self, key: &str) -> Option<f64> {
        self.scalars.get(key).copied()
    }

    /// The scalar under `key`, or [`OptimError::State`](crate::OptimError::State) of `owner` naming it.
    pub fn required_scalar(&self, owner: &'static str, key: &str) -> Result<f64, crate::OptimError> {
        self.scalar(key)
            .ok_or_else(|| crate::OptimError::State { owner, reason: format!("missing scalar {key:?}") })
    }

    /// The scalar under `key` as a count (a non-negative integer below
    /// 2^53), or [`OptimError::State`](crate::OptimError::State) of `owner` naming it.
    pub fn count(&self, owner: &'static str, key: &str) -> Result<u64, crate::OptimError> {
        let v = self.required_scalar(owner, key)?;
        if v >= 0.0 && v.fract() == 0.0 && v < 2f64.powi(53) {
            Ok(v as u64)
        } else {
            Err(crate::OptimError::State { owner, reason: format!("{key} = {v} is not a count") })
        }
    }
}
