//! The training loop.
//!
//! One optimizer step is [`Trainer::compute_grads`] (forward the batch, loss
//! plus penalty terms, backward; or the same over micro-shards summed in a
//! fixed tree, see [`crate::shard`]) then [`Trainer::apply_grads`]: mask pruned gradients, clip, check for non-finite
//! values, step the optimizer, re-apply pruning masks and max-norm, record
//! the weight monitor, advance a per-step schedule. At each epoch end:
//! evaluate on the validation set, advance per-epoch or plateau schedules,
//! consult early stopping.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nw_autograd::{Grads, Param, Var, no_grad};
use nw_data::{BatchLoader, Dataset, Targets};
use nw_nn::{Module, Sequential, loss};
use nw_optim::Optimizer;
use nw_optim::schedule::{ReduceLrOnPlateau, Scheduler};
use nw_reg::{EarlyStopping, MaxNorm, PenaltySet, prune::Pruner};
use nw_tensor::{Rng, Tensor};
use serde::{Deserialize, Serialize};

use crate::averaged::AverageKind;
use crate::checkpoint::{Checkpoint, MonitorState, PartialEpoch, Progress, Section};
use crate::error::{Result, TrainError};
use crate::guard::{check_finite, check_finite_gradients};
use crate::metrics::{ClassTally, Metrics};
use crate::monitor::WeightMonitor;
use crate::state::{StateContext, Stateful};

/// The objective minimised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LossKind {
    /// Cross-entropy over class indices (logits in), with label smoothing.
    CrossEntropy {
        /// torch's `label_smoothing`.
        label_smoothing: f32,
    },
    /// Mean squared error against value targets.
    Mse,
    /// Mean absolute error.
    L1,
    /// Huber loss with threshold `delta`.
    Huber {
        /// Threshold.
        delta: f32,
    },
}

impl LossKind {
    /// The mean loss of `out` against `targets`.
    pub fn compute(&self, out: &Var, targets: &Targets) -> Result<Var> {
        let mean = loss::Reduction::Mean;
        Ok(match (self, targets) {
            (LossKind::CrossEntropy { label_smoothing }, Targets::Classes { labels, .. }) => {
                loss::cross_entropy(out, labels, *label_smoothing, mean)?
            }
            (LossKind::Mse, Targets::Values(t)) => loss::mse_loss(out, &Var::constant(t.clone()), mean)?,
            (LossKind::L1, Targets::Values(t)) => loss::l1_loss(out, &Var::constant(t.clone()), mean)?,
            (LossKind::Huber { delta }, Targets::Values(t)) => {
                loss::huber_loss(out, &Var::constant(t.clone()), *delta, mean)?
            }
            (kind, _) => {
                return Err(TrainError::Config(format!(
                    "loss {kind:?} does not fit the targets (class losses need class labels, regression losses values)"
                )));
            }
        })
    }
}

/// How the learning rate moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LrPolicy {
    /// The schedule advances after every optimizer step.
    PerStep(Scheduler),
    /// The schedule advances after every epoch.
    PerEpoch(Scheduler),
    /// Reduce on plateau of the validation loss (training loss without a validation set).
    Plateau(ReduceLrOnPlateau),
}

