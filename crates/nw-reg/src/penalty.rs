//! Weight penalties: L1, L2 and elastic net, as a loss term through autograd
//! or as a gradient term added straight into a [`Grads`] store, selectable
//! per parameter group with a [`PenaltySet`].
//!
//! The convention is scikit-learn's elastic net with PyTorch's L2 scaling:
//!
//! ```text
//! R(w)  = l1 * sum |w|  +  (l2 / 2) * sum w^2
//! dR/dw = l1 * sign(w)  +  l2 * w            (sign(0) = 0, as torch.abs' gradient)
//! ```
//!
//! so `Penalty::l2(λ)` adds exactly `λ w` to the gradient, the same as
//! torch.optim.SGD's `weight_decay=λ` (coupled L2), and
//! `Penalty::elastic_net(α, ρ)` is `l1 = α ρ`, `l2 = α (1 - ρ)`.

use std::collections::HashSet;

use nw_autograd::{Grads, NodeId, Param, Var};
use nw_tensor::Tensor;

use crate::error::{RegError, Result, check_strength};

/// An L1 / L2 / elastic-net penalty: `l1 * sum|w| + (l2/2) * sum w^2`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Penalty {
    l1: f32,
    l2: f32,
}

impl Penalty {
    /// No penalty (both strengths zero): what "no decay on biases" uses.
    pub fn none() -> Self {
        Penalty { l1: 0.0, l2: 0.0 }
    }

    /// Both strengths given directly; each must be finite and `>= 0`.
    pub fn new(l1: f32, l2: f32) -> Result<Self> {
        check_strength("Penalty::new", "l1", l1)?;
        check_strength("Penalty::new", "l2", l2)?;
        Ok(Penalty { l1, l2 })
    }

    /// Lasso: `lambda * sum|w|`, gradient `lambda * sign(w)`.
    pub fn l1(lambda: f32) -> Result<Self> {
        check_strength("Penalty::l1", "lambda", lambda)?;
        Ok(Penalty { l1: lambda, l2: 0.0 })
    }

    /// Ridge / weight decay: `(lambda/2) * sum w^2`, gradient `lambda * w`.
    pub fn l2(lambda: f32) -> Result<Self> {
        check_strength("Penalty::l2", "lambda", lambda)?;
        Ok(Penalty { l1: 0.0, l2: lambda })
    }

    /// Elastic net in scikit-learn's parameterisation:
    /// `alpha * l1_ratio * sum|w| + alpha * (1 - l1_ratio) / 2 * sum w^2`.
    /// `alpha >= 0`, `l1_ratio` in `[0, 1]`.
    pub fn elastic_net(alpha: f32, l1_ratio: f32) -> Result<Self> {
        check_strength("Penalty::elastic_net", "alpha", alpha)?;
        if !(0.0..=1.0).contains(&l1_ratio) {
            return Err(RegError::BadArgument {
                op: "Penalty::elastic_net",
                reason: format!("l1_ratio must be in [0, 1], got {l1_ratio}"),
            });
        }
        Ok(Penalty { l1: alpha * l1_ratio, l2: alpha * (1.0 - l1_ratio) })
    }

    /// The L1 strength.
    pub fn l1_strength(&self) -> f32 {
        self.l1
    }

    /// The L2 strength (the coefficient of `w` in the gradient).
    pub fn l2_strength(&self) -> f32 {
        self.l2
    }

    /// Whether both strengths are zero.
    pub fn is_zero(&self) -> bool {
        self.l1 == 0.0 && self.l2 == 0.0
    }

    /// The penalty of `params` as a scalar graph node, to add to a data loss
    /// before `backward()`. Zero strengths add no graph nodes; with no
    /// parameters or a zero penalty the result is the constant 0.
    pub fn loss(&self, params: &[Param]) -> Result<Var> {
        let mut total: Option<Var> = None;
        for p in params {
            let w = Var::param(p);
            let mut terms = Vec::new();
            if self.l1 != 0.0 {
                terms.push(w.abs().sum().mul_scalar(self.l1));
            }
            if self.l2 != 0.0 {
                terms.push(w.square().sum().mul_scalar(self.l2 * 0.5));
            }
            for t in terms {
                total = Some(match total {
                    None => t,
                    Some(acc) => acc.add(&t)?,
                });
            }
        }
        Ok(total.unwrap_or_else(|| Var::constant(Tensor::scalar(0.0))))
    }

    /// The penalty's value for `params`, summed in f64 (for logging).
    pub fn value(&self, params: &[Param]) -> f64 {
        params
            .iter()
            .map(|p| {
                let w = p.value();
                w.to_vec()
                    .iter()
                    .map(|&x| {
                        let x = x as f64;
                        self.l1 as f64 * x.abs() + 0.5 * self.l2 as f64 * x * x
                    })
                    .sum::<f64>()
            })
            .sum()
    }

    /// The penalty's gradient at `w`: `l1 * sign(w) + l2 * w`.
    pub fn grad(&self, w: &Tensor) -> Tensor {
        let (l1, l2) = (self.l1, self.l2);
        match (l1 != 0.0, l2 != 0.0) {
            (false, false) => w.zeros_like(),
            (true, false) => w.map(move |x| l1 * sign(x)),
            (false, true) => w.map(move |x| l2 * x),
            (true, true) => w.map(move |x| l1 * sign(x) + l2 * x),
        }
    }

