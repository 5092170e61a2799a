//! Evaluation metrics: loss, accuracy, per-class accuracy, confusion matrix.

use serde::{Deserialize, Serialize};

/// What an evaluation pass measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean loss over the examples.
    pub loss: f64,
    /// Fraction classified correctly (classification only).
    pub accuracy: Option<f64>,
    /// Accuracy per class (classification only; NaN for a class with no example).
    pub per_class_accuracy: Option<Vec<f64>>,
    /// `confusion[true][predicted]` counts (classification only).
    pub confusion: Option<Vec<Vec<usize>>>,
    /// Number of examples.
    pub examples: usize,
}

/// Accumulates predictions against labels.
#[derive(Debug, Clone)]
pub struct ClassTally {
    confusion: Vec<Vec<usize>>,
}

impl ClassTally {
    /// An empty tally over `n` classes.
    pub fn new(n: usize) -> Self {
        ClassTally { confusion: vec![vec![0; n]; n] }
    }

    /// Adds one prediction.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        if truth < self.confusion.len() && predicted < self.confusion.len() {
            self.confusion[truth][predicted] += 1;
        }
    }

    /// Overall accuracy.
    pub fn accuracy(&self) -> f64 {
        let total: usize = self.confusion.iter().flatten().sum();
        let right: usize = (0..self.confusion.len()).map(|i| self.confusion[i][i]).sum();
        if total == 0 { f64::NAN } else { right as f64 / total as f64 }
    }

    /// Accuracy of each class.
    pub fn per_class(&self) -> Vec<f64> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let n: usize = row.iter().sum();
                if n == 0 { f64::NAN } else { row[i] as f64 / n as f64 }
            })
            .collect()
    }

    /// The confusion matrix.
    pub fn confusion(&self) -> &[Vec<usize>] {
        &self.confusion
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_by_hand() {
        let mut t = ClassTally::new(2);
        t.add(0, 0);
        t.add(0, 1);
        t.add(1, 1);
        t.add(1, 1);
        assert_eq!(t.accuracy(), 0.75);
        assert_eq!(t.per_class(), vec![0.5, 1.0]);
        assert_eq!(t.confusion(), &[vec![1, 1], vec![0, 2]]);
    }
}
