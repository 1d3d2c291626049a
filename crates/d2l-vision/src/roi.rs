//! Region-of-interest pooling (D2L 13.8): [`roi_pool`] and [`roi_align`], with their
//! gradients with respect to the feature map.
//!
//! Both cut one fixed-size `(ph, pw)` window out of a feature map for every region
//! proposal, whatever the proposal's size, so that proposals of different shapes can
//! share the layers that follow (Fast and Faster R-CNN, Mask R-CNN). The book calls
//! `torchvision.ops.roi_pool(X, rois, output_size=(2, 2), spatial_scale=0.1)`; the
//! functions here follow torchvision's CPU kernels exactly, rounding and edge rules
//! included, and are tested against values torchvision computed.
//!
//! Regions come as a `(K, 5)` float tensor, one row `[batch_index, x1, y1, x2, y2]` per
//! region, in the coordinates of the input image; `spatial_scale` maps them onto the
//! feature map (0.1 for a map ten times smaller than the image).
//!
//! ```
//! use d2l_tensor::{Result, Tensor};
//! use d2l_vision::roi::roi_pool;
//! # fn main() -> Result<()> {
//! let x = Tensor::arange(0.0, 16.0, 1.0)?.reshape([1, 1, 4, 4])?;
//! let rois = Tensor::from_vec(vec![0.0f32, 0., 0., 20., 20., 0., 0., 10., 30., 30.], &[2, 5])?;
//! let y = roi_pool(&x, &rois, (2, 2), 0.1)?;
//! assert_eq!(y.shape(), &[2, 1, 2, 2]);
//! assert_eq!(y.to_vec::<f32>(), vec![5., 6., 9., 10., 9., 11., 13., 15.]);
//! # Ok(()) }
//! ```

use d2l_tensor::{DType, Error, Float, Result, Tensor};
use std::sync::Arc;

/// The feature map's dimensions `(N, C, H, W)`.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
}

/// One validated region: its image in the batch and `[x1, y1, x2, y2]` in the input's
/// float type (so that the geometry is computed in the same precision as torchvision).
#[derive(Debug, Clone, Copy)]
struct Roi<T> {
    batch: usize,
    xyxy: [T; 4],
}

fn bad_shape(op: &'static str, msg: String) -> Error {
    Error::BadShape { op, msg }
}

fn invalid(op: &'static str, msg: String) -> Error {
    Error::InvalidArgument { op, msg }
}

/// `Ok` for an f32 or f64 `t`, else a dtype error of `op` saying what was `expected`.
fn need_float(op: &'static str, t: &Tensor, expected: &str) -> Result<()> {
    if matches!(t.dtype(), DType::F32 | DType::F64) {
        return Ok(());
    }
    Err(Error::DTypeMismatch {
        op,
        expected: expected.into(),
        got: t.dtype(),
    })
}

/// Checks the input, rois, output size and scale that both ops share; returns the
/// map's dimensions and the rois (in `f64`).
fn check_common(
    op: &'static str,
    input: &Tensor,
    rois: &Tensor,
    output_size: (usize, usize),
    spatial_scale: f32,
) -> Result<(Dims, Vec<Roi<f64>>)> {
    if input.shape().len() != 4 {
        return Err(bad_shape(
            op,
            format!(
                "expected a 4-D input (N, C, H, W), got shape {:?}",
                input.shape()
            ),
        ));
    }
    need_float(op, input, "an f32 or f64 input")?;
    // The kernels read both on the host; like torchvision, they must share a device.
    if rois.device() != input.device() {
        return Err(Error::DeviceMismatch {
            op,
            lhs: input.device(),
            rhs: rois.device(),
        });
    }
    let s = input.shape();
    let dims = Dims {
        n: s[0],
        c: s[1],
        h: s[2],
        w: s[3],
    };
    if dims.h == 0 || dims.w == 0 {
        return Err(bad_shape(
            op,
            format!(
                "expected a feature map with H >= 1 and W >= 1, got shape {:?}",
                input.shape()
            ),
        ));
    }
    if rois.shape().len() != 2 || rois.shape()[1] != 5 {
        return Err(bad_shape(
            op,
            format!(
                "expected rois of shape (K, 5) with rows [batch_index, x1, y1, x2, y2], got shape {:?}",
                rois.shape()
            ),
        ));
    }
    need_float(op, rois, "f32 or f64 rois")?;
    if output_size.0 == 0 || output_size.1 == 0 {
        return Err(invalid(
            op,
            format!(
                "expected an output size (ph, pw) with ph >= 1 and pw >= 1, got {output_size:?}"
            ),
        ));
    }
    if !spatial_scale.is_finite() || spatial_scale < 0.0 {
        return Err(invalid(
            op,
            format!("expected a finite spatial_scale >= 0, got {spatial_scale}"),
        ));
    }
    let flat = rois.to_vec::<f64>();
    let mut out = Vec::with_capacity(rois.shape()[0]);
    for (k, row) in flat.chunks_exact(5).enumerate() {
        let b = row[0];
        if !(b.is_finite() && b.fract() == 0.0 && b >= 0.0 && b < dims.n as f64) {
            return Err(invalid(
                op,
                format!(
                    "roi {k}: expected an integer batch index in 0..{} (the input's batch size), got {b}",
                    dims.n
                ),
            ));
        }
        let xyxy = [row[1], row[2], row[3], row[4]];
        if xyxy.iter().any(|v| !v.is_finite()) {
            return Err(invalid(
                op,
                format!("roi {k}: expected finite coordinates [x1, y1, x2, y2], got {xyxy:?}"),
            ));
        }
        if xyxy[2] < xyxy[0] || xyxy[3] < xyxy[1] {
            return Err(invalid(
                op,
                format!("roi {k}: expected x1 <= x2 and y1 <= y2, got [x1, y1, x2, y2] = {xyxy:?}"),
            ));
        }
        out.push(Roi {
            batch: b as usize,
            xyxy,
        });
    }
    Ok((dims, out))
}

