//! The [`Module`] trait, shared [`Buffer`]s, and the [`Sequential`] container.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use nw_autograd::{Param, Var};
use nw_tensor::Tensor;

use crate::error::{NnError, Result};

/// A layer or a model: a forward function plus its named parameters and
/// buffers.
///
/// Names are PyTorch `state_dict` paths: a layer reports its own tensors
/// (`weight`, `bias`, `running_mean`), and a container prefixes each
/// child's names with the child's name and a dot (`0.weight`,
/// `encoder.1.bias`; see [`prefixed`]). Parameters are trained; buffers
/// (BatchNorm's running statistics) are state that is saved and loaded but
/// never given a gradient.
///
/// **Mode.** `forward` takes `&self`; modules whose behaviour depends on
/// training vs evaluation mode (BatchNorm) keep the flag in an atomic cell
/// and update their buffers through shared handles, so a model is used by
/// shared reference. [`Module::set_training`] switches the mode of a module
/// and every child; [`Module::train`] / [`Module::eval`] are shorthands.
/// Every module starts in training mode, as in PyTorch.
///
/// Modules are `Send + Sync` so that a model can move to, or be shared
/// with, another thread.
pub trait Module: Send + Sync {
    /// Applies the module to `x`.
    fn forward(&self, x: &Var) -> Result<Var>;

    /// The trainable parameters with their names relative to this module,
    /// in registration order (PyTorch's order).
    fn named_parameters(&self) -> Vec<(String, Param)> {
        Vec::new()
    }

    /// The buffers (non-trainable state) with their names, in PyTorch's order.
    fn named_buffers(&self) -> Vec<(String, Buffer)> {
        Vec::new()
    }

    /// The names (as in [`Module::named_parameters`]) of the parameters whose
    /// gradient is row-sparse (an [`crate::Embedding`] built with
    /// `with_sparse(true)`): what a row-sparse optimizer such as SparseAdam
    /// can take. The default has none; containers forward to their children.
    fn sparse_parameters(&self) -> Vec<String> {
        Vec::new()
    }

    /// Switches training (`true`) or evaluation mode, for this module and
    /// all of its children. The default does nothing (no mode-dependent
    /// behaviour).
    fn set_training(&self, training: bool) {
        let _ = training;
    }

    /// A one-line description such as `Linear(in_features=4, out_features=2, bias=true)`.
    fn describe(&self) -> String;

    /// Calls `f` on every batch-normalisation layer in this module and its
    /// children, in registration order ([`crate::update_bn`] uses it to
    /// switch their momentum). The default has none; containers forward to
    /// their children.
    fn for_each_batch_norm(&mut self, f: &mut dyn FnMut(&mut crate::BatchNorm)) {
        let _ = f;
    }

    /// Training mode (batch statistics, buffer updates).
    fn train(&self) {
        self.set_training(true);
    }

    /// Evaluation mode (running statistics, no buffer updates).
    fn eval(&self) {
        self.set_training(false);
    }

    /// The parameters without names, in the same order.
    fn parameters(&self) -> Vec<Param> {
        self.named_parameters().into_iter().map(|(_, p)| p).collect()
    }

    /// Total number of trainable scalars.
    fn num_parameters(&self) -> usize {
        self.named_parameters().iter().map(|(_, p)| p.len()).sum()
    }
}

/// Prefixes every name with `prefix` and a dot: how a container reports the
/// tensors of a child named `prefix`.
///
/// ```
/// use nw_nn::{Linear, Module, prefixed};
/// use nw_tensor::Rng;
/// let head = Linear::new(3, 2, &mut Rng::new(0));
/// let names: Vec<String> = prefixed("head", head.named_parameters()).into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["head.weight", "head.bias"]);
/// ```
pub fn prefixed<T>(prefix: &str, items: Vec<(String, T)>) -> Vec<(String, T)> {
    items.into_iter().map(|(n, t)| (format!("{prefix}.{n}"), t)).collect()
}

/// The element type of a buffer, as stored in state files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// 32-bit float (every parameter, running statistics).
    F32,
    /// 64-bit signed integer (BatchNorm's `num_batches_tracked`, as PyTorch stores it).
    I64,
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "F32",
            Dtype::I64 => "I64",
        })
    }
}

/// The value of a buffer: an f32 tensor or an i64 array.
#[derive(Debug, Clone, PartialEq)]
pub enum BufferValue {
    /// An f32 tensor.
    F32(Tensor),
    /// A row-major i64 array of the given shape.
    I64 {
        /// Dimensions (`[]` for a scalar).
        shape: Vec<usize>,
        /// Row-major values.
        data: Vec<i64>,
    },
}

impl BufferValue {
    /// The dimensions.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            BufferValue::F32(t) => t.shape().to_vec(),
            BufferValue::I64 { shape, .. } => shape.clone(),
        }
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        match self {
            BufferValue::F32(_) => Dtype::F32,
            BufferValue::I64 { .. } => Dtype::I64,
        }
    }
}

