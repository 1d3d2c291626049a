//! Keeping freed memory for reuse, so that a steady training loop stops paying for page
//! faults.
//!
//! Every op allocates its output. With glibc's default settings, buffers above a
//! (dynamic) threshold come straight from `mmap` and go back to the OS when freed, so
//! each step faults in its activations' pages afresh — for memory-bound ops (batch norm,
//! elementwise ops on large maps) that costs more than the arithmetic. [`tune`] asks
//! glibc to serve buffers up to 32 MiB from its heap and never to trim the heap, so
//! after the first step every allocation reuses memory that is already mapped. The
//! price is that the process keeps its peak heap size until it exits (its peak RSS is
//! unchanged).
//!
//! `d2l` calls it at start-up and [`Trainer`](../../d2l_train/trainer/struct.Trainer.html)
//! calls it before training; programs with their own loop may call it once. It is a
//! no-op on platforms other than Linux with glibc.

use std::sync::Once;

static TUNED: Once = Once::new();

#[cfg(all(target_os = "linux", target_env = "gnu"))]
use libc as glibc;

/// Tunes the C allocator for tensor workloads (see the module docs). Idempotent; returns
/// whether the settings were applied (false on other platforms).
pub fn tune() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut ok = true;
        TUNED.call_once(|| {
            // SAFETY: mallopt only changes allocator parameters; the values are in range
            // (32 MiB is glibc's largest mmap threshold on 64-bit targets).
            unsafe {
                ok &= glibc::mallopt(glibc::M_MMAP_THRESHOLD, 32 << 20) == 1;
                ok &= glibc::mallopt(glibc::M_TRIM_THRESHOLD, i32::MAX) == 1;
                ok &= glibc::mallopt(glibc::M_TOP_PAD, 64 << 20) == 1;
            }
        });
        ok
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        TUNED.call_once(|| {});
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tune_is_idempotent() {
        let first = super::tune();
        assert_eq!(super::tune(), first);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(first, "mallopt accepted the settings");
    }
}