/// The rois in the input's float type.
fn typed_rois<T: Float>(rois: &[Roi<f64>]) -> Vec<Roi<T>> {
    rois.iter()
        .map(|r| Roi {
            batch: r.batch,
            xyxy: r.xyxy.map(T::of),
        })
        .collect()
}

/// Whether autograd has to record an op on `x`.
fn tracks(x: &Tensor) -> bool {
    d2l_tensor::is_grad_enabled() && x.requires_grad()
}

/// The incoming gradient as a row-major vector of `T`.
fn grad_vec<T: Float>(g: &Tensor) -> Result<Vec<T>> {
    let g = if g.dtype() == T::DTYPE {
        g.clone()
    } else {
        g.to_dtype(T::DTYPE)?
    };
    g.with_slice::<T, _>(|s| s.to_vec())
}

// ---------------------------------------------------------------------------
// RoI pooling
// ---------------------------------------------------------------------------

/// The clipped window `[start, end)` of every bin along one axis of one roi, as
/// torchvision's `roi_pool` computes it.
fn pool_bins<T: Float>(lo: T, hi: T, scale: T, bins: usize, size: usize) -> Vec<(usize, usize)> {
    // torchvision: int start = round(x1 * scale); rounding half away from zero, like
    // Rust's `round` (exact in f64 for an f32 value).
    let round = |v: T| v.to_f64().round() as i64;
    let start = round(lo * scale);
    let end = round(hi * scale);
    let len = end.saturating_sub(start).saturating_add(1).max(1);
    let bin = T::of(len as f64) / T::of(bins as f64);
    (0..bins)
        .map(|p| {
            let s = (T::of(p as f64) * bin).to_f64().floor() as i64;
            let e = (T::of((p + 1) as f64) * bin).to_f64().ceil() as i64;
            let clip = |v: i64| (v.saturating_add(start)).clamp(0, size as i64) as usize;
            (clip(s), clip(e))
        })
        .collect()
}

/// Forward pass of RoI max pooling: the pooled values and the argmax (`h·W + w` within
/// the plane, −1 for an empty bin).
fn pool_forward<T: Float>(
    x: &[T],
    d: Dims,
    rois: &[Roi<T>],
    (ph, pw): (usize, usize),
    scale: T,
) -> (Vec<T>, Vec<i64>) {
    let plane = d.h * d.w;
    let per_roi = d.c * ph * pw;
    let mut out = vec![T::ZERO; rois.len() * per_roi];
    let mut arg = vec![-1i64; rois.len() * per_roi];
    // torchvision starts every non-empty bin at -FLT_MAX, whatever the dtype.
    let lowest = T::of(-(f32::MAX as f64));
    for (k, r) in rois.iter().enumerate() {
        let [x1, y1, x2, y2] = r.xyxy;
        let hb = pool_bins(y1, y2, scale, ph, d.h);
        let wb = pool_bins(x1, x2, scale, pw, d.w);
        for c in 0..d.c {
            let src = &x[(r.batch * d.c + c) * plane..][..plane];
            let base = (k * d.c + c) * ph * pw;
            for (i, &(hs, he)) in hb.iter().enumerate() {
                for (j, &(ws, we)) in wb.iter().enumerate() {
                    let empty = he <= hs || we <= ws;
                    let mut best = if empty { T::ZERO } else { lowest };
                    let mut at = -1i64;
                    for h in hs..he {
                        for w in ws..we {
                            let v = src[h * d.w + w];
                            if v > best {
                                best = v;
                                at = (h * d.w + w) as i64;
                            }
                        }
                    }
                    out[base + i * pw + j] = best;
                    arg[base + i * pw + j] = at;
                }
            }
        }
    }
    (out, arg)
}

