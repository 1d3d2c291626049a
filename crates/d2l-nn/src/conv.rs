//! Convolutional layers (D2L 6.2–6.4, 13.10): the from-scratch cross-correlation
//! `corr2d` of 6.2 and its multi-channel forms of 6.4, written on the public tensor API,
//! and the `Conv2d` / `ConvTranspose2d` layers with PyTorch's default initialisation.
//!
//! ```
//! use d2l_nn::conv::Conv2d;
//! use d2l_nn::Module;
//! use d2l_tensor::{Result, Tensor};
//! # fn main() -> Result<()> {
//! // LeNet's first layer (D2L 6.6).
//! let conv = Conv2d::builder(1, 6, 5).padding(2).build()?;
//! assert_eq!(
//!     conv.describe(),
//!     "Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))"
//! );
//! # Ok(()) }
//! ```

use crate::init;
use crate::module::Module;
use d2l_tensor::{Conv2dOptions, ConvTranspose2dOptions, Error, Result, Tensor};

/// A size given either as one number for both spatial dims or as `(height, width)`,
/// like PyTorch's `int | tuple` arguments.
pub trait IntoPair {
    /// The `(height, width)` pair.
    fn into_pair(self) -> (usize, usize);
}

impl IntoPair for usize {
    fn into_pair(self) -> (usize, usize) {
        (self, self)
    }
}

impl IntoPair for (usize, usize) {
    fn into_pair(self) -> (usize, usize) {
        self
    }
}

impl IntoPair for [usize; 2] {
    fn into_pair(self) -> (usize, usize) {
        (self[0], self[1])
    }
}

// ---------------------------------------------------------------------------------------
// The book's from-scratch pieces (6.2, 6.4)
// ---------------------------------------------------------------------------------------

fn expect_rank(op: &'static str, what: &str, t: &Tensor, rank: usize) -> Result<()> {
    if t.rank() != rank {
        return Err(Error::BadShape {
            op,
            msg: format!(
                "expected {what} of rank {rank}, got shape {:?} (rank {})",
                t.shape(),
                t.rank()
            ),
        });
    }
    Ok(())
}

/// Two-dimensional cross-correlation written from scratch (D2L 6.2.1): slide the kernel
/// `k` [h, w] over `x` [H, W] and sum the elementwise products at each position, giving
/// an output of shape [H − h + 1, W − w + 1].
///
/// It is built from `narrow`, `mul`, `sum_all` and `stack`, so gradients flow through it
/// into both `x` and `k` (the book's from-scratch `Conv2D` block trains through it). It is
/// a teaching piece, one small op per output element: layers use [`Tensor::conv2d`].
pub fn corr2d(x: &Tensor, k: &Tensor) -> Result<Tensor> {
    expect_rank("corr2d", "an input X", x, 2)?;
    expect_rank("corr2d", "a kernel K", k, 2)?;
    let (h, w) = (k.shape()[0], k.shape()[1]);
    let (xh, xw) = (x.shape()[0], x.shape()[1]);
    if h == 0 || w == 0 || h > xh || w > xw {
        return Err(Error::ShapeMismatch {
            op: "corr2d",
            lhs: x.shape().to_vec(),
            rhs: k.shape().to_vec(),
            why: "do not agree: the kernel must be non-empty and fit inside the input".into(),
        });
    }
    let (oh, ow) = (xh - h + 1, xw - w + 1);
    let mut cells = Vec::with_capacity(oh * ow);
    for i in 0..oh {
        for j in 0..ow {
            // Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
            let window = x.narrow(0, i, h)?.narrow(1, j, w)?;
            cells.push(window.mul(k)?.sum_all()?);
        }
    }
    let refs: Vec<&Tensor> = cells.iter().collect();
    Tensor::stack(&refs, 0)?.reshape([oh, ow])
}

