//! Winograd F(2×2, 3×3) for 3×3 stride-1 convolutions (ResNet's and VGG's workhorse):
//! each 2×2 output tile costs 16 multiplications per channel pair instead of 36.
//!
//! With `U = G·g·Gᵀ` (each 3×3 filter → 4×4), `V = Bᵀ·d·B` (each 4×4 input patch → 4×4) and
//! `Y = Aᵀ·[U ⊙ V]·A` (→ the 2×2 outputs), the sum over input channels becomes 16
//! independent GEMMs `M[e] = U[e] · V[e]` (`[co × ci] · [ci × tiles]`, one per transform
//! element `e`), which run on the tuned GEMM kernel. Samples are split over workers as in
//! the im2col path and tiled so that each GEMM has a few hundred columns.
//!
//! The same routine computes the input gradient of such a convolution: it is a
//! cross-correlation of the output gradient with the filters flipped in both spatial
//! dimensions and transposed in their channels, padded by `2 − pad`.
//!
//! The transforms (Lavin & Gray, 2015):
//! `Bᵀ = [[1,0,−1,0],[0,1,1,0],[0,−1,1,0],[0,1,0,−1]]`,
//! `G = [[1,0,0],[½,½,½],[½,−½,½],[0,0,1]]`, `Aᵀ = [[1,1,1,0],[0,1,−1,−1]]`.

use super::conv::{for_workers, gemm_raw, plan, Geom};
use crate::dtype::Float;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Columns each GEMM should have at least (tiles of several samples side by side).
const MIN_TILES: usize = 256;

/// Whether a convolution takes the Winograd path: 3×3, stride 1, no dilation, one group,
/// enough channels for the transforms to pay off, and maps of at least 4×4 (on ResNet's
/// 3×3 maps the padded 2×2 tiles waste most of the saving; im2col is as fast there).
pub(crate) fn applies(geo: &Geom) -> bool {
    geo.kh == 3
        && geo.kw == 3
        && geo.sh == 1
        && geo.sw == 1
        && geo.dh == 1
        && geo.dw == 1
        && geo.groups == 1
        && geo.ci >= 16
        && geo.co >= 16
        && geo.oh >= 4
        && geo.ow >= 4
        && geo.h >= 4
        && geo.w >= 4
}

/// `U[e][o][c]` (16 × co × ci) from the 3×3 filters `w [co, ci, 3, 3]`.
fn transform_filters<T: Float>(co: usize, ci: usize, w: &[T]) -> Vec<T> {
    let mut u = vec![T::ZERO; 16 * co * ci];
    with_simd(
        #[inline(always)]
        || transform_filters_body(co, ci, w, &mut u),
    );
    u
}

/// The body of [`transform_filters`]: per output channel, the filters' nine elements are
/// first laid out as nine planes over the input channels, so that `G·g·Gᵀ` runs over
/// unit-stride slices (vectorised) and writes each of the 16 `U[e][o]` rows whole.
#[inline(always)]
fn transform_filters_body<T: Float>(co: usize, ci: usize, w: &[T], u: &mut [T]) {
    let half = T::of(0.5);
    let mut planes = vec![T::ZERO; 9 * ci];
    let mut gg = vec![T::ZERO; 12 * ci];
    for o in 0..co {
        for (c, f) in w[o * ci * 9..][..ci * 9].chunks_exact(9).enumerate() {
            for (k, &x) in f.iter().enumerate() {
                planes[k * ci + c] = x;
            }
        }
        let p = |k: usize| &planes[k * ci..][..ci];
        // G·g (4 × 3 planes): rows g0, (g0 + g1 + g2)/2, (g0 − g1 + g2)/2, g2 of column j.
        for j in 0..3 {
            let (g0, g1, g2) = (p(j), p(3 + j), p(6 + j));
            // Row i of G·g is gg[i·3·ci..], its column j the ci elements at j·ci in it.
            let (d0, rest) = gg.split_at_mut(3 * ci);
            let (d1, rest) = rest.split_at_mut(3 * ci);
            let (d2, d3) = rest.split_at_mut(3 * ci);
            let r = j * ci..(j + 1) * ci;
            let (d0, d1) = (&mut d0[r.clone()], &mut d1[r.clone()]);
            let (d2, d3) = (&mut d2[r.clone()], &mut d3[r]);
            for c in 0..ci {
                let (a, b, e) = (g0[c], g1[c], g2[c]);
                d0[c] = a;
                d1[c] = (a + b + e) * half;
                d2[c] = (a - b + e) * half;
                d3[c] = e;
            }
        }
        // (G·g)·Gᵀ: row i of G·g, columns r0, (r0 + r1 + r2)/2, (r0 − r1 + r2)/2, r2.
        for i in 0..4 {
            let r = |j: usize| &gg[(i * 3 + j) * ci..][..ci];
            let (r0, r1, r2) = (r(0), r(1), r(2));
            let at = |j: usize| ((i * 4 + j) * co + o) * ci;
            u[at(0)..][..ci].copy_from_slice(r0);
            for (d, ((a, b), e)) in u[at(1)..][..ci].iter_mut().zip(r0.iter().zip(r1).zip(r2)) {
                *d = (*a + *b + *e) * half;
            }
            for (d, ((a, b), e)) in u[at(2)..][..ci].iter_mut().zip(r0.iter().zip(r1).zip(r2)) {
                *d = (*a - *b + *e) * half;
            }
            u[at(3)..][..ci].copy_from_slice(r2);
        }
    }
}

