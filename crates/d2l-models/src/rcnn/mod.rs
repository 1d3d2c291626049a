//! Faster R-CNN and Mask R-CNN (D2L 13.8), as torchvision builds them, with a small
//! ResNet-18 body so that they train on a CPU.
//!
//! The two-stage detector of the section: a **backbone** turns the image into one
//! feature map; the **region proposal network** ([`heads::RpnHead`]) predicts, at every
//! anchor of that map ([`parts::grid_anchors`]), an objectness logit and box deltas;
//! proposals are the decoded anchors, clipped, with small boxes removed, the top-k by
//! objectness before and after NMS ([`parts::filter_proposals`]). The **RoI head** cuts a
//! 7×7 window out of the feature map for every proposal with RoI align, passes it through
//! two fully connected layers ([`heads::TwoMlpHead`]) and predicts class scores and
//! class-specific box deltas ([`heads::FastRcnnPredictor`]). Mask R-CNN adds a **mask
//! head**: RoI align 14×14, 3×3 convs, a transposed conv to 28×28 and one mask logit map
//! per class ([`heads::mask_heads`], [`heads::MaskRcnnPredictor`]).
//!
//! Training matches anchors to ground truth (IoU ≥ 0.7 positive, < 0.3 negative, and
//! every ground truth's best anchor), samples 256 anchors per image (half positive at
//! most) for the RPN's losses (objectness BCE, smooth-L1 box), then matches proposals
//! (with the ground-truth boxes added) at IoU 0.5, samples 512 (a quarter positive at
//! most) for the head's losses (cross-entropy, smooth-L1 on the positive's own class), and
//! for Mask R-CNN the mask BCE on the positives' own class. Box coding uses weights
//! (1, 1, 1, 1) in the RPN and (10, 10, 5, 5) in the head ([`parts::BoxCoder`]).
//!
//! Parameter names are torchvision's (`backbone.body.layer1.0.conv1.weight`,
//! `rpn.head.conv.0.0.weight`, `roi_heads.box_head.fc6.weight`,
//! `roi_heads.mask_predictor.conv5_mask.weight`, …), so a torchvision state dict of the
//! same configuration loads. The backbone here is one feature map of a ResNet-18 body
//! (cut after `layer1` … `layer4`); `fasterrcnn_resnet50_fpn` has a ResNet-50 body and a
//! feature pyramid (several maps, level-assigned RoI pooling), which this module does not
//! build: its RPN and RoI head weights have the same names and shapes only when the
//! channel counts agree.

pub mod heads;
pub mod parts;

use d2l_nn::norm::BatchNorm2d;
use d2l_nn::pool::MaxPool2d;
use d2l_nn::{Module, Sequential};
use d2l_tensor::{no_grad, Error, Result, Tensor};
use d2l_vision::roi::roi_align;
use heads::{mask_heads, FastRcnnPredictor, MaskRcnnPredictor, RpnHead, TwoMlpHead};
use parts::{
    filter_proposals, grid_anchors, match_boxes, postprocess_detections, sample_pos_neg, Box4,
    Detection, Sampling, BELOW_LOW, BETWEEN, HEAD_CODER, RPN_CODER,
};
use std::sync::Arc;

