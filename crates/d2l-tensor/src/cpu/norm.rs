//! Normalisation, resampling and padding kernels.
//!
//! Batch norm and group norm share one fused kernel. The input is viewed as `[N, C, HW]`;
//! a *run* is one contiguous `HW` row `(n, c)` (its id is `n·C + c`), and a *unit* is the
//! set of runs that share statistics: channel `c` for batch norm (runs `(0, c)…(N-1, c)`),
//! `(n, g)` for group norm (runs `(n, g·C/G)…(n, (g+1)·C/G - 1)`). Units are independent,
//! so the kernels run in parallel over units; each unit computes its mean, then its
//! variance (two passes, the second from cache), then writes its normalised output while
//! the data is still in cache. The backward makes one pass for the per-run sums `Σdy`
//! and `Σdy·x̂` (which also give the weight and bias gradients) and one to write `dx`.
//!
//! The inner loops are written with 16 independent lanes so they vectorise; they are
//! compiled for the baseline target and, behind a run-time check, for AVX2 / AVX-512.
//! Long runs are summed in blocks whose totals are added in f64, so f32 sums keep their
//! precision.
//!
//! Upsampling and padding are gathers (forward) and scatter-adds (backward, the adjoint)
//! through per-axis index maps, in parallel over `(n, c)` planes.

use crate::cpu::caps::{cpu_path, CpuPath};
use crate::dtype::Float;
use crate::threads::{self, PAR_MIN};
use rayon::prelude::*;

/// A raw pointer that several threads write through, each to its own disjoint part.
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);
// SAFETY: every user writes only to the part of the buffer that its unit owns.
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// The address of element `off`. SAFETY: in bounds of the allocation (spare capacity
    /// included); whoever writes there must be the only thread touching it.
    #[inline(always)]
    unsafe fn at(&self, off: usize) -> *mut T {
        self.0.add(off)
    }
}

/// The `[N, C, HW]` view of a normalisation input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geom {
    pub(crate) n: usize,
    pub(crate) c: usize,
    pub(crate) hw: usize,
}

/// Which runs share statistics.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Units {
    /// One unit per channel (batch norm).
    PerChannel,
    /// One unit per (sample, group) with this many groups (group norm).
    Groups(usize),
}

impl Units {
    /// Number of units.
    pub(crate) fn count(self, g: Geom) -> usize {
        match self {
            Units::PerChannel => g.c,
            Units::Groups(k) => g.n * k,
        }
    }

    /// Number of runs per unit.
    fn runs(self, g: Geom) -> usize {
        match self {
            Units::PerChannel => g.n,
            Units::Groups(k) => g.c / k,
        }
    }

    /// The `k`-th run of unit `u`: (run id `n·C + c`, channel `c`).
    #[inline(always)]
    fn run(self, g: Geom, u: usize, k: usize) -> (usize, usize) {
        match self {
            Units::PerChannel => (k * g.c + u, u),
            Units::Groups(groups) => {
                let (n, gi) = (u / groups, u % groups);
                let c = gi * (g.c / groups) + k;
                (n * g.c + c, c)
            }
        }
    }
}

// ---------------------------------------------------------------- inner loops

const LANES: usize = 16;
/// Runs longer than this are summed block by block, each block total added in f64.
const BLOCK: usize = 4096;

#[inline(always)]
fn fold<T: Float>(lanes: [T; LANES], tail: T) -> f64 {
    let mut s = tail;
    for l in lanes {
        s = s + l;
    }
    s.to_f64()
}

/// Σx.
#[inline(always)]
fn sum<T: Float>(x: &[T]) -> f64 {
    let mut total = 0f64;
    for b in x.chunks(BLOCK) {
        let mut lanes = [T::ZERO; LANES];
        let mut it = b.chunks_exact(LANES);
        for c in &mut it {
            for k in 0..LANES {
                lanes[k] = lanes[k] + c[k];
            }
        }
        let mut tail = T::ZERO;
        for &v in it.remainder() {
            tail = tail + v;
        }
        total += fold(lanes, tail);
    }
    total
}

