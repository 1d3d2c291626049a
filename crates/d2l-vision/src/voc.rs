//! Semantic segmentation data (D2L 13.9): Pascal VOC2012's reader, colour map, random
//! crops, data set and loaders.
//!
//! # The VOC layout
//!
//! ```text
//! <voc_dir>/ImageSets/Segmentation/train.txt   one image id a line (val.txt likewise)
//! <voc_dir>/JPEGImages/<id>.jpg                 the photo (a `<id>.png` is accepted too)
//! <voc_dir>/SegmentationClass/<id>.png          the label: one palette colour per class
//! ```
//!
//! [`read_voc_images`] reads a split into `uint8` `(3, H, W)` images and labels (palette
//! PNGs are read as RGB, as the book's `read_image(..., mode=RGB)`). [`voc_label_indices`]
//! maps label colours to class indices through [`VOC_COLORMAP`]. As in the book, whose
//! lookup table is zero everywhere but at the 21 palette colours, **any colour outside the
//! palette maps to class 0 (background)** — including VOC's "void" boundary colour
//! (224, 224, 192), which marks object outlines and "difficult" pixels.
//!
//! [`VocSegDataset`] is the book's `VOCSegDataset`: it drops images smaller than the crop
//! (the book prints `read 1114 examples` for VOC's training split at 320×480, see
//! [`VocSegDataset::len`] and [`VocSegDataset::num_dropped`]), normalises images with the
//! ImageNet mean/std after dividing by 255, and takes a fresh random crop of image and label
//! on every `get`, drawn from [`example_generator`]`(seed, epoch, index)` (call
//! [`VocSegDataset::set_epoch`] before each epoch for new crops). [`load_voc`] fetches
//! `VOCtrainval_11-May-2012.tar` through the data hub and returns the two loaders; both drop
//! their last incomplete batch, as the book's.
//!
//! # The generated set
//!
//! [`crate::generated::segmentation`] writes a set in this layout that the same reader
//! reads, so FCN trains offline.

use crate::image::read_image;
use crate::transforms::{example_generator, IMAGENET_MEAN, IMAGENET_STD};
use d2l_data::hub::{self, DataHub, RemoteFile};
use d2l_data::loader::{stack_examples, Batch, DataLoader, Dataset, Example};
use d2l_data::{DataError, Result};
use d2l_tensor::{DType, Generator, Tensor};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The registered name of the VOC2012 archive in the data hub.
pub const VOC_HUB_NAME: &str = "voc2012/VOCtrainval_11-May-2012.tar";
/// The SHA-1 of `VOCtrainval_11-May-2012.tar`.
pub const VOC_SHA1: &str = "4e443f8a2eca6b1dac8a6c57641b67dd40621a49";
/// The folder inside the archive that holds the VOC layout.
pub const VOC_FOLDER: &str = "VOCdevkit/VOC2012";

/// The label palette in class order (D2L's `VOC_COLORMAP`).
pub const VOC_COLORMAP: [[u8; 3]; 21] = [
    [0, 0, 0],
    [128, 0, 0],
    [0, 128, 0],
    [128, 128, 0],
    [0, 0, 128],
    [128, 0, 128],
    [0, 128, 128],
    [128, 128, 128],
    [64, 0, 0],
    [192, 0, 0],
    [64, 128, 0],
    [192, 128, 0],
    [64, 0, 128],
    [192, 0, 128],
    [64, 128, 128],
    [192, 128, 128],
    [0, 64, 0],
    [128, 64, 0],
    [0, 192, 0],
    [128, 192, 0],
    [0, 64, 128],
];

/// The class names (D2L's `VOC_CLASSES`).
pub const VOC_CLASSES: [&str; 21] = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "potted plant",
    "sheep",
    "sofa",
    "train",
    "tv/monitor",
];

/// VOC's "void" colour (label 255 in the palette PNGs: object outlines, difficult pixels).
/// Outside [`VOC_COLORMAP`], so it maps to class 0 like every other unknown colour.
pub const VOC_VOID_COLOR: [u8; 3] = [224, 224, 192];

