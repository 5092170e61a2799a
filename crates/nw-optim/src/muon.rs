//! Muon (torch.optim.Muon): momentum orthogonalised by a Newton–Schulz iteration.

use nw_tensor::gemm::{BOperand, Bf16, MatRef, Shape, gemm_bf16, gemm_slices, syrk_slices};
use rayon::prelude::*;

use crate::error::{OptimError, check_lr, check_min};
use crate::group::WeightDecay;
use crate::kernel::lerp;
use crate::muon_aux::NonMatrix;
use crate::optim::{GroupHyper, Rule, impl_build};
use crate::reduce::norm2;
use crate::state::ParamState;

/// How Muon scales the learning rate by the shape `A × B` of the matrix
/// (torch's `adjust_lr_fn`, written as torch spells it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustLr {
    /// Keller Jordan's: `γ √max(1, A/B)` (torch's default, `None`).
    #[default]
    Original,
    /// Moonshot's, to match AdamW's update RMS: `0.2 γ √max(A, B)`.
    MatchRmsAdamw,
    /// `γ √(A/B)`, not clamped at 1 for wide matrices.
    SpectralUnclamped,
}

impl AdjustLr {
    /// The adjusted rate for a matrix of `rows × cols`.
    pub fn apply(self, lr: f64, rows: usize, cols: usize) -> f64 {
        let (a, b) = (rows as f64, cols as f64);
        lr * match self {
            AdjustLr::Original => (a / b).max(1.0).sqrt(),
            AdjustLr::MatchRmsAdamw => 0.2 * a.max(b).sqrt(),
            AdjustLr::SpectralUnclamped => (a / b).sqrt(),
        }
    }
}

/// The number format Muon's Newton–Schulz iteration runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum NsDtype {
    /// f32 throughout, on nw-tensor's f32 GEMM (nw's default: closest to the
    /// exact iteration).
    #[default]
    #[serde(rename = "float32", alias = "f32")]
    F32,
    /// bfloat16 storage with f32 accumulation, as torch 2.15 runs it
    /// (`grad.bfloat16()`, every product and sum rounded to bfloat16), on
    /// [`nw_tensor::gemm::gemm_bf16`]. Twice the f32 rate on CPUs with
    /// AVX512-BF16; slower than f32 elsewhere (emulated, same bits).
    #[serde(rename = "bfloat16", alias = "bf16")]
    Bf16,
}

