//! N-gram statistics and n-gram language models (D2L 8.3, "Language Models and the
//! Dataset"): the word corpus of *The Time Machine*, unigram, bigram and trigram frequency
//! tables (the book's `Vocab(bigram_tokens).token_freqs`), the data behind the Zipf plot,
//! and word- or character-level n-gram models with the section's Laplace smoothing
//!
//! * P̂(x) = (n(x) + ε₁/m) / (n + ε₁),
//! * P̂(x′ | x) = (n(x, x′) + ε₂ P̂(x′)) / (n(x) + ε₂),
//! * P̂(x″ | x, x′) = (n(x, x′, x″) + ε₃ P̂(x″)) / (n(x, x′) + ε₃),
//!
//! where n is the number of training tokens and m the vocabulary size, scored by their
//! perplexity exp(−mean log P) on held-out text.
//!
//! ```
//! use d2l_data::ngram::{LaplaceLm, NGramCounts, Smoothing};
//! let words: Vec<&str> = "the cat sat on the mat the cat ran".split(' ').collect();
//! let bigrams = NGramCounts::new(&words, 2).unwrap();
//! assert_eq!(bigrams.count(&["the", "cat"]), 2);
//! assert_eq!(bigrams.freqs()[0], (vec!["the".to_string(), "cat".to_string()], 2));
//!
//! let lm = LaplaceLm::fit(&words, 2, Smoothing::uniform(1.0)).unwrap();
//! let p: f64 = ["cat", "mat", "sat", "on", "ran", "the", "<unk>"]
//!     .iter()
//!     .map(|w| lm.bigram_prob("the", w))
//!     .sum();
//! assert!((p - 1.0).abs() < 1e-12); // a proper distribution over the m types
//! assert!(lm.perplexity(&["the", "cat", "sat"]).unwrap() > 1.0);
//! ```

use crate::error::{DataError, Result};
use crate::text::{tokenize, TokenKind};
use std::collections::HashMap;

/// The word corpus of a text: every word of every line, in order, as one flat sequence
/// (the book's `corpus = [token for line in tokens for token in line]`, so n-grams run
/// across line ends).
pub fn word_corpus<S: AsRef<str>>(lines: &[S]) -> Vec<String> {
    tokenize(lines, TokenKind::Word)
        .into_iter()
        .flatten()
        .collect()
}

/// The character corpus of a text: every character of every cleaned line (spaces
/// included, no separator between lines), as `load_corpus_time_machine` reads it.
pub fn char_corpus<S: AsRef<str>>(lines: &[S]) -> Vec<String> {
    tokenize(lines, TokenKind::Char)
        .into_iter()
        .flatten()
        .collect()
}

/// Splits a corpus into its first part (for training) and its last `fraction` (held out),
/// e.g. `0.1` keeps the last 10% for evaluation. The fraction must lie in (0, 1) and both
/// parts must be non-empty.
pub fn split_held_out<T>(tokens: &[T], fraction: f64) -> Result<(&[T], &[T])> {
    if !(fraction.is_finite() && fraction > 0.0 && fraction < 1.0) {
        return Err(DataError::Invalid(format!(
            "held-out fraction must lie strictly between 0 and 1, got {fraction}"
        )));
    }
    let held = ((tokens.len() as f64) * fraction).round() as usize;
    if held == 0 || held >= tokens.len() {
        return Err(DataError::Invalid(format!(
            "holding out {fraction} of {} tokens leaves an empty part",
            tokens.len()
        )));
    }
    Ok(tokens.split_at(tokens.len() - held))
}

/// The counts of every n-gram of a token sequence, most frequent first (ties keep the
/// order in which they first appear, as the book's `Counter` + stable sort does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NGramCounts {
    n: usize,
    freqs: Vec<(Vec<String>, usize)>,
    index: HashMap<Vec<String>, usize>,
    total: usize,
}

