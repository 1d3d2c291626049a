//! The zoo on a simulated CUDA device (`D2L_SIMULATE_CUDA=1`: host memory and CPU
//! kernels, every device rule enforced): each trained model's first losses on the
//! device equal the CPU's (1e-5 relative). `cuda_models.rs` runs the same checks on a
//! real GPU.

mod device_checks;

device_checks::tests_on!(d2l_testkit::device::simulated, 1e-5);