/// Cross-correlation with several input channels (D2L 6.4.1): `x` [C_in, H, W] and `k`
/// [C_in, h, w]; one 2-D cross-correlation per channel, summed over the channels.
pub fn corr2d_multi_in(x: &Tensor, k: &Tensor) -> Result<Tensor> {
    expect_rank("corr2d_multi_in", "an input X [C_in, H, W]", x, 3)?;
    expect_rank("corr2d_multi_in", "a kernel K [C_in, h, w]", k, 3)?;
    if x.shape()[0] != k.shape()[0] || x.shape()[0] == 0 {
        return Err(Error::ShapeMismatch {
            op: "corr2d_multi_in",
            lhs: x.shape().to_vec(),
            rhs: k.shape().to_vec(),
            why: "do not agree: X and K must have the same (non-zero) number of channels".into(),
        });
    }
    let mut acc: Option<Tensor> = None;
    for c in 0..x.shape()[0] {
        let y = corr2d(&x.select(0, c as isize)?, &k.select(0, c as isize)?)?;
        acc = Some(match acc {
            None => y,
            Some(a) => a.add(&y)?,
        });
    }
    Ok(acc.expect("at least one channel"))
}

/// Several output channels (D2L 6.4.2): `k` [C_out, C_in, h, w]; one multi-input
/// cross-correlation per output channel, stacked into [C_out, H', W'].
pub fn corr2d_multi_in_out(x: &Tensor, k: &Tensor) -> Result<Tensor> {
    expect_rank(
        "corr2d_multi_in_out",
        "a kernel K [C_out, C_in, h, w]",
        k,
        4,
    )?;
    let outs = (0..k.shape()[0])
        .map(|o| corr2d_multi_in(x, &k.select(0, o as isize)?))
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&Tensor> = outs.iter().collect();
    Tensor::stack(&refs, 0)
}

/// A 1×1 convolution as a matrix product (D2L 6.4.3): `x` [C_in, H, W] and `k`
/// [C_out, C_in, 1, 1] give [C_out, H, W] = K·X over the flattened pixels.
pub fn corr2d_multi_in_out_1x1(x: &Tensor, k: &Tensor) -> Result<Tensor> {
    expect_rank("corr2d_multi_in_out_1x1", "an input X [C_in, H, W]", x, 3)?;
    expect_rank(
        "corr2d_multi_in_out_1x1",
        "a kernel K [C_out, C_in, 1, 1]",
        k,
        4,
    )?;
    let (c_in, h, w) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let c_out = k.shape()[0];
    if k.shape()[1..] != [c_in, 1, 1] {
        return Err(Error::ShapeMismatch {
            op: "corr2d_multi_in_out_1x1",
            lhs: x.shape().to_vec(),
            rhs: k.shape().to_vec(),
            why: "do not agree: K must be [C_out, C_in, 1, 1] with X's C_in".into(),
        });
    }
    let x = x.reshape([c_in, h * w])?;
    let k = k.reshape([c_out, c_in])?;
    k.matmul(&x)?.reshape([c_out, h, w])
}

// ---------------------------------------------------------------------------------------
// Shared helpers for the layers
// ---------------------------------------------------------------------------------------

/// A layer error whose message starts with the layer's description.
pub(crate) fn layer_err(op: &'static str, layer: &str, msg: String) -> Error {
    Error::InvalidArgument {
        op,
        msg: format!("{layer}: {msg}"),
    }
}

