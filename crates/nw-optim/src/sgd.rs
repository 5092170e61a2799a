//! Stochastic gradient descent with momentum, dampening and Nesterov (torch.optim.SGD).

use crate::error::{OptimError, check_closed, check_lr, check_min};
use crate::group::WeightDecay;
use crate::kernel::{Pre, run1, run2, simd_fn};
use crate::optim::{GroupHyper, Rule, impl_build};
use crate::state::ParamState;

/// SGD, exactly as `torch.optim.SGD` computes it:
///
/// ```text
/// g ← −g                          if maximize
/// g ← g + λ θ                     (weight_decay, L2)   | θ ← θ(1 − γλ) (Decoupled)
/// if μ ≠ 0:
///     b ← g                       at the first step
///     b ← μ b + (1 − τ) g         afterwards
///     g ← g + μ b                 if nesterov, else g ← b
/// θ ← θ − γ g
/// ```
/// with γ = `lr`, μ = `momentum`, τ = `dampening`. State: `momentum_buffer`
/// (when μ ≠ 0). Nesterov needs μ > 0 and τ = 0.
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_optim::{Optimizer, Sgd};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::from_vec(vec![1.0, -2.0], &[2]).unwrap());
/// let mut opt = Sgd { lr: 0.1, momentum: 0.9, ..Sgd::default() }.build(vec![w.clone()]).unwrap();
/// let mut grads = Grads::new();
/// grads.insert(&w, Tensor::from_vec(vec![1.0, 1.0], &[2]).unwrap());
/// opt.step(&grads).unwrap(); // b = g = 1: θ = 1 − 0.1
/// opt.step(&grads).unwrap(); // b = 0.9·1 + 1 = 1.9: θ = 0.9 − 0.19
/// assert!((w.value().to_vec()[0] - 0.71).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sgd {
    /// Learning rate γ (torch default 1e-3).
    pub lr: f64,
    /// Momentum factor μ (default 0: no buffer).
    pub momentum: f64,
    /// Dampening τ of the gradient added to the buffer (default 0).
    pub dampening: f64,
    /// Weight decay (default `L2(0.0)`: none).
    #[serde(with = "crate::registry::l2")]
    pub weight_decay: WeightDecay,
    /// Nesterov momentum (default false).
    pub nesterov: bool,
    /// Ascend instead of descend (default false).
    pub maximize: bool,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: WeightDecay::default(),
            nesterov: false,
            maximize: false,
        }
    }
}

impl_build!(Sgd);

impl Rule for Sgd {
    const NAME: &'static str = "SGD";

    fn momentum(&self) -> Option<f64> {
        Some(self.momentum)
    }

    fn set_momentum(&mut self, momentum: f64) -> Result<(), OptimError> {
        if (self.momentum == 0.0) != (momentum == 0.0) {
            return Err(OptimError::NoMomentum {
                optimizer: Self::NAME,
                reason: "momentum cannot change between zero and non-zero (its buffer exists only with momentum)",
            });
        }
        self.momentum = momentum;
        Ok(())
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> WeightDecay {
        self.weight_decay
    }

    fn validate(&self) -> Result<(), OptimError> {
        check_lr(Self::NAME, self.lr)?;
        check_min(Self::NAME, "momentum", self.momentum, 0.0, "must be finite and >= 0")?;
        check_closed(Self::NAME, "dampening", self.dampening, 0.0, 1.0, "must lie in [0, 1]")?;
        self.weight_decay.validate(Self::NAME)?;
        if self.nesterov && self.momentum <= 0.0 {
            return Err(OptimError::InvalidHyper {
                owner: Self::NAME,
                name: "momentum",
                value: self.momentum,
                reason: "nesterov needs momentum > 0",
            });
        }
        if self.nesterov && self.dampening != 0.0 {
            return Err(OptimError::InvalidHyper {
                owner: Self::NAME,
                name: "dampening",
                value: self.dampening,
                reason: "nesterov needs dampening = 0",
            });
        }
        Ok(())
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        if self.momentum != 0.0 { &["momentum_buffer"] } else { &[] }
    }

    fn update(&self, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]) {
        let k = K {
            pre: Pre::new(self.maximize, h.weight_decay, h.lr),
            neg_lr: -h.lr as f32,
            mu: self.momentum as f32,
            keep: (1.0 - self.dampening) as f32,
            first: st.step == 1,
            nesterov: self.nesterov,
        };
        if self.momentum == 0.0 {
            run1(p, g, |p, g| plain(k, p, g));
        } else {
            run2(p, g, &mut st.buffers[0], |p, g, b| momentum(k, p, g, b));
        }
    }
}

/// Per-step coefficients, by value into the loops.
#[derive(Clone, Copy)]
struct K {
    pre: Pre,
    neg_lr: f32,
    mu: f32,
    keep: f32,
    first: bool,
    nesterov: bool,
}

simd_fn! {
    fn plain(k: K, p: &mut [f32], g: &[f32]) {
        for (p, &g) in p.iter_mut().zip(g) {
            let g = k.pre.apply(p, g);
            *p += k.neg_lr * g;
        }
    }
}

simd_fn! {
    fn momentum(k: K, p: &mut [f32], g: &[f32], b: &mut [f32]) {
        for ((p, &g), b) in p.iter_mut().zip(g).zip(b.iter_mut()) {
            let g = k.pre.apply(p, g);
            // b ← g at the first step, then b ← μ b + (1 − τ) g
            *b = if k.first { g } else { *b * k.mu + k.keep * g };
            let d = if k.nesterov { g + k.mu * *b } else { *b };
            *p += k.neg_lr * d;
        }
    }
}
