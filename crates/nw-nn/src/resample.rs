//! Layers that change the spatial size upwards: [`ConvTranspose2d`] and
//! [`Upsample`].

use nw_autograd::{Param, Var};
use nw_tensor::conv::ConvTranspose2dSpec;
use nw_tensor::upsample::{Upsample2dSpec, UpsampleMode};
use nw_tensor::{Rng, Tensor};

use crate::error::{NnError, Result};
use crate::init;
use crate::module::Module;

/// A 2-D transposed convolution over NCHW input (torch `nn.ConvTranspose2d`):
/// weight `[in, out / groups, kh, kw]` (PyTorch's layout), bias `[out]`, both
/// drawn as PyTorch does: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with torch's
/// fan-in of that weight shape, `fan_in = out / groups * kh * kw`.
///
/// ```
/// use nw_autograd::Var;
/// use nw_nn::{ConvTranspose2d, Module};
/// use nw_tensor::conv::ConvTranspose2dSpec;
/// use nw_tensor::{Rng, Tensor};
/// let spec = ConvTranspose2dSpec { stride: (2, 2), padding: (1, 1), output_padding: (1, 1), ..Default::default() };
/// let up = ConvTranspose2d::new(8, 3, (3, 3), spec, true, &mut Rng::new(0)).unwrap();
/// let y = up.forward(&Var::constant(Tensor::zeros(&[2, 8, 7, 7]))).unwrap();
/// assert_eq!(y.shape(), &[2, 3, 14, 14]);
/// ```
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    /// `[in_channels, out_channels / groups, kh, kw]`.
    pub weight: Param,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Param>,
    /// Stride, padding, output padding, dilation, groups.
    pub spec: ConvTranspose2dSpec,
}

impl ConvTranspose2d {
    /// A layer initialised as PyTorch does. Errors when `groups` does not
    /// divide both channel counts, a size is zero, or `output_padding` is not
    /// below the stride or the dilation.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        spec: ConvTranspose2dSpec,
        bias: bool,
        rng: &mut Rng,
    ) -> Result<Self> {
        let what = "ConvTranspose2d";
        let g = spec.groups;
        if g == 0 || !in_channels.is_multiple_of(g) || !out_channels.is_multiple_of(g) {
            return Err(NnError::config(
                what,
                format!("groups {g} must divide in_channels {in_channels} and out_channels {out_channels}"),
            ));
        }
        if kernel.0 == 0 || kernel.1 == 0 || in_channels == 0 || out_channels == 0 {
            return Err(NnError::config(what, "channels and kernel sizes must be positive"));
        }
        check_output_padding(&spec)?;
        let shape = [in_channels, out_channels / g, kernel.0, kernel.1];
        // torch: kaiming_uniform(a = sqrt(5)) with fan_in = size(1) * kh * kw,
        // and the bias bound 1 / sqrt of that fan_in
        let weight = init::default_weight(&shape, rng)?;
        let fan_in = out_channels / g * kernel.0 * kernel.1;
        let bias = if bias { Some(Param::new(init::default_bias(out_channels, fan_in, rng)?)) } else { None };
        Ok(ConvTranspose2d { weight: Param::new(weight), bias, spec })
    }

    /// A layer with the given values (weight 4-D `[in, out / groups, kh, kw]`,
    /// bias `[out]`).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>, spec: ConvTranspose2dSpec) -> Result<Self> {
        let what = "ConvTranspose2d";
        if weight.ndim() != 4 {
            return Err(NnError::config(what, format!("weight must be 4-D, got {:?}", weight.shape())));
        }
        let g = spec.groups;
        if g == 0 || !weight.shape()[0].is_multiple_of(g) {
            return Err(NnError::config(
                what,
                format!("groups {g} must divide the in_channels of weight {:?}", weight.shape()),
            ));
        }
        let out = weight.shape()[1] * g;
        if let Some(b) = &bias
            && b.shape() != [out]
        {
            return Err(NnError::config(
                what,
                format!(
                    "bias {:?} does not match weight {:?} with groups {}",
                    b.shape(),
                    weight.shape(),
                    spec.groups
                ),
            ));
        }
        check_output_padding(&spec)?;
        Ok(ConvTranspose2d { weight: Param::new(weight), bias: bias.map(Param::new), spec })
    }
}

fn check_output_padding(spec: &ConvTranspose2dSpec) -> Result<()> {
    let (o, s, d) = (spec.output_padding, spec.stride, spec.dilation);
    if (o.0 >= s.0 && o.0 >= d.0) || (o.1 >= s.1 && o.1 >= d.1) {
        return Err(NnError::config(
            "ConvTranspose2d",
            format!("output_padding {o:?} must be smaller than the stride {s:?} or the dilation {d:?}"),
        ));
    }
    Ok(())
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Var) -> Result<Var> {
        let b = self.bias.as_ref().map(Var::param);
        Ok(x.conv_transpose2d(&Var::param(&self.weight), b.as_ref(), &self.spec)?)
    }

    fn named_parameters(&self) -> Vec<(String, Param)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }

    fn describe(&self) -> String {
        let s = self.weight.shape();
        let ConvTranspose2dSpec { stride, padding, output_padding, dilation, groups, .. } = self.spec;
        format!(
            "ConvTranspose2d({}, {}, kernel_size=({}, {}), stride={stride:?}, padding={padding:?}, \
             output_padding={output_padding:?}, dilation={dilation:?}, groups={groups}, bias={})",
            s[0],
            s[1] * groups,
            s[2],
            s[3],
            self.bias.is_some()
        )
    }
}

