//! CUDA GPUs as tensor devices (D2L 5.6): discovery (`num_gpus`, `try_gpu`,
//! `try_all_gpus`), resolving `--device`, device buffers and their memory statistics.
//!
//! The real backend (`real/`: device state in `mod.rs`, one file of launchers per op
//! family; behind the `cuda` cargo feature) loads the CUDA driver, NVRTC and cuBLAS at run
//! time through `cudarc`, so building needs no CUDA toolkit and a binary on a machine
//! without a GPU runs on the CPU. Without a driver, `num_gpus()` is 0
//! and asking for `cuda` is an [`Error::DeviceUnavailable`] that says why.
//!
//! For testing the device plumbing where there is no GPU (CI), setting the environment
//! variable `D2L_SIMULATE_CUDA=N` before the first device query makes `N` *simulated*
//! CUDA devices: their buffers are host memory kept apart from CPU tensors, so every rule
//! of a real device holds (ops refuse to mix devices, moves are explicit copies, outputs
//! stay on the inputs' device), but the arithmetic is the CPU kernels'. A simulated
//! device is always reported as such.

// The caching allocator is generic and tested without a GPU; only the real backend uses it.
mod alloc;
pub(crate) mod native;
pub(crate) mod native_nn;
mod op_codes;
#[cfg(feature = "cuda")]
pub(crate) mod real;

use crate::error::{Error, Result};
use crate::storage::CpuStorage;
use crate::{DType, Device, DeviceRequest};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The environment variable that turns on simulated CUDA devices (see the module docs).
pub const SIMULATE_ENV: &str = "D2L_SIMULATE_CUDA";

/// The environment variable that lets f32 matrix products use TF32 tensor cores
/// (`D2L_ALLOW_TF32=1`; off by default, as PyTorch's `allow_tf32` for matmul).
pub const ALLOW_TF32_ENV: &str = "D2L_ALLOW_TF32";

/// Which backend serves `Device::Cuda`, fixed at the first query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// No GPU: the reason is computed on demand.
    None,
    /// `n` simulated devices.
    Simulated(usize),
    /// `n` real GPUs through the driver.
    #[cfg(feature = "cuda")]
    Real(usize),
}

fn backend() -> Backend {
    static B: OnceLock<Backend> = OnceLock::new();
    *B.get_or_init(|| {
        if let Ok(v) = std::env::var(SIMULATE_ENV) {
            if let Ok(n) = v.trim().parse::<usize>() {
                if n > 0 {
                    return Backend::Simulated(n);
                }
            }
        }
        #[cfg(feature = "cuda")]
        {
            let n = real::device_count();
            if n > 0 {
                if std::env::var(ALLOW_TF32_ENV).is_ok_and(|v| v.trim() == "1") {
                    real::set_allow_tf32(true);
                }
                return Backend::Real(n);
            }
        }
        Backend::None
    })
}

/// Every kernel entry point the backend loads from `kernels.cu` (for the NVRTC check).
#[cfg(feature = "cuda")]
#[doc(hidden)]
pub fn kernel_names() -> Vec<String> {
    real::kernel_names()
}

/// The op-code header NVRTC compiles in front of `kernels.cu` (one `#define` per code of
/// `op_codes.rs`), for the host emulation of the kernels (`tests/cuda_emu.rs`), which runs
/// without the `cuda` feature.
#[doc(hidden)]
pub fn op_code_header() -> String {
    op_codes::header()
}

/// The CUDA C source exactly as NVRTC compiles it: the op-code header generated from
/// `op_codes.rs`, then `kernels.cu` (for the NVRTC check).
#[cfg(feature = "cuda")]
#[doc(hidden)]
pub fn kernel_source() -> String {
    real::kernel_source()
}

/// Number of usable CUDA GPUs (0 without a driver, without a GPU, or in a build without
/// the `cuda` feature). The book's `d2l.num_gpus()`.
pub fn num_gpus() -> usize {
    match backend() {
        Backend::None => 0,
        Backend::Simulated(n) => n,
        #[cfg(feature = "cuda")]
        Backend::Real(n) => n,
    }
}

/// Whether at least one CUDA GPU is usable.
pub fn is_available() -> bool {
    num_gpus() > 0
}

/// Whether the CUDA devices are simulated ones (`D2L_SIMULATE_CUDA`).
pub fn is_simulated() -> bool {
    matches!(backend(), Backend::Simulated(_))
}

/// `cuda:i` if that GPU exists, else the CPU (the book's `d2l.try_gpu(i)`).
pub fn try_gpu(i: usize) -> Device {
    if i < num_gpus() {
        Device::Cuda(i)
    } else {
        Device::Cpu
    }
}

/// Every GPU, or `[cpu]` when there is none (the book's `d2l.try_all_gpus()`).
pub fn try_all_gpus() -> Vec<Device> {
    match num_gpus() {
        0 => vec![Device::Cpu],
        n => (0..n).map(Device::Cuda).collect(),
    }
}

