//! What the d2l-tensor benches share.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use std::time::Duration;

/// Reseeds the global generator with 0 and opens the group `name`: 10 samples,
/// `warm_up_ms` milliseconds of warm-up and 2 s of measurement.
pub fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
    warm_up_ms: u64,
) -> BenchmarkGroup<'a, WallTime> {
    d2l_tensor::manual_seed(0);
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(warm_up_ms))
        .measurement_time(Duration::from_secs(2));
    g
}
