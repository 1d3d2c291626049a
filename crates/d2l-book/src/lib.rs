//! The book's experiments: each section or note of D2L with a printed result that is not
//! a plain `d2l train` run, as a library function. The training loop they share lives in
//! `d2l-train`; this crate holds the book's recipes only.
//!
//! | section | module | command |
//! |---|---|---|
//! | 2.4 / 2.6 / 3.1.3 derivatives, distributions | [`prelim`] | `d2l prelim-demo` |
//! | 3.4 PHM layers (a note) | [`phm`] | `d2l phm-demo` |
//! | 4.1 / 4.8 activations, symmetry | [`mlp_basics`] | `d2l mlp-demo` |
//! | 4.4 polynomial regression | [`poly`] | `d2l poly-demo` |
//! | 4.5 weight decay | [`weight_decay`] | `d2l weight-decay` |
//! | 4.6 Monte-Carlo dropout (a note) | [`mc_dropout`] | `d2l mc-dropout` |
//! | 4.7 memory of a training step | [`memory`] | `d2l memory-demo` |
//! | 4.8 numerical stability and initialisation | [`stability`] | `d2l init-demo` |
//! | 4.9 distribution shift | [`shift`], [`shift_cases`] | `d2l shift-demo`, `d2l shift-cases` |
//! | 4.10 Kaggle house prices | [`house`] | `d2l house-prices` |
//! | loss notes: outliers and robust losses | [`robust_loss`] | `d2l loss-demo` |
//! | 7.2 / 7.5 / 7.6 design notes | [`design`] | `d2l design-demo` |
//! | 8.1 sequence models | [`sequence`] | `d2l seq-demo` |
//! | 8.2–8.3 n-grams, Zipf's law | [`zipf`] | `d2l zipf` |
//! | 11.3–11.5 GD, SGD, minibatch SGD on airfoil | [`gd`] | `d2l gd-compare` |
//! | 13.1 image augmentation | [`augment`] (and [`images`], the shared subsets) | `d2l augment-demo` |
//! | 13.2 fine-tuning | [`finetune`] | `d2l finetune-demo` |
//! | 13.12 neural style transfer | [`style_transfer`] | `d2l style` |
//! | every section with printed numbers: the book beside ours, checked | [`reproduce`] (numbers in `reproduce.toml`) | `d2l reproduce` |
//!
//! Each experiment is one function taking a small options struct (its epochs, rates and
//! sizes, plus a [`Common`]: the seed, the folder for plots, `quiet`) and returning a
//! results struct of plain numbers whose `Display` prints the run the way the book prints
//! it, next to the book's own numbers.
//! Most run their own small training loop (plain minibatch SGD or Adam from
//! `d2l_nn::optim`), so the numbers follow the book's code line by line; 13.1 and 13.2
//! train through `d2l_train::trainer::Trainer`; plots go through [`d2l_train::plot`].

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
pub mod reproduce;
pub mod robust_loss;
pub mod sequence;
pub mod shift;
pub mod shift_cases;
pub mod stability;
pub mod style_transfer;
pub mod weight_decay;
pub mod zipf;

use d2l_data::DataError;
use d2l_nn::Module;
use d2l_tensor::{no_grad, Generator, Tensor};
use d2l_train::plot::{save_line_plot, save_scatter_plot, PlotSpec, Series};
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

/// The settings every experiment's options share — the seed, the folder for plots and
/// files, and `quiet` — held by each options struct as its `common` field.
#[derive(Debug, Clone, Default)]
pub struct Common {
    /// Seed of the run's generators (what each draws is said on its options struct; Zipf,
    /// which counts words, draws nothing).
    pub seed: u64,
    /// Where to write plots and files; `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// No progress lines on standard error.
    pub quiet: bool,
}

impl Common {
    /// Seed 0, no progress lines, nothing written.
    pub fn quiet() -> Common {
        Common {
            quiet: true,
            ..Common::default()
        }
    }

    /// Seed 0, no progress lines, plots and files written into `dir`.
    pub fn quiet_in(dir: impl Into<PathBuf>) -> Common {
        Common {
            out_dir: Some(dir.into()),
            ..Common::quiet()
        }
    }

    /// The folder for plots and files, if any.
    pub(crate) fn dir(&self) -> Option<&Path> {
        self.out_dir.as_deref()
    }

    /// Prints a progress line on standard error unless `quiet`.
    pub(crate) fn progress(&self, line: impl FnOnce() -> String) {
        progress(self.quiet, line)
    }

    /// Draws a line plot as `name.png` and `name.svg` in the output folder (see
    /// [`save_plot`], which also draws scatter plots); the PNG's path, or `None` without a
    /// folder.
    pub(crate) fn line_plot(
        &self,
        name: &str,
        spec: &PlotSpec,
        series: &[Series],
    ) -> Result<Option<PathBuf>> {
        save_plot(self.dir(), name, spec, series, false)
    }
}

