//! Faster R-CNN and Mask R-CNN (D2L 13.8): `d2l train faster-rcnn|mask-rcnn`,
//! `d2l detect faster-rcnn IMAGE --weights FILE` and `d2l segment mask-rcnn IMAGE
//! --weights FILE`.

use super::segment::SegmentArgs;
use super::train::TrainArgs;
use super::CliResult;
use d2l_data::loader::DataLoader;
use d2l_models::rcnn::parts::Detection;
use d2l_models::rcnn::{paste_mask, MaskRcnn, RcnnConfig, RcnnOutput};
use d2l_nn::Module;
use d2l_tensor::{DType, Tensor};
use d2l_train::tasks::rcnn::{evaluate_map, train_rcnn, RcnnTrainConfig};
use d2l_vision::draw::{save_image_with_boxes, LabeledBox};
use d2l_vision::generated::detection::{load_instance_set, DETECTION_CLASSES};
use d2l_vision::image::read_image;
use serde_json::json;

/// The two-stage models.
pub const RCNN_MODELS: [&str; 2] = ["faster-rcnn", "mask-rcnn"];

/// Whether `name` is Faster or Mask R-CNN.
pub fn is_rcnn_model(name: &str) -> bool {
    RCNN_MODELS.contains(&name)
}

/// The configuration of a saved model, read off its weights' names and shapes (classes,
/// body depth, hidden width, mask head); anchors are [`RcnnConfig::small`]'s.
pub fn config_from_weights(
    entries: &[(String, d2l_tensor::Tensor)],
    what: &str,
) -> CliResult<RcnnConfig> {
    let shape = |n: &str| {
        entries
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, t)| t.shape().to_vec())
    };
    let cls = shape("roi_heads.box_predictor.cls_score.weight")
        .ok_or_else(|| format!("{what} holds no `roi_heads.box_predictor.cls_score.weight`: not Faster / Mask R-CNN weights"))?;
    let body_layers = (1..=4)
        .rev()
        .find(|l| shape(&format!("backbone.body.layer{l}.0.conv1.weight")).is_some())
        .ok_or_else(|| format!("{what} holds no `backbone.body.layer1`"))?;
    let masks: Vec<usize> = (0..)
        .map_while(|i| shape(&format!("roi_heads.mask_head.{i}.0.weight")).map(|s| s[0]))
        .collect();
    let mut cfg = RcnnConfig::small(cls[0], !masks.is_empty());
    cfg.body_layers = body_layers;
    cfg.representation = cls[1];
    if !masks.is_empty() {
        cfg.mask_layers = Some(masks);
        if let Some(s) = shape("roi_heads.mask_predictor.conv5_mask.weight") {
            cfg.mask_dim_reduced = s[1];
        }
    }
    if let Some(s) = shape("rpn.head.cls_logits.weight") {
        let a = cfg.anchor_sizes.len() * cfg.aspect_ratios.len();
        if s[0] != a {
            return Err(format!(
                "{what}: the RPN has {} anchors per pixel; this program builds {a}",
                s[0]
            )
            .into());
        }
    }
    Ok(cfg)
}

fn data(
    a: &TrainArgs,
    batch: usize,
    mask: bool,
) -> CliResult<(DataLoader, DataLoader, String, usize)> {
    if mask {
        match a.data.dataset.as_deref() {
            None | Some("generated") => {}
            Some(other) => {
                return Err(format!("mask-rcnn trains on the generated instance set (`generated`), got --dataset {other}").into())
            }
        }
        let spec = super::detect::generated_spec(a)?;
        let (t, v) = load_instance_set(&spec, batch)?;
        let desc = format!(
            "generated instance-segmentation set ({} classes, up to {} objects, {}×{} px), rendered in memory",
            spec.num_classes, spec.max_objects, spec.image_size, spec.image_size
        );
        return Ok((t, v, desc, spec.num_classes));
    }
    let (t, v, desc) = super::detect::detection_data(a, batch)?;
    let classes = if desc.starts_with("banana") {
        1
    } else {
        a.num_classes.unwrap_or(1)
    };
    Ok((t, v, desc, classes))
}

