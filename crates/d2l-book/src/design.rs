//! Two design points of D2L chapter 7, measured on a Fashion-MNIST subset:
//!
//! * **7.2, deep and narrow against shallow and wide.** Four 3×3 convolutions (16, 16, 32,
//!   32 channels, a 2×2 max-pool after each pair) against one 7×7 convolution wide enough
//!   (59 channels, a 4×4 max-pool) that both nets have about 32,000 parameters; the same
//!   budget, Adam 0.001.
//! * **7.5 / 7.6, training a deep network.** A plain 30-layer ReLU MLP (128 units, PyTorch's
//!   default initialisation) whose signal shrinks layer by layer until SGD cannot move it,
//!   against the same depth with batch normalisation after every layer, and with
//!   pre-activation residual blocks `x + Linear(ReLU(BN(x)))`.

use crate::images::{accuracy, train_sgd, SubsetSpec};
use crate::{check_positive, minibatches, plot_spec, rows, series, Common, Result};
use d2l_data::datasets::DatasetName;
use d2l_nn::conv::Conv2d;
use d2l_nn::layers::{Flatten, Linear, ReLU};
use d2l_nn::loss::cross_entropy;
use d2l_nn::norm::BatchNorm1d;
use d2l_nn::optim::{Adam, Optimizer};
use d2l_nn::pool::MaxPool2d;
use d2l_nn::{Module, Sequential};
use d2l_tensor::{Generator, Tensor};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Settings of [`run_design`].
#[derive(Debug, Clone)]
pub struct DesignOptions {
    /// The images: Fashion-MNIST, 10,000 training and 2,000 test images, by default.
    pub data: SubsetSpec,
    /// Epochs of every model (3).
    pub epochs: usize,
    /// Layers of the deep MLPs (30).
    pub depth: usize,
    /// SGD learning rate of the deep MLPs (0.05).
    pub depth_lr: f64,
    /// The settings every experiment has ([`Common`]): the seed; the folder for
    /// `design-depth.png/.svg`; `quiet`.
    pub common: Common,
}

impl Default for DesignOptions {
    fn default() -> Self {
        DesignOptions {
            data: SubsetSpec::fashion_mnist(10_000, 2_000),
            epochs: 3,
            depth: 30,
            depth_lr: 0.05,
            common: Common::default(),
        }
    }
}

/// One trained model.
#[derive(Debug, Clone)]
pub struct DesignRow {
    /// What it is.
    pub name: String,
    /// Parameters.
    pub params: usize,
    /// The last epoch's mean training loss.
    pub train_loss: f64,
    /// Test accuracy.
    pub test_acc: f64,
    /// Mean training loss per epoch.
    pub curve: Vec<f64>,
    /// Training seconds.
    pub seconds: f64,
}

/// What [`run_design`] returns.
#[derive(Debug, Clone)]
pub struct DesignResults {
    /// The data set used and the fallback notice.
    pub dataset: DatasetName,
    /// The fallback notice, if any.
    pub notice: Option<String>,
    /// Training and test images, epochs.
    pub sizes: (usize, usize, usize),
    /// 7.2: deep-narrow, then shallow-wide.
    pub width: Vec<DesignRow>,
    /// 7.5 / 7.6: plain, batch norm, residual.
    pub depth: Vec<DesignRow>,
    /// The depth figure (training loss per epoch), when drawn.
    pub plot: Option<PathBuf>,
}

impl DesignResults {
    /// The row called `name` in either table.
    pub fn row(&self, name: &str) -> Option<&DesignRow> {
        self.width
            .iter()
            .chain(&self.depth)
            .find(|r| r.name == name)
    }
}

/// `x + f(x)` (D2L 7.6's residual connection) around a block.
struct Residual(Arc<dyn Module>);

impl Module for Residual {
    fn forward(&self, x: &Tensor) -> d2l_tensor::Result<Tensor> {
        x.add(&self.0.forward(x)?)
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![("f".into(), self.0.clone())]
    }

    fn describe(&self) -> String {
        "Residual".into()
    }
}

