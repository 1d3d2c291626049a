//! Where a tensor's storage lives (D2L 5.6): host memory or one of the CUDA GPUs.
//!
//! A [`Device`] names a place; whether a GPU is really there is asked of the runtime
//! ([`crate::cuda::num_gpus`], [`crate::cuda::try_gpu`]). Names parse and print as
//! PyTorch writes them: `cpu`, `cuda`, `cuda:1`.

use std::fmt;
use std::str::FromStr;

/// The device that holds a tensor's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// Host memory, computed by the CPU kernels.
    #[default]
    Cpu,
    /// The CUDA GPU with this ordinal (`cuda:0` is the first).
    Cuda(usize),
}

impl Device {
    /// Whether this is a CUDA device.
    pub fn is_cuda(&self) -> bool {
        matches!(self, Device::Cuda(_))
    }

    /// Whether this is the host.
    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu)
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// A device as a user asks for it (`--device`): a fixed one, or `auto` (the first usable
/// GPU, else the CPU). Resolve it with [`crate::cuda::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeviceRequest {
    /// Exactly this device (an error later if it is a GPU that is not there).
    Fixed(Device),
    /// The first GPU when one is usable, else the CPU.
    #[default]
    Auto,
}

/// Why a device name did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDeviceError(pub String);

impl fmt::Display for ParseDeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown device {:?}: expected cpu, cuda, cuda:N (N = 0, 1, ...) or auto",
            self.0
        )
    }
}

impl std::error::Error for ParseDeviceError {}

impl FromStr for Device {
    type Err = ParseDeviceError;

    /// `cpu`, `cuda` (= `cuda:0`), `cuda:N`; `gpu` and `gpu:N` are accepted as aliases.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let err = || ParseDeviceError(s.to_string());
        match t.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            _ => {
                let rest = t
                    .strip_prefix("cuda:")
                    .or_else(|| t.strip_prefix("gpu:"))
                    .ok_or_else(err)?;
                if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err());
                }
                rest.parse().map(Device::Cuda).map_err(|_| err())
            }
        }
    }
}

impl FromStr for DeviceRequest {
    type Err = ParseDeviceError;

    /// `auto`, or any name [`Device`] parses.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(DeviceRequest::Auto);
        }
        s.parse().map(DeviceRequest::Fixed)
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceRequest::Fixed(d) => d.fmt(f),
            DeviceRequest::Auto => write!(f, "auto"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_as_pytorch_writes_them() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("CUDA:3".parse::<Device>().unwrap(), Device::Cuda(3));
        assert_eq!("gpu:1".parse::<Device>().unwrap(), Device::Cuda(1));
        assert_eq!(Device::Cuda(2).to_string(), "cuda:2");
        assert_eq!(Device::Cpu.to_string(), "cpu");
        for bad in [
            "", "cuda:", "cuda:-1", "cuda:x", "tpu", "cuda:1:2", "cuda 1",
        ] {
            let e = bad.parse::<Device>().unwrap_err();
            assert!(e.to_string().contains("expected cpu, cuda, cuda:N"), "{e}");
        }
        assert_eq!(
            "auto".parse::<DeviceRequest>().unwrap(),
            DeviceRequest::Auto
        );
        assert_eq!(
            "cuda:1".parse::<DeviceRequest>().unwrap(),
            DeviceRequest::Fixed(Device::Cuda(1))
        );
    }
}
