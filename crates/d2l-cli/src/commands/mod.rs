//! The program's commands, one file per group, and what they share: data and model
//! set-up from flags, and errors as one line.

pub mod bench;
pub mod eval;
pub mod experiments;
pub mod info;
pub mod train;

use clap::Args;
use d2l_data::datasets::{load_image_classification, DatasetName, Notice};
use d2l_data::hub::DataHub;
use d2l_data::loader::DataLoader;
use d2l_models::zoo::{self, ModelInfo, TaskKind};
use std::path::PathBuf;

/// Any error of any layer, shown to the user as one line.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;
/// The commands' result type.
pub type CliResult<T> = Result<T, CliError>;

/// Flags that pick and shape the data.
#[derive(Args, Clone, Debug, Default)]
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
}

impl DataArgs {
    /// Applies `--threads` and `--seed` to the engine.
    pub fn apply_engine_settings(&self) -> CliResult<()> {
        if let Some(n) = self.threads {
            d2l_tensor::set_num_threads(n)?;
        }
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
    let hub = args.hub(quiet);
    Ok(load_image_classification(
        name, &hub, batch, resize, args.seed, !explicit,
    )?)
}
