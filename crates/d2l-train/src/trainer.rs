// One file, over 1,000 lines, on purpose: the one training loop and its distributed steps
// (sharding, bucketed allreduce, checks); the tasks, checkpoints and run folders it drives
// live in their own files (`tasks/`, `checkpoint.rs`, `run_dir.rs`, `dist.rs`).
//! The training loop (D2L 3.6's `train_epoch_ch3` / `train_ch3`, 6.6's `train_ch6`, 8.5's
//! `train_ch8`, 13.7's TinySSD loop): one loop for every task.
//!
//! A [`Trainer`] runs epochs of mini-batch training of a [`TrainTask`] with an
//! [`Optimizer`]: per batch `zero_grad → task step (forward, loss) → backward → (clip) →
//! step`, adding up the step's sums; after each epoch it evaluates the evaluation source
//! in evaluation mode without gradients, measures the speed, steps the learning-rate
//! schedule, calls the hooks, and — with a [`RunDir`] — writes a checkpoint, `metrics.csv`,
//! `curves.png`/`curves.svg` and `model.safetensors`; at the end it writes `summary.json`.
//! The task ([`crate::tasks`]) only says how to run a step and what its metrics are.
//!
//! **Devices.** With `config.device` set to a GPU the model is moved there before the
//! first epoch and each batch after the loader gives it (the loaders stay on the CPU).
//! Sums stay on the device and are read once per epoch and when the progress bar redraws
//! (at most four times a second), so the GPU is not synchronised every step.
//!
//! **Non-finite losses.** On the CPU a NaN or infinite loss stops training before the
//! parameters are updated, with an error that names the epoch and step. On a GPU, where
//! reading the loss every step would synchronise, the check runs on the device and is read
//! at the next redraw or at the end of the epoch; the error then names the steps between
//! the last check and this one (the updates of those steps went in; the run folder keeps
//! the checkpoint of the last complete epoch, which is what to resume from).
//!
//! **Interruptions and resuming.** The first Ctrl-C finishes the current batch, writes a
//! checkpoint of the partial epoch and returns the summary with
//! `stopped_early = Some("interrupted")`; a second one exits at once with status 130. With
//! `config.resume` the loop continues from the run folder's checkpoint ([`crate::checkpoint`]):
//! weights, buffers, optimiser state, schedule, random generators, epoch, step and the
//! metrics so far, so that an interrupted run ends with the weights an uninterrupted one
//! would have (on the CPU with the same threads).
//!
//! **Several processes.** With `config.distributed` the loop trains data-parallel over
//! the ranks of a communicator ([`crate::dist`]): each rank trains on its rows of every
//! global batch, gradients are summed over the ranks before clipping and the step, and
//! the epoch's sums are added up over the ranks.
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

use crate::checkpoint::{tensor_words, words_tensor, Checkpoint, CheckpointInfo};
use crate::dist::{self, Distributed};
use crate::metrics::Timer;
use crate::run_dir::RunDir;
use crate::tasks::classification::ClassificationTask;
use crate::tasks::regression::RegressionTask;
use crate::tasks::{BatchSource, Stat, TrainTask};
use d2l_data::loader::DataLoader;
use d2l_nn::loss::{cross_entropy, mse_loss as mse};
use d2l_nn::optim::Optimizer;
use d2l_nn::schedule::LrScheduler;
use d2l_nn::Module;
use d2l_tensor::{no_grad, CmpOp, DType, Device, Error, Result, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

/// What the model predicts, for [`Trainer::new`] (other tasks come with
/// [`Trainer::for_task`]).
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
    /// Number of passes over the training set (the total, a resumed run included).
    pub epochs: usize,
    /// Hides the progress bars and the per-epoch lines on stderr.
    pub quiet: bool,
    /// Classification or regression, for [`Trainer::new`] (ignored by [`Trainer::for_task`]).
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
    /// Continue from the run folder's `checkpoint.safetensors` (an error when there is
    /// none). In a distributed run rank 0 reads it and sends it to the others.
    pub resume: bool,
    /// Data-parallel training over the processes of a communicator ([`crate::dist`]):
    /// the batches are global batches split over the ranks; only rank 0 should have a
    /// `run_dir` and print (`None`: this process alone).
    pub distributed: Option<Distributed>,
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
            resume: false,
            distributed: None,
        }
    }
}

/// The measurements of one epoch (one row of `metrics.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// The epoch, counted from 1.
    pub epoch: usize,
    /// Mean training loss per example (per token for a language model) over the epoch.
    pub train_loss: f64,
    /// Training accuracy over the epoch (tasks with an accuracy).
    pub train_acc: Option<f64>,
    /// Evaluation accuracy after the epoch (tasks with an accuracy and an evaluation set).
    pub test_acc: Option<f64>,
    /// Mean evaluation loss after the epoch (with an evaluation set).
    pub test_loss: Option<f64>,
    /// Training examples (tokens for a language model) per second, counting only the
    /// training steps.
    pub examples_per_sec: f64,
    /// Wall-clock seconds of the epoch, evaluation included.
    pub seconds: f64,
    /// The task's `metrics.csv` columns by name (`None`: an empty cell).
    pub columns: Vec<(String, Option<f64>)>,
}

