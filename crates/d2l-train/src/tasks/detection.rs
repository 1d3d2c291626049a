//! Object detection with TinySSD (D2L 13.7): per mini-batch the network predicts class
//! scores and box offsets for every anchor, `multibox_target` labels the anchors from the
//! ground truth, and the loss is the per-example class loss (averaged over anchors) plus the
//! masked box loss (averaged over the 4A offsets), averaged over the batch. An epoch
//! reports the book's metrics on the training batches — class error `1 − correct/#anchors`
//! and bbox MAE `Σ|masked diff| / #offset entries` — the same on the validation set, and
//! the share of the step spent labelling anchors.
//!
//! [`train_ssd`] is the book's recipe (SGD with weight decay) through the one training
//! loop; [`evaluate_ssd`] and [`predict_ssd`] use a trained model.

use super::{ratio, Batch, CurveSpec, Measured, Stat, Step, TaskInfo, TrainTask};
use crate::metrics::{data_error, Accumulator};
use crate::run_dir::RunDir;
use crate::trainer::{TrainConfig, Trainer};
use d2l_data::loader::DataLoader;
use d2l_models::ssd::{bbox_eval, cls_eval, ssd_loss, BoxLoss, ClsLoss, TinySsd};
use d2l_nn::optim::Sgd;
use d2l_nn::Module;
use d2l_tensor::{no_grad, Device, Error, Result, Tensor};
use d2l_vision::detection::multibox_target;
use serde::Serialize;
use std::cell::Cell;
use std::time::Instant;

/// TinySSD on `(B, 3, H, W)` images and `(B, G, 5)` labels (`[class, x1, y1, x2, y2]`,
/// normalised; rows of class −1 are padding).
pub struct DetectionTask<'a> {
    net: &'a TinySsd,
    cls_loss: ClsLoss,
    box_loss: BoxLoss,
    target_secs: Cell<f64>,
}

impl<'a> DetectionTask<'a> {
    /// A task for `net` with the given class and box losses (the book: cross entropy, L1).
    pub fn new(net: &'a TinySsd, cls_loss: ClsLoss, box_loss: BoxLoss) -> Self {
        DetectionTask {
            net,
            cls_loss,
            box_loss,
            target_secs: Cell::new(0.0),
        }
    }

    /// Forward pass and anchor labels: (output, bbox labels, bbox masks, class labels).
    fn labelled(
        &self,
        batch: &Batch,
    ) -> Result<(d2l_models::ssd::SsdOutput, Tensor, Tensor, Tensor)> {
        let out = self.net.forward_ssd(&batch.x)?;
        let t0 = Instant::now();
        let (bbox_labels, bbox_masks, cls_labels) = multibox_target(&out.anchors, &batch.y)?;
        self.target_secs
            .set(self.target_secs.get() + t0.elapsed().as_secs_f64());
        Ok((out, bbox_labels, bbox_masks, cls_labels))
    }
}

