//! The real CUDA backend: device discovery, per-device state (context,
//! default stream, NVRTC-compiled kernel module, lazily created cuBLAS
//! handle, caching allocator) and the kernel launchers.
//!
//! Everything goes through `cudarc` with dynamic loading.  cudarc panics when
//! a shared library or symbol is missing, so every first use is guarded with
//! `is_culib_present()` and initialisation runs under `catch_unwind`; failures
//! come back as `Err(String)` messages starting with `"CUDA: "`.
//!
//! All work of a device is queued on that device's default (legacy, null)
//! stream, so a block returned to the caching allocator may be handed out
//! again immediately: any later use is ordered after the earlier ones.
//! [`download`] synchronises.
//!
//! Op-code tables (`unary`, `unary_backward`, `binary`, `compare`,
//! `reduce_rows`) are documented on the launchers and at the top of
//! `kernels.cu`.

// This file is the backend's full launcher set; the engine wires launchers
// in as its ops gain CUDA paths, so some may be unused in a given build.
#![allow(dead_code)]

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use cudarc::cublas::{self, sys as bsys, CudaBlas};
use cudarc::driver::{
    result as dres, sys as dsys, CudaContext, CudaFunction, CudaStream, DeviceRepr, DriverError,
    LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{self, CompileOptions, Ptx};

use super::alloc::{Caching, RawAlloc};

/// The CUDA C source of all kernels (compiled at run time by NVRTC).
pub(crate) const KERNEL_SOURCE: &str = include_str!("kernels.cu");

/// Largest rank a strided operand may have after coalescing.
pub(crate) const MAX_RANK: usize = 8;

/// Threads per block of elementwise kernels.
const THREADS: u32 = 256;
/// Upper bound on the grid size of grid-stride kernels.
const MAX_BLOCKS: u64 = 65535;

// ------------------------------------------------------------------ dtypes

/// Element types the kernels support.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Dt {
    /// `f32` / `float`.
    F32,
    /// `f64` / `double`.
    F64,
    /// `i64` / `long long`.
    I64,
    /// `u8` / `unsigned char` (also the result type of comparisons).
    U8,
}

impl Dt {
    /// Size of one element in bytes.
    pub(crate) fn size(self) -> usize {
        match self {
            Dt::F32 => 4,
            Dt::F64 | Dt::I64 => 8,
            Dt::U8 => 1,
        }
    }

    /// Whether this is a floating-point type.
    pub(crate) fn is_float(self) -> bool {
        matches!(self, Dt::F32 | Dt::F64)
    }

    /// Kernel-name suffix.
    fn suffix(self) -> &'static str {
        match self {
            Dt::F32 => "f32",
            Dt::F64 => "f64",
            Dt::I64 => "i64",
            Dt::U8 => "u8",
        }
    }
}

const ALL_DT: [Dt; 4] = [Dt::F32, Dt::F64, Dt::I64, Dt::U8];

/// Names of every kernel entry point in `kernels.cu`; all are loaded when a
/// device is initialised (a mismatch is reported as an error).
pub(crate) fn kernel_names() -> Vec<String> {
    let mut names = Vec::new();
    for f in ["f32", "f64"] {
        for k in [
            "unary",
            "unary_backward",
            "axpy",
            "softmax_rows",
            "softmax_rows_backward",
            "im2col",
            "col2im",
            "adam",
            "max_pool_fwd",
            "max_pool_bwd",
            "avg_pool_fwd",
            "avg_pool_bwd",
            "norm_stats",
            "norm_apply",
            "norm_bwd_runs",
            "norm_bwd_coef",
            "norm_bwd_dx",
        ] {
            names.push(format!("d2l_{k}_{f}"));
        }
    }
    for t in ALL_DT {
        for k in ["binary", "compare", "where", "fill", "reduce_rows"] {
            names.push(format!("d2l_{k}_{}", t.suffix()));
        }
        for u in ALL_DT {
            names.push(format!("d2l_cast_{}_{}", t.suffix(), u.suffix()));
        }
    }
    names
}

// ------------------------------------------------------------------ errors

/// Formats a driver error as "description (CUDA_ERROR_NAME)".
fn drv(e: DriverError) -> String {
    let desc = e
        .error_string()
        .ok()
        .and_then(|s| s.to_str().ok().map(str::to_owned));
    let name = e
        .error_name()
        .ok()
        .and_then(|s| s.to_str().ok().map(str::to_owned));
    match (desc, name) {
        (Some(d), Some(n)) => format!("{d} ({n})"),
        (Some(d), None) => d,
        _ => format!("{:?}", e.0),
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// Runs `f`, turning a panic (cudarc's reaction to a missing library or
/// symbol) into an error message.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(format!("CUDA: {what} failed: {}", panic_text(p))),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ------------------------------------------------------------------ discovery

fn probe_count() -> Result<usize, String> {
    // SAFETY: only tries to open the shared library; no symbol is used.
    if !unsafe { dsys::is_culib_present() } {
        return Err("CUDA: the NVIDIA driver library (libcuda.so) could not be loaded: no NVIDIA driver is installed, or it is not on the library path".into());
    }
    guarded("cuInit", || {
        dres::init().map_err(|e| format!("CUDA: cuInit failed: {}", drv(e)))?;
        let n = dres::device::get_count()
            .map_err(|e| format!("CUDA: cuDeviceGetCount failed: {}", drv(e)))?;
        Ok(n.max(0) as usize)
    })
}

fn count_result() -> &'static Result<usize, String> {
    static COUNT: OnceLock<Result<usize, String>> = OnceLock::new();
    COUNT.get_or_init(probe_count)
}

/// Number of CUDA devices; 0 when libcuda cannot be loaded or `cuInit`
/// fails. Never panics; the result is computed once and cached.
pub(crate) fn device_count() -> usize {
    match count_result() {
        Ok(n) => *n,
        Err(_) => 0,
    }
}

/// Why there is no usable GPU, in words a user can act on: the loader or
/// `cuInit` error, or that the driver reports no devices.
pub(crate) fn unavailable_reason() -> String {
    match count_result() {
        Err(why) => why.clone(),
        Ok(0) => "CUDA: the NVIDIA driver loaded but reports no CUDA devices".to_owned(),
        Ok(n) => format!("CUDA: {n} CUDA device(s) found"),
    }
}

fn check_ordinal(i: usize) -> Result<(), String> {
    let n = device_count();
    if i >= n {
        return Err(if n == 0 {
            format!(
                "CUDA: device cuda:{i} is not available: {}",
                unavailable_reason()
            )
        } else {
            format!("CUDA: device cuda:{i} does not exist ({n} CUDA device(s) found)")
        });
    }
    Ok(())
}

/// The name of device `i` (e.g. "NVIDIA H100 80GB HBM3").
pub(crate) fn device_name(i: usize) -> Result<String, String> {
    check_ordinal(i)?;
    guarded("cuDeviceGetName", || {
        let dev = dres::device::get(i as i32)
            .map_err(|e| format!("CUDA: cuDeviceGet({i}) failed: {}", drv(e)))?;
        dres::device::get_name(dev)
            .map_err(|e| format!("CUDA: cuDeviceGetName on cuda:{i} failed: {}", drv(e)))
    })
}

// ------------------------------------------------------------------ NVRTC

/// Picks the newest architecture NVRTC supports that does not exceed the
/// device's compute capability `cc` (e.g. 90 for 9.0).
fn nvrtc_arch(cc: i32) -> Result<i32, String> {
    let mut n: std::ffi::c_int = 0;
    // SAFETY: `n` is a valid out-pointer for the duration of the call.
    unsafe { nvrtc::sys::nvrtcGetNumSupportedArchs(&mut n) }
        .result()
        .map_err(|e| format!("CUDA: nvrtcGetNumSupportedArchs failed: {e:?}"))?;
    if n <= 0 {
        return Err("CUDA: NVRTC reports no supported architectures".into());
    }
    let mut archs: Vec<std::ffi::c_int> = vec![0; n as usize];
    // SAFETY: `archs` has room for exactly the `n` entries NVRTC writes.
    unsafe { nvrtc::sys::nvrtcGetSupportedArchs(archs.as_mut_ptr()) }
        .result()
        .map_err(|e| format!("CUDA: nvrtcGetSupportedArchs failed: {e:?}"))?;
    archs
        .iter()
        .copied()
        .filter(|&a| a <= cc)
        .max()
        .ok_or_else(|| {
            format!(
                "CUDA: this NVRTC cannot target compute capability {}.{} (supported: {archs:?})",
                cc / 10,
                cc % 10
            )
        })
}

/// Compiles `kernels.cu` for compute capability `cc`, once per process and
/// architecture.
fn ptx_for(cc: i32) -> Result<Ptx, String> {
    static CACHE: OnceLock<Mutex<HashMap<i32, Result<Ptx, String>>>> = OnceLock::new();
    let mut cache = lock(CACHE.get_or_init(|| Mutex::new(HashMap::new())));
    if let Some(r) = cache.get(&cc) {
        return r.clone();
    }
    let r = guarded("NVRTC", || {
        // SAFETY: only tries to open the shared library.
        if !unsafe { nvrtc::sys::is_culib_present() } {
            return Err(
                "CUDA: libnvrtc could not be loaded (install the CUDA runtime compiler, \
                 e.g. the nvidia-cuda-nvrtc package, and add it to LD_LIBRARY_PATH)"
                    .to_owned(),
            );
        }
        let arch = nvrtc_arch(cc)?;
        let opts = CompileOptions {
            use_fast_math: Some(false),
            options: vec![
                "-std=c++17".to_owned(),
                format!("--gpu-architecture=compute_{arch}"),
            ],
            name: Some("d2l_kernels.cu".to_owned()),
            ..Default::default()
        };
        nvrtc::compile_ptx_with_opts(KERNEL_SOURCE, opts).map_err(|e| match e {
            nvrtc::CompileError::CompileError { nvrtc, log, .. } => format!(
                "CUDA: NVRTC failed to compile kernels.cu for compute_{arch} ({nvrtc:?}):\n{}",
                log.to_string_lossy()
            ),
            other => format!("CUDA: NVRTC failed for compute_{arch}: {other:?}"),
        })
    });
    cache.insert(cc, r.clone());
    r
}

// ------------------------------------------------------------------ device state

/// `cuMemAlloc`/`cuMemFree` on one device, for the caching allocator.
struct RawCuda {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    ordinal: usize,
}

impl RawAlloc for RawCuda {
    type Ptr = dsys::CUdeviceptr;

    fn alloc(&mut self, bytes: usize) -> Result<Self::Ptr, String> {
        let fail = |e: DriverError| {
            format!(
                "CUDA: cuMemAlloc of {bytes} bytes on cuda:{} failed: {}",
                self.ordinal,
                drv(e)
            )
        };
        self.ctx.bind_to_thread().map_err(fail)?;
        // SAFETY: the device's context is current; the pointer is owned by the allocator.
        unsafe { dres::malloc_sync(bytes) }.map_err(fail)
    }

    fn free(&mut self, p: Self::Ptr) {
        if self.ctx.bind_to_thread().is_ok() {
            // SAFETY: `p` came from `malloc_sync` on this context and is not
            // in use: the allocator synchronised the stream before releasing.
            let _ = unsafe { dres::free_sync(p) };
        }
    }

    fn synchronize(&mut self) {
        let _ = self.stream.synchronize();
    }
}

/// Everything one device needs; lives for the whole process.
struct Dev {
    ordinal: usize,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    funcs: HashMap<String, CudaFunction>,
    pool: Mutex<Caching<RawCuda>>,
    /// cuBLAS handle (created on first matmul) and whether TF32 math is set on it.
    blas: Mutex<Option<(CudaBlas, bool)>>,
}

impl Dev {
    fn func(&self, name: &str) -> Result<&CudaFunction, String> {
        self.funcs
            .get(name)
            .ok_or_else(|| format!("CUDA: kernel {name} is not loaded on cuda:{}", self.ordinal))
    }

    fn bind(&self) -> Result<(), String> {
        self.ctx.bind_to_thread().map_err(|e| {
            format!(
                "CUDA: making the context of cuda:{} current failed: {}",
                self.ordinal,
                drv(e)
            )
        })
    }
}

fn init_device(i: usize) -> Result<Dev, String> {
    let ctx = CudaContext::new(i)
        .map_err(|e| format!("CUDA: creating a context on cuda:{i} failed: {}", drv(e)))?;
    let stream = ctx.default_stream();
    let (major, minor) = ctx.compute_capability().map_err(|e| {
        format!(
            "CUDA: querying cuda:{i}'s compute capability failed: {}",
            drv(e)
        )
    })?;
    let ptx = ptx_for(major * 10 + minor)?;
    let module = ctx.load_module(ptx).map_err(|e| {
        format!(
            "CUDA: loading the kernel PTX on cuda:{i} failed: {} (a PTX-version error means the \
             driver is older than libnvrtc; use an nvrtc no newer than the driver)",
            drv(e)
        )
    })?;
    let mut funcs = HashMap::new();
    for name in kernel_names() {
        let f = module
            .load_function(&name)
            .map_err(|e| format!("CUDA: kernel {name} missing from the module: {}", drv(e)))?;
        funcs.insert(name, f);
    }
    let raw = RawCuda {
        ctx: ctx.clone(),
        stream: stream.clone(),
        ordinal: i,
    };
    Ok(Dev {
        ordinal: i,
        ctx,
        stream,
        funcs,
        pool: Mutex::new(Caching::new(raw)),
        blas: Mutex::new(None),
    })
}

type Slot = OnceLock<Result<Dev, String>>;

fn slots() -> &'static [Slot] {
    static SLOTS: OnceLock<Vec<Slot>> = OnceLock::new();
    SLOTS.get_or_init(|| (0..device_count()).map(|_| OnceLock::new()).collect())
}

