//! D2L 4.10 (predicting house prices on Kaggle): a linear model on the book's 331
//! preprocessed features, trained with Adam on the mean squared error, judged by the
//! log-RMSE in K-fold cross-validation (the book's `k_fold`), then trained on all the data
//! to write `submission.csv` (the book's `train_and_pred`).

use crate::{
    check_positive, check_rate, curve_series, minibatches, plot_spec, reinit_uniform, rows,
    save_plot, write_csv, Common, LossPoint, Result,
};
use d2l_data::datasets::load_kaggle_house;
use d2l_data::house::{k_fold_split, log_rmse, KaggleHouse};
use d2l_data::hub::DataHub;
use d2l_nn::layers::Linear;
use d2l_nn::loss::{mse_loss_with, Reduction};
use d2l_nn::optim::{Adam, AdamConfig, Optimizer};
use d2l_nn::Module;
use d2l_tensor::{no_grad, Generator, Tensor};
use d2l_train::plot::PlotSpec;
use std::fmt;
use std::path::PathBuf;

/// Settings of [`run_house_prices`]; the defaults are the book's.
#[derive(Debug, Clone)]
pub struct HouseOptions {
    /// Where the two CSV files are looked for (and fetched from).
    pub hub: DataHub,
    /// Folds (5).
    pub k: usize,
    /// Epochs per fit (100).
    pub epochs: usize,
    /// Adam's learning rate (5).
    pub lr: f64,
    /// Adam's weight decay (0).
    pub weight_decay: f64,
    /// Minibatch size (64).
    pub batch_size: usize,
    /// The settings every experiment has ([`Common`]): the seed of the initialisation and
    /// the shuffling; the folder for `submission.csv` and the curves `house-fold1` /
    /// `house-final` (`.png`, `.svg`); `quiet`.
    pub common: Common,
}

impl Default for HouseOptions {
    fn default() -> Self {
        HouseOptions {
            hub: DataHub::from_env(),
            k: 5,
            epochs: 100,
            lr: 5.0,
            weight_decay: 0.0,
            batch_size: 64,
            common: Common::default(),
        }
    }
}

/// One fold's final log-RMSEs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoldResult {
    /// The fold, counting from 1.
    pub fold: usize,
    /// Log-RMSE on the other k − 1 folds after the last epoch.
    pub train_log_rmse: f64,
    /// Log-RMSE on this fold after the last epoch.
    pub valid_log_rmse: f64,
}

/// What [`run_house_prices`] returns.
#[derive(Debug, Clone)]
pub struct HouseResults {
    /// Training rows and features (1460 × 331 on the real data).
    pub train_shape: (usize, usize),
    /// Test rows.
    pub n_test: usize,
    /// One entry per fold.
    pub folds: Vec<FoldResult>,
    /// The mean train log-RMSE over the folds.
    pub mean_train: f64,
    /// The mean validation log-RMSE over the folds.
    pub mean_valid: f64,
    /// The first fold's curves (train and validation log-RMSE per epoch).
    pub fold1_curve: Vec<LossPoint>,
    /// The final fit's train log-RMSE after the last epoch.
    pub final_train_log_rmse: f64,
    /// The written `submission.csv`, when an output folder was given.
    pub submission: Option<PathBuf>,
    /// The plots (PNG) written.
    pub plots: Vec<PathBuf>,
    /// Epochs per fit.
    pub epochs: usize,
    /// Wall-clock seconds of the whole experiment.
    pub seconds: f64,
}

/// The book's number `metric` of 4.10 (`fold1_valid`, `fold3_train`, `mean_valid`,
/// `final_train`, ...) from the data file of the book's numbers
/// (`crates/d2l-book/reproduce.toml`).
pub fn book(metric: &str) -> Option<f64> {
    crate::reproduce::book_value("4.10-house-prices", metric)
}

/// Runs D2L 4.10 on the data found through `opts.hub`
/// (`kaggle_house/kaggle_house_pred_{train,test}.csv`).
pub fn run_house_prices(opts: &HouseOptions) -> Result<HouseResults> {
    let data = load_kaggle_house(&opts.hub)?;
    run_house_prices_on(&data, opts)
}

/// Trains one linear model (`nn.Linear(F, 1)`, default init) with Adam on the mean squared
/// error (the book's `train`), returning it and the per-epoch log-RMSE on the training data
/// and, when given, the validation data.
fn train(
    opts: &HouseOptions,
    x: &Tensor,
    y: &Tensor,
    valid: Option<(&Tensor, &Tensor)>,
    g: &mut Generator,
) -> Result<(Linear, Vec<LossPoint>)> {
    let (n, f) = (x.shape()[0], x.shape()[1]);
    let net = Linear::new(f, 1)?;
    let bound = 1.0 / (f as f64).sqrt();
    for p in net.parameters() {
        reinit_uniform(&p, bound, g)?;
    }
    let mut opt = Adam::with_config(
        net.parameters(),
        AdamConfig {
            lr: opts.lr,
            weight_decay: opts.weight_decay,
            ..Default::default()
        },
    )?;
    let metric = |x: &Tensor, y: &Tensor| -> Result<f64> {
        let p = no_grad(|| net.forward(x))?;
        Ok(log_rmse(&p, y)?)
    };
    let mut curve = Vec::with_capacity(opts.epochs);
    for epoch in 0..opts.epochs {
        for idx in minibatches(n, opts.batch_size, Some(g))? {
            let l = mse_loss_with(
                &net.forward(&rows(x, &idx)?)?,
                &rows(y, &idx)?,
                Reduction::Mean,
            )?;
            opt.zero_grad();
            l.backward()?;
            opt.step()?;
        }
        curve.push(LossPoint {
            epoch: epoch + 1,
            train: metric(x, y)?,
            test: match valid {
                Some((xv, yv)) => metric(xv, yv)?,
                None => f64::NAN,
            },
        });
    }
    Ok((net, curve))
}

