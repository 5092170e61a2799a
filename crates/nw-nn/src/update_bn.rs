//! `update_bn`: recompute the running statistics of every BatchNorm layer
//! of a model with one pass over data, as `torch.optim.swa_utils.update_bn`
//! does for an averaged model (whose averaged weights no running statistics
//! match).

use nw_autograd::{Var, no_grad};
use nw_tensor::Tensor;

use crate::module::{BufferValue, Module};
use crate::{BatchNorm, Result};

/// Resets every tracked BatchNorm layer's statistics (mean 0, variance 1,
/// count 0), switches its momentum to `None` (the cumulative average: batch
/// `k` weighs `1/k`, so the result is the equal-weight mean of the batches'
/// statistics), runs `batches` through the model in training mode without
/// recording a graph, then restores each momentum and the mode the
/// BatchNorm layers were in. A model without tracked BatchNorm layers is
/// left as it is, and no batch is run (as torch returns early).
///
/// ```
/// use nw_nn::{BatchNorm1d, Module, Sequential, update_bn};
/// use nw_tensor::Tensor;
///
/// let mut m = Sequential::new().with(BatchNorm1d::new(1));
/// let b1 = Tensor::from_vec(vec![0.0, 2.0], &[2, 1]).unwrap(); // mean 1
/// let b2 = Tensor::from_vec(vec![4.0, 6.0], &[2, 1]).unwrap(); // mean 5
/// update_bn(&mut m, [b1, b2]).unwrap();
/// let running_mean = m.named_buffers()[0].1.tensor().to_vec();
/// assert_eq!(running_mean, vec![3.0]); // (1 + 5) / 2
/// ```
pub fn update_bn(model: &mut dyn Module, batches: impl IntoIterator<Item = Tensor>) -> Result<()> {
    let mut saved: Vec<(Option<f32>, bool)> = Vec::new();
    model.for_each_batch_norm(&mut |bn: &mut BatchNorm| {
        if let Some((m, v, n)) = &bn.running {
            let c = bn.num_features();
            m.update(|x| *x = BufferValue::F32(Tensor::zeros(&[c])));
            v.update(|x| *x = BufferValue::F32(Tensor::full(&[c], 1.0)));
            n.update(|x| {
                if let BufferValue::I64 { data, .. } = x {
                    data.iter_mut().for_each(|d| *d = 0);
                }
            });
            saved.push((bn.momentum, bn.is_training()));
            bn.momentum = None;
        }
    });
    if saved.is_empty() {
        return Ok(());
    }
    model.train();
    let pass = no_grad(|| -> Result<()> {
        for x in batches {
            model.forward(&Var::constant(x))?;
        }
        Ok(())
    });
    let mut i = 0;
    model.for_each_batch_norm(&mut |bn: &mut BatchNorm| {
        if bn.running.is_some() {
            let (momentum, training) = saved[i];
            bn.momentum = momentum;
            bn.set_mode(training);
            i += 1;
        }
    });
    pass
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BatchNorm1d, Linear, Sequential};

    #[test]
    fn statistics_are_the_mean_over_batches_and_momentum_comes_back() {
        let mut m =
            Sequential::new().with(Linear::new(1, 1, &mut nw_tensor::Rng::new(3))).with(BatchNorm1d::new(1));
        m.eval();
        // variance of each batch (unbiased) through the linear layer scales
        // with w^2; the running mean is the mean of the batch means
        let b1 = Tensor::from_vec(vec![0.0, 2.0], &[2, 1]).unwrap();
        let b2 = Tensor::from_vec(vec![4.0, 8.0], &[2, 1]).unwrap();
        update_bn(&mut m, [b1.clone(), b2.clone()]).unwrap();
        let named = m.named_buffers();
        let w = m.named_parameters()[0].1.value().to_vec()[0];
        let bias = m.named_parameters()[1].1.value().to_vec()[0];
        let mean = named[0].1.tensor().to_vec()[0];
        let var = named[1].1.tensor().to_vec()[0];
        let want_mean = ((w * 1.0 + bias) + (w * 6.0 + bias)) / 2.0;
        let want_var = (w * w * 2.0 + w * w * 8.0) / 2.0;
        assert!((mean - want_mean).abs() < 1e-5, "{mean} vs {want_mean}");
        assert!((var - want_var).abs() < 1e-4, "{var} vs {want_var}");
        let mut seen = Vec::new();
        m.for_each_batch_norm(&mut |bn| seen.push((bn.momentum, bn.is_training())));
        assert_eq!(seen, vec![(Some(0.1), false)]);
    }

    #[test]
    fn a_model_without_batch_norm_runs_nothing() {
        let mut m = Sequential::new().with(Linear::new(2, 1, &mut nw_tensor::Rng::new(3)));
        // a batch of the wrong width would fail if it ran
        let bad = Tensor::zeros(&[1, 5]);
        update_bn(&mut m, [bad]).unwrap();
    }
}
