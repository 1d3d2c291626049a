//! D2L 4.1 and 4.8's points about hidden layers, shown: the activations ReLU, sigmoid and
//! tanh with their derivatives (autograd, plotted); stacked affine layers collapsing to
//! one affine map; a non-monotone, XOR-like set that a linear model cannot fit and an MLP
//! can; the symmetry of a constant initialisation (every hidden unit stays identical
//! through training, so the MLP is no better than one unit) against a random one; and,
//! for `d2l init-demo --activation`, per-layer gradient norms of a deep MLP.

use crate::{check_positive, plot_spec, save_plot, series, Common, ExperimentError, Result};
use d2l_nn::layers::{Linear, ReLU, Sigmoid, Tanh};
use d2l_nn::loss::{binary_cross_entropy_with_logits, Reduction};
use d2l_nn::optim::{Adam, Optimizer};
use d2l_nn::{Module, Sequential};
use d2l_tensor::{no_grad, Generator, Tensor};
use d2l_train::plot::{PlotSpec, Series};
use std::fmt;
use std::path::PathBuf;

/// An activation of this module's experiments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
}

impl Act {
    /// All three, in the book's order.
    pub const ALL: [Act; 3] = [Act::Relu, Act::Sigmoid, Act::Tanh];

    fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Act::Relu => x.relu()?,
            Act::Sigmoid => x.sigmoid()?,
            Act::Tanh => x.tanh()?,
        })
    }

    fn push(self, net: &mut Sequential) {
        match self {
            Act::Relu => net.push(ReLU),
            Act::Sigmoid => net.push(Sigmoid),
            Act::Tanh => net.push(Tanh),
        }
    }
}

impl fmt::Display for Act {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Act::Relu => "relu",
            Act::Sigmoid => "sigmoid",
            Act::Tanh => "tanh",
        })
    }
}

impl std::str::FromStr for Act {
    type Err = ExperimentError;

    /// Parses `relu`, `sigmoid` or `tanh`.
    fn from_str(s: &str) -> Result<Act> {
        match s.trim().to_ascii_lowercase().as_str() {
            "relu" => Ok(Act::Relu),
            "sigmoid" => Ok(Act::Sigmoid),
            "tanh" => Ok(Act::Tanh),
            other => Err(ExperimentError::Invalid(format!(
                "unknown activation `{other}`; expected relu, sigmoid or tanh"
            ))),
        }
    }
}

/// An activation and its derivative on a grid.
#[derive(Debug, Clone)]
pub struct ActCurve {
    /// Which activation.
    pub act: Act,
    /// The inputs.
    pub x: Vec<f64>,
    /// The activation's values.
    pub y: Vec<f64>,
    /// Its derivative, from autograd.
    pub grad: Vec<f64>,
}

/// The activations and their derivatives on `[−8, 8)` in steps of 0.1 (D2L 4.1.2), by
/// autograd; plots `activations` and `activation-grads` into `out_dir` when given.
pub fn activation_curves(
    out_dir: Option<&std::path::Path>,
) -> Result<(Vec<ActCurve>, Vec<PathBuf>)> {
    let mut curves = Vec::new();
    for act in Act::ALL {
        let x = Tensor::arange(-8.0, 8.0, 0.1)?.requires_grad_(true)?;
        let y = act.apply(&x)?;
        y.sum_all()?.backward()?;
        let grad = x
            .grad()
            .ok_or_else(|| ExperimentError::Invalid(format!("{act}: no gradient reached x")))?;
        curves.push(ActCurve {
            act,
            x: x.to_f64_vec(),
            y: y.to_f64_vec(),
            grad: grad.to_f64_vec(),
        });
    }
    let mut plots = Vec::new();
    for (name, title, grads) in [
        ("activations", "4.1 activation functions", false),
        ("activation-grads", "4.1 their derivatives (autograd)", true),
    ] {
        let s: Vec<Series> = curves
            .iter()
            .map(|c| {
                let label = if grads {
                    format!("d {}(x) / dx", c.act)
                } else {
                    format!("{}(x)", c.act)
                };
                series(
                    &label,
                    c.x.clone(),
                    if grads { c.grad.clone() } else { c.y.clone() },
                )
            })
            .collect();
        let spec = plot_spec(title, "x", if grads { "derivative" } else { "activation" });
        plots.extend(save_plot(out_dir, name, &spec, &s, false)?);
    }
    Ok((curves, plots))
}