/// How [`Upsample`] sets its output size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UpsampleSize {
    /// A fixed output `(height, width)`; the scale is `in / out`.
    Size(usize, usize),
    /// `floor(in * factor)` per axis; the scale is `1 / factor`.
    ScaleFactor(f64, f64),
}

/// Nearest or bilinear upsampling of NCHW input (torch `nn.Upsample`); no
/// parameters. See [`nw_tensor::upsample`] for the source coordinates.
///
/// ```
/// use nw_autograd::Var;
/// use nw_nn::{Module, Upsample, UpsampleSize};
/// use nw_tensor::Tensor;
/// use nw_tensor::upsample::UpsampleMode;
/// let up = Upsample { size: UpsampleSize::ScaleFactor(2.0, 2.0), mode: UpsampleMode::Nearest };
/// assert_eq!(up.forward(&Var::constant(Tensor::zeros(&[1, 3, 4, 5]))).unwrap().shape(), &[1, 3, 8, 10]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Upsample {
    /// The output size, or the factor it comes from.
    pub size: UpsampleSize,
    /// Nearest or bilinear (with or without `align_corners`).
    pub mode: UpsampleMode,
}

impl Upsample {
    /// The kernel spec for an input of `shape`.
    pub fn spec(&self, shape: &[usize]) -> Result<Upsample2dSpec> {
        Ok(match self.size {
            UpsampleSize::Size(h, w) => Upsample2dSpec::from_size((h, w), self.mode),
            UpsampleSize::ScaleFactor(a, b) => Upsample2dSpec::from_scale_factor(shape, (a, b), self.mode)?,
        })
    }
}

impl Module for Upsample {
    fn forward(&self, x: &Var) -> Result<Var> {
        if x.shape().len() != 4 {
            return Err(NnError::input(
                "Upsample",
                format!("expected input [N, C, H, W], got {:?}", x.shape()),
            ));
        }
        Ok(x.upsample2d(&self.spec(x.shape())?)?)
    }

    fn describe(&self) -> String {
        let size = match self.size {
            UpsampleSize::Size(h, w) => format!("size=({h}, {w})"),
            UpsampleSize::ScaleFactor(a, b) => format!("scale_factor=({a}, {b})"),
        };
        let mode = match self.mode {
            UpsampleMode::Nearest => "mode='nearest'".to_string(),
            UpsampleMode::Bilinear { align_corners } => {
                format!("mode='bilinear', align_corners={align_corners}")
            }
        };
        format!("Upsample({size}, {mode})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_transpose_default_init_and_errors() {
        let mut rng = Rng::new(0);
        let spec = ConvTranspose2dSpec { groups: 2, ..Default::default() };
        // weight [4, 6 / 2, 3, 3]: fan_in = 3 * 9 = 27, bound 1/sqrt(27)
        let c = ConvTranspose2d::new(4, 6, (3, 3), spec, true, &mut rng).unwrap();
        assert_eq!(c.weight.shape(), vec![4, 3, 3, 3]);
        assert_eq!(c.bias.as_ref().unwrap().shape(), vec![6]);
        let bound = 1.0 / 27f32.sqrt();
        let w = c.weight.value().to_vec();
        assert!(w.iter().all(|v| v.abs() <= bound));
        // the draws fill the range (not a smaller bound by another fan-in)
        assert!(w.iter().any(|v| v.abs() > 0.8 * bound));
        assert!(c.bias.as_ref().unwrap().value().to_vec().iter().all(|v| v.abs() <= bound));
        let y = c.forward(&Var::constant(Tensor::zeros(&[1, 4, 5, 5]))).unwrap();
        assert_eq!(y.shape(), &[1, 6, 7, 7]);
        assert!(
            ConvTranspose2d::new(4, 6, (3, 3), ConvTranspose2dSpec { groups: 4, ..spec }, true, &mut rng)
                .is_err()
        );
        let bad = ConvTranspose2dSpec { output_padding: (1, 0), ..Default::default() };
        assert!(ConvTranspose2d::new(2, 2, (3, 3), bad, true, &mut rng).is_err());
        assert!(
            ConvTranspose2d::from_tensors(Tensor::zeros(&[2, 3, 2, 2]), Some(Tensor::zeros(&[2])), spec)
                .is_err()
        );
        assert!(c.forward(&Var::constant(Tensor::zeros(&[4, 5, 5]))).is_err());
        assert_eq!(c.named_parameters().len(), 2);
    }

    #[test]
    fn upsample_sizes() {
        let x = Var::constant(Tensor::zeros(&[2, 3, 3, 4]));
        let bil = UpsampleMode::Bilinear { align_corners: false };
        let by_size = Upsample { size: UpsampleSize::Size(5, 7), mode: bil };
        assert_eq!(by_size.forward(&x).unwrap().shape(), &[2, 3, 5, 7]);
        let by_factor = Upsample { size: UpsampleSize::ScaleFactor(1.5, 2.0), mode: UpsampleMode::Nearest };
        assert_eq!(by_factor.forward(&x).unwrap().shape(), &[2, 3, 4, 8]);
        assert!(by_factor.forward(&Var::constant(Tensor::zeros(&[3, 4]))).is_err());
        let bad = Upsample { size: UpsampleSize::ScaleFactor(-1.0, 2.0), mode: UpsampleMode::Nearest };
        assert!(bad.forward(&x).is_err());
        assert!(by_size.describe().contains("bilinear"));
    }
}
