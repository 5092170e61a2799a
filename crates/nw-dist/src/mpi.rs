//! Ranks as MPI processes (feature `mpi`, through rsmpi): the collective
//! of `mpirun -n N nw train --distributed`.
//!
//! `all_gather` posts a non-blocking send of this rank's message to every
//! other rank and polls for each peer's message (matched probe on the
//! collective's tag) until all have arrived and all sends completed. A peer
//! silent past the timeout cannot be recovered from inside MPI (its
//! outstanding requests cannot be cancelled), so the rank that notices
//! prints an error naming the peer and calls `MPI_Abort`, which ends every
//! rank of the job; a rank that dies is noticed by `mpirun`, which ends the
//! others. Either way no rank hangs.

use std::cell::Cell;
use std::time::{Duration, Instant};

use mpi::environment::Universe;
use mpi::point_to_point::MatchedReceiveVec;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::collective::Collective;
use crate::error::DistError;

/// Exit code of an MPI job aborted because a rank stopped answering.
pub const ABORT_CODE: i32 = 7;

/// This process's rank in `MPI_COMM_WORLD`.
pub struct MpiRank {
    world: SimpleCommunicator,
    timeout: Duration,
    seq: Cell<u64>,
    sent: Cell<u64>,
    comm: Cell<f64>,
    // Finalises MPI when dropped: declared last, dropped last.
    _universe: Universe,
}

impl std::fmt::Debug for MpiRank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MpiRank({}/{}, timeout {:?})", self.world.rank(), self.world.size(), self.timeout)
    }
}

// SAFETY: MPI is initialised with MPI_THREAD_SERIALIZED, which allows any
// thread to call MPI as long as calls never overlap. `MpiRank` is not `Sync`
// (its `Cell`s), so only the one thread that holds it at a time can call it.
unsafe impl Send for MpiRank {}

impl MpiRank {
    /// Initialises MPI (once per process); collectives fail after `timeout` of silence from a peer.
    pub fn init(timeout: Duration) -> Result<Self, DistError> {
        // Serialized: the rank may move between threads (it is `Send`), but
        // only one thread at a time calls MPI (it is not `Sync`).
        let (universe, level) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or_else(|| DistError::Setup("MPI could not be initialised (already initialised?)".into()))?;
        if level < mpi::Threading::Serialized {
            return Err(DistError::Setup(format!(
                "this MPI offers thread level {level:?}; nw needs Serialized (the rank may move between threads)"
            )));
        }
        let world = universe.world();
        Ok(MpiRank {
            world,
            timeout,
            seq: Cell::new(0),
            sent: Cell::new(0),
            comm: Cell::new(0.0),
            _universe: universe,
        })
    }

    fn give_up(&self, rank: usize, seq: u64) -> ! {
        let e = DistError::Timeout { rank, seq, seconds: self.timeout.as_secs_f64() };
        eprintln!("nw: rank {}: distributed: {e}; aborting the MPI job", self.world.rank());
        self.world.abort(ABORT_CODE)
    }
}

impl Collective for MpiRank {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn all_gather(&self, data: Vec<u8>) -> Result<Vec<Vec<u8>>, DistError> {
        let started = Instant::now();
        let out = self.gather(data);
        self.comm.set(self.comm.get() + started.elapsed().as_secs_f64());
        out
    }

    fn comm_seconds(&self) -> f64 {
        self.comm.get()
    }

    fn bytes_sent(&self) -> u64 {
        self.sent.get()
    }

    fn abort(&self, code: i32) {
        if self.world.size() > 1 {
            self.world.abort(code)
        }
    }
}

impl MpiRank {
    fn gather(&self, data: Vec<u8>) -> Result<Vec<Vec<u8>>, DistError> {
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        let (me, n) = (self.rank(), self.size());
        if n == 1 {
            return Ok(vec![data]);
        }
        // Tags cycle below the 32767 every MPI guarantees; messages between
        // one pair on one tag arrive in order anyway.
        let tag = (seq % 32_000) as i32;
        let deadline = Instant::now() + self.timeout;
        let mut got: Vec<Option<Vec<u8>>> = vec![None; n];
        mpi::request::scope(|scope| {
            let mut sends: Vec<_> = (0..n)
                .filter(|&d| d != me)
                .map(|d| {
                    (d, self.world.process_at_rank(d as i32).immediate_send_with_tag(scope, &data[..], tag))
                })
                .collect();
            self.sent.set(self.sent.get() + (data.len() * (n - 1)) as u64);
            loop {
                let mut waiting = None;
                for (src, slot) in got.iter_mut().enumerate() {
                    if src == me || slot.is_some() {
                        continue;
                    }
                    match self.world.process_at_rank(src as i32).immediate_matched_probe_with_tag(tag) {
                        Some(m) => *slot = Some(m.matched_receive_vec::<u8>().0),
                        None => waiting = waiting.or(Some(src)),
                    }
                }
                let mut left = Vec::with_capacity(sends.len());
                for (d, r) in sends {
                    if let Err(r) = r.test() {
                        left.push((d, r));
                    }
                }
                sends = left;
                if waiting.is_none() && sends.is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    self.give_up(waiting.unwrap_or_else(|| sends[0].0), seq);
                }
                std::thread::sleep(Duration::from_micros(20));
            }
        });
        got[me] = Some(data);
        Ok(got.into_iter().map(|m| m.expect("every message arrived")).collect())
    }
}