/// The key of an RGB colour in the lookup table: `(R * 256 + G) * 256 + B`.
pub fn colormap_key(rgb: [u8; 3]) -> usize {
    (rgb[0] as usize * 256 + rgb[1] as usize) * 256 + rgb[2] as usize
}

/// D2L's `voc_colormap2label`: a table of 256³ entries from `(R * 256 + G) * 256 + B` to
/// the class index, 0 for every colour outside the palette. (A `Vec<u8>` of 16 MiB rather
/// than the book's 128 MiB `int64` tensor; [`voc_label_indices`] does not need it.)
pub fn voc_colormap2label() -> Vec<u8> {
    let mut table = vec![0u8; 256 * 256 * 256];
    for (i, c) in VOC_COLORMAP.iter().enumerate() {
        table[colormap_key(*c)] = i as u8;
    }
    table
}

/// The class of one label colour: its index in [`VOC_COLORMAP`], 0 when it is not there
/// (as the book's lookup table gives).
pub fn voc_class_of(rgb: [u8; 3]) -> usize {
    VOC_COLORMAP.iter().position(|c| *c == rgb).unwrap_or(0)
}

fn class_indices(label: &Tensor) -> Result<(Vec<u8>, usize, usize)> {
    let s = label.shape().to_vec();
    if s.len() != 3 || s[0] != 3 || label.dtype() != DType::U8 {
        return Err(DataError::Invalid(format!(
            "voc_label_indices: expected a uint8 RGB label of shape (3, H, W), got {:?} {}",
            s,
            label.dtype()
        )));
    }
    let (h, w) = (s[1], s[2]);
    let px = label.contiguous()?.to_vec::<u8>();
    let n = h * w;
    // The 21 palette keys, sorted, for a binary search per pixel.
    let mut keys: Vec<(usize, u8)> = VOC_COLORMAP
        .iter()
        .enumerate()
        .map(|(i, c)| (colormap_key(*c), i as u8))
        .collect();
    keys.sort_unstable();
    let out = (0..n)
        .map(|p| {
            let k = colormap_key([px[p], px[n + p], px[2 * n + p]]);
            keys.binary_search_by_key(&k, |e| e.0)
                .map(|i| keys[i].1)
                .unwrap_or(0)
        })
        .collect();
    Ok((out, h, w))
}

/// D2L's `voc_label_indices`: an RGB label `uint8` `(3, H, W)` to class indices `int64`
/// `(H, W)`. Colours outside [`VOC_COLORMAP`] (VOC's void boundary (224, 224, 192)
/// included) map to 0, background, as the book's lookup table does.
pub fn voc_label_indices(label: &Tensor) -> Result<Tensor> {
    let (idx, h, w) = class_indices(label)?;
    let v: Vec<i64> = idx.into_iter().map(i64::from).collect();
    Ok(Tensor::from_vec(v, &[h, w])?)
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

fn format_err(path: &Path, msg: String) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        msg,
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The ids listed in `voc_dir/ImageSets/Segmentation/{train,val}.txt`, with their lines.
pub fn read_voc_ids(voc_dir: &Path, is_train: bool) -> Result<Vec<String>> {
    let split = if is_train { "train.txt" } else { "val.txt" };
    let file = voc_dir.join("ImageSets").join("Segmentation").join(split);
    let text = std::fs::read_to_string(&file).map_err(io_err(&file))?;
    let mut ids = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let id = line.trim();
        if id.is_empty() {
            continue;
        }
        if id == "." || id == ".." || id.contains(['/', '\\', '\0']) {
            return Err(format_err(
                &file,
                format!("line {}: `{id}` is not a plain image id", i + 1),
            ));
        }
        ids.push(id.to_string());
    }
    if ids.is_empty() {
        return Err(format_err(&file, "the id list names no image".to_string()));
    }
    Ok(ids)
}

