//! SparseAdam (torch.optim.SparseAdam).

use crate::error::{OptimError, check_betas, check_positive};
use crate::group::WeightDecay;
use crate::kernel::{run3, simd_fn};
use crate::optim::{GroupHyper, Rule, beta1_is_momentum, impl_build};
use crate::state::ParamState;

/// SparseAdam: Adam restricted to the rows a row-sparse gradient touches,
/// exactly as `torch.optim.SparseAdam` computes it (`torch.optim._functional.sparse_adam`).
/// Its parameters must have row-sparse gradients ([`nw_autograd::Grads::rows`]:
/// an `nw_nn::Embedding` built with `with_sparse(true)`, torch's
/// `nn.Embedding(sparse=True)`); a dense gradient is an
/// [`OptimError::DenseGrad`] and nothing is updated, as torch raises
/// "SparseAdam does not support dense gradients".
///
/// Every step with a gradient counts (`t ← t + 1`, also when every looked-up
/// row was `padding_idx`, so no row is touched); then, only at the touched
/// rows `r` (duplicates summed, as torch coalesces), with `g` that row's gradient:
///
/// ```text
/// g ← −g                                  if maximize
/// Δm ← (g − m)(1 − β1)      m ← m + Δm
/// Δv ← (g² − v)(1 − β2)     v ← v + Δv
/// θ ← θ − (γ √(1 − β2^t) / (1 − β1^t)) · m / (√v + ε)
/// ```
/// Untouched rows keep their parameter and state bits. The step size is in
/// f64 and the elementwise arithmetic in f32, in torch's order. State:
/// `exp_avg` (m), `exp_avg_sq` (v), both of the parameter's shape. There is
/// no weight decay (a group's `weight_decay` must be 0): it would move every row.
///
/// nw has one optimizer per run, so a model trained with SparseAdam must have
/// only row-sparse parameters; torch users pair SparseAdam for the embeddings
/// with another optimizer for the rest, which in nw takes two optimizers
/// stepped from the same [`nw_autograd::Grads`] (library use only).
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_optim::{Optimizer, SparseAdam};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::ones(&[3, 1]));
/// let mut opt = SparseAdam { lr: 0.1, ..SparseAdam::default() }.build(vec![w.clone()]).unwrap();
/// let mut grads = Grads::new();
/// // row 2 looked up twice (gradient 0.25 + 0.25), row 0 never
/// grads.insert_sparse(&w, Tensor::from_vec(vec![0.0, 0.0, 0.5], &[3, 1]).unwrap(), vec![2, 2]).unwrap();
/// opt.step(&grads).unwrap();
/// // first step: m̂ = g, v̂ = g², so row 2 moves by ≈ γ; rows 0 and 1 stay
/// let v = w.value().to_vec();
/// assert_eq!(&v[..2], &[1.0, 1.0]);
/// assert!((v[2] - 0.9).abs() < 1e-6);
/// // a dense gradient is refused, and nothing moves
/// let mut dense = Grads::new();
/// dense.insert(&w, Tensor::ones(&[3, 1]));
/// assert!(opt.step(&dense).is_err());
/// assert_eq!(w.value().to_vec(), v);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SparseAdam {
    /// Learning rate γ (default 1e-3; torch requires `lr > 0`).
    pub lr: f64,
    /// (β1, β2) (default (0.9, 0.999); each in [0, 1)).
    pub betas: (f64, f64),
    /// ε added to the denominator (default 1e-8; torch requires `eps > 0`).
    pub eps: f64,
    /// Ascend instead of descend (default false).
    pub maximize: bool,
}

impl Default for SparseAdam {
    fn default() -> Self {
        SparseAdam { lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, maximize: false }
    }
}

impl_build!(SparseAdam);

/// Per-step coefficients, by value into the loop.
#[derive(Clone, Copy)]
struct K {
    maximize: bool,
    w1: f32,
    w2: f32,
    eps: f32,
    neg_step: f32,
}

simd_fn! {
    fn sparse_adam(k: K, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = if k.maximize { -g } else { g };
            // torch: update = (g - old) * (1 - b); state += update; numer = update + old
            let dm = (g - *m) * k.w1;
            let dv = (g * g - *v) * k.w2;
            let numer = dm + *m;
            let denom = (dv + *v).sqrt() + k.eps;
            *m += dm;
            *v += dv;
            *p += k.neg_step * (numer / denom);
        }
    }
}

impl Rule for SparseAdam {
    const NAME: &'static str = "SparseAdam";

    beta1_is_momentum!();

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> WeightDecay {
        WeightDecay::L2(0.0)
    }

    /// torch's checks: `0 < lr`, `0 < eps`, `0 <= beta < 1`.
    fn validate(&self) -> Result<(), OptimError> {
        check_positive(Self::NAME, "lr", self.lr)?;
        check_positive(Self::NAME, "eps", self.eps)?;
        check_betas(Self::NAME, self.betas)
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }

    fn row_sparse(&self) -> bool {
        true
    }

    /// The update of the touched elements (the engine gathers the touched
    /// rows of θ, g, m and v into `p`, `g` and the buffers).
    fn update(&self, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]) {
        let t = st.step as f64;
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - b1.powf(t);
        let bc2 = 1.0 - b2.powf(t);
        let step_size = h.lr * bc2.sqrt() / bc1;
        let k = K {
            maximize: self.maximize,
            w1: (1.0 - b1) as f32,
            w2: (1.0 - b2) as f32,
            eps: self.eps as f32,
            neg_step: (-step_size) as f32,
        };
        let (m, v) = st.buffers.split_at_mut(1);
        run3(p, g, &mut m[0], &mut v[0], |p, g, m, v| sparse_adam(k, p, g, m, v));
    }
}
