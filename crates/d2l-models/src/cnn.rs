// One file, over 1,000 lines, on purpose: the CNNs of chapters 6–7, one section per book
// section in the book's order, sharing the geometry helpers (`spatial_or_err`, `conv`,
// pools) that size each first `Linear` from the input.
//! The convolutional networks of D2L chapters 6–7, built layer for layer as the book's
//! PyTorch code builds them: LeNet (6.6, and a ReLU + max-pool variant), AlexNet (7.1),
//! VGG (7.2), NiN (7.3), GoogLeNet (7.4), LeNet with batch normalisation (7.5, from scratch
//! and with `BatchNorm1d/2d`), ResNet-18 (7.6) and DenseNet (7.7), with the book's blocks
//! ([`Inception`], [`Residual`], [`DenseBlock`], the from-scratch [`BatchNorm`]).
//!
//! # Sizes
//!
//! Every builder takes a [`BuildConfig`]: `in_shape` is `[C, H, W]` (the book's
//! `[1, 28, 28]`, `[1, 96, 96]` or `[1, 224, 224]`), the last layer has `num_outputs`
//! units, and `width_mult` multiplies every hidden width — conv channels, the hidden units
//! of fully connected layers, Inception path widths, DenseNet's growth rate — each rounded
//! to the nearest integer and at least 1 ([`BuildConfig::hidden`]). Width 1.0 is the
//! book's network. The first `Linear` of LeNet, AlexNet and VGG is sized from the input,
//! so `--resize` works; an input too small for the network is an error that names the
//! smallest size that fits. NiN, GoogLeNet, ResNet and DenseNet end in adaptive pooling.
//!
//! # Initialisation
//!
//! The book trains every model of chapters 6–7 with `train_ch6`, which first applies
//! `nn.init.xavier_uniform_` to the **weights** of every `nn.Linear` and `nn.Conv2d` (the
//! biases keep PyTorch's default U(±1/√fan_in), batch-norm scale and shift stay 1 and 0).
//! The builders here do the same ([`xavier_init`]), so `build` gives the network exactly as
//! `train_ch6` starts training it.
//!
//! # Parameter names
//!
//! Names follow the book's modules, so a PyTorch `state_dict` of the book's code loads by
//! name: `Inception` has `p1_1` … `p4_2`, `Residual` has `conv1`, `conv2`, `conv3`
//! (the 1×1 shortcut), `bn1`, `bn2`, `DenseBlock` has `net.<i>.<j>`, the from-scratch
//! `BatchNorm` has `gamma`, `beta` and the buffers `moving_mean`, `moving_var`.
//!
//! ```
//! use d2l_models::zoo;
//! use d2l_nn::Module;
//! # fn main() -> d2l_tensor::Result<()> {
//! let info = zoo::model("lenet")?;
//! let net = info.build(&info.default_config())?;
//! assert_eq!(net.num_parameters(), 61_706);
//! # Ok(()) }
//! ```

use crate::zoo::BuildConfig;
use d2l_nn::conv::Conv2d;
use d2l_nn::init;
use d2l_nn::layers::{Dropout, Flatten, Linear, ReLU, Sigmoid};
use d2l_nn::norm::{BatchNorm1d, BatchNorm2d};
use d2l_nn::pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
use d2l_nn::{Module, Sequential};
use d2l_tensor::{Error, Result, Tensor};
use std::sync::Arc;

// ---------------------------------------------------------------------------------------
// Forward hooks: how summaries see inside composite blocks

/// Watches a forward pass layer by layer: the leaf layers (those without a known
/// composite structure) and the tensor operations a block applies itself between its
/// layers (the `F.relu` of `Inception`, the sum of `Residual`). The summary counts FLOPs
/// with it.
pub trait ForwardHook {
    /// A leaf layer ran on `input` and produced `output`.
    fn layer(&mut self, layer: &dyn Module, input: &Tensor, output: &Tensor);
    /// A block applied an elementwise operation (`"relu"`, `"add"`) of `flops` FLOPs per
    /// call, outside any layer.
    fn op(&mut self, what: &'static str, flops: u64);
}

/// A hook that watches nothing (plain forward passes).
struct NoHook;

impl ForwardHook for NoHook {
    fn layer(&mut self, _: &dyn Module, _: &Tensor, _: &Tensor) {}
    fn op(&mut self, _: &'static str, _: u64) {}
}

/// Runs `module` on `x`, reporting every leaf layer and block-level operation to `hook`:
/// a `Sequential` runs its children in order, the blocks of this module ([`Inception`],
/// [`Residual`], [`DenseBlock`]) their own structure, and any other module is a leaf (its
/// `forward` runs as one step, reported once).
pub fn forward_hooked(
    module: &dyn Module,
    x: &Tensor,
    hook: &mut dyn ForwardHook,
) -> Result<Tensor> {
    let any = module.as_any();
    if let Some(seq) = any.downcast_ref::<Sequential>() {
        let mut cur = x.clone();
        for (_, child) in seq.children() {
            cur = forward_hooked(child.as_ref(), &cur, hook)?;
        }
        return Ok(cur);
    }
    if let Some(b) = any.downcast_ref::<Inception>() {
        return b.run(x, hook);
    }
    if let Some(b) = any.downcast_ref::<Residual>() {
        return b.run(x, hook);
    }
    if let Some(b) = any.downcast_ref::<DenseBlock>() {
        return b.run(x, hook);
    }
    let y = module.forward(x)?;
    hook.layer(module, x, &y);
    Ok(y)
}

// ---------------------------------------------------------------------------------------
// Helpers

fn build_err(model: &str, msg: String) -> Error {
    Error::InvalidArgument {
        op: "zoo::build",
        msg: format!("{model}: {msg}"),
    }
}

/// The image shape `[C, H, W]` of a config, or an error naming the model.
fn image_shape(cfg: &BuildConfig, model: &str) -> Result<(usize, usize, usize)> {
    match cfg.in_shape[..] {
        [c, h, w] if c > 0 && h > 0 && w > 0 => Ok((c, h, w)),
        _ => Err(build_err(
            model,
            format!(
                "expected an image input shape [C, H, W], got {:?}",
                cfg.in_shape
            ),
        )),
    }
}

/// One spatial side through a conv or pool window: `⌊(n + 2p − k) / s⌋ + 1`, or `None`
/// when the (padded) input is smaller than the window.
fn window_out(n: usize, k: usize, s: usize, p: usize) -> Option<usize> {
    (n + 2 * p).checked_sub(k).map(|v| v / s + 1)
}

/// Follows the spatial size of a plain conv/pool stack so the first `Linear` can be sized
/// and a too-small input is reported before any layer runs.
struct Spatial {
    h: usize,
    w: usize,
    ok: bool,
}

impl Spatial {
    fn new(h: usize, w: usize) -> Spatial {
        Spatial { h, w, ok: true }
    }

