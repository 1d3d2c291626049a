//! `d2l eval` and `d2l predict`: saved weights on a data set's test split (D2L 3.6's
//! `evaluate_accuracy` and `predict_ch3`).

use super::{find_model, image_data, CliResult, DataArgs, DeviceArgs};
use clap::Args;
use d2l_data::datasets::Notice;
use d2l_data::loader::DataLoader;
use d2l_models::zoo::ModelInfo;
use d2l_nn::serialize::load_state_dict;
use d2l_nn::{Module, Sequential};
use d2l_tensor::{no_grad, Device};
use d2l_train::metrics::evaluate_accuracy;
use serde_json::json;
use std::path::PathBuf;

/// The flags `d2l eval` and `d2l predict` share: which saved model, on which data, where.
#[derive(Args, Clone, Debug)]
pub struct SavedModelArgs {
    /// Model name.
    pub model: String,
    /// A model.safetensors written by `d2l train`, or a PyTorch state dict (`.pth`) saved
    /// from the same network.
    #[arg(long)]
    pub weights: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Flags of `d2l eval`.
#[derive(Args, Clone, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub saved: SavedModelArgs,
    /// End with one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `d2l predict`.
#[derive(Args, Clone, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub saved: SavedModelArgs,
    /// How many test images to show.
    #[arg(short, long, default_value_t = 6)]
    pub n: usize,
    /// Output image (PNG; an SVG is written beside it).
    #[arg(long, default_value = "predictions.png")]
    pub out: PathBuf,
}

/// A saved model with its test split: what `d2l eval` and `d2l predict` start from.
struct SavedModel {
    model: ModelInfo,
    device: Device,
    test: DataLoader,
    notice: Notice,
    net: Sequential,
}

impl SavedModelArgs {
    /// Resolves the device, loads the test split and the weights; `show_notice` prints the
    /// data notice (a substituted data set, say) before the weights are read.
    fn load(&self, show_notice: bool) -> CliResult<SavedModel> {
        let model = find_model(&self.model)?;
        let device = self.device.resolve()?;
        self.data.apply_engine_settings()?;
        let (_, test, notice) = image_data(&model, &self.data, true)?;
        if let (true, Some(m)) = (show_notice, &notice.message) {
            eprintln!("notice: {m}");
        }
        let net = load_model(&model, &self.data, &self.weights, notice.used.num_classes())?;
        Ok(SavedModel {
            model,
            device,
            test,
            notice,
            net,
        })
    }
}

/// Warns (one line on stderr) when loaded weights hold NaN or infinite values: the
/// accuracy of such a model is chance, not a measurement.
pub(crate) fn warn_non_finite(net: &dyn d2l_nn::Module, weights: &std::path::Path) {
    let bad = d2l_nn::serialize::non_finite_entries(net);
    if let Some((first, n)) = bad.first() {
        let total: usize = bad.iter().map(|(_, n)| n).sum();
        eprintln!(
            "warning: {} holds {total} NaN or infinite values in {} tensor(s) (first: `{first}`, {n}); the model's outputs are meaningless",
            weights.display(),
            bad.len()
        );
    }
}

/// Whether `path` is a PyTorch checkpoint rather than safetensors: a `.pth`/`.pt` name, or
/// the zip (`PK\x03\x04`) or pickle (`\x80`) magic of `torch.save`'s two formats.
fn is_pytorch_checkpoint(path: &std::path::Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    if matches!(ext.as_deref(), Some("pth" | "pt")) {
        return true;
    }
    let mut head = [0u8; 4];
    use std::io::Read;
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|_| head == *b"PK\x03\x04" || head[0] == 0x80)
        .unwrap_or(false)
}

/// Builds the model for the data the weights were trained on and loads them (strict).
fn load_model(
    model: &ModelInfo,
    data: &DataArgs,
    weights: &PathBuf,
    classes: usize,
) -> CliResult<Sequential> {
    let mut cfg = model.config_for(data.resize.or(model.recipe.resize));
    cfg.num_outputs = classes;
    let net = model.build(&cfg)?;
    let loaded = if is_pytorch_checkpoint(weights) {
        // A `torch.save(net.state_dict(), ...)` file, read by the same restricted reader as
        // `d2l convert` (tensors and dicts only), matched by name as PyTorch does.
        d2l_nn::pth::load_pth_into(&net, weights, true).map(drop)
    } else {
        load_state_dict(&net, weights, true).map(drop)
    };
    loaded.map_err(|e| {
        format!(
            "{} does not fit model `{}`: {e}",
            weights.display(),
            model.name
        )
    })?;
    warn_non_finite(&net, weights);
    net.eval();
    Ok(net)
}

/// Runs `d2l eval`.
pub fn run_eval(a: EvalArgs) -> CliResult<()> {
    let SavedModel {
        model,
        device,
        test,
        notice,
        net,
    } = a.saved.load(true)?;
    d2l_train::device::to_device(&net, device)?;
    let acc = evaluate_accuracy(&net, &test)?;
    println!(
        "test acc {acc:.4} on {} ({} examples)",
        notice.used.as_str(),
        test.num_examples()
    );
    if a.json {
        println!(
            "{}",
            json!({"model": model.name, "dataset": notice.used.as_str(), "test_acc": acc, "examples": test.num_examples(), "device": device.to_string()})
        );
    }
    Ok(())
}

/// Runs `d2l predict`.
pub fn run_predict(a: PredictArgs) -> CliResult<()> {
    if a.n == 0 {
        return Err("-n must be at least 1".into());
    }
    let SavedModel {
        device,
        test,
        notice,
        net,
        ..
    } = a.saved.load(false)?;
    let names: &[&str] = notice.used.class_names();
    let batch = test.iter_epoch(0).next().ok_or("the test set is empty")??;
    let n = a.n.min(batch.x.shape()[0]);
    let x = batch.x.narrow(0, 0, n)?;
    let y = batch.y.narrow(0, 0, n)?.to_vec::<i64>();
    d2l_train::device::to_device(&net, device)?;
    let pred = no_grad(|| net.forward(&x.to(device)?)?.argmax(1, false))?.to_vec::<i64>();
    let (h, w) = (x.shape()[2], x.shape()[3]);
    let pixels = x.to_vec::<f32>();
    let label = |i: i64| names.get(i as usize).copied().unwrap_or("?");
    let tiles: Vec<d2l_train::plot::Tile> = (0..n)
        .map(|i| d2l_train::plot::Tile {
            pixels: pixels[i * h * w..(i + 1) * h * w].to_vec(),
            height: h,
            width: w,
            title: format!("{}\n{}", label(y[i]), label(pred[i])),
        })
        .collect();
    let base = a.out.with_extension("");
    let (png, _) = d2l_train::plot::save_image_grid(&base, &tiles, n.min(8))?;
    let correct = y.iter().zip(&pred).filter(|(a, b)| a == b).count();
    println!(
        "{correct}/{n} correct on {}; titles are true / predicted; saved {}",
        notice.used.as_str(),
        png.display()
    );
    Ok(())
}
