//! What the small image-classification experiments (`mc-dropout`, `phm-demo`,
//! `design-demo`, `memory-demo`) share: a seeded subset of a data set as `[n, 1, h, w]`
//! tensors in `[0, 1]`, the book's minibatch SGD loop on the cross-entropy, and accuracy.

use crate::{minibatches, progress, rows, ExperimentError, Result};
use d2l_data::datasets::{load_image_sets, DatasetName};
use d2l_data::hub::DataHub;
use d2l_data::idx::ImageSet;
use d2l_data::shapes::Shapes;
use d2l_data::DataError;
use d2l_nn::loss::cross_entropy;
use d2l_nn::optim::{Optimizer, Sgd};
use d2l_nn::Module;
use d2l_tensor::{no_grad, Generator, Tensor};

/// Which images an experiment trains and tests on: a data set, where its files are, whether
/// to fall back to `shapes`, and the sizes of the seeded subsets.
#[derive(Debug, Clone)]
pub struct SubsetSpec {
    /// The data set (Fashion-MNIST by default).
    pub dataset: DatasetName,
    /// Where its files are found.
    pub hub: DataHub,
    /// Use the built-in `shapes` set, with a notice, when the files cannot be had.
    pub fallback_to_shapes: bool,
    /// Training images (0: all).
    pub n_train: usize,
    /// Test images (0: all).
    pub n_test: usize,
}

impl SubsetSpec {
    /// Fashion-MNIST from the environment's hub, with the fallback, `n_train` and `n_test`
    /// images (0: all).
    pub fn fashion_mnist(n_train: usize, n_test: usize) -> SubsetSpec {
        SubsetSpec {
            dataset: DatasetName::FashionMnist,
            hub: DataHub::from_env(),
            fallback_to_shapes: true,
            n_train,
            n_test,
        }
    }

    /// [`load_subset`] of this spec.
    pub fn load(&self, seed: u64, quiet: bool) -> Result<ImageData> {
        load_subset(
            self.dataset,
            &self.hub,
            self.fallback_to_shapes,
            self.n_train,
            self.n_test,
            seed,
            quiet,
        )
    }
}

/// A subset of a data set's train and test splits as tensors.
pub struct ImageData {
    /// Training images `[n, 1, h, w]`.
    pub x_train: Tensor,
    /// Training labels `[n]` (`i64`).
    pub y_train: Tensor,
    /// Test images.
    pub x_test: Tensor,
    /// Test labels.
    pub y_test: Tensor,
    /// The data set used (`shapes` after a fallback).
    pub used: DatasetName,
    /// The fallback notice, if the requested set was replaced.
    pub notice: Option<String>,
}

/// The pixels of images `idx` of `set`, one after the other, scaled to `[0, 1]`.
pub(crate) fn scaled_pixels(set: &ImageSet, idx: &[usize]) -> Vec<f32> {
    let d = set.height * set.width;
    let mut x = Vec::with_capacity(idx.len() * d);
    for &i in idx {
        x.extend(
            set.images[i * d..(i + 1) * d]
                .iter()
                .map(|&p| p as f32 / 255.0),
        );
    }
    x
}

fn to_tensors(set: &ImageSet, idx: &[usize]) -> Result<(Tensor, Tensor)> {
    let x = scaled_pixels(set, idx);
    let y: Vec<i64> = idx.iter().map(|&i| set.labels[i] as i64).collect();
    Ok((
        Tensor::from_vec(x, &[idx.len(), 1, set.height, set.width])?,
        Tensor::from_vec(y, &[idx.len()])?,
    ))
}

