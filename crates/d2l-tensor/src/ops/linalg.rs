//! Matrix products (D2L 2.3.9–2.3.10): `matmul` with PyTorch's rules for 1-D, 2-D and
//! batched, broadcast operands.

use crate::backprop::Op;
use crate::cpu::matmul::{matmul, MatView};
use crate::error::{Error, Result};
use crate::layout::broadcast_shapes;
use crate::storage::CpuStorage;
use crate::Tensor;

impl Tensor {
    /// Matrix product with `torch.matmul` semantics: vectors are promoted to matrices and
    /// the promoted dim removed afterwards; leading (batch) dims broadcast.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        let _prof = crate::profile::scope("matmul");
        self.same_device("matmul", rhs)?;
        if self.rank() == 0 || rhs.rank() == 0 {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                lhs: self.shape().to_vec(),
                rhs: rhs.shape().to_vec(),
                why:
                    "cannot be multiplied: both operands need at least 1 dim (use mul for scalars)"
                        .into(),
            });
        }
        match (self.rank(), rhs.rank()) {
            (1, 1) => self
                .unsqueeze(0)?
                .matmul_nd(&rhs.unsqueeze(1)?)?
                .reshape(Vec::<usize>::new()),
            (1, _) => self.unsqueeze(0)?.matmul_nd(rhs)?.squeeze(-2),
            (_, 1) => self.matmul_nd(&rhs.unsqueeze(1)?)?.squeeze(-1),
            _ => self.matmul_nd(rhs),
        }
    }

    /// Alias of [`Tensor::matmul`] for 2-D operands (`torch.mm`).
    pub fn mm(&self, rhs: &Tensor) -> Result<Tensor> {
        self.matmul(rhs)
    }

    /// The product of operands with at least 2 dims each.
    fn matmul_nd(&self, rhs: &Tensor) -> Result<Tensor> {
        let (ra, rb) = (self.rank(), rhs.rank());
        let (m, k) = (self.shape()[ra - 2], self.shape()[ra - 1]);
        let (k2, n) = (rhs.shape()[rb - 2], rhs.shape()[rb - 1]);
        if k != k2 {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                lhs: self.shape().to_vec(),
                rhs: rhs.shape().to_vec(),
                why: format!("do not agree on the inner dimension: {k} vs {k2}"),
            });
        }
        if self.dtype() != rhs.dtype() || !self.dtype().is_float() {
            return Err(Error::DTypeMismatch {
                op: "matmul",
                expected: format!("two float tensors of one dtype (lhs is {})", self.dtype()),
                got: rhs.dtype(),
            });
        }
        let batch = broadcast_shapes("matmul", &self.shape()[..ra - 2], &rhs.shape()[..rb - 2])?;
        let mut full_a = batch.clone();
        full_a.extend([m, k]);
        let mut full_b = batch.clone();
        full_b.extend([k, n]);
        let la = self.layout().broadcast_to("matmul", &full_a)?;
        let lb = rhs.layout().broadcast_to("matmul", &full_b)?;
        let nb = batch.len();
        if let Some(out) = crate::cuda::native::matmul(self, &la, rhs, &lb, &batch, m, k, n)? {
            let mut shape = batch;
            shape.extend([m, n]);
            let rec = Tensor::record(&[self, rhs], || Op::Matmul(self.clone(), rhs.clone()));
            return Ok(Tensor::from_parts(out, &shape, rec));
        }
        let (sa, sb) = (self.storage(), rhs.storage());
        macro_rules! go {
            ($a:expr, $b:expr) => {{
                let (va, vb) = (MatView::new($a, &la, nb), MatView::new($b, &lb, nb));
                matmul(&va, &vb, &batch, m, k, n)
            }};
        }
        let out = match (sa.cpu(), sb.cpu()) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => CpuStorage::F32(go!(a, b)),
            (CpuStorage::F64(a), CpuStorage::F64(b)) => CpuStorage::F64(go!(a, b)),
            _ => unreachable!("dtypes checked"),
        };
        drop((sa, sb));
        let mut shape = batch;
        shape.extend([m, n]);
        let rec = Tensor::record(&[self, rhs], || Op::Matmul(self.clone(), rhs.clone()));
        Tensor::from_storage_on(out, &shape, rec, self.device())
    }
}
