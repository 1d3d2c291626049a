//! The generated segmentation set (D2L 13.9 offline): images with per-pixel classes in
//! Pascal VOC's layout, read by [`crate::voc`]'s reader, so that FCN (13.11) trains
//! offline.
//!
//! [`generate_segmentation_set`] writes the same layout (with the photos as lossless
//! **PNG**, `JPEGImages/<id>.png`, so the pixels read back are exactly the rendered ones):
//!
//! ```text
//! <root>/ImageSets/Segmentation/train.txt   ids train_00000, train_00001, …
//! <root>/ImageSets/Segmentation/val.txt     ids val_00000, …
//! <root>/JPEGImages/<id>.png
//! <root>/SegmentationClass/<id>.png         RGB, pixel colour VOC_COLORMAP[class]
//! <root>/spec.txt                           the spec it was made from; written last
//! ```
//!
//! Every image shows 1 to [`SegmentationSetSpec::max_objects`] objects of the classes of
//! [`GENERATED_CLASSES`] (background, then a disc, a square and a triangle, labelled with
//! the first VOC palette colours) with random size, position and colour jitter on a
//! textured background (a two-colour gradient with stripes and grain). Objects may overlap;
//! later ones are drawn on top, and the label of every pixel is the class of the object
//! seen there, exactly. The default size, 160×240 with crop 128×192 (the book's 320×480 and
//! 320×480 crop scaled by one half and 0.4), keeps FCN training on a CPU within minutes.
//!
//! Generation is deterministic: image `i` of a split depends only on the seed, the split
//! and `i` (a local SplitMix64 stream and only `+ - * /` on floats), so equal specs give
//! equal files on every machine.

use super::{io_err, write_atomic, write_png_rgb};
use crate::splitmix::{mix64, Rng};
use crate::voc::{load_voc_from, VocLoaders, VOC_COLORMAP};
use d2l_data::{DataError, Result};
use d2l_tensor::Tensor;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The classes of the generated set; class `k` is labelled with `VOC_COLORMAP[k]`.
pub const GENERATED_CLASSES: [&str; 4] = ["background", "disc", "square", "triangle"];
/// The version of the generator's drawing (part of the stamp).
pub const SEG_GENERATOR_VERSION: u32 = 1;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentationSetSpec {
    /// Training images (default 300).
    pub num_train: usize,
    /// Validation images (default 60).
    pub num_val: usize,
    /// Image height (default 160).
    pub height: usize,
    /// Image width (default 240).
    pub width: usize,
    /// Most objects per image (default 4); each image gets 1 to this many.
    pub max_objects: usize,
    /// Seed of everything random.
    pub seed: u64,
}

impl Default for SegmentationSetSpec {
    fn default() -> Self {
        SegmentationSetSpec {
            num_train: 300,
            num_val: 60,
            height: 160,
            width: 240,
            max_objects: 4,
            seed: 0x0013_0009,
        }
    }
}

/// The crop that goes with the default generated set: (128, 192).
pub const GENERATED_CROP: (usize, usize) = (128, 192);

impl SegmentationSetSpec {
    /// Checks the ranges: at least one image per split, sides 16–4096, 1–32 objects.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DataError::Invalid(format!("segmentation set spec: {m}")));
        if self.num_train == 0 || self.num_val == 0 {
            return bad(format!(
                "need at least one training and one validation image, got {} and {}",
                self.num_train, self.num_val
            ));
        }
        if !(16..=4096).contains(&self.height) || !(16..=4096).contains(&self.width) {
            return bad(format!(
                "height and width must be 16..=4096, got {}×{}",
                self.height, self.width
            ));
        }
        if !(1..=32).contains(&self.max_objects) {
            return bad(format!(
                "max_objects must be 1..=32, got {}",
                self.max_objects
            ));
        }
        Ok(())
    }

    /// The text of the `spec.txt` stamp.
    pub fn stamp(&self) -> String {
        format!(
            "d2l-rs segmentation set\ngenerator_version={SEG_GENERATOR_VERSION}\nnum_train={}\nnum_val={}\nheight={}\nwidth={}\nmax_objects={}\nseed={}\n",
            self.num_train, self.num_val, self.height, self.width, self.max_objects, self.seed
        )
    }

    /// The id of image `index` of a split (`train_00000`, `val_00012`, …).
    pub fn id(&self, is_train: bool, index: usize) -> String {
        let n = if is_train {
            self.num_train
        } else {
            self.num_val
        };
        let width = n.saturating_sub(1).to_string().len().max(5);
        let split = if is_train { "train" } else { "val" };
        format!("{split}_{index:0width$}")
    }
}

