//! Training metrics (D2L 3.6 `Accumulator`, `accuracy`, `evaluate_accuracy`; 4.4
//! `evaluate_loss`; 2.x/3.1 `Timer`).
//!
//! [`accuracy`] counts correct predictions in a batch (a count, as the book's, so that
//! sums over batches divide by the number of examples); [`evaluate_accuracy`] and
//! [`evaluate_loss`] run a model over a whole loader in evaluation mode without recording
//! the autograd graph, then put the model back in training mode.
//!
//! ```
//! use d2l_train::metrics::{accuracy, Accumulator};
//! use d2l_tensor::Tensor;
//! # fn main() -> d2l_tensor::Result<()> {
//! let y_hat = Tensor::from_vec(vec![0.1f32, 0.3, 0.6, 0.3, 0.2, 0.5], &[2, 3])?;
//! let y = Tensor::from_vec(vec![0i64, 2], &[2])?;
//! assert_eq!(accuracy(&y_hat, &y)?, 1.0); // D2L 3.6.4: one of the two is right
//! let mut m = Accumulator::new(2);
//! m.add(&[1.0, 2.0]);
//! m.add(&[3.0, 4.0]);
//! assert_eq!(m.get(1), 6.0);
//! # Ok(()) }
//! ```

use d2l_data::loader::DataLoader;
use d2l_data::DataError;
use d2l_nn::Module;
use d2l_tensor::{no_grad, Error, Result, Tensor};
use std::time::Instant;

/// Turns a data-layer error into the engine's error type (the data error's own message
/// is kept; engine errors pass through unchanged).
pub fn data_error(e: DataError) -> Error {
    match e {
        DataError::Tensor(e) => e,
        other => Error::InvalidArgument {
            op: "data",
            msg: other.to_string(),
        },
    }
}

/// `n` running sums of `f64` (D2L 3.6's `Accumulator`), e.g. (loss sum, correct count,
/// example count) over the batches of an epoch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Accumulator {
    data: Vec<f64>,
}

impl Accumulator {
    /// `n` sums, all zero.
    pub fn new(n: usize) -> Self {
        Accumulator { data: vec![0.0; n] }
    }

    /// Adds `values[i]` to sum `i` (as the book's `add(*args)`; extra values are ignored,
    /// missing ones add nothing).
    pub fn add(&mut self, values: &[f64]) {
        for (a, v) in self.data.iter_mut().zip(values) {
            *a += v;
        }
    }

    /// Sum `i` (the book's `metric[i]`). Panics when `i >= len()`.
    pub fn get(&self, i: usize) -> f64 {
        self.data[i]
    }

    /// Sets every sum back to zero.
    pub fn reset(&mut self) {
        self.data.iter_mut().for_each(|a| *a = 0.0);
    }

    /// Number of sums.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no sums at all (`new(0)`).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// All sums.
    pub fn values(&self) -> &[f64] {
        &self.data
    }
}

impl std::ops::Index<usize> for Accumulator {
    type Output = f64;

    fn index(&self, i: usize) -> &f64 {
        &self.data[i]
    }
}

/// Records several running times (D2L 3.1.2's `Timer`): `start`, then `stop` adds the
/// seconds since the last start to the list.
#[derive(Debug, Clone)]
pub struct Timer {
    times: Vec<f64>,
    started: Instant,
}

impl Default for Timer {
    fn default() -> Self {
        Self::new()
    }
}

impl Timer {
    /// A timer that has already started.
    pub fn new() -> Self {
        Timer {
            times: Vec::new(),
            started: Instant::now(),
        }
    }

    /// (Re)starts the clock.
    pub fn start(&mut self) {
        self.started = Instant::now();
    }

    /// Stops the clock, records and returns the seconds since the last start.
    pub fn stop(&mut self) -> f64 {
        let t = self.started.elapsed().as_secs_f64();
        self.times.push(t);
        t
    }

    /// The average recorded time (0 when nothing was recorded).
    pub fn avg(&self) -> f64 {
        if self.times.is_empty() {
            0.0
        } else {
            self.sum() / self.times.len() as f64
        }
    }

    /// The total recorded time.
    pub fn sum(&self) -> f64 {
        self.times.iter().sum()
    }

    /// The running totals of the recorded times.
    pub fn cumsum(&self) -> Vec<f64> {
        self.times
            .iter()
            .scan(0.0, |acc, t| {
                *acc += t;
                Some(*acc)
            })
            .collect()
    }

    /// Every recorded time, in order.
    pub fn times(&self) -> &[f64] {
        &self.times
    }
}

