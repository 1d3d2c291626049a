//! `d2l style --content IMG --style IMG [--weights vgg19.pth] --out out.png`: neural style
//! transfer (D2L 13.12) with VGG-19's `features[0..=28]`, Adam(0.3) with the step decay
//! (×0.8 every 50 epochs), 500 epochs at 300×450 by default. Writes the synthesised
//! image, a loss plot (`<out>-loss.png`/`.svg`: content, style and TV against the epoch)
//! and prints the losses and the time per epoch.

use super::CliResult;
use clap::Args;
use d2l_book::style_transfer::{transfer_with, write_run, StyleConfig};
use d2l_models::torchvision::{load_torchvision_weights, vgg19, vgg19_features};
use d2l_train::plot::{save_line_plot, PlotSpec, Series};
use d2l_train::run_dir::{RunDir, RunMode};
use d2l_vision::image::{read_image, write_png};
use d2l_vision::style::StyleWeights;
use std::path::{Path, PathBuf};

/// The last VGG-19 `features` layer the book keeps (conv5_1).
const UPTO: usize = 28;

/// Flags of `d2l style`.
#[derive(Args, Clone, Debug)]
pub struct StyleArgs {
    /// The content image (default: the book's rainier.jpg in
    /// $D2L_DATA_DIR/d2l_images or ../shared/data/d2l_images).
    #[arg(long)]
    pub content: Option<PathBuf>,
    /// The style image (default: the book's autumn-oak.jpg, found like --content).
    #[arg(long)]
    pub style: Option<PathBuf>,
    /// torchvision's VGG-19 ImageNet weights (vgg19-dcbb9e9d.pth). Without them the net
    /// is randomly initialised and the result is texture-like, not the book's.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Number of epochs (the book's 500).
    #[arg(long, default_value_t = 500)]
    pub epochs: usize,
    /// Adam's initial learning rate (the book's 0.3).
    #[arg(long, default_value_t = 0.3)]
    pub lr: f64,
    /// Image size HxW both images are resized to (the book's 300x450).
    #[arg(long, default_value = "300x450")]
    pub size: String,
    /// The PNG to write; the loss plot goes beside it as `<stem>-loss.png`.
    #[arg(long, default_value = "style.png")]
    pub out: PathBuf,
    /// The run folder (config.json, metrics.csv, curves, the image as model.safetensors,
    /// summary.json), as every training run has; default runs/style-<time>.
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Use the weights as the book states them (style 1e3, counted once) instead of its
    /// effective total (style losses counted ten times).
    #[arg(long)]
    pub stated_weights: bool,
    /// Print the losses every N epochs (the book's animator: 10).
    #[arg(long, default_value_t = 10)]
    pub log_every: usize,
    /// Seed for the random VGG initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads for the kernels (default: RAYON_NUM_THREADS or all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub device: super::DeviceArgs,
}

/// The smallest side `--size` accepts: VGG-19's `features[0..=28]` halves the image with
/// four 2×2 max-pools, so 16 pixels leave one at the last convolution.
pub const MIN_SIDE: usize = 16;

/// f32 values per pixel of the image that the style-transfer step holds: VGG-19's
/// activations up to layer 28 (≈ 650 values per input pixel, most in the 64-channel first
/// block), their gradients and the Gram matrices' inputs, rounded up.
const VALUES_PER_PIXEL: usize = 2048;

/// Parses `--size HxW` (both at least [`MIN_SIDE`], and the network's memory within the
/// limit), else a one-line error.
pub fn parse_size(s: &str) -> CliResult<(usize, usize)> {
    let err = || {
        format!("--size must be HxW with H, W >= {MIN_SIDE} (VGG-19's four poolings; e.g. 300x450), got `{s}`")
    };
    let (h, w) = s.trim().split_once(['x', 'X', '×']).ok_or_else(err)?;
    let h: usize = h.trim().parse().map_err(|_| err())?;
    let w: usize = w.trim().parse().map_err(|_| err())?;
    if h < MIN_SIDE || w < MIN_SIDE {
        return Err(err().into());
    }
    super::sizes::check_elements(
        &format!("--size {h}x{w} (VGG-19's activations and gradients for a {h}×{w} image)"),
        &[h, w, VALUES_PER_PIXEL],
        4,
    )?;
    Ok((h, w))
}

fn book_image(file: &str) -> PathBuf {
    let dir = std::env::var_os("D2L_DATA_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data"));
    dir.join("d2l_images").join(file)
}

fn load_image(path: &Path, what: &str) -> CliResult<d2l_tensor::Tensor> {
    if !path.is_file() {
        return Err(format!("{what} image {} not found", path.display()).into());
    }
    read_image(path).map_err(|e| format!("cannot read {what} image {}: {e}", path.display()).into())
}

/// `<dir>/<stem>-loss` for the loss plot (save_line_plot adds .png and .svg).
fn plot_base(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "style".into());
    out.with_file_name(format!("{stem}-loss"))
}

