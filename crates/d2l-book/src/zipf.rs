//! D2L 8.2–8.3 (text preprocessing, language models): the word and character corpora of
//! *The Time Machine*, its unigram, bigram and trigram frequency tables, the Zipf plot
//! (log frequency against log rank for 1-, 2- and 3-grams), and n-gram language models
//! with the section's Laplace smoothing, scored by perplexity on the last part of the
//! text held out from training.

use crate::{plot_spec, save_plot, series, Common, ExperimentError, Result};
use d2l_data::hub::DataHub;
use d2l_data::ngram::{
    char_corpus, split_held_out, word_corpus, zipf_exponent, LaplaceLm, NGramCounts, Smoothing,
};
use d2l_data::text::read_time_machine;
use d2l_train::plot::PlotSpec;
use std::fmt;
use std::path::{Path, PathBuf};

/// The book's printed counts of D2L 8.3 (PyTorch notebook) for `n`-grams, most frequent
/// first: the ten most frequent words for `n = 1`, the top bigram and trigram for 2 and 3;
/// from the data file of the book's numbers (`crates/d2l-book/reproduce.toml`, values
/// named `<n>gram:<tokens>`).
pub fn book_top(n: usize) -> Vec<(String, usize)> {
    let prefix = format!("{n}gram:");
    crate::reproduce::sections()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.key() == "8.3-ngrams")
        .flat_map(|s| s.metric)
        .filter_map(|m| {
            let tok = m.name.strip_prefix(&prefix)?;
            Some((tok.to_string(), m.book as usize))
        })
        .collect()
}

/// Settings of [`run_zipf`].
#[derive(Debug, Clone)]
pub struct ZipfOptions {
    /// Where the text comes from (`timemachine/timemachine.txt`).
    pub hub: DataHub,
    /// How many of the most frequent n-grams to list (10, as the book).
    pub top: usize,
    /// The fraction of each corpus held out (its end) to measure perplexity (0.1).
    pub held_out: f64,
    /// The ε values tried (ε₁ = ε₂ = ε₃ = each): 0.01, 0.1, 1, 10, 100, 1000, 10000.
    pub epsilons: Vec<f64>,
    /// The ranks over which Zipf's exponent is fitted, 1-based inclusive ((10, 1000): the
    /// book notes the first few words break the law).
    pub zipf_ranks: (usize, usize),
    /// The settings every experiment has ([`Common`]): no seed (Zipf counts words); the
    /// folder for `zipf-unigram` and `zipf`; `quiet`.
    pub common: Common,
}

impl Default for ZipfOptions {
    fn default() -> Self {
        ZipfOptions {
            hub: DataHub::from_env(),
            top: 10,
            held_out: 0.1,
            epsilons: vec![0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0],
            zipf_ranks: (10, 1000),
            common: Common::default(),
        }
    }
}

/// The statistics of one n-gram order.
#[derive(Debug, Clone)]
pub struct NGramSummary {
    /// The order n.
    pub n: usize,
    /// The most frequent n-grams, tokens joined by a space, with their counts.
    pub top: Vec<(String, usize)>,
    /// The number of n-gram occurrences.
    pub total: usize,
    /// The number of distinct n-grams.
    pub distinct: usize,
    /// The number of n-grams seen exactly once.
    pub singletons: usize,
    /// The fitted Zipf exponent α (n_i ∝ i^−α) over the options' ranks.
    pub zipf_alpha: Option<f64>,
}

/// The held-out perplexity of the unigram, bigram and trigram models for one ε.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerplexityRow {
    /// ε₁ = ε₂ = ε₃.
    pub eps: f64,
    /// Perplexity of the order-1, 2 and 3 models.
    pub ppl: [f64; 3],
}

/// The perplexity table of one corpus (words or characters).
#[derive(Debug, Clone)]
pub struct PerplexityTable {
    /// `"word"` or `"char"`.
    pub corpus: &'static str,
    /// Training tokens.
    pub n_train: usize,
    /// Held-out tokens.
    pub n_test: usize,
    /// The vocabulary size m of the models (training types + `<unk>`).
    pub vocab: usize,
    /// Held-out tokens never seen in training.
    pub unseen: usize,
    /// One row per ε.
    pub rows: Vec<PerplexityRow>,
}

