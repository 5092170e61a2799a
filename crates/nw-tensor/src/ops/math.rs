//! Unary elementwise math.

use crate::tensor::Tensor;

/// The error function, accurate to about 1e-7 relative (Numerical Recipes'
/// Chebyshev fit of erfc, computed in f64).
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { 1.0 - r } else { r - 1.0 }
}

/// Logistic sigmoid `1 / (1 + e^-x)`, stable for large |x|.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl Tensor {
    /// A new tensor with `f` applied to every element.
    pub fn map(&self, f: impl Fn(f32) -> f32 + Sync) -> Tensor {
        let src = self.contiguous();
        let s = src.as_slice().expect("contiguous");
        let out = super::map_collect(s, f);
        Tensor::from_vec(out, self.shape()).expect("same length")
    }

    /// Applies `f` to every element in place.
    pub fn map_(&mut self, f: impl Fn(f32) -> f32 + Sync) {
        use rayon::prelude::*;
        let d = self.as_slice_mut();
        if d.len() >= super::PAR_THRESHOLD {
            d.par_chunks_mut(super::CHUNK).for_each(|c| c.iter_mut().for_each(|x| *x = f(*x)));
        } else {
            d.iter_mut().for_each(|x| *x = f(*x));
        }
    }

    /// `-x`.
    pub fn neg(&self) -> Tensor {
        self.map(|x| -x)
    }
    /// `e^x`.
    pub fn exp(&self) -> Tensor {
        self.map(f32::exp)
    }
    /// Natural logarithm.
    pub fn ln(&self) -> Tensor {
        self.map(f32::ln)
    }
    /// Hyperbolic tangent.
    pub fn tanh(&self) -> Tensor {
        self.map(f32::tanh)
    }
    /// Logistic sigmoid.
    pub fn sigmoid(&self) -> Tensor {
        self.map(sigmoid)
    }
    /// `max(x, 0)`.
    pub fn relu(&self) -> Tensor {
        self.map(|x| if x > 0.0 { x } else { 0.0 })
    }
    /// The error function.
    pub fn erf(&self) -> Tensor {
        self.map(|x| erf(x as f64) as f32)
    }
    /// Square root.
    pub fn sqrt(&self) -> Tensor {
        self.map(f32::sqrt)
    }
    /// `x * x`.
    pub fn square(&self) -> Tensor {
        self.map(|x| x * x)
    }
    /// `x ^ p`.
    pub fn powf(&self, p: f32) -> Tensor {
        self.map(|x| x.powf(p))
    }
    /// `|x|`.
    pub fn abs(&self) -> Tensor {
        self.map(f32::abs)
    }
    /// `1 / x`.
    pub fn recip(&self) -> Tensor {
        self.map(|x| 1.0 / x)
    }
    /// -1, 0 or 1 by the sign of `x` (0 for 0 and NaN for NaN, as torch.sign).
    pub fn sign(&self) -> Tensor {
        self.map(|x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        })
    }
    /// Clamps into `[min, max]`.
    pub fn clamp(&self, min: f32, max: f32) -> Tensor {
        self.map(|x| x.max(min).min(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_known_values() {
        // Reference values of erf from Abramowitz and Stegun, table 7.1.
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (2.0, 0.995_322_265_0),
            (-1.0, -0.842_700_792_9),
        ] {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn unary_values() {
        let t = Tensor::from_vec(vec![-2.0, 0.0, 3.0], &[3]).unwrap();
        assert_eq!(t.relu().to_vec(), vec![0.0, 0.0, 3.0]);
        assert_eq!(t.abs().to_vec(), vec![2.0, 0.0, 3.0]);
        assert_eq!(t.sign().to_vec(), vec![-1.0, 0.0, 1.0]);
        assert_eq!(t.clamp(-1.0, 1.0).to_vec(), vec![-1.0, 0.0, 1.0]);
        assert_eq!(t.square().to_vec(), vec![4.0, 0.0, 9.0]);
        assert_eq!(t.neg().to_vec(), vec![2.0, -0.0, -3.0]);
        let s = t.sigmoid().to_vec();
        assert!((s[0] - 1.0 / (1.0 + 2f32.exp())).abs() < 1e-7);
        assert_eq!(s[1], 0.5);
        assert_eq!(Tensor::from_vec(vec![-1000.0, 1000.0], &[2]).unwrap().sigmoid().to_vec(), vec![0.0, 1.0]);
        let e = t.exp().ln().to_vec();
        assert!((e[2] - 3.0).abs() < 1e-6);
        assert_eq!(Tensor::from_vec(vec![4.0], &[1]).unwrap().sqrt().to_vec(), vec![2.0]);
        assert_eq!(Tensor::from_vec(vec![4.0], &[1]).unwrap().recip().to_vec(), vec![0.25]);
        assert_eq!(Tensor::from_vec(vec![2.0], &[1]).unwrap().powf(3.0).to_vec(), vec![8.0]);
    }

    #[test]
    fn map_in_place_unshares() {
        let a = Tensor::ones(&[3]);
        let mut b = a.clone();
        b.map_(|x| x * 2.0);
        assert_eq!(a.to_vec(), vec![1.0; 3]);
        assert_eq!(b.to_vec(), vec![2.0; 3]);
    }
}
