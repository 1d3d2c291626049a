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
    let mut slot = POOL.write().unwrap_or_else(|e| e.into_inner());
    if slot.as_ref().is_some_and(|p| p.current_num_threads() == n) {
        // Already that size: keep the pool (and any loop running on it).
        return Ok(());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("d2l-worker-{i}"))
        .build()
        .map_err(|e| invalid("set_num_threads", e.to_string()))?;
    *slot = Some(Arc::new(pool));
    Ok(())
}

/// The number of threads the kernels use.
pub fn num_threads() -> usize {
    match &*POOL.read().unwrap_or_else(|e| e.into_inner()) {
        Some(p) => p.current_num_threads(),
        None => rayon::current_num_threads(),
    }
}

/// Runs `f` on a thread of the kernels' pool and returns its result.
///
/// A kernel called from outside the pool hands its work to the pool's threads and waits:
/// every parallel op of a step then costs a wake-up, and its operands and result move
/// between the cores' caches (a 256×256·256×10 product ran 3× slower that way). Called
/// around a whole training or benchmark loop, the loop itself runs on one of the pool's
/// threads, as PyTorch's main thread is its first OpenMP thread: each op starts where its
/// inputs already are, and only the other threads' shares move. Nested calls, and calls
/// from inside the pool, run `f` directly.
///
/// Code inside `f` must not wait for pool work it cannot do itself (such as a job it
/// spawned onto the pool), since it holds one of the pool's threads.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let pool = POOL.read().unwrap_or_else(|e| e.into_inner()).clone();
    match pool {
        Some(p) => p.install(f),
        None if rayon::current_thread_index().is_some() => f(),
        None => rayon::scope(|_| f()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_runs_on_a_pool_thread_and_returns_the_result() {
        let (on_pool, v) = install(|| (rayon::current_thread_index().is_some(), 41 + 1));
        assert!(on_pool, "install ran its closure outside the pool");
        assert_eq!(v, 42);
        // Nested: the inner call runs where the outer one is.
        let nested = install(|| {
            let outer = std::thread::current().id();
            install(move || std::thread::current().id() == outer)
        });
        assert!(nested, "a nested install moved to another thread");
    }
}