    /// A `k`×`k` window with stride `s` and padding `p`.
    fn window(&mut self, k: usize, s: usize, p: usize) {
        match (window_out(self.h, k, s, p), window_out(self.w, k, s, p)) {
            (Some(h), Some(w)) if self.ok => {
                self.h = h;
                self.w = w;
            }
            _ => self.ok = false,
        }
    }
}

/// The smallest square input side for which `walk` succeeds (searching up to 4096), for
/// the error message of a too-small input.
fn min_side(walk: impl Fn(usize) -> bool) -> Option<usize> {
    (1..=4096).find(|&n| walk(n))
}

/// Runs a spatial walk and returns the final (h, w), or an error naming the smallest
/// square input that fits.
fn spatial_or_err(
    model: &str,
    h: usize,
    w: usize,
    walk: impl Fn(&mut Spatial),
) -> Result<(usize, usize)> {
    let mut s = Spatial::new(h, w);
    walk(&mut s);
    if s.ok {
        return Ok((s.h, s.w));
    }
    let min = min_side(|n| {
        let mut t = Spatial::new(n, n);
        walk(&mut t);
        t.ok
    });
    Err(build_err(
        model,
        match min {
            Some(m) => {
                format!("input {h}x{w} is too small for the network; it needs at least {m}x{m}")
            }
            None => format!("input {h}x{w} is too small for the network"),
        },
    ))
}

/// `train_ch6`'s initialisation (D2L 6.6): `nn.init.xavier_uniform_` on the weight of
/// every `Linear` and `Conv2d` in `net` (biases and batch-norm parameters untouched).
pub fn xavier_init(net: &dyn Module) -> Result<()> {
    net.apply(&mut |m: &dyn Module| {
        let any = m.as_any();
        if let Some(l) = any.downcast_ref::<Linear>() {
            init::xavier_uniform_(&l.weight, 1.0)?;
        } else if let Some(c) = any.downcast_ref::<Conv2d>() {
            init::xavier_uniform_(&c.weight, 1.0)?;
        }
        Ok(())
    })
}

fn conv(i: usize, o: usize, k: usize, s: usize, p: usize) -> Result<Conv2d> {
    Conv2d::builder(i, o, k).stride(s).padding(p).build()
}

fn max_pool(k: usize, s: usize, p: usize) -> MaxPool2d {
    MaxPool2d::new(k).stride(s).padding(p)
}

fn avg_pool(k: usize, s: usize) -> AvgPool2d {
    AvgPool2d::new(k).stride(s)
}

fn dropout_pair(cfg: &BuildConfig) -> (f64, f64) {
    cfg.dropout.unwrap_or((0.5, 0.5))
}

fn finish(net: Sequential) -> Result<Sequential> {
    xavier_init(&net)?;
    Ok(net)
}

// ---------------------------------------------------------------------------------------
// 6.6 LeNet

/// One LeNet variant: the book's 6.6 network (sigmoid, average pooling, padding 2 on the
/// first conv), the modern one of its exercises (ReLU, max pooling) and 7.5's BN-LeNet (no
/// padding, a batch norm after every conv and hidden `Linear`). The layers come in the
/// same order in all of them, so one builder writes the geometry once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LeNetSpec {
    /// Padding of the first conv (2 in 6.6, 0 in 7.5).
    pad: usize,
    /// ReLU and 2×2 max pooling instead of sigmoid and 2×2 average pooling.
    relu_max: bool,
    /// The batch normalisation after each conv and hidden `Linear`, if any.
    bn: Option<BnKind>,
}

fn lenet_with(cfg: &BuildConfig, spec: LeNetSpec, model: &str) -> Result<Sequential> {
    let (c, h, w) = image_shape(cfg, model)?;
    let (oh, ow) = spatial_or_err(model, h, w, |s| {
        s.window(5, 1, spec.pad);
        s.window(2, 2, 0);
        s.window(5, 1, 0);
        s.window(2, 2, 0);
    })?;
    let (c1, c2, f1, f2) = (
        cfg.hidden(6),
        cfg.hidden(16),
        cfg.hidden(120),
        cfg.hidden(84),
    );
    let mut net = Sequential::new();
    // `rank` is the rank of the normalised input: 4 after a conv, 2 after a `Linear`.
    let norm = |net: &mut Sequential, n: usize, rank: usize| -> Result<()> {
        match spec.bn {
            None => {}
            Some(BnKind::Scratch) => net.push(BatchNorm::new(n, rank)?),
            Some(BnKind::Concise) if rank == 4 => net.push(BatchNorm2d::new(n)?),
            Some(BnKind::Concise) => net.push(BatchNorm1d::new(n)?),
        }
        Ok(())
    };
    let act = |net: &mut Sequential| match spec.relu_max {
        false => net.push(Sigmoid),
        true => net.push(ReLU),
    };
    let pool = |net: &mut Sequential| match spec.relu_max {
        false => net.push(avg_pool(2, 2)),
        true => net.push(max_pool(2, 2, 0)),
    };
    net.push(conv(c, c1, 5, 1, spec.pad)?);
    norm(&mut net, c1, 4)?;
    act(&mut net);
    pool(&mut net);
    net.push(conv(c1, c2, 5, 1, 0)?);
    norm(&mut net, c2, 4)?;
    act(&mut net);
    pool(&mut net);
    net.push(Flatten::new());
    net.push(Linear::new(c2 * oh * ow, f1)?);
    norm(&mut net, f1, 2)?;
    act(&mut net);
    net.push(Linear::new(f1, f2)?);
    norm(&mut net, f2, 2)?;
    act(&mut net);
    net.push(Linear::new(f2, cfg.num_outputs)?);
    finish(net)
}

/// D2L 6.6 LeNet: `Conv2d(1, 6, 5, padding=2), Sigmoid, AvgPool2d(2, 2), Conv2d(6, 16, 5),
/// Sigmoid, AvgPool2d(2, 2), Flatten, Linear(400, 120), Sigmoid, Linear(120, 84), Sigmoid,
/// Linear(84, 10)`; 61,706 parameters for a 1×28×28 input.
pub fn lenet(cfg: &BuildConfig) -> Result<Sequential> {
    let spec = LeNetSpec {
        pad: 2,
        relu_max: false,
        bn: None,
    };
    lenet_with(cfg, spec, "lenet")
}

/// LeNet with ReLU and max pooling in place of sigmoid and average pooling (the modern
/// variant the 6.6 exercises ask for); same layers and 61,706 parameters.
pub fn lenet_relu_max(cfg: &BuildConfig) -> Result<Sequential> {
    let spec = LeNetSpec {
        pad: 2,
        relu_max: true,
        bn: None,
    };
    lenet_with(cfg, spec, "lenet-relu-max")
}

// ---------------------------------------------------------------------------------------
// 7.1 AlexNet

/// D2L 7.1 AlexNet for one-channel input: `Conv2d(1, 96, 11, stride 4, padding 1), ReLU,
/// MaxPool2d(3, 2), Conv2d(96, 256, 5, padding 2), ReLU, MaxPool2d(3, 2), Conv2d(256, 384,
/// 3, padding 1), ReLU, Conv2d(384, 384, 3, padding 1), ReLU, Conv2d(384, 256, 3, padding
/// 1), ReLU, MaxPool2d(3, 2), Flatten, Linear(6400, 4096), ReLU, Dropout(0.5),
/// Linear(4096, 4096), ReLU, Dropout(0.5), Linear(4096, 10)`; 46,764,746 parameters for
/// 1×224×224. The dropout pair comes from `cfg.dropout` (default 0.5, 0.5).
pub fn alexnet(cfg: &BuildConfig) -> Result<Sequential> {
    let model = "alexnet";
    let (c, h, w) = image_shape(cfg, model)?;
    let (oh, ow) = spatial_or_err(model, h, w, |s| {
        s.window(11, 4, 1);
        s.window(3, 2, 0);
        s.window(5, 1, 2);
        s.window(3, 2, 0);
        s.window(3, 1, 1);
        s.window(3, 1, 1);
        s.window(3, 1, 1);
        s.window(3, 2, 0);
    })?;
    let ch = [96, 256, 384, 384, 256].map(|b| cfg.hidden(b));
    let fc = cfg.hidden(4096);
    let (p1, p2) = dropout_pair(cfg);
    let net = Sequential::new()
        .add(conv(c, ch[0], 11, 4, 1)?)
        .add(ReLU)
        .add(max_pool(3, 2, 0))
        .add(conv(ch[0], ch[1], 5, 1, 2)?)
        .add(ReLU)
        .add(max_pool(3, 2, 0))
        .add(conv(ch[1], ch[2], 3, 1, 1)?)
        .add(ReLU)
        .add(conv(ch[2], ch[3], 3, 1, 1)?)
        .add(ReLU)
        .add(conv(ch[3], ch[4], 3, 1, 1)?)
        .add(ReLU)
        .add(max_pool(3, 2, 0))
        .add(Flatten::new())
        .add(Linear::new(ch[4] * oh * ow, fc)?)
        .add(ReLU)
        .add(Dropout::new(p1)?)
        .add(Linear::new(fc, fc)?)
        .add(ReLU)
        .add(Dropout::new(p2)?)
        .add(Linear::new(fc, cfg.num_outputs)?);
    finish(net)
}

// ---------------------------------------------------------------------------------------
// 7.2 VGG

/// VGG-11's `conv_arch` (D2L 7.2): (number of convs, output channels) per block.
pub const VGG11_ARCH: [(usize, usize); 5] = [(1, 64), (1, 128), (2, 256), (2, 512), (2, 512)];

/// The book's `small_conv_arch`: [`VGG11_ARCH`] with every channel count divided
/// (integer division) by `ratio`; the book trains with ratio 4. A ratio of 0 is an error.
pub fn small_conv_arch(ratio: usize) -> Result<Vec<(usize, usize)>> {
    if ratio == 0 {
        return Err(build_err(
            "vgg11",
            "expected a channel ratio >= 1, got 0".into(),
        ));
    }
    Ok(VGG11_ARCH.iter().map(|&(n, c)| (n, c / ratio)).collect())
}

/// D2L 7.2 `vgg_block(num_convs, in_channels, out_channels)`: `num_convs` × [3×3 conv
/// with padding 1, ReLU], then `MaxPool2d(2, 2)`.
pub fn vgg_block(num_convs: usize, in_channels: usize, out_channels: usize) -> Result<Sequential> {
    let mut blk = Sequential::new();
    let mut c = in_channels;
    for _ in 0..num_convs {
        blk.push(conv(c, out_channels, 3, 1, 1)?);
        blk.push(ReLU);
        c = out_channels;
    }
    blk.push(max_pool(2, 2, 0));
    Ok(blk)
}

/// D2L 7.2 `vgg(conv_arch)`: one [`vgg_block`] per `(num_convs, channels)` pair (channels
/// scaled by `width_mult`), then `Flatten, Linear(c·7·7, 4096), ReLU, Dropout(0.5),
/// Linear(4096, 4096), ReLU, Dropout(0.5), Linear(4096, 10)` (the 7·7 follows the input:
/// side / 2^blocks). The fully connected width is 4096 whatever the conv channels, as in
/// the book; `width_mult` scales it too.
pub fn vgg(conv_arch: &[(usize, usize)], cfg: &BuildConfig) -> Result<Sequential> {
    let model = "vgg";
    let (c, h, w) = image_shape(cfg, model)?;
    if conv_arch.is_empty() || conv_arch.iter().any(|&(n, ch)| n == 0 || ch == 0) {
        return Err(build_err(
            model,
            format!(
                "expected non-empty conv_arch with non-zero convs and channels, got {conv_arch:?}"
            ),
        ));
    }
    let (oh, ow) = spatial_or_err(model, h, w, |s| {
        for _ in conv_arch {
            s.window(2, 2, 0);
        }
    })?;
    let mut net = Sequential::new();
    let mut in_c = c;
    for &(n, ch) in conv_arch {
        let out_c = cfg.hidden(ch);
        net.push(vgg_block(n, in_c, out_c)?);
        in_c = out_c;
    }
    let fc = cfg.hidden(4096);
    let (p1, p2) = dropout_pair(cfg);
    net.push(Flatten::new());
    net.push(Linear::new(in_c * oh * ow, fc)?);
    net.push(ReLU);
    net.push(Dropout::new(p1)?);
    net.push(Linear::new(fc, fc)?);
    net.push(ReLU);
    net.push(Dropout::new(p2)?);
    net.push(Linear::new(fc, cfg.num_outputs)?);
    finish(net)
}

/// VGG-11 with its conv channels divided by `ratio` (the book's `small_conv_arch`;
/// ratio 1 is the full network of 128,806,154 parameters, ratio 4 the trained one of
/// 43,093,322 for 1×224×224).
pub fn vgg11(ratio: usize, cfg: &BuildConfig) -> Result<Sequential> {
    vgg(&small_conv_arch(ratio)?, cfg)
}

// ---------------------------------------------------------------------------------------
// 7.3 NiN

/// D2L 7.3 `nin_block(in, out, kernel_size, strides, padding)`: `Conv2d(in, out, k, s, p),
/// ReLU, Conv2d(out, out, 1), ReLU, Conv2d(out, out, 1), ReLU`.
pub fn nin_block(
    in_channels: usize,
    out_channels: usize,
    kernel_size: usize,
    stride: usize,
    padding: usize,
) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(conv(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
        )?)
        .add(ReLU)
        .add(conv(out_channels, out_channels, 1, 1, 0)?)
        .add(ReLU)
        .add(conv(out_channels, out_channels, 1, 1, 0)?)
        .add(ReLU))
}

