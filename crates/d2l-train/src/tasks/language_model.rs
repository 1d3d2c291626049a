//! Character-level language models (D2L 8.5's `train_epoch_ch8` and `train_ch8`): the
//! recurrent state starts at zero at the beginning of every epoch (and of every batch
//! under random sampling) and is otherwise detached from the previous batch's graph; the
//! loss is the mean cross-entropy of the `T·B` predictions against `Yᵀ`; the metric is the
//! perplexity `exp(mean loss per token)` and the speed is counted in tokens. Every
//! `log_every` epochs a sample continues "time traveller" (the book's `predict_ch8`), and
//! the summary keeps the final samples for "time traveller" and "traveller".
//!
//! [`train_ch8`] is the book's function: plain SGD with gradient clipping through the one
//! training loop; [`evaluate_perplexity`] measures a trained model.

use super::{
    ratio, scaled_stat, Batch, CurveSpec, Measured, SeqSource, Stat, Step, TaskInfo, TrainTask,
};
use crate::run_dir::RunDir;
use crate::trainer::{EpochMetrics, TrainConfig, Trainer};
use d2l_data::seq::SeqDataLoader;
use d2l_data::text::Vocab;
use d2l_models::rnn_lm::{predict_ch8, LanguageModel};
use d2l_nn::loss::cross_entropy;
use d2l_nn::optim::Sgd;
use d2l_nn::rnn::RnnState;
use d2l_nn::Module;
use d2l_tensor::{Device, Error, Result, Tensor};
use serde::Serialize;
use std::cell::RefCell;

/// The prefix the book samples from during training.
pub const PREFIX: &str = "time traveller";
/// The second prefix the book samples from at the end.
pub const PREFIX_SHORT: &str = "traveller";

/// A language model over a vocabulary, trained on token windows.
pub struct LanguageModelTask<'a> {
    net: &'a dyn LanguageModel,
    vocab: &'a Vocab,
    use_random_iter: bool,
    log_every: usize,
    num_preds: usize,
    state: RefCell<Option<RnnState>>,
}

impl<'a> LanguageModelTask<'a> {
    /// A task for `net` over `vocab`; `use_random_iter` starts a fresh state every batch
    /// (random sampling) instead of carrying it over (sequential partitioning). Samples of
    /// 50 characters every 10 epochs, as the book prints them.
    pub fn new(net: &'a dyn LanguageModel, vocab: &'a Vocab, use_random_iter: bool) -> Self {
        LanguageModelTask {
            net,
            vocab,
            use_random_iter,
            log_every: 10,
            num_preds: 50,
            state: RefCell::new(None),
        }
    }

    /// Prints a line with a sample every `n` epochs (and after the first); 0 never.
    pub fn log_every(mut self, n: usize) -> Self {
        self.log_every = n;
        self
    }

    /// Characters generated per sample.
    pub fn num_preds(mut self, n: usize) -> Self {
        self.num_preds = n;
        self
    }

    fn predict(&self, prefix: &str) -> Result<String> {
        predict_ch8(prefix, self.num_preds, self.net, self.vocab)
    }
}

