//! The device parity suite on a real CUDA GPU: every op, forward and backward, on the CPU
//! and on `cuda:0` from the same inputs. Without a GPU it prints one skip line (CI has
//! none; `scripts/gpu-check.sh` runs it on the GPU machine).

mod parity;

use d2l_tensor::{cuda, Device};

#[test]
fn every_op_agrees_with_the_cpu_on_cuda() {
    if cuda::num_gpus() == 0 {
        println!(
            "SKIP every_op_agrees_with_the_cpu_on_cuda: no CUDA GPU (set D2L_SIMULATE_CUDA=1 to \
             run the device plumbing on the CPU)"
        );
        return;
    }
    println!("device: cuda:0 ({})", cuda::device_name(0).unwrap());
    // f32 on a GPU: other summation orders, fused multiply-adds, libm differences.
    parity::run_all(
        Device::Cuda(0),
        parity::Tol {
            rel: 2e-5,
            abs: 2e-6,
        },
    );
}

#[test]
fn a_missing_gpu_is_a_clear_error() {
    let n = cuda::num_gpus();
    let e = d2l_tensor::Tensor::ones(&[2])
        .to(Device::Cuda(n))
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("cuda:{n} is not available: ")),
        "{msg}"
    );
    if n == 0 {
        assert_eq!(cuda::try_gpu(0), Device::Cpu);
        assert_eq!(cuda::try_all_gpus(), vec![Device::Cpu]);
        let (d, notice) = cuda::resolve(d2l_tensor::DeviceRequest::Auto).unwrap();
        assert_eq!(d, Device::Cpu);
        let notice = notice.unwrap();
        assert!(
            notice.starts_with("device: cpu, picked by --device auto: no usable GPU ("),
            "{notice}"
        );
        println!("without a GPU: {msg}");
    }
}