/// Σ(x - m)².
#[inline(always)]
fn sum_sq_dev<T: Float>(x: &[T], m: T) -> f64 {
    let mut total = 0f64;
    for b in x.chunks(BLOCK) {
        let mut lanes = [T::ZERO; LANES];
        let mut it = b.chunks_exact(LANES);
        for c in &mut it {
            for k in 0..LANES {
                let d = c[k] - m;
                lanes[k] = lanes[k] + d * d;
            }
        }
        let mut tail = T::ZERO;
        for &v in it.remainder() {
            let d = v - m;
            tail = tail + d * d;
        }
        total += fold(lanes, tail);
    }
    total
}

/// (Σdy, Σdy·(x - m)).
#[inline(always)]
fn sum_dy_dyx<T: Float>(x: &[T], dy: &[T], m: T) -> (f64, f64) {
    let (mut t1, mut t2) = (0f64, 0f64);
    for (xb, gb) in x.chunks(BLOCK).zip(dy.chunks(BLOCK)) {
        let mut l1 = [T::ZERO; LANES];
        let mut l2 = [T::ZERO; LANES];
        let mut xi = xb.chunks_exact(LANES);
        let mut gi = gb.chunks_exact(LANES);
        for (xc, gc) in (&mut xi).zip(&mut gi) {
            for k in 0..LANES {
                l1[k] = l1[k] + gc[k];
                l2[k] = l2[k] + gc[k] * (xc[k] - m);
            }
        }
        let (mut s1, mut s2) = (T::ZERO, T::ZERO);
        for (&xv, &gv) in xi.remainder().iter().zip(gi.remainder()) {
            s1 = s1 + gv;
            s2 = s2 + gv * (xv - m);
        }
        t1 += fold(l1, s1);
        t2 += fold(l2, s2);
    }
    (t1, t2)
}

// The row writers store through raw pointers into a buffer's spare capacity: outputs are
// written exactly once, so they are never zero-filled first (that would be one more pass
// over memory). SAFETY (all three): `out` is valid for `x.len()` writes.

/// y = x·a + b.
#[inline(always)]
unsafe fn affine<T: Float>(x: &[T], out: *mut T, a: T, b: T) {
    for (i, &v) in x.iter().enumerate() {
        out.add(i).write(v * a + b);
    }
}

/// dx = k1·dy - kb·(x - m) - ka.
#[inline(always)]
unsafe fn bwd_row<T: Float>(x: &[T], dy: &[T], out: *mut T, k1: T, kb: T, m: T, ka: T) {
    let dy = &dy[..x.len()];
    for (i, (&xv, &gv)) in x.iter().zip(dy).enumerate() {
        out.add(i).write(k1 * gv - kb * (xv - m) - ka);
    }
}

/// dx = k·dy.
#[inline(always)]
unsafe fn scale_row<T: Float>(dy: &[T], out: *mut T, k: T) {
    for (i, &gv) in dy.iter().enumerate() {
        out.add(i).write(k * gv);
    }
}

// ---------------------------------------------------------------- fused normalisation

/// The arguments of the forward kernel, shared by every unit.
struct Fwd<'a, T> {
    x: &'a [T],
    y: Shared<T>,
    geom: Geom,
    units: Units,
    /// Given (mean, 1/σ) per unit (batch norm in eval mode), or computed from the data.
    given: Option<(&'a [f64], &'a [f64])>,
    eps: f64,
    gamma: Option<&'a [T]>,
    beta: Option<&'a [T]>,
}

