//! The training loop (D2L 3.6's `train_epoch_ch3` / `train_ch3`, 6.6's `train_ch6`).
//!
//! A [`Trainer`] runs epochs of mini-batch training with any [`Module`], loss and
//! [`Optimizer`]: per batch `zero_grad → forward → loss → backward → (clip) → step`,
//! accumulating the loss, the correct predictions and the example count
//! ([`Accumulator`]); after each epoch it evaluates the test set in evaluation mode
//! without gradients (accuracy for classification, loss for regression), measures
//! examples per second, calls the user's hooks, and — with a [`RunDir`] — appends
//! `metrics.csv`, redraws `curves.png`/`curves.svg` and saves `model.safetensors`; at the
//! end it writes `summary.json`.
//!
//! With `config.device` set to a GPU the model is moved there before the first epoch
//! and each batch after the loader gives it (the loaders stay on the CPU); the summary
//! records the device.
//!
//! A non-finite loss stops training before the parameters are updated, with an error that
//! names the epoch and step; the run folder keeps the checkpoint of the last complete
//! epoch. The first Ctrl-C finishes the current batch, saves, and returns the summary
//! with `stopped_early = Some("interrupted")`; a second one exits at once.
//!
//! ```no_run
//! use d2l_nn::layers::{Flatten, Linear};
//! use d2l_nn::optim::Sgd;
//! use d2l_nn::{Module, Sequential};
//! use d2l_train::trainer::{cross_entropy_loss, TrainConfig, Trainer};
//! # fn main() -> d2l_tensor::Result<()> {
//! let (train, test) = d2l_data::load_data_shapes(2000, 500, 256, None, 0)
//!     .map_err(d2l_train::metrics::data_error)?;
//! let net = Sequential::new().add(Flatten::new()).add(Linear::new(784, 10)?);
//! let mut opt = Sgd::new(net.parameters(), 0.1)?;
//! let config = TrainConfig { epochs: 10, ..Default::default() };
//! let summary = Trainer::new(&net, cross_entropy_loss(), &mut opt, config)
//!     .fit(&train, Some(&test))?;
//! println!("test acc {:.3}", summary.test_acc.unwrap());
//! # Ok(()) }
//! ```

use crate::metrics::{accuracy, data_error, evaluate, Accumulator, Timer};
use crate::run_dir::RunDir;
use d2l_data::loader::DataLoader;
use d2l_nn::loss::{cross_entropy_simple, mse_loss as mse, Reduction};
use d2l_nn::optim::Optimizer;
use d2l_nn::Module;
use d2l_tensor::{Device, Error, Result, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::Instant;

/// What the model predicts, which decides the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Task {
    /// Class labels: train and test accuracy are measured (argmax of the outputs).
    #[default]
    Classification,
    /// Real values: no accuracy; the test set's loss is measured instead.
    Regression,
}

/// How a [`Trainer`] runs.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Number of passes over the training set.
    pub epochs: usize,
    /// Hides the progress bars and the per-epoch lines on stderr.
    pub quiet: bool,
    /// Classification (accuracy) or regression (test loss).
    pub task: Task,
    /// Where to write metrics, curves, checkpoints and the summary (`None`: nowhere).
    pub run_dir: Option<RunDir>,
    /// Clips the global gradient L2 norm to this before each step (D2L 9.5).
    pub max_grad_norm: Option<f64>,
    /// Stops with an error when a batch loss is NaN or infinite (default `true`).
    pub stop_on_nan: bool,
    /// Where to train: the model is moved there before the first epoch and each batch
    /// after the loader gives it (default: the CPU).
    pub device: Device,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            quiet: false,
            task: Task::Classification,
            run_dir: None,
            max_grad_norm: None,
            stop_on_nan: true,
            device: Device::Cpu,
        }
    }
}

/// The measurements of one epoch (one row of `metrics.csv`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochMetrics {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// Mean training loss per example over the epoch.
    pub train_loss: f64,
    /// Training accuracy over the epoch (classification).
    pub train_acc: Option<f64>,
    /// Test accuracy after the epoch (classification with a test set).
    pub test_acc: Option<f64>,
    /// Mean test loss after the epoch (with a test set).
    pub test_loss: Option<f64>,
    /// Training examples per second, counting only the training steps.
    pub examples_per_sec: f64,
    /// Wall-clock seconds of the epoch, evaluation included.
    pub seconds: f64,
}

