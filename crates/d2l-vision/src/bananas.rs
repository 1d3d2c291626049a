//! Object detection data (D2L 13.6): the banana-detection reader, and a detection set the
//! program generates itself in the same layout, so that detection training runs offline.
//!
//! # The banana set
//!
//! The book's `banana-detection.zip` unpacks to `banana-detection/`, holding
//! `bananas_train/` (1000 images) and `bananas_val/` (100 images), each with a
//! `label.csv` (header `img_name,label,xmin,ymin,xmax,ymax`, one row per image) and an
//! `images/` folder of 256×256 pictures. [`read_bananas`] returns the images as `uint8`
//! `(3, 256, 256)` tensors and the targets as an `f32` tensor `(N, 1, 5)` holding
//! `[class, x1, y1, x2, y2]` with the coordinates divided by the image side (256), as
//! `read_data_bananas` does. [`BananasDataset`] serves them as `(f32 image in 0–255,
//! (1, 5) label)` examples and [`load_bananas`] fetches the zip through the data hub and
//! returns the book's two loaders.
//!
//! # The generated set
//!
//! [`generate_detection_set`] renders a set in a layout the same reader reads:
//!
//! ```text
//! <root>/train/label.csv        img_name,label,xmin,ymin,xmax,ymax (one row per object)
//! <root>/train/images/000000.png
//! <root>/val/label.csv
//! <root>/val/images/000000.png
//! <root>/spec.txt               the spec it was made from; written last
//! ```
//!
//! Rows with the same `img_name` are the objects of one image. Coordinates are integer
//! pixel edges: an object covering pixel columns `a..=b` has `xmin = a`, `xmax = b + 1`,
//! so boxes lie in `0..=size` and are the tight boxes of the visible object pixels. Every
//! image shows 1 to [`DetectionSetSpec::max_objects`] objects of up to four classes
//! ([`DETECTION_CLASSES`]: a yellow curved "banana", a blue rectangle, a red triangle, a
//! green ring) with random size, aspect, colour jitter and a darker outline, on textured
//! backgrounds (gradients, smooth colour noise, stripes, checkers, blotches) with random
//! colours. Objects of one image overlap little (box IoU below 0.3, and no object loses
//! more than a quarter of its pixels to one drawn later).
//!
//! Generation is deterministic: image `i` of a split depends only on the spec's seed, the
//! split and `i` (a local SplitMix64 stream, and only `+ - * / sqrt` on floats, which are
//! exactly rounded everywhere), so equal specs give equal files on every machine and
//! whatever the thread timing. Images are rendered in parallel.
//!
//! The library prints nothing: the data sets and loaders report their sizes
//! ([`DetectionDataset::len`], `DataLoader::num_examples`) for the caller to print.

use crate::image::read_image;
use crate::splitmix::{mix64, Rng};
use d2l_data::hub::DataHub;
use d2l_data::loader::{Batch, DataLoader, Dataset, Example};
use d2l_data::{DataError, Result};
use d2l_tensor::{DType, Tensor};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The registered name of the banana zip in the data hub.
pub const BANANA_HUB_NAME: &str = "banana-detection/banana-detection.zip";
/// The folder the banana zip unpacks to.
pub const BANANA_FOLDER: &str = "banana-detection";
/// The header every `label.csv` starts with.
pub const LABEL_HEADER: &str = "img_name,label,xmin,ymin,xmax,ymax";
/// The classes of the generated set, by index (a spec uses the first `num_classes`).
pub const DETECTION_CLASSES: [&str; 4] = ["banana", "blue rectangle", "red triangle", "green ring"];
/// The version of the generator's drawing; part of the stamp, so a changed drawing
/// regenerates sets made by an older one.
pub const GENERATOR_VERSION: u32 = 1;

const FIELDS: [&str; 6] = ["img_name", "label", "xmin", "ymin", "xmax", "ymax"];

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// One parsed `label.csv` row.
struct Row {
    line: usize,
    values: [f64; 5],
}

fn format_err(path: &Path, msg: String) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        msg,
    }
}

/// Parses a `label.csv` into images (in order of first appearance) and their rows.
fn parse_labels(path: &Path, text: &str) -> Result<Vec<(String, Vec<Row>)>> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let Some((hline, header)) = lines.next() else {
        return Err(format_err(
            path,
            format!("the label file is empty; expected the header `{LABEL_HEADER}` and one row per object"),
        ));
    };
    let header = header.trim_start_matches('\u{feff}');
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    if names != FIELDS {
        return Err(format_err(
            path,
            format!("line {hline}: expected the header `{LABEL_HEADER}`, found `{header}`"),
        ));
    }
    let mut images: Vec<(String, Vec<Row>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (line, text) in lines {
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        if fields.len() != FIELDS.len() {
            return Err(format_err(
                path,
                format!(
                    "line {line}: expected {} fields ({LABEL_HEADER}), found {}: `{text}`",
                    FIELDS.len(),
                    fields.len()
                ),
            ));
        }
        let name = fields[0];
        let bad_name = name.is_empty()
            || name == "."
            || name == ".."
            || name.contains('/')
            || name.contains('\\')
            || name.contains('\0');
        if bad_name {
            return Err(format_err(
                path,
                format!("line {line}: `{name}` is not a plain image file name"),
            ));
        }
        let mut values = [0f64; 5];
        for (k, v) in values.iter_mut().enumerate() {
            let field = fields[k + 1];
            *v = match field.parse::<f64>() {
                Ok(x) if x.is_finite() => x,
                _ => {
                    return Err(format_err(
                        path,
                        format!(
                            "line {line}: field `{}` is not a number: `{field}`",
                            FIELDS[k + 1]
                        ),
                    ))
                }
            };
        }
        let [cls, x1, y1, x2, y2] = values;
        if cls < 0.0 || cls.fract() != 0.0 {
            return Err(format_err(
                path,
                format!(
                    "line {line}: the class label must be a whole number >= 0, found `{}`",
                    fields[1]
                ),
            ));
        }
        if x1 < 0.0 || y1 < 0.0 {
            return Err(format_err(
                path,
                format!("line {line}: box ({x1}, {y1}, {x2}, {y2}) has a negative coordinate; coordinates must lie inside the image"),
            ));
        }
        if x2 <= x1 || y2 <= y1 {
            return Err(format_err(
                path,
                format!("line {line}: box ({x1}, {y1}, {x2}, {y2}) is empty or inverted; need xmin < xmax and ymin < ymax"),
            ));
        }
        let row = Row { line, values };
        match index.get(name) {
            Some(&k) => images[k].1.push(row),
            None => {
                index.insert(name.to_string(), images.len());
                images.push((name.to_string(), vec![row]));
            }
        }
    }
    if images.is_empty() {
        return Err(format_err(
            path,
            "the label file holds only its header, no examples".to_string(),
        ));
    }
    Ok(images)
}