/// Python's `repr` of a float (`1e-05`, `0.1`, `2.0`), for PyTorch-style descriptions.
pub(crate) fn py_float(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if v == 0.0 {
        return "0.0".into();
    }
    let sci = format!("{v:e}"); // shortest round-trip digits, e.g. "1e-5", "1.5e0"
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    if !(-4..16).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        let s = format!("{v}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    }
}

/// Runs a 4-D op on a 3-D unbatched input [C, H, W] by adding and removing a batch dim.
pub(crate) fn batched(
    op: &'static str,
    layer: &str,
    x: &Tensor,
    f: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    match x.rank() {
        4 => f(x),
        3 => f(&x.unsqueeze(0)?)?.squeeze(0),
        r => Err(Error::BadShape {
            op,
            msg: format!(
                "{layer}: expected a 4-D input [N, C, H, W] (or 3-D [C, H, W]), got shape {:?} (rank {r})",
                x.shape()
            ),
        }),
    }
}

fn nonzero(op: &'static str, layer: &str, what: &str, v: (usize, usize)) -> Result<()> {
    if v.0 == 0 || v.1 == 0 {
        return Err(layer_err(
            op,
            layer,
            format!("{what} must be positive, got {v:?}"),
        ));
    }
    Ok(())
}

/// PyTorch's default init for convolutions: weight by kaiming_uniform_(a = √5), which
/// is U(±1/√fan_in), and bias U(±1/√fan_in), with fan_in = dim 1 × receptive field.
fn default_init(
    weight_shape: &[usize],
    bias_len: Option<usize>,
) -> Result<(Tensor, Option<Tensor>)> {
    let weight = Tensor::try_zeros(weight_shape)?.requires_grad_(true)?;
    init::kaiming_uniform_(&weight, 5f64.sqrt(), init::FanMode::FanIn, "leaky_relu")?;
    let (fan_in, _) = init::fans(&weight)?;
    let bias = match bias_len {
        Some(n) => {
            let b = Tensor::zeros(&[n]).requires_grad_(true)?;
            let bound = if fan_in > 0 {
                1.0 / (fan_in as f64).sqrt()
            } else {
                0.0
            };
            init::uniform_(&b, -bound, bound)?;
            Some(b)
        }
        None => None,
    };
    Ok((weight, bias))
}

fn params(weight: &Tensor, bias: &Option<Tensor>) -> Vec<(String, Tensor)> {
    let mut v = vec![("weight".to_string(), weight.clone())];
    if let Some(b) = bias {
        v.push(("bias".into(), b.clone()));
    }
    v
}

// ---------------------------------------------------------------------------------------
// Conv2d
// ---------------------------------------------------------------------------------------

/// How a [`Conv2d`] pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// The same zeros above and below (`.0`) and left and right (`.1`).
    Symmetric(usize, usize),
    /// Per side: top, bottom, left, right.
    Sides(usize, usize, usize, usize),
    /// PyTorch's `padding="same"`: the output has the input's size (stride 1 only); an
    /// odd total goes on the bottom/right, as PyTorch puts it.
    Same,
}

/// Builds a [`Conv2d`]: `Conv2d::builder(3, 16, 3).stride(2).padding(1).build()?`.
#[derive(Debug, Clone)]
pub struct Conv2dBuilder {
    in_channels: usize,
    out_channels: usize,
    kernel_size: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
    dilation: (usize, usize),
    groups: usize,
    bias: bool,
}

impl Conv2dBuilder {
    /// Stride, one number or `(sh, sw)` (default 1).
    pub fn stride(mut self, s: impl IntoPair) -> Self {
        self.stride = s.into_pair();
        self
    }

    /// Zero padding on both sides, one number or `(ph, pw)` (default 0).
    pub fn padding(mut self, p: impl IntoPair) -> Self {
        let (ph, pw) = p.into_pair();
        self.padding = Padding::Symmetric(ph, pw);
        self
    }

    /// Zero padding per side: top, bottom, left, right.
    pub fn padding_sides(mut self, top: usize, bottom: usize, left: usize, right: usize) -> Self {
        self.padding = Padding::Sides(top, bottom, left, right);
        self
    }

    /// `padding="same"`: keeps the spatial size (stride 1 only).
    pub fn padding_same(mut self) -> Self {
        self.padding = Padding::Same;
        self
    }

    /// Dilation, one number or `(dh, dw)` (default 1).
    pub fn dilation(mut self, d: impl IntoPair) -> Self {
        self.dilation = d.into_pair();
        self
    }

    /// Groups (default 1); `groups == in_channels` is a depthwise convolution.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }

    /// Whether the layer has a bias (default true).
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }

    /// Checks the settings and initialises the parameters as PyTorch does.
    pub fn build(self) -> Result<Conv2d> {
        let (kh, kw) = self.kernel_size;
        let (dh, dw) = self.dilation;
        let padding = match self.padding {
            Padding::Symmetric(ph, pw) => (ph, ph, pw, pw),
            Padding::Sides(t, b, l, r) => (t, b, l, r),
            Padding::Same => {
                let th = dh * kh.saturating_sub(1);
                let tw = dw * kw.saturating_sub(1);
                (th / 2, th - th / 2, tw / 2, tw - tw / 2)
            }
        };
        let layer = Conv2d {
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            kernel_size: self.kernel_size,
            padding_spec: self.padding,
            opts: Conv2dOptions {
                stride: self.stride,
                padding,
                dilation: self.dilation,
                groups: self.groups,
            },
            // Placeholders until the checks pass.
            weight: Tensor::zeros(&[0]),
            bias: None,
        };
        let name = layer.describe();
        let op = "Conv2d";
        let g = self.groups;
        check_settings(
            op,
            &name,
            (self.in_channels, self.out_channels),
            self.kernel_size,
            self.stride,
            self.dilation,
            g,
        )?;
        if self.padding == Padding::Same && self.stride != (1, 1) {
            return Err(layer_err(
                op,
                &name,
                format!(
                    "padding='same' is not supported for strided convolutions (stride {:?})",
                    self.stride
                ),
            ));
        }
        let (weight, bias) = default_init(
            &[self.out_channels, self.in_channels / g, kh, kw],
            self.bias.then_some(self.out_channels),
        )?;
        Ok(Conv2d {
            weight,
            bias,
            ..layer
        })
    }
}

