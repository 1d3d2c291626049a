//! Gradient checking: the analytic gradient from `backward` against central finite
//! differences, both in f64. Every differentiable op is tested with it.

use crate::error::{invalid, Result};
use crate::random::Generator;
use crate::{DType, Tensor};

/// Tolerances and step of [`gradcheck_with`].
#[derive(Debug, Clone, Copy)]
pub struct GradcheckOptions {
    /// Finite-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        // PyTorch's gradcheck defaults for f64.
        GradcheckOptions {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
        }
    }
}

/// Checks `f`'s gradients at `inputs` with default tolerances; see [`gradcheck_with`].
pub fn gradcheck(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) -> Result<()> {
    gradcheck_with(f, inputs, GradcheckOptions::default())
}

/// Converts the float inputs to f64 leaves, reduces `f`'s output to a scalar with fixed
/// random weights, and compares the gradient `backward` gives for every input element
/// with a central difference. Integer inputs (indices, masks) are passed through.
/// Returns an error naming the first input and element that disagree.
pub fn gradcheck_with(
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    opts: GradcheckOptions,
) -> Result<()> {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|t| {
            if t.dtype().is_float() {
                t.to_dtype(DType::F64).map(|x| x.detach())
            } else {
                Ok(t.clone())
            }
        })
        .collect::<Result<_>>()?;
    let probe = crate::no_grad(|| f(&leaves))?;
    let weights =
        Tensor::randn_with(&mut Generator::new(0x5eed), probe.shape()).to_dtype(DType::F64)?;
    let loss = |xs: &[Tensor]| -> Result<f64> {
        crate::no_grad(|| {
            f(xs)?
                .to_dtype(DType::F64)?
                .mul(&weights)?
                .sum_all()?
                .item_f64()
        })
    };

    let tracked: Vec<Tensor> = leaves
        .iter()
        .map(|t| {
            if t.dtype().is_float() {
                t.copy()?.requires_grad_(true)
            } else {
                Ok(t.clone())
            }
        })
        .collect::<Result<_>>()?;
    let out = f(&tracked)?.to_dtype(DType::F64)?;
    out.mul(&weights)?.sum_all()?.backward()?;

    for (i, t) in tracked.iter().enumerate() {
        if !t.dtype().is_float() {
            continue;
        }
        let analytic = t
            .grad()
            .map(|g| g.to_f64_vec())
            .unwrap_or_else(|| vec![0.0; t.numel()]);
        let base = leaves[i].to_f64_vec();
        for (j, &a) in analytic.iter().enumerate() {
            let at = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[j] += delta;
                let mut xs = leaves.clone();
                xs[i] = Tensor::from_vec(v, leaves[i].shape())?;
                loss(&xs)
            };
            let numeric = (at(opts.eps)? - at(-opts.eps)?) / (2.0 * opts.eps);
            let close = (a - numeric).abs() <= opts.atol + opts.rtol * numeric.abs();
            if !close || a.is_nan() != numeric.is_nan() {
                return Err(invalid(
                    "gradcheck",
                    format!("input {i}, element {j}: analytic gradient {a:.8} but finite difference {numeric:.8}"),
                ));
            }
        }
    }
    Ok(())
}