/// One rendered image and its exact labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedSegImage {
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
    /// Interleaved RGB pixels, row by row.
    pub pixels: Vec<u8>,
    /// Class per pixel (index into [`GENERATED_CLASSES`]), row by row.
    pub classes: Vec<u8>,
}

impl RenderedSegImage {
    /// The image as `uint8` `(3, H, W)` (what reading its PNG gives).
    pub fn image_tensor(&self) -> Result<Tensor> {
        Ok(interleaved_to_chw(&self.pixels, self.height, self.width)?)
    }

    /// The label image as `uint8` `(3, H, W)` palette colours.
    pub fn label_rgb(&self) -> Vec<u8> {
        self.classes
            .iter()
            .flat_map(|&c| VOC_COLORMAP[c as usize])
            .collect()
    }

    /// The classes as `int64` `(H, W)` (what [`voc_label_indices`] gives for the label).
    pub fn class_tensor(&self) -> Result<Tensor> {
        let v: Vec<i64> = self.classes.iter().map(|&c| c as i64).collect();
        Ok(Tensor::from_vec(v, &[self.height, self.width])?)
    }
}

fn interleaved_to_chw(px: &[u8], h: usize, w: usize) -> d2l_tensor::Result<Tensor> {
    let n = h * w;
    let mut chw = vec![0u8; n * 3];
    for (p, c3) in px.chunks_exact(3).enumerate() {
        for c in 0..3 {
            chw[c * n + p] = c3[c];
        }
    }
    Tensor::from_vec(chw, &[3, h, w])
}

