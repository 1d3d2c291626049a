//! Image classification (D2L 3.6's `train_ch3`, 6.6's `train_ch6`): softmax cross-entropy
//! (or any batch-mean loss) against class labels; training loss and accuracy per epoch,
//! test accuracy and test loss after it.

use super::{
    correct_stat, ratio, scaled_stat, Batch, CurveSpec, Measured, Stat, Step, TaskInfo, TrainTask,
};
use crate::trainer::LossFn;
use d2l_nn::Module;
use d2l_tensor::{Result, Tensor};

/// Classification of `net`'s outputs (logits, or predicted labels) with a batch-mean
/// `loss`.
pub struct ClassificationTask<'a> {
    net: &'a dyn Module,
    loss: LossFn,
}

impl<'a> ClassificationTask<'a> {
    /// A task for `net` and a batch-mean loss.
    pub fn new(net: &'a dyn Module, loss: LossFn) -> Self {
        ClassificationTask { net, loss }
    }
}

impl ClassificationTask<'_> {
    /// The batch-mean loss and the batch's sums: loss sum, correct, examples.
    fn loss_and_sums(&self, batch: &Batch) -> Result<(Tensor, Vec<Stat>)> {
        let y_hat = self.net.forward(&batch.x)?;
        let l = (self.loss)(&y_hat, &batch.y)?;
        let n = batch.size as f64;
        let sums = vec![
            scaled_stat(&l, n)?,
            correct_stat(&y_hat, &batch.y)?,
            Stat::Host(n),
        ];
        Ok((l, sums))
    }
}

impl TrainTask for ClassificationTask<'_> {
    fn info(&self) -> TaskInfo {
        TaskInfo {
            kind: "classification",
            // loss sum, correct, examples
            stat_counts: (3, 3),
            columns: &["train_loss", "train_acc", "test_acc", "test_loss"],
        }
    }

    fn model(&self) -> &dyn Module {
        self.net
    }

    fn train_step(&self, batch: &Batch) -> Result<Step> {
        self.loss_and_sums(batch).map(Step::from)
    }

    fn eval_step(&self, batch: &Batch) -> Result<Vec<Stat>> {
        Ok(self.loss_and_sums(batch)?.1)
    }

    fn measure(&self, t: &[f64], e: Option<&[f64]>, _secs: f64) -> Measured {
        let train_loss = ratio(t[0], t[2]);
        let train_acc = Some(ratio(t[1], t[2]));
        let test_acc = e.map(|e| ratio(e[1], e[2]));
        let test_loss = e.map(|e| ratio(e[0], e[2]));
        Measured {
            train_loss,
            train_acc,
            test_acc,
            test_loss,
            columns: vec![Some(train_loss), train_acc, test_acc, test_loss],
        }
    }

    fn progress(&self, t: &[f64]) -> String {
        format!("loss {:.4} acc {:.3}", ratio(t[0], t[2]), ratio(t[1], t[2]))
    }

    fn curves(&self) -> CurveSpec {
        CurveSpec {
            series: vec![
                ("train loss", "train_loss"),
                ("train acc", "train_acc"),
                ("test acc", "test_acc"),
            ],
            ylabel: "",
            log_y: false,
        }
    }
}
