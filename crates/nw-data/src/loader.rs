//! The seeded, shuffling batch loader.
//!
//! ## Order of an epoch
//! With shuffling on, the rows of epoch `e` are visited in the order
//! `Rng::new(epoch_seed(seed, e)).permutation(n)`, where
//! [`epoch_seed`]`(seed, e) = seed ^ mix64(e)` and `mix64` is the SplitMix64
//! finaliser. The order therefore depends only on the seed and the epoch
//! number: not on earlier epochs, on how many batches were consumed, or on
//! threads. A run resumed from a checkpoint at epoch `e` sees the same batches
//! as the run that never stopped. Without shuffling the order is `0..n`.
//!
//! The order is cut into consecutive batches of the batch size; the last one
//! is smaller when the size does not divide `n`, unless `drop_last` drops it.
//!
//! ## Background preparation
//! With `prefetch > 0` each epoch's batches are gathered on a helper thread
//! and handed over through a bounded channel holding at most `prefetch`
//! batches, while the consumer trains on the previous one. The helper builds
//! exactly the batches the consumer's thread would build, in the same order,
//! so results do not change (a test compares the two bit for bit). If the
//! thread cannot be started or stops, the remaining batches are built on the
//! consumer's thread.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use nw_tensor::{Rng, Tensor};

use crate::dataset::{Dataset, Targets};
use crate::error::{Result, invalid};

/// How many examples go into one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSize {
    /// The whole data set in one batch (full-batch gradient descent).
    Full,
    /// One example per batch (stochastic / online learning).
    Online,
    /// Mini-batches of this many examples (must be at least 1).
    Mini(usize),
}

impl BatchSize {
    /// The number of examples per batch for a data set of `n` examples
    /// (`Mini(b)` with `b > n` gives one batch of `n`).
    pub fn resolve(self, n: usize) -> usize {
        match self {
            BatchSize::Full => n.max(1),
            BatchSize::Online => 1,
            BatchSize::Mini(b) => b.min(n.max(1)),
        }
    }
}

/// How a [`BatchLoader`] cuts and orders batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Examples per batch. Default `Mini(32)`.
    pub batch_size: BatchSize,
    /// Shuffle each epoch (see the module docs for the order). Default `true`.
    pub shuffle: bool,
    /// Seed of the shuffles. Default 0.
    pub seed: u64,
    /// Drop the last batch when it is smaller than the batch size. Default `false`.
    pub drop_last: bool,
    /// Deliver class targets one-hot, as `Targets::Values` `[b, n_classes]`. Default `false`.
    pub one_hot: bool,
    /// Batches prepared ahead on a helper thread; 0 builds them on the
    /// consumer's thread. Default 2. Does not change the batches.
    pub prefetch: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: BatchSize::Mini(32),
            shuffle: true,
            seed: 0,
            drop_last: false,
            one_hot: false,
            prefetch: 2,
        }
    }
}

impl LoaderConfig {
    /// A default configuration with this batch size and seed.
    pub fn new(batch_size: BatchSize, seed: u64) -> Self {
        LoaderConfig { batch_size, seed, ..Self::default() }
    }

    /// Sets [`LoaderConfig::shuffle`].
    pub fn shuffle(mut self, shuffle: bool) -> Self {
        self.shuffle = shuffle;
        self
    }

    /// Sets [`LoaderConfig::drop_last`].
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// Sets [`LoaderConfig::one_hot`].
    pub fn one_hot(mut self, one_hot: bool) -> Self {
        self.one_hot = one_hot;
        self
    }

    /// Sets [`LoaderConfig::prefetch`].
    pub fn prefetch(mut self, prefetch: usize) -> Self {
        self.prefetch = prefetch;
        self
    }
}

/// One batch: inputs, targets, and which rows of the data set they are.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Features `[b, ...feature shape]`.
    pub x: Tensor,
    /// Targets of the `b` examples (one-hot values if the loader was asked to).
    pub y: Targets,
    /// The data set rows in this batch, in batch order.
    pub indices: Vec<usize>,
}

impl Batch {
    /// Number of examples in the batch.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch is empty (a loader never yields one).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// SplitMix64's finaliser: spreads the bits of `z + golden ratio` over the word.
fn mix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of epoch `epoch`'s shuffle: `seed ^ mix64(epoch)` (see the module docs).
pub fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    seed ^ mix64(epoch)
}

/// What one epoch delivers: the row order cut into batches.
#[derive(Debug)]
struct Plan {
    order: Vec<usize>,
    batch: usize,
    n_batches: usize,
    one_hot: bool,
}

