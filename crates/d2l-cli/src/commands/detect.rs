//! Object detection (D2L 13.4–13.7): `d2l anchors` draws anchor boxes on an image (the
//! figures of 13.4 and 13.5), `d2l train tiny-ssd` trains the book's TinySSD on the banana
//! set or on a detection set the program generates, and `d2l detect tiny-ssd` draws a
//! trained model's detections.

use super::train::TrainArgs;
use super::{CliResult, DataArgs};
use clap::Args;
use d2l_data::loader::DataLoader;
use d2l_models::ssd::{BoxLoss, ClsLoss, TinySsd};
use d2l_tensor::DType;
use d2l_train::tasks::detection::{predict_ssd, train_ssd, SsdTrainConfig};
use d2l_vision::bananas::load_bananas;
use d2l_vision::detection::multibox_prior;
use d2l_vision::draw::{save_image_with_boxes, LabeledBox};
use d2l_vision::generated::detection::{load_detection_set, DetectionSetSpec, DETECTION_CLASSES};
use d2l_vision::image::read_image;
use serde_json::json;
use std::path::PathBuf;

/// The detection models `d2l train` and `d2l detect` know.
pub const DETECTION_MODELS: [&str; 3] = ["tiny-ssd", "faster-rcnn", "mask-rcnn"];

/// Whether `name` is a detection model.
pub fn is_detection_model(name: &str) -> bool {
    DETECTION_MODELS.contains(&name)
}

fn parse_list(flag: &str, s: &str) -> CliResult<Vec<f32>> {
    let v: Result<Vec<f32>, _> = s.split(',').map(|x| x.trim().parse::<f32>()).collect();
    match v {
        Ok(v) if !v.is_empty() && v.iter().all(|x| *x > 0.0 && x.is_finite()) => Ok(v),
        _ => Err(format!("{flag} expects positive numbers separated by commas, got `{s}`").into()),
    }
}

fn parse_pair(flag: &str, s: &str, sep: &[char]) -> CliResult<(usize, usize)> {
    let parts: Vec<&str> = s.split(sep).map(str::trim).collect();
    match parts.as_slice() {
        [a, b] => match (a.parse::<usize>(), b.parse::<usize>()) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            _ => Err(format!("{flag} expects two whole numbers, got `{s}`").into()),
        },
        _ => Err(format!("{flag} expects two whole numbers, got `{s}`").into()),
    }
}

/// Flags of `d2l anchors`.
#[derive(Args, Clone, Debug)]
pub struct AnchorsArgs {
    /// The image (JPEG or PNG), e.g. ../shared/data/d2l_images/catdog.jpg.
    pub image: PathBuf,
    /// Anchor sizes (fractions of the image), the book's `sizes`.
    #[arg(long, default_value = "0.75,0.5,0.25")]
    pub sizes: String,
    /// Aspect ratios, the book's `ratios`.
    #[arg(long, default_value = "1,2,0.5")]
    pub ratios: String,
    /// Draw the anchors centred on this pixel, `ROW,COL` as the book's `boxes[250, 250]`
    /// (13.4).
    #[arg(long)]
    pub at: Option<String>,
    /// Draw every anchor of a feature map of this size, `WxH` (13.5's `display_anchors`).
    #[arg(long)]
    pub fmap: Option<String>,
    /// Draw one of 13.4's worked examples instead: `labelling` (the ground-truth dog and
    /// cat with anchors 0–4 and the classes `multibox_target` assigns them) or `nms` (the
    /// four predicted boxes before NMS, and what `multibox_detection` keeps, written
    /// beside `--out` as `<out>-after-nms.png`).
    #[arg(long)]
    pub example: Option<String>,
    /// Output PNG.
    #[arg(long, default_value = "anchors.png")]
    pub out: PathBuf,
}

/// Checks the memory of `h × w × per_pixel` anchors (`what` names the flag): their f32
/// corners and, drawn, one box record each (corners, label, colour: 64 bytes at most).
fn check_anchors(
    what: &str,
    h: usize,
    w: usize,
    per_pixel: usize,
    a: &AnchorsArgs,
) -> CliResult<()> {
    super::sizes::check_elements(
        &format!(
            "{what} with {} sizes and {} ratios ({per_pixel} anchors per pixel)",
            a.sizes.split(',').count(),
            a.ratios.split(',').count()
        ),
        &[h, w, per_pixel],
        16 + 64,
    )
    .map(|_| ())
}