impl LrPolicy {
    fn lr(&self) -> f64 {
        match self {
            LrPolicy::PerStep(s) | LrPolicy::PerEpoch(s) => s.lr(),
            LrPolicy::Plateau(p) => p.lr(),
        }
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: u64,
    /// Optimizer steps taken so far.
    pub step: u64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Mean training loss over the epoch's batches (weighted by batch size).
    pub train_loss: f64,
    /// Training accuracy over the epoch (classification).
    pub train_accuracy: Option<f64>,
    /// Validation metrics, when a validation set was given.
    pub validation: Option<Metrics>,
    /// Wall time of the epoch in seconds (not part of any result).
    pub seconds: f64,
}

/// Everything a step needs besides the model and the optimizer.
#[derive(Default)]
pub struct Regularization {
    /// Penalty terms added to the loss, per parameter group.
    pub penalties: Option<PenaltySet>,
    /// Max-norm constraint applied after each step.
    pub max_norm: Option<MaxNorm>,
    /// Pruning masks kept through every step.
    pub pruner: Option<Pruner>,
    /// Clip the global L2 norm of the gradients to this value.
    pub clip_grad_norm: Option<f64>,
}

/// What [`Trainer::compute_grads`] hands to [`Trainer::apply_grads`].
pub struct StepGrads {
    /// The batch's gradients (the mean loss over the whole batch).
    pub grads: Grads,
    /// The batch's mean data loss (without penalties), before the update.
    pub data_loss: f32,
    /// The loss the optimizer minimises: the data loss plus the penalties.
    pub objective: f64,
    /// Correct predictions in the batch (classification).
    pub correct: Option<usize>,
    /// Post-ReLU activations for the monitor's dead-unit statistics.
    pub acts: HashMap<String, Tensor>,
}

/// A model with its optimizer and everything that decides how it trains.
pub struct Trainer {
    /// The model.
    pub model: Sequential,
    /// The optimizer over the model's parameters.
    pub optimizer: Box<dyn Optimizer>,
    /// The learning-rate policy.
    pub lr_policy: Option<LrPolicy>,
    /// The loss.
    pub loss: LossKind,
    /// Regularizers.
    pub reg: Regularization,
    /// Early stopping on the validation loss.
    pub early_stopping: Option<EarlyStopping>,
    /// The weight monitor.
    pub monitor: WeightMonitor,
    /// Generators of the model's stochastic layers (saved in checkpoints).
    pub rngs: Vec<Arc<Mutex<Rng>>>,
    /// The fewest rows a training batch or micro-shard may hold, and the
    /// layer that needs them ([`crate::models::BuiltModel::min_rows`]);
    /// checked against the loader's batches when a run is built.
    pub min_rows: (usize, Option<usize>),
    /// Completed epochs.
    pub epoch: u64,
    /// Optimizer steps taken.
    pub step: u64,
    /// One record per completed epoch.
    pub history: Vec<EpochRecord>,
    /// The first warning of each kind about each tensor, in the order
    /// raised (later ones of the same kind and tensor are not kept: a long
    /// run would otherwise grow this without bound).
    pub warnings: Vec<crate::monitor::Warning>,
    /// Where the run's log files stood at their last flush
    /// ([`crate::runlog::RunLog::flush`]): saved in checkpoints (section
    /// `logs`), so that a resumed run cuts them back to that point. `None`
    /// while nothing has been streamed (then `history` and the monitor hold
    /// the whole run).
    pub logs: Option<crate::runlog::LogOffsets>,
    /// The directory of the checkpoint this trainer was restored from (not
    /// saved): where a run resumed into another directory finds the first
    /// part of its log files.
    pub logs_dir: Option<std::path::PathBuf>,
    /// Drop each epoch's record and the monitor's records once the epoch is
    /// done instead of keeping them, in a run that writes no files (the
    /// ranks other than 0 of a distributed run): memory stays flat.
    pub discard_logs: bool,
    /// The running sums of an epoch stopped at a step boundary (resumed by the next `train_epoch`).
    pub partial: Option<PartialEpoch>,
    /// When set (e.g. by a SIGINT handler), `train_epoch` stops at the next
    /// step boundary with [`TrainError::Interrupted`], keeping `partial`.
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// How a step cuts its batch into micro-shards and where the shards
    /// are computed (one process, or ranks of a collective).
    pub sharding: crate::shard::Sharding,
    /// Names of the frozen parameters (`train.freeze`): the optimizer was
    /// built without them, and their gradients are dropped before clipping.
    pub frozen: std::collections::BTreeSet<String>,
    /// The weight average (`train.ema`, `train.swa_start`), when configured.
    pub average: Option<crate::averaged::Averaged>,
    /// SWALR in place of the schedule once SWA has started (`train.swa_lr`).
    pub swa_lr: Option<crate::averaged::SwaLr>,
    warned: std::collections::HashSet<(std::mem::Discriminant<crate::monitor::Warning>, String)>,
    named: Vec<(String, Param)>,
    relu_after: HashMap<usize, String>,
}

impl Trainer {
    /// A trainer for `model` with `optimizer` (built over `model.parameters()`).
    pub fn new(model: Sequential, optimizer: Box<dyn Optimizer>, loss: LossKind) -> Self {
        let named = model.named_parameters();
        // Dead-unit tracking: a ReLU at position i follows the layer whose
        // parameters are named "{i-1}.weight".
        let mut relu_after = HashMap::new();
        for i in 1..model.len() {
            if model.get(i).is_some_and(|m| m.describe().starts_with("ReLU")) {
                let w = format!("{}.weight", i - 1);
                if named.iter().any(|(n, _)| *n == w) {
                    relu_after.insert(i, w);
                }
            }
        }
        Trainer {
            model,
            optimizer,
            lr_policy: None,
            loss,
            reg: Regularization::default(),
            early_stopping: None,
            monitor: WeightMonitor::default(),
            rngs: Vec::new(),
            min_rows: (1, None),
            epoch: 0,
            step: 0,
            history: Vec::new(),
            warnings: Vec::new(),
            logs: None,
            logs_dir: None,
            discard_logs: false,
            partial: None,
            stop: None,
            sharding: Default::default(),
            frozen: Default::default(),
            average: None,
            swa_lr: None,
            warned: Default::default(),
            named,
            relu_after,
        }
    }

