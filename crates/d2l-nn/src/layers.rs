//! Layers (D2L 3.3, 4.6, 5.1–5.4): `Linear`, activations as modules, `Dropout`,
//! `Embedding`, `LayerNorm`, `Flatten`, `Identity`, and the parameter-efficient
//! hypercomplex `PhmLinear` of D2L 3.4. Functional forms live in [`functional`].

use crate::init;
use crate::module::Module;
use d2l_tensor::{DType, Error, Result, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};

/// Functional forms of the layers, for code that keeps its own parameters.
pub mod functional {
    use d2l_tensor::{Error, Result, Tensor};

    /// x·Wᵀ + b with W of shape [out, in] (`F.linear`).
    pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let y = x.matmul(&weight.t()?)?;
        match bias {
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }

    /// Inverted dropout (D2L 5.6): zero each element with probability `p` and scale the
    /// rest by 1/(1-p) when `training`; the identity otherwise.
    pub fn dropout(x: &Tensor, p: f64, training: bool) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::InvalidArgument {
                op: "dropout",
                msg: format!("expected a probability in [0, 1], got {p}"),
            });
        }
        if !training || p == 0.0 {
            return Ok(x.clone());
        }
        if p == 1.0 {
            return x.mul_scalar(0.0);
        }
        // The mask is drawn on the host (one random stream for every device) and sent to
        // the input's device.
        let keep = Tensor::bernoulli(x.shape(), 1.0 - p)?
            .to_dtype(x.dtype())?
            .to(x.device())?;
        x.mul(&keep.mul_scalar(1.0 / (1.0 - p))?)
    }

    /// Channel dropout (`F.dropout2d`): when `training`, zero whole channels of
    /// [N, C, H, W] (or unbatched [C, H, W]) with probability `p` and scale the kept ones
    /// by 1/(1-p); the identity otherwise.
    pub fn dropout2d(x: &Tensor, p: f64, training: bool) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::InvalidArgument {
                op: "dropout2d",
                msg: format!("expected a probability in [0, 1], got {p}"),
            });
        }
        let mask_shape: Vec<usize> = match x.rank() {
            4 => vec![x.shape()[0], x.shape()[1], 1, 1],
            3 => vec![x.shape()[0], 1, 1],
            r => {
                return Err(Error::BadShape {
                    op: "dropout2d",
                    msg: format!(
                        "expected a 4-D input [N, C, H, W] (or 3-D [C, H, W]), got shape {:?} (rank {r})",
                        x.shape()
                    ),
                })
            }
        };
        if !training || p == 0.0 {
            return Ok(x.clone());
        }
        if p == 1.0 {
            return x.mul_scalar(0.0);
        }
        let keep = Tensor::bernoulli(&mask_shape, 1.0 - p)?
            .to_dtype(x.dtype())?
            .to(x.device())?;
        x.mul(&keep.mul_scalar(1.0 / (1.0 - p))?)
    }

    /// Looks up rows of `weight` for integer `indices` of any shape (`F.embedding`).
    pub fn embedding(indices: &Tensor, weight: &Tensor) -> Result<Tensor> {
        let flat = indices.reshape([-1])?;
        let rows = weight.index_select(0, &flat)?;
        let mut shape = indices.shape().to_vec();
        shape.push(weight.shape()[1]);
        rows.reshape(shape)
    }

    /// Normalises over the trailing dims `normalized_shape` (`F.layer_norm`, biased variance).
    pub fn layer_norm(
        x: &Tensor,
        normalized_shape: &[usize],
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f64,
    ) -> Result<Tensor> {
        let k = normalized_shape.len();
        if k == 0 || x.rank() < k || &x.shape()[x.rank() - k..] != normalized_shape {
            return Err(Error::ShapeMismatch {
                op: "layer_norm",
                lhs: x.shape().to_vec(),
                rhs: normalized_shape.to_vec(),
                why: "do not agree: the input must end with the normalised shape".into(),
            });
        }
        let dims: Vec<isize> = (x.rank() - k..x.rank()).map(|d| d as isize).collect();
        let mean = x.mean(&dims, true)?;
        let centred = x.sub(&mean)?;
        let var = centred.square()?.mean(&dims, true)?;
        let mut y = centred.mul(&var.add_scalar(eps)?.rsqrt()?)?;
        if let Some(w) = weight {
            y = y.mul(w)?;
        }
        if let Some(b) = bias {
            y = y.add(b)?;
        }
        Ok(y)
    }
}

