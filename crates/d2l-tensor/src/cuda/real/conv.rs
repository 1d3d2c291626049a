//! Direct 2-D convolution launchers and their geometry record.

use super::*;

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
pub(super) struct ConvGeomK {
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

pub(super) fn prod(v: &[usize]) -> Option<usize> {
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
