//! The GPU kernels behind pooling and batch / group normalisation, in the manner of
//! [`super::native`]: each function returns `Ok(Some(..))` when its input lives on a real
//! GPU (and kernels are on, see `D2L_CUDA_KERNELS`), and `Ok(None)` otherwise, in which
//! case the op takes its host path. Simulated devices never take these paths.

#![cfg_attr(not(feature = "cuda"), allow(unused_variables, dead_code))]

use crate::cpu::norm::{Geom as NormGeom, Stats, Units};
use crate::cpu::pool::Geom as PoolGeom;
use crate::error::Result;
use crate::storage::Storage;
use crate::Tensor;

/// How the windows of one pooling axis were built (ops/pool.rs), so that a kernel can
/// compute them instead of reading lists (`pool_win` in kernels.cu); checked against the
/// [`PoolGeom`] before use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AxisRule {
    /// Max pooling: kernel, stride, padding, dilation.
    Max {
        /// Kernel size.
        k: usize,
        /// Stride.
        s: usize,
        /// Padding.
        p: usize,
        /// Dilation.
        d: usize,
    },
    /// Average pooling: kernel, stride, padding, whether the padding counts.
    Avg {
        /// Kernel size.
        k: usize,
        /// Stride.
        s: usize,
        /// Padding.
        p: usize,
        /// `count_include_pad`.
        count_include_pad: bool,
    },
    /// Adaptive pooling.
    Adaptive,
}

/// The window rules of the row and column axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolRules {
    /// Rows (H).
    pub(crate) rows: AxisRule,
    /// Columns (W).
    pub(crate) cols: AxisRule,
}

/// Normalisation statistics kept on the GPU between forward and backward (the f64
/// block `[mean, var, istd]` per unit); empty without the `cuda` feature.
#[derive(Debug)]
pub(crate) struct DevStats {
    #[cfg(feature = "cuda")]
    block: super::real::Block,
}

/// The result of [`norm_forward`] on a GPU.
pub(crate) struct NormFwd {
    /// The normalised output (contiguous, the input's shape).
    pub(crate) y: Storage,
    /// The statistics on the host, when asked for.
    pub(crate) stats: Option<Stats>,
    /// The statistics on the device, for the backward.
    pub(crate) dev: DevStats,
}

#[cfg(feature = "cuda")]
mod imp {
    use super::super::real::{self, Block, PoolAxis};
    use super::super::{CudaStorage, Mem};
    use super::*;
    use crate::error::Error;
    use crate::storage::CpuStorage;
    use crate::DType;
    use std::sync::RwLockReadGuard;

    pub(super) use super::super::native::imp::{dt, err, wrap};

    /// The GPU ordinal when `t` lives on a real GPU, kernels are on and its dtype is float.
    pub(super) fn real_gpu(t: &Tensor) -> Option<usize> {
        super::super::native::imp::real_gpu(t).filter(|_| t.dtype().is_float())
    }

