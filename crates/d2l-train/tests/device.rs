//! The training loops on a device: the Trainer and the benchmarks on a *simulated* CUDA
//! device (`D2L_SIMULATE_CUDA`, the CPU kernels behind every device rule) give the same
//! numbers as on the CPU, record the device, and leave the model on it.

use d2l_nn::layers::{Flatten, Linear, ReLU};
use d2l_nn::optim::Sgd;
use d2l_nn::{Module, Sequential};
use d2l_tensor::{cuda, Device};
use d2l_train::bench::{BenchConfig, Protocol};
use d2l_train::metrics::evaluate_accuracy;
use d2l_train::trainer::{cross_entropy_loss, TrainConfig, TrainSummary, Trainer};

mod common;
use common::{fit_error, shapes};

/// The tests draw from the global generator (`manual_seed`, initialisation): one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds [`SERIAL`] and turns on one simulated GPU for this test process (set before any
/// device query; every test of this file sets the same value, so the order does not
/// matter).
fn serial_on_simulated_gpu() -> std::sync::MutexGuard<'static, ()> {
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var(cuda::SIMULATE_ENV, "1");
    assert!(cuda::is_simulated() && cuda::num_gpus() == 1);
    serial
}

fn mlp() -> Sequential {
    Sequential::new()
        .add(Flatten::new())
        .add(Linear::new(784, 32).unwrap())
        .add(ReLU)
        .add(Linear::new(32, 10).unwrap())
}

/// A quiet training of `epochs` epochs on `device`.
fn quiet_on(device: Device, epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        quiet: true,
        device,
        ..Default::default()
    }
}

fn fit_with(device: Device, momentum: f64) -> (TrainSummary, Sequential) {
    d2l_tensor::manual_seed(3);
    let (train, test) = shapes(512, 128, 64, 3);
    let net = mlp();
    let mut opt = Sgd::new(net.parameters(), 0.1).unwrap().momentum(momentum);
    let config = quiet_on(device, 2);
    let s = Trainer::new(&net, cross_entropy_loss(), &mut opt, config)
        .fit(&train, Some(&test))
        .unwrap();
    (s, net)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * a.abs().max(b.abs()).max(1e-12)
}

#[test]
fn trainer_on_the_simulated_gpu_matches_the_cpu() {
    let _serial = serial_on_simulated_gpu();
    let (cpu, _) = fit_with(Device::Cpu, 0.0);
    let (gpu, net) = fit_with(Device::Cuda(0), 0.0);
    assert_eq!(cpu.device, "cpu");
    assert_eq!(gpu.device, "cuda:0");
    assert_eq!(cpu.epochs.len(), gpu.epochs.len());
    for (c, g) in cpu.epochs.iter().zip(&gpu.epochs) {
        assert!(close(c.train_loss, g.train_loss), "{c:?} vs {g:?}");
        assert_eq!(c.train_acc, g.train_acc, "{c:?} vs {g:?}");
        assert_eq!(c.test_acc, g.test_acc, "{c:?} vs {g:?}");
    }
    // The model stays on the device, and evaluation follows it there.
    for p in net.parameters() {
        assert_eq!(p.device(), Device::Cuda(0));
    }
    let (_, test) = shapes(512, 128, 64, 3);
    assert_eq!(
        evaluate_accuracy(&net, &test).unwrap(),
        gpu.test_acc.unwrap()
    );
}

/// The same comparison with SGD momentum 0.9 (the optimiser state lives on the device).
#[test]
fn trainer_with_momentum_on_the_simulated_gpu_matches_the_cpu() {
    let _serial = serial_on_simulated_gpu();
    let (cpu, _) = fit_with(Device::Cpu, 0.9);
    let (gpu, _) = fit_with(Device::Cuda(0), 0.9);
    for (c, g) in cpu.epochs.iter().zip(&gpu.epochs) {
        assert!(close(c.train_loss, g.train_loss), "{c:?} vs {g:?}");
    }
}

#[test]
fn a_non_finite_loss_on_the_gpu_is_caught_by_the_device_side_check() {
    let _serial = serial_on_simulated_gpu();
    d2l_tensor::manual_seed(3);
    let (train, _) = shapes(512, 16, 64, 3);
    let net = mlp();
    // A learning rate that overflows the logits within a few steps.
    let mut opt = Sgd::new(net.parameters(), 1e30).unwrap();
    let config = quiet_on(Device::Cuda(0), 2);
    let e = fit_error(&net, cross_entropy_loss(), &mut opt, config, &train);
    // Read at the end of the epoch (no per-step sync): the error names the unchecked steps.
    assert!(e.contains("the loss became non-finite"), "{e}");
    assert!(e.contains("of the global steps "), "{e}");
    assert!(e.contains("checked on cuda:0"), "{e}");
}

#[test]
fn a_gpu_that_is_not_there_is_an_error_not_a_cpu_run() {
    let _serial = serial_on_simulated_gpu();
    let net = mlp();
    let (train, _) = shapes(64, 16, 32, 0);
    let mut opt = Sgd::new(net.parameters(), 0.1).unwrap();
    let config = quiet_on(Device::Cuda(3), 1);
    let e = fit_error(&net, cross_entropy_loss(), &mut opt, config, &train);
    assert!(e.contains("cuda:3 is not available"), "{e}");
    assert!(net.parameters().iter().all(|p| p.device() == Device::Cpu));
}

#[test]
fn bench_records_the_device_and_its_peak_memory() {
    let _serial = serial_on_simulated_gpu();
    let cfg = BenchConfig {
        protocol: Protocol {
            reps: 1,
            target_rep_s: 0.01,
            warmup_s: 0.0,
            warmup_min: 1,
        },
        threads: 1,
        profile: false,
        device: Device::Cuda(0),
    };
    let out = d2l_train::bench::run("W1", &cfg).unwrap();
    let j = out.records[0].to_json();
    assert_eq!(j["device"], "cuda:0");
    assert!(j["peak_device_bytes"].as_u64().unwrap() > 0, "{j}");
    let cpu = BenchConfig {
        device: Device::Cpu,
        ..cfg
    };
    let j = d2l_train::bench::run("W1", &cpu).unwrap().records[0].to_json();
    assert_eq!(j["device"], "cpu");
    assert!(j.get("peak_device_bytes").is_none(), "{j}");
}
