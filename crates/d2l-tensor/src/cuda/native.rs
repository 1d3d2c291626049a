//! The GPU kernels behind the engine's ops: each function returns `Ok(Some(buffer))` when
//! its inputs live on a real GPU and a kernel covers the case, and `Ok(None)` otherwise,
//! in which case the op takes its host path (inputs copied to the host, the CPU kernel,
//! the result copied back), which every op has.
//!
//! Simulated devices never take these paths. Setting `D2L_CUDA_KERNELS=0` sends every op
//! of a real GPU through the host path too (to tell a kernel bug from a plumbing bug).

#![cfg_attr(not(feature = "cuda"), allow(unused_variables))]

use crate::error::Result;
use crate::ops::elementwise::{BinaryOp, CmpOp, UnaryOp};
use crate::storage::Storage;
use crate::{DType, Layout, Tensor};

#[cfg(feature = "cuda")]
pub(super) mod imp {
    use super::super::real::{self, binary_op, cmp_op, reduce_kind, unary_op, Block, Dt, View};
    use super::super::{CudaStorage, Mem};
    use super::*;
    use crate::error::Error;
    use crate::Device;
    use std::sync::{OnceLock, RwLockReadGuard};

    fn enabled() -> bool {
        static ON: OnceLock<bool> = OnceLock::new();
        *ON.get_or_init(|| std::env::var("D2L_CUDA_KERNELS").map_or(true, |v| v.trim() != "0"))
    }

    /// The GPU ordinal when `t` lives on a real GPU and kernels are on.
    pub(crate) fn real_gpu(t: &Tensor) -> Option<usize> {
        match t.device() {
            Device::Cuda(i) if enabled() && !super::super::is_simulated() => Some(i),
            _ => None,
        }
    }

    pub(crate) fn dt(d: DType) -> Dt {
        match d {
            DType::F32 => Dt::F32,
            DType::F64 => Dt::F64,
            DType::I64 => Dt::I64,
            DType::U8 => Dt::U8,
        }
    }

    pub(crate) fn err(op: &'static str) -> impl Fn(String) -> Error {
        move |msg| Error::Backend { op, msg }
    }

