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
//! `reduce_rows`, pooling modes) live in `cuda/op_codes.rs`, which also
//! generates the `#define`s compiled in front of `kernels.cu`.

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

/// The CUDA C source of all kernels (compiled at run time by NVRTC after
/// `op_codes::header()`).
pub(crate) const KERNEL_SOURCE: &str = include_str!("../kernels.cu");

/// [`KERNEL_SOURCE`] behind the op-code `#define`s it needs, as NVRTC compiles it.
pub(crate) fn kernel_source() -> String {
    format!("{}{KERNEL_SOURCE}", super::op_codes::header())
}

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
        nvrtc::compile_ptx_with_opts(kernel_source(), opts).map_err(|e| match e {
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

// ------------------------------------------------------------------ launchers by op family
// (declared after `launch!` and the helpers above, which they use)

mod adam;
mod conv;
mod elementwise;
mod matmul;
mod norm;
mod pool;
pub(crate) use adam::*;
pub(crate) use conv::*;
pub(crate) use elementwise::*;
pub(crate) use matmul::*;
pub(crate) use norm::*;
pub(crate) use pool::*;

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