/// The shape of one Winograd correlation: input `[n, ci, h, w]`, output `[n, co, oh, ow]`,
/// the input read at `(2·ty + i − pt, 2·tx + j − pl)` (zeros outside).
#[derive(Clone, Copy)]
struct Shape {
    n: usize,
    ci: usize,
    h: usize,
    w: usize,
    co: usize,
    oh: usize,
    ow: usize,
    pt: isize,
    pl: isize,
}

impl Shape {
    /// The convolution's own correlation (its forward, and the input of its weight gradient).
    fn forward(geo: &Geom) -> Shape {
        Shape {
            n: geo.n,
            ci: geo.ci,
            h: geo.h,
            w: geo.w,
            co: geo.co,
            oh: geo.oh,
            ow: geo.ow,
            pt: geo.pt as isize,
            pl: geo.pl as isize,
        }
    }
}

/// Input transform of samples `first..first + t` of `x`: `V[e][c][col] = (Bᵀ·d·B)[e]` for the
/// 4×4 patch `d` of channel `c` under tile `col = (sample − first, ty, tx)`, into the first
/// `16·ci·cols` elements of `v` (`cols = t·th·tw`), every one of which it writes.
#[inline(always)]
fn input_transform<T: Float>(
    x: &[T],
    s: &Shape,
    first: usize,
    t: usize,
    cols: usize,
    v: &mut [MaybeUninit<T>],
) {
    let (th, tw) = (s.oh.div_ceil(2), s.ow.div_ceil(2));
    let (tpi, hw) = (th * tw, s.h * s.w);
    // Every loop below runs over unit-stride slices, so that it vectorises:
    // 1. each padded row y (zeros outside the input; 2·th + 2 rows of 2·tw + 2 columns) is
    //    split into its even and odd columns `e`, `o` (tw + 1 each);
    // 2. · B along the row: h0 = e[q] − e[q+1], h1 = o[q] + e[q+1], h2 = e[q+1] − o[q],
    //    h3 = o[q] − o[q+1] (tw each), into plane k's row y/2 of the even-row or odd-row half;
    // 3. Bᵀ · down the columns, all tiles at once: tile (ty, tx) reads rows 2ty..2ty+3, which
    //    are rows ty and ty + 1 of the two halves, i.e. elements f and f + tw of them with
    //    f = ty·tw + tx, the tile's own index.
    let plane = (th + 1) * tw;
    let (mut e, mut o) = (vec![T::ZERO; tw + 1], vec![T::ZERO; tw + 1]);
    // h[(k·2 + parity)·plane + (y/2)·tw + tx]
    let mut h = vec![T::ZERO; 8 * plane];
    for c in 0..s.ci {
        for j in 0..t {
            let xc = &x[((first + j) * s.ci + c) * hw..][..hw];
            for y in 0..2 * th + 2 {
                let yy = y as isize - s.pt;
                if yy < 0 || yy >= s.h as isize {
                    e.fill(T::ZERO);
                    o.fill(T::ZERO);
                } else {
                    // Padded column q reads input column q − pl.
                    split_row(&xc[yy as usize * s.w..][..s.w], s.pl, &mut e, &mut o);
                }
                let (half, row) = (y % 2, y / 2);
                let (e0, e1) = (&e[..tw], &e[1..]);
                let (o0, o1) = (&o[..tw], &o[1..]);
                let at = |k: usize| (k * 2 + half) * plane + row * tw;
                for (d, (a, b)) in h[at(0)..][..tw].iter_mut().zip(e0.iter().zip(e1)) {
                    *d = *a - *b;
                }
                for (d, (a, b)) in h[at(1)..][..tw].iter_mut().zip(o0.iter().zip(e1)) {
                    *d = *a + *b;
                }
                for (d, (a, b)) in h[at(2)..][..tw].iter_mut().zip(e1.iter().zip(o0)) {
                    *d = *a - *b;
                }
                for (d, (a, b)) in h[at(3)..][..tw].iter_mut().zip(o0.iter().zip(o1)) {
                    *d = *a - *b;
                }
            }
            let col0 = j * tpi;
            for k in 0..4 {
                let he = &h[(k * 2) * plane..][..plane];
                let ho = &h[(k * 2 + 1) * plane..][..plane];
                let (a, b, cc, d) = (&he[..tpi], &ho[..tpi], &he[tw..tw + tpi], &ho[tw..tw + tpi]);
                let at = |i: usize| ((i * 4 + k) * s.ci + c) * cols + col0;
                for (dv, (a, c)) in v[at(0)..][..tpi].iter_mut().zip(a.iter().zip(cc)) {
                    dv.write(*a - *c);
                }
                for (dv, (b, c)) in v[at(1)..][..tpi].iter_mut().zip(b.iter().zip(cc)) {
                    dv.write(*b + *c);
                }
                for (dv, (c, b)) in v[at(2)..][..tpi].iter_mut().zip(cc.iter().zip(b)) {
                    dv.write(*c - *b);
                }
                for (dv, (b, d)) in v[at(3)..][..tpi].iter_mut().zip(b.iter().zip(d)) {
                    dv.write(*b - *d);
                }
            }
        }
    }
}

