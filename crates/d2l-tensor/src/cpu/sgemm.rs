//! A packed f32 GEMM of our own (BLIS-style): the operands are packed into micro-panels
//! (any strides, so transposed views cost nothing extra), and a register-blocked
//! micro-kernel computes an `MR × NR` tile of the result per call — AVX2 + FMA (6 × 16)
//! or AVX-512 (12 × 32), chosen at run time by [`crate::cpu_path`] (`D2L_CPU`), with a
//! portable kernel for the rest. Tuned for the small, skinny products of training steps
//! (batch 32–256 × a few hundred), where the fixed cost per call matters as much as the
//! peak rate; two or more threads split the rows (or columns) of the result.

use crate::cpu::caps::{cpu_path, CpuPath};
use crate::threads;
use rayon::prelude::*;
use std::cell::RefCell;

/// Products below this many multiply-adds run on one thread.
pub(crate) const PAR_MIN_FMAS: usize = 96 * 96 * 96;

/// Blocking of one micro-kernel family: the tile (`MR × NR`) and the cache blocks
/// (`KC` deep, `MC` rows of A per packed block, `NC` columns of B per packed block).
#[derive(Clone, Copy)]
struct Blocking {
    mr: usize,
    nr: usize,
    kc: usize,
    mc: usize,
    nc: usize,
    /// Loop order: keep the A micro-panel in L1 (B panels stream) instead of B's.
    a_in_l1: bool,
}

/// The micro-kernel: `c[i*ldc + j] (+)= Σ_p a[p*MR + i] · b[p*NR + j]` for the full tile,
/// adding to `c` when `add`.
type Kernel = unsafe fn(usize, *const f32, *const f32, *mut f32, usize, bool);

/// One operand or the result: a base pointer with row and column strides (elements).
#[derive(Clone, Copy)]
pub(crate) struct Mat<P> {
    pub(crate) ptr: P,
    pub(crate) rs: isize,
    pub(crate) cs: isize,
}
// SAFETY: the pointers are only dereferenced inside `sgemm`, whose caller guarantees
// that they stay valid for its duration and that the threads write disjoint tiles.
impl<P> Mat<P> {
    /// `ptr` with row stride `rs` and column stride `cs` (elements).
    pub(crate) const fn new(ptr: P, rs: isize, cs: isize) -> Self {
        Mat { ptr, rs, cs }
    }

    /// The transposed view of the same elements (strides swapped).
    pub(crate) fn t(self) -> Self {
        Mat::new(self.ptr, self.cs, self.rs)
    }
}
unsafe impl<P> Send for Mat<P> {}
unsafe impl<P> Sync for Mat<P> {}

/// `dst[i*d_rs + j*d_cs] = (dst if accumulate else 0) + Σ_p a[i*a_rs + p*a_cs] ·
/// b[p*b_rs + j*b_cs]` for `i < m`, `j < n`, on up to `threads` threads.
///
/// # Safety
/// Every element addressed through the pointers and strides must be valid (reads for `a`
/// and `b`, reads and writes for `dst`), and `dst` may not overlap `a` or `b`; distinct
/// `(i, j)` must address distinct elements of `dst`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    d_rs: isize,
    d_cs: isize,
    accumulate: bool,
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    b: *const f32,
    b_rs: isize,
    b_cs: isize,
    threads: usize,
) {
    sgemm_on(
        cpu_path(),
        m,
        n,
        k,
        Mat::new(dst, d_rs, d_cs),
        accumulate,
        Mat::new(a, a_rs, a_cs),
        Mat::new(b, b_rs, b_cs),
        threads,
    )
}

