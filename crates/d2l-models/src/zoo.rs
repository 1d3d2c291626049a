//! The model zoo: every concise model of D2L chapters 3–4, built layer for layer and
//! initialised exactly as the book does, with its recipe.
//!
//! | name | § | network | initialisation |
//! |---|---|---|---|
//! | `linreg` | 3.3 | `Linear(2, 1)` | weight N(0, 0.01²), bias 0 |
//! | `softmax` | 3.7 | `Flatten, Linear(784, 10)` | weight N(0, 0.01²), bias PyTorch default |
//! | `mlp` | 4.3 | `Flatten, Linear(784, 256), ReLU, Linear(256, 10)` | weights N(0, 0.01²), biases default |
//! | `mlp-dropout` | 4.6 | `Flatten, Linear(784, 256), ReLU, Dropout(0.2), Linear(256, 256), ReLU, Dropout(0.5), Linear(256, 10)` | weights N(0, 0.01²), biases default |
//!
//! "PyTorch default" is `nn.Linear`'s U(±1/√in_features). Sizes follow the
//! [`BuildConfig`]: the input features are the product of `in_shape` (so a resized image
//! just widens the first layer), the last layer has `num_outputs` units, and hidden widths
//! scale with `width_mult`.
//!
//! ```
//! use d2l_models::zoo;
//! use d2l_nn::Module;
//! # fn main() -> d2l_tensor::Result<()> {
//! let info = zoo::model("mlp")?;
//! let net = info.build(&info.default_config())?;
//! assert_eq!(net.num_parameters(), 203_530);
//! assert_eq!(info.recipe.lr, 0.1);
//! # Ok(()) }
//! ```

use crate::recipe::Recipe;
use d2l_nn::init;
use d2l_nn::layers::{Dropout, Flatten, Linear, ReLU};
use d2l_nn::Sequential;
use d2l_tensor::{Error, Result};

/// What a model predicts, which decides its loss and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Class scores (logits) over `num_outputs` classes; cross-entropy and accuracy.
    Classification,
    /// Real-valued outputs; squared loss.
    Regression,
}

/// The sizes a model is built for.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildConfig {
    /// One example's shape without the batch dim: `[C, H, W]` for images or
    /// `[features]` for tabular data.
    pub in_shape: Vec<usize>,
    /// Units of the output layer (classes, or regression targets).
    pub num_outputs: usize,
    /// Dropout probabilities after hidden layers 1 and 2; read only by models with
    /// dropout (`mlp-dropout`), which fall back to the book's (0.2, 0.5) when `None`.
    pub dropout: Option<(f64, f64)>,
    /// Multiplies every hidden width (rounded, at least 1); 1.0 is the book's network.
    /// Models without hidden layers ignore it.
    pub width_mult: f64,
}

impl BuildConfig {
    /// A config for `in_shape` and `num_outputs`, no dropout override, width 1.0.
    pub fn new(in_shape: &[usize], num_outputs: usize) -> BuildConfig {
        BuildConfig {
            in_shape: in_shape.to_vec(),
            num_outputs,
            dropout: None,
            width_mult: 1.0,
        }
    }

    /// The number of input features: the product of `in_shape`.
    pub fn in_features(&self) -> usize {
        self.in_shape.iter().product()
    }

    /// A hidden width scaled by `width_mult` (rounded, at least 1).
    pub fn hidden(&self, base: usize) -> usize {
        ((base as f64 * self.width_mult).round() as usize).max(1)
    }

