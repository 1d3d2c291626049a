//! The generated detection set (D2L 13.6 offline): images with 1 to 64 objects of up to
//! four classes, written in the banana set's layout so that
//! [`read_detection_dir`](crate::bananas::read_detection_dir) reads it.
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
//! Every object's visible pixels are known ([`RenderedImage::owner`]), so the same images
//! serve instance segmentation ([`RenderedImage::instance_masks`]).

use super::{io_err, is_generated_name, write_atomic, write_png_rgb};
use crate::bananas::{loaders, read_detection_dir, DetectionDataset, LABEL_HEADER};
use crate::detection::box_iou_pair;
use crate::splitmix::{mix64, Rng};
use d2l_data::loader::{DataLoader, Dataset, Example};
use d2l_data::{DataError, Result};
use d2l_tensor::Tensor;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The classes of the generated set, by index (a spec uses the first `num_classes`).
pub const DETECTION_CLASSES: [&str; 4] = ["banana", "blue rectangle", "red triangle", "green ring"];
/// The version of the generator's drawing; part of the stamp, so a changed drawing
/// regenerates sets made by an older one.
pub const GENERATOR_VERSION: u32 = 1;

/// D2L's generated-set counterpart of [`read_bananas`](crate::bananas::read_bananas): reads `root/train` (or `root/val`)
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

impl DetectionDataset {
    /// A split of a generated set, see [`read_detection_set`].
    pub fn generated(root: &Path, is_train: bool, max_objects: usize) -> Result<DetectionDataset> {
        let (images, targets) = read_detection_set(root, is_train, max_objects)?;
        DetectionDataset::new(images, targets)
    }
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

    /// The visible pixels of each object as a `uint8` `(K, size, size)` tensor of 0/1
    /// (object `k`'s mask is where [`RenderedImage::owner`] is `k + 1`), the instance masks
    /// of Mask R-CNN's targets. `K` is the number of objects (at least 1).
    pub fn instance_masks(&self) -> Result<Tensor> {
        let n = self.size * self.size;
        let k = self.objects.len();
        let mut m = vec![0u8; k * n];
        for (p, &o) in self.owner.iter().enumerate() {
            if o > 0 {
                m[(o as usize - 1) * n + p] = 1;
            }
        }
        Ok(Tensor::from_vec(m, &[k, self.size, self.size])?)
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
    // Per class, the (low, high) range of each RGB channel of the object's base colour.
    const COLOURS: [[(f64, f64); 3]; 4] = [
        [(215.0, 255.0), (175.0, 225.0), (20.0, 90.0)],
        [(20.0, 80.0), (50.0, 140.0), (170.0, 255.0)],
        [(180.0, 255.0), (0.0, 60.0), (0.0, 60.0)],
        [(0.0, 70.0), (150.0, 230.0), (20.0, 90.0)],
    ];
    let base = COLOURS[class.min(3)].map(|(lo, hi)| rng.uniform(lo, hi));
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

/// The crate's box IoU ([`box_iou_pair`]) of two pixel boxes. Pixel edges are whole
/// numbers and a union is at most the image (4096² = 2²⁴ pixels), so areas and
/// intersections are exact in `f32`; the sum of two areas may round only when it passes
/// 2²⁴ (two objects together larger than the image), far from the sizes used.
fn iou(a: &PixelBox, b: &PixelBox) -> f32 {
    let f = |r: &PixelBox| r.map(|v| v as f32);
    box_iou_pair(f(a), f(b))
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
            write_png_rgb(&r.pixels, r.size, r.size, &images.join(name(i)))?;
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

// ---------------------------------------------------------------------------------------
// Instance segmentation (Mask R-CNN, 13.8)
// ---------------------------------------------------------------------------------------

/// The generated detection set with instance masks, rendered in memory (nothing is
/// written): example `i` is image `i` of the split, the very image
/// [`generate_detection_set`] would write, as `f32` `(3, S, S)` with values 0–255, and
/// `y` = `(M, 5 + S·S)` rows `[class, x1, y1, x2, y2, m_0, …, m_{S·S−1}]`: the class and
/// the box relative to the image side as in [`DetectionDataset`], then the object's
/// visible pixels (1 inside, 0 outside, row by row; see
/// [`RenderedImage::instance_masks`]). Rows past the image's objects are all −1. `M` is
/// the spec's `max_objects`.
#[derive(Debug, Clone)]
pub struct InstanceSegDataset {
    images: Vec<RenderedImage>,
    max_objects: usize,
}

impl InstanceSegDataset {
    /// Renders the training (or validation) split of `spec` (in parallel).
    pub fn new(spec: &DetectionSetSpec, is_train: bool) -> Result<InstanceSegDataset> {
        spec.validate()?;
        let n = if is_train {
            spec.num_train
        } else {
            spec.num_val
        };
        let images = (0..n)
            .into_par_iter()
            .map(|i| render_detection_image(spec, is_train, i))
            .collect::<Result<Vec<_>>>()?;
        Ok(InstanceSegDataset {
            images,
            max_objects: spec.max_objects,
        })
    }

    /// The rendered images.
    pub fn images(&self) -> &[RenderedImage] {
        &self.images
    }
}

impl Dataset for InstanceSegDataset {
    fn len(&self) -> usize {
        self.images.len()
    }

    fn get(&self, index: usize) -> Result<Example> {
        let r = self.images.get(index).ok_or_else(|| {
            DataError::Invalid(format!(
                "index {index} is out of range for a data set of {} examples",
                self.images.len()
            ))
        })?;
        let s = r.size;
        let row = 5 + s * s;
        let mut y = vec![-1f32; self.max_objects * row];
        let sf = s as f32;
        for (k, o) in r.objects.iter().enumerate().take(self.max_objects) {
            let t = &mut y[k * row..(k + 1) * row];
            t[..5].copy_from_slice(&[
                o.class as f32,
                o.xmin as f32 / sf,
                o.ymin as f32 / sf,
                o.xmax as f32 / sf,
                o.ymax as f32 / sf,
            ]);
            for (p, &own) in r.owner.iter().enumerate() {
                t[5 + p] = if own as usize == k + 1 { 1.0 } else { 0.0 };
            }
        }
        Ok(Example {
            x: r.to_tensor()?.to_dtype(d2l_tensor::DType::F32)?,
            y: Tensor::from_vec(y, &[self.max_objects, row])?,
        })
    }
}

/// (training loader, shuffled; validation loader) over the instance-segmentation version
/// of the generated set `spec` ([`InstanceSegDataset`]).
pub fn load_instance_set(
    spec: &DetectionSetSpec,
    batch_size: usize,
) -> Result<(DataLoader, DataLoader)> {
    let seed = d2l_tensor::random::with_global(|g| g.next_u64());
    let train = DataLoader::new(
        std::sync::Arc::new(InstanceSegDataset::new(spec, true)?),
        batch_size,
    )?
    .shuffle(seed);
    let val = DataLoader::new(
        std::sync::Arc::new(InstanceSegDataset::new(spec, false)?),
        batch_size,
    )?;
    Ok((train, val))
}