fn family(path: CpuPath) -> (Blocking, Kernel) {
    match path {
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx512 => (
            Blocking {
                mr: 12,
                nr: 32,
                kc: 384,
                mc: 144,
                nc: 1024,
                a_in_l1: true,
            },
            x86::kernel_avx512 as Kernel,
        ),
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx2 => (
            Blocking {
                mr: 6,
                nr: 16,
                kc: 256,
                mc: 96,
                nc: 1024,
                a_in_l1: false,
            },
            x86::kernel_avx2 as Kernel,
        ),
        _ => (
            Blocking {
                mr: 4,
                nr: 8,
                kc: 256,
                mc: 64,
                nc: 512,
                a_in_l1: false,
            },
            kernel_portable as Kernel,
        ),
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_on(
    path: CpuPath,
    m: usize,
    n: usize,
    k: usize,
    dst: Mat<*mut f32>,
    accumulate: bool,
    a: Mat<*const f32>,
    b: Mat<*const f32>,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    *dst.ptr.offset(i as isize * dst.rs + j as isize * dst.cs) = 0.0;
                }
            }
        }
        return;
    }
    let (bl, kern) = family(path);
    // A result narrower than half a tile wastes most of the kernel's columns: compute
    // its transpose, `dstᵀ = bᵀ · aᵀ`, instead (a 10-class head's gradient).
    if n * 2 <= bl.nr && m > n {
        return sgemm_on(path, n, m, k, dst.t(), accumulate, b.t(), a.t(), threads);
    }
    let nt = if m * n * k < PAR_MIN_FMAS {
        1
    } else {
        threads.max(1)
    };
    product(&bl, kern, m, n, k, dst, accumulate, a, b, nt)
}

thread_local! {
    /// The calling thread's buffer of packed B (shared with the workers for one call).
    static BPACK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// This thread's buffer of packed A blocks.
    static APACK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's buffer `key`, or with a fresh one when the buffer is in
/// use (a worker that, waiting inside a product, picked up another product).
pub(super) fn with_buffer<R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<f32>>>,
    f: impl FnOnce(&mut Vec<f32>) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(&mut buf),
        Err(_) => f(&mut Vec::new()),
    })
}

/// A 64-byte aligned slice of `len` floats inside `buf` (grown as needed).
fn aligned(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len + 16 {
        buf.resize(len + 16, 0.0);
    }
    let off = buf.as_ptr().align_offset(64).min(15);
    &mut buf[off..off + len]
}

/// Splits `len` into the fewest blocks of at most `max` (each a multiple of `unit`, the
/// last possibly shorter), as even as possible: 784 deep with at most 384 is 3 × 262,
/// not 384 + 384 + 16.
fn even_block(len: usize, max: usize, unit: usize) -> usize {
    let blocks = len.div_ceil(max);
    len.div_ceil(blocks).div_ceil(unit) * unit
}

/// A raw pointer that may cross threads (the callers keep what it points to alive and
/// the threads' writes disjoint).
#[derive(Clone, Copy)]
pub(super) struct Shared<P>(pub(super) P);
// SAFETY: see the type's doc; every use writes disjoint ranges or only reads.
unsafe impl<P> Send for Shared<P> {}
unsafe impl<P> Sync for Shared<P> {}

impl<P: Copy> Shared<P> {
    /// The pointer (a method call, so closures capture the whole `Sync` wrapper).
    #[inline(always)]
    pub(super) fn get(self) -> P {
        self.0
    }
}

/// The whole product on up to `nt` threads. Per block of columns of B: B is packed once
/// (the threads share the packing), then the threads take disjoint rows of the result
/// (or, for a result with fewer row tiles than threads, disjoint column panels), each
/// packing its own blocks of A.
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    bl: &Blocking,
    kern: Kernel,
    m: usize,
    n: usize,
    k: usize,
    dst: Mat<*mut f32>,
    accumulate: bool,
    a: Mat<*const f32>,
    b: Mat<*const f32>,
    nt: usize,
) {
    let (mr, nr) = (bl.mr, bl.nr);
    let kc_max = even_block(k, bl.kc, 1);
    let kblocks = k.div_ceil(kc_max);
    let nc_max = even_block(n, bl.nc, nr);
    with_buffer(&BPACK, |bbuf| {
        let bpack = Shared(aligned(bbuf, kblocks * nc_max * kc_max).as_mut_ptr());
        for jc in (0..n).step_by(nc_max) {
            let nc = nc_max.min(n - jc);
            let panels = nc.div_ceil(nr);
            // Block q (rows q·kc_max.. of B) starts at q·nc_max·kc_max; its panel s at
            // s·nr·kc within it.
            let pack_one = |idx: usize| {
                let (q, s) = (idx / panels, idx % panels);
                let pc = q * kc_max;
                let kc = kc_max.min(k - pc);
                let cols = nr.min(nc - s * nr);
                // SAFETY: each (q, s) owns its own `nr·kc` floats of the buffer.
                unsafe {
                    let d = std::slice::from_raw_parts_mut(
                        bpack.get().add(q * nc_max * kc_max + s * nr * kc),
                        nr * kc,
                    );
                    pack_b_panel(d, b, pc, kc, jc + s * nr, cols, nr);
                }
            };
            let jobs = kblocks * panels;
            if nt > 1 && jobs > 1 {
                threads::run(|| (0..jobs).into_par_iter().for_each(pack_one));
            } else {
                (0..jobs).for_each(pack_one);
            }
            let tiles_m = m.div_ceil(mr);
            let split_rows = tiles_m >= nt;
            let parts = if split_rows {
                nt.min(tiles_m)
            } else {
                nt.min(panels)
            };
            let per = if split_rows { tiles_m } else { panels }.div_ceil(parts);
            let part = |t: usize| {
                let (dst, a) = (dst, a);
                let (rows, pans) = if split_rows {
                    (
                        (t * per * mr).min(m)..((t + 1) * per * mr).min(m),
                        0..panels,
                    )
                } else {
                    (0..m, (t * per).min(panels)..((t + 1) * per).min(panels))
                };
                // SAFETY: the parts write disjoint tiles of `dst`; B is only read.
                unsafe {
                    rows_times_panels(
                        bl,
                        kern,
                        rows,
                        pans,
                        jc,
                        nc,
                        k,
                        kc_max,
                        nc_max,
                        dst,
                        accumulate,
                        a,
                        bpack.get(),
                    )
                }
            };
            if parts > 1 {
                threads::run(|| (0..parts).into_par_iter().with_max_len(1).for_each(part));
            } else {
                part(0);
            }
        }
    });
}

