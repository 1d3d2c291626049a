//! Test support shared by the integration tests of the workspace's crates (a
//! dev-dependency only, never published):
//!
//! - [`device`]: the simulated CUDA device and the real GPU the device tests run on, the
//!   [`device_tests!`] macro that declares one test per device check, and the helpers
//!   the device checks share (deterministic inputs, CPU-versus-device comparison, state
//!   copies, device-mismatch errors);
//! - [`shared_data`] and [`shared_path_or_skip`]: the real data sets in `../shared/data`
//!   beside the repository, for the tests that print a skip line where it is absent;
//! - [`json`]: the tensors of the PyTorch fixtures stored as JSON;
//! - [`seeded`]: a lock around the global generator for the tests that reseed it;
//! - [`assert_identical`]: two tensors equal in dtype, shape and every value;
//! - [`t`] and [`arange`]: small f32 tensors written inline.

pub mod device;
pub mod json;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use d2l_tensor::{DType, Tensor};

#[doc(hidden)]
pub use d2l_tensor;

/// The shared data folder beside the repository (`../shared/data`) when `probe`, a path
/// inside it, exists; `None` otherwise, and the caller prints its skip line.
pub fn shared_data(probe: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    p.join(probe).exists().then_some(p)
}

/// `../shared/data/REL` when it exists; otherwise prints the skip line
/// `skipped: PATH not found` and gives `None`.
pub fn shared_path_or_skip(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        println!("skipped: {} not found", p.display());
        None
    }
}

/// Holds one process-wide lock (tests that use the global generator run one at a time)
/// and reseeds the global generator with `seed`.
pub fn seeded(seed: u64) -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    d2l_tensor::manual_seed(seed);
    g
}

/// Asserts that `got` has `want`'s dtype, shape and values, bit for bit.
pub fn assert_identical(name: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{name}: shape");
    assert_eq!(got.dtype(), want.dtype(), "{name}: dtype");
    match want.dtype() {
        DType::F32 => assert_eq!(got.to_vec::<f32>(), want.to_vec::<f32>(), "{name}"),
        DType::F64 => assert_eq!(got.to_vec::<f64>(), want.to_vec::<f64>(), "{name}"),
        DType::I64 => assert_eq!(got.to_vec::<i64>(), want.to_vec::<i64>(), "{name}"),
        DType::U8 => assert_eq!(got.to_vec::<u8>(), want.to_vec::<u8>(), "{name}"),
    }
}

/// An f32 tensor of `shape` holding `data`.
pub fn t(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(data, shape).unwrap()
}

/// `0, 1, …, n - 1` (the engine's default dtype) in `shape`.
pub fn arange(n: usize, shape: &[usize]) -> Tensor {
    Tensor::arange(0.0, n as f64, 1.0)
        .unwrap()
        .reshape(shape)
        .unwrap()
}
