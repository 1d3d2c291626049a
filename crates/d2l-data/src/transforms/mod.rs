//! Image transforms, one stack for every pipeline: the batch kernels here (D2L 3.5's
//! `ToTensor`/`Resize`, the 224×224 and 96×96 inputs of 7.1–7.4) and torchvision's seeded
//! augmentation of 13.1–13.2 in [`augment`] (re-exported here): one [`ImageTransform`]
//! trait, one [`Compose`], one [`normalize`].
//!
//! Images are tensors in channel-first layout: one image `[C, H, W]` or a batch
//! `[N, C, H, W]` (a `[H, W]` grey image is accepted too and treated as one channel).
//! Every transform keeps the layout and returns `f32` (except [`to_float`]'s input, which is
//! usually `u8`).
//!
//! [`resize_bilinear`] matches PyTorch's
//! `F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=False)`:
//! half-pixel centres, `src = (dst + 0.5) * in / out - 0.5`, negative source coordinates
//! clamped to 0, and the right/bottom neighbour clamped to the last row/column. The
//! interpolation tables are computed once per output row and column ([`Resizer`]), so a batch
//! of 256 Fashion-MNIST images goes to 224×224 in tens of milliseconds on one core.

use crate::error::{DataError, Result};
use d2l_tensor::{DType, Tensor};

pub mod augment;
pub use augment::*;

/// Converts `u8` pixels to `f32` in `[0, 1]` (divides by 255, as torchvision's `ToTensor`);
/// a float tensor is returned as `f32` unchanged in value.
pub fn to_float(img: &Tensor) -> Result<Tensor> {
    match img.dtype() {
        DType::U8 => {
            let v: Vec<f32> = img
                .to_vec::<u8>()
                .into_iter()
                .map(|p| p as f32 / 255.0)
                .collect();
            Ok(Tensor::from_vec(v, img.shape())?)
        }
        DType::F32 => Ok(img.clone()),
        _ => Ok(img.to_dtype(DType::F32)?),
    }
}

/// The `[N, C, H, W]` view of an image tensor's shape: `[H, W]` → `(1, 1, H, W)`,
/// `[C, H, W]` → `(1, C, H, W)`.
fn nchw(op: &str, shape: &[usize]) -> Result<(usize, usize, usize, usize)> {
    match *shape {
        [h, w] => Ok((1, 1, h, w)),
        [c, h, w] => Ok((1, c, h, w)),
        [n, c, h, w] => Ok((n, c, h, w)),
        _ => Err(DataError::Invalid(format!(
            "{op}: expected an image [H, W], [C, H, W] or a batch [N, C, H, W], got shape {shape:?}"
        ))),
    }
}

/// The elements of an image tensor as `f32` in row-major order.
fn f32_data(img: &Tensor) -> Vec<f32> {
    if img.dtype() == DType::F32 {
        img.to_vec::<f32>()
    } else {
        img.to_vec::<f64>().into_iter().map(|v| v as f32).collect()
    }
}

/// One axis of a bilinear resize: for each output index, the two source indices and weights.
#[derive(Debug, Clone)]
struct AxisTable {
    i0: Vec<usize>,
    i1: Vec<usize>,
    w0: Vec<f32>,
    w1: Vec<f32>,
}

impl AxisTable {
    /// PyTorch's `compute_source_index_and_lambda` for `align_corners=False`.
    fn new(input: usize, output: usize) -> AxisTable {
        let scale = input as f64 / output as f64;
        let mut t = AxisTable {
            i0: Vec::with_capacity(output),
            i1: Vec::with_capacity(output),
            w0: Vec::with_capacity(output),
            w1: Vec::with_capacity(output),
        };
        for d in 0..output {
            let src = (scale * (d as f64 + 0.5) - 0.5).max(0.0);
            let i0 = (src as usize).min(input - 1);
            let i1 = if i0 + 1 < input { i0 + 1 } else { i0 };
            let l1 = (src - i0 as f64) as f32;
            let l1 = if i1 == i0 { 0.0 } else { l1 };
            t.i0.push(i0);
            t.i1.push(i1);
            t.w0.push(1.0 - l1);
            t.w1.push(l1);
        }
        t
    }
}

/// A bilinear resize from `in_h × in_w` to `out_h × out_w` with its interpolation tables
/// precomputed; reuse one for every plane of the same size.
#[derive(Debug, Clone)]
pub struct Resizer {
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    rows: AxisTable,
    cols: AxisTable,
    row_used: Vec<bool>,
}

impl Resizer {
    /// Builds the tables; every size must be positive.
    pub fn new(in_h: usize, in_w: usize, out_h: usize, out_w: usize) -> Result<Resizer> {
        if in_h == 0 || in_w == 0 || out_h == 0 || out_w == 0 {
            return Err(DataError::Invalid(format!(
                "resize: sizes must be positive, got {in_h}×{in_w} → {out_h}×{out_w}"
            )));
        }
        let rows = AxisTable::new(in_h, out_h);
        let mut row_used = vec![false; in_h];
        for &i in rows.i0.iter().chain(&rows.i1) {
            row_used[i] = true;
        }
        Ok(Resizer {
            in_h,
            in_w,
            out_h,
            out_w,
            rows,
            cols: AxisTable::new(in_w, out_w),
            row_used,
        })
    }