/// Runs D2L 4.10 on already loaded data: `k`-fold cross-validation with contiguous folds
/// (the book's `get_k_fold_data`), then a fit on all rows whose test predictions go to
/// `out_dir/submission.csv` (`Id,SalePrice`, written atomically).
pub fn run_house_prices_on(data: &KaggleHouse, opts: &HouseOptions) -> Result<HouseResults> {
    check_positive("epochs", opts.epochs)?;
    check_positive("batch_size", opts.batch_size)?;
    check_rate("lr", opts.lr)?;
    crate::check_non_negative("weight_decay", opts.weight_decay)?;
    let start = std::time::Instant::now();
    let mut g = Generator::new(opts.common.seed);
    let (x, y) = (&data.train_features, &data.train_labels);
    let mut folds = Vec::with_capacity(opts.k);
    let mut fold1_curve = Vec::new();
    let mut plots = Vec::new();
    for i in 0..opts.k {
        let (xtr, ytr, xva, yva) = k_fold_split(opts.k, i, x, y)?;
        let (_, curve) = train(opts, &xtr, &ytr, Some((&xva, &yva)), &mut g)?;
        let last = *curve.last().expect("at least one epoch");
        // The fold's numbers are printed once, by the results' Display (beside the book's).
        folds.push(FoldResult {
            fold: i + 1,
            train_log_rmse: last.train,
            valid_log_rmse: last.test,
        });
        if i == 0 {
            let spec = PlotSpec {
                log_y: true,
                xlim: Some((1.0, opts.epochs as f64)),
                ..plot_spec("4.10 fold 1", "epoch", "log rmse")
            };
            let series = curve_series(&curve, "train", "valid");
            plots.extend(opts.common.line_plot("house-fold1", &spec, &series)?);
            fold1_curve = curve;
        }
    }
    let k = folds.len().max(1) as f64;
    let mean_train = folds.iter().map(|f| f.train_log_rmse).sum::<f64>() / k;
    let mean_valid = folds.iter().map(|f| f.valid_log_rmse).sum::<f64>() / k;

    // train_and_pred: fit on everything, predict the test rows.
    let (net, curve) = train(opts, x, y, None, &mut g)?;
    let final_train_log_rmse = curve.last().map_or(f64::NAN, |p| p.train);
    opts.common
        .progress(|| format!("final fit: train log rmse {final_train_log_rmse:.6}"));
    let mut submission = None;
    if let Some(dir) = opts.common.dir() {
        let preds = no_grad(|| net.forward(&data.test_features))?.to_f64_vec();
        let rows = (data.test_ids.iter().zip(&preds))
            .map(|(id, p)| [id.to_string(), (*p as f32).to_string()]);
        let path = dir.join("submission.csv");
        write_csv(&path, &["Id", "SalePrice"], rows)?;
        submission = Some(path);
        let spec = PlotSpec {
            log_y: true,
            xlim: Some((1.0, opts.epochs as f64)),
            ..plot_spec("4.10 final fit on all training data", "epoch", "log rmse")
        };
        let mut series = curve_series(&curve, "train", "");
        series.truncate(1);
        plots.extend(save_plot(Some(dir), "house-final", &spec, &series, false)?);
    }
    Ok(HouseResults {
        train_shape: (x.shape()[0], x.shape()[1]),
        n_test: data.test_features.shape()[0],
        folds,
        mean_train,
        mean_valid,
        fold1_curve,
        final_train_log_rmse,
        submission,
        plots,
        epochs: opts.epochs,
        seconds: start.elapsed().as_secs_f64(),
    })
}

impl fmt::Display for HouseResults {
    /// The book's printout: one line per fold, the averages, the final fit, with the book's
    /// numbers alongside.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, feat) = self.train_shape;
        writeln!(
            f,
            "D2L 4.10 house prices: {n} training rows, {} test rows, {feat} features; linear model, \
             Adam, {} epochs",
            self.n_test, self.epochs
        )?;
        let at_book = self.folds.len() == 5 && feat == 331 && self.epochs == 100;
        let pair = |a: &str, b: &str| match (book(a), book(b)) {
            (Some(x), Some(y)) if at_book => format!("   (book: {x:.6}, {y:.6})"),
            _ => String::new(),
        };
        for r in &self.folds {
            write!(
                f,
                "fold {}, train log rmse {:.6}, valid log rmse {:.6}",
                r.fold, r.train_log_rmse, r.valid_log_rmse
            )?;
            let k = r.fold;
            writeln!(
                f,
                "{}",
                pair(&format!("fold{k}_train"), &format!("fold{k}_valid"))
            )?;
        }
        write!(
            f,
            "{}-fold validation: avg train log rmse: {:.6}, avg valid log rmse: {:.6}",
            self.folds.len(),
            self.mean_train,
            self.mean_valid
        )?;
        writeln!(f, "{}", pair("mean_train", "mean_valid"))?;
        write!(f, "train log rmse {:.6}", self.final_train_log_rmse)?;
        match book("final_train") {
            Some(b) if at_book => writeln!(f, "   (book: {b:.6})")?,
            _ => writeln!(f)?,
        }
        if let Some(p) = &self.submission {
            writeln!(f, "submission: {}", p.display())?;
        }
        for p in &self.plots {
            writeln!(f, "plot: {}", p.display())?;
        }
        write!(f, "({:.1} s)", self.seconds)
    }
}