/// `n` indices of `0..total` drawn without replacement (all of them, in order, for `n = 0`
/// or `n ≥ total`).
fn subset(total: usize, n: usize, g: &mut Generator) -> Vec<usize> {
    let mut v: Vec<usize> = (0..total).collect();
    if n == 0 || n >= total {
        return v;
    }
    for i in (1..total).rev() {
        let j = g.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v.truncate(n);
    v
}

/// Loads `dataset` through `hub` (falling back to the built-in `shapes` set with a notice
/// when its files cannot be had and `fallback` is set) and keeps a seeded random subset of
/// `n_train` training and `n_test` test images (0: all).
pub fn load_subset(
    dataset: DatasetName,
    hub: &DataHub,
    fallback: bool,
    n_train: usize,
    n_test: usize,
    seed: u64,
    quiet: bool,
) -> Result<ImageData> {
    let shapes = |a: usize, b: usize| {
        (
            Shapes::generate(a.max(1), d2l_data::datasets::SHAPES_DATA_SEED),
            Shapes::generate(
                b.max(1),
                d2l_data::datasets::SHAPES_DATA_SEED ^ 0x7E57_7E57_7E57_7E57,
            ),
        )
    };
    let small = |n: usize, default: usize| if n == 0 { default } else { n };
    let (train, test, used, notice) = if dataset == DatasetName::Shapes {
        let (a, b) = shapes(small(n_train, 60_000), small(n_test, 10_000));
        (a, b, dataset, None)
    } else {
        match load_image_sets(dataset, hub) {
            Ok((a, b)) => (a, b, dataset, None),
            Err(e @ (DataError::Missing { .. } | DataError::Download { .. })) if fallback => {
                let why = e.to_string();
                let why = why.lines().next().unwrap_or("").to_string();
                let notice = format!(
                    "{dataset} not available ({why}); using the built-in `shapes` set instead"
                );
                progress(quiet, || notice.clone());
                let (a, b) = shapes(small(n_train, 60_000), small(n_test, 10_000));
                (a, b, DatasetName::Shapes, Some(notice))
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut g = Generator::new(seed ^ 0x5EED_DA7A);
    let (x_train, y_train) = to_tensors(&train, &subset(train.n, n_train, &mut g))?;
    let (x_test, y_test) = to_tensors(&test, &subset(test.n, n_test, &mut g))?;
    Ok(ImageData {
        x_train,
        y_train,
        x_test,
        y_test,
        used,
        notice,
    })
}

/// The book's `train_ch3` loop on tensors: `epochs` of minibatch SGD (`lr`, `batch`) on the
/// mean cross-entropy, the network in training mode; returns the last epoch's mean loss.
pub fn train_sgd(
    net: &dyn Module,
    x: &Tensor,
    y: &Tensor,
    epochs: usize,
    lr: f64,
    batch: usize,
    g: &mut Generator,
) -> Result<f64> {
    crate::check_positive("epochs", epochs)?;
    crate::check_positive("batch_size", batch)?;
    crate::check_rate("lr", lr)?;
    net.train();
    let mut opt = Sgd::new(net.parameters(), lr)?;
    let n = x.shape()[0];
    let mut last = f64::NAN;
    for _ in 0..epochs {
        let (mut sum, mut count) = (0.0, 0usize);
        for idx in minibatches(n, batch, Some(g))? {
            let l = cross_entropy(&net.forward(&rows(x, &idx)?)?, &rows(y, &idx)?)?;
            opt.zero_grad();
            l.backward()?;
            opt.step()?;
            let b = idx.shape()[0];
            sum += l.item_f64()? * b as f64;
            count += b;
        }
        last = sum / count.max(1) as f64;
        if !last.is_finite() {
            return Err(ExperimentError::Invalid(format!(
                "the training loss became {last}: lower the learning rate"
            )));
        }
    }
    Ok(last)
}

/// The class probabilities `softmax(net(x))`, row-major `[n, classes]`, computed in
/// batches of 1,000 without a graph, in whatever mode the network is in.
pub fn probs(net: &dyn Module, x: &Tensor) -> Result<(Vec<f64>, usize)> {
    let n = x.shape()[0];
    let mut out = Vec::new();
    let mut classes = 0;
    for start in (0..n).step_by(1000) {
        let len = 1000.min(n - start);
        let p = no_grad(|| net.forward(&x.narrow(0, start, len)?)?.softmax(-1))?;
        classes = p.shape()[1];
        out.extend(p.to_f64_vec());
    }
    Ok((out, classes))
}

/// Accuracy and mean negative log-likelihood of class probabilities against labels.
pub fn acc_nll(p: &[f64], classes: usize, y: &Tensor) -> (f64, f64) {
    let y = y.to_vec::<i64>();
    let (mut hits, mut nll) = (0usize, 0.0);
    for (row, &t) in p.chunks(classes.max(1)).zip(&y) {
        let best = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        hits += (best as i64 == t) as usize;
        nll -= row[t as usize].max(1e-12).ln();
    }
    let n = y.len().max(1) as f64;
    (hits as f64 / n, nll / n)
}

/// Test accuracy of `net` in evaluation mode.
pub fn accuracy(net: &dyn Module, x: &Tensor, y: &Tensor) -> Result<f64> {
    net.eval();
    let (p, c) = probs(net, x)?;
    Ok(acc_nll(&p, c, y).0)
}
