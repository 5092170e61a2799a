//! Rprop (torch.optim.Rprop).

use crate::error::{OptimError, check_lr};
use crate::group::WeightDecay;
use crate::kernel::{Pre, run3, sign, simd_fn};
use crate::optim::{GroupHyper, Rule, impl_build};
use crate::state::ParamState;

/// Resilient backpropagation (Riedmiller & Braun), exactly as
/// `torch.optim.Rprop` computes it (per element):
///
/// ```text
/// g ← −g                              if maximize
/// s ← g · g_prev
/// η ← η+ if s > 0,  η− if s < 0,  1 if s = 0
/// Δ ← clamp(Δ η, Δmin, Δmax)           (Δ starts at lr)
/// g ← 0                                where η = η− (sign flipped: skip this step)
/// θ ← θ − sign(g) Δ
/// g_prev ← g
/// ```
/// State: `prev`, `step_size`. torch's Rprop has no weight decay; nw's
/// `weight_decay` (default none) is an extension applied to g as in the
/// other optimizers.
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_optim::{Optimizer, Rprop};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::from_vec(vec![1.0], &[1]).unwrap());
/// let mut opt = Rprop { lr: 0.01, ..Rprop::default() }.build(vec![w.clone()]).unwrap();
/// let mut grads = Grads::new();
/// grads.insert(&w, Tensor::from_vec(vec![5.0], &[1]).unwrap());
/// opt.step(&grads).unwrap(); // g_prev = 0: η = 1, θ = 1 − 0.01
/// opt.step(&grads).unwrap(); // same sign: Δ = 0.012, θ = 0.99 − 0.012
/// assert!((w.value().to_vec()[0] - 0.978).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rprop {
    /// Initial step size Δ (default 1e-2).
    pub lr: f64,
    /// (η−, η+) (default (0.5, 1.2)); 0 < η− < 1 < η+.
    pub etas: (f64, f64),
    /// (Δmin, Δmax) (default (1e-6, 50)).
    pub step_sizes: (f64, f64),
    /// Weight decay (default `L2(0.0)`, none; not in torch).
    #[serde(with = "crate::registry::l2")]
    pub weight_decay: WeightDecay,
    /// Ascend instead of descend (default false).
    pub maximize: bool,
}

impl Default for Rprop {
    fn default() -> Self {
        Rprop {
            lr: 1e-2,
            etas: (0.5, 1.2),
            step_sizes: (1e-6, 50.0),
            weight_decay: WeightDecay::default(),
            maximize: false,
        }
    }
}

impl_build!(Rprop);

impl Rule for Rprop {
    const NAME: &'static str = "Rprop";

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> WeightDecay {
        self.weight_decay
    }

    fn validate(&self) -> Result<(), OptimError> {
        check_lr(Self::NAME, self.lr)?;
        let (em, ep) = self.etas;
        if !(em > 0.0 && em < 1.0) {
            return Err(OptimError::InvalidHyper {
                owner: Self::NAME,
                name: "etas[0]",
                value: em,
                reason: "must lie in (0, 1)",
            });
        }
        if !(ep > 1.0 && ep.is_finite()) {
            return Err(OptimError::InvalidHyper {
                owner: Self::NAME,
                name: "etas[1]",
                value: ep,
                reason: "must be finite and > 1",
            });
        }
        let (lo, hi) = self.step_sizes;
        if !(lo >= 0.0 && lo.is_finite()) {
            return Err(OptimError::InvalidHyper {
                owner: Self::NAME,
                name: "step_sizes[0]",
                value: lo,
                reason: "must be finite and >= 0",
            });
        }
        if !(hi >= lo && hi.is_finite()) {
            return Err(OptimError::InvalidHyper {
                owner: Self::NAME,
                name: "step_sizes[1]",
                value: hi,
                reason: "must be finite and >= step_sizes[0]",
            });
        }
        self.weight_decay.validate(Self::NAME)
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        &["prev", "step_size"]
    }

    fn buffer_init(&self, k: usize, group_lr: f64) -> f32 {
        // torch: prev = zeros, step_size = full_like(grad, lr)
        if k == 1 { group_lr as f32 } else { 0.0 }
    }

    fn update(&self, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]) {
        let k = K {
            pre: Pre::new(self.maximize, h.weight_decay, h.lr),
            em: self.etas.0 as f32,
            ep: self.etas.1 as f32,
            lo: self.step_sizes.0 as f32,
            hi: self.step_sizes.1 as f32,
        };
        let (prev, size) = st.buffers.split_at_mut(1);
        run3(p, g, &mut prev[0], &mut size[0], |p, g, prev, size| chunk(k, p, g, prev, size));
    }
}

/// Per-step coefficients, by value into the loop.
#[derive(Clone, Copy)]
struct K {
    pre: Pre,
    em: f32,
    ep: f32,
    lo: f32,
    hi: f32,
}

simd_fn! {
    fn chunk(k: K, p: &mut [f32], g: &[f32], prev: &mut [f32], size: &mut [f32]) {
        for (((p, &g), prev), size) in p.iter_mut().zip(g).zip(prev.iter_mut()).zip(size.iter_mut()) {
            let g = k.pre.apply(p, g);
            let s = g * *prev;
            let eta = if s > 0.0 {
                k.ep
            } else if s < 0.0 {
                k.em
            } else if s == 0.0 {
                1.0
            } else {
                f32::NAN
            };
            // clamp_(min, max), NaN propagating
            let d = *size * eta;
            *size = if d.is_nan() { d } else { d.max(k.lo).min(k.hi) };
            // torch zeroes the gradient where the factor is η−
            let g = if eta == k.em { 0.0 } else { g };
            *p += -sign(g) * *size;
            *prev = g;
        }
    }
}
