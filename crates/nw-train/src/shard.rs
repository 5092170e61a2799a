//! The micro-shard step: gradient accumulation in one process and
//! data-parallel training over ranks, through one code path.
//!
//! A batch of `B` rows is cut into `M = min(k, B)` micro-shards (`k` =
//! [`Sharding::accumulate`]): shard `s` holds rows `[s B / M, (s + 1) B / M)`
//! (floor division), so shard sizes differ by at most one and a short last
//! batch of an epoch is cut the same way with its own `B`. `M` and the cut
//! depend on `B` and `k` only, never on the rank count. Each shard's mean loss
//! is scaled by `n_s / B` and differentiated on its own; the shard gradients
//! (with the scaled losses and correct counts riding along) are summed in
//! nw-dist's fixed tree over shard index, across ranks when a collective is
//! set. For mean-reduced losses the sum is the gradient of the batch's mean
//! loss (equal to the one-shard step up to rounding).
//!
//! Stochastic layers: before shard `s` of step `t`, the generator of
//! stochastic layer `l` is reseeded from `(seed, l, t, s)`, so a mask depends
//! on where a row is in the batch, not on which rank computes it. After the
//! step every generator is set from `(seed, l, t, M)` so that checkpoints
//! agree across rank counts too.
//!
//! Batch-norm running statistics: each shard normalises with its own batch
//! statistics (the shard is the batch, as in torch DDP without SyncBatchNorm).
//! The running statistics of a step are those that micro-shard 0's forward
//! produces from the step's starting values (one update per step, as at
//! `k = 1`); rank 0 always computes shard 0 and sends those buffers to every
//! rank with its gradient blocks, so all ranks end every step with the same
//! buffers. Shards 1.. update nothing that survives the step. With
//! [`Sharding::sync_bn`] the batch-norm layers use the whole batch's
//! statistics instead, summed over the shards in the same tree, and update
//! the running statistics from them on every rank (`crate::sync_bn`).
//!
//! Penalty terms (L1/L2 on the weights) do not depend on the data: their
//! gradient is added once, after the tree sum.

use std::collections::HashMap;

use nw_autograd::{Grads, Var};
use nw_data::Targets;
use nw_dist::Collective;
use nw_dist::reduce::{my_run, reduce};
use nw_nn::Module;
use nw_nn::{Buffer, BufferValue};
use nw_tensor::{Rng, Tensor};

use crate::error::{Result, TrainError};
use crate::trainer::{StepGrads, Trainer, count_correct};

/// How a step cuts its batch and where the micro-shards are computed.
pub struct Sharding {
    /// Micro-shards per batch (`train.accumulate`, >= 1).
    pub accumulate: usize,
    /// Use the micro-shard path even at `accumulate = 1` (set for
    /// `train.distributed` runs, so that one process and any number of ranks
    /// follow the same arithmetic and random streams).
    pub per_shard: bool,
    /// The run's seed, from which per-shard dropout streams are derived.
    pub seed: u64,
    /// The ranks sharing the shards; `None`: this process computes them all.
    pub collective: Option<Box<dyn Collective>>,
    /// Synchronised batch norm (`train.sync_bn`): every batch-norm layer
    /// normalises with the statistics of the whole batch, summed over all
    /// micro-shards in the fixed tree (see `crate::sync_bn`), instead of each
    /// shard's own.
    pub sync_bn: bool,
}

impl Default for Sharding {
    /// One shard, one process: the original single-batch step.
    fn default() -> Self {
        Sharding { accumulate: 1, per_shard: false, seed: 0, collective: None, sync_bn: false }
    }
}

impl std::fmt::Debug for Sharding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sharding")
            .field("accumulate", &self.accumulate)
            .field("per_shard", &self.per_shard)
            .field("seed", &self.seed)
            .field("ranks", &self.collective.as_ref().map(|c| (c.rank(), c.size())))
            .field("sync_bn", &self.sync_bn)
            .finish()
    }
}

impl Sharding {
    /// Whether steps take the micro-shard path.
    pub fn is_sharded(&self) -> bool {
        self.accumulate > 1 || self.per_shard || self.collective.is_some() || self.sync_bn
    }

    /// `(rank, size)`; `(0, 1)` without a collective.
    pub fn rank_size(&self) -> (usize, usize) {
        self.collective.as_ref().map_or((0, 1), |c| (c.rank(), c.size()))
    }

    /// The number of micro-shards a batch of `b` rows is cut into.
    pub fn shards(&self, b: usize) -> usize {
        self.accumulate.max(1).min(b.max(1))
    }
}

