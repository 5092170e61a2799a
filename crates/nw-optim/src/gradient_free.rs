//! Gradient-free training as optimizers: a genetic algorithm ([`Ga`]) and
//! particle swarm optimisation ([`Pso`]) that step through a closure, so
//! that `nw train --optimizer ga|pso` runs them in the ordinary training
//! loop (schedules, monitor, checkpoints and resume included). nw's own
//! rules; torch.optim has no counterpart.
//!
//! Both search the flat vector of every parameter (in order, as
//! [`nw_evolve::flatten`] lays it out) and maximise the fitness
//! `-loss` of the step's batch, evaluated through
//! [`Optimizer::step_closure`] with the parameters set to each candidate
//! (forward and loss only: [`Optimizer::wants_loss_only`]). Because each
//! step sees a different mini-batch, a fitness from an earlier step is never
//! compared with one of this step: everything compared is evaluated on this
//! step's batch.
//!
//! - **GA**, one generation per step: evaluate the whole population on the
//!   batch (the fittest individual of the previous step is the current
//!   weights, whose loss the loop has already computed), set the weights to
//!   the fittest, then breed the next population with
//!   [`nw_evolve::GaConfig::next_generation`] (elites, tournaments,
//!   crossover, Gaussian mutation). The learning rate is the mutation's
//!   standard deviation, so a schedule anneals the search. `population`
//!   evaluations per step.
//! - **PSO**, one swarm sweep per step: re-evaluate every personal best on
//!   the batch, move every particle ([`nw_evolve::PsoConfig::sweep`]; the
//!   position moves by `lr x velocity`), evaluate the moved particles, keep
//!   the better of each particle's position and personal best, and set the
//!   weights to the best personal best. `2 x particles` evaluations per step
//!   (`particles` at the first).
//!
//! The population (GA), positions, velocities and personal bests (PSO) and
//! the random stream are the optimizer's state dict, so a resumed run
//! continues bit for bit. Every random draw is on the calling thread in a
//! fixed order; the evaluations run one after another (each forward pass
//! uses the machine's threads): the same seed gives the same bits on any
//! thread count.
//!
//! ```
//! use nw_autograd::{Grads, Param};
//! use nw_optim::{Ga, OptimError, Optimizer};
//! use nw_tensor::Tensor;
//!
//! // minimise (w - 3)^2 with a GA: the closure only reads the parameter
//! let w = Param::new(Tensor::zeros(&[1]));
//! let mut opt = Ga { lr: 0.5, init_sigma: 1.0, ..Ga::default() }.build(vec![w.clone()]).unwrap();
//! for _ in 0..60 {
//!     let p = w.clone();
//!     opt.step_closure(&mut || -> Result<(f64, Grads), OptimError> {
//!         let v = p.value().item().unwrap() as f64;
//!         Ok(((v - 3.0).powi(2), Grads::default()))
//!     })
//!     .unwrap();
//! }
//! assert!((w.value().item().unwrap() - 3.0).abs() < 0.05);
//! ```

use nw_autograd::{Grads, Param};
use nw_evolve::{Crossover, GaConfig, PsoConfig, argmax, flatten, unflatten};
use nw_tensor::{Rng, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{OptimError, check_closed, check_lr, check_min};
use crate::group::ParamGroup;
use crate::optim::Optimizer;
use crate::state::StateDict;

/// The crossover of [`Ga`], as written in a config (`uniform`, `one_point`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CrossoverName {
    /// Each gene from either parent with probability 1/2.
    #[default]
    Uniform,
    /// A prefix from one parent and the rest from the other.
    OnePoint,
}

/// A genetic algorithm over all parameters, one generation per step (see
/// the [module docs](self)). Defaults suit a small network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ga {
    /// The mutation's standard deviation (default 0.02); a schedule scales it.
    pub lr: f64,
    /// Individuals per generation, >= 2 (default 20).
    pub population: usize,
    /// Tournament size, >= 1 (default 3).
    pub tournament: usize,
    /// Crossover operator (default uniform).
    pub crossover: CrossoverName,
    /// Probability that a child is a crossover, in [0, 1] (default 0.9).
    pub crossover_rate: f64,
    /// Probability that each gene mutates, in [0, 1] (default 0.1).
    pub mutation_rate: f64,
    /// Fittest individuals kept unchanged, in 1..population (default 2; at
    /// least 1, so that the weights never get worse on the batch that chose
    /// them and the loop's loss at the current weights is one of the
    /// population's).
    pub elitism: usize,
    /// Spread of the first population around the initial weights (default 0.05).
    pub init_sigma: f64,
    /// Seed of the optimizer's random stream (default 0).
    pub seed: u64,
}

