//! D2L 4.9 (environment and distribution shift): a softmax-regression classifier trained
//! on (a subset of) Fashion-MNIST, evaluated on a test set with skewed class proportions
//! (label shift, 4.9.1.2) and on one with brighter, lower-contrast images (covariate
//! shift, 4.9.1.1), then corrected as 4.9.3 describes: label shift by estimating the target
//! label distribution from the confusion matrix (4.9.3.3) and covariate shift by a
//! logistic-regression domain classifier whose logit gives the weights `exp(h(x))`
//! (4.9.3.2).
//!
//! Importance weighting can only re-weight inputs the source already has: it needs
//! `p(x) > 0` wherever `q(x) > 0`. So the covariate-shift source is the training subset
//! with a small fraction (`source_shift_frac`, 2% by default) of its images changed the
//! way the target's are; with that fraction at 0 the domain classifier separates source
//! from target perfectly and no weighting can help, which the printout then shows.

use crate::{
    check_positive, check_rate, minibatches, plot_spec, reinit_normal, rows, save_plot, series,
    Common, ExperimentError, Result,
};
use d2l_data::datasets::{load_image_sets, DatasetName};
use d2l_data::hub::DataHub;
use d2l_data::idx::ImageSet;
use d2l_data::shapes::Shapes;
use d2l_data::DataError;
use d2l_nn::layers::Linear;
use d2l_nn::loss::{
    binary_cross_entropy_with_logits, cross_entropy_with, CrossEntropyOptions, Reduction,
};
use d2l_nn::optim::{Adam, Optimizer, Sgd};
use d2l_nn::Module;
use d2l_tensor::{no_grad, Generator, Tensor};
use std::fmt;
use std::path::PathBuf;

/// The number of classes of every set this experiment knows.
const NUM_CLASSES: usize = 10;

/// Settings of [`run_shift`]. The defaults keep a run well under a minute on two cores: a
/// 12,000-image training subset (the book's 60,000 are not needed to show the effects).
#[derive(Debug, Clone)]
pub struct ShiftOptions {
    /// The data set (Fashion-MNIST).
    pub dataset: DatasetName,
    /// Where the data set's files are looked for (and fetched from).
    pub hub: DataHub,
    /// Use the built-in `shapes` set, with a notice, when the files cannot be had.
    pub fallback_to_shapes: bool,
    /// Training images, a random subset of the training split (12,000).
    pub n_train: usize,
    /// Held-out validation images from the rest of the training split, for the
    /// confusion matrix (3,000).
    pub n_val: usize,
    /// Test images, a random subset of the test split (10,000: all of Fashion-MNIST's).
    pub n_test: usize,
    /// Epochs of every classifier (5).
    pub epochs: usize,
    /// SGD learning rate of the classifiers (0.1, the book's softmax regression).
    pub lr: f64,
    /// Minibatch size (256).
    pub batch_size: usize,
    /// Label shift: the target's class proportions are `∝ label_skew^y` (0.7: class 0 is
    /// 30%, class 9 1.3%).
    pub label_skew: f64,
    /// Label shift: the size of the skewed test set (at most what the test split allows).
    pub n_label_shift: usize,
    /// Covariate shift: the target's images are `clamp(contrast·x + brightness, 0, 1)`.
    pub brightness: f64,
    /// Covariate shift: see `brightness` (0.6).
    pub contrast: f64,
    /// Covariate shift: the fraction of source (training) images changed like the target's
    /// (0.02), so the source covers the target.
    pub source_shift_frac: f64,
    /// Epochs of the domain classifier (3).
    pub domain_epochs: usize,
    /// The largest importance weight `c` in `min(exp(h(x)), c)`, applied after scaling the
    /// weights by `n_source / n_target` (50).
    pub weight_clip: f64,
    /// The settings every experiment has ([`Common`]): the seed of the subsets, the
    /// initialisation and the shuffling; the folder for `label-shift-q.png/.svg`; `quiet`.
    pub common: Common,
}

