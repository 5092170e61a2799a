//! One trait for every stateful part of a run.
//!
//! A [`Checkpoint`] is a map of named, typed sections; each component writes
//! and reads its own through [`Stateful`]: the model's parameters and
//! buffers, the optimizer, the schedule, early stopping, the pruner's masks,
//! the weight monitor's history, the random streams and the metrics history.
//! State tied to parameters is stored by parameter name or position (never
//! by in-memory ids), so a rebuilt run can take it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use nw_autograd::Param;
use nw_nn::{Module, Sequential};
use nw_optim::Optimizer;
use nw_reg::EarlyStopping;
use nw_reg::prune::Pruner;
use nw_tensor::{Rng, Tensor};

use crate::checkpoint::{Checkpoint, NamedTensor, Section};
use crate::error::{Result, TrainError};
use crate::trainer::{EpochRecord, LrPolicy};

/// What a component may need to place its state: the run's named parameters.
pub struct StateContext<'a> {
    /// The model's parameters with their state_dict names, in model order.
    pub params: &'a [(String, Param)],
}

/// A part of a run whose state a checkpoint carries.
pub trait Stateful {
    /// Writes this component's sections into `ck`.
    fn save_state(&self, ctx: &StateContext, ck: &mut Checkpoint);

    /// Reads this component's sections from `ck` (a missing required
    /// section, or one that does not fit, is a [`TrainError::Mismatch`]).
    fn load_state(&mut self, ctx: &StateContext, ck: &Checkpoint) -> Result<()>;
}

pub(crate) fn mismatch(m: impl Into<String>) -> TrainError {
    TrainError::Mismatch(format!("checkpoint does not fit this run: {}", m.into()))
}

fn section<'a>(ck: &'a Checkpoint, name: &str) -> Result<&'a Section> {
    ck.section(name).ok_or_else(|| mismatch(format!("no `{name}` section")))
}

fn wrong(name: &str, s: &Section) -> TrainError {
    mismatch(format!("section `{name}` holds {}", s.kind()))
}

fn tensors<'a>(ck: &'a Checkpoint, name: &str) -> Result<&'a [NamedTensor]> {
    match section(ck, name)? {
        Section::Tensors(t) => Ok(t),
        s => Err(wrong(name, s)),
    }
}

/// A saved buffer tensor as the live buffer's type: counters (BatchNorm's
/// `num_batches_tracked`, i64) are stored as f32, exact up to 2^24; a
/// non-integral or non-finite value for one is a mismatch.
fn buffer_value(name: &str, dtype: nw_nn::Dtype, t: Tensor) -> Result<nw_nn::BufferValue> {
    match dtype {
        nw_nn::Dtype::I64 => {
            let v = t.to_vec();
            if let Some(bad) = v.iter().find(|x| !x.is_finite() || x.fract() != 0.0) {
                return Err(mismatch(format!("{name}: counter value {bad} is not an integer")));
            }
            Ok(nw_nn::BufferValue::I64 {
                shape: t.shape().to_vec(),
                data: v.iter().map(|&x| x as i64).collect(),
            })
        }
        _ => Ok(nw_nn::BufferValue::F32(t)),
    }
}

impl Stateful for Sequential {
    /// Sections `model` (parameters) and `buffers` (BatchNorm statistics, ...).
    fn save_state(&self, ctx: &StateContext, ck: &mut Checkpoint) {
        let params = ctx.params.iter().map(|(n, p)| NamedTensor::new(n.clone(), &p.value())).collect();
        ck.insert("model", Section::Tensors(params));
        let buffers =
            self.named_buffers().into_iter().map(|(n, b)| NamedTensor::new(n, &b.tensor())).collect();
        ck.insert("buffers", Section::Tensors(buffers));
    }

