//! Creating tensors (D2L 2.1.1, 2.6): constants, ranges, identity, and seeded random
//! tensors drawn from the global generator or a caller's [`Generator`].
//!
//! Every constructor checks its shape against the memory limit ([`crate::limit`]) before
//! allocating: the fallible ones return [`crate::Error::TooLarge`]; the infallible ones
//! (`zeros`, `ones`, `full`, `rand`, `randn`, `eye`, ...) panic with that message, or,
//! in a program that called [`crate::limit::install`], print it and exit with code 1.

use crate::error::{invalid, Result};
use crate::limit;
use crate::random::{self, Generator};
use crate::storage::CpuStorage;
use crate::{DType, Device, Tensor};

/// `value` in a new buffer of `shape` (checked against the memory limit first: see
/// [`crate::limit`]).
fn filled(shape: &[usize], value: f64, dtype: DType) -> Result<CpuStorage> {
    let n = limit::check_shape("new tensor", shape, dtype)?;
    Ok(match dtype {
        DType::F32 => CpuStorage::F32(vec![value as f32; n]),
        DType::F64 => CpuStorage::F64(vec![value; n]),
        DType::I64 => CpuStorage::I64(vec![value as i64; n]),
        DType::U8 => CpuStorage::U8(vec![value as u8; n]),
    })
}

