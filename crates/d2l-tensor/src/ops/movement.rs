//! Views and copies that move data around (D2L 2.1): reshape, permute, broadcast and
//! narrow share storage; cat, stack and pad copy.

use crate::backprop::Op;
use crate::cpu;
use crate::error::{bad_shape, invalid, Error, Result};
use crate::layout::{infer_shape, Layout};
use crate::storage::{with_slice, CpuStorage};
use crate::{Element, Tensor};

/// A shape argument that may contain one `-1` to infer (`[2, -1]`, `&[usize]`, `vec![..]`).
pub trait ShapeSpec {
    /// The dims, with -1 for the inferred one.
    fn spec(&self) -> Vec<isize>;
}

macro_rules! shape_spec {
    ($($t:ty),*) => {$(
        impl ShapeSpec for &[$t] {
            fn spec(&self) -> Vec<isize> { self.iter().map(|&d| d as isize).collect() }
        }
        impl ShapeSpec for Vec<$t> {
            fn spec(&self) -> Vec<isize> { self.iter().map(|&d| d as isize).collect() }
        }
        impl ShapeSpec for &Vec<$t> {
            fn spec(&self) -> Vec<isize> { self.iter().map(|&d| d as isize).collect() }
        }
        impl<const N: usize> ShapeSpec for [$t; N] {
            fn spec(&self) -> Vec<isize> { self.iter().map(|&d| d as isize).collect() }
        }
        impl<const N: usize> ShapeSpec for &[$t; N] {
            fn spec(&self) -> Vec<isize> { self.iter().map(|&d| d as isize).collect() }
        }
    )*};
}
shape_spec!(usize, isize, i32, i64);

