//! The system's CBLAS as an f32 GEMM candidate (cargo feature `blas`, chosen at run time
//! with `D2L_GEMM=blas`): measured against our kernels, the `gemm` crate and PyTorch's
//! MKL on the hot shapes in docs/PERFORMANCE.md. Never a requirement: the default build
//! links no system library.
//!
//! The binary links `libblas.so.3`, so the implementation is the one the dynamic loader
//! finds: on Debian the `libblas.so.3` alternative, or a directory given with
//! `LD_LIBRARY_PATH` (`/usr/lib/x86_64-linux-gnu/openblas-serial` for OpenBLAS,
//! `…/blis-serial` for BLIS). Use the one-threaded (`serial`) builds: the engine splits a
//! product between its own threads, one BLAS call per block, as it does for the `gemm`
//! crate. OpenBLAS's kernels are chosen with `OPENBLAS_CORETYPE=Haswell|SkylakeX`
//! (Debian's 0.3.21 does not recognise Sapphire Rapids and would take its SSE3 ones),
//! BLIS's with `BLIS_ARCH_TYPE=3` (haswell) or `0` (skx): a number, not a name.

use super::sgemm::Mat;
use std::os::raw::c_int;

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

#[link(name = "blas")]
extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn cblas_sgemm(
        order: c_int,
        trans_a: c_int,
        trans_b: c_int,
        m: c_int,
        n: c_int,
        k: c_int,
        alpha: f32,
        a: *const f32,
        lda: c_int,
        b: *const f32,
        ldb: c_int,
        beta: f32,
        c: *mut f32,
        ldc: c_int,
    );
}

/// How CBLAS reads a `rows × cols` operand with element strides `(rs, cs)` as a
/// row-major matrix: `(transpose flag, leading dimension)`, or `None` when neither
/// stride is 1 (or a stride is negative, or the leading dimension would be too small or
/// too large for CBLAS).
fn layout<P>(rows: usize, cols: usize, x: &Mat<P>) -> Option<(c_int, c_int)> {
    let (rs, cs) = (usize::try_from(x.rs).ok()?, usize::try_from(x.cs).ok()?);
    // Row-major: (i, j) at i·ld + j, so unit steps along a row (a single column needs
    // none) and rows at least a row apart (a single row needs no row stride).
    let plain = (cs == 1 || cols == 1) && (rows == 1 || rs >= cols.max(1));
    // Transposed: (i, j) at j·ld + i.
    let transposed = (rs == 1 || rows == 1) && (cols == 1 || cs >= rows.max(1));
    let (flag, ld) = if plain {
        (NO_TRANS, if rows == 1 { cols.max(1) } else { rs })
    } else if transposed {
        (TRANS, if cols == 1 { rows.max(1) } else { cs })
    } else {
        return None;
    };
    Some((flag, c_int::try_from(ld).ok()?))
}

/// `dst = (dst if accumulate else 0) + a · b` (`m × k` by `k × n`, the views' strides
/// as in [`super::sgemm::sgemm`]) by one `cblas_sgemm` call on the calling thread.
/// Returns `false`, with `dst` untouched, when an operand has no unit stride or a size
/// does not fit CBLAS's `int`: the caller then takes another GEMM.
///
/// # Safety
/// Every addressed element valid, `dst` not overlapping the operands, distinct `(i, j)`
/// distinct elements of `dst`.
pub(crate) unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: Mat<*mut f32>,
    accumulate: bool,
    a: Mat<*const f32>,
    b: Mat<*const f32>,
) -> bool {
    if m == 0 || n == 0 {
        return true;
    }
    let Some((flag, ldc)) = layout(m, n, &dst) else {
        return false;
    };
    if flag == TRANS {
        // A column-major result is the row-major `Cᵀ = Bᵀ·Aᵀ`.
        // SAFETY: the same elements, addressed through the transposed views.
        return unsafe { sgemm(n, m, k, dst.t(), accumulate, b.t(), a.t()) };
    }
    let (Some((ta, lda)), Some((tb, ldb))) = (layout(m, k, &a), layout(k, n, &b)) else {
        return false;
    };
    let (Ok(mi), Ok(ni), Ok(ki)) = (c_int::try_from(m), c_int::try_from(n), c_int::try_from(k))
    else {
        return false;
    };
    // beta 0 never reads C, so stale values (NaN included) do not survive.
    let beta = if accumulate { 1.0 } else { 0.0 };
    // SAFETY: the layouts above describe exactly the caller's elements; CBLAS reads A
    // and B and writes the `m × n` result through `ldc`.
    unsafe {
        cblas_sgemm(
            ROW_MAJOR, ta, tb, mi, ni, ki, 1.0, a.ptr, lda, b.ptr, ldb, beta, dst.ptr, ldc,
        );
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::sgemm::tests::{data, reference};

    fn mat<P>(ptr: P, rs: usize, cs: usize) -> Mat<P> {
        Mat::new(ptr, rs as isize, cs as isize)
    }

    /// Every transpose of both operands, a column-major result, accumulation, single
    /// rows and columns, against a float64 reference; operands without a unit stride
    /// are declined untouched.
    #[test]
    fn cblas_products_agree_with_a_float64_reference() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (7, 5, 3),
            (64, 784, 256),
            (256, 10, 256),
            (1, 33, 9),
            (40, 1, 70),
        ] {
            for (ta, tb, tc) in [
                (false, false, false),
                (true, false, false),
                (false, true, false),
                (true, true, true),
                (false, true, true),
            ] {
                let a = data(m * k, (m * 31 + k) as u32);
                let b = data(k * n, (n * 17 + k) as u32);
                let (ar, ac) = if ta { (1, m) } else { (k, 1) };
                let (br, bc) = if tb { (1, k) } else { (n, 1) };
                let (dr, dc) = if tc { (1, m) } else { (n, 1) };
                for accumulate in [false, true] {
                    let init = data(m * n, 7);
                    let mut got = init.clone();
                    let ran = unsafe {
                        sgemm(
                            m,
                            n,
                            k,
                            mat(got.as_mut_ptr(), dr, dc),
                            accumulate,
                            mat(a.as_ptr(), ar, ac),
                            mat(b.as_ptr(), br, bc),
                        )
                    };
                    assert!(ran, "{m}x{n}x{k} ta={ta} tb={tb} tc={tc} declined");
                    let want = reference(
                        m,
                        n,
                        k,
                        &a,
                        ar as isize,
                        ac as isize,
                        &b,
                        br as isize,
                        bc as isize,
                    );
                    for i in 0..m {
                        for j in 0..n {
                            let idx = i * dr + j * dc;
                            let e =
                                want[i * n + j] + if accumulate { init[idx] as f64 } else { 0.0 };
                            let g = got[idx] as f64;
                            assert!(
                                (g - e).abs() <= 1e-5 * (k as f64).sqrt() * (1.0 + e.abs()),
                                "{m}x{n}x{k} ta={ta} tb={tb} tc={tc} acc={accumulate} \
                                 at ({i},{j}): {g} vs {e}"
                            );
                        }
                    }
                }
            }
        }
        // A 4×4 view with strides (8, 2): no unit stride, so CBLAS cannot read it.
        let a = data(32, 1);
        let b = data(16, 2);
        let mut d = vec![5.0f32; 16];
        let ran = unsafe {
            sgemm(
                4,
                4,
                4,
                mat(d.as_mut_ptr(), 4, 1),
                false,
                mat(a.as_ptr(), 8, 2),
                mat(b.as_ptr(), 4, 1),
            )
        };
        assert!(!ran);
        assert!(d.iter().all(|&x| x == 5.0));
    }
}
