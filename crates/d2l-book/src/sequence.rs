//! D2L 8.1 (sequence models): the book's noisy sine, x_t = sin(0.01 t) + ε with
//! ε ~ N(0, 0.2²) for t = 1..1000, modelled autoregressively from τ = 4 lagged values by
//! a small MLP (`Linear(4, 10), ReLU, Linear(10, 1)`, Xavier-uniform weights) trained with
//! Adam (lr 0.01, batch 16, 5 epochs) on the first 600 examples. Then the three kinds of
//! prediction the section contrasts: one step ahead from observed data, multi-step from
//! index n_train + τ = 604 on (feeding predictions back in), and k-step predictions for
//! k = 1, 4, 16, 64 — showing how the error grows as predictions build on predictions.

use crate::{
    check_non_negative, check_positive, check_rate, minibatches, plot_spec, rows, save_plot,
    series, Common, ExperimentError, Result,
};
use d2l_nn::layers::{Linear, ReLU};
use d2l_nn::loss::{mse_loss_with, Reduction};
use d2l_nn::optim::{Adam, Optimizer};
use d2l_nn::{Module, Sequential};
use d2l_tensor::{no_grad, Generator, Tensor};
use d2l_train::plot::PlotSpec;
use std::fmt;
use std::path::PathBuf;

/// The book's epoch losses (D2L 8.1, PyTorch notebook): the mean squared error on the
/// training examples after each of the 5 epochs, from the data file of the book's numbers
/// (`crates/d2l-book/reproduce.toml`).
pub fn book_epoch_losses() -> Vec<f64> {
    (1..=5)
        .map_while(|e| crate::reproduce::book_value("8.1-sequence", &format!("epoch{e}_loss")))
        .collect()
}

/// Settings of [`run_sequence`]; the defaults are the book's.
#[derive(Debug, Clone)]
pub struct SequenceOptions {
    /// Length T of the series (1000).
    pub t_max: usize,
    /// Standard deviation of the noise (0.2).
    pub noise_std: f64,
    /// Lag τ: the number of previous values the model sees (4).
    pub tau: usize,
    /// Training examples, the first of the T − τ (600).
    pub n_train: usize,
    /// Hidden units of the MLP (10).
    pub hidden: usize,
    /// Minibatch size (16).
    pub batch_size: usize,
    /// Adam's learning rate (0.01).
    pub lr: f64,
    /// Training epochs (5).
    pub epochs: usize,
    /// The k of the k-step predictions reported and plotted (1, 4, 16, 64).
    pub steps: Vec<usize>,
    /// The longest k computed (64); every k in `steps` must be at most this.
    pub max_steps: usize,
    /// The settings every experiment has ([`Common`]): the seed of the noise, the
    /// initialisation and the shuffling; the folder for the plots; `quiet`.
    pub common: Common,
}

impl Default for SequenceOptions {
    fn default() -> Self {
        SequenceOptions {
            t_max: 1000,
            noise_std: 0.2,
            tau: 4,
            n_train: 600,
            hidden: 10,
            batch_size: 16,
            lr: 0.01,
            epochs: 5,
            steps: vec![1, 4, 16, 64],
            max_steps: 64,
            common: Common::default(),
        }
    }
}

/// What [`run_sequence`] returns.
#[derive(Debug, Clone)]
pub struct SequenceResults {
    /// The series x_1..x_T (index i holds x at time i + 1).
    pub x: Vec<f64>,
    /// τ.
    pub tau: usize,
    /// Training examples.
    pub n_train: usize,
    /// The training loss (mean squared error, the book's `evaluate_loss`) after each epoch.
    pub epoch_losses: Vec<f64>,
    /// One-step-ahead predictions of x at times τ+1..T (index i predicts `x[i + τ]`).
    pub onestep: Vec<f64>,
    /// Multi-step predictions: `x` up to index n_train + τ, then the model's own outputs.
    pub multistep: Vec<f64>,
    /// Mean squared error of the one-step predictions on the training and the later
    /// examples.
    pub onestep_mse: (f64, f64),
    /// Mean squared error of the multi-step predictions from index n_train + τ on.
    pub multistep_mse: f64,
    /// For every k = 1..=max_steps, the mean squared error of the k-step predictions.
    pub kstep_mse: Vec<f64>,
    /// The k-step predictions for each k of the options' `steps`: (k, predictions), where
    /// prediction i is for index i + τ + k − 1 of `x`.
    pub kstep: Vec<(usize, Vec<f64>)>,
    /// The mean squared error a perfect model of sin(0.01 t) would make: the noise
    /// variance (0.04 by default).
    pub noise_floor: f64,
    /// The plots written (PNG).
    pub plots: Vec<PathBuf>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl SequenceResults {
    /// The mean squared error of the k-step predictions (`None` past max_steps or for 0).
    pub fn kstep_error(&self, k: usize) -> Option<f64> {
        k.checked_sub(1)
            .and_then(|i| self.kstep_mse.get(i))
            .copied()
    }
}

/// The mean squared difference of two series over their common length.
pub fn mse(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()).max(1) as f64;
    a.iter().zip(b).map(|(p, q)| (p - q).powi(2)).sum::<f64>() / n
}

