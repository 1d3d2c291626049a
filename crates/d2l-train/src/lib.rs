//! The d2l-rs training loop (D2L 3.6's `train_ch3`, `Accumulator`, `Animator`,
//! `evaluate_accuracy`): a `Trainer` with metrics, progress bars, curve plots and run
//! directories, and the chapter 3–4 experiments built on it.

pub mod bench;
pub mod checkpoint;
pub mod device;
pub mod dist;
pub mod draw;
pub mod experiments;
pub mod metrics;
pub mod plot;
pub mod run_dir;
pub mod style_transfer;
pub mod tasks;
pub mod trainer;
