//! D2L 3.4's hypercomplex (PHM) layer, measured: the 4.3 MLP with its `784 → 256` layer
//! replaced by a `PhmLinear` with `n` Kronecker terms (`d2l_models::phm::mlp_phm`, zoo
//! `mlp-phm-2/4/8`), trained with the 4.3 recipe (SGD 0.1, batch 256, 10 epochs) for each
//! `n`, next to the dense MLP: parameters against test accuracy.

use crate::images::{accuracy, train_sgd, SubsetSpec};
use crate::{check_positive, plot_spec, save_plot, series, Common, ExperimentError, Result};
use d2l_data::datasets::DatasetName;
use d2l_models::zoo;
use d2l_nn::{Module, Sequential};
use d2l_tensor::Generator;
use d2l_train::plot::PlotSpec;
use std::fmt;
use std::path::PathBuf;

/// Settings of [`run_phm`]; the defaults are the book's 4.3 run.
#[derive(Debug, Clone)]
pub struct PhmOptions {
    /// The images: Fashion-MNIST, all of it, by default.
    pub data: SubsetSpec,
    /// The `n` of each PHM model (1, 2, 4, 8).
    pub ns: Vec<usize>,
    /// Also train the dense 4.3 MLP (`mlp`) as the reference.
    pub dense: bool,
    /// Epochs (10).
    pub epochs: usize,
    /// SGD learning rate (0.1).
    pub lr: f64,
    /// Minibatch size (256).
    pub batch_size: usize,
    /// The settings every experiment has ([`Common`]): the seed; the folder for
    /// `phm.png/.svg`; `quiet`.
    pub common: Common,
}

impl Default for PhmOptions {
    fn default() -> Self {
        PhmOptions {
            data: SubsetSpec::fashion_mnist(0, 0),
            ns: vec![1, 2, 4, 8],
            dense: true,
            epochs: 10,
            lr: 0.1,
            batch_size: 256,
            common: Common::default(),
        }
    }
}

/// One trained model.
#[derive(Debug, Clone)]
pub struct PhmRow {
    /// `mlp` or `mlp-phm n=…`.
    pub name: String,
    /// The PHM `n` (0 for the dense MLP).
    pub n: usize,
    /// All parameters.
    pub params: usize,
    /// Parameters of the hidden (`784 → 256`) layer.
    pub hidden_params: usize,
    /// The last epoch's training loss.
    pub train_loss: f64,
    /// Test accuracy.
    pub test_acc: f64,
    /// Training seconds.
    pub seconds: f64,
}

/// What [`run_phm`] returns.
#[derive(Debug, Clone)]
pub struct PhmResults {
    /// The data set used.
    pub dataset: DatasetName,
    /// The fallback notice, if any.
    pub notice: Option<String>,
    /// Training and test images.
    pub sizes: (usize, usize),
    /// Epochs.
    pub epochs: usize,
    /// The SGD learning rate.
    pub lr: f64,
    /// One row per model, the dense MLP first when asked for.
    pub rows: Vec<PhmRow>,
    /// The figure, when drawn.
    pub plot: Option<PathBuf>,
}

/// Trains the dense MLP and `mlp-phm` for each `n`.
pub fn run_phm(opts: &PhmOptions) -> Result<PhmResults> {
    check_positive("epochs", opts.epochs)?;
    if opts.ns.is_empty() && !opts.dense {
        return Err(ExperimentError::Invalid("nothing to train".into()));
    }
    let data = opts.data.load(opts.common.seed, opts.common.quiet)?;
    let mut cfg = zoo::model("mlp")?.default_config();
    cfg.in_shape = data.x_train.shape()[1..].to_vec();
    cfg.num_outputs = data.used.num_classes();
    let mut models: Vec<(String, usize)> = Vec::new();
    if opts.dense {
        models.push(("mlp (dense)".into(), 0));
    }
    for &n in &opts.ns {
        models.push((format!("mlp-phm n = {n}"), n));
    }
    let mut rows = Vec::new();
    for (name, n) in models {
        d2l_tensor::manual_seed(opts.common.seed);
        let net: Sequential = if n == 0 {
            zoo::model("mlp")?.build(&cfg)?
        } else {
            d2l_models::phm::mlp_phm(&cfg, n)?
        };
        let hidden_params = net.get(1).map_or(0, |l| l.num_parameters());
        let start = std::time::Instant::now();
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
        let seconds = start.elapsed().as_secs_f64();
        let test_acc = accuracy(&net, &data.x_test, &data.y_test)?;
        opts.common.progress(|| {
            format!(
                "phm: {name}: {} parameters, test acc {test_acc:.4}",
                net.num_parameters()
            )
        });
        rows.push(PhmRow {
            name,
            n,
            params: net.num_parameters(),
            hidden_params,
            train_loss,
            test_acc,
            seconds,
        });
    }
    let spec = PlotSpec {
        log_x: true,
        ..plot_spec(
            "3.4 PHM layer: test accuracy against parameters",
            "parameters",
            "test accuracy",
        )
    };
    let phm: Vec<&PhmRow> = rows.iter().filter(|r| r.n > 0).collect();
    let mut s = vec![series(
        "mlp-phm, n = 8, 4, 2, 1 (left to right)",
        phm.iter().map(|r| r.params as f64).collect(),
        phm.iter().map(|r| r.test_acc).collect(),
    )];
    if let Some(d) = rows.iter().find(|r| r.n == 0) {
        s.push(series("dense mlp", vec![d.params as f64], vec![d.test_acc]));
    }
    let plot = save_plot(opts.common.dir(), "phm", &spec, &s, true)?;
    Ok(PhmResults {
        dataset: data.used,
        notice: data.notice,
        sizes: (data.x_train.shape()[0], data.x_test.shape()[0]),
        epochs: opts.epochs,
        lr: opts.lr,
        rows,
        plot,
    })
}

impl fmt::Display for PhmResults {
    /// One row per model: parameters (all, hidden layer), train loss, test accuracy.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = &self.notice {
            writeln!(f, "{n}")?;
        }
        writeln!(
            f,
            "D2L 3.4 PHM layer in the 4.3 MLP on {} ({} training, {} test images, {} epochs, SGD {}, batch 256)",
            self.dataset, self.sizes.0, self.sizes.1, self.epochs, self.lr
        )?;
        writeln!(
            f,
            "  {:<18} {:>10} {:>14} {:>10} {:>9} {:>8}",
            "model", "params", "hidden layer", "train loss", "test acc", "seconds"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "  {:<18} {:>10} {:>14} {:>10.4} {:>9.4} {:>8.1}",
                r.name, r.params, r.hidden_params, r.train_loss, r.test_acc, r.seconds
            )?;
        }
        if let Some(p) = &self.plot {
            write!(f, "plot: {}", p.display())?;
        }
        Ok(())
    }
}
