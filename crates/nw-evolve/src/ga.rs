//! A real-coded genetic algorithm: tournament selection, uniform or
//! one-point crossover, Gaussian mutation, elitism.
//!
//! One generation, all random draws from the caller's [`Rng`] on the
//! calling thread in a fixed order:
//!
//! ```text
//! elites   = the `elitism` fittest (ties: lower index first), copied unchanged
//! repeat until the population is full:
//!     a = tournament(), b = tournament()          (k draws with replacement; fittest wins, ties: lower index)
//!     child = crossover(a, b) with probability crossover_rate, else a copy of a
//!     each gene: += mutation_sigma * N(0, 1)  with probability mutation_rate
//! evaluate the children in parallel (fitness is maximised)
//! ```

use nw_tensor::Rng;

use crate::error::{Result, bad};
use crate::history::{Generation, Outcome, argmax, evaluate, mean};

/// How two parents are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossover {
    /// Each gene from either parent with probability 1/2.
    Uniform,
    /// Genes `[0, cut)` from the first parent and `[cut, n)` from the
    /// second, `cut` uniform in `1..n`.
    OnePoint,
}

/// Genetic-algorithm settings. Fitness is maximised (pass `-loss`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaConfig {
    /// Individuals per generation (>= 2). Default 50.
    pub population: usize,
    /// Generations after the initial one. Default 100.
    pub generations: usize,
    /// Tournament size (>= 1). Default 3.
    pub tournament: usize,
    /// Crossover operator. Default uniform.
    pub crossover: Crossover,
    /// Probability that a child is a crossover (else a copy), in [0, 1]. Default 0.9.
    pub crossover_rate: f64,
    /// Probability that each gene is mutated, in [0, 1]. Default 0.1.
    pub mutation_rate: f64,
    /// Standard deviation of a mutation (>= 0). Default 0.1.
    pub mutation_sigma: f32,
    /// Fittest individuals carried over unchanged (< population). Default 2.
    pub elitism: usize,
    /// Spread of the initial population around the start vector: individual
    /// 0 is the start itself, the others add `N(0, init_sigma)` per gene. Default 0.5.
    pub init_sigma: f32,
}

impl Default for GaConfig {
    fn default() -> Self {
        GaConfig {
            population: 50,
            generations: 100,
            tournament: 3,
            crossover: Crossover::Uniform,
            crossover_rate: 0.9,
            mutation_rate: 0.1,
            mutation_sigma: 0.1,
            elitism: 2,
            init_sigma: 0.5,
        }
    }
}

