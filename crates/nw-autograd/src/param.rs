//! Trainable parameters: a tensor with a stable identity, shared between the
//! module that owns it and the optimizer that updates it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use nw_tensor::gemm::{PackCache, PackedMatrix};
use nw_tensor::{Tensor, TensorError};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Identity of a graph leaf or parameter: gradients are keyed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(crate) u64);

impl NodeId {
    /// A fresh, process-unique id.
    pub(crate) fn fresh() -> Self {
        NodeId(NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }

    /// The raw number (unique within this process; not stable across runs).
    pub fn raw(self) -> u64 {
        self.0
    }
}

/// A trainable tensor. Cloning a `Param` gives another handle to the same
/// storage (as a model and its optimizer both hold it); the value is read
/// with [`Param::value`] (O(1), copy-on-write) and changed with
/// [`Param::update`] or [`Param::set`].
///
/// `Param` is `Send + Sync`, so a model can move to another thread.
#[derive(Clone)]
pub struct Param {
    id: NodeId,
    value: Arc<RwLock<Tensor>>,
    /// The GEMM pack of the value's transpose, for inference through a
    /// linear layer ([`Param::packed_transpose`]); emptied before every write.
    pack: Arc<PackCache>,
    /// Bumped by every write ([`Param::version`]).
    version: Arc<AtomicU64>,
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Param#{}{:?}", self.id.0, self.shape())
    }
}

impl Param {
    /// A new parameter holding `value`.
    pub fn new(value: Tensor) -> Self {
        Param {
            id: NodeId::fresh(),
            value: Arc::new(RwLock::new(value)),
            pack: Arc::default(),
            version: Arc::default(),
        }
    }

    /// The parameter's identity.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The current value (an O(1) copy-on-write handle).
    pub fn value(&self) -> Tensor {
        self.read().clone()
    }

    /// A counter that every write ([`Param::update`], [`Param::set`]) bumps,
    /// shared by all handles: two equal readings mean the value did not change
    /// in between, so a copy taken at the first is still current (the weight
    /// monitor keeps its previous-weights buffer this way instead of copying
    /// the weights before every recorded step). It counts writes, not changes:
    /// a write that stores the same bits still bumps it.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The shape of the value.
    pub fn shape(&self) -> Vec<usize> {
        self.read().shape().to_vec()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the parameter has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the value; the shape must stay the same.
    pub fn set(&self, value: Tensor) -> Result<(), TensorError> {
        let mut guard = self.write();
        if guard.shape() != value.shape() {
            return Err(TensorError::ShapeMismatch {
                op: "Param::set",
                lhs: guard.shape().to_vec(),
                rhs: value.shape().to_vec(),
            });
        }
        *guard = value;
        Ok(())
    }

    /// Runs `f` on the value in place (how optimizers update weights). If a
    /// graph still holds the old value, the first write copies it, so the
    /// graph keeps seeing the value it was built from.
    pub fn update<R>(&self, f: impl FnOnce(&mut Tensor) -> R) -> R {
        f(&mut self.write())
    }

    /// The value's transpose (a 2-D `[out, in]` weight read as `[in, out]`)
    /// packed for GEMM ([`PackedMatrix`]), packed on first use and reused
    /// while the value is unchanged: inference through a linear layer
    /// (`x W^T`) then skips packing `W^T` on every call. The pack can never
    /// be stale: [`Param::update`] and [`Param::set`] drop it, and it is
    /// only reused while it shares the value's copy-on-write storage.
    ///
    /// # Errors
    /// When the value is not 2-D.
    pub fn packed_transpose(&self) -> Result<Arc<PackedMatrix>, TensorError> {
        let wt = self.read().t()?;
        self.pack.get(&wt)
    }

    /// Whether two handles refer to the same parameter.
    pub fn same(&self, other: &Param) -> bool {
        Arc::ptr_eq(&self.value, &other.value)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tensor> {
        // A poisoned lock only means another thread panicked mid-update; the
        // tensor itself is always a valid value, so keep going.
        self.value.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The value for writing. Drops the cached pack first (every write goes
    /// through here), which also releases its hold on the storage so an
    /// in-place update does not have to copy it.
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tensor> {
        let guard = self.value.write().unwrap_or_else(|e| e.into_inner());
        // Bumped while the lock is held and before the caller can change the
        // value: whoever reads the old count and then the value (under the
        // read lock) sees the value of that count or a later one.
        self.version.fetch_add(1, Ordering::AcqRel);
        self.pack.clear();
        guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_bumps_the_version_of_every_handle() {
        let p = Param::new(Tensor::zeros(&[2]));
        let q = p.clone();
        let v0 = p.version();
        let _ = p.value(); // reads do not count
        assert_eq!(p.version(), v0);
        q.update(|t| t.as_slice_mut()[0] = 1.0);
        assert_eq!(p.version(), v0 + 1);
        p.set(Tensor::ones(&[2])).unwrap();
        assert_eq!(q.version(), v0 + 2);
    }
}
