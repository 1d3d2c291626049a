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

/// Minimum number of GEMM columns (output pixels of a tile) before batching stops.
const TILE_COLS: usize = 256;

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
    if m < SWAP_M && n > m {
        return gemm_raw(
            n, m, k, dst, dst_cs, dst_rs, accumulate, b, b_cs, b_rs, a, a_cs, a_rs, par,
        );
    }
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_cs as isize,
        dst_rs as isize,
        accumulate,
        a,
        a_cs as isize,
        a_rs as isize,
        b,
        b_cs as isize,
        b_rs as isize,
        T::ONE,
        T::ONE,
        false,
        false,
        false,
        par,
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
    let (hw, ow, p) = (geo.hw(), geo.ow, geo.p());
    for c in 0..geo.cig() {
        let xc = &xn[(g * geo.cig() + c) * hw..][..hw];
        for ki in 0..geo.kh {
            for kj in 0..geo.kw {
                let r = (c * geo.kh + ki) * geo.kw + kj;
                let row = &mut cols[r * ld + col0..][..p];
                let (lo, hi) = geo.col_range(kj);
                let off = kj * geo.dw;
                for oy in 0..geo.oh {
                    let dst = &mut row[oy * ow..][..ow];
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

/// The adjoint of [`im2col`]: adds `cols` back into group `g` of `gxn [ci, h, w]`.
fn col2im<T: Float>(cols: &[T], ld: usize, col0: usize, g: usize, geo: &Geom, gxn: &mut [T]) {
    let (hw, ow, p) = (geo.hw(), geo.ow, geo.p());
    for c in 0..geo.cig() {
        let gc = &mut gxn[(g * geo.cig() + c) * hw..][..hw];
        for ki in 0..geo.kh {
            for kj in 0..geo.kw {
                let r = (c * geo.kh + ki) * geo.kw + kj;
                let row = &cols[r * ld + col0..][..p];
                let (lo, hi) = geo.col_range(kj);
                let off = kj * geo.dw;
                for oy in 0..geo.oh {
                    let Some(iy) = geo.in_row(oy, ki) else {
                        continue;
                    };
                    let src = &row[oy * ow..][..ow];
                    let dst = &mut gc[iy * geo.w..][..geo.w];
                    if geo.sw == 1 {
                        let d0 = lo + off - geo.pl;
                        for (d, s) in dst[d0..d0 + hi - lo].iter_mut().zip(&src[lo..hi]) {
                            *d = *d + *s;
                        }
                    } else {
                        for ox in lo..hi {
                            let d = &mut dst[ox * geo.sw + off - geo.pl];
                            *d = *d + src[ox];
                        }
                    }
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
pub(crate) fn for_workers<T: Float>(
    buf: &mut [T],
    per: usize,
    spw: usize,
    work: impl Fn(usize, &mut [T]) + Send + Sync,
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
    let mut out = vec![T::ZERO; geo.n * co * p];
    if geo.depthwise() {
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
    for_workers(&mut out, co * p, spw, |s0, chunk| {
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
                            row.fill(b[g * cog + c]);
                        }
                    }
                    // SAFETY: dst holds cog×p elements, wg cog×k, bp k×p at the given strides.
                    unsafe {
                        gemm_raw(
                            cog,
                            p,
                            k,
                            dst.as_mut_ptr(),
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
                                        *d = *s + bv;
                                    }
                                }
                                None => dst.copy_from_slice(src),
                            }
                        }
                    }
                }
            }
            j0 += t;
        }
    });
    out
}

/// The gradient of [`forward`] with respect to `x` (no bias): `gx [n, ci, h, w]`. Also the
/// forward of `conv_transpose2d` (with `gy` its input).
pub(crate) fn backward_input<T: Float>(gy: &[T], wt: &[T], geo: &Geom) -> Vec<T> {
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

// ---------- depthwise: direct kernels, one channel at a time ----------

fn depthwise_fwd<T: Float>(xn: &[T], wt: &[T], bias: Option<&[T]>, geo: &Geom, on: &mut [T]) {
    let (hw, p, kk) = (geo.hw(), geo.p(), geo.kh * geo.kw);
    for c in 0..geo.ci {
        let xc = &xn[c * hw..][..hw];
        let oc = &mut on[c * p..][..p];
        oc.fill(bias.map_or(T::ZERO, |b| b[c]));
        let wc = &wt[c * kk..][..kk];
        for ki in 0..geo.kh {
            for kj in 0..geo.kw {
                let wv = wc[ki * geo.kw + kj];
                let (lo, hi) = geo.col_range(kj);
                let off = kj * geo.dw;
                for oy in 0..geo.oh {
                    let Some(iy) = geo.in_row(oy, ki) else {
                        continue;
                    };
                    let src = &xc[iy * geo.w..][..geo.w];
                    let dst = &mut oc[oy * geo.ow..][..geo.ow];
                    if geo.sw == 1 {
                        let s0 = lo + off - geo.pl;
                        for (d, s) in dst[lo..hi].iter_mut().zip(&src[s0..s0 + hi - lo]) {
                            *d = *d + wv * *s;
                        }
                    } else {
                        for ox in lo..hi {
                            dst[ox] = dst[ox] + wv * src[ox * geo.sw + off - geo.pl];
                        }
                    }
                }
            }
        }
    }
}

fn depthwise_bwd_input<T: Float>(gyn: &[T], wt: &[T], geo: &Geom, gxn: &mut [T]) {
    let (hw, p, kk) = (geo.hw(), geo.p(), geo.kh * geo.kw);
    for c in 0..geo.ci {
        let gc = &mut gxn[c * hw..][..hw];
        let gyc = &gyn[c * p..][..p];
        let wc = &wt[c * kk..][..kk];
        for ki in 0..geo.kh {
            for kj in 0..geo.kw {
                let wv = wc[ki * geo.kw + kj];
                let (lo, hi) = geo.col_range(kj);
                let off = kj * geo.dw;
                for oy in 0..geo.oh {
                    let Some(iy) = geo.in_row(oy, ki) else {
                        continue;
                    };
                    let src = &gyc[oy * geo.ow..][..geo.ow];
                    let dst = &mut gc[iy * geo.w..][..geo.w];
                    if geo.sw == 1 {
                        let d0 = lo + off - geo.pl;
                        for (d, s) in dst[d0..d0 + hi - lo].iter_mut().zip(&src[lo..hi]) {
                            *d = *d + wv * *s;
                        }
                    } else {
                        for ox in lo..hi {
                            let d = &mut dst[ox * geo.sw + off - geo.pl];
                            *d = *d + wv * src[ox];
                        }
                    }
                }
            }
        }
    }
}

fn depthwise_bwd_weight<T: Float>(xn: &[T], gyn: &[T], geo: &Geom, gw: &mut [T]) {
    let (hw, p, kk) = (geo.hw(), geo.p(), geo.kh * geo.kw);
    for c in 0..geo.ci {
        let xc = &xn[c * hw..][..hw];
        let gyc = &gyn[c * p..][..p];
        for ki in 0..geo.kh {
            for kj in 0..geo.kw {
                let (lo, hi) = geo.col_range(kj);
                let off = kj * geo.dw;
                let mut acc = T::ZERO;
                for oy in 0..geo.oh {
                    let Some(iy) = geo.in_row(oy, ki) else {
                        continue;
                    };
                    let src = &xc[iy * geo.w..][..geo.w];
                    let g = &gyc[oy * geo.ow..][..geo.ow];
                    if geo.sw == 1 {
                        let s0 = lo + off - geo.pl;
                        for (a, b) in g[lo..hi].iter().zip(&src[s0..s0 + hi - lo]) {
                            acc = acc + *a * *b;
                        }
                    } else {
                        for ox in lo..hi {
                            acc = acc + g[ox] * src[ox * geo.sw + off - geo.pl];
                        }
                    }
                }
                let d = &mut gw[c * kk + ki * geo.kw + kj];
                *d = *d + acc;
            }
        }
    }
}

/// The output-gradient rows of channels `c0..c0 + cog` for samples `s..s + t`, laid out as
/// one `[cog, t·p]` matrix: read in place when `t == 1`, else gathered into `tmp`.
/// Returns the pointer and its row stride.
#[allow(clippy::too_many_arguments)]
#[inline]
fn gy_tile<T: Copy>(
    gy: &[T],
    tmp: &mut [T],
    s: usize,
    t: usize,
    c0: usize,
    cog: usize,
    co: usize,
    p: usize,
) -> (*const T, usize) {
    if t == 1 {
        return (gy[(s * co + c0) * p..].as_ptr(), p);
    }
    let ld = t * p;
    for j in 0..t {
        for c in 0..cog {
            tmp[c * ld + j * p..][..p].copy_from_slice(&gy[((s + j) * co + c0 + c) * p..][..p]);
        }
    }
    (tmp.as_ptr(), ld)
}
