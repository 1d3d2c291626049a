//! Direct (GEMM-free) kernels for stride-1, 3-wide convolutions in f32 on AVX-512: the weight gradient and the forward / input gradient of narrow maps, where they beat im2col + GEMM.

use super::*;

// ---------- direct weight gradient: stride-1, 3-wide kernels, f32 on AVX-512 ----------

/// Output pixels per block of the direct weight gradient: long enough that the horizontal
/// sums at the end of each sweep cost little, short enough that a block's output gradient
/// and padded input rows stay in L2.
pub(super) const DIRECT_BLOCK_PIXELS: usize = 2048;

/// Whether `T` is f32 and the convolution has stride 1 and no dilation: what both
/// direct kernels need besides AVX-512.
#[cfg(target_arch = "x86_64")]
fn f32_unit_steps<T: 'static>(geo: &Geom) -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && (geo.sh, geo.sw, geo.dh, geo.dw) == (1, 1, 1, 1)
}

/// Whether [`backward_weight`] takes the direct kernel: f32 with AVX-512, stride 1,
/// no dilation, 3-wide kernels (any height), not depthwise, rows of at least 32
/// pixels (two full vectors; narrower maps waste most of each masked vector, where the
/// GEMM path is better), and at most 128 × 128 channels per group (VGG's 256- and
/// 512-channel layers at 56 and 28 pixels ran 30–40 % slower here than on the GEMM path).
pub(super) fn direct_bw_applies<T: 'static>(geo: &Geom) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        f32_unit_steps::<T>(geo)
            && geo.kw == 3
            && !geo.depthwise()
            && geo.ow >= 32
            && geo.cig() * geo.cog() <= 128 * 128
            && crate::cpu::caps::avx512()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = geo;
        false
    }
}

/// Adds the weight gradient of samples `s0..s0 + ns` to `gw [co, cig·kh·3]` by the direct
/// kernel: for each block of output rows, the input rows it reads are copied once into a
/// zero-padded buffer (so the kernel has no edge cases), then [`kernels::gw_block`] sums
/// `gy[o] · x[c] shifted by (ki, kj)` over the block's pixels in registers.
#[cfg(target_arch = "x86_64")]
pub(super) fn direct_bw<T: 'static>(
    x: &[T],
    gy: &[T],
    geo: &Geom,
    s0: usize,
    ns: usize,
    gw: &mut [T],
) {
    let x = crate::cpu::simd::as_f32(x).expect("direct kernel is f32 only");
    let gy = crate::cpu::simd::as_f32(gy).expect("direct kernel is f32 only");
    let gw = crate::cpu::simd::as_f32_mut(gw).expect("direct kernel is f32 only");
    let (cig, cog, k, hw, p) = (geo.cig(), geo.cog(), geo.k(), geo.hw(), geo.p());
    let (ow, kh) = (geo.ow, geo.kh);
    let xw = ow + 2; // padded row width: ox + kj for kj < 3
    let mut rows = DIRECT_BLOCK_PIXELS.div_ceil(ow).clamp(1, geo.oh);
    // Keep the block (cog gradient rows + cig padded input rows) within ~512 KB of L2.
    while rows > 1 && 4 * (cog * rows * ow + cig * (rows + kh - 1) * xw) > 512 * 1024 {
        rows -= 1;
    }
    let xcs = (rows + kh - 1) * xw;
    let mut xp = vec![0f32; cig * xcs];
    for s in s0..s0 + ns {
        for g in 0..geo.groups {
            let xg = &x[(s * geo.ci + g * cig) * hw..][..cig * hw];
            let mut oy0 = 0;
            while oy0 < geo.oh {
                let r = rows.min(geo.oh - oy0);
                // Padded block: xp[c][yy][xx] = x[c][oy0 + yy − pt][xx − pl], 0 outside.
                let y0 = oy0 as isize - geo.pt as isize;
                let (h, w, pl) = (geo.h, geo.w, -(geo.pl as isize));
                pad_rows(xg, cig, h, w, y0, r + kh - 1, pl, xw, xcs, &mut xp);
                let gyb = &gy[(s * geo.co + g * cog) * p + oy0 * ow..];
                let gwg = &mut gw[g * cog * k..][..cog * k];
                // SAFETY: AVX-512 was detected; gyb holds cog channels of stride p with r·ow
                // pixels each, xp cig channels of (r + kh − 1) rows of xw, gwg cog×k.
                unsafe { kernels::gw_block(gyb, p, r, ow, &xp, xcs, xw, cig, kh, cog, gwg) };
                oy0 += r;
            }
        }
    }
}

