//! Batch loader: sizes, coverage, determinism per epoch, background == foreground.

use nw_data::{Batch, BatchLoader, BatchSize, Dataset, LoaderConfig, Targets, epoch_seed};
use nw_tensor::{Rng, Tensor};

/// n rows whose single feature is the row number, label row % 3.
fn counting(n: usize) -> Dataset {
    let x = Tensor::from_vec((0..n).map(|i| i as f32).collect(), &[n, 1]).unwrap();
    Dataset::classification(x, (0..n).map(|i| i % 3).collect(), 3).unwrap()
}

fn sizes(l: &BatchLoader, epoch: u64) -> Vec<usize> {
    l.epoch(epoch).map(|b| b.len()).collect()
}

#[test]
fn batch_sizes_and_drop_last() {
    let d = counting(10);
    let mk = |bs, drop| BatchLoader::new(d.clone(), LoaderConfig::new(bs, 1).drop_last(drop)).unwrap();
    assert_eq!(sizes(&mk(BatchSize::Mini(4), false), 0), vec![4, 4, 2]);
    assert_eq!(sizes(&mk(BatchSize::Mini(4), true), 0), vec![4, 4]);
    assert_eq!(sizes(&mk(BatchSize::Full, false), 0), vec![10]);
    assert_eq!(sizes(&mk(BatchSize::Online, false), 0), vec![1; 10]);
    assert_eq!(sizes(&mk(BatchSize::Mini(100), false), 0), vec![10]);
    assert_eq!(mk(BatchSize::Mini(4), true).batches_per_epoch(), 2);
    assert_eq!(mk(BatchSize::Mini(3), false).epoch(0).len(), 4);
    assert!(BatchLoader::new(d.clone(), LoaderConfig::new(BatchSize::Mini(0), 1)).is_err());
    let empty = BatchLoader::new(counting(0), LoaderConfig::new(BatchSize::Full, 1)).unwrap();
    assert_eq!(empty.epoch(0).count(), 0);
}

#[test]
fn each_epoch_visits_every_row_once_and_batches_match_rows() {
    let d = counting(23);
    let l = BatchLoader::new(d.clone(), LoaderConfig::new(BatchSize::Mini(5), 9)).unwrap();
    for e in 0..3 {
        let mut seen = Vec::new();
        for b in l.epoch(e) {
            // Feature = row number, label = row % 3.
            assert_eq!(b.x.to_vec(), b.indices.iter().map(|&i| i as f32).collect::<Vec<_>>());
            assert_eq!(b.y.labels().unwrap(), b.indices.iter().map(|i| i % 3).collect::<Vec<_>>());
            seen.extend(b.indices);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
    }
}

#[test]
fn order_follows_the_documented_formula() {
    let l = BatchLoader::new(counting(50), LoaderConfig::new(BatchSize::Mini(8), 1234)).unwrap();
    for e in [0, 1, 17] {
        assert_eq!(l.epoch_order(e), Rng::new(epoch_seed(1234, e)).permutation(50));
    }
    let unshuffled =
        BatchLoader::new(counting(5), LoaderConfig::new(BatchSize::Mini(2), 3).shuffle(false)).unwrap();
    let order: Vec<usize> = unshuffled.epoch(4).flat_map(|b| b.indices).collect();
    assert_eq!(order, vec![0, 1, 2, 3, 4]);
}

#[test]
fn determinism_per_epoch_and_resume() {
    let cfg = LoaderConfig::new(BatchSize::Mini(7), 42);
    let a = BatchLoader::new(counting(40), cfg.clone()).unwrap();
    let b = BatchLoader::new(counting(40), cfg).unwrap();
    // Run a through epochs 0..5, then compare epoch 5 with a fresh loader
    // that starts there (resume from a checkpoint at epoch 5).
    for e in 0..5 {
        a.epoch(e).for_each(drop);
    }
    let ea: Vec<Batch> = a.epoch(5).collect();
    let eb: Vec<Batch> = b.epoch(5).collect();
    assert_eq!(ea, eb);
    // A half-consumed epoch does not disturb the next.
    a.epoch(6).take(2).for_each(drop);
    assert_eq!(a.epoch(7).collect::<Vec<_>>(), b.epoch(7).collect::<Vec<_>>());
    // Epochs differ from each other, and seeds from each other.
    assert_ne!(a.epoch_order(0), a.epoch_order(1));
    let c = BatchLoader::new(counting(40), LoaderConfig::new(BatchSize::Mini(7), 43)).unwrap();
    assert_ne!(a.epoch_order(0), c.epoch_order(0));
}

#[test]
fn background_equals_foreground() {
    let d = nw_data::digits();
    for one_hot in [false, true] {
        let cfg = LoaderConfig::new(BatchSize::Mini(50), 5).one_hot(one_hot);
        let fg = BatchLoader::new(d.clone(), cfg.clone().prefetch(0)).unwrap();
        let bg = BatchLoader::new(d.clone(), cfg.prefetch(3)).unwrap();
        for e in 0..3 {
            let a: Vec<Batch> = fg.epoch(e).collect();
            let b: Vec<Batch> = bg.epoch(e).collect();
            assert_eq!(a.len(), 36); // ceil(1797 / 50)
            assert_eq!(a, b, "epoch {e}, one_hot {one_hot}");
        }
    }
    // Dropping a background iterator early returns (the helper thread stops).
    let bg = BatchLoader::new(d, LoaderConfig::new(BatchSize::Online, 0).prefetch(1)).unwrap();
    let first = bg.epoch(0).next().unwrap();
    assert_eq!(first.len(), 1);
}

#[test]
fn one_hot_and_regression_targets() {
    let l = BatchLoader::new(counting(6), LoaderConfig::new(BatchSize::Full, 0).shuffle(false).one_hot(true))
        .unwrap();
    let b = l.epoch(0).next().unwrap();
    let Targets::Values(y) = &b.y else { panic!("one-hot targets are values") };
    assert_eq!(y.shape(), &[6, 3]);
    // Labels 0,1,2,0,1,2 -> rows e0,e1,e2,e0,e1,e2.
    assert_eq!(&y.to_vec()[..6], &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let reg = nw_data::sine_regression(9, 0.1, &mut Rng::new(0)).unwrap();
    let l = BatchLoader::new(reg.clone(), LoaderConfig::new(BatchSize::Mini(4), 0).one_hot(true)).unwrap();
    for b in l.epoch(0) {
        let y = b.y.as_values().unwrap();
        assert_eq!(y.shape(), &[b.len(), 1]);
        assert_eq!(*y, reg.targets().as_values().unwrap().index_select(0, &b.indices).unwrap());
    }
}