/// Runs `d2l anchors`.
pub fn anchors(a: AnchorsArgs) -> CliResult<()> {
    let sizes = parse_list("--sizes", &a.sizes)?;
    let ratios = parse_list("--ratios", &a.ratios)?;
    super::sizes::check_output(&a.out)?;
    let img = read_image(&a.image)?;
    let (h, w) = (img.shape()[1], img.shape()[2]);
    let per_pixel = sizes.len() + ratios.len() - 1;
    if let Some(ex) = &a.example {
        if a.at.is_some() || a.fmap.is_some() {
            return Err("--example does not go with --at or --fmap".into());
        }
        return book_example(ex, &img, &a.out);
    }
    let boxes: Vec<LabeledBox> = match (&a.at, &a.fmap) {
        (Some(at), None) => {
            let (row, col) = parse_pair("--at", at, &[','])?;
            if row >= h || col >= w {
                return Err(format!(
                    "--at {row},{col} is outside the {h}×{w} (rows × columns) image"
                )
                .into());
            }
            check_anchors(
                &format!("--at {at} (anchors at every pixel of the {h}×{w} image)"),
                h,
                w,
                per_pixel,
                &a,
            )?;
            let all = multibox_prior(h, w, &sizes, &ratios)?;
            println!(
                "image {}: {h}×{w} (H×W); anchors {:?}",
                a.image.display(),
                all.shape()
            );
            let start = (row * w + col) * per_pixel;
            let v = all
                .narrow(1, start, per_pixel)?
                .contiguous()?
                .to_vec::<f32>();
            let mut labels = Vec::new();
            for s in &sizes {
                labels.push(format!("s={s}, r={}", ratios[0]));
            }
            for r in &ratios[1..] {
                labels.push(format!("s={}, r={r}", sizes[0]));
            }
            v.chunks_exact(4)
                .zip(labels)
                .map(|(c, label)| {
                    println!(
                        "  {label:<14} [{:.2}, {:.2}, {:.2}, {:.2}]",
                        c[0], c[1], c[2], c[3]
                    );
                    LabeledBox::scaled([c[0], c[1], c[2], c[3]], w, h, Some(label))
                })
                .collect()
        }
        (None, Some(fmap)) => {
            let (fw, fh) = parse_pair("--fmap", fmap, &['x', 'X'])?;
            if fw == 0 || fh == 0 {
                return Err(format!("--fmap must be at least 1x1, got `{fmap}`").into());
            }
            check_anchors(&format!("--fmap {fmap}"), fh, fw, per_pixel, &a)?;
            let all = multibox_prior(fh, fw, &sizes, &ratios)?;
            println!(
                "feature map {fw}×{fh} (W×H): {} anchors, drawn on {}",
                all.shape()[1],
                a.image.display()
            );
            all.to_vec::<f32>()
                .chunks_exact(4)
                .map(|c| LabeledBox::scaled([c[0], c[1], c[2], c[3]], w, h, None))
                .collect()
        }
        _ => return Err("give exactly one of --at ROW,COL (13.4) or --fmap WxH (13.5)".into()),
    };
    save_image_with_boxes(&img, &boxes, &a.out)?;
    println!("wrote {}", a.out.display());
    Ok(())
}