/// D2L 7.3 NiN: `nin_block(1, 96, 11, 4, 0), MaxPool2d(3, 2), nin_block(96, 256, 5, 1, 2),
/// MaxPool2d(3, 2), nin_block(256, 384, 3, 1, 1), MaxPool2d(3, 2), Dropout(0.5),
/// nin_block(384, 10, 3, 1, 1), AdaptiveAvgPool2d(1), Flatten`; 1,992,166 parameters.
/// The last block ends in ReLU, so the logits are ≥ 0 (as in the book). The one dropout
/// probability is `cfg.dropout`'s first (default 0.5).
pub fn nin(cfg: &BuildConfig) -> Result<Sequential> {
    let model = "nin";
    let (c, h, w) = image_shape(cfg, model)?;
    spatial_or_err(model, h, w, |s| {
        s.window(11, 4, 0);
        s.window(3, 2, 0);
        s.window(5, 1, 2);
        s.window(3, 2, 0);
        s.window(3, 1, 1);
        s.window(3, 2, 0);
        s.window(3, 1, 1);
    })?;
    let ch = [96, 256, 384].map(|b| cfg.hidden(b));
    let p = dropout_pair(cfg).0;
    let net = Sequential::new()
        .add(nin_block(c, ch[0], 11, 4, 0)?)
        .add(max_pool(3, 2, 0))
        .add(nin_block(ch[0], ch[1], 5, 1, 2)?)
        .add(max_pool(3, 2, 0))
        .add(nin_block(ch[1], ch[2], 3, 1, 1)?)
        .add(max_pool(3, 2, 0))
        .add(Dropout::new(p)?)
        .add(nin_block(ch[2], cfg.num_outputs, 3, 1, 1)?)
        .add(AdaptiveAvgPool2d::new(1))
        .add(Flatten::new());
    finish(net)
}

