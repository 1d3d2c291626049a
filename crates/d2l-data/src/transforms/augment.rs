// One file, over 1,000 lines, on purpose: torchvision's transform set for 13.1–13.2 —
// each functional op beside the random transform that draws its parameters, sharing one
// image reader (`Img`), so that sampling and pixels can be compared with torchvision's
// line by line.
//! Image augmentation (D2L 13.1) and the 13.2 fine-tuning pipelines: seeded, composable
//! transforms with torchvision's names, parameters and sampling.
//!
//! Images are `(C, H, W)` tensors: `uint8` straight from `d2l_vision::image::read_image`, or
//! `float32` in `[0, 1]` after [`ToTensor`]. The functional ops ([`hflip`], [`crop`],
//! [`resize`], [`adjust_hue`], …) are deterministic and follow
//! `torchvision.transforms.v2.functional` on tensors; the random transforms
//! ([`RandomHorizontalFlip`], [`RandomResizedCrop`], [`ColorJitter`], …) draw their
//! parameters the way torchvision's `make_params`/`get_params` do, from a
//! [`d2l_tensor::Generator`] passed in by the caller instead of torch's global RNG (so the
//! same seed gives the same image here, but not the same image as in PyTorch).
//!
//! What matches torchvision, and how closely (checked by `tests/transforms.rs` against
//! fixtures from `scripts/gen_transform_fixtures.py`):
//!
//! * flips, crops (zero fill outside the image, as `F.crop`), `CenterCrop` (offsets with
//!   Python's round-half-to-even, zero padding when the crop is larger), `Normalize` and
//!   `ToTensor`: exact.
//! * `resize` / `resized_crop`: bilinear **with antialias** (torchvision's default on tensors,
//!   PyTorch's `_upsample_bilinear2d_aa`: a triangle filter stretched by the down-scaling
//!   factor, weights normalised over the taps inside the image); float32 within 1e-5. When
//!   enlarging it coincides with plain bilinear (`align_corners=False`). On `uint8` input the
//!   result is computed in float32 and rounded; torchvision's native `uint8` kernel (AVX2
//!   fixed point) may differ by 1 level.
//! * `adjust_brightness/contrast/saturation/hue`: float32 within 1e-5; `uint8` follows
//!   torchvision's rules (blend in float, clamp, truncate; hue via float and `×255.999`).
//!   Grey levels use torchvision's weights `0.2989, 0.587, 0.114` (not the 0.299 of ITU-R
//!   601, which torchvision's code does not use).
//!
//! Deliberate differences: bad parameters are errors where torchvision only warns
//! (`scale`/`ratio` out of order in `RandomResizedCrop`); only single images `(C, H, W)` are
//! accepted (no leading batch dimensions).
//!
//! Data loading: [`AugmentedDataset`] wraps a [`Dataset`] and augments example `i` of epoch
//! `e` with its own generator derived from `(seed, e, i)` ([`example_generator`]), so the
//! result does not depend on which thread builds the batch or in which order. The loader's
//! per-example [`crate::loader::Transform`] receives only the example (no index, no
//! epoch), which is why the seeding lives in a data-set wrapper rather than in a loader
//! transform.

