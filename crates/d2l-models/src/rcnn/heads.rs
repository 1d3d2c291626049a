//! The learned heads of Faster R-CNN and Mask R-CNN with torchvision's parameter names,
//! and the losses. Every layer here is an existing differentiable op (convolutions,
//! linear layers, ReLU, transposed convolution, RoI align, index selection and the
//! losses of `d2l-nn`), each with its own gradient check; `tests/rcnn.rs` checks the
//! gradient of the composed losses too.

use d2l_nn::conv::{Conv2d, ConvTranspose2d};
use d2l_nn::init::{self, FanMode};
use d2l_nn::layers::{Linear, ReLU};
use d2l_nn::loss::{binary_cross_entropy_with_logits, cross_entropy, smooth_l1_loss, Reduction};
use d2l_nn::{Module, Sequential};
use d2l_tensor::{Result, Tensor};
use std::sync::Arc;

fn conv(i: usize, o: usize, k: usize, pad: usize) -> Result<Conv2d> {
    Conv2d::builder(i, o, k).padding(pad).build()
}

/// torchvision's `RPNHead`: a 3×3 conv with ReLU (`conv.0.0`), then 1×1 convs for the
/// objectness logit (`cls_logits`, A channels) and the box deltas (`bbox_pred`, 4A)
/// of the A anchors at every pixel. Weights are normal(0, 0.01), biases 0, as
/// torchvision initialises them.
pub struct RpnHead {
    /// `Sequential(Sequential(Conv2d 3×3, ReLU))`, torchvision's `Conv2dNormActivation`.
    pub conv: Arc<Sequential>,
    /// Objectness, `Conv2d(C, A, 1)`.
    pub cls_logits: Arc<Conv2d>,
    /// Box deltas, `Conv2d(C, 4A, 1)`.
    pub bbox_pred: Arc<Conv2d>,
}

impl RpnHead {
    /// A head for `channels` input channels and `anchors` anchors per pixel.
    pub fn new(channels: usize, anchors: usize) -> Result<RpnHead> {
        let c = conv(channels, channels, 3, 1)?;
        let cls = conv(channels, anchors, 1, 0)?;
        let bbox = conv(channels, 4 * anchors, 1, 0)?;
        for l in [&c, &cls, &bbox] {
            init::normal_(&l.weight, 0.0, 0.01)?;
            if let Some(b) = &l.bias {
                init::zeros_(b)?;
            }
        }
        let inner = Sequential::new().add(c).add(ReLU);
        Ok(RpnHead {
            conv: Arc::new(Sequential::new().add(inner)),
            cls_logits: Arc::new(cls),
            bbox_pred: Arc::new(bbox),
        })
    }

    /// The objectness logits `(N, H·W·A)` and deltas `(N, H·W·A, 4)` of a feature map
    /// `(N, C, H, W)`, location-major and anchor-minor as the anchors
    /// (torchvision's `concat_box_prediction_layers`).
    pub fn predict(&self, feature: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = self.conv.forward(feature)?;
        let o = self.cls_logits.forward(&t)?;
        let d = self.bbox_pred.forward(&t)?;
        let (n, a, h, w) = (o.shape()[0], o.shape()[1], o.shape()[2], o.shape()[3]);
        let o = o.permute(&[0, 2, 3, 1])?.reshape([n, h * w * a])?;
        let d = d
            .reshape([n, a, 4, h, w])?
            .permute(&[0, 3, 4, 1, 2])?
            .reshape([n, h * w * a, 4])?;
        Ok((o, d))
    }
}

impl Module for RpnHead {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.predict(x).map(|(o, _)| o)
    }
    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![
            ("conv".into(), self.conv.clone()),
            ("cls_logits".into(), self.cls_logits.clone()),
            ("bbox_pred".into(), self.bbox_pred.clone()),
        ]
    }
    fn describe(&self) -> String {
        "RPNHead".into()
    }
}

/// torchvision's `TwoMLPHead`: flatten, `fc6` + ReLU, `fc7` + ReLU.
pub struct TwoMlpHead {
    /// `Linear(C·7·7, representation)`.
    pub fc6: Arc<Linear>,
    /// `Linear(representation, representation)`.
    pub fc7: Arc<Linear>,
}

