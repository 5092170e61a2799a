//! Seeded train / validation / test splits.
//!
//! Sizes: `n_test = round(n * test)`, `n_validation = min(round(n * validation), n - n_test)`,
//! and the rest is training data. A plain split takes one
//! `rng.permutation(n)` and gives its first `n_test` entries to test, the
//! next `n_validation` to validation. A stratified split applies the same
//! rule to each class on its own (classes in label order, one shuffle each),
//! so every part keeps the class proportions up to rounding. Each part lists
//! its rows in ascending order (the original order of the data set); the
//! batch loader shuffles them.

use nw_tensor::Rng;

use crate::dataset::Dataset;
use crate::error::{Result, invalid};

/// Row indices of a three-way split: disjoint, together `0..n`, each ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitIndices {
    /// Rows for training.
    pub train: Vec<usize>,
    /// Rows for validation (model selection, early stopping).
    pub validation: Vec<usize>,
    /// Rows held out for the final test.
    pub test: Vec<usize>,
}

/// A data set split three ways.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training set.
    pub train: Dataset,
    /// Validation set.
    pub validation: Dataset,
    /// Test set.
    pub test: Dataset,
}

fn check_fractions(op: &'static str, validation: f64, test: f64) -> Result<()> {
    let ok = |f: f64| f.is_finite() && (0.0..=1.0).contains(&f);
    if !ok(validation) || !ok(test) || validation + test > 1.0 {
        return Err(invalid(
            op,
            format!(
                "fractions must lie in [0, 1] and sum to at most 1, got validation {validation}, test {test}"
            ),
        ));
    }
    Ok(())
}

/// `(n_validation, n_test)` for `n` rows.
fn part_sizes(n: usize, validation: f64, test: f64) -> (usize, usize) {
    let n_test = ((n as f64 * test).round() as usize).min(n);
    let n_val = ((n as f64 * validation).round() as usize).min(n - n_test);
    (n_val, n_test)
}

/// Deals a shuffled list into the three parts (test first, then validation).
fn deal(shuffled: &[usize], validation: f64, test: f64, out: &mut SplitIndices) {
    let (n_val, n_test) = part_sizes(shuffled.len(), validation, test);
    out.test.extend_from_slice(&shuffled[..n_test]);
    out.validation.extend_from_slice(&shuffled[n_test..n_test + n_val]);
    out.train.extend_from_slice(&shuffled[n_test + n_val..]);
}

fn sorted(mut s: SplitIndices) -> SplitIndices {
    s.train.sort_unstable();
    s.validation.sort_unstable();
    s.test.sort_unstable();
    s
}

/// A random split of `0..n` with the given validation and test fractions.
pub fn split_indices(n: usize, validation: f64, test: f64, rng: &mut Rng) -> Result<SplitIndices> {
    check_fractions("split_indices", validation, test)?;
    let perm = rng.permutation(n);
    let mut out = SplitIndices { train: vec![], validation: vec![], test: vec![] };
    deal(&perm, validation, test, &mut out);
    Ok(sorted(out))
}

/// A random split that keeps each class's proportion in every part
/// (per-class rounding, see the module docs).
pub fn stratified_split_indices(
    labels: &[usize],
    n_classes: usize,
    validation: f64,
    test: f64,
    rng: &mut Rng,
) -> Result<SplitIndices> {
    check_fractions("stratified_split_indices", validation, test)?;
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class
            .get_mut(l)
            .ok_or_else(|| {
                invalid("stratified_split_indices", format!("label {l} is not below {n_classes}"))
            })?
            .push(i);
    }
    let mut out = SplitIndices { train: vec![], validation: vec![], test: vec![] };
    for mut rows in by_class {
        rng.shuffle(&mut rows);
        deal(&rows, validation, test, &mut out);
    }
    Ok(sorted(out))
}

impl Dataset {
    /// Splits into train, validation and test sets (see [`split_indices`]).
    pub fn split(&self, validation: f64, test: f64, rng: &mut Rng) -> Result<Splits> {
        let s = split_indices(self.len(), validation, test, rng)?;
        self.split_by(&s)
    }

    /// Splits a classification set keeping class proportions (see
    /// [`stratified_split_indices`]); a regression set is an error.
    pub fn split_stratified(&self, validation: f64, test: f64, rng: &mut Rng) -> Result<Splits> {
        let (Some(labels), Some(k)) = (self.labels(), self.n_classes()) else {
            return Err(invalid("Dataset::split_stratified", "needs class targets"));
        };
        let s = stratified_split_indices(labels, k, validation, test, rng)?;
        self.split_by(&s)
    }

