//! The fully convolutional network of D2L 13.11 (semantic segmentation on VOC2012).
//!
//! The book builds it as
//!
//! ```python
//! pretrained_net = torchvision.models.resnet18(pretrained=True)
//! net = nn.Sequential(*list(pretrained_net.children())[:-2])
//! net.add_module('final_conv', nn.Conv2d(512, num_classes, kernel_size=1))
//! net.add_module('transpose_conv', nn.ConvTranspose2d(num_classes, num_classes,
//!                                     kernel_size=64, padding=16, stride=32))
//! net.transpose_conv.weight.data.copy_(bilinear_kernel(num_classes, num_classes, 64))
//! ```
//!
//! and [`fcn`] does the same: [`Fcn`]'s state-dict keys are PyTorch's — `0.weight`
//! (conv1), `1.*` (bn1), `4.*` … `7.*` (layer1 … layer4), `final_conv.*`,
//! `transpose_conv.*` — and a 320×480 image goes 512×10×15 through the body (output
//! stride 32) and comes back as `num_classes`×320×480. 12,993,642 parameters for 21
//! classes: body 11,176,512 + final_conv 10,773 + transpose_conv 1,806,357.
//!
//! The loss is the book's `F.cross_entropy(inputs, targets, reduction='none')
//! .mean(1).mean(1)` ([`seg_loss`]), the accuracy is per pixel ([`pixel_accuracy`]).
//!
//! ```no_run
//! use d2l_models::fcn::{fcn, seg_loss};
//! use d2l_nn::Module;
//! use d2l_tensor::Tensor;
//! # fn main() -> d2l_tensor::Result<()> {
//! let net = fcn(21, Some("resnet18-f37072fd.pth".as_ref()))?;
//! let x = Tensor::zeros(&[1, 3, 320, 480]);
//! let y = net.forward(&x)?; // [1, 21, 320, 480]
//! let labels = Tensor::zeros(&[1, 320, 480]).to_dtype(d2l_tensor::DType::I64)?;
//! let l = seg_loss(&y, &labels)?; // [1]
//! # let _ = l;
//! # Ok(()) }
//! ```

use crate::torchvision::resnet18_body;
use d2l_nn::conv::{Conv2d, ConvTranspose2d};
use d2l_nn::loss::{cross_entropy_with, CrossEntropyOptions, Reduction};
use d2l_nn::pth;
use d2l_nn::serialize::LoadReport;
use d2l_nn::{Module, Sequential};
use d2l_tensor::{no_grad, DType, Error, Result, Tensor};
use d2l_vision::upsample::bilinear_kernel;
use std::path::Path;
use std::sync::Arc;

/// The FCN of D2L 13.11: [`body`](Fcn::body) (torchvision ResNet-18 without `avgpool`
/// and `fc`, children `0` … `7`) → [`final_conv`](Fcn::final_conv) (1×1, 512 →
/// classes) → [`transpose_conv`](Fcn::transpose_conv) (k 64, padding 16, stride 32,
/// ×32 upsampling). Its children are named as the book's `nn.Sequential` after the two
/// `add_module` calls: `0` … `7`, `final_conv`, `transpose_conv`. Input [N, 3, H, W]
/// with H and W multiples of 32, output [N, num_classes, H, W].
pub struct Fcn {
    /// ResNet-18's children up to `layer4`: `0` conv1, `1` bn1, `2` relu, `3` maxpool,
    /// `4` … `7` layer1 … layer4. Output [N, 512, H/32, W/32].
    pub body: Sequential,
    /// `Conv2d(512, num_classes, 1)` with PyTorch's default init.
    pub final_conv: Arc<Conv2d>,
    /// `ConvTranspose2d(num_classes, num_classes, 64, padding=16, stride=32)`, weight
    /// [in, out, 64, 64] set to `bilinear_kernel(num_classes, num_classes, 64)`; the
    /// bias keeps PyTorch's default init (the book leaves it too).
    pub transpose_conv: Arc<ConvTranspose2d>,
    num_classes: usize,
}

impl Fcn {
    /// The number of classes (channels of the output).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The body's output, [N, 512, H/32, W/32] (the book's `net[:-2]` check on a
    /// 320×480 image gives [1, 512, 10, 15]).
    pub fn forward_body(&self, x: &Tensor) -> Result<Tensor> {
        self.body.forward(x)
    }
}

impl Module for Fcn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.body.forward(x)?;
        let y = self.final_conv.forward(&y)?;
        self.transpose_conv.forward(&y)
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        let mut c = self.body.children();
        c.push(("final_conv".into(), self.final_conv.clone()));
        c.push(("transpose_conv".into(), self.transpose_conv.clone()));
        c
    }

    fn describe(&self) -> String {
        "Sequential".into()
    }
}

/// Builds the FCN of D2L 13.11 for `num_classes` classes (21 for VOC2012).
///
/// The body is a fresh torchvision ResNet-18 body ([`resnet18_body`]); with
/// `body_weights` (a torchvision checkpoint such as `resnet18-f37072fd.pth`) its
/// weights are loaded by [`load_body_weights`], i.e. the names are mapped as
/// [`torchvision_to_body_name`] says. `final_conv` keeps PyTorch's default init;
/// `transpose_conv`'s weight is [`bilinear_kernel`]`(num_classes, num_classes, 64)`,
/// whose (in, out, k, k) layout is the one [`ConvTranspose2d`] uses (PyTorch's
/// (in, out/groups, k, k) with one group).
pub fn fcn(num_classes: usize, body_weights: Option<&Path>) -> Result<Fcn> {
    if num_classes == 0 {
        return Err(Error::InvalidArgument {
            op: "fcn",
            msg: "num_classes must be at least 1".into(),
        });
    }
    let body = resnet18_body()?;
    if let Some(path) = body_weights {
        load_body_weights(&body, path)?;
    }
    let final_conv = Conv2d::new(512, num_classes, 1)?;
    let transpose_conv = ConvTranspose2d::builder(num_classes, num_classes, 64)
        .padding(16)
        .stride(32)
        .build()?;
    let w = bilinear_kernel(num_classes, num_classes, 64);
    no_grad(|| transpose_conv.weight.copy_(&w))?;
    Ok(Fcn {
        body,
        final_conv: Arc::new(final_conv),
        transpose_conv: Arc::new(transpose_conv),
        num_classes,
    })
}

