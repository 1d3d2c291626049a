//! The from-scratch models, written as the book's user-level code is: bare parameter
//! tensors and the book's own functions instead of library layers.
//!
//! * D2L 3.2 linear regression: [`linreg`], [`squared_loss`], [`sgd`] and
//!   [`LinRegScratch`] (`w` (2, 1) ~ N(0, 0.01²), `b` = 0).
//! * D2L 3.6 softmax regression: [`softmax_scratch`] (the book's unstabilised
//!   `exp / row sum`), [`cross_entropy_scratch`] (−log ŷ\[y\]) and [`SoftmaxScratch`]
//!   (`W` (784, 10) ~ N(0, 0.01²), `b` = 0). Its forward returns **probabilities**, as
//!   the book's `net` does, so train it with [`cross_entropy_scratch`], not with a fused
//!   cross-entropy on logits.
//! * D2L 4.2 MLP: [`relu_scratch`] and [`MlpScratch`] (`W1` = randn·0.01, `b1` = 0,
//!   `W2` = randn·0.01, `b2` = 0); returns logits.
//! * D2L 4.6 dropout: [`dropout_layer`] (mask `rand > p`, scaled by 1/(1−p)) and
//!   [`DropoutMlpScratch`] (three default-initialised `nn.Linear` named `lin1`–`lin3`,
//!   dropout 0.2 / 0.5 after the hidden layers while training); returns logits.
//!
//! Parameter names are the book's: `w`, `b` (3.2); `W`, `b` (3.6); `W1`, `b1`, `W2`,
//! `b2` (4.2); `lin1.weight`, `lin1.bias`, … (4.6, whose `Net` holds `nn.Linear`s).

