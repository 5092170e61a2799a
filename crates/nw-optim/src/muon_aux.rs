//! Muon for the matrices plus AdamW for everything else, as one optimizer:
//! what the registry's `muon` builds when a model has biases or other
//! non-2-D parameters (torch users pair Muon with AdamW the same way).

use nw_autograd::{Grads, Param};

use crate::error::OptimError;
use crate::group::ParamGroup;
use crate::optim::{Optim, Optimizer};
use crate::state::StateDict;
use crate::{AdamW, Muon};

/// What [`crate::OptimizerConfig`]'s `muon` does with parameters that are
/// not 2-D (biases, norms, convolution kernels), which Muon cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonMatrix {
    /// Optimize them with AdamW (torch's defaults, at Muon's learning rate),
    /// in a second optimizer stepped together with Muon (default).
    #[default]
    Adamw,
    /// Refuse them, as `torch.optim.Muon` does: building is an
    /// [`OptimError::ParamShape`].
    Error,
}

/// Muon over the 2-D parameters and AdamW over the rest, stepped together.
/// Its state dict holds Muon's keys under `muon.` and AdamW's under
/// `adamw.`; its name is `"Muon"`; `set_lr` sets both rates; the groups are
/// Muon's then AdamW's.
///
/// ```
/// use nw_autograd::Param;
/// use nw_optim::{MuonWithAdamW, Muon, Optimizer};
/// use nw_tensor::Tensor;
///
/// let w = Param::new(Tensor::zeros(&[3, 2]));
/// let b = Param::new(Tensor::zeros(&[3]));
/// let opt = MuonWithAdamW::new(Muon::default(), vec![w, b]).unwrap();
/// assert_eq!(opt.param_groups().len(), 2); // [w] under Muon, [b] under AdamW
/// ```
#[derive(Debug, Clone)]
pub struct MuonWithAdamW {
    muon: Optim<Muon>,
    adamw: Optim<AdamW>,
    groups: Vec<ParamGroup>,
}

impl MuonWithAdamW {
    /// Splits `params` into the 2-D ones (Muon, with `config`) and the rest
    /// (AdamW with torch's defaults and `config.lr`).
    pub fn new(config: Muon, params: Vec<Param>) -> Result<Self, OptimError> {
        let lr = config.lr;
        let (mats, rest): (Vec<Param>, Vec<Param>) = params.into_iter().partition(|p| p.shape().len() == 2);
        let muon = config.build(mats)?;
        let adamw = AdamW { lr, ..AdamW::default() }.build(rest)?;
        let mut s = MuonWithAdamW { muon, adamw, groups: Vec::new() };
        s.refresh();
        Ok(s)
    }

    fn refresh(&mut self) {
        self.groups = self.muon.param_groups().iter().chain(self.adamw.param_groups()).cloned().collect();
    }
}

impl Optimizer for MuonWithAdamW {
    fn name(&self) -> &'static str {
        "Muon"
    }

    fn step(&mut self, grads: &Grads) -> Result<(), OptimError> {
        self.muon.step(grads)?;
        self.adamw.step(grads)
    }

    fn lr(&self) -> f64 {
        self.muon.lr()
    }

    fn set_lr(&mut self, lr: f64) {
        self.muon.set_lr(lr);
        self.adamw.set_lr(lr);
        self.refresh();
    }

    fn param_groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    fn state_dict(&self) -> StateDict {
        let mut sd = StateDict { optimizer: "Muon+AdamW".into(), ..Default::default() };
        for (pre, part) in [("muon.", self.muon.state_dict()), ("adamw.", self.adamw.state_dict())] {
            sd.tensors.extend(part.tensors.into_iter().map(|(k, v)| (format!("{pre}{k}"), v)));
            sd.scalars.extend(part.scalars.into_iter().map(|(k, v)| (format!("{pre}{k}"), v)));
        }
        sd
    }

    fn load_state_dict(&mut self, sd: &StateDict) -> Result<(), OptimError> {
        if sd.optimizer != "Muon+AdamW" {
            return Err(OptimError::State {
                owner: "Muon",
                reason: format!("state dict is for {:?}", sd.optimizer),
            });
        }
        let part = |pre: &str, name: &str| -> Result<StateDict, OptimError> {
            let mut p = StateDict { optimizer: name.into(), ..Default::default() };
            for (k, v) in &sd.tensors {
                if let Some(rest) = k.strip_prefix(pre) {
                    p.tensors.insert(rest.to_string(), v.clone());
                }
            }
            for (k, v) in &sd.scalars {
                if let Some(rest) = k.strip_prefix(pre) {
                    p.scalars.insert(rest.to_string(), *v);
                }
            }
            Ok(p)
        };
        let (m, a) = (part("muon.", "Muon")?, part("adamw.", "AdamW")?);
        if m.tensors.len() + a.tensors.len() != sd.tensors.len()
            || m.scalars.len() + a.scalars.len() != sd.scalars.len()
        {
            return Err(OptimError::State { owner: "Muon", reason: "keys outside muon. and adamw.".into() });
        }
        let (mut muon, mut adamw) = (self.muon.clone(), self.adamw.clone());
        muon.load_state_dict(&m)?;
        adamw.load_state_dict(&a)?;
        self.muon = muon;
        self.adamw = adamw;
        self.refresh();
        Ok(())
    }
}
