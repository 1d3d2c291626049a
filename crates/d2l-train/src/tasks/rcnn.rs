//! Faster R-CNN and Mask R-CNN (D2L 13.8) through the one training loop: per mini-batch
//! the model's training losses (RPN objectness and box, RoI head classification and box,
//! and Mask R-CNN's mask loss, [`MaskRcnn::losses`]) with torchvision's random sampling of
//! anchors and proposals, summed; an epoch reports each loss and the validation loss.
//! [`evaluate_map`] measures COCO-style mAP of boxes (and masks) on a loader, and
//! [`evaluate_ssd_map`] the same for TinySSD, so the one- and two-stage detectors compare
//! on one held-out set.
//!
//! Batches are those of the detection data sets: `x` `(B, 3, H, W)` with values 0–255 and
//! `y` `(B, M, 5)` rows `[class, x1, y1, x2, y2]` relative to the image side (class −1
//! pads), or `(B, M, 5 + H·W)` with each object's mask after its box
//! (`d2l_vision::generated::detection::InstanceSegDataset`). Classes shift by one (0 is
//! the background of the R-CNN heads).

use super::{ratio, Batch, CurveSpec, Measured, Stat, Step, TaskInfo, TrainTask};
use crate::metrics::data_error;
use crate::run_dir::RunDir;
use crate::trainer::{TrainConfig, Trainer};
use d2l_data::loader::DataLoader;
use d2l_models::rcnn::parts::{Box4, Sampling};
use d2l_models::rcnn::{paste_mask, MaskRcnn, RcnnTarget};
use d2l_models::ssd::TinySsd;
use d2l_nn::optim::Sgd;
use d2l_nn::Module;
use d2l_tensor::{no_grad, DType, Device, Error, Generator, Result, Tensor};
use d2l_vision::coco_eval::{evaluate, CocoMetrics, EvalDetection, EvalTruth, IouKind};
use serde::Serialize;
use std::cell::RefCell;

/// The targets of a batch's `y` for images of `(h, w)` pixels.
pub fn batch_targets(y: &Tensor, h: usize, w: usize) -> Result<Vec<RcnnTarget>> {
    let s = y.shape().to_vec();
    if s.len() != 3 || s[2] < 5 {
        return Err(Error::InvalidArgument {
            op: "rcnn",
            msg: format!("detection labels must be (B, M, 5) or (B, M, 5 + H·W), got {s:?}"),
        });
    }
    let has_masks = s[2] > 5;
    if has_masks && s[2] != 5 + h * w {
        return Err(Error::InvalidArgument {
            op: "rcnn",
            msg: format!("label rows of {} values do not hold {h}×{w} masks", s[2]),
        });
    }
    let v = y.to(Device::Cpu)?.to_dtype(DType::F32)?.to_vec::<f32>();
    let mut out = Vec::with_capacity(s[0]);
    for b in 0..s[0] {
        let mut t = RcnnTarget {
            boxes: Vec::new(),
            labels: Vec::new(),
            masks: None,
        };
        let mut masks = Vec::new();
        for m in 0..s[1] {
            let r = &v[(b * s[1] + m) * s[2]..(b * s[1] + m + 1) * s[2]];
            if r[0] < 0.0 {
                continue;
            }
            t.boxes.push([
                r[1] * w as f32,
                r[2] * h as f32,
                r[3] * w as f32,
                r[4] * h as f32,
            ]);
            t.labels.push(r[0] as usize + 1);
            if has_masks {
                masks.extend_from_slice(&r[5..]);
            }
        }
        if has_masks {
            let k = t.boxes.len();
            t.masks = Some(Tensor::from_vec(masks, &[k, h, w])?);
        }
        out.push(t);
    }
    Ok(out)
}

/// Faster / Mask R-CNN on detection batches (module docs).
pub struct RcnnTask<'a> {
    net: &'a MaskRcnn,
    generator: RefCell<Generator>,
}

