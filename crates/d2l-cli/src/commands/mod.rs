//! The program's commands, one file per group, and what they share: data and model
//! set-up from flags, and errors as one line.

pub mod augment;
pub mod bench;
pub mod convert;
pub mod detect;
pub mod devices;
pub mod eval;
pub mod experiments;
pub mod finetune;
pub mod info;
pub mod rcnn;
pub mod reproduce;
pub mod segment;
pub mod seq;
pub mod sizes;
pub mod style;
pub mod train;
pub mod upsample;

use clap::Args;
use d2l_data::datasets::{load_image_classification, DatasetName, Notice};
use d2l_data::hub::DataHub;
use d2l_data::loader::{Batch, DataLoader, Dataset, Example};
use d2l_models::zoo::{self, ModelInfo, TaskKind};
use std::path::PathBuf;

pub use devices::DeviceArgs;

/// Any error of any layer, shown to the user as one line.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;
/// The commands' result type.
pub type CliResult<T> = Result<T, CliError>;

/// A training run stopped by Ctrl-C after saving its checkpoint: the program exits with
/// status 130, as shells expect of an interrupted command.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// Flags that pick and shape the data.
#[derive(Args, Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataArgs {
    /// Data set: fashion-mnist, mnist or shapes (default: the model's book data set).
    #[arg(long)]
    pub dataset: Option<String>,
    /// A data directory laid out like ../shared/data (also D2L_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Mini-batch size (default: the book's).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Resize images to N×N (default: the book's, usually none).
    #[arg(long)]
    pub resize: Option<usize>,
    /// Seed for initialisation, shuffling and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads for the kernels (default: RAYON_NUM_THREADS or all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Train on the first N training images only (a reduced budget for heavy models).
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    pub test_limit: Option<usize>,
}

/// The first `n` examples of a data set (`--train-limit`, `--test-limit`).
struct Head {
    inner: std::sync::Arc<dyn Dataset>,
    n: usize,
}

impl Dataset for Head {
    fn len(&self) -> usize {
        self.n
    }

    fn get(&self, index: usize) -> d2l_data::error::Result<Example> {
        self.inner.get(index)
    }

    fn get_batch(&self, indices: &[usize]) -> d2l_data::error::Result<Batch> {
        self.inner.get_batch(indices)
    }
}

/// `loader` cut to its first `limit` examples (same batch size; shuffled with `seed` when
/// given). A limit of 0 is an error; one at or above the size changes nothing.
pub(crate) fn head_loader(
    loader: DataLoader,
    limit: Option<usize>,
    shuffle: Option<u64>,
    flag: &str,
) -> CliResult<DataLoader> {
    let Some(n) = limit else {
        return Ok(loader);
    };
    if n == 0 {
        return Err(format!("{flag} must be at least 1, got 0").into());
    }
    if n >= loader.num_examples() {
        return Ok(loader);
    }
    let head = Head {
        inner: loader.dataset().clone(),
        n,
    };
    let cut = DataLoader::new(std::sync::Arc::new(head), loader.batch_size())?;
    Ok(match shuffle {
        Some(seed) => cut.shuffle(seed),
        None => cut,
    })
}

impl DataArgs {
    /// `train` cut to `--train-limit` examples (a seeded random subset, see [`head_loader`]).
    pub(crate) fn limit_train(&self, train: DataLoader) -> CliResult<DataLoader> {
        head_loader(train, self.train_limit, Some(self.seed), "--train-limit")
    }

    /// `test` cut to its first `--test-limit` examples.
    pub(crate) fn limit_test(&self, test: DataLoader) -> CliResult<DataLoader> {
        head_loader(test, self.test_limit, None, "--test-limit")
    }

    /// Applies `--threads` and `--seed` to the engine.
    pub fn apply_engine_settings(&self) -> CliResult<()> {
        sizes::set_threads(self.threads)?;
        d2l_tensor::manual_seed(self.seed);
        Ok(())
    }

    /// The data hub: `--data-dir`, else `D2L_DATA_DIR`, then the cache, system copies, download.
    pub fn hub(&self, quiet: bool) -> DataHub {
        let mut hub = DataHub::from_env();
        if let Some(d) = &self.data_dir {
            hub = hub.with_data_dir(d);
        }
        if quiet {
            hub = hub.quiet();
        }
        hub
    }
}

/// Looks a model up by name (a one-line error listing the known names otherwise).
pub fn find_model(name: &str) -> CliResult<ModelInfo> {
    Ok(zoo::model(name)?)
}

/// The train and test loaders for an image-classification model, falling back to the
/// built-in `shapes` set (with a notice) when no `--dataset` was given and the book's
/// data set cannot be found or fetched.
pub fn image_data(
    model: &ModelInfo,
    args: &DataArgs,
    quiet: bool,
) -> CliResult<(DataLoader, DataLoader, Notice)> {
    if model.task != TaskKind::Classification {
        return Err(format!("model `{}` is not an image classifier", model.name).into());
    }
    let explicit = args.dataset.is_some();
    let name: DatasetName = args
        .dataset
        .as_deref()
        .unwrap_or(model.recipe.dataset)
        .parse()?;
    let batch = args.batch_size.unwrap_or(model.recipe.batch_size);
    if batch == 0 {
        return Err("--batch-size must be at least 1, got 0".into());
    }
    let resize = args.resize.or(model.recipe.resize);
    if let Some(n) = resize {
        sizes::check_resize(n, model.default_input.first().copied().unwrap_or(3), batch)?;
    }
    let hub = args.hub(quiet);
    let (train, test, notice) =
        load_image_classification(name, &hub, batch, resize, args.seed, !explicit)?;
    let train = args.limit_train(train)?;
    let test = args.limit_test(test)?;
    Ok((train, test, notice))
}
