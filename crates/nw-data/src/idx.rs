//! IDX files (the MNIST / Fashion-MNIST format) and the Fashion-MNIST loader.
//!
//! An IDX file is a big-endian header followed by the raw values:
//!
//! ```text
//! bytes 0..2   zero
//! byte  2      element type (0x08 = unsigned byte, the only type read here)
//! byte  3      number of dimensions d
//! 4 bytes x d  each dimension as a big-endian u32
//! then         product(dims) values, row-major
//! ```
//!
//! So images are magic `0x00000803` (u8, 3 dims: count, rows, columns) and
//! labels `0x00000801` (u8, 1 dim: count). A file may be gzip-compressed; it
//! is recognised by its first two bytes `1f 8b`, not by its name. The length
//! must match the header exactly: a short file is [`DataError::Truncated`], a
//! long one [`DataError::TrailingData`], never a partial load.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use nw_tensor::Tensor;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// Magic number of an IDX file of unsigned-byte images `[n, rows, cols]`.
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels `[n]`.
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// The ten Fashion-MNIST class names, in label order (from the data set's README).
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Where [`fashion_mnist_default`] looks, in order: the download target of
/// `cargo xtask datasets fetch fashion-mnist` (relative to the working
/// directory) and the install location of Debian's `dataset-fashion-mnist`.
pub const FASHION_MNIST_DIRS: [&str; 2] = ["datasets/fashion-mnist", "/usr/share/datasets/fashion-mnist"];

const FASHION_HELP: &str = "run `cargo xtask datasets fetch fashion-mnist` (downloads to datasets/fashion-mnist) \
     or `apt-get install dataset-fashion-mnist` (installs to /usr/share/datasets/fashion-mnist)";

/// How image tensors are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageLayout {
    /// `[n, 1, rows, cols]`: one channel, for convolutional models.
    #[default]
    Nchw,
    /// `[n, rows * cols]`: one flat vector per image, for dense models.
    Flat,
}

/// A decoded unsigned-byte IDX array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions from the header.
    pub dims: Vec<usize>,
    /// The values, row-major; exactly `dims.iter().product()` of them.
    pub data: Vec<u8>,
}

/// Reads a whole file, mapping failures to [`DataError::Io`] with the path.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })
}

/// Returns `bytes`, gunzipped if they start with the gzip magic `1f 8b`.
pub(crate) fn maybe_gunzip(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        let mut out = Vec::new();
        MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|source| DataError::Decompress { path: path.to_path_buf(), source })?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// Decodes an unsigned-byte IDX file already in memory (raw or gzip).
///
/// `expected_magic`, when given, must equal the first four bytes (for
/// example [`IDX_IMAGES_MAGIC`]); otherwise any unsigned-byte IDX of any rank
/// is accepted. `path` only names the source in errors.
///
/// Nothing is allocated on the header's word: a raw file is checked against
/// its length before its values are kept, and a gzip stream is decompressed
/// header first, then at most the bytes that header describes (plus one, to
/// see trailing data), so a small stream that claims or expands to gigabytes
/// is refused without holding them.
pub fn parse_idx(bytes: Vec<u8>, expected_magic: Option<u32>, path: &Path) -> Result<IdxArray> {
    if is_gzip(&bytes) {
        return parse_idx_gzip(&bytes, expected_magic, path);
    }
    let got = bytes.len() as u64;
    let (dims, header, expected) = idx_header(&bytes, expected_magic, path, got)?;
    if got > expected {
        return Err(DataError::TrailingData { path: path.to_path_buf(), expected, got });
    }
    let mut data = bytes;
    data.drain(..header);
    Ok(IdxArray { dims, data })
}

fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// The gzip path of [`parse_idx`]: header first, then a bounded read.
fn parse_idx_gzip(bytes: &[u8], expected_magic: Option<u32>, path: &Path) -> Result<IdxArray> {
    let decompress = |source| DataError::Decompress { path: path.to_path_buf(), source };
    let mut dec = MultiGzDecoder::new(bytes);
    // magic (4 bytes), then the ndim dimensions it announces (at most 255 x 4 bytes)
    let mut head = Vec::new();
    (&mut dec).take(4).read_to_end(&mut head).map_err(decompress)?;
    if head.len() == 4 {
        let ndim = u64::from(head[3]);
        (&mut dec).take(4 * ndim).read_to_end(&mut head).map_err(decompress)?;
    }
    if head.len() < 4 {
        return Err(DataError::Truncated { path: path.to_path_buf(), expected: 4, got: head.len() as u64 });
    }
    // the magic and the dims; the values' length is checked as they arrive below
    let (dims, header, expected) = idx_header(&head, expected_magic, path, u64::MAX)?;
    let want = expected - header as u64;
    let mut data = Vec::new();
    (&mut dec).take(want.saturating_add(1)).read_to_end(&mut data).map_err(decompress)?;
    let got = header as u64 + data.len() as u64;
    if got < expected {
        return Err(DataError::Truncated { path: path.to_path_buf(), expected, got });
    }
    if got > expected {
        // count the rest without keeping it (deflate expands at most ~1032:1, so this is bounded)
        let rest = std::io::copy(&mut dec, &mut std::io::sink()).map_err(decompress)?;
        return Err(DataError::TrailingData { path: path.to_path_buf(), expected, got: got + rest });
    }
    Ok(IdxArray { dims, data })
}

