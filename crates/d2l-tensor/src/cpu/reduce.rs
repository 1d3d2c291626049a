//! Reduction kernels: sums over any set of dims, max/min with indices along one dim,
//! and a numerically stable softmax over rows.

use super::copy_strided;
use crate::dtype::Float;
use crate::layout::Layout;
use crate::threads::{self, PAR_MIN};
use rayon::prelude::*;
use std::borrow::Cow;

/// Sum of a contiguous run: 8 independent lanes per block (so it vectorises), blocks
/// added in f64 so long sums keep their precision.
#[inline]
pub(crate) fn sum_run<T: Float>(x: &[T]) -> T {
    const BLOCK: usize = 2048;
    if let Some(xf) = super::simd::as_f32(x) {
        let total: f64 = xf
            .chunks(BLOCK * 4)
            .map(|b| super::simd::sum_f32(b) as f64)
            .sum();
        return T::of(total);
    }
    let mut total = 0f64;
    for block in x.chunks(BLOCK) {
        let mut lanes = [T::ZERO; 8];
        let mut it = block.chunks_exact(8);
        for c in &mut it {
            for k in 0..8 {
                lanes[k] = lanes[k] + c[k];
            }
        }
        let mut s = T::ZERO;
        for v in it.remainder() {
            s = s + *v;
        }
        for l in lanes {
            s = s + l;
        }
        total += s.to_f64();
    }
    T::of(total)
}

/// Splits a layout into (kept dims first, reduced dims last) and returns the permuted
/// view with the number of kept ("outer") and reduced ("inner") elements.
fn split_dims(l: &Layout, dims: &[usize]) -> (Layout, usize, usize) {
    let rank = l.shape.len();
    let mut order: Vec<usize> = (0..rank).filter(|d| !dims.contains(d)).collect();
    order.extend(dims.iter().copied());
    let p = l.permute(&order).expect("reduce dims were validated");
    let inner: usize = dims.iter().map(|&d| l.shape[d]).product();
    // The kept dims' product, not numel / inner: with an empty reduced dim that quotient
    // would be 0 and a sum over nothing would lose its (zero) output elements.
    let outer: usize = (0..rank)
        .filter(|d| !dims.contains(d))
        .map(|d| l.shape[d])
        .product();
    (p, outer, inner)
}

/// The elements of `src` seen through `p`, in `p`'s row-major order: borrowed when
/// they are one contiguous run, else copied.
fn in_order<'a, T: Float>(src: &'a [T], p: &Layout) -> Cow<'a, [T]> {
    match p.contiguous_range() {
        Some(r) => Cow::Borrowed(&src[r]),
        None => Cow::Owned(copy_strided(src, p)),
    }
}

/// Sums over `dims` (validated, distinct); the result is row-major over the kept dims.
pub(crate) fn sum<T: Float>(src: &[T], l: &Layout, dims: &[usize]) -> Vec<T> {
    let (p, outer, inner) = split_dims(l, dims);
    if inner == 0 {
        return vec![T::ZERO; outer];
    }
    // Reducing the leading dims of a contiguous tensor (a bias gradient): add rows.
    let leading = dims.iter().all(|&d| d < dims.len());
    if leading && l.is_contiguous() && outer > 1 {
        let base = &src[l.offset..l.offset + l.numel()];
        let mut out = vec![T::ZERO; outer];
        let cols = 512.min(outer);
        let work = |(c, o): (usize, &mut [T])| {
            let start = c * cols;
            for r in 0..inner {
                let row = &base[r * outer + start..r * outer + start + o.len()];
                for (a, &b) in o.iter_mut().zip(row) {
                    *a = *a + b;
                }
            }
        };
        if l.numel() >= PAR_MIN && outer >= 2 * cols {
            threads::run(|| out.par_chunks_mut(cols).enumerate().for_each(work));
        } else {
            out.chunks_mut(cols).enumerate().for_each(work);
        }
        return out;
    }
    let data = in_order(src, &p);
    if outer == 1 {
        if data.len() >= PAR_MIN && threads::num_threads() > 1 {
            let chunk = data.len().div_ceil(threads::num_threads() * 4);
            let parts: Vec<f64> = threads::run(|| {
                data.par_chunks(chunk)
                    .map(|c| sum_run(c).to_f64())
                    .collect()
            });
            return vec![T::of(parts.iter().sum())];
        }
        return vec![sum_run(&data)];
    }
    let mut out = vec![T::ZERO; outer];
    if data.len() >= PAR_MIN {
        threads::run(|| {
            out.par_iter_mut()
                .zip(data.par_chunks(inner))
                .for_each(|(o, row)| *o = sum_run(row))
        });
    } else {
        for (o, row) in out.iter_mut().zip(data.chunks(inner)) {
            *o = sum_run(row);
        }
    }
    out
}

