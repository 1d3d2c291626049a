//! Convolution kernels (D2L 7.2–7.4, 14.10) on top of the tuned GEMM: im2col / col2im into
//! a per-worker workspace that is allocated once per call, parallel over the batch (each
//! worker owns a contiguous range of samples and loops over the groups), and three entry
//! points from which every conv op and its gradients are built:
//!
//! - [`forward`]: `out = conv2d(x, w) + b` (cross-correlation, PyTorch semantics);
//! - [`backward_input`]: the adjoint of `forward` in `x` (col2im of `Wᵀ · gy`), which is also
//!   the forward of `conv_transpose2d`;
//! - [`backward_weight`]: `gw = Σ_n gy_n · cols(x_n)ᵀ`, per-worker accumulators summed at the end.
//!
//! Small output maps (e.g. 3×3 at 512 channels) are batched: `nb` samples are unfolded
//! side by side so each GEMM has at least ~`TILE_COLS` columns. 1×1 stride-1 unpadded
//! convolutions skip im2col and multiply the input in place (a plain GEMM). Depthwise
//! convolutions (one input and one output channel per group) use a direct kernel.

use crate::dtype::Float;
use crate::threads;
use gemm::Parallelism;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Geometry of one convolution `x [n, ci, h, w] ⋆ w [co, ci/groups, kh, kw] → [n, co, oh, ow]`.
/// The bottom/right padding is implicit in `oh`/`ow` (positions past the input read zeros).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Geom {
    pub n: usize,
    pub ci: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    pub sh: usize,
    pub sw: usize,
    pub pt: usize,
    pub pl: usize,
    pub dh: usize,
    pub dw: usize,
    pub groups: usize,
}

#[cfg(test)]
impl Geom {
    /// A test geometry `(n, ci, h, w, co, (kh, kw), stride, [top, bottom, left, right]
    /// padding, groups)`, without dilation, with PyTorch's output size.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn for_test(
        n: usize,
        ci: usize,
        h: usize,
        w: usize,
        co: usize,
        (kh, kw): (usize, usize),
        s: usize,
        [pt, pb, pl, pr]: [usize; 4],
        groups: usize,
    ) -> Geom {
        Geom {
            n,
            ci,
            h,
            w,
            co,
            kh,
            kw,
            oh: (h + pt + pb - kh) / s + 1,
            ow: (w + pl + pr - kw) / s + 1,
            sh: s,
            sw: s,
            pt,
            pl,
            dh: 1,
            dw: 1,
            groups,
        }
    }
}

/// Minimum number of GEMM columns (output pixels of a tile) before batching stops.
const TILE_COLS: usize = 256;

/// Bytes of unfolded input (im2col) per block in the weight gradient of big maps: a
/// block this size stays in the per-core L2 (1 MB on Zen 4) while the GEMM reads it.
const COLS_BUDGET: usize = 256 * 1024;

/// Products with fewer rows than this (and more columns) are computed transposed.
const SWAP_M: usize = 48;

impl Geom {
    fn cig(&self) -> usize {
        self.ci / self.groups
    }
    fn cog(&self) -> usize {
        self.co / self.groups
    }
    /// Rows of the unfolded input: `ci/groups · kh · kw`.
    fn k(&self) -> usize {
        self.cig() * self.kh * self.kw
    }
    fn p(&self) -> usize {
        self.oh * self.ow
    }
    fn hw(&self) -> usize {
        self.h * self.w
    }
    /// A 1×1 stride-1 unpadded conv: the input already is its own unfolding.
    fn pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.pt == 0
            && self.pl == 0
            && self.oh == self.h
            && self.ow == self.w
    }
    /// One input and one output channel per group.
    fn depthwise(&self) -> bool {
        self.groups > 1 && self.cig() == 1 && self.cog() == 1
    }
    /// Samples per tile.
    fn tile(&self, nt: usize) -> usize {
        if self.pointwise() {
            return 1;
        }
        let want = TILE_COLS.div_ceil(self.p().max(1));
        want.clamp(1, self.n.div_ceil(nt).max(1))
    }
    /// The valid output columns `[lo, hi)` of kernel column `kj` (those reading inside the input).
    #[inline]
    fn col_range(&self, kj: usize) -> (usize, usize) {
        let off = kj * self.dw;
        let lo = if off >= self.pl {
            0
        } else {
            (self.pl - off).div_ceil(self.sw)
        };
        let hi = if self.w + self.pl <= off {
            0
        } else {
            (self.w + self.pl - off).div_ceil(self.sw)
        };
        let hi = hi.min(self.ow);
        (lo.min(hi), hi)
    }
    /// The input row read by output row `oy` and kernel row `ki`, if inside the input.
    #[inline]
    fn in_row(&self, oy: usize, ki: usize) -> Option<usize> {
        let r = (oy * self.sh + ki * self.dh).checked_sub(self.pt)?;
        (r < self.h).then_some(r)
    }
    /// The pairs `(oy, iy)` of output row and the input row that kernel row `ki` reads
    /// for it, over the output rows whose tap lands inside the input.
    #[inline(always)]
    fn tap_rows(&self, ki: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.oh).filter_map(move |oy| self.in_row(oy, ki).map(|iy| (oy, iy)))
    }
    /// The columns of kernel column `kj` (see [`TapCols`]).
    #[inline]
    fn tap_cols(&self, kj: usize) -> TapCols {
        let (lo, hi) = self.col_range(kj);
        TapCols {
            lo,
            hi,
            off: kj * self.dw,
            sw: self.sw,
            pl: self.pl,
        }
    }
}

