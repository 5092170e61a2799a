//! [`Dataset`]: a feature tensor and its targets.

use nw_tensor::Tensor;

use crate::error::{DataError, Result, invalid};

/// The targets of a data set: class labels or real values.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// One class index per example, each in `0..n_classes`.
    Classes {
        /// The class of each example.
        labels: Vec<usize>,
        /// How many classes exist (labels are below it; some may not occur).
        n_classes: usize,
    },
    /// Real-valued targets, shape `[n, ...]` (one row per example).
    Values(Tensor),
}

impl Targets {
    /// Class targets, checking that every label is below `n_classes`.
    pub fn classes(labels: Vec<usize>, n_classes: usize) -> Result<Self> {
        let t = Targets::Classes { labels, n_classes };
        t.validate()?;
        Ok(t)
    }

    /// Value targets; the tensor must have at least one dimension (the examples).
    pub fn values(values: Tensor) -> Result<Self> {
        let t = Targets::Values(values.contiguous());
        t.validate()?;
        Ok(t)
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes { labels, .. } => labels.len(),
            Targets::Values(v) => v.shape().first().copied().unwrap_or(0),
        }
    }

    /// Checks what the constructors check, for targets built from the
    /// public variants directly.
    fn validate(&self) -> Result<()> {
        match self {
            Targets::Classes { labels, n_classes } => {
                if let Some((i, &l)) = labels.iter().enumerate().find(|(_, l)| **l >= *n_classes) {
                    return Err(invalid(
                        "Targets::classes",
                        format!("label {l} of example {i} is not below n_classes = {n_classes}"),
                    ));
                }
            }
            Targets::Values(v) if v.ndim() == 0 => {
                return Err(invalid("Targets::values", "targets need a leading example dimension"));
            }
            Targets::Values(_) => {}
        }
        Ok(())
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class labels, if these are class targets.
    pub fn labels(&self) -> Option<&[usize]> {
        match self {
            Targets::Classes { labels, .. } => Some(labels),
            Targets::Values(_) => None,
        }
    }

    /// The number of classes, if these are class targets.
    pub fn n_classes(&self) -> Option<usize> {
        match self {
            Targets::Classes { n_classes, .. } => Some(*n_classes),
            Targets::Values(_) => None,
        }
    }

    /// The value tensor, if these are value targets.
    pub fn as_values(&self) -> Option<&Tensor> {
        match self {
            Targets::Values(v) => Some(v),
            Targets::Classes { .. } => None,
        }
    }

    /// The targets of the examples `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Result<Targets> {
        let n = self.len();
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(invalid("Targets::select", format!("index {bad} out of range for {n} examples")));
        }
        Ok(match self {
            Targets::Classes { labels, n_classes } => Targets::Classes {
                labels: indices.iter().map(|&i| labels[i]).collect(),
                n_classes: *n_classes,
            },
            Targets::Values(v) => Targets::Values(v.index_select(0, indices)?),
        })
    }

    /// Class targets as a one-hot `[n, n_classes]` tensor; value targets are
    /// returned unchanged.
    pub fn to_one_hot(&self) -> Result<Tensor> {
        match self {
            Targets::Classes { labels, n_classes } => one_hot(labels, *n_classes),
            Targets::Values(v) => Ok(v.clone()),
        }
    }
}

/// One-hot encoding: row `i` of the `[labels.len(), n_classes]` result is 1 at
/// column `labels[i]` and 0 elsewhere.
///
/// ```
/// let t = nw_data::one_hot(&[2, 0], 3).unwrap();
/// assert_eq!(t.to_vec(), vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
/// assert!(nw_data::one_hot(&[3], 3).is_err());
/// ```
pub fn one_hot(labels: &[usize], n_classes: usize) -> Result<Tensor> {
    let mut out = vec![0.0f32; labels.len() * n_classes];
    for (i, &l) in labels.iter().enumerate() {
        if l >= n_classes {
            return Err(invalid("one_hot", format!("label {l} of example {i} is not below {n_classes}")));
        }
        out[i * n_classes + l] = 1.0;
    }
    Ok(Tensor::from_vec(out, &[labels.len(), n_classes])?)
}

