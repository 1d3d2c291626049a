//! Tensor operations, grouped by kind; each file adds methods to [`Tensor`].

/// Runs a generic body with `$T` the float type of `$x` (f32 or f64); any other dtype
/// returns a dtype error for op `$op` from the enclosing function.
macro_rules! float_dispatch {
    ($x:expr, $op:expr, $T:ident => $body:expr) => {
        match $x.dtype() {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            other => {
                return Err($crate::error::Error::DTypeMismatch {
                    op: $op,
                    expected: "a float tensor (f32 or f64)".into(),
                    got: other,
                })
            }
        }
    };
}

pub(crate) mod conv;
pub(crate) mod creation;
pub(crate) mod elementwise;
pub(crate) mod index;
pub(crate) mod linalg;
pub(crate) mod movement;
pub(crate) mod norm;
pub(crate) mod overload;
pub(crate) mod pool;
pub(crate) mod reduce;

use crate::backprop::Op;
use crate::error::Result;
use crate::Tensor;
use std::sync::Arc;

/// The backward rule of a custom op: output gradient in, one optional gradient per input out.
pub type BackwardFn = Arc<dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync>;

impl Tensor {
    /// Attaches a hand-written gradient rule to a value computed outside the graph (a
    /// fused kernel), so that `backward` flows through it into `inputs`.
    pub fn custom_op(value: Tensor, inputs: &[&Tensor], backward: BackwardFn) -> Tensor {
        Tensor::custom_op_named("bwd:custom", value, inputs, backward)
    }

    /// [`Tensor::custom_op`] with the name its backward rule carries in the
    /// [`profile`](crate::profile) (`"bwd:conv2d"`).
    pub fn custom_op_named(
        name: &'static str,
        value: Tensor,
        inputs: &[&Tensor],
        backward: BackwardFn,
    ) -> Tensor {
        let rec = Tensor::record(inputs, || Op::Custom {
            name,
            args: inputs.iter().map(|t| (*t).clone()).collect(),
            backward,
        });
        let value = value.detach();
        match rec {
            Some(op) => value.view_with(value.layout().clone(), Some(op)),
            None => value,
        }
    }
}
