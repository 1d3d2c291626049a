//! The zoo on a simulated CUDA device (`D2L_SIMULATE_CUDA=1`: host memory and CPU
//! kernels, every device rule enforced): each trained model's first losses on the
//! device equal the CPU's. `cuda_models.rs` runs the same checks on a real GPU.

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
fn zoo_models_give_the_same_first_losses_on_the_device() -> Result<()> {
    device_checks::zoo_models_match(sim(), TOL)
}

#[test]
fn char_models_give_the_same_first_losses_on_the_device() -> Result<()> {
    device_checks::char_models_match(sim(), TOL)
}

#[test]
fn tiny_ssd_gives_the_same_first_losses_on_the_device() -> Result<()> {
    device_checks::tiny_ssd_matches(sim(), TOL)
}

#[test]
fn fcn_gives_the_same_first_losses_on_the_device() -> Result<()> {
    device_checks::fcn_matches(sim(), TOL)
}

#[test]
fn summaries_of_device_models() -> Result<()> {
    device_checks::summary_of_a_device_model(sim())
}