/// Maps a torchvision ResNet-18 state-dict name onto the FCN body's (the book's
/// `nn.Sequential(*list(pretrained_net.children())[:-2])`, whose children are numbered
/// in torchvision's order): `conv1.*` → `0.*`, `bn1.*` → `1.*`, `layer1.*` … `layer4.*`
/// → `4.*` … `7.*`. `relu` (2) and `maxpool` (3) have no entries; `fc.*` (and anything
/// else, `avgpool` included) has no place in the body and gives `None`.
///
/// ```
/// use d2l_models::fcn::torchvision_to_body_name;
/// assert_eq!(torchvision_to_body_name("layer3.1.bn2.running_var").as_deref(),
///            Some("6.1.bn2.running_var"));
/// assert_eq!(torchvision_to_body_name("fc.weight"), None);
/// ```
pub fn torchvision_to_body_name(name: &str) -> Option<String> {
    const MAP: [(&str, &str); 6] = [
        ("conv1.", "0."),
        ("bn1.", "1."),
        ("layer1.", "4."),
        ("layer2.", "5."),
        ("layer3.", "6."),
        ("layer4.", "7."),
    ];
    MAP.iter()
        .find_map(|(from, to)| name.strip_prefix(from).map(|rest| format!("{to}{rest}")))
}

/// Loads a torchvision ResNet-18 checkpoint (`.pth`, read by [`pth::load_pth`]) into an
/// FCN body ([`Fcn::body`] or [`resnet18_body`]), renaming each entry with
/// [`torchvision_to_body_name`]. `fc.weight` and `fc.bias` are dropped (the book drops
/// the `fc` child), as are the `num_batches_tracked` counters (the body keeps its own);
/// any other name without a place in the body, any body entry the file lacks and any
/// shape mismatch is one error naming them all, with nothing loaded.
pub fn load_body_weights(body: &dyn Module, path: impl AsRef<Path>) -> Result<LoadReport> {
    let path = path.as_ref();
    let mut entries = Vec::new();
    let mut stray = Vec::new();
    for (n, t) in pth::load_pth(path)? {
        if n.ends_with("num_batches_tracked") || n.starts_with("fc.") {
            continue;
        }
        match torchvision_to_body_name(&n) {
            Some(m) => entries.push((m, t)),
            None => stray.push(n),
        }
    }
    if !stray.is_empty() {
        return Err(Error::InvalidArgument {
            op: "load_body_weights",
            msg: format!(
                "{}: entries with no place in a ResNet-18 body: {}; nothing was loaded",
                path.display(),
                stray.join(", ")
            ),
        });
    }
    pth::load_state_dict_entries(body, &entries, true, &path.display().to_string())
}

/// Checks logits [N, C, H, W] (float) against labels [N, H, W] (i64).
fn check_seg(op: &'static str, logits: &Tensor, labels: &Tensor) -> Result<()> {
    if !logits.dtype().is_float() {
        return Err(Error::DTypeMismatch {
            op,
            expected: "float logits".into(),
            got: logits.dtype(),
        });
    }
    if labels.dtype() != DType::I64 {
        return Err(Error::DTypeMismatch {
            op,
            expected: "i64 labels".into(),
            got: labels.dtype(),
        });
    }
    let (ls, ts) = (logits.shape(), labels.shape());
    if ls.len() != 4 || ts.len() != 3 || ls[0] != ts[0] || ls[2..] != ts[1..] {
        return Err(Error::InvalidArgument {
            op,
            msg: format!(
                "want logits [N, C, H, W] and labels [N, H, W] with the same N, H, W; \
                 got logits {ls:?} and labels {ts:?}"
            ),
        });
    }
    Ok(())
}

/// D2L 13.11's loss: `F.cross_entropy(inputs, targets, reduction='none').mean(1)
/// .mean(1)` — the per-pixel cross-entropy averaged over H and W of each image.
/// Logits `[N, C, H, W]`, labels `[N, H, W]` (i64 class indices), result `[N]`; the book's
/// `train_ch13` sums it over the batch. Differentiable in the logits.
pub fn seg_loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    check_seg("seg_loss", logits, labels)?;
    let opts = CrossEntropyOptions {
        reduction: Reduction::None,
        ..Default::default()
    };
    cross_entropy_with(logits, labels, &opts)?
        .mean(&[1], false)?
        .mean(&[1], false)
}

/// Per-pixel accuracy as the book counts it (`d2l.accuracy` on segmentation output):
/// `(correct, total)` with correct the pixels whose arg-max class over C equals the
/// label and total N·H·W. Logits [N, C, H, W], labels [N, H, W] (i64).
pub fn pixel_accuracy(logits: &Tensor, labels: &Tensor) -> Result<(usize, usize)> {
    check_seg("pixel_accuracy", logits, labels)?;
    let pred = logits.argmax(1, false)?.to_vec::<i64>();
    let want = labels.to_vec::<i64>();
    let correct = pred.iter().zip(&want).filter(|(p, w)| p == w).count();
    Ok((correct, want.len()))
}
