//! `d2l reproduce`: the list, the cheap sections end to end, records from a finished run,
//! one-line errors; and, on the real data in ../shared/data (a skip line where it is
//! absent), `--quick` end to end with the headline numbers pinned to the book: softmax
//! 3.7 and MLP 4.3 test accuracy within 1.5 points (mean of 3 seeds), every house-price
//! fold within 0.002; char-RNN 8.6 perplexity within 5 %.

use std::path::{Path, PathBuf};

mod common;
use common::{d2l_offline as d2l, ok, stderr};

fn err(args: &[&str]) -> String {
    let o = d2l(args);
    assert_eq!(o.status.code(), Some(1), "{args:?} should fail");
    let e = stderr(&o);
    let last = e.trim().lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("error: "), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    last
}

/// Runs `d2l reproduce ARGS… --quiet` with its records and runs in a fresh temporary
/// folder; returns the folder, the records' folder and standard output.
fn reproduce(args: &[&str]) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let work = dir.path().join("work");
    let mut all = vec!["reproduce", "--quiet"];
    all.extend_from_slice(args);
    all.extend([
        "--records",
        rec.to_str().unwrap(),
        "--work",
        work.to_str().unwrap(),
    ]);
    let out = ok(&all);
    (dir, rec, out)
}

fn shared_data() -> Option<PathBuf> {
    common::shared_data("fashion_mnist").filter(|p| p.join("timemachine").is_dir())
}

/// The comparison rows a record's `reproduce.json` holds, by metric.
fn rows(record: &Path) -> Vec<(String, f64, f64, Option<bool>)> {
    let text = std::fs::read_to_string(record.join("reproduce.json")).unwrap();
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    j["comparison"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"].as_str().unwrap().to_string(),
                r["book"].as_f64().unwrap(),
                r["ours"].as_f64().unwrap(),
                r["within"].as_bool(),
            )
        })
        .collect()
}

#[test]
fn list_shows_every_section_with_its_expected_time() {
    let s = ok(&["reproduce", "--list"]);
    for key in [
        "3.7-softmax",
        "4.10-house-prices",
        "7.7-densenet",
        "8.6-char-rnn",
        "11.3-gd",
    ] {
        assert!(s.contains(key), "{key}: {s}");
    }
    assert!(s.contains("hours") && s.contains("--quick"), "{s}");
}

#[test]
fn bad_requests_are_one_line_errors() {
    assert!(err(&["reproduce"]).contains("name a section"));
    let e = err(&["reproduce", "99.9"]);
    assert!(e.contains("no book section `99.9`"), "{e}");
    assert!(err(&["reproduce", "4.4", "--seeds", "0"]).contains("--seeds"));
    assert!(err(&["reproduce", "7.7", "--quick"]).contains("quick"));
    let e = err(&["reproduce", "4.4", "--from-run", "nowhere"]);
    assert!(e.contains("experiment"), "{e}");
    let e = err(&["reproduce", "7.7", "--from-run", "/nonexistent/run"]);
    assert!(e.contains("summary.json"), "{e}");
    let e = err(&["reproduce", "7.6", "7.7", "--from-run", "/nonexistent/run"]);
    assert!(e.contains("exactly one"), "{e}");
}

#[test]
fn cheap_generated_data_sections_match_the_book_and_leave_records() {
    let (_dir, rec, s) = reproduce(&["4.4", "4.5", "8.1", "11.3", "13.10"]);
    assert!(
        s.contains("all 5 sections within the book's tolerances"),
        "{s}"
    );
    assert!(
        s.contains("book") && s.contains("ours") && s.contains("difference"),
        "{s}"
    );
    for key in [
        "4.4-poly",
        "4.5-weight-decay",
        "8.1-sequence",
        "11.3-gd",
        "13.10-transposed-conv",
    ] {
        let d = rec.join(key);
        for f in [
            "config.json",
            "metrics.csv",
            "summary.json",
            "reproduce.json",
        ] {
            assert!(d.join(f).is_file(), "{key}/{f}");
        }
        assert!(rows(&d).iter().all(|r| r.3 != Some(false)), "{key}");
    }
    assert!(rec.join("4.4-poly/curves.svg").is_file());
    // 11.3 to the book's printed digits.
    let gd = rows(&rec.join("11.3-gd"));
    assert_eq!(gd.len(), 9);
    assert!(gd.iter().all(|r| r.3 == Some(true)), "{gd:?}");
}

