//! The layer, loss and optimiser checks of `device_checks` on a real CUDA GPU (`cuda:0`)
//! with the f32 GPU tolerance — this is where the GPU kernels and the fused Adam update
//! are compared with the CPU. Without a GPU (and without `D2L_SIMULATE_CUDA`, which this
//! file never sets) each test prints one SKIP line and passes.

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

macro_rules! on_gpu {
    ($name:ident, $check:expr) => {
        #[test]
        fn $name() -> Result<()> {
            match gpu(stringify!($name)) {
                Some(d) => $check(d),
                None => Ok(()),
            }
        }
    };
}

on_gpu!(layers_on_cuda, |d| device_checks::layers_match(d, TOL));
on_gpu!(dropout_on_cuda, device_checks::dropout_mask_on_device);
on_gpu!(rnn_states_on_cuda, |d| device_checks::rnn_states_on_device(
    d, TOL
));
on_gpu!(losses_on_cuda, |d| device_checks::losses_match(d, TOL));
on_gpu!(optimizers_on_cuda, |d| device_checks::optimizers_match(
    d, TOL
));
on_gpu!(module_to_on_cuda, device_checks::module_to_moves_everything);
on_gpu!(save_load_on_cuda, device_checks::save_load_round_trip);
on_gpu!(optimizer_state_on_cuda, |d| {
    device_checks::optimizer_state_follows_the_model(d, TOL)
});
