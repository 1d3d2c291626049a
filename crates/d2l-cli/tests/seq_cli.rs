//! `d2l train char-*` end to end on a few epochs: the book's closing lines, the JSON
//! summary with perplexity and tokens/s, the run directory, `d2l models`, and one-line
//! errors for flags that do not apply.

use std::process::Output;

mod common;
use common::{assert_run_files, out_err as text, shared_data};

fn d2l(args: &[&str]) -> Output {
    common::d2l(args, &std::env::temp_dir().join("d2l-seq-cli-test-cache"))
}

#[test]
fn char_models_are_listed() {
    let o = d2l(&["models"]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    for name in ["char-rnn-scratch", "char-rnn", "char-gru", "char-lstm"] {
        assert!(out.contains(name), "{name} missing from:\n{out}");
    }
    assert!(out.contains("batch 32 steps 35 hidden 512 sgd lr 1 clip 1, 500 epochs"));
}

#[test]
fn train_char_models_briefly() {
    let Some(data) = shared_data("timemachine/timemachine.txt") else {
        eprintln!("skipping: ../shared/data/timemachine/timemachine.txt is not present");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (model, extra) in [
        ("char-rnn", vec![]),
        ("char-gru", vec!["--random-iter"]),
        ("char-lstm", vec![]),
        ("char-rnn-scratch", vec!["--num-hiddens", "64"]),
    ] {
        let out_dir = dir.path().join(model);
        let mut args = vec![
            "train",
            model,
            "--epochs",
            "3",
            "--max-tokens",
            "2000",
            "--num-steps",
            "10",
            "--batch-size",
            "8",
            "--threads",
            "2",
            "--json",
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ];
        args.extend(extra.iter().copied());
        let o = d2l(&args);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{model}: {err}");
        assert!(out.contains("tokens/sec on cpu"), "{out}");
        assert!(
            out.lines().any(|l| l.starts_with("time traveller")),
            "{out}"
        );
        assert!(out.lines().any(|l| l.starts_with("traveller")), "{out}");
        // Epoch 1 is logged with a sample even when stderr is not a terminal.
        assert!(err.contains("epoch    1: perplexity"), "{err}");
        let j: serde_json::Value =
            serde_json::from_str(out.lines().last().unwrap()).expect("last line is JSON");
        assert_eq!(j["model"], model);
        assert_eq!(j["epochs_run"], 3);
        assert_eq!(
            j["random_iter"],
            !extra.is_empty() && extra[0] == "--random-iter"
        );
        let ppl = j["perplexity"].as_f64().unwrap();
        // An untrained model's perplexity is about the vocabulary size, 28: three short
        // epochs must have learned something (13–18 here, seed 0).
        assert!(ppl > 1.0 && ppl < 22.0, "{model}: perplexity {ppl}");
        assert!(j["tokens_per_sec"].as_f64().unwrap() > 0.0);
        assert_run_files(
            &out_dir,
            &[
                "config.json",
                "metrics.csv",
                "curves.png",
                "model.safetensors",
                "summary.json",
            ],
        );
    }
}

#[test]
fn flags_that_do_not_apply_are_one_line_errors() {
    for (args, needle) in [
        (
            vec!["train", "char-rnn", "--momentum", "0.9"],
            "--momentum does not apply",
        ),
        (
            vec!["train", "char-gru", "--num-steps", "0"],
            "--num-steps must be at least 1",
        ),
        (
            vec!["train", "char-lstm", "--lr", "-1"],
            "--lr must be a positive number",
        ),
        (
            vec!["train", "char-rnn", "--dataset", "mnist"],
            "time-machine text only",
        ),
    ] {
        let o = d2l(&args);
        let (_, err) = text(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(!err.contains("panicked"));
    }
}