    /// The output size `(height, width)`.
    pub fn output_size(&self) -> (usize, usize) {
        (self.out_h, self.out_w)
    }

    /// Resizes one plane: `src` holds `in_h * in_w` values, `dst` receives `out_h * out_w`.
    pub fn resize_plane(&self, src: &[f32], dst: &mut [f32]) -> Result<()> {
        if src.len() != self.in_h * self.in_w || dst.len() != self.out_h * self.out_w {
            return Err(DataError::Invalid(format!(
                "resize: plane buffers of {} and {} values do not match {}×{} → {}×{}",
                src.len(),
                dst.len(),
                self.in_h,
                self.in_w,
                self.out_h,
                self.out_w
            )));
        }
        let (iw, ow) = (self.in_w, self.out_w);
        let c = &self.cols;
        // Separable: interpolate the needed input rows horizontally, then blend row pairs.
        // Per output pixel this is h0 * (w0 a + w1 b) + h1 * (w0 c + w1 d), PyTorch's order.
        let mut tmp = vec![0.0f32; self.in_h * ow];
        for (y, t) in tmp.chunks_exact_mut(ow).enumerate() {
            if !self.row_used[y] {
                continue;
            }
            let r = &src[y * iw..][..iw];
            for (ox, o) in t.iter_mut().enumerate() {
                *o = c.w0[ox] * r[c.i0[ox]] + c.w1[ox] * r[c.i1[ox]];
            }
        }
        for (oy, out_row) in dst.chunks_exact_mut(ow).enumerate() {
            let t0 = &tmp[self.rows.i0[oy] * ow..][..ow];
            let t1 = &tmp[self.rows.i1[oy] * ow..][..ow];
            let (h0, h1) = (self.rows.w0[oy], self.rows.w1[oy]);
            for ((o, &a), &b) in out_row.iter_mut().zip(t0).zip(t1) {
                *o = h0 * a + h1 * b;
            }
        }
        Ok(())
    }
}

/// Resizes an image `[C, H, W]` (or `[H, W]`, or a batch `[N, C, H, W]`) to
/// `out_h × out_w` with bilinear interpolation, as PyTorch's
/// `F.interpolate(mode="bilinear", align_corners=False, antialias=False)`; returns `f32`.
pub fn resize_bilinear(img: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    let shape = img.shape().to_vec();
    let (n, c, h, w) = nchw("resize", &shape)?;
    let r = Resizer::new(h, w, out_h, out_w)?;
    let src = f32_data(&to_float_keep_range(img)?);
    let planes = n * c;
    let mut dst = vec![0.0f32; planes * out_h * out_w];
    if h * w > 0 {
        for (s, d) in src
            .chunks_exact(h * w)
            .zip(dst.chunks_exact_mut(out_h * out_w))
        {
            r.resize_plane(s, d)?;
        }
    }
    let mut out_shape = shape;
    let k = out_shape.len();
    out_shape[k - 2] = out_h;
    out_shape[k - 1] = out_w;
    Ok(Tensor::from_vec(dst, &out_shape)?)
}

/// A float tensor as is; integer pixels converted to `f32` without scaling.
fn to_float_keep_range(img: &Tensor) -> Result<Tensor> {
    if img.dtype().is_float() {
        Ok(img.clone())
    } else {
        Ok(img.to_dtype(DType::F32)?)
    }
}

/// Normalises each channel: `(x - mean[c]) / std[c]`, on `[C, H, W]` or `[N, C, H, W]`
/// (torchvision's `Normalize`); `mean` and `std` need one value per channel (or one value
/// for all), and every `std` must be non-zero.
pub(crate) fn normalize_float(img: &Tensor, mean: &[f32], std: &[f32]) -> Result<Tensor> {
    let shape = img.shape().to_vec();
    let (n, c, h, w) = nchw("normalize", &shape)?;
    let pick = |v: &[f32], what: &str| -> Result<Vec<f32>> {
        match v.len() {
            1 => Ok(vec![v[0]; c]),
            l if l == c => Ok(v.to_vec()),
            l => Err(DataError::Invalid(format!(
                "normalize: {what} has {l} values, expected 1 or {c} (one per channel)"
            ))),
        }
    };
    let mean = pick(mean, "mean")?;
    let std = pick(std, "std")?;
    if let Some(s) = std.iter().find(|s| **s == 0.0 || !s.is_finite()) {
        return Err(DataError::Invalid(format!(
            "normalize: std must be finite and non-zero, got {s}"
        )));
    }
    let mut data = f32_data(&to_float_keep_range(img)?);
    let plane = h * w;
    if plane > 0 {
        for (p, chunk) in data.chunks_exact_mut(plane).enumerate() {
            let ch = p % c;
            let (m, inv) = (mean[ch], 1.0 / std[ch]);
            for v in chunk {
                *v = (*v - m) * inv;
            }
        }
    }
    debug_assert_eq!(data.len(), n * c * plane);
    Ok(Tensor::from_vec(data, &shape)?)
}

/// The ImageNet channel means used with pretrained torchvision models (D2L 13.2).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// The ImageNet channel standard deviations used with pretrained torchvision models (D2L 13.2).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
