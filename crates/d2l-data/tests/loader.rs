//! DataLoader behaviour (D2L 3.2–3.3, 3.5): orders, batches, prefetch, transforms, errors;
//! and the synthetic data of 3.1 and 4.4.

use d2l_data::loader::{load_array, Batch, DataLoader, Dataset, Example, TensorDataset};
use d2l_data::synthetic::{poly_data, synthetic_data, POLY_TRUE_W};
use d2l_data::{DataError, Result};
use d2l_tensor::{DType, Generator, Tensor};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// n examples: x = [i, 10 i] (f32), y = i (i64 0-d).
fn arrays(n: usize) -> (Tensor, Tensor) {
    let x: Vec<f32> = (0..n).flat_map(|i| [i as f32, 10.0 * i as f32]).collect();
    let y: Vec<i64> = (0..n as i64).collect();
    (
        Tensor::from_vec(x, &[n, 2]).unwrap(),
        Tensor::from_vec(y, &[n]).unwrap(),
    )
}

fn loader(n: usize, bs: usize) -> DataLoader {
    let (x, y) = arrays(n);
    DataLoader::new(Arc::new(TensorDataset::new(x, y).unwrap()), bs).unwrap()
}

/// The label sequence of one epoch, checking x matches y on the way.
fn labels(batches: impl Iterator<Item = Result<Batch>>) -> Vec<Vec<i64>> {
    batches
        .map(|b| {
            let b = b.unwrap();
            let y = b.y.to_vec::<i64>();
            let x = b.x.to_vec::<f32>();
            assert_eq!(b.x.shape(), &[y.len(), 2]);
            for (k, &i) in y.iter().enumerate() {
                assert_eq!(x[2 * k], i as f32);
                assert_eq!(x[2 * k + 1], 10.0 * i as f32);
            }
            y
        })
        .collect()
}

#[test]
fn in_order_without_shuffle() {
    let l = loader(10, 4);
    assert_eq!(l.len(), 3);
    assert_eq!(
        labels(l.iter_epoch(0)),
        vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]
    );
    assert_eq!(labels(l.iter_epoch(5)), labels(l.iter_epoch(0)));
}

#[test]
fn shuffle_is_reproducible_and_differs_across_epochs() {
    let a = loader(100, 16).shuffle(42);
    let b = loader(100, 16).shuffle(42);
    let c = loader(100, 16).shuffle(43);
    let e0 = labels(a.iter_epoch(0));
    assert_eq!(
        e0,
        labels(b.iter_epoch(0)),
        "same seed, same epoch: same order"
    );
    assert_eq!(e0, labels(a.iter_epoch(0)), "repeatable");
    let e1 = labels(a.iter_epoch(1));
    assert_ne!(e0, e1, "a new epoch reshuffles");
    assert_ne!(e0, labels(c.iter_epoch(0)), "another seed, another order");
    assert_ne!(
        e0.concat(),
        (0..100).collect::<Vec<i64>>(),
        "actually shuffled"
    );
    // `iter()` walks epochs 0, 1, ... and `order` agrees with the batches.
    assert_eq!(labels(b.iter()), e0);
    assert_eq!(labels(b.iter()), e1);
    let order: Vec<i64> = b.order(1).into_iter().map(|i| i as i64).collect();
    assert_eq!(order, e1.concat());
    b.set_epoch(0);
    assert_eq!(labels(&mut b.iter()), e0);
}

#[test]
fn every_example_once_per_epoch() {
    let l = loader(103, 10).shuffle(7);
    for epoch in 0..4 {
        let mut all = labels(l.iter_epoch(epoch)).concat();
        assert_eq!(all.len(), 103);
        all.sort();
        assert_eq!(all, (0..103).collect::<Vec<i64>>());
    }
}

#[test]
fn drop_last_and_shapes() {
    let l = loader(103, 10).shuffle(1).drop_last(true);
    assert_eq!(l.len(), 10);
    let b = labels(l.iter_epoch(0));
    assert_eq!(b.len(), 10);
    assert!(b.iter().all(|v| v.len() == 10));
    let keep = loader(103, 10);
    assert_eq!(keep.len(), 11);
    let sizes: Vec<usize> = keep.iter_epoch(0).map(|b| b.unwrap().len()).collect();
    assert_eq!(sizes, [vec![10; 10], vec![3]].concat());

    // Batch shapes: x [b, 2] f32, y [b] i64.
    let first = loader(5, 2).iter_epoch(0).next().unwrap().unwrap();
    assert_eq!(first.x.shape(), &[2, 2]);
    assert_eq!(first.x.dtype(), DType::F32);
    assert_eq!(first.y.shape(), &[2]);
    assert_eq!(first.y.dtype(), DType::I64);

    // A batch bigger than the data set: one short batch, or none with drop_last (an error).
    assert_eq!(labels(loader(3, 10).iter_epoch(0)), vec![vec![0, 1, 2]]);
    let none = loader(3, 10).drop_last(true);
    assert_eq!(none.len(), 0);
    let mut it = none.iter_epoch(0);
    assert!(matches!(it.next(), Some(Err(DataError::Invalid(_)))));
    assert!(it.next().is_none());
}

