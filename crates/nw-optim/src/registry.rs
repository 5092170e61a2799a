//! The optimizer registry: one serde enum over every optimizer's config
//! struct, so that one table of names serves TOML configs, CLI flags,
//! checkpoints and the PyTorch fixtures.
//!
//! Each config struct derives serde with torch's keyword names and its own
//! defaults (`#[serde(default, deny_unknown_fields)]`), so a missing key takes
//! *that* optimizer's default (Lion's `lr` is 1e-4, Adadelta's 1.0) and a key
//! the optimizer does not have is an error naming it. Weight decay is written
//! as torch writes it: a number `weight_decay`, plus the boolean
//! `decoupled_weight_decay` for Adam, NAdam and RAdam.
//!
//! ```
//! use nw_optim::OptimizerConfig;
//!
//! let lion: OptimizerConfig = serde_json::from_str(r#"{"name": "lion"}"#).unwrap();
//! assert_eq!(lion.lr(), 1e-4);
//! let sgd: OptimizerConfig = serde_json::from_str(r#"{"name": "sgd", "lr": 0.1, "momentum": 0.9}"#).unwrap();
//! assert_eq!(sgd.name(), "sgd");
//! let bad = serde_json::from_str::<OptimizerConfig>(r#"{"name": "adam", "momentum": 0.9}"#);
//! assert!(bad.unwrap_err().to_string().contains("momentum"));
//! ```

use nw_autograd::Param;
use serde::{Deserialize, Serialize};

use crate::{
    Adadelta, Adafactor, Adagrad, Adam, AdamW, Adamax, Asgd, Lbfgs, Lion, Muon, NAdam, OptimError, Optimizer,
    RAdam, RmsProp, Rprop, Sgd, SparseAdam, WeightDecay,
};

/// Every optimizer nw has, tagged by `name` (nw's lower-case name; torch's
/// class name is [`OptimizerConfig::torch_name`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// torch.optim.SGD.
    Sgd(Sgd),
    /// torch.optim.Adam.
    Adam(Adam),
    /// torch.optim.AdamW.
    AdamW(AdamW),
    /// torch.optim.Adagrad.
    Adagrad(Adagrad),
    /// torch.optim.RMSprop.
    RmsProp(RmsProp),
    /// torch.optim.Adadelta.
    Adadelta(Adadelta),
    /// torch.optim.Adamax.
    Adamax(Adamax),
    /// torch.optim.NAdam.
    NAdam(NAdam),
    /// torch.optim.RAdam.
    RAdam(RAdam),
    /// torch.optim.Rprop.
    Rprop(Rprop),
    /// Lion (Chen et al. 2023), the paper's defaults.
    Lion(Lion),
    /// torch.optim.ASGD.
    Asgd(Asgd),
    /// torch.optim.Adafactor.
    Adafactor(Adafactor),
    /// torch.optim.Muon (2-D parameters only).
    Muon(Muon),
    /// torch.optim.SparseAdam (row-sparse gradients only: sparse embeddings).
    #[serde(rename = "sparse_adam")]
    SparseAdam(SparseAdam),
    /// torch.optim.LBFGS (steps through a closure: [`Optimizer::step_closure`]).
    Lbfgs(Lbfgs),
    /// nw's genetic algorithm, one generation per step (no torch counterpart).
    Ga(crate::Ga),
    /// nw's particle swarm, one sweep per step (no torch counterpart).
    Pso(crate::Pso),
}

/// nw's name and torch's class name of every registered optimizer, in order.
pub const OPTIMIZERS: &[(&str, &str)] = &[
    ("sgd", "SGD"),
    ("adam", "Adam"),
    ("adamw", "AdamW"),
    ("adagrad", "Adagrad"),
    ("rmsprop", "RMSprop"),
    ("adadelta", "Adadelta"),
    ("adamax", "Adamax"),
    ("nadam", "NAdam"),
    ("radam", "RAdam"),
    ("rprop", "Rprop"),
    ("lion", "Lion"),
    ("asgd", "ASGD"),
    ("adafactor", "Adafactor"),
    ("muon", "Muon"),
    ("sparse_adam", "SparseAdam"),
    ("lbfgs", "LBFGS"),
    ("ga", "GA"),
    ("pso", "PSO"),
];

