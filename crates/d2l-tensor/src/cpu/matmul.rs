//! Matrix products through the `gemm` crate (AVX-512/AVX2 kernels, rayon threads); the
//! strides are passed through, so transposed and permuted views need no copy.

use crate::dtype::Float;
use crate::threads;
use gemm::Parallelism;
use rayon::prelude::*;

/// One side of a (batched) product: buffer, offset, and the strides of its batch dims,
/// rows and columns.
pub(crate) struct MatView<'a, T> {
    pub data: &'a [T],
    pub offset: usize,
    pub batch_strides: Vec<usize>,
    pub rs: usize,
    pub cs: usize,
}

/// Computes `out[b] = lhs[b] · rhs[b]` for every batch index of `batch_shape`; the result
/// is row-major `[batch..., m, n]`.
pub(crate) fn matmul<T: Float>(
    lhs: &MatView<T>,
    rhs: &MatView<T>,
    batch_shape: &[usize],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<T> {
    let batches: usize = batch_shape.iter().product();
    let mut out = vec![T::ZERO; batches * m * n];
    if out.is_empty() || k == 0 {
        return out;
    }
    let offset = |v: &MatView<T>, mut b: usize| {
        let mut off = v.offset;
        for d in (0..batch_shape.len()).rev() {
            off += (b % batch_shape[d]) * v.batch_strides[d];
            b /= batch_shape[d];
        }
        off
    };
    let one = |b: usize, dst: &mut [T], par: Parallelism| {
        let (ol, or) = (offset(lhs, b), offset(rhs, b));
        // SAFETY: the offsets and strides come from validated layouts, so every element
        // the kernel reads lies inside `lhs.data` / `rhs.data`, and `dst` holds m×n
        // row-major elements that only this call writes.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                1,
                n as isize,
                false,
                lhs.data.as_ptr().add(ol),
                lhs.cs as isize,
                lhs.rs as isize,
                rhs.data.as_ptr().add(or),
                rhs.cs as isize,
                rhs.rs as isize,
                T::ZERO,
                T::ONE,
                false,
                false,
                false,
                par,
            )
        }
    };
    let flops = m * n * k;
    let nt = threads::num_threads();
    if nt == 1 || (flops < 32 * 32 * 32 && batches == 1) {
        for (b, dst) in out.chunks_mut(m * n).enumerate() {
            one(b, dst, Parallelism::None);
        }
    } else if batches >= nt && flops < 128 * 128 * 128 {
        threads::run(|| {
            out.par_chunks_mut(m * n)
                .enumerate()
                .for_each(|(b, dst)| one(b, dst, Parallelism::None))
        });
    } else {
        threads::run(|| {
            for (b, dst) in out.chunks_mut(m * n).enumerate() {
                one(b, dst, Parallelism::Rayon(nt));
            }
        });
    }
    out
}
