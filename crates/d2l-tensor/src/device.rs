//! Where a tensor's storage lives. Only the CPU exists today; the enum is the single
//! place a second device kind (CUDA, D2L 5.6) plugs in.

use std::fmt;

/// The device that holds a tensor's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory, computed by the CPU kernels.
    #[default]
    Cpu,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
        }
    }
}
