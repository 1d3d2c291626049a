//! The d2l-rs training loop (D2L 3.6's `train_ch3`, `Accumulator`, `Animator`,
//! `evaluate_accuracy`): a `Trainer` with metrics, progress bars, curve plots and run
//! directories. The book's experiments built on it live in the `d2l-book` crate.

pub mod bench;
pub mod checkpoint;
pub mod device;
pub mod dist;
pub mod metrics;
pub mod plot;
pub mod run_dir;
pub mod tasks;
pub mod trainer;
