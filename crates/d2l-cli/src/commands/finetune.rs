//! `d2l finetune resnet18 --weights FILE --dataset DIR`: D2L 13.2's recipe. torchvision's
//! ResNet-18 loads pretrained weights (a `.pth` written by `torch.save`, e.g.
//! `resnet18-f37072fd.pth`, or a `.safetensors` from `d2l convert`), its `fc` is replaced
//! by a Xavier-initialised `Linear(512, classes)`, and it trains on an image folder (one
//! sub-folder per class under `train/` and `test/`, the hot-dog layout) with
//! RandomResizedCrop + flip + ImageNet normalisation, testing on resize 256 + centre crop
//! 224. The body learns at `--lr`, the head at `--lr × --head-lr-mult`, SGD with weight
//! decay. `--scratch` trains a fresh network at one learning rate (the book's comparison).
//!
//! The book back-propagates the **sum** of the batch's losses (lr 5e-5 at batch 128). The
//! trainer here averages; SGD on the sum with (lr η, weight decay λ) is exactly SGD on the
//! mean with (η·B, λ/B) for a batch of B, so the flags keep the book's meaning and the
//! optimiser gets the scaled values (only a smaller last batch steps slightly less).
//!
//! This file holds the flags, their checks, the run folder and the printout only. The
//! recipe (the image pipeline, loading the weights and replacing the head, the optimiser's
//! head/body groups, the summed-to-mean conversion, training) is `d2l_book::finetune`, which
//! also holds the offline 13.2 experiment (`d2l finetune-demo`); the mechanism under both
//! (parameter patterns, freezing, parameter groups) is `d2l_nn::finetune`.

use super::{CliResult, DataArgs, DeviceArgs};
use clap::Args;
use d2l_book::finetune;
use d2l_train::run_dir::RunDir;
use d2l_train::trainer::TrainConfig;
use d2l_vision::folder::{load_hotdog, ImageFolder};
use serde_json::json;
use std::path::PathBuf;

/// Flags of `d2l finetune`.
#[derive(Args, Clone, Debug)]
pub struct FinetuneArgs {
    /// Model: resnet18 (torchvision's ImageNet ResNet-18).
    pub model: String,
    /// Pretrained weights: a `.pth` (torch.save) or `.safetensors` with torchvision's names.
    /// Without it (and without --scratch) the command refuses to run.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Train a randomly initialised network at one learning rate instead (13.2's scratch run).
    #[arg(long)]
    pub scratch: bool,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Epochs (the book: 5).
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Learning rate of the body for the summed loss (the book: 5e-5; 5e-4 for --scratch).
    #[arg(long)]
    pub lr: Option<f64>,
    /// The head's learning rate is this many times the body's (the book: 10).
    #[arg(long, default_value_t = 10.0)]
    pub head_lr_mult: f64,
    /// Weight decay (the book: 0.001).
    #[arg(long, default_value_t = 0.001)]
    pub weight_decay: f64,
    /// Training crop size (RandomResizedCrop) and test centre crop (the book: 224).
    #[arg(long, default_value_t = 224)]
    pub image_size: usize,
    /// Test images are resized to this square before the centre crop (the book: 256).
    #[arg(long, default_value_t = 256)]
    pub test_resize: usize,
    /// Run directory (default runs/finetune-<model>-<timestamp>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bars or per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
    /// End with one JSON line summarising the run.
    #[arg(long)]
    pub json: bool,
}

fn check(a: &FinetuneArgs) -> CliResult<()> {
    if a.model != "resnet18" {
        return Err(format!(
            "d2l finetune knows `resnet18` (torchvision's ImageNet ResNet-18), got `{}`",
            a.model
        )
        .into());
    }
    match (&a.weights, a.scratch) {
        (Some(_), true) => return Err("give either --weights or --scratch, not both".into()),
        (None, false) => {
            return Err(
                "fine-tuning needs pretrained weights: --weights resnet18-f37072fd.pth (torchvision's, from https://download.pytorch.org/models/resnet18-f37072fd.pth), or --scratch to train from random initialisation"
                    .into(),
            )
        }
        _ => {}
    }
    if let Some(lr) = a.lr {
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(format!("--lr must be a positive number, got {lr}").into());
        }
    }
    if !(a.head_lr_mult > 0.0 && a.head_lr_mult.is_finite()) {
        return Err(format!("--head-lr-mult must be positive, got {}", a.head_lr_mult).into());
    }
    if !(a.weight_decay >= 0.0 && a.weight_decay.is_finite()) {
        return Err(format!("--weight-decay must be >= 0, got {}", a.weight_decay).into());
    }
    if a.epochs == 0 || a.data.batch_size == Some(0) {
        return Err("--epochs and --batch-size must be at least 1".into());
    }
    if a.image_size < 32 || a.test_resize < a.image_size {
        return Err(format!(
            "--image-size must be at least 32 and --test-resize at least --image-size, got {} and {}",
            a.image_size, a.test_resize
        )
        .into());
    }
    Ok(())
}

