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
                let (wv, tap) = (wc[ki * geo.kw + kj], geo.tap_cols(kj));
                for (oy, iy) in geo.tap_rows(ki) {
                    let src = &xc[iy * geo.w..][..geo.w];
                    tap.gather_add(wv, &mut oc[oy * geo.ow..][..geo.ow], src);
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
                let (wv, tap) = (wc[ki * geo.kw + kj], geo.tap_cols(kj));
                for (oy, iy) in geo.tap_rows(ki) {
                    let src = &gyc[oy * geo.ow..][..geo.ow];
                    tap.scatter_add(wv, &mut gc[iy * geo.w..][..geo.w], src);
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
                let tap = geo.tap_cols(kj);
                let mut acc = T::ZERO;
                for (oy, iy) in geo.tap_rows(ki) {
                    let src = &xc[iy * geo.w..][..geo.w];
                    acc = tap.dot_add(acc, &gyc[oy * geo.ow..][..geo.ow], src);
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