impl TrainTask for LanguageModelTask<'_> {
    fn info(&self) -> TaskInfo {
        TaskInfo {
            kind: "language-model",
            // loss sum over tokens, tokens
            stat_counts: (2, 2),
            columns: &["perplexity", "train_loss", "test_perplexity"],
        }
    }

    fn model(&self) -> &dyn Module {
        self.net.as_dyn()
    }

    fn begin_pass(&self, _training: bool) -> Result<()> {
        *self.state.borrow_mut() = None;
        Ok(())
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
        Measured::losses(
            train_loss,
            test_loss,
            vec![
                Some(train_loss.exp()),
                Some(train_loss),
                test_loss.map(f64::exp),
            ],
        )
    }

    fn progress(&self, t: &[f64]) -> String {
        format!("perplexity {:.2}", ratio(t[0], t[1]).exp())
    }

    fn epoch_line(&self, m: &EpochMetrics, epochs: usize) -> Result<Option<String>> {
        let log = self.log_every > 0 && (m.epoch.is_multiple_of(self.log_every) || m.epoch == 1);
        if !log && m.epoch != epochs {
            return Ok(None);
        }
        let sample = self.predict(PREFIX)?;
        Ok(Some(format!(
            "epoch {:>4}: perplexity {:>7.3}, {:>9.0} tokens/s  {sample:?}",
            m.epoch,
            m.train_loss.exp(),
            m.examples_per_sec
        )))
    }

    fn finish(&self) -> Result<serde_json::Value> {
        let samples = [PREFIX, PREFIX_SHORT]
            .iter()
            .map(|p| {
                Ok(Sample {
                    prefix: p.to_string(),
                    text: self.predict(p)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(serde_json::json!({ "samples": samples }))
    }

    fn curves(&self) -> CurveSpec {
        CurveSpec {
            series: vec![("train", "perplexity"), ("test", "test_perplexity")],
            ylabel: "perplexity",
            log_y: false,
        }
    }

    fn speed_unit(&self) -> &'static str {
        "tokens"
    }

    fn state_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(match &*self.state.borrow() {
            None => Vec::new(),
            Some(RnnState::Hidden(h)) => vec![("h".into(), h.clone())],
            Some(RnnState::Lstm { h, c }) => vec![("h".into(), h.clone()), ("c".into(), c.clone())],
        })
    }

    fn load_state_tensors(&self, entries: &[(String, Tensor)]) -> Result<()> {
        let device = crate::device::model_device(self.net.as_dyn());
        let get = |k: &str| -> Result<Option<Tensor>> {
            entries
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, t)| t.to(device))
                .transpose()
        };
        *self.state.borrow_mut() = match (get("h")?, get("c")?) {
            (None, None) => None,
            (Some(h), None) => Some(RnnState::Hidden(h)),
            (Some(h), Some(c)) => Some(RnnState::Lstm { h, c }),
            (None, Some(_)) => {
                return Err(Error::InvalidArgument {
                    op: "LanguageModelTask",
                    msg: "a checkpoint's recurrent state has a cell state but no hidden state"
                        .into(),
                })
            }
        };
        Ok(())
    }
}

impl LanguageModelTask<'_> {
    /// The mean cross-entropy over the batch's tokens and its sums: loss sum, tokens.
    fn loss_and_sums(&self, batch: &Batch) -> Result<(Tensor, Vec<Stat>)> {
        let (y_hat, target) = self.forward(batch)?;
        let loss = cross_entropy(&y_hat, &target)?;
        let n = target.numel() as f64;
        let sums = vec![scaled_stat(&loss, n)?, Stat::Host(n)];
        Ok((loss, sums))
    }

    /// Logits for a batch and the flattened targets `Yᵀ`, carrying the state.
    fn forward(&self, batch: &Batch) -> Result<(Tensor, Tensor)> {
        let prev = self.state.borrow_mut().take();
        let state = match prev {
            Some(s) if !self.use_random_iter => s.detach(),
            _ => self.net.begin_state(batch.x.shape()[0])?,
        };
        let target = batch.y.t()?.reshape([-1])?;
        let (y_hat, s) = self.net.forward_with_state(&batch.x, Some(&state))?;
        *self.state.borrow_mut() = Some(s);
        Ok((y_hat, target))
    }
}

/// How [`train_ch8`] runs.
#[derive(Debug, Clone)]
pub struct SeqTrainConfig {
    /// Epochs (the book: 500).
    pub epochs: usize,
    /// SGD learning rate (the book: 1).
    pub lr: f64,
    /// Bound of the global gradient norm (the book: 1).
    pub clip: f64,
    /// Random sampling (a fresh state per batch) instead of sequential partitioning.
    pub use_random_iter: bool,
    /// Print a line with perplexity, speed and a sample every this many epochs (the book: 10).
    pub log_every: usize,
    /// Characters generated per sample (the book: 50).
    pub num_preds: usize,
    /// No progress bar or per-epoch lines.
    pub quiet: bool,
    /// Where to write metrics, curves, weights, checkpoints and the summary.
    pub run_dir: Option<RunDir>,
    /// Where to train (the CPU by default).
    pub device: Device,
    /// Continue from the run folder's checkpoint.
    pub resume: bool,
    /// Data-parallel training over several processes (see `crate::dist`).
    pub distributed: Option<crate::dist::Distributed>,
}

impl Default for SeqTrainConfig {
    fn default() -> Self {
        SeqTrainConfig {
            epochs: 500,
            lr: 1.0,
            clip: 1.0,
            use_random_iter: false,
            log_every: 10,
            num_preds: 50,
            quiet: false,
            run_dir: None,
            device: Device::Cpu,
            resume: false,
            distributed: None,
        }
    }
}

/// One epoch's measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SeqEpoch {
    /// The epoch, from 1.
    pub epoch: usize,
    /// exp(mean cross-entropy per token) over the epoch.
    pub perplexity: f64,
    /// Tokens per second over the epoch's training steps.
    pub tokens_per_sec: f64,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
}

