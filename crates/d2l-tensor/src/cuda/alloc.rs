//! A generic caching allocator in the spirit of PyTorch's CUDA caching allocator.
//!
//! Device allocations (`cuMemAlloc`/`cuMemFree`) are slow and synchronising, so
//! freed blocks are kept in per-size free lists and handed out again to later
//! requests of a similar size.  The allocator is generic over the raw allocator
//! ([`RawAlloc`]) so that its bookkeeping can be unit-tested on the CPU with a
//! mock; the CUDA backend plugs `cuMemAlloc`/`cuMemFree` in.
//!
//! Rules:
//! * requests are rounded up with [`round_size`]: to a multiple of 512 bytes
//!   below 1 MiB, to a multiple of 2 MiB from 1 MiB on (a zero-byte request
//!   takes one 512-byte block so that every block has a valid address);
//! * a request is served from the smallest cached block whose size is at least
//!   the rounded request and at most twice it (best fit, bounded waste);
//! * if the raw allocator fails, every cached block is released (after
//!   [`RawAlloc::synchronize`]) and the raw allocation is retried once;
//! * `allocated` counts the sizes of the blocks handed out and not yet
//!   returned, `reserved` the sizes of all blocks obtained from the raw
//!   allocator and not yet released, `peak` the maximum of `allocated` since
//!   creation or the last [`Caching::reset_peak`].

// Without the `cuda` feature only the unit tests use this module.
#![cfg_attr(not(feature = "cuda"), allow(dead_code))]

use std::collections::BTreeMap;

/// Granularity of small requests (below [`LARGE_THRESHOLD`]).
pub(crate) const SMALL_ROUND: usize = 512;
/// Requests of at least this many bytes are rounded to [`LARGE_ROUND`].
pub(crate) const LARGE_THRESHOLD: usize = 1 << 20;
/// Granularity of large requests.
pub(crate) const LARGE_ROUND: usize = 2 << 20;

/// The raw (uncached) allocator underneath [`Caching`].
pub(crate) trait RawAlloc {
    /// The handle of one raw allocation (a device pointer for CUDA).
    type Ptr: Copy;
    /// Allocates `bytes` bytes; the error is a complete, human-readable message.
    fn alloc(&mut self, bytes: usize) -> Result<Self::Ptr, String>;
    /// Releases an allocation obtained from [`RawAlloc::alloc`].
    fn free(&mut self, p: Self::Ptr);
    /// Waits until no queued work can still touch cached blocks; called before
    /// cached blocks are released back to the raw allocator.  Default: no-op.
    fn synchronize(&mut self) {}
}

/// Rounds a request up to the size of the block that will serve it.
pub(crate) fn round_size(bytes: usize) -> usize {
    if bytes == 0 {
        SMALL_ROUND
    } else if bytes < LARGE_THRESHOLD {
        bytes.div_ceil(SMALL_ROUND) * SMALL_ROUND
    } else {
        bytes.div_ceil(LARGE_ROUND).saturating_mul(LARGE_ROUND)
    }
}

/// Allocator statistics, all in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Bytes in blocks currently handed out.
    pub(crate) allocated: usize,
    /// Bytes currently held from the raw allocator (handed out + cached).
    pub(crate) reserved: usize,
    /// Maximum of `allocated` since creation or the last reset.
    pub(crate) peak: usize,
    /// Number of calls to the raw allocator that succeeded.
    pub(crate) raw_allocs: usize,
    /// Number of blocks released back to the raw allocator.
    pub(crate) raw_frees: usize,
}

/// A caching allocator over a raw allocator `R`.
pub(crate) struct Caching<R: RawAlloc> {
    raw: R,
    /// Cached (free) blocks keyed by their size.
    free: BTreeMap<usize, Vec<R::Ptr>>,
    stats: Stats,
}

impl<R: RawAlloc> Caching<R> {
    /// Creates an empty allocator over `raw`.
    pub(crate) fn new(raw: R) -> Self {
        Caching {
            raw,
            free: BTreeMap::new(),
            stats: Stats::default(),
        }
    }

    /// Hands out a block of at least `bytes` bytes. Returns the block's handle
    /// and its actual size, which must be passed back to [`Caching::free`].
    pub(crate) fn alloc(&mut self, bytes: usize) -> Result<(R::Ptr, usize), String> {
        let want = round_size(bytes);
        let limit = want.saturating_mul(2);
        let hit = self.free.range(want..=limit).next().map(|(&size, _)| size);
        if let Some(size) = hit {
            if let Some(list) = self.free.get_mut(&size) {
                if let Some(p) = list.pop() {
                    if list.is_empty() {
                        self.free.remove(&size);
                    }
                    self.note_alloc(size);
                    return Ok((p, size));
                }
            }
        }
        let p = match self.raw.alloc(want) {
            Ok(p) => p,
            Err(first) => {
                if self.free.is_empty() {
                    return Err(self.oom_message(first, false));
                }
                self.release_cached();
                match self.raw.alloc(want) {
                    Ok(p) => p,
                    Err(second) => return Err(self.oom_message(second, true)),
                }
            }
        };
        self.stats.raw_allocs += 1;
        self.stats.reserved += want;
        self.note_alloc(want);
        Ok((p, want))
    }