    /// The model's parameters with their state_dict names.
    pub fn named_parameters(&self) -> &[(String, Param)] {
        &self.named
    }

    pub(crate) fn params(&self) -> Vec<Param> {
        self.named.iter().map(|(_, p)| p.clone()).collect()
    }

    /// The parameters the optimizer updates (all but the frozen ones).
    pub(crate) fn trainable(&self) -> Vec<Param> {
        self.named.iter().filter(|(n, _)| !self.frozen.contains(n)).map(|(_, p)| p.clone()).collect()
    }

    /// `grads` without the frozen parameters' entries.
    fn drop_frozen(&self, grads: Grads) -> Grads {
        drop_frozen(&self.named, &self.frozen, grads)
    }

    /// Forward pass that also returns the post-ReLU activations keyed by the
    /// preceding layer's weight name (for dead-unit statistics).
    pub(crate) fn forward_traced(&self, x: &Var, trace: bool) -> Result<(Var, HashMap<String, Tensor>)> {
        let mut acts = HashMap::new();
        let h = self.forward_layers(x, 0..self.model.len(), trace, &mut acts)?;
        Ok((h, acts))
    }

    /// The model's children `layers` applied to `x` (the stages of
    /// synchronised batch norm, `crate::sync_bn`), recording the traced
    /// activations of those children into `acts`.
    pub(crate) fn forward_layers(
        &self,
        x: &Var,
        layers: std::ops::Range<usize>,
        trace: bool,
        acts: &mut HashMap<String, Tensor>,
    ) -> Result<Var> {
        let mut h = x.clone();
        for i in layers {
            let layer = self.model.get(i).expect("index below len");
            h = layer.forward(&h)?;
            if trace && let Some(name) = self.relu_after.get(&i) {
                acts.insert(name.clone(), h.value().clone());
            }
        }
        Ok(h)
    }

    /// The step of an optimizer that re-evaluates the loss (LBFGS): a closure
    /// that runs forward, loss (with penalties), backward, gradient masks and
    /// clipping on this batch at the current weights. Its first call returns
    /// `(objective, grads)`, already computed at these weights.
    fn closure_step(&mut self, x: &Tensor, y: &Targets, objective: f64, grads: Grads) -> Result<()> {
        let params = self.trainable();
        let (model, loss, reg, named, frozen) =
            (&self.model, &self.loss, &self.reg, &self.named, &self.frozen);
        let loss_only = self.optimizer.wants_loss_only();
        let eval = || -> Result<(f64, Grads)> {
            if loss_only {
                // The gradient-free searches read the objective only: no graph.
                return no_grad(|| -> Result<(f64, Grads)> {
                    let out = model.forward(&Var::constant(x.clone()))?;
                    let mut l = loss.compute(&out, y)?;
                    if let Some(p) = &reg.penalties {
                        l = l.add(&p.loss()?)?;
                    }
                    Ok((l.value().item()? as f64, Grads::default()))
                });
            }
            let out = model.forward(&Var::constant(x.clone()))?;
            let mut l = loss.compute(&out, y)?;
            if let Some(p) = &reg.penalties {
                l = l.add(&p.loss()?)?;
            }
            let v = l.value().item()? as f64;
            let mut g = drop_frozen(named, frozen, l.backward()?);
            drop((l, out));
            if let Some(pr) = &reg.pruner {
                pr.mask_grads(&params, &mut g)?;
            }
            if let Some(max) = reg.clip_grad_norm {
                nw_optim::clip::clip_grad_norm(&params, &mut g, max, 2.0, false)?;
            }
            Ok((v, g))
        };
        let mut first = Some((objective, grads));
        self.optimizer.step_closure(&mut || match first.take() {
            Some(f) => Ok(f),
            None => eval().map_err(|e| nw_optim::OptimError::Closure(e.to_string())),
        })?;
        Ok(())
    }

