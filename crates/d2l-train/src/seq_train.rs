//! Training character-level language models (D2L 8.5's `train_epoch_ch8` and `train_ch8`):
//! per mini-batch, the state is re-initialised on the first batch of an epoch (and on
//! every batch under random sampling) and otherwise detached from the previous batch's
//! graph; the loss is the mean cross-entropy of the `T·B` predictions against `Yᵀ`;
//! gradients are clipped to a global norm of 1 before the SGD step. An epoch reports the
//! perplexity `exp(mean loss per token)` and tokens per second; every 10 epochs a 50-character
//! sample continues "time traveller", and at the end samples for "time traveller" and
//! "traveller" are taken, as the book prints them.
//!
//! With a run directory the run writes `metrics.csv` (`epoch,perplexity,tokens_per_sec,
//! seconds`), `curves.png`/`curves.svg` (perplexity against epoch, the book's Animator),
//! `model.safetensors` and `summary.json`.
//!
//! With `config.device` a GPU, the model is moved there first and each batch after the
//! loader gives it (the loader stays on the CPU); [`train_epoch_ch8`] and
//! [`evaluate_perplexity`] move the batches to wherever the model's parameters are.

use crate::metrics::{Accumulator, Timer};
use crate::plot::{save_line_plot, PlotSpec, Series};
use crate::run_dir::{write_atomic, RunDir};
use d2l_data::seq::SeqDataLoader;
use d2l_data::text::Vocab;
use d2l_models::rnn_lm::{predict_ch8, LanguageModel};
use d2l_nn::clip::clip_grad_norm_;
use d2l_nn::loss::cross_entropy_simple;
use d2l_nn::optim::{Optimizer, Sgd};
use d2l_nn::rnn::RnnState;
use d2l_tensor::{Device, Error, Result, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// The prefix the book samples from during training.
pub const PREFIX: &str = "time traveller";
/// The second prefix the book samples from at the end.
pub const PREFIX_SHORT: &str = "traveller";

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
    /// Where to write metrics, curves, weights and the summary.
    pub run_dir: Option<RunDir>,
    /// Where to train (the CPU by default).
    pub device: Device,
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
    /// Tokens per second over the epoch (the book's `metric[1] / timer.stop()`).
    pub tokens_per_sec: f64,
    /// Wall-clock seconds of the epoch (training only).
    pub seconds: f64,
}

/// A generated sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// The prefix.
    pub prefix: String,
    /// The prefix followed by the generated characters.
    pub text: String,
}

/// What a whole run measured (`summary.json`).
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
    /// Seconds of training, all epochs.
    pub seconds: f64,
    /// The final samples for "time traveller" and "traveller".
    pub samples: Vec<Sample>,
    /// The device the run trained on (`"cpu"`, `"cuda:0"`, ...).
    pub device: String,
}

/// One epoch of D2L 8.5's `train_epoch_ch8`: returns (perplexity, tokens per second).
pub fn train_epoch_ch8(
    net: &dyn LanguageModel,
    loader: &mut SeqDataLoader,
    optimizer: &mut dyn Optimizer,
    clip: f64,
    use_random_iter: bool,
) -> Result<(f64, f64)> {
    let params = net.parameters();
    let device = crate::device::model_device(net.as_dyn());
    let mut timer = Timer::new();
    let mut metric = Accumulator::new(2); // sum of the loss, number of tokens
    let mut state: Option<RnnState> = None;
    for (x, y) in loader.iter() {
        let (x, y) = (x.to(device)?, y.to(device)?);
        state = Some(match state {
            Some(s) if !use_random_iter => s.detach(),
            _ => net.begin_state(x.shape()[0])?,
        });
        let target = y.t()?.reshape([-1])?;
        let (y_hat, s) = net.forward_with_state(&x, state.as_ref())?;
        state = Some(s);
        let loss = cross_entropy_simple(&y_hat, &target)?;
        optimizer.zero_grad();
        loss.backward()?;
        clip_grad_norm_(&params, clip)?;
        optimizer.step()?;
        let n = target.numel() as f64;
        metric.add(&[loss.item_f64()? * n, n]);
    }
    crate::device::sync(device)?;
    let secs = timer.stop();
    if metric.get(1) == 0.0 {
        return Err(Error::InvalidArgument {
            op: "train_epoch_ch8",
            msg: "the loader produced no batch".into(),
        });
    }
    Ok((
        (metric.get(0) / metric.get(1)).exp(),
        metric.get(1) / secs.max(1e-9),
    ))
}