/// Reads one split folder: `dir/label.csv` and the images under `dir/images/`.
///
/// Rows with the same `img_name` are the objects of one image; images come in the order
/// of their first row. Returns the images as `uint8` `(3, H, W)` tensors and the targets
/// as an `f32` tensor `(N, M, 5)` of `[class, x1/W, y1/H, x2/W, y2/H]`, where `M` is
/// `pad_to` (or, when `None`, the most objects any image has) and images with fewer
/// objects are padded with rows of −1 (class −1 marks padding, as in `multibox_target`).
///
/// Errors name the label file and line: an empty file or a wrong header, a row with the
/// wrong number of fields, a field that is not a number, a negative or fractional class,
/// an empty or inverted box, a box outside its image, a missing or unreadable image,
/// images of different sizes, or more objects on an image than `pad_to`.
pub fn read_detection_dir(dir: &Path, pad_to: Option<usize>) -> Result<(Vec<Tensor>, Tensor)> {
    let label = dir.join("label.csv");
    let text = std::fs::read_to_string(&label).map_err(|source| DataError::Io {
        path: label.clone(),
        source,
    })?;
    let groups = parse_labels(&label, &text)?;
    let most = groups.iter().map(|(_, r)| r.len()).max().unwrap_or(1);
    let m = pad_to.unwrap_or(most);
    if m == 0 {
        return Err(DataError::Invalid(
            "a detection set needs room for at least one object per image".into(),
        ));
    }
    if let Some((name, rows)) = groups.iter().find(|(_, r)| r.len() > m) {
        return Err(format_err(
            &label,
            format!(
                "line {}: image `{name}` has {} objects, more than the {m} this set allows",
                rows[m].line,
                rows.len()
            ),
        ));
    }
    let images_dir = dir.join("images");
    let loaded: Vec<Result<Tensor>> = groups
        .par_iter()
        .map(|(name, rows)| {
            let p = images_dir.join(name);
            let line = rows[0].line;
            read_image(&p).map_err(|e| match e {
                DataError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    format_err(
                        &label,
                        format!("line {line}: image `{name}` not found at {}", p.display()),
                    )
                }
                other => format_err(
                    &label,
                    format!("line {line}: cannot read image `{name}`: {other}"),
                ),
            })
        })
        .collect();
    let images = loaded.into_iter().collect::<Result<Vec<Tensor>>>()?;
    let (h, w) = (images[0].shape()[1], images[0].shape()[2]);
    let mut targets = vec![-1f32; groups.len() * m * 5];
    for (i, ((name, rows), img)) in groups.iter().zip(&images).enumerate() {
        let (hi, wi) = (img.shape()[1], img.shape()[2]);
        if (hi, wi) != (h, w) {
            return Err(format_err(
                &label,
                format!(
                    "line {}: image `{name}` is {wi}×{hi} but `{}` is {w}×{h}; all images of a set must have one size",
                    rows[0].line, groups[0].0
                ),
            ));
        }
        for (j, row) in rows.iter().enumerate() {
            let [cls, x1, y1, x2, y2] = row.values;
            if x2 > w as f64 || y2 > h as f64 {
                return Err(format_err(
                    &label,
                    format!(
                        "line {}: box ({x1}, {y1}, {x2}, {y2}) lies outside the {w}×{h} image `{name}`",
                        row.line
                    ),
                ));
            }
            let t = &mut targets[(i * m + j) * 5..(i * m + j + 1) * 5];
            t.copy_from_slice(&[
                cls as f32,
                (x1 / w as f64) as f32,
                (y1 / h as f64) as f32,
                (x2 / w as f64) as f32,
                (y2 / h as f64) as f32,
            ]);
        }
    }
    let targets = Tensor::from_vec(targets, &[groups.len(), m, 5])?;
    Ok((images, targets))
}

/// D2L's `read_data_bananas`: reads `root/bananas_train` (or `root/bananas_val`) into
/// `uint8` `(3, 256, 256)` images and `(N, 1, 5)` targets `[class, x1, y1, x2, y2]` with
/// the coordinates divided by 256 (the image side). An image with more than one row is an
/// error; see [`read_detection_dir`] for the others.
pub fn read_bananas(root: &Path, is_train: bool) -> Result<(Vec<Tensor>, Tensor)> {
    let split = if is_train {
        "bananas_train"
    } else {
        "bananas_val"
    };
    read_detection_dir(&root.join(split), Some(1))
}