impl<'a> RcnnTask<'a> {
    /// A task for `net`; the sampling of anchors and proposals draws from `seed`.
    pub fn new(net: &'a MaskRcnn, seed: u64) -> Self {
        RcnnTask {
            net,
            generator: RefCell::new(Generator::new(seed)),
        }
    }

    fn losses(&self, batch: &Batch) -> Result<(Tensor, [f64; 5])> {
        let s = batch.x.shape().to_vec();
        let targets = batch_targets(&batch.y, s[2], s[3])?;
        let x = batch.x.div_scalar(255.0)?;
        let mut g = self.generator.borrow_mut();
        let l = self
            .net
            .losses(&x, &targets, &mut Sampling::Random(&mut g))?;
        let parts = [
            l.loss_objectness.item_f64()?,
            l.loss_rpn_box_reg.item_f64()?,
            l.loss_classifier.item_f64()?,
            l.loss_box_reg.item_f64()?,
            l.loss_mask.as_ref().map_or(Ok(0.0), |m| m.item_f64())?,
        ];
        Ok((l.total()?, parts))
    }
}

impl TrainTask for RcnnTask<'_> {
    fn info(&self) -> TaskInfo {
        TaskInfo {
            kind: "rcnn",
            // Σ loss·B for the total and the five parts, examples; validation: Σ loss·B, examples.
            stat_counts: (7, 2),
            columns: &[
                "train_loss",
                "loss_objectness",
                "loss_rpn_box_reg",
                "loss_classifier",
                "loss_box_reg",
                "loss_mask",
                "val_loss",
            ],
        }
    }

    fn model(&self) -> &dyn Module {
        self.net
    }

    fn train_step(&self, batch: &Batch) -> Result<Step> {
        let (loss, parts) = self.losses(batch)?;
        let b = batch.size as f64;
        let mut stats = vec![Stat::Host(loss.item_f64()? * b)];
        stats.extend(parts.iter().map(|p| Stat::Host(p * b)));
        stats.push(Stat::Host(b));
        Ok(Step { loss, stats })
    }

    fn eval_step(&self, batch: &Batch) -> Result<Vec<Stat>> {
        let (loss, _) = no_grad(|| self.losses(batch))?;
        let b = batch.size as f64;
        Ok(vec![Stat::Host(loss.item_f64()? * b), Stat::Host(b)])
    }

    fn measure(&self, t: &[f64], e: Option<&[f64]>, _train_secs: f64) -> Measured {
        let n = t[6];
        let train_loss = ratio(t[0], n);
        let val = e.map(|e| ratio(e[0], e[1]));
        let mut columns = vec![Some(train_loss)];
        columns.extend((1..6).map(|k| Some(ratio(t[k], n))));
        columns.push(val);
        Measured::losses(train_loss, val, columns)
    }

    fn progress(&self, t: &[f64]) -> String {
        format!("loss {:.3}", ratio(t[0], t[6]))
    }

    fn curves(&self) -> CurveSpec {
        CurveSpec {
            series: vec![
                ("train loss", "train_loss"),
                ("rpn objectness", "loss_objectness"),
                ("classifier", "loss_classifier"),
                ("box reg", "loss_box_reg"),
                ("val loss", "val_loss"),
            ],
            ylabel: "loss",
            log_y: true,
        }
    }

    fn state_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let w: Vec<i64> = self
            .generator
            .borrow()
            .to_words()
            .iter()
            .map(|&x| x as i64)
            .collect();
        Ok(vec![("rcnn.sampler".into(), Tensor::from_vec(w, &[6])?)])
    }

    fn load_state_tensors(&self, entries: &[(String, Tensor)]) -> Result<()> {
        if let Some((_, t)) = entries.iter().find(|(n, _)| n == "rcnn.sampler") {
            let v: Vec<u64> = t.to_vec::<i64>().iter().map(|&x| x as u64).collect();
            let w: [u64; 6] = v.try_into().map_err(|_| Error::InvalidArgument {
                op: "rcnn",
                msg: "the sampler state holds 6 words".into(),
            })?;
            *self.generator.borrow_mut() = Generator::from_words(w)?;
        }
        Ok(())
    }
}

