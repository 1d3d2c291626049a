//! Pooling kernels over row-major `[planes, H, W]` buffers (a plane is one (n, c) pair).
//!
//! Every pooling op is described by a [`Geom`]: for each output row and each output column
//! the in-bounds window `[start, end)` (stepped by the dilation) and the divisor factor of
//! that axis, so that one set of kernels serves max, average and adaptive pooling. The
//! common shapes have fast paths: non-overlapping 2×2 windows with stride 2, and global
//! (one window per plane) pooling. Work is split over planes with rayon when it is large.

use crate::dtype::Float;
use crate::threads::{self, PAR_MIN};
use rayon::prelude::*;

/// Work units (touched elements) per parallel task.
const TASK_WORK: usize = 1 << 14;

/// One window along one axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Win {
    /// First in-bounds position.
    pub start: usize,
    /// One past the last in-bounds position (the window steps by the dilation up to it).
    pub end: usize,
    /// This axis' factor of the averaging divisor.
    pub count: usize,
}

/// Which specialised kernel a geometry can use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fast {
    /// The general loops.
    None,
    /// Kernel 2×2, stride 2, no padding, no dilation, output exactly H/2 × W/2.
    TwoByTwo,
    /// One window covering the whole plane (divisor H·W).
    Global,
}

/// The full description of a pooling op on `planes` planes of `h × w`.
#[derive(Debug, Clone)]
pub(crate) struct Geom {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub rows: Vec<Win>,
    pub cols: Vec<Win>,
    pub dh: usize,
    pub dw: usize,
    pub fast: Fast,
    /// Column windows as (kernel, stride, padding) when they follow that rule (not for
    /// adaptive pooling): lets the max kernel run full windows without bounds logic.
    pub col_rule: Option<(usize, usize, usize)>,
    /// Some window has no element (the general max loop handles it).
    pub has_empty: bool,
    /// Whether each input row is read by some row window.
    pub row_used: Vec<bool>,
}

impl Geom {
    /// Finishes a geometry, detecting the fast paths.
    pub(crate) fn new(
        planes: usize,
        (h, w): (usize, usize),
        rows: Vec<Win>,
        cols: Vec<Win>,
        (dh, dw): (usize, usize),
        two_by_two: bool,
        col_rule: Option<(usize, usize, usize)>,
    ) -> Geom {
        let global = rows.len() == 1
            && cols.len() == 1
            && rows[0]
                == Win {
                    start: 0,
                    end: h,
                    count: h,
                }
            && cols[0]
                == Win {
                    start: 0,
                    end: w,
                    count: w,
                };
        let fast = if two_by_two && rows.len() == h / 2 && cols.len() == w / 2 {
            Fast::TwoByTwo
        } else if global {
            Fast::Global
        } else {
            Fast::None
        };
        let has_empty = rows.iter().chain(&cols).any(|r| r.start >= r.end);
        let mut row_used = vec![false; h];
        for r in &rows {
            for i in (r.start..r.end).step_by(dh) {
                row_used[i] = true;
            }
        }
        Geom {
            planes,
            h,
            w,
            rows,
            cols,
            dh,
            dw,
            fast,
            col_rule,
            has_empty,
            row_used,
        }
    }

    pub(crate) fn in_plane(&self) -> usize {
        self.h * self.w
    }

    pub(crate) fn out_plane(&self) -> usize {
        self.rows.len() * self.cols.len()
    }

    /// Elements touched per plane (a cost estimate for splitting the work).
    fn work(&self) -> usize {
        let taps: usize = self.rows.iter().map(|r| r.end - r.start).sum::<usize>() / self.dh
            * (self.cols.iter().map(|c| c.end - c.start).sum::<usize>() / self.dw);
        self.in_plane().max(taps).max(1)
    }
}