/// A fully connected layer y = x·Wᵀ + b (D2L 3.3), initialised as PyTorch does:
/// W and b uniform in ±1/√in_features.
pub struct Linear {
    /// Weight of shape [out_features, in_features].
    pub weight: Tensor,
    /// Bias of shape [out_features], if any.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A layer from `in_features` to `out_features` with a bias.
    pub fn new(in_features: usize, out_features: usize) -> Result<Self> {
        Self::with_bias(in_features, out_features, true)
    }

    /// A layer with or without bias.
    pub fn with_bias(in_features: usize, out_features: usize, bias: bool) -> Result<Self> {
        if in_features == 0 || out_features == 0 {
            return Err(Error::InvalidArgument {
                op: "Linear",
                msg: format!("expected non-zero sizes, got in_features={in_features}, out_features={out_features}"),
            });
        }
        let bound = 1.0 / (in_features as f64).sqrt();
        let weight = Tensor::try_zeros(&[out_features, in_features])?.requires_grad_(true)?;
        // kaiming_uniform_(a = √5) reduces to U(±1/√fan_in), PyTorch's Linear default.
        init::kaiming_uniform_(&weight, 5f64.sqrt(), init::FanMode::FanIn, "leaky_relu")?;
        let bias = if bias {
            let b = Tensor::zeros(&[out_features]).requires_grad_(true)?;
            init::uniform_(&b, -bound, bound)?;
            Some(b)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    /// A layer wrapping given tensors (made parameters: leaves that require grad).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        if weight.rank() != 2
            || bias
                .as_ref()
                .is_some_and(|b| b.shape() != [weight.shape()[0]])
        {
            return Err(Error::InvalidArgument {
                op: "Linear::from_tensors",
                msg: format!(
                    "expected weight [out, in] and bias [out], got {:?} and {:?}",
                    weight.shape(),
                    bias.as_ref().map(|b| b.shape().to_vec())
                ),
            });
        }
        Ok(Linear {
            weight: weight.detach().requires_grad_(true)?,
            bias: bias.map(|b| b.detach().requires_grad_(true)).transpose()?,
        })
    }

    /// Input size.
    pub fn in_features(&self) -> usize {
        self.weight.shape()[1]
    }

    /// Output size.
    pub fn out_features(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.shape().last() != Some(&self.in_features()) {
            return Err(Error::ShapeMismatch {
                op: "Linear",
                lhs: x.shape().to_vec(),
                rhs: self.weight.shape().to_vec(),
                why: format!(
                    "do not agree: the input's last dim must be in_features = {}",
                    self.in_features()
                ),
            });
        }
        functional::linear(x, &self.weight, self.bias.as_ref())
    }

    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }

    fn describe(&self) -> String {
        format!(
            "Linear(in_features={}, out_features={}, bias={})",
            self.in_features(),
            self.out_features(),
            if self.bias.is_some() { "True" } else { "False" }
        )
    }
}

/// Elementwise activations as modules.
macro_rules! activation {
    ($(#[$doc:meta])* $name:ident, |$x:ident| $body:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl $name {
            #[doc = concat!("A `", stringify!($name), "` module (`nn.", stringify!($name), "()` in PyTorch).")]
            pub const fn new() -> Self {
                $name
            }
        }

        impl Module for $name {
            fn forward(&self, $x: &Tensor) -> Result<Tensor> {
                $body
            }

            fn describe(&self) -> String {
                format!("{}()", stringify!($name))
            }
        }
    };
}

activation!(
    /// max(x, 0) (D2L 5.1.2.1).
    ReLU, |x| x.relu()
);
activation!(
    /// The logistic sigmoid (D2L 5.1.2.2).
    Sigmoid, |x| x.sigmoid()
);
activation!(
    /// tanh (D2L 5.1.2.3).
    Tanh, |x| x.tanh()
);
activation!(
    /// GELU, exact erf form.
    GELU, |x| x.gelu()
);
activation!(
    /// Passes the input through unchanged.
    Identity, |x| Ok(x.clone())
);

/// Leaky ReLU with a negative slope (PyTorch default 0.01).
#[derive(Debug, Clone, Copy)]
pub struct LeakyReLU {
    /// Slope for negative inputs.
    pub negative_slope: f64,
}

impl LeakyReLU {
    /// A leaky ReLU with the given slope.
    pub fn new(negative_slope: f64) -> Self {
        LeakyReLU { negative_slope }
    }
}

impl Default for LeakyReLU {
    fn default() -> Self {
        LeakyReLU {
            negative_slope: 0.01,
        }
    }
}

impl Module for LeakyReLU {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.leaky_relu(self.negative_slope)
    }

    fn describe(&self) -> String {
        format!("LeakyReLU(negative_slope={})", self.negative_slope)
    }
}

