//! D2L 13.1 (image augmentation), offline: train the same network twice, from the same
//! initialisation and in the same minibatch order, once on the plain images and once with
//! `RandomHorizontalFlip` (optionally followed by a mild `RandomResizedCrop`), and compare
//! the train–test accuracy gap.
//!
//! The book trains `d2l.resnet18(10, 3)` (Xavier-uniform init) on all of CIFAR-10 with
//! `RandomHorizontalFlip`, Adam (lr 0.001), batch 256, 10 epochs, and prints `loss 0.173,
//! train acc 0.941, test acc 0.854`. CIFAR-10 is used here when asked for
//! ([`DataChoice::Cifar10`]) and present; the default is the offline substitute: a small
//! training subset of Fashion-MNIST (1,000 images, so that a ResNet overfits it within 10
//! epochs), 2,000 test images, and [`resnet18_small`] (the same D.8 network with one input
//! channel) at a reduced width, so that both runs finish in minutes on two cores.
//!
//! The book's loss is `CrossEntropyLoss(reduction='none')` summed over the batch; Adam's
//! update is invariant to a constant scale of the loss (up to its `eps`), so the mean is
//! used here and the reported loss is per example, as the book's printout is.
//!
//! The augmentation goes through [`AugmentedDataset`]: example `i` of epoch `e` is
//! transformed with its own generator derived from `(seed, e, i)`, and the epoch is
//! advanced after every training epoch, so each epoch sees fresh flips. The test images
//! are never transformed.

use crate::{check_positive, check_rate, plot_spec, save_plot, series, write_csv, Common};
use crate::{ExperimentError, Result};
use d2l_data::datasets::{load_image_sets, DatasetName, ImageDataset, SHAPES_DATA_SEED};
use d2l_data::hub::DataHub;
use d2l_data::idx::ImageSet;
use d2l_data::loader::{Batch, DataLoader, Dataset, Example};
use d2l_data::shapes::Shapes;
use d2l_data::DataError;
use d2l_models::cnn::resnet18_small;
use d2l_models::zoo::BuildConfig;
use d2l_nn::conv::Conv2d;
use d2l_nn::layers::Linear;
use d2l_nn::optim::Adam;
use d2l_nn::{Module, Sequential};
use d2l_tensor::{Generator, Tensor};
use d2l_train::plot::PlotSpec;
use d2l_train::trainer::{cross_entropy_loss, TrainConfig, TrainSummary, Trainer};
use d2l_vision::transforms::{
    AugmentedDataset, Compose, ImageTransform, RandomHorizontalFlip, RandomResizedCrop,
};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The book's 13.1 result with augmentation (loss, train acc, test acc; all of CIFAR-10,
/// `d2l.resnet18(10, 3)`, 10 epochs, 2 V100s).
pub const BOOK_AUGMENT: (f64, f64, f64) = (0.173, 0.941, 0.854);

/// Which images [`run_augment`] trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataChoice {
    /// One of the grey-scale sets (Fashion-MNIST by default; `shapes` always works).
    Images(DatasetName),
    /// CIFAR-10 (the book's set), from the data hub's `cifar10/` folder.
    Cifar10,
}

impl fmt::Display for DataChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataChoice::Images(d) => write!(f, "{d}"),
            DataChoice::Cifar10 => f.write_str("cifar10"),
        }
    }
}

impl FromStr for DataChoice {
    type Err = DataError;

    /// `cifar10` (or `cifar-10`), else a [`DatasetName`] (`fashion-mnist`, `mnist`, `shapes`).
    fn from_str(s: &str) -> std::result::Result<Self, DataError> {
        let key = s.trim().to_ascii_lowercase().replace(['_', '-'], "");
        if key == "cifar10" {
            return Ok(DataChoice::Cifar10);
        }
        s.parse::<DatasetName>().map(DataChoice::Images)
    }
}

