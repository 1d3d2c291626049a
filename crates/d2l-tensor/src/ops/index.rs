//! Indexing ops (D2L 2.1.4, 4.1 cross-entropy picking, 2.6 sampling): index_select,
//! gather, scatter_add, where and masked_fill.

use crate::backprop::Op;
use crate::cpu;
use crate::error::{Error, Result};
use crate::storage::{with_slice, CpuStorage};
use crate::{DType, Element, Tensor};

impl Tensor {
    /// Reads an `i64` index tensor as offsets, checking each against `size`.
    pub(crate) fn indices(&self, op: &'static str, size: usize) -> Result<Vec<usize>> {
        if self.dtype() != DType::I64 {
            return Err(Error::DTypeMismatch {
                op,
                expected: "an i64 index tensor".into(),
                got: self.dtype(),
            });
        }
        self.to_vec::<i64>()
            .into_iter()
            .map(|i| {
                if i < 0 || i as usize >= size {
                    Err(Error::IndexOutOfRange { op, index: i, size })
                } else {
                    Ok(i as usize)
                }
            })
            .collect()
    }

    /// Entries `index[j]` along `dim` (a copy), `index` a 1-D `i64` tensor.
    pub fn index_select(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        let _prof = crate::profile::scope("index_select");
        self.same_device("index_select", index)?;
        let d = self.resolve_dim("index_select", dim)?;
        if index.rank() > 1 {
            return Err(crate::error::bad_shape(
                "index_select",
                format!("expected a 1-D index, got shape {:?}", index.shape()),
            ));
        }
        let idx = index.indices("index_select", self.shape()[d])?;
        let x = self.contiguous()?;
        let s = x.storage();
        let o = x.layout().offset;
        let out = with_slice!(s.cpu(), v => Element::into_storage(
            cpu::index::index_select(&v[o..o + x.numel()], x.shape(), d, &idx)
        ));
        drop(s);
        let mut shape = self.shape().to_vec();
        shape[d] = idx.len();
        let rec = Tensor::record(&[self], || Op::IndexSelect {
            arg: self.clone(),
            dim: d,
            index: index.clone(),
        });
        Tensor::from_storage_on(out, &shape, rec, self.device())
    }

    fn check_index_shape(&self, op: &'static str, d: usize, index: &Tensor) -> Result<()> {
        let ok = index.rank() == self.rank()
            && index
                .shape()
                .iter()
                .zip(self.shape())
                .enumerate()
                .all(|(i, (a, b))| i == d || a <= b);
        if !ok {
            return Err(Error::ShapeMismatch {
                op,
                lhs: self.shape().to_vec(),
                rhs: index.shape().to_vec(),
                why: format!("do not agree: the index needs the same rank and no larger size outside dim {d}"),
            });
        }
        Ok(())
    }

    /// `out[p] = self[p with dim := index[p]]` (PyTorch's `gather`).
    pub fn gather(&self, dim: isize, index: &Tensor) -> Result<Tensor> {
        let _prof = crate::profile::scope("gather");
        self.same_device("gather", index)?;
        let d = self.resolve_dim("gather", dim)?;
        self.check_index_shape("gather", d, index)?;
        let idx = index.indices("gather", self.shape()[d])?;
        let x = self.contiguous()?;
        let s = x.storage();
        let o = x.layout().offset;
        let out = with_slice!(s.cpu(), v => Element::into_storage(
            cpu::index::gather(&v[o..o + x.numel()], x.shape(), d, &idx, index.shape())
        ));
        drop(s);
        let rec = Tensor::record(&[self], || Op::Gather {
            arg: self.clone(),
            dim: d,
            index: index.clone(),
        });
        Tensor::from_storage_on(out, index.shape(), rec, self.device())
    }

