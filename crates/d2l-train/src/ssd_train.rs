//! Training TinySSD (D2L 13.7): per mini-batch, the network predicts class scores and
//! box offsets for every anchor, `multibox_target` labels the anchors from the ground
//! truth, and the loss is the per-example class loss (averaged over anchors) plus the
//! masked box loss (averaged over the 4A offsets), averaged over the batch; SGD with
//! weight decay steps. An epoch reports the book's metrics on the training batches:
//! class error `1 − correct/#anchors` and bbox MAE `Σ|masked diff| / #offset entries`,
//! and examples per second. The time spent labelling anchors is measured separately, so
//! that its share of a step can be reported.
//!
//! With a run directory the run writes `metrics.csv`
//! (`epoch,class_err,bbox_mae,val_class_err,val_bbox_mae,examples_per_sec,target_share,seconds`),
//! `curves.png`/`.svg`, `model.safetensors` and `summary.json`.

use crate::metrics::{data_error, Accumulator};
use crate::plot::{save_line_plot, PlotSpec, Series};
use crate::run_dir::{write_atomic, RunDir};
use d2l_data::loader::DataLoader;
use d2l_models::ssd::{bbox_eval, cls_eval, ssd_loss, BoxLoss, ClsLoss, TinySsd};
use d2l_nn::optim::{Optimizer, Sgd};
use d2l_nn::Module;
use d2l_tensor::{no_grad, Device, Error, Result, Tensor};
use d2l_vision::detection::multibox_target;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::time::Instant;

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
    /// Where to write metrics, curves, weights and the summary.
    pub run_dir: Option<RunDir>,
    /// Where to train: the model is moved there first, each batch after the loader gives
    /// it (default: the CPU).
    pub device: Device,
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
    /// Training examples per second (the whole step: data, forward, targets, backward, update).
    pub examples_per_sec: f64,
    /// Share of the step time spent in `multibox_target` (labelling anchors).
    pub target_share: f64,
    /// Wall time of the epoch (training and validation).
    pub seconds: f64,
}

/// What [`train_ssd`] returns and writes to `summary.json`.
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

