//! Direct f32 products for shapes with one small side (at most [`SMALL`] rows, columns or
//! depth): a classifier head (`256×256·256×10`), its weight gradient (`10×256·256×256`)
//! and its input gradient (`256×10·10×256`). A packed GEMM spends more on packing and on
//! tile edges there than on arithmetic; these kernels read A where it lies (broadcasting
//! one element per row and step), read B by rows, and keep a block of 8 (AVX2: 6) rows × up to
//! three vectors of the result in registers for the whole depth, masking the last vector.
//!
//! Only B needs unit column stride (and the result, after computing the transpose when
//! the result's columns are strided): a transposed B is copied into a row-major buffer
//! first when it is small, otherwise the product is left to the packed GEMM.

use super::caps::CpuPath;
use super::sgemm::{with_buffer, Mat, Shared, PAR_MIN_FMAS};
use crate::threads;
use rayon::prelude::*;
use std::cell::RefCell;

/// A product takes this path when its rows, columns or depth are at most this.
pub(crate) const SMALL: usize = 16;

/// Products of this path split over the threads from this many multiply-adds when they
/// are called on a thread of the pool, where the other workers are at hand (W1's head
/// products, `256×256·256×10` and its two gradients, ran 1.6× faster on two threads than
/// on one that way; docs/PERFORMANCE.md, sixth round). Called from outside the pool,
/// handing the work over costs a wake-up and a move between caches, and they split only
/// from [`PAR_MIN_FMAS`], as every product does.
const PAR_MIN_FMAS_ON_POOL: usize = 1 << 17;

/// The fewest multiply-adds for which an `m × k · k × n` product splits over the
/// threads: [`PAR_MIN_FMAS_ON_POOL`] for a shape of this path on a thread of the pool,
/// [`PAR_MIN_FMAS`] otherwise.
pub(crate) fn par_min_fmas(m: usize, n: usize, k: usize) -> usize {
    if m.min(n).min(k) <= SMALL && rayon::current_thread_index().is_some() {
        PAR_MIN_FMAS_ON_POOL
    } else {
        PAR_MIN_FMAS
    }
}

/// The largest transposed B (elements) copied into a row-major buffer for this path.
const MAX_B_COPY: usize = 1 << 16;

/// The fewest result rows for which a transposed B is worth copying (a LeNet filter
/// gradient, 6 rows, costs more to copy than to compute).
const MIN_ROWS_FOR_COPY: usize = 64;

/// Rows of the result per register block: 8 × up to 3 vectors on AVX-512 (24 of its 32
/// registers), 6 × up to 2 on AVX2 (12 of 16, leaving room for B and the broadcast).
const MR_AVX512: usize = 8;
const MR_AVX2: usize = 6;