/// D2L's `read_voc_images`: the images (`JPEGImages/<id>.jpg`, or `<id>.png`) and labels
/// (`SegmentationClass/<id>.png`, read as RGB) of the ids listed in
/// `ImageSets/Segmentation/{train,val}.txt`, as `uint8` `(3, H, W)` tensors in list order.
///
/// Errors name the id list, the id and the files: a missing list, an id whose image or
/// label is missing or unreadable, and an image and label of different sizes.
pub fn read_voc_images(voc_dir: &Path, is_train: bool) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
    let ids = read_voc_ids(voc_dir, is_train)?;
    let list = voc_dir
        .join("ImageSets")
        .join("Segmentation")
        .join(if is_train { "train.txt" } else { "val.txt" });
    let read = |what: &str, p: &Path, id: &str| -> Result<Tensor> {
        read_image(p).map_err(|e| match e {
            DataError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                format_err(
                    &list,
                    format!("id `{id}`: the {what} {} does not exist", p.display()),
                )
            }
            other => format_err(&list, format!("id `{id}`: cannot read the {what}: {other}")),
        })
    };
    let pairs: Vec<Result<(Tensor, Tensor)>> = ids
        .par_iter()
        .map(|id| {
            let jpg = voc_dir.join("JPEGImages").join(format!("{id}.jpg"));
            let png = voc_dir.join("JPEGImages").join(format!("{id}.png"));
            let img_path = if !jpg.exists() && png.exists() {
                png
            } else {
                jpg
            };
            let img = read("image", &img_path, id)?;
            let lab_path = voc_dir.join("SegmentationClass").join(format!("{id}.png"));
            let lab = read("label", &lab_path, id)?;
            if img.shape()[1..] != lab.shape()[1..] {
                return Err(format_err(
                    &list,
                    format!(
                        "id `{id}`: the image {} is {}×{} but the label {} is {}×{}",
                        img_path.display(),
                        img.shape()[2],
                        img.shape()[1],
                        lab_path.display(),
                        lab.shape()[2],
                        lab.shape()[1]
                    ),
                ));
            }
            Ok((img, lab))
        })
        .collect();
    let mut images = Vec::with_capacity(pairs.len());
    let mut labels = Vec::with_capacity(pairs.len());
    for p in pairs {
        let (i, l) = p?;
        images.push(i);
        labels.push(l);
    }
    Ok((images, labels))
}

// ---------------------------------------------------------------------------------------
// Random crop
// ---------------------------------------------------------------------------------------

/// The top-left corner of torchvision's `RandomCrop.get_params` for an `h × w` window out
/// of an `height × width` image: `(0, 0)` without a draw when the sizes are equal, else
/// `top = randint(0, height - h + 1)` then `left = randint(0, width - w + 1)`. A window
/// larger than the image (or empty) is an error.
pub fn rand_crop_params(
    height: usize,
    width: usize,
    h: usize,
    w: usize,
    rng: &mut Generator,
) -> Result<(usize, usize)> {
    if h == 0 || w == 0 {
        return Err(DataError::Invalid(format!(
            "voc_rand_crop: the crop size must be positive, got {h}×{w}"
        )));
    }
    if h > height || w > width {
        return Err(DataError::Invalid(format!(
            "voc_rand_crop: the crop {h}×{w} (height×width) is larger than the {height}×{width} image"
        )));
    }
    if h == height && w == width {
        return Ok((0, 0));
    }
    let top = rng.below((height - h + 1) as u64) as usize;
    let left = rng.below((width - w + 1) as u64) as usize;
    Ok((top, left))
}