fn image_seed(seed: u64, is_train: bool, index: usize) -> u64 {
    let split = if is_train {
        0x7365_6774_7261_696e
    } else {
        0x7365_6776_616c_0002
    };
    mix64(mix64(seed ^ split).wrapping_add((index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

/// Renders image `index` of a split of `spec`: the pixels and classes
/// [`generate_segmentation_set`] writes.
pub fn render_segmentation_image(
    spec: &SegmentationSetSpec,
    is_train: bool,
    index: usize,
) -> Result<RenderedSegImage> {
    spec.validate()?;
    let (h, w) = (spec.height, spec.width);
    let mut rng = Rng(image_seed(spec.seed, is_train, index));
    // Background: a gradient between two colours along a random direction, plus stripes.
    let (c0, c1) = (rng.colour(), rng.colour());
    let (dx, dy) = (rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0));
    let stripe_period = 4 + rng.below(12);
    let stripe_amp = rng.uniform(0.0, 30.0);
    let vertical = rng.below(2) == 0;
    let norm = (dx * dx + dy * dy).sqrt().max(1e-3);
    let mut px = vec![[0f64; 3]; h * w];
    for y in 0..h {
        for x in 0..w {
            let (u, v) = (x as f64 / w as f64 - 0.5, y as f64 / h as f64 - 0.5);
            let t = ((u * dx + v * dy) / norm + 0.75) / 1.5;
            let t = t.clamp(0.0, 1.0);
            let k = if vertical { x } else { y };
            let s = if (k / stripe_period).is_multiple_of(2) {
                stripe_amp
            } else {
                -stripe_amp
            };
            let p = &mut px[y * w + x];
            for c in 0..3 {
                p[c] = c0[c] + (c1[c] - c0[c]) * t + s;
            }
        }
    }
    // Per class 1..=3, the (low, high) range of each RGB channel of the object's colour.
    const COLOURS: [[(f64, f64); 3]; 3] = [
        [(190.0, 255.0), (150.0, 220.0), (0.0, 70.0)],
        [(0.0, 70.0), (60.0, 150.0), (170.0, 255.0)],
        [(170.0, 255.0), (0.0, 60.0), (40.0, 120.0)],
    ];
    let mut classes = vec![0u8; h * w];
    let n = 1 + rng.below(spec.max_objects);
    let short = h.min(w) as f64;
    for _ in 0..n {
        let class = 1 + rng.below(3);
        let base: [f64; 3] = COLOURS[class - 1].map(|(lo, hi)| rng.uniform(lo, hi));
        let r = rng.uniform(0.12, 0.3) * short;
        let cx = rng.uniform(0.0, w as f64);
        let cy = rng.uniform(0.0, h as f64);
        let aspect = rng.uniform(0.7, 1.4);
        let (rx, ry) = (r * aspect, r / aspect);
        let flip = rng.below(2) == 0;
        let x0 = ((cx - rx).floor().max(0.0)) as usize;
        let x1 = ((cx + rx).ceil().min(w as f64)) as usize;
        let y0 = ((cy - ry).floor().max(0.0)) as usize;
        let y1 = ((cy + ry).ceil().min(h as f64)) as usize;
        for y in y0..y1 {
            for x in x0..x1 {
                let u = (x as f64 + 0.5 - cx) / rx;
                let v = (y as f64 + 0.5 - cy) / ry;
                let inside = match class {
                    1 => u * u + v * v <= 1.0,
                    2 => u.abs() <= 0.8 && v.abs() <= 0.8,
                    _ => {
                        // An isosceles triangle, apex up (or down when flipped).
                        let v = if flip { -v } else { v };
                        (-0.9..=0.9).contains(&v) && u.abs() <= (v + 0.9) / 1.8 * 0.95
                    }
                };
                if inside {
                    let shade = 0.85 + 0.15 * (1.0 - (u * u + v * v) / 2.0);
                    px[y * w + x] = base.map(|c| c * shade);
                    classes[y * w + x] = class as u8;
                }
            }
        }
    }
    // Grain everywhere.
    for p in px.iter_mut() {
        for c in p.iter_mut() {
            *c += rng.uniform(-8.0, 8.0);
        }
    }
    let pixels = px
        .iter()
        .flat_map(|p| p.map(|v| v.round().clamp(0.0, 255.0) as u8))
        .collect();
    Ok(RenderedSegImage {
        height: h,
        width: w,
        pixels,
        classes,
    })
}

/// What [`generate_segmentation_set`] and [`ensure_generated`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentationSetInfo {
    /// The set's root (a VOC-layout folder).
    pub root: PathBuf,
    /// Training images.
    pub num_train: usize,
    /// Validation images.
    pub num_val: usize,
    /// Whether the images were generated now (false: an existing set was reused).
    pub generated: bool,
}

/// Renders the set into `root` in the VOC layout (module docs). The `spec.txt` stamp is
/// removed first and written last, so an interrupted run never looks complete. Files of
/// other names in the folders are left alone.
pub fn generate_segmentation_set(
    root: &Path,
    spec: &SegmentationSetSpec,
) -> Result<SegmentationSetInfo> {
    spec.validate()?;
    let stamp = root.join("spec.txt");
    if stamp.exists() {
        std::fs::remove_file(&stamp).map_err(io_err(&stamp))?;
    }
    let img_dir = root.join("JPEGImages");
    let lab_dir = root.join("SegmentationClass");
    let sets = root.join("ImageSets").join("Segmentation");
    for d in [&img_dir, &lab_dir, &sets] {
        std::fs::create_dir_all(d).map_err(io_err(d))?;
    }
    for (is_train, n) in [(true, spec.num_train), (false, spec.num_val)] {
        (0..n).into_par_iter().try_for_each(|i| -> Result<()> {
            let r = render_segmentation_image(spec, is_train, i)?;
            let id = spec.id(is_train, i);
            write_png_rgb(
                &r.pixels,
                r.height,
                r.width,
                &img_dir.join(format!("{id}.png")),
            )?;
            write_png_rgb(
                &r.label_rgb(),
                r.height,
                r.width,
                &lab_dir.join(format!("{id}.png")),
            )?;
            Ok(())
        })?;
        let mut list = String::new();
        for i in 0..n {
            list.push_str(&spec.id(is_train, i));
            list.push('\n');
        }
        let name = if is_train { "train.txt" } else { "val.txt" };
        write_atomic(&sets.join(name), list.as_bytes())?;
    }
    write_atomic(&stamp, spec.stamp().as_bytes())?;
    Ok(SegmentationSetInfo {
        root: root.to_path_buf(),
        num_train: spec.num_train,
        num_val: spec.num_val,
        generated: true,
    })
}

/// Generates the set into `root` unless a complete one from the same spec is already there
/// (as recorded in `root/spec.txt`).
pub fn ensure_generated(root: &Path, spec: &SegmentationSetSpec) -> Result<SegmentationSetInfo> {
    spec.validate()?;
    let same = std::fs::read_to_string(root.join("spec.txt")).is_ok_and(|s| s == spec.stamp());
    let sets = root.join("ImageSets").join("Segmentation");
    if same && sets.join("train.txt").is_file() && sets.join("val.txt").is_file() {
        return Ok(SegmentationSetInfo {
            root: root.to_path_buf(),
            num_train: spec.num_train,
            num_val: spec.num_val,
            generated: false,
        });
    }
    generate_segmentation_set(root, spec)
}

/// Makes sure the generated set is in `root` and returns its loaders at `crop`
/// (use [`GENERATED_CROP`] with the default spec).
pub fn load_segmentation_set(
    root: &Path,
    spec: &SegmentationSetSpec,
    batch_size: usize,
    crop: (usize, usize),
) -> Result<VocLoaders> {
    ensure_generated(root, spec)?;
    load_voc_from(root, batch_size, crop)
}