/// How [`train_rcnn`] runs.
#[derive(Debug, Clone)]
pub struct RcnnTrainConfig {
    /// Epochs.
    pub epochs: usize,
    /// SGD learning rate (torchvision's reference: 0.02 for 16 images a batch).
    pub lr: f64,
    /// SGD momentum (0.9).
    pub momentum: f64,
    /// Weight decay (1e-4).
    pub weight_decay: f64,
    /// Seed of the anchor and proposal sampling.
    pub seed: u64,
    /// Clip the gradient norm (torchvision's reference does not; a from-scratch body
    /// benefits).
    pub max_grad_norm: Option<f64>,
    /// No progress bar or per-epoch lines.
    pub quiet: bool,
    /// Where to write metrics, curves, weights, checkpoints and the summary.
    pub run_dir: Option<RunDir>,
    /// Where to train.
    pub device: Device,
    /// Continue from the run folder's checkpoint.
    pub resume: bool,
}

impl Default for RcnnTrainConfig {
    fn default() -> Self {
        RcnnTrainConfig {
            epochs: 10,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 1e-4,
            seed: 0x13_08,
            max_grad_norm: Some(10.0),
            quiet: false,
            run_dir: None,
            device: Device::Cpu,
            resume: false,
        }
    }
}

/// Trains `net` with SGD (momentum, weight decay) through [`Trainer::fit`].
pub fn train_rcnn(
    net: &MaskRcnn,
    train: &DataLoader,
    val: Option<&DataLoader>,
    cfg: &RcnnTrainConfig,
) -> Result<crate::trainer::TrainSummary> {
    if cfg.epochs == 0 {
        return Err(Error::InvalidArgument {
            op: "train_rcnn",
            msg: "expected at least one epoch, got 0".into(),
        });
    }
    crate::device::to_device(net, cfg.device)?;
    let mut opt = Sgd::new(net.parameters(), cfg.lr)?
        .momentum(cfg.momentum)
        .weight_decay(cfg.weight_decay);
    let task = RcnnTask::new(net, cfg.seed);
    let config = TrainConfig {
        epochs: cfg.epochs,
        quiet: cfg.quiet,
        run_dir: cfg.run_dir.clone(),
        device: cfg.device,
        resume: cfg.resume,
        max_grad_norm: cfg.max_grad_norm,
        ..Default::default()
    };
    let s = Trainer::for_task(Box::new(task), &mut opt, config).fit(train, val)?;
    Ok(s)
}

/// Box mAP (and mask mAP for a Mask R-CNN and a loader with masks).
#[derive(Debug, Clone, Serialize)]
pub struct DetectionMap {
    /// Box AP@0.5.
    pub ap50: f64,
    /// Box AP@[0.5:0.95].
    pub ap: f64,
    /// Mask AP@0.5.
    pub mask_ap50: Option<f64>,
    /// Mask AP@[0.5:0.95].
    pub mask_ap: Option<f64>,
    /// Images evaluated.
    pub images: usize,
    /// Images per second of inference (eval mode, batch of the loader).
    pub images_per_sec: f64,
}

fn truths(targets: &[RcnnTarget], first: usize, out: &mut Vec<EvalTruth>) {
    for (i, t) in targets.iter().enumerate() {
        let masks = t.masks.as_ref().map(|m| m.to_vec::<f32>());
        for (k, (b, &l)) in t.boxes.iter().zip(&t.labels).enumerate() {
            let mask = masks.as_ref().map(|m| {
                let n = m.len() / t.boxes.len();
                m[k * n..(k + 1) * n].iter().map(|&v| v > 0.5).collect()
            });
            out.push(EvalTruth {
                image: first + i,
                class: l,
                bbox: *b,
                mask,
            });
        }
    }
}