    /// The read guard of a real-GPU tensor's buffer.
    pub(super) struct Held<'a>(RwLockReadGuard<'a, Storage>);

    impl Held<'_> {
        /// The device block (an error if the buffer is not on a real GPU).
        pub(super) fn block(&self, op: &'static str) -> Result<&Block> {
            match &*self.0 {
                Storage::Cuda(CudaStorage {
                    mem: Mem::Real(b), ..
                }) => Ok(b),
                _ => Err(Error::Backend {
                    op,
                    msg: "CUDA: expected a tensor on a real GPU".into(),
                }),
            }
        }
    }

    pub(super) fn hold(t: &Tensor) -> Held<'_> {
        Held(t.raw_storage())
    }

    /// A launcher of [`super::super::real::avg_pool_forward`] or `_backward`.
    pub(super) type AvgPoolLaunch = fn(
        super::super::real::Dt,
        &Block,
        usize,
        usize,
        &PoolAxis,
        &PoolAxis,
    ) -> std::result::Result<Block, String>;

    /// One pass of average pooling (forward or backward, `launch`) over `t`, `plane`
    /// elements per output plane; `None` off a real GPU or when the windows have no rule.
    pub(super) fn avg_pool_pass(
        t: &Tensor,
        geom: &PoolGeom,
        rules: &PoolRules,
        op: &'static str,
        plane: usize,
        launch: AvgPoolLaunch,
    ) -> Result<Option<Storage>> {
        let Some(d) = real_gpu(t) else {
            return Ok(None);
        };
        let Some((rows, cols)) = axes(geom, rules) else {
            return Ok(None);
        };
        let tc = t.contiguous()?;
        let h = hold(&tc);
        let out = launch(
            dt(t.dtype()),
            h.block(op)?,
            tc.layout().offset,
            geom.planes,
            &rows,
            &cols,
        )
        .map_err(err(op))?;
        Ok(Some(wrap(out, t.dtype(), geom.planes * plane, d)))
    }

    /// The kernel-side axes of a geometry, or `None` when the rules do not give
    /// exactly the geometry's windows.
    pub(super) fn axes(g: &PoolGeom, r: &PoolRules) -> Option<(PoolAxis, PoolAxis)> {
        let rows = PoolAxis {
            len: g.h,
            n: g.rows.len(),
            rule: r.rows,
        };
        let cols = PoolAxis {
            len: g.w,
            n: g.cols.len(),
            rule: r.cols,
        };
        let dil = |rule: AxisRule| match rule {
            AxisRule::Max { d, .. } => d,
            _ => 1,
        };
        let same = |ax: &PoolAxis, wins: &[crate::cpu::pool::Win]| {
            wins.iter()
                .enumerate()
                .all(|(i, w)| ax.window(i) == (w.start, w.end, w.count))
        };
        (dil(r.rows) == g.dh && dil(r.cols) == g.dw && same(&rows, &g.rows) && same(&cols, &g.cols))
            .then_some((rows, cols))
    }

    /// Host f64 values as a new device block.
    pub(super) fn upload_f64(device: usize, v: Vec<f64>, op: &'static str) -> Result<Block> {
        let s = CpuStorage::F64(v);
        real::upload(device, super::super::host_bytes(&s)).map_err(err(op))
    }

    /// A statistics block `[mean, var, istd]` (var unknown: NaN) from host values.
    pub(super) fn stats_block(
        device: usize,
        mean: &[f64],
        istd: &[f64],
        op: &'static str,
    ) -> Result<Block> {
        let mut v = Vec::with_capacity(3 * mean.len());
        v.extend_from_slice(mean);
        v.extend(std::iter::repeat_n(f64::NAN, mean.len()));
        v.extend_from_slice(istd);
        upload_f64(device, v, op)
    }

    /// Downloads a statistics block of `units` units.
    pub(super) fn download_stats(b: &Block, units: usize, op: &'static str) -> Result<Stats> {
        let mut host = CpuStorage::zeros(DType::F64, 3 * units);
        real::download(b, super::super::host_bytes_mut(&mut host)).map_err(err(op))?;
        let CpuStorage::F64(v) = host else {
            unreachable!("allocated as f64")
        };
        Ok(Stats {
            mean: v[..units].to_vec(),
            var: v[units..2 * units].to_vec(),
            istd: v[2 * units..].to_vec(),
        })
    }

    pub(super) fn norm_geom(g: NormGeom, units: Units) -> real::NormGeom {
        real::NormGeom {
            n: g.n,
            c: g.c,
            hw: g.hw,
            groups: match units {
                Units::PerChannel => 0,
                Units::Groups(k) => k,
            },
        }
    }
}

/// Max pooling of `x` (`[planes, H, W]` as `geom` describes it): the maxima and, when
/// `with_idx`, the i64 argmax positions, both contiguous on `x`'s GPU.
pub(crate) fn max_pool(
    x: &Tensor,
    geom: &PoolGeom,
    rules: &PoolRules,
    with_idx: bool,
) -> Result<Option<(Storage, Option<Storage>)>> {
    #[cfg(feature = "cuda")]
    if let Some(d) = imp::real_gpu(x) {
        let Some((rows, cols)) = imp::axes(geom, rules) else {
            return Ok(None);
        };
        let xc = x.contiguous()?;
        let h = imp::hold(&xc);
        let (v, i) = super::real::max_pool_forward(
            imp::dt(x.dtype()),
            h.block("max_pool2d")?,
            xc.layout().offset,
            geom.planes,
            &rows,
            &cols,
            with_idx,
        )
        .map_err(imp::err("max_pool2d"))?;
        let n = geom.planes * geom.out_plane();
        return Ok(Some((
            imp::wrap(v, x.dtype(), n, d),
            i.map(|b| imp::wrap(b, crate::DType::I64, n, d)),
        )));
    }
    Ok(None)
}

