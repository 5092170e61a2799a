//! [`Var`]: a tensor that remembers how it was made, and the backward sweep.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use nw_tensor::Tensor;

use crate::backward::{InputGrad, backward_op};
use crate::error::{AutogradError, Result};
use crate::grads::Grads;
use crate::op::Op;
use crate::param::{NodeId, Param};

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether operations on this thread currently record a graph.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Runs `f` without recording any graph (evaluation, weight updates).
///
/// ```
/// # use nw_autograd::{no_grad, Var};
/// # use nw_tensor::Tensor;
/// let x = Var::leaf(Tensor::ones(&[2]), true);
/// let y = no_grad(|| x.exp());
/// assert!(!y.requires_grad());
/// ```
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

/// While alive, operations on this thread record no graph. Restores the
/// previous setting when dropped, so guards nest.
pub struct NoGradGuard {
    prev: bool,
}

impl NoGradGuard {
    /// Disables graph recording until the guard is dropped.
    pub fn new() -> Self {
        let prev = GRAD_ENABLED.with(|g| g.replace(false));
        NoGradGuard { prev }
    }
}

impl Default for NoGradGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

pub(crate) struct Node {
    pub(crate) id: NodeId,
    pub(crate) value: Tensor,
    pub(crate) requires_grad: bool,
    /// Made by [`Var::leaf`] / [`Var::param`] rather than by an operation.
    pub(crate) is_leaf: bool,
    /// How this value was made; `None` for leaves and constants. Taken (and
    /// so freed, with every tensor it saved) when backward has used it.
    pub(crate) op: RefCell<Option<Op>>,
}

impl Drop for Node {
    /// Dropping the last handle of a long chain would recurse once per node
    /// through `Rc` drops; unlink iteratively instead.
    fn drop(&mut self) {
        let mut ops: Vec<Op> = self.op.get_mut().take().into_iter().collect();
        while let Some(op) = ops.pop() {
            let parents: Vec<Var> = op.parents().into_iter().cloned().collect();
            drop(op);
            for p in parents {
                if let Ok(mut node) = Rc::try_unwrap(p.0)
                    && let Some(op) = node.op.get_mut().take()
                {
                    ops.push(op);
                }
            }
        }
    }
}

/// A tensor in a computation graph. Cloning is O(1) (a shared handle).
///
/// Build values from leaves ([`Var::leaf`], [`Var::param`]) with the
/// operations defined on `Var`, then call [`Var::backward`] on a scalar to
/// get every leaf's gradient as a [`Grads`] value.
///
/// ```
/// use nw_autograd::{Param, Var};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::from_vec(vec![2.0, -1.0], &[2]).unwrap());
/// let x = Var::constant(Tensor::from_vec(vec![3.0, 4.0], &[2]).unwrap());
/// // loss = sum((w * x)^2) = (6)^2 + (-4)^2
/// let loss = Var::param(&w).mul(&x).unwrap().square().sum();
/// assert_eq!(loss.value().item().unwrap(), 52.0);
/// let grads = loss.backward().unwrap();
/// // d/dw = 2 (w x) x = [36, -32]
/// assert_eq!(grads.get(&w).unwrap().to_vec(), vec![36.0, -32.0]);
/// ```
#[derive(Clone)]
pub struct Var(pub(crate) Rc<Node>);

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var#{}(requires_grad={}) {:?}", self.0.id.0, self.0.requires_grad, self.0.value)
    }
}

impl Var {
    /// A graph leaf; its gradient is reported under [`Var::id`] when
    /// `requires_grad` (use [`Grads::wrt`]).
    pub fn leaf(value: Tensor, requires_grad: bool) -> Var {
        Var(Rc::new(Node {
            id: NodeId::fresh(),
            value,
            requires_grad,
            is_leaf: true,
            op: RefCell::new(None),
        }))
    }

    /// A value that needs no gradient (data, targets, masks).
    pub fn constant(value: Tensor) -> Var {
        Self::leaf(value, false)
    }

    /// A leaf holding a parameter's current value; its gradient is reported
    /// under the parameter ([`Grads::get`]). Inside [`no_grad`] it is a constant.
    pub fn param(p: &Param) -> Var {
        Var(Rc::new(Node {
            id: p.id(),
            value: p.value(),
            requires_grad: is_grad_enabled(),
            is_leaf: true,
            op: RefCell::new(None),
        }))
    }

    /// Records the result of an operation: a graph node when grad mode is
    /// on and some input requires a gradient, a constant otherwise.
    pub(crate) fn from_op(value: Tensor, op: Op) -> Var {
        let requires_grad = is_grad_enabled() && op.parents().iter().any(|p| p.requires_grad());
        if requires_grad && crate::anomaly::is_anomaly_enabled() {
            crate::anomaly::check(&value, op.name(), crate::anomaly::Pass::Forward, 0);
        }
        let op = if requires_grad { Some(op) } else { None };
        Var(Rc::new(Node { id: NodeId::fresh(), value, requires_grad, is_leaf: false, op: RefCell::new(op) }))
    }

    /// The value.
    pub fn value(&self) -> &Tensor {
        &self.0.value
    }

    /// The shape of the value.
    pub fn shape(&self) -> &[usize] {
        self.0.value.shape()
    }

    /// This node's identity (gradients of leaves are keyed by it).
    pub fn id(&self) -> NodeId {
        self.0.id
    }

    /// Whether a gradient flows to this value.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// The same value cut off from the graph.
    pub fn detach(&self) -> Var {
        Var::constant(self.0.value.clone())
    }