impl EpochMetrics {
    /// The value of the task column `name` (`None` when empty or absent).
    pub fn column(&self, name: &str) -> Option<f64> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| *v)
    }
}

/// What a whole run measured (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainSummary {
    /// The task's kind (`"classification"`, `"language-model"`, …).
    pub task: String,
    /// Every epoch's metrics, in order (a resumed run's earlier epochs included).
    pub epochs: Vec<EpochMetrics>,
    /// The last epoch's training loss (NaN when no epoch ran).
    pub train_loss: f64,
    /// The last epoch's training accuracy.
    pub train_acc: Option<f64>,
    /// The last measured test accuracy.
    pub test_acc: Option<f64>,
    /// Training examples (tokens) per second over the whole run (the book's `train_ch6`
    /// figure: examples / time spent in training steps).
    pub examples_per_sec: f64,
    /// Wall-clock seconds of this process's part of the run.
    pub seconds: f64,
    /// Why training stopped before the last epoch (`"interrupted"` after Ctrl-C or
    /// [`StopHandle::stop`], or the non-finite-loss message), `None` when it completed.
    pub stopped_early: Option<String>,
    /// The device the run trained on (`"cpu"`, `"cuda:0"`, ...).
    pub device: String,
    /// The epoch a resumed run continued after (`None` for a fresh run).
    pub resumed_after_epoch: Option<usize>,
    /// Task-specific results (a language model's final samples).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
    /// A distributed run's ranks and their final state checksums.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distributed: Option<DistSummary>,
}

/// What a distributed run reports (`summary.json`'s `distributed`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistSummary {
    /// Number of ranks (processes).
    pub ranks: usize,
    /// The communication back end (`"mpi"`, `"single"`).
    pub backend: String,
    /// Every rank's checksum of its final parameters and buffers, in rank order (hex):
    /// equal when the ranks ended in the same state.
    pub state_checksums: Vec<String>,
    /// Seconds rank 0 spent waiting for gradient allreduces over the run's steps here.
    pub comm_wait_secs: f64,
    /// Seconds rank 0 spent in training steps here (the allreduce waits included).
    pub step_secs: f64,
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
    /// The batch's mean loss (read from the device only when a batch hook is installed).
    pub loss: f64,
    /// Number of examples in the batch.
    pub batch_size: usize,
}

/// A loss for the trainer: `(y_hat, y) → mean loss over the batch` (a 1-element tensor).
pub type LossFn = Box<dyn Fn(&Tensor, &Tensor) -> Result<Tensor>>;

/// Softmax cross-entropy from logits against `i64` labels, averaged over the batch
/// (D2L 3.7's `nn.CrossEntropyLoss`).
pub fn cross_entropy_loss() -> LossFn {
    Box::new(cross_entropy)
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
        mse(y_hat, &y)
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

/// Trains a task; see the module docs.
pub struct Trainer<'a> {
    task: Box<dyn TrainTask + 'a>,
    optimizer: &'a mut dyn Optimizer,
    scheduler: Option<Box<dyn LrScheduler + 'a>>,
    config: TrainConfig,
    batch_hooks: Vec<BatchHook<'a>>,
    epoch_hooks: Vec<EpochHook<'a>>,
    stop: StopHandle,
}

fn fmt_opt(label: &str, v: Option<f64>) -> String {
    v.map(|v| format!(", {label} {v:.3}")).unwrap_or_default()
}

/// The standard line after an epoch: losses, accuracies, speed and time.
pub fn epoch_line(m: &EpochMetrics, epochs: usize, unit: &str) -> String {
    format!(
        "epoch {}/{epochs}: loss {:.4}{}{}{}, {:.1} {unit}/sec, {:.2}s",
        m.epoch,
        m.train_loss,
        fmt_opt("train acc", m.train_acc),
        fmt_opt("test acc", m.test_acc),
        if m.train_acc.is_some() {
            String::new()
        } else {
            fmt_opt("test loss", m.test_loss)
        },
        m.examples_per_sec,
        m.seconds,
    )
}

/// Running sums of a pass: host numbers, and device tensors added up on the device.
struct Sums {
    host: Vec<f64>,
    device: Vec<Option<Tensor>>,
}

impl Sums {
    fn new(n: usize) -> Sums {
        Sums {
            host: vec![0.0; n],
            device: vec![None; n],
        }
    }

    fn from_host(values: Vec<f64>) -> Sums {
        let n = values.len();
        Sums {
            host: values,
            device: vec![None; n],
        }
    }

    fn add(&mut self, stats: Vec<Stat>) -> Result<()> {
        if stats.len() != self.host.len() {
            return Err(Error::InvalidArgument {
                op: "Trainer::fit",
                msg: format!(
                    "the task returned {} sums for a step, expected {}",
                    stats.len(),
                    self.host.len()
                ),
            });
        }
        for (i, s) in stats.into_iter().enumerate() {
            match s {
                Stat::Host(v) => self.host[i] += v,
                // A CPU tensor is read at once: exactly the host sum, no sync to save.
                Stat::Device(t) if t.device().is_cpu() => self.host[i] += t.item_f64()?,
                Stat::Device(t) => {
                    let t = no_grad(|| t.to_dtype(DType::F64))?;
                    self.device[i] = Some(match self.device[i].take() {
                        None => t,
                        Some(acc) => no_grad(|| acc.add(&t))?,
                    });
                }
            }
        }
        Ok(())
    }