/// `dst[c·dcs + yy·xw + xx] = src[c][y0 + yy][x0 + xx]` for `c < cin`, `yy < rows`,
/// `xx < xw`, reading 0 outside `src [cin, h, w]`: a zero-padded copy of the input rows
/// one block of a direct convolution reads.
#[allow(clippy::too_many_arguments)]
pub(super) fn pad_rows(
    src: &[f32],
    cin: usize,
    h: usize,
    w: usize,
    y0: isize,
    rows: usize,
    x0: isize,
    xw: usize,
    dcs: usize,
    dst: &mut [f32],
) {
    // Columns xx in [lo, hi) read input column x0 + xx (inside 0..w); the rest are 0.
    let lo = ((-x0).max(0) as usize).min(xw);
    let hi = ((w as isize - x0).max(0) as usize).clamp(lo, xw);
    for c in 0..cin {
        let sc = &src[c * h * w..][..h * w];
        for yy in 0..rows {
            let d = &mut dst[c * dcs + yy * xw..][..xw];
            let iy = y0 + yy as isize;
            if iy < 0 || iy >= h as isize || lo == hi {
                d.fill(0.0);
                continue;
            }
            let row = &sc[iy as usize * w..][..w];
            d[..lo].fill(0.0);
            let s0 = (lo as isize + x0) as usize;
            d[lo..hi].copy_from_slice(&row[s0..s0 + hi - lo]);
            d[hi..].fill(0.0);
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn direct_bw<T: 'static>(_: &[T], _: &[T], _: &Geom, _: usize, _: usize, _: &mut [T]) {
    unreachable!("direct_bw_applies is false off x86_64")
}

/// Whether [`forward`] and [`backward_input`] take the direct kernel
/// ([`direct_correlate`]): f32 with AVX-512, stride 1, no dilation, one group, padding
/// smaller than the kernel, outputs at least 64 wide and at most 64 × 64 channels
/// (TinySSD's big maps and VGG's first layer, where the GEMM and Winograd paths' products
/// of few channels run far below peak; on 32-wide maps they are as fast, on narrower ones
/// and with VGG's 128 channels at 112 pixels Winograd is faster).
pub(super) fn direct_fwd_applies<T: 'static>(geo: &Geom, out_w: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        f32_unit_steps::<T>(geo)
            && geo.groups == 1
            && geo.pt < geo.kh
            && geo.pl < geo.kw
            && out_w >= 64
            && geo.ci * geo.co <= 64 * 64
            && crate::cpu::caps::avx512()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (geo, out_w);
        false
    }
}

