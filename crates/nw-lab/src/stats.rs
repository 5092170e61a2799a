//! Mean and spread over seeds, and the plain-words comparison of a measured
//! value with an article's figure.

/// Finite values of one quantity over seeds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// The finite values, in seed order.
    pub values: Vec<f64>,
    /// How many seeds were asked (values may be fewer: not converged, diverged).
    pub of: usize,
}

impl Summary {
    /// The finite values among `v` (`None` and non-finite dropped), out of `v.len()`.
    pub fn of(v: impl IntoIterator<Item = Option<f64>>) -> Summary {
        let mut values = Vec::new();
        let mut of = 0;
        for x in v {
            of += 1;
            if let Some(x) = x.filter(|x| x.is_finite()) {
                values.push(x);
            }
        }
        Summary { values, of }
    }

    /// The mean (NaN when empty).
    pub fn mean(&self) -> f64 {
        if self.values.is_empty() {
            return f64::NAN;
        }
        self.values.iter().sum::<f64>() / self.values.len() as f64
    }

    /// The sample standard deviation (0 with one value, NaN with none).
    pub fn sd(&self) -> f64 {
        let n = self.values.len();
        if n == 0 {
            return f64::NAN;
        }
        if n == 1 {
            return 0.0;
        }
        let m = self.mean();
        (self.values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1) as f64).sqrt()
    }

    /// Whether every seed gave a value.
    pub fn complete(&self) -> bool {
        self.values.len() == self.of && self.of > 0
    }

    /// `mean ± sd`, with `(k/n)` when not every seed gave a value, and `missing`
    /// when none did.
    pub fn show(&self, missing: &str) -> String {
        if self.values.is_empty() {
            return missing.to_string();
        }
        let s = format!("{} ± {}", num(self.mean()), num(self.sd()));
        if self.complete() { s } else { format!("{s} ({}/{} seeds)", self.values.len(), self.of) }
    }
}

/// A number with 3 significant digits, in scientific notation when small or large.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if (1e-2..1e5).contains(&a) {
        let digits = if a >= 100.0 {
            0
        } else if a >= 10.0 {
            1
        } else if a >= 1.0 {
            2
        } else {
            3
        };
        format!("{v:.digits$}")
    } else {
        format!("{v:.2e}")
    }
}

/// How a measured mean compares with an article's figure, in words.
pub fn verdict(measured: &Summary, article: f64) -> String {
    if measured.values.is_empty() {
        return "disagrees: no seed produced a value".into();
    }
    let m = measured.mean();
    let r = m / article;
    let within = measured.sd().max(0.25 * article.abs());
    if (m - article).abs() <= within {
        format!("agrees (within ±{})", num(within))
    } else {
        format!("disagrees: measured {}× the article's", num(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_sd_and_missing() {
        // values 1, 2, 3: mean 2, sample sd 1 (worked by hand)
        let s = Summary::of([Some(1.0), Some(2.0), Some(3.0), None]);
        assert_eq!(s.mean(), 2.0);
        assert_eq!(s.sd(), 1.0);
        assert!(!s.complete());
        assert_eq!(s.show("-"), "2.00 ± 1.00 (3/4 seeds)");
        assert_eq!(Summary::of([None]).show("did not converge"), "did not converge");
    }

    #[test]
    fn verdicts() {
        let s = Summary::of([Some(100.0), Some(110.0)]);
        assert!(verdict(&s, 100.0).starts_with("agrees"));
        assert!(verdict(&s, 10.0).contains("10.5×"), "{}", verdict(&s, 10.0));
    }
}
