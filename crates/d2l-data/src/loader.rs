//! Data sets and mini-batch loading (D2L 3.2.1 `data_iter`, 3.3.2 `load_array`, 3.5.3's
//! `DataLoader` with worker threads).
//!
//! A [`Dataset`] gives examples by index; a [`DataLoader`] cuts an epoch's order into
//! batches and stacks them into tensors. With `shuffle(seed)` every epoch has its own
//! order, reproducible across runs (the seed is mixed with the epoch number). Batches are
//! built on a background thread, `prefetch` batches ahead, so reading and decoding overlap
//! the training step. In-memory arrays ([`TensorDataset`]) take a fast path: one
//! `index_select` per batch instead of stacking examples one by one.

use crate::error::{DataError, Result};
use d2l_tensor::{Generator, Tensor};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// One example: features (or an image) and its target (an `i64` 0-d label or `f32` values).
#[derive(Debug, Clone)]
pub struct Example {
    /// The features or image.
    pub x: Tensor,
    /// The label or regression target.
    pub y: Tensor,
}

/// A mini-batch: examples stacked along a new leading dimension.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Stacked features, `[batch, ...]`.
    pub x: Tensor,
    /// Stacked targets, `[batch, ...]`.
    pub y: Tensor,
}

impl Batch {
    /// Number of examples in the batch.
    pub fn len(&self) -> usize {
        self.x.shape().first().copied().unwrap_or(0)
    }

    /// Whether the batch holds no example.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A data set with random access by index (PyTorch's map-style `Dataset`).
pub trait Dataset: Send + Sync {
    /// Number of examples.
    fn len(&self) -> usize;

    /// The example at `index` (`0 <= index < len()`).
    fn get(&self, index: usize) -> Result<Example>;

    /// Whether the data set holds no example.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The examples at `indices`, stacked; override when a whole batch is cheaper at once.
    fn get_batch(&self, indices: &[usize]) -> Result<Batch> {
        let examples = indices
            .iter()
            .map(|&i| self.get(i))
            .collect::<Result<Vec<_>>>()?;
        stack_examples(&examples, indices)
    }
}

/// A per-example transform applied by the loader before stacking (augmentation, resizing).
pub type Transform = Arc<dyn Fn(Example) -> Result<Example> + Send + Sync>;

/// Stacks examples into a batch, with an error naming the first example whose shape differs.
pub fn stack_examples(examples: &[Example], indices: &[usize]) -> Result<Batch> {
    let Some(first) = examples.first() else {
        return Err(DataError::Invalid(
            "cannot stack an empty list of examples".into(),
        ));
    };
    let name = |k: usize| indices.get(k).copied().unwrap_or(k);
    for (k, e) in examples.iter().enumerate().skip(1) {
        for (what, a, b) in [("x", &first.x, &e.x), ("y", &first.y, &e.y)] {
            if a.shape() != b.shape() || a.dtype() != b.dtype() {
                return Err(DataError::Invalid(format!(
                    "cannot batch examples {} and {}: their {what} are {:?} {} and {:?} {}",
                    name(0),
                    name(k),
                    a.shape(),
                    a.dtype(),
                    b.shape(),
                    b.dtype()
                )));
            }
        }
    }
    let xs: Vec<&Tensor> = examples.iter().map(|e| &e.x).collect();
    let ys: Vec<&Tensor> = examples.iter().map(|e| &e.y).collect();
    Ok(Batch {
        x: Tensor::stack(&xs, 0)?,
        y: Tensor::stack(&ys, 0)?,
    })
}

/// In-memory arrays as a data set: example `i` is `(x[i], y[i])` (PyTorch's `TensorDataset`).
#[derive(Debug, Clone)]
pub struct TensorDataset {
    x: Tensor,
    y: Tensor,
}

impl TensorDataset {
    /// Pairs features `[n, ...]` with targets `[n, ...]`; the first dimensions must agree.
    pub fn new(x: Tensor, y: Tensor) -> Result<TensorDataset> {
        if x.rank() == 0 || y.rank() == 0 {
            return Err(DataError::Invalid(format!(
                "TensorDataset needs tensors with a leading example dimension, got x {:?} and y {:?}",
                x.shape(),
                y.shape()
            )));
        }
        if x.shape()[0] != y.shape()[0] {
            return Err(DataError::Invalid(format!(
                "TensorDataset: x has {} examples (shape {:?}) but y has {} (shape {:?})",
                x.shape()[0],
                x.shape(),
                y.shape()[0],
                y.shape()
            )));
        }
        Ok(TensorDataset { x, y })
    }

    /// The whole feature array.
    pub fn x(&self) -> &Tensor {
        &self.x
    }

    /// The whole target array.
    pub fn y(&self) -> &Tensor {
        &self.y
    }
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.x.shape()[0]
    }