use super::{normalize_float, IMAGENET_MEAN, IMAGENET_STD};
use crate::loader::{stack_examples, Batch, Dataset, Example};
use crate::{DataError, Result};
use d2l_tensor::{DType, Generator, Tensor};
use rayon::prelude::*;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One SplitMix64 step from `z` (the generator's output for state `z`).
fn splitmix(mut z: u64) -> u64 {
    d2l_tensor::random::splitmix64(&mut z)
}

fn invalid(op: &str, msg: impl std::fmt::Display) -> DataError {
    DataError::Invalid(format!("{op}: {msg}"))
}

// ------------------------------------------------------------------ image buffers

#[derive(Debug, Clone)]
enum Pix {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

/// A `(C, H, W)` image taken out of a tensor.
#[derive(Debug, Clone)]
struct Img {
    c: usize,
    h: usize,
    w: usize,
    pix: Pix,
}

/// Checks the shape and dtype of an image without copying its pixels.
fn check_image(op: &str, t: &Tensor, color: bool) -> Result<()> {
    let s = t.shape();
    if s.len() != 3 {
        return Err(invalid(
            op,
            format!(
                "expected an image (C, H, W), got shape {s:?} (rank {})",
                s.len()
            ),
        ));
    }
    if s.contains(&0) {
        return Err(invalid(op, format!("the image is empty: shape {s:?}")));
    }
    if !matches!(t.dtype(), DType::U8 | DType::F32 | DType::F64) {
        return Err(invalid(
            op,
            format!("expected a uint8 or float image, got dtype {}", t.dtype()),
        ));
    }
    if color && s[0] != 1 && s[0] != 3 {
        return Err(invalid(
            op,
            format!("expected 1 or 3 channels, got {} (shape {s:?})", s[0]),
        ));
    }
    Ok(())
}

impl Img {
    fn read(op: &str, t: &Tensor) -> Result<Img> {
        check_image(op, t, false)?;
        let s = t.shape();
        let (c, h, w) = (s[0], s[1], s[2]);
        let pix = match t.dtype() {
            DType::U8 => Pix::U8(t.to_vec::<u8>()),
            _ => Pix::F32(t.to_vec::<f32>()),
        };
        Ok(Img { c, h, w, pix })
    }

    fn read_color(op: &str, t: &Tensor) -> Result<Img> {
        check_image(op, t, true)?;
        Img::read(op, t)
    }

    fn tensor(self) -> Result<Tensor> {
        let shape = [self.c, self.h, self.w];
        Ok(match self.pix {
            Pix::U8(v) => Tensor::from_vec(v, &shape)?,
            Pix::F32(v) => Tensor::from_vec(v, &shape)?,
        })
    }

    fn is_u8(&self) -> bool {
        matches!(self.pix, Pix::U8(_))
    }

    fn to_f32(&self) -> Vec<f32> {
        match &self.pix {
            Pix::U8(v) => v.iter().map(|&p| p as f32).collect(),
            Pix::F32(v) => v.clone(),
        }
    }

    /// Applies a per-buffer map that is the same for both pixel types.
    fn map_generic<F8, F32>(self, f8: F8, f32_: F32) -> Img
    where
        F8: FnOnce(&[u8]) -> Vec<u8>,
        F32: FnOnce(&[f32]) -> Vec<f32>,
    {
        let pix = match &self.pix {
            Pix::U8(v) => Pix::U8(f8(v)),
            Pix::F32(v) => Pix::F32(f32_(v)),
        };
        Img { pix, ..self }
    }
}

// ------------------------------------------------------------------ flips and crops

fn hflip_buf<T: Copy>(v: &[T], w: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(v.len());
    for row in v.chunks_exact(w) {
        out.extend(row.iter().rev());
    }
    out
}

fn vflip_buf<T: Copy>(v: &[T], h: usize, w: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(v.len());
    for plane in v.chunks_exact(h * w) {
        for row in plane.chunks_exact(w).rev() {
            out.extend_from_slice(row);
        }
    }
    out
}

/// Flips an image left to right (`torchvision.transforms.v2.functional.horizontal_flip`);
/// any dtype the module accepts is kept.
pub fn hflip(img: &Tensor) -> Result<Tensor> {
    let im = Img::read("hflip", img)?;
    let w = im.w;
    im.map_generic(|v| hflip_buf(v, w), |v| hflip_buf(v, w))
        .tensor()
}

/// Flips an image upside down (`torchvision.transforms.v2.functional.vertical_flip`).
pub fn vflip(img: &Tensor) -> Result<Tensor> {
    let im = Img::read("vflip", img)?;
    let (h, w) = (im.h, im.w);
    im.map_generic(|v| vflip_buf(v, h, w), |v| vflip_buf(v, h, w))
        .tensor()
}

fn crop_buf<T: Copy + Default>(
    v: &[T],
    (c, h, w): (usize, usize, usize),
    top: i64,
    left: i64,
    ch: usize,
    cw: usize,
) -> Vec<T> {
    let mut out = vec![T::default(); c * ch * cw];
    for k in 0..c {
        let plane = &v[k * h * w..][..h * w];
        for y in 0..ch {
            let sy = top + y as i64;
            if sy < 0 || sy >= h as i64 {
                continue;
            }
            let src_row = &plane[sy as usize * w..][..w];
            let dst_row = &mut out[(k * ch + y) * cw..][..cw];
            for (x, d) in dst_row.iter_mut().enumerate() {
                let sx = left + x as i64;
                if sx >= 0 && sx < w as i64 {
                    *d = src_row[sx as usize];
                }
            }
        }
    }
    out
}

fn crop_img(op: &str, im: Img, top: i64, left: i64, height: usize, width: usize) -> Result<Img> {
    if height == 0 || width == 0 {
        return Err(invalid(
            op,
            format!("the crop size must be positive, got {height}×{width}"),
        ));
    }
    if top == 0 && left == 0 && height == im.h && width == im.w {
        return Ok(im);
    }
    let dims = (im.c, im.h, im.w);
    Ok(Img {
        c: im.c,
        h: height,
        w: width,
        pix: match &im.pix {
            Pix::U8(v) => Pix::U8(crop_buf(v, dims, top, left, height, width)),
            Pix::F32(v) => Pix::F32(crop_buf(v, dims, top, left, height, width)),
        },
    })
}

/// Cuts the `height × width` window whose top-left pixel is `(top, left)`
/// (`torchvision.transforms.v2.functional.crop`); parts of the window outside the image are
/// filled with zeros, as torchvision does. A zero size is an error.
pub fn crop(img: &Tensor, top: i64, left: i64, height: usize, width: usize) -> Result<Tensor> {
    let im = Img::read("crop", img)?;
    crop_img("crop", im, top, left, height, width)?.tensor()
}

/// Python's `int(round(x))` (ties to even), used by torchvision for crop offsets and sizes.
fn py_round(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// Top-left corner of torchvision's centre crop of `crop` out of `image` along one axis:
/// zero padding `(crop - image) // 2` before when the crop is larger, else
/// `int(round((image - crop) / 2))`.
fn center_offset(image: usize, crop: usize) -> i64 {
    if crop > image {
        -(((crop - image) / 2) as i64)
    } else {
        py_round((image as f64 - crop as f64) / 2.0)
    }
}

/// Crops the centre `height × width` (`torchvision.transforms.v2.functional.center_crop`),
/// with torchvision's rounding of the offsets (`int(round((H - h) / 2))`, ties to even) and
/// zero padding where the crop is larger than the image.
pub fn center_crop(img: &Tensor, height: usize, width: usize) -> Result<Tensor> {
    let im = Img::read("center_crop", img)?;
    let (top, left) = (center_offset(im.h, height), center_offset(im.w, width));
    crop_img("center_crop", im, top, left, height, width)?.tensor()
}

// ------------------------------------------------------------------ antialiased resize

/// One axis of PyTorch's antialiased bilinear resize: taps `[start, start + len)` and
/// normalised weights for each output index.
#[derive(Debug, Clone)]
struct AaAxis {
    start: Vec<usize>,
    weights: Vec<Vec<f32>>,
}

impl AaAxis {
    /// `_compute_indices_min_size_weights_aa` with the bilinear (triangle) filter,
    /// `align_corners=False`.
    fn new(input: usize, output: usize) -> AaAxis {
        let scale = input as f64 / output as f64;
        let support = if scale >= 1.0 { scale } else { 1.0 };
        let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
        let mut start = Vec::with_capacity(output);
        let mut weights = Vec::with_capacity(output);
        for i in 0..output {
            let center = scale * (i as f64 + 0.5);
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(input as i64) as usize;
            let mut ws: Vec<f64> = (xmin..xmax)
                .map(|j| {
                    let x = (j as f64 - center + 0.5) * invscale;
                    (1.0 - x.abs()).max(0.0)
                })
                .collect();
            let total: f64 = ws.iter().sum();
            if total != 0.0 {
                ws.iter_mut().for_each(|v| *v /= total);
            }
            start.push(xmin);
            weights.push(ws.into_iter().map(|v| v as f32).collect());
        }
        AaAxis { start, weights }
    }
}

/// Resizes `c` planes of `h × w` to `oh × ow`: the width first, then the height (PyTorch's
/// order), skipping an axis whose size does not change.
fn resize_planes(v: &[f32], c: usize, h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let mut cur: Vec<f32>;
    let src: &[f32] = if ow != w {
        let ax = AaAxis::new(w, ow);
        cur = vec![0.0; c * h * ow];
        for (row, out) in v.chunks_exact(w).zip(cur.chunks_exact_mut(ow)) {
            for (x, o) in out.iter_mut().enumerate() {
                let s = ax.start[x];
                *o = ax.weights[x]
                    .iter()
                    .zip(&row[s..])
                    .map(|(a, b)| a * b)
                    .sum();
            }
        }
        &cur
    } else {
        v
    };
    if oh == h {
        return src.to_vec();
    }
    let ax = AaAxis::new(h, oh);
    let mut out = vec![0.0f32; c * oh * ow];
    for (plane, oplane) in src.chunks_exact(h * ow).zip(out.chunks_exact_mut(oh * ow)) {
        for (y, orow) in oplane.chunks_exact_mut(ow).enumerate() {
            let s = ax.start[y];
            for (k, &wt) in ax.weights[y].iter().enumerate() {
                let r = &plane[(s + k) * ow..][..ow];
                for (o, &p) in orow.iter_mut().zip(r) {
                    *o += wt * p;
                }
            }
        }
    }
    out
}

fn resize_img(op: &str, im: Img, oh: usize, ow: usize) -> Result<Img> {
    if oh == 0 || ow == 0 {
        return Err(invalid(
            op,
            format!("the output size must be positive, got {oh}×{ow}"),
        ));
    }
    if oh == im.h && ow == im.w {
        return Ok(im);
    }
    let out = resize_planes(&im.to_f32(), im.c, im.h, im.w, oh, ow);
    let pix = if im.is_u8() {
        Pix::U8(
            out.into_iter()
                .map(|v| v.round_ties_even().clamp(0.0, 255.0) as u8)
                .collect(),
        )
    } else {
        Pix::F32(out)
    };
    Ok(Img {
        c: im.c,
        h: oh,
        w: ow,
        pix,
    })
}

/// The size argument of [`Resize`] and [`resize_to`], as torchvision's `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// An `int` size: the shorter side becomes this, the longer one keeps the aspect ratio
    /// (`int(size * long / short)`, truncated as torchvision does).
    Shorter(usize),
    /// A `(h, w)` size.
    Exact(usize, usize),
}

impl Size {
    /// The output `(height, width)` for an `h × w` image
    /// (torchvision's `_compute_resized_output_size` without `max_size`).
    pub fn output(self, h: usize, w: usize) -> Result<(usize, usize)> {
        match self {
            Size::Exact(oh, ow) if oh > 0 && ow > 0 => Ok((oh, ow)),
            Size::Shorter(s) if s > 0 && h > 0 && w > 0 => {
                let (short, long) = if w <= h { (w, h) } else { (h, w) };
                let new_long = (s as f64 * long as f64 / short as f64) as usize;
                Ok(if w <= h { (new_long, s) } else { (s, new_long) })
            }
            _ => Err(invalid(
                "resize",
                format!("sizes must be positive, got {self:?} for a {h}×{w} image"),
            )),
        }
    }
}

/// Resizes to `height × width` with bilinear interpolation and antialias
/// (`torchvision.transforms.v2.functional.resize(img, [h, w])` on tensors, whose default is
/// `antialias=True`). `uint8` stays `uint8` (rounded); see the module notes.
pub fn resize(img: &Tensor, height: usize, width: usize) -> Result<Tensor> {
    let im = Img::read("resize", img)?;
    resize_img("resize", im, height, width)?.tensor()
}

/// [`resize`] with torchvision's `size` semantics (an `int` resizes the shorter side).
pub fn resize_to(img: &Tensor, size: Size) -> Result<Tensor> {
    let im = Img::read("resize", img)?;
    let (oh, ow) = size.output(im.h, im.w)?;
    resize_img("resize", im, oh, ow)?.tensor()
}

/// Crops the `height × width` window at `(top, left)` and resizes it to `size = (h, w)`
/// (`torchvision.transforms.v2.functional.resized_crop`, bilinear with antialias): what
/// [`RandomResizedCrop`] does once its parameters are drawn.
pub fn resized_crop(
    img: &Tensor,
    top: i64,
    left: i64,
    height: usize,
    width: usize,
    size: (usize, usize),
) -> Result<Tensor> {
    let im = Img::read("resized_crop", img)?;
    if size.0 == 0 || size.1 == 0 {
        return Err(invalid(
            "resized_crop",
            format!(
                "the output size must be positive, got {}×{}",
                size.0, size.1
            ),
        ));
    }
    let im = crop_img("resized_crop", im, top, left, height, width)?;
    resize_img("resized_crop", im, size.0, size.1)?.tensor()
}

// ------------------------------------------------------------------ colour

/// Truncating conversion to `uint8` as torch's `.to(torch.uint8)` of values in `[0, 255]`.
fn trunc_u8(v: f32) -> u8 {
    v.clamp(0.0, 255.0) as u8
}

/// torchvision's `_blend(image, other, ratio)`: `image·ratio + other·(1 − ratio)` clamped
/// to the dtype's range; `other` is one value per pixel (a grey plane) or a single value.
fn blend(im: Img, other: &[f32], ratio: f64) -> Img {
    let r = ratio as f32;
    let r1 = (1.0 - ratio) as f32;
    let plane = im.h * im.w;
    let pick = |i: usize| {
        if other.len() == 1 {
            other[0]
        } else {
            other[i % plane]
        }
    };
    let pix = match &im.pix {
        Pix::F32(v) => Pix::F32(
            v.iter()
                .enumerate()
                .map(|(i, &x)| (x * r + pick(i) * r1).clamp(0.0, 1.0))
                .collect(),
        ),
        Pix::U8(v) => Pix::U8(
            v.iter()
                .enumerate()
                .map(|(i, &x)| trunc_u8(x as f32 * r + pick(i) * r1))
                .collect(),
        ),
    };
    Img { pix, ..im }
}

/// The grey plane `0.2989 R + 0.587 G + 0.114 B` in float (floored for `uint8`), as
/// torchvision's `_rgb_to_grayscale_image(..., preserve_dtype=False)`.
fn grey_plane(im: &Img) -> Vec<f32> {
    let v = im.to_f32();
    let plane = im.h * im.w;
    if im.c == 1 {
        return v;
    }
    let (r, rest) = v.split_at(plane);
    let (g, b) = rest.split_at(plane);
    r.iter()
        .zip(g)
        .zip(b)
        .map(|((&r, &g), &b)| {
            let l = r * 0.2989 + g * 0.587 + b * 0.114;
            if im.is_u8() {
                l.floor()
            } else {
                l
            }
        })
        .collect()
}

fn check_factor(op: &str, name: &str, f: f64) -> Result<()> {
    if !f.is_finite() || f < 0.0 {
        return Err(invalid(
            op,
            format!("{name} must be finite and non-negative, got {f}"),
        ));
    }
    Ok(())
}

/// Multiplies the pixels by `factor` and clamps (`adjust_brightness`): 0 gives black, 1 the
/// original image. `factor` must be non-negative.
pub fn adjust_brightness(img: &Tensor, factor: f64) -> Result<Tensor> {
    check_factor("adjust_brightness", "brightness_factor", factor)?;
    let im = Img::read_color("adjust_brightness", img)?;
    blend(im, &[0.0], factor).tensor()
}

/// Blends with the mean grey level of the image (`adjust_contrast`): 0 gives a uniform grey
/// image, 1 the original.
pub fn adjust_contrast(img: &Tensor, factor: f64) -> Result<Tensor> {
    check_factor("adjust_contrast", "contrast_factor", factor)?;
    let im = Img::read_color("adjust_contrast", img)?;
    let grey = grey_plane(&im);
    let mean = (grey.iter().map(|&v| v as f64).sum::<f64>() / grey.len() as f64) as f32;
    blend(im, &[mean], factor).tensor()
}

/// Blends with the grey version of the image (`adjust_saturation`): 0 gives grey, 1 the
/// original, 2 doubles the saturation. A one-channel image is returned unchanged.
pub fn adjust_saturation(img: &Tensor, factor: f64) -> Result<Tensor> {
    check_factor("adjust_saturation", "saturation_factor", factor)?;
    let im = Img::read_color("adjust_saturation", img)?;
    if im.c == 1 {
        return im.tensor();
    }
    let grey = grey_plane(&im);
    blend(im, &grey, factor).tensor()
}

/// torchvision's `_rgb_to_hsv` on one pixel (float32, same operation order).
fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    let eqc = maxc == minc;
    let range = maxc - minc;
    let s = range / if eqc { 1.0 } else { maxc };
    let div = if eqc { 1.0 } else { range };
    let (rc, gc, bc) = ((maxc - r) / div, (maxc - g) / div, (maxc - b) / div);
    let neq_r = maxc != r;
    let eq_g = maxc == g;
    let hg = if eq_g && neq_r { rc + 2.0 - bc } else { 0.0 };
    let hr = if !neq_r { bc - gc } else { 0.0 };
    let hb = if neq_r && !eq_g { gc + 4.0 - rc } else { 0.0 };
    let h = hr + hg + hb;
    let h = (h * (1.0f32 / 6.0) + 1.0) % 1.0;
    (h, s, maxc)
}

/// torchvision's `_hsv_to_rgb` on one pixel.
fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = h * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let i = (i as i32).rem_euclid(6);
    let sxf = s * f;
    let one_minus_s = 1.0 - s;
    let q = ((1.0 - sxf) * v).clamp(0.0, 1.0);
    let t = ((sxf + one_minus_s) * v).clamp(0.0, 1.0);
    let p = (one_minus_s * v).clamp(0.0, 1.0);
    match i {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// Shifts the hue by `factor` turns of the HSV colour wheel (`adjust_hue`), `factor` in
/// `[-0.5, 0.5]`. Float images in `[0, 1]` follow torchvision's tensor code (`_rgb_to_hsv`,
/// `(h + factor) mod 1`, `_hsv_to_rgb`); `uint8` goes through float (`/255`, then
/// `×255.999` truncated, torchvision's `to_dtype`). One-channel images are unchanged.
pub fn adjust_hue(img: &Tensor, factor: f64) -> Result<Tensor> {
    if !(-0.5..=0.5).contains(&factor) {
        return Err(invalid(
            "adjust_hue",
            format!("hue_factor must be in [-0.5, 0.5], got {factor}"),
        ));
    }
    let im = Img::read_color("adjust_hue", img)?;
    if im.c == 1 {
        return im.tensor();
    }
    let plane = im.h * im.w;
    let v: Vec<f32> = match &im.pix {
        Pix::F32(v) => v.clone(),
        Pix::U8(v) => v.iter().map(|&p| p as f32 * (1.0f32 / 255.0)).collect(),
    };
    let hf = factor as f32;
    let mut out = vec![0.0f32; v.len()];
    for i in 0..plane {
        let (h, s, val) = rgb_to_hsv(v[i], v[plane + i], v[2 * plane + i]);
        let x = h + hf;
        let h = x - x.floor();
        let (r, g, b) = hsv_to_rgb(h, s, val);
        out[i] = r;
        out[plane + i] = g;
        out[2 * plane + i] = b;
    }
    let pix = if im.is_u8() {
        Pix::U8(out.into_iter().map(|v| trunc_u8(v * 255.999)).collect())
    } else {
        Pix::F32(out)
    };
    Img { pix, ..im }.tensor()
}

/// torchvision's `ToTensor` / `ToDtype(float32, scale=True)`: `uint8` → `float32 / 255`;
/// a float image is returned as float32 unchanged.
pub fn to_tensor(img: &Tensor) -> Result<Tensor> {
    let im = Img::read("to_tensor", img)?;
    match im.pix {
        Pix::U8(v) => Tensor::from_vec(
            v.into_iter().map(|p| p as f32 / 255.0).collect::<Vec<_>>(),
            &[im.c, im.h, im.w],
        )
        .map_err(Into::into),
        Pix::F32(_) => im.tensor(),
    }
}

/// `(x - mean[c]) / std[c]` per channel (`Normalize`), on an image `(C, H, W)` or a batch
/// `(N, C, H, W)`; like torchvision, a float image is required (apply [`ToTensor`] first),
/// and `mean`/`std` need one value per channel (or one for all).
pub fn normalize(img: &Tensor, mean: &[f32], std: &[f32]) -> Result<Tensor> {
    if !img.dtype().is_float() {
        return Err(invalid(
            "normalize",
            format!(
                "expected a float image, got {:?} (apply ToTensor first)",
                img.dtype()
            ),
        ));
    }
    normalize_float(img, mean, std)
}

// ------------------------------------------------------------------ the transforms

/// One image transform: deterministic ones ignore `rng`, random ones draw their parameters
/// from it (torchvision's `Transform.forward` with a generator passed explicitly).
pub trait ImageTransform: Send + Sync + Debug {
    /// Applies the transform to a `(C, H, W)` image.
    fn apply(&self, img: &Tensor, rng: &mut Generator) -> Result<Tensor>;
}

fn check_p(op: &str, p: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&p) {
        return Err(invalid(op, format!("p must be in [0, 1], got {p}")));
    }
    Ok(p)
}

/// Uniform on `[lo, hi)` (torch's `empty(1).uniform_(lo, hi)`).
fn uniform(rng: &mut Generator, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.next_f64()
}

/// Flips left to right with probability `p` (`RandomHorizontalFlip(p=0.5)`; flips when a
/// uniform draw is below `p`, as torchvision's `torch.rand(1) < p`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomHorizontalFlip {
    p: f64,
}

