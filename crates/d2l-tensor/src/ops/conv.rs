//! Convolutions (D2L 7.2–7.4) and transposed convolutions (D2L 14.10) with PyTorch's
//! semantics: `conv2d` and `conv_transpose2d` with stride, per-side padding, dilation,
//! groups and bias. The kernels live in `cpu/conv.rs`; the gradients are attached with
//! [`Tensor::custom_op`] and call the same kernels (the input gradient of `conv2d` is a
//! transposed convolution and vice versa; the weight gradient correlates input and output
//! gradient).

use crate::cpu::conv::{self as kernels, Geom};
use crate::error::{bad_shape, invalid, Error, Result};
use crate::storage::Storage;
use crate::{DType, Float, Tensor};
use std::sync::Arc;

/// Options of [`Tensor::conv2d`] (PyTorch's `stride`, `padding`, `dilation`, `groups`;
/// padding may differ per side, like `F.pad` followed by an unpadded conv).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conv2dOptions {
    /// Step between output positions, `(sh, sw)`.
    pub stride: (usize, usize),
    /// Zero padding `(top, bottom, left, right)`.
    pub padding: (usize, usize, usize, usize),
    /// Spacing between kernel taps, `(dh, dw)`.
    pub dilation: (usize, usize),
    /// Number of channel groups (`C_in` for a depthwise convolution).
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: (1, 1),
            padding: (0, 0, 0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl Conv2dOptions {
    /// Default options with stride `s` in both dims.
    pub fn stride(s: usize) -> Self {
        Self::default().with_stride(s, s)
    }
    /// Sets the stride `(sh, sw)`.
    pub fn with_stride(mut self, sh: usize, sw: usize) -> Self {
        self.stride = (sh, sw);
        self
    }
    /// Pads every side by `p`.
    pub fn with_padding(self, p: usize) -> Self {
        self.with_padding_sides(p, p, p, p)
    }
    /// Pads `ph` rows above and below and `pw` columns left and right.
    pub fn with_padding_hw(self, ph: usize, pw: usize) -> Self {
        self.with_padding_sides(ph, ph, pw, pw)
    }
    /// Pads each side separately: top, bottom, left, right.
    pub fn with_padding_sides(mut self, t: usize, b: usize, l: usize, r: usize) -> Self {
        self.padding = (t, b, l, r);
        self
    }
    /// Sets the dilation `(dh, dw)`.
    pub fn with_dilation(mut self, dh: usize, dw: usize) -> Self {
        self.dilation = (dh, dw);
        self
    }
    /// Sets the number of groups.
    pub fn with_groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

/// Options of [`Tensor::conv_transpose2d`] (PyTorch's `stride`, `padding`,
/// `output_padding`, `dilation`, `groups`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvTranspose2dOptions {
    /// Stride `(sh, sw)` of the convolution this op transposes.
    pub stride: (usize, usize),
    /// Padding `(ph, pw)` of that convolution (removed from both sides of the output).
    pub padding: (usize, usize),
    /// Extra rows/columns added at the bottom/right of the output, `< stride or dilation`.
    pub output_padding: (usize, usize),
    /// Kernel dilation `(dh, dw)`.
    pub dilation: (usize, usize),
    /// Number of channel groups.
    pub groups: usize,
}

impl Default for ConvTranspose2dOptions {
    fn default() -> Self {
        ConvTranspose2dOptions {
            stride: (1, 1),
            padding: (0, 0),
            output_padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl ConvTranspose2dOptions {
    /// Default options with stride `s` in both dims.
    pub fn stride(s: usize) -> Self {
        Self::default().with_stride(s, s)
    }
    /// Sets the stride `(sh, sw)`.
    pub fn with_stride(mut self, sh: usize, sw: usize) -> Self {
        self.stride = (sh, sw);
        self
    }
    /// Padding `p` in both dims.
    pub fn with_padding(self, p: usize) -> Self {
        self.with_padding_hw(p, p)
    }
    /// Padding `(ph, pw)`.
    pub fn with_padding_hw(mut self, ph: usize, pw: usize) -> Self {
        self.padding = (ph, pw);
        self
    }
    /// Output padding `(oh, ow)`.
    pub fn with_output_padding(mut self, oh: usize, ow: usize) -> Self {
        self.output_padding = (oh, ow);
        self
    }
    /// Sets the dilation `(dh, dw)`.
    pub fn with_dilation(mut self, dh: usize, dw: usize) -> Self {
        self.dilation = (dh, dw);
        self
    }
    /// Sets the number of groups.
    pub fn with_groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

fn check_common(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: (usize, usize),
    dilation: (usize, usize),
    groups: usize,
) -> Result<()> {
    x.same_device(op, w)?;
    if x.rank() != 4 {
        return Err(bad_shape(
            op,
            format!(
                "expected a 4-D input [N, C, H, W], got shape {:?}",
                x.shape()
            ),
        ));
    }
    if w.rank() != 4 {
        return Err(bad_shape(
            op,
            format!(
                "expected a 4-D weight {}, got shape {:?}",
                if op == "conv2d" {
                    "[C_out, C_in/groups, kH, kW]"
                } else {
                    "[C_in, C_out/groups, kH, kW]"
                },
                w.shape()
            ),
        ));
    }
    if !x.dtype().is_float() || x.dtype() != w.dtype() {
        return Err(Error::DTypeMismatch {
            op,
            expected: format!(
                "input and weight of one float dtype (input is {})",
                x.dtype()
            ),
            got: w.dtype(),
        });
    }
    if let Some(b) = bias {
        x.same_device(op, b)?;
        if b.dtype() != x.dtype() {
            return Err(Error::DTypeMismatch {
                op,
                expected: format!("a bias of the input's dtype {}", x.dtype()),
                got: b.dtype(),
            });
        }
    }
    if stride.0 == 0 || stride.1 == 0 {
        return Err(invalid(
            op,
            format!("stride must be positive, got {stride:?}"),
        ));
    }
    if dilation.0 == 0 || dilation.1 == 0 {
        return Err(invalid(
            op,
            format!("dilation must be positive, got {dilation:?}"),
        ));
    }
    if groups == 0 {
        return Err(invalid(op, "groups must be positive, got 0"));
    }
    Ok(())
}

fn check_bias(op: &'static str, bias: Option<&Tensor>, c_out: usize) -> Result<()> {
    if let Some(b) = bias {
        if b.shape() != [c_out] {
            return Err(bad_shape(
                op,
                format!(
                    "expected a bias of shape [{c_out}] (one per output channel), got {:?}",
                    b.shape()
                ),
            ));
        }
    }
    Ok(())
}

/// The error for input `x` and weight `w` of `op` whose shapes do not fit: `why` says how.
fn mismatch(op: &'static str, x: &Tensor, w: &Tensor, why: String) -> Error {
    Error::ShapeMismatch {
        op,
        lhs: x.shape().to_vec(),
        rhs: w.shape().to_vec(),
        why,
    }
}

/// Output size of one dim of a convolution, or an error when the kernel does not fit.
#[allow(clippy::too_many_arguments)]
fn out_size(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    dim: &str,
    n: usize,
    pad: usize,
    k: usize,
    d: usize,
    s: usize,
) -> Result<usize> {
    let span = d * (k - 1) + 1;
    if k == 0 || n + pad < span {
        return Err(mismatch(op, x, w, format!(
            "give an empty output: the {dim} of the padded input ({n} + {pad} padding) is smaller than the dilated kernel ({span})"
        )));
    }
    Ok((n + pad - span) / s + 1)
}

/// The options of [`Tensor::conv2d`] and [`Tensor::conv_transpose2d`], as their shared
/// checks read them.
trait ConvOptions {
    /// The op's name in errors.
    const OP: &'static str;
    /// `(stride, dilation, groups)`.
    fn steps(&self) -> ((usize, usize), (usize, usize), usize);
    /// The geometry of the convolution the op runs (or is the adjoint of) for input `x`
    /// and weight `w`, or an error when they do not fit the options.
    fn geom(&self, x: &Tensor, w: &Tensor) -> Result<Geom>;
    /// The op's output channels (the length of its bias) in geometry `g`.
    fn out_channels(g: &Geom) -> usize;
}

/// Checks the operands against the options and returns the op's geometry.
fn checked_geom<O: ConvOptions>(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    opts: &O,
) -> Result<Geom> {
    let (stride, dilation, groups) = opts.steps();
    check_common(O::OP, x, w, bias, stride, dilation, groups)?;
    let g = opts.geom(x, w)?;
    check_bias(O::OP, bias, O::out_channels(&g))?;
    Ok(g)
}

impl ConvOptions for Conv2dOptions {
    const OP: &'static str = "conv2d";

    fn steps(&self) -> ((usize, usize), (usize, usize), usize) {
        (self.stride, self.dilation, self.groups)
    }

    fn out_channels(g: &Geom) -> usize {
        g.co
    }

    fn geom(&self, x: &Tensor, w: &Tensor) -> Result<Geom> {
        const OP: &str = Conv2dOptions::OP;
        let (n, ci, h, wd) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
        let (co, cig, kh, kw) = (w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]);
        let g = self.groups;
        if ci % g != 0 || co % g != 0 {
            return Err(mismatch(OP, x, w, format!(
                "do not fit groups = {g}: input channels {ci} and output channels {co} must both be divisible by it"
            )));
        }
        if cig * g != ci {
            return Err(mismatch(OP, x, w, format!(
                "do not agree on the input channels: the input has {ci}, the weight expects {cig} × {g} groups = {}",
                cig * g
            )));
        }
        let (t, b, l, r) = self.padding;
        let oh = out_size(
            OP,
            x,
            w,
            "height",
            h,
            t + b,
            kh,
            self.dilation.0,
            self.stride.0,
        )?;
        let ow = out_size(
            OP,
            x,
            w,
            "width",
            wd,
            l + r,
            kw,
            self.dilation.1,
            self.stride.1,
        )?;
        Ok(Geom {
            n,
            ci,
            h,
            w: wd,
            co,
            kh,
            kw,
            oh,
            ow,
            sh: self.stride.0,
            sw: self.stride.1,
            pt: t,
            pl: l,
            dh: self.dilation.0,
            dw: self.dilation.1,
            groups: g,
        })
    }
}

impl ConvOptions for ConvTranspose2dOptions {
    const OP: &'static str = "conv_transpose2d";

    fn steps(&self) -> ((usize, usize), (usize, usize), usize) {
        (self.stride, self.dilation, self.groups)
    }

    /// The input channels of the convolution this op is the adjoint of.
    fn out_channels(g: &Geom) -> usize {
        g.ci
    }

    /// The geometry of the convolution this op is the adjoint of: its input is this op's
    /// output `[N, C_out, H_out, W_out]`, its output this op's input.
    fn geom(&self, x: &Tensor, w: &Tensor) -> Result<Geom> {
        const OP: &str = ConvTranspose2dOptions::OP;
        let (n, ci, h, wd) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
        let (wci, cog, kh, kw) = (w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]);
        let g = self.groups;
        if wci != ci {
            return Err(mismatch(OP, x, w, format!(
                "do not agree on the input channels: the input has {ci}, the weight [C_in, C_out/groups, kH, kW] has {wci}"
            )));
        }
        if ci % g != 0 {
            return Err(mismatch(
                OP,
                x,
                w,
                format!("do not fit groups = {g}: input channels {ci} are not divisible by it"),
            ));
        }
        let (sh, sw) = self.stride;
        let (dh, dw) = self.dilation;
        let (oph, opw) = self.output_padding;
        if (oph >= sh && oph >= dh) || (opw >= sw && opw >= dw) {
            return Err(invalid(
                OP,
                format!(
                    "output_padding {:?} must be smaller than either stride {:?} or dilation {:?}",
                    self.output_padding, self.stride, self.dilation
                ),
            ));
        }
        let size = |dim: &str, n: usize, s: usize, p: usize, d: usize, k: usize, op: usize| {
            let full = (n.max(1) - 1) * s + d * (k.max(1) - 1) + op + 1;
            if n == 0 || k == 0 || full <= 2 * p {
                return Err(mismatch(OP, x, w, format!(
                    "give an empty output {dim}: (in - 1)·stride + dilation·(k - 1) + output_padding + 1 = {full} is not larger than 2·padding = {}",
                    2 * p
                )));
            }
            Ok(full - 2 * p)
        };
        let hout = size("height", h, sh, self.padding.0, dh, kh, oph)?;
        let wout = size("width", wd, sw, self.padding.1, dw, kw, opw)?;
        Ok(Geom {
            n,
            ci: cog * g,
            h: hout,
            w: wout,
            co: ci,
            kh,
            kw,
            oh: h,
            ow: wd,
            sh,
            sw,
            pt: self.padding.0,
            pl: self.padding.1,
            dh,
            dw,
            groups: g,
        })
    }
}

/// A kernel's host result as a tensor on `like`'s device.
fn vec_tensor<T: Float>(v: Vec<T>, shape: &[usize], like: &Tensor) -> Result<Tensor> {
    Tensor::from_vec(v, shape)?.to(like.device())
}

/// Runs `f` on the contiguous elements of `t` as `T`.
fn sl<T: Float, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> Result<R> {
    t.with_slice::<T, R>(f)
}

fn fwd_t<T: Float>(x: &Tensor, w: &Tensor, b: Option<&Tensor>, g: &Geom) -> Result<Tensor> {
    let v = sl::<T, _>(x, |xs| {
        sl::<T, _>(w, |ws| match b {
            Some(b) => sl::<T, _>(b, |bs| kernels::forward(xs, ws, Some(bs), g)),
            None => Ok(kernels::forward(xs, ws, None, g)),
        })
    })???;
    vec_tensor(v, &[g.n, g.co, g.oh, g.ow], x)
}

fn bwd_input_t<T: Float>(gy: &Tensor, w: &Tensor, b: Option<&Tensor>, g: &Geom) -> Result<Tensor> {
    let mut v = sl::<T, _>(gy, |gs| {
        sl::<T, _>(w, |ws| kernels::backward_input(gs, ws, g))
    })??;
    if let Some(b) = b {
        sl::<T, _>(b, |bs| {
            kernels::add_channel_bias(&mut v, g.ci, g.h * g.w, bs)
        })?;
    }
    vec_tensor(v, &[g.n, g.ci, g.h, g.w], gy)
}

fn bwd_weight_t<T: Float>(x: &Tensor, gy: &Tensor, g: &Geom) -> Result<Tensor> {
    let v = sl::<T, _>(x, |xs| {
        sl::<T, _>(gy, |gs| kernels::backward_weight(xs, gs, g))
    })??;
    vec_tensor(v, &[g.co, g.ci / g.groups, g.kh, g.kw], x)
}

fn bias_grad_t<T: Float>(gy: &Tensor, n: usize, c: usize, p: usize) -> Result<Tensor> {
    let v = sl::<T, _>(gy, |gs| kernels::bias_grad(gs, n, c, p))?;
    vec_tensor(v, &[c], gy)
}

macro_rules! by_dtype {
    ($dt:expr, $f:ident ( $($a:expr),* )) => {
        match $dt {
            DType::F32 => $f::<f32>($($a),*),
            DType::F64 => $f::<f64>($($a),*),
            d => Err(Error::DTypeMismatch { op: "conv", expected: "f32 or f64".into(), got: d }),
        }
    };
}

/// The GPU kernel's result `gpu` as a tensor of `shape` when there is one, else the host
/// path's `host()`.
fn gpu_or_host(
    gpu: Option<Storage>,
    shape: &[usize],
    host: impl FnOnce() -> Result<Tensor>,
) -> Result<Tensor> {
    match gpu {
        Some(out) => Ok(Tensor::from_parts(out, shape, None)),
        None => host(),
    }
}

/// `conv(x) [+ b]`, the conv "forward" kernel for a geometry.
fn conv_fwd(x: &Tensor, w: &Tensor, b: Option<&Tensor>, g: &Geom) -> Result<Tensor> {
    let gpu = crate::cuda::native::conv::forward(x, w, b, g)?;
    gpu_or_host(gpu, &[g.n, g.co, g.oh, g.ow], || {
        by_dtype!(x.dtype(), fwd_t(x, w, b, g))
    })
}
/// The adjoint of the conv in its input, `[+ b]` over the input channels.
fn conv_bwd_input(gy: &Tensor, w: &Tensor, b: Option<&Tensor>, g: &Geom) -> Result<Tensor> {
    let gpu = crate::cuda::native::conv::backward_input(gy, w, b, g)?;
    gpu_or_host(gpu, &[g.n, g.ci, g.h, g.w], || {
        by_dtype!(gy.dtype(), bwd_input_t(gy, w, b, g))
    })
}
fn conv_bwd_weight(x: &Tensor, gy: &Tensor, g: &Geom) -> Result<Tensor> {
    let gpu = crate::cuda::native::conv::backward_weight(x, gy, g)?;
    gpu_or_host(gpu, &[g.co, g.ci / g.groups, g.kh, g.kw], || {
        by_dtype!(x.dtype(), bwd_weight_t(x, gy, g))
    })
}
fn conv_bias_grad(gy: &Tensor, n: usize, c: usize, p: usize) -> Result<Tensor> {
    let gpu = crate::cuda::native::conv::bias_grad(gy, n, c, p)?;
    gpu_or_host(gpu, &[c], || {
        by_dtype!(gy.dtype(), bias_grad_t(gy, n, c, p))
    })
}

/// `grad()` where `need` says the gradient is wanted, else `None`.
fn grad_if(need: bool, grad: impl FnOnce() -> Result<Tensor>) -> Result<Option<Tensor>> {
    need.then(grad).transpose()
}

/// The gradients of [`Tensor::conv2d`] with respect to input, weight and bias (PyTorch's
/// `aten.convolution_backward`), computed only where `need` says so. `grad_out` has the
/// shape of the conv's output. Used by the autograd rule and by benchmarks.
pub fn conv2d_backward(
    input: &Tensor,
    weight: &Tensor,
    grad_out: &Tensor,
    opts: &Conv2dOptions,
    need: [bool; 3],
) -> Result<[Option<Tensor>; 3]> {
    let (stride, dilation, groups) = opts.steps();
    check_common(
        "conv2d_backward",
        input,
        weight,
        None,
        stride,
        dilation,
        groups,
    )?;
    let g = opts.geom(input, weight)?;
    let want = [g.n, g.co, g.oh, g.ow];
    if grad_out.shape() != want || grad_out.dtype() != input.dtype() {
        return Err(bad_shape(
            "conv2d_backward",
            format!(
                "expected an output gradient of shape {want:?} and dtype {}, got {:?} ({})",
                input.dtype(),
                grad_out.shape(),
                grad_out.dtype()
            ),
        ));
    }
    conv2d_grads(input, weight, grad_out, &g, need)
}

fn conv2d_grads(
    x: &Tensor,
    w: &Tensor,
    gy: &Tensor,
    g: &Geom,
    need: [bool; 3],
) -> Result<[Option<Tensor>; 3]> {
    let gy = gy.contiguous()?;
    Ok([
        grad_if(need[0], || conv_bwd_input(&gy, w, None, g))?,
        grad_if(need[1], || conv_bwd_weight(x, &gy, g))?,
        grad_if(need[2], || conv_bias_grad(&gy, g.n, g.co, g.oh * g.ow))?,
    ])
}

impl Tensor {
    /// 2-D convolution (cross-correlation, D2L 7.2) with PyTorch's semantics:
    /// input `[N, C_in, H, W]`, weight `[C_out, C_in/groups, kH, kW]`, bias `[C_out]`;
    /// output `[N, C_out, H_out, W_out]` with
    /// `H_out = (H + pad_top + pad_bottom - dilation·(kH - 1) - 1) / stride + 1`.
    ///
    /// ```
    /// use d2l_tensor::{Conv2dOptions, Tensor};
    /// let x = Tensor::ones(&[1, 1, 3, 3]);
    /// let k = Tensor::ones(&[1, 1, 2, 2]);
    /// let y = x.conv2d(&k, None, &Conv2dOptions::default()).unwrap();
    /// assert_eq!(y.shape(), &[1, 1, 2, 2]);
    /// assert_eq!(y.to_vec::<f32>(), vec![4.0; 4]);
    /// ```
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &Conv2dOptions,
    ) -> Result<Tensor> {
        let _prof = crate::profile::scope("conv2d");
        let g = checked_geom(self, weight, bias, opts)?;
        with_conv_grads(
            self,
            weight,
            bias,
            |x, w, b| conv_fwd(x, w, b, &g),
            move |x, w, gy, need| conv2d_grads(x, w, gy, &g, need),
        )
    }

    /// 2-D transposed convolution (D2L 14.10), the adjoint of [`Tensor::conv2d`] in its
    /// input, with PyTorch's semantics: input `[N, C_in, H, W]`, weight
    /// `[C_in, C_out/groups, kH, kW]`, bias `[C_out]`; output `[N, C_out, H_out, W_out]`
    /// with `H_out = (H - 1)·stride - 2·padding + dilation·(kH - 1) + output_padding + 1`.
    ///
    /// ```
    /// use d2l_tensor::{ConvTranspose2dOptions, Tensor};
    /// let x = Tensor::from_vec(vec![0.0f32, 1.0, 2.0, 3.0], &[1, 1, 2, 2]).unwrap();
    /// let k = Tensor::from_vec(vec![0.0f32, 1.0, 2.0, 3.0], &[1, 1, 2, 2]).unwrap();
    /// let y = x.conv_transpose2d(&k, None, &ConvTranspose2dOptions::default()).unwrap();
    /// assert_eq!(y.to_vec::<f32>(), vec![0.0, 0.0, 1.0, 0.0, 4.0, 6.0, 4.0, 12.0, 9.0]);
    /// ```
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: &ConvTranspose2dOptions,
    ) -> Result<Tensor> {
        let _prof = crate::profile::scope("conv_transpose2d");
        let g = checked_geom(self, weight, bias, opts)?;
        // The adjoint of conv2d in its input: forward is conv2d's input gradient, and the
        // gradients are conv2d's forward and weight-gradient kernels.
        with_conv_grads(
            self,
            weight,
            bias,
            |x, w, b| conv_bwd_input(x, w, b, &g),
            move |x, w, gz, need| {
                let gz = gz.contiguous()?;
                Ok([
                    grad_if(need[0], || conv_fwd(&gz, w, None, &g))?,
                    grad_if(need[1], || conv_bwd_weight(&gz, x, &g))?,
                    grad_if(need[2], || conv_bias_grad(&gz, g.n, g.ci, g.h * g.w))?,
                ])
            },
        )
    }
}

/// Runs a convolution kernel on contiguous, detached copies of its operands and, when
/// autograd must record, attaches `grads` (input, weight and bias gradients, computing
/// only those marked in `need`) as the op's backward rule.
fn with_conv_grads(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    forward: impl FnOnce(&Tensor, &Tensor, Option<&Tensor>) -> Result<Tensor>,
    grads: impl Fn(&Tensor, &Tensor, &Tensor, [bool; 3]) -> Result<[Option<Tensor>; 3]>
        + Send
        + Sync
        + 'static,
) -> Result<Tensor> {
    let x = input.contiguous()?.detach();
    let w = weight.contiguous()?.detach();
    let b = bias
        .map(|b| b.contiguous().map(|b| b.detach()))
        .transpose()?;
    let out = forward(&x, &w, b.as_ref())?;
    let mut inputs = vec![input, weight];
    inputs.extend(bias);
    if !Tensor::tracks(&inputs) {
        return Ok(out);
    }
    let need = [
        input.requires_grad(),
        weight.requires_grad(),
        bias.is_some_and(|b| b.requires_grad()),
    ];
    let has_bias = bias.is_some();
    let backward: crate::BackwardFn = Arc::new(move |gy: &Tensor| {
        let [gx, gw, gb] = grads(&x, &w, gy, need)?;
        let mut v = vec![gx, gw];
        if has_bias {
            v.push(gb);
        }
        Ok(v)
    });
    Ok(Tensor::custom_op_named("bwd:conv", out, &inputs, backward))
}