/// Why there is no GPU at all, in words a user can act on.
fn no_gpu_reason() -> String {
    #[cfg(not(feature = "cuda"))]
    {
        "this build of d2l-rs has no CUDA support (build it with the `cuda` cargo feature, \
         which the `d2l` program has by default)"
            .to_string()
    }
    #[cfg(feature = "cuda")]
    {
        real::unavailable_reason()
    }
}

/// Checks that `device` can hold tensors, with an error that says why not.
pub fn check(device: Device) -> Result<()> {
    match device {
        Device::Cpu => Ok(()),
        Device::Cuda(i) => {
            let n = num_gpus();
            if n == 0 {
                return Err(Error::DeviceUnavailable {
                    device,
                    why: no_gpu_reason(),
                });
            }
            if i >= n {
                let names: Vec<String> = (0..n).map(|j| format!("cuda:{j}")).collect();
                return Err(Error::DeviceUnavailable {
                    device,
                    why: format!(
                        "{n} CUDA device{} found ({})",
                        if n == 1 { "" } else { "s" },
                        names.join(", ")
                    ),
                });
            }
            Ok(())
        }
    }
}

/// Turns a `--device` request into a device. `auto` picks `cuda:0` when a GPU is usable
/// and the CPU otherwise; the second value is a one-line notice saying what was picked
/// (always given for `auto`), for the program to print.
pub fn resolve(request: DeviceRequest) -> Result<(Device, Option<String>)> {
    match request {
        DeviceRequest::Fixed(d) => {
            check(d)?;
            Ok((d, None))
        }
        DeviceRequest::Auto => {
            if is_available() {
                let name = device_name(0).unwrap_or_else(|_| "unknown GPU".into());
                Ok((
                    Device::Cuda(0),
                    Some(format!("device: cuda:0 ({name}), picked by --device auto")),
                ))
            } else {
                Ok((
                    Device::Cpu,
                    Some(format!(
                        "device: cpu, picked by --device auto: no usable GPU ({})",
                        no_gpu_reason()
                    )),
                ))
            }
        }
    }
}

/// The GPU's name (for a simulated device, says so).
pub fn device_name(i: usize) -> Result<String> {
    check(Device::Cuda(i))?;
    match backend() {
        Backend::Simulated(_) => Ok("simulated CUDA device: host memory, CPU kernels".into()),
        #[cfg(feature = "cuda")]
        Backend::Real(_) => real::device_name(i).map_err(|msg| Error::Backend {
            op: "device_name",
            msg,
        }),
        Backend::None => unreachable!("checked above"),
    }
}

/// Device memory in use, as `d2l bench` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryStats {
    /// Bytes held by live tensors.
    pub allocated: usize,
    /// Bytes held from the driver, live or cached for reuse.
    pub reserved: usize,
    /// The most `allocated` has been since the last [`reset_peak_memory`].
    pub peak_allocated: usize,
}

static SIM_ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static SIM_PEAK: AtomicUsize = AtomicUsize::new(0);

/// Memory statistics of a GPU (`None` for the CPU or a GPU that is not there).
pub fn memory_stats(device: Device) -> Option<MemoryStats> {
    let Device::Cuda(i) = device else { return None };
    check(device).ok()?;
    match backend() {
        Backend::Simulated(_) => {
            let a = SIM_ALLOCATED.load(Ordering::Relaxed);
            Some(MemoryStats {
                allocated: a,
                reserved: a,
                peak_allocated: SIM_PEAK.load(Ordering::Relaxed),
            })
        }
        #[cfg(feature = "cuda")]
        Backend::Real(_) => {
            let (allocated, reserved, peak_allocated) = real::memory_stats(i);
            Some(MemoryStats {
                allocated,
                reserved,
                peak_allocated,
            })
        }
        Backend::None => {
            let _ = i;
            None
        }
    }
}

/// Starts a new peak for [`MemoryStats::peak_allocated`].
pub fn reset_peak_memory(device: Device) {
    let Device::Cuda(_i) = device else { return };
    match backend() {
        Backend::Simulated(_) => {
            SIM_PEAK.store(SIM_ALLOCATED.load(Ordering::Relaxed), Ordering::Relaxed)
        }
        #[cfg(feature = "cuda")]
        Backend::Real(_) => real::reset_peak(_i),
        Backend::None => {}
    }
}

/// Lets cuBLAS use TF32 tensor cores for f32 matrix products (off by default, as
/// PyTorch's `torch.backends.cuda.matmul.allow_tf32`). A no-op without a real GPU.
pub fn set_allow_tf32(on: bool) {
    #[cfg(feature = "cuda")]
    real::set_allow_tf32(on);
    #[cfg(not(feature = "cuda"))]
    let _ = on;
}