/// Calls `f(plane, a_plane, b_plane)` for every plane of `a` (planes of `pa` elements) and
/// of `b` (planes of `pb`; `b` is empty when `pb == 0`), in parallel when the work is large.
fn par_planes<A: Send, B: Send>(
    a: &mut [A],
    pa: usize,
    b: &mut [B],
    pb: usize,
    work: usize,
    f: impl Fn(usize, &mut [A], &mut [B]) + Sync + Send,
) {
    if pa == 0 || a.is_empty() {
        return;
    }
    let planes = a.len() / pa;
    if planes * work < PAR_MIN || planes < 2 || threads::num_threads() == 1 {
        for p in 0..planes {
            let bp: &mut [B] = if pb == 0 {
                &mut []
            } else {
                &mut b[p * pb..(p + 1) * pb]
            };
            f(p, &mut a[p * pa..(p + 1) * pa], bp);
        }
        return;
    }
    let per_task = (TASK_WORK / work).clamp(1, planes.div_ceil(2 * threads::num_threads()).max(1));
    threads::run(|| {
        if pb == 0 {
            a.par_chunks_mut(per_task * pa)
                .enumerate()
                .for_each(|(t, ca)| {
                    for (i, ap) in ca.chunks_mut(pa).enumerate() {
                        f(t * per_task + i, ap, &mut []);
                    }
                });
        } else {
            a.par_chunks_mut(per_task * pa)
                .zip(b.par_chunks_mut(per_task * pb))
                .enumerate()
                .for_each(|(t, (ca, cb))| {
                    for (i, (ap, bp)) in ca.chunks_mut(pa).zip(cb.chunks_mut(pb)).enumerate() {
                        f(t * per_task + i, ap, bp);
                    }
                });
        }
    });
}

/// `v` replaces the running maximum `m` (PyTorch's rule: strictly greater, or NaN).
#[inline(always)]
fn takes<T: Float>(v: T, m: T) -> bool {
    v > m || v.is_nan()
}

// ---------------------------------------------------------------------------------------
// max pooling
// ---------------------------------------------------------------------------------------

/// Max pooling forward: the maxima and, when `with_idx`, the flat `h·W + w` position of
/// each (the first maximum on ties; -1 for a window with no element).
pub(crate) fn max_forward<T: Float>(x: &[T], g: &Geom, with_idx: bool) -> (Vec<T>, Vec<i64>) {
    let (pi, po) = (g.in_plane(), g.out_plane());
    let mut out = vec![T::ZERO; g.planes * po];
    let mut idx = vec![0i64; if with_idx { g.planes * po } else { 0 }];
    let pb = if with_idx { po } else { 0 };
    let separable = !g.has_empty && g.fast != Fast::TwoByTwo;
    par_planes(&mut out, po, &mut idx, pb, g.work(), |p, o, ix| {
        let xp = &x[p * pi..(p + 1) * pi];
        // The fast kernels compare with a plain `>` (so they vectorise); a plane with a NaN
        // takes the exact general loop, which propagates it as PyTorch does.
        if has_nan(xp) {
            return if with_idx {
                max_plane::<T, true>(xp, g, o, ix)
            } else {
                max_plane::<T, false>(xp, g, o, ix)
            };
        }
        match (g.fast, with_idx) {
            (Fast::TwoByTwo, true) => max2x2_plane::<T, true>(xp, g, o, ix),
            (Fast::TwoByTwo, false) => max2x2_plane::<T, false>(xp, g, o, ix),
            _ if separable => {
                if with_idx {
                    max_sep_plane::<T, true>(xp, g, o, ix)
                } else {
                    max_sep_plane::<T, false>(xp, g, o, ix)
                }
            }
            (_, true) => max_plane::<T, true>(xp, g, o, ix),
            (_, false) => max_plane::<T, false>(xp, g, o, ix),
        }
    });
    (out, idx)
}

fn has_nan<T: Float>(x: &[T]) -> bool {
    let mut acc = [false; 16];
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..16 {
            acc[k] |= c[k].is_nan();
        }
    }
    acc.iter().any(|&b| b) || rest.iter().any(|v| v.is_nan())
}

