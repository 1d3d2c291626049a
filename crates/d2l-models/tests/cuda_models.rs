//! The zoo on a real CUDA GPU: the checks of `device_sim.rs` on `cuda:0` with the f32
//! GPU tolerance. Without a GPU (and without `D2L_SIMULATE_CUDA`, which this file never
//! sets) each test prints one SKIP line and passes.

mod device_checks;

// Relative tolerance 1e-4 for f32 on a GPU (other kernels, other summation orders).
device_checks::tests_on!(d2l_testkit::device::gpu, 1e-4);
