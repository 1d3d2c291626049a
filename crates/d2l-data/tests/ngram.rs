//! N-gram statistics and models (D2L 8.3) on *The Time Machine*: the book's printed
//! unigram, bigram and trigram counts, Zipf's law, and Laplace-smoothed n-gram models
//! scored by perplexity on held-out text; plus the formulas on small inputs.

use d2l_data::ngram::{
    char_corpus, split_held_out, word_corpus, zipf_exponent, LaplaceLm, NGramCounts, Smoothing,
};
use d2l_data::text::read_time_machine;
use std::path::PathBuf;

fn time_machine() -> Option<PathBuf> {
    d2l_testkit::shared_path_or_skip("timemachine/timemachine.txt")
}

fn top(c: &NGramCounts, k: usize) -> Vec<(String, usize)> {
    c.top(k).iter().map(|(g, n)| (g.join(" "), *n)).collect()
}

#[test]
fn frequency_tables_match_the_book() {
    let Some(path) = time_machine() else { return };
    let lines = read_time_machine(&path).unwrap();
    let corpus = word_corpus(&lines);
    assert_eq!(corpus.len(), 32775, "word tokens of the Time Machine");
    let uni = NGramCounts::new(&corpus, 1).unwrap();
    // The book (8.3): [('the', 2261), ('i', 1267), ('and', 1245), ('of', 1155), ('a', 816),
    // ('to', 695), ('was', 552), ('in', 541), ('that', 443), ('my', 440)]
    let want = [
        ("the", 2261),
        ("i", 1267),
        ("and", 1245),
        ("of", 1155),
        ("a", 816),
        ("to", 695),
        ("was", 552),
        ("in", 541),
        ("that", 443),
        ("my", 440),
    ];
    let got = top(&uni, 10);
    for ((g, n), (w, m)) in got.iter().zip(want) {
        assert_eq!((g.as_str(), *n), (w, m), "unigram table {got:?}");
    }
    let bi = NGramCounts::new(&corpus, 2).unwrap();
    assert_eq!(bi.count(&["of", "the"]), 309);
    assert_eq!(top(&bi, 1)[0], ("of the".to_string(), 309));
    assert_eq!(bi.count(&["in", "the"]), 169);
    let tri = NGramCounts::new(&corpus, 3).unwrap();
    assert_eq!(tri.count(&["the", "time", "traveller"]), 59);
    assert_eq!(top(&tri, 1)[0], ("the time traveller".to_string(), 59));
    assert_eq!(tri.total(), corpus.len() - 2);

    // Zipf: frequencies fall off as a power of the rank, more slowly for longer n-grams.
    let a1 = zipf_exponent(&uni.counts_by_rank(), 10, 1000).unwrap();
    let a2 = zipf_exponent(&bi.counts_by_rank(), 10, 1000).unwrap();
    let a3 = zipf_exponent(&tri.counts_by_rank(), 10, 1000).unwrap();
    assert!(a1 > 0.8 && a1 < 1.3, "unigram α = {a1}");
    assert!(a1 > a2 && a2 > a3, "α: {a1} {a2} {a3}");
    // Most bigrams and trigrams are seen only once.
    assert!(tri.singletons() as f64 > 0.8 * tri.len() as f64);
}

#[test]
fn longer_contexts_help_on_held_out_text() {
    let Some(path) = time_machine() else { return };
    let lines = read_time_machine(&path).unwrap();
    let corpus = word_corpus(&lines);
    let (train, test) = split_held_out(&corpus, 0.1).unwrap();
    assert_eq!(test.len(), 3278);
    let ppl = |eps: Smoothing| -> Vec<f64> {
        (1..=3)
            .map(|n| {
                LaplaceLm::fit(train, n, eps)
                    .unwrap()
                    .perplexity(test)
                    .unwrap()
            })
            .collect()
    };
    // ε = 1: a unigram model of English words sits in the hundreds to a thousand (the
    // held-out words never seen in training all share the tiny <unk> mass); the bigram
    // model, trusting contexts seen once or twice, does worse.
    let p1 = ppl(Smoothing::default());
    assert!(p1[0] > 200.0 && p1[0] < 1500.0, "{p1:?}");
    assert!(p1[1] > p1[0], "{p1:?}");
    // Heavier smoothing lets the context help.
    let p100 = ppl(Smoothing::uniform(100.0));
    assert!(p100[1] < p100[0] && p100[1] < p1[0], "{p100:?}");
    // ε₂, ε₃ → ∞ pulls every order back to the unigram model.
    let flat = ppl(Smoothing {
        eps1: 1.0,
        eps2: 1e12,
        eps3: 1e12,
    });
    for p in &flat {
        assert!((p / p1[0] - 1.0).abs() < 1e-3, "{flat:?} vs {}", p1[0]);
    }

    // Characters: a trigram model is far better than a unigram one (~28 symbols).
    let chars = char_corpus(&lines);
    assert_eq!(chars.len(), 170580);
    let (ctrain, ctest) = split_held_out(&chars, 0.1).unwrap();
    let c1 = LaplaceLm::fit(ctrain, 1, Smoothing::default())
        .unwrap()
        .perplexity(ctest)
        .unwrap();
    let c3 = LaplaceLm::fit(ctrain, 3, Smoothing::default())
        .unwrap()
        .perplexity(ctest)
        .unwrap();
    let c2 = LaplaceLm::fit(ctrain, 2, Smoothing::default())
        .unwrap()
        .perplexity(ctest)
        .unwrap();
    assert!(c1 > 15.0 && c1 < 28.0, "{c1}");
    assert!(c3 < c2 && c2 < 0.7 * c1, "{c1} {c2} {c3}");
}

