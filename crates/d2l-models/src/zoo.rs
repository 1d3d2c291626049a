//! The model zoo: every concise model of D2L chapters 3–4 and the CNNs of chapters 6–7,
//! built layer for layer and initialised exactly as the book does, with its recipe.
//!
//! | name | § | network | initialisation |
//! |---|---|---|---|
//! | `linreg` | 3.3 | `Linear(2, 1)` | weight N(0, 0.01²), bias 0 |
//! | `softmax` | 3.7 | `Flatten, Linear(784, 10)` | weight N(0, 0.01²), bias PyTorch default |
//! | `mlp` | 4.3 | `Flatten, Linear(784, 256), ReLU, Linear(256, 10)` | weights N(0, 0.01²), biases default |
//! | `mlp-phm-2`, `-4`, `-8` | 3.4 | `Flatten, PhmLinear(784, 256, n), ReLU, Linear(256, 10)` | A, S Xavier / U(±1/√784); output N(0, 0.01²) |
//! | `mlp-dropout` | 4.6 | `Flatten, Linear(784, 256), ReLU, Dropout(0.2), Linear(256, 256), ReLU, Dropout(0.5), Linear(256, 10)` | weights N(0, 0.01²), biases default |
//!
//! | `lenet` | 6.6 | LeNet: sigmoid, average pooling | Xavier-uniform weights (`train_ch6`) |
//! | `lenet-relu-max` | 6.6 | LeNet with ReLU and max pooling | Xavier-uniform weights |
//! | `alexnet` | 7.1 | AlexNet, dropout 0.5 | Xavier-uniform weights |
//! | `vgg11` | 7.2 | VGG-11 with channels / 4 (the book's trained `small_conv_arch`) | Xavier-uniform weights |
//! | `vgg11-full` | 7.2 | VGG-11 at full width (the book's layer walk) | Xavier-uniform weights |
//! | `nin` | 7.3 | Network in network | Xavier-uniform weights |
//! | `googlenet` | 7.4 | GoogLeNet, 9 Inception blocks | Xavier-uniform weights |
//! | `lenet-bn-scratch` | 7.5 | LeNet + from-scratch `BatchNorm` | Xavier-uniform weights, γ = 1, β = 0 |
//! | `lenet-bn` | 7.5 | LeNet + `BatchNorm2d` / `BatchNorm1d` | Xavier-uniform weights, γ = 1, β = 0 |
//! | `resnet18` | 7.6 | ResNet-18 (`Residual` blocks) | Xavier-uniform weights, γ = 1, β = 0 |
//! | `densenet` | 7.7 | DenseNet (dense and transition blocks) | Xavier-uniform weights, γ = 1, β = 0 |
//!
//! "PyTorch default" is `nn.Linear`'s U(±1/√in_features). The CNNs are initialised as the
//! book's `train_ch6` does before training: `xavier_uniform_` on every `Linear` and
//! `Conv2d` weight, biases left at PyTorch's default (see [`crate::cnn`], which also holds
//! the blocks and the builders with their extra arguments, such as VGG's channel ratio). Sizes follow the
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

use crate::cnn;
use crate::recipe::Recipe;
use d2l_nn::init;
use d2l_nn::layers::{Dropout, Flatten, Linear, ReLU};
use d2l_nn::Sequential;
use d2l_tensor::{Error, Result};

/// What a model predicts, which decides its loss, metrics and training task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Class scores (logits) over `num_outputs` classes; cross-entropy and accuracy.
    Classification,
    /// Real-valued outputs; squared loss.
    Regression,
    /// Next-token logits of a character language model (8.5–9.2); perplexity.
    LanguageModel,
    /// Anchor classes and box offsets (TinySSD, 13.7); class error and bbox MAE.
    Detection,
    /// Per-pixel class scores (FCN, 13.11); pixel accuracy and mean IoU.
    Segmentation,
}