    /// One optimizer step on one batch; returns the batch's loss (before the
    /// update) and the number of correct predictions (classification).
    pub fn train_step(&mut self, x: &Tensor, y: &Targets) -> Result<(f32, Option<usize>)> {
        self.step_inner(x, y, false)
    }

    /// [`Trainer::train_step`], telling the monitor whether this is an epoch's last step:
    /// [`Trainer::compute_grads`], then [`Trainer::apply_grads`].
    fn step_inner(&mut self, x: &Tensor, y: &Targets, epoch_end: bool) -> Result<(f32, Option<usize>)> {
        self.model.train();
        let step = self.step + 1;
        let trace = self.monitor.wants(step, epoch_end) && !self.relu_after.is_empty();
        let computed = self.compute_grads(x, y, step, trace)?;
        self.apply_grads(step, epoch_end, computed, Some((x, y)))
    }

    /// The gradients of step `step` on batch `(x, y)`: with one micro-shard
    /// and no collective, one forward and backward over the whole batch (the
    /// original loop, unchanged bits); otherwise the micro-shard path of
    /// [`crate::shard`] (each shard's mean loss scaled by its share of the
    /// batch, gradients summed in the fixed tree, across ranks if any).
    pub fn compute_grads(&mut self, x: &Tensor, y: &Targets, step: u64, trace: bool) -> Result<StepGrads> {
        if self.sharding.is_sharded() {
            return crate::shard::compute(self, x, y, step, trace);
        }
        let (out, acts) = self.forward_traced(&Var::constant(x.clone()), trace)?;
        let correct = count_correct(out.value(), y)?;
        let mut l = self.loss.compute(&out, y)?;
        let data_loss = l.value().item()?;
        if let Some(p) = &self.reg.penalties {
            l = l.add(&p.loss()?)?;
        }
        let objective = l.value().item()? as f64;
        let grads = l.backward()?;
        Ok(StepGrads { grads, data_loss, objective, correct, acts })
    }