/// 7.2's deep-narrow net: four 3×3 convolutions (padding 1) in two pairs, each pair
/// followed by a 2×2 max-pool, then a linear classifier.
fn deep_narrow(classes: usize) -> Result<Sequential> {
    let conv = |i, o| Conv2d::builder(i, o, 3).padding(1).build();
    Ok(Sequential::new()
        .add(conv(1, 16)?)
        .add(ReLU)
        .add(conv(16, 16)?)
        .add(ReLU)
        .add(MaxPool2d::new(2))
        .add(conv(16, 32)?)
        .add(ReLU)
        .add(conv(32, 32)?)
        .add(ReLU)
        .add(MaxPool2d::new(2))
        .add(Flatten::new())
        .add(Linear::new(32 * 7 * 7, classes)?))
}

/// The shallow-wide net of about the same size: one 7×7 convolution (padding 3) with
/// `channels` channels, a 4×4 max-pool, a linear classifier.
fn shallow_wide(channels: usize, classes: usize) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(Conv2d::builder(1, channels, 7).padding(3).build()?)
        .add(ReLU)
        .add(MaxPool2d::new(4))
        .add(Flatten::new())
        .add(Linear::new(channels * 7 * 7, classes)?))
}

/// `depth` layers of width `w`: a first `Linear(784, w)` + ReLU, then `depth − 1` blocks of
/// `Linear(w, w)` + ReLU (with batch norm before the ReLU when `bn`), or, when `residual`,
/// pre-activation residual blocks `x + Linear(ReLU(BN(x)))` (He et al. 2016, 7.6's
/// block in its later form: the identity path is kept clear, and the normalised branch
/// adds a bounded amount per layer). Without the batch norm in the branch the sum grows
/// by about 1/6 of its variance per layer and SGD diverges at 30 layers. (Measured: the
/// running statistics lag the growing residual stream, so evaluation-mode accuracy can
/// fall well below what the training loss suggests; layer norm in the branch instead
/// diverged at this learning rate.)
fn deep_mlp(
    depth: usize,
    width: usize,
    classes: usize,
    bn: bool,
    residual: bool,
) -> Result<Sequential> {
    let mut net = Sequential::new()
        .add(Flatten::new())
        .add(Linear::new(784, width)?)
        .add(ReLU);
    for _ in 1..depth {
        if residual {
            let block = Sequential::new()
                .add(BatchNorm1d::new(width)?)
                .add(ReLU)
                .add(Linear::new(width, width)?);
            net.push(Residual(Arc::new(block)));
            continue;
        }
        net.push(Linear::new(width, width)?);
        if bn {
            net.push(BatchNorm1d::new(width)?);
        }
        net.push(ReLU);
    }
    net.push(Linear::new(width, classes)?);
    Ok(net)
}

/// Adam on the mean cross-entropy; per-epoch mean training losses.
fn train_adam(
    net: &dyn Module,
    x: &Tensor,
    y: &Tensor,
    epochs: usize,
    g: &mut Generator,
) -> Result<Vec<f64>> {
    net.train();
    let mut opt = Adam::new(net.parameters(), 0.001)?;
    let mut curve = Vec::new();
    for _ in 0..epochs {
        let (mut sum, mut n) = (0.0, 0usize);
        for idx in minibatches(x.shape()[0], 128, Some(g))? {
            let l = cross_entropy(&net.forward(&rows(x, &idx)?)?, &rows(y, &idx)?)?;
            opt.zero_grad();
            l.backward()?;
            opt.step()?;
            sum += l.item_f64()? * idx.shape()[0] as f64;
            n += idx.shape()[0];
        }
        curve.push(sum / n.max(1) as f64);
    }
    Ok(curve)
}

