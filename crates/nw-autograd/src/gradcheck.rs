//! Gradient checking by central differences.

use nw_tensor::{Rng, Tensor};

use crate::error::Result;
use crate::var::{Var, no_grad};

/// The outcome of [`gradcheck`].
#[derive(Debug, Clone, PartialEq)]
pub struct GradcheckReport {
    /// Whether every element satisfied `|analytic - numeric| <= atol + rtol |numeric|`.
    pub ok: bool,
    /// Number of input elements checked.
    pub checked: usize,
    /// The element with the largest violation ratio: `(input, flat index,
    /// analytic, numeric)`.
    pub worst: Option<(usize, usize, f64, f64)>,
    /// Largest `|analytic - numeric| / (atol + rtol |numeric|)` (<= 1 passes).
    pub worst_ratio: f64,
}

/// Compares the gradients that backward gives for `f` at `inputs` with
/// central differences `(L(x + eps) - L(x - eps)) / 2 eps`.
///
/// The scalar checked is `L = sum(f(x) * R)` for a fixed random `R` in
/// `[-1, 1]` (seed 0), so that every output element's gradient path is
/// exercised with a different weight. Forward passes for the differences run
/// under [`no_grad`] and sum in f64. With f32 values, `eps` around `1e-2`
/// to `1e-3` and tolerances around `1e-2` are the practical choice; keep the
/// inputs away from kinks (0 for relu/abs).
///
/// ```
/// use nw_autograd::{gradcheck, Var};
/// use nw_tensor::Tensor;
/// let x = Tensor::from_vec(vec![0.3, -0.7, 1.1], &[3]).unwrap();
/// let r = gradcheck(|v: &[Var]| Ok(v[0].tanh()), &[x], 1e-2, 1e-3, 1e-2).unwrap();
/// assert!(r.ok, "{r:?}");
/// ```
pub fn gradcheck(
    f: impl Fn(&[Var]) -> Result<Var>,
    inputs: &[Tensor],
    eps: f32,
    atol: f64,
    rtol: f64,
) -> Result<GradcheckReport> {
    let vars: Vec<Var> = inputs.iter().map(|t| Var::leaf(t.clone(), true)).collect();
    let out = f(&vars)?;
    let mut rng = Rng::new(0);
    let r = Tensor::rand_uniform(out.shape(), -1.0, 1.0, &mut rng);
    let loss = out.mul(&Var::constant(r.clone()))?.sum();
    let grads = loss.backward()?;

    let eval = |xs: &[Tensor]| -> Result<f64> {
        no_grad(|| {
            let vs: Vec<Var> = xs.iter().map(|t| Var::constant(t.clone())).collect();
            let o = f(&vs)?;
            Ok(o.value().mul(&r)?.sum_all_f64())
        })
    };

    let mut report = GradcheckReport { ok: true, checked: 0, worst: None, worst_ratio: 0.0 };
    for (i, input) in inputs.iter().enumerate() {
        let analytic = grads.wrt(&vars[i]).cloned().unwrap_or_else(|| Tensor::zeros(input.shape())).to_vec();
        let base = input.contiguous();
        for j in 0..input.len() {
            let mut xs: Vec<Tensor> = inputs.to_vec();
            let mut plus = base.clone();
            plus.as_slice_mut()[j] += eps;
            xs[i] = plus;
            let lp = eval(&xs)?;
            let mut minus = base.clone();
            minus.as_slice_mut()[j] -= eps;
            xs[i] = minus;
            let lm = eval(&xs)?;
            let numeric = (lp - lm) / (2.0 * eps as f64);
            let a = analytic[j] as f64;
            let ratio = (a - numeric).abs() / (atol + rtol * numeric.abs());
            report.checked += 1;
            if ratio > report.worst_ratio || report.worst.is_none() {
                report.worst_ratio = ratio;
                report.worst = Some((i, j, a, numeric));
            }
            if ratio.is_nan() || ratio > 1.0 {
                report.ok = false;
            }
        }
    }
    Ok(report)
}