fn make_batch(data: &Dataset, plan: &Plan, i: usize) -> Batch {
    let start = i * plan.batch;
    let end = (start + plan.batch).min(plan.order.len());
    let indices = plan.order[start..end].to_vec();
    // Indices come from a permutation of 0..n, so selection cannot fail.
    let x = data.features().index_select(0, &indices).expect("batch rows are in range");
    let mut y = data.targets().select(&indices).expect("batch rows are in range");
    if plan.one_hot && matches!(y, Targets::Classes { .. }) {
        y = Targets::Values(y.to_one_hot().expect("labels checked when the data set was built"));
    }
    Batch { x, y, indices }
}

/// A data set with a batching plan; [`BatchLoader::epoch`] gives an iterator
/// over one epoch's batches.
///
/// ```
/// use nw_data::{BatchLoader, BatchSize, LoaderConfig};
/// let loader = BatchLoader::new(nw_data::iris(), LoaderConfig::new(BatchSize::Mini(64), 7)).unwrap();
/// let sizes: Vec<usize> = loader.epoch(0).map(|b| b.len()).collect();
/// assert_eq!(sizes, vec![64, 64, 22]);
/// // The order of an epoch depends only on the seed and the epoch number.
/// assert_eq!(loader.epoch_order(3), loader.epoch_order(3));
/// ```
#[derive(Debug, Clone)]
pub struct BatchLoader {
    data: Arc<Dataset>,
    config: LoaderConfig,
}

impl BatchLoader {
    /// A loader over `data`. `BatchSize::Mini(0)` is an error.
    pub fn new(data: Dataset, config: LoaderConfig) -> Result<Self> {
        Self::from_arc(Arc::new(data), config)
    }

    /// A loader over a shared data set.
    pub fn from_arc(data: Arc<Dataset>, config: LoaderConfig) -> Result<Self> {
        if config.batch_size == BatchSize::Mini(0) {
            return Err(invalid("BatchLoader::new", "batch size must be at least 1"));
        }
        Ok(BatchLoader { data, config })
    }

    /// The data set.
    pub fn dataset(&self) -> &Dataset {
        &self.data
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Examples per (full) batch.
    pub fn batch_size(&self) -> usize {
        self.config.batch_size.resolve(self.data.len())
    }

    /// Batches in each epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.data.len(), self.batch_size());
        if self.config.drop_last { n / b } else { n.div_ceil(b) }
    }

    /// The order in which epoch `epoch` visits the rows (before cutting into
    /// batches and dropping the last one).
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let n = self.data.len();
        if self.config.shuffle {
            Rng::new(epoch_seed(self.config.seed, epoch)).permutation(n)
        } else {
            (0..n).collect()
        }
    }

    /// The batches of epoch `epoch` (numbered from 0), prepared in the
    /// background when `prefetch > 0`.
    pub fn epoch(&self, epoch: u64) -> Batches {
        let plan = Arc::new(Plan {
            order: self.epoch_order(epoch),
            batch: self.batch_size(),
            n_batches: self.batches_per_epoch(),
            one_hot: self.config.one_hot,
        });
        let mut it = Batches { data: Arc::clone(&self.data), plan, next: 0, rx: None, worker: None };
        if self.config.prefetch > 0 && it.plan.n_batches > 1 {
            let (tx, rx) = sync_channel(self.config.prefetch);
            let (data, plan) = (Arc::clone(&it.data), Arc::clone(&it.plan));
            let spawned = std::thread::Builder::new().name("nw-data-prefetch".into()).spawn(move || {
                for i in 0..plan.n_batches {
                    if tx.send(make_batch(&data, &plan, i)).is_err() {
                        return; // the consumer dropped the iterator
                    }
                }
            });
            if let Ok(handle) = spawned {
                it.rx = Some(rx);
                it.worker = Some(handle);
            }
        }
        it
    }
}

/// The batches of one epoch, in order. Dropping it early stops the helper thread.
#[derive(Debug)]
pub struct Batches {
    data: Arc<Dataset>,
    plan: Arc<Plan>,
    next: usize,
    rx: Option<Receiver<Batch>>,
    worker: Option<JoinHandle<()>>,
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.plan.n_batches {
            return None;
        }
        let from_worker = self.rx.as_ref().and_then(|rx| rx.recv().ok());
        let batch = match from_worker {
            Some(b) => b,
            None => {
                // Foreground, or the helper stopped: build it here (same batch).
                self.rx = None;
                make_batch(&self.data, &self.plan, self.next)
            }
        };
        self.next += 1;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.plan.n_batches - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches {}

impl Drop for Batches {
    fn drop(&mut self) {
        // Closing the channel makes the helper's next send fail, so it returns.
        drop(self.rx.take());
        if let Some(h) = self.worker.take() {
            let _ = h.join();
        }
    }
}
