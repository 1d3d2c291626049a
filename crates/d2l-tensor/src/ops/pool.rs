//! Pooling (D2L 7.5): max and average pooling with PyTorch's options (stride, padding,
//! dilation, ceil mode, `count_include_pad`), adaptive average and max pooling, and
//! max pooling with the argmax indices. Inputs are `[N, C, H, W]` or `[C, H, W]`, f32 or
//! f64; the gradients are hand-written rules attached with [`Tensor::custom_op`].
//!
//! ```
//! use d2l_tensor::{Pool2dOptions, Tensor, Result};
//! # fn main() -> Result<()> {
//! let x = Tensor::arange(0.0, 16.0, 1.0)?.reshape([1, 1, 4, 4])?;
//! let y = x.max_pool2d(&Pool2dOptions::new(3).with_padding(1).with_stride(2))?;
//! assert_eq!(y.to_vec::<f32>(), vec![5.0, 7.0, 13.0, 15.0]);
//! # Ok(()) }
//! ```

use crate::cpu::pool::{self as kernels, Geom, Win};
use crate::cuda::native_nn::{self, AxisRule, PoolRules};
use crate::error::{bad_shape, invalid, Result};
use crate::{DType, Tensor};
use std::sync::Arc;

/// The options of a 2-D pooling window, as PyTorch's `MaxPool2d` / `AvgPool2d` take them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pool2dOptions {
    /// Window size (height, width).
    pub kernel: (usize, usize),
    /// Step between windows (height, width).
    pub stride: (usize, usize),
    /// Implicit padding on each side (height, width); at most half the kernel.
    pub padding: (usize, usize),
    /// Spacing between window elements (max pooling only).
    pub dilation: (usize, usize),
    /// Round the output size up instead of down (the last window must still start
    /// inside the input or the left padding).
    pub ceil_mode: bool,
    /// Average pooling: count the padding in the divisor.
    pub count_include_pad: bool,
}

impl Pool2dOptions {
    /// A `k × k` window with stride `k` (PyTorch's default), no padding, no dilation.
    pub fn new(k: usize) -> Self {
        Self::kernel_hw(k, k)
    }

    /// A `kh × kw` window with stride equal to the kernel.
    pub fn kernel_hw(kh: usize, kw: usize) -> Self {
        Pool2dOptions {
            kernel: (kh, kw),
            stride: (kh, kw),
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
            count_include_pad: true,
        }
    }

    /// The same stride along both axes.
    pub fn with_stride(self, s: usize) -> Self {
        self.with_stride_hw(s, s)
    }

    /// Stride per axis.
    pub fn with_stride_hw(mut self, sh: usize, sw: usize) -> Self {
        self.stride = (sh, sw);
        self
    }

    /// The same padding on both axes.
    pub fn with_padding(self, p: usize) -> Self {
        self.with_padding_hw(p, p)
    }

    /// Padding per axis.
    pub fn with_padding_hw(mut self, ph: usize, pw: usize) -> Self {
        self.padding = (ph, pw);
        self
    }

    /// The same dilation along both axes.
    pub fn with_dilation(self, d: usize) -> Self {
        self.with_dilation_hw(d, d)
    }

    /// Dilation per axis.
    pub fn with_dilation_hw(mut self, dh: usize, dw: usize) -> Self {
        self.dilation = (dh, dw);
        self
    }

    /// Round output sizes up (PyTorch's `ceil_mode`).
    pub fn with_ceil_mode(mut self, on: bool) -> Self {
        self.ceil_mode = on;
        self
    }

    /// Whether average pooling divides by the full window, padding included.
    pub fn with_count_include_pad(mut self, on: bool) -> Self {
        self.count_include_pad = on;
        self
    }
}

/// The input seen as planes: the output's leading dims, the number of planes, H and W.
fn planes_of(x: &Tensor, op: &'static str) -> Result<(Vec<usize>, usize, usize, usize)> {
    x.expect_float(op)?;
    let s = x.shape();
    if s.len() != 3 && s.len() != 4 {
        return Err(bad_shape(
            op,
            format!("expected a 3-D [C, H, W] or 4-D [N, C, H, W] input, got shape {s:?}"),
        ));
    }
    let (h, w) = (s[s.len() - 2], s[s.len() - 1]);
    let lead = s[..s.len() - 2].to_vec();
    if h == 0 || w == 0 || (s.len() == 4 && s[1] == 0) || (s.len() == 3 && s[0] == 0) {
        return Err(bad_shape(
            op,
            format!("expected non-zero channel and spatial sizes, got input shape {s:?}"),
        ));
    }
    Ok((lead.clone(), lead.iter().product(), h, w))
}

