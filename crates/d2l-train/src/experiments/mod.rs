//! The chapter 4 experiments of D2L as library functions: 4.4 polynomial regression
//! ([`poly`]), 4.5 weight decay ([`weight_decay`]), 4.8 numerical stability and
//! initialisation ([`stability`]), 4.9 distribution shift ([`shift`]) and 4.10 Kaggle house
//! prices ([`house`]); and from chapters 8 and 11: 8.1 sequence models ([`sequence`]),
//! 8.2–8.3 n-gram statistics, Zipf's law and n-gram perplexity ([`zipf`]), and the
//! gradient-descent notes, GD vs SGD vs minibatch SGD on airfoil ([`gd`]).
//!
//! Each experiment is one function taking a small options struct (epochs, seeds, the
//! folder for plots, `quiet`) and returning a results struct of plain numbers whose
//! `Display` prints the run the way the book prints it, next to the book's own numbers.
//! The `d2l` program calls them as `d2l poly-demo`, `d2l weight-decay`, `d2l init-demo`,
//! `d2l shift-demo`, `d2l house-prices`, `d2l seq-demo`, `d2l zipf` and `d2l gd-compare`.
//! Each runs its own small training loop (plain minibatch SGD or Adam from
//! `d2l_nn::optim`), so the numbers follow the book's code line by line; plots go through
//! [`crate::plot`].

pub mod augment;
pub mod design;
pub mod finetune;
pub mod gd;
pub mod house;
pub mod images;
pub mod mc_dropout;
pub mod memory;
pub mod mlp_basics;
pub mod phm;
pub mod poly;
pub mod prelim;
pub mod robust_loss;
pub mod sequence;
pub mod shift;
pub mod shift_cases;
pub mod stability;
pub mod weight_decay;
pub mod zipf;

use crate::plot::{save_line_plot, save_scatter_plot, PlotSpec, Series};
use d2l_data::DataError;
use d2l_nn::Module;
use d2l_tensor::{no_grad, Generator, Tensor};
use std::fmt;
use std::path::{Path, PathBuf};

/// Everything an experiment can fail with.
#[derive(Debug)]
pub enum ExperimentError {
    /// An error from the tensor engine or a layer.
    Tensor(d2l_tensor::Error),
    /// An error while finding or reading data.
    Data(DataError),
    /// An I/O error on a named path (writing plots or the submission file).
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A plot could not be drawn or written.
    Plot(String),
    /// A bad option value (zero epochs, an empty data set, ...).
    Invalid(String),
}

/// The experiments' result type.
pub type Result<T> = std::result::Result<T, ExperimentError>;

impl fmt::Display for ExperimentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExperimentError::Tensor(e) => write!(f, "{e}"),
            ExperimentError::Data(e) => write!(f, "{e}"),
            ExperimentError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ExperimentError::Plot(m) => write!(f, "plot: {m}"),
            ExperimentError::Invalid(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ExperimentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExperimentError::Io { source, .. } => Some(source),
            ExperimentError::Data(e) => Some(e),
            _ => None,
        }
    }
}

impl From<d2l_tensor::Error> for ExperimentError {
    fn from(e: d2l_tensor::Error) -> Self {
        ExperimentError::Tensor(e)
    }
}

impl From<DataError> for ExperimentError {
    fn from(e: DataError) -> Self {
        ExperimentError::Data(e)
    }
}

/// One point of a loss curve: the epoch (1-based) and the train and test (or validation)
/// values measured after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossPoint {
    /// The epoch, counting from 1.
    pub epoch: usize,
    /// The loss (or metric) on the training data.
    pub train: f64,
    /// The loss (or metric) on the test or validation data.
    pub test: f64,
}

/// Checks that a count option is positive.
pub(crate) fn check_positive(what: &str, v: usize) -> Result<()> {
    if v == 0 {
        return Err(ExperimentError::Invalid(format!(
            "{what} must be at least 1, got 0"
        )));
    }
    Ok(())
}

/// Checks that a learning rate (or similar) is finite and positive.
pub(crate) fn check_rate(what: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        return Err(ExperimentError::Invalid(format!(
            "{what} must be a finite number > 0, got {v}"
        )));
    }
    Ok(())
}

