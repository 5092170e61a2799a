//! Averaged stochastic gradient descent (torch.optim.ASGD).

use crate::error::{OptimError, check_lr, check_min};
use crate::group::WeightDecay;
use crate::kernel::{Pre, run2, simd_fn};
use crate::optim::{GroupHyper, Rule, impl_build};
use crate::state::ParamState;

/// ASGD (Polyak & Juditsky), exactly as `torch.optim.ASGD` computes it (its
/// single-tensor CPU loop):
///
/// ```text
/// g ← −g                                   if maximize
/// g ← g + λ_wd θ                           if weight_decay ≠ 0
/// θ ← θ (1 − λ η)                          (λ = lambd, η = state eta)
/// θ ← θ − η g
/// ā ← ā + μ (θ − ā)  if μ ≠ 1, else ā ← θ   (ā = state ax, the average)
/// η ← γ / (1 + λ γ t)^α                     (t = the step just taken)
/// μ ← 1 / max(1, t − t0)
/// ```
/// with γ = `lr`. `eta` starts at γ and `mu` at 1. State, as torch keeps it:
/// `eta` and `mu` (one-element tensors in the parameter's dtype, f32, read at
/// the start of the next step) and `ax`, the averaged parameter (the value to
/// evaluate with once averaging has started, after `t0` steps).
///
/// Defaults (torch): `lr` 1e-2, `lambd` 1e-4, `alpha` 0.75, `t0` 1e6,
/// `weight_decay` 0, `maximize` false.
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_optim::{Asgd, Optimizer};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::from_vec(vec![1.0], &[1]).unwrap());
/// let mut opt = Asgd { lr: 0.1, lambd: 0.0, ..Asgd::default() }.build(vec![w.clone()]).unwrap();
/// let mut grads = Grads::new();
/// grads.insert(&w, Tensor::from_vec(vec![1.0], &[1]).unwrap());
/// opt.step(&grads).unwrap();
/// // η = γ at the first step: θ = 1 − 0.1; μ = 1, so the average is θ itself
/// assert!((w.value().to_vec()[0] - 0.9).abs() < 1e-6);
/// assert_eq!(opt.state_dict().tensor("state.0.0.ax").unwrap().to_vec(), w.value().to_vec());
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Asgd {
    /// Learning rate γ (default 1e-2).
    pub lr: f64,
    /// Decay term λ (default 1e-4).
    pub lambd: f64,
    /// Power α of the η schedule (default 0.75).
    pub alpha: f64,
    /// Step after which averaging starts, t0 (default 1e6).
    pub t0: f64,
    /// Weight decay, coupled L2 (default 0).
    #[serde(with = "crate::registry::l2")]
    pub weight_decay: WeightDecay,
    /// Ascend instead of descend (default false).
    pub maximize: bool,
}

impl Default for Asgd {
    fn default() -> Self {
        Asgd {
            lr: 1e-2,
            lambd: 1e-4,
            alpha: 0.75,
            t0: 1e6,
            weight_decay: WeightDecay::default(),
            maximize: false,
        }
    }
}

impl_build!(Asgd);

const ETA: usize = 0;
const MU: usize = 1;
const AX: usize = 2;

impl Rule for Asgd {
    const NAME: &'static str = "ASGD";

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> WeightDecay {
        self.weight_decay
    }

    fn validate(&self) -> Result<(), OptimError> {
        check_lr(Self::NAME, self.lr)?;
        // torch checks only lr and weight_decay; these keep η and μ finite
        check_min(Self::NAME, "lambd", self.lambd, 0.0, "must be finite and >= 0")?;
        check_min(Self::NAME, "alpha", self.alpha, 0.0, "must be finite and >= 0")?;
        if !self.t0.is_finite() {
            return Err(OptimError::InvalidHyper {
                owner: Self::NAME,
                name: "t0",
                value: self.t0,
                reason: "must be finite",
            });
        }
        if let WeightDecay::Decoupled(_) = self.weight_decay {
            return Err(OptimError::InvalidHyper {
                owner: Self::NAME,
                name: "weight_decay",
                value: self.weight_decay.coefficient(),
                reason: "ASGD's weight decay is coupled (L2)",
            });
        }
        self.weight_decay.validate(Self::NAME)
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        &["eta", "mu", "ax"]
    }

    fn buffer_layout(&self, shape: &[usize]) -> Result<Vec<(&'static str, Vec<usize>)>, OptimError> {
        Ok(vec![("eta", vec![]), ("mu", vec![]), ("ax", shape.to_vec())])
    }

    fn buffer_init(&self, k: usize, group_lr: f64) -> f32 {
        match k {
            ETA => group_lr as f32,
            MU => 1.0,
            _ => 0.0,
        }
    }

    fn update(&self, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]) {
        // torch reads eta and mu with .item(): the stored f32 values, widened
        let eta = st.buffers[ETA][0] as f64;
        let mu = st.buffers[MU][0];
        let k = K {
            pre: Pre::new(self.maximize, WeightDecay::L2(h.weight_decay.coefficient()), h.lr),
            decay: (1.0 - self.lambd * eta) as f32,
            neg_eta: (-eta) as f32,
            mu,
            average: mu != 1.0,
        };
        run2(p, g, &mut st.buffers[AX], |p, g, ax| chunk(k, p, g, ax));
        let t = st.step as f64;
        st.buffers[ETA][0] = (h.lr / (1.0 + self.lambd * h.lr * t).powf(self.alpha)) as f32;
        st.buffers[MU][0] = (1.0 / (t - self.t0).max(1.0)) as f32;
    }
}

/// Per-step coefficients, by value into the loop.
#[derive(Clone, Copy)]
struct K {
    pre: Pre,
    decay: f32,
    neg_eta: f32,
    mu: f32,
    average: bool,
}

simd_fn! {
    fn chunk(k: K, p: &mut [f32], g: &[f32], ax: &mut [f32]) {
        for ((p, &g), ax) in p.iter_mut().zip(g).zip(ax.iter_mut()) {
            let g = k.pre.apply(p, g);
            // param.mul_(1 − λη); param.add_(grad, alpha=−η)
            let q = *p * k.decay + k.neg_eta * g;
            *p = q;
            // ax.add_(param.sub(ax).mul(mu)), or ax.copy_(param) while mu = 1
            *ax = if k.average { *ax + (q - *ax) * k.mu } else { q };
        }
    }
}
