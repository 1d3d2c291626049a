//! Tasks: the small per-problem part of training (burn's `TrainStep`/`ValidStep`, a
//! Lightning `LightningModule`'s `training_step`/`validation_step`).
//!
//! A [`TrainTask`] says how to run a training step and an evaluation step on one batch
//! and what its metrics are; [`crate::trainer::Trainer::fit_source`] owns everything else —
//! epochs, the learning-rate schedule, clipping, the non-finite-loss stop, Ctrl-C, device
//! moves, progress bars, timing, checkpoints and the run folder.
//!
//! | task | file | metrics |
//! |---|---|---|
//! | image classification | [`classification`] | loss, train/test accuracy, test loss |
//! | regression | [`regression`] | loss, test loss |
//! | language model (8.5) | [`language_model`] | perplexity; a `predict_ch8` sample every 10 epochs |
//! | detection (TinySSD, 13.7) | [`detection`] | class error, bbox MAE, anchor-labelling share |
//! | segmentation (FCN, 13.11) | [`segmentation`] | loss, pixel accuracy, mean IoU |
//!
//! Steps report their measurements as [`Stat`]s: sums over the batch, either a host
//! number or a 0-d tensor on the model's device. The loop adds device tensors up on the
//! device and reads them once per epoch (and when the progress bar redraws, a few times a
//! second at most), so a GPU is not synchronised every step (D2L 5.6). On the CPU a
//! tensor stat is read at once, which costs nothing.
//!
//! Batches come from a [`BatchSource`]: a [`DataLoader`] (any `(x, y)` data set) or a
//! [`SeqSource`] (a [`SeqDataLoader`] of token windows). A source's random state is part
//! of the checkpoint, so a resumed run sees the same batches.

pub mod classification;
pub mod detection;
pub mod language_model;
pub mod rcnn;
pub mod regression;
pub mod segmentation;

use crate::metrics::data_error;
use crate::trainer::EpochMetrics;
use d2l_data::loader::DataLoader;
use d2l_data::seq::SeqDataLoader;
use d2l_nn::Module;
use d2l_tensor::{no_grad, DType, Device, Error, Generator, Result, Tensor};
use std::cell::RefCell;

/// One mini-batch on its way to the model: inputs, targets, and its size in the task's
/// speed unit (examples; tokens for a language model).
#[derive(Debug, Clone)]
pub struct Batch {
    /// Inputs.
    pub x: Tensor,
    /// Targets.
    pub y: Tensor,
    /// Examples (or tokens) in the batch, for weighting and speed.
    pub size: usize,
}

impl Batch {
    /// The batch moved to `device` (the same tensors when already there).
    pub fn to(&self, device: Device) -> Result<Batch> {
        Ok(Batch {
            x: self.x.to(device)?,
            y: self.y.to(device)?,
            size: self.size,
        })
    }
}

/// A sum over one batch: a host number, or a 0-d tensor on the model's device that the
/// loop adds up there.
#[derive(Debug, Clone)]
pub enum Stat {
    /// A number already on the host (a count the task knows).
    Host(f64),
    /// A 0-d tensor (any float or integer dtype) on the model's device.
    Device(Tensor),
}

impl Stat {
    /// A tensor stat, detached from the graph.
    pub fn tensor(t: &Tensor) -> Stat {
        Stat::Device(t.detach())
    }
}

/// What a training step returns: the loss to differentiate (a 1-element batch mean) and
/// the step's sums (always the same number, [`TaskInfo::stat_counts`]).
#[derive(Debug, Clone)]
pub struct Step {
    /// The mean loss over the batch; the loop calls `backward` on it.
    pub loss: Tensor,
    /// The batch's sums.
    pub stats: Vec<Stat>,
}

impl From<(Tensor, Vec<Stat>)> for Step {
    /// The step of a task that computes its batch-mean loss and its sums together.
    fn from((loss, stats): (Tensor, Vec<Stat>)) -> Self {
        Step { loss, stats }
    }
}

