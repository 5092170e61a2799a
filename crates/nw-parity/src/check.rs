//! Element-wise comparison against expected values within a case's tolerances.

use crate::fixture::JsonTensor;

/// The largest violation seen so far in one case.
#[derive(Debug, Clone, PartialEq)]
pub struct Worst {
    /// What was compared, e.g. `grads.weight[3]`.
    pub label: String,
    /// nw's value.
    pub got: f64,
    /// The fixture's value.
    pub want: f64,
    /// `|got - want| / (atol + rtol |want|)`; at most 1 passes.
    pub ratio: f64,
}

/// Collects the comparisons of one case: `|got - want| <= atol + rtol |want|`
/// for every element, with the worst kept for the report.
#[derive(Debug, Clone)]
pub struct Checker {
    rtol: f64,
    atol: f64,
    /// Elements compared.
    pub compared: usize,
    /// The worst element (largest ratio), if any was compared.
    pub worst: Option<Worst>,
    /// Structural problems (shape or length mismatches).
    pub problems: Vec<String>,
}

impl Checker {
    /// A checker with the case's tolerances.
    pub fn new(rtol: f64, atol: f64) -> Self {
        Checker { rtol, atol, compared: 0, worst: None, problems: Vec::new() }
    }

    /// Compares values (row-major) against an expected tensor.
    pub fn values(&mut self, label: &str, got: &[f32], got_shape: &[usize], want: &JsonTensor) {
        let shape_ok = got_shape == want.shape.as_slice()
            || (got_shape.iter().product::<usize>() == 1 && want.shape.iter().product::<usize>() == 1);
        if !shape_ok || got.len() != want.data.len() {
            self.problems.push(format!("{label}: shape {:?}, expected {:?}", got_shape, want.shape));
            return;
        }
        for (i, (&g, &w)) in got.iter().zip(&want.data).enumerate() {
            self.scalar_at(label, Some(i), g as f64, w);
        }
    }

    /// Compares an nw tensor against an expected tensor.
    pub fn tensor(&mut self, label: &str, got: &nw_tensor::Tensor, want: &JsonTensor) {
        self.values(label, &got.to_vec(), got.shape(), want);
    }

    /// Compares one number.
    pub fn scalar(&mut self, label: &str, got: f64, want: f64) {
        self.scalar_at(label, None, got, want);
    }

    fn scalar_at(&mut self, label: &str, index: Option<usize>, got: f64, want: f64) {
        self.compared += 1;
        let ratio = if got == want {
            0.0
        } else {
            let r = (got - want).abs() / (self.atol + self.rtol * want.abs());
            if r.is_nan() { f64::INFINITY } else { r }
        };
        if self.worst.as_ref().is_none_or(|w| ratio > w.ratio) {
            let label = match index {
                Some(i) => format!("{label}[{i}]"),
                None => label.to_string(),
            };
            self.worst = Some(Worst { label, got, want, ratio });
        }
    }

    /// Whether every comparison passed and nothing was structurally wrong.
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.compared > 0 && self.worst.as_ref().is_some_and(|w| w.ratio <= 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jt(data: &[f64]) -> JsonTensor {
        JsonTensor { shape: vec![data.len()], data: data.to_vec() }
    }

    #[test]
    fn tolerance_is_atol_plus_rtol_times_want() {
        let mut c = Checker::new(1e-3, 1e-6);
        // |1.0009 - 1| = 9e-4 <= 1e-6 + 1e-3 * 1
        c.values("x", &[1.0009], &[1], &jt(&[1.0]));
        assert!(c.passed(), "{c:?}");
        c.values("y", &[2.01], &[1], &jt(&[2.0]));
        assert!(!c.passed());
        assert_eq!(c.worst.as_ref().unwrap().label, "y[0]");
    }

    #[test]
    fn shape_mismatch_and_nan_fail() {
        let mut c = Checker::new(1e-3, 1e-6);
        c.values("x", &[1.0, 2.0], &[2, 1], &jt(&[1.0, 2.0]));
        assert!(!c.passed());
        let mut c = Checker::new(1e-3, 1e-6);
        c.scalar("s", f64::NAN, 1.0);
        assert!(!c.passed());
        // nothing compared is not a pass
        assert!(!Checker::new(1.0, 1.0).passed());
    }
}