/// The output columns `lo..hi` of one kernel column that read inside the input, output
/// column `ox` reading input column `ox·sw + off − pl`. Its methods are the row loops of
/// the direct (depthwise) kernels and of col2im, in one place.
#[derive(Clone, Copy)]
struct TapCols {
    lo: usize,
    hi: usize,
    off: usize,
    sw: usize,
    pl: usize,
}

impl TapCols {
    /// `out[ox] += w · inp[ox·sw + off − pl]` for `ox` in `lo..hi` (one output row from
    /// one input row).
    #[inline(always)]
    fn gather_add<T: Float>(&self, w: T, out: &mut [T], inp: &[T]) {
        let (lo, hi) = (self.lo, self.hi);
        if self.sw == 1 {
            let s0 = lo + self.off - self.pl;
            for (d, s) in out[lo..hi].iter_mut().zip(&inp[s0..s0 + hi - lo]) {
                *d = *d + w * *s;
            }
        } else {
            for ox in lo..hi {
                out[ox] = out[ox] + w * inp[ox * self.sw + self.off - self.pl];
            }
        }
    }
    /// The adjoint of [`TapCols::gather_add`]: `inp[ox·sw + off − pl] += w · out[ox]`.
    #[inline(always)]
    fn scatter_add<T: Float>(&self, w: T, inp: &mut [T], out: &[T]) {
        let (lo, hi) = (self.lo, self.hi);
        if self.sw == 1 {
            let d0 = lo + self.off - self.pl;
            for (d, s) in inp[d0..d0 + hi - lo].iter_mut().zip(&out[lo..hi]) {
                *d = *d + w * *s;
            }
        } else {
            for ox in lo..hi {
                let d = &mut inp[ox * self.sw + self.off - self.pl];
                *d = *d + w * out[ox];
            }
        }
    }
    /// `acc + Σ out[ox] · inp[ox·sw + off − pl]`, summed left to right from `acc`.
    #[inline(always)]
    fn dot_add<T: Float>(&self, mut acc: T, out: &[T], inp: &[T]) -> T {
        let (lo, hi) = (self.lo, self.hi);
        if self.sw == 1 {
            let s0 = lo + self.off - self.pl;
            for (a, b) in out[lo..hi].iter().zip(&inp[s0..s0 + hi - lo]) {
                acc = acc + *a * *b;
            }
        } else {
            for ox in lo..hi {
                acc = acc + out[ox] * inp[ox * self.sw + self.off - self.pl];
            }
        }
        acc
    }
}

/// `dst[m×n] (+)= a[m×k] · b[k×n]`, with arbitrary element strides. When `m` is small
/// (few output channels) and `n` large, computes the transposed product
/// `dstᵀ = bᵀ · aᵀ` instead: the GEMM's micro-kernel is tall (AVX-512: 64 × 6), so a
/// 6-row product would waste most of it (LeNet's first conv).
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) unsafe fn gemm_raw<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_rs: usize,
    dst_cs: usize,
    accumulate: bool,
    a: *const T,
    a_rs: usize,
    a_cs: usize,
    b: *const T,
    b_rs: usize,
    b_cs: usize,
    par: Parallelism,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let ours =
        std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && super::matmul::own_sgemm();
    // Our GEMM picks its own orientation; the `gemm` crate's tall kernel wants m large.
    if !ours && m < SWAP_M && n > m {
        return gemm_raw(
            n, m, k, dst, dst_cs, dst_rs, accumulate, b, b_cs, b_rs, a, a_cs, a_rs, par,
        );
    }
    super::matmul::gemm_any(
        m, n, k, dst, dst_rs, dst_cs, accumulate, a, a_rs, a_cs, b, b_rs, b_cs, par,
    )
}

/// `dst.copy_from_slice(src)` without a `memmove` call for the short rows of small
/// feature maps (LeNet's 10-wide rows), where the call costs more than the copy.
#[inline(always)]
fn copy_short<T: Copy>(dst: &mut [T], src: &[T]) {
    let n = dst.len();
    if n >= 64 {
        dst.copy_from_slice(src);
        return;
    }
    let src = &src[..n];
    let mut i = 0;
    while i + 8 <= n {
        dst[i..i + 8].copy_from_slice(&src[i..i + 8]);
        i += 8;
    }
    if i + 4 <= n {
        dst[i..i + 4].copy_from_slice(&src[i..i + 4]);
        i += 4;
    }
    if i + 2 <= n {
        dst[i..i + 2].copy_from_slice(&src[i..i + 2]);
        i += 2;
    }
    if i < n {
        dst[i] = src[i];
    }
}

/// Unfolds group `g` of one sample `xn [ci, h, w]` into `cols[r * ld + col0 + p]`,
/// `r = (c, ki, kj)`, `p` the output pixel; positions in the padding read 0.
fn im2col<T: Float>(xn: &[T], g: usize, geo: &Geom, cols: &mut [T], ld: usize, col0: usize) {
    im2col_rows(xn, g, geo, 0, geo.oh, cols, ld, col0)
}

