//! Devices for the device tests, and the helpers the device checks of several crates
//! share. A crate's checks are written once, parameterised by a device and a tolerance;
//! `device_sim.rs` runs them on [`simulated`] and `cuda_*.rs` on [`gpu`], each declaring
//! its tests with [`device_tests!`](crate::device_tests).

use d2l_tensor::{no_grad, Device, Error, Result, Tensor};

/// Turns on one simulated CUDA device (`D2L_SIMULATE_CUDA=1`: host memory and CPU
/// kernels, every device rule enforced) before the first device query of this process;
/// always `Some(cuda:0)`. `_test` is for the same signature as [`gpu`].
pub fn simulated(_test: &str) -> Option<Device> {
    std::env::set_var(d2l_tensor::cuda::SIMULATE_ENV, "1");
    assert!(d2l_tensor::cuda::is_simulated());
    Some(Device::Cuda(0))
}

/// `cuda:0` on a real GPU, or `None` after printing the skip line for `test`. It never
/// sets `D2L_SIMULATE_CUDA`.
pub fn gpu(test: &str) -> Option<Device> {
    if d2l_tensor::cuda::num_gpus() == 0 {
        println!(
            "SKIP {test}: no CUDA GPU (set D2L_SIMULATE_CUDA=1 to run the device plumbing on the CPU)"
        );
        return None;
    }
    Some(Device::Cuda(0))
}

/// Declares one `#[test]` per device check: `device_tests!(DEVICE; name => check, …)`
/// where `DEVICE` is [`simulated`] or [`gpu`] (a `fn(&str) -> Option<Device>`) and each
/// `check` is a `FnOnce(Device) -> Result<()>`. A test whose device is absent passes
/// after the skip line.
#[macro_export]
macro_rules! device_tests {
    ($device:path; $($name:ident => $check:expr),+ $(,)?) => {
        $(
            #[test]
            fn $name() -> $crate::d2l_tensor::Result<()> {
                match $device(stringify!($name)) {
                    Some(d) => ($check)(d),
                    None => Ok(()),
                }
            }
        )+
    };
}

/// A deterministic float tensor of `shape` with values in about [-1, 1] (no global
/// generator, so parallel tests do not disturb each other).
pub fn det(shape: &[usize], salt: f64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((i as f64 * 0.7311 + salt * 1.37).sin() * 0.9) as f32)
        .collect();
    Tensor::from_vec(v, shape).unwrap()
}

/// Asserts that `a` (CPU) and `b` (any device) agree within `tol` relative; with
/// `nan_equal`, two NaNs at the same place agree.
pub fn assert_close_with(what: &str, a: &Tensor, b: &Tensor, tol: f64, nan_equal: bool) {
    assert_eq!(a.shape(), b.shape(), "{what}: shapes differ");
    for (i, (x, y)) in a.to_f64_vec().iter().zip(b.to_f64_vec()).enumerate() {
        let scale = 1.0f64.max(x.abs()).max(y.abs());
        assert!(
            (x - y).abs() <= tol * scale || (nan_equal && x.is_nan() && y.is_nan()),
            "{what}: element {i} differs: cpu {x} vs device {y} (tolerance {tol})"
        );
    }
}

/// Backpropagates the same weighted sum ([`det`] weights with `salt`) of the CPU output
/// `ya` of `xa` and of the device output `yb` of `xb`; asserts that `xb`'s gradient is on
/// `yb`'s device and agrees with `xa`'s within `tol` ([`assert_close_with`]).
pub fn assert_input_grads_agree(
    what: &str,
    [xa, ya]: [&Tensor; 2],
    [xb, yb]: [&Tensor; 2],
    salt: f64,
    tol: f64,
    nan_equal: bool,
) -> Result<()> {
    let dev = yb.device();
    let w = det(ya.shape(), salt);
    ya.mul(&w)?.sum_all()?.backward()?;
    yb.mul(&w.to(dev)?)?.sum_all()?.backward()?;
    let gb = xb.grad().unwrap();
    assert_eq!(gb.device(), dev, "{what}: grad device");
    let what = format!("{what}: grad");
    assert_close_with(&what, &xa.grad().unwrap(), &gb, tol, nan_equal);
    Ok(())
}

/// Copies every tensor of the state dict `src` into `dst` (same names, same order).
pub fn copy_tensors(src: &[(String, Tensor)], dst: &[(String, Tensor)]) -> Result<()> {
    assert_eq!(src.len(), dst.len());
    no_grad(|| {
        for ((ns, ts), (nd, td)) in src.iter().zip(dst) {
            assert_eq!(ns, nd);
            td.copy_(ts)?;
        }
        Ok(())
    })
}

/// Asserts `err` is a device mismatch whose message names the CPU and `dev`.
pub fn expect_mismatch(what: &str, err: &Error, dev: Device) {
    assert!(
        matches!(err, Error::DeviceMismatch { .. }),
        "{what}: expected a DeviceMismatch, got {err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&dev.to_string()) && msg.contains("cpu"),
        "{what}: the message should name both devices: {msg}"
    );
}