/// The state of device `i`, initialising it on first use.
fn dev(i: usize) -> Result<&'static Dev, String> {
    check_ordinal(i)?;
    let slot = slots()
        .get(i)
        .ok_or_else(|| format!("CUDA: device cuda:{i} does not exist"))?;
    slot.get_or_init(|| guarded(&format!("initialising cuda:{i}"), || init_device(i)))
        .as_ref()
        .map_err(|e| e.clone())
}

/// The state of device `i` only if it was already initialised.
fn dev_if_ready(i: usize) -> Option<&'static Dev> {
    if i >= device_count() {
        return None;
    }
    slots().get(i)?.get()?.as_ref().ok()
}

/// Initialises device `i` (context, kernels, allocator) now rather than on
/// first use; returns the first error, if any.
pub(crate) fn init(i: usize) -> Result<(), String> {
    dev(i).map(|_| ())
}

/// Waits for all queued work on device `i`.
pub(crate) fn synchronize(i: usize) -> Result<(), String> {
    let d = dev(i)?;
    d.stream
        .synchronize()
        .map_err(|e| format!("CUDA: synchronising cuda:{i} failed: {}", drv(e)))
}

// ------------------------------------------------------------------ blocks

/// A device allocation of [`Block::bytes`] bytes on one device, taken from
/// that device's caching allocator; dropping it returns the memory to the
/// cache (no `cuMemFree` in steady state).
pub(crate) struct Block {
    ptr: dsys::CUdeviceptr,
    bytes: usize,
    /// Size of the underlying cached block (≥ `bytes`).
    cap: usize,
    dev: &'static Dev,
}

impl Block {
    /// Requested size in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Ordinal of the device holding the memory.
    pub(crate) fn device(&self) -> usize {
        self.dev.ordinal
    }

    /// Raw device pointer (`CUdeviceptr`), e.g. for kernel arguments.
    pub(crate) fn device_ptr(&self) -> u64 {
        self.ptr
    }

    /// Number of whole elements of type `dt` the block holds.
    pub(crate) fn len(&self, dt: Dt) -> usize {
        self.bytes / dt.size()
    }

    fn ptr_at(&self, dt: Dt, offset_elems: usize) -> u64 {
        self.ptr + (offset_elems * dt.size()) as u64
    }
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Block {{ cuda:{}, {} bytes @ {:#x} }}",
            self.dev.ordinal, self.bytes, self.ptr
        )
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        lock(&self.dev.pool).free(self.ptr, self.cap);
    }
}

fn alloc_on(d: &'static Dev, bytes: usize) -> Result<Block, String> {
    let (ptr, cap) = lock(&d.pool).alloc(bytes)?;
    Ok(Block {
        ptr,
        bytes,
        cap,
        dev: d,
    })
}

/// Allocates `bytes` uninitialised bytes on device `device`.
pub(crate) fn alloc(device: usize, bytes: usize) -> Result<Block, String> {
    alloc_on(dev(device)?, bytes)
}

/// Allocates `bytes` zeroed bytes on device `device`.
pub(crate) fn alloc_zeroed(device: usize, bytes: usize) -> Result<Block, String> {
    let d = dev(device)?;
    let b = alloc_on(d, bytes)?;
    if bytes > 0 {
        d.bind()?;
        // SAFETY: `b` owns at least `bytes` bytes; the memset is stream-ordered.
        unsafe { dres::memset_d8_async(b.ptr, 0, bytes, d.stream.cu_stream()) }.map_err(|e| {
            format!(
                "CUDA: cuMemsetD8 of {bytes} bytes on cuda:{device} failed: {}",
                drv(e)
            )
        })?;
    }
    Ok(b)
}

/// Copies host bytes into a new block on device `device`.
pub(crate) fn upload(device: usize, data: &[u8]) -> Result<Block, String> {
    let d = dev(device)?;
    let b = alloc_on(d, data.len())?;
    if !data.is_empty() {
        d.bind()?;
        // SAFETY: `b` holds `data.len()` bytes. The synchronous copy runs on
        // the legacy default stream (the one all our work uses), so it is
        // ordered after earlier work and `data` is consumed before returning.
        unsafe { dres::memcpy_htod_sync(b.ptr, data) }.map_err(|e| {
            format!(
                "CUDA: copying {} bytes to cuda:{device} failed: {}",
                data.len(),
                drv(e)
            )
        })?;
    }
    Ok(b)
}

/// Copies the first `out.len()` bytes of `src` to the host; waits for all
/// queued work that writes `src`.
pub(crate) fn download(src: &Block, out: &mut [u8]) -> Result<(), String> {
    if out.len() > src.bytes {
        return Err(format!(
            "CUDA: download of {} bytes from a {}-byte block",
            out.len(),
            src.bytes
        ));
    }
    if out.is_empty() {
        return Ok(());
    }
    let d = src.dev;
    d.bind()?;
    // SAFETY: `src` holds at least `out.len()` bytes; the synchronous copy on
    // the legacy default stream waits for earlier work and completes before
    // returning.
    unsafe { dres::memcpy_dtoh_sync(out, src.ptr) }.map_err(|e| {
        format!(
            "CUDA: copying {} bytes from cuda:{} failed: {}",
            out.len(),
            d.ordinal,
            drv(e)
        )
    })
}

/// A device-to-device copy of `src` into a new block on the same device.
pub(crate) fn copy(src: &Block) -> Result<Block, String> {
    let d = src.dev;
    let b = alloc_on(d, src.bytes)?;
    if src.bytes > 0 {
        d.bind()?;
        // SAFETY: both blocks hold `src.bytes` bytes; stream-ordered copy.
        unsafe { dres::memcpy_dtod_async(b.ptr, src.ptr, src.bytes, d.stream.cu_stream()) }
            .map_err(|e| {
                format!(
                    "CUDA: device copy of {} bytes on cuda:{} failed: {}",
                    src.bytes,
                    d.ordinal,
                    drv(e)
                )
            })?;
    }
    Ok(b)
}

/// `(allocated_bytes, reserved_bytes, peak_allocated_bytes)` of device
/// `device`'s caching allocator (zeros before the device is first used).
pub(crate) fn memory_stats(device: usize) -> (usize, usize, usize) {
    match dev_if_ready(device) {
        Some(d) => {
            let s = lock(&d.pool).stats();
            (s.allocated, s.reserved, s.peak)
        }
        None => (0, 0, 0),
    }
}

/// Resets the peak-allocated statistic of device `device` to the current
/// allocated byte count.
pub(crate) fn reset_peak(device: usize) {
    if let Some(d) = dev_if_ready(device) {
        lock(&d.pool).reset_peak();
    }
}

/// Releases all cached (unused) blocks of device `device` to the driver.
pub(crate) fn empty_cache(device: usize) {
    if let Some(d) = dev_if_ready(device) {
        lock(&d.pool).release_cached();
    }
}

// ------------------------------------------------------------------ TF32

static ALLOW_TF32: AtomicBool = AtomicBool::new(false);

/// Allows (true) or forbids (false, the default) TF32 tensor-core math in
/// f32 matmuls.
pub(crate) fn set_allow_tf32(allow: bool) {
    ALLOW_TF32.store(allow, Ordering::Relaxed);
}

/// Whether TF32 is allowed in f32 matmuls.
pub(crate) fn allow_tf32() -> bool {
    ALLOW_TF32.load(Ordering::Relaxed)
}

// ------------------------------------------------------------------ strided operands

/// A strided operand: `block` viewed as elements starting at `offset`
/// (in elements) with the given `shape` and `strides` (in elements; 0 for
/// broadcast dimensions).
#[derive(Clone, Copy, Debug)]
pub(crate) struct View<'a> {
    /// The memory.
    pub(crate) block: &'a Block,
    /// First element, in elements.
    pub(crate) offset: usize,
    /// Extent of each dimension.
    pub(crate) shape: &'a [usize],
    /// Step of each dimension, in elements.
    pub(crate) strides: &'a [usize],
}