/// [`im2col`] of the output rows `oy0..oy1` only: column `col0 + (oy − oy0)·ow + ox`.
#[allow(clippy::too_many_arguments)]
fn im2col_rows<T: Float>(
    xn: &[T],
    g: usize,
    geo: &Geom,
    oy0: usize,
    oy1: usize,
    cols: &mut [T],
    ld: usize,
    col0: usize,
) {
    let (hw, ow) = (geo.hw(), geo.ow);
    let p = (oy1 - oy0) * ow;
    // Unit strides and an output as wide as the input ("same" padding): consecutive
    // output rows read consecutive input rows at one column offset, so a kernel tap's
    // rows are one contiguous copy (see `im2col_row_flat`).
    let flat = geo.sh == 1 && geo.sw == 1 && ow == geo.w;
    for c in 0..geo.cig() {
        let xc = &xn[(g * geo.cig() + c) * hw..][..hw];
        for ki in 0..geo.kh {
            for kj in 0..geo.kw {
                let r = (c * geo.kh + ki) * geo.kw + kj;
                let row = &mut cols[r * ld + col0..][..p];
                let (lo, hi) = geo.col_range(kj);
                let off = kj * geo.dw;
                if flat && lo < hi {
                    im2col_row_flat(xc, geo, ki, off, lo, hi, oy0, oy1, row);
                    continue;
                }
                for oy in oy0..oy1 {
                    let dst = &mut row[(oy - oy0) * ow..][..ow];
                    let Some(iy) = geo.in_row(oy, ki) else {
                        dst.fill(T::ZERO);
                        continue;
                    };
                    let src = &xc[iy * geo.w..][..geo.w];
                    for d in &mut dst[..lo] {
                        *d = T::ZERO;
                    }
                    for d in &mut dst[hi..] {
                        *d = T::ZERO;
                    }
                    if geo.sw == 1 {
                        let s0 = lo + off - geo.pl;
                        copy_short(&mut dst[lo..hi], &src[s0..s0 + hi - lo]);
                    } else {
                        for (ox, d) in dst[lo..hi].iter_mut().enumerate() {
                            *d = src[(ox + lo) * geo.sw + off - geo.pl];
                        }
                    }
                }
            }
        }
    }
}

/// One im2col row (kernel tap `ki`, column offset `off`) of output rows `oy0..oy1`, for
/// unit strides and `ow == w`: output `(oy, ox)` reads input `(oy + ki·dh − pt, ox + off −
/// pl)`, so over the output rows whose input row exists, `dst[q] = xc[q + shift]` for one
/// `shift`: one copy of the whole run, then the columns outside `lo..hi` (which the copy
/// filled from the neighbouring input row) and the rows outside the input set to zero.
/// Short rows (W3's 24 and 12 columns) were dominated by the per-row bookkeeping.
#[allow(clippy::too_many_arguments)]
fn im2col_row_flat<T: Float>(
    xc: &[T],
    geo: &Geom,
    ki: usize,
    off: usize,
    lo: usize,
    hi: usize,
    oy0: usize,
    oy1: usize,
    row: &mut [T],
) {
    let ow = geo.ow;
    let valid = |oy: usize| geo.in_row(oy, ki).is_some();
    // With a unit stride the output rows that read an input row form one interval.
    let a = (oy0..oy1).find(|&oy| valid(oy)).unwrap_or(oy1);
    let b = (a..oy1).find(|&oy| !valid(oy)).unwrap_or(oy1);
    row[..(a - oy0) * ow].fill(T::ZERO);
    row[(b - oy0) * ow..(oy1 - oy0) * ow].fill(T::ZERO);
    if a == b {
        return;
    }
    let iy = geo.in_row(a, ki).expect("a is a valid row");
    let (d0, s0) = ((a - oy0) * ow + lo, iy * geo.w + lo + off - geo.pl);
    let len = (b - a - 1) * ow + (hi - lo);
    row[d0..d0 + len].copy_from_slice(&xc[s0..s0 + len]);
    for oy in a..b {
        let dst = &mut row[(oy - oy0) * ow..][..ow];
        dst[..lo].fill(T::ZERO);
        dst[hi..].fill(T::ZERO);
    }
}

/// The adjoint of [`im2col`]: adds `cols` back into group `g` of `gxn [ci, h, w]`.
fn col2im<T: Float>(cols: &[T], ld: usize, col0: usize, g: usize, geo: &Geom, gxn: &mut [T]) {
    let (hw, ow, p) = (geo.hw(), geo.ow, geo.p());
    for c in 0..geo.cig() {
        let gc = &mut gxn[(g * geo.cig() + c) * hw..][..hw];
        for ki in 0..geo.kh {
            for kj in 0..geo.kw {
                let r = (c * geo.kh + ki) * geo.kw + kj;
                let row = &cols[r * ld + col0..][..p];
                let tap = geo.tap_cols(kj);
                for (oy, iy) in geo.tap_rows(ki) {
                    let src = &row[oy * ow..][..ow];
                    // `1·s` is exactly `s`: the sum is col2im's plain `d + s`.
                    tap.scatter_add(T::ONE, &mut gc[iy * geo.w..][..geo.w], src);
                }
            }
        }
    }
}

