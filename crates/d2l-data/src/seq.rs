//! Reading long sequence data (D2L 8.3.4): cutting one long corpus of token ids into
//! mini-batches of `(X, Y)` pairs, `X` and `Y` of shape `[batch_size, num_steps]` with `Y`
//! the next token of every `X` position, by **random sampling**
//! ([`seq_data_iter_random`]) or **sequential partitioning**
//! ([`seq_data_iter_sequential`]), and the [`SeqDataLoader`] that picks one of them —
//! exactly as the book's code does:
//!
//! * random sampling drops a random prefix of `0..=num_steps−1` tokens, cuts the rest into
//!   non-overlapping windows of `num_steps`, shuffles the windows' starts and takes
//!   `batch_size` of them per batch (a window's successor is not in the next batch);
//! * sequential partitioning drops a random prefix of `0..=num_steps` tokens, lays the rest
//!   out as `batch_size` parallel streams and walks them `num_steps` at a time, so row `r`
//!   of batch `i + 1` continues row `r` of batch `i` in the corpus (the hidden state can be
//!   carried over).
//!
//! [`load_data_time_machine`] reads *The Time Machine* with the book's default of the
//! first [`DEFAULT_MAX_TOKENS`] characters.
//!
//! ```
//! use d2l_data::seq::seq_data_iter_sequential;
//! use d2l_tensor::Generator;
//! let corpus: Vec<usize> = (0..35).collect();
//! let batches = seq_data_iter_sequential(&corpus, 2, 5, &mut Generator::new(0)).unwrap();
//! let (x, y) = &batches[0];
//! assert_eq!(x.shape(), &[2, 5]);
//! let (xs, ys) = (x.to_vec::<i64>(), y.to_vec::<i64>());
//! assert!(xs.iter().zip(&ys).all(|(a, b)| b - a == 1)); // Y is X shifted by one
//! ```

use crate::error::{DataError, Result};
use crate::hub::DataHub;
use crate::text::Vocab;
use d2l_tensor::{Generator, Tensor};
use std::sync::Arc;

/// The book's `load_data_time_machine(max_tokens=10000)`: only the first 10,000
/// characters of *The Time Machine* are used by default.
pub const DEFAULT_MAX_TOKENS: usize = 10_000;

fn check_sizes(op: &str, batch_size: usize, num_steps: usize) -> Result<()> {
    if batch_size == 0 || num_steps == 0 {
        return Err(DataError::Invalid(format!(
            "{op}: expected batch_size >= 1 and num_steps >= 1, got batch_size={batch_size}, num_steps={num_steps}"
        )));
    }
    Ok(())
}

/// The window starts of every batch under random sampling (`seq_data_iter_random`):
/// `batches[i][r]` is where row `r` of batch `i` starts in the corpus.
pub fn random_batch_starts(
    corpus_len: usize,
    batch_size: usize,
    num_steps: usize,
    g: &mut Generator,
) -> Result<Vec<Vec<usize>>> {
    check_sizes("seq_data_iter_random", batch_size, num_steps)?;
    // random.randint(0, num_steps - 1): both ends included.
    let offset = g.below(num_steps as u64) as usize;
    let usable = corpus_len.saturating_sub(offset);
    // The last window needs one more token for its Y.
    let num_subseqs = usable.saturating_sub(1) / num_steps;
    let mut starts: Vec<usize> = (0..num_subseqs).map(|k| offset + k * num_steps).collect();
    for i in (1..starts.len()).rev() {
        let j = g.below(i as u64 + 1) as usize;
        starts.swap(i, j);
    }
    let num_batches = num_subseqs / batch_size;
    Ok((0..num_batches)
        .map(|i| starts[i * batch_size..(i + 1) * batch_size].to_vec())
        .collect())
}

/// The window starts of every batch under sequential partitioning
/// (`seq_data_iter_sequential`): `batches[i][r]` is where row `r` of batch `i` starts.
pub fn sequential_batch_starts(
    corpus_len: usize,
    batch_size: usize,
    num_steps: usize,
    g: &mut Generator,
) -> Result<Vec<Vec<usize>>> {
    check_sizes("seq_data_iter_sequential", batch_size, num_steps)?;
    // random.randint(0, num_steps): both ends included.
    let offset = g.below(num_steps as u64 + 1) as usize;
    let num_tokens = (corpus_len.saturating_sub(offset + 1) / batch_size) * batch_size;
    let stream = num_tokens / batch_size;
    let num_batches = stream / num_steps;
    Ok((0..num_batches)
        .map(|i| {
            (0..batch_size)
                .map(|r| offset + r * stream + i * num_steps)
                .collect()
        })
        .collect())
}

/// `(X, Y)` for windows starting at `starts`: `X[r] = corpus[s..s + T]`,
/// `Y[r] = corpus[s + 1..s + T + 1]`, both `i64` `[starts.len(), T]`.
pub fn windows(corpus: &[usize], starts: &[usize], num_steps: usize) -> Result<(Tensor, Tensor)> {
    let mut x = Vec::with_capacity(starts.len() * num_steps);
    let mut y = Vec::with_capacity(starts.len() * num_steps);
    for &s in starts {
        if s + num_steps + 1 > corpus.len() {
            return Err(DataError::Invalid(format!(
                "window at {s} of {num_steps} steps (+1 for Y) runs past the corpus of {} tokens",
                corpus.len()
            )));
        }
        x.extend(corpus[s..s + num_steps].iter().map(|&t| t as i64));
        y.extend(corpus[s + 1..s + num_steps + 1].iter().map(|&t| t as i64));
    }
    let shape = [starts.len(), num_steps];
    Ok((Tensor::from_vec(x, &shape)?, Tensor::from_vec(y, &shape)?))
}

