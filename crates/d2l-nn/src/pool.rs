//! Pooling and upsampling layers (D2L 6.5, 8.8, 13.10): the from-scratch `pool2d` of 6.5,
//! `MaxPool2d`, `AvgPool2d` (PyTorch defaults: stride = kernel size), the adaptive pools,
//! and `Upsample` (nearest, bilinear).
//!
//! ```
//! use d2l_nn::pool::MaxPool2d;
//! use d2l_nn::Module;
//! use d2l_tensor::{Result, Tensor};
//! # fn main() -> Result<()> {
//! let x = Tensor::arange(0.0, 16.0, 1.0)?.reshape([1, 1, 4, 4])?;
//! let y = MaxPool2d::new(3).padding(1).stride(2).forward(&x)?;
//! assert_eq!(y.to_vec::<f32>(), vec![5.0, 7.0, 13.0, 15.0]); // D2L 6.5.2
//! # Ok(()) }
//! ```

use crate::conv::{batched, layer_err, py_float, IntoPair};
use crate::module::Module;
use d2l_tensor::{Error, Pool2dOptions, Result, Tensor};

/// Which reduction the from-scratch [`pool2d`] applies to each window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// The window's maximum.
    Max,
    /// The window's mean.
    Avg,
}

/// Pooling written from scratch (D2L 6.5.1): slide a `(ph, pw)` window over `x` [H, W]
/// with stride 1 and no padding, and take each window's maximum or mean. Differentiable
/// (built from `narrow`, `max_all` / `mean_all` and `stack`); layers use the fused ops.
pub fn pool2d(x: &Tensor, pool_size: impl IntoPair, mode: PoolMode) -> Result<Tensor> {
    let (ph, pw) = pool_size.into_pair();
    if x.rank() != 2 || ph == 0 || pw == 0 || ph > x.shape()[0] || pw > x.shape()[1] {
        return Err(Error::ShapeMismatch {
            op: "pool2d",
            lhs: x.shape().to_vec(),
            rhs: vec![ph, pw],
            why: "do not agree: expected a 2-D input and a non-empty window that fits inside it"
                .into(),
        });
    }
    let (oh, ow) = (x.shape()[0] - ph + 1, x.shape()[1] - pw + 1);
    let mut cells = Vec::with_capacity(oh * ow);
    for i in 0..oh {
        for j in 0..ow {
            let window = x.narrow(0, i, ph)?.narrow(1, j, pw)?;
            cells.push(match mode {
                PoolMode::Max => window.max_all()?,
                PoolMode::Avg => window.mean_all()?,
            });
        }
    }
    let refs: Vec<&Tensor> = cells.iter().collect();
    Tensor::stack(&refs, 0)?.reshape([oh, ow])
}

/// PyTorch's pooling defaults: stride = kernel, no padding, dilation 1, floor mode,
/// padded zeros counted.
fn window(kernel: (usize, usize)) -> Pool2dOptions {
    let mut o = Pool2dOptions::new(kernel.0);
    o.kernel = kernel;
    o.stride = kernel;
    o.padding = (0, 0);
    o.dilation = (1, 1);
    o.ceil_mode = false;
    o.count_include_pad = true;
    o
}

fn fmt_pair((a, b): (usize, usize)) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("({a}, {b})")
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// The checks PyTorch makes before pooling, as errors that name the layer and shapes.
fn check_pool(op: &'static str, name: &str, x: &Tensor, o: &Pool2dOptions) -> Result<()> {
    let zero = |v: (usize, usize)| v.0 == 0 || v.1 == 0;
    if zero(o.kernel) || zero(o.stride) || zero(o.dilation) {
        return Err(layer_err(
            op,
            name,
            format!(
                "kernel_size {:?}, stride {:?} and dilation {:?} must be positive",
                o.kernel, o.stride, o.dilation
            ),
        ));
    }
    if 2 * o.padding.0 > o.kernel.0 || 2 * o.padding.1 > o.kernel.1 {
        return Err(layer_err(
            op,
            name,
            format!(
                "padding {:?} must be at most half of the kernel size {:?}",
                o.padding, o.kernel
            ),
        ));
    }
    let (h, w) = (x.shape()[2], x.shape()[3]);
    let eh = o.dilation.0 * (o.kernel.0 - 1) + 1;
    let ew = o.dilation.1 * (o.kernel.1 - 1) + 1;
    if eh > h + 2 * o.padding.0 || ew > w + 2 * o.padding.1 {
        return Err(Error::ShapeMismatch {
            op,
            lhs: x.shape().to_vec(),
            rhs: vec![o.kernel.0, o.kernel.1],
            why: format!(
                "do not agree: {name}: the (dilated) window {eh}×{ew} is larger than the padded input {}×{}",
                h + 2 * o.padding.0,
                w + 2 * o.padding.1
            ),
        });
    }
    Ok(())
}

