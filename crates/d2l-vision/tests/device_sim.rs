//! The d2l-vision device checks on a simulated CUDA device (`D2L_SIMULATE_CUDA=1`).

mod device_checks;

use d2l_tensor::{Device, Result};

const TOL: f64 = 1e-5;

/// Turns on one simulated device before the first device query of this process.
fn sim() -> Device {
    std::env::set_var(d2l_tensor::cuda::SIMULATE_ENV, "1");
    assert!(d2l_tensor::cuda::is_simulated());
    Device::Cuda(0)
}

#[test]
fn roi_pool_and_align_match_on_the_device() -> Result<()> {
    device_checks::roi_ops_match(sim(), TOL)
}

#[test]
fn multibox_ops_keep_the_device() -> Result<()> {
    device_checks::multibox_ops_match(sim(), TOL)
}

#[test]
fn upsampling_and_style_transfer_on_the_device() -> Result<()> {
    device_checks::upsample_and_style_match(sim(), TOL)
}