use d2l_nn::layers::Linear;
use d2l_nn::Module;
use d2l_tensor::{no_grad, Error, Result, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A fresh leaf parameter: N(0, std²) of `shape`, requiring grad.
fn normal_param(shape: &[usize], std: f64) -> Result<Tensor> {
    Tensor::normal(shape, 0.0, std)?.requires_grad_(true)
}

/// A fresh leaf parameter of zeros, requiring grad.
fn zeros_param(shape: &[usize]) -> Result<Tensor> {
    Tensor::zeros(shape).requires_grad_(true)
}

fn non_zero(op: &'static str, sizes: &[usize]) -> Result<()> {
    if sizes.contains(&0) {
        return Err(Error::InvalidArgument {
            op,
            msg: format!("expected non-zero sizes, got {sizes:?}"),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------- 3.2 linear regression

/// D2L 3.2 `linreg(X, w, b)`: the linear regression model `Xw + b`.
pub fn linreg(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.matmul(w)?.add(b)
}

/// D2L 3.2 `squared_loss(y_hat, y)`: `(ŷ − y.reshape(ŷ.shape))² / 2`, elementwise (no
/// reduction).
pub fn squared_loss(y_hat: &Tensor, y: &Tensor) -> Result<Tensor> {
    let y = y.reshape(y_hat.shape())?;
    y_hat.sub(&y)?.square()?.div_scalar(2.0)
}

/// D2L 3.2 `sgd(params, lr, batch_size)`: minibatch SGD by hand. Inside `no_grad`,
/// `param -= lr * param.grad / batch_size`, then the gradient is cleared. Parameters
/// without a gradient are skipped.
pub fn sgd(params: &[Tensor], lr: f64, batch_size: usize) -> Result<()> {
    if batch_size == 0 {
        return Err(Error::InvalidArgument {
            op: "sgd",
            msg: "expected batch_size > 0".into(),
        });
    }
    no_grad(|| {
        for p in params {
            if let Some(g) = p.grad() {
                p.sub_(&g.mul_scalar(lr / batch_size as f64)?)?;
                p.zero_grad();
            }
        }
        Ok(())
    })
}

/// D2L 3.2 linear regression from scratch: `w` of shape (num_inputs, 1) ~ N(0, 0.01²),
/// `b` of shape (1) = 0; forward is [`linreg`].
pub struct LinRegScratch {
    /// Weights, (num_inputs, 1).
    pub w: Tensor,
    /// Bias, (1).
    pub b: Tensor,
}

impl LinRegScratch {
    /// The book's initialisation for `num_inputs` features (2 in the book).
    pub fn new(num_inputs: usize) -> Result<Self> {
        non_zero("LinRegScratch::new", &[num_inputs])?;
        Ok(LinRegScratch {
            w: normal_param(&[num_inputs, 1], 0.01)?,
            b: zeros_param(&[1])?,
        })
    }
}

impl Module for LinRegScratch {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        linreg(x, &self.w, &self.b)
    }

    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        vec![("w".into(), self.w.clone()), ("b".into(), self.b.clone())]
    }

    fn describe(&self) -> String {
        format!("LinRegScratch(num_inputs={})", self.w.shape()[0])
    }
}

// ---------------------------------------------------------------- 3.6 softmax regression

/// D2L 3.6 `softmax(X)`: `exp(X) / exp(X).sum(1, keepdim=True)`, row by row, **not**
/// stabilised (large logits overflow, as in the book). Each row of the result sums to 1.
pub fn softmax_scratch(x: &Tensor) -> Result<Tensor> {
    let x_exp = x.exp()?;
    let partition = x_exp.sum(&[1], true)?;
    x_exp.div(&partition) // broadcasting applies here
}

/// D2L 3.6 `cross_entropy(y_hat, y)`: `−log(y_hat[range(len(y_hat)), y])`, one loss per
/// example (no reduction). `y_hat` holds probabilities (n, q); `y` integer labels (n).
pub fn cross_entropy_scratch(y_hat: &Tensor, y: &Tensor) -> Result<Tensor> {
    let idx = y.reshape([-1, 1])?;
    y_hat.gather(1, &idx)?.reshape([-1])?.log()?.neg()
}

/// D2L 3.6 softmax regression from scratch: `W` (num_inputs, num_outputs) ~ N(0, 0.01²),
/// `b` (num_outputs) = 0, and
/// `net(X) = softmax(matmul(X.reshape((-1, W.shape[0])), W) + b)`: probabilities.
pub struct SoftmaxScratch {
    /// Weights, (num_inputs, num_outputs).
    pub w: Tensor,
    /// Bias, (num_outputs).
    pub b: Tensor,
}

impl SoftmaxScratch {
    /// The book's model for `num_inputs` features and `num_outputs` classes (784, 10).
    pub fn new(num_inputs: usize, num_outputs: usize) -> Result<Self> {
        non_zero("SoftmaxScratch::new", &[num_inputs, num_outputs])?;
        Ok(SoftmaxScratch {
            w: normal_param(&[num_inputs, num_outputs], 0.01)?,
            b: zeros_param(&[num_outputs])?,
        })
    }
}

impl Module for SoftmaxScratch {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.reshape([-1, self.w.shape()[0] as isize])?;
        softmax_scratch(&x.matmul(&self.w)?.add(&self.b)?)
    }

    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        vec![("W".into(), self.w.clone()), ("b".into(), self.b.clone())]
    }

    fn describe(&self) -> String {
        format!(
            "SoftmaxScratch(num_inputs={}, num_outputs={})",
            self.w.shape()[0],
            self.w.shape()[1]
        )
    }
}

// ---------------------------------------------------------------- 4.2 MLP

/// D2L 4.2 `relu(X)`: `max(X, zeros_like(X))`.
pub fn relu_scratch(x: &Tensor) -> Result<Tensor> {
    x.maximum(&x.zeros_like())
}

/// D2L 4.2 MLP from scratch: one hidden layer,
/// `H = relu(X @ W1 + b1); return H @ W2 + b2` (logits), with `W1`, `W2` =
/// `randn · 0.01` and `b1`, `b2` = 0.
pub struct MlpScratch {
    /// Hidden weights, (num_inputs, num_hiddens).
    pub w1: Tensor,
    /// Hidden bias, (num_hiddens).
    pub b1: Tensor,
    /// Output weights, (num_hiddens, num_outputs).
    pub w2: Tensor,
    /// Output bias, (num_outputs).
    pub b2: Tensor,
}

impl MlpScratch {
    /// The book's model with its sizes: 784 inputs, 256 hidden units, 10 outputs.
    pub fn book() -> Result<Self> {
        Self::new(784, 10, 256)
    }

    /// An MLP from scratch for the given sizes (the book's argument order).
    pub fn new(num_inputs: usize, num_outputs: usize, num_hiddens: usize) -> Result<Self> {
        non_zero("MlpScratch::new", &[num_inputs, num_outputs, num_hiddens])?;
        Ok(MlpScratch {
            w1: normal_param(&[num_inputs, num_hiddens], 0.01)?,
            b1: zeros_param(&[num_hiddens])?,
            w2: normal_param(&[num_hiddens, num_outputs], 0.01)?,
            b2: zeros_param(&[num_outputs])?,
        })
    }
}

impl Module for MlpScratch {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.reshape([-1, self.w1.shape()[0] as isize])?;
        let h = relu_scratch(&x.matmul(&self.w1)?.add(&self.b1)?)?;
        h.matmul(&self.w2)?.add(&self.b2)
    }

    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        vec![
            ("W1".into(), self.w1.clone()),
            ("b1".into(), self.b1.clone()),
            ("W2".into(), self.w2.clone()),
            ("b2".into(), self.b2.clone()),
        ]
    }

    fn describe(&self) -> String {
        format!(
            "MlpScratch(num_inputs={}, num_hiddens={}, num_outputs={})",
            self.w1.shape()[0],
            self.w1.shape()[1],
            self.w2.shape()[1]
        )
    }
}