/// D2L 13.7's training loop for [`TinySsd`] on a loader of `(B, 3, H, W)` images and
/// `(B, G, 5)` labels (`[class, x1, y1, x2, y2]`, normalised; rows of class −1 are
/// padding). `val`, when given, is evaluated after every epoch.
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
    let bar = if cfg.quiet {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new((cfg.epochs * train.len()) as u64);
        b.set_style(
            ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} batches [{elapsed}<{eta}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    net.train();
    let mut epochs = Vec::with_capacity(cfg.epochs);
    for epoch in 1..=cfg.epochs {
        let start = Instant::now();
        // Σ correct, #anchors, Σ|bbox err|, #offsets, Σ loss, #examples.
        let mut m = Accumulator::new(6);
        let mut target_secs = 0.0;
        for batch in train.iter_epoch(epoch as u64 - 1) {
            let batch = batch.map_err(data_error)?;
            let (x, y) = (batch.x.to(cfg.device)?, batch.y.to(cfg.device)?);
            opt.zero_grad();
            let out = net.forward_ssd(&x)?;
            let t0 = Instant::now();
            let (bbox_labels, bbox_masks, cls_labels) = multibox_target(&out.anchors, &y)?;
            target_secs += t0.elapsed().as_secs_f64();
            let l = ssd_loss(
                &out.cls_preds,
                &cls_labels,
                &out.bbox_preds,
                &bbox_labels,
                &bbox_masks,
                cfg.cls_loss,
                cfg.box_loss,
            )?;
            let loss_sum = l.sum_all()?.item_f64()?;
            if !loss_sum.is_finite() {
                return Err(Error::InvalidArgument {
                    op: "train_ssd",
                    msg: format!(
                        "the loss became {loss_sum} in epoch {epoch}; lower the learning rate (--lr)"
                    ),
                });
            }
            l.mean_all()?.backward()?;
            opt.step()?;
            m.add(&[
                cls_eval(&out.cls_preds, &cls_labels)?,
                cls_labels.numel() as f64,
                bbox_eval(&out.bbox_preds, &bbox_labels, &bbox_masks)?,
                bbox_labels.numel() as f64,
                loss_sum,
                batch.len() as f64,
            ]);
            bar.inc(1);
        }
        crate::device::sync(cfg.device)?;
        let train_secs = start.elapsed().as_secs_f64();
        let (val_class_err, val_bbox_mae) = match val {
            Some(v) => {
                let (c, b) = evaluate_ssd(net, v)?;
                (Some(c), Some(b))
            }
            None => (None, None),
        };
        let e = SsdEpoch {
            epoch,
            class_err: 1.0 - m.get(0) / m.get(1).max(1.0),
            bbox_mae: m.get(2) / m.get(3).max(1.0),
            loss: m.get(4) / m.get(5).max(1.0),
            val_class_err,
            val_bbox_mae,
            examples_per_sec: m.get(5) / train_secs.max(1e-9),
            target_share: target_secs / train_secs.max(1e-9),
            seconds: start.elapsed().as_secs_f64(),
        };
        epochs.push(e);
        let line = format!(
            "epoch {epoch:>3}: class err {:.2e}, bbox mae {:.2e}{}, {:.1} examples/sec (anchor targets {:.2}% of the step)",
            e.class_err,
            e.bbox_mae,
            match (val_class_err, val_bbox_mae) {
                (Some(c), Some(b)) => format!(" | val class err {c:.2e}, bbox mae {b:.2e}"),
                _ => String::new(),
            },
            e.examples_per_sec,
            100.0 * e.target_share
        );
        bar.set_message(format!("epoch {epoch}/{}", cfg.epochs));
        if !cfg.quiet {
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
        if let Some(dir) = &cfg.run_dir {
            write_atomic(&dir.file("metrics.csv"), metrics_csv(&epochs).as_bytes())?;
        }
    }
    bar.finish_and_clear();
    let last = *epochs.last().expect("at least one epoch");
    let summary = SsdTrainSummary {
        class_err: last.class_err,
        bbox_mae: last.bbox_mae,
        examples_per_sec: last.examples_per_sec,
        seconds: epochs.iter().map(|e| e.seconds).sum(),
        epochs,
        device: cfg.device.to_string(),
    };
    if let Some(dir) = &cfg.run_dir {
        write_run(dir, net, &summary)?;
    }
    Ok(summary)
}

fn opt_cell(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.6e}")).unwrap_or_default()
}

fn metrics_csv(epochs: &[SsdEpoch]) -> String {
    let mut s = String::from(
        "epoch,class_err,bbox_mae,val_class_err,val_bbox_mae,examples_per_sec,target_share,seconds\n",
    );
    for e in epochs {
        s.push_str(&format!(
            "{},{:.6e},{:.6e},{},{},{:.2},{:.4},{:.3}\n",
            e.epoch,
            e.class_err,
            e.bbox_mae,
            opt_cell(e.val_class_err),
            opt_cell(e.val_bbox_mae),
            e.examples_per_sec,
            e.target_share,
            e.seconds
        ));
    }
    s
}

/// Writes the curves (class error and bbox MAE against epoch, the book's Animator), the
/// weights and `summary.json` of a finished run.
fn write_run(dir: &RunDir, net: &TinySsd, s: &SsdTrainSummary) -> Result<()> {
    let x: Vec<f64> = s.epochs.iter().map(|e| e.epoch as f64).collect();
    let n = s.epochs.len() as f64;
    let spec = PlotSpec {
        title: dir.model_name().to_string(),
        xlabel: "epoch".into(),
        ylabel: "".into(),
        xlim: Some(if n > 1.0 { (1.0, n) } else { (0.5, 1.5) }),
        ..PlotSpec::default()
    };
    let series = vec![
        Series::new(
            "class error",
            x.clone(),
            s.epochs.iter().map(|e| e.class_err).collect(),
        ),
        Series::new("bbox mae", x, s.epochs.iter().map(|e| e.bbox_mae).collect()),
    ];
    save_line_plot(&dir.file("curves"), &spec, &series)?;
    dir.save_model(net)?;
    let text = serde_json::to_string_pretty(s).map_err(|e| Error::InvalidArgument {
        op: "train_ssd",
        msg: e.to_string(),
    })?;
    write_atomic(&dir.file("summary.json"), format!("{text}\n").as_bytes())
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
