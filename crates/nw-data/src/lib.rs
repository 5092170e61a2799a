//! # nw-data
//!
//! Data for nw: the readers (IDX for Fashion-MNIST, CSV, the UCI tables), the
//! small sets compiled into the library (UCI digits, iris, wine, breast
//! cancer), synthetic sets for teaching (XOR, spirals, moons, regression),
//! seeded splits, feature scaling, and a seeded batch loader that prepares
//! batches in the background.
//!
//! Main types: [`Dataset`] (features `[n, ...]` plus [`Targets`]),
//! [`BatchLoader`] with [`LoaderConfig`] / [`BatchSize`] yielding [`Batch`]es,
//! [`Splits`], [`Standardizer`], [`MinMaxScaler`], [`CsvOptions`],
//! [`FashionMnist`], and [`DataError`].
//!
//! ```
//! use nw_data::{BatchLoader, BatchSize, LoaderConfig, Standardizer};
//! use nw_tensor::Rng;
//!
//! // 1,797 8x8 digits, embedded: no download, works from any directory.
//! let digits = nw_data::digits();
//! assert_eq!(digits.features().shape(), &[1797, 64]);
//!
//! // 70% train, 15% validation, 15% test, class proportions kept.
//! let mut rng = Rng::new(42);
//! let s = digits.split_stratified(0.15, 0.15, &mut rng).unwrap();
//!
//! // Standardise with statistics from the training part only.
//! let scaler = Standardizer::fit_dataset(&s.train).unwrap();
//! let train = scaler.apply(&s.train).unwrap();
//! let _val = scaler.apply(&s.validation).unwrap();
//!
//! // Mini-batches of 64, reshuffled each epoch from seed 7.
//! let loader = BatchLoader::new(train, LoaderConfig::new(BatchSize::Mini(64), 7)).unwrap();
//! for epoch in 0..2 {
//!     for batch in loader.epoch(epoch) {
//!         assert_eq!(batch.x.shape()[1], 64);
//!         assert_eq!(batch.x.shape()[0], batch.y.len());
//!     }
//! }
//! // Convolutional models take the digits as images:
//! let images = nw_data::digits().reshape_features(&nw_data::DIGITS_IMAGE_SHAPE).unwrap();
//! assert_eq!(images.features().shape(), &[1797, 1, 8, 8]);
//! ```
//!
//! Fashion-MNIST is read from disk with [`fashion_mnist`] (a directory) or
//! [`fashion_mnist_default`] (`datasets/fashion-mnist`, then Debian's
//! `/usr/share/datasets/fashion-mnist`). Its test on the real files is opt-in:
//! run `NW_FASHION_MNIST=1 cargo test -p nw-data` (the IDX reader itself is
//! tested on small files the tests write).
//!
//! ## Invariants
//! - Every random draw (synthetic sets, splits, shuffles) goes through a
//!   seeded [`nw_tensor::Rng`] passed in explicitly or, for the loader, derived
//!   from its seed and the epoch number only: the same seed gives the same
//!   data, splits and batches, bit for bit.
//! - Background preparation never changes which batches come out or in what
//!   order.
//! - Bad input (a corrupt, truncated or malformed file, a bad argument) is a
//!   [`DataError`], never a panic and never a silent partial load.
#![deny(missing_docs)]

mod csv;
mod dataset;
mod embedded;
mod error;
mod idx;
mod loader;
mod split;
mod synthetic;
mod transform;

pub use csv::{
    CsvOptions, Task, parse_csv, parse_csv_bytes, parse_uci_csv, parse_uci_csv_bytes, read_csv, read_uci_csv,
};
pub use dataset::{Dataset, Targets, one_hot};
pub use embedded::{DIGITS_IMAGE_SHAPE, EMBEDDED_DATASETS, breast_cancer, digits, embedded, iris, wine};
pub use error::{DataError, Result};
pub use idx::{
    FASHION_MNIST_CLASSES, FASHION_MNIST_DIRS, FashionMnist, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, IdxArray,
    ImageLayout, fashion_mnist, fashion_mnist_default, find_fashion_mnist, parse_idx, parse_idx_images,
    parse_idx_labels, read_idx, read_idx_dataset, read_idx_images, read_idx_labels,
};
pub use loader::{Batch, BatchLoader, BatchSize, Batches, LoaderConfig, epoch_seed};
pub use split::{SplitIndices, Splits, split_indices, stratified_split_indices};
pub use synthetic::{linear_regression, moons, sine_regression, two_spirals, xor, xor_table};
pub use transform::{MinMaxScaler, Standardizer};