impl<'a> View<'a> {
    /// A view of `block` as a contiguous row-major tensor of shape `shape`,
    /// with the strides supplied by the caller in `strides`.
    pub(crate) fn new(
        block: &'a Block,
        offset: usize,
        shape: &'a [usize],
        strides: &'a [usize],
    ) -> Self {
        View {
            block,
            offset,
            shape,
            strides,
        }
    }
}

/// Kernel-side description of a strided operand; mirrors `struct Strided`
/// in kernels.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Strided {
    offset: i64,
    rank: i32,
    pad: i32,
    shape: [i64; MAX_RANK],
    stride: [i64; MAX_RANK],
}

// SAFETY: plain old data with a C layout identical to `struct Strided` in
// kernels.cu (8 + 4 + 4 + 64 + 64 bytes, 8-byte aligned); passed by value.
unsafe impl DeviceRepr for Strided {}

fn numel(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= i64::MAX as usize)
        .ok_or_else(|| format!("CUDA: shape {shape:?} has too many elements"))
}

/// Aligns `v` to `out_shape` (right-aligned, size-1 dimensions broadcast
/// with stride 0) and checks that every element it reaches lies in the block.
fn aligned_strides(
    v: &View<'_>,
    dt: Dt,
    out_shape: &[usize],
    what: &str,
) -> Result<Vec<i64>, String> {
    if v.shape.len() != v.strides.len() {
        return Err(format!(
            "CUDA: {what}: shape {:?} and strides {:?} differ in rank",
            v.shape, v.strides
        ));
    }
    if v.shape.len() > out_shape.len() {
        return Err(format!(
            "CUDA: {what}: operand shape {:?} does not broadcast to {out_shape:?}",
            v.shape
        ));
    }
    let lead = out_shape.len() - v.shape.len();
    let mut st = vec![0i64; out_shape.len()];
    let mut max_off = v.offset as u128;
    for (j, (&len, &s)) in v.shape.iter().zip(v.strides).enumerate() {
        let o = out_shape[lead + j];
        if len == o {
            st[lead + j] = if len == 1 { 0 } else { s as i64 };
            if len > 0 {
                max_off += (len as u128 - 1) * s as u128;
            }
        } else if len == 1 {
            st[lead + j] = 0;
        } else {
            return Err(format!(
                "CUDA: {what}: operand shape {:?} does not broadcast to {out_shape:?}",
                v.shape
            ));
        }
    }
    if out_shape.iter().all(|&d| d > 0) && v.shape.iter().all(|&d| d > 0) {
        let len = v.block.len(dt) as u128;
        if max_off >= len {
            return Err(format!(
                "CUDA: {what}: view (offset {}, shape {:?}, strides {:?}) reaches element {max_off} \
                 of a block of {len} {dt:?} elements",
                v.offset, v.shape, v.strides
            ));
        }
    }
    if v.strides.iter().any(|&s| s > i64::MAX as usize) {
        return Err(format!("CUDA: {what}: stride too large"));
    }
    Ok(st)
}

/// Drops size-1 dimensions and merges adjacent dimensions that are
/// contiguous with respect to each other in every operand.
fn coalesce(shape: &[usize], strides: &[Vec<i64>]) -> (Vec<i64>, Vec<Vec<i64>>) {
    let mut out_shape: Vec<i64> = Vec::new();
    let mut out_st: Vec<Vec<i64>> = vec![Vec::new(); strides.len()];
    for (d, &len) in shape.iter().enumerate() {
        if len == 1 {
            continue;
        }
        let len = len as i64;
        let mergeable = match out_shape.last() {
            None => false,
            Some(_) => strides
                .iter()
                .zip(&out_st)
                .all(|(s, o)| o.last().copied() == Some(s[d].wrapping_mul(len))),
        };
        if mergeable {
            if let Some(last) = out_shape.last_mut() {
                *last *= len;
            }
            for (s, o) in strides.iter().zip(out_st.iter_mut()) {
                if let Some(last) = o.last_mut() {
                    *last = s[d];
                }
            }
        } else {
            out_shape.push(len);
            for (s, o) in strides.iter().zip(out_st.iter_mut()) {
                o.push(s[d]);
            }
        }
    }
    if out_shape.is_empty() {
        out_shape.push(1);
        for o in out_st.iter_mut() {
            o.push(0);
        }
    }
    (out_shape, out_st)
}