/// Backward pass of RoI max pooling: each output gradient goes to its argmax.
fn pool_backward<T: Float>(
    g: &[T],
    arg: &[i64],
    d: Dims,
    batches: &[usize],
    bins: usize,
) -> Vec<T> {
    let plane = d.h * d.w;
    let mut gi = vec![T::ZERO; d.n * d.c * plane];
    for (k, &b) in batches.iter().enumerate() {
        for c in 0..d.c {
            let dst = (b * d.c + c) * plane;
            let base = (k * d.c + c) * bins;
            for o in base..base + bins {
                if arg[o] >= 0 {
                    let p = dst + arg[o] as usize;
                    gi[p] = gi[p] + g[o];
                }
            }
        }
    }
    gi
}

fn roi_pool_typed<T: Float>(
    input: &Tensor,
    dims: Dims,
    rois: &[Roi<f64>],
    output_size: (usize, usize),
    spatial_scale: f32,
) -> Result<(Tensor, Tensor)> {
    let rois_t = typed_rois::<T>(rois);
    let scale = T::of(spatial_scale as f64);
    let (vals, arg) =
        input.with_slice::<T, _>(|x| pool_forward(x, dims, &rois_t, output_size, scale))?;
    let shape = [rois.len(), dims.c, output_size.0, output_size.1];
    // Computed on host copies; the results go back to the input's device.
    let dev = input.device();
    let value = Tensor::from_vec(vals, &shape)?.to(dev)?;
    let argmax = Tensor::from_vec(arg.clone(), &shape)?.to(dev)?;
    if !tracks(input) {
        return Ok((value, argmax));
    }
    let batches: Arc<Vec<usize>> = Arc::new(rois.iter().map(|r| r.batch).collect());
    let arg = Arc::new(arg);
    let in_shape = input.shape().to_vec();
    let bins = output_size.0 * output_size.1;
    let backward: d2l_tensor::BackwardFn = Arc::new(move |g: &Tensor| {
        let g = grad_vec::<T>(g)?;
        let gi = pool_backward(&g, &arg, dims, &batches, bins);
        Ok(vec![Some(Tensor::from_vec(gi, &in_shape)?.to(dev)?)])
    });
    Ok((
        Tensor::custom_op_named("bwd:roi_pool", value, &[input], backward),
        argmax,
    ))
}

/// RoI max pooling (D2L 13.8; `torchvision.ops.roi_pool`): for every region, a
/// `(C, ph, pw)` grid of maxima over the part of `input` the region covers.
///
/// - `input`: the feature map, `(N, C, H, W)` with `H, W >= 1`, f32 or f64.
/// - `rois`: `(K, 5)` float rows `[batch_index, x1, y1, x2, y2]` in image coordinates;
///   the batch index must be an integer in `0..N` and `x1 <= x2`, `y1 <= y2`.
/// - `output_size`: `(ph, pw)`, both at least 1.
/// - `spatial_scale`: image-to-map factor (≥ 0); the book uses 0.1.
///
/// As in torchvision, each coordinate is scaled and rounded to the nearest map cell
/// (`round(x1 · scale)`, halves away from zero), the region spans
/// `max(round(x2·s) − round(x1·s) + 1, 1)` cells, bin `p` of `n` covers
/// `⌊p·len/n⌋ .. ⌈(p+1)·len/n⌉` cells from the region's start, clipped to the map, and
/// an empty bin (entirely off the map) gives 0. Returns `(K, C, ph, pw)` in the input's
/// dtype. The gradient with respect to `input` goes to the first maximum of each bin;
/// the rois get none. Errors (naming `roi_pool`) on a malformed input, rois, output size
/// or scale.
pub fn roi_pool(
    input: &Tensor,
    rois: &Tensor,
    output_size: (usize, usize),
    spatial_scale: f32,
) -> Result<Tensor> {
    Ok(roi_pool_with_argmax(input, rois, output_size, spatial_scale)?.0)
}