// ---------------------------------------------------------------------------------------
// 7.4 GoogLeNet

/// D2L 7.4's Inception block: four parallel paths, each ending in ReLU, concatenated on
/// the channel dim. Path 1: 1×1 conv (`c1`). Path 2: 1×1 conv (`c2.0`), ReLU, 3×3 conv
/// padding 1 (`c2.1`). Path 3: 1×1 conv (`c3.0`), ReLU, 5×5 conv padding 2 (`c3.1`).
/// Path 4: 3×3 max pool stride 1 padding 1, 1×1 conv (`c4`). Output channels
/// `c1 + c2.1 + c3.1 + c4`; the spatial size is kept.
pub struct Inception {
    /// Path 1's 1×1 conv.
    pub p1_1: Arc<Conv2d>,
    /// Path 2's 1×1 conv.
    pub p2_1: Arc<Conv2d>,
    /// Path 2's 3×3 conv.
    pub p2_2: Arc<Conv2d>,
    /// Path 3's 1×1 conv.
    pub p3_1: Arc<Conv2d>,
    /// Path 3's 5×5 conv.
    pub p3_2: Arc<Conv2d>,
    /// Path 4's 3×3 max pool (stride 1, padding 1).
    pub p4_1: Arc<MaxPool2d>,
    /// Path 4's 1×1 conv.
    pub p4_2: Arc<Conv2d>,
}

