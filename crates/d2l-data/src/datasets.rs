//! The book's data-set loaders, wired through the [`DataHub`] (D2L 3.5
//! `load_data_fashion_mnist`, 4.10's house prices, 8.2's Time Machine), the built-in `shapes`
//! set, and [`load_image_classification`], the one call the command line makes: it loads
//! the named image classification set and, when its files are nowhere to be had, falls back
//! to `shapes` with a one-line [`Notice`].
//!
//! Images are served by an [`ImageDataset`]: the raw `u8` pixels of an [`ImageSet`] stay in
//! memory (47 MB for Fashion-MNIST's training split) and each batch is converted at once —
//! `u8 → f32 / 255` (torchvision's `ToTensor`), then an optional bilinear resize with one
//! shared [`Resizer`] (parallel over the images with rayon), then optional further
//! transforms ([`Compose`], e.g. `Normalize`) on the whole batch.
//!
//! ```no_run
//! use d2l_data::hub::DataHub;
//! use d2l_data::datasets::load_data_fashion_mnist;
//! let hub = DataHub::from_env();
//! let (train_iter, test_iter) = load_data_fashion_mnist(&hub, 256, None, 0)?;
//! for batch in &train_iter {
//!     let batch = batch?; // x: f32 [256, 1, 28, 28] in [0, 1], y: i64 [256]
//!     # let _ = batch;
//! }
//! # let _ = test_iter;
//! # Ok::<(), d2l_data::DataError>(())
//! ```

use crate::error::{DataError, Result};
use crate::house::KaggleHouse;
use crate::hub::DataHub;
use crate::idx::{read_idx_pair, ImageSet, FASHION_MNIST_LABELS, IDX_FILE_NAMES};
use crate::loader::{Batch, DataLoader, Dataset, Example};
use crate::shapes::{Shapes, SHAPES_CLASSES, SHAPES_TEST_SIZE, SHAPES_TRAIN_SIZE};
use crate::text::{load_corpus_time_machine, Vocab};
use crate::transforms::{Compose, ImageTransform, Resizer};
use d2l_tensor::{Generator, Tensor};
use rayon::prelude::*;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

/// Below this many output values per batch the conversion stays on the loader's thread
/// (spreading a few hundred thousand multiply-adds over threads costs more than it saves).
const PARALLEL_MIN_VALUES: usize = 1 << 20;

/// A grey-scale image classification set as a [`Dataset`]: example `i` is the image as an
/// `f32` tensor `[1, H, W]` in `[0, 1]` (or `[1, R, R]` when resized) and its label as an
/// `i64` 0-d tensor. Batches are converted whole ([`Dataset::get_batch`]), which is what the
/// [`DataLoader`] calls when it has no per-example transform.
#[derive(Clone)]
pub struct ImageDataset {
    set: Arc<ImageSet>,
    resizer: Option<Arc<Resizer>>,
    transform: Option<Compose>,
}

impl fmt::Debug for ImageDataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageDataset")
            .field("images", &self.set.n)
            .field("size", &(self.set.height, self.set.width))
            .field("resize", &self.resizer.as_ref().map(|r| r.output_size()))
            .field("transform", &self.transform)
            .finish()
    }
}

impl ImageDataset {
    /// Serves the images of `set` at their own size, as `f32` in `[0, 1]`.
    pub fn new(set: impl Into<Arc<ImageSet>>) -> ImageDataset {
        ImageDataset {
            set: set.into(),
            resizer: None,
            transform: None,
        }
    }

    /// Resizes every image to `size × size` (bilinear, PyTorch's `align_corners=False`);
    /// `None` keeps the original size. A size of 0 is an error.
    pub fn with_resize(mut self, size: Option<usize>) -> Result<ImageDataset> {
        self.resizer = match size {
            None => None,
            Some(s) => {
                let r = Resizer::new(self.set.height, self.set.width, s, s)?;
                Some(Arc::new(r))
            }
        };
        Ok(self)
    }

    /// Applies `transform` to every batch `[N, 1, H, W]` (and every single image `[1, H, W]`)
    /// after the conversion to `f32` and the resize: a deterministic, batch-aware transform
    /// such as [`Normalize`](crate::transforms::Normalize). Random augmentation is per
    /// example and seeded: wrap the data set in an
    /// [`AugmentedDataset`](crate::transforms::AugmentedDataset) instead.
    pub fn with_transform(mut self, transform: Compose) -> ImageDataset {
        self.transform = Some(transform);
        self
    }

    /// The underlying images and labels.
    pub fn image_set(&self) -> &Arc<ImageSet> {
        &self.set
    }

