//! Ready-made architectures for the `nw` binary and quick experiments, built
//! from a serialisable [`ModelSpec`] into an [`nw_nn::Sequential`] with
//! PyTorch's state_dict names.

use std::sync::{Arc, Mutex};

use nw_autograd::Var;
use nw_nn::{ModeFlag, Module, Sequential};
use nw_tensor::Rng;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::layers::{LayerSpec, Size2, build_layers};

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
    /// Leaky ReLU (slope 0.01).
    LeakyRelu,
    /// ELU (alpha 1).
    Elu,
    /// Softplus (beta 1).
    Softplus,
}

impl Activation {
    /// The activation as a layer of a layer list (torch's default options).
    pub fn layer(self) -> LayerSpec {
        match self {
            Activation::Relu => LayerSpec::Relu,
            Activation::Tanh => LayerSpec::Tanh,
            Activation::Sigmoid => LayerSpec::Sigmoid,
            Activation::Gelu => LayerSpec::Gelu { approximate: crate::layers::GeluApproximate::None },
            Activation::Silu => LayerSpec::Silu,
            Activation::LeakyRelu => LayerSpec::LeakyRelu { negative_slope: 0.01 },
            Activation::Elu => LayerSpec::Elu { alpha: 1.0 },
            Activation::Softplus => LayerSpec::Softplus { beta: 1.0, threshold: 20.0 },
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
            "leaky-relu" | "leaky_relu" => Activation::LeakyRelu,
            "elu" => Activation::Elu,
            "softplus" => Activation::Softplus,
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
    /// Convolutional: per entry of `channels`, `Conv2d 3x3 (padding 1) -> ReLU
    /// -> MaxPool2d 2`; then `Flatten -> Linear(hidden) -> ReLU [-> Dropout]
    /// -> Linear(outputs)`. Flat square inputs (64, 784) are viewed as one-channel images.
    Cnn {
        /// Output channels of each convolution.
        channels: Vec<usize>,
        /// Width of the fully connected hidden layer.
        hidden: usize,
        /// Dropout before the last layer (0 for none).
        dropout: f64,
    },
    /// Recurrent: an image's rows as a sequence (`[N, H, W]`, one step per
    /// row) through a batch-first LSTM stack; the last step's hidden state
    /// feeds a `Linear` to the outputs.
    Lstm {
        /// Hidden state size.
        hidden: usize,
        /// Stacked layers.
        layers: usize,
    },
    /// As [`ModelSpec::Lstm`], with a GRU stack.
    Gru {
        /// Hidden state size.
        hidden: usize,
        /// Stacked layers.
        layers: usize,
    },
    /// As [`ModelSpec::Lstm`], with a plain tanh RNN stack.
    Rnn {
        /// Hidden state size.
        hidden: usize,
        /// Stacked layers.
        layers: usize,
    },
    /// An explicit layer list (see [`crate::layers`]).
    Sequential {
        /// The layers, in order.
        layers: Vec<LayerSpec>,
    },
}

impl ModelSpec {
    /// The architecture as an explicit layer list for examples of shape
    /// `input`: what [`build_model`] builds, and what `nw inspect` prints.
    /// A template's list builds the same layers, in the same order, with the
    /// same initial weights as the template always did.
    pub fn layers(&self, input: &[usize]) -> Result<Vec<LayerSpec>, TrainError> {
        let linear = |out: Option<usize>| LayerSpec::Linear { in_features: None, out, bias: true };
        let mut l = Vec::new();
        match self {
            ModelSpec::Mlp { hidden, activation, dropout } => {
                check_dropout(*dropout)?;
                if input.len() > 1 {
                    l.push(LayerSpec::Flatten);
                }
                for (i, &h) in hidden.iter().enumerate() {
                    if h == 0 {
                        return Err(TrainError::Config(format!(
                            "model.hidden[{i}] = 0: a hidden layer needs units"
                        )));
                    }
                    l.push(linear(Some(h)));
                    l.push(activation.layer());
                    if *dropout > 0.0 {
                        l.push(LayerSpec::Dropout { p: *dropout });
                    }
                }
                l.push(linear(None));
            }
            ModelSpec::Cnn { channels, hidden, dropout } => {
                check_dropout(*dropout)?;
                let [c, h, w] = image_shape(input)?;
                l.push(LayerSpec::Reshape { shape: vec![c, h, w] });
                let (mut ph, mut pw) = (h, w);
                for &co in channels {
                    if ph < 2 || pw < 2 {
                        return Err(TrainError::Config(format!(
                            "model.channels: too many pooling stages for a {c}x{h}x{w} input (each block halves the image; use fewer channels entries)"
                        )));
                    }
                    (ph, pw) = (ph / 2, pw / 2);
                    l.push(LayerSpec::Conv2d {
                        out: co,
                        kernel: Size2::One(3),
                        stride: Size2::One(1),
                        padding: Size2::One(1),
                        dilation: Size2::One(1),
                        groups: 1,
                        bias: true,
                    });
                    l.push(LayerSpec::Relu);
                    l.push(LayerSpec::MaxPool2d {
                        kernel: Size2::One(2),
                        stride: None,
                        padding: Size2::One(0),
                        ceil_mode: false,
                    });
                }
                l.push(LayerSpec::Flatten);
                l.push(linear(Some(*hidden)));
                l.push(LayerSpec::Relu);
                if *dropout > 0.0 {
                    l.push(LayerSpec::Dropout { p: *dropout });
                }
                l.push(linear(None));
            }
            ModelSpec::Lstm { hidden, layers }
            | ModelSpec::Gru { hidden, layers }
            | ModelSpec::Rnn { hidden, layers } => {
                let [c, h, w] = image_shape(input)?;
                if c != 1 {
                    return Err(TrainError::Config(format!(
                        "a recurrent net over rows needs one channel, got {c}"
                    )));
                }
                l.push(LayerSpec::Reshape { shape: vec![h, w] });
                let (hidden, layers) = (*hidden, *layers);
                l.push(match self {
                    ModelSpec::Lstm { .. } => LayerSpec::Lstm { hidden, layers, bidirectional: false },
                    ModelSpec::Gru { .. } => LayerSpec::Gru { hidden, layers, bidirectional: false },
                    _ => LayerSpec::Rnn {
                        hidden,
                        layers,
                        bidirectional: false,
                        nonlinearity: crate::layers::RnnNonlinearityName::Tanh,
                    },
                });
                l.push(LayerSpec::LastStep);
                l.push(linear(None));
            }
            ModelSpec::Sequential { layers } => return Ok(layers.clone()),
        }
        Ok(l)
    }
}

/// The `[channels, height, width]` an input of shape `input` is read as:
/// itself when 3-D, `[1, s, s]` for a flat input of `s * s` features.
pub fn image_shape(input: &[usize]) -> Result<[usize; 3], TrainError> {
    match input {
        [c, h, w] => Ok([*c, *h, *w]),
        [n] => {
            let s = (*n as f64).sqrt().round() as usize;
            if s * s == *n && s > 0 {
                Ok([1, s, s])
            } else {
                Err(TrainError::Config(format!(
                    "model.kind = cnn needs image data: {n} features are not a square image (use mlp for tabular data)"
                )))
            }
        }
        other => Err(TrainError::Config(format!("examples of shape {other:?} are not images"))),
    }
}

fn check_dropout(p: f64) -> Result<(), TrainError> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(TrainError::Config(format!("dropout {p} is outside [0, 1)")))
    }
}

