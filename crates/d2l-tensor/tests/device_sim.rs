//! The device rules and the parity suite on the simulated CUDA device
//! (`D2L_SIMULATE_CUDA=2`): runs everywhere, CI included, with no GPU.

mod parity;

use d2l_tensor::cuda::{self, MemoryStats};
use d2l_tensor::{Device, DeviceRequest, Error, Tensor};

/// Turns on two simulated devices before the first device query of this process.
fn sim() -> Device {
    std::env::set_var(cuda::SIMULATE_ENV, "2");
    assert_eq!(cuda::num_gpus(), 2, "two simulated devices");
    assert!(cuda::is_simulated());
    Device::Cuda(0)
}

#[test]
fn every_op_agrees_with_the_cpu_on_the_simulated_device() {
    let dev = sim();
    // The simulated device runs the CPU kernels: results must be identical.
    parity::run_all(dev, parity::Tol { rel: 0.0, abs: 0.0 });
}

#[test]
fn discovery_follows_the_book() {
    sim();
    assert_eq!(cuda::try_gpu(0), Device::Cuda(0));
    assert_eq!(cuda::try_gpu(1), Device::Cuda(1));
    assert_eq!(cuda::try_gpu(2), Device::Cpu);
    assert_eq!(cuda::try_all_gpus(), vec![Device::Cuda(0), Device::Cuda(1)]);
    let (d, notice) = cuda::resolve(DeviceRequest::Auto).unwrap();
    assert_eq!(d, Device::Cuda(0));
    assert!(notice.unwrap().contains("simulated"));
    assert!(cuda::device_name(1).unwrap().contains("simulated"));
    let e = cuda::resolve("cuda:5".parse().unwrap()).unwrap_err();
    assert!(matches!(e, Error::DeviceUnavailable { .. }));
    assert!(
        e.to_string()
            .contains("cuda:5 is not available: 2 CUDA devices found (cuda:0, cuda:1)"),
        "{e}"
    );
}

#[test]
fn mixing_devices_is_an_error_naming_both() {
    let dev = sim();
    let a = Tensor::ones(&[2, 3]).to(dev).unwrap();
    let b = Tensor::ones(&[2, 3]);
    let c = Tensor::ones(&[2, 3]).to(Device::Cuda(1)).unwrap();
    let w = Tensor::ones(&[3, 2]);
    let checks: Vec<(&str, d2l_tensor::Result<Tensor>)> = vec![
        ("add", a.add(&b)),
        ("mul", b.mul(&a)),
        ("add", a.add(&c)),
        ("matmul", a.matmul(&w)),
        (
            "where",
            Tensor::where_cond(&a.gt_scalar(0.0).unwrap(), &a, &b),
        ),
        ("cat", Tensor::cat(&[&a, &b], 0)),
        ("compare", a.lt(&b)),
        (
            "conv2d",
            a.reshape(&[1, 1, 2, 3]).unwrap().conv2d(
                &Tensor::ones(&[1, 1, 1, 1]),
                None,
                &Default::default(),
            ),
        ),
        (
            "index_select",
            a.index_select(0, &Tensor::from_vec(vec![0i64], &[1]).unwrap()),
        ),
    ];
    for (op, r) in checks {
        let e = r.expect_err(op);
        let msg = e.to_string();
        assert!(matches!(e, Error::DeviceMismatch { .. }), "{op}: {msg}");
        assert!(msg.starts_with(op), "{op}: {msg}");
        assert!(
            msg.contains("cuda:") && (msg.contains("cpu") || msg.contains("cuda:1")),
            "{msg}"
        );
    }
}