/// The input gradient of max pooling from the output gradient `g` and the saved
/// indices `idx` (both `[planes, OH, OW]`).
pub(crate) fn max_pool_backward(
    g: &Tensor,
    idx: &Tensor,
    geom: &PoolGeom,
    rules: &PoolRules,
) -> Result<Option<Storage>> {
    #[cfg(feature = "cuda")]
    if let Some(d) = imp::real_gpu(g) {
        if idx.device() != g.device() || idx.dtype() != crate::DType::I64 {
            return Ok(None);
        }
        let Some((rows, cols)) = imp::axes(geom, rules) else {
            return Ok(None);
        };
        let (gc, ic) = (g.contiguous()?, idx.contiguous()?);
        let (hg, hi) = (imp::hold(&gc), imp::hold(&ic));
        let out = super::real::max_pool_backward(
            imp::dt(g.dtype()),
            hg.block("max_pool2d_backward")?,
            gc.layout().offset,
            hi.block("max_pool2d_backward")?,
            ic.layout().offset,
            geom.planes,
            &rows,
            &cols,
        )
        .map_err(imp::err("max_pool2d_backward"))?;
        return Ok(Some(imp::wrap(
            out,
            g.dtype(),
            geom.planes * geom.in_plane(),
            d,
        )));
    }
    Ok(None)
}

/// Average pooling of `x`.
pub(crate) fn avg_pool(x: &Tensor, geom: &PoolGeom, rules: &PoolRules) -> Result<Option<Storage>> {
    #[cfg(feature = "cuda")]
    return imp::avg_pool_pass(
        x,
        geom,
        rules,
        "avg_pool2d",
        geom.out_plane(),
        super::real::avg_pool_forward,
    );
    #[cfg(not(feature = "cuda"))]
    Ok(None)
}

/// The input gradient of average pooling from the output gradient `g`.
pub(crate) fn avg_pool_backward(
    g: &Tensor,
    geom: &PoolGeom,
    rules: &PoolRules,
) -> Result<Option<Storage>> {
    #[cfg(feature = "cuda")]
    return imp::avg_pool_pass(
        g,
        geom,
        rules,
        "avg_pool2d_backward",
        geom.in_plane(),
        super::real::avg_pool_backward,
    );
    #[cfg(not(feature = "cuda"))]
    Ok(None)
}

/// The fused normalisation forward on the GPU: `x` is `[N, C, HW]` (any layout),
/// `gamma`/`beta` `[C]` tensors of `x`'s dtype on its device; the statistics are
/// computed (or `given` as per-unit mean and 1/σ). `want_stats` downloads them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn norm_forward(
    x: &Tensor,
    g: NormGeom,
    units: Units,
    given: Option<(&[f64], &[f64])>,
    eps: f64,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    want_stats: bool,
) -> Result<Option<NormFwd>> {
    #[cfg(feature = "cuda")]
    if let Some(d) = imp::real_gpu(x) {
        const OP: &str = "norm";
        let params = [gamma, beta];
        if params
            .iter()
            .flatten()
            .any(|t| t.device() != x.device() || t.dtype() != x.dtype())
        {
            return Ok(None);
        }
        let dt = imp::dt(x.dtype());
        let ng = imp::norm_geom(g, units);
        let xc = x.contiguous()?;
        let hx = imp::hold(&xc);
        let stats = match given {
            Some((m, i)) => imp::stats_block(d, m, i, OP)?,
            None => super::real::norm_stats(dt, hx.block(OP)?, xc.layout().offset, &ng, eps)
                .map_err(imp::err(OP))?,
        };
        let (gc, bc) = (
            gamma.map(|t| t.contiguous()).transpose()?,
            beta.map(|t| t.contiguous()).transpose()?,
        );
        let (hg, hb) = (gc.as_ref().map(imp::hold), bc.as_ref().map(imp::hold));
        let gp = match (&hg, &gc) {
            (Some(h), Some(t)) => Some((h.block(OP)?, t.layout().offset)),
            _ => None,
        };
        let bp = match (&hb, &bc) {
            (Some(h), Some(t)) => Some((h.block(OP)?, t.layout().offset)),
            _ => None,
        };
        let y = super::real::norm_apply(dt, hx.block(OP)?, xc.layout().offset, &ng, &stats, gp, bp)
            .map_err(imp::err(OP))?;
        let host = if want_stats {
            Some(imp::download_stats(&stats, ng.units(), OP)?)
        } else {
            None
        };
        return Ok(Some(NormFwd {
            y: imp::wrap(y, x.dtype(), g.n * g.c * g.hw, d),
            stats: host,
            dev: DevStats { block: stats },
        }));
    }
    Ok(None)
}

