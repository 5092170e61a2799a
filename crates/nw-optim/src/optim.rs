//! The [`Optimizer`] trait and [`Optim`], the engine every optimizer config
//! runs in: parameter groups, lazily created per-parameter state, the step
//! loop, the learning-rate hook for schedules, and state save/load.

use std::collections::HashSet;

use nw_autograd::{Grads, Param};

use crate::error::{OptimError, check_lr};
use crate::group::{ParamGroup, WeightDecay};
use crate::state::{ParamState, StateDict};

/// The hyper-parameters of one group at one step (after overrides and schedules).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupHyper {
    /// The group's learning rate now.
    pub lr: f64,
    /// The group's weight decay.
    pub weight_decay: WeightDecay,
}

/// An optimizer's update rule: the config struct (`Adam`, `Sgd`, ...) with its
/// hyper-parameters, the names of its per-parameter buffers and the fused
/// elementwise update. [`Optim`] runs a rule over parameter groups.
pub trait Rule: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The torch.optim class name (`"Adam"`); also the state dict's tag.
    const NAME: &'static str;

    /// The default learning rate (groups may override it).
    fn lr(&self) -> f64;

    /// The default weight decay (groups may override its coefficient).
    fn weight_decay(&self) -> WeightDecay;

    /// Checks every hyper-parameter's range.
    fn validate(&self) -> Result<(), OptimError>;

    /// Names of the per-parameter buffers (torch's state keys), in storage order.
    fn buffer_names(&self) -> &'static [&'static str];

    /// The value buffer `k` starts at (torch: zeros, except Adagrad's
    /// accumulator and Rprop's step sizes).
    fn buffer_init(&self, _k: usize, _group_lr: f64) -> f32 {
        0.0
    }

    /// One step of one parameter: `st.step` has already been incremented (it
    /// is 1 at the first step). `p`, `g` and every buffer have one length.
    /// Matrix-level rules (Adafactor, Muon) treat `p` here as a flat vector
    /// (one row); the engine calls [`Rule::update_shaped`], which they
    /// override with the real shape.
    fn update(&self, h: &GroupHyper, st: &mut ParamState, p: &mut [f32], g: &[f32]);

    /// The buffers (torch's state keys, in storage order) and the shape of
    /// each for a parameter of shape `shape`. The default gives every name of
    /// [`Rule::buffer_names`] the parameter's shape; rules with factored or
    /// scalar state (Adafactor's row and column moments, ASGD's `eta`)
    /// override it. A parameter the rule cannot take (Muon: not 2-D) is an
    /// [`OptimError::ParamShape`], reported when the optimizer is built.
    fn buffer_layout(&self, shape: &[usize]) -> Result<Vec<(&'static str, Vec<usize>)>, OptimError> {
        Ok(self.buffer_names().iter().map(|&n| (n, shape.to_vec())).collect())
    }

    /// One step of one parameter of shape `shape` (row-major `p` and `g`;
    /// buffer `k` has the `k`-th shape of [`Rule::buffer_layout`]). The
    /// default is the elementwise [`Rule::update`].
    fn update_shaped(&self, h: &GroupHyper, st: &mut ParamState, shape: &[usize], p: &mut [f32], g: &[f32]) {
        let _ = shape;
        self.update(h, st, p, g)
    }

    /// Whether the rule updates only the rows a row-sparse gradient touches
    /// ([`nw_autograd::Grads::rows`]; SparseAdam). Default false. When true,
    /// [`Optim`] refuses a dense gradient ([`OptimError::DenseGrad`]) and a
    /// group weight decay other than 0 (it would move every row), and at each
    /// step gathers the touched rows of the parameter, the gradient and every
    /// buffer (which must all have the parameter's shape) into contiguous
    /// slices, runs [`Rule::update`] on them and writes them back: the other
    /// rows keep their bits. `st.step` counts every step with a gradient, also
    /// one that touches no row (then `update` is not called), as torch.
    fn row_sparse(&self) -> bool {
        false
    }

    /// Recomputes [`ParamState::cache`] from `st.step` after a load.
    fn restore(&self, _st: &mut ParamState) {}

    /// The momentum a schedule may cycle (torch's `cycle_momentum`): SGD's
    /// and RMSprop's `momentum`, `betas.0` (beta1) of the Adam family and
    /// Lion. `None` (the default) for rules without one.
    fn momentum(&self) -> Option<f64> {
        None
    }

    /// Sets the value [`Rule::momentum`] reads. The default is an
    /// [`OptimError::NoMomentum`]; rules with momentum override it. The
    /// caller ([`Optimizer::set_momentum`]) validates the result.
    fn set_momentum(&mut self, momentum: f64) -> Result<(), OptimError> {
        let _ = momentum;
        Err(OptimError::NoMomentum { optimizer: Self::NAME, reason: "the rule has no momentum or betas" })
    }

    /// For rules that divide by a running second moment (Adam's family): which
    /// buffer holds it and the constants of the denominator, so a monitor can
    /// report the effective per-parameter step `lr / (sqrt(v_hat) + eps)`.
    /// Default: none.
    fn adaptive_step(&self) -> Option<AdaptiveStep> {
        None
    }
}