/// Builds the kernel descriptors of `views` (aligned to `out_shape`).
fn describe(
    views: &[(&View<'_>, Dt)],
    out_shape: &[usize],
    what: &str,
) -> Result<Vec<Strided>, String> {
    let mut all = Vec::with_capacity(views.len());
    for (v, dt) in views {
        all.push(aligned_strides(v, *dt, out_shape, what)?);
    }
    let (shape, strides) = coalesce(out_shape, &all);
    if shape.len() > MAX_RANK {
        return Err(format!(
            "CUDA: {what}: rank {} after coalescing exceeds {MAX_RANK}",
            shape.len()
        ));
    }
    Ok(views
        .iter()
        .zip(strides)
        .map(|((v, _), st)| {
            let mut s = Strided {
                offset: v.offset as i64,
                rank: shape.len() as i32,
                pad: 0,
                shape: [1; MAX_RANK],
                stride: [0; MAX_RANK],
            };
            s.shape[..shape.len()].copy_from_slice(&shape);
            s.stride[..shape.len()].copy_from_slice(&st);
            s
        })
        .collect())
}

fn same_device(blocks: &[&Block], what: &str) -> Result<&'static Dev, String> {
    let d = blocks[0].dev;
    for b in &blocks[1..] {
        if b.dev.ordinal != d.ordinal {
            return Err(format!(
                "CUDA: {what}: operands are on cuda:{} and cuda:{}",
                d.ordinal, b.dev.ordinal
            ));
        }
    }
    Ok(d)
}

fn grid_for(n: usize) -> LaunchConfig {
    let blocks = (n as u64).div_ceil(THREADS as u64).clamp(1, MAX_BLOCKS) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Launches kernel `$name` on `$d`'s stream with the given argument references.
macro_rules! launch {
    ($d:expr, $name:expr, $cfg:expr, $($arg:expr),+ $(,)?) => {{
        let d: &Dev = $d;
        let name: &str = $name;
        let f = d.func(name)?;
        let mut b = d.stream.launch_builder(f);
        $( b.arg($arg); )+
        // SAFETY: the arguments match the kernel's parameter list in
        // kernels.cu (types and order); every pointer refers to a live block
        // whose extent was checked against the elements the kernel touches.
        unsafe { b.launch($cfg) }
            .map(|_| ())
            .map_err(|e| format!("CUDA: launching {name} on cuda:{} failed: {}", d.ordinal, drv(e)))
    }};
}

fn need_float(dt: Dt, what: &str) -> Result<(), String> {
    if dt.is_float() {
        Ok(())
    } else {
        Err(format!(
            "CUDA: {what} supports f32 and f64 only, got {dt:?}"
        ))
    }
}

// ------------------------------------------------------------------ elementwise

/// Casts a strided `x` of type `from` to a new contiguous block of type `to`.
/// Float→integer conversion truncates toward zero (NaN → 0, out-of-range
/// saturates to i64 before wrapping to u8).
pub(crate) fn cast(from: Dt, to: Dt, x: View<'_>) -> Result<Block, String> {
    let d = x.block.dev;
    let n = numel(x.shape)?;
    let desc = describe(&[(&x, from)], x.shape, "cast")?;
    let out = alloc_on(d, n * to.size())?;
    if n == 0 {
        return Ok(out);
    }
    let name = format!("d2l_cast_{}_{}", from.suffix(), to.suffix());
    let (xp, op, n64) = (x.block.ptr, out.ptr, n as i64);
    launch!(d, &name, grid_for(n), &xp, &desc[0], &op, &n64)?;
    Ok(out)
}

/// Makes a strided `x` contiguous (a new block of the same type).
pub(crate) fn strided_copy(dt: Dt, x: View<'_>) -> Result<Block, String> {
    cast(dt, dt, x)
}

/// Unary op codes for [`unary`] (f32/f64; `a`, `b` are scalar parameters).
pub(crate) mod unary_op {
    /// -x
    pub(crate) const NEG: u32 = 0;
    /// |x|
    pub(crate) const ABS: u32 = 1;
    /// e^x
    pub(crate) const EXP: u32 = 2;
    /// ln x
    pub(crate) const LOG: u32 = 3;
    /// ln(1+x)
    pub(crate) const LOG1P: u32 = 4;
    /// √x
    pub(crate) const SQRT: u32 = 5;
    /// 1/√x
    pub(crate) const RSQRT: u32 = 6;
    /// sin x
    pub(crate) const SIN: u32 = 7;
    /// cos x
    pub(crate) const COS: u32 = 8;
    /// tanh x
    pub(crate) const TANH: u32 = 9;
    /// 1/(1+e^-x)
    pub(crate) const SIGMOID: u32 = 10;
    /// max(x, 0) (NaN propagates)
    pub(crate) const RELU: u32 = 11;
    /// x·Φ(x), exact erf form
    pub(crate) const GELU: u32 = 12;
    /// x if x > 20 else ln(1+e^x)
    pub(crate) const SOFTPLUS: u32 = 13;
    /// x if x > 0 else a·x
    pub(crate) const LEAKY_RELU: u32 = 14;
    /// min(max(x, a), b) (NaN propagates)
    pub(crate) const CLAMP: u32 = 15;
    /// x^a
    pub(crate) const POW_SCALAR: u32 = 16;
    /// x + a
    pub(crate) const ADD_SCALAR: u32 = 17;
    /// x·a
    pub(crate) const MUL_SCALAR: u32 = 18;
    /// x²
    pub(crate) const SQUARE: u32 = 19;
    /// 1/x
    pub(crate) const RECIPROCAL: u32 = 20;
    /// sign(x) ∈ {-1, 0, 1} (NaN propagates)
    pub(crate) const SIGN: u32 = 21;
    /// Highest forward code.
    pub(crate) const LAST: u32 = 21;
    /// Backward codes with the saved tensor being the OUTPUT y: g·y.
    pub(crate) const EXP_FROM_OUTPUT: u32 = 100;
    /// g / (2y)
    pub(crate) const SQRT_FROM_OUTPUT: u32 = 101;
    /// g·(−y³/2)
    pub(crate) const RSQRT_FROM_OUTPUT: u32 = 102;
    /// g·(1 − y²)
    pub(crate) const TANH_FROM_OUTPUT: u32 = 103;
    /// g·y·(1 − y)
    pub(crate) const SIGMOID_FROM_OUTPUT: u32 = 104;
    /// g·(y > 0)
    pub(crate) const RELU_FROM_OUTPUT: u32 = 105;
}

/// Applies unary op `op` (see [`unary_op`]) with parameters `a`, `b` to a
/// strided f32/f64 `x`; returns a contiguous block of the same shape.
pub(crate) fn unary(op: u32, a: f64, b: f64, dt: Dt, x: View<'_>) -> Result<Block, String> {
    need_float(dt, "unary")?;
    if op > unary_op::LAST {
        return Err(format!("CUDA: unknown unary op code {op}"));
    }
    let d = x.block.dev;
    let n = numel(x.shape)?;
    let desc = describe(&[(&x, dt)], x.shape, "unary")?;
    let out = alloc_on(d, n * dt.size())?;
    if n == 0 {
        return Ok(out);
    }
    let name = format!("d2l_unary_{}", dt.suffix());
    let (xp, op_, n64) = (x.block.ptr, out.ptr, n as i64);
    launch!(
        d,
        &name,
        grid_for(n),
        &op,
        &a,
        &b,
        &xp,
        &desc[0],
        &op_,
        &n64
    )?;
    Ok(out)
}

/// Backward of unary op `op`: returns `g·f'(·)` where `saved` is the input x
/// for codes 0..=21, or the output y for the `*_FROM_OUTPUT` codes
/// (100..=105). `saved` and `g` must have the same shape (own strides).
pub(crate) fn unary_backward(
    op: u32,
    a: f64,
    b: f64,
    dt: Dt,
    saved: View<'_>,
    g: View<'_>,
) -> Result<Block, String> {
    need_float(dt, "unary_backward")?;
    if op > unary_op::LAST && !(100..=105).contains(&op) {
        return Err(format!("CUDA: unknown unary backward op code {op}"));
    }
    if saved.shape != g.shape {
        return Err(format!(
            "CUDA: unary_backward: saved shape {:?} != gradient shape {:?}",
            saved.shape, g.shape
        ));
    }
    let d = same_device(&[saved.block, g.block], "unary_backward")?;
    let n = numel(saved.shape)?;
    let desc = describe(&[(&saved, dt), (&g, dt)], saved.shape, "unary_backward")?;
    let out = alloc_on(d, n * dt.size())?;
    if n == 0 {
        return Ok(out);
    }
    let name = format!("d2l_unary_backward_{}", dt.suffix());
    let (sp, gp, op_, n64) = (saved.block.ptr, g.block.ptr, out.ptr, n as i64);
    launch!(
        d,
        &name,
        grid_for(n),
        &op,
        &a,
        &b,
        &sp,
        &desc[0],
        &gp,
        &desc[1],
        &op_,
        &n64
    )?;
    Ok(out)
}

/// Binary op codes for [`binary`].
pub(crate) mod binary_op {
    /// a + b (wrapping for integers)
    pub(crate) const ADD: u32 = 0;
    /// a − b (wrapping for integers)
    pub(crate) const SUB: u32 = 1;
    /// a·b (wrapping for integers)
    pub(crate) const MUL: u32 = 2;
    /// a / b (floats only)
    pub(crate) const DIV: u32 = 3;
    /// a^b (floats only)
    pub(crate) const POW: u32 = 4;
    /// max(a, b) (NaN propagates)
    pub(crate) const MAXIMUM: u32 = 5;
    /// min(a, b) (NaN propagates)
    pub(crate) const MINIMUM: u32 = 6;
}

/// Elementwise `a op b` (see [`binary_op`]) broadcast to `out_shape`
/// (operands right-aligned; size-1 or stride-0 dimensions broadcast).
/// f32/f64 support every op; i64/u8 support add, sub, mul, maximum, minimum.
pub(crate) fn binary(
    op: u32,
    dt: Dt,
    a: View<'_>,
    b: View<'_>,
    out_shape: &[usize],
) -> Result<Block, String> {
    let ok = match dt {
        Dt::F32 | Dt::F64 => op <= 6,
        Dt::I64 | Dt::U8 => matches!(op, 0 | 1 | 2 | 5 | 6),
    };
    if !ok {
        return Err(format!(
            "CUDA: binary op code {op} is not supported for {dt:?}"
        ));
    }
    launch_pairwise("binary", op, dt, a, b, out_shape, dt.size())
}

/// The shared body of [`binary`] and [`compare`]: launches `d2l_{what}_{dt}` over
/// `out_shape` with the arguments `(op, a, a's layout, b, b's layout, out, n)` into a
/// fresh block of `out_size`-byte elements.
fn launch_pairwise(
    what: &str,
    op: u32,
    dt: Dt,
    a: View<'_>,
    b: View<'_>,
    out_shape: &[usize],
    out_size: usize,
) -> Result<Block, String> {
    let d = same_device(&[a.block, b.block], what)?;
    let n = numel(out_shape)?;
    let desc = describe(&[(&a, dt), (&b, dt)], out_shape, what)?;
    let out = alloc_on(d, n * out_size)?;
    if n == 0 {
        return Ok(out);
    }
    let name = format!("d2l_{what}_{}", dt.suffix());
    let (ap, bp, op_, n64) = (a.block.ptr, b.block.ptr, out.ptr, n as i64);
    launch!(
        d,
        &name,
        grid_for(n),
        &op,
        &ap,
        &desc[0],
        &bp,
        &desc[1],
        &op_,
        &n64
    )?;
    Ok(out)
}

/// Comparison codes for [`compare`].
pub(crate) mod cmp_op {
    /// a == b
    pub(crate) const EQ: u32 = 0;
    /// a != b
    pub(crate) const NE: u32 = 1;
    /// a < b
    pub(crate) const LT: u32 = 2;
    /// a <= b
    pub(crate) const LE: u32 = 3;
    /// a > b
    pub(crate) const GT: u32 = 4;
    /// a >= b
    pub(crate) const GE: u32 = 5;
}

/// Elementwise comparison (see [`cmp_op`]) broadcast to `out_shape`;
/// returns a u8 block of 0/1. All four dtypes.
pub(crate) fn compare(
    op: u32,
    dt: Dt,
    a: View<'_>,
    b: View<'_>,
    out_shape: &[usize],
) -> Result<Block, String> {
    if op > 5 {
        return Err(format!("CUDA: unknown comparison code {op}"));
    }
    launch_pairwise("compare", op, dt, a, b, out_shape, 1)
}

/// `cond ? a : b` elementwise, broadcast to `out_shape`; `cond` is u8
/// (nonzero = true), `a` and `b` are of type `dt`.
pub(crate) fn where_(
    cond: View<'_>,
    dt: Dt,
    a: View<'_>,
    b: View<'_>,
    out_shape: &[usize],
) -> Result<Block, String> {
    let d = same_device(&[cond.block, a.block, b.block], "where")?;
    let n = numel(out_shape)?;
    let desc = describe(&[(&cond, Dt::U8), (&a, dt), (&b, dt)], out_shape, "where")?;
    let out = alloc_on(d, n * dt.size())?;
    if n == 0 {
        return Ok(out);
    }
    let name = format!("d2l_where_{}", dt.suffix());
    let (cp, ap, bp, op_, n64) = (cond.block.ptr, a.block.ptr, b.block.ptr, out.ptr, n as i64);
    launch!(
        d,
        &name,
        grid_for(n),
        &cp,
        &desc[0],
        &ap,
        &desc[1],
        &bp,
        &desc[2],
        &op_,
        &n64
    )?;
    Ok(out)
}

/// Fills every whole element of `block` (viewed as `dt`) with `value`
/// (converted like a cast from f64). Writes device memory behind `&Block`.
pub(crate) fn fill(block: &Block, dt: Dt, value: f64) -> Result<(), String> {
    let n = block.len(dt);
    if n == 0 {
        return Ok(());
    }
    let d = block.dev;
    let name = format!("d2l_fill_{}", dt.suffix());
    let (p, n64) = (block.ptr, n as i64);
    launch!(d, &name, grid_for(n), &p, &value, &n64)
}

/// `dst[i] += alpha·src[i]` for the first `n` elements (contiguous,
/// f32/f64). Writes device memory behind `&Block`.
pub(crate) fn axpy_(dst: &Block, src: &Block, alpha: f64, n: usize, dt: Dt) -> Result<(), String> {
    need_float(dt, "axpy_")?;
    let d = same_device(&[dst, src], "axpy_")?;
    if n > dst.len(dt) || n > src.len(dt) {
        return Err(format!(
            "CUDA: axpy_ of {n} elements on blocks of {} and {} elements",
            dst.len(dt),
            src.len(dt)
        ));
    }
    if n == 0 {
        return Ok(());
    }
    let name = format!("d2l_axpy_{}", dt.suffix());
    let (dp, sp, n64) = (dst.ptr, src.ptr, n as i64);
    launch!(d, &name, grid_for(n), &dp, &sp, &alpha, &n64)
}

// ------------------------------------------------------------------ rows

/// Reduction kinds for [`reduce_rows`].
pub(crate) mod reduce_kind {
    /// Sum (f32, f64, i64 with wrapping).
    pub(crate) const SUM: u32 = 0;
    /// Maximum with argmax (first occurrence; NaN propagates, its index wins).
    pub(crate) const MAX: u32 = 1;
    /// Minimum with argmin (first occurrence; NaN propagates, its index wins).
    pub(crate) const MIN: u32 = 2;
}

fn row_config(rows: usize, cols: usize) -> LaunchConfig {
    let threads = cols.clamp(32, 256).next_power_of_two().min(256) as u32;
    let blocks = (rows as u64).clamp(1, MAX_BLOCKS) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn check_rows(
    x: &Block,
    off: usize,
    dt: Dt,
    rows: usize,
    cols: usize,
    what: &str,
) -> Result<usize, String> {
    let n = rows
        .checked_mul(cols)
        .filter(|&n| n <= i64::MAX as usize)
        .ok_or_else(|| format!("CUDA: {what}: {rows}×{cols} is too large"))?;
    if n > 0 && off.checked_add(n).is_none_or(|end| end > x.len(dt)) {
        return Err(format!(
            "CUDA: {what}: {rows}×{cols} elements at offset {off} exceed a block of {} elements",
            x.len(dt)
        ));
    }
    Ok(n)
}

/// Reduces each row of the contiguous `rows × cols` matrix at element
/// offset `off` of `x` (see [`reduce_kind`]). Returns the `rows` results and,
/// for max/min, the i64 arg indices. Sum: f32/f64/i64; max/min: all dtypes
/// (with `cols > 0`).
pub(crate) fn reduce_rows(
    kind: u32,
    dt: Dt,
    x: &Block,
    off: usize,
    rows: usize,
    cols: usize,
) -> Result<(Block, Option<Block>), String> {
    match kind {
        0 if dt == Dt::U8 => return Err("CUDA: sum of u8 is not supported (cast first)".into()),
        0 => {}
        1 | 2 if cols == 0 => {
            return Err("CUDA: max/min over an empty dimension".into());
        }
        1 | 2 => {}
        _ => return Err(format!("CUDA: unknown reduction kind {kind}")),
    }
    check_rows(x, off, dt, rows, cols, "reduce_rows")?;
    let d = x.dev;
    let out = alloc_on(d, rows * dt.size())?;
    let arg = if kind == 0 {
        None
    } else {
        Some(alloc_on(d, rows * 8)?)
    };
    if rows == 0 {
        return Ok((out, arg));
    }
    let name = format!("d2l_reduce_rows_{}", dt.suffix());
    let (xp, op, ap) = (
        x.ptr_at(dt, off),
        out.ptr,
        arg.as_ref().map_or(0u64, |a| a.ptr),
    );
    let (r64, c64) = (rows as i64, cols as i64);
    launch!(
        d,
        &name,
        row_config(rows, cols),
        &kind,
        &xp,
        &r64,
        &c64,
        &op,
        &ap
    )?;
    Ok((out, arg))
}

/// Softmax (or log-softmax when `log`) over each row of the contiguous
/// `rows × cols` f32/f64 matrix at offset `off` of `x`.
pub(crate) fn softmax_rows(
    dt: Dt,
    x: &Block,
    off: usize,
    rows: usize,
    cols: usize,
    log: bool,
) -> Result<Block, String> {
    need_float(dt, "softmax_rows")?;
    let n = check_rows(x, off, dt, rows, cols, "softmax_rows")?;
    let d = x.dev;
    let out = alloc_on(d, n * dt.size())?;
    if n == 0 {
        return Ok(out);
    }
    let name = format!("d2l_softmax_rows_{}", dt.suffix());
    let (xp, yp, r64, c64, l) = (
        x.ptr_at(dt, off),
        out.ptr,
        rows as i64,
        cols as i64,
        log as i32,
    );
    launch!(d, &name, row_config(rows, cols), &xp, &yp, &r64, &c64, &l)?;
    Ok(out)
}

/// Backward of [`softmax_rows`] from its output `y` and gradient `g` (both
/// contiguous `rows × cols`, at element offsets `y_off`, `g_off`):
/// softmax: `y·(g − Σ g·y)`; log-softmax: `g − exp(y)·Σ g`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn softmax_rows_backward(
    dt: Dt,
    y: &Block,
    y_off: usize,
    g: &Block,
    g_off: usize,
    rows: usize,
    cols: usize,
    log: bool,
) -> Result<Block, String> {
    need_float(dt, "softmax_rows_backward")?;
    let d = same_device(&[y, g], "softmax_rows_backward")?;
    let n = check_rows(y, y_off, dt, rows, cols, "softmax_rows_backward")?;
    check_rows(g, g_off, dt, rows, cols, "softmax_rows_backward")?;
    let out = alloc_on(d, n * dt.size())?;
    if n == 0 {
        return Ok(out);
    }
    let name = format!("d2l_softmax_rows_backward_{}", dt.suffix());
    let (yp, gp, op, r64, c64, l) = (
        y.ptr_at(dt, y_off),
        g.ptr_at(dt, g_off),
        out.ptr,
        rows as i64,
        cols as i64,
        log as i32,
    );
    launch!(
        d,
        &name,
        row_config(rows, cols),
        &yp,
        &gp,
        &op,
        &r64,
        &c64,
        &l
    )?;
    Ok(out)
}

// ------------------------------------------------------------------ matmul

fn blas_err(d: &Dev, what: &str, e: cublas::result::CublasError) -> String {
    format!("CUDA: {what} on cuda:{} failed: {:?}", d.ordinal, e.0)
}

/// Batched row-major matrix product `C[b] = op(A[b]) · op(B[b])` through
/// cuBLAS, returning a new contiguous `batch × m × n` block.
///
/// `A[b]` starts at element `a_off + b·a_batch_stride` and is stored
/// contiguously as `m × k` (or `k × m` when `a_trans`, i.e. the logical A is
/// its transpose); likewise `B[b]` at `b_off + b·b_batch_stride`, stored
/// `k × n` (or `n × k` when `b_trans`). A batch stride of 0 broadcasts.
/// f32 uses TF32 tensor cores only after [`set_allow_tf32`]`(true)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    dt: Dt,
    a: &Block,
    a_off: usize,
    b: &Block,
    b_off: usize,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    a_trans: bool,
    b_trans: bool,
    a_batch_stride: usize,
    b_batch_stride: usize,
) -> Result<Block, String> {
    need_float(dt, "matmul")?;
    let d = same_device(&[a, b], "matmul")?;
    let big = |v: usize| v > i32::MAX as usize;
    if big(m) || big(n) || big(k) || big(batch) {
        return Err(format!(
            "CUDA: matmul dimensions batch={batch} m={m} k={k} n={n} exceed cuBLAS's 32-bit limits"
        ));
    }
    let out_n = batch
        .checked_mul(m)
        .and_then(|v| v.checked_mul(n))
        .ok_or_else(|| "CUDA: matmul output too large".to_string())?;
    if out_n == 0 {
        return alloc_on(d, 0);
    }
    if k == 0 {
        return alloc_zeroed(d.ordinal, out_n * dt.size());
    }
    let extent = |off: usize, bs: usize, rows: usize, cols: usize| -> Option<usize> {
        (batch - 1)
            .checked_mul(bs)?
            .checked_add(rows.checked_mul(cols)?)?
            .checked_add(off)
    };
    let ea = extent(a_off, a_batch_stride, m, k);
    let eb = extent(b_off, b_batch_stride, k, n);
    if ea.is_none_or(|e| e > a.len(dt)) || eb.is_none_or(|e| e > b.len(dt)) {
        return Err(format!(
            "CUDA: matmul operands out of bounds (A needs {ea:?} of {} elements, B needs {eb:?} of {})",
            a.len(dt),
            b.len(dt)
        ));
    }
    let out = alloc_on(d, out_n * dt.size())?;

    let mut guard = lock(&d.blas);
    if guard.is_none() {
        let created = guarded("cuBLAS initialisation", || {
            // SAFETY: only tries to open the shared library.
            if !unsafe { bsys::is_culib_present() } {
                return Err("CUDA: libcublas could not be loaded (add the CUDA libraries to LD_LIBRARY_PATH)".into());
            }
            d.bind()?;
            let blas =
                CudaBlas::new(d.stream.clone()).map_err(|e| blas_err(d, "cublasCreate", e))?;
            // SAFETY: valid handle created above.
            unsafe {
                bsys::cublasSetMathMode(*blas.handle(), bsys::cublasMath_t::CUBLAS_DEFAULT_MATH)
            }
            .result()
            .map_err(|e| blas_err(d, "cublasSetMathMode", e))?;
            Ok(blas)
        })?;
        *guard = Some((created, false));
    }
    let Some((blas, tf32_on)) = guard.as_mut() else {
        return Err("CUDA: cuBLAS handle unavailable".into());
    };
    let handle = *blas.handle();
    d.bind()?;
    let want_tf32 = dt == Dt::F32 && allow_tf32();
    if dt == Dt::F32 && want_tf32 != *tf32_on {
        let mode = if want_tf32 {
            bsys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            bsys::cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        // SAFETY: valid handle, guarded by the mutex.
        unsafe { bsys::cublasSetMathMode(handle, mode) }
            .result()
            .map_err(|e| blas_err(d, "cublasSetMathMode", e))?;
        *tf32_on = want_tf32;
    }

    // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: call gemm with the
    // operands swapped. A row-major r×c buffer is a column-major c×r matrix.
    use bsys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
    let (op_b, ldb) = if b_trans {
        (CUBLAS_OP_T, k)
    } else {
        (CUBLAS_OP_N, n)
    };
    let (op_a, lda) = if a_trans {
        (CUBLAS_OP_T, m)
    } else {
        (CUBLAS_OP_N, k)
    };
    let (mi, ni, ki) = (m as i32, n as i32, k as i32);
    let (lda, ldb, ldc) = (lda as i32, ldb as i32, n as i32);
    let (sa, sb, sc) = (a_batch_stride as i64, b_batch_stride as i64, (m * n) as i64);
    let bt = batch as i32;
    let r = match dt {
        Dt::F32 => {
            let (alpha, beta) = (1.0f32, 0.0f32);
            // SAFETY: pointers are device pointers of live blocks whose
            // extents were checked above; alpha/beta are host scalars
            // (default host pointer mode); the handle is used under the mutex.
            unsafe {
                cublas::result::sgemm_strided_batched(
                    handle,
                    op_b,
                    op_a,
                    ni,
                    mi,
                    ki,
                    &alpha,
                    b.ptr_at(dt, b_off) as *const f32,
                    ldb,
                    sb,
                    a.ptr_at(dt, a_off) as *const f32,
                    lda,
                    sa,
                    &beta,
                    out.ptr as *mut f32,
                    ldc,
                    sc,
                    bt,
                )
            }
        }
        _ => {
            let (alpha, beta) = (1.0f64, 0.0f64);
            // SAFETY: as for the f32 branch.
            unsafe {
                cublas::result::dgemm_strided_batched(
                    handle,
                    op_b,
                    op_a,
                    ni,
                    mi,
                    ki,
                    &alpha,
                    b.ptr_at(dt, b_off) as *const f64,
                    ldb,
                    sb,
                    a.ptr_at(dt, a_off) as *const f64,
                    lda,
                    sa,
                    &beta,
                    out.ptr as *mut f64,
                    ldc,
                    sc,
                    bt,
                )
            }
        }
    };
    r.map_err(|e| blas_err(d, "cuBLAS gemm", e))?;
    Ok(out)
}

// ------------------------------------------------------------------ conv2d

/// NCHW geometry of a 2-d convolution for [`im2col`] / [`col2im`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    /// Images in the batch.
    pub(crate) n: usize,
    /// Channels unfolded (one group's input channels).
    pub(crate) c: usize,
    /// Input height.
    pub(crate) h: usize,
    /// Input width.
    pub(crate) w: usize,
    /// Kernel height.
    pub(crate) kh: usize,
    /// Kernel width.
    pub(crate) kw: usize,
    /// Vertical stride.
    pub(crate) sh: usize,
    /// Horizontal stride.
    pub(crate) sw: usize,
    /// Top padding.
    pub(crate) pt: usize,
    /// Left padding.
    pub(crate) pl: usize,
    /// Vertical dilation.
    pub(crate) dh: usize,
    /// Horizontal dilation.
    pub(crate) dw: usize,
    /// Output height.
    pub(crate) oh: usize,
    /// Output width.
    pub(crate) ow: usize,
}

/// Kernel-side geometry; mirrors `struct ConvGeom` in kernels.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct ConvGeomK {
    v: [i64; 15],
}

