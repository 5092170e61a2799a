//! Gradients as a value: what `backward()` returns.

use std::collections::HashMap;

use nw_tensor::Tensor;

use crate::param::{NodeId, Param};
use crate::var::Var;

/// The gradients of one backward sweep, keyed by the id of each leaf
/// (parameter or input variable) that required a gradient.
#[derive(Debug, Clone, Default)]
pub struct Grads {
    map: HashMap<NodeId, Tensor>,
}

impl Grads {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The gradient of a parameter, if it took part in the graph.
    pub fn get(&self, p: &Param) -> Option<&Tensor> {
        self.map.get(&p.id())
    }

    /// The gradient of a leaf variable (an input made with [`Var::leaf`]).
    pub fn wrt(&self, v: &Var) -> Option<&Tensor> {
        self.map.get(&v.id())
    }

    /// The gradient stored under `id`.
    pub fn get_id(&self, id: NodeId) -> Option<&Tensor> {
        self.map.get(&id)
    }

    /// Sets the gradient of a parameter (tests, custom gradient sources,
    /// gradient-free methods that estimate gradients).
    pub fn insert(&mut self, p: &Param, g: Tensor) {
        self.map.insert(p.id(), g);
    }

    /// Mutable access to a parameter's gradient (clipping, penalties).
    pub fn get_mut(&mut self, p: &Param) -> Option<&mut Tensor> {
        self.map.get_mut(&p.id())
    }

    /// Adds `g` into the gradient stored under `id` (accumulation when a
    /// value is used more than once, or over micro-batches).
    pub fn accumulate(&mut self, id: NodeId, g: Tensor) {
        match self.map.get_mut(&id) {
            Some(acc) => acc.add_assign(&g).expect("gradients of one leaf share its shape"),
            None => {
                self.map.insert(id, g);
            }
        }
    }

    /// Adds every gradient of `other` into this store.
    pub fn merge(&mut self, other: Grads) {
        for (id, g) in other.map {
            self.accumulate(id, g);
        }
    }

    /// Number of stored gradients.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no gradient is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All `(id, gradient)` pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &Tensor)> {
        self.map.iter()
    }
}