impl NGramCounts {
    /// Counts the n-grams (`n` consecutive tokens) of `tokens`; `n` must be at least 1.
    /// A sequence shorter than `n` has no n-grams (an empty table).
    pub fn new<S: AsRef<str>>(tokens: &[S], n: usize) -> Result<NGramCounts> {
        if n == 0 {
            return Err(DataError::Invalid(
                "n-gram order must be at least 1, got 0".into(),
            ));
        }
        let mut freqs: Vec<(Vec<String>, usize)> = Vec::new();
        let mut first: HashMap<Vec<String>, usize> = HashMap::new();
        let mut total = 0;
        for w in tokens.windows(n) {
            let key: Vec<String> = w.iter().map(|t| t.as_ref().to_string()).collect();
            total += 1;
            match first.get(&key) {
                Some(&k) => freqs[k].1 += 1,
                None => {
                    first.insert(key.clone(), freqs.len());
                    freqs.push((key, 1));
                }
            }
        }
        freqs.sort_by_key(|f| std::cmp::Reverse(f.1)); // stable
        let index = freqs
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        Ok(NGramCounts {
            n,
            freqs,
            index,
            total,
        })
    }

    /// The order n.
    pub fn n(&self) -> usize {
        self.n
    }

    /// How often an n-gram occurs (0 if never, or if `gram` does not have n tokens).
    pub fn count<S: AsRef<str>>(&self, gram: &[S]) -> usize {
        if gram.len() != self.n {
            return 0;
        }
        let key: Vec<String> = gram.iter().map(|t| t.as_ref().to_string()).collect();
        self.index.get(&key).map_or(0, |&i| self.freqs[i].1)
    }

    /// The number of n-gram occurrences in the sequence (its length − n + 1, or 0).
    pub fn total(&self) -> usize {
        self.total
    }

    /// The number of distinct n-grams.
    pub fn len(&self) -> usize {
        self.freqs.len()
    }

    /// Whether the sequence had no n-gram at all.
    pub fn is_empty(&self) -> bool {
        self.freqs.is_empty()
    }

    /// Every distinct n-gram with its count, most frequent first.
    pub fn freqs(&self) -> &[(Vec<String>, usize)] {
        &self.freqs
    }

    /// The `k` most frequent n-grams (fewer if there are fewer).
    pub fn top(&self, k: usize) -> &[(Vec<String>, usize)] {
        &self.freqs[..k.min(self.freqs.len())]
    }

    /// The counts in rank order (rank 1 first): the y values of the Zipf plot.
    pub fn counts_by_rank(&self) -> Vec<usize> {
        self.freqs.iter().map(|f| f.1).collect()
    }

    /// How many distinct n-grams occur exactly once.
    pub fn singletons(&self) -> usize {
        self.freqs.iter().filter(|f| f.1 == 1).count()
    }
}

/// Fits Zipf's law `n_i ∝ i^(−α)` (D2L 8.3.1): the least-squares slope of ln n_i against
/// ln i over the ranks `first..=last` (1-based, clipped to the table), returned as α.
/// `None` when fewer than two ranks are in range.
pub fn zipf_exponent(counts_by_rank: &[usize], first: usize, last: usize) -> Option<f64> {
    let first = first.max(1);
    let last = last.min(counts_by_rank.len());
    if last < first + 1 {
        return None;
    }
    let pts: Vec<(f64, f64)> = (first..=last)
        .filter(|&r| counts_by_rank[r - 1] > 0)
        .map(|r| ((r as f64).ln(), (counts_by_rank[r - 1] as f64).ln()))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let k = pts.len() as f64;
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / k,
        pts.iter().map(|p| p.1).sum::<f64>() / k,
    );
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    (sxx > 0.0).then(|| -sxy / sxx)
}

/// The smoothing constants ε₁, ε₂, ε₃ of D2L 8.3's Laplace smoothing (each ≥ 0; ε → ∞
/// pulls an estimate towards the next-lower order, ε = 0 is the raw frequency).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Smoothing {
    /// ε₁, for the unigram probabilities.
    pub eps1: f64,
    /// ε₂, for the bigram probabilities.
    pub eps2: f64,
    /// ε₃, for the trigram probabilities.
    pub eps3: f64,
}

impl Smoothing {
    /// The same ε for all three orders.
    pub fn uniform(eps: f64) -> Smoothing {
        Smoothing {
            eps1: eps,
            eps2: eps,
            eps3: eps,
        }
    }

    fn validate(&self) -> Result<()> {
        for (name, v) in [("ε₁", self.eps1), ("ε₂", self.eps2), ("ε₃", self.eps3)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(DataError::Invalid(format!(
                    "smoothing constant {name} must be finite and ≥ 0, got {v}"
                )));
            }
        }
        Ok(())
    }
}

impl Default for Smoothing {
    /// ε₁ = ε₂ = ε₃ = 1.
    fn default() -> Self {
        Smoothing::uniform(1.0)
    }
}

