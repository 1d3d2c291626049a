//! Depthwise convolutions (one input and one output channel per group): direct kernels, one channel at a time, forward and both gradients.

use super::*;

// ---------- depthwise: direct kernels, one channel at a time ----------

pub(super) fn depthwise_fwd<T: Float>(
    xn: &[T],
    wt: &[T],
    bias: Option<&[T]>,
    geo: &Geom,
    on: &mut [T],
) {
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

pub(super) fn depthwise_bwd_input<T: Float>(gyn: &[T], wt: &[T], geo: &Geom, gxn: &mut [T]) {
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

pub(super) fn depthwise_bwd_weight<T: Float>(xn: &[T], gyn: &[T], geo: &Geom, gw: &mut [T]) {
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
pub(super) fn gy_tile<T: Copy>(
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