// SAFETY: fifteen i64 in C order, identical to `struct ConvGeom` in kernels.cu.
unsafe impl DeviceRepr for ConvGeomK {}

impl ConvGeom {
    fn check(&self, what: &str) -> Result<(), String> {
        let g = self;
        if g.sh == 0 || g.sw == 0 || g.dh == 0 || g.dw == 0 {
            return Err(format!(
                "CUDA: {what}: stride and dilation must be positive ({g:?})"
            ));
        }
        // Any output extent is accepted (bottom/right padding is implied by
        // oh/ow, so it may be asymmetric): the kernels bounds-check every
        // input index they form.
        Ok(())
    }

    fn kernel(&self, xbs: usize) -> ConvGeomK {
        let g = self;
        let v = [
            g.n, g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.dh, g.dw, g.oh, g.ow, xbs,
        ];
        ConvGeomK {
            v: v.map(|x| x as i64),
        }
    }
}

fn prod(v: &[usize]) -> Option<usize> {
    v.iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .filter(|&n| n <= i64::MAX as usize)
}

/// Unfolds images for a convolution GEMM: image `b` is the `c × h × w`
/// contiguous block at element `x_off + b·x_batch_stride` of `x`; the result
/// is a contiguous `[n, c·kh·kw, oh·ow]` block whose entry
/// `[b, (ch·kh + ki)·kw + kj, oy·ow + ox]` is
/// `x[b, ch, oy·sh − pt + ki·dh, ox·sw − pl + kj·dw]` (0 in the padding).
pub(crate) fn im2col(
    dt: Dt,
    x: &Block,
    x_off: usize,
    x_batch_stride: usize,
    g: &ConvGeom,
) -> Result<Block, String> {
    need_float(dt, "im2col")?;
    g.check("im2col")?;
    let d = x.dev;
    let total = prod(&[g.n, g.c, g.kh, g.kw, g.oh, g.ow])
        .ok_or_else(|| "CUDA: im2col output too large".to_string())?;
    let img = prod(&[g.c, g.h, g.w]).ok_or_else(|| "CUDA: im2col input too large".to_string())?;
    if g.n > 0 && img > 0 {
        let end = (g.n - 1)
            .checked_mul(x_batch_stride)
            .and_then(|v| v.checked_add(img))
            .and_then(|v| v.checked_add(x_off));
        if end.is_none_or(|e| e > x.len(dt)) {
            return Err(format!(
                "CUDA: im2col: input of {} elements is too small for {g:?} at offset {x_off}",
                x.len(dt)
            ));
        }
    }
    let out = alloc_on(d, total * dt.size())?;
    if total == 0 {
        return Ok(out);
    }
    if img == 0 {
        fill(&out, dt, 0.0)?;
        return Ok(out);
    }
    let name = format!("d2l_im2col_{}", dt.suffix());
    let (xp, gk, op) = (x.ptr_at(dt, x_off), g.kernel(x_batch_stride), out.ptr);
    launch!(d, &name, grid_for(total), &xp, &gk, &op)?;
    Ok(out)
}

