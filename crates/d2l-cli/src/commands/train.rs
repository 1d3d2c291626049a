//! `d2l train MODEL`: the book's recipe for the model, flags override it; a run
//! directory collects metrics, curves, weights and the config (D2L 3.6 `train_ch3`).

use super::{find_model, image_data, CliResult, DataArgs, DeviceArgs};
use clap::Args;
use d2l_data::loader::load_array;
use d2l_data::synthetic::synthetic_data;
use d2l_models::recipe::OptimizerKind;
use d2l_models::zoo::{ModelInfo, TaskKind};
use d2l_nn::loss::{cross_entropy_simple, mse_loss, Reduction};
use d2l_nn::optim::{Adam, AdamW, Optimizer, Sgd};
use d2l_nn::{Module, Sequential};
use d2l_tensor::{Generator, Tensor};
use d2l_train::run_dir::RunDir;
use d2l_train::trainer::{LossFn, Task, TrainConfig, TrainSummary, Trainer};
use serde_json::json;
use std::path::PathBuf;

/// Flags of `d2l train`.
#[derive(Args, Clone, Debug)]
pub struct TrainArgs {
    /// Model name (`d2l models` lists them).
    pub model: String,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Epochs (default: the book's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Learning rate (default: the book's).
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Optimiser: sgd, adam or adamw (default: the book's).
    #[arg(long)]
    pub optimizer: Option<String>,
    /// SGD momentum.
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// Weight decay (L2 for sgd/adam, decoupled for adamw).
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Dropout probability for models that have dropout (both layers).
    #[arg(long, allow_negative_numbers = true)]
    pub dropout: Option<f64>,
    /// Scale hidden widths (a smaller model for a laptop).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub width_mult: f64,
    /// Run directory (default runs/<model>-<timestamp>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bars or per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
    /// End with one JSON line summarising the run.
    #[arg(long)]
    pub json: bool,
    /// char-* models: random sampling with a fresh state per batch (D2L 8.3) instead of
    /// sequential partitioning.
    #[arg(long)]
    pub random_iter: bool,
    /// char-* models: time steps per sequence (default: the book's 35).
    #[arg(long)]
    pub num_steps: Option<usize>,
    /// char-* models: hidden units (default: the book's 256; 512 for char-rnn-scratch).
    #[arg(long)]
    pub num_hiddens: Option<usize>,
    /// char-* models: use the first N characters of the corpus, 0 for all (default: the
    /// book's 10000).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// tiny-ssd: class loss `ce` (the book), `focal` or `focal:GAMMA` (13.7 exercise).
    #[arg(long)]
    pub cls_loss: Option<String>,
    /// tiny-ssd: box loss `l1` (the book), `smooth-l1` or `smooth-l1:SIGMA` (13.7 exercise).
    #[arg(long)]
    pub box_loss: Option<String>,
    /// tiny-ssd on the generated set: object classes, 1–4 (default 1, like bananas).
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// tiny-ssd on the generated set: most objects per image (default 1).
    #[arg(long)]
    pub max_objects: Option<usize>,
    /// fcn: torchvision ResNet-18 weights (.pth) for the body (13.11; else from scratch).
    #[arg(long)]
    pub weights: Option<PathBuf>,
}

impl TrainArgs {
    /// The arguments of `d2l train NAME` with no flags.
    pub fn default_for(model: &str) -> TrainArgs {
        TrainArgs {
            model: model.to_string(),
            data: DataArgs::default(),
            device: DeviceArgs::default(),
            epochs: None,
            lr: None,
            optimizer: None,
            momentum: None,
            weight_decay: None,
            dropout: None,
            width_mult: 1.0,
            out: None,
            quiet: false,
            json: false,
            random_iter: false,
            num_steps: None,
            num_hiddens: None,
            max_tokens: None,
            cls_loss: None,
            box_loss: None,
            num_classes: None,
            max_objects: None,
            weights: None,
        }
    }
}

/// Checks the numeric flags before any work starts.
fn validate(a: &TrainArgs) -> CliResult<()> {
    if let Some(lr) = a.lr {
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(format!("--lr must be a positive number, got {lr}").into());
        }
    }
    if a.epochs == Some(0) {
        return Err("--epochs must be at least 1, got 0".into());
    }
    if let Some(p) = a.dropout {
        if !(0.0..1.0).contains(&p) {
            return Err(format!("--dropout must be in [0, 1), got {p}").into());
        }
    }
    for (flag, v) in [
        ("--momentum", a.momentum),
        ("--weight-decay", a.weight_decay),
    ] {
        if let Some(v) = v {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("{flag} must be a non-negative number, got {v}").into());
            }
        }
    }
    if !(a.width_mult > 0.0 && a.width_mult.is_finite()) {
        return Err(format!("--width-mult must be positive, got {}", a.width_mult).into());
    }
    Ok(())
}