/// The gradients of [`norm_forward`] from the output gradient `dy`: `(dx, dγ, dβ)`, each
/// when `need` asks for it (`dγ`/`dβ` as `[C]`). The statistics come from `dev` or, when
/// absent, from the host `mean`/`istd`.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub(crate) fn norm_backward(
    x: &Tensor,
    dy: &Tensor,
    g: NormGeom,
    units: Units,
    dev: Option<&DevStats>,
    host: (&[f64], &[f64]),
    gamma: Option<&Tensor>,
    through: bool,
    need: (bool, bool, bool),
) -> Result<Option<(Option<Storage>, Option<Storage>, Option<Storage>)>> {
    #[cfg(feature = "cuda")]
    if let Some(d) = imp::real_gpu(dy) {
        const OP: &str = "norm_backward";
        if x.device() != dy.device()
            || x.dtype() != dy.dtype()
            || gamma.is_some_and(|t| t.device() != dy.device() || t.dtype() != dy.dtype())
        {
            return Ok(None);
        }
        let ng = imp::norm_geom(g, units);
        let uploaded;
        let stats = match dev {
            Some(s) => &s.block,
            None => {
                if host.0.len() != ng.units() || host.1.len() != ng.units() {
                    return Ok(None);
                }
                uploaded = imp::stats_block(d, host.0, host.1, OP)?;
                &uploaded
            }
        };
        let dt = imp::dt(dy.dtype());
        let (xc, gc) = (x.contiguous()?, dy.contiguous()?);
        let (hx, hg) = (imp::hold(&xc), imp::hold(&gc));
        let wc = gamma.map(|t| t.contiguous()).transpose()?;
        let hw = wc.as_ref().map(imp::hold);
        let wp = match (&hw, &wc) {
            (Some(h), Some(t)) => Some((h.block(OP)?, t.layout().offset)),
            _ => None,
        };
        let r = super::real::norm_backward(
            dt,
            (hx.block(OP)?, xc.layout().offset),
            (hg.block(OP)?, gc.layout().offset),
            &ng,
            stats,
            wp,
            through,
            need,
        )
        .map_err(imp::err(OP))?;
        let dtype = dy.dtype();
        let total = g.n * g.c * g.hw;
        return Ok(Some((
            r.dx.map(|b| imp::wrap(b, dtype, total, d)),
            r.dgamma.map(|b| imp::wrap(b, dtype, g.c, d)),
            r.dbeta.map(|b| imp::wrap(b, dtype, g.c, d)),
        )));
    }
    Ok(None)
}

/// Downloads statistics kept on the GPU (`units` units) to the host.
pub(crate) fn download_stats(dev: &DevStats, units: usize) -> Result<Stats> {
    #[cfg(feature = "cuda")]
    {
        imp::download_stats(&dev.block, units, "norm")
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (dev, units);
        Err(crate::error::Error::Backend {
            op: "norm",
            msg: "no CUDA support in this build".into(),
        })
    }
}