/// Output size of one axis, exactly as PyTorch's `pooling_output_shape`.
fn out_size(len: usize, k: usize, s: usize, p: usize, d: usize, ceil: bool) -> i64 {
    let (len, k, s, p, d) = (len as i64, k as i64, s as i64, p as i64, d as i64);
    let num = len + 2 * p - d * (k - 1) - 1 + if ceil { s - 1 } else { 0 };
    let mut o = num.div_euclid(s) + 1;
    if ceil && o > 0 && (o - 1) * s >= len + p {
        o -= 1;
    }
    o
}

/// Validates the options against the input and builds the window geometry.
fn window_geom(
    x: &Tensor,
    op: &'static str,
    o: &Pool2dOptions,
    avg: bool,
) -> Result<(Vec<usize>, Geom, PoolRules)> {
    let (lead, planes, h, w) = planes_of(x, op)?;
    let (k, s, p, d) = (o.kernel, o.stride, o.padding, o.dilation);
    let shape = x.shape();
    if k.0 == 0 || k.1 == 0 {
        return Err(invalid(
            op,
            format!("kernel size must be positive, got {k:?} (input shape {shape:?})"),
        ));
    }
    if s.0 == 0 || s.1 == 0 {
        return Err(invalid(
            op,
            format!("stride must be positive, got {s:?} (input shape {shape:?})"),
        ));
    }
    if d.0 == 0 || d.1 == 0 {
        return Err(invalid(
            op,
            format!("dilation must be positive, got {d:?} (input shape {shape:?})"),
        ));
    }
    if avg && d != (1, 1) {
        return Err(invalid(
            op,
            format!("average pooling has no dilation (as in PyTorch), got {d:?}"),
        ));
    }
    if p.0 > k.0 / 2 || p.1 > k.1 / 2 {
        return Err(invalid(
            op,
            format!("padding {p:?} must be at most half of the kernel size {k:?} (input shape {shape:?})"),
        ));
    }
    let ext = ((k.0 - 1) * d.0 + 1, (k.1 - 1) * d.1 + 1);
    if ext.0 > h + 2 * p.0 || ext.1 > w + 2 * p.1 {
        return Err(bad_shape(
            op,
            format!(
                "kernel {k:?} (dilation {d:?}, extent {}×{}) is larger than the padded input {}×{} (input shape {shape:?}, padding {p:?})",
                ext.0, ext.1, h + 2 * p.0, w + 2 * p.1
            ),
        ));
    }
    let (oh, ow) = (
        out_size(h, k.0, s.0, p.0, d.0, o.ceil_mode),
        out_size(w, k.1, s.1, p.1, d.1, o.ceil_mode),
    );
    if oh <= 0 || ow <= 0 {
        return Err(bad_shape(
            op,
            format!("input shape {shape:?} with kernel {k:?}, stride {s:?}, padding {p:?}, dilation {d:?} gives output size {oh}×{ow}, which is too small"),
        ));
    }
    let axis = |n: i64, len: usize, k: usize, s: usize, p: usize, d: usize| -> Vec<Win> {
        (0..n as usize)
            .map(|i| {
                let raw = (i * s) as i64 - p as i64;
                if avg {
                    let pad_end = (raw + k as i64).min((len + p) as i64);
                    let (st, en) = (raw.max(0), pad_end.min(len as i64));
                    let count = if o.count_include_pad {
                        pad_end - raw
                    } else {
                        en - st
                    };
                    Win {
                        start: st as usize,
                        end: en.max(st) as usize,
                        count: count.max(1) as usize,
                    }
                } else {
                    let en = (raw + ((k - 1) * d) as i64 + 1).min(len as i64);
                    let mut st = raw;
                    while st < 0 {
                        st += d as i64;
                    }
                    Win {
                        start: st as usize,
                        end: en.max(st) as usize,
                        count: 1,
                    }
                }
            })
            .collect()
    };
    let rows = axis(oh, h, k.0, s.0, p.0, d.0);
    let cols = axis(ow, w, k.1, s.1, p.1, d.1);
    let two = k == (2, 2) && s == (2, 2) && p == (0, 0) && d == (1, 1);
    let mut out_shape = lead;
    out_shape.extend([oh as usize, ow as usize]);
    let rule = |k: usize, s: usize, p: usize, d: usize| {
        if avg {
            AxisRule::Avg {
                k,
                s,
                p,
                count_include_pad: o.count_include_pad,
            }
        } else {
            AxisRule::Max { k, s, p, d }
        }
    };
    let rules = PoolRules {
        rows: rule(k.0, s.0, p.0, d.0),
        cols: rule(k.1, s.1, p.1, d.1),
    };
    Ok((
        out_shape,
        Geom::new(planes, (h, w), rows, cols, d, two, Some((k.1, s.1, p.1))),
        rules,
    ))
}

