//! The zoo on a real CUDA GPU: the checks of `device_sim.rs` on `cuda:0` with the f32
//! GPU tolerance. Without a GPU (and without `D2L_SIMULATE_CUDA`, which this file never
//! sets) each test prints one SKIP line and passes.

mod device_checks;

use d2l_tensor::{Device, Result};

/// Relative tolerance for f32 on a GPU (other kernels, other summation orders).
const TOL: f64 = 1e-4;

/// `cuda:0`, or `None` after printing the skip line for `test`.
fn gpu(test: &str) -> Option<Device> {
    if d2l_tensor::cuda::num_gpus() == 0 {
        println!(
            "SKIP {test}: no CUDA GPU (set D2L_SIMULATE_CUDA=1 to run the device plumbing on the CPU)"
        );
        return None;
    }
    Some(Device::Cuda(0))
}

#[test]
fn zoo_models_on_cuda() -> Result<()> {
    match gpu("zoo_models_on_cuda") {
        Some(d) => device_checks::zoo_models_match(d, TOL),
        None => Ok(()),
    }
}

#[test]
fn char_models_on_cuda() -> Result<()> {
    match gpu("char_models_on_cuda") {
        Some(d) => device_checks::char_models_match(d, TOL),
        None => Ok(()),
    }
}

#[test]
fn tiny_ssd_on_cuda() -> Result<()> {
    match gpu("tiny_ssd_on_cuda") {
        Some(d) => device_checks::tiny_ssd_matches(d, TOL),
        None => Ok(()),
    }
}

#[test]
fn fcn_on_cuda() -> Result<()> {
    match gpu("fcn_on_cuda") {
        Some(d) => device_checks::fcn_matches(d, TOL),
        None => Ok(()),
    }
}

#[test]
fn summaries_on_cuda() -> Result<()> {
    match gpu("summaries_on_cuda") {
        Some(d) => device_checks::summary_of_a_device_model(d),
        None => Ok(()),
    }
}