    /// The read guard of a real-GPU tensor's buffer.
    pub(super) struct Held<'a>(RwLockReadGuard<'a, Storage>);

    impl Held<'_> {
        pub(super) fn block(&self) -> &Block {
            match &*self.0 {
                Storage::Cuda(CudaStorage {
                    mem: Mem::Real(b), ..
                }) => b,
                _ => unreachable!("real_gpu checked the device"),
            }
        }
    }

    pub(super) fn hold(t: &Tensor) -> Held<'_> {
        Held(t.raw_storage())
    }

    pub(super) fn view<'a>(h: &'a Held<'_>, l: &'a Layout) -> View<'a> {
        View::new(h.block(), l.offset, &l.shape, &l.strides)
    }

    /// Wraps a kernel's fresh contiguous result.
    pub(crate) fn wrap(block: Block, dtype: DType, len: usize, device: usize) -> Storage {
        Storage::Cuda(CudaStorage {
            dtype,
            len,
            device,
            mem: Mem::Real(block),
        })
    }

    pub(super) fn unary_code(op: UnaryOp) -> (u32, f64, f64) {
        match op {
            UnaryOp::Neg => (unary_op::NEG, 0.0, 0.0),
            UnaryOp::Abs => (unary_op::ABS, 0.0, 0.0),
            UnaryOp::Exp => (unary_op::EXP, 0.0, 0.0),
            UnaryOp::Log => (unary_op::LOG, 0.0, 0.0),
            UnaryOp::Log1p => (unary_op::LOG1P, 0.0, 0.0),
            UnaryOp::Sqrt => (unary_op::SQRT, 0.0, 0.0),
            UnaryOp::Rsqrt => (unary_op::RSQRT, 0.0, 0.0),
            UnaryOp::Sin => (unary_op::SIN, 0.0, 0.0),
            UnaryOp::Cos => (unary_op::COS, 0.0, 0.0),
            UnaryOp::Tanh => (unary_op::TANH, 0.0, 0.0),
            UnaryOp::Sigmoid => (unary_op::SIGMOID, 0.0, 0.0),
            UnaryOp::Relu => (unary_op::RELU, 0.0, 0.0),
            UnaryOp::Gelu => (unary_op::GELU, 0.0, 0.0),
            UnaryOp::Softplus => (unary_op::SOFTPLUS, 0.0, 0.0),
            UnaryOp::LeakyRelu(s) => (unary_op::LEAKY_RELU, s, 0.0),
            UnaryOp::Clamp(lo, hi) => (unary_op::CLAMP, lo, hi),
            UnaryOp::PowScalar(p) => (unary_op::POW_SCALAR, p, 0.0),
            UnaryOp::AddScalar(c) => (unary_op::ADD_SCALAR, c, 0.0),
            UnaryOp::MulScalar(c) => (unary_op::MUL_SCALAR, c, 0.0),
        }
    }

    /// The backward code of an op whose gradient is computed from its output.
    pub(super) fn from_output_code(op: UnaryOp) -> Option<u32> {
        Some(match op {
            UnaryOp::Exp => unary_op::EXP_FROM_OUTPUT,
            UnaryOp::Sqrt => unary_op::SQRT_FROM_OUTPUT,
            UnaryOp::Rsqrt => unary_op::RSQRT_FROM_OUTPUT,
            UnaryOp::Tanh => unary_op::TANH_FROM_OUTPUT,
            UnaryOp::Sigmoid => unary_op::SIGMOID_FROM_OUTPUT,
            _ => return None,
        })
    }

    pub(super) fn binary_code(op: BinaryOp) -> u32 {
        match op {
            BinaryOp::Add => binary_op::ADD,
            BinaryOp::Sub => binary_op::SUB,
            BinaryOp::Mul => binary_op::MUL,
            BinaryOp::Div => binary_op::DIV,
            BinaryOp::Pow => binary_op::POW,
            BinaryOp::Maximum => binary_op::MAXIMUM,
            BinaryOp::Minimum => binary_op::MINIMUM,
        }
    }

    pub(super) fn cmp_code(op: CmpOp) -> u32 {
        match op {
            CmpOp::Eq => cmp_op::EQ,
            CmpOp::Ne => cmp_op::NE,
            CmpOp::Lt => cmp_op::LT,
            CmpOp::Le => cmp_op::LE,
            CmpOp::Gt => cmp_op::GT,
            CmpOp::Ge => cmp_op::GE,
        }
    }

    /// A contiguous copy of `t` with its dims reordered by `perm` (the kernels reduce
    /// along the last axis of a contiguous buffer).
    pub(super) fn permuted_copy(t: &Tensor, perm: &[usize]) -> Result<Block> {
        let l = t.layout();
        let shape: Vec<usize> = perm.iter().map(|&d| l.shape[d]).collect();
        let strides: Vec<usize> = perm.iter().map(|&d| l.strides[d]).collect();
        let h = hold(t);
        real::strided_copy(
            dt(t.dtype()),
            View::new(h.block(), l.offset, &shape, &strides),
        )
        .map_err(err("contiguous"))
    }

    pub(super) use real::{reduce_rows, softmax_rows};
    pub(super) use reduce_kind::{MAX, MIN, SUM};
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn prod(s: &[usize]) -> usize {
    s.iter().product()
}

/// `op(x)` elementwise.
pub(crate) fn unary(x: &Tensor, op: UnaryOp) -> Result<Option<Storage>> {
    #[cfg(feature = "cuda")]
    if let Some(d) = imp::real_gpu(x) {
        let (code, a, b) = imp::unary_code(op);
        let h = imp::hold(x);
        let out = super::real::unary(code, a, b, imp::dt(x.dtype()), imp::view(&h, x.layout()))
            .map_err(imp::err("unary"))?;
        return Ok(Some(imp::wrap(out, x.dtype(), x.numel(), d)));
    }
    Ok(None)
}

