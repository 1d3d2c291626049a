//! Semantic segmentation (D2L 13.9–13.11): `d2l train fcn` trains the book's FCN on Pascal
//! VOC 2012 (`--dataset voc`) or on a segmentation set the program renders in the VOC
//! layout (`--dataset generated`, the default when VOC is not here), and `d2l segment fcn`
//! writes an image beside its predicted, VOC-coloured class map.
//!
//! The recipe is the book's: SGD lr 0.001, weight decay 1e-3, batch 32, 5 epochs, the
//! per-image mean of the per-pixel cross entropy, pixel accuracy. The book sums the
//! per-image losses over the batch; the loop here averages them, and SGD on the sum with
//! (lr η, weight decay λ) is exactly SGD on the mean with (η·B, λ/B), so the flags keep the
//! book's meaning and the optimiser gets the scaled values.

use super::train::TrainArgs;
use super::CliResult;
use clap::Args;
use d2l_models::fcn::fcn;
use d2l_nn::optim::{Sgd, SgdConfig};
use d2l_nn::Module;
use d2l_tensor::{no_grad, DType, Tensor};
use d2l_train::tasks::segmentation::{EpochHooked, SegmentationTask};
use d2l_train::tasks::BatchSource;
use d2l_train::trainer::{TrainConfig, Trainer};
use d2l_vision::generated::segmentation::{
    load_segmentation_set, SegmentationSetSpec, GENERATED_CLASSES, GENERATED_CROP,
};
use d2l_vision::image::{read_image, write_png};
use d2l_vision::transforms::{normalize, to_tensor, IMAGENET_MEAN, IMAGENET_STD};
use d2l_vision::voc::{load_voc, VocLoaders, VOC_CLASSES, VOC_COLORMAP};
use serde_json::json;
use std::path::PathBuf;

/// Whether `name` is a segmentation model.
pub fn is_segmentation_model(name: &str) -> bool {
    name == "fcn"
}

/// (loaders, classes, crop, description) for `--dataset voc|generated`.
fn seg_data(a: &TrainArgs, batch: usize) -> CliResult<(VocLoaders, usize, String)> {
    let hub = a.data.hub(a.quiet);
    let generated = |why: Option<String>| -> CliResult<(VocLoaders, usize, String)> {
        let spec = SegmentationSetSpec {
            seed: SegmentationSetSpec::default().seed ^ a.data.seed,
            ..SegmentationSetSpec::default()
        };
        let root = hub
            .cache_dir()
            .join("generated")
            .join(format!("segmentation-s{:x}", spec.seed));
        if let Some(why) = why {
            eprintln!("notice: {why}; training on the generated segmentation set instead");
        }
        let l = load_segmentation_set(&root, &spec, batch, GENERATED_CROP)?;
        Ok((
            l,
            GENERATED_CLASSES.len(),
            format!(
                "generated segmentation set in {}, crop {}×{}",
                root.display(),
                GENERATED_CROP.0,
                GENERATED_CROP.1
            ),
        ))
    };
    match a.data.dataset.as_deref() {
        Some("generated") => generated(None),
        Some("voc") | Some("voc2012") => Ok((
            load_voc(&hub, batch, (320, 480))?,
            VOC_CLASSES.len(),
            "VOC2012, crop 320×480".into(),
        )),
        Some(other) => {
            Err(format!("fcn trains on `voc` or `generated`, got --dataset {other}").into())
        }
        None => match load_voc(&hub.clone().offline(true).quiet(), batch, (320, 480)) {
            Ok(l) => Ok((l, VOC_CLASSES.len(), "VOC2012, crop 320×480".into())),
            Err(e) => generated(Some(format!(
                "VOC2012 is not here ({})",
                e.to_string().lines().next().unwrap_or("")
            ))),
        },
    }
}

