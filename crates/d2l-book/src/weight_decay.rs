//! D2L 4.5 (weight decay): high-dimensional linear regression with 20 training examples
//! and 200 inputs, `y = 0.05 + Σᵢ 0.01·xᵢ + ε`, trained from scratch with an L2 penalty
//! `λ‖w‖²/2` and concisely with SGD's `weight_decay` on the weight only (parameter
//! groups), for λ = 0 (overfits) and λ = 3.

use crate::{
    check_non_negative, check_positive, check_rate, curve_series, minibatches, mse_of, plot_spec,
    reinit_normal, rows, Common, LossPoint, Result,
};
use d2l_data::synthetic::synthetic_data;
use d2l_nn::layers::Linear;
use d2l_nn::loss::{mse_loss_with, Reduction};
use d2l_nn::optim::{Optimizer, ParamGroup, Sgd, SgdConfig};
use d2l_nn::Module;
use d2l_tensor::{no_grad, Generator, Tensor};
use d2l_train::plot::PlotSpec;
use std::fmt;
use std::path::PathBuf;

/// Which implementation of 4.5 a run used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WdVariant {
    /// 4.5.3: `linreg`, `squared_loss` (with ½) plus `λ·l2_penalty(w)`, and the book's
    /// `sgd` updating `w` and `b` by hand.
    Scratch,
    /// 4.5.4: `nn.Linear(200, 1)`, `MSELoss` (no ½) and `optim.SGD` with two parameter
    /// groups, weight decay on the weight only.
    Concise,
}

impl fmt::Display for WdVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WdVariant::Scratch => "scratch",
            WdVariant::Concise => "concise",
        })
    }
}

/// Settings of [`run_weight_decay`]; the defaults are the book's.
#[derive(Debug, Clone)]
pub struct WeightDecayOptions {
    /// Training examples (20).
    pub n_train: usize,
    /// Test examples (100).
    pub n_test: usize,
    /// Input dimension (200).
    pub num_inputs: usize,
    /// Minibatch size (5).
    pub batch_size: usize,
    /// Learning rate (0.003).
    pub lr: f64,
    /// Epochs (100).
    pub epochs: usize,
    /// The penalties λ (weight decays) to compare (`[0, 3]`).
    pub lambdas: Vec<f64>,
    /// Which implementations to run (both).
    pub variants: Vec<WdVariant>,
    /// Record the losses every this many epochs (5, as the book's plot).
    pub eval_every: usize,
    /// The settings every experiment has ([`Common`]): the seed of the data, the
    /// initialisation and the shuffling; the folder for
    /// `weight-decay-<variant>-lambda<λ>.png/.svg`; `quiet`.
    pub common: Common,
}