macro_rules! each {
    ($self:expr, $c:ident => $e:expr) => {
        match $self {
            OptimizerConfig::Sgd($c) => $e,
            OptimizerConfig::Adam($c) => $e,
            OptimizerConfig::AdamW($c) => $e,
            OptimizerConfig::Adagrad($c) => $e,
            OptimizerConfig::RmsProp($c) => $e,
            OptimizerConfig::Adadelta($c) => $e,
            OptimizerConfig::Adamax($c) => $e,
            OptimizerConfig::NAdam($c) => $e,
            OptimizerConfig::RAdam($c) => $e,
            OptimizerConfig::Rprop($c) => $e,
            OptimizerConfig::Lion($c) => $e,
            OptimizerConfig::Asgd($c) => $e,
            OptimizerConfig::Adafactor($c) => $e,
            OptimizerConfig::Muon($c) => $e,
            OptimizerConfig::SparseAdam($c) => $e,
            OptimizerConfig::Lbfgs($c) => $e,
            OptimizerConfig::Ga($c) => $e,
            OptimizerConfig::Pso($c) => $e,
        }
    };
}

impl Default for OptimizerConfig {
    /// Adam with torch's defaults.
    fn default() -> Self {
        OptimizerConfig::Adam(Adam::default())
    }
}

impl OptimizerConfig {
    /// The optimizer `name` (nw's or torch's spelling, any case) with its own defaults.
    pub fn default_for(name: &str) -> Option<Self> {
        let key = Self::canonical_name(name)?;
        let json = format!("{{\"name\":\"{key}\"}}");
        serde_json::from_str(&json).ok()
    }

    /// nw's name for `name` given in nw's or torch's spelling (any case).
    pub fn canonical_name(name: &str) -> Option<&'static str> {
        let lower = name.to_ascii_lowercase();
        OPTIMIZERS.iter().find(|(n, t)| *n == lower || t.eq_ignore_ascii_case(name)).map(|(n, _)| *n)
    }

    /// nw's name (`"adam"`).
    pub fn name(&self) -> &'static str {
        let i = self.index();
        OPTIMIZERS[i].0
    }

    /// torch's class name (`"Adam"`).
    pub fn torch_name(&self) -> &'static str {
        OPTIMIZERS[self.index()].1
    }

    fn index(&self) -> usize {
        match self {
            OptimizerConfig::Sgd(_) => 0,
            OptimizerConfig::Adam(_) => 1,
            OptimizerConfig::AdamW(_) => 2,
            OptimizerConfig::Adagrad(_) => 3,
            OptimizerConfig::RmsProp(_) => 4,
            OptimizerConfig::Adadelta(_) => 5,
            OptimizerConfig::Adamax(_) => 6,
            OptimizerConfig::NAdam(_) => 7,
            OptimizerConfig::RAdam(_) => 8,
            OptimizerConfig::Rprop(_) => 9,
            OptimizerConfig::Lion(_) => 10,
            OptimizerConfig::Asgd(_) => 11,
            OptimizerConfig::Adafactor(_) => 12,
            OptimizerConfig::Muon(_) => 13,
            OptimizerConfig::SparseAdam(_) => 14,
            OptimizerConfig::Lbfgs(_) => 15,
            OptimizerConfig::Ga(_) => 16,
            OptimizerConfig::Pso(_) => 17,
        }
    }

    /// Whether the optimizer steps through a closure that re-evaluates the
    /// step's whole batch (LBFGS, GA, PSO): such a step cannot be split into
    /// micro-batches or ranks.
    pub fn steps_through_closure(&self) -> bool {
        matches!(self, OptimizerConfig::Lbfgs(_) | OptimizerConfig::Ga(_) | OptimizerConfig::Pso(_))
    }

    /// Whether the optimizer takes row-sparse gradients only (SparseAdam):
    /// every parameter it is given must be a sparse embedding's table.
    pub fn needs_sparse_gradients(&self) -> bool {
        matches!(self, OptimizerConfig::SparseAdam(_))
    }

    /// Whether the optimizer searches without gradients (GA, PSO).
    pub fn is_gradient_free(&self) -> bool {
        matches!(self, OptimizerConfig::Ga(_) | OptimizerConfig::Pso(_))
    }

    /// The default learning rate.
    pub fn lr(&self) -> f64 {
        each!(self, c => c.lr)
    }

    /// Sets the default learning rate.
    pub fn set_lr(&mut self, lr: f64) {
        each!(self, c => c.lr = lr)
    }

    /// An optimizer over `params` (one group with this config's values).
    /// `muon` over parameters that are not all 2-D builds a
    /// [`crate::MuonWithAdamW`] (unless its `non_matrix` is `error`).
    pub fn build(&self, params: Vec<Param>) -> Result<Box<dyn Optimizer>, OptimError> {
        if let OptimizerConfig::Muon(m) = self
            && m.non_matrix == crate::NonMatrix::Adamw
            && params.iter().any(|p| p.shape().len() != 2)
        {
            return Ok(Box::new(crate::MuonWithAdamW::new(m.clone(), params)?));
        }
        Ok(each!(self, c => Box::new(c.clone().build(params)?) as Box<dyn Optimizer>))
    }

    /// An optimizer over parameter groups, each overriding the defaults it names.
    pub fn build_groups(&self, groups: Vec<crate::ParamGroup>) -> Result<Box<dyn Optimizer>, OptimError> {
        Ok(each!(self, c => Box::new(c.clone().build_groups(groups)?) as Box<dyn Optimizer>))
    }
}