/// Correlates `x` with the transformed filters `u`, adding `bias` per output channel.
fn correlate<T: Float>(
    x: &[T],
    u: &[T],
    bias: Option<&[T]>,
    s: Shape,
    geo_for_plan: &Geom,
) -> Vec<T> {
    let (th, tw) = (s.oh.div_ceil(2), s.ow.div_ceil(2));
    let tpi = th * tw;
    let ohw = s.oh * s.ow;
    // The result and the two transform buffers are written whole before they are read
    // (checked by the tests of `forward`), so none is cleared first: clearing them cost
    // ResNet-18 (W3) about 2 % of its training step.
    let len = s.n * s.co * ohw;
    let mut out: Vec<T> = Vec::with_capacity(len);
    let (spw, par) = plan(geo_for_plan, 1);
    let nb = MIN_TILES.div_ceil(tpi).clamp(1, spw.max(1));
    for_workers(
        &mut out.spare_capacity_mut()[..len],
        s.co * ohw,
        spw,
        |s0, chunk| {
            let ns = chunk.len() / (s.co * ohw);
            let cols_max = nb.min(ns) * tpi;
            let mut v = unwritten::<T>(16 * s.ci * cols_max);
            let mut m = unwritten::<T>(16 * s.co * cols_max);
            let mut quads = vec![T::ZERO; 12 * tpi];
            let mut j0 = 0;
            while j0 < ns {
                let t = nb.min(ns - j0);
                let cols = t * tpi;
                let prof = crate::profile::scope("winograd:input");
                with_simd(
                    #[inline(always)]
                    || input_transform(x, &s, s0 + j0, t, cols, &mut v),
                );
                drop(prof);
                // M[e] = U[e] · V[e].
                let prof = crate::profile::scope("winograd:gemm");
                for e in 0..16 {
                    // SAFETY: m[e] holds co×cols, u[e] co×ci, v[e] ci×cols, all row-major;
                    // the input transform above wrote every (e, c, col) of v's first
                    // 16·ci·cols elements, and a product without accumulation only writes m.
                    unsafe {
                        gemm_raw(
                            s.co,
                            cols,
                            s.ci,
                            m[e * s.co * cols..].as_mut_ptr() as *mut T,
                            cols,
                            1,
                            false,
                            u[e * s.co * s.ci..].as_ptr(),
                            s.ci,
                            1,
                            v[e * s.ci * cols..].as_ptr() as *const T,
                            cols,
                            1,
                            par,
                        )
                    };
                }
                drop(prof);
                // SAFETY: the 16 products above wrote all of m's first 16·co·cols elements.
                let m: &[T] =
                    unsafe { std::slice::from_raw_parts(m.as_ptr() as *const T, 16 * s.co * cols) };
                let _prof = crate::profile::scope("winograd:output");
                with_simd(
                    #[inline(always)]
                    || {
                        for o in 0..s.co {
                            let b = bias.map_or(T::ZERO, |b| b[o]);
                            for j in 0..t {
                                let yo = &mut chunk[((j0 + j) * s.co + o) * ohw..][..ohw];
                                output_transform(
                                    m,
                                    s.co,
                                    o,
                                    cols,
                                    j * tpi,
                                    tw,
                                    b,
                                    &mut quads,
                                    yo,
                                    s.ow,
                                );
                            }
                        }
                    },
                );
                j0 += t;
            }
        },
    );
    // SAFETY: the workers covered every sample, and for each every channel's every
    // output row (rows 2·ty and 2·ty + 1 for every tile row ty < ⌈oh/2⌉).
    unsafe { out.set_len(len) };
    out
}