impl Default for Ga {
    fn default() -> Self {
        Ga {
            lr: 0.02,
            population: 20,
            tournament: 3,
            crossover: CrossoverName::Uniform,
            crossover_rate: 0.9,
            mutation_rate: 0.1,
            elitism: 2,
            init_sigma: 0.05,
            seed: 0,
        }
    }
}

/// Particle swarm optimisation over all parameters, one sweep per step (see
/// the [module docs](self)). The coefficients default to Clerc and
/// Kennedy's constriction values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pso {
    /// Step along the velocity, `x += lr * v` (default 1, the classic swarm).
    pub lr: f64,
    /// Particles, >= 2 (default 20).
    pub particles: usize,
    /// Inertia weight, finite (default 0.7298).
    pub inertia: f64,
    /// Pull towards each particle's own best, >= 0 (default 1.49618).
    pub cognitive: f64,
    /// Pull towards the swarm's best, >= 0 (default 1.49618).
    pub social: f64,
    /// Largest absolute velocity per coordinate, > 0 (default none).
    pub velocity_clamp: Option<f64>,
    /// Spread of the first positions around the initial weights (default 0.05).
    pub init_sigma: f64,
    /// Seed of the optimizer's random stream (default 0).
    pub seed: u64,
}

impl Default for Pso {
    fn default() -> Self {
        Pso {
            lr: 1.0,
            particles: 20,
            inertia: 0.7298,
            cognitive: 1.49618,
            social: 1.49618,
            velocity_clamp: None,
            init_sigma: 0.05,
            seed: 0,
        }
    }
}

const GA: &str = "GA";
const PSO: &str = "PSO";

fn count_at_least(owner: &'static str, name: &'static str, v: usize, lo: usize) -> Result<(), OptimError> {
    if v >= lo {
        Ok(())
    } else {
        Err(OptimError::InvalidHyper {
            owner,
            name,
            value: v as f64,
            reason: if lo == 1 { "must be >= 1" } else { "must be >= 2" },
        })
    }
}

/// The largest population or swarm accepted (each member is a full copy of
/// the parameters).
const MAX_MEMBERS: usize = 100_000;

fn check_members(owner: &'static str, name: &'static str, v: usize) -> Result<(), OptimError> {
    count_at_least(owner, name, v, 2)?;
    if v > MAX_MEMBERS {
        return Err(OptimError::InvalidHyper { owner, name, value: v as f64, reason: "must be <= 100000" });
    }
    Ok(())
}

fn one_group(owner: &'static str, groups: Vec<ParamGroup>) -> Result<(Vec<Param>, Option<f64>), OptimError> {
    let mut groups = groups;
    if groups.len() != 1 {
        return Err(OptimError::State {
            owner,
            reason: format!("takes exactly one group, got {}", groups.len()),
        });
    }
    let g = groups.remove(0);
    if g.weight_decay.is_some_and(|w| w != 0.0) {
        return Err(OptimError::InvalidHyper {
            owner,
            name: "weight_decay",
            value: g.weight_decay.unwrap_or(0.0),
            reason: "a gradient-free search has no weight decay",
        });
    }
    Ok((g.params, g.lr))
}

impl Ga {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), OptimError> {
        check_lr(GA, self.lr)?;
        check_members(GA, "population", self.population)?;
        count_at_least(GA, "tournament", self.tournament, 1)?;
        check_closed(GA, "crossover_rate", self.crossover_rate, 0.0, 1.0, "must lie in [0, 1]")?;
        check_closed(GA, "mutation_rate", self.mutation_rate, 0.0, 1.0, "must lie in [0, 1]")?;
        count_at_least(GA, "elitism", self.elitism, 1)?;
        if self.elitism >= self.population {
            return Err(OptimError::InvalidHyper {
                owner: GA,
                name: "elitism",
                value: self.elitism as f64,
                reason: "must be below the population",
            });
        }
        check_min(GA, "init_sigma", self.init_sigma, 0.0, "must be finite and >= 0")
    }

    /// The optimizer over `params`.
    pub fn build(self, params: Vec<Param>) -> Result<GradientFree, OptimError> {
        self.build_groups(vec![ParamGroup::new(params)])
    }

    /// Exactly one group, which may override only `lr`.
    pub fn build_groups(self, groups: Vec<ParamGroup>) -> Result<GradientFree, OptimError> {
        self.validate()?;
        let (params, lr) = one_group(GA, groups)?;
        let seed = self.seed;
        GradientFree::new(Search::Ga(self), params, lr, seed)
    }

    fn evolve_config(&self, sigma: f64) -> GaConfig {
        GaConfig {
            population: self.population,
            generations: 0,
            tournament: self.tournament,
            crossover: match self.crossover {
                CrossoverName::Uniform => Crossover::Uniform,
                CrossoverName::OnePoint => Crossover::OnePoint,
            },
            crossover_rate: self.crossover_rate,
            mutation_rate: self.mutation_rate,
            mutation_sigma: sigma as f32,
            elitism: self.elitism,
            init_sigma: self.init_sigma as f32,
        }
    }
}