    /// The sums (reads the device ones: a synchronisation on a GPU).
    fn read(&self) -> Result<Vec<f64>> {
        self.host
            .iter()
            .zip(&self.device)
            .map(|(h, d)| {
                Ok(match d {
                    Some(t) => h + t.item_f64()?,
                    None => *h,
                })
            })
            .collect()
    }
}

/// Where the loop starts: from scratch or from a checkpoint.
struct Start {
    epochs: Vec<EpochMetrics>,
    first_epoch: usize,
    skip_steps: usize,
    /// A partial epoch's sums, training seconds and examples.
    partial: Option<(Vec<f64>, f64, f64)>,
    global_step: usize,
    train_secs: f64,
    examples: f64,
    resumed_after: Option<usize>,
    /// The task's between-batch state at a mid-epoch checkpoint, restored after the
    /// epoch's `begin_pass`.
    task_state: Vec<(String, Tensor)>,
}

impl<'a> Trainer<'a> {
    /// A trainer for `net` with a mean-over-batch `loss` and an optimiser over its
    /// parameters; `config.task` picks classification or regression.
    pub fn new(
        net: &'a dyn Module,
        loss: LossFn,
        optimizer: &'a mut dyn Optimizer,
        config: TrainConfig,
    ) -> Self {
        let task: Box<dyn TrainTask + 'a> = match config.task {
            Task::Classification => Box::new(ClassificationTask::new(net, loss)),
            Task::Regression => Box::new(RegressionTask::new(net, loss)),
        };
        Self::for_task(task, optimizer, config)
    }

    /// A trainer for any task ([`crate::tasks`]).
    pub fn for_task(
        task: Box<dyn TrainTask + 'a>,
        optimizer: &'a mut dyn Optimizer,
        config: TrainConfig,
    ) -> Self {
        Trainer {
            task,
            optimizer,
            scheduler: None,
            config,
            batch_hooks: Vec::new(),
            epoch_hooks: Vec::new(),
            stop: StopHandle::default(),
        }
    }

    /// Sets the learning rate from `scheduler` at the start of every epoch (epoch `e`,
    /// from 0, gets `lr_at(e)`); its position is part of the checkpoint.
    pub fn scheduler(mut self, scheduler: Box<dyn LrScheduler + 'a>) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    /// Adds a hook called after every training step.
    pub fn on_batch(mut self, f: impl FnMut(&BatchEvent) + 'a) -> Self {
        self.batch_hooks.push(Box::new(f));
        self
    }

    /// Adds a hook called after every epoch (after the evaluation).
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

    /// Trains on `train`, evaluating on `test` after each epoch; see
    /// [`Trainer::fit_source`].
    pub fn fit(&mut self, train: &DataLoader, test: Option<&DataLoader>) -> Result<TrainSummary> {
        self.fit_source(train, test.map(|t| t as &dyn BatchSource))
    }

    /// Trains for `config.epochs` epochs on `train`, evaluating on `eval` after each
    /// epoch, and returns the summary. Errors from the model, the task, the optimiser,
    /// the data or the run folder stop training; a non-finite loss (with `stop_on_nan`)
    /// is an error naming the epoch and step.
    pub fn fit_source(
        &mut self,
        train: &dyn BatchSource,
        eval: Option<&dyn BatchSource>,
    ) -> Result<TrainSummary> {
        install_ctrlc();
        d2l_tensor::alloc::tune();
        INTERRUPTED.store(false, Ordering::SeqCst);
        let device = self.config.device;
        crate::device::to_device(self.task.model(), device)?;
        let started = Instant::now();
        let params = self.task.model().parameters();
        let (n_train, n_eval) = self.task.info().stat_counts;
        let steps = train.batches_per_epoch();
        let dist = self.config.distributed.clone();
        let (rank, ranks) = dist
            .as_ref()
            .map_or((0, 1), |d| (d.comm.rank(), d.comm.size()));
        if let Some(d) = &dist {
            let key = format!(
                "{}|{}|{}|{steps}|{}",
                d.config_key,
                self.task.info().kind,
                crate::checkpoint::model_fingerprint(self.task.model()),
                self.config.epochs
            );
            dist::check_same_config(&d.comm, &key)?;
        }
        let mut st = self.start(train)?;
        if let Some(d) = &dist {
            // Every rank starts from rank 0's parameters and buffers.
            let state: Vec<Tensor> = self
                .task
                .model()
                .state_dict()
                .into_iter()
                .map(|(_, t)| t)
                .collect();
            dist::broadcast_tensors(&d.comm, &state)?;
        }
        let mut comm_wait = 0.0;
        let mut step_secs = 0.0;
        let grad_sync = dist
            .as_ref()
            .map(|d| std::rc::Rc::new(dist::GradSync::new(d.comm.clone(), params.clone())));
        let overlap = dist::overlap_enabled() && ranks > 1;
        let fail_at = fail_point();
        if let Some(s) = &self.scheduler {
            let e = s.last_epoch();
            s.apply(self.optimizer, e);
        }
        let mut stopped_early = None;
        let stall_at = stall_point();
        let mut epoch = st.first_epoch;
        while epoch <= self.config.epochs {
            let epoch_start = Instant::now();
            let model = self.task.model();
            model.train();
            self.task.begin_pass(true)?;
            let task_state = std::mem::take(&mut st.task_state);
            if !task_state.is_empty() {
                self.task.load_state_tensors(&task_state)?;
            }
            let source_words = train.state_words();
            let bar = self.progress_bar(epoch, steps);
            let (mut sums, mut epoch_secs, mut epoch_examples) = match st.partial.take() {
                // A distributed run's partial sums are over every rank: rank 0 carries them.
                Some((_, secs, examples)) if rank != 0 => (Sums::new(n_train), secs, examples),
                Some((values, secs, examples)) => (Sums::from_host(values), secs, examples),
                None => (Sums::new(n_train), 0.0, 0.0),
            };
            let secs_before = epoch_secs;
            let skip = std::mem::take(&mut st.skip_steps);
            bar.set_position(skip as u64);
            let mut timer = Timer::new();
            let mut interrupted = false;
            let mut done_steps = skip;
            let mut last_redraw = Instant::now();
            // Steps since the non-finite flag was last read (GPU only).
            let mut nonfinite: Option<Tensor> = None;
            let mut unchecked_from = st.global_step + 1;
            for (i, batch) in train.epoch(epoch as u64 - 1).enumerate() {
                if i < skip {
                    // Already trained before the interruption this run resumes from.
                    batch?;
                    continue;
                }
                let step = i + 1;
                st.global_step += 1;
                let batch = batch?;
                timer.start();
                // The global batch's size; this rank trains on its rows.
                let global_size = batch.size;
                let local = match &dist {
                    Some(_) => dist::shard(&batch, rank, ranks)?,
                    None => Some(batch),
                };
                self.optimizer.zero_grad();
                if let Some(gs) = &grad_sync {
                    gs.begin_step();
                }
                let mut local_nonfinite = 0.0f32;
                let mut stats = None;
                let mut hook_loss = f64::NAN;
                if let Some(batch) = local {
                    let batch = batch.to(device)?;
                    let out = self.task.train_step(&batch)?;
                    if out.loss.numel() != 1 {
                        return Err(Error::InvalidArgument {
                            op: "Trainer::fit",
                            msg: format!(
                                "the loss must return the batch mean (one value), got shape {:?}",
                                out.loss.shape()
                            ),
                        });
                    }
                    if self.config.stop_on_nan && dist.is_some() {
                        // Decided with the gradient sum, so that every rank stops together.
                        if !out.loss.item_f64()?.is_finite() {
                            local_nonfinite = 1.0;
                        }
                    } else if self.config.stop_on_nan {
                        if device.is_cpu() {
                            let lv = out.loss.item_f64()?;
                            if !lv.is_finite() {
                                bar.abandon();
                                let at = format!(
                                    "at epoch {epoch}, step {step} of {steps} (global step {})",
                                    st.global_step
                                );
                                return Err(self.nonfinite_error(lv, &at, &st, started));
                            }
                        } else {
                            // (l - l) != (l - l) exactly when l is NaN or infinite.
                            let flag = no_grad(|| -> Result<Tensor> {
                                let d = out.loss.detach().reshape([1])?;
                                let d = d.sub(&d)?;
                                d.compare(&d, CmpOp::Ne)?.to_dtype(DType::F64)
                            })?;
                            nonfinite = Some(match nonfinite.take() {
                                None => flag,
                                Some(acc) => no_grad(|| acc.add(&flag))?,
                            });
                        }
                    }
                    if let (Some(gs), true) = (&grad_sync, overlap) {
                        // Buckets start summing while the backward pass goes on.
                        d2l_tensor::set_grad_ready_hook(Some(dist::GradSync::hook(gs)));
                    }
                    let backward = if dist.is_some() && batch.size != global_size {
                        // This rank's share of the global batch's mean loss: the summed
                        // gradients are exactly the global batch's.
                        let w = batch.size as f64 / global_size as f64;
                        out.loss.mul_scalar(w).and_then(|l| l.backward())
                    } else {
                        out.loss.backward()
                    };
                    d2l_tensor::set_grad_ready_hook(None);
                    backward?;
                    if !self.batch_hooks.is_empty() {
                        hook_loss = out.loss.item_f64()?;
                    }
                    stats = Some(out.stats);
                }
                if fail_at == Some((rank, epoch, step)) {
                    return Err(Error::InvalidArgument {
                        op: "train",
                        msg: format!(
                            "D2L_TEST_FAIL_AT: failing on purpose at epoch {epoch}, step {step}"
                        ),
                    });
                }
                let mut dist_stop = false;
                if let Some(gs) = &grad_sync {
                    let stop = f32::from(self.stop_requested() as u8);
                    let (ctl, waited) = gs.finish(&[local_nonfinite, stop])?;
                    comm_wait += waited;
                    if ctl[0] > 0.0 {
                        bar.abandon();
                        let at = format!(
                            "on {} of {ranks} ranks at epoch {epoch}, step {step} of {steps} (global step {})",
                            ctl[0], st.global_step
                        );
                        let e = self.nonfinite_error(f64::NAN, &at, &st, started);
                        return Err(dist::shared_error(match e {
                            Error::InvalidArgument { msg, .. } => msg,
                            e => e.to_string(),
                        }));
                    }
                    dist_stop = ctl[1] > 0.0;
                }
                if let Some(max) = self.config.max_grad_norm {
                    d2l_nn::clip::clip_grad_norm_(&params, max)?;
                }
                self.optimizer.step()?;
                let secs = timer.stop();
                epoch_secs += secs;
                step_secs += secs;
                let size = global_size as f64;
                st.examples += size;
                epoch_examples += size;
                if let Some(stats) = stats {
                    sums.add(stats)?;
                }
                done_steps = step;
                if !self.batch_hooks.is_empty() {
                    let event = BatchEvent {
                        epoch,
                        step,
                        steps_per_epoch: steps,
                        global_step: st.global_step,
                        loss: hook_loss,
                        batch_size: global_size,
                    };
                    for h in &mut self.batch_hooks {
                        h(&event);
                    }
                }
                if stall_at == Some((epoch, step)) {
                    test_stall(epoch, step, dist.as_ref().map(|_| (rank, ranks)));
                }
                bar.inc(1);
                let redraw = last_redraw.elapsed() >= Duration::from_millis(250);
                if redraw {
                    last_redraw = Instant::now();
                    self.check_nonfinite(&mut nonfinite, &mut unchecked_from, &st, started, &bar)?;
                    if !bar.is_hidden() {
                        let s = sums.read()?;
                        let speed = epoch_examples / epoch_secs.max(1e-9);
                        bar.set_message(format!(
                            "{} {speed:.0} {}/s",
                            self.task.progress(&s),
                            short_unit(self.task.speed_unit())
                        ));
                    }
                }
                if dist_stop || (dist.is_none() && self.stop_requested()) {
                    interrupted = true;
                    break;
                }
            }
            let sync_start = Instant::now();
            crate::device::sync(device)?;
            epoch_secs += sync_start.elapsed().as_secs_f64();
            st.train_secs += epoch_secs - secs_before;
            self.check_nonfinite(&mut nonfinite, &mut unchecked_from, &st, started, &bar)?;
            bar.finish_and_clear();
            let mut train_sums = sums.read()?;
            if let Some(d) = &dist {
                d.comm
                    .allreduce_sum_f64(&mut train_sums)
                    .map_err(dist::comm_error)?;
            }
            if interrupted {
                stopped_early = Some("interrupted".to_string());
                if let Some(rd) = self.config.run_dir.clone() {
                    let ck = self.checkpoint(
                        epoch - 1,
                        done_steps,
                        &st,
                        Some((&train_sums, epoch_secs, epoch_examples)),
                        source_words,
                    )?;
                    ck.save(&rd.checkpoint_path())?;
                    rd.save_model(self.task.model())?;
                }
                if !self.config.quiet {
                    eprintln!(
                        "stopped in epoch {epoch} after step {done_steps} of {steps}{}",
                        match &self.config.run_dir {
                            Some(rd) => format!("; resume with --resume {}", rd.path().display()),
                            None => String::new(),
                        }
                    );
                }
                break;
            }
            if let Some(d) = &dist {
                // Batch-norm running statistics: rank 0's for every rank (without
                // --sync-bn each rank measured only its own rows).
                let buffers: Vec<Tensor> = self
                    .task
                    .model()
                    .named_buffers()
                    .into_iter()
                    .map(|(_, t)| t)
                    .collect();
                dist::broadcast_tensors(&d.comm, &buffers)?;
            }
            // Evaluation, in evaluation mode without gradients.
            let eval_sums = match eval {
                Some(ev) => Some(self.evaluate(ev, n_eval, device)?),
                None => None,
            };
            let measured = self
                .task
                .measure(&train_sums, eval_sums.as_deref(), epoch_secs);
            let columns = self
                .task
                .info()
                .columns
                .iter()
                .map(|c| c.to_string())
                .zip(measured.columns.iter().copied())
                .collect();
            let metrics = EpochMetrics {
                epoch,
                train_loss: measured.train_loss,
                train_acc: measured.train_acc,
                test_acc: measured.test_acc,
                test_loss: measured.test_loss,
                examples_per_sec: epoch_examples / epoch_secs.max(1e-9),
                seconds: epoch_start.elapsed().as_secs_f64(),
                columns,
            };
            if !self.config.quiet {
                if let Some(line) = self.task.epoch_line(&metrics, self.config.epochs)? {
                    eprintln!("{line}");
                }
            }
            st.epochs.push(metrics.clone());
            for h in &mut self.epoch_hooks {
                h(&metrics);
            }
            if let Some(s) = &mut self.scheduler {
                s.step(self.optimizer);
            }
            if let Some(rd) = self.config.run_dir.clone() {
                // The checkpoint first: a kill after it loses nothing, and the other files
                // are rewritten from it on resume.
                let ck = self.checkpoint(epoch, 0, &st, None, train.state_words())?;
                ck.save(&rd.checkpoint_path())?;
                rd.write_metrics(&st.epochs, self.task.info().columns, self.task.speed_unit())?;
                rd.plot_task_curves(&st.epochs, &self.task.curves())?;
                rd.save_model(self.task.model())?;
            }
            epoch += 1;
        }
        let extra = if stopped_early.is_none() {
            self.task.finish()?
        } else {
            serde_json::Value::Null
        };
        let mut summary = self.summary(&st, started, stopped_early, extra);
        if let Some(d) = &dist {
            let sum = dist::state_checksum(self.task.model())?;
            let all = d.comm.all_gather_u64(sum).map_err(dist::comm_error)?;
            summary.distributed = Some(DistSummary {
                ranks,
                backend: d.comm.backend().to_string(),
                state_checksums: all.iter().map(|c| format!("{c:016x}")).collect(),
                comm_wait_secs: comm_wait,
                step_secs,
            });
        }
        if let Some(rd) = &self.config.run_dir {
            rd.write_summary(&summary)?;
        }
        Ok(summary)
    }

    /// Reads the GPU's non-finite flag (at a redraw or the end of an epoch) and stops
    /// with an error naming the unchecked steps when a loss was NaN or infinite.
    fn check_nonfinite(
        &self,
        flag: &mut Option<Tensor>,
        unchecked_from: &mut usize,
        st: &Start,
        started: Instant,
        bar: &ProgressBar,
    ) -> Result<()> {
        let Some(f) = flag.take() else { return Ok(()) };
        let bad = f.item_f64()?;
        let from = *unchecked_from;
        *unchecked_from = st.global_step + 1;
        if bad > 0.0 {
            bar.abandon();
            let at = format!(
                "in {bad} of the global steps {from}..={} (checked on {} at the progress redraw)",
                st.global_step, self.config.device
            );
            return Err(self.nonfinite_error(f64::NAN, &at, st, started));
        }
        Ok(())
    }

    fn nonfinite_error(&self, lv: f64, at: &str, st: &Start, started: Instant) -> Error {
        let kept = match (&self.config.run_dir, st.epochs.last()) {
            (Some(rd), Some(last)) => format!(
                "; {} keeps the checkpoint from the end of epoch {}",
                rd.file("model.safetensors").display(),
                last.epoch
            ),
            (Some(_), None) => "; no checkpoint was saved (no epoch completed)".into(),
            _ => String::new(),
        };
        let what = if lv.is_nan() && !self.config.device.is_cpu() {
            "non-finite".to_string()
        } else {
            lv.to_string()
        };
        let msg = format!(
            "the loss became {what} {at}; training stopped before updating the parameters (try a smaller learning rate){kept}"
        );
        if let Some(rd) = &self.config.run_dir {
            let summary = self.summary(st, started, Some(msg.clone()), serde_json::Value::Null);
            let _ = rd.write_summary(&summary);
        }
        Error::InvalidArgument { op: "train", msg }
    }

    /// One pass over `eval` in evaluation mode without gradients; the model is in training
    /// mode afterwards, also after an error.
    fn evaluate(&self, eval: &dyn BatchSource, n: usize, device: Device) -> Result<Vec<f64>> {
        struct TrainOnDrop<'m>(&'m dyn Module);
        impl Drop for TrainOnDrop<'_> {
            fn drop(&mut self) {
                self.0.train();
            }
        }
        let model = self.task.model();
        model.eval();
        let _restore = TrainOnDrop(model);
        self.task.begin_pass(false)?;
        let dist = self.config.distributed.as_ref();
        let (rank, ranks) = dist.map_or((0, 1), |d| (d.comm.rank(), d.comm.size()));
        let mut out = no_grad(|| {
            let mut sums = Sums::new(n);
            for batch in eval.epoch(0) {
                let batch = batch?;
                // A distributed evaluation splits every batch like training does.
                let local = match dist {
                    Some(_) => dist::shard(&batch, rank, ranks)?,
                    None => Some(batch),
                };
                if let Some(batch) = local {
                    sums.add(self.task.eval_step(&batch.to(device)?)?)?;
                }
            }
            sums.read()
        })?;
        if let Some(d) = dist {
            d.comm
                .allreduce_sum_f64(&mut out)
                .map_err(dist::comm_error)?;
        }
        Ok(out)
    }

    /// Where to start: the checkpoint's state with `config.resume`, else from scratch.
    fn start(&mut self, train: &dyn BatchSource) -> Result<Start> {
        let fresh = Start {
            epochs: Vec::new(),
            first_epoch: 1,
            skip_steps: 0,
            partial: None,
            global_step: 0,
            train_secs: 0.0,
            examples: 0.0,
            resumed_after: None,
            task_state: Vec::new(),
        };
        if !self.config.resume {
            return Ok(fresh);
        }
        let multi = self
            .config
            .distributed
            .as_ref()
            .filter(|d| d.comm.size() > 1)
            .map(|d| d.comm.clone());
        let (ck, path) = match multi {
            None => {
                let path = self.resume_path()?;
                (Checkpoint::load(&path)?, path)
            }
            Some(comm) => self.checkpoint_from_root(&comm)?,
        };
        let model = self.task.model();
        ck.check_fits(&path, self.task.info().kind, model)?;
        let info = &ck.info;
        // Check every part before changing anything.
        let model_entries = ck.section("model.");
        let optim_entries = ck.section("optim.");
        let global = ck
            .get("rng.global")
            .map(tensor_words)
            .transpose()?
            .ok_or_else(|| Error::InvalidArgument {
                op: "checkpoint",
                msg: format!("{}: no rng.global", path.display()),
            })?;
        let global: [u64; 6] = global
            .try_into()
            .map_err(|w: Vec<u64>| Error::InvalidArgument {
                op: "checkpoint",
                msg: format!(
                    "{}: rng.global holds {} words, expected 6",
                    path.display(),
                    w.len()
                ),
            })?;
        let source = ck.get("rng.source").map(tensor_words).transpose()?;
        let partial = match ck.get("sums.train") {
            Some(t) if info.step_in_epoch > 0 => Some((
                t.cpu()?.to_f64_vec(),
                info.partial_train_secs,
                partial_examples(&ck),
            )),
            _ => None,
        };
        d2l_nn::serialize::load_state_dict_entries(model, &model_entries, true)?;
        self.optimizer.load_state_tensors(&optim_entries)?;
        if let (Some(s), Some(e)) = (&mut self.scheduler, info.scheduler_epoch) {
            s.set_last_epoch(e);
        }
        d2l_tensor::random::set_global_state(global)?;
        if let Some(words) = source {
            train.load_state_words(&words)?;
        }
        if !self.config.quiet {
            eprintln!(
                "resuming {} after epoch {}{} of {}",
                path.parent().unwrap_or(&path).display(),
                info.epoch,
                if info.step_in_epoch > 0 {
                    format!(
                        " and step {} of epoch {}",
                        info.step_in_epoch,
                        info.epoch + 1
                    )
                } else {
                    String::new()
                },
                self.config.epochs
            );
        }
        // metrics.csv and the curves are rewritten from the checkpoint's epochs, so rows a
        // killed run wrote after its last checkpoint disappear.
        if let (Some(rd), false) = (&self.config.run_dir, info.epochs.is_empty()) {
            rd.write_metrics(
                &info.epochs,
                self.task.info().columns,
                self.task.speed_unit(),
            )?;
        }
        Ok(Start {
            epochs: info.epochs.clone(),
            first_epoch: info.epoch + 1,
            skip_steps: info.step_in_epoch,
            partial,
            global_step: info.global_step,
            train_secs: info.train_secs,
            examples: info.examples,
            resumed_after: Some(info.epoch),
            task_state: ck.section("task."),
        })
    }

    /// The checkpoint to resume from (an error when there is none).
    fn resume_path(&self) -> Result<std::path::PathBuf> {
        let rd = self
            .config
            .run_dir
            .clone()
            .ok_or_else(|| Error::InvalidArgument {
                op: "Trainer::fit",
                msg: "resume needs a run folder (config.run_dir)".into(),
            })?;
        let path = rd.checkpoint_path();
        if !path.exists() {
            return Err(Error::InvalidArgument {
                op: "Trainer::fit",
                msg: format!(
                    "nothing to resume: {} has no checkpoint.safetensors",
                    rd.path().display()
                ),
            });
        }
        Ok(path)
    }

    /// A distributed resume: rank 0 reads the checkpoint and sends its bytes to every
    /// rank (the other ranks need no access to the run folder).
    fn checkpoint_from_root(
        &self,
        comm: &d2l_dist::Comm,
    ) -> Result<(Checkpoint, std::path::PathBuf)> {
        let read = if comm.is_root() {
            Some(self.resume_path().and_then(|p| {
                std::fs::read(&p)
                    .map(|b| (b, p.clone()))
                    .map_err(|e| Error::InvalidArgument {
                        op: "checkpoint",
                        msg: format!("cannot read {}: {e}", p.display()),
                    })
            }))
        } else {
            None
        };
        let mut bytes = match &read {
            Some(Ok((b, _))) => b.clone(),
            _ => Vec::new(),
        };
        comm.broadcast_bytes(&mut bytes, 0)
            .map_err(dist::comm_error)?;
        match read {
            Some(Ok((_, path))) => Ok((Checkpoint::load(&path)?, path)),
            Some(Err(e)) => Err(dist::shared_error(e.to_string())),
            None if bytes.is_empty() => Err(dist::shared_error(
                "rank 0 could not read the checkpoint to resume from",
            )),
            None => {
                let tmp = std::env::temp_dir().join(format!(
                    "d2l-resume-{}-rank{}.safetensors",
                    std::process::id(),
                    comm.rank()
                ));
                std::fs::write(&tmp, &bytes).map_err(|e| Error::InvalidArgument {
                    op: "checkpoint",
                    msg: format!("cannot write {}: {e}", tmp.display()),
                })?;
                let ck = Checkpoint::load(&tmp);
                let _ = std::fs::remove_file(&tmp);
                Ok((ck?, std::path::PathBuf::from("checkpoint.safetensors")))
            }
        }
    }

    fn checkpoint(
        &self,
        epoch: usize,
        step_in_epoch: usize,
        st: &Start,
        partial: Option<(&[f64], f64, f64)>,
        source_words: Vec<u64>,
    ) -> Result<Checkpoint> {
        let model = self.task.model();
        let mut tensors: Vec<(String, Tensor)> = model
            .state_dict()
            .into_iter()
            .map(|(n, t)| (format!("model.{n}"), t))
            .collect();
        tensors.extend(
            self.optimizer
                .state_tensors()
                .into_iter()
                .map(|(n, t)| (format!("optim.{n}"), t)),
        );
        tensors.push((
            "rng.global".into(),
            words_tensor(&d2l_tensor::random::global_state()),
        ));
        if !source_words.is_empty() {
            tensors.push(("rng.source".into(), words_tensor(&source_words)));
        }
        let mut partial_secs = 0.0;
        if let Some((sums, secs, examples)) = partial {
            tensors.push((
                "sums.train".into(),
                Tensor::from_vec(sums.to_vec(), &[sums.len()])?,
            ));
            tensors.push((
                "sums.examples".into(),
                Tensor::from_vec(vec![examples], &[])?,
            ));
            partial_secs = secs;
            tensors.extend(
                self.task
                    .state_tensors()?
                    .into_iter()
                    .map(|(n, t)| (format!("task.{n}"), t)),
            );
        }
        Ok(Checkpoint {
            info: CheckpointInfo {
                version: 1,
                task: self.task.info().kind.to_string(),
                fingerprint: crate::checkpoint::model_fingerprint(model),
                epoch,
                step_in_epoch,
                global_step: st.global_step,
                scheduler_epoch: self.scheduler.as_ref().map(|s| s.last_epoch()),
                train_secs: st.train_secs,
                examples: st.examples,
                partial_train_secs: partial_secs,
                epochs: st.epochs.clone(),
            },
            tensors,
        })
    }

    fn summary(
        &self,
        st: &Start,
        started: Instant,
        stopped_early: Option<String>,
        extra: serde_json::Value,
    ) -> TrainSummary {
        let last = st.epochs.last();
        TrainSummary {
            task: self.task.info().kind.to_string(),
            epochs: st.epochs.clone(),
            train_loss: last.map(|m| m.train_loss).unwrap_or(f64::NAN),
            train_acc: last.and_then(|m| m.train_acc),
            test_acc: st.epochs.iter().rev().find_map(|m| m.test_acc),
            examples_per_sec: if st.train_secs > 0.0 {
                st.examples / st.train_secs
            } else {
                0.0
            },
            seconds: started.elapsed().as_secs_f64(),
            stopped_early,
            device: self.config.device.to_string(),
            resumed_after_epoch: st.resumed_after,
            extra,
            distributed: None,
        }
    }
}