/// A built model and the random streams its stochastic layers draw from
/// (saved in checkpoints so that a resumed run draws the same masks).
pub struct BuiltModel {
    /// The network.
    pub model: Sequential,
    /// One generator per dropout layer, in layer order.
    pub rngs: Vec<Arc<Mutex<Rng>>>,
    /// The fewest rows a training batch (or micro-shard, which batch norm
    /// treats as its batch) may have, and the layer that sets it: batch norm
    /// needs two values per channel in training, so one row is too few for
    /// `BatchNorm1d` on `[C]`. `(1, None)` when no layer limits it.
    pub min_rows: (usize, Option<usize>),
    /// Parameter names of biases that the batch norm right after their
    /// layer cancels (it subtracts each channel's batch mean, bias
    /// included): their gradient is zero up to rounding, so the weight
    /// monitor does not call it vanishing (the build warns once instead).
    pub cancelled_biases: Vec<String>,
}

/// Builds `spec` for examples of shape `input` and `outputs` output units,
/// drawing initial weights (PyTorch's default initialisation) from `rng`.
pub fn build_model(
    spec: &ModelSpec,
    input: &[usize],
    outputs: usize,
    rng: &mut Rng,
) -> Result<BuiltModel, TrainError> {
    build_layers(&spec.layers(input)?, input, outputs, rng)
}