/// `g · f'(x)` (or from the output `y` for the ops that keep it).
pub(crate) fn unary_backward(op: UnaryOp, saved: &Tensor, g: &Tensor) -> Result<Option<Storage>> {
    #[cfg(feature = "cuda")]
    if let Some(d) = imp::real_gpu(saved) {
        let (code, a, b) = imp::unary_code(op);
        let code = if op.grad_from_output() {
            match imp::from_output_code(op) {
                Some(c) => c,
                None => return Ok(None),
            }
        } else {
            code
        };
        let (hs, hg) = (imp::hold(saved), imp::hold(g));
        let out = super::real::unary_backward(
            code,
            a,
            b,
            imp::dt(saved.dtype()),
            imp::view(&hs, saved.layout()),
            imp::view(&hg, g.layout()),
        )
        .map_err(imp::err("unary_grad"))?;
        return Ok(Some(imp::wrap(out, saved.dtype(), saved.numel(), d)));
    }
    Ok(None)
}

/// `a op b` with both layouts already broadcast to `shape`.
pub(crate) fn binary(
    a: &Tensor,
    la: &Layout,
    b: &Tensor,
    lb: &Layout,
    shape: &[usize],
    op: BinaryOp,
) -> Result<Option<Storage>> {
    #[cfg(feature = "cuda")]
    if let Some(d) = imp::real_gpu(a) {
        let int_ok = matches!(
            op,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Maximum | BinaryOp::Minimum
        );
        if !a.dtype().is_float() && !int_ok {
            return Ok(None);
        }
        let (ha, hb) = (imp::hold(a), imp::hold(b));
        let out = super::real::binary(
            imp::binary_code(op),
            imp::dt(a.dtype()),
            imp::view(&ha, la),
            imp::view(&hb, lb),
            shape,
        )
        .map_err(imp::err("binary"))?;
        return Ok(Some(imp::wrap(out, a.dtype(), prod(shape), d)));
    }
    Ok(None)
}

/// A 0/1 `u8` mask of `a op b`, layouts broadcast to `shape`.
pub(crate) fn compare(
    a: &Tensor,
    la: &Layout,
    b: &Tensor,
    lb: &Layout,
    shape: &[usize],
    op: CmpOp,
) -> Result<Option<Storage>> {
    #[cfg(feature = "cuda")]
    if let Some(d) = imp::real_gpu(a) {
        let (ha, hb) = (imp::hold(a), imp::hold(b));
        let out = super::real::compare(
            imp::cmp_code(op),
            imp::dt(a.dtype()),
            imp::view(&ha, la),
            imp::view(&hb, lb),
            shape,
        )
        .map_err(imp::err("compare"))?;
        return Ok(Some(imp::wrap(out, DType::U8, prod(shape), d)));
    }
    Ok(None)
}

/// `cond ? a : b`, layouts broadcast to `shape`.
pub(crate) fn where_cond(
    cond: &Tensor,
    lc: &Layout,
    a: &Tensor,
    la: &Layout,
    b: &Tensor,
    lb: &Layout,
    shape: &[usize],
) -> Result<Option<Storage>> {
    #[cfg(feature = "cuda")]
    if let Some(d) = imp::real_gpu(a) {
        let (hc, ha, hb) = (imp::hold(cond), imp::hold(a), imp::hold(b));
        let out = super::real::where_(
            imp::view(&hc, lc),
            imp::dt(a.dtype()),
            imp::view(&ha, la),
            imp::view(&hb, lb),
            shape,
        )
        .map_err(imp::err("where"))?;
        return Ok(Some(imp::wrap(out, a.dtype(), prod(shape), d)));
    }
    Ok(None)
}

/// A row-major copy of `x`, converted to `to`.
pub(crate) fn cast(x: &Tensor, to: DType) -> Result<Option<Storage>> {
    #[cfg(feature = "cuda")]
    if let Some(d) = imp::real_gpu(x) {
        let h = imp::hold(x);
        let out = super::real::cast(imp::dt(x.dtype()), imp::dt(to), imp::view(&h, x.layout()))
            .map_err(imp::err("to_dtype"))?;
        return Ok(Some(imp::wrap(out, to, x.numel(), d)));
    }
    Ok(None)
}

