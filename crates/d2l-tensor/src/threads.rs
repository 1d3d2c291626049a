//! Thread control for the CPU kernels: rayon's global pool honours `RAYON_NUM_THREADS`;
//! [`set_num_threads`] swaps in a pool of a chosen size (PyTorch's `torch.set_num_threads`).

use crate::error::{invalid, Result};
use std::sync::{Arc, RwLock};

static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

/// Below this many elements a kernel runs on the calling thread: the hand-off costs more.
pub(crate) const PAR_MIN: usize = 1 << 15;

/// Sets the number of threads the kernels use.
pub fn set_num_threads(n: usize) -> Result<()> {
    if n == 0 {
        return Err(invalid(
            "set_num_threads",
            "expected at least 1 thread, got 0",
        ));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("d2l-worker-{i}"))
        .build()
        .map_err(|e| invalid("set_num_threads", e.to_string()))?;
    *POOL.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(pool));
    Ok(())
}

/// The number of threads the kernels use.
pub fn num_threads() -> usize {
    match &*POOL.read().unwrap_or_else(|e| e.into_inner()) {
        Some(p) => p.current_num_threads(),
        None => rayon::current_num_threads(),
    }
}

/// Runs parallel work in the configured pool.
pub(crate) fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let pool = POOL.read().unwrap_or_else(|e| e.into_inner()).clone();
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}