/// D2L's generated-set counterpart of [`read_bananas`]: reads `root/train` (or `root/val`)
/// of a set made by [`generate_detection_set`], with targets `(N, max_objects, 5)` padded
/// with rows of −1.
pub fn read_detection_set(
    root: &Path,
    is_train: bool,
    max_objects: usize,
) -> Result<(Vec<Tensor>, Tensor)> {
    let split = if is_train { "train" } else { "val" };
    read_detection_dir(&root.join(split), Some(max_objects))
}

// ---------------------------------------------------------------------------------------
// Data set and loaders
// ---------------------------------------------------------------------------------------

/// A detection data set in memory (D2L's `BananasDataset`, and the generated set): example
/// `i` is `x` = image `i` as `f32` `(3, H, W)` with values 0–255 (not normalised, as in
/// the book) and `y` = its `f32` `(M, 5)` label rows `[class, x1, y1, x2, y2]` (coordinates
/// relative to the image side; padding rows are all −1).
#[derive(Debug, Clone)]
pub struct DetectionDataset {
    images: Vec<Tensor>,
    targets: Tensor,
}

/// D2L's `BananasDataset`: the banana set is a detection set with one object per image.
pub type BananasDataset = DetectionDataset;

impl DetectionDataset {
    /// A data set from images (each `(3, H, W)`, all one shape) and targets `(N, M, 5)`.
    pub fn new(images: Vec<Tensor>, targets: Tensor) -> Result<DetectionDataset> {
        let ts = targets.shape().to_vec();
        if ts.len() != 3 || ts[2] != 5 || ts[0] != images.len() {
            return Err(DataError::Invalid(format!(
                "detection targets must have shape ({}, M, 5) for {} images, got {ts:?}",
                images.len(),
                images.len()
            )));
        }
        if let Some(first) = images.first() {
            let s0 = first.shape().to_vec();
            if s0.len() != 3 || s0[0] != 3 {
                return Err(DataError::Invalid(format!(
                    "detection images must have shape (3, H, W), got {s0:?}"
                )));
            }
            if let Some((i, img)) = images
                .iter()
                .enumerate()
                .find(|(_, t)| t.shape() != s0.as_slice() || t.dtype() != first.dtype())
            {
                return Err(DataError::Invalid(format!(
                    "detection image {i} is {:?} {} but image 0 is {s0:?} {}",
                    img.shape(),
                    img.dtype(),
                    first.dtype()
                )));
            }
        }
        Ok(DetectionDataset { images, targets })
    }

    /// The banana split (`bananas_train` or `bananas_val` under `root`), see [`read_bananas`].
    pub fn bananas(root: &Path, is_train: bool) -> Result<DetectionDataset> {
        let (images, targets) = read_bananas(root, is_train)?;
        DetectionDataset::new(images, targets)
    }

    /// A split of a generated set, see [`read_detection_set`].
    pub fn generated(root: &Path, is_train: bool, max_objects: usize) -> Result<DetectionDataset> {
        let (images, targets) = read_detection_set(root, is_train, max_objects)?;
        DetectionDataset::new(images, targets)
    }

    /// The images, `uint8` `(3, H, W)` as read.
    pub fn images(&self) -> &[Tensor] {
        &self.images
    }

    /// The targets, `f32` `(N, M, 5)`.
    pub fn targets(&self) -> &Tensor {
        &self.targets
    }

    /// `M`, the label rows per image (objects plus padding).
    pub fn max_objects(&self) -> usize {
        self.targets.shape()[1]
    }
}

impl Dataset for DetectionDataset {
    fn len(&self) -> usize {
        self.images.len()
    }

    fn get(&self, index: usize) -> Result<Example> {
        let img = self.images.get(index).ok_or_else(|| {
            DataError::Invalid(format!(
                "index {index} is out of range for a data set of {} examples",
                self.images.len()
            ))
        })?;
        Ok(Example {
            x: img.to_dtype(DType::F32)?,
            y: self.targets.select(0, index as isize)?.contiguous()?,
        })
    }

    fn get_batch(&self, indices: &[usize]) -> Result<Batch> {
        let mut imgs = Vec::with_capacity(indices.len());
        for &i in indices {
            imgs.push(self.images.get(i).ok_or_else(|| {
                DataError::Invalid(format!(
                    "index {i} is out of range for a data set of {} examples",
                    self.images.len()
                ))
            })?);
        }
        let idx: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        let idx = Tensor::from_vec(idx, &[indices.len()])?;
        Ok(Batch {
            x: Tensor::stack(&imgs, 0)?.to_dtype(DType::F32)?,
            y: self.targets.index_select(0, &idx)?,
        })
    }
}

fn loaders(
    train: DetectionDataset,
    val: DetectionDataset,
    batch_size: usize,
) -> Result<(DataLoader, DataLoader)> {
    let seed = d2l_tensor::random::with_global(|g| g.next_u64());
    let train = DataLoader::new(Arc::new(train), batch_size)?.shuffle(seed);
    let val = DataLoader::new(Arc::new(val), batch_size)?;
    Ok((train, val))
}

/// D2L's `load_data_bananas` on an unpacked banana folder (the one holding
/// `bananas_train/` and `bananas_val/`): the training loader shuffled (seeded from the
/// engine's global generator, so `manual_seed` makes it reproducible), the validation
/// loader in order.
pub fn load_bananas_from(root: &Path, batch_size: usize) -> Result<(DataLoader, DataLoader)> {
    let train = DetectionDataset::bananas(root, true)?;
    let val = DetectionDataset::bananas(root, false)?;
    loaders(train, val, batch_size)
}

