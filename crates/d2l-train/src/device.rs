//! Running the training loops on a device (D2L 5.6): the model is moved once with
//! [`to_device`] (`Module::to`), each batch is moved after the loader gives it (the
//! loaders stay on the CPU), and metrics are read back with `item`/`to_vec`, which work
//! on any device.

use d2l_nn::Module;
use d2l_tensor::{Device, Result};

/// Moves every parameter and buffer of `net` to `device`, in place (`Module::to`,
/// PyTorch's `net.to(device)`); the optimiser's handles on the parameters move with them.
/// Asking for a GPU that is not there is an `Error::DeviceUnavailable` saying why, and
/// nothing is moved.
pub fn to_device(net: &dyn Module, device: Device) -> Result<()> {
    net.to(device)
}

/// Where `net`'s inputs must be: the device of its first parameter or buffer
/// (`Module::device`), the CPU for a model without any.
pub fn model_device(net: &dyn Module) -> Device {
    net.device().unwrap_or(Device::Cpu)
}

/// Waits for the device's queued work before a clock is read (a no-op on the CPU and on
/// simulated devices, whose kernels run synchronously).
pub fn sync(device: Device) -> Result<()> {
    d2l_tensor::cuda::synchronize(device)
}