/// Rows `rows` of the result times the packed column panels `pans` of the column block
/// starting at `jc` (`nc` wide), on this thread.
#[allow(clippy::too_many_arguments)]
unsafe fn rows_times_panels(
    bl: &Blocking,
    kern: Kernel,
    rows: std::ops::Range<usize>,
    pans: std::ops::Range<usize>,
    jc: usize,
    nc: usize,
    k: usize,
    kc_max: usize,
    nc_max: usize,
    dst: Mat<*mut f32>,
    accumulate: bool,
    a: Mat<*const f32>,
    bpack: *const f32,
) {
    let (mr, nr) = (bl.mr, bl.nr);
    if rows.is_empty() || pans.is_empty() {
        return;
    }
    let m = rows.end - rows.start;
    let mc_max = even_block(m, bl.mc, mr);
    with_buffer(&APACK, |abuf| {
        let apack = aligned(abuf, mc_max.div_ceil(mr) * mr * kc_max);
        let mut tile = [0f32; 12 * 32];
        for pc in (0..k).step_by(kc_max) {
            let kc = kc_max.min(k - pc);
            let add = accumulate || pc > 0;
            let bblock = bpack.add((pc / kc_max) * nc_max * kc_max);
            for ic in (rows.start..rows.end).step_by(mc_max) {
                let mc = mc_max.min(rows.end - ic);
                pack_a(apack, a, ic, mc, pc, kc, mr);
                let tile_at = |ir: usize, s: usize, tile: &mut [f32; 12 * 32]| {
                    let mb = mr.min(mc - ir);
                    let ap = apack.as_ptr().add(ir * kc);
                    let jr = s * nr;
                    let nb = nr.min(nc - jr);
                    let bp = bblock.add(jr * kc);
                    let (i0, j0) = ((ic + ir) as isize, (jc + jr) as isize);
                    let c = dst.ptr.offset(i0 * dst.rs + j0 * dst.cs);
                    if mb == mr && nb == nr && dst.cs == 1 {
                        kern(kc, ap, bp, c, dst.rs as usize, add);
                    } else {
                        kern(kc, ap, bp, tile.as_mut_ptr(), nr, false);
                        for i in 0..mb {
                            for j in 0..nb {
                                let d = c.offset(i as isize * dst.rs + j as isize * dst.cs);
                                let v = tile[i * nr + j];
                                *d = if add { *d + v } else { v };
                            }
                        }
                    }
                };
                if bl.a_in_l1 {
                    // The A micro-panel stays in L1 while the B micro-panels stream past
                    // it from L2 (AVX-512's 32-wide B panel would not fit L1 beside A).
                    for ir in (0..mc).step_by(mr) {
                        for s in pans.clone() {
                            tile_at(ir, s, &mut tile);
                        }
                    }
                } else {
                    // The B micro-panel stays in L1 while the A micro-panels stream.
                    for s in pans.clone() {
                        for ir in (0..mc).step_by(mr) {
                            tile_at(ir, s, &mut tile);
                        }
                    }
                }
            }
        }
    });
}