impl RandomHorizontalFlip {
    /// A flip with probability `p` in `[0, 1]` (torchvision's default is 0.5).
    pub fn new(p: f64) -> Result<Self> {
        Ok(RandomHorizontalFlip {
            p: check_p("RandomHorizontalFlip", p)?,
        })
    }
}

impl Default for RandomHorizontalFlip {
    fn default() -> Self {
        RandomHorizontalFlip { p: 0.5 }
    }
}

impl ImageTransform for RandomHorizontalFlip {
    fn apply(&self, img: &Tensor, rng: &mut Generator) -> Result<Tensor> {
        check_image("RandomHorizontalFlip", img, false)?;
        if rng.next_f64() < self.p {
            hflip(img)
        } else {
            Ok(img.clone())
        }
    }
}

/// Flips upside down with probability `p` (`RandomVerticalFlip(p=0.5)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomVerticalFlip {
    p: f64,
}

impl RandomVerticalFlip {
    /// A flip with probability `p` in `[0, 1]`.
    pub fn new(p: f64) -> Result<Self> {
        Ok(RandomVerticalFlip {
            p: check_p("RandomVerticalFlip", p)?,
        })
    }
}

impl Default for RandomVerticalFlip {
    fn default() -> Self {
        RandomVerticalFlip { p: 0.5 }
    }
}