/// The augmentation of the second run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AugmentKind {
    /// `RandomHorizontalFlip()` (the book's 13.1 training transform).
    #[default]
    Flip,
    /// `RandomHorizontalFlip()`, then `RandomResizedCrop(size, scale=(0.64, 1))` back to the
    /// image's own size (default aspect ratios 3/4–4/3).
    FlipCrop,
}

impl AugmentKind {
    /// The name used on the command line and in the tables (`flip`, `flip-crop`).
    pub fn as_str(self) -> &'static str {
        match self {
            AugmentKind::Flip => "flip",
            AugmentKind::FlipCrop => "flip-crop",
        }
    }

    /// The transform for `(height, width)` images.
    pub fn transform(self, height: usize, width: usize) -> Result<Compose> {
        let c = Compose::default().then(RandomHorizontalFlip::default());
        Ok(match self {
            AugmentKind::Flip => c,
            AugmentKind::FlipCrop => c.then(RandomResizedCrop::with_params(
                (height, width),
                (0.64, 1.0),
                (3.0 / 4.0, 4.0 / 3.0),
            )?),
        })
    }
}

impl fmt::Display for AugmentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AugmentKind {
    type Err = String;

    /// `flip` or `flip-crop`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "flip" => Ok(AugmentKind::Flip),
            "flip-crop" | "flipcrop" => Ok(AugmentKind::FlipCrop),
            other => Err(format!(
                "unknown augmentation `{other}`; expected flip or flip-crop"
            )),
        }
    }
}

/// Settings of [`run_augment`]. The defaults are the offline substitute documented in
/// `docs/RESULTS.md`: Fashion-MNIST, 1,000 training and 2,000 test images, width × 0.5,
/// batch 64, Adam 0.001, 10 epochs.
#[derive(Debug, Clone)]
pub struct AugmentOptions {
    /// The images (Fashion-MNIST).
    pub dataset: DataChoice,
    /// Where the files are looked for.
    pub hub: DataHub,
    /// Use `shapes`, with a notice, when a grey-scale set's files cannot be had.
    pub fallback_to_shapes: bool,
    /// Training images, a seeded random subset of the training split (0: all).
    pub n_train: usize,
    /// Test images, a seeded random subset of the test split (0: all).
    pub n_test: usize,
    /// Epochs of each run (10, the book's).
    pub epochs: usize,
    /// Minibatch size (64; the book's 256 gives only 4 steps an epoch on 1,000 images).
    pub batch_size: usize,
    /// Adam's learning rate (0.001, the book's).
    pub lr: f64,
    /// The network's width multiplier (0.5; 1.0 is the book's ResNet-18).
    pub width_mult: f64,
    /// The augmentation of the second run.
    pub augment: AugmentKind,
    /// The settings every experiment has ([`Common`]): the seed of the subsets, the
    /// initialisation, the minibatch order and the augmentation; the folder for
    /// `metrics.csv` and `curves.png/.svg`; `quiet`.
    pub common: Common,
    /// Where both runs train (the CPU by default).
    pub device: d2l_tensor::Device,
}

impl Default for AugmentOptions {
    fn default() -> Self {
        AugmentOptions {
            dataset: DataChoice::Images(DatasetName::FashionMnist),
            hub: DataHub::from_env(),
            fallback_to_shapes: true,
            n_train: 1000,
            n_test: 2000,
            epochs: 10,
            batch_size: 64,
            lr: 0.001,
            width_mult: 0.5,
            augment: AugmentKind::Flip,
            common: Common::default(),
            device: d2l_tensor::Device::Cpu,
        }
    }
}

/// One epoch of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRow {
    /// The epoch, counting from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch (per example).
    pub train_loss: f64,
    /// Training accuracy over the epoch (on the images as trained, i.e. augmented).
    pub train_acc: f64,
    /// Test accuracy after the epoch.
    pub test_acc: f64,
    /// Wall-clock seconds of the epoch (training and test).
    pub seconds: f64,
}

