//! The gradient-descent notes (D2L 11.3–11.5, 11.6, 11.10): batch gradient descent,
//! stochastic gradient descent and minibatch SGD compared on the airfoil self-noise data
//! (first 1,500 rows, standardised), with momentum and Adam from `d2l_nn::optim`
//! beside them; plus the deterministic one- and two-dimensional examples of 11.3.
//!
//! [`train_ch11`] follows the book's `train_ch11`: linear regression with w ~ N(0, 0.01²)
//! and b = 0, the mean of the squared loss ½(ŷ − y)² per minibatch, the full-data loss
//! evaluated every 200 examples, and a timer that stops while evaluating, so the curves
//! show loss against examples seen and against training time. The book's runs are
//! GD (lr 1, batch 1500, 10 epochs), SGD (0.005, 1, 2 epochs), and minibatch SGD
//! (0.4, 100, 2) and (0.05, 10, 2): the trade-off the notes describe — GD takes few, costly
//! steps, SGD many cheap noisy ones, minibatches sit in between and win on time.

use crate::{
    check_positive, check_rate, minibatches, plot_spec, rows, Common, ExperimentError, Result,
};
use d2l_data::airfoil::{load_airfoil, AIRFOIL_BOOK_ROWS};
use d2l_data::hub::DataHub;
use d2l_nn::optim::{Adam, Optimizer, Sgd};
use d2l_tensor::{no_grad, Generator, Tensor};
use d2l_train::plot::{save_line_panels, Panel, PlotSpec, Series};
use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

/// Gradient descent on a function of one variable (D2L 11.3's `gd`): `steps` updates
/// x ← x − η f′(x) from `x0`; returns every iterate, `x0` first.
pub fn gd_1d(eta: f64, x0: f64, steps: usize, grad: impl Fn(f64) -> f64) -> Vec<f64> {
    let mut x = x0;
    let mut out = vec![x];
    for _ in 0..steps {
        x -= eta * grad(x);
        out.push(x);
    }
    out
}

/// Newton's method with step size η (D2L 11.3's `newton`): x ← x − η f′(x) / f″(x).
pub fn newton_1d(
    eta: f64,
    x0: f64,
    steps: usize,
    grad: impl Fn(f64) -> f64,
    hess: impl Fn(f64) -> f64,
) -> Vec<f64> {
    let mut x = x0;
    let mut out = vec![x];
    for _ in 0..steps {
        x -= eta * grad(x) / hess(x);
        out.push(x);
    }
    out
}

/// Gradient descent in two dimensions (D2L 11.3's `train_2d(gd_2d)`): every iterate from
/// `start`, `steps` updates of x ← x − η ∇f(x).
pub fn gd_2d(
    eta: f64,
    start: (f64, f64),
    steps: usize,
    grad: impl Fn(f64, f64) -> (f64, f64),
) -> Vec<(f64, f64)> {
    let mut p = start;
    let mut out = vec![p];
    for _ in 0..steps {
        let (g1, g2) = grad(p.0, p.1);
        p = (p.0 - eta * g1, p.1 - eta * g2);
        out.push(p);
    }
    out
}

/// One of the deterministic results of D2L 11.3 next to the book's printed value.
#[derive(Debug, Clone, PartialEq)]
pub struct GdCheck {
    /// What was run.
    pub name: &'static str,
    /// The value's name in the data file of the book's numbers (section `11.3-gd`).
    pub key: &'static str,
    /// Our final value.
    pub ours: f64,
    /// The book's printed final value.
    pub book: f64,
}

/// The book's printed value `key` of 11.3 from the data file of the book's numbers
/// (`crates/d2l-book/reproduce.toml`); NaN when it has none.
fn book(key: &str) -> f64 {
    crate::reproduce::book_value("11.3-gd", key).unwrap_or(f64::NAN)
}

