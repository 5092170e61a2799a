//! Ready-made architectures for the `nw` binary and quick experiments, built
//! from a serialisable [`ModelSpec`] into an [`nw_nn::Sequential`] with
//! PyTorch's state_dict names.

use std::sync::{Arc, Mutex};

use nw_autograd::Var;
use nw_nn::{Flatten, Gelu, Linear, ModeFlag, Module, Relu, Sequential, Sigmoid, Silu, Tanh};
use nw_tensor::Rng;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// A hidden-layer nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// Hyperbolic tangent.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// GELU (erf form).
    Gelu,
    /// SiLU / swish.
    Silu,
}

impl Activation {
    fn module(self) -> Box<dyn Module> {
        match self {
            Activation::Relu => Box::new(Relu),
            Activation::Tanh => Box::new(Tanh),
            Activation::Sigmoid => Box::new(Sigmoid),
            Activation::Gelu => Box::new(Gelu::default()),
            Activation::Silu => Box::new(Silu),
        }
    }

    /// Parses `relu`, `tanh`, `sigmoid`, `gelu`, `silu`.
    pub fn parse(s: &str) -> Result<Self, TrainError> {
        Ok(match s {
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "gelu" => Activation::Gelu,
            "silu" => Activation::Silu,
            other => {
                return Err(TrainError::Config(format!(
                    "unknown activation {other:?} (relu, tanh, sigmoid, gelu, silu)"
                )));
            }
        })
    }
}

/// An architecture, independent of the data it will see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSpec {
    /// Fully connected: flatten, then `Linear -> activation [-> Dropout]` per
    /// hidden size, then a `Linear` to the outputs.
    Mlp {
        /// Hidden layer sizes.
        hidden: Vec<usize>,
        /// Nonlinearity after each hidden layer.
        activation: Activation,
        /// Dropout probability after each hidden activation (0 for none).
        dropout: f64,
    },
}

/// A built model and the random streams its stochastic layers draw from
/// (saved in checkpoints so that a resumed run draws the same masks).
pub struct BuiltModel {
    /// The network.
    pub model: Sequential,
    /// One generator per dropout layer, in layer order.
    pub rngs: Vec<Arc<Mutex<Rng>>>,
}

/// Builds `spec` for examples of shape `input` and `outputs` output units,
/// drawing initial weights (PyTorch's default initialisation) from `rng`.
pub fn build_model(
    spec: &ModelSpec,
    input: &[usize],
    outputs: usize,
    rng: &mut Rng,
) -> Result<BuiltModel, TrainError> {
    let mut model = Sequential::new();
    let mut rngs = Vec::new();
    match spec {
        ModelSpec::Mlp { hidden, activation, dropout } => {
            if !(0.0..1.0).contains(dropout) {
                return Err(TrainError::Config(format!("dropout {dropout} is outside [0, 1)")));
            }
            if input.len() > 1 {
                model.push(Box::new(Flatten::default()));
            }
            let mut width: usize = input.iter().product();
            for &h in hidden {
                if h == 0 {
                    return Err(TrainError::Config("a hidden layer of size 0".into()));
                }
                model.push(Box::new(Linear::new(width, h, rng)));
                model.push(activation.module());
                if *dropout > 0.0 {
                    let r = Arc::new(Mutex::new(rng.fork()));
                    rngs.push(r.clone());
                    model.push(Box::new(Dropout::new(*dropout, r)));
                }
                width = h;
            }
            model.push(Box::new(Linear::new(width, outputs, rng)));
        }
    }
    Ok(BuiltModel { model, rngs })
}

/// Inverted dropout as a module: zeroes each element with probability `p`
/// in training mode and scales the rest by `1 / (1 - p)`; the identity in
/// evaluation mode. Masks come from the shared generator it is given.
pub struct Dropout {
    p: f64,
    rng: Arc<Mutex<Rng>>,
    mode: ModeFlag,
}

impl Dropout {
    /// Dropout with probability `p` drawing from `rng`.
    pub fn new(p: f64, rng: Arc<Mutex<Rng>>) -> Self {
        Dropout { p, rng, mode: ModeFlag::default() }
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Var) -> nw_nn::Result<Var> {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        nw_reg::dropout(x, self.p, self.mode.is_training(), &mut rng)
            .map_err(|e| nw_nn::NnError::Input { what: "dropout", reason: e.to_string() })
    }

    fn set_training(&self, training: bool) {
        self.mode.set(training);
    }

    fn describe(&self) -> String {
        format!("Dropout(p={})", self.p)
    }
}
