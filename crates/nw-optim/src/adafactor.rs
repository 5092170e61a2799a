//! Adafactor (torch.optim.Adafactor): a factored second moment for matrices.

use rayon::prelude::*;

use crate::error::{OptimError, check_lr, check_min};
use crate::group::WeightDecay;
use crate::kernel::{lerp, simd_fn};
use crate::optim::{GroupHyper, Rule, impl_build};
use crate::reduce::{lanes_sum, norm2, sum_sq};
use crate::state::ParamState;

/// Adafactor (Shazeer & Stern), exactly as `torch.optim.Adafactor` computes
/// it (torch 2.15's single-tensor loop; its `foreach` loop computes the same
/// values):
///
/// ```text
/// G ← −∇                           if maximize
/// β̂₂ ← 1 − t^τ                     (τ = beta2_decay; the lerp weight is t^τ)
/// ρ ← min(γ, 1/√t)
/// α ← max(ε₂, RMS(θ)) ρ            (RMS of θ before the decay)
/// θ ← θ (1 − γλ)                   if weight_decay λ ≠ 0
/// ≥ 2-D (factored over the last two dims, per leading index):
///     R ← lerp(R, mean_cols(G²), t^τ)       row_var  [..., rows, 1]
///     C ← lerp(C, mean_rows(G²), t^τ)       col_var  [..., 1, cols]
///     V̂ ← R C / max(mean(R), ε₁)
/// 1-D:
///     V ← lerp(V, G², t^τ);  V̂ ← V          variance [n]
/// U ← G / √max(V̂, ε₁²)
/// θ ← θ − α U / max(1, RMS(U) / d)
/// ```
/// with γ = `lr`. `eps = (ε₁, ε₂)`; ε₁ `None` is the machine epsilon of f32
/// (torch: of the parameter's dtype). Elementwise arithmetic in f32; the
/// norms, RMS values and row/column means are summed in f64 over fixed
/// chunks (deterministic for any thread count).
///
/// Defaults (torch): `lr` 1e-2, `beta2_decay` −0.8, `eps` (None, 1e-3), `d` 1,
/// `weight_decay` 0, `maximize` false. State: `row_var` and `col_var` for
/// parameters with two or more dims, `variance` for vectors (and scalars).
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_optim::{Adafactor, Optimizer};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::from_vec(vec![1.0; 6], &[2, 3]).unwrap());
/// let mut opt = Adafactor::default().build(vec![w.clone()]).unwrap();
/// let mut grads = Grads::new();
/// grads.insert(&w, Tensor::from_vec(vec![0.5; 6], &[2, 3]).unwrap());
/// opt.step(&grads).unwrap();
/// // t = 1: V̂ = G², U = sign(G), RMS(θ) = 1, so θ moves by ρ = min(γ, 1) = 0.01
/// assert!((w.value().to_vec()[0] - 0.99).abs() < 1e-6);
/// let sd = opt.state_dict();
/// assert_eq!(sd.tensor("state.0.0.row_var").unwrap().shape(), &[2, 1]);
/// assert_eq!(sd.tensor("state.0.0.col_var").unwrap().shape(), &[1, 3]);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Adafactor {
    /// Learning rate γ: the cap of the relative step ρ and the weight-decay
    /// scale (default 1e-2).
    pub lr: f64,
    /// τ, the decay exponent of β₂ (default −0.8; must be ≤ 0).
    pub beta2_decay: f64,
    /// (ε₁, ε₂): ε₁ floors the variance estimate (`None`: f32's machine
    /// epsilon), ε₂ floors the parameter RMS (default (None, 1e-3)). Written
    /// `[null, 1e-3]` in JSON (torch's `None`) and `["machine", 1e-3]` in
    /// TOML, which has no null; both spellings are read everywhere.
    #[serde(with = "eps_pair")]
    pub eps: (Option<f64>, f64),
    /// Clipping threshold d of the update's RMS (default 1; must be ≥ 1).
    pub d: f64,
    /// Decoupled weight decay λ: `θ ← θ (1 − γλ)` (default 0).
    #[serde(with = "crate::registry::decoupled")]
    pub weight_decay: WeightDecay,
    /// torch's `foreach` switch (default None). Both of torch's loops compute
    /// the same values, and nw runs one loop, so it changes nothing here.
    pub foreach: Option<bool>,
    /// Ascend instead of descend (default false).
    pub maximize: bool,
}

impl Default for Adafactor {
    fn default() -> Self {
        Adafactor {
            lr: 1e-2,
            beta2_decay: -0.8,
            eps: (None, 1e-3),
            d: 1.0,
            weight_decay: WeightDecay::Decoupled(0.0),
            foreach: None,
            maximize: false,
        }
    }
}

impl_build!(Adafactor);