/// Muon (Jordan et al.), as `torch.optim.Muon` (2.15) computes it, for 2-D
/// parameters only:
///
/// ```text
/// B ← lerp(B, G, 1 − μ)                      (momentum_buffer)
/// U ← lerp(G, B, μ) if nesterov, else B
/// O ← NS_k(U):  X ← U (transposed if rows > cols);  X ← X / max(‖X‖_F, ε)
///               k times: A ← X Xᵀ;  X ← a X + (b A + c A A) X
/// θ ← θ (1 − γλ)                             (decoupled weight decay)
/// θ ← θ − adjust(γ, rows, cols) O
/// ```
/// with γ = `lr`, λ = `weight_decay`, μ = `momentum`, (a, b, c) =
/// `ns_coefficients`, k = `ns_steps`. The Newton–Schulz products run in f32
/// on nw-tensor's GEMM (`C ← α A B + β C`, so `b A + c A A` and `a X + M X`
/// are one call each) and are bit-identical for any thread count. torch 2.15
/// runs the iteration in bfloat16; nw's f32 is closer to the exact iteration
/// (the reference fixtures compute it in f64). `ns_dtype = bfloat16` runs it
/// in torch's precision instead ([`NsDtype::Bf16`], [`newton_schulz_bf16`]).
///
/// Defaults (torch): `lr` 1e-3, `weight_decay` 0.1, `momentum` 0.95,
/// `nesterov` true, `ns_coefficients` (3.4445, −4.775, 2.0315), `eps` 1e-7,
/// `ns_steps` 5, `adjust_lr_fn` None (`original`). State: `momentum_buffer`.
///
/// A parameter that is not 2-D (a bias, a convolution kernel) is an
/// [`OptimError::ParamShape`] when `Muon::build` builds the optimizer, as
/// torch raises: Muon is meant for hidden-layer matrices, with AdamW (or
/// another rule) for everything else, in a second optimizer. The registry
/// ([`crate::OptimizerConfig`], so TOML and `nw train --optimizer muon`) does
/// that pairing itself unless `non_matrix = "error"`: see [`crate::MuonWithAdamW`].
///
/// ```
/// use nw_autograd::{Grads, Param};
/// use nw_optim::{Muon, Optimizer};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::zeros(&[2, 2]));
/// let mut opt = Muon { lr: 0.1, weight_decay: 0.0, nesterov: false, momentum: 0.0, ..Muon::default() }
///     .build(vec![w.clone()])
///     .unwrap();
/// let mut grads = Grads::new();
/// grads.insert(&w, Tensor::from_vec(vec![3.0, 0.0, 0.0, 3.0], &[2, 2]).unwrap());
/// opt.step(&grads).unwrap();
/// // G is a multiple of the identity: NS maps it near I, so θ ≈ −0.1 I
/// let v = w.value().to_vec();
/// assert!(v[0] < -0.05 && v[0] > -0.15 && v[1] == 0.0);
/// // a bias is not a matrix
/// let b = Param::new(Tensor::zeros(&[2]));
/// assert!(Muon::default().build(vec![b]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Muon {
    /// Learning rate γ (default 1e-3).
    pub lr: f64,
    /// Decoupled weight decay λ: `θ ← θ (1 − γλ)` (default 0.1).
    pub weight_decay: f64,
    /// Momentum μ (default 0.95).
    pub momentum: f64,
    /// Nesterov momentum (default true).
    pub nesterov: bool,
    /// Coefficients (a, b, c) of the quintic Newton–Schulz step (default
    /// (3.4445, −4.775, 2.0315)).
    pub ns_coefficients: (f64, f64, f64),
    /// Floor of the Frobenius norm the iteration divides by (default 1e-7).
    pub eps: f64,
    /// Newton–Schulz steps (default 5; fewer than 100).
    pub ns_steps: usize,
    /// Learning-rate scaling by shape (default `None`: [`AdjustLr::Original`]).
    pub adjust_lr_fn: Option<AdjustLr>,
    /// torch's `use_addmm` (default false): torch's two ways of writing the
    /// same products; nw always uses GEMM's `α A B + β C`, so it changes nothing.
    pub use_addmm: bool,
    /// nw: the Newton–Schulz number format (default [`NsDtype::F32`];
    /// `bfloat16` is torch's).
    pub ns_dtype: NsDtype,
    /// nw: what the registry's `muon` does with parameters that are not 2-D
    /// (default [`NonMatrix::Adamw`]: AdamW takes them; `error` is torch's
    /// behaviour). `Muon::build` itself always refuses them.
    pub non_matrix: NonMatrix,
}

impl Default for Muon {
    fn default() -> Self {
        Muon {
            lr: 1e-3,
            weight_decay: 0.1,
            momentum: 0.95,
            nesterov: true,
            ns_coefficients: (3.4445, -4.775, 2.0315),
            eps: 1e-7,
            ns_steps: 5,
            adjust_lr_fn: None,
            use_addmm: false,
            ns_dtype: NsDtype::F32,
            non_matrix: NonMatrix::default(),
        }
    }
}

impl_build!(Muon);

impl Rule for Muon {
    const NAME: &'static str = "Muon";

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> WeightDecay {
        WeightDecay::Decoupled(self.weight_decay)
    }

    fn validate(&self) -> Result<(), OptimError> {
        check_lr(Self::NAME, self.lr)?;
        check_min(Self::NAME, "momentum", self.momentum, 0.0, "must be finite and >= 0")?;
        check_min(Self::NAME, "weight_decay", self.weight_decay, 0.0, "must be finite and >= 0")?;
        check_min(Self::NAME, "eps", self.eps, 0.0, "must be finite and >= 0")?;
        let (a, b, c) = self.ns_coefficients;
        for (name, v) in [("ns_coefficients[0]", a), ("ns_coefficients[1]", b), ("ns_coefficients[2]", c)] {
            if !v.is_finite() {
                return Err(OptimError::InvalidHyper {
                    owner: Self::NAME,
                    name,
                    value: v,
                    reason: "must be finite",
                });
            }
        }
        if self.ns_steps >= 100 {
            return Err(OptimError::InvalidHyper {
                owner: Self::NAME,
                name: "ns_steps",
                value: self.ns_steps as f64,
                reason: "must be less than 100",
            });
        }
        Ok(())
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        &["momentum_buffer"]
    }