/// Runs `d2l train faster-rcnn|mask-rcnn`.
pub fn train(a: TrainArgs) -> CliResult<()> {
    let mask = a.model == "mask-rcnn";
    super::train::check_recipe_flags(
        &a,
        &format!("{} (SGD with momentum, torchvision's losses)", a.model),
        &[
            ("--optimizer", a.optimizer.is_some()),
            ("--dropout", a.dropout.is_some()),
            ("--width-mult", a.width_mult != 1.0),
            ("--cls-loss", a.cls_loss.is_some()),
            ("--box-loss", a.box_loss.is_some()),
        ],
    )?;
    if a.distributed || a.sync_bn {
        return Err(format!(
            "--distributed and --sync-bn are not supported for {} yet (its training runs in one process)",
            a.model
        )
        .into());
    }
    a.data.apply_engine_settings()?;
    let batch = a.data.batch_size.unwrap_or(4);
    let (train, val, source, classes) = data(&a, batch, mask)?;
    let train = a.data.limit_train(train)?;
    let val = a.data.limit_test(val)?;
    super::train::print_data_sizes(&a, &train, &val, &source);
    let device = a.device.resolve()?;
    d2l_tensor::manual_seed(a.data.seed);
    let net = MaskRcnn::new(RcnnConfig::small(classes + 1, mask))?;
    let run_dir = super::train::open_run_dir(&a, &a.model)?;
    let cfg = RcnnTrainConfig {
        epochs: a.epochs.unwrap_or(10),
        lr: a.lr.unwrap_or(0.01),
        momentum: a.momentum.unwrap_or(0.9),
        weight_decay: a.weight_decay.unwrap_or(1e-4),
        seed: a.data.seed,
        quiet: a.quiet,
        run_dir: Some(run_dir.clone()),
        device,
        resume: a.resume.is_some(),
        ..RcnnTrainConfig::default()
    };
    let params = net.num_parameters();
    super::train::write_run_config(
        Some(&run_dir),
        &a,
        json!({
            "model": a.model, "data": source, "num_classes": classes, "epochs": cfg.epochs,
            "lr": cfg.lr, "momentum": cfg.momentum, "weight_decay": cfg.weight_decay,
            "batch_size": batch, "seed": a.data.seed, "parameters": params,
            "threads": d2l_tensor::num_threads(),
        }),
    )?;
    let s = train_rcnn(&net, &train, Some(&val), &cfg)?;
    let Some(last) = s.epochs.last() else {
        return super::train::check_interrupted(s.stopped_early.as_deref(), run_dir.path());
    };
    println!(
        "loss {:.3} (objectness {:.3}, rpn box {:.3}, classifier {:.3}, box {:.3}{}), validation loss {:.3}",
        last.train_loss,
        last.column("loss_objectness").unwrap_or(f64::NAN),
        last.column("loss_rpn_box_reg").unwrap_or(f64::NAN),
        last.column("loss_classifier").unwrap_or(f64::NAN),
        last.column("loss_box_reg").unwrap_or(f64::NAN),
        if mask { format!(", mask {:.3}", last.column("loss_mask").unwrap_or(f64::NAN)) } else { String::new() },
        last.column("val_loss").unwrap_or(f64::NAN),
    );
    let m = evaluate_map(&net, &val)?;
    println!(
        "validation ({} images): box AP@0.5 {:.3}, AP@[.5:.95] {:.3}{}; {:.1} images/sec inference; {params} parameters",
        m.images,
        m.ap50,
        m.ap,
        match (m.mask_ap50, m.mask_ap) {
            (Some(a), Some(b)) => format!("; mask AP@0.5 {a:.3}, AP@[.5:.95] {b:.3}"),
            _ => String::new(),
        },
        m.images_per_sec
    );
    println!(
        "{:.1} training examples/sec; run saved in {}",
        last.examples_per_sec,
        run_dir.path().display()
    );
    super::detect::write_map_json(
        run_dir.path(),
        &json!({"map": m, "seconds": s.seconds, "parameters": params}),
    );
    if a.json {
        println!(
            "{}",
            json!({"model": a.model, "train_loss": last.train_loss, "map": m,
                   "examples_per_sec": last.examples_per_sec, "seconds": s.seconds,
                   "parameters": params, "run_dir": run_dir.path()})
        );
    }
    super::train::check_interrupted(s.stopped_early.as_deref(), run_dir.path())
}

fn load_model(weights: &std::path::Path, want_mask: bool, model: &str) -> CliResult<MaskRcnn> {
    let entries = d2l_nn::serialize::load(weights)?;
    let what = weights.display().to_string();
    let cfg = config_from_weights(&entries, &what)?;
    if want_mask && cfg.mask_layers.is_none() {
        return Err(format!(
            "{what} holds Faster R-CNN weights (no mask head); `{model}` needs Mask R-CNN weights"
        )
        .into());
    }
    let net = MaskRcnn::new(cfg)?;
    d2l_nn::pth::load_state_dict_entries(
        &net,
        &entries
            .into_iter()
            .filter(|(n, _)| !n.ends_with("num_batches_tracked"))
            .collect::<Vec<_>>(),
        true,
        &what,
    )?;
    super::eval::warn_non_finite(&net, weights);
    net.eval();
    Ok(net)
}

fn class_name(num_classes: usize, label: usize) -> String {
    if num_classes > 2 {
        DETECTION_CLASSES
            .get(label - 1)
            .map_or(format!("class {label}"), |s| s.to_string())
    } else {
        String::new()
    }
}

