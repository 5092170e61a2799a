//! Normalisation layers: [`LayerNorm`], [`BatchNorm1d`], [`BatchNorm2d`]; and the pieces
//! of synchronised batch norm over micro-shards ([`channel_sums`], [`SyncStats`],
//! [`grad_sums`], [`BatchNorm::apply_stats`], [`BatchNorm::input_grad`]).

use nw_autograd::{Param, Var};
use nw_tensor::Tensor;

use crate::error::{NnError, Result};
use crate::module::{Buffer, BufferValue, ModeFlag, Module};

/// Layer normalisation over the trailing `normalized_shape` dimensions
/// (torch `nn.LayerNorm`): biased variance, `eps` (default 1e-5), and an
/// elementwise affine `weight` (ones) and `bias` (zeros) when enabled.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    normalized_shape: Vec<usize>,
    /// Added to the variance.
    pub eps: f32,
    /// Scale, of shape `normalized_shape` (if affine).
    pub weight: Option<Param>,
    /// Shift, of shape `normalized_shape` (if affine).
    pub bias: Option<Param>,
}

impl LayerNorm {
    /// With affine parameters and `eps = 1e-5`.
    pub fn new(normalized_shape: &[usize]) -> Self {
        Self::with_options(normalized_shape, 1e-5, true)
    }

    /// With the given `eps` and with or without the affine parameters.
    ///
    /// # Panics
    /// When `normalized_shape` exceeds [`nw_tensor::MAX_ELEMENTS`]; shapes
    /// from files or configurations go through [`LayerNorm::try_with_options`].
    pub fn with_options(normalized_shape: &[usize], eps: f32, elementwise_affine: bool) -> Self {
        Self::try_with_options(normalized_shape, eps, elementwise_affine).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`LayerNorm::with_options`] for shapes from files or configurations:
    /// an overflowing or over-limit shape is an error, before anything is allocated.
    pub fn try_with_options(normalized_shape: &[usize], eps: f32, elementwise_affine: bool) -> Result<Self> {
        let (w, b) = if elementwise_affine {
            let make = |v| {
                Tensor::try_full(normalized_shape, v).map_err(|e| NnError::config("LayerNorm", e.to_string()))
            };
            (Some(Param::new(make(1.0)?)), Some(Param::new(make(0.0)?)))
        } else {
            (None, None)
        };
        Ok(LayerNorm { normalized_shape: normalized_shape.to_vec(), eps, weight: w, bias: b })
    }

    /// The normalised trailing shape.
    pub fn normalized_shape(&self) -> &[usize] {
        &self.normalized_shape
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Var) -> Result<Var> {
        let w = self.weight.as_ref().map(Var::param);
        let b = self.bias.as_ref().map(Var::param);
        Ok(x.layer_norm(&self.normalized_shape, w.as_ref(), b.as_ref(), self.eps)?)
    }

    fn named_parameters(&self) -> Vec<(String, Param)> {
        let mut v = Vec::new();
        if let Some(w) = &self.weight {
            v.push(("weight".to_string(), w.clone()));
        }
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }

    fn describe(&self) -> String {
        format!(
            "LayerNorm({:?}, eps={}, elementwise_affine={})",
            self.normalized_shape,
            self.eps,
            self.weight.is_some()
        )
    }
}

/// What BatchNorm1d and BatchNorm2d share (torch `_BatchNorm`).
///
/// Training mode normalises with the batch mean and **biased** variance and
/// then updates `running_mean = (1 - m) running_mean + m batch_mean` and
/// `running_var = (1 - m) running_var + m unbiased_batch_var`, with
/// momentum `m` (default 0.1; `None` is the cumulative average
/// `1 / num_batches_tracked`). Evaluation mode normalises with the running
/// estimates. Without `track_running_stats` batch statistics are always used.
#[derive(Debug)]
pub struct BatchNorm {
    num_features: usize,
    /// Added to the variance.
    pub eps: f32,
    /// Running-average momentum (`None`: cumulative average).
    pub momentum: Option<f32>,
    /// Scale `[C]` (ones), if affine.
    pub weight: Option<Param>,
    /// Shift `[C]` (zeros), if affine.
    pub bias: Option<Param>,
    /// Running statistics and batch counter, if tracked:
    /// `(running_mean [C], running_var [C], num_batches_tracked (i64 scalar))`.
    pub running: Option<(Buffer, Buffer, Buffer)>,
    mode: ModeFlag,
}