/// The factored layout of a shape with two or more dims: (batches, rows, cols).
fn factored(shape: &[usize]) -> Option<(usize, usize, usize)> {
    let n = shape.len();
    if n < 2 {
        return None;
    }
    let (r, c) = (shape[n - 2], shape[n - 1]);
    let b = shape[..n - 2].iter().product();
    Some((b, r, c))
}

impl Adafactor {
    fn eps1(&self) -> f64 {
        self.eps.0.unwrap_or(f32::EPSILON as f64)
    }
}

impl Rule for Adafactor {
    const NAME: &'static str = "Adafactor";

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> WeightDecay {
        self.weight_decay
    }

    fn validate(&self) -> Result<(), OptimError> {
        check_lr(Self::NAME, self.lr)?;
        if !(self.beta2_decay <= 0.0 && self.beta2_decay.is_finite()) {
            return Err(OptimError::InvalidHyper {
                owner: Self::NAME,
                name: "beta2_decay",
                value: self.beta2_decay,
                reason: "must be finite and <= 0",
            });
        }
        if let Some(e1) = self.eps.0 {
            check_min(Self::NAME, "eps[0]", e1, 0.0, "must be finite and >= 0 (or null)")?;
        }
        check_min(Self::NAME, "eps[1]", self.eps.1, 0.0, "must be finite and >= 0")?;
        check_min(Self::NAME, "d", self.d, 1.0, "must be finite and >= 1")?;
        if let WeightDecay::L2(c) = self.weight_decay
            && c != 0.0
        {
            return Err(OptimError::InvalidHyper {
                owner: Self::NAME,
                name: "weight_decay",
                value: c,
                reason: "Adafactor's weight decay is decoupled",
            });
        }
        self.weight_decay.validate(Self::NAME)
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        &["row_var", "col_var", "variance"]
    }

    fn buffer_layout(&self, shape: &[usize]) -> Result<Vec<(&'static str, Vec<usize>)>, OptimError> {
        let n = shape.len();
        Ok(if n >= 2 {
            let mut row = shape.to_vec();
            row[n - 1] = 1;
            let mut col = shape.to_vec();
            col[n - 2] = 1;
            vec![("row_var", row), ("col_var", col)]
        } else {
            vec![("variance", shape.to_vec())]
        })
    }

    /// The vector (unfactored) rule over `p` as one flat vector.
    fn update(&self, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]) {
        self.update_shaped(h, st, &[p.len()], p, g)
    }

    fn update_shaped(&self, h: &GroupHyper, st: &mut ParamState, shape: &[usize], p: &mut [f32], g: &[f32]) {
        let t = st.step as f64;
        let w = t.powf(self.beta2_decay) as f32; // one_minus_beta2_t
        let rho = h.lr.min(1.0 / t.sqrt());
        let numel = p.len() as f64;
        let alpha = self.eps.1.max(norm2(p) / numel.sqrt()) * rho;
        let wd = h.weight_decay.coefficient();
        if wd != 0.0 {
            let f = (1.0 - h.lr * wd) as f32;
            p.par_iter_mut().with_min_len(1 << 14).for_each(|x| *x *= f);
        }
        let eps1 = self.eps1();
        let floor = (eps1 * eps1) as f32;
        let sign: f32 = if self.maximize { -1.0 } else { 1.0 };
        match factored(shape) {
            Some((b, r, c)) => {
                let (rows, cols) = st.buffers.split_at_mut(1);
                let (rv, cv) = (&mut rows[0], &mut cols[0]);
                for bi in 0..b {
                    let gb = &g[bi * r * c..(bi + 1) * r * c];
                    let rvb = &mut rv[bi * r..(bi + 1) * r];
                    let cvb = &mut cv[bi * c..(bi + 1) * c];
                    // row means of G² (over the last dim), then col means (over rows)
                    rvb.par_iter_mut().enumerate().with_min_len(64).for_each(|(i, x)| {
                        let m = (sum_sq(&gb[i * c..(i + 1) * c]) / c as f64) as f32;
                        *x = lerp(*x, m, w);
                    });
                    col_means(gb, r, c, cvb, w);
                }
                // V̂ = R C / max(mean(R), ε₁), per leading index
                let means: Vec<f32> = (0..b)
                    .map(|bi| {
                        let s: f64 = rv[bi * r..(bi + 1) * r].iter().map(|&x| x as f64).sum();
                        ((s / r as f64) as f32).max(eps1 as f32)
                    })
                    .collect();
                let (rv, cv) = (&*rv, &*cv);
                let k = UCoef { floor, sign, step: 0.0 };
                // the row's factors: R[row], its C and its mean
                let at = |row: usize| {
                    let bi = row / r;
                    (rv[row], &cv[bi * c..(bi + 1) * c], means[bi])
                };
                if c > 0 {
                    // ‖U‖² by rows, combined in row order
                    let parts: Vec<f64> = g
                        .par_chunks(c)
                        .enumerate()
                        .with_min_len(16)
                        .map(|(row, gr)| {
                            let (rvi, cvb, mean) = at(row);
                            u_sum_sq(gr, cvb, rvi, mean, k)
                        })
                        .collect();
                    let unorm = parts.iter().sum::<f64>().sqrt();
                    let step = (-alpha / (unorm / (numel.sqrt() * self.d)).max(1.0)) as f32;
                    let k = UCoef { step, ..k };
                    p.par_chunks_mut(c).zip(g.par_chunks(c)).enumerate().with_min_len(16).for_each(
                        |(row, (pr, gr))| {
                            let (rvi, cvb, mean) = at(row);
                            u_apply(pr, gr, cvb, rvi, mean, k);
                        },
                    );
                }
            }
            None => {
                let v = &mut st.buffers[0];
                v.iter_mut().zip(g).for_each(|(v, &gv)| *v = lerp(*v, gv * gv, w));
                let u = |v: f32, gv: f32| (1.0 / v.max(floor).sqrt()) * (sign * gv);
                let s: f64 = v.iter().zip(g).map(|(&v, &gv)| (u(v, gv) as f64).powi(2)).sum();
                let step = (-alpha / (s.sqrt() / (numel.sqrt() * self.d)).max(1.0)) as f32;
                p.iter_mut().zip(v.iter().zip(g)).for_each(|(x, (&v, &gv))| *x += step * u(v, gv));
            }
        }
    }
}

