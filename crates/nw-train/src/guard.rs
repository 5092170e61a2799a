//! The NaN/infinity guard: stops a run at the first non-finite value and
//! names where it appeared.

use nw_autograd::{Grads, Param};
use thiserror::Error;

/// A non-finite value found after a step.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{}", describe(self))]
pub struct NonFinite {
    /// Optimizer step at which it was found.
    pub step: u64,
    /// The first parameter (in model order) holding it.
    pub name: String,
    /// `"loss"`, `"gradient"` or `"weight"`.
    pub what: &'static str,
    /// Flat index of the first bad element.
    pub index: usize,
    /// The bad value.
    pub value: f32,
}

fn describe(e: &NonFinite) -> String {
    if e.what == "loss" {
        format!(
            "training diverged at step {}: the loss is {} (lower the learning rate or clip gradients)",
            e.step, e.value
        )
    } else {
        format!(
            "training diverged at step {}: non-finite {} in parameter {} (first at element {}: {})",
            e.step, e.what, e.name, e.index, e.value
        )
    }
}

/// Checks the loss, then gradients, then weights, in model order, and
/// reports the first non-finite value.
pub fn check_finite(
    step: u64,
    loss: f32,
    params: &[(String, Param)],
    grads: &Grads,
) -> Result<(), NonFinite> {
    if !loss.is_finite() {
        return Err(NonFinite { step, name: "(loss)".into(), what: "loss", index: 0, value: loss });
    }
    for (what, use_grad) in [("gradient", true), ("weight", false)] {
        for (name, p) in params {
            let t = if use_grad {
                match grads.get(p) {
                    Some(g) => g.clone(),
                    None => continue,
                }
            } else {
                p.value()
            };
            let c = t.contiguous();
            if let Some((index, &value)) =
                c.as_slice().expect("contiguous").iter().enumerate().find(|(_, v)| !v.is_finite())
            {
                return Err(NonFinite { step, name: name.clone(), what, index, value });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nw_tensor::Tensor;

    #[test]
    fn names_the_first_bad_parameter() {
        let a = Param::new(Tensor::ones(&[2]));
        let b = Param::new(Tensor::from_vec(vec![1.0, f32::NAN], &[2]).unwrap());
        let params = vec![("0.weight".to_string(), a.clone()), ("2.weight".to_string(), b.clone())];
        let grads = Grads::new();
        let e = check_finite(5, 0.3, &params, &grads).unwrap_err();
        assert_eq!((e.name.as_str(), e.what, e.index), ("2.weight", "weight", 1));
        let mut g = Grads::new();
        g.insert(&a, Tensor::from_vec(vec![f32::INFINITY, 0.0], &[2]).unwrap());
        let e = check_finite(5, 0.3, &params, &g).unwrap_err();
        assert_eq!((e.name.as_str(), e.what), ("0.weight", "gradient"));
        assert!(e.to_string().contains("step 5"));
        assert_eq!(check_finite(1, f32::NAN, &[], &g).unwrap_err().what, "loss");
        let ok = vec![("0.weight".to_string(), a)];
        assert!(check_finite(1, 0.1, &ok, &Grads::new()).is_ok());
    }
}