impl EpochRow {
    /// The rows of a [`TrainSummary`].
    pub fn from_summary(s: &TrainSummary) -> Vec<EpochRow> {
        s.epochs
            .iter()
            .map(|m| EpochRow {
                epoch: m.epoch,
                train_loss: m.train_loss,
                train_acc: m.train_acc.unwrap_or(f64::NAN),
                test_acc: m.test_acc.unwrap_or(f64::NAN),
                seconds: m.seconds,
            })
            .collect()
    }
}

/// One training run: its name and per-epoch numbers.
#[derive(Debug, Clone)]
pub struct TrainRun {
    /// `no-aug`, `flip`, `flip-crop`, `fine-tune` or `scratch`.
    pub name: String,
    /// One row per epoch.
    pub epochs: Vec<EpochRow>,
    /// Training examples per second (training steps only).
    pub examples_per_sec: f64,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
}

impl TrainRun {
    /// A run from a trainer's summary; an error naming the run when it stopped early
    /// (interrupted, or a non-finite loss): a partial run is not a result.
    pub fn from_summary(name: &str, s: &TrainSummary) -> Result<TrainRun> {
        if let Some(why) = &s.stopped_early {
            return Err(ExperimentError::Invalid(format!(
                "run `{name}` stopped early: {why}"
            )));
        }
        Ok(TrainRun {
            name: name.to_string(),
            epochs: EpochRow::from_summary(s),
            examples_per_sec: s.examples_per_sec,
            seconds: s.seconds,
        })
    }

    /// The last epoch's row.
    pub fn last(&self) -> Option<&EpochRow> {
        self.epochs.last()
    }

    /// Final train accuracy minus final test accuracy.
    pub fn gap(&self) -> f64 {
        self.last()
            .map(|r| r.train_acc - r.test_acc)
            .unwrap_or(f64::NAN)
    }

    /// Train minus test accuracy averaged over the last `k` epochs (less sensitive to one
    /// noisy test evaluation than [`TrainRun::gap`]).
    pub fn mean_gap(&self, k: usize) -> f64 {
        let k = k.clamp(1, self.epochs.len().max(1));
        let tail = &self.epochs[self.epochs.len().saturating_sub(k)..];
        if tail.is_empty() {
            return f64::NAN;
        }
        tail.iter().map(|r| r.train_acc - r.test_acc).sum::<f64>() / tail.len() as f64
    }

    /// Test accuracy averaged over the last `k` epochs.
    pub fn mean_test_acc(&self, k: usize) -> f64 {
        let k = k.clamp(1, self.epochs.len().max(1));
        let tail = &self.epochs[self.epochs.len().saturating_sub(k)..];
        if tail.is_empty() {
            return f64::NAN;
        }
        tail.iter().map(|r| r.test_acc).sum::<f64>() / tail.len() as f64
    }
}

/// The images of one experiment as data sets, with what was actually loaded.
#[derive(Clone)]
pub struct AugmentData {
    /// The training subset.
    pub train: Arc<dyn Dataset>,
    /// The test subset.
    pub test: Arc<dyn Dataset>,
    /// One image's shape `[C, H, W]`.
    pub in_shape: Vec<usize>,
    /// The number of classes.
    pub num_classes: usize,
    /// The set used (`shapes` after a fallback).
    pub used: DataChoice,
    /// The one-line fallback notice, if the requested set was replaced.
    pub notice: Option<String>,
}

impl fmt::Debug for AugmentData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AugmentData")
            .field("train", &self.train.len())
            .field("test", &self.test.len())
            .field("in_shape", &self.in_shape)
            .field("used", &self.used)
            .finish()
    }
}