impl Default for WeightDecayOptions {
    fn default() -> Self {
        WeightDecayOptions {
            n_train: 20,
            n_test: 100,
            num_inputs: 200,
            batch_size: 5,
            lr: 0.003,
            epochs: 100,
            lambdas: vec![0.0, 3.0],
            variants: vec![WdVariant::Scratch, WdVariant::Concise],
            eval_every: 5,
            common: Common::default(),
        }
    }
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct WdRun {
    /// Scratch or concise.
    pub variant: WdVariant,
    /// The penalty λ (the weight decay).
    pub lambda: f64,
    /// The L2 norm of the learned weight, ‖w‖₂.
    pub w_norm: f64,
    /// Final training loss (scratch: squared loss with ½; concise: MSE), without the penalty.
    pub train_loss: f64,
    /// Final test loss, same loss.
    pub test_loss: f64,
    /// The losses every `eval_every` epochs.
    pub curve: Vec<LossPoint>,
    /// The loss plot (PNG), when one was drawn.
    pub plot: Option<PathBuf>,
}

/// What [`run_weight_decay`] returns.
#[derive(Debug, Clone)]
pub struct WeightDecayResults {
    /// The options' sizes, for the printout: (n_train, n_test, num_inputs, epochs).
    pub sizes: (usize, usize, usize, usize),
    /// One run per variant and λ, variant by variant.
    pub runs: Vec<WdRun>,
    /// Wall-clock seconds of the whole experiment.
    pub seconds: f64,
}

impl WeightDecayResults {
    /// The run of `variant` with penalty `lambda`.
    pub fn run(&self, variant: WdVariant, lambda: f64) -> Option<&WdRun> {
        self.runs
            .iter()
            .find(|r| r.variant == variant && r.lambda == lambda)
    }
}

/// The book's results (D2L 4.5 PyTorch notebook): (‖w‖, final train loss, final test loss)
/// for λ = 0 and 3; `NaN` where the book's plot does not show a value.
pub fn book_reference(variant: WdVariant, lambda: f64) -> Option<(f64, f64, f64)> {
    match (variant, lambda) {
        (WdVariant::Scratch, 0.0) => Some((12.963, 5e-6, 98.0)),
        (WdVariant::Scratch, 3.0) => Some((0.3557, 7e-4, 0.080)),
        (WdVariant::Concise, 0.0) => Some((13.728, f64::NAN, 209.0)),
        (WdVariant::Concise, 3.0) => Some((0.3891, 5.7e-4, 0.185)),
        _ => None,
    }
}

/// `y = x·w + b` with the scratch parameters (the book's `linreg`), as a module so the
/// shared evaluation helper can run it.
struct LinReg {
    w: Tensor,
    b: Tensor,
}

impl Module for LinReg {
    fn forward(&self, x: &Tensor) -> d2l_nn::Result<Tensor> {
        x.matmul(&self.w)?.add(&self.b)
    }
}

/// Runs D2L 4.5: one data set (`synthetic_data` with `w = 0.01·1`, `b = 0.05`, separate
/// draws for train and test), then for each variant and λ a fresh model initialised
/// `N(0, 1)`, trained by minibatch SGD.
pub fn run_weight_decay(opts: &WeightDecayOptions) -> Result<WeightDecayResults> {
    check_positive("n_train", opts.n_train)?;
    check_positive("n_test", opts.n_test)?;
    check_positive("num_inputs", opts.num_inputs)?;
    check_positive("batch_size", opts.batch_size)?;
    check_positive("epochs", opts.epochs)?;
    check_positive("eval_every", opts.eval_every)?;
    check_rate("lr", opts.lr)?;
    for &l in &opts.lambdas {
        check_non_negative("weight decay λ", l)?;
    }
    let start = std::time::Instant::now();
    let mut g = Generator::new(opts.common.seed);
    let true_w = Tensor::full(&[opts.num_inputs, 1], 0.01);
    let (xtr, ytr) = synthetic_data(&true_w, 0.05, opts.n_train, &mut g)?;
    let (xte, yte) = synthetic_data(&true_w, 0.05, opts.n_test, &mut g)?;
    let data = Data { xtr, ytr, xte, yte };
    let mut runs = Vec::new();
    for &variant in &opts.variants {
        for &lambda in &opts.lambdas {
            let run = match variant {
                WdVariant::Scratch => train_scratch(opts, &data, lambda, &mut g)?,
                WdVariant::Concise => train_concise(opts, &data, lambda, &mut g)?,
            };
            let (curve, w_norm, train_loss, test_loss) = run;
            opts.common.progress(|| {
                format!(
                    "weight decay {variant} λ = {lambda}: ‖w‖ = {w_norm:.4}, train {train_loss:.3e}, test {test_loss:.4}"
                )
            });
            let spec = PlotSpec {
                log_y: true,
                xlim: Some((5.0, opts.epochs as f64)),
                ..plot_spec(
                    format!("4.5 {variant}, lambda = {lambda}"),
                    "epochs",
                    "loss",
                )
            };
            let plot = opts.common.line_plot(
                &format!("weight-decay-{variant}-lambda{lambda}"),
                &spec,
                &curve_series(&curve, "train", "test"),
            )?;
            runs.push(WdRun {
                variant,
                lambda,
                w_norm,
                train_loss,
                test_loss,
                curve,
                plot,
            });
        }
    }
    Ok(WeightDecayResults {
        sizes: (opts.n_train, opts.n_test, opts.num_inputs, opts.epochs),
        runs,
        seconds: start.elapsed().as_secs_f64(),
    })
}

struct Data {
    xtr: Tensor,
    ytr: Tensor,
    xte: Tensor,
    yte: Tensor,
}

/// (curve, ‖w‖, final train loss, final test loss)
type RunOut = (Vec<LossPoint>, f64, f64, f64);

fn train_scratch(
    opts: &WeightDecayOptions,
    d: &Data,
    lambda: f64,
    g: &mut Generator,
) -> Result<RunOut> {
    // init_params: w ~ N(0, 1) of shape (num_inputs, 1), b = 0.
    let w = Tensor::randn_with(g, &[opts.num_inputs, 1]).requires_grad_(true)?;
    let b = Tensor::zeros(&[1]).requires_grad_(true)?;
    let net = LinReg {
        w: w.clone(),
        b: b.clone(),
    };
    let mut curve = Vec::new();
    for epoch in 0..opts.epochs {
        for idx in minibatches(opts.n_train, opts.batch_size, Some(g))? {
            let (xb, yb) = (rows(&d.xtr, &idx)?, rows(&d.ytr, &idx)?);
            let n = idx.numel() as f64;
            // l = squared_loss(net(X), y) + λ·l2_penalty(w), summed over the batch: the
            // penalty is broadcast to every example, as in the book.
            let sq = net.forward(&xb)?.sub(&yb)?.square()?.mul_scalar(0.5)?;
            let penalty = w.square()?.sum_all()?.mul_scalar(lambda / 2.0)?;
            let l = sq.add(&penalty)?.sum_all()?;
            w.zero_grad();
            b.zero_grad();
            l.backward()?;
            // d2l.sgd: param -= lr * param.grad / batch_size.
            no_grad(|| -> Result<()> {
                for p in [&w, &b] {
                    if let Some(gr) = p.grad() {
                        p.sub_(&gr.mul_scalar(opts.lr / n)?)?;
                    }
                }
                Ok(())
            })?;
        }
        if (epoch + 1) % opts.eval_every == 0 || epoch + 1 == opts.epochs {
            curve.push(LossPoint {
                epoch: epoch + 1,
                train: mse_of(&net, &d.xtr, &d.ytr, true)?,
                test: mse_of(&net, &d.xte, &d.yte, true)?,
            });
        }
    }
    let last = *curve.last().expect("at least one epoch was recorded");
    let w_norm = w.norm(2.0)?.item_f64()?;
    Ok((curve, w_norm, last.train, last.test))
}

fn train_concise(
    opts: &WeightDecayOptions,
    d: &Data,
    wd: f64,
    g: &mut Generator,
) -> Result<RunOut> {
    let net = Linear::new(opts.num_inputs, 1)?;
    // for param in net.parameters(): param.data.normal_()
    for p in net.parameters() {
        reinit_normal(&p, 0.0, 1.0, g)?;
    }
    let bias = net.bias.clone().expect("Linear::new has a bias");
    let mut opt = Sgd::with_groups(
        vec![
            ParamGroup::new([net.weight.clone()]).weight_decay(wd),
            ParamGroup::new([bias]),
        ],
        SgdConfig {
            lr: opts.lr,
            ..Default::default()
        },
    )?;
    let mut curve = Vec::new();
    for epoch in 0..opts.epochs {
        for idx in minibatches(opts.n_train, opts.batch_size, Some(g))? {
            let (xb, yb) = (rows(&d.xtr, &idx)?, rows(&d.ytr, &idx)?);
            opt.zero_grad();
            let l = mse_loss_with(&net.forward(&xb)?, &yb, Reduction::Mean)?;
            l.backward()?;
            opt.step()?;
        }
        if (epoch + 1) % opts.eval_every == 0 || epoch + 1 == opts.epochs {
            curve.push(LossPoint {
                epoch: epoch + 1,
                train: mse_of(&net, &d.xtr, &d.ytr, false)?,
                test: mse_of(&net, &d.xte, &d.yte, false)?,
            });
        }
    }
    let last = *curve.last().expect("at least one epoch was recorded");
    let w_norm = net.weight.norm(2.0)?.item_f64()?;
    Ok((curve, w_norm, last.train, last.test))
}

impl fmt::Display for WeightDecayResults {
    /// The book's printout (`w的L2范数是：…`, here `L2 norm of w: …`) per run, the final
    /// losses, and the book's numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n_train, n_test, d, epochs) = self.sizes;
        writeln!(
            f,
            "D2L 4.5 weight decay: n_train = {n_train}, n_test = {n_test}, {d} inputs, {epochs} epochs"
        )?;
        for r in &self.runs {
            let loss = match r.variant {
                WdVariant::Scratch => "squared loss",
                WdVariant::Concise => "MSE",
            };
            writeln!(f, "{} λ = {}:", r.variant, r.lambda)?;
            writeln!(f, "  L2 norm of w: {:.4}", r.w_norm)?;
            writeln!(
                f,
                "  final {loss}: train {:.3e}, test {:.4}",
                r.train_loss, r.test_loss
            )?;
            if let Some((n, tr, te)) = book_reference(r.variant, r.lambda) {
                let tr = if tr.is_nan() {
                    "not shown".to_string()
                } else {
                    format!("≈ {tr:e}")
                };
                writeln!(f, "  book: L2 norm of w {n}, train {tr}, test ≈ {te}")?;
            }
            if let Some(p) = &r.plot {
                writeln!(f, "  plot: {}", p.display())?;
            }
        }
        write!(f, "({:.1} s)", self.seconds)
    }
}