/// Crops rows `top..top+h`, columns `left..left+w` of the last two dimensions.
fn crop_last2(t: &Tensor, top: usize, left: usize, h: usize, w: usize) -> Result<Tensor> {
    let s = t.shape().to_vec();
    let (hh, ww) = (s[s.len() - 2], s[s.len() - 1]);
    let planes: usize = s[..s.len() - 2].iter().product();
    let mut shape = s.clone();
    let k = shape.len();
    shape[k - 2] = h;
    shape[k - 1] = w;
    fn go<T: d2l_tensor::Element + Copy>(
        v: Vec<T>,
        planes: usize,
        (hh, ww): (usize, usize),
        (top, left, h, w): (usize, usize, usize, usize),
    ) -> Vec<T> {
        let mut out = Vec::with_capacity(planes * h * w);
        for p in 0..planes {
            for y in top..top + h {
                let row = p * hh * ww + y * ww;
                out.extend_from_slice(&v[row + left..row + left + w]);
            }
        }
        out
    }
    let c = t.contiguous()?;
    let win = (top, left, h, w);
    Ok(match t.dtype() {
        DType::U8 => Tensor::from_vec(go(c.to_vec::<u8>(), planes, (hh, ww), win), &shape)?,
        DType::I64 => Tensor::from_vec(go(c.to_vec::<i64>(), planes, (hh, ww), win), &shape)?,
        _ => {
            let f = c.to_dtype(DType::F32)?.to_vec::<f32>();
            Tensor::from_vec(go(f, planes, (hh, ww), win), &shape)?.to_dtype(t.dtype())?
        }
    })
}

/// D2L's `voc_rand_crop`: one random `height × width` window (see [`rand_crop_params`])
/// cut from both the image `(C, H, W)` and its label (`(C', H, W)` or `(H, W)`), so pixels
/// and labels stay aligned. Different sizes of image and label, or a crop larger than the
/// image, are errors.
pub fn voc_rand_crop(
    feature: &Tensor,
    label: &Tensor,
    height: usize,
    width: usize,
    rng: &mut Generator,
) -> Result<(Tensor, Tensor)> {
    let fs = feature.shape();
    let ls = label.shape();
    if fs.len() < 2 || ls.len() < 2 || fs[fs.len() - 2..] != ls[ls.len() - 2..] {
        return Err(DataError::Invalid(format!(
            "voc_rand_crop: the image {fs:?} and label {ls:?} must share their last two (H, W) dimensions"
        )));
    }
    let (hh, ww) = (fs[fs.len() - 2], fs[fs.len() - 1]);
    let (top, left) = rand_crop_params(hh, ww, height, width, rng)?;
    Ok((
        crop_last2(feature, top, left, height, width)?,
        crop_last2(label, top, left, height, width)?,
    ))
}

// ---------------------------------------------------------------------------------------
// Data set and loaders
// ---------------------------------------------------------------------------------------

struct Item {
    h: usize,
    w: usize,
    /// Normalised image, `(3, h, w)` row-major.
    x: Vec<f32>,
    /// Class per pixel, `(h, w)`.
    y: Vec<u8>,
}

/// D2L's `VOCSegDataset`: images at least as large as the crop, normalised, each `get`
/// returning a fresh random crop: `x` `f32` `(3, h, w)` and `y` `int64` `(h, w)` class
/// indices (see the module docs).
pub struct VocSegDataset {
    items: Vec<Item>,
    crop: (usize, usize),
    seed: u64,
    epoch: Arc<AtomicU64>,
    dropped: usize,
}

impl std::fmt::Debug for VocSegDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VocSegDataset")
            .field("examples", &self.items.len())
            .field("dropped", &self.dropped)
            .field("crop", &self.crop)
            .field("seed", &self.seed)
            .field("epoch", &self.epoch())
            .finish()
    }
}