/// How the deep MLP of [`gradient_norms`] is initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeepInit {
    /// Xavier (Glorot) normal, `N(0, 2 / (n_in + n_out))` (D2L 4.8.2.2).
    Xavier,
    /// He (Kaiming) normal, `N(0, 2 / n_in)`, matched to ReLU.
    He,
}

/// The Frobenius norm of the loss gradient with respect to each layer's weight of a deep
/// MLP `depth` × (`width` → `width`, activation), then `Linear(width, 1)`, on a batch of
/// `N(0, 1)` inputs regressing `N(0, 1)` targets (loss `mean((output − y)²)/2`), biases
/// 0; layer 1 is the one next to the input.
pub fn gradient_norms(
    act: Act,
    init: DeepInit,
    depth: usize,
    width: usize,
    batch: usize,
    g: &mut Generator,
) -> Result<Vec<f64>> {
    check_positive("depth", depth)?;
    check_positive("width", width)?;
    check_positive("batch", batch)?;
    let x = Tensor::randn_with(g, &[batch, width]);
    let y = Tensor::randn_with(g, &[batch, 1]);
    let std = match init {
        DeepInit::Xavier => (2.0 / (2 * width) as f64).sqrt(),
        DeepInit::He => (2.0 / width as f64).sqrt(),
    };
    let mut net = Sequential::new();
    let mut layers = Vec::new();
    for _ in 0..depth {
        let l = Linear::new(width, width)?;
        crate::reinit_normal(&l.weight, 0.0, std, g)?;
        if let Some(b) = &l.bias {
            no_grad(|| b.zero_())?;
        }
        layers.push(l.weight.clone());
        net.push(l);
        act.push(&mut net);
    }
    let head = Linear::new(width, 1)?;
    crate::reinit_normal(&head.weight, 0.0, (1.0 / width as f64).sqrt(), g)?;
    net.push(head);
    let out = net.forward(&x)?;
    let l = out.sub(&y)?.square()?.mean_all()?.mul_scalar(0.5)?;
    l.backward()?;
    layers
        .iter()
        .map(|w| {
            let gr = w
                .grad()
                .ok_or_else(|| ExperimentError::Invalid("no gradient reached a layer".into()))?;
            Ok(gr.square()?.sum_all()?.item_f64()?.sqrt())
        })
        .collect()
}

/// Per-layer gradient norms of a deep MLP for one activation under Xavier and He
/// initialisation, with the all-activation figure.
#[derive(Debug, Clone)]
pub struct GradNorms {
    /// The activation asked for.
    pub act: Act,
    /// Layers, width.
    pub depth: usize,
    /// Width of every hidden layer.
    pub width: usize,
    /// Norms under Xavier initialisation, layer 1 first.
    pub xavier: Vec<f64>,
    /// Norms under He initialisation.
    pub he: Vec<f64>,
    /// Xavier norms of every activation (for the figure), in [`Act::ALL`] order.
    pub all_xavier: Vec<(Act, Vec<f64>)>,
    /// The figure (PNG), when one was drawn.
    pub plot: Option<PathBuf>,
}

impl GradNorms {
    /// First-layer norm over last-layer norm under Xavier (≪ 1: vanishing).
    pub fn xavier_ratio(&self) -> f64 {
        self.xavier[0] / self.xavier[self.xavier.len() - 1]
    }

    /// The same under He initialisation.
    pub fn he_ratio(&self) -> f64 {
        self.he[0] / self.he[self.he.len() - 1]
    }
}

/// [`gradient_norms`] for `act` (Xavier and He) and the figure of all three activations
/// (Xavier), `grad-norms.png`.
pub fn grad_norm_comparison(
    act: Act,
    depth: usize,
    width: usize,
    seed: u64,
    out_dir: Option<&std::path::Path>,
) -> Result<GradNorms> {
    let run = |a: Act, init: DeepInit| {
        let mut g = Generator::new(seed);
        gradient_norms(a, init, depth, width, 256, &mut g)
    };
    let xavier = run(act, DeepInit::Xavier)?;
    let he = run(act, DeepInit::He)?;
    let mut all_xavier = Vec::new();
    for a in Act::ALL {
        all_xavier.push((
            a,
            if a == act {
                xavier.clone()
            } else {
                run(a, DeepInit::Xavier)?
            },
        ));
    }
    let layers: Vec<f64> = (1..=depth).map(|l| l as f64).collect();
    let mut s: Vec<Series> = all_xavier
        .iter()
        .map(|(a, v)| series(&format!("{a}, Xavier"), layers.clone(), v.clone()))
        .collect();
    s.push(series(&format!("{act}, He"), layers, he.clone()));
    let spec = PlotSpec {
        log_y: true,
        ..plot_spec(
            format!("4.8 gradient norm per layer ({depth} x {width} MLP)"),
            "layer (1 = next to the input)",
            "||dL/dW||",
        )
    };
    let plot = save_plot(out_dir, "grad-norms", &spec, &s, false)?;
    Ok(GradNorms {
        act,
        depth,
        width,
        xavier,
        he,
        all_xavier,
        plot,
    })
}

