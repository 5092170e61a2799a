//! NAdam (torch.optim.NAdam).

use crate::error::{OptimError, check_betas, check_eps, check_lr, check_min};
use crate::group::WeightDecay;
use crate::kernel::{Pre, lerp, run3, simd_fn};
use crate::optim::{GroupHyper, Rule, beta1_is_momentum, impl_build};
use crate::state::ParamState;

/// NAdam (Dozat: Adam with Nesterov momentum), exactly as `torch.optim.NAdam`
/// computes it:
///
/// ```text
/// g ← −g                                   if maximize
/// g ← g + λ θ  (L2)  | θ ← θ(1 − γλ)       (Decoupled: decoupled_weight_decay=True)
/// μ_t ← β1 (1 − ½ · 0.96^(t ψ)),  μ_{t+1} likewise,  Π_t ← Π_{t−1} μ_t   (ψ = momentum_decay)
/// m ← m + (1 − β1)(g − m)
/// v ← β2 v + (1 − β2) g²
/// d ← √(v / (1 − β2^t)) + ε
/// θ ← θ − γ (1 − μ_t)/(1 − Π_t) · g / d − γ μ_{t+1}/(1 − Π_t μ_{t+1}) · m / d
/// ```
/// State: `exp_avg`, `exp_avg_sq` (Π_t, torch's `mu_product`, is a function
/// of the step count; nw keeps it in f64 and recomputes it on load).
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_optim::{NAdam, Optimizer};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::from_vec(vec![1.0], &[1]).unwrap());
/// let mut opt = NAdam { lr: 0.02, ..NAdam::default() }.build(vec![w.clone()]).unwrap();
/// let mut grads = Grads::new();
/// grads.insert(&w, Tensor::from_vec(vec![1.0], &[1]).unwrap());
/// opt.step(&grads).unwrap();
/// // t = 1: d ≈ 1, Π = μ1, so θ ≈ 1 − 0.02 (1 − μ1)/(1 − μ1) − 0.02 μ2 · 0.1/(1 − μ1 μ2)
/// let (mu1, mu2) = (0.9 * (1.0 - 0.5 * 0.96f64.powf(0.004)), 0.9 * (1.0 - 0.5 * 0.96f64.powf(0.008)));
/// let want = 1.0 - 0.02 - 0.02 * mu2 * 0.1 / (1.0 - mu1 * mu2);
/// assert!((w.value().to_vec()[0] as f64 - want).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(from = "crate::registry::NAdamRepr", into = "crate::registry::NAdamRepr")]
pub struct NAdam {
    /// Learning rate γ (default 2e-3).
    pub lr: f64,
    /// (β1, β2) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// ε (default 1e-8).
    pub eps: f64,
    /// Weight decay (default `L2(0.0)`; `Decoupled` is torch's `decoupled_weight_decay=True`).
    pub weight_decay: WeightDecay,
    /// Momentum decay ψ (default 4e-3).
    pub momentum_decay: f64,
    /// Ascend instead of descend (default false).
    pub maximize: bool,
}

impl Default for NAdam {
    fn default() -> Self {
        NAdam {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: WeightDecay::default(),
            momentum_decay: 4e-3,
            maximize: false,
        }
    }
}

impl_build!(NAdam);

impl NAdam {
    fn mu(&self, t: f64) -> f64 {
        self.betas.0 * (1.0 - 0.5 * 0.96f64.powf(t * self.momentum_decay))
    }
}

impl Rule for NAdam {
    const NAME: &'static str = "NAdam";

    beta1_is_momentum!();

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> WeightDecay {
        self.weight_decay
    }

    fn validate(&self) -> Result<(), OptimError> {
        check_lr(Self::NAME, self.lr)?;
        check_eps(Self::NAME, self.eps)?;
        check_betas(Self::NAME, self.betas)?;
        check_min(Self::NAME, "momentum_decay", self.momentum_decay, 0.0, "must be finite and >= 0")?;
        self.weight_decay.validate(Self::NAME)
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }

    fn update(&self, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]) {
        let t = st.step as f64;
        let (b1, b2) = self.betas;
        let (mu, mu_next) = (self.mu(t), self.mu(t + 1.0));
        if st.step == 1 {
            st.cache = 1.0;
        }
        st.cache *= mu;
        let k = K {
            pre: Pre::new(self.maximize, h.weight_decay, h.lr),
            bc2: (1.0 - b2.powf(t)) as f32,
            c_g: (-h.lr * (1.0 - mu) / (1.0 - st.cache)) as f32,
            c_m: ((-h.lr * mu_next) / (1.0 - st.cache * mu_next)) as f32,
            w1: (1.0 - b1) as f32,
            b2: b2 as f32,
            w2: (1.0 - b2) as f32,
            eps: self.eps as f32,
        };
        let (m, v) = st.buffers.split_at_mut(1);
        run3(p, g, &mut m[0], &mut v[0], |p, g, m, v| chunk(k, p, g, m, v));
    }

    fn restore(&self, st: &mut ParamState) {
        // Π_t = μ_1 μ_2 … μ_t, multiplied in the same order as the steps did
        st.cache = 1.0;
        for k in 1..=st.step {
            st.cache *= self.mu(k as f64);
        }
    }
}

/// Per-step coefficients, by value into the loop.
#[derive(Clone, Copy)]
struct K {
    pre: Pre,
    bc2: f32,
    c_g: f32,
    c_m: f32,
    w1: f32,
    b2: f32,
    w2: f32,
    eps: f32,
}

simd_fn! {
    fn chunk(k: K, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = k.pre.apply(p, g);
            *m = lerp(*m, g, k.w1);
            *v = *v * k.b2 + k.w2 * g * g;
            let d = (*v / k.bc2).sqrt() + k.eps;
            *p += k.c_g * g / d;
            *p += k.c_m * *m / d;
        }
    }
}