/// How an adaptive rule scales its step per parameter:
/// `lr / (sqrt(v) / sqrt(1 - beta2^t) + eps)` with `v` the buffer named `buffer`
/// (torch's Adam denominator, bias-corrected).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveStep {
    /// The second-moment buffer's name (`exp_avg_sq`, or `max_exp_avg_sq` with AMSGrad).
    pub buffer: &'static str,
    /// The second-moment decay β2.
    pub beta2: f64,
    /// ε of the denominator.
    pub eps: f64,
}

/// A read-only view of one parameter's optimizer state, for monitors
/// (see [`Optimizer::inspect_param`]).
#[derive(Debug, Clone)]
pub struct ParamView<'a> {
    /// Steps this parameter has been updated with a gradient.
    pub step: u64,
    /// The learning rate of the parameter's group now.
    pub lr: f64,
    /// The rule's buffers by name (torch's state keys), in storage order.
    pub buffers: Vec<(&'static str, &'a [f32])>,
    /// The adaptive denominator, for rules that have one.
    pub adaptive: Option<AdaptiveStep>,
}

/// What every optimizer offers to a training loop.
pub trait Optimizer: Send {
    /// The torch.optim class name.
    fn name(&self) -> &'static str;

    /// One update of every parameter that has a gradient in `grads`
    /// (parameters without one are skipped, as torch skips `grad is None`).
    /// A gradient whose shape differs from its parameter's is an error, and
    /// then nothing is updated.
    fn step(&mut self, grads: &Grads) -> Result<(), OptimError>;

    /// The learning rate last set (initially the config's `lr`).
    fn lr(&self) -> f64;

    /// Sets the learning rate, as a schedule does: every group's rate becomes
    /// `lr × group_initial_lr / config_lr`, so a group built with half the
    /// default rate keeps half of whatever the schedule sets. (When the
    /// config's `lr` is 0 every group gets `lr`.) A negative or NaN rate is
    /// reported by the next `step`.
    fn set_lr(&mut self, lr: f64);

    /// The groups, with every override resolved to the value in force.
    fn param_groups(&self) -> &[ParamGroup];

    /// The state as named tensors and group hyper-parameters.
    fn state_dict(&self) -> StateDict;

    /// Restores a state saved by [`Optimizer::state_dict`] of an optimizer of
    /// the same kind over parameters of the same shapes, grouped the same
    /// way. On error nothing changes.
    fn load_state_dict(&mut self, sd: &StateDict) -> Result<(), OptimError>;

    /// Whether [`Optimizer::step_closure`] is the only way to step (LBFGS,
    /// which re-evaluates the loss several times per step). A training loop
    /// checks this to hand over a closure instead of one set of gradients.
    fn wants_closure(&self) -> bool {
        false
    }

    /// Whether the closure [`Optimizer::step_closure`] is given may skip
    /// the backward pass and return empty gradients (the gradient-free
    /// searches, [`crate::Ga`] and [`crate::Pso`], read only the loss).
    fn wants_loss_only(&self) -> bool {
        false
    }

