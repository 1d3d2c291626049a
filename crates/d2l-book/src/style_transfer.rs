//! Neural style transfer, the training loop (D2L 13.12's `train`).
//!
//! [`transfer`] takes a frozen feature extractor (VGG-19's `features[0..=28]` in the
//! book, see `d2l_models::torchvision::vgg19_features`), a content image and a style
//! image, and optimises the synthesised image — the only parameter, initialised with the
//! content image — with Adam and a step decay of the learning rate
//! (`StepLR(step_size=lr_decay_epoch, gamma)`), minimising
//! [`d2l_vision::style::compute_loss`] (with the book's weights and their list-repetition
//! quirk by default, see [`StyleWeights::book`]).
//!
//! ```text
//! let net = d2l_models::torchvision::vgg19_features(28)?;
//! let (img, log) = transfer(&net, &content, &style, &StyleConfig::default())?;
//! d2l_vision::image::write_png(&img, "out.png", true)?;
//! ```

use d2l_nn::optim::{Adam, Optimizer};
use d2l_nn::schedule::{LrScheduler, StepLr};
use d2l_nn::{Module, Sequential};
use d2l_tensor::{no_grad, Device, Error, Result, Tensor};
use d2l_vision::style::{
    compute_loss, gram, postprocess, preprocess, select_features, StyleWeights, CONTENT_LAYERS,
    STYLE_LAYERS,
};
use std::time::Instant;

/// The settings of [`transfer`]; the `Default` is the book's.
#[derive(Debug, Clone, PartialEq)]
pub struct StyleConfig {
    /// Number of epochs (optimisation steps), book: 500.
    pub epochs: usize,
    /// Adam's initial learning rate, book: 0.3.
    pub lr: f64,
    /// The learning rate is multiplied by `gamma` every `lr_decay_epoch` epochs, book: 50.
    pub lr_decay_epoch: usize,
    /// The decay factor, book: 0.8.
    pub gamma: f64,
    /// Loss weights, book: [`StyleWeights::book`] (style counted ten times in the total).
    pub weights: StyleWeights,
    /// `(height, width)` both images are resized to, book: (300, 450).
    pub image_size: (usize, usize),
    /// Read the features after the following ReLU, as the book does through torchvision's
    /// in-place ReLU (see `d2l_vision::style`), book: true.
    pub post_relu: bool,
    /// Record the losses every `log_every` epochs (the book's animator: 10). 0 records
    /// only the last epoch.
    pub log_every: usize,
    /// Indices of the content layers in the net, book: [`CONTENT_LAYERS`] (`[25]`).
    pub content_layers: Vec<usize>,
    /// Indices of the style layers in the net, book: [`STYLE_LAYERS`] (`[0, 5, 10, 19, 28]`).
    pub style_layers: Vec<usize>,
    /// Where to run: the net and both images are moved there (the CPU by default); the
    /// returned image is on the CPU.
    pub device: Device,
}

impl Default for StyleConfig {
    fn default() -> Self {
        StyleConfig {
            epochs: 500,
            lr: 0.3,
            lr_decay_epoch: 50,
            gamma: 0.8,
            weights: StyleWeights::book(),
            image_size: (300, 450),
            post_relu: true,
            log_every: 10,
            content_layers: CONTENT_LAYERS.to_vec(),
            style_layers: STYLE_LAYERS.to_vec(),
            device: Device::Cpu,
        }
    }
}

impl StyleConfig {
    /// The learning rate used during epoch `epoch` (0-based):
    /// `lr · gamma^(epoch / lr_decay_epoch)`.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        self.lr * self.gamma.powi((epoch / self.lr_decay_epoch.max(1)) as i32)
    }

    fn validate(&self) -> Result<()> {
        let bad = |msg: String| {
            Err(Error::InvalidArgument {
                op: "style_transfer",
                msg,
            })
        };
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be a finite value > 0, got {}", self.lr));
        }
        if self.lr_decay_epoch == 0 {
            return bad("lr_decay_epoch must be at least 1".into());
        }
        let (h, w) = self.image_size;
        if h < 2 || w < 2 {
            return bad(format!("image size must be at least 2×2, got {h}×{w}"));
        }
        Ok(())
    }
}

/// The losses of one recorded epoch (the book's animator rows: `sum(contents_l)`,
/// `sum(styles_l)`, `tv_l`, all already weighted; the style sum at weight 1e3, i.e.
/// without the ×10 repetition).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochLosses {
    /// 1-based epoch number (the book plots `epoch + 1`).
    pub epoch: usize,
    /// Σ weighted content losses.
    pub content: f64,
    /// Σ weighted style losses (each counted once).
    pub style: f64,
    /// Weighted total-variation loss.
    pub tv: f64,
    /// The total that was minimised (with `style_repeat`).
    pub total: f64,
    /// The learning rate used in this epoch.
    pub lr: f64,
    /// Wall-clock seconds this epoch took (forward, backward, step).
    pub seconds: f64,
}

fn sum_f64(ts: &[Tensor]) -> Result<f64> {
    ts.iter().map(|t| t.item_f64()).sum()
}

/// The book's `train`: see the module notes. `content_img` and `style_img` are `(3, H, W)`
/// images (uint8, or float in `[0, 1]`), resized to `cfg.image_size`. The net is frozen
/// (`requires_grad_(false)`, eval mode) and left so. Returns the synthesised image as a
/// `(3, h, w)` float image in `[0, 1]` and the recorded losses.
pub fn transfer(
    net: &Sequential,
    content_img: &Tensor,
    style_img: &Tensor,
    cfg: &StyleConfig,
) -> Result<(Tensor, Vec<EpochLosses>)> {
    transfer_with(net, content_img, style_img, cfg, |_, _| {})
}