/// Output transform of one channel `o` of one sample: `Y = Aᵀ·M·A` for each of its
/// `tpi = quads.len() / 12` tiles (the 16 streams `m[e][o][col0..col0 + tpi]`), plus `b`,
/// written into every element of `yo [oh, ow]`.
///
/// How: `Aᵀ·M` (8 planes over the tiles), then `·A` into the
/// four outputs of each tile (4 planes), over unit-stride slices; then the planes are
/// interleaved into the output rows.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_transform<T: Float>(
    m: &[T],
    co: usize,
    o: usize,
    cols: usize,
    col0: usize,
    tw: usize,
    b: T,
    quads: &mut [T],
    yo: &mut [MaybeUninit<T>],
    ow: usize,
) {
    let tpi = quads.len() / 12;
    let st = |e: usize| &m[(e * co + o) * cols + col0..][..tpi];
    let (t, y) = quads.split_at_mut(8 * tpi);
    // Aᵀ·M: t0[k] = m0k + m1k + m2k, t1[k] = m1k − m2k − m3k (planes k and 4 + k of t).
    for k in 0..4 {
        let (m0, m1, m2, m3) = (st(k), st(4 + k), st(8 + k), st(12 + k));
        let (t0, t1) = t.split_at_mut(4 * tpi);
        let (t0, t1) = (&mut t0[k * tpi..][..tpi], &mut t1[k * tpi..][..tpi]);
        for (d, ((a, c), e)) in t0.iter_mut().zip(m0.iter().zip(m1).zip(m2)) {
            *d = *a + *c + *e;
        }
        for (d, ((a, c), e)) in t1.iter_mut().zip(m1.iter().zip(m2).zip(m3)) {
            *d = *a - *c - *e;
        }
    }
    // ·A: y_r0 = t_r[0] + t_r[1] + t_r[2] + b, y_r1 = t_r[1] − t_r[2] − t_r[3] + b.
    for r in 0..2 {
        let p = |k: usize| &t[(r * 4 + k) * tpi..][..tpi];
        let (q0, q1, q2, q3) = (p(0), p(1), p(2), p(3));
        let (y0, y1) = y[r * 2 * tpi..][..2 * tpi].split_at_mut(tpi);
        for (d, ((a, c), e)) in y0.iter_mut().zip(q0.iter().zip(q1).zip(q2)) {
            *d = *a + *c + *e + b;
        }
        for (d, ((a, c), e)) in y1.iter_mut().zip(q1.iter().zip(q2).zip(q3)) {
            *d = *a - *c - *e + b;
        }
    }
    // Output (2·ty + r, 2·tx + s) is plane 2r + s at tile ty·tw + tx.
    let even = ow / 2;
    for (oy, row) in yo.chunks_exact_mut(ow).enumerate() {
        let (ty, r) = (oy / 2, oy % 2);
        let p0 = &y[(2 * r) * tpi + ty * tw..][..tw];
        let p1 = &y[(2 * r + 1) * tpi + ty * tw..][..tw];
        for (pair, (a, c)) in row.chunks_exact_mut(2).zip(p0.iter().zip(p1)) {
            pair[0].write(*a);
            pair[1].write(*c);
        }
        if ow % 2 == 1 {
            row[ow - 1].write(p0[even]);
        }
    }
}