/// Parses and checks an IDX header against `got`, the length of the whole
/// (decompressed) file: the magic, the dims, and that the file holds at
/// least `header + product(dims)` bytes. Returns `(dims, header length,
/// expected total length)`.
fn idx_header(
    bytes: &[u8],
    expected_magic: Option<u32>,
    path: &Path,
    got: u64,
) -> Result<(Vec<usize>, usize, u64)> {
    let truncated = |expected: u64| DataError::Truncated { path: path.to_path_buf(), expected, got };
    if bytes.len() < 4 {
        return Err(truncated(4));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    match expected_magic {
        Some(expected) if magic != expected => {
            let what = match expected {
                IDX_IMAGES_MAGIC => "IDX images: u8, 3 dims",
                IDX_LABELS_MAGIC => "IDX labels: u8, 1 dim",
                _ => "IDX",
            };
            return Err(DataError::BadMagic { path: path.to_path_buf(), expected, found: magic, what });
        }
        None if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 => {
            return Err(DataError::BadMagic {
                path: path.to_path_buf(),
                expected: 0x0000_0800 | u32::from(bytes[3]),
                found: magic,
                what: "unsigned-byte IDX",
            });
        }
        _ => {}
    }
    let (dims, header, expected) = idx_header_dims(bytes, path)?;
    if got < expected {
        return Err(truncated(expected));
    }
    Ok((dims, header, expected))
}

/// The dims of a header whose magic was checked, and the total length they
/// describe; truncated when `bytes` is shorter than the header itself.
fn idx_header_dims(bytes: &[u8], path: &Path) -> Result<(Vec<usize>, usize, u64)> {
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header as u64,
            got: bytes.len() as u64,
        });
    }
    let dims: Vec<u32> = (0..ndim)
        .map(|d| {
            let o = 4 + 4 * d;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]])
        })
        .collect();
    // Product in u64 with overflow checks: a corrupt header must not wrap around.
    let count = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(u64::from(d)));
    let expected = count.and_then(|c| c.checked_add(header as u64)).unwrap_or(u64::MAX);
    let dims = dims.iter().map(|&d| d as usize).collect();
    Ok((dims, header, expected))
}

/// Reads an unsigned-byte IDX file (raw or gzip) of any rank.
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    parse_idx(read_file(path)?, None, path)
}

/// Turns a decoded image file into a tensor scaled to `[0, 1]` (each byte / 255).
fn images_to_tensor(a: IdxArray, layout: ImageLayout, path: &Path) -> Result<Tensor> {
    let (n, rows, cols) = (a.dims[0], a.dims[1], a.dims[2]);
    let shape = match layout {
        ImageLayout::Nchw => vec![n, 1, rows, cols],
        // rows * cols may overflow when n = 0 (the data is empty whatever they say)
        ImageLayout::Flat => vec![
            n,
            rows.checked_mul(cols).ok_or_else(|| DataError::Invalid {
                path: path.to_path_buf(),
                message: format!("image size {rows} x {cols} overflows"),
            })?,
        ],
    };
    let data: Vec<f32> = a.data.iter().map(|&b| f32::from(b) / 255.0).collect();
    Ok(Tensor::from_vec(data, &shape)?)
}

/// Reads an IDX image file (magic `0x00000803`) as floats in `[0, 1]`,
/// shaped by `layout`.
pub fn read_idx_images(path: impl AsRef<Path>, layout: ImageLayout) -> Result<Tensor> {
    let path = path.as_ref();
    parse_idx_images(read_file(path)?, layout, path)
}

/// [`read_idx_images`] on bytes already in memory (raw or gzip); `path`
/// only names the source in errors.
pub fn parse_idx_images(bytes: Vec<u8>, layout: ImageLayout, path: &Path) -> Result<Tensor> {
    images_to_tensor(parse_idx(bytes, Some(IDX_IMAGES_MAGIC), path)?, layout, path)
}