fn max_plane<T: Float, const IDX: bool>(x: &[T], g: &Geom, out: &mut [T], idx: &mut [i64]) {
    let (w, ow) = (g.w, g.cols.len());
    let unit = g.dh == 1 && g.dw == 1;
    for (oh, r) in g.rows.iter().enumerate() {
        let orow = &mut out[oh * ow..(oh + 1) * ow];
        for (oc, c) in g.cols.iter().enumerate() {
            let mut best = T::NEG_INF;
            let mut bi: i64 = if r.start < r.end && c.start < c.end {
                (r.start * w + c.start) as i64
            } else {
                -1
            };
            if unit {
                for h in r.start..r.end {
                    let row = &x[h * w + c.start..h * w + c.end];
                    for (j, &v) in row.iter().enumerate() {
                        if takes(v, best) {
                            best = v;
                            if IDX {
                                bi = (h * w + c.start + j) as i64;
                            }
                        }
                    }
                }
            } else {
                for h in (r.start..r.end).step_by(g.dh) {
                    for ww in (c.start..c.end).step_by(g.dw) {
                        let v = x[h * w + ww];
                        if takes(v, best) {
                            best = v;
                            if IDX {
                                bi = (h * w + ww) as i64;
                            }
                        }
                    }
                }
            }
            orow[oc] = best;
            if IDX {
                idx[oh * ow + oc] = bi;
            }
        }
    }
}

/// `if take { a } else { b }` as a conditional move: on random data a branch would be
/// mispredicted half the time.
#[inline(always)]
fn pick<I: Copy>(take: bool, a: I, b: I) -> I {
    std::hint::select_unpredictable(take, a, b)
}

/// `b[i] = max(b[i], x[i·s])` with PyTorch's rule; `bi` records `base + i·s` where taken.
#[inline(always)]
fn max_strided<T: Float, const IDX: bool>(
    b: &mut [T],
    bi: &mut [i32],
    x: &[T],
    s: usize,
    base: i32,
) {
    let n = b.len();
    if n == 0 {
        return;
    }
    assert!(x.len() > (n - 1) * s && (!IDX || bi.len() >= n));
    for (i, bv) in b.iter_mut().enumerate() {
        // SAFETY: i·s ≤ (n−1)·s < x.len(), checked above.
        let v = unsafe { *x.get_unchecked(i * s) };
        let m = *bv;
        let take = v > m;
        *bv = if take { v } else { m };
        if IDX {
            // SAFETY: bi.len() ≥ n, checked above.
            unsafe {
                let d = bi.get_unchecked_mut(i);
                *d = pick(take, base + (i * s) as i32, *d);
            }
        }
    }
}