/// The hot-dog set through the hub (`--dataset hotdog`, the default), or any folder with
/// `train/` and `test/` image folders.
fn folders(a: &FinetuneArgs) -> CliResult<(ImageFolder, ImageFolder, String)> {
    match a.data.dataset.as_deref() {
        None | Some("hotdog") => {
            let (tr, te) = load_hotdog(&a.data.hub(a.quiet))?;
            Ok((tr, te, "hotdog".into()))
        }
        Some(dir) => {
            let root = PathBuf::from(dir);
            if !root.join("train").is_dir() || !root.join("test").is_dir() {
                return Err(format!(
                    "--dataset {dir}: expected `hotdog` or a folder holding train/ and test/ (one sub-folder per class in each)"
                )
                .into());
            }
            let tr = ImageFolder::open(root.join("train"))?;
            let te = ImageFolder::open(root.join("test"))?;
            if tr.classes() != te.classes() {
                return Err(format!(
                    "--dataset {dir}: train/ has classes {:?} but test/ has {:?}",
                    tr.classes(),
                    te.classes()
                )
                .into());
            }
            Ok((tr, te, root.display().to_string()))
        }
    }
}

/// Runs `d2l finetune`.
pub fn run(a: FinetuneArgs) -> CliResult<()> {
    check(&a)?;
    let device = a.device.resolve()?;
    a.data.apply_engine_settings()?;
    let (train_set, test_set, source) = folders(&a)?;
    let classes = train_set.classes().to_vec();
    let batch = a.data.batch_size.unwrap_or(128);
    let (train, test, epoch) = finetune::imagenet_folder_loaders(
        (train_set, test_set),
        (a.image_size, a.test_resize),
        batch,
        a.data.seed,
    )?;
    let seed = Some(a.data.seed);
    let train = super::head_loader(train, a.data.train_limit, seed, "--train-limit")?;
    let test = super::head_loader(test, a.data.test_limit, None, "--test-limit")?;

    let net = finetune::pretrained_resnet18(a.weights.as_deref(), classes.len())?;
    if let Some(w) = &a.weights {
        super::eval::warn_non_finite(&net, w);
    }
    let lr = a.lr.unwrap_or(if a.scratch { 5e-4 } else { 5e-5 });
    let (lr_mean, wd_mean) = finetune::mean_loss_equivalent(lr, a.weight_decay, batch);
    let head = [finetune::RESNET_HEAD];
    let head = (!a.scratch).then_some(&head[..]);
    let mut opt = finetune::finetune_sgd(&net, head, lr_mean, a.head_lr_mult, wd_mean)?;
    let name = format!("finetune-{}", a.model);
    let run_dir = RunDir::create(a.out.clone(), &name)?;
    run_dir.write_config(&json!({
        "model": a.model, "data": source, "classes": classes, "weights": a.weights,
        "scratch": a.scratch, "epochs": a.epochs, "batch_size": batch, "lr": lr,
        "head_lr_mult": if a.scratch { 1.0 } else { a.head_lr_mult },
        "weight_decay": a.weight_decay, "image_size": a.image_size,
        "test_resize": a.test_resize, "seed": a.data.seed,
        "optimizer_lr_for_mean_loss": lr_mean, "optimizer_weight_decay_for_mean_loss": wd_mean,
        "device": device.to_string(),
    }))?;
    if !a.quiet {
        println!(
            "{} {} on {source}: {} training / {} test images, classes {classes:?}",
            if a.scratch {
                "training from scratch"
            } else {
                "fine-tuning"
            },
            a.model,
            train.num_examples(),
            test.num_examples()
        );
    }
    let cfg = TrainConfig {
        epochs: a.epochs,
        quiet: a.quiet,
        run_dir: Some(run_dir.clone()),
        device,
        ..TrainConfig::default()
    };
    let summary = finetune::train_finetune(&net, &mut opt, (&train, &test), cfg, epoch)?;
    println!("{}", d2l_book::train_report(&summary));
    println!("run saved in {}", run_dir.path().display());
    if a.json {
        println!(
            "{}",
            json!({"model": a.model, "scratch": a.scratch, "train_loss": summary.train_loss,
                   "train_acc": summary.train_acc, "test_acc": summary.test_acc,
                   "examples_per_sec": summary.examples_per_sec, "run_dir": run_dir.path(),
                   "device": summary.device})
        );
    }
    Ok(())
}