/// [`roi_pool`] that also returns, as an i64 `(K, C, ph, pw)` tensor, the position
/// `h·W + w` of each maximum within its `(H, W)` plane, or −1 for an empty bin (the
/// `argmax` torchvision's kernel keeps for the backward pass).
pub fn roi_pool_with_argmax(
    input: &Tensor,
    rois: &Tensor,
    output_size: (usize, usize),
    spatial_scale: f32,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "roi_pool";
    let (dims, rois) = check_common(OP, input, rois, output_size, spatial_scale)?;
    match input.dtype() {
        DType::F32 => roi_pool_typed::<f32>(input, dims, &rois, output_size, spatial_scale),
        _ => roi_pool_typed::<f64>(input, dims, &rois, output_size, spatial_scale),
    }
}

// ---------------------------------------------------------------------------
// RoI align
// ---------------------------------------------------------------------------

/// One bilinear sampling coordinate along one axis: the two neighbouring cells and
/// their weights, or `None` for a sample that falls more than one cell off the map.
#[derive(Debug, Clone, Copy)]
struct Tap<T> {
    low: usize,
    high: usize,
    w_low: T,
    w_high: T,
}

/// torchvision's edge rules for one coordinate `v` on an axis of `size` cells:
/// outside `[-1, size]` the sample contributes nothing; otherwise it is clamped to
/// `[0, size − 1]` and split between the cells below and above.
fn tap<T: Float>(v: T, size: usize) -> Option<Tap<T>> {
    let top = T::of(size as f64);
    if !(v >= T::of(-1.0) && v <= top) {
        return None;
    }
    let mut v = if v <= T::ZERO { T::ZERO } else { v };
    let mut low = v.to_f64() as usize;
    let high;
    if low >= size - 1 {
        low = size - 1;
        high = low;
        v = T::of(low as f64);
    } else {
        high = low + 1;
    }
    let l = v - T::of(low as f64);
    Some(Tap {
        low,
        high,
        w_low: T::ONE - l,
        w_high: l,
    })
}

/// The sampling geometry of one roi: where its bins start, how large they are and the
/// `gh × gw` grid of samples per bin.
#[derive(Debug, Clone, Copy)]
struct AlignGeom<T> {
    start: (T, T),
    bin: (T, T),
    grid: (usize, usize),
}

impl<T: Float> AlignGeom<T> {
    /// The taps of the sample rows of bin row `i`.
    fn ys(&self, i: usize, h: usize) -> Vec<Option<Tap<T>>> {
        axis_taps(self.start.0, self.bin.0, i, self.grid.0, h)
    }

    /// The taps of the sample columns of bin column `j`.
    fn xs(&self, j: usize, w: usize) -> Vec<Option<Tap<T>>> {
        axis_taps(self.start.1, self.bin.1, j, self.grid.1, w)
    }
}

/// Settings of [`roi_align`] that the backward pass needs again.
#[derive(Debug, Clone, Copy)]
struct AlignParams {
    out: (usize, usize),
    scale: f32,
    sampling_ratio: i32,
    aligned: bool,
}

/// The taps of the `grid` samples of bin `p` along one axis, at torchvision's
/// coordinates `start + p·bin + (i + ½)·bin / grid`.
fn axis_taps<T: Float>(
    start: T,
    bin: T,
    p: usize,
    grid: usize,
    size: usize,
) -> Vec<Option<Tap<T>>> {
    (0..grid)
        .map(|i| {
            let v =
                start + T::of(p as f64) * bin + T::of(i as f64 + 0.5) * bin / T::of(grid as f64);
            tap(v, size)
        })
        .collect()
}

/// The largest adaptive sampling grid along one axis (2^20 samples per bin side).
const MAX_GRID_SIDE: f64 = (1u64 << 20) as f64;
/// The largest number of samples per bin: beyond it torchvision's `int` product of the
/// grid sides overflows.
const MAX_SAMPLES_PER_BIN: f64 = i32::MAX as f64;

