//! Synchronised batch norm (`train.sync_bn`, `--sync-bn`): every
//! batch-norm layer normalises each micro-shard with the statistics of the
//! **whole batch**, and its backward uses the whole batch's gradient sums,
//! as torch `SyncBatchNorm` does across processes; here across micro-shards,
//! whichever rank computes them.
//!
//! The model's top-level children are cut into stages at its batch-norm
//! layers: stage 0 is children `[0, p_1)`, the batch-norm layer at `p_1`
//! follows, stage 1 is `(p_1, p_2)`, and so on. A step runs:
//!
//! - **forward, stage by stage:** every local micro-shard runs the stage
//!   (its dropout generators reseeded from `(seed, layer, step, shard)`
//!   before each stage, which gives the masks of the unstaged step); then
//!   each shard's per-channel `(sum x, sum x^2, count)` in `f64` is gathered
//!   from every rank and summed in the fixed tree over shard index
//!   (`nw_dist::reduce::gather_sum_f64`), so every rank holds the same
//!   `mean = sum / N` and biased `var = sum_sq / N - mean^2`; each shard is
//!   normalised with them ([`nw_nn::BatchNorm::apply_stats`]), and the
//!   running estimates take them once per step (unbiased variance,
//!   `N / (N - 1)`), identically on every rank.
//! - **backward, stage by stage in reverse:** the last stage's loss is
//!   differentiated per shard; at each batch-norm layer every shard's
//!   `(sum gy, sum gy xhat)` is gathered and tree-summed the same way, each
//!   shard's input gradient is `w inv_std (gy - sum_gy / N - xhat sum_gy_xhat / N)`
//!   ([`nw_nn::BatchNorm::input_grad`]) and is fed back into the stage
//!   before; the shard's own `(sum gy xhat, sum gy)` are its `dweight`,
//!   `dbias`, summed over shards with every other gradient.
//!
//! Every number depends on the batch and the micro-shard cut only, never on
//! the rank count. Only batch-norm layers at the top level of the model are
//! synchronised; one inside another layer (a residual branch) is an error.

use std::collections::HashMap;
use std::ops::Range;

use nw_autograd::{Grads, Var};
use nw_data::Targets;
use nw_dist::reduce::gather_sum_f64;
use nw_nn::{BatchNorm, GradSums, Module, SyncStats, channel_sums, grad_sums};
use nw_tensor::Tensor;

use crate::error::{Result, TrainError};
use crate::shard::reseed;
use crate::trainer::{Trainer, count_correct};

/// A batch-norm layer at the top level of the model: its child index and a
/// handle sharing its parameters and buffers.
pub(crate) struct Layer {
    at: usize,
    bn: BatchNorm,
}

/// The top-level batch-norm layers of the trainer's model, in order.
pub(crate) fn layers(trainer: &mut Trainer) -> Result<Vec<Layer>> {
    let mut handles = Vec::new();
    trainer.model.for_each_batch_norm(&mut |bn| handles.push(bn.handle()));
    let mut out = Vec::with_capacity(handles.len());
    let mut next = handles.into_iter().peekable();
    for i in 0..trainer.model.len() {
        let child = trainer.model.get(i).expect("index below len");
        if next.peek().is_some_and(|bn| bn.is_layer(child)) {
            out.push(Layer { at: i, bn: next.next().expect("peeked") });
        }
    }
    if next.peek().is_some() {
        return Err(TrainError::Config(format!(
            "train.sync_bn: batch-norm layer {} of the model sits inside another layer; synchronised batch norm covers batch-norm layers at the top level of the model only",
            out.len()
        )));
    }
    Ok(out)
}

/// The step's batch and this rank's part of it.
pub(crate) struct Shards<'a> {
    /// The batch's inputs.
    pub x: &'a Tensor,
    /// Its targets.
    pub y: &'a Targets,
    /// Rows in the batch.
    pub b: usize,
    /// Micro-shards in the batch.
    pub m: usize,
    /// This rank's run of micro-shards.
    pub run: (usize, usize),
    /// The step (dropout streams).
    pub step: u64,
    /// Record shard 0's activations for the monitor.
    pub trace: bool,
}

/// One local micro-shard in flight: stage `k`'s input leaf and output, and
/// the normalised input of every batch-norm layer.
struct InFlight {
    ins: Vec<Var>,
    outs: Vec<Var>,
    xhat: Vec<Tensor>,
}

fn gather(trainer: &Trainer, m: usize, width: usize, leaves: &[Vec<f64>]) -> Result<Vec<f64>> {
    Ok(gather_sum_f64(trainer.sharding.collective.as_deref(), m, width, leaves)?)
}

/// The local shards' gradient leaves and shard 0's traced activations.
type Leaves = (Vec<Vec<f32>>, HashMap<String, Tensor>);

