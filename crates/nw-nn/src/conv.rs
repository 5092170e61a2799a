//! Convolution layers [`Conv1d`], [`Conv2d`] and pooling layers
//! [`MaxPool2d`], [`AvgPool2d`], [`AdaptiveAvgPool2d`].

use nw_autograd::{Param, Var};
use nw_tensor::conv::{Conv1dSpec, Conv2dSpec};
use nw_tensor::{Rng, Tensor};

use crate::error::{NnError, Result};
use crate::init;
use crate::module::Module;

/// A 2-D convolution over NCHW input (torch `nn.Conv2d`): weight
/// `[out, in / groups, kh, kw]`, bias `[out]`, both drawn as PyTorch does
/// (`U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with `fan_in = in / groups * kh * kw`).
///
/// ```
/// use nw_autograd::Var;
/// use nw_nn::{Conv2d, Module};
/// use nw_tensor::conv::Conv2dSpec;
/// use nw_tensor::{Rng, Tensor};
/// let spec = Conv2dSpec { padding: (1, 1), ..Default::default() };
/// let conv = Conv2d::new(3, 8, (3, 3), spec, true, &mut Rng::new(0)).unwrap();
/// let y = conv.forward(&Var::constant(Tensor::zeros(&[2, 3, 28, 28]))).unwrap();
/// assert_eq!(y.shape(), &[2, 8, 28, 28]);
/// ```
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// `[out_channels, in_channels / groups, kh, kw]`.
    pub weight: Param,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Param>,
    /// Stride, padding, dilation, groups.
    pub spec: Conv2dSpec,
}

fn check_groups(what: &'static str, cin: usize, cout: usize, groups: usize) -> Result<()> {
    if groups == 0 || !cin.is_multiple_of(groups) || !cout.is_multiple_of(groups) {
        return Err(NnError::config(
            what,
            format!("groups {groups} must divide in_channels {cin} and out_channels {cout}"),
        ));
    }
    Ok(())
}

/// PyTorch's default weight and bias for a convolution weight shape.
fn default_params(shape: &[usize], bias: bool, rng: &mut Rng) -> Result<(Param, Option<Param>)> {
    let w = init::default_weight(shape, rng)?;
    let fan_in: usize = shape[1..].iter().product();
    let b = if bias { Some(Param::new(init::default_bias(shape[0], fan_in, rng)?)) } else { None };
    Ok((Param::new(w), b))
}

impl Conv2d {
    /// A layer initialised as PyTorch does. Errors when `groups` does not
    /// divide both channel counts or a size is zero.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        spec: Conv2dSpec,
        bias: bool,
        rng: &mut Rng,
    ) -> Result<Self> {
        check_groups("Conv2d", in_channels, out_channels, spec.groups)?;
        if kernel.0 == 0 || kernel.1 == 0 || in_channels == 0 || out_channels == 0 {
            return Err(NnError::config("Conv2d", "channels and kernel sizes must be positive"));
        }
        let shape = [out_channels, in_channels / spec.groups, kernel.0, kernel.1];
        let (weight, bias) = default_params(&shape, bias, rng)?;
        Ok(Conv2d { weight, bias, spec })
    }

    /// A layer with the given values (weight 4-D, bias `[out]`).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>, spec: Conv2dSpec) -> Result<Self> {
        if weight.ndim() != 4 {
            return Err(NnError::config("Conv2d", format!("weight must be 4-D, got {:?}", weight.shape())));
        }
        check_bias("Conv2d", &weight, bias.as_ref())?;
        Ok(Conv2d { weight: Param::new(weight), bias: bias.map(Param::new), spec })
    }
}

fn check_bias(what: &'static str, w: &Tensor, b: Option<&Tensor>) -> Result<()> {
    match b {
        Some(b) if b.shape() != [w.shape()[0]] => {
            Err(NnError::config(what, format!("bias {:?} does not match weight {:?}", b.shape(), w.shape())))
        }
        _ => Ok(()),
    }
}

fn conv_params(w: &Param, b: &Option<Param>) -> Vec<(String, Param)> {
    let mut v = vec![("weight".to_string(), w.clone())];
    if let Some(b) = b {
        v.push(("bias".to_string(), b.clone()));
    }
    v
}

