//! Chapter 2's figures: the 2.4 derivative of `f(x) = 3x² − 4x` at `x = 1` as a numerical
//! limit (the book's printout), by autograd, and the tangent-line plot; and the normal and
//! uniform densities and distribution functions (2.6 / 3.1.3's normal figure with
//! `(μ, σ) = (0, 1), (0, 2), (3, 1)`) through `d2l_tensor::distributions`.

use crate::{plot_spec, save_plot, series, ExperimentError, Result};
use d2l_tensor::distributions::{Normal, Uniform};
use d2l_tensor::{DType, Tensor};
use std::fmt;
use std::path::PathBuf;

/// The 2.4 function `3x² − 4x`.
pub fn f(x: f64) -> f64 {
    3.0 * x * x - 4.0 * x
}

/// What [`run_prelim`] returns.
#[derive(Debug, Clone)]
pub struct PrelimResults {
    /// `(h, (f(1 + h) − f(1)) / h)` for h = 0.1, 0.01, …, 0.00001.
    pub limits: Vec<(f64, f64)>,
    /// `f'(1)` by autograd.
    pub autograd: f64,
    /// `(x, pdf, cdf)` rows of `N(0, 1)` at x = −1.96, 0, 1, 1.96.
    pub normal_values: Vec<(f64, f64, f64, f64)>,
    /// `∫ pdf` over the plotted grid of each normal (≈ 1).
    pub normal_mass: Vec<f64>,
    /// `U[−1, 1)`'s (pdf, cdf, log_prob) at 0.5.
    pub uniform_at_half: (f64, f64, f64),
    /// The plots written.
    pub plots: Vec<PathBuf>,
}

/// The 2.4 and 2.6 / 3.1.3 figures and values; plots into `out_dir` when given.
pub fn run_prelim(out_dir: Option<&std::path::Path>) -> Result<PrelimResults> {
    let mut plots = Vec::new();
    // 2.4: the numerical limit and the tangent.
    let limits: Vec<(f64, f64)> = (1..=5)
        .map(|k| {
            let h = 10f64.powi(-k);
            (h, (f(1.0 + h) - f(1.0)) / h)
        })
        .collect();
    let x = Tensor::from_vec(vec![1.0f64], &[1])?.requires_grad_(true)?;
    let y = x.square()?.mul_scalar(3.0)?.sub(&x.mul_scalar(4.0)?)?;
    y.sum_all()?.backward()?;
    let autograd = x
        .grad()
        .ok_or_else(|| ExperimentError::Invalid("no gradient reached x".into()))?
        .to_f64_vec()[0];
    let xs: Vec<f64> = (0..30).map(|i| i as f64 * 0.1).collect();
    let spec = plot_spec("2.4 f(x) = 3x² − 4x and its tangent at x = 1", "x", "f(x)");
    plots.extend(save_plot(
        out_dir,
        "tangent",
        &spec,
        &[
            series("f(x)", xs.clone(), xs.iter().map(|&v| f(v)).collect()),
            series(
                "tangent line (x = 1)",
                xs.clone(),
                xs.iter().map(|&v| 2.0 * v - 3.0).collect(),
            ),
        ],
        false,
    )?);

    // 3.1.3: normal densities; their distribution functions; the uniform.
    let step = 0.01;
    let grid = Tensor::arange(-7.0, 7.0, step)?.to_dtype(DType::F64)?;
    let gx = grid.to_f64_vec();
    let mut pdfs = Vec::new();
    let mut cdfs = Vec::new();
    let mut normal_mass = Vec::new();
    for (mu, sigma) in [(0.0, 1.0), (0.0, 2.0), (3.0, 1.0)] {
        let n = Normal::new(mu, sigma)?;
        let p = n.pdf(&grid)?.to_f64_vec();
        normal_mass.push(p.iter().sum::<f64>() * step);
        let label = format!("mean {mu}, std {sigma}");
        pdfs.push(series(&label, gx.clone(), p));
        cdfs.push(series(&label, gx.clone(), n.cdf(&grid)?.to_f64_vec()));
    }
    let u = Uniform::new(-1.0, 1.0)?;
    pdfs.push(series(
        "uniform [−1, 1)",
        gx.clone(),
        u.pdf(&grid)?.to_f64_vec(),
    ));
    cdfs.push(series(
        "uniform [−1, 1)",
        gx.clone(),
        u.cdf(&grid)?.to_f64_vec(),
    ));
    for (name, title, ylabel, s) in [
        ("normal-pdf", "3.1.3 densities p(x)", "p(x)", &pdfs),
        (
            "normal-cdf",
            "distribution functions P(X ≤ x)",
            "P(X ≤ x)",
            &cdfs,
        ),
    ] {
        let spec = plot_spec(title, "x", ylabel);
        plots.extend(save_plot(out_dir, name, &spec, s, false)?);
    }
    let n01 = Normal::new(0.0, 1.0)?;
    let pts = [-1.96, 0.0, 1.0, 1.96];
    let t = Tensor::from_vec(pts.to_vec(), &[pts.len()])?;
    let (p, c, l) = (
        n01.pdf(&t)?.to_f64_vec(),
        n01.cdf(&t)?.to_f64_vec(),
        n01.log_prob(&t)?.to_f64_vec(),
    );
    let normal_values = (0..pts.len()).map(|i| (pts[i], p[i], c[i], l[i])).collect();
    let half = Tensor::from_vec(vec![0.5f64], &[1])?;
    let uniform_at_half = (
        u.pdf(&half)?.to_f64_vec()[0],
        u.cdf(&half)?.to_f64_vec()[0],
        u.log_prob(&half)?.to_f64_vec()[0],
    );
    Ok(PrelimResults {
        limits,
        autograd,
        normal_values,
        normal_mass,
        uniform_at_half,
        plots,
    })
}

impl fmt::Display for PrelimResults {
    /// The book's limit printout, the autograd value, and the distribution values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "D2L 2.4: f(x) = 3x² − 4x at x = 1")?;
        for (h, l) in &self.limits {
            writeln!(f, "h={h:.5}, numerical limit={l:.5}")?;
        }
        writeln!(
            f,
            "autograd: f'(1) = {:.5} (the tangent is y = 2x − 3)",
            self.autograd
        )?;
        writeln!(f, "normal N(0, 1) (d2l_tensor::distributions::Normal):")?;
        writeln!(
            f,
            "  {:>6} {:>9} {:>9} {:>10}",
            "x", "pdf", "cdf", "log_prob"
        )?;
        for (x, p, c, l) in &self.normal_values {
            writeln!(f, "  {x:>6.2} {p:>9.6} {c:>9.6} {l:>10.6}")?;
        }
        let mass: Vec<String> = self.normal_mass.iter().map(|m| format!("{m:.4}")).collect();
        writeln!(
            f,
            "  ∫ pdf over [−7, 7) for (0, 1), (0, 2), (3, 1): {}",
            mass.join(", ")
        )?;
        let (p, c, l) = self.uniform_at_half;
        writeln!(
            f,
            "uniform U[−1, 1) at 0.5: pdf {p:.4}, cdf {c:.4}, log_prob {l:.4}"
        )?;
        for p in &self.plots {
            writeln!(f, "plot: {}", p.display())?;
        }
        Ok(())
    }
}