/// D2L's `load_data_bananas`: fetches and unpacks `banana-detection.zip` through the hub
/// (or uses `<data dir>/banana-detection/banana-detection` unpacked by hand) and returns
/// (training loader, shuffled; validation loader).
pub fn load_bananas(hub: &DataHub, batch_size: usize) -> Result<(DataLoader, DataLoader)> {
    let root = banana_root(hub)?;
    load_bananas_from(&root, batch_size)
}

/// The unpacked banana folder (holding `bananas_train/` and `bananas_val/`), fetched and
/// extracted through the hub if needed.
pub fn banana_root(hub: &DataHub) -> Result<PathBuf> {
    hub.fetch_and_extract(BANANA_HUB_NAME, BANANA_FOLDER)
}

/// Makes sure the generated set described by `spec` is in `root` ([`ensure_generated`]) and
/// returns (training loader, shuffled; validation loader) over it, with targets
/// `(B, spec.max_objects, 5)`.
pub fn load_detection_set(
    root: &Path,
    spec: &DetectionSetSpec,
    batch_size: usize,
) -> Result<(DataLoader, DataLoader)> {
    ensure_generated(root, spec)?;
    let train = DetectionDataset::generated(root, true, spec.max_objects)?;
    let val = DetectionDataset::generated(root, false, spec.max_objects)?;
    loaders(train, val, batch_size)
}

// ---------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------

/// What to generate: sizes, classes, objects per image and the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionSetSpec {
    /// Training images (default 1000, as the banana set).
    pub num_train: usize,
    /// Validation images (default 100).
    pub num_val: usize,
    /// Side of the square RGB images in pixels (default 256).
    pub image_size: usize,
    /// Object classes, 1 to 4 (default 1, like bananas), the first of [`DETECTION_CLASSES`].
    pub num_classes: usize,
    /// Most objects per image (default 1); each image gets 1 to this many.
    pub max_objects: usize,
    /// Smallest drawn object side in pixels (default 30).
    pub min_object_size: usize,
    /// Largest drawn object side in pixels (default 120).
    pub max_object_size: usize,
    /// Seed of everything random.
    pub seed: u64,
}

impl Default for DetectionSetSpec {
    fn default() -> Self {
        DetectionSetSpec {
            num_train: 1000,
            num_val: 100,
            image_size: 256,
            num_classes: 1,
            max_objects: 1,
            min_object_size: 30,
            max_object_size: 120,
            seed: 0x0013_0006,
        }
    }
}

impl DetectionSetSpec {
    /// Checks the ranges: at least one image per split, image side 16–4096, 1–4 classes,
    /// 1–64 objects, `4 <= min_object_size <= max_object_size <= image_size`.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(DataError::Invalid(format!("detection set spec: {msg}")));
        if self.num_train == 0 || self.num_val == 0 {
            return bad(format!(
                "need at least one training and one validation image, got {} and {}",
                self.num_train, self.num_val
            ));
        }
        if !(16..=4096).contains(&self.image_size) {
            return bad(format!(
                "image_size must be 16..=4096, got {}",
                self.image_size
            ));
        }
        if !(1..=DETECTION_CLASSES.len()).contains(&self.num_classes) {
            return bad(format!(
                "num_classes must be 1..={}, got {}",
                DETECTION_CLASSES.len(),
                self.num_classes
            ));
        }
        if !(1..=64).contains(&self.max_objects) {
            return bad(format!(
                "max_objects must be 1..=64, got {}",
                self.max_objects
            ));
        }
        if self.min_object_size < 4
            || self.min_object_size > self.max_object_size
            || self.max_object_size > self.image_size
        {
            return bad(format!(
                "need 4 <= min_object_size <= max_object_size <= image_size, got {} and {} for {}",
                self.min_object_size, self.max_object_size, self.image_size
            ));
        }
        Ok(())
    }

    /// The text of the `spec.txt` stamp (generator version and every field).
    pub fn stamp(&self) -> String {
        format!(
            "d2l-rs detection set\ngenerator_version={GENERATOR_VERSION}\nnum_train={}\nnum_val={}\nimage_size={}\nnum_classes={}\nmax_objects={}\nmin_object_size={}\nmax_object_size={}\nseed={}\n",
            self.num_train,
            self.num_val,
            self.image_size,
            self.num_classes,
            self.max_objects,
            self.min_object_size,
            self.max_object_size,
            self.seed
        )
    }
}

/// One drawn object: its class and tight box in pixel edges (`xmin..xmax` columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectionObject {
    /// Class index into [`DETECTION_CLASSES`].
    pub class: usize,
    /// First column covered.
    pub xmin: usize,
    /// First row covered.
    pub ymin: usize,
    /// One past the last column covered.
    pub xmax: usize,
    /// One past the last row covered.
    pub ymax: usize,
}

/// One rendered image with what is known about its pixels.
#[derive(Debug, Clone)]
pub struct RenderedImage {
    /// Side in pixels.
    pub size: usize,
    /// Interleaved RGB pixels, row by row (`size * size * 3` bytes).
    pub pixels: Vec<u8>,
    /// Per pixel: 0 for background, `k + 1` where object `k` is visible.
    pub owner: Vec<u8>,
    /// The objects, in drawing order (larger first).
    pub objects: Vec<DetectionObject>,
}

impl RenderedImage {
    /// The image as a `uint8` `(3, size, size)` tensor (what reading the PNG gives).
    pub fn to_tensor(&self) -> Result<Tensor> {
        let n = self.size * self.size;
        let mut chw = vec![0u8; n * 3];
        for (p, px) in self.pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                chw[c * n + p] = px[c];
            }
        }
        Ok(Tensor::from_vec(chw, &[3, self.size, self.size])?)
    }
}