/// The settings of a Faster / Mask R-CNN (torchvision's defaults where they apply).
#[derive(Debug, Clone, PartialEq)]
pub struct RcnnConfig {
    /// Classes including the background (class 0).
    pub num_classes: usize,
    /// How many ResNet-18 stages the body keeps (1–4): stride 4, 8, 16 or 32 and 64, 128,
    /// 256 or 512 channels.
    pub body_layers: usize,
    /// Anchor sizes in pixels.
    pub anchor_sizes: Vec<f32>,
    /// Anchor aspect ratios (height / width).
    pub aspect_ratios: Vec<f32>,
    /// Hidden units of the two FC layers.
    pub representation: usize,
    /// Mask head conv widths; `None` builds Faster R-CNN (no mask branch).
    pub mask_layers: Option<Vec<usize>>,
    /// Channels of the mask predictor's transposed conv.
    pub mask_dim_reduced: usize,
    /// RPN: proposals kept before NMS (training, testing).
    pub rpn_pre_nms_top_n: (usize, usize),
    /// RPN: proposals kept after NMS (training, testing).
    pub rpn_post_nms_top_n: (usize, usize),
    /// RPN: NMS IoU threshold.
    pub rpn_nms_thresh: f32,
    /// RPN: anchors sampled per image, and the positive fraction.
    pub rpn_batch: (usize, f32),
    /// RoI head: proposals sampled per image, and the positive fraction.
    pub box_batch: (usize, f32),
    /// Detections: least score, NMS IoU, most detections per image.
    pub box_score_thresh: f32,
    /// NMS IoU threshold of the detections (per class).
    pub box_nms_thresh: f32,
    /// Most detections per image.
    pub detections_per_img: usize,
    /// Per-channel mean and std the images are normalised with (images in [0, 1]).
    pub image_mean: [f32; 3],
    /// See `image_mean`.
    pub image_std: [f32; 3],
}

impl RcnnConfig {
    /// A small configuration that trains on a CPU: ResNet-18 cut after `layer2` (stride 8,
    /// 128 channels), anchors 16–128 px with ratios 0.5, 1, 2, representation 256, the
    /// RPN keeping 600/300 proposals in training and 300/100 in testing, 128 anchors and
    /// 64 proposals sampled per image. `mask` adds the mask head (two 3×3 convs of 128).
    pub fn small(num_classes: usize, mask: bool) -> RcnnConfig {
        RcnnConfig {
            num_classes,
            body_layers: 2,
            anchor_sizes: vec![16.0, 32.0, 64.0, 128.0],
            aspect_ratios: vec![0.5, 1.0, 2.0],
            representation: 256,
            mask_layers: mask.then(|| vec![128, 128]),
            mask_dim_reduced: 128,
            rpn_pre_nms_top_n: (600, 300),
            rpn_post_nms_top_n: (300, 100),
            rpn_nms_thresh: 0.7,
            rpn_batch: (128, 0.5),
            box_batch: (64, 0.25),
            box_score_thresh: 0.05,
            box_nms_thresh: 0.5,
            detections_per_img: 100,
            image_mean: [0.485, 0.456, 0.406],
            image_std: [0.229, 0.224, 0.225],
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidArgument { op: "rcnn", msg });
        if self.num_classes < 2 {
            return bad(format!(
                "num_classes counts the background and must be >= 2, got {}",
                self.num_classes
            ));
        }
        if !(1..=4).contains(&self.body_layers) {
            return bad(format!(
                "body_layers must be 1..=4, got {}",
                self.body_layers
            ));
        }
        if self.anchor_sizes.is_empty() || self.aspect_ratios.is_empty() {
            return bad("anchor sizes and aspect ratios must not be empty".into());
        }
        Ok(())
    }

    /// Channels of the body's output.
    pub fn out_channels(&self) -> usize {
        64 << (self.body_layers - 1)
    }
}

/// The ResNet-18 body under torchvision's `IntermediateLayerGetter` names (`conv1`,
/// `bn1`, `layer1`, …), cut after `layer{n}`.
pub struct ResNetBody {
    conv1: Arc<d2l_nn::conv::Conv2d>,
    bn1: Arc<BatchNorm2d>,
    maxpool: Arc<MaxPool2d>,
    layers: Vec<Arc<Sequential>>,
}

impl ResNetBody {
    /// A fresh ResNet-18 body with `n` stages (torchvision's initialisation).
    pub fn new(n: usize) -> Result<ResNetBody> {
        let net = crate::torchvision::resnet18(1)?;
        let all = [net.layer1, net.layer2, net.layer3, net.layer4];
        Ok(ResNetBody {
            conv1: net.conv1,
            bn1: net.bn1,
            maxpool: net.maxpool,
            layers: all.into_iter().take(n).collect(),
        })
    }
}