    /// The `(height, width)` of the images this data set yields (after any resize).
    pub fn output_size(&self) -> (usize, usize) {
        match &self.resizer {
            Some(r) => r.output_size(),
            None => (self.set.height, self.set.width),
        }
    }

    fn check_index(&self, i: usize) -> Result<()> {
        if i >= self.set.n {
            return Err(DataError::Invalid(format!(
                "index {i} is out of range for a data set of {} images",
                self.set.n
            )));
        }
        Ok(())
    }

    /// Converts image `i` into `out` (`output_size` values), reusing `plane` as scratch.
    fn convert_into(&self, i: usize, plane: &mut Vec<f32>, out: &mut [f32]) -> Result<()> {
        let src = self.set.image(i).ok_or_else(|| {
            DataError::Invalid(format!(
                "index {i} is out of range for {} images",
                self.set.n
            ))
        })?;
        match &self.resizer {
            None => {
                for (o, &p) in out.iter_mut().zip(src) {
                    *o = p as f32 / 255.0;
                }
                Ok(())
            }
            Some(r) => {
                plane.clear();
                plane.extend(src.iter().map(|&p| p as f32 / 255.0));
                r.resize_plane(plane, out)
            }
        }
    }

    fn finish(&self, x: Tensor) -> Result<Tensor> {
        match &self.transform {
            None => Ok(x),
            // Deterministic transforms ignore the generator (see `with_transform`).
            Some(t) => t.apply(&x, &mut Generator::new(0)),
        }
    }
}

impl Dataset for ImageDataset {
    fn len(&self) -> usize {
        self.set.n
    }

    fn get(&self, index: usize) -> Result<Example> {
        self.check_index(index)?;
        let (h, w) = self.output_size();
        let mut out = vec![0.0f32; h * w];
        self.convert_into(index, &mut Vec::new(), &mut out)?;
        let x = self.finish(Tensor::from_vec(out, &[1, h, w])?)?;
        let y = Tensor::from_vec(vec![self.set.labels[index] as i64], &[])?;
        Ok(Example { x, y })
    }

    fn get_batch(&self, indices: &[usize]) -> Result<Batch> {
        if indices.is_empty() {
            return Err(DataError::Invalid(
                "cannot build a batch of 0 images".into(),
            ));
        }
        for &i in indices {
            self.check_index(i)?;
        }
        let (h, w) = self.output_size();
        let per = h * w;
        let mut out = vec![0.0f32; indices.len() * per];
        if per > 0 {
            if out.len() >= PARALLEL_MIN_VALUES && self.resizer.is_some() {
                out.par_chunks_mut(per)
                    .zip(indices.par_iter())
                    .try_for_each_init(Vec::new, |plane, (dst, &i)| {
                        self.convert_into(i, plane, dst)
                    })?;
            } else {
                let mut plane = Vec::new();
                for (dst, &i) in out.chunks_exact_mut(per).zip(indices) {
                    self.convert_into(i, &mut plane, dst)?;
                }
            }
        }
        let x = self.finish(Tensor::from_vec(out, &[indices.len(), 1, h, w])?)?;
        let labels: Vec<i64> = indices.iter().map(|&i| self.set.labels[i] as i64).collect();
        let y = Tensor::from_vec(labels, &[indices.len()])?;
        Ok(Batch { x, y })
    }
}

/// The book's pair of loaders over a train and a test set: the training loader shuffled
/// with `seed` (a new order every epoch), the test loader in order, both keeping the last,
/// smaller batch.
pub fn image_loaders(
    train: ImageSet,
    test: ImageSet,
    batch_size: usize,
    resize: Option<usize>,
    seed: u64,
) -> Result<(DataLoader, DataLoader)> {
    let train = ImageDataset::new(train).with_resize(resize)?;
    let test = ImageDataset::new(test).with_resize(resize)?;
    let train_iter = DataLoader::new(Arc::new(train), batch_size)?.shuffle(seed);
    let test_iter = DataLoader::new(Arc::new(test), batch_size)?;
    Ok((train_iter, test_iter))
}

/// The image classification sets the command line knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetName {
    /// Fashion-MNIST (D2L 3.5), from the data hub's `fashion_mnist/` files.
    FashionMnist,
    /// MNIST digits, from the data hub's `mnist/` files.
    Mnist,
    /// The built-in `shapes` set, generated by the code (works offline, always).
    Shapes,
}

impl DatasetName {
    /// Every name, in the order help texts list them.
    pub const ALL: [DatasetName; 3] = [
        DatasetName::FashionMnist,
        DatasetName::Mnist,
        DatasetName::Shapes,
    ];