/// Adaptive windows: start = ⌊i·L/n⌋, end = ⌈(i+1)·L/n⌉.
fn adaptive_geom(
    x: &Tensor,
    op: &'static str,
    out_hw: (usize, usize),
) -> Result<(Vec<usize>, Geom, PoolRules)> {
    let (lead, planes, h, w) = planes_of(x, op)?;
    if out_hw.0 == 0 || out_hw.1 == 0 {
        return Err(invalid(
            op,
            format!(
                "output size must be positive, got {out_hw:?} (input shape {:?})",
                x.shape()
            ),
        ));
    }
    let axis = |n: usize, len: usize| -> Vec<Win> {
        (0..n)
            .map(|i| {
                let st = i * len / n;
                let en = ((i + 1) * len).div_ceil(n);
                Win {
                    start: st,
                    end: en,
                    count: en - st,
                }
            })
            .collect()
    };
    let mut out_shape = lead;
    out_shape.extend([out_hw.0, out_hw.1]);
    let geom = Geom::new(
        planes,
        (h, w),
        axis(out_hw.0, h),
        axis(out_hw.1, w),
        (1, 1),
        false,
        None,
    );
    let rules = PoolRules {
        rows: AxisRule::Adaptive,
        cols: AxisRule::Adaptive,
    };
    Ok((out_shape, geom, rules))
}

/// The gradient `g` in `dtype` (gradients normally arrive in the output's dtype already).
fn grad_in(g: &Tensor, dtype: DType) -> Result<Tensor> {
    if g.dtype() == dtype {
        Ok(g.clone())
    } else {
        g.to_dtype(dtype)
    }
}

fn max_impl(
    x: &Tensor,
    out_shape: Vec<usize>,
    geom: Geom,
    rules: PoolRules,
    want_idx: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let track = Tensor::tracks(&[x]);
    let with_idx = want_idx || track;
    let (val, idx) = match native_nn::max_pool(x, &geom, &rules, with_idx)? {
        // The GPU kernel: outputs already on the input's device.
        Some((v, i)) => (
            Tensor::from_parts(v, &out_shape, None),
            i.map(|i| Tensor::from_parts(i, &out_shape, None)),
        ),
        None => {
            let (val, idx) = float_dispatch!(x, "max_pool2d", T => {
                let (v, i) = x.with_slice::<T, _>(|s| kernels::max_forward(s, &geom, with_idx))?;
                (Tensor::from_vec(v, &out_shape)?.to(x.device())?, i)
            });
            let idx = if with_idx {
                Some(Tensor::from_vec(idx, &out_shape)?.to(x.device())?)
            } else {
                None
            };
            (val, idx)
        }
    };
    if !track {
        return Ok((val, idx.filter(|_| want_idx)));
    }
    let saved = idx.clone().expect("indices are computed when tracking");
    let (in_shape, dtype, geom) = (x.shape().to_vec(), x.dtype(), Arc::new(geom));
    let backward: crate::BackwardFn = Arc::new(move |g: &Tensor| {
        let g = grad_in(g, dtype)?;
        if let Some(s) = native_nn::max_pool_backward(&g, &saved, &geom, &rules)? {
            return Ok(vec![Some(Tensor::from_parts(s, &in_shape, None))]);
        }
        let gi = float_dispatch!(g, "max_pool2d backward", T => {
            let v = g.with_slice::<T, _>(|gs| {
                saved.with_slice::<i64, _>(|ix| kernels::max_backward::<T>(gs, ix, &geom))
            })??;
            Tensor::from_vec(v, &in_shape)?.to(g.device())?
        });
        Ok(vec![Some(gi)])
    });
    Ok((
        Tensor::custom_op_named("bwd:max_pool", val, &[x], backward),
        idx.filter(|_| want_idx),
    ))
}

