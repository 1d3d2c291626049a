//! Matrix products through cuBLAS (batched, strided, TF32 when allowed).

use super::*;

// ------------------------------------------------------------------ matmul

pub(super) fn blas_err(d: &Dev, what: &str, e: cublas::result::CublasError) -> String {
    format!("CUDA: {what} on cuda:{} failed: {:?}", d.ordinal, e.0)
}

/// Batched row-major matrix product `C[b] = op(A[b]) · op(B[b])` through
/// cuBLAS, returning a new contiguous `batch × m × n` block.
///
/// `A[b]` starts at element `a_off + b·a_batch_stride` and is stored
/// contiguously as `m × k` (or `k × m` when `a_trans`, i.e. the logical A is
/// its transpose); likewise `B[b]` at `b_off + b·b_batch_stride`, stored
/// `k × n` (or `n × k` when `b_trans`). A batch stride of 0 broadcasts.
/// f32 uses TF32 tensor cores only after [`set_allow_tf32`]`(true)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    dt: Dt,
    a: &Block,
    a_off: usize,
    b: &Block,
    b_off: usize,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    a_trans: bool,
    b_trans: bool,
    a_batch_stride: usize,
    b_batch_stride: usize,
) -> Result<Block, String> {
    need_float(dt, "matmul")?;
    let d = same_device(&[a, b], "matmul")?;
    let big = |v: usize| v > i32::MAX as usize;
    if big(m) || big(n) || big(k) || big(batch) {
        return Err(format!(
            "CUDA: matmul dimensions batch={batch} m={m} k={k} n={n} exceed cuBLAS's 32-bit limits"
        ));
    }
    let out_n = batch
        .checked_mul(m)
        .and_then(|v| v.checked_mul(n))
        .ok_or_else(|| "CUDA: matmul output too large".to_string())?;
    if out_n == 0 {
        return alloc_on(d, 0);
    }
    if k == 0 {
        return alloc_zeroed(d.ordinal, out_n * dt.size());
    }
    let extent = |off: usize, bs: usize, rows: usize, cols: usize| -> Option<usize> {
        (batch - 1)
            .checked_mul(bs)?
            .checked_add(rows.checked_mul(cols)?)?
            .checked_add(off)
    };
    let ea = extent(a_off, a_batch_stride, m, k);
    let eb = extent(b_off, b_batch_stride, k, n);
    if ea.is_none_or(|e| e > a.len(dt)) || eb.is_none_or(|e| e > b.len(dt)) {
        return Err(format!(
            "CUDA: matmul operands out of bounds (A needs {ea:?} of {} elements, B needs {eb:?} of {})",
            a.len(dt),
            b.len(dt)
        ));
    }
    let out = alloc_on(d, out_n * dt.size())?;

    let mut guard = lock(&d.blas);
    if guard.is_none() {
        let created = guarded("cuBLAS initialisation", || {
            // SAFETY: only tries to open the shared library.
            if !unsafe { bsys::is_culib_present() } {
                return Err("CUDA: libcublas could not be loaded (add the CUDA libraries to LD_LIBRARY_PATH)".into());
            }
            d.bind()?;
            let blas =
                CudaBlas::new(d.stream.clone()).map_err(|e| blas_err(d, "cublasCreate", e))?;
            // SAFETY: valid handle created above.
            unsafe {
                bsys::cublasSetMathMode(*blas.handle(), bsys::cublasMath_t::CUBLAS_DEFAULT_MATH)
            }
            .result()
            .map_err(|e| blas_err(d, "cublasSetMathMode", e))?;
            Ok(blas)
        })?;
        *guard = Some((created, false));
    }
    let Some((blas, tf32_on)) = guard.as_mut() else {
        return Err("CUDA: cuBLAS handle unavailable".into());
    };
    let handle = *blas.handle();
    d.bind()?;
    let want_tf32 = dt == Dt::F32 && allow_tf32();
    if dt == Dt::F32 && want_tf32 != *tf32_on {
        let mode = if want_tf32 {
            bsys::cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH
        } else {
            bsys::cublasMath_t::CUBLAS_DEFAULT_MATH
        };
        // SAFETY: valid handle, guarded by the mutex.
        unsafe { bsys::cublasSetMathMode(handle, mode) }
            .result()
            .map_err(|e| blas_err(d, "cublasSetMathMode", e))?;
        *tf32_on = want_tf32;
    }

    // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: call gemm with the
    // operands swapped. A row-major r×c buffer is a column-major c×r matrix.
    use bsys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
    let (op_b, ldb) = if b_trans {
        (CUBLAS_OP_T, k)
    } else {
        (CUBLAS_OP_N, n)
    };
    let (op_a, lda) = if a_trans {
        (CUBLAS_OP_T, m)
    } else {
        (CUBLAS_OP_N, k)
    };
    let (mi, ni, ki) = (m as i32, n as i32, k as i32);
    let (lda, ldb, ldc) = (lda as i32, ldb as i32, n as i32);
    let (sa, sb, sc) = (a_batch_stride as i64, b_batch_stride as i64, (m * n) as i64);
    let bt = batch as i32;
    // The f32 and f64 calls differ only in the cuBLAS function and the element type.
    macro_rules! gemm_strided_batched {
        ($gemm:ident, $t:ty) => {{
            let (alpha, beta): ($t, $t) = (1.0, 0.0);
            // SAFETY: pointers are device pointers of live blocks whose
            // extents were checked above; alpha/beta are host scalars
            // (default host pointer mode); the handle is used under the mutex.
            unsafe {
                cublas::result::$gemm(
                    handle,
                    op_b,
                    op_a,
                    ni,
                    mi,
                    ki,
                    &alpha,
                    b.ptr_at(dt, b_off) as *const $t,
                    ldb,
                    sb,
                    a.ptr_at(dt, a_off) as *const $t,
                    lda,
                    sa,
                    &beta,
                    out.ptr as *mut $t,
                    ldc,
                    sc,
                    bt,
                )
            }
        }};
    }
    let r = match dt {
        Dt::F32 => gemm_strided_batched!(sgemm_strided_batched, f32),
        _ => gemm_strided_batched!(dgemm_strided_batched, f64),
    };
    r.map_err(|e| blas_err(d, "cuBLAS gemm", e))?;
    Ok(out)
}
