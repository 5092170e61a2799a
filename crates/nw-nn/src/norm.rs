//! Normalisation layers: [`LayerNorm`], [`BatchNorm1d`], [`BatchNorm2d`].

use nw_autograd::{Param, Var};
use nw_tensor::Tensor;

use crate::error::{NnError, Result};
use crate::module::{Buffer, BufferValue, ModeFlag, Module};

/// Layer normalisation over the trailing `normalized_shape` dimensions
/// (torch `nn.LayerNorm`): biased variance, `eps` (default 1e-5), and an
/// elementwise affine `weight` (ones) and `bias` (zeros) when enabled.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    normalized_shape: Vec<usize>,
    /// Added to the variance.
    pub eps: f32,
    /// Scale, of shape `normalized_shape` (if affine).
    pub weight: Option<Param>,
    /// Shift, of shape `normalized_shape` (if affine).
    pub bias: Option<Param>,
}

impl LayerNorm {
    /// With affine parameters and `eps = 1e-5`.
    pub fn new(normalized_shape: &[usize]) -> Self {
        Self::with_options(normalized_shape, 1e-5, true)
    }

    /// With the given `eps` and with or without the affine parameters.
    ///
    /// # Panics
    /// When `normalized_shape` exceeds [`nw_tensor::MAX_ELEMENTS`]; shapes
    /// from files or configurations go through [`LayerNorm::try_with_options`].
    pub fn with_options(normalized_shape: &[usize], eps: f32, elementwise_affine: bool) -> Self {
        Self::try_with_options(normalized_shape, eps, elementwise_affine).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`LayerNorm::with_options`] for shapes from files or configurations:
    /// an overflowing or over-limit shape is an error, before anything is allocated.
    pub fn try_with_options(normalized_shape: &[usize], eps: f32, elementwise_affine: bool) -> Result<Self> {
        let (w, b) = if elementwise_affine {
            let make = |v| {
                Tensor::try_full(normalized_shape, v).map_err(|e| NnError::config("LayerNorm", e.to_string()))
            };
            (Some(Param::new(make(1.0)?)), Some(Param::new(make(0.0)?)))
        } else {
            (None, None)
        };
        Ok(LayerNorm { normalized_shape: normalized_shape.to_vec(), eps, weight: w, bias: b })
    }

    /// The normalised trailing shape.
    pub fn normalized_shape(&self) -> &[usize] {
        &self.normalized_shape
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Var) -> Result<Var> {
        let w = self.weight.as_ref().map(Var::param);
        let b = self.bias.as_ref().map(Var::param);
        Ok(x.layer_norm(&self.normalized_shape, w.as_ref(), b.as_ref(), self.eps)?)
    }

    fn named_parameters(&self) -> Vec<(String, Param)> {
        let mut v = Vec::new();
        if let Some(w) = &self.weight {
            v.push(("weight".to_string(), w.clone()));
        }
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }

    fn describe(&self) -> String {
        format!(
            "LayerNorm({:?}, eps={}, elementwise_affine={})",
            self.normalized_shape,
            self.eps,
            self.weight.is_some()
        )
    }
}

/// What BatchNorm1d and BatchNorm2d share (torch `_BatchNorm`).
///
/// Training mode normalises with the batch mean and **biased** variance and
/// then updates `running_mean = (1 - m) running_mean + m batch_mean` and
/// `running_var = (1 - m) running_var + m unbiased_batch_var`, with
/// momentum `m` (default 0.1; `None` is the cumulative average
/// `1 / num_batches_tracked`). Evaluation mode normalises with the running
/// estimates. Without `track_running_stats` batch statistics are always used.
#[derive(Debug)]
pub struct BatchNorm {
    num_features: usize,
    /// Added to the variance.
    pub eps: f32,
    /// Running-average momentum (`None`: cumulative average).
    pub momentum: Option<f32>,
    /// Scale `[C]` (ones), if affine.
    pub weight: Option<Param>,
    /// Shift `[C]` (zeros), if affine.
    pub bias: Option<Param>,
    /// Running statistics and batch counter, if tracked:
    /// `(running_mean [C], running_var [C], num_batches_tracked (i64 scalar))`.
    pub running: Option<(Buffer, Buffer, Buffer)>,
    mode: ModeFlag,
}