    /// A copy of `self` with `src[p]` added at `p with dim := index[p]` (PyTorch's `scatter_add`).
    pub fn scatter_add(&self, dim: isize, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        self.same_device("scatter_add", index)?;
        self.same_device("scatter_add", src)?;
        let d = self.resolve_dim("scatter_add", dim)?;
        self.check_index_shape("scatter_add", d, index)?;
        src.check_index_shape("scatter_add", d, index)?;
        if src.dtype() != self.dtype() {
            return Err(Error::DTypeMismatch {
                op: "scatter_add",
                expected: self.dtype().to_string(),
                got: src.dtype(),
            });
        }
        let idx = index.indices("scatter_add", self.shape()[d])?;
        // `src` may be larger than the index: only its index-shaped corner is used.
        let mut src_part = src.clone();
        for (i, &n) in index.shape().iter().enumerate() {
            src_part = src_part.narrow(i as isize, 0, n)?;
        }
        let src_vals = src_part.contiguous()?;
        let base = crate::no_grad(|| self.copy())?;
        {
            let ss = src_vals.storage();
            let so = src_vals.layout().offset;
            macro_rules! go {
                ($variant:ident, $bs:ident) => {{
                    let (CpuStorage::$variant(out), CpuStorage::$variant(sv)) = ($bs, ss.cpu())
                    else {
                        unreachable!()
                    };
                    cpu::index::scatter_add(
                        out,
                        self.shape(),
                        d,
                        &idx,
                        index.shape(),
                        &sv[so..so + src_vals.numel()],
                    );
                }};
            }
            base.update_host(|bs| match self.dtype() {
                DType::F32 => go!(F32, bs),
                DType::F64 => go!(F64, bs),
                DType::I64 => go!(I64, bs),
                DType::U8 => go!(U8, bs),
            })?;
        }
        let rec = Tensor::record(&[self, src], || Op::ScatterAdd {
            arg: self.clone(),
            dim: d,
            index: index.clone(),
            src: src.clone(),
        });
        Ok(base.view_with(base.layout().clone(), rec))
    }

    /// A fresh row-major copy that shares nothing with `self`.
    pub fn copy(&self) -> Result<Tensor> {
        self.row_major_copy("copy")
    }

    /// `a` where `cond` is non-zero, else `b`, all three broadcast together (`torch.where`).
    pub fn where_cond(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let _prof = crate::profile::scope("where");
        cond.same_device("where", a)?;
        a.same_device("where", b)?;
        if cond.dtype() != DType::U8 {
            return Err(Error::DTypeMismatch {
                op: "where",
                expected: "a u8 mask".into(),
                got: cond.dtype(),
            });
        }
        if a.dtype() != b.dtype() {
            return Err(Error::DTypeMismatch {
                op: "where",
                expected: a.dtype().to_string(),
                got: b.dtype(),
            });
        }
        let shape = crate::layout::broadcast_shapes("where", cond.shape(), a.shape())?;
        let shape = crate::layout::broadcast_shapes("where", &shape, b.shape())?;
        let lc = cond.layout().broadcast_to("where", &shape)?;
        let la = a.layout().broadcast_to("where", &shape)?;
        let lb = b.layout().broadcast_to("where", &shape)?;
        if let Some(out) = crate::cuda::native::where_cond(cond, &lc, a, &la, b, &lb, &shape)? {
            let rec = Tensor::record(&[a, b], || Op::Where {
                cond: cond.clone(),
                a: a.clone(),
                b: b.clone(),
            });
            return Ok(Tensor::from_parts(out, &shape, rec));
        }
        let mask: Vec<u8> = {
            let s = cond.storage();
            let CpuStorage::U8(c) = s.cpu() else {
                unreachable!()
            };
            cpu::copy_strided(c, &lc)
        };
        let (sa, sb) = (a.storage(), b.storage());
        macro_rules! go {
            ($variant:ident) => {{
                let (CpuStorage::$variant(x), CpuStorage::$variant(y)) = (sa.cpu(), sb.cpu())
                else {
                    unreachable!()
                };
                let (av, bv) = (cpu::copy_strided(x, &la), cpu::copy_strided(y, &lb));
                CpuStorage::$variant(
                    mask.iter()
                        .zip(av)
                        .zip(bv)
                        .map(|((m, a), b)| if *m != 0 { a } else { b })
                        .collect(),
                )
            }};
        }
        let out = match a.dtype() {
            DType::F32 => go!(F32),
            DType::F64 => go!(F64),
            DType::I64 => go!(I64),
            DType::U8 => go!(U8),
        };
        drop((sa, sb));
        let rec = Tensor::record(&[a, b], || Op::Where {
            cond: cond.clone(),
            a: a.clone(),
            b: b.clone(),
        });
        Tensor::from_storage_on(out, &shape, rec, a.device())
    }

    /// `value` where `mask` is non-zero, `self` elsewhere (`masked_fill`); the mask broadcasts.
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Result<Tensor> {
        let fill = self.scalar_like(value);
        let out = Tensor::where_cond(mask, &fill, self)?;
        if out.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op: "masked_fill",
                lhs: self.shape().to_vec(),
                rhs: mask.shape().to_vec(),
                why: "do not agree: the mask must broadcast to the tensor's shape".into(),
            });
        }
        Ok(out)
    }
}