    fn get(&self, index: usize) -> Result<Example> {
        if index >= self.len() {
            return Err(DataError::Invalid(format!(
                "index {index} is out of range for a data set of {} examples",
                self.len()
            )));
        }
        Ok(Example {
            x: self.x.select(0, index as isize)?.contiguous()?,
            y: self.y.select(0, index as isize)?.contiguous()?,
        })
    }

    fn get_batch(&self, indices: &[usize]) -> Result<Batch> {
        let idx: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        let idx = Tensor::from_vec(idx, &[indices.len()])?;
        Ok(Batch {
            x: self.x.index_select(0, &idx)?,
            y: self.y.index_select(0, &idx)?,
        })
    }
}

/// D2L 3.3's `load_array`: a loader over in-memory arrays, shuffled when `shuffle` is set
/// (the seed is drawn from the engine's global generator, so `manual_seed` makes it
/// reproducible).
pub fn load_array(x: Tensor, y: Tensor, batch_size: usize, shuffle: bool) -> Result<DataLoader> {
    let ds = Arc::new(TensorDataset::new(x, y)?);
    let loader = DataLoader::new(ds, batch_size)?;
    Ok(if shuffle {
        let seed = d2l_tensor::random::with_global(|g| g.next_u64());
        loader.shuffle(seed)
    } else {
        loader
    })
}

/// Cuts a data set into mini-batches, optionally shuffled and prefetched on a thread.
#[derive(Clone)]
pub struct DataLoader {
    dataset: Arc<dyn Dataset>,
    batch_size: usize,
    seed: Option<u64>,
    drop_last: bool,
    prefetch: usize,
    transform: Option<Transform>,
    next_epoch: Arc<AtomicU64>,
}

impl std::fmt::Debug for DataLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataLoader")
            .field("examples", &self.dataset.len())
            .field("batch_size", &self.batch_size)
            .field("shuffle_seed", &self.seed)
            .field("drop_last", &self.drop_last)
            .field("prefetch", &self.prefetch)
            .field("transform", &self.transform.is_some())
            .finish()
    }
}