#[test]
fn laplace_formulas_by_hand() {
    // "a b a b c": n = 5, types a b c + <unk>: m = 4.
    let toks = ["a", "b", "a", "b", "c"];
    let lm = LaplaceLm::fit(
        &toks,
        3,
        Smoothing {
            eps1: 2.0,
            eps2: 3.0,
            eps3: 5.0,
        },
    )
    .unwrap();
    assert_eq!((lm.vocab_size(), lm.num_tokens()), (4, 5));
    let p1 = |c: f64| (c + 2.0 / 4.0) / (5.0 + 2.0);
    assert!((lm.unigram_prob("a") - p1(2.0)).abs() < 1e-12);
    assert!((lm.unigram_prob("zzz") - p1(0.0)).abs() < 1e-12);
    // n(a, b) = 2, a is followed by a token twice.
    let p2 = (2.0 + 3.0 * p1(2.0)) / (2.0 + 3.0);
    assert!((lm.bigram_prob("a", "b") - p2).abs() < 1e-12);
    // c ends the text: it is followed by nothing, so P(·|c) is the unigram prior.
    assert!((lm.bigram_prob("c", "a") - p1(2.0)).abs() < 1e-12);
    // n(a, b, a) = 1, n(a, b, ·) = 2.
    let p3 = (1.0 + 5.0 * p1(2.0)) / (2.0 + 5.0);
    assert!((lm.trigram_prob("a", "b", "a") - p3).abs() < 1e-12);
    assert!((lm.prob(&["x", "a", "b"], "a") - p3).abs() < 1e-12);
    // Perplexity of "a b": −(ln P(a) + ln P(b|a)) / 2.
    let want = (-(p1(2.0).ln() + p2.ln()) / 2.0).exp();
    assert!((lm.perplexity(&["a", "b"]).unwrap() - want).abs() < 1e-9);

    // No smoothing: an unseen token has probability 0 and the perplexity is infinite;
    // an unseen context falls back to the lower order instead of dividing by zero.
    let raw = LaplaceLm::fit(&toks, 2, Smoothing::uniform(0.0)).unwrap();
    assert_eq!(raw.unigram_prob("zzz"), 0.0);
    assert!(raw.perplexity(&["a", "zzz"]).unwrap().is_infinite());
    assert!((raw.bigram_prob("c", "a") - 0.4).abs() < 1e-12);
}

#[test]
fn bad_input_is_an_error() {
    let toks = ["a", "b"];
    assert!(LaplaceLm::fit(&toks, 0, Smoothing::default()).is_err());
    assert!(LaplaceLm::fit(&toks, 4, Smoothing::default()).is_err());
    assert!(LaplaceLm::fit(&[] as &[&str], 1, Smoothing::default()).is_err());
    assert!(LaplaceLm::fit(&toks, 1, Smoothing::uniform(-1.0)).is_err());
    assert!(LaplaceLm::fit(&toks, 1, Smoothing::uniform(f64::NAN)).is_err());
    let lm = LaplaceLm::fit(&toks, 1, Smoothing::default()).unwrap();
    let err = lm.perplexity(&[] as &[&str]).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    assert!(split_held_out(&toks, 0.0).is_err());
    assert!(split_held_out(&toks, 1.0).is_err());
    assert!(
        split_held_out(&toks, 0.1).is_err(),
        "rounds to 0 held-out tokens"
    );
    assert_eq!(
        split_held_out(&[1, 2, 3, 4], 0.25).unwrap(),
        (&[1, 2, 3][..], &[4][..])
    );
    assert_eq!(zipf_exponent(&[5], 1, 10), None);
    // n_i = 120 / i exactly: α = 1.
    let z = zipf_exponent(&[120, 60, 40, 30], 1, 4).unwrap();
    assert!((z - 1.0).abs() < 1e-12, "{z}");
}