impl Pso {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), OptimError> {
        check_lr(PSO, self.lr)?;
        check_members(PSO, "particles", self.particles)?;
        if !self.inertia.is_finite() {
            return Err(OptimError::InvalidHyper {
                owner: PSO,
                name: "inertia",
                value: self.inertia,
                reason: "must be finite",
            });
        }
        check_min(PSO, "cognitive", self.cognitive, 0.0, "must be finite and >= 0")?;
        check_min(PSO, "social", self.social, 0.0, "must be finite and >= 0")?;
        if let Some(c) = self.velocity_clamp
            && !(c.is_finite() && c > 0.0)
        {
            return Err(OptimError::InvalidHyper {
                owner: PSO,
                name: "velocity_clamp",
                value: c,
                reason: "must be finite and > 0",
            });
        }
        check_min(PSO, "init_sigma", self.init_sigma, 0.0, "must be finite and >= 0")
    }

    /// The optimizer over `params`.
    pub fn build(self, params: Vec<Param>) -> Result<GradientFree, OptimError> {
        self.build_groups(vec![ParamGroup::new(params)])
    }

    /// Exactly one group, which may override only `lr`.
    pub fn build_groups(self, groups: Vec<ParamGroup>) -> Result<GradientFree, OptimError> {
        self.validate()?;
        let (params, lr) = one_group(PSO, groups)?;
        let seed = self.seed;
        GradientFree::new(Search::Pso(self), params, lr, seed)
    }

    fn evolve_config(&self) -> PsoConfig {
        PsoConfig {
            particles: self.particles,
            iterations: 0,
            inertia: self.inertia as f32,
            cognitive: self.cognitive as f32,
            social: self.social as f32,
            velocity_clamp: self.velocity_clamp.map(|c| c as f32),
            bounds: None,
            init_sigma: self.init_sigma as f32,
        }
    }
}

/// Which search a [`GradientFree`] runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Search {
    /// A genetic algorithm.
    Ga(Ga),
    /// A particle swarm.
    Pso(Pso),
}

/// A [`Ga`] or [`Pso`] over one group of parameters: what their `build`
/// returns. Steps only through [`Optimizer::step_closure`].
#[derive(Debug, Clone)]
pub struct GradientFree {
    search: Search,
    groups: Vec<ParamGroup>,
    numel: usize,
    config_lr: f64,
    initial_lr: f64,
    lr: f64,
    rng: Rng,
    /// GA: the population to evaluate next; PSO: the positions.
    members: Vec<Vec<f32>>,
    /// PSO: velocities.
    velocity: Vec<Vec<f32>>,
    /// PSO: personal bests.
    best: Vec<Vec<f32>>,
    steps: u64,
}

impl GradientFree {
    fn new(search: Search, params: Vec<Param>, lr: Option<f64>, seed: u64) -> Result<Self, OptimError> {
        let config_lr = match &search {
            Search::Ga(g) => g.lr,
            Search::Pso(p) => p.lr,
        };
        let lr = lr.unwrap_or(config_lr);
        check_lr(self_name(&search), lr)?;
        let numel = params.iter().map(|p| p.len()).sum();
        Ok(GradientFree {
            search,
            groups: vec![ParamGroup { params, lr: Some(lr), weight_decay: Some(0.0) }],
            numel,
            config_lr,
            initial_lr: lr,
            lr: config_lr,
            rng: Rng::new(seed),
            members: Vec::new(),
            velocity: Vec::new(),
            best: Vec::new(),
            steps: 0,
        })
    }

