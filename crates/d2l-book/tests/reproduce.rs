//! `d2l_book::reproduce`: the data file of the book's numbers, the tolerances, the
//! selection of sections, reading a finished run folder, the records; and the 11.3 values
//! pinned to the book's printed digits.

use d2l_book::reproduce::{
    compare, parse_sections, run_experiment, sections, select, values_from_run, write_record, Cost,
    Metric, RunValues,
};
use d2l_data::hub::DataHub;

fn metric(book: f64, abs: Option<f64>, rel: Option<f64>, digits: Option<u32>) -> Metric {
    Metric {
        name: "m".into(),
        book,
        abs,
        rel,
        digits,
        note: None,
        pytorch: None,
    }
}

#[test]
fn the_data_file_parses_and_names_each_section_once() {
    let all = sections().unwrap();
    assert!(all.len() >= 20, "{} sections", all.len());
    for s in &all {
        assert!(!s.metric.is_empty(), "{}: no metrics", s.key());
        assert!(!s.where_.is_empty() && !s.title.is_empty(), "{}", s.key());
        assert!(s.seconds > 0.0, "{}", s.key());
        // Every section checks at least one value: a section of only "not checked" rows
        // could never fail.
        assert!(
            s.metric.iter().any(|m| m.tolerance().is_some()),
            "{}: nothing is checked",
            s.key()
        );
    }
    // The headline numbers of the issue are there with the stated tolerances.
    let find = |key: &str, m: &str| {
        let s = all
            .iter()
            .find(|s| s.key() == key)
            .unwrap_or_else(|| panic!("{key}"));
        s.metric.iter().find(|x| x.name == m).unwrap().clone()
    };
    assert_eq!(find("3.7-softmax", "test_acc").abs, Some(0.015));
    assert_eq!(find("4.3-mlp", "test_acc").abs, Some(0.015));
    assert_eq!(find("4.10-house-prices", "fold2_valid").abs, Some(0.002));
    assert_eq!(find("8.6-char-rnn", "perplexity").rel, Some(0.05));
    assert_eq!(find("11.3-gd", "x2_eta0.2").digits, Some(6));
    assert!(all.iter().any(|s| s.cost == Cost::Hours));
}

#[test]
fn tolerances_are_absolute_relative_or_printed_digits() {
    let m = metric(0.828, Some(0.015), None, None);
    assert_eq!(m.within(0.842), Some(true));
    assert_eq!(m.within(0.8435), Some(false));
    assert_eq!(m.within(0.813), Some(true));
    assert_eq!(m.within(f64::NAN), Some(false));
    assert_eq!(m.tolerance_text(), "±0.015");

    let m = metric(1.3, None, Some(0.05), None);
    assert_eq!(m.within(1.36), Some(true));
    assert_eq!(m.within(1.37), Some(false));
    assert_eq!(m.tolerance_text(), "±5 %");

    let m = metric(26.8341, None, None, Some(4));
    assert_eq!(m.within(26.83414), Some(true));
    assert_eq!(m.within(26.8342), Some(false));

    let m = metric(0.708, None, None, None);
    assert_eq!(m.within(0.85), None);
    assert_eq!(m.tolerance_text(), "–");
}

#[test]
fn a_bad_data_file_is_a_clear_error() {
    let head = "[[section]]\nid = \"1.1\"\nname = \"x\"\ntitle = \"t\"\nwhere = \"w\"\ncost = \"quick\"\nseconds = 1\nseeds = 1\nresults = \"r\"\n";
    let two = format!(
        "{head}recipe = \"poly\"\n[[section.metric]]\nname = \"m\"\nbook = 1.0\nabs = 0.1\nrel = 0.1\n"
    );
    let e = parse_sections(&two).unwrap_err().to_string();
    assert!(e.contains("at most one of abs, rel, digits"), "{e}");
    let unknown =
        format!("{head}recipe = \"nope\"\n[[section.metric]]\nname = \"m\"\nbook = 1.0\n");
    let e = parse_sections(&unknown).unwrap_err().to_string();
    assert!(e.contains("unknown recipe `nope`"), "{e}");
    let ok =
        format!("{head}recipe = \"train:mlp\"\n[[section.metric]]\nname = \"m\"\nbook = 1.0\n");
    let twice = format!("{ok}{ok}");
    let e = parse_sections(&twice).unwrap_err().to_string();
    assert!(e.contains("1.1-x twice"), "{e}");
    let e = parse_sections("[[section]]\nid = 3")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("reproduce.toml"), "{e}");
}

