//! Elementwise kernels: strided copy, unary map and broadcasting binary map.

use crate::layout::Layout;
use crate::threads::{self, PAR_MIN};
use rayon::prelude::*;
use std::mem::MaybeUninit;

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

/// A vector of `n` elements that `fill` writes, given the storage unwritten: a result
/// every element of which a kernel writes need not be cleared first (clearing a ResNet
/// activation costs about a third of the ReLU over it, on one thread).
///
/// # Safety
/// `fill` must write every element of the slice it is given (a panic in it is safe: the
/// storage is then freed unread).
unsafe fn written<U>(n: usize, fill: impl FnOnce(&mut [MaybeUninit<U>])) -> Vec<U> {
    let mut out = Vec::with_capacity(n);
    fill(&mut out.spare_capacity_mut()[..n]);
    // SAFETY: the caller's `fill` wrote all `n` elements.
    unsafe { out.set_len(n) };
    out
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
    // SAFETY: every row is written whole, by a copy or element by element.
    unsafe {
        written(l.numel(), |out| {
            for_each_row(out, inner, |r, row| {
                let off = row_offset(&shape, s, l.offset, r);
                if is == 1 {
                    row.write_copy_of_slice(&src[off..off + inner]);
                } else {
                    for (j, o) in row.iter_mut().enumerate() {
                        o.write(src[off + j * is]);
                    }
                }
            })
        })
    }
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
    if n == 0 {
        return Vec::new();
    }
    let row_len = if is == 1 && shape.len() == 1 {
        inner.min(TASK_ELEMS)
    } else {
        inner
    };
    // SAFETY: every row is written whole, element by element (`zip` over equal lengths).
    unsafe {
        written(n, |out| {
            for_each_row(out, row_len, |r, row| {
                let off = if shape.len() == 1 {
                    l.offset + r * row_len * is
                } else {
                    row_offset(&shape, s, l.offset, r)
                };
                if is == 1 {
                    let m = row.len();
                    for (o, &x) in row.iter_mut().zip(&src[off..off + m]) {
                        o.write(f(x));
                    }
                } else {
                    for (j, o) in row.iter_mut().enumerate() {
                        o.write(f(src[off + j * is]));
                    }
                }
            })
        })
    }
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
    if n == 0 {
        return Vec::new();
    }
    let (shape, strides) = Layout::collapse(&la.shape, &[&la.strides, &lb.strides]);
    let (sa, sb) = (&strides[0], &strides[1]);
    let inner = *shape.last().unwrap();
    let (ia, ib) = (*sa.last().unwrap(), *sb.last().unwrap());
    // One long contiguous (or scalar-broadcast) row: split it so that it parallelises.
    let flat = shape.len() == 1;
    let row_len = if flat { inner.min(TASK_ELEMS) } else { inner };
    // SAFETY: every row is written whole, element by element (`zip` over equal lengths).
    unsafe {
        written(n, |out| {
            for_each_row(out, row_len, |r, row| {
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
                        for ((o, &x), &y) in row.iter_mut().zip(&a[oa..oa + m]).zip(&b[ob..ob + m])
                        {
                            o.write(f(x, y));
                        }
                    }
                    (1, 0) => {
                        let y = b[ob];
                        for (o, &x) in row.iter_mut().zip(&a[oa..oa + m]) {
                            o.write(f(x, y));
                        }
                    }
                    (0, 1) => {
                        let x = a[oa];
                        for (o, &y) in row.iter_mut().zip(&b[ob..ob + m]) {
                            o.write(f(x, y));
                        }
                    }
                    _ => {
                        for (j, o) in row.iter_mut().enumerate() {
                            o.write(f(a[oa + j * ia], b[ob + j * ib]));
                        }
                    }
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frees a NaN-filled buffer of `len` elements, so that the allocator hands its memory
    /// to the next result: an element left unwritten then shows.
    fn poison(len: usize) {
        drop(std::hint::black_box(vec![f64::NAN; len]));
    }

    /// Panics at the first element where `got` differs from `want` (a NaN differs).
    #[track_caller]
    fn same(got: &[f64], want: &[f64], what: impl std::fmt::Display) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            panic!("{what}: [{i}] is {} where {} was expected", got[i], want[i]);
        }
    }

    /// The strided copy, the unary and the binary map write their results into unwritten
    /// storage: each result is compared with the definition (`offsets` walks a view in
    /// order) right after a NaN buffer of its size is freed, on views that are
    /// contiguous, permuted, broadcast, narrowed, and large enough to run in parallel.
    #[test]
    fn every_element_of_the_unzeroed_results_is_written() {
        let n = 3 * PAR_MIN + 5;
        let src: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 7.0).collect();
        let at = |l: &Layout| -> Vec<f64> { l.offsets().map(|o| src[o]).collect() };
        let views = [
            Layout::contiguous(&[n]),
            Layout::contiguous(&[6, 5, 4]),
            Layout::contiguous(&[6, 5, 4]).permute(&[2, 0, 1]).unwrap(),
            Layout::contiguous(&[1, 5, 1])
                .broadcast_to("test", &[4, 5, 3])
                .unwrap(),
            Layout::contiguous(&[6, 300]).narrow(1, 7, 250),
            Layout::contiguous(&[256, 384]).permute(&[1, 0]).unwrap(),
        ];
        for l in &views {
            let want = at(l);
            poison(want.len());
            same(&copy_strided(&src, l), &want, format!("copy of {l:?}"));
            poison(want.len());
            let got = unary(&src, l, |v| 2.0 * v);
            let want2: Vec<f64> = want.iter().map(|v| 2.0 * v).collect();
            same(&got, &want2, format!("unary over {l:?}"));
        }
        // Inner strides (1, 1), (1, 0), (0, 1) and general, one pair in parallel.
        let row = Layout::contiguous(&[4, 1])
            .broadcast_to("test", &[4, 6])
            .unwrap();
        let pairs = [
            (Layout::contiguous(&[n]), Layout::contiguous(&[n])),
            (Layout::contiguous(&[4, 6]), row.clone()),
            (row, Layout::contiguous(&[4, 6]).narrow(0, 0, 4)),
            (
                Layout::contiguous(&[6, 4]).permute(&[1, 0]).unwrap(),
                Layout::contiguous(&[4, 6]),
            ),
            (
                Layout::contiguous(&[384, 256]),
                Layout::contiguous(&[256, 384]).permute(&[1, 0]).unwrap(),
            ),
        ];
        for (la, lb) in &pairs {
            let want: Vec<f64> = at(la)
                .iter()
                .zip(at(lb))
                .map(|(x, y)| x - 3.0 * y)
                .collect();
            poison(want.len());
            let got = binary(&src, la, &src, lb, |x, y| x - 3.0 * y);
            same(&got, &want, format!("binary over {la:?} and {lb:?}"));
        }
    }
}
