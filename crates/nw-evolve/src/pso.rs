//! Particle swarm optimisation (Kennedy and Eberhart 1995, with Shi and
//! Eberhart's inertia weight), global-best topology, synchronous updates.
//!
//! Per iteration, per particle `i` in index order, per dimension `d`, with
//! `r1, r2 ~ U[0, 1)` drawn in that order from the caller's [`Rng`]:
//!
//! ```text
//! v[d] = inertia * v[d] + cognitive * r1 * (pbest_i[d] - x[d]) + social * r2 * (gbest[d] - x[d])
//! v[d] = clamp(v[d], -velocity_clamp, velocity_clamp)      (if set)
//! x[d] = clamp(x[d] + v[d], low, high)                     (if bounds set)
//! ```
//!
//! then every particle is evaluated in parallel, personal bests are updated
//! and the global best is the fittest personal best (lower index on ties).
//! `gbest` stays fixed during a sweep, so the result does not depend on
//! evaluation order. Particles start at rest (`v = 0`).

use nw_tensor::Rng;

use crate::error::{Result, bad};
use crate::history::{Generation, Outcome, argmax, evaluate, mean};

/// Particle-swarm settings. Fitness is maximised (pass `-loss`). The
/// default coefficients are Clerc and Kennedy's constriction values
/// (0.7298, 1.49618, 1.49618).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PsoConfig {
    /// Number of particles (>= 1). Default 40.
    pub particles: usize,
    /// Iterations after the initial evaluation. Default 100.
    pub iterations: usize,
    /// Inertia weight `w` (finite). Default 0.7298.
    pub inertia: f32,
    /// Cognitive weight `c1` (pull to the particle's own best, >= 0). Default 1.49618.
    pub cognitive: f32,
    /// Social weight `c2` (pull to the swarm's best, >= 0). Default 1.49618.
    pub social: f32,
    /// Largest absolute velocity per dimension (> 0), if any. Default none.
    pub velocity_clamp: Option<f32>,
    /// Box bounds `(low, high)` on every coordinate, if any. Default none.
    pub bounds: Option<(f32, f32)>,
    /// Spread of the initial positions around the start vector: particle 0
    /// is the start, the others add `N(0, init_sigma)` per coordinate. Default 0.5.
    pub init_sigma: f32,
}

impl Default for PsoConfig {
    fn default() -> Self {
        PsoConfig {
            particles: 40,
            iterations: 100,
            inertia: 0.7298,
            cognitive: 1.49618,
            social: 1.49618,
            velocity_clamp: None,
            bounds: None,
            init_sigma: 0.5,
        }
    }
}

