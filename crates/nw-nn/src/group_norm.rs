//! Per-sample normalisation layers: [`GroupNorm`] and [`InstanceNorm2d`]
//! (statistics of each sample alone, the same in training and evaluation).

use nw_autograd::{Param, Var};
use nw_tensor::Tensor;

use crate::error::{NnError, Result};
use crate::module::Module;

/// Group normalisation (torch `nn.GroupNorm`): input `[N, C, *]`, the `C`
/// channels split into `num_groups` consecutive groups, each sample's group
/// normalised with its own mean and biased variance (`eps` added, default
/// 1e-5), then `* weight[c] + bias[c]` (ones and zeros, `[C]`, when affine).
///
/// ```
/// use nw_autograd::Var;
/// use nw_nn::{GroupNorm, Module};
/// use nw_tensor::Tensor;
/// let gn = GroupNorm::new(2, 4).unwrap();
/// let y = gn.forward(&Var::constant(Tensor::ones(&[3, 4, 5, 5]))).unwrap();
/// assert_eq!(y.shape(), &[3, 4, 5, 5]);
/// ```
#[derive(Debug, Clone)]
pub struct GroupNorm {
    num_groups: usize,
    num_channels: usize,
    /// Added to the variance.
    pub eps: f32,
    /// Scale `[C]` (ones), if affine.
    pub weight: Option<Param>,
    /// Shift `[C]` (zeros), if affine.
    pub bias: Option<Param>,
}

fn affine_params(c: usize, affine: bool) -> (Option<Param>, Option<Param>) {
    if affine {
        (Some(Param::new(Tensor::ones(&[c]))), Some(Param::new(Tensor::zeros(&[c]))))
    } else {
        (None, None)
    }
}

fn params(w: &Option<Param>, b: &Option<Param>) -> Vec<(String, Param)> {
    let mut v = Vec::new();
    if let Some(w) = w {
        v.push(("weight".to_string(), w.clone()));
    }
    if let Some(b) = b {
        v.push(("bias".to_string(), b.clone()));
    }
    v
}

impl GroupNorm {
    /// With torch's defaults: eps 1e-5, affine.
    pub fn new(num_groups: usize, num_channels: usize) -> Result<Self> {
        Self::with_options(num_groups, num_channels, 1e-5, true)
    }

    /// With every option. Errors when `num_groups` is zero or does not
    /// divide `num_channels`.
    pub fn with_options(num_groups: usize, num_channels: usize, eps: f32, affine: bool) -> Result<Self> {
        if num_groups == 0 || num_channels == 0 || !num_channels.is_multiple_of(num_groups) {
            return Err(NnError::config(
                "GroupNorm",
                format!("num_groups {num_groups} must divide num_channels {num_channels} (both positive)"),
            ));
        }
        let (weight, bias) = affine_params(num_channels, affine);
        Ok(GroupNorm { num_groups, num_channels, eps, weight, bias })
    }

    /// The number of groups.
    pub fn num_groups(&self) -> usize {
        self.num_groups
    }

    /// The number of channels.
    pub fn num_channels(&self) -> usize {
        self.num_channels
    }
}

impl Module for GroupNorm {
    fn forward(&self, x: &Var) -> Result<Var> {
        let s = x.shape();
        if s.len() < 2 || s[1] != self.num_channels {
            return Err(NnError::input(
                "GroupNorm",
                format!("expected input [N, {}, *], got {s:?}", self.num_channels),
            ));
        }
        let w = self.weight.as_ref().map(Var::param);
        let b = self.bias.as_ref().map(Var::param);
        Ok(x.group_norm(self.num_groups, w.as_ref(), b.as_ref(), self.eps)?)
    }

    fn named_parameters(&self) -> Vec<(String, Param)> {
        params(&self.weight, &self.bias)
    }

    fn describe(&self) -> String {
        format!(
            "GroupNorm({}, {}, eps={}, affine={})",
            self.num_groups,
            self.num_channels,
            self.eps,
            self.weight.is_some()
        )
    }
}

/// Instance normalisation over `[N, C, H, W]` or unbatched `[C, H, W]`
/// (torch `nn.InstanceNorm2d` with `track_running_stats = false`, its
/// default): each sample's channel is normalised over its positions with the
/// biased variance and `eps` (default 1e-5), then `* weight[c] + bias[c]`
/// when affine (default not). It is a [`GroupNorm`] with one group per
/// channel. Running statistics are not supported.
#[derive(Debug, Clone)]
pub struct InstanceNorm2d {
    num_features: usize,
    /// Added to the variance.
    pub eps: f32,
    /// Scale `[C]` (ones), if affine.
    pub weight: Option<Param>,
    /// Shift `[C]` (zeros), if affine.
    pub bias: Option<Param>,
}