impl PerplexityTable {
    /// The lowest perplexity of each order over the ε tried, with its ε.
    pub fn best(&self) -> [(f64, f64); 3] {
        let mut best = [(f64::INFINITY, f64::NAN); 3];
        for r in &self.rows {
            for (b, &p) in best.iter_mut().zip(&r.ppl) {
                if p < b.0 {
                    *b = (p, r.eps);
                }
            }
        }
        best
    }
}

/// What [`run_zipf`] returns.
#[derive(Debug, Clone)]
pub struct ZipfResults {
    /// Lines of the text (3221).
    pub lines: usize,
    /// Word tokens.
    pub word_tokens: usize,
    /// Character tokens (170580).
    pub char_tokens: usize,
    /// Unigram, bigram and trigram statistics of the word corpus.
    pub ngrams: Vec<NGramSummary>,
    /// The word-level and character-level perplexity tables.
    pub perplexity: Vec<PerplexityTable>,
    /// The plots written (PNG).
    pub plots: Vec<PathBuf>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

fn perplexity_table(
    corpus: &'static str,
    tokens: &[String],
    held_out: f64,
    epsilons: &[f64],
) -> Result<PerplexityTable> {
    let (train, test) = split_held_out(tokens, held_out)?;
    let mut rows = Vec::with_capacity(epsilons.len());
    let mut vocab = 0;
    let mut unseen = 0;
    for &eps in epsilons {
        let mut ppl = [0.0; 3];
        for (n, p) in ppl.iter_mut().enumerate() {
            let lm = LaplaceLm::fit(train, n + 1, Smoothing::uniform(eps))?;
            vocab = lm.vocab_size();
            unseen = test.iter().filter(|t| !lm.knows(t)).count();
            *p = lm.perplexity(test)?;
        }
        rows.push(PerplexityRow { eps, ppl });
    }
    Ok(PerplexityTable {
        corpus,
        n_train: train.len(),
        n_test: test.len(),
        vocab,
        unseen,
        rows,
    })
}

/// Runs D2L 8.2–8.3 on the text fetched through `opts.hub`.
pub fn run_zipf(opts: &ZipfOptions) -> Result<ZipfResults> {
    let path = opts.hub.fetch("timemachine/timemachine.txt")?;
    run_zipf_on(&path, opts)
}

/// Runs D2L 8.2–8.3 on the text file at `path` (any text; *The Time Machine* for the
/// book's numbers): frequency tables, Zipf fits and plots, perplexity tables.
pub fn run_zipf_on(path: &Path, opts: &ZipfOptions) -> Result<ZipfResults> {
    if opts.epsilons.is_empty() {
        return Err(ExperimentError::Invalid(
            "give at least one smoothing ε".into(),
        ));
    }
    let start = std::time::Instant::now();
    let lines = read_time_machine(path)?;
    let words = word_corpus(&lines);
    let chars = char_corpus(&lines);
    if words.len() < 3 {
        return Err(ExperimentError::Invalid(format!(
            "{}: the text has {} words; n-gram statistics need at least 3",
            path.display(),
            words.len()
        )));
    }
    let mut ngrams = Vec::new();
    let mut by_rank = Vec::new();
    for n in 1..=3 {
        let c = NGramCounts::new(&words, n)?;
        let counts = c.counts_by_rank();
        ngrams.push(NGramSummary {
            n,
            top: c
                .top(opts.top)
                .iter()
                .map(|(g, k)| (g.join(" "), *k))
                .collect(),
            total: c.total(),
            distinct: c.len(),
            singletons: c.singletons(),
            zipf_alpha: zipf_exponent(&counts, opts.zipf_ranks.0, opts.zipf_ranks.1),
        });
        by_rank.push(counts);
    }
    opts.common.progress(|| {
        format!(
            "{} lines, {} words, {} characters; counting n-gram models",
            lines.len(),
            words.len(),
            chars.len()
        )
    });
    let perplexity = vec![
        perplexity_table("word", &words, opts.held_out, &opts.epsilons)?,
        perplexity_table("char", &chars, opts.held_out, &opts.epsilons)?,
    ];

    let dir = opts.common.dir();
    let rank_series = |label: &str, counts: &[usize]| {
        series(
            label,
            (1..=counts.len()).map(|r| r as f64).collect(),
            counts.iter().map(|&c| c as f64).collect(),
        )
    };
    let spec = |title: &str| PlotSpec {
        log_x: true,
        log_y: true,
        ..plot_spec(title, "token: x (rank)", "frequency: n(x)")
    };
    let mut plots = Vec::new();
    plots.extend(save_plot(
        dir,
        "zipf-unigram",
        &spec("8.3 word frequency against rank"),
        &[rank_series("unigram", &by_rank[0])],
        false,
    )?);
    let all: Vec<_> = ["unigram", "bigram", "trigram"]
        .iter()
        .zip(&by_rank)
        .map(|(l, c)| rank_series(l, c))
        .collect();
    plots.extend(save_plot(
        dir,
        "zipf",
        &spec("8.3 Zipf's law for 1-, 2- and 3-grams"),
        &all,
        false,
    )?);
    Ok(ZipfResults {
        lines: lines.len(),
        word_tokens: words.len(),
        char_tokens: chars.len(),
        ngrams,
        perplexity,
        plots,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// A Python-style list of (n-gram, count) pairs as the book prints `token_freqs[:10]`.
fn python_list(n: usize, top: &[(String, usize)]) -> String {
    let items: Vec<String> = top
        .iter()
        .map(|(g, c)| {
            if n == 1 {
                format!("('{g}', {c})")
            } else {
                let parts: Vec<String> = g.split(' ').map(|w| format!("'{w}'")).collect();
                format!("(({}), {c})", parts.join(", "))
            }
        })
        .collect();
    format!("[{}]", items.join(", "))
}

impl fmt::Display for ZipfResults {
    /// The book's frequency lists, our counts beside its, the Zipf fits and the
    /// perplexity tables.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "D2L 8.2–8.3 on The Time Machine: {} lines, {} word tokens, {} character tokens",
            self.lines, self.word_tokens, self.char_tokens
        )?;
        let book = book_top(1);
        for s in &self.ngrams {
            let name = ["unigrams", "bigrams", "trigrams"][s.n - 1];
            writeln!(
                f,
                "{name}: {} occurrences, {} distinct, {} seen once, Zipf α ≈ {}",
                s.total,
                s.distinct,
                s.singletons,
                s.zipf_alpha
                    .map_or("n/a".to_string(), |a| format!("{a:.3}"))
            )?;
            writeln!(f, "  {}", python_list(s.n, &s.top))?;
            match s.n {
                1 => writeln!(f, "  book: {}", python_list(1, &book))?,
                n => {
                    let what = if n == 2 { "bigram" } else { "trigram" };
                    if let Some((tok, count)) = book_top(n).first() {
                        writeln!(f, "  book: top {what} {tok:?} {count}")?;
                    }
                }
            }
        }
        for t in &self.perplexity {
            writeln!(
                f,
                "{}-level n-gram models with Laplace smoothing (ε₁ = ε₂ = ε₃ = ε): trained on \
                 the first {} tokens, perplexity on the last {} ({} unseen in training), m = {}",
                t.corpus, t.n_train, t.n_test, t.unseen, t.vocab
            )?;
            writeln!(
                f,
                "  {:>8} {:>10} {:>10} {:>10}",
                "ε", "unigram", "bigram", "trigram"
            )?;
            for r in &t.rows {
                writeln!(
                    f,
                    "  {:>8} {:>10.2} {:>10.2} {:>10.2}",
                    r.eps, r.ppl[0], r.ppl[1], r.ppl[2]
                )?;
            }
            let b = t.best();
            writeln!(
                f,
                "  best: unigram {:.2} (ε = {}), bigram {:.2} (ε = {}), trigram {:.2} (ε = {})",
                b[0].0, b[0].1, b[1].0, b[1].1, b[2].0, b[2].1
            )?;
        }
        for p in &self.plots {
            writeln!(f, "plot: {}", p.display())?;
        }
        write!(f, "({:.1} s)", self.seconds)
    }
}