impl fmt::Display for GradNorms {
    /// The per-layer table and the first/last ratios.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "gradient norm ||dL/dW|| per layer of a {} x {} MLP with {} (layer 1 next to the input):",
            self.depth, self.width, self.act
        )?;
        writeln!(f, "  {:>5}  {:>12}  {:>12}", "layer", "Xavier", "He")?;
        let n = self.depth;
        let mut shown: Vec<usize> = vec![1, 2, 3];
        shown.extend((5..=n).step_by(5));
        shown.push(n);
        shown.retain(|&l| l <= n);
        shown.sort_unstable();
        shown.dedup();
        for l in shown {
            writeln!(
                f,
                "  {:>5}  {:>12.4e}  {:>12.4e}",
                l,
                self.xavier[l - 1],
                self.he[l - 1]
            )?;
        }
        writeln!(
            f,
            "  layer 1 / layer {n}: Xavier {:.3e}, He {:.3e}",
            self.xavier_ratio(),
            self.he_ratio()
        )?;
        let others: Vec<String> = self
            .all_xavier
            .iter()
            .map(|(a, v)| format!("{a} {:.3e}", v[0] / v[v.len() - 1]))
            .collect();
        write!(
            f,
            "  layer 1 / layer {n} under Xavier: {}",
            others.join(", ")
        )?;
        if let Some(p) = &self.plot {
            write!(f, "\n  plot: {}", p.display())?;
        }
        Ok(())
    }
}

/// Settings of [`run_mlp_basics`].
#[derive(Debug, Clone)]
pub struct MlpBasicsOptions {
    /// Points of the XOR-like set (400).
    pub n: usize,
    /// Hidden units of the MLPs (8).
    pub hidden: usize,
    /// Full-batch Adam steps (500).
    pub steps: usize,
    /// Adam's learning rate (0.05).
    pub lr: f64,
    /// The settings every experiment has ([`Common`]): the seed of every draw; the folder
    /// for the plots; `quiet`.
    pub common: Common,
}

impl Default for MlpBasicsOptions {
    fn default() -> Self {
        MlpBasicsOptions {
            n: 400,
            hidden: 8,
            steps: 500,
            lr: 0.05,
            common: Common::default(),
        }
    }
}

/// One model fitted to the XOR-like set.
#[derive(Debug, Clone)]
pub struct XorFit {
    /// What it is.
    pub name: String,
    /// Training accuracy.
    pub train_acc: f64,
    /// Accuracy on a fresh sample of the same size.
    pub test_acc: f64,
    /// The largest difference between two hidden units' incoming weights and biases after
    /// training (0 for a linear model).
    pub unit_spread: f64,
}

/// What [`run_mlp_basics`] returns.
#[derive(Debug, Clone)]
pub struct MlpBasicsResults {
    /// The activations and their derivatives.
    pub curves: Vec<ActCurve>,
    /// `max |stack(x) − collapsed(x)|` for three stacked affine layers and the one affine
    /// map `W₃W₂W₁x + (W₃W₂b₁ + W₃b₂ + b₃)`.
    pub collapse_error: f64,
    /// The fits to the XOR-like set: logistic regression, three stacked affine layers, an
    /// MLP with a constant initialisation, the same MLP with a random one.
    pub fits: Vec<XorFit>,
    /// The plots written.
    pub plots: Vec<PathBuf>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl MlpBasicsResults {
    /// The fit called `name`.
    pub fn fit(&self, name: &str) -> Option<&XorFit> {
        self.fits.iter().find(|f| f.name == name)
    }
}

/// The XOR-like set: four Gaussian blobs (σ = 0.35) at `(±1, ±1)`, label 1 where
/// `x₁·x₂ > 0` at the blob's centre.
fn xor_set(n: usize, g: &mut Generator) -> Result<(Tensor, Tensor, Vec<f32>, Vec<f64>)> {
    let mut x = Vec::with_capacity(2 * n);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let (a, b) = match i % 4 {
            0 => (1.0, 1.0),
            1 => (-1.0, -1.0),
            2 => (1.0, -1.0),
            _ => (-1.0, 1.0),
        };
        x.push(a + 0.35 * g.normal_f64());
        x.push(b + 0.35 * g.normal_f64());
        y.push(((a * b) > 0.0) as u8 as f32);
    }
    let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    Ok((
        Tensor::from_vec(xf, &[n, 2])?,
        Tensor::from_vec(y.clone(), &[n, 1])?,
        y,
        x,
    ))
}

