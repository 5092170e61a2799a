//! Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms").

use crate::error::{OptimError, check_closed, check_lr};
use crate::group::WeightDecay;
use crate::kernel::{Pre, run2, sign, simd_fn};
use crate::optim::{GroupHyper, Rule, beta1_is_momentum, impl_build};
use crate::state::ParamState;

/// Lion ("EvoLved Sign Momentum"), the update rule of Chen et al. 2023,
/// Algorithm 2 (there is no torch.optim reference):
///
/// ```text
/// g ← −g                            if maximize
/// c ← β1 m + (1 − β1) g
/// θ ← θ(1 − γλ) − γ sign(c)          (decoupled weight decay, as the paper)
/// m ← β2 m + (1 − β2) g
/// ```
/// sign(0) = 0. State: `exp_avg` (m). `L2(λ)` instead adds λθ to g first.
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_optim::{Lion, Optimizer};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::from_vec(vec![1.0, 1.0], &[2]).unwrap());
/// let mut opt = Lion { lr: 0.1, ..Lion::default() }.build(vec![w.clone()]).unwrap();
/// let mut grads = Grads::new();
/// grads.insert(&w, Tensor::from_vec(vec![0.3, -7.0], &[2]).unwrap());
/// opt.step(&grads).unwrap(); // every element moves by exactly lr against its gradient's sign
/// assert_eq!(w.value().to_vec(), vec![0.9, 1.1]);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lion {
    /// Learning rate γ (default 1e-4, the paper's advice: 3-10x smaller than AdamW's).
    pub lr: f64,
    /// (β1, β2) (default (0.9, 0.99)).
    pub betas: (f64, f64),
    /// Weight decay (default `Decoupled(0.0)`).
    #[serde(with = "crate::registry::decoupled")]
    pub weight_decay: WeightDecay,
    /// Ascend instead of descend (default false).
    pub maximize: bool,
}

impl Default for Lion {
    fn default() -> Self {
        Lion { lr: 1e-4, betas: (0.9, 0.99), weight_decay: WeightDecay::Decoupled(0.0), maximize: false }
    }
}

impl_build!(Lion);

impl Rule for Lion {
    const NAME: &'static str = "Lion";

    beta1_is_momentum!();

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> WeightDecay {
        self.weight_decay
    }

    fn validate(&self) -> Result<(), OptimError> {
        check_lr(Self::NAME, self.lr)?;
        check_closed(Self::NAME, "betas[0]", self.betas.0, 0.0, 1.0, "must lie in [0, 1]")?;
        check_closed(Self::NAME, "betas[1]", self.betas.1, 0.0, 1.0, "must lie in [0, 1]")?;
        self.weight_decay.validate(Self::NAME)
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        &["exp_avg"]
    }

    fn update(&self, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]) {
        let k = K {
            pre: Pre::new(self.maximize, h.weight_decay, h.lr),
            b1: self.betas.0 as f32,
            w1: (1.0 - self.betas.0) as f32,
            b2: self.betas.1 as f32,
            w2: (1.0 - self.betas.1) as f32,
            lr: h.lr as f32,
        };
        run2(p, g, &mut st.buffers[0], |p, g, m| chunk(k, p, g, m));
    }
}

/// Per-step coefficients, by value into the loop.
#[derive(Clone, Copy)]
struct K {
    pre: Pre,
    b1: f32,
    w1: f32,
    b2: f32,
    w2: f32,
    lr: f32,
}

simd_fn! {
    fn chunk(k: K, p: &mut [f32], g: &[f32], m: &mut [f32]) {
        for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
            let g = k.pre.apply(p, g);
            let c = k.b1 * *m + k.w1 * g;
            *p -= k.lr * sign(c);
            *m = k.b2 * *m + k.w2 * g;
        }
    }
}