/// One epoch's measurements as a task computes them from its summed stats.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Measured {
    /// Mean training loss per example (per token for a language model).
    pub train_loss: f64,
    /// Training accuracy, when the task has one.
    pub train_acc: Option<f64>,
    /// Evaluation accuracy, when the task has one and there was an evaluation.
    pub test_acc: Option<f64>,
    /// Mean evaluation loss, when there was an evaluation.
    pub test_loss: Option<f64>,
    /// The task's `metrics.csv` columns, in [`TaskInfo::columns`] order (`None`: an
    /// empty cell).
    pub columns: Vec<Option<f64>>,
}

impl Measured {
    /// The measurements of a task without accuracies: its losses and its columns.
    pub fn losses(train_loss: f64, test_loss: Option<f64>, columns: Vec<Option<f64>>) -> Self {
        Measured {
            train_loss,
            train_acc: None,
            test_acc: None,
            test_loss,
            columns,
        }
    }
}

/// What `curves.png` shows for a task.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveSpec {
    /// (legend label, column name) of every line.
    pub series: Vec<(&'static str, &'static str)>,
    /// The y-axis label.
    pub ylabel: &'static str,
    /// A logarithmic y axis when every value is positive (losses without accuracies, as
    /// D2L 4.4–4.5 draw them).
    pub log_y: bool,
}

/// What describes a task to the trainer (see [`TrainTask::info`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskInfo {
    /// The task's name (`"classification"`, `"language-model"`, …), recorded in the
    /// summary and the checkpoint.
    pub kind: &'static str,
    /// How many sums [`TrainTask::train_step`] and [`TrainTask::eval_step`] return.
    pub stat_counts: (usize, usize),
    /// The `metrics.csv` columns after `epoch` and before the speed and time columns.
    pub columns: &'static [&'static str],
}

/// The per-task part of training; see the module docs.
///
/// Every method takes `&self`: a task that carries state between batches (a language
/// model's recurrent state) keeps it in a `RefCell`.
pub trait TrainTask {
    /// The task's name, sum counts and metric columns.
    fn info(&self) -> TaskInfo;

    /// The model being trained.
    fn model(&self) -> &dyn Module;

    /// Called before each pass over a source: `training` at the start of every epoch's
    /// training, not before an evaluation (a language model resets its state here).
    fn begin_pass(&self, _training: bool) -> Result<()> {
        Ok(())
    }

    /// Forward pass and loss of one training batch (already on the model's device).
    fn train_step(&self, batch: &Batch) -> Result<Step>;

    /// The sums of one evaluation batch; runs in evaluation mode without gradients.
    fn eval_step(&self, batch: &Batch) -> Result<Vec<Stat>>;

    /// The epoch's measurements from the summed training stats, the summed evaluation
    /// stats (when there was an evaluation) and the seconds spent in training steps.
    fn measure(&self, train: &[f64], eval: Option<&[f64]>, train_secs: f64) -> Measured;

    /// A short progress text from the running sums of the epoch so far.
    fn progress(&self, train: &[f64]) -> String;

    /// The line printed after epoch `m.epoch` of `epochs` (`None`: no line this epoch).
    /// The default shows the losses, accuracies, speed and time; a language model prints a
    /// sample every 10 epochs instead.
    fn epoch_line(&self, m: &EpochMetrics, epochs: usize) -> Result<Option<String>> {
        Ok(Some(crate::trainer::epoch_line(
            m,
            epochs,
            self.speed_unit(),
        )))
    }

    /// Extra fields for `summary.json` at the end of a run (a language model's samples).
    fn finish(&self) -> Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }

    /// What `curves.png` draws.
    fn curves(&self) -> CurveSpec;

    /// The unit of [`Batch::size`] (`"examples"`, `"tokens"`), which names the speed
    /// column `{unit}_per_sec`.
    fn speed_unit(&self) -> &'static str {
        "examples"
    }

    /// State the task carries between batches (a language model's recurrent state), for a
    /// checkpoint taken in the middle of an epoch.
    fn state_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(Vec::new())
    }

    /// Restores [`TrainTask::state_tensors`].
    fn load_state_tensors(&self, _entries: &[(String, Tensor)]) -> Result<()> {
        Ok(())
    }
}

/// Where batches come from. Its random state (anything that decides the coming epochs'
/// batches) is saved in checkpoints.
pub trait BatchSource {
    /// Batches per epoch.
    fn batches_per_epoch(&self) -> usize;