/// The sum over `dims` (sorted, distinct), in the order of the kept dims.
pub(crate) fn sum(x: &Tensor, dims: &[usize]) -> Result<Option<Storage>> {
    #[cfg(feature = "cuda")]
    if let Some(d) = imp::real_gpu(x) {
        let kept: Vec<usize> = (0..x.rank()).filter(|i| !dims.contains(i)).collect();
        let rows = kept.iter().map(|&i| x.shape()[i]).product::<usize>();
        let cols = dims.iter().map(|&i| x.shape()[i]).product::<usize>();
        if rows == 0 || cols == 0 {
            return Ok(None);
        }
        let mut perm = kept;
        perm.extend_from_slice(dims);
        let buf = imp::permuted_copy(x, &perm)?;
        let (out, _) = imp::reduce_rows(imp::SUM, imp::dt(x.dtype()), &buf, 0, rows, cols)
            .map_err(imp::err("sum"))?;
        return Ok(Some(imp::wrap(out, x.dtype(), rows, d)));
    }
    Ok(None)
}

/// Max or min along `dim` with the first index of the extremum.
pub(crate) fn extremum(x: &Tensor, dim: usize, max: bool) -> Result<Option<(Storage, Storage)>> {
    #[cfg(feature = "cuda")]
    if let Some(d) = imp::real_gpu(x) {
        let cols = x.shape()[dim];
        let rows = x.numel() / cols.max(1);
        if rows == 0 || cols == 0 {
            return Ok(None);
        }
        let mut perm: Vec<usize> = (0..x.rank()).filter(|&i| i != dim).collect();
        perm.push(dim);
        let buf = imp::permuted_copy(x, &perm)?;
        let kind = if max { imp::MAX } else { imp::MIN };
        let (vals, idx) = imp::reduce_rows(kind, imp::dt(x.dtype()), &buf, 0, rows, cols)
            .map_err(imp::err("max/min"))?;
        let Some(idx) = idx else { return Ok(None) };
        return Ok(Some((
            imp::wrap(vals, x.dtype(), rows, d),
            imp::wrap(idx, DType::I64, rows, d),
        )));
    }
    Ok(None)
}

/// Softmax (or log-softmax) along `dim`, the result laid out with `dim` last.
pub(crate) fn softmax(x: &Tensor, dim: usize, log: bool) -> Result<Option<Storage>> {
    #[cfg(feature = "cuda")]
    if let Some(d) = imp::real_gpu(x) {
        let cols = x.shape()[dim];
        let rows = x.numel() / cols.max(1);
        if rows == 0 || cols == 0 {
            return Ok(None);
        }
        let mut perm: Vec<usize> = (0..x.rank()).filter(|&i| i != dim).collect();
        perm.push(dim);
        let buf = imp::permuted_copy(x, &perm)?;
        let out = imp::softmax_rows(imp::dt(x.dtype()), &buf, 0, rows, cols, log)
            .map_err(imp::err("softmax"))?;
        return Ok(Some(imp::wrap(out, x.dtype(), x.numel(), d)));
    }
    Ok(None)
}

/// A row-major copy of `x`.
pub(crate) fn contiguous(x: &Tensor) -> Result<Option<Storage>> {
    #[cfg(feature = "cuda")]
    if let Some(d) = imp::real_gpu(x) {
        let h = imp::hold(x);
        let out = super::real::strided_copy(imp::dt(x.dtype()), imp::view(&h, x.layout()))
            .map_err(imp::err("contiguous"))?;
        return Ok(Some(imp::wrap(out, x.dtype(), x.numel(), d)));
    }
    Ok(None)
}

/// How one operand of a batched product is laid out for cuBLAS: offset, whether it is
/// stored transposed, and the stride between matrices (0: one matrix for the batch).
#[cfg(feature = "cuda")]
fn gemm_operand(l: &Layout, nb: usize, rows: usize, cols: usize) -> Option<(usize, bool, usize)> {
    let (rs, cs) = (l.strides[nb], l.strides[nb + 1]);
    let trans = if cs == 1 && (rs == cols || rows <= 1) {
        false
    } else if rs == 1 && (cs == rows || cols <= 1) {
        true
    } else {
        return None;
    };
    let bstrides = &l.strides[..nb];
    let bshape = &l.shape[..nb];
    if bstrides.iter().all(|&s| s == 0) {
        return Some((l.offset, trans, 0));
    }
    // The batch dims must flatten to one stride.
    for i in 0..nb.saturating_sub(1) {
        if bstrides[i] != bstrides[i + 1] * bshape[i + 1] && bshape[i] > 1 {
            return None;
        }
    }
    Some((l.offset, trans, bstrides[nb - 1]))
}

