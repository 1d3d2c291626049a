//! Semantic segmentation (D2L 13.9–13.11, the FCN): the loss is the per-image mean of the
//! per-pixel cross entropy, averaged over the batch; an epoch reports the training loss,
//! pixel accuracy and mean intersection over union (IoU averaged over the classes present
//! in the predictions or the labels), and the same on the validation set.

use super::{
    ratio, scaled_stat, Batch, BatchSource, CurveSpec, Measured, Stat, Step, TaskInfo, TrainTask,
};
use d2l_models::fcn::{pixel_accuracy, seg_loss};
use d2l_nn::Module;
use d2l_tensor::{no_grad, Result, Tensor};

/// Segmentation of `[N, C, H, W]` logits against `[N, H, W]` `i64` labels over
/// `num_classes` classes.
pub struct SegmentationTask<'a> {
    net: &'a dyn Module,
    num_classes: usize,
}

impl<'a> SegmentationTask<'a> {
    /// A task for `net` with `num_classes` output channels.
    pub fn new(net: &'a dyn Module, num_classes: usize) -> Self {
        SegmentationTask { net, num_classes }
    }

    /// Loss sum, images, correct pixels, pixels, then the intersection and union of
    /// every class.
    fn stats(&self, y_hat: &Tensor, y: &Tensor, loss_sum: Stat, n: usize) -> Result<Vec<Stat>> {
        let (correct, total) = pixel_accuracy(y_hat, y)?;
        let mut out = vec![
            loss_sum,
            Stat::Host(n as f64),
            Stat::Host(correct as f64),
            Stat::Host(total as f64),
        ];
        let (inter, union) = iou_counts(y_hat, y, self.num_classes)?;
        out.extend(inter.into_iter().map(|v| Stat::Host(v as f64)));
        out.extend(union.into_iter().map(|v| Stat::Host(v as f64)));
        Ok(out)
    }

    fn miou(&self, s: &[f64]) -> f64 {
        let c = self.num_classes;
        let (inter, union) = (&s[4..4 + c], &s[4 + c..4 + 2 * c]);
        let present: Vec<f64> = inter
            .iter()
            .zip(union)
            .filter(|(_, u)| **u > 0.0)
            .map(|(i, u)| i / u)
            .collect();
        ratio(present.iter().sum(), present.len() as f64)
    }
}

/// Per-class intersection and union pixel counts of the argmax predictions of
/// `[N, C, H, W]` logits against `[N, H, W]` labels (labels outside `0..classes`, such as
/// VOC's 255 border, count in neither).
pub fn iou_counts(
    logits: &Tensor,
    labels: &Tensor,
    classes: usize,
) -> Result<(Vec<u64>, Vec<u64>)> {
    let pred = logits.argmax(1, false)?.to_vec::<i64>();
    let want = labels.to_vec::<i64>();
    let (mut inter, mut union) = (vec![0u64; classes], vec![0u64; classes]);
    for (&p, &w) in pred.iter().zip(&want) {
        if w < 0 || w as usize >= classes {
            continue;
        }
        let (p, w) = (p as usize, w as usize);
        if p == w {
            inter[p] += 1;
            union[p] += 1;
        } else {
            if p < classes {
                union[p] += 1;
            }
            union[w] += 1;
        }
    }
    Ok((inter, union))
}

impl TrainTask for SegmentationTask<'_> {
    fn info(&self) -> TaskInfo {
        let n = 4 + 2 * self.num_classes;
        TaskInfo {
            kind: "segmentation",
            stat_counts: (n, n),
            columns: &[
                "train_loss",
                "train_acc",
                "train_miou",
                "test_loss",
                "test_acc",
                "test_miou",
            ],
        }
    }

    fn model(&self) -> &dyn Module {
        self.net
    }

    fn train_step(&self, batch: &Batch) -> Result<Step> {
        let y_hat = self.net.forward(&batch.x)?;
        let l = seg_loss(&y_hat, &batch.y)?;
        let loss = l.mean_all()?;
        Ok(Step {
            stats: self.stats(
                &y_hat,
                &batch.y,
                scaled_stat(&loss, batch.size as f64)?,
                batch.size,
            )?,
            loss,
        })
    }

    fn eval_step(&self, batch: &Batch) -> Result<Vec<Stat>> {
        let y_hat = self.net.forward(&batch.x)?;
        let l = seg_loss(&y_hat, &batch.y)?;
        let sum = Stat::Device(no_grad(|| l.sum_all())?);
        self.stats(&y_hat, &batch.y, sum, batch.size)
    }

    fn measure(&self, t: &[f64], e: Option<&[f64]>, _secs: f64) -> Measured {
        let train_loss = ratio(t[0], t[1]);
        let train_acc = ratio(t[2], t[3]);
        let test_loss = e.map(|e| ratio(e[0], e[1]));
        let test_acc = e.map(|e| ratio(e[2], e[3]));
        Measured {
            train_loss,
            train_acc: Some(train_acc),
            test_acc,
            test_loss,
            columns: vec![
                Some(train_loss),
                Some(train_acc),
                Some(self.miou(t)),
                test_loss,
                test_acc,
                e.map(|e| self.miou(e)),
            ],
        }
    }

    fn progress(&self, t: &[f64]) -> String {
        format!(
            "loss {:.3} pixel acc {:.3}",
            ratio(t[0], t[1]),
            ratio(t[2], t[3])
        )
    }

    fn curves(&self) -> CurveSpec {
        CurveSpec {
            series: vec![
                ("train loss", "train_loss"),
                ("train acc", "train_acc"),
                ("test acc", "test_acc"),
                ("test mIoU", "test_miou"),
            ],
            ylabel: "",
            log_y: false,
        }
    }
}

/// A [`BatchSource`] that calls `hook(epoch)` before handing out each epoch's batches —
/// how a data set with per-epoch random crops (VOC's `set_epoch`) learns the epoch.
pub struct EpochHooked<'a, S: BatchSource> {
    inner: &'a S,
    hook: Box<dyn Fn(u64) + 'a>,
}

impl<'a, S: BatchSource> EpochHooked<'a, S> {
    /// Wraps `inner`; `hook` runs at the start of every epoch.
    pub fn new(inner: &'a S, hook: impl Fn(u64) + 'a) -> Self {
        EpochHooked {
            inner,
            hook: Box::new(hook),
        }
    }
}

impl<S: BatchSource> BatchSource for EpochHooked<'_, S> {
    fn batches_per_epoch(&self) -> usize {
        self.inner.batches_per_epoch()
    }

    fn epoch(&self, epoch: u64) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        (self.hook)(epoch);
        self.inner.epoch(epoch)
    }

    fn state_words(&self) -> Vec<u64> {
        self.inner.state_words()
    }

    fn load_state_words(&self, words: &[u64]) -> Result<()> {
        self.inner.load_state_words(words)
    }
}