    fn buffer_layout(&self, shape: &[usize]) -> Result<Vec<(&'static str, Vec<usize>)>, OptimError> {
        if shape.len() != 2 {
            return Err(OptimError::ParamShape {
                optimizer: Self::NAME,
                shape: shape.to_vec(),
                reason: "Muon takes 2-D parameters only (optimize biases and other tensors with e.g. AdamW)",
            });
        }
        Ok(vec![("momentum_buffer", shape.to_vec())])
    }

    /// `p` as one row (`1 × n`); the engine calls `update_shaped`.
    fn update(&self, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]) {
        self.update_shaped(h, st, &[1, p.len()], p, g)
    }

    fn update_shaped(&self, h: &GroupHyper, st: &mut ParamState, shape: &[usize], p: &mut [f32], g: &[f32]) {
        let (rows, cols) = (shape[0], shape[1]);
        let mu = self.momentum as f32;
        let buf = &mut st.buffers[0];
        // buf.lerp_(grad, 1 − μ); update = grad.lerp(buf, μ) if nesterov else buf
        let w = (1.0 - self.momentum) as f32;
        buf.par_iter_mut().zip(g.par_iter()).with_min_len(1 << 14).for_each(|(b, &gv)| *b = lerp(*b, gv, w));
        let u: Vec<f32> = if self.nesterov {
            g.par_iter().zip(buf.par_iter()).with_min_len(1 << 14).map(|(&gv, &b)| lerp(gv, b, mu)).collect()
        } else {
            buf.clone()
        };
        let o = match self.ns_dtype {
            NsDtype::F32 => newton_schulz(&u, rows, cols, self.ns_coefficients, self.ns_steps, self.eps),
            NsDtype::Bf16 => {
                newton_schulz_bf16(&u, rows, cols, self.ns_coefficients, self.ns_steps, self.eps)
            }
        };
        let adjusted = self.adjust_lr_fn.unwrap_or_default().apply(h.lr, rows, cols);
        let decay = (1.0 - h.lr * h.weight_decay.coefficient()) as f32;
        let step = (-adjusted) as f32;
        p.par_iter_mut().zip(o.par_iter()).with_min_len(1 << 14).for_each(|(x, &o)| {
            // param.mul_(1 − γλ); param.add_(update, alpha=−γ')
            *x = *x * decay + step * o;
        });
    }
}

/// The Newton–Schulz orthogonalisation of the row-major `rows × cols` matrix
/// `u`, returned row-major `rows × cols`. Runs on the wide orientation
/// (`m = min(rows, cols)` rows) so the Gram matrix is the small `m × m` one.
pub fn newton_schulz(
    u: &[f32],
    rows: usize,
    cols: usize,
    abc: (f64, f64, f64),
    steps: usize,
    eps: f64,
) -> Vec<f32> {
    let tall = rows > cols;
    let (m, n) = if tall { (cols, rows) } else { (rows, cols) };
    let mut x: Vec<f32> = if tall { transpose(u, rows, cols) } else { u.to_vec() };
    // X ← X / max(‖X‖_F, ε)
    let norm = (norm2(&x) as f32).max(eps as f32);
    x.iter_mut().for_each(|v| *v /= norm);
    let (a, b, c) = (abc.0 as f32, abc.1 as f32, abc.2 as f32);
    let mut gram = vec![0f32; m * m];
    let mut upd = vec![0f32; m * m];
    let mut next = vec![0f32; m * n];
    for _ in 0..steps {
        // A ← X Xᵀ, symmetric: only its upper triangle is computed.
        syrk_slices(1.0, MatRef::row_major(&x, m, n), 0.0, &mut gram).expect("shapes agree by construction");
        // M ← c A A + b A; A is exactly symmetric, so A A = A Aᵀ, bit for bit.
        upd.copy_from_slice(&gram);
        syrk_slices(c, MatRef::row_major(&gram, m, m), b, &mut upd).expect("shapes agree by construction");
        // X ← M X + a X
        next.copy_from_slice(&x);
        gemm_slices(1.0, MatRef::row_major(&upd, m, m), MatRef::row_major(&x, m, n), a, &mut next)
            .expect("shapes agree by construction");
        std::mem::swap(&mut x, &mut next);
    }
    if tall { transpose(&x, m, n) } else { x }
}