/// The MLP of D2L 8.1 (`get_net`): `Linear(tau, hidden), ReLU, Linear(hidden, 1)`, with
/// Xavier-uniform weights and PyTorch's default uniform biases, drawn from `g`.
pub fn sequence_net(tau: usize, hidden: usize, g: &mut Generator) -> Result<Sequential> {
    let l1 = Linear::new(tau, hidden)?;
    let l2 = Linear::new(hidden, 1)?;
    for (l, fan_in, fan_out) in [(&l1, tau, hidden), (&l2, hidden, 1)] {
        let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
        d2l_nn::init::uniform_with_(&l.weight, -a, a, g)?;
        if let Some(b) = &l.bias {
            let bound = 1.0 / (fan_in as f64).sqrt();
            d2l_nn::init::uniform_with_(b, -bound, bound, g)?;
        }
    }
    Ok(Sequential::new().add(l1).add(ReLU).add(l2))
}

/// The lagged-feature matrix of D2L 8.1: row i holds `x[i..i + tau]` (a `[n, tau]` f32
/// tensor with n = len − tau), and the labels `x[i + tau]` (`[n, 1]`).
pub fn lag_features(x: &[f64], tau: usize) -> Result<(Tensor, Tensor)> {
    if tau == 0 || x.len() <= tau {
        return Err(ExperimentError::Invalid(format!(
            "lag features need 1 ≤ τ < series length, got τ = {tau} for {} values",
            x.len()
        )));
    }
    let n = x.len() - tau;
    let mut f = Vec::with_capacity(n * tau);
    for i in 0..n {
        f.extend(x[i..i + tau].iter().map(|&v| v as f32));
    }
    let y: Vec<f32> = x[tau..].iter().map(|&v| v as f32).collect();
    Ok((
        Tensor::from_vec(f, &[n, tau])?,
        Tensor::from_vec(y, &[n, 1])?,
    ))
}

fn predict(net: &dyn Module, x: &Tensor) -> Result<Vec<f64>> {
    no_grad(|| Ok(net.forward(x)?.to_f64_vec()))
}

/// D2L 8.1's multi-step predictions: `x` up to index `first`, then each value predicted by
/// `net` from the τ values before it, predictions included (`multistep_preds[i] =
/// net(multistep_preds[i - tau:i])`).
pub fn multistep_predictions(
    net: &dyn Module,
    x: &[f64],
    tau: usize,
    first: usize,
) -> Result<Vec<f64>> {
    let mut multistep = x.to_vec();
    for i in first..x.len() {
        let window: Vec<f32> = multistep[i - tau..i].iter().map(|&v| v as f32).collect();
        multistep[i] = predict(net, &Tensor::from_vec(window, &[1, tau])?)?[0];
    }
    Ok(multistep)
}

/// D2L 8.1's k-step-ahead predictions for `k = 1..=max_steps`: columns of
/// `T − τ − max_steps + 1` rows, the first τ the observed `x[i..]`, and column `τ + k − 1`
/// the k-step prediction of each row, made from the τ columns before it.
pub fn kstep_columns(
    net: &dyn Module,
    x: &[f64],
    tau: usize,
    max_steps: usize,
) -> Result<Vec<Vec<f64>>> {
    let n_rows = x.len() - tau - max_steps + 1;
    let mut cols: Vec<Vec<f64>> = (0..tau).map(|i| x[i..i + n_rows].to_vec()).collect();
    for i in tau..tau + max_steps {
        let mut input = Vec::with_capacity(n_rows * tau);
        for r in 0..n_rows {
            input.extend(cols[i - tau..i].iter().map(|c| c[r] as f32));
        }
        cols.push(predict(net, &Tensor::from_vec(input, &[n_rows, tau])?)?);
    }
    Ok(cols)
}