/// What [`run_augment`] returns.
#[derive(Debug, Clone)]
pub struct AugmentResults {
    /// The images used.
    pub dataset: DataChoice,
    /// The fallback notice, if any.
    pub notice: Option<String>,
    /// Training and test images.
    pub sizes: (usize, usize),
    /// The network's parameter count.
    pub num_parameters: usize,
    /// The options, for the printout.
    pub options: AugmentOptions,
    /// The run without augmentation.
    pub plain: TrainRun,
    /// The run with augmentation.
    pub augmented: TrainRun,
    /// The augmentation epoch each training epoch of the augmented run drew from (0, 1, …:
    /// a fresh draw every epoch).
    pub augment_epochs: Vec<u64>,
    /// `metrics.csv`, when written.
    pub csv: Option<PathBuf>,
    /// `curves.png`, when drawn.
    pub plot: Option<PathBuf>,
    /// Wall-clock seconds of the whole experiment.
    pub seconds: f64,
}

// ------------------------------------------------------------------ shared helpers

/// Re-draws every `Linear` and `Conv2d` of `net` from `g`: weights Xavier-uniform (13.1's
/// `init_weights`, `U(±√(6 / (fan_in + fan_out)))`), biases PyTorch's default
/// `U(±1/√fan_in)`. Batch-norm parameters keep their fixed initial values. So a network
/// depends on its seed only, not on the process-wide generator (which tests running in
/// parallel share).
pub fn seeded_init(net: &dyn Module, g: &mut Generator) -> Result<()> {
    let mut layers: Vec<(Tensor, Option<Tensor>)> = Vec::new();
    net.apply(&mut |m: &dyn Module| {
        let any = m.as_any();
        if let Some(l) = any.downcast_ref::<Linear>() {
            layers.push((l.weight.clone(), l.bias.clone()));
        } else if let Some(c) = any.downcast_ref::<Conv2d>() {
            layers.push((c.weight.clone(), c.bias.clone()));
        }
        Ok(())
    })?;
    for (w, b) in layers {
        init_layer(&w, b.as_ref(), g)?;
    }
    Ok(())
}

/// Xavier-uniform `weight` and default-uniform `bias` of one layer, drawn from `g`.
pub(crate) fn init_layer(weight: &Tensor, bias: Option<&Tensor>, g: &mut Generator) -> Result<()> {
    let s = weight.shape();
    let receptive: usize = s.iter().skip(2).product();
    let fan_in = s.get(1).copied().unwrap_or(1) * receptive;
    let fan_out = s.first().copied().unwrap_or(1) * receptive;
    let a = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt();
    d2l_nn::init::uniform_with_(weight, -a, a, g)?;
    if let Some(b) = bias {
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        d2l_nn::init::uniform_with_(b, -bound, bound, g)?;
    }
    Ok(())
}

/// `resnet18_small` for `in_shape` and `classes` at `width_mult`, initialised from `seed`
/// with [`seeded_init`].
pub fn small_resnet(
    in_shape: &[usize],
    classes: usize,
    width_mult: f64,
    seed: u64,
) -> Result<Sequential> {
    let mut cfg = BuildConfig::new(in_shape, classes);
    cfg.width_mult = width_mult;
    let net = resnet18_small(&cfg)?;
    seeded_init(&net, &mut Generator::new(seed))?;
    Ok(net)
}

/// The seed of the network's initialisation in [`run_augment`] (both runs).
pub fn init_seed(seed: u64) -> u64 {
    seed ^ 0x1317_1317_0000_0001
}

/// The seed of the augmentation draws in [`run_augment`].
pub fn augment_seed(seed: u64) -> u64 {
    seed ^ 0x1317_1317_0000_0002
}

/// `0..n` in a random order drawn from `g` (Fisher–Yates).
pub(crate) fn shuffled(n: usize, g: &mut Generator) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = g.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

