//! Normalisation layers' ops (D2L 7.5 batch norm; group norm), 2-D upsampling and
//! reflect / replicate / constant padding (D2L 13.10, 14.11), each a fused CPU kernel
//! with a hand-written backward attached through [`Tensor::custom_op`].

use crate::cpu::norm::{self as k, Border, Geom, Units};
use crate::cuda::native_nn;
use crate::error::{bad_shape, invalid, Error, Result};
use crate::grad_mode::no_grad;
use crate::{Element, Float, Tensor};
use std::sync::Arc;

/// How [`Tensor::pad2d`] fills the border.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PadMode {
    /// A constant value (F.pad's `mode="constant"`).
    Constant(f64),
    /// Mirror without repeating the edge (`mode="reflect"`); each pad must be smaller
    /// than the dimension it pads.
    Reflect,
    /// Repeat the edge value (`mode="replicate"`).
    Replicate,
}

/// Checks that an optional per-channel tensor has `c` elements and converts it to `dtype`.
fn per_channel_param(
    op: &'static str,
    name: &str,
    t: Option<&Tensor>,
    c: usize,
    x: &Tensor,
) -> Result<Option<Tensor>> {
    let Some(t) = t else { return Ok(None) };
    if t.numel() != c || t.rank() != 1 {
        return Err(Error::ShapeMismatch {
            op,
            lhs: x.shape().to_vec(),
            rhs: t.shape().to_vec(),
            why: format!(
                "do not agree: {name} must have shape [{c}] (one value per channel of the input)"
            ),
        });
    }
    x.same_device(op, t)?;
    if !t.dtype().is_float() {
        return Err(Error::DTypeMismatch {
            op,
            expected: format!("a float {name}"),
            got: t.dtype(),
        });
    }
    Ok(Some(t.to_dtype(x.dtype())?))
}

/// `[N, C, rest...]` as (N, C, product of the rest).
fn geom(x: &Tensor) -> Geom {
    let s = x.shape();
    Geom {
        n: s[0],
        c: s[1],
        hw: s[2..].iter().product(),
    }
}