fn validate(o: &SequenceOptions) -> Result<()> {
    check_positive("tau", o.tau)?;
    check_positive("n_train", o.n_train)?;
    check_positive("hidden", o.hidden)?;
    check_positive("batch_size", o.batch_size)?;
    check_positive("epochs", o.epochs)?;
    check_positive("max_steps", o.max_steps)?;
    check_rate("lr", o.lr)?;
    check_non_negative("noise_std", o.noise_std)?;
    if o.n_train + o.tau >= o.t_max {
        return Err(ExperimentError::Invalid(format!(
            "the series of T = {} values leaves nothing after n_train + τ = {}",
            o.t_max,
            o.n_train + o.tau
        )));
    }
    if o.t_max < o.tau + o.max_steps {
        return Err(ExperimentError::Invalid(format!(
            "k-step predictions up to k = {} need T ≥ τ + max_steps = {}, got T = {}",
            o.max_steps,
            o.tau + o.max_steps,
            o.t_max
        )));
    }
    if let Some(&k) = o.steps.iter().find(|&&k| k == 0 || k > o.max_steps) {
        return Err(ExperimentError::Invalid(format!(
            "every k-step must be in 1..={}, got {k}",
            o.max_steps
        )));
    }
    Ok(())
}

/// Runs D2L 8.1: makes the series, trains the MLP, and computes the one-step,
/// multi-step and k-step predictions with their errors; draws the book's four plots
/// (`seq-data`, `seq-onestep`, `seq-multistep`, `seq-kstep`) and the error against k
/// (`seq-kstep-error`) when `out_dir` is set.
pub fn run_sequence(opts: &SequenceOptions) -> Result<SequenceResults> {
    validate(opts)?;
    let start = std::time::Instant::now();
    let (t_max, tau, n_train) = (opts.t_max, opts.tau, opts.n_train);
    let mut g = Generator::new(opts.common.seed);
    let x: Vec<f64> = (1..=t_max)
        .map(|t| (0.01 * t as f64).sin() + opts.noise_std * g.normal_f64())
        .collect();
    // Round through f32 as the book's float32 tensors do.
    let x: Vec<f64> = x.iter().map(|&v| v as f32 as f64).collect();
    let (features, labels) = lag_features(&x, tau)?;
    let train_idx = Tensor::from_vec((0..n_train as i64).collect::<Vec<_>>(), &[n_train])?;
    let (xtr, ytr) = (rows(&features, &train_idx)?, rows(&labels, &train_idx)?);

    let net = sequence_net(tau, opts.hidden, &mut g)?;
    let mut opt = Adam::new(net.parameters(), opts.lr)?;
    let mut epoch_losses = Vec::with_capacity(opts.epochs);
    for epoch in 0..opts.epochs {
        for idx in minibatches(n_train, opts.batch_size, Some(&mut g))? {
            let (xb, yb) = (rows(&xtr, &idx)?, rows(&ytr, &idx)?);
            opt.zero_grad();
            // MSELoss(reduction='none'), then l.sum().backward().
            let l = mse_loss_with(&net.forward(&xb)?, &yb, Reduction::None)?.sum_all()?;
            l.backward()?;
            opt.step()?;
        }
        let loss = no_grad(|| -> Result<f64> {
            Ok(mse_loss_with(&net.forward(&xtr)?, &ytr, Reduction::Mean)?.item_f64()?)
        })?;
        opts.common
            .progress(|| format!("epoch {}, loss: {loss:.6}", epoch + 1));
        epoch_losses.push(loss);
    }

    // One step ahead, from the observed values.
    let onestep = predict(&net, &features)?;
    let onestep_mse = (
        mse(&onestep[..n_train], &x[tau..tau + n_train]),
        mse(&onestep[n_train..], &x[tau + n_train..]),
    );

    // Multi-step: from index n_train + τ on, each prediction feeds the next.
    let first = n_train + tau;
    let multistep = multistep_predictions(&net, &x, tau, first)?;
    let multistep_mse = mse(&multistep[first..], &x[first..]);

    // k-step: column τ + k − 1 of each row holds its k-step-ahead prediction.
    let max_steps = opts.max_steps;
    let n_rows = t_max - tau - max_steps + 1;
    let cols = kstep_columns(&net, &x, tau, max_steps)?;
    let kstep_mse: Vec<f64> = (1..=max_steps)
        .map(|k| {
            let c = &cols[tau + k - 1];
            mse(c, &x[tau + k - 1..tau + k - 1 + n_rows])
        })
        .collect();
    let kstep: Vec<(usize, Vec<f64>)> = opts
        .steps
        .iter()
        .map(|&k| (k, cols[tau + k - 1].clone()))
        .collect();
    opts.common.progress(|| {
        format!(
            "one-step test MSE {:.4}, multi-step MSE {:.4}",
            onestep_mse.1, multistep_mse
        )
    });

    // Plots, as the book draws them (time runs from 1).
    let mut plots = Vec::new();
    let dir = opts.common.dir();
    let time = |from: usize, len: usize| -> Vec<f64> {
        (from..from + len).map(|i| (i + 1) as f64).collect()
    };
    let spec = |title: &str| PlotSpec {
        xlim: Some((1.0, t_max as f64)),
        ..plot_spec(title, "time", "x")
    };
    let data = series("data", time(0, t_max), x.clone());
    plots.extend(save_plot(
        dir,
        "seq-data",
        &spec("8.1 the data"),
        std::slice::from_ref(&data),
        false,
    )?);
    let one = series("1-step preds", time(tau, onestep.len()), onestep.clone());
    plots.extend(save_plot(
        dir,
        "seq-onestep",
        &spec("8.1 one-step-ahead prediction"),
        &[data.clone(), one.clone()],
        false,
    )?);
    let multi = series(
        "multistep preds",
        time(first, t_max - first),
        multistep[first..].to_vec(),
    );
    plots.extend(save_plot(
        dir,
        "seq-multistep",
        &spec("8.1 multi-step prediction"),
        &[data, one, multi],
        false,
    )?);
    let ks: Vec<_> = kstep
        .iter()
        .map(|(k, p)| {
            series(
                &format!("{k}-step preds"),
                time(tau + k - 1, n_rows),
                p.clone(),
            )
        })
        .collect();
    let mut kspec = spec("8.1 k-step-ahead predictions");
    kspec.xlim = Some((5.0, t_max as f64));
    plots.extend(save_plot(dir, "seq-kstep", &kspec, &ks, false)?);
    let noise_floor = opts.noise_std * opts.noise_std;
    let kerr = vec![
        series(
            "k-step MSE",
            (1..=max_steps).map(|k| k as f64).collect(),
            kstep_mse.clone(),
        ),
        series(
            "noise variance",
            vec![1.0, max_steps as f64],
            vec![noise_floor; 2],
        ),
    ];
    let espec = PlotSpec {
        log_x: true,
        log_y: true,
        ..plot_spec(
            "8.1 error of k-step predictions",
            "k (steps ahead)",
            "mean squared error",
        )
    };
    plots.extend(save_plot(dir, "seq-kstep-error", &espec, &kerr, false)?);

    Ok(SequenceResults {
        x,
        tau,
        n_train,
        epoch_losses,
        onestep,
        multistep,
        onestep_mse,
        multistep_mse,
        kstep_mse,
        kstep,
        noise_floor,
        plots,
        seconds: start.elapsed().as_secs_f64(),
    })
}