/// Runs `d2l style`.
pub fn run(a: StyleArgs) -> CliResult<()> {
    let size = parse_size(&a.size)?;
    super::sizes::check_output(&a.out)?;
    if a.epochs == 0 {
        return Err("--epochs must be at least 1, got 0".into());
    }
    let device = a.device.resolve()?;
    super::sizes::set_threads(a.threads)?;
    d2l_tensor::manual_seed(a.seed);
    let content_path = a
        .content
        .clone()
        .unwrap_or_else(|| book_image("rainier.jpg"));
    let style_path = a
        .style
        .clone()
        .unwrap_or_else(|| book_image("autumn-oak.jpg"));
    let content = load_image(&content_path, "content")?;
    let style = load_image(&style_path, "style")?;

    let net = match &a.weights {
        Some(w) => {
            if !w.is_file() {
                return Err(format!("weights file {} not found", w.display()).into());
            }
            let full = vgg19(1000)?;
            load_torchvision_weights(&full, w)?;
            super::eval::warn_non_finite(&full, w);
            println!(
                "VGG-19 features[0..={UPTO}] with ImageNet weights from {}",
                w.display()
            );
            full.features_upto(UPTO)?
        }
        None => {
            println!(
                "NOTE: no --weights given: VGG-19 is randomly initialised (seed {}). The result \
                 will be texture-like, not the book's; pass torchvision's vgg19-dcbb9e9d.pth \
                 for the book's style transfer.",
                a.seed
            );
            vgg19_features(UPTO)?
        }
    };

    let cfg = StyleConfig {
        epochs: a.epochs,
        lr: a.lr,
        image_size: size,
        log_every: a.log_every,
        weights: if a.stated_weights {
            StyleWeights::stated()
        } else {
            StyleWeights::book()
        },
        device,
        ..StyleConfig::default()
    };
    println!(
        "content {} · style {} · {}x{} · {} epochs · Adam lr {} ×{} every {} epochs · weights {} · {} threads",
        content_path.display(),
        style_path.display(),
        size.0,
        size.1,
        cfg.epochs,
        cfg.lr,
        cfg.gamma,
        cfg.lr_decay_epoch,
        if a.stated_weights {
            "as stated (style 1e3 once)"
        } else {
            "the book's (style losses counted 10x)"
        },
        d2l_tensor::num_threads()
    );
    let run_dir = RunDir::open(a.run_dir.clone(), "style", RunMode::New)?;
    run_dir.write_config(&serde_json::json!({
        "command": "style", "content": content_path, "style": style_path,
        "weights": a.weights, "epochs": cfg.epochs, "lr": cfg.lr, "gamma": cfg.gamma,
        "lr_decay_epoch": cfg.lr_decay_epoch, "size": [size.0, size.1],
        "stated_weights": a.stated_weights, "seed": a.seed,
        "threads": d2l_tensor::num_threads(), "device": device.to_string(),
    }))?;
    let mut times = Vec::with_capacity(cfg.epochs);
    let (img, log) = transfer_with(&net, &content, &style, &cfg, |r, recorded| {
        times.push(r.seconds);
        if recorded {
            println!(
                "epoch {:4}  content {:.4}  style {:.4}  tv {:.4}  total {:.4}  lr {:.4}  {:.3} s/epoch",
                r.epoch, r.content, r.style, r.tv, r.total, r.lr, r.seconds
            );
        }
    })?;
    let total: f64 = times.iter().sum();
    let mut sorted = times.clone();
    sorted.sort_by(|x, y| x.total_cmp(y));
    let median = sorted[sorted.len() / 2];
    println!(
        "time per epoch: median {median:.3} s, mean {:.3} s ({} epochs, {:.1} s in all, {} threads)",
        total / times.len() as f64,
        times.len(),
        total,
        d2l_tensor::num_threads()
    );

    write_png(&img, &a.out, true)?;
    println!(
        "wrote {} ({}x{})",
        a.out.display(),
        img.shape()[1],
        img.shape()[2]
    );
    let x: Vec<f64> = log.iter().map(|r| r.epoch as f64).collect();
    let series = [
        Series::new(
            "content",
            x.clone(),
            log.iter().map(|r| r.content).collect(),
        ),
        Series::new("style", x.clone(), log.iter().map(|r| r.style).collect()),
        Series::new("TV", x, log.iter().map(|r| r.tv).collect()),
    ];
    let spec = PlotSpec {
        title: "style transfer losses (D2L 13.12)".into(),
        xlabel: "epoch".into(),
        ylabel: "loss".into(),
        log_y: true,
        ..PlotSpec::default()
    };
    let (png, _) = save_line_plot(&plot_base(&a.out), &spec, &series)?;
    println!("wrote {}", png.display());
    write_run(&run_dir, &log, &img, device, total)?;
    println!("run saved in {}", run_dir.path().display());
    Ok(())
}
