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
use d2l_data::loader::DataLoader;
use d2l_models::fcn::{fcn, pixel_accuracy, seg_loss, Fcn};
use d2l_nn::optim::{Optimizer, Sgd, SgdConfig};
use d2l_nn::Module;
use d2l_tensor::{no_grad, DType, Tensor};
use d2l_train::metrics::{data_error, Accumulator};
use d2l_train::run_dir::{write_atomic, RunDir};
use d2l_vision::image::{read_image, write_png};
use d2l_vision::transforms::{normalize, to_tensor, IMAGENET_MEAN, IMAGENET_STD};
use d2l_vision::voc::{
    load_segmentation_set, load_voc, SegmentationSetSpec, VocLoaders, GENERATED_CLASSES,
    GENERATED_CROP, VOC_CLASSES, VOC_COLORMAP,
};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

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

/// Mean loss per image and pixel accuracy of `net` over `loader` (eval mode).
fn evaluate(net: &Fcn, loader: &DataLoader) -> CliResult<(f64, f64)> {
    net.eval();
    let r = no_grad(|| -> CliResult<(f64, f64)> {
        let mut m = Accumulator::new(4);
        let device = d2l_train::device::model_device(net);
        for b in loader.iter() {
            let b = b.map_err(data_error)?;
            let (x, y) = (b.x.to(device)?, b.y.to(device)?);
            let y_hat = net.forward(&x)?;
            let (c, t) = pixel_accuracy(&y_hat, &y)?;
            let l = seg_loss(&y_hat, &y)?.sum_all()?.item_f64()?;
            m.add(&[l, b.len() as f64, c as f64, t as f64]);
        }
        Ok((m.get(0) / m.get(1).max(1.0), m.get(2) / m.get(3).max(1.0)))
    });
    net.train();
    r
}

/// Runs `d2l train fcn`.
pub fn train(a: TrainArgs) -> CliResult<()> {
    for (flag, given) in [
        ("--optimizer", a.optimizer.is_some()),
        ("--momentum", a.momentum.is_some()),
        ("--dropout", a.dropout.is_some()),
        ("--resize", a.data.resize.is_some()),
        ("--width-mult", a.width_mult != 1.0),
    ] {
        if given {
            return Err(format!("{flag} does not apply to fcn (the book's SGD recipe)").into());
        }
    }
    if let Some(lr) = a.lr {
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(format!("--lr must be a positive number, got {lr}").into());
        }
    }
    if a.epochs == Some(0) || a.data.batch_size == Some(0) {
        return Err("--epochs and --batch-size must be at least 1".into());
    }
    let device = a.device.resolve()?;
    a.data.apply_engine_settings()?;
    let batch = a.data.batch_size.unwrap_or(32);
    let (loaders, classes, source) = seg_data(&a, batch)?;
    let train = super::head_loader(
        loaders.train.clone(),
        a.data.train_limit,
        Some(a.data.seed),
        "--train-limit",
    )?;
    let val = super::head_loader(loaders.val.clone(), a.data.test_limit, None, "--test-limit")?;
    let net = fcn(classes, a.weights.as_deref())?;
    d2l_train::device::to_device(&net, device)?;
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
    let run_dir = RunDir::create(a.out.clone(), &a.model)?;
    run_dir.write_config(&json!({
        "model": a.model, "data": source, "classes": classes, "epochs": epochs,
        "batch_size": batch, "lr": lr, "weight_decay": wd, "body_weights": a.weights,
        "optimizer_lr_for_mean_loss": lr * batch as f64, "seed": a.data.seed,
        "device": device.to_string(),
    }))?;
    if !a.quiet {
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
    let mut csv = String::from("epoch,train_loss,train_acc,test_loss,test_acc,examples_per_sec\n");
    let mut last = (0.0, 0.0, 0.0, 0.0, 0.0);
    net.train();
    for epoch in 0..epochs {
        loaders.set_epoch(epoch as u64);
        let t0 = Instant::now();
        let mut m = Accumulator::new(4);
        for b in train.iter_epoch(epoch as u64) {
            let b = b.map_err(data_error)?;
            let (x, y) = (b.x.to(device)?, b.y.to(device)?);
            opt.zero_grad();
            let y_hat = net.forward(&x)?;
            let l = seg_loss(&y_hat, &y)?;
            let mean = l.mean_all()?;
            let lv = mean.item_f64()?;
            if !lv.is_finite() {
                return Err(
                    format!("the loss became {lv} in epoch {}; lower --lr", epoch + 1).into(),
                );
            }
            mean.backward()?;
            opt.step()?;
            let (c, t) = pixel_accuracy(&y_hat, &y)?;
            m.add(&[lv * b.len() as f64, b.len() as f64, c as f64, t as f64]);
        }
        d2l_tensor::cuda::synchronize(device)?;
        let speed = m.get(1) / t0.elapsed().as_secs_f64().max(1e-9);
        let (test_loss, test_acc) = evaluate(&net, &val)?;
        last = (
            m.get(0) / m.get(1).max(1.0),
            m.get(2) / m.get(3).max(1.0),
            test_loss,
            test_acc,
            speed,
        );
        if !a.quiet {
            eprintln!(
                "epoch {}: loss {:.3}, train acc {:.3}, test acc {:.3}, {:.1} examples/sec",
                epoch + 1,
                last.0,
                last.1,
                last.3,
                last.4
            );
        }
        csv.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.2}\n",
            epoch + 1,
            last.0,
            last.1,
            last.2,
            last.3,
            last.4
        ));
        write_atomic(&run_dir.file("metrics.csv"), csv.as_bytes())?;
    }
    run_dir.save_model(&net)?;
    println!(
        "loss {:.3}, train acc {:.3}, test acc {:.3}",
        last.0, last.1, last.3
    );
    println!(
        "{:.1} examples/sec on {device} ({} CPU threads)",
        last.4,
        d2l_tensor::num_threads()
    );
    println!("run saved in {}", run_dir.path().display());
    if a.json {
        println!(
            "{}",
            json!({"model": a.model, "train_loss": last.0, "train_acc": last.1,
                   "test_loss": last.2, "test_acc": last.3, "examples_per_sec": last.4,
                   "run_dir": run_dir.path(), "device": device.to_string()})
        );
    }
    Ok(())
}

/// Flags of `d2l segment`.
#[derive(Args, Clone, Debug)]
pub struct SegmentArgs {
    /// Model name (fcn).
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
    if !is_segmentation_model(&a.model) {
        return Err(format!("`{}` is not a segmentation model; expected fcn", a.model).into());
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
