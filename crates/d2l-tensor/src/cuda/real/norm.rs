//! Batch and group normalisation launchers, forward and backward.

use super::*;

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
pub(super) struct NormGeomK {
    v: [i64; 4],
}

// SAFETY: four i64 in C order, identical to `struct NormGeom` in kernels.cu.
unsafe impl DeviceRepr for NormGeomK {}

/// Block size of the per-unit and per-run reductions: a power of two, 32..=256.
pub(super) fn reduce_config(items: usize, per_item: usize) -> LaunchConfig {
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