impl Inception {
    /// `Inception(in_channels, c1, c2, c3, c4)` as in the book (PyTorch's default init).
    pub fn new(
        in_channels: usize,
        c1: usize,
        c2: (usize, usize),
        c3: (usize, usize),
        c4: usize,
    ) -> Result<Inception> {
        Ok(Inception {
            p1_1: Arc::new(conv(in_channels, c1, 1, 1, 0)?),
            p2_1: Arc::new(conv(in_channels, c2.0, 1, 1, 0)?),
            p2_2: Arc::new(conv(c2.0, c2.1, 3, 1, 1)?),
            p3_1: Arc::new(conv(in_channels, c3.0, 1, 1, 0)?),
            p3_2: Arc::new(conv(c3.0, c3.1, 5, 1, 2)?),
            p4_1: Arc::new(max_pool(3, 1, 1)),
            p4_2: Arc::new(conv(in_channels, c4, 1, 1, 0)?),
        })
    }

    /// The number of output channels (`c1 + c2.1 + c3.1 + c4`).
    pub fn out_channels(&self) -> usize {
        self.p1_1.out_channels()
            + self.p2_2.out_channels()
            + self.p3_2.out_channels()
            + self.p4_2.out_channels()
    }

    fn run(&self, x: &Tensor, hook: &mut dyn ForwardHook) -> Result<Tensor> {
        let relu = |t: Tensor, hook: &mut dyn ForwardHook| -> Result<Tensor> {
            hook.op("relu", t.numel() as u64);
            t.relu()
        };
        let p1 = forward_hooked(self.p1_1.as_ref(), x, hook)?;
        let p1 = relu(p1, hook)?;
        let p2 = forward_hooked(self.p2_1.as_ref(), x, hook)?;
        let p2 = relu(p2, hook)?;
        let p2 = forward_hooked(self.p2_2.as_ref(), &p2, hook)?;
        let p2 = relu(p2, hook)?;
        let p3 = forward_hooked(self.p3_1.as_ref(), x, hook)?;
        let p3 = relu(p3, hook)?;
        let p3 = forward_hooked(self.p3_2.as_ref(), &p3, hook)?;
        let p3 = relu(p3, hook)?;
        let p4 = forward_hooked(self.p4_1.as_ref(), x, hook)?;
        let p4 = forward_hooked(self.p4_2.as_ref(), &p4, hook)?;
        let p4 = relu(p4, hook)?;
        Tensor::cat(&[&p1, &p2, &p3, &p4], 1)
    }
}

impl Module for Inception {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, &mut NoHook)
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![
            ("p1_1".into(), self.p1_1.clone() as Arc<dyn Module>),
            ("p2_1".into(), self.p2_1.clone()),
            ("p2_2".into(), self.p2_2.clone()),
            ("p3_1".into(), self.p3_1.clone()),
            ("p3_2".into(), self.p3_2.clone()),
            ("p4_1".into(), self.p4_1.clone()),
            ("p4_2".into(), self.p4_2.clone()),
        ]
    }

    fn describe(&self) -> String {
        format!(
            "Inception(in_channels={}, c1={}, c2=({}, {}), c3=({}, {}), c4={})",
            self.p1_1.in_channels(),
            self.p1_1.out_channels(),
            self.p2_1.out_channels(),
            self.p2_2.out_channels(),
            self.p3_1.out_channels(),
            self.p3_2.out_channels(),
            self.p4_2.out_channels()
        )
    }
}

/// The book's nine Inception blocks: (c1, (c2a, c2b), (c3a, c3b), c4) of b3, b4, b5.
const INCEPTIONS: [[usize; 6]; 9] = [
    [64, 96, 128, 16, 32, 32],
    [128, 128, 192, 32, 96, 64],
    [192, 96, 208, 16, 48, 64],
    [160, 112, 224, 24, 64, 64],
    [128, 128, 256, 24, 64, 64],
    [112, 144, 288, 32, 64, 64],
    [256, 160, 320, 32, 128, 128],
    [256, 160, 320, 32, 128, 128],
    [384, 192, 384, 48, 128, 128],
];