/// How the batch is split: `(samples per worker, parallelism inside each GEMM)`.
pub(crate) fn plan(geo: &Geom, nb: usize) -> (usize, Parallelism) {
    let nt = threads::num_threads();
    let tiles = geo.n.div_ceil(nb);
    if nt == 1 {
        (geo.n.max(1), Parallelism::None)
    } else if tiles >= nt || geo.depthwise() {
        (tiles.div_ceil(nt) * nb, Parallelism::None)
    } else {
        (geo.n.max(1), Parallelism::Rayon(nt))
    }
}

/// Runs `work(first_sample, chunk)` over contiguous per-worker sample ranges of `buf`
/// (`per` elements per sample), in parallel when there is more than one range.
pub(crate) fn for_workers<E: Send>(
    buf: &mut [E],
    per: usize,
    spw: usize,
    work: impl Fn(usize, &mut [E]) + Send + Sync,
) {
    if buf.is_empty() {
        return;
    }
    let chunk = spw * per;
    if chunk >= buf.len() {
        work(0, buf);
    } else {
        threads::run(|| {
            buf.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(i, c)| work(i * spw, c))
        });
    }
}

/// `conv2d(x, w) + b` for contiguous `x [n, ci, h, w]`, `w [co, ci/g, kh, kw]`, `b [co]`.
pub(crate) fn forward<T: Float>(x: &[T], wt: &[T], bias: Option<&[T]>, geo: &Geom) -> Vec<T> {
    if direct_fwd_applies::<T>(geo, geo.ow) {
        return direct_forward(x, wt, bias, geo);
    }
    if super::winograd::applies(geo) {
        return super::winograd::forward(x, wt, bias, geo);
    }
    forward_im2col(x, wt, bias, geo)
}