    fn validate(&self, model: &str) -> Result<()> {
        let bad = |msg: String| Error::InvalidArgument {
            op: "zoo::build",
            msg,
        };
        if self.in_shape.is_empty() || self.in_shape.contains(&0) {
            return Err(bad(format!(
                "{model}: expected a non-empty input shape without zeros, got {:?}",
                self.in_shape
            )));
        }
        if self.num_outputs == 0 {
            return Err(bad(format!("{model}: expected num_outputs > 0")));
        }
        if !(self.width_mult.is_finite() && self.width_mult > 0.0) {
            return Err(bad(format!(
                "{model}: expected a positive finite width_mult, got {}",
                self.width_mult
            )));
        }
        if let Some((p1, p2)) = self.dropout {
            if !(0.0..=1.0).contains(&p1) || !(0.0..=1.0).contains(&p2) {
                return Err(bad(format!(
                    "{model}: expected dropout probabilities in [0, 1], got ({p1}, {p2})"
                )));
            }
        }
        Ok(())
    }
}

/// One zoo entry: names, section, task, the book's recipe and a builder.
#[derive(Clone)]
pub struct ModelInfo {
    /// Lowercase-hyphen name used on the command line (`"mlp-dropout"`).
    pub name: &'static str,
    /// A human title (`"Multilayer perceptron with dropout"`).
    pub title: &'static str,
    /// The D2L section the model comes from (`"4.6"`).
    pub section: &'static str,
    /// Classification or regression.
    pub task: TaskKind,
    /// The book's hyper-parameters for this model.
    pub recipe: Recipe,
    /// The book's input shape without the batch dim (`[1, 28, 28]`, or `[2]` for linreg).
    pub default_input: Vec<usize>,
    /// The book's number of outputs (10 classes, or 1 regression target).
    pub default_outputs: usize,
    build: fn(&BuildConfig) -> Result<Sequential>,
}

impl std::fmt::Debug for ModelInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelInfo")
            .field("name", &self.name)
            .field("title", &self.title)
            .field("section", &self.section)
            .field("task", &self.task)
            .field("recipe", &self.recipe)
            .field("default_input", &self.default_input)
            .field("default_outputs", &self.default_outputs)
            .finish_non_exhaustive()
    }
}

impl ModelInfo {
    /// Builds a freshly initialised network for `cfg` (random draws come from the global
    /// generator, so `d2l_tensor::manual_seed` makes it reproducible).
    pub fn build(&self, cfg: &BuildConfig) -> Result<Sequential> {
        cfg.validate(self.name)?;
        (self.build)(cfg)
    }

    /// The book's configuration: `default_input`, `default_outputs`, the recipe's
    /// dropout, width 1.0.
    pub fn default_config(&self) -> BuildConfig {
        BuildConfig {
            in_shape: self.default_input.clone(),
            num_outputs: self.default_outputs,
            dropout: self.recipe.dropout,
            width_mult: 1.0,
        }
    }

    /// [`ModelInfo::default_config`] with images resized to `size`×`size` when
    /// `resize` is set (image models only; the channel count is kept).
    pub fn config_for(&self, resize: Option<usize>) -> BuildConfig {
        let mut cfg = self.default_config();
        if let (Some(s), 3) = (resize, cfg.in_shape.len()) {
            cfg.in_shape[1] = s;
            cfg.in_shape[2] = s;
        }
        cfg
    }
}

/// `Linear(in, out)` with weight ~ N(0, 0.01²) (the book's `normal_(std=0.01)`), the
/// bias left at PyTorch's default init.
fn linear_n001(in_features: usize, out_features: usize) -> Result<Linear> {
    let l = Linear::new(in_features, out_features)?;
    init::normal_(&l.weight, 0.0, 0.01)?;
    Ok(l)
}

/// D2L 3.3: `nn.Sequential(nn.Linear(2, 1))`, `weight.data.normal_(0, 0.01)`,
/// `bias.data.fill_(0)`. A multi-dimensional `in_shape` is flattened first.
fn build_linreg(cfg: &BuildConfig) -> Result<Sequential> {
    let mut net = Sequential::new();
    if cfg.in_shape.len() > 1 {
        net.push(Flatten::new());
    }
    let l = linear_n001(cfg.in_features(), cfg.num_outputs)?;
    if let Some(b) = &l.bias {
        init::zeros_(b)?;
    }
    net.push(l);
    Ok(net)
}

