//! Plumbing shared by the chapter 6–7 CNN examples (LeNet … DenseNet): the command line,
//! Fashion-MNIST through the data hub (with the `shapes` fallback) at the book's resize,
//! the book's layer walk, and `train_ch6` on top of `Trainer`. Each example includes it
//! with `#[path = "cnn_common/mod.rs"] mod cnn_common;`; the network and the recipe stay
//! in the example.
//!
//! Options (all optional): `--data-dir DIR`, `--epochs N`, `--lr X`, `--batch-size N`,
//! `--resize N` (the book's by default), `--width-mult X` (1: the book's widths),
//! `--train-limit N` / `--test-limit N` (train / test on the first N images: a reduced
//! budget for a laptop), `--threads N`.

// Each example uses a different part of this file.
#![allow(dead_code)]

use d2l::data::datasets::{load_image_classification, DatasetName};
use d2l::data::hub::DataHub;
use d2l::data::loader::{Batch, DataLoader, Dataset, Example};
use d2l::models::recipe::Recipe;
use d2l::models::summary::summarize;
use d2l::models::zoo::{BuildConfig, ModelInfo};
use d2l::prelude::*;
use d2l::train::metrics::data_error;
use d2l::train::trainer::{cross_entropy_loss, TrainConfig, Trainer};
use std::sync::Arc;

/// The options above.
#[derive(Default)]
pub struct Args {
    pub data_dir: Option<String>,
    pub epochs: Option<usize>,
    pub lr: Option<f64>,
    pub batch_size: Option<usize>,
    pub resize: Option<usize>,
    pub width_mult: Option<f64>,
    pub train_limit: Option<usize>,
    pub test_limit: Option<usize>,
    pub threads: Option<usize>,
    /// Example-specific switches (`--concise`, `--relu-max`, `--ratio N`), as given.
    pub extra: Vec<(String, Option<String>)>,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "error: {msg}\nusage: [--data-dir DIR] [--epochs N] [--lr X] [--batch-size N] [--resize N] \
         [--width-mult X] [--train-limit N] [--test-limit N] [--threads N]"
    );
    std::process::exit(2)
}

fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> T {
    match v.as_deref().map(str::parse) {
        Some(Ok(x)) => x,
        _ => usage(&format!(
            "{flag} expects a number, got `{}`",
            v.unwrap_or_default()
        )),
    }
}

impl Args {
    /// Parses the command line; `switches` are the example's own flags without a value
    /// and `valued` those with one.
    pub fn parse(switches: &[&str], valued: &[&str]) -> Args {
        let mut a = Args::default();
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "--data-dir" => {
                    a.data_dir = Some(
                        it.next()
                            .unwrap_or_else(|| usage("--data-dir needs a value")),
                    )
                }
                "--epochs" => a.epochs = Some(num(&flag, it.next())),
                "--lr" => a.lr = Some(num(&flag, it.next())),
                "--batch-size" => a.batch_size = Some(num(&flag, it.next())),
                "--resize" => a.resize = Some(num(&flag, it.next())),
                "--width-mult" => a.width_mult = Some(num(&flag, it.next())),
                "--train-limit" => a.train_limit = Some(num(&flag, it.next())),
                "--test-limit" => a.test_limit = Some(num(&flag, it.next())),
                "--threads" => a.threads = Some(num(&flag, it.next())),
                f if switches.contains(&f) => a.extra.push((flag.clone(), None)),
                f if valued.contains(&f) => {
                    let v = it.next();
                    a.extra.push((flag.clone(), v));
                }
                f => usage(&format!("unknown option `{f}`")),
            }
        }
        if let Some(n) = a.threads {
            if let Err(e) = d2l::tensor::set_num_threads(n) {
                usage(&e.to_string());
            }
        }
        a
    }

    /// Whether the example's switch `flag` was given.
    pub fn has(&self, flag: &str) -> bool {
        self.extra.iter().any(|(f, _)| f == flag)
    }

    /// The value of the example's option `flag`, if given.
    pub fn value(&self, flag: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(f, _)| f == flag)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The input side: `--resize`, else the recipe's, else 28.
    pub fn side(&self, recipe: &Recipe) -> usize {
        self.resize.or(recipe.resize).unwrap_or(28)
    }

    /// The build config for `info`: 1×side×side input, 10 classes, `--width-mult`.
    pub fn config(&self, info: &ModelInfo) -> BuildConfig {
        let side = self.side(&info.recipe);
        let mut cfg = info.config_for(Some(side));
        cfg.width_mult = self.width_mult.unwrap_or(1.0);
        cfg
    }
}

/// The first `n` examples of a data set.
struct Head(Arc<dyn Dataset>, usize);

