//! Property tests: broadcasting against a naive reference, and view round trips.

use d2l_tensor::Tensor;
use proptest::prelude::*;

/// Row-major multi-index of a flat position.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

/// Flat position in `shape` of an output index, broadcasting (right-aligned, size-1 dims).
fn broadcast_pos(out_idx: &[usize], shape: &[usize]) -> usize {
    let off = out_idx.len() - shape.len();
    let mut pos = 0;
    for (d, &s) in shape.iter().enumerate() {
        pos = pos * s + if s == 1 { 0 } else { out_idx[off + d] };
    }
    pos
}

/// An output shape and two shapes that broadcast to it.
fn broadcast_case() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<usize>)> {
    prop::collection::vec(1usize..4, 0..5).prop_flat_map(|out| {
        let r = out.len();
        let pick = move |out: Vec<usize>| {
            (0..=r, prop::collection::vec(any::<bool>(), r)).prop_map(move |(drop, ones)| {
                out.iter()
                    .enumerate()
                    .skip(drop)
                    .map(|(i, &d)| if ones[i] { 1 } else { d })
                    .collect::<Vec<_>>()
            })
        };
        (Just(out.clone()), pick(out.clone()), pick(out))
    })
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as u64 * 2654435761 + seed) % 1000) as f32 / 100.0 - 5.0)
        .collect()
}

proptest! {
    #[test]
    fn broadcasting_matches_a_naive_loop((out, sa, sb) in broadcast_case(), seed in 0u64..1000) {
        let va = values(sa.iter().product(), seed);
        let vb = values(sb.iter().product(), seed + 7);
        let a = Tensor::from_slice(&va, &sa).unwrap();
        let b = Tensor::from_slice(&vb, &sb).unwrap();
        let got = a.mul(&b).unwrap().sub(&b).unwrap();
        // The broadcast shape is the elementwise max of the (right-aligned) shapes.
        let rank = sa.len().max(sb.len());
        let expect_shape: Vec<usize> = (0..rank).map(|i| {
            let da = if i + sa.len() >= rank { sa[i + sa.len() - rank] } else { 1 };
            let db = if i + sb.len() >= rank { sb[i + sb.len() - rank] } else { 1 };
            da.max(db)
        }).collect();
        prop_assert_eq!(got.shape(), &expect_shape[..]);
        let gv = got.to_vec::<f32>();
        for (i, g) in gv.iter().enumerate() {
            let idx = unravel(i, &expect_shape);
            let x = va[broadcast_pos(&idx, &sa)];
            let y = vb[broadcast_pos(&idx, &sb)];
            prop_assert_eq!(*g, x * y - y);
        }
        let _ = out;
    }

    #[test]
    fn broadcast_backward_counts_copies((_out, sa, sb) in broadcast_case()) {
        let a = Tensor::ones(&sa).requires_grad_(true).unwrap();
        let b = Tensor::ones(&sb).requires_grad_(true).unwrap();
        let y = a.add(&b).unwrap();
        let n = y.numel() as f32;
        y.sum_all().unwrap().backward().unwrap();
        let ga = a.grad().unwrap();
        prop_assert_eq!(ga.shape(), &sa[..]);
        // Every element of `a` was used numel(y) / numel(a) times.
        for v in ga.to_vec::<f32>() {
            prop_assert_eq!(v, n / a.numel() as f32);
        }
    }

    #[test]
    fn reshape_round_trips(dims in prop::collection::vec(1usize..5, 1..5), split in 0usize..5) {
        let n: usize = dims.iter().product();
        let x = Tensor::arange(0.0, n as f64, 1.0).unwrap().reshape(&dims).unwrap();
        let k = split.min(dims.len());
        let left: usize = dims[..k].iter().product();
        let y = x.reshape([left as isize, -1]).unwrap();
        prop_assert!(y.shares_storage(&x));
        let back = y.reshape(&dims).unwrap();
        prop_assert_eq!(back.shape(), &dims[..]);
        prop_assert_eq!(back.to_vec::<f32>(), x.to_vec::<f32>());
    }

    #[test]
    fn permute_round_trips_and_moves_elements(
        dims in prop::collection::vec(1usize..5, 1..5),
        perm_seed in any::<u64>(),
    ) {
        let r = dims.len();
        let mut perm: Vec<usize> = (0..r).collect();
        let mut s = perm_seed;
        for i in (1..r).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (s >> 33) as usize % (i + 1));
        }
        let n: usize = dims.iter().product();
        let x = Tensor::arange(0.0, n as f64, 1.0).unwrap().reshape(&dims).unwrap();
        let p = x.permute(&perm).unwrap();
        let mut inv = vec![0; r];
        for (i, &d) in perm.iter().enumerate() { inv[d] = i; }
        prop_assert_eq!(p.permute(&inv).unwrap().to_vec::<f32>(), x.to_vec::<f32>());
        // Element at permuted index j is x at the index with dims put back.
        let pv = p.contiguous().unwrap().to_vec::<f32>();
        let xv = x.to_vec::<f32>();
        for (i, v) in pv.iter().enumerate() {
            let j = unravel(i, p.shape());
            let mut src = vec![0; r];
            for (k, &d) in perm.iter().enumerate() { src[d] = j[k]; }
            let flat = src.iter().zip(&dims).fold(0, |acc, (&s, &d)| acc * d + s);
            prop_assert_eq!(*v, xv[flat]);
        }
    }

    #[test]
    fn narrow_then_pad_restores_the_rest(len in 1usize..8, start in 0usize..8, width in 1usize..8) {
        let start = start.min(len - 1);
        let width = width.min(len - start);
        let x = Tensor::arange(1.0, (len * 3 + 1) as f64, 1.0).unwrap().reshape([3, len as isize]).unwrap();
        let n = x.narrow(1, start, width).unwrap();
        let padded = n.pad(&[start, len - start - width], 0.0).unwrap();
        let xv = x.to_vec::<f32>();
        for (i, v) in padded.to_vec::<f32>().iter().enumerate() {
            let c = i % len;
            let expect = if c >= start && c < start + width { xv[i] } else { 0.0 };
            prop_assert_eq!(*v, expect);
        }
    }
}