    /// One step with a closure that zeroes nothing (gradients are values),
    /// runs forward and backward at the parameters' current values and
    /// returns `(loss, grads)`, as torch's `optimizer.step(closure)`. Returns
    /// the loss of the first evaluation. The default evaluates once and calls
    /// [`Optimizer::step`]; LBFGS may evaluate several times. A closure error
    /// is returned as it is, and the step stops there.
    fn step_closure(
        &mut self,
        closure: &mut dyn FnMut() -> Result<(f64, Grads), OptimError>,
    ) -> Result<f64, OptimError> {
        let (loss, grads) = closure()?;
        self.step(&grads)?;
        Ok(loss)
    }

    /// The momentum a schedule with `cycle_momentum` drives: SGD's and
    /// RMSprop's `momentum`, beta1 of Adam, AdamW, Adamax, NAdam, RAdam and
    /// Lion. `None` (the default) when the optimizer has none.
    fn momentum(&self) -> Option<f64> {
        None
    }

    /// Sets the momentum [`Optimizer::momentum`] reads (every group: groups
    /// do not override it), as torch's CyclicLR and OneCycleLR write
    /// `group["momentum"]` or `group["betas"][0]`. An out-of-range value or
    /// an optimizer without momentum is an error, and then nothing changes.
    fn set_momentum(&mut self, momentum: f64) -> Result<(), OptimError> {
        let _ = momentum;
        Err(OptimError::NoMomentum {
            optimizer: self.name(),
            reason: "the optimizer has no momentum or betas",
        })
    }
    /// A read-only view of `param`'s state (its buffers, step count and group
    /// rate), without copying; `None` for a parameter this optimizer does not
    /// hold or has not stepped yet, and for optimizers that do not expose it
    /// (the default).
    fn inspect_param(&self, _param: &Param) -> Option<ParamView<'_>> {
        None
    }
}

/// A rule running over parameter groups: what `Adam { .. }.build(params)` returns.
///
/// Memory: the state buffers are owned `Vec<f32>`s allocated once, at the
/// first step that sees a gradient for the parameter, then updated in place.
/// Parameters are updated in place through [`Param::update`]; if something
/// else still shares the parameter's storage (a graph built from it that is
/// still alive, or a gradient made from its value), that first write copies
/// it once (copy-on-write) so the other holder keeps the old value. Drop the
/// graph before `step` to avoid the copy.
#[derive(Debug, Clone)]
pub struct Optim<R: Rule> {
    config: R,
    groups: Vec<ParamGroup>,
    initial_lrs: Vec<f64>,
    states: Vec<Vec<Option<ParamState>>>,
    lr: f64,
}

impl<R: Rule> Optim<R> {
    /// Builds an optimizer over `groups` (each group's `None` fields take the
    /// config's values). Checks every hyper-parameter and that no parameter
    /// appears twice.
    pub fn new(config: R, groups: Vec<ParamGroup>) -> Result<Self, OptimError> {
        config.validate()?;
        let wd = config.weight_decay();
        let mut seen = HashSet::new();
        let mut resolved = Vec::with_capacity(groups.len());
        for (gi, g) in groups.into_iter().enumerate() {
            let lr = g.lr.unwrap_or(config.lr());
            check_lr(R::NAME, lr)?;
            let c = g.weight_decay.unwrap_or(wd.coefficient());
            wd.with_coefficient(c).validate(R::NAME)?;
            if config.row_sparse() && c != 0.0 {
                return Err(OptimError::InvalidHyper {
                    owner: R::NAME,
                    name: "weight_decay",
                    value: c,
                    reason: "a row-sparse optimizer has no weight decay (it would move every row)",
                });
            }
            for (i, p) in g.params.iter().enumerate() {
                config.buffer_layout(&p.shape())?;
                if !seen.insert(p.id()) {
                    return Err(OptimError::DuplicateParam {
                        optimizer: R::NAME,
                        param: format!("{p:?}"),
                        group: gi,
                        index: i,
                    });
                }
            }
            resolved.push(ParamGroup { params: g.params, lr: Some(lr), weight_decay: Some(c) });
        }
        let initial_lrs = resolved.iter().map(|g| g.lr.expect("resolved")).collect();
        let states = resolved.iter().map(|g| vec![None; g.params.len()]).collect();
        let lr = config.lr();
        Ok(Optim { config, groups: resolved, initial_lrs, states, lr })
    }