impl InstanceNorm2d {
    /// With torch's defaults: eps 1e-5, no affine parameters.
    pub fn new(num_features: usize) -> Self {
        Self::with_options(num_features, 1e-5, false)
    }

    /// With the given `eps` and with or without the affine parameters.
    pub fn with_options(num_features: usize, eps: f32, affine: bool) -> Self {
        let (weight, bias) = affine_params(num_features, affine);
        InstanceNorm2d { num_features, eps, weight, bias }
    }

    /// The number of channels.
    pub fn num_features(&self) -> usize {
        self.num_features
    }
}

impl Module for InstanceNorm2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        let s = x.shape().to_vec();
        let c = self.num_features;
        let w = self.weight.as_ref().map(Var::param);
        let b = self.bias.as_ref().map(Var::param);
        match s.len() {
            4 if s[1] == c => Ok(x.group_norm(c, w.as_ref(), b.as_ref(), self.eps)?),
            3 if s[0] == c => {
                // unbatched [C, H, W]: one sample
                let y = x.reshape(&[1, s[0], s[1], s[2]])?.group_norm(c, w.as_ref(), b.as_ref(), self.eps)?;
                Ok(y.reshape(&s)?)
            }
            _ => Err(NnError::input(
                "InstanceNorm2d",
                format!("expected input [N, {c}, H, W] or [{c}, H, W], got {s:?}"),
            )),
        }
    }

    fn named_parameters(&self) -> Vec<(String, Param)> {
        params(&self.weight, &self.bias)
    }

    fn describe(&self) -> String {
        format!("InstanceNorm2d({}, eps={}, affine={})", self.num_features, self.eps, self.weight.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_norm_by_hand() {
        // one sample, 2 channels of 2 positions, 2 groups: each channel alone,
        // values 1, 3 -> mean 2, var 1 -> -1, 1 (eps 0); affine w 2, b 1 on channel 0
        let gn = GroupNorm::with_options(2, 2, 0.0, true).unwrap();
        gn.weight.as_ref().unwrap().set(Tensor::from_vec(vec![2.0, 1.0], &[2]).unwrap()).unwrap();
        gn.bias.as_ref().unwrap().set(Tensor::from_vec(vec![1.0, 0.0], &[2]).unwrap()).unwrap();
        let x = Var::constant(Tensor::from_vec(vec![1.0, 3.0, 5.0, 9.0], &[1, 2, 2]).unwrap());
        assert_eq!(gn.forward(&x).unwrap().value().to_vec(), vec![-1.0, 3.0, -1.0, 1.0]);
        assert!(GroupNorm::new(4, 6).is_err());
        assert!(GroupNorm::new(0, 6).is_err());
        assert!(gn.forward(&Var::constant(Tensor::zeros(&[1, 3, 2]))).is_err());
        assert_eq!(gn.named_parameters().len(), 2);
        assert!(GroupNorm::with_options(1, 2, 1e-5, false).unwrap().named_parameters().is_empty());
    }

    #[test]
    fn instance_norm_is_group_norm_per_channel() {
        let mut rng = nw_tensor::Rng::new(1);
        let x = Var::constant(Tensor::randn(&[2, 3, 4, 5], 0.0, 1.0, &mut rng));
        let a = InstanceNorm2d::new(3).forward(&x).unwrap();
        let b = GroupNorm::with_options(3, 3, 1e-5, false).unwrap().forward(&x).unwrap();
        assert_eq!(a.value().to_vec(), b.value().to_vec());
        // unbatched input: the first sample's result
        let x0 = Var::constant(x.value().narrow(0, 0, 1).unwrap().reshape(&[3, 4, 5]).unwrap());
        let y0 = InstanceNorm2d::new(3).forward(&x0).unwrap();
        assert_eq!(y0.shape(), &[3, 4, 5]);
        assert_eq!(y0.value().to_vec(), a.value().to_vec()[..60].to_vec());
        assert!(InstanceNorm2d::new(2).forward(&x).is_err());
        assert!(InstanceNorm2d::new(3).forward(&Var::constant(Tensor::zeros(&[2, 3]))).is_err());
        assert_eq!(InstanceNorm2d::with_options(3, 1e-5, true).named_parameters().len(), 2);
    }
}