/// The fused normalisation: forward kernel plus the custom backward. Returns the output
/// and the statistics (per unit). On a real GPU the kernels of `cuda::native_nn` run and
/// the statistics are downloaded only when `want_stats` (otherwise they come back empty).
#[allow(clippy::too_many_arguments)]
fn fused_norm<T: Float>(
    x: &Tensor,
    g: Geom,
    units: Units,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    given: Option<(Vec<f64>, Vec<f64>)>,
    eps: f64,
    through: bool,
    want_stats: bool,
) -> Result<(Tensor, k::Stats)> {
    let xc = x.contiguous()?.detach();
    let given_ref = given.as_ref().map(|(m, i)| (&m[..], &i[..]));
    let native = native_nn::norm_forward(&xc, g, units, given_ref, eps, w, b, want_stats)?;
    // The host copy of γ (only for the host path).
    let mut gamma: Option<Arc<Vec<T>>> = None;
    let (value, stats, dev) = match native {
        Some(nf) => {
            let stats = nf.stats.unwrap_or(k::Stats {
                mean: Vec::new(),
                var: Vec::new(),
                istd: Vec::new(),
            });
            (
                Tensor::from_parts(nf.y, x.shape(), None),
                stats,
                Some(Arc::new(nf.dev)),
            )
        }
        None => {
            gamma = w.map(|w| Arc::new(w.to_vec::<T>()));
            let beta: Option<Vec<T>> = b.map(|b| b.to_vec::<T>());
            let (y, stats) = xc.with_slice::<T, _>(|xs| {
                k::norm_forward(
                    xs,
                    g,
                    units,
                    given_ref,
                    eps,
                    gamma.as_deref().map(|v| &v[..]),
                    beta.as_deref(),
                )
            })?;
            (Tensor::from_vec(y, x.shape())?.to(x.device())?, stats, None)
        }
    };
    let mut inputs = vec![x];
    inputs.extend(w);
    inputs.extend(b);
    if !Tensor::tracks(&inputs) {
        return Ok((value, stats));
    }
    let need_dx = x.requires_grad();
    let w_shape = w.map(|w| w.shape().to_vec());
    let b_shape = b.map(|b| b.shape().to_vec());
    let w_det = w.map(|w| w.detach());
    let (mean, istd) = (stats.mean.clone(), stats.istd.clone());
    let shape = x.shape().to_vec();
    let backward: crate::BackwardFn = Arc::new(move |grad: &Tensor| {
        let gc = grad.to_dtype(T::DTYPE)?.contiguous()?;
        let need = (need_dx, w_shape.is_some(), b_shape.is_some());
        let host_stats = (&mean[..], &istd[..]);
        if let Some((dx, dw, db)) = native_nn::norm_backward(
            &xc,
            &gc,
            g,
            units,
            dev.as_deref(),
            host_stats,
            w_det.as_ref(),
            through,
            need,
        )? {
            let mut out = vec![dx.map(|s| Tensor::from_parts(s, &shape, None))];
            if let Some(ws) = &w_shape {
                out.push(dw.map(|s| Tensor::from_parts(s, ws, None)));
            }
            if let Some(bs) = &b_shape {
                out.push(db.map(|s| Tensor::from_parts(s, bs, None)));
            }
            return Ok(out);
        }
        // The host path; statistics kept only on the GPU are fetched first.
        let fetched;
        let (mean, istd) = match dev.as_deref() {
            Some(d) if mean.is_empty() => {
                fetched = native_nn::download_stats(d, units.count(g))?;
                (&fetched.mean[..], &fetched.istd[..])
            }
            _ => (&mean[..], &istd[..]),
        };
        let gamma_host: Option<Arc<Vec<T>>> = match &gamma {
            Some(v) => Some(v.clone()),
            None => w_det.as_ref().map(|w| Arc::new(w.to_vec::<T>())),
        };
        let (dx, s_dy, s_dyxh) = gc.with_slice::<T, _>(|dy| {
            xc.with_slice::<T, _>(|xs| {
                k::norm_backward(
                    xs,
                    dy,
                    g,
                    units,
                    mean,
                    istd,
                    gamma_host.as_deref().map(|v| &v[..]),
                    through,
                    need_dx,
                )
            })
        })??;
        let mut out = vec![match dx {
            Some(v) => Some(Tensor::from_vec(v, &shape)?.to(grad.device())?),
            None => None,
        }];
        if let Some(ws) = &w_shape {
            out.push(Some(
                Tensor::from_vec(k::per_channel::<T>(&s_dyxh, g.n, g.c), ws)?.to(grad.device())?,
            ));
        }
        if let Some(bs) = &b_shape {
            out.push(Some(
                Tensor::from_vec(k::per_channel::<T>(&s_dy, g.n, g.c), bs)?.to(grad.device())?,
            ));
        }
        Ok(out)
    });
    Ok((
        Tensor::custom_op_named("bwd:norm", value, &inputs, backward),
        stats,
    ))
}

