//! D2L 4.4 (model selection, underfitting and overfitting): polynomial regression on the
//! book's data, `y = 5 + 1.2x − 3.4x²/2! + 5.6x³/3! + ε`, fitted with the first 4 features
//! (normal), the first 2 (underfitting) and all 20 (overfitting), with train and test loss
//! curves on a log scale.

use crate::{
    check_positive, check_rate, curve_series, fmt_row, minibatches, mse_of, plot_spec,
    reinit_uniform, rows, Common, LossPoint, Result,
};
use d2l_data::synthetic::poly_data;
use d2l_nn::layers::Linear;
use d2l_nn::loss::{mse_loss_with, Reduction};
use d2l_nn::optim::{Optimizer, Sgd};
use d2l_nn::Module;
use d2l_tensor::Generator;
use d2l_train::plot::PlotSpec;
use std::fmt;
use std::path::PathBuf;

/// One fit: how many feature columns (`x⁰/0! .. x^{d−1}/(d−1)!`) and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct PolyCase {
    /// A short name (`normal`, `underfit`, `overfit`), also the plot's file name.
    pub name: String,
    /// The number of feature columns used.
    pub degree: usize,
    /// Training epochs.
    pub epochs: usize,
}

impl PolyCase {
    /// A case from its name, degree and epochs.
    pub fn new(name: &str, degree: usize, epochs: usize) -> PolyCase {
        PolyCase {
            name: name.to_string(),
            degree,
            epochs,
        }
    }

    /// The book's three fits: degree 4 for 400 epochs, degree 2 for 400, degree 20 for 1500.
    pub fn book() -> Vec<PolyCase> {
        vec![
            PolyCase::new("normal", 4, 400),
            PolyCase::new("underfit", 2, 400),
            PolyCase::new("overfit", 20, 1500),
        ]
    }
}

/// Settings of [`run_poly`]; the defaults are the book's.
#[derive(Debug, Clone)]
pub struct PolyOptions {
    /// Training points (100).
    pub n_train: usize,
    /// Test points (100).
    pub n_test: usize,
    /// Feature columns generated (20).
    pub max_degree: usize,
    /// SGD learning rate (0.01).
    pub lr: f64,
    /// Minibatch size; the book uses `min(10, n_train)`.
    pub batch_size: usize,
    /// The fits to run ([`PolyCase::book`]).
    pub cases: Vec<PolyCase>,
    /// Record the losses after epoch 1 and every this many epochs (20, as the book's plot).
    pub eval_every: usize,
    /// The settings every experiment has ([`Common`]): the seed of the data, the
    /// initialisation and the shuffling; the folder for `poly-<case>.png/.svg`; `quiet`.
    pub common: Common,
}

impl Default for PolyOptions {
    fn default() -> Self {
        PolyOptions {
            n_train: 100,
            n_test: 100,
            max_degree: 20,
            lr: 0.01,
            batch_size: 10,
            cases: PolyCase::book(),
            eval_every: 20,
            common: Common::default(),
        }
    }
}

/// The outcome of one fit.
#[derive(Debug, Clone)]
pub struct PolyRun {
    /// The case's name.
    pub name: String,
    /// The number of feature columns.
    pub degree: usize,
    /// Epochs trained.
    pub epochs: usize,
    /// The learned weights, one per feature column.
    pub weights: Vec<f64>,
    /// Final mean squared error on the training set.
    pub train_loss: f64,
    /// Final mean squared error on the test set.
    pub test_loss: f64,
    /// The losses after epoch 1 and every `eval_every` epochs.
    pub curve: Vec<LossPoint>,
    /// The loss plot (PNG), when one was drawn.
    pub plot: Option<PathBuf>,
}

/// What [`run_poly`] returns.
#[derive(Debug, Clone)]
pub struct PolyResults {
    /// The true weights (`[5, 1.2, −3.4, 5.6]` then zeros).
    pub true_w: Vec<f64>,
    /// Training and test points.
    pub n_train: usize,
    /// Test points.
    pub n_test: usize,
    /// One entry per case, in the order asked.
    pub runs: Vec<PolyRun>,
    /// Wall-clock seconds of the whole experiment.
    pub seconds: f64,
}

impl PolyResults {
    /// The run named `name`, if it was asked for.
    pub fn run(&self, name: &str) -> Option<&PolyRun> {
        self.runs.iter().find(|r| r.name == name)
    }
}

/// The book's results (D2L 4.4, PyTorch notebook) by case name: weights shown and the
/// final train / test losses read off its plots.
pub fn book_reference(name: &str) -> Option<(&'static [f64], f64, f64)> {
    match name {
        "normal" => Some((&[5.0105, 1.2354, -3.4229, 5.5033], 0.0108, 0.0106)),
        "underfit" => Some((&[3.4050, 3.9939], 8.43, 15.6)),
        "overfit" => Some((&[4.985, 1.290, -3.300, 5.146], 0.0121, 0.0178)),
        _ => None,
    }
}

