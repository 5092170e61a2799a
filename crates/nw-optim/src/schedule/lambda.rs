//! LambdaLR: a user closure of the step count.

use super::LrSchedule;
use crate::error::OptimError;

/// LambdaLR: `η0 · f(t)` with a user closure `f`. A closure cannot be
/// serialised; its state is the step count ([`LambdaLr::epoch`],
/// [`LambdaLr::set_epoch`]), which is all a checkpoint needs.
///
/// ```
/// use nw_optim::schedule::{LambdaLr, LrSchedule};
///
/// let mut s = LambdaLr::new(0.1, |t| 1.0 / (1.0 + t as f64));
/// assert_eq!(s.lr(), 0.1);
/// s.step().unwrap();
/// assert_eq!(s.lr(), 0.05);
/// ```
pub struct LambdaLr {
    base_lr: f64,
    epoch: usize,
    f: Box<dyn Fn(usize) -> f64 + Send + Sync>,
}

impl std::fmt::Debug for LambdaLr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LambdaLr {{ base_lr: {}, epoch: {} }}", self.base_lr, self.epoch)
    }
}

impl LambdaLr {
    /// A schedule at step 0.
    pub fn new(base_lr: f64, f: impl Fn(usize) -> f64 + Send + Sync + 'static) -> Self {
        LambdaLr { base_lr, epoch: 0, f: Box::new(f) }
    }

    /// Steps taken.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Moves to step `epoch` (restoring a checkpoint).
    pub fn set_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
    }
}

impl LrSchedule for LambdaLr {
    fn lr(&self) -> f64 {
        self.base_lr * (self.f)(self.epoch)
    }

    fn step(&mut self) -> Result<f64, OptimError> {
        self.epoch += 1;
        Ok(self.lr())
    }
}