impl BatchNorm {
    fn build(num_features: usize, eps: f32, momentum: Option<f32>, affine: bool, track: bool) -> Self {
        Self::try_build(num_features, eps, momentum, affine, track).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_build(
        num_features: usize,
        eps: f32,
        momentum: Option<f32>,
        affine: bool,
        track: bool,
    ) -> Result<Self> {
        let make =
            |v| Tensor::try_full(&[num_features], v).map_err(|e| NnError::config("BatchNorm", e.to_string()));
        let (w, b) =
            if affine { (Some(Param::new(make(1.0)?)), Some(Param::new(make(0.0)?))) } else { (None, None) };
        let running = match track {
            true => Some((Buffer::f32(make(0.0)?), Buffer::f32(make(1.0)?), Buffer::i64_scalar(0))),
            false => None,
        };
        Ok(BatchNorm { num_features, eps, momentum, weight: w, bias: b, running, mode: ModeFlag::default() })
    }

    /// The number of channels.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Whether in training mode.
    pub fn is_training(&self) -> bool {
        self.mode.is_training()
    }

    /// Switches training (`true`) or evaluation mode.
    pub fn set_mode(&self, training: bool) {
        self.mode.set(training)
    }

    fn forward_checked(&self, what: &'static str, x: &Var) -> Result<Var> {
        if x.shape()[1] != self.num_features {
            return Err(NnError::input(
                what,
                format!(
                    "input {:?} has {} channels, the layer {}",
                    x.shape(),
                    x.shape()[1],
                    self.num_features
                ),
            ));
        }
        let w = self.weight.as_ref().map(Var::param);
        let b = self.bias.as_ref().map(Var::param);
        match &self.running {
            Some((rm, rv, _)) if !self.is_training() => {
                Ok(x.batch_norm_eval(&rm.tensor(), &rv.tensor(), w.as_ref(), b.as_ref(), self.eps)?)
            }
            running => {
                let (y, stats) = x.batch_norm_train(w.as_ref(), b.as_ref(), self.eps)?;
                if let Some((rm, rv, nb)) = running {
                    let count = nb.update(|v| match v {
                        BufferValue::I64 { data, .. } => {
                            data[0] += 1;
                            data[0]
                        }
                        BufferValue::F32(_) => 1,
                    });
                    let m = match self.momentum {
                        Some(m) => m as f64,
                        None => 1.0 / count as f64,
                    };
                    let blend = |buf: &Buffer, batch: &[f64]| {
                        buf.update(|v| {
                            if let BufferValue::F32(t) = v {
                                let mut cur = t.to_vec();
                                for (c, &b) in cur.iter_mut().zip(batch) {
                                    *c = ((1.0 - m) * *c as f64 + m * b) as f32;
                                }
                                *t = Tensor::from_vec(cur, t.shape()).expect("same length");
                            }
                        })
                    };
                    blend(rm, &stats.mean);
                    blend(rv, &stats.unbiased_var());
                }
                Ok(y)
            }
        }
    }

    fn params(&self) -> Vec<(String, Param)> {
        let mut v = Vec::new();
        if let Some(w) = &self.weight {
            v.push(("weight".to_string(), w.clone()));
        }
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }

    fn buffers(&self) -> Vec<(String, Buffer)> {
        match &self.running {
            Some((m, v, n)) => vec![
                ("running_mean".to_string(), m.clone()),
                ("running_var".to_string(), v.clone()),
                ("num_batches_tracked".to_string(), n.clone()),
            ],
            None => Vec::new(),
        }
    }

    fn describe_as(&self, name: &str) -> String {
        format!(
            "{name}({}, eps={}, momentum={}, affine={}, track_running_stats={})",
            self.num_features,
            self.eps,
            self.momentum.map_or("None".to_string(), |m| m.to_string()),
            self.weight.is_some(),
            self.running.is_some()
        )
    }
}

macro_rules! batch_norm_layer {
    ($(#[$doc:meta])* $name:ident, $label:literal, $ranks:expr, $shapes:literal) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(pub BatchNorm);

        impl $name {
            /// With torch's defaults: eps 1e-5, momentum 0.1, affine, tracking running statistics.
            pub fn new(num_features: usize) -> Self {
                $name(BatchNorm::build(num_features, 1e-5, Some(0.1), true, true))
            }

            /// [`Self::with_options`] for sizes from files or configurations:
            /// more than [`nw_tensor::MAX_ELEMENTS`] features is an error, before
            /// anything is allocated.
            pub fn try_with_options(
                num_features: usize,
                eps: f32,
                momentum: Option<f32>,
                affine: bool,
                track_running_stats: bool,
            ) -> Result<Self> {
                Ok($name(BatchNorm::try_build(num_features, eps, momentum, affine, track_running_stats)?))
            }

            /// With every option.
            ///
            /// # Panics
            /// When `num_features` exceeds [`nw_tensor::MAX_ELEMENTS`] (see `try_with_options`).
            pub fn with_options(
                num_features: usize,
                eps: f32,
                momentum: Option<f32>,
                affine: bool,
                track_running_stats: bool,
            ) -> Self {
                $name(BatchNorm::build(num_features, eps, momentum, affine, track_running_stats))
            }
        }

        impl std::ops::Deref for $name {
            type Target = BatchNorm;
            fn deref(&self) -> &BatchNorm {
                &self.0
            }
        }

        impl Module for $name {
            fn forward(&self, x: &Var) -> Result<Var> {
                if !$ranks.contains(&x.shape().len()) {
                    return Err(NnError::input($label, format!("expected input {}, got {:?}", $shapes, x.shape())));
                }
                self.0.forward_checked($label, x)
            }
            fn named_parameters(&self) -> Vec<(String, Param)> {
                self.0.params()
            }
            fn named_buffers(&self) -> Vec<(String, Buffer)> {
                self.0.buffers()
            }
            fn set_training(&self, training: bool) {
                self.0.mode.set(training)
            }
            fn describe(&self) -> String {
                self.0.describe_as($label)
            }
            fn for_each_batch_norm(&mut self, f: &mut dyn FnMut(&mut BatchNorm)) {
                f(&mut self.0)
            }
        }
    };
}

batch_norm_layer!(
    /// Batch normalisation over `[N, C]` or `[N, C, L]` (torch `nn.BatchNorm1d`); see [`BatchNorm`].
    BatchNorm1d, "BatchNorm1d", [2usize, 3], "[N, C] or [N, C, L]"
);
batch_norm_layer!(
    /// Batch normalisation over `[N, C, H, W]` (torch `nn.BatchNorm2d`); see [`BatchNorm`].
    BatchNorm2d, "BatchNorm2d", [4usize], "[N, C, H, W]"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_stats_update_by_hand() {
        // one channel, values 1, 2, 3, 4: mean 2.5, unbiased var 5/3
        let bn = BatchNorm1d::new(1);
        let x = Var::constant(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4, 1]).unwrap());
        bn.forward(&x).unwrap();
        let (rm, rv, nb) = bn.running.as_ref().unwrap();
        // 0.9 * 0 + 0.1 * 2.5 and 0.9 * 1 + 0.1 * 5/3
        assert!((rm.tensor().to_vec()[0] - 0.25).abs() < 1e-7);
        assert!((rv.tensor().to_vec()[0] - (0.9 + 0.1 * 5.0 / 3.0) as f32).abs() < 1e-7);
        assert_eq!(nb.value(), BufferValue::I64 { shape: vec![], data: vec![1] });
        // eval: running stats, no update
        bn.eval();
        let y = bn.forward(&x).unwrap();
        let want = (1.0 - 0.25) / (rv.tensor().to_vec()[0] + 1e-5).sqrt();
        assert!((y.value().to_vec()[0] - want).abs() < 1e-6);
        assert_eq!(nb.value(), BufferValue::I64 { shape: vec![], data: vec![1] });
        let names: Vec<String> = bn.named_buffers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["running_mean", "running_var", "num_batches_tracked"]);
    }

    #[test]
    fn cumulative_momentum_and_rank_checks() {
        let bn = BatchNorm1d::with_options(1, 1e-5, None, false, true);
        for v in [[0.0, 2.0], [4.0, 6.0]] {
            bn.forward(&Var::constant(Tensor::from_vec(v.to_vec(), &[2, 1]).unwrap())).unwrap();
        }
        // cumulative average of the batch means 1 and 5 is 3
        assert!((bn.running.as_ref().unwrap().0.tensor().to_vec()[0] - 3.0).abs() < 1e-6);
        assert!(bn.forward(&Var::constant(Tensor::zeros(&[2, 1, 1, 1]))).is_err());
        assert!(bn.forward(&Var::constant(Tensor::zeros(&[2, 3]))).is_err());
        assert!(BatchNorm2d::new(3).forward(&Var::constant(Tensor::zeros(&[2, 3]))).is_err());
    }
}
