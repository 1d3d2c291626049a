//! Regression (D2L 3.3, 4.4, 4.5): a batch-mean loss (squared error) against real
//! targets; training loss per epoch and the test loss after it, drawn on a log scale.

use super::{ratio, scaled_stat, Batch, CurveSpec, Measured, Stat, Step, TaskInfo, TrainTask};
use crate::trainer::LossFn;
use d2l_nn::Module;
use d2l_tensor::{Result, Tensor};

/// Regression of `net`'s outputs with a batch-mean `loss`.
pub struct RegressionTask<'a> {
    net: &'a dyn Module,
    loss: LossFn,
}

impl<'a> RegressionTask<'a> {
    /// A task for `net` and a batch-mean loss.
    pub fn new(net: &'a dyn Module, loss: LossFn) -> Self {
        RegressionTask { net, loss }
    }
}

impl RegressionTask<'_> {
    /// The batch-mean loss and the batch's sums: loss sum, examples.
    fn loss_and_sums(&self, batch: &Batch) -> Result<(Tensor, Vec<Stat>)> {
        let y_hat = self.net.forward(&batch.x)?;
        let l = (self.loss)(&y_hat, &batch.y)?;
        let n = batch.size as f64;
        let sums = vec![scaled_stat(&l, n)?, Stat::Host(n)];
        Ok((l, sums))
    }
}

impl TrainTask for RegressionTask<'_> {
    fn info(&self) -> TaskInfo {
        TaskInfo {
            kind: "regression",
            // loss sum, examples
            stat_counts: (2, 2),
            columns: &["train_loss", "test_loss"],
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
        let train_loss = ratio(t[0], t[1]);
        let test_loss = e.map(|e| ratio(e[0], e[1]));
        Measured::losses(train_loss, test_loss, vec![Some(train_loss), test_loss])
    }

    fn progress(&self, t: &[f64]) -> String {
        format!("loss {:.4}", ratio(t[0], t[1]))
    }

    fn curves(&self) -> CurveSpec {
        CurveSpec {
            series: vec![("train loss", "train_loss"), ("test loss", "test_loss")],
            ylabel: "loss",
            log_y: true,
        }
    }
}
