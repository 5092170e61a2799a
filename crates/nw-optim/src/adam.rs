//! Adam and AdamW (torch.optim.Adam, torch.optim.AdamW).

use crate::error::{OptimError, check_betas, check_eps, check_lr};
use crate::group::WeightDecay;
use crate::kernel::{Pre, lerp, nan_max, run3, run4, simd_fn};
use crate::optim::{AdaptiveStep, GroupHyper, Rule, beta1_is_momentum, impl_build};
use crate::state::ParamState;

/// Adam (Kingma & Ba), exactly as `torch.optim.Adam` computes it:
///
/// ```text
/// g ← −g                                   if maximize
/// g ← g + λ θ  (L2)     | θ ← θ(1 − γλ)    (Decoupled: AdamW)
/// m ← m + (1 − β1)(g − m)                  (lerp)
/// v ← β2 v + (1 − β2) g²
/// v̂ ← max(v̂, v)                            if amsgrad (and v̂ replaces v below)
/// denom ← √v / √(1 − β2^t) + ε
/// θ ← θ − (γ / (1 − β1^t)) m / denom
/// ```
/// Bias corrections in f64, elementwise arithmetic in f32 (as torch's CPU
/// kernels). State: `exp_avg`, `exp_avg_sq`, and `max_exp_avg_sq` with amsgrad.
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_optim::{Adam, Optimizer};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::from_vec(vec![1.0], &[1]).unwrap());
/// let mut opt = Adam { lr: 0.01, ..Adam::default() }.build(vec![w.clone()]).unwrap();
/// let mut grads = Grads::new();
/// grads.insert(&w, Tensor::from_vec(vec![0.5], &[1]).unwrap());
/// opt.step(&grads).unwrap();
/// // first step: m̂ = g, v̂ = g², so θ moves by γ g / (|g| + ε') ≈ γ
/// assert!((w.value().to_vec()[0] - 0.99).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(from = "crate::registry::AdamRepr", into = "crate::registry::AdamRepr")]
pub struct Adam {
    /// Learning rate γ (default 1e-3).
    pub lr: f64,
    /// (β1, β2) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// ε added to the denominator (default 1e-8).
    pub eps: f64,
    /// Weight decay (default `L2(0.0)`; torch's `decoupled_weight_decay=True` is `Decoupled`).
    pub weight_decay: WeightDecay,
    /// AMSGrad: use the running maximum of `v` (default false).
    pub amsgrad: bool,
    /// Ascend instead of descend (default false).
    pub maximize: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: WeightDecay::L2(0.0),
            amsgrad: false,
            maximize: false,
        }
    }
}

/// AdamW (Loshchilov & Hutter): Adam with decoupled weight decay, exactly as
/// `torch.optim.AdamW`: `θ ← θ(1 − γλ)` then the Adam update of [`Adam`].
/// The only difference from `Adam` is the default `weight_decay`,
/// `Decoupled(0.01)`.
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_optim::{AdamW, Optimizer};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::from_vec(vec![2.0], &[1]).unwrap());
/// let mut opt = AdamW { lr: 0.1, ..AdamW::default() }.build(vec![w.clone()]).unwrap();
/// let mut grads = Grads::new();
/// grads.insert(&w, Tensor::from_vec(vec![0.0], &[1]).unwrap());
/// opt.step(&grads).unwrap();
/// // zero gradient: only the decay acts, θ = 2 (1 − 0.1 · 0.01)
/// assert!((w.value().to_vec()[0] - 1.998).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamW {
    /// Learning rate γ (default 1e-3).
    pub lr: f64,
    /// (β1, β2) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// ε (default 1e-8).
    pub eps: f64,
    /// Weight decay (default `Decoupled(0.01)`).
    #[serde(with = "crate::registry::decoupled")]
    pub weight_decay: WeightDecay,
    /// AMSGrad (default false).
    pub amsgrad: bool,
    /// Ascend instead of descend (default false).
    pub maximize: bool,
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: WeightDecay::Decoupled(0.01),
            amsgrad: false,
            maximize: false,
        }
    }
}

impl From<AdamW> for Adam {
    fn from(a: AdamW) -> Adam {
        Adam {
            lr: a.lr,
            betas: a.betas,
            eps: a.eps,
            weight_decay: a.weight_decay,
            amsgrad: a.amsgrad,
            maximize: a.maximize,
        }
    }
}

