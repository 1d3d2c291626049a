//! Indexing kernels on row-major buffers: select, gather, scatter-add, concatenation,
//! constant padding. Indices were validated by the caller.

/// (product of dims before `dim`, size of `dim`, product of dims after `dim`).
pub(crate) fn split_at_dim(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    let outer = shape[..dim].iter().product();
    let inner = shape[dim + 1..].iter().product();
    (outer, shape[dim], inner)
}

/// `out[.., j, ..] = x[.., idx[j], ..]` along `dim`.
pub(crate) fn index_select<T: Copy + Default>(
    x: &[T],
    shape: &[usize],
    dim: usize,
    idx: &[usize],
) -> Vec<T> {
    let (outer, size, inner) = split_at_dim(shape, dim);
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in idx {
            let start = (o * size + i) * inner;
            out.extend_from_slice(&x[start..start + inner]);
        }
    }
    out
}

/// Walks every position of a row-major `idx_shape` and yields (position, offset into a
/// row-major tensor of `x_shape` with the `dim` coordinate replaced by `idx[position]`).
fn for_each_indexed(
    idx_shape: &[usize],
    x_shape: &[usize],
    dim: usize,
    idx: &[usize],
    mut f: impl FnMut(usize, usize),
) {
    let rank = idx_shape.len();
    let x_strides = crate::layout::contiguous_strides(x_shape);
    let mut pos = vec![0usize; rank];
    for (p, &i) in idx.iter().enumerate() {
        let mut off = 0;
        for d in 0..rank {
            off += if d == dim { i } else { pos[d] } * x_strides[d];
        }
        f(p, off);
        for d in (0..rank).rev() {
            pos[d] += 1;
            if pos[d] < idx_shape[d] {
                break;
            }
            pos[d] = 0;
        }
    }
}

/// `out[p] = x[p with dim := idx[p]]` (PyTorch's `gather`).
pub(crate) fn gather<T: Copy + Default>(
    x: &[T],
    x_shape: &[usize],
    dim: usize,
    idx: &[usize],
    idx_shape: &[usize],
) -> Vec<T> {
    let mut out = vec![T::default(); idx.len()];
    for_each_indexed(idx_shape, x_shape, dim, idx, |p, off| out[p] = x[off]);
    out
}

/// `out[p with dim := idx[p]] += src[p]` (PyTorch's `scatter_add_`), `src` shaped like `idx`.
pub(crate) fn scatter_add<T: Copy + std::ops::Add<Output = T>>(
    out: &mut [T],
    out_shape: &[usize],
    dim: usize,
    idx: &[usize],
    idx_shape: &[usize],
    src: &[T],
) {
    for_each_indexed(idx_shape, out_shape, dim, idx, |p, off| {
        out[off] = out[off] + src[p]
    });
}

/// Concatenates row-major parts along `dim` (the parts agree on every other dim).
pub(crate) fn cat<T: Copy>(parts: &[(&[T], usize)], outer: usize, inner: usize) -> Vec<T> {
    let total: usize = parts.iter().map(|(_, d)| d * inner).sum::<usize>() * outer;
    let mut out = Vec::with_capacity(total);
    for o in 0..outer {
        for (data, d) in parts {
            let len = d * inner;
            out.extend_from_slice(&data[o * len..(o + 1) * len]);
        }
    }
    out
}

/// Constant padding: `pads[d] = (before, after)` for every dim.
pub(crate) fn pad<T: Copy>(x: &[T], shape: &[usize], pads: &[(usize, usize)], value: T) -> Vec<T> {
    let out_shape: Vec<usize> = shape
        .iter()
        .zip(pads)
        .map(|(s, (a, b))| s + a + b)
        .collect();
    let n: usize = out_shape.iter().product();
    let mut out = vec![value; n];
    if x.is_empty() {
        return out;
    }
    let rank = shape.len();
    let out_strides = crate::layout::contiguous_strides(&out_shape);
    let inner = shape[rank - 1];
    let rows = x.len() / inner.max(1);
    let mut pos = vec![0usize; rank.saturating_sub(1)];
    for r in 0..rows {
        let mut off = pads[rank - 1].0;
        for d in 0..rank - 1 {
            off += (pos[d] + pads[d].0) * out_strides[d];
        }
        out[off..off + inner].copy_from_slice(&x[r * inner..(r + 1) * inner]);
        for d in (0..rank - 1).rev() {
            pos[d] += 1;
            if pos[d] < shape[d] {
                break;
            }
            pos[d] = 0;
        }
    }
    out
}