#[test]
fn moves_are_explicit_copies_and_gradients_flow_back() {
    let dev = sim();
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    assert_eq!(x.device(), Device::Cpu);
    // A strided view moves as its elements, row-major.
    let xt = x.t().unwrap();
    let d = xt.to(dev).unwrap();
    assert_eq!(d.device(), dev);
    assert!(d.is_contiguous());
    assert_eq!(d.to_vec::<f32>(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    assert!(!d.shares_storage(&xt));
    // Already there: the same handle.
    assert_eq!(d.to(dev).unwrap().id(), d.id());
    // d(sum(3·to(x)ᵀ²))/dx = 6x, back on the CPU.
    let y = d
        .pow_scalar(2.0)
        .unwrap()
        .mul_scalar(3.0)
        .unwrap()
        .sum_all()
        .unwrap();
    assert_eq!(y.device(), dev);
    assert_eq!(y.item().unwrap(), 3.0 * 91.0);
    y.backward().unwrap();
    let g = x.grad().unwrap();
    assert_eq!(g.device(), Device::Cpu);
    assert_eq!(g.to_vec::<f32>(), vec![6.0, 12.0, 18.0, 24.0, 30.0, 36.0]);
    // Between two devices.
    let e = d.to(Device::Cuda(1)).unwrap();
    assert_eq!(e.device(), Device::Cuda(1));
    assert_eq!(e.to_vec::<f32>(), d.to_vec::<f32>());
    // Ops keep the device, creation helpers too.
    assert_eq!(d.zeros_like().device(), dev);
    assert_eq!(d.exp().unwrap().sum(&[0], false).unwrap().device(), dev);
    assert_eq!(d.argmax(1, false).unwrap().device(), dev);
}

#[test]
fn move_to_moves_every_handle_and_the_grad() {
    let dev = sim();
    let p = Tensor::ones(&[4]).requires_grad_(true).unwrap();
    let alias = p.clone();
    let view = p.narrow(0, 1, 2).unwrap();
    p.set_grad(Some(Tensor::full(&[4], 0.5)));
    p.move_to_(dev).unwrap();
    assert_eq!(p.device(), dev);
    assert_eq!(alias.device(), dev);
    assert_eq!(view.device(), dev);
    assert_eq!(view.to_vec::<f32>(), vec![1.0, 1.0]);
    assert_eq!(p.grad().unwrap().device(), dev);
    assert!(p.requires_grad());
    // An in-place SGD step on the device.
    d2l_tensor::no_grad(|| p.add_scaled_(&p.grad().unwrap(), -0.1)).unwrap();
    assert_eq!(p.device(), dev);
    assert_eq!(p.to_vec::<f32>(), vec![0.95; 4]);
    p.move_to_(Device::Cpu).unwrap();
    assert_eq!(alias.device(), Device::Cpu);
    let e = p.move_to_(Device::Cuda(9)).unwrap_err();
    assert!(e.to_string().contains("cuda:9 is not available"), "{e}");
    assert_eq!(p.device(), Device::Cpu, "nothing moved on error");
}

#[test]
fn memory_statistics_count_device_buffers() {
    let dev = sim();
    let before = cuda::memory_stats(dev).unwrap();
    let t = Tensor::zeros(&[1000]).to(dev).unwrap();
    let after = cuda::memory_stats(dev).unwrap();
    // Other tests of this process use the same simulated device at the same time, so only
    // the live 4000-byte buffer is certain (a delta from `before` can see their frees).
    assert!(after.allocated >= 4000, "{before:?} -> {after:?}");
    assert!(after.peak_allocated >= after.allocated);
    drop(t);
    assert_eq!(cuda::memory_stats(Device::Cpu), None::<MemoryStats>);
    cuda::synchronize(dev).unwrap();
}

#[test]
fn the_fused_adam_step_declines_off_a_real_gpu() {
    let dev = sim();
    let p = Tensor::ones(&[3]).to(dev).unwrap();
    let g = Tensor::ones(&[3]).to(dev).unwrap();
    let (m, v) = (p.zeros_like(), p.zeros_like());
    let step = d2l_tensor::fused::AdamStep {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: false,
        amsgrad: false,
        step: 1,
    };
    let item = d2l_tensor::fused::AdamTensors {
        param: &p,
        grad: &g,
        exp_avg: &m,
        exp_avg_sq: &v,
        max_exp_avg_sq: None,
    };
    // The simulated device has no kernels: the optimiser must take its own path.
    assert!(!d2l_tensor::fused::adam_(&[item], &step).unwrap());
    assert_eq!(p.to_vec::<f32>(), vec![1.0; 3], "nothing changed");
}

#[test]
fn a_backward_rule_that_loses_the_device_is_an_error() {
    let dev = sim();
    let x = Tensor::ones(&[3])
        .to(dev)
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    let value = x.mul_scalar(2.0).unwrap().detach();
    // A (buggy) custom op whose gradient comes back on the CPU.
    let backward: d2l_tensor::BackwardFn =
        std::sync::Arc::new(|g: &Tensor| Ok(vec![Some(g.cpu()?.mul_scalar(2.0)?)]));
    let y = Tensor::custom_op_named("bwd:twice", value, &[&x], backward);
    let e = y.sum_all().unwrap().backward().unwrap_err().to_string();
    assert!(
        e.contains("bwd:twice") && e.contains("cpu") && e.contains("cuda:0"),
        "{e}"
    );
}