#[test]
fn sections_are_selected_by_id_key_name_quick_or_all() {
    let all = sections().unwrap();
    let keys =
        |w: &str| -> Vec<String> { select(&all, w).unwrap().iter().map(|s| s.key()).collect() };
    assert_eq!(keys("4.10"), ["4.10-house-prices"]);
    assert_eq!(keys("house-prices"), ["4.10-house-prices"]);
    assert_eq!(keys("8.5").len(), 2);
    assert_eq!(keys("8.5-char-rnn-scratch"), ["8.5-char-rnn-scratch"]);
    assert_eq!(keys("all").len(), all.len());
    let quick = keys("quick");
    assert!(quick.contains(&"3.7-softmax".to_string()));
    assert!(!quick.iter().any(|k| k.starts_with("7.")));
    let e = select(&all, "99.9").unwrap_err().to_string();
    assert!(
        e.contains("no book section `99.9`") && e.contains("4.10-house-prices"),
        "{e}"
    );
}

#[test]
fn gd_worked_examples_match_the_books_printed_digits() {
    let all = sections().unwrap();
    let s = &select(&all, "11.3").unwrap()[0];
    let dir = tempfile::tempdir().unwrap();
    let r = run_experiment(&s.recipe, 0, &DataHub::from_env(), dir.path(), true).unwrap();
    let c = compare(s, &[0], &[r]).unwrap();
    assert_eq!(c.rows.len(), 9);
    for row in &c.rows {
        assert_eq!(row.within, Some(true), "{c}");
    }
    assert!(c.passed());
}

#[test]
fn a_finished_run_folder_is_read_and_recorded_without_weights() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        run.join("summary.json"),
        r#"{"task":"language-model","train_loss":0.27,"train_acc":null,"test_acc":null,
            "seconds":31.5,"stopped_early":null,
            "epochs":[{"epoch":500,"columns":[["perplexity",1.34],["train_loss",0.29]]}]}"#,
    )
    .unwrap();
    std::fs::write(run.join("config.json"), r#"{"model":"char-rnn","seed":0}"#).unwrap();
    std::fs::write(run.join("metrics.csv"), "epoch,perplexity\n500,1.34\n").unwrap();
    std::fs::write(run.join("curves.svg"), "<svg/>").unwrap();
    std::fs::write(run.join("model.safetensors"), "weights").unwrap();
    let v = values_from_run(&run).unwrap();
    assert_eq!(v.get("perplexity"), Some(1.34));
    assert_eq!(v.get("train_loss"), Some(0.27));
    assert_eq!(v.get("test_acc"), None);

    let all = sections().unwrap();
    let s = select(&all, "8.6").unwrap()[0];
    let c = compare(s, &[0], std::slice::from_ref(&v)).unwrap();
    assert_eq!(c.rows[0].within, Some(true), "{c}");
    let rec = dir.path().join("rec");
    write_record(&rec, s, &c, &[v], serde_json::json!({"threads": 2})).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&rec)
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
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rec.join("reproduce.json")).unwrap())
            .unwrap();
    assert_eq!(r["passed"], true);
    assert_eq!(r["comparison"]["rows"][0]["book"], 1.3);

    // A run stopped early (Ctrl-C) is not a result.
    std::fs::write(
        run.join("summary.json"),
        r#"{"train_loss":1.0,"stopped_early":"interrupted after epoch 3"}"#,
    )
    .unwrap();
    let e = values_from_run(&run).unwrap_err().to_string();
    assert!(e.contains("stopped early"), "{e}");
    std::fs::remove_file(run.join("summary.json")).unwrap();
    let e = values_from_run(&run).unwrap_err().to_string();
    assert!(
        e.contains("has not finished") && e.contains("--resume"),
        "{e}"
    );
    let e = values_from_run(&dir.path().join("nothing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("summary.json"), "{e}");
}

#[test]
fn a_value_the_run_lacks_is_an_error_not_a_pass() {
    let all = sections().unwrap();
    let s = select(&all, "3.7").unwrap()[0];
    let run = RunValues {
        values: vec![("train_loss".into(), 0.45)],
        ..Default::default()
    };
    let e = compare(s, &[0], &[run]).unwrap_err().to_string();
    assert!(e.contains("no value `train_acc`"), "{e}");
    let far = RunValues {
        values: vec![
            ("train_loss".into(), 0.45),
            ("train_acc".into(), 0.85),
            ("test_acc".into(), 0.80),
        ],
        ..Default::default()
    };
    let c = compare(s, &[0], &[far]).unwrap();
    assert!(!c.passed(), "{c}");
    assert!(c.to_string().contains("NO"), "{c}");
}