impl Module for ResNetBody {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = self.bn1.forward(&self.conv1.forward(x)?)?.relu()?;
        y = self.maxpool.forward(&y)?;
        for l in &self.layers {
            y = l.forward(&y)?;
        }
        Ok(y)
    }
    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        let mut v: Vec<(String, Arc<dyn Module>)> = vec![
            ("conv1".into(), self.conv1.clone()),
            ("bn1".into(), self.bn1.clone()),
            ("maxpool".into(), self.maxpool.clone()),
        ];
        for (i, l) in self.layers.iter().enumerate() {
            v.push((format!("layer{}", i + 1), l.clone()));
        }
        v
    }
    fn describe(&self) -> String {
        format!("ResNet18Body(layers={})", self.layers.len())
    }
}

/// A module that only names its children (torchvision's containers `backbone`, `rpn`,
/// `roi_heads`).
struct Named {
    name: &'static str,
    children: Vec<(String, Arc<dyn Module>)>,
}

impl Module for Named {
    fn forward(&self, _x: &Tensor) -> Result<Tensor> {
        Err(Error::InvalidArgument {
            op: "rcnn",
            msg: format!("`{}` is a container; call the model's methods", self.name),
        })
    }
    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        self.children.clone()
    }
    fn describe(&self) -> String {
        self.name.into()
    }
}

/// One image's ground truth: corner boxes in pixels, classes `1..num_classes`, and for
/// Mask R-CNN the instance masks `(K, H, W)` (0/1, any float or `uint8` dtype).
#[derive(Debug, Clone)]
pub struct RcnnTarget {
    /// The objects' boxes.
    pub boxes: Vec<Box4>,
    /// Their classes (1 ..).
    pub labels: Vec<usize>,
    /// Their masks, `(K, H, W)`.
    pub masks: Option<Tensor>,
}

/// The training losses (torchvision's names).
#[derive(Debug, Clone)]
pub struct RcnnLosses {
    /// RPN objectness BCE.
    pub loss_objectness: Tensor,
    /// RPN box smooth-L1.
    pub loss_rpn_box_reg: Tensor,
    /// RoI head cross-entropy.
    pub loss_classifier: Tensor,
    /// RoI head box smooth-L1.
    pub loss_box_reg: Tensor,
    /// Mask BCE (Mask R-CNN only).
    pub loss_mask: Option<Tensor>,
}

impl RcnnLosses {
    /// The sum of the losses (what training minimises).
    pub fn total(&self) -> Result<Tensor> {
        let mut t = self
            .loss_objectness
            .add(&self.loss_rpn_box_reg)?
            .add(&self.loss_classifier)?
            .add(&self.loss_box_reg)?;
        if let Some(m) = &self.loss_mask {
            t = t.add(m)?;
        }
        Ok(t)
    }
}

/// One image's detections, and for Mask R-CNN each detection's 28×28 mask probabilities
/// (`(K, 28, 28)`, for its own class).
#[derive(Debug, Clone)]
pub struct RcnnOutput {
    /// Detections by descending score.
    pub detections: Vec<Detection>,
    /// Mask probabilities per detection.
    pub masks: Option<Tensor>,
}

/// Faster R-CNN, or Mask R-CNN when the configuration has mask layers.
pub struct MaskRcnn {
    config: RcnnConfig,
    body: Arc<ResNetBody>,
    rpn_head: Arc<RpnHead>,
    box_head: Arc<TwoMlpHead>,
    box_predictor: Arc<FastRcnnPredictor>,
    mask_head: Option<Arc<Sequential>>,
    mask_predictor: Option<Arc<MaskRcnnPredictor>>,
    training: std::sync::atomic::AtomicBool,
}

/// Faster R-CNN is Mask R-CNN without the mask branch.
pub type FasterRcnn = MaskRcnn;

