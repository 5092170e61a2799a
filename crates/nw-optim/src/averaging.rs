//! Weight averaging with the semantics of `torch.optim.swa_utils.AveragedModel`:
//! an equal-weight running mean of the weights seen (SWA) or an exponential
//! moving average (EMA), kept beside the model.
//!
//! [`WeightAverage`] holds the averaged copies of a model's parameters and
//! (float) buffers as plain tensors; it sees values, never layers. The first
//! [`WeightAverage::update`] copies; each later one averages:
//! - SWA: `a ← a + (p − a) / (n + 1)`, `n` the updates so far;
//! - EMA: `a ← decay · a + (1 − decay) · p`.
//!
//! Both are torch's `lerp(a, p, w)` (`w = 1/(n+1)` or `1 − decay`), computed
//! in f32 as torch's CPU kernel does: `a + w (p − a)` when `w < 0.5`, else
//! `p − (p − a)(1 − w)`. With `use_buffers = false` the buffers are copied
//! from the model at every update (torch's default); with `true` they are
//! averaged like the parameters.
//!
//! ```
//! use nw_optim::averaging::{Averaging, WeightAverage};
//! use nw_tensor::Tensor;
//!
//! let mut swa = WeightAverage::new(Averaging::Swa, false).unwrap();
//! for v in [1.0f32, 2.0, 6.0] {
//!     swa.update(&[Tensor::full(&[2], v)], &[]).unwrap();
//! }
//! assert_eq!(swa.params()[0].to_vec(), vec![3.0, 3.0]); // (1 + 2 + 6) / 3
//! assert_eq!(swa.n_averaged(), 3);
//! ```

use nw_tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::OptimError;

/// How [`WeightAverage`] averages (torch's `avg_fn` / `multi_avg_fn`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Averaging {
    /// Equal-weight running mean (torch's default, `get_swa_multi_avg_fn`).
    Swa,
    /// Exponential moving average (`get_ema_multi_avg_fn(decay)`).
    Ema {
        /// Weight of the old average, in [0, 1).
        decay: f64,
    },
}

impl Averaging {
    /// Checks `decay` in [0, 1).
    pub fn validate(&self) -> Result<(), OptimError> {
        match self {
            Averaging::Swa => Ok(()),
            Averaging::Ema { decay } => {
                if (0.0..1.0).contains(decay) {
                    Ok(())
                } else {
                    Err(OptimError::InvalidHyper {
                        owner: "AveragedModel",
                        name: "decay",
                        value: *decay,
                        reason: "must lie in [0, 1)",
                    })
                }
            }
        }
    }
}

/// The averaged copy of a model's parameters and buffers (torch's
/// `AveragedModel` without the module): serialisable whole, for checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightAverage {
    averaging: Averaging,
    use_buffers: bool,
    n_averaged: u64,
    params: Vec<Vec<f32>>,
    param_shapes: Vec<Vec<usize>>,
    buffers: Vec<Vec<f32>>,
    buffer_shapes: Vec<Vec<usize>>,
}

/// torch's CPU `lerp` in f32: `a + w (p − a)` for `|w| < 0.5`, else `p − (p − a)(1 − w)`.
fn lerp(avg: &mut [f32], cur: &[f32], w: f32) {
    if w.abs() < 0.5 {
        for (a, &p) in avg.iter_mut().zip(cur) {
            *a += w * (p - *a);
        }
    } else {
        for (a, &p) in avg.iter_mut().zip(cur) {
            *a = p - (p - *a) * (1.0 - w);
        }
    }
}

impl WeightAverage {
    /// An empty average (nothing seen yet); the first update copies.
    pub fn new(averaging: Averaging, use_buffers: bool) -> Result<Self, OptimError> {
        averaging.validate()?;
        Ok(WeightAverage {
            averaging,
            use_buffers,
            n_averaged: 0,
            params: Vec::new(),
            param_shapes: Vec::new(),
            buffers: Vec::new(),
            buffer_shapes: Vec::new(),
        })
    }

    /// How it averages.
    pub fn averaging(&self) -> Averaging {
        self.averaging
    }

    /// Whether buffers are averaged (`true`) or copied (`false`).
    pub fn use_buffers(&self) -> bool {
        self.use_buffers
    }

    /// Updates so far (torch's `n_averaged`).
    pub fn n_averaged(&self) -> u64 {
        self.n_averaged
    }

    /// The averaged parameters, in the order given to [`WeightAverage::update`]
    /// (empty before the first update).
    pub fn params(&self) -> Vec<Tensor> {
        Self::tensors(&self.params, &self.param_shapes)
    }

    /// The averaged (or copied) buffers.
    pub fn buffers(&self) -> Vec<Tensor> {
        Self::tensors(&self.buffers, &self.buffer_shapes)
    }