/// The settings both convolution layers check: non-zero channels, kernel, stride and
/// dilation, and channel counts divisible by the groups.
fn check_settings(
    op: &'static str,
    name: &str,
    (c_in, c_out): (usize, usize),
    kernel: (usize, usize),
    stride: (usize, usize),
    dilation: (usize, usize),
    groups: usize,
) -> Result<()> {
    if c_in == 0 || c_out == 0 {
        return Err(layer_err(
            op,
            name,
            "expected non-zero channel counts".into(),
        ));
    }
    nonzero(op, name, "kernel_size", kernel)?;
    nonzero(op, name, "stride", stride)?;
    nonzero(op, name, "dilation", dilation)?;
    if groups == 0 || !c_in.is_multiple_of(groups) || !c_out.is_multiple_of(groups) {
        return Err(layer_err(
            op,
            name,
            format!("in_channels ({c_in}) and out_channels ({c_out}) must be divisible by groups ({groups})"),
        ));
    }
    Ok(())
}

/// A 2-D convolution (D2L 6.2–6.4): input [N, C_in, H, W] (or unbatched [C_in, H, W]),
/// output [N, C_out, H', W'] with H' = ⌊(H + pads − dilation·(kh − 1) − 1) / stride⌋ + 1.
///
/// Parameters `weight` [C_out, C_in / groups, kh, kw] and `bias` [C_out], initialised as
/// PyTorch does: both U(±1/√fan_in) with fan_in = C_in / groups · kh · kw.
pub struct Conv2d {
    /// The kernels, [C_out, C_in / groups, kh, kw].
    pub weight: Tensor,
    /// One bias per output channel, [C_out], if any.
    pub bias: Option<Tensor>,
    in_channels: usize,
    out_channels: usize,
    kernel_size: (usize, usize),
    padding_spec: Padding,
    opts: Conv2dOptions,
}