impl ImageTransform for RandomVerticalFlip {
    fn apply(&self, img: &Tensor, rng: &mut Generator) -> Result<Tensor> {
        check_image("RandomVerticalFlip", img, false)?;
        if rng.next_f64() < self.p {
            vflip(img)
        } else {
            Ok(img.clone())
        }
    }
}

/// The window a [`RandomResizedCrop`] cuts: `(top, left, height, width)` in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropParams {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

/// Cuts a random window and resizes it to `size` (`RandomResizedCrop(size, scale=(0.08, 1),
/// ratio=(3/4, 4/3))`, bilinear with antialias). The window is drawn by torchvision's
/// `get_params` ([`RandomResizedCrop::get_params`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomResizedCrop {
    size: (usize, usize),
    scale: (f64, f64),
    ratio: (f64, f64),
}

impl RandomResizedCrop {
    /// Output `size = (h, w)` with torchvision's default `scale` and `ratio`.
    pub fn new(size: (usize, usize)) -> Result<Self> {
        Self::with_params(size, (0.08, 1.0), (3.0 / 4.0, 4.0 / 3.0))
    }

    /// Output `size`, area fraction range `scale` and aspect-ratio (w/h) range `ratio`.
    /// Sizes must be positive, `0 < scale.0 <= scale.1` and `0 < ratio.0 <= ratio.1`
    /// (torchvision only warns when a range is out of order; here it is an error).
    pub fn with_params(size: (usize, usize), scale: (f64, f64), ratio: (f64, f64)) -> Result<Self> {
        let op = "RandomResizedCrop";
        if size.0 == 0 || size.1 == 0 {
            return Err(invalid(
                op,
                format!("size must be positive, got {}×{}", size.0, size.1),
            ));
        }
        let ok = |r: (f64, f64)| r.0.is_finite() && r.1.is_finite() && r.0 > 0.0 && r.0 <= r.1;
        if !ok(scale) {
            return Err(invalid(
                op,
                format!(
                    "scale must be (min, max) with 0 < min <= max, got ({}, {})",
                    scale.0, scale.1
                ),
            ));
        }
        if !ok(ratio) {
            return Err(invalid(
                op,
                format!(
                    "ratio must be (min, max) with 0 < min <= max, got ({}, {})",
                    ratio.0, ratio.1
                ),
            ));
        }
        Ok(RandomResizedCrop { size, scale, ratio })
    }