    /// The name as typed on the command line (`fashion-mnist`, `mnist`, `shapes`).
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Mnist => "mnist",
            DatasetName::Shapes => "shapes",
        }
    }

    /// The text label of each class, by index.
    pub fn class_names(self) -> &'static [&'static str] {
        match self {
            DatasetName::FashionMnist => &FASHION_MNIST_LABELS,
            DatasetName::Mnist => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetName::Shapes => &SHAPES_CLASSES,
        }
    }

    /// The number of classes (10 for all three).
    pub fn num_classes(self) -> usize {
        self.class_names().len()
    }

    /// The data hub folder holding the set's files (`None` for the generated `shapes`).
    pub fn hub_folder(self) -> Option<&'static str> {
        match self {
            DatasetName::FashionMnist => Some("fashion_mnist"),
            DatasetName::Mnist => Some("mnist"),
            DatasetName::Shapes => None,
        }
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetName {
    type Err = DataError;

    /// Parses `fashion-mnist`, `mnist` or `shapes` (case and `-`/`_` do not matter).
    fn from_str(s: &str) -> Result<DatasetName> {
        let key = s.trim().to_ascii_lowercase().replace('_', "-");
        DatasetName::ALL
            .into_iter()
            .find(|d| d.as_str() == key)
            .ok_or_else(|| {
                let names: Vec<&str> = DatasetName::ALL.iter().map(|d| d.as_str()).collect();
                DataError::Invalid(format!(
                    "unknown data set `{s}`; expected one of: {}",
                    names.join(", ")
                ))
            })
    }
}

/// Fetches the four IDX files of `folder` through the hub and reads both splits.
fn fetch_idx_sets(hub: &DataHub, folder: &str) -> Result<(ImageSet, ImageSet)> {
    let paths = IDX_FILE_NAMES
        .iter()
        .map(|f| hub.fetch(&format!("{folder}/{f}")))
        .collect::<Result<Vec<PathBuf>>>()?;
    let train = read_idx_pair(&paths[0], &paths[1], 10)?;
    let test = read_idx_pair(&paths[2], &paths[3], 10)?;
    Ok((train, test))
}

/// The train and test [`ImageSet`]s of a named set: the hub's files for Fashion-MNIST and
/// MNIST (data dir, cache, system copies, then a download), the default 60,000 / 10,000
/// images from [`SHAPES_DATA_SEED`] for `shapes`.
pub fn load_image_sets(name: DatasetName, hub: &DataHub) -> Result<(ImageSet, ImageSet)> {
    match name {
        DatasetName::FashionMnist => fetch_idx_sets(hub, "fashion_mnist"),
        DatasetName::Mnist => fetch_idx_sets(hub, "mnist"),
        DatasetName::Shapes => Ok(shapes_sets(SHAPES_TRAIN_SIZE, SHAPES_TEST_SIZE)),
    }
}

/// D2L 3.5's `load_data_fashion_mnist(batch_size, resize)`: the training loader (shuffled
/// with `seed`) and the test loader (in order) over Fashion-MNIST, images `f32`
/// `[B, 1, 28, 28]` in `[0, 1]` (or `[B, 1, resize, resize]`), labels `i64` `[B]`. The four
/// files come through `hub`, so `--data-dir`, the cache, Debian's copies and the download
/// all apply.
pub fn load_data_fashion_mnist(
    hub: &DataHub,
    batch_size: usize,
    resize: Option<usize>,
    seed: u64,
) -> Result<(DataLoader, DataLoader)> {
    let (train, test) = fetch_idx_sets(hub, "fashion_mnist")?;
    image_loaders(train, test, batch_size, resize, seed)
}

/// Like [`load_data_fashion_mnist`], for MNIST digits (the hub's `mnist/` files).
pub fn load_data_mnist(
    hub: &DataHub,
    batch_size: usize,
    resize: Option<usize>,
    seed: u64,
) -> Result<(DataLoader, DataLoader)> {
    let (train, test) = fetch_idx_sets(hub, "mnist")?;
    image_loaders(train, test, batch_size, resize, seed)
}

/// The seed the built-in `shapes` images are generated from. The set is fixed, like a
/// downloaded one: a run's `seed` changes the shuffling (and the model's initialisation),
/// not the data.
pub const SHAPES_DATA_SEED: u64 = 0;

fn shapes_sets(n_train: usize, n_test: usize) -> (ImageSet, ImageSet) {
    (
        Shapes::generate(n_train, SHAPES_DATA_SEED),
        // Shapes::load's test stream, so the default sizes give exactly Shapes::load's sets.
        Shapes::generate(n_test, SHAPES_DATA_SEED ^ 0x7E57_7E57_7E57_7E57),
    )
}