/// What [`generate_detection_set`] and [`ensure_generated`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionSetInfo {
    /// The set's root folder.
    pub root: PathBuf,
    /// Training images.
    pub num_train: usize,
    /// Validation images.
    pub num_val: usize,
    /// Objects over all training images (counted from the labels).
    pub train_objects: usize,
    /// Objects over all validation images.
    pub val_objects: usize,
    /// Whether the images were generated now (false: an existing set was reused).
    pub generated: bool,
}

/// A colour drawn in f64, as the renderer's f32 pixels.
fn f32s(c: [f64; 3]) -> [f32; 3] {
    c.map(|v| v as f32)
}

fn image_seed(seed: u64, is_train: bool, index: usize) -> u64 {
    let split = if is_train {
        0x7472_6169_6e00_0001
    } else {
        0x7661_6c00_0000_0002
    };
    mix64(mix64(seed ^ split).wrapping_add((index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

fn lerp3(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// A textured background: gradient, smooth colour noise, stripes, checker or blotches,
/// plus grain.
fn background(rng: &mut Rng, s: usize) -> Vec<[f32; 3]> {
    let c1 = f32s(rng.colour());
    let c2 = f32s(rng.colour());
    let mut px = vec![[0f32; 3]; s * s];
    let sf = s as f64;
    match rng.below(5) {
        0 => {
            // Linear gradient along a random direction.
            let (dx, dy) = rng.direction();
            let lo = 0f64.min(dx * sf) + 0f64.min(dy * sf);
            let hi = 0f64.max(dx * sf) + 0f64.max(dy * sf);
            for y in 0..s {
                for x in 0..s {
                    let t = ((x as f64 + 0.5) * dx + (y as f64 + 0.5) * dy - lo) / (hi - lo);
                    px[y * s + x] = lerp3(c1, c2, t as f32);
                }
            }
        }
        1 => {
            // Smooth value noise: random colours on a coarse grid, interpolated.
            let cell = rng.range(16, 64);
            let g = s / cell + 2;
            let grid: Vec<[f32; 3]> = (0..g * g)
                .map(|_| {
                    let t = rng.unit() as f32;
                    let mut c = lerp3(c1, c2, t);
                    for v in &mut c {
                        *v += rng.uniform(-40.0, 40.0) as f32;
                    }
                    c
                })
                .collect();
            let smooth = |t: f32| t * t * (3.0 - 2.0 * t);
            for y in 0..s {
                let gy = y / cell;
                let ty = smooth((y % cell) as f32 / cell as f32);
                for x in 0..s {
                    let gx = x / cell;
                    let tx = smooth((x % cell) as f32 / cell as f32);
                    let top = lerp3(grid[gy * g + gx], grid[gy * g + gx + 1], tx);
                    let bot = lerp3(grid[(gy + 1) * g + gx], grid[(gy + 1) * g + gx + 1], tx);
                    px[y * s + x] = lerp3(top, bot, ty);
                }
            }
        }
        2 => {
            // Stripes at a random angle, period and duty.
            let (dx, dy) = rng.direction();
            let period = rng.uniform(8.0, 40.0);
            let duty = rng.uniform(0.3, 0.7);
            for y in 0..s {
                for x in 0..s {
                    let p = ((x as f64 + 0.5) * dx + (y as f64 + 0.5) * dy) / period;
                    let f = p - p.floor();
                    px[y * s + x] = if f < duty { c1 } else { c2 };
                }
            }
        }
        3 => {
            // Checkerboard with a random cell and offset.
            let cell = rng.range(8, 40);
            let (ox, oy) = (rng.below(cell), rng.below(cell));
            for y in 0..s {
                for x in 0..s {
                    let odd = ((x + ox) / cell + (y + oy) / cell) % 2 == 1;
                    px[y * s + x] = if odd { c2 } else { c1 };
                }
            }
        }
        _ => {
            // Blotches: soft round stains of random colours over a vertical gradient.
            for y in 0..s {
                let c = lerp3(c1, c2, (y as f32 + 0.5) / s as f32);
                px[y * s..(y + 1) * s].fill(c);
            }
            for _ in 0..rng.range(3, 8) {
                let (cx, cy) = (rng.uniform(0.0, sf), rng.uniform(0.0, sf));
                let r = rng.uniform(10.0, 70.0);
                let col = f32s(rng.colour());
                let alpha = rng.uniform(0.4, 0.9);
                let x0 = (cx - r).max(0.0) as usize;
                let x1 = ((cx + r).ceil() as usize).min(s);
                let y0 = (cy - r).max(0.0) as usize;
                let y1 = ((cy + r).ceil() as usize).min(s);
                for y in y0..y1 {
                    for x in x0..x1 {
                        let (ddx, ddy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                        let d2 = (ddx * ddx + ddy * ddy) / (r * r);
                        if d2 < 1.0 {
                            let w = (1.0 - d2) * (1.0 - d2) * alpha;
                            let p = &mut px[y * s + x];
                            *p = lerp3(*p, col, w as f32);
                        }
                    }
                }
            }
        }
    }
    let amp = rng_amp(rng, 5.0);
    grain(rng, &mut px, amp);
    px
}

fn rng_amp(rng: &mut Rng, max: f64) -> f32 {
    rng.uniform(0.0, max) as f32
}

/// Adds grey noise in `[-amp, amp]` to every pixel (one random byte per pixel).
fn grain(rng: &mut Rng, px: &mut [[f32; 3]], amp: f32) {
    let mut bits = 0u64;
    for (i, p) in px.iter_mut().enumerate() {
        if i % 8 == 0 {
            bits = rng.next_u64();
        }
        let b = ((bits >> ((i % 8) * 8)) & 0xff) as f32;
        let n = (b / 255.0 - 0.5) * 2.0 * amp;
        for v in p.iter_mut() {
            *v += n;
        }
    }
}

/// One object drawn on its own canvas and cropped to its tight mask.
struct Sprite {
    class: usize,
    w: usize,
    h: usize,
    mask: Vec<bool>,
    rgb: Vec<[f32; 3]>,
}

impl Sprite {
    fn area(&self) -> usize {
        self.w * self.h
    }
}

/// Draws one object of `class` with a random size in `min..=max`, aspect, pose and colour.
fn sprite(class: usize, rng: &mut Rng, min: usize, max: usize) -> Sprite {
    let w = rng.range(min, max);
    let aspect = rng.uniform(0.6, 1.6);
    let h = ((w as f64 * aspect).round() as usize).clamp(min, max);
    let mut mask = vec![false; w * h];
    let mut shade = vec![1f32; w * h];
    let coords = |x: usize, y: usize| {
        (
            (x as f64 + 0.5) / w as f64 * 2.0 - 1.0,
            (y as f64 + 0.5) / h as f64 * 2.0 - 1.0,
        )
    };
    match class {
        0 => {
            // A banana: a crescent between two ellipses, lying or upright, tilted, maybe flipped.
            let tilt = rng.uniform(-0.6, 0.6);
            let n = (1.0 + tilt * tilt).sqrt();
            let (c, s) = (1.0 / n, tilt / n);
            let flip = rng.below(2) == 1;
            let upright = rng.below(2) == 1;
            for y in 0..h {
                for x in 0..w {
                    let (u, v) = coords(x, y);
                    let (u, v) = if upright { (v, u) } else { (u, v) };
                    let (mut ur, mut vr) = (c * u - s * v, s * u + c * v);
                    ur *= 1.1;
                    vr *= 1.1;
                    if flip {
                        vr = -vr;
                    }
                    let outer = ur * ur + (vr - 0.6) * (vr - 0.6) / (1.5 * 1.5) <= 1.0;
                    let inner =
                        ur * ur / (1.05 * 1.05) + (vr - 1.1) * (vr - 1.1) / (1.55 * 1.55) <= 1.0;
                    mask[y * w + x] = outer && !inner;
                    shade[y * w + x] = 1.0 - 0.25 * (ur * ur) as f32;
                }
            }
        }
        1 => {
            // A rectangle, lit from one side.
            for y in 0..h {
                for x in 0..w {
                    let (u, v) = coords(x, y);
                    mask[y * w + x] = true;
                    shade[y * w + x] = 0.9 + 0.1 * ((u + v) * 0.5) as f32;
                }
            }
        }
        2 => {
            // A triangle: apex on one side, base on the opposite one.
            let apex = rng.uniform(-0.7, 0.7);
            let orient = rng.below(4);
            let (ax, ay, bx, by, cx, cy) = (apex, -1.0, -1.0, 1.0, 1.0, 1.0);
            let edge = |px: f64, py: f64, qx: f64, qy: f64, x: f64, y: f64| {
                (qx - px) * (y - py) - (qy - py) * (x - px)
            };
            for y in 0..h {
                for x in 0..w {
                    let (u, v) = coords(x, y);
                    let (u, v) = match orient {
                        0 => (u, v),
                        1 => (u, -v),
                        2 => (v, u),
                        _ => (v, -u),
                    };
                    let e1 = edge(ax, ay, bx, by, u, v);
                    let e2 = edge(bx, by, cx, cy, u, v);
                    let e3 = edge(cx, cy, ax, ay, u, v);
                    let inside = (e1 >= 0.0 && e2 >= 0.0 && e3 >= 0.0)
                        || (e1 <= 0.0 && e2 <= 0.0 && e3 <= 0.0);
                    mask[y * w + x] = inside;
                    shade[y * w + x] = 0.9 + 0.1 * v as f32;
                }
            }
        }
        _ => {
            // A ring: an ellipse with a hole.
            let r_in = rng.uniform(0.4, 0.65);
            for y in 0..h {
                for x in 0..w {
                    let (u, v) = coords(x, y);
                    let d2 = u * u + v * v;
                    mask[y * w + x] = d2 <= 1.0 && d2 >= r_in * r_in;
                    shade[y * w + x] = 0.9 + 0.1 * (-v) as f32;
                }
            }
        }
    }
    // Crop to the tight mask (every class covers some pixels at these sizes; fall back to
    // the full canvas if not).
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if mask[y * w + x] {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
        }
    }
    if x0 >= x1 {
        mask.fill(true);
        (x0, y0, x1, y1) = (0, 0, w, h);
    }
    let (cw, ch) = (x1 - x0, y1 - y0);
    let base = match class {
        0 => [
            rng.uniform(215.0, 255.0),
            rng.uniform(175.0, 225.0),
            rng.uniform(20.0, 90.0),
        ],
        1 => [
            rng.uniform(20.0, 80.0),
            rng.uniform(50.0, 140.0),
            rng.uniform(170.0, 255.0),
        ],
        2 => [
            rng.uniform(180.0, 255.0),
            rng.uniform(0.0, 60.0),
            rng.uniform(0.0, 60.0),
        ],
        _ => [
            rng.uniform(0.0, 70.0),
            rng.uniform(150.0, 230.0),
            rng.uniform(20.0, 90.0),
        ],
    };
    let base = base.map(|v| v as f32);
    let outline = rng.uniform(0.5, 0.7) as f32;
    let amp = rng_amp(rng, 6.0);
    let mut cmask = vec![false; cw * ch];
    let mut rgb = vec![[0f32; 3]; cw * ch];
    let inside = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < w
            && (y as usize) < h
            && mask[y as usize * w + x as usize]
    };
    for y in 0..ch {
        for x in 0..cw {
            let (sx, sy) = (x + x0, y + y0);
            if !mask[sy * w + sx] {
                continue;
            }
            cmask[y * cw + x] = true;
            let (ix, iy) = (sx as isize, sy as isize);
            let edge = !(inside(ix - 1, iy)
                && inside(ix + 1, iy)
                && inside(ix, iy - 1)
                && inside(ix, iy + 1));
            let k = shade[sy * w + sx] * if edge { outline } else { 1.0 };
            rgb[y * cw + x] = base.map(|c| c * k);
        }
    }
    grain(rng, &mut rgb, amp);
    Sprite {
        class,
        w: cw,
        h: ch,
        mask: cmask,
        rgb,
    }
}

type PixelBox = [usize; 4];

fn iou(a: &PixelBox, b: &PixelBox) -> f64 {
    let iw = a[2].min(b[2]).saturating_sub(a[0].max(b[0]));
    let ih = a[3].min(b[3]).saturating_sub(a[1].max(b[1]));
    let inter = (iw * ih) as f64;
    let area = |r: &PixelBox| ((r[2] - r[0]) * (r[3] - r[1])) as f64;
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// The tight boxes and pixel counts of objects `1..=n` in an owner map.
fn owner_boxes(owner: &[u8], s: usize, n: usize) -> (Vec<PixelBox>, Vec<usize>) {
    let mut boxes = vec![[s, s, 0, 0]; n];
    let mut counts = vec![0usize; n];
    for y in 0..s {
        for x in 0..s {
            let o = owner[y * s + x] as usize;
            if o > 0 {
                let b = &mut boxes[o - 1];
                b[0] = b[0].min(x);
                b[1] = b[1].min(y);
                b[2] = b[2].max(x + 1);
                b[3] = b[3].max(y + 1);
                counts[o - 1] += 1;
            }
        }
    }
    (boxes, counts)
}

/// Renders image `index` of the training (or validation) split of `spec`: the same pixels
/// and boxes [`generate_detection_set`] writes, plus the owner of every pixel.
pub fn render_detection_image(
    spec: &DetectionSetSpec,
    is_train: bool,
    index: usize,
) -> Result<RenderedImage> {
    spec.validate()?;
    let s = spec.image_size;
    let mut rng = Rng(image_seed(spec.seed, is_train, index));
    let mut px = background(&mut rng, s);
    let wanted = if spec.max_objects == 1 {
        1
    } else {
        rng.range(1, spec.max_objects)
    };
    let mut sprites: Vec<Sprite> = (0..wanted)
        .map(|_| {
            let class = rng.below(spec.num_classes);
            sprite(class, &mut rng, spec.min_object_size, spec.max_object_size)
        })
        .collect();
    // Larger objects first, so smaller ones are drawn on top of them.
    sprites.sort_by_key(|sp| std::cmp::Reverse(sp.area()));

    let mut owner = vec![0u8; s * s];
    let mut boxes: Vec<PixelBox> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    let mut classes: Vec<usize> = Vec::new();
    for sp in &sprites {
        for _attempt in 0..40 {
            let x0 = rng.below(s - sp.w + 1);
            let y0 = rng.below(s - sp.h + 1);
            let cand = [x0, y0, x0 + sp.w, y0 + sp.h];
            if boxes.iter().any(|b| iou(b, &cand) >= 0.3) {
                continue;
            }
            // Pixels the new object would take from the ones already drawn.
            let mut lost = vec![0usize; boxes.len()];
            for y in 0..sp.h {
                for x in 0..sp.w {
                    if sp.mask[y * sp.w + x] {
                        let o = owner[(y0 + y) * s + x0 + x] as usize;
                        if o > 0 {
                            lost[o - 1] += 1;
                        }
                    }
                }
            }
            if lost.iter().zip(&counts).any(|(&l, &c)| l * 4 > c) {
                continue;
            }
            let id = boxes.len() as u8 + 1;
            let mut next = owner.clone();
            for y in 0..sp.h {
                for x in 0..sp.w {
                    if sp.mask[y * sp.w + x] {
                        next[(y0 + y) * s + x0 + x] = id;
                    }
                }
            }
            let (nb, nc) = if lost.iter().any(|&l| l > 0) {
                owner_boxes(&next, s, boxes.len() + 1)
            } else {
                let mut nb = boxes.clone();
                let mut nc = counts.clone();
                nb.push(cand);
                nc.push(sp.mask.iter().filter(|&&m| m).count());
                (nb, nc)
            };
            let clash =
                (0..nb.len()).any(|i| (i + 1..nb.len()).any(|j| iou(&nb[i], &nb[j]) >= 0.3));
            if clash {
                continue;
            }
            for y in 0..sp.h {
                for x in 0..sp.w {
                    if sp.mask[y * sp.w + x] {
                        px[(y0 + y) * s + x0 + x] = sp.rgb[y * sp.w + x];
                    }
                }
            }
            owner = next;
            boxes = nb;
            counts = nc;
            classes.push(sp.class);
            break;
        }
    }
    let pixels: Vec<u8> = px
        .iter()
        .flat_map(|p| p.map(|v| v.round().clamp(0.0, 255.0) as u8))
        .collect();
    let objects = boxes
        .iter()
        .zip(&classes)
        .map(|(b, &class)| DetectionObject {
            class,
            xmin: b[0],
            ymin: b[1],
            xmax: b[2],
            ymax: b[3],
        })
        .collect();
    Ok(RenderedImage {
        size: s,
        pixels,
        owner,
        objects,
    })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` through a temporary sibling and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    d2l_nn::serialize::write_atomic_io(path, bytes).map_err(io_err(path))
}

fn encode_png(pixels: &[u8], s: usize, path: &Path) -> Result<()> {
    use ::image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use ::image::ImageEncoder;
    let mut buf = Vec::with_capacity(s * s * 3 / 2);
    PngEncoder::new_with_quality(&mut buf, CompressionType::Fast, FilterType::Adaptive)
        .write_image(pixels, s as u32, s as u32, ::image::ColorType::Rgb8)
        .map_err(|e| format_err(path, format!("cannot encode PNG: {e}")))?;
    write_atomic(path, &buf)
}

/// Whether `name` is one of the generator's image files (`<digits>.png`), or a leftover of
/// an interrupted write: an older `<digits>.png.part` or the atomic write's temporary
/// `.<digits>.png.<pid>.<n>.tmp.png`.
fn is_generated_name(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let image = |s: &str| s.strip_suffix(".png").is_some_and(digits);
    if image(name) || name.strip_suffix(".part").is_some_and(image) {
        return true;
    }
    name.strip_prefix('.')
        .and_then(|r| r.strip_suffix(".tmp.png"))
        .and_then(|r| r.split_once(".png."))
        .is_some_and(|(stem, ids)| digits(stem) && ids.split('.').all(digits))
}

fn generate_split(root: &Path, spec: &DetectionSetSpec, is_train: bool) -> Result<usize> {
    let (split, n) = if is_train {
        ("train", spec.num_train)
    } else {
        ("val", spec.num_val)
    };
    let dir = root.join(split);
    let images = dir.join("images");
    std::fs::create_dir_all(&images).map_err(io_err(&images))?;
    // Remove only what an earlier run of the generator wrote.
    let label = dir.join("label.csv");
    if label.exists() {
        std::fs::remove_file(&label).map_err(io_err(&label))?;
    }
    for entry in std::fs::read_dir(&images).map_err(io_err(&images))? {
        let entry = entry.map_err(io_err(&images))?;
        if is_generated_name(&entry.file_name().to_string_lossy()) {
            let p = entry.path();
            std::fs::remove_file(&p).map_err(io_err(&p))?;
        }
    }
    let width = n.saturating_sub(1).to_string().len().max(6);
    let name = |i: usize| format!("{i:0width$}.png");
    let objects: Vec<Result<Vec<DetectionObject>>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let r = render_detection_image(spec, is_train, i)?;
            encode_png(&r.pixels, r.size, &images.join(name(i)))?;
            Ok(r.objects)
        })
        .collect();
    let mut csv = String::with_capacity(n * 32);
    csv.push_str(LABEL_HEADER);
    csv.push('\n');
    let mut total = 0;
    for (i, objs) in objects.into_iter().enumerate() {
        for o in objs? {
            csv.push_str(&format!(
                "{},{},{},{},{},{}\n",
                name(i),
                o.class,
                o.xmin,
                o.ymin,
                o.xmax,
                o.ymax
            ));
            total += 1;
        }
    }
    write_atomic(&label, csv.as_bytes())?;
    Ok(total)
}

/// Renders the set `spec` describes into `root` (layout in the module docs), replacing the
/// files an earlier generation left there and nothing else. The `spec.txt` stamp is removed
/// first and written last, so an interrupted run never looks complete.
pub fn generate_detection_set(root: &Path, spec: &DetectionSetSpec) -> Result<DetectionSetInfo> {
    spec.validate()?;
    std::fs::create_dir_all(root).map_err(io_err(root))?;
    let stamp = root.join("spec.txt");
    if stamp.exists() {
        std::fs::remove_file(&stamp).map_err(io_err(&stamp))?;
    }
    let train_objects = generate_split(root, spec, true)?;
    let val_objects = generate_split(root, spec, false)?;
    write_atomic(&stamp, spec.stamp().as_bytes())?;
    Ok(DetectionSetInfo {
        root: root.to_path_buf(),
        num_train: spec.num_train,
        num_val: spec.num_val,
        train_objects,
        val_objects,
        generated: true,
    })
}

/// Counts the object rows of a generated split's `label.csv`.
fn count_rows(label: &Path) -> Result<usize> {
    let text = std::fs::read_to_string(label).map_err(io_err(label))?;
    Ok(text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count())
}

/// Generates the set into `root` unless a complete one from the same spec (and generator
/// version) is already there, as recorded in `root/spec.txt`.
pub fn ensure_generated(root: &Path, spec: &DetectionSetSpec) -> Result<DetectionSetInfo> {
    spec.validate()?;
    let stamp = root.join("spec.txt");
    let same = std::fs::read_to_string(&stamp).is_ok_and(|s| s == spec.stamp());
    let train = root.join("train").join("label.csv");
    let val = root.join("val").join("label.csv");
    if same && train.is_file() && val.is_file() {
        return Ok(DetectionSetInfo {
            root: root.to_path_buf(),
            num_train: spec.num_train,
            num_val: spec.num_val,
            train_objects: count_rows(&train)?,
            val_objects: count_rows(&val)?,
            generated: false,
        });
    }
    generate_detection_set(root, spec)
}

#[cfg(test)]
mod tests {
    use super::is_generated_name;

    #[test]
    fn generated_names_and_their_leftovers_are_recognised() {
        for yes in ["000001.png", "12.png.part", ".000003.png.4242.0.tmp.png"] {
            assert!(is_generated_name(yes), "{yes}");
        }
        for no in [
            "photo.png",
            ".png",
            "0001.jpg",
            ".x.png.1.2.tmp.png",
            ".0001.png.12.tmp.jpg",
            "label.csv",
        ] {
            assert!(!is_generated_name(no), "{no}");
        }
    }
}