    /// The output size `(h, w)`.
    pub fn size(&self) -> (usize, usize) {
        self.size
    }

    /// torchvision's `RandomResizedCrop.get_params` for an `height × width` image: up to 10
    /// tries of an area fraction uniform in `scale` and a log-aspect-ratio uniform in
    /// `log(ratio)`, `w = round(sqrt(area·r))`, `h = round(sqrt(area/r))` (ties to even),
    /// accepted when it fits, at a uniform position; else the centre crop with the aspect
    /// ratio clamped to `ratio`.
    pub fn get_params(&self, height: usize, width: usize, rng: &mut Generator) -> CropParams {
        let area = (height * width) as f64;
        let (lr0, lr1) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target = area * uniform(rng, self.scale.0, self.scale.1);
            let ar = uniform(rng, lr0, lr1).exp();
            let w = py_round((target * ar).sqrt());
            let h = py_round((target / ar).sqrt());
            if 0 < w && w as usize <= width && 0 < h && h as usize <= height {
                let (h, w) = (h as usize, w as usize);
                let top = rng.below((height - h + 1) as u64) as usize;
                let left = rng.below((width - w + 1) as u64) as usize;
                return CropParams {
                    top,
                    left,
                    height: h,
                    width: w,
                };
            }
        }
        let in_ratio = width as f64 / height as f64;
        let (h, w) = if in_ratio < self.ratio.0 {
            let h = py_round(width as f64 / self.ratio.0).clamp(1, height as i64) as usize;
            (h, width)
        } else if in_ratio > self.ratio.1 {
            let w = py_round(height as f64 * self.ratio.1).clamp(1, width as i64) as usize;
            (height, w)
        } else {
            (height, width)
        };
        CropParams {
            top: (height - h) / 2,
            left: (width - w) / 2,
            height: h,
            width: w,
        }
    }
}