impl Tensor {
    /// Batch normalisation (D2L 7.5; PyTorch's `F.batch_norm`).
    ///
    /// `x` is `[N, C]` (after a fully connected layer), `[N, C, L]` or `[N, C, H, W]`
    /// (after a convolution); the statistics are per channel, over every dim but 1.
    ///
    /// - `training = true`: normalise with the batch mean and the biased batch variance;
    ///   if running statistics are given, update them in place (under `no_grad`) as
    ///   PyTorch does: `running = (1 - momentum)·running + momentum·batch`, with the
    ///   *unbiased* batch variance for `running_var`. The backward goes through the batch
    ///   statistics: `dx = γ/(mσ)·(m·dy − Σdy − x̂·Σ(dy·x̂))`.
    /// - `training = false`: normalise with the running statistics (an error if absent);
    ///   the backward treats them as constants.
    ///
    /// `weight` (γ) and `bias` (β) are optional `[C]` tensors and get gradients; the
    /// running statistics never do. Fused kernel: one pass for the mean, one (from cache)
    /// for the variance and one to normalise, in parallel over channels.
    ///
    /// ```
    /// use d2l_tensor::Tensor;
    /// let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 5.0], &[2, 2]).unwrap();
    /// let rm = Tensor::zeros(&[2]);
    /// let rv = Tensor::ones(&[2]);
    /// let y = x.batch_norm(Some(&rm), Some(&rv), None, None, true, 0.1, 0.0).unwrap();
    /// for (a, b) in y.to_vec::<f32>().iter().zip([-1.0, -1.0, 1.0, 1.0]) {
    ///     assert!((a - b).abs() < 1e-6);
    /// }
    /// assert_eq!(rm.to_vec::<f32>(), vec![0.2, 0.35]); // 0.9·0 + 0.1·[2, 3.5]
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm(
        &self,
        running_mean: Option<&Tensor>,
        running_var: Option<&Tensor>,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        training: bool,
        momentum: f64,
        eps: f64,
    ) -> Result<Tensor> {
        let _prof = crate::profile::scope("batch_norm");
        const OP: &str = "batch_norm";
        self.expect_float(OP)?;
        if self.rank() < 2 {
            return Err(bad_shape(
                OP,
                format!(
                    "expected an input of shape [N, C] or [N, C, *] (rank >= 2), got shape {:?}",
                    self.shape()
                ),
            ));
        }
        let g = geom(self);
        let w = per_channel_param(OP, "weight", weight, g.c, self)?;
        let b = per_channel_param(OP, "bias", bias, g.c, self)?;
        for (name, t) in [("running_mean", running_mean), ("running_var", running_var)] {
            if let Some(t) = t {
                if t.numel() != g.c || t.rank() != 1 {
                    return Err(Error::ShapeMismatch {
                        op: OP,
                        lhs: self.shape().to_vec(),
                        rhs: t.shape().to_vec(),
                        why: format!("do not agree: {name} must have shape [{}] (one value per channel of the input)", g.c),
                    });
                }
                self.same_device(OP, t)?;
            }
        }
        let m = g.n * g.hw;
        let given = if training {
            if m <= 1 {
                return Err(invalid(
                    OP,
                    format!(
                        "expected more than 1 value per channel when training, got input of shape {:?}",
                        self.shape()
                    ),
                ));
            }
            None
        } else {
            let (Some(rm), Some(rv)) = (running_mean, running_var) else {
                return Err(invalid(
                    OP,
                    "eval mode (training = false) normalises with the running statistics: running_mean and running_var are required",
                ));
            };
            let mean = rm.to_f64_vec();
            let istd = rv
                .to_f64_vec()
                .iter()
                .map(|v| 1.0 / (v + eps).sqrt())
                .collect();
            Some((mean, istd))
        };
        let (y, stats) = float_dispatch!(self, OP, T => fused_norm::<T>(
            self, g, Units::PerChannel, w.as_ref(), b.as_ref(), given, eps, training,
            training && (running_mean.is_some() || running_var.is_some())
        )?);
        if training {
            no_grad(|| -> Result<()> {
                if let Some(rm) = running_mean {
                    let new: Vec<f64> = rm
                        .to_f64_vec()
                        .iter()
                        .zip(&stats.mean)
                        .map(|(r, b)| (1.0 - momentum) * r + momentum * b)
                        .collect();
                    rm.copy_(&Tensor::from_vec(new, rm.shape())?)?;
                }
                if let Some(rv) = running_var {
                    let unbias = m as f64 / (m - 1) as f64;
                    let new: Vec<f64> = rv
                        .to_f64_vec()
                        .iter()
                        .zip(&stats.var)
                        .map(|(r, v)| (1.0 - momentum) * r + momentum * v * unbias)
                        .collect();
                    rv.copy_(&Tensor::from_vec(new, rv.shape())?)?;
                }
                Ok(())
            })?;
        }
        Ok(y)
    }