/// 13.4.3 and 13.4.4's worked examples on the cat-and-dog image: the anchors with the
/// labels `multibox_target` gives them, or the predictions before and after NMS.
fn book_example(which: &str, img: &d2l_tensor::Tensor, out: &std::path::Path) -> CliResult<()> {
    use d2l_tensor::Tensor;
    use d2l_vision::detection::{
        multibox_detection, multibox_target, NMS_THRESHOLD, POS_THRESHOLD,
    };
    let (h, w) = (img.shape()[1], img.shape()[2]);
    let names = ["dog", "cat"];
    let bx = |c: &[f32], label: String, color| LabeledBox {
        color: Some(color),
        ..LabeledBox::scaled([c[0], c[1], c[2], c[3]], w, h, Some(label))
    };
    match which {
        "labelling" | "labeling" => {
            // The book's ground truth (class, corners) and five anchors.
            let gt: [[f32; 5]; 2] = [[0.0, 0.1, 0.08, 0.52, 0.92], [1.0, 0.55, 0.2, 0.9, 0.88]];
            let anchors: [[f32; 4]; 5] = [
                [0.0, 0.1, 0.2, 0.3],
                [0.15, 0.2, 0.4, 0.4],
                [0.63, 0.05, 0.88, 0.98],
                [0.66, 0.45, 0.8, 0.8],
                [0.57, 0.3, 0.92, 0.9],
            ];
            let a = Tensor::from_vec(anchors.concat(), &[1, 5, 4])?;
            let l = Tensor::from_vec(gt.concat(), &[1, 2, 5])?;
            let (offsets, mask, classes) = multibox_target(&a, &l)?;
            let classes = classes.to_dtype(DType::F32)?.to_vec::<f32>();
            println!("13.4.3 labelling: class of each anchor (0 = background, 1 = dog, 2 = cat; the book: [0, 1, 2, 0, 2])");
            println!(
                "  classes {:?}",
                classes.iter().map(|&c| c as i64).collect::<Vec<_>>()
            );
            println!("  mask    {:?}", mask.to_dtype(DType::F32)?.to_vec::<f32>());
            println!(
                "  offsets {:?}",
                offsets
                    .to_dtype(DType::F32)?
                    .to_vec::<f32>()
                    .iter()
                    .map(|v| (v * 100.0).round() / 100.0)
                    .collect::<Vec<_>>()
            );
            let mut boxes: Vec<LabeledBox> = gt
                .iter()
                .map(|g| bx(&g[1..], names[g[0] as usize].to_string(), (0, 0, 0)))
                .collect();
            for (i, (c, &k)) in anchors.iter().zip(&classes).enumerate() {
                let what = match k as usize {
                    0 => "background".to_string(),
                    k => names[k - 1].to_string(),
                };
                boxes.push(bx(
                    c,
                    format!("{i}: {what}"),
                    if k == 0.0 {
                        (120, 120, 120)
                    } else {
                        (30, 90, 220)
                    },
                ));
            }
            save_image_with_boxes(img, &boxes, out)?;
            println!(
                "wrote {} (ground truth in black, anchors labelled with their class)",
                out.display()
            );
        }
        "nms" => {
            let anchors: [[f32; 4]; 4] = [
                [0.1, 0.08, 0.52, 0.92],
                [0.08, 0.2, 0.56, 0.95],
                [0.15, 0.3, 0.62, 0.91],
                [0.55, 0.2, 0.9, 0.88],
            ];
            // Background, dog, cat probabilities of each anchor; zero offsets.
            let probs: [[f32; 4]; 3] = [[0.0; 4], [0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]];
            let before: Vec<LabeledBox> = anchors
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let (k, p) = if probs[1][i] >= probs[2][i] {
                        (0, probs[1][i])
                    } else {
                        (1, probs[2][i])
                    };
                    bx(c, format!("{}={p}", names[k]), (30, 90, 220))
                })
                .collect();
            save_image_with_boxes(img, &before, out)?;
            let a = Tensor::from_vec(anchors.concat(), &[1, 4, 4])?;
            let cp = Tensor::from_vec(probs.concat(), &[1, 3, 4])?;
            let off = Tensor::zeros(&[1, 16]);
            let det = multibox_detection(&cp, &off, &a, NMS_THRESHOLD, POS_THRESHOLD)?
                .to_dtype(DType::F32)?
                .to_vec::<f32>();
            println!("13.4.4 NMS (threshold {NMS_THRESHOLD}): [class, confidence, x1, y1, x2, y2] per anchor (class −1: removed); the book: [[0, 0.9, 0.1, 0.08, 0.52, 0.92], [1, 0.9, 0.55, 0.2, 0.9, 0.88], [−1, 0.8, ...], [−1, 0.7, ...]]");
            let mut after = Vec::new();
            for r in det.chunks_exact(6) {
                println!(
                    "  [{:>2}, {:.2}, {:.2}, {:.2}, {:.2}, {:.2}]",
                    r[0], r[1], r[2], r[3], r[4], r[5]
                );
                if r[0] >= 0.0 {
                    after.push(bx(
                        &r[2..],
                        format!("{}={}", names[r[0] as usize], r[1]),
                        (30, 90, 220),
                    ));
                }
            }
            let stem = out.with_extension("");
            let after_path = stem.with_file_name(format!(
                "{}-after-nms.png",
                stem.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            save_image_with_boxes(img, &after, &after_path)?;
            println!(
                "wrote {} (before NMS) and {} (after)",
                out.display(),
                after_path.display()
            );
        }
        other => {
            return Err(format!("--example expects labelling or nms, got `{other}`").into());
        }
    }
    Ok(())
}