// ---------------------------------------------------------------- 4.6 dropout

/// D2L 4.6 `dropout_layer(X, dropout)`: with probability `p` zero each element, and
/// scale the survivors by 1/(1−p). `p = 1` gives zeros and `p = 0` returns `X`; the mask
/// is `rand(X.shape) > p` from the global generator. `p` outside [0, 1] is an error
/// (the book asserts).
pub fn dropout_layer(x: &Tensor, p: f64) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::InvalidArgument {
            op: "dropout_layer",
            msg: format!("expected 0 <= dropout <= 1, got {p}"),
        });
    }
    if p == 1.0 {
        return Ok(x.zeros_like());
    }
    if p == 0.0 {
        return Ok(x.clone());
    }
    // Drawn on the host (one random stream on every device), used on the input's device.
    let mask = Tensor::rand(x.shape())
        .gt_scalar(p)?
        .to_dtype(x.dtype())?
        .to(x.device())?;
    mask.mul(x)?.div_scalar(1.0 - p)
}

/// D2L 4.6 dropout MLP from scratch: the book's `Net` with `lin1`, `lin2`, `lin3`
/// (`nn.Linear` with PyTorch's default init), ReLU, and [`dropout_layer`] with `dropout1`
/// after the first hidden layer and `dropout2` after the second, applied only while
/// training. Training starts as the constructor's `is_training`; like PyTorch's
/// `net.train()` / `net.eval()`, [`Module::train`] / [`Module::eval`] switch it.
pub struct DropoutMlpScratch {
    num_inputs: usize,
    dropout1: f64,
    dropout2: f64,
    training: AtomicBool,
    /// Input → hidden 1.
    pub lin1: Arc<Linear>,
    /// Hidden 1 → hidden 2.
    pub lin2: Arc<Linear>,
    /// Hidden 2 → outputs.
    pub lin3: Arc<Linear>,
}

impl DropoutMlpScratch {
    /// The book's network: 784-256-256-10, dropout 0.2 and 0.5, training.
    pub fn book() -> Result<Self> {
        Self::new(784, 10, 256, 256, 0.2, 0.5, true)
    }

    /// A dropout MLP for the given sizes and probabilities (the book's argument order,
    /// with its globals `dropout1`, `dropout2` passed in).
    pub fn new(
        num_inputs: usize,
        num_outputs: usize,
        num_hiddens1: usize,
        num_hiddens2: usize,
        dropout1: f64,
        dropout2: f64,
        is_training: bool,
    ) -> Result<Self> {
        non_zero(
            "DropoutMlpScratch::new",
            &[num_inputs, num_outputs, num_hiddens1, num_hiddens2],
        )?;
        for p in [dropout1, dropout2] {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::InvalidArgument {
                    op: "DropoutMlpScratch::new",
                    msg: format!("expected dropout probabilities in [0, 1], got {p}"),
                });
            }
        }
        Ok(DropoutMlpScratch {
            num_inputs,
            dropout1,
            dropout2,
            training: AtomicBool::new(is_training),
            lin1: Arc::new(Linear::new(num_inputs, num_hiddens1)?),
            lin2: Arc::new(Linear::new(num_hiddens1, num_hiddens2)?),
            lin3: Arc::new(Linear::new(num_hiddens2, num_outputs)?),
        })
    }

    /// Whether dropout is applied now.
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }
}

impl Module for DropoutMlpScratch {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.reshape([-1, self.num_inputs as isize])?;
        let mut h1 = self.lin1.forward(&x)?.relu()?;
        if self.is_training() {
            h1 = dropout_layer(&h1, self.dropout1)?;
        }
        let mut h2 = self.lin2.forward(&h1)?.relu()?;
        if self.is_training() {
            h2 = dropout_layer(&h2, self.dropout2)?;
        }
        self.lin3.forward(&h2)
    }

    fn children(&self) -> Vec<(String, Arc<dyn Module>)> {
        vec![
            ("lin1".into(), self.lin1.clone() as Arc<dyn Module>),
            ("lin2".into(), self.lin2.clone() as Arc<dyn Module>),
            ("lin3".into(), self.lin3.clone() as Arc<dyn Module>),
        ]
    }

    fn set_training_local(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }

    fn describe(&self) -> String {
        format!(
            "DropoutMlpScratch(dropout1={}, dropout2={})",
            self.dropout1, self.dropout2
        )
    }
}
