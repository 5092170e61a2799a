//! Loss functions, as functions (`mse_loss`, `cross_entropy`, ... like
//! `torch.nn.functional`) and as configured structs implementing [`Loss`].
//!
//! The elementwise losses run one fused operation
//! ([`Var::pointwise_loss`]) followed by the reduction; cross-entropy uses
//! the fused softmax/log-likelihood operation [`Var::cross_entropy_rows`].

use nw_autograd::{PointwiseLoss, Var};
use nw_tensor::Tensor;

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

/// Binary cross-entropy on logits with the positive term of each element
/// weighted by `pos_weight` (broadcast to the input, typically `[C]` for the
/// last axis; not differentiated), as torch's `pos_weight`:
/// `l = -(p y ln sigmoid(x) + (1 - y) ln(1 - sigmoid(x)))`, reduced.
pub fn binary_cross_entropy_with_logits_pos_weight(
    input: &Var,
    target: &Var,
    pos_weight: &Tensor,
    reduction: Reduction,
) -> Result<Var> {
    Ok(reduction.apply(input.bce_with_logits_pos_weight(target, pos_weight)?))
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

/// Cross-entropy with per-class weights and an ignored class (torch
/// `cross_entropy(weight=, ignore_index=, label_smoothing=)`):
///
/// ```text
/// nll_i    = -w[t_i] logp[i, t_i]            (0 where t_i == ignore_index)
/// smooth_i = -sum_c w[c] logp[i, c]          (0 where t_i == ignore_index)
/// loss_i   = (1 - eps) nll_i + eps / C smooth_i
/// ```
///
/// `Mean` divides the summed losses by `sum_i w[t_i]` over the rows not
/// ignored (torch's normalisation; NaN when every row is ignored), `Sum`
/// adds them, `None` returns `loss_i`. Without weights `w = 1`. Targets equal
/// to `ignore_index` may lie outside `0..C`.
pub fn cross_entropy_weighted(
    logits: &Var,
    targets: &[usize],
    weight: Option<&Tensor>,
    ignore_index: Option<usize>,
    label_smoothing: f32,
    reduction: Reduction,
) -> Result<Var> {
    let logp = class_log_probs("cross_entropy", logits, targets)?;
    if !(0.0..=1.0).contains(&label_smoothing) {
        return Err(NnError::config(
            "cross_entropy",
            format!("label smoothing {label_smoothing} is outside [0, 1]"),
        ));
    }
    weighted_class_loss("cross_entropy", &logp, targets, weight, ignore_index, label_smoothing, reduction)
}

/// NLL with per-class weights and an ignored class (torch `nll_loss(weight=,
/// ignore_index=)`): `loss_i = -w[t_i] input[i, t_i]`, 0 for ignored rows;
/// `Mean` divides by `sum_i w[t_i]` over the rows not ignored.
pub fn nll_loss_weighted(
    log_probs: &Var,
    targets: &[usize],
    weight: Option<&Tensor>,
    ignore_index: Option<usize>,
    reduction: Reduction,
) -> Result<Var> {
    check_rows("nll_loss", log_probs, targets)?;
    weighted_class_loss("nll_loss", log_probs, targets, weight, ignore_index, 0.0, reduction)
}

fn check_rows(what: &'static str, x: &Var, targets: &[usize]) -> Result<()> {
    let s = x.shape();
    if s.len() != 2 || s[0] != targets.len() {
        return Err(NnError::input(
            what,
            format!("input {:?} needs shape [n, classes] with n = {} targets", s, targets.len()),
        ));
    }
    Ok(())
}

fn class_log_probs(what: &'static str, logits: &Var, targets: &[usize]) -> Result<Var> {
    check_rows(what, logits, targets)?;
    Ok(logits.log_softmax(1)?)
}

/// The shared body of the weighted class losses over log-probabilities.
fn weighted_class_loss(
    what: &'static str,
    logp: &Var,
    targets: &[usize],
    weight: Option<&Tensor>,
    ignore_index: Option<usize>,
    eps: f32,
    reduction: Reduction,
) -> Result<Var> {
    let (n, c) = (logp.shape()[0], logp.shape()[1]);
    let w: Vec<f32> = match weight {
        Some(w) if w.shape() != [c] => {
            return Err(NnError::input(
                what,
                format!("weight {:?} must be [{c}] (one per class)", w.shape()),
            ));
        }
        Some(w) => w.to_vec(),
        None => vec![1.0; c],
    };
    // per row: the class to read (0 for ignored rows, masked out) and its weight
    let mut safe = Vec::with_capacity(n);
    let mut row_w = Vec::with_capacity(n);
    let mut mask = Vec::with_capacity(n);
    for &t in targets {
        if Some(t) == ignore_index {
            safe.push(0);
            row_w.push(0.0);
            mask.push(0.0);
        } else if t >= c {
            return Err(NnError::input(what, format!("target {t} is out of range for {c} classes")));
        } else {
            safe.push(t);
            row_w.push(w[t]);
            mask.push(1.0);
        }
    }
    let denom: f64 = row_w.iter().map(|&v| v as f64).sum();
    let row_w = Var::constant(Tensor::from_vec(row_w, &[n])?);
    let picked = logp.gather(1, &safe, &[n, 1])?.reshape(&[n])?;
    let nll = picked.mul(&row_w)?.neg();
    let per_row = if eps > 0.0 {
        let wl = logp.mul(&Var::constant(Tensor::from_vec(w, &[c])?))?.sum_axis(1, false)?;
        let smooth = wl.mul(&Var::constant(Tensor::from_vec(mask, &[n])?))?.neg();
        nll.mul_scalar(1.0 - eps).add(&smooth.mul_scalar(eps / c as f32))?
    } else {
        nll
    };
    Ok(match reduction {
        Reduction::Mean => per_row.sum().mul_scalar((1.0 / denom) as f32),
        Reduction::Sum => per_row.sum(),
        Reduction::None => per_row,
    })
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
/// Binary cross-entropy on logits (torch `nn.BCEWithLogitsLoss`), with an
/// optional weight of the positive term per class (`pos_weight`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BceWithLogitsLoss {
    /// How element losses are combined.
    pub reduction: Reduction,
    /// Weight of the positive term, broadcast to the input (typically
    /// `[classes]`; default none: all 1).
    pub pos_weight: Option<Tensor>,
}

impl Loss for BceWithLogitsLoss {
    fn loss(&self, input: &Var, target: &Target) -> Result<Var> {
        let t = values("BceWithLogitsLoss", target)?;
        match &self.pos_weight {
            None => binary_cross_entropy_with_logits(input, t, self.reduction),
            Some(p) => binary_cross_entropy_with_logits_pos_weight(input, t, p, self.reduction),
        }
    }
}

/// Cross-entropy over class indices (torch `nn.CrossEntropyLoss`). Without
/// weights or an ignored class it runs the fused softmax/log-likelihood
/// operation; with them, [`cross_entropy_weighted`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CrossEntropyLoss {
    /// How row losses are combined.
    pub reduction: Reduction,
    /// Label smoothing in `[0, 1]` (default 0).
    pub label_smoothing: f32,
    /// Per-class weights `[classes]` (default none: all 1).
    pub weight: Option<Tensor>,
    /// Rows whose target is this class contribute nothing (default none).
    pub ignore_index: Option<usize>,
}