impl TwoMlpHead {
    /// A head for `in_features` pooled features and `representation` hidden units.
    pub fn new(in_features: usize, representation: usize) -> Result<TwoMlpHead> {
        Ok(TwoMlpHead {
            fc6: Arc::new(Linear::new(in_features, representation)?),
            fc7: Arc::new(Linear::new(representation, representation)?),
        })
    }
}

impl Module for TwoMlpHead {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.flatten(1, -1)?;
        let x = self.fc6.forward(&x)?.relu()?;
        self.fc7.forward(&x)?.relu()
    }
    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![
            ("fc6".into(), self.fc6.clone()),
            ("fc7".into(), self.fc7.clone()),
        ]
    }
    fn describe(&self) -> String {
        "TwoMLPHead".into()
    }
}

/// torchvision's `FastRCNNPredictor`: class scores `cls_score` (C, background included)
/// and class-specific box deltas `bbox_pred` (4C).
pub struct FastRcnnPredictor {
    /// `Linear(representation, C)`.
    pub cls_score: Arc<Linear>,
    /// `Linear(representation, 4C)`.
    pub bbox_pred: Arc<Linear>,
}

impl FastRcnnPredictor {
    /// A predictor for `num_classes` classes (background included).
    pub fn new(representation: usize, num_classes: usize) -> Result<FastRcnnPredictor> {
        Ok(FastRcnnPredictor {
            cls_score: Arc::new(Linear::new(representation, num_classes)?),
            bbox_pred: Arc::new(Linear::new(representation, 4 * num_classes)?),
        })
    }

    /// (class logits `(K, C)`, box regression `(K, 4C)`).
    pub fn predict(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((self.cls_score.forward(x)?, self.bbox_pred.forward(x)?))
    }
}

impl Module for FastRcnnPredictor {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.cls_score.forward(x)
    }
    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![
            ("cls_score".into(), self.cls_score.clone()),
            ("bbox_pred".into(), self.bbox_pred.clone()),
        ]
    }
    fn describe(&self) -> String {
        "FastRCNNPredictor".into()
    }
}

/// torchvision's `MaskRCNNHeads`: 3×3 convs with ReLU (`0.0`, `1.0`, …), Kaiming-normal
/// (fan out) weights and zero biases.
pub fn mask_heads(in_channels: usize, layers: &[usize]) -> Result<Sequential> {
    let mut s = Sequential::new();
    let mut c = in_channels;
    for &l in layers {
        let cv = conv(c, l, 3, 1)?;
        init::kaiming_normal_(&cv.weight, 0.0, FanMode::FanOut, "relu")?;
        if let Some(b) = &cv.bias {
            init::zeros_(b)?;
        }
        s.push(Sequential::new().add(cv).add(ReLU));
        c = l;
    }
    Ok(s)
}

/// torchvision's `MaskRCNNPredictor`: a 2×2 stride-2 transposed conv (`conv5_mask`) with
/// ReLU doubles the 14×14 features to 28×28, and a 1×1 conv (`mask_fcn_logits`) gives
/// one mask logit map per class.
pub struct MaskRcnnPredictor {
    /// `ConvTranspose2d(C, dim_reduced, 2, stride 2)`.
    pub conv5_mask: Arc<ConvTranspose2d>,
    /// `Conv2d(dim_reduced, num_classes, 1)`.
    pub mask_fcn_logits: Arc<Conv2d>,
}

impl MaskRcnnPredictor {
    /// A predictor from `in_channels` to `num_classes` mask logits.
    pub fn new(in_channels: usize, dim_reduced: usize, num_classes: usize) -> Result<Self> {
        let up = ConvTranspose2d::builder(in_channels, dim_reduced, 2)
            .stride(2)
            .build()?;
        let lg = conv(dim_reduced, num_classes, 1, 0)?;
        init::kaiming_normal_(&up.weight, 0.0, FanMode::FanOut, "relu")?;
        init::kaiming_normal_(&lg.weight, 0.0, FanMode::FanOut, "relu")?;
        for b in [&up.bias, &lg.bias].into_iter().flatten() {
            init::zeros_(b)?;
        }
        Ok(MaskRcnnPredictor {
            conv5_mask: Arc::new(up),
            mask_fcn_logits: Arc::new(lg),
        })
    }
}