/// The images `idx` of `set` (in that order), with their labels mapped by `relabel`.
pub(crate) fn select(
    set: &ImageSet,
    idx: &[usize],
    relabel: impl Fn(u8) -> u8,
) -> Result<ImageSet> {
    let d = set.height * set.width;
    let mut images = Vec::with_capacity(idx.len() * d);
    let mut labels = Vec::with_capacity(idx.len());
    for &i in idx {
        images.extend_from_slice(&set.images[i * d..(i + 1) * d]);
        labels.push(relabel(set.labels[i]));
    }
    Ok(ImageSet::new(images, labels, set.height, set.width)?)
}

/// The first `n` of a seeded permutation of `0..len` (all of them in order when `n` is 0 or
/// at least `len`).
pub(crate) fn sample_indices(len: usize, n: usize, g: &mut Generator) -> Vec<usize> {
    if n == 0 || n >= len {
        return (0..len).collect();
    }
    let mut v = shuffled(len, g);
    v.truncate(n);
    v
}

/// The train and test splits of a grey-scale set, or `shapes` (`n_train` / `n_test`
/// images from the generator's default streams; 0 means the default 60,000 / 10,000) with
/// a notice when the files cannot be had.
pub(crate) fn load_grey_sets(
    name: DatasetName,
    hub: &DataHub,
    fallback: bool,
    n_train: usize,
    n_test: usize,
) -> Result<(ImageSet, ImageSet, DatasetName, Option<String>)> {
    let shapes = || {
        (
            Shapes::generate(
                if n_train == 0 { 60_000 } else { n_train },
                SHAPES_DATA_SEED,
            ),
            // The stream of Shapes::load's test split.
            Shapes::generate(
                if n_test == 0 { 10_000 } else { n_test },
                SHAPES_DATA_SEED ^ 0x7E57_7E57_7E57_7E57,
            ),
        )
    };
    if name == DatasetName::Shapes {
        let (a, b) = shapes();
        return Ok((a, b, DatasetName::Shapes, None));
    }
    match load_image_sets(name, hub) {
        Ok((a, b)) => Ok((a, b, name, None)),
        Err(e @ (DataError::Missing { .. } | DataError::Download { .. })) if fallback => {
            let first = e.to_string();
            let notice = format!(
                "{name} not available ({}); using the built-in `shapes` set instead",
                first.lines().next().unwrap_or("")
            );
            let (a, b) = shapes();
            Ok((a, b, DatasetName::Shapes, Some(notice)))
        }
        Err(e) => Err(e.into()),
    }
}

/// A subset of another data set, by index.
struct Subset {
    inner: Arc<dyn Dataset>,
    idx: Vec<usize>,
}

impl Dataset for Subset {
    fn len(&self) -> usize {
        self.idx.len()
    }

    fn get(&self, index: usize) -> d2l_data::Result<Example> {
        let i = *self.idx.get(index).ok_or_else(|| {
            DataError::Invalid(format!(
                "index {index} is out of range for a subset of {} examples",
                self.idx.len()
            ))
        })?;
        self.inner.get(i)
    }

    fn get_batch(&self, indices: &[usize]) -> d2l_data::Result<Batch> {
        let mapped = indices
            .iter()
            .map(|&k| {
                self.idx.get(k).copied().ok_or_else(|| {
                    DataError::Invalid(format!(
                        "index {k} is out of range for a subset of {} examples",
                        self.idx.len()
                    ))
                })
            })
            .collect::<d2l_data::Result<Vec<_>>>()?;
        self.inner.get_batch(&mapped)
    }
}