#[test]
fn prefetch_yields_the_same_batches() {
    for p in [0, 1, 2, 8] {
        let l = loader(57, 8).shuffle(3).prefetch(p);
        let expected = labels(loader(57, 8).shuffle(3).prefetch(0).iter_epoch(2));
        assert_eq!(labels(l.iter_epoch(2)), expected, "prefetch {p}");
    }
    // Dropping an epoch half-way stops its worker cleanly.
    let l = loader(1000, 1).prefetch(2);
    let mut it = l.iter_epoch(0);
    it.next().unwrap().unwrap();
    drop(it);
}

/// A data set that builds each example on request (the general, stacking path).
struct Squares {
    n: usize,
    gets: AtomicUsize,
}

impl Dataset for Squares {
    fn len(&self) -> usize {
        self.n
    }
    fn get(&self, i: usize) -> Result<Example> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        if i >= self.n {
            return Err(DataError::Invalid(format!("index {i} out of range")));
        }
        if i == 13 && self.n == 14 {
            return Err(DataError::Invalid("example 13 is broken".into()));
        }
        Ok(Example {
            x: Tensor::from_vec(vec![i as f32; 6], &[1, 2, 3])?,
            y: Tensor::from_vec(vec![(i * i) as i64], &[])?,
        })
    }
}

#[test]
fn custom_dataset_stacks_examples_and_transform_applies() {
    let ds = Arc::new(Squares {
        n: 10,
        gets: AtomicUsize::new(0),
    });
    let l = DataLoader::new(ds.clone(), 4).unwrap().transform(|e| {
        Ok(Example {
            x: e.x.mul_scalar(2.0)?,
            y: e.y,
        })
    });
    let batches: Vec<Batch> = l.iter_epoch(0).map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0].x.shape(), &[4, 1, 2, 3]);
    assert_eq!(batches[0].y.shape(), &[4]);
    assert_eq!(batches[0].y.to_vec::<i64>(), vec![0, 1, 4, 9]);
    assert_eq!(batches[2].x.to_vec::<f32>()[..6], [16.0; 6]);
    assert_eq!(ds.gets.load(Ordering::SeqCst), 10);
}

#[test]
fn errors_are_values() {
    let (x, y) = arrays(4);
    let ds: Arc<dyn Dataset> = Arc::new(TensorDataset::new(x.clone(), y.clone()).unwrap());
    let e = DataLoader::new(ds, 0).unwrap_err().to_string();
    assert!(e.contains("batch size"), "{e}");

    let empty = TensorDataset::new(Tensor::zeros(&[0, 3]), Tensor::zeros(&[0])).unwrap();
    let e = DataLoader::new(Arc::new(empty), 4).unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");

    let (_, y5) = arrays(5);
    let e = TensorDataset::new(x.clone(), y5).unwrap_err().to_string();
    assert!(e.contains("4 examples") && e.contains('5'), "{e}");
    assert!(TensorDataset::new(Tensor::scalar(1.0), y.clone()).is_err());
    assert!(TensorDataset::new(x.clone(), y.clone())
        .unwrap()
        .get(4)
        .is_err());
    assert!(load_array(x, y, 0, true).is_err());

    // An error while building a batch comes out as a value, and the epoch then ends.
    for p in [0, 2] {
        let ds = Arc::new(Squares {
            n: 14,
            gets: AtomicUsize::new(0),
        });
        let l = DataLoader::new(ds, 5).unwrap().prefetch(p);
        let r: Vec<Result<Batch>> = l.iter_epoch(0).collect();
        assert_eq!(r.len(), 3);
        assert!(r[0].is_ok() && r[1].is_ok());
        assert!(r[2].as_ref().unwrap_err().to_string().contains("broken"));
    }
}

/// Examples whose shapes differ are an error naming them, not a panic.
struct Ragged;

impl Dataset for Ragged {
    fn len(&self) -> usize {
        3
    }
    fn get(&self, i: usize) -> Result<Example> {
        Ok(Example {
            x: Tensor::zeros(&[i + 1]),
            y: Tensor::scalar(0.0),
        })
    }
}

#[test]
fn ragged_examples_are_an_error() {
    let l = DataLoader::new(Arc::new(Ragged), 3).unwrap();
    let e = l.iter_epoch(0).next().unwrap().unwrap_err().to_string();
    assert!(e.contains("examples 0 and 1"), "{e}");
}

