//! Grad mode: whether ops record the graph. `no_grad` (D2L 2.5, 3.2) switches recording
//! off so evaluation and parameter updates keep no intermediates.

use std::cell::Cell;

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops on this thread currently record the autograd graph.
pub fn is_grad_enabled() -> bool {
    ENABLED.with(|e| e.get())
}

/// Runs `f` with graph recording off, like `with torch.no_grad():`.
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

/// Turns graph recording off until dropped.
#[must_use = "recording resumes as soon as the guard is dropped"]
pub struct NoGradGuard {
    prev: bool,
}

impl NoGradGuard {
    /// Switches recording off for the guard's lifetime.
    pub fn new() -> Self {
        let prev = ENABLED.with(|e| e.replace(false));
        NoGradGuard { prev }
    }
}

impl Default for NoGradGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        ENABLED.with(|e| e.set(self.prev));
    }
}