impl BatchNorm {
    fn build(num_features: usize, eps: f32, momentum: Option<f32>, affine: bool, track: bool) -> Self {
        Self::try_build(num_features, eps, momentum, affine, track).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_build(
        num_features: usize,
        eps: f32,
        momentum: Option<f32>,
        affine: bool,
        track: bool,
    ) -> Result<Self> {
        let make =
            |v| Tensor::try_full(&[num_features], v).map_err(|e| NnError::config("BatchNorm", e.to_string()));
        let (w, b) =
            if affine { (Some(Param::new(make(1.0)?)), Some(Param::new(make(0.0)?))) } else { (None, None) };
        let running = match track {
            true => Some((Buffer::f32(make(0.0)?), Buffer::f32(make(1.0)?), Buffer::i64_scalar(0))),
            false => None,
        };
        Ok(BatchNorm { num_features, eps, momentum, weight: w, bias: b, running, mode: ModeFlag::default() })
    }

    /// The number of channels.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Whether in training mode.
    pub fn is_training(&self) -> bool {
        self.mode.is_training()
    }

    /// Switches training (`true`) or evaluation mode.
    pub fn set_mode(&self, training: bool) {
        self.mode.set(training)
    }

    fn forward_checked(&self, what: &'static str, x: &Var) -> Result<Var> {
        if x.shape()[1] != self.num_features {
            return Err(NnError::input(
                what,
                format!(
                    "input {:?} has {} channels, the layer {}",
                    x.shape(),
                    x.shape()[1],
                    self.num_features
                ),
            ));
        }
        let w = self.weight.as_ref().map(Var::param);
        let b = self.bias.as_ref().map(Var::param);
        match &self.running {
            Some((rm, rv, _)) if !self.is_training() => {
                Ok(x.batch_norm_eval(&rm.tensor(), &rv.tensor(), w.as_ref(), b.as_ref(), self.eps)?)
            }
            running => {
                let (y, stats) = x.batch_norm_train(w.as_ref(), b.as_ref(), self.eps)?;
                if running.is_some() {
                    self.update_running(&stats.mean, &stats.unbiased_var());
                }
                Ok(y)
            }
        }
    }

    /// Folds one batch's per-channel `mean` and **unbiased** variance into
    /// the running estimates (when tracked): `num_batches_tracked += 1`, then
    /// `running = (1 - m) running + m batch` in `f64`, with the momentum `m`
    /// (`1 / num_batches_tracked` when `momentum` is `None`). The training
    /// forward calls it with its batch statistics; synchronised batch norm
    /// (see [`SyncStats`]) with the statistics over all micro-shards.
    pub fn update_running(&self, mean: &[f64], unbiased_var: &[f64]) {
        let Some((rm, rv, nb)) = &self.running else {
            return;
        };
        let count = nb.update(|v| match v {
            BufferValue::I64 { data, .. } => {
                data[0] += 1;
                data[0]
            }
            BufferValue::F32(_) => 1,
        });
        let m = match self.momentum {
            Some(m) => m as f64,
            None => 1.0 / count as f64,
        };
        let blend = |buf: &Buffer, batch: &[f64]| {
            buf.update(|v| {
                if let BufferValue::F32(t) = v {
                    let mut cur = t.to_vec();
                    for (c, &b) in cur.iter_mut().zip(batch) {
                        *c = ((1.0 - m) * *c as f64 + m * b) as f32;
                    }
                    *t = Tensor::from_vec(cur, t.shape()).expect("same length");
                }
            })
        };
        blend(rm, mean);
        blend(rv, unbiased_var);
    }

    /// Whether `m` is this very layer (a `BatchNorm1d`/`BatchNorm2d` child
    /// sharing this layer's state), not another module or a container that
    /// holds it. Briefly bumps the batch counter to tell (and restores it).
    pub fn is_layer(&self, m: &dyn Module) -> bool {
        let d = m.describe();
        if d != self.describe_as("BatchNorm1d") && d != self.describe_as("BatchNorm2d") {
            return false;
        }
        let ids = |v: Vec<(String, Param)>| v.into_iter().map(|(n, p)| (n, p.id())).collect::<Vec<_>>();
        if ids(m.named_parameters()) != ids(self.params()) {
            return false;
        }
        // The buffers must be this layer's storage: bump this layer's batch
        // counter and see whether `m`'s moves with it (then restore it).
        let theirs = m.named_buffers();
        match &self.running {
            None => theirs.is_empty(),
            Some((_, _, nb)) => {
                let before = nb.value();
                nb.update(|v| {
                    if let BufferValue::I64 { data, .. } = v {
                        data[0] = data[0].wrapping_add(1);
                    }
                });
                let same = theirs.len() == 3 && theirs[2].1.value() == nb.value();
                nb.update(|v| *v = before);
                same
            }
        }
    }

    /// Another handle to this layer: the same parameters and buffers (shared
    /// storage), `eps` and momentum; its mode flag is its own (training).
    pub fn handle(&self) -> BatchNorm {
        BatchNorm {
            num_features: self.num_features,
            eps: self.eps,
            momentum: self.momentum,
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            running: self.running.clone(),
            mode: ModeFlag::default(),
        }
    }

    /// Training-mode normalisation of `x` (`[N, C, ...]`) with given
    /// per-channel statistics (synchronised batch norm): returns
    /// `xhat = (x - mean[c]) inv_std[c]` (computed in `f64`, stored as `f32`,
    /// as the training forward does) and `y = xhat w[c] + b[c]`.
    pub fn apply_stats(&self, x: &Tensor, stats: &SyncStats) -> Result<(Tensor, Tensor)> {
        let (_, c, s) = channel_dims("BatchNorm (sync)", x.shape())?;
        if c != self.num_features || stats.mean.len() != c || stats.inv_std.len() != c {
            return Err(NnError::input(
                "BatchNorm (sync)",
                format!(
                    "input {:?} and {} statistics for a layer of {}",
                    x.shape(),
                    stats.mean.len(),
                    self.num_features
                ),
            ));
        }
        let x = x.contiguous();
        let xs = x.as_slice().expect("contiguous");
        let xhat: Vec<f32> = xs
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let ch = (i / s) % c;
                ((v as f64 - stats.mean[ch]) * stats.inv_std[ch]) as f32
            })
            .collect();
        let w = self.weight.as_ref().map(|p| p.value().to_vec());
        let b = self.bias.as_ref().map(|p| p.value().to_vec());
        let y: Vec<f32> = xhat
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let ch = (i / s) % c;
                let v = w.as_ref().map_or(v, |w| v * w[ch]);
                b.as_ref().map_or(v, |b| v + b[ch])
            })
            .collect();
        let shape = x.shape();
        Ok((Tensor::from_vec(xhat, shape)?, Tensor::from_vec(y, shape)?))
    }

    /// The input gradient of synchronised batch norm (torch
    /// `SyncBatchNorm`'s backward): with `gy` this micro-shard's gradient at
    /// the output, `xhat` its normalised input, and `sums` the per-channel
    /// `(sum gy, sum gy xhat)` over **all** micro-shards of the batch (`count`
    /// values per channel in all), per element in `f64`
    /// `dx = w[c] inv_std[c] (gy - sum_gy[c] / count - xhat sum_gy_xhat[c] / count)`.
    /// This shard's `dw = sum gy xhat` and `db = sum gy` are its own
    /// [`grad_sums`] (summed over shards with the other gradients).
    pub fn input_grad(
        &self,
        xhat: &Tensor,
        gy: &Tensor,
        stats: &SyncStats,
        sums: &GradSums,
    ) -> Result<Tensor> {
        let (_, c, s) = channel_dims("BatchNorm (sync backward)", xhat.shape())?;
        if gy.shape() != xhat.shape() || sums.sum_gy.len() != c || stats.inv_std.len() != c {
            return Err(NnError::input(
                "BatchNorm (sync backward)",
                format!("gradient {:?} for an input {:?}", gy.shape(), xhat.shape()),
            ));
        }
        let n = stats.count.max(1) as f64;
        let w = self.weight.as_ref().map(|p| p.value().to_vec());
        let (xh, g) = (xhat.contiguous(), gy.contiguous());
        let (xh, g) = (xh.as_slice().expect("contiguous"), g.as_slice().expect("contiguous"));
        let dx: Vec<f32> = xh
            .iter()
            .zip(g)
            .enumerate()
            .map(|(i, (&xv, &gv))| {
                let ch = (i / s) % c;
                let scale = w.as_ref().map_or(1.0, |w| w[ch] as f64) * stats.inv_std[ch];
                (scale * (gv as f64 - sums.sum_gy[ch] / n - xv as f64 * sums.sum_gy_xhat[ch] / n)) as f32
            })
            .collect();
        Ok(Tensor::from_vec(dx, xhat.shape())?)
    }

    fn params(&self) -> Vec<(String, Param)> {
        let mut v = Vec::new();
        if let Some(w) = &self.weight {
            v.push(("weight".to_string(), w.clone()));
        }
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }

    fn buffers(&self) -> Vec<(String, Buffer)> {
        match &self.running {
            Some((m, v, n)) => vec![
                ("running_mean".to_string(), m.clone()),
                ("running_var".to_string(), v.clone()),
                ("num_batches_tracked".to_string(), n.clone()),
            ],
            None => Vec::new(),
        }
    }

    fn describe_as(&self, name: &str) -> String {
        format!(
            "{name}({}, eps={}, momentum={}, affine={}, track_running_stats={})",
            self.num_features,
            self.eps,
            self.momentum.map_or("None".to_string(), |m| m.to_string()),
            self.weight.is_some(),
            self.running.is_some()
        )
    }
}

