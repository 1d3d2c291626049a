//! The d2l-vision device checks on a simulated CUDA device (`D2L_SIMULATE_CUDA=1`).

mod device_checks;

d2l_testkit::device_tests! { d2l_testkit::device::simulated;
    roi_pool_and_align_match_on_the_device => |d| device_checks::roi_ops_match(d, TOL),
    multibox_ops_keep_the_device => |d| device_checks::multibox_ops_match(d, TOL),
    upsampling_and_style_transfer_on_the_device => |d| {
        device_checks::upsample_and_style_match(d, TOL)
    },
}

/// Relative tolerance: the simulated device runs the CPU kernels.
const TOL: f64 = 1e-5;