/// D2L 11.3's worked examples, each after the book's number of steps: GD on x² from 10
/// with η = 0.2, 0.05, 1.1; GD on x·cos(cx), c = 0.15π, η = 2; GD on x₁² + 2x₂² from
/// (−5, −2) with η = 0.1 for 20 steps; Newton on cosh(x/2) and on x·cos(cx) (η = 1, 0.5).
pub fn gd_checks() -> Vec<GdCheck> {
    let last = |v: Vec<f64>| *v.last().expect("at least x0");
    let sq = |x: f64| 2.0 * x;
    let c = 0.15 * std::f64::consts::PI;
    let nc_grad = move |x: f64| (c * x).cos() - c * x * (c * x).sin();
    let nc_hess = move |x: f64| -2.0 * c * (c * x).sin() - x * c * c * (c * x).cos();
    let h = 0.5;
    let p2 = *gd_2d(0.1, (-5.0, -2.0), 20, |a, b| (2.0 * a, 4.0 * b))
        .last()
        .expect("start");
    vec![
        GdCheck {
            name: "GD on x², η = 0.2, 10 steps",
            ours: last(gd_1d(0.2, 10.0, 10, sq)),
            key: "x2_eta0.2",
            book: book("x2_eta0.2"),
        },
        GdCheck {
            name: "GD on x², η = 0.05",
            ours: last(gd_1d(0.05, 10.0, 10, sq)),
            key: "x2_eta0.05",
            book: book("x2_eta0.05"),
        },
        GdCheck {
            name: "GD on x², η = 1.1",
            ours: last(gd_1d(1.1, 10.0, 10, sq)),
            key: "x2_eta1.1",
            book: book("x2_eta1.1"),
        },
        GdCheck {
            name: "GD on x·cos(0.15πx), η = 2",
            ours: last(gd_1d(2.0, 10.0, 10, nc_grad)),
            key: "xcos_eta2",
            book: book("xcos_eta2"),
        },
        GdCheck {
            name: "GD on x₁² + 2x₂², η = 0.1, 20 steps: x₁",
            ours: p2.0,
            key: "2d_x1",
            book: book("2d_x1"),
        },
        GdCheck {
            name: "GD on x₁² + 2x₂², η = 0.1, 20 steps: x₂",
            ours: p2.1,
            key: "2d_x2",
            book: book("2d_x2"),
        },
        GdCheck {
            name: "Newton on cosh(x/2)",
            ours: last(newton_1d(
                1.0,
                10.0,
                10,
                |x| h * (h * x).sinh(),
                |x| h * h * (h * x).cosh(),
            )),
            key: "newton_cosh",
            book: book("newton_cosh"),
        },
        GdCheck {
            name: "Newton on x·cos(0.15πx), η = 1",
            ours: last(newton_1d(1.0, 10.0, 10, nc_grad, nc_hess)),
            key: "newton_xcos_eta1",
            book: book("newton_xcos_eta1"),
        },
        GdCheck {
            name: "Newton on x·cos(0.15πx), η = 0.5",
            ours: last(newton_1d(0.5, 10.0, 10, nc_grad, nc_hess)),
            key: "newton_xcos_eta0.5",
            book: book("newton_xcos_eta0.5"),
        },
    ]
}

/// How a [`train_ch11`] run updates w and b.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ch11Method {
    /// Plain (minibatch) SGD, p ← p − η g (the book's `sgd` of 11.5).
    Sgd,
    /// SGD with momentum β (11.6's `sgd_momentum`; PyTorch's `SGD(momentum=β)`).
    Momentum(f64),
    /// Adam with PyTorch's defaults (β = 0.9, 0.999; ε = 1e-8) (11.10).
    Adam,
}

/// One run of [`train_ch11`]: a name (the plot's legend), the update rule, learning
/// rate, minibatch size and epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct GdCase {
    /// The legend label (`gd`, `sgd`, `batch size=100`, ...).
    pub name: String,
    /// The update rule.
    pub method: Ch11Method,
    /// Learning rate.
    pub lr: f64,
    /// Minibatch size (the whole set for batch gradient descent).
    pub batch_size: usize,
    /// Epochs.
    pub epochs: usize,
}

impl GdCase {
    /// A run from its name, rule and hyper-parameters.
    pub fn new(
        name: &str,
        method: Ch11Method,
        lr: f64,
        batch_size: usize,
        epochs: usize,
    ) -> GdCase {
        GdCase {
            name: name.to_string(),
            method,
            lr,
            batch_size,
            epochs,
        }
    }

    /// The four runs of D2L 11.5: GD (lr 1, batch 1500, 10 epochs), SGD (0.005, 1, 2),
    /// minibatch (0.4, 100, 2) and (0.05, 10, 2).
    pub fn book() -> Vec<GdCase> {
        vec![
            GdCase::new("gd", Ch11Method::Sgd, 1.0, 1500, 10),
            GdCase::new("sgd", Ch11Method::Sgd, 0.005, 1, 2),
            GdCase::new("batch size=100", Ch11Method::Sgd, 0.4, 100, 2),
            GdCase::new("batch size=10", Ch11Method::Sgd, 0.05, 10, 2),
        ]
    }