/// `e[q] = row[2q − pl]` and `o[q] = row[2q + 1 − pl]`, zero where that is outside `row`:
/// the even and odd columns of the row padded by `pl` on the left (and zeros on the right).
/// The interior is one unit-stride pass (no per-element bounds tests, no `memcpy` call for
/// these short rows).
#[inline(always)]
fn split_row<T: Float>(row: &[T], pl: isize, e: &mut [T], o: &mut [T]) {
    let (n, w) = (e.len() as isize, row.len() as isize);
    let at = |i: isize| {
        if (0..w).contains(&i) {
            row[i as usize]
        } else {
            T::ZERO
        }
    };
    // Interior: 0 ≤ 2q − pl and 2q + 1 − pl < w.
    let qa = ((pl + 1).div_euclid(2)).clamp(0, n);
    let qb = ((w + pl).div_euclid(2)).clamp(qa, n);
    for q in (0..qa).chain(qb..n) {
        e[q as usize] = at(2 * q - pl);
        o[q as usize] = at(2 * q + 1 - pl);
    }
    let (qa, qb) = (qa as usize, qb as usize);
    let src = &row[(2 * qa as isize - pl) as usize..][..2 * (qb - qa)];
    for ((pe, po), pair) in e[qa..qb]
        .iter_mut()
        .zip(o[qa..qb].iter_mut())
        .zip(src.chunks_exact(2))
    {
        *pe = pair[0];
        *po = pair[1];
    }
}

/// Runs `f` compiled for the widest SIMD path the kernels may take ([`cpu_path`]): the
/// transforms' loops are plain Rust, which the baseline x86-64 target would compile to
/// 128-bit SSE. `f` must be a closure around `#[inline(always)]` code, so that it is
/// inlined into (and compiled with) the wrapper's target features.
#[inline(always)]
fn with_simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::cpu::caps::{cpu_path, CpuPath};
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        match cpu_path() {
            // SAFETY: cpu_path never names a path the processor lacks.
            CpuPath::Avx512 => return unsafe { avx512(f) },
            // SAFETY: as above.
            CpuPath::Avx2 => return unsafe { avx2(f) },
            CpuPath::Scalar => {}
        }
    }
    f()
}

/// `n` elements of storage not yet written.
fn unwritten<T>(n: usize) -> Vec<MaybeUninit<T>> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: `MaybeUninit` needs no initialisation.
    unsafe { v.set_len(n) };
    v
}

/// `conv2d(x, w) + b` for a geometry where [`applies`] holds.
pub(crate) fn forward<T: Float>(x: &[T], wt: &[T], bias: Option<&[T]>, geo: &Geom) -> Vec<T> {
    let (co, ci) = (geo.co, geo.ci);
    let u = transform_filters(co, ci, wt);
    let s = Shape::forward(geo);
    correlate(x, &u, bias, s, geo)
}

/// The input gradient of a convolution where [`applies`] holds: `gy` correlated with the
/// flipped, channel-transposed filters, padded by `2 − pad`.
pub(crate) fn backward_input<T: Float>(gy: &[T], wt: &[T], geo: &Geom) -> Vec<T> {
    let (co, ci) = (geo.co, geo.ci);
    // Output channel c of the gradient, input channel o: w[o][c][2 − i][2 − j]. The
    // flipped filters are first laid out as [ci][co][3][3] (flipping both dimensions of a
    // row-major 3×3 reverses its nine elements), so that the transform reads them in
    // order: read in place, each step of its inner loop jumped ci·9 elements, which cost
    // ResNet-18's 256-channel layers a third of their input gradient.
    let mut flipped = vec![T::ZERO; co * ci * 9];
    for (o, wo) in wt.chunks_exact(ci * 9).enumerate() {
        for (c, f) in wo.chunks_exact(9).enumerate() {
            let dst = &mut flipped[(c * co + o) * 9..][..9];
            for (d, &e) in dst.iter_mut().zip(f.iter().rev()) {
                *d = e;
            }
        }
    }
    let u = transform_filters(ci, co, &flipped);
    let s = Shape {
        n: geo.n,
        ci: co,
        h: geo.oh,
        w: geo.ow,
        co: ci,
        oh: geo.h,
        ow: geo.w,
        pt: 2 - geo.pt as isize,
        pl: 2 - geo.pl as isize,
    };
    correlate(gy, &u, None, s, geo)
}