/// The stride-1 correlation `out[n][o][y][x] = bias[o] + Σ_{c, ki, kj} wt[o][c][ki][kj] ·
/// inp[n][c][y + ki − pt][x + kj − pl]` (zeros outside `inp [n, cin, h, w]`) into
/// `out [n, cout, oh, ow]`, by the direct kernel; parallel over samples like the GEMM
/// paths. Output rows go in blocks whose padded input (`cin × (rows + kh − 1)` rows)
/// stays within ~256 KB of L2 while every output channel reads it.
#[allow(clippy::too_many_arguments)]
#[cfg(target_arch = "x86_64")]
pub(super) fn direct_correlate(
    inp: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    geo: &Geom,
    (n, cin, h, w): (usize, usize, usize, usize),
    (cout, oh, ow): (usize, usize, usize),
    (pt, pl): (isize, isize),
) -> Vec<f32> {
    let (kh, kw) = (geo.kh, geo.kw);
    let ohw = oh * ow;
    let mut out = vec![0f32; n * cout * ohw];
    let (spw, _) = plan(geo, 1);
    let xw = ow + kw - 1;
    let rows = ((64 * 1024) / (cin * xw).max(1))
        .saturating_sub(kh - 1)
        .clamp(1, oh.max(1));
    let xcs = (rows + kh - 1) * xw;
    for_workers(&mut out, cout * ohw, spw, |s0, chunk| {
        let mut xp = vec![0f32; cin * xcs];
        for (j, on) in chunk.chunks_mut(cout * ohw).enumerate() {
            let xn = &inp[(s0 + j) * cin * h * w..][..cin * h * w];
            let mut oy0 = 0;
            while oy0 < oh {
                let r = rows.min(oh - oy0);
                pad_rows(
                    xn,
                    cin,
                    h,
                    w,
                    oy0 as isize - pt,
                    r + kh - 1,
                    -pl,
                    xw,
                    xcs,
                    &mut xp,
                );
                let ob = &mut on[oy0 * ow..];
                // SAFETY: AVX-512 was detected; xp holds cin channels of r + kh − 1 padded
                // rows, wt cout×cin×kh×kw, ob cout channels (stride ohw) of r·ow pixels.
                unsafe {
                    kernels::fwd_block(&xp, xcs, xw, cin, (kh, kw), wt, bias, cout, r, ow, ob, ohw)
                };
                oy0 += r;
            }
        }
    });
    out
}

#[allow(clippy::too_many_arguments)]
#[cfg(not(target_arch = "x86_64"))]
pub(super) fn direct_correlate(
    _: &[f32],
    _: &[f32],
    _: Option<&[f32]>,
    _: &Geom,
    _: (usize, usize, usize, usize),
    _: (usize, usize, usize),
    _: (isize, isize),
) -> Vec<f32> {
    unreachable!("direct_fwd_applies is false off x86_64")
}

/// [`forward`] by [`direct_correlate`] (f32 only).
pub(super) fn direct_forward<T: 'static>(
    x: &[T],
    wt: &[T],
    bias: Option<&[T]>,
    geo: &Geom,
) -> Vec<T> {
    use crate::cpu::simd::as_f32;
    fn f<T: 'static>(v: &[T]) -> &[f32] {
        as_f32(v).expect("direct kernel is f32 only")
    }
    let out = direct_correlate(
        f(x),
        f(wt),
        bias.map(f),
        geo,
        (geo.n, geo.ci, geo.h, geo.w),
        (geo.co, geo.oh, geo.ow),
        (geo.pt as isize, geo.pl as isize),
    );
    crate::cpu::simd::vec_from_f32(out)
}

/// [`backward_input`] by [`direct_correlate`] (f32 only): `gy` correlated with the filters
/// flipped in both spatial dimensions and transposed in their channels, padded by
/// `k − 1 − pad`.
pub(super) fn direct_backward_input<T: 'static>(gy: &[T], wt: &[T], geo: &Geom) -> Vec<T> {
    use crate::cpu::simd::as_f32;
    let gy = as_f32(gy).expect("direct kernel is f32 only");
    let wt = as_f32(wt).expect("direct kernel is f32 only");
    let (ci, co, kh, kw) = (geo.ci, geo.co, geo.kh, geo.kw);
    let mut wf = vec![0f32; wt.len()];
    for o in 0..co {
        for c in 0..ci {
            for ki in 0..kh {
                for kj in 0..kw {
                    wf[((c * co + o) * kh + ki) * kw + kj] =
                        wt[((o * ci + c) * kh + kh - 1 - ki) * kw + kw - 1 - kj];
                }
            }
        }
    }
    let out = direct_correlate(
        gy,
        &wf,
        None,
        geo,
        (geo.n, co, geo.oh, geo.ow),
        (ci, geo.h, geo.w),
        ((kh - 1 - geo.pt) as isize, (kw - 1 - geo.pl) as isize),
    );
    crate::cpu::simd::vec_from_f32(out)
}

#[cfg(target_arch = "x86_64")]
mod kernels {
    use std::arch::x86_64::*;

