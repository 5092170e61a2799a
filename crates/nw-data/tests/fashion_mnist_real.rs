//! The real Fashion-MNIST files, opt-in: `NW_FASHION_MNIST=1 cargo test -p nw-data`.
//!
//! Looks where `fashion_mnist_default` looks (`datasets/fashion-mnist`, then
//! `/usr/share/datasets/fashion-mnist` from Debian's `dataset-fashion-mnist`).

use nw_data::{ImageLayout, fashion_mnist_default};

#[test]
fn real_fashion_mnist_when_opted_in() {
    if std::env::var("NW_FASHION_MNIST").as_deref() != Ok("1") {
        eprintln!("skipping the real Fashion-MNIST check: set NW_FASHION_MNIST=1 to run it");
        return;
    }
    let f =
        fashion_mnist_default(ImageLayout::Nchw).expect("NW_FASHION_MNIST=1 but the files are not readable");
    assert_eq!(f.train.features().shape(), &[60_000, 1, 28, 28]);
    assert_eq!(f.test.features().shape(), &[10_000, 1, 28, 28]);
    // The set is balanced: 6,000 training and 1,000 test images per class (its README).
    assert_eq!(f.train.class_counts().unwrap(), vec![6_000; 10]);
    assert_eq!(f.test.class_counts().unwrap(), vec![1_000; 10]);
    // First labels, read with `zcat train-labels-idx1-ubyte.gz | xxd` (bytes after the 8-byte header).
    assert_eq!(&f.train.labels().unwrap()[..8], &[9, 0, 0, 3, 0, 2, 7, 2]);
    assert_eq!(&f.test.labels().unwrap()[..8], &[9, 2, 1, 1, 6, 1, 4, 6]);
    let x = f.train.features().to_vec();
    assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(x.contains(&1.0) && x.contains(&0.0));
}
