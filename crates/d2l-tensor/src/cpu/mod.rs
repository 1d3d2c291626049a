//! CPU kernels. Each kernel takes plain slices plus layouts and returns a fresh buffer;
//! contiguous inputs take a fast path, strided ones loop over collapsed rows.

#[cfg(feature = "blas")]
pub(crate) mod blas;
pub mod caps;
pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod index;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod pool;
pub(crate) mod reduce;
pub mod rnn;
pub(crate) mod sgemm;
pub(crate) mod sgemm_small;
pub(crate) mod simd;
pub(crate) mod winograd;

pub(crate) use elementwise::{binary, copy_strided, map_contiguous, unary};
