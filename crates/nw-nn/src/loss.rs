//! Loss functions, as functions (`mse_loss`, `cross_entropy`, ... like
//! `torch.nn.functional`) and as configured structs implementing [`Loss`].
//!
//! The elementwise losses run one fused operation
//! ([`Var::pointwise_loss`]) followed by the reduction; cross-entropy uses
//! the fused softmax/log-likelihood operation [`Var::cross_entropy_rows`].

use nw_autograd::{PointwiseLoss, Var};

use crate::error::{NnError, Result};

/// How per-element losses are combined (torch's `reduction`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean over elements (rows, for class losses). The default.
    #[default]
    Mean,
    /// The sum.
    Sum,
    /// No reduction: the per-element (per-row) losses.
    None,
}

impl Reduction {
    /// Parses torch's names `"mean"`, `"sum"`, `"none"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Reduction::Mean),
            "sum" => Ok(Reduction::Sum),
            "none" => Ok(Reduction::None),
            other => Err(NnError::config("reduction", format!("{other:?} is not mean, sum or none"))),
        }
    }

    /// Applies the reduction.
    pub fn apply(self, per_element: Var) -> Var {
        match self {
            Reduction::Mean => per_element.mean(),
            Reduction::Sum => per_element.sum(),
            Reduction::None => per_element,
        }
    }
}

/// What a loss compares its input with.
#[derive(Debug, Clone)]
pub enum Target {
    /// Values of the input's shape (regression, binary targets).
    Values(Var),
    /// One class index per row (classification).
    Classes(Vec<usize>),
}

/// A configured loss function.
pub trait Loss: Send + Sync {
    /// The loss of `input` against `target`.
    fn loss(&self, input: &Var, target: &Target) -> Result<Var>;
}

fn values<'a>(what: &'static str, t: &'a Target) -> Result<&'a Var> {
    match t {
        Target::Values(v) => Ok(v),
        Target::Classes(_) => Err(NnError::input(what, "needs target values, got class indices")),
    }
}

fn classes<'a>(what: &'static str, t: &'a Target) -> Result<&'a [usize]> {
    match t {
        Target::Classes(c) => Ok(c),
        Target::Values(_) => Err(NnError::input(what, "needs class indices, got target values")),
    }
}

/// Mean squared error: `(x - y)^2`, reduced.
pub fn mse_loss(input: &Var, target: &Var, reduction: Reduction) -> Result<Var> {
    Ok(reduction.apply(input.pointwise_loss(target, PointwiseLoss::SquaredError)?))
}

/// Mean absolute error: `|x - y|`, reduced.
pub fn l1_loss(input: &Var, target: &Var, reduction: Reduction) -> Result<Var> {
    Ok(reduction.apply(input.pointwise_loss(target, PointwiseLoss::AbsoluteError)?))
}

/// Smooth L1: quadratic `0.5 d^2 / beta` below `|d| < beta`, `|d| - beta/2` above.
pub fn smooth_l1_loss(input: &Var, target: &Var, beta: f32, reduction: Reduction) -> Result<Var> {
    Ok(reduction.apply(input.pointwise_loss(target, PointwiseLoss::SmoothL1 { beta })?))
}

/// Huber: quadratic `0.5 d^2` below `|d| < delta`, `delta (|d| - delta/2)` above.
pub fn huber_loss(input: &Var, target: &Var, delta: f32, reduction: Reduction) -> Result<Var> {
    Ok(reduction.apply(input.pointwise_loss(target, PointwiseLoss::Huber { delta })?))
}

/// Binary cross-entropy on probabilities in `[0, 1]`, logs clamped at -100 as torch.
pub fn binary_cross_entropy(input: &Var, target: &Var, reduction: Reduction) -> Result<Var> {
    Ok(reduction.apply(input.pointwise_loss(target, PointwiseLoss::BinaryCrossEntropy)?))
}

/// Binary cross-entropy on logits, computed stably.
pub fn binary_cross_entropy_with_logits(input: &Var, target: &Var, reduction: Reduction) -> Result<Var> {
    Ok(reduction.apply(input.pointwise_loss(target, PointwiseLoss::BinaryCrossEntropyWithLogits)?))
}

/// Cross-entropy of `[n, classes]` logits against class indices, with label
/// smoothing `(1 - eps) onehot + eps / classes` (torch semantics).
pub fn cross_entropy(
    logits: &Var,
    targets: &[usize],
    label_smoothing: f32,
    reduction: Reduction,
) -> Result<Var> {
    Ok(reduction.apply(logits.cross_entropy_rows(targets, label_smoothing)?))
}

/// Negative log-likelihood of `[n, classes]` log-probabilities against class
/// indices: `-input[i, target_i]`, reduced.
pub fn nll_loss(log_probs: &Var, targets: &[usize], reduction: Reduction) -> Result<Var> {
    let s = log_probs.shape();
    if s.len() != 2 || s[0] != targets.len() {
        return Err(NnError::input(
            "nll_loss",
            format!("input {:?} needs shape [n, classes] with n = {} targets", s, targets.len()),
        ));
    }
    let picked = log_probs.gather(1, targets, &[targets.len(), 1])?.reshape(&[targets.len()])?.neg();
    Ok(reduction.apply(picked))
}

