//! Max and average pooling launchers, forward and backward.

use super::*;
use crate::cuda::native_nn::AxisRule;
use crate::cuda::op_codes::pool_mode;

// ------------------------------------------------------------------ pooling

/// One pooling axis: input length, output length and the window rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolAxis {
    /// Input length.
    pub(crate) len: usize,
    /// Output length.
    pub(crate) n: usize,
    /// The window rule.
    pub(crate) rule: AxisRule,
}

impl PoolAxis {
    /// Window `i` as (start, end, divisor count), exactly as `pool_win` in kernels.cu.
    pub(crate) fn window(&self, i: usize) -> (usize, usize, usize) {
        let (len, i) = (self.len as i64, i as i64);
        match self.rule {
            AxisRule::Adaptive => {
                let n = self.n as i64;
                let (st, en) = (i * len / n, ((i + 1) * len + n - 1) / n);
                (st as usize, en as usize, (en - st) as usize)
            }
            AxisRule::Max { k, s, p, d } => {
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
            AxisRule::Avg {
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
            AxisRule::Max { k, s, p, d } => (pool_mode::MAX, k, s, p, d, false),
            AxisRule::Avg {
                k,
                s,
                p,
                count_include_pad,
            } => (pool_mode::AVG, k, s, p, 1, count_include_pad),
            AxisRule::Adaptive => (pool_mode::ADAPTIVE, 1, 1, 0, 1, false),
        };
        if self.len == 0 || self.n == 0 || k == 0 || s == 0 || d == 0 {
            return Err(format!("CUDA: pooling: degenerate axis {self:?}"));
        }
        Ok(PoolAxisK {
            v: [mode as usize, self.len, self.n, k, s, p, d, cip as usize].map(|x| x as i64),
        })
    }
}

/// Kernel-side pooling axis; mirrors `struct PoolAxis` in kernels.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(super) struct PoolAxisK {
    v: [i64; 8],
}

/// Kernel-side pooling geometry; mirrors `struct PoolGeom` in kernels.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(super) struct PoolGeomK {
    planes: i64,
    r: PoolAxisK,
    c: PoolAxisK,
}

// SAFETY: POD (seventeen i64) with the C layout of `struct PoolGeom` in kernels.cu.
unsafe impl DeviceRepr for PoolGeomK {}

pub(super) fn pool_geom(
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

pub(super) fn check_extent(
    b: &Block,
    dt: Dt,
    off: usize,
    n: usize,
    what: &str,
) -> Result<(), String> {
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