/// [`forward`] by im2col + GEMM (every geometry).
pub(crate) fn forward_im2col<T: Float>(
    x: &[T],
    wt: &[T],
    bias: Option<&[T]>,
    geo: &Geom,
) -> Vec<T> {
    let (p, co) = (geo.p(), geo.co);
    let len = geo.n * co * p;
    if geo.k() == 0 {
        // No input channels: the result is the bias alone.
        let mut out = vec![T::ZERO; len];
        if let Some(b) = bias {
            for (i, y) in out.iter_mut().enumerate() {
                *y = b[(i / p.max(1)) % co];
            }
        }
        return out;
    }
    if geo.depthwise() {
        let mut out = vec![T::ZERO; len];
        let (spw, _) = plan(geo, 1);
        for_workers(&mut out, co * p, spw, |s0, chunk| {
            for (j, on) in chunk.chunks_mut(co * p).enumerate() {
                let xn = &x[(s0 + j) * geo.ci * geo.hw()..][..geo.ci * geo.hw()];
                depthwise_fwd(xn, wt, bias, geo, on);
            }
        });
        return out;
    }
    let nb = geo.tile(threads::num_threads());
    let (spw, par) = plan(geo, nb);
    let (k, cog, cig, hw) = (geo.k(), geo.cog(), geo.cig(), geo.hw());
    let pw = geo.pointwise();
    // Every element of the result is written below (a GEMM without accumulation, or
    // over the bias written first, or a copy), so it starts unzeroed: clearing a
    // LeNet batch's 4.8 MB first-layer output cost a twentieth of its inference step.
    let mut out: Vec<T> = Vec::with_capacity(len);
    for_workers(out.spare_capacity_mut(), co * p, spw, |s0, chunk| {
        let cols_len = if pw { 0 } else { k * nb * p };
        let mut cols = vec![T::ZERO; cols_len];
        let mut tmp = vec![T::ZERO; if nb > 1 { cog * nb * p } else { 0 }];
        let ns = chunk.len() / (co * p);
        let mut j0 = 0;
        while j0 < ns {
            let t = nb.min(ns - j0);
            let ld = t * p;
            for g in 0..geo.groups {
                let (bp, b_rs) = if pw {
                    (x[((s0 + j0) * geo.ci + g * cig) * hw..].as_ptr(), hw)
                } else {
                    for j in 0..t {
                        let xn = &x[(s0 + j0 + j) * geo.ci * hw..][..geo.ci * hw];
                        im2col(xn, g, geo, &mut cols, ld, j * p);
                    }
                    (cols.as_ptr(), ld)
                };
                let wg = wt[g * cog * k..].as_ptr();
                if t == 1 {
                    let dst = &mut chunk[(j0 * co + g * cog) * p..][..cog * p];
                    if let Some(b) = bias {
                        for (c, row) in dst.chunks_mut(p).enumerate() {
                            row.fill(MaybeUninit::new(b[g * cog + c]));
                        }
                    }
                    // SAFETY: dst holds cog×p elements, wg cog×k, bp k×p at the given strides.
                    unsafe {
                        gemm_raw(
                            cog,
                            p,
                            k,
                            dst.as_mut_ptr() as *mut T,
                            p,
                            1,
                            bias.is_some(),
                            wg,
                            k,
                            1,
                            bp,
                            b_rs,
                            1,
                            par,
                        )
                    };
                } else {
                    // SAFETY: tmp holds cog×ld elements, cols k×ld.
                    unsafe {
                        gemm_raw(
                            cog,
                            ld,
                            k,
                            tmp.as_mut_ptr(),
                            ld,
                            1,
                            false,
                            wg,
                            k,
                            1,
                            bp,
                            b_rs,
                            1,
                            par,
                        )
                    };
                    for j in 0..t {
                        for c in 0..cog {
                            let src = &tmp[c * ld + j * p..][..p];
                            let dst = &mut chunk[((j0 + j) * co + g * cog + c) * p..][..p];
                            match bias {
                                Some(b) => {
                                    let bv = b[g * cog + c];
                                    for (d, s) in dst.iter_mut().zip(src) {
                                        d.write(*s + bv);
                                    }
                                }
                                None => {
                                    for (d, s) in dst.iter_mut().zip(src) {
                                        d.write(*s);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            j0 += t;
        }
    });
    // SAFETY: the workers covered every sample, and for each every group's channels.
    unsafe { out.set_len(len) };
    out
}

/// The gradient of [`forward`] with respect to `x` (no bias): `gx [n, ci, h, w]`. Also the
/// forward of `conv_transpose2d` (with `gy` its input).
pub(crate) fn backward_input<T: Float>(gy: &[T], wt: &[T], geo: &Geom) -> Vec<T> {
    if direct_fwd_applies::<T>(geo, geo.w) {
        return direct_backward_input(gy, wt, geo);
    }
    if super::winograd::applies(geo) {
        return super::winograd::backward_input(gy, wt, geo);
    }
    backward_input_im2col(gy, wt, geo)
}

/// [`backward_input`] by GEMM + col2im (every geometry).
pub(crate) fn backward_input_im2col<T: Float>(gy: &[T], wt: &[T], geo: &Geom) -> Vec<T> {
    let (p, co, hw, ci) = (geo.p(), geo.co, geo.hw(), geo.ci);
    let mut gx = vec![T::ZERO; geo.n * ci * hw];
    if geo.depthwise() {
        let (spw, _) = plan(geo, 1);
        for_workers(&mut gx, ci * hw, spw, |s0, chunk| {
            for (j, gxn) in chunk.chunks_mut(ci * hw).enumerate() {
                let gyn = &gy[(s0 + j) * co * p..][..co * p];
                depthwise_bwd_input(gyn, wt, geo, gxn);
            }
        });
        return gx;
    }
    let nb = geo.tile(threads::num_threads());
    let (spw, par) = plan(geo, nb);
    let (k, cog, cig) = (geo.k(), geo.cog(), geo.cig());
    let pw = geo.pointwise();
    for_workers(&mut gx, ci * hw, spw, |s0, chunk| {
        let mut cols = vec![T::ZERO; if pw { 0 } else { k * nb * p }];
        let mut tmp = vec![T::ZERO; if nb > 1 { cog * nb * p } else { 0 }];
        let ns = chunk.len() / (ci * hw);
        let mut j0 = 0;
        while j0 < ns {
            let t = nb.min(ns - j0);
            let ld = t * p;
            for g in 0..geo.groups {
                let (bp, b_rs) = gy_tile(gy, &mut tmp, s0 + j0, t, g * cog, cog, co, p);
                // Wᵀ of group g: element (r, c) at wt[(g·cog + c)·k + r].
                let wg = wt[g * cog * k..].as_ptr();
                if pw {
                    let dst = &mut chunk[(j0 * ci + g * cig) * hw..][..cig * hw];
                    // SAFETY: dst holds cig×hw (k = cig, p = hw), wg is k×cog transposed.
                    unsafe {
                        gemm_raw(
                            k,
                            p,
                            cog,
                            dst.as_mut_ptr(),
                            hw,
                            1,
                            false,
                            wg,
                            1,
                            k,
                            bp,
                            b_rs,
                            1,
                            par,
                        )
                    };
                } else {
                    // SAFETY: cols holds k×ld elements; bp cog×ld at row stride b_rs.
                    unsafe {
                        gemm_raw(
                            k,
                            ld,
                            cog,
                            cols.as_mut_ptr(),
                            ld,
                            1,
                            false,
                            wg,
                            1,
                            k,
                            bp,
                            b_rs,
                            1,
                            par,
                        )
                    };
                    for j in 0..t {
                        let gxn = &mut chunk[(j0 + j) * ci * hw..][..ci * hw];
                        col2im(&cols, ld, j * p, g, geo, gxn);
                    }
                }
            }
            j0 += t;
        }
    });
    gx
}

/// The gradient of [`forward`] with respect to the weight: `gw [co, ci/g, kh, kw]`.
pub(crate) fn backward_weight<T: Float>(x: &[T], gy: &[T], geo: &Geom) -> Vec<T> {
    if geo.n > 0 && !direct_bw_applies::<T>(geo) && super::winograd::applies(geo) {
        return super::winograd::backward_weight(x, gy, geo);
    }
    backward_weight_gemm(x, gy, geo)
}

/// [`backward_weight`] by the direct kernel where it applies, else by im2col + GEMM (every
/// geometry).
pub(crate) fn backward_weight_gemm<T: Float>(x: &[T], gy: &[T], geo: &Geom) -> Vec<T> {
    let (p, co, hw, ci) = (geo.p(), geo.co, geo.hw(), geo.ci);
    let (k, cog, cig) = (geo.k(), geo.cog(), geo.cig());
    let wlen = co * k;
    if geo.n == 0 || wlen == 0 {
        return vec![T::ZERO; wlen];
    }
    let depthwise = geo.depthwise();
    let nb = if depthwise {
        1
    } else {
        geo.tile(threads::num_threads())
    };
    let (spw, par) = plan(geo, nb);
    let pw = geo.pointwise();
    // Output rows per unfolded block when a whole image's unfolding would not fit in L2 —
    // but only while a block still gives the GEMM at least TILE_COLS pixels: with many
    // channels (VGG's 512 at 28×28) a 256 KB block is a dozen pixels, and that product
    // ran 50 % slower than the whole image's.
    let bw_rows = {
        let row_bytes = k * geo.ow * std::mem::size_of::<T>();
        let rows = COLS_BUDGET / row_bytes.max(1);
        (!depthwise
            && !pw
            && nb == 1
            && row_bytes * geo.oh > COLS_BUDGET
            && rows * geo.ow >= TILE_COLS)
            .then(|| rows.clamp(1, geo.oh))
    };
    let direct = direct_bw_applies::<T>(geo);
    let work = |s0: usize, ns: usize| -> Vec<T> {
        let mut gw = vec![T::ZERO; wlen];
        if depthwise {
            for j in 0..ns {
                let xn = &x[(s0 + j) * ci * hw..][..ci * hw];
                let gyn = &gy[(s0 + j) * co * p..][..co * p];
                depthwise_bwd_weight(xn, gyn, geo, &mut gw);
            }
            return gw;
        }
        if direct {
            direct_bw(x, gy, geo, s0, ns, &mut gw);
            return gw;
        }
        if let Some(rows) = bw_rows {
            // Big maps: unfold `rows` output rows at a time (a block that stays in L2)
            // and accumulate its product into gw (beta = 1), instead of unfolding the
            // whole image into a buffer far larger than the caches.
            let mut cols = vec![T::ZERO; k * rows * geo.ow];
            for j in 0..ns {
                let s = s0 + j;
                let xn = &x[s * ci * hw..][..ci * hw];
                for g in 0..geo.groups {
                    let dst = &mut gw[g * cog * k..][..cog * k];
                    let mut oy0 = 0;
                    while oy0 < geo.oh {
                        let oy1 = (oy0 + rows).min(geo.oh);
                        let ld = (oy1 - oy0) * geo.ow;
                        im2col_rows(xn, g, geo, oy0, oy1, &mut cols, ld, 0);
                        let ap = gy[(s * co + g * cog) * p + oy0 * geo.ow..].as_ptr();
                        // SAFETY: dst holds cog×k; ap is cog×ld at row stride p (the rows
                        // oy0..oy1 of each channel); cols holds k×ld, read transposed.
                        unsafe {
                            gemm_raw(
                                cog,
                                k,
                                ld,
                                dst.as_mut_ptr(),
                                k,
                                1,
                                true,
                                ap,
                                p,
                                1,
                                cols.as_ptr(),
                                1,
                                ld,
                                par,
                            )
                        };
                        oy0 = oy1;
                    }
                }
            }
            return gw;
        }
        let mut cols = vec![T::ZERO; if pw { 0 } else { k * nb * p }];
        let mut tmp = vec![T::ZERO; if nb > 1 { cog * nb * p } else { 0 }];
        let mut j0 = 0;
        while j0 < ns {
            let t = nb.min(ns - j0);
            let ld = t * p;
            for g in 0..geo.groups {
                let (ap, a_rs) = gy_tile(gy, &mut tmp, s0 + j0, t, g * cog, cog, co, p);
                // colsᵀ: element (q, r) at cols[r·ld + q].
                let (bp, b_cs) = if pw {
                    (x[((s0 + j0) * ci + g * cig) * hw..].as_ptr(), hw)
                } else {
                    for j in 0..t {
                        let xn = &x[(s0 + j0 + j) * ci * hw..][..ci * hw];
                        im2col(xn, g, geo, &mut cols, ld, j * p);
                    }
                    (cols.as_ptr(), ld)
                };
                let dst = &mut gw[g * cog * k..][..cog * k];
                // SAFETY: dst holds cog×k, ap cog×ld at row stride a_rs, bp ld×k transposed.
                unsafe {
                    gemm_raw(
                        cog,
                        k,
                        ld,
                        dst.as_mut_ptr(),
                        k,
                        1,
                        true,
                        ap,
                        a_rs,
                        1,
                        bp,
                        1,
                        b_cs,
                        par,
                    )
                };
            }
            j0 += t;
        }
        gw
    };
    if spw >= geo.n {
        return work(0, geo.n);
    }
    let starts: Vec<usize> = (0..geo.n).step_by(spw).collect();
    let parts: Vec<Vec<T>> = threads::run(|| {
        starts
            .par_iter()
            .map(|&s0| work(s0, spw.min(geo.n - s0)))
            .collect()
    });
    let mut it = parts.into_iter();
    let mut gw = it.next().unwrap_or_else(|| vec![T::ZERO; wlen]);
    for part in it {
        for (a, b) in gw.iter_mut().zip(&part) {
            *a = *a + *b;
        }
    }
    gw
}

/// `Σ_{n, p} gy[n, c, p]` per channel: the bias gradient of a conv with output `gy [n, c, p]`.
pub(crate) fn bias_grad<T: Float>(gy: &[T], n: usize, c: usize, p: usize) -> Vec<T> {
    let mut gb = vec![T::ZERO; c];
    for i in 0..n {
        for (ch, b) in gb.iter_mut().enumerate() {
            let row = &gy[(i * c + ch) * p..][..p];
            *b = *b + row.iter().copied().sum::<T>();
        }
    }
    gb
}

/// Adds `bias[c]` to every element of channel `c` of `buf [n, c, p]`.
pub(crate) fn add_channel_bias<T: Float>(buf: &mut [T], c: usize, p: usize, bias: &[T]) {
    if p == 0 || c == 0 {
        return;
    }
    for (i, row) in buf.chunks_mut(p).enumerate() {
        let b = bias[i % c];
        for v in row {
            *v = *v + b;
        }
    }
}

mod depthwise;
mod direct;
use depthwise::*;
use direct::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Generator;

    /// `gw` by the definition, in f64: a loop over every sample, pixel and tap.
    fn naive_bw(x: &[f64], gy: &[f64], geo: &Geom) -> Vec<f64> {
        let (cig, cog) = (geo.cig(), geo.cog());
        let mut gw = vec![0.0; geo.co * geo.k()];
        for n in 0..geo.n {
            for o in 0..geo.co {
                let g = o / cog;
                for c in 0..cig {
                    let xc = &x[(n * geo.ci + g * cig + c) * geo.hw()..][..geo.hw()];
                    for ki in 0..geo.kh {
                        for kj in 0..geo.kw {
                            let mut acc = 0.0;
                            for oy in 0..geo.oh {
                                let iy = (oy * geo.sh + ki * geo.dh) as isize - geo.pt as isize;
                                if iy < 0 || iy >= geo.h as isize {
                                    continue;
                                }
                                for ox in 0..geo.ow {
                                    let ix = (ox * geo.sw + kj * geo.dw) as isize - geo.pl as isize;
                                    if ix < 0 || ix >= geo.w as isize {
                                        continue;
                                    }
                                    acc += gy[((n * geo.co + o) * geo.oh + oy) * geo.ow + ox]
                                        * xc[iy as usize * geo.w + ix as usize];
                                }
                            }
                            gw[((o * cig + c) * geo.kh + ki) * geo.kw + kj] += acc;
                        }
                    }
                }
            }
        }
        gw
    }

    /// `conv2d(x, w) + b` by the definition, in f64.
    fn naive_fwd(x: &[f64], wt: &[f64], b: Option<&[f64]>, geo: &Geom) -> Vec<f64> {
        let (cig, cog) = (geo.cig(), geo.cog());
        let mut y = vec![0.0; geo.n * geo.co * geo.p()];
        for n in 0..geo.n {
            for o in 0..geo.co {
                let g = o / cog;
                for oy in 0..geo.oh {
                    for ox in 0..geo.ow {
                        let mut acc = b.map_or(0.0, |b| b[o]);
                        for c in 0..cig {
                            let xc = &x[(n * geo.ci + g * cig + c) * geo.hw()..][..geo.hw()];
                            for ki in 0..geo.kh {
                                for kj in 0..geo.kw {
                                    let iy = (oy * geo.sh + ki * geo.dh) as isize - geo.pt as isize;
                                    let ix = (ox * geo.sw + kj * geo.dw) as isize - geo.pl as isize;
                                    if iy < 0
                                        || iy >= geo.h as isize
                                        || ix < 0
                                        || ix >= geo.w as isize
                                    {
                                        continue;
                                    }
                                    acc += wt[((o * cig + c) * geo.kh + ki) * geo.kw + kj]
                                        * xc[iy as usize * geo.w + ix as usize];
                                }
                            }
                        }
                        y[((n * geo.co + o) * geo.oh + oy) * geo.ow + ox] = acc;
                    }
                }
            }
        }
        y
    }

    /// The im2col forward writes its result into an unzeroed buffer: every element must
    /// come out as the definition's, with and without bias, with groups, 1×1 (no
    /// im2col), small maps batched side by side (several samples per GEMM) and one
    /// sample per GEMM. Before each call a NaN-filled buffer of the result's size is
    /// freed, so the allocator hands its memory back: an element left unwritten shows.
    #[test]
    fn im2col_forward_writes_every_element_of_its_unzeroed_result() {
        let mut rng = Generator::new(11);
        for geo in [
            Geom::for_test(3, 4, 9, 8, 6, (3, 3), 1, [1; 4], 2),
            Geom::for_test(5, 6, 4, 4, 8, (3, 3), 1, [1; 4], 1),
            Geom::for_test(2, 8, 7, 5, 4, (1, 1), 1, [0; 4], 1),
            Geom::for_test(2, 1, 28, 28, 6, (5, 5), 1, [2; 4], 1),
            Geom::for_test(4, 3, 11, 13, 5, (3, 2), 2, [1, 0, 1, 1], 1),
            // As wide as the input (im2col's one-copy rows): one-sided padding, a kernel
            // taller than the input, and a dilated kernel.
            Geom::for_test(2, 3, 7, 6, 4, (3, 3), 1, [2, 0, 2, 0], 1),
            Geom::for_test(1, 2, 2, 5, 3, (5, 5), 1, [2; 4], 1),
            {
                let mut g = Geom::for_test(2, 3, 9, 8, 5, (3, 3), 1, [2; 4], 1);
                (g.dh, g.dw, g.oh, g.ow) = (2, 2, 9, 8);
                g
            },
        ] {
            let mut rand =
                |len: usize| -> Vec<f64> { (0..len).map(|_| rng.normal_f64()).collect() };
            let x = rand(geo.n * geo.ci * geo.hw());
            let wt = rand(geo.co * geo.k());
            let b = rand(geo.co);
            for bias in [None, Some(&b[..])] {
                let want = naive_fwd(&x, &wt, bias, &geo);
                drop(std::hint::black_box(vec![f64::NAN; want.len()]));
                let got = forward_im2col(&x, &wt, bias, &geo);
                assert_eq!(got.len(), want.len());
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - e).abs() < 1e-9 * (1.0 + e.abs()),
                        "[{i}] {g} vs {e} for {geo:?}, bias {}",
                        bias.is_some()
                    );
                }
            }
        }
    }

    /// The direct forward and input-gradient kernels against the im2col paths (f32, so
    /// the direct kernels run; compared in f64 with a tolerance for f32 sums).
    #[test]
    fn direct_forward_and_input_gradient_match_im2col() {
        let mut rng = Generator::new(5);
        for geo in [
            Geom::for_test(2, 3, 40, 70, 16, (3, 3), 1, [1; 4], 1),
            Geom::for_test(2, 16, 33, 67, 9, (3, 3), 1, [0; 4], 1),
            Geom::for_test(1, 5, 20, 100, 12, (5, 3), 1, [2; 4], 1),
            Geom::for_test(1, 4, 30, 64, 7, (5, 5), 1, [2; 4], 1),
            Geom::for_test(3, 2, 9, 65, 1, (1, 1), 1, [0; 4], 1),
        ] {
            let mut rand =
                |len: usize| -> Vec<f32> { (0..len).map(|_| rng.normal_f64() as f32).collect() };
            let x = rand(geo.n * geo.ci * geo.hw());
            let wt = rand(geo.co * geo.k());
            let b = rand(geo.co);
            let gy = rand(geo.n * geo.co * geo.p());
            #[cfg(target_arch = "x86_64")]
            {
                let avx512 = crate::cpu::caps::avx512();
                assert_eq!(direct_fwd_applies::<f32>(&geo, geo.ow), avx512);
                assert_eq!(direct_fwd_applies::<f32>(&geo, geo.w), avx512);
            }
            let close = |got: &[f32], want: &[f32], what: &str| {
                assert_eq!(got.len(), want.len());
                for (i, (a, e)) in got.iter().zip(want).enumerate() {
                    assert!(
                        (a - e).abs() < 1e-4 * (1.0 + e.abs()),
                        "{what}[{i}] {a} vs {e} for {geo:?}"
                    );
                }
            };
            close(
                &forward(&x, &wt, Some(&b), &geo),
                &forward_im2col(&x, &wt, Some(&b), &geo),
                "forward",
            );
            close(
                &backward_input(&gy, &wt, &geo),
                &backward_input_im2col(&gy, &wt, &geo),
                "backward_input",
            );
        }
    }

    /// The big-map weight gradient (direct kernel for f32 stride 1 with 3-wide kernels,
    /// row-tiled im2col + GEMM otherwise) against the definition, in f32 and f64.
    #[test]
    fn big_map_weight_gradient_matches_the_definition() {
        let mut rng = Generator::new(11);
        for geo in [
            Geom::for_test(2, 16, 96, 96, 16, (3, 3), 1, [1; 4], 1),
            Geom::for_test(2, 16, 96, 96, 16, (3, 3), 1, [0; 4], 1),
            Geom::for_test(3, 3, 41, 67, 10, (3, 3), 1, [1; 4], 1),
            Geom::for_test(2, 16, 57, 75, 12, (3, 3), 2, [1; 4], 1),
            Geom::for_test(2, 16, 57, 75, 12, (3, 3), 2, [0; 4], 1),
            Geom::for_test(2, 8, 50, 99, 6, (3, 3), 1, [1; 4], 2),
            Geom::for_test(2, 8, 50, 99, 6, (3, 3), 2, [1; 4], 2),
            Geom::for_test(2, 5, 40, 70, 9, (5, 3), 1, [2; 4], 1),
            Geom::for_test(1, 4, 60, 64, 7, (5, 5), 1, [2; 4], 1),
        ] {
            let x: Vec<f64> = (0..geo.n * geo.ci * geo.hw())
                .map(|_| rng.normal_f64())
                .collect();
            let gy: Vec<f64> = (0..geo.n * geo.co * geo.p())
                .map(|_| rng.normal_f64())
                .collect();
            let want = naive_bw(&x, &gy, &geo);
            // Sums of |terms| bound the rounding error of each entry.
            let scale = (geo.n * geo.p()) as f64;
            let got = backward_weight(&x, &gy, &geo);
            for (i, (a, e)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - e).abs() < 1e-9 * scale,
                    "f64 gw[{i}] {a} vs {e} for {geo:?}"
                );
            }
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let gyf: Vec<f32> = gy.iter().map(|&v| v as f32).collect();
            let got = backward_weight(&xf, &gyf, &geo);
            assert_eq!(got.len(), want.len());
            for (i, (a, e)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (*a as f64 - e).abs() < 2e-5 * scale.sqrt() * 4.0,
                    "f32 gw[{i}] {a} vs {e} for {geo:?}"
                );
            }
        }
    }
}