    fn load_state(&mut self, ctx: &StateContext, ck: &Checkpoint) -> Result<()> {
        let by_name: HashMap<&str, &NamedTensor> =
            tensors(ck, "model")?.iter().map(|t| (t.name.as_str(), t)).collect();
        // Check every tensor before changing anything.
        let mut values = Vec::with_capacity(ctx.params.len());
        for (n, p) in ctx.params {
            let t = by_name.get(n.as_str()).ok_or_else(|| mismatch(format!("no tensor {n}")))?;
            if t.shape != p.shape() {
                return Err(mismatch(format!(
                    "{n} has shape {:?} in the checkpoint, {:?} in the model",
                    t.shape,
                    p.shape()
                )));
            }
            values.push(t.to_tensor().map_err(|e| mismatch(format!("{n}: {e}")))?);
        }
        if by_name.len() != ctx.params.len() {
            return Err(mismatch(format!(
                "{} parameters in the checkpoint, {} in the model",
                by_name.len(),
                ctx.params.len()
            )));
        }
        let bufs: HashMap<&str, &NamedTensor> =
            tensors(ck, "buffers")?.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut buffer_values = Vec::new();
        for (n, b) in self.named_buffers() {
            let t = bufs.get(n.as_str()).ok_or_else(|| mismatch(format!("no buffer {n}")))?;
            buffer_values.push((n.clone(), b, t.to_tensor().map_err(|e| mismatch(format!("{n}: {e}")))?));
        }
        for ((_, p), v) in ctx.params.iter().zip(values) {
            p.set(v)?;
        }
        for (n, b, t) in buffer_values {
            b.set(buffer_value(&n, b.dtype(), t)?).map_err(|e| mismatch(format!("{n}: {e}")))?;
        }
        Ok(())
    }
}

impl Stateful for Box<dyn Optimizer> {
    /// Section `optimizer`.
    fn save_state(&self, _: &StateContext, ck: &mut Checkpoint) {
        ck.insert("optimizer", Section::Optimizer(self.state_dict()));
    }

    fn load_state(&mut self, _: &StateContext, ck: &Checkpoint) -> Result<()> {
        match section(ck, "optimizer")? {
            Section::Optimizer(sd) => Ok(self.load_state_dict(sd).map_err(|e| mismatch(e.to_string()))?),
            s => Err(wrong("optimizer", s)),
        }
    }
}

impl Stateful for Option<LrPolicy> {
    /// Section `schedule`.
    fn save_state(&self, _: &StateContext, ck: &mut Checkpoint) {
        ck.insert("schedule", Section::Schedule(self.clone()));
    }

    fn load_state(&mut self, _: &StateContext, ck: &Checkpoint) -> Result<()> {
        match section(ck, "schedule")? {
            Section::Schedule(p) => {
                // The saved policy (config and position) replaces the run's;
                // a run built with a policy of another kind does not fit.
                let same_kind = match (&*self, p) {
                    (Some(a), Some(b)) => std::mem::discriminant(a) == std::mem::discriminant(b),
                    _ => true,
                };
                if !same_kind {
                    return Err(mismatch("the saved schedule is of another kind than the run's"));
                }
                // The saved settings get the checks a configured schedule gets
                // (a step size of 0 in a file would divide by zero later).
                let checked = match p {
                    Some(LrPolicy::PerStep(s) | LrPolicy::PerEpoch(s)) => {
                        nw_optim::schedule::Scheduler::new(s.schedule().clone(), s.base_lr()).map(|_| ())
                    }
                    Some(LrPolicy::Plateau(r)) => {
                        nw_optim::schedule::ReduceLrOnPlateau::new(r.config().clone(), r.lr()).map(|_| ())
                    }
                    None => Ok(()),
                };
                checked.map_err(|e| mismatch(format!("the saved schedule: {e}")))?;
                *self = p.clone();
                Ok(())
            }
            s => Err(wrong("schedule", s)),
        }
    }
}

impl Stateful for Option<EarlyStopping> {
    /// Section `early_stopping` (when enabled).
    fn save_state(&self, _: &StateContext, ck: &mut Checkpoint) {
        if let Some(es) = self {
            ck.insert("early_stopping", Section::EarlyStopping(es.state()));
        }
    }

