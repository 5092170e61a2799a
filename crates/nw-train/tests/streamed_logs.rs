//! A run's logs go to their files as it goes (`nw_train::runlog`): the
//! trainer and its checkpoints do not grow with the run, the spectral
//! summaries are written, and a run resumed from an older checkpoint in the
//! same directory cuts the logs back and rewrites the same bytes.

use std::path::PathBuf;

use nw_train::checkpoint::{Checkpoint, Section};
use nw_train::session::{self, Quiet, files};
use nw_train::{RunConfig, build_run};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nw-streamed-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn cfg() -> RunConfig {
    let mut c = RunConfig::default();
    c.train.epochs = 5;
    c.model.hidden = vec![12];
    c.train.batch = nw_train::config::BatchMode::Mini(128);
    c.train.checkpoint_every = 1;
    c.train.keep_checkpoints = 0;
    c.train.monitor_every = 3;
    c.train.monitor_spectral = true;
    c
}

#[test]
fn logs_leave_memory_checkpoints_stay_flat_and_spectra_are_written() {
    let c = cfg();
    let a = tmp("a");
    let mut run = build_run(&c).unwrap();
    session::fit(&mut run, &c, Some(&a), &mut Quiet).unwrap();
    assert!(run.trainer.history.is_empty());
    assert!(run.trainer.monitor.records().is_empty());
    assert!(run.trainer.monitor.spectra().is_empty());
    let history = nw_train::report::read_metrics_csv(&a.join(files::METRICS)).unwrap();
    assert_eq!(history.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    let records = nw_train::runlog::read_monitor(&a.join(files::MONITOR)).unwrap();
    assert!(records.len() >= 5 * 4, "{} records", records.len());
    // two weight matrices, one summary each per epoch end
    let spectra = nw_train::runlog::read_spectral(&a.join(files::SPECTRAL)).unwrap();
    assert_eq!(spectra.len(), 5 * 2);
    // the checkpoints hold offsets, not the history: the same size each
    // epoch, up to the widths of the variable-length integers in them
    let size = |e: u64| std::fs::metadata(a.join(format!("checkpoint-epoch{e}.nwck"))).unwrap().len();
    assert!(size(5) <= size(1) + 16, "checkpoints grow: {} -> {}", size(1), size(5));
    let ck = Checkpoint::load(&a.join("checkpoint-epoch3.nwck")).unwrap();
    let Some(Section::Logs(at)) = ck.section("logs") else { panic!("no logs section") };
    assert_eq!(
        (at.epochs, at.metrics),
        (3, {
            let text = std::fs::read_to_string(a.join(files::METRICS)).unwrap();
            text.lines().take(4).map(|l| l.len() as u64 + 1).sum::<u64>()
        })
    );
    // Resumed in place from epoch 3's checkpoint: the logs are cut back to
    // it and the run writes the same bytes again.
    let before: Vec<Vec<u8>> = [files::METRICS, files::MONITOR, files::SPECTRAL, files::MODEL]
        .iter()
        .map(|f| std::fs::read(a.join(f)).unwrap())
        .collect();
    let (cfg2, mut resumed) = session::resume_run(&a.join("checkpoint-epoch3.nwck")).unwrap();
    session::fit(&mut resumed, &cfg2, Some(&a), &mut Quiet).unwrap();
    for (f, want) in [files::METRICS, files::MONITOR, files::SPECTRAL, files::MODEL].iter().zip(before) {
        assert!(std::fs::read(a.join(f)).unwrap() == want, "{f} differs after resuming in place");
    }
    std::fs::remove_dir_all(&a).unwrap();
}