impl Tensor {
    /// A row-major copy when the view is strided; the same handle otherwise.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        // Only real copies show in the profile.
        self.row_major_copy("contiguous")
    }

    /// A fresh row-major copy (a recorded `Copy` op), profiled as `scope`: the body of
    /// [`Tensor::copy`] and of [`Tensor::contiguous`] on a strided view.
    pub(crate) fn row_major_copy(&self, scope: &'static str) -> Result<Tensor> {
        let _prof = crate::profile::scope(scope);
        if let Some(out) = crate::cuda::native::contiguous(self)? {
            let rec = Tensor::record(&[self], || Op::Copy(self.clone()));
            return Ok(Tensor::from_parts(out, self.shape(), rec));
        }
        let s = self.storage();
        let out =
            with_slice!(s.cpu(), v => Element::into_storage(cpu::copy_strided(v, self.layout())));
        drop(s);
        let rec = Tensor::record(&[self], || Op::Copy(self.clone()));
        Tensor::from_storage_on(out, self.shape(), rec, self.device())
    }

    /// Reshapes, as a view when the data is contiguous and with a copy otherwise; one
    /// dim may be -1 and is inferred.
    pub fn reshape(&self, shape: impl ShapeSpec) -> Result<Tensor> {
        let shape = infer_shape("reshape", self.numel(), self.shape(), &shape.spec())?;
        let base = self.contiguous()?;
        let layout = Layout {
            offset: base.layout().offset,
            ..Layout::contiguous(&shape)
        };
        if shape == self.shape() {
            return Ok(base);
        }
        let rec = Tensor::record(&[&base], || Op::Reshape(base.clone()));
        Ok(base.view_with(layout, rec))
    }

    /// Reshapes without copying; an error if the tensor is not contiguous (PyTorch's `view`).
    pub fn view(&self, shape: impl ShapeSpec) -> Result<Tensor> {
        if !self.is_contiguous() {
            return Err(bad_shape(
                "view",
                format!(
                    "a tensor of shape {:?} and strides {:?} is not contiguous; use reshape() (which copies) or contiguous() first",
                    self.shape(),
                    self.stride()
                ),
            ));
        }
        self.reshape(shape)
    }

    /// Reorders dims (a view).
    pub fn permute(&self, dims: &[usize]) -> Result<Tensor> {
        let layout = self.layout().permute(dims)?;
        let rec = Tensor::record(&[self], || Op::Permute(self.clone(), dims.to_vec()));
        Ok(self.view_with(layout, rec))
    }

    /// Swaps two dims (a view).
    pub fn transpose(&self, dim0: isize, dim1: isize) -> Result<Tensor> {
        let a = self.resolve_dim("transpose", dim0)?;
        let b = self.resolve_dim("transpose", dim1)?;
        let mut dims: Vec<usize> = (0..self.rank()).collect();
        dims.swap(a, b);
        self.permute(&dims)
    }

    /// The transpose of a matrix (vectors and scalars are returned as they are), like `.T`.
    pub fn t(&self) -> Result<Tensor> {
        match self.rank() {
            0 | 1 => Ok(self.clone()),
            2 => self.transpose(0, 1),
            r => Err(invalid(
                "t",
                format!(
                    "expected a tensor of at most 2 dims, got {r} dims (use transpose or permute)"
                ),
            )),
        }
    }

    /// Drops every size-1 dim.
    pub fn squeeze_all(&self) -> Result<Tensor> {
        let shape: Vec<usize> = self.shape().iter().copied().filter(|&d| d != 1).collect();
        self.reshape(shape)
    }

    /// Drops `dim` if it has size 1 (otherwise returns the tensor unchanged, as PyTorch).
    pub fn squeeze(&self, dim: isize) -> Result<Tensor> {
        let d = self.resolve_dim("squeeze", dim)?;
        if self.rank() == 0 || self.shape()[d] != 1 {
            return Ok(self.clone());
        }
        let mut shape = self.shape().to_vec();
        shape.remove(d);
        self.reshape(shape)
    }

    /// Inserts a size-1 dim at `dim` (which may equal the rank, or be negative).
    pub fn unsqueeze(&self, dim: isize) -> Result<Tensor> {
        let d = crate::layout::resolve_dim("unsqueeze", dim, self.rank() + 1)?;
        let mut shape = self.shape().to_vec();
        shape.insert(d, 1);
        self.reshape(shape)
    }

    /// Merges dims `start..=end` into one (`flatten(1, -1)` keeps the batch dim).
    pub fn flatten(&self, start: isize, end: isize) -> Result<Tensor> {
        if self.rank() == 0 {
            return self.reshape([1]);
        }
        let s = self.resolve_dim("flatten", start)?;
        let e = self.resolve_dim("flatten", end)?;
        if s > e {
            return Err(invalid(
                "flatten",
                format!("start dim {start} comes after end dim {end}"),
            ));
        }
        let mut shape = self.shape()[..s].to_vec();
        shape.push(self.shape()[s..=e].iter().product());
        shape.extend_from_slice(&self.shape()[e + 1..]);
        self.reshape(shape)
    }

    /// `length` entries of `dim` starting at `start` (a view; PyTorch's `narrow`).
    pub fn narrow(&self, dim: isize, start: usize, length: usize) -> Result<Tensor> {
        let d = self.resolve_dim("narrow", dim)?;
        let size = self.shape().get(d).copied().unwrap_or(1);
        if start + length > size {
            return Err(Error::IndexOutOfRange {
                op: "narrow",
                index: (start + length) as i64,
                size,
            });
        }
        if self.rank() == 0 {
            return Err(invalid("narrow", "cannot narrow a 0-d tensor"));
        }
        let layout = self.layout().narrow(d, start, length);
        let rec = Tensor::record(&[self], || Op::Narrow {
            arg: self.clone(),
            dim: d,
            start,
        });
        Ok(self.view_with(layout, rec))
    }

    /// Python-style slice `start..end` of `dim` (negative bounds count from the end, clamped).
    pub fn slice(&self, dim: isize, start: isize, end: isize) -> Result<Tensor> {
        let d = self.resolve_dim("slice", dim)?;
        let n = self.shape()[d] as isize;
        let fix = |i: isize| (if i < 0 { i + n } else { i }).clamp(0, n) as usize;
        let (s, e) = (fix(start), fix(end));
        self.narrow(d as isize, s, e.saturating_sub(s))
    }

    /// The `index`-th entry along `dim`, with that dim removed (`x[i]` for dim 0).
    pub fn select(&self, dim: isize, index: isize) -> Result<Tensor> {
        let d = self.resolve_dim("select", dim)?;
        let n = self.shape()[d];
        let i = if index < 0 { index + n as isize } else { index };
        if i < 0 || i as usize >= n {
            return Err(Error::IndexOutOfRange {
                op: "select",
                index: index as i64,
                size: n,
            });
        }
        self.narrow(d as isize, i as usize, 1)?.squeeze(d as isize)
    }

    /// A broadcast view with the given shape (PyTorch's `expand` / `broadcast_to`).
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        if shape == self.shape() {
            return Ok(self.clone());
        }
        let layout = self.layout().broadcast_to("broadcast_to", shape)?;
        let rec = Tensor::record(&[self], || Op::Broadcast(self.clone()));
        Ok(self.view_with(layout, rec))
    }

    /// Alias of [`Tensor::broadcast_to`].
    pub fn expand(&self, shape: &[usize]) -> Result<Tensor> {
        self.broadcast_to(shape)
    }

    /// Pieces of at most `size` entries along `dim` (views).
    pub fn split(&self, size: usize, dim: isize) -> Result<Vec<Tensor>> {
        let d = self.resolve_dim("split", dim)?;
        if size == 0 {
            return Err(invalid(
                "split",
                "expected a split size of at least 1, got 0",
            ));
        }
        let n = self.shape()[d];
        (0..n)
            .step_by(size)
            .map(|s| self.narrow(d as isize, s, size.min(n - s)))
            .collect()
    }

    /// `chunks` nearly equal pieces along `dim` (the last may be smaller, as in PyTorch).
    pub fn chunk(&self, chunks: usize, dim: isize) -> Result<Vec<Tensor>> {
        if chunks == 0 {
            return Err(invalid("chunk", "expected at least 1 chunk, got 0"));
        }
        let d = self.resolve_dim("chunk", dim)?;
        let n = self.shape()[d];
        self.split(n.div_ceil(chunks).max(1), d as isize)
    }

    /// Concatenates along an existing dim.
    pub fn cat(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        let _prof = crate::profile::scope("cat");
        let first = *tensors
            .first()
            .ok_or_else(|| invalid("cat", "expected at least one tensor"))?;
        let d = first.resolve_dim("cat", dim)?;
        for t in &tensors[1..] {
            first.same_device("cat", t)?;
            if t.dtype() != first.dtype() {
                return Err(Error::DTypeMismatch {
                    op: "cat",
                    expected: first.dtype().to_string(),
                    got: t.dtype(),
                });
            }
            let ok = t.rank() == first.rank()
                && t.shape()
                    .iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(i, (a, b))| i == d || a == b);
            if !ok {
                return Err(Error::ShapeMismatch {
                    op: "cat",
                    lhs: first.shape().to_vec(),
                    rhs: t.shape().to_vec(),
                    why: format!("must agree on every dim except {d}"),
                });
            }
        }
        let parts: Vec<Tensor> = tensors
            .iter()
            .map(|t| t.contiguous())
            .collect::<Result<_>>()?;
        let (outer, _, inner) = cpu::index::split_at_dim(first.shape(), d);
        let guards: Vec<_> = parts.iter().map(|t| t.storage()).collect();
        macro_rules! go {
            ($variant:ident) => {{
                let slices: Vec<(&[_], usize)> = guards
                    .iter()
                    .zip(&parts)
                    .map(|(g, t)| match g.cpu() {
                        CpuStorage::$variant(v) => {
                            let o = t.layout().offset;
                            (&v[o..o + t.numel()], t.shape()[d])
                        }
                        _ => unreachable!(),
                    })
                    .collect();
                CpuStorage::$variant(cpu::index::cat(&slices, outer, inner))
            }};
        }
        let out = match first.dtype() {
            crate::DType::F32 => go!(F32),
            crate::DType::F64 => go!(F64),
            crate::DType::I64 => go!(I64),
            crate::DType::U8 => go!(U8),
        };
        drop(guards);
        let mut shape = first.shape().to_vec();
        shape[d] = tensors.iter().map(|t| t.shape()[d]).sum();
        let refs: Vec<&Tensor> = tensors.to_vec();
        let rec = Tensor::record(&refs, || Op::Cat {
            args: tensors.iter().map(|t| (*t).clone()).collect(),
            dim: d,
        });
        Tensor::from_storage_on(out, &shape, rec, first.device())
    }

    /// Stacks equal-shaped tensors along a new dim.
    pub fn stack(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        let first = *tensors
            .first()
            .ok_or_else(|| invalid("stack", "expected at least one tensor"))?;
        for t in tensors {
            if t.shape() != first.shape() {
                return Err(Error::ShapeMismatch {
                    op: "stack",
                    lhs: first.shape().to_vec(),
                    rhs: t.shape().to_vec(),
                    why: "must be equal".into(),
                });
            }
        }
        let d = crate::layout::resolve_dim("stack", dim, first.rank() + 1)?;
        let parts: Vec<Tensor> = tensors
            .iter()
            .map(|t| t.unsqueeze(d as isize))
            .collect::<Result<_>>()?;
        let refs: Vec<&Tensor> = parts.iter().collect();
        Tensor::cat(&refs, d as isize)
    }

    /// Constant padding with PyTorch's `F.pad` order: `(left, right)` of the last dim
    /// first, then the dim before it, and so on.
    pub fn pad(&self, pad: &[usize], value: f64) -> Result<Tensor> {
        let _prof = crate::profile::scope("pad");
        if !pad.len().is_multiple_of(2) || pad.len() / 2 > self.rank() {
            return Err(invalid(
                "pad",
                format!(
                    "expected an even number of pads covering at most {} dims, got {pad:?}",
                    self.rank()
                ),
            ));
        }
        let mut pads = vec![(0usize, 0usize); self.rank()];
        for (i, p) in pad.chunks(2).enumerate() {
            pads[self.rank() - 1 - i] = (p[0], p[1]);
        }
        self.pad_dims(&pads, value)
    }

    pub(crate) fn pad_dims(&self, pads: &[(usize, usize)], value: f64) -> Result<Tensor> {
        let x = self.contiguous()?;
        let s = x.storage();
        let o = x.layout().offset;
        let out = with_slice!(s.cpu(), v => Element::into_storage(cpu::index::pad(
            &v[o..o + x.numel()], x.shape(), pads, Element::from_f64(value)
        )));
        drop(s);
        let shape: Vec<usize> = self
            .shape()
            .iter()
            .zip(pads)
            .map(|(s, (a, b))| s + a + b)
            .collect();
        let rec = Tensor::record(&[self], || Op::Pad {
            arg: self.clone(),
            pads: pads.to_vec(),
        });
        Tensor::from_storage_on(out, &shape, rec, self.device())
    }

    /// Tiles the tensor `repeats[i]` times along each dim (PyTorch's `repeat`).
    pub fn repeat(&self, repeats: &[usize]) -> Result<Tensor> {
        if repeats.len() < self.rank() {
            return Err(invalid(
                "repeat",
                format!(
                    "expected at least {} repeat counts, got {repeats:?}",
                    self.rank()
                ),
            ));
        }
        let extra = repeats.len() - self.rank();
        let mut shape = vec![1; extra];
        shape.extend_from_slice(self.shape());
        // View as [1, s0, 1, s1, ...], broadcast to [r0, s0, r1, s1, ...], then merge pairs.
        let mut inter = Vec::new();
        let mut target = Vec::new();
        for (r, s) in repeats.iter().zip(&shape) {
            inter.extend([1, *s]);
            target.extend([*r, *s]);
        }
        let out_shape: Vec<usize> = repeats.iter().zip(&shape).map(|(r, s)| r * s).collect();
        self.reshape(inter)?
            .broadcast_to(&target)?
            .reshape(out_shape)
    }

    /// The Kronecker product of two tensors of equal rank.
    pub fn kron(&self, other: &Tensor) -> Result<Tensor> {
        if self.rank() != other.rank() {
            return Err(Error::ShapeMismatch {
                op: "kron",
                lhs: self.shape().to_vec(),
                rhs: other.shape().to_vec(),
                why: "must have the same number of dims".into(),
            });
        }
        let mut sa = Vec::new();
        let mut sb = Vec::new();
        for (a, b) in self.shape().iter().zip(other.shape()) {
            sa.extend([*a, 1]);
            sb.extend([1, *b]);
        }
        let out: Vec<usize> = self
            .shape()
            .iter()
            .zip(other.shape())
            .map(|(a, b)| a * b)
            .collect();
        self.reshape(sa)?.mul(&other.reshape(sb)?)?.reshape(out)
    }
}