/// Every local micro-shard's gradient leaf (built by `leaf` from the shard's
/// gradients, scaled loss and correct count), and shard 0's traced
/// activations when this rank computes it.
pub(crate) fn shard_leaves(
    trainer: &Trainer,
    layers: &[Layer],
    sh: &Shards<'_>,
    leaf: impl Fn(&Grads, f32, Option<usize>) -> Vec<f32>,
) -> Result<Leaves> {
    let (a, e) = sh.run;
    let rows = |s: usize| (s * sh.b / sh.m, (s + 1) * sh.b / sh.m);
    let n_children = trainer.model.len();
    let stages: Vec<Range<usize>> = (0..=layers.len())
        .map(|k| {
            let lo = if k == 0 { 0 } else { layers[k - 1].at + 1 };
            let hi = layers.get(k).map_or(n_children, |l| l.at);
            lo..hi
        })
        .collect();
    let mut acts = HashMap::new();
    let mut shards: Vec<InFlight> = Vec::with_capacity(e - a);
    let mut h: Vec<Tensor> = Vec::with_capacity(e - a);
    for s in a..e {
        let (lo, hi) = rows(s);
        h.push(sh.x.narrow(0, lo, hi - lo)?);
        shards.push(InFlight { ins: Vec::new(), outs: Vec::new(), xhat: Vec::new() });
    }
    let mut stats: Vec<SyncStats> = Vec::with_capacity(layers.len());
    // Forward, stage by stage.
    for (k, range) in stages.iter().enumerate() {
        for (i, s) in (a..e).enumerate() {
            reseed(trainer, sh.step, s);
            let input = match k {
                0 => Var::constant(h[i].clone()),
                _ => Var::leaf(h[i].clone(), true),
            };
            let out = trainer.forward_layers(&input, range.clone(), sh.trace && s == 0, &mut acts)?;
            shards[i].ins.push(input);
            shards[i].outs.push(out);
        }
        let Some(layer) = layers.get(k) else { break };
        let c = layer.bn.num_features();
        let mut leaves = Vec::with_capacity(e - a);
        for f in &shards {
            let (s1, s2, n) = channel_sums(f.outs[k].value())?;
            if s1.len() != c {
                return Err(TrainError::Config(format!(
                    "train.sync_bn: layer {} gets {} channels, expects {c}",
                    layer.at,
                    s1.len()
                )));
            }
            let mut l = s1;
            l.extend(s2);
            l.push(n as f64);
            leaves.push(l);
        }
        let sum = gather(trainer, sh.m, 2 * c + 1, &leaves)?;
        let count = sum[2 * c] as usize;
        if count < 2 {
            return Err(TrainError::Config(format!(
                "train.sync_bn: batch norm (layer {}) needs more than one value per channel in the batch",
                layer.at
            )));
        }
        let st = SyncStats::from_sums(&sum[..c], &sum[c..2 * c], count, layer.bn.eps);
        for (i, f) in shards.iter_mut().enumerate() {
            let (xhat, y) = layer.bn.apply_stats(f.outs[k].value(), &st)?;
            f.xhat.push(xhat);
            h[i] = y;
        }
        layer.bn.update_running(&st.mean, &st.unbiased_var());
        stats.push(st);
    }
    drop(h);
    // Backward: the loss of the last stage, then back through each batch norm.
    let last = layers.len();
    let mut grads: Vec<Grads> = Vec::with_capacity(e - a);
    let mut gy: Vec<Option<Tensor>> = Vec::with_capacity(e - a);
    let mut tails = Vec::with_capacity(e - a);
    for (i, s) in (a..e).enumerate() {
        let (lo, hi) = rows(s);
        let idx: Vec<usize> = (lo..hi).collect();
        let ys = sh.y.select(&idx)?;
        let out = shards[i].outs[last].clone();
        let correct = count_correct(out.value(), &ys)?;
        let l = trainer.loss.compute(&out, &ys)?;
        let frac = (hi - lo) as f32 / sh.b as f32;
        let loss = l.value().item()?;
        let g = l.mul_scalar(frac).backward()?;
        gy.push(g.wrt(&shards[i].ins[last]).cloned());
        grads.push(g);
        tails.push((loss * frac, correct));
    }
    for k in (0..last).rev() {
        let layer = &layers[k];
        let c = layer.bn.num_features();
        let mut parts = Vec::with_capacity(e - a);
        for (i, f) in shards.iter().enumerate() {
            let g = gy[i].take().unwrap_or_else(|| Tensor::zeros(f.xhat[k].shape()));
            parts.push((grad_sums(&f.xhat[k], &g)?, g));
        }
        let leaves: Vec<Vec<f64>> =
            parts.iter().map(|(p, _)| p.sum_gy.iter().chain(&p.sum_gy_xhat).copied().collect()).collect();
        let total = gather(trainer, sh.m, 2 * c, &leaves)?;
        let total = GradSums { sum_gy: total[..c].to_vec(), sum_gy_xhat: total[c..].to_vec() };
        for (i, (own, g)) in parts.into_iter().enumerate() {
            let f = &shards[i];
            let dx = layer.bn.input_grad(&f.xhat[k], &g, &stats[k], &total)?;
            let to_f32 = |v: &[f64]| Tensor::from_vec(v.iter().map(|&x| x as f32).collect(), &[c]);
            if let Some(w) = &layer.bn.weight {
                grads[i].accumulate(w.id(), to_f32(&own.sum_gy_xhat)?);
            }
            if let Some(b) = &layer.bn.bias {
                grads[i].accumulate(b.id(), to_f32(&own.sum_gy)?);
            }
            let g2 = f.outs[k].backward_with(dx)?;
            gy[i] = g2.wrt(&f.ins[k]).cloned();
            grads[i].merge(g2);
        }
    }
    drop(shards);
    let leaves = grads.iter().zip(tails).map(|(g, (l, c))| leaf(g, l, c)).collect();
    Ok((leaves, acts))
}