    fn load_state(&mut self, ctx: &StateContext, ck: &Checkpoint) -> Result<()> {
        let Some(es) = self else { return Ok(()) };
        match section(ck, "early_stopping")? {
            Section::EarlyStopping(st) => {
                let params: Vec<Param> = ctx.params.iter().map(|(_, p)| p.clone()).collect();
                es.load_state(st, &params).map_err(|e| mismatch(e.to_string()))
            }
            s => Err(wrong("early_stopping", s)),
        }
    }
}

impl Stateful for Option<Pruner> {
    /// Section `masks`: each pruned parameter's mask under the parameter's name.
    fn save_state(&self, ctx: &StateContext, ck: &mut Checkpoint) {
        if let Some(pr) = self {
            let masks = ctx
                .params
                .iter()
                .filter_map(|(n, p)| pr.mask(p).map(|m| NamedTensor::new(n.clone(), m)))
                .collect();
            ck.insert("masks", Section::Tensors(masks));
        }
    }

    fn load_state(&mut self, ctx: &StateContext, ck: &Checkpoint) -> Result<()> {
        let Some(list) = ck.section("masks") else { return Ok(()) };
        let Section::Tensors(list) = list else { return Err(wrong("masks", list)) };
        let by_name: HashMap<&str, &Param> = ctx.params.iter().map(|(n, p)| (n.as_str(), p)).collect();
        let mut pr = Pruner::new();
        for t in list {
            let p = by_name
                .get(t.name.as_str())
                .ok_or_else(|| mismatch(format!("mask of unknown {}", t.name)))?;
            let m = t.to_tensor().map_err(|e| mismatch(format!("mask {}: {e}", t.name)))?;
            pr.set_mask(p, m).map_err(|e| mismatch(format!("mask {}: {e}", t.name)))?;
        }
        *self = Some(pr);
        Ok(())
    }
}

impl Stateful for Vec<Arc<Mutex<Rng>>> {
    /// Section `rngs`: the model's random streams (dropout), in model order.
    fn save_state(&self, _: &StateContext, ck: &mut Checkpoint) {
        let states = self.iter().map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).state()).collect();
        ck.insert("rngs", Section::Rngs(states));
    }

    fn load_state(&mut self, _: &StateContext, ck: &Checkpoint) -> Result<()> {
        match section(ck, "rngs")? {
            Section::Rngs(states) => {
                if states.len() != self.len() {
                    return Err(mismatch(format!(
                        "{} random streams saved, the model has {}",
                        states.len(),
                        self.len()
                    )));
                }
                for (r, s) in self.iter().zip(states) {
                    *r.lock().unwrap_or_else(|e| e.into_inner()) = Rng::from_state(*s);
                }
                Ok(())
            }
            s => Err(wrong("rngs", s)),
        }
    }
}

impl Stateful for Vec<EpochRecord> {
    /// Section `history`.
    fn save_state(&self, _: &StateContext, ck: &mut Checkpoint) {
        ck.insert("history", Section::History(self.clone()));
    }

    fn load_state(&mut self, _: &StateContext, ck: &Checkpoint) -> Result<()> {
        match section(ck, "history")? {
            Section::History(h) => {
                *self = h.clone();
                Ok(())
            }
            s => Err(wrong("history", s)),
        }
    }
}

impl Stateful for Option<crate::averaged::Averaged> {
    /// Section `average` (when the run averages weights).
    fn save_state(&self, _: &StateContext, ck: &mut Checkpoint) {
        if let Some(a) = self {
            ck.insert("average", Section::Average(a.clone()));
        }
    }

    fn load_state(&mut self, ctx: &StateContext, ck: &Checkpoint) -> Result<()> {
        let Some(a) = self else { return Ok(()) };
        match section(ck, "average")? {
            Section::Average(saved) => {
                if saved.kind != a.kind {
                    return Err(mismatch(format!(
                        "the saved weight average is {:?}, this run's {:?}",
                        saved.kind, a.kind
                    )));
                }
                let shapes: Vec<Vec<usize>> = ctx.params.iter().map(|(_, p)| p.shape()).collect();
                saved
                    .average
                    .check_restored(&shapes)
                    .map_err(|e| mismatch(format!("weight average: {e}")))?;
                *a = saved.clone();
                Ok(())
            }
            s => Err(wrong("average", s)),
        }
    }
}
