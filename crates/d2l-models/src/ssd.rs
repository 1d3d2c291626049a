//! TinySSD, the single-shot multibox detector of D2L 13.7, and its loss and metrics.
//!
//! The network is the book's: a base net of three down-sampling blocks (3→16→32→64
//! channels, 256 → 32 pixels), two more down-sampling blocks (→128 channels, 16 and 8
//! pixels), a third (4 pixels) and a global max pool (1 pixel). At each of those five
//! scales a 3×3 conv predicts `4·(classes+1)` class scores and a 3×3 conv `4·4` box
//! offsets per pixel, and anchors are generated with the scale's sizes and the ratios
//! `[1, 2, 0.5]` (4 anchors per pixel). Predictions are moved channels-last, flattened and
//! concatenated, so for a 256×256 input there are 4·(1024+256+64+16+1) = 5444 anchors.
//!
//! Parameter names follow the book's `setattr` names: `blk_0` … `blk_4`, `cls_0` … `cls_4`,
//! `bbox_0` … `bbox_4`; with one class the network has 1,010,376 parameters. Layers keep
//! PyTorch's default initialisation, as the book's code does (no Xavier here).

use d2l_nn::conv::Conv2d;
use d2l_nn::layers::ReLU;
use d2l_nn::loss::{cross_entropy_with, l1_loss, smooth_l1_loss, CrossEntropyOptions, Reduction};
use d2l_nn::norm::BatchNorm2d;
use d2l_nn::pool::{AdaptiveMaxPool2d, MaxPool2d};
use d2l_nn::{Module, Sequential};
use d2l_tensor::{DType, Device, Error, Result, Tensor};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The anchor sizes of the five scales, as the book sets them: evenly spaced from 0.2 to
/// 0.88 with the geometric mean of neighbours as the second size.
pub const SSD_SIZES: [[f32; 2]; 5] = [
    [0.2, 0.272],
    [0.37, 0.447],
    [0.54, 0.619],
    [0.71, 0.79],
    [0.88, 0.961],
];
/// The anchor aspect ratios, the same at every scale.
pub const SSD_RATIOS: [f32; 3] = [1.0, 2.0, 0.5];
/// Anchors per pixel: `len(sizes) + len(ratios) − 1`.
pub const SSD_ANCHORS_PER_PIXEL: usize = 4;

/// D2L 13.7 `down_sample_blk(in, out)`: two [3×3 conv (padding 1), BatchNorm, ReLU] and a
/// 2×2 max pool, halving height and width.
pub fn down_sample_blk(in_channels: usize, out_channels: usize) -> Result<Sequential> {
    let mut blk = Sequential::new();
    let mut c = in_channels;
    for _ in 0..2 {
        blk.push(Conv2d::builder(c, out_channels, 3).padding(1).build()?);
        blk.push(BatchNorm2d::new(out_channels)?);
        blk.push(ReLU);
        c = out_channels;
    }
    blk.push(MaxPool2d::new(2));
    Ok(blk)
}

/// D2L 13.7 `base_net()`: down-sampling blocks 3→16→32→64.
pub fn base_net() -> Result<Sequential> {
    let mut blk = Sequential::new();
    for w in [3, 16, 32, 64].windows(2) {
        blk.push(down_sample_blk(w[0], w[1])?);
    }
    Ok(blk)
}

/// The outputs of [`TinySsd::forward_ssd`], named as in the book.
#[derive(Debug, Clone)]
pub struct SsdOutput {
    /// All anchors, `(1, A, 4)`, normalised corner format (no gradient).
    pub anchors: Tensor,
    /// Class scores (logits), `(B, A, classes + 1)`; index 0 is background.
    pub cls_preds: Tensor,
    /// Box offsets, `(B, 4A)`.
    pub bbox_preds: Tensor,
}

/// The anchor generator TinySSD calls at each scale: `(height, width, sizes, ratios)` →
/// `(1, H·W·(n+m−1), 4)`. It lives in the vision toolkit (`multibox_prior`); the model
/// takes it as a function so that this crate does not depend on the toolkit.
pub type AnchorFn = fn(usize, usize, &[f32], &[f32]) -> Result<Tensor>;

/// The anchor cache's key: the feature-map sizes of the five scales and the device.
type AnchorKey = (Vec<(usize, usize)>, Device);

/// D2L 13.7 `TinySSD(num_classes)`.
pub struct TinySsd {
    num_classes: usize,
    blks: Vec<Arc<dyn Module>>,
    cls: Vec<Arc<Conv2d>>,
    bbox: Vec<Arc<Conv2d>>,
    anchor_fn: AnchorFn,
    /// Anchors depend only on the feature-map sizes: computed once per input size.
    anchor_cache: Mutex<HashMap<AnchorKey, Tensor>>,
}

