//! Elementwise launchers (unary, binary, compare, their backward rules) and row reductions;
//! their op codes are the tables of `cuda/op_codes.rs`, shared with `kernels.cu`.

use super::*;
pub(crate) use crate::cuda::op_codes::{binary_op, cmp_op, reduce_kind, unary_op};

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
/// for codes up to [`unary_op::LAST`], or the output y for the `*_FROM_OUTPUT` codes. `saved` and `g` must have the same shape (own strides).
pub(crate) fn unary_backward(
    op: u32,
    a: f64,
    b: f64,
    dt: Dt,
    saved: View<'_>,
    g: View<'_>,
) -> Result<Block, String> {
    need_float(dt, "unary_backward")?;
    let from_output = unary_op::EXP_FROM_OUTPUT..=unary_op::RELU_FROM_OUTPUT;
    if op > unary_op::LAST && !from_output.contains(&op) {
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
        Dt::F32 | Dt::F64 => binary_op::ALL.iter().any(|&(_, c)| c == op),
        Dt::I64 | Dt::U8 => [
            binary_op::ADD,
            binary_op::SUB,
            binary_op::MUL,
            binary_op::MAXIMUM,
            binary_op::MINIMUM,
        ]
        .contains(&op),
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
pub(super) fn launch_pairwise(
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

/// Elementwise comparison (see [`cmp_op`]) broadcast to `out_shape`;
/// returns a u8 block of 0/1. All four dtypes.
pub(crate) fn compare(
    op: u32,
    dt: Dt,
    a: View<'_>,
    b: View<'_>,
    out_shape: &[usize],
) -> Result<Block, String> {
    if !cmp_op::ALL.iter().any(|&(_, c)| c == op) {
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

pub(super) fn row_config(rows: usize, cols: usize) -> LaunchConfig {
    let threads = cols.clamp(32, 256).next_power_of_two().min(256) as u32;
    let blocks = (rows as u64).clamp(1, MAX_BLOCKS) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

pub(super) fn check_rows(
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
        reduce_kind::SUM if dt == Dt::U8 => {
            return Err("CUDA: sum of u8 is not supported (cast first)".into())
        }
        reduce_kind::SUM => {}
        reduce_kind::MAX | reduce_kind::MIN if cols == 0 => {
            return Err("CUDA: max/min over an empty dimension".into());
        }
        reduce_kind::MAX | reduce_kind::MIN => {}
        _ => return Err(format!("CUDA: unknown reduction kind {kind}")),
    }
    check_rows(x, off, dt, rows, cols, "reduce_rows")?;
    let d = x.dev;
    let out = alloc_on(d, rows * dt.size())?;
    let arg = if kind == reduce_kind::SUM {
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