impl Loss for CrossEntropyLoss {
    fn loss(&self, input: &Var, target: &Target) -> Result<Var> {
        let t = classes("CrossEntropyLoss", target)?;
        if self.weight.is_none() && self.ignore_index.is_none() {
            cross_entropy(input, t, self.label_smoothing, self.reduction)
        } else {
            let w = self.weight.as_ref();
            cross_entropy_weighted(input, t, w, self.ignore_index, self.label_smoothing, self.reduction)
        }
    }
}

/// Negative log-likelihood over class indices (torch `nn.NLLLoss`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NllLoss {
    /// How row losses are combined.
    pub reduction: Reduction,
    /// Per-class weights `[classes]` (default none: all 1).
    pub weight: Option<Tensor>,
    /// Rows whose target is this class contribute nothing (default none).
    pub ignore_index: Option<usize>,
}

impl Loss for NllLoss {
    fn loss(&self, input: &Var, target: &Target) -> Result<Var> {
        let t = classes("NllLoss", target)?;
        if self.weight.is_none() && self.ignore_index.is_none() {
            nll_loss(input, t, self.reduction)
        } else {
            nll_loss_weighted(input, t, self.weight.as_ref(), self.ignore_index, self.reduction)
        }
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
    fn weighted_nll_by_hand() {
        // rows [-1, -2], [-3, -4], [-5, -6] with targets 1, 0, 1, weights [2, 3]
        // and class 0 ignored: row losses 3 * 2 = 6, 0, 3 * 6 = 18; mean over
        // the weights of the rows kept: 24 / (3 + 3) = 4
        let lp = v(&[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0], &[3, 2]);
        let w = Tensor::from_vec(vec![2.0, 3.0], &[2]).unwrap();
        let l = nll_loss_weighted(&lp, &[1, 0, 1], Some(&w), Some(0), Reduction::None).unwrap();
        assert_eq!(l.value().to_vec(), vec![6.0, 0.0, 18.0]);
        let l = nll_loss_weighted(&lp, &[1, 0, 1], Some(&w), Some(0), Reduction::Mean).unwrap();
        assert_eq!(l.value().item().unwrap(), 4.0);
        // an ignored target may be out of range; others may not
        assert!(nll_loss_weighted(&lp, &[1, 7, 1], None, Some(7), Reduction::Sum).is_ok());
        assert!(nll_loss_weighted(&lp, &[1, 7, 1], None, None, Reduction::Sum).is_err());
        assert!(nll_loss_weighted(&lp, &[1, 0, 1], Some(&Tensor::ones(&[3])), None, Reduction::Sum).is_err());
    }

    #[test]
    fn unweighted_paths_agree() {
        // the weighted path with weights 1 and no ignored class is the fused path
        let x = Var::constant(Tensor::randn(&[4, 3], 0.0, 1.0, &mut nw_tensor::Rng::new(0)));
        let t = [2, 0, 1, 1];
        let a = cross_entropy(&x, &t, 0.3, Reduction::None).unwrap().value().to_vec();
        let b =
            cross_entropy_weighted(&x, &t, Some(&Tensor::ones(&[3])), None, 0.3, Reduction::None).unwrap();
        for (p, q) in a.iter().zip(b.value().to_vec()) {
            assert!((p - q).abs() < 1e-6, "{p} vs {q}");
        }
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