/// Runs D2L 4.4: generates the polynomial data once, then fits a bias-free linear model
/// (`nn.Linear(d, 1, bias=False)`, default init) on the first `degree` features of each
/// case with minibatch SGD on the mean squared error, recording train and test losses.
pub fn run_poly(opts: &PolyOptions) -> Result<PolyResults> {
    check_positive("n_train", opts.n_train)?;
    check_positive("n_test", opts.n_test)?;
    check_positive("max_degree", opts.max_degree)?;
    check_positive("batch_size", opts.batch_size)?;
    check_positive("eval_every", opts.eval_every)?;
    check_rate("lr", opts.lr)?;
    let start = std::time::Instant::now();
    let mut g = Generator::new(opts.common.seed);
    let data = poly_data(opts.n_train, opts.n_test, opts.max_degree, &mut g)?;
    let mut runs = Vec::with_capacity(opts.cases.len());
    for case in &opts.cases {
        check_positive("a case's epochs", case.epochs)?;
        if case.degree == 0 || case.degree > opts.max_degree {
            return Err(crate::ExperimentError::Invalid(format!(
                "poly case `{}`: degree must be in 1..={}, got {}",
                case.name, opts.max_degree, case.degree
            )));
        }
        let (xtr, ytr) = data.train(case.degree)?;
        let (xte, yte) = data.test(case.degree)?;
        let net = Linear::with_bias(case.degree, 1, false)?;
        reinit_uniform(&net.weight, 1.0 / (case.degree as f64).sqrt(), &mut g)?;
        let mut opt = Sgd::new(net.parameters(), opts.lr)?;
        let batch = opts.batch_size.min(opts.n_train);
        let mut curve = Vec::new();
        for epoch in 0..case.epochs {
            for idx in minibatches(opts.n_train, batch, Some(&mut g))? {
                let (xb, yb) = (rows(&xtr, &idx)?, rows(&ytr, &idx)?);
                let l = mse_loss_with(&net.forward(&xb)?, &yb, Reduction::Mean)?;
                opt.zero_grad();
                l.backward()?;
                opt.step()?;
            }
            let e = epoch + 1;
            if e == 1 || e % opts.eval_every == 0 || e == case.epochs {
                curve.push(LossPoint {
                    epoch: e,
                    train: mse_of(&net, &xtr, &ytr, false)?,
                    test: mse_of(&net, &xte, &yte, false)?,
                });
            }
        }
        let last = *curve.last().expect("at least one epoch was recorded");
        let weights = net.weight.to_f64_vec();
        opts.common.progress(|| {
            format!(
                "poly {} (degree {}, {} epochs): train {:.4}, test {:.4}",
                case.name, case.degree, case.epochs, last.train, last.test
            )
        });
        let spec = PlotSpec {
            log_y: true,
            xlim: Some((1.0, case.epochs as f64)),
            ylim: Some((1e-3, 1e2)),
            ..plot_spec(
                format!("4.4 {} (degree {})", case.name, case.degree),
                "epoch",
                "loss",
            )
        };
        let plot = opts.common.line_plot(
            &format!("poly-{}", case.name),
            &spec,
            &curve_series(&curve, "train", "test"),
        )?;
        runs.push(PolyRun {
            name: case.name.clone(),
            degree: case.degree,
            epochs: case.epochs,
            weights,
            train_loss: last.train,
            test_loss: last.test,
            curve,
            plot,
        });
    }
    Ok(PolyResults {
        true_w: data.true_w.clone(),
        n_train: opts.n_train,
        n_test: opts.n_test,
        runs,
        seconds: start.elapsed().as_secs_f64(),
    })
}

impl fmt::Display for PolyResults {
    /// The book's printout per case (`weight: [[...]]`), the final losses, and the book's
    /// numbers for comparison.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "D2L 4.4 polynomial regression: n_train = {}, n_test = {}, true w = {}",
            self.n_train,
            self.n_test,
            fmt_row(&self.true_w[..self.true_w.len().min(4)], 1)
        )?;
        for r in &self.runs {
            writeln!(f, "{} (degree {}, {} epochs):", r.name, r.degree, r.epochs)?;
            writeln!(f, "  weight: [{}]", fmt_row(&r.weights, 4))?;
            writeln!(
                f,
                "  train loss {:.4}, test loss {:.4}",
                r.train_loss, r.test_loss
            )?;
            if let Some((w, tr, te)) = book_reference(&r.name) {
                let shown = if r.degree > w.len() {
                    " (first four)"
                } else {
                    ""
                };
                writeln!(
                    f,
                    "  book: weight{shown} {}, train ≈ {tr}, test ≈ {te}",
                    fmt_row(w, 4)
                )?;
            }
            if let Some(p) = &r.plot {
                writeln!(f, "  plot: {}", p.display())?;
            }
        }
        write!(f, "({:.1} s)", self.seconds)
    }
}

/// One training-set size of [`run_poly_sizes`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizePoint {
    /// Training points.
    pub n_train: usize,
    /// Epochs trained (about the same number of SGD steps for every size).
    pub epochs: usize,
    /// Final training MSE.
    pub train_loss: f64,
    /// Final test MSE.
    pub test_loss: f64,
}

