//! Adamax (torch.optim.Adamax).

use crate::error::{OptimError, check_betas, check_eps, check_lr};
use crate::group::WeightDecay;
use crate::kernel::{Pre, lerp, nan_max, run3, simd_fn};
use crate::optim::{GroupHyper, Rule, beta1_is_momentum, impl_build};
use crate::state::ParamState;

/// Adamax (Kingma & Ba, the infinity-norm variant of Adam), exactly as
/// `torch.optim.Adamax` computes it:
///
/// ```text
/// g ← −g                          if maximize
/// g ← g + λ θ                     (L2)  | θ ← θ(1 − γλ) (Decoupled)
/// m ← m + (1 − β1)(g − m)
/// u ← max(β2 u, |g| + ε)
/// θ ← θ − (γ / (1 − β1^t)) m / u
/// ```
/// State: `exp_avg` (m), `exp_inf` (u).
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_optim::{Adamax, Optimizer};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::from_vec(vec![1.0], &[1]).unwrap());
/// let mut opt = Adamax { lr: 0.02, ..Adamax::default() }.build(vec![w.clone()]).unwrap();
/// let mut grads = Grads::new();
/// grads.insert(&w, Tensor::from_vec(vec![-0.5], &[1]).unwrap());
/// opt.step(&grads).unwrap(); // m = −0.05, u = 0.5: θ = 1 + (0.02 / 0.1) · 0.05 / 0.5
/// assert!((w.value().to_vec()[0] - 1.02).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Adamax {
    /// Learning rate γ (default 2e-3).
    pub lr: f64,
    /// (β1, β2) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// ε (default 1e-8).
    pub eps: f64,
    /// Weight decay (default `L2(0.0)`).
    #[serde(with = "crate::registry::l2")]
    pub weight_decay: WeightDecay,
    /// Ascend instead of descend (default false).
    pub maximize: bool,
}

impl Default for Adamax {
    fn default() -> Self {
        Adamax {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: WeightDecay::default(),
            maximize: false,
        }
    }
}

impl_build!(Adamax);

impl Rule for Adamax {
    const NAME: &'static str = "Adamax";

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
        &["exp_avg", "exp_inf"]
    }

    fn update(&self, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]) {
        let (b1, b2) = self.betas;
        let clr = h.lr / (1.0 - b1.powf(st.step as f64));
        let k = K {
            pre: Pre::new(self.maximize, h.weight_decay, h.lr),
            w1: (1.0 - b1) as f32,
            b2: b2 as f32,
            eps: self.eps as f32,
            neg_clr: -clr as f32,
        };
        let (m, u) = st.buffers.split_at_mut(1);
        run3(p, g, &mut m[0], &mut u[0], |p, g, m, u| chunk(k, p, g, m, u));
    }
}

/// Per-step coefficients, by value into the loop.
#[derive(Clone, Copy)]
struct K {
    pre: Pre,
    w1: f32,
    b2: f32,
    eps: f32,
    neg_clr: f32,
}

simd_fn! {
    fn chunk(k: K, p: &mut [f32], g: &[f32], m: &mut [f32], u: &mut [f32]) {
        for (((p, &g), m), u) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(u.iter_mut()) {
            let g = k.pre.apply(p, g);
            *m = lerp(*m, g, k.w1);
            *u = nan_max(*u * k.b2, g.abs() + k.eps);
            *p += k.neg_clr * *m / *u;
        }
    }
}