impl TinySsd {
    /// The book's TinySSD for `num_classes` object classes (plus background), with
    /// `anchor_fn` generating each scale's anchors (pass the toolkit's `multibox_prior`).
    pub fn new(num_classes: usize, anchor_fn: AnchorFn) -> Result<TinySsd> {
        if num_classes == 0 {
            return Err(Error::InvalidArgument {
                op: "TinySsd",
                msg: "num_classes must be at least 1 (background is added)".into(),
            });
        }
        let channels = [64, 128, 128, 128, 128];
        let mut blks: Vec<Arc<dyn Module>> = Vec::new();
        let mut cls = Vec::new();
        let mut bbox = Vec::new();
        for (i, &c) in channels.iter().enumerate() {
            let blk: Arc<dyn Module> = match i {
                0 => Arc::new(base_net()?),
                1 => Arc::new(down_sample_blk(64, 128)?),
                4 => Arc::new(AdaptiveMaxPool2d::new((1, 1))),
                _ => Arc::new(down_sample_blk(128, 128)?),
            };
            blks.push(blk);
            cls.push(Arc::new(
                Conv2d::builder(c, SSD_ANCHORS_PER_PIXEL * (num_classes + 1), 3)
                    .padding(1)
                    .build()?,
            ));
            bbox.push(Arc::new(
                Conv2d::builder(c, SSD_ANCHORS_PER_PIXEL * 4, 3)
                    .padding(1)
                    .build()?,
            ));
        }
        Ok(TinySsd {
            num_classes,
            blks,
            cls,
            bbox,
            anchor_fn,
            anchor_cache: Mutex::new(HashMap::new()),
        })
    }

    /// Number of object classes (background not counted).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The book's `forward`: anchors, class scores and box offsets for a batch `(B, 3, H, W)`.
    pub fn forward_ssd(&self, x: &Tensor) -> Result<SsdOutput> {
        if x.rank() != 4 || x.shape()[1] != 3 {
            return Err(Error::BadShape {
                op: "TinySsd",
                msg: format!("expected images of shape (B, 3, H, W), got {:?}", x.shape()),
            });
        }
        let (h, w) = (x.shape()[2], x.shape()[3]);
        if h < 64 || w < 64 {
            return Err(Error::BadShape {
                op: "TinySsd",
                msg: format!(
                    "images must be at least 64×64 (six halvings before the global pool), got {h}×{w}"
                ),
            });
        }
        let b = x.shape()[0];
        let mut y = x.clone();
        let mut cls_parts = Vec::with_capacity(5);
        let mut bbox_parts = Vec::with_capacity(5);
        let mut sizes = Vec::with_capacity(5);
        for i in 0..5 {
            y = self.blks[i].forward(&y)?;
            sizes.push((y.shape()[2], y.shape()[3]));
            cls_parts.push(flatten_pred(&self.cls[i].forward(&y)?)?);
            bbox_parts.push(flatten_pred(&self.bbox[i].forward(&y)?)?);
        }
        let anchors = self.anchors_for(&sizes, x.device())?;
        let cls_refs: Vec<&Tensor> = cls_parts.iter().collect();
        let bbox_refs: Vec<&Tensor> = bbox_parts.iter().collect();
        let cls_preds = Tensor::cat(&cls_refs, 1)?.reshape([
            b as isize,
            -1,
            (self.num_classes + 1) as isize,
        ])?;
        let bbox_preds = Tensor::cat(&bbox_refs, 1)?;
        Ok(SsdOutput {
            anchors,
            cls_preds,
            bbox_preds,
        })
    }

    /// The anchors of every scale for these feature-map sizes, on `device` (the input's),
    /// cached per sizes and device.
    fn anchors_for(&self, sizes: &[(usize, usize)], device: Device) -> Result<Tensor> {
        let mut cache = self.anchor_cache.lock().unwrap_or_else(|e| e.into_inner());
        let key = (sizes.to_vec(), device);
        if let Some(a) = cache.get(&key) {
            return Ok(a.clone());
        }
        let parts = sizes
            .iter()
            .zip(SSD_SIZES.iter())
            .map(|(&(h, w), s)| (self.anchor_fn)(h, w, s, &SSD_RATIOS))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&Tensor> = parts.iter().collect();
        let anchors = Tensor::cat(&refs, 1)?.to(device)?;
        cache.insert(key, anchors.clone());
        Ok(anchors)
    }
}

/// The book's `flatten_pred`: `(B, C, H, W)` → channels last → `(B, H·W·C)`.
fn flatten_pred(p: &Tensor) -> Result<Tensor> {
    p.permute(&[0, 2, 3, 1])?.flatten(1, -1)
}

impl Module for TinySsd {
    /// For summaries and benchmarks: the class scores `(B, A·(classes+1))` and the box
    /// offsets `(B, 4A)` concatenated along dim 1. Training uses [`TinySsd::forward_ssd`].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let out = self.forward_ssd(x)?;
        let cls = out.cls_preds.flatten(1, -1)?;
        Tensor::cat(&[&cls, &out.bbox_preds], 1)
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        let mut v: Vec<(String, Arc<dyn Module>)> = Vec::new();
        for i in 0..5 {
            v.push((format!("blk_{i}"), self.blks[i].clone()));
            v.push((format!("cls_{i}"), self.cls[i].clone()));
            v.push((format!("bbox_{i}"), self.bbox[i].clone()));
        }
        v
    }

    fn describe(&self) -> String {
        format!("TinySSD(num_classes={})", self.num_classes)
    }
}