impl Default for ShiftOptions {
    fn default() -> Self {
        ShiftOptions {
            dataset: DatasetName::FashionMnist,
            hub: DataHub::from_env(),
            fallback_to_shapes: true,
            n_train: 12_000,
            n_val: 3_000,
            n_test: 10_000,
            epochs: 5,
            lr: 0.1,
            batch_size: 256,
            label_skew: 0.7,
            n_label_shift: 3_000,
            brightness: 0.35,
            contrast: 0.6,
            source_shift_frac: 0.02,
            domain_epochs: 3,
            weight_clip: 50.0,
            common: Common::default(),
        }
    }
}

/// Label shift and its correction.
#[derive(Debug, Clone)]
pub struct LabelShiftResult {
    /// The number of images in the skewed test set.
    pub n: usize,
    /// The training label distribution `p(y)`.
    pub source_p: Vec<f64>,
    /// The skewed test set's actual label distribution `q(y)`.
    pub true_q: Vec<f64>,
    /// `q̂` from `C·q = μ(ŷ)`, negative entries set to 0 and renormalised.
    pub estimated_q: Vec<f64>,
    /// The solution of `C·q = μ(ŷ)` before that clean-up.
    pub raw_q: Vec<f64>,
    /// The weights `β(y) = q̂(y) / p(y)`.
    pub beta: Vec<f64>,
    /// The confusion matrix on the validation split, `C[i][j] = P(ŷ = i | y = j)`.
    pub confusion: Vec<Vec<f64>>,
    /// Accuracy on the skewed test set with `argmax p(y|x)`.
    pub acc_before: f64,
    /// Accuracy with `argmax p(y|x)·β(y)`.
    pub acc_after: f64,
    /// Accuracy with the true `β = q / p` (the best this correction can do).
    pub acc_oracle: f64,
    /// The plot of `p`, `q` and `q̂` (PNG), when one was drawn.
    pub plot: Option<PathBuf>,
}

impl LabelShiftResult {
    /// `max_y |q̂(y) − q(y)|`.
    pub fn max_q_error(&self) -> f64 {
        self.true_q
            .iter()
            .zip(&self.estimated_q)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    }
}

/// Covariate shift and its correction.
#[derive(Debug, Clone)]
pub struct CovariateShiftResult {
    /// Images in the shifted test set (all test images, changed).
    pub n: usize,
    /// Accuracy of the domain classifier (source vs target) on its training data.
    pub domain_acc: f64,
    /// Mean weight of the source images that were changed like the target's.
    pub mean_weight_shifted: f64,
    /// Mean weight of the unchanged source images.
    pub mean_weight_clean: f64,
    /// Effective sample size of the weights, `(Σw)² / Σw²`.
    pub effective_sample_size: f64,
    /// Source (training) images.
    pub n_source: usize,
    /// Accuracy on the shifted test set of the classifier trained without weights.
    pub acc_before: f64,
    /// Accuracy on the shifted test set after retraining with the weights.
    pub acc_after: f64,
    /// Accuracy on the clean test set, without weights.
    pub clean_acc_before: f64,
    /// Accuracy on the clean test set, with weights.
    pub clean_acc_after: f64,
}

/// What [`run_shift`] returns.
#[derive(Debug, Clone)]
pub struct ShiftResults {
    /// The data set used (`shapes` after a fallback).
    pub dataset: DatasetName,
    /// The one-line fallback notice, if the requested set was replaced.
    pub notice: Option<String>,
    /// Training, validation and test images used.
    pub sizes: (usize, usize, usize),
    /// The size of the data set's training split the subsets came from.
    pub train_split_size: usize,
    /// Accuracy of the clean classifier on the clean test set.
    pub clean_acc: f64,
    /// The label-shift part.
    pub label: LabelShiftResult,
    /// The covariate-shift part.
    pub covariate: CovariateShiftResult,
    /// The options' shift settings, for the printout: (skew, brightness, contrast,
    /// source_shift_frac, weight_clip, epochs).
    pub settings: (f64, f64, f64, f64, f64, usize),
    /// Wall-clock seconds of the whole experiment.
    pub seconds: f64,
}