/// The batched product of `a` `[*batch, m, k]` and `b` `[*batch, k, n]` (layouts already
/// broadcast to those shapes) through cuBLAS.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    a: &Tensor,
    la: &Layout,
    b: &Tensor,
    lb: &Layout,
    batch: &[usize],
    m: usize,
    k: usize,
    n: usize,
) -> Result<Option<Storage>> {
    #[cfg(feature = "cuda")]
    if let Some(d) = imp::real_gpu(a) {
        let nb = batch.len();
        let count = prod(batch);
        if count == 0 || m == 0 || n == 0 || k == 0 {
            return Ok(None);
        }
        let dtype = a.dtype();
        // Operands cuBLAS cannot read as they are are copied to row-major first.
        let prep = |t: &Tensor,
                    l: &Layout,
                    r: usize,
                    c: usize|
         -> Result<(Option<super::real::Block>, usize, bool, usize)> {
            match gemm_operand(l, nb, r, c) {
                Some((off, tr, bs)) => Ok((None, off, tr, bs)),
                None => {
                    let h = imp::hold(t);
                    let blk = super::real::strided_copy(imp::dt(dtype), imp::view(&h, l))
                        .map_err(imp::err("matmul"))?;
                    Ok((Some(blk), 0, false, r * c))
                }
            }
        };
        let (ca, a_off, a_tr, a_bs) = prep(a, la, m, k)?;
        let (cb, b_off, b_tr, b_bs) = prep(b, lb, k, n)?;
        let (ha, hb) = (imp::hold(a), imp::hold(b));
        let ablk = ca.as_ref().unwrap_or_else(|| ha.block());
        let bblk = cb.as_ref().unwrap_or_else(|| hb.block());
        let out = super::real::matmul(
            imp::dt(dtype),
            ablk,
            a_off,
            bblk,
            b_off,
            count,
            m,
            k,
            n,
            a_tr,
            b_tr,
            if count == 1 { 0 } else { a_bs },
            if count == 1 { 0 } else { b_bs },
        )
        .map_err(imp::err("matmul"))?;
        return Ok(Some(imp::wrap(out, dtype, count * m * n, d)));
    }
    Ok(None)
}

/// `dst += alpha · src` in place for two contiguous tensors of one shape and float
/// dtype; `Ok(false)` when not on a real GPU.
pub(crate) fn axpy_(dst: &Tensor, src: &Tensor, alpha: f64) -> Result<bool> {
    #[cfg(feature = "cuda")]
    if let (Some(_), Some(rs), Some(rd)) = (
        imp::real_gpu(dst),
        src.layout().contiguous_range(),
        dst.layout().contiguous_range(),
    ) {
        if rs.start != 0 || rd.start != 0 || dst.shares_storage(src) {
            return Ok(false);
        }
        let hs = imp::hold(src);
        let hd = imp::hold(dst);
        super::real::axpy_(
            hd.block(),
            hs.block(),
            alpha,
            dst.numel(),
            imp::dt(dst.dtype()),
        )
        .map_err(imp::err("add_scaled_"))?;
        return Ok(true);
    }
    Ok(false)
}

/// The GPU side of `conv2d` (groups = 1): im2col, then one cuBLAS product per sample.
/// Each function returns `Ok(None)` for tensors not on a real GPU or grouped convs.
pub(crate) mod conv {
    #[cfg(feature = "cuda")]
    use super::imp;
    use crate::cpu::conv::Geom;
    use crate::error::Result;
    use crate::storage::Storage;
    use crate::Tensor;

    #[cfg(feature = "cuda")]
    use super::super::real::{self, Block, ConvGeom, View};

    #[cfg(feature = "cuda")]
    fn cg(g: &Geom) -> ConvGeom {
        ConvGeom {
            n: g.n,
            c: g.ci,
            h: g.h,
            w: g.w,
            kh: g.kh,
            kw: g.kw,
            sh: g.sh,
            sw: g.sw,
            pt: g.pt,
            pl: g.pl,
            dh: g.dh,
            dw: g.dw,
            oh: g.oh,
            ow: g.ow,
        }
    }