impl VocSegDataset {
    /// A data set from `uint8` `(3, H, W)` images and RGB labels of the same sizes
    /// (what [`read_voc_images`] returns), cropping `crop = (height, width)` windows, with
    /// the random crops seeded by `seed`. Images smaller than the crop in either side are
    /// dropped ([`VocSegDataset::num_dropped`]); when that drops every image the result is
    /// an error saying so, as are an empty input and mismatched images and labels.
    pub fn new(
        images: Vec<Tensor>,
        labels: Vec<Tensor>,
        crop: (usize, usize),
        seed: u64,
    ) -> Result<VocSegDataset> {
        if images.len() != labels.len() {
            return Err(DataError::Invalid(format!(
                "VocSegDataset: {} images but {} labels",
                images.len(),
                labels.len()
            )));
        }
        if images.is_empty() {
            return Err(DataError::Invalid("VocSegDataset: no images".into()));
        }
        if crop.0 == 0 || crop.1 == 0 {
            return Err(DataError::Invalid(format!(
                "VocSegDataset: the crop size must be positive, got {}×{}",
                crop.0, crop.1
            )));
        }
        let total = images.len();
        let kept: Vec<(usize, &Tensor, &Tensor)> = images
            .iter()
            .zip(&labels)
            .enumerate()
            .filter(|(_, (img, _))| {
                let s = img.shape();
                s.len() == 3 && s[1] >= crop.0 && s[2] >= crop.1
            })
            .map(|(i, (a, b))| (i, a, b))
            .collect();
        if kept.is_empty() {
            let largest = images
                .iter()
                .filter(|t| t.shape().len() == 3)
                .map(|t| (t.shape()[1], t.shape()[2]))
                .max()
                .unwrap_or((0, 0));
            return Err(DataError::Invalid(format!(
                "VocSegDataset: the crop {}×{} (height×width) is larger than every one of the {total} images (e.g. {}×{}); no example is left",
                crop.0, crop.1, largest.0, largest.1
            )));
        }
        let items = kept
            .par_iter()
            .map(|&(i, img, lab)| {
                let s = img.shape();
                if s[0] != 3 || img.dtype() != DType::U8 {
                    return Err(DataError::Invalid(format!(
                        "VocSegDataset: image {i} must be uint8 (3, H, W), got {s:?} {}",
                        img.dtype()
                    )));
                }
                if lab.shape() != s {
                    return Err(DataError::Invalid(format!(
                        "VocSegDataset: image {i} is {s:?} but its label is {:?}",
                        lab.shape()
                    )));
                }
                let (h, w) = (s[1], s[2]);
                let px = img.contiguous()?.to_vec::<u8>();
                let n = h * w;
                let x = px
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| {
                        let c = k / n;
                        (v as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
                    })
                    .collect();
                let (y, _, _) = class_indices(lab)?;
                Ok(Item { h, w, x, y })
            })
            .collect::<Result<Vec<Item>>>()?;
        Ok(VocSegDataset {
            dropped: total - items.len(),
            items,
            crop,
            seed,
            epoch: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Reads a split of a VOC-layout folder ([`read_voc_images`]) into a data set.
    pub fn from_dir(
        voc_dir: &Path,
        is_train: bool,
        crop: (usize, usize),
        seed: u64,
    ) -> Result<VocSegDataset> {
        let (images, labels) = read_voc_images(voc_dir, is_train)?;
        VocSegDataset::new(images, labels, crop, seed)
    }

    /// Images dropped for being smaller than the crop.
    pub fn num_dropped(&self) -> usize {
        self.dropped
    }

    /// The crop size `(height, width)`.
    pub fn crop_size(&self) -> (usize, usize) {
        self.crop
    }

    /// Sets the epoch whose random crops the next `get` calls use.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// A shared handle on the epoch counter.
    pub fn epoch_handle(&self) -> Arc<AtomicU64> {
        self.epoch.clone()
    }

    fn example(&self, index: usize, epoch: u64) -> Result<Example> {
        let it = self.items.get(index).ok_or_else(|| {
            DataError::Invalid(format!(
                "index {index} is out of range for a data set of {} examples",
                self.items.len()
            ))
        })?;
        let (ch, cw) = self.crop;
        let mut rng = example_generator(self.seed, epoch, index as u64);
        let (top, left) = rand_crop_params(it.h, it.w, ch, cw, &mut rng)?;
        let mut x = Vec::with_capacity(3 * ch * cw);
        for c in 0..3 {
            for yy in top..top + ch {
                let row = c * it.h * it.w + yy * it.w;
                x.extend_from_slice(&it.x[row + left..row + left + cw]);
            }
        }
        let mut y = Vec::with_capacity(ch * cw);
        for yy in top..top + ch {
            let row = yy * it.w;
            y.extend(it.y[row + left..row + left + cw].iter().map(|&v| v as i64));
        }
        Ok(Example {
            x: Tensor::from_vec(x, &[3, ch, cw])?,
            y: Tensor::from_vec(y, &[ch, cw])?,
        })
    }
}

impl Dataset for VocSegDataset {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn get(&self, index: usize) -> Result<Example> {
        self.example(index, self.epoch())
    }

    fn get_batch(&self, indices: &[usize]) -> Result<Batch> {
        let epoch = self.epoch();
        let ex = indices
            .par_iter()
            .map(|&i| self.example(i, epoch))
            .collect::<Result<Vec<_>>>()?;
        stack_examples(&ex, indices)
    }
}

/// The two loaders of [`load_voc`], with their data sets (to set the crop epoch).
#[derive(Debug)]
pub struct VocLoaders {
    /// Training batches, shuffled, last incomplete batch dropped.
    pub train: DataLoader,
    /// Validation batches in order, last incomplete batch dropped.
    pub val: DataLoader,
    /// The training data set.
    pub train_set: Arc<VocSegDataset>,
    /// The validation data set.
    pub val_set: Arc<VocSegDataset>,
}

impl VocLoaders {
    /// Sets the crop epoch of both data sets (call before iterating epoch `epoch`, e.g.
    /// `l.set_epoch(e); for b in l.train.iter_epoch(e) { .. }`).
    pub fn set_epoch(&self, epoch: u64) {
        self.train_set.set_epoch(epoch);
        self.val_set.set_epoch(epoch);
    }
}

/// Loaders over two data sets: training shuffled, both with `drop_last` (as the book's).
/// The shuffle and crop seeds come from the engine's global generator, so `manual_seed`
/// makes them reproducible.
pub fn voc_loaders(
    train: VocSegDataset,
    val: VocSegDataset,
    batch_size: usize,
) -> Result<VocLoaders> {
    let seed = d2l_tensor::random::with_global(|g| g.next_u64());
    let train_set = Arc::new(train);
    let val_set = Arc::new(val);
    let train = DataLoader::new(train_set.clone(), batch_size)?
        .shuffle(seed)
        .drop_last(true);
    let val = DataLoader::new(val_set.clone(), batch_size)?.drop_last(true);
    Ok(VocLoaders {
        train,
        val,
        train_set,
        val_set,
    })
}

/// D2L's `load_data_voc` on a VOC-layout folder (VOC2012 or a generated set): both splits
/// cropped to `crop = (height, width)`, crop seeds drawn from the global generator.
pub fn load_voc_from(
    voc_dir: &Path,
    batch_size: usize,
    crop: (usize, usize),
) -> Result<VocLoaders> {
    let seed = d2l_tensor::random::with_global(|g| g.next_u64());
    let train = VocSegDataset::from_dir(voc_dir, true, crop, seed)?;
    let val = VocSegDataset::from_dir(voc_dir, false, crop, seed ^ 0x7661_6c00)?;
    voc_loaders(train, val, batch_size)
}

/// The VOC2012 archive as the hub fetches it: the registry's entry if one is registered,
/// else a [`RemoteFile`] with [`VOC_SHA1`].
pub fn voc_file() -> RemoteFile {
    match hub::entry(VOC_HUB_NAME) {
        Ok(e) => RemoteFile::from(e),
        Err(_) => RemoteFile::new(
            VOC_HUB_NAME,
            "http://d2l-data.s3-accelerate.amazonaws.com/VOCtrainval_11-May-2012.tar",
            Some(VOC_SHA1),
        ),
    }
}

/// The extracted `VOCdevkit/VOC2012`, fetched and unpacked through the hub if needed (or
/// `<data dir>/voc2012/VOCdevkit/VOC2012` unpacked by hand).
pub fn voc_dir(hub: &DataHub) -> Result<PathBuf> {
    hub.fetch_file_and_extract(&voc_file(), VOC_FOLDER)
}

/// D2L's `load_data_voc(batch_size, crop_size)`: fetches VOC2012 through the hub and
/// returns the loaders (the book uses crop (320, 480): 1114 training and 1078 validation
/// examples are kept).
pub fn load_voc(hub: &DataHub, batch_size: usize, crop: (usize, usize)) -> Result<VocLoaders> {
    load_voc_from(&voc_dir(hub)?, batch_size, crop)
}
