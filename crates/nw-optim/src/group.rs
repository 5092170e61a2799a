//! Parameter groups and the weight-decay enum.

use nw_autograd::Param;
use serde::{Deserialize, Serialize};

use crate::error::{OptimError, check_min};

/// How weight decay enters an update.
///
/// - `L2(λ)`: coupled, as torch's `weight_decay`: the gradient becomes
///   `g + λ θ` before the optimizer's own arithmetic (so Adam rescales it).
/// - `Decoupled(λ)`: as AdamW (Loshchilov & Hutter): the parameter is first
///   shrunk, `θ ← θ (1 − lr λ)`, and the gradient is left alone.
///
/// A coefficient of 0 means no decay (torch skips the operation entirely).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum WeightDecay {
    /// Coupled L2: `g ← g + λ θ`.
    L2(f64),
    /// Decoupled: `θ ← θ (1 − lr λ)`.
    Decoupled(f64),
}

impl Default for WeightDecay {
    /// No decay: `L2(0.0)`.
    fn default() -> Self {
        WeightDecay::L2(0.0)
    }
}

impl WeightDecay {
    /// The coefficient λ.
    pub fn coefficient(self) -> f64 {
        match self {
            WeightDecay::L2(c) | WeightDecay::Decoupled(c) => c,
        }
    }

    /// The same kind of decay with another coefficient (how a group's
    /// `weight_decay` override applies).
    pub fn with_coefficient(self, c: f64) -> Self {
        match self {
            WeightDecay::L2(_) => WeightDecay::L2(c),
            WeightDecay::Decoupled(_) => WeightDecay::Decoupled(c),
        }
    }

    pub(crate) fn validate(self, owner: &'static str) -> Result<(), OptimError> {
        check_min(owner, "weight_decay", self.coefficient(), 0.0, "must be finite and >= 0")
    }
}

/// A set of parameters with optional overrides of the optimizer's defaults,
/// as torch's `param_groups`: e.g. no weight decay on biases and norms.
///
/// ```
/// use nw_autograd::Param;
/// use nw_optim::ParamGroup;
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::zeros(&[4, 3]));
/// let b = Param::new(Tensor::zeros(&[4]));
/// let groups = vec![ParamGroup::new(vec![w]), ParamGroup::new(vec![b]).weight_decay(0.0)];
/// assert_eq!(groups[1].weight_decay, Some(0.0));
/// ```
///
/// After an optimizer is built, [`crate::Optimizer::param_groups`] returns
/// the groups with every override resolved (`Some`), holding the rates in force.
#[derive(Debug, Clone, Default)]
pub struct ParamGroup {
    /// The parameters, in a fixed order: state is keyed by (group, position).
    pub params: Vec<Param>,
    /// Learning rate for this group (`None`: the optimizer's `lr`).
    pub lr: Option<f64>,
    /// Weight-decay coefficient for this group (`None`: the optimizer's); the
    /// kind (L2 or decoupled) stays the optimizer's.
    pub weight_decay: Option<f64>,
}

impl ParamGroup {
    /// A group using the optimizer's defaults.
    pub fn new(params: Vec<Param>) -> Self {
        ParamGroup { params, lr: None, weight_decay: None }
    }

    /// Overrides the learning rate.
    pub fn lr(mut self, lr: f64) -> Self {
        self.lr = Some(lr);
        self
    }

    /// Overrides the weight-decay coefficient.
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = Some(wd);
        self
    }
}

impl From<Vec<Param>> for ParamGroup {
    fn from(params: Vec<Param>) -> Self {
        ParamGroup::new(params)
    }
}
