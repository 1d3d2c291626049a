//! Elementwise kernels: strided copy, unary map and broadcasting binary map.

use crate::layout::Layout;
use crate::threads::{self, PAR_MIN};
use rayon::prelude::*;

/// Rows of work per parallel task are grouped so that each task has at least this many elements.
const TASK_ELEMS: usize = 1 << 14;

/// Calls `f(row, out_row)` for every row of `out` (rows of length `inner`), in parallel when large.
fn for_each_row<U: Send>(out: &mut [U], inner: usize, f: impl Fn(usize, &mut [U]) + Sync + Send) {
    if out.is_empty() {
        return;
    }
    let n = out.len();
    if n < PAR_MIN || threads::num_threads() == 1 {
        for (r, row) in out.chunks_mut(inner).enumerate() {
            f(r, row);
        }
        return;
    }
    let rows_per_task = (TASK_ELEMS / inner).max(1);
    threads::run(|| {
        out.par_chunks_mut(rows_per_task * inner)
            .enumerate()
            .for_each(|(t, chunk)| {
                for (i, row) in chunk.chunks_mut(inner).enumerate() {
                    f(t * rows_per_task + i, row);
                }
            })
    });
}

/// Storage offset of the first element of row `r` (all dims but the last) of a collapsed layout.
#[inline]
fn row_offset(shape: &[usize], strides: &[usize], base: usize, mut r: usize) -> usize {
    let mut off = base;
    for d in (0..shape.len() - 1).rev() {
        let i = r % shape[d];
        r /= shape[d];
        off += i * strides[d];
    }
    off
}

/// Copies a strided view into a fresh row-major buffer.
pub(crate) fn copy_strided<T: Copy + Send + Sync + Default>(src: &[T], l: &Layout) -> Vec<T> {
    if let Some(r) = l.contiguous_range() {
        return src[r].to_vec();
    }
    let (shape, strides) = Layout::collapse(&l.shape, &[&l.strides]);
    let s = &strides[0];
    let inner = *shape.last().unwrap();
    let is = *s.last().unwrap();
    let mut out = vec![T::default(); l.numel()];
    for_each_row(&mut out, inner, |r, row| {
        let off = row_offset(&shape, s, l.offset, r);
        if is == 1 {
            row.copy_from_slice(&src[off..off + inner]);
        } else {
            for (j, o) in row.iter_mut().enumerate() {
                *o = src[off + j * is];
            }
        }
    });
    out
}

/// Applies a slice kernel (`dst[i] = k(src[i])`) to a contiguous view, in parallel
/// chunks when large.
pub(crate) fn map_contiguous<T, U>(
    src: &[T],
    l: &Layout,
    k: impl Fn(&[T], &mut [U]) + Sync + Send,
) -> Vec<U>
where
    T: Copy + Send + Sync + Default,
    U: Copy + Send + Sync + Default,
{
    debug_assert!(l.is_contiguous());
    let n = l.numel();
    let src = &src[l.offset..l.offset + n];
    let mut out = vec![U::default(); n];
    for_each_row(&mut out, TASK_ELEMS.min(n.max(1)), |r, row| {
        let start = r * TASK_ELEMS.min(n.max(1));
        k(&src[start..start + row.len()], row);
    });
    out
}

/// Applies `f` to every element of a view.
pub(crate) fn unary<T, U>(src: &[T], l: &Layout, f: impl Fn(T) -> U + Sync + Send) -> Vec<U>
where
    T: Copy + Send + Sync + Default,
    U: Copy + Send + Sync + Default,
{
    let (shape, strides) = Layout::collapse(&l.shape, &[&l.strides]);
    let s = &strides[0];
    let inner = *shape.last().unwrap();
    let is = *s.last().unwrap();
    let n = l.numel();
    let mut out = vec![U::default(); n];
    if n == 0 {
        return out;
    }
    let row_len = if is == 1 && shape.len() == 1 {
        inner.min(TASK_ELEMS)
    } else {
        inner
    };
    for_each_row(&mut out, row_len, |r, row| {
        let off = if shape.len() == 1 {
            l.offset + r * row_len * is
        } else {
            row_offset(&shape, s, l.offset, r)
        };
        if is == 1 {
            let m = row.len();
            for (o, &x) in row.iter_mut().zip(&src[off..off + m]) {
                *o = f(x);
            }
        } else {
            for (j, o) in row.iter_mut().enumerate() {
                *o = f(src[off + j * is]);
            }
        }
    });
    out
}

/// Applies `f` pairwise to two views already broadcast to the same shape.
pub(crate) fn binary<T, U>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    f: impl Fn(T, T) -> U + Sync + Send,
) -> Vec<U>
where
    T: Copy + Send + Sync + Default,
    U: Copy + Send + Sync + Default,
{
    debug_assert_eq!(la.shape, lb.shape);
    let n = la.numel();
    let mut out = vec![U::default(); n];
    if n == 0 {
        return out;
    }
    let (shape, strides) = Layout::collapse(&la.shape, &[&la.strides, &lb.strides]);
    let (sa, sb) = (&strides[0], &strides[1]);
    let inner = *shape.last().unwrap();
    let (ia, ib) = (*sa.last().unwrap(), *sb.last().unwrap());
    // One long contiguous (or scalar-broadcast) row: split it so that it parallelises.
    let flat = shape.len() == 1;
    let row_len = if flat { inner.min(TASK_ELEMS) } else { inner };
    for_each_row(&mut out, row_len, |r, row| {
        let (oa, ob) = if flat {
            (la.offset + r * row_len * ia, lb.offset + r * row_len * ib)
        } else {
            (
                row_offset(&shape, sa, la.offset, r),
                row_offset(&shape, sb, lb.offset, r),
            )
        };
        let m = row.len();
        match (ia, ib) {
            (1, 1) => {
                for ((o, &x), &y) in row.iter_mut().zip(&a[oa..oa + m]).zip(&b[ob..ob + m]) {
                    *o = f(x, y);
                }
            }
            (1, 0) => {
                let y = b[ob];
                for (o, &x) in row.iter_mut().zip(&a[oa..oa + m]) {
                    *o = f(x, y);
                }
            }
            (0, 1) => {
                let x = a[oa];
                for (o, &y) in row.iter_mut().zip(&b[ob..ob + m]) {
                    *o = f(x, y);
                }
            }
            _ => {
                for (j, o) in row.iter_mut().enumerate() {
                    *o = f(a[oa + j * ia], b[ob + j * ib]);
                }
            }
        }
    });
    out
}