/// The constants of the update `U = (1 / √max(R C / mean, ε₁²)) (±G)`.
#[derive(Clone, Copy)]
struct UCoef {
    floor: f32,
    sign: f32,
    step: f32,
}

/// One element of U, in torch's order of operations: `var = (R·C) / mean`,
/// clamped at ε₁², `rsqrt` as `1 / √`, times the (signed) gradient.
#[inline(always)]
fn u_elem(g: f32, cv: f32, rv: f32, mean: f32, k: UCoef) -> f32 {
    let v = (rv * cv) / mean;
    (1.0 / v.max(k.floor).sqrt()) * (k.sign * g)
}

simd_fn! {
    /// `Σ_j U[row, j]²` of one row in f64 ([`lanes_sum`]).
    fn u_sum_sq(g: &[f32], cv: &[f32], rv: f32, mean: f32, k: UCoef) -> f64 {
        lanes_sum(g, cv, |gv, c| {
            let u = u_elem(gv, c, rv, mean, k) as f64;
            u * u
        })
    }
}

simd_fn! {
    /// `θ[row, j] += step · U[row, j]` over one row.
    fn u_apply(p: &mut [f32], g: &[f32], cv: &[f32], rv: f32, mean: f32, k: UCoef) {
        for ((x, &gv), &c) in p.iter_mut().zip(g).zip(cv) {
            *x += k.step * u_elem(gv, c, rv, mean, k);
        }
    }
}

/// `cv[j] ← lerp(cv[j], mean_i G[i, j]², w)` for the row-major `r × c`
/// matrix `g`: columns in fixed blocks (in parallel), each summed over the
/// rows in order, in f64.
fn col_means(g: &[f32], r: usize, c: usize, cv: &mut [f32], w: f32) {
    const BLOCK: usize = 256;
    cv.par_chunks_mut(BLOCK).enumerate().for_each(|(bj, out)| {
        let j0 = bj * BLOCK;
        let mut acc = vec![0f64; out.len()];
        for i in 0..r {
            let row = &g[i * c + j0..i * c + j0 + out.len()];
            add_sq(&mut acc, row);
        }
        for (o, a) in out.iter_mut().zip(acc) {
            *o = lerp(*o, (a / r as f64) as f32, w);
        }
    });
}

/// serde for `eps`: `[ε₁ | null | "machine", ε₂]`.
mod eps_pair {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum First {
        Value(f64),
        Named(Machine),
        Null(()),
    }

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Machine {
        Machine,
    }

    pub fn serialize<S: Serializer>(e: &(Option<f64>, f64), s: S) -> Result<S::Ok, S::Error> {
        let first = match e.0 {
            Some(v) => First::Value(v),
            None => First::Named(Machine::Machine),
        };
        (first, e.1).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(Option<f64>, f64), D::Error> {
        let (first, second) = <(First, f64)>::deserialize(d)?;
        Ok((if let First::Value(v) = first { Some(v) } else { None }, second))
    }
}

simd_fn! {
    /// `acc[j] += x[j]²` in f64.
    fn add_sq(acc: &mut [f64], x: &[f32]) {
        for (a, &v) in acc.iter_mut().zip(x) {
            *a += (v as f64) * (v as f64);
        }
    }
}