macro_rules! pool_builders {
    () => {
        /// Stride, one number or `(sh, sw)` (default: the kernel size).
        pub fn stride(mut self, s: impl IntoPair) -> Self {
            self.opts.stride = s.into_pair();
            self
        }

        /// Implicit padding on both sides, at most half the kernel (default 0).
        pub fn padding(mut self, p: impl IntoPair) -> Self {
            self.opts.padding = p.into_pair();
            self
        }

        /// Rounds the output size up instead of down (default false).
        pub fn ceil_mode(mut self, on: bool) -> Self {
            self.opts.ceil_mode = on;
            self
        }

        /// The options handed to the op.
        pub fn options(&self) -> &Pool2dOptions {
            &self.opts
        }
    };
}

/// Max pooling (D2L 6.5): input [N, C, H, W] (or [C, H, W]); each channel pooled alone.
#[derive(Debug, Clone, Copy)]
pub struct MaxPool2d {
    opts: Pool2dOptions,
}

impl MaxPool2d {
    /// A `kernel_size` window (one number or `(kh, kw)`) with stride = kernel size.
    pub fn new(kernel_size: impl IntoPair) -> Self {
        MaxPool2d {
            opts: window(kernel_size.into_pair()),
        }
    }

    pool_builders!();

    /// Spacing between window elements (default 1).
    pub fn dilation(mut self, d: impl IntoPair) -> Self {
        self.opts.dilation = d.into_pair();
        self
    }

    /// The pooled values and, for each, the flat index h·W + w of the maximum within its
    /// input plane (PyTorch's `return_indices=True`, for `MaxUnpool2d`-style uses).
    pub fn forward_with_indices(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let name = self.describe();
        let mut idx = None;
        let y = batched("MaxPool2d", &name, x, |x| {
            check_pool("MaxPool2d", &name, x, &self.opts)?;
            let (y, i) = x.max_pool2d_with_indices(&self.opts)?;
            idx = Some(i);
            Ok(y)
        })?;
        let idx = idx.expect("set by the closure");
        let idx = if x.rank() == 3 { idx.squeeze(0)? } else { idx };
        Ok((y, idx))
    }
}

impl Module for MaxPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let name = self.describe();
        batched("MaxPool2d", &name, x, |x| {
            check_pool("MaxPool2d", &name, x, &self.opts)?;
            x.max_pool2d(&self.opts)
        })
    }

    fn describe(&self) -> String {
        let o = &self.opts;
        format!(
            "MaxPool2d(kernel_size={}, stride={}, padding={}, dilation={}, ceil_mode={})",
            fmt_pair(o.kernel),
            fmt_pair(o.stride),
            fmt_pair(o.padding),
            fmt_pair(o.dilation),
            py_bool(o.ceil_mode)
        )
    }
}

/// Average pooling (D2L 6.5): input [N, C, H, W] (or [C, H, W]). Padded zeros count in
/// the divisor by default (`count_include_pad`), as in PyTorch.
#[derive(Debug, Clone, Copy)]
pub struct AvgPool2d {
    opts: Pool2dOptions,
}

impl AvgPool2d {
    /// A `kernel_size` window (one number or `(kh, kw)`) with stride = kernel size.
    pub fn new(kernel_size: impl IntoPair) -> Self {
        AvgPool2d {
            opts: window(kernel_size.into_pair()),
        }
    }

    pool_builders!();

    /// Whether padded zeros count in each window's divisor (default true).
    pub fn count_include_pad(mut self, on: bool) -> Self {
        self.opts.count_include_pad = on;
        self
    }
}

impl Module for AvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let name = self.describe();
        batched("AvgPool2d", &name, x, |x| {
            check_pool("AvgPool2d", &name, x, &self.opts)?;
            x.avg_pool2d(&self.opts)
        })
    }

    fn describe(&self) -> String {
        let o = &self.opts;
        format!(
            "AvgPool2d(kernel_size={}, stride={}, padding={})",
            fmt_pair(o.kernel),
            fmt_pair(o.stride),
            fmt_pair(o.padding)
        )
    }
}

fn check_adaptive(op: &'static str, name: &str, x: &Tensor, out: (usize, usize)) -> Result<()> {
    if out.0 == 0 || out.1 == 0 {
        return Err(layer_err(
            op,
            name,
            format!("output_size must be positive, got {out:?}"),
        ));
    }
    if x.shape()[2] == 0 || x.shape()[3] == 0 {
        return Err(layer_err(
            op,
            name,
            format!(
                "expected a non-empty spatial input, got shape {:?}",
                x.shape()
            ),
        ));
    }
    Ok(())
}

/// Adaptive average pooling to a fixed output size (D2L 8.2's NiN and 8.6's ResNet use
/// `(1, 1)`: global average pooling); any input size.
#[derive(Debug, Clone, Copy)]
pub struct AdaptiveAvgPool2d {
    output_size: (usize, usize),
}