    /// The config (hyper-parameter defaults).
    pub fn config(&self) -> &R {
        &self.config
    }

    /// The state of parameter `index` of group `group` (`None` before its first gradient).
    pub fn param_state(&self, group: usize, index: usize) -> Option<&ParamState> {
        self.states.get(group)?.get(index)?.as_ref()
    }

    fn hyper(&self, gi: usize) -> GroupHyper {
        let g = &self.groups[gi];
        GroupHyper {
            lr: g.lr.expect("resolved"),
            weight_decay: self.config.weight_decay().with_coefficient(g.weight_decay.expect("resolved")),
        }
    }

    fn check(&self, grads: &Grads) -> Result<(), OptimError> {
        for (gi, group) in self.groups.iter().enumerate() {
            check_lr(R::NAME, group.lr.expect("resolved"))?;
            for (i, p) in group.params.iter().enumerate() {
                let Some(g) = grads.get(p) else { continue };
                if !p.update(|t| t.shape() == g.shape()) {
                    return Err(OptimError::GradShape {
                        optimizer: R::NAME,
                        group: gi,
                        index: i,
                        param: p.shape(),
                        grad: g.shape().to_vec(),
                    });
                }
                if self.config.row_sparse() && grads.rows(p).is_none() {
                    return Err(OptimError::DenseGrad {
                        optimizer: R::NAME,
                        param: format!("{p:?}"),
                        group: gi,
                        index: i,
                    });
                }
            }
        }
        Ok(())
    }
}