/// What [`run_poly_sizes`] returns.
#[derive(Debug, Clone)]
pub struct PolySizes {
    /// The feature columns fitted.
    pub degree: usize,
    /// Test points.
    pub n_test: usize,
    /// One point per training-set size, in the order asked.
    pub points: Vec<SizePoint>,
    /// The figure (PNG), when drawn.
    pub plot: Option<PathBuf>,
}

/// D2L 4.4's third factor of overfitting, the training-set size: the `degree`-feature
/// model (20: the book's overfitting case) fitted to `n_train` points for each size in
/// `sizes` (the first `n` of one draw), each with about `steps` minibatch SGD steps (so a
/// small set is not simply trained less), and its final train and test loss on one fixed
/// test set; draws `poly-sizes` (log-log) into
/// `opts.common.out_dir`. The data, learning rate and batch size are `opts`'.
pub fn run_poly_sizes(
    opts: &PolyOptions,
    sizes: &[usize],
    degree: usize,
    steps: usize,
) -> Result<PolySizes> {
    check_positive("n_test", opts.n_test)?;
    check_positive("batch_size", opts.batch_size)?;
    check_positive("steps", steps)?;
    check_rate("lr", opts.lr)?;
    if sizes.is_empty() || sizes.contains(&0) {
        return Err(crate::ExperimentError::Invalid(
            "the training-set sizes must be a non-empty list of positive numbers".into(),
        ));
    }
    if degree == 0 || degree > opts.max_degree {
        return Err(crate::ExperimentError::Invalid(format!(
            "degree must be in 1..={}, got {degree}",
            opts.max_degree
        )));
    }
    // One draw: every size trains on the first n of the same training points and is
    // tested on the same test points.
    let n_max = sizes.iter().copied().max().unwrap_or(1);
    let mut g = Generator::new(opts.common.seed);
    let data = poly_data(n_max, opts.n_test, opts.max_degree, &mut g)?;
    let (xall, yall) = data.train(degree)?;
    let (xte, yte) = data.test(degree)?;
    let mut points = Vec::new();
    for &n in sizes {
        let mut g = Generator::new(opts.common.seed ^ n as u64);
        let (xtr, ytr) = (xall.narrow(0, 0, n)?, yall.narrow(0, 0, n)?);
        let net = Linear::with_bias(degree, 1, false)?;
        reinit_uniform(&net.weight, 1.0 / (degree as f64).sqrt(), &mut g)?;
        let mut opt = Sgd::new(net.parameters(), opts.lr)?;
        let batch = opts.batch_size.min(n);
        let per_epoch = n.div_ceil(batch);
        let epochs = steps.div_ceil(per_epoch).max(1);
        for _ in 0..epochs {
            for idx in minibatches(n, batch, Some(&mut g))? {
                let l = mse_loss_with(
                    &net.forward(&rows(&xtr, &idx)?)?,
                    &rows(&ytr, &idx)?,
                    Reduction::Mean,
                )?;
                opt.zero_grad();
                l.backward()?;
                opt.step()?;
            }
        }
        let p = SizePoint {
            n_train: n,
            epochs,
            train_loss: mse_of(&net, &xtr, &ytr, false)?,
            test_loss: mse_of(&net, &xte, &yte, false)?,
        };
        opts.common.progress(|| {
            format!(
                "poly sizes: n_train {n} ({epochs} epochs): train {:.4}, test {:.4}",
                p.train_loss, p.test_loss
            )
        });
        points.push(p);
    }
    let ns: Vec<f64> = points.iter().map(|p| p.n_train as f64).collect();
    let spec = PlotSpec {
        log_x: true,
        log_y: true,
        ..plot_spec(
            format!("4.4 degree {degree}: loss against training-set size"),
            "training points",
            "final loss",
        )
    };
    let s = [
        crate::series(
            "train",
            ns.clone(),
            points.iter().map(|p| p.train_loss).collect(),
        ),
        crate::series("test", ns, points.iter().map(|p| p.test_loss).collect()),
    ];
    let plot = opts.common.line_plot("poly-sizes", &spec, &s)?;
    Ok(PolySizes {
        degree,
        n_test: opts.n_test,
        points,
        plot,
    })
}

impl fmt::Display for PolySizes {
    /// One line per size: epochs, train and test loss, and their gap.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "training-set size, degree {} ({} test points; the noise variance is 0.01):",
            self.degree, self.n_test
        )?;
        writeln!(
            f,
            "  {:>8} {:>7} {:>11} {:>11}",
            "n_train", "epochs", "train loss", "test loss"
        )?;
        for p in &self.points {
            writeln!(
                f,
                "  {:>8} {:>7} {:>11.4} {:>11.4}",
                p.n_train, p.epochs, p.train_loss, p.test_loss
            )?;
        }
        if let Some(p) = &self.plot {
            write!(f, "  plot: {}", p.display())?;
        }
        Ok(())
    }
}
