//! `train_ch8` on a tiny corpus: a small character RNN (concise and from scratch) overfits a
//! short repeated string within seconds, greedy generation reproduces it, and a run
//! directory gets its files.

use d2l_data::seq::SeqDataLoader;
use d2l_data::text::Vocab;
use d2l_models::rnn_lm::{find_char_model, predict_ch8, LanguageModel, RnnLm, RnnLmScratch};
use d2l_nn::rnn::RnnMode;
use d2l_nn::Module;
use d2l_train::run_dir::RunDir;
use d2l_train::tasks::language_model::{evaluate_perplexity, train_ch8, SeqTrainConfig};

fn tiny_corpus(random: bool) -> (SeqDataLoader, Vocab) {
    let text = "the time traveller was expounding a recondite matter to us ".repeat(12);
    let tokens: Vec<String> = text.chars().map(|c| c.to_string()).collect();
    let vocab = Vocab::new(tokens.iter(), 0, &[]);
    let corpus: Vec<usize> = tokens.iter().map(|t| vocab.to_index(t)).collect();
    let loader = SeqDataLoader::new(corpus, vocab.clone(), 8, 12, random, 0).unwrap();
    (loader, vocab)
}

fn cfg(epochs: usize, random: bool) -> SeqTrainConfig {
    SeqTrainConfig {
        epochs,
        lr: 1.0,
        use_random_iter: random,
        quiet: true,
        ..Default::default()
    }
}

#[test]
fn a_tiny_char_rnn_overfits_a_short_string() {
    let _seeded = d2l_testkit::seeded(0);
    let (mut loader, vocab) = tiny_corpus(false);
    let net = RnnLm::with_mode(RnnMode::RnnTanh, vocab.len(), 64).unwrap();
    let before = evaluate_perplexity(&net, &mut loader).unwrap();
    assert!(before > 10.0, "untrained perplexity {before}");
    let s = train_ch8(&net, &mut loader, &vocab, &cfg(60, false)).unwrap();
    assert_eq!(s.epochs.len(), 60);
    assert!(
        s.perplexity < 1.5,
        "perplexity fell from {before:.2} to only {:.2}",
        s.perplexity
    );
    assert!(s.epochs[0].perplexity > 3.0 * s.perplexity);
    assert!(s.tokens_per_sec > 0.0 && s.seconds > 0.0);
    assert_eq!(s.samples.len(), 2);
    assert!(s.samples[0].text.starts_with("time traveller"));
    assert_eq!(
        s.samples[0].text.chars().count(),
        "time traveller".len() + 50
    );
    let text = predict_ch8("the time trav", 20, &net, &vocab).unwrap();
    assert_eq!(text, "the time traveller was expounding", "{text}");
}

#[test]
fn gru_lstm_and_scratch_models_learn_too() {
    let _seeded = d2l_testkit::seeded(0);
    for name in ["char-gru", "char-lstm", "char-rnn-scratch"] {
        d2l_tensor::manual_seed(1);
        let (mut loader, vocab) = tiny_corpus(false);
        let info = find_char_model(name).unwrap();
        let hidden = if name == "char-rnn-scratch" { 128 } else { 48 };
        let net = info.build(vocab.len(), hidden).unwrap();
        let epochs = if name == "char-rnn-scratch" { 80 } else { 40 };
        let s = train_ch8(net.as_ref(), &mut loader, &vocab, &cfg(epochs, false)).unwrap();
        assert!(
            s.perplexity < 0.5 * s.epochs[0].perplexity && s.perplexity < 4.0,
            "{name}: perplexity {:.2} after {:.2}",
            s.perplexity,
            s.epochs[0].perplexity
        );
    }
}

#[test]
fn random_sampling_trains_with_a_fresh_state_per_batch() {
    let _seeded = d2l_testkit::seeded(2);
    let (mut loader, vocab) = tiny_corpus(true);
    let net = RnnLm::with_mode(RnnMode::RnnTanh, vocab.len(), 64).unwrap();
    let s = train_ch8(&net, &mut loader, &vocab, &cfg(40, true)).unwrap();
    assert!(
        s.perplexity < 0.5 * s.epochs[0].perplexity,
        "{:?}",
        s.perplexity
    );
}

#[test]
fn a_run_directory_gets_metrics_curves_weights_and_summary() {
    let _seeded = d2l_testkit::seeded(3);
    let dir = tempfile::tempdir().unwrap();
    let (mut loader, vocab) = tiny_corpus(false);
    let net = RnnLmScratch::new(vocab.len(), 16).unwrap();
    let run = RunDir::create(Some(dir.path().join("run")), "char-rnn-scratch").unwrap();
    let c = SeqTrainConfig {
        run_dir: Some(run.clone()),
        ..cfg(3, false)
    };
    train_ch8(&net, &mut loader, &vocab, &c).unwrap();
    let csv = std::fs::read_to_string(run.file("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(
        csv.starts_with("epoch,perplexity,train_loss,test_perplexity,tokens_per_sec,seconds\n"),
        "{csv}"
    );
    for f in [
        "checkpoint.safetensors",
        "curves.png",
        "curves.svg",
        "model.safetensors",
        "summary.json",
    ] {
        assert!(run.file(f).is_file(), "{f} missing");
    }
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["W_xh", "W_hh", "b_h", "W_hq", "b_q"]);
    // The book's parameter counts: 8.5 with 512 hidden units, 8.6 RNN(28, 256) + Linear.
    assert_eq!(
        RnnLmScratch::new(28, 512).unwrap().num_parameters(),
        291_356
    );
    let concise = RnnLm::with_mode(RnnMode::RnnTanh, 28, 256).unwrap();
    assert_eq!(concise.num_parameters(), 80_412);
    let names: Vec<String> = concise
        .named_parameters()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "rnn.weight_ih_l0",
            "rnn.weight_hh_l0",
            "rnn.bias_ih_l0",
            "rnn.bias_hh_l0",
            "linear.weight",
            "linear.bias"
        ]
    );
    assert_eq!(concise.vocab_size(), 28);
}