/// The seed of stochastic layer `layer`'s generator for micro-shard `shard` of step `step`.
pub fn shard_seed(seed: u64, layer: usize, step: u64, shard: usize) -> u64 {
    let mut h = seed ^ 0xD1B5_4A32_D192_ED03;
    for v in [layer as u64, step, shard as u64] {
        h = (h ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 31;
    }
    h
}

pub(crate) fn reseed(trainer: &Trainer, step: u64, shard: usize) {
    for (l, r) in trainer.rngs.iter().enumerate() {
        *r.lock().unwrap_or_else(|e| e.into_inner()) =
            Rng::new(shard_seed(trainer.sharding.seed, l, step, shard));
    }
}

fn encode_buffers(values: &[BufferValue]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        match v {
            BufferValue::F32(t) => t.to_vec().iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            BufferValue::I64 { data, .. } => {
                data.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()))
            }
        }
    }
    out
}

/// Decodes rank 0's buffers in the layout of this rank's own `like`.
fn decode_buffers(bytes: &[u8], like: &[Buffer]) -> Result<Vec<BufferValue>> {
    let bad = || {
        TrainError::Distributed(nw_dist::DistError::Malformed {
            rank: 0,
            what: format!("batch-norm buffers of {} bytes do not fit this model", bytes.len()),
        })
    };
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let end = at.checked_add(n).filter(|&e| e <= bytes.len()).ok_or_else(bad)?;
        let s = &bytes[at..end];
        at = end;
        Ok(s)
    };
    let mut out = Vec::with_capacity(like.len());
    for b in like {
        out.push(match b.value() {
            BufferValue::F32(t) => {
                let raw = take(t.len() * 4)?;
                let v =
                    raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
                BufferValue::F32(Tensor::from_vec(v, t.shape())?)
            }
            BufferValue::I64 { shape, data } => {
                let raw = take(data.len() * 8)?;
                let data =
                    raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
                BufferValue::I64 { shape, data }
            }
        });
    }
    if at != bytes.len() {
        return Err(bad());
    }
    Ok(out)
}

/// The row-sparse parameters (sparse embedding tables, whose gradients
/// carry their touched rows for SparseAdam) in parameter order: `(index in
/// params, rows)`. Each has `rows + 1` extra values in a leaf: one flag per
/// row (1 when the shard's gradient touched it) and a "dense" flag (1 when
/// the shard's gradient came without rows), so the tree's sum carries the
/// union of the rows every shard touched, for any rank count.
pub(crate) fn sparse_layout(trainer: &Trainer, params: &[nw_autograd::Param]) -> Vec<(usize, usize)> {
    let names = trainer.model.sparse_parameters();
    if names.is_empty() {
        return Vec::new();
    }
    trainer
        .named_parameters()
        .iter()
        .zip(params)
        .enumerate()
        .filter(|(_, ((n, _), _))| names.contains(n))
        .map(|(i, (_, p))| (i, p.shape().first().copied().unwrap_or(0)))
        .collect()
}

/// One micro-shard's leaf: every gradient flattened in parameter order (zeros
/// where absent), one presence flag per parameter, the row flags of the
/// row-sparse parameters ([`sparse_layout`]), then the scaled loss, the
/// correct count and a "counted" flag.
#[allow(clippy::too_many_arguments)]
pub(crate) fn leaf(
    params: &[nw_autograd::Param],
    numels: &[usize],
    sparse: &[(usize, usize)],
    width: usize,
    g: &Grads,
    scaled_loss: f32,
    correct: Option<usize>,
) -> Vec<f32> {
    let mut leaf = Vec::with_capacity(width);
    let mut present = Vec::with_capacity(params.len());
    for (p, &n) in params.iter().zip(numels) {
        match g.get(p) {
            Some(t) => {
                match t.as_slice() {
                    Some(v) => leaf.extend_from_slice(v),
                    None => leaf.extend(t.to_vec()),
                }
                present.push(1.0);
            }
            None => {
                leaf.resize(leaf.len() + n, 0.0);
                present.push(0.0);
            }
        }
    }
    leaf.extend(present);
    for &(i, rows) in sparse {
        let at = leaf.len();
        leaf.resize(at + rows + 1, 0.0);
        match (g.get(&params[i]), g.rows(&params[i])) {
            (Some(_), Some(touched)) => {
                touched.iter().filter(|&&r| r < rows).for_each(|&r| leaf[at + r] = 1.0)
            }
            (Some(_), None) => leaf[at + rows] = 1.0,
            (None, _) => {}
        }
    }
    leaf.push(scaled_loss);
    leaf.push(correct.unwrap_or(0) as f32);
    leaf.push(if correct.is_some() { 1.0 } else { 0.0 });
    leaf
}