/// [`transfer`], calling `on_epoch(row, recorded)` after every epoch (for progress
/// printing and timing); `recorded` says whether the row goes into the returned log.
pub fn transfer_with(
    net: &Sequential,
    content_img: &Tensor,
    style_img: &Tensor,
    cfg: &StyleConfig,
    mut on_epoch: impl FnMut(&EpochLosses, bool),
) -> Result<(Tensor, Vec<EpochLosses>)> {
    cfg.validate()?;
    d2l_train::device::to_device(net, cfg.device)?;
    net.requires_grad_(false)?;
    net.eval();
    let size = Some(cfg.image_size);
    let content_x = preprocess(content_img, size)?.to(cfg.device)?;
    let style_x = preprocess(style_img, size)?.to(cfg.device)?;
    let features = |x: &Tensor| -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        let outs = net.forward_trace(x)?;
        select_features(&outs, &cfg.content_layers, &cfg.style_layers, cfg.post_relu)
    };
    // get_contents / get_styles: fixed targets, no graph.
    let (contents_y, styles_y_gram) = no_grad(|| -> Result<_> {
        let (contents_y, _) = features(&content_x)?;
        let (_, styles_y) = features(&style_x)?;
        let grams = styles_y.iter().map(gram).collect::<Result<Vec<_>>>()?;
        Ok((
            contents_y.iter().map(|t| t.detach()).collect::<Vec<_>>(),
            grams,
        ))
    })?;
    // get_inits: the synthesised image, a copy of the content image, is the only parameter.
    let x = content_x.detach().mul_scalar(1.0)?.requires_grad_(true)?;
    let mut opt = Adam::new([x.clone()], cfg.lr)?;
    let mut sched = StepLr::new(cfg.lr, cfg.lr_decay_epoch, cfg.gamma)?;
    let mut log = Vec::new();
    for epoch in 0..cfg.epochs {
        let t0 = Instant::now();
        let lr = opt.lr();
        opt.zero_grad();
        let (contents_y_hat, styles_y_hat) = features(&x)?;
        let (contents_l, styles_l, tv_l, total) = compute_loss(
            &x,
            &contents_y_hat,
            &styles_y_hat,
            &contents_y,
            &styles_y_gram,
            &cfg.weights,
        )?;
        total.backward()?;
        opt.step()?;
        sched.step(&mut opt);
        d2l_train::device::sync(cfg.device)?;
        let seconds = t0.elapsed().as_secs_f64();
        let n = epoch + 1;
        let record = if cfg.log_every == 0 {
            n == cfg.epochs
        } else {
            n % cfg.log_every == 0 || n == cfg.epochs
        };
        let row = EpochLosses {
            epoch: n,
            content: sum_f64(&contents_l)?,
            style: sum_f64(&styles_l)?,
            tv: tv_l.item_f64()?,
            total: total.item_f64()?,
            lr,
            seconds,
        };
        on_epoch(&row, record);
        if record {
            log.push(row);
        }
    }
    Ok((postprocess(&x.detach().cpu()?)?, log))
}

/// The `metrics.csv` columns of a style-transfer run.
pub const STYLE_COLUMNS: [&str; 5] = ["content", "style", "tv", "total", "lr"];

/// Writes the run-folder files every training run has (see [`d2l_train::run_dir`]) for a style
/// transfer: `metrics.csv` (the recorded epochs' losses), `curves.png`/`curves.svg` (the
/// losses against the epoch on a log axis), `model.safetensors` (what was optimised: the
/// synthesised image, as `image`, `(3, h, w)` in `[0, 1]`) and `summary.json`. The loop
/// optimises pixels, not parameters over a data set, so it keeps its own loop; the folder
/// looks like any other run's.
pub fn write_run(
    dir: &d2l_train::run_dir::RunDir,
    log: &[EpochLosses],
    image: &Tensor,
    device: d2l_tensor::Device,
    seconds: f64,
) -> Result<()> {
    use d2l_train::trainer::{EpochMetrics, TrainSummary};
    let epochs: Vec<EpochMetrics> = log
        .iter()
        .map(|r| EpochMetrics {
            epoch: r.epoch,
            train_loss: r.total,
            train_acc: None,
            test_acc: None,
            test_loss: None,
            examples_per_sec: 1.0 / r.seconds.max(1e-9),
            seconds: r.seconds,
            columns: STYLE_COLUMNS
                .iter()
                .zip([r.content, r.style, r.tv, r.total, r.lr])
                .map(|(n, v)| (n.to_string(), Some(v)))
                .collect(),
        })
        .collect();
    dir.write_metrics(&epochs, &STYLE_COLUMNS, "images")?;
    dir.plot_task_curves(
        &epochs,
        &d2l_train::tasks::CurveSpec {
            series: vec![("content", "content"), ("style", "style"), ("TV", "tv")],
            ylabel: "loss",
            log_y: true,
        },
    )?;
    d2l_nn::serialize::save(
        dir.file("model.safetensors"),
        &[("image".to_string(), image.cpu()?)],
    )?;
    let last = epochs.last();
    let summary = TrainSummary {
        task: "style-transfer".into(),
        train_loss: last.map_or(f64::NAN, |m| m.train_loss),
        train_acc: None,
        test_acc: None,
        examples_per_sec: 0.0,
        seconds,
        stopped_early: None,
        device: device.to_string(),
        resumed_after_epoch: None,
        extra: serde_json::json!({ "image_shape": image.shape() }),
        epochs,
        distributed: None,
    };
    dir.write_summary(&summary)
}