/// Loads the training and test subsets [`run_augment`] uses: `n_train` / `n_test` images
/// drawn with a generator seeded from `seed` (all of a split when the count is 0).
pub fn augment_data(opts: &AugmentOptions) -> Result<AugmentData> {
    let mut g = Generator::new(opts.common.seed ^ 0x1317_1317_0000_0003);
    match opts.dataset {
        DataChoice::Cifar10 => {
            use d2l_vision::cifar::{cifar10_root, Cifar10Dataset};
            let root = cifar10_root(&opts.hub)?;
            let train = Cifar10Dataset::open(&root, true)?;
            let test = Cifar10Dataset::open(&root, false)?;
            let (ntr, nte) = (train.len(), test.len());
            let train: Arc<dyn Dataset> = Arc::new(Subset {
                inner: Arc::new(train),
                idx: sample_indices(ntr, opts.n_train, &mut g),
            });
            let test: Arc<dyn Dataset> = Arc::new(Subset {
                inner: Arc::new(test),
                idx: sample_indices(nte, opts.n_test, &mut g),
            });
            Ok(AugmentData {
                train,
                test,
                in_shape: vec![3, 32, 32],
                num_classes: 10,
                used: DataChoice::Cifar10,
                notice: None,
            })
        }
        DataChoice::Images(name) => {
            let (tr, te, used, notice) = load_grey_sets(
                name,
                &opts.hub,
                opts.fallback_to_shapes,
                opts.n_train,
                opts.n_test,
            )?;
            let tr = select(&tr, &sample_indices(tr.n, opts.n_train, &mut g), |l| l)?;
            let te = select(&te, &sample_indices(te.n, opts.n_test, &mut g), |l| l)?;
            let in_shape = vec![1, tr.height, tr.width];
            Ok(AugmentData {
                train: Arc::new(ImageDataset::new(tr)),
                test: Arc::new(ImageDataset::new(te)),
                in_shape,
                num_classes: 10,
                used: DataChoice::Images(used),
                notice,
            })
        }
    }
}

/// Writes `dir/metrics.csv` (`run,epoch,train_loss,train_acc,test_acc,seconds`) for
/// `runs` and returns its path; writes nothing without a folder.
pub(crate) fn write_runs_csv(
    dir: Option<&std::path::Path>,
    runs: &[&TrainRun],
) -> Result<Option<PathBuf>> {
    let Some(dir) = dir else { return Ok(None) };
    let path = dir.join("metrics.csv");
    let rows = runs.iter().flat_map(|r| {
        r.epochs.iter().map(|e| {
            [
                r.name.clone(),
                e.epoch.to_string(),
                format!("{:.6}", e.train_loss),
                format!("{:.6}", e.train_acc),
                format!("{:.6}", e.test_acc),
                format!("{:.3}", e.seconds),
            ]
        })
    });
    let header = [
        "run",
        "epoch",
        "train_loss",
        "train_acc",
        "test_acc",
        "seconds",
    ];
    write_csv(&path, &header, rows)?;
    Ok(Some(path))
}

/// Draws `curves.png/.svg`: train and test accuracy of every run against the epoch.
pub(crate) fn plot_runs(
    dir: Option<&std::path::Path>,
    title: &str,
    runs: &[&TrainRun],
) -> Result<Option<PathBuf>> {
    let mut all = Vec::new();
    for r in runs {
        let x: Vec<f64> = r.epochs.iter().map(|e| e.epoch as f64).collect();
        all.push(series(
            &format!("{} train acc", r.name),
            x.clone(),
            r.epochs.iter().map(|e| e.train_acc).collect(),
        ));
        all.push(series(
            &format!("{} test acc", r.name),
            x,
            r.epochs.iter().map(|e| e.test_acc).collect(),
        ));
    }
    let spec = PlotSpec {
        ylim: Some((0.0, 1.0)),
        ..plot_spec(title, "epoch", "accuracy")
    };
    save_plot(dir, "curves", &spec, &all, false)
}

// ------------------------------------------------------------------ the experiment