    /// Applies step `step`'s gradients: mask pruned gradients, clip, check
    /// for non-finite values, optimizer step, pruning and max-norm, monitor,
    /// per-step schedule. Returns the batch loss and correct count. An
    /// optimizer that re-evaluates the loss inside its step (LBFGS) gets a
    /// closure over `batch`, the step's whole batch.
    pub fn apply_grads(
        &mut self,
        step: u64,
        epoch_end: bool,
        computed: StepGrads,
        batch: Option<(&Tensor, &Targets)>,
    ) -> Result<(f32, Option<usize>)> {
        let StepGrads { grads, data_loss, objective, correct, acts } = computed;
        let mut grads = self.drop_frozen(grads);
        let params = self.trainable();
        if let Some(pr) = &self.reg.pruner {
            pr.mask_grads(&params, &mut grads)?;
        }
        let mut clip = None;
        if let Some(max) = self.reg.clip_grad_norm {
            let total_norm = nw_optim::clip::clip_grad_norm(&params, &mut grads, max, 2.0, false)?;
            clip = Some(crate::monitor::ClipInfo { total_norm, max_norm: max });
        }
        check_finite_gradients(step, data_loss, &self.named, &grads)?;
        self.monitor.before_step(step, epoch_end, &self.named);
        if self.optimizer.wants_closure() {
            let Some((x, y)) = batch.filter(|_| !self.sharding.is_sharded()) else {
                return Err(TrainError::Config(format!(
                    "optim.name = {}: it re-evaluates the whole batch inside each step, which needs train.accumulate = 1 and no train.distributed",
                    self.optimizer.name()
                )));
            };
            self.closure_step(x, y, objective, grads.clone())?;
        } else {
            self.optimizer.step(&grads)?;
        }
        if let Some(pr) = &self.reg.pruner {
            pr.apply(&params)?;
        }
        if let Some(mn) = &self.reg.max_norm {
            // Max-norm constrains the rows of weight matrices and kernels, not biases or norms.
            let weights: Vec<Param> = params.iter().filter(|p| p.shape().len() >= 2).cloned().collect();
            mn.apply(&weights)?;
        }
        check_finite(step, data_loss, &self.named, &Grads::new())?;
        if self.average.as_ref().is_some_and(|a| matches!(a.kind, AverageKind::Ema { .. })) {
            self.update_average()?;
        }
        self.step = step;
        // Monitor hook: the rate this step used, clipping, the optimizer's buffers.
        let ctx = crate::monitor::StepContext {
            lr: self.optimizer.lr(),
            clip,
            optimizer: Some(self.optimizer.as_ref()),
        };
        self.monitor.after_step(step, self.epoch, &self.named, &grads, &acts, &ctx);
        // The warnings that read an update's size as a learning-rate problem
        // do not apply to a gradient-free search (GA, PSO): it keeps the
        // weights when no candidate is better, and its moves are not lr x grad.
        let search = self.optimizer.wants_loss_only();
        for w in self.monitor.take_warnings() {
            use crate::monitor::Warning;
            if search
                && matches!(
                    w,
                    Warning::UpdateTooLarge { .. } | Warning::UpdateTooSmall { .. } | Warning::Frozen { .. }
                )
            {
                continue;
            }
            // Each kind of warning about each tensor is logged and kept once per run.
            if self.warned.insert((std::mem::discriminant(&w), w.tensor().to_string())) {
                tracing::warn!("{w}");
                self.warnings.push(w);
            }
        }
        if let Some(LrPolicy::PerStep(s)) = &mut self.lr_policy {
            s.step()?;
            self.optimizer.set_lr(s.lr());
        }
        self.sync_momentum()?;
        Ok((data_loss, correct))
    }

    /// One pass over `loader`'s batches for the next epoch. `on_batch` sees
    /// (batch index, batches in the epoch, batch loss) after every step.
    pub fn train_epoch(
        &mut self,
        loader: &BatchLoader,
        validation: Option<&Dataset>,
        on_batch: &mut dyn FnMut(usize, usize, f32),
    ) -> Result<EpochRecord> {
        let started = Instant::now();
        let e = self.epoch;
        let n_batches = loader.batches_per_epoch();
        let p = self.partial.take().unwrap_or_default();
        let (mut loss_sum, mut seen, mut correct, mut counted) = (p.loss_sum, p.seen, p.correct, p.counted);
        for (i, batch) in loader.epoch(e).enumerate().skip(p.batches) {
            if let Some(flag) = &self.stop
                && flag.load(std::sync::atomic::Ordering::SeqCst)
            {
                self.partial = Some(PartialEpoch { batches: i, loss_sum, seen, correct, counted });
                return Err(TrainError::Interrupted { step: self.step, checkpoint: Default::default() });
            }
            let b = batch.x.shape()[0];
            let (l, c) = self.step_inner(&batch.x, &batch.y, i + 1 == n_batches)?;
            loss_sum += l as f64 * b as f64;
            seen += b;
            if let Some(c) = c {
                correct += c;
                counted = true;
            }
            on_batch(i, n_batches, l);
        }
        self.epoch += 1;
        if let Some(AverageKind::Swa { start }) = self.average.as_ref().map(|a| a.kind)
            && self.epoch >= start
        {
            self.update_average()?;
            if let Some(swa) = self.swa_lr {
                self.switch_to_swalr(swa)?;
            }
        }
        let validation = match validation {
            Some(v) => Some(self.with_averaged(Some(loader), |t| t.evaluate(v, 1024))?),
            None => None,
        };
        let train_loss = if seen > 0 { loss_sum / seen as f64 } else { f64::NAN };
        let monitored = validation.as_ref().map_or(train_loss, |m| m.loss);
        match &mut self.lr_policy {
            Some(LrPolicy::PerEpoch(s)) => {
                s.step()?;
                self.optimizer.set_lr(s.lr());
            }
            Some(LrPolicy::Plateau(p)) => {
                let lr = p.step(monitored);
                self.optimizer.set_lr(lr);
            }
            _ => {}
        }
        self.sync_momentum()?;
        let record = EpochRecord {
            epoch: self.epoch,
            step: self.step,
            lr: self.lr_policy.as_ref().map_or_else(|| self.optimizer.lr(), LrPolicy::lr),
            train_loss,
            train_accuracy: counted.then(|| correct as f64 / seen.max(1) as f64),
            validation,
            seconds: started.elapsed().as_secs_f64(),
        };
        self.history.push(record.clone());
        Ok(record)
    }

