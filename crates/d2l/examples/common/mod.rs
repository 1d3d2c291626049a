//! Plumbing shared by the chapter 3–4 examples (softmax regression, MLP, dropout): the
//! command line (`--data-dir DIR`, `--epochs N`), Fashion-MNIST through the data hub
//! with the `shapes` fallback, and the book's `train_ch3` report on top of `Trainer`.
//! Each example includes it with `#[path = "common/mod.rs"] mod common;`; the model each
//! section teaches stays in the example itself, and so do the scratch sections' loss and
//! updater. The concise sections (3.7, 4.3, 4.6) all end with the same four lines of
//! PyTorch, which are [`train_concise`] here.

use d2l::data::datasets::{load_image_classification, DatasetName};
use d2l::data::hub::DataHub;
use d2l::data::loader::DataLoader;
use d2l::models::recipe::Recipe;
use d2l::nn::loss::{cross_entropy_with, CrossEntropyOptions, Reduction};
use d2l::prelude::*;
use d2l::train::metrics::data_error;
use d2l::train::trainer::{cross_entropy_loss, LossFn, TrainConfig, Trainer};

/// `--data-dir DIR` and `--epochs N`.
pub struct Args {
    pub data_dir: Option<String>,
    pub epochs: Option<usize>,
}

impl Args {
    pub fn parse() -> Args {
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

    /// `recipe` with `--epochs` (when given) in place of its own.
    pub fn apply(&self, mut recipe: Recipe) -> Recipe {
        if let Some(e) = self.epochs {
            recipe.epochs = e;
        }
        recipe
    }
}

/// The start the examples share: the command line read, `--epochs` put into `recipe`, the
/// global seed set to 0 and Fashion-MNIST loaded with the recipe's batch size.
#[allow(dead_code)] // dropout_scratch draws its dropout check between seed and loading
pub fn setup(recipe: Recipe) -> Result<(Recipe, (DataLoader, DataLoader))> {
    let args = Args::parse();
    let recipe = args.apply(recipe);
    manual_seed(0);
    let data = load_fashion_mnist(&args, recipe.batch_size)?;
    Ok((recipe, data))
}

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}\nusage: [--data-dir DIR] [--epochs N]");
    std::process::exit(2)
}

/// Fashion-MNIST through the data hub (`--data-dir` first), or the built-in `shapes` set
/// with a notice when its files are nowhere to be had.
pub fn load_fashion_mnist(args: &Args, batch_size: usize) -> Result<(DataLoader, DataLoader)> {
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

/// One `train_ch3` report line: `epoch N: train loss …, train acc …, test acc …`.
pub fn print_epoch(epoch: usize, train_loss: f64, train_acc: f64, test_acc: f64) {
    println!(
        "epoch {epoch}: train loss {train_loss:.3}, train acc {train_acc:.3}, test acc {test_acc:.3}"
    );
}

/// The closing `train_ch3` line: `final: train loss …, train acc …, test acc …, S s`.
pub fn print_final(train_loss: f64, train_acc: f64, test_acc: f64, seconds: f64) {
    println!(
        "final: train loss {train_loss:.3}, train acc {train_acc:.3}, test acc {test_acc:.3}, {seconds:.1} s"
    );
}

/// The book's `train_ch3(net, train_iter, test_iter, loss, num_epochs, updater)` (the two
/// loaders as one pair, as [`load_fashion_mnist`] returns them; the epochs and the rest of
/// the settings as a [`Recipe`]) with a PyTorch-style optimiser: the network and the recipe
/// are printed, `Trainer` runs the epochs (quietly), and every epoch and the end are
/// reported as above.
#[allow(dead_code)] // softmax_regression_scratch writes its own loop
pub fn train_ch3(
    net: &dyn Module,
    (train_iter, test_iter): &(DataLoader, DataLoader),
    loss: LossFn,
    recipe: &Recipe,
    updater: &mut dyn Optimizer,
) -> Result<()> {
    print_summary(net);
    println!("{recipe}");
    let config = TrainConfig {
        epochs: recipe.epochs,
        quiet: true,
        ..Default::default()
    };
    let summary = Trainer::new(net, loss, updater, config)
        .on_epoch(|m| {
            print_epoch(
                m.epoch,
                m.train_loss,
                m.train_acc.unwrap_or(f64::NAN),
                m.test_acc.unwrap_or(f64::NAN),
            )
        })
        .fit(train_iter, Some(test_iter))?;
    print_final(
        summary.train_loss,
        summary.train_acc.unwrap_or(f64::NAN),
        summary.test_acc.unwrap_or(f64::NAN),
        summary.seconds,
    );
    Ok(())
}

/// The concise sections' training: `net.apply(init_weights)` ([`init_weights`]),
/// `loss = nn.CrossEntropyLoss()` (averaged over the batch), `trainer =
/// torch.optim.SGD(net.parameters(), lr=lr)` and `train_ch3` with the recipe's settings.
#[allow(dead_code)] // the scratch examples bring their own parameters, loss and updater
pub fn train_concise(
    net: &dyn Module,
    data: &(DataLoader, DataLoader),
    recipe: &Recipe,
) -> Result<()> {
    init_weights(net)?;
    let loss = cross_entropy_loss();
    let mut trainer = Sgd::new(net.parameters(), recipe.lr)?;
    train_ch3(net, data, loss, recipe, &mut trainer)
}

/// The concise sections' `init_weights`, applied with `net.apply`: every `Linear` weight
/// drawn from N(0, 0.01²), the biases keeping `nn.Linear`'s default.
#[allow(dead_code)] // the scratch examples initialise their own parameters
pub fn init_weights(net: &dyn Module) -> Result<()> {
    net.apply(&mut |m: &dyn Module| {
        if let Some(l) = m.as_any().downcast_ref::<Linear>() {
            init::normal_(&l.weight, 0.0, 0.01)?;
        }
        Ok(())
    })
}

/// Prints the network's layer tree and its parameter count.
pub fn print_summary(net: &dyn Module) {
    println!(
        "{}\n{} parameters",
        net.summary_tree().trim_end(),
        net.num_parameters()
    );
}

/// The scratch sections' loss: `nn.CrossEntropyLoss(reduction='none')`, each example's
/// loss, averaged over the batch before `backward()` (what `train_ch3` does with a
/// PyTorch optimiser).
#[allow(dead_code)] // the concise examples use the averaged loss directly
pub fn cross_entropy_per_example_mean() -> LossFn {
    Box::new(|y_hat, y| {
        let opts = CrossEntropyOptions {
            reduction: Reduction::None,
            ..Default::default()
        };
        cross_entropy_with(y_hat, y, &opts)?.mean_all()
    })
}