/// Builds the optimiser the recipe (or the flags) ask for.
pub fn make_optimizer(
    kind: OptimizerKind,
    params: Vec<Tensor>,
    lr: f64,
    momentum: f64,
    wd: f64,
) -> CliResult<Box<dyn Optimizer>> {
    Ok(match kind {
        OptimizerKind::Sgd => Box::new(Sgd::new(params, lr)?.momentum(momentum).weight_decay(wd)),
        OptimizerKind::Adam => Box::new(Adam::new(params, lr)?.weight_decay(wd)),
        OptimizerKind::AdamW => Box::new(AdamW::new(params, lr)?.weight_decay(wd)),
    })
}

/// Runs `d2l train`.
pub fn run(a: TrainArgs) -> CliResult<()> {
    if a.weights.is_some() && !super::segment::is_segmentation_model(&a.model) {
        return Err(format!(
            "--weights (pretrained body weights) applies to fcn only, not `{}`",
            a.model
        )
        .into());
    }
    if d2l_models::rnn_lm::is_char_model(&a.model) {
        return super::seq::run(a);
    }
    if super::detect::is_detection_model(&a.model) {
        return super::detect::train(a);
    }
    if super::segment::is_segmentation_model(&a.model) {
        return super::segment::train(a);
    }
    validate(&a)?;
    let model = find_model(&a.model)?;
    let device = a.device.resolve()?;
    a.data.apply_engine_settings()?;
    let r = &model.recipe;
    let epochs = a.epochs.unwrap_or(r.epochs);
    let lr = a.lr.unwrap_or(r.lr);
    let kind: OptimizerKind = match &a.optimizer {
        Some(s) => s.parse()?,
        None => r.optimizer,
    };
    let momentum = a.momentum.unwrap_or(r.momentum);
    let wd = a.weight_decay.unwrap_or(r.weight_decay);

    let (net, train, test, dataset, task) = match model.task {
        TaskKind::Classification => {
            let (train, test, notice) = image_data(&model, &a.data, a.quiet)?;
            if let Some(m) = &notice.message {
                eprintln!("notice: {m}");
            }
            let (h, w) = train_image_size(&a, &model);
            let mut cfg = model.config_for(a.data.resize.or(r.resize));
            cfg.in_shape = vec![1, h, w];
            cfg.num_outputs = notice.used.num_classes();
            cfg.width_mult = a.width_mult;
            if let Some(p) = a.dropout {
                cfg.dropout = Some((p, p));
            }
            (
                model.build(&cfg)?,
                train,
                Some(test),
                notice.used.as_str().to_string(),
                Task::Classification,
            )
        }
        TaskKind::Regression => {
            // The book's synthetic set (3.1): w = [2, -3.4], b = 4.2, 1000 examples.
            let batch = a.data.batch_size.unwrap_or(r.batch_size);
            if batch == 0 {
                return Err("--batch-size must be at least 1, got 0".into());
            }
            let true_w = Tensor::from_slice(&[2.0f32, -3.4], &[2])?;
            let (x, y) = synthetic_data(&true_w, 4.2, 1000, &mut Generator::new(a.data.seed))?;
            let train = load_array(x.clone(), y.clone(), batch, true)?;
            let test = load_array(x, y, 1000, false)?;
            (
                model.build(&model.default_config())?,
                train,
                Some(test),
                "synthetic".to_string(),
                Task::Regression,
            )
        }
    };

    let mut optimizer = make_optimizer(kind, net.parameters(), lr, momentum, wd)?;
    let run_dir = RunDir::create(a.out.clone(), model.name)?;
    let config = json!({
        "model": model.name, "dataset": dataset, "epochs": epochs, "lr": lr,
        "optimizer": kind.as_str(), "momentum": momentum, "weight_decay": wd,
        "batch_size": a.data.batch_size.unwrap_or(r.batch_size), "resize": a.data.resize.or(r.resize),
        "dropout": a.dropout, "width_mult": a.width_mult, "seed": a.data.seed,
        "train_limit": a.data.train_limit, "test_limit": a.data.test_limit,
        "threads": d2l_tensor::num_threads(), "params": net.num_parameters(), "section": model.section,
        "device": device.to_string(),
    });
    run_dir.write_config(&config)?;
    if !a.quiet {
        eprintln!(
            "training {} ({}, D2L {}) on {dataset} on {device}: {epochs} epochs, {} lr {lr}, {} parameters → {}",
            model.name,
            model.title,
            model.section,
            kind.as_str(),
            net.num_parameters(),
            run_dir.path().display()
        );
    }
    let loss: LossFn = match task {
        Task::Classification => {
            Box::new(|y_hat: &Tensor, y: &Tensor| cross_entropy_simple(y_hat, y))
        }
        Task::Regression => {
            Box::new(|y_hat: &Tensor, y: &Tensor| mse_loss(y_hat, y, Reduction::Mean))
        }
    };
    let run_path = run_dir.path().to_path_buf();
    let config_t = TrainConfig {
        epochs,
        quiet: a.quiet,
        task,
        run_dir: Some(run_dir),
        device,
        ..Default::default()
    };
    let summary = {
        let mut trainer = Trainer::new(&net, loss, optimizer.as_mut(), config_t);
        trainer.fit(&train, test.as_ref())?
    };
    report(&a, &model, &net, &dataset, epochs, &summary, &run_path)?;
    // D2L 7.5 prints the first batch-norm layer's learned γ and β after training BN-LeNet.
    if let Some(bn) = d2l_models::cnn::bn_report(model.name, &net) {
        println!("{bn}");
    }
    Ok(())
}

