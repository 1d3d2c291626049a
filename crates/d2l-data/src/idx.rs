//! Fashion-MNIST and MNIST from the original IDX files (D2L 3.5, "The Image Classification
//! Dataset"): the IDX header is parsed and checked (magic number, element type, dimensions
//! against the bytes that follow), files may be gzip-compressed or not (detected by the gzip
//! magic `1f 8b`, not by the file name), and every malformed file is a
//! [`DataError::Format`] that names the path and says what was wrong.
//!
//! Images come back as an [`ImageSet`] (raw `u8` pixels plus `u8` labels), which converts to
//! tensors the way the book's `ToTensor` does: `[n, 1, h, w]` `f32` in `[0, 1]`, labels `i64`.

use crate::error::{io, DataError, Result};
use d2l_tensor::Tensor;
use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The IDX magic number of an unsigned-byte, 3-dimensional file (images).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// The IDX magic number of an unsigned-byte, 1-dimensional file (labels).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// Fashion-MNIST's text labels, by class index (D2L 3.5 `get_fashion_mnist_labels`).
pub const FASHION_MNIST_LABELS: [&str; 10] = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
];

/// Maps class indices to Fashion-MNIST text labels; an index outside 0..10 maps to `"?"`.
pub fn get_fashion_mnist_labels(labels: &[i64]) -> Vec<&'static str> {
    labels
        .iter()
        .map(|&l| {
            usize::try_from(l)
                .ok()
                .and_then(|i| FASHION_MNIST_LABELS.get(i).copied())
                .unwrap_or("?")
        })
        .collect()
}

/// A set of grey-scale images with class labels, stored as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// The pixels, `n * height * width` bytes, image after image, row-major.
    pub images: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u8>,
    /// The number of images.
    pub n: usize,
    /// The height of every image, in pixels.
    pub height: usize,
    /// The width of every image, in pixels.
    pub width: usize,
}

impl ImageSet {
    /// Builds a set after checking that the buffers agree with `n`, `height` and `width`.
    pub fn new(images: Vec<u8>, labels: Vec<u8>, height: usize, width: usize) -> Result<ImageSet> {
        let n = labels.len();
        let expected = n
            .checked_mul(height)
            .and_then(|v| v.checked_mul(width))
            .ok_or_else(|| {
                DataError::Invalid(format!("image set: {n}×{height}×{width} overflows"))
            })?;
        if images.len() != expected {
            return Err(DataError::Invalid(format!(
                "image set: {n} labels of {height}×{width} images need {expected} pixels, got {}",
                images.len()
            )));
        }
        Ok(ImageSet {
            images,
            labels,
            n,
            height,
            width,
        })
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The pixels of image `i` (`height * width` bytes), or `None` past the end.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let sz = self.height * self.width;
        (i < self.n).then(|| &self.images[i * sz..(i + 1) * sz])
    }

    /// The label of image `i`, or `None` past the end.
    pub fn label(&self, i: usize) -> Option<u8> {
        self.labels.get(i).copied()
    }

    /// The images as a `u8` tensor of shape `[n, 1, height, width]`.
    pub fn images_u8(&self) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            self.images.clone(),
            &[self.n, 1, self.height, self.width],
        )?)
    }

    /// The images as an `f32` tensor of shape `[n, 1, height, width]` scaled to `[0, 1]`
    /// (torchvision's `ToTensor`).
    pub fn images_f32(&self) -> Result<Tensor> {
        let v: Vec<f32> = self.images.iter().map(|&p| p as f32 / 255.0).collect();
        Ok(Tensor::from_vec(v, &[self.n, 1, self.height, self.width])?)
    }

    /// The labels as an `i64` tensor of shape `[n]`.
    pub fn labels_i64(&self) -> Result<Tensor> {
        let v: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        Ok(Tensor::from_vec(v, &[self.n])?)
    }

    /// The images `range` as a new set (for quick experiments on a slice of the data).
    pub fn subset(&self, range: std::ops::Range<usize>) -> Result<ImageSet> {
        if range.start > range.end || range.end > self.n {
            return Err(DataError::Invalid(format!(
                "image set subset {}..{} is out of range for {} images",
                range.start, range.end, self.n
            )));
        }
        let sz = self.height * self.width;
        ImageSet::new(
            self.images[range.start * sz..range.end * sz].to_vec(),
            self.labels[range.clone()].to_vec(),
            self.height,
            self.width,
        )
    }
}