/// The weight gradient of a convolution where [`applies`] holds, `gw [co, ci, 3, 3]`.
///
/// Transposing the forward formula `Y = Aᵀ·[(G·g·Gᵀ) ⊙ V]·A` gives, summed over every
/// tile of every sample, `gw[o][c] = Gᵀ·(Σ_tiles (A·gy·Aᵀ)[o] ⊙ V[c])·G`, with `V` the
/// forward's input transform and `gy` the 2×2 output-gradient tile (zeros past the map's
/// edge). The sum is 16 GEMMs `W[e] += GY[e] · V[e]ᵀ` (`[co × tiles] · [tiles × ci]`):
/// 16 multiplications per 2×2 tile and channel pair where im2col needs 36.
pub(crate) fn backward_weight<T: Float>(x: &[T], gy: &[T], geo: &Geom) -> Vec<T> {
    let (co, ci) = (geo.co, geo.ci);
    let s = Shape::forward(geo);
    let (th, tw) = (s.oh.div_ceil(2), s.ow.div_ceil(2));
    let tpi = th * tw;
    let (spw, par) = plan(geo, 1);
    let spw = spw.max(1);
    let nb = MIN_TILES.div_ceil(tpi).clamp(1, spw);
    let wlen = 16 * co * ci;
    // W[e][o][c], the sum over the samples s0..s0 + ns (ns ≥ 1): the first block's products
    // write it whole, the later ones add to it, so it is not cleared first.
    let work = |s0: usize, ns: usize| -> Vec<T> {
        let mut acc: Vec<T> = Vec::with_capacity(wlen);
        let accp = acc.spare_capacity_mut().as_mut_ptr() as *mut T;
        let cols_max = nb.min(ns) * tpi;
        let mut v = unwritten::<T>(16 * ci * cols_max);
        let mut u = unwritten::<T>(16 * co * cols_max);
        let mut j0 = 0;
        while j0 < ns {
            let t = nb.min(ns - j0);
            let cols = t * tpi;
            let prof = crate::profile::scope("winograd:input");
            with_simd(
                #[inline(always)]
                || {
                    input_transform(x, &s, s0 + j0, t, cols, &mut v);
                    grad_transform(gy, &s, s0 + j0, t, cols, &mut u);
                },
            );
            drop(prof);
            let _prof = crate::profile::scope("winograd:gemm");
            for e in 0..16 {
                // SAFETY: acc has capacity for 16 co×ci blocks; u[e] is co×cols and v[e]
                // ci×cols (read transposed), both written whole by the two transforms above.
                // The first block's product (no accumulation) writes every element of
                // acc[e] before any later one reads it.
                unsafe {
                    gemm_raw(
                        co,
                        ci,
                        cols,
                        accp.add(e * co * ci),
                        ci,
                        1,
                        j0 > 0,
                        u[e * co * cols..].as_ptr() as *const T,
                        cols,
                        1,
                        v[e * ci * cols..].as_ptr() as *const T,
                        1,
                        cols,
                        par,
                    )
                };
            }
            j0 += t;
        }
        // SAFETY: the first block's 16 products wrote all 16·co·ci elements.
        unsafe { acc.set_len(wlen) };
        acc
    };
    let parts: Vec<Vec<T>> = if spw >= geo.n {
        vec![work(0, geo.n)]
    } else {
        let starts: Vec<usize> = (0..geo.n).step_by(spw).collect();
        crate::threads::run(|| {
            starts
                .par_iter()
                .map(|&s0| work(s0, spw.min(geo.n - s0)))
                .collect()
        })
    };
    // gw[o][c] = Gᵀ·(Σ_parts W)·G, in blocks of channel pairs spread over the threads.
    const PAIRS: usize = 512;
    let pairs = co * ci;
    let mut gw = vec![T::ZERO; pairs * 9];
    crate::threads::run(|| {
        gw.par_chunks_mut(9 * PAIRS)
            .enumerate()
            .for_each(|(b, out)| {
                with_simd(
                    #[inline(always)]
                    || filter_grad_block(&parts, pairs, b * PAIRS, out),
                )
            })
    });
    gw
}