fn channel_dims(what: &'static str, shape: &[usize]) -> Result<(usize, usize, usize)> {
    if shape.len() < 2 {
        return Err(NnError::input(what, format!("expected an input [N, C, ...], got {shape:?}")));
    }
    Ok((shape[0], shape[1], shape[2..].iter().product()))
}

/// Per-channel `(sum x, sum x^2)` in `f64` over one micro-shard's input
/// `[N, C, ...]` (every row and position), and the number of values per
/// channel: the leaf that synchronised batch norm sums over micro-shards.
pub fn channel_sums(x: &Tensor) -> Result<(Vec<f64>, Vec<f64>, usize)> {
    let (n, c, s) = channel_dims("BatchNorm (sync)", x.shape())?;
    let x = x.contiguous();
    let xs = x.as_slice().expect("contiguous");
    let (mut s1, mut s2) = (vec![0.0f64; c], vec![0.0f64; c]);
    for (i, &v) in xs.iter().enumerate() {
        let ch = (i / s.max(1)) % c.max(1);
        s1[ch] += v as f64;
        s2[ch] += v as f64 * v as f64;
    }
    Ok((s1, s2, n * s))
}

/// Per-channel `(sum gy, sum gy xhat)` in `f64` over one micro-shard: the
/// backward leaf of synchronised batch norm (and this shard's `db`, `dw`).
#[derive(Debug, Clone, PartialEq)]
pub struct GradSums {
    /// `sum gy` per channel.
    pub sum_gy: Vec<f64>,
    /// `sum gy xhat` per channel.
    pub sum_gy_xhat: Vec<f64>,
}