/// A supervised data set: features `[n, ...feature shape]` (f32, row-major)
/// and one target per example.
///
/// Cloning is cheap for the features (tensor storage is shared); class
/// labels are copied.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    features: Tensor,
    targets: Targets,
    class_names: Option<Vec<String>>,
}

impl Dataset {
    /// A data set from features `[n, ...]` and `n` targets (class labels
    /// must be below the class count; value targets need a leading dimension).
    pub fn new(features: Tensor, targets: Targets) -> Result<Self> {
        targets.validate()?;
        if features.ndim() == 0 {
            return Err(invalid("Dataset::new", "features need a leading example dimension"));
        }
        if features.shape()[0] != targets.len() {
            return Err(DataError::DimensionMismatch {
                what: "number of targets".into(),
                expected: format!("{} (rows of features {:?})", features.shape()[0], features.shape()),
                got: targets.len().to_string(),
            });
        }
        Ok(Dataset { features: features.contiguous(), targets, class_names: None })
    }

    /// A classification data set; every label must be below `n_classes`.
    pub fn classification(features: Tensor, labels: Vec<usize>, n_classes: usize) -> Result<Self> {
        Self::new(features, Targets::classes(labels, n_classes)?)
    }

    /// A regression data set with targets `[n, ...]`.
    pub fn regression(features: Tensor, values: Tensor) -> Result<Self> {
        Self::new(features, Targets::values(values)?)
    }