    /// Splits into train and test sets (no validation part).
    pub fn train_test_split(&self, test: f64, rng: &mut Rng) -> Result<(Dataset, Dataset)> {
        let s = self.split(0.0, test, rng)?;
        Ok((s.train, s.test))
    }

    /// The three subsets named by `indices`.
    pub fn split_by(&self, indices: &SplitIndices) -> Result<Splits> {
        Ok(Splits {
            train: self.subset(&indices.train)?,
            validation: self.subset(&indices.validation)?,
            test: self.subset(&indices.test)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_partition(s: &SplitIndices, n: usize) {
        let mut all: Vec<usize> = s.train.iter().chain(&s.validation).chain(&s.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>(), "disjoint and covering");
        for part in [&s.train, &s.validation, &s.test] {
            assert!(part.windows(2).all(|w| w[0] < w[1]), "ascending");
        }
    }

    #[test]
    fn plain_split_sizes_partition_determinism() {
        let s = split_indices(100, 0.15, 0.2, &mut Rng::new(3)).unwrap();
        // round(100 * 0.2) = 20 test, round(100 * 0.15) = 15 validation, 65 train.
        assert_eq!((s.train.len(), s.validation.len(), s.test.len()), (65, 15, 20));
        check_partition(&s, 100);
        assert_eq!(s, split_indices(100, 0.15, 0.2, &mut Rng::new(3)).unwrap());
        assert_ne!(s, split_indices(100, 0.15, 0.2, &mut Rng::new(4)).unwrap());
        // Rounding never over-allocates: n = 3 with 0.5 + 0.5 gives 2 test, 1 validation.
        let s = split_indices(3, 0.5, 0.5, &mut Rng::new(0)).unwrap();
        assert_eq!((s.train.len(), s.validation.len(), s.test.len()), (0, 1, 2));
        check_partition(&s, 3);
    }

    #[test]
    fn stratified_split_keeps_proportions() {
        // 60 of class 0, 30 of class 1, 10 of class 2; 20% test, 10% validation per class.
        let labels: Vec<usize> = (0..100)
            .map(|i| {
                if i < 60 {
                    0
                } else if i < 90 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let s = stratified_split_indices(&labels, 3, 0.1, 0.2, &mut Rng::new(1)).unwrap();
        check_partition(&s, 100);
        let count = |part: &[usize], c: usize| part.iter().filter(|&&i| labels[i] == c).count();
        // test: round(60*.2)=12, round(30*.2)=6, round(10*.2)=2; validation: 6, 3, 1.
        assert_eq!([0, 1, 2].map(|c| count(&s.test, c)), [12, 6, 2]);
        assert_eq!([0, 1, 2].map(|c| count(&s.validation, c)), [6, 3, 1]);
        assert_eq!(s, stratified_split_indices(&labels, 3, 0.1, 0.2, &mut Rng::new(1)).unwrap());
        assert!(stratified_split_indices(&[0, 3], 3, 0.1, 0.2, &mut Rng::new(1)).is_err());
    }

    #[test]
    fn bad_fractions_are_errors() {
        let mut r = Rng::new(0);
        assert!(split_indices(10, 0.6, 0.5, &mut r).is_err());
        assert!(split_indices(10, -0.1, 0.5, &mut r).is_err());
        assert!(split_indices(10, f64::NAN, 0.5, &mut r).is_err());
    }

    #[test]
    fn dataset_split_and_regression_rejects_stratify() {
        let d = crate::iris();
        let s = d.split_stratified(0.2, 0.2, &mut Rng::new(5)).unwrap();
        // 50 per class: 10 test, 10 validation, 30 train each.
        assert_eq!(s.test.class_counts().unwrap(), vec![10, 10, 10]);
        assert_eq!(s.train.class_counts().unwrap(), vec![30, 30, 30]);
        assert_eq!(s.train.class_names(), d.class_names());
        let (tr, te) = d.train_test_split(0.3, &mut Rng::new(5)).unwrap();
        assert_eq!((tr.len(), te.len()), (105, 45));
        let reg = crate::sine_regression(10, 0.0, &mut Rng::new(0)).unwrap();
        assert!(reg.split_stratified(0.2, 0.2, &mut Rng::new(0)).is_err());
        assert_eq!(reg.split(0.2, 0.2, &mut Rng::new(0)).unwrap().test.len(), 2);
    }
}