/// The class loss of an SSD variant (13.7 and its exercises).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClsLoss {
    /// Cross entropy over anchors (the book).
    CrossEntropy,
    /// Focal loss `−(1 − p)^γ · log p` of the true class's probability p (exercise 13.7).
    Focal {
        /// The focusing parameter γ (0 gives cross entropy).
        gamma: f32,
    },
}

/// The box loss of an SSD variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BoxLoss {
    /// L1 on masked offsets (the book).
    L1,
    /// The exercise's smooth L1 with scalar σ: `(σd)²/2` where `|d| < 1/σ²`, else
    /// `|d| − 0.5/σ²` (PyTorch's `smooth_l1_loss` with β = 1/σ²).
    SmoothL1 {
        /// σ; larger σ makes the loss closer to L1.
        sigma: f32,
    },
}

/// D2L 13.7 `calc_loss`: per example, the class loss averaged over anchors plus the box
/// loss of the masked offsets averaged over the 4A entries; shape `(B,)`. The book then
/// takes `.mean()` over the batch.
///
/// `cls_preds` is `(B, A, C+1)`, `cls_labels` `(B, A)` int64, `bbox_preds`, `bbox_labels`
/// and `bbox_masks` are `(B, 4A)`.
pub fn ssd_loss(
    cls_preds: &Tensor,
    cls_labels: &Tensor,
    bbox_preds: &Tensor,
    bbox_labels: &Tensor,
    bbox_masks: &Tensor,
    cls_loss: ClsLoss,
    box_loss: BoxLoss,
) -> Result<Tensor> {
    if cls_preds.rank() != 3 || cls_labels.shape() != &cls_preds.shape()[..2] {
        return Err(Error::BadShape {
            op: "ssd_loss",
            msg: format!(
                "expected cls_preds (B, A, C+1) and cls_labels (B, A), got {:?} and {:?}",
                cls_preds.shape(),
                cls_labels.shape()
            ),
        });
    }
    let (b, c) = (cls_preds.shape()[0], cls_preds.shape()[2]);
    let logits = cls_preds.reshape([-1, c as isize])?;
    let labels = cls_labels.reshape([-1])?.to_dtype(DType::I64)?;
    let per_anchor = match cls_loss {
        ClsLoss::CrossEntropy => cross_entropy_with(
            &logits,
            &labels,
            &CrossEntropyOptions {
                reduction: Reduction::None,
                ..Default::default()
            },
        )?,
        ClsLoss::Focal { gamma } => {
            let logp = logits
                .log_softmax(-1)?
                .gather(1, &labels.unsqueeze(1)?)?
                .reshape([-1])?;
            let p = logp.exp()?;
            p.neg()?
                .add_scalar(1.0)?
                .pow_scalar(gamma as f64)?
                .mul(&logp)?
                .neg()?
        }
    };
    let cls = per_anchor.reshape([b as isize, -1])?.mean(&[1], false)?;
    let pred = bbox_preds.mul(bbox_masks)?;
    let target = bbox_labels.mul(bbox_masks)?;
    let boxes = match box_loss {
        BoxLoss::L1 => l1_loss(&pred, &target, Reduction::None)?,
        BoxLoss::SmoothL1 { sigma } => smooth_l1_loss(
            &pred,
            &target,
            1.0 / (sigma as f64 * sigma as f64),
            Reduction::None,
        )?,
    };
    cls.add(&boxes.mean(&[1], false)?)
}

/// D2L 13.7 `cls_eval`: the number of anchors whose arg-max class equals the label.
pub fn cls_eval(cls_preds: &Tensor, cls_labels: &Tensor) -> Result<f64> {
    let pred = cls_preds.argmax(-1, false)?.to_vec::<i64>();
    let labels = cls_labels.to_dtype(DType::I64)?.to_vec::<i64>();
    Ok(pred.iter().zip(&labels).filter(|(a, b)| a == b).count() as f64)
}

/// D2L 13.7 `bbox_eval`: `Σ |(labels − preds) · masks|`.
pub fn bbox_eval(bbox_preds: &Tensor, bbox_labels: &Tensor, bbox_masks: &Tensor) -> Result<f64> {
    let p = bbox_preds.to_dtype(DType::F32)?.to_vec::<f32>();
    let l = bbox_labels.to_vec::<f32>();
    let m = bbox_masks.to_vec::<f32>();
    Ok(p.iter()
        .zip(&l)
        .zip(&m)
        .map(|((p, l), m)| ((l - p) * m).abs() as f64)
        .sum())
}
