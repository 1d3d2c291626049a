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

/// `U[e][o][c]` (16 × co × ci) from the 3×3 filters, element `(i, j)` of the filter of
/// the pair `(o, c)` being `filter(o, c, i, j)` (so that callers can flip and transpose
/// without copying).
fn transform_filters<T: Float>(
    co: usize,
    ci: usize,
    filter: impl Fn(usize, usize, usize, usize) -> T,
) -> Vec<T> {
    let half = T::of(0.5);
    let mut u = vec![T::ZERO; 16 * co * ci];
    for o in 0..co {
        for c in 0..ci {
            let g = |i: usize, j: usize| filter(o, c, i, j);
            // Gg: 4 × 3.
            let mut gg = [[T::ZERO; 3]; 4];
            #[allow(clippy::needless_range_loop)] // j indexes the filter and all four rows
            for j in 0..3 {
                let (g0, g1, g2) = (g(0, j), g(1, j), g(2, j));
                gg[0][j] = g0;
                gg[1][j] = (g0 + g1 + g2) * half;
                gg[2][j] = (g0 - g1 + g2) * half;
                gg[3][j] = g2;
            }
            for (i, r) in gg.iter().enumerate() {
                let v = [
                    r[0],
                    (r[0] + r[1] + r[2]) * half,
                    (r[0] - r[1] + r[2]) * half,
                    r[2],
                ];
                for (j, &x) in v.iter().enumerate() {
                    u[((i * 4 + j) * co + o) * ci + c] = x;
                }
            }
        }
    }
    u
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
    let (hw, ohw) = (s.h * s.w, s.oh * s.ow);
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
            let mut j0 = 0;
            while j0 < ns {
                let t = nb.min(ns - j0);
                let cols = t * tpi;
                // Input transform: V[e][c][col], col = (sample, ty, tx). For each tile row, the
                // four input rows (zero-padded to 2·tw + 2 columns) are combined by Bᵀ once,
                // whole rows at a time; then · B per tile, writing 16 contiguous streams.
                let prof = crate::profile::scope("winograd:input");
                let wp = 2 * tw + 2;
                let mut rows = vec![T::ZERO; 4 * wp];
                let mut comb = vec![T::ZERO; 4 * wp];
                for c in 0..s.ci {
                    for j in 0..t {
                        let xc = &x[((s0 + j0 + j) * s.ci + c) * hw..][..hw];
                        for ty in 0..th {
                            let col0 = (j * th + ty) * tw;
                            let y0 = 2 * ty as isize - s.pt;
                            for (i, row) in rows.chunks_exact_mut(wp).enumerate() {
                                let yy = y0 + i as isize;
                                row.fill(T::ZERO);
                                if yy < 0 || yy >= s.h as isize {
                                    continue;
                                }
                                let src = &xc[yy as usize * s.w..][..s.w];
                                // Padded column q reads input column q − pl.
                                let q0 = s.pl.max(0) as usize;
                                let skip = (-s.pl).max(0) as usize;
                                if skip < s.w && q0 < wp {
                                    let len = (s.w - skip).min(wp - q0);
                                    row[q0..q0 + len].copy_from_slice(&src[skip..skip + len]);
                                }
                            }
                            let (p0, rest) = rows.split_at(wp);
                            let (p1, rest) = rest.split_at(wp);
                            let (p2, p3) = rest.split_at(wp);
                            let (r0, rest) = comb.split_at_mut(wp);
                            let (r1, rest) = rest.split_at_mut(wp);
                            let (r2, r3) = rest.split_at_mut(wp);
                            for q in 0..wp {
                                r0[q] = p0[q] - p2[q];
                                r1[q] = p1[q] + p2[q];
                                r2[q] = p2[q] - p1[q];
                                r3[q] = p1[q] - p3[q];
                            }
                            for (i, r) in [&*r0, &*r1, &*r2, &*r3].into_iter().enumerate() {
                                let base = |k: usize| ((i * 4 + k) * s.ci + c) * cols + col0;
                                let (v0, v1, v2, v3) = (base(0), base(1), base(2), base(3));
                                for tx in 0..tw {
                                    let q = 2 * tx;
                                    let (a, b, cc, d) = (r[q], r[q + 1], r[q + 2], r[q + 3]);
                                    v[v0 + tx].write(a - cc);
                                    v[v1 + tx].write(b + cc);
                                    v[v2 + tx].write(cc - b);
                                    v[v3 + tx].write(b - d);
                                }
                            }
                        }
                    }
                }
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
                // Output transform: Y = Aᵀ m A for each (o, tile), a tile row at a time from
                // 16 contiguous streams into two output-row buffers.
                let _prof = crate::profile::scope("winograd:output");
                let mut y0 = vec![T::ZERO; 2 * tw];
                let mut y1 = vec![T::ZERO; 2 * tw];
                for o in 0..s.co {
                    let b = bias.map_or(T::ZERO, |b| b[o]);
                    for j in 0..t {
                        let yo = &mut chunk[((j0 + j) * s.co + o) * ohw..][..ohw];
                        for ty in 0..th {
                            let col0 = (j * th + ty) * tw;
                            let st: [&[T]; 16] =
                                std::array::from_fn(|e| &m[(e * s.co + o) * cols + col0..][..tw]);
                            for tx in 0..tw {
                                let a = |i: usize, k: usize| st[i * 4 + k][tx];
                                let mut t0 = [T::ZERO; 4];
                                let mut t1 = [T::ZERO; 4];
                                for k in 0..4 {
                                    let (m0, m1, m2, m3) = (a(0, k), a(1, k), a(2, k), a(3, k));
                                    t0[k] = m0 + m1 + m2;
                                    t1[k] = m1 - m2 - m3;
                                }
                                y0[2 * tx] = t0[0] + t0[1] + t0[2] + b;
                                y0[2 * tx + 1] = t0[1] - t0[2] - t0[3] + b;
                                y1[2 * tx] = t1[0] + t1[1] + t1[2] + b;
                                y1[2 * tx + 1] = t1[1] - t1[2] - t1[3] + b;
                            }
                            let oy = 2 * ty;
                            yo[oy * s.ow..][..s.ow].write_copy_of_slice(&y0[..s.ow]);
                            if oy + 1 < s.oh {
                                yo[(oy + 1) * s.ow..][..s.ow].write_copy_of_slice(&y1[..s.ow]);
                            }
                        }
                    }
                }
                j0 += t;
            }
        },
    );
    // SAFETY: the workers covered every sample, and for each every channel's every
    // output row (rows 2·ty and 2·ty + 1 for every tile row ty < ⌈oh/2⌉).
    unsafe { out.set_len(len) };
    out
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
    let u = transform_filters(co, ci, |o, c, i, j| wt[((o * ci + c) * 3 + i) * 3 + j]);
    let s = Shape {
        n: geo.n,
        ci,
        h: geo.h,
        w: geo.w,
        co,
        oh: geo.oh,
        ow: geo.ow,
        pt: geo.pt as isize,
        pl: geo.pl as isize,
    };
    correlate(x, &u, bias, s, geo)
}

/// The input gradient of a convolution where [`applies`] holds: `gy` correlated with the
/// flipped, channel-transposed filters, padded by `2 − pad`.
pub(crate) fn backward_input<T: Float>(gy: &[T], wt: &[T], geo: &Geom) -> Vec<T> {
    let (co, ci) = (geo.co, geo.ci);
    // Output channel c of the gradient, input channel o: w[o][c][2 − i][2 − j].
    let u = transform_filters(ci, co, |c, o, i, j| {
        wt[((o * ci + c) * 3 + (2 - i)) * 3 + (2 - j)]
    });
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
    fn agrees_with_the_im2col_path_forward_and_backward() {
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
        }
    }
}