/// An n-gram language model of order 1, 2 or 3 with D2L 8.3's Laplace smoothing.
///
/// The vocabulary is every distinct training token plus `<unk>`, which stands for every
/// token not seen in training (count 0), so m = distinct training tokens + 1 and each
/// distribution sums to 1 over those m types. For that, the context counts n(x) and
/// n(x, x′) in the denominators are the number of times x (or x, x′) is *followed* by a
/// token in the training text — the unigram (bigram) count, less one for the corpus's last
/// token (pair). A context never seen, with ε = 0, falls back to the lower-order estimate.
#[derive(Debug, Clone)]
pub struct LaplaceLm {
    order: usize,
    eps: Smoothing,
    ids: HashMap<String, u32>,
    n: usize,
    uni: Vec<usize>,
    ctx1: Vec<usize>,
    bi: HashMap<(u32, u32), usize>,
    ctx2: HashMap<(u32, u32), usize>,
    tri: HashMap<(u32, u32, u32), usize>,
}

impl LaplaceLm {
    /// Counts the training tokens and builds a model of `order` (1, 2 or 3).
    pub fn fit<S: AsRef<str>>(tokens: &[S], order: usize, eps: Smoothing) -> Result<LaplaceLm> {
        if !(1..=3).contains(&order) {
            return Err(DataError::Invalid(format!(
                "n-gram model order must be 1, 2 or 3, got {order}"
            )));
        }
        eps.validate()?;
        if tokens.is_empty() {
            return Err(DataError::Invalid(
                "an n-gram model needs at least one training token".into(),
            ));
        }
        let mut ids: HashMap<String, u32> = HashMap::new();
        let seq: Vec<u32> = tokens
            .iter()
            .map(|t| {
                let next = ids.len() as u32;
                *ids.entry(t.as_ref().to_string()).or_insert(next)
            })
            .collect();
        let m = ids.len() + 1; // + <unk>
        let mut uni = vec![0usize; m];
        let mut ctx1 = vec![0usize; m];
        for &x in &seq {
            uni[x as usize] += 1;
        }
        let mut bi = HashMap::new();
        let mut ctx2 = HashMap::new();
        let mut tri = HashMap::new();
        for w in seq.windows(2) {
            ctx1[w[0] as usize] += 1;
            *bi.entry((w[0], w[1])).or_insert(0) += 1;
        }
        for w in seq.windows(3) {
            *ctx2.entry((w[0], w[1])).or_insert(0) += 1;
            *tri.entry((w[0], w[1], w[2])).or_insert(0) += 1;
        }
        Ok(LaplaceLm {
            order,
            eps,
            ids,
            n: seq.len(),
            uni,
            ctx1,
            bi,
            ctx2,
            tri,
        })
    }

    /// The model's order (1 = unigram, 2 = bigram, 3 = trigram).
    pub fn order(&self) -> usize {
        self.order
    }

    /// The smoothing constants.
    pub fn smoothing(&self) -> Smoothing {
        self.eps
    }

    /// The vocabulary size m: distinct training tokens plus `<unk>`.
    pub fn vocab_size(&self) -> usize {
        self.ids.len() + 1
    }

    /// The number of training tokens n.
    pub fn num_tokens(&self) -> usize {
        self.n
    }

    fn id(&self, token: &str) -> u32 {
        match self.ids.get(token) {
            Some(&i) => i,
            None => self.ids.len() as u32, // <unk>
        }
    }

    fn p1(&self, x: u32) -> f64 {
        let m = self.vocab_size() as f64;
        let e = self.eps.eps1;
        let den = self.n as f64 + e;
        (self.uni[x as usize] as f64 + e / m) / den
    }

    fn p2(&self, x: u32, y: u32) -> f64 {
        let e = self.eps.eps2;
        let den = self.ctx1[x as usize] as f64 + e;
        if den == 0.0 {
            return self.p1(y);
        }
        let c = self.bi.get(&(x, y)).copied().unwrap_or(0) as f64;
        (c + e * self.p1(y)) / den
    }

    fn p3(&self, x: u32, y: u32, z: u32) -> f64 {
        let e = self.eps.eps3;
        let den = self.ctx2.get(&(x, y)).copied().unwrap_or(0) as f64 + e;
        if den == 0.0 {
            return self.p2(y, z);
        }
        let c = self.tri.get(&(x, y, z)).copied().unwrap_or(0) as f64;
        (c + e * self.p1(z)) / den
    }

