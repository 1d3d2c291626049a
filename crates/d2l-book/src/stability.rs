//! D2L 4.8 (numerical stability and initialisation): the sigmoid's vanishing gradient
//! (computed by autograd and plotted), the product of 100 random 4×4 Gaussian matrices
//! exploding, and the per-layer activation and gradient spread through a deep MLP
//! initialised `N(0, 1)` versus Xavier (4.8.2.2), the `d2l init-demo` table.

use crate::{check_positive, plot_spec, Common, ExperimentError, Result};
use d2l_tensor::{DType, Generator, Tensor};
use d2l_train::plot::{PlotSpec, Series};
use std::fmt;
use std::path::PathBuf;

/// The nonlinearity between the deep MLP's layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None (a deep linear network): Xavier's derivation holds exactly.
    Identity,
    /// `tanh`, the activation Xavier initialisation was designed for.
    Tanh,
    /// `ReLU` (halves the variance per layer under Xavier; He init corrects it).
    Relu,
    /// The logistic sigmoid (its slope of at most 1/4 shrinks gradients layer by layer).
    Sigmoid,
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Activation::Identity => "identity",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
        })
    }
}

impl std::str::FromStr for Activation {
    type Err = ExperimentError;

    /// Parses `identity` (or `linear`, `none`), `tanh`, `relu` or `sigmoid`.
    fn from_str(s: &str) -> Result<Activation> {
        match s.trim().to_ascii_lowercase().as_str() {
            "identity" | "linear" | "none" => Ok(Activation::Identity),
            "tanh" => Ok(Activation::Tanh),
            "relu" => Ok(Activation::Relu),
            "sigmoid" => Ok(Activation::Sigmoid),
            other => Err(ExperimentError::Invalid(format!(
                "unknown activation `{other}`; expected identity, tanh, relu or sigmoid"
            ))),
        }
    }
}

/// Settings of [`run_stability`].
#[derive(Debug, Clone)]
pub struct StabilityOptions {
    /// The sigmoid is evaluated on `[−range, range)` in steps of 0.1 (the book: 8).
    pub sigmoid_range: f64,
    /// How many random 4×4 matrices multiply the first one (the book: 100).
    pub num_matrices: usize,
    /// The deep MLP's number of layers (50).
    pub depth: usize,
    /// The deep MLP's width, every layer `width × width` (256).
    pub width: usize,
    /// Inputs pushed through the MLP, each `N(0, 1)` (256).
    pub batch: usize,
    /// The nonlinearity between layers ([`Activation::Identity`]).
    pub activation: Activation,
    /// The settings every experiment has ([`Common`]): the seed of every random draw; the
    /// folder for `sigmoid-grad.png` and `init-std.png` (+ `.svg`); `quiet`.
    pub common: Common,
}

impl Default for StabilityOptions {
    fn default() -> Self {
        StabilityOptions {
            sigmoid_range: 8.0,
            num_matrices: 100,
            depth: 50,
            width: 256,
            batch: 256,
            activation: Activation::Identity,
            common: Common::default(),
        }
    }
}

/// The sigmoid and its gradient on a grid (4.8.1.1).
#[derive(Debug, Clone)]
pub struct SigmoidCurve {
    /// The inputs.
    pub x: Vec<f64>,
    /// `sigmoid(x)`.
    pub y: Vec<f64>,
    /// `d sigmoid / dx`, from autograd.
    pub grad: Vec<f64>,
    /// The plot (PNG), when one was drawn.
    pub plot: Option<PathBuf>,
}

impl SigmoidCurve {
    /// The largest gradient (0.25, at x = 0).
    pub fn max_grad(&self) -> f64 {
        self.grad.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
    }

    /// The gradient at the grid's two ends (both ≈ 3e-4 for ±8).
    pub fn edge_grads(&self) -> (f64, f64) {
        (
            *self.grad.first().unwrap_or(&f64::NAN),
            *self.grad.last().unwrap_or(&f64::NAN),
        )
    }
}