fn align_geom<T: Float>(roi: &Roi<T>, p: AlignParams, k: usize) -> Result<AlignGeom<T>> {
    let (ph, pw) = p.out;
    let scale = T::of(p.scale as f64);
    let offset = if p.aligned { T::of(0.5) } else { T::ZERO };
    let [x1, y1, x2, y2] = roi.xyxy;
    let start_w = x1 * scale - offset;
    let start_h = y1 * scale - offset;
    let end_w = x2 * scale - offset;
    let end_h = y2 * scale - offset;
    let mut roi_w = end_w - start_w;
    let mut roi_h = end_h - start_h;
    if !p.aligned {
        // Malformed (smaller than one cell) rois are forced to 1 × 1.
        if roi_w < T::ONE {
            roi_w = T::ONE;
        }
        if roi_h < T::ONE {
            roi_h = T::ONE;
        }
    }
    let bin_h = roi_h / T::of(ph as f64);
    let bin_w = roi_w / T::of(pw as f64);
    let grid = |bin: T| -> f64 {
        if p.sampling_ratio > 0 {
            p.sampling_ratio as f64
        } else {
            bin.to_f64().ceil().max(0.0)
        }
    };
    let (gh, gw) = (grid(bin_h), grid(bin_w));
    if gh > MAX_GRID_SIDE || gw > MAX_GRID_SIDE || gh * gw > MAX_SAMPLES_PER_BIN {
        return Err(invalid(
            "roi_align",
            format!(
                "roi {k}: the sampling grid would be {gh} × {gw} samples per bin; expected at most \
                 {MAX_GRID_SIDE} per side and {MAX_SAMPLES_PER_BIN} in all (use a smaller \
                 sampling_ratio, a smaller roi or a larger output size)"
            ),
        ));
    }
    Ok(AlignGeom {
        start: (start_h, start_w),
        bin: (bin_h, bin_w),
        grid: (gh as usize, gw as usize),
    })
}

/// Forward pass of RoI align: the average of the bilinear samples of every bin.
fn align_forward<T: Float>(
    x: &[T],
    d: Dims,
    rois: &[Roi<T>],
    geoms: &[AlignGeom<T>],
    (ph, pw): (usize, usize),
) -> Vec<T> {
    let plane = d.h * d.w;
    let mut out = vec![T::ZERO; rois.len() * d.c * ph * pw];
    for (k, (r, g)) in rois.iter().zip(geoms).enumerate() {
        let (gh, gw) = g.grid;
        let count = T::of((gh * gw).max(1) as f64);
        for i in 0..ph {
            let ys = g.ys(i, d.h);
            for j in 0..pw {
                let xs = g.xs(j, d.w);
                for c in 0..d.c {
                    let src = &x[(r.batch * d.c + c) * plane..][..plane];
                    let mut acc = T::ZERO;
                    for ty in ys.iter().flatten() {
                        let (r0, r1) = (ty.low * d.w, ty.high * d.w);
                        for tx in xs.iter().flatten() {
                            let (w1, w2) = (ty.w_low * tx.w_low, ty.w_low * tx.w_high);
                            let (w3, w4) = (ty.w_high * tx.w_low, ty.w_high * tx.w_high);
                            acc = acc
                                + (w1 * src[r0 + tx.low]
                                    + w2 * src[r0 + tx.high]
                                    + w3 * src[r1 + tx.low]
                                    + w4 * src[r1 + tx.high]);
                        }
                    }
                    out[((k * d.c + c) * ph + i) * pw + j] = acc / count;
                }
            }
        }
    }
    out
}

/// Backward pass of RoI align: each output gradient, divided by the sample count, is
/// spread over the four cells of every sample with the bilinear weights (in the same
/// order of additions as torchvision's kernel).
fn align_backward<T: Float>(
    g: &[T],
    d: Dims,
    rois: &[Roi<T>],
    geoms: &[AlignGeom<T>],
    (ph, pw): (usize, usize),
) -> Vec<T> {
    let plane = d.h * d.w;
    let mut gi = vec![T::ZERO; d.n * d.c * plane];
    for (k, (r, geom)) in rois.iter().zip(geoms).enumerate() {
        let (gh, gw) = geom.grid;
        let count = T::of((gh * gw) as f64);
        for i in 0..ph {
            let ys = geom.ys(i, d.h);
            for j in 0..pw {
                let xs = geom.xs(j, d.w);
                for c in 0..d.c {
                    let dst = &mut gi[(r.batch * d.c + c) * plane..][..plane];
                    let go = g[((k * d.c + c) * ph + i) * pw + j];
                    for ty in ys.iter().flatten() {
                        let (r0, r1) = (ty.low * d.w, ty.high * d.w);
                        for tx in xs.iter().flatten() {
                            let (w1, w2) = (ty.w_low * tx.w_low, ty.w_low * tx.w_high);
                            let (w3, w4) = (ty.w_high * tx.w_low, ty.w_high * tx.w_high);
                            let mut add = |p: usize, w: T| dst[p] = dst[p] + go * w / count;
                            add(r0 + tx.low, w1);
                            add(r0 + tx.high, w2);
                            add(r1 + tx.low, w3);
                            add(r1 + tx.high, w4);
                        }
                    }
                }
            }
        }
    }
    gi
}

