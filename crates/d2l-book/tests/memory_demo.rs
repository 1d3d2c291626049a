//! D2L 4.7: a training step needs more memory than prediction (one test in its own
//! process, since the measurement is the process's peak resident memory).

use d2l_book::memory::{run_memory, MemoryOptions};

#[test]
fn training_needs_more_memory_than_prediction() {
    if !std::path::Path::new("/proc/self/clear_refs").exists() {
        eprintln!("skipping: no /proc/self/clear_refs (not Linux)");
        return;
    }
    let r = run_memory(&MemoryOptions::default()).unwrap();
    println!("{r}");
    assert!(r.infer_mb >= 0.0, "{r}");
    // LeNet on 256 images: the graph keeps every layer's output for backward, and the
    // gradients double the parameters.
    assert!(r.train_mb > 1.5 * r.infer_mb.max(1.0), "{r}");
}