/// Separable max pooling: a horizontal pass gives, for every input row, the maximum (and
/// its position) of each column window; a vertical pass takes the maximum of those over
/// each row window. Scanning rows in order and columns in order with PyTorch's
/// replacement rule gives the same winner as the row-major scan (first maximum; last NaN).
fn max_sep_plane<T: Float, const IDX: bool>(x: &[T], g: &Geom, out: &mut [T], idx: &mut [i64]) {
    let (h, w, ow) = (g.h, g.w, g.cols.len());
    let mut hb = vec![T::NEG_INF; h * ow];
    // Flat positions row·W + col (i32: planes are far smaller than 2³¹).
    let mut hi = vec![0i32; if IDX { h * ow } else { 0 }];
    // Columns whose window is complete: taps at oc·s − p + t·d for t in 0..k.
    let (lo, hi_end, k, s, p) = match g.col_rule {
        Some((k, s, p)) => {
            let ext = (k - 1) * g.dw + 1;
            let lo = p.div_ceil(s);
            let hi_end = if w + p >= ext {
                ((w + p - ext) / s + 1).min(ow)
            } else {
                0
            };
            (lo.min(hi_end), hi_end, k, s, p)
        }
        None => (0, 0, 0, 1, 0),
    };
    for row in 0..h {
        if !g.row_used[row] {
            continue;
        }
        let xr = &x[row * w..(row + 1) * w];
        let rb = (row * w) as i32;
        let hb_r = &mut hb[row * ow..(row + 1) * ow];
        let mut no_idx: [i32; 0] = [];
        let hi_r: &mut [i32] = if IDX {
            &mut hi[row * ow..(row + 1) * ow]
        } else {
            &mut no_idx
        };
        // Edge (clipped) and rule-less columns: the general loop.
        for oc in (0..lo).chain(hi_end..ow) {
            let c = g.cols[oc];
            let (mut best, mut bj) = (T::NEG_INF, c.start);
            for j in (c.start..c.end).step_by(g.dw) {
                if takes(xr[j], best) {
                    best = xr[j];
                    bj = j;
                }
            }
            hb_r[oc] = best;
            if IDX {
                hi_r[oc] = rb + bj as i32;
            }
        }
        if lo < hi_end {
            let base = lo * s - p;
            let hbs = &mut hb_r[lo..hi_end];
            let his: &mut [i32] = if IDX {
                &mut hi_r[lo..hi_end]
            } else {
                &mut no_idx
            };
            for t in 0..k {
                let off = base + t * g.dw;
                max_strided::<T, IDX>(hbs, his, &xr[off..], s, rb + off as i32);
            }
        }
    }
    let mut oi = vec![0i32; if IDX { ow } else { 0 }];
    for (oh, r) in g.rows.iter().enumerate() {
        let o = &mut out[oh * ow..(oh + 1) * ow];
        o.copy_from_slice(&hb[r.start * ow..(r.start + 1) * ow]);
        if IDX {
            oi.copy_from_slice(&hi[r.start * ow..(r.start + 1) * ow]);
        }
        for row in (r.start + g.dh..r.end).step_by(g.dh) {
            let src = &hb[row * ow..(row + 1) * ow];
            if IDX {
                let srci = &hi[row * ow..(row + 1) * ow];
                for i in 0..ow {
                    let (v, m) = (src[i], o[i]);
                    let take = v > m;
                    o[i] = if take { v } else { m };
                    oi[i] = pick(take, srci[i], oi[i]);
                }
            } else {
                for i in 0..ow {
                    let (v, m) = (src[i], o[i]);
                    o[i] = if v > m { v } else { m };
                }
            }
        }
        if IDX {
            for (d, &v) in idx[oh * ow..(oh + 1) * ow].iter_mut().zip(&oi) {
                *d = v as i64;
            }
        }
    }
}

fn max2x2_plane<T: Float, const IDX: bool>(x: &[T], g: &Geom, out: &mut [T], idx: &mut [i64]) {
    let (w, ow) = (g.w, g.cols.len());
    for oh in 0..g.rows.len() {
        let base = 2 * oh * w;
        let r0 = &x[base..base + 2 * ow];
        let r1 = &x[base + w..base + w + 2 * ow];
        let o = &mut out[oh * ow..(oh + 1) * ow];
        if IDX {
            let ix = &mut idx[oh * ow..(oh + 1) * ow];
            for j in 0..ow {
                let (a, b, c, d) = (r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]);
                let mut m = a;
                let mut k = 0i64;
                k = pick(b > m, 1, k);
                m = if b > m { b } else { m };
                k = pick(c > m, w as i64, k);
                m = if c > m { c } else { m };
                k = pick(d > m, w as i64 + 1, k);
                m = if d > m { d } else { m };
                o[j] = m;
                ix[j] = (base + 2 * j) as i64 + k;
            }
        } else {
            for j in 0..ow {
                let (a, b, c, d) = (r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]);
                let mut m = a;
                m = if b > m { b } else { m };
                m = if c > m { c } else { m };
                m = if d > m { d } else { m };
                o[j] = m;
            }
        }
    }
}

/// Max pooling backward: scatters each output gradient to its argmax position.
pub(crate) fn max_backward<T: Float>(gout: &[T], idx: &[i64], g: &Geom) -> Vec<T> {
    let (pi, po) = (g.in_plane(), g.out_plane());
    let mut gi = vec![T::ZERO; g.planes * pi];
    par_planes(
        &mut gi,
        pi,
        &mut [] as &mut [u8],
        0,
        pi.max(po),
        |p, gp, _| {
            let go = &gout[p * po..(p + 1) * po];
            let ix = &idx[p * po..(p + 1) * po];
            if g.fast == Fast::TwoByTwo {
                // Windows do not overlap: every position receives at most one gradient.
                for (&i, &v) in ix.iter().zip(go) {
                    gp[i as usize] = v;
                }
            } else {
                for (&i, &v) in ix.iter().zip(go) {
                    if i >= 0 {
                        gp[i as usize] = gp[i as usize] + v;
                    }
                }
            }
        },
    );
    gi
}