/// D2L 7.4 GoogLeNet: b1 = `Conv2d(1, 64, 7, 2, 3), ReLU, MaxPool2d(3, 2, 1)`;
/// b2 = `Conv2d(64, 64, 1), ReLU, Conv2d(64, 192, 3, padding 1), ReLU, MaxPool2d(3, 2, 1)`;
/// b3 = 2 Inceptions + max pool; b4 = 5 Inceptions + max pool; b5 = 2 Inceptions,
/// `AdaptiveAvgPool2d(1), Flatten`; then `Linear(1024, 10)`. 5,977,530 parameters; the
/// book trains it on 96×96 inputs.
pub fn googlenet(cfg: &BuildConfig) -> Result<Sequential> {
    let model = "googlenet";
    let (c, h, w) = image_shape(cfg, model)?;
    spatial_or_err(model, h, w, |s| {
        s.window(7, 2, 3);
        s.window(3, 2, 1);
        s.window(3, 2, 1);
        s.window(3, 2, 1);
        s.window(3, 2, 1);
    })?;
    let b1 = Sequential::new()
        .add(conv(c, cfg.hidden(64), 7, 2, 3)?)
        .add(ReLU)
        .add(max_pool(3, 2, 1));
    let b2 = Sequential::new()
        .add(conv(cfg.hidden(64), cfg.hidden(64), 1, 1, 0)?)
        .add(ReLU)
        .add(conv(cfg.hidden(64), cfg.hidden(192), 3, 1, 1)?)
        .add(ReLU)
        .add(max_pool(3, 2, 1));
    let mut in_c = cfg.hidden(192);
    let mut inception = |i: usize| -> Result<Inception> {
        let [c1, c2a, c2b, c3a, c3b, c4] = INCEPTIONS[i].map(|b| cfg.hidden(b));
        let blk = Inception::new(in_c, c1, (c2a, c2b), (c3a, c3b), c4)?;
        in_c = blk.out_channels();
        Ok(blk)
    };
    let b3 = Sequential::new()
        .add(inception(0)?)
        .add(inception(1)?)
        .add(max_pool(3, 2, 1));
    let b4 = Sequential::new()
        .add(inception(2)?)
        .add(inception(3)?)
        .add(inception(4)?)
        .add(inception(5)?)
        .add(inception(6)?)
        .add(max_pool(3, 2, 1));
    let b5 = Sequential::new()
        .add(inception(7)?)
        .add(inception(8)?)
        .add(AdaptiveAvgPool2d::new(1))
        .add(Flatten::new());
    let net = Sequential::new()
        .add(b1)
        .add(b2)
        .add(b3)
        .add(b4)
        .add(b5)
        .add(Linear::new(in_c, cfg.num_outputs)?);
    finish(net)
}

// ---------------------------------------------------------------------------------------
// 7.5 BN-LeNet (the from-scratch batch norm is `crate::bn_scratch`)

pub use crate::bn_scratch::{batch_norm, BatchNorm};

/// Which batch normalisation a BN-LeNet uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BnKind {
    Scratch,
    Concise,
}

/// D2L 7.5 LeNet with the from-scratch [`BatchNorm`] after every conv and hidden
/// `Linear`: `Conv2d(1, 6, 5), BatchNorm(6, 4), Sigmoid, AvgPool2d(2, 2), Conv2d(6, 16, 5),
/// BatchNorm(16, 4), Sigmoid, AvgPool2d(2, 2), Flatten, Linear(256, 120), BatchNorm(120,
/// 2), Sigmoid, Linear(120, 84), BatchNorm(84, 2), Sigmoid, Linear(84, 10)`. No padding on
/// the first conv; 44,878 parameters.
pub fn lenet_bn_scratch(cfg: &BuildConfig) -> Result<Sequential> {
    let spec = LeNetSpec {
        pad: 0,
        relu_max: false,
        bn: Some(BnKind::Scratch),
    };
    lenet_with(cfg, spec, "lenet-bn-scratch")
}

/// D2L 7.5's concise BN-LeNet: as [`lenet_bn_scratch`] with `BatchNorm2d` / `BatchNorm1d`
/// (PyTorch's defaults: eps 1e-5, momentum 0.1, unbiased running variance); 44,878
/// parameters.
pub fn lenet_bn(cfg: &BuildConfig) -> Result<Sequential> {
    let spec = LeNetSpec {
        pad: 0,
        relu_max: false,
        bn: Some(BnKind::Concise),
    };
    lenet_with(cfg, spec, "lenet-bn")
}

/// The learned γ and β of the first batch-norm layer of `net`, flattened to 1-D, as the
/// book prints them after training BN-LeNet (`net[1].gamma.reshape((-1,))` for the
/// scratch layer, `net[1].weight.reshape((-1,))` for `BatchNorm2d`); `None` when the net
/// has no affine batch-norm layer at the top level.
pub fn first_bn_gamma_beta(net: &Sequential) -> Option<(Vec<f64>, Vec<f64>)> {
    (0..net.len()).find_map(|i| {
        let any = net.get(i)?.as_any();
        if let Some(bn) = any.downcast_ref::<BatchNorm>() {
            return Some((bn.gamma.to_f64_vec(), bn.beta.to_f64_vec()));
        }
        if let Some(bn) = any.downcast_ref::<BatchNorm2d>() {
            return Some((
                bn.weight.as_ref()?.to_f64_vec(),
                bn.bias.as_ref()?.to_f64_vec(),
            ));
        }
        if let Some(bn) = any.downcast_ref::<BatchNorm1d>() {
            return Some((
                bn.weight.as_ref()?.to_f64_vec(),
                bn.bias.as_ref()?.to_f64_vec(),
            ));
        }
        None
    })
}

/// `tensor([a, b, ...])` with four decimals, as PyTorch prints a short 1-D tensor.
fn torch_vec(v: &[f64]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{x:.4}")).collect();
    format!("tensor([{}])", items.join(", "))
}

/// The book's 7.5 print after training a BN-LeNet (`lenet-bn-scratch` or `lenet-bn`): two
/// lines, `gamma: tensor([...])` and `beta: tensor([...])`, of the first batch-norm
/// layer. `None` for every other model (the book prints them only there).
pub fn bn_report(model: &str, net: &Sequential) -> Option<String> {
    if !matches!(model, "lenet-bn" | "lenet-bn-scratch") {
        return None;
    }
    let (g, b) = first_bn_gamma_beta(net)?;
    Some(format!("gamma: {}\nbeta: {}", torch_vec(&g), torch_vec(&b)))
}

// ---------------------------------------------------------------------------------------
// 7.6 ResNet

/// D2L 7.6's residual block: `conv1` (3×3, padding 1, stride s) → `bn1` → ReLU → `conv2`
/// (3×3, padding 1) → `bn2`, plus the input — through `conv3` (1×1, stride s, with bias,
/// no batch norm) when `use_1x1conv` — then ReLU. All convs have a bias.
pub struct Residual {
    /// The first 3×3 conv (stride s).
    pub conv1: Arc<Conv2d>,
    /// The second 3×3 conv.
    pub conv2: Arc<Conv2d>,
    /// The 1×1 shortcut conv (stride s), when the block changes shape.
    pub conv3: Option<Arc<Conv2d>>,
    /// Batch norm after `conv1`.
    pub bn1: Arc<BatchNorm2d>,
    /// Batch norm after `conv2`.
    pub bn2: Arc<BatchNorm2d>,
}

