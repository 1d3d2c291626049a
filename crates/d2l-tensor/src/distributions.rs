//! The normal and uniform distributions of D2L 2.6 and 3.1.3 (PyTorch's
//! `torch.distributions.Normal` / `Uniform`): densities, log-densities and distribution
//! functions evaluated elementwise on a tensor, and samples.
//!
//! `log_prob` and `pdf` of [`Normal`] are built from tensor ops, so gradients flow back to
//! `x`; the `cdf`s and [`Uniform`]'s density are computed on the values and return a tensor
//! without a graph (their derivative is the density, or 0).
//!
//! ```
//! use d2l_tensor::distributions::Normal;
//! use d2l_tensor::Tensor;
//! # fn main() -> d2l_tensor::Result<()> {
//! let n = Normal::new(0.0, 1.0)?;
//! let x = Tensor::from_vec(vec![0.0f64, 1.96], &[2])?;
//! let p = n.pdf(&x)?.to_f64_vec();
//! assert!((p[0] - 0.398_942).abs() < 1e-6);
//! assert!((n.cdf(&x)?.to_f64_vec()[1] - 0.975).abs() < 1e-4);
//! # Ok(()) }
//! ```

use crate::{Error, Float, Generator, Result, Tensor};

fn invalid(op: &'static str, msg: String) -> Error {
    Error::InvalidArgument { op, msg }
}

/// `f` applied to every element of `x`, in a new tensor of `x`'s shape and dtype (no graph).
fn map_values(x: &Tensor, f: impl Fn(f64) -> f64) -> Result<Tensor> {
    let v: Vec<f64> = x.to_f64_vec().into_iter().map(f).collect();
    Tensor::from_vec(v, x.shape())?.to_dtype(x.dtype())
}

/// `N(mean, std²)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normal {
    /// The mean μ.
    pub mean: f64,
    /// The standard deviation σ > 0.
    pub std: f64,
}

impl Normal {
    /// `N(mean, std²)`; `std` must be finite and positive, `mean` finite.
    pub fn new(mean: f64, std: f64) -> Result<Normal> {
        if !(mean.is_finite() && std.is_finite() && std > 0.0) {
            return Err(invalid(
                "Normal::new",
                format!("expected a finite mean and a finite std > 0, got {mean} and {std}"),
            ));
        }
        Ok(Normal { mean, std })
    }

    /// `log p(x) = −(x − μ)² / (2σ²) − log σ − ½ log 2π`, elementwise (differentiable).
    pub fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        let c = -self.std.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
        x.sub_scalar(self.mean)?
            .square()?
            .mul_scalar(-0.5 / (self.std * self.std))?
            .add_scalar(c)
    }

    /// `p(x) = exp(log p(x))`, elementwise (differentiable).
    pub fn pdf(&self, x: &Tensor) -> Result<Tensor> {
        self.log_prob(x)?.exp()
    }

    /// `P(X ≤ x) = ½ (1 + erf((x − μ) / (σ√2)))`, elementwise, without a graph.
    pub fn cdf(&self, x: &Tensor) -> Result<Tensor> {
        let (m, s) = (self.mean, self.std * std::f64::consts::SQRT_2);
        map_values(x, |v| 0.5 * (1.0 + Float::erf((v - m) / s)))
    }

    /// `shape` samples (`f32`) drawn from `g`.
    pub fn sample(&self, g: &mut Generator, shape: &[usize]) -> Result<Tensor> {
        Tensor::normal_with(g, shape, self.mean, self.std)
    }
}

/// The uniform distribution on `[low, high)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uniform {
    /// The lower end (inclusive).
    pub low: f64,
    /// The upper end (exclusive).
    pub high: f64,
}

impl Uniform {
    /// `U[low, high)`; both finite, `low < high`.
    pub fn new(low: f64, high: f64) -> Result<Uniform> {
        if !(low.is_finite() && high.is_finite() && low < high) {
            return Err(invalid(
                "Uniform::new",
                format!("expected finite low < high, got {low} and {high}"),
            ));
        }
        Ok(Uniform { low, high })
    }

    fn inside(&self, v: f64) -> bool {
        v >= self.low && v < self.high
    }

    /// `−log(high − low)` inside the support, `−∞` outside, elementwise.
    pub fn log_prob(&self, x: &Tensor) -> Result<Tensor> {
        let l = -(self.high - self.low).ln();
        map_values(x, |v| if self.inside(v) { l } else { f64::NEG_INFINITY })
    }

    /// `1 / (high − low)` inside the support, 0 outside, elementwise.
    pub fn pdf(&self, x: &Tensor) -> Result<Tensor> {
        let d = 1.0 / (self.high - self.low);
        map_values(x, |v| if self.inside(v) { d } else { 0.0 })
    }

    /// `clamp((x − low) / (high − low), 0, 1)`, elementwise.
    pub fn cdf(&self, x: &Tensor) -> Result<Tensor> {
        let (a, w) = (self.low, self.high - self.low);
        map_values(x, |v| ((v - a) / w).clamp(0.0, 1.0))
    }

    /// `shape` samples (`f32`) drawn from `g`.
    pub fn sample(&self, g: &mut Generator, shape: &[usize]) -> Result<Tensor> {
        Tensor::uniform_with(g, shape, self.low, self.high)
    }
}