    /// The book's four runs plus momentum (11.6: lr 0.02, β 0.5, batch 10, 2 epochs) and
    /// Adam (11.10: lr 0.01, batch 10, 2 epochs).
    pub fn with_optimizers() -> Vec<GdCase> {
        let mut v = GdCase::book();
        v.push(GdCase::new(
            "momentum",
            Ch11Method::Momentum(0.5),
            0.02,
            10,
            2,
        ));
        v.push(GdCase::new("adam", Ch11Method::Adam, 0.01, 10, 2));
        v
    }

    fn describe(&self) -> String {
        let rule = match self.method {
            Ch11Method::Sgd => String::new(),
            Ch11Method::Momentum(b) => format!(", momentum {b}"),
            Ch11Method::Adam => ", Adam".to_string(),
        };
        format!(
            "lr {}, batch {}, {} epochs{rule}",
            self.lr, self.batch_size, self.epochs
        )
    }
}

/// The data file's name (section `11.5-airfoil`) of the run called `name` here.
pub fn airfoil_key(name: &str) -> Option<&'static str> {
    match name {
        "gd" => Some("gd"),
        "sgd" => Some("sgd"),
        "batch size=100" => Some("minibatch100"),
        "batch size=10" => Some("minibatch10"),
        _ => None,
    }
}

/// The book's printed `loss: …, … sec/epoch` (D2L 11.5 notebook, a V100 machine) by run
/// name, from the data file of the book's numbers (`crates/d2l-book/reproduce.toml`).
pub fn book_result(name: &str) -> Option<(f64, f64)> {
    let key = airfoil_key(name)?;
    let v = |m: &str| crate::reproduce::book_value("11.5-airfoil", &format!("{key}_{m}"));
    Some((v("loss")?, v("sec_per_epoch")?))
}

/// The outcome of one [`train_ch11`] run.
#[derive(Debug, Clone)]
pub struct Ch11Run {
    /// The case that was run.
    pub case: GdCase,
    /// Examples processed at each evaluation.
    pub examples: Vec<usize>,
    /// The same in epochs (the book's x axis).
    pub epochs: Vec<f64>,
    /// Cumulative training time (seconds, evaluation excluded) at each evaluation.
    pub times: Vec<f64>,
    /// The full-data loss (mean ½(ŷ − y)²) at each evaluation.
    pub losses: Vec<f64>,
    /// The loss before training.
    pub initial_loss: f64,
    /// The book's `timer.avg()`, which it prints as "sec/epoch": the mean training time
    /// between two evaluations.
    pub book_sec_per_epoch: f64,
    /// Training time per epoch (total training time / epochs).
    pub sec_per_epoch: f64,
    /// Parameter updates made.
    pub updates: usize,
}

impl Ch11Run {
    /// The last evaluated loss.
    pub fn final_loss(&self) -> f64 {
        self.losses.last().copied().unwrap_or(self.initial_loss)
    }
}

fn full_loss(x: &Tensor, y: &Tensor, w: &Tensor, b: &Tensor) -> Result<f64> {
    no_grad(|| {
        let d = x.matmul(w)?.add(b)?.sub(y)?;
        Ok(d.square()?.mean_all()?.item_f64()? / 2.0)
    })
}