fn acc_of(net: &dyn Module, x: &Tensor, y: &[f32]) -> Result<f64> {
    let z = no_grad(|| Ok::<_, ExperimentError>(net.forward(x)?.to_f64_vec()))?;
    let hits = z
        .iter()
        .zip(y)
        .filter(|(&z, &y)| (z > 0.0) == (y > 0.5))
        .count();
    Ok(hits as f64 / y.len().max(1) as f64)
}

/// Runs the 4.1 / 4.8 points: activation curves, affine collapse, the XOR-like set and the
/// symmetry of constant initialisation.
pub fn run_mlp_basics(opts: &MlpBasicsOptions) -> Result<MlpBasicsResults> {
    check_positive("n", opts.n)?;
    check_positive("hidden", opts.hidden)?;
    check_positive("steps", opts.steps)?;
    crate::check_rate("lr", opts.lr)?;
    if opts.hidden < 2 {
        return Err(ExperimentError::Invalid(
            "hidden must be at least 2 to compare hidden units".into(),
        ));
    }
    let start = std::time::Instant::now();
    let mut g = Generator::new(opts.common.seed);
    let (curves, mut plots) = activation_curves(opts.common.dir())?;

    // Stacked affine layers: Linear(2, 8) → Linear(8, 8) → Linear(8, 1), no activation.
    let stack: Vec<Linear> = [(2, 8), (8, 8), (8, 1)]
        .iter()
        .map(|&(i, o)| -> Result<Linear> {
            let l = Linear::new(i, o)?;
            let bound = 1.0 / (i as f64).sqrt();
            crate::reinit_uniform(&l.weight, bound, &mut g)?;
            if let Some(b) = &l.bias {
                crate::reinit_uniform(b, bound, &mut g)?;
            }
            Ok(l)
        })
        .collect::<Result<_>>()?;
    let (xs, ys, yv, xraw) = xor_set(opts.n, &mut g)?;
    let (xt, _, ytv, _) = xor_set(opts.n, &mut g)?;
    let collapse_error = no_grad(|| -> Result<f64> {
        let mut h = xs.clone();
        for l in &stack {
            h = l.forward(&h)?;
        }
        // W = W₃W₂W₁ (weights are [out, in]), b = W₃(W₂b₁ + b₂) + b₃.
        let (w1, w2, w3) = (&stack[0].weight, &stack[1].weight, &stack[2].weight);
        let bias = |l: &Linear| l.bias.clone().expect("Linear::new has a bias");
        let w = w3.matmul(w2)?.matmul(w1)?;
        let b = w3
            .matmul(
                &w2.matmul(&bias(&stack[0]).reshape([8, 1])?)?
                    .add(&bias(&stack[1]).reshape([8, 1])?)?,
            )?
            .reshape([1])?
            .add(&bias(&stack[2]))?;
        let one = xs.matmul(&w.transpose(0, 1)?)?.add(&b)?;
        Ok(h.sub(&one)?.abs()?.max_all()?.item_f64()?)
    })?;

    let mut fits = Vec::new();
    let mut train = |name: &str, net: &Sequential, first: Option<&Linear>| -> Result<()> {
        let mut opt = Adam::new(net.parameters(), opts.lr)?;
        for _ in 0..opts.steps {
            let l =
                binary_cross_entropy_with_logits(&net.forward(&xs)?, &ys, None, Reduction::Mean)?;
            opt.zero_grad();
            l.backward()?;
            opt.step()?;
        }
        let unit_spread = match first {
            Some(l) => {
                let w = l.weight.to_f64_vec();
                let b = l.bias.as_ref().map(|b| b.to_f64_vec()).unwrap_or_default();
                let d = l.weight.shape()[1];
                let mut spread = 0.0f64;
                for u in 1..l.weight.shape()[0] {
                    for k in 0..d {
                        spread = spread.max((w[u * d + k] - w[k]).abs());
                    }
                    if !b.is_empty() {
                        spread = spread.max((b[u] - b[0]).abs());
                    }
                }
                spread
            }
            None => 0.0,
        };
        let fit = XorFit {
            name: name.into(),
            train_acc: acc_of(net, &xs, &yv)?,
            test_acc: acc_of(net, &xt, &ytv)?,
            unit_spread,
        };
        opts.common
            .progress(|| format!("mlp-demo: {name}: train acc {:.3}", fit.train_acc));
        fits.push(fit);
        Ok(())
    };
    let lin = Linear::new(2, 1)?;
    crate::reinit_normal(&lin.weight, 0.0, 0.01, &mut g)?;
    train("logistic regression", &Sequential::new().add(lin), None)?;
    let stacked = Sequential::new()
        .add(Linear::new(2, opts.hidden)?)
        .add(Linear::new(opts.hidden, opts.hidden)?)
        .add(Linear::new(opts.hidden, 1)?);
    for p in stacked.parameters() {
        crate::reinit_uniform(&p, 0.5, &mut g)?;
    }
    train("3 stacked affine layers", &stacked, None)?;
    for constant in [true, false] {
        let l1 = Linear::new(2, opts.hidden)?;
        let l2 = Linear::new(opts.hidden, 1)?;
        for p in [
            &l1.weight,
            l1.bias.as_ref().expect("bias"),
            &l2.weight,
            l2.bias.as_ref().expect("bias"),
        ] {
            if constant {
                d2l_nn::init::constant_(p, 0.5)?;
            } else {
                crate::reinit_uniform(p, 1.0, &mut g)?;
            }
        }
        let first = Linear {
            weight: l1.weight.clone(),
            bias: l1.bias.clone(),
        };
        let net = Sequential::new().add(l1).add(Tanh).add(l2);
        let name = if constant {
            "MLP, constant init 0.5"
        } else {
            "MLP, random init"
        };
        train(name, &net, Some(&first))?;
    }

    // The XOR-like set, by class.
    let pick = |c: f32| -> (Vec<f64>, Vec<f64>) {
        yv.iter()
            .enumerate()
            .filter(|(_, &y)| y == c)
            .map(|(i, _)| (xraw[2 * i], xraw[2 * i + 1]))
            .unzip()
    };
    let (ax, ay) = pick(0.0);
    let (bx, by) = pick(1.0);
    let spec = plot_spec(
        "4.1 an XOR-like set: no line separates the classes",
        "x1",
        "x2",
    );
    plots.extend(save_plot(
        opts.common.dir(),
        "xor-set",
        &spec,
        &[series("y = 0", ax, ay), series("y = 1", bx, by)],
        true,
    )?);
    Ok(MlpBasicsResults {
        curves,
        collapse_error,
        fits,
        plots,
        seconds: start.elapsed().as_secs_f64(),
    })
}