/// The adjoint of [`im2col`]: sums a contiguous `[n, c·kh·kw, oh·ow]` block
/// (at element `cols_off` of `cols`) back into a new contiguous
/// `[n, c, h, w]` block. Deterministic (gather, no atomics).
pub(crate) fn col2im(dt: Dt, cols: &Block, cols_off: usize, g: &ConvGeom) -> Result<Block, String> {
    need_float(dt, "col2im")?;
    g.check("col2im")?;
    let d = cols.dev;
    let need = prod(&[g.n, g.c, g.kh, g.kw, g.oh, g.ow])
        .ok_or_else(|| "CUDA: col2im input too large".to_string())?;
    if cols_off.checked_add(need).is_none_or(|e| e > cols.len(dt)) {
        return Err(format!(
            "CUDA: col2im: {need} elements at offset {cols_off} exceed a block of {}",
            cols.len(dt)
        ));
    }
    let total =
        prod(&[g.n, g.c, g.h, g.w]).ok_or_else(|| "CUDA: col2im output too large".to_string())?;
    let out = alloc_on(d, total * dt.size())?;
    if total == 0 {
        return Ok(out);
    }
    let name = format!("d2l_col2im_{}", dt.suffix());
    let img = g.c * g.h * g.w;
    let (cp, gk, op) = (cols.ptr_at(dt, cols_off), g.kernel(img), out.ptr);
    launch!(d, &name, grid_for(total), &cp, &gk, &op)?;
    Ok(out)
}

// ------------------------------------------------------------------ Adam

/// Tensors per fused-Adam launch (must match `ADAM_MAX` in kernels.cu).
const ADAM_MAX: usize = 16;

/// One parameter of a fused Adam step: the first `n` elements of each block
/// (contiguous, same dtype, same device) are updated in place.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamParam<'a> {
    /// The parameter (updated).
    pub(crate) param: &'a Block,
    /// Its gradient (read).
    pub(crate) grad: &'a Block,
    /// First-moment estimate (updated).
    pub(crate) exp_avg: &'a Block,
    /// Second-moment estimate (updated).
    pub(crate) exp_avg_sq: &'a Block,
    /// Running maximum of the second moment, required when `amsgrad` (updated).
    pub(crate) max_exp_avg_sq: Option<&'a Block>,
    /// Number of elements.
    pub(crate) n: usize,
}

/// Hyper-parameters of one Adam/AdamW step (`step` counts from 1).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamHyper {
    /// Learning rate.
    pub(crate) lr: f64,
    /// β₁.
    pub(crate) beta1: f64,
    /// β₂.
    pub(crate) beta2: f64,
    /// ε.
    pub(crate) eps: f64,
    /// Weight decay λ.
    pub(crate) weight_decay: f64,
    /// AdamW (decoupled decay `p ← p(1 − lr·λ)`) instead of L2 (`g ← g + λp`).
    pub(crate) decoupled: bool,
    /// AMSGrad (use the running max of the second moment).
    pub(crate) amsgrad: bool,
    /// The step number after this update (1 for the first step).
    pub(crate) step: u64,
}

/// Kernel-side tensor list; mirrors `struct AdamList` in kernels.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct AdamListK {
    param: [u64; ADAM_MAX],
    grad: [u64; ADAM_MAX],
    m: [u64; ADAM_MAX],
    v: [u64; ADAM_MAX],
    vmax: [u64; ADAM_MAX],
    n: [i64; ADAM_MAX],
    count: i32,
    pad: i32,
}

// SAFETY: POD with the C layout of `struct AdamList` in kernels.cu.
unsafe impl DeviceRepr for AdamListK {}

/// Kernel-side hyper-parameters; mirrors `struct AdamHyper` in kernels.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct AdamHyperK {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    wd: f64,
    bc1: f64,
    bc2_sqrt: f64,
    decoupled: i32,
    amsgrad: i32,
}

// SAFETY: POD with the C layout of `struct AdamHyper` in kernels.cu.
unsafe impl DeviceRepr for AdamHyperK {}

/// One fused Adam/AdamW step over many parameters (f32/f64), in place, in
/// launches of up to 16 tensors each — the same arithmetic as d2l-nn's
/// `adam_update`.
pub(crate) fn adam_multi(dt: Dt, params: &[AdamParam<'_>], h: &AdamHyper) -> Result<(), String> {
    need_float(dt, "adam_multi")?;
    if h.step == 0 {
        return Err("CUDA: adam_multi: step must be at least 1".into());
    }
    for (j, p) in params.iter().enumerate() {
        let mut blocks = vec![p.param, p.grad, p.exp_avg, p.exp_avg_sq];
        if h.amsgrad {
            blocks.push(p.max_exp_avg_sq.ok_or_else(|| {
                format!("CUDA: adam_multi: parameter {j} lacks max_exp_avg_sq (amsgrad)")
            })?);
        }
        same_device(&blocks, "adam_multi")?;
        if blocks.iter().any(|b| b.len(dt) < p.n) || p.n > i64::MAX as usize {
            return Err(format!(
                "CUDA: adam_multi: parameter {j}: a block is shorter than {} elements",
                p.n
            ));
        }
    }
    let step = h.step as f64;
    let hk = AdamHyperK {
        lr: h.lr,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        wd: h.weight_decay,
        bc1: 1.0 - h.beta1.powf(step),
        bc2_sqrt: (1.0 - h.beta2.powf(step)).sqrt(),
        decoupled: h.decoupled as i32,
        amsgrad: h.amsgrad as i32,
    };
    let name = format!("d2l_adam_{}", dt.suffix());
    let work: Vec<&AdamParam<'_>> = params.iter().filter(|p| p.n > 0).collect();
    for chunk in work.chunks(ADAM_MAX) {
        let d = chunk[0].param.dev;
        let mut l = AdamListK {
            param: [0; ADAM_MAX],
            grad: [0; ADAM_MAX],
            m: [0; ADAM_MAX],
            v: [0; ADAM_MAX],
            vmax: [0; ADAM_MAX],
            n: [0; ADAM_MAX],
            count: chunk.len() as i32,
            pad: 0,
        };
        let mut max_n = 0usize;
        for (j, p) in chunk.iter().enumerate() {
            if p.param.dev.ordinal != d.ordinal {
                return Err("CUDA: adam_multi: parameters on different devices".into());
            }
            l.param[j] = p.param.ptr;
            l.grad[j] = p.grad.ptr;
            l.m[j] = p.exp_avg.ptr;
            l.v[j] = p.exp_avg_sq.ptr;
            l.vmax[j] = p.max_exp_avg_sq.map_or(0, |b| b.ptr);
            l.n[j] = p.n as i64;
            max_n = max_n.max(p.n);
        }
        let cfg = LaunchConfig {
            grid_dim: (
                (max_n as u64).div_ceil(THREADS as u64).clamp(1, 1024) as u32,
                chunk.len() as u32,
                1,
            ),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        launch!(d, &name, cfg, &l, &hk)?;
    }
    Ok(())
}

// ------------------------------------------------------------------ pooling

/// How the windows of one pooling axis are laid out (see `pool_win` in
/// kernels.cu; the caller checks that the rule gives the CPU's windows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PoolRule {
    /// Max pooling: kernel, stride, padding, dilation.
    Max {
        k: usize,
        s: usize,
        p: usize,
        d: usize,
    },
    /// Average pooling: kernel, stride, padding, whether the padding counts.
    Avg {
        k: usize,
        s: usize,
        p: usize,
        count_include_pad: bool,
    },
    /// Adaptive pooling: `floor(i·len/n) .. ceil((i+1)·len/n)`.
    Adaptive,
}

/// One pooling axis: input length, output length and the window rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolAxis {
    /// Input length.
    pub(crate) len: usize,
    /// Output length.
    pub(crate) n: usize,
    /// The window rule.
    pub(crate) rule: PoolRule,
}