fn parse_cls_loss(s: &str) -> CliResult<ClsLoss> {
    match s.split_once(':') {
        None if s == "ce" || s == "cross-entropy" => Ok(ClsLoss::CrossEntropy),
        None if s == "focal" => Ok(ClsLoss::Focal { gamma: 2.0 }),
        Some(("focal", g)) => match g.parse::<f32>() {
            Ok(gamma) if gamma >= 0.0 && gamma.is_finite() => Ok(ClsLoss::Focal { gamma }),
            _ => Err(format!("--cls-loss focal:GAMMA needs GAMMA >= 0, got `{g}`").into()),
        },
        _ => Err(format!("--cls-loss expects ce, focal or focal:GAMMA, got `{s}`").into()),
    }
}

fn parse_box_loss(s: &str) -> CliResult<BoxLoss> {
    match s.split_once(':') {
        None if s == "l1" => Ok(BoxLoss::L1),
        None if s == "smooth-l1" => Ok(BoxLoss::SmoothL1 { sigma: 1.0 }),
        Some(("smooth-l1", v)) => match v.parse::<f32>() {
            Ok(sigma) if sigma > 0.0 && sigma.is_finite() => Ok(BoxLoss::SmoothL1 { sigma }),
            _ => Err(format!("--box-loss smooth-l1:SIGMA needs SIGMA > 0, got `{v}`").into()),
        },
        _ => Err(format!("--box-loss expects l1, smooth-l1 or smooth-l1:SIGMA, got `{s}`").into()),
    }
}

/// The generated detection set the flags describe: `--num-classes`, `--max-objects`,
/// `--resize` (the image side, objects scaled with it; default 256) and the seed.
pub(crate) fn generated_spec(a: &TrainArgs) -> CliResult<DetectionSetSpec> {
    let d = DetectionSetSpec::default();
    let size = a.data.resize.unwrap_or(d.image_size);
    if !(32..=1024).contains(&size) {
        return Err(format!(
            "--resize for a generated detection set must be 32..=1024, got {size}"
        )
        .into());
    }
    let spec = DetectionSetSpec {
        num_classes: a.num_classes.unwrap_or(1),
        max_objects: a.max_objects.unwrap_or(1),
        image_size: size,
        min_object_size: (d.min_object_size * size / d.image_size).max(4),
        max_object_size: d.max_object_size * size / d.image_size,
        seed: d.seed ^ a.data.seed,
        ..d
    };
    spec.validate()?;
    Ok(spec)
}

/// The detection loaders: the banana set (`--dataset bananas`), a generated set
/// (`--dataset generated`), or by default the banana set when it can be found or fetched,
/// else the generated set with a notice.
pub(crate) fn detection_data(
    a: &TrainArgs,
    batch: usize,
) -> CliResult<(DataLoader, DataLoader, String)> {
    let data: &DataArgs = &a.data;
    let hub = data.hub(a.quiet);
    let spec = generated_spec(a)?;
    let generated = |why: Option<String>| -> CliResult<(DataLoader, DataLoader, String)> {
        let size = if spec.image_size == DetectionSetSpec::default().image_size {
            String::new()
        } else {
            format!("-p{}", spec.image_size)
        };
        let root = hub.cache_dir().join("generated").join(format!(
            "detection-c{}-m{}-s{:x}{size}",
            spec.num_classes, spec.max_objects, spec.seed
        ));
        if let Some(why) = why {
            eprintln!("notice: {why}; training on the generated detection set instead");
        }
        let (train, val) = load_detection_set(&root, &spec, batch)?;
        Ok((
            train,
            val,
            format!(
                "generated detection set ({} classes, up to {} objects per image) in {}",
                spec.num_classes,
                spec.max_objects,
                root.display()
            ),
        ))
    };
    match data.dataset.as_deref() {
        Some("generated") => generated(None),
        Some("bananas") | Some("banana-detection") => {
            if a.num_classes.is_some_and(|c| c != 1)
                || a.max_objects.is_some_and(|m| m != 1)
                || a.data.resize.is_some()
            {
                return Err("the banana set has one class and one object per image of 256×256; --num-classes, --max-objects and --resize apply to --dataset generated".into());
            }
            let (t, v) = load_bananas(&hub, batch)?;
            Ok((t, v, "banana-detection".into()))
        }
        Some(other) => Err(format!(
            "{} trains on `bananas` or `generated`, got --dataset {other}",
            a.model
        )
        .into()),
        None if a.num_classes.is_some() || a.max_objects.is_some() || a.data.resize.is_some() => {
            generated(None)
        }
        None => match load_bananas(&hub.clone().offline(true).quiet(), batch) {
            Ok((t, v)) => Ok((t, v, "banana-detection".into())),
            Err(e) => generated(Some(format!(
                "the banana set is not here ({})",
                e.to_string().lines().next().unwrap_or("")
            ))),
        },
    }
}

