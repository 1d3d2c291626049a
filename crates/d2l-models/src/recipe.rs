//! Training recipes: the hyper-parameters the book uses for each model (D2L 3.2, 3.3,
//! 3.6, 3.7, 4.2, 4.3, 4.6 and the CNNs of 6.6 and 7.1–7.7; tables B.1 and B.2 of the
//! reference).
//!
//! A [`Recipe`] holds what a training run needs besides the model: epochs, batch size,
//! learning rate, optimiser (with momentum and weight decay), the dropout probabilities of
//! models that have them, an optional image resize, the data set and the book section.
//! Every chapter 3–4 model trains with plain minibatch SGD (no momentum, no weight
//! decay) on the unresized data.
//!
//! | § | model | data | batch | lr | epochs |
//! |---|---|---|---|---|---|
//! | 3.2 | linreg from scratch | synthetic | 10 | 0.03 | 3 |
//! | 3.3 | `Linear(2, 1)` | synthetic | 10 | 0.03 | 3 |
//! | 3.6 | softmax regression from scratch | Fashion-MNIST | 256 | 0.1 | 10 |
//! | 3.7 | `Flatten, Linear(784, 10)` | Fashion-MNIST | 256 | 0.1 | 10 |
//! | 4.2 | MLP 784-256-10 from scratch | Fashion-MNIST | 256 | 0.1 | 10 |
//! | 4.3 | `Flatten, Linear(784, 256), ReLU, Linear(256, 10)` | Fashion-MNIST | 256 | 0.1 | 10 |
//! | 4.6 | MLP 784-256-256-10, dropout 0.2 / 0.5 (scratch and concise) | Fashion-MNIST | 256 | 0.5 | 10 |
//!
//! The CNNs of chapters 6–7 all train with the book's `train_ch6`: plain SGD, mean
//! cross-entropy, 10 epochs on Fashion-MNIST (resized where noted):
//!
//! | § | model | resize | batch | lr |
//! |---|---|---|---|---|
//! | 6.6 | `lenet` (sigmoid, average pooling) | – | 256 | 0.9 |
//! | 6.6 | `lenet-relu-max` (ReLU, max pooling; not in the book, see below) | – | 256 | 0.1 |
//! | 7.1 | `alexnet` (dropout 0.5) | 224 | 128 | 0.01 |
//! | 7.2 | `vgg11` (channels / 4, dropout 0.5) and `vgg11-full` | 224 | 128 | 0.05 |
//! | 7.3 | `nin` (dropout 0.5) | 224 | 128 | 0.1 |
//! | 7.4 | `googlenet` | 96 | 128 | 0.1 |
//! | 7.5 | `lenet-bn-scratch` and `lenet-bn` | – | 256 | 1.0 |
//! | 7.6 | `resnet18` | 96 | 256 | 0.05 |
//! | 7.7 | `densenet` | 96 | 256 | 0.1 |
//!
//! The book trains only the sigmoid LeNet; its exercises suggest ReLU and max pooling.
//! With ReLU the book's lr 0.9 is too large (on Fashion-MNIST the net stays at chance:
//! train accuracy 0.105 after 2 epochs), so `lenet-relu-max` uses 0.1, the chapter 3–4
//! rate.

use d2l_tensor::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Which optimiser a recipe trains with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptimizerKind {
    /// Minibatch stochastic gradient descent (D2L 3.2 / 12.4), with optional momentum
    /// and (coupled, L2) weight decay.
    Sgd,
    /// Adam (D2L 12.10).
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    AdamW,
}

impl OptimizerKind {
    /// Every optimiser, in the order of their names in [`OptimizerKind::NAMES`].
    pub const ALL: [OptimizerKind; 3] = [
        OptimizerKind::Sgd,
        OptimizerKind::Adam,
        OptimizerKind::AdamW,
    ];

    /// The accepted names (`"sgd"`, `"adam"`, `"adamw"`).
    pub const NAMES: [&'static str; 3] = ["sgd", "adam", "adamw"];

    /// The lowercase name parsed by [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
        }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OptimizerKind {
    type Err = Error;

    /// Parses `"sgd"`, `"adam"` or `"adamw"` (case-insensitive); anything else is an
    /// [`Error::InvalidArgument`] listing the accepted names.
    fn from_str(s: &str) -> Result<OptimizerKind> {
        let lower = s.trim().to_ascii_lowercase();
        OptimizerKind::ALL
            .into_iter()
            .find(|k| k.as_str() == lower)
            .ok_or_else(|| Error::InvalidArgument {
                op: "OptimizerKind::from_str",
                msg: format!(
                    "unknown optimizer `{s}`; expected one of {}",
                    OptimizerKind::NAMES.join(", ")
                ),
            })
    }
}

/// The book's hyper-parameters for training one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// Passes over the training set.
    pub epochs: usize,
    /// Examples per minibatch.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// SGD momentum (0 = plain SGD; ignored by Adam/AdamW).
    pub momentum: f64,
    /// Weight decay (0 = none).
    pub weight_decay: f64,
    /// Dropout probabilities after hidden layers 1 and 2, for models with dropout.
    pub dropout: Option<(f64, f64)>,
    /// Side length images are resized to before training (`None` = native size).
    pub resize: Option<usize>,
    /// The data set, as named by `d2l_data::datasets::DatasetName`
    /// (`"fashion-mnist"`), or `"synthetic"` for the generated regression data of 3.2.
    pub dataset: &'static str,
    /// The D2L section the recipe comes from (`"4.3"`).
    pub section: &'static str,
}

