//! Reductions (D2L 2.3.6): sums and means over any dims, max/min with indices, variance,
//! log-sum-exp, norms, and the numerically stable softmax / log-softmax of D2L 4.1 and 4.4.

use crate::backprop::Op;
use crate::cpu::reduce;
use crate::error::{invalid, Result};
use crate::storage::{CpuStorage, Storage};
use crate::Tensor;

impl Tensor {
    /// Validates and sorts reduction dims; `None` means every dim.
    pub(crate) fn reduce_dims(
        &self,
        op: &'static str,
        dims: Option<&[isize]>,
    ) -> Result<Vec<usize>> {
        let mut out = match dims {
            None => (0..self.rank()).collect::<Vec<_>>(),
            Some(ds) => ds
                .iter()
                .map(|&d| self.resolve_dim(op, d))
                .collect::<Result<Vec<_>>>()?,
        };
        out.sort_unstable();
        if out.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid(op, format!("dimension listed twice in {dims:?}")));
        }
        Ok(out)
    }

    /// The shape after reducing `dims`.
    pub(crate) fn reduced_shape(&self, dims: &[usize], keepdim: bool) -> Vec<usize> {
        let mut out = Vec::new();
        for (d, &s) in self.shape().iter().enumerate() {
            if dims.contains(&d) {
                if keepdim {
                    out.push(1);
                }
            } else {
                out.push(s);
            }
        }
        out
    }

    fn sum_impl(&self, dims: Vec<usize>, keepdim: bool) -> Result<Tensor> {
        self.expect_float("sum")?;
        let shape = self.reduced_shape(&dims, keepdim);
        let out = Tensor::native_or(
            crate::cuda::native::sum(self, &dims)?,
            self.device(),
            || {
                let s = self.storage();
                match s.cpu() {
                    CpuStorage::F32(x) => CpuStorage::F32(reduce::sum(x, self.layout(), &dims)),
                    CpuStorage::F64(x) => CpuStorage::F64(reduce::sum(x, self.layout(), &dims)),
                    _ => unreachable!(),
                }
            },
        )?;
        let rec = Tensor::record(&[self], || Op::Sum {
            arg: self.clone(),
            dims: dims.clone(),
        });
        Ok(Tensor::from_parts(out, &shape, rec))
    }

    /// Sum over `dims` (negative dims count from the end).
    pub fn sum(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        let _prof = crate::profile::scope("sum");
        if !self.dtype().is_float() {
            return self
                .to_dtype(crate::DType::F64)?
                .sum(dims, keepdim)?
                .to_dtype(crate::DType::I64);
        }
        let d = self.reduce_dims("sum", Some(dims))?;
        self.sum_impl(d, keepdim)
    }

    /// Sum of every element, as a 0-d tensor (integer tensors sum to `i64`).
    pub fn sum_all(&self) -> Result<Tensor> {
        if !self.dtype().is_float() {
            return self
                .to_dtype(crate::DType::F64)?
                .sum_all()?
                .to_dtype(crate::DType::I64);
        }
        self.sum_impl((0..self.rank()).collect(), false)
    }

    /// Mean over `dims`.
    pub fn mean(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        self.expect_float("mean")?;
        let d = self.reduce_dims("mean", Some(dims))?;
        let n: usize = d.iter().map(|&i| self.shape()[i]).product();
        self.sum_impl(d, keepdim)?.div_scalar(n as f64)
    }

    /// Mean of every element.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.expect_float("mean")?;
        self.sum_all()?.div_scalar(self.numel() as f64)
    }

    fn extremum(&self, dim: isize, keepdim: bool, max: bool) -> Result<(Tensor, Tensor)> {
        let name = if max { "max" } else { "min" };
        if self.rank() == 0 {
            self.resolve_dim(name, dim)?;
            // A 0-d tensor stays 0-d whatever keepdim says (as in PyTorch).
            return self.reshape([1])?.extremum(0, false, max);
        }
        let src = if self.dtype().is_float() {
            self.clone()
        } else {
            self.to_dtype(crate::DType::F64)?
        };
        let d = src.resolve_dim(name, dim)?;
        if src.rank() > 0 && src.shape()[d] == 0 {
            return Err(invalid(name, "cannot reduce over an empty dimension"));
        }
        let shape = src.reduced_shape(&[d], keepdim);
        let (vals, idx) = match crate::cuda::native::extremum(&src, d, max)? {
            Some(pair) => pair,
            None => {
                let s = src.storage();
                let (vals, idx) = match s.cpu() {
                    CpuStorage::F32(x) => {
                        let (v, i) = reduce::extremum_dim(x, src.layout(), d, max);
                        (CpuStorage::F32(v), i)
                    }
                    CpuStorage::F64(x) => {
                        let (v, i) = reduce::extremum_dim(x, src.layout(), d, max);
                        (CpuStorage::F64(v), i)
                    }
                    _ => unreachable!(),
                };
                drop(s);
                (
                    Storage::on_device(vals, self.device())?,
                    Storage::on_device(CpuStorage::I64(idx), self.device())?,
                )
            }
        };
        let indices = Tensor::from_parts(idx, &shape, None);
        let rec = Tensor::record(&[&src], || Op::Extremum {
            arg: src.clone(),
            dim: d,
            keepdim,
            indices: indices.clone(),
        });
        let values = Tensor::from_parts(vals, &shape, rec);
        let values = if self.dtype().is_float() {
            values
        } else {
            values.to_dtype(self.dtype())?
        };
        Ok((values, indices))
    }

    /// Maximum along `dim` with the index of the (first) maximum, like `torch.max(x, dim)`.
    pub fn max_dim(&self, dim: isize, keepdim: bool) -> Result<(Tensor, Tensor)> {
        let _prof = crate::profile::scope("max/min");
        self.extremum(dim, keepdim, true)
    }

    /// Minimum along `dim` with its index.
    pub fn min_dim(&self, dim: isize, keepdim: bool) -> Result<(Tensor, Tensor)> {
        let _prof = crate::profile::scope("max/min");
        self.extremum(dim, keepdim, false)
    }

    fn flat(&self) -> Result<Tensor> {
        self.reshape([-1])
    }

    /// Largest element, as a 0-d tensor.
    pub fn max_all(&self) -> Result<Tensor> {
        Ok(self.flat()?.extremum(0, false, true)?.0)
    }

    /// Smallest element, as a 0-d tensor.
    pub fn min_all(&self) -> Result<Tensor> {
        Ok(self.flat()?.extremum(0, false, false)?.0)
    }

    /// Index of the maximum along `dim` (`i64`).
    pub fn argmax(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        crate::no_grad(|| Ok(self.extremum(dim, keepdim, true)?.1))
    }

    /// Index of the minimum along `dim` (`i64`).
    pub fn argmin(&self, dim: isize, keepdim: bool) -> Result<Tensor> {
        crate::no_grad(|| Ok(self.extremum(dim, keepdim, false)?.1))
    }

    /// Variance over `dims`; `unbiased` divides by n − 1 (PyTorch's default) instead of n.
    pub fn var(&self, dims: &[isize], unbiased: bool, keepdim: bool) -> Result<Tensor> {
        self.expect_float("var")?;
        let d = self.reduce_dims("var", Some(dims))?;
        let n: usize = d.iter().map(|&i| self.shape()[i]).product();
        let ds: Vec<isize> = d.iter().map(|&i| i as isize).collect();
        let centred = self.sub(&self.mean(&ds, true)?)?;
        let denom = if unbiased { n as f64 - 1.0 } else { n as f64 };
        centred.square()?.sum(&ds, keepdim)?.div_scalar(denom)
    }

    /// Standard deviation over `dims`.
    pub fn std(&self, dims: &[isize], unbiased: bool, keepdim: bool) -> Result<Tensor> {
        self.var(dims, unbiased, keepdim)?.sqrt()
    }

    /// log Σ exp(x) over `dims`, shifted by the (detached) maximum so it never overflows.
    pub fn logsumexp(&self, dims: &[isize], keepdim: bool) -> Result<Tensor> {
        self.expect_float("logsumexp")?;
        let d = self.reduce_dims("logsumexp", Some(dims))?;
        let ds: Vec<isize> = d.iter().map(|&i| i as isize).collect();
        let mut m = self.detach();
        for &dim in d.iter().rev() {
            m = m.max_dim(dim as isize, true)?.0;
        }
        // Rows that are all -inf would give inf - inf; shift those by 0.
        let m = crate::no_grad(|| {
            let finite = m.gt_scalar(f64::NEG_INFINITY)?;
            Tensor::where_cond(&finite, &m, &m.zeros_like())
        })?;
        let out = self.sub(&m)?.exp()?.sum(&ds, true)?.log()?.add(&m)?;
        if keepdim {
            Ok(out)
        } else {
            out.reshape(self.reduced_shape(&d, false))
        }
    }

    /// The p-norm of all elements (p = 2 is the Euclidean norm of D2L 2.3.11).
    pub fn norm(&self, p: f64) -> Result<Tensor> {
        self.expect_float("norm")?;
        if p == 2.0 {
            self.square()?.sum_all()?.sqrt()
        } else if p == 1.0 {
            self.abs()?.sum_all()
        } else if p > 0.0 && p.is_finite() {
            self.abs()?.pow_scalar(p)?.sum_all()?.pow_scalar(1.0 / p)
        } else {
            Err(invalid("norm", format!("expected a finite p > 0, got {p}")))
        }
    }

    fn softmax_impl(&self, dim: isize, log: bool) -> Result<Tensor> {
        let name = if log { "log_softmax" } else { "softmax" };
        self.expect_float(name)?;
        let d = self.resolve_dim(name, dim)?;
        if self.rank() == 0 {
            return self
                .reshape([1])?
                .softmax_impl(0, log)?
                .reshape(Vec::<usize>::new());
        }
        let (buf, inverse) = match crate::cuda::native::softmax(self, d, log)? {
            Some(buf) => {
                // The kernel leaves `dim` last, like the CPU's: the same inverse permutation.
                let mut perm: Vec<usize> = (0..self.rank()).filter(|&i| i != d).collect();
                perm.push(d);
                let mut inverse = vec![0; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    inverse[p] = i;
                }
                (buf, inverse)
            }
            None => {
                let s = self.storage();
                let (buf, inverse) = match s.cpu() {
                    CpuStorage::F32(x) => {
                        let (v, p) = reduce::softmax(x, self.layout(), d, log);
                        (CpuStorage::F32(v), p)
                    }
                    CpuStorage::F64(x) => {
                        let (v, p) = reduce::softmax(x, self.layout(), d, log);
                        (CpuStorage::F64(v), p)
                    }
                    _ => unreachable!(),
                };
                drop(s);
                (Storage::on_device(buf, self.device())?, inverse)
            }
        };
        // The kernel leaves `dim` last; permute the view back and copy only if it moved.
        let mut moved: Vec<usize> = self.shape().to_vec();
        let last = moved.remove(d);
        moved.push(last);
        let raw = Tensor::from_parts(buf, &moved, None);
        let y = if d + 1 == self.rank() {
            raw
        } else {
            raw.permute(&inverse)?.contiguous()?
        };
        if !Tensor::tracks(&[self]) {
            return Ok(y);
        }
        let saved = y.detach();
        let op = if log {
            Op::LogSoftmax {
                arg: self.clone(),
                out: saved,
                dim: d,
            }
        } else {
            Op::Softmax {
                arg: self.clone(),
                out: saved,
                dim: d,
            }
        };
        Ok(y.view_with(y.layout().clone(), Some(op)))
    }

    /// Softmax along `dim`, stable for large logits (D2L 4.1.1).
    pub fn softmax(&self, dim: isize) -> Result<Tensor> {
        let _prof = crate::profile::scope("softmax");
        self.softmax_impl(dim, false)
    }

    /// log(softmax(x)) along `dim`, computed without forming the softmax (D2L 4.4).
    pub fn log_softmax(&self, dim: isize) -> Result<Tensor> {
        let _prof = crate::profile::scope("log_softmax");
        self.softmax_impl(dim, true)
    }
}
