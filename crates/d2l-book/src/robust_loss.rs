//! The loss notes (D2L 3.1.1.4 and the notes' 0.1.4): the squared loss weighs an error by
//! its square, so a few gross outliers pull a least-squares fit towards them, while the
//! absolute (L1) loss grows only linearly and Huber's is quadratic near 0 and linear
//! beyond `δ`. A line `y = 2x − 1 + ε` (ε ~ N(0, 0.1²)) on `x ~ U(−1, 1)`, with a few
//! points at the right end pulled far down, fitted with each loss.

use crate::{
    check_positive, check_rate, plot_spec, save_plot, series, Common, ExperimentError, Result,
};
use d2l_nn::layers::Linear;
use d2l_nn::loss::{huber_loss, l1_loss, mse_loss_with, Reduction};
use d2l_nn::optim::{Adam, Optimizer};
use d2l_nn::Module;
use d2l_tensor::{no_grad, Generator, Tensor};
use std::fmt;
use std::path::PathBuf;

/// The true slope and intercept.
pub const TRUE_LINE: (f64, f64) = (2.0, -1.0);

/// Settings of [`run_robust_loss`].
#[derive(Debug, Clone)]
pub struct RobustLossOptions {
    /// Points (100).
    pub n: usize,
    /// How many of them are outliers (5), the ones with the largest `x`.
    pub n_outliers: usize,
    /// How far the outliers are moved down (20).
    pub outlier_shift: f64,
    /// Huber's `δ` (1).
    pub huber_delta: f64,
    /// Full-batch Adam steps (2,000).
    pub steps: usize,
    /// The settings every experiment has ([`Common`]): the seed; the folder for
    /// `robust-loss.png/.svg`; `quiet`.
    pub common: Common,
}

impl Default for RobustLossOptions {
    fn default() -> Self {
        RobustLossOptions {
            n: 100,
            n_outliers: 5,
            outlier_shift: 20.0,
            huber_delta: 1.0,
            steps: 2000,
            common: Common::default(),
        }
    }
}

/// One loss's fit.
#[derive(Debug, Clone)]
pub struct LossFit {
    /// `L2 (squared)`, `L1 (absolute)` or `Huber (δ = …)`.
    pub loss: String,
    /// The fitted slope.
    pub slope: f64,
    /// The fitted intercept.
    pub intercept: f64,
}

impl LossFit {
    /// `|slope − 2|`.
    pub fn slope_error(&self) -> f64 {
        (self.slope - TRUE_LINE.0).abs()
    }

    /// `|intercept + 1|`.
    pub fn intercept_error(&self) -> f64 {
        (self.intercept - TRUE_LINE.1).abs()
    }
}

/// What [`run_robust_loss`] returns.
#[derive(Debug, Clone)]
pub struct RobustLossResults {
    /// Points and outliers.
    pub n: usize,
    /// The number of outliers.
    pub n_outliers: usize,
    /// Their shift.
    pub outlier_shift: f64,
    /// L2, L1 and Huber, in that order.
    pub fits: Vec<LossFit>,
    /// The figure, when drawn.
    pub plot: Option<PathBuf>,
}

impl RobustLossResults {
    /// The fit whose loss name starts with `prefix` (`L1`, `L2`, `Huber`).
    pub fn fit(&self, prefix: &str) -> Option<&LossFit> {
        self.fits.iter().find(|f| f.loss.starts_with(prefix))
    }
}