impl Residual {
    /// `Residual(input_channels, num_channels, use_1x1conv, strides)` as in the book.
    /// Without the 1×1 conv the shortcut is the identity, so the block must keep the shape
    /// (`input_channels == num_channels`, stride 1); otherwise that is an error.
    pub fn new(
        input_channels: usize,
        num_channels: usize,
        use_1x1conv: bool,
        strides: usize,
    ) -> Result<Residual> {
        if !use_1x1conv && (input_channels != num_channels || strides != 1) {
            return Err(Error::InvalidArgument {
                op: "Residual",
                msg: format!(
                    "an identity shortcut needs input_channels == num_channels and stride 1, got {input_channels}, {num_channels}, stride {strides}; use use_1x1conv"
                ),
            });
        }
        Ok(Residual {
            conv1: Arc::new(conv(input_channels, num_channels, 3, strides, 1)?),
            conv2: Arc::new(conv(num_channels, num_channels, 3, 1, 1)?),
            conv3: if use_1x1conv {
                Some(Arc::new(conv(input_channels, num_channels, 1, strides, 0)?))
            } else {
                None
            },
            bn1: Arc::new(BatchNorm2d::new(num_channels)?),
            bn2: Arc::new(BatchNorm2d::new(num_channels)?),
        })
    }

    fn run(&self, x: &Tensor, hook: &mut dyn ForwardHook) -> Result<Tensor> {
        let y = forward_hooked(self.conv1.as_ref(), x, hook)?;
        let y = forward_hooked(self.bn1.as_ref(), &y, hook)?;
        hook.op("relu", y.numel() as u64);
        let y = y.relu()?;
        let y = forward_hooked(self.conv2.as_ref(), &y, hook)?;
        let y = forward_hooked(self.bn2.as_ref(), &y, hook)?;
        let shortcut = match &self.conv3 {
            Some(c) => forward_hooked(c.as_ref(), x, hook)?,
            None => x.clone(),
        };
        hook.op("add", y.numel() as u64);
        let y = y.add(&shortcut)?;
        hook.op("relu", y.numel() as u64);
        y.relu()
    }
}

impl Module for Residual {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, &mut NoHook)
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        let mut v: Vec<(String, Arc<dyn Module>)> = vec![
            ("conv1".into(), self.conv1.clone()),
            ("conv2".into(), self.conv2.clone()),
        ];
        if let Some(c) = &self.conv3 {
            v.push(("conv3".into(), c.clone()));
        }
        v.push(("bn1".into(), self.bn1.clone()));
        v.push(("bn2".into(), self.bn2.clone()));
        v
    }

    fn describe(&self) -> String {
        format!(
            "Residual(input_channels={}, num_channels={}, use_1x1conv={}, strides={})",
            self.conv1.in_channels(),
            self.conv1.out_channels(),
            if self.conv3.is_some() {
                "True"
            } else {
                "False"
            },
            self.conv1.options().stride.0
        )
    }
}

/// D2L 7.6 `resnet_block(input_channels, num_channels, num_residuals, first_block)`:
/// `num_residuals` [`Residual`]s; unless `first_block`, the first one halves the size with
/// a 1×1-conv shortcut and stride 2.
pub fn resnet_block(
    input_channels: usize,
    num_channels: usize,
    num_residuals: usize,
    first_block: bool,
) -> Result<Sequential> {
    let mut blk = Sequential::new();
    for i in 0..num_residuals {
        if i == 0 && !first_block {
            blk.push(Residual::new(input_channels, num_channels, true, 2)?);
        } else {
            blk.push(Residual::new(num_channels, num_channels, false, 1)?);
        }
    }
    Ok(blk)
}

/// The stem shared by ResNet and DenseNet (D2L 7.6's b1): `Conv2d(c, 64, 7, 2, 3),
/// BatchNorm2d(64), ReLU, MaxPool2d(3, 2, 1)`.
fn resnet_stem(in_channels: usize, out_channels: usize) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(conv(in_channels, out_channels, 7, 2, 3)?)
        .add(BatchNorm2d::new(out_channels)?)
        .add(ReLU)
        .add(max_pool(3, 2, 1)))
}

fn stem_walk(s: &mut Spatial) {
    s.window(7, 2, 3);
    s.window(3, 2, 1);
}

/// D2L 7.6 ResNet-18: b1 = the stem (7×7 conv, BN, ReLU, max pool); b2 =
/// `resnet_block(64, 64, 2, first_block)`; b3, b4, b5 = `resnet_block(c, 2c, 2)` for 128,
/// 256, 512; then `AdaptiveAvgPool2d(1), Flatten, Linear(512, 10)`. 11,178,378
/// parameters; trained on 96×96 inputs.
pub fn resnet18(cfg: &BuildConfig) -> Result<Sequential> {
    let model = "resnet18";
    let (c, h, w) = image_shape(cfg, model)?;
    spatial_or_err(model, h, w, stem_walk)?;
    let ch = [64, 128, 256, 512].map(|b| cfg.hidden(b));
    let net = Sequential::new()
        .add(resnet_stem(c, ch[0])?)
        .add(resnet_block(ch[0], ch[0], 2, true)?)
        .add(resnet_block(ch[0], ch[1], 2, false)?)
        .add(resnet_block(ch[1], ch[2], 2, false)?)
        .add(resnet_block(ch[2], ch[3], 2, false)?)
        .add(AdaptiveAvgPool2d::new(1))
        .add(Flatten::new())
        .add(Linear::new(ch[3], cfg.num_outputs)?);
    finish(net)
}

