//! RMSprop (torch.optim.RMSprop).

use crate::error::{OptimError, check_closed, check_eps, check_lr, check_min};
use crate::group::WeightDecay;
use crate::kernel::{Pre, lerp, run2, run3, run4, simd_fn};
use crate::optim::{GroupHyper, Rule, impl_build};
use crate::state::ParamState;

/// RMSprop (Hinton), exactly as `torch.optim.RMSprop` computes it:
///
/// ```text
/// g ← −g                          if maximize
/// g ← g + λ θ                     (L2)  | θ ← θ(1 − γλ) (Decoupled)
/// v ← α v + (1 − α) g²
/// ḡ ← ḡ + (1 − α)(g − ḡ)          if centered (lerp); then ṽ = v − ḡ², else ṽ = v
/// d ← √ṽ + ε
/// b ← μ b + g / d;  θ ← θ − γ b   if μ > 0
/// θ ← θ − γ g / d                 otherwise
/// ```
/// State: `square_avg`, then `momentum_buffer` (μ > 0), then `grad_avg` (centered).
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_optim::{Optimizer, RmsProp};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::from_vec(vec![1.0], &[1]).unwrap());
/// let mut opt = RmsProp { lr: 0.01, ..RmsProp::default() }.build(vec![w.clone()]).unwrap();
/// let mut grads = Grads::new();
/// grads.insert(&w, Tensor::from_vec(vec![1.0], &[1]).unwrap());
/// opt.step(&grads).unwrap(); // v = 0.01: θ = 1 − 0.01 · 1 / 0.1
/// assert!((w.value().to_vec()[0] - 0.9).abs() < 1e-5);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RmsProp {
    /// Learning rate γ (default 1e-2).
    pub lr: f64,
    /// Smoothing constant α (default 0.99).
    pub alpha: f64,
    /// ε (default 1e-8).
    pub eps: f64,
    /// Weight decay (default `L2(0.0)`).
    #[serde(with = "crate::registry::l2")]
    pub weight_decay: WeightDecay,
    /// Momentum μ (default 0).
    pub momentum: f64,
    /// Normalise by the estimated variance instead of the raw second moment (default false).
    pub centered: bool,
    /// Ascend instead of descend (default false).
    pub maximize: bool,
}

impl Default for RmsProp {
    fn default() -> Self {
        RmsProp {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: WeightDecay::default(),
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

impl_build!(RmsProp);

impl Rule for RmsProp {
    const NAME: &'static str = "RMSprop";

    fn momentum(&self) -> Option<f64> {
        Some(self.momentum)
    }

    fn set_momentum(&mut self, momentum: f64) -> Result<(), OptimError> {
        if (self.momentum == 0.0) != (momentum == 0.0) {
            return Err(OptimError::NoMomentum {
                optimizer: Self::NAME,
                reason: "momentum cannot change between zero and non-zero (its buffer exists only with momentum)",
            });
        }
        self.momentum = momentum;
        Ok(())
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> WeightDecay {
        self.weight_decay
    }

    fn validate(&self) -> Result<(), OptimError> {
        check_lr(Self::NAME, self.lr)?;
        check_closed(Self::NAME, "alpha", self.alpha, 0.0, 1.0, "must lie in [0, 1]")?;
        check_eps(Self::NAME, self.eps)?;
        check_min(Self::NAME, "momentum", self.momentum, 0.0, "must be finite and >= 0")?;
        self.weight_decay.validate(Self::NAME)
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        match (self.momentum > 0.0, self.centered) {
            (false, false) => &["square_avg"],
            (true, false) => &["square_avg", "momentum_buffer"],
            (false, true) => &["square_avg", "grad_avg"],
            (true, true) => &["square_avg", "momentum_buffer", "grad_avg"],
        }
    }

    fn update(&self, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]) {
        let k = K {
            pre: Pre::new(self.maximize, h.weight_decay, h.lr),
            a: self.alpha as f32,
            w: (1.0 - self.alpha) as f32,
            eps: self.eps as f32,
            neg_lr: -h.lr as f32,
            mu: self.momentum as f32,
        };
        match &mut st.buffers[..] {
            [v] => run2(p, g, v, |p, g, v| plain(k, p, g, v)),
            [v, b] if self.momentum > 0.0 => run3(p, g, v, b, |p, g, v, b| momentum(k, p, g, v, b)),
            [v, ga] => run3(p, g, v, ga, |p, g, v, ga| centered(k, p, g, v, ga)),
            [v, b, ga] => run4(p, g, v, b, ga, |p, g, v, b, ga| centered_momentum(k, p, g, v, b, ga)),
            _ => unreachable!("buffer_names gives one to three buffers"),
        }
    }
}

/// Per-step coefficients, by value into the loops.
#[derive(Clone, Copy)]
struct K {
    pre: Pre,
    a: f32,
    w: f32,
    eps: f32,
    neg_lr: f32,
    mu: f32,
}

simd_fn! {
    fn plain(k: K, p: &mut [f32], g: &[f32], v: &mut [f32]) {
        for ((p, &g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
            let g = k.pre.apply(p, g);
            *v = *v * k.a + k.w * g * g;
            let d = v.sqrt() + k.eps;
            *p += k.neg_lr * g / d;
        }
    }
}

simd_fn! {
    fn momentum(k: K, p: &mut [f32], g: &[f32], v: &mut [f32], b: &mut [f32]) {
        for (((p, &g), v), b) in p.iter_mut().zip(g).zip(v.iter_mut()).zip(b.iter_mut()) {
            let g = k.pre.apply(p, g);
            *v = *v * k.a + k.w * g * g;
            let d = v.sqrt() + k.eps;
            *b = *b * k.mu + g / d;
            *p += k.neg_lr * *b;
        }
    }
}

simd_fn! {
    fn centered(k: K, p: &mut [f32], g: &[f32], v: &mut [f32], ga: &mut [f32]) {
        for (((p, &g), v), ga) in p.iter_mut().zip(g).zip(v.iter_mut()).zip(ga.iter_mut()) {
            let g = k.pre.apply(p, g);
            *v = *v * k.a + k.w * g * g;
            *ga = lerp(*ga, g, k.w);
            // square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
            let d = (*v + -1.0 * *ga * *ga).sqrt() + k.eps;
            *p += k.neg_lr * g / d;
        }
    }
}

simd_fn! {
    fn centered_momentum(k: K, p: &mut [f32], g: &[f32], v: &mut [f32], b: &mut [f32], ga: &mut [f32]) {
        for ((((p, &g), v), b), ga) in p.iter_mut().zip(g).zip(v.iter_mut()).zip(b.iter_mut()).zip(ga.iter_mut()) {
            let g = k.pre.apply(p, g);
            *v = *v * k.a + k.w * g * g;
            *ga = lerp(*ga, g, k.w);
            let d = (*v + -1.0 * *ga * *ga).sqrt() + k.eps;
            *b = *b * k.mu + g / d;
            *p += k.neg_lr * *b;
        }
    }
}
