//! D2L 7.5, batch normalisation from scratch: the book's `batch_norm` function and the
//! `BatchNorm` layer built on it (the concise version is `d2l_nn::norm::BatchNorm2d`/`1d`).

use d2l_nn::Module;
use d2l_tensor::{no_grad, Error, Result, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};

/// D2L 7.5's `batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum)`:
/// returns `(Y, new_moving_mean, new_moving_var)`.
///
/// In training (`training = true`) `X` is normalised with the batch mean and the
/// **biased** batch variance — per feature over the batch for a 2-D `X` [N, C], per
/// channel over batch, height and width for a 4-D `X` [N, C, H, W] (kept as
/// [1, C, 1, 1]) — and the moving statistics become `momentum·old + (1 − momentum)·batch`
/// (detached). Otherwise the moving statistics normalise and come back unchanged. Then
/// `Y = gamma·X̂ + beta`. The book switches on `torch.is_grad_enabled()`; here the caller
/// says (the [`BatchNorm`] layer passes its train/eval mode; under `train_ch6` the two
/// agree, since evaluation runs in eval mode without gradients). Any other rank is an
/// error.
#[allow(clippy::too_many_arguments)] // the book's signature, plus the mode
pub fn batch_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    moving_mean: &Tensor,
    moving_var: &Tensor,
    eps: f64,
    momentum: f64,
    training: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let dims: &[isize] = match x.rank() {
        2 => &[0],
        4 => &[0, 2, 3],
        r => {
            return Err(Error::BadShape {
                op: "batch_norm",
                msg: format!(
                    "expected a 2-D [N, C] or 4-D [N, C, H, W] input, got shape {:?} (rank {r})",
                    x.shape()
                ),
            })
        }
    };
    if !training {
        let x_hat = x
            .sub(moving_mean)?
            .div(&moving_var.add_scalar(eps)?.sqrt()?)?;
        let y = gamma.mul(&x_hat)?.add(beta)?;
        return Ok((y, moving_mean.clone(), moving_var.clone()));
    }
    let mean = x.mean(dims, true)?;
    let centered = x.sub(&mean)?;
    let var = centered.square()?.mean(dims, true)?;
    let x_hat = centered.div(&var.add_scalar(eps)?.sqrt()?)?;
    let y = gamma.mul(&x_hat)?.add(beta)?;
    let (new_mean, new_var) = no_grad(|| -> Result<(Tensor, Tensor)> {
        let m = moving_mean
            .mul_scalar(momentum)?
            .add(&mean.detach().mul_scalar(1.0 - momentum)?)?;
        let v = moving_var
            .mul_scalar(momentum)?
            .add(&var.detach().mul_scalar(1.0 - momentum)?)?;
        Ok((
            m.reshape(moving_mean.shape())?,
            v.reshape(moving_var.shape())?,
        ))
    })?;
    Ok((y, new_mean, new_var))
}

/// D2L 7.5's from-scratch `BatchNorm(num_features, num_dims)` layer: `gamma` (ones) and
/// `beta` (zeros) are learned, of shape [1, C] (`num_dims = 2`) or [1, C, 1, 1]
/// (`num_dims = 4`); `moving_mean` (zeros) and `moving_var` (ones) of the same shape are
/// updated in training mode with momentum 0.9 (`0.9·old + 0.1·batch`, biased batch
/// variance) and used in eval mode; eps is 1e-5 ([`batch_norm`]).
///
/// The book keeps the moving statistics as plain attributes, outside the `state_dict`;
/// here they are buffers (in `state_dict`, saved and loaded with the weights) so a saved
/// model evaluates as it was trained. The PyTorch mirror in `scripts/zoo_torch.py`
/// registers them as buffers too.
pub struct BatchNorm {
    num_features: usize,
    num_dims: usize,
    training: AtomicBool,
    /// Scale γ, [1, C] or [1, C, 1, 1].
    pub gamma: Tensor,
    /// Shift β, [1, C] or [1, C, 1, 1].
    pub beta: Tensor,
    /// Moving mean, same shape as γ (replaced in place, under `no_grad`, each training
    /// step).
    pub moving_mean: Tensor,
    /// Moving (biased) variance, same shape as γ.
    pub moving_var: Tensor,
}

impl BatchNorm {
    /// The book's eps.
    pub const EPS: f64 = 1e-5;
    /// The book's momentum (weight of the old moving statistics).
    pub const MOMENTUM: f64 = 0.9;

    /// A layer over `num_features` features (`num_dims = 2`, after a `Linear`) or channels
    /// (`num_dims = 4`, after a `Conv2d`), in training mode. Other `num_dims` or zero
    /// features are errors.
    pub fn new(num_features: usize, num_dims: usize) -> Result<BatchNorm> {
        let shape: Vec<usize> = match num_dims {
            2 => vec![1, num_features],
            4 => vec![1, num_features, 1, 1],
            _ => {
                return Err(Error::InvalidArgument {
                    op: "BatchNorm",
                    msg: format!("expected num_dims 2 or 4, got {num_dims}"),
                })
            }
        };
        if num_features == 0 {
            return Err(Error::InvalidArgument {
                op: "BatchNorm",
                msg: "expected num_features > 0".into(),
            });
        }
        Ok(BatchNorm {
            num_features,
            num_dims,
            training: AtomicBool::new(true),
            gamma: Tensor::ones(&shape).requires_grad_(true)?,
            beta: Tensor::zeros(&shape).requires_grad_(true)?,
            moving_mean: Tensor::zeros(&shape),
            moving_var: Tensor::ones(&shape),
        })
    }

    /// The number of features or channels C.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Whether the layer is in training mode (batch statistics, moving averages updated).
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }
}

impl Module for BatchNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() != self.num_dims || x.shape()[1] != self.num_features {
            return Err(Error::BadShape {
                op: "BatchNorm",
                msg: format!(
                    "{}: expected a {}-D input with {} channels in dim 1, got shape {:?}",
                    self.describe(),
                    self.num_dims,
                    self.num_features,
                    x.shape()
                ),
            });
        }
        let training = self.is_training();
        let (y, m, v) = batch_norm(
            x,
            &self.gamma,
            &self.beta,
            &self.moving_mean,
            &self.moving_var,
            Self::EPS,
            Self::MOMENTUM,
            training,
        )?;
        if training {
            no_grad(|| -> Result<()> {
                self.moving_mean.copy_(&m)?;
                self.moving_var.copy_(&v)?;
                Ok(())
            })?;
        }
        Ok(y)
    }

    fn parameters_local(&self) -> Vec<(String, Tensor)> {
        vec![
            ("gamma".into(), self.gamma.clone()),
            ("beta".into(), self.beta.clone()),
        ]
    }

    fn buffers_local(&self) -> Vec<(String, Tensor)> {
        vec![
            ("moving_mean".into(), self.moving_mean.clone()),
            ("moving_var".into(), self.moving_var.clone()),
        ]
    }

    fn set_training_local(&self, training: bool) {
        self.training.store(training, Ordering::Relaxed);
    }

    fn describe(&self) -> String {
        format!(
            "BatchNorm({}, num_dims={})",
            self.num_features, self.num_dims
        )
    }
}