thread_local! {
    /// This thread's row-major copy of a transposed B.
    static BROWS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Computes `dst (+)= a · b` (`m × k` times `k × n`, any strides but see the module doc)
/// when the shape has a side of at most [`SMALL`] and the processor has AVX2 or
/// AVX-512 (`path`); returns `false`, touching nothing, when the shape is not for this
/// path.
///
/// # Safety
/// As [`super::sgemm::sgemm`]: every addressed element valid, `dst` not overlapping the
/// operands, distinct `(i, j)` distinct elements of `dst`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_small(
    path: CpuPath,
    m: usize,
    n: usize,
    k: usize,
    dst: Mat<*mut f32>,
    accumulate: bool,
    a: Mat<*const f32>,
    b: Mat<*const f32>,
    threads: usize,
) -> bool {
    if path == CpuPath::Scalar || m == 0 || n == 0 || k == 0 || m.min(n).min(k) > SMALL {
        return false;
    }
    // Vectors run along the result's rows: compute `dstᵀ = bᵀ · aᵀ` when its columns
    // are the contiguous ones.
    let (m, n, dst, a, b) = if dst.cs == 1 {
        (m, n, dst, a, b)
    } else if dst.rs == 1 {
        (n, m, dst.t(), b.t(), a.t())
    } else {
        return false;
    };
    // A transposed B is copied only when the copy is small and many row blocks share it.
    if dst.rs < 0 || (b.cs != 1 && (k * n > MAX_B_COPY || m < MIN_ROWS_FOR_COPY)) {
        return false;
    }
    with_buffer(&BROWS, |buf| {
        let (bp, ldb) = if b.cs == 1 && b.rs >= 0 {
            (b.ptr, b.rs as usize)
        } else {
            if buf.len() < k * n {
                buf.resize(k * n, 0.0);
            }
            for p in 0..k {
                let src = b.ptr.offset(p as isize * b.rs);
                for (j, d) in buf[p * n..(p + 1) * n].iter_mut().enumerate() {
                    *d = *src.offset(j as isize * b.cs);
                }
            }
            (buf.as_ptr(), n)
        };
        let ldc = dst.rs as usize;
        let (lanes, mr) = if path >= CpuPath::Avx512 {
            (16, MR_AVX512)
        } else {
            (8, MR_AVX2)
        };
        let bp = Shared(bp);
        // One part: rows `r`, columns `c` of the result.
        let part = |r: std::ops::Range<usize>, c: std::ops::Range<usize>| {
            let (a, d) = (a, dst);
            for i in r.clone().step_by(mr) {
                let rows = mr.min(r.end - i);
                let ai = a.ptr.offset(i as isize * a.rs);
                let mut j = c.start;
                while j < c.end {
                    let cols = c.end - j;
                    let bj = bp.get().add(j);
                    let cij = d.ptr.add(i * ldc + j);
                    // SAFETY: rows `i..i+rows`, columns `j..j+cols` lie inside the
                    // product; the kernel reads and writes nothing else.
                    let done = unsafe {
                        block(
                            path, k, ai, a.rs, a.cs, rows, bj, ldb, cols, cij, ldc, accumulate,
                        )
                    };
                    j += done;
                }
            }
        };
        let nt = if m * n * k >= par_min_fmas(m, n, k) {
            threads.max(1)
        } else {
            1
        };
        if nt > 1 && m >= 2 * mr {
            let per = m.div_ceil(nt).div_ceil(mr) * mr;
            threads::run(|| {
                (0..m.div_ceil(per))
                    .into_par_iter()
                    .with_max_len(1)
                    .for_each(|t| part(t * per..((t + 1) * per).min(m), 0..n))
            });
        } else if nt > 1 && n >= 2 * lanes {
            let per = n.div_ceil(nt).div_ceil(lanes) * lanes;
            threads::run(|| {
                (0..n.div_ceil(per))
                    .into_par_iter()
                    .with_max_len(1)
                    .for_each(|t| part(0..m, t * per..((t + 1) * per).min(n)))
            });
        } else {
            part(0..m, 0..n);
        }
    });
    true
}

