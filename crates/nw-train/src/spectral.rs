//! Spectral summary of a weight matrix: its largest singular values, its
//! stable rank, and the power-law exponent alpha of its eigenvalue spectrum
//! (the empirical spectral density of `W^T W`), as WeightWatcher reports it.
//!
//! A tensor of rank > 2 (a convolution kernel `[out, in, kh, kw]`) is read as
//! the matrix `[out, in * kh * kw]`. The eigenvalues of the smaller Gram
//! matrix (`W W^T` or `W^T W`, in f64) are found by cyclic Jacobi rotations,
//! which is deterministic and needs no external library; the singular values
//! are their square roots.
//!
//! Alpha is fitted to the eigenvalues by the maximum-likelihood estimator of
//! Clauset, Shalizi and Newman: for a lower cut-off `x_min`,
//! `alpha = 1 + n / sum ln(lambda_i / x_min)` over the `n` eigenvalues
//! `>= x_min`; the cut-off chosen is the eigenvalue that minimises the
//! Kolmogorov-Smirnov distance between the tail and the fitted power law.
//! WeightWatcher reads alpha in about [2, 6] as well trained, below 2 as
//! over-fitted, above 6 as under-trained.

use nw_tensor::Tensor;
use serde::{Deserialize, Serialize};

/// How many singular values [`SpectralStats::top_singular_values`] keeps.
pub const TOP: usize = 5;

/// The spectral summary of one weight matrix at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectralStats {
    /// Parameter name.
    pub name: String,
    /// Optimizer steps taken.
    pub step: u64,
    /// Epoch (from 0) whose end it was taken at.
    pub epoch: u64,
    /// The largest singular values, descending (at most [`TOP`]).
    pub top_singular_values: Vec<f64>,
    /// `||W||_F^2 / sigma_max^2` (between 1 and the smaller dimension).
    pub stable_rank: f64,
    /// Power-law exponent of the eigenvalue tail (None with fewer than 3
    /// non-zero eigenvalues).
    pub alpha: Option<f64>,
    /// The fitted tail's lower cut-off `x_min` (an eigenvalue, `sigma^2`).
    pub alpha_xmin: Option<f64>,
}

/// The summary of `w` (rank >= 2) at `step` of `epoch`.
pub fn spectral_stats(name: &str, step: u64, epoch: u64, w: &Tensor) -> SpectralStats {
    let shape = w.shape();
    let rows = shape.first().copied().unwrap_or(1).max(1);
    let data = w.to_vec();
    let cols = data.len() / rows;
    let mut eig = gram_eigenvalues(&data, rows, cols);
    eig.iter_mut().for_each(|v| *v = v.max(0.0));
    eig.sort_by(|a, b| b.total_cmp(a));
    let top_singular_values: Vec<f64> = eig.iter().take(TOP).map(|v| v.sqrt()).collect();
    let frob2: f64 = eig.iter().sum();
    let stable_rank = if eig.first().is_some_and(|&m| m > 0.0) { frob2 / eig[0] } else { 0.0 };
    let (alpha, alpha_xmin) = match power_law_alpha(&eig) {
        Some((a, x)) => (Some(a), Some(x)),
        None => (None, None),
    };
    SpectralStats { name: name.to_string(), step, epoch, top_singular_values, stable_rank, alpha, alpha_xmin }
}

/// Eigenvalues of the smaller Gram matrix of the row-major `rows x cols` matrix.
fn gram_eigenvalues(w: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    let (k, by_rows) = if rows <= cols { (rows, true) } else { (cols, false) };
    let mut g = vec![0.0f64; k * k];
    for i in 0..k {
        for j in i..k {
            let mut s = 0.0f64;
            if by_rows {
                for c in 0..cols {
                    s += w[i * cols + c] as f64 * w[j * cols + c] as f64;
                }
            } else {
                for r in 0..rows {
                    s += w[r * cols + i] as f64 * w[r * cols + j] as f64;
                }
            }
            g[i * k + j] = s;
            g[j * k + i] = s;
        }
    }
    jacobi_eigenvalues(&mut g, k)
}