fn format_err(path: &Path, msg: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Reads a whole file, decompressing it when it starts with the gzip magic `1f 8b`.
///
/// Decompression is bounded: it stops with an error past
/// [`MAX_EXPANSION`](crate::archive::MAX_EXPANSION) times the file's size (no data
/// set's gzip file comes near).
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    read_gzip_declared(path, |_| None)
}

/// [`read_maybe_gzip`] for a format whose first bytes declare its size: `declared` gets
/// the bytes decompressed so far (at least 64, or all there are) and returns the total
/// size they announce, `None` when it cannot tell; decompression stops one byte past it.
fn read_gzip_declared(path: &Path, declared: impl Fn(&[u8]) -> Option<usize>) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(io(path))?;
    if !(raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b) {
        return Ok(raw);
    }
    let corrupt =
        |e: std::io::Error| format_err(path, format!("gzip stream is truncated or corrupt: {e}"));
    let cap = (raw.len() as u64).saturating_mul(crate::archive::MAX_EXPANSION);
    let mut gz = MultiGzDecoder::new(&raw[..]);
    let mut out = Vec::new();
    (&mut gz).take(64).read_to_end(&mut out).map_err(corrupt)?;
    let bound = match declared(&out) {
        Some(n) => {
            d2l_tensor::limit::check_bytes(
                &format!("{}: the size its header declares", path.display()),
                Some(n as u128),
            )?;
            n as u64
        }
        None => cap,
    };
    (&mut gz)
        .take((bound + 1).saturating_sub(out.len() as u64))
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    if out.len() as u64 > bound {
        return Err(format_err(
            path,
            match declared(&out) {
                Some(n) => format!("the gzip stream holds more than the {n} bytes its header declares"),
                None => format!(
                    "the gzip stream expands past {bound} bytes ({} times the file's size): refused",
                    crate::archive::MAX_EXPANSION
                ),
            },
        ));
    }
    Ok(out)
}

/// The total size (header and data) an IDX file with `magic` declares in its first bytes.
fn idx_declared_size(bytes: &[u8], magic: u32) -> Option<usize> {
    let got = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
    if got != magic {
        return None;
    }
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    let dims = bytes.get(4..header)?;
    dims.chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")) as usize)
        .try_fold(1usize, |a, d| a.checked_mul(d))?
        .checked_add(header)
}