/// Reads an IDX label file (magic `0x00000801`).
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<usize>> {
    let path = path.as_ref();
    parse_idx_labels(read_file(path)?, path)
}

/// [`read_idx_labels`] on bytes already in memory (raw or gzip).
pub fn parse_idx_labels(bytes: Vec<u8>, path: &Path) -> Result<Vec<usize>> {
    let a = parse_idx(bytes, Some(IDX_LABELS_MAGIC), path)?;
    Ok(a.data.iter().map(|&b| b as usize).collect())
}

/// Reads an image file and a label file into one classification set.
///
/// The counts must agree, and every label must be below `n_classes`.
pub fn read_idx_dataset(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
    layout: ImageLayout,
    n_classes: usize,
) -> Result<Dataset> {
    let x = read_idx_images(images.as_ref(), layout)?;
    let y = read_idx_labels(labels.as_ref())?;
    if x.shape()[0] != y.len() {
        return Err(DataError::DimensionMismatch {
            what: format!(
                "labels in {} for the images in {}",
                labels.as_ref().display(),
                images.as_ref().display()
            ),
            expected: x.shape()[0].to_string(),
            got: y.len().to_string(),
        });
    }
    if let Some((i, &l)) = y.iter().enumerate().find(|(_, l)| **l >= n_classes) {
        return Err(DataError::Invalid {
            path: labels.as_ref().to_path_buf(),
            message: format!("label {l} of example {i} is not below {n_classes}"),
        });
    }
    Dataset::classification(x, y, n_classes)
}

/// The Fashion-MNIST training and test sets.
#[derive(Debug, Clone)]
pub struct FashionMnist {
    /// 60,000 training images.
    pub train: Dataset,
    /// 10,000 test images.
    pub test: Dataset,
}

/// Finds `stem.gz` or `stem` in `dir`.
fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()].into_iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

fn fashion_split(dir: &Path, prefix: &str, layout: ImageLayout) -> Result<Dataset> {
    let missing = |stem: &str| DataError::MissingDataset {
        name: "Fashion-MNIST",
        message: format!("{} has no {stem}.gz or {stem}; {FASHION_HELP}", dir.display()),
    };
    let img_stem = format!("{prefix}-images-idx3-ubyte");
    let lbl_stem = format!("{prefix}-labels-idx1-ubyte");
    let images = find_file(dir, &img_stem).ok_or_else(|| missing(&img_stem))?;
    let labels = find_file(dir, &lbl_stem).ok_or_else(|| missing(&lbl_stem))?;
    let d = read_idx_dataset(&images, &labels, layout, 10)?;
    let hw = match layout {
        ImageLayout::Nchw => vec![1, 28, 28],
        ImageLayout::Flat => vec![784],
    };
    if d.feature_shape() != hw.as_slice() {
        return Err(DataError::DimensionMismatch {
            what: format!("image shape in {}", images.display()),
            expected: format!("{hw:?}"),
            got: format!("{:?}", d.feature_shape()),
        });
    }
    d.with_class_names(FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect())
}

/// Loads Fashion-MNIST from `dir`, which holds `train-images-idx3-ubyte`,
/// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
/// `t10k-labels-idx1-ubyte`, each gzip-compressed (`.gz`, as Debian's
/// `dataset-fashion-mnist` and the canonical downloads ship them) or raw.
///
/// Images are 28x28, scaled to `[0, 1]`; labels are 0..9 with
/// [`FASHION_MNIST_CLASSES`] as names. A missing file is
/// [`DataError::MissingDataset`], whose message says how to get it.
pub fn fashion_mnist(dir: impl AsRef<Path>, layout: ImageLayout) -> Result<FashionMnist> {
    let dir = dir.as_ref();
    Ok(FashionMnist {
        train: fashion_split(dir, "train", layout)?,
        test: fashion_split(dir, "t10k", layout)?,
    })
}

/// The first of [`FASHION_MNIST_DIRS`] that holds the training images, if any.
pub fn find_fashion_mnist() -> Option<PathBuf> {
    FASHION_MNIST_DIRS.iter().map(PathBuf::from).find(|d| find_file(d, "train-images-idx3-ubyte").is_some())
}

/// Loads Fashion-MNIST from the first of [`FASHION_MNIST_DIRS`] that has it.
pub fn fashion_mnist_default(layout: ImageLayout) -> Result<FashionMnist> {
    match find_fashion_mnist() {
        Some(dir) => fashion_mnist(dir, layout),
        None => Err(DataError::MissingDataset {
            name: "Fashion-MNIST",
            message: format!("looked in {}; {FASHION_HELP}", FASHION_MNIST_DIRS.join(" and ")),
        }),
    }
}