    /// Returns a block (handle and size as given by [`Caching::alloc`]) to the cache.
    pub(crate) fn free(&mut self, p: R::Ptr, size: usize) {
        self.stats.allocated = self.stats.allocated.saturating_sub(size);
        self.free.entry(size).or_default().push(p);
    }

    /// Releases every cached block back to the raw allocator.
    pub(crate) fn release_cached(&mut self) {
        if self.free.is_empty() {
            return;
        }
        self.raw.synchronize();
        let free = std::mem::take(&mut self.free);
        for (size, list) in free {
            for p in list {
                self.raw.free(p);
                self.stats.reserved = self.stats.reserved.saturating_sub(size);
                self.stats.raw_frees += 1;
            }
        }
    }

    /// Current statistics.
    pub(crate) fn stats(&self) -> Stats {
        self.stats
    }

    /// Sets the peak to the currently allocated byte count.
    pub(crate) fn reset_peak(&mut self) {
        self.stats.peak = self.stats.allocated;
    }

    /// Bytes held in the cache (reserved but not handed out).
    #[cfg(test)]
    pub(crate) fn cached_bytes(&self) -> usize {
        self.free.iter().map(|(size, list)| size * list.len()).sum()
    }

    /// The raw allocator (for inspection in tests).
    #[cfg(test)]
    pub(crate) fn raw(&self) -> &R {
        &self.raw
    }

    fn note_alloc(&mut self, size: usize) {
        self.stats.allocated += size;
        if self.stats.allocated > self.stats.peak {
            self.stats.peak = self.stats.allocated;
        }
    }