    /// `out[n, c, p] += v[c]` over a contiguous `[n, c, p]` block, in a fresh block.
    #[cfg(feature = "cuda")]
    fn add_channel(
        dt: real::Dt,
        out: &Block,
        (n, c, p): (usize, usize, usize),
        v: &Tensor,
    ) -> Result<Block> {
        let v = v.contiguous()?;
        let hv = imp::hold(&v);
        let shape = [n, c, p];
        real::binary(
            real::binary_op::ADD,
            dt,
            View::new(out, 0, &shape, &[c * p, p, 1]),
            View::new(hv.block(), v.layout().offset, &shape, &[0, 1, 0]),
            &shape,
        )
        .map_err(imp::err("conv2d"))
    }

    /// Sums a contiguous `[a, b, c]` block over `a` and `c`: `[b]`.
    #[cfg(feature = "cuda")]
    fn sum_outer_inner(dt: real::Dt, x: &Block, (a, b, c): (usize, usize, usize)) -> Result<Block> {
        let moved = real::strided_copy(dt, View::new(x, 0, &[b, a, c], &[c, b * c, 1]))
            .map_err(imp::err("conv2d"))?;
        let (s, _) = real::reduce_rows(real::reduce_kind::SUM, dt, &moved, 0, b, a * c)
            .map_err(imp::err("conv2d"))?;
        Ok(s)
    }

    /// `conv(x, w) [+ b]`.
    pub(crate) fn forward(
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        g: &Geom,
    ) -> Result<Option<Storage>> {
        #[cfg(feature = "cuda")]
        if let (Some(d), 1) = (imp::real_gpu(x), g.groups) {
            let dt = imp::dt(x.dtype());
            let (x, w) = (x.contiguous()?, w.contiguous()?);
            let (hx, hw) = (imp::hold(&x), imp::hold(&w));
            let geom = cg(g);
            let (k, p) = (g.ci * g.kh * g.kw, g.oh * g.ow);
            let cols = real::im2col(dt, hx.block(), x.layout().offset, g.ci * g.h * g.w, &geom)
                .map_err(imp::err("conv2d"))?;
            let mut out = real::matmul(
                dt,
                hw.block(),
                w.layout().offset,
                &cols,
                0,
                g.n,
                g.co,
                k,
                p,
                false,
                false,
                0,
                k * p,
            )
            .map_err(imp::err("conv2d"))?;
            if let Some(b) = b {
                out = add_channel(dt, &out, (g.n, g.co, p), b)?;
            }
            return Ok(Some(imp::wrap(out, x.dtype(), g.n * g.co * p, d)));
        }
        Ok(None)
    }

    /// The adjoint in the input, `[+ b]` over the input channels.
    pub(crate) fn backward_input(
        gy: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        g: &Geom,
    ) -> Result<Option<Storage>> {
        #[cfg(feature = "cuda")]
        if let (Some(d), 1) = (imp::real_gpu(gy), g.groups) {
            let dt = imp::dt(gy.dtype());
            let (gy, w) = (gy.contiguous()?, w.contiguous()?);
            let (hg, hw) = (imp::hold(&gy), imp::hold(&w));
            let (k, p) = (g.ci * g.kh * g.kw, g.oh * g.ow);
            // cols[n] = Wᵀ · gy[n]: W is stored [co, k], i.e. Wᵀ transposed.
            let cols = real::matmul(
                dt,
                hw.block(),
                w.layout().offset,
                hg.block(),
                gy.layout().offset,
                g.n,
                k,
                g.co,
                p,
                true,
                false,
                0,
                g.co * p,
            )
            .map_err(imp::err("conv2d_backward"))?;
            let mut dx = real::col2im(dt, &cols, 0, &cg(g)).map_err(imp::err("conv2d_backward"))?;
            if let Some(b) = b {
                dx = add_channel(dt, &dx, (g.n, g.ci, g.h * g.w), b)?;
            }
            return Ok(Some(imp::wrap(dx, gy.dtype(), g.n * g.ci * g.h * g.w, d)));
        }
        Ok(None)
    }