fn avg_impl(x: &Tensor, out_shape: Vec<usize>, geom: Geom, rules: PoolRules) -> Result<Tensor> {
    let val = match native_nn::avg_pool(x, &geom, &rules)? {
        Some(v) => Tensor::from_parts(v, &out_shape, None),
        None => float_dispatch!(x, "avg_pool2d", T => {
            let v = x.with_slice::<T, _>(|s| kernels::avg_forward(s, &geom))?;
            Tensor::from_vec(v, &out_shape)?.to(x.device())?
        }),
    };
    if !Tensor::tracks(&[x]) {
        return Ok(val);
    }
    let (in_shape, dtype, geom) = (x.shape().to_vec(), x.dtype(), Arc::new(geom));
    let backward: crate::BackwardFn = Arc::new(move |g: &Tensor| {
        let g = grad_in(g, dtype)?;
        if let Some(s) = native_nn::avg_pool_backward(&g, &geom, &rules)? {
            return Ok(vec![Some(Tensor::from_parts(s, &in_shape, None))]);
        }
        let gi = float_dispatch!(g, "avg_pool2d backward", T => {
            let v = g.with_slice::<T, _>(|gs| kernels::avg_backward::<T>(gs, &geom))?;
            Tensor::from_vec(v, &in_shape)?.to(g.device())?
        });
        Ok(vec![Some(gi)])
    });
    Ok(Tensor::custom_op_named("bwd:avg_pool", val, &[x], backward))
}

impl Tensor {
    /// 2-D max pooling of an `[N, C, H, W]` (or `[C, H, W]`) input (PyTorch's
    /// `F.max_pool2d`); the gradient goes to the first maximum of each window.
    pub fn max_pool2d(&self, opts: &Pool2dOptions) -> Result<Tensor> {
        let _prof = crate::profile::scope("max_pool2d");
        let (shape, geom, rules) = window_geom(self, "max_pool2d", opts, false)?;
        Ok(max_impl(self, shape, geom, rules, false)?.0)
    }

    /// Max pooling that also returns, as i64, the position `h·W + w` of each maximum
    /// within its plane (PyTorch's `return_indices=True`).
    pub fn max_pool2d_with_indices(&self, opts: &Pool2dOptions) -> Result<(Tensor, Tensor)> {
        let _prof = crate::profile::scope("max_pool2d");
        let (shape, geom, rules) = window_geom(self, "max_pool2d_with_indices", opts, false)?;
        let (v, i) = max_impl(self, shape, geom, rules, true)?;
        Ok((v, i.expect("indices requested")))
    }

    /// 2-D average pooling (PyTorch's `F.avg_pool2d`): the divisor is the full window
    /// (padding included, clipped at the right padding edge) when `count_include_pad`,
    /// else the number of input elements in the window.
    pub fn avg_pool2d(&self, opts: &Pool2dOptions) -> Result<Tensor> {
        let _prof = crate::profile::scope("avg_pool2d");
        let (shape, geom, rules) = window_geom(self, "avg_pool2d", opts, true)?;
        avg_impl(self, shape, geom, rules)
    }

    /// Adaptive average pooling to `out_hw` (PyTorch's `F.adaptive_avg_pool2d`); window
    /// `i` of an axis of length `L` covers `⌊i·L/n⌋ .. ⌈(i+1)·L/n⌉`. `(1, 1)` is global
    /// average pooling.
    pub fn adaptive_avg_pool2d(&self, out_hw: (usize, usize)) -> Result<Tensor> {
        let _prof = crate::profile::scope("adaptive_avg_pool2d");
        let (shape, geom, rules) = adaptive_geom(self, "adaptive_avg_pool2d", out_hw)?;
        avg_impl(self, shape, geom, rules)
    }

    /// Adaptive max pooling to `out_hw` (PyTorch's `F.adaptive_max_pool2d`).
    pub fn adaptive_max_pool2d(&self, out_hw: (usize, usize)) -> Result<Tensor> {
        let _prof = crate::profile::scope("adaptive_max_pool2d");
        let (shape, geom, rules) = adaptive_geom(self, "adaptive_max_pool2d", out_hw)?;
        Ok(max_impl(self, shape, geom, rules, false)?.0)
    }

    /// Adaptive max pooling that also returns the i64 argmax positions `h·W + w`.
    pub fn adaptive_max_pool2d_with_indices(
        &self,
        out_hw: (usize, usize),
    ) -> Result<(Tensor, Tensor)> {
        let _prof = crate::profile::scope("adaptive_max_pool2d");
        let (shape, geom, rules) = adaptive_geom(self, "adaptive_max_pool2d_with_indices", out_hw)?;
        let (v, i) = max_impl(self, shape, geom, rules, true)?;
        Ok((v, i.expect("indices requested")))
    }
}