impl Dataset for Head {
    fn len(&self) -> usize {
        self.1
    }
    fn get(&self, i: usize) -> d2l::data::error::Result<Example> {
        self.0.get(i)
    }
    fn get_batch(&self, idx: &[usize]) -> d2l::data::error::Result<Batch> {
        self.0.get_batch(idx)
    }
}

fn head(loader: DataLoader, n: Option<usize>, shuffle: bool) -> Result<DataLoader> {
    match n {
        Some(n) if n > 0 && n < loader.num_examples() => {
            let cut = DataLoader::new(
                Arc::new(Head(loader.dataset().clone(), n)),
                loader.batch_size(),
            )
            .map_err(data_error)?;
            Ok(if shuffle { cut.shuffle(0) } else { cut })
        }
        _ => Ok(loader),
    }
}

/// The book's `load_data_fashion_mnist(batch_size, resize)` through the data hub
/// (`--data-dir` first), or the built-in `shapes` set with a notice; cut to
/// `--train-limit` / `--test-limit`.
pub fn load_data(
    args: &Args,
    batch_size: usize,
    resize: usize,
) -> Result<(DataLoader, DataLoader)> {
    let mut hub = DataHub::from_env();
    if let Some(dir) = &args.data_dir {
        hub = hub.with_data_dir(dir);
    }
    let resize = (resize != 28).then_some(resize);
    let (train, test, notice) =
        load_image_classification(DatasetName::FashionMnist, &hub, batch_size, resize, 0, true)
            .map_err(data_error)?;
    if notice.fell_back() {
        println!("note: {notice}");
    }
    Ok((
        head(train, args.train_limit, true)?,
        head(test, args.test_limit, false)?,
    ))
}

/// The book's layer walk: `X = torch.rand(size=(1, C, H, W))`, then for each layer
/// `print(layer.__class__.__name__, 'output shape:\t', X.shape)`; then the parameter and
/// FLOP totals.
pub fn print_walk(net: &Sequential, in_shape: &[usize]) -> Result<()> {
    let s = summarize(net, in_shape)?;
    print!("{}", s.shape_walk());
    println!(
        "{} parameters, {:.1} MFLOPs per image",
        s.total_params,
        s.total_flops as f64 / 1e6
    );
    Ok(())
}

/// The book's `train_ch6(net, train_iter, test_iter, num_epochs, lr, device)`: the
/// builders already applied its Xavier init; plain SGD, mean cross-entropy; one line per
/// epoch, then `loss …, train acc …, test acc …` and `… examples/sec on cpu`
/// ([`d2l::book::train_report`]).
pub fn train_ch6(
    net: &Sequential,
    train_iter: &DataLoader,
    test_iter: &DataLoader,
    num_epochs: usize,
    lr: f64,
) -> Result<()> {
    let mut trainer = Sgd::new(net.parameters(), lr)?;
    let config = TrainConfig {
        epochs: num_epochs,
        quiet: true,
        ..Default::default()
    };
    let s = Trainer::new(net, cross_entropy_loss(), &mut trainer, config)
        .on_epoch(|m| {
            println!(
                "epoch {}: loss {:.3}, train acc {:.3}, test acc {:.3}, {:.1} s",
                m.epoch,
                m.train_loss,
                m.train_acc.unwrap_or(f64::NAN),
                m.test_acc.unwrap_or(f64::NAN),
                m.seconds
            )
        })
        .fit(train_iter, Some(test_iter))?;
    println!("{}", d2l::book::train_report(&s));
    Ok(())
}

/// Runs a zoo CNN as its section does: walk, data, `train_ch6` with the recipe (flags
/// override epochs, lr, batch size, resize, width).
pub fn run(args: &Args, info: &ModelInfo, net: &Sequential) -> Result<()> {
    let r = &info.recipe;
    let cfg = args.config(info);
    println!("{} (D2L {}): {}", info.title, info.section, r);
    print_walk(net, &cfg.in_shape)?;
    let batch = args.batch_size.unwrap_or(r.batch_size);
    let (train_iter, test_iter) = load_data(args, batch, args.side(r))?;
    train_ch6(
        net,
        &train_iter,
        &test_iter,
        args.epochs.unwrap_or(r.epochs),
        args.lr.unwrap_or(r.lr),
    )
}

/// The `main` of a section whose example is its zoo network and nothing else: no flags of
/// its own, seed 0, the zoo's `name` built by `build` with the recipe's settings, then
/// [`run`].
pub fn run_zoo(name: &str, build: fn(&BuildConfig) -> Result<Sequential>) -> Result<()> {
    let args = Args::parse(&[], &[]);
    manual_seed(0);
    let info = d2l::models::zoo::model(name)?;
    let net = build(&args.config(&info))?;
    run(&args, &info, &net)
}