/// [`GradSums`] of one micro-shard from its output gradient `gy` and normalised input `xhat`.
pub fn grad_sums(xhat: &Tensor, gy: &Tensor) -> Result<GradSums> {
    let (_, c, s) = channel_dims("BatchNorm (sync backward)", xhat.shape())?;
    if gy.shape() != xhat.shape() {
        return Err(NnError::input(
            "BatchNorm (sync backward)",
            format!("gradient {:?} for an input {:?}", gy.shape(), xhat.shape()),
        ));
    }
    let (xh, g) = (xhat.contiguous(), gy.contiguous());
    let (xh, g) = (xh.as_slice().expect("contiguous"), g.as_slice().expect("contiguous"));
    let (mut a, mut b) = (vec![0.0f64; c], vec![0.0f64; c]);
    for (i, (&xv, &gv)) in xh.iter().zip(g).enumerate() {
        let ch = (i / s.max(1)) % c.max(1);
        a[ch] += gv as f64;
        b[ch] += gv as f64 * xv as f64;
    }
    Ok(GradSums { sum_gy: a, sum_gy_xhat: b })
}

/// Batch statistics over a whole batch, from the per-channel sums of all its
/// micro-shards (synchronised batch norm, torch `SyncBatchNorm`).
#[derive(Debug, Clone, PartialEq)]
pub struct SyncStats {
    /// Mean per channel: `sum x / count`.
    pub mean: Vec<f64>,
    /// Biased variance per channel: `max(sum x^2 / count - mean^2, 0)`.
    pub var: Vec<f64>,
    /// `1 / sqrt(var + eps)` per channel.
    pub inv_std: Vec<f64>,
    /// Values per channel over the whole batch.
    pub count: usize,
}