impl TrainTask for DetectionTask<'_> {
    fn info(&self) -> TaskInfo {
        TaskInfo {
            kind: "detection",
            // correct anchors, anchors, Σ|bbox err|, offsets, loss sum, examples
            stat_counts: (6, 4),
            columns: &[
                "train_loss",
                "class_err",
                "bbox_mae",
                "val_class_err",
                "val_bbox_mae",
                "target_share",
            ],
        }
    }

    fn model(&self) -> &dyn Module {
        self.net
    }

    fn begin_pass(&self, training: bool) -> Result<()> {
        if training {
            self.target_secs.set(0.0);
        }
        Ok(())
    }

    fn train_step(&self, batch: &Batch) -> Result<Step> {
        let (out, bbox_labels, bbox_masks, cls_labels) = self.labelled(batch)?;
        let l = ssd_loss(
            &out.cls_preds,
            &cls_labels,
            &out.bbox_preds,
            &bbox_labels,
            &bbox_masks,
            self.cls_loss,
            self.box_loss,
        )?;
        let loss = l.mean_all()?;
        Ok(Step {
            stats: vec![
                Stat::Host(cls_eval(&out.cls_preds, &cls_labels)?),
                Stat::Host(cls_labels.numel() as f64),
                Stat::Host(bbox_eval(&out.bbox_preds, &bbox_labels, &bbox_masks)?),
                Stat::Host(bbox_labels.numel() as f64),
                Stat::Device(no_grad(|| l.detach().sum_all())?),
                Stat::Host(batch.size as f64),
            ],
            loss,
        })
    }

    fn eval_step(&self, batch: &Batch) -> Result<Vec<Stat>> {
        let (out, bbox_labels, bbox_masks, cls_labels) = self.labelled(batch)?;
        Ok(vec![
            Stat::Host(cls_eval(&out.cls_preds, &cls_labels)?),
            Stat::Host(cls_labels.numel() as f64),
            Stat::Host(bbox_eval(&out.bbox_preds, &bbox_labels, &bbox_masks)?),
            Stat::Host(bbox_labels.numel() as f64),
        ])
    }

    fn measure(&self, t: &[f64], e: Option<&[f64]>, train_secs: f64) -> Measured {
        let class_err = 1.0 - t[0] / t[1].max(1.0);
        let bbox_mae = t[2] / t[3].max(1.0);
        let val = e.map(|e| (1.0 - e[0] / e[1].max(1.0), e[2] / e[3].max(1.0)));
        let train_loss = ratio(t[4], t[5]);
        Measured::losses(
            train_loss,
            None,
            vec![
                Some(train_loss),
                Some(class_err),
                Some(bbox_mae),
                val.map(|v| v.0),
                val.map(|v| v.1),
                Some(self.target_secs.get() / train_secs.max(1e-9)),
            ],
        )
    }

    fn progress(&self, t: &[f64]) -> String {
        format!(
            "class err {:.2e} bbox mae {:.2e}",
            1.0 - t[0] / t[1].max(1.0),
            t[2] / t[3].max(1.0)
        )
    }

    fn epoch_line(
        &self,
        m: &crate::trainer::EpochMetrics,
        _epochs: usize,
    ) -> Result<Option<String>> {
        let col = |name: &str| m.column(name);
        Ok(Some(format!(
            "epoch {:>3}: class err {:.2e}, bbox mae {:.2e}{}, {:.1} examples/sec (anchor targets {:.2}% of the step)",
            m.epoch,
            col("class_err").unwrap_or(f64::NAN),
            col("bbox_mae").unwrap_or(f64::NAN),
            match (col("val_class_err"), col("val_bbox_mae")) {
                (Some(c), Some(b)) => format!(" | val class err {c:.2e}, bbox mae {b:.2e}"),
                _ => String::new(),
            },
            m.examples_per_sec,
            100.0 * col("target_share").unwrap_or(f64::NAN)
        )))
    }

    fn curves(&self) -> CurveSpec {
        CurveSpec {
            series: vec![("class error", "class_err"), ("bbox mae", "bbox_mae")],
            ylabel: "",
            log_y: false,
        }
    }
}

/// How [`train_ssd`] runs; the defaults are the book's (B.4).
#[derive(Debug, Clone)]
pub struct SsdTrainConfig {
    /// Epochs (the book: 20).
    pub epochs: usize,
    /// SGD learning rate (the book: 0.2).
    pub lr: f64,
    /// Weight decay (the book: 5e-4).
    pub weight_decay: f64,
    /// Class loss (the book: cross entropy).
    pub cls_loss: ClsLoss,
    /// Box loss (the book: L1).
    pub box_loss: BoxLoss,
    /// No progress bar or per-epoch lines.
    pub quiet: bool,
    /// Where to write metrics, curves, weights, checkpoints and the summary.
    pub run_dir: Option<RunDir>,
    /// Where to train (default: the CPU).
    pub device: Device,
    /// Continue from the run folder's checkpoint.
    pub resume: bool,
    /// Data-parallel training over several processes (see `crate::dist`).
    pub distributed: Option<crate::dist::Distributed>,
}

impl Default for SsdTrainConfig {
    fn default() -> Self {
        SsdTrainConfig {
            epochs: 20,
            lr: 0.2,
            weight_decay: 5e-4,
            cls_loss: ClsLoss::CrossEntropy,
            box_loss: BoxLoss::L1,
            quiet: false,
            run_dir: None,
            device: Device::Cpu,
            resume: false,
            distributed: None,
        }
    }
}

/// One epoch of [`train_ssd`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SsdEpoch {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Training class error over anchors (the book's `cls_err`).
    pub class_err: f64,
    /// Training bbox MAE over offset entries (the book's `bbox_mae`).
    pub bbox_mae: f64,
    /// Mean training loss per example.
    pub loss: f64,
    /// Class error on the validation loader, if one was given.
    pub val_class_err: Option<f64>,
    /// Bbox MAE on the validation loader, if one was given.
    pub val_bbox_mae: Option<f64>,
    /// Training examples per second.
    pub examples_per_sec: f64,
    /// Share of the step time spent in `multibox_target` (labelling anchors).
    pub target_share: f64,
    /// Wall time of the epoch (training and validation).
    pub seconds: f64,
}

/// What [`train_ssd`] returns.
#[derive(Debug, Clone, Serialize)]
pub struct SsdTrainSummary {
    /// The last epoch's training class error.
    pub class_err: f64,
    /// The last epoch's training bbox MAE.
    pub bbox_mae: f64,
    /// The last epoch's training examples per second.
    pub examples_per_sec: f64,
    /// Total seconds.
    pub seconds: f64,
    /// Every epoch.
    pub epochs: Vec<SsdEpoch>,
    /// The device the run trained on (`"cpu"`, `"cuda:0"`, ...).
    pub device: String,
    /// Why training stopped before the last epoch (Ctrl-C), `None` when it completed.
    pub stopped_early: Option<String>,
}