macro_rules! value_loss {
    ($(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty = $def:expr),* } => |$s:ident, $i:ident, $t:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub struct $name {
            /// How element losses are combined.
            pub reduction: Reduction,
            $(
                #[doc = concat!("`", stringify!($field), "` (default ", stringify!($def), ").")]
                pub $field: $ty,
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { reduction: Reduction::Mean, $($field: $def),* }
            }
        }

        impl Loss for $name {
            fn loss(&self, input: &Var, target: &Target) -> Result<Var> {
                let ($s, $i, $t) = (self, input, values(stringify!($name), target)?);
                $body
            }
        }
    };
}

value_loss!(
    /// Mean squared error (torch `nn.MSELoss`).
    MseLoss {} => |s, i, t| mse_loss(i, t, s.reduction)
);
value_loss!(
    /// Mean absolute error (torch `nn.L1Loss`).
    L1Loss {} => |s, i, t| l1_loss(i, t, s.reduction)
);
value_loss!(
    /// Smooth L1 (torch `nn.SmoothL1Loss`).
    SmoothL1Loss { beta: f32 = 1.0 } => |s, i, t| smooth_l1_loss(i, t, s.beta, s.reduction)
);
value_loss!(
    /// Huber (torch `nn.HuberLoss`).
    HuberLoss { delta: f32 = 1.0 } => |s, i, t| huber_loss(i, t, s.delta, s.reduction)
);
value_loss!(
    /// Binary cross-entropy on probabilities (torch `nn.BCELoss`).
    BceLoss {} => |s, i, t| binary_cross_entropy(i, t, s.reduction)
);
value_loss!(
    /// Binary cross-entropy on logits (torch `nn.BCEWithLogitsLoss`).
    BceWithLogitsLoss {} => |s, i, t| binary_cross_entropy_with_logits(i, t, s.reduction)
);

/// Cross-entropy over class indices (torch `nn.CrossEntropyLoss` without
/// class weights or `ignore_index`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CrossEntropyLoss {
    /// How row losses are combined.
    pub reduction: Reduction,
    /// Label smoothing in `[0, 1]` (default 0).
    pub label_smoothing: f32,
}

impl Loss for CrossEntropyLoss {
    fn loss(&self, input: &Var, target: &Target) -> Result<Var> {
        cross_entropy(input, classes("CrossEntropyLoss", target)?, self.label_smoothing, self.reduction)
    }
}

/// Negative log-likelihood over class indices (torch `nn.NLLLoss` without
/// class weights or `ignore_index`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NllLoss {
    /// How row losses are combined.
    pub reduction: Reduction,
}

impl Loss for NllLoss {
    fn loss(&self, input: &Var, target: &Target) -> Result<Var> {
        nll_loss(input, classes("NllLoss", target)?, self.reduction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nw_tensor::Tensor;

    fn v(x: &[f32], s: &[usize]) -> Var {
        Var::constant(Tensor::from_vec(x.to_vec(), s).unwrap())
    }

    #[test]
    fn reductions_by_hand() {
        let x = v(&[1.0, 2.0, 4.0], &[3]);
        let y = v(&[0.0, 0.0, 0.0], &[3]);
        // squares 1, 4, 16: mean 7, sum 21
        assert_eq!(mse_loss(&x, &y, Reduction::Mean).unwrap().value().item().unwrap(), 7.0);
        assert_eq!(mse_loss(&x, &y, Reduction::Sum).unwrap().value().item().unwrap(), 21.0);
        assert_eq!(mse_loss(&x, &y, Reduction::None).unwrap().shape(), &[3]);
        assert_eq!(Reduction::parse("sum").unwrap(), Reduction::Sum);
        assert!(Reduction::parse("avg").is_err());
    }

    #[test]
    fn nll_picks_the_target_entry() {
        // rows [-1, -2], [-3, -4] with targets 1, 0: (2 + 3) / 2 = 2.5
        let lp = v(&[-1.0, -2.0, -3.0, -4.0], &[2, 2]);
        assert_eq!(nll_loss(&lp, &[1, 0], Reduction::Mean).unwrap().value().item().unwrap(), 2.5);
        assert!(nll_loss(&lp, &[1], Reduction::Mean).is_err());
        assert!(nll_loss(&lp, &[1, 2], Reduction::Mean).is_err());
    }

    #[test]
    fn target_kinds_are_checked() {
        let x = v(&[0.0, 0.0], &[1, 2]);
        let e = MseLoss::default().loss(&x, &Target::Classes(vec![0])).unwrap_err();
        assert!(e.to_string().contains("needs target values"), "{e}");
        assert!(CrossEntropyLoss::default().loss(&x, &Target::Values(x.clone())).is_err());
        // uniform logits over 2 classes: ln 2
        let l = CrossEntropyLoss::default().loss(&x, &Target::Classes(vec![1])).unwrap();
        assert!((l.value().item().unwrap() - std::f32::consts::LN_2).abs() < 1e-7);
    }
}