    /// Replaces the learning-rate policy by SWALR from the current rate,
    /// once (a policy that already is this SWALR is kept, so a resumed run
    /// continues it).
    fn switch_to_swalr(&mut self, swa: crate::averaged::SwaLr) -> Result<()> {
        let schedule = swa.schedule();
        if let Some(LrPolicy::PerEpoch(s)) = &self.lr_policy
            && *s.schedule() == schedule
        {
            return Ok(());
        }
        let s = Scheduler::new(schedule, self.optimizer.lr())?;
        self.lr_policy = Some(LrPolicy::PerEpoch(s));
        Ok(())
    }

    /// Whether early stopping says to stop, given the last epoch's record
    /// (restores the best weights when configured to).
    pub fn should_stop(&mut self) -> Result<bool> {
        let Some(es) = &mut self.early_stopping else { return Ok(false) };
        let Some(rec) = self.history.last() else { return Ok(false) };
        let metric = rec.validation.as_ref().map_or(rec.train_loss, |m| m.loss);
        let params: Vec<Param> = self.named.iter().map(|(_, p)| p.clone()).collect();
        let decision = es.step(metric, &params)?;
        if matches!(decision, nw_reg::Decision::Stop) {
            es.restore(&params)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Loss and, for classification, accuracy, per-class accuracy and the
    /// confusion matrix over `data`, in evaluation mode and without a graph.
    pub fn evaluate(&self, data: &Dataset, batch_size: usize) -> Result<Metrics> {
        self.model.eval();
        let result = no_grad(|| -> Result<Metrics> {
            let n = data.len();
            let mut tally = data.n_classes().map(ClassTally::new);
            let mut loss_sum = 0.0f64;
            let bs = batch_size.max(1);
            let mut start = 0;
            while start < n {
                let idx: Vec<usize> = (start..(start + bs).min(n)).collect();
                let x = data.features().index_select(0, &idx)?;
                let y = data.targets().select(&idx)?;
                let out = self.model.forward(&Var::constant(x))?;
                let l = self.loss.compute(&out, &y)?;
                loss_sum += l.value().item()? as f64 * idx.len() as f64;
                if let (Some(t), Some(labels)) = (&mut tally, y.labels()) {
                    for (row, &truth) in out.value().argmax_axis(1)?.iter().zip(labels) {
                        t.add(truth, *row);
                    }
                }
                start += bs;
            }
            Ok(Metrics {
                loss: if n > 0 { loss_sum / n as f64 } else { f64::NAN },
                accuracy: tally.as_ref().map(ClassTally::accuracy),
                per_class_accuracy: tally.as_ref().map(ClassTally::per_class),
                confusion: tally.as_ref().map(|t| t.confusion().to_vec()),
                examples: n,
            })
        });
        self.model.train();
        result
    }

    /// Feeds the model's current parameters and float buffers to the weight average.
    fn update_average(&mut self) -> Result<()> {
        let Some(a) = &mut self.average else { return Ok(()) };
        let params: Vec<Tensor> = self.named.iter().map(|(_, p)| p.value().clone()).collect();
        let buffers: Vec<Tensor> = self
            .model
            .named_buffers()
            .into_iter()
            .filter(|(_, b)| b.dtype() == nw_nn::Dtype::F32)
            .map(|(_, b)| b.tensor())
            .collect();
        a.average.update(&params, &buffers)?;
        Ok(())
    }

    /// Runs `f` on this trainer with the averaged weights in the model when
    /// the run averages weights and the average holds a value (otherwise on
    /// the model as it is). The averaged parameters and float buffers are
    /// swapped in, BatchNorm statistics recomputed with [`nw_nn::update_bn`]
    /// over `train`'s data set (in order, in batches of its batch size),
    /// then the raw parameters, every buffer and the random streams are put
    /// back exactly, whatever `f` returned.
    pub fn with_averaged<R>(
        &mut self,
        train: Option<&BatchLoader>,
        f: impl FnOnce(&Trainer) -> Result<R>,
    ) -> Result<R> {
        let Some(avg) = self.average.as_ref().filter(|a| a.is_ready()) else { return f(self) };
        let (params, float_buffers) = (avg.average.params(), avg.average.buffers());
        let raw: Vec<Tensor> = self.named.iter().map(|(_, p)| p.value().clone()).collect();
        let buffers = self.model.named_buffers();
        let raw_buffers: Vec<nw_nn::BufferValue> = buffers.iter().map(|(_, b)| b.value()).collect();
        let rngs: Vec<[u64; 4]> =
            self.rngs.iter().map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).state()).collect();
        let swapped = (|| -> Result<R> {
            for ((_, p), v) in self.named.iter().zip(params) {
                p.set(v)?;
            }
            let floats = buffers.iter().filter(|(_, b)| b.dtype() == nw_nn::Dtype::F32);
            for ((_, b), v) in floats.zip(float_buffers) {
                b.set(nw_nn::BufferValue::F32(v))?;
            }
            if let Some(loader) = train {
                let data = loader.dataset();
                let (n, bs) = (data.len(), loader.batch_size().max(1));
                let mut batches = Vec::new();
                let mut start = 0;
                while start < n {
                    let idx: Vec<usize> = (start..(start + bs).min(n)).collect();
                    batches.push(data.features().index_select(0, &idx)?);
                    start += bs;
                }
                nw_nn::update_bn(&mut self.model, batches)?;
            }
            f(self)
        })();
        for ((_, p), v) in self.named.iter().zip(raw) {
            p.set(v)?;
        }
        for ((_, b), v) in buffers.iter().zip(raw_buffers) {
            b.set(v)?;
        }
        for (r, s) in self.rngs.iter().zip(rngs) {
            *r.lock().unwrap_or_else(|e| e.into_inner()) = Rng::from_state(s);
        }
        swapped
    }