    /// The gradient of the weight: `Σₙ gy[n] · cols[n]ᵀ`.
    pub(crate) fn backward_weight(x: &Tensor, gy: &Tensor, g: &Geom) -> Result<Option<Storage>> {
        #[cfg(feature = "cuda")]
        if let (Some(d), 1) = (imp::real_gpu(x), g.groups) {
            let dt = imp::dt(x.dtype());
            let (x, gy) = (x.contiguous()?, gy.contiguous()?);
            let (hx, hg) = (imp::hold(&x), imp::hold(&gy));
            let (k, p) = (g.ci * g.kh * g.kw, g.oh * g.ow);
            let cols = real::im2col(dt, hx.block(), x.layout().offset, g.ci * g.h * g.w, &cg(g))
                .map_err(imp::err("conv2d_backward"))?;
            // Per sample [co, p] · ([k, p])ᵀ, stored as [n, co, k]; then summed over n.
            let per = real::matmul(
                dt,
                hg.block(),
                gy.layout().offset,
                &cols,
                0,
                g.n,
                g.co,
                p,
                k,
                false,
                true,
                g.co * p,
                k * p,
            )
            .map_err(imp::err("conv2d_backward"))?;
            let dw = sum_outer_inner(dt, &per, (g.n, g.co * k, 1))?;
            return Ok(Some(imp::wrap(dw, x.dtype(), g.co * k, d)));
        }
        Ok(None)
    }

    /// The gradient of the bias: `gy` `[n, c, p]` summed over `n` and `p`.
    pub(crate) fn bias_grad(gy: &Tensor, n: usize, c: usize, p: usize) -> Result<Option<Storage>> {
        #[cfg(feature = "cuda")]
        if let Some(d) = imp::real_gpu(gy) {
            let dt = imp::dt(gy.dtype());
            let gy = gy.contiguous()?;
            let hg = imp::hold(&gy);
            let blk = if gy.layout().offset == 0 {
                sum_outer_inner(dt, hg.block(), (n, c, p))?
            } else {
                let moved = real::strided_copy(
                    dt,
                    View::new(hg.block(), gy.layout().offset, &[c, n, p], &[p, c * p, 1]),
                )
                .map_err(imp::err("conv2d_backward"))?;
                real::reduce_rows(real::reduce_kind::SUM, dt, &moved, 0, c, n * p)
                    .map_err(imp::err("conv2d_backward"))?
                    .0
            };
            return Ok(Some(imp::wrap(blk, gy.dtype(), c, d)));
        }
        Ok(None)
    }
}

/// One parameter's tensors for [`fused_adam_`]: all contiguous, of one float dtype, on
/// one GPU.
#[derive(Debug, Clone, Copy)]
pub struct AdamTensors<'a> {
    /// The parameter (updated in place).
    pub param: &'a Tensor,
    /// Its gradient.
    pub grad: &'a Tensor,
    /// The first-moment estimate (updated in place).
    pub exp_avg: &'a Tensor,
    /// The second-moment estimate (updated in place).
    pub exp_avg_sq: &'a Tensor,
    /// The running maximum of the second moment (AMSGrad only; updated in place).
    pub max_exp_avg_sq: Option<&'a Tensor>,
}

/// The hyper-parameters of one Adam/AdamW step, as PyTorch's `torch.optim.Adam(W)`.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f64,
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε (added to the bias-corrected √v).
    pub eps: f64,
    /// Weight decay λ.
    pub weight_decay: f64,
    /// AdamW's decoupled decay (`p ← p(1 − lr·λ)`) instead of L2 (`g ← g + λp`).
    pub decoupled: bool,
    /// AMSGrad.
    pub amsgrad: bool,
    /// The step number after this update (1 for the first).
    pub step: u64,
}