impl_build!(Adam);
impl_build!(AdamW);

const NAMES: &[&str] = &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"];

fn validate(owner: &'static str, a: &Adam) -> Result<(), OptimError> {
    check_lr(owner, a.lr)?;
    check_eps(owner, a.eps)?;
    check_betas(owner, a.betas)?;
    a.weight_decay.validate(owner)
}

/// The fused Adam step over one parameter (shared by Adam and AdamW).
fn adam_update(a: &Adam, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]) {
    let t = st.step as f64;
    let (b1, b2) = a.betas;
    let bc1 = 1.0 - b1.powf(t);
    let bc2 = 1.0 - b2.powf(t);
    let k = K {
        pre: Pre::new(a.maximize, h.weight_decay, h.lr),
        w1: (1.0 - b1) as f32,
        b2: b2 as f32,
        w2: (1.0 - b2) as f32,
        eps: a.eps as f32,
        bc2_sqrt: bc2.sqrt() as f32,
        neg_step: (-(h.lr / bc1)) as f32,
    };
    let (m, rest) = st.buffers.split_at_mut(1);
    let m = &mut m[0];
    if a.amsgrad {
        let (v, vmax) = rest.split_at_mut(1);
        run4(p, g, m, &mut v[0], &mut vmax[0], |p, g, m, v, vmax| amsgrad(k, p, g, m, v, vmax));
    } else {
        run3(p, g, m, &mut rest[0], |p, g, m, v| plain(k, p, g, m, v));
    }
}

/// Per-step coefficients, by value into the loops.
#[derive(Clone, Copy)]
struct K {
    pre: Pre,
    w1: f32,
    b2: f32,
    w2: f32,
    eps: f32,
    bc2_sqrt: f32,
    neg_step: f32,
}

simd_fn! {
    fn plain(k: K, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = k.pre.apply(p, g);
            *m = lerp(*m, g, k.w1);
            *v = *v * k.b2 + k.w2 * g * g;
            let denom = v.sqrt() / k.bc2_sqrt + k.eps;
            *p += k.neg_step * *m / denom;
        }
    }
}

simd_fn! {
    fn amsgrad(k: K, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], vmax: &mut [f32]) {
        for ((((p, &g), m), v), vmax) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()).zip(vmax.iter_mut()) {
            let g = k.pre.apply(p, g);
            *m = lerp(*m, g, k.w1);
            *v = *v * k.b2 + k.w2 * g * g;
            *vmax = nan_max(*vmax, *v);
            let denom = vmax.sqrt() / k.bc2_sqrt + k.eps;
            *p += k.neg_step * *m / denom;
        }
    }
}

impl Rule for Adam {
    const NAME: &'static str = "Adam";

    beta1_is_momentum!();

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> WeightDecay {
        self.weight_decay
    }

    fn validate(&self) -> Result<(), OptimError> {
        validate(Self::NAME, self)
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        if self.amsgrad { NAMES } else { &NAMES[..2] }
    }

    fn update(&self, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]) {
        adam_update(self, h, st, p, g)
    }

    fn adaptive_step(&self) -> Option<AdaptiveStep> {
        Some(adaptive(self.amsgrad, self.betas.1, self.eps))
    }
}

impl Rule for AdamW {
    const NAME: &'static str = "AdamW";

    beta1_is_momentum!();

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> WeightDecay {
        self.weight_decay
    }

    fn validate(&self) -> Result<(), OptimError> {
        validate(Self::NAME, &self.clone().into())
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        if self.amsgrad { NAMES } else { &NAMES[..2] }
    }

    fn update(&self, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]) {
        adam_update(&self.clone().into(), h, st, p, g)
    }

    fn adaptive_step(&self) -> Option<AdaptiveStep> {
        Some(adaptive(self.amsgrad, self.betas.1, self.eps))
    }
}

/// The denominator Adam and AdamW divide by (the running maximum with AMSGrad).
fn adaptive(amsgrad: bool, beta2: f64, eps: f64) -> AdaptiveStep {
    AdaptiveStep { buffer: if amsgrad { NAMES[2] } else { NAMES[1] }, beta2, eps }
}