impl ImageTransform for RandomResizedCrop {
    fn apply(&self, img: &Tensor, rng: &mut Generator) -> Result<Tensor> {
        let im = Img::read("RandomResizedCrop", img)?;
        let p = self.get_params(im.h, im.w, rng);
        let im = crop_img(
            "RandomResizedCrop",
            im,
            p.top as i64,
            p.left as i64,
            p.height,
            p.width,
        )?;
        resize_img("RandomResizedCrop", im, self.size.0, self.size.1)?.tensor()
    }
}

/// Resizes (`Resize(size)`, bilinear with antialias); see [`Size`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resize {
    size: Size,
}

impl Resize {
    /// A resize to `size`; sizes must be positive.
    pub fn new(size: Size) -> Result<Self> {
        match size {
            Size::Shorter(s) if s > 0 => Ok(Resize { size }),
            Size::Exact(h, w) if h > 0 && w > 0 => Ok(Resize { size }),
            _ => Err(invalid(
                "Resize",
                format!("size must be positive, got {size:?}"),
            )),
        }
    }
}

impl ImageTransform for Resize {
    fn apply(&self, img: &Tensor, _rng: &mut Generator) -> Result<Tensor> {
        resize_to(img, self.size)
    }
}

/// Crops the centre (`CenterCrop(size)`), see [`center_crop`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CenterCrop {
    size: (usize, usize),
}

impl CenterCrop {
    /// A centre crop of `size = (h, w)`; sizes must be positive.
    pub fn new(size: (usize, usize)) -> Result<Self> {
        if size.0 == 0 || size.1 == 0 {
            return Err(invalid(
                "CenterCrop",
                format!("size must be positive, got {}×{}", size.0, size.1),
            ));
        }
        Ok(CenterCrop { size })
    }
}