/// The product of random matrices (4.8.1.2).
#[derive(Debug, Clone)]
pub struct MatrixProduct {
    /// The first matrix, row-major 4×4.
    pub first: Vec<f64>,
    /// The product after all multiplications, row-major 4×4.
    pub product: Vec<f64>,
    /// How many matrices were multiplied onto the first.
    pub num_matrices: usize,
    /// The largest absolute entry of the product.
    pub max_abs: f64,
}

/// Per-layer spread of a deep MLP under one initialisation.
#[derive(Debug, Clone)]
pub struct LayerStats {
    /// The standard deviation of each layer's output over the batch and units.
    pub activation_std: Vec<f64>,
    /// The standard deviation of the gradient of `sum(output)` with respect to each
    /// layer's weight.
    pub weight_grad_std: Vec<f64>,
}

/// The deep-MLP comparison (4.8.2.2).
#[derive(Debug, Clone)]
pub struct InitComparison {
    /// The number of layers.
    pub depth: usize,
    /// The width of every layer.
    pub width: usize,
    /// The activation between layers.
    pub activation: Activation,
    /// The standard deviation of the inputs.
    pub input_std: f64,
    /// Weights `N(0, 1)`.
    pub normal: LayerStats,
    /// Xavier uniform weights, `U(±√(6 / (n_in + n_out)))`.
    pub xavier: LayerStats,
    /// The activation-std plot (PNG, log scale), when one was drawn.
    pub plot: Option<PathBuf>,
}

impl InitComparison {
    /// Last-layer activation std over the input std, for `N(0, 1)` and Xavier.
    pub fn growth(&self) -> (f64, f64) {
        let last = |s: &LayerStats| s.activation_std.last().copied().unwrap_or(f64::NAN);
        (
            last(&self.normal) / self.input_std,
            last(&self.xavier) / self.input_std,
        )
    }
}

/// What [`run_stability`] returns.
#[derive(Debug, Clone)]
pub struct StabilityResults {
    /// The sigmoid and its gradient.
    pub sigmoid: SigmoidCurve,
    /// The exploding product.
    pub product: MatrixProduct,
    /// `N(0, 1)` versus Xavier through a deep MLP.
    pub init: InitComparison,
    /// Wall-clock seconds of the whole experiment.
    pub seconds: f64,
}