/// `out[(p − p0)·9 + 3i + j] = (Gᵀ·W·G)[i][j]` for the channel pairs `p0..p0 + out.len()/9`,
/// `W[e]` being the sum over `parts` of `part[e·pairs + p]`, with
/// `Gᵀ = [[1, ½, ½, 0], [0, ½, −½, 0], [0, ½, ½, 1]]`: the sums and both products run over
/// unit-stride planes (one element per pair), then the nine planes are interleaved.
#[inline(always)]
fn filter_grad_block<T: Float>(parts: &[Vec<T>], pairs: usize, p0: usize, out: &mut [T]) {
    let n = out.len() / 9;
    let half = T::of(0.5);
    let mut w = vec![T::ZERO; 16 * n];
    for (e, we) in w.chunks_exact_mut(n).enumerate() {
        for (k, part) in parts.iter().enumerate() {
            let src = &part[e * pairs + p0..][..n];
            if k == 0 {
                we.copy_from_slice(src);
            } else {
                for (d, x) in we.iter_mut().zip(src) {
                    *d = *d + *x;
                }
            }
        }
    }
    // r = Gᵀ·(four planes a0..a3): r0 = a0 + (a1 + a2)/2, r1 = (a1 − a2)/2, r2 = (a1 + a2)/2 + a3.
    let g_t = |a: [&[T]; 4], r: [&mut [T]; 3]| {
        let [r0, r1, r2] = r;
        for q in 0..n {
            let (a0, a1, a2, a3) = (a[0][q], a[1][q], a[2][q], a[3][q]);
            let sum = (a1 + a2) * half;
            r0[q] = a0 + sum;
            r1[q] = (a1 - a2) * half;
            r2[q] = sum + a3;
        }
    };
    // Gᵀ·W: 3 × 4 planes (row i, column k at (i·4 + k)·n).
    let mut gtw = vec![T::ZERO; 12 * n];
    for k in 0..4 {
        let a = std::array::from_fn(|i| &w[(i * 4 + k) * n..][..n]);
        let (r0, rest) = gtw.split_at_mut(4 * n);
        let (r1, r2) = rest.split_at_mut(4 * n);
        let col = k * n..(k + 1) * n;
        g_t(
            a,
            [&mut r0[col.clone()], &mut r1[col.clone()], &mut r2[col]],
        );
    }
    // (Gᵀ·W)·G: row i of Gᵀ·W times G gives the filter row i (3 planes each).
    let mut planes = vec![T::ZERO; 9 * n];
    for i in 0..3 {
        let a = std::array::from_fn(|k| &gtw[(i * 4 + k) * n..][..n]);
        let (r0, rest) = planes[i * 3 * n..][..3 * n].split_at_mut(n);
        let (r1, r2) = rest.split_at_mut(n);
        g_t(a, [r0, r1, r2]);
    }
    for (q, f) in out.chunks_exact_mut(9).enumerate() {
        for (k, d) in f.iter_mut().enumerate() {
            *d = planes[k * n + q];
        }
    }
}