/// A generated sample.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Sample {
    /// The prefix.
    pub prefix: String,
    /// The prefix followed by the generated characters.
    pub text: String,
}

/// What [`train_ch8`] measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeqTrainSummary {
    /// Every epoch, in order.
    pub epochs: Vec<SeqEpoch>,
    /// The last epoch's perplexity (what the book prints).
    pub perplexity: f64,
    /// The last epoch's tokens per second (what the book prints).
    pub tokens_per_sec: f64,
    /// Tokens per second over the whole run.
    pub mean_tokens_per_sec: f64,
    /// Seconds of the whole run.
    pub seconds: f64,
    /// The final samples for "time traveller" and "traveller".
    pub samples: Vec<Sample>,
    /// The device the run trained on (`"cpu"`, `"cuda:0"`, ...).
    pub device: String,
    /// Why training stopped before the last epoch (`"interrupted"`), `None` when it
    /// completed.
    pub stopped_early: Option<String>,
}

impl SeqTrainSummary {
    /// The language-model view of a [`crate::trainer::TrainSummary`].
    pub fn from_summary(s: &crate::trainer::TrainSummary) -> SeqTrainSummary {
        let epochs: Vec<SeqEpoch> = s
            .epochs
            .iter()
            .map(|m| SeqEpoch {
                epoch: m.epoch,
                perplexity: m.train_loss.exp(),
                tokens_per_sec: m.examples_per_sec,
                seconds: m.seconds,
            })
            .collect();
        let last = epochs.last().copied();
        let samples = s
            .extra
            .get("samples")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        SeqTrainSummary {
            perplexity: last.map_or(f64::NAN, |e| e.perplexity),
            tokens_per_sec: last.map_or(0.0, |e| e.tokens_per_sec),
            mean_tokens_per_sec: s.examples_per_sec,
            seconds: s.seconds,
            samples,
            epochs,
            device: s.device.clone(),
            stopped_early: s.stopped_early.clone(),
        }
    }
}

/// D2L 8.5's `train_ch8`: SGD(`lr`) with the gradient clipped to `clip`, over `epochs`
/// epochs of `loader`, through [`Trainer::fit_source`]. The loader's generator advances as
/// the epochs draw their offsets.
pub fn train_ch8(
    net: &dyn LanguageModel,
    loader: &mut SeqDataLoader,
    vocab: &Vocab,
    cfg: &SeqTrainConfig,
) -> Result<SeqTrainSummary> {
    if cfg.epochs == 0 {
        return Err(Error::InvalidArgument {
            op: "train_ch8",
            msg: "expected at least one epoch, got 0".into(),
        });
    }
    crate::device::to_device(net.as_dyn(), cfg.device)?;
    let mut opt = Sgd::new(net.parameters(), cfg.lr)?;
    let task = LanguageModelTask::new(net, vocab, cfg.use_random_iter)
        .log_every(cfg.log_every)
        .num_preds(cfg.num_preds);
    let config = TrainConfig {
        epochs: cfg.epochs,
        quiet: cfg.quiet,
        run_dir: cfg.run_dir.clone(),
        max_grad_norm: Some(cfg.clip),
        device: cfg.device,
        resume: cfg.resume,
        distributed: cfg.distributed.clone(),
        ..Default::default()
    };
    let source = SeqSource::new(loader.clone());
    let summary = Trainer::for_task(Box::new(task), &mut opt, config).fit_source(&source, None);
    *loader = source.into_inner();
    Ok(SeqTrainSummary::from_summary(&summary?))
}

/// The perplexity of `net` on every batch of one pass over `loader`, without training
/// (a fresh state per batch under random sampling, carried over otherwise).
pub fn evaluate_perplexity(net: &dyn LanguageModel, loader: &mut SeqDataLoader) -> Result<f64> {
    d2l_tensor::no_grad(|| {
        let random = loader.use_random_iter();
        let device = crate::device::model_device(net.as_dyn());
        let mut state: Option<RnnState> = None;
        let (mut sum, mut n) = (0.0, 0.0);
        for (x, y) in loader.iter() {
            let (x, y) = (x.to(device)?, y.to(device)?);
            if random || state.is_none() {
                state = Some(net.begin_state(x.shape()[0])?);
            }
            let target: Tensor = y.t()?.reshape([-1])?;
            let (y_hat, s) = net.forward_with_state(&x, state.as_ref())?;
            state = Some(s);
            let k = target.numel() as f64;
            sum += cross_entropy(&y_hat, &target)?.item_f64()? * k;
            n += k;
        }
        Ok((sum / n.max(1.0)).exp())
    })
}