/// Examples of the partial epoch a checkpoint recorded.
fn partial_examples(ck: &Checkpoint) -> f64 {
    ck.get("sums.examples")
        .and_then(|t| t.item_f64().ok())
        .unwrap_or(0.0)
}

fn short_unit(unit: &str) -> &str {
    match unit {
        "examples" => "ex",
        "tokens" => "tok",
        u => u,
    }
}

/// The test hook `D2L_TEST_STALL_AT=EPOCH:STEP`: after that training step the process
/// prints one line to stderr and waits until it is killed or interrupted (Ctrl-C) — how
/// the resume tests stop a run at a known point of an epoch.
fn stall_point() -> Option<(usize, usize)> {
    let v = std::env::var("D2L_TEST_STALL_AT").ok()?;
    let (e, s) = v.split_once(':')?;
    Some((e.trim().parse().ok()?, s.trim().parse().ok()?))
}

fn test_stall(epoch: usize, step: usize, rank: Option<(usize, usize)>) {
    match rank {
        Some((r, n)) => eprintln!(
            "D2L_TEST_STALL_AT: rank {r} of {n} (pid {}) stalled after epoch {epoch} step {step}",
            std::process::id()
        ),
        None => eprintln!("D2L_TEST_STALL_AT: stalled after epoch {epoch} step {step}"),
    }
    // A Ctrl-C ends the stall, so the interruption path can be tested at this point.
    while !INTERRUPTED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The test hook `D2L_TEST_FAIL_AT=RANK:EPOCH:STEP`: that rank returns an error after the
/// step's backward pass — how the fault tests make one rank of a distributed job fail.
fn fail_point() -> Option<(usize, usize, usize)> {
    let v = std::env::var("D2L_TEST_FAIL_AT").ok()?;
    let mut it = v.split(':').map(|p| p.trim().parse::<usize>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}