/// One unit's forward: (mean, biased variance, 1/σ); writes the unit's outputs.
#[inline(always)]
fn fwd_unit<T: Float>(a: &Fwd<'_, T>, u: usize) -> (f64, f64, f64) {
    let (g, hw) = (a.geom, a.geom.hw);
    let runs = a.units.runs(g);
    let row = |k: usize| {
        let (id, c) = a.units.run(g, u, k);
        (id, c, &a.x[id * hw..(id + 1) * hw])
    };
    let (mean, var, istd) = match a.given {
        Some((m, i)) => (m[u], f64::NAN, i[u]),
        None => {
            // Plain loops (not iterator adapters): the sums must inline into this
            // function to get its target features.
            // A group's runs are adjacent in memory: one segment.
            let m = (runs * hw) as f64;
            let seg = match a.units {
                Units::Groups(_) => {
                    let id0 = a.units.run(g, u, 0).0;
                    Some(&a.x[id0 * hw..(id0 + runs) * hw])
                }
                Units::PerChannel => None,
            };
            let mut s = 0f64;
            match seg {
                Some(seg) => s = sum(seg),
                None => {
                    for k in 0..runs {
                        s += sum(row(k).2);
                    }
                }
            }
            let mean = s / m;
            let mt = T::of(mean);
            let mut q = 0f64;
            match seg {
                Some(seg) => q = sum_sq_dev(seg, mt),
                None => {
                    for k in 0..runs {
                        q += sum_sq_dev(row(k).2, mt);
                    }
                }
            }
            // The second pass subtracted the mean rounded to T; correct for the rounding.
            let d = s - m * mt.to_f64();
            let var = ((q - d * d / m) / m).max(0.0);
            (mean, var, 1.0 / (var + a.eps).sqrt())
        }
    };
    for k in 0..runs {
        let (id, c, xr) = row(k);
        let gm = a.gamma.map_or(1.0, |w| w[c].to_f64());
        let bt = a.beta.map_or(0.0, |b| b[c].to_f64());
        let scale = gm * istd;
        // SAFETY: run `id` belongs to unit `u` alone; the buffer holds N·C·HW elements.
        unsafe { affine(xr, a.y.at(id * hw), T::of(scale), T::of(bt - mean * scale)) };
    }
    (mean, var, istd)
}

/// The arguments of the backward kernel, shared by every unit.
struct Bwd<'a, T> {
    x: &'a [T],
    dy: &'a [T],
    dx: Option<Shared<T>>,
    /// Per run: Σdy and Σdy·x̂.
    s_dy: Shared<f64>,
    s_dyxh: Shared<f64>,
    geom: Geom,
    units: Units,
    mean: &'a [f64],
    istd: &'a [f64],
    gamma: Option<&'a [T]>,
    /// Whether the statistics depend on x (training batch norm, group norm).
    through: bool,
}

