//! `d2l summary`, `d2l models`, `d2l datasets`: what the zoo holds and where data is.

use super::{find_model, CliResult, DataArgs};
use clap::Args;
use d2l_data::datasets::DatasetName;
use d2l_models::ssd::TinySsd;
use d2l_models::summary::summarize;
use d2l_models::zoo::{entries as all_entries, TaskKind, ZooEntry};
use d2l_nn::Module;
use d2l_tensor::{no_grad, Tensor};
use d2l_vision::detection::multibox_prior;
use serde_json::json;

/// Flags of `d2l summary`.
#[derive(Args, Clone, Debug)]
pub struct SummaryArgs {
    /// Model name.
    pub model: String,
    /// Input shape without the batch dim, e.g. 1x28x28 (default: the model's).
    #[arg(long)]
    pub input: Option<String>,
    /// Scale hidden widths, as `d2l train --width-mult` (1.0: the book's network).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub width_mult: f64,
    /// End with one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `d2l datasets`.
#[derive(Args, Clone, Debug)]
pub struct DatasetsArgs {
    /// A data directory laid out like ../shared/data (also D2L_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
}

fn parse_shape(s: &str) -> CliResult<Vec<usize>> {
    let dims: Result<Vec<usize>, _> = s
        .split(['x', 'X', ','])
        .map(|d| d.trim().parse::<usize>())
        .collect();
    match dims {
        Ok(d) if !d.is_empty() && d.iter().all(|&x| x > 0) => Ok(d),
        _ => Err(format!("--input expects dims like 1x28x28, got `{s}`").into()),
    }
}

/// Runs `d2l summary`: the book's layer walk for the `Sequential` models, and for the
/// others (language models, TinySSD, the FCN) their blocks with parameter counts and the
/// output shapes of one forward pass. With `--json` only the JSON line is printed.
pub fn summary(a: SummaryArgs) -> CliResult<()> {
    let entry = d2l_models::zoo::entry(&a.model)?;
    if !(a.width_mult > 0.0 && a.width_mult.is_finite()) {
        return Err(format!("--width-mult must be positive, got {}", a.width_mult).into());
    }
    let input = match &a.input {
        Some(s) => parse_shape(s)?,
        None => entry.default_input.clone(),
    };
    // The shape walk runs one image through the network: its input first.
    super::sizes::check_elements(
        &format!(
            "--input {} (one f32 image of {input:?})",
            a.input.as_deref().unwrap_or("")
        ),
        &input,
        4,
    )?;
    match entry.task {
        TaskKind::Classification | TaskKind::Regression => {}
        _ => return summary_other(&a, &entry, &input),
    }
    let model = find_model(&a.model)?;
    let mut cfg = model.default_config();
    cfg.in_shape = input.clone();
    cfg.width_mult = a.width_mult;
    let flags = format!("--input {:?} --width-mult {}", input, a.width_mult);
    let net = model
        .build(&cfg)
        .map_err(|e| super::sizes::name_flags(e, &flags))?;
    let s = summarize(&net, &input).map_err(|e| super::sizes::name_flags(e, &flags))?;
    if a.json {
        let layers: Vec<_> = s
            .rows
            .iter()
            .map(|r| json!({"name": r.name, "kind": r.kind, "output_shape": r.output_shape, "params": r.params, "flops": r.flops}))
            .collect();
        println!(
            "{}",
            json!({"model": model.name, "task": model.task.as_str(), "input": input, "width_mult": a.width_mult, "params": s.total_params, "flops": s.total_flops, "layers": layers})
        );
        return Ok(());
    }
    println!("{} (D2L {}), input {:?}", model.title, model.section, input);
    println!("{s}");
    Ok(())
}

/// The summary of a model that is not a `Sequential`: its blocks and their parameters,
/// and the shapes one forward pass on a batch of one gives.
fn summary_other(a: &SummaryArgs, entry: &ZooEntry, input: &[usize]) -> CliResult<()> {
    if a.width_mult != 1.0 {
        return Err(format!("--width-mult does not apply to `{}`", entry.name).into());
    }
    let image_input = |what: &str| -> CliResult<(usize, usize)> {
        match input {
            [3, h, w] => Ok((*h, *w)),
            _ => Err(format!("--input for {what} expects 3xHxW, got {input:?}").into()),
        }
    };
    let blocks_of = |net: &dyn Module| -> (Vec<(String, usize)>, usize) {
        let blocks = net
            .children()
            .into_iter()
            .map(|(n, c)| (n, c.num_parameters()))
            .collect();
        (blocks, net.num_parameters())
    };
    type Outputs = Vec<(String, Vec<usize>)>;
    let ((blocks, total), outputs): ((Vec<(String, usize)>, usize), Outputs) = match entry.task {
        TaskKind::LanguageModel => {
            let info = d2l_models::rnn_lm::find_char_model(entry.name)?;
            let &[steps] = input else {
                return Err(format!(
                    "--input for a language model expects the time steps T, got {input:?}"
                )
                .into());
            };
            // The Time Machine's 28-token character vocabulary.
            let net = info.build(28, info.num_hiddens)?;
            let x = Tensor::from_vec(vec![0i64; steps], &[1, steps])?;
            let (y, state) = no_grad(|| net.forward_with_state(&x, None))?;
            let outs = vec![
                ("logits".to_string(), y.shape().to_vec()),
                ("state".to_string(), state.h().shape().to_vec()),
            ];
            (blocks_of(net.as_dyn()), outs)
        }
        TaskKind::Detection if entry.name != "tiny-ssd" => {
            let (h, w) = image_input(entry.name)?;
            let net = d2l_models::rcnn::MaskRcnn::new(d2l_models::rcnn::RcnnConfig::small(
                2,
                entry.name == "mask-rcnn",
            ))?;
            let y = no_grad(|| net.features(&Tensor::zeros(&[1, 3, h, w])))?;
            (
                blocks_of(&net),
                vec![("feature".to_string(), y.shape().to_vec())],
            )
        }
        TaskKind::Detection => {
            let (h, w) = image_input("tiny-ssd")?;
            let net = TinySsd::new(1, multibox_prior)?;
            let x = Tensor::zeros(&[1, 3, h, w]);
            let out = no_grad(|| net.forward_ssd(&x))?;
            let outs = vec![
                ("anchors".to_string(), out.anchors.shape().to_vec()),
                ("cls_preds".to_string(), out.cls_preds.shape().to_vec()),
                ("bbox_preds".to_string(), out.bbox_preds.shape().to_vec()),
            ];
            (blocks_of(&net), outs)
        }
        _ => {
            let (h, w) = image_input("fcn")?;
            let net = d2l_models::fcn::fcn(21, None)?;
            let y = no_grad(|| net.forward(&Tensor::zeros(&[1, 3, h, w])))?;
            (
                blocks_of(&net),
                vec![("logits".to_string(), y.shape().to_vec())],
            )
        }
    };
    if a.json {
        let blocks: Vec<_> = blocks
            .iter()
            .map(|(n, p)| json!({"name": n, "params": p}))
            .collect();
        let outputs: serde_json::Map<String, serde_json::Value> =
            outputs.into_iter().map(|(n, s)| (n, json!(s))).collect();
        println!(
            "{}",
            json!({"model": entry.name, "task": entry.task.as_str(), "input": input, "params": total, "blocks": blocks, "outputs": outputs})
        );
        return Ok(());
    }
    println!("{} (D2L {}), input {:?}", entry.title, entry.section, input);
    println!("{:<24} {:>12}", "block", "params");
    for (n, p) in &blocks {
        println!("{n:<24} {p:>12}");
    }
    for (n, s) in &outputs {
        println!("output {n}: {s:?}");
    }
    println!("total parameters: {total}");
    Ok(())
}

/// Runs `d2l models`: every model with its section, task and the book's recipe.
pub fn models() -> CliResult<()> {
    println!(
        "{:<17} {:<6} {:<15} {:<46} book recipe",
        "model", "D2L", "task", "what"
    );
    for m in all_entries() {
        println!(
            "{:<17} {:<6} {:<15} {:<46} {}",
            m.name,
            m.section,
            m.task.as_str(),
            m.title,
            m.recipe
        );
    }
    Ok(())
}

/// Runs `d2l datasets`.
pub fn datasets(a: DatasetsArgs) -> CliResult<()> {
    let args = DataArgs {
        data_dir: a.data_dir,
        ..Default::default()
    };
    let hub = args.hub(true);
    for name in DatasetName::ALL {
        println!("{} ({} classes)", name.as_str(), name.num_classes());
        match name.hub_folder() {
            None => println!("  built in: generated by the program, no files needed"),
            Some(folder) => {
                for file in d2l_data::idx::IDX_FILE_NAMES {
                    let entry = format!("{folder}/{file}");
                    let found = hub.candidates(&entry).into_iter().find(|p| p.is_file());
                    match found {
                        Some(p) => println!("  {file}: {}", p.display()),
                        None => {
                            let places: Vec<String> = hub
                                .candidates(&entry)
                                .iter()
                                .map(|p| p.display().to_string())
                                .collect();
                            println!(
                                "  {file}: not found (looked in {}; downloads on first use)",
                                places.join(", ")
                            );
                        }
                    }
                }
            }
        }
    }
    // Chapter 13: archives and weights fetched whole (the generated sets need no files).
    let vision = [
        (
            "banana-detection (13.6–13.7)",
            d2l_vision::bananas::BANANA_HUB_NAME.to_string(),
        ),
        ("hotdog (13.2)", "hotdog/hotdog.zip".to_string()),
        (
            "cifar10 (13.1)",
            d2l_vision::cifar::cifar10_file().name.clone(),
        ),
        (
            "resnet18 weights (13.2)",
            d2l_vision::folder::weights_file("resnet18")?.name.clone(),
        ),
        (
            "vgg19 weights (13.12)",
            d2l_vision::folder::weights_file("vgg19")?.name.clone(),
        ),
    ];
    for (title, entry) in vision {
        println!("{title}");
        let cands = hub.candidates(&entry);
        match cands.iter().find(|p| p.exists()) {
            Some(p) => println!("  {entry}: {}", p.display()),
            None => {
                let places: Vec<String> = cands.iter().map(|p| p.display().to_string()).collect();
                println!(
                    "  {entry}: not found (looked in {}; downloads on first use)",
                    places.join(", ")
                );
            }
        }
    }
    println!("generated detection set (13.7 offline)\n  built in: `d2l train tiny-ssd` renders it into the cache on first use");
    Ok(())
}
