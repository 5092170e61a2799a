//! The small UCI data sets compiled into the library: they work from any
//! directory with no download.
//!
//! The files are `datasets/uci/*` at the repository root (see
//! `datasets/uci/SOURCE.md` for their origin and the CC BY 4.0 licence).
//! Each set is parsed on first use and cached; later calls clone the cache
//! (the feature tensor's storage is shared, so a clone is cheap).

use std::path::Path;
use std::sync::OnceLock;

use crate::csv::{CsvOptions, parse_csv, parse_uci_csv};
use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::idx::maybe_gunzip;

static DIGITS_GZ: &[u8] = include_bytes!("../../../datasets/uci/digits.csv.gz");
static IRIS_CSV: &str = include_str!("../../../datasets/uci/iris.csv");
static WINE_CSV: &str = include_str!("../../../datasets/uci/wine_data.csv");
static BREAST_CANCER_CSV: &str = include_str!("../../../datasets/uci/breast_cancer.csv");

/// The names [`embedded`] accepts.
pub const EMBEDDED_DATASETS: [&str; 4] = ["digits", "iris", "wine", "breast_cancer"];

/// The image shape of one digit, for [`Dataset::reshape_features`]: one channel of 8x8.
pub const DIGITS_IMAGE_SHAPE: [usize; 3] = [1, 8, 8];

fn parse_digits() -> Result<Dataset> {
    let path = Path::new("embedded:digits.csv.gz");
    let bytes = maybe_gunzip(DIGITS_GZ.to_vec(), path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| DataError::Invalid { path: path.to_path_buf(), message: "not UTF-8".into() })?;
    let raw = parse_csv(&text, &CsvOptions::default(), path)?;
    // Pixel counts are 0..16; dividing by 16 (a power of two) is exact.
    let x: Vec<f32> = raw.features().to_vec().iter().map(|v| v / 16.0).collect();
    let x = nw_tensor::Tensor::from_vec(x, raw.features().shape())?;
    raw.with_features(x)?.with_class_names((0..10).map(|d| d.to_string()).collect())
}

fn cached(cell: &'static OnceLock<Dataset>, name: &str, load: impl FnOnce() -> Result<Dataset>) -> Dataset {
    cell.get_or_init(|| {
        // The bytes are fixed at compile time and a unit test parses each set,
        // so a failure here is a build defect, not bad user input.
        load().unwrap_or_else(|e| panic!("embedded data set {name} is corrupt: {e}"))
    })
    .clone()
}

/// The UCI optical digits (test part, as scikit-learn ships it): 1,797 images
/// of 8x8 pixels, features `[1797, 64]` scaled from 0..16 to `[0, 1]` by /16,
/// labels 0..9 (class names `"0"`..`"9"`). Use
/// `digits().reshape_features(&DIGITS_IMAGE_SHAPE)` for `[1797, 1, 8, 8]`.
pub fn digits() -> Dataset {
    static CELL: OnceLock<Dataset> = OnceLock::new();
    cached(&CELL, "digits", parse_digits)
}

/// Fisher's iris: 150 examples, 4 features (cm, unscaled), 3 classes
/// (setosa, versicolor, virginica).
pub fn iris() -> Dataset {
    static CELL: OnceLock<Dataset> = OnceLock::new();
    cached(&CELL, "iris", || parse_uci_csv(IRIS_CSV, Path::new("embedded:iris.csv")))
}

/// The wine recognition set: 178 examples, 13 chemical features (unscaled), 3 cultivars.
pub fn wine() -> Dataset {
    static CELL: OnceLock<Dataset> = OnceLock::new();
    cached(&CELL, "wine", || parse_uci_csv(WINE_CSV, Path::new("embedded:wine_data.csv")))
}

/// Breast Cancer Wisconsin (Diagnostic): 569 examples, 30 features
/// (unscaled), classes 0 malignant and 1 benign.
pub fn breast_cancer() -> Dataset {
    static CELL: OnceLock<Dataset> = OnceLock::new();
    cached(&CELL, "breast_cancer", || {
        parse_uci_csv(BREAST_CANCER_CSV, Path::new("embedded:breast_cancer.csv"))
    })
}

/// An embedded set by name: one of [`EMBEDDED_DATASETS`] (`breast-cancer`
/// with a hyphen is accepted too).
pub fn embedded(name: &str) -> Result<Dataset> {
    match name {
        "digits" => Ok(digits()),
        "iris" => Ok(iris()),
        "wine" => Ok(wine()),
        "breast_cancer" | "breast-cancer" => Ok(breast_cancer()),
        _ => Err(DataError::UnknownDataset { name: name.to_string(), known: EMBEDDED_DATASETS.to_vec() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Row and column counts from datasets/uci/SOURCE.md.
    #[test]
    fn digits_shape_range_and_classes() {
        let d = digits();
        assert_eq!(d.features().shape(), &[1797, 64]);
        assert_eq!(d.n_classes(), Some(10));
        let x = d.features().to_vec();
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(x.contains(&1.0), "16/16 occurs");
        // First row of digits.csv.gz: `0,0,5,13,9,1,0,0,...,0` with label 0.
        assert_eq!(&x[..4], &[0.0, 0.0, 5.0 / 16.0, 13.0 / 16.0]);
        assert_eq!(d.labels().unwrap()[..2], [0, 1]);
        // Class sizes of the UCI test part (scikit-learn's load_digits docs): 178,182,177,183,181,182,181,179,174,180.
        assert_eq!(d.class_counts().unwrap(), vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
        let img = d.reshape_features(&DIGITS_IMAGE_SHAPE).unwrap();
        assert_eq!(img.features().shape(), &[1797, 1, 8, 8]);
    }

    #[test]
    fn tabular_sets() {
        let i = iris();
        assert_eq!(i.features().shape(), &[150, 4]);
        assert_eq!(i.class_counts().unwrap(), vec![50, 50, 50]);
        assert_eq!(i.class_names().unwrap(), &["setosa", "versicolor", "virginica"]);
        // First row of iris.csv: 5.1,3.5,1.4,0.2,0
        assert_eq!(&i.features().to_vec()[..4], &[5.1, 3.5, 1.4, 0.2]);
        let w = wine();
        assert_eq!(w.features().shape(), &[178, 13]);
        assert_eq!(w.class_counts().unwrap(), vec![59, 71, 48]);
        let b = breast_cancer();
        assert_eq!(b.features().shape(), &[569, 30]);
        // 212 malignant, 357 benign (UCI description of the set).
        assert_eq!(b.class_counts().unwrap(), vec![212, 357]);
        assert_eq!(b.class_names().unwrap(), &["malignant", "benign"]);
    }

    #[test]
    fn by_name() {
        assert_eq!(embedded("breast-cancer").unwrap().len(), 569);
        assert_eq!(embedded("iris").unwrap(), iris());
        let e = embedded("mnist").unwrap_err();
        assert!(matches!(e, DataError::UnknownDataset { .. }));
        assert_eq!(e.to_string(), "unknown data set `mnist`; known: digits, iris, wine, breast_cancer");
    }
}