    fn oom_message(&self, raw: String, emptied: bool) -> String {
        format!(
            "{raw} ({} bytes allocated, {} bytes reserved{})",
            self.stats.allocated,
            self.stats.reserved,
            if emptied {
                " after releasing all cached blocks"
            } else {
                ""
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A mock raw allocator with a capacity limit.
    struct Mock {
        capacity: usize,
        used: usize,
        next: usize,
        live: HashMap<usize, usize>,
        allocs: usize,
        frees: usize,
        syncs: usize,
    }

    impl Mock {
        fn new(capacity: usize) -> Self {
            Mock {
                capacity,
                used: 0,
                next: 1,
                live: HashMap::new(),
                allocs: 0,
                frees: 0,
                syncs: 0,
            }
        }
    }

    impl RawAlloc for Mock {
        type Ptr = usize;
        fn alloc(&mut self, bytes: usize) -> Result<usize, String> {
            if self.used + bytes > self.capacity {
                return Err(format!(
                    "mock: alloc of {bytes} bytes failed: out of memory"
                ));
            }
            self.used += bytes;
            let p = self.next;
            self.next += 1;
            self.live.insert(p, bytes);
            self.allocs += 1;
            Ok(p)
        }
        fn free(&mut self, p: usize) {
            let bytes = self
                .live
                .remove(&p)
                .expect("double free or foreign pointer");
            self.used -= bytes;
            self.frees += 1;
        }
        fn synchronize(&mut self) {
            self.syncs += 1;
        }
    }

    #[test]
    fn rounding() {
        assert_eq!(round_size(0), 512);
        assert_eq!(round_size(1), 512);
        assert_eq!(round_size(512), 512);
        assert_eq!(round_size(513), 1024);
        assert_eq!(round_size((1 << 20) - 1), 1 << 20);
        assert_eq!(round_size(1 << 20), 2 << 20);
        assert_eq!(round_size((2 << 20) + 1), 4 << 20);
        assert_eq!(round_size(5 << 20), 6 << 20);
    }

    #[test]
    fn steady_loop_does_no_raw_allocs_after_first_iteration() {
        let mut c = Caching::new(Mock::new(1 << 30));
        let sizes = [4usize, 1000, 4096, 3 << 20, 123_456, 4, 64 << 20];
        for iter in 0..10 {
            let blocks: Vec<_> = sizes.iter().map(|&s| c.alloc(s).unwrap()).collect();
            for (p, size) in blocks {
                c.free(p, size);
            }
            assert_eq!(c.raw().allocs, sizes.len(), "iteration {iter}");
        }
        assert_eq!(c.raw().frees, 0);
        let st = c.stats();
        assert_eq!(st.allocated, 0);
        assert_eq!(st.raw_allocs, sizes.len());
        let expect_reserved: usize = sizes.iter().map(|&s| round_size(s)).sum();
        assert_eq!(st.reserved, expect_reserved);
        assert_eq!(st.peak, expect_reserved);
        assert_eq!(c.cached_bytes(), expect_reserved);
    }

    #[test]
    fn stats_track_allocated_reserved_and_peak() {
        let mut c = Caching::new(Mock::new(1 << 30));
        let a = c.alloc(100).unwrap();
        let b = c.alloc(3 << 20).unwrap();
        assert_eq!(a.1, 512);
        assert_eq!(b.1, 4 << 20);
        let st = c.stats();
        assert_eq!(st.allocated, 512 + (4 << 20));
        assert_eq!(st.reserved, 512 + (4 << 20));
        assert_eq!(st.peak, 512 + (4 << 20));
        c.free(b.0, b.1);
        let st = c.stats();
        assert_eq!(st.allocated, 512);
        assert_eq!(st.reserved, 512 + (4 << 20));
        assert_eq!(st.peak, 512 + (4 << 20));
        c.reset_peak();
        assert_eq!(c.stats().peak, 512);
        c.free(a.0, a.1);
        assert_eq!(c.stats().allocated, 0);
        c.release_cached();
        let st = c.stats();
        assert_eq!(st.reserved, 0);
        assert_eq!(st.raw_frees, 2);
        assert_eq!(c.raw().used, 0);
        assert_eq!(c.raw().syncs, 1);
    }

    #[test]
    fn best_fit_within_twice_the_request() {
        let mut c = Caching::new(Mock::new(1 << 30));
        let big = c.alloc(8 << 20).unwrap();
        let mid = c.alloc(4 << 20).unwrap();
        c.free(big.0, big.1);
        c.free(mid.0, mid.1);
        // 3.5 MiB rounds to 4 MiB: the 4 MiB block is the best fit.
        let x = c.alloc(3 << 20 | 1 << 19).unwrap();
        assert_eq!(x, mid);
        // 1.5 MiB rounds to 2 MiB: the 8 MiB block is more than twice that -> fresh alloc.
        let y = c.alloc(3 << 19).unwrap();
        assert_eq!(y.1, 2 << 20);
        assert_eq!(c.raw().allocs, 3);
        // 5 MiB rounds to 6 MiB: the 8 MiB block fits (<= 12 MiB).
        let z = c.alloc(5 << 20).unwrap();
        assert_eq!(z, big);
        assert_eq!(c.stats().allocated, (4 << 20) + (2 << 20) + (8 << 20));
        // Small requests do not take large blocks either.
        c.free(z.0, z.1);
        let s = c.alloc(100).unwrap();
        assert_eq!(s.1, 512);
        assert_eq!(c.raw().allocs, 4);
    }

    #[test]
    fn oom_releases_cache_and_retries_once() {
        let mut c = Caching::new(Mock::new(10 << 20));
        let a = c.alloc(4 << 20).unwrap();
        let b = c.alloc(4 << 20).unwrap();
        c.free(a.0, a.1);
        c.free(b.0, b.1);
        // 8 MiB reserved in the cache, 2 MiB left: an 8 MiB request (rounded
        // 8 MiB) cannot reuse the 4 MiB blocks and the raw alloc fails first.
        let big = c.alloc(8 << 20).unwrap();
        assert_eq!(big.1, 8 << 20);
        assert_eq!(c.raw().frees, 2);
        assert_eq!(c.raw().syncs, 1);
        let st = c.stats();
        assert_eq!(st.reserved, 8 << 20);
        assert_eq!(st.allocated, 8 << 20);
        // A request that cannot fit even after emptying the cache fails with a message.
        let err = c.alloc(4 << 20).unwrap_err();
        assert!(err.contains("out of memory"), "{err}");
        assert!(err.contains("8388608 bytes allocated"), "{err}");
        // Nothing was cached, so no release/sync happened on this failure.
        assert_eq!(c.raw().syncs, 1);
        c.free(big.0, big.1);
        let err = c.alloc(16 << 20).unwrap_err();
        assert!(err.contains("after releasing all cached blocks"), "{err}");
        assert_eq!(c.raw().syncs, 2);
        assert_eq!(c.stats().reserved, 0);
        assert_eq!(c.stats().allocated, 0);
        // The allocator still works afterwards.
        let d = c.alloc(1000).unwrap();
        c.free(d.0, d.1);
        assert_eq!(c.stats().allocated, 0);
    }
}