/// Images as rows of pixels in `[0, 1]` with their labels.
struct Split {
    x: Vec<f32>,
    y: Vec<usize>,
    d: usize,
}

impl Split {
    fn len(&self) -> usize {
        self.y.len()
    }

    fn from_set(set: &ImageSet, idx: &[usize]) -> Split {
        Split {
            x: crate::images::scaled_pixels(set, idx),
            y: idx.iter().map(|&i| set.labels[i] as usize).collect(),
            d: set.height * set.width,
        }
    }

    fn subset(&self, idx: &[usize]) -> Split {
        let d = self.d;
        let mut x = Vec::with_capacity(idx.len() * d);
        for &i in idx {
            x.extend_from_slice(&self.x[i * d..(i + 1) * d]);
        }
        Split {
            x,
            y: idx.iter().map(|&i| self.y[i]).collect(),
            d,
        }
    }

    fn x_tensor(&self) -> Result<Tensor> {
        Ok(Tensor::from_vec(self.x.clone(), &[self.len(), self.d])?)
    }

    fn y_tensor(&self) -> Result<Tensor> {
        let v: Vec<i64> = self.y.iter().map(|&c| c as i64).collect();
        Ok(Tensor::from_vec(v, &[self.len()])?)
    }

    /// Applies `x ← clamp(contrast·x + brightness, 0, 1)` to the rows `which`.
    fn shift_rows(&mut self, which: impl Iterator<Item = usize>, contrast: f64, brightness: f64) {
        let d = self.d;
        for i in which {
            for p in &mut self.x[i * d..(i + 1) * d] {
                *p = (contrast as f32 * *p + brightness as f32).clamp(0.0, 1.0);
            }
        }
    }
}

fn shuffled(n: usize, g: &mut Generator) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = g.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