impl Tensor {
    /// An f32 tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::full_dtype(shape, 0.0, DType::F32)
    }

    /// An f32 tensor of zeros, or [`crate::Error::TooLarge`] when its size is over the
    /// memory limit (the fallible [`Tensor::zeros`], for sizes that come from users).
    pub fn try_zeros(shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor::from_storage(
            filled(shape, 0.0, DType::F32)?,
            shape,
            None,
        ))
    }

    /// An f32 tensor of ones.
    pub fn ones(shape: &[usize]) -> Tensor {
        Tensor::full_dtype(shape, 1.0, DType::F32)
    }

    /// An f32 tensor filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Tensor {
        Tensor::full_dtype(shape, value as f64, DType::F32)
    }

    /// A tensor of any dtype filled with `value`.
    pub fn full_dtype(shape: &[usize], value: f64, dtype: DType) -> Tensor {
        Tensor::from_storage(limit::enforce(filled(shape, value, dtype)), shape, None)
    }

    /// Zeros of a dtype.
    pub fn zeros_dtype(shape: &[usize], dtype: DType) -> Tensor {
        Tensor::full_dtype(shape, 0.0, dtype)
    }

    /// A tensor of any dtype filled with `value`, on `device`.
    pub fn full_on(shape: &[usize], value: f64, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::from_storage_on(filled(shape, value, dtype)?, shape, None, device)
    }

    /// `value` of `shape` with this tensor's dtype and device.
    ///
    /// # Panics
    /// If the device cannot take the buffer (out of device memory).
    pub(crate) fn full_like_shape(&self, shape: &[usize], value: f64) -> Tensor {
        match Tensor::full_on(shape, value, self.dtype(), self.device()) {
            Ok(t) => t,
            Err(e @ crate::Error::TooLarge { .. }) => limit::enforce(Err(e)),
            Err(e) => panic!("allocating {shape:?} on {}: {e}", self.device()),
        }
    }

    /// Zeros with this tensor's shape, dtype and device.
    ///
    /// # Panics
    /// If the device cannot take the buffer (out of device memory).
    pub fn zeros_like(&self) -> Tensor {
        self.full_like_shape(self.shape(), 0.0)
    }

    /// Ones with this tensor's shape, dtype and device.
    ///
    /// # Panics
    /// If the device cannot take the buffer (out of device memory).
    pub fn ones_like(&self) -> Tensor {
        self.full_like_shape(self.shape(), 1.0)
    }

    /// `value` with this tensor's shape, dtype and device.
    ///
    /// # Panics
    /// If the device cannot take the buffer (out of device memory).
    pub fn full_like(&self, value: f64) -> Tensor {
        self.full_like_shape(self.shape(), value)
    }

    /// f32 values `start, start + step, ...` below `end` (`torch.arange`).
    pub fn arange(start: f64, end: f64, step: f64) -> Result<Tensor> {
        Tensor::arange_dtype(start, end, step, DType::F32)
    }

    /// `arange` with a dtype (`DType::I64` gives integer ranges).
    pub fn arange_dtype(start: f64, end: f64, step: f64, dtype: DType) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(invalid(
                "arange",
                format!(
                    "expected finite bounds and a non-zero step, got {start}..{end} step {step}"
                ),
            ));
        }
        if (end - start) * step < 0.0 {
            return Err(invalid(
                "arange",
                format!("the step {step} does not lead from {start} to {end}"),
            ));
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        Tensor::from_vec(v, &[n])?.to_dtype(dtype)
    }

    /// `steps` evenly spaced f32 values from `start` to `end` inclusive.
    pub fn linspace(start: f64, end: f64, steps: usize) -> Result<Tensor> {
        let v: Vec<f32> = match steps {
            0 => vec![],
            1 => vec![start as f32],
            _ => {
                let d = (end - start) / (steps - 1) as f64;
                (0..steps)
                    .map(|i| {
                        if i == steps - 1 {
                            end as f32
                        } else {
                            (start + i as f64 * d) as f32
                        }
                    })
                    .collect()
            }
        };
        Tensor::from_vec(v, &[steps])
    }

    /// The n×n identity (f32).
    pub fn eye(n: usize) -> Tensor {
        limit::enforce(limit::check_shape("eye", &[n, n], DType::F32));
        let mut v = vec![0f32; n * n];
        for i in 0..n {
            v[i * n + i] = 1.0;
        }
        Tensor::from_storage(CpuStorage::F32(v), &[n, n], None)
    }

    /// Uniform [0, 1) f32 samples from the global generator.
    pub fn rand(shape: &[usize]) -> Tensor {
        random::with_global(|g| Tensor::rand_with(g, shape))
    }

    /// Uniform [0, 1) f32 samples from `g`.
    pub fn rand_with(g: &mut Generator, shape: &[usize]) -> Tensor {
        let n = limit::enforce(limit::check_shape("rand", shape, DType::F32));
        Tensor::from_storage(
            CpuStorage::F32(random::uniform_f32(g, n, 0.0, 1.0)),
            shape,
            None,
        )
    }

    /// Standard normal f32 samples from the global generator.
    pub fn randn(shape: &[usize]) -> Tensor {
        random::with_global(|g| Tensor::randn_with(g, shape))
    }

    /// Standard normal f32 samples from `g`.
    pub fn randn_with(g: &mut Generator, shape: &[usize]) -> Tensor {
        let n = limit::enforce(limit::check_shape("randn", shape, DType::F32));
        Tensor::from_storage(
            CpuStorage::F32(random::normal_f32(g, n, 0.0, 1.0)),
            shape,
            None,
        )
    }

    /// N(mean, std²) f32 samples from the global generator.
    pub fn normal(shape: &[usize], mean: f64, std: f64) -> Result<Tensor> {
        random::with_global(|g| Tensor::normal_with(g, shape, mean, std))
    }

    /// N(mean, std²) f32 samples from `g`.
    pub fn normal_with(g: &mut Generator, shape: &[usize], mean: f64, std: f64) -> Result<Tensor> {
        if std.is_nan() || std < 0.0 || !mean.is_finite() || !std.is_finite() {
            return Err(invalid(
                "normal",
                format!("expected a finite mean and std >= 0, got mean {mean} and std {std}"),
            ));
        }
        let n = limit::check_shape("normal", shape, DType::F32)?;
        Ok(Tensor::from_storage(
            CpuStorage::F32(random::normal_f32(g, n, mean as f32, std as f32)),
            shape,
            None,
        ))
    }

    /// Uniform [lo, hi) f32 samples from the global generator.
    pub fn uniform(shape: &[usize], lo: f64, hi: f64) -> Result<Tensor> {
        random::with_global(|g| Tensor::uniform_with(g, shape, lo, hi))
    }

    /// Uniform [lo, hi) f32 samples from `g`.
    pub fn uniform_with(g: &mut Generator, shape: &[usize], lo: f64, hi: f64) -> Result<Tensor> {
        if lo > hi || !lo.is_finite() || !hi.is_finite() {
            return Err(invalid(
                "uniform",
                format!("expected finite bounds with lo <= hi, got [{lo}, {hi})"),
            ));
        }
        let n = limit::check_shape("uniform", shape, DType::F32)?;
        Ok(Tensor::from_storage(
            CpuStorage::F32(random::uniform_f32(g, n, lo as f32, hi as f32)),
            shape,
            None,
        ))
    }

    /// 0/1 f32 samples that are 1 with probability `p` (global generator).
    pub fn bernoulli(shape: &[usize], p: f64) -> Result<Tensor> {
        random::with_global(|g| Tensor::bernoulli_with(g, shape, p))
    }

    /// 0/1 f32 samples that are 1 with probability `p`, from `g`.
    pub fn bernoulli_with(g: &mut Generator, shape: &[usize], p: f64) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&p) {
            return Err(invalid(
                "bernoulli",
                format!("expected a probability in [0, 1], got {p}"),
            ));
        }
        let n = limit::check_shape("bernoulli", shape, DType::F32)?;
        Ok(Tensor::from_storage(
            CpuStorage::F32(random::bernoulli_f32(g, n, p)),
            shape,
            None,
        ))
    }

    /// A random permutation of `0..n` (`i64`), from the global generator.
    pub fn randperm(n: usize) -> Tensor {
        random::with_global(|g| Tensor::randperm_with(g, n))
    }

    /// A random permutation of `0..n` from `g`.
    pub fn randperm_with(g: &mut Generator, n: usize) -> Tensor {
        Tensor::from_storage(CpuStorage::I64(random::randperm(g, n)), &[n], None)
    }

    /// Draws `num_samples` category indices per row of these (unnormalised) weights, a 1-D
    /// or 2-D tensor, with or without replacement (`torch.multinomial`, D2L 2.6).
    pub fn multinomial(&self, num_samples: usize, replacement: bool) -> Result<Tensor> {
        random::with_global(|g| self.multinomial_with(g, num_samples, replacement))
    }

    /// [`Tensor::multinomial`] drawing from `g`.
    pub fn multinomial_with(
        &self,
        g: &mut Generator,
        num_samples: usize,
        replacement: bool,
    ) -> Result<Tensor> {
        let rows = match self.rank() {
            1 => 1,
            2 => self.shape()[0],
            r => {
                return Err(invalid(
                    "multinomial",
                    format!("expected 1-D or 2-D weights, got {r} dims"),
                ))
            }
        };
        self.expect_float("multinomial")?;
        let probs = self.to_f64_vec();
        let v = random::multinomial(g, &probs, rows, num_samples, replacement)
            .map_err(|m| invalid("multinomial", m))?;
        let shape: Vec<usize> = if self.rank() == 1 {
            vec![num_samples]
        } else {
            vec![rows, num_samples]
        };
        Tensor::from_vec(v, &shape)
    }
}

/// Resets the global generator so later random ops repeat (`torch.manual_seed`).
pub fn manual_seed(seed: u64) {
    random::manual_seed(seed)
}