impl PoolAxis {
    /// Window `i` as (start, end, divisor count), exactly as `pool_win` in kernels.cu.
    pub(crate) fn window(&self, i: usize) -> (usize, usize, usize) {
        let (len, i) = (self.len as i64, i as i64);
        match self.rule {
            PoolRule::Adaptive => {
                let n = self.n as i64;
                let (st, en) = (i * len / n, ((i + 1) * len + n - 1) / n);
                (st as usize, en as usize, (en - st) as usize)
            }
            PoolRule::Max { k, s, p, d } => {
                let (k, s, p, d) = (k as i64, s as i64, p as i64, d as i64);
                let raw = i * s - p;
                let e = (raw + (k - 1) * d + 1).min(len);
                let st = if raw < 0 {
                    raw + ((-raw + d - 1) / d) * d
                } else {
                    raw
                };
                (st as usize, e.max(st) as usize, 1)
            }
            PoolRule::Avg {
                k,
                s,
                p,
                count_include_pad,
            } => {
                let (k, s, p) = (k as i64, s as i64, p as i64);
                let raw = i * s - p;
                let pad_end = (raw + k).min(len + p);
                let st = raw.max(0);
                let e = pad_end.min(len);
                let cnt = if count_include_pad {
                    pad_end - raw
                } else {
                    e - st
                };
                (st as usize, e.max(st) as usize, cnt.max(1) as usize)
            }
        }
    }

    fn kernel(&self) -> Result<PoolAxisK, String> {
        let (mode, k, s, p, d, cip) = match self.rule {
            PoolRule::Max { k, s, p, d } => (0, k, s, p, d, false),
            PoolRule::Avg {
                k,
                s,
                p,
                count_include_pad,
            } => (1, k, s, p, 1, count_include_pad),
            PoolRule::Adaptive => (2, 1, 1, 0, 1, false),
        };
        if self.len == 0 || self.n == 0 || k == 0 || s == 0 || d == 0 {
            return Err(format!("CUDA: pooling: degenerate axis {self:?}"));
        }
        Ok(PoolAxisK {
            v: [mode, self.len, self.n, k, s, p, d, cip as usize].map(|x| x as i64),
        })
    }
}

/// Kernel-side pooling axis; mirrors `struct PoolAxis` in kernels.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct PoolAxisK {
    v: [i64; 8],
}

/// Kernel-side pooling geometry; mirrors `struct PoolGeom` in kernels.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct PoolGeomK {
    planes: i64,
    r: PoolAxisK,
    c: PoolAxisK,
}

// SAFETY: POD (seventeen i64) with the C layout of `struct PoolGeom` in kernels.cu.
unsafe impl DeviceRepr for PoolGeomK {}

fn pool_geom(
    planes: usize,
    rows: &PoolAxis,
    cols: &PoolAxis,
) -> Result<(PoolGeomK, usize, usize), String> {
    let g = PoolGeomK {
        planes: planes as i64,
        r: rows.kernel()?,
        c: cols.kernel()?,
    };
    let n_in = prod(&[planes, rows.len, cols.len])
        .ok_or_else(|| "CUDA: pooling input too large".to_string())?;
    let n_out = prod(&[planes, rows.n, cols.n])
        .ok_or_else(|| "CUDA: pooling output too large".to_string())?;
    Ok((g, n_in, n_out))
}

fn check_extent(b: &Block, dt: Dt, off: usize, n: usize, what: &str) -> Result<(), String> {
    if off.checked_add(n).is_none_or(|e| e > b.len(dt)) {
        return Err(format!(
            "CUDA: {what}: {n} elements at offset {off} exceed a block of {} elements",
            b.len(dt)
        ));
    }
    Ok(())
}

/// Max pooling of the contiguous `[planes, rows.len, cols.len]` input at element
/// `x_off` of `x`: the maxima `[planes, rows.n, cols.n]` and, when `with_idx`, the
/// i64 position `h·W + w` of each (first maximum; the last NaN; -1 for an empty
/// window), as the CPU kernels.
pub(crate) fn max_pool_forward(
    dt: Dt,
    x: &Block,
    x_off: usize,
    planes: usize,
    rows: &PoolAxis,
    cols: &PoolAxis,
    with_idx: bool,
) -> Result<(Block, Option<Block>), String> {
    need_float(dt, "max_pool")?;
    let (g, n_in, n_out) = pool_geom(planes, rows, cols)?;
    check_extent(x, dt, x_off, n_in, "max_pool")?;
    let d = x.dev;
    let out = alloc_on(d, n_out * dt.size())?;
    let idx = if with_idx {
        Some(alloc_on(d, n_out * 8)?)
    } else {
        None
    };
    if n_out == 0 {
        return Ok((out, idx));
    }
    let name = format!("d2l_max_pool_fwd_{}", dt.suffix());
    let (xp, op, ip) = (
        x.ptr_at(dt, x_off),
        out.ptr,
        idx.as_ref().map_or(0u64, |b| b.ptr),
    );
    launch!(d, &name, grid_for(n_out), &xp, &g, &op, &ip)?;
    Ok((out, idx))
}

/// The input gradient of max pooling: each output gradient added to the input
/// position its index names (a gather per input element, deterministic).
#[allow(clippy::too_many_arguments)]
pub(crate) fn max_pool_backward(
    dt: Dt,
    gout: &Block,
    g_off: usize,
    idx: &Block,
    idx_off: usize,
    planes: usize,
    rows: &PoolAxis,
    cols: &PoolAxis,
) -> Result<Block, String> {
    need_float(dt, "max_pool_backward")?;
    let d = same_device(&[gout, idx], "max_pool_backward")?;
    let (g, n_in, n_out) = pool_geom(planes, rows, cols)?;
    check_extent(gout, dt, g_off, n_out, "max_pool_backward")?;
    check_extent(idx, Dt::I64, idx_off, n_out, "max_pool_backward")?;
    let out = alloc_on(d, n_in * dt.size())?;
    if n_in == 0 {
        return Ok(out);
    }
    let name = format!("d2l_max_pool_bwd_{}", dt.suffix());
    let (gp, ip, op) = (
        gout.ptr_at(dt, g_off),
        idx.ptr_at(Dt::I64, idx_off),
        out.ptr,
    );
    launch!(d, &name, grid_for(n_in), &gp, &ip, &g, &op)?;
    Ok(out)
}

/// Average pooling of the contiguous `[planes, rows.len, cols.len]` input at
/// element `x_off` of `x` (window sums in double, over `count_r·count_c`).
pub(crate) fn avg_pool_forward(
    dt: Dt,
    x: &Block,
    x_off: usize,
    planes: usize,
    rows: &PoolAxis,
    cols: &PoolAxis,
) -> Result<Block, String> {
    need_float(dt, "avg_pool")?;
    let (g, n_in, n_out) = pool_geom(planes, rows, cols)?;
    check_extent(x, dt, x_off, n_in, "avg_pool")?;
    let d = x.dev;
    let out = alloc_on(d, n_out * dt.size())?;
    if n_out == 0 {
        return Ok(out);
    }
    let name = format!("d2l_avg_pool_fwd_{}", dt.suffix());
    let (xp, op) = (x.ptr_at(dt, x_off), out.ptr);
    launch!(d, &name, grid_for(n_out), &xp, &g, &op)?;
    Ok(out)
}

/// The input gradient of average pooling (a gather per input element, in the
/// CPU's order of additions).
pub(crate) fn avg_pool_backward(
    dt: Dt,
    gout: &Block,
    g_off: usize,
    planes: usize,
    rows: &PoolAxis,
    cols: &PoolAxis,
) -> Result<Block, String> {
    need_float(dt, "avg_pool_backward")?;
    let (g, n_in, n_out) = pool_geom(planes, rows, cols)?;
    check_extent(gout, dt, g_off, n_out, "avg_pool_backward")?;
    let d = gout.dev;
    let out = alloc_on(d, n_in * dt.size())?;
    if n_in == 0 {
        return Ok(out);
    }
    let name = format!("d2l_avg_pool_bwd_{}", dt.suffix());
    let (gp, op) = (gout.ptr_at(dt, g_off), out.ptr);
    launch!(d, &name, grid_for(n_in), &gp, &g, &op)?;
    Ok(out)
}

// ------------------------------------------------------------------ batch / group norm

/// The `[N, C, HW]` view of a normalisation input and its units: `groups == 0`
/// for per-channel statistics (batch norm), else `N·groups` (sample, group) units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NormGeom {
    /// Samples.
    pub(crate) n: usize,
    /// Channels.
    pub(crate) c: usize,
    /// Elements per (sample, channel) run.
    pub(crate) hw: usize,
    /// Groups (0: one unit per channel).
    pub(crate) groups: usize,
}

