//! Adagrad (torch.optim.Adagrad).

use crate::error::{OptimError, check_eps, check_lr, check_min};
use crate::group::WeightDecay;
use crate::kernel::{Pre, run2, simd_fn};
use crate::optim::{GroupHyper, Rule, impl_build};
use crate::state::ParamState;

/// Adagrad (Duchi et al.), exactly as `torch.optim.Adagrad` computes it:
///
/// ```text
/// g ← −g                         if maximize
/// g ← g + λ θ                    (L2)  | θ ← θ(1 − γλ) (Decoupled)
/// γ̃ ← γ / (1 + (t − 1) η)        (η = lr_decay)
/// s ← s + g²                     (s starts at initial_accumulator_value)
/// θ ← θ − γ̃ g / (√s + ε)
/// ```
/// State: `sum`.
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_optim::{Adagrad, Optimizer};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::from_vec(vec![1.0], &[1]).unwrap());
/// let mut opt = Adagrad { lr: 0.1, ..Adagrad::default() }.build(vec![w.clone()]).unwrap();
/// let mut grads = Grads::new();
/// grads.insert(&w, Tensor::from_vec(vec![2.0], &[1]).unwrap());
/// opt.step(&grads).unwrap(); // s = 4: θ = 1 − 0.1 · 2 / 2
/// assert!((w.value().to_vec()[0] - 0.9).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Adagrad {
    /// Learning rate γ (default 1e-2).
    pub lr: f64,
    /// Learning-rate decay η (default 0).
    pub lr_decay: f64,
    /// Weight decay (default `L2(0.0)`).
    #[serde(with = "crate::registry::l2")]
    pub weight_decay: WeightDecay,
    /// Starting value of the accumulator (default 0).
    pub initial_accumulator_value: f64,
    /// ε (default 1e-10).
    pub eps: f64,
    /// Ascend instead of descend (default false).
    pub maximize: bool,
}

impl Default for Adagrad {
    fn default() -> Self {
        Adagrad {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: WeightDecay::default(),
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    }
}

impl_build!(Adagrad);

impl Rule for Adagrad {
    const NAME: &'static str = "Adagrad";

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> WeightDecay {
        self.weight_decay
    }

    fn validate(&self) -> Result<(), OptimError> {
        check_lr(Self::NAME, self.lr)?;
        check_min(Self::NAME, "lr_decay", self.lr_decay, 0.0, "must be finite and >= 0")?;
        check_min(
            Self::NAME,
            "initial_accumulator_value",
            self.initial_accumulator_value,
            0.0,
            "must be finite and >= 0",
        )?;
        check_eps(Self::NAME, self.eps)?;
        self.weight_decay.validate(Self::NAME)
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        &["sum"]
    }

    fn buffer_init(&self, _k: usize, _group_lr: f64) -> f32 {
        self.initial_accumulator_value as f32
    }

    fn update(&self, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]) {
        let clr = h.lr / (1.0 + (st.step as f64 - 1.0) * self.lr_decay);
        let k = K {
            pre: Pre::new(self.maximize, h.weight_decay, h.lr),
            neg_clr: -clr as f32,
            eps: self.eps as f32,
        };
        run2(p, g, &mut st.buffers[0], |p, g, s| chunk(k, p, g, s));
    }
}

/// Per-step coefficients, by value into the loop.
#[derive(Clone, Copy)]
struct K {
    pre: Pre,
    neg_clr: f32,
    eps: f32,
}

simd_fn! {
    fn chunk(k: K, p: &mut [f32], g: &[f32], s: &mut [f32]) {
        for ((p, &g), s) in p.iter_mut().zip(g).zip(s.iter_mut()) {
            let g = k.pre.apply(p, g);
            *s += g * g;
            let std = s.sqrt() + k.eps;
            *p += k.neg_clr * g / std;
        }
    }
}