/// Softmax over one dim.
#[derive(Debug, Clone, Copy)]
pub struct Softmax {
    /// The dim that sums to 1.
    pub dim: isize,
}

impl Softmax {
    /// Softmax over `dim`.
    pub fn new(dim: isize) -> Self {
        Softmax { dim }
    }
}

impl Module for Softmax {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.softmax(self.dim)
    }

    fn describe(&self) -> String {
        format!("Softmax(dim={})", self.dim)
    }
}

/// Flattens dims `start_dim..=end_dim` (default 1..=-1: keeps the batch dim).
#[derive(Debug, Clone, Copy)]
pub struct Flatten {
    /// First dim merged.
    pub start_dim: isize,
    /// Last dim merged.
    pub end_dim: isize,
}

impl Flatten {
    /// `nn.Flatten()`: merges everything after the batch dim.
    pub fn new() -> Self {
        Flatten {
            start_dim: 1,
            end_dim: -1,
        }
    }
}

impl Default for Flatten {
    fn default() -> Self {
        Self::new()
    }
}

impl Module for Flatten {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.flatten(self.start_dim, self.end_dim)
    }

    fn describe(&self) -> String {
        format!(
            "Flatten(start_dim={}, end_dim={})",
            self.start_dim, self.end_dim
        )
    }
}

/// Inverted dropout (D2L 5.6); identity in eval mode. Masks come from the global
/// seeded generator, so `manual_seed` makes them reproducible.
pub struct Dropout {
    p: f64,
    training: AtomicBool,
}

impl Dropout {
    /// Dropout with drop probability `p` in [0, 1].
    pub fn new(p: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::InvalidArgument {
                op: "Dropout",
                msg: format!("expected a probability in [0, 1], got {p}"),
            });
        }
        Ok(Dropout {
            p,
            training: AtomicBool::new(true),
        })
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        functional::dropout(x, self.p, self.training.load(Ordering::Relaxed))
    }

    fn set_training_local(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }

    fn describe(&self) -> String {
        format!("Dropout(p={})", self.p)
    }
}

/// A lookup table of `num_embeddings` vectors of size `embedding_dim`, N(0, 1) initialised.
pub struct Embedding {
    /// The table, [num_embeddings, embedding_dim].
    pub weight: Tensor,
}

impl Embedding {
    /// A table of `num_embeddings` rows of `embedding_dim`.
    pub fn new(num_embeddings: usize, embedding_dim: usize) -> Result<Self> {
        d2l_tensor::limit::check_shape("Embedding", &[num_embeddings, embedding_dim], DType::F32)?;
        let weight = Tensor::randn(&[num_embeddings, embedding_dim]).requires_grad_(true)?;
        Ok(Embedding { weight })
    }
}

impl Module for Embedding {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        functional::embedding(x, &self.weight)
    }

    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        vec![("weight".into(), self.weight.clone())]
    }

    fn describe(&self) -> String {
        format!(
            "Embedding({}, {})",
            self.weight.shape()[0],
            self.weight.shape()[1]
        )
    }
}

/// Layer normalisation over the trailing `normalized_shape` dims, with learnable
/// elementwise scale (ones) and shift (zeros).
pub struct LayerNorm {
    normalized_shape: Vec<usize>,
    eps: f64,
    /// Scale γ, shaped like `normalized_shape`.
    pub weight: Tensor,
    /// Shift β, shaped like `normalized_shape`.
    pub bias: Tensor,
}

impl LayerNorm {
    /// LayerNorm with eps 1e-5 (PyTorch's default).
    pub fn new(normalized_shape: &[usize]) -> Result<Self> {
        Self::with_eps(normalized_shape, 1e-5)
    }