    /// The search it runs.
    pub fn search(&self) -> &Search {
        &self.search
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    fn group_lr(&self) -> f64 {
        self.groups[0].lr.unwrap_or(self.config_lr)
    }

    fn params(&self) -> &[Param] {
        &self.groups[0].params
    }

    fn set(&self, v: &[f32]) -> Result<(), OptimError> {
        unflatten(self.params(), v).map_err(|e| OptimError::Closure(e.to_string()))
    }

    /// Fitness of `v` (`-loss`, NaN as `-inf`): `known` when `v` is the
    /// current weights (the loss the closure's first call returned), else
    /// the weights are set to `v` and the closure is called.
    fn fitness(
        &self,
        v: &[f32],
        current: &[f32],
        known: f64,
        closure: &mut dyn FnMut() -> Result<(f64, Grads), OptimError>,
    ) -> Result<f64, OptimError> {
        let loss = if same_bits(v, current) {
            known
        } else {
            self.set(v)?;
            closure()?.0
        };
        Ok(if loss.is_nan() { f64::NEG_INFINITY } else { -loss })
    }

    fn ga_step(
        &mut self,
        cfg: &Ga,
        closure: &mut dyn FnMut() -> Result<(f64, Grads), OptimError>,
    ) -> Result<f64, OptimError> {
        let current = flatten(self.params());
        let (loss0, _) = closure()?;
        let evolve = cfg.evolve_config(self.group_lr());
        if self.members.is_empty() {
            self.members = evolve.initial_population(&current, &mut self.rng);
        }
        let mut fit = Vec::with_capacity(self.members.len());
        for m in &self.members {
            fit.push(self.fitness(m, &current, loss0, closure)?);
        }
        let best = argmax(&fit);
        self.set(&self.members[best])?;
        let (next, _) = evolve.next_generation(&self.members, &fit, &mut self.rng);
        self.members = next;
        Ok(loss0)
    }

    fn pso_step(
        &mut self,
        cfg: &Pso,
        closure: &mut dyn FnMut() -> Result<(f64, Grads), OptimError>,
    ) -> Result<f64, OptimError> {
        let current = flatten(self.params());
        let (loss0, _) = closure()?;
        let evolve = cfg.evolve_config();
        let mut best_fit = Vec::with_capacity(cfg.particles);
        if self.members.is_empty() {
            self.members = evolve.initial_positions(&current, &mut self.rng);
            self.velocity = vec![vec![0.0; self.numel]; cfg.particles];
            for m in &self.members {
                best_fit.push(self.fitness(m, &current, loss0, closure)?);
            }
            self.best = self.members.clone();
        } else {
            for b in &self.best {
                best_fit.push(self.fitness(b, &current, loss0, closure)?);
            }
            let g = self.best[argmax(&best_fit)].clone();
            let step = self.group_lr() as f32;
            let (x, v, b) = (&mut self.members, &mut self.velocity, &self.best);
            evolve.sweep(x, v, b, &g, Some(step), &mut self.rng);
            for i in 0..self.members.len() {
                let f = self.fitness(&self.members[i], &current, loss0, closure)?;
                if f > best_fit[i] {
                    best_fit[i] = f;
                    self.best[i].copy_from_slice(&self.members[i]);
                }
            }
        }
        self.set(&self.best[argmax(&best_fit)])?;
        Ok(loss0)
    }
}

fn self_name(s: &Search) -> &'static str {
    match s {
        Search::Ga(_) => GA,
        Search::Pso(_) => PSO,
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

impl Optimizer for GradientFree {
    fn name(&self) -> &'static str {
        self_name(&self.search)
    }

    fn step(&mut self, _grads: &Grads) -> Result<(), OptimError> {
        Err(OptimError::ClosureRequired { optimizer: self.name() })
    }

    fn wants_closure(&self) -> bool {
        true
    }

    fn wants_loss_only(&self) -> bool {
        true
    }

    /// One generation (GA) or sweep (PSO) on the closure's batch; returns
    /// the loss at the weights before the step. A closure error stops the
    /// step there: the weights may then hold a candidate's values and the
    /// search may be part-way (a training loop stops on the error).
    fn step_closure(
        &mut self,
        closure: &mut dyn FnMut() -> Result<(f64, Grads), OptimError>,
    ) -> Result<f64, OptimError> {
        check_lr(self.name(), self.group_lr())?;
        let loss = match self.search.clone() {
            Search::Ga(cfg) => self.ga_step(&cfg, closure)?,
            Search::Pso(cfg) => self.pso_step(&cfg, closure)?,
        };
        self.steps += 1;
        Ok(loss)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
        let base = self.config_lr;
        self.groups[0].lr = Some(if base > 0.0 { lr * (self.initial_lr / base) } else { lr });
    }

    fn param_groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    /// Scalars `lr`, `param_groups.0.{lr, initial_lr, params}`, `state.step`,
    /// `state.members`, `state.rng.{0..8}` (the stream's 256 bits as 32-bit
    /// halves); tensors `state.members` (`[members, numel]`: GA's next
    /// population, PSO's positions) and, for PSO, `state.velocity` and
    /// `state.best` of the same shape.
    fn state_dict(&self) -> StateDict {
        let mut sd = StateDict { optimizer: self.name().to_string(), ..Default::default() };
        let sc = &mut sd.scalars;
        sc.insert("lr".into(), self.lr);
        sc.insert("param_groups.0.lr".into(), self.group_lr());
        sc.insert("param_groups.0.initial_lr".into(), self.initial_lr);
        sc.insert("param_groups.0.params".into(), self.params().len() as f64);
        sc.insert("state.step".into(), self.steps as f64);
        sc.insert("state.members".into(), self.members.len() as f64);
        for (i, w) in self.rng.state().iter().enumerate() {
            sc.insert(format!("state.rng.{}", 2 * i), (w >> 32) as f64);
            sc.insert(format!("state.rng.{}", 2 * i + 1), (w & 0xffff_ffff) as f64);
        }
        let stack = |rows: &[Vec<f32>]| {
            let data: Vec<f32> = rows.iter().flatten().copied().collect();
            Tensor::from_vec(data, &[rows.len(), self.numel]).expect("rows of numel")
        };
        if !self.members.is_empty() {
            sd.tensors.insert("state.members".into(), stack(&self.members));
            if matches!(self.search, Search::Pso(_)) {
                sd.tensors.insert("state.velocity".into(), stack(&self.velocity));
                sd.tensors.insert("state.best".into(), stack(&self.best));
            }
        }
        sd
    }

    fn load_state_dict(&mut self, sd: &StateDict) -> Result<(), OptimError> {
        let owner = self.name();
        let err = |reason: String| OptimError::State { owner, reason };
        if sd.optimizer != owner {
            return Err(err(format!("state dict is for {:?}", sd.optimizer)));
        }
        let scalar = |k: &str| sd.required_scalar(owner, k);
        let count = |k: &str| sd.count(owner, k);
        if count("param_groups.0.params")? != self.params().len() as u64 {
            return Err(err("the parameter count differs".into()));
        }
        let lr = scalar("lr")?;
        let glr = scalar("param_groups.0.lr")?;
        let init = scalar("param_groups.0.initial_lr")?;
        check_lr(owner, glr)?;
        let steps = count("state.step")?;
        let expected = match &self.search {
            Search::Ga(g) => g.population,
            Search::Pso(p) => p.particles,
        };
        let n = count("state.members")? as usize;
        if n != 0 && n != expected {
            return Err(err(format!("{n} members, the config has {expected}")));
        }
        let mut words = [0u64; 4];
        for (i, w) in words.iter_mut().enumerate() {
            let hi = count(&format!("state.rng.{}", 2 * i))?;
            let lo = count(&format!("state.rng.{}", 2 * i + 1))?;
            if hi > u32::MAX as u64 || lo > u32::MAX as u64 {
                return Err(err("state.rng holds a word over 32 bits".into()));
            }
            *w = (hi << 32) | lo;
        }
        let rows = |k: &str| -> Result<Vec<Vec<f32>>, OptimError> {
            if n == 0 {
                return match sd.tensor(k) {
                    None => Ok(Vec::new()),
                    Some(_) => Err(err(format!("{k} given with 0 members"))),
                };
            }
            let t = sd.tensor(k).ok_or_else(|| err(format!("missing tensor {k:?}")))?;
            if t.shape() != [n, self.numel] {
                return Err(err(format!("{k} has shape {:?}, expected [{n}, {}]", t.shape(), self.numel)));
            }
            Ok(t.to_vec().chunks(self.numel.max(1)).map(<[f32]>::to_vec).collect())
        };
        let members = rows("state.members")?;
        let (velocity, best) = match self.search {
            Search::Pso(_) => (rows("state.velocity")?, rows("state.best")?),
            Search::Ga(_) => (Vec::new(), Vec::new()),
        };
        let expected_tensors = if n == 0 {
            0
        } else if matches!(self.search, Search::Pso(_)) {
            3
        } else {
            1
        };
        if sd.tensors.len() != expected_tensors {
            return Err(err(format!("{} tensors, expected {expected_tensors}", sd.tensors.len())));
        }
        self.lr = lr;
        self.groups[0].lr = Some(glr);
        self.initial_lr = init;
        self.steps = steps;
        self.rng = Rng::from_state(words);
        self.members = members;
        self.velocity = velocity;
        self.best = best;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quadratic(p: &Param, target: f32) -> impl FnMut() -> Result<(f64, Grads), OptimError> + '_ {
        move || {
            let v = p.value().to_vec();
            Ok((v.iter().map(|&x| ((x - target) as f64).powi(2)).sum(), Grads::default()))
        }
    }

    #[test]
    fn both_searches_descend_and_never_get_worse_on_a_fixed_objective() {
        for search in ["ga", "pso"] {
            let w = Param::new(Tensor::from_vec(vec![0.0, 1.0, -1.0], &[3]).unwrap());
            let mut opt: Box<dyn Optimizer> = match search {
                "ga" => {
                    Box::new(Ga { lr: 0.3, init_sigma: 0.5, ..Ga::default() }.build(vec![w.clone()]).unwrap())
                }
                _ => Box::new(Pso { init_sigma: 1.0, ..Pso::default() }.build(vec![w.clone()]).unwrap()),
            };
            let mut last = f64::INFINITY;
            for _ in 0..80 {
                let l = opt.step_closure(&mut quadratic(&w, 2.0)).unwrap();
                assert!(l <= last, "{search}: loss rose from {last} to {l}");
                last = l;
            }
            assert!(last < 1e-2, "{search}: loss {last} after 80 steps");
            assert!(opt.step(&Grads::default()).is_err());
        }
    }

    #[test]
    fn state_dict_round_trip_continues_bit_for_bit() {
        for search in ["ga", "pso"] {
            let make = |w: &Param| -> GradientFree {
                match search {
                    "ga" => Ga { seed: 5, ..Ga::default() }.build(vec![w.clone()]).unwrap(),
                    _ => Pso { seed: 5, ..Pso::default() }.build(vec![w.clone()]).unwrap(),
                }
            };
            let a = Param::new(Tensor::from_vec(vec![0.5, -0.5, 0.25, 1.0], &[2, 2]).unwrap());
            let mut oa = make(&a);
            for _ in 0..3 {
                oa.step_closure(&mut quadratic(&a, 1.0)).unwrap();
            }
            let sd = oa.state_dict();
            let b = Param::new(a.value().clone());
            let mut ob = make(&b);
            ob.load_state_dict(&sd).unwrap();
            for _ in 0..4 {
                oa.step_closure(&mut quadratic(&a, 1.0)).unwrap();
                ob.step_closure(&mut quadratic(&b, 1.0)).unwrap();
            }
            let bits = |p: &Param| p.value().to_vec().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "{search}");
            // a state for another shape or kind is refused, and nothing changes
            let other = Param::new(Tensor::zeros(&[3]));
            let mut oc = make(&other);
            assert!(oc.load_state_dict(&sd).is_err());
            let mut sd2 = sd.clone();
            sd2.optimizer = "Adam".into();
            assert!(ob.load_state_dict(&sd2).is_err());
        }
    }

    #[test]
    fn bad_settings_are_typed_errors() {
        let w = Param::new(Tensor::zeros(&[2]));
        for ga in [
            Ga { population: 1, ..Ga::default() },
            Ga { elitism: 0, ..Ga::default() },
            Ga { elitism: 20, ..Ga::default() },
            Ga { mutation_rate: 1.5, ..Ga::default() },
            Ga { lr: -1.0, ..Ga::default() },
            Ga { population: 1 << 40, ..Ga::default() },
        ] {
            assert!(matches!(ga.build(vec![w.clone()]), Err(OptimError::InvalidHyper { .. })));
        }
        for pso in [
            Pso { particles: 1, ..Pso::default() },
            Pso { inertia: f64::NAN, ..Pso::default() },
            Pso { velocity_clamp: Some(0.0), ..Pso::default() },
            Pso { social: -1.0, ..Pso::default() },
        ] {
            assert!(matches!(pso.build(vec![w.clone()]), Err(OptimError::InvalidHyper { .. })));
        }
    }
}
