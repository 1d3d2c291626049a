//! The d2l-rs engine (D2L chapters 2, 3.1, 4.7, 5.6): n-dimensional tensors with NumPy
//! broadcasting and views, seeded randomness, define-by-run reverse-mode autograd with
//! `no_grad`, and multi-threaded CPU kernels (GEMM through the `gemm` crate).
//!
//! ```
//! use d2l_tensor::{Tensor, Result};
//! # fn main() -> Result<()> {
//! let x = Tensor::arange(0.0, 4.0, 1.0)?.requires_grad_(true)?;
//! let y = x.matmul(&x)?.mul_scalar(2.0)?; // y = 2 xᵀx (D2L 2.5.1)
//! y.backward()?;
//! assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![0.0, 4.0, 8.0, 12.0]);
//! # Ok(()) }
//! ```

pub mod alloc;
mod backprop;
mod cpu;
pub mod cuda;
mod device;
mod display;
pub mod distributions;
mod dtype;
mod error;
mod format;
mod grad_mode;
mod gradcheck;
mod layout;
pub mod limit;
mod ops;
pub mod profile;
pub mod random;
mod storage;
mod tensor;
mod threads;

pub use backprop::{set_grad_ready_hook, GradReadyHook};
/// The engine's fused kernels that `d2l-nn`'s layers and optimisers call: whole-sequence
/// recurrent layers (forward and backward through time, CPU) and the multi-tensor Adam
/// update (CUDA). They live with the engine because they work on its buffers and kernels;
/// user code reaches them through `d2l_nn::rnn` and `d2l_nn::optim::Adam`.
pub mod fused {
    pub use crate::cpu::rnn;
    pub use crate::cuda::native::{fused_adam_ as adam_, AdamStep, AdamTensors};
}
pub use cpu::caps::{cpu_path, detected_cpu_path, CpuPath};
pub use cpu::matmul::sgemm_name;
pub use cuda::{num_gpus, try_all_gpus, try_gpu, CudaStorage};
pub use device::{Device, DeviceRequest, ParseDeviceError};
pub use dtype::{DType, Element, Float};
pub use error::{Error, Result};
pub use grad_mode::{is_grad_enabled, no_grad, NoGradGuard};
pub use gradcheck::{gradcheck, gradcheck_with, GradcheckOptions};
pub use layout::Layout;
pub use ops::conv::*;
pub use ops::creation::manual_seed;
pub use ops::elementwise::{BinaryOp, CmpOp, UnaryOp};
pub use ops::movement::ShapeSpec;
pub use ops::norm::*;
pub use ops::pool::*;
pub use ops::BackwardFn;
pub use random::Generator;
pub use storage::{CpuStorage, Storage};
pub use tensor::{Tensor, TensorId};
pub use threads::{install, num_threads, set_num_threads};

/// The engine's version, from Cargo.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