/// Runs all three demonstrations of D2L 4.8.
pub fn run_stability(opts: &StabilityOptions) -> Result<StabilityResults> {
    let start = std::time::Instant::now();
    let mut g = Generator::new(opts.common.seed);
    let sigmoid = sigmoid_gradient(opts)?;
    let product = matrix_product(opts.num_matrices, &mut g)?;
    let init = init_comparison(opts, &mut g)?;
    Ok(StabilityResults {
        sigmoid,
        product,
        init,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// 4.8.1.1: `x = arange(−8, 8, 0.1)`, `y = sigmoid(x)`, `y.backward(ones)`; plots both.
pub fn sigmoid_gradient(opts: &StabilityOptions) -> Result<SigmoidCurve> {
    let r = opts.sigmoid_range;
    if !(r.is_finite() && r > 0.0) {
        return Err(ExperimentError::Invalid(format!(
            "sigmoid_range must be finite and > 0, got {r}"
        )));
    }
    let x = Tensor::arange(-r, r, 0.1)?.requires_grad_(true)?;
    let y = x.sigmoid()?;
    y.sum_all()?.backward()?;
    let grad = x
        .grad()
        .ok_or_else(|| ExperimentError::Invalid("sigmoid: no gradient reached x".into()))?;
    let (xs, ys, gs) = (x.to_f64_vec(), y.to_f64_vec(), grad.to_f64_vec());
    let spec = plot_spec("4.8 sigmoid and its gradient", "x", "");
    let series = [
        Series {
            label: "sigmoid".into(),
            x: xs.clone(),
            y: ys.clone(),
        },
        Series {
            label: "gradient".into(),
            x: xs.clone(),
            y: gs.clone(),
        },
    ];
    let plot = opts.common.line_plot("sigmoid-grad", &spec, &series)?;
    Ok(SigmoidCurve {
        x: xs,
        y: ys,
        grad: gs,
        plot,
    })
}

/// 4.8.1.2: `M = normal(0, 1, (4, 4))`, then `M = M @ normal(0, 1, (4, 4))` `n` times (in
/// `f32`, as the book).
pub fn matrix_product(n: usize, g: &mut Generator) -> Result<MatrixProduct> {
    let first = Tensor::randn_with(g, &[4, 4]);
    let mut m = first.clone();
    for _ in 0..n {
        m = m.matmul(&Tensor::randn_with(g, &[4, 4]))?;
    }
    let product = m.to_f64_vec();
    let max_abs = product.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    Ok(MatrixProduct {
        first: first.to_f64_vec(),
        product,
        num_matrices: n,
        max_abs,
    })
}

/// 4.8.2.2: pushes a batch of `N(0, 1)` inputs through `depth` bias-free `width × width`
/// layers, weights either `N(0, 1)` or Xavier uniform, and measures each layer's output std
/// and weight-gradient std (of `sum(output)`). Runs in `f64`, so the `N(0, 1)` network's
/// `√width`-per-layer growth is shown rather than overflowing.
pub fn init_comparison(opts: &StabilityOptions, g: &mut Generator) -> Result<InitComparison> {
    check_positive("depth", opts.depth)?;
    check_positive("width", opts.width)?;
    check_positive("batch", opts.batch)?;
    let (w, n) = (opts.width, opts.depth);
    let x = Tensor::randn_with(g, &[opts.batch, w]).to_dtype(DType::F64)?;
    let input_std = std_all(&x)?;
    let xavier_a = (6.0 / (2 * w) as f64).sqrt();
    let mut stats = Vec::new();
    for xavier in [false, true] {
        let weights: Vec<Tensor> = (0..n)
            .map(|_| -> Result<Tensor> {
                let t = if xavier {
                    Tensor::uniform_with(g, &[w, w], -xavier_a, xavier_a)?
                } else {
                    Tensor::randn_with(g, &[w, w])
                };
                Ok(t.to_dtype(DType::F64)?.requires_grad_(true)?)
            })
            .collect::<Result<_>>()?;
        let mut h = x.clone();
        let mut act_std = Vec::with_capacity(n);
        for wt in &weights {
            h = h.matmul(wt)?;
            h = match opts.activation {
                Activation::Identity => h,
                Activation::Tanh => h.tanh()?,
                Activation::Relu => h.relu()?,
                Activation::Sigmoid => h.sigmoid()?,
            };
            act_std.push(std_all(&h.detach())?);
        }
        h.sum_all()?.backward()?;
        let grad_std = weights
            .iter()
            .map(|wt| match wt.grad() {
                Some(gr) => std_all(&gr),
                None => Ok(0.0),
            })
            .collect::<Result<Vec<f64>>>()?;
        opts.common.progress(|| {
            format!(
                "init {}: last-layer activation std {:.3e}",
                if xavier { "xavier" } else { "N(0, 1)" },
                act_std.last().copied().unwrap_or(f64::NAN)
            )
        });
        stats.push(LayerStats {
            activation_std: act_std,
            weight_grad_std: grad_std,
        });
    }
    let xavier = stats.pop().expect("two runs");
    let normal = stats.pop().expect("two runs");
    let layers: Vec<f64> = (1..=n).map(|l| l as f64).collect();
    let spec = PlotSpec {
        log_y: true,
        ..plot_spec(
            format!(
                "4.8 activation std per layer ({} x {w}, {})",
                n, opts.activation
            ),
            "layer",
            "std of the layer's output",
        )
    };
    let series = [
        Series {
            label: "N(0, 1)".into(),
            x: layers.clone(),
            y: normal.activation_std.clone(),
        },
        Series {
            label: "Xavier".into(),
            x: layers,
            y: xavier.activation_std.clone(),
        },
    ];
    let plot = opts.common.line_plot("init-std", &spec, &series)?;
    Ok(InitComparison {
        depth: n,
        width: w,
        activation: opts.activation,
        input_std,
        normal,
        xavier,
        plot,
    })
}

/// The (biased) standard deviation of all elements.
fn std_all(t: &Tensor) -> Result<f64> {
    Ok(t.reshape(&[t.numel()][..])?
        .std(&[0], false, false)?
        .item_f64()?)
}

fn fmt_matrix(f: &mut fmt::Formatter<'_>, m: &[f64], sci: bool) -> fmt::Result {
    for (i, row) in m.chunks(4).enumerate() {
        let items: Vec<String> = row
            .iter()
            .map(|v| {
                if sci {
                    format!("{v:>12.4e}")
                } else {
                    format!("{v:>8.4}")
                }
            })
            .collect();
        let (open, close) = match i {
            0 => ("[[", "],"),
            3 => (" [", "]]"),
            _ => (" [", "],"),
        };
        writeln!(f, "  {open}{}{close}", items.join(", "))?;
    }
    Ok(())
}

impl fmt::Display for StabilityResults {
    /// The book's two printouts (a single matrix, the matrix after multiplying 100
    /// matrices), the sigmoid gradient's range, and the per-layer std table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.sigmoid;
        let (lo, hi) = s.edge_grads();
        writeln!(f, "D2L 4.8 numerical stability")?;
        writeln!(
            f,
            "sigmoid gradient (autograd) on [{:.1}, {:.1}]: max {:.4} at 0, {:.2e} / {:.2e} at the ends",
            s.x.first().copied().unwrap_or(f64::NAN),
            s.x.last().copied().unwrap_or(f64::NAN),
            s.max_grad(),
            lo,
            hi
        )?;
        if let Some(p) = &s.plot {
            writeln!(f, "  plot: {}", p.display())?;
        }
        writeln!(f, "a single matrix")?;
        fmt_matrix(f, &self.product.first, false)?;
        writeln!(
            f,
            "after multiplying {} matrices (largest |entry| {:.3e}; book: about 1e26)",
            self.product.num_matrices, self.product.max_abs
        )?;
        fmt_matrix(f, &self.product.product, true)?;
        let c = &self.init;
        let (gn, gx) = c.growth();
        writeln!(
            f,
            "deep MLP, {} layers of {} × {}, activation {}, input std {:.3}:",
            c.depth, c.width, c.width, c.activation, c.input_std
        )?;
        writeln!(
            f,
            "  {:>5}  {:>12}  {:>12}  {:>14}  {:>14}",
            "layer", "std N(0,1)", "std Xavier", "grad std N(0,1)", "grad std Xavier"
        )?;
        let n = c.depth;
        let mut shown: Vec<usize> = vec![1, 2, 3];
        shown.extend((5..=n).step_by(5));
        shown.push(n);
        shown.retain(|&l| l <= n);
        shown.dedup();
        for l in shown {
            writeln!(
                f,
                "  {:>5}  {:>12.4e}  {:>12.4e}  {:>14.4e}  {:>14.4e}",
                l,
                c.normal.activation_std[l - 1],
                c.xavier.activation_std[l - 1],
                c.normal.weight_grad_std[l - 1],
                c.xavier.weight_grad_std[l - 1]
            )?;
        }
        writeln!(
            f,
            "  output std / input std: N(0,1) {gn:.3e}, Xavier {gx:.3}"
        )?;
        if let Some(p) = &c.plot {
            writeln!(f, "  plot: {}", p.display())?;
        }
        write!(f, "({:.1} s)", self.seconds)
    }
}