    /// The batches of epoch `epoch` (counted from 0).
    fn epoch(&self, epoch: u64) -> Box<dyn Iterator<Item = Result<Batch>> + '_>;

    /// The random state for the checkpoint (empty when the order depends only on a seed
    /// and the epoch number).
    fn state_words(&self) -> Vec<u64> {
        Vec::new()
    }

    /// Restores [`BatchSource::state_words`].
    fn load_state_words(&self, words: &[u64]) -> Result<()> {
        if words.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument {
                op: "BatchSource",
                msg: format!(
                    "this source keeps no random state, got {} words",
                    words.len()
                ),
            })
        }
    }
}

impl BatchSource for DataLoader {
    fn batches_per_epoch(&self) -> usize {
        self.len()
    }

    fn epoch(&self, epoch: u64) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        Box::new(self.iter_epoch(epoch).map(|b| {
            let b = b.map_err(data_error)?;
            let size = b.len();
            Ok(Batch {
                x: b.x,
                y: b.y,
                size,
            })
        }))
    }
}

/// A [`SeqDataLoader`] as a [`BatchSource`]: each epoch draws its offset (and shuffle)
/// from the loader's generator, which the checkpoint keeps. A batch's size is its token
/// count.
#[derive(Debug)]
pub struct SeqSource(RefCell<SeqDataLoader>);

impl SeqSource {
    /// Wraps a loader.
    pub fn new(loader: SeqDataLoader) -> SeqSource {
        SeqSource(RefCell::new(loader))
    }

    /// The loader back (with its generator where the run left it).
    pub fn into_inner(self) -> SeqDataLoader {
        self.0.into_inner()
    }

    /// Whether the loader samples randomly (a fresh state per batch).
    pub fn use_random_iter(&self) -> bool {
        self.0.borrow().use_random_iter()
    }
}

impl BatchSource for SeqSource {
    fn batches_per_epoch(&self) -> usize {
        let l = self.0.borrow();
        // Sequential partitioning can lose one batch to the random offset; the bar's
        // length is the upper bound.
        (l.corpus().len().saturating_sub(1)) / (l.batch_size() * l.num_steps())
    }

    fn epoch(&self, _epoch: u64) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        let it = self.0.borrow_mut().iter();
        Box::new(it.map(|(x, y)| {
            let size = y.numel();
            Ok(Batch { x, y, size })
        }))
    }

    fn state_words(&self) -> Vec<u64> {
        self.0.borrow().generator().to_words().to_vec()
    }

    fn load_state_words(&self, words: &[u64]) -> Result<()> {
        let w: [u64; 6] = words.try_into().map_err(|_| Error::InvalidArgument {
            op: "SeqSource",
            msg: format!("expected 6 generator words, got {}", words.len()),
        })?;
        self.0.borrow_mut().set_generator(Generator::from_words(w)?);
        Ok(())
    }
}

/// Correct predictions of a batch (D2L 3.6's `accuracy`) as a stat: counted on the host
/// for CPU tensors (exactly [`crate::metrics::accuracy`]), on the device otherwise.
pub fn correct_stat(y_hat: &Tensor, y: &Tensor) -> Result<Stat> {
    if y_hat.device().is_cpu() {
        return Ok(Stat::Host(crate::metrics::accuracy(y_hat, y)?));
    }
    no_grad(|| {
        let pred = if y_hat.rank() == 2 && y_hat.shape()[1] > 1 {
            y_hat.argmax(1, false)?
        } else {
            y_hat.reshape([-1])?.to_dtype(y.dtype())?
        };
        let y = y.reshape([-1])?;
        let pred = if pred.dtype() == y.dtype() {
            pred
        } else {
            pred.to_dtype(y.dtype())?
        };
        let eq = pred.compare(&y, d2l_tensor::CmpOp::Eq)?;
        Ok(Stat::Device(eq.to_dtype(DType::F64)?.sum_all()?))
    })
}

/// A 0-d loss times `n` as a stat (a batch mean back to a batch sum).
pub fn scaled_stat(loss: &Tensor, n: f64) -> Result<Stat> {
    no_grad(|| {
        Ok(Stat::Device(
            loss.detach().to_dtype(DType::F64)?.mul_scalar(n)?,
        ))
    })
}

/// `a / b`, or NaN when `b` is 0 (no example seen).
pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}