#[test]
fn load_array_like_the_book() {
    d2l_tensor::manual_seed(0);
    let mut g = Generator::new(0);
    let w = Tensor::from_vec(vec![2.0f32, -3.4], &[2]).unwrap();
    let (features, labels) = synthetic_data(&w, 4.2, 1000, &mut g).unwrap();
    assert_eq!(features.shape(), &[1000, 2]);
    assert_eq!(labels.shape(), &[1000, 1]);
    let it = load_array(features.clone(), labels.clone(), 10, true).unwrap();
    assert_eq!(it.len(), 100);
    let b = it.iter().next().unwrap().unwrap();
    assert_eq!(b.x.shape(), &[10, 2]);
    assert_eq!(b.y.shape(), &[10, 1]);
    // Reseeding gives the same shuffle.
    d2l_tensor::manual_seed(0);
    let again = load_array(features, labels, 10, true).unwrap();
    assert_eq!(it.order(0), again.order(0));
}

#[test]
fn synthetic_data_fits_its_weights() {
    let mut g = Generator::new(1);
    let w = Tensor::from_vec(vec![2.0f32, -3.4], &[2]).unwrap();
    let (x, y) = synthetic_data(&w, 4.2, 2000, &mut g).unwrap();
    let xv = x.to_vec::<f32>();
    let yv = y.to_vec::<f32>();
    // Residuals y - (Xw + b) are the N(0, 0.01²) noise.
    let res: Vec<f64> = (0..2000)
        .map(|i| yv[i] as f64 - (2.0 * xv[2 * i] as f64 - 3.4 * xv[2 * i + 1] as f64 + 4.2))
        .collect();
    let mean = res.iter().sum::<f64>() / 2000.0;
    let sd = (res.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / 2000.0).sqrt();
    assert!(mean.abs() < 0.002, "{mean}");
    assert!((sd - 0.01).abs() < 0.002, "{sd}");
    // X is standard normal.
    let m = xv.iter().map(|&v| v as f64).sum::<f64>() / xv.len() as f64;
    assert!(m.abs() < 0.1, "{m}");
    // Same seed, same data; a [d, 1] w works too.
    let (x2, _) = synthetic_data(&w, 4.2, 2000, &mut Generator::new(1)).unwrap();
    assert_eq!(x2.to_vec::<f32>(), xv);
    let wcol = w.reshape(&[2usize, 1][..]).unwrap();
    assert_eq!(
        synthetic_data(&wcol, 0.0, 3, &mut g).unwrap().1.shape(),
        &[3, 1]
    );
    // Bad input.
    assert!(synthetic_data(&Tensor::zeros(&[2, 2]), 0.0, 3, &mut g).is_err());
    assert!(synthetic_data(&w, 0.0, 0, &mut g).is_err());
}

#[test]
fn poly_data_matches_section_4_4() {
    let mut g = Generator::new(2);
    let d = poly_data(100, 100, 20, &mut g).unwrap();
    assert_eq!(d.x.shape(), &[200, 1]);
    assert_eq!(d.poly_features.shape(), &[200, 20]);
    assert_eq!(d.labels.shape(), &[200, 1]);
    assert_eq!(&d.true_w[..4], &POLY_TRUE_W);
    assert!(d.true_w[4..].iter().all(|&w| w == 0.0));
    let x = d.x.to_vec::<f32>();
    let f = d.poly_features.to_vec::<f32>();
    let y = d.labels.to_vec::<f32>();
    let mut res = Vec::new();
    for i in 0..200 {
        let xi = x[i] as f64;
        assert_eq!(f[i * 20], 1.0);
        assert!((f[i * 20 + 1] as f64 - xi).abs() < 1e-6);
        assert!((f[i * 20 + 3] as f64 - xi.powi(3) / 6.0).abs() < 1e-4 * (1.0 + xi.abs().powi(3)));
        let clean = 5.0 + 1.2 * xi - 3.4 * xi * xi / 2.0 + 5.6 * xi.powi(3) / 6.0;
        res.push(y[i] as f64 - clean);
    }
    let sd = (res.iter().map(|r| r * r).sum::<f64>() / 200.0).sqrt();
    assert!((sd - 0.1).abs() < 0.03, "noise sd {sd}");
    let (tf, tl) = d.train(4).unwrap();
    assert_eq!(tf.shape(), &[100, 4]);
    assert_eq!(tl.shape(), &[100, 1]);
    let (sf, _) = d.test(2).unwrap();
    assert_eq!(sf.shape(), &[100, 2]);
    assert_eq!(sf.to_vec::<f32>()[1], x[100]);
    assert!(d.train(0).is_err() && d.train(21).is_err());
    assert!(poly_data(0, 0, 20, &mut g).is_err());
}
