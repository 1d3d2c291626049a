//! The device checks of `device_checks` on a simulated CUDA device
//! (`D2L_SIMULATE_CUDA=1`: host memory and CPU kernels, every device rule enforced), so
//! they run everywhere; the CPU and the device agree to rounding (1e-5 relative).

mod device_checks;

device_checks::tests_on!(d2l_testkit::device::simulated, 1e-5);