#[test]
fn a_finished_training_is_recorded_and_one_off_the_books_recipe_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let rec = dir.path().join("rec");
    // 3.3 at the book's recipe: the synthetic data needs no files.
    ok(&["train", "linreg", "--quiet", "--out", run.to_str().unwrap()]);
    let s = ok(&[
        "reproduce",
        "3.3",
        "--from-run",
        run.to_str().unwrap(),
        "--records",
        rec.to_str().unwrap(),
    ]);
    assert!(
        s.contains("3.3-linreg") && s.contains("within the book's tolerances"),
        "{s}"
    );
    let d = rec.join("3.3-linreg");
    let mut names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "config.json",
            "curves.svg",
            "metrics.csv",
            "reproduce.json",
            "summary.json"
        ]
    );
    // A run of another model, or with a changed recipe, is not the book's.
    let e = err(&["reproduce", "3.7", "--from-run", run.to_str().unwrap()]);
    assert!(e.contains("a run of `linreg`"), "{e}");
    let short = dir.path().join("short");
    ok(&[
        "train",
        "linreg",
        "--quiet",
        "--epochs",
        "1",
        "--out",
        short.to_str().unwrap(),
    ]);
    let e = err(&["reproduce", "3.3", "--from-run", short.to_str().unwrap()]);
    assert!(
        e.contains("not the book's recipe") && e.contains("epochs"),
        "{e}"
    );
}

#[test]
fn quick_sections_pass_and_softmax_and_mlp_are_within_1_5_points_of_the_book() {
    let Some(data) = shared_data() else {
        eprintln!("SKIP quick_sections_pass_and_softmax_and_mlp_are_within_1_5_points_of_the_book: ../shared/data not found");
        return;
    };
    // Every cheap section (3.7 and 4.3 with 3 seeds each), as CI would run it.
    let (_dir, rec, s) = reproduce(&["--quick", "--data-dir", data.to_str().unwrap()]);
    assert!(s.contains("within the book's tolerances"), "{s}");
    for key in [
        "3.3-linreg",
        "4.10-house-prices",
        "8.3-ngrams",
        "11.5-airfoil",
    ] {
        assert!(
            rows(&rec.join(key)).iter().all(|r| r.3 != Some(false)),
            "{key}"
        );
    }
    // House prices: every fold's validation log-RMSE within 0.002 of the book.
    let house = rows(&rec.join("4.10-house-prices"));
    let folds: Vec<_> = house
        .iter()
        .filter(|r| r.0.ends_with("_valid") && r.0.starts_with("fold"))
        .collect();
    assert_eq!(folds.len(), 5);
    for (name, book, ours, _) in folds {
        assert!(
            (ours - book).abs() <= 0.002,
            "{name}: {ours} vs the book's {book}"
        );
    }
    // The headline accuracies: the mean test accuracy of seeds 0–2 within 1.5 points.
    for (key, book) in [("3.7-softmax", 0.828), ("4.3-mlp", 0.838)] {
        let r = rows(&rec.join(key));
        let (_, b, ours, within) = r.iter().find(|r| r.0 == "test_acc").unwrap().clone();
        assert_eq!(b, book, "{key}");
        assert!(
            (ours - book).abs() <= 0.015,
            "{key}: mean test acc {ours}, book {book}"
        );
        assert_eq!(within, Some(true));
        let seeds = std::fs::read_to_string(rec.join(key).join("reproduce.json")).unwrap();
        let j: serde_json::Value = serde_json::from_str(&seeds).unwrap();
        assert_eq!(
            j["comparison"]["seeds"],
            serde_json::json!([0, 1, 2]),
            "{key}"
        );
    }
}

#[test]
fn char_rnn_perplexity_within_5_percent_of_the_book() {
    let Some(data) = shared_data() else {
        eprintln!(
            "SKIP char_rnn_perplexity_within_5_percent_of_the_book: ../shared/data not found"
        );
        return;
    };
    let (_dir, rec, _) = reproduce(&["8.6", "--data-dir", data.to_str().unwrap()]);
    let r = rows(&rec.join("8.6-char-rnn"));
    let (_, book, ours, _) = r.iter().find(|r| r.0 == "perplexity").unwrap().clone();
    assert_eq!(book, 1.3);
    assert!(
        (ours / book - 1.0).abs() <= 0.05,
        "perplexity {ours}, book {book}"
    );
}