/// Trains the five models.
pub fn run_design(opts: &DesignOptions) -> Result<DesignResults> {
    check_positive("epochs", opts.epochs)?;
    check_positive("depth", opts.depth)?;
    let data = opts.data.load(opts.common.seed, opts.common.quiet)?;
    if data.x_train.shape()[2..] != [28, 28] {
        return Err(crate::ExperimentError::Invalid(
            "design-demo needs 28×28 images".into(),
        ));
    }
    let classes = data.used.num_classes();
    let run = |name: &str, net: Sequential, adam: bool| -> Result<DesignRow> {
        let mut g = Generator::new(opts.common.seed);
        let start = std::time::Instant::now();
        let curve = if adam {
            train_adam(&net, &data.x_train, &data.y_train, opts.epochs, &mut g)?
        } else {
            // The book's chapter 7 recipe: SGD; one epoch at a time to record the curve.
            let mut c = Vec::new();
            for _ in 0..opts.epochs {
                c.push(train_sgd(
                    &net,
                    &data.x_train,
                    &data.y_train,
                    1,
                    opts.depth_lr,
                    128,
                    &mut g,
                )?);
            }
            c
        };
        let seconds = start.elapsed().as_secs_f64();
        let test_acc = accuracy(&net, &data.x_test, &data.y_test)?;
        let row = DesignRow {
            name: name.into(),
            params: net.num_parameters(),
            train_loss: *curve.last().unwrap_or(&f64::NAN),
            test_acc,
            curve,
            seconds,
        };
        opts.common.progress(|| {
            format!(
                "design: {name}: {} parameters, train loss {:.4}, test acc {:.4}",
                row.params, row.train_loss, row.test_acc
            )
        });
        Ok(row)
    };
    d2l_tensor::manual_seed(opts.common.seed);
    let width = vec![
        run("deep-narrow: 4 conv 3x3", deep_narrow(classes)?, true)?,
        run(
            "shallow-wide: 1 conv 7x7, 59 ch",
            shallow_wide(59, classes)?,
            true,
        )?,
    ];
    let d = opts.depth;
    let depth = vec![
        run(
            &format!("plain MLP, {d} layers"),
            deep_mlp(d, 128, classes, false, false)?,
            false,
        )?,
        run(
            &format!("+ batch norm, {d} layers"),
            deep_mlp(d, 128, classes, true, false)?,
            false,
        )?,
        run(
            &format!("+ residual (BN in branch), {d}"),
            deep_mlp(d, 128, classes, false, true)?,
            false,
        )?,
    ];
    let epochs: Vec<f64> = (1..=opts.epochs).map(|e| e as f64).collect();
    let spec = plot_spec(
        format!("7.5 / 7.6: training a {d}-layer MLP"),
        "epoch",
        "training loss",
    );
    let s: Vec<_> = depth
        .iter()
        .map(|r| series(&r.name, epochs.clone(), r.curve.clone()))
        .collect();
    let plot = opts.common.line_plot("design-depth", &spec, &s)?;
    Ok(DesignResults {
        dataset: data.used,
        notice: data.notice,
        sizes: (data.x_train.shape()[0], data.x_test.shape()[0], opts.epochs),
        width,
        depth,
        plot,
    })
}

impl fmt::Display for DesignResults {
    /// The two tables.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = &self.notice {
            writeln!(f, "{n}")?;
        }
        let (a, b, e) = self.sizes;
        writeln!(
            f,
            "D2L 7.2 / 7.5 / 7.6 design points on {} ({a} training, {b} test images, {e} epochs)",
            self.dataset
        )?;
        for (title, rows) in [
            (
                "7.2 the same parameter budget (Adam 0.001, batch 128):",
                &self.width,
            ),
            (
                "7.5 / 7.6 the same depth (SGD 0.05, batch 128):",
                &self.depth,
            ),
        ] {
            writeln!(f, "{title}")?;
            writeln!(
                f,
                "  {:<34} {:>8} {:>10} {:>9} {:>8}",
                "model", "params", "train loss", "test acc", "seconds"
            )?;
            for r in rows.iter() {
                writeln!(
                    f,
                    "  {:<34} {:>8} {:>10.4} {:>9.4} {:>8.1}",
                    r.name, r.params, r.train_loss, r.test_acc, r.seconds
                )?;
            }
        }
        if let Some(p) = &self.plot {
            write!(f, "plot: {}", p.display())?;
        }
        Ok(())
    }
}
