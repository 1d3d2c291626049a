//! The device checks of `device_checks` on a simulated CUDA device
//! (`D2L_SIMULATE_CUDA=1`: host memory and CPU kernels, every device rule enforced), so
//! they run everywhere; the CPU and the device agree to rounding.

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
fn layers_match_on_the_device() -> Result<()> {
    device_checks::layers_match(sim(), TOL)
}

#[test]
fn dropout_masks_are_drawn_for_the_device() -> Result<()> {
    device_checks::dropout_mask_on_device(sim())
}

#[test]
fn recurrent_states_live_on_the_device() -> Result<()> {
    device_checks::rnn_states_on_device(sim(), TOL)
}

#[test]
fn losses_match_on_the_device() -> Result<()> {
    device_checks::losses_match(sim(), TOL)
}

#[test]
fn optimizers_match_on_the_device() -> Result<()> {
    device_checks::optimizers_match(sim(), TOL)
}

#[test]
fn module_to_moves_everything() -> Result<()> {
    device_checks::module_to_moves_everything(sim())
}

#[test]
fn save_and_load_a_device_model() -> Result<()> {
    device_checks::save_load_round_trip(sim())
}

#[test]
fn optimizer_state_follows_a_moved_model() -> Result<()> {
    device_checks::optimizer_state_follows_the_model(sim(), TOL)
}