/// One register block: `rows` rows (at most the path's `MR_*`) starting at `a`, the first up to three vectors
/// of the `cols` columns starting at `b`/`c`; returns how many columns it did.
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn block(
    path: CpuPath,
    k: usize,
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    rows: usize,
    b: *const f32,
    ldb: usize,
    cols: usize,
    c: *mut f32,
    ldc: usize,
    add: bool,
) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if path >= CpuPath::Avx512 {
            let args = (k, a, a_rs, a_cs, rows, b, ldb, c, ldc, add);
            return match cols {
                0..=16 => x86::avx512::<MR_AVX512, 1>(args, cols),
                17..=32 => x86::avx512::<MR_AVX512, 2>(args, cols),
                _ => x86::avx512::<MR_AVX512, 3>(args, cols.min(48)),
            };
        }
        if path >= CpuPath::Avx2 {
            let args = (k, a, a_rs, a_cs, rows, b, ldb, c, ldc, add);
            return match cols {
                0..=8 => x86::avx2::<MR_AVX2, 1>(args, cols),
                _ => x86::avx2::<MR_AVX2, 2>(args, cols.min(16)),
            };
        }
    }
    let _ = (path, k, a, a_rs, a_cs, rows, b, ldb, c, ldc, add);
    unreachable!("sgemm_small runs only on AVX2 or AVX-512 paths, got {cols} columns")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// `(k, a, a_rs, a_cs, rows, b, ldb, c, ldc, add)` of one block.
    pub(super) type Args = (
        usize,
        *const f32,
        isize,
        isize,
        usize,
        *const f32,
        usize,
        *mut f32,
        usize,
        bool,
    );

    /// Row pointers of A for `rows` rows; the rows past `rows` repeat row 0 (computed,
    /// never stored), so that the block's shape stays fixed.
    #[inline(always)]
    unsafe fn row_ptrs<const MR: usize>(
        a: *const f32,
        a_rs: isize,
        rows: usize,
    ) -> [*const f32; MR] {
        let mut r = [a; MR];
        for (i, p) in r.iter_mut().enumerate().take(rows) {
            *p = a.offset(i as isize * a_rs);
        }
        r
    }

    /// AVX-512: `MR` rows × `NV` vectors of 16 (`cols` of them valid, the last vector
    /// masked).
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn avx512<const MR: usize, const NV: usize>(
        args: Args,
        cols: usize,
    ) -> usize {
        let (k, a, a_rs, a_cs, rows, b, ldb, c, ldc, add) = args;
        let mut mask = [0u16; NV];
        for (v, m) in mask.iter_mut().enumerate() {
            let left = cols.saturating_sub(v * 16).min(16);
            *m = ((1u32 << left) - 1) as u16;
        }
        let ap = row_ptrs::<MR>(a, a_rs, rows);
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        let mut off = 0isize;
        let mut bp = b;
        for _ in 0..k {
            let mut bv = [_mm512_setzero_ps(); NV];
            for v in 0..NV {
                bv[v] = _mm512_maskz_loadu_ps(mask[v], bp.add(v * 16));
            }
            for i in 0..MR {
                let x = _mm512_set1_ps(*ap[i].offset(off));
                for v in 0..NV {
                    acc[i][v] = _mm512_fmadd_ps(x, bv[v], acc[i][v]);
                }
            }
            off += a_cs;
            bp = bp.add(ldb);
        }
        for (i, row) in acc.iter().enumerate().take(rows) {
            for v in 0..NV {
                let r = c.add(i * ldc + v * 16);
                let mut x = row[v];
                if add {
                    x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], r));
                }
                _mm512_mask_storeu_ps(r, mask[v], x);
            }
        }
        cols
    }

    /// AVX2 + FMA: `MR` rows × `NV` vectors of 8 (`cols` valid, the last vector masked).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2<const MR: usize, const NV: usize>(args: Args, cols: usize) -> usize {
        let (k, a, a_rs, a_cs, rows, b, ldb, c, ldc, add) = args;
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mut mask = [_mm256_setzero_si256(); NV];
        for (v, m) in mask.iter_mut().enumerate() {
            let left = cols.saturating_sub(v * 8).min(8) as i32;
            *m = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), lane);
        }
        let ap = row_ptrs::<MR>(a, a_rs, rows);
        let mut acc = [[_mm256_setzero_ps(); NV]; MR];
        let mut off = 0isize;
        let mut bp = b;
        for _ in 0..k {
            let mut bv = [_mm256_setzero_ps(); NV];
            for v in 0..NV {
                bv[v] = _mm256_maskload_ps(bp.add(v * 8), mask[v]);
            }
            for i in 0..MR {
                let x = _mm256_set1_ps(*ap[i].offset(off));
                for v in 0..NV {
                    acc[i][v] = _mm256_fmadd_ps(x, bv[v], acc[i][v]);
                }
            }
            off += a_cs;
            bp = bp.add(ldb);
        }
        for (i, row) in acc.iter().enumerate().take(rows) {
            for v in 0..NV {
                let r = c.add(i * ldc + v * 8);
                let mut x = row[v];
                if add {
                    x = _mm256_add_ps(x, _mm256_maskload_ps(r, mask[v]));
                }
                _mm256_maskstore_ps(r, mask[v], x);
            }
        }
        cols
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::caps::detected_cpu_path;
    use crate::cpu::sgemm::tests::data;

    /// Every SIMD path this processor has, each small side, every transpose of both
    /// operands, a transposed (column-major) result, accumulation, masked column edges,
    /// partial row blocks, 1 thread and 2 (called on a thread of the pool, so that the
    /// larger shapes split by rows or by columns), against a float64 reference.
    #[test]
    fn small_products_agree_with_a_float64_reference() {
        let best = detected_cpu_path();
        let paths: Vec<CpuPath> = [CpuPath::Avx2, CpuPath::Avx512]
            .into_iter()
            .filter(|p| *p <= best)
            .collect();
        let shapes = [
            (256, 256, 10),
            (10, 256, 256),
            (256, 10, 256),
            (1, 1, 1),
            (7, 5, 3),
            (13, 33, 17),
            (9, 100, 200),
            (300, 49, 16),
            (100, 70, 1),
            (16, 16, 16),
            (50, 3, 1000),
        ];
        for &path in &paths {
            for &(m, n, k) in &shapes {
                for (ta, tb, tc) in [
                    (false, false, false),
                    (true, false, false),
                    (false, true, false),
                    (true, true, true),
                    (false, true, true),
                ] {
                    let a = data(m * k, (m * 31 + k) as u32);
                    let b = data(k * n, (n * 17 + k) as u32);
                    let (ar, ac) = if ta { (1, m as isize) } else { (k as isize, 1) };
                    let (br, bc) = if tb { (1, k as isize) } else { (n as isize, 1) };
                    let (dr, dc) = if tc { (1, m as isize) } else { (n as isize, 1) };
                    for threads in [1, 2] {
                        for accumulate in [false, true] {
                            let init = data(m * n, 7);
                            let mut got = init.clone();
                            let dst = Shared(got.as_mut_ptr());
                            let (a, b) = (&a, &b);
                            let call = move || unsafe {
                                sgemm_small(
                                    path,
                                    m,
                                    n,
                                    k,
                                    Mat::new(dst.get(), dr, dc),
                                    accumulate,
                                    Mat::new(a.as_ptr(), ar, ac),
                                    Mat::new(b.as_ptr(), br, bc),
                                    threads,
                                )
                            };
                            // Two threads from a thread of the pool, where products from
                            // PAR_MIN_FMAS_ON_POOL multiply-adds split by rows or columns.
                            let ran = if threads == 1 {
                                call()
                            } else {
                                crate::threads::install(call)
                            };
                            // After orienting the result, B must be row-major or worth
                            // copying (many rows); otherwise the path declines untouched.
                            let swapped = dc != 1;
                            let (rows, b_cs) = if swapped { (n, ar) } else { (m, bc) };
                            let copy_len = k * if swapped { m } else { n };
                            let expect =
                                b_cs == 1 || (rows >= MIN_ROWS_FOR_COPY && copy_len <= MAX_B_COPY);
                            assert_eq!(ran, expect, "{path:?} {m}x{n}x{k} ta={ta} tb={tb} tc={tc}");
                            if !ran {
                                assert_eq!(got, init, "a declined product wrote the result");
                                continue;
                            }
                            for i in 0..m {
                                for j in 0..n {
                                    let mut e = 0f64;
                                    for p in 0..k {
                                        e += a[(i as isize * ar + p as isize * ac) as usize] as f64
                                            * b[(p as isize * br + j as isize * bc) as usize]
                                                as f64;
                                    }
                                    let idx = (i as isize * dr + j as isize * dc) as usize;
                                    if accumulate {
                                        e += init[idx] as f64;
                                    }
                                    let g = got[idx] as f64;
                                    assert!(
                                        (g - e).abs() <= 1e-5 * (k as f64).sqrt() * (1.0 + e.abs()),
                                        "{path:?} {m}x{n}x{k} ta={ta} tb={tb} tc={tc} \
                                         acc={accumulate} threads={threads} at ({i},{j}): {g} vs {e}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn large_or_scalar_products_are_left_to_the_packed_gemm() {
        let a = data(32 * 32, 1);
        let mut c = vec![0f32; 32 * 32];
        let mat = |p: *const f32| Mat::new(p, 32, 1);
        let d = Mat::new(c.as_mut_ptr(), 32, 1);
        for path in [CpuPath::Scalar, detected_cpu_path()] {
            let ran = unsafe {
                sgemm_small(
                    path,
                    32,
                    32,
                    32,
                    d,
                    false,
                    mat(a.as_ptr()),
                    mat(a.as_ptr()),
                    1,
                )
            };
            assert!(!ran, "{path:?}: 32×32×32 has no side of at most {SMALL}");
        }
        assert!(
            c.iter().all(|&x| x == 0.0),
            "a declined product wrote the result"
        );
    }
}