impl ImageTransform for CenterCrop {
    fn apply(&self, img: &Tensor, _rng: &mut Generator) -> Result<Tensor> {
        center_crop(img, self.size.0, self.size.1)
    }
}

/// Random brightness, contrast, saturation and hue (`ColorJitter`). Each factor range is
/// torchvision's: a number `b` gives `[max(0, 1 − b), 1 + b]` for brightness, contrast and
/// saturation and `[−h, h]` for hue (`h <= 0.5`); a range that is the single neutral value
/// (0 for a number) is left out. Per call the four adjustments are applied in a random order
/// (`torch.randperm(4)`), each with its factor drawn uniformly from its range, then clamped
/// to `[0, 1]` by the adjustment itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorJitter {
    brightness: Option<(f64, f64)>,
    contrast: Option<(f64, f64)>,
    saturation: Option<(f64, f64)>,
    hue: Option<(f64, f64)>,
}

impl ColorJitter {
    /// `ColorJitter(brightness, contrast, saturation, hue)` with single numbers (0 = off).
    /// Negative numbers, non-finite numbers and `hue > 0.5` are errors.
    pub fn new(brightness: f64, contrast: f64, saturation: f64, hue: f64) -> Result<Self> {
        let around_one = |name: &str, v: f64| -> Result<Option<(f64, f64)>> {
            if !v.is_finite() || v < 0.0 {
                return Err(invalid(
                    "ColorJitter",
                    format!("{name} must be a finite non-negative number, got {v}"),
                ));
            }
            Ok((v != 0.0).then_some(((1.0 - v).max(0.0), 1.0 + v)))
        };
        if !hue.is_finite() || !(0.0..=0.5).contains(&hue) {
            return Err(invalid(
                "ColorJitter",
                format!("hue must be in [0, 0.5], got {hue}"),
            ));
        }
        Ok(ColorJitter {
            brightness: around_one("brightness", brightness)?,
            contrast: around_one("contrast", contrast)?,
            saturation: around_one("saturation", saturation)?,
            hue: (hue != 0.0).then_some((-hue, hue)),
        })
    }

    /// Explicit `(min, max)` factor ranges (torchvision's sequence form): brightness,
    /// contrast and saturation within `[0, ∞)`, hue within `[−0.5, 0.5]`, each with
    /// `min <= max`; `None` leaves an adjustment out.
    pub fn with_ranges(
        brightness: Option<(f64, f64)>,
        contrast: Option<(f64, f64)>,
        saturation: Option<(f64, f64)>,
        hue: Option<(f64, f64)>,
    ) -> Result<Self> {
        let check = |name: &str, r: Option<(f64, f64)>, lo: f64, hi: f64| -> Result<()> {
            if let Some((a, b)) = r {
                if !(a.is_finite() && b.is_finite() && lo <= a && a <= b && b <= hi) {
                    return Err(invalid(
                        "ColorJitter",
                        format!(
                            "{name} must be a range (min, max) within [{lo}, {hi}], got ({a}, {b})"
                        ),
                    ));
                }
            }
            Ok(())
        };
        check("brightness", brightness, 0.0, f64::INFINITY)?;
        check("contrast", contrast, 0.0, f64::INFINITY)?;
        check("saturation", saturation, 0.0, f64::INFINITY)?;
        check("hue", hue, -0.5, 0.5)?;
        Ok(ColorJitter {
            brightness,
            contrast,
            saturation,
            hue,
        })
    }

    /// Draws the order and the factors (torchvision's `make_params`): `(order, [b, c, s, h])`
    /// where `order` is a permutation of `0..4` (0 brightness, 1 contrast, 2 saturation,
    /// 3 hue) and a factor is `None` for an adjustment that is off.
    pub fn get_params(&self, rng: &mut Generator) -> ([usize; 4], [Option<f64>; 4]) {
        let mut order = [0usize, 1, 2, 3];
        for i in (1..4).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let mut draw = |r: Option<(f64, f64)>| r.map(|(a, b)| uniform(rng, a, b));
        let f = [
            draw(self.brightness),
            draw(self.contrast),
            draw(self.saturation),
            draw(self.hue),
        ];
        (order, f)
    }
}

impl ImageTransform for ColorJitter {
    fn apply(&self, img: &Tensor, rng: &mut Generator) -> Result<Tensor> {
        check_image("ColorJitter", img, true)?;
        let (order, f) = self.get_params(rng);
        let mut out = img.clone();
        for k in order {
            if let Some(v) = f[k] {
                out = match k {
                    0 => adjust_brightness(&out, v)?,
                    1 => adjust_contrast(&out, v)?,
                    2 => adjust_saturation(&out, v)?,
                    _ => adjust_hue(&out, v)?,
                };
            }
        }
        Ok(out)
    }
}

/// `uint8` → `float32 / 255` (`ToTensor`), see [`to_tensor`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ToTensor;

impl ImageTransform for ToTensor {
    fn apply(&self, img: &Tensor, _rng: &mut Generator) -> Result<Tensor> {
        to_tensor(img)
    }
}