    /// Names the classes; there must be exactly `n_classes` names.
    pub fn with_class_names(mut self, names: Vec<String>) -> Result<Self> {
        match self.targets.n_classes() {
            Some(k) if k == names.len() => {
                self.class_names = Some(names);
                Ok(self)
            }
            Some(k) => Err(DataError::DimensionMismatch {
                what: "number of class names".into(),
                expected: k.to_string(),
                got: names.len().to_string(),
            }),
            None => Err(invalid("Dataset::with_class_names", "a regression data set has no classes")),
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The feature tensor `[n, ...]`.
    pub fn features(&self) -> &Tensor {
        &self.features
    }

    /// The targets.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// The shape of one example's features (the feature tensor's shape without its first dimension).
    pub fn feature_shape(&self) -> &[usize] {
        &self.features.shape()[1..]
    }

    /// Number of feature values per example (the product of [`Dataset::feature_shape`]).
    pub fn n_features(&self) -> usize {
        self.feature_shape().iter().product()
    }

    /// The class labels, for a classification set.
    pub fn labels(&self) -> Option<&[usize]> {
        self.targets.labels()
    }

    /// The number of classes, for a classification set.
    pub fn n_classes(&self) -> Option<usize> {
        self.targets.n_classes()
    }

    /// The class names, if known.
    pub fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    /// How many examples each class has, for a classification set.
    pub fn class_counts(&self) -> Option<Vec<usize>> {
        let Targets::Classes { labels, n_classes } = &self.targets else { return None };
        let mut counts = vec![0; *n_classes];
        for &l in labels {
            counts[l] += 1;
        }
        Some(counts)
    }

    /// The examples `indices` (in that order, repeats allowed) as a new data set.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        let targets = self.targets.select(indices)?;
        let features = self.features.index_select(0, indices)?;
        Ok(Dataset { features, targets, class_names: self.class_names.clone() })
    }

    /// The same data with each example's features reshaped to `feature_shape`
    /// (for example `[64]` to `[1, 8, 8]`); the number of values must match.
    pub fn reshape_features(&self, feature_shape: &[usize]) -> Result<Dataset> {
        let mut shape = Vec::with_capacity(feature_shape.len() + 1);
        shape.push(self.len());
        shape.extend_from_slice(feature_shape);
        let features = self.features.reshape(&shape)?;
        Ok(Dataset { features, targets: self.targets.clone(), class_names: self.class_names.clone() })
    }

    /// The same data with features flattened to `[n, n_features]`.
    pub fn flatten(&self) -> Dataset {
        self.reshape_features(&[self.n_features()]).expect("same number of values")
    }

    /// Replaces the features (same number of examples), keeping targets and class names.
    pub fn with_features(&self, features: Tensor) -> Result<Dataset> {
        let mut d = Dataset::new(features, self.targets.clone())?;
        d.class_names = self.class_names.clone();
        Ok(d)
    }

    /// Replaces class targets by their one-hot `[n, n_classes]` values (a
    /// regression set is returned unchanged).
    pub fn one_hot_targets(&self) -> Result<Dataset> {
        Dataset::new(self.features.clone(), Targets::Values(self.targets.to_one_hot()?))
    }

    /// The features and targets.
    pub fn into_parts(self) -> (Tensor, Targets) {
        (self.features, self.targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Dataset {
        let x = Tensor::from_vec((0..12).map(|v| v as f32).collect(), &[4, 3]).unwrap();
        Dataset::classification(x, vec![0, 1, 2, 1], 3).unwrap()
    }

    #[test]
    fn construction_checks_counts_and_labels() {
        let x = Tensor::zeros(&[4, 3]);
        assert!(matches!(
            Dataset::classification(x.clone(), vec![0, 1, 2], 3),
            Err(DataError::DimensionMismatch { .. })
        ));
        assert!(matches!(
            Dataset::classification(x.clone(), vec![0, 1, 2, 3], 3),
            Err(DataError::InvalidArgument { .. })
        ));
        assert!(Dataset::regression(x, Tensor::zeros(&[4, 1])).is_ok());
        assert!(
            Dataset::new(Tensor::scalar(1.0), Targets::Classes { labels: vec![0], n_classes: 1 }).is_err()
        );
        // The public variants are checked too, not only the constructors.
        let x = Tensor::zeros(&[2, 1]);
        assert!(Dataset::new(x.clone(), Targets::Classes { labels: vec![0, 5], n_classes: 2 }).is_err());
        assert!(Dataset::new(x, Targets::Values(Tensor::scalar(0.0))).is_err());
    }

    #[test]
    fn subset_picks_rows_in_order() {
        let d = toy();
        let s = d.subset(&[3, 0]).unwrap();
        assert_eq!(s.features().to_vec(), vec![9.0, 10.0, 11.0, 0.0, 1.0, 2.0]);
        assert_eq!(s.labels().unwrap(), &[1, 0]);
        assert_eq!(s.n_classes(), Some(3));
        assert!(d.subset(&[4]).is_err());
    }

    #[test]
    fn reshape_and_flatten() {
        let d = toy();
        let r = d.reshape_features(&[1, 3, 1]).unwrap();
        assert_eq!(r.features().shape(), &[4, 1, 3, 1]);
        assert_eq!(r.feature_shape(), &[1, 3, 1]);
        assert_eq!(r.n_features(), 3);
        assert_eq!(r.flatten().features().shape(), &[4, 3]);
        assert!(d.reshape_features(&[2, 2]).is_err());
    }

    #[test]
    fn class_names_counts_and_one_hot() {
        let d = toy().with_class_names(vec!["a".into(), "b".into(), "c".into()]).unwrap();
        assert_eq!(d.class_names().unwrap()[2], "c");
        assert_eq!(d.class_counts().unwrap(), vec![1, 2, 1]);
        assert!(toy().with_class_names(vec!["a".into()]).is_err());
        let o = d.one_hot_targets().unwrap();
        let v = o.targets().as_values().unwrap();
        assert_eq!(v.shape(), &[4, 3]);
        // labels 0,1,2,1 -> rows e0, e1, e2, e1
        assert_eq!(v.to_vec(), vec![1., 0., 0., 0., 1., 0., 0., 0., 1., 0., 1., 0.]);
    }
}
