//! Gradient clipping (D2L 8.5.4 `grad_clipping`, 9.5): rescale all gradients together so
//! their global norm is at most `max_norm` ([`clip_grad_norm_`], as
//! `torch.nn.utils.clip_grad_norm_`), or clamp each entry ([`clip_grad_value_`]).
//!
//! Parameters without a gradient are ignored. The clipped gradient replaces the stored
//! one (`set_grad`), so a gradient tensor that autograd shares between parameters is
//! never scaled twice.
//!
//! ```
//! use d2l_nn::clip::clip_grad_norm_;
//! use d2l_nn::Tensor;
//! # fn main() -> d2l_nn::Result<()> {
//! let w = Tensor::zeros(&[2]).requires_grad_(true)?;
//! w.set_grad(Some(Tensor::from_vec(vec![3.0f32, 4.0], &[2])?));
//! let norm = clip_grad_norm_(&[w.clone()], 1.0)?;
//! assert!((norm - 5.0).abs() < 1e-9);
//! let g = w.grad().unwrap().to_vec::<f32>();
//! assert!((g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5);
//! # Ok(()) }
//! ```

use d2l_tensor::{no_grad, Error, Result, Tensor};

fn invalid(op: &'static str, msg: String) -> Error {
    Error::InvalidArgument { op, msg }
}

/// The `norm_type`-norm of all gradients of `params` taken together, as if concatenated
/// into one vector (`f64::INFINITY` = largest absolute entry); 0 when none has a gradient.
pub fn grad_norm(params: &[Tensor], norm_type: f64) -> Result<f64> {
    if norm_type.is_nan() || norm_type <= 0.0 {
        return Err(invalid(
            "grad_norm",
            format!("expected norm_type > 0 (or infinity), got {norm_type}"),
        ));
    }
    let mut acc = 0.0f64;
    // Gradients on a GPU are reduced there (in f64) and only one number per device comes
    // back to the host; CPU gradients are read in place.
    let mut on_device: Vec<(d2l_tensor::Device, Tensor)> = Vec::new();
    for g in params.iter().filter_map(|p| p.grad()) {
        let dev = g.device();
        if dev != d2l_tensor::Device::Cpu {
            let a = g.to_dtype(d2l_tensor::DType::F64)?.abs()?;
            let part = if norm_type.is_infinite() {
                a.max_all()?
            } else if norm_type == 2.0 {
                a.square()?.sum_all()?
            } else {
                a.pow_scalar(norm_type)?.sum_all()?
            };
            match on_device.iter_mut().find(|(d, _)| *d == dev) {
                Some((_, t)) if norm_type.is_infinite() => *t = t.maximum(&part)?,
                Some((_, t)) => *t = t.add(&part)?,
                None => on_device.push((dev, part)),
            }
            continue;
        }
        if norm_type == 2.0 && g.dtype() == d2l_tensor::DType::F32 {
            // The common case (D2L 8.5's grad_clipping) without a converted copy.
            acc += g.with_slice::<f32, _>(sum_squares)?;
            continue;
        }
        let v = g.to_f64_vec();
        if norm_type.is_infinite() {
            acc = v.iter().fold(acc, |m, x| m.max(x.abs()));
        } else if norm_type == 2.0 {
            acc += v.iter().map(|x| x * x).sum::<f64>();
        } else {
            acc += v.iter().map(|x| x.abs().powf(norm_type)).sum::<f64>();
        }
    }
    for (_, part) in on_device {
        let v = part.item_f64()?;
        if norm_type.is_infinite() {
            acc = acc.max(v);
        } else {
            acc += v;
        }
    }
    Ok(if norm_type.is_infinite() {
        acc
    } else if norm_type == 2.0 {
        acc.sqrt()
    } else {
        acc.powf(1.0 / norm_type)
    })
}

/// Σ x² in f64 with eight independent partial sums, so the loop vectorises.
fn sum_squares(v: &[f32]) -> f64 {
    let mut lanes = [0f64; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += (x as f64) * (x as f64);
        }
    }
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum();
    lanes.iter().sum::<f64>() + tail
}

/// Scales every gradient by `max_norm / (total + 1e-6)` when the global L2 norm `total`
/// exceeds `max_norm`; returns `total` (the norm before clipping).
pub fn clip_grad_norm_(params: &[Tensor], max_norm: f64) -> Result<f64> {
    clip_grad_norm_p_(params, max_norm, 2.0)
}

/// [`clip_grad_norm_`] with any p-norm (`f64::INFINITY` for the max norm), PyTorch's
/// `norm_type` argument.
pub fn clip_grad_norm_p_(params: &[Tensor], max_norm: f64, norm_type: f64) -> Result<f64> {
    if max_norm.is_nan() || max_norm < 0.0 {
        return Err(invalid(
            "clip_grad_norm_",
            format!("expected max_norm >= 0, got {max_norm}"),
        ));
    }
    let total = grad_norm(params, norm_type)?;
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        no_grad(|| -> Result<()> {
            for p in params {
                if let Some(g) = p.grad() {
                    p.set_grad(Some(g.mul_scalar(coef)?));
                }
            }
            Ok(())
        })?;
    }
    Ok(total)
}

/// Clamps every gradient entry into `[-clip_value, clip_value]`
/// (`torch.nn.utils.clip_grad_value_`).
pub fn clip_grad_value_(params: &[Tensor], clip_value: f64) -> Result<()> {
    if clip_value.is_nan() || clip_value < 0.0 {
        return Err(invalid(
            "clip_grad_value_",
            format!("expected clip_value >= 0, got {clip_value}"),
        ));
    }
    no_grad(|| {
        for p in params {
            if let Some(g) = p.grad() {
                p.set_grad(Some(g.clamp(-clip_value, clip_value)?));
            }
        }
        Ok(())
    })
}