/// Non-trainable module state (running statistics, counters): a shared
/// handle, so the module updates it from `forward(&self)` and state
/// loading writes into the live module. Cloning gives another handle to the
/// same storage.
#[derive(Clone)]
pub struct Buffer {
    value: Arc<RwLock<BufferValue>>,
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer({:?})", self.read())
    }
}

impl Buffer {
    /// A buffer holding an f32 tensor.
    pub fn f32(t: Tensor) -> Self {
        Buffer { value: Arc::new(RwLock::new(BufferValue::F32(t))) }
    }

    /// A buffer holding one i64 (shape `[]`).
    pub fn i64_scalar(v: i64) -> Self {
        Buffer { value: Arc::new(RwLock::new(BufferValue::I64 { shape: vec![], data: vec![v] })) }
    }

    /// The current value (a copy; O(1) for tensors).
    pub fn value(&self) -> BufferValue {
        self.read().clone()
    }

    /// The current value as a tensor (i64 values are converted).
    pub fn tensor(&self) -> Tensor {
        match &*self.read() {
            BufferValue::F32(t) => t.clone(),
            BufferValue::I64 { shape, data } => {
                Tensor::from_vec(data.iter().map(|&v| v as f32).collect(), shape)
                    .expect("length matches shape")
            }
        }
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        self.read().dtype()
    }

    /// The dimensions.
    pub fn shape(&self) -> Vec<usize> {
        self.read().shape()
    }

    /// Replaces the value; shape and dtype must stay the same.
    pub fn set(&self, v: BufferValue) -> Result<()> {
        let mut g = self.value.write().unwrap_or_else(|e| e.into_inner());
        if g.dtype() != v.dtype() || g.shape() != v.shape() {
            return Err(NnError::input(
                "Buffer::set",
                format!("{} {:?} cannot replace {} {:?}", v.dtype(), v.shape(), g.dtype(), g.shape()),
            ));
        }
        *g = v;
        Ok(())
    }

    /// Runs `f` on the value in place.
    pub fn update<R>(&self, f: impl FnOnce(&mut BufferValue) -> R) -> R {
        f(&mut self.value.write().unwrap_or_else(|e| e.into_inner()))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BufferValue> {
        // a poisoned lock only means a panic elsewhere mid-update; the value is whole
        self.value.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// A training/evaluation flag that modules hold (atomic, so modules stay `Sync`).
#[derive(Debug)]
pub struct ModeFlag(AtomicBool);

impl Default for ModeFlag {
    fn default() -> Self {
        ModeFlag(AtomicBool::new(true))
    }
}

impl ModeFlag {
    /// Whether in training mode.
    pub fn is_training(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the mode.
    pub fn set(&self, training: bool) {
        self.0.store(training, Ordering::Relaxed)
    }
}

/// Modules applied one after another; children are named by position
/// (`0`, `1`, ...) as in PyTorch's `nn.Sequential`.
///
/// ```
/// use nw_autograd::Var;
/// use nw_nn::{Linear, Module, Relu, Sequential};
/// use nw_tensor::{Rng, Tensor};
///
/// let mut rng = Rng::new(0);
/// let net = Sequential::new().with(Linear::new(4, 8, &mut rng)).with(Relu).with(Linear::new(8, 2, &mut rng));
/// let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
/// assert_eq!(net.num_parameters(), 4 * 8 + 8 + 8 * 2 + 2);
/// let y = net.forward(&Var::constant(Tensor::zeros(&[3, 4]))).unwrap();
/// assert_eq!(y.shape(), &[3, 2]);
/// ```
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// An empty sequence (its forward is the identity).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a module (builder style).
    pub fn with(mut self, m: impl Module + 'static) -> Self {
        self.layers.push(Box::new(m));
        self
    }

    /// Appends a boxed module.
    pub fn push(&mut self, m: Box<dyn Module>) {
        self.layers.push(m);
    }

    /// The number of children.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there is no child.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The child at position `i`.
    pub fn get(&self, i: usize) -> Option<&dyn Module> {
        self.layers.get(i).map(|b| b.as_ref())
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Var) -> Result<Var> {
        let mut h = x.clone();
        for l in &self.layers {
            h = l.forward(&h)?;
        }
        Ok(h)
    }

    fn named_parameters(&self) -> Vec<(String, Param)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            out.extend(prefixed(&i.to_string(), l.named_parameters()));
        }
        out
    }

    fn named_buffers(&self) -> Vec<(String, Buffer)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            out.extend(prefixed(&i.to_string(), l.named_buffers()));
        }
        out
    }

    fn sparse_parameters(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            out.extend(l.sparse_parameters().into_iter().map(|n| format!("{i}.{n}")));
        }
        out
    }

    fn set_training(&self, training: bool) {
        for l in &self.layers {
            l.set_training(training);
        }
    }

    fn for_each_batch_norm(&mut self, f: &mut dyn FnMut(&mut crate::BatchNorm)) {
        for l in &mut self.layers {
            l.for_each_batch_norm(f);
        }
    }

    fn describe(&self) -> String {
        let inner: Vec<String> =
            self.layers.iter().enumerate().map(|(i, l)| format!("({i}): {}", l.describe())).collect();
        format!("Sequential({})", inner.join(", "))
    }
}

impl std::fmt::Debug for Sequential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}
