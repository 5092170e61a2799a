//! Data-parallel training: a [`Run`] whose steps share their micro-shards
//! with the other ranks of a [`Collective`].
//!
//! Every rank builds the same run from the same configuration and seed
//! (checked at start: the ranks compare their configurations), loads the
//! same batches in the same order and computes only its contiguous run of
//! each batch's micro-shards ([`crate::shard`]); the gradient tree is
//! finished identically on every rank, so every rank holds the same weights
//! after every step, for any rank count. Rank 0 alone writes the output
//! directory (checkpoints, model, metrics, monitor log, plots); the others
//! train with no output. [`Distributed::resume`] reads the checkpoint on
//! rank 0 and hands its bytes to every rank, so the others need no access to
//! rank 0's disk; a run continues bit-identically under any rank count.
//!
//! ```
//! use nw_dist::threads;
//! use nw_train::{RunConfig, distributed::Distributed, session::Quiet};
//!
//! let mut cfg = RunConfig::default();
//! cfg.train.epochs = 1;
//! cfg.train.accumulate = 2;
//! cfg.model.hidden = vec![8];
//! let ranks = threads::group(2, std::time::Duration::from_secs(60)).unwrap();
//! let hs: Vec<_> = ranks
//!     .into_iter()
//!     .map(|c| {
//!         let cfg = cfg.clone();
//!         std::thread::spawn(move || {
//!             let mut d = Distributed::new(&cfg, Box::new(c)).unwrap();
//!             d.fit(&cfg, None, &mut Quiet).unwrap();
//!             d.run.trainer.named_parameters()[0].1.value().to_vec()
//!         })
//!     })
//!     .collect();
//! let w: Vec<Vec<f32>> = hs.into_iter().map(|h| h.join().unwrap()).collect();
//! assert_eq!(w[0], w[1]);
//! ```

use std::path::Path;

use nw_dist::Collective;
use sha2::{Digest, Sha256};

use crate::checkpoint::Checkpoint;
use crate::config::{Run, RunConfig, build_run};
use crate::error::{Result, TrainError};
use crate::metrics::Metrics;
use crate::session::{Progress, Quiet, fit};

/// A run sharing its steps with the other ranks of a collective.
pub struct Distributed {
    /// The run; its trainer holds the collective.
    pub run: Run,
    rank: usize,
    size: usize,
}

impl std::fmt::Debug for Distributed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Distributed(rank {} of {})", self.rank, self.size)
    }
}

/// Fails unless every rank holds the same configuration (its TOML's SHA-256).
fn check_same_config(c: &dyn Collective, cfg: &RunConfig) -> Result<()> {
    let digest = Sha256::digest(cfg.to_toml().as_bytes()).to_vec();
    let all = c.all_gather(digest.clone())?;
    if let Some(r) = all.iter().position(|d| *d != digest) {
        return Err(TrainError::Config(format!(
            "rank {r} has a different run configuration than rank {} (every rank must be started with the same flags and files)",
            c.rank()
        )));
    }
    Ok(())
}

fn attach(mut run: Run, collective: Box<dyn Collective>) -> Distributed {
    let (rank, size) = (collective.rank(), collective.size());
    run.trainer.sharding.per_shard = true;
    run.trainer.sharding.collective = Some(collective);
    if rank == 0 && run.trainer.sharding.accumulate < size {
        tracing::warn!(
            "train.accumulate = {} < {size} ranks: some ranks compute no micro-shard (set --accumulate to a multiple of the rank count)",
            run.trainer.sharding.accumulate
        );
    }
    Distributed { run, rank, size }
}

impl Distributed {
    /// Builds `cfg`'s run on this rank (forcing `train.distributed`, so the
    /// run's arithmetic is the same in one process and on any rank count).
    pub fn new(cfg: &RunConfig, collective: Box<dyn Collective>) -> Result<Self> {
        let mut cfg = cfg.clone();
        cfg.train.distributed = true;
        check_same_config(collective.as_ref(), &cfg)?;
        Ok(attach(build_run(&cfg)?, collective))
    }

    /// Continues the run of the checkpoint at `path` (read on rank 0, sent to
    /// every rank), under this collective's rank count.
    pub fn resume(path: &Path, collective: Box<dyn Collective>) -> Result<(RunConfig, Self)> {
        let mine = if collective.rank() == 0 {
            std::fs::read(path).map_err(|source| TrainError::Io { path: path.to_path_buf(), source })?
        } else {
            Vec::new()
        };
        let bytes = collective.all_gather(mine)?.swap_remove(0);
        let ck = Checkpoint::from_bytes(&bytes, path)?;
        let text = ck.config_toml().ok_or_else(|| {
            TrainError::Mismatch(format!("{}: the checkpoint has no configuration", path.display()))
        })?;
        let mut cfg = RunConfig::from_toml(text)
            .map_err(|e| TrainError::Mismatch(format!("{}: the checkpoint's {e}", path.display())))?;
        if !cfg.train.distributed && cfg.train.accumulate == 1 {
            return Err(TrainError::Config(format!(
                "{}: this run was trained without train.distributed or train.accumulate > 1; resuming it on ranks would change its arithmetic (resume it in one process)",
                path.display()
            )));
        }
        cfg.train.distributed = true;
        let mut run = build_run(&cfg)?;
        run.trainer.restore(&ck)?;
        Ok((cfg, attach(run, collective)))
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        self.size
    }

    /// [`crate::session::fit`] on every rank: rank 0 writes into `out` and
    /// reports to `progress`; the others write nothing, report nothing and
    /// keep no history ([`crate::Trainer::discard_logs`]).
    pub fn fit(
        &mut self,
        cfg: &RunConfig,
        out: Option<&Path>,
        progress: &mut dyn Progress,
    ) -> Result<Metrics> {
        let mut cfg = cfg.clone();
        cfg.train.distributed = true;
        if self.rank == 0 {
            fit(&mut self.run, &cfg, out, progress)
        } else {
            // Nothing reads this rank's history: keep its memory flat.
            self.run.trainer.discard_logs = true;
            fit(&mut self.run, &cfg, None, &mut Quiet)
        }
    }
}