impl GaConfig {
    /// Checks every field's domain.
    pub fn validate(&self) -> Result<()> {
        let op = "GaConfig";
        if self.population < 2 {
            return Err(bad(op, format!("population must be >= 2, got {}", self.population)));
        }
        if self.tournament == 0 {
            return Err(bad(op, "tournament size must be >= 1"));
        }
        if self.elitism >= self.population {
            return Err(bad(
                op,
                format!("elitism {} must be below the population {}", self.elitism, self.population),
            ));
        }
        for (name, p) in [("crossover_rate", self.crossover_rate), ("mutation_rate", self.mutation_rate)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(bad(op, format!("{name} {p} is outside [0, 1]")));
            }
        }
        for (name, s) in [("mutation_sigma", self.mutation_sigma), ("init_sigma", self.init_sigma)] {
            if !(s.is_finite() && s >= 0.0) {
                return Err(bad(op, format!("{name} must be finite and >= 0, got {s}")));
            }
        }
        Ok(())
    }

    /// Runs the algorithm from `start` and returns the best vector with the
    /// history. Same `rng` state and inputs give the same result bit for
    /// bit, whatever the number of threads evaluating fitness.
    ///
    /// ```
    /// use nw_evolve::GaConfig;
    /// use nw_tensor::Rng;
    ///
    /// // maximise -(x - 3)^2 - (y + 1)^2
    /// let f = |v: &[f32]| -(((v[0] - 3.0) as f64).powi(2) + ((v[1] + 1.0) as f64).powi(2));
    /// let cfg = GaConfig { generations: 60, ..GaConfig::default() };
    /// let out = cfg.run(&[0.0, 0.0], f, &mut Rng::new(1)).unwrap();
    /// assert!(out.best_fitness > -1e-2, "{}", out.best_fitness);
    /// assert_eq!(out.history.len(), 61);
    /// ```
    pub fn run<F: Fn(&[f32]) -> f64 + Sync>(
        &self,
        start: &[f32],
        fitness: F,
        rng: &mut Rng,
    ) -> Result<Outcome> {
        self.validate()?;
        if start.is_empty() {
            return Err(bad("GaConfig::run", "the start vector is empty"));
        }
        let mut pop = self.initial_population(start, rng);
        let mut fit = evaluate(&pop, &fitness);
        let mut evaluations = pop.len();
        let mut best_i = argmax(&fit);
        let (mut best, mut best_fitness) = (pop[best_i].clone(), fit[best_i]);
        let mut history =
            vec![Generation { index: 0, best: fit[best_i], mean: mean(&fit), best_so_far: best_fitness }];

        for index in 1..=self.generations {
            let (next, elites) = self.next_generation(&pop, &fit, rng);
            let elite_fit: Vec<f64> = elites.iter().map(|&i| fit[i]).collect();
            let child_fit = evaluate(&next[self.elitism..], &fitness);
            evaluations += child_fit.len();
            fit = elite_fit.into_iter().chain(child_fit).collect();
            pop = next;
            best_i = argmax(&fit);
            if fit[best_i] > best_fitness {
                best_fitness = fit[best_i];
                best = pop[best_i].clone();
            }
            history.push(Generation {
                index,
                best: fit[best_i],
                mean: mean(&fit),
                best_so_far: best_fitness,
            });
        }
        Ok(Outcome { best, best_fitness, history, evaluations })
    }

    /// The initial population around `start`: individual 0 is `start`
    /// itself, the others add `N(0, init_sigma)` per gene (drawn in
    /// individual, then gene order).
    pub fn initial_population(&self, start: &[f32], rng: &mut Rng) -> Vec<Vec<f32>> {
        let mut pop: Vec<Vec<f32>> = Vec::with_capacity(self.population);
        pop.push(start.to_vec());
        for _ in 1..self.population {
            pop.push(start.iter().map(|&x| x + self.init_sigma * rng.normal() as f32).collect());
        }
        pop
    }

    /// One generation's breeding (the module docs' loop) from `pop` with
    /// fitness `fit` (maximised; same length, `-inf` for NaN): the next
    /// population, the `elitism` fittest first (fittest first, ties by lower
    /// index, copied unchanged), then the children. Also returns the
    /// elites' indices in `pop`. Callers that evaluate on changing data
    /// (mini-batches) evaluate the whole next population; [`GaConfig::run`]
    /// keeps the elites' fitness.
    pub fn next_generation(
        &self,
        pop: &[Vec<f32>],
        fit: &[f64],
        rng: &mut Rng,
    ) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut order: Vec<usize> = (0..pop.len()).collect();
        order.sort_by(|&a, &b| fit[b].total_cmp(&fit[a])); // stable: ties keep index order
        let elites: Vec<usize> = order[..self.elitism.min(pop.len())].to_vec();
        let mut next: Vec<Vec<f32>> = elites.iter().map(|&i| pop[i].clone()).collect();
        while next.len() < self.population {
            let a = self.tournament(fit, rng);
            let b = self.tournament(fit, rng);
            let mut child = if rng.next_f64() < self.crossover_rate {
                self.cross(&pop[a], &pop[b], rng)
            } else {
                pop[a].clone()
            };
            for g in child.iter_mut() {
                if rng.next_f64() < self.mutation_rate {
                    *g += self.mutation_sigma * rng.normal() as f32;
                }
            }
            next.push(child);
        }
        (next, elites)
    }

    fn tournament(&self, fit: &[f64], rng: &mut Rng) -> usize {
        let mut best = rng.below(fit.len() as u64) as usize;
        for _ in 1..self.tournament {
            let c = rng.below(fit.len() as u64) as usize;
            if fit[c] > fit[best] || (fit[c] == fit[best] && c < best) {
                best = c;
            }
        }
        best
    }

    fn cross(&self, a: &[f32], b: &[f32], rng: &mut Rng) -> Vec<f32> {
        match self.crossover {
            Crossover::Uniform => {
                a.iter().zip(b).map(|(&x, &y)| if rng.next_f64() < 0.5 { x } else { y }).collect()
            }
            Crossover::OnePoint => {
                if a.len() < 2 {
                    return a.to_vec();
                }
                let cut = 1 + rng.below(a.len() as u64 - 1) as usize;
                a[..cut].iter().chain(&b[cut..]).copied().collect()
            }
        }
    }
}