impl Module for Conv2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        let b = self.bias.as_ref().map(Var::param);
        Ok(x.conv2d(&Var::param(&self.weight), b.as_ref(), &self.spec)?)
    }

    fn named_parameters(&self) -> Vec<(String, Param)> {
        conv_params(&self.weight, &self.bias)
    }

    fn describe(&self) -> String {
        let s = self.weight.shape();
        let Conv2dSpec { stride, padding, dilation, groups, .. } = self.spec;
        format!(
            "Conv2d({}, {}, kernel_size=({}, {}), stride={stride:?}, padding={padding:?}, dilation={dilation:?}, groups={groups}, bias={})",
            s[1] * groups,
            s[0],
            s[2],
            s[3],
            self.bias.is_some()
        )
    }
}

/// A 1-D convolution over `[N, C, L]` input (torch `nn.Conv1d`): weight
/// `[out, in / groups, k]`, bias `[out]`, PyTorch's default initialisation.
#[derive(Debug, Clone)]
pub struct Conv1d {
    /// `[out_channels, in_channels / groups, k]`.
    pub weight: Param,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Param>,
    /// Stride, padding, dilation, groups.
    pub spec: Conv1dSpec,
}

impl Conv1d {
    /// A layer initialised as PyTorch does.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        spec: Conv1dSpec,
        bias: bool,
        rng: &mut Rng,
    ) -> Result<Self> {
        check_groups("Conv1d", in_channels, out_channels, spec.groups)?;
        if kernel == 0 || in_channels == 0 || out_channels == 0 {
            return Err(NnError::config("Conv1d", "channels and kernel size must be positive"));
        }
        let shape = [out_channels, in_channels / spec.groups, kernel];
        let (weight, bias) = default_params(&shape, bias, rng)?;
        Ok(Conv1d { weight, bias, spec })
    }

    /// A layer with the given values (weight 3-D, bias `[out]`).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>, spec: Conv1dSpec) -> Result<Self> {
        if weight.ndim() != 3 {
            return Err(NnError::config("Conv1d", format!("weight must be 3-D, got {:?}", weight.shape())));
        }
        check_bias("Conv1d", &weight, bias.as_ref())?;
        Ok(Conv1d { weight: Param::new(weight), bias: bias.map(Param::new), spec })
    }
}

impl Module for Conv1d {
    fn forward(&self, x: &Var) -> Result<Var> {
        let b = self.bias.as_ref().map(Var::param);
        Ok(x.conv1d(&Var::param(&self.weight), b.as_ref(), &self.spec)?)
    }

    fn named_parameters(&self) -> Vec<(String, Param)> {
        conv_params(&self.weight, &self.bias)
    }

    fn describe(&self) -> String {
        let s = self.weight.shape();
        let Conv1dSpec { stride, padding, dilation, groups, .. } = self.spec;
        format!(
            "Conv1d({}, {}, kernel_size={}, stride={stride}, padding={padding}, dilation={dilation}, groups={groups}, bias={})",
            s[1] * groups,
            s[0],
            s[2],
            self.bias.is_some()
        )
    }
}

/// 2-D max pooling (torch `nn.MaxPool2d`; PyTorch's default stride is the kernel size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Window `(kh, kw)`.
    pub kernel: (usize, usize),
    /// Step `(sh, sw)`.
    pub stride: (usize, usize),
    /// Implicit -inf padding `(ph, pw)` (at most half the window).
    pub padding: (usize, usize),
    /// Round the output size up (torch `ceil_mode`, default false); a window
    /// must still start inside the input or its left padding.
    pub ceil_mode: bool,
}

impl MaxPool2d {
    /// Square window `k`, stride `k`, no padding.
    pub fn new(k: usize) -> Self {
        MaxPool2d { kernel: (k, k), stride: (k, k), padding: (0, 0), ceil_mode: false }
    }
}

impl Module for MaxPool2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.max_pool2d(self.kernel, self.stride, self.padding, self.ceil_mode)?)
    }
    fn describe(&self) -> String {
        format!(
            "MaxPool2d(kernel_size={:?}, stride={:?}, padding={:?}, ceil_mode={})",
            self.kernel, self.stride, self.padding, self.ceil_mode
        )
    }
}