impl Conv2d {
    /// A convolution with stride 1, no padding, a bias, PyTorch's default init;
    /// `kernel_size` is one number or `(kh, kw)`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: impl IntoPair,
    ) -> Result<Self> {
        Self::builder(in_channels, out_channels, kernel_size).build()
    }

    /// A builder for the other settings (`stride`, `padding`, `dilation`, `groups`, `bias`).
    pub fn builder(
        in_channels: usize,
        out_channels: usize,
        kernel_size: impl IntoPair,
    ) -> Conv2dBuilder {
        Conv2dBuilder {
            in_channels,
            out_channels,
            kernel_size: kernel_size.into_pair(),
            stride: (1, 1),
            padding: Padding::Symmetric(0, 0),
            dilation: (1, 1),
            groups: 1,
            bias: true,
        }
    }

    /// A layer wrapping given tensors (made parameters): `weight` [C_out, C_in / groups,
    /// kh, kw], `bias` [C_out]; stride, padding, dilation and groups from `opts`.
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>, opts: Conv2dOptions) -> Result<Self> {
        let s = weight.shape().to_vec();
        let g = opts.groups;
        if s.len() != 4
            || g == 0
            || !s[0].is_multiple_of(g)
            || bias.as_ref().is_some_and(|b| b.shape() != [s[0]])
        {
            return Err(Error::InvalidArgument {
                op: "Conv2d::from_tensors",
                msg: format!(
                    "expected weight [C_out, C_in / groups, kh, kw] with C_out divisible by groups ({g}) and bias [C_out], got {:?} and {:?}",
                    s,
                    bias.as_ref().map(|b| b.shape().to_vec())
                ),
            });
        }
        let (t, b, l, r) = opts.padding;
        let padding_spec = if t == b && l == r {
            Padding::Symmetric(t, l)
        } else {
            Padding::Sides(t, b, l, r)
        };
        let layer = Conv2d {
            in_channels: s[1] * g,
            out_channels: s[0],
            kernel_size: (s[2], s[3]),
            padding_spec,
            opts,
            weight: weight.detach().requires_grad_(true)?,
            bias: bias.map(|b| b.detach().requires_grad_(true)).transpose()?,
        };
        let name = layer.describe();
        nonzero("Conv2d", &name, "kernel_size", layer.kernel_size)?;
        nonzero("Conv2d", &name, "stride", opts.stride)?;
        nonzero("Conv2d", &name, "dilation", opts.dilation)?;
        Ok(layer)
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// `(kh, kw)`.
    pub fn kernel_size(&self) -> (usize, usize) {
        self.kernel_size
    }

    /// Stride, padding (top, bottom, left, right), dilation and groups, as the op takes them.
    pub fn options(&self) -> &Conv2dOptions {
        &self.opts
    }

    /// The output's spatial size for an input of `(h, w)`, or an error naming the layer
    /// when the (dilated) kernel does not fit in the padded input.
    pub fn output_size(&self, (h, w): (usize, usize)) -> Result<(usize, usize)> {
        let (t, b, l, r) = self.opts.padding;
        let (kh, kw) = self.kernel_size;
        let (dh, dw) = self.opts.dilation;
        let (sh, sw) = self.opts.stride;
        let (eh, ew) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
        let (ph, pw) = (h + t + b, w + l + r);
        if eh > ph || ew > pw {
            return Err(Error::ShapeMismatch {
                op: "Conv2d",
                lhs: vec![h, w],
                rhs: vec![kh, kw],
                why: format!(
                    "do not agree: {}: the (dilated) kernel {eh}×{ew} is larger than the padded input {ph}×{pw}",
                    self.describe()
                ),
            });
        }
        Ok(((ph - eh) / sh + 1, (pw - ew) / sw + 1))
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let name = self.describe();
        batched("Conv2d", &name, x, |x| {
            if x.shape()[1] != self.in_channels {
                return Err(Error::ShapeMismatch {
                    op: "Conv2d",
                    lhs: x.shape().to_vec(),
                    rhs: self.weight.shape().to_vec(),
                    why: format!(
                        "do not agree: {name} expects {} input channels (input [N, {}, H, W])",
                        self.in_channels, self.in_channels
                    ),
                });
            }
            self.output_size((x.shape()[2], x.shape()[3]))
                .map_err(|e| match e {
                    Error::ShapeMismatch { op, rhs, why, .. } => Error::ShapeMismatch {
                        op,
                        lhs: x.shape().to_vec(),
                        rhs,
                        why,
                    },
                    e => e,
                })?;
            x.conv2d(&self.weight, self.bias.as_ref(), &self.opts)
        })
    }

    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        params(&self.weight, &self.bias)
    }

    fn describe(&self) -> String {
        let (kh, kw) = self.kernel_size;
        let mut s = format!(
            "Conv2d({}, {}, kernel_size=({kh}, {kw}), stride={:?}",
            self.in_channels, self.out_channels, self.opts.stride
        );
        match self.padding_spec {
            Padding::Symmetric(0, 0) => {}
            Padding::Symmetric(ph, pw) => s.push_str(&format!(", padding=({ph}, {pw})")),
            Padding::Sides(t, b, l, r) => s.push_str(&format!(", padding=({t}, {b}, {l}, {r})")),
            Padding::Same => s.push_str(", padding=same"),
        }
        if self.opts.dilation != (1, 1) {
            s.push_str(&format!(", dilation={:?}", self.opts.dilation));
        }
        if self.opts.groups != 1 {
            s.push_str(&format!(", groups={}", self.opts.groups));
        }
        if self.bias.is_none() && self.weight.numel() > 0 {
            s.push_str(", bias=False");
        }
        s.push(')');
        s
    }
}

// ---------------------------------------------------------------------------------------
// ConvTranspose2d
// ---------------------------------------------------------------------------------------

/// Builds a [`ConvTranspose2d`]: `ConvTranspose2d::builder(64, 32, 4).stride(2).padding(1).build()?`.
#[derive(Debug, Clone)]
pub struct ConvTranspose2dBuilder {
    in_channels: usize,
    out_channels: usize,
    kernel_size: (usize, usize),
    opts: ConvTranspose2dOptions,
    bias: bool,
}