impl TaskKind {
    /// A short name (`"classification"`, `"language-model"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Classification => "classification",
            TaskKind::Regression => "regression",
            TaskKind::LanguageModel => "language-model",
            TaskKind::Detection => "detection",
            TaskKind::Segmentation => "segmentation",
        }
    }
}

/// Any model of the zoo — the `Sequential` ones of [`models`], the character language
/// models of [`crate::rnn_lm::char_models`], TinySSD and the FCN — with its task, which
/// decides how `d2l train` trains it.
#[derive(Debug, Clone, PartialEq)]
pub struct ZooEntry {
    /// Name used on the command line.
    pub name: &'static str,
    /// The D2L section.
    pub section: &'static str,
    /// A human title.
    pub title: String,
    /// What it predicts.
    pub task: TaskKind,
    /// The book's input without the batch dim (`[T]` token steps for a language model).
    pub default_input: Vec<usize>,
    /// The book's recipe in one line.
    pub recipe: String,
}

/// Every model of the zoo, in book order within each kind.
pub fn entries() -> Vec<ZooEntry> {
    let mut out: Vec<ZooEntry> = models()
        .into_iter()
        .map(|m| ZooEntry {
            name: m.name,
            section: m.section,
            title: m.title.to_string(),
            task: m.task,
            default_input: m.default_input.clone(),
            recipe: m.recipe.to_string(),
        })
        .collect();
    out.extend(crate::rnn_lm::char_models().into_iter().map(|m| ZooEntry {
        name: m.name,
        section: m.section,
        title: m.title.to_string(),
        task: TaskKind::LanguageModel,
        default_input: vec![m.num_steps],
        recipe: m.to_string(),
    }));
    out.push(ZooEntry {
        name: "tiny-ssd",
        section: "13.7",
        title: "TinySSD single-shot detector".into(),
        task: TaskKind::Detection,
        default_input: vec![3, 256, 256],
        recipe: "banana-detection (or generated), batch 32, lr 0.2, wd 5e-4, 20 epochs, SGD".into(),
    });
    out.push(ZooEntry {
        name: "faster-rcnn",
        section: "13.8",
        title: "Faster R-CNN (ResNet-18 body to layer2, RPN, RoI align, two FC; torchvision names)"
            .into(),
        task: TaskKind::Detection,
        default_input: vec![3, 256, 256],
        recipe:
            "banana-detection (or generated), batch 4, SGD lr 0.01 momentum 0.9, wd 1e-4, 10 epochs"
                .into(),
    });
    out.push(ZooEntry {
        name: "mask-rcnn",
        section: "13.8",
        title: "Mask R-CNN (Faster R-CNN + 14×14 RoI align mask head, 28×28 masks)".into(),
        task: TaskKind::Detection,
        default_input: vec![3, 256, 256],
        recipe: "generated instance-segmentation set, batch 4, SGD lr 0.01 momentum 0.9, wd 1e-4, 10 epochs".into(),
    });
    out.push(ZooEntry {
        name: "fcn",
        section: "13.11",
        title: "Fully convolutional network (ResNet-18 body)".into(),
        task: TaskKind::Segmentation,
        default_input: vec![3, 320, 480],
        recipe: "voc (or generated), batch 32, lr 0.001, wd 1e-3, 5 epochs, SGD".into(),
    });
    out
}