/// Loads the model (see [`load_model`]) onto the device and runs it on the image at
/// `image`: the network, the image as read (`u8 [3, H, W]`) and its detections.
fn detect_image(
    weights: &std::path::Path,
    want_mask: bool,
    model: &str,
    device: &super::DeviceArgs,
    image: &std::path::Path,
) -> CliResult<(MaskRcnn, Tensor, Vec<RcnnOutput>)> {
    let net = load_model(weights, want_mask, model)?;
    let device = device.resolve()?;
    d2l_train::device::to_device(&net, device)?;
    let img = read_image(image)?;
    let x = img
        .to_dtype(DType::F32)?
        .div_scalar(255.0)?
        .unsqueeze(0)?
        .to(device)?;
    let out = net.detect(&x)?;
    Ok((net, img, out))
}

/// Prints one detection (class, score and box, then `extra`) and returns its box for
/// drawing in `color`, labelled with the class name and score.
fn report_detection(d: &Detection, classes: usize, extra: &str, color: (u8, u8, u8)) -> LabeledBox {
    println!(
        "  class {} score {:.3} box [{:.1}, {:.1}, {:.1}, {:.1}]{extra}",
        d.label - 1,
        d.score,
        d.bbox[0],
        d.bbox[1],
        d.bbox[2],
        d.bbox[3]
    );
    LabeledBox {
        corners: d.bbox,
        label: Some(
            format!("{} {:.2}", class_name(classes, d.label), d.score)
                .trim()
                .to_string(),
        ),
        color: Some(color),
    }
}

/// Runs `d2l detect faster-rcnn|mask-rcnn IMAGE --weights FILE`: draws the detections
/// scoring at least `threshold`.
pub fn detect(a: super::detect::DetectArgs) -> CliResult<()> {
    if !(0.0..=1.0).contains(&a.threshold) {
        return Err("--threshold must lie in [0, 1]".into());
    }
    super::sizes::check_output(&a.out)?;
    let (net, img, out) = detect_image(&a.weights, false, &a.model, &a.device, &a.image)?;
    let (h, w) = (img.shape()[1], img.shape()[2]);
    let c = net.config().num_classes;
    let kept: Vec<_> = out[0]
        .detections
        .iter()
        .filter(|d| d.score >= a.threshold)
        .collect();
    println!(
        "{} detections above {} on {} ({h}×{w}); {} before the threshold",
        kept.len(),
        a.threshold,
        a.image.display(),
        out[0].detections.len()
    );
    let boxes: Vec<LabeledBox> = kept
        .iter()
        .map(|d| report_detection(d, c, "", (255, 255, 255)))
        .collect();
    save_image_with_boxes(&img, &boxes, &a.out)?;
    println!("wrote {}", a.out.display());
    Ok(())
}

const PALETTE: [(u8, u8, u8); 6] = [
    (255, 64, 64),
    (64, 160, 255),
    (64, 255, 96),
    (255, 200, 0),
    (220, 64, 255),
    (0, 230, 230),
];

/// Runs `d2l segment mask-rcnn IMAGE --weights FILE`: draws every detection scoring at
/// least 0.5 with its mask (probability above 0.5) blended in its colour.
pub fn segment(a: SegmentArgs) -> CliResult<()> {
    super::sizes::check_output(&a.out)?;
    let (net, img, out) = detect_image(&a.weights, true, &a.model, &a.device, &a.image)?;
    let (h, w) = (img.shape()[1], img.shape()[2]);
    let c = net.config().num_classes;
    let probs = out[0]
        .masks
        .as_ref()
        .map(|m| m.to_vec::<f32>())
        .unwrap_or_default();
    let mut px = img.to_dtype(DType::F32)?.to_vec::<f32>();
    let mut boxes = Vec::new();
    let n = h * w;
    for (k, d) in out[0].detections.iter().enumerate() {
        if d.score < 0.5 {
            continue;
        }
        let col = PALETTE[boxes.len() % PALETTE.len()];
        let mask = paste_mask(&probs[k * 784..(k + 1) * 784], 28, &d.bbox, h, w);
        let mut area = 0;
        for (p, &m) in mask.iter().enumerate() {
            if m > 0.5 {
                area += 1;
                for (ch, v) in [col.0, col.1, col.2].into_iter().enumerate() {
                    px[ch * n + p] = 0.5 * px[ch * n + p] + 0.5 * v as f32;
                }
            }
        }
        boxes.push(report_detection(d, c, &format!(", mask {area} px"), col));
    }
    println!(
        "{} instances scoring at least 0.5 on {} ({h}×{w})",
        boxes.len(),
        a.image.display()
    );
    let px: Vec<u8> = px
        .iter()
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
        .collect();
    let shown = d2l_tensor::Tensor::from_vec(px, &[3, h, w])?;
    save_image_with_boxes(&shown, &boxes, &a.out)?;
    println!("wrote {}", a.out.display());
    Ok(())
}