impl ConvTranspose2dBuilder {
    /// Stride (default 1).
    pub fn stride(mut self, s: impl IntoPair) -> Self {
        self.opts.stride = s.into_pair();
        self
    }

    /// Padding removed from each side of the full output (default 0).
    pub fn padding(mut self, p: impl IntoPair) -> Self {
        self.opts.padding = p.into_pair();
        self
    }

    /// Extra rows/columns added on the bottom/right of the output (default 0); must be
    /// smaller than the stride or the dilation.
    pub fn output_padding(mut self, p: impl IntoPair) -> Self {
        self.opts.output_padding = p.into_pair();
        self
    }

    /// Dilation (default 1).
    pub fn dilation(mut self, d: impl IntoPair) -> Self {
        self.opts.dilation = d.into_pair();
        self
    }

    /// Groups (default 1).
    pub fn groups(mut self, g: usize) -> Self {
        self.opts.groups = g;
        self
    }

    /// Whether the layer has a bias (default true).
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }

    /// Checks the settings and initialises the parameters as PyTorch does.
    pub fn build(self) -> Result<ConvTranspose2d> {
        let layer = ConvTranspose2d {
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            kernel_size: self.kernel_size,
            opts: self.opts,
            weight: Tensor::zeros(&[0]),
            bias: None,
        };
        let name = layer.describe();
        let op = "ConvTranspose2d";
        let g = self.opts.groups;
        check_settings(
            op,
            &name,
            (self.in_channels, self.out_channels),
            self.kernel_size,
            self.opts.stride,
            self.opts.dilation,
            g,
        )?;
        let (s, d, o) = (
            self.opts.stride,
            self.opts.dilation,
            self.opts.output_padding,
        );
        if o.0 >= s.0.max(d.0) || o.1 >= s.1.max(d.1) {
            return Err(layer_err(
                op,
                &name,
                format!(
                    "output_padding {o:?} must be smaller than either stride {s:?} or dilation {d:?}"
                ),
            ));
        }
        let (kh, kw) = self.kernel_size;
        // Weight [C_in, C_out / groups, kh, kw]: PyTorch's fan_in (dim 1 × receptive
        // field) is then C_out / groups · kh · kw, and that is what sets the bounds.
        let (weight, bias) = default_init(
            &[self.in_channels, self.out_channels / g, kh, kw],
            self.bias.then_some(self.out_channels),
        )?;
        Ok(ConvTranspose2d {
            weight,
            bias,
            ..layer
        })
    }
}

/// A transposed convolution (D2L 13.10): input [N, C_in, H, W] (or [C_in, H, W]),
/// output H' = (H − 1)·stride − 2·padding + dilation·(kh − 1) + output_padding + 1.
///
/// Parameters `weight` [C_in, C_out / groups, kh, kw] and `bias` [C_out], initialised as
/// PyTorch does, with fan_in = C_out / groups · kh · kw (weight dim 1 × receptive field).
pub struct ConvTranspose2d {
    /// The kernels, [C_in, C_out / groups, kh, kw].
    pub weight: Tensor,
    /// One bias per output channel, [C_out], if any.
    pub bias: Option<Tensor>,
    in_channels: usize,
    out_channels: usize,
    kernel_size: (usize, usize),
    opts: ConvTranspose2dOptions,
}