/// D2L 3.7: `nn.Sequential(nn.Flatten(), nn.Linear(784, 10))`, weights N(0, 0.01²).
fn build_softmax(cfg: &BuildConfig) -> Result<Sequential> {
    Ok(Sequential::new()
        .add(Flatten::new())
        .add(linear_n001(cfg.in_features(), cfg.num_outputs)?))
}

/// D2L 4.3: `Flatten, Linear(784, 256), ReLU, Linear(256, 10)`, weights N(0, 0.01²).
fn build_mlp(cfg: &BuildConfig) -> Result<Sequential> {
    let h = cfg.hidden(256);
    Ok(Sequential::new()
        .add(Flatten::new())
        .add(linear_n001(cfg.in_features(), h)?)
        .add(ReLU)
        .add(linear_n001(h, cfg.num_outputs)?))
}

/// D2L 4.6 (concise): `Flatten, Linear(784, 256), ReLU, Dropout(0.2), Linear(256, 256),
/// ReLU, Dropout(0.5), Linear(256, 10)`, weights N(0, 0.01²).
fn build_mlp_dropout(cfg: &BuildConfig) -> Result<Sequential> {
    let (p1, p2) = cfg.dropout.unwrap_or((0.2, 0.5));
    let (h1, h2) = (cfg.hidden(256), cfg.hidden(256));
    Ok(Sequential::new()
        .add(Flatten::new())
        .add(linear_n001(cfg.in_features(), h1)?)
        .add(ReLU)
        .add(Dropout::new(p1)?)
        .add(linear_n001(h1, h2)?)
        .add(ReLU)
        .add(Dropout::new(p2)?)
        .add(linear_n001(h2, cfg.num_outputs)?))
}

/// Every model in the zoo, in book order.
pub fn models() -> Vec<ModelInfo> {
    let fmnist = vec![1, 28, 28];
    vec![
        ModelInfo {
            name: "linreg",
            title: "Linear regression (concise)",
            section: "3.3",
            task: TaskKind::Regression,
            recipe: Recipe::linreg(),
            default_input: vec![2],
            default_outputs: 1,
            build: build_linreg,
        },
        ModelInfo {
            name: "softmax",
            title: "Softmax regression (concise)",
            section: "3.7",
            task: TaskKind::Classification,
            recipe: Recipe::softmax(),
            default_input: fmnist.clone(),
            default_outputs: 10,
            build: build_softmax,
        },
        ModelInfo {
            name: "mlp",
            title: "Multilayer perceptron (concise)",
            section: "4.3",
            task: TaskKind::Classification,
            recipe: Recipe::mlp(),
            default_input: fmnist.clone(),
            default_outputs: 10,
            build: build_mlp,
        },
        ModelInfo {
            name: "mlp-dropout",
            title: "Multilayer perceptron with dropout (concise)",
            section: "4.6",
            task: TaskKind::Classification,
            recipe: Recipe::mlp_dropout(),
            default_input: fmnist,
            default_outputs: 10,
            build: build_mlp_dropout,
        },
    ]
}

/// The names of every model, in book order.
pub fn names() -> Vec<&'static str> {
    models().iter().map(|m| m.name).collect()
}

/// The zoo entry called `name` (case-insensitive; `_` is read as `-`). An unknown name
/// is an [`Error::InvalidArgument`] listing every known one.
pub fn model(name: &str) -> Result<ModelInfo> {
    let key = name.trim().to_ascii_lowercase().replace('_', "-");
    let all = models();
    let names: Vec<&str> = all.iter().map(|m| m.name).collect();
    let names = names.join(", ");
    all.into_iter()
        .find(|m| m.name == key)
        .ok_or_else(|| Error::InvalidArgument {
            op: "zoo::model",
            msg: format!("unknown model `{name}`; known models: {names}"),
        })
}