/// The train and test image sets of `opts.dataset`, or of `shapes` with a notice.
fn load_sets(opts: &ShiftOptions) -> Result<(ImageSet, ImageSet, DatasetName, Option<String>)> {
    let shapes = |n_train: usize, n_test: usize| {
        (
            Shapes::generate(n_train, d2l_data::datasets::SHAPES_DATA_SEED),
            // The stream of Shapes::load's test split.
            Shapes::generate(
                n_test,
                d2l_data::datasets::SHAPES_DATA_SEED ^ 0x7E57_7E57_7E57_7E57,
            ),
        )
    };
    let need = opts.n_train + opts.n_val;
    if opts.dataset == DatasetName::Shapes {
        let (a, b) = shapes(need, opts.n_test);
        return Ok((a, b, DatasetName::Shapes, None));
    }
    match load_image_sets(opts.dataset, &opts.hub) {
        Ok((a, b)) => Ok((a, b, opts.dataset, None)),
        Err(e @ (DataError::Missing { .. } | DataError::Download { .. }))
            if opts.fallback_to_shapes =>
        {
            let why = e.to_string();
            let why = why.lines().next().unwrap_or("");
            let notice = format!(
                "{} not available ({why}); using the built-in `shapes` set instead",
                opts.dataset
            );
            let (a, b) = shapes(need, opts.n_test);
            Ok((a, b, DatasetName::Shapes, Some(notice)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Trains softmax regression (D2L 3.6/3.7: `Linear(d, 10)`, weight `N(0, 0.01²)`, bias 0,
/// minibatch SGD on the cross-entropy), optionally with a weight per example
/// (`mean(wᵢ·lᵢ)` per batch).
fn train_softmax(
    opts: &ShiftOptions,
    x: &Tensor,
    y: &Tensor,
    weights: Option<&Tensor>,
    g: &mut Generator,
) -> Result<Linear> {
    let (n, d) = (x.shape()[0], x.shape()[1]);
    let net = Linear::new(d, NUM_CLASSES)?;
    reinit_normal(&net.weight, 0.0, 0.01, g)?;
    if let Some(b) = &net.bias {
        no_grad(|| b.zero_())?;
    }
    let mut opt = Sgd::new(net.parameters(), opts.lr)?;
    let ce = CrossEntropyOptions {
        reduction: Reduction::None,
        ..Default::default()
    };
    for _ in 0..opts.epochs {
        for idx in minibatches(n, opts.batch_size, Some(g))? {
            let per = cross_entropy_with(&net.forward(&rows(x, &idx)?)?, &rows(y, &idx)?, &ce)?;
            let l = match weights {
                Some(w) => per.mul(&rows(w, &idx)?)?.mean_all()?,
                None => per.mean_all()?,
            };
            opt.zero_grad();
            l.backward()?;
            opt.step()?;
        }
    }
    Ok(net)
}

/// `softmax(net(x))`, row-major `[n, classes]`.
fn predict_probs(net: &Linear, x: &Tensor) -> Result<Vec<f64>> {
    no_grad(|| Ok(net.forward(x)?.softmax(-1)?.to_f64_vec()))
}

/// `argmax_y probs[i][y]·scale[y]` per row.
fn argmax_rows(probs: &[f64], scale: Option<&[f64]>) -> Vec<usize> {
    probs
        .chunks(NUM_CLASSES)
        .map(|row| {
            let mut best = (0, f64::NEG_INFINITY);
            for (c, &p) in row.iter().enumerate() {
                let v = p * scale.map_or(1.0, |s| s[c]);
                if v > best.1 {
                    best = (c, v);
                }
            }
            best.0
        })
        .collect()
}

fn accuracy(pred: &[usize], y: &[usize]) -> f64 {
    let hits = pred.iter().zip(y).filter(|(a, b)| a == b).count();
    hits as f64 / y.len().max(1) as f64
}

fn proportions(y: &[usize]) -> Vec<f64> {
    let mut c = [0.0; NUM_CLASSES];
    for &l in y {
        c[l] += 1.0;
    }
    let n = y.len().max(1) as f64;
    c.iter().map(|v| v / n).collect()
}

/// Solves `a·x = b` (square, row-major) by Gaussian elimination with partial pivoting.
pub fn solve_linear(a: &[Vec<f64>], b: &[f64]) -> Result<Vec<f64>> {
    let n = b.len();
    if a.len() != n || a.iter().any(|r| r.len() != n) {
        return Err(ExperimentError::Invalid(format!(
            "solve_linear: expected a {n}×{n} matrix"
        )));
    }
    let mut m: Vec<Vec<f64>> = a
        .iter()
        .zip(b)
        .map(|(r, &v)| {
            let mut r = r.clone();
            r.push(v);
            r
        })
        .collect();
    for col in 0..n {
        let piv = (col..n)
            .max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))
            .expect("a non-empty range");
        if m[piv][col].abs() < 1e-12 {
            return Err(ExperimentError::Invalid(
                "the confusion matrix is singular: the classifier never tells some classes apart"
                    .into(),
            ));
        }
        m.swap(col, piv);
        for r in 0..n {
            if r != col {
                let f = m[r][col] / m[col][col];
                if f != 0.0 {
                    let pivot_row = m[col].clone();
                    for (v, p) in m[r][col..].iter_mut().zip(&pivot_row[col..]) {
                        *v -= f * p;
                    }
                }
            }
        }
    }
    Ok((0..n).map(|i| m[i][n] / m[i][i]).collect())
}

/// Solves `C·q = μ`; when `C` is singular (a class the classifier never predicts), solves
/// the ridge-regularised least-squares problem `(CᵀC + εI)·q = Cᵀμ` instead.
fn estimate_q(c: &[Vec<f64>], mu: &[f64]) -> Result<Vec<f64>> {
    match solve_linear(c, mu) {
        Ok(q) => Ok(q),
        Err(_) => {
            let n = mu.len();
            let mut ata = vec![vec![0.0; n]; n];
            let mut atb = vec![0.0; n];
            for i in 0..n {
                for j in 0..n {
                    ata[i][j] = (0..n).map(|k| c[k][i] * c[k][j]).sum::<f64>();
                }
                ata[i][i] += 1e-6;
                atb[i] = (0..n).map(|k| c[k][i] * mu[k]).sum::<f64>();
            }
            solve_linear(&ata, &atb)
        }
    }
}

/// Runs D2L 4.9's demonstration: loads the data (or falls back to `shapes`), trains the
/// clean classifier, then the label-shift and covariate-shift experiments.
pub fn run_shift(opts: &ShiftOptions) -> Result<ShiftResults> {
    check_positive("n_train", opts.n_train)?;
    check_positive("n_val", opts.n_val)?;
    check_positive("n_test", opts.n_test)?;
    check_positive("epochs", opts.epochs)?;
    check_positive("domain_epochs", opts.domain_epochs)?;
    check_positive("batch_size", opts.batch_size)?;
    check_positive("n_label_shift", opts.n_label_shift)?;
    check_rate("lr", opts.lr)?;
    check_rate("label_skew", opts.label_skew)?;
    check_rate("contrast", opts.contrast)?;
    check_rate("weight_clip", opts.weight_clip)?;
    if !(0.0..=1.0).contains(&opts.source_shift_frac) || !opts.brightness.is_finite() {
        return Err(ExperimentError::Invalid(format!(
            "source_shift_frac must be in [0, 1] and brightness finite, got {} and {}",
            opts.source_shift_frac, opts.brightness
        )));
    }
    let start = std::time::Instant::now();
    let mut g = Generator::new(opts.common.seed);
    let (train_set, test_set, used, notice) = load_sets(opts)?;
    if let Some(n) = &notice {
        opts.common.progress(|| n.clone());
    }
    let need = opts.n_train + opts.n_val;
    if train_set.n < need || test_set.n < opts.n_test {
        return Err(ExperimentError::Invalid(format!(
            "{used} has {} training and {} test images; asked for {} + {} and {}",
            train_set.n, test_set.n, opts.n_train, opts.n_val, opts.n_test
        )));
    }
    let order = shuffled(train_set.n, &mut g);
    let train = Split::from_set(&train_set, &order[..opts.n_train]);
    let val = Split::from_set(&train_set, &order[opts.n_train..need]);
    let test_order = shuffled(test_set.n, &mut g);
    let test = Split::from_set(&test_set, &test_order[..opts.n_test]);

    // The clean classifier.
    let (xtr, ytr) = (train.x_tensor()?, train.y_tensor()?);
    let net = train_softmax(opts, &xtr, &ytr, None, &mut g)?;
    let test_probs = predict_probs(&net, &test.x_tensor()?)?;
    let clean_acc = accuracy(&argmax_rows(&test_probs, None), &test.y);
    opts.common
        .progress(|| format!("shift: clean test accuracy {clean_acc:.4} on {used}"));

    let label = label_shift(opts, &net, &train, &val, &test, &test_probs, &mut g)?;
    opts.common.progress(|| {
        format!(
            "shift: label shift accuracy {:.4} -> {:.4}, max |q̂ − q| {:.4}",
            label.acc_before,
            label.acc_after,
            label.max_q_error()
        )
    });
    let covariate = covariate_shift(opts, &train, &test, &mut g)?;
    opts.common.progress(|| {
        format!(
            "shift: covariate shift accuracy {:.4} -> {:.4}",
            covariate.acc_before, covariate.acc_after
        )
    });
    Ok(ShiftResults {
        dataset: used,
        notice,
        sizes: (opts.n_train, opts.n_val, opts.n_test),
        train_split_size: train_set.n,
        clean_acc,
        label,
        covariate,
        settings: (
            opts.label_skew,
            opts.brightness,
            opts.contrast,
            opts.source_shift_frac,
            opts.weight_clip,
            opts.epochs,
        ),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// 4.9.3.3: the skewed target, the confusion matrix on validation data, `C·q = μ(ŷ)`, and
/// the re-weighted predictions.
fn label_shift(
    opts: &ShiftOptions,
    net: &Linear,
    train: &Split,
    val: &Split,
    test: &Split,
    test_probs: &[f64],
    g: &mut Generator,
) -> Result<LabelShiftResult> {
    // Target class proportions ∝ skew^y, drawn without replacement from the test split.
    let w: Vec<f64> = (0..NUM_CLASSES)
        .map(|c| opts.label_skew.powi(c as i32))
        .collect();
    let total: f64 = w.iter().sum();
    let q_want: Vec<f64> = w.iter().map(|v| v / total).collect();
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); NUM_CLASSES];
    for i in shuffled(test.len(), g) {
        by_class[test.y[i]].push(i);
    }
    let max_n = (0..NUM_CLASSES)
        .map(|c| (by_class[c].len() as f64 / q_want[c]).floor() as usize)
        .min()
        .unwrap_or(0);
    let n_target = opts.n_label_shift.min(max_n);
    let mut pick = Vec::new();
    for c in 0..NUM_CLASSES {
        let k = ((q_want[c] * n_target as f64).round() as usize).min(by_class[c].len());
        pick.extend_from_slice(&by_class[c][..k]);
    }
    if pick.is_empty() {
        return Err(ExperimentError::Invalid(
            "label shift: the test set is too small for a skewed subset".into(),
        ));
    }
    let target_y: Vec<usize> = pick.iter().map(|&i| test.y[i]).collect();
    let target_probs: Vec<f64> = pick
        .iter()
        .flat_map(|&i| {
            test_probs[i * NUM_CLASSES..(i + 1) * NUM_CLASSES]
                .iter()
                .copied()
        })
        .collect();
    let true_q = proportions(&target_y);
    let source_p = proportions(&train.y);

    // C[i][j] = P(ŷ = i | y = j) on the validation split.
    let val_pred = argmax_rows(&predict_probs(net, &val.x_tensor()?)?, None);
    let mut confusion = vec![vec![0.0; NUM_CLASSES]; NUM_CLASSES];
    let mut per_class = [0usize; NUM_CLASSES];
    for (&p, &t) in val_pred.iter().zip(&val.y) {
        confusion[p][t] += 1.0;
        per_class[t] += 1;
    }
    for j in 0..NUM_CLASSES {
        if per_class[j] == 0 {
            confusion[j][j] = 1.0; // a class never seen: assume it is always recognised
            continue;
        }
        for row in confusion.iter_mut() {
            row[j] /= per_class[j] as f64;
        }
    }
    let target_pred = argmax_rows(&target_probs, None);
    let mu = proportions(&target_pred);
    let raw_q = estimate_q(&confusion, &mu)?;
    let clipped: Vec<f64> = raw_q.iter().map(|v| v.max(0.0)).collect();
    let s: f64 = clipped.iter().sum();
    let estimated_q: Vec<f64> = if s > 0.0 {
        clipped.iter().map(|v| v / s).collect()
    } else {
        source_p.clone()
    };
    let ratio = |q: &[f64]| -> Vec<f64> {
        q.iter()
            .zip(&source_p)
            .map(|(q, p)| if *p > 0.0 { q / p } else { 0.0 })
            .collect()
    };
    let beta = ratio(&estimated_q);
    let beta_true = ratio(&true_q);
    let acc_before = accuracy(&target_pred, &target_y);
    let acc_after = accuracy(&argmax_rows(&target_probs, Some(&beta)), &target_y);
    let acc_oracle = accuracy(&argmax_rows(&target_probs, Some(&beta_true)), &target_y);

    let classes: Vec<f64> = (0..NUM_CLASSES).map(|c| c as f64).collect();
    let spec = plot_spec("4.9 label shift: class proportions", "class", "proportion");
    let series = [
        series("p(y) source", classes.clone(), source_p.clone()),
        series("q(y) target, true", classes.clone(), true_q.clone()),
        series("q(y) target, estimated", classes, estimated_q.clone()),
    ];
    let plot = save_plot(opts.common.dir(), "label-shift-q", &spec, &series, true)?;
    Ok(LabelShiftResult {
        n: pick.len(),
        source_p,
        true_q,
        estimated_q,
        raw_q,
        beta,
        confusion,
        acc_before,
        acc_after,
        acc_oracle,
        plot,
    })
}

/// 4.9.3.2: a source with a few changed images, a fully changed target, a logistic
/// regression `h` telling them apart, weights `min(exp(h(x)), c)` and a weighted retrain.
fn covariate_shift(
    opts: &ShiftOptions,
    train: &Split,
    test: &Split,
    g: &mut Generator,
) -> Result<CovariateShiftResult> {
    let n_src = train.len();
    let mut source = train.subset(&(0..n_src).collect::<Vec<_>>());
    let n_shifted = (opts.source_shift_frac * n_src as f64).round() as usize;
    let shifted_rows: Vec<usize> = shuffled(n_src, g)[..n_shifted].to_vec();
    let mut is_shifted = vec![false; n_src];
    for &i in &shifted_rows {
        is_shifted[i] = true;
    }
    source.shift_rows(shifted_rows.iter().copied(), opts.contrast, opts.brightness);
    let mut target = test.subset(&(0..test.len()).collect::<Vec<_>>());
    target.shift_rows(0..test.len(), opts.contrast, opts.brightness);

    let (xs, ys) = (source.x_tensor()?, source.y_tensor()?);
    let xt = target.x_tensor()?;
    let xclean = test.x_tensor()?;
    let eval = |net: &Linear, x: &Tensor| -> Result<f64> {
        Ok(accuracy(
            &argmax_rows(&predict_probs(net, x)?, None),
            &test.y,
        ))
    };
    let before = train_softmax(opts, &xs, &ys, None, g)?;
    let acc_before = eval(&before, &xt)?;
    let clean_acc_before = eval(&before, &xclean)?;

    // The domain classifier: logistic regression, source z = 0, target z = 1.
    let n_tgt = target.len();
    let xz = Tensor::cat(&[&xs, &xt], 0)?;
    let z: Vec<f32> = (0..n_src + n_tgt)
        .map(|i| (i >= n_src) as u8 as f32)
        .collect();
    let z = Tensor::from_vec(z, &[n_src + n_tgt, 1])?;
    let h = Linear::new(source.d, 1)?;
    let mut opt = Adam::new(h.parameters(), 0.01)?;
    for _ in 0..opts.domain_epochs {
        for idx in minibatches(n_src + n_tgt, opts.batch_size, Some(g))? {
            let logits = h.forward(&rows(&xz, &idx)?)?;
            let l =
                binary_cross_entropy_with_logits(&logits, &rows(&z, &idx)?, None, Reduction::Mean)?;
            opt.zero_grad();
            l.backward()?;
            opt.step()?;
        }
    }
    let logits: Vec<f64> = no_grad(|| -> Result<Vec<f64>> { Ok(h.forward(&xz)?.to_f64_vec()) })?;
    let domain_hits = logits
        .iter()
        .enumerate()
        .filter(|(i, &v)| (v > 0.0) == (*i >= n_src))
        .count();
    let domain_acc = domain_hits as f64 / (n_src + n_tgt) as f64;
    // β(x) = exp(h(x)) estimates q(x)/p(x) up to the class ratio n_target / n_source.
    let scale = n_src as f64 / n_tgt as f64;
    let mut w: Vec<f64> = logits[..n_src]
        .iter()
        .map(|&v| (v.min(700.0).exp() * scale).min(opts.weight_clip))
        .collect();
    let mean = w.iter().sum::<f64>() / n_src as f64;
    if mean > 0.0 {
        w.iter_mut().for_each(|v| *v /= mean);
    }
    let sum: f64 = w.iter().sum();
    let sum_sq: f64 = w.iter().map(|v| v * v).sum();
    let effective_sample_size = if sum_sq > 0.0 {
        sum * sum / sum_sq
    } else {
        0.0
    };
    let mean_of = |want: bool| {
        let v: Vec<f64> = (0..n_src)
            .filter(|&i| is_shifted[i] == want)
            .map(|i| w[i])
            .collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let (mean_weight_shifted, mean_weight_clean) = (mean_of(true), mean_of(false));
    let wt = Tensor::from_vec(w.iter().map(|&v| v as f32).collect::<Vec<f32>>(), &[n_src])?;
    let after = train_softmax(opts, &xs, &ys, Some(&wt), g)?;
    Ok(CovariateShiftResult {
        n: n_tgt,
        domain_acc,
        mean_weight_shifted,
        mean_weight_clean,
        effective_sample_size,
        n_source: n_src,
        acc_before,
        acc_after: eval(&after, &xt)?,
        clean_acc_before,
        clean_acc_after: eval(&after, &xclean)?,
    })
}

impl fmt::Display for ShiftResults {
    /// The setting, the clean accuracy, the label-shift table (p, true q, estimated q, β)
    /// with accuracies before and after, and the covariate-shift weights and accuracies.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n_train, n_val, n_test) = self.sizes;
        let (skew, bright, contrast, frac, clip, epochs) = self.settings;
        if let Some(n) = &self.notice {
            writeln!(f, "{n}")?;
        }
        writeln!(
            f,
            "D2L 4.9 distribution shift on {}: softmax regression, {epochs} epochs, on a subset of \
             {n_train} of the {} training images ({n_val} more held out for validation); {n_test} test images",
            self.dataset, self.train_split_size
        )?;
        writeln!(f, "clean test accuracy: {:.4}", self.clean_acc)?;
        let l = &self.label;
        writeln!(
            f,
            "label shift: {} test images with class proportions ∝ {skew}^y",
            l.n
        )?;
        writeln!(
            f,
            "  {:>5}  {:>8}  {:>8}  {:>11}  {:>7}",
            "class", "p(y)", "q(y)", "estimated", "β(y)"
        )?;
        for c in 0..l.true_q.len() {
            writeln!(
                f,
                "  {:>5}  {:>8.4}  {:>8.4}  {:>11.4}  {:>7.3}",
                c, l.source_p[c], l.true_q[c], l.estimated_q[c], l.beta[c]
            )?;
        }
        writeln!(f, "  max |estimated q − q| = {:.4}", l.max_q_error())?;
        writeln!(
            f,
            "  accuracy: {:.4} before, {:.4} after re-weighting p(y|x)·β(y) ({:.4} with the true β)",
            l.acc_before, l.acc_after, l.acc_oracle
        )?;
        if let Some(p) = &l.plot {
            writeln!(f, "  plot: {}", p.display())?;
        }
        let c = &self.covariate;
        writeln!(
            f,
            "covariate shift: {} test images changed to clamp({contrast}·x + {bright}); {:.0}% of the \
             source images changed the same way",
            c.n,
            frac * 100.0
        )?;
        writeln!(
            f,
            "  domain classifier accuracy {:.4}; weights min(exp(h(x)), {clip}), mean 1: {:.3} on the \
             changed source images, {:.3} on the others; effective sample size {:.0} of {}",
            c.domain_acc, c.mean_weight_shifted, c.mean_weight_clean, c.effective_sample_size, c.n_source
        )?;
        writeln!(
            f,
            "  accuracy on the shifted test set: {:.4} before, {:.4} after re-weighting",
            c.acc_before, c.acc_after
        )?;
        writeln!(
            f,
            "  accuracy on the clean test set:   {:.4} before, {:.4} after",
            c.clean_acc_before, c.clean_acc_after
        )?;
        write!(f, "({:.1} s)", self.seconds)
    }
}