impl<R: Rule> Optimizer for Optim<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }

    fn step(&mut self, grads: &Grads) -> Result<(), OptimError> {
        self.check(grads)?;
        for gi in 0..self.groups.len() {
            let h = self.hyper(gi);
            for (i, p) in self.groups[gi].params.iter().enumerate() {
                let Some(g) = grads.get(p) else { continue };
                let owned;
                let gs = match g.as_slice() {
                    Some(s) => s,
                    None => {
                        owned = g.to_vec();
                        &owned
                    }
                };
                let config = &self.config;
                let shape = g.shape().to_vec();
                let slot = &mut self.states[gi][i];
                if slot.is_none() {
                    // the layout of this shape was accepted when the optimizer was built
                    let layout = config.buffer_layout(&shape)?;
                    let buffers = layout
                        .iter()
                        .enumerate()
                        .map(|(k, (_, s))| vec![config.buffer_init(k, h.lr); s.iter().product()])
                        .collect();
                    *slot = Some(ParamState { step: 0, buffers, cache: 0.0 });
                }
                let Some(st) = slot.as_mut() else { continue };
                st.step += 1;
                match grads.rows(p) {
                    // checked: a row-sparse rule has rows for every gradient
                    Some(rows) if config.row_sparse() => {
                        if !rows.is_empty() {
                            p.update(|t| update_rows(config, &h, st, &shape, t.as_slice_mut(), gs, rows));
                        }
                    }
                    _ => p.update(|t| config.update_shaped(&h, st, &shape, t.as_slice_mut(), gs)),
                }
            }
        }
        Ok(())
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
        let base = self.config.lr();
        for (g, &init) in self.groups.iter_mut().zip(&self.initial_lrs) {
            g.lr = Some(if base > 0.0 { lr * (init / base) } else { lr });
        }
    }

    fn param_groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    fn momentum(&self) -> Option<f64> {
        self.config.momentum()
    }

    fn set_momentum(&mut self, momentum: f64) -> Result<(), OptimError> {
        let mut c = self.config.clone();
        c.set_momentum(momentum)?;
        c.validate()?;
        self.config = c;
        Ok(())
    }

    fn inspect_param(&self, param: &Param) -> Option<ParamView<'_>> {
        let id = param.id();
        for (gi, group) in self.groups.iter().enumerate() {
            if let Some(i) = group.params.iter().position(|p| p.id() == id) {
                let st = self.states[gi][i].as_ref()?;
                let names = self.config.buffer_names();
                return Some(ParamView {
                    step: st.step,
                    lr: group.lr.expect("resolved"),
                    buffers: names.iter().zip(&st.buffers).map(|(n, b)| (*n, b.as_slice())).collect(),
                    adaptive: self.config.adaptive_step(),
                });
            }
        }
        None
    }

    fn state_dict(&self) -> StateDict {
        let mut sd = StateDict { optimizer: R::NAME.to_string(), ..Default::default() };
        sd.scalars.insert("lr".into(), self.lr);
        for (gi, group) in self.groups.iter().enumerate() {
            let pre = format!("param_groups.{gi}.");
            sd.scalars.insert(pre.clone() + "lr", group.lr.expect("resolved"));
            sd.scalars.insert(pre.clone() + "initial_lr", self.initial_lrs[gi]);
            sd.scalars.insert(pre.clone() + "weight_decay", group.weight_decay.expect("resolved"));
            sd.scalars.insert(pre + "params", group.params.len() as f64);
            for (i, p) in group.params.iter().enumerate() {
                let Some(st) = &self.states[gi][i] else { continue };
                let shape = p.shape();
                let key = format!("state.{gi}.{i}.");
                let step = nw_tensor::Tensor::from_vec(vec![st.step as f32], &[1]).expect("one element");
                sd.tensors.insert(key.clone() + "step", step);
                // the layout was accepted when the optimizer was built
                let Ok(layout) = self.config.buffer_layout(&shape) else { continue };
                for ((name, bshape), buf) in layout.iter().zip(&st.buffers) {
                    let t = nw_tensor::Tensor::from_vec(buf.clone(), bshape)
                        .expect("buffer has its layout's length");
                    sd.tensors.insert(key.clone() + name, t);
                }
            }
        }
        sd
    }

    fn load_state_dict(&mut self, sd: &StateDict) -> Result<(), OptimError> {
        let err = |reason: String| OptimError::State { owner: R::NAME, reason };
        if sd.optimizer != R::NAME {
            return Err(err(format!("state dict is for {:?}", sd.optimizer)));
        }
        let scalar = |k: &str| sd.scalar(k).ok_or_else(|| err(format!("missing scalar {k:?}")));
        let lr = scalar("lr")?;
        let ng = self.groups.len();
        if sd.scalars.contains_key(&format!("param_groups.{ng}.params")) {
            return Err(err(format!("state dict has more than {ng} groups")));
        }
        let mut used: HashSet<String> = HashSet::new();
        let mut hypers = Vec::with_capacity(ng);
        let mut states = Vec::with_capacity(ng);
        for (gi, group) in self.groups.iter().enumerate() {
            let pre = format!("param_groups.{gi}.");
            let n = scalar(&(pre.clone() + "params"))?;
            if n != group.params.len() as f64 {
                return Err(err(format!(
                    "group {gi} has {} parameters, state dict has {n}",
                    group.params.len()
                )));
            }
            let glr = scalar(&(pre.clone() + "lr"))?;
            let init = scalar(&(pre.clone() + "initial_lr"))?;
            let wd = scalar(&(pre + "weight_decay"))?;
            check_lr(R::NAME, glr)?;
            self.config.weight_decay().with_coefficient(wd).validate(R::NAME)?;
            hypers.push((glr, init, wd));
            let mut gstates = Vec::with_capacity(group.params.len());
            for (i, p) in group.params.iter().enumerate() {
                let key = format!("state.{gi}.{i}.");
                let Some(step) = sd.tensor(&(key.clone() + "step")) else {
                    gstates.push(None);
                    continue;
                };
                used.insert(key.clone() + "step");
                let step = step.item().map_err(|e| err(format!("{key}step: {e}")))?;
                if !(step >= 0.0 && step.fract() == 0.0) {
                    return Err(err(format!("{key}step = {step} is not a step count")));
                }
                let pshape = p.shape();
                let layout = self.config.buffer_layout(&pshape)?;
                let mut buffers = Vec::with_capacity(layout.len());
                for (name, shape) in &layout {
                    let k = key.clone() + name;
                    let t = sd.tensor(&k).ok_or_else(|| err(format!("missing tensor {k:?}")))?;
                    used.insert(k.clone());
                    if t.shape() != shape.as_slice() {
                        let want =
                            if *shape == pshape { String::new() } else { format!(" (expected {shape:?})") };
                        return Err(err(format!(
                            "{k} has shape {:?}, the parameter {pshape:?}{want}",
                            t.shape()
                        )));
                    }
                    buffers.push(t.to_vec());
                }
                let mut st = ParamState { step: step as u64, buffers, cache: 0.0 };
                self.config.restore(&mut st);
                gstates.push(Some(st));
            }
            states.push(gstates);
        }
        if used.len() != sd.tensors.len() {
            let extra: Vec<&String> = sd.tensors.keys().filter(|k| !used.contains(k.as_str())).collect();
            return Err(err(format!("unexpected tensors {extra:?}")));
        }
        for (gi, (glr, init, wd)) in hypers.into_iter().enumerate() {
            self.groups[gi].lr = Some(glr);
            self.groups[gi].weight_decay = Some(wd);
            self.initial_lrs[gi] = init;
        }
        self.states = states;
        self.lr = lr;
        Ok(())
    }
}

