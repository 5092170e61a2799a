//! RAdam (torch.optim.RAdam).

use crate::error::{OptimError, check_betas, check_eps, check_lr};
use crate::group::WeightDecay;
use crate::kernel::{Pre, lerp, run3, simd_fn};
use crate::optim::{GroupHyper, Rule, beta1_is_momentum, impl_build};
use crate::state::ParamState;

/// RAdam (Liu et al., rectified Adam), exactly as `torch.optim.RAdam`
/// computes it:
///
/// ```text
/// g ← −g                                   if maximize
/// g ← g + λ θ  (L2)  | θ ← θ(1 − γλ)       (Decoupled: decoupled_weight_decay=True)
/// m ← m + (1 − β1)(g − m);   v ← β2 v + (1 − β2) g²
/// m̂ ← m / (1 − β1^t)
/// ρ∞ ← 2/(1 − β2) − 1;   ρ_t ← ρ∞ − 2 t β2^t / (1 − β2^t)
/// if ρ_t > 5:  r ← √((ρ_t − 4)(ρ_t − 2) ρ∞ / ((ρ∞ − 4)(ρ∞ − 2) ρ_t))
///              θ ← θ − γ m̂ · √(1 − β2^t) / (√v + ε) · r
/// else:        θ ← θ − γ m̂
/// ```
/// State: `exp_avg`, `exp_avg_sq`.
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_optim::{Optimizer, RAdam};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::from_vec(vec![1.0], &[1]).unwrap());
/// let mut opt = RAdam { lr: 0.02, ..RAdam::default() }.build(vec![w.clone()]).unwrap();
/// let mut grads = Grads::new();
/// grads.insert(&w, Tensor::from_vec(vec![3.0], &[1]).unwrap());
/// opt.step(&grads).unwrap(); // ρ_1 = 1 ≤ 5: plain momentum step, m̂ = g
/// assert!((w.value().to_vec()[0] - (1.0 - 0.02 * 3.0)).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(from = "crate::registry::RAdamRepr", into = "crate::registry::RAdamRepr")]
pub struct RAdam {
    /// Learning rate γ (default 1e-3).
    pub lr: f64,
    /// (β1, β2) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// ε (default 1e-8).
    pub eps: f64,
    /// Weight decay (default `L2(0.0)`; `Decoupled` is torch's `decoupled_weight_decay=True`).
    pub weight_decay: WeightDecay,
    /// Ascend instead of descend (default false).
    pub maximize: bool,
}

impl Default for RAdam {
    fn default() -> Self {
        RAdam {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: WeightDecay::default(),
            maximize: false,
        }
    }
}

impl_build!(RAdam);

impl Rule for RAdam {
    const NAME: &'static str = "RAdam";

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
        self.weight_decay.validate(Self::NAME)
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }

    fn update(&self, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]) {
        let t = st.step as f64;
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - b1.powf(t);
        let bc2 = 1.0 - b2.powf(t);
        let rho_inf = 2.0 / (1.0 - b2) - 1.0;
        let rho_t = rho_inf - 2.0 * t * b2.powf(t) / bc2;
        let rectified = rho_t > 5.0;
        let rect = if rectified {
            ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)).sqrt()
                as f32
        } else {
            1.0
        };
        let k = K {
            pre: Pre::new(self.maximize, h.weight_decay, h.lr),
            rectified,
            rect,
            bc1: bc1 as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            lr: h.lr as f32,
            w1: (1.0 - b1) as f32,
            b2: b2 as f32,
            w2: (1.0 - b2) as f32,
            eps: self.eps as f32,
        };
        let (m, v) = st.buffers.split_at_mut(1);
        run3(p, g, &mut m[0], &mut v[0], |p, g, m, v| chunk(k, p, g, m, v));
    }
}

/// Per-step coefficients, by value into the loop.
#[derive(Clone, Copy)]
struct K {
    pre: Pre,
    rectified: bool,
    rect: f32,
    bc1: f32,
    bc2_sqrt: f32,
    lr: f32,
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
            let mhat = *m / k.bc1;
            let step = if k.rectified {
                let adaptive = k.bc2_sqrt / (v.sqrt() + k.eps);
                mhat * k.lr * adaptive * k.rect
            } else {
                mhat * k.lr
            };
            *p -= step;
        }
    }
}