/// One run of [`run_augment`]: `net` trained with Adam on `train` (shuffled with `seed`),
/// tested on `test` after every epoch. With `aug`, its epoch is advanced after every
/// training epoch and the epochs it served are returned.
fn train_once(
    name: &str,
    net: &Sequential,
    train: Arc<dyn Dataset>,
    test: Arc<dyn Dataset>,
    aug: Option<&AugmentedDataset>,
    opts: &AugmentOptions,
) -> Result<(TrainRun, Vec<u64>)> {
    let train_iter = DataLoader::new(train, opts.batch_size)?.shuffle(opts.common.seed);
    let test_iter = DataLoader::new(test, opts.batch_size.max(256))?;
    let mut opt = Adam::new(net.parameters(), opts.lr)?;
    let config = TrainConfig {
        epochs: opts.epochs,
        quiet: opts.common.quiet,
        device: opts.device,
        ..Default::default()
    };
    opts.common.progress(|| format!("13.1 run `{name}`"));
    let handle = aug.map(|a| a.epoch_handle());
    let seen_handle = handle.clone();
    let mut seen: Vec<u64> = Vec::new();
    let summary = {
        let mut trainer = Trainer::new(net, cross_entropy_loss(), &mut opt, config)
            .on_batch(|ev| {
                if ev.step == 1 {
                    if let Some(h) = &seen_handle {
                        seen.push(h.load(Ordering::SeqCst));
                    }
                }
            })
            .on_epoch(move |m| {
                if let Some(h) = &handle {
                    // The next epoch draws fresh augmentations.
                    h.store(m.epoch as u64, Ordering::SeqCst);
                }
            });
        trainer.fit(&train_iter, Some(&test_iter))?
    };
    Ok((TrainRun::from_summary(name, &summary)?, seen))
}