impl MaskRcnn {
    /// A fresh model.
    pub fn new(config: RcnnConfig) -> Result<MaskRcnn> {
        config.check()?;
        let c = config.out_channels();
        let a = config.anchor_sizes.len() * config.aspect_ratios.len();
        let (mask_head, mask_predictor) = match &config.mask_layers {
            Some(layers) => {
                let last = *layers.last().unwrap_or(&c);
                (
                    Some(Arc::new(mask_heads(c, layers)?)),
                    Some(Arc::new(MaskRcnnPredictor::new(
                        last,
                        config.mask_dim_reduced,
                        config.num_classes,
                    )?)),
                )
            }
            None => (None, None),
        };
        Ok(MaskRcnn {
            body: Arc::new(ResNetBody::new(config.body_layers)?),
            rpn_head: Arc::new(RpnHead::new(c, a)?),
            box_head: Arc::new(TwoMlpHead::new(c * 49, config.representation)?),
            box_predictor: Arc::new(FastRcnnPredictor::new(
                config.representation,
                config.num_classes,
            )?),
            mask_head,
            mask_predictor,
            config,
            training: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RcnnConfig {
        &self.config
    }

    fn is_training(&self) -> bool {
        self.training.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The backbone's feature map `(N, C, H/s, W/s)` of images `(N, 3, H, W)` with values
    /// in [0, 1], normalised with the configured mean and std first (torchvision's
    /// `GeneralizedRCNNTransform`, without its resizing).
    pub fn features(&self, images: &Tensor) -> Result<Tensor> {
        let m = Tensor::from_vec(self.config.image_mean.to_vec(), &[1, 3, 1, 1])?;
        let s = Tensor::from_vec(self.config.image_std.to_vec(), &[1, 3, 1, 1])?;
        let x = images
            .sub(&m.to(images.device())?)?
            .div(&s.to(images.device())?)?;
        self.body.forward(&x)
    }

    fn scale(feature: &Tensor, image: (usize, usize)) -> f32 {
        let approx = feature.shape()[2] as f32 / image.0 as f32;
        2f32.powf(approx.log2().round())
    }

    /// The anchors of a feature map for images of `image` size.
    pub fn anchors(&self, feature: &Tensor, image: (usize, usize)) -> Vec<Box4> {
        let s = feature.shape();
        grid_anchors(
            &self.config.anchor_sizes,
            &self.config.aspect_ratios,
            (s[2], s[3]),
            image,
        )
    }

    /// The RPN on a feature map: per image, (proposals, scores), and the raw
    /// (objectness `(N, T)`, deltas `(N, T, 4)`) with the anchors.
    #[allow(clippy::type_complexity)]
    pub fn rpn(
        &self,
        feature: &Tensor,
        image: (usize, usize),
    ) -> Result<(Vec<(Vec<Box4>, Vec<f32>)>, Tensor, Tensor, Vec<Box4>)> {
        let (obj, deltas) = self.rpn_head.predict(feature)?;
        let anchors = self.anchors(feature, image);
        let n = feature.shape()[0];
        let o = obj.detach().to_vec::<f32>();
        let d = deltas.detach().to_vec::<f32>();
        let t = anchors.len();
        let (pre, post) = if self.is_training() {
            (
                self.config.rpn_pre_nms_top_n.0,
                self.config.rpn_post_nms_top_n.0,
            )
        } else {
            (
                self.config.rpn_pre_nms_top_n.1,
                self.config.rpn_post_nms_top_n.1,
            )
        };
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let boxes: Vec<Box4> = (0..t)
                .map(|k| RPN_CODER.decode(&d[(i * t + k) * 4..(i * t + k + 1) * 4], &anchors[k]))
                .collect();
            out.push(filter_proposals(
                &boxes,
                &o[i * t..(i + 1) * t],
                image,
                pre,
                post,
                self.config.rpn_nms_thresh,
                0.0,
                1e-3,
            ));
        }
        Ok((out, obj, deltas, anchors))
    }

    fn rois(proposals: &[Vec<Box4>]) -> Result<Tensor> {
        let mut v = Vec::new();
        for (i, p) in proposals.iter().enumerate() {
            for b in p {
                v.extend_from_slice(&[i as f32, b[0], b[1], b[2], b[3]]);
            }
        }
        let k = v.len() / 5;
        Tensor::from_vec(v, &[k, 5])
    }

    /// The RoI head on per-image proposals: (class logits `(K, C)`, box regression
    /// `(K, 4C)`), rows in image order.
    pub fn box_head(
        &self,
        feature: &Tensor,
        proposals: &[Vec<Box4>],
        image: (usize, usize),
    ) -> Result<(Tensor, Tensor)> {
        let pooled = Self::pool(feature, proposals, (7, 7), image)?;
        self.box_predictor.predict(&self.box_head.forward(&pooled)?)
    }

    /// RoIAlign of per-image `boxes` on `feature` to `size` bins (torchvision's two
    /// samples per bin, unaligned), as both heads read their regions.
    fn pool(
        feature: &Tensor,
        boxes: &[Vec<Box4>],
        size: (usize, usize),
        image: (usize, usize),
    ) -> Result<Tensor> {
        let rois = Self::rois(boxes)?;
        roi_align(feature, &rois, size, Self::scale(feature, image), 2, false)
    }

    /// The mask head's logits `(K, C, 28, 28)` for per-image boxes (Mask R-CNN only).
    pub fn mask_logits(
        &self,
        feature: &Tensor,
        boxes: &[Vec<Box4>],
        image: (usize, usize),
    ) -> Result<Option<Tensor>> {
        let (Some(h), Some(p)) = (&self.mask_head, &self.mask_predictor) else {
            return Ok(None);
        };
        let pooled = Self::pool(feature, boxes, (14, 14), image)?;
        Ok(Some(p.forward(&h.forward(&pooled)?)?))
    }

    /// The training losses for images `(N, 3, H, W)` in [0, 1] and their targets, with
    /// positives and negatives picked by `sampling` (torchvision's random choice, or a
    /// fixed one).
    pub fn losses(
        &self,
        images: &Tensor,
        targets: &[RcnnTarget],
        sampling: &mut Sampling<'_>,
    ) -> Result<RcnnLosses> {
        let s = images.shape().to_vec();
        let image = (s[2], s[3]);
        if targets.len() != s[0] {
            return Err(Error::InvalidArgument {
                op: "rcnn",
                msg: format!("{} images but {} targets", s[0], targets.len()),
            });
        }
        let feature = self.features(images)?;
        let (props, obj, deltas, anchors) = self.rpn(&feature, image)?;
        let t = anchors.len();
        // RPN targets.
        let mut pos = Vec::new();
        let mut neg = Vec::new();
        let mut reg = vec![0f32; s[0] * t * 4];
        for (i, tg) in targets.iter().enumerate() {
            let m = match_boxes(&tg.boxes, &anchors, 0.7, 0.3, true);
            let labels: Vec<i64> = m
                .iter()
                .map(|&v| {
                    if v >= 0 {
                        1
                    } else if v == BELOW_LOW {
                        0
                    } else {
                        -1
                    }
                })
                .collect();
            let (p, n) = sample_pos_neg(
                &labels,
                self.config.rpn_batch.0,
                self.config.rpn_batch.1,
                sampling,
            );
            for &k in &p {
                let e = RPN_CODER.encode(&tg.boxes[m[k] as usize], &anchors[k]);
                reg[(i * t + k) * 4..(i * t + k + 1) * 4].copy_from_slice(&e);
            }
            pos.extend(p.iter().map(|&k| i * t + k));
            neg.extend(n.iter().map(|&k| i * t + k));
        }
        let reg = Tensor::from_vec(reg, &[s[0] * t, 4])?;
        let (loss_objectness, loss_rpn_box_reg) = heads::rpn_loss(
            &obj.reshape([s[0] * t])?,
            &deltas.reshape([s[0] * t, 4])?,
            &pos,
            &neg,
            &reg,
        )?;
        // RoI head targets.
        let props: Vec<Vec<Box4>> = props.into_iter().map(|(b, _)| b).collect();
        let sel = select_training_samples(&props, targets, self.config.box_batch, sampling);
        let boxes: Vec<Vec<Box4>> = sel.iter().map(|s| s.proposals.clone()).collect();
        let (logits, regression) = self.box_head(&feature, &boxes, image)?;
        let labels: Vec<usize> = sel.iter().flat_map(|s| s.labels.clone()).collect();
        let tg: Vec<f32> = sel
            .iter()
            .flat_map(|s| s.targets.iter().flatten().copied())
            .collect();
        let tg = Tensor::from_vec(tg, &[labels.len(), 4])?;
        let (loss_classifier, loss_box_reg) =
            heads::fastrcnn_loss(&logits, &regression, &labels, &tg)?;
        let loss_mask = if self.mask_head.is_some() {
            let mut pos_boxes = Vec::new();
            let mut pos_labels = Vec::new();
            let mut mask_targets = Vec::new();
            for (i, s) in sel.iter().enumerate() {
                let keep: Vec<usize> = (0..s.labels.len()).filter(|&k| s.labels[k] > 0).collect();
                let b: Vec<Box4> = keep.iter().map(|&k| s.proposals[k]).collect();
                let m: Vec<usize> = keep.iter().map(|&k| s.matched[k]).collect();
                pos_labels.extend(keep.iter().map(|&k| s.labels[k]));
                let masks = targets[i]
                    .masks
                    .as_ref()
                    .ok_or_else(|| Error::InvalidArgument {
                        op: "rcnn",
                        msg: format!("Mask R-CNN needs masks in every target; target {i} has none"),
                    })?;
                if !b.is_empty() {
                    mask_targets.push(project_masks(masks, &b, &m, 28)?);
                }
                pos_boxes.push(b);
            }
            let logits = self
                .mask_logits(&feature, &pos_boxes, image)?
                .expect("mask head present");
            let tgt = if mask_targets.is_empty() {
                Tensor::zeros(&[0, 28, 28])
            } else {
                Tensor::cat(&mask_targets.iter().collect::<Vec<_>>(), 0)?
            };
            Some(heads::maskrcnn_loss(&logits, &pos_labels, &tgt)?)
        } else {
            None
        };
        Ok(RcnnLosses {
            loss_objectness,
            loss_rpn_box_reg,
            loss_classifier,
            loss_box_reg,
            loss_mask,
        })
    }

    /// Detections (and mask probabilities) for images `(N, 3, H, W)` in [0, 1], as in
    /// torchvision's eval mode (call [`Module::eval`] first for the test-time top-k).
    pub fn detect(&self, images: &Tensor) -> Result<Vec<RcnnOutput>> {
        no_grad(|| {
            let s = images.shape().to_vec();
            let image = (s[2], s[3]);
            let feature = self.features(images)?;
            let (props, _, _, _) = self.rpn(&feature, image)?;
            let props: Vec<Vec<Box4>> = props.into_iter().map(|(b, _)| b).collect();
            let (logits, regression) = self.box_head(&feature, &props, image)?;
            let c = self.config.num_classes;
            let lg = logits.to_vec::<f32>();
            let rg = regression.to_vec::<f32>();
            let mut out = Vec::new();
            let mut row = 0;
            for p in &props {
                let k = p.len();
                let dets = postprocess_detections(
                    &lg[row * c..(row + k) * c],
                    &rg[row * 4 * c..(row + k) * 4 * c],
                    p,
                    image,
                    self.config.box_score_thresh,
                    self.config.box_nms_thresh,
                    self.config.detections_per_img,
                );
                row += k;
                out.push(RcnnOutput {
                    detections: dets,
                    masks: None,
                });
            }
            if self.mask_head.is_some() {
                let boxes: Vec<Vec<Box4>> = out
                    .iter()
                    .map(|o| o.detections.iter().map(|d| d.bbox).collect())
                    .collect();
                let logits = self
                    .mask_logits(&feature, &boxes, image)?
                    .expect("mask head");
                let probs = logits.sigmoid()?;
                let mut first = 0;
                for o in out.iter_mut() {
                    let k = o.detections.len();
                    let rows: Vec<i64> = o
                        .detections
                        .iter()
                        .enumerate()
                        .map(|(j, d)| ((first + j) * c + d.label) as i64)
                        .collect();
                    let idx = Tensor::from_vec(rows, &[k])?;
                    o.masks = Some(
                        probs
                            .reshape([probs.shape()[0] * c, 28, 28])?
                            .index_select(0, &idx)?,
                    );
                    first += k;
                }
            }
            Ok(out)
        })
    }
}

/// The sampled proposals of one image for the RoI head.
#[derive(Debug, Clone)]
pub struct RoiSamples {
    /// The sampled proposals (positives first, then negatives, each in index order).
    pub proposals: Vec<Box4>,
    /// Their classes (0 for background).
    pub labels: Vec<usize>,
    /// The ground truth each was matched to (0 for background).
    pub matched: Vec<usize>,
    /// Their regression targets (head coder; zeros without ground truth).
    pub targets: Vec<[f32; 4]>,
}

/// torchvision's `RoIHeads.select_training_samples`: the ground-truth boxes are appended
/// to each image's proposals, every proposal is matched at IoU 0.5 (no low-quality
/// matches), labelled with its ground truth's class (0 below 0.5), `batch.0` are sampled
/// (at most `batch.1` of them positive), and the matched boxes are encoded with the
/// head's coder (weights 10, 10, 5, 5).
pub fn select_training_samples(
    proposals: &[Vec<Box4>],
    targets: &[RcnnTarget],
    batch: (usize, f32),
    sampling: &mut Sampling<'_>,
) -> Vec<RoiSamples> {
    proposals
        .iter()
        .zip(targets)
        .map(|(p, t)| {
            let mut all = p.clone();
            all.extend_from_slice(&t.boxes);
            let m = match_boxes(&t.boxes, &all, 0.5, 0.5, false);
            let labels: Vec<i64> = m
                .iter()
                .map(|&v| match v {
                    BELOW_LOW => 0,
                    BETWEEN => -1,
                    k => t.labels[k as usize] as i64,
                })
                .collect();
            let (pos, neg) = sample_pos_neg(&labels, batch.0, batch.1, sampling);
            let mut idx: Vec<usize> = pos.iter().chain(&neg).copied().collect();
            idx.sort_unstable();
            let matched: Vec<usize> = idx.iter().map(|&k| m[k].max(0) as usize).collect();
            RoiSamples {
                proposals: idx.iter().map(|&k| all[k]).collect(),
                labels: idx.iter().map(|&k| labels[k].max(0) as usize).collect(),
                targets: idx
                    .iter()
                    .zip(&matched)
                    .map(|(&k, &g)| {
                        if t.boxes.is_empty() {
                            [0.0; 4]
                        } else {
                            HEAD_CODER.encode(&t.boxes[g], &all[k])
                        }
                    })
                    .collect(),
                matched,
            }
        })
        .collect()
}

/// torchvision's `project_masks_on_boxes`: ground-truth masks `(G, H, W)` cut out along
/// `boxes` (matched to `matched`) by RoI align to `(P, m, m)` (adaptive sampling, not
/// aligned), the mask targets.
pub fn project_masks(
    masks: &Tensor,
    boxes: &[Box4],
    matched: &[usize],
    m: usize,
) -> Result<Tensor> {
    let s = masks.shape().to_vec();
    let g = masks
        .to_dtype(d2l_tensor::DType::F32)?
        .reshape([s[0], 1, s[1], s[2]])?;
    let mut v = Vec::with_capacity(boxes.len() * 5);
    for (b, &k) in boxes.iter().zip(matched) {
        v.extend_from_slice(&[k as f32, b[0], b[1], b[2], b[3]]);
    }
    let rois = Tensor::from_vec(v, &[boxes.len(), 5])?;
    roi_align(&g, &rois, (m, m), 1.0, -1, false)?.reshape([boxes.len(), m, m])
}

/// torchvision's `paste_masks_in_image` for one mask: `mask` `m×m` probabilities of the
/// detection `bbox`, padded by one cell, resized bilinearly onto the (slightly enlarged)
/// box and placed into an `h×w` image of zeros.
pub fn paste_mask(mask: &[f32], m: usize, bbox: &Box4, h: usize, w: usize) -> Vec<f32> {
    let mp = m + 2;
    let mut padded = vec![0f32; mp * mp];
    for y in 0..m {
        padded[(y + 1) * mp + 1..(y + 1) * mp + 1 + m].copy_from_slice(&mask[y * m..(y + 1) * m]);
    }
    let scale = mp as f32 / m as f32;
    let wh = (bbox[2] - bbox[0]) * 0.5 * scale;
    let hh = (bbox[3] - bbox[1]) * 0.5 * scale;
    let xc = (bbox[2] + bbox[0]) * 0.5;
    let yc = (bbox[3] + bbox[1]) * 0.5;
    let b = [
        (xc - wh) as i64,
        (yc - hh) as i64,
        (xc + wh) as i64,
        (yc + hh) as i64,
    ];
    let bw = (b[2] - b[0] + 1).max(1) as usize;
    let bh = (b[3] - b[1] + 1).max(1) as usize;
    let resized = resize_bilinear(&padded, mp, mp, bh, bw);
    let mut out = vec![0f32; h * w];
    let x0 = b[0].max(0);
    let x1 = (b[2] + 1).min(w as i64);
    let y0 = b[1].max(0);
    let y1 = (b[3] + 1).min(h as i64);
    for y in y0..y1 {
        for x in x0..x1 {
            let (ry, rx) = ((y - b[1]) as usize, (x - b[0]) as usize);
            out[y as usize * w + x as usize] = resized[ry * bw + rx];
        }
    }
    out
}

/// PyTorch's `interpolate(mode="bilinear", align_corners=False)` of one channel.
fn resize_bilinear(src: &[f32], ih: usize, iw: usize, oh: usize, ow: usize) -> Vec<f32> {
    let axis = |o: usize, n_in: usize, n_out: usize| {
        let scale = n_in as f32 / n_out as f32;
        let s = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (s as usize).min(n_in - 1);
        let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
        let l1 = s - i0 as f32;
        (i0, i1, 1.0 - l1, l1)
    };
    let mut out = vec![0f32; oh * ow];
    for y in 0..oh {
        let (y0, y1, wy0, wy1) = axis(y, ih, oh);
        for x in 0..ow {
            let (x0, x1, wx0, wx1) = axis(x, iw, ow);
            out[y * ow + x] = wy0 * (wx0 * src[y0 * iw + x0] + wx1 * src[y0 * iw + x1])
                + wy1 * (wx0 * src[y1 * iw + x0] + wx1 * src[y1 * iw + x1]);
        }
    }
    out
}

impl Module for MaskRcnn {
    /// The backbone's feature map (the model's other outputs come from
    /// [`MaskRcnn::losses`] and [`MaskRcnn::detect`]).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.features(x)
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        let backbone = Named {
            name: "BackboneWithBody",
            children: vec![("body".into(), self.body.clone())],
        };
        let rpn = Named {
            name: "RegionProposalNetwork",
            children: vec![("head".into(), self.rpn_head.clone())],
        };
        let mut roi: Vec<(String, Arc<dyn Module>)> = vec![
            ("box_head".into(), self.box_head.clone()),
            ("box_predictor".into(), self.box_predictor.clone()),
        ];
        if let (Some(h), Some(p)) = (&self.mask_head, &self.mask_predictor) {
            roi.push(("mask_head".into(), h.clone()));
            roi.push(("mask_predictor".into(), p.clone()));
        }
        vec![
            ("backbone".into(), Arc::new(backbone)),
            ("rpn".into(), Arc::new(rpn)),
            (
                "roi_heads".into(),
                Arc::new(Named {
                    name: "RoIHeads",
                    children: roi,
                }),
            ),
        ]
    }

    fn set_training_local(&self, training: bool) {
        self.training
            .store(training, std::sync::atomic::Ordering::Relaxed);
    }

    fn describe(&self) -> String {
        if self.mask_head.is_some() {
            "MaskRCNN".into()
        } else {
            "FasterRCNN".into()
        }
    }
}