fn metrics_csv(epochs: &[SeqEpoch]) -> String {
    let mut s = String::from("epoch,perplexity,tokens_per_sec,seconds\n");
    for e in epochs {
        s.push_str(&format!(
            "{},{},{},{}\n",
            e.epoch, e.perplexity, e.tokens_per_sec, e.seconds
        ));
    }
    s
}

fn io_err(e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument {
        op: "train_ch8",
        msg: e.to_string(),
    }
}

/// D2L 8.5's `train_ch8`: SGD(`lr`) over `epochs` of [`train_epoch_ch8`], with samples
/// every `log_every` epochs and at the end.
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
    let bar = if cfg.quiet {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(cfg.epochs as u64);
        b.set_style(
            ProgressStyle::with_template("epoch {pos}/{len} {bar:30} {msg} [{elapsed}<{eta}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    let predict = |prefix: &str| predict_ch8(prefix, cfg.num_preds, net, vocab);
    let mut epochs = Vec::with_capacity(cfg.epochs);
    for epoch in 1..=cfg.epochs {
        let start = std::time::Instant::now();
        let (ppl, speed) = train_epoch_ch8(net, loader, &mut opt, cfg.clip, cfg.use_random_iter)?;
        let e = SeqEpoch {
            epoch,
            perplexity: ppl,
            tokens_per_sec: speed,
            seconds: start.elapsed().as_secs_f64(),
        };
        epochs.push(e);
        bar.set_position(epoch as u64);
        bar.set_message(format!("perplexity {ppl:.2}, {speed:.0} tokens/s"));
        let log = cfg.log_every > 0 && (epoch % cfg.log_every == 0 || epoch == 1);
        if log && !cfg.quiet {
            let sample = predict(PREFIX)?;
            let line = format!(
                "epoch {epoch:>4}: perplexity {ppl:>7.3}, {speed:>9.0} tokens/s  {sample:?}"
            );
            if bar.is_hidden() {
                // Not a terminal (a log file): plain lines.
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
        if let Some(dir) = &cfg.run_dir {
            if log || epoch == cfg.epochs {
                write_atomic(&dir.file("metrics.csv"), metrics_csv(&epochs).as_bytes())?;
            }
        }
    }
    bar.finish_and_clear();
    let seconds: f64 = epochs.iter().map(|e| e.seconds).sum();
    let tokens: f64 = epochs.iter().map(|e| e.tokens_per_sec * e.seconds).sum();
    let last = *epochs.last().expect("at least one epoch");
    let samples = [PREFIX, PREFIX_SHORT]
        .iter()
        .map(|p| {
            Ok(Sample {
                prefix: p.to_string(),
                text: predict(p)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let summary = SeqTrainSummary {
        perplexity: last.perplexity,
        tokens_per_sec: last.tokens_per_sec,
        mean_tokens_per_sec: tokens / seconds.max(1e-9),
        seconds,
        samples,
        epochs,
        device: cfg.device.to_string(),
    };
    if let Some(dir) = &cfg.run_dir {
        write_run(dir, net, &summary)?;
    }
    Ok(summary)
}

/// Writes the curves, the weights and `summary.json` of a finished run.
fn write_run(dir: &RunDir, net: &dyn LanguageModel, s: &SeqTrainSummary) -> Result<()> {
    let x: Vec<f64> = s.epochs.iter().map(|e| e.epoch as f64).collect();
    let y: Vec<f64> = s.epochs.iter().map(|e| e.perplexity).collect();
    let n = s.epochs.len() as f64;
    let spec = PlotSpec {
        title: dir.model_name().to_string(),
        xlabel: "epoch".into(),
        ylabel: "perplexity".into(),
        xlim: Some(if n > 1.0 { (1.0, n) } else { (0.5, 1.5) }),
        ..PlotSpec::default()
    };
    save_line_plot(&dir.file("curves"), &spec, &[Series::new("train", x, y)])?;
    dir.save_model(net.as_dyn())?;
    let text = serde_json::to_string_pretty(s).map_err(io_err)?;
    write_atomic(&dir.file("summary.json"), format!("{text}\n").as_bytes())
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
            sum += cross_entropy_simple(&y_hat, &target)?.item_f64()? * k;
            n += k;
        }
        Ok((sum / n.max(1.0)).exp())
    })
}