    /// P̂(x) = (n(x) + ε₁/m) / (n + ε₁). An unseen token (or `"<unk>"`) has n(x) = 0.
    pub fn unigram_prob(&self, x: &str) -> f64 {
        self.p1(self.id(x))
    }

    /// P̂(x′ | x) = (n(x, x′) + ε₂ P̂(x′)) / (n(x) + ε₂).
    pub fn bigram_prob(&self, x: &str, next: &str) -> f64 {
        self.p2(self.id(x), self.id(next))
    }

    /// P̂(x″ | x, x′) = (n(x, x′, x″) + ε₃ P̂(x″)) / (n(x, x′) + ε₃) — the book's form,
    /// whose prior is the unigram P̂(x″).
    pub fn trigram_prob(&self, x: &str, y: &str, next: &str) -> f64 {
        self.p3(self.id(x), self.id(y), self.id(next))
    }

    /// The probability of `token` after `context`, using the last `order − 1` context
    /// tokens (fewer at the start of a text).
    pub fn prob<S: AsRef<str>>(&self, context: &[S], token: &str) -> f64 {
        let ids: Vec<u32> = context.iter().map(|t| self.id(t.as_ref())).collect();
        self.prob_ids(&ids, self.id(token))
    }

    fn prob_ids(&self, context: &[u32], z: u32) -> f64 {
        let k = context.len().min(self.order - 1);
        let c = &context[context.len() - k..];
        match c {
            [] => self.p1(z),
            [y] => self.p2(*y, z),
            [x, y] => self.p3(*x, *y, z),
            _ => unreachable!("order ≤ 3"),
        }
    }

    /// The mean natural-log probability per token of a text, each token conditioned on
    /// the `order − 1` tokens before it within the text. Empty text is an error.
    pub fn mean_log_prob<S: AsRef<str>>(&self, tokens: &[S]) -> Result<f64> {
        if tokens.is_empty() {
            return Err(DataError::Invalid(
                "perplexity of an empty text is undefined".into(),
            ));
        }
        let ids: Vec<u32> = tokens.iter().map(|t| self.id(t.as_ref())).collect();
        let sum: f64 = (0..ids.len())
            .map(|t| self.prob_ids(&ids[..t], ids[t]).ln())
            .sum();
        Ok(sum / ids.len() as f64)
    }

    /// The perplexity exp(−mean log P) of a text (D2L 8.4.4); infinite when some token
    /// has probability 0 (possible only with ε₁ = 0).
    pub fn perplexity<S: AsRef<str>>(&self, tokens: &[S]) -> Result<f64> {
        Ok((-self.mean_log_prob(tokens)?).exp())
    }

    /// Whether `token` was seen in training.
    pub fn knows(&self, token: &str) -> bool {
        self.ids.contains_key(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    #[test]
    fn counts_keep_first_seen_order_on_ties() {
        let c = NGramCounts::new(&words("b a b a c"), 1).unwrap();
        let keys: Vec<&str> = c.freqs().iter().map(|f| f.0[0].as_str()).collect();
        assert_eq!(keys, ["b", "a", "c"]);
        assert_eq!(c.total(), 5);
        assert_eq!(c.singletons(), 1);
        let t = NGramCounts::new(&words("a b"), 3).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.total(), 0);
        assert!(NGramCounts::new(&words("a"), 0).is_err());
    }

    #[test]
    fn every_conditional_sums_to_one() {
        let toks = words("a b a c a b b c a a b");
        let lm = LaplaceLm::fit(&toks, 3, Smoothing::uniform(0.5)).unwrap();
        let vocab = ["a", "b", "c", "<unk>"];
        let s1: f64 = vocab.iter().map(|w| lm.unigram_prob(w)).sum();
        assert!((s1 - 1.0).abs() < 1e-12);
        for x in vocab {
            let s2: f64 = vocab.iter().map(|w| lm.bigram_prob(x, w)).sum();
            assert!((s2 - 1.0).abs() < 1e-12, "{x}: {s2}");
            for y in vocab {
                let s3: f64 = vocab.iter().map(|w| lm.trigram_prob(x, y, w)).sum();
                assert!((s3 - 1.0).abs() < 1e-12, "{x} {y}: {s3}");
            }
        }
    }
}