/// Writes `value` as `map.json` in the run folder `dir`, best effort (atomically, so a
/// reader never sees half a file; a failure to write does not fail the finished run).
pub(super) fn write_map_json(dir: &std::path::Path, value: &serde_json::Value) {
    if let Ok(j) = serde_json::to_string_pretty(value) {
        let _ = d2l_nn::serialize::write_atomic(&dir.join("map.json"), (j + "\n").as_bytes());
    }
}

/// Runs `d2l train tiny-ssd` (and hands Faster / Mask R-CNN to [`super::rcnn::train`]).
pub fn train(a: TrainArgs) -> CliResult<()> {
    if super::rcnn::is_rcnn_model(&a.model) {
        return super::rcnn::train(a);
    }
    super::train::check_recipe_flags(
        &a,
        "tiny-ssd (the book's SGD with weight decay)",
        &[
            ("--optimizer", a.optimizer.is_some()),
            ("--momentum", a.momentum.is_some()),
            ("--dropout", a.dropout.is_some()),
            ("--width-mult", a.width_mult != 1.0),
            ("--test-limit", a.data.test_limit.is_some()),
        ],
    )?;
    let cls_loss = parse_cls_loss(a.cls_loss.as_deref().unwrap_or("ce"))?;
    let box_loss = parse_box_loss(a.box_loss.as_deref().unwrap_or("l1"))?;
    a.data.apply_engine_settings()?;
    let batch = a.data.batch_size.unwrap_or(32);
    let (train, val, source) = detection_data(&a, batch)?;
    let train = a.data.limit_train(train)?;
    super::train::print_data_sizes(&a, &train, &val, &source);
    let num_classes = a.num_classes.unwrap_or(1);
    let device = a.device.resolve()?;
    let net = TinySsd::new(num_classes, multibox_prior)?;
    let distributed = super::train::distributed(&a)?;
    let run_dir = super::train::open_train_dir(&a, &a.model)?;
    let run_path = super::train::run_path(&run_dir);
    let cfg = SsdTrainConfig {
        epochs: a.epochs.unwrap_or(20),
        lr: a.lr.unwrap_or(0.2),
        weight_decay: a.weight_decay.unwrap_or(5e-4),
        cls_loss,
        box_loss,
        quiet: a.quiet,
        run_dir: run_dir.clone(),
        device,
        resume: a.resume.is_some(),
        distributed,
    };
    super::train::write_run_config(
        run_dir.as_ref(),
        &a,
        json!({
            "model": a.model,
            "data": source,
            "num_classes": num_classes,
            "epochs": cfg.epochs,
            "lr": cfg.lr,
            "weight_decay": cfg.weight_decay,
            "batch_size": batch,
            "cls_loss": format!("{cls_loss:?}"),
            "box_loss": format!("{box_loss:?}"),
            "seed": a.data.seed,
            "threads": d2l_tensor::num_threads(),
        }),
    )?;
    let s = train_ssd(&net, &train, Some(&val), &cfg)?;
    let Some(last) = s.epochs.last() else {
        return super::train::check_interrupted(s.stopped_early.as_deref(), &run_path);
    };
    println!("class err {:.2e}, bbox mae {:.2e}", s.class_err, s.bbox_mae);
    if let (Some(c), Some(b)) = (last.val_class_err, last.val_bbox_mae) {
        println!("validation: class err {c:.2e}, bbox mae {b:.2e}");
    }
    println!(
        "{:.1} examples/sec on cpu ({} threads); anchor targets {:.2}% of the step",
        s.examples_per_sec,
        d2l_tensor::num_threads(),
        100.0 * last.target_share
    );
    let m = d2l_train::tasks::rcnn::evaluate_ssd_map(&net, &val, 0.5)?;
    println!(
        "validation ({} images): box AP@0.5 {:.3}, AP@[.5:.95] {:.3}; {:.1} images/sec inference; {} parameters",
        m.images,
        m.ap50,
        m.ap,
        m.images_per_sec,
        d2l_nn::Module::num_parameters(&net)
    );
    if let Some(dir) = &run_dir {
        write_map_json(dir.path(), &json!({"map": m, "seconds": s.seconds}));
    }
    println!("run saved in {}", run_path.display());
    if a.json {
        println!(
            "{}",
            json!({"model": a.model, "class_err": s.class_err, "map": m, "bbox_mae": s.bbox_mae,
                   "val_class_err": last.val_class_err, "val_bbox_mae": last.val_bbox_mae,
                   "examples_per_sec": s.examples_per_sec, "seconds": s.seconds,
                   "run_dir": run_path, "device": s.device})
        );
    }
    super::train::check_interrupted(s.stopped_early.as_deref(), &run_path)
}