/// [`newton_schulz`] in bfloat16, as torch 2.15's `_zeropower_via_newtonschulz`
/// writes it: `X ← bf16(U)` (transposed if tall), `X ← X / max(‖X‖_F, ε)`
/// (the norm summed in f64 and rounded to bfloat16, as torch's bfloat16
/// `norm` returns it), then per step `A ← X Xᵀ`, `M ← b A + c A A`,
/// `X ← a X + M X`, each product accumulated in f32 and rounded to bfloat16
/// ([`gemm_bf16`]; `A` and `M` are symmetric, so only their upper triangles
/// are computed). Returns `X` (row-major `rows × cols`) in f32, exactly.
/// torch's oneDNN sums the products in its own order, so the bits differ
/// from torch's; the precision is the same.
pub fn newton_schulz_bf16(
    u: &[f32],
    rows: usize,
    cols: usize,
    abc: (f64, f64, f64),
    steps: usize,
    eps: f64,
) -> Vec<f32> {
    let tall = rows > cols;
    let (m, n) = if tall { (cols, rows) } else { (rows, cols) };
    let t;
    let src = if tall {
        t = transpose(u, rows, cols);
        &t
    } else {
        u
    };
    // grad.bfloat16(), its norm (in f64 over fixed chunks), the division
    let xf: Vec<f32> = src.par_iter().with_min_len(1 << 14).map(|&v| Bf16::from_f32(v).to_f32()).collect();
    let norm = Bf16::from_f32(norm2(&xf) as f32).to_f32();
    let norm = Bf16::from_f32(norm.max(Bf16::from_f32(eps as f32).to_f32())).to_f32();
    let mut x: Vec<Bf16> = xf.par_iter().with_min_len(1 << 14).map(|&v| Bf16::from_f32(v / norm)).collect();
    drop(xf);
    let (a, b, c) = (abc.0 as f32, abc.1 as f32, abc.2 as f32);
    let mut gram = vec![Bf16::ZERO; m * m];
    let mut upd = vec![Bf16::ZERO; m * m];
    let mut next = vec![Bf16::ZERO; m * n];
    let ok = "shapes agree by construction";
    for _ in 0..steps {
        // A ← X Xᵀ
        let xt = BOperand::Transposed { q: &x, ld: n };
        gemm_bf16(1.0, &x, n, m, n, xt, m, 0.0, None, &mut gram, m, Shape::Symmetric).expect(ok);
        // M ← c A A + b A (A symmetric: A A = A Aᵀ)
        let at = BOperand::Transposed { q: &gram, ld: m };
        gemm_bf16(c, &gram, m, m, m, at, m, b, Some((&gram, m)), &mut upd, m, Shape::Symmetric).expect(ok);
        // X ← M X + a X
        let xr = BOperand::RowMajor { b: &x, ld: n };
        gemm_bf16(1.0, &upd, m, m, m, xr, n, a, Some((&x, n)), &mut next, n, Shape::General).expect(ok);
        std::mem::swap(&mut x, &mut next);
    }
    let out: Vec<f32> = x.par_iter().with_min_len(1 << 14).map(|v| v.to_f32()).collect();
    if tall { transpose(&out, m, n) } else { out }
}

/// The transpose of the row-major `r × c` matrix `x` (row-major `c × r`).
fn transpose(x: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut t = vec![0f32; r * c];
    for i in 0..r {
        for j in 0..c {
            t[j * r + i] = x[i * c + j];
        }
    }
    t
}