/// The Adam update of many parameters in a few kernel launches (16 tensors each), when
/// they all live on one real GPU, are contiguous from offset 0 and share a float dtype.
/// Returns `Ok(false)` (and changes nothing) otherwise: the caller then takes its
/// per-tensor path. The optimisers call this first.
pub fn fused_adam_(items: &[AdamTensors<'_>], h: &AdamStep) -> Result<bool> {
    #[cfg(feature = "cuda")]
    {
        let Some(first) = items.first() else {
            return Ok(false);
        };
        let Some(dev) = imp::real_gpu(first.param) else {
            return Ok(false);
        };
        let dtype = first.param.dtype();
        let all: Vec<&Tensor> = items
            .iter()
            .flat_map(|t| {
                [t.param, t.grad, t.exp_avg, t.exp_avg_sq]
                    .into_iter()
                    .chain(t.max_exp_avg_sq)
            })
            .collect();
        let ok = dtype.is_float()
            && (!h.amsgrad || items.iter().all(|t| t.max_exp_avg_sq.is_some()))
            && all.iter().all(|t| {
                t.device() == crate::Device::Cuda(dev)
                    && t.dtype() == dtype
                    && t.layout().contiguous_range().is_some_and(|r| r.start == 0)
            })
            && items.iter().all(|t| {
                let n = t.param.numel();
                [t.grad, t.exp_avg, t.exp_avg_sq]
                    .into_iter()
                    .chain(t.max_exp_avg_sq)
                    .all(|u| u.numel() == n && !u.shares_storage(t.param))
            });
        if !ok {
            return Ok(false);
        }
        let held: Vec<imp::Held<'_>> = all.iter().map(|t| imp::hold(t)).collect();
        let mut params = Vec::with_capacity(items.len());
        let mut k = 0;
        for t in items {
            let param = held[k].block();
            let grad = held[k + 1].block();
            let exp_avg = held[k + 2].block();
            let exp_avg_sq = held[k + 3].block();
            k += 4;
            let max_exp_avg_sq = if t.max_exp_avg_sq.is_some() {
                k += 1;
                Some(held[k - 1].block())
            } else {
                None
            };
            params.push(super::real::AdamParam {
                param,
                grad,
                exp_avg,
                exp_avg_sq,
                max_exp_avg_sq,
                n: t.param.numel(),
            });
        }
        let hyper = super::real::AdamHyper {
            lr: h.lr,
            beta1: h.beta1,
            beta2: h.beta2,
            eps: h.eps,
            weight_decay: h.weight_decay,
            decoupled: h.decoupled,
            amsgrad: h.amsgrad,
            step: h.step,
        };
        super::real::adam_multi(imp::dt(dtype), &params, &hyper).map_err(imp::err("adam"))?;
        Ok(true)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (items, h);
        Ok(false)
    }
}

#[cfg(all(test, feature = "cuda"))]
mod tests {
    use super::gemm_operand;
    use crate::Layout;

    #[test]
    fn operands_are_read_in_place_or_copied() {
        // Row-major [2, 3, 4] batch of matrices: stride 12 between them.
        let l = Layout::contiguous(&[2, 3, 4]);
        assert_eq!(gemm_operand(&l, 1, 3, 4), Some((0, false, 12)));
        // Its transpose in the last two dims: stored as [k, m] per matrix.
        let t = l.permute(&[0, 2, 1]).unwrap();
        assert_eq!(gemm_operand(&t, 1, 4, 3), Some((0, true, 12)));
        // One matrix broadcast over a batch of 5: stride 0.
        let b = Layout::contiguous(&[3, 4])
            .broadcast_to("b", &[5, 3, 4])
            .unwrap();
        assert_eq!(gemm_operand(&b, 1, 3, 4), Some((0, false, 0)));
        // Two batch dims that flatten to one stride.
        let two = Layout::contiguous(&[2, 5, 3, 4]);
        assert_eq!(gemm_operand(&two, 2, 3, 4), Some((0, false, 12)));
        // A batch dim permuted away from row-major order cannot be one stride: copy.
        let mixed = two.permute(&[1, 0, 2, 3]).unwrap();
        assert_eq!(gemm_operand(&mixed, 2, 3, 4), None);
        // Neither row- nor column-major (a strided slice of columns): copy.
        let odd = Layout::contiguous(&[3, 8]).narrow(1, 0, 4);
        assert_eq!(gemm_operand(&odd, 0, 3, 4), None);
    }
}
