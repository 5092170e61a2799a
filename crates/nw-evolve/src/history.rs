//! What a run returns: the best vector and the per-generation history.

use rayon::prelude::*;

/// Statistics of one generation (GA) or iteration (PSO). Index 0 is the
/// initial population.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Generation {
    /// Generation number (0 = initial population).
    pub index: usize,
    /// The best fitness in this generation.
    pub best: f64,
    /// The mean fitness of this generation (summed in index order).
    pub mean: f64,
    /// The best fitness seen so far in the run.
    pub best_so_far: f64,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The best vector found.
    pub best: Vec<f32>,
    /// Its fitness.
    pub best_fitness: f64,
    /// One entry per generation, the initial population first.
    pub history: Vec<Generation>,
    /// Number of fitness evaluations made.
    pub evaluations: usize,
}

/// Evaluates every candidate in parallel. Each fitness is computed on its
/// own and collected in index order, so the result does not depend on the
/// number of threads. NaN becomes `-inf` (never selected, never best).
pub(crate) fn evaluate<F: Fn(&[f32]) -> f64 + Sync>(pop: &[Vec<f32>], fitness: &F) -> Vec<f64> {
    pop.par_iter()
        .map(|x| {
            let f = fitness(x);
            if f.is_nan() { f64::NEG_INFINITY } else { f }
        })
        .collect()
}

/// The index of the largest fitness, the lowest index on ties (NaN never
/// wins: map it to `-inf` first).
pub fn argmax(fit: &[f64]) -> usize {
    let mut best = 0;
    for (i, &f) in fit.iter().enumerate() {
        if f > fit[best] {
            best = i;
        }
    }
    best
}

/// Mean in index order.
pub(crate) fn mean(fit: &[f64]) -> f64 {
    fit.iter().sum::<f64>() / fit.len() as f64
}