/// Packs rows `i0..i0+mc`, columns `p0..p0+kc` of `a` into micro-panels of `mr` rows:
/// panel `r`, step `p`, row `i` at `r*mr*kc + p*mr + i` (rows past `mc` are zero).
unsafe fn pack_a(
    dst: &mut [f32],
    a: Mat<*const f32>,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    mr: usize,
) {
    for (r, panel) in dst
        .chunks_exact_mut(mr * kc)
        .take(mc.div_ceil(mr))
        .enumerate()
    {
        let base = a
            .ptr
            .offset((i0 + r * mr) as isize * a.rs + p0 as isize * a.cs);
        pack_panel(panel, base, a.rs, a.cs, kc, mr, mr.min(mc - r * mr));
    }
}

/// Packs rows `p0..p0+kc`, columns `j0..j0+cols` of `b` into one micro-panel of `nr`
/// columns: step `p`, column `j` at `p*nr + j` (columns past `cols` are zero).
unsafe fn pack_b_panel(
    panel: &mut [f32],
    b: Mat<*const f32>,
    p0: usize,
    kc: usize,
    j0: usize,
    cols: usize,
    nr: usize,
) {
    let base = b.ptr.offset(p0 as isize * b.rs + j0 as isize * b.cs);
    pack_panel(panel, base, b.cs, b.rs, kc, nr, cols);
}

/// One micro-panel, `width` wide and `kc` deep: `panel[p*width + i] = src[i*ws + p*ds]`
/// for the `valid` first lanes `i`, zero for the rest.
unsafe fn pack_panel(
    panel: &mut [f32],
    src: *const f32,
    ws: isize,
    ds: isize,
    kc: usize,
    width: usize,
    valid: usize,
) {
    if ws == 1 {
        // The lanes are contiguous: one copy per step.
        for p in 0..kc {
            let s = std::slice::from_raw_parts(src.offset(p as isize * ds), valid);
            let d = &mut panel[p * width..(p + 1) * width];
            d[..valid].copy_from_slice(s);
            d[valid..].fill(0.0);
        }
    } else {
        for i in 0..width {
            if i >= valid {
                for p in 0..kc {
                    panel[p * width + i] = 0.0;
                }
                continue;
            }
            let lane = src.offset(i as isize * ws);
            for p in 0..kc {
                panel[p * width + i] = *lane.offset(p as isize * ds);
            }
        }
    }
}