/// [`build_model`] with a limit on the parameters and buffers, checked
/// before each layer is built (see [`crate::layers::build_layers_limited`]).
pub fn build_model_limited(
    spec: &ModelSpec,
    input: &[usize],
    outputs: usize,
    rng: &mut Rng,
    max_elements: Option<usize>,
) -> Result<BuiltModel, TrainError> {
    crate::layers::build_layers_limited(&spec.layers(input)?, input, outputs, rng, max_elements)
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

/// Views each example as `shape` (the batch axis is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reshape {
    /// The per-example shape.
    pub shape: Vec<usize>,
}

impl Module for Reshape {
    fn forward(&self, x: &Var) -> nw_nn::Result<Var> {
        let mut s = vec![x.shape().first().copied().unwrap_or(0)];
        s.extend_from_slice(&self.shape);
        Ok(x.reshape(&s)?)
    }

    fn describe(&self) -> String {
        format!("Reshape({:?})", self.shape)
    }
}

/// The last time step of a batch-first sequence: `[N, T, F] -> [N, F]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastStep;

impl Module for LastStep {
    fn forward(&self, x: &Var) -> nw_nn::Result<Var> {
        let s = x.shape().to_vec();
        if s.len() != 3 || s[1] == 0 {
            return Err(nw_nn::NnError::Input {
                what: "LastStep",
                reason: format!("needs [N, T>0, F], got {s:?}"),
            });
        }
        Ok(x.narrow(1, s[1] - 1, 1)?.reshape(&[s[0], s[2]])?)
    }

    fn describe(&self) -> String {
        "LastStep".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nw_tensor::Tensor;

    fn forward_shape(spec: ModelSpec, input: &[usize], batch: usize) -> Vec<usize> {
        let b = build_model(&spec, input, 10, &mut Rng::new(0)).unwrap();
        let mut shape = vec![batch];
        shape.extend_from_slice(input);
        b.model.forward(&Var::constant(Tensor::zeros(&shape))).unwrap().shape().to_vec()
    }

    #[test]
    fn every_spec_maps_examples_to_outputs() {
        let mlp = ModelSpec::Mlp { hidden: vec![8], activation: Activation::Relu, dropout: 0.5 };
        assert_eq!(forward_shape(mlp, &[64], 3), vec![3, 10]);
        let cnn = ModelSpec::Cnn { channels: vec![4, 8], hidden: 16, dropout: 0.0 };
        assert_eq!(forward_shape(cnn.clone(), &[64], 2), vec![2, 10]);
        assert_eq!(forward_shape(cnn, &[1, 28, 28], 2), vec![2, 10]);
        let lstm = ModelSpec::Lstm { hidden: 12, layers: 2 };
        assert_eq!(forward_shape(lstm, &[64], 2), vec![2, 10]);
    }

    #[test]
    fn names_follow_pytorch_positions() {
        let cnn = ModelSpec::Cnn { channels: vec![4], hidden: 16, dropout: 0.0 };
        let b = build_model(&cnn, &[64], 10, &mut Rng::new(0)).unwrap();
        let names: Vec<String> = b.model.named_parameters().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["1.weight", "1.bias", "5.weight", "5.bias", "7.weight", "7.bias"]);
    }

    #[test]
    fn bad_specs_are_errors() {
        let mut rng = Rng::new(0);
        let mlp = ModelSpec::Mlp { hidden: vec![8], activation: Activation::Relu, dropout: 1.0 };
        assert!(build_model(&mlp, &[4], 3, &mut rng).is_err());
        let cnn = ModelSpec::Cnn { channels: vec![4], hidden: 16, dropout: 0.0 };
        assert!(build_model(&cnn, &[5], 3, &mut rng).is_err());
        let deep = ModelSpec::Cnn { channels: vec![4, 4, 4, 4], hidden: 16, dropout: 0.0 };
        assert!(build_model(&deep, &[64], 3, &mut rng).is_err());
    }
}