/// What a whole run measured (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainSummary {
    /// Every epoch's metrics, in order.
    pub epochs: Vec<EpochMetrics>,
    /// The last epoch's training loss (NaN when no epoch ran).
    pub train_loss: f64,
    /// The last epoch's training accuracy.
    pub train_acc: Option<f64>,
    /// The last measured test accuracy.
    pub test_acc: Option<f64>,
    /// Training examples per second over the whole run (the book's `train_ch6` figure:
    /// examples / time spent in training steps).
    pub examples_per_sec: f64,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    /// Why training stopped before the last epoch (`"interrupted"` after Ctrl-C or
    /// [`StopHandle::stop`], or the non-finite-loss message), `None` when it completed.
    pub stopped_early: Option<String>,
    /// The device the run trained on (`"cpu"`, `"cuda:0"`, ...).
    pub device: String,
}

/// What an `on_batch` hook sees after each training step.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchEvent {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// The batch within the epoch, counted from 1.
    pub step: usize,
    /// Number of batches per epoch.
    pub steps_per_epoch: usize,
    /// The step over the whole run, counted from 1.
    pub global_step: usize,
    /// The batch's mean loss.
    pub loss: f64,
    /// Number of examples in the batch.
    pub batch_size: usize,
    /// Correct predictions in the batch (classification).
    pub correct: Option<f64>,
}

/// A loss for the trainer: `(y_hat, y) → mean loss over the batch` (a 1-element tensor).
pub type LossFn = Box<dyn Fn(&Tensor, &Tensor) -> Result<Tensor>>;

/// Softmax cross-entropy from logits against `i64` labels, averaged over the batch
/// (D2L 3.7's `nn.CrossEntropyLoss`).
pub fn cross_entropy_loss() -> LossFn {
    Box::new(cross_entropy_simple)
}

/// Mean squared error (D2L 3.3's `nn.MSELoss`), with `y` reshaped to the prediction's
/// shape first (so `[n]` targets work with `[n, 1]` outputs).
pub fn mse_loss() -> LossFn {
    Box::new(|y_hat, y| {
        let y = if y.shape() == y_hat.shape() {
            y.clone()
        } else {
            y.reshape(y_hat.shape())?
        };
        mse(y_hat, &y, Reduction::Mean)
    })
}

/// Set by the Ctrl-C handler; read (and cleared) by the trainers.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the process-wide Ctrl-C handler once: the first press asks running trainers
/// to stop after their current batch, a second one exits with status 130. If another
/// handler is already installed (by the program), it is left alone.
fn install_ctrlc() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                eprintln!("\ninterrupted twice; exiting now");
                std::process::exit(130);
            }
            eprintln!(
                "\ninterrupted: finishing the current batch and saving (Ctrl-C again to quit now)"
            );
        });
    });
}

/// Asks every running [`Trainer::fit`] to stop after its current batch, as Ctrl-C does
/// (for programs that install their own signal handling).
pub fn request_interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Stops one trainer after its current batch, from a hook or another thread.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Asks the trainer to finish the current batch, save and return (`"interrupted"`).
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

type BatchHook<'a> = Box<dyn FnMut(&BatchEvent) + 'a>;
type EpochHook<'a> = Box<dyn FnMut(&EpochMetrics) + 'a>;

/// Trains a model; see the module docs.
pub struct Trainer<'a> {
    net: &'a dyn Module,
    loss: LossFn,
    optimizer: &'a mut dyn Optimizer,
    config: TrainConfig,
    batch_hooks: Vec<BatchHook<'a>>,
    epoch_hooks: Vec<EpochHook<'a>>,
    stop: StopHandle,
}

fn fmt_opt(label: &str, v: Option<f64>) -> String {
    v.map(|v| format!(", {label} {v:.3}")).unwrap_or_default()
}

impl<'a> Trainer<'a> {
    /// A trainer for `net` with a mean-over-batch `loss` and an optimiser over its
    /// parameters.
    pub fn new(
        net: &'a dyn Module,
        loss: LossFn,
        optimizer: &'a mut dyn Optimizer,
        config: TrainConfig,
    ) -> Self {
        Trainer {
            net,
            loss,
            optimizer,
            config,
            batch_hooks: Vec::new(),
            epoch_hooks: Vec::new(),
            stop: StopHandle::default(),
        }
    }