/// Runs 13.1's comparison; see the module docs.
pub fn run_augment(opts: &AugmentOptions) -> Result<AugmentResults> {
    let started = std::time::Instant::now();
    check_positive("epochs", opts.epochs)?;
    check_positive("batch size", opts.batch_size)?;
    check_rate("learning rate", opts.lr)?;
    check_rate("width multiplier", opts.width_mult)?;
    let data = augment_data(opts)?;
    if let Some(n) = &data.notice {
        opts.common.progress(|| n.clone());
    }
    let (h, w) = (data.in_shape[1], data.in_shape[2]);

    // Both runs start from the same weights (same seed) and visit the same batches.
    let new_net = || {
        let seed = init_seed(opts.common.seed);
        small_resnet(&data.in_shape, data.num_classes, opts.width_mult, seed)
    };
    let net_plain = new_net()?;
    let num_parameters = net_plain.num_parameters();
    let (plain, _) = train_once(
        "no-aug",
        &net_plain,
        data.train.clone(),
        data.test.clone(),
        None,
        opts,
    )?;
    drop(net_plain);

    let net_aug = new_net()?;
    let transform: Arc<dyn ImageTransform> = Arc::new(opts.augment.transform(h, w)?);
    let aug = Arc::new(AugmentedDataset::new(
        data.train.clone(),
        transform,
        augment_seed(opts.common.seed),
    ));
    let (augmented, augment_epochs) = train_once(
        opts.augment.as_str(),
        &net_aug,
        aug.clone(),
        data.test.clone(),
        Some(&aug),
        opts,
    )?;

    let dir = opts.common.dir();
    let runs = [&plain, &augmented];
    let csv = write_runs_csv(dir, &runs)?;
    let plot = plot_runs(
        dir,
        &format!("13.1 augmentation ({}): accuracy", data.used),
        &runs,
    )?;
    Ok(AugmentResults {
        dataset: data.used,
        notice: data.notice.clone(),
        sizes: (data.train.len(), data.test.len()),
        num_parameters,
        options: opts.clone(),
        plain,
        augmented,
        augment_epochs,
        csv,
        plot,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The closing lines of a 13.1 / 13.2 printout: the metrics file and the plot, where
/// written, and the total time.
pub(crate) fn fmt_outputs(
    f: &mut fmt::Formatter<'_>,
    csv: Option<&std::path::Path>,
    plot: Option<&std::path::Path>,
    seconds: f64,
) -> fmt::Result {
    if let Some(p) = csv {
        writeln!(f, "metrics: {}", p.display())?;
    }
    if let Some(p) = plot {
        writeln!(f, "plot: {}", p.display())?;
    }
    write!(f, "total {seconds:.1}s")
}

/// Writes the per-epoch table of `runs` side by side.
pub(crate) fn fmt_epoch_table(f: &mut fmt::Formatter<'_>, runs: &[&TrainRun]) -> fmt::Result {
    write!(f, "epoch")?;
    for r in runs {
        write!(f, " | {:>10} loss  train  test", r.name)?;
    }
    writeln!(f)?;
    let n = runs.iter().map(|r| r.epochs.len()).max().unwrap_or(0);
    for i in 0..n {
        write!(f, "{:>5}", i + 1)?;
        for r in runs {
            match r.epochs.get(i) {
                Some(e) => write!(
                    f,
                    " | {:>16.3} {:>6.3} {:>5.3}",
                    e.train_loss, e.train_acc, e.test_acc
                )?,
                None => write!(f, " | {:>30}", "")?,
            }
        }
        writeln!(f)?;
    }
    Ok(())
}

impl fmt::Display for AugmentResults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "13.1 image augmentation: train with and without augmentation"
        )?;
        if let Some(n) = &self.notice {
            writeln!(f, "note: {n}")?;
        }
        writeln!(
            f,
            "data: {} ({} train / {} test images{}); net: resnet18_small(in {}, width ×{}, {} params), Xavier-uniform init (seed {}); Adam lr {}, batch {}, {} epochs, mean cross-entropy",
            self.dataset,
            self.sizes.0,
            self.sizes.1,
            if self.dataset == DataChoice::Cifar10 { "" } else { ", offline substitute for CIFAR-10" },
            if self.dataset == DataChoice::Cifar10 { 3 } else { 1 },
            o.width_mult,
            self.num_parameters,
            o.common.seed,
            o.lr,
            o.batch_size,
            o.epochs
        )?;
        writeln!(f)?;
        fmt_epoch_table(f, &[&self.plain, &self.augmented])?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<22} {:>6} {:>9} {:>8} {:>10} {:>8} {:>8}",
            "run", "loss", "train acc", "test acc", "train−test", "ex/s", "seconds"
        )?;
        for r in [&self.plain, &self.augmented] {
            if let Some(e) = r.last() {
                writeln!(
                    f,
                    "{:<22} {:>6.3} {:>9.3} {:>8.3} {:>10.3} {:>8.1} {:>8.1}",
                    r.name,
                    e.train_loss,
                    e.train_acc,
                    e.test_acc,
                    r.gap(),
                    r.examples_per_sec,
                    r.seconds
                )?;
            }
        }
        let (l, tr, te) = BOOK_AUGMENT;
        writeln!(
            f,
            "{:<22} {:>6.3} {:>9.3} {:>8.3} {:>10.3} {:>8} {:>8}",
            "book (CIFAR-10, flip)",
            l,
            tr,
            te,
            tr - te,
            "4183.9",
            "2 GPUs"
        )?;
        let (g0, g1) = (self.plain.gap(), self.augmented.gap());
        writeln!(
            f,
            "train−test gap: {:.3} without augmentation, {:.3} with {} ({})",
            g0,
            g1,
            self.augmented.name,
            if g1 < g0 {
                format!("smaller by {:.3}", g0 - g1)
            } else {
                format!("not smaller: larger by {:.3}", g1 - g0)
            }
        )?;
        let k = 3.min(self.plain.epochs.len());
        writeln!(
            f,
            "over the last {k} epochs: gap {:.3} vs {:.3}, test acc {:.3} vs {:.3} (no-aug vs {})",
            self.plain.mean_gap(k),
            self.augmented.mean_gap(k),
            self.plain.mean_test_acc(k),
            self.augmented.mean_test_acc(k),
            self.augmented.name
        )?;
        fmt_outputs(f, self.csv.as_deref(), self.plot.as_deref(), self.seconds)
    }
}
