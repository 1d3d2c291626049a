//! Object detection data (D2L 13.6): the banana-detection reader, its data set and loaders.
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
//! The same reader ([`read_detection_dir`]) reads the set the program generates in the
//! banana layout with several objects per image ([`crate::generated::detection`]); labels
//! are parsed with the `csv` crate.
//!
//! The library prints nothing: the data sets and loaders report their sizes
//! ([`DetectionDataset::len`], `DataLoader::num_examples`) for the caller to print.

use crate::image::read_image;
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

/// Parses a `label.csv` (with the `csv` crate: quoting, CRLF, blank lines) into images
/// (in order of first appearance) and their rows.
fn parse_labels(path: &Path, text: &str) -> Result<Vec<(String, Vec<Row>)>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = reader.records().filter_map(|r| match r {
        // A line of blanks is one empty field: skip it as a blank line.
        Ok(rec) if rec.len() == 1 && rec[0].is_empty() => None,
        Ok(rec) => {
            let line = rec.position().map_or(0, |p| p.line() as usize);
            Some(Ok((line, rec)))
        }
        Err(e) => Some(Err(format_err(path, format!("not a CSV file: {e}")))),
    });
    let Some(first) = records.next() else {
        return Err(format_err(
            path,
            format!("the label file is empty; expected the header `{LABEL_HEADER}` and one row per object"),
        ));
    };
    let (hline, header) = first?;
    let names: Vec<&str> = header
        .iter()
        .enumerate()
        .map(|(k, f)| {
            if k == 0 {
                f.trim_start_matches('\u{feff}')
            } else {
                f
            }
        })
        .collect();
    if names != FIELDS {
        return Err(format_err(
            path,
            format!(
                "line {hline}: expected the header `{LABEL_HEADER}`, found `{}`",
                names.join(",")
            ),
        ));
    }
    let mut images: Vec<(String, Vec<Row>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for record in records {
        let (line, rec) = record?;
        let fields: Vec<&str> = rec.iter().collect();
        let text = fields.join(",");
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

pub(crate) fn loaders(
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