/// Waits until every queued kernel on `device` has finished (for timing).
pub fn synchronize(device: Device) -> Result<()> {
    let Device::Cuda(_i) = device else {
        return Ok(());
    };
    check(device)?;
    #[cfg(feature = "cuda")]
    if let Backend::Real(_) = backend() {
        return real::synchronize(_i).map_err(|msg| Error::Backend {
            op: "synchronize",
            msg,
        });
    }
    Ok(())
}

/// A simulated device buffer: host memory counted in the simulated memory statistics.
#[derive(Debug)]
pub(crate) struct SimBuffer(pub(crate) CpuStorage);

impl SimBuffer {
    fn new(s: CpuStorage) -> SimBuffer {
        let bytes = s.len() * s.dtype().size_in_bytes();
        let now = SIM_ALLOCATED.fetch_add(bytes, Ordering::Relaxed) + bytes;
        SIM_PEAK.fetch_max(now, Ordering::Relaxed);
        SimBuffer(s)
    }
}

impl Drop for SimBuffer {
    fn drop(&mut self) {
        let bytes = self.0.len() * self.0.dtype().size_in_bytes();
        SIM_ALLOCATED.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Where a device buffer's bytes are.
#[derive(Debug)]
pub(crate) enum Mem {
    /// Host memory standing in for a simulated device.
    Sim(SimBuffer),
    /// A block of real device memory.
    #[cfg(feature = "cuda")]
    Real(real::Block),
}

/// A flat buffer of `len` elements of `dtype` on GPU `device`.
#[derive(Debug)]
pub struct CudaStorage {
    pub(crate) dtype: DType,
    pub(crate) len: usize,
    pub(crate) device: usize,
    pub(crate) mem: Mem,
}

#[cfg(feature = "cuda")]
fn backend_err(op: &'static str) -> impl Fn(String) -> Error {
    move |msg| Error::Backend { op, msg }
}

impl CudaStorage {
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The GPU's ordinal.
    pub fn ordinal(&self) -> usize {
        self.device
    }

    /// Copies a host buffer to GPU `device`.
    pub(crate) fn upload(s: &CpuStorage, device: usize) -> Result<CudaStorage> {
        check(Device::Cuda(device))?;
        let mem = match backend() {
            Backend::Simulated(_) => Mem::Sim(SimBuffer::new(s.clone())),
            #[cfg(feature = "cuda")]
            Backend::Real(_) => {
                Mem::Real(real::upload(device, host_bytes(s)).map_err(backend_err("to"))?)
            }
            Backend::None => unreachable!("checked above"),
        };
        Ok(CudaStorage {
            dtype: s.dtype(),
            len: s.len(),
            device,
            mem,
        })
    }

    /// Copies the whole buffer back to the host.
    pub(crate) fn download(&self) -> Result<CpuStorage> {
        match &self.mem {
            Mem::Sim(b) => Ok(b.0.clone()),
            #[cfg(feature = "cuda")]
            Mem::Real(block) => {
                let mut host = CpuStorage::zeros(self.dtype, self.len);
                real::download(block, host_bytes_mut(&mut host)).map_err(backend_err("to"))?;
                Ok(host)
            }
        }
    }

    /// Replaces the elements with a host buffer of the same dtype and length.
    pub(crate) fn overwrite(&mut self, s: &CpuStorage) -> Result<()> {
        debug_assert_eq!((s.dtype(), s.len()), (self.dtype, self.len));
        match &mut self.mem {
            Mem::Sim(b) => {
                b.0 = s.clone();
                Ok(())
            }
            #[cfg(feature = "cuda")]
            Mem::Real(block) => {
                *block = real::upload(self.device, host_bytes(s)).map_err(backend_err("copy_"))?;
                Ok(())
            }
        }
    }
}

/// The bytes of a host buffer (every dtype is plain old data).
#[cfg(feature = "cuda")]
pub(crate) fn host_bytes(s: &CpuStorage) -> &[u8] {
    fn cast<T>(v: &[T]) -> &[u8] {
        // SAFETY: f32/f64/i64/u8 have no padding and every byte pattern is readable as u8;
        // the length covers exactly the slice's memory.
        unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
    }
    match s {
        CpuStorage::F32(v) => cast(v),
        CpuStorage::F64(v) => cast(v),
        CpuStorage::I64(v) => cast(v),
        CpuStorage::U8(v) => cast(v),
    }
}

/// The bytes of a host buffer, writable (every byte pattern is a valid element).
#[cfg(feature = "cuda")]
pub(crate) fn host_bytes_mut(s: &mut CpuStorage) -> &mut [u8] {
    fn cast<T>(v: &mut [T]) -> &mut [u8] {
        // SAFETY: as in `host_bytes`; additionally every byte pattern is a valid
        // f32/f64/i64/u8, so writing arbitrary bytes keeps the elements valid.
        unsafe {
            std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v))
        }
    }
    match s {
        CpuStorage::F32(v) => cast(v),
        CpuStorage::F64(v) => cast(v),
        CpuStorage::I64(v) => cast(v),
        CpuStorage::U8(v) => cast(v),
    }
}