/// The zoo entry called `name` (case-insensitive; `_` is read as `-`), of any kind. An
/// unknown name is an [`Error::InvalidArgument`] listing every known one.
pub fn entry(name: &str) -> Result<ZooEntry> {
    let key = name.trim().to_ascii_lowercase().replace('_', "-");
    let all = entries();
    let names: Vec<&str> = all.iter().map(|m| m.name).collect();
    let names = names.join(", ");
    all.into_iter()
        .find(|m| m.name == key)
        .ok_or_else(|| Error::InvalidArgument {
            op: "zoo::entry",
            msg: format!("unknown model `{name}`; known models: {names}"),
        })
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
    /// Models without hidden layers ignore it. For the CNNs it scales conv channels and
    /// hidden `Linear` units alike (see [`crate::cnn`]), so a laptop can train a narrower
    /// version of any of them.
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

fn build_vgg11(cfg: &BuildConfig) -> Result<Sequential> {
    cnn::vgg11(4, cfg)
}

fn build_vgg11_full(cfg: &BuildConfig) -> Result<Sequential> {
    cnn::vgg11(1, cfg)
}

/// A chapter 6–7 CNN entry: classification of Fashion-MNIST, 10 classes, the book's input.
fn cnn_entry(
    name: &'static str,
    title: &'static str,
    recipe: Recipe,
    side: usize,
    build: fn(&BuildConfig) -> Result<Sequential>,
) -> ModelInfo {
    ModelInfo {
        name,
        title,
        section: recipe.section,
        task: TaskKind::Classification,
        recipe,
        default_input: vec![1, side, side],
        default_outputs: 10,
        build,
    }
}

/// A `mlp-phm-N` entry: the 4.3 MLP's recipe and data with a PHM hidden layer.
fn phm_entry(
    name: &'static str,
    input: Vec<usize>,
    build: fn(&BuildConfig) -> Result<Sequential>,
) -> ModelInfo {
    ModelInfo {
        name,
        title: "MLP with a PHM (hypercomplex) hidden layer",
        section: "3.4",
        task: TaskKind::Classification,
        // The 4.3 MLP's hyper-parameters, filed under 3.4.
        recipe: Recipe {
            section: "3.4",
            ..Recipe::mlp()
        },
        default_input: input,
        default_outputs: 10,
        build,
    }
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
        cnn_entry(
            "lenet",
            "LeNet (sigmoid, average pooling)",
            Recipe::lenet(),
            28,
            cnn::lenet,
        ),
        cnn_entry(
            "lenet-relu-max",
            "LeNet with ReLU and max pooling",
            Recipe::lenet_relu_max(),
            28,
            cnn::lenet_relu_max,
        ),
        cnn_entry("alexnet", "AlexNet", Recipe::alexnet(), 224, cnn::alexnet),
        cnn_entry(
            "vgg11",
            "VGG-11, channels / 4 (as trained)",
            Recipe::vgg11(),
            224,
            build_vgg11,
        ),
        cnn_entry(
            "vgg11-full",
            "VGG-11, full width",
            Recipe::vgg11(),
            224,
            build_vgg11_full,
        ),
        cnn_entry(
            "nin",
            "Network in network (NiN)",
            Recipe::nin(),
            224,
            cnn::nin,
        ),
        cnn_entry(
            "googlenet",
            "GoogLeNet",
            Recipe::googlenet(),
            96,
            cnn::googlenet,
        ),
        cnn_entry(
            "lenet-bn-scratch",
            "LeNet with batch norm from scratch",
            Recipe::lenet_bn_scratch(),
            28,
            cnn::lenet_bn_scratch,
        ),
        cnn_entry(
            "lenet-bn",
            "LeNet with batch norm (concise)",
            Recipe::lenet_bn(),
            28,
            cnn::lenet_bn,
        ),
        cnn_entry(
            "resnet18",
            "ResNet-18",
            Recipe::resnet18(),
            96,
            cnn::resnet18,
        ),
        cnn_entry(
            "densenet",
            "DenseNet",
            Recipe::densenet(),
            96,
            cnn::densenet,
        ),
        // 3.4's PHM layer in the 4.3 MLP (crate::phm), n = 2, 4, 8 Kronecker terms.
        phm_entry("mlp-phm-2", vec![1, 28, 28], |c| crate::phm::mlp_phm(c, 2)),
        phm_entry("mlp-phm-4", vec![1, 28, 28], |c| crate::phm::mlp_phm(c, 4)),
        phm_entry("mlp-phm-8", vec![1, 28, 28], |c| crate::phm::mlp_phm(c, 8)),
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