    /// `gw[o][(c·kh + ki)·3 + kj] += Σ_{y < rows, x < ow} gy[o·gcs + y·ow + x] ·
    /// xp[c·xcs + (y + ki)·xw + x + kj]` for all `o < cog`, `c < cig`, `ki < kh`, `kj < 3`.
    ///
    /// Output channels go 8 at a time (then 4, 2, 1): for one `(c, ki)`, 8 × 3 vector
    /// accumulators (24 of the 32 zmm registers), and per 16 pixels 3 loads of the input
    /// row (shifted by kj), 8 of the gradient rows and 24 FMAs. The last partial vector
    /// of each row is read with a mask.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gw_block(
        gy: &[f32],
        gcs: usize,
        rows: usize,
        ow: usize,
        xp: &[f32],
        xcs: usize,
        xw: usize,
        cig: usize,
        kh: usize,
        cog: usize,
        gw: &mut [f32],
    ) {
        debug_assert!(gy.len() >= (cog - 1) * gcs + rows * ow);
        debug_assert!(xp.len() >= cig * xcs && xcs >= (rows + kh - 1) * xw && xw >= ow + 2);
        debug_assert!(gw.len() >= cog * cig * kh * 3);
        let mut o = 0;
        while o < cog {
            let left = cog - o;
            let step = if left >= 8 {
                sweep::<8>(gy, gcs, o, rows, ow, xp, xcs, xw, cig, kh, gw)
            } else if left >= 4 {
                sweep::<4>(gy, gcs, o, rows, ow, xp, xcs, xw, cig, kh, gw)
            } else if left >= 2 {
                sweep::<2>(gy, gcs, o, rows, ow, xp, xcs, xw, cig, kh, gw)
            } else {
                sweep::<1>(gy, gcs, o, rows, ow, xp, xcs, xw, cig, kh, gw)
            };
            o += step;
        }
    }

    /// [`gw_block`] for the `O` output channels `o0..o0 + O`; returns `O`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sweep<const O: usize>(
        gy: &[f32],
        gcs: usize,
        o0: usize,
        rows: usize,
        ow: usize,
        xp: &[f32],
        xcs: usize,
        xw: usize,
        cig: usize,
        kh: usize,
        gw: &mut [f32],
    ) -> usize {
        let k = cig * kh * 3;
        let gp = gy.as_ptr().add(o0 * gcs);
        let tail: __mmask16 = ((1u32 << (ow % 16)) - 1) as __mmask16;
        for c in 0..cig {
            for ki in 0..kh {
                let mut acc = [[_mm512_setzero_ps(); 3]; O];
                for y in 0..rows {
                    let xr = xp.as_ptr().add(c * xcs + (y + ki) * xw);
                    let gr = gp.add(y * ow);
                    let mut x = 0;
                    let mut step = |x: usize, m: __mmask16| {
                        let x0 = _mm512_maskz_loadu_ps(m, xr.add(x));
                        let x1 = _mm512_maskz_loadu_ps(m, xr.add(x + 1));
                        let x2 = _mm512_maskz_loadu_ps(m, xr.add(x + 2));
                        for (i, a) in acc.iter_mut().enumerate() {
                            let g = _mm512_maskz_loadu_ps(m, gr.add(i * gcs + x));
                            a[0] = _mm512_fmadd_ps(g, x0, a[0]);
                            a[1] = _mm512_fmadd_ps(g, x1, a[1]);
                            a[2] = _mm512_fmadd_ps(g, x2, a[2]);
                        }
                    };
                    while x + 16 <= ow {
                        step(x, 0xffff);
                        x += 16;
                    }
                    if x < ow {
                        step(x, tail);
                    }
                }
                for (i, a) in acc.iter().enumerate() {
                    let d = &mut gw[(o0 + i) * k + (c * kh + ki) * 3..][..3];
                    for (dv, v) in d.iter_mut().zip(a) {
                        *dv += _mm512_reduce_add_ps(*v);
                    }
                }
            }
        }
        O
    }

    /// One block of a direct correlation: `out[o·ocs + y·ow + x] = bias[o] +
    /// Σ_{c, ki, kj} wt[((o·cin + c)·kh + ki)·kw + kj] · xp[c·xcs + (y + ki)·xw + x + kj]`
    /// for `o < cout`, `y < rows`, `x < ow`, `xp` a zero-padded input block.
    ///
    /// Register tile: 8 output channels × 48 pixels (24 zmm accumulators); per tap 3 input
    /// loads, 8 weight broadcasts, 24 FMAs. Row ends go 16 pixels at a time, the last
    /// one masked; channel remainders go 4, 2, 1 at a time.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fwd_block(
        xp: &[f32],
        xcs: usize,
        xw: usize,
        cin: usize,
        (kh, kw): (usize, usize),
        wt: &[f32],
        bias: Option<&[f32]>,
        cout: usize,
        rows: usize,
        ow: usize,
        out: &mut [f32],
        ocs: usize,
    ) {
        debug_assert!(xp.len() >= cin * xcs && xcs >= (rows + kh - 1) * xw && xw >= ow + kw - 1);
        debug_assert!(wt.len() >= cout * cin * kh * kw);
        debug_assert!(out.len() >= (cout - 1) * ocs + rows * ow);
        let f = Fwd {
            xp: xp.as_ptr(),
            xcs,
            xw,
            cin,
            kh,
            kw,
            wt: wt.as_ptr(),
            bias: bias.map(|b| b.as_ptr()),
            ow,
            out: out.as_mut_ptr(),
            ocs,
        };
        let mut o = 0;
        while o < cout {
            let left = cout - o;
            o += if left >= 8 {
                f.rows::<8>(o, rows)
            } else if left >= 4 {
                f.rows::<4>(o, rows)
            } else if left >= 2 {
                f.rows::<2>(o, rows)
            } else {
                f.rows::<1>(o, rows)
            };
        }
    }

    /// The operands of [`fwd_block`], as raw pointers (checked there).
    struct Fwd {
        xp: *const f32,
        xcs: usize,
        xw: usize,
        cin: usize,
        kh: usize,
        kw: usize,
        wt: *const f32,
        bias: Option<*const f32>,
        ow: usize,
        out: *mut f32,
        ocs: usize,
    }

    impl Fwd {
        /// Output channels `o0..o0 + O` of every row; returns `O`.
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn rows<const O: usize>(&self, o0: usize, rows: usize) -> usize {
            let ow = self.ow;
            let tail: __mmask16 = ((1u32 << (ow % 16)) - 1) as __mmask16;
            for y in 0..rows {
                let mut x = 0;
                while x + 48 <= ow {
                    self.tile::<O, 3>(o0, y, x, 0xffff);
                    x += 48;
                }
                while x < ow {
                    let m = if x + 16 <= ow { 0xffff } else { tail };
                    self.tile::<O, 1>(o0, y, x, m);
                    x += 16;
                }
            }
            O
        }

        /// Channels `o0..o0 + O`, row `y`, pixels `x..x + 16·V` (the last vector masked by `m`).
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn tile<const O: usize, const V: usize>(
            &self,
            o0: usize,
            y: usize,
            x: usize,
            m: __mmask16,
        ) {
            let mask = |v: usize| if v + 1 == V { m } else { 0xffff };
            let mut acc = [[_mm512_setzero_ps(); V]; O];
            if let Some(b) = self.bias {
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = [_mm512_set1_ps(*b.add(o0 + i)); V];
                }
            }
            let wk = self.cin * self.kh * self.kw;
            for c in 0..self.cin {
                for ki in 0..self.kh {
                    let xr = self.xp.add(c * self.xcs + (y + ki) * self.xw + x);
                    let wr = self.wt.add(o0 * wk + (c * self.kh + ki) * self.kw);
                    for kj in 0..self.kw {
                        let xs: [__m512; V] = std::array::from_fn(|v| {
                            _mm512_maskz_loadu_ps(mask(v), xr.add(kj + 16 * v))
                        });
                        for (i, a) in acc.iter_mut().enumerate() {
                            let wv = _mm512_set1_ps(*wr.add(i * wk + kj));
                            for v in 0..V {
                                a[v] = _mm512_fmadd_ps(wv, xs[v], a[v]);
                            }
                        }
                    }
                }
            }
            for (i, a) in acc.iter().enumerate() {
                let dst = self.out.add((o0 + i) * self.ocs + y * self.ow + x);
                for (v, av) in a.iter().enumerate() {
                    _mm512_mask_storeu_ps(dst.add(16 * v), mask(v), *av);
                }
            }
        }
    }
}