    /// Group normalisation (PyTorch's `F.group_norm`): `x` is `[N, C, *]`, the channels
    /// are split into `groups` groups (which must divide C) and each (sample, group) is
    /// normalised with its own mean and biased variance; `weight`/`bias` are `[C]`.
    /// Fused kernel (same as batch norm's, with (sample, group) units), parallel over
    /// units, with the full backward through the statistics.
    pub fn group_norm(
        &self,
        groups: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        let _prof = crate::profile::scope("group_norm");
        const OP: &str = "group_norm";
        self.expect_float(OP)?;
        if self.rank() < 2 {
            return Err(bad_shape(
                OP,
                format!(
                    "expected an input of shape [N, C, *] (rank >= 2), got shape {:?}",
                    self.shape()
                ),
            ));
        }
        let g = geom(self);
        if groups == 0 || !g.c.is_multiple_of(groups) {
            return Err(invalid(
                OP,
                format!(
                    "the number of channels ({}) must be divisible by the number of groups ({groups}); input shape {:?}",
                    g.c,
                    self.shape()
                ),
            ));
        }
        let w = per_channel_param(OP, "weight", weight, g.c, self)?;
        let b = per_channel_param(OP, "bias", bias, g.c, self)?;
        Ok(float_dispatch!(self, OP, T => fused_norm::<T>(
            self, g, Units::Groups(groups), w.as_ref(), b.as_ref(), None, eps, true, false
        )?.0))
    }

    /// Nearest-neighbour upsampling (or downsampling) of `[N, C, H, W]` to
    /// `[N, C, out_h, out_w]`, PyTorch's `F.interpolate(mode="nearest")`: output `i`
    /// reads input `floor(i·in/out)`. The backward sums the gradient of every output
    /// into the input it was read from.
    pub fn upsample_nearest2d(&self, out_hw: (usize, usize)) -> Result<Tensor> {
        const OP: &str = "upsample_nearest2d";
        let (planes, ih, iw) = self.check_resample(OP, out_hw)?;
        let rows = k::nearest_map(ih, out_hw.0);
        let cols = k::nearest_map(iw, out_hw.1);
        float_dispatch!(self, OP, T => self.gather_op::<T>(planes, (ih, iw), rows, cols, T::ZERO))
    }

    /// Bilinear resampling of `[N, C, H, W]` to `[N, C, out_h, out_w]`, PyTorch's
    /// `F.interpolate(mode="bilinear", align_corners=...)`: with `align_corners` the corner
    /// pixels of input and output coincide (`src = i·(in-1)/(out-1)`); without, pixel
    /// centres are matched (`src = (i + 0.5)·in/out - 0.5`, clamped at 0). The backward is
    /// the adjoint (each output's gradient spread over its four inputs).
    pub fn upsample_bilinear2d(
        &self,
        out_hw: (usize, usize),
        align_corners: bool,
    ) -> Result<Tensor> {
        const OP: &str = "upsample_bilinear2d";
        let (planes, ih, iw) = self.check_resample(OP, out_hw)?;
        float_dispatch!(self, OP, T => {
            let rows = Arc::new(k::linear_map::<T>(ih, out_hw.0, align_corners));
            let cols = Arc::new(k::linear_map::<T>(iw, out_hw.1, align_corners));
            let xc = self.contiguous()?;
            let y = xc.with_slice::<T, _>(|x| k::bilinear_forward(x, planes, (ih, iw), &rows, &cols))?;
            let shape = self.shape().to_vec();
            let value = Tensor::from_vec(y, &[shape[0], shape[1], out_hw.0, out_hw.1])?
                .to(self.device())?;
            let backward: crate::BackwardFn = Arc::new(move |g: &Tensor| {
                let gc = g.to_dtype(<T as Element>::DTYPE)?.contiguous()?;
                let dx = gc.with_slice::<T, _>(|dy| k::bilinear_backward(dy, planes, (ih, iw), &rows, &cols))?;
                Ok(vec![Some(Tensor::from_vec(dx, &shape)?.to(g.device())?)])
            });
            Ok(Tensor::custom_op(value, &[self], backward))
        })
    }