/// Output-gradient transform of samples `first..first + t`: `GY[e][o][col] = (A·g·Aᵀ)[e]`
/// for the 2×2 tile `g` of `gy [n, co, oh, ow]` under tile `col` (zeros past the map's
/// edge), `A = [[1, 0], [1, 1], [1, −1], [0, −1]]`, into the first `16·co·cols` elements of
/// `u`, every one of which it writes.
#[inline(always)]
fn grad_transform<T: Float>(
    gy: &[T],
    s: &Shape,
    first: usize,
    t: usize,
    cols: usize,
    u: &mut [MaybeUninit<T>],
) {
    let (th, tw) = (s.oh.div_ceil(2), s.ow.div_ceil(2));
    let (tpi, ohw) = (th * tw, s.oh * s.ow);
    // As in the input transform: each gradient row (zero-padded to 2·tw columns, rows past
    // oh zero) is split into even and odd columns, combined by A along the row into plane
    // k's even-row or odd-row half (a = e, a + b, a − b, −b), then by A down the columns
    // for all tiles at once (tile f reads element f of both halves).
    let plane = th * tw;
    let (mut e, mut o) = (vec![T::ZERO; tw], vec![T::ZERO; tw]);
    let mut h = vec![T::ZERO; 8 * plane];
    for oc in 0..s.co {
        for j in 0..t {
            let go = &gy[((first + j) * s.co + oc) * ohw..][..ohw];
            for y in 0..2 * th {
                if y < s.oh {
                    split_row(&go[y * s.ow..][..s.ow], 0, &mut e, &mut o);
                } else {
                    e.fill(T::ZERO);
                    o.fill(T::ZERO);
                }
                let (half, row) = (y % 2, y / 2);
                let at = |k: usize| (k * 2 + half) * plane + row * tw;
                h[at(0)..][..tw].copy_from_slice(&e);
                for (d, (a, b)) in h[at(1)..][..tw].iter_mut().zip(e.iter().zip(&o)) {
                    *d = *a + *b;
                }
                for (d, (a, b)) in h[at(2)..][..tw].iter_mut().zip(e.iter().zip(&o)) {
                    *d = *a - *b;
                }
                for (d, b) in h[at(3)..][..tw].iter_mut().zip(&o) {
                    *d = T::ZERO - *b;
                }
            }
            let col0 = j * tpi;
            for k in 0..4 {
                let a = &h[(k * 2) * plane..][..plane];
                let b = &h[(k * 2 + 1) * plane..][..plane];
                let at = |i: usize| ((i * 4 + k) * s.co + oc) * cols + col0;
                u[at(0)..][..tpi].write_copy_of_slice(a);
                for (d, (a, b)) in u[at(1)..][..tpi].iter_mut().zip(a.iter().zip(b)) {
                    d.write(*a + *b);
                }
                for (d, (a, b)) in u[at(2)..][..tpi].iter_mut().zip(a.iter().zip(b)) {
                    d.write(*a - *b);
                }
                for (d, b) in u[at(3)..][..tpi].iter_mut().zip(b) {
                    d.write(T::ZERO - *b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Generator;

    fn rand(g: &mut Generator, n: usize) -> Vec<f64> {
        (0..n).map(|_| g.normal_f64()).collect()
    }

    /// Frees NaN-filled buffers of these lengths, so that the allocator hands their
    /// memory to the next allocations: an element of a result or of a transform buffer
    /// read before it is written then shows as a NaN.
    fn poison(lens: &[usize]) {
        let bufs: Vec<Vec<f64>> = lens.iter().map(|&l| vec![f64::NAN; l]).collect();
        drop(std::hint::black_box(bufs));
    }

    #[test]
    fn agrees_with_the_im2col_path_forward_and_both_gradients() {
        let mut g = Generator::new(7);
        // Odd and even sizes, symmetric and one-sided padding, one tile and many.
        for &(n, ci, h, w, co, pt, pl, pb, pr) in &[
            (2, 16, 7, 9, 17, 1, 1, 1, 1),
            (3, 20, 6, 6, 16, 0, 0, 0, 0),
            (1, 16, 5, 8, 24, 2, 1, 0, 2),
            (5, 32, 4, 5, 16, 1, 1, 1, 1),
            (4, 16, 12, 12, 32, 1, 1, 1, 1),
        ] {
            let geo = Geom::for_test(n, ci, h, w, co, (3, 3), 1, [pt, pb, pl, pr], 1);
            assert!(applies(&geo));
            let x = rand(&mut g, n * ci * h * w);
            let wt = rand(&mut g, co * ci * 9);
            let b = rand(&mut g, co);
            let want = crate::cpu::conv::forward_im2col(&x, &wt, Some(&b), &geo);
            // The result and the transform buffers (16 per channel and tile) start unwritten.
            let tiles = n * geo.oh.div_ceil(2) * geo.ow.div_ceil(2);
            poison(&[want.len(), 16 * ci * tiles, 16 * co * tiles]);
            let got = forward(&x, &wt, Some(&b), &geo);
            assert_eq!(got.len(), want.len());
            for (a, e) in got.iter().zip(&want) {
                assert!(
                    (a - e).abs() < 1e-9 * (1.0 + e.abs()),
                    "forward {a} vs {e} for {geo:?}"
                );
            }
            let gy = rand(&mut g, n * co * geo.oh * geo.ow);
            let want = crate::cpu::conv::backward_input_im2col(&gy, &wt, &geo);
            let tiles = n * h.div_ceil(2) * w.div_ceil(2);
            poison(&[want.len(), 16 * co * tiles, 16 * ci * tiles]);
            let got = backward_input(&gy, &wt, &geo);
            assert_eq!(got.len(), want.len());
            for (a, e) in got.iter().zip(&want) {
                assert!(
                    (a - e).abs() < 1e-9 * (1.0 + e.abs()),
                    "backward {a} vs {e} for {geo:?}"
                );
            }
            let want = crate::cpu::conv::backward_weight_gemm(&x, &gy, &geo);
            let tiles = n * geo.oh.div_ceil(2) * geo.ow.div_ceil(2);
            poison(&[16 * ci * tiles, 16 * co * tiles]);
            let got = backward_weight(&x, &gy, &geo);
            assert_eq!(got.len(), want.len());
            for (a, e) in got.iter().zip(&want) {
                assert!(
                    (a - e).abs() < 1e-9 * (1.0 + e.abs()),
                    "weight gradient {a} vs {e} for {geo:?}"
                );
            }
        }
    }
}
