//! Shapes, strides and views: a layout maps a multi-index to an offset in storage, so
//! reshape, permute, broadcast and narrow never copy (D2L 2.1).

use crate::error::{bad_shape, Error, Result};

/// The shape, strides (in elements) and starting offset of a tensor view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub(crate) shape: Vec<usize>,
    pub(crate) strides: Vec<usize>,
    pub(crate) offset: usize,
}

/// Row-major strides of a shape.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc *= shape[i];
    }
    strides
}

/// Resolves a possibly negative dimension index against a rank.
pub(crate) fn resolve_dim(op: &'static str, dim: isize, rank: usize) -> Result<usize> {
    let r = rank as isize;
    let d = if dim < 0 { dim + r } else { dim };
    if d < 0 || d >= r.max(1) || (rank == 0 && d != 0) {
        return Err(Error::DimOutOfRange { op, dim, rank });
    }
    Ok(d as usize)
}

/// The NumPy/PyTorch broadcast of two shapes.
pub(crate) fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(Error::ShapeMismatch {
                op,
                lhs: a.to_vec(),
                rhs: b.to_vec(),
                why: format!(
                    "cannot be broadcast together (dimension {i} of the aligned shapes: {da} vs {db})"
                ),
            });
        };
    }
    Ok(out)
}

impl Layout {
    /// A fresh row-major layout for a shape.
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout {
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Element strides per dimension.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// Offset of the first element in storage.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the elements are laid out row-major with no gaps (offset may be non-zero).
    pub fn is_contiguous(&self) -> bool {
        let mut acc = 1;
        for i in (0..self.shape.len()).rev() {
            if self.shape[i] != 1 && self.strides[i] != acc {
                return false;
            }
            acc *= self.shape[i];
        }
        true
    }

    /// The storage range a contiguous layout covers.
    pub(crate) fn contiguous_range(&self) -> Option<std::ops::Range<usize>> {
        self.is_contiguous()
            .then(|| self.offset..self.offset + self.numel())
    }

    /// Reorders dimensions.
    pub(crate) fn permute(&self, dims: &[usize]) -> Result<Layout> {
        let rank = self.shape.len();
        let mut seen = vec![false; rank];
        if dims.len() != rank {
            return Err(bad_shape(
                "permute",
                format!(
                    "expected {rank} dimensions for a tensor of shape {:?}, got {dims:?}",
                    self.shape
                ),
            ));
        }
        for &d in dims {
            if d >= rank || seen[d] {
                return Err(bad_shape(
                    "permute",
                    format!("{dims:?} is not a permutation of 0..{rank}"),
                ));
            }
            seen[d] = true;
        }
        Ok(Layout {
            shape: dims.iter().map(|&d| self.shape[d]).collect(),
            strides: dims.iter().map(|&d| self.strides[d]).collect(),
            offset: self.offset,
        })
    }

    /// A view broadcast to `shape` (new leading dims and size-1 dims get stride 0).
    pub(crate) fn broadcast_to(&self, op: &'static str, shape: &[usize]) -> Result<Layout> {
        let n = shape.len();
        let r = self.shape.len();
        let fail = || Error::ShapeMismatch {
            op,
            lhs: self.shape.clone(),
            rhs: shape.to_vec(),
            why: "do not agree: the first cannot be broadcast to the second".into(),
        };
        if r > n {
            return Err(fail());
        }
        let mut strides = vec![0; n];
        for i in 0..n {
            if i + r >= n {
                let j = i + r - n;
                if self.shape[j] == shape[i] {
                    strides[i] = self.strides[j];
                } else if self.shape[j] == 1 {
                    strides[i] = 0;
                } else {
                    return Err(fail());
                }
            }
        }
        Ok(Layout {
            shape: shape.to_vec(),
            strides,
            offset: self.offset,
        })
    }

    /// A view of `len` entries of `dim` starting at `start`.
    pub(crate) fn narrow(&self, dim: usize, start: usize, len: usize) -> Layout {
        let mut l = self.clone();
        l.offset += start * self.strides[dim];
        l.shape[dim] = len;
        l
    }

    /// Storage offsets of every element in row-major order of the view.
    pub(crate) fn offsets(&self) -> OffsetIter<'_> {
        OffsetIter::new(self)
    }

    /// Merges adjacent dimensions that are contiguous with each other in every layout,
    /// and drops size-1 dims, so kernels loop over as few and as long rows as possible.
    pub(crate) fn collapse(shape: &[usize], strides: &[&[usize]]) -> (Vec<usize>, Vec<Vec<usize>>) {
        let mut out_shape: Vec<usize> = Vec::new();
        let mut out_strides: Vec<Vec<usize>> = vec![Vec::new(); strides.len()];
        for i in 0..shape.len() {
            if shape[i] == 1 {
                continue;
            }
            let mergeable = !out_shape.is_empty()
                && strides
                    .iter()
                    .enumerate()
                    .all(|(k, s)| *out_strides[k].last().unwrap() == s[i] * shape[i]);
            if mergeable {
                *out_shape.last_mut().unwrap() *= shape[i];
                for (k, s) in strides.iter().enumerate() {
                    *out_strides[k].last_mut().unwrap() = s[i];
                }
            } else {
                out_shape.push(shape[i]);
                for (k, s) in strides.iter().enumerate() {
                    out_strides[k].push(s[i]);
                }
            }
        }
        if out_shape.is_empty() {
            out_shape.push(1);
            for s in out_strides.iter_mut() {
                s.push(1);
            }
        }
        (out_shape, out_strides)
    }
}

/// Iterates storage offsets of a layout in row-major order.
pub(crate) struct OffsetIter<'a> {
    layout: &'a Layout,
    index: Vec<usize>,
    next: usize,
    remaining: usize,
}

impl<'a> OffsetIter<'a> {
    fn new(layout: &'a Layout) -> Self {
        OffsetIter {
            layout,
            index: vec![0; layout.shape.len()],
            next: layout.offset,
            remaining: layout.numel(),
        }
    }
}

impl Iterator for OffsetIter<'_> {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let cur = self.next;
        let l = self.layout;
        for d in (0..l.shape.len()).rev() {
            self.index[d] += 1;
            if self.index[d] < l.shape[d] {
                self.next += l.strides[d];
                break;
            }
            self.next -= (l.shape[d] - 1) * l.strides[d];
            self.index[d] = 0;
        }
        Some(cur)
    }
}

/// Resolves a requested shape with at most one `-1` against an element count.
pub(crate) fn infer_shape(
    op: &'static str,
    numel: usize,
    from: &[usize],
    spec: &[isize],
) -> Result<Vec<usize>> {
    let mut infer = None;
    let mut known = 1usize;
    for (i, &d) in spec.iter().enumerate() {
        if d == -1 {
            if infer.is_some() {
                return Err(bad_shape(
                    op,
                    format!("only one dimension can be inferred (-1), got {spec:?}"),
                ));
            }
            infer = Some(i);
        } else if d < 0 {
            return Err(bad_shape(op, format!("invalid dimension {d} in {spec:?}")));
        } else {
            known *= d as usize;
        }
    }
    let mut shape: Vec<usize> = spec.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(i) = infer {
        if known == 0 || !numel.is_multiple_of(known) {
            return Err(bad_shape(
                op,
                format!(
                    "shape {spec:?} is invalid for a tensor of shape {from:?} ({numel} elements)"
                ),
            ));
        }
        shape[i] = numel / known;
    } else if known != numel {
        return Err(bad_shape(
            op,
            format!("shape {spec:?} is invalid for a tensor of shape {from:?} ({numel} elements)"),
        ));
    }
    Ok(shape)
}