impl fmt::Display for SequenceResults {
    /// The book's `epoch i, loss: …` lines beside its numbers, then the errors of the
    /// three kinds of prediction.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "D2L 8.1 sequence model: T = {}, τ = {}, {} training examples",
            self.x.len(),
            self.tau,
            self.n_train
        )?;
        let book = book_epoch_losses();
        for (i, l) in self.epoch_losses.iter().enumerate() {
            match book.get(i) {
                Some(b) => writeln!(f, "epoch {}, loss: {l:.6}   (book: {b:.6})", i + 1)?,
                None => writeln!(f, "epoch {}, loss: {l:.6}", i + 1)?,
            }
        }
        writeln!(
            f,
            "noise variance (a perfect model's MSE): {:.4}",
            self.noise_floor
        )?;
        writeln!(
            f,
            "1-step predictions: MSE {:.4} on the training part, {:.4} after it",
            self.onestep_mse.0, self.onestep_mse.1
        )?;
        writeln!(
            f,
            "multi-step predictions from index {}: MSE {:.4}",
            self.n_train + self.tau,
            self.multistep_mse
        )?;
        let ks: Vec<String> = self
            .kstep
            .iter()
            .map(|(k, _)| format!("{k}-step {:.4}", self.kstep_error(*k).unwrap_or(f64::NAN)))
            .collect();
        writeln!(f, "k-step predictions, MSE: {}", ks.join(", "))?;
        for p in &self.plots {
            writeln!(f, "plot: {}", p.display())?;
        }
        write!(f, "({:.1} s)", self.seconds)
    }
}