/// The minibatches of one epoch as `i64` index tensors (D2L 3.2's `data_iter`): the rows
/// `0..n` in a random order drawn from `g` (or in order without one), cut into batches of
/// `batch_size`, the last one possibly smaller.
pub(crate) fn minibatches(
    n: usize,
    batch_size: usize,
    g: Option<&mut Generator>,
) -> Result<Vec<Tensor>> {
    let mut order: Vec<i64> = (0..n as i64).collect();
    if let Some(g) = g {
        for i in (1..n).rev() {
            let j = g.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
    }
    order
        .chunks(batch_size.max(1))
        .map(|c| Tensor::from_vec(c.to_vec(), &[c.len()]).map_err(Into::into))
        .collect()
}

/// Rows `idx` of `x` (a copy).
pub(crate) fn rows(x: &Tensor, idx: &Tensor) -> Result<Tensor> {
    Ok(x.index_select(0, idx)?)
}

/// D2L 4.4's `evaluate_loss` for the mean squared error: the mean of `(net(x) − y)²` over
/// all elements, computed without recording a graph; `half` divides by 2 (the book's
/// `squared_loss` of 3.2).
pub(crate) fn mse_of(net: &dyn Module, x: &Tensor, y: &Tensor, half: bool) -> Result<f64> {
    no_grad(|| {
        let out = net.forward(x)?;
        let y = y.reshape(out.shape())?;
        let m = out.sub(&y)?.square()?.mean_all()?.item_f64()?;
        Ok(if half { m / 2.0 } else { m })
    })
}

/// Re-draws a fresh parameter from `U(−bound, bound)` with `g` — PyTorch's default
/// `nn.Linear` initialisation, drawn from the experiment's own generator so a run depends
/// on its seed only.
pub(crate) fn reinit_uniform(p: &Tensor, bound: f64, g: &mut Generator) -> Result<()> {
    d2l_nn::init::uniform_with_(p, -bound, bound, g)?;
    Ok(())
}

/// Overwrites a parameter with `N(mean, std²)` drawn from `g`.
pub(crate) fn reinit_normal(p: &Tensor, mean: f64, std: f64, g: &mut Generator) -> Result<()> {
    let v = Tensor::normal_with(g, p.shape(), mean, std)?;
    no_grad(|| p.copy_(&v))?;
    Ok(())
}

/// Draws a plot as `dir/name.png` and `dir/name.svg` when `dir` is given (creating the
/// folder); returns the PNG's path, or `None` without a folder.
pub(crate) fn save_plot(
    dir: Option<&Path>,
    name: &str,
    spec: &PlotSpec,
    series: &[Series],
    scatter: bool,
) -> Result<Option<PathBuf>> {
    let Some(dir) = dir else { return Ok(None) };
    std::fs::create_dir_all(dir).map_err(|source| ExperimentError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let base = dir.join(name);
    let (png, _svg) = if scatter {
        save_scatter_plot(&base, spec, series)
    } else {
        save_line_plot(&base, spec, series)
    }
    .map_err(|e| ExperimentError::Plot(format!("{}: {e}", base.display())))?;
    Ok(Some(png))
}

/// A plot series from a label and its points.
pub(crate) fn series(label: &str, x: Vec<f64>, y: Vec<f64>) -> Series {
    Series {
        label: label.to_string(),
        x,
        y,
    }
}

/// The train and test series of a loss curve, for [`save_plot`].
pub(crate) fn curve_series(curve: &[LossPoint], train: &str, test: &str) -> Vec<Series> {
    let x: Vec<f64> = curve.iter().map(|p| p.epoch as f64).collect();
    vec![
        Series {
            label: train.to_string(),
            x: x.clone(),
            y: curve.iter().map(|p| p.train).collect(),
        },
        Series {
            label: test.to_string(),
            x,
            y: curve.iter().map(|p| p.test).collect(),
        },
    ]
}

/// Formats numbers like PyTorch prints a tensor row: `[ 5.0105,  1.2354, -3.4229]`.
pub(crate) fn fmt_row(v: &[f64], decimals: usize) -> String {
    let width = v
        .iter()
        .map(|x| format!("{x:.decimals$}").len())
        .max()
        .unwrap_or(0);
    let items: Vec<String> = v
        .iter()
        .map(|x| format!("{:>width$}", format!("{x:.decimals$}")))
        .collect();
    format!("[{}]", items.join(", "))
}

/// Writes `text` to `path` atomically: into a temporary file next to it, then renamed
/// over it, so a reader never sees half a file.
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ExperimentError::Io { path: p, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    d2l_nn::serialize::write_atomic_io(path, text.as_bytes()).map_err(io(path))
}

/// Prints a progress line on standard error unless `quiet`.
pub(crate) fn progress(quiet: bool, line: impl FnOnce() -> String) {
    if !quiet {
        eprintln!("{}", line());
    }
}
