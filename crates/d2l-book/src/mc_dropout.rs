//! D2L 4.6's remark on dropout at test time: the usual prediction turns dropout off (the
//! inverted scaling keeps each unit's expectation), while Monte-Carlo dropout keeps it on
//! and averages the class probabilities of `K` stochastic passes (Gal and Ghahramani).
//! `mlp-dropout` (4.6, dropout 0.2 / 0.5) is trained with the book's recipe; its test
//! accuracy and negative log-likelihood are then measured deterministically and with MC
//! dropout for several `K`.

use crate::images::{acc_nll, probs, train_sgd, SubsetSpec};
use crate::{check_positive, plot_spec, series, Common, ExperimentError, Result};
use d2l_data::datasets::DatasetName;
use d2l_models::zoo;
use d2l_nn::Module;
use d2l_tensor::Generator;
use d2l_train::plot::PlotSpec;
use std::fmt;
use std::path::PathBuf;

/// Settings of [`run_mc_dropout`]; the defaults are the book's 4.6 run.
#[derive(Debug, Clone)]
pub struct McDropoutOptions {
    /// The images: Fashion-MNIST, all of it, by default.
    pub data: SubsetSpec,
    /// Epochs (10).
    pub epochs: usize,
    /// SGD learning rate (0.5, the book's 4.6).
    pub lr: f64,
    /// Minibatch size (256).
    pub batch_size: usize,
    /// The numbers of stochastic passes averaged (1, 2, 5, 10, 20, 50).
    pub passes: Vec<usize>,
    /// The settings every experiment has ([`Common`]): the seed of the subset, the
    /// initialisation, the shuffling and the dropout masks; the folder for
    /// `mc-dropout.png/.svg`; `quiet`.
    pub common: Common,
}

impl Default for McDropoutOptions {
    fn default() -> Self {
        McDropoutOptions {
            data: SubsetSpec::fashion_mnist(0, 0),
            epochs: 10,
            lr: 0.5,
            batch_size: 256,
            passes: vec![1, 2, 5, 10, 20, 50],
            common: Common::default(),
        }
    }
}

/// One way of predicting.
#[derive(Debug, Clone, Copy)]
pub struct McRow {
    /// Stochastic passes averaged (0: dropout off, the deterministic net).
    pub passes: usize,
    /// Test accuracy.
    pub acc: f64,
    /// Test mean negative log-likelihood.
    pub nll: f64,
}

/// What [`run_mc_dropout`] returns.
#[derive(Debug, Clone)]
pub struct McDropoutResults {
    /// The data set used.
    pub dataset: DatasetName,
    /// The fallback notice, if any.
    pub notice: Option<String>,
    /// Training and test images.
    pub sizes: (usize, usize),
    /// The last epoch's training loss.
    pub train_loss: f64,
    /// Dropout off.
    pub deterministic: McRow,
    /// MC dropout, one row per `K`.
    pub mc: Vec<McRow>,
    /// The figure, when drawn.
    pub plot: Option<PathBuf>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Trains `mlp-dropout` and measures deterministic against Monte-Carlo prediction.
pub fn run_mc_dropout(opts: &McDropoutOptions) -> Result<McDropoutResults> {
    check_positive("epochs", opts.epochs)?;
    if opts.passes.is_empty() || opts.passes.contains(&0) {
        return Err(ExperimentError::Invalid(
            "passes must be a non-empty list of positive counts".into(),
        ));
    }
    let start = std::time::Instant::now();
    let data = opts.data.load(opts.common.seed, opts.common.quiet)?;
    d2l_tensor::manual_seed(opts.common.seed);
    let info = zoo::model("mlp-dropout")?;
    let mut cfg = info.default_config();
    cfg.in_shape = data.x_train.shape()[1..].to_vec();
    cfg.num_outputs = data.used.num_classes();
    let net = info.build(&cfg)?;
    let mut g = Generator::new(opts.common.seed);
    let train_loss = train_sgd(
        &net,
        &data.x_train,
        &data.y_train,
        opts.epochs,
        opts.lr,
        opts.batch_size,
        &mut g,
    )?;
    net.eval();
    let (p, c) = probs(&net, &data.x_test)?;
    let (acc, nll) = acc_nll(&p, c, &data.y_test);
    let deterministic = McRow {
        passes: 0,
        acc,
        nll,
    };
    opts.common
        .progress(|| format!("mc-dropout: deterministic test acc {acc:.4}, nll {nll:.4}"));
    // MC dropout: dropout on, K passes, probabilities averaged; the running sum serves every
    // K asked for.
    net.train();
    let k_max = *opts.passes.iter().max().expect("non-empty");
    let mut sum = vec![0.0; p.len()];
    let mut mc = Vec::new();
    for k in 1..=k_max {
        let (pk, _) = probs(&net, &data.x_test)?;
        for (s, v) in sum.iter_mut().zip(&pk) {
            *s += v;
        }
        if opts.passes.contains(&k) {
            let avg: Vec<f64> = sum.iter().map(|s| s / k as f64).collect();
            let (acc, nll) = acc_nll(&avg, c, &data.y_test);
            opts.common
                .progress(|| format!("mc-dropout: K = {k}: test acc {acc:.4}, nll {nll:.4}"));
            mc.push(McRow {
                passes: k,
                acc,
                nll,
            });
        }
    }
    net.eval();
    let ks: Vec<f64> = mc.iter().map(|r| r.passes as f64).collect();
    let spec = PlotSpec {
        log_x: true,
        ..plot_spec(
            "4.6 dropout at test time: Monte-Carlo averaging",
            "stochastic passes K",
            "test accuracy",
        )
    };
    let plot = opts.common.line_plot(
        "mc-dropout",
        &spec,
        &[
            series("MC dropout", ks.clone(), mc.iter().map(|r| r.acc).collect()),
            series("dropout off", ks.clone(), vec![deterministic.acc; ks.len()]),
        ],
    )?;
    Ok(McDropoutResults {
        dataset: data.used,
        notice: data.notice,
        sizes: (data.x_train.shape()[0], data.x_test.shape()[0]),
        train_loss,
        deterministic,
        mc,
        plot,
        seconds: start.elapsed().as_secs_f64(),
    })
}

impl fmt::Display for McDropoutResults {
    /// The setting and one row per way of predicting.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = &self.notice {
            writeln!(f, "{n}")?;
        }
        writeln!(
            f,
            "D2L 4.6 mlp-dropout (dropout 0.2 / 0.5) on {} ({} training, {} test images); final train loss {:.4}",
            self.dataset, self.sizes.0, self.sizes.1, self.train_loss
        )?;
        writeln!(
            f,
            "  {:<30} {:>9} {:>9}",
            "prediction", "test acc", "test nll"
        )?;
        let d = &self.deterministic;
        writeln!(
            f,
            "  {:<30} {:>9.4} {:>9.4}",
            "dropout off (deterministic)", d.acc, d.nll
        )?;
        for r in &self.mc {
            writeln!(
                f,
                "  {:<30} {:>9.4} {:>9.4}",
                format!("MC dropout, K = {}", r.passes),
                r.acc,
                r.nll
            )?;
        }
        if let Some(p) = &self.plot {
            writeln!(f, "plot: {}", p.display())?;
        }
        write!(f, "({:.1} s)", self.seconds)
    }
}