    /// The model's outputs for `x` (evaluation mode, no graph).
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        self.model.eval();
        let out = no_grad(|| self.model.forward(&Var::constant(x.clone())));
        self.model.train();
        Ok(out?.value().clone())
    }

    /// Online learning: one update from one new example (`x` without the
    /// batch axis) or a few; returns the loss before the update.
    pub fn learn_one(&mut self, x: &Tensor, y: &Targets) -> Result<f32> {
        let mut shape = vec![1];
        shape.extend_from_slice(x.shape());
        let xb = if y.len() == 1 && x.ndim() + 1 == shape.len() { x.reshape(&shape)? } else { x.clone() };
        Ok(self.train_step(&xb, y)?.0)
    }

    /// The whole state of the run as a checkpoint of typed sections, with
    /// `config` (the run's configuration as TOML) describing how to rebuild it.
    pub fn checkpoint(&self, config: &str) -> Result<Checkpoint> {
        let ctx = StateContext { params: &self.named };
        let mut ck = Checkpoint::default();
        ck.insert(
            "progress",
            Section::Progress(Progress { epoch: self.epoch, step: self.step, partial: self.partial.clone() }),
        );
        ck.insert("config", Section::Config(config.to_string()));
        self.model.save_state(&ctx, &mut ck);
        self.optimizer.save_state(&ctx, &mut ck);
        self.lr_policy.save_state(&ctx, &mut ck);
        self.early_stopping.save_state(&ctx, &mut ck);
        self.reg.pruner.save_state(&ctx, &mut ck);
        self.rngs.save_state(&ctx, &mut ck);
        self.history.save_state(&ctx, &mut ck);
        self.average.save_state(&ctx, &mut ck);
        if let Some(logs) = self.logs {
            ck.insert("logs", Section::Logs(logs));
        }
        ck.insert(
            "monitor",
            Section::Monitor(MonitorState {
                records: self.monitor.records().to_vec(),
                warnings: self.warnings.clone(),
                spectra: self.monitor.spectra().to_vec(),
                progress: self.monitor.progress().clone(),
            }),
        );
        Ok(ck)
    }