    /// Pads the last two dims by `(left, right, top, bottom)`, like `F.pad(x, (l, r, t, b),
    /// mode)`: with a constant, by reflection (each pad must be smaller than the dim it
    /// pads) or by replicating the edge. Input rank >= 2 (usually `[N, C, H, W]`). The
    /// backward is the adjoint: border gradients are added back to the inputs they copy.
    pub fn pad2d(&self, pads: (usize, usize, usize, usize), mode: PadMode) -> Result<Tensor> {
        const OP: &str = "pad2d";
        if self.rank() < 2 {
            return Err(bad_shape(
                OP,
                format!(
                    "expected an input of rank >= 2 (usually [N, C, H, W]), got shape {:?}",
                    self.shape()
                ),
            ));
        }
        let r = self.rank();
        let (ih, iw) = (self.shape()[r - 2], self.shape()[r - 1]);
        let (l, rt, t, b) = pads;
        let (border, fill) = match mode {
            PadMode::Constant(v) => (Border::Constant, v),
            PadMode::Reflect => (Border::Reflect, 0.0),
            PadMode::Replicate => (Border::Replicate, 0.0),
        };
        for (dim, size, (p0, p1)) in [(r - 1, iw, (l, rt)), (r - 2, ih, (t, b))] {
            let bad = match mode {
                PadMode::Reflect => p0 >= size || p1 >= size,
                PadMode::Replicate => size == 0 && p0 + p1 > 0,
                PadMode::Constant(_) => false,
            };
            if bad {
                return Err(invalid(
                    OP,
                    format!(
                        "{} padding needs pads {} the size of the dim they pad, but got pads ({p0}, {p1}) for dim {dim} of size {size} (input shape {:?})",
                        if mode == PadMode::Reflect { "reflect" } else { "replicate" },
                        if mode == PadMode::Reflect { "smaller than" } else { "no larger than a non-empty" },
                        self.shape()
                    ),
                ));
            }
        }
        let planes = self.shape()[..r - 2].iter().product();
        let rows = k::pad_map(ih, t, b, border);
        let cols = k::pad_map(iw, l, rt, border);
        float_dispatch!(self, OP, T => self.gather_op::<T>(planes, (ih, iw), rows, cols, T::of(fill)))
    }

    /// Validates a 2-D resampling and returns (planes, H, W).
    fn check_resample(
        &self,
        op: &'static str,
        out_hw: (usize, usize),
    ) -> Result<(usize, usize, usize)> {
        self.expect_float(op)?;
        if self.rank() != 4 {
            return Err(bad_shape(
                op,
                format!(
                    "expected an input of shape [N, C, H, W], got shape {:?}",
                    self.shape()
                ),
            ));
        }
        let s = self.shape();
        if s[2] == 0 || s[3] == 0 || out_hw.0 == 0 || out_hw.1 == 0 {
            return Err(invalid(
                op,
                format!(
                    "input and output sizes must be positive, got input {:?} and output size {out_hw:?}",
                    s
                ),
            ));
        }
        Ok((s[0] * s[1], s[2], s[3]))
    }

    /// A gather through per-axis index maps on the last two dims, with its scatter-add
    /// backward (nearest upsampling and padding).
    fn gather_op<T: Float>(
        &self,
        planes: usize,
        (ih, iw): (usize, usize),
        rows: Vec<Option<usize>>,
        cols: Vec<Option<usize>>,
        fill: T,
    ) -> Result<Tensor> {
        let xc = self.contiguous()?;
        let y = xc.with_slice::<T, _>(|x| k::gather2d(x, planes, (ih, iw), &rows, &cols, fill))?;
        let in_shape = self.shape().to_vec();
        let mut out_shape = in_shape.clone();
        let r = out_shape.len();
        out_shape[r - 2] = rows.len();
        out_shape[r - 1] = cols.len();
        let value = Tensor::from_vec(y, &out_shape)?.to(self.device())?;
        let backward: crate::BackwardFn = Arc::new(move |g: &Tensor| {
            let gc = g.to_dtype(T::DTYPE)?.contiguous()?;
            let dx =
                gc.with_slice::<T, _>(|dy| k::scatter2d(dy, planes, (ih, iw), &rows, &cols))?;
            Ok(vec![Some(Tensor::from_vec(dx, &in_shape)?.to(g.device())?)])
        });
        Ok(Tensor::custom_op(value, &[self], backward))
    }
}