/// Loaders over the built-in `shapes` set: `n_train` training images (shuffled with `seed`)
/// and `n_test` test images (in order), generated from [`SHAPES_DATA_SEED`] (the test images
/// from a separate stream), in the same format as [`load_data_fashion_mnist`]. Either count
/// being 0 is an error.
pub fn load_data_shapes(
    n_train: usize,
    n_test: usize,
    batch_size: usize,
    resize: Option<usize>,
    seed: u64,
) -> Result<(DataLoader, DataLoader)> {
    if n_train == 0 || n_test == 0 {
        return Err(DataError::Invalid(format!(
            "the shapes set needs at least one training and one test image, got {n_train} and {n_test}"
        )));
    }
    let (train, test) = shapes_sets(n_train, n_test);
    image_loaders(train, test, batch_size, resize, seed)
}

/// What [`load_image_classification`] actually loaded, and what to tell the user about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The set that was asked for.
    pub requested: DatasetName,
    /// The set the loaders serve (`Shapes` after a fallback).
    pub used: DatasetName,
    /// One line for the user when the set was replaced, `None` otherwise.
    pub message: Option<String>,
}

impl Notice {
    /// Whether the requested set was replaced by `shapes`.
    pub fn fell_back(&self) -> bool {
        self.requested != self.used
    }
}

impl fmt::Display for Notice {
    /// Writes the message (nothing when there was no fallback).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message.as_deref().unwrap_or(""))
    }
}

/// The one-line reason for a fallback, from the error that caused it.
fn fallback_message(name: DatasetName, err: &DataError) -> String {
    let why = match err {
        DataError::Missing { looked_in, .. } => {
            // The places of one file, as folders (the other three files live next to it).
            let mut dirs: Vec<String> = Vec::new();
            for p in looked_in {
                let d = p.parent().unwrap_or(p).display().to_string();
                if !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
            format!("not found (looked in {})", dirs.join(", "))
        }
        DataError::Download { url, msg } => {
            let msg = msg.lines().next().unwrap_or("");
            format!("not found and its download from {url} failed ({msg})")
        }
        other => format!(
            "not available ({})",
            other.to_string().lines().next().unwrap_or("")
        ),
    };
    format!("{name} {why}; training on the built-in `shapes` set instead")
}

/// Loads the train and test loaders of the named image classification set — the call
/// behind the command line's `--dataset`. With `fallback_to_shapes`, a set whose files are
/// nowhere to be had (not on disk and, offline or with the network failing, not
/// downloadable: [`DataError::Missing`] or [`DataError::Download`]) is replaced by the
/// built-in `shapes` set (60,000 / 10,000 images) and the [`Notice`] says so in one line
/// ("fashion-mnist not found (looked in ...); training on the built-in `shapes` set
/// instead"). Corrupt files, checksum mismatches and bad arguments are errors either way.
pub fn load_image_classification(
    name: DatasetName,
    hub: &DataHub,
    batch_size: usize,
    resize: Option<usize>,
    seed: u64,
    fallback_to_shapes: bool,
) -> Result<(DataLoader, DataLoader, Notice)> {
    let quiet = Notice {
        requested: name,
        used: name,
        message: None,
    };
    match load_image_sets(name, hub) {
        Ok((train, test)) => {
            let (a, b) = image_loaders(train, test, batch_size, resize, seed)?;
            Ok((a, b, quiet))
        }
        Err(e @ (DataError::Missing { .. } | DataError::Download { .. })) if fallback_to_shapes => {
            let message = fallback_message(name, &e);
            let (train, test) = shapes_sets(SHAPES_TRAIN_SIZE, SHAPES_TEST_SIZE);
            let (a, b) = image_loaders(train, test, batch_size, resize, seed)?;
            Ok((
                a,
                b,
                Notice {
                    requested: name,
                    used: DatasetName::Shapes,
                    message: Some(message),
                },
            ))
        }
        Err(e) => Err(e),
    }
}

/// D2L 4.10's house prices, fetched through the hub (`kaggle_house/kaggle_house_pred_train.csv`
/// and `..._test.csv`) and preprocessed as the book does ([`KaggleHouse::load`]).
pub fn load_kaggle_house(hub: &DataHub) -> Result<KaggleHouse> {
    let train = hub.fetch("kaggle_house/kaggle_house_pred_train.csv")?;
    let test = hub.fetch("kaggle_house/kaggle_house_pred_test.csv")?;
    KaggleHouse::load(train, test)
}

/// D2L 8.2's `load_corpus_time_machine(max_tokens)`, with the text fetched through the hub
/// (`timemachine/timemachine.txt`): the character indices and the vocabulary.
pub fn load_time_machine(hub: &DataHub, max_tokens: Option<usize>) -> Result<(Vec<usize>, Vocab)> {
    let path = hub.fetch("timemachine/timemachine.txt")?;
    load_corpus_time_machine(path, max_tokens)
}
