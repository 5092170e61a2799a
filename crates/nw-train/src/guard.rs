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
    /// The first parameter (in model order) holding it; for a non-finite
    /// loss, the first parameter whose gradient is non-finite, or [`LOSS`].
    pub name: String,
    /// `"loss"`, `"gradient"` or `"weight"`.
    pub what: &'static str,
    /// Flat index of the first bad element.
    pub index: usize,
    /// The bad value.
    pub value: f32,
    /// With anomaly detection on ([`nw_autograd::set_detect_anomaly`],
    /// `train.detect_anomaly`): the first operation of the step's forward or
    /// backward pass that produced a non-finite value.
    pub first_op: Option<String>,
}

fn describe(e: &NonFinite) -> String {
    let mut s = describe_value(e);
    if let Some(op) = &e.first_op {
        s += &format!("; anomaly detection: {op}");
    }
    s
}

fn describe_value(e: &NonFinite) -> String {
    if e.what == "loss" {
        let first = if e.name == LOSS {
            String::new()
        } else {
            format!("; the first parameter with a non-finite gradient is {} (element {})", e.name, e.index)
        };
        format!(
            "training diverged at step {}: the loss is {}{first} (lower the learning rate, clip gradients, check the inputs, or run with --detect-anomaly to find the first operation)",
            e.step, e.value
        )
    } else {
        format!(
            "training diverged at step {}: non-finite {} in parameter {} (first at element {}: {})",
            e.step, e.what, e.name, e.index, e.value
        )
    }
}

/// The `name` of a [`NonFinite`] loss when no gradient is non-finite.
pub const LOSS: &str = "(loss)";

/// The first parameter (in model order) whose gradient holds a NaN or an
/// infinity, with the element's index.
fn first_bad_gradient(params: &[(String, Param)], grads: &Grads) -> Option<(String, usize)> {
    params.iter().find_map(|(name, p)| {
        let c = grads.get(p)?.contiguous();
        first_non_finite(c.as_slice().expect("contiguous")).map(|i| (name.clone(), i))
    })
}

/// Checks the loss, then gradients, then weights, in model order, and
/// reports the first non-finite value. A non-finite loss is reported with
/// the first parameter whose gradient is non-finite too (the layer the bad
/// value reached first, in model order), or [`LOSS`] when none is.
pub fn check_finite(
    step: u64,
    loss: f32,
    params: &[(String, Param)],
    grads: &Grads,
) -> Result<(), NonFinite> {
    check_finite_parts(step, loss, params, grads, true)
}

/// [`check_finite`] without the weights: the loss and the gradients, before
/// an update. The trainer checks the weights once per step, after the
/// update (a weight that was non-finite before it is still non-finite
/// after, so it is reported the same step), instead of scanning them twice.
pub fn check_finite_gradients(
    step: u64,
    loss: f32,
    params: &[(String, Param)],
    grads: &Grads,
) -> Result<(), NonFinite> {
    check_finite_parts(step, loss, params, grads, false)
}

fn check_finite_parts(
    step: u64,
    loss: f32,
    params: &[(String, Param)],
    grads: &Grads,
    weights: bool,
) -> Result<(), NonFinite> {
    if !loss.is_finite() {
        let (name, index) = first_bad_gradient(params, grads).unwrap_or_else(|| (LOSS.into(), 0));
        return Err(NonFinite { step, name, what: "loss", index, value: loss, first_op: first_op() });
    }
    for (what, use_grad) in [("gradient", true), ("weight", false)].into_iter().filter(|w| weights || w.1) {
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
            let s = c.as_slice().expect("contiguous");
            if let Some(index) = first_non_finite(s) {
                return Err(NonFinite {
                    step,
                    name: name.clone(),
                    what,
                    index,
                    value: s[index],
                    first_op: first_op(),
                });
            }
        }
    }
    if nw_autograd::anomaly::is_anomaly_enabled() {
        // A non-finite intermediate that reached no loss, gradient or weight
        // (masked, say) is not reported with a later step's divergence.
        nw_autograd::take_anomaly();
    }
    Ok(())
}

/// The anomaly detector's finding, when it is on.
fn first_op() -> Option<String> {
    nw_autograd::anomaly::is_anomaly_enabled()
        .then(nw_autograd::take_anomaly)
        .flatten()
        .map(|a| a.to_string())
}

/// The index of the first NaN or infinity in `s`. Blocks are tested without
/// branches (an OR of "exponent bits all set" over the block, which the
/// compiler vectorises); only a block that holds one is searched element by
/// element. This runs over every gradient and weight twice per step (a
/// memory-bound pass, about a tenth of an MLP step at batch 128 when it ran
/// on one thread), so tensors of at least [`PAR_MIN`] elements are scanned in
/// fixed chunks of [`PAR_CHUNK`] across rayon's threads; `find_map_first`
/// returns the lowest bad index whatever thread found what, so the answer
/// does not depend on the thread count.
fn first_non_finite(s: &[f32]) -> Option<usize> {
    use rayon::prelude::*;
    if s.len() >= PAR_MIN && rayon::current_num_threads() > 1 {
        return s
            .par_chunks(PAR_CHUNK)
            .enumerate()
            .find_map_first(|(c, chunk)| first_non_finite_serial(chunk).map(|i| c * PAR_CHUNK + i));
    }
    first_non_finite_serial(s)
}

/// Tensors with at least this many elements are scanned in parallel.
pub const PAR_MIN: usize = 1 << 16;
/// Elements per parallel scan chunk.
pub const PAR_CHUNK: usize = 1 << 15;

/// [`first_non_finite`] on the calling thread (a blocked, vectorised scan).
fn first_non_finite_serial(s: &[f32]) -> Option<usize> {
    nw_autograd::anomaly::first_non_finite(s)
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

    #[test]
    fn first_non_finite_finds_the_first_in_any_block() {
        let mut v = vec![1.0f32; 1000];
        assert_eq!(first_non_finite(&v), None);
        assert_eq!(first_non_finite(&[]), None);
        // f32::MAX and subnormals are finite
        v[3] = f32::MAX;
        v[4] = f32::MIN_POSITIVE / 2.0;
        assert_eq!(first_non_finite(&v), None);
        for (i, bad) in [(0, f32::NAN), (255, f32::INFINITY), (256, f32::NEG_INFINITY), (999, f32::NAN)] {
            let mut w = v.clone();
            w[i] = bad;
            w[999.min(i + 300)] = f32::NAN; // a later one does not hide the first
            assert_eq!(first_non_finite(&w), Some(i), "at {i}");
        }
    }

    #[test]
    fn the_parallel_scan_finds_the_first_at_any_thread_count() {
        // Two chunks hold a bad value; the lower index wins on 1 to 4 threads.
        let n = PAR_MIN + 3 * PAR_CHUNK + 17;
        let mut v = vec![0.5f32; n];
        v[n - 1] = f32::NAN;
        v[PAR_CHUNK + 5] = f32::INFINITY;
        for threads in 1..=4 {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            assert_eq!(pool.install(|| first_non_finite(&v)), Some(PAR_CHUNK + 5), "{threads} threads");
            assert_eq!(pool.install(|| first_non_finite(&v[..PAR_CHUNK])), None, "{threads} threads");
        }
    }
}