/// Runs `d2l train fcn`.
pub fn train(a: TrainArgs) -> CliResult<()> {
    super::train::check_recipe_flags(
        &a,
        "fcn (the book's SGD recipe)",
        &[
            ("--optimizer", a.optimizer.is_some()),
            ("--momentum", a.momentum.is_some()),
            ("--dropout", a.dropout.is_some()),
            ("--resize", a.data.resize.is_some()),
            ("--width-mult", a.width_mult != 1.0),
        ],
    )?;
    let device = a.device.resolve()?;
    a.data.apply_engine_settings()?;
    let batch = a.data.batch_size.unwrap_or(32);
    let (loaders, classes, source) = seg_data(&a, batch)?;
    let train = a.data.limit_train(loaders.train.clone())?;
    let val = a.data.limit_test(loaders.val.clone())?;
    let net = fcn(classes, a.weights.as_deref())?;
    let epochs = a.epochs.unwrap_or(5);
    let lr = a.lr.unwrap_or(0.001);
    let wd = a.weight_decay.unwrap_or(1e-3);
    let mut opt = Sgd::with_config(
        net.parameters(),
        SgdConfig {
            lr: lr * batch as f64,
            weight_decay: wd / batch as f64,
            ..Default::default()
        },
    )?;
    let distributed = super::train::distributed(&a)?;
    let run_dir = super::train::open_train_dir(&a, &a.model)?;
    super::train::write_run_config(
        run_dir.as_ref(),
        &a,
        json!({
            "model": a.model, "data": source, "classes": classes, "epochs": epochs,
            "batch_size": batch, "lr": lr, "weight_decay": wd, "body_weights": a.weights,
            "optimizer_lr_for_mean_loss": lr * batch as f64, "seed": a.data.seed,
            "device": device.to_string(),
        }),
    )?;
    if !a.quiet && a.resume.is_none() {
        println!(
            "training fcn on {source}: {} training / {} validation crops, {classes} classes{}",
            train.num_examples(),
            val.num_examples(),
            if a.weights.is_some() {
                ", body from the given ResNet-18 weights"
            } else {
                ", body from scratch (no --weights)"
            }
        );
    }
    let run_path = super::train::run_path(&run_dir);
    let config = TrainConfig {
        epochs,
        quiet: a.quiet,
        run_dir,
        device,
        resume: a.resume.is_some(),
        distributed,
        ..Default::default()
    };
    // The crops of epoch e are VOC's `set_epoch(e)` (both sets, as the book's loaders).
    let source_train = EpochHooked::new(&train, |e| loaders.set_epoch(e));
    let task = SegmentationTask::new(&net, classes);
    let s = Trainer::for_task(Box::new(task), &mut opt, config)
        .fit_source(&source_train, Some(&val as &dyn BatchSource))?;
    if let Some(last) = s.epochs.last() {
        let (loss, acc) = (last.train_loss, last.train_acc.unwrap_or(f64::NAN));
        let test_acc = last.test_acc.unwrap_or(f64::NAN);
        let miou = last.column("test_miou").unwrap_or(f64::NAN);
        println!("loss {loss:.3}, train acc {acc:.3}, test acc {test_acc:.3}, test mIoU {miou:.3}");
        println!(
            "{:.1} examples/sec on {device} ({} CPU threads)",
            last.examples_per_sec,
            d2l_tensor::num_threads()
        );
        println!("run saved in {}", run_path.display());
        if a.json {
            println!(
                "{}",
                json!({"model": a.model, "train_loss": loss, "train_acc": acc,
                       "test_loss": last.test_loss, "test_acc": last.test_acc,
                       "test_miou": last.column("test_miou"),
                       "examples_per_sec": last.examples_per_sec,
                       "run_dir": run_path, "device": device.to_string()})
            );
        }
    }
    super::train::check_interrupted(s.stopped_early.as_deref(), &run_path)
}

/// Flags of `d2l segment`.
#[derive(Args, Clone, Debug)]
pub struct SegmentArgs {
    /// Model name (fcn; mask-rcnn draws instances with their boxes and masks).
    pub model: String,
    /// The image (JPEG or PNG).
    pub image: PathBuf,
    /// Trained weights (`model.safetensors` of a `d2l train fcn` run).
    #[arg(long)]
    pub weights: PathBuf,
    /// Output PNG: the image (cropped to a multiple of 32) beside the coloured prediction.
    #[arg(long, default_value = "segmentation.png")]
    pub out: PathBuf,
    #[command(flatten)]
    pub device: super::DeviceArgs,
}

/// Runs `d2l segment` (the book's `predict` + `label2image`).
pub fn segment(a: SegmentArgs) -> CliResult<()> {
    if a.model == "mask-rcnn" {
        return super::rcnn::segment(a);
    }
    if !is_segmentation_model(&a.model) {
        return Err(format!(
            "`{}` is not a segmentation model; expected fcn or mask-rcnn",
            a.model
        )
        .into());
    }
    let device = a.device.resolve()?;
    let entries = d2l_nn::serialize::load(&a.weights)?;
    let classes = entries
        .iter()
        .find(|(n, _)| n == "final_conv.weight")
        .map(|(_, t)| t.shape()[0])
        .ok_or_else(|| {
            format!(
                "{} holds no `final_conv.weight`: not FCN weights",
                a.weights.display()
            )
        })?;
    if classes > VOC_COLORMAP.len() {
        return Err(format!("{classes} classes; the VOC palette colours at most 21").into());
    }
    let net = fcn(classes, None)?;
    d2l_nn::serialize::load_state_dict(&net, &a.weights, true)?;
    d2l_train::device::to_device(&net, device)?;
    net.eval();
    let img = read_image(&a.image)?;
    let (h, w) = (img.shape()[1] / 32 * 32, img.shape()[2] / 32 * 32);
    if h == 0 || w == 0 {
        return Err(format!(
            "{} is {}×{}; FCN needs at least 32×32",
            a.image.display(),
            img.shape()[1],
            img.shape()[2]
        )
        .into());
    }
    let img = img.narrow(1, 0, h)?.narrow(2, 0, w)?.contiguous()?;
    let x = normalize(&to_tensor(&img)?, &IMAGENET_MEAN, &IMAGENET_STD)?
        .unsqueeze(0)?
        .to(device)?;
    let pred = no_grad(|| net.forward(&x)?.argmax(1, false))?.to_vec::<i64>();
    let mut mask = vec![0u8; 3 * h * w];
    let mut counts = vec![0usize; classes];
    for (p, &c) in pred.iter().enumerate() {
        let c = c.clamp(0, classes as i64 - 1) as usize;
        counts[c] += 1;
        for ch in 0..3 {
            mask[ch * h * w + p] = VOC_COLORMAP[c][ch];
        }
    }
    let mask = Tensor::from_vec(mask, &[3, h, w])?;
    let side = Tensor::cat(&[&img.to_dtype(DType::U8)?, &mask], 2)?;
    write_png(&side, &a.out, false)?;
    let names: &[&str] = if classes == GENERATED_CLASSES.len() {
        &GENERATED_CLASSES
    } else {
        &VOC_CLASSES
    };
    println!("{} ({h}×{w}) → {}", a.image.display(), a.out.display());
    for (c, n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
        println!(
            "  {:<12} {:>6.2} % of the pixels",
            names.get(c).unwrap_or(&"?"),
            100.0 * *n as f64 / (h * w) as f64
        );
    }
    Ok(())
}