/// D2L 11.5's `train_ch11` for linear regression on features `x` (`[n, d]`) and labels
/// `y` (`[n]` or `[n, 1]`): w ~ N(0, 0.01²) drawn from `g`, b = 0, minibatches reshuffled
/// each epoch from `g`, the mean ½(ŷ − y)² per batch, and the full-data loss every
/// `eval_every` examples (when the count of examples seen is a multiple of it, as the
/// book's `n % 200 == 0`; if that never happens, once at the end).
pub fn train_ch11(
    x: &Tensor,
    y: &Tensor,
    case: &GdCase,
    eval_every: usize,
    g: &mut Generator,
) -> Result<Ch11Run> {
    check_positive("batch_size", case.batch_size)?;
    check_positive("epochs", case.epochs)?;
    check_positive("eval_every", eval_every)?;
    check_rate("lr", case.lr)?;
    if x.rank() != 2 || x.shape()[0] == 0 || y.numel() != x.shape()[0] {
        return Err(ExperimentError::Invalid(format!(
            "train_ch11 needs features [n, d] with n ≥ 1 and n labels, got {:?} and {:?}",
            x.shape(),
            y.shape()
        )));
    }
    let (n, d) = (x.shape()[0], x.shape()[1]);
    let y = y.reshape([n, 1])?;
    let w = Tensor::normal_with(g, &[d, 1], 0.0, 0.01)?.requires_grad_(true)?;
    let b = Tensor::zeros(&[1]).requires_grad_(true)?;
    let params = vec![w.clone(), b.clone()];
    let mut opt: Box<dyn Optimizer> = match case.method {
        Ch11Method::Sgd => Box::new(Sgd::new(params, case.lr)?),
        Ch11Method::Momentum(beta) => {
            if !(beta.is_finite() && (0.0..1.0).contains(&beta)) {
                return Err(ExperimentError::Invalid(format!(
                    "momentum must be in [0, 1), got {beta}"
                )));
            }
            Box::new(Sgd::new(params, case.lr)?.momentum(beta))
        }
        Ch11Method::Adam => Box::new(Adam::new(params, case.lr)?),
    };
    let initial_loss = full_loss(x, &y, &w, &b)?;
    let (mut examples, mut epochs, mut times, mut losses) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut intervals: Vec<f64> = Vec::new();
    let (mut seen, mut batches_done, mut updates) = (0usize, 0usize, 0usize);
    let mut timer = Instant::now();
    let mut total = 0.0;
    for _ in 0..case.epochs {
        let batches = minibatches(n, case.batch_size, Some(g))?;
        let per_epoch = batches.len();
        for idx in batches {
            let (xb, yb) = (rows(x, &idx)?, rows(&y, &idx)?);
            let l = xb
                .matmul(&w)?
                .add(&b)?
                .sub(&yb)?
                .square()?
                .mul_scalar(0.5)?
                .mean_all()?;
            opt.zero_grad();
            l.backward()?;
            opt.step()?;
            updates += 1;
            batches_done += 1;
            seen += idx.numel();
            if seen % eval_every == 0 {
                let dt = timer.elapsed().as_secs_f64();
                intervals.push(dt);
                total += dt;
                examples.push(seen);
                epochs.push(batches_done as f64 / per_epoch as f64);
                times.push(total);
                losses.push(full_loss(x, &y, &w, &b)?);
                timer = Instant::now();
            }
        }
    }
    let tail = timer.elapsed().as_secs_f64();
    if losses.is_empty() {
        intervals.push(tail);
        total += tail;
        examples.push(seen);
        epochs.push(case.epochs as f64);
        times.push(total);
        losses.push(full_loss(x, &y, &w, &b)?);
    } else {
        total += tail;
    }
    let book_sec_per_epoch = intervals.iter().sum::<f64>() / intervals.len() as f64;
    Ok(Ch11Run {
        case: case.clone(),
        examples,
        epochs,
        times,
        losses,
        initial_loss,
        book_sec_per_epoch,
        sec_per_epoch: total / case.epochs as f64,
        updates,
    })
}

/// Settings of [`run_gd_compare`]; the defaults are the book's.
#[derive(Debug, Clone)]
pub struct GdOptions {
    /// Where the airfoil file comes from.
    pub hub: DataHub,
    /// Rows used (1500).
    pub n: usize,
    /// The runs ([`GdCase::with_optimizers`]).
    pub cases: Vec<GdCase>,
    /// Evaluate the full-data loss every this many examples (200).
    pub eval_every: usize,
    /// The settings every experiment has ([`Common`]): the seed of the initialisation and
    /// the shuffling (each run draws from its own generator seeded from this, so runs do
    /// not depend on each other); the folder for `gd-compare.png/.svg`; `quiet`.
    pub common: Common,
}

impl Default for GdOptions {
    fn default() -> Self {
        GdOptions {
            hub: DataHub::from_env(),
            n: AIRFOIL_BOOK_ROWS,
            cases: GdCase::with_optimizers(),
            eval_every: 200,
            common: Common::default(),
        }
    }
}