/// D2L 12.6 `d2l.resnet18(num_classes, in_channels)`, the small-image ResNet-18 that 13.1
/// trains on CIFAR-10 (D.8): the stem is `Conv2d(c, 64, 3, 1, 1), BatchNorm2d(64), ReLU`
/// with **no** max pool, then the four stages of [`resnet18`] (`resnet_block1` …
/// `resnet_block4`), `AdaptiveAvgPool2d(1)` and `fc = Flatten, Linear(512, classes)`;
/// 11,176,970 parameters for (10 classes, 3 channels). `width_mult` scales the channels.
/// Xavier-uniform weights, as 13.1's `init_weights`.
pub fn resnet18_small(cfg: &BuildConfig) -> Result<Sequential> {
    let model = "resnet18-small";
    let (c, h, w) = image_shape(cfg, model)?;
    spatial_or_err(model, h, w, |s| s.window(3, 1, 1))?;
    let ch = [64, 128, 256, 512].map(|b| cfg.hidden(b));
    let stem = Sequential::new()
        .add(conv(c, ch[0], 3, 1, 1)?)
        .add(BatchNorm2d::new(ch[0])?)
        .add(ReLU);
    let net = Sequential::new()
        .add(stem)
        .add(resnet_block(ch[0], ch[0], 2, true)?)
        .add(resnet_block(ch[0], ch[1], 2, false)?)
        .add(resnet_block(ch[1], ch[2], 2, false)?)
        .add(resnet_block(ch[2], ch[3], 2, false)?)
        .add(AdaptiveAvgPool2d::new(1))
        .add(Flatten::new())
        .add(Linear::new(ch[3], cfg.num_outputs)?);
    finish(net)
}

// ---------------------------------------------------------------------------------------
// 7.7 DenseNet

/// D2L 7.7 `conv_block(input_channels, num_channels)`: `BatchNorm2d(input_channels), ReLU,
/// Conv2d(input_channels, num_channels, 3, padding 1)`.
pub fn conv_block(input_channels: usize, num_channels: usize) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(BatchNorm2d::new(input_channels)?)
        .add(ReLU)
        .add(conv(input_channels, num_channels, 3, 1, 1)?))
}

/// D2L 7.7's dense block: `num_convs` [`conv_block`]s (in the child `net`), the j-th
/// taking `input_channels + j·num_channels` channels; each one's output is concatenated
/// to its input on the channel dim. Output channels `input_channels +
/// num_convs·num_channels`.
pub struct DenseBlock {
    /// The conv blocks, as `nn.Sequential` (so parameters are named `net.<j>.<k>`).
    pub net: Arc<Sequential>,
    out_channels: usize,
}

impl DenseBlock {
    /// `DenseBlock(num_convs, input_channels, num_channels)` as in the book.
    pub fn new(num_convs: usize, input_channels: usize, num_channels: usize) -> Result<DenseBlock> {
        let mut net = Sequential::new();
        for j in 0..num_convs {
            net.push(conv_block(input_channels + j * num_channels, num_channels)?);
        }
        Ok(DenseBlock {
            net: Arc::new(net),
            out_channels: input_channels + num_convs * num_channels,
        })
    }

    /// The number of output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    fn run(&self, x: &Tensor, hook: &mut dyn ForwardHook) -> Result<Tensor> {
        let mut x = x.clone();
        for (_, blk) in self.net.children() {
            let y = forward_hooked(blk.as_ref(), &x, hook)?;
            x = Tensor::cat(&[&x, &y], 1)?;
        }
        Ok(x)
    }
}

impl Module for DenseBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, &mut NoHook)
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![("net".into(), self.net.clone() as Arc<dyn Module>)]
    }

    fn describe(&self) -> String {
        "DenseBlock".into()
    }
}

/// D2L 7.7 `transition_block(input_channels, num_channels)`: `BatchNorm2d(input_channels),
/// ReLU, Conv2d(input_channels, num_channels, 1), AvgPool2d(2, 2)`.
pub fn transition_block(input_channels: usize, num_channels: usize) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(BatchNorm2d::new(input_channels)?)
        .add(ReLU)
        .add(conv(input_channels, num_channels, 1, 1, 0)?)
        .add(avg_pool(2, 2)))
}

/// D2L 7.7 DenseNet: b1 = ResNet's stem (64 channels); four dense blocks of 4 convs with
/// growth rate 32, a transition block halving the channels (and the size) between them
/// (64 → 192 → 96 → 224 → 112 → 240 → 120 → 248); then `BatchNorm2d(248), ReLU,
/// AdaptiveAvgPool2d(1), Flatten, Linear(248, 10)`. 758,226 parameters; trained on 96×96
/// inputs.
pub fn densenet(cfg: &BuildConfig) -> Result<Sequential> {
    let model = "densenet";
    let (c, h, w) = image_shape(cfg, model)?;
    spatial_or_err(model, h, w, |s| {
        stem_walk(s);
        for _ in 0..3 {
            s.window(2, 2, 0);
        }
    })?;
    let (mut num_channels, growth_rate) = (cfg.hidden(64), cfg.hidden(32));
    let num_convs_in_dense_blocks = [4, 4, 4, 4];
    let mut net = Sequential::new().add(resnet_stem(c, num_channels)?);
    for (i, &num_convs) in num_convs_in_dense_blocks.iter().enumerate() {
        let blk = DenseBlock::new(num_convs, num_channels, growth_rate)?;
        num_channels = blk.out_channels();
        net.push(blk);
        if i != num_convs_in_dense_blocks.len() - 1 {
            let half = (num_channels / 2).max(1);
            net.push(transition_block(num_channels, half)?);
            num_channels = half;
        }
    }
    net.push(BatchNorm2d::new(num_channels)?);
    net.push(ReLU);
    net.push(AdaptiveAvgPool2d::new(1));
    net.push(Flatten::new());
    net.push(Linear::new(num_channels, cfg.num_outputs)?);
    finish(net)
}