/// The portable micro-kernel (4 × 8), for processors without AVX2 and `D2L_CPU=scalar`.
unsafe fn kernel_portable(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    add: bool,
) {
    const MR: usize = 4;
    const NR: usize = 8;
    let mut acc = [[0f32; NR]; MR];
    let a = std::slice::from_raw_parts(a, kc * MR);
    let b = std::slice::from_raw_parts(b, kc * NR);
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for i in 0..MR {
            for j in 0..NR {
                acc[i][j] += ap[i] * bp[j];
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        let c = std::slice::from_raw_parts_mut(c.add(i * ldc), NR);
        for j in 0..NR {
            c[j] = if add { c[j] + row[j] } else { row[j] };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// A micro-kernel of `$mr` rows and two vectors of `$lanes` floats per row: per step
    /// of `k`, two vector loads of B, `$mr` broadcasts of A, `2·$mr` FMAs; the
    /// accumulators stay in registers for the whole loop.
    macro_rules! kernel {
        ($(#[$doc:meta])* $name:ident, $feat:literal, $mr:literal, $lanes:literal,
         $zero:ident, $load:ident, $loadu:ident, $storeu:ident, $set1:ident, $fma:ident,
         $add:ident) => {
            $(#[$doc])*
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $name(
                kc: usize,
                a: *const f32,
                b: *const f32,
                c: *mut f32,
                ldc: usize,
                add: bool,
            ) {
                const MR: usize = $mr;
                const L: usize = $lanes;
                let mut acc0 = [$zero(); MR];
                let mut acc1 = [$zero(); MR];
                let (mut a, mut b) = (a, b);
                for _ in 0..kc {
                    let b0 = $load(b);
                    let b1 = $load(b.add(L));
                    for i in 0..MR {
                        let ai = $set1(*a.add(i));
                        acc0[i] = $fma(ai, b0, acc0[i]);
                        acc1[i] = $fma(ai, b1, acc1[i]);
                    }
                    a = a.add(MR);
                    b = b.add(2 * L);
                }
                for i in 0..MR {
                    let r = c.add(i * ldc);
                    if add {
                        acc0[i] = $add(acc0[i], $loadu(r));
                        acc1[i] = $add(acc1[i], $loadu(r.add(L)));
                    }
                    $storeu(r, acc0[i]);
                    $storeu(r.add(L), acc1[i]);
                }
            }
        };
    }

    kernel!(
        /// AVX2 + FMA: 6 × 16 (12 accumulators of 8 floats).
        kernel_avx2, "avx2,fma", 6, 8, _mm256_setzero_ps, _mm256_load_ps, _mm256_loadu_ps,
        _mm256_storeu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps
    );
    kernel!(
        /// AVX-512: 12 × 32 (24 accumulators of 16 floats).
        kernel_avx512, "avx512f,avx2,fma", 12, 16, _mm512_setzero_ps, _mm512_load_ps,
        _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cpu::caps::detected_cpu_path;

    /// `A·B` in float64, row-major `m × n`, the operands read at element strides
    /// `(ar, ac)` and `(br, bc)` (shared with the other GEMM paths' tests).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        ar: isize,
        ac: isize,
        b: &[f32],
        br: isize,
        bc: isize,
    ) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for p in 0..k {
                    s += a[(i as isize * ar + p as isize * ac) as usize] as f64
                        * b[(p as isize * br + j as isize * bc) as usize] as f64;
                }
                out[i * n + j] = s;
            }
        }
        out
    }

    /// `len` values in [-1, 1] from a xorshift seeded with `seed` (shared with the
    /// small-side kernels' tests).
    pub(crate) fn data(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Every path this processor has, every transpose of both operands, tile edges,
    /// accumulation, the narrow-result swap, a strided result, and 1 and 2 threads.
    #[test]
    fn every_path_agrees_with_a_float64_reference() {
        let best = detected_cpu_path();
        let paths: Vec<CpuPath> = [CpuPath::Scalar, CpuPath::Avx2, CpuPath::Avx512]
            .into_iter()
            .filter(|p| *p <= best)
            .collect();
        let shapes = [
            (1, 1, 1),
            (7, 5, 3),
            (13, 33, 17),
            (25, 10, 40),
            (64, 100, 785),
            (150, 70, 9),
            (130, 1030, 20),
            (256, 10, 256),
            (8, 400, 300),
        ];
        for &path in &paths {
            for &(m, n, k) in &shapes {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    let a = data(m * k, (m * 31 + k) as u32);
                    let b = data(k * n, (n * 17 + k) as u32);
                    let (ar, ac) = if ta { (1, m as isize) } else { (k as isize, 1) };
                    let (br, bc) = if tb { (1, k as isize) } else { (n as isize, 1) };
                    let want = reference(m, n, k, &a, ar, ac, &b, br, bc);
                    for threads in [1, 2] {
                        for (accumulate, strided) in [(false, false), (true, false), (false, true)]
                        {
                            // A strided result: every other column of a wider buffer.
                            let cs = if strided { 2 } else { 1 };
                            let init = data(m * n * cs, 7);
                            let mut got = init.clone();
                            unsafe {
                                sgemm_on(
                                    path,
                                    m,
                                    n,
                                    k,
                                    Mat::new(got.as_mut_ptr(), (n * cs) as isize, cs as isize),
                                    accumulate,
                                    Mat::new(a.as_ptr(), ar, ac),
                                    Mat::new(b.as_ptr(), br, bc),
                                    threads,
                                )
                            };
                            for i in 0..m {
                                for j in 0..n {
                                    let idx = i * n * cs + j * cs;
                                    let base = if accumulate { init[idx] as f64 } else { 0.0 };
                                    let e = want[i * n + j] + base;
                                    let g = got[idx] as f64;
                                    assert!(
                                        (g - e).abs() <= 1e-5 * (k as f64).sqrt() * (1.0 + e.abs()),
                                        "{path:?} {m}x{n}x{k} ta={ta} tb={tb} acc={accumulate} \
                                         strided={strided} threads={threads} at ({i},{j}): {g} vs {e}"
                                    );
                                }
                            }
                            if strided {
                                for i in 0..m {
                                    for j in 0..n {
                                        let idx = i * n * cs + j * cs + 1;
                                        assert_eq!(got[idx], init[idx], "wrote outside the result");
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