/// What [`run_gd_compare`] returns.
#[derive(Debug, Clone)]
pub struct GdResults {
    /// Examples used.
    pub n: usize,
    /// One run per case, in order.
    pub runs: Vec<Ch11Run>,
    /// D2L 11.3's deterministic examples.
    pub checks: Vec<GdCheck>,
    /// The comparison plot (PNG), when drawn.
    pub plot: Option<PathBuf>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl GdResults {
    /// The run named `name`.
    pub fn run(&self, name: &str) -> Option<&Ch11Run> {
        self.runs.iter().find(|r| r.case.name == name)
    }
}

/// A log-axis range around the series' positive x values that starts at a power of ten
/// and ends at 2, 5 or 10 times one (so the tick labels stay sparse); `None` if there
/// are no positive x values.
fn log_range(series: &[Series]) -> Option<(f64, f64)> {
    let xs = series.iter().flat_map(|s| s.x.iter().copied());
    let (lo, hi) = xs
        .filter(|x| x.is_finite() && *x > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    if lo > hi {
        return None;
    }
    let lo = 10f64.powf(lo.log10().floor());
    let d = 10f64.powf(hi.log10().floor());
    let hi = [2.0 * d, 5.0 * d, 10.0 * d]
        .into_iter()
        .find(|&h| h >= hi)
        .unwrap_or(10.0 * d);
    Some((lo, if hi > lo { hi } else { lo * 10.0 }))
}

/// Runs the comparison on the airfoil data fetched through `opts.hub` (first `opts.n`
/// rows, standardised: the book's `get_data_ch11`).
pub fn run_gd_compare(opts: &GdOptions) -> Result<GdResults> {
    let (x, y) = load_airfoil(&opts.hub, opts.n)?;
    run_gd_compare_on(&x, &y, opts)
}

/// Runs every case of `opts` on the given features and labels with [`train_ch11`], and
/// draws loss against examples and loss against time side by side.
pub fn run_gd_compare_on(x: &Tensor, y: &Tensor, opts: &GdOptions) -> Result<GdResults> {
    if opts.cases.is_empty() {
        return Err(ExperimentError::Invalid("give at least one GD run".into()));
    }
    let start = Instant::now();
    let mut runs = Vec::with_capacity(opts.cases.len());
    for (i, case) in opts.cases.iter().enumerate() {
        let mut g = Generator::new(opts.common.seed.wrapping_mul(1000).wrapping_add(i as u64));
        let r = train_ch11(x, y, case, opts.eval_every, &mut g)?;
        opts.common.progress(|| {
            format!(
                "{}: loss: {:.3}, {:.5} sec/epoch",
                case.name,
                r.final_loss(),
                r.book_sec_per_epoch
            )
        });
        runs.push(r);
    }
    let plot = match &opts.common.out_dir {
        None => None,
        Some(dir) => {
            let by = |f: &dyn Fn(&Ch11Run) -> Vec<f64>| -> Vec<Series> {
                runs.iter()
                    .map(|r| Series::new(r.case.name.clone(), f(r), r.losses.clone()))
                    .collect()
            };
            let examples = by(&|r| r.examples.iter().map(|&e| e as f64).collect());
            let times = by(&|r| r.times.clone());
            let panels = [
                Panel {
                    spec: PlotSpec {
                        log_x: true,
                        xlim: log_range(&examples),
                        ..plot_spec("loss against examples seen", "examples", "loss")
                    },
                    series: examples,
                },
                Panel {
                    spec: PlotSpec {
                        log_x: true,
                        xlim: log_range(&times),
                        ..plot_spec("loss against training time", "time (sec)", "loss")
                    },
                    series: times,
                },
            ];
            std::fs::create_dir_all(dir).map_err(|source| ExperimentError::Io {
                path: dir.clone(),
                source,
            })?;
            let base = dir.join("gd-compare");
            let (png, _) = save_line_panels(&base, &panels)
                .map_err(|e| ExperimentError::Plot(format!("{}: {e}", base.display())))?;
            Some(png)
        }
    };
    Ok(GdResults {
        n: x.shape().first().copied().unwrap_or(0),
        runs,
        checks: gd_checks(),
        plot,
        seconds: start.elapsed().as_secs_f64(),
    })
}

impl fmt::Display for GdResults {
    /// The 11.3 checks, then the book's `loss: …, … sec/epoch` line per run beside its
    /// numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "D2L 11.3 gradient descent, final x (ours / book):")?;
        for c in &self.checks {
            writeln!(f, "  {}: {:.6} / {}", c.name, c.ours, c.book)?;
        }
        writeln!(
            f,
            "D2L 11.5 on airfoil self-noise ({} rows, standardised): linear regression, \
             full-data loss ½(ŷ − y)² every 200 examples",
            self.n
        )?;
        for r in &self.runs {
            writeln!(
                f,
                "{} ({}): loss: {:.3}, {:.5} sec/epoch   [{} updates, {:.5} s/epoch of training]",
                r.case.name,
                r.case.describe(),
                r.final_loss(),
                r.book_sec_per_epoch,
                r.updates,
                r.sec_per_epoch
            )?;
            if let Some((l, s)) = book_result(&r.case.name) {
                writeln!(f, "  book: loss: {l:.3}, {s:.3} sec/epoch")?;
            }
        }
        if let Some(p) = &self.plot {
            writeln!(f, "plot: {}", p.display())?;
        }
        write!(f, "({:.1} s)", self.seconds)
    }
}