    /// Back-propagates from this scalar (a one-element value, seeded with
    /// gradient 1) and returns the gradients of all leaves that require one.
    ///
    /// The sweep visits nodes once, in reverse topological order found
    /// iteratively (no recursion-depth limit), and frees each node's saved
    /// tensors as soon as it has been processed; calling `backward` twice on
    /// the same graph is an error ([`AutogradError::GraphConsumed`]).
    pub fn backward(&self) -> Result<Grads> {
        if self.0.value.len() != 1 {
            return Err(AutogradError::NonScalarBackward { shape: self.shape().to_vec() });
        }
        let seed = Tensor::ones(self.shape());
        self.backward_with(seed)
    }

    /// Back-propagates with an explicit output gradient of this value's shape:
    /// the gradients are those of `sum(self * grad)`.
    pub fn backward_with(&self, grad: Tensor) -> Result<Grads> {
        if grad.shape() != self.shape() {
            return Err(AutogradError::Tensor(nw_tensor::TensorError::ShapeMismatch {
                op: "backward",
                lhs: self.shape().to_vec(),
                rhs: grad.shape().to_vec(),
            }));
        }
        let mut out = Grads::new();
        if !self.requires_grad() {
            return Ok(out);
        }
        let mut order = self.topological_order()?;
        let mut pending: HashMap<NodeId, Tensor> = HashMap::new();
        // Touched rows of the nodes that row-sparse gradients (sparse embedding
        // lookups) reach: `Some(rows)` while every contribution so far was
        // row-sparse, `None` once a dense one arrived. Empty (and never looked
        // at) in graphs without sparse lookups.
        let mut sparse_rows: HashMap<NodeId, Option<Vec<usize>>> = HashMap::new();
        pending.insert(self.id(), grad);
        // Reverse topological order: every node is processed after all its consumers.
        while let Some(node) = order.pop() {
            let Some(g) = pending.remove(&node.id()) else {
                continue;
            };
            let op = node.0.op.borrow_mut().take();
            match op {
                None => match sparse_rows.remove(&node.id()).flatten() {
                    Some(mut rows) => {
                        rows.sort_unstable();
                        rows.dedup();
                        out.accumulate_rows(node.id(), g, rows)
                    }
                    None => out.accumulate(node.id(), g),
                },
                Some(op) => {
                    let anomaly = crate::anomaly::is_anomaly_enabled();
                    for (input, (parent, pg)) in backward_op(&op, &node.0.value, &g)?.into_iter().enumerate()
                    {
                        if !parent.requires_grad() {
                            continue;
                        }
                        if anomaly {
                            let (InputGrad::Full(t)
                            | InputGrad::Slice { grad: t, .. }
                            | InputGrad::Rows { grad: t, .. }) = &pg;
                            crate::anomaly::check(t, op.name(), crate::anomaly::Pass::Backward, input);
                        }
                        if !sparse_rows.is_empty()
                            && !matches!(pg, InputGrad::Rows { .. })
                            && let Some(r) = sparse_rows.get_mut(&parent.id())
                        {
                            *r = None; // a dense contribution: the gradient is dense
                        }
                        match pg {
                            InputGrad::Rows { grad, rows } => {
                                // row-sparse unless a dense contribution came first
                                let dense_before = pending.contains_key(&parent.id());
                                let entry = sparse_rows
                                    .entry(parent.id())
                                    .or_insert_with(|| (!dense_before).then(Vec::new));
                                if let Some(have) = entry {
                                    have.extend(rows);
                                }
                                match pending.get_mut(&parent.id()) {
                                    Some(acc) => acc.add_assign(&grad)?,
                                    None => {
                                        pending.insert(parent.id(), grad);
                                    }
                                }
                            }
                            InputGrad::Full(pg) => match pending.get_mut(&parent.id()) {
                                Some(acc) => acc.add_assign(&pg)?,
                                None => {
                                    pending.insert(parent.id(), pg);
                                }
                            },
                            InputGrad::Slice { axis, start, grad } => {
                                // zeros once per input, then each slice added in place
                                let acc = pending
                                    .entry(parent.id())
                                    .or_insert_with(|| Tensor::zeros(parent.shape()));
                                let idx: Vec<usize> = (start..start + grad.shape()[axis]).collect();
                                acc.index_add_(axis, &idx, &grad)?;
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Nodes reachable from `self` that require a gradient, in topological
    /// order (inputs before outputs), found with an explicit stack.
    fn topological_order(&self) -> Result<Vec<Var>> {
        let mut order = Vec::new();
        let mut visited: HashSet<NodeId> = HashSet::new();
        // (node, children pushed?)
        let mut stack: Vec<(Var, bool)> = vec![(self.clone(), false)];
        while let Some((v, expanded)) = stack.pop() {
            if expanded {
                order.push(v);
                continue;
            }
            if !visited.insert(v.id()) {
                continue;
            }
            let parents: Vec<Var> = {
                let op = v.0.op.borrow();
                match op.as_ref() {
                    Some(op) => op.parents().into_iter().filter(|p| p.requires_grad()).cloned().collect(),
                    None if v.0.is_leaf => Vec::new(),
                    // An operation's node without its op: an earlier backward consumed it.
                    None => return Err(AutogradError::GraphConsumed),
                }
            };
            stack.push((v, true));
            for p in parents {
                if !visited.contains(&p.id()) {
                    stack.push((p, false));
                }
            }
        }
        Ok(order)
    }
}