/// Max (or min) along one dim with the index of the first extremum; NaN wins, as in PyTorch.
pub(crate) fn extremum_dim<T: Float>(
    src: &[T],
    l: &Layout,
    dim: usize,
    max: bool,
) -> (Vec<T>, Vec<i64>) {
    let (p, outer, inner) = split_dims(l, &[dim]);
    let data = in_order(src, &p);
    let mut vals = vec![T::ZERO; outer];
    let mut idx = vec![0i64; outer];
    if inner == 0 {
        return (vals, idx);
    }
    for ((v, i), row) in vals.iter_mut().zip(idx.iter_mut()).zip(data.chunks(inner)) {
        let mut best = row[0];
        let mut bi = 0;
        if !best.is_nan() {
            for (j, &x) in row.iter().enumerate().skip(1) {
                if x.is_nan() {
                    best = x;
                    bi = j;
                    break;
                }
                if (max && x > best) || (!max && x < best) {
                    best = x;
                    bi = j;
                }
            }
        }
        *v = best;
        *i = bi as i64;
    }
    (vals, idx)
}

/// Softmax (or log-softmax) along `dim`. Returns the buffer laid out with `dim` last and
/// the permutation that maps it back to the input's dim order.
pub(crate) fn softmax<T: Float>(
    src: &[T],
    l: &Layout,
    dim: usize,
    log: bool,
) -> (Vec<T>, Vec<usize>) {
    let (p, _outer, inner) = split_dims(l, &[dim]);
    let data = in_order(src, &p);
    let mut out = vec![T::ZERO; data.len()];
    let work = |(row, x): (&mut [T], &[T])| {
        if let (Some(xf), Some(rf)) = (super::simd::as_f32(x), super::simd::as_f32_mut(row)) {
            super::simd::softmax_row_f32(xf, rf, log);
            return;
        }
        let m = x.iter().fold(T::NEG_INF, |a, &b| a.max_nan(b));
        // An all -inf row would give inf - inf; shift by 0 instead.
        let m = if m == T::NEG_INF { T::ZERO } else { m };
        let mut s = T::ZERO;
        for (o, &v) in row.iter_mut().zip(x) {
            let e = (v - m).exp();
            s = s + e;
            *o = if log { v - m } else { e };
        }
        if log {
            // (x - m) - ln s, not x - (m + ln s): adding m first would round ln s at
            // the scale of the logits.
            let ls = s.ln();
            for o in row.iter_mut() {
                *o = *o - ls;
            }
        } else {
            let inv = T::ONE / s;
            for o in row.iter_mut() {
                *o = *o * inv;
            }
        }
    };
    if inner > 0 {
        if out.len() >= PAR_MIN {
            threads::run(|| {
                out.par_chunks_mut(inner)
                    .zip(data.par_chunks(inner))
                    .for_each(work)
            });
        } else {
            out.chunks_mut(inner).zip(data.chunks(inner)).for_each(work);
        }
    }
    // p's dim order is (kept..., dim); the inverse puts `dim` back in place.
    let rank = l.shape.len();
    let mut order: Vec<usize> = (0..rank).filter(|&d| d != dim).collect();
    order.push(dim);
    let mut inverse = vec![0; rank];
    for (i, &d) in order.iter().enumerate() {
        inverse[d] = i;
    }
    (out, inverse)
}