impl NormGeom {
    /// Number of units (sets of runs sharing statistics).
    pub(crate) fn units(&self) -> usize {
        if self.groups == 0 {
            self.c
        } else {
            self.n * self.groups
        }
    }

    fn check(&self, what: &str) -> Result<(usize, NormGeomK), String> {
        if self.groups != 0 && (self.c == 0 || !self.c.is_multiple_of(self.groups)) {
            return Err(format!(
                "CUDA: {what}: {} channels do not split into {} groups",
                self.c, self.groups
            ));
        }
        let total = prod(&[self.n, self.c, self.hw])
            .ok_or_else(|| format!("CUDA: {what}: input too large"))?;
        let k = NormGeomK {
            v: [self.n, self.c, self.hw, self.groups].map(|x| x as i64),
        };
        Ok((total, k))
    }
}

/// Kernel-side geometry; mirrors `struct NormGeom` in kernels.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct NormGeomK {
    v: [i64; 4],
}

// SAFETY: four i64 in C order, identical to `struct NormGeom` in kernels.cu.
unsafe impl DeviceRepr for NormGeomK {}

/// Block size of the per-unit and per-run reductions: a power of two, 32..=256.
fn reduce_config(items: usize, per_item: usize) -> LaunchConfig {
    row_config(items, per_item)
}

/// The statistics of every unit of the contiguous `x` (at element `x_off`): a new
/// f64 block `[mean(units), biased var(units), 1/sqrt(var + eps)(units)]`.
pub(crate) fn norm_stats(
    dt: Dt,
    x: &Block,
    x_off: usize,
    g: &NormGeom,
    eps: f64,
) -> Result<Block, String> {
    need_float(dt, "norm_stats")?;
    let (total, gk) = g.check("norm_stats")?;
    check_extent(x, dt, x_off, total, "norm_stats")?;
    let units = g.units();
    let d = x.dev;
    let out = alloc_on(d, 3 * units * 8)?;
    if units == 0 {
        return Ok(out);
    }
    if total == 0 {
        return Err("CUDA: norm_stats: units without elements".into());
    }
    let name = format!("d2l_norm_stats_{}", dt.suffix());
    let (xp, sp) = (x.ptr_at(dt, x_off), out.ptr);
    launch!(
        d,
        &name,
        reduce_config(units, total / units),
        &xp,
        &gk,
        &eps,
        &sp
    )
    .map(|_| out)
}

/// `y = (x − mean)·istd·γ[c] + β[c]` with the statistics block of [`norm_stats`]
/// (or one laid out the same way); `gamma`/`beta` are `[C]` blocks of `dt`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn norm_apply(
    dt: Dt,
    x: &Block,
    x_off: usize,
    g: &NormGeom,
    stats: &Block,
    gamma: Option<(&Block, usize)>,
    beta: Option<(&Block, usize)>,
) -> Result<Block, String> {
    need_float(dt, "norm_apply")?;
    let d = same_device(&[x, stats], "norm_apply")?;
    let (total, gk) = g.check("norm_apply")?;
    check_extent(x, dt, x_off, total, "norm_apply")?;
    check_extent(stats, Dt::F64, 0, 3 * g.units(), "norm_apply")?;
    for (b, off) in gamma.iter().chain(beta.iter()) {
        same_device(&[x, b], "norm_apply")?;
        check_extent(b, dt, *off, g.c, "norm_apply")?;
    }
    let out = alloc_on(d, total * dt.size())?;
    if total == 0 {
        return Ok(out);
    }
    let name = format!("d2l_norm_apply_{}", dt.suffix());
    let (xp, sp, op) = (x.ptr_at(dt, x_off), stats.ptr, out.ptr);
    let gp = gamma.map_or(0u64, |(b, o)| b.ptr_at(dt, o));
    let bp = beta.map_or(0u64, |(b, o)| b.ptr_at(dt, o));
    launch!(d, &name, grid_for(total), &xp, &gk, &sp, &gp, &bp, &op)?;
    Ok(out)
}

/// The results of [`norm_backward`].
pub(crate) struct NormGrads {
    /// The input gradient (when asked for).
    pub(crate) dx: Option<Block>,
    /// The `[C]` weight gradient Σ dy·x̂ (when asked for).
    pub(crate) dgamma: Option<Block>,
    /// The `[C]` bias gradient Σ dy (when asked for).
    pub(crate) dbeta: Option<Block>,
}

/// The backward of [`norm_apply`]: per-run sums Σdy and Σdy·x̂ (in double), the
/// weight and bias gradients, and `dx` with (`through`) or without the gradient
/// through the statistics. `x` and `dy` are contiguous `[N, C, HW]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn norm_backward(
    dt: Dt,
    x: (&Block, usize),
    dy: (&Block, usize),
    g: &NormGeom,
    stats: &Block,
    gamma: Option<(&Block, usize)>,
    through: bool,
    need: (bool, bool, bool),
) -> Result<NormGrads, String> {
    need_float(dt, "norm_backward")?;
    let d = same_device(&[x.0, dy.0, stats], "norm_backward")?;
    let (total, gk) = g.check("norm_backward")?;
    check_extent(x.0, dt, x.1, total, "norm_backward")?;
    check_extent(dy.0, dt, dy.1, total, "norm_backward")?;
    check_extent(stats, Dt::F64, 0, 3 * g.units(), "norm_backward")?;
    if let Some((b, off)) = gamma {
        same_device(&[x.0, b], "norm_backward")?;
        check_extent(b, dt, off, g.c, "norm_backward")?;
    }
    let (need_dx, need_dw, need_db) = need;
    let runs = g.n * g.c;
    let units = g.units();
    let s_dy = alloc_on(d, runs.max(1) * 8)?;
    let s_dyxh = alloc_on(d, runs.max(1) * 8)?;
    let coef = alloc_on(d, (2 * units).max(1) * 8)?;
    let dgamma = if need_dw {
        Some(alloc_on(d, g.c * dt.size())?)
    } else {
        None
    };
    let dbeta = if need_db {
        Some(alloc_on(d, g.c * dt.size())?)
    } else {
        None
    };
    let dx = if need_dx {
        Some(alloc_on(d, total * dt.size())?)
    } else {
        None
    };
    if total == 0 {
        for b in dgamma.iter().chain(dbeta.iter()) {
            fill(b, dt, 0.0)?;
        }
        return Ok(NormGrads { dx, dgamma, dbeta });
    }
    let sfx = dt.suffix();
    let (xp, gyp, sp) = (x.0.ptr_at(dt, x.1), dy.0.ptr_at(dt, dy.1), stats.ptr);
    let gp = gamma.map_or(0u64, |(b, o)| b.ptr_at(dt, o));
    let (sdp, sxp, cp) = (s_dy.ptr, s_dyxh.ptr, coef.ptr);
    launch!(
        d,
        &format!("d2l_norm_bwd_runs_{sfx}"),
        reduce_config(runs, g.hw),
        &xp,
        &gyp,
        &gk,
        &sp,
        &sdp,
        &sxp
    )?;
    let (dgp, dbp) = (
        dgamma.as_ref().map_or(0u64, |b| b.ptr),
        dbeta.as_ref().map_or(0u64, |b| b.ptr),
    );
    launch!(
        d,
        &format!("d2l_norm_bwd_coef_{sfx}"),
        grid_for(units + g.c),
        &gk,
        &gp,
        &sdp,
        &sxp,
        &cp,
        &dgp,
        &dbp
    )?;
    if let Some(out) = &dx {
        let (op, th) = (out.ptr, through as i32);
        launch!(
            d,
            &format!("d2l_norm_bwd_dx_{sfx}"),
            grid_for(total),
            &xp,
            &gyp,
            &gk,
            &sp,
            &cp,
            &gp,
            &th,
            &op
        )?;
    }
    Ok(NormGrads { dx, dgamma, dbeta })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesce_merges_contiguous_dims() {
        let (s, st) = coalesce(&[2, 3, 4], &[vec![12, 4, 1]]);
        assert_eq!(s, vec![24]);
        assert_eq!(st, vec![vec![1]]);
        // transposed last two dims cannot merge
        let (s, st) = coalesce(&[2, 4, 3], &[vec![12, 1, 4]]);
        assert_eq!(s, vec![2, 4, 3]);
        assert_eq!(st, vec![vec![12, 1, 4]]);
        // broadcast operand blocks merging of the dims it broadcasts over
        let (s, st) = coalesce(&[2, 3, 4], &[vec![12, 4, 1], vec![0, 0, 1]]);
        assert_eq!(s, vec![6, 4]);
        assert_eq!(st, vec![vec![4, 1], vec![0, 1]]);
        // size-1 dims vanish; scalars become [1] with stride 0
        let (s, st) = coalesce(&[1, 5, 1], &[vec![7, 2, 9]]);
        assert_eq!(s, vec![5]);
        assert_eq!(st, vec![vec![2]]);
        let (s, st) = coalesce(&[], &[vec![]]);
        assert_eq!(s, vec![1]);
        assert_eq!(st, vec![vec![0]]);
    }

    #[test]
    fn kernel_struct_sizes_match_kernels_cu() {
        // The NVRTC test checks the same sizes on the CUDA side.
        assert_eq!(std::mem::size_of::<Strided>(), 144);
        assert_eq!(std::mem::size_of::<ConvGeomK>(), 120);
        assert_eq!(std::mem::size_of::<AdamListK>(), 776);
        assert_eq!(std::mem::size_of::<AdamHyperK>(), 64);
        assert_eq!(std::mem::size_of::<PoolGeomK>(), 136);
        assert_eq!(std::mem::size_of::<NormGeomK>(), 32);
    }

    #[test]
    fn device_count_never_panics() {
        let n = device_count();
        if n == 0 {
            assert!(dev(0).is_err());
            assert_eq!(memory_stats(0), (0, 0, 0));
        }
    }

    #[test]
    fn kernel_names_appear_in_source() {
        for name in kernel_names() {
            let stem = name.trim_start_matches("d2l_");
            let kind = stem.rsplit_once('_').map(|(k, _)| k).unwrap_or(stem);
            let kind = kind.strip_prefix("cast_").map(|_| "cast").unwrap_or(kind);
            assert!(
                KERNEL_SOURCE.contains(&format!("d2l_{kind}_##"))
                    || KERNEL_SOURCE.contains(&format!("void {name}(")),
                "{name} has no generator in kernels.cu"
            );
        }
    }
}