impl SyncStats {
    /// From the summed `(sum x, sum x^2)` of all micro-shards and their total `count`.
    pub fn from_sums(sum: &[f64], sum_sq: &[f64], count: usize, eps: f32) -> Self {
        let n = count.max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let var: Vec<f64> = sum_sq.iter().zip(&mean).map(|(q, m)| (q / n - m * m).max(0.0)).collect();
        let inv_std = var.iter().map(|v| 1.0 / (v + eps as f64).sqrt()).collect();
        SyncStats { mean, var, inv_std, count }
    }

    /// The unbiased variance (`count / (count - 1)` times [`SyncStats::var`];
    /// the biased one at `count == 1`), as the running estimate takes it.
    pub fn unbiased_var(&self) -> Vec<f64> {
        let n = self.count as f64;
        let f = if self.count > 1 { n / (n - 1.0) } else { 1.0 };
        self.var.iter().map(|v| v * f).collect()
    }
}

macro_rules! batch_norm_layer {
    ($(#[$doc:meta])* $name:ident, $label:literal, $ranks:expr, $shapes:literal) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(pub BatchNorm);

        impl $name {
            /// With torch's defaults: eps 1e-5, momentum 0.1, affine, tracking running statistics.
            pub fn new(num_features: usize) -> Self {
                $name(BatchNorm::build(num_features, 1e-5, Some(0.1), true, true))
            }

            /// [`Self::with_options`] for sizes from files or configurations:
            /// more than [`nw_tensor::MAX_ELEMENTS`] features is an error, before
            /// anything is allocated.
            pub fn try_with_options(
                num_features: usize,
                eps: f32,
                momentum: Option<f32>,
                affine: bool,
                track_running_stats: bool,
            ) -> Result<Self> {
                Ok($name(BatchNorm::try_build(num_features, eps, momentum, affine, track_running_stats)?))
            }

            /// With every option.
            ///
            /// # Panics
            /// When `num_features` exceeds [`nw_tensor::MAX_ELEMENTS`] (see `try_with_options`).
            pub fn with_options(
                num_features: usize,
                eps: f32,
                momentum: Option<f32>,
                affine: bool,
                track_running_stats: bool,
            ) -> Self {
                $name(BatchNorm::build(num_features, eps, momentum, affine, track_running_stats))
            }
        }

        impl std::ops::Deref for $name {
            type Target = BatchNorm;
            fn deref(&self) -> &BatchNorm {
                &self.0
            }
        }

        impl Module for $name {
            fn forward(&self, x: &Var) -> Result<Var> {
                if !$ranks.contains(&x.shape().len()) {
                    return Err(NnError::input($label, format!("expected input {}, got {:?}", $shapes, x.shape())));
                }
                self.0.forward_checked($label, x)
            }
            fn named_parameters(&self) -> Vec<(String, Param)> {
                self.0.params()
            }
            fn named_buffers(&self) -> Vec<(String, Buffer)> {
                self.0.buffers()
            }
            fn set_training(&self, training: bool) {
                self.0.mode.set(training)
            }
            fn describe(&self) -> String {
                self.0.describe_as($label)
            }
            fn for_each_batch_norm(&mut self, f: &mut dyn FnMut(&mut BatchNorm)) {
                f(&mut self.0)
            }
        }
    };
}

batch_norm_layer!(
    /// Batch normalisation over `[N, C]` or `[N, C, L]` (torch `nn.BatchNorm1d`); see [`BatchNorm`].
    BatchNorm1d, "BatchNorm1d", [2usize, 3], "[N, C] or [N, C, L]"
);
batch_norm_layer!(
    /// Batch normalisation over `[N, C, H, W]` (torch `nn.BatchNorm2d`); see [`BatchNorm`].
    BatchNorm2d, "BatchNorm2d", [4usize], "[N, C, H, W]"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_stats_update_by_hand() {
        // one channel, values 1, 2, 3, 4: mean 2.5, unbiased var 5/3
        let bn = BatchNorm1d::new(1);
        let x = Var::constant(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4, 1]).unwrap());
        bn.forward(&x).unwrap();
        let (rm, rv, nb) = bn.running.as_ref().unwrap();
        // 0.9 * 0 + 0.1 * 2.5 and 0.9 * 1 + 0.1 * 5/3
        assert!((rm.tensor().to_vec()[0] - 0.25).abs() < 1e-7);
        assert!((rv.tensor().to_vec()[0] - (0.9 + 0.1 * 5.0 / 3.0) as f32).abs() < 1e-7);
        assert_eq!(nb.value(), BufferValue::I64 { shape: vec![], data: vec![1] });
        // eval: running stats, no update
        bn.eval();
        let y = bn.forward(&x).unwrap();
        let want = (1.0 - 0.25) / (rv.tensor().to_vec()[0] + 1e-5).sqrt();
        assert!((y.value().to_vec()[0] - want).abs() < 1e-6);
        assert_eq!(nb.value(), BufferValue::I64 { shape: vec![], data: vec![1] });
        let names: Vec<String> = bn.named_buffers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["running_mean", "running_var", "num_batches_tracked"]);
    }

    #[test]
    fn sync_stats_and_gradient_by_hand() {
        // Two shards of one channel: [1, 2] and [3, 4]; all four: mean 2.5,
        // biased var 1.25 (sum x^2 = 30: 30/4 - 6.25), unbiased 5/3.
        let bn = BatchNorm1d::with_options(1, 0.0, Some(0.1), false, true);
        let a = Tensor::from_vec(vec![1.0, 2.0], &[2, 1]).unwrap();
        let b = Tensor::from_vec(vec![3.0, 4.0], &[2, 1]).unwrap();
        let (sa, qa, na) = channel_sums(&a).unwrap();
        let (sb, qb, nb) = channel_sums(&b).unwrap();
        assert_eq!((sa[0], qa[0], na), (3.0, 5.0, 2));
        let st = SyncStats::from_sums(&[sa[0] + sb[0]], &[qa[0] + qb[0]], na + nb, 0.0);
        assert_eq!((st.mean[0], st.var[0], st.unbiased_var()[0]), (2.5, 1.25, 1.25 * (4.0 / 3.0)));
        let (xhat, y) = bn.apply_stats(&a, &st).unwrap();
        let want = [-1.5 / 1.25f64.sqrt(), -0.5 / 1.25f64.sqrt()];
        assert_eq!(xhat.to_vec(), want.map(|v| v as f32).to_vec());
        assert_eq!(y.to_vec(), xhat.to_vec(), "no affine: y = xhat");
        // The whole batch at once through autograd gives the same input gradient
        // for gy = [1, 0 | 0, 0]: shard a's dx from the summed GradSums.
        let (xb, _) = bn.apply_stats(&b, &st).unwrap();
        let ga = Tensor::from_vec(vec![1.0, 0.0], &[2, 1]).unwrap();
        let gb = Tensor::zeros(&[2, 1]);
        let (pa, pb) = (grad_sums(&xhat, &ga).unwrap(), grad_sums(&xb, &gb).unwrap());
        let sums = GradSums {
            sum_gy: vec![pa.sum_gy[0] + pb.sum_gy[0]],
            sum_gy_xhat: vec![pa.sum_gy_xhat[0] + pb.sum_gy_xhat[0]],
        };
        let dx = bn.input_grad(&xhat, &ga, &st, &sums).unwrap();
        let whole = Var::leaf(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[4, 1]).unwrap(), true);
        let (out, _) = whole.batch_norm_train(None, None, 0.0).unwrap();
        let g = out.backward_with(Tensor::from_vec(vec![1.0, 0.0, 0.0, 0.0], &[4, 1]).unwrap()).unwrap();
        let full = g.wrt(&whole).unwrap().to_vec();
        for (d, f) in dx.to_vec().iter().zip(&full[..2]) {
            assert!((d - f).abs() < 1e-6, "{d} vs {f}");
        }
        // Running estimates take the whole batch's statistics.
        bn.update_running(&st.mean, &st.unbiased_var());
        let (rm, rv, _) = bn.running.as_ref().unwrap();
        assert_eq!(rm.tensor().to_vec(), vec![0.25]);
        assert_eq!(rv.tensor().to_vec(), vec![(0.9 + 0.1 * 5.0 / 3.0) as f32]);
        // A BatchNorm child is recognised as this layer; another one is not.
        assert!(bn.is_layer(&bn));
        assert!(bn.handle().is_layer(&bn));
        assert!(!bn.is_layer(&BatchNorm1d::with_options(1, 0.0, Some(0.1), false, true)));
        assert!(!bn.is_layer(&LayerNorm::new(&[1])));
    }

    #[test]
    fn cumulative_momentum_and_rank_checks() {
        let bn = BatchNorm1d::with_options(1, 1e-5, None, false, true);
        for v in [[0.0, 2.0], [4.0, 6.0]] {
            bn.forward(&Var::constant(Tensor::from_vec(v.to_vec(), &[2, 1]).unwrap())).unwrap();
        }
        // cumulative average of the batch means 1 and 5 is 3
        assert!((bn.running.as_ref().unwrap().0.tensor().to_vec()[0] - 3.0).abs() < 1e-6);
        assert!(bn.forward(&Var::constant(Tensor::zeros(&[2, 1, 1, 1]))).is_err());
        assert!(bn.forward(&Var::constant(Tensor::zeros(&[2, 3]))).is_err());
        assert!(BatchNorm2d::new(3).forward(&Var::constant(Tensor::zeros(&[2, 3]))).is_err());
    }
}
