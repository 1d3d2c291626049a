//! Elementwise launchers (unary, binary, compare, their backward rules) and row reductions, with the op-code tables that mirror `kernels.cu`.

use super::*;

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