/// The number of correct predictions (D2L 3.6.4's `accuracy`, a count, not a fraction).
///
/// When `y_hat` is 2-D with more than one column, the prediction is its argmax over
/// dim 1; otherwise `y_hat` holds the predicted labels themselves (cast to the type of
/// `y`, as the book's `y_hat.type(y.dtype)`). Predictions and labels must have the same
/// number of elements.
pub fn accuracy(y_hat: &Tensor, y: &Tensor) -> Result<f64> {
    let pred: Vec<f64> = if y_hat.rank() == 2 && y_hat.shape()[1] > 1 {
        y_hat.argmax(1, false)?.to_f64_vec()
    } else {
        y_hat.to_f64_vec()
    };
    let truth = y.to_f64_vec();
    if pred.len() != truth.len() {
        return Err(Error::ShapeMismatch {
            op: "accuracy",
            lhs: y_hat.shape().to_vec(),
            rhs: y.shape().to_vec(),
            why: format!(
                "do not agree: {} predictions for {} labels",
                pred.len(),
                truth.len()
            ),
        });
    }
    let integer_labels = !y.dtype().is_float();
    let correct = pred
        .iter()
        .zip(&truth)
        .filter(|(p, t)| {
            if integer_labels {
                p.trunc() == **t
            } else {
                *p == *t
            }
        })
        .count();
    Ok(correct as f64)
}

/// A loss as the evaluation functions take it: `(y_hat, y) → mean loss over the batch`
/// (what a boxed [`crate::trainer::LossFn`] holds).
pub type BatchLoss = dyn Fn(&Tensor, &Tensor) -> Result<Tensor>;

/// What one pass of a model over a loader measured (see [`evaluate`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Evaluation {
    /// Number of examples seen.
    pub examples: usize,
    /// Fraction of correct predictions, when accuracy was asked for.
    pub accuracy: Option<f64>,
    /// Mean loss per example, when a loss was given.
    pub loss: Option<f64>,
}

/// Puts the model back in training mode when dropped, also on an early error return.
struct TrainOnDrop<'a>(&'a dyn Module);

impl Drop for TrainOnDrop<'_> {
    fn drop(&mut self) {
        self.0.train();
    }
}

/// One pass of `net` over `loader` in evaluation mode and without gradients, measuring
/// the accuracy (with `with_accuracy`) and the mean of `loss` (a batch-mean loss,
/// weighted by batch size) when given. The model is in training mode afterwards. Each
/// batch is moved to the model's device (that of its first parameter) first.
pub fn evaluate(
    net: &dyn Module,
    loader: &DataLoader,
    loss: Option<&BatchLoss>,
    with_accuracy: bool,
) -> Result<Evaluation> {
    net.eval();
    let _restore = TrainOnDrop(net);
    let device = crate::device::model_device(net);
    no_grad(|| {
        let mut m = Accumulator::new(3); // correct, loss sum, examples
        for batch in loader.iter_epoch(0) {
            let batch = batch.map_err(data_error)?;
            let n = batch.len() as f64;
            let (x, y) = (batch.x.to(device)?, batch.y.to(device)?);
            let y_hat = net.forward(&x)?;
            if with_accuracy {
                m.add(&[accuracy(&y_hat, &y)?]);
            }
            if let Some(loss) = loss {
                let l = loss(&y_hat, &y)?.item_f64()?;
                m.add(&[0.0, l * n]);
            }
            m.add(&[0.0, 0.0, n]);
        }
        let n = m.get(2);
        let frac = |v: f64| if n > 0.0 { v / n } else { f64::NAN };
        Ok(Evaluation {
            examples: n as usize,
            accuracy: with_accuracy.then(|| frac(m.get(0))),
            loss: loss.map(|_| frac(m.get(1))),
        })
    })
}

/// The accuracy of `net` over every example of `loader` (D2L 3.6's `evaluate_accuracy`):
/// evaluation mode, no gradients, correct / total; training mode is restored afterwards.
pub fn evaluate_accuracy(net: &dyn Module, loader: &DataLoader) -> Result<f64> {
    Ok(evaluate(net, loader, None, true)?
        .accuracy
        .unwrap_or(f64::NAN))
}

/// The mean loss of `net` over every example of `loader` (D2L 4.4's `evaluate_loss`);
/// `loss` returns the batch mean (a [`crate::trainer::LossFn`] works), which is weighted
/// by the batch size. Evaluation mode, no gradients; training mode is restored afterwards.
pub fn evaluate_loss(net: &dyn Module, loader: &DataLoader, loss: &BatchLoss) -> Result<f64> {
    Ok(evaluate(net, loader, Some(loss), false)?
        .loss
        .unwrap_or(f64::NAN))
}