impl ConvTranspose2d {
    /// A transposed convolution with stride 1, no padding, a bias, PyTorch's default init.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: impl IntoPair,
    ) -> Result<Self> {
        Self::builder(in_channels, out_channels, kernel_size).build()
    }

    /// A builder for the other settings.
    pub fn builder(
        in_channels: usize,
        out_channels: usize,
        kernel_size: impl IntoPair,
    ) -> ConvTranspose2dBuilder {
        ConvTranspose2dBuilder {
            in_channels,
            out_channels,
            kernel_size: kernel_size.into_pair(),
            opts: ConvTranspose2dOptions::default(),
            bias: true,
        }
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// `(kh, kw)`.
    pub fn kernel_size(&self) -> (usize, usize) {
        self.kernel_size
    }

    /// The options handed to the op.
    pub fn options(&self) -> &ConvTranspose2dOptions {
        &self.opts
    }

    /// The output's spatial size for an input of `(h, w)` (with the layer's output_padding).
    pub fn output_size(&self, (h, w): (usize, usize)) -> Result<(usize, usize)> {
        let one = |n: usize, s: usize, p: usize, d: usize, k: usize, o: usize| -> Option<usize> {
            ((n.max(1) - 1) * s + d * (k - 1) + o + 1).checked_sub(2 * p)
        };
        let o = &self.opts;
        match (
            one(
                h,
                o.stride.0,
                o.padding.0,
                o.dilation.0,
                self.kernel_size.0,
                o.output_padding.0,
            ),
            one(
                w,
                o.stride.1,
                o.padding.1,
                o.dilation.1,
                self.kernel_size.1,
                o.output_padding.1,
            ),
        ) {
            (Some(oh), Some(ow)) if oh > 0 && ow > 0 && h > 0 && w > 0 => Ok((oh, ow)),
            _ => Err(Error::ShapeMismatch {
                op: "ConvTranspose2d",
                lhs: vec![h, w],
                rhs: vec![self.kernel_size.0, self.kernel_size.1],
                why: format!(
                    "do not agree: {}: the padding {:?} removes the whole output",
                    self.describe(),
                    o.padding
                ),
            }),
        }
    }

    /// Forward with a requested output size `(oh, ow)` (PyTorch's `output_size=`): the
    /// output padding is chosen to reach it, and must be smaller than the stride or dilation.
    pub fn forward_with_output_size(&self, x: &Tensor, size: (usize, usize)) -> Result<Tensor> {
        let name = self.describe();
        let r = x.rank();
        if r != 3 && r != 4 {
            return batched("ConvTranspose2d", &name, x, |x| Ok(x.clone()));
        }
        let (h, w) = (x.shape()[r - 2], x.shape()[r - 1]);
        let mut opts = self.opts;
        opts.output_padding = (0, 0);
        let probe = ConvTranspose2d {
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            kernel_size: self.kernel_size,
            opts,
        };
        let (mh, mw) = probe.output_size((h, w))?;
        let limit = (
            opts.stride.0.max(opts.dilation.0),
            opts.stride.1.max(opts.dilation.1),
        );
        if size.0 < mh || size.1 < mw || size.0 - mh >= limit.0 || size.1 - mw >= limit.1 {
            return Err(layer_err(
                "ConvTranspose2d",
                &name,
                format!(
                    "requested output size {size:?} is not reachable from input {:?}: valid sizes run from ({mh}, {mw}) to ({}, {})",
                    x.shape(),
                    mh + limit.0 - 1,
                    mw + limit.1 - 1
                ),
            ));
        }
        let mut probe = probe;
        probe.opts.output_padding = (size.0 - mh, size.1 - mw);
        probe.forward(x)
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let name = self.describe();
        batched("ConvTranspose2d", &name, x, |x| {
            if x.shape()[1] != self.in_channels {
                return Err(Error::ShapeMismatch {
                    op: "ConvTranspose2d",
                    lhs: x.shape().to_vec(),
                    rhs: self.weight.shape().to_vec(),
                    why: format!(
                        "do not agree: {name} expects {} input channels (input [N, {}, H, W])",
                        self.in_channels, self.in_channels
                    ),
                });
            }
            self.output_size((x.shape()[2], x.shape()[3]))?;
            x.conv_transpose2d(&self.weight, self.bias.as_ref(), &self.opts)
        })
    }

    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        params(&self.weight, &self.bias)
    }

    fn describe(&self) -> String {
        let (kh, kw) = self.kernel_size;
        let o = &self.opts;
        let mut s = format!(
            "ConvTranspose2d({}, {}, kernel_size=({kh}, {kw}), stride={:?}",
            self.in_channels, self.out_channels, o.stride
        );
        if o.padding != (0, 0) {
            s.push_str(&format!(", padding={:?}", o.padding));
        }
        if o.output_padding != (0, 0) {
            s.push_str(&format!(", output_padding={:?}", o.output_padding));
        }
        if o.dilation != (1, 1) {
            s.push_str(&format!(", dilation={:?}", o.dilation));
        }
        if o.groups != 1 {
            s.push_str(&format!(", groups={}", o.groups));
        }
        if self.bias.is_none() && self.weight.numel() > 0 {
            s.push_str(", bias=False");
        }
        s.push(')');
        s
    }
}