/// Eigenvalues of the symmetric `n x n` matrix `a` (destroyed) by cyclic
/// Jacobi sweeps until the off-diagonal mass is negligible.
pub fn jacobi_eigenvalues(a: &mut [f64], n: usize) -> Vec<f64> {
    let diag_norm = |a: &[f64]| (0..n).map(|i| a[i * n + i].powi(2)).sum::<f64>();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off <= 1e-30 * diag_norm(a).max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (a[p * n + p], a[q * n + q]);
                // tan of the rotation angle that zeroes a[p][q] (the smaller root).
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for r in 0..n {
                    let (arp, arq) = (a[r * n + p], a[r * n + q]);
                    a[r * n + p] = c * arp - s * arq;
                    a[r * n + q] = s * arp + c * arq;
                }
                for r in 0..n {
                    let (apr, aqr) = (a[p * n + r], a[q * n + r]);
                    a[p * n + r] = c * apr - s * aqr;
                    a[q * n + r] = s * apr + c * aqr;
                }
            }
        }
    }
    (0..n).map(|i| a[i * n + i]).collect()
}

/// The MLE power-law exponent of the eigenvalues `eig` (descending) with
/// the KS-optimal cut-off: `(alpha, x_min)`.
pub fn power_law_alpha(eig: &[f64]) -> Option<(f64, f64)> {
    let mut x: Vec<f64> = eig.iter().copied().filter(|&v| v > 0.0).collect();
    x.sort_by(f64::total_cmp);
    if x.len() < 3 {
        return None;
    }
    let mut best: Option<(f64, f64, f64)> = None; // (ks, alpha, xmin)
    // Every cut-off that leaves at least 3 eigenvalues in the tail.
    for start in 0..=x.len() - 3 {
        let xmin = x[start];
        let tail = &x[start..];
        let n = tail.len() as f64;
        let logs: f64 = tail.iter().map(|&v| (v / xmin).ln()).sum();
        if logs <= 0.0 {
            continue;
        }
        let alpha = 1.0 + n / logs;
        // KS distance between the empirical tail CDF and 1 - (x/xmin)^(1-alpha).
        let ks = tail
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let model = 1.0 - (v / xmin).powf(1.0 - alpha);
                let (lo, hi) = (i as f64 / n, (i + 1) as f64 / n);
                (model - lo).abs().max((model - hi).abs())
            })
            .fold(0.0f64, f64::max);
        if best.is_none_or(|(b, _, _)| ks < b) {
            best = Some((ks, alpha, xmin));
        }
    }
    best.map(|(_, a, x)| (a, x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singular_values_of_a_diagonal_matrix() {
        // diag(3, 2, 1) padded to 3 x 4: singular values 3, 2, 1; stable rank (9+4+1)/9.
        let mut v = vec![0.0f32; 12];
        v[0] = 3.0;
        v[5] = -2.0;
        v[10] = 1.0;
        let s = spectral_stats("w", 0, 0, &Tensor::from_vec(v, &[3, 4]).unwrap());
        for (got, want) in s.top_singular_values.iter().zip([3.0, 2.0, 1.0]) {
            assert!((got - want).abs() < 1e-9, "{:?}", s.top_singular_values);
        }
        assert!((s.stable_rank - 14.0 / 9.0).abs() < 1e-9);
    }

    #[test]
    fn jacobi_matches_a_2x2_worked_by_hand() {
        // [[2, 1], [1, 2]] has eigenvalues 3 and 1.
        let mut a = vec![2.0, 1.0, 1.0, 2.0];
        let mut e = jacobi_eigenvalues(&mut a, 2);
        e.sort_by(f64::total_cmp);
        assert!((e[0] - 1.0).abs() < 1e-12 && (e[1] - 3.0).abs() < 1e-12, "{e:?}");
    }

    #[test]
    fn alpha_recovers_a_power_law() {
        // Quantiles of a Pareto law with density exponent 3: x = (1 - u)^(-1/2).
        let eig: Vec<f64> = (0..2000).map(|i| (1.0 - (i as f64 + 0.5) / 2000.0).powf(-0.5)).collect();
        let (alpha, _) = power_law_alpha(&eig).unwrap();
        assert!((alpha - 3.0).abs() < 0.2, "{alpha}");
        assert!(power_law_alpha(&[1.0, 2.0]).is_none());
    }
}