impl AdaptiveAvgPool2d {
    /// Pools to `output_size` (one number or `(oh, ow)`).
    pub fn new(output_size: impl IntoPair) -> Self {
        AdaptiveAvgPool2d {
            output_size: output_size.into_pair(),
        }
    }
}

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let name = self.describe();
        batched("AdaptiveAvgPool2d", &name, x, |x| {
            check_adaptive("AdaptiveAvgPool2d", &name, x, self.output_size)?;
            x.adaptive_avg_pool2d(self.output_size)
        })
    }

    fn describe(&self) -> String {
        format!("AdaptiveAvgPool2d(output_size={:?})", self.output_size)
    }
}

/// Adaptive max pooling to a fixed output size.
#[derive(Debug, Clone, Copy)]
pub struct AdaptiveMaxPool2d {
    output_size: (usize, usize),
}

impl AdaptiveMaxPool2d {
    /// Pools to `output_size` (one number or `(oh, ow)`).
    pub fn new(output_size: impl IntoPair) -> Self {
        AdaptiveMaxPool2d {
            output_size: output_size.into_pair(),
        }
    }
}

impl Module for AdaptiveMaxPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let name = self.describe();
        batched("AdaptiveMaxPool2d", &name, x, |x| {
            check_adaptive("AdaptiveMaxPool2d", &name, x, self.output_size)?;
            x.adaptive_max_pool2d(self.output_size)
        })
    }

    fn describe(&self) -> String {
        format!("AdaptiveMaxPool2d(output_size={:?})", self.output_size)
    }
}

/// How [`Upsample`] interpolates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsampleMode {
    /// Copy the nearest input pixel.
    Nearest,
    /// Bilinear interpolation; `align_corners` as in PyTorch.
    Bilinear {
        /// Whether the corner pixels of input and output are aligned.
        align_corners: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum UpsampleTarget {
    Size((usize, usize)),
    Scale((f64, f64)),
}

/// Upsampling of [N, C, H, W] (or [C, H, W]) to a fixed size or by a scale factor
/// (`nn.Upsample`); with a scale factor the output is ⌊H·scale⌋ × ⌊W·scale⌋.
#[derive(Debug, Clone, Copy)]
pub struct Upsample {
    target: UpsampleTarget,
    mode: UpsampleMode,
}

impl Upsample {
    /// To a fixed output size (one number or `(oh, ow)`).
    pub fn with_size(size: impl IntoPair, mode: UpsampleMode) -> Self {
        Upsample {
            target: UpsampleTarget::Size(size.into_pair()),
            mode,
        }
    }

    /// By a scale factor on both spatial dims.
    pub fn with_scale_factor(scale: f64, mode: UpsampleMode) -> Self {
        Self::with_scale_factors((scale, scale), mode)
    }

    /// By `(scale_h, scale_w)`.
    pub fn with_scale_factors(scale: (f64, f64), mode: UpsampleMode) -> Self {
        Upsample {
            target: UpsampleTarget::Scale(scale),
            mode,
        }
    }

    /// The output's spatial size for an input of `(h, w)`.
    pub fn output_size(&self, (h, w): (usize, usize)) -> Result<(usize, usize)> {
        let out = match self.target {
            UpsampleTarget::Size(s) => s,
            UpsampleTarget::Scale((sh, sw)) => {
                if !(sh > 0.0 && sw > 0.0 && sh.is_finite() && sw.is_finite()) {
                    return Err(layer_err(
                        "Upsample",
                        &self.describe(),
                        format!("scale factors must be positive and finite, got ({sh}, {sw})"),
                    ));
                }
                (
                    (h as f64 * sh).floor() as usize,
                    (w as f64 * sw).floor() as usize,
                )
            }
        };
        if out.0 == 0 || out.1 == 0 || h == 0 || w == 0 {
            return Err(layer_err(
                "Upsample",
                &self.describe(),
                format!("input size ({h}, {w}) gives an empty output {out:?}"),
            ));
        }
        Ok(out)
    }
}

impl Module for Upsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let name = self.describe();
        batched("Upsample", &name, x, |x| {
            let out = self.output_size((x.shape()[2], x.shape()[3]))?;
            match self.mode {
                UpsampleMode::Nearest => x.upsample_nearest2d(out),
                UpsampleMode::Bilinear { align_corners } => {
                    x.upsample_bilinear2d(out, align_corners)
                }
            }
        })
    }

    fn describe(&self) -> String {
        let target = match self.target {
            UpsampleTarget::Size(s) => format!("size={s:?}"),
            UpsampleTarget::Scale((a, b)) if a == b => format!("scale_factor={}", py_float(a)),
            UpsampleTarget::Scale((a, b)) => {
                format!("scale_factor=({}, {})", py_float(a), py_float(b))
            }
        };
        let mode = match self.mode {
            UpsampleMode::Nearest => "'nearest'",
            UpsampleMode::Bilinear { .. } => "'bilinear'",
        };
        format!("Upsample({target}, mode={mode})")
    }
}
