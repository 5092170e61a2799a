//! IDX reader and Fashion-MNIST directory loader, on small files written here.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use nw_data::{
    DataError, ImageLayout, fashion_mnist, read_idx, read_idx_dataset, read_idx_images, read_idx_labels,
};

/// A fresh directory for one test.
fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nw-data-idx-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An IDX file: magic, big-endian dims, data.
fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Three 2x2 images with pixel bytes 0..12 scaled by 255 so the expected floats are exact-ish.
fn images3() -> Vec<u8> {
    idx_bytes(0x803, &[3, 2, 2], &[0, 255, 51, 102, 1, 2, 3, 4, 5, 6, 7, 8])
}

#[test]
fn images_raw_and_gzip_give_the_same_tensor() {
    let d = tmp("images");
    let raw = write(&d, "img", &images3());
    let gz = write(&d, "img.gz", &gzip(&images3()));
    let a = read_idx_images(&raw, ImageLayout::Nchw).unwrap();
    assert_eq!(a.shape(), &[3, 1, 2, 2]);
    // Each byte / 255: 0, 1, 51/255 = 0.2, 102/255 = 0.4.
    assert_eq!(&a.to_vec()[..4], &[0.0, 1.0, 51.0 / 255.0, 102.0 / 255.0]);
    assert_eq!(read_idx_images(&gz, ImageLayout::Nchw).unwrap(), a);
    let flat = read_idx_images(&gz, ImageLayout::Flat).unwrap();
    assert_eq!(flat.shape(), &[3, 4]);
    assert_eq!(flat.to_vec(), a.to_vec());
    let generic = read_idx(&gz).unwrap();
    assert_eq!(generic.dims, vec![3, 2, 2]);
    assert_eq!(generic.data.len(), 12);
}

#[test]
fn labels_and_dataset() {
    let d = tmp("labels");
    let img = write(&d, "img", &images3());
    let lbl = write(&d, "lbl.gz", &gzip(&idx_bytes(0x801, &[3], &[2, 0, 1])));
    assert_eq!(read_idx_labels(&lbl).unwrap(), vec![2, 0, 1]);
    let ds = read_idx_dataset(&img, &lbl, ImageLayout::Flat, 3).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.labels().unwrap(), &[2, 0, 1]);
    // A label at or above n_classes is rejected.
    assert!(matches!(read_idx_dataset(&img, &lbl, ImageLayout::Flat, 2), Err(DataError::Invalid { .. })));
    // Counts must agree.
    let lbl2 = write(&d, "lbl2", &idx_bytes(0x801, &[2], &[0, 1]));
    let e = read_idx_dataset(&img, &lbl2, ImageLayout::Flat, 3).unwrap_err();
    assert!(matches!(e, DataError::DimensionMismatch { .. }), "{e}");
}

#[test]
fn bad_magic_is_an_error() {
    let d = tmp("magic");
    let lbl = write(&d, "lbl", &idx_bytes(0x801, &[3], &[0, 1, 2]));
    let e = read_idx_images(&lbl, ImageLayout::Nchw).unwrap_err();
    match &e {
        DataError::BadMagic { expected, found, .. } => assert_eq!((*expected, *found), (0x803, 0x801)),
        other => panic!("expected BadMagic, got {other:?}"),
    }
    assert!(e.to_string().contains("bad magic number 0x00000801, expected 0x00000803"), "{e}");
    let img = write(&d, "img", &images3());
    assert!(matches!(read_idx_labels(&img), Err(DataError::BadMagic { .. })));
    // Not an unsigned-byte IDX at all (type 0x0d = float).
    let f = write(&d, "float", &idx_bytes(0x0d01, &[1], &[0, 0, 0, 0]));
    assert!(matches!(read_idx(&f), Err(DataError::BadMagic { .. })));
}