impl fmt::Display for MlpBasicsResults {
    /// The activation summary, the collapse error and the fit table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "D2L 4.1 / 4.8: hidden layers, activations, symmetry")?;
        for c in &self.curves {
            let at = |v: f64| {
                let i = c.x.iter().position(|&x| (x - v).abs() < 1e-6).unwrap_or(0);
                (c.y[i], c.grad[i])
            };
            let (y0, g0) = at(0.0);
            let (_, g2) = at(2.0);
            let (_, gm2) = at(-2.0);
            writeln!(
                f,
                "  {:<7} f(0) = {y0:.3}, f'(0) = {g0:.3}, f'(2) = {g2:.4}, f'(−2) = {gm2:.4}, max f' = {:.3}",
                c.act.to_string(),
                c.grad.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
            )?;
        }
        writeln!(
            f,
            "three stacked affine layers equal one affine map: max |difference| = {:.2e}",
            self.collapse_error
        )?;
        writeln!(
            f,
            "the XOR-like set (4 blobs at (±1, ±1), y = 1 where x1·x2 > 0):"
        )?;
        writeln!(
            f,
            "  {:<26} {:>9} {:>9} {:>22}",
            "model", "train acc", "test acc", "hidden units differ by"
        )?;
        for r in &self.fits {
            writeln!(
                f,
                "  {:<26} {:>9.3} {:>9.3} {:>22}",
                r.name,
                r.train_acc,
                r.test_acc,
                if r.name.starts_with("MLP") {
                    format!("{:.2e}", r.unit_spread)
                } else {
                    "—".into()
                }
            )?;
        }
        for p in &self.plots {
            writeln!(f, "plot: {}", p.display())?;
        }
        write!(f, "({:.1} s)", self.seconds)
    }
}