    /// Adds the penalty's gradient into `grads` for each parameter, as if
    /// [`Penalty::loss`] had been added to the loss: `g <- g + (l1 sign(w) + l2 w)`.
    /// A parameter with no stored gradient gets the penalty's gradient alone.
    /// A stored gradient of a different shape is an error (nothing changed).
    pub fn apply_to_grads(&self, params: &[Param], grads: &mut Grads) -> Result<()> {
        if self.is_zero() {
            return Ok(());
        }
        check_grad_shapes(params, grads)?;
        for p in params {
            let pg = self.grad(&p.value());
            match grads.get_mut(p) {
                Some(g) => g.add_assign(&pg)?,
                None => grads.insert(p, pg),
            }
        }
        Ok(())
    }
}

/// Every stored gradient of `params` has its parameter's shape.
fn check_grad_shapes(params: &[Param], grads: &Grads) -> Result<()> {
    for p in params {
        if let Some(g) = grads.get(p)
            && g.shape() != p.shape().as_slice()
        {
            return Err(RegError::ShapeMismatch {
                op: "Penalty::apply_to_grads",
                lhs: p.shape(),
                rhs: g.shape().to_vec(),
            });
        }
    }
    Ok(())
}

/// sign with sign(0) = 0 (and NaN passed through), as torch.sign.
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x * 0.0
    }
}

/// Penalties per parameter group: each parameter belongs to at most one
/// group, and each group has its own [`Penalty`]. "No decay on biases and
/// norm layers" is [`PenaltySet::weights_only`] or a [`PenaltySet::by_name`]
/// rule.
///
/// ```
/// use nw_autograd::Param;
/// use nw_reg::{Penalty, PenaltySet};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::ones(&[2, 3]));
/// let b = Param::new(Tensor::ones(&[2]));
/// let set = PenaltySet::weights_only(&[w.clone(), b.clone()], Penalty::l2(0.1).unwrap()).unwrap();
/// assert_eq!(set.penalty_of(&w), Some(Penalty::l2(0.1).unwrap()));
/// assert!(set.penalty_of(&b).unwrap().is_zero());
/// // (0.1 / 2) * 6 ones
/// assert!((set.value() - 0.3).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, Default)]
pub struct PenaltySet {
    groups: Vec<(Vec<Param>, Penalty)>,
    seen: HashSet<NodeId>,
}

impl PenaltySet {
    /// An empty set (penalises nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a group. A parameter already in another group is an error.
    pub fn group(mut self, params: &[Param], penalty: Penalty) -> Result<Self> {
        for p in params {
            if !self.seen.insert(p.id()) {
                return Err(RegError::ParamMismatch {
                    op: "PenaltySet::group",
                    reason: format!("{p:?} is already in a group"),
                });
            }
        }
        self.groups.push((params.to_vec(), penalty));
        Ok(self)
    }

    /// Penalises parameters of rank >= 2 (weight matrices, conv kernels)
    /// and leaves rank 0 and 1 parameters (biases, norm scales and shifts)
    /// unpenalised: the usual "no decay on biases/norms" rule.
    pub fn weights_only(params: &[Param], penalty: Penalty) -> Result<Self> {
        let (w, rest): (Vec<Param>, Vec<Param>) = params.iter().cloned().partition(|p| p.shape().len() >= 2);
        PenaltySet::new().group(&w, penalty)?.group(&rest, Penalty::none())
    }

    /// Groups named parameters by a rule on the name (and parameter), e.g.
    /// `|name, _| if name.ends_with("bias") { Penalty::none() } else { decay }`.
    /// Parameters with equal penalties share a group, in first-seen order.
    pub fn by_name<S: AsRef<str>>(
        named: &[(S, Param)],
        rule: impl Fn(&str, &Param) -> Penalty,
    ) -> Result<Self> {
        let mut groups: Vec<(Vec<Param>, Penalty)> = Vec::new();
        for (name, p) in named {
            let pen = rule(name.as_ref(), p);
            match groups.iter_mut().find(|(_, q)| *q == pen) {
                Some((ps, _)) => ps.push(p.clone()),
                None => groups.push((vec![p.clone()], pen)),
            }
        }
        groups.into_iter().try_fold(PenaltySet::new(), |set, (ps, pen)| set.group(&ps, pen))
    }

    /// The penalty that applies to `p`, if `p` is in some group.
    pub fn penalty_of(&self, p: &Param) -> Option<Penalty> {
        self.groups.iter().find(|(ps, _)| ps.iter().any(|q| q.id() == p.id())).map(|(_, pen)| *pen)
    }

    /// The groups, in the order they were added.
    pub fn groups(&self) -> &[(Vec<Param>, Penalty)] {
        &self.groups
    }

    /// The total penalty as a scalar graph node (sum over groups).
    pub fn loss(&self) -> Result<Var> {
        let mut total = Var::constant(Tensor::scalar(0.0));
        for (ps, pen) in &self.groups {
            if !pen.is_zero() && !ps.is_empty() {
                total = total.add(&pen.loss(ps)?)?;
            }
        }
        Ok(total)
    }

    /// The total penalty's value (f64, for logging).
    pub fn value(&self) -> f64 {
        self.groups.iter().map(|(ps, pen)| pen.value(ps)).sum()
    }

    /// Adds each group's penalty gradient into `grads`. Shapes are checked
    /// for every group first, so an error leaves `grads` unchanged.
    pub fn apply_to_grads(&self, grads: &mut Grads) -> Result<()> {
        for (ps, _) in &self.groups {
            check_grad_shapes(ps, grads)?;
        }
        for (ps, pen) in &self.groups {
            pen.apply_to_grads(ps, grads)?;
        }
        Ok(())
    }
}
