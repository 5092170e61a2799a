//! Anomaly detection: find the first operation of a forward or backward
//! pass that produced a NaN or an infinity.
//!
//! Off by default. When [`set_detect_anomaly`] turns it on for the calling
//! thread, every recorded operation's output (forward, graph-recording ops
//! only: evaluation under [`crate::no_grad`] is not checked) and every
//! input gradient an operation's backward produces is scanned, and the first
//! non-finite one is kept until [`take_anomaly`] collects it. When off, the
//! cost is one thread-local read per operation and per backward step.

use std::cell::{Cell, RefCell};

use nw_tensor::Tensor;

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(false) };
    static FIRST: RefCell<Option<Anomaly>> = const { RefCell::new(None) };
}

/// Which pass an anomaly was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The operation's output value.
    Forward,
    /// A gradient the operation's backward gave one of its inputs.
    Backward,
}

/// The first non-finite value an operation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    /// The operation (`matmul`, `ln`, `cross_entropy`, ...).
    pub op: &'static str,
    /// Forward (its output) or backward (a gradient of one of its inputs).
    pub pass: Pass,
    /// For backward: which input of the operation (0-based); 0 for forward.
    pub input: usize,
    /// Shape of the tensor holding the value.
    pub shape: Vec<usize>,
    /// Flat index of the first non-finite element.
    pub index: usize,
    /// The value.
    pub value: f32,
}

impl std::fmt::Display for Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pass {
            Pass::Forward => write!(
                f,
                "the forward pass of `{}` produced {} (output shape {:?}, element {})",
                self.op, self.value, self.shape, self.index
            ),
            Pass::Backward => write!(
                f,
                "the backward pass of `{}` produced {} in the gradient of its input {} (shape {:?}, element {})",
                self.op, self.value, self.input, self.shape, self.index
            ),
        }
    }
}

/// Turns anomaly detection on or off for the calling thread; returns the
/// previous setting. Turning it on clears any anomaly not yet taken.
pub fn set_detect_anomaly(on: bool) -> bool {
    if on {
        FIRST.with(|a| a.borrow_mut().take());
    }
    ENABLED.with(|e| e.replace(on))
}

/// Whether anomaly detection is on for the calling thread.
pub fn is_anomaly_enabled() -> bool {
    ENABLED.with(|e| e.get())
}

/// The first anomaly found since the last call (or since detection was turned
/// on), clearing it.
pub fn take_anomaly() -> Option<Anomaly> {
    FIRST.with(|a| a.borrow_mut().take())
}

/// Records `t` as the first anomaly when it holds a non-finite value and
/// none is recorded yet. Called only when detection is on.
pub(crate) fn check(t: &Tensor, op: &'static str, pass: Pass, input: usize) {
    if FIRST.with(|a| a.borrow().is_some()) {
        return;
    }
    let c = t.contiguous();
    let Some(s) = c.as_slice() else { return };
    if let Some(index) = first_non_finite(s) {
        let found = Anomaly { op, pass, input, shape: t.shape().to_vec(), index, value: s[index] };
        FIRST.with(|a| *a.borrow_mut() = Some(found));
    }
}

/// The index of the first NaN or infinity in `s`. A value is not finite
/// when its exponent bits are all ones: an OR of that test over a block (a
/// branch-free loop the compiler vectorises with the baseline x86-64
/// instructions: and, compare-equal, or) says whether the block holds one,
/// and only such a block is searched element by element. (Also the NaN guard's
/// scan in nw-train.)
///
/// ```
/// assert_eq!(nw_autograd::anomaly::first_non_finite(&[1.0, f32::NAN, f32::INFINITY]), Some(1));
/// ```
pub fn first_non_finite(s: &[f32]) -> Option<usize> {
    const EXP: u32 = 0x7f80_0000;
    const BLOCK: usize = 1024;
    for (b, block) in s.chunks(BLOCK).enumerate() {
        let bad = block.iter().fold(0u32, |acc, v| acc | u32::from(v.to_bits() & EXP == EXP));
        if bad != 0 {
            return block.iter().position(|v| !v.is_finite()).map(|i| b * BLOCK + i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blocked_scan_finds_the_first_non_finite_value() {
        let mut v = vec![1.0f32; 5000];
        assert_eq!(first_non_finite(&v), None);
        v[4999] = f32::NEG_INFINITY;
        assert_eq!(first_non_finite(&v), Some(4999));
        v[2048] = f32::NAN;
        v[3000] = f32::INFINITY;
        assert_eq!(first_non_finite(&v), Some(2048));
        // the largest finite value and subnormals are finite
        let w = [f32::MAX, -f32::MAX, f32::MIN_POSITIVE / 2.0, 0.0, -0.0];
        assert_eq!(first_non_finite(&w), None);
        assert_eq!(first_non_finite(&[]), None);
    }
    use crate::{Param, Var};

    #[test]
    fn finds_the_first_forward_op_then_the_first_backward_op() {
        let prev = set_detect_anomaly(true);
        // exp(100) overflows f32 in the forward pass of `exp`, then `ln` keeps it.
        let w = Param::new(Tensor::from_vec(vec![1.0, 100.0], &[2]).unwrap());
        let y = Var::param(&w).exp().ln().sum();
        let a = take_anomaly().expect("an anomaly");
        assert_eq!((a.op, a.pass, a.index), ("exp", Pass::Forward, 1), "{a}");
        assert!(a.to_string().contains("`exp`"), "{a}");
        drop(y);
        // sqrt(0) is finite forward; its derivative 1 / (2 sqrt 0) is not.
        let w = Param::new(Tensor::from_vec(vec![0.0, 4.0], &[2]).unwrap());
        let y = Var::param(&w).sqrt().sum();
        assert_eq!(take_anomaly(), None);
        y.backward().unwrap();
        let a = take_anomaly().expect("an anomaly");
        assert_eq!((a.op, a.pass, a.input, a.index), ("sqrt", Pass::Backward, 0, 0), "{a}");
        // Off: nothing is recorded.
        set_detect_anomaly(false);
        let _ = Var::param(&w).ln().sum().backward().unwrap();
        assert_eq!(take_anomaly(), None);
        set_detect_anomaly(prev);
    }

    #[test]
    fn evaluation_without_a_graph_is_not_checked() {
        let prev = set_detect_anomaly(true);
        let w = Param::new(Tensor::from_vec(vec![0.0], &[1]).unwrap());
        let _ = crate::no_grad(|| Var::param(&w).ln());
        assert_eq!(take_anomaly(), None);
        set_detect_anomaly(prev);
    }
}