/// serde for a coupled (L2) `weight_decay` written as torch's number.
pub(crate) mod l2 {
    use super::WeightDecay;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(w: &WeightDecay, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(w.coefficient())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<WeightDecay, D::Error> {
        Ok(WeightDecay::L2(f64::deserialize(d)?))
    }
}

/// serde for a decoupled `weight_decay` (AdamW, Lion) written as a number.
pub(crate) mod decoupled {
    use super::WeightDecay;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(w: &WeightDecay, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(w.coefficient())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<WeightDecay, D::Error> {
        Ok(WeightDecay::Decoupled(f64::deserialize(d)?))
    }
}

fn decay(c: f64, decoupled: bool) -> WeightDecay {
    if decoupled { WeightDecay::Decoupled(c) } else { WeightDecay::L2(c) }
}

/// torch's keywords of Adam (`decoupled_weight_decay` selects AdamW's decay).
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[doc(hidden)]
pub struct AdamRepr {
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    decoupled_weight_decay: bool,
    amsgrad: bool,
    maximize: bool,
}

impl Default for AdamRepr {
    fn default() -> Self {
        Adam::default().into()
    }
}

impl From<Adam> for AdamRepr {
    fn from(a: Adam) -> Self {
        AdamRepr {
            lr: a.lr,
            betas: a.betas,
            eps: a.eps,
            weight_decay: a.weight_decay.coefficient(),
            decoupled_weight_decay: matches!(a.weight_decay, WeightDecay::Decoupled(_)),
            amsgrad: a.amsgrad,
            maximize: a.maximize,
        }
    }
}

impl From<AdamRepr> for Adam {
    fn from(r: AdamRepr) -> Self {
        Adam {
            lr: r.lr,
            betas: r.betas,
            eps: r.eps,
            weight_decay: decay(r.weight_decay, r.decoupled_weight_decay),
            amsgrad: r.amsgrad,
            maximize: r.maximize,
        }
    }
}

/// torch's keywords of NAdam.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[doc(hidden)]
pub struct NAdamRepr {
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    momentum_decay: f64,
    decoupled_weight_decay: bool,
    maximize: bool,
}

impl Default for NAdamRepr {
    fn default() -> Self {
        NAdam::default().into()
    }
}

impl From<NAdam> for NAdamRepr {
    fn from(a: NAdam) -> Self {
        NAdamRepr {
            lr: a.lr,
            betas: a.betas,
            eps: a.eps,
            weight_decay: a.weight_decay.coefficient(),
            momentum_decay: a.momentum_decay,
            decoupled_weight_decay: matches!(a.weight_decay, WeightDecay::Decoupled(_)),
            maximize: a.maximize,
        }
    }
}

impl From<NAdamRepr> for NAdam {
    fn from(r: NAdamRepr) -> Self {
        NAdam {
            lr: r.lr,
            betas: r.betas,
            eps: r.eps,
            weight_decay: decay(r.weight_decay, r.decoupled_weight_decay),
            momentum_decay: r.momentum_decay,
            maximize: r.maximize,
        }
    }
}

/// torch's keywords of RAdam.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[doc(hidden)]
pub struct RAdamRepr {
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
    decoupled_weight_decay: bool,
    maximize: bool,
}

impl Default for RAdamRepr {
    fn default() -> Self {
        RAdam::default().into()
    }
}

impl From<RAdam> for RAdamRepr {
    fn from(a: RAdam) -> Self {
        RAdamRepr {
            lr: a.lr,
            betas: a.betas,
            eps: a.eps,
            weight_decay: a.weight_decay.coefficient(),
            decoupled_weight_decay: matches!(a.weight_decay, WeightDecay::Decoupled(_)),
            maximize: a.maximize,
        }
    }
}

impl From<RAdamRepr> for RAdam {
    fn from(r: RAdamRepr) -> Self {
        RAdam {
            lr: r.lr,
            betas: r.betas,
            eps: r.eps,
            weight_decay: decay(r.weight_decay, r.decoupled_weight_decay),
            maximize: r.maximize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<OptimizerConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn each_optimizer_has_its_own_defaults() {
        // torch.optim defaults (and the Lion paper's), not one shared table.
        let lion = parse(r#"{"name":"lion"}"#).unwrap();
        assert_eq!(lion, OptimizerConfig::Lion(Lion { lr: 1e-4, betas: (0.9, 0.99), ..Lion::default() }));
        assert_eq!(parse(r#"{"name":"adadelta"}"#).unwrap().lr(), 1.0);
        assert_eq!(parse(r#"{"name":"adagrad"}"#).unwrap().lr(), 1e-2);
        assert_eq!(parse(r#"{"name":"rmsprop"}"#).unwrap().lr(), 1e-2);
        assert_eq!(parse(r#"{"name":"adamax"}"#).unwrap().lr(), 2e-3);
        assert_eq!(parse(r#"{"name":"sgd"}"#).unwrap().lr(), 1e-3);
        let adamw = parse(r#"{"name":"adamw"}"#).unwrap();
        assert_eq!(adamw, OptimizerConfig::AdamW(AdamW::default()));
        if let OptimizerConfig::AdamW(a) = adamw {
            assert_eq!(a.weight_decay, WeightDecay::Decoupled(0.01));
        }
    }

    #[test]
    fn eps_reaches_every_optimizer_that_has_it() {
        for name in ["adam", "adamw", "adagrad", "rmsprop", "adadelta", "adamax", "nadam", "radam"] {
            let c = parse(&format!(r#"{{"name":"{name}","eps":0.125}}"#)).unwrap();
            let v = serde_json::to_value(&c).unwrap();
            assert_eq!(v["eps"], 0.125, "{name}");
        }
        let c = parse(r#"{"name":"sparse_adam","eps":0.125}"#).unwrap();
        assert_eq!(serde_json::to_value(&c).unwrap()["eps"], 0.125);
        for name in ["sgd", "rprop", "lion", "asgd", "lbfgs"] {
            let e = parse(&format!(r#"{{"name":"{name}","eps":0.125}}"#)).unwrap_err();
            assert!(e.to_string().contains("eps"), "{name}: {e}");
        }
    }

    #[test]
    fn decoupled_weight_decay_is_torchs_flag() {
        let a = parse(r#"{"name":"adam","weight_decay":0.1,"decoupled_weight_decay":true}"#).unwrap();
        assert_eq!(
            a,
            OptimizerConfig::Adam(Adam { weight_decay: WeightDecay::Decoupled(0.1), ..Adam::default() })
        );
        let back: OptimizerConfig = serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        let l = parse(r#"{"name":"lion","weight_decay":0.5}"#).unwrap();
        assert_eq!(
            l,
            OptimizerConfig::Lion(Lion { weight_decay: WeightDecay::Decoupled(0.5), ..Lion::default() })
        );
    }

    #[test]
    fn names_round_trip_and_build() {
        for (n, t) in OPTIMIZERS {
            let c = OptimizerConfig::default_for(n).unwrap();
            assert_eq!(c.name(), *n);
            assert_eq!(c.torch_name(), *t);
            assert_eq!(OptimizerConfig::default_for(t).unwrap(), c);
            let w = Param::new(nw_tensor::Tensor::zeros(&[2, 2]));
            assert_eq!(c.build(vec![w]).unwrap().name(), *t);
            assert_eq!(c.needs_sparse_gradients(), *n == "sparse_adam");
            let back: OptimizerConfig = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
            assert_eq!(back, c);
        }
        assert!(OptimizerConfig::default_for("adamm").is_none());
    }

    #[test]
    fn sparse_adam_has_torchs_keywords_and_defaults() {
        let c = parse(r#"{"name":"sparse_adam"}"#).unwrap();
        assert_eq!(c, OptimizerConfig::SparseAdam(SparseAdam::default()));
        assert_eq!(OptimizerConfig::default_for("SparseAdam").unwrap(), c);
        let c = parse(r#"{"name":"sparse_adam","lr":0.01,"betas":[0.5,0.9],"eps":1e-6,"maximize":true}"#)
            .unwrap();
        assert_eq!(
            c,
            OptimizerConfig::SparseAdam(SparseAdam {
                lr: 0.01,
                betas: (0.5, 0.9),
                eps: 1e-6,
                maximize: true
            })
        );
        // torch's SparseAdam has no weight_decay, amsgrad, ...
        for key in ["weight_decay", "amsgrad", "momentum"] {
            let e = parse(&format!(r#"{{"name":"sparse_adam","{key}":0.0}}"#)).unwrap_err();
            assert!(e.to_string().contains(key), "{key}: {e}");
        }
    }
}