fn metrics(
    d: &[EvalDetection],
    g: &[EvalTruth],
    masks: bool,
    images: usize,
    secs: f64,
) -> DetectionMap {
    let b: CocoMetrics = evaluate(d, g, IouKind::Box);
    let m = masks.then(|| evaluate(d, g, IouKind::Mask));
    DetectionMap {
        ap50: b.ap50,
        ap: b.ap,
        mask_ap50: m.as_ref().map(|m| m.ap50),
        mask_ap: m.as_ref().map(|m| m.ap),
        images,
        images_per_sec: images as f64 / secs.max(1e-9),
    }
}

/// COCO-style mAP of `net` on `loader` (eval mode; detections above the model's score
/// threshold, at most its `detections_per_img`; masks pasted at the image size and cut
/// at 0.5).
pub fn evaluate_map(net: &MaskRcnn, loader: &DataLoader) -> Result<DetectionMap> {
    net.eval();
    let (mut dets, mut gts) = (Vec::new(), Vec::new());
    let mut seen = 0;
    let mut secs = 0.0;
    let mut has_masks = false;
    let res = (|| -> Result<()> {
        for batch in loader.iter() {
            let batch = batch.map_err(data_error)?;
            let s = batch.x.shape().to_vec();
            let (h, w) = (s[2], s[3]);
            let targets = batch_targets(&batch.y, h, w)?;
            has_masks |= targets.iter().any(|t| t.masks.is_some());
            truths(&targets, seen, &mut gts);
            let t0 = std::time::Instant::now();
            let x = batch
                .x
                .div_scalar(255.0)?
                .to(crate::device::model_device(net))?;
            let out = net.detect(&x)?;
            secs += t0.elapsed().as_secs_f64();
            for (i, o) in out.iter().enumerate() {
                let probs = o.masks.as_ref().map(|m| m.to_vec::<f32>());
                for (k, d) in o.detections.iter().enumerate() {
                    let mask = probs.as_ref().map(|p| {
                        paste_mask(&p[k * 784..(k + 1) * 784], 28, &d.bbox, h, w)
                            .into_iter()
                            .map(|v| v > 0.5)
                            .collect()
                    });
                    dets.push(EvalDetection {
                        image: seen + i,
                        class: d.label,
                        score: d.score,
                        bbox: d.bbox,
                        mask,
                    });
                }
            }
            seen += s[0];
        }
        Ok(())
    })();
    net.train();
    res?;
    let masks = has_masks && net.config().mask_layers.is_some();
    Ok(metrics(&dets, &gts, masks, seen, secs))
}

/// COCO-style box mAP of TinySSD on `loader`: the book's `multibox_detection` output
/// (NMS at `nms_threshold`), classes shifted by one as for the R-CNN heads.
pub fn evaluate_ssd_map(
    net: &TinySsd,
    loader: &DataLoader,
    nms_threshold: f32,
) -> Result<DetectionMap> {
    let (mut dets, mut gts) = (Vec::new(), Vec::new());
    let mut seen = 0;
    let mut secs = 0.0;
    for batch in loader.iter() {
        let batch = batch.map_err(data_error)?;
        let s = batch.x.shape().to_vec();
        let (h, w) = (s[2], s[3]);
        let mut targets = batch_targets(&batch.y, h, w)?;
        for t in targets.iter_mut() {
            t.masks = None;
        }
        truths(&targets, seen, &mut gts);
        for i in 0..s[0] {
            let t0 = std::time::Instant::now();
            let rows =
                super::detection::predict_ssd(net, &batch.x.select(0, i as isize)?, nms_threshold)?;
            secs += t0.elapsed().as_secs_f64();
            for r in rows {
                let b: Box4 = [
                    r[2] * w as f32,
                    r[3] * h as f32,
                    r[4] * w as f32,
                    r[5] * h as f32,
                ];
                dets.push(EvalDetection {
                    image: seen + i,
                    class: r[0] as usize + 1,
                    score: r[1],
                    bbox: b,
                    mask: None,
                });
            }
        }
        seen += s[0];
    }
    Ok(metrics(&dets, &gts, false, seen, secs))
}