    /// LayerNorm with a given eps.
    pub fn with_eps(normalized_shape: &[usize], eps: f64) -> Result<Self> {
        if normalized_shape.is_empty() {
            return Err(Error::InvalidArgument {
                op: "LayerNorm",
                msg: "expected a non-empty normalized_shape".into(),
            });
        }
        Ok(LayerNorm {
            normalized_shape: normalized_shape.to_vec(),
            eps,
            weight: Tensor::ones(normalized_shape).requires_grad_(true)?,
            bias: Tensor::zeros(normalized_shape).requires_grad_(true)?,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        functional::layer_norm(
            x,
            &self.normalized_shape,
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
        )
    }

    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        vec![
            ("weight".into(), self.weight.clone()),
            ("bias".into(), self.bias.clone()),
        ]
    }

    fn describe(&self) -> String {
        format!("LayerNorm({:?}, eps={})", self.normalized_shape, self.eps)
    }
}

/// A parameterised-hypercomplex (PHM) fully connected layer (D2L 3.4's pointer to
/// Zhang et al. 2021): W = Σᵢ Aᵢ ⊗ Sᵢ with n matrices Aᵢ [n, n] and Sᵢ [q/n, d/n], so a
/// d→q layer has n³ + dq/n weights instead of dq.
pub struct PhmLinear {
    n: usize,
    /// The n "rule" matrices, stacked: [n, n, n].
    pub a: Tensor,
    /// The n blocks, stacked: [n, q/n, d/n].
    pub s: Tensor,
    /// Bias [q].
    pub bias: Tensor,
}

impl PhmLinear {
    /// A d→q PHM layer with `n` Kronecker terms; d and q must be divisible by n.
    pub fn new(d: usize, q: usize, n: usize) -> Result<Self> {
        if n == 0 || d == 0 || q == 0 || !d.is_multiple_of(n) || !q.is_multiple_of(n) {
            return Err(Error::InvalidArgument {
                op: "PhmLinear",
                msg: format!("expected in ({d}) and out ({q}) features divisible by n ({n}) and all non-zero"),
            });
        }
        let a = Tensor::zeros(&[n, n, n]).requires_grad_(true)?;
        init::xavier_uniform_(&a, 1.0)?;
        let s = Tensor::zeros(&[n, q / n, d / n]).requires_grad_(true)?;
        // Scale so the assembled W has Linear's default spread, U(±1/√d) roughly.
        let bound = 1.0 / (d as f64).sqrt();
        init::uniform_(&s, -bound, bound)?;
        let bias = Tensor::zeros(&[q]).requires_grad_(true)?;
        init::uniform_(&bias, -bound, bound)?;
        Ok(PhmLinear { n, a, s, bias })
    }

    /// The assembled dense weight W [q, d].
    pub fn weight(&self) -> Result<Tensor> {
        let mut w: Option<Tensor> = None;
        for i in 0..self.n {
            let term = self
                .a
                .select(0, i as isize)?
                .kron(&self.s.select(0, i as isize)?)?;
            w = Some(match w {
                None => term,
                Some(acc) => acc.add(&term)?,
            });
        }
        Ok(w.expect("n >= 1"))
    }
}

impl Module for PhmLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        functional::linear(x, &self.weight()?, Some(&self.bias))
    }

    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        vec![
            ("a".into(), self.a.clone()),
            ("s".into(), self.s.clone()),
            ("bias".into(), self.bias.clone()),
        ]
    }

    fn describe(&self) -> String {
        format!(
            "PhmLinear(in_features={}, out_features={}, n={})",
            self.s.shape()[2] * self.n,
            self.s.shape()[1] * self.n,
            self.n
        )
    }
}

/// A `Linear` whose input size is inferred on the first forward pass (D2L 5.3, deferred
/// initialisation; PyTorch's `LazyLinear`). Until then it has no parameters, so run one
/// batch through the network before handing its parameters to an optimiser.
pub struct LazyLinear {
    out_features: usize,
    inner: std::sync::OnceLock<Linear>,
}

impl LazyLinear {
    /// A layer with `out_features` outputs and a bias; the input size comes later.
    pub fn new(out_features: usize) -> Result<Self> {
        if out_features == 0 {
            return Err(Error::InvalidArgument {
                op: "LazyLinear",
                msg: "expected out_features > 0".into(),
            });
        }
        Ok(LazyLinear {
            out_features,
            inner: std::sync::OnceLock::new(),
        })
    }

    /// Whether the first forward pass has fixed the input size.
    pub fn is_initialized(&self) -> bool {
        self.inner.get().is_some()
    }

    /// The materialised layer, once initialised.
    pub fn linear(&self) -> Option<&Linear> {
        self.inner.get()
    }
}

impl Module for LazyLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let in_features = *x.shape().last().ok_or_else(|| Error::InvalidArgument {
            op: "LazyLinear",
            msg: "expected an input with at least one dim".into(),
        })?;
        if self.inner.get().is_none() {
            let layer = Linear::new(in_features, self.out_features)?;
            // The parameters are made where the first batch lives (a network moved with
            // `Module::to` before its first batch has nothing here to move yet).
            layer.to(x.device())?;
            // Another thread may have won the race; either layer is a valid first init.
            let _ = self.inner.set(layer);
        }
        self.inner.get().expect("initialised above").forward(x)
    }

    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        self.inner
            .get()
            .map(|l| l.parameters_local())
            .unwrap_or_default()
    }

    fn describe(&self) -> String {
        match self.inner.get() {
            Some(l) => l.describe(),
            None => format!(
                "LazyLinear(in_features=0, out_features={})",
                self.out_features
            ),
        }
    }
}