/// Sets the settings most experiments' options share — the [`Common`] ones and the
/// epochs — so a caller (the `d2l` program, `d2l reproduce`) sets them the same way for
/// each experiment.
pub trait CommonOptions {
    /// The seed, `quiet` and the output folder.
    fn common_mut(&mut self) -> &mut Common;
    /// The training epochs of every run; an [`ExperimentError::Invalid`] where the
    /// experiment trains nothing or counts its steps its own way.
    fn set_epochs(&mut self, epochs: usize) -> Result<()>;
    /// The seed of the run's generators.
    fn set_seed(&mut self, seed: u64) {
        self.common_mut().seed = seed;
    }
    /// Fewer progress lines.
    fn set_quiet(&mut self, quiet: bool) {
        self.common_mut().quiet = quiet;
    }
    /// The folder for plots and files; `None` writes nothing.
    fn set_out_dir(&mut self, dir: Option<PathBuf>) {
        self.common_mut().out_dir = dir;
    }
}

/// Implements [`CommonOptions`] for options structs with a `common` field; the epochs go
/// into an `epochs` field, into every case's (`cases`), or nowhere (`none`: setting them
/// is an error naming the experiment).
macro_rules! common_options {
    ($ty:ty, $epochs:tt $(, $what:literal)?) => {
        impl $crate::CommonOptions for $ty {
            fn common_mut(&mut self) -> &mut $crate::Common {
                &mut self.common
            }
            fn set_epochs(&mut self, epochs: usize) -> $crate::Result<()> {
                common_options!(@epochs self, epochs, $epochs $(, $what)?)
            }
        }
    };
    (@epochs $s:ident, $e:ident, epochs) => {{
        $s.epochs = $e;
        Ok(())
    }};
    (@epochs $s:ident, $e:ident, cases) => {{
        for c in &mut $s.cases {
            c.epochs = $e;
        }
        Ok(())
    }};
    (@epochs $s:ident, $e:ident, none, $what:literal) => {{
        let _ = ($s, $e);
        Err($crate::ExperimentError::Invalid(format!(
            "{}: --epochs does not apply",
            $what
        )))
    }};
}

common_options!(augment::AugmentOptions, epochs);
common_options!(design::DesignOptions, epochs);
common_options!(finetune::FinetuneOptions, epochs);
common_options!(gd::GdOptions, cases);
common_options!(house::HouseOptions, epochs);
common_options!(mc_dropout::McDropoutOptions, epochs);
common_options!(phm::PhmOptions, epochs);
common_options!(poly::PolyOptions, cases);
common_options!(sequence::SequenceOptions, epochs);
common_options!(shift::ShiftOptions, epochs);
common_options!(weight_decay::WeightDecayOptions, epochs);
common_options!(
    mlp_basics::MlpBasicsOptions,
    none,
    "mlp-demo uses generated data and its own step counts"
);
common_options!(
    robust_loss::RobustLossOptions,
    none,
    "loss-demo uses its own step counts"
);
common_options!(
    shift_cases::ShiftCasesOptions,
    none,
    "shift-cases uses generated data and its own step counts"
);
common_options!(
    stability::StabilityOptions,
    none,
    "init-demo trains nothing"
);
common_options!(zipf::ZipfOptions, none, "zipf trains nothing");

/// The two closing lines the book's `train_ch6` and `train_ch13` print after training:
/// `loss …, train acc …, test acc …` and `… examples/sec on DEVICE (N CPU threads)`.
pub fn train_report(s: &d2l_train::trainer::TrainSummary) -> String {
    format!(
        "loss {:.3}, train acc {:.3}, test acc {:.3}\n{:.1} examples/sec on {} ({} CPU threads)",
        s.train_loss,
        s.train_acc.unwrap_or(f64::NAN),
        s.test_acc.unwrap_or(f64::NAN),
        s.examples_per_sec,
        s.device,
        d2l_tensor::num_threads()
    )
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

/// Checks that a weight decay, a noise level or similar is finite and not negative.
pub(crate) fn check_non_negative(what: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(ExperimentError::Invalid(format!(
            "{what} must be finite and ≥ 0, got {v}"
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

/// A plot's title and axis labels, everything else the default (linear axes, ranges from
/// the data); set more with `PlotSpec { log_y: true, ..plot_spec(…) }`.
pub(crate) fn plot_spec(
    title: impl Into<String>,
    xlabel: impl Into<String>,
    ylabel: impl Into<String>,
) -> PlotSpec {
    PlotSpec {
        title: title.into(),
        xlabel: xlabel.into(),
        ylabel: ylabel.into(),
        ..Default::default()
    }
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

/// Writes a CSV file atomically with the `csv` crate: the `header` row, then `rows`, into
/// a temporary file renamed over `path` ([`d2l_nn::serialize::write_atomic`], the
/// workspace's one atomic write), creating the folder first.
pub(crate) fn write_csv<R, I>(path: &Path, header: &[&str], rows: R) -> Result<()>
where
    R: IntoIterator<Item = I>,
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let csv_err = |e: csv::Error| ExperimentError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).map_err(csv_err)?;
    for r in rows {
        w.write_record(r).map_err(csv_err)?;
    }
    let bytes = w.into_inner().map_err(|e| ExperimentError::Io {
        path: path.to_path_buf(),
        source: e.into_error(),
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ExperimentError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    d2l_nn::serialize::write_atomic(path, &bytes)?;
    Ok(())
}

/// Prints a progress line on standard error unless `quiet`.
pub(crate) fn progress(quiet: bool, line: impl FnOnce() -> String) {
    if !quiet {
        eprintln!("{}", line());
    }
}