/// Flags of `d2l detect`.
#[derive(Args, Clone, Debug)]
pub struct DetectArgs {
    /// Model name (tiny-ssd, faster-rcnn, mask-rcnn).
    pub model: String,
    /// The image (JPEG or PNG), e.g. ../shared/data/d2l_images/banana.jpg.
    pub image: PathBuf,
    /// Trained weights (`model.safetensors` of a `d2l train` run of the model).
    #[arg(long)]
    pub weights: PathBuf,
    /// Draw detections whose confidence is at least this (the book: 0.9).
    #[arg(long, default_value_t = 0.9)]
    pub threshold: f32,
    /// NMS IoU threshold (the book: 0.5).
    #[arg(long, default_value_t = 0.5)]
    pub nms_threshold: f32,
    /// Output PNG.
    #[arg(long, default_value = "detections.png")]
    pub out: PathBuf,
    #[command(flatten)]
    pub device: super::DeviceArgs,
}

/// Runs `d2l detect`.
pub fn detect(a: DetectArgs) -> CliResult<()> {
    if !is_detection_model(&a.model) {
        return Err(format!(
            "`{}` is not a detection model; expected one of {}",
            a.model,
            DETECTION_MODELS.join(", ")
        )
        .into());
    }
    if super::rcnn::is_rcnn_model(&a.model) {
        return super::rcnn::detect(a);
    }
    if !(0.0..=1.0).contains(&a.threshold) || !(0.0..=1.0).contains(&a.nms_threshold) {
        return Err("--threshold and --nms-threshold must lie in [0, 1]".into());
    }
    let device = a.device.resolve()?;
    let weights = d2l_nn::serialize::load(&a.weights)?;
    let cls0 = weights
        .iter()
        .find(|(n, _)| n == "cls_0.weight")
        .ok_or_else(|| {
            format!(
                "{} holds no `cls_0.weight`: not TinySSD weights",
                a.weights.display()
            )
        })?;
    let out_ch = cls0.1.shape().first().copied().unwrap_or(0);
    if out_ch < 8 || out_ch % 4 != 0 {
        return Err(format!(
            "{}: cls_0.weight has {out_ch} output channels; TinySSD needs 4·(classes+1)",
            a.weights.display()
        )
        .into());
    }
    let num_classes = out_ch / 4 - 1;
    let net = TinySsd::new(num_classes, multibox_prior)?;
    super::sizes::check_output(&a.out)?;
    d2l_nn::serialize::load_state_dict(&net, &a.weights, true)?;
    super::eval::warn_non_finite(&net, &a.weights);
    d2l_train::device::to_device(&net, device)?;
    let img = read_image(&a.image)?;
    let (h, w) = (img.shape()[1], img.shape()[2]);
    let x = img.to_dtype(DType::F32)?;
    let dets = predict_ssd(&net, &x, a.nms_threshold)?;
    let kept: Vec<&[f32; 6]> = dets.iter().filter(|d| d[1] >= a.threshold).collect();
    println!(
        "{} detections above {} on {} ({h}×{w}); {} before the threshold",
        kept.len(),
        a.threshold,
        a.image.display(),
        dets.len()
    );
    let boxes: Vec<LabeledBox> = kept
        .iter()
        .map(|d| {
            let name = if num_classes > 1 {
                format!(
                    "{} {:.2}",
                    DETECTION_CLASSES.get(d[0] as usize).unwrap_or(&"?"),
                    d[1]
                )
            } else {
                format!("{:.2}", d[1])
            };
            println!(
                "  class {} conf {:.3} box [{:.3}, {:.3}, {:.3}, {:.3}]",
                d[0], d[1], d[2], d[3], d[4], d[5]
            );
            let mut b = LabeledBox::scaled([d[2], d[3], d[4], d[5]], w, h, Some(name));
            b.color = Some((255, 255, 255));
            b
        })
        .collect();
    save_image_with_boxes(&img, &boxes, &a.out)?;
    println!("wrote {}", a.out.display());
    Ok(())
}