/// A row-sparse rule's step ([`Rule::row_sparse`]): the axis-0 `rows` of
/// `p`, `g` and every buffer (each of the parameter's shape `shape`) gathered
/// into contiguous slices, [`Rule::update`] on them, and `p` and the buffers
/// written back; the other rows are not touched. `rows` are sorted, unique
/// and below `shape[0]` (a [`Grads`] guarantees it).
fn update_rows<R: Rule>(
    config: &R,
    h: &GroupHyper,
    st: &mut ParamState,
    shape: &[usize],
    p: &mut [f32],
    g: &[f32],
    rows: &[usize],
) {
    let width: usize = shape.iter().skip(1).product();
    let gather = |src: &[f32]| {
        let mut out = Vec::with_capacity(rows.len() * width);
        for &r in rows {
            out.extend_from_slice(&src[r * width..(r + 1) * width]);
        }
        out
    };
    let scatter = |dst: &mut [f32], src: &[f32]| {
        for (&r, s) in rows.iter().zip(src.chunks_exact(width.max(1))) {
            dst[r * width..(r + 1) * width].copy_from_slice(&s[..width]);
        }
    };
    let mut sub = ParamState {
        step: st.step,
        buffers: st.buffers.iter().map(|b| gather(b)).collect(),
        cache: st.cache,
    };
    let mut ps = gather(p);
    config.update(h, &mut sub, &mut ps, &gather(g));
    scatter(p, &ps);
    for (b, s) in st.buffers.iter_mut().zip(&sub.buffers) {
        scatter(b, s);
    }
    st.cache = sub.cache;
}

/// A [`Rule`]'s `momentum` and `set_momentum` for the Adam family, whose
/// momentum is `betas.0` (what `cycle_momentum` of CyclicLR and OneCycleLR
/// cycles, as torch does for optimizers with `betas`).
macro_rules! beta1_is_momentum {
    () => {
        fn momentum(&self) -> Option<f64> {
            Some(self.betas.0)
        }

        fn set_momentum(&mut self, momentum: f64) -> Result<(), OptimError> {
            self.betas.0 = momentum;
            Ok(())
        }
    };
}

/// Adds `build` and `build_groups` to a rule's config struct.
macro_rules! impl_build {
    ($t:ty) => {
        impl $t {
            /// An optimizer over `params` (one group with this config's defaults).
            pub fn build(
                self,
                params: Vec<nw_autograd::Param>,
            ) -> Result<$crate::Optim<$t>, $crate::OptimError> {
                $crate::Optim::new(self, vec![$crate::ParamGroup::new(params)])
            }

            /// An optimizer over parameter groups, each overriding the defaults it names.
            pub fn build_groups(
                self,
                groups: Vec<$crate::ParamGroup>,
            ) -> Result<$crate::Optim<$t>, $crate::OptimError> {
                $crate::Optim::new(self, groups)
            }
        }
    };
}
pub(crate) use beta1_is_momentum;
pub(crate) use impl_build;

/// All parameters of an optimizer, in group order (for clipping or penalties).
pub fn all_params(opt: &dyn Optimizer) -> Vec<Param> {
    opt.param_groups().iter().flat_map(|g| g.params.iter().cloned()).collect()
}
