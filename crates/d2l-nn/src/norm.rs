//! Normalisation and channel-dropout layers (D2L 8.5, 8.6, 11.7): `BatchNorm1d`,
//! `BatchNorm2d` (running statistics kept as buffers under PyTorch's names),
//! `GroupNorm` and `Dropout2d`. `LayerNorm` lives in [`crate::layers`].
//!
//! ```
//! use d2l_nn::norm::BatchNorm2d;
//! use d2l_nn::{Module, Sequential};
//! use d2l_tensor::Result;
//! # fn main() -> Result<()> {
//! let net = Sequential::new().add(BatchNorm2d::new(6)?);
//! let names: Vec<String> = net.state_dict().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(
//!     names,
//!     ["0.weight", "0.bias", "0.running_mean", "0.running_var", "0.num_batches_tracked"]
//! );
//! # Ok(()) }
//! ```

use crate::conv::{layer_err, py_float};
use crate::layers::functional;
use crate::module::Module;
use d2l_tensor::{no_grad, DType, Error, Result, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// Sums a buffer element-wise over the processes of a data-parallel job, in place (a
/// communicator's sum-allreduce), for synchronised batch normalisation.
pub type BatchNormSync = Arc<dyn Fn(&mut [f32]) -> Result<()> + Send + Sync>;

static BATCH_NORM_SYNC: RwLock<Option<BatchNormSync>> = RwLock::new(None);

/// Makes every batch-norm layer of this process compute its training statistics over the
/// global batch of a data-parallel job (PyTorch's `SyncBatchNorm`): the per-channel sums
/// of the rows of every process are added up with `sync`, in the forward pass and in the
/// backward pass. `None` goes back to each process's own rows. Every process must run the
/// same layers on at least one row each.
pub fn set_batch_norm_sync(sync: Option<BatchNormSync>) {
    *BATCH_NORM_SYNC.write().unwrap_or_else(|e| e.into_inner()) = sync;
}

fn batch_norm_sync() -> Option<BatchNormSync> {
    BATCH_NORM_SYNC
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// `t` summed over the processes; its gradient is the output gradient summed over the
/// processes (each process's loss depends on every process's sum).
fn all_sum(t: &Tensor, sync: &BatchNormSync) -> Result<Tensor> {
    let reduce = |t: &Tensor, sync: &BatchNormSync| -> Result<Tensor> {
        let mut v = t.cpu()?.to_vec::<f32>();
        sync(&mut v)?;
        Tensor::from_vec(v, t.shape())?
            .to_dtype(t.dtype())?
            .to(t.device())
    };
    let value = no_grad(|| reduce(t, sync))?;
    let s = sync.clone();
    let backward: d2l_tensor::BackwardFn =
        Arc::new(move |g: &Tensor| Ok(vec![Some(no_grad(|| reduce(g, &s))?)]));
    Ok(Tensor::custom_op_named(
        "bwd:sync_bn_sum",
        value,
        &[t],
        backward,
    ))
}

/// Training-mode batch normalisation with statistics over every process's rows (see
/// [`set_batch_norm_sync`]); updates the running statistics like the local kernel.
#[allow(clippy::too_many_arguments)]
fn sync_batch_norm(
    x: &Tensor,
    sync: &BatchNormSync,
    running_mean: Option<&Tensor>,
    running_var: Option<&Tensor>,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    momentum: f64,
    eps: f64,
) -> Result<Tensor> {
    let c = x.shape()[1];
    let dims: Vec<isize> = (0..x.rank() as isize).filter(|&d| d != 1).collect();
    let mut bshape = vec![1isize; x.rank()];
    bshape[1] = c as isize;
    let mut count = [(x.numel() / c.max(1)) as f32];
    sync(&mut count)?;
    let n = f64::from(count[0]);
    // Two passes (mean, then the centred squares), as the local kernel does.
    let mean = all_sum(&x.sum(&dims, false)?, sync)?.div_scalar(n)?;
    let xc = x.sub(&mean.reshape(bshape.as_slice())?)?;
    let var = all_sum(&xc.mul(&xc)?.sum(&dims, false)?, sync)?.div_scalar(n)?;
    let inv = var.add_scalar(eps)?.sqrt()?.reshape(bshape.as_slice())?;
    let mut y = xc.div(&inv)?;
    if let (Some(w), Some(b)) = (weight, bias) {
        y = y
            .mul(&w.reshape(bshape.as_slice())?)?
            .add(&b.reshape(bshape.as_slice())?)?;
    }
    no_grad(|| -> Result<()> {
        if let Some(rm) = running_mean {
            rm.copy_(
                &rm.mul_scalar(1.0 - momentum)?
                    .add(&mean.detach().mul_scalar(momentum)?)?,
            )?;
        }
        if let Some(rv) = running_var {
            let unbiased = var.detach().mul_scalar(n / (n - 1.0).max(1.0))?;
            rv.copy_(
                &rv.mul_scalar(1.0 - momentum)?
                    .add(&unbiased.mul_scalar(momentum)?)?,
            )?;
        }
        Ok(())
    })?;
    Ok(y)
}

/// Settings of a batch-normalisation layer; `Default` is PyTorch's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormOptions {
    /// Added to the variance before the square root (default 1e-5).
    pub eps: f64,
    /// Weight of the newest batch in the running averages (default `Some(0.1)`); `None`
    /// keeps a cumulative average (momentum 1 / num_batches_tracked), as in PyTorch.
    pub momentum: Option<f64>,
    /// Whether the layer has a learnable scale (`weight`, ones) and shift (`bias`, zeros).
    pub affine: bool,
    /// Whether the layer keeps running statistics for eval mode; without them it
    /// normalises with batch statistics in both modes.
    pub track_running_stats: bool,
}

impl Default for BatchNormOptions {
    fn default() -> Self {
        BatchNormOptions {
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }
}

impl BatchNormOptions {
    /// PyTorch's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets eps.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Sets the momentum (`None`: cumulative average).
    pub fn momentum(mut self, momentum: Option<f64>) -> Self {
        self.momentum = momentum;
        self
    }

    /// Sets affine.
    pub fn affine(mut self, on: bool) -> Self {
        self.affine = on;
        self
    }

    /// Sets track_running_stats.
    pub fn track_running_stats(mut self, on: bool) -> Self {
        self.track_running_stats = on;
        self
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

macro_rules! batch_norm_layer {
    ($(#[$doc:meta])* $name:ident, $label:literal, $ranks:expr, $shape_doc:literal) => {
        $(#[$doc])*
        pub struct $name {
            num_features: usize,
            opts: BatchNormOptions,
            training: AtomicBool,
            /// Scale γ [C] (ones), when affine.
            pub weight: Option<Tensor>,
            /// Shift β [C] (zeros), when affine.
            pub bias: Option<Tensor>,
            /// Running mean [C] (zeros at first), when tracking running stats.
            pub running_mean: Option<Tensor>,
            /// Running (unbiased) variance [C] (ones at first), when tracking running stats.
            pub running_var: Option<Tensor>,
            /// Training batches seen, a 0-d `i64` tensor, when tracking running stats.
            pub num_batches_tracked: Option<Tensor>,
        }

        impl $name {
            /// A layer over `num_features` channels with PyTorch's defaults (eps 1e-5,
            /// momentum 0.1, affine, tracking running stats), in training mode.
            pub fn new(num_features: usize) -> Result<Self> {
                Self::with_options(num_features, BatchNormOptions::default())
            }

            /// A layer with the given settings.
            pub fn with_options(num_features: usize, opts: BatchNormOptions) -> Result<Self> {
                let bad_momentum = opts.momentum.is_some_and(|m| !(0.0..=1.0).contains(&m));
                let bad_eps = opts.eps.is_nan() || opts.eps < 0.0;
                if num_features == 0 || bad_eps || bad_momentum {
                    return Err(Error::InvalidArgument {
                        op: $label,
                        msg: format!(
                            "expected num_features > 0, eps >= 0 and momentum in [0, 1], got {num_features}, {}, {:?}",
                            opts.eps, opts.momentum
                        ),
                    });
                }
                let c = [num_features];
                let (weight, bias) = if opts.affine {
                    (
                        Some(Tensor::ones(&c).requires_grad_(true)?),
                        Some(Tensor::zeros(&c).requires_grad_(true)?),
                    )
                } else {
                    (None, None)
                };
                let (running_mean, running_var, num_batches_tracked) = if opts.track_running_stats {
                    (
                        Some(Tensor::zeros(&c)),
                        Some(Tensor::ones(&c)),
                        Some(Tensor::zeros_dtype(&[], DType::I64)),
                    )
                } else {
                    (None, None, None)
                };
                Ok($name {
                    num_features,
                    opts,
                    training: AtomicBool::new(true),
                    weight,
                    bias,
                    running_mean,
                    running_var,
                    num_batches_tracked,
                })
            }

            /// The number of channels C.
            pub fn num_features(&self) -> usize {
                self.num_features
            }

            /// The layer's settings.
            pub fn options(&self) -> &BatchNormOptions {
                &self.opts
            }

            /// Whether the layer is in training mode.
            pub fn is_training(&self) -> bool {
                self.training.load(Ordering::Relaxed)
            }

            /// Running stats back to zeros / ones and the batch count to 0.
            pub fn reset_running_stats(&self) -> Result<()> {
                no_grad(|| {
                    if let Some(m) = &self.running_mean {
                        m.fill_(0.0)?;
                    }
                    if let Some(v) = &self.running_var {
                        v.fill_(1.0)?;
                    }
                    if let Some(n) = &self.num_batches_tracked {
                        n.fill_(0.0)?;
                    }
                    Ok(())
                })
            }
        }

        impl Module for $name {
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                let name = self.describe();
                let ranks: &[usize] = &$ranks;
                if !ranks.contains(&x.rank()) {
                    return Err(Error::BadShape {
                        op: $label,
                        msg: format!(
                            "{name}: expected {}, got shape {:?} (rank {})",
                            $shape_doc,
                            x.shape(),
                            x.rank()
                        ),
                    });
                }
                if x.shape()[1] != self.num_features {
                    return Err(Error::ShapeMismatch {
                        op: $label,
                        lhs: x.shape().to_vec(),
                        rhs: vec![self.num_features],
                        why: format!(
                            "do not agree: {name} expects {} channels in dim 1",
                            self.num_features
                        ),
                    });
                }
                let training = self.is_training();
                if training && x.numel() / self.num_features.max(1) <= 1 {
                    return Err(layer_err(
                        $label,
                        &name,
                        format!(
                            "expected more than 1 value per channel when training, got input size {:?}",
                            x.shape()
                        ),
                    ));
                }
                let tracked = self.num_batches_tracked.as_ref().filter(|_| training);
                let momentum = match (self.opts.momentum, tracked) {
                    (Some(m), _) => m,
                    // Cumulative average: this batch is number num_batches_tracked + 1.
                    (None, Some(n)) => 1.0 / (n.item_f64()? + 1.0),
                    (None, None) => 0.0,
                };
                // Without running statistics, batch statistics are used in eval mode too.
                let use_batch_stats = training || self.running_mean.is_none();
                let sync = batch_norm_sync().filter(|_| training);
                let y = if let Some(sync) = sync {
                    sync_batch_norm(
                        x,
                        &sync,
                        self.running_mean.as_ref(),
                        self.running_var.as_ref(),
                        self.weight.as_ref(),
                        self.bias.as_ref(),
                        momentum,
                        self.opts.eps,
                    )?
                } else {
                    x.batch_norm(
                    self.running_mean.as_ref(),
                    self.running_var.as_ref(),
                    self.weight.as_ref(),
                    self.bias.as_ref(),
                    use_batch_stats,
                    momentum,
                    self.opts.eps,
                )?
                };
                if let Some(n) = tracked {
                    no_grad(|| n.add_(&Tensor::full_on(&[], 1.0, DType::I64, n.device())?))?;
                }
                Ok(y)
            }

            fn parameters_local(&self) -> Vec<(String, Tensor)> {
                let mut v = Vec::new();
                if let (Some(w), Some(b)) = (&self.weight, &self.bias) {
                    v.push(("weight".to_string(), w.clone()));
                    v.push(("bias".to_string(), b.clone()));
                }
                v
            }

            fn buffers_local(&self) -> Vec<(String, Tensor)> {
                let mut v = Vec::new();
                if let (Some(m), Some(r), Some(n)) =
                    (&self.running_mean, &self.running_var, &self.num_batches_tracked)
                {
                    v.push(("running_mean".to_string(), m.clone()));
                    v.push(("running_var".to_string(), r.clone()));
                    v.push(("num_batches_tracked".to_string(), n.clone()));
                }
                v
            }

            fn set_training_local(&self, training: bool) {
                self.training.store(training, Ordering::Relaxed);
            }

            fn describe(&self) -> String {
                let m = match self.opts.momentum {
                    Some(m) => py_float(m),
                    None => "None".into(),
                };
                format!(
                    "{}({}, eps={}, momentum={m}, affine={}, track_running_stats={})",
                    $label,
                    self.num_features,
                    py_float(self.opts.eps),
                    py_bool(self.opts.affine),
                    py_bool(self.opts.track_running_stats)
                )
            }
        }
    };
}

batch_norm_layer!(
    /// Batch normalisation for fully connected layers (D2L 8.5): input [N, C] or
    /// [N, C, L], statistics per feature over the batch (and L). Training mode normalises
    /// with the batch statistics (biased variance) and updates the running mean and
    /// unbiased variance with `momentum`; eval mode uses the running statistics.
    BatchNorm1d,
    "BatchNorm1d",
    [2, 3],
    "a 2-D input [N, C] or 3-D [N, C, L]"
);

batch_norm_layer!(
    /// Batch normalisation for convolutional layers (D2L 8.5): input [N, C, H, W],
    /// statistics per channel over the batch and both spatial dims. Training mode
    /// normalises with the batch statistics and updates the running mean and unbiased
    /// variance with `momentum`; eval mode uses the running statistics.
    BatchNorm2d,
    "BatchNorm2d",
    [4],
    "a 4-D input [N, C, H, W]"
);

/// Group normalisation (Wu & He 2018): the channels of [N, C, *] are split into
/// `num_groups` groups, each normalised over its channels and the spatial dims, per
/// sample; then a per-channel affine (weight ones, bias zeros). No running statistics.
pub struct GroupNorm {
    num_groups: usize,
    num_channels: usize,
    eps: f64,
    /// Scale γ [C] (ones), when affine.
    pub weight: Option<Tensor>,
    /// Shift β [C] (zeros), when affine.
    pub bias: Option<Tensor>,
}

impl GroupNorm {
    /// `num_groups` groups over `num_channels` channels, eps 1e-5, affine.
    pub fn new(num_groups: usize, num_channels: usize) -> Result<Self> {
        Self::with_options(num_groups, num_channels, 1e-5, true)
    }

    /// With a given eps and with or without the affine parameters.
    pub fn with_options(
        num_groups: usize,
        num_channels: usize,
        eps: f64,
        affine: bool,
    ) -> Result<Self> {
        if num_groups == 0 || num_channels == 0 || !num_channels.is_multiple_of(num_groups) {
            return Err(Error::InvalidArgument {
                op: "GroupNorm",
                msg: format!(
                    "GroupNorm({num_groups}, {num_channels}): num_channels ({num_channels}) must be divisible by num_groups ({num_groups}), both non-zero"
                ),
            });
        }
        let (weight, bias) = if affine {
            (
                Some(Tensor::ones(&[num_channels]).requires_grad_(true)?),
                Some(Tensor::zeros(&[num_channels]).requires_grad_(true)?),
            )
        } else {
            (None, None)
        };
        Ok(GroupNorm {
            num_groups,
            num_channels,
            eps,
            weight,
            bias,
        })
    }

    /// The number of groups.
    pub fn num_groups(&self) -> usize {
        self.num_groups
    }

    /// The number of channels.
    pub fn num_channels(&self) -> usize {
        self.num_channels
    }
}

impl Module for GroupNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let name = self.describe();
        if x.rank() < 2 || x.shape()[1] != self.num_channels {
            return Err(Error::ShapeMismatch {
                op: "GroupNorm",
                lhs: x.shape().to_vec(),
                rhs: vec![self.num_channels],
                why: format!(
                    "do not agree: {name} expects an input [N, {}, *]",
                    self.num_channels
                ),
            });
        }
        x.group_norm(
            self.num_groups,
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.eps,
        )
    }

    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        if let (Some(w), Some(b)) = (&self.weight, &self.bias) {
            v.push(("weight".to_string(), w.clone()));
            v.push(("bias".to_string(), b.clone()));
        }
        v
    }

    fn describe(&self) -> String {
        format!(
            "GroupNorm({}, {}, eps={}, affine={})",
            self.num_groups,
            self.num_channels,
            py_float(self.eps),
            py_bool(self.weight.is_some())
        )
    }
}

/// Channel dropout (`nn.Dropout2d`): in training mode each channel of [N, C, H, W] (or
/// [C, H, W]) is zeroed whole with probability `p` and the kept ones are scaled by
/// 1/(1-p); the identity in eval mode. Masks come from the global seeded generator.
pub struct Dropout2d {
    p: f64,
    training: AtomicBool,
}

impl Dropout2d {
    /// Channel dropout with drop probability `p` in [0, 1].
    pub fn new(p: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::InvalidArgument {
                op: "Dropout2d",
                msg: format!("expected a probability in [0, 1], got {p}"),
            });
        }
        Ok(Dropout2d {
            p,
            training: AtomicBool::new(true),
        })
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }
}

impl Module for Dropout2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        functional::dropout2d(x, self.p, self.training.load(Ordering::Relaxed))
    }

    fn set_training_local(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }

    fn describe(&self) -> String {
        format!("Dropout2d(p={})", self.p)
    }
}