impl PsoConfig {
    /// Checks every field's domain.
    pub fn validate(&self) -> Result<()> {
        let op = "PsoConfig";
        if self.particles == 0 {
            return Err(bad(op, "particles must be >= 1"));
        }
        if !self.inertia.is_finite() {
            return Err(bad(op, format!("inertia must be finite, got {}", self.inertia)));
        }
        for (name, v) in
            [("cognitive", self.cognitive), ("social", self.social), ("init_sigma", self.init_sigma)]
        {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(op, format!("{name} must be finite and >= 0, got {v}")));
            }
        }
        if let Some(c) = self.velocity_clamp
            && !(c.is_finite() && c > 0.0)
        {
            return Err(bad(op, format!("velocity_clamp must be finite and > 0, got {c}")));
        }
        if let Some((lo, hi)) = self.bounds
            && !(lo.is_finite() && hi.is_finite() && lo <= hi)
        {
            return Err(bad(op, format!("bounds ({lo}, {hi}) must be finite with low <= high")));
        }
        Ok(())
    }

    /// Runs the swarm from `start`; same `rng` state and inputs give the
    /// same result bit for bit, whatever the number of threads.
    ///
    /// ```
    /// use nw_evolve::PsoConfig;
    /// use nw_tensor::Rng;
    ///
    /// // maximise -(x - 3)^2 - (y + 1)^2
    /// let f = |v: &[f32]| -(((v[0] - 3.0) as f64).powi(2) + ((v[1] + 1.0) as f64).powi(2));
    /// let cfg = PsoConfig { init_sigma: 2.0, ..PsoConfig::default() };
    /// let out = cfg.run(&[0.0, 0.0], f, &mut Rng::new(1)).unwrap();
    /// assert!(out.best_fitness > -1e-6, "{}", out.best_fitness);
    /// ```
    pub fn run<F: Fn(&[f32]) -> f64 + Sync>(
        &self,
        start: &[f32],
        fitness: F,
        rng: &mut Rng,
    ) -> Result<Outcome> {
        self.validate()?;
        if start.is_empty() {
            return Err(bad("PsoConfig::run", "the start vector is empty"));
        }
        let n = start.len();
        let mut x = self.initial_positions(start, rng);
        let mut v = vec![vec![0.0f32; n]; self.particles];
        let fit = evaluate(&x, &fitness);
        let mut evaluations = fit.len();
        let mut pbest = x.clone();
        let mut pbest_fit = fit.clone();
        let mut g = argmax(&pbest_fit);
        let (mut gbest, mut gbest_fit) = (pbest[g].clone(), pbest_fit[g]);
        let mut history =
            vec![Generation { index: 0, best: fit[argmax(&fit)], mean: mean(&fit), best_so_far: gbest_fit }];

        for index in 1..=self.iterations {
            self.sweep(&mut x, &mut v, &pbest, &gbest, None, rng);
            let fit = evaluate(&x, &fitness);
            evaluations += fit.len();
            for i in 0..self.particles {
                if fit[i] > pbest_fit[i] {
                    pbest_fit[i] = fit[i];
                    pbest[i].copy_from_slice(&x[i]);
                }
            }
            g = argmax(&pbest_fit);
            if pbest_fit[g] > gbest_fit {
                gbest_fit = pbest_fit[g];
                gbest.copy_from_slice(&pbest[g]);
            }
            history.push(Generation {
                index,
                best: fit[argmax(&fit)],
                mean: mean(&fit),
                best_so_far: gbest_fit,
            });
        }
        Ok(Outcome { best: gbest, best_fitness: gbest_fit, history, evaluations })
    }

    fn clamp_position(&self, x: f32) -> f32 {
        match self.bounds {
            Some((lo, hi)) => x.clamp(lo, hi),
            None => x,
        }
    }

    /// The initial positions around `start`: particle 0 is `start`, the
    /// others add `N(0, init_sigma)` per coordinate (particle, then
    /// coordinate order), each clamped to the bounds.
    pub fn initial_positions(&self, start: &[f32], rng: &mut Rng) -> Vec<Vec<f32>> {
        let mut x: Vec<Vec<f32>> = Vec::with_capacity(self.particles);
        x.push(start.iter().map(|&s| self.clamp_position(s)).collect());
        for _ in 1..self.particles {
            x.push(
                start
                    .iter()
                    .map(|&s| self.clamp_position(s + self.init_sigma * rng.normal() as f32))
                    .collect(),
            );
        }
        x
    }

    /// One synchronous sweep of the module docs' update over every particle
    /// (positions `x`, velocities `v`, personal bests `pbest`, all of one
    /// length, and the global best `gbest`). With `step = Some(s)` the
    /// position moves by `s * v` instead of `v` (the velocity itself is
    /// unchanged): the learning rate of nw's PSO optimizer.
    pub fn sweep(
        &self,
        x: &mut [Vec<f32>],
        v: &mut [Vec<f32>],
        pbest: &[Vec<f32>],
        gbest: &[f32],
        step: Option<f32>,
        rng: &mut Rng,
    ) {
        for ((xi, vi), pi) in x.iter_mut().zip(v.iter_mut()).zip(pbest) {
            for d in 0..xi.len() {
                let r1 = rng.next_f32();
                let r2 = rng.next_f32();
                let mut vel = self.inertia * vi[d]
                    + self.cognitive * r1 * (pi[d] - xi[d])
                    + self.social * r2 * (gbest[d] - xi[d]);
                if let Some(c) = self.velocity_clamp {
                    vel = vel.clamp(-c, c);
                }
                vi[d] = vel;
                let moved = match step {
                    Some(s) => xi[d] + s * vel,
                    None => xi[d] + vel,
                };
                xi[d] = self.clamp_position(moved);
            }
        }
    }
}