fn roi_align_typed<T: Float>(
    input: &Tensor,
    dims: Dims,
    rois: &[Roi<f64>],
    p: AlignParams,
) -> Result<Tensor> {
    let rois_t = typed_rois::<T>(rois);
    let geoms = rois_t
        .iter()
        .enumerate()
        .map(|(k, r)| align_geom(r, p, k))
        .collect::<Result<Vec<_>>>()?;
    let vals = input.with_slice::<T, _>(|x| align_forward(x, dims, &rois_t, &geoms, p.out))?;
    let dev = input.device();
    let value = Tensor::from_vec(vals, &[rois.len(), dims.c, p.out.0, p.out.1])?.to(dev)?;
    if !tracks(input) {
        return Ok(value);
    }
    let saved = Arc::new((rois_t, geoms));
    let in_shape = input.shape().to_vec();
    let backward: d2l_tensor::BackwardFn = Arc::new(move |g: &Tensor| {
        let g = grad_vec::<T>(g)?;
        let (rois_t, geoms) = &*saved;
        let gi = align_backward(&g, dims, rois_t, geoms, p.out);
        Ok(vec![Some(Tensor::from_vec(gi, &in_shape)?.to(dev)?)])
    });
    Ok(Tensor::custom_op_named(
        "bwd:roi_align",
        value,
        &[input],
        backward,
    ))
}

/// RoI align (Mask R-CNN; `torchvision.ops.roi_align`, the successor of the book's RoI
/// pooling in 13.8): for every region, a `(C, ph, pw)` grid of bin averages of
/// bilinearly interpolated samples, with no rounding of the region to the map's cells.
///
/// - `input`: the feature map, `(N, C, H, W)` with `H, W >= 1`, f32 or f64.
/// - `rois`: `(K, 5)` float rows `[batch_index, x1, y1, x2, y2]` in image coordinates;
///   the batch index must be an integer in `0..N` and `x1 <= x2`, `y1 <= y2`.
/// - `output_size`: `(ph, pw)`, both at least 1.
/// - `spatial_scale`: image-to-map factor (≥ 0).
/// - `sampling_ratio`: samples per bin along each axis; `<= 0` picks
///   `⌈roi_size / bins⌉` per roi and axis (torchvision's adaptive default, −1).
/// - `aligned`: shift the scaled box by −½ cell so that pixel centres line up
///   (Detectron2's correction); when false, a region smaller than one cell is widened
///   to one cell, as in the original RoI align.
///
/// Sample `(iy, ix)` of bin `(i, j)` sits at
/// `y = y1·s − o + i·bin_h + (iy + ½)·bin_h / grid_h` (likewise `x`). As in torchvision,
/// a sample with `y < −1` or `y > H` (or the same for `x`) contributes 0 but still
/// counts in the average; otherwise it is clamped to `[0, H − 1]` and interpolated
/// between its neighbouring cells. Returns `(K, C, ph, pw)` in the input's dtype. The
/// gradient with respect to `input` spreads each output gradient over the sampled
/// cells with the bilinear weights; the rois get none. Errors (naming `roi_align`) on
/// a malformed input, rois, output size or scale.
pub fn roi_align(
    input: &Tensor,
    rois: &Tensor,
    output_size: (usize, usize),
    spatial_scale: f32,
    sampling_ratio: i32,
    aligned: bool,
) -> Result<Tensor> {
    const OP: &str = "roi_align";
    let (dims, rois) = check_common(OP, input, rois, output_size, spatial_scale)?;
    let p = AlignParams {
        out: output_size,
        scale: spatial_scale,
        sampling_ratio,
        aligned,
    };
    match input.dtype() {
        DType::F32 => roi_align_typed::<f32>(input, dims, &rois, p),
        _ => roi_align_typed::<f64>(input, dims, &rois, p),
    }
}