/// The micro-shard step's gradients (see the module docs); called by
/// [`Trainer::compute_grads`] when [`Sharding::is_sharded`].
pub(crate) fn compute(
    trainer: &mut Trainer,
    x: &Tensor,
    y: &Targets,
    step: u64,
    trace: bool,
) -> Result<StepGrads> {
    let b = x.shape().first().copied().unwrap_or(0);
    if b == 0 || y.len() != b {
        return Err(TrainError::Config(format!(
            "a step needs a non-empty batch with one target per row ({b} rows, {} targets)",
            y.len()
        )));
    }
    let m = trainer.sharding.shards(b);
    let (rank, size) = trainer.sharding.rank_size();
    let (a, e) = my_run(m, rank, size);
    let params = trainer.params();
    let numels: Vec<usize> = params.iter().map(|p| p.shape().iter().product()).collect();
    let total: usize = numels.iter().sum();
    // Leaf layout: every gradient flattened in parameter order, one presence
    // flag per parameter, the sparse parameters' row flags, then scaled loss,
    // correct count, "counted" flag.
    let sparse = sparse_layout(trainer, &params);
    let flags: usize = sparse.iter().map(|&(_, rows)| rows + 1).sum();
    let width = total + params.len() + flags + 3;
    let sync = trainer.sharding.sync_bn;
    // Synchronised batch norm updates the running statistics on every rank
    // from the same whole-batch numbers: no buffers ride along.
    let buffers: Vec<Buffer> = match sync {
        true => Vec::new(),
        false => trainer.model.named_buffers().into_iter().map(|(_, b)| b).collect(),
    };
    let mut after_first: Option<Vec<BufferValue>> = None;
    let mut acts_first = HashMap::new();
    let mut leaves = Vec::with_capacity(e - a);
    if sync {
        let layers = crate::sync_bn::layers(trainer)?;
        let shape = crate::sync_bn::Shards { x, y, b, m, run: (a, e), step, trace };
        (leaves, acts_first) = crate::sync_bn::shard_leaves(trainer, &layers, &shape, |g, l, c| {
            leaf(&params, &numels, &sparse, width, g, l, c)
        })?;
    }
    for s in (a..e).filter(|_| !sync) {
        let (lo, hi) = (s * b / m, (s + 1) * b / m);
        let idx: Vec<usize> = (lo..hi).collect();
        let xs = x.narrow(0, lo, hi - lo)?;
        let ys = y.select(&idx)?;
        reseed(trainer, step, s);
        let (out, acts) = trainer.forward_traced(&Var::constant(xs), trace && s == 0)?;
        let correct = count_correct(out.value(), &ys)?;
        let l = trainer.loss.compute(&out, &ys)?;
        let frac = (hi - lo) as f32 / b as f32;
        let loss = l.value().item()?;
        let g = l.mul_scalar(frac).backward()?;
        drop((l, out));
        leaves.push(leaf(&params, &numels, &sparse, width, &g, loss * frac, correct));
        if s == 0 {
            after_first = Some(buffers.iter().map(Buffer::value).collect());
            acts_first = acts;
        }
    }
    let side = match &after_first {
        Some(v) if !buffers.is_empty() => encode_buffers(v),
        _ => Vec::new(),
    };
    let coll = trainer.sharding.collective.as_deref();
    let (sum, sides) = reduce(coll, m, width, leaves, side)?;
    if !buffers.is_empty() {
        let values = match after_first {
            Some(v) => v,
            None => decode_buffers(&sides[0], &buffers)?,
        };
        for (buf, v) in buffers.iter().zip(values) {
            buf.set(v)?;
        }
    }
    for (l, r) in trainer.rngs.iter().enumerate() {
        *r.lock().unwrap_or_else(|e| e.into_inner()) =
            Rng::new(shard_seed(trainer.sharding.seed, l, step, m));
    }
    let mut grads = Grads::new();
    let mut at = 0;
    for (i, (p, &n)) in params.iter().zip(&numels).enumerate() {
        if sum[total + i] > 0.0 {
            grads.insert(p, Tensor::from_vec(sum[at..at + n].to_vec(), &p.shape())?);
        }
        at += n;
    }
    // A row-sparse gradient keeps the union of its shards' rows, unless a
    // shard's came without rows (a dense use of the table): then it is dense,
    // as in one process.
    let mut at = total + params.len();
    for &(i, rows) in &sparse {
        let p = &params[i];
        let flags = &sum[at..at + rows + 1];
        at += rows + 1;
        if flags[rows] > 0.0 {
            continue;
        }
        if let Some(g) = grads.get(p).cloned() {
            let touched: Vec<usize> = (0..rows).filter(|&r| flags[r] > 0.0).collect();
            grads.insert_sparse(p, g, touched).map_err(|e| TrainError::Config(e.to_string()))?;
        }
    }
    let mut penalty = 0.0;
    if let Some(pen) = &trainer.reg.penalties {
        let pl = pen.loss()?;
        penalty = pl.value().item()? as f64;
        let pg = pl.backward()?;
        for p in &params {
            if let Some(t) = pg.get(p) {
                grads.accumulate(p.id(), t.clone());
            }
        }
    }
    let tail = &sum[width - 3..];
    let correct = (tail[2] > 0.0).then_some(tail[1] as usize);
    Ok(StepGrads {
        grads,
        data_loss: tail[0],
        objective: tail[0] as f64 + penalty,
        correct,
        acts: if rank == 0 { acts_first } else { HashMap::new() },
    })
}