impl Module for MaskRcnnPredictor {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.conv5_mask.forward(x)?.relu()?;
        self.mask_fcn_logits.forward(&x)
    }
    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![
            ("conv5_mask".into(), self.conv5_mask.clone()),
            ("mask_fcn_logits".into(), self.mask_fcn_logits.clone()),
        ]
    }
    fn describe(&self) -> String {
        "MaskRCNNPredictor".into()
    }
}

fn index(v: &[usize]) -> Result<Tensor> {
    Tensor::from_vec(v.iter().map(|&i| i as i64).collect::<Vec<_>>(), &[v.len()])
}

/// The RPN's losses (torchvision's `RegionProposalNetwork.compute_loss`) over the sampled
/// anchors of the batch, flattened: `objectness` `(T,)` logits, `deltas` `(T, 4)`,
/// `labels` (1 / 0 for the sampled), `targets` `(T, 4)` encoded with the RPN coder.
/// Returns (objectness BCE averaged over the sampled anchors, smooth-L1 (β = 1/9) of the
/// positives' deltas summed and divided by the number sampled).
pub fn rpn_loss(
    objectness: &Tensor,
    deltas: &Tensor,
    positives: &[usize],
    negatives: &[usize],
    targets: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let mut sampled: Vec<usize> = positives.to_vec();
    sampled.extend_from_slice(negatives);
    let n = sampled.len().max(1) as f64;
    let pos = index(positives)?;
    let box_loss = smooth_l1_loss(
        &deltas.index_select(0, &pos)?,
        &targets.index_select(0, &pos)?,
        1.0 / 9.0,
        Reduction::Sum,
    )?
    .div_scalar(n)?;
    let mut lab = vec![1f32; positives.len()];
    lab.extend(std::iter::repeat_n(0f32, negatives.len()));
    let lab = Tensor::from_vec(lab, &[sampled.len()])?
        .to_dtype(objectness.dtype())?
        .to(objectness.device())?;
    let obj = binary_cross_entropy_with_logits(
        &objectness.index_select(0, &index(&sampled)?)?,
        &lab,
        None,
        Reduction::Mean,
    )?;
    Ok((obj, box_loss))
}

/// torchvision's `fastrcnn_loss`: cross-entropy of `class_logits` `(K, C)` against
/// `labels` (0 = background), and smooth-L1 (β = 1/9) between the deltas of each
/// positive's own class in `box_regression` `(K, 4C)` and `targets` `(K, 4)`, summed and
/// divided by K.
pub fn fastrcnn_loss(
    class_logits: &Tensor,
    box_regression: &Tensor,
    labels: &[usize],
    targets: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let k = labels.len();
    let c = class_logits.shape()[1];
    let y = Tensor::from_vec(labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), &[k])?;
    let cls = cross_entropy(class_logits, &y)?;
    let pos: Vec<usize> = (0..k).filter(|&i| labels[i] > 0).collect();
    let rows: Vec<usize> = pos.iter().map(|&i| i * c + labels[i]).collect();
    let pred = box_regression
        .reshape([k * c, 4])?
        .index_select(0, &index(&rows)?)?;
    let tgt = targets.index_select(0, &index(&pos)?)?;
    let bl = smooth_l1_loss(&pred, &tgt, 1.0 / 9.0, Reduction::Sum)?.div_scalar(k.max(1) as f64)?;
    Ok((cls, bl))
}

/// torchvision's `maskrcnn_loss`: binary cross-entropy (mean) between each positive's
/// mask logits of its own class, from `mask_logits` `(P, C, M, M)`, and its target
/// `(P, M, M)` (the ground-truth mask cut out by RoI align, [`super::project_masks`]).
pub fn maskrcnn_loss(mask_logits: &Tensor, labels: &[usize], targets: &Tensor) -> Result<Tensor> {
    let s = mask_logits.shape().to_vec();
    let (p, c, m) = (s[0], s[1], s[2]);
    if p == 0 {
        return mask_logits.sum_all()?.mul_scalar(0.0);
    }
    let rows: Vec<usize> = (0..p).map(|i| i * c + labels[i]).collect();
    let l = mask_logits
        .reshape([p * c, m, m])?
        .index_select(0, &index(&rows)?)?;
    binary_cross_entropy_with_logits(&l, targets, None, Reduction::Mean)
}