/// 2-D average pooling (torch `nn.AvgPool2d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgPool2d {
    /// Window `(kh, kw)`.
    pub kernel: (usize, usize),
    /// Step `(sh, sw)`.
    pub stride: (usize, usize),
    /// Zero padding `(ph, pw)`.
    pub padding: (usize, usize),
    /// Whether padded positions count in the divisor (PyTorch's default `true`).
    pub count_include_pad: bool,
    /// Round the output size up (torch `ceil_mode`, default false).
    pub ceil_mode: bool,
}

impl AvgPool2d {
    /// Square window `k`, stride `k`, no padding.
    pub fn new(k: usize) -> Self {
        AvgPool2d {
            kernel: (k, k),
            stride: (k, k),
            padding: (0, 0),
            count_include_pad: true,
            ceil_mode: false,
        }
    }
}

impl Module for AvgPool2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.avg_pool2d(self.kernel, self.stride, self.padding, self.count_include_pad, self.ceil_mode)?)
    }
    fn describe(&self) -> String {
        format!(
            "AvgPool2d(kernel_size={:?}, stride={:?}, padding={:?}, ceil_mode={}, count_include_pad={})",
            self.kernel, self.stride, self.padding, self.ceil_mode, self.count_include_pad
        )
    }
}

/// Adaptive average pooling to a fixed output size (torch `nn.AdaptiveAvgPool2d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveAvgPool2d {
    /// Output `(oh, ow)`.
    pub output_size: (usize, usize),
}

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.adaptive_avg_pool2d(self.output_size)?)
    }
    fn describe(&self) -> String {
        format!("AdaptiveAvgPool2d(output_size={:?})", self.output_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_init_and_errors() {
        let mut rng = Rng::new(0);
        // fan_in = 4 / 2 * 3 * 3 = 18: bound 1/sqrt(18) = 0.2357
        let c = Conv2d::new(4, 6, (3, 3), Conv2dSpec { groups: 2, ..Default::default() }, true, &mut rng)
            .unwrap();
        assert_eq!(c.weight.shape(), vec![6, 2, 3, 3]);
        let bound = 1.0 / 18f32.sqrt();
        assert!(c.weight.value().to_vec().iter().all(|v| v.abs() <= bound));
        assert!(c.bias.as_ref().unwrap().value().to_vec().iter().all(|v| v.abs() <= bound));
        assert!(
            Conv2d::new(4, 6, (3, 3), Conv2dSpec { groups: 4, ..Default::default() }, true, &mut rng)
                .is_err()
        );
        assert!(Conv1d::new(3, 2, 0, Conv1dSpec::default(), true, &mut rng).is_err());
        let c1 = Conv1d::new(3, 2, 3, Conv1dSpec::default(), false, &mut rng).unwrap();
        assert_eq!(c1.named_parameters().len(), 1);
        let y = c1.forward(&Var::constant(Tensor::zeros(&[1, 3, 7]))).unwrap();
        assert_eq!(y.shape(), &[1, 2, 5]);
        // a 3-D input to Conv2d is an error, not a panic
        assert!(c.forward(&Var::constant(Tensor::zeros(&[4, 5, 5]))).is_err());
    }

    #[test]
    fn pooling_shapes() {
        let x = Var::constant(Tensor::zeros(&[2, 3, 6, 6]));
        assert_eq!(MaxPool2d::new(2).forward(&x).unwrap().shape(), &[2, 3, 3, 3]);
        assert_eq!(AvgPool2d::new(3).forward(&x).unwrap().shape(), &[2, 3, 2, 2]);
        // ceil_mode: 6 with k 4, s 4 -> 2 windows (the second clipped)
        let ceil = MaxPool2d { ceil_mode: true, ..MaxPool2d::new(4) };
        assert_eq!(ceil.forward(&x).unwrap().shape(), &[2, 3, 2, 2]);
        assert_eq!(MaxPool2d::new(4).forward(&x).unwrap().shape(), &[2, 3, 1, 1]);
        let ceil = AvgPool2d { ceil_mode: true, ..AvgPool2d::new(4) };
        assert_eq!(ceil.forward(&x).unwrap().shape(), &[2, 3, 2, 2]);
        let a = AdaptiveAvgPool2d { output_size: (1, 1) };
        assert_eq!(a.forward(&x).unwrap().shape(), &[2, 3, 1, 1]);
    }
}
