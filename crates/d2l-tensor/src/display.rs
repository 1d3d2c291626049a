//! `Display` like PyTorch's `print(tensor)` and a `Debug` that adds the metadata.

use crate::format::{format_tensor, ValueKind};
use crate::{DType, Tensor};
use std::fmt;

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.dtype() {
            DType::F32 | DType::F64 => ValueKind::Float,
            DType::I64 | DType::U8 => ValueKind::Int,
        };
        let mut suffix = String::new();
        if self.dtype() != DType::F32 {
            suffix.push_str(&format!("dtype={}, ", self.dtype()));
        }
        suffix.push_str(&format!("shape={:?}", self.shape()));
        if self.requires_grad() {
            suffix.push_str(if self.is_leaf() {
                ", requires_grad=true"
            } else {
                ", grad_fn"
            });
        }
        f.write_str(&format_tensor(
            self.shape(),
            &self.to_f64_vec(),
            kind,
            &suffix,
        ))
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor {{ shape: {:?}, dtype: {}, device: {}, requires_grad: {}, strides: {:?} }}",
            self.shape(),
            self.dtype(),
            self.device(),
            self.requires_grad(),
            self.stride()
        )
    }
}