/// The synthetic linear-regression data of D2L 3.2/3.3 (`w = [2, -3.4]`, `b = 4.2`).
pub const SYNTHETIC: &str = "synthetic";
/// Fashion-MNIST, as `d2l_data::datasets::DatasetName::FashionMnist` names it.
pub const FASHION_MNIST: &str = "fashion-mnist";

impl Recipe {
    /// Plain SGD with no momentum, weight decay, dropout or resize.
    const fn sgd(
        epochs: usize,
        batch_size: usize,
        lr: f64,
        dataset: &'static str,
        section: &'static str,
    ) -> Recipe {
        Recipe {
            epochs,
            batch_size,
            lr,
            optimizer: OptimizerKind::Sgd,
            momentum: 0.0,
            weight_decay: 0.0,
            dropout: None,
            resize: None,
            dataset,
            section,
        }
    }

    /// D2L 3.2, linear regression from scratch: batch 10, lr 0.03, 3 epochs, `d2l.sgd`
    /// on the summed squared loss (½ factor).
    pub const fn linreg_scratch() -> Recipe {
        Recipe::sgd(3, 10, 0.03, SYNTHETIC, "3.2")
    }

    /// D2L 3.3, concise linear regression: batch 10, lr 0.03, 3 epochs, `optim.SGD` on
    /// the mean `MSELoss`.
    pub const fn linreg() -> Recipe {
        Recipe::sgd(3, 10, 0.03, SYNTHETIC, "3.3")
    }

    /// D2L 3.6, softmax regression from scratch: batch 256, lr 0.1, 10 epochs.
    pub const fn softmax_scratch() -> Recipe {
        Recipe::sgd(10, 256, 0.1, FASHION_MNIST, "3.6")
    }

    /// D2L 3.7, concise softmax regression: batch 256, lr 0.1, 10 epochs.
    pub const fn softmax() -> Recipe {
        Recipe::sgd(10, 256, 0.1, FASHION_MNIST, "3.7")
    }

    /// D2L 4.2, MLP from scratch: batch 256, lr 0.1, 10 epochs.
    pub const fn mlp_scratch() -> Recipe {
        Recipe::sgd(10, 256, 0.1, FASHION_MNIST, "4.2")
    }

    /// D2L 4.3, concise MLP: batch 256, lr 0.1, 10 epochs.
    pub const fn mlp() -> Recipe {
        Recipe::sgd(10, 256, 0.1, FASHION_MNIST, "4.3")
    }

    /// D2L 4.6, dropout from scratch: batch 256, lr 0.5, 10 epochs, dropout 0.2 / 0.5.
    pub const fn mlp_dropout_scratch() -> Recipe {
        let mut r = Recipe::sgd(10, 256, 0.5, FASHION_MNIST, "4.6");
        r.dropout = Some((0.2, 0.5));
        r
    }

    /// D2L 4.6, concise dropout: batch 256, lr 0.5, 10 epochs, dropout 0.2 / 0.5.
    pub const fn mlp_dropout() -> Recipe {
        Recipe::mlp_dropout_scratch()
    }

    /// `train_ch6` on Fashion-MNIST: plain SGD, 10 epochs, with `resize` and dropout.
    const fn ch6(
        batch_size: usize,
        lr: f64,
        resize: Option<usize>,
        dropout: Option<(f64, f64)>,
        section: &'static str,
    ) -> Recipe {
        let mut r = Recipe::sgd(10, batch_size, lr, FASHION_MNIST, section);
        r.resize = resize;
        r.dropout = dropout;
        r
    }

    /// D2L 6.6, LeNet (sigmoid, average pooling): batch 256, lr 0.9, 10 epochs, 28×28.
    pub const fn lenet() -> Recipe {
        Recipe::ch6(256, 0.9, None, None, "6.6")
    }

    /// LeNet with ReLU and max pooling (the 6.6 exercise): batch 256, lr 0.1 (with the
    /// book's 0.9 this net does not learn), 10 epochs, 28×28. Not a recipe of the book.
    pub const fn lenet_relu_max() -> Recipe {
        Recipe::ch6(256, 0.1, None, None, "6.6")
    }

    /// D2L 7.1, AlexNet: batch 128, lr 0.01, 10 epochs, resize 224, dropout 0.5 / 0.5.
    pub const fn alexnet() -> Recipe {
        Recipe::ch6(128, 0.01, Some(224), Some((0.5, 0.5)), "7.1")
    }