impl DataLoader {
    /// A loader over `dataset` in batches of `batch_size`, in order, prefetching 2 batches.
    pub fn new(dataset: Arc<dyn Dataset>, batch_size: usize) -> Result<DataLoader> {
        if batch_size == 0 {
            return Err(DataError::Invalid(
                "batch size must be at least 1, got 0".into(),
            ));
        }
        if dataset.is_empty() {
            return Err(DataError::Invalid(
                "cannot load batches from an empty data set (0 examples)".into(),
            ));
        }
        Ok(DataLoader {
            dataset,
            batch_size,
            seed: None,
            drop_last: false,
            prefetch: 2,
            transform: None,
            next_epoch: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Shuffles every epoch, with an order that depends only on `seed` and the epoch.
    pub fn shuffle(mut self, seed: u64) -> DataLoader {
        self.seed = Some(seed);
        self
    }

    /// Drops the last, smaller batch when the data set size is not a multiple of the batch.
    pub fn drop_last(mut self, drop_last: bool) -> DataLoader {
        self.drop_last = drop_last;
        self
    }

    /// Builds up to `n` batches ahead on a background thread (0: on the caller's thread).
    pub fn prefetch(mut self, n: usize) -> DataLoader {
        self.prefetch = n;
        self
    }

    /// Applies `f` to every example before stacking (turns off the whole-batch fast path).
    pub fn transform(
        mut self,
        f: impl Fn(Example) -> Result<Example> + Send + Sync + 'static,
    ) -> DataLoader {
        self.transform = Some(Arc::new(f));
        self
    }

    /// Like [`DataLoader::transform`], with a shared transform.
    pub fn with_transform(mut self, f: Transform) -> DataLoader {
        self.transform = Some(f);
        self
    }

    /// The data set.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Number of examples in the data set.
    pub fn num_examples(&self) -> usize {
        self.dataset.len()
    }

    /// Number of batches per epoch.
    pub fn len(&self) -> usize {
        let n = self.dataset.len();
        if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// Whether an epoch yields no batch (only with `drop_last` and fewer examples than a batch).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The order in which epoch `epoch` visits the examples.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let n = self.dataset.len();
        match self.seed {
            None => (0..n).collect(),
            Some(seed) => {
                let mut g = Generator::new(epoch_seed(seed, epoch));
                Tensor::randperm_with(&mut g, n)
                    .to_vec::<i64>()
                    .into_iter()
                    .map(|i| i as usize)
                    .collect()
            }
        }
    }

    /// The batches of epoch `epoch` (same epoch, same order; a new epoch, a new order).
    pub fn iter_epoch(&self, epoch: u64) -> EpochIter {
        let n = self.dataset.len();
        let plan = Arc::new(Plan {
            dataset: self.dataset.clone(),
            transform: self.transform.clone(),
            order: self.order(epoch),
            batch_size: self.batch_size,
            batches: self.len(),
        });
        if plan.batches == 0 {
            let err = DataError::Invalid(format!(
                "drop_last with {n} examples and batch size {} leaves no batch",
                self.batch_size
            ));
            return EpochIter {
                state: State::Failed(Some(err)),
                epoch,
            };
        }
        if self.prefetch == 0 {
            return EpochIter {
                state: State::Inline {
                    plan,
                    next: 0,
                    done: false,
                },
                epoch,
            };
        }
        let (tx, rx) = sync_channel(self.prefetch);
        let worker = plan.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("d2l-loader-epoch-{epoch}"))
            .spawn(move || {
                for b in 0..worker.batches {
                    let r = worker.batch(b);
                    let failed = r.is_err();
                    if tx.send(r).is_err() || failed {
                        break;
                    }
                }
            });
        match spawned {
            Ok(handle) => EpochIter {
                state: State::Background {
                    rx: Some(rx),
                    handle: Some(handle),
                    done: false,
                },
                epoch,
            },
            // No thread to be had: build the batches here instead.
            Err(_) => EpochIter {
                state: State::Inline {
                    plan,
                    next: 0,
                    done: false,
                },
                epoch,
            },
        }
    }

    /// The batches of the next epoch: the first call is epoch 0, then 1, 2, … (shared by clones).
    pub fn iter(&self) -> EpochIter {
        let e = self.next_epoch.fetch_add(1, Ordering::Relaxed);
        self.iter_epoch(e)
    }

    /// Sets the epoch the next [`DataLoader::iter`] call will use (e.g. when resuming).
    pub fn set_epoch(&self, epoch: u64) {
        self.next_epoch.store(epoch, Ordering::Relaxed);
    }
}

impl IntoIterator for &DataLoader {
    type Item = Result<Batch>;
    type IntoIter = EpochIter;

    fn into_iter(self) -> EpochIter {
        self.iter()
    }
}

/// Mixes a seed with an epoch number (SplitMix64 finaliser) so epochs get unrelated orders.
fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    let mut z = seed ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What one epoch needs to build its batches, shared with the prefetch thread.
struct Plan {
    dataset: Arc<dyn Dataset>,
    transform: Option<Transform>,
    order: Vec<usize>,
    batch_size: usize,
    batches: usize,
}

impl Plan {
    fn batch(&self, b: usize) -> Result<Batch> {
        let start = b * self.batch_size;
        let end = (start + self.batch_size).min(self.order.len());
        let idx = &self.order[start..end];
        match &self.transform {
            None => self.dataset.get_batch(idx),
            Some(f) => {
                let ex = idx
                    .iter()
                    .map(|&i| self.dataset.get(i).and_then(|e| f(e)))
                    .collect::<Result<Vec<_>>>()?;
                stack_examples(&ex, idx)
            }
        }
    }
}

enum State {
    Inline {
        plan: Arc<Plan>,
        next: usize,
        done: bool,
    },
    Background {
        rx: Option<Receiver<Result<Batch>>>,
        handle: Option<JoinHandle<()>>,
        done: bool,
    },
    Failed(Option<DataError>),
}

/// The batches of one epoch, in order; stops after the first error.
pub struct EpochIter {
    state: State,
    epoch: u64,
}

impl EpochIter {
    /// The epoch these batches belong to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl Iterator for EpochIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        match &mut self.state {
            State::Failed(e) => e.take().map(Err),
            State::Inline { plan, next, done } => {
                if *done || *next >= plan.batches {
                    return None;
                }
                let r = plan.batch(*next);
                *next += 1;
                *done = r.is_err();
                Some(r)
            }
            State::Background { rx, handle, done } => {
                if *done {
                    return None;
                }
                let received = rx.as_ref().map(|r| r.recv());
                match received {
                    Some(Ok(r)) => {
                        *done = r.is_err();
                        Some(r)
                    }
                    _ => {
                        // The worker finished (or died): pass a panic on to the caller.
                        *done = true;
                        rx.take();
                        if let Some(h) = handle.take() {
                            if let Err(p) = h.join() {
                                std::panic::resume_unwind(p);
                            }
                        }
                        None
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.state {
            State::Inline { plan, next, done } if !*done => {
                let left = plan.batches.saturating_sub(*next);
                (left, Some(left))
            }
            State::Failed(Some(_)) => (1, Some(1)),
            State::Background { done: false, .. } => (0, None),
            _ => (0, Some(0)),
        }
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        if let State::Background { rx, handle, .. } = &mut self.state {
            // Closing the channel makes a worker blocked on `send` stop after this batch.
            rx.take();
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}
