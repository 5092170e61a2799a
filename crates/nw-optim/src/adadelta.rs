//! Adadelta (torch.optim.Adadelta).

use crate::error::{OptimError, check_closed, check_eps, check_lr};
use crate::group::WeightDecay;
use crate::kernel::{Pre, run3, simd_fn};
use crate::optim::{GroupHyper, Rule, impl_build};
use crate::state::ParamState;

/// Adadelta (Zeiler), exactly as `torch.optim.Adadelta` computes it:
///
/// ```text
/// g ← −g                               if maximize
/// g ← g + λ θ                          (L2)  | θ ← θ(1 − γλ) (Decoupled)
/// v ← ρ v + (1 − ρ) g²
/// Δ ← √(u + ε) / √(v + ε) · g
/// u ← ρ u + (1 − ρ) Δ²
/// θ ← θ − γ Δ
/// ```
/// State: `square_avg` (v), `acc_delta` (u).
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_optim::{Adadelta, Optimizer};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::from_vec(vec![1.0], &[1]).unwrap());
/// let mut opt = Adadelta::default().build(vec![w.clone()]).unwrap();
/// let mut grads = Grads::new();
/// grads.insert(&w, Tensor::from_vec(vec![1.0], &[1]).unwrap());
/// opt.step(&grads).unwrap();
/// // v = 0.1, Δ = √1e-6 / √(0.1 + 1e-6) ≈ 3.1623e-3
/// assert!((w.value().to_vec()[0] - (1.0 - 3.16226e-3)).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Adadelta {
    /// Learning rate γ scaling Δ (default 1.0).
    pub lr: f64,
    /// Decay ρ of the running averages (default 0.9).
    pub rho: f64,
    /// ε (default 1e-6).
    pub eps: f64,
    /// Weight decay (default `L2(0.0)`).
    #[serde(with = "crate::registry::l2")]
    pub weight_decay: WeightDecay,
    /// Ascend instead of descend (default false).
    pub maximize: bool,
}

impl Default for Adadelta {
    fn default() -> Self {
        Adadelta { lr: 1.0, rho: 0.9, eps: 1e-6, weight_decay: WeightDecay::default(), maximize: false }
    }
}

impl_build!(Adadelta);

impl Rule for Adadelta {
    const NAME: &'static str = "Adadelta";

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> WeightDecay {
        self.weight_decay
    }

    fn validate(&self) -> Result<(), OptimError> {
        check_lr(Self::NAME, self.lr)?;
        check_closed(Self::NAME, "rho", self.rho, 0.0, 1.0, "must lie in [0, 1]")?;
        check_eps(Self::NAME, self.eps)?;
        self.weight_decay.validate(Self::NAME)
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        &["square_avg", "acc_delta"]
    }

    fn update(&self, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]) {
        let k = K {
            pre: Pre::new(self.maximize, h.weight_decay, h.lr),
            rho: self.rho as f32,
            w: (1.0 - self.rho) as f32,
            eps: self.eps as f32,
            neg_lr: -h.lr as f32,
        };
        let (v, u) = st.buffers.split_at_mut(1);
        run3(p, g, &mut v[0], &mut u[0], |p, g, v, u| chunk(k, p, g, v, u));
    }
}

/// Per-step coefficients, by value into the loop.
#[derive(Clone, Copy)]
struct K {
    pre: Pre,
    rho: f32,
    w: f32,
    eps: f32,
    neg_lr: f32,
}

simd_fn! {
    fn chunk(k: K, p: &mut [f32], g: &[f32], v: &mut [f32], u: &mut [f32]) {
        for (((p, &g), v), u) in p.iter_mut().zip(g).zip(v.iter_mut()).zip(u.iter_mut()) {
            let g = k.pre.apply(p, g);
            *v = *v * k.rho + k.w * g * g;
            let std = (*v + k.eps).sqrt();
            let delta = (*u + k.eps).sqrt() / std * g;
            *u = *u * k.rho + k.w * delta * delta;
            *p += k.neg_lr * delta;
        }
    }
}