#[inline(always)]
fn bwd_unit<T: Float>(a: &Bwd<'_, T>, u: usize) {
    let (g, hw) = (a.geom, a.geom.hw);
    let runs = a.units.runs(g);
    let (mean, istd) = (a.mean[u], a.istd[u]);
    let mt = T::of(mean);
    let gam = |c: usize| a.gamma.map_or(1.0, |w| w[c].to_f64());
    let (mut sa, mut sb) = (0f64, 0f64);
    for k in 0..runs {
        let (id, c) = a.units.run(g, u, k);
        let r = id * hw..(id + 1) * hw;
        let (s1, s2) = sum_dy_dyx(&a.x[r.clone()], &a.dy[r], mt);
        let s2 = s2 * istd;
        // SAFETY: run `id` belongs to unit `u` alone.
        unsafe {
            a.s_dy.at(id).write(s1);
            a.s_dyxh.at(id).write(s2);
        }
        sa += gam(c) * s1;
        sb += gam(c) * s2;
    }
    let Some(dx) = a.dx else { return };
    let m = (runs * hw) as f64;
    let (ma, mb) = (sa / m, sb / m);
    for k in 0..runs {
        let (id, c) = a.units.run(g, u, k);
        let r = id * hw..(id + 1) * hw;
        // SAFETY: as above.
        let out = unsafe { dx.at(id * hw) };
        let k1 = istd * gam(c);
        if a.through {
            // SAFETY: `out` has room for the run.
            unsafe {
                bwd_row(
                    &a.x[r.clone()],
                    &a.dy[r],
                    out,
                    T::of(k1),
                    T::of(istd * istd * mb),
                    mt,
                    T::of(istd * ma),
                )
            };
        } else {
            // SAFETY: as above.
            unsafe { scale_row(&a.dy[r], out, T::of(k1)) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fwd_avx2<T: Float>(a: &Fwd<'_, T>, u: usize) -> (f64, f64, f64) {
        fwd_unit(a, u)
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn fwd_avx512<T: Float>(a: &Fwd<'_, T>, u: usize) -> (f64, f64, f64) {
        fwd_unit(a, u)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn bwd_avx2<T: Float>(a: &Bwd<'_, T>, u: usize) {
        bwd_unit(a, u)
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn bwd_avx512<T: Float>(a: &Bwd<'_, T>, u: usize) {
        bwd_unit(a, u)
    }
}

/// Runs `f` for every unit, in parallel when the work is large enough.
fn for_units<R: Send>(units: usize, work: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    if work >= PAR_MIN && units > 1 && threads::num_threads() > 1 {
        threads::run(|| (0..units).into_par_iter().with_max_len(1).map(&f).collect())
    } else {
        (0..units).map(f).collect()
    }
}

/// The statistics of a normalisation forward, one entry per unit.
pub(crate) struct Stats {
    pub(crate) mean: Vec<f64>,
    /// Biased variance (NaN where the statistics were given).
    pub(crate) var: Vec<f64>,
    pub(crate) istd: Vec<f64>,
}

/// Normalises `x` (`[N, C, HW]`, contiguous) unit by unit: `y = (x - mean)/σ · γ[c] + β[c]`,
/// with the statistics computed from the data or `given` as (mean, 1/σ) per unit.
#[allow(clippy::too_many_arguments)]
pub(crate) fn norm_forward<T: Float>(
    x: &[T],
    geom: Geom,
    units: Units,
    given: Option<(&[f64], &[f64])>,
    eps: f64,
    gamma: Option<&[T]>,
    beta: Option<&[T]>,
) -> (Vec<T>, Stats) {
    if matches!(units, Units::PerChannel) && geom.hw == 1 {
        return fwd_columns(x, geom, given, eps, gamma, beta);
    }
    // Every run is written by exactly one unit; the length is set once all are.
    let mut y: Vec<T> = Vec::with_capacity(x.len());
    let a = Fwd {
        x,
        y: Shared(y.as_mut_ptr()),
        geom,
        units,
        given,
        eps,
        gamma,
        beta,
    };
    let lvl = cpu_path();
    let per: Vec<(f64, f64, f64)> = for_units(units.count(geom), x.len(), |u| match lvl {
        // SAFETY: the CPU has the features these functions were compiled for.
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx512 => unsafe { x86::fwd_avx512(&a, u) },
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx2 => unsafe { x86::fwd_avx2(&a, u) },
        _ => fwd_unit(&a, u),
    });
    // SAFETY: the units covered every run, so all `x.len()` elements are initialised.
    unsafe { y.set_len(x.len()) };
    let mut s = Stats {
        mean: Vec::with_capacity(per.len()),
        var: Vec::with_capacity(per.len()),
        istd: Vec::with_capacity(per.len()),
    };
    for (m, v, i) in per {
        s.mean.push(m);
        s.var.push(v);
        s.istd.push(i);
    }
    (y, s)
}

/// The backward of [`norm_forward`]: `dx` (when asked for) and, per run `(n, c)`, the sums
/// Σdy and Σdy·x̂ (summed over `n` they are the bias and weight gradients).
#[allow(clippy::too_many_arguments)]
pub(crate) fn norm_backward<T: Float>(
    x: &[T],
    dy: &[T],
    geom: Geom,
    units: Units,
    mean: &[f64],
    istd: &[f64],
    gamma: Option<&[T]>,
    through: bool,
    need_dx: bool,
) -> (Option<Vec<T>>, Vec<f64>, Vec<f64>) {
    if matches!(units, Units::PerChannel) && geom.hw == 1 {
        let (m, i) = (mean, istd);
        return bwd_columns(x, dy, geom, m, i, gamma, through, need_dx);
    }
    let mut dx: Option<Vec<T>> = need_dx.then(|| Vec::with_capacity(x.len()));
    let mut s_dy = vec![0f64; geom.n * geom.c];
    let mut s_dyxh = vec![0f64; geom.n * geom.c];
    let a = Bwd {
        x,
        dy,
        dx: dx.as_mut().map(|v| Shared(v.as_mut_ptr())),
        s_dy: Shared(s_dy.as_mut_ptr()),
        s_dyxh: Shared(s_dyxh.as_mut_ptr()),
        geom,
        units,
        mean,
        istd,
        gamma,
        through,
    };
    let lvl = cpu_path();
    for_units(units.count(geom), x.len(), |u| match lvl {
        // SAFETY: as in `norm_forward`.
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx512 => unsafe { x86::bwd_avx512(&a, u) },
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx2 => unsafe { x86::bwd_avx2(&a, u) },
        _ => bwd_unit(&a, u),
    });
    if let Some(v) = dx.as_mut() {
        // SAFETY: every run of dx was written by its unit.
        unsafe { v.set_len(x.len()) };
    }
    (dx, s_dy, s_dyxh)
}

/// Batch norm of a `[N, C]` input (runs of one element): the statistics are accumulated
/// row by row, so the loops run along the contiguous channel dim.
fn fwd_columns<T: Float>(
    x: &[T],
    g: Geom,
    given: Option<(&[f64], &[f64])>,
    eps: f64,
    gamma: Option<&[T]>,
    beta: Option<&[T]>,
) -> (Vec<T>, Stats) {
    let (n, c) = (g.n, g.c);
    let (mean, var, istd) = match given {
        Some((m, i)) => (m.to_vec(), vec![f64::NAN; c], i.to_vec()),
        None => {
            let mut s = vec![0f64; c];
            for row in x.chunks_exact(c) {
                for (a, &v) in s.iter_mut().zip(row) {
                    *a += v.to_f64();
                }
            }
            let mean: Vec<f64> = s.iter().map(|v| v / n as f64).collect();
            let mut q = vec![0f64; c];
            for row in x.chunks_exact(c) {
                for ((a, &v), &m) in q.iter_mut().zip(row).zip(&mean) {
                    let d = v.to_f64() - m;
                    *a += d * d;
                }
            }
            let var: Vec<f64> = q.iter().map(|v| v / n as f64).collect();
            let istd = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
            (mean, var, istd)
        }
    };
    let scale: Vec<T> = (0..c)
        .map(|j| T::of(gamma.map_or(1.0, |w| w[j].to_f64()) * istd[j]))
        .collect();
    let shift: Vec<T> = (0..c)
        .map(|j| {
            let sc = gamma.map_or(1.0, |w| w[j].to_f64()) * istd[j];
            T::of(beta.map_or(0.0, |b| b[j].to_f64()) - mean[j] * sc)
        })
        .collect();
    let mut y = vec![T::ZERO; x.len()];
    for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        for (((o, &v), &a), &b) in yr.iter_mut().zip(xr).zip(&scale).zip(&shift) {
            *o = v * a + b;
        }
    }
    (y, Stats { mean, var, istd })
}

/// The backward of [`fwd_columns`]; the per-channel sums are returned in the first row
/// of the per-run arrays (the others are zero).
#[allow(clippy::too_many_arguments)]
fn bwd_columns<T: Float>(
    x: &[T],
    dy: &[T],
    g: Geom,
    mean: &[f64],
    istd: &[f64],
    gamma: Option<&[T]>,
    through: bool,
    need_dx: bool,
) -> (Option<Vec<T>>, Vec<f64>, Vec<f64>) {
    let (n, c) = (g.n, g.c);
    let mut s_dy = vec![0f64; n * c];
    let mut s_dyxh = vec![0f64; n * c];
    for (xr, gr) in x.chunks_exact(c).zip(dy.chunks_exact(c)) {
        for j in 0..c {
            let gv = gr[j].to_f64();
            s_dy[j] += gv;
            s_dyxh[j] += gv * (xr[j].to_f64() - mean[j]);
        }
    }
    for j in 0..c {
        s_dyxh[j] *= istd[j];
    }
    let dx = need_dx.then(|| {
        let gam = |j: usize| gamma.map_or(1.0, |w| w[j].to_f64());
        let m = n as f64;
        let k1: Vec<T> = (0..c).map(|j| T::of(istd[j] * gam(j))).collect();
        let (kb, ka): (Vec<T>, Vec<T>) = if through {
            (
                (0..c)
                    .map(|j| T::of(istd[j] * istd[j] * gam(j) * s_dyxh[j] / m))
                    .collect(),
                (0..c)
                    .map(|j| T::of(istd[j] * gam(j) * s_dy[j] / m))
                    .collect(),
            )
        } else {
            (vec![T::ZERO; c], vec![T::ZERO; c])
        };
        let mt: Vec<T> = mean.iter().map(|&v| T::of(v)).collect();
        let mut dx = vec![T::ZERO; x.len()];
        for ((dr, xr), gr) in dx
            .chunks_exact_mut(c)
            .zip(x.chunks_exact(c))
            .zip(dy.chunks_exact(c))
        {
            for j in 0..c {
                dr[j] = k1[j] * gr[j] - kb[j] * (xr[j] - mt[j]) - ka[j];
            }
        }
        dx
    });
    (dx, s_dy, s_dyxh)
}

/// Sums per-run values `[N, C]` over `n`: one value per channel.
pub(crate) fn per_channel<T: Float>(per_run: &[f64], n: usize, c: usize) -> Vec<T> {
    (0..c)
        .map(|ci| T::of((0..n).map(|ni| per_run[ni * c + ci]).sum()))
        .collect()
}

// ---------------------------------------------------------------- resampling and padding

/// PyTorch's nearest-neighbour source index per output position (`floor(i·in/out)` in
/// f32, clamped; exact for equal sizes and for doubling).
pub(crate) fn nearest_map(inp: usize, out: usize) -> Vec<Option<usize>> {
    (0..out)
        .map(|i| {
            Some(if out == inp {
                i
            } else if out == 2 * inp {
                i >> 1
            } else {
                let scale = inp as f32 / out as f32;
                (((i as f32) * scale).floor() as usize).min(inp - 1)
            })
        })
        .collect()
}

/// Linear-interpolation coefficients along one axis: output `i` is
/// `l0[i]·x[i0[i]] + l1[i]·x[i1[i]]` (PyTorch's rule, in the element type).
#[derive(Debug, Clone)]
pub(crate) struct Lerp<T> {
    i0: Vec<usize>,
    i1: Vec<usize>,
    l0: Vec<T>,
    l1: Vec<T>,
}

pub(crate) fn linear_map<T: Float>(inp: usize, out: usize, align_corners: bool) -> Lerp<T> {
    let mut m = Lerp {
        i0: Vec::with_capacity(out),
        i1: Vec::with_capacity(out),
        l0: Vec::with_capacity(out),
        l1: Vec::with_capacity(out),
    };
    let scale = if align_corners {
        if out > 1 {
            T::of((inp - 1) as f64) / T::of((out - 1) as f64)
        } else {
            T::ZERO
        }
    } else {
        T::of(inp as f64) / T::of(out as f64)
    };
    let half = T::of(0.5);
    for i in 0..out {
        if inp == out {
            m.i0.push(i);
            m.i1.push(i);
            m.l0.push(T::ONE);
            m.l1.push(T::ZERO);
            continue;
        }
        let it = T::of(i as f64);
        let src = if align_corners {
            scale * it
        } else {
            let s = scale * (it + half) - half;
            if s < T::ZERO {
                T::ZERO
            } else {
                s
            }
        };
        let i0 = (src.to_f64().floor() as usize).min(inp - 1);
        let mut l1 = src - T::of(i0 as f64);
        if l1 < T::ZERO {
            l1 = T::ZERO;
        }
        if l1 > T::ONE {
            l1 = T::ONE;
        }
        m.i0.push(i0);
        m.i1.push(if i0 < inp - 1 { i0 + 1 } else { i0 });
        m.l0.push(T::ONE - l1);
        m.l1.push(l1);
    }
    m
}

/// Splits `out` into planes and runs `f(plane index, out plane)`, in parallel when large.
fn planes_mut<T: Send>(out: &mut [T], plane: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if plane == 0 {
        return;
    }
    if out.len() >= PAR_MIN && threads::num_threads() > 1 {
        threads::run(|| {
            out.par_chunks_mut(plane)
                .enumerate()
                .for_each(|(p, o)| f(p, o))
        });
    } else {
        out.chunks_mut(plane).enumerate().for_each(|(p, o)| f(p, o));
    }
}

/// `out[p, i, j] = x[p, rows[i], cols[j]]` (or `fill` where either map is `None`).
pub(crate) fn gather2d<T: Float>(
    x: &[T],
    planes: usize,
    (ih, iw): (usize, usize),
    rows: &[Option<usize>],
    cols: &[Option<usize>],
    fill: T,
) -> Vec<T> {
    let (oh, ow) = (rows.len(), cols.len());
    let mut out = vec![T::ZERO; planes * oh * ow];
    planes_mut(&mut out, oh * ow, |p, o| {
        let src = &x[p * ih * iw..(p + 1) * ih * iw];
        for (orow, r) in o.chunks_mut(ow).zip(rows) {
            match r {
                None => orow.iter_mut().for_each(|v| *v = fill),
                Some(r) => {
                    let srow = &src[r * iw..(r + 1) * iw];
                    for (v, c) in orow.iter_mut().zip(cols) {
                        *v = c.map_or(fill, |c| srow[c]);
                    }
                }
            }
        }
    });
    out
}

/// The adjoint of [`gather2d`]: `dx[p, rows[i], cols[j]] += dy[p, i, j]`.
pub(crate) fn scatter2d<T: Float>(
    dy: &[T],
    planes: usize,
    (ih, iw): (usize, usize),
    rows: &[Option<usize>],
    cols: &[Option<usize>],
) -> Vec<T> {
    let (oh, ow) = (rows.len(), cols.len());
    let mut dx = vec![T::ZERO; planes * ih * iw];
    planes_mut(&mut dx, ih * iw, |p, d| {
        let g = &dy[p * oh * ow..(p + 1) * oh * ow];
        for (grow, r) in g.chunks(ow).zip(rows) {
            let Some(r) = r else { continue };
            let drow = &mut d[r * iw..(r + 1) * iw];
            for (&v, c) in grow.iter().zip(cols) {
                if let Some(c) = c {
                    drow[*c] = drow[*c] + v;
                }
            }
        }
    });
    dx
}

/// Bilinear resampling of every plane with per-axis coefficients.
pub(crate) fn bilinear_forward<T: Float>(
    x: &[T],
    planes: usize,
    (ih, iw): (usize, usize),
    rows: &Lerp<T>,
    cols: &Lerp<T>,
) -> Vec<T> {
    let (oh, ow) = (rows.i0.len(), cols.i0.len());
    let mut out = vec![T::ZERO; planes * oh * ow];
    planes_mut(&mut out, oh * ow, |p, o| {
        let src = &x[p * ih * iw..(p + 1) * ih * iw];
        for (i, orow) in o.chunks_mut(ow).enumerate() {
            let r0 = &src[rows.i0[i] * iw..(rows.i0[i] + 1) * iw];
            let r1 = &src[rows.i1[i] * iw..(rows.i1[i] + 1) * iw];
            let (h0, h1) = (rows.l0[i], rows.l1[i]);
            for (j, v) in orow.iter_mut().enumerate() {
                let (c0, c1) = (cols.i0[j], cols.i1[j]);
                let (w0, w1) = (cols.l0[j], cols.l1[j]);
                *v = h0 * (w0 * r0[c0] + w1 * r0[c1]) + h1 * (w0 * r1[c0] + w1 * r1[c1]);
            }
        }
    });
    out
}

/// The adjoint of [`bilinear_forward`].
pub(crate) fn bilinear_backward<T: Float>(
    dy: &[T],
    planes: usize,
    (ih, iw): (usize, usize),
    rows: &Lerp<T>,
    cols: &Lerp<T>,
) -> Vec<T> {
    let (oh, ow) = (rows.i0.len(), cols.i0.len());
    let mut dx = vec![T::ZERO; planes * ih * iw];
    planes_mut(&mut dx, ih * iw, |p, d| {
        let g = &dy[p * oh * ow..(p + 1) * oh * ow];
        for (i, grow) in g.chunks(ow).enumerate() {
            let (h0, h1) = (rows.l0[i], rows.l1[i]);
            let (a, b) = (rows.i0[i] * iw, rows.i1[i] * iw);
            for (j, &v) in grow.iter().enumerate() {
                let (c0, c1) = (cols.i0[j], cols.i1[j]);
                let (w0, w1) = (cols.l0[j], cols.l1[j]);
                let (t0, t1) = (h0 * v, h1 * v);
                d[a + c0] = d[a + c0] + t0 * w0;
                d[a + c1] = d[a + c1] + t0 * w1;
                d[b + c0] = d[b + c0] + t1 * w0;
                d[b + c1] = d[b + c1] + t1 * w1;
            }
        }
    });
    dx
}

/// How padding fills the border (the kernel-side copy of `PadMode`, minus the value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Border {
    Constant,
    Reflect,
    Replicate,
}

/// Source index per output position along one padded axis (`None`: the constant).
pub(crate) fn pad_map(
    size: usize,
    before: usize,
    after: usize,
    mode: Border,
) -> Vec<Option<usize>> {
    let n = size as isize;
    (0..size + before + after)
        .map(|o| {
            let i = o as isize - before as isize;
            if (0..n).contains(&i) {
                return Some(i as usize);
            }
            match mode {
                Border::Constant => None,
                Border::Replicate => Some(i.clamp(0, n - 1) as usize),
                Border::Reflect => Some(if i < 0 { -i } else { 2 * (n - 1) - i } as usize),
            }
        })
        .collect()
}
