//! Forward halves of convolution, pooling and upsampling, wrapping the
//! nw-tensor kernels ([`nw_tensor::conv`], [`nw_tensor::pool`],
//! [`nw_tensor::upsample`]); the backward arms in `backward.rs` call the
//! matching backward kernels.

use nw_tensor::TensorError;
use nw_tensor::conv::{Conv1dSpec, Conv2dSpec, ConvTranspose2dSpec, conv_transpose2d, conv2d};
use nw_tensor::pool::{adaptive_avg_pool2d, avg_pool2d, max_pool2d};
use nw_tensor::upsample::{Upsample2dSpec, upsample2d};

use crate::error::Result;
use crate::op::Op;
use crate::var::Var;

impl Var {
    /// 2-D convolution (cross-correlation, PyTorch layout and semantics):
    /// input `[n, c_in, h, w]`, weight `[c_out, c_in / groups, kh, kw]`,
    /// optional bias `[c_out]` -> `[n, c_out, oh, ow]`.
    pub fn conv2d(&self, weight: &Var, bias: Option<&Var>, spec: &Conv2dSpec) -> Result<Var> {
        let y = conv2d(self.value(), weight.value(), bias.map(|b| b.value()), spec)?;
        Ok(Var::from_op(
            y,
            Op::Conv2d { x: self.clone(), weight: weight.clone(), bias: bias.cloned(), spec: *spec },
        ))
    }

    /// 2-D transposed convolution (PyTorch `conv_transpose2d`): input
    /// `[n, c_in, h, w]`, weight `[c_in, c_out / groups, kh, kw]`, optional
    /// bias `[c_out]` -> `[n, c_out, oh, ow]` with
    /// `oh = (h - 1) sh - 2 ph + dh (kh - 1) + oph + 1`.
    pub fn conv_transpose2d(
        &self,
        weight: &Var,
        bias: Option<&Var>,
        spec: &ConvTranspose2dSpec,
    ) -> Result<Var> {
        let y = conv_transpose2d(self.value(), weight.value(), bias.map(|b| b.value()), spec)?;
        Ok(Var::from_op(
            y,
            Op::ConvTranspose2d { x: self.clone(), weight: weight.clone(), bias: bias.cloned(), spec: *spec },
        ))
    }

    /// 1-D convolution: input `[n, c_in, l]`, weight `[c_out, c_in / groups, k]`,
    /// optional bias `[c_out]` -> `[n, c_out, l_out]`; runs as a 2-D
    /// convolution over height 1 (the reshapes are differentiable views).
    pub fn conv1d(&self, weight: &Var, bias: Option<&Var>, spec: &Conv1dSpec) -> Result<Var> {
        let (xs, ws) = (self.shape().to_vec(), weight.shape().to_vec());
        if xs.len() != 3 || ws.len() != 3 {
            return Err(TensorError::ShapeMismatch { op: "conv1d", lhs: xs, rhs: ws }.into());
        }
        let x4 = self.reshape(&[xs[0], xs[1], 1, xs[2]])?;
        let w4 = weight.reshape(&[ws[0], ws[1], 1, ws[2]])?;
        let y = x4.conv2d(&w4, bias, &spec.to_2d())?;
        let s = y.shape().to_vec();
        y.reshape(&[s[0], s[1], s[3]])
    }

    /// 2-D max pooling over `[n, c, h, w]` (padding counts as -inf; the
    /// gradient goes to the first maximum of each window). `ceil_mode`
    /// rounds the output size up, as PyTorch (see [`nw_tensor::pool`]).
    pub fn max_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        ceil_mode: bool,
    ) -> Result<Var> {
        let (y, indices) = max_pool2d(self.value(), kernel, stride, padding, ceil_mode)?;
        Ok(Var::from_op(y, Op::MaxPool2d { x: self.clone(), indices }))
    }

    /// 2-D average pooling over `[n, c, h, w]`; with `count_include_pad`
    /// (PyTorch's default) padded positions count in the divisor;
    /// `ceil_mode` rounds the output size up.
    pub fn avg_pool2d(
        &self,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        count_include_pad: bool,
        ceil_mode: bool,
    ) -> Result<Var> {
        let y = avg_pool2d(self.value(), kernel, stride, padding, count_include_pad, ceil_mode)?;
        Ok(Var::from_op(
            y,
            Op::AvgPool2d { x: self.clone(), kernel, stride, padding, count_include_pad, ceil_mode },
        ))
    }

    /// Adaptive average pooling of `[n, c, h, w]` to `[n, c, oh, ow]`.
    pub fn adaptive_avg_pool2d(&self, output_size: (usize, usize)) -> Result<Var> {
        let y = adaptive_avg_pool2d(self.value(), output_size)?;
        Ok(Var::from_op(y, Op::AdaptiveAvgPool2d(self.clone())))
    }

    /// Nearest or bilinear upsampling of `[n, c, h, w]` to `spec.size`
    /// (PyTorch `F.interpolate`; see [`nw_tensor::upsample`]).
    pub fn upsample2d(&self, spec: &Upsample2dSpec) -> Result<Var> {
        let y = upsample2d(self.value(), spec)?;
        Ok(Var::from_op(y, Op::Upsample2d { x: self.clone(), spec: *spec }))
    }
}