#[test]
fn truncated_and_overlong_files_are_errors() {
    let d = tmp("trunc");
    let full = images3();
    // Header 4 + 3*4 = 16 bytes, data 3*2*2 = 12: 28 expected; cut one byte.
    let short = write(&d, "short", &full[..27]);
    match read_idx_images(&short, ImageLayout::Nchw).unwrap_err() {
        DataError::Truncated { expected, got, path } => {
            assert_eq!((expected, got), (28, 27));
            assert_eq!(path, short);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    // The same, gzip-compressed: the length is checked after decompression.
    let short_gz = write(&d, "short.gz", &gzip(&full[..27]));
    assert!(matches!(read_idx_images(&short_gz, ImageLayout::Nchw), Err(DataError::Truncated { .. })));
    // Cut inside the header (dims need 16 bytes).
    let hdr = write(&d, "hdr", &full[..6]);
    assert!(matches!(
        read_idx_images(&hdr, ImageLayout::Nchw),
        Err(DataError::Truncated { expected: 16, got: 6, .. })
    ));
    let tiny = write(&d, "tiny", &[0, 0]);
    assert!(matches!(read_idx(&tiny), Err(DataError::Truncated { expected: 4, got: 2, .. })));
    // One byte too many.
    let mut long = full.clone();
    long.push(0);
    let long = write(&d, "long", &long);
    assert!(matches!(
        read_idx_images(&long, ImageLayout::Nchw),
        Err(DataError::TrailingData { expected: 28, got: 29, .. })
    ));
    // Absurd dims (product overflows u64) are a truncation, not an allocation or a wrap-around.
    let huge = write(&d, "huge", &idx_bytes(0x803, &[u32::MAX, u32::MAX, u32::MAX], &[1, 2, 3]));
    assert!(matches!(read_idx_images(&huge, ImageLayout::Nchw), Err(DataError::Truncated { .. })));
}

#[test]
fn corrupt_gzip_is_an_error() {
    let d = tmp("gz");
    let gz = gzip(&images3());
    // Stream cut in the middle.
    let cut = write(&d, "cut.gz", &gz[..gz.len() / 2]);
    assert!(matches!(read_idx_images(&cut, ImageLayout::Nchw), Err(DataError::Decompress { .. })));
    // Trailer damaged: the CRC-32 (last 8 bytes hold CRC and length) no longer matches.
    let mut bad = gz.clone();
    let k = bad.len() - 8;
    bad[k] ^= 0xff;
    let bad = write(&d, "crc.gz", &bad);
    assert!(matches!(read_idx_images(&bad, ImageLayout::Nchw), Err(DataError::Decompress { .. })));
}

#[test]
fn missing_file_names_the_path() {
    let p = tmp("missing").join("nope-idx3-ubyte");
    let e = read_idx_images(&p, ImageLayout::Nchw).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }));
    assert!(e.to_string().contains("nope-idx3-ubyte"), "{e}");
}

/// A small Fashion-MNIST-shaped directory: 28x28 images, train gzip, test raw.
fn fake_fashion(dir: &Path, side: u32) {
    let px = (side * 28) as usize;
    let train: Vec<u8> = (0..3 * px).map(|i| (i % 256) as u8).collect();
    let test: Vec<u8> = (0..2 * px).map(|i| (i % 7) as u8).collect();
    write(dir, "train-images-idx3-ubyte.gz", &gzip(&idx_bytes(0x803, &[3, side, 28], &train)));
    write(dir, "train-labels-idx1-ubyte.gz", &gzip(&idx_bytes(0x801, &[3], &[9, 0, 3])));
    write(dir, "t10k-images-idx3-ubyte", &idx_bytes(0x803, &[2, side, 28], &test));
    write(dir, "t10k-labels-idx1-ubyte", &idx_bytes(0x801, &[2], &[1, 8]));
}

#[test]
fn fashion_mnist_directory_gz_and_raw() {
    let d = tmp("fashion");
    fake_fashion(&d, 28);
    let f = fashion_mnist(&d, ImageLayout::Nchw).unwrap();
    assert_eq!(f.train.features().shape(), &[3, 1, 28, 28]);
    assert_eq!(f.test.features().shape(), &[2, 1, 28, 28]);
    assert_eq!(f.train.labels().unwrap(), &[9, 0, 3]);
    assert_eq!(f.test.labels().unwrap(), &[1, 8]);
    assert_eq!(f.train.n_classes(), Some(10));
    assert_eq!(f.train.class_names().unwrap()[9], "Ankle boot");
    let flat = fashion_mnist(&d, ImageLayout::Flat).unwrap();
    assert_eq!(flat.test.features().shape(), &[2, 784]);
}

#[test]
fn fashion_mnist_wrong_image_size_is_an_error() {
    let d = tmp("fashion27");
    fake_fashion(&d, 27);
    let e = fashion_mnist(&d, ImageLayout::Nchw).unwrap_err();
    assert!(matches!(e, DataError::DimensionMismatch { .. }), "{e}");
}

#[test]
fn fashion_mnist_missing_says_how_to_get_it() {
    let d = tmp("fashion-empty");
    let e = fashion_mnist(&d, ImageLayout::Nchw).unwrap_err();
    assert!(matches!(e, DataError::MissingDataset { .. }));
    let msg = e.to_string();
    assert!(msg.contains("cargo xtask datasets fetch fashion-mnist"), "{msg}");
    assert!(msg.contains("apt-get install dataset-fashion-mnist"), "{msg}");
    assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
}
