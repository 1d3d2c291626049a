//! A built-in op profiler: time per op kind, so the next bottleneck is visible without an
//! external profiler (`d2l bench --profile`, or `D2L_PROFILE=1`).
//!
//! Every forward kernel entry point and every backward rule opens a [`scope`] named after
//! its op (`"matmul"`, `"binary:mul"`, `"bwd:conv2d"`, …). While profiling is off a scope
//! costs one relaxed atomic load. While it is on, each scope records its **exclusive**
//! wall time (time spent in nested scopes is charged to them, not to the parent), so the
//! rows of a [`report`] add up to the time spent inside the engine.
//!
//! Scopes are tracked per thread; the engine's ops are issued from one thread (kernels
//! parallelise inside a scope), which is the thread that should call [`take`].
//!
//! ```
//! use d2l_tensor::{profile, Tensor};
//! # fn main() -> d2l_tensor::Result<()> {
//! profile::enable(true);
//! let a = Tensor::ones(&[64, 64]);
//! let _ = a.matmul(&a)?.relu()?;
//! profile::enable(false);
//! let rows = profile::take();
//! assert!(rows.iter().any(|r| r.name == "matmul" && r.calls == 1));
//! # Ok(()) }
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns profiling on or off for every thread.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether profiling is on.
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The accumulated cost of one op kind.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRow {
    /// The op kind (`"matmul"`, `"bwd:matmul"`, …).
    pub name: &'static str,
    /// How many times a scope of this kind was opened.
    pub calls: u64,
    /// Exclusive wall time: nested scopes' time is not included.
    pub total: Duration,
}

#[derive(Default)]
struct State {
    /// Open scopes: (name, start, time spent in children).
    stack: Vec<(&'static str, Instant, Duration)>,
    totals: HashMap<&'static str, (u64, Duration)>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// An open profiling scope; it records its time when dropped.
#[must_use = "a scope measures until it is dropped"]
pub struct Scope {
    _private: (),
}

/// Opens a scope named `name` when profiling is on (`None`, at no cost, otherwise).
#[inline]
pub fn scope(name: &'static str) -> Option<Scope> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    STATE.with(|s| {
        s.borrow_mut()
            .stack
            .push((name, Instant::now(), Duration::ZERO))
    });
    Some(Scope { _private: () })
}

impl Drop for Scope {
    fn drop(&mut self) {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            if let Some((name, start, children)) = s.stack.pop() {
                let elapsed = start.elapsed();
                let own = elapsed.saturating_sub(children);
                let e = s.totals.entry(name).or_insert((0, Duration::ZERO));
                e.0 += 1;
                e.1 += own;
                if let Some(parent) = s.stack.last_mut() {
                    parent.2 += elapsed;
                }
            }
        });
    }
}

/// Returns this thread's rows, most expensive first, and clears them.
pub fn take() -> Vec<ProfileRow> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let mut rows: Vec<ProfileRow> = s
            .totals
            .drain()
            .map(|(name, (calls, total))| ProfileRow { name, calls, total })
            .collect();
        rows.sort_by(|a, b| b.total.cmp(&a.total).then(a.name.cmp(b.name)));
        rows
    })
}

/// Formats rows as a table: op, calls, total ms, ms per call, share of the total.
pub fn report(rows: &[ProfileRow]) -> String {
    let sum: f64 = rows.iter().map(|r| r.total.as_secs_f64()).sum();
    let mut out = format!(
        "{:<28} {:>7} {:>10} {:>10} {:>6}\n",
        "op", "calls", "total ms", "ms/call", "%"
    );
    for r in rows {
        let t = r.total.as_secs_f64();
        out.push_str(&format!(
            "{:<28} {:>7} {:>10.3} {:>10.4} {:>5.1}%\n",
            r.name,
            r.calls,
            t * 1e3,
            t * 1e3 / r.calls.max(1) as f64,
            if sum > 0.0 { 100.0 * t / sum } else { 0.0 }
        ));
    }
    out.push_str(&format!("{:<28} {:>7} {:>10.3}\n", "total", "", sum * 1e3));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_scopes_charge_exclusive_time() {
        enable(true);
        {
            let _outer = scope("outer");
            std::thread::sleep(Duration::from_millis(5));
            {
                let _inner = scope("inner");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        enable(false);
        let rows = take();
        let get = |n: &str| rows.iter().find(|r| r.name == n).unwrap().total;
        assert!(get("inner") >= Duration::from_millis(20));
        // The outer scope's own time excludes the inner 20 ms.
        assert!(
            get("outer") < Duration::from_millis(20),
            "{:?}",
            get("outer")
        );
        assert!(take().is_empty(), "take clears the rows");
        assert!(scope("off").is_none());
    }
}