/// Parses an IDX header of `ndims` dimensions with the given magic; returns the dimensions
/// and the data that follows (checked to have exactly the size the header announces).
fn parse_idx<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
    what: &str,
) -> Result<(Vec<usize>, &'a [u8])> {
    if bytes.len() < 4 {
        return Err(format_err(
            path,
            format!(
                "IDX {what} file is too short for a header: {} bytes",
                bytes.len()
            ),
        ));
    }
    let got = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if got != magic {
        return Err(format_err(
            path,
            format!("not an IDX {what} file: magic number 0x{got:08x}, expected 0x{magic:08x}"),
        ));
    }
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(format_err(
            path,
            format!(
                "IDX {what} header is truncated: {} bytes, expected at least {header}",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|d| {
            let o = 4 + 4 * d;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let need = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format_err(path, format!("IDX {what} dimensions {dims:?} overflow")))?;
    let data = &bytes[header..];
    if data.len() < need {
        return Err(format_err(
            path,
            format!(
                "IDX {what} file is truncated: dimensions {dims:?} need {need} data bytes, found {}",
                data.len()
            ),
        ));
    }
    if data.len() > need {
        return Err(format_err(
            path,
            format!(
                "IDX {what} file has {} unexpected bytes after the {need} data bytes of dimensions {dims:?}",
                data.len() - need
            ),
        ));
    }
    Ok((dims, data))
}

/// Reads an IDX image file (magic `0x00000803`, gzip or not): returns `(pixels, n, height, width)`.
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<(Vec<u8>, usize, usize, usize)> {
    let path = path.as_ref();
    let bytes = read_gzip_declared(path, |b| idx_declared_size(b, IDX_IMAGES_MAGIC))?;
    let (dims, data) = parse_idx(path, &bytes, IDX_IMAGES_MAGIC, "images")?;
    Ok((data.to_vec(), dims[0], dims[1], dims[2]))
}

/// Reads an IDX label file (magic `0x00000801`, gzip or not).
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let bytes = read_gzip_declared(path, |b| idx_declared_size(b, IDX_LABELS_MAGIC))?;
    let (_, data) = parse_idx(path, &bytes, IDX_LABELS_MAGIC, "labels")?;
    Ok(data.to_vec())
}

/// Reads a pair of IDX files into an [`ImageSet`], checking that the counts agree and that
/// every label is below `num_classes`.
pub fn read_idx_pair(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
    num_classes: usize,
) -> Result<ImageSet> {
    let (pixels, n, h, w) = read_idx_images(images.as_ref())?;
    let lab = read_idx_labels(labels.as_ref())?;
    if lab.len() != n {
        return Err(format_err(
            labels.as_ref(),
            format!(
                "{} labels, but the image file {} holds {n} images",
                lab.len(),
                images.as_ref().display()
            ),
        ));
    }
    if let Some((i, &l)) = lab
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= num_classes)
    {
        return Err(format_err(
            labels.as_ref(),
            format!("label {l} at index {i} is out of range for {num_classes} classes"),
        ));
    }
    ImageSet::new(pixels, lab, h, w)
}

/// The four file names of an MNIST-style data set: (train images, train labels, test
/// images, test labels), as the official releases (and the data hub) name them.
pub const IDX_FILE_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// Finds `name` in `dir`, also accepting the decompressed name (without `.gz`).
fn locate(dir: &Path, name: &str) -> Result<PathBuf> {
    let gz = dir.join(name);
    if gz.is_file() {
        return Ok(gz);
    }
    let plain = dir.join(name.trim_end_matches(".gz"));
    if plain.is_file() {
        return Ok(plain);
    }
    Err(DataError::Io {
        path: gz,
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("file not found (nor {})", plain.display()),
        ),
    })
}

fn load_pair(dir: &Path, train: bool) -> Result<ImageSet> {
    let (i, l) = if train { (0, 1) } else { (2, 3) };
    let images = locate(dir, IDX_FILE_NAMES[i])?;
    let labels = locate(dir, IDX_FILE_NAMES[l])?;
    read_idx_pair(images, labels, 10)
}

/// Fashion-MNIST (Xiao et al. 2017): 60,000 training and 10,000 test images, 28×28, 10 classes.
pub struct FashionMnist;

impl FashionMnist {
    /// Loads the training (`train = true`) or test split from a folder holding the IDX files
    /// under their official names (`.gz` or decompressed).
    pub fn load(dir: impl AsRef<Path>, train: bool) -> Result<ImageSet> {
        load_pair(dir.as_ref(), train)
    }

    /// The text labels of the 10 classes.
    pub fn classes() -> &'static [&'static str] {
        &FASHION_MNIST_LABELS
    }
}

/// MNIST handwritten digits (LeCun et al. 1998): 60,000 training and 10,000 test images, 28×28.
pub struct Mnist;

impl Mnist {
    /// Loads the training (`train = true`) or test split from a folder holding the IDX files
    /// under their official names (`.gz` or decompressed).
    pub fn load(dir: impl AsRef<Path>, train: bool) -> Result<ImageSet> {
        load_pair(dir.as_ref(), train)
    }

    /// The text labels of the 10 classes (`"0"` to `"9"`).
    pub fn classes() -> &'static [&'static str] {
        &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    }
}
