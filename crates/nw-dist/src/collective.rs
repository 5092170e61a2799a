//! The collective layer: the one operation data-parallel training needs.
//!
//! [`Collective::all_gather`] hands every rank the byte messages of all
//! ranks in rank order. The trainer sends its canonical tree blocks
//! ([`crate::tree::run_blocks`]) through it and finishes the tree locally
//! ([`crate::tree::finish`]), so the sums never depend on arrival order.
//! Implementations: [`crate::threads`] (ranks as threads of one process) and,
//! with the `mpi` feature, `crate::mpi` (ranks as MPI processes).

use crate::error::DistError;

/// A group of `size` ranks exchanging messages in lock step.
///
/// Every rank calls the same collectives in the same order. A rank that does
/// not answer within the implementation's timeout, or that went away, makes
/// the call fail with an error naming it; a call never hangs forever.
///
/// `Send` so that a trainer holding one can move between threads (as a
/// thread pool's `install` does); not `Sync`: one thread at a time calls it.
pub trait Collective: Send {
    /// This rank's index, `0..size`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Sends `data` to every rank and returns all ranks' messages, indexed by
    /// rank (this rank's own message included, unchanged).
    fn all_gather(&self, data: Vec<u8>) -> Result<Vec<Vec<u8>>, DistError>;
    /// Bytes this rank has sent to other ranks so far (for cost accounting).
    fn bytes_sent(&self) -> u64;
    /// Seconds this rank has spent inside collectives so far (sending, and
    /// waiting for the slowest peer); 0 where not measured.
    fn comm_seconds(&self) -> f64 {
        0.0
    }
    /// Ends every rank of the job with exit status `code`, after this rank
    /// hit an error the others cannot see (they would otherwise wait in
    /// their next collective until its timeout). Returns where the ranks
    /// cannot be ended from here (one process, or ranks as threads, whose
    /// peers notice the error through the channel closing); the caller then
    /// returns its error as usual.
    fn abort(&self, code: i32) {
        let _ = code;
    }
}

/// One process alone: `all_gather` returns its own message.
#[derive(Debug, Default, Clone, Copy)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_gather(&self, data: Vec<u8>) -> Result<Vec<Vec<u8>>, DistError> {
        Ok(vec![data])
    }
    fn bytes_sent(&self) -> u64 {
        0
    }
}
