//! D2L 8.2–8.3, *Text Preprocessing* and *Language Models and the Dataset*: the word
//! corpus of *The Time Machine*, its unigram, bigram and trigram frequency tables (the
//! book prints `the` 2261, `of the` 309, `the time traveller` 59), the Zipf plot, and
//! n-gram models with the section's Laplace smoothing scored by perplexity on the last
//! 10% of the text. `d2l zipf` runs the same from the library with a grid of ε.
//!
//! Run (from the repo root):
//! `cargo run --release -p d2l --example language_models -- --data-dir ../shared/data`
//!
//! Options: `--data-dir DIR` (where `timemachine/timemachine.txt` lives; the data hub
//! also reads `D2L_DATA_DIR` and its cache, and downloads when online), `--out DIR` (the
//! Zipf plot; default `runs/language_models`).

#[path = "common/hub_out.rs"]
mod hub_out;

use d2l::data::ngram::{split_held_out, word_corpus, LaplaceLm, NGramCounts, Smoothing};
use d2l::data::text::read_time_machine;
use d2l::train::plot::{save_line_plot, PlotSpec, Series};
use hub_out::hub_and_out;
use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let (hub, out) = hub_and_out("runs/language_models");
    let lines = read_time_machine(hub.fetch("timemachine/timemachine.txt")?)?;
    println!("# text lines: {}", lines.len());

    // corpus = [token for line in tokens for token in line]; vocab.token_freqs[:10]
    let corpus = word_corpus(&lines);
    let show = |c: &NGramCounts| {
        let v: Vec<String> = c
            .top(10)
            .iter()
            .map(|(g, n)| format!("({:?}, {n})", g.join(" ")))
            .collect();
        println!("{}-grams: [{}]", c.n(), v.join(", "));
    };
    let tables: Vec<NGramCounts> = (1..=3)
        .map(|n| NGramCounts::new(&corpus, n))
        .collect::<Result<_, _>>()?;
    for t in &tables {
        show(t);
    }
    println!(
        "book: the 2261, of the {}, the time traveller {}; ours: {}, {}, {}",
        309,
        59,
        tables[0].count(&["the"]),
        tables[1].count(&["of", "the"]),
        tables[2].count(&["the", "time", "traveller"])
    );

    // d2l.plot([freqs, bigram_freqs, trigram_freqs], xscale='log', yscale='log')
    let series: Vec<Series> = ["unigram", "bigram", "trigram"]
        .iter()
        .zip(&tables)
        .map(|(name, t)| {
            let f = t.counts_by_rank();
            Series::new(
                *name,
                (1..=f.len()).map(|r| r as f64).collect(),
                f.iter().map(|&c| c as f64).collect(),
            )
        })
        .collect();
    let spec = PlotSpec {
        xlabel: "token: x".into(),
        ylabel: "frequency: n(x)".into(),
        log_x: true,
        log_y: true,
        ..Default::default()
    };
    let (png, _) = save_line_plot(&out.join("zipf"), &spec, &series)?;
    println!("plot: {}", png.display());

    // Laplace smoothing: P(x) = (n(x) + ε₁/m) / (n + ε₁), and so on up to trigrams.
    let (train, test) = split_held_out(&corpus, 0.1)?;
    for eps in [1.0, 100.0] {
        let ppl: Vec<String> = (1..=3)
            .map(|n| {
                let lm = LaplaceLm::fit(train, n, Smoothing::uniform(eps))?;
                Ok(format!("{:.1}", lm.perplexity(test)?))
            })
            .collect::<Result<_, d2l::data::DataError>>()?;
        println!(
            "ε = {eps}: held-out perplexity of the unigram, bigram, trigram models: {}",
            ppl.join(", ")
        );
    }
    Ok(())
}