/// Fits the line with the squared, absolute and Huber losses.
pub fn run_robust_loss(opts: &RobustLossOptions) -> Result<RobustLossResults> {
    check_positive("n", opts.n)?;
    check_positive("steps", opts.steps)?;
    check_rate("huber_delta", opts.huber_delta)?;
    if opts.n_outliers >= opts.n || !opts.outlier_shift.is_finite() {
        return Err(ExperimentError::Invalid(format!(
            "n_outliers must be below n ({}) and outlier_shift finite, got {} and {}",
            opts.n, opts.n_outliers, opts.outlier_shift
        )));
    }
    let mut g = Generator::new(opts.common.seed);
    let mut x: Vec<f64> = (0..opts.n).map(|_| g.next_f64() * 2.0 - 1.0).collect();
    x.sort_by(f64::total_cmp);
    let mut y: Vec<f64> = x
        .iter()
        .map(|&v| TRUE_LINE.0 * v + TRUE_LINE.1 + 0.1 * g.normal_f64())
        .collect();
    let first_out = opts.n - opts.n_outliers;
    for v in &mut y[first_out..] {
        *v -= opts.outlier_shift;
    }
    let col = |v: &[f64]| {
        Tensor::from_vec(
            v.iter().map(|&a| a as f32).collect::<Vec<f32>>(),
            &[v.len(), 1],
        )
    };
    let (xt, yt) = (col(&x)?, col(&y)?);
    let delta = opts.huber_delta;
    let mut fits = Vec::new();
    for which in 0..3 {
        let net = Linear::new(1, 1)?;
        no_grad(|| -> Result<()> {
            net.weight.zero_()?;
            if let Some(b) = &net.bias {
                b.zero_()?;
            }
            Ok(())
        })?;
        let mut opt = Adam::new(net.parameters(), 0.05)?;
        for _ in 0..opts.steps {
            let p = net.forward(&xt)?;
            let l = match which {
                0 => mse_loss_with(&p, &yt, Reduction::Mean)?,
                1 => l1_loss(&p, &yt, Reduction::Mean)?,
                _ => huber_loss(&p, &yt, delta, Reduction::Mean)?,
            };
            opt.zero_grad();
            l.backward()?;
            opt.step()?;
        }
        let slope = net.weight.to_f64_vec()[0];
        let intercept = net.bias.as_ref().map_or(0.0, |b| b.to_f64_vec()[0]);
        let loss = match which {
            0 => "L2 (squared)".to_string(),
            1 => "L1 (absolute)".to_string(),
            _ => format!("Huber (δ = {delta})"),
        };
        opts.common.progress(|| {
            format!("robust-loss: {loss}: slope {slope:.4}, intercept {intercept:.4}")
        });
        fits.push(LossFit {
            loss,
            slope,
            intercept,
        });
    }
    let mut s = vec![
        series("data", x[..first_out].to_vec(), y[..first_out].to_vec()),
        series("outliers", x[first_out..].to_vec(), y[first_out..].to_vec()),
    ];
    // Lines as dense points, so the scatter plot draws them.
    let grid: Vec<f64> = (0..=80).map(|i| -1.0 + 2.0 * i as f64 / 80.0).collect();
    for f in &fits {
        s.push(series(
            &format!("{} fit", f.loss),
            grid.clone(),
            grid.iter().map(|&v| f.slope * v + f.intercept).collect(),
        ));
    }
    s.push(series(
        "true line y = 2x − 1",
        grid.clone(),
        grid.iter()
            .map(|&v| TRUE_LINE.0 * v + TRUE_LINE.1)
            .collect(),
    ));
    let spec = plot_spec(
        format!(
            "Squared vs absolute vs Huber loss, {} outliers",
            opts.n_outliers
        ),
        "x",
        "y",
    );
    let plot = save_plot(opts.common.dir(), "robust-loss", &spec, &s, true)?;
    Ok(RobustLossResults {
        n: opts.n,
        n_outliers: opts.n_outliers,
        outlier_shift: opts.outlier_shift,
        fits,
        plot,
    })
}

impl fmt::Display for RobustLossResults {
    /// One line per loss: slope, intercept and their errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "y = 2x − 1 + N(0, 0.1²) on {} points; the {} with the largest x moved down by {}",
            self.n, self.n_outliers, self.outlier_shift
        )?;
        writeln!(
            f,
            "  {:<16} {:>8} {:>10} {:>12} {:>16}",
            "loss", "slope", "intercept", "slope error", "intercept error"
        )?;
        for r in &self.fits {
            writeln!(
                f,
                "  {:<16} {:>8.4} {:>10.4} {:>12.4} {:>16.4}",
                r.loss,
                r.slope,
                r.intercept,
                r.slope_error(),
                r.intercept_error()
            )?;
        }
        if let Some(p) = &self.plot {
            write!(f, "plot: {}", p.display())?;
        }
        Ok(())
    }
}
