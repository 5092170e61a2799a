//! Ranks as threads of one process, connected by channels: the collective
//! the tests use on any machine.
//!
//! [`group`] makes `n` connected [`ThreadRank`]s; move each into its own
//! thread. Every pair of ranks has its own FIFO channel, so rank `r`'s
//! messages arrive in the order `r` sent them; `all_gather` waits for each
//! source in rank order with a deadline, and a source whose thread ended
//! (its `ThreadRank` dropped) or that stays silent past the timeout is named
//! in the error.
//!
//! ```
//! use nw_dist::{Collective, threads};
//! let ranks = threads::group(3, std::time::Duration::from_secs(5)).unwrap();
//! let handles: Vec<_> = ranks
//!     .into_iter()
//!     .map(|r| std::thread::spawn(move || r.all_gather(vec![r.rank() as u8]).unwrap()))
//!     .collect();
//! for h in handles {
//!     assert_eq!(h.join().unwrap(), vec![vec![0], vec![1], vec![2]]);
//! }
//! ```

use std::cell::Cell;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use crate::collective::Collective;
use crate::error::DistError;

/// One message: the sender's collective sequence number and the bytes.
type Msg = (u64, Vec<u8>);

/// One rank of a thread group (see [`group`]).
pub struct ThreadRank {
    rank: usize,
    size: usize,
    timeout: Duration,
    /// `to[r]`: the channel into rank `r` (`None` for this rank).
    to: Vec<Option<Sender<Msg>>>,
    /// `from[r]`: the channel out of rank `r` (`None` for this rank).
    from: Vec<Option<Receiver<Msg>>>,
    seq: Cell<u64>,
    sent: Cell<u64>,
    comm: Cell<f64>,
}

impl std::fmt::Debug for ThreadRank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ThreadRank({}/{}, timeout {:?})", self.rank, self.size, self.timeout)
    }
}

/// `n` connected ranks whose collectives fail after `timeout` of silence from a peer.
pub fn group(n: usize, timeout: Duration) -> Result<Vec<ThreadRank>, DistError> {
    if n == 0 {
        return Err(DistError::Setup("a thread group needs at least one rank".into()));
    }
    let mut to: Vec<Vec<Option<Sender<Msg>>>> = (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    let mut from: Vec<Vec<Option<Receiver<Msg>>>> = (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    for src in 0..n {
        for dst in 0..n {
            if src != dst {
                let (s, r) = channel();
                to[src][dst] = Some(s);
                from[dst][src] = Some(r);
            }
        }
    }
    Ok(to
        .into_iter()
        .zip(from)
        .enumerate()
        .map(|(rank, (to, from))| ThreadRank {
            rank,
            size: n,
            timeout,
            to,
            from,
            seq: Cell::new(0),
            sent: Cell::new(0),
            comm: Cell::new(0.0),
        })
        .collect())
}

impl Collective for ThreadRank {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
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
}

impl ThreadRank {
    fn gather(&self, data: Vec<u8>) -> Result<Vec<Vec<u8>>, DistError> {
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        // A failed send means that rank is gone; the receive from it below
        // reports that, in rank order, so every survivor names the same rank.
        for s in self.to.iter().flatten() {
            if s.send((seq, data.clone())).is_ok() {
                self.sent.set(self.sent.get() + data.len() as u64);
            }
        }
        let deadline = Instant::now() + self.timeout;
        let mut out = Vec::with_capacity(self.size);
        for (src, r) in self.from.iter().enumerate() {
            let Some(r) = r else {
                out.push(data.clone());
                continue;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match r.recv_timeout(left) {
                Ok((theirs, bytes)) if theirs == seq => out.push(bytes),
                Ok((theirs, _)) => return Err(DistError::OutOfStep { rank: src, theirs, ours: seq }),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(DistError::Timeout { rank: src, seq, seconds: self.timeout.as_secs_f64() });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(DistError::Disconnected { rank: src, seq });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_rank_is_named() {
        let mut ranks = group(3, Duration::from_secs(5)).unwrap();
        drop(ranks.remove(2));
        let r1 = ranks.remove(1);
        let h = std::thread::spawn(move || r1.all_gather(vec![2]).unwrap_err());
        let e = ranks[0].all_gather(vec![1]).unwrap_err();
        assert!(matches!(e, DistError::Disconnected { rank: 2, .. }), "{e}");
        // The survivor names the same rank (not the one that failed first).
        let e1 = h.join().unwrap();
        assert!(matches!(e1, DistError::Disconnected { rank: 2, .. }), "{e1}");
    }

    #[test]
    fn a_silent_rank_times_out_naming_it() {
        let ranks = group(2, Duration::from_millis(200)).unwrap();
        let started = Instant::now();
        let e = ranks[1].all_gather(vec![1]).unwrap_err();
        assert!(matches!(e, DistError::Timeout { rank: 0, seq: 0, .. }), "{e}");
        assert!(e.to_string().contains("rank 0"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn out_of_step_is_detected() {
        let ranks = group(2, Duration::from_secs(5)).unwrap();
        // Rank 0 runs two collectives ahead; rank 1's first sees seq 0, then 1.
        let (a, b) = (&ranks[0], &ranks[1]);
        for s in a.to.iter().flatten() {
            s.send((7, vec![])).unwrap();
        }
        let e = b.all_gather(vec![]).unwrap_err();
        assert_eq!(e, DistError::OutOfStep { rank: 0, theirs: 7, ours: 0 });
    }
}