    /// Checks a restored average (from a checkpoint) before use: its
    /// averaging settings, one shape per stored tensor, each tensor's
    /// length against its shape (checked arithmetic), and, once it holds a
    /// value, parameter shapes equal to `param_shapes` (the model's).
    pub fn check_restored(&self, param_shapes: &[Vec<usize>]) -> Result<(), OptimError> {
        let bad = |reason: String| OptimError::State { owner: "AveragedModel", reason };
        self.averaging.validate()?;
        for (what, data, shapes) in
            [("parameter", &self.params, &self.param_shapes), ("buffer", &self.buffers, &self.buffer_shapes)]
        {
            if data.len() != shapes.len() {
                return Err(bad(format!("{} {what} tensors with {} shapes", data.len(), shapes.len())));
            }
            for (i, (d, s)) in data.iter().zip(shapes).enumerate() {
                if nw_tensor::checked_numel(s) != Some(d.len()) {
                    return Err(bad(format!("{what} {i} holds {} values for shape {s:?}", d.len())));
                }
            }
        }
        if self.n_averaged > 0 && self.param_shapes != param_shapes {
            return Err(bad(format!(
                "parameter shapes {:?} differ from the model's {param_shapes:?}",
                self.param_shapes
            )));
        }
        Ok(())
    }

    fn tensors(data: &[Vec<f32>], shapes: &[Vec<usize>]) -> Vec<Tensor> {
        data.iter()
            .zip(shapes)
            .map(|(d, s)| Tensor::from_vec(d.clone(), s).expect("stored with its shape"))
            .collect()
    }

    /// torch's `update_parameters(model)` with the model's current
    /// parameters and float buffers, always in the same order. A count or
    /// shape that differs from the first update's is an error, and then
    /// nothing changes.
    pub fn update(&mut self, params: &[Tensor], buffers: &[Tensor]) -> Result<(), OptimError> {
        let shapes = |ts: &[Tensor]| ts.iter().map(|t| t.shape().to_vec()).collect::<Vec<_>>();
        let (ps, bs) = (shapes(params), shapes(buffers));
        if self.n_averaged > 0 && (ps != self.param_shapes || bs != self.buffer_shapes) {
            return Err(OptimError::State {
                owner: "AveragedModel",
                reason: format!(
                    "update with parameters {ps:?} and buffers {bs:?}, the average holds {:?} and {:?}",
                    self.param_shapes, self.buffer_shapes
                ),
            });
        }
        let values = |ts: &[Tensor]| ts.iter().map(Tensor::to_vec).collect::<Vec<_>>();
        if self.n_averaged == 0 {
            self.params = values(params);
            self.buffers = values(buffers);
            self.param_shapes = ps;
            self.buffer_shapes = bs;
        } else {
            let w = match self.averaging {
                Averaging::Swa => (1.0 / (self.n_averaged as f64 + 1.0)) as f32,
                Averaging::Ema { decay } => (1.0 - decay) as f32,
            };
            for (a, p) in self.params.iter_mut().zip(params) {
                lerp(a, &p.to_vec(), w);
            }
            if self.use_buffers {
                for (a, b) in self.buffers.iter_mut().zip(buffers) {
                    lerp(a, &b.to_vec(), w);
                }
            } else {
                self.buffers = values(buffers);
            }
        }
        self.n_averaged += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_vec(v.to_vec(), &[v.len()]).unwrap()
    }

    #[test]
    fn ema_blends_by_decay_after_copying() {
        // worked by hand: copy 0, then 0.75*0 + 0.25*4 = 1, then 0.75*1 + 0.25*8 = 2.75
        let mut e = WeightAverage::new(Averaging::Ema { decay: 0.75 }, true).unwrap();
        for v in [0.0, 4.0, 8.0] {
            e.update(&[t(&[v])], &[t(&[v * 2.0])]).unwrap();
        }
        assert_eq!(e.params()[0].to_vec(), vec![2.75]);
        assert_eq!(e.buffers()[0].to_vec(), vec![5.5]);
    }

    #[test]
    fn buffers_are_copied_without_use_buffers() {
        let mut s = WeightAverage::new(Averaging::Swa, false).unwrap();
        s.update(&[t(&[0.0])], &[t(&[1.0])]).unwrap();
        s.update(&[t(&[2.0])], &[t(&[7.0])]).unwrap();
        assert_eq!(s.params()[0].to_vec(), vec![1.0]);
        assert_eq!(s.buffers()[0].to_vec(), vec![7.0]);
    }

    #[test]
    fn bad_decay_and_changed_shapes_are_errors() {
        for d in [1.0, -0.1, f64::NAN] {
            assert!(matches!(
                WeightAverage::new(Averaging::Ema { decay: d }, false),
                Err(OptimError::InvalidHyper { name: "decay", .. })
            ));
        }
        let mut s = WeightAverage::new(Averaging::Swa, false).unwrap();
        s.update(&[t(&[0.0])], &[]).unwrap();
        let before = s.clone();
        assert!(matches!(s.update(&[t(&[0.0, 1.0])], &[]), Err(OptimError::State { .. })));
        assert_eq!(s, before);
    }

    #[test]
    fn state_round_trips_through_serde() {
        let mut s = WeightAverage::new(Averaging::Ema { decay: 0.9 }, false).unwrap();
        s.update(&[t(&[1.0, 2.0])], &[t(&[3.0])]).unwrap();
        s.update(&[t(&[5.0, -2.0])], &[t(&[4.0])]).unwrap();
        let back: WeightAverage = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
