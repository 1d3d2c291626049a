//! D2L 4.3, *Concise Implementation of Multilayer Perceptrons*: `Flatten,
//! Linear(784, 256), ReLU, Linear(256, 10)` with weights ~ N(0, 0.01²) (biases keep
//! `nn.Linear`'s default init), `nn.CrossEntropyLoss`, minibatch SGD with lr 0.1,
//! batch 256, 10 epochs on Fashion-MNIST, trained by `Trainer` (the book's `train_ch3`).
//! The same network is the zoo's `mlp` (`d2l train mlp`).
//!
//! Run (from the repo root):
//! `cargo run --release -p d2l --example mlp_concise -- --data-dir ../shared/data`
//!
//! Options: `--data-dir DIR` (where `fashion_mnist/` lives; the data hub also reads
//! `D2L_DATA_DIR`, its cache and the system copies) and `--epochs N`. Without
//! Fashion-MNIST it trains on the built-in `shapes` set and says so.

use d2l::data::datasets::{load_image_classification, DatasetName};
use d2l::data::hub::DataHub;
use d2l::data::loader::DataLoader;
use d2l::models::recipe::Recipe;
use d2l::prelude::*;
use d2l::train::metrics::data_error;
use d2l::train::trainer::{cross_entropy_loss, TrainConfig, Trainer};

fn main() -> Result<()> {
    let args = Args::parse();
    let recipe = Recipe::mlp(); // batch 256, lr 0.1, 10 epochs
    let num_epochs = args.epochs.unwrap_or(recipe.epochs);
    manual_seed(0);
    let (train_iter, test_iter) = load_fashion_mnist(&args, recipe.batch_size)?;

    let net = Sequential::new()
        .add(Flatten::new())
        .add(Linear::new(784, 256)?)
        .add(ReLU)
        .add(Linear::new(256, 10)?);
    net.apply(&mut |m: &dyn Module| {
        if let Some(l) = m.as_any().downcast_ref::<Linear>() {
            init::normal_(&l.weight, 0.0, 0.01)?; // `init_weights`
        }
        Ok(())
    })?;
    println!(
        "{}\n{} parameters",
        net.summary_tree().trim_end(),
        net.num_parameters()
    );

    let loss = cross_entropy_loss(); // `nn.CrossEntropyLoss`, averaged over the batch
    let mut trainer = Sgd::new(net.parameters(), recipe.lr)?;
    let config = TrainConfig {
        epochs: num_epochs,
        quiet: true,
        ..Default::default()
    };
    println!("{recipe}");
    let summary = Trainer::new(&net, loss, &mut trainer, config)
        .on_epoch(|m| {
            println!(
                "epoch {}: train loss {:.3}, train acc {:.3}, test acc {:.3}",
                m.epoch,
                m.train_loss,
                m.train_acc.unwrap_or(f64::NAN),
                m.test_acc.unwrap_or(f64::NAN)
            )
        })
        .fit(&train_iter, Some(&test_iter))?;
    println!(
        "final: train loss {:.3}, train acc {:.3}, test acc {:.3}, {:.1} s",
        summary.train_loss,
        summary.train_acc.unwrap_or(f64::NAN),
        summary.test_acc.unwrap_or(f64::NAN),
        summary.seconds
    );
    Ok(())
}

// ------------------------------------------------ command line and data (as in every example)

/// `--data-dir DIR` and `--epochs N`.
struct Args {
    data_dir: Option<String>,
    epochs: Option<usize>,
}

impl Args {
    fn parse() -> Args {
        let mut args = Args {
            data_dir: None,
            epochs: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next();
            match (flag.as_str(), value) {
                ("--data-dir", Some(v)) => args.data_dir = Some(v),
                ("--epochs", Some(v)) => match v.parse() {
                    Ok(n) => args.epochs = Some(n),
                    Err(_) => usage(&format!("--epochs expects a whole number, got `{v}`")),
                },
                (f, _) => usage(&format!("unknown or incomplete option `{f}`")),
            }
        }
        args
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}\nusage: [--data-dir DIR] [--epochs N]");
    std::process::exit(2)
}

/// Fashion-MNIST through the data hub (`--data-dir` first), or the built-in `shapes` set
/// with a notice when its files are nowhere to be had.
fn load_fashion_mnist(args: &Args, batch_size: usize) -> Result<(DataLoader, DataLoader)> {
    let mut hub = DataHub::from_env();
    if let Some(dir) = &args.data_dir {
        hub = hub.with_data_dir(dir);
    }
    let (train_iter, test_iter, notice) =
        load_image_classification(DatasetName::FashionMnist, &hub, batch_size, None, 0, true)
            .map_err(data_error)?;
    if notice.fell_back() {
        println!("note: {notice}");
    }
    Ok((train_iter, test_iter))
}