fn train_image_size(a: &TrainArgs, model: &ModelInfo) -> (usize, usize) {
    match a.data.resize.or(model.recipe.resize) {
        Some(r) => (r, r),
        None => (28, 28),
    }
}

fn report(
    a: &TrainArgs,
    model: &ModelInfo,
    net: &Sequential,
    dataset: &str,
    epochs: usize,
    s: &TrainSummary,
    run_path: &std::path::Path,
) -> CliResult<()> {
    let fmt = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
    println!(
        "loss {:.3}, train acc {}, test acc {}",
        s.train_loss,
        fmt(s.train_acc),
        fmt(s.test_acc)
    );
    println!(
        "{:.1} examples/sec, {:.1} s; run saved in {}",
        s.examples_per_sec,
        s.seconds,
        run_path.display()
    );
    if let Some(why) = &s.stopped_early {
        println!("stopped early: {why}");
    }
    if a.json {
        let line = json!({
            "model": model.name, "dataset": dataset, "epochs": epochs,
            "epochs_run": s.epochs.len(), "train_loss": s.train_loss, "train_acc": s.train_acc,
            "test_acc": s.test_acc, "examples_per_sec": s.examples_per_sec,
            "params": net.num_parameters(), "seconds": s.seconds,
            "run_dir": run_path, "stopped_early": s.stopped_early, "device": s.device,
        });
        println!("{line}");
    }
    Ok(())
}
