//! What can go wrong in a collective: a rank that stopped answering, went
//! away, or is at a different collective than this one.

/// A failed collective operation; every variant names the rank at fault.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum DistError {
    /// No message from `rank` within the timeout.
    #[error("rank {rank} did not answer collective #{seq} within {seconds:.1} s (stalled or dead)")]
    Timeout {
        /// The rank that did not answer.
        rank: usize,
        /// The collective's sequence number on this rank (from 0).
        seq: u64,
        /// The timeout in seconds.
        seconds: f64,
    },
    /// `rank`'s end of the connection is gone (its process or thread ended).
    #[error("rank {rank} is gone (ended before collective #{seq})")]
    Disconnected {
        /// The rank that went away.
        rank: usize,
        /// The collective's sequence number on this rank.
        seq: u64,
    },
    /// `rank` sent the message of a different collective.
    #[error("rank {rank} is out of step: sent collective #{theirs} while this rank is at #{ours}")]
    OutOfStep {
        /// The rank out of step.
        rank: usize,
        /// Its sequence number.
        theirs: u64,
        /// This rank's.
        ours: u64,
    },
    /// A message could not be decoded (a different build or model on `rank`).
    #[error("rank {rank} sent a malformed message: {what}")]
    Malformed {
        /// The sender.
        rank: usize,
        /// What was wrong.
        what: String,
    },
    /// The group was set up wrongly (size 0, rank out of range, MPI missing).
    #[error("collective set-up: {0}")]
    Setup(String),
}
