//! Storage: the flat buffer behind one or more tensor views, an enum over devices and
//! element types so every op dispatches on it in one place.

use crate::cuda::CudaStorage;
use crate::{DType, Device};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Host buffers, one variant per dtype.
#[derive(Debug, Clone)]
pub enum CpuStorage {
    /// f32 elements.
    F32(Vec<f32>),
    /// f64 elements.
    F64(Vec<f64>),
    /// i64 elements.
    I64(Vec<i64>),
    /// u8 elements.
    U8(Vec<u8>),
}

impl CpuStorage {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::I64(_) => DType::I64,
            CpuStorage::U8(_) => DType::U8,
        }
    }

    /// Number of elements in the buffer.
    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
            CpuStorage::I64(v) => v.len(),
            CpuStorage::U8(v) => v.len(),
        }
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` zeros of `dtype`.
    ///
    /// # Panics
    /// Over the memory limit (see [`crate::limit`]; after `limit::install` the process
    /// ends with one `error:` line instead).
    pub fn zeros(dtype: DType, len: usize) -> CpuStorage {
        crate::limit::enforce(crate::limit::check_shape("new buffer", &[len], dtype));
        match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; len]),
            DType::F64 => CpuStorage::F64(vec![0.0; len]),
            DType::I64 => CpuStorage::I64(vec![0; len]),
            DType::U8 => CpuStorage::U8(vec![0; len]),
        }
    }
}

/// A buffer on some device.
#[derive(Debug)]
pub enum Storage {
    /// Host memory.
    Cpu(CpuStorage),
    /// Memory of a CUDA GPU.
    Cuda(CudaStorage),
}

impl Storage {
    /// The device holding the buffer.
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Cuda(s) => Device::Cuda(s.ordinal()),
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            Storage::Cuda(s) => s.dtype(),
        }
    }

    /// The host buffer.
    ///
    /// # Panics
    /// On a device buffer: the engine reads those through `Tensor::storage`, which
    /// copies them to the host first.
    pub fn cpu(&self) -> &CpuStorage {
        match self {
            Storage::Cpu(s) => s,
            Storage::Cuda(s) => panic!(
                "internal error: host access to a cuda:{} buffer without a copy",
                s.ordinal()
            ),
        }
    }

    pub(crate) fn cpu_mut(&mut self) -> &mut CpuStorage {
        match self {
            Storage::Cpu(s) => s,
            Storage::Cuda(s) => panic!(
                "internal error: host write to a cuda:{} buffer without a copy",
                s.ordinal()
            ),
        }
    }

    /// A buffer on `device` holding `s` (a copy to the GPU for a CUDA device).
    pub(crate) fn on_device(s: CpuStorage, device: Device) -> crate::Result<Storage> {
        match device {
            Device::Cpu => Ok(Storage::Cpu(s)),
            Device::Cuda(i) => Ok(Storage::Cuda(CudaStorage::upload(&s, i)?)),
        }
    }
}

/// A read view of a tensor's buffer as host memory: the buffer itself for a CPU tensor,
/// a fresh host copy for a device tensor (the host path every op without a device kernel
/// takes).
pub(crate) enum StorageRef<'a> {
    /// The locked host buffer.
    Locked(RwLockReadGuard<'a, Storage>),
    /// A host copy of a device buffer.
    Host(CpuStorage),
}

impl StorageRef<'_> {
    /// The host buffer.
    pub(crate) fn cpu(&self) -> &CpuStorage {
        match self {
            StorageRef::Locked(g) => g.cpu(),
            StorageRef::Host(s) => s,
        }
    }
}

/// Runs `$body` with `$v` bound to the typed slice of a [`CpuStorage`], for every dtype.
macro_rules! with_slice {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            $crate::storage::CpuStorage::F32($v) => $body,
            $crate::storage::CpuStorage::F64($v) => $body,
            $crate::storage::CpuStorage::I64($v) => $body,
            $crate::storage::CpuStorage::U8($v) => $body,
        }
    };
}
pub(crate) use with_slice;

/// The shared cell behind a tensor and all its views: the buffer, and its device kept
/// beside it so that reading a tensor's device takes no lock. Moving a buffer to another
/// device (`Module::to`) replaces the contents of the cell, so every handle on it moves.
#[derive(Debug)]
pub(crate) struct Buffer {
    /// `0` for the CPU, `i + 1` for `cuda:i`.
    device: AtomicUsize,
    data: RwLock<Storage>,
}

fn encode(d: Device) -> usize {
    match d {
        Device::Cpu => 0,
        Device::Cuda(i) => i + 1,
    }
}

impl Buffer {
    /// A cell holding `s`.
    pub(crate) fn new(s: Storage) -> Buffer {
        Buffer {
            device: AtomicUsize::new(encode(s.device())),
            data: RwLock::new(s),
        }
    }

    /// The device of the buffer.
    pub(crate) fn device(&self) -> Device {
        match self.device.load(Ordering::Acquire) {
            0 => Device::Cpu,
            i => Device::Cuda(i - 1),
        }
    }

    /// Read access.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Storage> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access (the contents must stay on the same device; see [`Buffer::replace`]).
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Storage> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the contents, possibly with a buffer on another device.
    pub(crate) fn replace(&self, s: Storage) {
        let mut g = self.write();
        self.device.store(encode(s.device()), Ordering::Release);
        *g = s;
    }
}