impl SsdTrainSummary {
    /// The detection view of a [`crate::trainer::TrainSummary`].
    pub fn from_summary(s: &crate::trainer::TrainSummary) -> SsdTrainSummary {
        let epochs: Vec<SsdEpoch> = s
            .epochs
            .iter()
            .map(|m| SsdEpoch {
                epoch: m.epoch,
                class_err: m.column("class_err").unwrap_or(f64::NAN),
                bbox_mae: m.column("bbox_mae").unwrap_or(f64::NAN),
                loss: m.train_loss,
                val_class_err: m.column("val_class_err"),
                val_bbox_mae: m.column("val_bbox_mae"),
                examples_per_sec: m.examples_per_sec,
                target_share: m.column("target_share").unwrap_or(f64::NAN),
                seconds: m.seconds,
            })
            .collect();
        let last = epochs.last();
        SsdTrainSummary {
            class_err: last.map_or(f64::NAN, |e| e.class_err),
            bbox_mae: last.map_or(f64::NAN, |e| e.bbox_mae),
            examples_per_sec: last.map_or(0.0, |e| e.examples_per_sec),
            seconds: s.seconds,
            device: s.device.clone(),
            stopped_early: s.stopped_early.clone(),
            epochs,
        }
    }
}

/// D2L 13.7's training of [`TinySsd`] (SGD with weight decay) through
/// [`Trainer::fit_source`]; `val`, when given, is evaluated after every epoch.
pub fn train_ssd(
    net: &TinySsd,
    train: &DataLoader,
    val: Option<&DataLoader>,
    cfg: &SsdTrainConfig,
) -> Result<SsdTrainSummary> {
    if cfg.epochs == 0 {
        return Err(Error::InvalidArgument {
            op: "train_ssd",
            msg: "expected at least one epoch, got 0".into(),
        });
    }
    crate::device::to_device(net, cfg.device)?;
    let mut opt = Sgd::new(net.parameters(), cfg.lr)?.weight_decay(cfg.weight_decay);
    let task = DetectionTask::new(net, cfg.cls_loss, cfg.box_loss);
    let config = TrainConfig {
        epochs: cfg.epochs,
        quiet: cfg.quiet,
        run_dir: cfg.run_dir.clone(),
        device: cfg.device,
        resume: cfg.resume,
        distributed: cfg.distributed.clone(),
        ..Default::default()
    };
    let s = Trainer::for_task(Box::new(task), &mut opt, config).fit(train, val)?;
    Ok(SsdTrainSummary::from_summary(&s))
}

/// Class error and bbox MAE of `net` over `loader` (eval mode, no gradients).
pub fn evaluate_ssd(net: &TinySsd, loader: &DataLoader) -> Result<(f64, f64)> {
    net.eval();
    let device = crate::device::model_device(net);
    let out = no_grad(|| -> Result<(f64, f64)> {
        let mut m = Accumulator::new(4);
        for batch in loader.iter() {
            let batch = batch.map_err(data_error)?;
            let (x, y) = (batch.x.to(device)?, batch.y.to(device)?);
            let out = net.forward_ssd(&x)?;
            let (bbox_labels, bbox_masks, cls_labels) = multibox_target(&out.anchors, &y)?;
            m.add(&[
                cls_eval(&out.cls_preds, &cls_labels)?,
                cls_labels.numel() as f64,
                bbox_eval(&out.bbox_preds, &bbox_labels, &bbox_masks)?,
                bbox_labels.numel() as f64,
            ]);
        }
        Ok((
            1.0 - m.get(0) / m.get(1).max(1.0),
            m.get(2) / m.get(3).max(1.0),
        ))
    });
    net.train();
    out
}

/// Runs TinySSD on one `(3, H, W)` image (values 0–255 as in training) and returns the
/// book's `predict` output: rows `[class, confidence, x1, y1, x2, y2]` (normalised
/// corners) of the detections that were kept, in descending confidence.
pub fn predict_ssd(net: &TinySsd, image: &Tensor, nms_threshold: f32) -> Result<Vec<[f32; 6]>> {
    net.eval();
    let out = no_grad(|| -> Result<Vec<[f32; 6]>> {
        let x = image.unsqueeze(0)?.to(crate::device::model_device(net))?;
        let out = net.forward_ssd(&x)?;
        let cls_probs = out.cls_preds.softmax(2)?.permute(&[0, 2, 1])?;
        let det = d2l_vision::detection::multibox_detection(
            &cls_probs,
            &out.bbox_preds,
            &out.anchors,
            nms_threshold,
            d2l_vision::detection::POS_THRESHOLD,
        )?;
        let v = det.to_vec::<f32>();
        Ok(v.chunks_exact(6)
            .filter(|r| r[0] >= 0.0)
            .map(|r| [r[0], r[1], r[2], r[3], r[4], r[5]])
            .collect())
    });
    net.train();
    out
}