// ---------------------------------------------------------------------------------------
// average pooling
// ---------------------------------------------------------------------------------------

/// Average pooling forward (dilation 1): each window's sum over its in-bounds elements,
/// divided by the product of the two axes' counts.
pub(crate) fn avg_forward<T: Float>(x: &[T], g: &Geom) -> Vec<T> {
    let (pi, po) = (g.in_plane(), g.out_plane());
    let mut out = vec![T::ZERO; g.planes * po];
    par_planes(
        &mut out,
        po,
        &mut [] as &mut [u8],
        0,
        g.work(),
        |p, o, _| {
            let xp = &x[p * pi..(p + 1) * pi];
            match g.fast {
                Fast::TwoByTwo => avg2x2_plane(xp, g, o),
                Fast::Global => o[0] = plane_sum(xp) / T::of(pi as f64),
                Fast::None => avg_plane(xp, g, o),
            }
        },
    );
    out
}

fn plane_sum<T: Float>(x: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] = acc[k] + c[k];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for &v in rest {
        s = s + v;
    }
    s
}

fn avg_plane<T: Float>(x: &[T], g: &Geom, out: &mut [T]) {
    let (w, ow) = (g.w, g.cols.len());
    for (oh, r) in g.rows.iter().enumerate() {
        for (oc, c) in g.cols.iter().enumerate() {
            let mut s = T::ZERO;
            for h in r.start..r.end {
                for &v in &x[h * w + c.start..h * w + c.end] {
                    s = s + v;
                }
            }
            out[oh * ow + oc] = s / T::of((r.count * c.count) as f64);
        }
    }
}

fn avg2x2_plane<T: Float>(x: &[T], g: &Geom, out: &mut [T]) {
    let (w, ow) = (g.w, g.cols.len());
    let q = T::of(0.25);
    for oh in 0..g.rows.len() {
        let base = 2 * oh * w;
        let r0 = &x[base..base + 2 * ow];
        let r1 = &x[base + w..base + w + 2 * ow];
        let o = &mut out[oh * ow..(oh + 1) * ow];
        for j in 0..ow {
            o[j] = (((r0[2 * j] + r0[2 * j + 1]) + r1[2 * j]) + r1[2 * j + 1]) * q;
        }
    }
}

/// Average pooling backward: each output gradient spread evenly (same divisor) over its
/// window's in-bounds elements.
pub(crate) fn avg_backward<T: Float>(gout: &[T], g: &Geom) -> Vec<T> {
    let (pi, po) = (g.in_plane(), g.out_plane());
    let mut gi = vec![T::ZERO; g.planes * pi];
    let (w, ow) = (g.w, g.cols.len());
    par_planes(
        &mut gi,
        pi,
        &mut [] as &mut [u8],
        0,
        g.work(),
        |p, gp, _| {
            let go = &gout[p * po..(p + 1) * po];
            match g.fast {
                Fast::Global => {
                    let v = go[0] / T::of(pi as f64);
                    gp.iter_mut().for_each(|e| *e = v);
                }
                Fast::TwoByTwo => {
                    let q = T::of(0.25);
                    for oh in 0..g.rows.len() {
                        let gr = &go[oh * ow..(oh + 1) * ow];
                        let (top, bottom) = gp[2 * oh * w..(2 * oh + 2) * w].split_at_mut(w);
                        for j in 0..ow {
                            let v = gr[j] * q;
                            top[2 * j] = v;
                            top[2 * j + 1] = v;
                            bottom[2 * j] = v;
                            bottom[2 * j + 1] = v;
                        }
                    }
                }
                Fast::None => {
                    for (oh, r) in g.rows.iter().enumerate() {
                        for (oc, c) in g.cols.iter().enumerate() {
                            let v = go[oh * ow + oc] / T::of((r.count * c.count) as f64);
                            for h in r.start..r.end {
                                for e in &mut gp[h * w + c.start..h * w + c.end] {
                                    *e = *e + v;
                                }
                            }
                        }
                    }
                }
            }
        },
    );
    gi
}