/// Every mini-batch of random sampling (the book's `seq_data_iter_random`).
pub fn seq_data_iter_random(
    corpus: &[usize],
    batch_size: usize,
    num_steps: usize,
    g: &mut Generator,
) -> Result<Vec<(Tensor, Tensor)>> {
    random_batch_starts(corpus.len(), batch_size, num_steps, g)?
        .iter()
        .map(|s| windows(corpus, s, num_steps))
        .collect()
}

/// Every mini-batch of sequential partitioning (the book's `seq_data_iter_sequential`).
pub fn seq_data_iter_sequential(
    corpus: &[usize],
    batch_size: usize,
    num_steps: usize,
    g: &mut Generator,
) -> Result<Vec<(Tensor, Tensor)>> {
    sequential_batch_starts(corpus.len(), batch_size, num_steps, g)?
        .iter()
        .map(|s| windows(corpus, s, num_steps))
        .collect()
}

/// The book's `SeqDataLoader`: a corpus, its vocabulary, and one of the two samplers. Each
/// call of [`SeqDataLoader::iter`] is a new epoch with a new random offset (and, for random
/// sampling, a new shuffle), drawn from the loader's own seeded generator.
#[derive(Clone, Debug)]
pub struct SeqDataLoader {
    corpus: Arc<Vec<usize>>,
    vocab: Vocab,
    batch_size: usize,
    num_steps: usize,
    use_random_iter: bool,
    gen: Generator,
}

impl SeqDataLoader {
    /// A loader over `corpus` (token ids of `vocab`). The corpus must hold at least
    /// `batch_size · num_steps + num_steps + 1` tokens, so that every epoch has a batch
    /// whatever the random offset.
    pub fn new(
        corpus: Vec<usize>,
        vocab: Vocab,
        batch_size: usize,
        num_steps: usize,
        use_random_iter: bool,
        seed: u64,
    ) -> Result<Self> {
        check_sizes("SeqDataLoader", batch_size, num_steps)?;
        let need = batch_size * num_steps + num_steps + 1;
        if corpus.len() < need {
            return Err(DataError::Invalid(format!(
                "SeqDataLoader: a corpus of {} tokens is too short for batch_size {batch_size} × num_steps {num_steps} (needs at least {need})",
                corpus.len()
            )));
        }
        if let Some(&bad) = corpus.iter().find(|&&t| t >= vocab.len()) {
            return Err(DataError::Invalid(format!(
                "SeqDataLoader: token id {bad} is outside the vocabulary of {} tokens",
                vocab.len()
            )));
        }
        Ok(SeqDataLoader {
            corpus: Arc::new(corpus),
            vocab,
            batch_size,
            num_steps,
            use_random_iter,
            gen: Generator::new(seed),
        })
    }

    /// One epoch: the mini-batches `(X, Y)`, `i64` `[batch_size, num_steps]`, produced
    /// lazily.
    pub fn iter(&mut self) -> SeqBatches {
        let f = if self.use_random_iter {
            random_batch_starts
        } else {
            sequential_batch_starts
        };
        let starts = f(
            self.corpus.len(),
            self.batch_size,
            self.num_steps,
            &mut self.gen,
        )
        .expect("sizes were checked by SeqDataLoader::new");
        SeqBatches {
            corpus: self.corpus.clone(),
            num_steps: self.num_steps,
            starts: starts.into_iter(),
        }
    }

    /// The loader's generator (offsets and shuffles of the coming epochs), for checkpoints.
    pub fn generator(&self) -> &Generator {
        &self.gen
    }

    /// Replaces the loader's generator (to resume from a checkpoint).
    pub fn set_generator(&mut self, gen: Generator) {
        self.gen = gen;
    }

    /// The token ids.
    pub fn corpus(&self) -> &[usize] {
        &self.corpus
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Sequences per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Time steps per sequence.
    pub fn num_steps(&self) -> usize {
        self.num_steps
    }

    /// Whether batches come from random sampling (else sequential partitioning).
    pub fn use_random_iter(&self) -> bool {
        self.use_random_iter
    }
}

/// The batches of one epoch of a [`SeqDataLoader`].
#[derive(Debug)]
pub struct SeqBatches {
    corpus: Arc<Vec<usize>>,
    num_steps: usize,
    starts: std::vec::IntoIter<Vec<usize>>,
}

impl Iterator for SeqBatches {
    type Item = (Tensor, Tensor);

    fn next(&mut self) -> Option<(Tensor, Tensor)> {
        let s = self.starts.next()?;
        Some(windows(&self.corpus, &s, self.num_steps).expect("windows lie inside the corpus"))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.starts.size_hint()
    }
}

impl ExactSizeIterator for SeqBatches {}

/// The book's `load_data_time_machine(batch_size, num_steps, use_random_iter, max_tokens)`:
/// the character corpus of *The Time Machine* (through the hub, `timemachine/timemachine.txt`)
/// cut to its first `max_tokens` characters (`None` = all; the book's default is
/// `Some(DEFAULT_MAX_TOKENS)`), in a [`SeqDataLoader`] seeded with `seed`, and the vocabulary.
pub fn load_data_time_machine(
    hub: &DataHub,
    batch_size: usize,
    num_steps: usize,
    use_random_iter: bool,
    max_tokens: Option<usize>,
    seed: u64,
) -> Result<(SeqDataLoader, Vocab)> {
    let (corpus, vocab) = crate::datasets::load_time_machine(hub, max_tokens)?;
    let loader = SeqDataLoader::new(
        corpus,
        vocab.clone(),
        batch_size,
        num_steps,
        use_random_iter,
        seed,
    )?;
    Ok((loader, vocab))
}
