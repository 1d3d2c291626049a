//! The `Tensor` handle: shared storage plus a layout, and the autograd bookkeeping
//! (the op that made it, `requires_grad`, the accumulated `.grad`) of D2L 2.1 and 2.5.

use crate::backprop::Op;
use crate::error::{bad_shape, invalid, Error, Result};
use crate::grad_mode::is_grad_enabled;
use crate::layout::Layout;
use crate::storage::{with_slice, Buffer, CpuStorage, Storage, StorageRef};
use crate::{DType, Device, Element};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLockReadGuard};

/// A unique identity per tensor handle created by an op (views get their own id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(usize);

impl TensorId {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

pub(crate) struct Inner {
    pub(crate) id: TensorId,
    pub(crate) storage: Arc<Buffer>,
    pub(crate) layout: Layout,
    pub(crate) dtype: DType,
    /// How this tensor was computed, while the graph is alive (taken by `backward`).
    pub(crate) op: Mutex<Option<Op>>,
    pub(crate) requires_grad: AtomicBool,
    pub(crate) is_leaf: bool,
    pub(crate) grad: Mutex<Option<Tensor>>,
}

/// An n-dimensional array with reverse-mode autograd; cloning is cheap (a handle).
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Tensor {
    // ---------- construction ----------

    pub(crate) fn build(storage: Arc<Buffer>, layout: Layout, op: Option<Op>) -> Tensor {
        let dtype = storage.read().dtype();
        let tracked = op.is_some();
        Tensor(Arc::new(Inner {
            id: TensorId::new(),
            storage,
            layout,
            dtype,
            op: Mutex::new(op),
            requires_grad: AtomicBool::new(tracked),
            is_leaf: !tracked,
            grad: Mutex::new(None),
        }))
    }

    /// Wraps a fresh host buffer in a row-major tensor on the CPU, recording `op` when
    /// autograd must.
    pub(crate) fn from_storage(s: CpuStorage, shape: &[usize], op: Option<Op>) -> Tensor {
        Self::build(
            Arc::new(Buffer::new(Storage::Cpu(s))),
            Layout::contiguous(shape),
            op,
        )
    }

    /// Like [`Tensor::from_storage`], placing the buffer on `device` (the device of the
    /// op's inputs: a host result is copied to the GPU).
    pub(crate) fn from_storage_on(
        s: CpuStorage,
        shape: &[usize],
        op: Option<Op>,
        device: Device,
    ) -> Result<Tensor> {
        Ok(Self::build(
            Arc::new(Buffer::new(Storage::on_device(s, device)?)),
            Layout::contiguous(shape),
            op,
        ))
    }

    /// Wraps a fresh row-major buffer (on any device).
    pub(crate) fn from_parts(s: Storage, shape: &[usize], op: Option<Op>) -> Tensor {
        Self::build(Arc::new(Buffer::new(s)), Layout::contiguous(shape), op)
    }

    /// A device kernel's result when there is one, else the host result `host()` on
    /// `device`.
    pub(crate) fn native_or(
        native: Option<Storage>,
        device: Device,
        host: impl FnOnce() -> CpuStorage,
    ) -> Result<Storage> {
        match native {
            Some(s) => Ok(s),
            None => Storage::on_device(host(), device),
        }
    }

    /// Like [`Tensor::from_storage_on`], recording an op that saves the output itself
    /// (as a detached handle, so the graph holds no cycle).
    pub(crate) fn from_storage_with(
        s: Storage,
        shape: &[usize],
        op: impl FnOnce(Tensor) -> Op,
    ) -> Result<Tensor> {
        let storage = Arc::new(Buffer::new(s));
        let layout = Layout::contiguous(shape);
        let saved = Self::build(storage.clone(), layout.clone(), None);
        Ok(Self::build(storage, layout, Some(op(saved))))
    }

    /// A view sharing this tensor's storage.
    pub(crate) fn view_with(&self, layout: Layout, op: Option<Op>) -> Tensor {
        Self::build(self.0.storage.clone(), layout, op)
    }

    /// Builds the op only if grad mode is on and some input requires a gradient.
    pub(crate) fn record(inputs: &[&Tensor], op: impl FnOnce() -> Op) -> Option<Op> {
        Tensor::tracks(inputs).then(op)
    }

    /// Whether an op on these inputs must be recorded for autograd.
    pub(crate) fn tracks(inputs: &[&Tensor]) -> bool {
        is_grad_enabled() && inputs.iter().any(|t| t.requires_grad())
    }

    /// A tensor from a vector and a shape; the element type picks the dtype.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(bad_shape(
                "from_vec",
                format!("shape {shape:?} needs {n} elements, got {}", data.len()),
            ));
        }
        Ok(Self::from_storage(T::into_storage(data), shape, None))
    }

    /// A tensor copied from a slice and a shape.
    pub fn from_slice<T: Element>(data: &[T], shape: &[usize]) -> Result<Tensor> {
        Self::from_vec(data.to_vec(), shape)
    }

    /// A 0-dimensional f32 tensor.
    pub fn scalar(v: f32) -> Tensor {
        Self::from_storage(CpuStorage::F32(vec![v]), &[], None)
    }

    // ---------- metadata ----------

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.0.layout.shape
    }

    /// Alias of [`Tensor::shape`], as in PyTorch.
    pub fn size(&self) -> &[usize] {
        self.shape()
    }

    /// Size of one dimension (negative counts from the end).
    pub fn dim_size(&self, dim: isize) -> Result<usize> {
        Ok(self.shape()[self.resolve_dim("dim_size", dim)?])
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape().len()
    }

    /// Alias of [`Tensor::rank`] (PyTorch's `dim()`).
    pub fn ndim(&self) -> usize {
        self.rank()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }

    /// Element strides per dimension.
    pub fn stride(&self) -> &[usize] {
        &self.0.layout.strides
    }

    /// The layout (shape, strides, offset).
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    /// The device holding the storage.
    pub fn device(&self) -> Device {
        self.0.storage.device()
    }

    /// The tensor's identity (distinct for every handle an op creates).
    pub fn id(&self) -> TensorId {
        self.0.id
    }

    /// Whether the elements are row-major without gaps.
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }

    /// Whether two tensors share one storage buffer (a view and its base do).
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    /// The buffer as host memory: the buffer itself on the CPU, a host copy of a device
    /// buffer (the path of every op without a device kernel).
    ///
    /// # Panics
    /// If the device cannot be read (a failed driver call): the device is gone, not a
    /// user error.
    pub(crate) fn storage(&self) -> StorageRef<'_> {
        let g = self.0.storage.read();
        match &*g {
            Storage::Cpu(_) => StorageRef::Locked(g),
            Storage::Cuda(c) => match c.download() {
                Ok(host) => StorageRef::Host(host),
                Err(e) => panic!("reading a {} tensor failed: {e}", self.device()),
            },
        }
    }

    /// The locked buffer, wherever it lives.
    #[allow(dead_code)] // the entry point of device kernels
    pub(crate) fn raw_storage(&self) -> RwLockReadGuard<'_, Storage> {
        self.0.storage.read()
    }

    pub(crate) fn resolve_dim(&self, op: &'static str, dim: isize) -> Result<usize> {
        crate::layout::resolve_dim(op, dim, self.rank())
    }

    pub(crate) fn same_device(&self, op: &'static str, other: &Tensor) -> Result<()> {
        if self.device() != other.device() {
            return Err(Error::DeviceMismatch {
                op,
                lhs: self.device(),
                rhs: other.device(),
            });
        }
        Ok(())
    }

    pub(crate) fn expect_float(&self, op: &'static str) -> Result<()> {
        if !self.dtype().is_float() {
            return Err(Error::DTypeMismatch {
                op,
                expected: "a float tensor (f32 or f64)".into(),
                got: self.dtype(),
            });
        }
        Ok(())
    }

    pub(crate) fn expect_dtype(&self, op: &'static str, dtype: DType) -> Result<()> {
        if self.dtype() != dtype {
            return Err(Error::DTypeMismatch {
                op,
                expected: format!("{dtype}"),
                got: self.dtype(),
            });
        }
        Ok(())
    }

    // ---------- reading values ----------

    /// The elements in row-major order, converted to `T` (PyTorch's `tolist()` flattened).
    pub fn to_vec<T: Element>(&self) -> Vec<T> {
        let s = self.storage();
        let l = &self.0.layout;
        with_slice!(s.cpu(), v => {
            if let (Some(sl), Some(r)) = (T::slice(s.cpu()), l.contiguous_range()) {
                return sl[r].to_vec();
            }
            l.offsets().map(|o| T::from_f64(v[o].to_f64())).collect()
        })
    }

    /// The elements as f64 in row-major order (for printing and checks).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.to_vec::<f64>()
    }

    /// The single value of a one-element tensor, as f32 (PyTorch's `item()`).
    pub fn item(&self) -> Result<f32> {
        Ok(self.item_f64()? as f32)
    }

    /// The single value of a one-element tensor, as f64.
    pub fn item_f64(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(invalid(
                "item",
                format!(
                    "expected a tensor with one element, got shape {:?}",
                    self.shape()
                ),
            ));
        }
        let s = self.storage();
        let o = self.0.layout.offset;
        Ok(with_slice!(s.cpu(), v => v[o].to_f64()))
    }

    /// Runs `f` on the elements as a row-major slice of `T` (copying only if the view is strided).
    pub fn with_slice<T: Element, R>(&self, f: impl FnOnce(&[T]) -> R) -> Result<R> {
        self.expect_dtype("with_slice", T::DTYPE)?;
        let s = self.storage();
        let v = T::slice(s.cpu()).expect("dtype checked");
        match self.0.layout.contiguous_range() {
            Some(r) => Ok(f(&v[r])),
            None => Ok(f(&crate::cpu::copy_strided(v, &self.0.layout))),
        }
    }

    // ---------- autograd state ----------

    /// Whether gradients flow to (leaf) or through (computed) this tensor.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// Marks a leaf as needing a gradient (PyTorch's `requires_grad_()`); returns the handle.
    pub fn requires_grad_(self, on: bool) -> Result<Tensor> {
        if !self.0.is_leaf {
            return Err(Error::Autograd(
                "requires_grad_ can only be set on leaf tensors; use detach() first".into(),
            ));
        }
        if on && !self.dtype().is_float() {
            return Err(Error::Autograd(format!(
                "only float tensors can require gradients, got {}",
                self.dtype()
            )));
        }
        self.0.requires_grad.store(on, Ordering::Relaxed);
        Ok(self)
    }

    /// Whether the tensor was created by the user rather than computed by a recorded op.
    pub fn is_leaf(&self) -> bool {
        self.0.is_leaf
    }

    /// The gradient accumulated by `backward` (leaves only), if any.
    pub fn grad(&self) -> Option<Tensor> {
        lock(&self.0.grad).clone()
    }

    /// Replaces the stored gradient.
    pub fn set_grad(&self, g: Option<Tensor>) {
        *lock(&self.0.grad) = g;
    }

    /// Clears the stored gradient (PyTorch's `zero_grad(set_to_none=True)`).
    pub fn zero_grad(&self) {
        self.set_grad(None);
    }

    pub(crate) fn accumulate_grad(&self, g: Tensor) -> Result<()> {
        let mut slot = lock(&self.0.grad);
        *slot = Some(match slot.take() {
            None => g,
            Some(old) => old.add(&g)?,
        });
        Ok(())
    }

    pub(crate) fn take_op(&self) -> Option<Op> {
        lock(&self.0.op).take()
    }

    pub(crate) fn op_inputs(&self) -> Option<Vec<Tensor>> {
        lock(&self.0.op).as_ref().map(|op| op.inputs())
    }

    pub(crate) fn clone_op(&self) -> Option<Op> {
        lock(&self.0.op).clone()
    }

    /// Whether this tensor still holds the record of the op that computed it.
    pub fn has_graph(&self) -> bool {
        lock(&self.0.op).is_some()
    }

    /// A new handle on the same storage, cut from the graph (PyTorch's `detach()`).
    pub fn detach(&self) -> Tensor {
        self.view_with(self.0.layout.clone(), None)
    }

    // ---------- in-place updates (for optimisers and from-scratch training loops) ----------

    fn check_inplace(&self, op: &'static str) -> Result<()> {
        if is_grad_enabled() && self.requires_grad() {
            return Err(Error::Autograd(format!(
                "{op}: a tensor that requires grad cannot be modified in place while grad mode is on \
                 (wrap the update in no_grad)"
            )));
        }
        Ok(())
    }

    /// Overwrites this view's elements with `src` (broadcast, converted to this dtype).
    /// Like PyTorch's `copy_`, `src` may live on another device: this is the one op that
    /// copies between devices by design (loading CPU weights into a GPU model).
    pub fn copy_(&self, src: &Tensor) -> Result<()> {
        let _prof = crate::profile::scope("inplace");
        self.check_inplace("copy_")?;
        let src = crate::grad_mode::no_grad(|| {
            src.to(self.device())?
                .broadcast_to(self.shape())?
                .to_dtype(self.dtype())
        })?;
        // Reading and writing one buffer at once would deadlock (and alias): copy first.
        let values = if Arc::ptr_eq(&src.0.storage, &self.0.storage) {
            src.copy()?
        } else {
            src.contiguous()?
        };
        let vs = values.storage();
        let l = self.0.layout.clone();
        self.update_host(|target| {
            macro_rules! put {
                ($variant:ident, $t:ident) => {{
                    let (CpuStorage::$variant(d), CpuStorage::$variant(s)) = ($t, vs.cpu()) else {
                        unreachable!("dtypes were matched above")
                    };
                    let s = &s[values.0.layout.offset..];
                    match l.contiguous_range() {
                        Some(r) => d[r].copy_from_slice(&s[..l.numel()]),
                        None => {
                            for (o, x) in l.offsets().zip(s.iter()) {
                                d[o] = *x;
                            }
                        }
                    }
                }};
            }
            match self.dtype() {
                DType::F32 => put!(F32, target),
                DType::F64 => put!(F64, target),
                DType::I64 => put!(I64, target),
                DType::U8 => put!(U8, target),
            }
        })?;
        Ok(())
    }

    /// Runs `f` on this tensor's whole buffer as host memory and keeps what it wrote (a
    /// device buffer goes through a host copy).
    pub(crate) fn update_host(&self, f: impl FnOnce(&mut CpuStorage)) -> Result<()> {
        let mut dst = self.0.storage.write();
        match &mut *dst {
            Storage::Cpu(s) => {
                f(s);
                Ok(())
            }
            Storage::Cuda(c) => {
                let mut host = c.download()?;
                f(&mut host);
                c.overwrite(&host)
            }
        }
    }

    /// This tensor on `device` (PyTorch's `.to(device)`): the same handle when it is
    /// already there, else a contiguous copy. Gradients flow back to the source device.
    /// Moving to a GPU that is not there is an [`Error::DeviceUnavailable`].
    pub fn to(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let _prof = crate::profile::scope("to_device");
        crate::cuda::check(device)?;
        let host = {
            let s = self.storage();
            with_slice!(s.cpu(), v => {
                let l = &self.0.layout;
                match l.contiguous_range() {
                    Some(r) => Element::into_storage(v[r].to_vec()),
                    None => Element::into_storage(crate::cpu::copy_strided(v, l)),
                }
            })
        };
        let rec = Tensor::record(&[self], || Op::ToDevice(self.clone()));
        Tensor::from_storage_on(host, self.shape(), rec, device)
    }

    /// Moves the whole buffer this tensor views to `device`, in place: every handle on
    /// the buffer (views, the optimiser's copy of a parameter) moves with it, and so
    /// does the stored gradient. This is how `Module::to` moves parameters and buffers
    /// (PyTorch's `param.data = param.data.to(device)`); an op's result is moved with
    /// [`Tensor::to`] instead.
    pub fn move_to_(&self, device: Device) -> Result<()> {
        if let Some(g) = self.grad() {
            self.set_grad(Some(crate::grad_mode::no_grad(|| g.to(device))?));
        }
        if device == self.device() {
            return Ok(());
        }
        crate::cuda::check(device)?;
        let host = match &*self.0.storage.read() {
            Storage::Cpu(s) => s.clone(),
            Storage::Cuda(c) => c.download()?,
        };
        self.0.storage.replace(Storage::on_device(host, device)?);
        Ok(())
    }

    /// This tensor on the CPU (`.to(Device::Cpu)`).
    pub fn cpu(&self) -> Result<Tensor> {
        self.to(Device::Cpu)
    }

    /// Sets every element to `value`.
    pub fn fill_(&self, value: f64) -> Result<()> {
        let _prof = crate::profile::scope("inplace");
        self.copy_(&Tensor::full_dtype(&[], value, self.dtype()))
    }

    /// Sets every element to zero.
    pub fn zero_(&self) -> Result<()> {
        self.fill_(0.0)
    }

    /// `self -= other` in place (the from-scratch SGD step `w -= lr * w.grad`).
    pub fn sub_(&self, other: &Tensor) -> Result<()> {
        self.check_inplace("sub_")?;
        self.add_scaled_(other, -1.0)
    }

    /// `self += alpha · other` in place, in one pass when both are contiguous and of the
    /// same shape and dtype (the SGD update `p -= lr · grad` as `p.add_scaled_(g, -lr)`);
    /// `other` broadcasts to `self`'s shape.
    pub fn add_scaled_(&self, other: &Tensor, alpha: f64) -> Result<()> {
        let _prof = crate::profile::scope("inplace");
        self.check_inplace("add_scaled_")?;
        self.same_device("add_scaled_", other)?;
        // Integer tensors (BatchNorm's i64 `num_batches_tracked += 1`) take the general path.
        let fast = self.device().is_cpu()
            && self.shape() == other.shape()
            && self.dtype() == other.dtype()
            && matches!(self.dtype(), DType::F32 | DType::F64)
            && self.0.layout.contiguous_range().is_some()
            && other.0.layout.contiguous_range().is_some()
            && !Arc::ptr_eq(&self.0.storage, &other.0.storage);
        if self.device().is_cuda()
            && self.shape() == other.shape()
            && self.dtype() == other.dtype()
            && self.dtype().is_float()
            && crate::cuda::native::axpy_(self, other, alpha)?
        {
            return Ok(());
        }
        if !fast {
            let v = crate::grad_mode::no_grad(|| {
                if alpha == 1.0 {
                    self.add(other)
                } else {
                    self.add(&other.mul_scalar(alpha)?)
                }
            })?;
            return self.copy_(&v);
        }
        let n = self.numel();
        let (dr, sr) = (
            self.0.layout.contiguous_range().expect("checked"),
            other.0.layout.contiguous_range().expect("checked"),
        );
        let src = other.storage();
        let mut dst = self.0.storage.write();
        match (dst.cpu_mut(), src.cpu()) {
            (CpuStorage::F32(d), CpuStorage::F32(s)) => axpy(&mut d[dr], &s[sr][..n], alpha as f32),
            (CpuStorage::F64(d), CpuStorage::F64(s)) => axpy(&mut d[dr], &s[sr][..n], alpha),
            _ => {
                return Err(Error::DTypeMismatch {
                    op: "add_scaled_",
                    expected: "a float tensor (f32 or f64)".into(),
                    got: self.dtype(),
                })
            }
        }
        Ok(())
    }

    /// `self += other` in place.
    pub fn add_(&self, other: &Tensor) -> Result<()> {
        let _prof = crate::profile::scope("inplace");
        self.check_inplace("add_")?;
        self.add_scaled_(other, 1.0)
    }

    /// `self *= value` in place.
    pub fn mul_scalar_(&self, value: f64) -> Result<()> {
        let _prof = crate::profile::scope("inplace");
        self.check_inplace("mul_scalar_")?;
        let v = crate::grad_mode::no_grad(|| self.mul_scalar(value))?;
        self.copy_(&v)
    }
}

/// `d += a·s`, elementwise, over two threads' halves when large (an optimiser's update of
/// W1's 784×256 weight ran at a twentieth of its step on one thread).
fn axpy<T>(d: &mut [T], s: &[T], a: T)
where
    T: Copy + Send + Sync + std::ops::Mul<Output = T> + std::ops::AddAssign,
{
    let run = |d: &mut [T], s: &[T]| {
        for (o, &x) in d.iter_mut().zip(s) {
            *o += a * x;
        }
    };
    if d.len() < crate::threads::PAR_MIN || crate::threads::num_threads() == 1 {
        return run(d, s);
    }
    use rayon::prelude::*;
    let chunk = d.len().div_ceil(crate::threads::num_threads());
    crate::threads::run(|| {
        d.par_chunks_mut(chunk)
            .zip(s.par_chunks(chunk))
            .for_each(|(d, s)| run(d, s))
    });
}