    /// D2L 7.2, VGG-11 with channels / 4: batch 128, lr 0.05, 10 epochs, resize 224,
    /// dropout 0.5 / 0.5 (also used for the full-width `vgg11-full`).
    pub const fn vgg11() -> Recipe {
        Recipe::ch6(128, 0.05, Some(224), Some((0.5, 0.5)), "7.2")
    }

    /// D2L 7.3, NiN: batch 128, lr 0.1, 10 epochs, resize 224, dropout 0.5 (NiN has one
    /// dropout layer; it reads the first of the pair).
    pub const fn nin() -> Recipe {
        Recipe::ch6(128, 0.1, Some(224), Some((0.5, 0.5)), "7.3")
    }

    /// D2L 7.4, GoogLeNet: batch 128, lr 0.1, 10 epochs, resize 96.
    pub const fn googlenet() -> Recipe {
        Recipe::ch6(128, 0.1, Some(96), None, "7.4")
    }

    /// D2L 7.5, BN-LeNet from scratch: batch 256, lr 1.0, 10 epochs, 28×28.
    pub const fn lenet_bn_scratch() -> Recipe {
        Recipe::ch6(256, 1.0, None, None, "7.5")
    }

    /// D2L 7.5, concise BN-LeNet: batch 256, lr 1.0, 10 epochs, 28×28.
    pub const fn lenet_bn() -> Recipe {
        Recipe::ch6(256, 1.0, None, None, "7.5")
    }

    /// D2L 7.6, ResNet-18: batch 256, lr 0.05, 10 epochs, resize 96.
    pub const fn resnet18() -> Recipe {
        Recipe::ch6(256, 0.05, Some(96), None, "7.6")
    }

    /// D2L 7.7, DenseNet: batch 256, lr 0.1, 10 epochs, resize 96.
    pub const fn densenet() -> Recipe {
        Recipe::ch6(256, 0.1, Some(96), None, "7.7")
    }

    /// Every recipe with a name: chapters 3–4 — `linreg-scratch` (3.2), `linreg` (3.3),
    /// `softmax-scratch` (3.6), `softmax` (3.7), `mlp-scratch` (4.2), `mlp` (4.3),
    /// `mlp-dropout-scratch` and `mlp-dropout` (4.6) — and chapters 6–7 — `lenet`,
    /// `lenet-relu-max` (6.6), `alexnet` (7.1), `vgg11`, `vgg11-full` (7.2), `nin` (7.3),
    /// `googlenet` (7.4), `lenet-bn-scratch`, `lenet-bn` (7.5), `resnet18` (7.6),
    /// `densenet` (7.7). The concise names match the zoo's.
    pub fn book() -> Vec<(&'static str, Recipe)> {
        vec![
            ("linreg-scratch", Recipe::linreg_scratch()),
            ("linreg", Recipe::linreg()),
            ("softmax-scratch", Recipe::softmax_scratch()),
            ("softmax", Recipe::softmax()),
            ("mlp-scratch", Recipe::mlp_scratch()),
            ("mlp", Recipe::mlp()),
            ("mlp-dropout-scratch", Recipe::mlp_dropout_scratch()),
            ("mlp-dropout", Recipe::mlp_dropout()),
            ("lenet", Recipe::lenet()),
            ("lenet-relu-max", Recipe::lenet_relu_max()),
            ("alexnet", Recipe::alexnet()),
            ("vgg11", Recipe::vgg11()),
            ("vgg11-full", Recipe::vgg11()),
            ("nin", Recipe::nin()),
            ("googlenet", Recipe::googlenet()),
            ("lenet-bn-scratch", Recipe::lenet_bn_scratch()),
            ("lenet-bn", Recipe::lenet_bn()),
            ("resnet18", Recipe::resnet18()),
            ("densenet", Recipe::densenet()),
        ]
    }

    /// The recipe named as in [`Recipe::book`]; an unknown name is an
    /// [`Error::InvalidArgument`] listing the known ones.
    pub fn by_name(name: &str) -> Result<Recipe> {
        let all = Recipe::book();
        let key = name.trim().to_ascii_lowercase().replace('_', "-");
        all.iter()
            .find(|(n, _)| *n == key)
            .map(|(_, r)| r.clone())
            .ok_or_else(|| Error::InvalidArgument {
                op: "Recipe::by_name",
                msg: format!(
                    "unknown recipe `{name}`; expected one of {}",
                    all.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ),
            })
    }
}

impl fmt::Display for Recipe {
    /// One line: `§4.3 fashion-mnist: 10 epochs, batch 256, sgd lr 0.1` plus momentum,
    /// weight decay, dropout and resize when set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "§{} {}: {} epochs, batch {}, {} lr {}",
            self.section, self.dataset, self.epochs, self.batch_size, self.optimizer, self.lr
        )?;
        if self.momentum != 0.0 {
            write!(f, ", momentum {}", self.momentum)?;
        }
        if self.weight_decay != 0.0 {
            write!(f, ", weight decay {}", self.weight_decay)?;
        }
        if let Some((p1, p2)) = self.dropout {
            write!(f, ", dropout {p1}/{p2}")?;
        }
        if let Some(r) = self.resize {
            write!(f, ", resize {r}")?;
        }
        Ok(())
    }
}