    /// Adds a hook called after every training step.
    pub fn on_batch(mut self, f: impl FnMut(&BatchEvent) + 'a) -> Self {
        self.batch_hooks.push(Box::new(f));
        self
    }

    /// Adds a hook called after every epoch (after the test evaluation).
    pub fn on_epoch(mut self, f: impl FnMut(&EpochMetrics) + 'a) -> Self {
        self.epoch_hooks.push(Box::new(f));
        self
    }

    /// A handle that stops this trainer after its current batch (like Ctrl-C).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    fn stop_requested(&self) -> bool {
        self.stop.is_stopped() || INTERRUPTED.load(Ordering::SeqCst)
    }

    fn progress_bar(&self, epoch: usize, steps: usize) -> ProgressBar {
        if self.config.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(steps as u64);
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg} [{elapsed}<{eta}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("epoch {epoch}/{}", self.config.epochs));
        bar
    }

    /// Trains for `config.epochs` epochs on `train`, evaluating on `test` after each
    /// epoch, and returns the summary. Errors from the model, the loss, the optimiser,
    /// the data or the run folder stop training; a non-finite loss (with `stop_on_nan`)
    /// is an error naming the epoch and step.
    pub fn fit(&mut self, train: &DataLoader, test: Option<&DataLoader>) -> Result<TrainSummary> {
        install_ctrlc();
        d2l_tensor::alloc::tune();
        INTERRUPTED.store(false, Ordering::SeqCst);
        let device = self.config.device;
        crate::device::to_device(self.net, device)?;
        let started = Instant::now();
        let classification = self.config.task == Task::Classification;
        let steps = train.len();
        let params = self.net.parameters();
        let mut epochs: Vec<EpochMetrics> = Vec::new();
        let mut stopped_early = None;
        let mut train_time = Timer::new();
        let mut global_step = 0usize;
        let mut total_examples = 0.0f64;

        for epoch in 1..=self.config.epochs {
            let epoch_start = Instant::now();
            self.net.train();
            let bar = self.progress_bar(epoch, steps);
            let mut m = Accumulator::new(3); // loss sum, correct, examples
            let mut interrupted = false;
            let mut epoch_train_secs = 0.0;
            for (i, batch) in train.iter_epoch(epoch as u64 - 1).enumerate() {
                let step = i + 1;
                global_step += 1;
                let batch = batch.map_err(data_error)?;
                let n = batch.len() as f64;
                train_time.start();
                let (bx, by) = (batch.x.to(device)?, batch.y.to(device)?);
                self.optimizer.zero_grad();
                let y_hat = self.net.forward(&bx)?;
                let l = (self.loss)(&y_hat, &by)?;
                if l.numel() != 1 {
                    return Err(Error::InvalidArgument {
                        op: "Trainer::fit",
                        msg: format!(
                            "the loss must return the batch mean (one value), got shape {:?}",
                            l.shape()
                        ),
                    });
                }
                let lv = l.item_f64()?;
                if self.config.stop_on_nan && !lv.is_finite() {
                    bar.abandon();
                    let kept = match (&self.config.run_dir, epochs.last()) {
                        (Some(rd), Some(last)) => format!(
                            "; {} keeps the checkpoint from the end of epoch {}",
                            rd.file("model.safetensors").display(),
                            last.epoch
                        ),
                        (Some(_), None) => "; no checkpoint was saved (no epoch completed)".into(),
                        _ => String::new(),
                    };
                    let msg = format!(
                        "the loss became {lv} at epoch {epoch}, step {step} of {steps} (global step {global_step}); training stopped before updating the parameters (try a smaller learning rate){kept}"
                    );
                    if let Some(rd) = &self.config.run_dir {
                        let summary = self.summary(
                            &epochs,
                            &train_time,
                            total_examples,
                            started,
                            Some(msg.clone()),
                        );
                        let _ = rd.write_summary(&summary);
                    }
                    return Err(Error::InvalidArgument { op: "train", msg });
                }
                l.backward()?;
                if let Some(max) = self.config.max_grad_norm {
                    d2l_nn::clip::clip_grad_norm_(&params, max)?;
                }
                self.optimizer.step()?;
                crate::device::sync(device)?;
                epoch_train_secs += train_time.stop();
                let correct = if classification {
                    Some(accuracy(&y_hat, &by)?)
                } else {
                    None
                };
                m.add(&[lv * n, correct.unwrap_or(0.0), n]);
                let event = BatchEvent {
                    epoch,
                    step,
                    steps_per_epoch: steps,
                    global_step,
                    loss: lv,
                    batch_size: batch.len(),
                    correct,
                };
                for h in &mut self.batch_hooks {
                    h(&event);
                }
                bar.inc(1);
                if !bar.is_hidden() {
                    let speed = m.get(2) / epoch_train_secs.max(1e-9);
                    let acc = if classification {
                        format!(" acc {:.3}", m.get(1) / m.get(2))
                    } else {
                        String::new()
                    };
                    bar.set_message(format!(
                        "loss {:.4}{acc} {speed:.0} ex/s",
                        m.get(0) / m.get(2)
                    ));
                }
                if self.stop_requested() {
                    interrupted = true;
                    break;
                }
            }
            bar.finish_and_clear();
            let seen = m.get(2);
            total_examples += seen;
            if seen == 0.0 {
                // Interrupted before the first batch finished: nothing to record.
                stopped_early = Some("interrupted".to_string());
                break;
            }
            // Test evaluation (skipped for an interrupted, partial epoch).
            let (test_acc, test_loss) = match test {
                Some(t) if !interrupted => {
                    let ev = evaluate(self.net, t, Some(&*self.loss), classification)?;
                    (ev.accuracy, ev.loss)
                }
                _ => (None, None),
            };
            self.net.train();
            crate::device::sync(device)?;
            let metrics = EpochMetrics {
                epoch,
                train_loss: m.get(0) / seen,
                train_acc: classification.then(|| m.get(1) / seen),
                test_acc,
                test_loss,
                examples_per_sec: seen / epoch_train_secs.max(1e-9),
                seconds: epoch_start.elapsed().as_secs_f64(),
            };
            if !self.config.quiet {
                eprintln!(
                    "epoch {epoch}/{}: loss {:.4}{}{}{}, {:.1} examples/sec, {:.2}s{}",
                    self.config.epochs,
                    metrics.train_loss,
                    fmt_opt("train acc", metrics.train_acc),
                    fmt_opt("test acc", metrics.test_acc),
                    if classification {
                        String::new()
                    } else {
                        fmt_opt("test loss", metrics.test_loss)
                    },
                    metrics.examples_per_sec,
                    metrics.seconds,
                    if interrupted { " (interrupted)" } else { "" }
                );
            }
            epochs.push(metrics.clone());
            for h in &mut self.epoch_hooks {
                h(&metrics);
            }
            if let Some(rd) = &self.config.run_dir {
                rd.append_metrics(&metrics)?;
                rd.plot_curves(&epochs)?;
                rd.save_model(self.net)?;
            }
            if interrupted {
                stopped_early = Some("interrupted".to_string());
                break;
            }
        }
        if stopped_early.is_some() {
            if let Some(rd) = &self.config.run_dir {
                // The model as it is now (the last completed batch).
                rd.save_model(self.net)?;
            }
        }
        let summary = self.summary(&epochs, &train_time, total_examples, started, stopped_early);
        if let Some(rd) = &self.config.run_dir {
            rd.write_summary(&summary)?;
        }
        Ok(summary)
    }

    fn summary(
        &self,
        epochs: &[EpochMetrics],
        train_time: &Timer,
        examples: f64,
        started: Instant,
        stopped_early: Option<String>,
    ) -> TrainSummary {
        let last = epochs.last();
        TrainSummary {
            epochs: epochs.to_vec(),
            train_loss: last.map(|m| m.train_loss).unwrap_or(f64::NAN),
            train_acc: last.and_then(|m| m.train_acc),
            test_acc: epochs.iter().rev().find_map(|m| m.test_acc),
            examples_per_sec: if train_time.sum() > 0.0 {
                examples / train_time.sum()
            } else {
                0.0
            },
            seconds: started.elapsed().as_secs_f64(),
            stopped_early,
            device: self.config.device.to_string(),
        }
    }
}
