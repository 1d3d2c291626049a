//! `--device` (every command that computes) and `d2l devices` (D2L 5.6): where tensors
//! live and which GPUs this machine has.

use super::CliResult;
use clap::Args;
use d2l_tensor::{cuda, Device, DeviceRequest};

/// The `--device` flag.
#[derive(Args, Clone, Debug)]
pub struct DeviceArgs {
    /// Where to compute: cpu, cuda (= cuda:0), cuda:N, or auto (the first GPU when one is
    /// usable, else the CPU; says which on stderr). `d2l devices` lists them.
    #[arg(long, value_name = "DEVICE", default_value = "cpu", value_parser = parse_device)]
    pub device: DeviceRequest,
}

impl Default for DeviceArgs {
    /// The CPU, as without the flag.
    fn default() -> Self {
        DeviceArgs {
            device: DeviceRequest::Fixed(Device::Cpu),
        }
    }
}

/// Parses a `--device` value; the error lists the accepted forms.
fn parse_device(s: &str) -> Result<DeviceRequest, String> {
    s.parse::<DeviceRequest>().map_err(|e| e.to_string())
}

impl DeviceArgs {
    /// The device to compute on: a GPU that is not there is an error saying why
    /// (`cuda:0 is not available: ...`); `auto` prints one line on stderr saying what it
    /// picked.
    pub fn resolve(&self) -> CliResult<Device> {
        let (device, notice) = cuda::resolve(self.device)?;
        if let Some(n) = notice {
            eprintln!("{n}");
        }
        Ok(device)
    }
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Runs `d2l devices`: the CPU, then each CUDA GPU with its name and memory, or why
/// there is none.
pub fn devices() -> CliResult<()> {
    let threads = d2l_tensor::num_threads();
    println!(
        "cpu: {threads} worker thread{}",
        if threads == 1 { "" } else { "s" }
    );
    let n = cuda::num_gpus();
    if n == 0 {
        let why = match cuda::check(Device::Cuda(0)) {
            Err(d2l_tensor::Error::DeviceUnavailable { why, .. }) => why,
            Err(e) => e.to_string(),
            Ok(()) => "none found".to_string(),
        };
        println!("no CUDA GPU: {why}");
        return Ok(());
    }
    let simulated = cuda::is_simulated();
    for i in 0..n {
        let d = Device::Cuda(i);
        let name = cuda::device_name(i)?;
        let mem = cuda::memory_stats(d)
            .map(|m| {
                format!(
                    "; memory allocated {}, reserved {}, peak {}",
                    mib(m.allocated),
                    mib(m.reserved),
                    mib(m.peak_allocated)
                )
            })
            .unwrap_or_default();
        let sim = if simulated { " [simulated]" } else { "" };
        println!("{d}: {name}{sim}{mem}");
    }
    if simulated {
        println!(
            "(simulated by {}: host memory and CPU kernels, for testing; no real GPU is used)",
            cuda::SIMULATE_ENV
        );
    }
    Ok(())
}