    /// Restores a state written by [`Trainer::checkpoint`] into a trainer
    /// built from the same configuration: weights, buffers, optimizer,
    /// schedule, early stopping, pruning masks, random streams, metrics and
    /// monitor history, and the position (inside an epoch too).
    pub fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        let named = self.named.clone();
        let ctx = StateContext { params: &named };
        // The model first: it checks every tensor before changing any.
        self.model.load_state(&ctx, ck)?;
        self.optimizer.load_state(&ctx, ck)?;
        self.lr_policy.load_state(&ctx, ck)?;
        self.early_stopping.load_state(&ctx, ck)?;
        self.reg.pruner.load_state(&ctx, ck)?;
        self.rngs.load_state(&ctx, ck)?;
        self.history.load_state(&ctx, ck)?;
        self.average.load_state(&ctx, ck)?;
        self.logs = match ck.section("logs") {
            Some(Section::Logs(o)) => Some(*o),
            Some(s) => return Err(crate::state::mismatch(format!("section `logs` holds {}", s.kind()))),
            None => None,
        };
        if let Some(Section::Monitor(m)) = ck.section("monitor") {
            self.monitor.set_records(m.records.clone());
            self.monitor.set_spectra(m.spectra.clone());
            self.monitor.set_progress(m.progress.clone());
            self.warnings = m.warnings.clone();
            self.warned =
                self.warnings.iter().map(|w| (std::mem::discriminant(w), w.tensor().to_string())).collect();
        }
        let p = match ck.section("progress") {
            Some(Section::Progress(p)) => p.clone(),
            _ => return Err(crate::state::mismatch("no `progress` section")),
        };
        self.epoch = p.epoch;
        self.step = p.step;
        self.partial = p.partial;
        // the optimizer's state dict has no momentum: the schedule holds it
        self.sync_momentum()?;
        Ok(())
    }

    /// Sets the optimizer's momentum (or beta1) to the schedule's when the
    /// schedule cycles it (`cycle_momentum`); nothing otherwise. Called after
    /// every schedule step, when the run is built and after a restore.
    pub fn sync_momentum(&mut self) -> Result<()> {
        if let Some(LrPolicy::PerStep(s) | LrPolicy::PerEpoch(s)) = &self.lr_policy
            && let Some(m) = s.momentum()
        {
            self.optimizer.set_momentum(m)?;
        }
        Ok(())
    }
}

/// `grads` without the entries of the parameters named in `frozen`.
fn drop_frozen(
    named: &[(String, Param)],
    frozen: &std::collections::BTreeSet<String>,
    grads: Grads,
) -> Grads {
    if frozen.is_empty() {
        return grads;
    }
    let mut kept = Grads::new();
    for (n, p) in named {
        if frozen.contains(n) {
            continue;
        }
        match (grads.get(p), grads.rows(p)) {
            // a row-sparse gradient keeps its rows (they are below its first dimension)
            (Some(g), Some(rows)) => {
                if kept.insert_sparse(p, g.clone(), rows.to_vec()).is_err() {
                    kept.insert(p, g.clone());
                }
            }
            (Some(g), None) => kept.insert(p, g.clone()),
            (None, _) => {}
        }
    }
    kept
}

/// Correct predictions of `out` (`[n, classes]`) against class targets.
pub(crate) fn count_correct(out: &Tensor, y: &Targets) -> Result<Option<usize>> {
    match y.labels() {
        Some(labels) if out.ndim() == 2 => {
            let pred = out.argmax_axis(1)?;
            Ok(Some(pred.iter().zip(labels).filter(|(p, t)| p == t).count()))
        }
        _ => Ok(None),
    }
}