/// Per-channel `(x − mean) / std` (`Normalize(mean, std)`), see [`normalize`].
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Normalize {
    /// `mean` and `std` of equal length (1 or one per channel), every `std` finite and
    /// non-zero.
    pub fn new(mean: &[f32], std: &[f32]) -> Result<Self> {
        if mean.is_empty() || mean.len() != std.len() {
            return Err(invalid(
                "Normalize",
                format!(
                    "mean and std need the same, non-zero number of values, got {} and {}",
                    mean.len(),
                    std.len()
                ),
            ));
        }
        if let Some(s) = std.iter().find(|s| **s == 0.0 || !s.is_finite()) {
            return Err(invalid(
                "Normalize",
                format!("std must be finite and non-zero, got {s}"),
            ));
        }
        Ok(Normalize {
            mean: mean.to_vec(),
            std: std.to_vec(),
        })
    }

    /// The ImageNet statistics of torchvision's pretrained models (D2L 13.2).
    pub fn imagenet() -> Self {
        Normalize {
            mean: IMAGENET_MEAN.to_vec(),
            std: IMAGENET_STD.to_vec(),
        }
    }
}

impl ImageTransform for Normalize {
    fn apply(&self, img: &Tensor, _rng: &mut Generator) -> Result<Tensor> {
        normalize(img, &self.mean, &self.std)
    }
}

/// Transforms applied in order (`Compose([...])`), all drawing from the same generator.
#[derive(Debug, Clone, Default)]
pub struct Compose {
    steps: Vec<Arc<dyn ImageTransform>>,
}

impl Compose {
    /// A chain of the given transforms.
    pub fn new(steps: Vec<Arc<dyn ImageTransform>>) -> Compose {
        Compose { steps }
    }

    /// The chain with `t` appended.
    pub fn then(mut self, t: impl ImageTransform + 'static) -> Compose {
        self.steps.push(Arc::new(t));
        self
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether the chain is empty (the identity).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The book's 13.2 training pipeline: `RandomResizedCrop(224)`, `RandomHorizontalFlip()`,
    /// `ToTensor()`, `Normalize(ImageNet)`.
    pub fn imagenet_train(size: usize) -> Result<Compose> {
        Ok(Compose::default()
            .then(RandomResizedCrop::new((size, size))?)
            .then(RandomHorizontalFlip::default())
            .then(ToTensor)
            .then(Normalize::imagenet()))
    }

    /// The book's 13.2 test pipeline: `Resize([256, 256])`, `CenterCrop(224)`, `ToTensor()`,
    /// `Normalize(ImageNet)`.
    pub fn imagenet_test(resize: usize, crop: usize) -> Result<Compose> {
        Ok(Compose::default()
            .then(Resize::new(Size::Exact(resize, resize))?)
            .then(CenterCrop::new((crop, crop))?)
            .then(ToTensor)
            .then(Normalize::imagenet()))
    }
}

impl ImageTransform for Compose {
    fn apply(&self, img: &Tensor, rng: &mut Generator) -> Result<Tensor> {
        let mut cur = img.clone();
        for t in &self.steps {
            cur = t.apply(&cur, rng)?;
        }
        Ok(cur)
    }
}

// ------------------------------------------------------------------ seeding and loading

/// The generator that augments example `index` in epoch `epoch` of a pipeline seeded with
/// `seed`: a SplitMix64 hash of the three numbers, so every example of every epoch has its
/// own stream, independent of threads and batch order.
pub fn example_generator(seed: u64, epoch: u64, index: u64) -> Generator {
    let z = splitmix(splitmix(splitmix(seed) ^ epoch) ^ index);
    Generator::new(z)
}

/// A data set whose images are augmented on the fly: `get(i)` reads example `i` of `inner`
/// and applies `transform` to its `x` with [`example_generator`]`(seed, epoch, i)`.
///
/// The loader's own per-example transform sees neither the index nor the epoch, so the
/// augmentation is attached to the data set instead: call [`AugmentedDataset::set_epoch`]
/// (through a clone of the `Arc` or [`AugmentedDataset::epoch_handle`]) before iterating an
/// epoch to get fresh draws, e.g. `aug.set_epoch(e); for b in loader.iter_epoch(e) {..}`.
/// Batches are augmented in parallel on the rayon pool ([`Dataset::get_batch`]); results are
/// the same for any number of threads.
pub struct AugmentedDataset {
    inner: Arc<dyn Dataset>,
    transform: Arc<dyn ImageTransform>,
    seed: u64,
    epoch: Arc<AtomicU64>,
}

impl Debug for AugmentedDataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AugmentedDataset")
            .field("examples", &self.inner.len())
            .field("transform", &self.transform)
            .field("seed", &self.seed)
            .field("epoch", &self.epoch())
            .finish()
    }
}

impl AugmentedDataset {
    /// Wraps `inner`, starting at epoch 0.
    pub fn new(
        inner: Arc<dyn Dataset>,
        transform: Arc<dyn ImageTransform>,
        seed: u64,
    ) -> AugmentedDataset {
        AugmentedDataset {
            inner,
            transform,
            seed,
            epoch: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Sets the epoch whose random draws the next `get` calls use.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// A shared handle on the epoch counter (store the epoch into it before each epoch).
    pub fn epoch_handle(&self) -> Arc<AtomicU64> {
        self.epoch.clone()
    }

    fn augment(&self, index: usize, epoch: u64) -> Result<Example> {
        let ex = self.inner.get(index)?;
        let mut rng = example_generator(self.seed, epoch, index as u64);
        let x = self.transform.apply(&ex.x, &mut rng)?;
        Ok(Example { x, y: ex.y })
    }
}

impl Dataset for AugmentedDataset {
    fn len(&self) -> usize {
        self.inner.len()
    }

    fn get(&self, index: usize) -> Result<Example> {
        self.augment(index, self.epoch())
    }

    fn get_batch(&self, indices: &[usize]) -> Result<Batch> {
        let epoch = self.epoch();
        let examples = indices
            .par_iter()
            .map(|&i| self.augment(i, epoch))
            .collect::<Result<Vec<_>>>()?;
        stack_examples(&examples, indices)
    }
}
